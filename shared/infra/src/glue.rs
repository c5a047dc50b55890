//! A product's Glue table as catalog-register registers it.
//!
//! The table itself comes from [`tessera_core::stages::register::table_for`], the function
//! catalog-register calls at run time (columns typed for Athena by `athena_type`, comments from
//! the contract, partition keys, parameters); its storage (external table, Parquet SerDe) from
//! [`tessera_core::catalog::hive`]. What catalog-register adds when a version is published (last
//! publish, quality status, partitions) is not in the template: it changes with every version.

use serde_json::{Map, Value, json};
use tessera_core::catalog::{Column, Table, hive};
use tessera_core::mesh::{Domain, Product};
use tessera_core::publish::product_prefix;
use tessera_core::stages::register::table_for;
use tessera_core::storage::s3_url;

use crate::Result;
use crate::cfn::reference;

/// The table catalog-register writes for `product` of `domain`, before any version is
/// published: the template's table.
pub fn registered_table(domain: &Domain, product: &Product) -> Result<Table> {
    let location = s3_url(&domain.bucket, &product_prefix(&product.name));
    Ok(table_for(product, &domain.database, &location)?)
}

fn columns(columns: &[Column]) -> Value {
    Value::Array(
        columns
            .iter()
            .map(|c| {
                let mut col = Map::new();
                col.insert("Name".into(), json!(c.name));
                col.insert("Type".into(), json!(c.data_type));
                if let Some(comment) = &c.comment {
                    col.insert("Comment".into(), json!(comment));
                }
                Value::Object(col)
            })
            .collect(),
    )
}

/// The `AWS::Glue::Table` resource of `table`, in the database resource `database_id`.
pub fn table_resource(database_id: &str, table: &Table) -> Value {
    let mut parameters: Map<String, Value> = table
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let (external, yes) = hive::EXTERNAL_PARAMETER;
    parameters.insert(external.into(), json!(yes));
    let serde_parameters: Map<String, Value> = hive::SERDE_PARAMETERS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let mut input = Map::new();
    input.insert("Name".into(), json!(table.name));
    if let Some(d) = &table.description {
        input.insert("Description".into(), json!(d));
    }
    input.insert("TableType".into(), json!(hive::TABLE_TYPE));
    input.insert("Parameters".into(), Value::Object(parameters));
    input.insert("PartitionKeys".into(), columns(&table.partition_keys));
    input.insert(
        "StorageDescriptor".into(),
        json!({
            "Columns": columns(&table.columns),
            "Location": table.location,
            "InputFormat": hive::INPUT_FORMAT,
            "OutputFormat": hive::OUTPUT_FORMAT,
            "SerdeInfo": {
                "SerializationLibrary": hive::SERDE,
                "Parameters": serde_parameters,
            },
        }),
    );
    json!({
        "Type": "AWS::Glue::Table",
        "Properties": {
            "CatalogId": reference("AWS::AccountId"),
            "DatabaseName": reference(database_id),
            "TableInput": input,
        },
    })
}
