//! Fuzz target `record_input`: see `crm_fuzz::record_input` (tests/fuzz/src/lib.rs) for what it runs and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crm_fuzz::record_input(data));
