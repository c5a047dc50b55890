//! The event bus port and its in-process adapter.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::events::BusEvent;

/// Where stages publish events (EventBridge on AWS).
#[async_trait]
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Publishes events; all or nothing is an adapter's best effort, retried by the caller.
    async fn publish(&self, events: Vec<BusEvent>) -> Result<()>;
}

/// A FIFO queue in memory: the embedded bus. The router drains it.
#[derive(Debug, Default)]
pub struct InProcessBus {
    queue: Mutex<VecDeque<BusEvent>>,
}

impl InProcessBus {
    /// Takes the oldest event.
    pub fn pop(&self) -> Option<BusEvent> {
        self.queue.lock().ok()?.pop_front()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, events: Vec<BusEvent>) -> Result<()> {
        let mut q = self
            .queue
            .lock()
            .map_err(|_| Error::Bus("in-process bus poisoned".into()))?;
        q.extend(events);
        Ok(())
    }
}
