//! The foundation: every entity through `Crm`, validation reject paths that write nothing, optimistic
//! concurrency, custom fields, keyset paging, phone lookup, tenants, audit and outbox basics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failures should be loud

use crm_core::backend::Op;
use crm_core::{
    fields, EntityKind, ErrorKind, Filter, LineItem, ListRequest, Money, RecordId, TenantId, Value,
};
use crm_tests::{sample, world, World};

fn d(s: &str) -> crm_core::Decimal {
    s.parse().unwrap()
}

fn eur(s: &str) -> Value {
    Value::Money(Money::parse(s, "EUR").unwrap())
}

/// What a failed operation must leave untouched: record counts, audit chain, outbox.
fn snapshot(w: &World) -> (Vec<u64>, u64, usize) {
    let admin = w.admin_session();
    let counts = EntityKind::ALL
        .iter()
        .filter(|k| !k.is_system_managed())
        .map(|k| admin.records().count(*k, None).unwrap())
        .collect();
    let audit = admin.audit().verify().unwrap().checked;
    let events = admin.outbox().pending(0, 10_000).unwrap().len();
    (counts, audit, events)
}

fn assert_rejected(
    w: &World,
    kind: ErrorKind,
    field: Option<&str>,
    rule: &str,
    f: impl FnOnce(&World) -> crm_core::Result<crm_core::Record>,
) {
    let before = snapshot(w);
    let e = f(w).expect_err("the operation must be refused");
    assert_eq!(e.kind, kind, "{e}");
    assert_eq!(e.field.as_deref(), field, "{e}");
    assert_eq!(e.rule.as_deref(), Some(rule), "{e}");
    assert_eq!(snapshot(w), before, "a refused operation wrote something");
}

fn account(w: &World, name: &str) -> crm_core::Record {
    w.admin_session()
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => name, "country" => "IT" },
        )
        .unwrap()
}

#[test]
fn every_entity_type_can_be_created_read_updated_listed_and_deleted() {
    let w = world();
    let admin = w.admin_session();
    for &kind in EntityKind::ALL {
        if kind.is_system_managed() || kind == EntityKind::Share {
            continue;
        }
        let created = admin
            .records()
            .create(kind, sample(&w, kind))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(created.meta.version, 1);
        let got = admin.records().get(kind, created.meta.id).unwrap();
        assert_eq!(got.fields, created.fields, "{kind}");

        // Update one plain text field that every type has, or the name.
        let field = kind
            .schema()
            .fields
            .iter()
            .find(|f| {
                matches!(f.ty, crm_core::FieldType::Text)
                    && !f.system
                    && !f.unique
                    && f.name != "key"
            })
            .map(|f| f.name);
        let updated = match field {
            Some(f) => {
                let u = admin
                    .records()
                    .update(kind, created.meta.id, 1, fields! { f => "changed" })
                    .unwrap_or_else(|e| panic!("{kind}: {e}"));
                assert_eq!(u.meta.version, 2, "{kind}");
                assert_eq!(u.text(f), Some("changed"));
                let page = admin
                    .records()
                    .list(kind, &ListRequest::filter(Filter::eq(f, "changed")))
                    .unwrap();
                assert!(
                    page.items.iter().any(|r| r.meta.id == created.meta.id),
                    "{kind}: list by {f}"
                );
                u
            }
            None => created.clone(),
        };
        if kind == EntityKind::User {
            continue; // users are deactivated, not deleted, in practice; deletion is covered below
        }
        admin
            .records()
            .delete(kind, created.meta.id, Some(updated.meta.version))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let trashed = admin.records().get(kind, created.meta.id).unwrap();
        assert!(trashed.meta.deleted_at.is_some(), "{kind}");
        let live = admin
            .records()
            .list(kind, &ListRequest::default().limit(1000))
            .unwrap();
        assert!(
            live.items.iter().all(|r| r.meta.id != created.meta.id),
            "{kind}: trashed record listed"
        );
        let trash = admin
            .records()
            .list(
                kind,
                &ListRequest {
                    deleted: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(
            trash.items.iter().any(|r| r.meta.id == created.meta.id),
            "{kind}: not in the trash"
        );
        admin.records().restore(kind, created.meta.id).unwrap();
    }
}

#[test]
fn quote_totals_are_computed_with_decimal_rounding() {
    let w = world();
    let q = w
        .admin_session()
        .records()
        .create(EntityKind::Quote, sample(&w, EntityKind::Quote))
        .unwrap();
    // 2 × 50 = 100.00; 10 % discount = 10.00; 22 % tax on 90.00 = 19.80; total 109.80
    assert_eq!(q.get("subtotal"), &eur("100"));
    assert_eq!(q.get("discount_total"), &eur("10"));
    assert_eq!(q.get("tax_total"), &eur("19.80"));
    assert_eq!(q.get("total"), &eur("109.80"));
}

#[test]
fn reject_paths_name_field_and_rule_and_write_nothing() {
    let w = world();
    let admin = w.admin_session();
    let acc = account(&w, "Base");
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("email"),
        "email_syntax",
        |w| {
            w.admin_session().records().create(
                EntityKind::Contact,
                fields! { "last_name" => "X", "email" => "not-an-email" },
            )
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("phone"),
        "phone_format",
        |w| {
            w.admin_session().records().create(
                EntityKind::Contact,
                fields! { "last_name" => "X", "phone" => "12" },
            )
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("currency"),
        "currency_code",
        |w| {
            w.admin_session().records().create(
                EntityKind::Quote,
                fields! { "account_id" => acc.meta.id, "currency" => "XYZ" },
            )
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("unit_cost"),
        "currency_mismatch",
        |w| {
            w.admin_session().records().create(EntityKind::Product, fields! { "sku" => "P1", "name" => "P", "list_price" => eur("10"), "unit_cost" => Value::Money(Money::parse("5", "USD").unwrap()) })
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("last_name"),
        "required",
        |w| {
            w.admin_session()
                .records()
                .create(EntityKind::Contact, fields! { "first_name" => "Only" })
        },
    );
    let quote = |lines: Vec<LineItem>| fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => Value::Lines(lines) };
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("lines[0].quantity"),
        "non_negative",
        |w| {
            let mut f = quote(vec![]);
            f.insert(
                "lines".into(),
                Value::Lines(vec![LineItem {
                    product_id: None,
                    description: String::new(),
                    quantity: d("-1"),
                    unit_price: d("1"),
                    discount_percent: d("0"),
                    tax_rate: d("0"),
                    unit_cost: None,
                }]),
            );
            w.admin_session().records().create(EntityKind::Quote, f)
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("lines[0].discount_percent"),
        "discount_range",
        |w| {
            let mut f = quote(vec![]);
            f.insert(
                "lines".into(),
                Value::Lines(vec![LineItem {
                    product_id: None,
                    description: String::new(),
                    quantity: d("1"),
                    unit_price: d("1"),
                    discount_percent: d("120"),
                    tax_rate: d("0"),
                    unit_cost: None,
                }]),
            );
            w.admin_session().records().create(EntityKind::Quote, f)
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("ends_on"),
        "date_order",
        |w| {
            w.admin_session().records().create(EntityKind::Campaign, fields! { "name" => "C", "starts_on" => Value::Date("2026-05-01".parse().unwrap()), "ends_on" => Value::Date("2026-04-01".parse().unwrap()) })
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("custom.nope"),
        "unknown_field",
        |w| {
            w.admin_session().records().create(
                EntityKind::Account,
                fields! { "name" => "A", "custom.nope" => "x" },
            )
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("nope"),
        "unknown_field",
        |w| {
            w.admin_session().records().create(
                EntityKind::Account,
                fields! { "name" => "A", "nope" => "x" },
            )
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("status"),
        "system_field",
        |w| {
            w.admin_session().records().create(
                EntityKind::Lead,
                fields! { "last_name" => "A", "status" => "converted" },
            )
        },
    );
    admin
        .records()
        .create(
            EntityKind::CustomField,
            fields! { "entity" => "account", "name" => "employees", "field_type" => "int" },
        )
        .unwrap();
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("custom.employees"),
        "type",
        |w| {
            w.admin_session().records().create(
                EntityKind::Account,
                fields! { "name" => "A", "custom.employees" => "many" },
            )
        },
    );
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("account_id"),
        "reference",
        |w| {
            w.admin_session().records().create(
                EntityKind::Opportunity,
                fields! { "name" => "O", "account_id" => RecordId::new_at(w.crm.now()) },
            )
        },
    );
    // A batch is all or nothing; the error names the row.
    assert_rejected(
        &w,
        ErrorKind::Validation,
        Some("rows[1].email"),
        "email_syntax",
        |w| {
            w.admin_session()
                .records()
                .create_many(
                    EntityKind::Contact,
                    vec![
                        fields! { "last_name" => "Ok" }.into(),
                        fields! { "last_name" => "Bad", "email" => "@" }.into(),
                    ],
                )
                .map(|mut v| v.remove(0))
        },
    );
}

#[test]
fn stale_version_is_a_conflict_and_writes_nothing() {
    let w = world();
    let admin = w.admin_session();
    let a = account(&w, "ACME");
    let a2 = admin
        .records()
        .update(
            EntityKind::Account,
            a.meta.id,
            1,
            fields! { "city" => "Milano" },
        )
        .unwrap();
    assert_eq!(a2.meta.version, 2);
    assert_rejected(&w, ErrorKind::Conflict, None, "stale_version", |w| {
        w.admin_session().records().update(
            EntityKind::Account,
            a.meta.id,
            1,
            fields! { "city" => "Roma" },
        )
    });
    let now = admin.records().get(EntityKind::Account, a.meta.id).unwrap();
    assert_eq!((now.meta.version, now.text("city")), (2, Some("Milano")));
}

#[test]
fn phone_lookup_finds_the_record_whatever_the_format() {
    let w = world();
    let admin = w.admin_session();
    let c = admin
        .records()
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Rossi", "phone" => "+39 02 1234 5678" },
        )
        .unwrap();
    assert_eq!(c.text("phone"), Some("+390212345678"));
    for raw in [
        "+39 02 1234 5678",
        "0039-02-12345678",
        "(02) 1234 5678",
        "02.1234.5678",
    ] {
        let found = admin
            .records()
            .find_by_phone(EntityKind::Contact, raw)
            .unwrap();
        assert_eq!(found.len(), 1, "{raw}");
        assert_eq!(found[0].meta.id, c.meta.id);
    }
}

#[test]
fn custom_fields_filter_sort_rename_and_archive_without_losing_values() {
    let w = world();
    let admin = w.admin_session();
    let def = admin.records().create(EntityKind::CustomField, fields! { "entity" => "account", "name" => "sector", "field_type" => "choice", "choices" => Value::Json(serde_json::json!(["retail", "bank", "energy"])) })
        .unwrap();
    admin
        .records()
        .create(
            EntityKind::CustomField,
            fields! { "entity" => "account", "name" => "revenue", "field_type" => "money" },
        )
        .unwrap();
    for (i, ind) in ["retail", "bank", "retail", "energy"].iter().enumerate() {
        admin.records().create(EntityKind::Account, fields! { "name" => format!("A{i}"), "custom.sector" => *ind, "custom.revenue" => eur(&format!("{}", 1000 * (i + 1))) })
            .unwrap();
    }
    let retail = admin
        .records()
        .count(
            EntityKind::Account,
            Some(&Filter::eq("custom.sector", "retail")),
        )
        .unwrap();
    assert_eq!(retail, 2);
    let big = admin
        .records()
        .count(
            EntityKind::Account,
            Some(&Filter::cmp("custom.revenue", Op::Gt, eur("2500"))),
        )
        .unwrap();
    assert_eq!(big, 2);
    let sorted = admin
        .records()
        .list(
            EntityKind::Account,
            &ListRequest::default().sort_by("custom.revenue", true),
        )
        .unwrap();
    assert_eq!(sorted.items[0].label(), "A3");
    let e = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "X", "custom.sector" => "farming" },
        )
        .unwrap_err();
    assert_eq!(
        (e.field.as_deref(), e.rule.as_deref()),
        (Some("custom.sector"), Some("choice"))
    );

    // Rename: values follow the field.
    let def = admin
        .records()
        .update(
            EntityKind::CustomField,
            def.meta.id,
            1,
            fields! { "name" => "vertical" },
        )
        .unwrap();
    assert_eq!(
        admin
            .records()
            .count(
                EntityKind::Account,
                Some(&Filter::eq("custom.vertical", "retail"))
            )
            .unwrap(),
        2
    );
    let e = admin
        .records()
        .count(
            EntityKind::Account,
            Some(&Filter::eq("custom.sector", "retail")),
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidQuery);
    // Archive: hidden, but kept; un-archive brings the values back.
    let def = admin
        .records()
        .update(
            EntityKind::CustomField,
            def.meta.id,
            def.meta.version,
            fields! { "archived" => true },
        )
        .unwrap();
    let a = &admin
        .records()
        .list(
            EntityKind::Account,
            &ListRequest::filter(Filter::eq("name", "A0")),
        )
        .unwrap()
        .items[0];
    assert!(!a.custom.contains_key("vertical"));
    admin
        .records()
        .update(
            EntityKind::CustomField,
            def.meta.id,
            def.meta.version,
            fields! { "archived" => false },
        )
        .unwrap();
    let a = &admin
        .records()
        .list(
            EntityKind::Account,
            &ListRequest::filter(Filter::eq("name", "A0")),
        )
        .unwrap()
        .items[0];
    assert_eq!(a.custom("vertical"), &Value::Text("retail".into()));
    // The type cannot change under stored values.
    let e = admin
        .records()
        .update(
            EntityKind::CustomField,
            def.meta.id,
            def.meta.version + 1,
            fields! { "field_type" => "int" },
        )
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("immutable"));
}

#[test]
fn keyset_pages_visit_every_record_once_in_order() {
    let w = world();
    let admin = w.admin_session();
    let rows: Vec<_> = (0..2_500).map(|i| fields! { "name" => format!("Company {:04}", (i * 7919) % 2_500), "city" => if i % 3 == 0 { "Milano" } else { "Roma" } }.into()).collect();
    admin
        .records()
        .create_many(EntityKind::Account, rows)
        .unwrap();
    for desc in [false, true] {
        let mut seen = Vec::new();
        let mut req = ListRequest::filter(Filter::eq("city", "Roma"))
            .sort_by("name", desc)
            .limit(97);
        loop {
            let page = admin.records().list(EntityKind::Account, &req).unwrap();
            seen.extend(page.items.iter().map(|r| r.label()));
            match page.next {
                Some(c) => req.after = Some(c),
                None => break,
            }
        }
        let mut expected = seen.clone();
        expected.sort();
        if desc {
            expected.reverse();
        }
        assert_eq!(seen, expected);
        assert_eq!(
            seen.len() as u64,
            admin
                .records()
                .count(EntityKind::Account, Some(&Filter::eq("city", "Roma")))
                .unwrap()
        );
        let mut dedup = seen.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), seen.len());
    }
    // A cursor belongs to its sort.
    let p = admin
        .records()
        .list(
            EntityKind::Account,
            &ListRequest::default().sort_by("name", false).limit(5),
        )
        .unwrap();
    let e = admin
        .records()
        .list(
            EntityKind::Account,
            &ListRequest::default().sort_by("city", false).after(p.next),
        )
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("cursor"));
}

#[test]
fn tenants_never_see_each_other() {
    let w = world();
    let a = account(&w, "Tenant A only");
    let other = TenantId::new("globex").unwrap();
    let b_ctx = w.crm.bootstrap(&other, "boss", Default::default()).unwrap();
    let b = w.on(&b_ctx);
    assert_eq!(
        b.records()
            .get(EntityKind::Account, a.meta.id)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert_eq!(b.records().count(EntityKind::Account, None).unwrap(), 0);
    // A user id of tenant A means nothing in tenant B.
    let forged = crm_core::Context::new(other.clone(), w.admin.user_id);
    let e = w.crm.session(&forged).unwrap_err();
    assert_eq!(
        (e.kind, e.rule.as_deref()),
        (ErrorKind::PermissionDenied, Some("unknown_user"))
    );
    let e = b
        .records()
        .update(EntityKind::Account, a.meta.id, 1, fields! { "name" => "x" })
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[test]
fn every_change_has_its_audit_entry_and_event() {
    let w = world();
    let admin = w.admin_session();
    let before_events = admin.outbox().pending(0, 10_000).unwrap().len();
    let a = account(&w, "Audited");
    let a = admin
        .records()
        .update(
            EntityKind::Account,
            a.meta.id,
            1,
            fields! { "city" => "Torino" },
        )
        .unwrap();
    admin
        .records()
        .delete(EntityKind::Account, a.meta.id, Some(a.meta.version))
        .unwrap();
    let h = admin
        .audit()
        .history(EntityKind::Account, a.meta.id, None, None)
        .unwrap();
    let ops: Vec<_> = h.entries.iter().map(|e| e.operation.name()).collect();
    assert_eq!(ops, ["delete", "update", "create"]);
    let upd = &h.entries[1];
    assert_eq!(upd.changes.len(), 1);
    assert_eq!(upd.changes[0].field, "city");
    assert_eq!(
        (&upd.changes[0].old, &upd.changes[0].new),
        (&Value::Null, &Value::Text("Torino".into()))
    );
    assert_eq!(upd.origin.client.as_deref(), Some("tests"));
    assert_eq!(upd.user_id, w.admin.user_id);
    let events = admin.outbox().pending(0, 10_000).unwrap();
    assert_eq!(events.len() - before_events, 3);
    assert!(admin.audit().verify().unwrap().ok);
}
