//! Fuzz target `filter_text`: see `crm_fuzz::filter_text` (tests/fuzz/src/lib.rs) for what it runs and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crm_fuzz::filter_text(data));
