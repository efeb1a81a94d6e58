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
    let tmp = dir("refuse");
    let d = tmp.path();
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

#[test]
fn a_tenant_exported_as_json_lines_imports_into_an_empty_database_unchanged() {
    let w = crm_tests::world();
    w.crm
        .create(
            &w.admin,
            EntityKind::CustomField,
            fields! { "entity" => "account", "name" => "tier", "field_type" => "text" },
        )
        .unwrap();
    let mut ids = Vec::new();
    for &kind in EntityKind::ALL {
        if kind.is_system_managed() || kind == EntityKind::Share {
            continue;
        }
        let r = w
            .crm
            .create(&w.admin, kind, crm_tests::sample(&w, kind))
            .unwrap();
        ids.push((kind, r.meta.id));
    }
    let a = w
        .crm
        .create(
            &w.admin,
            EntityKind::Account,
            fields! { "name" => "Tiered", "custom.tier" => "gold" },
        )
        .unwrap();
    let a = w
        .crm
        .update(
            &w.admin,
            EntityKind::Account,
            a.meta.id,
            1,
            fields! { "city" => "Pavia" },
        )
        .unwrap();
    w.crm
        .delete(
            &w.admin,
            EntityKind::Account,
            a.meta.id,
            Some(a.meta.version),
        )
        .unwrap();

    let mut out = Vec::new();
    let mut ticks = 0;
    let sent = w
        .crm
        .export_tenant(&w.admin, &mut out, &mut |_| ticks += 1)
        .unwrap();
    assert!(sent.records > 20 && sent.audit > 20 && ticks >= 1);
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        serde_json::from_slice::<serde_json::Value>(line).expect("every line is one JSON object");
    }

    let other = Crm::new(Arc::new(SqliteStore::open_in_memory().unwrap()));
    let got = other
        .import_tenant(&mut std::io::Cursor::new(&out), &mut |_| {})
        .unwrap();
    assert_eq!(got, sent);
    for &kind in EntityKind::ALL {
        let list = |crm: &Crm| {
            let mut all = crm
                .list(
                    &w.admin,
                    kind,
                    &crm_core::ListRequest::default().limit(1000),
                )
                .unwrap()
                .items;
            all.extend(
                crm.list(
                    &w.admin,
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
    let restored = other.get(&w.admin, EntityKind::Account, a.meta.id).unwrap();
    assert_eq!(
        restored.custom("tier"),
        &crm_core::Value::Text("gold".into())
    );
    assert!(restored.meta.deleted_at.is_some());
    assert_eq!(
        other
            .history(&w.admin, EntityKind::Account, a.meta.id, None, None)
            .unwrap(),
        w.crm
            .history(&w.admin, EntityKind::Account, a.meta.id, None, None)
            .unwrap()
    );
    let v = other.verify_audit(&w.admin).unwrap();
    assert!(v.ok && v.checked == sent.audit, "{v:?}");
    assert_eq!(
        other
            .count(
                &w.admin,
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
    let third = Crm::new(Arc::new(SqliteStore::open_in_memory().unwrap()));
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
    // Only administrators export.
    let role = w.role("plain", &crm_core::Policy::default());
    let u = w.user("u", role, fields! {});
    assert_eq!(
        w.crm
            .export_tenant(&u, &mut Vec::new(), &mut |_| {})
            .unwrap_err()
            .kind,
        ErrorKind::PermissionDenied
    );
}
