//! The query port: SQL over published products with DataFusion.
//!
//! Tables are read through their commit logs, so only committed files are ever read. Each domain
//! bucket is registered as the object store of `s3://<bucket>`, so the same table locations work
//! embedded (a local folder) and on AWS (S3).

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::publish::{commits, live_files};
use crate::storage::Storage;

/// A DataFusion session with every catalog table registered as `<database>.<table>`.
pub async fn session(ctx: &Context) -> Result<SessionContext> {
    let session = SessionContext::new();
    for table in ctx.catalog.tables().await? {
        let Some((bucket, prefix)) = split_location(&table.location) else {
            return Err(Error::Catalog(format!(
                "table `{}.{}` has location `{}`, not s3://bucket/prefix",
                table.database, table.name, table.location
            )));
        };
        let product = prefix.trim_start_matches("products/").trim_end_matches('/');
        let catalog = session
            .catalog("datafusion")
            .ok_or_else(|| Error::Internal("no default catalog".into()))?;
        if catalog.schema(&table.database).is_none() {
            catalog.register_schema(&table.database, Arc::new(MemorySchemaProvider::new()))?;
        }
        if let Some(provider) = product_table(&session, &ctx.storage, bucket, product).await? {
            session.register_table(format!("{}.{}", table.database, table.name), provider)?;
        }
    }
    Ok(session)
}

/// A query engine outside the function, for aggregations over more data than a function should
/// read (Athena on AWS): it writes the result of a query as Parquet files under a prefix.
#[async_trait::async_trait]
pub trait PushDown: std::fmt::Debug + Send + Sync {
    /// Runs `sql` (Athena SQL over catalog tables, `database` the default one) and writes its
    /// result as Parquet files under `output` (`s3://bucket/prefix/`, empty before the call).
    async fn unload(&self, database: &str, sql: &str, output: &str) -> Result<()>;
}

/// Runs a query and collects its result.
pub async fn query(ctx: &Context, sql: &str) -> Result<Vec<RecordBatch>> {
    let session = session(ctx).await?;
    Ok(session.sql(sql).await?.collect().await?)
}

/// `s3://bucket/prefix` → (bucket, prefix).
pub fn split_location(location: &str) -> Option<(&str, &str)> {
    location.strip_prefix("s3://")?.split_once('/')
}

/// A table over the committed files of a product, `None` if nothing is committed yet.
pub async fn product_table(
    session: &SessionContext,
    storage: &Storage,
    bucket: &str,
    product: &str,
) -> Result<Option<Arc<ListingTable>>> {
    let files = live_files(&commits(storage, bucket, product).await?);
    files_table(session, storage, bucket, &files).await
}

/// A table over Parquet files of a bucket, `None` if there are none.
pub async fn files_table(
    session: &SessionContext,
    storage: &Storage,
    bucket: &str,
    files: &[String],
) -> Result<Option<Arc<ListingTable>>> {
    if files.is_empty() {
        return Ok(None);
    }
    let base =
        url::Url::parse(&format!("s3://{bucket}")).map_err(|e| Error::Config(e.to_string()))?;
    session.register_object_store(&base, storage.store(bucket)?);
    let urls = files
        .iter()
        .map(|k| ListingTableUrl::parse(format!("s3://{bucket}/{k}")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .infer_schema(&session.state())
        .await?;
    Ok(Some(Arc::new(ListingTable::try_new(config)?)))
}
