//! `tessera`: run a data mesh on one machine, lint contracts, query products.

mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Land the sample raw files and run every pipeline until no event is left.
    Run,
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
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tessera_core::telemetry::init_text();
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    if let Command::Contract {
        command: ContractCommand::Lint { files },
    } = &cli.command
    {
        return Ok(lint(files));
    }
    let mesh = Arc::new(
        Mesh::load(&cli.mesh).with_context(|| format!("loading mesh `{}`", cli.mesh.display()))?,
    );
    let env = cli
        .environment
        .clone()
        .unwrap_or_else(|| mesh.default_environment.clone());
    match cli.command {
        Command::Run => run::run(mesh, &env).await,
        Command::Query { sql, json } => run::query(mesh, &env, &sql, json).await,
        Command::Catalog { json } => run::catalog(mesh, &env, json).await,
        Command::Contract { .. } => Ok(ExitCode::SUCCESS),
    }
}

fn lint(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for file in files {
        let origin = file.display().to_string();
        let result = std::fs::read(file)
            .map_err(|e| format!("{origin}: cannot read: {e}"))
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|e| {
                    format!(
                        "{origin}: not UTF-8 text (byte {})",
                        e.utf8_error().valid_up_to()
                    )
                })
            })
            .and_then(|text| tessera_contract::lint(&text, &origin).map_err(|e| e.to_string()));
        match result {
            Ok(c) => println!("ok    {origin} ({} {})", c.id, c.version),
            Err(e) => {
                failed += 1;
                println!("FAIL  {origin}");
                for line in e.lines() {
                    println!("      {line}");
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} contracts failed", files.len());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
