//! The reconciler: objects no stage finished with, found from the buckets themselves, and their
//! events sent again.
//!
//! S3 notifications and EventBridge deliveries can be lost (a target that failed past its retry
//! window, a rule that was missing for a while). Every object of the raw, staged and clean zones
//! has a run record once its stage is done with it (`runs/<product>/<stage>/<run id>.json`, the
//! id derived from the object as the stage derives it), so an object without one was never
//! handled, or its handling never finished. [`find`] lists them; [`event`] is the `Object
//! Created` event that re-drives one, from the `tessera.reconcile` source the pipeline's rules
//! accept beside `aws.s3` (EventBridge refuses `aws.*` sources from callers).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::bus::EventBus;
use crate::context::Context;
use crate::error::Result;
use crate::events::{BucketRef, BusEvent, OBJECT_CREATED, ObjectCreated, ObjectRef, encode_key};
use crate::keys::{Zone, object_run_id, parse_zone_key, run_prefix};
use crate::routing::Function;

/// `source` of the events the reconciler sends.
pub const RECONCILE_SOURCE: &str = "tessera.reconcile";

/// An object no stage has finished with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unfinished {
    /// The stage that should have handled it.
    pub function: Function,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version (version id, else etag), as its event would carry it.
    pub version: Option<String>,
    /// Entity tag.
    pub etag: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

/// The zones whose objects trigger a stage, with that stage.
const ZONES: [(Zone, Function); 3] = [
    (Zone::Raw, Function::Ingest),
    (Zone::Staged, Function::Clean),
    (Zone::Clean, Function::ContractCheck),
];

/// Every object of the raw, staged and clean zones of the domains this process serves whose
/// stage left no run record for it.
pub async fn find(ctx: &Context) -> Result<Vec<Unfinished>> {
    let mut out = Vec::new();
    for domain in ctx.mesh.domains.iter().filter(|d| ctx.serves(d)) {
        // The run records of each product and stage, listed once (not read one by one).
        let mut records: HashMap<(String, Function), HashSet<String>> = HashMap::new();
        for (zone, function) in ZONES {
            for meta in ctx.storage.list(&domain.bucket, zone.prefix()).await? {
                let key = meta.location.to_string();
                // Staging files of a local store's writes in progress, and objects that are
                // not a product's (their stage would refuse them: that leaves a record too).
                if key.contains('#') {
                    continue;
                }
                let Ok(zk) = parse_zone_key(&key, zone) else {
                    continue;
                };
                let etag = meta.e_tag.map(|e| e.trim_matches('"').to_owned());
                // As `ObjectCreated::version` reads it from the event.
                let version = meta
                    .version
                    .clone()
                    .filter(|v| v != "null")
                    .or_else(|| etag.clone());
                let as_event = version
                    .clone()
                    .unwrap_or_else(|| format!("size-{}", meta.size));
                let id = object_run_id(zone, &domain.bucket, &key, &as_event);
                let done = match records.entry((zk.product.clone(), function)) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let prefix = run_prefix(&zk.product, function.name());
                        let listed = ctx.storage.list(&domain.bucket, &prefix).await?;
                        e.insert(
                            listed
                                .iter()
                                .filter_map(|m| m.location.filename())
                                .filter_map(|f| f.strip_suffix(".json"))
                                .map(str::to_owned)
                                .collect(),
                        )
                    }
                };
                if !done.contains(&id) {
                    out.push(Unfinished {
                        function,
                        bucket: domain.bucket.clone(),
                        key,
                        version: meta.version,
                        etag,
                        size: meta.size,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The event that re-drives an unfinished object through the pipeline's rules.
pub fn event(unfinished: &Unfinished) -> BusEvent {
    let detail = ObjectCreated {
        bucket: BucketRef {
            name: unfinished.bucket.clone(),
        },
        object: ObjectRef {
            key: encode_key(&unfinished.key),
            size: Some(unfinished.size),
            etag: unfinished.etag.clone(),
            version_id: unfinished.version.clone(),
            // No sequencer: a re-driven version is never taken for a stale one (a newer
            // version of its key still supersedes it in the product).
            sequencer: None,
        },
        reason: Some("Reconcile".to_owned()),
    };
    let mut e = BusEvent::new(
        RECONCILE_SOURCE,
        OBJECT_CREATED,
        serde_json::to_value(detail).unwrap_or_default(),
    );
    e.resources = vec![format!("arn:aws:s3:::{}", unfinished.bucket)];
    e
}

/// Sends the events of unfinished objects on `bus`: the bus S3's events arrive on (on AWS the
/// default bus, where the object rules are; embedded, the in-process bus).
pub async fn redrive(bus: &dyn EventBus, unfinished: &[Unfinished]) -> Result<()> {
    // EventBridge takes at most 10 entries per PutEvents call.
    for chunk in unfinished.chunks(10) {
        bus.publish(chunk.iter().map(event).collect()).await?;
    }
    Ok(())
}
