//! Shared data for the benchmarks: a deterministic customer generator, a CRM fixture and the raw
//! rusqlite baseline holding the same rows.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // benchmark support: failures should be loud

use std::path::PathBuf;

use crm_core::{
    fields, Action, Context, Crm, EntityKind, FieldAccess, NewRecord, ObjectRule, Origin, Policy,
    RecordId, Scope, Session, TenantId, Value,
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

/// A CRM and a session for each of its users, opened once (the benches act through these, so no
/// measured call pays for opening a session).
pub struct Fixture {
    pub crm: Crm,
    pub admin: Session,
    /// 50 reps in 2 teams of 25; their role reads own + team, writes own, and has `vat_number` hidden.
    pub reps: Vec<Session>,
    pub n: usize,
}

pub const REPS: usize = 50;

/// The benchmarks' store: `synchronous=NORMAL`, as the raw-SQLite baselines they are compared with
/// run (the library's default is FULL: durable commits; see docs/architecture.md, Durability).
pub fn open_store(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open_with(
        path,
        crm_store::OpenOptions {
            durability: crm_store::Durability::Normal,
            ..Default::default()
        },
    )
    .unwrap()
}

/// A CRM on disk holding `n` customers owned by 50 reps, created through the facade.
pub fn fixture(n: usize) -> Fixture {
    fixture_at(&scratch("crm"), n)
}

/// [`fixture`] in the database file at `path`.
pub fn fixture_at(path: &std::path::Path, n: usize) -> Fixture {
    let crm = Crm::new(open_store(path));
    let admin = crm
        .bootstrap(&TenantId::new("bench").unwrap(), "admin", Origin::default())
        .unwrap();
    let admin = crm.session(&admin).unwrap();
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
    // What a rep reads beside the accounts (the screen pop's sections), for their team.
    let policy = [
        EntityKind::Contact,
        EntityKind::Order,
        EntityKind::Opportunity,
        EntityKind::Quote,
        EntityKind::Case,
        EntityKind::Activity,
    ]
    .into_iter()
    .fold(policy, |p, kind| {
        p.allow(kind, ObjectRule::new(&[Action::Read], &[Scope::Team], &[]))
    })
    .allow(
        EntityKind::Product,
        ObjectRule::new(&[Action::Read], &[Scope::All], &[]),
    );
    let role = admin
        .records()
        .create(
            EntityKind::Role,
            fields! { "name" => "rep", "policy" => Value::Json(policy.to_json()) },
        )
        .unwrap()
        .meta
        .id;
    let teams: Vec<RecordId> = (0..2)
        .map(|t| {
            admin
                .records()
                .create(EntityKind::Team, fields! { "name" => format!("team{t}") })
                .unwrap()
                .meta
                .id
        })
        .collect();
    let reps: Vec<Session> = (0..REPS)
        .map(|i| {
            let u = admin
                .records()
                .create(EntityKind::User, fields! { "username" => format!("rep{i}"), "role_id" => role, "team_ids" => Value::List(vec![teams[i % 2].to_string()]) })
                .unwrap();
            crm.session(&admin.context().as_user(u.meta.id)).unwrap()
        })
        .collect();
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(20_000);
        admin
            .records()
            .create_many(
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
pub fn rows(reps: &[Session], cs: &[Customer]) -> Vec<NewRecord> {
    cs.iter()
        .map(|c| NewRecord {
            fields: fields! { "name" => c.name.as_str(), "email" => c.email.as_str(), "phone" => c.phone.as_str(), "country" => c.country, "roles" => Value::List(vec!["customer".into()]) },
            owner_id: Some(reps[c.owner].user_id()),
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

/// The sales data of the analytics benches: [`fixture`]'s customers, 200 products with unit costs,
/// and orders over the last three years — a few heavy buyers, many light ones, about 10 % with none,
/// ten per customer on average, one to three lines each. Built through the facade once per size and
/// kept under `target/bench-data` (delete the file to rebuild).
pub struct Sales {
    pub f: Fixture,
    pub path: PathBuf,
    /// Every account: id, phone (E.164), owner index.
    pub accounts: Vec<(RecordId, String, usize)>,
    pub orders: u64,
}

/// Orders per customer: 10 % none, 50 % one to six, 30 % five to twenty, 10 % 25 to 65 (mean ≈ 10).
pub fn orders_for(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0 => 0,
        1..=5 => 1 + rng.below(6),
        6..=8 => 5 + rng.below(16),
        _ => 25 + rng.below(41),
    }
}

const SALES_VERSION: u32 = 3;

/// Opens (building on first use) the sales data set of `n` customers.
pub fn sales(n: usize) -> Sales {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("sales-{n}-v{SALES_VERSION}.db"));
    let ids = path.with_extension("ids.json");
    if !(path.exists() && ids.exists()) {
        build_sales(n, &path, &ids);
    }
    let crm = Crm::new(open_store(&path));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&ids).unwrap()).unwrap();
    let (admin, reps) = sessions(&crm, &v);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let owners: std::collections::HashMap<RecordId, usize> = reps
        .iter()
        .enumerate()
        .map(|(i, r)| (r.user_id(), i))
        .collect();
    let mut st = raw
        .prepare(
            "SELECT id, phone, owner_id FROM accounts WHERE tenant_id = 'bench' ORDER BY phone",
        )
        .unwrap();
    let accounts = st
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .unwrap()
        .map(|r| {
            let (id, phone, owner) = r.unwrap();
            let id = RecordId::from_bytes(id.try_into().unwrap());
            let owner = owners[&RecordId::from_bytes(owner.try_into().unwrap())];
            (id, phone, owner)
        })
        .collect();
    let orders: i64 = raw
        .query_row(
            "SELECT count(*) FROM orders WHERE tenant_id = 'bench'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    Sales {
        f: Fixture {
            crm,
            admin,
            reps,
            n,
        },
        path,
        accounts,
        orders: orders as u64,
    }
}

fn build_sales(n: usize, path: &std::path::Path, ids: &std::path::Path) {
    use crm_core::{LineItem, Money};
    let started = std::time::Instant::now();
    let tmp = path.with_extension("building.db");
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", tmp.display()));
    }
    let f = fixture_at(&tmp, n);
    let mut rng = Rng::new(0x5A1E5 ^ n as u64);
    let products: Vec<NewRecord> = (0..200)
        .map(|i| {
            let price = 20 + rng.below(1980);
            let cost = price * (40 + rng.below(40)) / 100;
            fields! {
                "sku" => format!("SKU-{i:04}"),
                "name" => format!("Product {i}"),
                "family" => ["hardware", "services", "software", "support"][i % 4],
                "list_price" => Value::Money(Money::parse(&price.to_string(), "EUR").unwrap()),
                "unit_cost" => Value::Money(Money::parse(&cost.to_string(), "EUR").unwrap()),
            }
            .into()
        })
        .collect();
    let products: Vec<(RecordId, crm_core::Decimal)> = f
        .admin
        .records()
        .create_many(EntityKind::Product, products)
        .unwrap()
        .into_iter()
        .map(|p| (p.meta.id, p.get("list_price").as_money().unwrap().amount))
        .collect();
    // Accounts in creation order, with their owners.
    let mut accounts = Vec::with_capacity(n);
    let mut req = crm_core::ListRequest::default().limit(1000);
    loop {
        let page = f.admin.records().list(EntityKind::Account, &req).unwrap();
        accounts.extend(page.items.iter().map(|a| (a.meta.id, a.meta.owner_id)));
        match page.next {
            Some(c) => req.after = Some(c),
            None => break,
        }
    }
    // The order history is loaded as an import would load it: with the order audit trail off (an
    // audit entry holds the whole order, lines and all: at 10⁷ orders that trail alone would take
    // ~20 GB); the setting is switched back on once the history is in, so later order writes are
    // audited. Customers and products keep their audit entries.
    let audit = f
        .admin
        .records()
        .create(
            EntityKind::AuditSetting,
            fields! { "entity" => "order", "enabled" => false },
        )
        .unwrap();
    let now = f.admin.now();
    let mut batch = Vec::new();
    let mut total = 0u64;
    for (i, (account, owner)) in accounts.iter().enumerate() {
        for _ in 0..orders_for(&mut rng) {
            let lines = (0..1 + rng.below(3))
                .map(|_| {
                    let (p, price) = products[rng.below(products.len() as u64) as usize];
                    LineItem {
                        product_id: Some(p),
                        description: String::new(),
                        quantity: (1 + rng.below(5)).into(),
                        unit_price: price,
                        discount_percent: [0, 0, 0, 5, 10][rng.below(5) as usize].into(),
                        tax_rate: 22.into(),
                        unit_cost: None,
                    }
                })
                .collect();
            let at =
                now - crm_core::chrono::Duration::seconds(rng.below(3 * 365 * 86_400) as i64 + 60);
            batch.push(NewRecord {
                fields: fields! {
                    "account_id" => *account,
                    "currency" => "EUR",
                    "status" => "fulfilled",
                    "ordered_at" => at,
                    "lines" => Value::Lines(lines),
                },
                owner_id: Some(*owner),
            });
        }
        if batch.len() >= 5_000 || i + 1 == accounts.len() {
            total += batch.len() as u64;
            f.admin
                .records()
                .create_many(EntityKind::Order, std::mem::take(&mut batch))
                .unwrap();
        }
    }
    f.admin
        .records()
        .update(
            EntityKind::AuditSetting,
            audit.meta.id,
            audit.meta.version,
            fields! { "enabled" => true },
        )
        .unwrap();
    keep_built(f, &tmp, path, ids);
    eprintln!(
        "built {}: {n} customers, {total} orders in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
}

/// The screen pop's data fetched by hand: the account with this phone and the contacts with it as
/// phone or mobile, then the account's contacts, latest ten orders, open opportunities, latest
/// quotes, open cases and latest ten activities — every column, decoded into SQLite values — and
/// the lines of its orders (the products it already has). No RFM segment, no cross-sell
/// computation, no JSON parsing: the baseline stays the cheaper side.
pub fn raw_screen_pop(c: &rusqlite::Connection, phone: &str) -> usize {
    use rusqlite::types::Value as V;
    fn rows(c: &rusqlite::Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Vec<Vec<V>> {
        let mut st = c.prepare_cached(sql).unwrap();
        let n = st.column_count();
        st.query_map(p, |r| (0..n).map(|i| r.get::<_, V>(i)).collect())
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }
    let accounts = rows(
        c,
        "SELECT * FROM accounts WHERE tenant_id = 'bench' AND phone = ?1 AND deleted_at IS NULL",
        &[&phone],
    );
    // A caller may ring from a contact's office phone or mobile: both are looked up.
    let contacts = rows(
        c,
        "SELECT * FROM contacts WHERE tenant_id = 'bench' AND phone = ?1 AND deleted_at IS NULL",
        &[&phone],
    )
    .len()
        + rows(
            c,
            "SELECT * FROM contacts WHERE tenant_id = 'bench' AND mobile = ?1 AND deleted_at IS NULL",
            &[&phone],
        )
        .len();
    let Some(V::Blob(id)) = accounts.first().map(|a| a[1].clone()) else {
        return contacts;
    };
    let sections = [
        "SELECT * FROM contacts WHERE tenant_id = 'bench' AND account_id = ?1 AND deleted_at IS NULL LIMIT 100",
        "SELECT * FROM orders WHERE tenant_id = 'bench' AND account_id = ?1 AND deleted_at IS NULL ORDER BY ordered_at DESC LIMIT 10",
        "SELECT * FROM opportunities WHERE tenant_id = 'bench' AND account_id = ?1 AND deleted_at IS NULL AND closed_at IS NULL LIMIT 50",
        "SELECT * FROM quotes WHERE tenant_id = 'bench' AND account_id = ?1 AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 10",
        "SELECT * FROM cases WHERE tenant_id = 'bench' AND account_id = ?1 AND deleted_at IS NULL AND status NOT IN ('resolved', 'closed') LIMIT 50",
        "SELECT * FROM activities WHERE tenant_id = 'bench' AND account_id = ?1 AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 10",
        // The lines of the customer's orders: what it already bought (cross-sell leaves it out).
        "SELECT lines FROM orders WHERE tenant_id = 'bench' AND account_id = ?1 AND deleted_at IS NULL AND status != 'cancelled'",
    ];
    let mut n = accounts.len() + contacts;
    for sql in sections {
        n += rows(c, sql, &[&id]).len();
    }
    n
}

const CUSTOMERS_VERSION: u32 = 1;

/// The path of the cached customers-only data set of `n` customers (see [`customers_db`]).
pub fn customers_db_path(n: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("customers-{n}-v{CUSTOMERS_VERSION}.db"))
}

/// Closes a data set built at `tmp`, moves it (with its WAL files) to `path` and writes the ids of
/// its administrator and reps to `ids`.
fn keep_built(f: Fixture, tmp: &std::path::Path, path: &std::path::Path, ids: &std::path::Path) {
    let v = serde_json::json!({
        "admin": f.admin.user_id().to_string(),
        "reps": f.reps.iter().map(|r| r.user_id().to_string()).collect::<Vec<_>>(),
    });
    drop(f);
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::rename(
            format!("{}{s}", tmp.display()),
            format!("{}{s}", path.display()),
        );
    }
    std::fs::write(ids, v.to_string()).unwrap();
}

/// [`fixture`]'s `n` customers (no orders), built through the facade once per size and kept under
/// `target/bench-data` like the sales data set (delete the file to rebuild). Returns the path.
pub fn customers_db(n: usize) -> PathBuf {
    let path = customers_db_path(n);
    let ids = path.with_extension("ids.json");
    if path.exists() && ids.exists() {
        return path;
    }
    let started = std::time::Instant::now();
    let tmp = path.with_extension("building.db");
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", tmp.display()));
    }
    let f = fixture_at(&tmp, n);
    keep_built(f, &tmp, &path, &ids);
    eprintln!(
        "built {}: {n} customers in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    path
}

/// Opens a data set written by [`customers_db`] (or a copy of one at `path`, whose ids file is
/// read from `ids`): the CRM, the administrator and the 50 reps.
pub fn open_customers(path: &std::path::Path, ids: &std::path::Path, n: usize) -> Fixture {
    let crm = Crm::new(open_store(path));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(ids).unwrap()).unwrap();
    let (admin, reps) = sessions(&crm, &v);
    Fixture {
        crm,
        admin,
        reps,
        n,
    }
}

/// The sessions of the administrator and the reps named in a data set's ids file.
fn sessions(crm: &Crm, ids: &serde_json::Value) -> (Session, Vec<Session>) {
    let tenant = TenantId::new("bench").unwrap();
    let user = |s: &serde_json::Value| {
        crm.session(&Context::new(
            tenant.clone(),
            s.as_str().unwrap().parse().unwrap(),
        ))
        .unwrap()
    };
    let admin = user(&ids["admin"]);
    let reps = ids["reps"].as_array().unwrap().iter().map(user).collect();
    (admin, reps)
}

/// Peak and current resident set size of this process in KiB (`VmHWM`, `VmRSS` of
/// `/proc/self/status`; `None` where there is no such file).
pub fn rss_kib() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
