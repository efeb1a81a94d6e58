//! Transactions spanning several calls: commit, rollback, drop, a failed call inside a transaction,
//! permissions, the audit chain and the outbox across committed and rolled-back work, and the
//! thread-owned transaction the bindings use.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failures should be loud

use std::time::{Duration, Instant};

use crm_core::{
    fields, Action, EntityKind, ErrorKind, FieldAccess, Filter, ListRequest, NewRecord, ObjectRule,
    Policy, Scope,
};
use crm_store::SqliteStore;
use crm_tests::{world, world_on, World};

/// What a tenant has: live accounts, live contacts, audit entries, outbox events.
fn totals(w: &World) -> (u64, u64, u64, usize) {
    let admin = w.admin_session();
    let accounts = admin.records().count(EntityKind::Account, None).unwrap();
    let contacts = admin.records().count(EntityKind::Contact, None).unwrap();
    let audit = admin.audit().verify().unwrap();
    assert!(audit.ok, "audit chain broken: {audit:?}");
    let events = admin.outbox().pending(0, 10_000).unwrap().len();
    (accounts, contacts, audit.checked, events)
}

fn account(name: &str) -> NewRecord {
    fields! { "name" => name }.into()
}

#[test]
fn a_committed_transaction_writes_everything_at_once() {
    let w = world();
    let admin = w.admin_session();
    let (a0, c0, audit0, events0) = totals(&w);
    let mut tx = admin.transaction().unwrap();
    let acme = tx.create(EntityKind::Account, account("ACME")).unwrap();
    let rossi = tx
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Rossi", "account_id" => acme.meta.id },
        )
        .unwrap();
    let acme = tx
        .update(
            EntityKind::Account,
            acme.meta.id,
            1,
            fields! { "city" => "Milano" },
        )
        .unwrap();
    assert_eq!(acme.meta.version, 2);
    let gone = tx.create(EntityKind::Account, account("Gone")).unwrap();
    tx.delete(EntityKind::Account, gone.meta.id, Some(1))
        .unwrap();
    tx.commit().unwrap();

    assert_eq!(
        admin
            .records()
            .get(EntityKind::Account, acme.meta.id)
            .unwrap()
            .text("city"),
        Some("Milano")
    );
    admin
        .records()
        .get(EntityKind::Contact, rossi.meta.id)
        .unwrap();
    let (a1, c1, audit1, events1) = totals(&w);
    assert_eq!((a1, c1), (a0 + 1, c0 + 1));
    // create, create, update, create, delete
    assert_eq!(audit1, audit0 + 5);
    assert_eq!(events1, events0 + 5);
}

#[test]
fn rollback_and_drop_write_nothing() {
    let w = world();
    let admin = w.admin_session();
    let before = totals(&w);

    let mut tx = admin.transaction().unwrap();
    tx.create(EntityKind::Account, account("One")).unwrap();
    tx.create_many(
        EntityKind::Contact,
        vec![
            fields! { "last_name" => "A" }.into(),
            fields! { "last_name" => "B" }.into(),
        ],
    )
    .unwrap();
    tx.rollback();
    assert_eq!(totals(&w), before);

    {
        let mut tx = admin.transaction().unwrap();
        tx.create(EntityKind::Account, account("Two")).unwrap();
        // dropped here without a commit
    }
    assert_eq!(totals(&w), before);

    // The store is free again: a plain write goes through at once.
    admin
        .records()
        .create(EntityKind::Account, account("Three"))
        .unwrap();
}

#[test]
fn a_failed_call_inside_undoes_only_itself_and_the_transaction_goes_on() {
    let w = world();
    let admin = w.admin_session();
    let (a0, c0, audit0, events0) = totals(&w);
    let mut tx = admin.transaction().unwrap();
    let acme = tx.create(EntityKind::Account, account("ACME")).unwrap();

    // Validation refused before anything was written.
    let e = tx
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "X", "email" => "not-an-email" },
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Validation);

    // A batch whose second row fails after the first was written (row, audit entry and event):
    // the error names the row, and the first row is undone too.
    let e = tx
        .create_many(
            EntityKind::Contact,
            vec![
                fields! { "last_name" => "Good" }.into(),
                fields! { "last_name" => "Bad", "email" => "nope" }.into(),
            ],
        )
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("rows[1].email"));

    // A clash found by the database itself (unique name), after the savepoint.
    let e = tx
        .create(EntityKind::Team, fields! { "name" => "Sales" })
        .and_then(|_| tx.create(EntityKind::Team, fields! { "name" => "Sales" }))
        .unwrap_err();
    assert_eq!(
        (e.kind, e.rule.as_deref()),
        (ErrorKind::Conflict, Some("unique"))
    );

    // A stale version.
    let e = tx
        .update(
            EntityKind::Account,
            acme.meta.id,
            7,
            fields! { "city" => "Roma" },
        )
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("stale_version"));

    // The transaction is still usable and its reads see only what succeeded.
    assert_eq!(tx.count(EntityKind::Contact, None).unwrap(), c0);
    tx.create(EntityKind::Contact, fields! { "last_name" => "Verdi" })
        .unwrap();
    tx.commit().unwrap();

    let (a1, c1, audit1, events1) = totals(&w);
    assert_eq!((a1, c1), (a0 + 1, c0 + 1));
    // account, team, contact: the chain has no gap where the failed calls were
    assert_eq!(audit1, audit0 + 3);
    assert_eq!(events1, events0 + 3);
    let teams = admin
        .records()
        .list(
            EntityKind::Team,
            &ListRequest::filter(Filter::eq("name", "Sales")),
        )
        .unwrap();
    assert_eq!(teams.items.len(), 1);
}

#[test]
fn reads_inside_see_the_transactions_own_writes() {
    let dir = tempfile::Builder::new()
        .prefix("crm-tx-reads-")
        .tempdir()
        .unwrap();
    let w = world_on(SqliteStore::open(dir.path().join("crm.sqlite")).unwrap());
    let admin = w.admin_session();

    let mut tx = admin.transaction().unwrap();
    let acme = tx.create(EntityKind::Account, account("ACME")).unwrap();
    tx.update(
        EntityKind::Account,
        acme.meta.id,
        1,
        fields! { "city" => "Torino" },
    )
    .unwrap();
    let got = tx.get(EntityKind::Account, acme.meta.id).unwrap();
    assert_eq!(got.text("city"), Some("Torino"));
    let page = tx
        .list(
            EntityKind::Account,
            &ListRequest::filter(Filter::eq("city", "Torino")),
        )
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(tx.count(EntityKind::Account, None).unwrap(), 1);
    // Readers outside (a file database reads from its own snapshots) do not see it yet.
    assert_eq!(admin.records().count(EntityKind::Account, None).unwrap(), 0);
    tx.commit().unwrap();
    assert_eq!(admin.records().count(EntityKind::Account, None).unwrap(), 1);
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn permissions_inside_are_those_of_the_facade() {
    let w = world();
    let rule = ObjectRule::new(
        &[Action::Create, Action::Read, Action::Update],
        &[Scope::All],
        &[Scope::Own],
    );
    let role = w.role(
        "rep",
        &Policy::default().allow(EntityKind::Account, rule).field(
            EntityKind::Account,
            "vat_number",
            FieldAccess::Hidden,
        ),
    );
    let rep_ctx = w.user("rep", role, fields! {});
    let rep = w.on(&rep_ctx);
    let theirs = w
        .admin_session()
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Admin's", "vat_number" => "IT123" },
        )
        .unwrap();
    let before = totals(&w);

    let mut tx = rep.transaction().unwrap();
    let mine = tx.create(EntityKind::Account, account("Mine")).unwrap();
    let e = tx
        .update(
            EntityKind::Account,
            theirs.meta.id,
            1,
            fields! { "city" => "Bari" },
        )
        .unwrap_err();
    assert_eq!(
        (e.kind, e.action.as_deref()),
        (ErrorKind::PermissionDenied, Some("update"))
    );
    let e = tx
        .create(EntityKind::Contact, fields! { "last_name" => "X" })
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    let e = tx
        .delete(EntityKind::Account, mine.meta.id, None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    // Reads are redacted as in the facade.
    let seen = tx.get(EntityKind::Account, theirs.meta.id).unwrap();
    assert!(seen.get("vat_number").is_null());
    tx.commit().unwrap();

    let after = totals(&w);
    assert_eq!(after.0, before.0 + 1);
    assert_eq!(after.2, before.2 + 1);
}

#[test]
fn configuration_written_inside_applies_to_later_calls_of_the_same_transaction() {
    let w = world();
    let admin = w.admin_session();
    let mut tx = admin.transaction().unwrap();
    tx.create(
        EntityKind::CustomField,
        fields! { "entity" => "account", "name" => "tier", "field_type" => "text" },
    )
    .unwrap();
    let a = tx
        .create(
            EntityKind::Account,
            fields! { "name" => "Tiered", "custom.tier" => "gold" },
        )
        .unwrap();
    assert_eq!(a.custom("tier").as_text(), Some("gold"));
    tx.rollback();
    // Rolled back: the field does not exist outside.
    let e = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Tiered", "custom.tier" => "gold" },
        )
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("unknown_field"));
}

#[test]
fn the_audit_chain_and_the_outbox_hold_only_committed_work() {
    let w = world();
    let admin = w.admin_session();
    let (_, _, audit0, events0) = totals(&w);

    let mut tx = admin.transaction().unwrap();
    let a = tx.create(EntityKind::Account, account("Kept")).unwrap();
    tx.update(
        EntityKind::Account,
        a.meta.id,
        1,
        fields! { "city" => "Pisa" },
    )
    .unwrap();
    tx.commit().unwrap();

    let mut tx = admin.transaction().unwrap();
    tx.create(EntityKind::Account, account("Lost 1")).unwrap();
    tx.update(
        EntityKind::Account,
        a.meta.id,
        2,
        fields! { "city" => "Lucca" },
    )
    .unwrap();
    tx.delete(EntityKind::Account, a.meta.id, None).unwrap();
    tx.rollback();

    admin
        .records()
        .create(EntityKind::Contact, fields! { "last_name" => "Solo" })
        .unwrap();

    let mut tx = admin.transaction().unwrap();
    tx.delete(EntityKind::Account, a.meta.id, Some(2)).unwrap();
    tx.restore(EntityKind::Account, a.meta.id).unwrap();
    tx.commit().unwrap();

    let (_, _, audit1, events1) = totals(&w);
    // 2 + 1 + 2 committed writes
    assert_eq!(audit1, audit0 + 5);
    assert_eq!(events1, events0 + 5);
    let types: Vec<String> = admin
        .outbox()
        .pending(0, 10_000)
        .unwrap()
        .into_iter()
        .skip(events0)
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "record.created",
            "record.updated",
            "record.created",
            "record.deleted",
            "record.restored"
        ]
    );
    let history = admin
        .audit()
        .history(EntityKind::Account, a.meta.id, None, Some(100))
        .unwrap();
    assert_eq!(history.entries.len(), 4);
}

#[test]
fn another_thread_writing_waits_for_the_commit() {
    let w = world();
    let admin = w.admin_session();
    std::thread::scope(|s| {
        let mut tx = admin.transaction().unwrap();
        tx.create(EntityKind::Account, account("First")).unwrap();
        let started = Instant::now();
        let other = s.spawn(|| {
            let r = admin
                .records()
                .create(EntityKind::Account, account("Second"));
            (r, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(300));
        let committed = Instant::now();
        tx.commit().unwrap();
        let (r, done) = other.join().unwrap();
        r.unwrap();
        assert!(done >= committed, "the other write did not wait");
        assert!(done - started < Duration::from_secs(5));
    });
    assert_eq!(admin.records().count(EntityKind::Account, None).unwrap(), 2);
}

#[test]
fn an_owned_transaction_runs_on_its_own_thread() {
    let w = world();
    let before = totals(&w);
    let admin = w.admin_session();

    let tx = admin.owned_transaction().unwrap();
    assert!(tx.is_open());
    let a = tx
        .run(|t| t.create(EntityKind::Account, account("Owned")))
        .unwrap();
    let id = a.meta.id;
    assert_eq!(
        tx.run(move |t| t.get(EntityKind::Account, id))
            .unwrap()
            .text("name"),
        Some("Owned")
    );
    let e = tx
        .run(|t| t.create(EntityKind::Contact, fields! { "email" => "x" }))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Validation);
    tx.commit().unwrap();
    assert!(!tx.is_open());
    let e = tx.run(|t| t.count(EntityKind::Account, None)).unwrap_err();
    assert_eq!(
        (e.kind, e.rule.as_deref()),
        (ErrorKind::InvalidTransition, Some("transaction_ended"))
    );
    assert_eq!(tx.commit().unwrap_err().kind, ErrorKind::InvalidTransition);
    assert_eq!(
        admin.records().count(EntityKind::Account, None).unwrap(),
        before.0 + 1
    );

    let tx = admin.owned_transaction().unwrap();
    tx.run(|t| t.create(EntityKind::Account, account("Rolled back")))
        .unwrap();
    tx.rollback().unwrap();
    assert!(tx.rollback().is_err());

    let tx = admin.owned_transaction().unwrap();
    tx.run(|t| t.create(EntityKind::Account, account("Dropped")))
        .unwrap();
    drop(tx);
    // The thread rolls back as it ends; the next write waits for it at most briefly.
    admin
        .records()
        .create(EntityKind::Contact, fields! { "last_name" => "After" })
        .unwrap();
    assert_eq!(
        admin.records().count(EntityKind::Account, None).unwrap(),
        before.0 + 1
    );
}
