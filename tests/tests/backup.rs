//! Online backups: taken while a writer keeps writing, restored into a new file, integrity-checked,
//! with nothing committed before the backup lost and the audit chain intact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failures should be loud

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crm_core::{fields, Crm, EntityKind, ErrorKind, TenantId};
use crm_store::SqliteStore;

/// A fresh directory, removed with everything in it when dropped.
fn dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("crm-backup-{name}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn a_backup_taken_during_a_write_loop_is_consistent_and_loses_nothing_committed() {
    let tmp = dir("live");
    let d = tmp.path();
    let crm = Crm::new(SqliteStore::open(d.join("live.db")).unwrap());
    let admin_ctx = crm
        .bootstrap(&TenantId::new("acme").unwrap(), "admin", Default::default())
        .unwrap();
    let admin = crm.session(&admin_ctx).unwrap();
    for i in 0..500 {
        admin
            .records()
            .create(
                EntityKind::Account,
                fields! { "name" => format!("before {i}") },
            )
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (admin, stop, committed) = (admin.clone(), stop.clone(), committed.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 20_000 {
                admin
                    .records()
                    .create(
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
    crm.backup(&d.join("backup.db"), &mut |done, total| {
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
    let restored = Crm::new(SqliteStore::open(d.join("restored.db")).unwrap());
    let restored_admin = restored.session(&admin_ctx).unwrap();
    let n = restored_admin
        .records()
        .count(EntityKind::Account, None)
        .unwrap();
    assert!(
        n >= 500 + committed_before,
        "{n} accounts restored, {committed_before} were committed before the backup began"
    );
    let v = restored_admin.audit().verify().unwrap();
    assert!(v.ok, "{v:?}");
    // Every account in the copy has its creation entry: change and audit were copied together.
    assert_eq!(
        v.checked,
        n + 2,
        "one entry per account, plus the admin role and user"
    );
    assert!(restored.integrity_check().unwrap().is_empty());
}

#[test]
fn backups_refuse_an_existing_destination() {
    let tmp = dir("refuse");
    let d = tmp.path();
    let crm = Crm::new(SqliteStore::open(d.join("db.db")).unwrap());
    crm.bootstrap(&TenantId::new("acme").unwrap(), "admin", Default::default())
        .unwrap();
    std::fs::write(d.join("taken.db"), b"x").unwrap();
    let e = crm.backup(&d.join("taken.db"), &mut |_, _| {}).unwrap_err();
    assert_eq!(
        (e.kind, e.rule.as_deref()),
        (ErrorKind::Conflict, Some("destination_exists"))
    );
    // Non-admins are no longer refused here: a backup is a host operation (`Crm::backup` takes no
    // context), so no tenant user has a path to it at all.
}

#[test]
fn a_backup_appears_only_complete_and_checked_and_the_files_that_are_none_are_refused() {
    let tmp = dir("atomic");
    let d = tmp.path();
    let crm = Crm::new(SqliteStore::open(d.join("db.db")).unwrap());
    let ctx = crm
        .bootstrap(&TenantId::new("acme").unwrap(), "admin", Default::default())
        .unwrap();
    crm.session(&ctx)
        .unwrap()
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let dest = d.join("copy.db");
    // While the copy runs, nothing exists under the destination's name: it appears in one step.
    let mut seen_early = false;
    crm.backup(&dest, &mut |_, _| seen_early |= dest.exists())
        .unwrap();
    assert!(
        !seen_early,
        "the destination existed before the copy was checked"
    );
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".partial-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(SqliteStore::check_file(&dest).unwrap().is_empty());

    // What a killed backup of an older version left (a zero-byte file), garbage and an empty
    // SQLite database are no backups: refused by the check and by restore, which writes nothing.
    std::fs::write(d.join("zero.db"), b"").unwrap();
    std::fs::write(d.join("junk.db"), "no database here\n".repeat(300)).unwrap();
    rusqlite::Connection::open(d.join("blank.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x); DROP TABLE t;")
        .unwrap();
    for (name, rule) in [
        ("zero.db", "not_a_backup"),
        ("junk.db", "corrupt"),
        ("blank.db", "not_a_backup"),
    ] {
        let e = SqliteStore::check_file(d.join(name)).unwrap_err();
        assert_eq!(
            (e.kind, e.rule.as_deref()),
            (ErrorKind::Storage, Some(rule)),
            "{name}"
        );
        let e = SqliteStore::restore_backup(d.join(name), d.join("into.db"), &mut |_, _| {})
            .unwrap_err();
        assert_eq!(
            (e.kind, e.rule.as_deref()),
            (ErrorKind::Storage, Some(rule)),
            "{name}"
        );
        assert!(!d.join("into.db").exists(), "{name}");
    }
}

#[test]
fn a_tenant_exported_as_json_lines_imports_into_an_empty_database_unchanged() {
    let w = crm_tests::world();
    let admin = w.admin_session();
    admin
        .records()
        .create(
            EntityKind::CustomField,
            fields! { "entity" => "account", "name" => "tier", "field_type" => "text" },
        )
        .unwrap();
    let mut ids = Vec::new();
    for &kind in EntityKind::ALL {
        if kind.is_system_managed() || kind == EntityKind::Share {
            continue;
        }
        let r = admin
            .records()
            .create(kind, crm_tests::sample(&w, kind))
            .unwrap();
        ids.push((kind, r.meta.id));
    }
    let a = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Tiered", "custom.tier" => "gold" },
        )
        .unwrap();
    let a = admin
        .records()
        .update(
            EntityKind::Account,
            a.meta.id,
            1,
            fields! { "city" => "Pavia" },
        )
        .unwrap();
    admin
        .records()
        .delete(EntityKind::Account, a.meta.id, Some(a.meta.version))
        .unwrap();

    let mut out = Vec::new();
    let mut ticks = 0;
    let sent = w
        .crm
        .export_tenant(&w.tenant, &mut out, &mut |_| ticks += 1)
        .unwrap();
    assert!(sent.records > 20 && sent.audit > 20 && ticks >= 1);
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        serde_json::from_slice::<serde_json::Value>(line).expect("every line is one JSON object");
    }

    let other = Crm::new(SqliteStore::open_in_memory().unwrap());
    let got = other
        .import_tenant(&mut std::io::Cursor::new(&out), &mut |_| {})
        .unwrap();
    assert_eq!(got, sent);
    for &kind in EntityKind::ALL {
        let list = |crm: &Crm| {
            let session = crm.session(&w.admin).unwrap();
            let mut all = session
                .records()
                .list(kind, &crm_core::ListRequest::default().limit(1000))
                .unwrap()
                .items;
            all.extend(
                session
                    .records()
                    .list(
                        kind,
                        &crm_core::ListRequest {
                            deleted: true,
                            limit: Some(1000),
                            ..Default::default()
                        },
                    )
                    .unwrap()
                    .items,
            );
            all
        };
        assert_eq!(list(&other), list(&w.crm), "{kind}");
    }
    let other_admin = other.session(&w.admin).unwrap();
    let restored = other_admin
        .records()
        .get(EntityKind::Account, a.meta.id)
        .unwrap();
    assert_eq!(
        restored.custom("tier"),
        &crm_core::Value::Text("gold".into())
    );
    assert!(restored.meta.deleted_at.is_some());
    assert_eq!(
        other_admin
            .audit()
            .history(EntityKind::Account, a.meta.id, None, None)
            .unwrap(),
        admin
            .audit()
            .history(EntityKind::Account, a.meta.id, None, None)
            .unwrap()
    );
    let v = other_admin.audit().verify().unwrap();
    assert!(v.ok && v.checked == sent.audit, "{v:?}");
    assert_eq!(
        other_admin
            .records()
            .count(
                EntityKind::Account,
                Some(&crm_core::Filter::eq("custom.tier", "gold"))
            )
            .unwrap(),
        0,
        "trashed"
    );

    // Importing twice, or a damaged file, is refused and writes nothing.
    let e = other
        .import_tenant(&mut std::io::Cursor::new(&out), &mut |_| {})
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("not_empty"));
    let third = Crm::new(SqliteStore::open_in_memory().unwrap());
    let text = String::from_utf8(out.clone()).unwrap();
    let cut: String = text.lines().take(10).map(|l| format!("{l}\n")).collect();
    let e = third
        .import_tenant(&mut std::io::Cursor::new(cut.as_bytes()), &mut |_| {})
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("truncated"));
    // A record edited in the file no longer matches its history; an edited history breaks the chain.
    let forged = text.replacen("\"Tiered\"", "\"Forged\"", 1);
    let e = third
        .import_tenant(&mut std::io::Cursor::new(forged.as_bytes()), &mut |_| {})
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("record_history"), "{e}");
    let audit_line = text
        .lines()
        .find(|l| l.starts_with("{\"type\":\"audit\"") && l.contains("Pavia"))
        .unwrap();
    let forged = text.replacen(audit_line, &audit_line.replace("Pavia", "Parma"), 1);
    let e = third
        .import_tenant(&mut std::io::Cursor::new(forged.as_bytes()), &mut |_| {})
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("audit_chain"), "{e}");
    assert_eq!(
        third
            .import_tenant(&mut std::io::Cursor::new(&out), &mut |_| {})
            .unwrap(),
        sent,
        "nothing was left behind by the refusals"
    );
    // Non-admins are no longer refused here: `Crm::export_tenant` is a host operation (it takes a
    // tenant id, not a context), so no tenant user has a path to it at all.
}
