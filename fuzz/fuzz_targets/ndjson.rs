//! NDJSON files (or, with bit 4 of the first byte, one JSON array) typed against the
//! `customers.customers` contract.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tessera_core::mesh::SourceFormat;

fuzz_target!(|data: &[u8]| {
    let Some((&options, file)) = data.split_first() else {
        return;
    };
    tessera_fuzz::read(
        "customers",
        "customers",
        "segment",
        options,
        file,
        |source, bits| {
            if bits & 0b1 != 0 {
                source.format = SourceFormat::Json;
            }
        },
    );
});
