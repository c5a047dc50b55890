//! The contract's `relationships`: foreign keys to another product, in the same domain or across
//! domains, checked on the data being published.
//!
//! A relationship names its target in ODCS's shorthand, `table.column` (or lists of them for a
//! composite key at schema level). The table is either the checked object itself (a key into the
//! same data) or a product of the mesh, found by its name or its schema object's name, in any
//! domain; its data is what the catalog says is published: the committed files at the table's
//! location. Rows whose key is set but absent from the target are counted; any such row fails the
//! check. A target that is not published yet, or a reference Tessera cannot resolve, is reported
//! as not executed with the reason, never as passed.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::prelude::SessionContext;
use serde_json::Value;
use tessera_contract::{CheckReport, CheckResult, CheckStatus, Contract, SchemaObject};

use super::check::Masker;
use super::sql_checks::{RuleError, classify, masked_table, poisoned, quote};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::query::{product_table, split_location};

/// A foreign key declared by the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// Columns of the checked object.
    pub from: Vec<String>,
    /// Target table (a schema object or product name).
    pub table: String,
    /// Target columns, in the order of `from`.
    pub to: Vec<String>,
}

impl ForeignKey {
    /// The check's name: `<from>.foreignKey`.
    pub fn name(&self) -> String {
        format!("{}.foreignKey", self.from.join(","))
    }
}

/// The foreign keys of `object` in `contract`: property-level `relationships` (`to` only) and
/// schema-level ones (`from` and `to`). References that are not `table.column` are returned as
/// errors to report.
pub fn foreign_keys(
    contract: &Contract,
    object: &SchemaObject,
) -> Vec<std::result::Result<ForeignKey, (String, String)>> {
    let mut out = Vec::new();
    let Some(raw) = contract.raw["schema"]
        .as_array()
        .and_then(|objects| objects.iter().find(|o| o["name"] == object.name.as_str()))
    else {
        return out;
    };
    let is_fk = |r: &Value| r["type"].as_str().is_none_or(|t| t == "foreignKey");
    for property in raw["properties"].as_array().into_iter().flatten() {
        let Some(name) = property["name"].as_str() else {
            continue;
        };
        for r in property["relationships"].as_array().into_iter().flatten() {
            if is_fk(r) {
                out.push(reference(vec![name.to_owned()], &r["to"]));
            }
        }
    }
    for r in raw["relationships"].as_array().into_iter().flatten() {
        if !is_fk(r) {
            continue;
        }
        let from: Vec<String> = match &r["from"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        // `from` names columns of this object, as `table.column` or `column`.
        let from = from
            .into_iter()
            .map(|f| f.rsplit('.').next().unwrap_or(&f).to_owned())
            .collect();
        out.push(reference(from, &r["to"]));
    }
    out
}

fn reference(from: Vec<String>, to: &Value) -> std::result::Result<ForeignKey, (String, String)> {
    let targets: Vec<&str> = match to {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let name = format!("{}.foreignKey", from.join(","));
    let mut table = None;
    let mut columns = Vec::new();
    for t in &targets {
        let Some((tbl, column)) = t.split_once('.').filter(|(_, c)| !c.contains('.')) else {
            return Err((
                name,
                format!("reference `{t}` is not `table.column`; Tessera resolves only that form"),
            ));
        };
        if table.is_some_and(|known| known != tbl) {
            return Err((name, "a composite key must reference one table".into()));
        }
        table = Some(tbl);
        columns.push(column.to_owned());
    }
    match table {
        Some(table) if columns.len() == from.len() => Ok(ForeignKey {
            from,
            table: table.to_owned(),
            to: columns,
        }),
        _ => Err((name, "`from` and `to` do not pair up".into())),
    }
}

/// Checks every foreign key of `object` on the Parquet object `bucket/key` (masked as published)
/// and records the results in `report`. Returns how many relationships were looked at.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: &Context,
    bucket: &str,
    key: &str,
    schema: SchemaRef,
    masker: Arc<Masker>,
    contract: &Contract,
    object: &SchemaObject,
    report: &mut CheckReport,
) -> Result<usize> {
    let keys = foreign_keys(contract, object);
    if keys.is_empty() {
        return Ok(0);
    }
    let (table, failure) = masked_table(&ctx.storage, bucket, key, schema, masker)?;
    let session = SessionContext::new();
    session.register_table("__checked", Arc::clone(&table))?;
    for (i, fk) in keys.iter().enumerate() {
        let fk = match fk {
            Ok(fk) => fk,
            Err((name, why)) => {
                report.record(not_executed(name, None, why));
                continue;
            }
        };
        let target = format!("__target_{i}");
        let registered = if fk.table == object.name {
            session.register_table(target.as_str(), Arc::clone(&table))?;
            Ok(())
        } else {
            register_product(ctx, &session, &fk.table, &target).await?
        };
        if let Err(why) = registered {
            report.record(not_executed(&fk.name(), fk.from.first(), &why));
            continue;
        }
        let outcome = orphans(&session, fk, &target).await;
        if let Some(e) = failure.lock().map_err(|_| poisoned())?.take() {
            return Err(e);
        }
        let result = match outcome {
            Ok(count) => result(fk, Some(count), None),
            Err(RuleError::Rule(why)) => result(fk, None, Some(why)),
            Err(RuleError::Infrastructure(e)) => return Err(e),
        };
        report.record(result);
    }
    Ok(keys.len())
}

/// Registers the published data of the product whose name (or schema object name) is `table`
/// as `alias`; `Err(reason)` when there is none to check against.
async fn register_product(
    ctx: &Context,
    session: &SessionContext,
    table: &str,
    alias: &str,
) -> Result<std::result::Result<(), String>> {
    let matches: Vec<_> = ctx
        .mesh
        .products()
        .filter(|(_, p)| p.name == table || p.schema().name == table)
        .collect();
    let (domain, product) = match matches.as_slice() {
        [one] => *one,
        [] => return Ok(Err(format!("no product of the mesh is called `{table}`"))),
        _ => {
            return Ok(Err(format!(
                "`{table}` names {} products; name the table unambiguously",
                matches.len()
            )));
        }
    };
    let Some(entry) = ctx
        .catalog
        .get_table(&domain.database, &product.name)
        .await?
    else {
        return Ok(Err(format!(
            "`{}.{}` is not in the catalog yet (nothing published)",
            domain.database, product.name
        )));
    };
    let Some((bucket, prefix)) = split_location(&entry.location) else {
        return Err(Error::Catalog(format!(
            "table `{}.{}` has location `{}`, not s3://bucket/prefix",
            domain.database, product.name, entry.location
        )));
    };
    let name = prefix.trim_start_matches("products/").trim_end_matches('/');
    match product_table(session, &ctx.storage, bucket, name).await? {
        Some(provider) => {
            session.register_table(alias, provider)?;
            Ok(Ok(()))
        }
        None => Ok(Err(format!(
            "`{}.{}` has no published version yet",
            domain.database, product.name
        ))),
    }
}

/// Rows of the checked data whose key is set and absent from the target.
async fn orphans(
    session: &SessionContext,
    fk: &ForeignKey,
    target: &str,
) -> std::result::Result<u64, RuleError> {
    let set = fk
        .from
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", quote(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let join = fk
        .from
        .iter()
        .zip(&fk.to)
        .map(|(f, t)| format!("t.{} = c.{}", quote(t), quote(f)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "SELECT COUNT(*) FROM __checked c WHERE {set} \
         AND NOT EXISTS (SELECT 1 FROM {target} t WHERE {join})"
    );
    let batches = session
        .sql(&sql)
        .await
        .map_err(classify)?
        .collect()
        .await
        .map_err(classify)?;
    let count = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| {
            let c = b.column(0).as_primitive_opt::<Int64Type>()?;
            (!c.is_null(0)).then(|| c.value(0))
        })
        .ok_or_else(|| RuleError::Rule("the foreign key count returned nothing".into()))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn result(fk: &ForeignKey, orphans: Option<u64>, error: Option<String>) -> CheckResult {
    let status = match orphans {
        Some(0) => CheckStatus::Passed,
        _ => CheckStatus::Failed,
    };
    let detail = error.or_else(|| {
        orphans.filter(|n| *n > 0).map(|n| {
            format!(
                "{n} rows have a {} that is not in `{}` ({})",
                fk.from.join(", "),
                fk.table,
                fk.to.join(", ")
            )
        })
    });
    CheckResult {
        name: fk.name(),
        rule: "foreignKey".into(),
        property: fk.from.first().cloned(),
        observed: orphans.map(|n| n as f64),
        expectation: "= 0".into(),
        unit: "rows".into(),
        severity: "error".into(),
        status,
        detail,
    }
}

fn not_executed(name: &str, property: Option<&String>, why: &str) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        rule: "foreignKey".into(),
        property: property.cloned(),
        observed: None,
        expectation: "= 0".into(),
        unit: "rows".into(),
        severity: "error".into(),
        status: CheckStatus::NotExecuted,
        detail: Some(why.to_owned()),
    }
}
