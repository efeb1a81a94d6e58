//! Shared data for the benchmarks: a deterministic customer generator, a CRM fixture and the raw
//! rusqlite baseline holding the same rows.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // benchmark support: failures should be loud

use std::path::PathBuf;
use std::sync::Arc;

use crm_core::{
    fields, Action, Context, Crm, EntityKind, FieldAccess, NewRecord, ObjectRule, Origin, Policy,
    RecordId, Scope, TenantId, Value,
};
use crm_store::SqliteStore;

/// Number of customers, from `CRM_BENCH_N` (default 10 000).
pub fn size() -> usize {
    std::env::var("CRM_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

/// The seeded generator of the demo data: the same data every run.
pub use crm_examples::demo::Rng;

const COUNTRIES: &[&str] = &["IT", "DE", "FR", "ES", "AT"];

/// One generated customer: name, e-mail, phone (E.164, Milan numbers), country, owner index.
pub struct Customer {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub country: &'static str,
    pub owner: usize,
}

/// `n` customers starting at sequence `from`, owners among `reps` reps.
pub fn customers(from: usize, n: usize, reps: usize) -> Vec<Customer> {
    let mut rng = Rng::new(from as u64 ^ 0x5EED);
    (from..from + n)
        .map(|i| Customer {
            name: format!("Customer {i:07}"),
            email: format!("customer{i}@example.com"),
            phone: format!("+3902{:08}", 10_000_000 + i),
            country: COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize],
            owner: rng.below(reps as u64) as usize,
        })
        .collect()
}

/// A scratch database path under `target/bench-data`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}-{}.db", std::process::id()));
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", p.display()));
    }
    p
}

pub struct Fixture {
    pub crm: Crm,
    pub admin: Context,
    /// 50 reps in 2 teams of 25; their role reads own + team, writes own, and has `vat_number` hidden.
    pub reps: Vec<Context>,
    pub n: usize,
}

pub const REPS: usize = 50;

/// A CRM on disk holding `n` customers owned by 50 reps, created through the facade.
pub fn fixture(n: usize) -> Fixture {
    let crm = Crm::new(Arc::new(SqliteStore::open(scratch("crm")).unwrap()));
    let admin = crm
        .bootstrap(&TenantId::new("bench").unwrap(), "admin", Origin::default())
        .unwrap();
    let crud = [
        Action::Create,
        Action::Read,
        Action::Update,
        Action::Delete,
        Action::Export,
    ];
    let policy = Policy::default()
        .allow(
            EntityKind::Account,
            ObjectRule::new(&crud, &[Scope::Team], &[Scope::Own]),
        )
        .field(EntityKind::Account, "vat_number", FieldAccess::Hidden);
    let role = crm
        .create(
            &admin,
            EntityKind::Role,
            fields! { "name" => "rep", "policy" => Value::Json(policy.to_json()) },
        )
        .unwrap()
        .meta
        .id;
    let teams: Vec<RecordId> = (0..2)
        .map(|t| {
            crm.create(
                &admin,
                EntityKind::Team,
                fields! { "name" => format!("team{t}") },
            )
            .unwrap()
            .meta
            .id
        })
        .collect();
    let reps: Vec<Context> = (0..REPS)
        .map(|i| {
            let u = crm
                .create(&admin, EntityKind::User, fields! { "username" => format!("rep{i}"), "role_id" => role, "team_ids" => Value::List(vec![teams[i % 2].to_string()]) })
                .unwrap();
            admin.as_user(u.meta.id)
        })
        .collect();
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(20_000);
        crm.create_many(
            &admin,
            EntityKind::Account,
            rows(&reps, &customers(done, batch, REPS)),
        )
        .unwrap();
        done += batch;
    }
    Fixture {
        crm,
        admin,
        reps,
        n,
    }
}

/// Facade rows for customers.
pub fn rows(reps: &[Context], cs: &[Customer]) -> Vec<NewRecord> {
    cs.iter()
        .map(|c| NewRecord {
            fields: fields! { "name" => c.name.as_str(), "email" => c.email.as_str(), "phone" => c.phone.as_str(), "country" => c.country, "roles" => Value::List(vec!["customer".into()]) },
            owner_id: Some(reps[c.owner].user_id),
        })
        .collect()
}

/// The raw baseline: the same customers in a plain table with 3 secondary indexes, WAL,
/// synchronous=NORMAL, inserted with one prepared statement in one transaction.
pub fn raw_open(name: &str) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(scratch(name)).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, email TEXT, phone TEXT, country TEXT, owner INTEGER NOT NULL);
         CREATE INDEX customers_phone ON customers(tenant, phone);
         CREATE INDEX customers_email ON customers(tenant, email);
         CREATE INDEX customers_owner ON customers(tenant, owner, id);",
    )
    .unwrap();
    c
}

pub fn raw_insert(c: &mut rusqlite::Connection, cs: &[Customer]) {
    let tx = c.transaction().unwrap();
    {
        let mut st = tx.prepare_cached("INSERT INTO customers (tenant, name, email, phone, country, owner) VALUES ('bench', ?1, ?2, ?3, ?4, ?5)").unwrap();
        for x in cs {
            st.execute(rusqlite::params![
                x.name,
                x.email,
                x.phone,
                x.country,
                x.owner as i64
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}
