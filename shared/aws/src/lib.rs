//! Tessera's AWS adapters: the ports of `tessera-core` on S3, EventBridge, Glue and Athena.
//!
//! One settings type decides the backend: an environment of the mesh file. Against an emulator
//! the only differences are the endpoint URL and path-style addressing; credentials and region
//! come from the standard AWS chain (environment, profile, web identity, container, instance).
//!
//! * [`s3`]: object storage on S3 through `object_store` (ranged reads, multipart writes,
//!   `If-None-Match` conditional puts for commits);
//! * [`eventbridge`]: the event bus;
//! * [`glue`]: the catalog, every table update a compare-and-swap on Glue's table version;
//! * [`athena`]: SQL on AWS (start, poll, paged results);
//! * [`dev`]: a domain on an emulator: provisioning, and the bridge from rule targets to
//!   functions served by `cargo lambda watch`.
#![warn(missing_docs)]

pub mod athena;
pub mod dev;
pub mod eventbridge;
pub mod glue;
pub mod lambda;
pub mod s3;

use std::path::Path;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;
use tessera_core::bus::EventBus;
use tessera_core::context::Context;
use tessera_core::error::{Error, Result};
use tessera_core::mesh::{Environment, Mesh, ServiceEndpoints};
use tessera_core::storage::Storage;

/// Where the AWS side is: a region, and an endpoint when it is an emulator.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// AWS region.
    pub region: String,
    /// Endpoint override (an emulator); `None` means AWS itself.
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing (emulators need it).
    pub force_path_style: bool,
    /// Name of the EventBridge bus for product events.
    pub event_bus: String,
    /// Per-service endpoint overrides (a mix of emulators); unset services use `endpoint_url`.
    pub endpoints: ServiceEndpoints,
    /// Athena workgroup of aggregations pushed down to Athena.
    pub athena_workgroup: String,
}

/// The AWS services Tessera calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Amazon S3.
    S3,
    /// Amazon EventBridge.
    EventBridge,
    /// Amazon SQS.
    Sqs,
    /// AWS Glue.
    Glue,
    /// Amazon Athena.
    Athena,
}

impl AwsSettings {
    /// The settings of an `aws` environment; `None` for any other backend.
    pub fn from_environment(env: &Environment) -> Option<AwsSettings> {
        match env {
            Environment::Aws {
                region,
                endpoint_url,
                force_path_style,
                event_bus,
                endpoints,
                athena_workgroup,
            } => Some(AwsSettings {
                region: region.clone(),
                endpoint_url: endpoint_url.clone(),
                force_path_style: *force_path_style,
                event_bus: event_bus.clone(),
                endpoints: endpoints.clone(),
                athena_workgroup: athena_workgroup.clone(),
            }),
            Environment::Embedded { .. } => None,
        }
    }

    /// The SDK configuration: one rustls (ring) HTTPS client, the standard credential chain, the
    /// region, and the endpoint override if any.
    pub async fn sdk_config(&self) -> SdkConfig {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(self.region.clone()));
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        loader.load().await
    }

    /// The endpoint of one service: its override, else the environment's, else AWS's own
    /// (`None`).
    pub fn endpoint(&self, service: Service) -> Option<&str> {
        let e = &self.endpoints;
        let specific = match service {
            Service::S3 => &e.s3,
            Service::EventBridge => &e.eventbridge,
            Service::Sqs => &e.sqs,
            Service::Glue => &e.glue,
            Service::Athena => &e.athena,
        };
        specific.as_deref().or(self.endpoint_url.as_deref())
    }

    /// The SDK configuration for one service's client: `sdk` with that service's endpoint.
    pub fn service_config(&self, sdk: &SdkConfig, service: Service) -> SdkConfig {
        match self.endpoint(service) {
            Some(endpoint) if Some(endpoint) != sdk.endpoint_url() => {
                sdk.to_builder().endpoint_url(endpoint).build()
            }
            _ => sdk.clone(),
        }
    }
}

/// The ports of an AWS environment: S3 buckets (S3 itself sends the `Object Created` events),
/// the EventBridge bus, the Glue catalog.
pub async fn aws_context(mesh: Arc<Mesh>, settings: &AwsSettings) -> Result<Context> {
    let sdk = settings.sdk_config().await;
    let buckets = Arc::new(s3::S3Buckets::new(&sdk, settings)?);
    let storage = Storage::new(buckets, None);
    let bus: Arc<dyn EventBus> = Arc::new(eventbridge::EventBridgeBus::new(
        &settings.service_config(&sdk, Service::EventBridge),
        &settings.event_bus,
    ));
    let databases = mesh.domains.iter().map(|d| d.database.clone()).collect();
    let catalog = Arc::new(glue::GlueCatalog::new(
        &settings.service_config(&sdk, Service::Glue),
        databases,
    ));
    let pushdown: Arc<dyn tessera_core::query::PushDown> =
        Arc::new(athena::AthenaPushDown::new(athena::Athena::new(
            &settings.service_config(&sdk, Service::Athena),
            &settings.athena_workgroup,
            None,
        )));
    Ok(Context {
        mesh,
        storage,
        bus,
        catalog,
        pushdown: Some(pushdown),
        scope: None,
        lineage: tessera_core::lineage::Target::from_env().map_err(Error::Config)?,
    })
}

/// The account's default EventBridge bus of an AWS environment, where S3 sends its events and
/// the pipeline's object rules listen (`None` for an embedded environment): the reconciler
/// re-drives objects there.
pub async fn default_bus(mesh: &Mesh, environment: &str) -> Result<Option<Arc<dyn EventBus>>> {
    Ok(
        match AwsSettings::from_environment(mesh.environment(environment)?) {
            Some(settings) => {
                let sdk = settings.sdk_config().await;
                Some(Arc::new(eventbridge::EventBridgeBus::new(
                    &settings.service_config(&sdk, Service::EventBridge),
                    "default",
                )))
            }
            None => None,
        },
    )
}

/// The ports of a named environment of the mesh, embedded or AWS.
pub async fn context(mesh: Arc<Mesh>, environment: &str) -> Result<Context> {
    match AwsSettings::from_environment(mesh.environment(environment)?) {
        Some(settings) => aws_context(mesh, &settings).await,
        None => Context::for_environment(mesh, environment),
    }
}

/// The ports as a Lambda function builds them once at cold start: the mesh file from
/// `TESSERA_MESH` (default `samplecli.toml`), the environment from `TESSERA_ENV` (default the
/// mesh's), and the domain the function serves from `TESSERA_DOMAIN` (default every domain).
pub async fn context_from_env() -> Result<Context> {
    let path = std::env::var("TESSERA_MESH").unwrap_or_else(|_| "samplecli.toml".into());
    let mesh = Arc::new(
        Mesh::load(Path::new(&path)).map_err(|e| Error::Config(format!("TESSERA_MESH: {e}")))?,
    );
    let env = std::env::var("TESSERA_ENV").unwrap_or_else(|_| mesh.default_environment.clone());
    let mut ctx = context(mesh, &env).await?;
    ctx.scope = std::env::var("TESSERA_DOMAIN")
        .ok()
        .filter(|d| !d.is_empty());
    if let Some(d) = &ctx.scope
        && ctx.mesh.domain(d).is_none()
    {
        return Err(Error::Config(format!(
            "TESSERA_DOMAIN: no domain `{d}` in the mesh"
        )));
    }
    Ok(ctx)
}
