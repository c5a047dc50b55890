//! ODCS contract YAML through the loader and lint (YAML under budgets, the JSON Schema, the
//! typed model), then each schema object's Arrow schema and ingest's column specs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(contract) = tessera_contract::lint(text, "fuzz.odcs.yaml") else {
        return;
    };
    for object in &contract.schema {
        let _ = tessera_core::stages::staged_schema(object);
    }
});
