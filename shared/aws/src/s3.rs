//! Object storage on S3, through `object_store`: one store per bucket.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::CredentialProvider;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use tessera_core::error::{Error, Result};
use tessera_core::storage::{Buckets, StoreCache};

use crate::{AwsSettings, Service};

/// S3 buckets, credentials from the SDK's chain.
#[derive(Debug)]
pub struct S3Buckets {
    settings: AwsSettings,
    credentials: Arc<SdkCredentials>,
    stores: StoreCache,
}

impl S3Buckets {
    /// Buckets reached with the SDK configuration's credentials.
    pub fn new(sdk: &SdkConfig, settings: &AwsSettings) -> Result<S3Buckets> {
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| Error::Config("no AWS credentials provider is configured".into()))?;
        Ok(S3Buckets {
            settings: settings.clone(),
            credentials: Arc::new(SdkCredentials {
                provider,
                cached: tokio::sync::Mutex::new(None),
            }),
            stores: StoreCache::default(),
        })
    }
}

impl Buckets for S3Buckets {
    fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        self.stores.get_or_make(bucket, || {
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(&self.settings.region)
                .with_credentials(self.credentials.clone())
                .with_virtual_hosted_style_request(!self.settings.force_path_style);
            if let Some(endpoint) = self.settings.endpoint(Service::S3) {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            Ok(Arc::new(builder.build()?))
        })
    }
}

/// The SDK's credential chain as an `object_store` credential provider, cached until five
/// minutes before expiry.
#[derive(Debug)]
struct SdkCredentials {
    provider: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = cached.as_ref() {
            let fresh = expiry.is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300));
            if fresh {
                return Ok(Arc::clone(credential));
            }
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_owned(),
            secret_key: c.secret_access_key().to_owned(),
            token: c.session_token().map(str::to_owned),
        });
        *cached = Some((Arc::clone(&credential), c.expiry()));
        Ok(credential)
    }
}
