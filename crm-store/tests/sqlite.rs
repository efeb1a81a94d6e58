//! SQLite-specific behaviour: query plans, migrations, schema versions, unique fields.

// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_core::backend::{Column, Cond, Keyset, Op, Query, Store};
use crm_core::conformance::{money, new_id, record, tenant};
use crm_core::{EntityKind, ErrorKind, FieldType, Value};
use crm_store::SqliteStore;

fn builtin(kind: EntityKind, name: &str) -> Column {
    let f = kind.schema().field(name).unwrap();
    Column::Builtin {
        name: f.name,
        ty: f.ty.clone(),
    }
}

/// A store with enough rows that the planner's choices are realistic.
fn populated() -> SqliteStore {
    let store = SqliteStore::open_in_memory().unwrap();
    let t = tenant("plan");
    let owner = new_id();
    let mut tx = store.write().unwrap();
    for i in 0..300 {
        let a = record(
            EntityKind::Account,
            &t,
            owner,
            crm_core::fields! { "name" => format!("Account {i}"), "phone" => format!("+3902{i:07}") },
        );
        tx.insert(&a).unwrap();
        let mut c = record(
            EntityKind::Contact,
            &t,
            owner,
            crm_core::fields! { "last_name" => format!("L{i}"), "phone" => format!("+3906{i:07}"), "account_id" => a.meta.id },
        );
        c.custom.insert("loyalty".into(), Value::Int(i % 10));
        tx.insert(&c).unwrap();
    }
    tx.index_custom_field(EntityKind::Contact, "loyalty", &FieldType::Int)
        .unwrap();
    tx.commit().unwrap();
    store
}

fn assert_plan(plan: &[String], uses: &str) {
    assert_plan_sorting(plan, uses);
    let text = plan.join("\n");
    assert!(!text.contains("TEMP B-TREE"), "plan sorts:\n{text}");
}

/// Uses the index and scans no table (a sort of the matching rows is allowed).
fn assert_plan_sorting(plan: &[String], uses: &str) {
    let text = plan.join("\n");
    assert!(
        plan.iter().any(|l| l.contains(uses)),
        "plan does not use {uses}:\n{text}"
    );
    assert!(
        !plan.iter().any(|l| l.starts_with("SCAN")),
        "plan scans a table:\n{text}"
    );
}

#[test]
fn phone_lookups_use_the_phone_index() {
    let store = populated();
    for kind in [EntityKind::Contact, EntityKind::Account] {
        let q = Query::all(kind, tenant("plan")).and(Cond::Compare(
            builtin(kind, "phone"),
            Op::Eq,
            "+39020000042".into(),
        ));
        let plan = store.explain(&q).unwrap();
        assert_plan(&plan, &format!("ix_{}_phone", kind.table()));
    }
}

#[test]
fn keyset_page_by_name_uses_the_name_index_without_sorting() {
    let store = populated();
    let mut q = Query::all(EntityKind::Account, tenant("plan"));
    q.sort = Some((builtin(EntityKind::Account, "name"), false));
    q.limit = Some(50);
    q.after = Some(Keyset {
        value: "Account 150".into(),
        id: new_id(),
    });
    let plan = store.explain(&q).unwrap();
    assert_plan(&plan, "ix_accounts_name");
    // Descending without cursor, too.
    q.sort = Some((builtin(EntityKind::Account, "name"), true));
    q.after = None;
    assert_plan(&store.explain(&q).unwrap(), "ix_accounts_name");
}

#[test]
fn late_pages_in_split_orders_are_index_ranges() {
    let store = populated();
    let mut q = Query::all(EntityKind::Account, tenant("plan"));
    q.limit = Some(50);
    // Descending after a value: smaller values, then the NULLs.
    q.sort = Some((builtin(EntityKind::Account, "name"), true));
    q.after = Some(Keyset {
        value: "Account 150".into(),
        id: new_id(),
    });
    let plan = store.explain(&q).unwrap();
    let text = plan.join("\n");
    assert!(
        text.contains("ix_accounts_name (tenant_id=? AND (name,id)<(?,?))"),
        "{text}"
    );
    assert!(
        text.contains("ix_accounts_name (tenant_id=? AND name=?)"),
        "{text}"
    );
    assert!(
        !plan.iter().any(|l| l.starts_with("SCAN accounts")),
        "{text}"
    );
    // Ascending after a NULL: later NULLs, then the values.
    q.sort = Some((builtin(EntityKind::Account, "name"), false));
    q.after = Some(Keyset {
        value: Value::Null,
        id: new_id(),
    });
    let plan = store.explain(&q).unwrap();
    let text = plan.join("\n");
    assert!(
        text.contains("ix_accounts_name (tenant_id=? AND name=? AND id>?)"),
        "{text}"
    );
    assert!(
        text.contains("ix_accounts_name (tenant_id=? AND name>?)"),
        "{text}"
    );
    assert!(
        !plan.iter().any(|l| l.starts_with("SCAN accounts")),
        "{text}"
    );
}

#[test]
fn owner_lists_use_the_owner_index() {
    let store = populated();
    let q = Query::all(EntityKind::Contact, tenant("plan"))
        .and(Cond::OwnerIn(vec![new_id(), new_id()]));
    // Several owners: the matching rows are merged and sorted by id.
    assert_plan_sorting(&store.explain(&q).unwrap(), "ix_contacts_owner");
}

/// The fields RFM and lifecycle read of every account.
const ORDER_STATS: [&str; 5] = [
    "order_count",
    "lifetime_value",
    "first_order_at",
    "last_order_at",
    "other_currency_orders",
];

#[test]
fn order_statistics_of_every_account_read_one_covering_index() {
    let store = populated();
    let q = Query::all(EntityKind::Account, tenant("plan"));
    let plan = store.explain_scan_fields(&q, &ORDER_STATS).unwrap();
    assert_plan(&plan, "COVERING INDEX ix_accounts_last_order");
    // A territory scope is answered from the same index; the narrow read sorts nothing.
    let q = q.and(Cond::AccountInTerritories {
        link: None,
        territories: vec![new_id()],
    });
    let plan = store.explain_scan_fields(&q, &ORDER_STATS).unwrap();
    assert_plan_sorting(&plan, "ix_accounts_");
    assert!(!plan.join(" ").contains("TEMP B-TREE"), "{plan:?}");
    // Pages by last order keep their range read, in order.
    let mut q = Query::all(EntityKind::Account, tenant("plan")).and(Cond::Compare(
        builtin(EntityKind::Account, "last_order_at"),
        Op::Ge,
        Value::Timestamp(crm_core::conformance::t0()),
    ));
    q.sort = Some((builtin(EntityKind::Account, "last_order_at"), true));
    q.limit = Some(50);
    let plan = store.explain(&q).unwrap();
    assert_plan(
        &plan,
        "ix_accounts_last_order (tenant_id=? AND last_order_at>?)",
    );
}

/// What the supervision KPIs read of each order of a period (the owner first).
const ORDER_PERIOD: [&str; 3] = [crm_core::backend::OWNER_FIELD, "total", "tax_total"];

#[test]
fn a_period_of_orders_is_read_from_one_covering_index() {
    let store = populated();
    let t0 = crm_core::conformance::t0();
    let period = Query::all(EntityKind::Order, tenant("plan"))
        .and(Cond::Compare(
            builtin(EntityKind::Order, "ordered_at"),
            Op::Ge,
            Value::Timestamp(t0),
        ))
        .and(Cond::Compare(
            builtin(EntityKind::Order, "ordered_at"),
            Op::Lt,
            Value::Timestamp(t0 + crm_core::chrono::Duration::days(91)),
        ))
        .and(Cond::Compare(
            builtin(EntityKind::Order, "status"),
            Op::Ne,
            Value::Text("cancelled".into()),
        ));
    let covering =
        "COVERING INDEX ix_orders_ordered (tenant_id=? AND ordered_at>? AND ordered_at<?)";
    // Seen by the whole tenant (a supervisor): one range of the index, no order row fetched. (Scoped
    // readers may rather go through the owner or account index: the planner's choice, by data.)
    let plan = store.explain_scan_fields(&period, &ORDER_PERIOD).unwrap();
    assert!(
        plan.iter().any(|l| l.contains(covering)),
        "{}",
        plan.join("\n")
    );
    assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:?}");
}

#[test]
fn indexed_custom_field_filters_use_their_index() {
    let store = populated();
    let q = Query::all(EntityKind::Contact, tenant("plan")).and(Cond::Compare(
        Column::Custom {
            key: "loyalty".into(),
            ty: FieldType::Int,
        },
        Op::Eq,
        Value::Int(3),
    ));
    assert_plan(&store.explain(&q).unwrap(), "cx_contacts_loyalty");
    let r = store.read().unwrap();
    assert_eq!(r.count(&q).unwrap(), 30);
}

#[test]
fn custom_index_keys_are_validated() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut tx = store.write().unwrap();
    for bad in ["", "A", "1x", "x') ; DROP TABLE accounts; --", "x-y", "x.y"] {
        let e = tx
            .index_custom_field(EntityKind::Account, bad, &FieldType::Text)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation, "{bad}");
    }
    tx.index_custom_field(EntityKind::Account, "ok_key2", &FieldType::Text)
        .unwrap();
    tx.index_custom_field(EntityKind::Account, "ok_key2", &FieldType::Text)
        .unwrap();
    let q = Query::all(EntityKind::Account, tenant("x")).and(Cond::IsNull(Column::Custom {
        key: "bad'key".into(),
        ty: FieldType::Text,
    }));
    assert_eq!(tx.query(&q).unwrap_err().kind, ErrorKind::InvalidQuery);
}

#[test]
fn unique_fields_conflict_per_tenant_among_live_rows() {
    let store = SqliteStore::open_in_memory().unwrap();
    let t = tenant("uniq");
    let p = |sku: &str, t: &crm_core::TenantId| {
        record(
            EntityKind::Product,
            t,
            new_id(),
            crm_core::fields! { "sku" => sku, "name" => "P", "list_price" => money("1", "EUR") },
        )
    };
    let first = p("SKU-1", &t);
    let mut tx = store.write().unwrap();
    tx.insert(&first).unwrap();
    let e = tx.insert(&p("SKU-1", &t)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(e.rule.as_deref(), Some("unique"));
    assert_eq!(e.field.as_deref(), Some("sku"));
    assert!(!e.message.contains("SKU-1"), "no values in messages");
    // Another tenant may use the same value.
    tx.insert(&p("SKU-1", &tenant("uniq-other"))).unwrap();
    // Once the first is in the trash, the value is free again.
    let mut trashed = first.clone();
    trashed.meta.version = 2;
    trashed.meta.deleted_at = Some(trashed.meta.updated_at);
    tx.update(&trashed, 1).unwrap();
    tx.insert(&p("SKU-1", &t)).unwrap();
    // Restoring the trashed one now clashes, on update too.
    let mut restored = trashed.clone();
    restored.meta.version = 3;
    restored.meta.deleted_at = None;
    let e = tx.update(&restored, 2).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Conflict, Some("sku"))
    );
    // Users: username.
    let u = |name: &str| {
        record(
            EntityKind::User,
            &t,
            new_id(),
            crm_core::fields! { "username" => name },
        )
    };
    tx.insert(&u("anna")).unwrap();
    let e = tx.insert(&u("anna")).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("username"));
}

#[test]
fn decimals_beyond_four_places_are_refused() {
    let store = SqliteStore::open_in_memory().unwrap();
    let t = tenant("dec");
    let mut r = record(
        EntityKind::Opportunity,
        &t,
        new_id(),
        crm_core::fields! { "name" => "x", "account_id" => new_id(), "probability" => "0.12345".parse::<crm_core::Decimal>().unwrap() },
    );
    let mut tx = store.write().unwrap();
    let e = tx.insert(&r).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref(), e.rule.as_deref()),
        (
            ErrorKind::Validation,
            Some("probability"),
            Some("decimal_scale")
        )
    );
    r.fields.remove("probability");
    r.custom.insert("big".into(), money("0.00001", "EUR"));
    let e = tx.insert(&r).unwrap_err();
    assert_eq!(
        (e.field.as_deref(), e.rule.as_deref()),
        (Some("custom.big"), Some("decimal_scale"))
    );
}

#[test]
fn fresh_database_reaches_latest_version_and_reopening_applies_nothing() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("migrate.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            SqliteStore::latest_schema_version()
        );
        assert!(SqliteStore::latest_schema_version() >= 1);
        let mut tx = store.write().unwrap();
        tx.insert(&record(
            EntityKind::Team,
            &tenant("m"),
            new_id(),
            crm_core::fields! { "name" => "T" },
        ))
        .unwrap();
        tx.commit().unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        SqliteStore::latest_schema_version()
    );
    assert_eq!(
        store
            .read()
            .unwrap()
            .count(&Query::all(EntityKind::Team, tenant("m")))
            .unwrap(),
        1
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    drop(store);
}

#[test]
fn newer_schema_is_refused_and_the_file_is_untouched() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("newer.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA user_version = {}",
            SqliteStore::latest_schema_version() + 1
        ))
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let e = SqliteStore::open(&path).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Storage);
    assert_eq!(e.rule.as_deref(), Some("newer_schema"));
    assert_eq!(std::fs::read(&path).unwrap(), before, "file bytes changed");
}

#[test]
fn readers_see_a_snapshot_while_a_writer_works() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("snapshot.db");
    let store = SqliteStore::open(&path).unwrap();
    let t = tenant("snap");
    let q = Query::all(EntityKind::Team, t.clone());
    let reader = store.read().unwrap();
    assert_eq!(reader.count(&q).unwrap(), 0);
    let mut tx = store.write().unwrap();
    tx.insert(&record(
        EntityKind::Team,
        &t,
        new_id(),
        crm_core::fields! { "name" => "T" },
    ))
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(reader.count(&q).unwrap(), 0, "the snapshot does not move");
    drop(reader);
    assert_eq!(store.read().unwrap().count(&q).unwrap(), 1);
    // Many readers at once.
    let readers: Vec<_> = (0..6).map(|_| store.read().unwrap()).collect();
    for r in &readers {
        assert_eq!(r.count(&q).unwrap(), 1);
    }
    drop(readers);
    drop(store);
}

#[test]
fn writers_from_many_threads_are_serialised() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("threads.db");
    let store = SqliteStore::open(&path).unwrap();
    let t = tenant("threads");
    std::thread::scope(|s| {
        for n in 0..4 {
            let (store, t) = (&store, t.clone());
            s.spawn(move || {
                for i in 0..25 {
                    let mut tx = store.write().unwrap();
                    let name = format!("T{n}-{i}");
                    tx.insert(&record(
                        EntityKind::Team,
                        &t,
                        new_id(),
                        crm_core::fields! { "name" => name },
                    ))
                    .unwrap();
                    tx.commit().unwrap();
                    let r = store.read().unwrap();
                    assert!(r.count(&Query::all(EntityKind::Team, t.clone())).unwrap() >= 1);
                }
            });
        }
    });
    let q = Query::all(EntityKind::Team, t);
    assert_eq!(store.read().unwrap().count(&q).unwrap(), 100);
    drop(store);
}

#[test]
fn a_write_waiting_on_an_open_transaction_fails_busy_instead_of_hanging() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("busy.db");
    let quick = crm_store::OpenOptions {
        busy_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let store = std::sync::Arc::new(SqliteStore::open_with(&path, quick).unwrap());
    let held = store.write().unwrap();
    let other = std::sync::Arc::clone(&store);
    let waited = std::thread::spawn(move || other.write().map(|_| ()))
        .join()
        .unwrap();
    let e = waited.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Storage);
    assert_eq!(e.rule.as_deref(), Some("busy"));
    assert!(e.is_retryable());
    drop(held);
    // Once the transaction ends, writes go through again.
    store.write().unwrap().commit().unwrap();
    drop(store);
}

#[test]
fn the_audit_log_moves_to_a_rowid_table_with_its_entries_and_key() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("audit-rowid.db");
    // A database as version 2 left it, with two audit entries.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../migrations/0001_init.sql"))
            .unwrap();
        conn.execute_batch(include_str!("../migrations/0002_orders_by_date.sql"))
            .unwrap();
        for seq in 1..=2 {
            conn.execute(
                "INSERT INTO audit_log (tenant_id, seq, at, user_id, operation, kind, record_id, \
                 version, changes, prev_hash, hash) \
                 VALUES ('m', ?1, 1000, zeroblob(16), 'create', 'account', zeroblob(16), ?1, \
                 '[]', ?2, ?3)",
                rusqlite::params![seq, format!("h{}", seq - 1), format!("h{seq}")],
            )
            .unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 2").unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        SqliteStore::latest_schema_version()
    );
    let head = store.read().unwrap().audit_head(&tenant("m")).unwrap();
    assert_eq!(head, Some((2, "h2".to_owned())));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let without_rowid: i64 = conn
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE name = 'audit_log'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(without_rowid, 0);
    // The key stays unique, and the chain head is read through its index (no table scan, no sort).
    let dup = conn.execute(
        "INSERT INTO audit_log (tenant_id, seq, at, user_id, operation, kind, record_id, version, \
         changes, prev_hash, hash) SELECT tenant_id, seq, at, user_id, operation, kind, record_id, \
         version, changes, prev_hash, hash FROM audit_log WHERE seq = 2",
        [],
    );
    assert!(dup.is_err());
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT seq, hash FROM audit_log WHERE tenant_id = 'm' \
             ORDER BY seq DESC LIMIT 1",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_plan(&plan, "sqlite_autoindex_audit_log_1");
    drop(conn);
    drop(store);
}
