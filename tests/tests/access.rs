//! Access control: the role × scope × action × record matrix, external users, sharing, field-level
//! security, explanations, and a property test against an independent reference model.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failures should be loud

use std::collections::BTreeSet;

use crm_core::{
    fields, Action, Context, EntityKind, ErrorKind, FieldAccess, Filter, Grantee, ListRequest,
    ObjectRule, Policy, RecordId, Scope, TenantId, Value,
};
use crm_tests::{ids, world, World};
use proptest::prelude::*;

const ALL_CRUD: &[Action] = &[
    Action::Create,
    Action::Read,
    Action::Update,
    Action::Delete,
    Action::Export,
];

fn rep_policy(read: &[Scope], write: &[Scope]) -> Policy {
    Policy::default()
        .allow(EntityKind::Account, ObjectRule::new(ALL_CRUD, read, write))
        .allow(EntityKind::Contact, ObjectRule::new(ALL_CRUD, read, write))
}

struct Org {
    w: World,
    rep: Context,
    /// Record label → id.
    records: Vec<(&'static str, RecordId)>,
    other_tenant_record: RecordId,
}

/// The organisation of the matrix: rep R (team A, territory T1, manager M), teammate P (team A),
/// subordinate S (team B, reports to R), other O (team B, territory T2).
fn org(scope: Scope) -> Org {
    let w = world();
    let admin = w.admin_session();
    let t1 = w.territory("North");
    let t2 = w.territory("South");
    let team_a = w.team("A");
    let team_b = w.team("B");
    let plain = w.role("plain", &rep_policy(&[Scope::Own], &[Scope::Own]));
    let role = w.role("tested", &rep_policy(&[scope], &[scope]));
    let m = w.user("m", plain, fields! {});
    let rep = w.user("r", role, fields! { "team_ids" => ids(&[team_a]), "territory_ids" => ids(&[t1]), "manager_id" => m.user_id });
    let p = w.user("p", plain, fields! { "team_ids" => ids(&[team_a]) });
    let s = w.user(
        "s",
        plain,
        fields! { "team_ids" => ids(&[team_b]), "manager_id" => rep.user_id },
    );
    let o = w.user(
        "o",
        plain,
        fields! { "team_ids" => ids(&[team_b]), "territory_ids" => ids(&[t2]) },
    );
    let mk = |name: &str, owner: RecordId, territory: RecordId| {
        admin
            .records()
            .create(
                EntityKind::Account,
                crm_core::NewRecord {
                    fields: fields! { "name" => name, "territory_id" => territory },
                    owner_id: Some(owner),
                },
            )
            .unwrap()
            .meta
            .id
    };
    let records = vec![
        ("own", mk("own", rep.user_id, t2)),
        ("teammate", mk("teammate", p.user_id, t2)),
        ("subordinate", mk("subordinate", s.user_id, t2)),
        ("territory", mk("territory", o.user_id, t1)),
        ("other", mk("other", o.user_id, t2)),
        ("shared", mk("shared", o.user_id, t2)),
    ];
    admin
        .access()
        .share(
            EntityKind::Account,
            records[5].1,
            Grantee::User(rep.user_id),
            false,
            None,
        )
        .unwrap();
    let globex = TenantId::new("globex").unwrap();
    let b = w
        .crm
        .bootstrap(&globex, "boss", Default::default())
        .unwrap();
    let other_tenant_record = w
        .on(&b)
        .records()
        .create(EntityKind::Account, fields! { "name" => "other tenant" })
        .unwrap()
        .meta
        .id;
    Org {
        w,
        rep,
        records,
        other_tenant_record,
    }
}

#[test]
fn matrix_of_scopes_actions_and_records() {
    // Expected (read, update) per record, for each scope. Written out as a table.
    #[rustfmt::skip]
    type Row = (&'static str, bool, bool);
    let table: &[(Scope, &[Row])] = &[
        (
            Scope::Own,
            &[
                ("own", true, true),
                ("teammate", false, false),
                ("subordinate", false, false),
                ("territory", false, false),
                ("other", false, false),
                ("shared", true, false),
            ],
        ),
        (
            Scope::Team,
            &[
                ("own", true, true),
                ("teammate", true, true),
                ("subordinate", false, false),
                ("territory", false, false),
                ("other", false, false),
                ("shared", true, false),
            ],
        ),
        (
            Scope::Subordinates,
            &[
                ("own", true, true),
                ("teammate", false, false),
                ("subordinate", true, true),
                ("territory", false, false),
                ("other", false, false),
                ("shared", true, false),
            ],
        ),
        (
            Scope::Territory,
            &[
                ("own", true, true),
                ("teammate", false, false),
                ("subordinate", false, false),
                ("territory", true, true),
                ("other", false, false),
                ("shared", true, false),
            ],
        ),
        (
            Scope::All,
            &[
                ("own", true, true),
                ("teammate", true, true),
                ("subordinate", true, true),
                ("territory", true, true),
                ("other", true, true),
                ("shared", true, true),
            ],
        ),
    ];
    for (scope, rows) in table {
        let o = org(*scope);
        let rep = o.w.on(&o.rep);
        let listed: BTreeSet<String> = rep
            .records()
            .list(EntityKind::Account, &ListRequest::default())
            .unwrap()
            .items
            .iter()
            .map(|r| r.label())
            .collect();
        for (label, read, update) in rows.iter() {
            let id = o.records.iter().find(|(l, _)| l == label).unwrap().1;
            let got = rep.records().get(EntityKind::Account, id);
            assert_eq!(got.is_ok(), *read, "{scope:?} read {label}");
            if !read {
                assert_eq!(
                    got.unwrap_err().kind,
                    ErrorKind::NotFound,
                    "{scope:?} {label}: existence must not leak"
                );
            }
            assert_eq!(listed.contains(*label), *read, "{scope:?} list {label}");
            let upd =
                rep.records()
                    .update(EntityKind::Account, id, 1, fields! { "city" => "Bari" });
            assert_eq!(upd.is_ok(), *update, "{scope:?} update {label}: {upd:?}");
            if let Err(e) = upd {
                let expected = if *read {
                    ErrorKind::PermissionDenied
                } else {
                    ErrorKind::NotFound
                };
                assert_eq!(e.kind, expected, "{scope:?} update {label}");
                if *read {
                    assert_eq!(e.action.as_deref(), Some("update"));
                }
            }
            let del = rep.records().delete(EntityKind::Account, id, None);
            assert_eq!(del.is_ok(), *update, "{scope:?} delete {label}");
            if del.is_ok() {
                rep.records().restore(EntityKind::Account, id).unwrap();
            }
        }
        assert_eq!(
            rep.records().count(EntityKind::Account, None).unwrap() as usize,
            rows.iter().filter(|r| r.1).count(),
            "{scope:?} count"
        );
        assert_eq!(
            rep.records()
                .get(EntityKind::Account, o.other_tenant_record)
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        // No object permission: nothing at all.
        let e = rep
            .records()
            .list(EntityKind::Opportunity, &ListRequest::default())
            .unwrap_err();
        assert_eq!(
            (e.kind, e.action.as_deref()),
            (ErrorKind::PermissionDenied, Some("read"))
        );
    }
}

#[test]
fn read_and_write_scopes_are_separate() {
    let w = world();
    let team = w.team("A");
    let role = w.role("rep", &rep_policy(&[Scope::Team], &[Scope::Own]));
    let a_ctx = w.user("a", role, fields! { "team_ids" => ids(&[team]) });
    let a = w.on(&a_ctx);
    let b_ctx = w.user("b", role, fields! { "team_ids" => ids(&[team]) });
    let b = w.on(&b_ctx);
    let acc = b
        .records()
        .create(EntityKind::Account, fields! { "name" => "B's" })
        .unwrap();
    assert!(a.records().get(EntityKind::Account, acc.meta.id).is_ok());
    let e = a
        .records()
        .update(
            EntityKind::Account,
            acc.meta.id,
            1,
            fields! { "city" => "X" },
        )
        .unwrap_err();
    assert_eq!(
        (e.kind, e.action.as_deref(), e.rule.as_deref()),
        (
            ErrorKind::PermissionDenied,
            Some("update"),
            Some("record_scope")
        )
    );
    assert!(b
        .records()
        .update(
            EntityKind::Account,
            acc.meta.id,
            1,
            fields! { "city" => "X" }
        )
        .is_ok());
}

#[test]
fn external_users_see_only_what_is_shared_with_them_or_their_partner() {
    let w = world();
    let admin = w.admin_session();
    let partner = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Partner SRL", "roles" => Value::List(vec!["partner".into()]) },
        )
        .unwrap();
    // External users' field rules are an allow-list: the partner role grants the name.
    let role = w.role(
        "partner",
        &rep_policy(&[Scope::All], &[Scope::All])
            .field(EntityKind::Account, "name", FieldAccess::Visible)
            .field(EntityKind::Account, "city", FieldAccess::Visible),
    );
    let x_ctx = w.user(
        "x",
        role,
        fields! { "user_type" => "external", "partner_account_id" => partner.meta.id },
    );
    let x = w.on(&x_ctx);
    let to_partner = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "via partner" })
        .unwrap();
    let to_user = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "via user" })
        .unwrap();
    let hidden = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "not shared" })
        .unwrap();
    admin
        .access()
        .share(
            EntityKind::Account,
            to_partner.meta.id,
            Grantee::Partner(partner.meta.id),
            false,
            None,
        )
        .unwrap();
    admin
        .access()
        .share(
            EntityKind::Account,
            to_user.meta.id,
            Grantee::User(x_ctx.user_id),
            true,
            None,
        )
        .unwrap();
    let seen: BTreeSet<String> = x
        .records()
        .list(EntityKind::Account, &ListRequest::default())
        .unwrap()
        .items
        .iter()
        .map(|r| r.label())
        .collect();
    assert_eq!(
        seen,
        BTreeSet::from(["via partner".to_owned(), "via user".to_owned()]),
        "even a scope of `all` gives external users nothing more"
    );
    assert_eq!(
        x.records()
            .get(EntityKind::Account, hidden.meta.id)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        x.records()
            .update(
                EntityKind::Account,
                hidden.meta.id,
                1,
                fields! { "city" => "x" }
            )
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert!(x
        .records()
        .update(
            EntityKind::Account,
            to_user.meta.id,
            1,
            fields! { "city" => "x" }
        )
        .is_ok());
    let e = x
        .records()
        .update(
            EntityKind::Account,
            to_partner.meta.id,
            1,
            fields! { "city" => "x" },
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    // Shares expire.
    let until = w.crm.now() + crm_core::chrono::Duration::hours(1);
    let temp = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "temporary" })
        .unwrap();
    admin
        .access()
        .share(
            EntityKind::Account,
            temp.meta.id,
            Grantee::User(x_ctx.user_id),
            false,
            Some(until),
        )
        .unwrap();
    assert!(x.records().get(EntityKind::Account, temp.meta.id).is_ok());
    w.clock.advance(crm_core::chrono::Duration::hours(2));
    assert_eq!(
        x.records()
            .get(EntityKind::Account, temp.meta.id)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
}

#[test]
fn hidden_fields_never_leave_and_cannot_be_probed() {
    let w = world();
    let admin = w.admin_session();
    admin
        .records()
        .create(
            EntityKind::CustomField,
            fields! { "entity" => "account", "name" => "score", "field_type" => "int" },
        )
        .unwrap();
    let policy = rep_policy(&[Scope::All], &[Scope::All])
        .field(EntityKind::Account, "vat_number", FieldAccess::Hidden)
        .field(EntityKind::Account, "custom.score", FieldAccess::Hidden)
        .field(EntityKind::Account, "industry", FieldAccess::ReadOnly);
    let role = w.role("restricted", &policy);
    let u_ctx = w.user("u", role, fields! {});
    let u = w.on(&u_ctx);
    let acc = admin.records().create(EntityKind::Account, fields! { "name" => "ACME", "vat_number" => "IT123", "industry" => "retail", "custom.score" => 7_i64 }).unwrap();
    let acc = admin
        .records()
        .update(
            EntityKind::Account,
            acc.meta.id,
            1,
            fields! { "vat_number" => "IT456", "custom.score" => 9_i64 },
        )
        .unwrap();

    let r = u.records().get(EntityKind::Account, acc.meta.id).unwrap();
    assert!(!r.fields.contains_key("vat_number") && !r.custom.contains_key("score"));
    assert_eq!(r.text("industry"), Some("retail"));
    let listed = &u
        .records()
        .list(EntityKind::Account, &ListRequest::default())
        .unwrap()
        .items[0];
    assert!(!listed.fields.contains_key("vat_number"));
    let history = u
        .audit()
        .history(EntityKind::Account, acc.meta.id, None, None)
        .unwrap();
    assert!(history
        .entries
        .iter()
        .flat_map(|e| &e.changes)
        .all(|c| c.field != "vat_number" && c.field != "custom.score"));
    let then = u
        .audit()
        .as_of(EntityKind::Account, acc.meta.id, w.crm.now())
        .unwrap()
        .unwrap();
    assert!(!then.fields.contains_key("vat_number"));

    for (what, res) in [
        (
            "filter",
            u.records()
                .count(
                    EntityKind::Account,
                    Some(&Filter::eq("vat_number", "IT456")),
                )
                .map(|_| ()),
        ),
        (
            "custom filter",
            u.records()
                .count(
                    EntityKind::Account,
                    Some(&Filter::eq("custom.score", 9_i64)),
                )
                .map(|_| ()),
        ),
        (
            "sort",
            u.records()
                .list(
                    EntityKind::Account,
                    &ListRequest::default().sort_by("vat_number", false),
                )
                .map(|_| ()),
        ),
        (
            "export",
            u.records()
                .export(
                    EntityKind::Account,
                    None,
                    Some(&["name", "vat_number"]),
                    &mut |_| Ok(()),
                )
                .map(|_| ()),
        ),
    ] {
        let e = res.expect_err(what);
        assert_eq!(
            (e.kind, e.rule.as_deref()),
            (ErrorKind::PermissionDenied, Some("hidden_field")),
            "{what}"
        );
    }
    let mut exported = Vec::new();
    u.records()
        .export(EntityKind::Account, None, None, &mut |r| {
            exported.push(r);
            Ok(())
        })
        .unwrap();
    assert!(exported
        .iter()
        .all(|r| !r.fields.contains_key("vat_number")));

    // A read-only field refuses the whole update.
    let e = u
        .records()
        .update(
            EntityKind::Account,
            acc.meta.id,
            acc.meta.version,
            fields! { "city" => "Roma", "industry" => "bank" },
        )
        .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref(), e.rule.as_deref()),
        (
            ErrorKind::PermissionDenied,
            Some("industry"),
            Some("read_only_field")
        )
    );
    let now = admin
        .records()
        .get(EntityKind::Account, acc.meta.id)
        .unwrap();
    assert_eq!(
        (now.meta.version, now.text("city")),
        (acc.meta.version, None)
    );

    // Access review: which roles read the field.
    let roles = admin
        .access()
        .roles_reading_field(EntityKind::Account, "vat_number")
        .unwrap();
    assert!(roles.iter().any(|(_, n, _)| n == "Administrator"));
    assert!(!roles.iter().any(|(_, n, _)| n == "restricted"));
    let ro = admin
        .access()
        .roles_reading_field(EntityKind::Account, "industry")
        .unwrap();
    assert!(ro
        .iter()
        .any(|(_, n, a)| n == "restricted" && a == "read_only"));
}

#[test]
fn explain_and_access_review_say_which_rule_decided() {
    let o = org(Scope::Team);
    let rep = o.w.on(&o.rep);
    let admin = o.w.admin_session();
    let teammate = o.records[1].1;
    let other = o.records[4].1;
    let shared = o.records[5].1;
    let d = admin
        .access()
        .explain(o.rep.user_id, Action::Read, EntityKind::Account, teammate)
        .unwrap();
    assert!(d.allowed && d.reason.contains("teammate"), "{}", d.reason);
    let d = admin
        .access()
        .explain(o.rep.user_id, Action::Read, EntityKind::Account, other)
        .unwrap();
    assert!(!d.allowed && d.rule == "record_scope", "{}", d.reason);
    let d = admin
        .access()
        .explain(o.rep.user_id, Action::Read, EntityKind::Account, shared)
        .unwrap();
    assert!(d.allowed && d.rule == "share", "{}", d.reason);
    let d = admin
        .access()
        .explain(o.rep.user_id, Action::Update, EntityKind::Account, shared)
        .unwrap();
    assert!(!d.allowed, "{}", d.reason);
    // A user may ask about themselves, not about others.
    assert!(rep
        .access()
        .explain(o.rep.user_id, Action::Read, EntityKind::Account, teammate)
        .is_ok());
    assert_eq!(
        rep.access()
            .explain(
                o.w.admin.user_id,
                Action::Read,
                EntityKind::Account,
                teammate
            )
            .unwrap_err()
            .kind,
        ErrorKind::PermissionDenied
    );
    let review = admin
        .access()
        .who_can_read(EntityKind::Account, teammate)
        .unwrap();
    let readers: BTreeSet<&str> = review
        .iter()
        .filter(|r| r.decision.allowed)
        .map(|r| r.username.as_str())
        .collect();
    assert_eq!(readers, BTreeSet::from(["admin", "p", "r"]));
}

#[test]
fn configuration_changes_need_configure_and_are_recorded() {
    let w = world();
    let admin = w.admin_session();
    let role = w.role("rep", &rep_policy(&[Scope::All], &[Scope::All]));
    let u_ctx = w.user("u", role, fields! {});
    let u = w.on(&u_ctx);
    let e = u
        .records()
        .create(
            EntityKind::Role,
            fields! { "name" => "sneaky", "policy" => Value::Json(Policy::admin().to_json()) },
        )
        .unwrap_err();
    assert_eq!(
        (e.kind, e.action.as_deref()),
        (ErrorKind::PermissionDenied, Some("create"))
    );
    let e = u
        .records()
        .update(
            EntityKind::User,
            u_ctx.user_id,
            1,
            fields! { "role_id" => role },
        )
        .unwrap_err();
    assert!(matches!(
        e.kind,
        ErrorKind::PermissionDenied | ErrorKind::NotFound
    ));
    let h = admin
        .audit()
        .history(EntityKind::Role, role, None, None)
        .unwrap();
    assert_eq!(h.entries[0].operation, crm_core::Operation::Configure);
    // Changing a role's policy takes effect at once.
    let r = admin.records().get(EntityKind::Role, role).unwrap();
    admin
        .records()
        .update(
            EntityKind::Role,
            role,
            r.meta.version,
            fields! { "policy" => Value::Json(Policy::default().to_json()) },
        )
        .unwrap();
    assert_eq!(
        u.records()
            .count(EntityKind::Account, None)
            .unwrap_err()
            .kind,
        ErrorKind::PermissionDenied
    );
}

// ---------------------------------------------------------------------------------------------
// Property test: random organisations against an independent reference model.

/// Teams, manager (an earlier user), territories, read scopes, write scopes, external.
type ModelUser = (
    Vec<usize>,
    Option<usize>,
    Vec<usize>,
    Vec<Scope>,
    Vec<Scope>,
    bool,
);

#[derive(Debug, Clone)]
struct Model {
    /// Per user: teams, manager (an earlier user), territories, read scopes, write scopes, external.
    users: Vec<ModelUser>,
    /// Per account: owner, territory.
    accounts: Vec<(usize, Option<usize>)>,
    /// (account, user, edit).
    shares: Vec<(usize, usize, bool)>,
    hide_city: Vec<bool>,
    /// Per user: whether their role's field rules are an allow-list (external users' roles are one
    /// whatever this says: that is their default).
    allow_list: Vec<bool>,
}

impl Model {
    /// Whether user `u`'s field rules are an allow-list.
    fn allow_list(&self, u: usize) -> bool {
        self.allow_list[u] || self.users[u].5
    }
}

fn scope_strategy() -> impl Strategy<Value = Vec<Scope>> {
    proptest::collection::vec(
        prop_oneof![
            Just(Scope::Own),
            Just(Scope::Team),
            Just(Scope::Subordinates),
            Just(Scope::Territory),
            Just(Scope::All)
        ],
        0..3,
    )
}

fn model_strategy() -> impl Strategy<Value = Model> {
    (2usize..6, 0usize..10).prop_flat_map(|(n_users, n_accounts)| {
        let user = (
            proptest::collection::vec(0usize..2, 0..2),
            proptest::option::of(0usize..n_users),
            proptest::collection::vec(0usize..2, 0..2),
            scope_strategy(),
            scope_strategy(),
            proptest::bool::weighted(0.2),
        );
        (
            proptest::collection::vec(user, n_users),
            proptest::collection::vec(
                (0usize..n_users, proptest::option::of(0usize..2)),
                n_accounts,
            ),
            proptest::collection::vec(
                (0usize..n_accounts.max(1), 0usize..n_users, any::<bool>()),
                0..4,
            ),
            proptest::collection::vec(any::<bool>(), n_users),
            proptest::collection::vec(proptest::bool::weighted(0.3), n_users),
        )
            .prop_map(
                move |(mut users, accounts, shares, hide_city, allow_list)| {
                    for (i, u) in users.iter_mut().enumerate() {
                        // Managers come earlier in the list, so the hierarchy is a forest.
                        u.1 = u.1.filter(|m| *m < i);
                    }
                    let shares = shares
                        .into_iter()
                        .filter(|(a, _, _)| *a < accounts.len())
                        .collect();
                    Model {
                        users,
                        accounts,
                        shares,
                        hide_city,
                        allow_list,
                    }
                },
            )
    })
}

impl Model {
    fn below(&self, boss: usize, user: usize) -> bool {
        let mut cur = Some(user);
        let mut steps = 0;
        while let Some(c) = cur {
            if c == boss {
                return true;
            }
            cur = self.users[c].1;
            steps += 1;
            if steps > self.users.len() {
                return false;
            }
        }
        false
    }

    fn reaches(&self, u: usize, a: usize, write: bool) -> bool {
        let (owner, territory) = self.accounts[a];
        let user = &self.users[u];
        if owner == u {
            return true;
        }
        let shared = self
            .shares
            .iter()
            .any(|(sa, su, edit)| *sa == a && *su == u && (*edit || !write));
        if shared {
            return true;
        }
        if user.5 {
            return false;
        }
        let scopes = if write { &user.4 } else { &user.3 };
        scopes.iter().any(|s| match s {
            Scope::Own => false,
            Scope::All => true,
            Scope::Team => user.0.iter().any(|t| self.users[owner].0.contains(t)),
            Scope::Subordinates => self.below(u, owner),
            Scope::Territory => territory.is_some_and(|t| user.2.contains(&t)),
        })
    }
}

/// How many random organisations the reference-model test tries: `CRM_PROPTEST_CASES`, else 1000.
fn model_cases() -> u32 {
    std::env::var("CRM_PROPTEST_CASES").map_or(1000, |v| {
        v.parse()
            .expect("CRM_PROPTEST_CASES must be a whole number of cases")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: model_cases(), .. ProptestConfig::default() })]
    #[test]
    fn crm_agrees_with_the_reference_model(m in model_strategy()) {
        let w = world();
        let admin = w.admin_session();
        let teams = [w.team("t0"), w.team("t1")];
        let territories = [w.territory("z0"), w.territory("z1")];
        let partner = admin.records().create(EntityKind::Account, fields! { "name" => "partner" }).unwrap().meta.id;
        let mut ctxs: Vec<Context> = Vec::new();
        for (i, u) in m.users.iter().enumerate() {
            let mut policy = rep_policy(&u.3, &u.4);
            if m.allow_list(i) {
                // Granted: name and website, and city unless it is hidden.
                if m.allow_list[i] {
                    policy = policy.field_mode(crm_core::FieldMode::AllowList);
                }
                policy = policy
                    .field(EntityKind::Account, "name", FieldAccess::Visible)
                    .field(EntityKind::Account, "website", FieldAccess::Visible);
                if !m.hide_city[i] {
                    policy = policy.field(EntityKind::Account, "city", FieldAccess::Visible);
                }
            } else if m.hide_city[i] {
                policy = policy.field(EntityKind::Account, "city", FieldAccess::Hidden);
            }
            let role = w.role(&format!("role{i}"), &policy);
            let mut f = fields! {
                "team_ids" => ids(&u.0.iter().map(|t| teams[*t]).collect::<Vec<_>>()),
                "territory_ids" => ids(&u.2.iter().map(|t| territories[*t]).collect::<Vec<_>>()),
            };
            if let Some(mgr) = u.1 {
                f.insert("manager_id".into(), Value::Ref(ctxs[mgr].user_id));
            }
            if u.5 {
                f.insert("user_type".into(), Value::from("external"));
                f.insert("partner_account_id".into(), Value::Ref(partner));
            }
            ctxs.push(w.user(&format!("u{i}"), role, f));
        }
        let mut accounts = Vec::new();
        for (i, (owner, territory)) in m.accounts.iter().enumerate() {
            let mut f = fields! { "name" => format!("a{i}"), "city" => "Pisa", "industry" => "retail" };
            if let Some(t) = territory {
                f.insert("territory_id".into(), Value::Ref(territories[*t]));
            }
            accounts.push(admin.records().create(EntityKind::Account, crm_core::NewRecord { fields: f, owner_id: Some(ctxs[*owner].user_id) }).unwrap().meta.id);
        }
        for (a, u, edit) in &m.shares {
            admin.access().share(EntityKind::Account, accounts[*a], Grantee::User(ctxs[*u].user_id), *edit, None).unwrap();
        }
        for (u, ctx) in ctxs.iter().enumerate() {
            let user = w.on(ctx);
            let expected: BTreeSet<RecordId> = (0..accounts.len()).filter(|a| m.reaches(u, *a, false)).map(|a| accounts[a]).collect();
            let page = user.records().list(EntityKind::Account, &ListRequest::default().limit(1000)).unwrap();
            // The partner organisation's own account is outside the model; leave it out.
            let listed: BTreeSet<RecordId> = page.items.iter().map(|r| r.meta.id).filter(|id| accounts.contains(id)).collect();
            prop_assert_eq!(&listed, &expected, "user {} list", u);
            prop_assert_eq!(user.records().count(EntityKind::Account, None).unwrap() as usize, page.items.len());
            for r in page.items.iter().filter(|r| accounts.contains(&r.meta.id)) {
                prop_assert_eq!(r.fields.contains_key("city"), !m.hide_city[u], "city leaked or lost");
                // Not granted in an allow-list: never shown.
                prop_assert_eq!(r.fields.contains_key("industry"), !m.allow_list(u), "industry leaked or lost");
            }
            let by_city = user.records().count(EntityKind::Account, Some(&Filter::eq("city", "Pisa")));
            prop_assert_eq!(by_city.is_err(), m.hide_city[u]);
            for (a, id) in accounts.iter().enumerate() {
                let readable = m.reaches(u, a, false);
                let got = user.records().get(EntityKind::Account, *id);
                prop_assert_eq!(got.is_ok(), readable);
                let version = admin.records().get(EntityKind::Account, *id).unwrap().meta.version;
                let res = user.records().update(EntityKind::Account, *id, version, fields! { "website" => format!("w{u}") });
                prop_assert_eq!(res.is_ok(), readable && m.reaches(u, a, true), "user {} update a{}: {:?}", u, a, res);
            }
        }
    }
}
