//! The embedded router: delivers bus events to functions by the same rules as EventBridge.

use async_trait::async_trait;

use crate::bus::InProcessBus;
use crate::events::BusEvent;
use crate::function::{FunctionError, Outcome};
use crate::routing::{Function, targets};

/// Invokes a function with an event (the function crates' handlers, in process).
#[async_trait]
pub trait Invoker: Send + Sync {
    /// Runs `function` on `event`.
    async fn invoke(
        &self,
        function: Function,
        event: serde_json::Value,
    ) -> Result<Outcome, FunctionError>;
}

/// One delivery the router made.
#[derive(Debug)]
pub struct Delivery {
    /// The event.
    pub event: BusEvent,
    /// The function it went to.
    pub function: Function,
    /// What the function did.
    pub result: Result<Outcome, FunctionError>,
}

/// Delivers events until the bus is empty; returns every delivery in order. `max_events` bounds
/// the work, so a rule that loops is stopped, not run forever.
pub async fn drain(
    bus: &InProcessBus,
    invoker: &dyn Invoker,
    max_events: usize,
) -> Result<Vec<Delivery>, FunctionError> {
    drain_with(bus, invoker, max_events, &mut |_, _| {}).await
}

/// [`drain`], telling `progress` after each delivery how many were made and how many events
/// wait on the bus.
pub async fn drain_with(
    bus: &InProcessBus,
    invoker: &dyn Invoker,
    max_events: usize,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<Vec<Delivery>, FunctionError> {
    let mut deliveries = Vec::new();
    let mut seen = 0;
    while let Some(event) = bus.pop() {
        seen += 1;
        if seen > max_events {
            return Err(FunctionError {
                kind: crate::error::ErrorKind::Internal,
                message: format!("more than {max_events} events: a routing loop?"),
            });
        }
        for function in targets(&event) {
            let result = invoker.invoke(function, event.to_json()).await;
            deliveries.push(Delivery {
                event: event.clone(),
                function,
                result,
            });
            progress(deliveries.len(), bus.len());
        }
    }
    Ok(deliveries)
}
