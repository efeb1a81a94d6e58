//! Online backups: taken while a writer keeps writing, restored into a new file, integrity-checked,
//! with nothing committed before the backup lost and the audit chain intact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failures should be loud

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crm_core::{fields, Crm, EntityKind, ErrorKind, TenantId};
use crm_store::SqliteStore;

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("crm-backup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_backup_taken_during_a_write_loop_is_consistent_and_loses_nothing_committed() {
    let d = dir("live");
    let crm = Arc::new(Crm::new(Arc::new(
        SqliteStore::open(d.join("live.db")).unwrap(),
    )));
    let admin = crm
        .bootstrap(&TenantId::new("acme").unwrap(), "admin", Default::default())
        .unwrap();
    for i in 0..500 {
        crm.create(
            &admin,
            EntityKind::Account,
            fields! { "name" => format!("before {i}") },
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (crm, admin, stop, committed) =
            (crm.clone(), admin.clone(), stop.clone(), committed.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 20_000 {
                crm.create(
                    &admin,
                    EntityKind::Account,
                    fields! { "name" => format!("during {i}") },
                )
                .unwrap();
                committed.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    while committed.load(Ordering::SeqCst) < 50 {
        std::thread::yield_now();
    }
    let committed_before = committed.load(Ordering::SeqCst);
    let mut calls = 0;
    let mut last = (0, 0);
    crm.backup(&admin, &d.join("backup.db"), &mut |done, total| {
        calls += 1;
        last = (done, total);
    })
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        calls >= 1 && last.0 == last.1 && last.1 > 0,
        "progress reported: {calls} calls, last {last:?}"
    );
    assert!(SqliteStore::check_file(d.join("backup.db"))
        .unwrap()
        .is_empty());

    SqliteStore::restore_backup(d.join("backup.db"), d.join("restored.db"), &mut |_, _| {})
        .unwrap();
    let restored = Crm::new(Arc::new(SqliteStore::open(d.join("restored.db")).unwrap()));
    let n = restored.count(&admin, EntityKind::Account, None).unwrap();
    assert!(
        n >= 500 + committed_before,
        "{n} accounts restored, {committed_before} were committed before the backup began"
    );
    let v = restored.verify_audit(&admin).unwrap();
    assert!(v.ok, "{v:?}");
    // Every account in the copy has its creation entry: change and audit were copied together.
    assert_eq!(
        v.checked,
        n + 2,
        "one entry per account, plus the admin role and user"
    );
    assert!(restored.integrity_check(&admin).unwrap().is_empty());
}

#[test]
fn backups_refuse_an_existing_destination_and_non_admins() {
    let d = dir("refuse");
    let crm = Crm::new(Arc::new(SqliteStore::open(d.join("db.db")).unwrap()));
    let admin = crm
        .bootstrap(&TenantId::new("acme").unwrap(), "admin", Default::default())
        .unwrap();
    std::fs::write(d.join("taken.db"), b"x").unwrap();
    let e = crm
        .backup(&admin, &d.join("taken.db"), &mut |_, _| {})
        .unwrap_err();
    assert_eq!(
        (e.kind, e.rule.as_deref()),
        (ErrorKind::Conflict, Some("destination_exists"))
    );
    let role = crm
        .create(&admin, EntityKind::Role, fields! { "name" => "plain" })
        .unwrap();
    let u = crm
        .create(
            &admin,
            EntityKind::User,
            fields! { "username" => "u", "role_id" => role.meta.id },
        )
        .unwrap();
    let e = crm
        .backup(
            &admin.as_user(u.meta.id),
            &d.join("other.db"),
            &mut |_, _| {},
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert!(!d.join("other.db").exists());
}
