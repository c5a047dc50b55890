//! CSV files typed against the `sales.orders` contract (strings, a date, timestamps, a decimal),
//! in every dialect, encoding and compression the first byte picks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&options, file)) = data.split_first() else {
        return;
    };
    tessera_fuzz::read(
        "sales",
        "orders",
        "notes",
        options,
        file,
        tessera_fuzz::csv_dialect,
    );
});
