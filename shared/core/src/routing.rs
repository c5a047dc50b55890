//! Which event triggers which function: defined once, here.
//!
//! The rules are EventBridge event patterns. The infrastructure code writes them into the
//! domain's EventBridge rules; the embedded router evaluates them with [`matches`], the same
//! subset of the pattern language (exact values, `prefix`, `suffix`, `anything-but`, `exists`),
//! so an event goes to the same function in both places.

use serde_json::{Value, json};

use crate::events::{
    BusEvent, CONTRACT_VIOLATED, OBJECT_CREATED, PRODUCT_PUBLISHED, S3_SOURCE, TESSERA_SOURCE,
};
use crate::keys::Zone;
use crate::mesh::{Domain, Mesh};

/// The five functions of a domain pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Function {
    /// Raw files → typed Parquet.
    Ingest,
    /// Typed → cleaned Parquet.
    Clean,
    /// Cleaned data → published product or quarantine.
    ContractCheck,
    /// Published product → aggregate products.
    Aggregate,
    /// Published product → catalog table and partitions.
    CatalogRegister,
}

impl Function {
    /// All functions in pipeline order.
    pub const ALL: [Function; 5] = [
        Function::Ingest,
        Function::Clean,
        Function::ContractCheck,
        Function::Aggregate,
        Function::CatalogRegister,
    ];

    /// Package, binary and Lambda name.
    pub fn name(self) -> &'static str {
        match self {
            Function::Ingest => "ingest",
            Function::Clean => "clean",
            Function::ContractCheck => "contract-check",
            Function::Aggregate => "aggregate",
            Function::CatalogRegister => "catalog-register",
        }
    }
}

/// A routing rule: an event pattern and the function it invokes.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule name (suffix of the EventBridge rule name).
    pub name: &'static str,
    /// EventBridge event pattern.
    pub pattern: Value,
    /// Function invoked.
    pub target: Function,
}

fn object_created_under(zone: Zone) -> Value {
    json!({
        // S3's own events, and the reconciler's re-drives of objects whose event was lost.
        "source": [S3_SOURCE, crate::reconcile::RECONCILE_SOURCE],
        "detail-type": [OBJECT_CREATED],
        "detail": { "object": { "key": [{ "prefix": zone.prefix() }] } }
    })
}

/// The rules of a domain pipeline. Zones are separate prefixes, so no function is triggered by
/// its own output.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "raw-to-ingest",
            pattern: object_created_under(Zone::Raw),
            target: Function::Ingest,
        },
        Rule {
            name: "staged-to-clean",
            pattern: object_created_under(Zone::Staged),
            target: Function::Clean,
        },
        Rule {
            name: "clean-to-contract-check",
            pattern: object_created_under(Zone::Clean),
            target: Function::ContractCheck,
        },
        Rule {
            name: "published-to-aggregate",
            // Every publication, an aggregate's too (an aggregation may read an entity or
            // another aggregate; the mesh refuses cycles).
            pattern: json!({
                "source": [TESSERA_SOURCE],
                "detail-type": [PRODUCT_PUBLISHED],
            }),
            target: Function::Aggregate,
        },
        Rule {
            name: "violated-to-catalog-register",
            pattern: json!({ "source": [TESSERA_SOURCE], "detail-type": [CONTRACT_VIOLATED] }),
            target: Function::CatalogRegister,
        },
        Rule {
            name: "published-to-catalog-register",
            pattern: json!({ "source": [TESSERA_SOURCE], "detail-type": [PRODUCT_PUBLISHED] }),
            target: Function::CatalogRegister,
        },
    ]
}

impl Rule {
    /// The rule's pattern narrowed to one domain: S3 events of its bucket, product events of its
    /// products. This is what a domain's EventBridge rule is given.
    pub fn domain_pattern(&self, domain: &str, bucket: &str) -> Value {
        let mut pattern = self.pattern.clone();
        let is_s3 = pattern["source"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == S3_SOURCE));
        if let Some(detail) = pattern
            .as_object_mut()
            .map(|p| p.entry("detail").or_insert_with(|| json!({})))
        {
            if is_s3 {
                detail["bucket"] = json!({ "name": [bucket] });
            } else {
                detail["domain"] = json!([domain]);
                detail["bucket"] = json!([bucket]);
            }
        }
        pattern
    }

    /// The rule's pattern for one domain of a mesh: [`Rule::domain_pattern`], and for the
    /// aggregate function also the product events of the other domains its aggregations read.
    pub fn pattern_for(&self, mesh: &Mesh, domain: &Domain) -> Value {
        let mut pattern = self.domain_pattern(&domain.name, &domain.bucket);
        if self.target != Function::Aggregate {
            return pattern;
        }
        let mut upstream: Vec<&Domain> = domain
            .products
            .iter()
            .flat_map(|p| p.inputs())
            .filter(|i| i.domain != domain.name)
            .filter_map(|i| mesh.domain(&i.domain))
            .collect();
        upstream.sort_by(|a, b| a.name.cmp(&b.name));
        upstream.dedup_by(|a, b| a.name == b.name);
        for d in upstream {
            for (field, value) in [("domain", &d.name), ("bucket", &d.bucket)] {
                if let Some(values) = pattern["detail"][field].as_array_mut() {
                    values.push(json!(value));
                }
            }
        }
        pattern
    }

    /// Whether the rule listens to S3's events (the account's default bus) rather than
    /// Tessera's product events (the mesh's custom bus).
    pub fn on_default_bus(&self) -> bool {
        self.pattern["source"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == S3_SOURCE))
    }
}

/// The functions an event goes to.
pub fn targets(event: &BusEvent) -> Vec<Function> {
    let value = event.to_json();
    rules()
        .into_iter()
        .filter(|r| matches(&r.pattern, &value))
        .map(|r| r.target)
        .collect()
}

/// Whether `event` matches the EventBridge `pattern`.
pub fn matches(pattern: &Value, event: &Value) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(name, expected)| {
        let actual = event.get(name);
        match expected {
            Value::Object(_) => actual.is_some_and(|a| matches(expected, a)),
            Value::Array(alternatives) => alternatives.iter().any(|alt| matches_value(alt, actual)),
            _ => false,
        }
    })
}

fn matches_value(alt: &Value, actual: Option<&Value>) -> bool {
    // An array field matches when any of its elements does.
    if let Some(Value::Array(items)) = actual {
        return items.iter().any(|i| matches_value(alt, Some(i)));
    }
    match alt {
        Value::Object(op) => op.iter().all(|(name, arg)| match (name.as_str(), actual) {
            ("exists", a) => arg.as_bool() == Some(a.is_some()),
            ("prefix", Some(Value::String(s))) => arg.as_str().is_some_and(|p| s.starts_with(p)),
            ("suffix", Some(Value::String(s))) => arg.as_str().is_some_and(|p| s.ends_with(p)),
            ("anything-but", Some(a)) => match arg {
                Value::Array(list) => !list.contains(a),
                other => other != a,
            },
            _ => false,
        }),
        literal => actual == Some(literal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ObjectCreated;

    fn check(pattern: Value, event: Value, expected: bool) {
        assert_eq!(matches(&pattern, &event), expected, "{pattern} on {event}");
    }

    #[test]
    fn pattern_language_subset() {
        let e = json!({"source": "aws.s3", "detail": {"object": {"key": "raw/o/x.csv", "size": 3}, "tags": ["a", "b"]}});
        check(json!({"source": ["aws.s3"]}), e.clone(), true);
        check(json!({"source": ["tessera"]}), e.clone(), false);
        check(
            json!({"detail": {"object": {"key": [{"prefix": "raw/"}]}}}),
            e.clone(),
            true,
        );
        check(
            json!({"detail": {"object": {"key": [{"prefix": "clean/"}]}}}),
            e.clone(),
            false,
        );
        check(
            json!({"detail": {"object": {"key": [{"suffix": ".csv"}]}}}),
            e.clone(),
            true,
        );
        check(
            json!({"detail": {"object": {"size": [3]}}}),
            e.clone(),
            true,
        );
        check(
            json!({"detail": {"object": {"etag": [{"exists": false}]}}}),
            e.clone(),
            true,
        );
        check(
            json!({"detail": {"object": {"etag": [{"exists": true}]}}}),
            e.clone(),
            false,
        );
        check(
            json!({"source": [{"anything-but": ["tessera"]}]}),
            e.clone(),
            true,
        );
        check(json!({"detail": {"tags": ["b"]}}), e.clone(), true);
        check(json!({"detail": {"missing": {"x": ["y"]}}}), e, false);
    }

    #[test]
    fn domain_patterns_only_match_their_own_domain() {
        for rule in rules() {
            let pattern = rule.domain_pattern("sales", "b-sales");
            let (ours, theirs) = if rule.on_default_bus() {
                let prefix = rule.pattern["detail"]["object"]["key"][0]["prefix"]
                    .as_str()
                    .unwrap();
                let key = format!("{prefix}orders/a");
                (
                    ObjectCreated::event("b-sales", &key, 1, None),
                    ObjectCreated::event("b-other", &key, 1, None),
                )
            } else {
                let detail_type = rule.pattern["detail-type"][0].as_str().unwrap();
                let detail = |domain: &str| json!({"domain": domain, "bucket": "b-sales"});
                (
                    BusEvent::new(TESSERA_SOURCE, detail_type, detail("sales")),
                    BusEvent::new(TESSERA_SOURCE, detail_type, detail("finance")),
                )
            };
            assert!(
                matches(&pattern, &ours.to_json()),
                "{}: {pattern}",
                rule.name
            );
            assert!(
                !matches(&pattern, &theirs.to_json()),
                "{}: {pattern}",
                rule.name
            );
        }
    }

    #[test]
    fn each_zone_goes_to_its_stage_only() {
        for (key, expected) in [
            ("raw/orders/a.csv", vec![Function::Ingest]),
            ("staged/orders/a.parquet", vec![Function::Clean]),
            ("clean/orders/a.parquet", vec![Function::ContractCheck]),
            ("products/orders/_commits/1.json", vec![]),
            ("quarantine/orders/ingest/a.ndjson", vec![]),
            ("runs/orders/ingest/a.json", vec![]),
        ] {
            assert_eq!(
                targets(&ObjectCreated::event("b", key, 1, None)),
                expected,
                "{key}"
            );
        }
    }
}
