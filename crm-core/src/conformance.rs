//! The storage conformance suite: every backend runs these against a fresh store.
//!
//! Plain functions over `&dyn Store`; each check panics on failure. Call [`run_all`] with a fresh,
//! empty store (each check uses its own tenant, so they may also share one store).

// This is test code compiled only with the `testing` feature: panicking on failure is its job, and
// the helpers are documented by their names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use crate::backend::{
    AuditQuery, Column, Cond, CustomTypes, Liveness, MetaColumn, Op, Query, Store,
};
use crate::{
    AuditEntry, EntityKind, ErrorKind, FieldChange, FieldType, Fields, LineItem, Money, NewEvent,
    Operation, Origin, Record, RecordId, RecordMeta, TenantId, Value,
};

/// Runs every check.
pub fn run_all(store: &dyn Store) {
    round_trip_every_value_kind(store);
    stale_update_is_a_conflict(store);
    drop_without_commit_writes_nothing(store);
    savepoints_undo_part_of_a_transaction(store);
    tenants_are_isolated(store);
    every_condition(store);
    access_predicates(store);
    keyset_paging(store);
    liveness_and_counts(store);
    scan_fields_reads_the_matching_rows(store);
    purge_removes(store);
    audit_log(store);
    outbox(store);
}

// ---------------------------------------------------------------- helpers

pub fn t0() -> DateTime<Utc> {
    let start = Utc.with_ymd_and_hms(2024, 3, 1, 9, 30, 0).unwrap(); // ok: conformance test code (feature `testing`)
    start + Duration::microseconds(123_456)
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap() // ok: conformance test code (feature `testing`)
}

pub fn new_id() -> RecordId {
    RecordId::new_at(Utc::now())
}

pub fn dec(s: &str) -> Decimal {
    s.parse().unwrap() // ok: conformance test code (feature `testing`)
}

pub fn money(amount: &str, ccy: &str) -> Value {
    Value::Money(Money::parse(amount, ccy).unwrap()) // ok: conformance test code (feature `testing`)
}

pub fn date(y: i32, m: u32, d: u32) -> Value {
    Value::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap()) // ok: conformance test code (feature `testing`)
}

/// A version-1 record with fixed bookkeeping.
pub fn record(kind: EntityKind, tenant: &TenantId, owner: RecordId, fields: Fields) -> Record {
    Record {
        meta: RecordMeta {
            kind,
            id: new_id(),
            tenant: tenant.clone(),
            owner_id: owner,
            created_at: t0(),
            created_by: owner,
            updated_at: t0(),
            updated_by: owner,
            version: 1,
            deleted_at: None,
        },
        fields,
        custom: Fields::new(),
    }
}

pub fn insert_all(store: &dyn Store, records: &[Record]) {
    let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
    for r in records {
        tx.insert(r).unwrap(); // ok: conformance test code (feature `testing`)
    }
    tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
}

pub fn get(store: &dyn Store, r: &Record, custom: &CustomTypes) -> Option<Record> {
    store
        .read()
        .unwrap() // ok: conformance test code (feature `testing`)
        .get(r.meta.kind, &r.meta.tenant, r.meta.id, custom)
        .unwrap() // ok: conformance test code (feature `testing`)
}

/// The record without `Null` values (a store does not keep them).
pub fn without_nulls(mut r: Record) -> Record {
    r.fields.retain(|_, v| *v != Value::Null);
    r.custom.retain(|_, v| *v != Value::Null);
    r
}

pub fn ids(store: &dyn Store, q: &Query) -> BTreeSet<RecordId> {
    let rows = store.read().unwrap().query(q).unwrap(); // ok: conformance test code (feature `testing`)
    let n = store.read().unwrap().count(q).unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(
        n as usize,
        rows.len(),
        "count disagrees with query for {:?}",
        q.cond
    );
    rows.iter().map(|r| r.meta.id).collect()
}

fn set(rs: &[&Record]) -> BTreeSet<RecordId> {
    rs.iter().map(|r| r.meta.id).collect()
}

fn builtin(kind: EntityKind, name: &str) -> Column {
    let f = kind.schema().field(name).unwrap(); // ok: conformance test code (feature `testing`)
    Column::Builtin {
        name: f.name,
        ty: f.ty.clone(),
    }
}

fn custom_col(key: &str, ty: FieldType) -> Column {
    Column::Custom {
        key: key.to_owned(),
        ty,
    }
}

// ---------------------------------------------------------------- checks

pub fn round_trip_every_value_kind(store: &dyn Store) {
    let t = tenant("conf-roundtrip");
    let owner = new_id();
    let account = record(
        EntityKind::Account,
        &t,
        owner,
        crate::fields! {
            "name" => "ACME S.p.A.",
            "roles" => Value::List(vec!["customer".into(), "partner".into()]),
            "email" => "info@acme.example",
            "phone" => "+390212345678",
            "country" => "IT",
            "territory_id" => new_id(),
            "legal_name" => Value::Null,
        },
    );
    let mut opp = record(
        EntityKind::Opportunity,
        &t,
        owner,
        crate::fields! {
            "name" => "Big deal",
            "account_id" => account.meta.id,
            "amount" => money("12345.6789", "EUR"),
            "probability" => dec("0.1234"),
            "expected_close" => date(2024, 12, 31),
            "closed_at" => t0() + Duration::microseconds(1),
        },
    );
    opp.meta.deleted_at = Some(t0() + Duration::days(1));
    opp.meta.version = 7;
    let quote = record(
        EntityKind::Quote,
        &t,
        owner,
        crate::fields! {
            "account_id" => account.meta.id,
            "currency" => "EUR",
            "lines" => Value::Lines(vec![LineItem {
                product_id: Some(new_id()),
                description: "Widget".into(),
                quantity: dec("2.5"),
                unit_price: dec("10.01"),
                discount_percent: dec("5"),
                tax_rate: dec("22"),
                unit_cost: None,
            }]),
            "total" => money("-0.01", "JPY"),
        },
    );
    let role = record(
        EntityKind::Role,
        &t,
        owner,
        crate::fields! { "name" => "admin", "policy" => Value::Json(json!({"a": [1, 2.5, null], "b": "x"})) },
    );
    let user = record(
        EntityKind::User,
        &t,
        owner,
        crate::fields! {
            "username" => "mrossi",
            "team_ids" => Value::List(vec![new_id().to_string(), new_id().to_string()]),
            "territory_ids" => Value::List(vec![]),
            "active" => false,
            "seniority" => 3_i64,
        },
    );
    let mut contact = record(
        EntityKind::Contact,
        &t,
        owner,
        crate::fields! { "last_name" => "Rossi", "email_opt_in" => true, "birth_date" => date(1970, 1, 1) },
    );
    let partner = new_id();
    contact.custom = crate::fields! {
        "c_text" => "hello",
        "c_int" => -42_i64,
        "c_dec" => dec("-3.1415"),
        "c_money" => money("99.99", "USD"),
        "c_date" => date(2001, 2, 3),
        "c_ts" => t0() + Duration::microseconds(7),
        "c_bool" => false,
        "c_choice" => "gold",
        "c_multi" => Value::List(vec!["a".into(), "b".into()]),
        "c_ref" => partner,
        "c_null" => Value::Null,
    };
    let types: CustomTypes = [
        ("c_text", FieldType::Text),
        ("c_int", FieldType::Int),
        ("c_dec", FieldType::Decimal),
        ("c_money", FieldType::Money),
        ("c_date", FieldType::Date),
        ("c_ts", FieldType::Timestamp),
        ("c_bool", FieldType::Bool),
        ("c_choice", FieldType::choice(&["gold", "silver"])),
        ("c_multi", FieldType::multi_choice(&["a", "b"])),
        (
            "c_ref",
            FieldType::Reference {
                to: EntityKind::Account,
            },
        ),
        ("c_null", FieldType::Text),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_owned(), t))
    .collect();
    let all = [account, opp, quote, role, user, contact.clone()];
    insert_all(store, &all);
    for r in &all {
        let got = get(store, r, &types).expect("inserted record is found"); // ok: conformance test code (feature `testing`)
        assert_eq!(
            got,
            without_nulls(r.clone()),
            "round trip of {}",
            r.meta.kind
        );
    }
    // Unknown custom keys come back as raw JSON, never dropped.
    let got = get(store, &contact, &CustomTypes::new()).unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(
        got.custom.len(),
        contact.custom.len() - 1 + 1,
        "c_money__ccy appears raw"
    );
    assert!(matches!(got.custom("c_text"), Value::Json(j) if j == &json!("hello")));
    // A record of another kind or id is not found.
    let mut other = contact.clone();
    other.meta.id = new_id();
    assert!(get(store, &other, &types).is_none());
}

pub fn stale_update_is_a_conflict(store: &dyn Store) {
    let t = tenant("conf-stale");
    let owner = new_id();
    let a = record(
        EntityKind::Account,
        &t,
        owner,
        crate::fields! { "name" => "v1" },
    );
    insert_all(store, std::slice::from_ref(&a));
    let mut b = a.clone();
    b.meta.version = 2;
    b.fields.insert("name".into(), "v2".into());
    {
        let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
        tx.update(&b, 1).unwrap(); // ok: conformance test code (feature `testing`)
        tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
    }
    let mut c = b.clone();
    c.meta.version = 2;
    c.fields.insert("name".into(), "stale".into());
    {
        let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
        let e = tx.update(&c, 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(e.rule.as_deref(), Some("stale_version"));
        tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
    }
    assert_eq!(get(store, &a, &CustomTypes::new()).unwrap(), b); // ok: conformance test code (feature `testing`)
    let mut missing = b.clone();
    missing.meta.id = new_id();
    let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(
        tx.update(&missing, 2).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

pub fn drop_without_commit_writes_nothing(store: &dyn Store) {
    let t = tenant("conf-rollback");
    let owner = new_id();
    let a = record(
        EntityKind::Account,
        &t,
        owner,
        crate::fields! { "name" => "gone" },
    );
    {
        let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
        tx.insert(&a).unwrap(); // ok: conformance test code (feature `testing`)
        tx.append_event(&NewEvent {
            tenant: t.clone(),
            at: t0(),
            event_type: "record.created".into(),
            kind: EntityKind::Account,
            record_id: a.meta.id,
            user_id: owner,
            payload: json!({}),
        })
        .unwrap(); // ok: conformance test code (feature `testing`)
        assert!(tx
            .get(EntityKind::Account, &t, a.meta.id, &CustomTypes::new())
            .unwrap() // ok: conformance test code (feature `testing`)
            .is_some());
    }
    assert!(get(store, &a, &CustomTypes::new()).is_none());
    assert!(store
        .read()
        .unwrap() // ok: conformance test code (feature `testing`)
        .pending_events(&t, 0, 10)
        .unwrap() // ok: conformance test code (feature `testing`)
        .is_empty());
}

pub fn savepoints_undo_part_of_a_transaction(store: &dyn Store) {
    let t = tenant("conf-savepoint");
    let owner = new_id();
    let rec = |name: &str| {
        record(
            EntityKind::Account,
            &t,
            owner,
            crate::fields! { "name" => name },
        )
    };
    let (kept, undone, nested, inner_kept) =
        (rec("kept"), rec("undone"), rec("nested"), rec("inner"));
    let none = CustomTypes::new();
    {
        let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
        tx.savepoint().unwrap(); // ok: conformance test code (feature `testing`)
        tx.insert(&kept).unwrap(); // ok: conformance test code (feature `testing`)
        tx.release_savepoint().unwrap(); // ok: conformance test code (feature `testing`)
        tx.savepoint().unwrap(); // ok: conformance test code (feature `testing`)
        tx.insert(&undone).unwrap(); // ok: conformance test code (feature `testing`)
        tx.savepoint().unwrap(); // ok: conformance test code (feature `testing`)
        tx.insert(&nested).unwrap(); // ok: conformance test code (feature `testing`)
        tx.release_savepoint().unwrap(); // ok: conformance test code (feature `testing`)
        tx.rollback_to_savepoint().unwrap(); // ok: conformance test code (feature `testing`)

        // The transaction is still usable after a rollback to a savepoint.
        let undone_now = tx.get(EntityKind::Account, &t, undone.meta.id, &none);
        assert!(undone_now.unwrap().is_none()); // ok: conformance test code (feature `testing`)
        tx.savepoint().unwrap(); // ok: conformance test code (feature `testing`)
        tx.insert(&inner_kept).unwrap(); // ok: conformance test code (feature `testing`)
        tx.savepoint().unwrap(); // ok: conformance test code (feature `testing`)
        tx.rollback_to_savepoint().unwrap(); // ok: conformance test code (feature `testing`)
        tx.release_savepoint().unwrap(); // ok: conformance test code (feature `testing`)
        tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
    }
    assert!(get(store, &kept, &none).is_some());
    assert!(get(store, &inner_kept, &none).is_some());
    assert!(get(store, &undone, &none).is_none());
    assert!(get(store, &nested, &none).is_none());
}

pub fn tenants_are_isolated(store: &dyn Store) {
    let t1 = tenant("conf-iso-1");
    let t2 = tenant("conf-iso-2");
    let owner = new_id();
    let a = record(
        EntityKind::Account,
        &t1,
        owner,
        crate::fields! { "name" => "Same" },
    );
    let mut b = a.clone();
    b.meta.tenant = t2.clone();
    b.fields.insert("name".into(), "Other".into());
    insert_all(store, &[a.clone(), b.clone()]);
    assert_eq!(get(store, &a, &CustomTypes::new()).unwrap(), a); // ok: conformance test code (feature `testing`)
    assert_eq!(get(store, &b, &CustomTypes::new()).unwrap(), b); // ok: conformance test code (feature `testing`)
    let q = Query::all(EntityKind::Account, t1.clone());
    let rows = store.read().unwrap().query(&q).unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(rows, vec![a.clone()]);
    assert_eq!(store.read().unwrap().count(&q).unwrap(), 1); // ok: conformance test code (feature `testing`)
    let q = q.and(Cond::OwnerIn(vec![owner]));
    assert_eq!(ids(store, &q), set(&[&a]));
    let mut c = a.clone();
    c.meta.tenant = tenant("conf-iso-3");
    assert!(get(store, &c, &CustomTypes::new()).is_none());
    // Updating through the wrong tenant finds nothing.
    c.meta.version = 2;
    let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(tx.update(&c, 1).unwrap_err().kind, ErrorKind::NotFound);
}

struct Contacts {
    t: TenantId,
    c: Vec<Record>,
    deleted: Record,
    a1: RecordId,
    a2: RecordId,
    types: Arc<CustomTypes>,
}

fn contacts(store: &dyn Store, name: &str) -> Contacts {
    let t = tenant(name);
    let owner = new_id();
    let (a1, a2) = (new_id(), new_id());
    let list = |v: &[&str]| Value::List(v.iter().map(|s| (*s).to_owned()).collect());
    let mut c1 = record(
        EntityKind::Contact,
        &t,
        owner,
        crate::fields! { "last_name" => "Rossi", "roles" => list(&["customer"]), "email_opt_in" => true,
        "birth_date" => date(1980, 1, 1), "account_id" => a1 },
    );
    c1.custom = crate::fields! { "score" => 10_i64, "budget" => money("100.50", "EUR"), "tags" => list(&["vip"]) };
    let mut c2 = record(
        EntityKind::Contact,
        &t,
        owner,
        crate::fields! { "last_name" => "Bianchi", "roles" => list(&["customer", "partner"]),
        "email_opt_in" => false, "birth_date" => date(1990, 5, 5), "account_id" => a2 },
    );
    c2.custom =
        crate::fields! { "score" => 20_i64, "budget" => money("200", "USD"), "partner" => a2 };
    let c3 = record(
        EntityKind::Contact,
        &t,
        owner,
        crate::fields! { "last_name" => "rossini", "roles" => list(&[]), "email_opt_in" => true, "account_id" => a1 },
    );
    let mut c4 = record(
        EntityKind::Contact,
        &t,
        owner,
        crate::fields! { "last_name" => "Verdi_%", "roles" => list(&["supplier"]), "email_opt_in" => false,
        "birth_date" => date(2000, 12, 31) },
    );
    c4.custom = crate::fields! { "score" => 30_i64, "budget" => money("100.5", "EUR") };
    let mut deleted = record(
        EntityKind::Contact,
        &t,
        owner,
        crate::fields! { "last_name" => "Rossi" },
    );
    deleted.meta.deleted_at = Some(t0());
    let c = vec![c1, c2, c3, c4];
    let mut all = c.clone();
    all.push(deleted.clone());
    insert_all(store, &all);
    let types: CustomTypes = [
        ("score", FieldType::Int),
        ("budget", FieldType::Money),
        ("tags", FieldType::multi_choice(&["vip"])),
        (
            "partner",
            FieldType::Reference {
                to: EntityKind::Account,
            },
        ),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_owned(), t))
    .collect();
    Contacts {
        t,
        c,
        deleted,
        a1,
        a2,
        types: Arc::new(types),
    }
}

pub fn every_condition(store: &dyn Store) {
    let k = EntityKind::Contact;
    let fx = contacts(store, "conf-conds");
    let [c1, c2, c3, c4] = [&fx.c[0], &fx.c[1], &fx.c[2], &fx.c[3]];
    let q = |cond: Cond| {
        let mut q = Query::all(k, fx.t.clone()).and(cond);
        q.custom_types = fx.types.clone();
        q
    };
    let name = builtin(k, "last_name");
    let birth = builtin(k, "birth_date");
    let score = custom_col("score", FieldType::Int);
    let budget = custom_col("budget", FieldType::Money);
    let cases: Vec<(Cond, Vec<&Record>)> = vec![
        (Cond::True, vec![c1, c2, c3, c4]),
        (Cond::False, vec![]),
        (
            Cond::Compare(name.clone(), Op::Eq, "Rossi".into()),
            vec![c1],
        ),
        (
            Cond::Compare(name.clone(), Op::Ne, "Rossi".into()),
            vec![c2, c3, c4],
        ),
        (
            Cond::Compare(birth.clone(), Op::Lt, date(1995, 1, 1)),
            vec![c1, c2],
        ),
        (
            Cond::Compare(birth.clone(), Op::Le, date(1990, 5, 5)),
            vec![c1, c2],
        ),
        (
            Cond::Compare(birth.clone(), Op::Gt, date(1990, 5, 5)),
            vec![c4],
        ),
        (
            Cond::Compare(birth.clone(), Op::Ge, date(1990, 5, 5)),
            vec![c2, c4],
        ),
        (
            Cond::Compare(birth.clone(), Op::Ne, date(1980, 1, 1)),
            vec![c2, c4],
        ),
        (
            Cond::Compare(builtin(k, "email_opt_in"), Op::Eq, true.into()),
            vec![c1, c3],
        ),
        (
            Cond::Compare(builtin(k, "account_id"), Op::Eq, fx.a1.into()),
            vec![c1, c3],
        ),
        (
            Cond::Compare(score.clone(), Op::Ge, 20_i64.into()),
            vec![c2, c4],
        ),
        (
            Cond::Compare(score.clone(), Op::Ne, 10_i64.into()),
            vec![c2, c4],
        ),
        (
            Cond::Compare(budget.clone(), Op::Eq, money("100.5", "EUR")),
            vec![c1, c4],
        ),
        (
            Cond::Compare(budget.clone(), Op::Gt, money("150", "EUR")),
            vec![],
        ),
        (
            Cond::Compare(budget.clone(), Op::Lt, money("300", "USD")),
            vec![c2],
        ),
        (
            Cond::Compare(
                custom_col(
                    "partner",
                    FieldType::Reference {
                        to: EntityKind::Account,
                    },
                ),
                Op::Eq,
                fx.a2.into(),
            ),
            vec![c2],
        ),
        (
            Cond::Compare(Column::Meta(MetaColumn::Id), Op::Eq, c2.meta.id.into()),
            vec![c2],
        ),
        (
            Cond::Compare(Column::Meta(MetaColumn::Version), Op::Eq, 1_i64.into()),
            vec![c1, c2, c3, c4],
        ),
        (
            Cond::Compare(Column::Meta(MetaColumn::CreatedAt), Op::Ge, t0().into()),
            vec![c1, c2, c3, c4],
        ),
        (
            Cond::In(name.clone(), vec!["Rossi".into(), "Bianchi".into()]),
            vec![c1, c2],
        ),
        (Cond::In(name.clone(), vec![]), vec![]),
        (
            Cond::In(builtin(k, "account_id"), vec![fx.a2.into()]),
            vec![c2],
        ),
        (
            Cond::In(score.clone(), vec![10_i64.into(), 30_i64.into()]),
            vec![c1, c4],
        ),
        (
            Cond::In(
                budget.clone(),
                vec![money("200", "USD"), money("200", "EUR")],
            ),
            vec![c2],
        ),
        (Cond::IsNull(birth.clone()), vec![c3]),
        (Cond::IsNull(builtin(k, "roles")), vec![c3]),
        (Cond::IsNull(score.clone()), vec![c3]),
        (Cond::IsNull(budget.clone()), vec![c3]),
        (
            Cond::IsNull(custom_col("tags", FieldType::multi_choice(&["vip"]))),
            vec![c2, c3, c4],
        ),
        (
            Cond::ListContains(builtin(k, "roles"), "customer".into()),
            vec![c1, c2],
        ),
        (
            Cond::ListContains(
                custom_col("tags", FieldType::multi_choice(&["vip"])),
                "vip".into(),
            ),
            vec![c1],
        ),
        (
            Cond::TextContains(name.clone(), "ROSS".into()),
            vec![c1, c3],
        ),
        (Cond::TextContains(name.clone(), "_%".into()), vec![c4]),
        (Cond::TextContains(name.clone(), "%".into()), vec![c4]),
        (Cond::TextContains(name.clone(), "_".into()), vec![c4]),
        (Cond::StartsWith(name.clone(), "Ross".into()), vec![c1]),
        (Cond::StartsWith(name.clone(), "ross".into()), vec![c3]),
        (Cond::StartsWith(name.clone(), "Verdi_".into()), vec![c4]),
        (
            Cond::And(vec![
                Cond::Compare(builtin(k, "email_opt_in"), Op::Eq, true.into()),
                Cond::TextContains(name.clone(), "ross".into()),
            ]),
            vec![c1, c3],
        ),
        (
            Cond::Or(vec![
                Cond::Compare(name.clone(), Op::Eq, "Bianchi".into()),
                Cond::IsNull(birth.clone()),
            ]),
            vec![c2, c3],
        ),
        (Cond::And(vec![]), vec![c1, c2, c3, c4]),
        (Cond::Or(vec![]), vec![]),
        (
            Cond::Not(Box::new(Cond::Compare(
                birth.clone(),
                Op::Lt,
                date(1995, 1, 1),
            ))),
            vec![c3, c4],
        ),
        (
            Cond::Not(Box::new(Cond::Compare(
                score.clone(),
                Op::Eq,
                10_i64.into(),
            ))),
            vec![c2, c3, c4],
        ),
        (Cond::Not(Box::new(Cond::True)), vec![]),
        (Cond::Not(Box::new(Cond::False)), vec![c1, c2, c3, c4]),
        (
            Cond::Not(Box::new(Cond::IsNull(birth.clone()))),
            vec![c1, c2, c4],
        ),
    ];
    for (cond, want) in cases {
        let got = ids(store, &q(cond.clone()));
        assert_eq!(got, set(&want), "condition {cond:?}");
    }
    // The deleted contact matches only when the trash is asked for.
    let mut dq = q(Cond::Compare(name, Op::Eq, "Rossi".into()));
    dq.liveness = Liveness::Deleted;
    assert_eq!(ids(store, &dq), set(&[&fx.deleted]));
    dq.liveness = Liveness::Any;
    assert_eq!(ids(store, &dq), set(&[c1, &fx.deleted]));
}

pub fn access_predicates(store: &dyn Store) {
    let t = tenant("conf-access");
    let (u1, u2, team, partner) = (new_id(), new_id(), new_id(), new_id());
    let (terr1, terr2) = (new_id(), new_id());
    let acc = |owner, terr: Option<RecordId>| {
        record(
            EntityKind::Account,
            &t,
            owner,
            crate::fields! { "name" => "A", "territory_id" => Value::from(terr) },
        )
    };
    let (a1, a2, a3) = (acc(u1, Some(terr1)), acc(u2, Some(terr2)), acc(u2, None));
    let con = |acc: &Record| {
        record(
            EntityKind::Contact,
            &t,
            u1,
            crate::fields! { "last_name" => "C", "account_id" => acc.meta.id },
        )
    };
    let (c1, c2, c3, c4, c5) = (con(&a1), con(&a2), con(&a3), con(&a1), con(&a2));
    let now = t0();
    let share =
        |rec: &Record, grantee: (&str, RecordId), access: &str, expires: Option<DateTime<Utc>>| {
            let mut f = crate::fields! {
                "record_kind" => rec.meta.kind.name(),
                "record_id" => Value::Ref(rec.meta.id),
                "access" => access,
                "expires_at" => Value::from(expires),
            };
            f.insert(grantee.0.to_owned(), Value::Ref(grantee.1));
            record(EntityKind::Share, &t, u1, f)
        };
    let s1 = share(&c1, ("grantee_user_id", u2), "read", None);
    let s2 = share(
        &c2,
        ("grantee_team_id", team),
        "edit",
        Some(now + Duration::days(1)),
    );
    let s3 = share(
        &c3,
        ("grantee_user_id", u2),
        "edit",
        Some(now - Duration::days(1)),
    );
    let mut s4 = share(&c4, ("grantee_user_id", u2), "edit", None);
    s4.meta.deleted_at = Some(now);
    let s5 = share(&c5, ("grantee_account_id", partner), "read", None);
    // A share of an account with the same id space must not leak into contacts.
    let s6 = share(&a1, ("grantee_user_id", u2), "edit", None);
    insert_all(
        store,
        &[
            a1.clone(),
            a2.clone(),
            a3.clone(),
            c1.clone(),
            c2.clone(),
            c3.clone(),
            c4.clone(),
            c5.clone(),
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
        ],
    );
    let q = |kind, cond| Query::all(kind, t.clone()).and(cond);
    let accounts = EntityKind::Account;
    let contacts = EntityKind::Contact;
    assert_eq!(
        ids(store, &q(accounts, Cond::OwnerIn(vec![u2]))),
        set(&[&a2, &a3])
    );
    assert_eq!(
        ids(store, &q(accounts, Cond::OwnerIn(vec![u1, u2]))),
        set(&[&a1, &a2, &a3])
    );
    assert_eq!(ids(store, &q(accounts, Cond::OwnerIn(vec![]))), set(&[]));
    let terr = |link, ts: Vec<RecordId>| Cond::AccountInTerritories {
        link,
        territories: ts,
    };
    assert_eq!(
        ids(store, &q(accounts, terr(None, vec![terr1]))),
        set(&[&a1])
    );
    assert_eq!(
        ids(store, &q(accounts, terr(None, vec![terr1, terr2]))),
        set(&[&a1, &a2])
    );
    assert_eq!(ids(store, &q(accounts, terr(None, vec![]))), set(&[]));
    assert_eq!(
        ids(store, &q(contacts, terr(Some("account_id"), vec![terr1]))),
        set(&[&c1, &c4])
    );
    assert_eq!(
        ids(store, &q(contacts, terr(Some("account_id"), vec![terr2]))),
        set(&[&c2, &c5])
    );
    assert_eq!(
        ids(store, &q(contacts, terr(Some("account_id"), vec![]))),
        set(&[])
    );
    let shared = |principals, edit| Cond::SharedWith {
        principals,
        edit,
        at: now,
    };
    assert_eq!(
        ids(store, &q(contacts, shared(vec![u2, team], false))),
        set(&[&c1, &c2])
    );
    assert_eq!(
        ids(store, &q(contacts, shared(vec![u2, team], true))),
        set(&[&c2])
    );
    assert_eq!(
        ids(store, &q(contacts, shared(vec![partner], false))),
        set(&[&c5])
    );
    assert_eq!(ids(store, &q(contacts, shared(vec![], false))), set(&[]));
    assert_eq!(
        ids(store, &q(accounts, shared(vec![u2], true))),
        set(&[&a1])
    );
    // Combined the way the facade combines them: owner OR territory OR share.
    let combined = Cond::OwnerIn(vec![u2])
        .or(terr(None, vec![terr1]))
        .or(shared(vec![u2], false));
    assert_eq!(ids(store, &q(accounts, combined)), set(&[&a1, &a2, &a3]));
    // Not of an access predicate.
    assert_eq!(
        ids(
            store,
            &q(contacts, Cond::Not(Box::new(shared(vec![u2, team], false))))
        ),
        set(&[&c3, &c4, &c5])
    );
}

/// Pages through `q` with `limit` rows a page, returning every row in order.
pub fn page_all(
    store: &dyn Store,
    mut q: Query,
    limit: u32,
    key: impl Fn(&Record) -> Value,
) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    q.limit = Some(limit);
    loop {
        let page = store.read().unwrap().query(&q).unwrap(); // ok: conformance test code (feature `testing`)
        assert!(page.len() <= limit as usize);
        let Some(last) = page.last() else { break };
        q.after = Some(crate::backend::Keyset {
            value: key(last),
            id: last.meta.id,
        });
        let done = page.len() < limit as usize;
        out.extend(page);
        if done {
            break;
        }
        assert!(out.len() < 100_000, "paging does not end");
    }
    out
}

pub fn keyset_paging(store: &dyn Store) {
    let t = tenant("conf-paging");
    let owner = new_id();
    let names = ["Alfa", "Bravo", "Charlie", "Delta", "Echo"];
    let mut recs = Vec::new();
    for i in 0..260_usize {
        let industry = if i % 4 == 0 {
            Value::Null
        } else {
            Value::from(format!("ind{}", i % 7))
        };
        let mut r = record(
            EntityKind::Account,
            &t,
            owner,
            crate::fields! { "name" => names[i % names.len()], "industry" => industry },
        );
        r.meta.updated_at = t0() + Duration::seconds((i % 9) as i64);
        if i % 3 != 0 {
            r.custom
                .insert("rank".into(), Value::Int((i % 11) as i64 - 5));
        }
        if i % 5 == 0 {
            r.custom
                .insert("amount".into(), money(&format!("{}.25", i % 6), "EUR"));
        }
        recs.push(r);
    }
    // One deleted record never shows up in live pages.
    let mut gone = record(
        EntityKind::Account,
        &t,
        owner,
        crate::fields! { "name" => "Alfa" },
    );
    gone.meta.deleted_at = Some(t0());
    let mut all = recs.clone();
    all.push(gone);
    insert_all(store, &all);
    let types: Arc<CustomTypes> = Arc::new(
        [
            ("rank".to_owned(), FieldType::Int),
            ("amount".to_owned(), FieldType::Money),
        ]
        .into_iter()
        .collect(),
    );

    // Sort keys as comparable Rust values (None first = SQL NULL first ascending).
    type Key = Option<(i64, String)>;
    let text_key = |v: &Value| -> Key { v.as_text().map(|s| (0, s.to_owned())) };
    type ValueOf = Box<dyn Fn(&Record) -> Value>;
    type KeyOf = Box<dyn Fn(&Value) -> Key>;
    let sorts: Vec<(Column, ValueOf, KeyOf)> = vec![
        (
            builtin(EntityKind::Account, "name"),
            Box::new(|r: &Record| r.get("name").clone()),
            Box::new(text_key),
        ),
        (
            builtin(EntityKind::Account, "industry"),
            Box::new(|r: &Record| r.get("industry").clone()),
            Box::new(text_key),
        ),
        (
            Column::Meta(MetaColumn::UpdatedAt),
            Box::new(|r: &Record| Value::Timestamp(r.meta.updated_at)),
            Box::new(|v: &Value| {
                v.as_timestamp()
                    .map(|t| (t.timestamp_micros(), String::new()))
            }),
        ),
        (
            custom_col("rank", FieldType::Int),
            Box::new(|r: &Record| r.custom("rank").clone()),
            Box::new(|v: &Value| v.as_int().map(|i| (i, String::new()))),
        ),
        (
            custom_col("amount", FieldType::Money),
            Box::new(|r: &Record| r.custom("amount").clone()),
            Box::new(|v: &Value| {
                v.as_money().map(|m| {
                    (
                        (m.amount * Decimal::from(10_000)).try_into().unwrap(), // ok: conformance test code (feature `testing`)
                        String::new(),
                    )
                })
            }),
        ),
        (
            Column::Meta(MetaColumn::Id),
            Box::new(|r: &Record| Value::Ref(r.meta.id)),
            Box::new(|_: &Value| None),
        ),
    ];
    for (col, value_of, key_of) in &sorts {
        for desc in [false, true] {
            let mut expected: Vec<&Record> = recs.iter().collect();
            expected.sort_by(|a, b| {
                (key_of(&value_of(a)), a.meta.id).cmp(&(key_of(&value_of(b)), b.meta.id))
            });
            if desc {
                expected.reverse();
            }
            for limit in [1_u32, 37, 50] {
                let mut q = Query::all(EntityKind::Account, t.clone());
                q.sort = Some((col.clone(), desc));
                q.custom_types = types.clone();
                let got = page_all(store, q, limit, |r| value_of(r));
                let got_ids: Vec<RecordId> = got.iter().map(|r| r.meta.id).collect();
                let want_ids: Vec<RecordId> = expected.iter().map(|r| r.meta.id).collect();
                assert_eq!(
                    got_ids, want_ids,
                    "paging by {col:?} desc={desc} limit={limit}"
                );
            }
        }
    }
    // No sort: by id ascending.
    let mut q = Query::all(EntityKind::Account, t.clone());
    q.custom_types = types;
    let got: Vec<RecordId> = page_all(store, q, 64, |_| Value::Null)
        .iter()
        .map(|r| r.meta.id)
        .collect();
    let mut want: Vec<RecordId> = recs.iter().map(|r| r.meta.id).collect();
    want.sort();
    assert_eq!(got, want);
    // A filtered, sorted page.
    let mut q = Query::all(EntityKind::Account, t.clone()).and(Cond::Compare(
        builtin(EntityKind::Account, "name"),
        Op::Eq,
        "Bravo".into(),
    ));
    q.sort = Some((builtin(EntityKind::Account, "industry"), true));
    let got = page_all(store, q, 7, |r| r.get("industry").clone());
    assert_eq!(got.len(), 52);
    assert!(got.iter().all(|r| r.text("name") == Some("Bravo")));
}

pub fn liveness_and_counts(store: &dyn Store) {
    let t = tenant("conf-live");
    let owner = new_id();
    let recs: Vec<Record> = (0..10)
        .map(|i| {
            let mut r = record(
                EntityKind::Lead,
                &t,
                owner,
                crate::fields! { "last_name" => "L" },
            );
            if i < 3 {
                r.meta.deleted_at = Some(t0());
            }
            r
        })
        .collect();
    insert_all(store, &recs);
    let mut q = Query::all(EntityKind::Lead, t.clone());
    let rd = store.read().unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(rd.count(&q).unwrap(), 7); // ok: conformance test code (feature `testing`)
    q.liveness = Liveness::Deleted;
    assert_eq!(rd.count(&q).unwrap(), 3); // ok: conformance test code (feature `testing`)
    q.liveness = Liveness::Any;
    assert_eq!(rd.count(&q).unwrap(), 10); // ok: conformance test code (feature `testing`)
    q.limit = Some(4);
    assert_eq!(rd.query(&q).unwrap().len(), 4); // ok: conformance test code (feature `testing`)
    assert_eq!(rd.count(&q).unwrap(), 10, "count ignores limit"); // ok: conformance test code (feature `testing`)
                                                                  // get ignores liveness.
    assert!(rd
        .get(EntityKind::Lead, &t, recs[0].meta.id, &CustomTypes::new())
        .unwrap() // ok: conformance test code (feature `testing`)
        .is_some());
    drop(rd);
    // Soft delete and restore through update.
    let mut r = recs[5].clone();
    r.meta.version = 2;
    r.meta.deleted_at = Some(t0());
    let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
    tx.update(&r, 1).unwrap(); // ok: conformance test code (feature `testing`)
    tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
    q.liveness = Liveness::Live;
    q.limit = None;
    assert_eq!(store.read().unwrap().count(&q).unwrap(), 6); // ok: conformance test code (feature `testing`)
    r.meta.version = 3;
    r.meta.deleted_at = None;
    let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
    tx.update(&r, 2).unwrap(); // ok: conformance test code (feature `testing`)
    tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(store.read().unwrap().count(&q).unwrap(), 7); // ok: conformance test code (feature `testing`)
    assert_eq!(get(store, &r, &CustomTypes::new()).unwrap(), r); // ok: conformance test code (feature `testing`)
}

/// `scan_fields` over `q`, as `(id, values)` sorted by id (the order is the backend's).
pub fn scan_rows(
    store: &dyn Store,
    q: &Query,
    fields: &[&'static str],
) -> Vec<(RecordId, Vec<Value>)> {
    let mut out = Vec::new();
    store
        .read()
        .unwrap() // ok: conformance test code (feature `testing`)
        .scan_fields(q, fields, &mut |id, v| {
            out.push((id, v.to_vec()));
            Ok(())
        })
        .unwrap(); // ok: conformance test code (feature `testing`)
    out.sort_by_key(|(id, _)| *id);
    out
}

/// The narrow read returns, for exactly the rows `query` returns (tenant, liveness, condition), the
/// values `query` decodes, `Null` where empty, whatever the sort, cursor and limit say.
pub fn scan_fields_reads_the_matching_rows(store: &dyn Store) {
    let t = tenant("conf-scan");
    let (me, other) = (new_id(), new_id());
    let at = t0();
    let mut recs = Vec::new();
    for i in 0..12i64 {
        let mut f = crate::fields! { "name" => format!("A{i}") };
        if i % 3 != 0 {
            f.insert("order_count".into(), Value::Int(i));
            f.insert(
                "lifetime_value".into(),
                money(&format!("{i}.25"), if i == 4 { "USD" } else { "EUR" }),
            );
            f.insert(
                "last_order_at".into(),
                Value::Timestamp(at + Duration::days(i)),
            );
            f.insert("other_currency_orders".into(), Value::Int(0));
        }
        let mut r = record(
            EntityKind::Account,
            &t,
            if i % 2 == 0 { me } else { other },
            f,
        );
        if i == 5 {
            r.meta.deleted_at = Some(at);
        }
        recs.push(r);
    }
    let parent = recs[1].meta.id;
    recs[7]
        .fields
        .insert("parent_id".into(), Value::Ref(parent));
    insert_all(store, &recs);
    // Another tenant's account is never read.
    insert_all(
        store,
        &[record(
            EntityKind::Account,
            &tenant("conf-scan-other"),
            me,
            crate::fields! { "order_count" => 1i64 },
        )],
    );
    let fields = [
        "order_count",
        "lifetime_value",
        "last_order_at",
        "parent_id",
        "name",
        crate::store::OWNER_FIELD,
    ];
    let expected = |q: &Query| -> Vec<(RecordId, Vec<Value>)> {
        let mut q = q.clone();
        q.limit = None;
        q.after = None;
        q.fields = None;
        let mut rows: Vec<(RecordId, Vec<Value>)> = store
            .read()
            .unwrap() // ok: conformance test code (feature `testing`)
            .query(&q)
            .unwrap() // ok: conformance test code (feature `testing`)
            .iter()
            .map(|r| {
                let mut v: Vec<Value> = fields.iter().map(|f| r.get(f).clone()).collect();
                // The owner is a meta column.
                v[5] = Value::Ref(r.meta.owner_id);
                (r.meta.id, v)
            })
            .collect();
        rows.sort_by_key(|(id, _)| *id);
        rows
    };
    let mut q = Query::all(EntityKind::Account, t.clone());
    let all = scan_rows(store, &q, &fields);
    assert_eq!(all.len(), 11, "live rows of the tenant");
    assert_eq!(all, expected(&q));
    let row = |id: RecordId| all.iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone());
    assert_eq!(
        row(recs[4].meta.id).unwrap(), // ok: conformance test code (feature `testing`)
        vec![
            Value::Int(4),
            money("4.25", "USD"),
            Value::Timestamp(at + Duration::days(4)),
            Value::Null,
            Value::Text("A4".into()),
            Value::Ref(me),
        ]
    );
    assert_eq!(
        row(recs[3].meta.id).unwrap(), // ok: conformance test code (feature `testing`)
        vec![
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Text("A3".into()),
            Value::Ref(other),
        ]
    );
    assert_eq!(
        row(recs[7].meta.id).unwrap()[3], // ok: conformance test code (feature `testing`)
        Value::Ref(recs[1].meta.id)
    );
    // A condition (record scope and a filter), the trash, and sort, cursor and limit ignored.
    q = q.and(Cond::OwnerIn(vec![me])).and(Cond::Compare(
        builtin(EntityKind::Account, "order_count"),
        Op::Gt,
        Value::Int(3),
    ));
    q.sort = Some((builtin(EntityKind::Account, "name"), true));
    q.limit = Some(1);
    q.fields = Some(vec!["name"]);
    let mine = scan_rows(store, &q, &fields);
    assert_eq!(
        mine.iter().map(|(id, _)| *id).collect::<BTreeSet<_>>(),
        set(&[&recs[4], &recs[8], &recs[10]])
    );
    assert_eq!(mine, expected(&q));
    let mut trash = Query::all(EntityKind::Account, t.clone());
    trash.liveness = Liveness::Deleted;
    let deleted = scan_rows(store, &trash, &["order_count"]);
    assert_eq!(deleted, vec![(recs[5].meta.id, vec![Value::Int(5)])]);
    assert!(scan_rows(store, &Query::all(EntityKind::Account, t.clone()), &[]).len() == 11);
    // An unknown field is refused naming it; an error of the callback stops the read.
    let rd = store.read().unwrap(); // ok: conformance test code (feature `testing`)
    let e = rd
        .scan_fields(&q, &["order_count", "no_such_field"], &mut |_, _| Ok(()))
        .unwrap_err(); // ok: conformance test code (feature `testing`)
    assert_eq!(e.kind, ErrorKind::InvalidQuery);
    assert_eq!(e.field.as_deref(), Some("no_such_field"));
    let mut calls = 0;
    let e = rd
        .scan_fields(&Query::all(EntityKind::Account, t), &fields, &mut |_, _| {
            calls += 1;
            Err(crate::CrmError::internal("stop"))
        })
        .unwrap_err(); // ok: conformance test code (feature `testing`)
    assert_eq!(e.message, "stop");
    assert_eq!(calls, 1);
}

pub fn purge_removes(store: &dyn Store) {
    let t = tenant("conf-purge");
    let a = record(
        EntityKind::Account,
        &t,
        new_id(),
        crate::fields! { "name" => "x" },
    );
    insert_all(store, std::slice::from_ref(&a));
    let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
    tx.purge(EntityKind::Account, &t, a.meta.id).unwrap(); // ok: conformance test code (feature `testing`)
    tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
    assert!(get(store, &a, &CustomTypes::new()).is_none());
}

fn entry(
    t: &TenantId,
    seq: u64,
    prev: &str,
    user: RecordId,
    rec: RecordId,
    at: DateTime<Utc>,
) -> AuditEntry {
    AuditEntry {
        tenant: t.clone(),
        seq,
        at,
        user_id: user,
        origin: Origin {
            client: Some("erp 7".into()),
            address: None,
            location: Some("Milan".into()),
        },
        operation: if seq == 1 {
            Operation::Create
        } else {
            Operation::Update
        },
        kind: EntityKind::Account,
        record_id: rec,
        version: seq as i64,
        changes: vec![
            FieldChange {
                field: "name".into(),
                old: if seq == 1 {
                    Value::Null
                } else {
                    Value::from(format!("n{}", seq - 1))
                },
                new: Value::from(format!("n{seq}")),
            },
            FieldChange {
                field: "custom.amount".into(),
                old: Value::Null,
                new: money("1.5", "EUR"),
            },
        ],
        comment: (seq == 2).then(|| "why".to_owned()),
        prev_hash: prev.to_owned(),
        hash: String::new(),
    }
    .seal()
}

pub fn audit_log(store: &dyn Store) {
    let t = tenant("conf-audit");
    let other = tenant("conf-audit-other");
    let (u1, u2) = (new_id(), new_id());
    let (r1, r2) = (new_id(), new_id());
    assert_eq!(store.read().unwrap().audit_head(&t).unwrap(), None); // ok: conformance test code (feature `testing`)
    let mut entries = Vec::new();
    let mut prev = String::new();
    for seq in 1..=6_u64 {
        let user = if seq % 2 == 0 { u2 } else { u1 };
        let rec = if seq <= 3 { r1 } else { r2 };
        let e = entry(
            &t,
            seq,
            &prev,
            user,
            rec,
            t0() + Duration::minutes(seq as i64),
        );
        prev = e.hash.clone();
        entries.push(e);
    }
    {
        let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
        for e in &entries {
            tx.append_audit(e).unwrap(); // ok: conformance test code (feature `testing`)
        }
        tx.append_audit(&entry(&other, 1, "", u1, r1, t0()))
            .unwrap(); // ok: conformance test code (feature `testing`)
        tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
    }
    let rd = store.read().unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(
        rd.audit_head(&t).unwrap(), // ok: conformance test code (feature `testing`)
        Some((6, entries[5].hash.clone()))
    );
    assert_eq!(rd.audit(&AuditQuery::tenant(t.clone())).unwrap(), entries); // ok: conformance test code (feature `testing`)
    assert!(crate::verify_chain(&rd.audit(&AuditQuery::tenant(t.clone())).unwrap()).ok); // ok: conformance test code (feature `testing`)
    let base = AuditQuery::tenant(t.clone());
    let seqs =
        |q: AuditQuery| -> Vec<u64> { rd.audit(&q).unwrap().iter().map(|e| e.seq).collect() }; // ok: conformance test code (feature `testing`)
    assert_eq!(
        seqs(AuditQuery {
            record: Some((EntityKind::Account, r2)),
            ..base.clone()
        }),
        vec![4, 5, 6]
    );
    assert_eq!(
        seqs(AuditQuery {
            record: Some((EntityKind::Contact, r2)),
            ..base.clone()
        }),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(AuditQuery {
            user: Some(u2),
            ..base.clone()
        }),
        vec![2, 4, 6]
    );
    assert_eq!(
        seqs(AuditQuery {
            from: Some(t0() + Duration::minutes(2)),
            until: Some(t0() + Duration::minutes(4)),
            ..base.clone()
        }),
        vec![2, 3]
    );
    assert_eq!(
        seqs(AuditQuery {
            newest_first: true,
            limit: Some(2),
            ..base.clone()
        }),
        vec![6, 5]
    );
    assert_eq!(
        seqs(AuditQuery {
            newest_first: true,
            before_seq: Some(5),
            limit: Some(2),
            ..base.clone()
        }),
        vec![4, 3]
    );
    assert_eq!(
        seqs(AuditQuery {
            after_seq: Some(4),
            ..base.clone()
        }),
        vec![5, 6]
    );
    assert_eq!(seqs(AuditQuery::tenant(other.clone())), vec![1]);
    let tenants = rd.tenants().unwrap(); // ok: conformance test code (feature `testing`)
    assert!(tenants.contains(&t) && tenants.contains(&other));
    drop(rd);
    // A duplicate sequence number is refused.
    let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
    assert!(tx.append_audit(&entries[0]).is_err());
}

pub fn outbox(store: &dyn Store) {
    let t = tenant("conf-outbox");
    let other = tenant("conf-outbox-other");
    let ev = |t: &TenantId, ty: &str| NewEvent {
        tenant: t.clone(),
        at: t0(),
        event_type: ty.to_owned(),
        kind: EntityKind::Lead,
        record_id: new_id(),
        user_id: new_id(),
        payload: json!({"n": ty, "nested": [1, {"x": null}]}),
    };
    let mut seqs = Vec::new();
    {
        let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
        for i in 0..5 {
            seqs.push(tx.append_event(&ev(&t, &format!("e{i}"))).unwrap()); // ok: conformance test code (feature `testing`)
        }
        tx.append_event(&ev(&other, "x")).unwrap(); // ok: conformance test code (feature `testing`)
        tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs increase");
    let rd = store.read().unwrap(); // ok: conformance test code (feature `testing`)
    let pending = rd.pending_events(&t, 0, 100).unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(pending.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(pending[2].event_type, "e2");
    assert_eq!(
        pending[2].payload,
        json!({"n": "e2", "nested": [1, {"x": null}]})
    );
    assert_eq!(pending[0].at, t0());
    assert_eq!(
        rd.pending_events(&t, seqs[1], 2)
            .unwrap() // ok: conformance test code (feature `testing`)
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        seqs[2..4]
    );
    drop(rd);
    let mut tx = store.write().unwrap(); // ok: conformance test code (feature `testing`)
    assert_eq!(tx.ack_events(&t, &[seqs[0], seqs[2], seqs[2]]).unwrap(), 2); // ok: conformance test code (feature `testing`)
                                                                             // Acking another tenant's event does nothing.
    let other_seq = store_other_seq(&*tx, &other);
    assert_eq!(tx.ack_events(&t, &[other_seq]).unwrap(), 0); // ok: conformance test code (feature `testing`)
    tx.commit().unwrap(); // ok: conformance test code (feature `testing`)
    let left: Vec<u64> = store
        .read()
        .unwrap() // ok: conformance test code (feature `testing`)
        .pending_events(&t, 0, 100)
        .unwrap() // ok: conformance test code (feature `testing`)
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, vec![seqs[1], seqs[3], seqs[4]]);
    assert_eq!(
        store
            .read()
            .unwrap() // ok: conformance test code (feature `testing`)
            .pending_events(&other, 0, 100)
            .unwrap() // ok: conformance test code (feature `testing`)
            .len(),
        1
    );
    let tenants = store.read().unwrap().tenants().unwrap(); // ok: conformance test code (feature `testing`)
    assert!(tenants.contains(&t));
}

fn store_other_seq(tx: &dyn crate::backend::WriteTx, other: &TenantId) -> u64 {
    tx.pending_events(other, 0, 1).unwrap()[0].seq // ok: conformance test code (feature `testing`)
}
