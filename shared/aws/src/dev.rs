//! Running a domain on an emulator: provision what the stacks would create, and bridge rule
//! targets to functions.
//!
//! On AWS, EventBridge rules invoke the functions. An emulator cannot run Lambda code, so here
//! each rule targets an SQS queue instead, and [`bridge`] polls the queues and hands every event
//! to its function through the Lambda Invoke API that `cargo lambda watch` serves. The rules are
//! those of [`routing::rules`], narrowed to each domain: the same patterns the stacks deploy.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::Target;
use aws_sdk_s3::types::{EventBridgeConfiguration, NotificationConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use tessera_core::error::{Error, Result};
use tessera_core::mesh::Mesh;
use tessera_core::routing::{self, Function};

use crate::{AwsSettings, Service};

/// EventBridge's bus for AWS service events.
const DEFAULT_BUS: &str = "default";

/// A rule target: the queue that stands in for a function of a domain.
#[derive(Debug, Clone)]
pub struct Route {
    /// Domain.
    pub domain: String,
    /// EventBridge rule name.
    pub rule: String,
    /// The function the rule invokes.
    pub function: Function,
    /// URL of the queue the rule targets.
    pub queue_url: String,
}

fn sdk_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Bus(format!(
        "{what}: {}",
        aws_sdk_s3::error::DisplayErrorContext(e)
    ))
}

/// Creates (or finds) every domain's bucket with EventBridge notifications on, the mesh's
/// product bus, and one rule per routing rule and domain targeting a queue. Idempotent.
pub async fn provision(mesh: &Mesh, settings: &AwsSettings, sdk: &SdkConfig) -> Result<Vec<Route>> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&settings.service_config(sdk, Service::S3))
            .force_path_style(settings.force_path_style)
            .build(),
    );
    let events =
        aws_sdk_eventbridge::Client::new(&settings.service_config(sdk, Service::EventBridge));
    let sqs = aws_sdk_sqs::Client::new(&settings.service_config(sdk, Service::Sqs));

    match events
        .create_event_bus()
        .name(&settings.event_bus)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) => {}
        Err(e) => return Err(sdk_error("CreateEventBus", e)),
    }
    let mut routes = Vec::new();
    for domain in &mesh.domains {
        match s3.create_bucket().bucket(&domain.bucket).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => return Err(sdk_error(&format!("CreateBucket `{}`", domain.bucket), e)),
        }
        s3.put_bucket_notification_configuration()
            .bucket(&domain.bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .event_bridge_configuration(EventBridgeConfiguration::builder().build())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("PutBucketNotificationConfiguration", e))?;
        for rule in routing::rules() {
            let name = format!("tessera-{}-{}-{}", mesh.name, domain.name, rule.name);
            let (queue_url, arn) = queue(&sqs, &name).await?;
            let bus = if rule.on_default_bus() {
                DEFAULT_BUS
            } else {
                settings.event_bus.as_str()
            };
            events
                .put_rule()
                .name(&name)
                .event_bus_name(bus)
                .event_pattern(rule.pattern_for(mesh, domain).to_string())
                .send()
                .await
                .map_err(|e| sdk_error("PutRule", e))?;
            let target = Target::builder()
                .id(rule.target.name())
                .arn(arn)
                .build()
                .map_err(|e| Error::Internal(format!("rule target: {e}")))?;
            events
                .put_targets()
                .rule(&name)
                .event_bus_name(bus)
                .targets(target)
                .send()
                .await
                .map_err(|e| sdk_error("PutTargets", e))?;
            routes.push(Route {
                domain: domain.name.clone(),
                rule: name,
                function: rule.target,
                queue_url,
            });
        }
    }
    Ok(routes)
}

/// Creates (or finds) the SQS queue `name`: its URL and ARN.
pub async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<(String, String)> {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| sdk_error("CreateQueue", e))?
        .queue_url()
        .ok_or_else(|| Error::Bus("CreateQueue returned no URL".into()))?
        .to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_error("GetQueueAttributes", e))?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or_else(|| Error::Bus(format!("queue `{name}` has no ARN")))?
        .clone();
    Ok((url, arn))
}

/// What the bridge delivered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BridgeReport {
    /// Events a function handled.
    pub delivered: usize,
    /// Invocations that failed (left on their queue for a retry), with the function's error.
    pub failures: Vec<String>,
}

/// Polls the routes' queues and invokes each event's function at `lambda_url` (the Lambda
/// Invoke API of `cargo lambda watch`), deleting a message once its function succeeded. Returns
/// when no queue had a message for `idle`, or after `limit`.
pub async fn bridge(
    sdk: &SdkConfig,
    settings: &AwsSettings,
    routes: &[Route],
    lambda_url: &str,
    idle: Duration,
    limit: Duration,
) -> Result<BridgeReport> {
    let sqs = aws_sdk_sqs::Client::new(&settings.service_config(sdk, Service::Sqs));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
    let mut report = BridgeReport::default();
    let started = Instant::now();
    let mut last_message = Instant::now();
    while last_message.elapsed() < idle && started.elapsed() < limit {
        let mut any = false;
        for route in routes {
            let received = sqs
                .receive_message()
                .queue_url(&route.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .map_err(|e| sdk_error("ReceiveMessage", e))?;
            for message in received.messages() {
                any = true;
                let body = message.body().unwrap_or_default().to_owned();
                let url = format!(
                    "{}/2015-03-31/functions/{}/invocations",
                    lambda_url.trim_end_matches('/'),
                    route.function.name()
                );
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| {
                        Error::Bus(format!(
                            "invoking `{}` at {url}: {e}",
                            route.function.name()
                        ))
                    })?;
                let failed = !response.status().is_success()
                    || response.headers().contains_key("x-amz-function-error");
                let text = response.text().await.unwrap_or_default();
                if failed {
                    tracing::warn!(function = route.function.name(), response = %text, "invocation failed; the message stays queued");
                    report
                        .failures
                        .push(format!("{}: {text}", route.function.name()));
                    continue;
                }
                report.delivered += 1;
                if let Some(handle) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(&route.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| sdk_error("DeleteMessage", e))?;
                }
            }
        }
        if any {
            last_message = Instant::now();
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(report)
}
