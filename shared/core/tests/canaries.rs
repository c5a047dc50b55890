//! The personal-data canary test in a process of its own: it captures the logs through the
//! process-wide subscriber, which no other test may share.

// The stage tests' fixture; this test uses part of it.
#[cfg(test)]
#[allow(dead_code)]
#[path = "stages/support.rs"]
mod support;

#[cfg(test)]
#[path = "stages/canaries.rs"]
mod canaries;
