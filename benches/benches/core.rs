//! Rust benches, each beside its baseline in the same run: batch insert, phone lookup, permission-
//! scoped keyset pages, and one permission decision against Cedar. Sizes: `CRM_BENCH_N` (default 10⁴).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use crm_benches::{customers, fixture, raw_insert, raw_open, rows, size, REPS};
use crm_core::{access, Action, EntityKind, ListRequest};

fn insert(c: &mut Criterion) {
    let f = fixture(1_000);
    let mut raw = raw_open("raw-insert");
    let mut g = c.benchmark_group("insert_1000_customers");
    g.throughput(Throughput::Elements(1_000));
    g.sample_size(10);
    let mut next = 1_000_000;
    g.bench_function("crm_create_many", |b| {
        b.iter_batched(
            || {
                next += 1_000;
                rows(&f.reps, &customers(next, 1_000, REPS))
            },
            |r| {
                f.admin
                    .records()
                    .create_many(EntityKind::Account, r)
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    let mut next = 1_000_000;
    g.bench_function("raw_rusqlite", |b| {
        b.iter_batched(
            || {
                next += 1_000;
                customers(next, 1_000, REPS)
            },
            |cs| raw_insert(&mut raw, &cs),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn lookups_and_pages(c: &mut Criterion) {
    let n = size();
    let f = fixture(n);
    let mut raw = raw_open("raw-read");
    let cs = customers(0, n, REPS);
    raw_insert(&mut raw, &cs);
    let rep = &f.reps[0];
    // The rep sees own + team: the 25 reps of team 0.
    let team: Vec<i64> = (0..REPS as i64).filter(|i| i & 1 == 0).collect();
    let visible: Vec<usize> = (0..n).filter(|i| cs[*i].owner & 1 == 0).collect();

    let mut g = c.benchmark_group(format!("lookup_phone_{n}"));
    let mut i = 0usize;
    g.bench_function("crm_find_by_phone", |b| {
        b.iter(|| {
            i = (i + 7919) % visible.len();
            // Written the way a caller-id system hands it over: national format.
            let p = &cs[visible[i]].phone;
            let national = p[3..].to_string();
            black_box(
                rep.records()
                    .find_by_phone(EntityKind::Account, &national)
                    .unwrap(),
            )
        })
    });
    let mut i = 0usize;
    g.bench_function("raw_rusqlite", |b| {
        let mut st = raw.prepare_cached("SELECT id, name, email, phone, country, owner FROM customers WHERE tenant = 'bench' AND phone = ?1").unwrap();
        b.iter(|| {
            i = (i + 7919) % visible.len();
            let rows: Vec<(i64, String)> = st.query_map([&cs[visible[i]].phone], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect();
            black_box(rows)
        })
    });
    g.finish();

    // Keyset pages of 50, ordered by id: page 1 and a page deep into the rep's slice.
    let pages = visible.len() / 50;
    let deep_page = pages * 4 / 5;
    let mut cursor = None;
    let mut req = ListRequest::default().limit(50);
    for _ in 0..deep_page {
        let p = rep.records().list(EntityKind::Account, &req).unwrap();
        cursor = p.next.clone();
        req.after = p.next;
    }
    let raw_deep_after: i64 = {
        let team_sql = team
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",");
        raw.query_row(&format!("SELECT id FROM customers WHERE tenant='bench' AND owner IN ({team_sql}) ORDER BY id LIMIT 1 OFFSET {}", deep_page * 50 - 1), [], |r| r.get(0)).unwrap()
    };
    let mut g = c.benchmark_group(format!("scoped_page_{n}"));
    g.bench_function("crm_page_1", |b| {
        b.iter(|| {
            black_box(
                rep.records()
                    .list(EntityKind::Account, &ListRequest::default().limit(50))
                    .unwrap(),
            )
        })
    });
    g.bench_function(format!("crm_page_{deep_page}"), |b| {
        b.iter(|| {
            black_box(
                rep.records()
                    .list(
                        EntityKind::Account,
                        &ListRequest::default().limit(50).after(cursor.clone()),
                    )
                    .unwrap(),
            )
        })
    });
    let team_sql = team
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!("SELECT id, name, email, phone, country, owner FROM customers WHERE tenant='bench' AND owner IN ({team_sql}) AND id > ?1 ORDER BY id LIMIT 50");
    g.bench_function("raw_page_1", |b| {
        let mut st = raw.prepare_cached(&sql).unwrap();
        b.iter(|| {
            black_box(
                st.query_map([0i64], |r| r.get::<_, String>(1))
                    .unwrap()
                    .count(),
            )
        })
    });
    g.bench_function(format!("raw_page_{deep_page}"), |b| {
        let mut st = raw.prepare_cached(&sql).unwrap();
        b.iter(|| {
            black_box(
                st.query_map([raw_deep_after], |r| r.get::<_, String>(1))
                    .unwrap()
                    .count(),
            )
        })
    });
    g.finish();
}

fn decision(c: &mut Criterion) {
    let f = fixture(200);
    let cache_principal = {
        // The principal as the facade builds it, from the stored users and roles.
        let users = f
            .admin
            .records()
            .list(EntityKind::User, &ListRequest::default().limit(1000))
            .unwrap()
            .items;
        let roles = f
            .admin
            .records()
            .list(EntityKind::Role, &ListRequest::default().limit(1000))
            .unwrap()
            .items;
        access::OrgSnapshot::build(&users, &roles)
            .principal(f.reps[0].user_id())
            .unwrap()
    };
    let records = f
        .admin
        .records()
        .list(EntityKind::Account, &ListRequest::default().limit(200))
        .unwrap()
        .items;
    let mut g = c.benchmark_group("permission_decision");
    let mut i = 0usize;
    g.bench_function("crm_decide", |b| {
        b.iter(|| {
            i = (i + 1) % records.len();
            let r = &records[i];
            let ok = access::decide(&cache_principal, Action::Read, r, None, None)
                && access::field_access(&cache_principal, EntityKind::Account, "vat_number")
                    != Some(access::FieldAccess::ReadOnly);
            black_box(ok)
        })
    });

    use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
    let policies: PolicySet = r#"
        permit(principal, action == Action::"read", resource)
        when { principal.role == "rep" && (resource.owner == principal || principal.teammates.contains(resource.owner)) };
        permit(principal, action == Action::"update", resource)
        when { principal.role == "rep" && resource.owner == principal };
        forbid(principal, action == Action::"read_vat_number", resource) when { principal.role == "rep" };
    "#
    .parse()
    .unwrap();
    let teammates: Vec<serde_json::Value> = (0..REPS)
        .filter(|i| i & 1 == 0)
        .map(|i| serde_json::json!({"__entity": {"type": "User", "id": format!("rep{i}")}}))
        .collect();
    let mut ents = vec![
        serde_json::json!({"uid": {"type": "User", "id": "rep0"}, "attrs": {"role": "rep", "teammates": teammates}, "parents": []}),
    ];
    for (k, r) in records.iter().enumerate() {
        let owner = f
            .reps
            .iter()
            .position(|c| c.user_id() == r.meta.owner_id)
            .unwrap_or(0);
        ents.push(serde_json::json!({"uid": {"type": "Account", "id": format!("a{k}")}, "attrs": {"owner": {"__entity": {"type": "User", "id": format!("rep{owner}")}}}, "parents": []}));
    }
    let entities = Entities::from_json_value(serde_json::Value::Array(ents), None).unwrap();
    let principal: EntityUid = r#"User::"rep0""#.parse().unwrap();
    let action: EntityUid = r#"Action::"read""#.parse().unwrap();
    let resources: Vec<EntityUid> = (0..records.len())
        .map(|k| format!(r#"Account::"a{k}""#).parse().unwrap())
        .collect();
    let authorizer = Authorizer::new();
    // Both sides must agree before their speed is compared.
    for (k, r) in records.iter().enumerate() {
        let req = Request::new(
            principal.clone(),
            action.clone(),
            resources[k].clone(),
            Context::empty(),
            None,
        )
        .unwrap();
        let cedar = authorizer
            .is_authorized(&req, &policies, &entities)
            .decision()
            == cedar_policy::Decision::Allow;
        assert_eq!(
            cedar,
            access::decide(&cache_principal, Action::Read, r, None, None),
            "record {k}"
        );
    }
    let mut i = 0usize;
    g.bench_function("cedar_is_authorized", |b| {
        b.iter(|| {
            i = (i + 1) % resources.len();
            let req = Request::new(
                principal.clone(),
                action.clone(),
                resources[i].clone(),
                Context::empty(),
                None,
            )
            .unwrap();
            black_box(
                authorizer
                    .is_authorized(&req, &policies, &entities)
                    .decision(),
            )
        })
    });
    g.finish();
}

fn audited_update(c: &mut Criterion) {
    use crm_core::{fields, Value};
    let f = fixture(1_000);
    let mut g = c.benchmark_group("update_one_field");
    for (name, audited) in [("audit_on", true), ("audit_off", false)] {
        let setting = f
            .admin
            .records()
            .list(EntityKind::AuditSetting, &ListRequest::default())
            .unwrap()
            .items;
        match (setting.first(), audited) {
            (Some(s), _) => {
                f.admin
                    .records()
                    .update(
                        EntityKind::AuditSetting,
                        s.meta.id,
                        s.meta.version,
                        fields! { "enabled" => audited },
                    )
                    .unwrap();
            }
            (None, false) => {
                f.admin
                    .records()
                    .create(
                        EntityKind::AuditSetting,
                        fields! { "entity" => "account", "enabled" => false },
                    )
                    .unwrap();
            }
            (None, true) => {}
        }
        let acc = f
            .admin
            .records()
            .list(EntityKind::Account, &ListRequest::default().limit(1))
            .unwrap()
            .items
            .remove(0);
        let mut version = acc.meta.version;
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let r = f
                    .admin
                    .records()
                    .update(
                        EntityKind::Account,
                        acc.meta.id,
                        version,
                        fields! { "city" => Value::Text(format!("city {i}")) },
                    )
                    .unwrap();
                version = r.meta.version;
            })
        });
    }
    g.finish();
}

criterion_group!(benches, insert, lookups_and_pages, decision, audited_update);
criterion_main!(benches);
