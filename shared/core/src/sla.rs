//! Service levels: a contract's `slaProperties`, evaluated from what the pipeline recorded.
//!
//! The evidence is the product's commit log (when each version became visible) and the run
//! records (when each input landed and went through the stages). Nothing is sampled or timed by
//! the check itself, so it gives the same answer embedded, on an emulator and on AWS:
//!
//! | property | expectation | observed |
//! |---|---|---|
//! | `latency` | a version is published within `value unit` of its input | the worst delay from landing (for an aggregation: from its input's publication) to commit |
//! | freshness (from `frequency`, plus `latency` when given) | the newest version is at most one period (plus the latency) old | age of the newest version |
//! | `frequency` | a version at least every `value unit` | the longest gap between versions, the last one up to now |
//! | `timeOfAvailability` | each day, a version by `HH:MM` (with its UTC offset, `09:00-08:00`) | days of the last 30 without one in time |
//! | `retention` | no published version older than `value unit` is still live | age of the oldest live version |
//!
//! Other properties (`generalAvailability`, `endOfSupport`, ...) are reported as not evaluated.

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_contract::SlaProperty;

use crate::context::Context;
use crate::error::Result;
use crate::events::{BusEvent, TESSERA_SOURCE};
use crate::mesh::{Domain, Product, ProductKind};
use crate::publish::{self, Commit};
use crate::runs::{self, InputRef, RunRecord, RunStatus};

/// Detail type of the event a breached service level emits.
pub const SLA_BREACHED: &str = "SlaBreached";

/// Days `timeOfAvailability` looks back.
const AVAILABILITY_DAYS: i64 = 30;

/// How one service level stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaStatus {
    /// Met.
    Met,
    /// Breached.
    Breached,
    /// Not evaluated, for the reason given (no evidence yet, a property Tessera does not
    /// evaluate, a value it cannot read).
    NotEvaluated,
}

/// One evaluated service level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaCheck {
    /// `latency`, `freshness`, `frequency`, `timeOfAvailability`, `retention`, ...
    pub property: String,
    /// What the contract promises.
    pub expectation: String,
    /// What the records show.
    pub observed: Option<String>,
    /// Met, breached or not evaluated.
    pub status: SlaStatus,
    /// Why, when not met.
    pub detail: Option<String>,
}

/// The service levels of one product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaReport {
    /// Domain.
    pub domain: String,
    /// Product.
    pub product: String,
    /// Contract id.
    pub contract_id: String,
    /// When the evaluation ran.
    pub evaluated_at: DateTime<Utc>,
    /// One entry per service level.
    pub checks: Vec<SlaCheck>,
}

impl SlaReport {
    /// The breached service levels.
    pub fn breached(&self) -> impl Iterator<Item = &SlaCheck> {
        self.checks
            .iter()
            .filter(|c| c.status == SlaStatus::Breached)
    }
}

/// Detail of the `SlaBreached` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaBreached {
    /// Domain.
    pub domain: String,
    /// Product.
    pub product: String,
    /// Contract id.
    pub contract_id: String,
    /// The breached property.
    pub property: String,
    /// What the contract promises.
    pub expectation: String,
    /// What the records show.
    pub observed: Option<String>,
    /// Why.
    pub detail: Option<String>,
    /// When the breach was seen.
    pub at: DateTime<Utc>,
}

impl SlaBreached {
    /// As a bus event.
    pub fn event(&self) -> BusEvent {
        BusEvent::new(
            TESSERA_SOURCE,
            SLA_BREACHED,
            serde_json::to_value(self).unwrap_or_default(),
        )
    }
}

/// Evaluates every product of the mesh at `now`.
pub async fn evaluate_all(ctx: &Context, now: DateTime<Utc>) -> Result<Vec<SlaReport>> {
    let mut out = Vec::new();
    for (domain, product) in ctx.mesh.products() {
        out.push(evaluate(ctx, domain, product, now).await?);
    }
    Ok(out)
}

/// What catalog-register does when its schedule fires: evaluates the products of `domain` (of
/// every domain when `None`), announces each breach with an `SlaBreached` event, and keeps one
/// run record per product (`runs/<product>/sla-check/`): met service levels count as passed
/// checks, breached ones as failed, with the breaches in the notes.
pub async fn scheduled_check(
    ctx: &Context,
    domain: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<RunRecord>> {
    if let Some(name) = domain
        && ctx.mesh.domain(name).is_none()
    {
        return Err(crate::error::Error::BadEvent(format!(
            "the schedule names domain `{name}`, which the mesh does not have"
        )));
    }
    let reports = announce(ctx, domain, now).await?;
    let mut records = Vec::new();
    for report in reports {
        let Some(d) = ctx.mesh.domain(&report.domain) else {
            continue;
        };
        let id = crate::keys::derived_id(&d.bucket, &format!("sla-check/{}/{now}", report.product));
        let input = InputRef {
            bucket: d.bucket.clone(),
            key: crate::publish::commits_prefix(&report.product),
            version: now.to_rfc3339(),
            sequencer: None,
        };
        let (mut record, started) =
            RunRecord::start(&id, "sla-check", &report.domain, &report.product, input);
        let count = |s| report.checks.iter().filter(|c| c.status == s).count();
        record.checks = crate::events::CheckCounts {
            passed: count(SlaStatus::Met),
            failed: count(SlaStatus::Breached),
        };
        record.notes = report
            .checks
            .iter()
            .filter(|c| c.status != SlaStatus::Met)
            .map(|c| {
                format!(
                    "{} {:?}: {} (observed {}){}",
                    c.property,
                    c.status,
                    c.expectation,
                    c.observed.as_deref().unwrap_or("nothing"),
                    c.detail
                        .as_deref()
                        .map(|d| format!("; {d}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        records.push(runs::save(&ctx.storage, &d.bucket, record, started).await?);
    }
    Ok(records)
}

/// Evaluates every product (of `domain`, or of the mesh) and announces each breach with an
/// `SlaBreached` event. Returns the reports.
pub async fn announce(
    ctx: &Context,
    domain: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<SlaReport>> {
    let mut reports = Vec::new();
    for (d, product) in ctx.mesh.products() {
        if domain.is_none_or(|name| name == d.name) {
            reports.push(evaluate(ctx, d, product, now).await?);
        }
    }
    let events: Vec<BusEvent> = reports
        .iter()
        .flat_map(|r| {
            r.breached().map(|c| {
                SlaBreached {
                    domain: r.domain.clone(),
                    product: r.product.clone(),
                    contract_id: r.contract_id.clone(),
                    property: c.property.clone(),
                    expectation: c.expectation.clone(),
                    observed: c.observed.clone(),
                    detail: c.detail.clone(),
                    at: now,
                }
                .event()
            })
        })
        .collect();
    if !events.is_empty() {
        ctx.bus.publish(events).await?;
    }
    Ok(reports)
}

/// Evaluates one product's service levels at `now`.
pub async fn evaluate(
    ctx: &Context,
    domain: &Domain,
    product: &Product,
    now: DateTime<Utc>,
) -> Result<SlaReport> {
    let log = publish::commits(&ctx.storage, &domain.bucket, &product.name).await?;
    let commits: Vec<&Commit> = log.iter().map(|(_, c)| c).collect();
    let sla = &product.contract.sla_properties;
    let mut checks = Vec::new();
    let period = |name: &str| {
        sla.iter()
            .find(|p| p.property.eq_ignore_ascii_case(name))
            .and_then(|p| duration(p).ok())
    };
    for p in sla {
        let check = match p.property.as_str() {
            "latency" => latency(ctx, domain, product, &log, p).await?,
            "frequency" => frequency(&commits, p, now),
            "timeOfAvailability" => availability(&commits, p, now),
            "retention" => retention(&log, p, now),
            other => not_evaluated(
                other,
                &describe(p),
                "Tessera evaluates latency, frequency (and freshness), timeOfAvailability and retention",
            ),
        };
        checks.push(check);
        if p.property == "frequency"
            && let Some(every) = period("frequency")
        {
            let allowed = every + period("latency").unwrap_or_else(Duration::zero);
            checks.push(freshness(&commits, allowed, now));
        }
    }
    Ok(SlaReport {
        domain: domain.name.clone(),
        product: product.name.clone(),
        contract_id: product.contract.id.clone(),
        evaluated_at: now,
        checks,
    })
}

/// `value unit` as a duration.
fn duration(p: &SlaProperty) -> std::result::Result<Duration, String> {
    let value = match &p.value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|v| v.is_finite() && *v >= 0.0)
    .ok_or_else(|| format!("value `{}` is not a non-negative number", p.value))?;
    let unit = p.unit.as_deref().unwrap_or("d").trim().to_ascii_lowercase();
    let seconds = match unit.as_str() {
        "s" | "sec" | "second" | "seconds" => 1.0,
        "m" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 7.0 * 86_400.0,
        "mo" | "month" | "months" => 30.0 * 86_400.0,
        "y" | "yr" | "year" | "years" => 365.0 * 86_400.0,
        other => return Err(format!("unit `{other}` is not a unit of time")),
    };
    Ok(Duration::milliseconds(
        (value * seconds * 1000.0).round() as i64
    ))
}

fn describe(p: &SlaProperty) -> String {
    let value = match &p.value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match &p.unit {
        Some(unit) => format!("{value} {unit}"),
        None => value,
    }
}

/// A duration for people: `14 min`, `3.5 h`, `2 d`.
fn human(d: Duration) -> String {
    let s = d.num_seconds();
    if s < 120 {
        format!("{s} s")
    } else if s < 2 * 3600 {
        format!("{} min", s / 60)
    } else if s < 2 * 86_400 {
        format!("{:.1} h", s as f64 / 3600.0)
    } else {
        format!("{:.1} d", s as f64 / 86_400.0)
    }
}

fn check(
    property: &str,
    expectation: String,
    observed: Duration,
    limit: Duration,
    why: impl FnOnce() -> String,
) -> SlaCheck {
    let met = observed <= limit;
    SlaCheck {
        property: property.to_owned(),
        expectation,
        observed: Some(human(observed)),
        status: if met {
            SlaStatus::Met
        } else {
            SlaStatus::Breached
        },
        detail: (!met).then(why),
    }
}

fn not_evaluated(property: &str, expectation: &str, why: &str) -> SlaCheck {
    SlaCheck {
        property: property.to_owned(),
        expectation: expectation.to_owned(),
        observed: None,
        status: SlaStatus::NotEvaluated,
        detail: Some(why.to_owned()),
    }
}

/// The worst delay between an input becoming available and its version's commit.
async fn latency(
    ctx: &Context,
    domain: &Domain,
    product: &Product,
    log: &[(String, Commit)],
    p: &SlaProperty,
) -> Result<SlaCheck> {
    let expectation = format!("published within {}", describe(p));
    let limit = match duration(p) {
        Ok(d) => d,
        Err(why) => return Ok(not_evaluated("latency", &expectation, &why)),
    };
    // The run records are read once, however many versions there are.
    let (clean, ingest) = match &product.kind {
        ProductKind::Aggregate { .. } => (Vec::new(), Vec::new()),
        _ => (
            runs::history(&ctx.storage, &domain.bucket, &product.name, "clean").await?,
            runs::history(&ctx.storage, &domain.bucket, &product.name, "ingest").await?,
        ),
    };
    let mut worst: Option<(Duration, String)> = None;
    for (_, commit) in log {
        let Some(available) = input_time(ctx, domain, product, commit, &clean, &ingest).await?
        else {
            continue;
        };
        let delay = commit.committed_at - available;
        if worst.as_ref().is_none_or(|(w, _)| delay > *w) {
            worst = Some((delay, commit.source.clone()));
        }
    }
    Ok(match worst {
        None => not_evaluated(
            "latency",
            &expectation,
            "no published version with a recorded input yet",
        ),
        Some((delay, source)) => check("latency", expectation, delay, limit, || {
            format!("`{source}` took {} to publish", human(delay))
        }),
    })
}

/// When the input of a version became available: the landing of its raw file (from the run
/// records of ingest, clean and contract-check), or the commit of the version an aggregation read.
async fn input_time(
    ctx: &Context,
    domain: &Domain,
    product: &Product,
    commit: &Commit,
    clean: &[crate::runs::RunRecord],
    ingest: &[crate::runs::RunRecord],
) -> Result<Option<DateTime<Utc>>> {
    let bucket = &domain.bucket;
    if let ProductKind::Aggregate { .. } = &product.kind {
        // The source is the parent's commit key.
        let Some(parent) = ctx.storage.get_opt(bucket, &commit.source).await? else {
            return Ok(None);
        };
        let parent: Commit = serde_json::from_slice(&parent)?;
        return Ok(Some(parent.committed_at));
    }
    // commit.source is the clean object; follow the records back to the raw file.
    let Some(staged) = clean
        .iter()
        .find(|r| r.outputs.iter().any(|o| o == &commit.source))
        .map(|r| r.input.key.clone())
    else {
        return Ok(None);
    };
    let Some(run) = ingest
        .iter()
        .filter(|r| r.status != RunStatus::Quarantined)
        .find(|r| r.outputs.iter().any(|o| o == &staged))
    else {
        return Ok(None);
    };
    // The raw object's own time if it is still there, else when ingest started on it.
    Ok(Some(match ctx.storage.head(bucket, &run.input.key).await {
        Ok(meta) => meta.last_modified.min(run.started_at),
        Err(_) => run.started_at,
    }))
}

/// The longest gap between versions, counting the one since the last version.
fn frequency(commits: &[&Commit], p: &SlaProperty, now: DateTime<Utc>) -> SlaCheck {
    let expectation = format!("a version at least every {}", describe(p));
    let every = match duration(p) {
        Ok(d) => d,
        Err(why) => return not_evaluated("frequency", &expectation, &why),
    };
    let mut times: Vec<DateTime<Utc>> = commits.iter().map(|c| c.committed_at).collect();
    if times.is_empty() {
        return not_evaluated("frequency", &expectation, "nothing published yet");
    }
    times.sort();
    times.push(now);
    let (gap, since) = times
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .max_by_key(|(gap, _)| *gap)
        .unwrap_or((Duration::zero(), now));
    check("frequency", expectation, gap, every, || {
        format!(
            "no version for {} after {}",
            human(gap),
            since.format("%Y-%m-%d %H:%M UTC")
        )
    })
}

/// The age of the newest version against one period (plus the latency).
fn freshness(commits: &[&Commit], allowed: Duration, now: DateTime<Utc>) -> SlaCheck {
    let expectation = format!("newest version at most {} old", human(allowed));
    let Some(newest) = commits.iter().map(|c| c.committed_at).max() else {
        return not_evaluated("freshness", &expectation, "nothing published yet");
    };
    let age = now - newest;
    check("freshness", expectation, age, allowed, || {
        format!(
            "the newest version is from {}",
            newest.format("%Y-%m-%d %H:%M UTC")
        )
    })
}

/// `HH:MM` with an optional UTC offset (`09:00-08:00`, `06:00Z`, `06:00+01:00`).
fn time_of_day(value: &str) -> Option<(NaiveTime, FixedOffset)> {
    let value = value.trim();
    let (time, offset) = if let Some(t) = value.strip_suffix('Z') {
        (t, FixedOffset::east_opt(0)?)
    } else if value.len() > 5 && matches!(value.as_bytes()[5], b'+' | b'-') {
        let (t, o) = value.split_at(5);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (h, m) = o[1..].split_once(':').unwrap_or((&o[1..], "0"));
        let seconds = sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60);
        (t, FixedOffset::east_opt(seconds)?)
    } else {
        (value, FixedOffset::east_opt(0)?)
    };
    let time = NaiveTime::parse_from_str(time, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M:%S"))
        .ok()?;
    Some((time, offset))
}

/// Days (of the last 30 since the first version, up to the last one whose deadline passed)
/// without a version before that day's deadline.
fn availability(commits: &[&Commit], p: &SlaProperty, now: DateTime<Utc>) -> SlaCheck {
    let value = p.value.as_str().unwrap_or_default();
    let expectation = format!("a version each day by {value}");
    let Some((time, offset)) = time_of_day(value) else {
        return not_evaluated(
            "timeOfAvailability",
            &expectation,
            &format!("`{value}` is not HH:MM with an optional UTC offset"),
        );
    };
    let Some(first) = commits.iter().map(|c| c.committed_at).min() else {
        return not_evaluated("timeOfAvailability", &expectation, "nothing published yet");
    };
    let local_now = now.with_timezone(&offset);
    let mut missed = Vec::new();
    let mut checked = 0;
    for back in 0..AVAILABILITY_DAYS {
        let day = local_now.date_naive() - Duration::days(back);
        let Some(deadline) = offset
            .from_local_datetime(&day.and_time(time))
            .single()
            .map(|d| d.with_timezone(&Utc))
        else {
            continue;
        };
        let start = offset
            .from_local_datetime(&day.and_time(NaiveTime::MIN))
            .single()
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(deadline);
        // Only days whose deadline has passed and that the product existed for.
        if deadline > now || deadline < first {
            continue;
        }
        checked += 1;
        let in_time = commits
            .iter()
            .any(|c| c.committed_at >= start && c.committed_at <= deadline);
        if !in_time {
            missed.push(day.to_string());
        }
    }
    if checked == 0 {
        return not_evaluated(
            "timeOfAvailability",
            &expectation,
            "no day's deadline has passed since the first version",
        );
    }
    SlaCheck {
        property: "timeOfAvailability".into(),
        expectation,
        observed: Some(format!("{} of {checked} days late", missed.len())),
        status: if missed.is_empty() {
            SlaStatus::Met
        } else {
            SlaStatus::Breached
        },
        detail: (!missed.is_empty())
            .then(|| format!("no version in time on {}", missed.join(", "))),
    }
}

/// The age of the oldest live version against the retention period.
fn retention(log: &[(String, Commit)], p: &SlaProperty, now: DateTime<Utc>) -> SlaCheck {
    let expectation = format!("nothing older than {} still published", describe(p));
    let keep = match duration(p) {
        Ok(d) => d,
        Err(why) => return not_evaluated("retention", &expectation, &why),
    };
    let live: std::collections::HashSet<String> = publish::live_files(log).into_iter().collect();
    let oldest = log
        .iter()
        .filter(|(_, c)| c.files.iter().any(|f| live.contains(f)))
        .map(|(_, c)| c.committed_at)
        .min();
    match oldest {
        None => not_evaluated("retention", &expectation, "nothing published yet"),
        Some(oldest) => {
            let age = now - oldest;
            check("retention", expectation, age, keep, || {
                format!("a version from {} is still live", oldest.format("%Y-%m-%d"))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sla(property: &str, value: Value, unit: Option<&str>) -> SlaProperty {
        SlaProperty {
            property: property.into(),
            value,
            unit: unit.map(str::to_owned),
            element: None,
            description: None,
        }
    }

    fn commit(at: &str) -> Commit {
        Commit {
            version: at.into(),
            mode: publish::CommitMode::Append,
            files: vec![format!("products/p/{at}.parquet")],
            partitions: Vec::new(),
            rows: 1,
            contract_id: "c".into(),
            contract_version: "1.0.0".into(),
            checks: Default::default(),
            source: "clean/p/x.parquet".into(),
            source_key: None,
            sequencer: None,
            committed_at: at.parse().unwrap(),
        }
    }

    #[test]
    fn durations_read_odcs_units() {
        assert_eq!(
            duration(&sla("latency", 15.into(), Some("m"))).unwrap(),
            Duration::minutes(15)
        );
        assert_eq!(
            duration(&sla("retention", 3.into(), Some("y"))).unwrap(),
            Duration::days(3 * 365)
        );
        assert_eq!(
            duration(&sla("frequency", "1".into(), None)).unwrap(),
            Duration::days(1)
        );
        assert!(duration(&sla("latency", 1.into(), Some("parsecs"))).is_err());
        assert!(duration(&sla("latency", (-1).into(), Some("d"))).is_err());
    }

    #[test]
    fn frequency_and_freshness_see_the_longest_gap_and_the_newest_version() {
        let commits = [
            commit("2024-05-01T06:00:00Z"),
            commit("2024-05-03T06:00:00Z"),
        ];
        let refs: Vec<&Commit> = commits.iter().collect();
        let daily = sla("frequency", 1.into(), Some("d"));
        let now: DateTime<Utc> = "2024-05-03T12:00:00Z".parse().unwrap();
        let f = frequency(&refs, &daily, now);
        assert_eq!(f.status, SlaStatus::Breached);
        assert_eq!(f.observed.as_deref(), Some("2.0 d"));
        assert!(f.detail.unwrap().contains("2024-05-01 06:00"));
        let fresh = freshness(&refs, Duration::days(1), now);
        assert_eq!(
            (fresh.status, fresh.observed.as_deref()),
            (SlaStatus::Met, Some("6.0 h"))
        );
        let later: DateTime<Utc> = "2024-05-05T12:00:00Z".parse().unwrap();
        assert_eq!(
            freshness(&refs, Duration::days(1), later).status,
            SlaStatus::Breached
        );
    }

    #[test]
    fn time_of_availability_counts_late_days_in_its_offset() {
        assert_eq!(
            time_of_day("09:00-08:00"),
            Some((
                NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                FixedOffset::west_opt(8 * 3600).unwrap()
            ))
        );
        // By 09:00 UTC-8 = 17:00 UTC: on time on the 1st, late on the 2nd, nothing on the 3rd.
        let commits = [
            commit("2024-05-01T16:00:00Z"),
            commit("2024-05-02T18:00:00Z"),
        ];
        let refs: Vec<&Commit> = commits.iter().collect();
        let p = sla("timeOfAvailability", "09:00-08:00".into(), None);
        let now: DateTime<Utc> = "2024-05-03T20:00:00Z".parse().unwrap();
        let a = availability(&refs, &p, now);
        assert_eq!(a.status, SlaStatus::Breached);
        assert_eq!(a.observed.as_deref(), Some("2 of 3 days late"));
        assert_eq!(
            a.detail.as_deref(),
            Some("no version in time on 2024-05-03, 2024-05-02")
        );
        let bad = availability(&refs, &sla("timeOfAvailability", "9am".into(), None), now);
        assert_eq!(bad.status, SlaStatus::NotEvaluated);
    }
}
