//! The five stages, as library code over the ports.
//!
//! Each stage takes one input object (or one product event), streams it as record batches, and
//! returns the [`RunRecord`](crate::runs::RunRecord) it also stores. Stages never name AWS: the
//! same code runs embedded, against an emulator and on AWS.

pub mod aggregate;
pub mod check;
pub mod clean;
mod dedupe;
pub mod ingest;
pub mod policy;
pub mod register;
pub mod relationships;
pub mod sql_checks;
pub mod version;

use std::sync::Arc;

use arrow::array::{RecordBatch, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{Schema, SchemaRef};
use tessera_contract::SchemaObject;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::keys::{Zone, ZoneKey, parse_zone_key};
use crate::mesh::{Domain, Product};
use crate::typing::{ColumnSpec, jdk_to_chrono, nullable_fields};

/// The domain and product an object of a zone belongs to.
pub fn resolve<'m>(
    ctx: &'m Context,
    bucket: &str,
    key: &str,
    zone: Zone,
) -> Result<(&'m Domain, &'m Product, ZoneKey)> {
    let domain = ctx.mesh.domain_of_bucket(bucket).ok_or_else(|| {
        Error::BadEvent(format!(
            "bucket `{bucket}` belongs to no domain of the mesh"
        ))
    })?;
    let zk = parse_zone_key(key, zone)?;
    let product = domain
        .products
        .iter()
        .find(|p| p.name == zk.product)
        .ok_or_else(|| {
            Error::Config(format!(
                "domain `{}` has no product `{}`",
                domain.name, zk.product
            ))
        })?;
    Ok((domain, product, zk))
}

/// The domain and product a product event names, checked against the mesh (the bucket must be
/// the domain's own).
pub fn product_of<'m>(
    ctx: &'m Context,
    domain: &str,
    product: &str,
    bucket: &str,
) -> Result<(&'m Domain, &'m Product)> {
    let d = ctx
        .mesh
        .domain(domain)
        .filter(|d| d.bucket == bucket)
        .ok_or_else(|| {
            Error::BadEvent(format!(
                "no domain `{domain}` with bucket `{bucket}` in the mesh"
            ))
        })?;
    let p = d
        .products
        .iter()
        .find(|p| p.name == product)
        .ok_or_else(|| Error::BadEvent(format!("no product `{domain}.{product}` in the mesh")))?;
    Ok((d, p))
}

/// The schema of the zones before publishing (contract columns, all nullable) and how to read
/// each column.
pub fn staged_schema(object: &SchemaObject) -> Result<(SchemaRef, Vec<ColumnSpec>)> {
    let contract_schema = object.arrow_schema()?;
    let fields = nullable_fields(contract_schema.fields());
    let mut specs = Vec::with_capacity(fields.len());
    for (field, prop) in fields.iter().zip(&object.properties) {
        let timezone = match prop.options.default_timezone.as_deref() {
            Some(tz) => Some(tz.parse::<chrono_tz::Tz>().map_err(|_| {
                Error::Config(format!("column `{}`: unknown time zone `{tz}`", prop.name))
            })?),
            None => None,
        };
        specs.push(ColumnSpec {
            name: field.name().clone(),
            data_type: field.data_type().clone(),
            timezone,
            format: prop.options.format.as_deref().map(jdk_to_chrono),
            formats: Vec::new(),
            rounding: crate::typing::DecimalRounding::Reject,
            lenient: false,
            source: None,
            only_formats: false,
            pattern: None,
        });
    }
    Ok((Arc::new(Schema::new(fields)), specs))
}

/// [`staged_schema`] of a product, with what its clean recipe says about typing values (the
/// timestamp formats and zone, the decimal rounding): ingest types values with these specs.
pub fn staged_schema_for(product: &Product) -> Result<(SchemaRef, Vec<ColumnSpec>)> {
    let (schema, mut specs) = staged_schema(product.schema())?;
    if let crate::mesh::ProductKind::Source { clean, .. } = &product.kind {
        clean::apply_typing(clean, &mut specs)?;
        return Ok(with_raw_columns(clean, &schema, specs));
    }
    Ok((schema, specs))
}

/// The recipe's lenient columns marked in their specs, and one text column `<column>_raw` per
/// `keep_raw` column appended after the contract's columns: it holds the value as the file wrote
/// it, for clean's `invalid_<column>` reason and the quarantine. Raw columns are never published.
pub(crate) fn with_raw_columns(
    recipe: &crate::mesh::CleanRecipe,
    schema: &SchemaRef,
    mut specs: Vec<ColumnSpec>,
) -> (SchemaRef, Vec<ColumnSpec>) {
    if recipe.lenient.is_empty() && recipe.keep_raw.is_empty() {
        return (Arc::clone(schema), specs);
    }
    for spec in &mut specs {
        if recipe.lenient.contains(&spec.name) || recipe.keep_raw.contains(&spec.name) {
            spec.lenient = true;
        }
    }
    let mut fields: Vec<arrow::datatypes::FieldRef> = schema.fields().iter().cloned().collect();
    for column in &recipe.keep_raw {
        let name = raw_column(column);
        fields.push(Arc::new(arrow::datatypes::Field::new(
            &name,
            arrow::datatypes::DataType::Utf8,
            true,
        )));
        specs.push(ColumnSpec {
            name,
            data_type: arrow::datatypes::DataType::Utf8,
            timezone: None,
            format: None,
            formats: Vec::new(),
            rounding: crate::typing::DecimalRounding::Reject,
            lenient: false,
            source: Some(column.clone()),
            only_formats: false,
            pattern: None,
        });
    }
    (Arc::new(Schema::new(fields)), specs)
}

/// The name of the raw-text column `keep_raw` adds for `column`.
pub fn raw_column(column: &str) -> String {
    format!("{column}_raw")
}

/// Casts a batch to `schema` by column name: a column of another type is cast, a missing one is
/// null. Old staged files still read after an optional column was added to the contract, and a
/// query result takes the types its contract declares. A value the target type cannot hold (a
/// sum too large for the decimal, text that is no date) is an error, never a silent null.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(Arc::clone(c)),
            Some(c) => cast_with_options(c, f.data_type(), &strict)
                .map_err(|e| Error::Config(format!("column `{}`: {e}", f.name()))),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Records an input a stage refused as a whole (unreadable file, unknown product, bad recipe):
/// the input stays where it is; a report under `quarantine/<product>/<stage>/` says why, and the
/// run record is marked quarantined.
pub async fn refuse(
    ctx: &Context,
    function: crate::routing::Function,
    zone: Zone,
    bucket: &str,
    key: &str,
    version: &str,
    reason: &str,
) -> Result<crate::runs::RunRecord> {
    let product = parse_zone_key(key, zone)
        .map(|k| k.product)
        .unwrap_or_else(|_| "_unknown".to_owned());
    let domain = ctx
        .mesh
        .domain_of_bucket(bucket)
        .map(|d| d.name.clone())
        .unwrap_or_default();
    let id = crate::keys::object_run_id(zone, bucket, key, version);
    let file = key.rsplit('/').next().unwrap_or(key);
    let stage = function.name();
    let report_key = format!(
        "{}{product}/{stage}/{}-{id}.error.json",
        Zone::Quarantine.prefix(),
        crate::keys::stem(file)
    );
    let input = crate::runs::InputRef {
        bucket: bucket.into(),
        key: key.into(),
        version: version.into(),
        sequencer: None,
    };
    let (mut record, started) = crate::runs::RunRecord::start(&id, stage, &domain, &product, input);
    let report =
        serde_json::json!({"stage": stage, "input": key, "version": version, "reason": reason});
    ctx.storage
        .put(
            bucket,
            &report_key,
            bytes::Bytes::from(serde_json::to_vec_pretty(&report)?),
        )
        .await?;
    record.status = crate::runs::RunStatus::Quarantined;
    record.outputs.push(report_key);
    record.notes.push(reason.to_owned());
    crate::runs::save(&ctx.storage, bucket, record, started).await
}
