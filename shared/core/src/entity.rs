//! Entity products: the latest state per key of an event or change stream.
//!
//! An entity is declared under its stream in the mesh file
//! (`[[domains.products.entities]]`) and loaded as an aggregate of the stream whose SQL is
//! generated here, so the aggregate stage recomputes it from every committed version of the
//! stream whenever the stream publishes. The query, for key `k`, ordering `o` (latest last),
//! delete predicate `D` and truncate predicate `T`:
//!
//! ```sql
//! WITH "__events" AS (
//!   SELECT *, COUNT(CASE WHEN (T) THEN 1 END) OVER (
//!     ORDER BY "o" DESC NULLS LAST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
//!   ) AS "__truncated"                      -- truncates at or after this event
//!   FROM "stream"
//! ), "__latest" AS (
//!   SELECT *, ROW_NUMBER() OVER (PARTITION BY "k" ORDER BY "o" DESC NULLS LAST) AS "__rank"
//!   FROM "__events"
//!   WHERE "__truncated" = 0 AND "k" IS NOT NULL
//! )
//! SELECT <entity columns> FROM "__latest"
//! WHERE "__rank" = 1 AND NOT COALESCE((D), FALSE)
//! ORDER BY "k"
//! ```
//!
//! * an event followed (in the ordering) by a truncate is dropped, and so is the truncate;
//! * of the remaining events of a key, the latest wins; if it is a delete, the key is gone;
//! * a duplicate event (redelivered, so in another file, with the same position) ties with its
//!   twin: either copy wins, and they are equal.

use crate::mesh::{EntityConfig, Product, SourceConfig, SourceFormat};

/// An entity's settings, resolved against its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySpec {
    /// The stream (the parent product, the table the SQL reads).
    pub stream: String,
    /// Key columns.
    pub key: Vec<String>,
    /// Ordering columns, latest last.
    pub order_by: Vec<String>,
    /// Delete predicate.
    pub deletes: Option<String>,
    /// Truncate predicate.
    pub truncates: Option<String>,
}

impl EntitySpec {
    /// The settings of entity `e` of `stream`, with a Debezium stream's defaults (order by the
    /// CDC position; deletes `op = 'd'`, truncates `op = 't'`); every column named must be a
    /// column of the stream.
    pub fn resolve(
        stream: &Product,
        source: &SourceConfig,
        e: &EntityConfig,
    ) -> Result<EntitySpec, String> {
        let cdc = (source.format == SourceFormat::Debezium).then(|| source.cdc_columns());
        let order_by = match (&cdc, e.order_by.is_empty()) {
            (_, false) => e.order_by.clone(),
            (Some(c), true) => vec![c.position.clone()],
            (None, true) => {
                return Err("`order_by` is required (the stream is not a Debezium stream)".into());
            }
        };
        if e.key.is_empty() {
            return Err("`key` names no column".into());
        }
        for (field, column) in e
            .key
            .iter()
            .map(|c| ("key", c))
            .chain(order_by.iter().map(|c| ("order_by", c)))
        {
            if stream.schema().property(column).is_none() {
                return Err(format!(
                    "`{field}` names column `{column}`, which is not a column of the stream"
                ));
            }
        }
        let op = |letter: &str| {
            cdc.as_ref()
                .map(|c| format!("{} = '{letter}'", quote(&c.op)))
        };
        Ok(EntitySpec {
            stream: stream.name.clone(),
            key: e.key.clone(),
            order_by,
            deletes: e.deletes.clone().or_else(|| op("d")),
            truncates: e.truncates.clone().or_else(|| op("t")),
        })
    }

    /// The query computing the entity's rows with `columns` (its contract's columns).
    pub fn sql(&self, columns: &[String]) -> String {
        let order = self
            .order_by
            .iter()
            .map(|c| format!("{} DESC NULLS LAST", quote(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let key = self.key.iter().map(|c| quote(c)).collect::<Vec<_>>();
        let truncated = match &self.truncates {
            Some(t) => format!(
                "COUNT(CASE WHEN ({t}) THEN 1 END) OVER (ORDER BY {order} \
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
            ),
            None => "0".into(),
        };
        let present = key
            .iter()
            .map(|k| format!(" AND {k} IS NOT NULL"))
            .collect::<String>();
        let deleted = match &self.deletes {
            Some(d) => format!(" AND NOT COALESCE(({d}), FALSE)"),
            None => String::new(),
        };
        let select = columns.iter().map(|c| quote(c)).collect::<Vec<_>>();
        format!(
            "WITH \"__events\" AS (\n  SELECT *, {truncated} AS \"__truncated\"\n  FROM {stream}\n), \
             \"__latest\" AS (\n  SELECT *, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {order}) AS \"__rank\"\n  \
             FROM \"__events\"\n  WHERE \"__truncated\" = 0{present}\n)\n\
             SELECT {select}\nFROM \"__latest\"\nWHERE \"__rank\" = 1{deleted}\nORDER BY {keys}",
            stream = quote(&self.stream),
            keys = key.join(", "),
            select = select.join(", "),
        )
    }
}

/// A double-quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
