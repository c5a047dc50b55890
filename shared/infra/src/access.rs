//! Least privilege, per function: what each stage reads and writes in its domain's bucket, and
//! the IAM statements that allow exactly that.
//!
//! | function | reads | writes | deletes | also |
//! |---|---|---|---|---|
//! | ingest | `raw/*`, `runs/*` | `staged/*`, `quarantine/*`, `runs/*` | attempt counts | `PutEvents` (`InputFailed`) |
//! | clean | `staged/*`, `runs/*` | `clean/*`, `quarantine/*`, `runs/*` | attempt counts | `PutEvents` (`InputFailed`) |
//! | contract-check | `clean/*`, `runs/*`, its products' commit logs | its products, `quarantine/*`, `runs/*` | attempt counts, its products' files | `PutEvents` |
//! | aggregate | its inputs (the parents), its aggregations' commit logs | its aggregations, `quarantine/*`, `runs/*` | its aggregations' files | `PutEvents` |
//! | catalog-register | its products' commit logs, its source products' clean and ingest run records | `quarantine/*`, `runs/*` | | the domain's Glue database; `PutEvents` (`SlaBreached`) |
//!
//! Every function also writes its own log group, sends to its own failure queue, puts X-Ray
//! traces, and uses the domain's key. `products/` is narrowed to the products a stage publishes
//! or reads, named from the mesh.
//!
//! The zone stages read `runs/*` (run records, attempt counts, the sequencers of raw keys: no
//! data) to make deliveries exactly once in effect ([`tessera_core::delivery`]); they list it too,
//! since S3 answers a read of a missing object with 403 to a caller that may not list. Deletes
//! are what moving and superseding files takes: a product version's files move from its pending
//! folder into their partitions (on S3 a copy and a delete), a failed delivery's pending files
//! and superseded versions' files are removed, and a finished input's attempt count
//! (`runs/<product>/_attempts/*`).
//!
//! catalog-register's reads are for the scheduled service-level check
//! ([`tessera_core::sla::scheduled_check`]): it reads every product's commit log
//! (`products/<p>/_commits/`), and for the latency of a source product follows each version back
//! through the run records of clean and ingest (`runs/<p>/clean/`, `runs/<p>/ingest/`); it writes
//! its own run record per product under `runs/<p>/sla-check/` (within `runs/*`). It does not
//! read `raw/`: the check only asks S3 for a raw object's time (`HeadObject`), but IAM has no
//! action for that alone, and `s3:GetObject` on `raw/` would let the function read the one zone
//! holding personal data unmasked. Denied, the check takes the time ingest started on the file
//! instead, which is later than the landing by EventBridge's delivery (and by its retries
//! when ingest failed first): latency is then measured from ingest's start.

use serde_json::{Value, json};
use tessera_core::events::{CONTRACT_VIOLATED, INPUT_FAILED, PRODUCT_PUBLISHED, TESSERA_SOURCE};
use tessera_core::keys::Zone;
use tessera_core::mesh::{Domain, Engine, Mesh, ProductKind};
use tessera_core::publish::{commits_prefix, product_prefix};
use tessera_core::routing::Function;
use tessera_core::sla::SLA_BREACHED;

use crate::cfn::{Statement, glue_arn, import, s3_arn, sub};
use crate::names::{domain_export, platform_export};
use crate::{Error, Result};

/// Actions that read an object (`GetObject` also allows `HeadObject`).
pub const READ_ACTIONS: [&str; 1] = ["s3:GetObject"];
/// Actions that write an object: single and multipart uploads, and aborting a multipart upload.
pub const WRITE_ACTIONS: [&str; 2] = ["s3:PutObject", "s3:AbortMultipartUpload"];
/// The action that deletes an object.
pub const DELETE_ACTIONS: [&str; 1] = ["s3:DeleteObject"];
/// The Glue actions catalog-register uses.
pub const GLUE_ACTIONS: [&str; 7] = [
    "glue:GetDatabase",
    "glue:CreateDatabase",
    "glue:GetTable",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:GetPartitions",
    "glue:BatchCreatePartition",
];
/// X-Ray actions: they take no resource-level permissions, so `*` is their only resource.
pub const XRAY_ACTIONS: [&str; 2] = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

/// A product, named by its domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProductRef {
    /// Domain.
    pub domain: String,
    /// Product.
    pub product: String,
}

/// The products a domain's aggregations read through their input ports: the parent, and the
/// declared inputs, of this domain or others. An input of another domain is listed with that
/// domain's name: the aggregate function then reads it where its owner publishes it
/// ([`Access::foreign_reads`]), read-only, with the owner's key.
pub fn aggregation_inputs(domain: &Domain) -> Vec<ProductRef> {
    ports(domain.products.iter())
}

/// The products read through the input ports of `products`, sorted, once each.
fn ports<'a>(products: impl Iterator<Item = &'a tessera_core::mesh::Product>) -> Vec<ProductRef> {
    let mut inputs: Vec<ProductRef> = products
        .flat_map(|p| p.inputs())
        .map(|i| ProductRef {
            domain: i.domain,
            product: i.product,
        })
        .collect();
    inputs.sort();
    inputs.dedup();
    inputs
}

/// What one function may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The function.
    pub function: Function,
    /// Object-key patterns it reads in its domain's bucket.
    pub reads: Vec<String>,
    /// Object-key patterns it writes in its domain's bucket.
    pub writes: Vec<String>,
    /// Prefixes it lists in its domain's bucket (`s3:prefix` patterns).
    pub lists: Vec<String>,
    /// Object-key patterns it deletes in its domain's bucket.
    pub deletes: Vec<String>,
    /// Detail types of the events it sends to the mesh's bus (always with source `tessera`).
    pub events: Vec<&'static str>,
    /// Whether it writes the domain's catalog database.
    pub catalog: bool,
    /// Products of other domains it reads.
    pub foreign_reads: Vec<ProductRef>,
    /// Catalog tables Athena reads on its behalf (aggregations with `engine = "athena"`).
    pub pushdown: Vec<ProductRef>,
}

/// The Glue actions Athena needs on the tables a pushed-down query reads.
pub const ATHENA_GLUE_ACTIONS: [&str; 5] = [
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
];

/// The tables Athena reads for a domain's aggregations with `engine = "athena"`: every input port
/// of those aggregations.
pub fn pushdown_inputs(domain: &Domain) -> Vec<ProductRef> {
    let names = pushed_down(domain);
    ports(
        domain
            .products
            .iter()
            .filter(|p| names.contains(&p.name.as_str())),
    )
}

/// A domain's aggregations pushed down to Athena.
fn pushed_down(domain: &Domain) -> Vec<&str> {
    domain
        .products
        .iter()
        .filter(|p| {
            matches!(
                p.kind,
                ProductKind::Aggregate {
                    engine: Engine::Athena,
                    ..
                }
            )
        })
        .map(|p| p.name.as_str())
        .collect()
}

fn zone(z: Zone) -> String {
    format!("{}*", z.prefix())
}

fn objects(product: &str) -> String {
    format!("{}*", product_prefix(product))
}

fn pending(product: &str) -> String {
    format!("{}_pending/*", product_prefix(product))
}

/// Attempt counts of the zone stages ([`tessera_core::delivery::attempts_key`]).
fn attempt_counts() -> String {
    format!("{}*/_attempts/*", Zone::Runs.prefix())
}

fn commit_log(product: &str) -> String {
    format!("{}*", commits_prefix(product))
}

/// A product's run records of one stage (`runs/<product>/<stage>/*`: stages record under their
/// function's name).
fn run_records(product: &str, stage: Function) -> String {
    format!("{}{product}/{}/*", Zone::Runs.prefix(), stage.name())
}

/// What `function` of `domain` may do, given the products its aggregations read.
pub fn access(domain: &Domain, function: Function, inputs: &[ProductRef]) -> Access {
    let sources: Vec<&str> = domain
        .products
        .iter()
        .filter(|p| matches!(p.kind, ProductKind::Source { .. }))
        .map(|p| p.name.as_str())
        .collect();
    let aggregates: Vec<&str> = domain
        .products
        .iter()
        .filter(|p| matches!(p.kind, ProductKind::Aggregate { .. }))
        .map(|p| p.name.as_str())
        .collect();
    let local: Vec<&str> = inputs
        .iter()
        .filter(|i| i.domain == domain.name)
        .map(|i| i.product.as_str())
        .collect();
    let records = [zone(Zone::Quarantine), zone(Zone::Runs)];
    let mut a = Access {
        function,
        reads: vec![],
        writes: vec![],
        lists: vec![],
        deletes: vec![],
        events: vec![],
        catalog: false,
        foreign_reads: vec![],
        pushdown: vec![],
    };
    match function {
        Function::Ingest => {
            a.reads.push(zone(Zone::Raw));
            a.writes.push(zone(Zone::Staged));
        }
        Function::Clean => {
            a.reads.push(zone(Zone::Staged));
            a.writes.push(zone(Zone::Clean));
        }
        Function::ContractCheck => {
            a.reads.push(zone(Zone::Clean));
            a.reads.extend(sources.iter().map(|p| commit_log(p)));
            a.lists.extend(sources.iter().map(|p| commit_log(p)));
            a.lists.extend(sources.iter().map(|p| pending(p)));
            a.writes.extend(sources.iter().map(|p| objects(p)));
            a.deletes.extend(sources.iter().map(|p| objects(p)));
            a.events = vec![PRODUCT_PUBLISHED, CONTRACT_VIOLATED];
        }
        Function::Aggregate => {
            a.reads.extend(local.iter().map(|p| objects(p)));
            a.lists.extend(local.iter().map(|p| commit_log(p)));
            a.reads.extend(aggregates.iter().map(|p| commit_log(p)));
            a.lists.extend(aggregates.iter().map(|p| commit_log(p)));
            a.writes.extend(aggregates.iter().map(|p| objects(p)));
            a.lists.extend(aggregates.iter().map(|p| pending(p)));
            a.deletes.extend(aggregates.iter().map(|p| objects(p)));
            a.foreign_reads = inputs
                .iter()
                .filter(|i| i.domain != domain.name)
                .cloned()
                .collect();
            // A push-down: Athena unloads into the product's `_athena/` folder (within its
            // objects), and the stage lists and reads the files back.
            for p in pushed_down(domain) {
                let staging = format!("{}_athena/*", product_prefix(p));
                a.reads.push(staging.clone());
                a.lists.push(staging);
            }
            a.pushdown = pushdown_inputs(domain);
            a.events = vec![PRODUCT_PUBLISHED, CONTRACT_VIOLATED];
        }
        Function::CatalogRegister => {
            a.catalog = true;
            // The scheduled service-level check: every product's commit log (an aggregation's
            // versions point at its parent's commits, a product of the domain too), and for a
            // source product the records of clean and ingest that lead back to its raw file.
            for p in &domain.products {
                a.reads.push(commit_log(&p.name));
                a.lists.push(commit_log(&p.name));
            }
            for p in &sources {
                for stage in [Function::Clean, Function::Ingest] {
                    a.reads.push(run_records(p, stage));
                    a.lists.push(run_records(p, stage));
                }
            }
            a.events = vec![SLA_BREACHED];
        }
    }
    a.writes.extend(records);
    if matches!(
        function,
        Function::Ingest | Function::Clean | Function::ContractCheck
    ) {
        // Exactly once in effect: run records, attempt counts, sequencers of raw keys.
        a.reads.push(zone(Zone::Runs));
        a.lists.push(zone(Zone::Runs));
        a.deletes.push(attempt_counts());
        a.events.push(INPUT_FAILED);
    }
    for list in [&mut a.reads, &mut a.writes, &mut a.lists, &mut a.deletes] {
        list.sort();
        list.dedup();
    }
    a
}

/// What the statements of a function's policy point at.
#[derive(Debug, Clone)]
pub struct Targets<'a> {
    /// The mesh (for the buckets and exports of other domains).
    pub mesh: &'a Mesh,
    /// The function's domain.
    pub domain: &'a Domain,
    /// ARN of the function's log group (`...:log-group:<name>:*`).
    pub log_group_arn: Value,
    /// ARN of the function's failure queue.
    pub failure_queue_arn: Value,
    /// ARN of the domain's key.
    pub domain_key_arn: Value,
    /// ARN of the mesh's product bus.
    pub bus_arn: Value,
    /// ARN of the key encrypting the Glue Data Catalog.
    pub catalog_key_arn: Value,
}

impl Access {
    /// The statements of the function's policy.
    pub fn statements(&self, t: &Targets<'_>) -> Result<Vec<Statement>> {
        let bucket = &t.domain.bucket;
        let mut s = vec![
            Statement::allow(
                "WriteOwnLogs",
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                vec![t.log_group_arn.clone()],
            ),
            Statement::allow("PutTraces", &XRAY_ACTIONS, vec![json!("*")]),
            Statement::allow(
                "SendToOwnFailureQueue",
                &["sqs:SendMessage"],
                vec![t.failure_queue_arn.clone()],
            ),
            Statement::allow(
                "UseDomainKey",
                &["kms:Decrypt", "kms:GenerateDataKey"],
                vec![t.domain_key_arn.clone()],
            ),
        ];
        if !self.reads.is_empty() {
            s.push(Statement::allow(
                "ReadInputs",
                &READ_ACTIONS,
                self.reads.iter().map(|p| s3_arn(bucket, Some(p))).collect(),
            ));
        }
        if !self.lists.is_empty() {
            s.push(
                Statement::allow("ListInputs", &["s3:ListBucket"], vec![s3_arn(bucket, None)])
                    .when(json!({ "StringLike": { "s3:prefix": self.lists } })),
            );
        }
        if !self.writes.is_empty() {
            s.push(Statement::allow(
                "WriteOutputs",
                &WRITE_ACTIONS,
                self.writes
                    .iter()
                    .map(|p| s3_arn(bucket, Some(p)))
                    .collect(),
            ));
        }
        if !self.deletes.is_empty() {
            s.push(Statement::allow(
                "DeleteMovedAndSupersededFiles",
                &DELETE_ACTIONS,
                self.deletes
                    .iter()
                    .map(|p| s3_arn(bucket, Some(p)))
                    .collect(),
            ));
        }
        if !self.events.is_empty() {
            s.push(
                Statement::allow(
                    "PublishProductEvents",
                    &["events:PutEvents"],
                    vec![t.bus_arn.clone()],
                )
                .when(json!({
                    "StringEquals": {
                        "events:source": [TESSERA_SOURCE],
                        "events:detail-type": self.events,
                    }
                })),
            );
        }
        if self.catalog {
            let db = &t.domain.database;
            s.push(Statement::allow(
                "RegisterTables",
                &GLUE_ACTIONS,
                vec![
                    glue_arn("catalog"),
                    glue_arn(&format!("database/{db}")),
                    glue_arn(&format!("table/{db}/*")),
                ],
            ));
            // The Data Catalog is encrypted (platform stack): Glue uses the key on the caller's
            // behalf when it reads or writes metadata.
            s.push(
                Statement::allow(
                    "UseCatalogKeyThroughGlue",
                    &["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                    vec![t.catalog_key_arn.clone()],
                )
                .when(json!({
                    "StringEquals": { "kms:ViaService": sub("glue.${AWS::Region}.amazonaws.com") }
                })),
            );
        }
        if !self.foreign_reads.is_empty() {
            s.extend(self.foreign_statements(t)?);
        }
        if !self.pushdown.is_empty() {
            s.extend(self.pushdown_statements(t)?);
        }
        Ok(s)
    }

    /// Running pushed-down aggregations in the mesh's Athena workgroup: the workgroup, the
    /// catalog tables the queries read, and the workgroup's results bucket and key (Athena writes
    /// a manifest there with the caller's credentials). The inputs' objects and the `_athena/`
    /// staging folder are in the read and write statements already.
    fn pushdown_statements(&self, t: &Targets<'_>) -> Result<Vec<Statement>> {
        let mesh = &t.mesh.name;
        let workgroup = json!({ "Fn::Sub": [
            "arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:workgroup/${WorkGroup}",
            { "WorkGroup": import(&platform_export(mesh, "athena-workgroup")) },
        ]});
        let results = |pattern: &str| {
            json!({ "Fn::Sub": [
                format!("arn:${{AWS::Partition}}:s3:::${{Bucket}}{pattern}"),
                { "Bucket": import(&platform_export(mesh, "athena-results-bucket")) },
            ]})
        };
        let mut tables = vec![glue_arn("catalog")];
        for input in &self.pushdown {
            let owner = t.mesh.domain(&input.domain).ok_or_else(|| {
                Error::Config(format!(
                    "an aggregation of `{}` reads `{}.{}`, but the mesh has no domain `{}`",
                    t.domain.name, input.domain, input.product, input.domain
                ))
            })?;
            let database = glue_arn(&format!("database/{}", owner.database));
            if !tables.contains(&database) {
                tables.push(database);
            }
            tables.push(glue_arn(&format!(
                "table/{}/{}",
                owner.database, input.product
            )));
        }
        Ok(vec![
            Statement::allow(
                "RunAggregationsInAthena",
                &[
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:StopQueryExecution",
                ],
                vec![workgroup],
            ),
            Statement::allow("ReadTablesThroughAthena", &ATHENA_GLUE_ACTIONS, tables),
            Statement::allow(
                "WriteAthenaResults",
                &["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                vec![results("/*")],
            ),
            Statement::allow(
                "ListAthenaResults",
                &["s3:GetBucketLocation", "s3:ListBucket"],
                vec![results("")],
            ),
            Statement::allow(
                "LocateDomainBucket",
                &["s3:GetBucketLocation"],
                vec![s3_arn(&t.domain.bucket, None)],
            ),
            // The platform key encrypts both the results and the Data Catalog Athena reads.
            Statement::allow(
                "UsePlatformKeyThroughS3AndGlue",
                &["kms:Decrypt", "kms:GenerateDataKey"],
                vec![t.catalog_key_arn.clone()],
            )
            .when(json!({
                "StringEquals": { "kms:ViaService": [
                    sub("s3.${AWS::Region}.amazonaws.com"),
                    sub("glue.${AWS::Region}.amazonaws.com"),
                ] }
            })),
        ])
    }

    /// Read-only access to other domains' products: their objects, their commit logs, their
    /// keys through S3.
    fn foreign_statements(&self, t: &Targets<'_>) -> Result<Vec<Statement>> {
        let mut objects_read = Vec::new();
        let mut s = Vec::new();
        let mut keys = Vec::new();
        for input in &self.foreign_reads {
            let owner = t.mesh.domain(&input.domain).ok_or_else(|| {
                Error::Config(format!(
                    "an aggregation of `{}` reads `{}.{}`, but the mesh has no domain `{}`",
                    t.domain.name, input.domain, input.product, input.domain
                ))
            })?;
            objects_read.push(s3_arn(&owner.bucket, Some(&objects(&input.product))));
            s.push(
                Statement::allow(
                    &format!("ListCommitsOf{}", crate::names::pascal(&owner.name)),
                    &["s3:ListBucket"],
                    vec![s3_arn(&owner.bucket, None)],
                )
                .when(json!({ "StringLike": { "s3:prefix": [commit_log(&input.product)] } })),
            );
            let key = import(&domain_export(&t.mesh.name, &owner.name, "key-arn"));
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        s.insert(
            0,
            Statement::allow("ReadOtherDomainsProducts", &READ_ACTIONS, objects_read),
        );
        s.push(
            Statement::allow("DecryptOtherDomainsProducts", &["kms:Decrypt"], keys).when(json!({
                "StringEquals": { "kms:ViaService": sub("s3.${AWS::Region}.amazonaws.com") }
            })),
        );
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;

    /// Placeholder ARNs for a domain's statements.
    fn targets<'a>(mesh: &'a Mesh, domain: &'a Domain) -> Targets<'a> {
        Targets {
            mesh,
            domain,
            log_group_arn: json!("lg"),
            failure_queue_arn: json!("q"),
            domain_key_arn: json!("k"),
            bus_arn: json!("b"),
            catalog_key_arn: json!("c"),
        }
    }

    #[test]
    fn each_stage_reads_its_zone_and_writes_the_next() {
        let mesh = sample();
        let sales = mesh.domain("sales").unwrap();
        let inputs = aggregation_inputs(sales);
        // `segment_revenue` reads the customers domain's product through an input port.
        assert_eq!(
            inputs,
            vec![
                ProductRef {
                    domain: "customers".into(),
                    product: "customers".into()
                },
                ProductRef {
                    domain: "sales".into(),
                    product: "orders".into()
                }
            ]
        );
        let a = access(sales, Function::Ingest, &inputs);
        assert_eq!(a.reads, ["raw/*", "runs/*"]);
        assert_eq!(a.writes, ["quarantine/*", "runs/*", "staged/*"]);
        assert_eq!(a.deletes, ["runs/*/_attempts/*"]);
        assert_eq!(a.events, [INPUT_FAILED]);
        let a = access(sales, Function::ContractCheck, &inputs);
        assert_eq!(
            a.reads,
            [
                "clean/*",
                "products/order_events/_commits/*",
                "products/orders/_commits/*",
                "runs/*"
            ]
        );
        assert_eq!(
            a.deletes,
            [
                "products/order_events/*",
                "products/orders/*",
                "runs/*/_attempts/*"
            ]
        );
        assert_eq!(
            a.writes,
            [
                "products/order_events/*",
                "products/orders/*",
                "quarantine/*",
                "runs/*"
            ]
        );
        assert_eq!(
            a.events,
            [PRODUCT_PUBLISHED, CONTRACT_VIOLATED, INPUT_FAILED]
        );
        assert!(!a.catalog);
        let a = access(sales, Function::Aggregate, &inputs);
        assert_eq!(
            a.reads,
            [
                "products/daily_revenue/_commits/*",
                "products/orders/*",
                "products/segment_revenue/_commits/*"
            ]
        );
        assert_eq!(
            a.writes,
            [
                "products/daily_revenue/*",
                "products/segment_revenue/*",
                "quarantine/*",
                "runs/*"
            ]
        );
        assert_eq!(a.foreign_reads, &inputs[..1]);
        let a = access(sales, Function::CatalogRegister, &inputs);
        assert!(a.catalog);
        assert_eq!(a.writes, ["quarantine/*", "runs/*"]);
        assert!(a.deletes.is_empty());
        assert_eq!(a.events, [SLA_BREACHED]);
    }

    #[test]
    fn a_push_down_may_run_in_the_workgroup_and_read_its_input_tables_only() {
        let text = std::fs::read_to_string(crate::tests::repo_root().join("samplecli.toml"))
            .unwrap()
            .replace(
                "name = \"segment_revenue\"\n",
                "name = \"segment_revenue\"\nengine = \"athena\"\n",
            );
        let mesh = Mesh::from_toml(&text, "samplecli.toml", &crate::tests::repo_root()).unwrap();
        let sales = mesh.domain("sales").unwrap();
        let a = access(sales, Function::Aggregate, &aggregation_inputs(sales));
        assert_eq!(
            a.pushdown,
            [
                ProductRef {
                    domain: "customers".into(),
                    product: "customers".into()
                },
                ProductRef {
                    domain: "sales".into(),
                    product: "orders".into()
                }
            ]
        );
        assert!(
            a.reads
                .contains(&"products/segment_revenue/_athena/*".to_owned())
        );
        assert!(
            a.lists
                .contains(&"products/segment_revenue/_athena/*".to_owned())
        );
        let targets = targets(&mesh, sales);
        let statements = a.statements(&targets).unwrap();
        let by_sid = |sid: &str| {
            statements
                .iter()
                .find(|s| s.sid == sid)
                .map(Statement::to_json)
                .unwrap_or_else(|| panic!("no {sid}"))
        };
        let glue = by_sid("ReadTablesThroughAthena");
        let tables = serde_json::to_string(&glue["Resource"]).unwrap();
        assert!(tables.contains("table/customers/customers"), "{tables}");
        assert!(tables.contains("table/sales/orders"), "{tables}");
        assert!(!tables.contains('*'), "{tables}");
        assert!(
            !serde_json::to_string(&glue["Action"])
                .unwrap()
                .contains("Create")
        );
        let run = by_sid("RunAggregationsInAthena").to_string();
        assert!(
            run.contains("tessera-sample-platform-athena-workgroup"),
            "{run}"
        );
        // Without a push-down, none of it.
        let sample = sample();
        let sales = sample.domain("sales").unwrap();
        let a = access(sales, Function::Aggregate, &aggregation_inputs(sales));
        assert!(a.pushdown.is_empty());
        assert!(!a.reads.iter().any(|r| r.contains("_athena")));
    }

    #[test]
    fn catalog_register_reads_what_the_service_level_check_reads() {
        let mesh = sample();
        let sales = mesh.domain("sales").unwrap();
        let a = access(sales, Function::CatalogRegister, &aggregation_inputs(sales));
        let expected = [
            "products/daily_revenue/_commits/*",
            "products/order_events/_commits/*",
            "products/orders/_commits/*",
            "products/segment_revenue/_commits/*",
            "runs/order_events/clean/*",
            "runs/order_events/ingest/*",
            "runs/orders/clean/*",
            "runs/orders/ingest/*",
        ];
        // The prefixes the check lists are exactly those it reads (`runs::history`,
        // `publish::commits`); never a product's data, a raw file or another stage's records.
        assert_eq!(a.reads, expected);
        assert_eq!(a.lists, expected);
        assert_eq!(
            commit_log("orders"),
            format!("{}*", tessera_core::publish::commits_prefix("orders"))
        );
        assert!(
            tessera_core::keys::run_key("orders", "clean", "r")
                .starts_with(run_records("orders", Function::Clean).trim_end_matches('*'))
        );
        let customers = mesh.domain("customers").unwrap();
        let a = access(customers, Function::CatalogRegister, &[]);
        assert_eq!(
            a.reads,
            [
                "products/customer_changes/_commits/*",
                "products/customer_state/_commits/*",
                "products/customers/_commits/*",
                "runs/customer_changes/clean/*",
                "runs/customer_changes/ingest/*",
                "runs/customers/clean/*",
                "runs/customers/ingest/*"
            ]
        );
    }

    #[test]
    fn an_input_of_another_domain_is_read_only_with_its_owners_key() {
        let mesh = sample();
        let sales = mesh.domain("sales").unwrap();
        let mut inputs = aggregation_inputs(sales);
        let a = access(sales, Function::Aggregate, &inputs);
        assert_eq!(a.foreign_reads.len(), 1);
        let targets = targets(&mesh, sales);
        let statements = a.statements(&targets).unwrap();
        let text = serde_json::to_string(
            &statements
                .iter()
                .map(Statement::to_json)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        // Read-only: customers' bucket and key appear only in read, list and decrypt statements.
        for s in &statements {
            let own = serde_json::to_string(&s.to_json()).unwrap();
            if own.contains("tessera-sample-customers") {
                assert!(
                    s.actions
                        .iter()
                        .all(|a| ["s3:GetObject", "s3:ListBucket", "kms:Decrypt"]
                            .contains(&a.as_str())),
                    "{own}"
                );
            }
        }
        assert!(text.contains("s3:::tessera-sample-customers/products/customers/*"));
        assert!(text.contains("tessera-sample-customers-key-arn"));
        // An input of a domain the mesh does not have is refused.
        inputs.push(ProductRef {
            domain: "finance".into(),
            product: "ledger".into(),
        });
        let a = access(sales, Function::Aggregate, &inputs);
        assert!(a.statements(&targets).is_err());
    }
}
