//! The `catalog-register` Lambda function: wiring only (see the library for the handler).

fn main() -> Result<(), lambda_runtime::Error> {
    tessera_aws::lambda::serve::<tessera_core::function::stage::CatalogRegister>()
}
