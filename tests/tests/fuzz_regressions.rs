//! Replays the fuzz inputs kept in the repository — the seed corpus (`tests/fuzz/corpus/<target>/`)
//! and the minimised crashes (`tests/fuzz/regressions/<target>/`) — through the fuzz harness itself
//! (`tests/fuzz/src/lib.rs`, included below as a module), so CI runs exactly the targets' code
//! paths and checks without cargo-fuzz, nightly flags or a sanitizer.
//!
//! One test per target. Each input runs under `catch_unwind`, so one failing input does not hide
//! the others: the test reports every input that panicked, with its message. A stack overflow
//! cannot be caught (it aborts the whole test binary); the replays run on a thread with a 32 MiB
//! stack, since the unoptimised frames of a debug build are several times larger than those of the
//! optimised fuzz build whose 8 MiB main-thread stack the fuzzer used. `CRM_FUZZ_STRICT=1` replays
//! in the harness's strict mode (`Storage` errors count as failures too).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failures should be loud

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[allow(dead_code)] // the harness also serves the seed generator; not all of it is replayed here
#[path = "../fuzz/src/lib.rs"]
mod harness;

/// The files kept for `target`: seeds first, then regressions, each directory in name order.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        let mut here: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        here.sort();
        files.extend(here);
    }
    files
}

/// Runs every kept input of `target`; fails listing each input that panicked.
fn replay(target: &'static str) {
    let files = inputs(target);
    let failures = std::thread::Builder::new()
        .name(format!("replay-{target}"))
        .stack_size(32 << 20)
        .spawn(move || {
            let mut failures = Vec::new();
            for path in &files {
                let data = std::fs::read(path).unwrap();
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| harness::run(target, &data))) {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "(no message)".to_owned());
                    failures.push(format!("{}: {msg}", path.display()));
                }
            }
            (files.len(), failures)
        })
        .unwrap()
        .join()
        .unwrap();
    let (count, failures) = failures;
    assert!(count > 0, "no kept inputs for {target}");
    assert!(
        failures.is_empty(),
        "{} of {count} {target} inputs panicked:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn filter_text_inputs_replay_without_panics() {
    replay("filter_text");
}

#[test]
fn filter_api_inputs_replay_without_panics() {
    replay("filter_api");
}

#[test]
fn record_input_inputs_replay_without_panics() {
    replay("record_input");
}

#[test]
fn import_reader_inputs_replay_without_panics() {
    replay("import_reader");
}

/// The seed export still imports: the import target's seeds would otherwise all stop at the first
/// line and the fuzzer would never reach the record, audit and event lines.
#[test]
fn the_seed_export_is_a_valid_export() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/import_reader/export.jsonl");
    let data = std::fs::read(path).unwrap();
    let crm = harness::empty_crm();
    let summary = crm.import_tenant(&mut &data[..], &mut |_| {}).unwrap();
    assert!(summary.records > 0 && summary.audit > 0, "{summary:?}");
    // And a fresh export of the harness's tenant imports too (the format did not drift).
    let fresh = harness::sample_export();
    harness::empty_crm()
        .import_tenant(&mut &fresh[..], &mut |_| {})
        .unwrap();
}
