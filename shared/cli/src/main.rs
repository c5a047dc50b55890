//! `tessera`: run a data mesh on one machine, lint contracts, query products.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use tessera_cli::{commands, output};
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
    /// Query published products with SQL; tables are named `<domain>.<product>`.
    Query {
        /// The SQL.
        sql: String,
        /// Print rows as JSON lines.
        #[arg(long)]
        json: bool,
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
}

#[derive(Debug, Subcommand)]
enum ContractCommand {
    /// Check contracts against the ODCS schema and Tessera's rules.
    Lint {
        /// Contract files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print results as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tessera_core::telemetry::init_text();
    match dispatch(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    if let Command::Contract {
        command: ContractCommand::Lint { files, json },
    } = &cli.command
    {
        let results = commands::lint(files);
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
    let env = cli
        .environment
        .clone()
        .unwrap_or_else(|| mesh.default_environment.clone());
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
            for f in &report.failures {
                eprintln!("error: {f}");
            }
            Ok(if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
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
        Command::Contract { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// The ports of an environment; `--warehouse` makes it the embedded one over that folder.
async fn context(mesh: Arc<Mesh>, env: &str, warehouse: Option<&Path>) -> Result<Context> {
    Ok(match warehouse {
        Some(w) => commands::embedded(mesh, env, Some(w))?.context,
        None => tessera_aws::context(mesh, env).await?,
    })
}
