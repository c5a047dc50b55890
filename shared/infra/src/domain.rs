//! A domain's stack (SAM): its key, bucket and access-log bucket, the five functions with their
//! roles, log groups and failure queues, one EventBridge rule per routing rule, the schedule of
//! the service-level check, the Firehose delivery of domain events (see [`crate::events`]), and the
//! Glue database with one table per product.

use serde_json::{Map, Value, json};
use tessera_core::keys::Zone;
use tessera_core::mesh::{Domain, Mesh};
use tessera_core::routing::{self, Function};

use crate::access::{Targets, access, aggregation_inputs};
use crate::cfn::{
    Statement, Tags, Template, checkov_skips, get_att, import, policy, reference, s3_arn, sub,
};
use crate::glue::{registered_table, table_resource};
use crate::names::{
    domain_export, domain_prefix, domain_rule_name, function_id, function_name, log_group_name,
    queue_name, rule_id, rule_name, table_id,
};
use crate::platform::{bus_arn_export, bus_name_export, key_arn_export, region_rule};
use crate::resources::{
    BucketSpec, Encryption, add_access_log_bucket, bucket, bucket_policy, expire, kms_alias,
    kms_key,
};
use crate::{Code, MESH_LAYER_DIR, Options, Result, Settings};

/// Logical id of the domain's key.
pub const KEY: &str = "DomainKey";
/// Logical id of the domain's bucket.
pub const BUCKET: &str = "DomainBucket";
/// Logical id of the bucket receiving the domain bucket's access logs.
pub const ACCESS_LOGS: &str = "AccessLogBucket";
/// Logical id of the dead-letter queue of the rules' targets.
pub const EVENT_DLQ: &str = "EventDeliveryDeadLetterQueue";
/// Logical id of the layer holding the mesh file and contracts.
pub const MESH_LAYER: &str = "MeshLayer";
/// Logical id of the Glue database.
pub const DATABASE: &str = "GlueDatabase";
/// Parameter carrying the salt for hashing personal data.
pub const SALT_PARAMETER: &str = "PiiSalt";

/// Days typed files stay in `staged/` (clean reads them right away; a re-run starts from raw/).
pub const STAGED_DAYS: u32 = 14;
/// Days cleaned files stay in `clean/`.
pub const CLEAN_DAYS: u32 = 30;
/// Days a function's logs are kept.
pub const LOG_RETENTION_DAYS: u32 = 365;
/// Seconds a message stays in a dead-letter or failure queue: 14 days, the SQS maximum.
pub const QUEUE_RETENTION_SECONDS: u32 = 1_209_600;
/// Delivery retries of a rule's target before its event goes to the dead-letter queue.
pub const RULE_RETRY_ATTEMPTS: u32 = 185;
/// Oldest event a rule still delivers.
pub const RULE_MAX_EVENT_AGE_SECONDS: u32 = 86_400;
/// Retries of a failed asynchronous invocation before it goes to the failure queue.
pub const INVOKE_RETRY_ATTEMPTS: u32 = 2;
/// Oldest event Lambda still runs.
pub const INVOKE_MAX_EVENT_AGE_SECONDS: u32 = 21_600;
/// How often catalog-register checks the service levels (`slaProperties`) of the domain's
/// products: an EventBridge schedule expression.
pub const SLA_CHECK_SCHEDULE: &str = "rate(1 hour)";
/// Logical id of the rule that starts the service-level check.
pub const SLA_CHECK_RULE: &str = "SlaCheckRule";
/// Suffix of that rule's name: `tessera-<mesh>-<domain>-sla-check`.
pub const SLA_CHECK_RULE_NAME: &str = "sla-check";
/// Fields of the scheduled event passed on to catalog-register as they are (the detail is
/// replaced by the domain's name). `resources` is an array, the others are strings.
pub const SCHEDULED_EVENT_FIELDS: [&str; 8] = [
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
];

/// Memory, time and concurrency of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Memory in MB (CPU grows with it).
    pub memory_mb: u32,
    /// Timeout in seconds.
    pub timeout_s: u32,
    /// Reserved concurrency: at most this many run at once, and no other function takes them.
    pub concurrency: u32,
}

/// How each stage is sized. Ingest, clean and contract-check stream a file at a time; aggregate
/// runs SQL (DataFusion) over a product and collects the result; catalog-register only calls
/// Glue.
pub fn sizing(function: Function) -> Sizing {
    let (memory_mb, timeout_s, concurrency) = match function {
        Function::Ingest | Function::Clean => (1024, 300, 10),
        Function::ContractCheck => (1024, 300, 5),
        Function::Aggregate => (2048, 600, 2),
        Function::CatalogRegister => (256, 60, 2),
    };
    Sizing {
        memory_mb,
        timeout_s,
        concurrency,
    }
}

fn describe(function: Function) -> &'static str {
    match function {
        Function::Ingest => "raw files to typed Parquet",
        Function::Clean => "typed to cleaned Parquet",
        Function::ContractCheck => "cleaned data to a published product version or quarantine",
        Function::Aggregate => "published products to their aggregations",
        Function::CatalogRegister => "published and refused versions to the Glue Data Catalog",
    }
}

const SKIP_VPC: (&str, &str) = (
    "CKV_AWS_117",
    "Runs outside a VPC on purpose: it calls only AWS APIs (S3, EventBridge, Glue, KMS, SQS, \
     X-Ray, CloudWatch Logs) over TLS with credentials scoped by its own role, and reaches no \
     private network resource. A VPC would need a NAT gateway or an interface endpoint per \
     service and domain, and would add no control over the data, which the role, bucket and \
     key policies govern.",
);
const SKIP_CODE_SIGNING: (&str, &str) = (
    "CKV_AWS_272",
    "Code signing needs an AWS Signer profile owned by the organization that deploys the mesh; \
     the code is built by `sam build` (cargo-lambda) from the reviewed workspace in the \
     deploying pipeline. Add CodeSigningConfigArn once a signing profile exists.",
);

const SKIP_DLQ: (&str, &str) = (
    "CKV_AWS_116",
    "Failed asynchronous invocations go to an on-failure destination instead of a dead-letter \
     queue: EventInvokeConfig sends them, after the retries, to the function's own SQS queue \
     encrypted with the domain key, and a destination record carries the error and the request \
     context where a dead-letter message carries only the event.",
);

/// The domain stack's template.
pub fn template(
    mesh: &Mesh,
    domain: &Domain,
    settings: &Settings,
    options: &Options,
) -> Result<Value> {
    let d = &domain.name;
    let prefix = domain_prefix(&mesh.name, d);
    let tags = Tags::domain(&mesh.name, d);
    let mut t = Template::new(format!(
        "Tessera mesh `{}`, domain `{d}`: bucket, key, the five pipeline functions with their \
         roles and EventBridge rules, the hourly service-level check, and the Glue database and \
         tables of its products. Generated by `tessera infra synth` from the mesh file and the \
         contracts; do not edit.",
        mesh.name
    ))
    .serverless();
    region_rule(&mut t, settings);
    t.parameter(
        SALT_PARAMETER,
        json!({
            "Type": "String",
            "NoEcho": true,
            "Default": "",
            "Description": "Salt for hashing personal data (TESSERA_PII_SALT). Empty: the \
                            functions use the mesh file's `pii_salt`.",
        }),
    );
    t.condition(
        "HasPiiSalt",
        json!({ "Fn::Not": [{ "Fn::Equals": [reference(SALT_PARAMETER), ""] }] }),
    );

    let key_arn = get_att(KEY, "Arn");
    let rules = routing::rules();
    let inputs = aggregation_inputs(domain);

    // The key: the domain's functions, CloudWatch Logs for their log groups, and EventBridge for
    // the dead-letter queue of the rules' targets may use it.
    let region_account = "${AWS::Region}:${AWS::AccountId}";
    let mut rule_arns = vec![sub(format!(
        "arn:${{AWS::Partition}}:events:{region_account}:rule/{prefix}-*"
    ))];
    if rules.iter().any(|r| !r.on_default_bus()) {
        rule_arns.push(sub(format!(
            "arn:${{AWS::Partition}}:events:{region_account}:rule/{}/{prefix}-*",
            settings.event_bus
        )));
    }
    let key_statements = vec![
        Statement::allow(
            "DomainFunctionsUseKey",
            &["kms:Decrypt", "kms:GenerateDataKey"],
            vec![json!("*")],
        )
        .to(json!({
            "AWS": Function::ALL
                .iter()
                .map(|f| get_att(&function_id(*f, "Role"), "Arn"))
                .collect::<Vec<_>>()
        })),
        Statement::allow(
            "CloudWatchLogsUseKeyForTheDomainsLogGroups",
            &[
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:DescribeKey",
            ],
            vec![json!("*")],
        )
        .to(json!({ "Service": sub("logs.${AWS::Region}.amazonaws.com") }))
        .when(json!({
            "ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": sub(format!(
                    "arn:${{AWS::Partition}}:logs:{region_account}:log-group:{}-*",
                    log_group_name(&prefix)
                )),
            }
        })),
        Statement::allow(
            "EventBridgeUsesKeyForDeadLetters",
            &["kms:Decrypt", "kms:GenerateDataKey"],
            vec![json!("*")],
        )
        .to(json!({ "Service": "events.amazonaws.com" }))
        .when(json!({
            "StringEquals": { "aws:SourceAccount": reference("AWS::AccountId") },
            "ArnLike": { "aws:SourceArn": rule_arns },
        })),
    ];
    t.resource(
        KEY,
        kms_key(
            &format!(
                "Tessera mesh {}, domain {d}: bucket, logs, queues, function environment",
                mesh.name
            ),
            key_statements,
            &tags,
        ),
    )?;
    t.resource("DomainKeyAlias", kms_alias(&prefix, KEY))?;

    // The bucket and its access logs.
    let log_prefix = format!("{}/", domain.bucket);
    add_access_log_bucket(
        &mut t,
        ACCESS_LOGS,
        &tags,
        &[(s3_arn(&domain.bucket, None), log_prefix.clone())],
    )?;
    t.resource(
        BUCKET,
        bucket(&BucketSpec {
            id: BUCKET,
            name: Some(&domain.bucket),
            encryption: Encryption::Kms(key_arn.clone()),
            access_log: Some((ACCESS_LOGS, log_prefix)),
            lifecycle: vec![
                expire("expire-staged", Zone::Staged.prefix(), STAGED_DAYS),
                expire("expire-clean", Zone::Clean.prefix(), CLEAN_DAYS),
            ],
            event_bridge: true,
            tags: &tags,
            skips: &[],
        }),
    )?;
    t.resource("DomainBucketPolicy", bucket_policy(BUCKET, vec![]))?;

    // The mesh file and contracts every function loads, in a layer under /opt.
    t.resource(
        MESH_LAYER,
        json!({
            "Type": "AWS::Serverless::LayerVersion",
            "Properties": {
                "LayerName": format!("{prefix}-mesh"),
                "Description": format!(
                    "The mesh file of {} and its contracts, loaded by every function from /opt",
                    mesh.name
                ),
                "ContentUri": layer_content(&options.code),
                "CompatibleArchitectures": ["arm64"],
                "CompatibleRuntimes": ["provided.al2023"],
                "RetentionPolicy": "Delete",
            },
        }),
    )?;

    // Events a rule could not deliver.
    t.resource(
        EVENT_DLQ,
        queue(
            &queue_name(&mesh.name, d, "event-delivery-dlq")?,
            &key_arn,
            &tags,
        ),
    )?;
    let rule_ids: Vec<String> = rules
        .iter()
        .map(|r| rule_id(r, "Rule"))
        .chain([SLA_CHECK_RULE.to_owned()])
        .chain(crate::events::rule_ids(domain))
        .collect();
    t.resource(
        &format!("{EVENT_DLQ}Policy"),
        json!({
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [reference(EVENT_DLQ)],
                "PolicyDocument": policy(&[
                    Statement::deny("DenyInsecureTransport", &["sqs:*"], vec![get_att(EVENT_DLQ, "Arn")])
                        .to(json!("*"))
                        .when(json!({ "Bool": { "aws:SecureTransport": "false" } })),
                    Statement::allow("EventBridgeRulesOfTheDomain", &["sqs:SendMessage"], vec![get_att(EVENT_DLQ, "Arn")])
                        .to(json!({ "Service": "events.amazonaws.com" }))
                        .when(json!({
                            "ArnEquals": {
                                "aws:SourceArn": rule_ids.iter().map(|r| get_att(r, "Arn")).collect::<Vec<_>>()
                            }
                        })),
                ]),
            },
        }),
    )?;

    // The functions.
    for function in Function::ALL {
        add_function(&mut t, mesh, domain, function, &inputs, options, &tags)?;
    }

    // One rule per routing rule, narrowed to the domain.
    for rule in &rules {
        let id = rule_id(rule, "Rule");
        let bus = if rule.on_default_bus() {
            json!("default")
        } else {
            import(&bus_name_export(&mesh.name))
        };
        t.resource(
            &id,
            json!({
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Name": rule_name(&mesh.name, d, rule)?,
                    "Description": format!("Tessera {d}: {} (routing rule `{}`)", rule.target.name(), rule.name),
                    "EventBusName": bus,
                    "EventPattern": rule.pattern_for(mesh, domain),
                    "State": "ENABLED",
                    "Targets": [rule_target(rule.target, None)],
                },
            }),
        )?;
        t.resource(
            &rule_id(rule, "Permission"),
            invoke_permission(rule.target, &id),
        )?;
    }

    // Domain events of the products that take them, through Firehose into their raw zone.
    crate::events::add(&mut t, mesh, domain, &tags)?;

    // The service-level check: on a schedule (the default bus is the only one with schedules),
    // catalog-register evaluates the domain's products, told which domain by the event's detail.
    let checker = Function::CatalogRegister;
    t.resource(
        SLA_CHECK_RULE,
        json!({
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": domain_rule_name(&mesh.name, d, SLA_CHECK_RULE_NAME)?,
                "Description": format!(
                    "Tessera {d}: {}, the service-level check of the domain's products ({SLA_CHECK_SCHEDULE})",
                    checker.name()
                ),
                "EventBusName": "default",
                "ScheduleExpression": SLA_CHECK_SCHEDULE,
                "State": "ENABLED",
                "Targets": [rule_target(checker, Some(sla_check_input(d)))],
            },
        }),
    )?;
    t.resource(
        "SlaCheckPermission",
        invoke_permission(checker, SLA_CHECK_RULE),
    )?;

    // The catalog: the database and one table per product, as catalog-register writes them.
    t.resource(
        DATABASE,
        json!({
            "Type": "AWS::Glue::Database",
            "Properties": {
                "CatalogId": reference("AWS::AccountId"),
                "DatabaseInput": database_input(domain),
            },
        }),
    )?;
    for product in &domain.products {
        let table = registered_table(domain, product)?;
        t.resource(&table_id(&product.name), table_resource(DATABASE, &table))?;
    }

    t.output(
        "BucketName",
        "The domain's bucket",
        reference(BUCKET),
        Some(&domain_export(&mesh.name, d, "bucket")),
    );
    t.output(
        "KeyArn",
        "ARN of the domain's key (readers of its products decrypt with it)",
        key_arn.clone(),
        Some(&domain_export(&mesh.name, d, "key-arn")),
    );
    t.output(
        "GlueDatabaseName",
        "The domain's Glue database",
        reference(DATABASE),
        Some(&domain_export(&mesh.name, d, "database")),
    );
    t.output(
        "EventDeliveryDeadLetterQueueUrl",
        "Events the domain's rules could not deliver",
        reference(EVENT_DLQ),
        None,
    );
    for function in Function::ALL {
        t.output(
            &function_id(function, "FailureQueueUrl"),
            &format!("Events {} failed on after its retries", function.name()),
            reference(&function_id(function, "FailureQueue")),
            None,
        );
    }
    Ok(t.build())
}

/// A rule's target: the function, retried, then the event-delivery dead-letter queue; with the
/// input transformer, if any, that reshapes the event.
fn rule_target(function: Function, input: Option<Value>) -> Value {
    let mut target = json!({
        "Id": function.name(),
        "Arn": get_att(&function_id(function, "Function"), "Arn"),
        "RetryPolicy": {
            "MaximumRetryAttempts": RULE_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": RULE_MAX_EVENT_AGE_SECONDS,
        },
        "DeadLetterConfig": { "Arn": get_att(EVENT_DLQ, "Arn") },
    });
    if let Some(input) = input {
        target["InputTransformer"] = input;
    }
    target
}

/// Lets the rule `rule_id` of this account invoke `function`.
fn invoke_permission(function: Function, rule_id: &str) -> Value {
    json!({
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": get_att(&function_id(function, "Function"), "Arn"),
            "Principal": "events.amazonaws.com",
            "SourceAccount": reference("AWS::AccountId"),
            "SourceArn": get_att(rule_id, "Arn"),
        },
    })
}

/// The input transformer of the service-level check's target: the scheduled event as
/// EventBridge sends it, with the detail (`{}` from a schedule) replaced by
/// `{"domain": "<domain>"}`, the shape of `events/scheduled-sla-check.json`. String fields are
/// quoted in the template, `resources` (an array) is not: EventBridge inserts a value as it is.
pub fn sla_check_input(domain: &str) -> Value {
    let paths: Map<String, Value> = SCHEDULED_EVENT_FIELDS
        .iter()
        .map(|f| ((*f).to_owned(), json!(format!("$.{f}"))))
        .collect();
    let mut template = String::from("{");
    for f in SCHEDULED_EVENT_FIELDS {
        let placeholder = if f == "resources" {
            format!("<{f}>")
        } else {
            format!("\"<{f}>\"")
        };
        template.push_str(&format!("{}: {placeholder}, ", json!(f)));
    }
    template.push_str(&format!("\"detail\": {{\"domain\": {}}}}}", json!(domain)));
    json!({ "InputPathsMap": paths, "InputTemplate": template })
}

/// Where the mesh layer's content comes from: the folder `tessera infra synth` writes next to
/// the templates (`sam deploy` or `aws cloudformation package` zips and uploads it), or, with
/// uploaded zips, `mesh.zip` next to the functions' zips, so the template deploys as it is.
fn layer_content(code: &Code) -> Value {
    match code {
        Code::Workspace(_) => json!(format!("{MESH_LAYER_DIR}/")),
        Code::S3 { bucket, prefix } => s3_zip(bucket, prefix, MESH_LAYER_DIR),
    }
}

/// The uploaded `<prefix>/<name>.zip`, as SAM's `CodeUri` and `ContentUri` name an S3 object.
fn s3_zip(bucket: &str, prefix: &str, name: &str) -> Value {
    let key = if prefix.is_empty() {
        format!("{name}.zip")
    } else {
        format!("{prefix}/{name}.zip")
    };
    json!({ "Bucket": bucket, "Key": key })
}

fn database_input(domain: &Domain) -> Value {
    let mut input = Map::new();
    input.insert("Name".into(), json!(domain.database));
    if let Some(description) = &domain.description {
        input.insert("Description".into(), json!(description));
    }
    Value::Object(input)
}

fn queue(name: &str, key_arn: &Value, tags: &Tags) -> Value {
    json!({
        "Type": "AWS::SQS::Queue",
        // Failures not yet handled when the domain is removed go with it.
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "QueueName": name,
            "KmsMasterKeyId": key_arn,
            "MessageRetentionPeriod": QUEUE_RETENTION_SECONDS,
            "Tags": tags.list(),
        },
    })
}

/// A function with its role, policy, log group and failure queue.
fn add_function(
    t: &mut Template,
    mesh: &Mesh,
    domain: &Domain,
    function: Function,
    inputs: &[crate::access::ProductRef],
    options: &Options,
    tags: &Tags,
) -> Result<()> {
    let name = function_name(&mesh.name, &domain.name, function)?;
    let id = function_id(function, "Function");
    let role = function_id(function, "Role");
    let policy_id = function_id(function, "Policy");
    let log_group = function_id(function, "LogGroup");
    let failures = function_id(function, "FailureQueue");
    let key_arn = get_att(KEY, "Arn");

    t.resource(
        &role,
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": format!("Tessera {}: the {} function", domain.name, function.name()),
                "AssumeRolePolicyDocument": policy(&[
                    Statement::allow("LambdaAssumesRole", &["sts:AssumeRole"], vec![])
                        .to(json!({ "Service": "lambda.amazonaws.com" })),
                ]),
                "Tags": tags.list(),
            },
        }),
    )?;
    let statements = access(domain, function, inputs).statements(&Targets {
        mesh,
        domain,
        log_group_arn: get_att(&log_group, "Arn"),
        failure_queue_arn: get_att(&failures, "Arn"),
        domain_key_arn: key_arn.clone(),
        bus_arn: import(&bus_arn_export(&mesh.name)),
        catalog_key_arn: import(&key_arn_export(&mesh.name)),
    })?;
    t.resource(
        &policy_id,
        json!({
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": format!("{}-least-privilege", function.name()),
                "Roles": [reference(&role)],
                "PolicyDocument": policy(&statements),
            },
        }),
    )?;
    t.resource(
        &log_group,
        json!({
            "Type": "AWS::Logs::LogGroup",
            // What the functions did outlives the stack, like the data they wrote.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "LogGroupName": log_group_name(&name),
                "RetentionInDays": LOG_RETENTION_DAYS,
                "KmsKeyId": key_arn,
                "Tags": tags.list(),
            },
        }),
    )?;
    t.resource(
        &failures,
        queue(
            &queue_name(
                &mesh.name,
                &domain.name,
                &format!("{}-failures", function.name()),
            )?,
            &key_arn,
            tags,
        ),
    )?;

    let sizing = sizing(function);
    let mut metadata = Map::new();
    let code_uri = match &options.code {
        Code::Workspace(path) => {
            metadata.insert("BuildMethod".into(), json!("rust-cargolambda"));
            metadata.insert(
                "BuildProperties".into(),
                json!({ "Binary": function.name() }),
            );
            json!(path)
        }
        Code::S3 { bucket, prefix } => s3_zip(bucket, prefix, function.name()),
    };
    if let Value::Object(skips) = checkov_skips(&[SKIP_VPC, SKIP_CODE_SIGNING, SKIP_DLQ]) {
        metadata.extend(skips);
    }
    let variables = json!({
        "TESSERA_MESH": format!("/opt/{}", options.mesh_file),
        "TESSERA_ENV": options.environment,
        "TESSERA_DOMAIN": domain.name,
        "TESSERA_PII_SALT": {
            "Fn::If": ["HasPiiSalt", reference(SALT_PARAMETER), reference("AWS::NoValue")]
        },
    });
    t.resource(
        &id,
        json!({
            "Type": "AWS::Serverless::Function",
            "Metadata": metadata,
            // The role must allow sending to the failure queue before Lambda accepts it.
            "DependsOn": [policy_id],
            "Properties": {
                "FunctionName": name,
                "Description": format!("Tessera {}: {}", domain.name, describe(function)),
                "CodeUri": code_uri,
                "Handler": "bootstrap",
                "Runtime": "provided.al2023",
                "Architectures": ["arm64"],
                "MemorySize": sizing.memory_mb,
                "Timeout": sizing.timeout_s,
                "ReservedConcurrentExecutions": sizing.concurrency,
                "Role": get_att(&role, "Arn"),
                "Layers": [reference(MESH_LAYER)],
                "Environment": { "Variables": variables },
                "KmsKeyArn": get_att(KEY, "Arn"),
                "Tracing": "Active",
                "LoggingConfig": { "LogFormat": "JSON", "LogGroup": reference(&log_group) },
                "EventInvokeConfig": {
                    "MaximumRetryAttempts": INVOKE_RETRY_ATTEMPTS,
                    "MaximumEventAgeInSeconds": INVOKE_MAX_EVENT_AGE_SECONDS,
                    "DestinationConfig": {
                        "OnFailure": { "Type": "SQS", "Destination": get_att(&failures, "Arn") },
                    },
                },
                "Tags": tags.map(),
            },
        }),
    )?;
    t.output(
        &function_id(function, "FunctionArn"),
        &format!("The {} function", function.name()),
        get_att(&id, "Arn"),
        None,
    );
    Ok(())
}
