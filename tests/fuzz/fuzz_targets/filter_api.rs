//! Fuzz target `filter_api`: see `crm_fuzz::filter_api` (tests/fuzz/src/lib.rs) for what it runs and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crm_fuzz::filter_api(data));
