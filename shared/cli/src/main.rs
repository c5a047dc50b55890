//! `tessera`: run a data mesh on one machine, lint contracts, check the policy, query products,
//! generate stacks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use tessera_cli::{commands, output, quality};
use tessera_core::Context;
use tessera_core::mesh::Mesh;

/// Tessera: data products on AWS, from ODCS contracts to queryable tables.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
    /// The mesh file.
    #[arg(
        long,
        global = true,
        env = "TESSERA_MESH",
        default_value = "samplecli.toml"
    )]
    mesh: PathBuf,
    /// Environment of the mesh file to use (default: the mesh's default).
    #[arg(long = "env", global = true, env = "TESSERA_ENV")]
    environment: Option<String>,
    /// Warehouse folder of the embedded environment (default: the environment's).
    #[arg(long, global = true, env = "TESSERA_WAREHOUSE")]
    warehouse: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Land the sample raw files and run every pipeline until no event is left.
    Run {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the mesh on an emulator: provision buckets, buses, rules and queues, land the sample
    /// raw files, and deliver every rule's events to the functions `cargo lambda watch` serves.
    Dev {
        /// Lambda Invoke API of `cargo lambda watch`.
        #[arg(
            long,
            env = "TESSERA_LAMBDA_URL",
            default_value = "http://127.0.0.1:9000"
        )]
        lambda_url: String,
        /// Stop after this many seconds without a message.
        #[arg(long, default_value_t = 5)]
        idle: u64,
        /// Stop after this many seconds in any case.
        #[arg(long, default_value_t = 1800)]
        limit: u64,
    },
    /// Find the raw, staged and clean objects no stage finished with (their events lost, or
    /// their runs killed) and send their events again.
    Reconcile {
        /// Only list them.
        #[arg(long)]
        dry_run: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Query published products with SQL; tables are named `<domain>.<product>`.
    Query {
        /// The SQL.
        sql: String,
        /// Print rows as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Per product: the last run, the last publication, freshness against the contract's
    /// service levels, quality, and recent failures.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The Open Data Product Standard (ODPS v1.0.0) descriptor of a product (`domain.product`),
    /// or of every product into a folder (`--out`), checked against the official schema.
    Describe {
        /// The product, as `domain.product`.
        product: Option<String>,
        /// Write every product's descriptor here (`<domain>.<product>.odps.json`).
        #[arg(long, conflicts_with = "product")]
        out: Option<PathBuf>,
    },
    /// List the catalog: products with owner, description, contract and quality.
    Catalog {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Work with data contracts.
    Contract {
        #[command(subcommand)]
        command: ContractCommand,
    },
    /// The organisation's policy the mesh file names.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Infrastructure as code: the CloudFormation/SAM stacks of the mesh.
    Infra {
        #[command(subcommand)]
        command: InfraCommand,
    },
    /// Service levels of the products, from their records.
    Sla {
        #[command(subcommand)]
        command: SlaCommand,
    },
    /// Domain events from EventBridge, batched into a product's raw zone.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Generate the portal: a static site of the mesh (HTML, CSS and inline SVG, relative links
    /// only) with a page per domain and per product (`docs/portal.md`).
    Portal {
        /// The folder to write the pages to (created if needed).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a completion script for a shell (`tessera completions bash > /etc/bash_completion.d/tessera`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The orders benchmark (`docs/bench.md`).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Scaffold a new domain or data product from built-in templates (`docs/domain-guide.md`).
    New {
        #[command(subcommand)]
        command: NewCommand,
    },
}

#[derive(Debug, Subcommand)]
enum NewCommand {
    /// A domain: its `[[domains]]` entry appended to the mesh file and its folder
    /// `domains/NAME/`.
    Domain {
        /// The domain's name (lower-case letters, digits and `_`).
        name: String,
        /// What the domain is about.
        #[arg(long)]
        description: Option<String>,
    },
    /// A data product of a domain: an ODCS v3 contract, a sample CSV under `raw/`, and its
    /// `[[domains.products]]` entry in the domain's section of the mesh file.
    Product {
        /// The domain (already in the mesh file).
        domain: String,
        /// The product's name (lower-case letters, digits and `_`).
        name: String,
        /// The owner written in the contract's team (default `<domain>-data@example.com`).
        #[arg(long)]
        owner: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// One raw orders file through the embedded chain, in a fresh warehouse under OUT_DIR, with
    /// the outputs laid out as the benchmark's peers lay theirs out (clean/, quarantine/, agg/,
    /// report.json).
    Run {
        /// The raw orders file (.csv or .ndjson).
        raw_file: PathBuf,
        /// The output folder (replaced).
        out_dir: PathBuf,
        /// Input format (default: from the file's suffix).
        #[arg(long, value_enum)]
        format: Option<tessera_cli::bench::BenchFormat>,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Write a batch of EventBridge events (full envelopes, as a JSON array or one per line)
    /// into the raw zone of a product declaring `source.events`, at Kinesis Data Firehose's
    /// layout (`raw/<product>/YYYY/MM/DD/HH/<stream>-1-...`): NDJSON of the matching events'
    /// `detail`. Embedded, the chain it triggers then runs; on AWS, S3 triggers it.
    Put {
        /// The product, as DOMAIN.PRODUCT.
        #[arg(long)]
        product: String,
        /// The events file.
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SlaCommand {
    /// Evaluate every product's `slaProperties` (latency, freshness, frequency,
    /// timeOfAvailability, retention); exits non-zero when one is breached.
    Check {
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
        /// Announce each breach on the environment's bus as `SlaBreached`.
        #[arg(long)]
        emit: bool,
        /// Evaluate as of this time (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Debug, Subcommand)]
enum InfraCommand {
    /// Generate stack templates from the mesh file and the contracts (for the `aws`
    /// environment unless `--env` names another AWS environment).
    #[command(group(clap::ArgGroup::new("stack").required(true).args(["domain", "platform", "all"])))]
    Synth {
        /// A domain's stack (with the mesh layer it packages, when writing to `--out`).
        #[arg(long)]
        domain: Option<String>,
        /// The platform stack.
        #[arg(long)]
        platform: bool,
        /// Every stack; needs `--out`, and removes generated files no stack needs any more.
        #[arg(long, requires = "out")]
        all: bool,
        /// Folder to write `<stack>.template.json` (and `mesh/`) to; without it the template is
        /// printed.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The functions' code: the Cargo workspace relative to the output folder, built by
        /// `sam build`, or `s3://bucket/prefix` holding `<function>.zip` files and `mesh.zip`
        /// (the mesh layer: the content of `mesh/`).
        #[arg(long, default_value = "..")]
        code_uri: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check every product of the mesh against the policy: metadata, descriptions, names,
    /// formats, masks, and the personal-data detectors over each product's sample raw files.
    /// Fails when any product breaks it.
    Check {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ContractCommand {
    /// Check contracts against the ODCS schema and Tessera's rules, and against the policy the
    /// mesh file names, if any.
    Lint {
        /// Contract files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare two versions of a contract: every change, breaking or not, and the mesh's
    /// products that publish or consume it; fails unless breaking changes come with a new
    /// major version, or when anything changed without a new version.
    Diff {
        /// The previous version.
        old: PathBuf,
        /// The proposed version (it must also pass `contract lint`).
        new: PathBuf,
        /// Print one JSON document (changes, verdict, publishers, consumers).
        #[arg(long)]
        json: bool,
    },
    /// Run a contract's checks on data: CSV, NDJSON or Parquet files, folders of them, or an
    /// `s3://bucket/prefix` of the environment's storage. Exits non-zero when a check fails.
    Test {
        /// The contract.
        contract: PathBuf,
        /// Files, folders or `s3://bucket/prefix`.
        #[arg(required = true)]
        data: Vec<String>,
        /// The schema object to test against (default: the contract's first).
        #[arg(long)]
        object: Option<String>,
        /// Report format.
        #[arg(long, value_enum, default_value = "text")]
        format: quality::ReportFormat,
        /// Write the report to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let runtime = match tessera_core::process::runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        tessera_core::telemetry::init_text();
        match dispatch(Cli::parse()).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    if let Command::Completions { shell } = &cli.command {
        // Needs no mesh file.
        use clap::CommandFactory;
        use std::io::Write;
        // Into memory first: clap_complete panics when its writer fails (a closed pipe).
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "tessera", &mut script);
        std::io::stdout()
            .write_all(&script)
            .context("writing the completion script")?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::New { command } = &cli.command {
        let scaffold = match command {
            NewCommand::Domain { name, description } => {
                tessera_cli::scaffold::new_domain(&cli.mesh, name, description.as_deref())?
            }
            NewCommand::Product {
                domain,
                name,
                owner,
            } => tessera_cli::scaffold::new_product(&cli.mesh, domain, name, owner.as_deref())?,
        };
        for path in &scaffold.created {
            println!("created {}", path.display());
        }
        println!(
            "added to {}:{}",
            scaffold.mesh_file.display(),
            scaffold.entry.trim_end()
        );
        // A new product completes its domain's stack: regenerated into `infra/` beside the mesh.
        let mut next = scaffold.next.clone();
        if let NewCommand::Product { domain, .. } = command {
            let written =
                tessera_cli::scaffold::write_stack(&cli.mesh, cli.environment.as_deref(), domain)?;
            for path in &written {
                println!("wrote {}", path.display());
            }
            next.retain(|step| !step.contains("infra synth"));
        }
        println!("\nnext:");
        for step in &next {
            println!("  {step}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Contract {
        command: ContractCommand::Lint { files, json },
    } = &cli.command
    {
        // The policy applies when the mesh file names one; contracts lint without a mesh file.
        let policy = if cli.mesh.exists() {
            Mesh::policy_of(&cli.mesh)
                .with_context(|| format!("reading the policy of `{}`", cli.mesh.display()))?
        } else {
            None
        };
        let results = commands::lint_with_policy(files, policy.as_ref().map(|(p, _)| p));
        if *json {
            println!("{}", serde_json::to_string_pretty(&results)?);
        } else {
            print!("{}", output::lint(&results));
        }
        let failed = results.iter().filter(|r| r.contract.is_none()).count();
        if failed > 0 {
            eprintln!("{failed} of {} contracts failed", results.len());
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mesh = Arc::new(
        Mesh::load(&cli.mesh).with_context(|| format!("loading mesh `{}`", cli.mesh.display()))?,
    );
    if let Command::Contract {
        command: ContractCommand::Diff { old, new, json },
    } = &cli.command
    {
        let report = commands::contract_diff(&mesh, old, new)?;
        if *json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", output::contract_diff(&report));
        }
        return Ok(match report.diff.verdict {
            tessera_contract::Verdict::Ok => ExitCode::SUCCESS,
            tessera_contract::Verdict::Fail => ExitCode::FAILURE,
        });
    }
    if let Command::Infra { command } = &cli.command {
        infra(&mesh, &cli, command)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Policy {
        command: PolicyCommand::Check { json },
    } = &cli.command
    {
        let report = commands::policy_check(&mesh)?;
        if *json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", output::policy(&report));
        }
        return Ok(if report.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let env = cli
        .environment
        .clone()
        .unwrap_or_else(|| mesh.default_environment.clone());
    if let Command::Contract {
        command:
            ContractCommand::Test {
                contract,
                data,
                object,
                format,
                output,
            },
    } = &cli.command
    {
        let scratch = tempfile::tempdir()?;
        let ctx = if data.iter().any(|d| d.starts_with("s3://")) {
            Some(context(Arc::clone(&mesh), &env, cli.warehouse.as_deref()).await?)
        } else {
            None
        };
        let files = quality::data_files(data, ctx.as_ref(), scratch.path()).await?;
        let report = quality::contract_test(contract, object.as_deref(), &files).await?;
        let text = match format {
            quality::ReportFormat::Text => quality::contract_test_text(&report),
            quality::ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
            quality::ReportFormat::Junit => report.junit(),
        };
        match output {
            Some(path) => std::fs::write(path, text)
                .with_context(|| format!("writing `{}`", path.display()))?,
            None => print!("{text}"),
        }
        return Ok(if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    match cli.command {
        Command::Run { json } => {
            let emb = commands::embedded(mesh, &env, cli.warehouse.as_deref())?;
            let summary = commands::run(&emb).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!("{}", output::run_summary(&summary));
            }
            Ok(if summary.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Dev {
            lambda_url,
            idle,
            limit,
        } => {
            let report = commands::dev(mesh, &env, &lambda_url, idle, limit).await?;
            println!(
                "{} events delivered, {} invocations failed",
                report.delivered,
                report.failures.len()
            );
            Ok(failures_exit(&report.failures))
        }
        Command::Reconcile { dry_run, json } => {
            let report = commands::reconcile(mesh, &env, cli.warehouse.as_deref(), dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", output::reconcile(&report));
            }
            Ok(failures_exit(&report.failures))
        }
        Command::Query { sql, json } => {
            let ctx = context(mesh, &env, cli.warehouse.as_deref()).await?;
            let batches = commands::query(&ctx, &sql).await?;
            if json {
                print!("{}", output::batches_json(&batches)?);
            } else {
                println!("{}", output::batches(&batches)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let ctx = context(mesh, &env, cli.warehouse.as_deref()).await?;
            let now = chrono::Utc::now();
            let products = tessera_cli::status::status(&ctx, now).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&products)?);
            } else {
                println!("{}", output::status(&products, now));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Describe { product, out } => {
            let described = commands::describe(&mesh, product.as_deref())?;
            match out {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating `{}`", dir.display()))?;
                    for (name, doc) in &described {
                        let path = dir.join(format!("{name}.odps.json"));
                        std::fs::write(&path, serde_json::to_string_pretty(doc)? + "\n")
                            .with_context(|| format!("writing `{}`", path.display()))?;
                        println!("wrote {}", path.display());
                    }
                }
                None => {
                    for (_, doc) in &described {
                        println!("{}", serde_json::to_string_pretty(doc)?);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog { json } => {
            let ctx = context(mesh, &env, cli.warehouse.as_deref()).await?;
            let entries = commands::catalog(&ctx).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                println!("{}", output::catalog(&entries));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sla {
            command: SlaCommand::Check { json, emit, at },
        } => {
            let ctx = context(mesh, &env, cli.warehouse.as_deref()).await?;
            let reports =
                quality::sla_check(&ctx, at.unwrap_or_else(chrono::Utc::now), emit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print!("{}", quality::sla_text(&reports));
            }
            let breached = reports.iter().any(|r| r.breached().next().is_some());
            Ok(if breached {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Events {
            command:
                EventsCommand::Put {
                    product,
                    file,
                    json,
                },
        } => {
            let put =
                commands::events_put(mesh, &env, cli.warehouse.as_deref(), &product, &file).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&put)?);
            } else {
                let d = &put.delivery;
                match &d.key {
                    Some(key) => {
                        println!("wrote {} event(s) to s3://{}/{key}", d.written, d.bucket)
                    }
                    None => println!("no event matched the product's rule: nothing written"),
                }
                for (i, why) in &d.skipped {
                    println!("skipped event {}: {why}", i + 1);
                }
                if put.deliveries > 0 {
                    println!(
                        "{} deliveries, {} failed",
                        put.deliveries,
                        put.failures.len()
                    );
                }
                for f in &put.failures {
                    eprintln!("{f}");
                }
            }
            Ok(if put.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Portal { out } => {
            let ctx = context(mesh, &env, cli.warehouse.as_deref()).await?;
            let written = tessera_cli::portal::generate(&ctx, &out, chrono::Utc::now()).await?;
            for path in &written {
                println!("wrote {}", path.display());
            }
            println!("{} files in `{}`", written.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command:
                BenchCommand::Run {
                    raw_file,
                    out_dir,
                    format,
                },
        } => {
            let mesh = Arc::unwrap_or_clone(mesh);
            let report = tessera_cli::bench::run(mesh, &env, &raw_file, &out_dir, format).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Contract { .. }
        | Command::Infra { .. }
        | Command::Policy { .. }
        | Command::New { .. }
        | Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// `tessera infra synth`: templates written to `--out`, or the one asked for printed.
fn infra(mesh: &Mesh, cli: &Cli, command: &InfraCommand) -> Result<()> {
    let InfraCommand::Synth {
        domain,
        platform,
        all,
        out,
        code_uri,
    } = command;
    let stacks = match (domain, platform, all) {
        (Some(d), _, _) => tessera_infra::Stacks::Domain(d.clone()),
        (None, true, _) => tessera_infra::Stacks::Platform,
        _ => tessera_infra::Stacks::All,
    };
    let artifacts = commands::synth(
        mesh,
        &cli.mesh,
        cli.environment.as_deref(),
        &stacks,
        code_uri,
    )?;
    let Some(dir) = out else {
        let template = artifacts.first().context("no template generated")?;
        use std::io::Write as _;
        return match std::io::stdout().lock().write_all(&template.contents) {
            // A reader that stops early (`| head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        };
    };
    let (written, deleted) = tessera_infra::write(dir, &artifacts, *all)?;
    for path in &written {
        eprintln!("wrote {}", path.display());
    }
    for path in &deleted {
        eprintln!("removed {}", path.display());
    }
    eprintln!(
        "{} files in `{}`: {} written, {} unchanged, {} removed",
        artifacts.len(),
        dir.display(),
        written.len(),
        artifacts.len() - written.len(),
        deleted.len()
    );
    Ok(())
}

/// Prints failed deliveries to stderr; the exit code says whether there were any.
fn failures_exit(failures: &[String]) -> ExitCode {
    for f in failures {
        eprintln!("error: {f}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The ports of an environment; `--warehouse` makes it the embedded one over that folder.
async fn context(mesh: Arc<Mesh>, env: &str, warehouse: Option<&Path>) -> Result<Context> {
    Ok(match warehouse {
        Some(w) => commands::embedded(mesh, env, Some(w))?.context,
        None => tessera_aws::context(mesh, env).await?,
    })
}
