//! The storage conformance suite of crm-core, against an in-memory and an on-disk store.

// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_core::conformance;
use crm_store::SqliteStore;

#[test]
fn conformance_in_memory() {
    let store = SqliteStore::open_in_memory().unwrap();
    conformance::run_all(&store);
}

#[test]
fn conformance_on_disk() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("conformance.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        conformance::run_all(&store);
    }
}
