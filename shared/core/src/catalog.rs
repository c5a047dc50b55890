//! The catalog port (the Glue Data Catalog on AWS) and its file-backed embedded adapter.
//!
//! Tables are described from their contracts: columns typed for Athena with comments, partition
//! keys, and parameters (owner, domain, contract id and version, classification). Every update is
//! a compare-and-swap on the table version, so concurrent writers cannot lose each other's
//! changes; partitions are added idempotently.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow::datatypes::DataType;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::validate_identifier;

/// A catalog database (one per domain).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Database {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
}

/// A column as the catalog stores it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Athena/Hive type (`decimal(12,2)`, `array<struct<sku:string>>`).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Description from the contract.
    pub comment: Option<String>,
}

/// A table: one per data product.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Table {
    /// Database.
    pub database: String,
    /// Table name (the product name).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Where the data is (`s3://bucket/products/<product>/`).
    pub location: String,
    /// Data columns (partition keys excluded).
    pub columns: Vec<Column>,
    /// Partition keys, in order.
    pub partition_keys: Vec<Column>,
    /// Owner, domain, contract id/version, classification, quality status, last publish.
    pub parameters: BTreeMap<String, String>,
    /// Version for compare-and-swap; 0 before the first write.
    #[serde(default)]
    pub version: u64,
}

/// A partition of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Partition {
    /// Values in partition-key order.
    pub values: Vec<String>,
    /// Where its files are.
    pub location: String,
}

/// The catalog port.
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// Creates the database if it does not exist.
    async fn ensure_database(&self, database: &Database) -> Result<()>;
    /// A table, if it exists.
    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>>;
    /// Creates (`expected_version` 0) or replaces (the version read) a table.
    /// Fails with [`Error::Conflict`] if someone else changed it meanwhile.
    async fn put_table(&self, table: &Table, expected_version: u64) -> Result<()>;
    /// Adds partitions, ignoring those that exist; returns how many were new.
    async fn add_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: &[Partition],
    ) -> Result<usize>;
    /// Partitions of a table.
    async fn partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>>;
    /// Every table of every database.
    async fn tables(&self) -> Result<Vec<Table>>;
}

/// How a table is stored, as the Glue Data Catalog (and Athena) must be told: external tables of
/// Parquet files read through the Hive Parquet SerDe. The catalog adapter and the generated
/// infrastructure describe tables with these same values.
pub mod hive {
    /// Glue table type of every product table.
    pub const TABLE_TYPE: &str = "EXTERNAL_TABLE";
    /// Hadoop input format of Parquet files.
    pub const INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
    /// Hadoop output format of Parquet files.
    pub const OUTPUT_FORMAT: &str =
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
    /// The Parquet SerDe.
    pub const SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
    /// Parameters of the SerDe.
    pub const SERDE_PARAMETERS: [(&str, &str); 1] = [("serialization.format", "1")];
    /// Table parameter added to a table's own parameters when it is written to Glue (and
    /// removed when read back).
    pub const EXTERNAL_PARAMETER: (&str, &str) = ("EXTERNAL", "TRUE");
}

/// The Athena/Hive type of an Arrow type.
pub fn athena_type(dt: &DataType) -> Result<String> {
    Ok(match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("array<{}>", athena_type(f.data_type())?)
        }
        DataType::Struct(fields) => {
            let inner: Result<Vec<String>> = fields
                .iter()
                .map(|f| Ok(format!("{}:{}", f.name(), athena_type(f.data_type())?)))
                .collect();
            format!("struct<{}>", inner?.join(","))
        }
        DataType::Time64(_) | DataType::Time32(_) => "string".into(),
        other => {
            return Err(Error::Config(format!(
                "type `{other}` has no catalog equivalent"
            )));
        }
    })
}

/// The embedded catalog: one JSON file per table under `<warehouse>/_catalog/`.
#[derive(Debug)]
pub struct FileCatalog {
    root: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TableFile {
    table: Table,
    partitions: Vec<Partition>,
}

impl FileCatalog {
    /// A catalog stored under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileCatalog {
            root: root.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn db_dir(&self, database: &str) -> Result<PathBuf> {
        validate_identifier(database).map_err(Error::Catalog)?;
        Ok(self.root.join(database))
    }

    fn table_path(&self, database: &str, table: &str) -> Result<PathBuf> {
        validate_identifier(table).map_err(Error::Catalog)?;
        Ok(self.db_dir(database)?.join(format!("{table}.json")))
    }

    fn read(&self, database: &str, table: &str) -> Result<Option<TableFile>> {
        let path = self.table_path(database, table)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Atomic replace: write a temporary file, then rename over the old one.
    fn write(&self, file: &TableFile) -> Result<()> {
        let path = self.table_path(&file.table.database, &file.table.name)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(file)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

#[async_trait]
impl Catalog for FileCatalog {
    async fn ensure_database(&self, database: &Database) -> Result<()> {
        let dir = self.db_dir(&database.name)?;
        std::fs::create_dir_all(&dir)?;
        let meta = dir.join("_database.json");
        if !meta.exists() {
            std::fs::write(meta, serde_json::to_vec_pretty(database)?)?;
        }
        Ok(())
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>> {
        Ok(self.read(database, name)?.map(|f| f.table))
    }

    async fn put_table(&self, table: &Table, expected_version: u64) -> Result<()> {
        let _guard = self.lock.lock().await;
        if !self.db_dir(&table.database)?.exists() {
            return Err(Error::Catalog(format!(
                "database `{}` does not exist",
                table.database
            )));
        }
        let current = self.read(&table.database, &table.name)?;
        let found = current.as_ref().map_or(0, |f| f.table.version);
        if found != expected_version {
            return Err(Error::Conflict(format!(
                "table `{}.{}` is at version {found}, expected {expected_version}",
                table.database, table.name
            )));
        }
        let mut next = table.clone();
        next.version = expected_version + 1;
        let partitions = current.map(|f| f.partitions).unwrap_or_default();
        self.write(&TableFile {
            table: next,
            partitions,
        })
    }

    async fn add_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: &[Partition],
    ) -> Result<usize> {
        let _guard = self.lock.lock().await;
        let mut file = self
            .read(database, table)?
            .ok_or_else(|| Error::Catalog(format!("table `{database}.{table}` does not exist")))?;
        let before = file.partitions.len();
        for p in partitions {
            if !file.partitions.iter().any(|q| q.values == p.values) {
                file.partitions.push(p.clone());
            }
        }
        file.partitions.sort();
        let added = file.partitions.len() - before;
        if added > 0 {
            self.write(&file)?;
        }
        Ok(added)
    }

    async fn partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>> {
        Ok(self
            .read(database, table)?
            .map(|f| f.partitions)
            .unwrap_or_default())
    }

    async fn tables(&self) -> Result<Vec<Table>> {
        let mut out = Vec::new();
        let Ok(dbs) = std::fs::read_dir(&self.root) else {
            return Ok(out);
        };
        for db in dbs {
            let db = db?;
            if !db.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(db.path())? {
                let path = entry?.path();
                let is_table = path.extension().is_some_and(|e| e == "json")
                    && path.file_name().is_none_or(|n| n != "_database.json");
                if is_table {
                    let file: TableFile = serde_json::from_slice(&std::fs::read(&path)?)?;
                    out.push(file.table);
                }
            }
        }
        out.sort_by(|a, b| (&a.database, &a.name).cmp(&(&b.database, &b.name)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Fields};
    use std::sync::Arc;

    fn table(version: u64) -> Table {
        Table {
            database: "sales".into(),
            name: "orders".into(),
            description: None,
            location: "s3://b/products/orders/".into(),
            columns: vec![],
            partition_keys: vec![],
            parameters: BTreeMap::new(),
            version,
        }
    }

    #[test]
    fn athena_types_cover_nested_and_decimal() {
        let item = DataType::Struct(Fields::from(vec![
            Field::new("sku", DataType::Utf8, true),
            Field::new("unit_price", DataType::Decimal128(12, 2), true),
        ]));
        let list = DataType::List(Arc::new(Field::new("item", item, true)));
        assert_eq!(
            athena_type(&list).unwrap(),
            "array<struct<sku:string,unit_price:decimal(12,2)>>"
        );
        assert_eq!(
            athena_type(&DataType::Timestamp(
                arrow::datatypes::TimeUnit::Microsecond,
                Some("UTC".into())
            ))
            .unwrap(),
            "timestamp"
        );
    }

    #[tokio::test]
    async fn stale_writer_gets_a_conflict_and_partitions_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let cat = FileCatalog::new(dir.path());
        cat.ensure_database(&Database {
            name: "sales".into(),
            description: None,
        })
        .await
        .unwrap();
        cat.put_table(&table(0), 0).await.unwrap();
        let current = cat.get_table("sales", "orders").await.unwrap().unwrap();
        assert_eq!(current.version, 1);
        cat.put_table(&current, 1).await.unwrap();
        // A writer that read version 1 lost the race.
        assert!(matches!(
            cat.put_table(&current, 1).await,
            Err(Error::Conflict(_))
        ));
        let p = Partition {
            values: vec!["2024-05-01".into()],
            location: "x".into(),
        };
        assert_eq!(
            cat.add_partitions("sales", "orders", std::slice::from_ref(&p))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            cat.add_partitions("sales", "orders", &[p]).await.unwrap(),
            0
        );
        assert_eq!(cat.partitions("sales", "orders").await.unwrap().len(), 1);
        assert_eq!(cat.tables().await.unwrap().len(), 1);
    }
}
