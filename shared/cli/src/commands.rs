//! `tessera run`, `query`, `catalog`, `contract lint`, `contract diff`, `policy check` and
//! `infra synth`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use arrow::array::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use tessera_contract::policy::Policy;
use tessera_contract::{Contract, ContractDiff};
use tessera_core::catalog::Table;
use tessera_core::context::Embedded;
use tessera_core::mesh::{Environment, InputKind, Mesh, ProductKind};
use tessera_core::policy::PolicyReport;
use tessera_core::router::{Invoker, drain, drain_with};
use tessera_core::routing::Function;
use tessera_core::runs::{RunRecord, RunStatus, history};
use tessera_core::{Context, function};

/// Calls the function crates' handlers in process: the embedded stand-in for Lambda.
struct Functions<'a>(&'a Context);

#[async_trait]
impl Invoker for Functions<'_> {
    async fn invoke(
        &self,
        f: Function,
        event: serde_json::Value,
    ) -> Result<function::Outcome, function::FunctionError> {
        match f {
            Function::Ingest => ingest::handler(self.0, event).await,
            Function::Clean => clean::handler(self.0, event).await,
            Function::ContractCheck => contract_check::handler(self.0, event).await,
            Function::Aggregate => aggregate::handler(self.0, event).await,
            Function::CatalogRegister => catalog_register::handler(self.0, event).await,
        }
    }
}

/// The embedded ports of an environment; `warehouse` overrides the environment's folder.
pub fn embedded(mesh: Arc<Mesh>, env: &str, warehouse: Option<&Path>) -> Result<Embedded> {
    match mesh.environment(env)? {
        Environment::Embedded {
            warehouse: configured,
        } => {
            let dir = match warehouse {
                Some(w) => w.to_path_buf(),
                None if configured.is_absolute() => configured.clone(),
                None => mesh.root.join(configured),
            };
            Ok(Context::embedded(Arc::clone(&mesh), &dir)?)
        }
        Environment::Aws { .. } => {
            bail!("environment `{env}` is not embedded; this command drives the embedded pipeline")
        }
    }
}

/// A one-line progress report of deliveries, rewritten in place (`\r`) at most every `every`,
/// and cleared when done; silent when `shown` is false (not a terminal).
#[derive(Debug)]
pub struct Progress<W: std::io::Write> {
    out: W,
    shown: bool,
    every: Duration,
    last: Option<Instant>,
    started: Instant,
    written: bool,
}

impl<W: std::io::Write> Progress<W> {
    /// A progress line on `out`.
    pub fn new(out: W, shown: bool, every: Duration) -> Self {
        Progress {
            out,
            shown,
            every,
            last: None,
            started: Instant::now(),
            written: false,
        }
    }

    /// `done` deliveries made, `queued` events waiting.
    pub fn update(&mut self, done: usize, queued: usize) {
        if !self.shown || self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64();
        // A progress line is best effort: a closed stderr must not stop the run.
        let _ = write!(
            self.out,
            "\r\x1b[2K{done} deliveries, {queued} events queued, {secs:.1} s"
        );
        let _ = self.out.flush();
        self.written = true;
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.written {
            let _ = write!(self.out, "\r\x1b[2K");
            let _ = self.out.flush();
        }
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The ODPS descriptors of one product (`domain.product`) or of all, by `domain.product`, each
/// checked against the official ODPS schema.
pub fn describe(mesh: &Mesh, product: Option<&str>) -> Result<Vec<(String, serde_json::Value)>> {
    let mut out = Vec::new();
    for (domain, p) in mesh.products() {
        let name = format!("{}.{}", domain.name, p.name);
        if product.is_some_and(|wanted| wanted != name) {
            continue;
        }
        let doc = tessera_core::odps::descriptor(mesh, domain, p);
        if let Err(problems) = tessera_contract::validate_odps(&doc) {
            bail!(
                "the descriptor of `{name}` is not valid ODPS: {}",
                problems.join("; ")
            );
        }
        out.push((name, doc));
    }
    if let (Some(wanted), true) = (product, out.is_empty()) {
        bail!("no product `{wanted}` in the mesh (name it as domain.product)");
    }
    Ok(out)
}

/// What `tessera reconcile` found and did.
#[derive(Debug, Serialize)]
pub struct ReconcileReport {
    /// Objects no stage finished with.
    pub unfinished: Vec<tessera_core::reconcile::Unfinished>,
    /// Whether their events were sent again.
    pub redriven: bool,
    /// Deliveries made after (embedded: the chain runs in process; on AWS the rules deliver).
    pub deliveries: usize,
    /// Failed deliveries, as messages.
    pub failures: Vec<String>,
}

/// Finds the objects no stage finished with and, unless `dry_run`, re-drives them: embedded, on
/// the in-process bus, then runs the chain until no event is left; on AWS, on the default bus,
/// where S3's events arrive and the object rules listen.
pub async fn reconcile(
    mesh: Arc<Mesh>,
    env: &str,
    warehouse: Option<&Path>,
    dry_run: bool,
) -> Result<ReconcileReport> {
    let embedded =
        warehouse.is_some() || matches!(mesh.environment(env)?, Environment::Embedded { .. });
    if embedded {
        let emb = self::embedded(mesh, env, warehouse)?;
        let unfinished = tessera_core::reconcile::find(&emb.context).await?;
        if dry_run || unfinished.is_empty() {
            return Ok(ReconcileReport {
                unfinished,
                redriven: false,
                deliveries: 0,
                failures: Vec::new(),
            });
        }
        tessera_core::reconcile::redrive(emb.bus.as_ref(), &unfinished).await?;
        let (deliveries, failures) = deliver(&emb).await?;
        return Ok(ReconcileReport {
            unfinished,
            redriven: true,
            deliveries,
            failures,
        });
    }
    let bus = tessera_aws::default_bus(&mesh, env)
        .await?
        .context("an AWS environment has a default event bus")?;
    let ctx = tessera_aws::context(mesh, env).await?;
    let unfinished = tessera_core::reconcile::find(&ctx).await?;
    if !dry_run {
        tessera_core::reconcile::redrive(bus.as_ref(), &unfinished).await?;
    }
    Ok(ReconcileReport {
        redriven: !dry_run && !unfinished.is_empty(),
        unfinished,
        deliveries: 0,
        failures: Vec::new(),
    })
}

/// What `tessera run` did.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Raw files landed.
    pub landed: usize,
    /// Raw files already landed with the same content (not landed again).
    pub unchanged: usize,
    /// Events delivered to functions.
    pub deliveries: usize,
    /// Failed deliveries (infrastructure errors or defects), as messages.
    pub failures: Vec<String>,
    /// Products, from their run records.
    pub products: Vec<ProductSummary>,
    /// The warehouse folder.
    pub warehouse: PathBuf,
    /// Wall time.
    pub elapsed: Duration,
}

/// A product's totals over its run records.
#[derive(Debug, Serialize)]
pub struct ProductSummary {
    /// `<domain>.<product>`.
    pub name: String,
    /// Rows read from raw files (aggregates: rows computed by the last run).
    pub rows_in: u64,
    /// Rows in the published product.
    pub published: u64,
    /// Duplicate rows and superseded versions dropped.
    pub dropped: u64,
    /// Rows quarantined by any stage.
    pub quarantined: u64,
    /// Checks passed and failed in the last contract check.
    pub checks: Option<(usize, usize)>,
    /// Product versions refused by the contract, and inputs refused whole.
    pub refused: usize,
    /// Where the product's files are.
    pub location: PathBuf,
    /// Time spent by all its runs.
    pub duration_ms: u64,
}

/// `tessera run`: lands the sample raw files and delivers events until none is left.
pub async fn run(emb: &Embedded) -> Result<RunSummary> {
    let started = Instant::now();
    let ctx = &emb.context;
    let (landed, unchanged) = land_samples(ctx).await?;
    let (deliveries, failures) = deliver(emb).await?;
    Ok(RunSummary {
        landed,
        unchanged,
        deliveries,
        failures,
        products: products(emb).await?,
        warehouse: emb.warehouse.clone(),
        elapsed: started.elapsed(),
    })
}

/// Delivers the bus's events to the functions in process until none is left: the number of
/// deliveries and the failed ones, as messages.
pub async fn deliver(emb: &Embedded) -> Result<(usize, Vec<String>)> {
    // Progress on stderr when a person watches it (a terminal), nothing in pipes and logs.
    let mut progress = Progress::new(
        std::io::stderr(),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        Duration::from_millis(100),
    );
    let deliveries = drain_with(
        &emb.bus,
        &Functions(&emb.context),
        100_000,
        &mut |done, queued| progress.update(done, queued),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    progress.finish();
    let failures = deliveries
        .iter()
        .filter_map(|d| {
            d.result.as_ref().err().map(|e| {
                format!(
                    "{} failed ({}): {}",
                    d.function.name(),
                    e.error_type(),
                    e.message
                )
            })
        })
        .collect();
    Ok((deliveries.len(), failures))
}

/// `tessera dev`: provisions the emulator, lands the sample raw files in S3 (S3 announces them
/// to EventBridge) and bridges rule targets to the functions until the mesh is quiet.
pub async fn dev(
    mesh: Arc<Mesh>,
    env: &str,
    lambda_url: &str,
    idle: u64,
    limit: u64,
) -> Result<tessera_aws::dev::BridgeReport> {
    let settings = tessera_aws::AwsSettings::from_environment(mesh.environment(env)?)
        .ok_or_else(|| anyhow::anyhow!("environment `{env}` is not an aws environment"))?;
    let sdk = settings.sdk_config().await;
    let routes = tessera_aws::dev::provision(&mesh, &settings, &sdk).await?;
    let ctx = tessera_aws::aws_context(Arc::clone(&mesh), &settings).await?;
    land_samples(&ctx).await?;
    let report = tessera_aws::dev::bridge(
        &sdk,
        &settings,
        &routes,
        lambda_url,
        Duration::from_secs(idle),
        Duration::from_secs(limit),
    )
    .await?;
    Ok(report)
}

/// Puts every sample raw file of the mesh under `raw/<product>/`, unless the same bytes are
/// there already. Returns (landed, unchanged).
pub async fn land_samples(ctx: &Context) -> Result<(usize, usize)> {
    let (mut landed, mut unchanged) = (0, 0);
    for (domain, product) in ctx.mesh.products() {
        let ProductKind::Source { source, .. } = &product.kind else {
            continue;
        };
        for file in tessera_core::policy::sample_files(&ctx.mesh.root, &source.samples)? {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let key = format!("raw/{}/{name}", product.name);
            let bytes = Bytes::from(
                std::fs::read(&file)
                    .with_context(|| format!("reading sample `{}`", file.display()))?,
            );
            // Landing the same file again is a no-op, so a run can be repeated.
            if ctx.storage.get_opt(&domain.bucket, &key).await?.as_ref() == Some(&bytes) {
                unchanged += 1;
                continue;
            }
            ctx.storage.put(&domain.bucket, &key, bytes).await?;
            landed += 1;
        }
    }
    Ok((landed, unchanged))
}

/// Per-product totals from the run records.
pub async fn products(emb: &Embedded) -> Result<Vec<ProductSummary>> {
    let ctx = &emb.context;
    let mut out = Vec::new();
    for (domain, product) in ctx.mesh.products() {
        let (stages, publisher): (&[&str], &str) = match product.kind {
            ProductKind::Source { .. } => (
                &["ingest", "clean", "contract-check", "catalog-register"],
                "contract-check",
            ),
            ProductKind::Aggregate { .. } => (&["aggregate", "catalog-register"], "aggregate"),
        };
        let mut runs: Vec<RunRecord> = Vec::new();
        for s in stages {
            runs.extend(history(&ctx.storage, &domain.bucket, &product.name, s).await?);
        }
        let of = |stage: &'static str| runs.iter().filter(move |r| r.stage == stage);
        let last = of(publisher)
            .filter(|r| r.status != RunStatus::Skipped)
            .max_by_key(|r| r.started_at);
        let (rows_in, published) = match product.kind {
            ProductKind::Source { .. } => (
                of("ingest").map(|r| r.rows_in).sum(),
                of(publisher)
                    .filter(|r| r.status == RunStatus::Published)
                    .map(|r| r.rows_out)
                    .sum(),
            ),
            ProductKind::Aggregate { .. } => (
                last.map_or(0, |r| r.rows_in),
                last.map_or(0, |r| r.rows_out),
            ),
        };
        out.push(ProductSummary {
            name: format!("{}.{}", domain.name, product.name),
            rows_in,
            published,
            dropped: of("clean").map(|r| r.dropped).sum(),
            quarantined: runs
                .iter()
                .filter(|r| r.stage != "catalog-register")
                .map(|r| r.quarantined)
                .sum(),
            checks: last.map(|r| (r.checks.passed, r.checks.failed)),
            refused: runs
                .iter()
                .filter(|r| r.status == RunStatus::Quarantined)
                .count(),
            location: emb
                .warehouse
                .join(&domain.bucket)
                .join("products")
                .join(&product.name),
            duration_ms: runs.iter().map(|r| r.duration_ms).sum(),
        });
    }
    Ok(out)
}

/// `tessera query`: DataFusion over the catalog's tables, in any environment.
pub async fn query(ctx: &Context, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(tessera_core::query::query(ctx, sql).await?)
}

/// A catalog table with its partition count.
#[derive(Debug, Serialize)]
pub struct CatalogEntry {
    /// The table.
    #[serde(flatten)]
    pub table: Table,
    /// Partitions registered.
    pub partitions: usize,
}

/// `tessera catalog`, in any environment.
pub async fn catalog(ctx: &Context) -> Result<Vec<CatalogEntry>> {
    let mut out = Vec::new();
    for table in ctx.catalog.tables().await? {
        let partitions = ctx
            .catalog
            .partitions(&table.database, &table.name)
            .await?
            .len();
        out.push(CatalogEntry { table, partitions });
    }
    Ok(out)
}

/// The result of linting one contract file.
#[derive(Debug, Serialize)]
pub struct LintResult {
    /// The file.
    pub file: PathBuf,
    /// Contract id and version when it passed.
    pub contract: Option<(String, String)>,
    /// Problems, one per line, each with `file:line:column`.
    pub problems: Vec<String>,
}

/// `tessera contract lint`.
pub fn lint(files: &[PathBuf]) -> Vec<LintResult> {
    lint_with_policy(files, None)
}

/// `tessera contract lint` under an organisation policy: a contract that passes lint is also
/// checked against the policy's contract rules (every schema object, named as its table), each
/// violation a problem with its `file:line:column`.
pub fn lint_with_policy(files: &[PathBuf], policy: Option<&Policy>) -> Vec<LintResult> {
    files
        .iter()
        .map(|file| {
            let origin = file.display().to_string();
            let result = read_text(file).and_then(|text| {
                let (contract, map) = tessera_contract::policy::lint_located(&text, &origin)
                    .map_err(|e| e.to_string())?;
                match policy {
                    Some(policy) => policy_problems(policy, contract, &map, &origin),
                    None => Ok(contract),
                }
            });
            match result {
                Ok(c) => LintResult {
                    file: file.clone(),
                    contract: Some((c.id, c.version)),
                    problems: vec![],
                },
                Err(e) => LintResult {
                    file: file.clone(),
                    contract: None,
                    problems: e.lines().map(str::to_owned).collect(),
                },
            }
        })
        .collect()
}

/// The contract, or the policy violations of its schema objects (each object named as its
/// table), one `file:line:column` line each.
fn policy_problems(
    policy: &Policy,
    contract: Contract,
    map: &tessera_contract::policy::SourceMap,
    origin: &str,
) -> std::result::Result<Contract, String> {
    let mut violations: Vec<tessera_contract::policy::Violation> = Vec::new();
    let objects: Vec<(&str, &str)> = if contract.schema.is_empty() {
        vec![("", "")]
    } else {
        contract
            .schema
            .iter()
            .map(|o| (o.name.as_str(), o.table_name()))
            .collect()
    };
    for (object, table) in objects {
        for mut v in policy.check(&contract, object, table) {
            v.locate(map);
            // Metadata rules are the same for every object.
            if !violations.contains(&v) {
                violations.push(v);
            }
        }
    }
    if violations.is_empty() {
        Ok(contract)
    } else {
        Err(violations
            .iter()
            .map(|v| v.located(origin))
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// A contract file's text; the error names the file.
fn read_text(file: &Path) -> std::result::Result<String, String> {
    let origin = file.display();
    let bytes = std::fs::read(file).map_err(|e| format!("{origin}: cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{origin}: not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// What `tessera contract diff` found: the changes and the verdict, and who is affected.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    /// The previous version's file.
    pub old_file: PathBuf,
    /// The proposed version's file.
    pub new_file: PathBuf,
    /// Contract id, versions, changes, verdict and its reasons.
    #[serde(flatten)]
    pub diff: ContractDiff,
    /// `<domain>.<product>` of every product of the mesh published under the contract (its id
    /// is OLD's or NEW's).
    pub publishers: Vec<String>,
    /// The products that read a publisher through an input port.
    pub consumers: Vec<Consumer>,
}

/// A product that reads a product published under the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consumer {
    /// `<domain>.<product>` of the consumer.
    pub product: String,
    /// `<domain>.<product>` it reads.
    pub reads: String,
    /// Through which kind of input port.
    pub port: InputKind,
}

/// `tessera contract diff OLD NEW`: OLD is read as an ODCS contract, NEW must also pass lint;
/// publishers and consumers come from `mesh`.
pub fn contract_diff(mesh: &Mesh, old: &Path, new: &Path) -> Result<DiffReport> {
    let read = |file: &Path, lint: bool| -> Result<Contract> {
        let origin = file.display().to_string();
        let text = read_text(file).map_err(anyhow::Error::msg)?;
        let contract = if lint {
            tessera_contract::lint(&text, &origin)
        } else {
            Contract::from_yaml(&text, &origin)
        };
        contract.map_err(|e| anyhow::anyhow!("{e}"))
    };
    let (before, after) = (read(old, false)?, read(new, true)?);
    let diff = tessera_contract::diff(&before, &after);
    let mut publishers = Vec::new();
    let mut consumers: Vec<Consumer> = Vec::new();
    for (domain, product) in mesh.products() {
        if product.contract.id != before.id && product.contract.id != after.id {
            continue;
        }
        let name = format!("{}.{}", domain.name, product.name);
        for (d, p, port) in mesh.consumers(&domain.name, &product.name) {
            let consumer = Consumer {
                product: format!("{}.{}", d.name, p.name),
                reads: name.clone(),
                port: port.kind,
            };
            if !consumers.contains(&consumer) {
                consumers.push(consumer);
            }
        }
        publishers.push(name);
    }
    Ok(DiffReport {
        old_file: old.to_path_buf(),
        new_file: new.to_path_buf(),
        diff,
        publishers,
        consumers,
    })
}

/// `tessera policy check`: every product of the mesh against the policy it names.
pub fn policy_check(mesh: &Mesh) -> Result<PolicyReport> {
    Ok(tessera_core::policy::check_mesh(mesh)?)
}

/// The files of `tessera infra synth`: templates of the chosen stacks, and the mesh layer the
/// domain stacks package. `mesh_path` is the mesh file as given; `environment` the mesh
/// environment the functions run in (default `aws`); `code_uri` the workspace relative to the
/// templates' folder, or `s3://bucket/prefix` of uploaded zips.
pub fn synth(
    mesh: &Mesh,
    mesh_path: &Path,
    environment: Option<&str>,
    stacks: &tessera_infra::Stacks,
    code_uri: &str,
) -> Result<Vec<tessera_infra::Artifact>> {
    let mesh_file = mesh_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("`{}` names no file", mesh_path.display()))?;
    let mut options = tessera_infra::Options::new(mesh_file);
    if let Some(env) = environment {
        options.environment = env.to_owned();
    }
    options.code = tessera_infra::Code::parse(code_uri)?;
    Ok(tessera_infra::synth(mesh, &options, stacks)?)
}

/// What `tessera events put` did.
#[derive(Debug, Serialize)]
pub struct EventsPut {
    /// The batch written to the raw zone.
    pub delivery: tessera_core::domain_events::Delivery,
    /// Function invocations the embedded bus made afterwards (0 on AWS, where S3 notifies).
    pub deliveries: usize,
    /// Invocations that failed.
    pub failures: Vec<String>,
}

/// `tessera events put --product DOMAIN.PRODUCT FILE`: writes a batch of EventBridge events (a
/// JSON array or JSON lines) into the product's raw zone as Firehose would; on the embedded
/// backend, then runs the chain the new object triggers.
pub async fn events_put(
    mesh: Arc<Mesh>,
    env: &str,
    warehouse: Option<&Path>,
    product: &str,
    file: &Path,
) -> Result<EventsPut> {
    let (domain, name) = product
        .split_once('.')
        .with_context(|| format!("`{product}`: name the product as DOMAIN.PRODUCT"))?;
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading events `{}`", file.display()))?;
    let batch = tessera_core::domain_events::parse_batch(&text)?;
    let now = chrono::Utc::now();
    let embedded_env = matches!(mesh.environment(env)?, Environment::Embedded { .. });
    if embedded_env || warehouse.is_some() {
        let emb = embedded(mesh, env, warehouse)?;
        let delivery =
            tessera_core::domain_events::put(&emb.context, domain, name, &batch, now).await?;
        let deliveries = drain(&emb.bus, &Functions(&emb.context), 100_000)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let failures = deliveries
            .iter()
            .filter_map(|d| {
                d.result
                    .as_ref()
                    .err()
                    .map(|e| format!("{} failed: {}", d.function.name(), e.message))
            })
            .collect();
        return Ok(EventsPut {
            delivery,
            deliveries: deliveries.len(),
            failures,
        });
    }
    let ctx = tessera_aws::context(mesh, env).await?;
    let delivery = tessera_core::domain_events::put(&ctx, domain, name, &batch, now).await?;
    Ok(EventsPut {
        delivery,
        deliveries: 0,
        failures: Vec::new(),
    })
}
