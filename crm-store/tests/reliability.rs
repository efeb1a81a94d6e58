//! Reliability at the storage edge: backups that cannot lie, one busy error whatever holds the lock,
//! a rule on every storage failure, and paths refused before SQLite sees them.

// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use crm_core::backend::{Query, Store};
use crm_core::conformance::{new_id, record, tenant};
use crm_core::{CrmError, EntityKind, ErrorKind};
use crm_store::{Durability, OpenOptions, SqliteStore};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn rule(e: &CrmError) -> (ErrorKind, Option<&str>) {
    (e.kind, e.rule.as_deref())
}

fn add_team(store: &SqliteStore, name: &str) -> crm_core::Result<()> {
    let mut tx = store.write()?;
    tx.insert(&record(
        EntityKind::Team,
        &tenant("rel"),
        new_id(),
        crm_core::fields! { "name" => name },
    ))?;
    tx.commit()
}

fn teams(store: &SqliteStore) -> u64 {
    store
        .read()
        .unwrap()
        .count(&Query::all(EntityKind::Team, tenant("rel")))
        .unwrap()
}

fn quick() -> OpenOptions {
    OpenOptions {
        busy_timeout: Duration::from_millis(200),
        ..Default::default()
    }
}

// --- backups -------------------------------------------------------------------------------------

/// The files that cannot be backups, each with the rule it is refused with.
fn not_backups(dir: &Path) -> Vec<(&'static str, std::path::PathBuf, &'static str)> {
    let empty = dir.join("zero.db");
    std::fs::write(&empty, b"").unwrap();
    let garbage = dir.join("garbage.db");
    std::fs::write(
        &garbage,
        "this is a spreadsheet, not a database\n".repeat(200),
    )
    .unwrap();
    let tiny = dir.join("tiny.db");
    std::fs::write(&tiny, b"x").unwrap();
    let schemaless = dir.join("schemaless.db");
    {
        let c = rusqlite::Connection::open(&schemaless).unwrap();
        c.execute_batch("CREATE TABLE t (x); DROP TABLE t;")
            .unwrap();
    }
    assert!(std::fs::metadata(&schemaless).unwrap().len() > 0);
    let foreign = dir.join("foreign.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE invoices (x); PRAGMA user_version = 3;")
            .unwrap();
    }
    vec![
        ("a zero-byte file", empty, "not_a_backup"),
        ("a file that is not SQLite", garbage, "corrupt"),
        ("a one-byte file", tiny, "corrupt"),
        (
            "an SQLite file without the schema",
            schemaless,
            "not_a_backup",
        ),
        ("another application's database", foreign, "not_a_backup"),
    ]
}

#[test]
fn check_file_and_restore_refuse_what_cannot_be_a_backup_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (what, path, want) in not_backups(d) {
        let before = names(d);
        let e = SqliteStore::check_file(&path).unwrap_err();
        assert_eq!(rule(&e), (ErrorKind::Storage, Some(want)), "{what}: {e}");
        assert!(!e.message.contains(d.to_str().unwrap()), "no path: {e}");
        let into = d.join(format!("restored-{want}.db"));
        let e = SqliteStore::restore_backup(&path, &into, &mut |_, _| {}).unwrap_err();
        assert_eq!(rule(&e), (ErrorKind::Storage, Some(want)), "{what}: {e}");
        assert!(!into.exists(), "{what}: restore left a file");
        assert_eq!(names(d), before, "{what}: the directory changed");
    }
    // A directory and a missing file.
    let e = SqliteStore::check_file(d).unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Storage, Some("invalid_path")));
    let e = SqliteStore::check_file(d.join("missing.db")).unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Storage, Some("io")));
    assert!(!d.join("missing.db").exists(), "checking created no file");
}

#[test]
fn a_valid_backup_checks_clean_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = SqliteStore::open(d.join("live.db")).unwrap();
    add_team(&store, "A").unwrap();
    add_team(&store, "B").unwrap();
    store.backup_to(d.join("copy.db"), &mut |_, _| {}).unwrap();
    assert_eq!(
        names(d),
        ["copy.db", "live.db", "live.db-shm", "live.db-wal"],
        "only the backup appeared"
    );
    assert_eq!(
        SqliteStore::check_file(d.join("copy.db")).unwrap(),
        Vec::<String>::new()
    );
    SqliteStore::restore_backup(d.join("copy.db"), d.join("restored.db"), &mut |_, _| {}).unwrap();
    assert!(!names(d).iter().any(|n| n.contains(".partial-")));
    let restored = SqliteStore::open(d.join("restored.db")).unwrap();
    assert_eq!(teams(&restored), 2);
    // A backup left as a zero-byte file (a copy killed just after creating it, by an older
    // version) blocks the name and is no backup.
    std::fs::write(d.join("killed.db"), b"").unwrap();
    let e = store
        .backup_to(d.join("killed.db"), &mut |_, _| {})
        .unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Conflict, Some("destination_exists")));
    let e = SqliteStore::check_file(d.join("killed.db")).unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Storage, Some("not_a_backup")));
    // No file name to write to.
    let e = store.backup_to("", &mut |_, _| {}).unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Storage, Some("invalid_path")));
}

#[test]
fn a_backup_of_an_in_memory_store_is_published_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_memory().unwrap();
    add_team(&store, "A").unwrap();
    let mut last = (0, 0);
    store
        .backup_to(dir.path().join("mem.db"), &mut |d, t| last = (d, t))
        .unwrap();
    assert!(last.0 == last.1 && last.1 > 0, "{last:?}");
    assert_eq!(names(dir.path()), ["mem.db"]);
    assert_eq!(
        teams(&SqliteStore::open(dir.path().join("mem.db")).unwrap()),
        1
    );
}

// --- busy ----------------------------------------------------------------------------------------

#[test]
fn busy_is_one_retryable_error_whether_this_handle_or_another_connection_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let a = SqliteStore::open_with(&path, quick()).unwrap();
    let b = SqliteStore::open_with(&path, quick()).unwrap();
    assert_eq!(b.options().busy_timeout, Duration::from_millis(200));
    let held = a.write().unwrap();

    // Another connection (as another process would): SQLite's lock, after the busy timeout.
    let started = Instant::now();
    let other = b.write().map(|_| ()).unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // The same handle, from another thread: the writer connection's own lock.
    let same =
        std::thread::scope(|s| s.spawn(|| a.write().map(|_| ())).join().unwrap()).unwrap_err();
    for e in [&other, &same] {
        assert_eq!(rule(e), (ErrorKind::Storage, Some("busy")), "{e}");
        assert!(e.is_retryable(), "{e}");
        assert!(!e.message.contains("database is locked"), "{e}");
    }
    assert_eq!(other, same, "one busy error, whatever holds the lock");
    // Opening a third store while the lock is held works (a current schema needs no write), and its
    // write gets the same error.
    let c = SqliteStore::open_with(&path, quick()).unwrap();
    assert_eq!(add_team(&c, "C").unwrap_err(), other);

    // Retrying once the lock is free succeeds.
    drop(held);
    let mut tries = 0;
    loop {
        tries += 1;
        match add_team(&b, "after") {
            Ok(()) => break,
            Err(e) if e.is_retryable() && tries < 5 => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(teams(&a), 1);
}

// --- every storage error carries a rule ----------------------------------------------------------

#[test]
fn a_read_only_file_reads_and_refuses_writes_with_rule_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        add_team(&store, "A").unwrap();
    }
    // Tests run as root, which chmod does not stop: SQLite's read-only mode instead.
    let uri = format!("file:{}?mode=ro", path.display());
    let store = SqliteStore::open(&uri).unwrap();
    assert_eq!(teams(&store), 1);
    let e = add_team(&store, "B").unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Storage, Some("read_only")), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(teams(&store), 1);
}

#[test]
fn a_negative_or_foreign_schema_version_is_corrupt_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    // A database of this library whose version was overwritten with a negative number.
    let negative = dir.path().join("negative.db");
    drop(SqliteStore::open(&negative).unwrap());
    rusqlite::Connection::open(&negative)
        .unwrap()
        .execute_batch("PRAGMA user_version = -1")
        .unwrap();
    let before = std::fs::read(&negative).unwrap();
    let e = SqliteStore::open(&negative).unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Storage, Some("corrupt")), "{e}");
    assert!(e.message.contains("schema version -1"), "{e}");
    assert!(!e.message.contains("unexpected type"), "{e}");
    assert_eq!(std::fs::read(&negative).unwrap(), before, "file untouched");
    let e = SqliteStore::check_file(&negative).unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Storage, Some("corrupt")), "{e}");

    // Another application's database, with its own numbering.
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE invoices (x); PRAGMA user_version = 4242;")
        .unwrap();
    let e = SqliteStore::open(&foreign).unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Storage, Some("corrupt")), "{e}");
    assert!(e.message.contains("another application"), "{e}");

    // A file that is not SQLite at all, long or short (SQLite would take a file shorter than a
    // page for an empty database and write over it): refused, untouched.
    for (name, bytes) in [
        ("garbage.db", "not a database\n".repeat(500).into_bytes()),
        ("short.db", b"x".to_vec()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let e = SqliteStore::open(&path).unwrap_err();
        assert_eq!(
            rule(&e),
            (ErrorKind::Storage, Some("corrupt")),
            "{name}: {e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} untouched");
    }
    // An empty file is a new database (hosts create the file first).
    let fresh = dir.path().join("fresh.db");
    std::fs::write(&fresh, b"").unwrap();
    assert_eq!(
        SqliteStore::open(&fresh).unwrap().schema_version().unwrap(),
        SqliteStore::latest_schema_version()
    );
}

// --- paths ---------------------------------------------------------------------------------------

#[test]
fn empty_and_directory_paths_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    for (what, path) in [
        ("empty", String::new()),
        ("blank", "  ".to_owned()),
        ("in-memory name", ":memory:".to_owned()),
        ("directory", dir.path().display().to_string()),
    ] {
        let e = SqliteStore::open(&path).unwrap_err();
        assert_eq!(
            rule(&e),
            (ErrorKind::Storage, Some("invalid_path")),
            "{what}: {e}"
        );
        if !path.trim().is_empty() {
            assert!(
                !e.message.contains(&path),
                "{what}: the path is not in the message"
            );
        }
        let e = SqliteStore::open_with(
            &path,
            OpenOptions {
                durability: Durability::Normal,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.rule.as_deref(), Some("invalid_path"), "{what}");
    }
    assert!(names(dir.path()).is_empty(), "nothing was created");
    // A missing directory: SQLite cannot create the file.
    let e = SqliteStore::open(dir.path().join("no/such/dir.db")).unwrap_err();
    assert_eq!(rule(&e), (ErrorKind::Storage, Some("io")), "{e}");
}
