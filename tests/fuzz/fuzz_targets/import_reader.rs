//! Fuzz target `import_reader`: see `crm_fuzz::import_reader` (tests/fuzz/src/lib.rs) for what it runs and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crm_fuzz::import_reader(data));
