//! Checks of the committed templates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tessera_core::catalog::{Column, hive};
use tessera_core::function::{Trigger, triggers};
use tessera_core::mesh::Mesh;
use tessera_core::publish::product_prefix;
use tessera_core::routing;
use tessera_core::sla::SLA_BREACHED;
use tessera_core::stages::register::table_for;
use tessera_core::storage::s3_url;
use tessera_infra::access::XRAY_ACTIONS;
use tessera_infra::domain::{SLA_CHECK_RULE, SLA_CHECK_SCHEDULE};
use tessera_infra::{Options, Stacks, generated_files, synth};

const REGENERATE: &str =
    "run `cargo run -p tessera-cli -- infra synth --all --out infra/` and commit the result";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mesh() -> Mesh {
    Mesh::load(&root().join("samplecli.toml")).unwrap()
}

/// A committed template: its stack (`platform` or a domain) and its content.
struct Stack {
    name: String,
    domain: Option<String>,
    template: Value,
}

fn committed() -> Vec<Stack> {
    let mesh = mesh();
    let mut stacks = vec![];
    for name in std::iter::once("platform").chain(mesh.domains.iter().map(|d| d.name.as_str())) {
        let path = root().join("infra").join(format!("{name}.template.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", path.display()));
        stacks.push(Stack {
            name: name.to_owned(),
            domain: (name != "platform").then(|| name.to_owned()),
            template: serde_json::from_str(&text).unwrap(),
        });
    }
    stacks
}

fn resources(t: &Value) -> impl Iterator<Item = (&String, &Value)> {
    t["Resources"].as_object().into_iter().flatten()
}

fn of_type<'a>(t: &'a Value, ty: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    resources(t).filter(move |(_, r)| r["Type"] == ty)
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        _ => vec![],
    }
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    }
}

// ---------------------------------------------------------------------------------------------
// Resolving resource references to the names and ARNs they stand for.

/// Turns `Ref`, `Fn::GetAtt`, `Fn::Sub` and `Fn::ImportValue` into the string CloudFormation
/// would produce in account 123456789012 of the mesh's region: enough to match ARNs against each
/// other. What cannot be resolved becomes `unresolved:...`, which matches nothing and fails the
/// checks that need a name.
struct Resolver<'a> {
    stacks: &'a [Stack],
}

impl Resolver<'_> {
    fn stack(&self, name: &str) -> &Stack {
        self.stacks.iter().find(|s| s.name == name).unwrap()
    }

    fn arn(&self, stack: &Stack, id: &str) -> String {
        let r = &stack.template["Resources"][id];
        let p = &r["Properties"];
        let generated = format!("tessera-sample-{}-{}", stack.name, id.to_lowercase());
        let prefix = |service: &str| format!("arn:aws:{service}:{REGION}:{ACCOUNT}");
        match r["Type"].as_str().unwrap_or_default() {
            "AWS::S3::Bucket" => format!(
                "arn:aws:s3:::{}",
                p["BucketName"].as_str().unwrap_or(&generated)
            ),
            "AWS::KMS::Key" => format!("{}:key/{generated}", prefix("kms")),
            "AWS::SQS::Queue" => format!(
                "{}:{}",
                prefix("sqs"),
                p["QueueName"].as_str().unwrap_or(&generated)
            ),
            "AWS::Logs::LogGroup" => format!(
                "{}:log-group:{}:*",
                prefix("logs"),
                p["LogGroupName"].as_str().unwrap_or(&generated)
            ),
            "AWS::Events::EventBus" => format!(
                "{}:event-bus/{}",
                prefix("events"),
                p["Name"].as_str().unwrap_or(&generated)
            ),
            "AWS::Events::Rule" => format!(
                "{}:rule/{}",
                prefix("events"),
                p["Name"].as_str().unwrap_or(&generated)
            ),
            "AWS::IAM::Role" => format!("arn:aws:iam::{ACCOUNT}:role/{generated}"),
            "AWS::Serverless::Function" => format!(
                "{}:function:{}",
                prefix("lambda"),
                p["FunctionName"].as_str().unwrap_or(&generated)
            ),
            _ => format!("unresolved:{id}.Arn"),
        }
    }

    fn reference(&self, stack: &Stack, id: &str) -> String {
        match id {
            "AWS::AccountId" => return ACCOUNT.into(),
            "AWS::Region" => return REGION.into(),
            "AWS::Partition" => return "aws".into(),
            _ => {}
        }
        let r = &stack.template["Resources"][id];
        let p = &r["Properties"];
        let name = match r["Type"].as_str().unwrap_or_default() {
            "AWS::S3::Bucket" => p["BucketName"].as_str(),
            "AWS::Events::EventBus" => p["Name"].as_str(),
            "AWS::Glue::Database" => p["DatabaseInput"]["Name"].as_str(),
            "AWS::SQS::Queue" => p["QueueName"].as_str(),
            "AWS::Logs::LogGroup" => p["LogGroupName"].as_str(),
            _ => None,
        };
        name.map_or_else(|| format!("unresolved:{id}"), str::to_owned)
    }

    fn export(&self, name: &str) -> String {
        for s in self.stacks {
            for output in s.template["Outputs"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, o)| o)
            {
                if output["Export"]["Name"] == name {
                    return self.resolve(s, &output["Value"]);
                }
            }
        }
        format!("unresolved:import:{name}")
    }

    fn resolve(&self, stack: &Stack, v: &Value) -> String {
        if let Some(s) = v.as_str() {
            return s.to_owned();
        }
        if let Some(id) = v["Ref"].as_str() {
            return self.reference(stack, id);
        }
        if let Some([id, attr]) = v["Fn::GetAtt"].as_array().map(Vec::as_slice) {
            let id = id.as_str().unwrap_or_default();
            return if attr == "Arn" {
                self.arn(stack, id)
            } else {
                format!("unresolved:{id}.{attr}")
            };
        }
        if let Some(name) = v["Fn::ImportValue"].as_str() {
            return self.export(name);
        }
        if let Some(text) = v["Fn::Sub"].as_str() {
            let mut out = String::new();
            let mut rest = text;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let end = rest[start..].find('}').unwrap() + start;
                let var = &rest[start + 2..end];
                out.push_str(&match var.split_once('.') {
                    Some((id, "Arn")) => self.arn(stack, id),
                    Some(_) => format!("unresolved:{var}"),
                    None => self.reference(stack, var),
                });
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            return out;
        }
        format!("unresolved:{v}")
    }
}

/// IAM glob matching: `*` any run of characters (slashes too), `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

// ---------------------------------------------------------------------------------------------
// The committed files are what synth generates.

#[test]
fn committed_templates_are_what_synth_generates() {
    let mesh = mesh();
    let artifacts = synth(&mesh, &Options::new("samplecli.toml"), &Stacks::All).unwrap();
    let infra = root().join("infra");
    let mut problems = vec![];
    for a in &artifacts {
        match std::fs::read(infra.join(&a.path)) {
            Ok(bytes) if bytes == a.contents => {}
            Ok(_) => problems.push(format!("infra/{} differs", a.path.display())),
            Err(e) => problems.push(format!("infra/{}: {e}", a.path.display())),
        }
    }
    let expected: Vec<PathBuf> = artifacts.iter().map(|a| a.path.clone()).collect();
    for f in generated_files(&infra).unwrap() {
        if !expected.contains(&f) {
            problems.push(format!("infra/{} is not generated any more", f.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "the committed infrastructure is not what the mesh generates:\n  {}\n{REGENERATE}",
        problems.join("\n  ")
    );
}

#[test]
fn synth_is_deterministic() {
    let mesh = mesh();
    let a = synth(&mesh, &Options::new("samplecli.toml"), &Stacks::All).unwrap();
    let b = synth(&mesh, &Options::new("samplecli.toml"), &Stacks::All).unwrap();
    assert_eq!(a, b);
}

// ---------------------------------------------------------------------------------------------
// IAM.

/// Concrete write actions, and the write families of the brief: any action pattern that covers
/// one of them, or falls in one of the families, writes.
const WRITES: [&str; 12] = [
    "s3:PutObject",
    "s3:PutBucketPolicy",
    "s3:DeleteObject",
    "s3:DeleteBucket",
    "glue:CreateTable",
    "glue:CreateDatabase",
    "glue:UpdateTable",
    "glue:UpdateDatabase",
    "glue:DeleteTable",
    "glue:DeleteDatabase",
    "glue:BatchCreatePartition",
    "glue:BatchDeleteTable",
];
const WRITE_FAMILIES: [&str; 6] = [
    "s3:Put*",
    "s3:Delete*",
    "glue:Create*",
    "glue:Update*",
    "glue:Delete*",
    "glue:BatchCreate*",
];

fn writes(action: &str) -> bool {
    WRITE_FAMILIES.iter().any(|f| glob(f, action)) || WRITES.iter().any(|w| glob(action, w))
}

/// Identity policies (attached to roles) of a stack: (policy id, statements).
fn identity_policies(t: &Value) -> Vec<(String, Vec<Value>)> {
    let mut out = vec![];
    for (id, r) in resources(t) {
        let p = &r["Properties"];
        match r["Type"].as_str().unwrap_or_default() {
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::RolePolicy" => {
                out.push((
                    id.clone(),
                    as_list(&p["PolicyDocument"]["Statement"])
                        .into_iter()
                        .cloned()
                        .collect(),
                ));
            }
            "AWS::IAM::Role" | "AWS::IAM::User" | "AWS::IAM::Group" => {
                for inline in as_list(&p["Policies"]) {
                    out.push((
                        format!("{id} (inline)"),
                        as_list(&inline["PolicyDocument"]["Statement"])
                            .into_iter()
                            .cloned()
                            .collect(),
                    ));
                }
                for managed in strings(&p["ManagedPolicyArns"]) {
                    out.push((format!("{id} managed {managed}"), vec![json!({"Effect": "Allow", "Action": "*", "Resource": "*", "Sid": "ManagedPolicy"})]));
                }
            }
            "AWS::Serverless::Function" if !p["Policies"].is_null() => {
                out.push((format!("{id} (SAM policies)"), vec![json!({"Effect": "Allow", "Action": "*", "Resource": "*", "Sid": "SamPolicies"})]));
            }
            _ => {}
        }
    }
    out
}

/// Writes a role of one domain may do on another domain's bucket or Glue database.
fn cross_domain_writes(stacks: &[Stack], mesh: &Mesh) -> Vec<String> {
    let resolver = Resolver { stacks };
    let mut found = vec![];
    for stack in stacks {
        let Some(domain) = &stack.domain else {
            continue;
        };
        for (policy, statements) in identity_policies(&stack.template) {
            for s in statements {
                if s.get("NotAction").is_some() || s.get("NotResource").is_some() {
                    found.push(format!("{}: {policy}: NotAction/NotResource", stack.name));
                }
                if s["Effect"] != "Allow" {
                    continue;
                }
                let write_actions: Vec<String> = strings(&s["Action"])
                    .into_iter()
                    .filter(|a| writes(a))
                    .collect();
                if write_actions.is_empty() {
                    continue;
                }
                for r in as_list(&s["Resource"]) {
                    let arn = resolver.resolve(stack, r);
                    if arn.starts_with("unresolved:") {
                        found.push(format!(
                            "{}: {policy}: cannot tell what {arn} is",
                            stack.name
                        ));
                    }
                    for other in mesh.domains.iter().filter(|d| &d.name != domain) {
                        let glue = |what: &str| format!("arn:aws:glue:{REGION}:{ACCOUNT}:{what}");
                        let theirs = [
                            format!("arn:aws:s3:::{}", other.bucket),
                            format!("arn:aws:s3:::{}/products/x/part-0.parquet", other.bucket),
                            format!("arn:aws:s3:::{}/raw/x/y.csv", other.bucket),
                            glue(&format!("database/{}", other.database)),
                            glue(&format!("table/{}/x", other.database)),
                        ];
                        if theirs.iter().any(|t| glob(&arn, t)) {
                            found.push(format!(
                                "{}: {policy} ({}) lets a role of `{domain}` {write_actions:?} `{arn}` of `{}`",
                                stack.name, s["Sid"], other.name
                            ));
                        }
                    }
                }
            }
        }
    }
    found
}

/// Wildcards in policies: in identity policies, no wildcard action on `*`, and `*` as a
/// resource only for the X-Ray actions; in resource policies (keys, buckets, queues), no `Allow`
/// to everyone, and a wildcard action only for the account root's administration of a key or in
/// a `Deny`.
fn wildcards(stacks: &[Stack]) -> Vec<String> {
    let resolver = Resolver { stacks };
    let mut found = vec![];
    for stack in stacks {
        let t = &stack.template;
        for (policy, statements) in identity_policies(t) {
            for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
                let actions = strings(&s["Action"]);
                // A resource that names anything: it matches ARNs of unrelated services.
                let star = as_list(&s["Resource"]).iter().any(|r| {
                    let r = resolver.resolve(stack, r);
                    glob(&r, "arn:aws:s3:::b/k") && glob(&r, "arn:aws:kms:eu-west-1:1:key/k")
                });
                if star && actions.iter().any(|a| a.contains('*')) {
                    found.push(format!(
                        "{}: {policy} ({}): wildcard action on `*`",
                        stack.name, s["Sid"]
                    ));
                }
                if star && !actions.iter().all(|a| XRAY_ACTIONS.contains(&a.as_str())) {
                    found.push(format!(
                        "{}: {policy} ({}): `*` resource for {actions:?}",
                        stack.name, s["Sid"]
                    ));
                }
            }
        }
        let mut resource_policies = vec![];
        for (id, r) in resources(t) {
            let doc = match r["Type"].as_str().unwrap_or_default() {
                "AWS::KMS::Key" => &r["Properties"]["KeyPolicy"],
                "AWS::S3::BucketPolicy" | "AWS::SQS::QueuePolicy" => {
                    &r["Properties"]["PolicyDocument"]
                }
                _ => continue,
            };
            resource_policies.push((
                id,
                r["Type"].clone(),
                as_list(&doc["Statement"])
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>(),
            ));
        }
        for (id, ty, statements) in resource_policies {
            for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
                if s["Principal"] == "*" || s["Principal"]["AWS"] == "*" {
                    found.push(format!(
                        "{}: {id} ({}): allows everyone",
                        stack.name, s["Sid"]
                    ));
                }
                let root = s["Principal"]["AWS"]["Fn::Sub"]
                    == "arn:${AWS::Partition}:iam::${AWS::AccountId}:root";
                let wildcard = strings(&s["Action"]).iter().any(|a| a.contains('*'));
                if wildcard && !(ty == "AWS::KMS::Key" && root) {
                    found.push(format!(
                        "{}: {id} ({}): wildcard action",
                        stack.name, s["Sid"]
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn no_role_writes_another_domains_bucket_or_database() {
    let mesh = mesh();
    let stacks = committed();
    assert_eq!(cross_domain_writes(&stacks, &mesh), Vec::<String>::new());

    // The check fails when a role of sales may write customers' bucket or database.
    let with = |statement: Value| {
        let mut broken = committed();
        broken[1].template["Resources"]["IngestPolicy"]["Properties"]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap()
            .push(statement);
        cross_domain_writes(&broken, &mesh)
    };
    let sub = |s: &str| json!({ "Fn::Sub": s });
    for bad in [
        json!({"Sid": "Put", "Effect": "Allow", "Action": "s3:Put*",
               "Resource": sub("arn:${AWS::Partition}:s3:::tessera-sample-customers/*")}),
        json!({"Sid": "Wildcard", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::tessera-sample-*"}),
        json!({"Sid": "Glue", "Effect": "Allow", "Action": ["glue:GetTable", "glue:UpdateTable"],
               "Resource": sub("arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/customers/*")}),
    ] {
        assert_eq!(with(bad.clone()).len(), 1, "{bad}");
    }
    // A read of another domain's products is not a write.
    assert!(with(json!({"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": sub("arn:${AWS::Partition}:s3:::tessera-sample-customers/products/customers/*")})).is_empty());
}

#[test]
fn no_wildcard_action_on_a_wildcard_resource() {
    let stacks = committed();
    assert_eq!(wildcards(&stacks), Vec::<String>::new());
    // X-Ray is the one `*` resource, and it is there.
    let xray = identity_policies(&stacks[1].template)
        .into_iter()
        .flat_map(|(_, s)| s)
        .filter(|s| s["Resource"] == "*")
        .count();
    assert_eq!(xray, 5, "one X-Ray statement per function");

    let mut broken = committed();
    let sales = broken.iter_mut().find(|s| s.name == "sales").unwrap();
    let r = &mut sales.template["Resources"];
    r["CleanPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Sid": "Oops", "Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}));
    r["DomainBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Sid": "Oops2", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::x/*"}));
    let found = wildcards(&broken);
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn each_stage_writes_only_its_own_zones() {
    // The policy of each function, read back from the template, names exactly the zones of
    // `access` (`tessera_infra::access`), so a hand edit of a template shows up here.
    let stacks = committed();
    let resolver = Resolver { stacks: &stacks };
    let sales = resolver.stack("sales");
    let resources_of = |policy: &str, deletes: bool| -> Vec<String> {
        as_list(&sales.template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"])
            .into_iter()
            .filter(|s| {
                let actions = strings(&s["Action"]);
                let delete = actions.iter().any(|a| a.contains("Delete"));
                delete == deletes && (delete || actions.iter().any(|a| writes(a)))
            })
            .flat_map(|s| {
                as_list(&s["Resource"])
                    .into_iter()
                    .map(|r| resolver.resolve(sales, r))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let written = |policy: &str| resources_of(policy, false);
    let deleted = |policy: &str| resources_of(policy, true);
    let b = "arn:aws:s3:::tessera-sample-sales/";
    assert_eq!(
        written("IngestPolicy"),
        [
            format!("{b}quarantine/*"),
            format!("{b}runs/*"),
            format!("{b}staged/*")
        ]
    );
    assert_eq!(
        written("CleanPolicy"),
        [
            format!("{b}clean/*"),
            format!("{b}quarantine/*"),
            format!("{b}runs/*")
        ]
    );
    assert_eq!(
        written("ContractCheckPolicy"),
        [
            format!("{b}products/order_events/*"),
            format!("{b}products/orders/*"),
            format!("{b}quarantine/*"),
            format!("{b}runs/*")
        ]
    );
    assert_eq!(
        written("AggregatePolicy"),
        [
            format!("{b}products/daily_revenue/*"),
            format!("{b}products/segment_revenue/*"),
            format!("{b}quarantine/*"),
            format!("{b}runs/*")
        ]
    );
    let register = written("CatalogRegisterPolicy");
    assert!(
        register.contains(&format!("arn:aws:glue:{REGION}:{ACCOUNT}:table/sales/*")),
        "{register:?}"
    );
    assert!(
        !register.iter().any(|r| r.contains("products/")),
        "{register:?}"
    );
    // Deletes: a zone stage's attempt counts; contract-check and aggregate, the files of the
    // products they publish (moved from pending folders, superseded); nothing else, anywhere.
    let attempts = format!("{b}runs/*/_attempts/*");
    assert_eq!(deleted("IngestPolicy"), std::slice::from_ref(&attempts));
    assert_eq!(deleted("CleanPolicy"), std::slice::from_ref(&attempts));
    assert_eq!(
        deleted("ContractCheckPolicy"),
        [
            format!("{b}products/order_events/*"),
            format!("{b}products/orders/*"),
            attempts.clone()
        ]
    );
    assert_eq!(
        deleted("AggregatePolicy"),
        [
            format!("{b}products/daily_revenue/*"),
            format!("{b}products/segment_revenue/*"),
        ]
    );
    assert!(deleted("CatalogRegisterPolicy").is_empty());
    for stack in &stacks {
        for (policy, statements) in identity_policies(&stack.template) {
            for s in statements {
                let actions = strings(&s["Action"]);
                if actions.iter().any(|a| a.contains("Delete")) {
                    assert_eq!(actions, ["s3:DeleteObject"], "{policy}: {s}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Controls checkov does not check.

fn encrypted_queue(t: &Value, arn: &Value) -> bool {
    arn["Fn::GetAtt"][0]
        .as_str()
        .map(|q| &t["Resources"][q])
        .is_some_and(|q| {
            q["Type"] == "AWS::SQS::Queue" && !q["Properties"]["KmsMasterKeyId"].is_null()
        })
}

fn controls(stacks: &[Stack], mesh: &Mesh) -> Vec<String> {
    let mut found = vec![];
    let mut fail = |stack: &Stack, what: String| found.push(format!("{}: {what}", stack.name));
    for stack in stacks {
        let t = &stack.template;
        // Buckets: SSE-KMS with a bucket key, except the access-log buckets S3 delivers to,
        // which can only be SSE-S3 (S3 server access logging does not write to SSE-KMS buckets).
        let log_destinations: Vec<&str> = of_type(t, "AWS::S3::Bucket")
            .filter_map(|(_, b)| {
                b["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"].as_str()
            })
            .collect();
        for (id, b) in of_type(t, "AWS::S3::Bucket") {
            let p = &b["Properties"];
            let sse = &p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
            let algorithm = &sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"];
            if log_destinations.contains(&id.as_str()) {
                if algorithm != "AES256" || !p["NotificationConfiguration"].is_null() {
                    fail(
                        stack,
                        format!("{id}: an access-log bucket must be SSE-S3 and hold no data"),
                    );
                }
            } else if algorithm != "aws:kms"
                || sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"].is_null()
                || sse["BucketKeyEnabled"] != true
            {
                fail(stack, format!("{id}: not SSE-KMS with a bucket key"));
            }
            if p["LoggingConfiguration"].is_null() && !log_destinations.contains(&id.as_str()) {
                fail(stack, format!("{id}: no access logging"));
            }
            if p["VersioningConfiguration"]["Status"] != "Enabled" {
                fail(stack, format!("{id}: not versioned"));
            }
            let pab = &p["PublicAccessBlockConfiguration"];
            if [
                "BlockPublicAcls",
                "BlockPublicPolicy",
                "IgnorePublicAcls",
                "RestrictPublicBuckets",
            ]
            .iter()
            .any(|k| pab[k] != true)
            {
                fail(stack, format!("{id}: public access not fully blocked"));
            }
            if p["OwnershipControls"]["Rules"][0]["ObjectOwnership"] != "BucketOwnerEnforced" {
                fail(stack, format!("{id}: ACLs not disabled"));
            }
            let rules = as_list(&p["LifecycleConfiguration"]["Rules"]);
            if !rules
                .iter()
                .any(|r| !r["AbortIncompleteMultipartUpload"].is_null())
            {
                fail(
                    stack,
                    format!("{id}: incomplete multipart uploads never aborted"),
                );
            }
            let tls_only = of_type(t, "AWS::S3::BucketPolicy")
                .filter(|(_, bp)| bp["Properties"]["Bucket"]["Ref"] == id.as_str())
                .flat_map(|(_, bp)| as_list(&bp["Properties"]["PolicyDocument"]["Statement"]))
                .any(|s| {
                    let resources = as_list(&s["Resource"]);
                    s["Effect"] == "Deny"
                        && s["Principal"] == "*"
                        && strings(&s["Action"]) == ["s3:*"]
                        && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
                        && resources.contains(&&json!({"Fn::GetAtt": [id, "Arn"]}))
                        && resources.contains(&&json!({"Fn::Sub": format!("${{{id}.Arn}}/*")}))
                });
            if !tls_only {
                fail(
                    stack,
                    format!("{id}: no policy denying requests without TLS"),
                );
            }
        }
        // Rules: retries, then a dead-letter queue that is encrypted.
        for (id, rule) in of_type(t, "AWS::Events::Rule") {
            for target in as_list(&rule["Properties"]["Targets"]) {
                if !encrypted_queue(t, &target["DeadLetterConfig"]["Arn"]) {
                    fail(
                        stack,
                        format!("{id}: target without an encrypted dead-letter queue"),
                    );
                }
                if target["RetryPolicy"]["MaximumRetryAttempts"].is_null()
                    || target["RetryPolicy"]["MaximumEventAgeInSeconds"].is_null()
                {
                    fail(stack, format!("{id}: target without a retry policy"));
                }
            }
        }
        // Functions: traced, environment encrypted, failures kept, logs encrypted and expiring.
        for (id, f) in of_type(t, "AWS::Serverless::Function") {
            let p = &f["Properties"];
            if p["Tracing"] != "Active" {
                fail(stack, format!("{id}: tracing not active"));
            }
            if p["KmsKeyArn"].is_null() {
                fail(
                    stack,
                    format!("{id}: environment not encrypted with the domain key"),
                );
            }
            if !encrypted_queue(
                t,
                &p["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"],
            ) {
                fail(
                    stack,
                    format!("{id}: failed invocations not sent to an encrypted queue"),
                );
            }
            let group = p["LoggingConfig"]["LogGroup"]["Ref"]
                .as_str()
                .map(|g| &t["Resources"][g]["Properties"]);
            if !group.is_some_and(|g| !g["KmsKeyId"].is_null() && g["RetentionInDays"].is_u64()) {
                fail(
                    stack,
                    format!("{id}: logs not in an encrypted log group with a retention"),
                );
            }
            if p["Runtime"] != "provided.al2023" || p["Architectures"] != json!(["arm64"]) {
                fail(stack, format!("{id}: not provided.al2023 on arm64"));
            }
        }
        // Every skipped checkov check says why.
        for (id, r) in resources(t) {
            for skip in as_list(&r["Metadata"]["checkov"]["skip"]) {
                if skip["comment"].as_str().is_none_or(|c| c.len() < 40) {
                    fail(
                        stack,
                        format!("{id}: checkov skip {} without a real reason", skip["id"]),
                    );
                }
            }
        }
        // Keys rotate.
        for (id, k) in of_type(t, "AWS::KMS::Key") {
            if k["Properties"]["EnableKeyRotation"] != true {
                fail(stack, format!("{id}: key rotation off"));
            }
        }
        // Tags: the mesh everywhere, the domain in a domain's stack.
        for (id, r) in resources(t) {
            let tags = &r["Properties"]["Tags"];
            if tags.is_null() {
                continue;
            }
            let value = |key: &str| match tags {
                Value::Object(map) => map.get(key).cloned(),
                Value::Array(list) => list
                    .iter()
                    .find(|t| t["Key"] == key)
                    .map(|t| t["Value"].clone()),
                _ => None,
            };
            if value("tessera:mesh") != Some(json!(mesh.name)) {
                fail(stack, format!("{id}: no tessera:mesh tag"));
            }
            if let Some(d) = &stack.domain
                && value("tessera:domain") != Some(json!(d))
            {
                fail(stack, format!("{id}: no tessera:domain tag"));
            }
        }
    }
    // The Data Catalog is encrypted, in the platform stack.
    for stack in stacks.iter().filter(|s| s.domain.is_none()) {
        let settings: Vec<_> =
            of_type(&stack.template, "AWS::Glue::DataCatalogEncryptionSettings").collect();
        let on = settings.iter().any(|(_, s)| {
            let e = &s["Properties"]["DataCatalogEncryptionSettings"];
            e["EncryptionAtRest"]["CatalogEncryptionMode"] == "SSE-KMS"
                && !e["EncryptionAtRest"]["SseAwsKmsKeyId"].is_null()
                && e["ConnectionPasswordEncryption"]["ReturnConnectionPasswordEncrypted"] == true
                && !e["ConnectionPasswordEncryption"]["KmsKeyId"].is_null()
        });
        if !on {
            found.push(format!(
                "{}: Glue Data Catalog encryption is not on",
                stack.name
            ));
        }
    }
    found
}

#[test]
fn controls_checkov_does_not_check() {
    let mesh = mesh();
    let stacks = committed();
    assert_eq!(controls(&stacks, &mesh), Vec::<String>::new());
    // Every resource type the checks look at is there to be checked.
    let sales = &stacks[1].template;
    assert_eq!(of_type(sales, "AWS::S3::Bucket").count(), 2);
    // The routing rules, the service-level check's schedule and order_events' domain events.
    assert_eq!(
        of_type(sales, "AWS::Events::Rule").count(),
        routing::rules().len() + 2
    );
    assert_eq!(of_type(sales, "AWS::Serverless::Function").count(), 5);

    let mut broken = committed();
    {
        let r = &mut broken[1].template["Resources"];
        r["DomainBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            [0]["ServerSideEncryptionByDefault"] = json!({"SSEAlgorithm": "AES256"});
        r["DomainBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]["Bool"]
            ["aws:SecureTransport"] = json!("true");
        r["RawToIngestRule"]["Properties"]["Targets"][0]
            .as_object_mut()
            .unwrap()
            .remove("DeadLetterConfig");
        r["EventDeliveryDeadLetterQueue"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("KmsMasterKeyId");
        r["CleanFunction"]["Properties"]["Tracing"] = json!("PassThrough");
        r["DomainKey"]["Properties"]["EnableKeyRotation"] = json!(false);
        r["IngestRole"]["Properties"]["Tags"] = json!([]);
    }
    broken[0].template["Resources"]["GlueCatalogEncryption"]["Properties"]["DataCatalogEncryptionSettings"]
        ["EncryptionAtRest"]["CatalogEncryptionMode"] = json!("DISABLED");
    let found = controls(&broken, &mesh);
    // Bucket encryption, TLS, the rule without a DLQ, the seven other rules (five routing rules,
    // the schedule and the domain events' rule) whose DLQ is now unencrypted, tracing, rotation,
    // two tags, the catalog.
    assert_eq!(found.len(), 15, "{found:#?}");
}

#[test]
fn rules_are_the_routing_rules_narrowed_to_the_domain() {
    let mesh = mesh();
    let stacks = committed();
    for domain in &mesh.domains {
        let t = &stacks
            .iter()
            .find(|s| s.domain.as_deref() == Some(&domain.name))
            .unwrap()
            .template;
        let deployed: Vec<&Value> = of_type(t, "AWS::Events::Rule")
            .filter(|(id, _)| *id != SLA_CHECK_RULE && !id.ends_with("EventsRule"))
            .map(|(_, r)| &r["Properties"])
            .collect();
        assert_eq!(deployed.len(), routing::rules().len());
        for rule in routing::rules() {
            let name = format!("tessera-{}-{}-{}", mesh.name, domain.name, rule.name);
            let p = deployed
                .iter()
                .find(|p| p["Name"] == name.as_str())
                .unwrap_or_else(|| panic!("no rule {name}"));
            assert_eq!(p["EventPattern"], rule.pattern_for(&mesh, domain), "{name}");
            assert_eq!(
                p["EventBusName"] == "default",
                rule.on_default_bus(),
                "{name}"
            );
            let target = p["Targets"][0]["Arn"]["Fn::GetAtt"][0].as_str().unwrap();
            assert_eq!(
                t["Resources"][target]["Properties"]["FunctionName"],
                format!(
                    "tessera-{}-{}-{}",
                    mesh.name,
                    domain.name,
                    rule.target.name()
                )
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scheduled service-level check.

/// What EventBridge hands a target with this input transformer for `event`: each placeholder
/// of `InputTemplate` replaced by the value its `InputPathsMap` path selects, a string as its
/// text (the template quotes it), anything else as JSON. Paths are `$.<field>`, as the schedule
/// rule's are.
fn transform(transformer: &Value, event: &Value) -> Value {
    let mut text = transformer["InputTemplate"].as_str().unwrap().to_owned();
    for (name, path) in transformer["InputPathsMap"].as_object().unwrap() {
        let field = path.as_str().unwrap().strip_prefix("$.").unwrap();
        assert!(!field.contains('.'), "{path}: only top-level fields here");
        let value = match &event[field] {
            Value::String(s) => s.clone(),
            Value::Null => panic!("the event has no {field}"),
            other => other.to_string(),
        };
        let placeholder = format!("<{name}>");
        assert!(text.contains(&placeholder), "{placeholder} is never used");
        text = text.replace(&placeholder, &value);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The sample scheduled event of `events/`, as catalog-register receives it.
fn scheduled_fixture() -> Value {
    let path = root().join("events/scheduled-sla-check.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_service_level_check_runs_hourly_on_each_domains_catalog_register() {
    assert_eq!(SLA_CHECK_SCHEDULE, "rate(1 hour)");
    let mesh = mesh();
    let stacks = committed();
    let resolver = Resolver { stacks: &stacks };
    for domain in &mesh.domains {
        let stack = resolver.stack(&domain.name);
        let t = &stack.template;
        let rule = &t["Resources"][SLA_CHECK_RULE];
        let p = &rule["Properties"];
        let name = format!("tessera-{}-{}-sla-check", mesh.name, domain.name);
        assert_eq!(rule["Type"], "AWS::Events::Rule");
        assert_eq!(p["Name"], name.as_str());
        assert_eq!(
            p["EventBusName"], "default",
            "schedules run on the default bus"
        );
        assert_eq!(p["ScheduleExpression"], SLA_CHECK_SCHEDULE);
        assert!(p["EventPattern"].is_null());
        assert_eq!(p["State"], "ENABLED");

        // One target, the domain's catalog-register, retried and dead-lettered as the routing
        // rules' targets are.
        let targets = as_list(&p["Targets"]);
        assert_eq!(targets.len(), 1);
        let target = targets[0];
        let function = target["Arn"]["Fn::GetAtt"][0].as_str().unwrap();
        assert_eq!(
            t["Resources"][function]["Properties"]["FunctionName"],
            format!("tessera-{}-{}-catalog-register", mesh.name, domain.name)
        );
        let routed = &t["Resources"]["PublishedToCatalogRegisterRule"]["Properties"]["Targets"][0];
        assert_eq!(target["RetryPolicy"], routed["RetryPolicy"]);
        assert_eq!(target["DeadLetterConfig"], routed["DeadLetterConfig"]);

        // The rule may invoke the function, and send to the dead-letter queue with the key.
        let arn = resolver.arn(stack, SLA_CHECK_RULE);
        assert_eq!(
            arn,
            format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}")
        );
        let permissions: Vec<&Value> = of_type(t, "AWS::Lambda::Permission")
            .map(|(_, r)| &r["Properties"])
            .filter(|p| p["SourceArn"] == json!({"Fn::GetAtt": [SLA_CHECK_RULE, "Arn"]}))
            .collect();
        assert_eq!(permissions.len(), 1);
        assert_eq!(permissions[0]["FunctionName"], target["Arn"]);
        assert_eq!(permissions[0]["Principal"], "events.amazonaws.com");
        let queue_policy = &t["Resources"]["EventDeliveryDeadLetterQueuePolicy"]["Properties"];
        let senders = as_list(&queue_policy["PolicyDocument"]["Statement"])
            .into_iter()
            .flat_map(|s| as_list(&s["Condition"]["ArnEquals"]["aws:SourceArn"]))
            .map(|a| resolver.resolve(stack, a))
            .collect::<Vec<_>>();
        assert!(senders.contains(&arn), "{senders:?}");
        let key_users =
            as_list(&t["Resources"]["DomainKey"]["Properties"]["KeyPolicy"]["Statement"])
                .into_iter()
                .filter(|s| s["Principal"]["Service"] == "events.amazonaws.com")
                .flat_map(|s| as_list(&s["Condition"]["ArnLike"]["aws:SourceArn"]))
                .map(|a| resolver.resolve(stack, a))
                .collect::<Vec<_>>();
        assert!(key_users.iter().any(|k| glob(k, &arn)), "{key_users:?}");

        // The input: the scheduled event as EventBridge sends it (its detail is empty), turned
        // into the shape of events/scheduled-sla-check.json with the domain in the detail.
        let mut expected = scheduled_fixture();
        expected["resources"] = json!([arn]);
        expected["detail"] = json!({ "domain": domain.name });
        let mut sent = expected.clone();
        sent["detail"] = json!({});
        let input = transform(&target["InputTransformer"], &sent);
        assert_eq!(input, expected, "{name}");
        let parsed = triggers(&input).unwrap();
        let [Trigger::Scheduled { at, domain: named }] = parsed.as_slice() else {
            panic!("{name}: not a scheduled trigger: {input}");
        };
        assert_eq!(named.as_deref(), Some(domain.name.as_str()));
        assert_eq!(at.to_rfc3339(), "2024-05-03T06:00:00+00:00");
    }
    // The sample event of events/ is exactly what sales' rule delivers.
    let sales = &resolver.stack("sales").template["Resources"][SLA_CHECK_RULE];
    let mut sent = scheduled_fixture();
    sent["detail"] = json!({});
    assert_eq!(
        transform(
            &sales["Properties"]["Targets"][0]["InputTransformer"],
            &sent
        ),
        scheduled_fixture()
    );
}

#[test]
fn catalog_register_may_do_what_the_service_level_check_does() {
    // The check reads each product's commit log and, for a source product's latency, the run
    // records of clean and ingest; it writes its run records, and announces breaches. Nothing
    // else: not a product's data, not raw files (see `tessera_infra::access`).
    let stacks = committed();
    let resolver = Resolver { stacks: &stacks };
    let sales = resolver.stack("sales");
    let statements = as_list(
        &sales.template["Resources"]["CatalogRegisterPolicy"]["Properties"]["PolicyDocument"]["Statement"],
    );
    let resources_of = |action: &str| -> Vec<String> {
        statements
            .iter()
            .filter(|s| s["Effect"] == "Allow" && strings(&s["Action"]).iter().any(|a| a == action))
            .flat_map(|s| as_list(&s["Resource"]))
            .map(|r| resolver.resolve(sales, r))
            .collect()
    };
    let b = "arn:aws:s3:::tessera-sample-sales";
    let may = |action: &str, key: &str| {
        resources_of(action)
            .iter()
            .any(|r| glob(r, &format!("{b}/{key}")))
    };
    for key in [
        "products/orders/_commits/00000000000000000001.json",
        "products/daily_revenue/_commits/00000000000000000001.json",
        "runs/orders/clean/0123456789abcdef.json",
        "runs/orders/ingest/0123456789abcdef.json",
    ] {
        assert!(may("s3:GetObject", key), "{key}");
    }
    for key in [
        "raw/orders/orders-2024-05-01.csv",
        "products/orders/order_date=2024-05-01/part-0.parquet",
        "clean/orders/x.parquet",
        "runs/orders/contract-check/0123456789abcdef.json",
        "runs/daily_revenue/clean/0123456789abcdef.json",
    ] {
        assert!(!may("s3:GetObject", key), "{key}");
    }
    assert!(may(
        "s3:PutObject",
        "runs/orders/sla-check/0123456789abcdef.json"
    ));
    assert!(!may(
        "s3:PutObject",
        "products/orders/_commits/00000000000000000002.json"
    ));

    let list = statements
        .iter()
        .find(|s| strings(&s["Action"]) == ["s3:ListBucket"])
        .unwrap();
    assert_eq!(resolver.resolve(sales, &list["Resource"]), b);
    let prefixes = strings(&list["Condition"]["StringLike"]["s3:prefix"]);
    for prefix in [
        "products/orders/_commits/",
        "products/daily_revenue/_commits/",
        "runs/orders/clean/",
        "runs/orders/ingest/",
    ] {
        assert!(prefixes.iter().any(|p| glob(p, prefix)), "{prefix}");
    }
    for prefix in ["raw/orders/", "products/orders/", "runs/"] {
        assert!(!prefixes.iter().any(|p| glob(p, prefix)), "{prefix}");
    }

    let publish = statements
        .iter()
        .find(|s| strings(&s["Action"]) == ["events:PutEvents"])
        .unwrap();
    assert_eq!(
        resolver.resolve(sales, &publish["Resource"]),
        format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/tessera-products")
    );
    let only = &publish["Condition"]["StringEquals"];
    assert_eq!(only["events:source"], json!(["tessera"]));
    assert_eq!(only["events:detail-type"], json!([SLA_BREACHED]));
}

// ---------------------------------------------------------------------------------------------
// Glue tables.

fn glue_columns(v: &Value) -> Vec<Column> {
    as_list(v)
        .into_iter()
        .map(|c| Column {
            name: c["Name"].as_str().unwrap().to_owned(),
            data_type: c["Type"].as_str().unwrap().to_owned(),
            comment: c["Comment"].as_str().map(str::to_owned),
        })
        .collect()
}

#[test]
fn glue_tables_are_what_catalog_register_registers() {
    let mesh = mesh();
    let stacks = committed();
    for domain in &mesh.domains {
        let t = &stacks
            .iter()
            .find(|s| s.domain.as_deref() == Some(&domain.name))
            .unwrap()
            .template;
        let tables: BTreeMap<&str, &Value> = of_type(t, "AWS::Glue::Table")
            .map(|(_, r)| {
                (
                    r["Properties"]["TableInput"]["Name"].as_str().unwrap(),
                    &r["Properties"],
                )
            })
            .collect();
        assert_eq!(
            tables.keys().copied().collect::<Vec<_>>(),
            {
                let mut names: Vec<&str> =
                    domain.products.iter().map(|p| p.name.as_str()).collect();
                names.sort();
                names
            },
            "one table per product of {}",
            domain.name
        );
        let database = of_type(t, "AWS::Glue::Database").next().unwrap().1;
        assert_eq!(
            database["Properties"]["DatabaseInput"]["Name"],
            domain.database.as_str()
        );
        for product in &domain.products {
            // What catalog-register computes when the product is published.
            let location = s3_url(&domain.bucket, &product_prefix(&product.name));
            let expected = table_for(product, &domain.database, &location).unwrap();
            let p = tables[product.name.as_str()];
            let input = &p["TableInput"];
            let sd = &input["StorageDescriptor"];
            let what = format!("{}.{}", domain.name, product.name);
            assert_eq!(
                glue_columns(&sd["Columns"]),
                expected.columns,
                "{what}: columns"
            );
            assert_eq!(
                glue_columns(&input["PartitionKeys"]),
                expected.partition_keys,
                "{what}: partition keys"
            );
            assert_eq!(sd["Location"], expected.location.as_str(), "{what}");
            assert_eq!(
                input["Description"].as_str(),
                expected.description.as_deref(),
                "{what}"
            );
            let mut parameters = expected.parameters.clone();
            parameters.insert(
                hive::EXTERNAL_PARAMETER.0.into(),
                hive::EXTERNAL_PARAMETER.1.into(),
            );
            let actual: BTreeMap<String, String> =
                serde_json::from_value(input["Parameters"].clone()).unwrap();
            assert_eq!(actual, parameters, "{what}: parameters");
            assert_eq!(input["TableType"], hive::TABLE_TYPE);
            assert_eq!(sd["InputFormat"], hive::INPUT_FORMAT);
            assert_eq!(sd["OutputFormat"], hive::OUTPUT_FORMAT);
            assert_eq!(sd["SerdeInfo"]["SerializationLibrary"], hive::SERDE);
            let serde_parameters: BTreeMap<String, String> =
                serde_json::from_value(sd["SerdeInfo"]["Parameters"].clone()).unwrap();
            assert_eq!(
                serde_parameters,
                hive::SERDE_PARAMETERS
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>()
            );
            assert_eq!(p["DatabaseName"], json!({"Ref": "GlueDatabase"}));
        }
    }
    // The sample's types reach the template: decimals, timestamps, dates.
    let sales = serde_json::to_string(&stacks[1].template).unwrap();
    for ty in ["decimal(12,2)", "\"timestamp\"", "\"date\""] {
        assert!(sales.contains(ty), "{ty}");
    }
}

#[test]
fn the_glue_adapter_describes_storage_with_the_same_values() {
    // catalog-register writes tables through `tessera-aws`, which spells the storage
    // description itself: it must agree with `catalog::hive`, which the templates use.
    let source = std::fs::read_to_string(root().join("shared/aws/src/glue.rs")).unwrap();
    for value in [
        hive::INPUT_FORMAT,
        hive::OUTPUT_FORMAT,
        hive::SERDE,
        hive::TABLE_TYPE,
        hive::EXTERNAL_PARAMETER.0,
        hive::SERDE_PARAMETERS[0].0,
    ] {
        assert!(
            source.contains(&format!("\"{value}\"")),
            "shared/aws/src/glue.rs does not use `{value}`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Domain events through Firehose.

#[test]
fn domain_events_reach_the_raw_zone_through_firehose_and_nothing_else() {
    let mesh = mesh();
    let stacks = committed();
    let resolver = Resolver { stacks: &stacks };
    let sales = resolver.stack("sales");
    let t = &sales.template;
    let r = &t["Resources"];
    // Only the product declaring `source.events` gets a delivery stream.
    let streams: Vec<&String> = of_type(t, "AWS::KinesisFirehose::DeliveryStream")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(streams, ["OrderEventsEventsDeliveryStream"]);
    let customers = stacks
        .iter()
        .find(|s| s.domain.as_deref() == Some("customers"))
        .unwrap();
    assert_eq!(
        of_type(&customers.template, "AWS::KinesisFirehose::DeliveryStream").count(),
        0
    );

    // The rule: the product's source and detail-type on the mesh's bus, the detail only.
    let rule = &r["OrderEventsEventsRule"]["Properties"];
    assert_eq!(
        rule["EventPattern"],
        json!({"source": ["com.example.shop"], "detail-type": ["OrderPlaced"]})
    );
    assert!(rule["EventBusName"]["Fn::ImportValue"].is_string());
    let target = &rule["Targets"][0];
    assert_eq!(target["InputPath"], "$.detail");
    assert_eq!(
        target["Arn"],
        json!({"Fn::GetAtt": ["OrderEventsEventsDeliveryStream", "Arn"]})
    );
    assert!(encrypted_queue(t, &target["DeadLetterConfig"]["Arn"]));
    // Its role may put records into that stream only.
    let role = target["RoleArn"]["Fn::GetAtt"][0].as_str().unwrap();
    let statements = as_list(&r[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]);
    assert_eq!(statements.len(), 1);
    assert_eq!(
        strings(&statements[0]["Action"]),
        ["firehose:PutRecord", "firehose:PutRecordBatch"]
    );
    let resource = resolver.resolve(sales, as_list(&statements[0]["Resource"])[0]);
    assert!(
        resource.ends_with(":deliverystream/tessera-sample-sales-order_events-events"),
        "{resource}"
    );

    // The stream: DirectPut, SSE with the domain key, NDJSON into raw/order_events/ under
    // Firehose's default time layout, objects encrypted with the domain key.
    let p = &r["OrderEventsEventsDeliveryStream"]["Properties"];
    assert_eq!(p["DeliveryStreamType"], "DirectPut");
    assert_eq!(
        p["DeliveryStreamEncryptionConfigurationInput"],
        json!({"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": {"Fn::GetAtt": ["DomainKey", "Arn"]}})
    );
    let s3 = &p["ExtendedS3DestinationConfiguration"];
    assert_eq!(s3["Prefix"], "raw/order_events/");
    assert!(
        !s3["Prefix"].as_str().unwrap().contains("!{"),
        "default time layout"
    );
    assert_eq!(s3["ErrorOutputPrefix"], "quarantine/order_events/firehose/");
    assert_eq!(
        s3["ProcessingConfiguration"]["Processors"][0]["Type"],
        "AppendDelimiterToRecord"
    );
    assert_eq!(s3["BufferingHints"]["IntervalInSeconds"], 60);
    assert_eq!(
        s3["EncryptionConfiguration"]["KMSEncryptionConfig"]["AWSKMSKeyARN"],
        json!({"Fn::GetAtt": ["DomainKey", "Arn"]})
    );
    // Ingest parses the product from the first folder under raw/.
    let key = format!(
        "{}2024/05/01/07/tessera-sample-sales-order_events-events-1-2024-05-01-07-08-09-x",
        s3["Prefix"].as_str().unwrap()
    );
    assert_eq!(
        tessera_core::keys::parse_zone_key(&key, tessera_core::keys::Zone::Raw)
            .unwrap()
            .product,
        "order_events"
    );

    // Firehose's role writes the product's raw and error prefixes of its own bucket, nothing
    // else, and uses the key only through S3 for those prefixes.
    let role = s3["RoleARN"]["Fn::GetAtt"][0].as_str().unwrap();
    let statements = as_list(&r[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]);
    let writes: Vec<String> = statements
        .iter()
        .filter(|s| strings(&s["Action"]).iter().any(|a| writes(a)))
        .flat_map(|s| as_list(&s["Resource"]))
        .map(|v| resolver.resolve(sales, v))
        .collect();
    assert_eq!(
        writes,
        [
            "arn:aws:s3:::tessera-sample-sales/raw/order_events/*",
            "arn:aws:s3:::tessera-sample-sales/quarantine/order_events/firehose/*"
        ]
    );
    let kms = statements
        .iter()
        .find(|s| strings(&s["Action"]).contains(&"kms:GenerateDataKey".to_owned()))
        .unwrap();
    assert!(kms["Condition"]["StringEquals"]["kms:ViaService"].is_object());
    assert_eq!(mesh.domains.len(), 2);
}
