//! The rules the door enforces beyond scopes: input limits, rights-granting user fields, allow-list
//! and key-based field rules, derived values, and each kind of unscoped read (why it cannot leak).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failures should be loud

use crm_core::{
    fields, Action, EntityKind, ErrorKind, FieldAccess, FieldMode, Filter, ListRequest, Money,
    NewRecord, ObjectRule, Op, Policy, RecordId, RfmOptions, Scope, Value, MAX_FILTER_DEPTH,
};
use crm_tests::{ids, world, World};

const CRUD: &[Action] = &[
    Action::Create,
    Action::Read,
    Action::Update,
    Action::Delete,
    Action::Export,
];

fn eur(s: &str) -> Value {
    Value::Money(Money::parse(s, "EUR").unwrap())
}

fn rule(read: Scope, write: Scope) -> ObjectRule {
    ObjectRule::new(CRUD, &[read], &[write])
}

fn assert_kind<T: std::fmt::Debug>(r: crm_core::Result<T>, kind: ErrorKind, rule: &str) {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind, kind, "{e:?}");
    assert_eq!(e.rule.as_deref(), Some(rule), "{e:?}");
}

// ----------------------------------------------------------------- input limits

#[test]
fn filter_text_nested_beyond_the_limit_is_refused_not_a_crash() {
    let w = world();
    let admin = w.admin_session();
    for depth in [MAX_FILTER_DEPTH + 1, 5_000, 200_000] {
        let text = format!("{}country = \"IT\"{}", "(".repeat(depth), ")".repeat(depth));
        let r = admin.segments().parse(EntityKind::Account, &text, None);
        let e = r.expect_err("deep text is refused");
        assert_eq!(e.kind, ErrorKind::InvalidQuery, "{e:?}");
        assert!(
            matches!(e.rule.as_deref(), Some("too_deep" | "too_long")),
            "{e:?}"
        );
        let nots = format!("{}country = \"IT\"", "not ".repeat(depth));
        let e = admin
            .segments()
            .parse(EntityKind::Account, &nots, None)
            .expect_err("deep negation is refused");
        assert_eq!(e.kind, ErrorKind::InvalidQuery, "{e:?}");
    }
    // Within the limit it parses and runs.
    let ok = format!(
        "{}country = \"IT\"{}",
        "(".repeat(MAX_FILTER_DEPTH - 1),
        ")".repeat(MAX_FILTER_DEPTH - 1)
    );
    let f = admin
        .segments()
        .parse(EntityKind::Account, &ok, None)
        .unwrap();
    admin
        .records()
        .count(EntityKind::Account, Some(&f))
        .unwrap();
}

#[test]
fn a_stored_deep_segment_definition_is_refused_when_saved() {
    let w = world();
    let admin = w.admin_session();
    let text = format!("{}country = \"IT\"{}", "(".repeat(4_000), ")".repeat(4_000));
    let r = admin.records().create(
        EntityKind::Segment,
        fields! { "name" => "deep", "entity" => "account", "definition" => text },
    );
    assert_eq!(r.unwrap_err().kind, ErrorKind::InvalidQuery);
}

#[test]
fn api_built_filters_beyond_the_limits_are_refused() {
    let w = world();
    let admin = w.admin_session();
    // Deep enough to pass every limit by far, shallow enough for the test's own copies and drop.
    let mut deep = Filter::eq("country", "IT");
    for _ in 0..500 {
        deep = Filter::Not {
            not: Box::new(deep),
        };
    }
    assert_kind(
        admin.records().count(EntityKind::Account, Some(&deep)),
        ErrorKind::InvalidQuery,
        "too_deep",
    );
    let wide = Filter::Or {
        any: (0..5_000)
            .map(|i| Filter::eq("name", format!("n{i}")))
            .collect(),
    };
    assert_kind(
        admin
            .records()
            .list(EntityKind::Account, &ListRequest::filter(wide)),
        ErrorKind::InvalidQuery,
        "too_large",
    );
    let huge_in = Filter::In {
        field: "name".into(),
        values: (0..100_000).map(|i| Value::Text(format!("n{i}"))).collect(),
    };
    assert_kind(
        admin.records().count(EntityKind::Account, Some(&huge_in)),
        ErrorKind::InvalidQuery,
        "too_large",
    );
    // A large but allowed list still answers.
    let big_in = Filter::In {
        field: "name".into(),
        values: (0..5_000).map(|i| Value::Text(format!("n{i}"))).collect(),
    };
    assert_eq!(
        admin
            .records()
            .count(EntityKind::Account, Some(&big_in))
            .unwrap(),
        0
    );
}

#[test]
fn day_counts_and_windows_outside_the_calendar_are_refused() {
    let w = world();
    let admin = w.admin_session();
    for text in [
        "days_since_created < 9223372036854775807",
        "days_since_created > -9223372036854775808",
        "days_since_created = 99999999999",
        "days_since_created >= -4000000",
    ] {
        let r = admin
            .segments()
            .parse(EntityKind::Account, text, None)
            .and_then(|f| admin.records().count(EntityKind::Account, Some(&f)));
        assert_kind(r, ErrorKind::InvalidQuery, "out_of_range");
    }
    let f = admin
        .segments()
        .parse(EntityKind::Account, "days_since_created < 30", None)
        .unwrap();
    admin
        .records()
        .count(EntityKind::Account, Some(&f))
        .unwrap();
    let opts = RfmOptions {
        window_days: Some(u32::MAX),
        ..Default::default()
    };
    assert_kind(
        admin.analytics().rfm(&opts),
        ErrorKind::InvalidQuery,
        "out_of_range",
    );
}

// ----------------------------------------------------------------- rights-granting user fields

#[test]
fn a_user_cannot_grant_themselves_rights() {
    let w = world();
    let team = w.team("Elite");
    let territory = w.territory("Everywhere");
    // May update users in scope own (their own record) but not configure.
    let role = w.role(
        "self-service",
        &Policy::default()
            .allow(EntityKind::User, rule(Scope::Own, Scope::Own))
            .allow(EntityKind::Account, rule(Scope::Own, Scope::Own)),
    );
    let boss = w.user("boss", role, fields! {});
    let me = w.user("me", role, fields! {});
    let s = w.on(&me);
    let mine = s.records().get(EntityKind::User, me.user_id).unwrap();
    let admin_role = w
        .admin_session()
        .records()
        .list(
            EntityKind::Role,
            &ListRequest::filter(Filter::eq("name", "Administrator")),
        )
        .unwrap()
        .items[0]
        .meta
        .id;
    for (field, value) in [
        ("role_id", Value::Ref(admin_role)),
        ("team_ids", ids(&[team])),
        ("territory_ids", ids(&[territory])),
        ("manager_id", Value::Ref(boss.user_id)),
        ("user_type", Value::from("internal")),
        ("active", Value::Bool(true)),
        ("seniority", Value::Int(99)),
    ] {
        let r = s.records().update(
            EntityKind::User,
            me.user_id,
            mine.meta.version,
            fields! { field => value },
        );
        let e = r.expect_err(field);
        assert_eq!(e.kind, ErrorKind::PermissionDenied, "{field}: {e:?}");
        assert_eq!(e.field.as_deref(), Some(field));
    }
    // Nothing changed.
    let after = w
        .admin_session()
        .records()
        .get(EntityKind::User, me.user_id)
        .unwrap();
    assert_eq!(after.meta.version, mine.meta.version);
    assert_eq!(after.reference("role_id"), Some(role));
    // A plain field of their own record stays theirs to change.
    s.records()
        .update(
            EntityKind::User,
            me.user_id,
            mine.meta.version,
            fields! { "email" => "me@example.com" },
        )
        .unwrap();
}

#[test]
fn creating_users_without_configure_cannot_mint_an_administrator() {
    let w = world();
    let hr = w.role(
        "hr",
        &Policy::default().allow(EntityKind::User, rule(Scope::All, Scope::All)),
    );
    let clerk = w.user("clerk", hr, fields! {});
    let admin_role = w
        .admin_session()
        .records()
        .list(
            EntityKind::Role,
            &ListRequest::filter(Filter::eq("name", "Administrator")),
        )
        .unwrap()
        .items[0]
        .meta
        .id;
    let before = w
        .admin_session()
        .records()
        .count(EntityKind::User, None)
        .unwrap();
    let r = w.on(&clerk).records().create(
        EntityKind::User,
        fields! { "username" => "mallory", "role_id" => admin_role },
    );
    assert_eq!(r.unwrap_err().kind, ErrorKind::PermissionDenied);
    assert_eq!(
        w.admin_session()
            .records()
            .count(EntityKind::User, None)
            .unwrap(),
        before
    );
    // With configure on users it is allowed (the administrator can).
    w.admin_session()
        .records()
        .create(
            EntityKind::User,
            fields! { "username" => "alice", "role_id" => admin_role },
        )
        .unwrap();
}

// ----------------------------------------------------------------- field rules

fn custom_field(w: &World, kind: &str, name: &str) -> crm_core::Record {
    w.admin_session()
        .records()
        .create(
            EntityKind::CustomField,
            fields! { "entity" => kind, "name" => name, "field_type" => "text" },
        )
        .unwrap()
}

#[test]
fn a_hidden_custom_field_stays_hidden_after_a_rename() {
    let w = world();
    let def = custom_field(&w, "account", "rating");
    let role = w.role(
        "rep",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::All, Scope::All))
            .field(EntityKind::Account, "custom.rating", FieldAccess::Hidden),
    );
    let rep = w.user("rep", role, fields! {});
    let acc = w
        .admin_session()
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "ACME", "custom.rating" => "SECRET-RATING" },
        )
        .unwrap();
    let seen = |w: &World| {
        let r = w
            .on(&rep)
            .records()
            .get(EntityKind::Account, acc.meta.id)
            .unwrap();
        format!("{r:?}")
    };
    assert!(!seen(&w).contains("SECRET-RATING"));
    w.admin_session()
        .records()
        .update(
            EntityKind::CustomField,
            def.meta.id,
            def.meta.version,
            fields! { "name" => "score" },
        )
        .unwrap();
    assert!(!seen(&w).contains("SECRET-RATING"), "rule lost on rename");
    // Neither filter nor sort can probe it under its new name.
    let probe = w.on(&rep).records().count(
        EntityKind::Account,
        Some(&Filter::eq("custom.score", "SECRET-RATING")),
    );
    assert_eq!(probe.unwrap_err().kind, ErrorKind::PermissionDenied);
    // A policy written later with the new name is stored under the field's key.
    let role2 = w.role(
        "rep2",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::All, Scope::All))
            .field(EntityKind::Account, "custom.score", FieldAccess::Hidden),
    );
    let stored = w
        .admin_session()
        .records()
        .get(EntityKind::Role, role2)
        .unwrap();
    let policy = match stored.get("policy") {
        Value::Json(j) => Policy::from_json(j).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        policy.fields.contains_key("account.custom.rating"),
        "{policy:?}"
    );
}

#[test]
fn an_allow_list_role_sees_only_granted_fields_and_new_fields_stay_invisible() {
    let w = world();
    let role = w.role(
        "narrow",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::All, Scope::All))
            .field_mode(FieldMode::AllowList)
            .field(EntityKind::Account, "name", FieldAccess::Visible)
            .field(EntityKind::Account, "country", FieldAccess::ReadOnly),
    );
    let u = w.user("narrow", role, fields! {});
    let acc = w
        .admin_session()
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "ACME", "country" => "IT", "vat_number" => "IT12345678901", "phone" => "02 1234 5678" },
        )
        .unwrap();
    custom_field(&w, "account", "added_later");
    let acc = w
        .admin_session()
        .records()
        .update(
            EntityKind::Account,
            acc.meta.id,
            acc.meta.version,
            fields! { "custom.added_later" => "NEW-SECRET" },
        )
        .unwrap();
    let seen = w
        .on(&u)
        .records()
        .get(EntityKind::Account, acc.meta.id)
        .unwrap();
    assert_eq!(seen.text("name"), Some("ACME"));
    assert_eq!(seen.text("country"), Some("IT"));
    assert!(seen.get("vat_number").is_null());
    assert!(seen.get("phone").is_null());
    assert!(!format!("{seen:?}").contains("NEW-SECRET"));
    // Not granted: no filter on it, no write to it; read-only: no write.
    assert_eq!(
        w.on(&u)
            .records()
            .count(
                EntityKind::Account,
                Some(&Filter::eq("vat_number", "IT12345678901"))
            )
            .unwrap_err()
            .kind,
        ErrorKind::PermissionDenied
    );
    for f in ["vat_number", "country"] {
        let r = w.on(&u).records().update(
            EntityKind::Account,
            acc.meta.id,
            acc.meta.version,
            fields! { f => "X" },
        );
        assert_eq!(r.unwrap_err().kind, ErrorKind::PermissionDenied, "{f}");
    }
    w.on(&u)
        .records()
        .update(
            EntityKind::Account,
            acc.meta.id,
            acc.meta.version,
            fields! { "name" => "ACME 2" },
        )
        .unwrap();
}

#[test]
fn external_users_get_an_allow_list_by_default() {
    let w = world();
    let admin = w.admin_session();
    let partner = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "Partner Srl" })
        .unwrap();
    let role = w.role(
        "partner",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::Own, Scope::Own))
            .field(EntityKind::Account, "name", FieldAccess::Visible),
    );
    let ext = w.user(
        "ext",
        role,
        fields! { "user_type" => "external", "partner_account_id" => partner.meta.id },
    );
    let acc = admin
        .records()
        .create(
            EntityKind::Account,
            NewRecord {
                fields: fields! { "name" => "Shared", "vat_number" => "IT99999999999" },
                owner_id: Some(ext.user_id),
            },
        )
        .unwrap();
    let seen = w
        .on(&ext)
        .records()
        .get(EntityKind::Account, acc.meta.id)
        .unwrap();
    assert_eq!(seen.text("name"), Some("Shared"));
    assert!(seen.get("vat_number").is_null(), "{seen:?}");
}

// ----------------------------------------------------------------- derived values and unscoped reads

/// Why `Why::Maintenance` cannot leak: the totals it keeps are hidden from a reader who does not see
/// every order, and filtering on them is refused.
#[test]
fn account_totals_are_hidden_from_users_who_do_not_see_every_order() {
    let w = world();
    let role = w.role(
        "rep",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::All, Scope::All))
            .allow(EntityKind::Order, rule(Scope::Own, Scope::Own)),
    );
    let rep = w.user("rep", role, fields! {});
    let admin = w.admin_session();
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    admin
        .records()
        .create(
            EntityKind::Order,
            fields! {
                "account_id" => acc.meta.id,
                "currency" => "EUR",
                "lines" => Value::Lines(vec![crm_core::LineItem {
                    product_id: None,
                    description: "big".into(),
                    quantity: "1".parse().unwrap(),
                    unit_price: "987654.32".parse().unwrap(),
                    discount_percent: "0".parse().unwrap(),
                    tax_rate: "0".parse().unwrap(),
                    unit_cost: None,
                }]),
            },
        )
        .unwrap();
    let by_admin = admin
        .records()
        .get(EntityKind::Account, acc.meta.id)
        .unwrap();
    assert_eq!(by_admin.get("order_count"), &Value::Int(1));
    let by_rep = w
        .on(&rep)
        .records()
        .get(EntityKind::Account, acc.meta.id)
        .unwrap();
    assert!(by_rep.get("order_count").is_null(), "{by_rep:?}");
    assert!(!format!("{by_rep:?}").contains("987654"), "{by_rep:?}");
    let probe = w.on(&rep).records().count(
        EntityKind::Account,
        Some(&Filter::cmp("lifetime_value", Op::Gt, eur("1000"))),
    );
    assert_eq!(probe.unwrap_err().kind, ErrorKind::PermissionDenied);
}

/// Why `Why::Notification` cannot leak: a follower whose access ends hears nothing more.
#[test]
fn followers_stop_hearing_about_a_record_once_they_cannot_read_it() {
    let w = world();
    let role = w.role(
        "rep",
        &Policy::default().allow(EntityKind::Account, rule(Scope::Own, Scope::Own)),
    );
    let rep = w.user("rep", role, fields! {});
    let admin = w.admin_session();
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let share = admin
        .access()
        .share(
            EntityKind::Account,
            acc.meta.id,
            crm_core::Grantee::User(rep.user_id),
            false,
            None,
        )
        .unwrap();
    w.on(&rep)
        .records()
        .follow(EntityKind::Account, acc.meta.id)
        .unwrap();
    let notifications = |w: &World| {
        w.admin_session()
            .outbox()
            .pending(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == "notification")
            .count()
    };
    let acc = admin
        .records()
        .update(
            EntityKind::Account,
            acc.meta.id,
            acc.meta.version,
            fields! { "name" => "ACME 2" },
        )
        .unwrap();
    let after_first = notifications(&w);
    assert_eq!(after_first, 1);
    admin.access().unshare(share.meta.id).unwrap();
    admin
        .records()
        .update(
            EntityKind::Account,
            acc.meta.id,
            acc.meta.version,
            fields! { "name" => "ACME 3" },
        )
        .unwrap();
    assert_eq!(
        notifications(&w),
        after_first,
        "notified after the share ended"
    );
}

/// Why `Why::Decision` cannot leak: `explain` answers only about records the asker may read.
#[test]
fn explain_about_an_unreadable_record_is_not_found_like_a_random_id() {
    let w = world();
    let role = w.role(
        "rep",
        &Policy::default().allow(EntityKind::Account, rule(Scope::Own, Scope::Own)),
    );
    let rep = w.user("rep", role, fields! {});
    let other = w
        .admin_session()
        .records()
        .create(EntityKind::Account, fields! { "name" => "Hidden" })
        .unwrap();
    let s = w.on(&rep);
    let hidden = s
        .access()
        .explain(
            rep.user_id,
            Action::Read,
            EntityKind::Account,
            other.meta.id,
        )
        .unwrap_err();
    let random = s
        .access()
        .explain(
            rep.user_id,
            Action::Read,
            EntityKind::Account,
            RecordId::new_at(w.crm.now()),
        )
        .unwrap_err();
    assert_eq!(hidden.kind, ErrorKind::NotFound);
    assert_eq!(random.kind, ErrorKind::NotFound);
}

/// References are looked up through the scoped reader: an unreadable target fails as a missing one,
/// and its totals do not move.
#[test]
fn linking_to_an_unreadable_record_fails_like_a_random_id_and_changes_nothing() {
    let w = world();
    let role = w.role(
        "rep",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::Own, Scope::Own))
            .allow(EntityKind::Opportunity, rule(Scope::Own, Scope::Own)),
    );
    let rep = w.user("rep", role, fields! {});
    let admin = w.admin_session();
    let theirs = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "Not yours" })
        .unwrap();
    let s = w.on(&rep);
    let link = |id: RecordId| {
        s.records()
            .create(
                EntityKind::Opportunity,
                fields! { "name" => "probe", "account_id" => id, "amount" => eur("5000") },
            )
            .unwrap_err()
    };
    let a = link(theirs.meta.id);
    let b = link(RecordId::new_at(w.crm.now()));
    assert_eq!(
        (a.kind, a.rule.clone(), a.field.clone()),
        (b.kind, b.rule, b.field)
    );
    assert_eq!(a.kind, ErrorKind::Validation);
    let after = admin
        .records()
        .get(EntityKind::Account, theirs.meta.id)
        .unwrap();
    assert_eq!(after.meta.version, theirs.meta.version);
    assert!(after.get("open_opportunity_value").is_null());
}

/// Why `Why::Routing` cannot leak: routing a lead to the least-loaded rep counts every rep's open
/// leads, but the creator learns only who got the lead — and only sees it if their scope allows.
#[test]
fn routing_counts_loads_past_the_creators_scope_but_returns_nothing_of_them() {
    let w = world();
    let admin = w.admin_session();
    let rep_role = w.role(
        "rep",
        &Policy::default().allow(EntityKind::Lead, rule(Scope::Own, Scope::Own)),
    );
    let a = w.user("a", rep_role, fields! {});
    let b = w.user("b", rep_role, fields! {});
    let queue = admin
        .records()
        .create(
            EntityKind::Queue,
            fields! { "name" => "inside", "strategy" => "least_open", "member_ids" => ids(&[a.user_id, b.user_id]) },
        )
        .unwrap();
    admin
        .records()
        .create(
            EntityKind::AssignmentRule,
            fields! { "name" => "all", "entity" => "lead", "queue_id" => queue.meta.id },
        )
        .unwrap();
    // `a` already has an open lead: the next goes to `b`.
    admin
        .records()
        .create(
            EntityKind::Lead,
            NewRecord {
                fields: fields! { "last_name" => "SECRET-LOAD", "company" => "X" },
                owner_id: Some(a.user_id),
            },
        )
        .unwrap();
    let web = w.user("web", rep_role, fields! {});
    let created = w
        .on(&web)
        .records()
        .create(
            EntityKind::Lead,
            fields! { "last_name" => "Neri", "company" => "Neri SRL", "channel" => "phone" },
        )
        .unwrap();
    assert_eq!(created.meta.owner_id, b.user_id);
    assert!(!format!("{created:?}").contains("SECRET-LOAD"));
    // The creator no longer owns it: it is out of their reach now, as for anyone else's.
    assert_eq!(
        w.on(&web)
            .records()
            .get(EntityKind::Lead, created.meta.id)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
}

/// Why `Why::OfVisible` cannot leak: stage history and followers answer only for records the caller
/// may read (and not found otherwise).
#[test]
fn stage_history_and_followers_of_an_unreadable_record_are_not_found() {
    let w = world();
    let role = w.role(
        "rep",
        &Policy::default().allow(EntityKind::Lead, rule(Scope::Own, Scope::Own)),
    );
    let rep = w.user("rep", role, fields! {});
    let admin = w.admin_session();
    let lead = admin
        .records()
        .create(
            EntityKind::Lead,
            fields! { "last_name" => "Hidden", "company" => "H" },
        )
        .unwrap();
    admin
        .sales()
        .transition_lead(lead.meta.id, lead.meta.version, "contacted", None)
        .unwrap();
    admin
        .records()
        .follow(EntityKind::Lead, lead.meta.id)
        .unwrap();
    let s = w.on(&rep);
    let random = RecordId::new_at(w.crm.now());
    for id in [lead.meta.id, random] {
        assert_eq!(
            s.audit()
                .stage_history(EntityKind::Lead, id)
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.records()
                .followers(EntityKind::Lead, id)
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
    }
}

/// Why `Why::Verification` and `Why::Outbox` cannot leak: only administrators and integration users
/// reach them, and verification answers with counts, not values.
#[test]
fn audit_verification_and_the_outbox_need_their_rights() {
    let w = world();
    let role = w.role(
        "rep",
        &Policy::default().allow(EntityKind::Account, rule(Scope::All, Scope::All)),
    );
    let rep = w.user("rep", role, fields! {});
    let admin = w.admin_session();
    admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "SECRET-NAME" })
        .unwrap();
    let s = w.on(&rep);
    assert_eq!(
        s.audit().verify().unwrap_err().kind,
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        s.outbox().pending(0, 100).unwrap_err().kind,
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        s.outbox().ack(&[1]).unwrap_err().kind,
        ErrorKind::PermissionDenied
    );
    let v = admin.audit().verify().unwrap();
    assert!(v.ok);
    assert!(!format!("{v:?}").contains("SECRET-NAME"));
}

/// Why `Why::Configuration` cannot leak: configuration decides rights but is read by users only
/// through the scoped reader like any record.
#[test]
fn configuration_records_are_read_through_the_scoped_reader() {
    let w = world();
    let role = w.role(
        "rep",
        &Policy::default().allow(EntityKind::Account, rule(Scope::All, Scope::All)),
    );
    let rep = w.user("rep", role, fields! {});
    let s = w.on(&rep);
    for kind in [
        EntityKind::Role,
        EntityKind::CustomField,
        EntityKind::AssignmentRule,
    ] {
        assert_eq!(
            s.records().count(kind, None).unwrap_err().kind,
            ErrorKind::PermissionDenied,
            "{kind}"
        );
    }
    assert_eq!(
        s.records().get(EntityKind::Role, role).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

/// Phone lookups answer from the phone fields the user may see: a hidden mobile is not searched and
/// does not turn the lookup or the screen pop into a refusal.
#[test]
fn a_hidden_mobile_leaves_phone_lookup_and_screen_pop_working() {
    let w = world();
    let role = w.role(
        "agent",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::All, Scope::All))
            .allow(EntityKind::Contact, rule(Scope::All, Scope::All))
            .field(EntityKind::Contact, "mobile", FieldAccess::Hidden),
    );
    let agent = w.user("agent", role, fields! {});
    let admin = w.admin_session();
    let acc = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "ACME", "phone" => "02 1234 5678" },
        )
        .unwrap();
    admin
        .records()
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Rossi", "phone" => "02 8765 4321", "mobile" => "347 123 4567", "account_id" => acc.meta.id },
        )
        .unwrap();
    let s = w.on(&agent);
    let by_phone = s
        .records()
        .find_by_phone(EntityKind::Contact, "02 8765 4321")
        .unwrap();
    assert_eq!(by_phone.len(), 1);
    assert!(by_phone[0].get("mobile").is_null());
    // The hidden mobile is not searched: no oracle of whose number it is.
    assert!(s
        .records()
        .find_by_phone(EntityKind::Contact, "347 123 4567")
        .unwrap()
        .is_empty());
    let pop = s.analytics().screen_pop("02 1234 5678", None).unwrap();
    assert!(!format!("{pop:?}").contains("3471234567"), "{pop:?}");
    let pop = s.analytics().screen_pop("02 8765 4321", None).unwrap();
    assert!(!format!("{pop:?}").contains("3471234567"), "{pop:?}");
}

/// Why `Why::KnownReference` cannot leak: a restore checks only that the references the record
/// already holds are live — a user may restore a record whose territory they cannot read, and a
/// record whose account went to the trash does not come back.
#[test]
fn a_restore_checks_held_references_for_liveness_only() {
    let w = world();
    let admin = w.admin_session();
    let role = w.role(
        "rep",
        &Policy::default().allow(EntityKind::Account, rule(Scope::Own, Scope::Own)),
    );
    let rep = w.user("rep", role, fields! {});
    let territory = w.territory("North");
    let acc = admin
        .records()
        .create(
            EntityKind::Account,
            NewRecord {
                fields: fields! { "name" => "Mine", "territory_id" => territory },
                owner_id: Some(rep.user_id),
            },
        )
        .unwrap();
    let s = w.on(&rep);
    s.records()
        .delete(EntityKind::Account, acc.meta.id, None)
        .unwrap();
    s.records()
        .restore(EntityKind::Account, acc.meta.id)
        .unwrap();
    // A contact of an account that is now in the trash cannot be restored.
    let contact = admin
        .records()
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Rossi", "account_id" => acc.meta.id },
        )
        .unwrap();
    admin
        .records()
        .delete(EntityKind::Contact, contact.meta.id, None)
        .unwrap();
    admin
        .records()
        .delete(EntityKind::Account, acc.meta.id, None)
        .unwrap();
    let e = admin
        .records()
        .restore(EntityKind::Contact, contact.meta.id)
        .unwrap_err();
    assert_eq!(
        (e.kind, e.rule.as_deref()),
        (ErrorKind::Validation, Some("reference"))
    );
}

/// Why `Why::Own` cannot leak: a user's follow rows are their own; unfollowing touches only theirs.
#[test]
fn unfollowing_touches_only_the_users_own_follow() {
    let w = world();
    let admin = w.admin_session();
    let role = w.role(
        "rep",
        &Policy::default().allow(EntityKind::Account, rule(Scope::All, Scope::All)),
    );
    let rep = w.user("rep", role, fields! {});
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    admin
        .records()
        .follow(EntityKind::Account, acc.meta.id)
        .unwrap();
    let s = w.on(&rep);
    assert!(!s
        .records()
        .unfollow(EntityKind::Account, acc.meta.id)
        .unwrap());
    assert_eq!(
        admin
            .records()
            .followers(EntityKind::Account, acc.meta.id)
            .unwrap(),
        vec![w.admin.user_id]
    );
}

#[test]
fn sessions_and_the_crm_can_be_shared_between_threads() {
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<crm_core::Crm>();
    shared::<crm_core::Session>();
}

fn product_line(product: RecordId) -> Value {
    Value::Lines(vec![crm_core::LineItem {
        product_id: Some(product),
        description: "widget".into(),
        quantity: "1".parse().unwrap(),
        unit_price: "100".parse().unwrap(),
        discount_percent: "0".parse().unwrap(),
        tax_rate: "0".parse().unwrap(),
        unit_cost: None,
    }])
}

/// A product cost hidden from a user is neither copied by their orders nor shown on anyone's.
#[test]
fn a_hidden_product_cost_is_not_copied_or_shown_on_order_lines() {
    let w = world();
    let admin = w.admin_session();
    let role = w.role(
        "rep",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::All, Scope::All))
            .allow(EntityKind::Order, rule(Scope::All, Scope::All))
            .allow(EntityKind::Product, rule(Scope::All, Scope::Own))
            .field(EntityKind::Product, "unit_cost", FieldAccess::Hidden),
    );
    let rep = w.user("rep", role, fields! {});
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let prod = admin
        .records()
        .create(
            EntityKind::Product,
            fields! { "sku" => "W-1", "name" => "Widget", "list_price" => eur("100"), "unit_cost" => eur("61.37") },
        )
        .unwrap();
    let s = w.on(&rep);
    let mine = s
        .records()
        .create(
            EntityKind::Order,
            fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => product_line(prod.meta.id) },
        )
        .unwrap();
    // Not copied: even the administrator sees no cost on the rep's line.
    let stored = admin
        .records()
        .get(EntityKind::Order, mine.meta.id)
        .unwrap();
    assert!(!format!("{stored:?}").contains("61.37"), "{stored:?}");
    // Copied for the administrator's order, but never shown to the rep.
    let theirs = admin
        .records()
        .create(
            EntityKind::Order,
            fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => product_line(prod.meta.id) },
        )
        .unwrap();
    assert!(format!("{theirs:?}").contains("61.37"));
    let seen = s.records().get(EntityKind::Order, theirs.meta.id).unwrap();
    assert!(!format!("{seen:?}").contains("61.37"), "{seen:?}");
    let now = w.crm.now();
    let profit = s.analytics().profit(&crm_core::ProfitOptions {
        from: now - crm_core::chrono::Duration::days(1),
        to: now + crm_core::chrono::Duration::days(1),
        by: crm_core::ProfitDimension::Lifecycle,
        rates: None,
        rfm: Default::default(),
    });
    assert_eq!(profit.unwrap_err().kind, ErrorKind::PermissionDenied);
}

/// Lead conversion copies only what the converting user may see of the lead.
#[test]
fn lead_conversion_copies_no_hidden_lead_field() {
    let w = world();
    let all = [
        EntityKind::Lead,
        EntityKind::Account,
        EntityKind::Contact,
        EntityKind::Opportunity,
    ];
    let mut policy = Policy::default().field(EntityKind::Lead, "email", FieldAccess::Hidden);
    for k in all {
        policy = policy.allow(k, rule(Scope::All, Scope::All));
    }
    let rep = w.user("rep", w.role("rep", &policy), fields! {});
    let admin = w.admin_session();
    let lead = admin
        .records()
        .create(
            EntityKind::Lead,
            fields! { "last_name" => "Neri", "company" => "Neri SRL", "email" => "secret.lead@example.com" },
        )
        .unwrap();
    let lead = admin
        .sales()
        .transition_lead(lead.meta.id, lead.meta.version, "qualified", None)
        .unwrap();
    let conv = w
        .on(&rep)
        .sales()
        .convert_lead(lead.meta.id, lead.meta.version, Default::default())
        .unwrap();
    for r in [&conv.account, &conv.contact, &conv.opportunity] {
        let stored = admin.records().get(r.meta.kind, r.meta.id).unwrap();
        assert!(
            !format!("{stored:?}").contains("secret.lead"),
            "{} got the hidden e-mail",
            r.meta.kind
        );
    }
}

/// Merge takes only fields the user may write and moves references only where they may write.
#[test]
fn merge_stays_inside_the_users_reach() {
    let w = world();
    let policy = Policy::default()
        .allow(EntityKind::Account, rule(Scope::All, Scope::All))
        .allow(EntityKind::Contact, rule(Scope::Own, Scope::Own))
        .field(EntityKind::Account, "vat_number", FieldAccess::Hidden)
        .field(EntityKind::Account, "industry", FieldAccess::ReadOnly);
    let rep = w.user("rep", w.role("rep", &policy), fields! {});
    let admin = w.admin_session();
    let keep = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let dup = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "ACME dup", "vat_number" => "IT12345678901", "website" => "acme.example" },
        )
        .unwrap();
    // A contact of the duplicate the rep may not change (the administrator's).
    let theirs = admin
        .records()
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Bianchi", "account_id" => dup.meta.id },
        )
        .unwrap();
    let mine = w
        .on(&rep)
        .records()
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Rossi", "account_id" => dup.meta.id },
        )
        .unwrap();
    let out = w
        .on(&rep)
        .records()
        .merge(
            EntityKind::Account,
            keep.meta.id,
            keep.meta.version,
            dup.meta.id,
        )
        .unwrap();
    assert_eq!(out.kept.text("website"), Some("acme.example"));
    let stored = admin
        .records()
        .get(EntityKind::Account, keep.meta.id)
        .unwrap();
    assert!(stored.get("vat_number").is_null(), "hidden field written");
    assert_eq!(out.moved, vec![(EntityKind::Contact, mine.meta.id)]);
    let untouched = admin
        .records()
        .get(EntityKind::Contact, theirs.meta.id)
        .unwrap();
    assert_eq!(untouched.meta.version, theirs.meta.version);
    assert_eq!(untouched.reference("account_id"), Some(dup.meta.id));
    // A read-only value the merge would have to drop refuses it, and nothing is written.
    let keep2 = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "Beta" })
        .unwrap();
    let dup2 = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Beta dup", "industry" => "retail" },
        )
        .unwrap();
    let e = w
        .on(&rep)
        .records()
        .merge(
            EntityKind::Account,
            keep2.meta.id,
            keep2.meta.version,
            dup2.meta.id,
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert_eq!(e.field.as_deref(), Some("industry"));
    let still = admin
        .records()
        .get(EntityKind::Account, dup2.meta.id)
        .unwrap();
    assert!(still.meta.deleted_at.is_none());
}

/// Supervision shows only what the supervisor may read, without hidden values.
#[test]
fn user_activity_stays_inside_the_supervisors_reach() {
    let w = world();
    let boss_role = w.role(
        "boss",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::Own, Scope::Own))
            .allow(EntityKind::Contact, rule(Scope::All, Scope::All))
            .field(EntityKind::Contact, "email", FieldAccess::Hidden),
    );
    let agent_role = w.role(
        "agent",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::All, Scope::All))
            .allow(EntityKind::Contact, rule(Scope::All, Scope::All)),
    );
    let boss = w.user("boss", boss_role, fields! {});
    let agent = w.user(
        "agent",
        agent_role,
        fields! { "manager_id" => boss.user_id },
    );
    let a = w.on(&agent);
    let acc = a
        .records()
        .create(EntityKind::Account, fields! { "name" => "SECRET-ACCOUNT" })
        .unwrap();
    a.records()
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Rossi", "email" => "secret.mail@example.com" },
        )
        .unwrap();
    let now = w.crm.now();
    let seen = w
        .on(&boss)
        .audit()
        .user_activity(
            agent.user_id,
            now - crm_core::chrono::Duration::days(1),
            now + crm_core::chrono::Duration::days(1),
            None,
        )
        .unwrap();
    let text = format!("{seen:?}");
    assert!(!text.contains("SECRET-ACCOUNT"), "{text}");
    assert!(!text.contains("secret.mail"), "{text}");
    assert!(seen.iter().all(|e| e.record_id != acc.meta.id));
    assert!(seen.iter().any(|e| e.kind == EntityKind::Contact));
}

/// A segment's stored member list is shown only to users who read every record of its kind.
#[test]
fn stored_segment_members_are_hidden_from_scoped_users() {
    let w = world();
    let admin = w.admin_session();
    let role = w.role(
        "rep",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::Own, Scope::Own))
            .allow(EntityKind::Segment, rule(Scope::All, Scope::All)),
    );
    let rep = w.user("rep", role, fields! {});
    let hidden = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Theirs", "country" => "IT" },
        )
        .unwrap();
    let seg = admin
        .records()
        .create(
            EntityKind::Segment,
            fields! { "name" => "Italy", "entity" => "account", "definition" => "country = \"IT\"" },
        )
        .unwrap();
    admin.segments().refresh(seg.meta.id).unwrap();
    let by_admin = admin
        .records()
        .get(EntityKind::Segment, seg.meta.id)
        .unwrap();
    assert!(format!("{by_admin:?}").contains(&hidden.meta.id.to_string()));
    let s = w.on(&rep);
    let by_rep = s.records().get(EntityKind::Segment, seg.meta.id).unwrap();
    assert!(
        !format!("{by_rep:?}").contains(&hidden.meta.id.to_string()),
        "{by_rep:?}"
    );
    assert!(by_rep.get("member_count").is_null());
    assert_eq!(s.segments().count(seg.meta.id).unwrap(), 0);
    let history = s
        .audit()
        .history(EntityKind::Segment, seg.meta.id, None, None)
        .unwrap();
    assert!(
        !format!("{history:?}").contains(&hidden.meta.id.to_string()),
        "{history:?}"
    );
}

/// Lifecycles of a user who does not see every order come from the orders they may read.
#[test]
fn lifecycles_of_a_scoped_user_come_from_their_orders() {
    let w = world();
    let role = w.role(
        "rep",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::Own, Scope::Own))
            .allow(EntityKind::Order, rule(Scope::Own, Scope::Own)),
    );
    let rep = w.user("rep", role, fields! {});
    let s = w.on(&rep);
    let acc = s
        .records()
        .create(EntityKind::Account, fields! { "name" => "Mine" })
        .unwrap();
    let line = || {
        Value::Lines(vec![crm_core::LineItem {
            product_id: None,
            description: "x".into(),
            quantity: "1".parse().unwrap(),
            unit_price: "10".parse().unwrap(),
            discount_percent: "0".parse().unwrap(),
            tax_rate: "0".parse().unwrap(),
            unit_cost: None,
        }])
    };
    let now = w.crm.now();
    // The administrator's old order on the rep's account: invisible to the rep.
    w.admin_session()
        .records()
        .create(
            EntityKind::Order,
            fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => line(), "ordered_at" => now - crm_core::chrono::Duration::days(800) },
        )
        .unwrap();
    s.records()
        .create(
            EntityKind::Order,
            fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => line(), "ordered_at" => now - crm_core::chrono::Duration::days(5) },
        )
        .unwrap();
    let t = crm_core::analytics::LifecycleThresholds::default();
    let got = s.analytics().lifecycles(None, &t).unwrap();
    let mine = now - crm_core::chrono::Duration::days(5);
    assert_eq!(
        got,
        vec![(
            acc.meta.id,
            crm_core::analytics::lifecycle(Some(mine), Some(mine), now, &t)
        )]
    );
}

#[test]
fn a_page_of_zero_records_is_refused() {
    let w = world();
    let admin = w.admin_session();
    let e = admin
        .records()
        .list(EntityKind::Account, &ListRequest::default().limit(0))
        .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::InvalidQuery, Some("limit"))
    );
    assert_eq!(
        admin.outbox().pending(0, 0).unwrap_err().kind,
        ErrorKind::InvalidQuery
    );
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "A" })
        .unwrap();
    assert_eq!(
        admin
            .audit()
            .history(EntityKind::Account, acc.meta.id, None, Some(0))
            .unwrap_err()
            .kind,
        ErrorKind::InvalidQuery
    );
    // Above the largest page the answer is the largest page.
    assert_eq!(
        admin
            .records()
            .list(EntityKind::Account, &ListRequest::default().limit(u32::MAX))
            .unwrap()
            .items
            .len(),
        1
    );
}

// ----------------------------------------------------------------- from the review of the door

fn one_line(qty: &str, price: &str, discount: &str) -> Value {
    Value::Lines(vec![crm_core::LineItem {
        product_id: None,
        description: "x".into(),
        quantity: qty.parse().unwrap(),
        unit_price: price.parse().unwrap(),
        discount_percent: discount.parse().unwrap(),
        tax_rate: "0".parse().unwrap(),
        unit_cost: None,
    }])
}

/// Restoring an old version is an update like any other: it cannot put back a role, and a quote's
/// content stays frozen once it is submitted.
#[test]
fn restoring_a_version_follows_the_rules_of_an_update() {
    let w = world();
    let admin = w.admin_session();
    let role = w.role(
        "self",
        &Policy::default()
            .allow(EntityKind::User, rule(Scope::Own, Scope::Own))
            .allow(EntityKind::Role, rule(Scope::All, Scope::Own)),
    );
    let admin_role = admin
        .records()
        .list(
            EntityKind::Role,
            &ListRequest::filter(Filter::eq("name", "Administrator")),
        )
        .unwrap()
        .items[0]
        .meta
        .id;
    // Once an administrator, now demoted.
    let u = admin
        .records()
        .create(
            EntityKind::User,
            fields! { "username" => "was_admin", "role_id" => admin_role },
        )
        .unwrap();
    let u = admin
        .records()
        .update(
            EntityKind::User,
            u.meta.id,
            u.meta.version,
            fields! { "role_id" => role },
        )
        .unwrap();
    let me = w.admin.as_user(u.meta.id);
    let e = w
        .on(&me)
        .audit()
        .restore_version(EntityKind::User, u.meta.id, u.meta.version, 1)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e:?}");
    let after = admin.records().get(EntityKind::User, u.meta.id).unwrap();
    assert_eq!(after.reference("role_id"), Some(role));

    // A quote approved at a small discount cannot go back to its big one.
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let q = admin
        .records()
        .create(
            EntityKind::Quote,
            fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => one_line("1", "1000", "90"), "auto_send" => false },
        )
        .unwrap();
    let q = admin
        .records()
        .update(
            EntityKind::Quote,
            q.meta.id,
            q.meta.version,
            fields! { "lines" => one_line("1", "1000", "5") },
        )
        .unwrap();
    let q = admin
        .sales()
        .submit_quote(q.meta.id, q.meta.version, None)
        .unwrap();
    assert_eq!(q.text("status"), Some("approved"));
    // Bringing back the old lines is a change of content: the quote returns to draft and needs
    // approval again; it cannot be sent as it is.
    let r = admin
        .audit()
        .restore_version(EntityKind::Quote, q.meta.id, q.meta.version, 1)
        .unwrap();
    assert_eq!(r.text("status"), Some("draft"));
    assert!(admin.sales().send_quote(r.meta.id, r.meta.version).is_err());
}

/// Amounts that overflow a decimal are refused, never a panic; line costs are checked like any
/// amount; a rate table's conversion is checked.
#[test]
fn amounts_beyond_a_decimal_are_refused_not_a_panic() {
    let w = world();
    let admin = w.admin_session();
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    for (q, p, d) in [
        ("100000000000000", "10000000000000", "100"),
        ("900000000000", "1000000", "0"),
    ] {
        let r = admin.records().create(
            EntityKind::Quote,
            fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => one_line(q, p, d) },
        );
        assert_eq!(r.unwrap_err().kind, ErrorKind::Validation);
    }
    let mut lines = one_line("1", "10", "0");
    if let Value::Lines(l) = &mut lines {
        l[0].unit_cost = Some(crm_core::Decimal::MAX);
    }
    let r = admin.records().create(
        EntityKind::Order,
        fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => lines },
    );
    assert_eq!(r.unwrap_err().kind, ErrorKind::Validation);
    let eur: crm_core::Currency = "EUR".parse().unwrap();
    let rates =
        crm_core::RateTable::new(eur).with_rate("USD".parse().unwrap(), crm_core::Decimal::MAX);
    assert!(rates.convert(Money::parse("100", "USD").unwrap()).is_err());
}

/// A JSON value nested too deep is refused when written, so everything stored reads back.
#[test]
fn json_nested_too_deep_is_refused_on_write() {
    let w = world();
    let admin = w.admin_session();
    let mut j = serde_json::json!("x");
    for _ in 0..(crm_core::MAX_JSON_DEPTH + 5) {
        j = serde_json::json!([j]);
    }
    let r = admin.records().create(
        EntityKind::Segment,
        fields! { "name" => "deep", "entity" => "account", "kind" => "static", "member_ids" => Value::Json(j) },
    );
    let e = r.unwrap_err();
    assert_eq!(
        (e.kind, e.rule.as_deref()),
        (ErrorKind::Validation, Some("too_deep"))
    );
    assert!(admin.audit().verify().unwrap().ok);
}

/// Rows about other records — stage transitions, follows, shares — are not read as such by users
/// who may not configure them.
#[test]
fn transitions_follows_and_shares_are_not_read_directly() {
    let w = world();
    let mut p = Policy::default();
    p.objects.insert(
        "*".into(),
        ObjectRule::new(&[Action::Read], &[Scope::All], &[Scope::Own]),
    );
    let reader = w.user("reader", w.role("reader", &p), fields! {});
    let s = w.on(&reader);
    for kind in [
        EntityKind::Transition,
        EntityKind::Follow,
        EntityKind::Share,
    ] {
        assert_eq!(
            s.records().count(kind, None).unwrap_err().kind,
            ErrorKind::PermissionDenied,
            "{kind}"
        );
        assert_eq!(
            s.records()
                .list(kind, &ListRequest::default())
                .unwrap_err()
                .kind,
            ErrorKind::PermissionDenied,
            "{kind}"
        );
    }
    assert!(w
        .admin_session()
        .records()
        .count(EntityKind::Transition, None)
        .is_ok());
}

/// Deleting oneself is not reached through the self-reach on one's own user record.
#[test]
fn a_user_cannot_delete_their_own_user_record_through_their_own_reach() {
    let w = world();
    let role = w.role(
        "self",
        &Policy::default().allow(EntityKind::User, rule(Scope::Own, Scope::Own)),
    );
    let me = w.user("me", role, fields! {});
    let r = w
        .on(&me)
        .records()
        .delete(EntityKind::User, me.user_id, None);
    assert_eq!(r.unwrap_err().kind, ErrorKind::PermissionDenied);
    assert!(w.crm.session(&me).is_ok());
}

/// History at the end of time answers, it does not panic.
#[test]
fn as_of_the_last_instant_answers() {
    let w = world();
    let admin = w.admin_session();
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let r = admin
        .audit()
        .as_of(
            EntityKind::Account,
            acc.meta.id,
            crm_core::chrono::DateTime::<crm_core::chrono::Utc>::MAX_UTC,
        )
        .unwrap();
    assert_eq!(r.unwrap().text("name"), Some("ACME"));
}

/// Merge moves a reference only through fields the user may write.
#[test]
fn merge_leaves_read_only_references_alone() {
    let w = world();
    let role = w.role(
        "rep",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::All, Scope::All))
            .allow(EntityKind::Contact, rule(Scope::All, Scope::All))
            .field(EntityKind::Contact, "account_id", FieldAccess::ReadOnly),
    );
    let rep = w.user("rep", role, fields! {});
    let admin = w.admin_session();
    let keep = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let dup = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME 2" })
        .unwrap();
    let c = admin
        .records()
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Rossi", "account_id" => dup.meta.id },
        )
        .unwrap();
    let out = w
        .on(&rep)
        .records()
        .merge(
            EntityKind::Account,
            keep.meta.id,
            keep.meta.version,
            dup.meta.id,
        )
        .unwrap();
    assert!(out.moved.is_empty());
    let c = admin.records().get(EntityKind::Contact, c.meta.id).unwrap();
    assert_eq!(c.reference("account_id"), Some(dup.meta.id));
}

/// A line cost is the product's: a writer from whom it is hidden neither sets one nor wipes the
/// one kept.
#[test]
fn line_costs_cannot_be_typed_or_wiped_by_those_who_may_not_see_them() {
    let w = world();
    let admin = w.admin_session();
    let role = w.role(
        "rep",
        &Policy::default()
            .allow(EntityKind::Account, rule(Scope::All, Scope::All))
            .allow(EntityKind::Order, rule(Scope::All, Scope::All))
            .allow(EntityKind::Product, rule(Scope::All, Scope::Own))
            .field(EntityKind::Product, "unit_cost", FieldAccess::Hidden),
    );
    let rep = w.user("rep", role, fields! {});
    let acc = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "ACME" })
        .unwrap();
    let prod = admin
        .records()
        .create(
            EntityKind::Product,
            fields! { "sku" => "W-2", "name" => "Widget", "list_price" => eur("100"), "unit_cost" => eur("61.37") },
        )
        .unwrap();
    let s = w.on(&rep);
    let mut typed = product_line(prod.meta.id);
    if let Value::Lines(l) = &mut typed {
        l[0].unit_cost = Some("1".parse().unwrap());
    }
    let e = s
        .records()
        .create(
            EntityKind::Order,
            fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => typed },
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    // The administrator's order keeps its cost when the rep edits it.
    let o = admin
        .records()
        .create(
            EntityKind::Order,
            fields! { "account_id" => acc.meta.id, "currency" => "EUR", "lines" => product_line(prod.meta.id) },
        )
        .unwrap();
    let seen = s.records().get(EntityKind::Order, o.meta.id).unwrap();
    s.records()
        .update(
            EntityKind::Order,
            o.meta.id,
            seen.meta.version,
            fields! { "lines" => seen.get("lines").clone(), "number" => "PO-1" },
        )
        .unwrap();
    let stored = admin.records().get(EntityKind::Order, o.meta.id).unwrap();
    assert!(format!("{stored:?}").contains("61.37"), "{stored:?}");
}
