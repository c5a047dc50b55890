//! The event bus on EventBridge.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use tessera_core::bus::EventBus;
use tessera_core::error::{Error, Result};
use tessera_core::events::BusEvent;

/// Most entries one `PutEvents` call takes.
const MAX_ENTRIES: usize = 10;

/// Publishes Tessera's events to a custom EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeBus {
    /// A bus client for the named bus.
    pub fn new(sdk: &SdkConfig, bus: &str) -> EventBridgeBus {
        EventBridgeBus {
            client: aws_sdk_eventbridge::Client::new(sdk),
            bus: bus.to_owned(),
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: Vec<BusEvent>) -> Result<()> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let entries = chunk
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(&e.source)
                        .detail_type(&e.detail_type)
                        .detail(e.detail.to_string())
                        .set_resources((!e.resources.is_empty()).then(|| e.resources.clone()))
                        .build()
                })
                .collect();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    Error::Bus(format!(
                        "PutEvents to `{}`: {}",
                        self.bus,
                        aws_sdk_eventbridge::error::DisplayErrorContext(e)
                    ))
                })?;
            if out.failed_entry_count() > 0 {
                let why: Vec<String> = out
                    .entries()
                    .iter()
                    .filter_map(|r| {
                        r.error_message()
                            .map(|m| format!("{}: {m}", r.error_code().unwrap_or("error")))
                    })
                    .collect();
                return Err(Error::Bus(format!(
                    "{} of {} events refused by `{}`: {}",
                    out.failed_entry_count(),
                    chunk.len(),
                    self.bus,
                    why.join("; ")
                )));
            }
        }
        Ok(())
    }
}
