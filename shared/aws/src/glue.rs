//! The catalog on the Glue Data Catalog.
//!
//! Tables are external Parquet tables (Hive Parquet SerDe) that Athena reads. Glue numbers table
//! versions from 0; Tessera's [`Table::version`] is Glue's plus one, so that 0 keeps meaning "no
//! table yet". Updates pass the version read as Glue's `VersionId`, which makes each one a
//! compare-and-swap: a concurrent writer's change fails it with `ConcurrentModificationException`,
//! reported as [`Error::Conflict`] so the caller reads again and retries. (moto ignores
//! `VersionId`, so the version is also compared before each update.)

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_glue::error::DisplayErrorContext;
use aws_sdk_glue::types::{
    Column as GlueColumn, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor,
    Table as GlueTable, TableInput,
};
use tessera_core::catalog::{Catalog, Column, Database, Partition, Table};
use tessera_core::error::{Error, Result};

const INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
/// Most partitions one `BatchCreatePartition` call takes.
const MAX_PARTITIONS: usize = 100;

/// The Glue Data Catalog, limited to the mesh's databases.
#[derive(Debug, Clone)]
pub struct GlueCatalog {
    client: aws_sdk_glue::Client,
    databases: Vec<String>,
}

impl GlueCatalog {
    /// A catalog over `databases` (those of the mesh's domains).
    pub fn new(sdk: &SdkConfig, databases: Vec<String>) -> GlueCatalog {
        GlueCatalog {
            client: aws_sdk_glue::Client::new(sdk),
            databases,
        }
    }
}

fn glue_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Catalog(format!("{what}: {}", DisplayErrorContext(e)))
}

fn columns(columns: &[Column]) -> Result<Vec<GlueColumn>> {
    columns
        .iter()
        .map(|c| {
            GlueColumn::builder()
                .name(&c.name)
                .r#type(&c.data_type)
                .set_comment(c.comment.clone())
                .build()
                .map_err(|e| Error::Internal(format!("Glue column `{}`: {e}", c.name)))
        })
        .collect()
}

fn storage(location: &str, cols: Vec<GlueColumn>) -> StorageDescriptor {
    StorageDescriptor::builder()
        .set_columns(Some(cols))
        .location(location)
        .input_format(INPUT_FORMAT)
        .output_format(OUTPUT_FORMAT)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(PARQUET_SERDE)
                .parameters("serialization.format", "1")
                .build(),
        )
        .build()
}

fn table_input(t: &Table) -> Result<TableInput> {
    let mut parameters = t.parameters.clone();
    parameters.insert("EXTERNAL".into(), "TRUE".into());
    TableInput::builder()
        .name(&t.name)
        .set_description(t.description.clone())
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(parameters.into_iter().collect()))
        .set_partition_keys(Some(columns(&t.partition_keys)?))
        .storage_descriptor(storage(&t.location, columns(&t.columns)?))
        .build()
        .map_err(|e| Error::Internal(format!("Glue table `{}`: {e}", t.name)))
}

fn from_glue_columns(cols: &[GlueColumn]) -> Vec<Column> {
    cols.iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            data_type: c.r#type().unwrap_or("string").to_owned(),
            comment: c.comment().map(str::to_owned),
        })
        .collect()
}

fn from_glue(database: &str, t: &GlueTable) -> Table {
    let sd = t.storage_descriptor();
    let mut parameters: BTreeMap<String, String> = t
        .parameters()
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    parameters.remove("EXTERNAL");
    Table {
        database: database.to_owned(),
        name: t.name().to_owned(),
        description: t.description().map(str::to_owned),
        location: sd.and_then(|s| s.location()).unwrap_or_default().to_owned(),
        columns: sd
            .map(|s| from_glue_columns(s.columns()))
            .unwrap_or_default(),
        partition_keys: from_glue_columns(t.partition_keys()),
        parameters,
        version: t
            .version_id()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(1, |v| v + 1),
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    async fn ensure_database(&self, database: &Database) -> Result<()> {
        let input = DatabaseInput::builder()
            .name(&database.name)
            .set_description(database.description.clone())
            .build()
            .map_err(|e| Error::Internal(format!("Glue database `{}`: {e}", database.name)))?;
        match self
            .client
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(glue_error(
                &format!("CreateDatabase `{}`", database.name),
                e,
            )),
        }
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>> {
        match self
            .client
            .get_table()
            .database_name(database)
            .name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.table().map(|t| from_glue(database, t))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(glue_error(&format!("GetTable `{database}.{name}`"), e)),
        }
    }

    async fn put_table(&self, table: &Table, expected_version: u64) -> Result<()> {
        let input = table_input(table)?;
        let what = format!("`{}.{}`", table.database, table.name);
        if expected_version == 0 {
            return match self
                .client
                .create_table()
                .database_name(&table.database)
                .table_input(input)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_already_exists_exception()) =>
                {
                    Err(Error::Conflict(format!(
                        "table {what} was created concurrently"
                    )))
                }
                Err(e) => Err(glue_error(&format!("CreateTable {what}"), e)),
            };
        }
        // Glue enforces `VersionId` atomically; emulators may ignore it (moto does), so the
        // version is also checked first, which keeps a stale writer out wherever it runs.
        let current = self
            .get_table(&table.database, &table.name)
            .await?
            .map_or(0, |t| t.version);
        if current != expected_version {
            return Err(Error::Conflict(format!(
                "table {what} is at version {current}, expected {expected_version}"
            )));
        }
        let glue_version = (expected_version - 1).to_string();
        match self
            .client
            .update_table()
            .database_name(&table.database)
            .table_input(input)
            .version_id(glue_version)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_concurrent_modification_exception()) =>
            {
                Err(Error::Conflict(format!(
                    "table {what} changed since version {expected_version} was read"
                )))
            }
            Err(e) => Err(glue_error(&format!("UpdateTable {what}"), e)),
        }
    }

    async fn add_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: &[Partition],
    ) -> Result<usize> {
        let current = self
            .get_table(database, table)
            .await?
            .ok_or_else(|| Error::Catalog(format!("table `{database}.{table}` does not exist")))?;
        let mut added = 0;
        for chunk in partitions.chunks(MAX_PARTITIONS) {
            let inputs: Vec<PartitionInput> = chunk
                .iter()
                .map(|p| {
                    Ok(PartitionInput::builder()
                        .set_values(Some(p.values.clone()))
                        .storage_descriptor(storage(&p.location, columns(&current.columns)?))
                        .build())
                })
                .collect::<Result<_>>()?;
            let out = self
                .client
                .batch_create_partition()
                .database_name(database)
                .table_name(table)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| {
                    glue_error(&format!("BatchCreatePartition `{database}.{table}`"), e)
                })?;
            let mut existing = 0;
            for err in out.errors() {
                match err.error_detail().and_then(|d| d.error_code()) {
                    Some("AlreadyExistsException") => existing += 1,
                    code => {
                        return Err(Error::Catalog(format!(
                            "partition {:?} of `{database}.{table}`: {} {}",
                            err.partition_values(),
                            code.unwrap_or("error"),
                            err.error_detail()
                                .and_then(|d| d.error_message())
                                .unwrap_or_default()
                        )));
                    }
                }
            }
            added += chunk.len() - existing;
        }
        Ok(added)
    }

    async fn partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>> {
        let mut pages = self
            .client
            .get_partitions()
            .database_name(database)
            .table_name(table)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| glue_error(&format!("GetPartitions `{database}.{table}`"), e))?;
            for p in page.partitions() {
                out.push(Partition {
                    values: p.values().to_vec(),
                    location: p
                        .storage_descriptor()
                        .and_then(|s| s.location())
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        }
        out.sort();
        Ok(out)
    }

    async fn tables(&self) -> Result<Vec<Table>> {
        let mut out = Vec::new();
        for database in &self.databases {
            let mut pages = self
                .client
                .get_tables()
                .database_name(database)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                match page {
                    Ok(page) => {
                        out.extend(page.table_list().iter().map(|t| from_glue(database, t)))
                    }
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_entity_not_found_exception()) =>
                    {
                        break;
                    }
                    Err(e) => return Err(glue_error(&format!("GetTables `{database}`"), e)),
                }
            }
        }
        out.sort_by(|a, b| (&a.database, &a.name).cmp(&(&b.database, &b.name)));
        Ok(out)
    }
}
