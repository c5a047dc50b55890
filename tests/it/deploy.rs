//! Deploy test: the stacks `tessera infra synth` generates deploy into an emulator's
//! CloudFormation, and what they describe exists afterwards.
//!
//! The domain templates are synthesized with uploaded zips as code (`Code::S3`), their SAM
//! transform expanded offline with aws-sam-translator (`tests/infra/expand_sam.py`, run by
//! `$TESSERA_SAM_PYTHON`), and every stack is created in moto's CloudFormation
//! (`$TESSERA_MOTO_CFN_URL`, a moto of its own: the end-to-end test resets the other one): the
//! platform stack first, for its exports, then each domain.
//!
//! moto (5.2.5) does not do everything CloudFormation does, and the test says exactly what:
//!
//! * resource types it does not create, which the test applies itself through the services'
//!   APIs from the resource's properties in the template ([`APPLIED_BY_THE_TEST`]), or cannot
//!   apply ([`NOT_CREATED_ON_THE_EMULATOR`]);
//! * bucket properties it ignores, which the test applies
//!   ([`BUCKET_PROPERTIES_APPLIED_BY_THE_TEST`], and the bucket key of the default encryption;
//!   [`BUS_PROPERTIES_APPLIED_BY_THE_TEST`]);
//! * constructs it gets wrong, rewritten in the copy it deploys ([`REWRITTEN_FOR_THE_EMULATOR`]);
//! * what it ignores and the test does not check ([`NOT_CHECKED`]).
//!
//! The lists of what moto leaves out are checked against what it did, and each rewrite must
//! still find something to rewrite, so a list that goes stale fails the test. Then
//! the real state is read back through S3, SQS, EventBridge, Glue and Athena and compared with the
//! template's properties: buckets (encryption, versioning, public access block, ownership,
//! logging, lifecycle, EventBridge notifications, policy, tags), queues (key, retention, policy),
//! the product bus and every rule (pattern or schedule, targets with retry policy, dead-letter
//! queue and input transformer), the Glue database and tables (as catalog-register reads them),
//! the catalog's encryption and the Athena workgroup. The service-level check's input
//! transformer, as moto stored it, also runs through moto's EventBridge on a scheduled event,
//! and what comes out is an event catalog-register reads as the schedule of its domain.
//!
//! No Lambda code runs on an emulator: the functions' code and the mesh layer are placeholder
//! zips uploaded to an artifacts bucket first (the real zips come from `cargo lambda build`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::error::DisplayErrorContext;
use aws_sdk_cloudformation::types::{Capability, StackStatus};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Map, Value, json};
use tessera_aws::AwsSettings;
use tessera_core::catalog::Catalog;
use tessera_infra::names::{domain_prefix, mesh_prefix};
use tessera_infra::{Code, Options};
use tessera_tests::{repo_root, sample_mesh};

/// Resource types moto's CloudFormation does not create (the stack still reaches
/// `CREATE_COMPLETE`, and lists them without a logical id): the test applies each one itself,
/// through the service's API, from the resource's properties in the deployed template.
const APPLIED_BY_THE_TEST: &[&str] = &[
    "AWS::Athena::WorkGroup",
    "AWS::Glue::DataCatalogEncryptionSettings",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
];

/// Resource types moto does not create and the test does not apply either: Lambda's settings
/// for asynchronous invocations (retries, the on-failure queue) act on invocations only, no
/// Lambda code runs on an emulator, and the workspace has no Lambda SDK to put them with.
///
/// Kinesis Data Firehose delivery streams (domain events into the raw zone): moto's
/// CloudFormation does not create them and the workspace has no Firehose SDK; the rule that
/// targets one is deployed, with the stream's ARN written out (see
/// [`REWRITTEN_FOR_THE_EMULATOR`]).
const NOT_CREATED_ON_THE_EMULATOR: &[&str] = &[
    "AWS::Lambda::EventInvokeConfig",
    "AWS::KinesisFirehose::DeliveryStream",
];

/// Properties of `AWS::S3::Bucket` moto's CloudFormation ignores (it applies the name, the tags
/// and the default encryption, the latter without `BucketKeyEnabled`): the test applies them,
/// and the whole default encryption again, with the S3 API.
const BUCKET_PROPERTIES_APPLIED_BY_THE_TEST: &[&str] = &[
    "VersioningConfiguration",
    "PublicAccessBlockConfiguration",
    "OwnershipControls",
    "LoggingConfiguration",
    "LifecycleConfiguration",
    "NotificationConfiguration",
];

/// Properties of `AWS::Events::EventBus` moto's CloudFormation ignores (it creates the bus by
/// its name): the test applies them with the EventBridge API.
const BUS_PROPERTIES_APPLIED_BY_THE_TEST: &[&str] = &["Tags"];

/// Valid CloudFormation that moto rejects or resolves wrongly, rewritten in the copy the test
/// deploys (the committed templates keep the standard form).
const REWRITTEN_FOR_THE_EMULATOR: &[&str] = &[
    "AWS::KMS::Key Tags: moto hands CloudFormation's {Key, Value} tags to its KMS API, which \
     spells them {TagKey, TagValue}, and refuses CreateStack (saying the key is an undefined \
     resource); the deployed copy spells them that way",
    "Outputs with a Ref to an AWS::Events::EventBus: moto resolves it to a Python object, not the \
     bus's name, so the export the domain stacks import names no bus; the deployed copy uses \
     Fn::GetAtt Name, which is the same value on AWS",
    "AWS::S3::BucketPolicy statements with Principal \"*\": moto's check that an access-log \
     bucket's policy lets log delivery write (when logging is turned on) fails with HTTP 500 on a \
     principal that is not an object; the deployed copy writes the equivalent {\"AWS\": \"*\"}",
    "AWS::Events::Rule targets with Fn::GetAtt Arn of an AWS::KinesisFirehose::DeliveryStream: \
     moto does not create delivery streams, so the GetAtt names an undefined resource and \
     CreateStack fails; the deployed copy writes the stream's ARN with Fn::Sub from its \
     DeliveryStreamName, the same value on AWS",
];

/// What moto accepts and ignores, which the test neither applies nor checks (the workspace has
/// no Lambda, CloudWatch Logs, KMS or IAM SDK; none of it acts without Lambda code running).
const NOT_CHECKED: &[&str] = &[
    "AWS::Lambda::Function: Architectures (arm64 becomes x86_64), Layers, KmsKeyArn, \
     TracingConfig, LoggingConfig, ReservedConcurrentExecutions",
    "AWS::Events::Rule with a ScheduleExpression: moto stores the schedule (read back with the \
     rule) but never fires it, and matches a rule without a pattern to every event of its bus: \
     S3's events reach it, and moto, which cannot deliver to a function, then stops handing that \
     event to the bus's later rules (the probe rule is created before the stacks, and the test \
     puts no event on the default bus); the target's input transformer runs on a scheduled \
     event the test sends through a rule of its own",
    "AWS::Logs::LogGroup: KmsKeyId",
    "AWS::KMS::Key and AWS::KMS::Alias, AWS::IAM::Role and AWS::IAM::Policy, \
     AWS::Lambda::Permission and AWS::Lambda::LayerVersion: created, not read back",
];

/// The bucket receiving the placeholder zips and the expanded templates.
const ARTIFACTS_BUCKET: &str = "tessera-deploy-test-artifacts";
/// Their key prefix: `--code-uri s3://tessera-deploy-test-artifacts/tessera/deploy-test`.
const ARTIFACTS_PREFIX: &str = "tessera/deploy-test";
/// The smallest valid zip archive: an end-of-central-directory record and no entry.
const EMPTY_ZIP: [u8; 22] = [
    b'P', b'K', 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
/// Keys the test puts to see whether a bucket sends its events to EventBridge.
const PROBE_PREFIX: &str = "deploy-test-probe/";
/// How long a stack may take to reach `CREATE_COMPLETE`.
const STACK_TIMEOUT: Duration = Duration::from_secs(30);

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with `bash tests/run.sh`, which starts a moto \
             server for this test and sets TESSERA_MOTO_CFN_URL and TESSERA_SAM_PYTHON"
        )
    })
}

/// The SDK clients of the test, all on the emulator.
struct Aws {
    cfn: aws_sdk_cloudformation::Client,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    glue: aws_sdk_glue::Client,
    athena: aws_sdk_athena::Client,
    /// The queue of the test's own rule receiving S3's events on the default bus.
    probe_queue: String,
}

/// A stack the test deployed.
struct Deployed {
    name: String,
    /// The template as deployed: expanded, with the rewrites for the emulator.
    template: Value,
    /// Logical id → physical id of what moto created.
    physical: BTreeMap<String, String>,
    /// Logical ids of the resources moto did not create.
    missing: BTreeSet<String>,
}

impl Deployed {
    fn resources(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.template["Resources"].as_object().into_iter().flatten()
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.resources().filter(move |(_, r)| r["Type"] == ty)
    }
}

#[tokio::test]
async fn the_stacks_deploy_on_the_emulator() {
    let started = Instant::now();
    let moto = required("TESSERA_MOTO_CFN_URL");
    let python = required("TESSERA_SAM_PYTHON");
    let reset = reqwest::Client::new()
        .post(format!("{moto}/moto-api/reset"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto does not answer at {moto}: {e}"));
    assert!(reset.status().is_success(), "{reset:?}");

    // The mesh's AWS environment (its region and bus), pointed at the emulator.
    let mesh = sample_mesh();
    let mut settings = AwsSettings::from_environment(
        mesh.environment(tessera_infra::DEFAULT_ENVIRONMENT)
            .unwrap(),
    )
    .unwrap();
    settings.endpoint_url = Some(moto.clone());
    settings.force_path_style = true;
    let region = settings.region.clone();
    let sdk = settings.sdk_config().await;
    let mut aws = Aws {
        cfn: aws_sdk_cloudformation::Client::new(&sdk),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        events: aws_sdk_eventbridge::Client::new(&sdk),
        glue: aws_sdk_glue::Client::new(&sdk),
        athena: aws_sdk_athena::Client::new(&sdk),
        probe_queue: String::new(),
    };
    // Before the stacks: moto hands an S3 event to the default bus's rules in the order they
    // were made, and stops at the first it cannot deliver (a schedule rule's function).
    aws.probe_queue = probe_rule(&aws).await;

    // The templates, for code uploaded as zips, the domain stacks expanded from SAM.
    let mut options = Options::new("samplecli.toml");
    options.code = Code::parse(&format!("s3://{ARTIFACTS_BUCKET}/{ARTIFACTS_PREFIX}")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut templates = vec![(
        format!("{}-platform", mesh_prefix(&mesh.name)),
        tessera_infra::platform_template(&mesh, &options).unwrap(),
    )];
    // A domain after the domains it reads (it imports their keys' ARNs).
    let domains = tessera_infra::deploy_order(&mesh).unwrap();
    for domain in &domains {
        let sam = tessera_infra::domain_template(&mesh, &domain.name, &options).unwrap();
        assert_eq!(sam["Transform"], "AWS::Serverless-2016-10-31");
        let path = scratch
            .path()
            .join(tessera_infra::domain_template_file(&domain.name));
        std::fs::write(&path, tessera_infra::json::to_text(&sam)).unwrap();
        let expanded = expand_sam(&python, &path, &region);
        templates.push((domain_prefix(&mesh.name, &domain.name), expanded));
    }
    let mut rewritten = [0; 4];
    for (_, template) in &mut templates {
        for (total, n) in rewritten.iter_mut().zip(for_the_emulator(template)) {
            *total += n;
        }
    }
    for (rewrite, n) in REWRITTEN_FOR_THE_EMULATOR.iter().zip(rewritten) {
        assert!(n > 0, "nothing to rewrite any more: {rewrite}");
    }
    let synthesized = started.elapsed();

    // The artifacts: a placeholder zip for each function and for the mesh layer, named as
    // `--code-uri` promises, and the templates (over 51,200 bytes, so deployed from S3 as
    // `aws cloudformation deploy --s3-bucket` does).
    aws.s3
        .create_bucket()
        .bucket(ARTIFACTS_BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(region.as_str().into())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut uploaded = BTreeSet::new();
    for name in tessera_core::routing::Function::ALL
        .iter()
        .map(|f| f.name())
        .chain([tessera_infra::MESH_LAYER_DIR])
    {
        let key = format!("{ARTIFACTS_PREFIX}/{name}.zip");
        put(&aws, &key, EMPTY_ZIP.to_vec()).await;
        uploaded.insert((ARTIFACTS_BUCKET.to_owned(), key));
    }
    for (name, template) in templates.iter().skip(1) {
        assert_eq!(
            code_objects(template),
            uploaded,
            "{name}: the functions and the layer name exactly the uploaded zips"
        );
    }

    // The platform stack first (the domain stacks import its exports), then each domain.
    let mut deployed = Vec::new();
    for (name, template) in templates {
        let key = format!("{ARTIFACTS_PREFIX}/templates/{name}.template.json");
        put(&aws, &key, serde_json::to_vec(&template).unwrap()).await;
        let url = format!("https://{ARTIFACTS_BUCKET}.s3.{region}.amazonaws.com/{key}");
        deployed.push(deploy(&aws, &name, &url, template).await);
    }
    let created = started.elapsed();

    // Every resource of every template: created by moto, or named in a list.
    let account = account_of(&aws, &deployed[0].name).await;
    let exports = exports(&aws).await;
    for stack in &deployed {
        check_lists(stack);
    }
    // What the domain stacks import is exported, with the bus's name and the key's ARN.
    for stack in &deployed[1..] {
        for name in imports(&stack.template) {
            assert!(
                exports.get(&name).is_some_and(|v| !v.is_empty()),
                "{}: imports {name}, which is not exported: {exports:?}",
                stack.name
            );
        }
    }
    let platform = Resolver::new(&deployed[0], &exports, &region, &account);
    assert_eq!(
        exports[&tessera_infra::platform::bus_name_export(&mesh.name)],
        settings.event_bus
    );
    assert_eq!(
        exports[&tessera_infra::platform::key_arn_export(&mesh.name)],
        platform.attribute(tessera_infra::platform::KEY, "Arn")
    );

    // What moto left out, applied from the template: the properties of buckets and buses it
    // ignored, the resources it did not create in dependency order (a table after its
    // database), and last the buckets' access logging (S3 turns it on only when the access-log
    // bucket's policy lets log delivery write).
    for stack in &deployed {
        complete(&aws, &Resolver::new(stack, &exports, &region, &account)).await;
    }
    let applied = started.elapsed();

    // The real state, read back through each service and compared with the template.
    for stack in &deployed {
        let resolver = Resolver::new(stack, &exports, &region, &account);
        check_buckets(&aws, stack, &resolver).await;
        check_queues(&aws, stack, &resolver).await;
        check_rules(&aws, stack, &resolver).await;
        check_glue(&aws, stack, &resolver).await;
        check_platform(&aws, stack, &resolver).await;
        // The functions and log groups carry the template's names (the roles, policies, keys,
        // the layer and the permissions are in the stack, CREATE_COMPLETE).
        for (id, r) in stack.of_type("AWS::Lambda::Function") {
            assert_eq!(
                stack.physical.get(id).map(String::as_str),
                r["Properties"]["FunctionName"].as_str(),
                "{}: {id}",
                stack.name
            );
        }
        for (id, r) in stack.of_type("AWS::Logs::LogGroup") {
            assert_eq!(
                stack.physical.get(id).map(String::as_str),
                r["Properties"]["LogGroupName"].as_str(),
                "{}: {id}",
                stack.name
            );
        }
    }
    // The service-level check's schedule hands catalog-register its domain.
    for (domain, stack) in domains.iter().zip(&deployed[1..]) {
        let resolver = Resolver::new(stack, &exports, &region, &account);
        check_scheduled_input(&aws, stack, &resolver, &domain.name).await;
    }
    // Each domain's tables are what catalog-register reads and writes.
    let catalog = tessera_aws::glue::GlueCatalog::new(
        &sdk,
        mesh.domains.iter().map(|d| d.database.clone()).collect(),
    );
    let mut tables = 0;
    for domain in &mesh.domains {
        for product in &domain.products {
            let mut expected = tessera_infra::glue::registered_table(domain, product).unwrap();
            let found = catalog
                .get_table(&domain.database, &product.name)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("no table {}.{}", domain.database, product.name));
            expected.version = found.version;
            assert_eq!(found, expected);
            tables += 1;
        }
    }
    assert_eq!(tables, mesh.products().count());

    eprintln!(
        "deployed {} stacks ({} resources): synthesized and expanded in {:.1} s, created by {:.1} s, \
         completed by {:.1} s, checked by {:.1} s",
        deployed.len(),
        deployed
            .iter()
            .map(|s| s.resources().count())
            .sum::<usize>(),
        synthesized.as_secs_f64(),
        created.as_secs_f64(),
        applied.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    eprintln!(
        "applied by the test: {APPLIED_BY_THE_TEST:?}, bucket properties \
         {BUCKET_PROPERTIES_APPLIED_BY_THE_TEST:?} and BucketKeyEnabled, bus properties \
         {BUS_PROPERTIES_APPLIED_BY_THE_TEST:?}"
    );
    eprintln!("not created on the emulator: {NOT_CREATED_ON_THE_EMULATOR:?}");
    eprintln!("rewritten for the emulator: {REWRITTEN_FOR_THE_EMULATOR:#?}");
    eprintln!("not checked: {NOT_CHECKED:#?}");
}

// ---------------------------------------------------------------------------------------------
// Templates.

/// Every resource of the stack was created by moto, or its type is in [`APPLIED_BY_THE_TEST`]
/// or [`NOT_CREATED_ON_THE_EMULATOR`], and no type in those lists was created by moto.
fn check_lists(stack: &Deployed) {
    for (id, resource) in stack.resources() {
        let ty = resource["Type"].as_str().unwrap();
        let listed = APPLIED_BY_THE_TEST.contains(&ty) || NOT_CREATED_ON_THE_EMULATOR.contains(&ty);
        if stack.missing.contains(id) {
            assert!(
                listed,
                "{}: moto did not create {id} ({ty}), and no list of this test names {ty}",
                stack.name
            );
        } else {
            assert!(
                !listed,
                "{}: moto created {id} ({ty}) itself: take {ty} off the test's lists",
                stack.name
            );
        }
    }
}

/// The SAM template at `path` as plain CloudFormation.
fn expand_sam(python: &str, path: &Path, region: &str) -> Value {
    let script = repo_root().join("tests/infra/expand_sam.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(path)
        .arg(region)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (TESSERA_SAM_PYTHON): {e}"));
    assert!(
        out.status.success(),
        "{} {}: {}",
        script.display(),
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let expanded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(expanded.get("Transform").is_none(), "still a SAM template");
    for (id, r) in expanded["Resources"].as_object().unwrap() {
        assert!(
            !r["Type"].as_str().unwrap().starts_with("AWS::Serverless::"),
            "{id} was not expanded"
        );
        // The expansion had no managed-policy map: nothing may need one.
        assert!(
            r["Properties"].get("ManagedPolicyArns").is_none(),
            "{id} attaches managed policies"
        );
    }
    expanded
}

/// The rewrites of [`REWRITTEN_FOR_THE_EMULATOR`], in that order: how many times each applied.
fn for_the_emulator(template: &mut Value) -> [usize; 4] {
    let mut applied = [0; 4];
    let resources = template["Resources"].as_object_mut().unwrap();
    let streams: BTreeMap<String, String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::KinesisFirehose::DeliveryStream")
        .map(|(id, r)| {
            let name = r["Properties"]["DeliveryStreamName"].as_str().unwrap();
            (id.clone(), name.to_owned())
        })
        .collect();
    let buses: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Events::EventBus")
        .map(|(id, _)| id.clone())
        .collect();
    for r in resources.values_mut() {
        if r["Type"] == "AWS::KMS::Key" {
            for tag in r["Properties"]["Tags"].as_array_mut().unwrap() {
                *tag = json!({ "TagKey": tag["Key"], "TagValue": tag["Value"] });
                applied[0] += 1;
            }
        }
        if r["Type"] == "AWS::Events::Rule" {
            for target in r["Properties"]["Targets"].as_array_mut().unwrap() {
                let stream = target["Arn"]["Fn::GetAtt"][0].as_str().map(str::to_owned);
                if let Some(name) = stream.and_then(|id| streams.get(&id)) {
                    target["Arn"] = json!({ "Fn::Sub": format!(
                        "arn:${{AWS::Partition}}:firehose:${{AWS::Region}}:${{AWS::AccountId}}:deliverystream/{name}"
                    ) });
                    applied[3] += 1;
                }
            }
        }
        if r["Type"] == "AWS::S3::BucketPolicy" {
            let statements = &mut r["Properties"]["PolicyDocument"]["Statement"];
            for statement in statements.as_array_mut().unwrap() {
                if statement["Principal"] == "*" {
                    statement["Principal"] = json!({ "AWS": "*" });
                    applied[2] += 1;
                }
            }
        }
    }
    for output in template["Outputs"].as_object_mut().into_iter().flatten() {
        let value = &mut output.1["Value"];
        if let Some(id) = value["Ref"].as_str().filter(|id| buses.contains(*id)) {
            *value = json!({ "Fn::GetAtt": [id, "Name"] });
            applied[1] += 1;
        }
    }
    applied
}

/// The S3 objects the template's functions and layers are made of.
fn code_objects(template: &Value) -> BTreeSet<(String, String)> {
    let mut objects = BTreeSet::new();
    for r in template["Resources"].as_object().unwrap().values() {
        let location = match r["Type"].as_str() {
            Some("AWS::Lambda::Function") => &r["Properties"]["Code"],
            Some("AWS::Lambda::LayerVersion") => &r["Properties"]["Content"],
            _ => continue,
        };
        objects.insert((
            text(location, "S3Bucket").to_owned(),
            text(location, "S3Key").to_owned(),
        ));
    }
    objects
}

/// The logical ids a resource refers to (`Ref`, `Fn::GetAtt`, `Fn::Sub` variables, `DependsOn`).
fn references(v: &Value) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    match v {
        Value::Object(o) => {
            for (key, value) in o {
                match (key.as_str(), value) {
                    ("Ref", Value::String(id)) => {
                        ids.insert(id.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        ids.insert(parts[0].as_str().unwrap().to_owned());
                    }
                    ("Fn::Sub", Value::String(text)) => {
                        for variable in text.split("${").skip(1) {
                            let variable = variable.split('}').next().unwrap();
                            if !variable.starts_with('!') {
                                ids.insert(variable.split('.').next().unwrap().to_owned());
                            }
                        }
                    }
                    ("DependsOn", Value::String(id)) => {
                        ids.insert(id.clone());
                    }
                    ("DependsOn", Value::Array(items)) => {
                        ids.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                    _ => ids.extend(references(value)),
                }
            }
        }
        Value::Array(items) => ids.extend(items.iter().flat_map(references)),
        _ => {}
    }
    ids
}

/// Every export a template imports.
fn imports(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Object(o) => match o.get("Fn::ImportValue") {
            Some(name) => BTreeSet::from([name.as_str().unwrap().to_owned()]),
            None => o.values().flat_map(imports).collect(),
        },
        Value::Array(items) => items.iter().flat_map(imports).collect(),
        _ => BTreeSet::new(),
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v}"))
}

/// Panics on a key of `v` outside `known`: a property the test would silently skip.
fn only(v: &Value, known: &[&str], what: &str) {
    for key in v.as_object().unwrap().keys() {
        assert!(
            known.contains(&key.as_str()),
            "{what}: the test does not know how to apply `{key}`"
        );
    }
}

fn tags(v: &Value) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (text(t, "Key").to_owned(), text(t, "Value").to_owned()))
        .collect();
    tags.sort();
    tags
}

fn tag_list<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    let mut pairs: Vec<(&str, &str)> = pairs.collect();
    pairs.sort();
    Value::Array(
        pairs
            .into_iter()
            .map(|(k, v)| json!({ "Key": k, "Value": v }))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Deploying.

async fn put(aws: &Aws, key: &str, body: Vec<u8>) {
    aws.s3
        .put_object()
        .bucket(ARTIFACTS_BUCKET)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

/// Creates the stack and waits for `CREATE_COMPLETE`; on anything else, fails with the events.
async fn deploy(aws: &Aws, name: &str, url: &str, template: Value) -> Deployed {
    aws.cfn
        .create_stack()
        .stack_name(name)
        .template_url(url)
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStack {name}: {}", DisplayErrorContext(&e)));
    let deadline = Instant::now() + STACK_TIMEOUT;
    loop {
        let out = aws
            .cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .unwrap();
        let stack = &out.stacks()[0];
        match stack.stack_status() {
            Some(StackStatus::CreateComplete) => break,
            Some(StackStatus::CreateInProgress) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            status => panic!(
                "stack {name}: {status:?} {}\n{}",
                stack.stack_status_reason().unwrap_or_default(),
                events(aws, name).await
            ),
        }
    }
    let resources = aws
        .cfn
        .describe_stack_resources()
        .stack_name(name)
        .send()
        .await
        .unwrap();
    let mut physical = BTreeMap::new();
    let mut listed = BTreeSet::new();
    for r in resources.stack_resources() {
        let Some(id) = r.logical_resource_id().filter(|id| !id.is_empty()) else {
            continue;
        };
        assert_eq!(
            r.resource_type(),
            template["Resources"][id]["Type"].as_str(),
            "{name}: {id}"
        );
        assert_eq!(
            r.resource_status().map(|s| s.as_str()),
            Some("CREATE_COMPLETE"),
            "{name}: {id}"
        );
        listed.insert(id.to_owned());
        if let Some(p) = r.physical_resource_id() {
            physical.insert(id.to_owned(), p.to_owned());
        }
    }
    let missing = template["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|id| !listed.contains(*id))
        .cloned()
        .collect();
    Deployed {
        name: name.to_owned(),
        template,
        physical,
        missing,
    }
}

async fn events(aws: &Aws, name: &str) -> String {
    let Ok(out) = aws
        .cfn
        .describe_stack_events()
        .stack_name(name)
        .send()
        .await
    else {
        return "(no events)".into();
    };
    out.stack_events()
        .iter()
        .map(|e| {
            format!(
                "  {} {} {:?} {}",
                e.logical_resource_id().unwrap_or_default(),
                e.resource_type().unwrap_or_default(),
                e.resource_status(),
                e.resource_status_reason().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The account the stacks are in, from a stack's ARN.
async fn account_of(aws: &Aws, stack: &str) -> String {
    let out = aws
        .cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .unwrap();
    let id = out.stacks()[0].stack_id().unwrap();
    id.split(':').nth(4).unwrap().to_owned()
}

async fn exports(aws: &Aws) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut token = None;
    loop {
        let out = aws
            .cfn
            .list_exports()
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        for e in out.exports() {
            all.insert(
                e.name().unwrap_or_default().to_owned(),
                e.value().unwrap_or_default().to_owned(),
            );
        }
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return all;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resolving the template's intrinsic functions to what the stack created.

/// Resolves `Ref`, `Fn::GetAtt … Arn`, `Fn::Sub` and `Fn::ImportValue` in a deployed template's
/// properties the way CloudFormation does, from the physical ids moto reports: what the
/// resources the test applies itself refer to. Anything else fails loudly.
struct Resolver<'a> {
    stack: &'a Deployed,
    exports: &'a BTreeMap<String, String>,
    region: &'a str,
    account: &'a str,
}

impl<'a> Resolver<'a> {
    fn new(
        stack: &'a Deployed,
        exports: &'a BTreeMap<String, String>,
        region: &'a str,
        account: &'a str,
    ) -> Resolver<'a> {
        Resolver {
            stack,
            exports,
            region,
            account,
        }
    }

    fn resource(&self, id: &str) -> &Value {
        let r = &self.stack.template["Resources"][id];
        assert!(r.is_object(), "{}: no resource {id}", self.stack.name);
        r
    }

    fn resolve(&self, v: &Value) -> Value {
        match v {
            Value::Object(o)
                if o.len() == 1 && o.keys().all(|k| k == "Ref" || k.starts_with("Fn::")) =>
            {
                let (function, argument) = o.iter().next().unwrap();
                match function.as_str() {
                    "Ref" => json!(self.reference(argument.as_str().unwrap())),
                    "Fn::GetAtt" => {
                        let [id, attribute] = argument.as_array().unwrap().as_slice() else {
                            panic!("malformed {v}")
                        };
                        json!(self.attribute(id.as_str().unwrap(), attribute.as_str().unwrap()))
                    }
                    "Fn::Sub" => json!(self.sub(argument.as_str().unwrap())),
                    "Fn::ImportValue" => {
                        let name = argument.as_str().unwrap();
                        json!(
                            self.exports
                                .get(name)
                                .unwrap_or_else(|| panic!("no export {name}"))
                        )
                    }
                    other => panic!(
                        "{}: the test cannot resolve {other} in {v}",
                        self.stack.name
                    ),
                }
            }
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.resolve(v)).collect()),
            other => other.clone(),
        }
    }

    fn physical(&self, id: &str) -> &str {
        self.stack
            .physical
            .get(id)
            .unwrap_or_else(|| panic!("{}: moto reports no physical id for {id}", self.stack.name))
    }

    fn reference(&self, id: &str) -> String {
        match id {
            "AWS::AccountId" => return self.account.to_owned(),
            "AWS::Region" => return self.region.to_owned(),
            "AWS::Partition" => return "aws".to_owned(),
            "AWS::URLSuffix" => return "amazonaws.com".to_owned(),
            _ => {}
        }
        let r = self.resource(id);
        match r["Type"].as_str().unwrap() {
            // Not created by moto: what Ref returns for it on AWS.
            "AWS::Glue::Database" => text(&r["Properties"]["DatabaseInput"], "Name").to_owned(),
            _ => self.physical(id).to_owned(),
        }
    }

    fn attribute(&self, id: &str, attribute: &str) -> String {
        let r = self.resource(id);
        let ty = r["Type"].as_str().unwrap();
        assert_eq!(
            attribute, "Arn",
            "{}: the test resolves only Arn, not {id}.{attribute}",
            self.stack.name
        );
        let (region, account) = (self.region, self.account);
        let physical = self.physical(id);
        match ty {
            "AWS::S3::Bucket" => format!("arn:aws:s3:::{physical}"),
            // The physical id of a queue is its URL.
            "AWS::SQS::Queue" => format!(
                "arn:aws:sqs:{region}:{account}:{}",
                physical.rsplit('/').next().unwrap()
            ),
            "AWS::KMS::Key" => format!("arn:aws:kms:{region}:{account}:key/{physical}"),
            // The physical id of a role is its name.
            "AWS::IAM::Role" => format!("arn:aws:iam::{account}:role/{physical}"),
            "AWS::Lambda::Function" => {
                format!("arn:aws:lambda:{region}:{account}:function:{physical}")
            }
            "AWS::Events::Rule" => match self.resolve(&r["Properties"]["EventBusName"]).as_str() {
                None | Some("default") => {
                    format!("arn:aws:events:{region}:{account}:rule/{physical}")
                }
                Some(bus) => format!("arn:aws:events:{region}:{account}:rule/{bus}/{physical}"),
            },
            other => panic!(
                "{}: the test cannot resolve the ARN of {id} ({other})",
                self.stack.name
            ),
        }
    }

    fn sub(&self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .unwrap_or_else(|| panic!("unclosed variable in {template}"));
            let variable = &after[..end];
            if let Some(literal) = variable.strip_prefix('!') {
                out.push_str(&format!("${{{literal}}}"));
            } else if let Some((id, attribute)) = variable.split_once('.') {
                out.push_str(&self.attribute(id, attribute));
            } else {
                out.push_str(&self.reference(variable));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Applying what moto did not, from the template's properties.

/// Applies to one stack what moto left out (see the caller).
async fn complete(aws: &Aws, resolver: &Resolver<'_>) {
    let stack = resolver.stack;
    for (id, resource) in stack.of_type("AWS::S3::Bucket") {
        complete_bucket(aws, resolver, &stack.name, id, resource).await;
    }
    for (id, resource) in stack.of_type("AWS::Events::EventBus") {
        complete_bus(aws, resolver, &stack.name, id, resource).await;
    }
    let mut pending: Vec<(&String, &Value)> = stack
        .resources()
        .filter(|(id, r)| {
            stack.missing.contains(*id)
                && APPLIED_BY_THE_TEST.contains(&r["Type"].as_str().unwrap())
        })
        .collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|(_, r)| {
                references(r)
                    .iter()
                    .all(|dependency| !pending.iter().any(|(id, _)| *id == dependency))
            })
            .unwrap_or_else(|| panic!("{}: circular references", stack.name));
        let (id, resource) = pending.remove(ready);
        apply(aws, resolver, id, resource).await;
    }
    for (id, resource) in stack.of_type("AWS::S3::Bucket") {
        turn_on_logging(aws, resolver, &stack.name, id, resource).await;
    }
}

/// Applies one resource moto did not create (a type of [`APPLIED_BY_THE_TEST`]).
async fn apply(aws: &Aws, resolver: &Resolver<'_>, id: &str, resource: &Value) {
    let p = resolver.resolve(&resource["Properties"]);
    let what = format!("{}: {id}", resolver.stack.name);
    match resource["Type"].as_str().unwrap() {
        "AWS::S3::BucketPolicy" => {
            only(&p, &["Bucket", "PolicyDocument"], &what);
            aws.s3
                .put_bucket_policy()
                .bucket(text(&p, "Bucket"))
                .policy(p["PolicyDocument"].to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)));
        }
        "AWS::SQS::QueuePolicy" => {
            only(&p, &["Queues", "PolicyDocument"], &what);
            for queue in p["Queues"].as_array().unwrap() {
                aws.sqs
                    .set_queue_attributes()
                    .queue_url(queue.as_str().unwrap())
                    .attributes(QueueAttributeName::Policy, p["PolicyDocument"].to_string())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)));
            }
        }
        "AWS::Glue::Database" => {
            only(&p, &["CatalogId", "DatabaseInput"], &what);
            let input = &p["DatabaseInput"];
            only(input, &["Name", "Description"], &what);
            aws.glue
                .create_database()
                .catalog_id(text(&p, "CatalogId"))
                .database_input(
                    aws_sdk_glue::types::DatabaseInput::builder()
                        .name(text(input, "Name"))
                        .set_description(input["Description"].as_str().map(str::to_owned))
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)));
        }
        "AWS::Glue::Table" => {
            only(&p, &["CatalogId", "DatabaseName", "TableInput"], &what);
            aws.glue
                .create_table()
                .catalog_id(text(&p, "CatalogId"))
                .database_name(text(&p, "DatabaseName"))
                .table_input(table_input(&p["TableInput"], &what))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)));
        }
        "AWS::Glue::DataCatalogEncryptionSettings" => {
            only(&p, &["CatalogId", "DataCatalogEncryptionSettings"], &what);
            let settings = &p["DataCatalogEncryptionSettings"];
            only(
                settings,
                &["EncryptionAtRest", "ConnectionPasswordEncryption"],
                &what,
            );
            let at_rest = &settings["EncryptionAtRest"];
            only(at_rest, &["CatalogEncryptionMode", "SseAwsKmsKeyId"], &what);
            let passwords = &settings["ConnectionPasswordEncryption"];
            only(
                passwords,
                &["ReturnConnectionPasswordEncrypted", "KmsKeyId"],
                &what,
            );
            use aws_sdk_glue::types::{
                CatalogEncryptionMode, ConnectionPasswordEncryption, DataCatalogEncryptionSettings,
                EncryptionAtRest,
            };
            aws.glue
                .put_data_catalog_encryption_settings()
                .catalog_id(text(&p, "CatalogId"))
                .data_catalog_encryption_settings(
                    DataCatalogEncryptionSettings::builder()
                        .encryption_at_rest(
                            EncryptionAtRest::builder()
                                .catalog_encryption_mode(CatalogEncryptionMode::from(text(
                                    at_rest,
                                    "CatalogEncryptionMode",
                                )))
                                .sse_aws_kms_key_id(text(at_rest, "SseAwsKmsKeyId"))
                                .build()
                                .unwrap(),
                        )
                        .connection_password_encryption(
                            ConnectionPasswordEncryption::builder()
                                .return_connection_password_encrypted(
                                    passwords["ReturnConnectionPasswordEncrypted"]
                                        .as_bool()
                                        .unwrap(),
                                )
                                .aws_kms_key_id(text(passwords, "KmsKeyId"))
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)));
        }
        "AWS::Athena::WorkGroup" => {
            only(
                &p,
                &[
                    "Name",
                    "Description",
                    "State",
                    "WorkGroupConfiguration",
                    "Tags",
                ],
                &what,
            );
            assert_eq!(p["State"], "ENABLED", "{what}: a new workgroup is enabled");
            let c = &p["WorkGroupConfiguration"];
            only(
                c,
                &[
                    "EnforceWorkGroupConfiguration",
                    "PublishCloudWatchMetricsEnabled",
                    "BytesScannedCutoffPerQuery",
                    "EngineVersion",
                    "ResultConfiguration",
                ],
                &what,
            );
            let results = &c["ResultConfiguration"];
            only(
                results,
                &["OutputLocation", "EncryptionConfiguration"],
                &what,
            );
            let encryption = &results["EncryptionConfiguration"];
            only(encryption, &["EncryptionOption", "KmsKey"], &what);
            use aws_sdk_athena::types::{
                EncryptionConfiguration, EncryptionOption, EngineVersion, ResultConfiguration, Tag,
                WorkGroupConfiguration,
            };
            aws.athena
                .create_work_group()
                .name(text(&p, "Name"))
                .description(text(&p, "Description"))
                .configuration(
                    WorkGroupConfiguration::builder()
                        .enforce_work_group_configuration(
                            c["EnforceWorkGroupConfiguration"].as_bool().unwrap(),
                        )
                        .publish_cloud_watch_metrics_enabled(
                            c["PublishCloudWatchMetricsEnabled"].as_bool().unwrap(),
                        )
                        .bytes_scanned_cutoff_per_query(
                            c["BytesScannedCutoffPerQuery"].as_i64().unwrap(),
                        )
                        .engine_version(
                            EngineVersion::builder()
                                .selected_engine_version(text(
                                    &c["EngineVersion"],
                                    "SelectedEngineVersion",
                                ))
                                .build(),
                        )
                        .result_configuration(
                            ResultConfiguration::builder()
                                .output_location(text(results, "OutputLocation"))
                                .encryption_configuration(
                                    EncryptionConfiguration::builder()
                                        .encryption_option(EncryptionOption::from(text(
                                            encryption,
                                            "EncryptionOption",
                                        )))
                                        .kms_key(text(encryption, "KmsKey"))
                                        .build()
                                        .unwrap(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .set_tags(Some(
                    tags(&p["Tags"])
                        .into_iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)));
        }
        other => panic!("{what}: the test does not apply {other}"),
    }
}

fn glue_columns(v: &Value, what: &str) -> Vec<aws_sdk_glue::types::Column> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            only(c, &["Name", "Type", "Comment"], what);
            aws_sdk_glue::types::Column::builder()
                .name(text(c, "Name"))
                .r#type(text(c, "Type"))
                .set_comment(c["Comment"].as_str().map(str::to_owned))
                .build()
                .unwrap()
        })
        .collect()
}

fn string_map(v: &Value) -> std::collections::HashMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn table_input(t: &Value, what: &str) -> aws_sdk_glue::types::TableInput {
    use aws_sdk_glue::types::{SerDeInfo, StorageDescriptor, TableInput};
    only(
        t,
        &[
            "Name",
            "Description",
            "TableType",
            "Parameters",
            "PartitionKeys",
            "StorageDescriptor",
        ],
        what,
    );
    let sd = &t["StorageDescriptor"];
    only(
        sd,
        &[
            "Columns",
            "Location",
            "InputFormat",
            "OutputFormat",
            "SerdeInfo",
        ],
        what,
    );
    let serde = &sd["SerdeInfo"];
    only(serde, &["SerializationLibrary", "Parameters"], what);
    TableInput::builder()
        .name(text(t, "Name"))
        .set_description(t["Description"].as_str().map(str::to_owned))
        .table_type(text(t, "TableType"))
        .set_parameters(Some(string_map(&t["Parameters"])))
        .set_partition_keys(Some(glue_columns(&t["PartitionKeys"], what)))
        .storage_descriptor(
            StorageDescriptor::builder()
                .set_columns(Some(glue_columns(&sd["Columns"], what)))
                .location(text(sd, "Location"))
                .input_format(text(sd, "InputFormat"))
                .output_format(text(sd, "OutputFormat"))
                .serde_info(
                    SerDeInfo::builder()
                        .serialization_library(text(serde, "SerializationLibrary"))
                        .set_parameters(Some(string_map(&serde["Parameters"])))
                        .build(),
                )
                .build(),
        )
        .build()
        .unwrap()
}

/// The bus properties moto ignored ([`BUS_PROPERTIES_APPLIED_BY_THE_TEST`]), applied with the
/// EventBridge API after checking that moto did leave them out.
async fn complete_bus(aws: &Aws, resolver: &Resolver<'_>, stack: &str, id: &str, r: &Value) {
    let what = format!("{stack}: {id}");
    let p = resolver.resolve(&r["Properties"]);
    let mut known = vec!["Name"];
    known.extend(BUS_PROPERTIES_APPLIED_BY_THE_TEST);
    only(&p, &known, &what);
    let arn = aws
        .events
        .describe_event_bus()
        .name(text(&p, "Name"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)))
        .arn()
        .unwrap()
        .to_owned();
    let before = aws
        .events
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(
        before.tags().is_empty(),
        "{what}: moto applied Tags itself: take it off BUS_PROPERTIES_APPLIED_BY_THE_TEST"
    );
    aws.events
        .tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(
            tags(&p["Tags"])
                .into_iter()
                .map(|(k, v)| {
                    aws_sdk_eventbridge::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)));
}

/// The bucket properties moto ignored ([`BUCKET_PROPERTIES_APPLIED_BY_THE_TEST`], and the bucket
/// key), applied with the S3 API after checking that moto did leave them out.
async fn complete_bucket(aws: &Aws, resolver: &Resolver<'_>, stack: &str, id: &str, r: &Value) {
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
        EventBridgeConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, NoncurrentVersionExpiration, NotificationConfiguration,
        ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule, VersioningConfiguration,
    };
    let what = format!("{stack}: {id}");
    let p = resolver.resolve(&r["Properties"]);
    let mut known = vec!["BucketName", "Tags", "BucketEncryption"];
    known.extend(BUCKET_PROPERTIES_APPLIED_BY_THE_TEST);
    only(&p, &known, &what);
    let bucket = resolver.physical(id).to_owned();

    // What moto left out.
    let before = bucket_state(aws, &bucket).await;
    for property in BUCKET_PROPERTIES_APPLIED_BY_THE_TEST {
        if p.get(*property).is_some() {
            assert!(
                before.get(*property).is_none(),
                "{what}: moto applied {property} itself: take it off BUCKET_PROPERTIES_APPLIED_BY_THE_TEST"
            );
        }
    }
    if p.get("NotificationConfiguration").is_some() {
        assert!(
            !sends_events(aws, &bucket).await,
            "{what}: moto applied NotificationConfiguration itself: take it off BUCKET_PROPERTIES_APPLIED_BY_THE_TEST"
        );
    }
    let wants_bucket_key =
        p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["BucketKeyEnabled"] == true;
    if wants_bucket_key {
        assert!(
            before["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
                .get("BucketKeyEnabled")
                .is_none(),
            "{what}: moto applied BucketKeyEnabled itself"
        );
    }

    let s3 = &aws.s3;
    let fail = |e: &dyn std::error::Error| -> ! { panic!("{what}: {e:?}") };
    let rules: Vec<ServerSideEncryptionRule> =
        p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rule| {
                only(
                    rule,
                    &["BucketKeyEnabled", "ServerSideEncryptionByDefault"],
                    &what,
                );
                let default = &rule["ServerSideEncryptionByDefault"];
                only(default, &["SSEAlgorithm", "KMSMasterKeyID"], &what);
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::from(text(
                                default,
                                "SSEAlgorithm",
                            )))
                            .set_kms_master_key_id(
                                default["KMSMasterKeyID"].as_str().map(str::to_owned),
                            )
                            .build()
                            .unwrap(),
                    )
                    .set_bucket_key_enabled(rule["BucketKeyEnabled"].as_bool())
                    .build()
            })
            .collect();
    s3.put_bucket_encryption()
        .bucket(&bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| fail(&e));
    if let Some(v) = p.get("VersioningConfiguration") {
        only(v, &["Status"], &what);
        s3.put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::from(text(v, "Status")))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| fail(&e));
    }
    if let Some(b) = p.get("PublicAccessBlockConfiguration") {
        let flag = |k: &str| b[k].as_bool().unwrap();
        only(
            b,
            &[
                "BlockPublicAcls",
                "BlockPublicPolicy",
                "IgnorePublicAcls",
                "RestrictPublicBuckets",
            ],
            &what,
        );
        s3.put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(flag("BlockPublicAcls"))
                    .block_public_policy(flag("BlockPublicPolicy"))
                    .ignore_public_acls(flag("IgnorePublicAcls"))
                    .restrict_public_buckets(flag("RestrictPublicBuckets"))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| fail(&e));
    }
    if let Some(o) = p.get("OwnershipControls") {
        only(o, &["Rules"], &what);
        let rules = o["Rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rule| {
                only(rule, &["ObjectOwnership"], &what);
                OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::from(text(rule, "ObjectOwnership")))
                    .build()
                    .unwrap()
            })
            .collect();
        s3.put_bucket_ownership_controls()
            .bucket(&bucket)
            .ownership_controls(
                OwnershipControls::builder()
                    .set_rules(Some(rules))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| fail(&e));
    }
    if let Some(l) = p.get("LifecycleConfiguration") {
        only(l, &["Rules"], &what);
        let rules = l["Rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rule| {
                only(
                    rule,
                    &[
                        "Id",
                        "Status",
                        "Prefix",
                        "ExpirationInDays",
                        "ExpiredObjectDeleteMarker",
                        "NoncurrentVersionExpiration",
                        "AbortIncompleteMultipartUpload",
                    ],
                    &what,
                );
                let expiration = match (
                    rule["ExpirationInDays"].as_i64(),
                    rule["ExpiredObjectDeleteMarker"].as_bool(),
                ) {
                    (None, None) => None,
                    (days, marker) => Some(
                        LifecycleExpiration::builder()
                            .set_days(days.map(|d| i32::try_from(d).unwrap()))
                            .set_expired_object_delete_marker(marker)
                            .build(),
                    ),
                };
                LifecycleRule::builder()
                    .id(text(rule, "Id"))
                    .status(ExpirationStatus::from(text(rule, "Status")))
                    .filter(
                        LifecycleRuleFilter::builder()
                            .prefix(rule["Prefix"].as_str().unwrap_or_default())
                            .build(),
                    )
                    .set_expiration(expiration)
                    .set_noncurrent_version_expiration(rule.get("NoncurrentVersionExpiration").map(
                        |n| {
                            only(n, &["NoncurrentDays"], &what);
                            NoncurrentVersionExpiration::builder()
                                .noncurrent_days(
                                    i32::try_from(n["NoncurrentDays"].as_i64().unwrap()).unwrap(),
                                )
                                .build()
                        },
                    ))
                    .set_abort_incomplete_multipart_upload(
                        rule.get("AbortIncompleteMultipartUpload").map(|a| {
                            only(a, &["DaysAfterInitiation"], &what);
                            AbortIncompleteMultipartUpload::builder()
                                .days_after_initiation(
                                    i32::try_from(a["DaysAfterInitiation"].as_i64().unwrap())
                                        .unwrap(),
                                )
                                .build()
                        }),
                    )
                    .build()
                    .unwrap()
            })
            .collect();
        s3.put_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| fail(&e));
    }
    if let Some(n) = p.get("NotificationConfiguration") {
        only(n, &["EventBridgeConfiguration"], &what);
        only(
            &n["EventBridgeConfiguration"],
            &["EventBridgeEnabled"],
            &what,
        );
        assert_eq!(n["EventBridgeConfiguration"]["EventBridgeEnabled"], true);
        s3.put_bucket_notification_configuration()
            .bucket(&bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .event_bridge_configuration(EventBridgeConfiguration::builder().build())
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| fail(&e));
    }
    // S3 sends the bucket's events to EventBridge exactly when the template says so (checked
    // now: once the TLS-only policy is on, moto refuses every plain-HTTP put).
    assert_eq!(
        sends_events(aws, &bucket).await,
        p.get("NotificationConfiguration").is_some(),
        "{what}: S3 events"
    );
}

/// The bucket's access logging ([`BUCKET_PROPERTIES_APPLIED_BY_THE_TEST`]): after the bucket
/// policies, since S3 turns logging on only when the access-log bucket's policy lets log
/// delivery write there.
async fn turn_on_logging(aws: &Aws, resolver: &Resolver<'_>, stack: &str, id: &str, r: &Value) {
    use aws_sdk_s3::types::{BucketLoggingStatus, LoggingEnabled};
    let what = format!("{stack}: {id}");
    let p = resolver.resolve(&r["Properties"]);
    let bucket = resolver.physical(id);
    let Some(l) = p.get("LoggingConfiguration") else {
        return;
    };
    only(l, &["DestinationBucketName", "LogFilePrefix"], &what);
    aws.s3
        .put_bucket_logging()
        .bucket(bucket)
        .bucket_logging_status(
            BucketLoggingStatus::builder()
                .logging_enabled(
                    LoggingEnabled::builder()
                        .target_bucket(text(l, "DestinationBucketName"))
                        .target_prefix(text(l, "LogFilePrefix"))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)));
}

// ---------------------------------------------------------------------------------------------
// Reading the state back, in the template's shape.

/// A bucket's configuration as S3 reports it, in the shape of `AWS::S3::Bucket`'s properties
/// (without the name); a configuration S3 does not have, or does not report, is absent (and
/// then differs from the template's). moto keeps a bucket's EventBridge configuration but does
/// not report it: [`sends_events`] tells by S3's behaviour instead.
async fn bucket_state(aws: &Aws, bucket: &str) -> Value {
    let s3 = &aws.s3;
    let mut state = Map::new();
    if let Ok(out) = s3.get_bucket_encryption().bucket(bucket).send().await {
        let rules: Vec<Value> = out
            .server_side_encryption_configuration()
            .map(|c| c.rules())
            .unwrap_or_default()
            .iter()
            .map(|rule| {
                let mut r = Map::new();
                if rule.bucket_key_enabled() == Some(true) {
                    r.insert("BucketKeyEnabled".into(), json!(true));
                }
                if let Some(d) = rule.apply_server_side_encryption_by_default() {
                    let mut default = Map::new();
                    default.insert("SSEAlgorithm".into(), json!(d.sse_algorithm().as_str()));
                    if let Some(key) = d.kms_master_key_id() {
                        default.insert("KMSMasterKeyID".into(), json!(key));
                    }
                    r.insert(
                        "ServerSideEncryptionByDefault".into(),
                        Value::Object(default),
                    );
                }
                Value::Object(r)
            })
            .collect();
        state.insert(
            "BucketEncryption".into(),
            json!({ "ServerSideEncryptionConfiguration": rules }),
        );
    }
    if let Some(status) = versioning_status(s3, bucket).await {
        state.insert(
            "VersioningConfiguration".into(),
            json!({ "Status": status }),
        );
    }
    if let Ok(out) = s3.get_public_access_block().bucket(bucket).send().await
        && let Some(b) = out.public_access_block_configuration()
    {
        state.insert(
            "PublicAccessBlockConfiguration".into(),
            json!({
                "BlockPublicAcls": b.block_public_acls(),
                "BlockPublicPolicy": b.block_public_policy(),
                "IgnorePublicAcls": b.ignore_public_acls(),
                "RestrictPublicBuckets": b.restrict_public_buckets(),
            }),
        );
    }
    if let Ok(out) = s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
        && let Some(o) = out.ownership_controls()
    {
        let rules: Vec<Value> = o
            .rules()
            .iter()
            .map(|r| json!({ "ObjectOwnership": r.object_ownership().as_str() }))
            .collect();
        state.insert("OwnershipControls".into(), json!({ "Rules": rules }));
    }
    if let Ok(out) = s3.get_bucket_logging().bucket(bucket).send().await
        && let Some(l) = out.logging_enabled()
    {
        state.insert(
            "LoggingConfiguration".into(),
            json!({ "DestinationBucketName": l.target_bucket(), "LogFilePrefix": l.target_prefix() }),
        );
    }
    if let Ok(out) = s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        let rules: Vec<Value> = out
            .rules()
            .iter()
            .map(|rule| {
                let mut r = Map::new();
                r.insert("Id".into(), json!(rule.id()));
                r.insert("Status".into(), json!(rule.status().as_str()));
                #[allow(deprecated)]
                let prefix = rule
                    .filter()
                    .and_then(|f| f.prefix())
                    .or(rule.prefix())
                    .unwrap_or_default();
                if !prefix.is_empty() {
                    r.insert("Prefix".into(), json!(prefix));
                }
                if let Some(e) = rule.expiration() {
                    if let Some(days) = e.days() {
                        r.insert("ExpirationInDays".into(), json!(days));
                    }
                    if let Some(marker) = e.expired_object_delete_marker() {
                        r.insert("ExpiredObjectDeleteMarker".into(), json!(marker));
                    }
                }
                if let Some(n) = rule.noncurrent_version_expiration() {
                    r.insert(
                        "NoncurrentVersionExpiration".into(),
                        json!({ "NoncurrentDays": n.noncurrent_days() }),
                    );
                }
                if let Some(a) = rule.abort_incomplete_multipart_upload() {
                    r.insert(
                        "AbortIncompleteMultipartUpload".into(),
                        json!({ "DaysAfterInitiation": a.days_after_initiation() }),
                    );
                }
                Value::Object(r)
            })
            .collect();
        state.insert("LifecycleConfiguration".into(), json!({ "Rules": rules }));
    }
    if let Ok(out) = s3.get_bucket_tagging().bucket(bucket).send().await {
        state.insert(
            "Tags".into(),
            tag_list(out.tag_set().iter().map(|t| (t.key(), t.value()))),
        );
    }
    Value::Object(state)
}

/// The bucket's versioning status. moto (5.2.5) names the answer's root element
/// `GetBucketVersioningResponse` where S3 writes `VersioningConfiguration`, and the SDK refuses
/// the document: then the status is read from the refused document itself.
async fn versioning_status(s3: &aws_sdk_s3::Client, bucket: &str) -> Option<String> {
    match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => out.status().map(|s| s.as_str().to_owned()),
        Err(e) => {
            let raw = e.raw_response().unwrap_or_else(|| {
                panic!("GetBucketVersioning {bucket}: {}", DisplayErrorContext(&e))
            });
            assert_eq!(
                raw.status().as_u16(),
                200,
                "GetBucketVersioning {bucket}: {}",
                DisplayErrorContext(&e)
            );
            let body = String::from_utf8_lossy(raw.body().bytes().unwrap_or_default()).into_owned();
            assert!(body.contains("<GetBucketVersioningResponse"), "{body}");
            let status = body.split("<Status>").nth(1)?.split("</Status>").next()?;
            Some(status.to_owned())
        }
    }
}

/// The test's own rule, on the default bus, sending S3's `Object Created` events for keys under
/// [`PROBE_PREFIX`] (no stack's rule matches them) to a queue: the queue's URL.
async fn probe_rule(aws: &Aws) -> String {
    let (url, arn) = tessera_aws::dev::queue(&aws.sqs, "tessera-deploy-test-probe")
        .await
        .unwrap();
    let pattern = json!({
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": { "object": { "key": [{ "prefix": PROBE_PREFIX }] } },
    });
    aws.events
        .put_rule()
        .name("tessera-deploy-test-probe")
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    aws.events
        .put_targets()
        .rule("tessera-deploy-test-probe")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("probe")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    url
}

/// Whether S3 sends the bucket's events to EventBridge: an object put under [`PROBE_PREFIX`]
/// reaches the probe rule's queue. moto delivers while it answers the put, so an event that is
/// not in the queue right after the put is not coming.
async fn sends_events(aws: &Aws, bucket: &str) -> bool {
    let key = probe_key();
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(b"probe".to_vec().into())
        .send()
        .await
        .unwrap();
    let mut found = false;
    loop {
        let got = aws
            .sqs
            .receive_message()
            .queue_url(&aws.probe_queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            return found;
        }
        for m in got.messages() {
            let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            found |= event["detail"]["bucket"]["name"] == bucket
                && event["detail"]["object"]["key"] == key.as_str();
            aws.sqs
                .delete_message()
                .queue_url(&aws.probe_queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// A key under [`PROBE_PREFIX`] no probe used before.
fn probe_key() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{PROBE_PREFIX}{n}.txt")
}

async fn check_buckets(aws: &Aws, stack: &Deployed, resolver: &Resolver<'_>) {
    for (id, r) in stack.of_type("AWS::S3::Bucket") {
        let bucket = resolver.physical(id);
        let mut expected = resolver.resolve(&r["Properties"]);
        let expected_properties = expected.as_object_mut().unwrap();
        let name = expected_properties.remove("BucketName");
        // Checked by S3's behaviour when it was applied.
        expected_properties.remove("NotificationConfiguration");
        if let Some(name) = name {
            assert_eq!(name, bucket, "{}: {id}", stack.name);
        }
        aws.s3.head_bucket().bucket(bucket).send().await.unwrap();
        assert_eq!(
            bucket_state(aws, bucket).await,
            expected,
            "{}: {id} ({bucket})",
            stack.name
        );
    }
    for (id, r) in stack.of_type("AWS::S3::BucketPolicy") {
        let p = resolver.resolve(&r["Properties"]);
        let out = aws
            .s3
            .get_bucket_policy()
            .bucket(text(&p, "Bucket"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {id}: {}", stack.name, DisplayErrorContext(&e)));
        let policy: Value = serde_json::from_str(out.policy().unwrap()).unwrap();
        assert_eq!(policy, p["PolicyDocument"], "{}: {id}", stack.name);
    }
}

async fn check_queues(aws: &Aws, stack: &Deployed, resolver: &Resolver<'_>) {
    let mut policies = BTreeMap::new();
    for (_, r) in stack.of_type("AWS::SQS::QueuePolicy") {
        let p = resolver.resolve(&r["Properties"]);
        for queue in p["Queues"].as_array().unwrap() {
            policies.insert(
                queue
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
                p["PolicyDocument"].clone(),
            );
        }
    }
    for (id, r) in stack.of_type("AWS::SQS::Queue") {
        let p = resolver.resolve(&r["Properties"]);
        let name = text(&p, "QueueName");
        let url = aws
            .sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {id}: {}", stack.name, DisplayErrorContext(&e)))
            .queue_url()
            .unwrap()
            .to_owned();
        let out = aws
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attributes = out.attributes().unwrap();
        let tags = aws
            .sqs
            .list_queue_tags()
            .queue_url(&url)
            .send()
            .await
            .unwrap();
        let state = json!({
            "QueueName": name,
            "KmsMasterKeyId": attributes.get(&QueueAttributeName::KmsMasterKeyId),
            "MessageRetentionPeriod": attributes[&QueueAttributeName::MessageRetentionPeriod]
                .parse::<u64>()
                .unwrap(),
            "Tags": tag_list(tags.tags().into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str()))),
        });
        assert_eq!(state, p, "{}: {id}", stack.name);
        assert_eq!(
            attributes[&QueueAttributeName::QueueArn],
            resolver.attribute(id, "Arn"),
            "{}: {id}",
            stack.name
        );
        let policy: Option<Value> = attributes
            .get(&QueueAttributeName::Policy)
            .map(|p| serde_json::from_str(p).unwrap());
        assert_eq!(policy.as_ref(), policies.get(name), "{}: {id}", stack.name);
    }
}

async fn check_rules(aws: &Aws, stack: &Deployed, resolver: &Resolver<'_>) {
    for (id, r) in stack.of_type("AWS::Events::EventBus") {
        let p = resolver.resolve(&r["Properties"]);
        let bus = aws
            .events
            .describe_event_bus()
            .name(text(&p, "Name"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {id}: {}", stack.name, DisplayErrorContext(&e)));
        assert_eq!(bus.name(), p["Name"].as_str());
        let tags = aws
            .events
            .list_tags_for_resource()
            .resource_arn(bus.arn().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            tag_list(tags.tags().iter().map(|t| (t.key(), t.value()))),
            p["Tags"],
            "{}: {id}",
            stack.name
        );
    }
    for (id, r) in stack.of_type("AWS::Events::Rule") {
        let p = resolver.resolve(&r["Properties"]);
        let (name, bus) = (text(&p, "Name"), text(&p, "EventBusName"));
        let rule = aws
            .events
            .describe_rule()
            .name(name)
            .event_bus_name(bus)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {id}: {}", stack.name, DisplayErrorContext(&e)));
        assert_eq!(rule.arn(), Some(resolver.attribute(id, "Arn").as_str()));
        let targets = aws
            .events
            .list_targets_by_rule()
            .rule(name)
            .event_bus_name(bus)
            .send()
            .await
            .unwrap();
        let targets: Vec<Value> = targets
            .targets()
            .iter()
            .map(|t| {
                let mut target = Map::new();
                target.insert("Id".into(), json!(t.id()));
                target.insert("Arn".into(), json!(t.arn()));
                if let Some(retry) = t.retry_policy() {
                    target.insert(
                        "RetryPolicy".into(),
                        json!({
                            "MaximumRetryAttempts": retry.maximum_retry_attempts(),
                            "MaximumEventAgeInSeconds": retry.maximum_event_age_in_seconds(),
                        }),
                    );
                }
                if let Some(dlq) = t.dead_letter_config() {
                    target.insert("DeadLetterConfig".into(), json!({ "Arn": dlq.arn() }));
                }
                if let Some(input) = t.input_transformer() {
                    target.insert("InputTransformer".into(), input_transformer(input));
                }
                if let Some(path) = t.input_path() {
                    target.insert("InputPath".into(), json!(path));
                }
                if let Some(role) = t.role_arn() {
                    target.insert("RoleArn".into(), json!(role));
                }
                Value::Object(target)
            })
            .collect();
        let mut state = Map::new();
        state.insert("Name".into(), json!(rule.name()));
        state.insert("Description".into(), json!(rule.description()));
        state.insert("EventBusName".into(), json!(rule.event_bus_name()));
        if let Some(pattern) = rule.event_pattern() {
            let pattern: Value = serde_json::from_str(pattern).unwrap();
            state.insert("EventPattern".into(), pattern);
        }
        if let Some(schedule) = rule.schedule_expression() {
            state.insert("ScheduleExpression".into(), json!(schedule));
        }
        state.insert("State".into(), json!(rule.state().map(|s| s.as_str())));
        state.insert("Targets".into(), json!(targets));
        assert_eq!(Value::Object(state), p, "{}: {id}", stack.name);
        // Every target has its dead-letter queue: the rule's events are never lost silently.
        assert!(
            p["Targets"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["DeadLetterConfig"]["Arn"].is_string())
        );
    }
}

fn input_transformer(input: &aws_sdk_eventbridge::types::InputTransformer) -> Value {
    let mut out = Map::new();
    if let Some(paths) = input.input_paths_map() {
        out.insert("InputPathsMap".into(), json!(paths));
    }
    out.insert("InputTemplate".into(), json!(input.input_template()));
    Value::Object(out)
}

/// The input transformer of each scheduled rule of the stack, as moto stored it, applied by
/// moto's EventBridge to a `Scheduled Event` like the ones the schedule sends (an empty detail,
/// the rule in `resources`): the event reaches a queue through a rule of the test's own bus with
/// that transformer (moto runs no schedule, and delivers to no Lambda function), and
/// catalog-register reads it as the scheduled check of `domain`, in the shape of
/// `events/scheduled-sla-check.json`.
async fn check_scheduled_input(aws: &Aws, stack: &Deployed, resolver: &Resolver<'_>, domain: &str) {
    use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
    use tessera_core::function::{Trigger, triggers};

    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("events/scheduled-sla-check.json")).unwrap(),
    )
    .unwrap();
    let time: chrono::DateTime<chrono::Utc> = fixture["time"].as_str().unwrap().parse().unwrap();
    let bus = "tessera-deploy-test-schedule";
    let mut checked = 0;
    for (id, r) in stack.of_type("AWS::Events::Rule") {
        if r["Properties"]["ScheduleExpression"].is_null() {
            continue;
        }
        let name = resolver.physical(id);
        let arn = resolver.attribute(id, "Arn");
        let deployed = aws
            .events
            .list_targets_by_rule()
            .rule(name)
            .send()
            .await
            .unwrap();
        let [target] = deployed.targets() else {
            panic!("{}: {id}: one target expected", stack.name);
        };
        let transformer = target
            .input_transformer()
            .unwrap_or_else(|| panic!("{}: {id}: no input transformer", stack.name))
            .clone();

        // The test's bus, a queue, and a rule passing scheduled events through the transformer.
        if aws
            .events
            .describe_event_bus()
            .name(bus)
            .send()
            .await
            .is_err()
        {
            aws.events
                .create_event_bus()
                .name(bus)
                .send()
                .await
                .unwrap();
        }
        let (queue, queue_arn) =
            tessera_aws::dev::queue(&aws.sqs, &format!("tessera-deploy-test-{name}"))
                .await
                .unwrap();
        let probe = format!("tessera-deploy-test-{name}");
        aws.events
            .put_rule()
            .name(&probe)
            .event_bus_name(bus)
            .event_pattern(json!({ "resources": [arn] }).to_string())
            .send()
            .await
            .unwrap();
        aws.events
            .put_targets()
            .rule(&probe)
            .event_bus_name(bus)
            .targets(
                Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .input_transformer(transformer)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let put = aws
            .events
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(bus)
                    .source(fixture["source"].as_str().unwrap())
                    .detail_type(fixture["detail-type"].as_str().unwrap())
                    .detail("{}")
                    .resources(&arn)
                    .time(aws_sdk_eventbridge::primitives::DateTime::from_secs(
                        time.timestamp(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(put.failed_entry_count(), 0, "{put:?}");
        let received = aws
            .sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let [message] = received.messages() else {
            panic!("{}: {id}: one event expected: {received:?}", stack.name);
        };
        let input: Value = serde_json::from_str(message.body().unwrap()).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&input),
            keys(&fixture),
            "{}: {id}: {input}",
            stack.name
        );
        assert_eq!(input["resources"], json!([arn]), "{input}");
        assert_eq!(input["detail"], json!({ "domain": domain }), "{input}");
        for field in ["version", "source", "detail-type", "time", "region"] {
            assert_eq!(
                input[field], fixture[field],
                "{}: {id}: {field}",
                stack.name
            );
        }
        let parsed = triggers(&input).unwrap();
        let [Trigger::Scheduled { at, domain: named }] = parsed.as_slice() else {
            panic!("{}: {id}: not a scheduled check: {input}", stack.name);
        };
        assert_eq!((*at, named.as_deref()), (time, Some(domain)));
        checked += 1;
    }
    assert_eq!(checked, 1, "{}: one scheduled rule", stack.name);
}

async fn check_glue(aws: &Aws, stack: &Deployed, resolver: &Resolver<'_>) {
    for (id, r) in stack.of_type("AWS::Glue::Database") {
        let p = resolver.resolve(&r["Properties"]);
        let input = &p["DatabaseInput"];
        let out = aws
            .glue
            .get_database()
            .catalog_id(text(&p, "CatalogId"))
            .name(text(input, "Name"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {id}: {}", stack.name, DisplayErrorContext(&e)));
        let db = out.database().unwrap();
        let mut state = json!({ "Name": db.name() });
        if let Some(d) = db.description() {
            state["Description"] = json!(d);
        }
        assert_eq!(&state, input, "{}: {id}", stack.name);
    }
    for (id, r) in stack.of_type("AWS::Glue::Table") {
        let p = resolver.resolve(&r["Properties"]);
        let input = &p["TableInput"];
        let out = aws
            .glue
            .get_table()
            .catalog_id(text(&p, "CatalogId"))
            .database_name(text(&p, "DatabaseName"))
            .name(text(input, "Name"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {id}: {}", stack.name, DisplayErrorContext(&e)));
        let t = out.table().unwrap();
        let columns = |cols: &[aws_sdk_glue::types::Column]| -> Value {
            cols.iter()
                .map(|c| {
                    let mut col = json!({ "Name": c.name(), "Type": c.r#type() });
                    if let Some(comment) = c.comment() {
                        col["Comment"] = json!(comment);
                    }
                    col
                })
                .collect()
        };
        let sd = t.storage_descriptor().unwrap();
        let serde = sd.serde_info().unwrap();
        let mut state = json!({
            "Name": t.name(),
            "TableType": t.table_type(),
            "Parameters": t.parameters(),
            "PartitionKeys": columns(t.partition_keys()),
            "StorageDescriptor": {
                "Columns": columns(sd.columns()),
                "Location": sd.location(),
                "InputFormat": sd.input_format(),
                "OutputFormat": sd.output_format(),
                "SerdeInfo": {
                    "SerializationLibrary": serde.serialization_library(),
                    "Parameters": serde.parameters(),
                },
            },
        });
        if let Some(d) = t.description() {
            state["Description"] = json!(d);
        }
        assert_eq!(&state, input, "{}: {id}", stack.name);
    }
}

async fn check_platform(aws: &Aws, stack: &Deployed, resolver: &Resolver<'_>) {
    for (id, r) in stack.of_type("AWS::Glue::DataCatalogEncryptionSettings") {
        let p = resolver.resolve(&r["Properties"]);
        let out = aws
            .glue
            .get_data_catalog_encryption_settings()
            .catalog_id(text(&p, "CatalogId"))
            .send()
            .await
            .unwrap();
        let s = out.data_catalog_encryption_settings().unwrap();
        let at_rest = s.encryption_at_rest().unwrap();
        let passwords = s.connection_password_encryption().unwrap();
        let state = json!({
            "CatalogId": p["CatalogId"],
            "DataCatalogEncryptionSettings": {
                "EncryptionAtRest": {
                    "CatalogEncryptionMode": at_rest.catalog_encryption_mode().as_str(),
                    "SseAwsKmsKeyId": at_rest.sse_aws_kms_key_id(),
                },
                "ConnectionPasswordEncryption": {
                    "ReturnConnectionPasswordEncrypted": passwords.return_connection_password_encrypted(),
                    "KmsKeyId": passwords.aws_kms_key_id(),
                },
            },
        });
        assert_eq!(state, p, "{}: {id}", stack.name);
    }
    for (id, r) in stack.of_type("AWS::Athena::WorkGroup") {
        let p = resolver.resolve(&r["Properties"]);
        let name = text(&p, "Name");
        let out = aws
            .athena
            .get_work_group()
            .work_group(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {id}: {}", stack.name, DisplayErrorContext(&e)));
        let wg = out.work_group().unwrap();
        let c = wg.configuration().unwrap();
        let results = c.result_configuration().unwrap();
        let encryption = results.encryption_configuration().unwrap();
        let arn = format!(
            "arn:aws:athena:{}:{}:workgroup/{name}",
            resolver.region, resolver.account
        );
        let tags = aws
            .athena
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap();
        let state = json!({
            "Name": wg.name(),
            "Description": wg.description(),
            "State": wg.state().map(|s| s.as_str()),
            "WorkGroupConfiguration": {
                "EnforceWorkGroupConfiguration": c.enforce_work_group_configuration(),
                "PublishCloudWatchMetricsEnabled": c.publish_cloud_watch_metrics_enabled(),
                "BytesScannedCutoffPerQuery": c.bytes_scanned_cutoff_per_query(),
                "EngineVersion": {
                    "SelectedEngineVersion": c.engine_version().and_then(|e| e.selected_engine_version()),
                },
                "ResultConfiguration": {
                    "OutputLocation": results.output_location(),
                    "EncryptionConfiguration": {
                        "EncryptionOption": encryption.encryption_option().as_str(),
                        "KmsKey": encryption.kms_key(),
                    },
                },
            },
            "Tags": tag_list(tags.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))),
        });
        assert_eq!(state, p, "{}: {id}", stack.name);
    }
}
