//! Debezium change events typed against the `customers.customer_changes` contract (the CDC
//! metadata columns included).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&options, file)) = data.split_first() else {
        return;
    };
    tessera_fuzz::read(
        "customers",
        "customer_changes",
        "country",
        options,
        file,
        |_, _| {},
    );
});
