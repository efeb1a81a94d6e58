//! The storage conformance suite of crm-core, against an in-memory and an on-disk store.

// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_core::conformance;
use crm_store::SqliteStore;

fn temp_path(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "crm-store-{name}-{}-{nanos}.db",
        std::process::id()
    ))
}

fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn conformance_in_memory() {
    let store = SqliteStore::open_in_memory().unwrap();
    conformance::run_all(&store);
}

#[test]
fn conformance_on_disk() {
    let path = temp_path("conformance");
    {
        let store = SqliteStore::open(&path).unwrap();
        conformance::run_all(&store);
    }
    remove_db(&path);
}
