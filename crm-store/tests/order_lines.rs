//! The order lines table (migration 7): every write of an order keeps it equal to the orders' lines,
//! the period aggregate reads one key range of it, and it gives the groups the JSON reading of the
//! orders gave.

// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_core::analytics::LineGroup;
use crm_core::backend::{Column, Cond, Liveness, MetaColumn, Op, Query, Store};
use crm_core::chrono::{DateTime, Duration, Utc};
use crm_core::conformance::{dec, new_id, record, t0, tenant};
use crm_core::{EntityKind, LineItem, Record, RecordId, TenantId, Value};
use crm_store::SqliteStore;
use rusqlite::types::Value as Sql;

/// A seeded xorshift generator: the same operations on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())].clone()
    }
}

fn order_col(name: &str) -> Column {
    let f = EntityKind::Order.schema().field(name).unwrap();
    Column::Builtin {
        name: f.name,
        ty: f.ty.clone(),
    }
}

/// The people and accounts the orders refer to.
struct Cast {
    t: TenantId,
    reps: [RecordId; 2],
    accounts: Vec<Record>,
    territory: RecordId,
    products: Vec<RecordId>,
}

impl Cast {
    fn new(name: &str) -> Cast {
        let t = tenant(name);
        let reps = [new_id(), new_id()];
        let territory = new_id();
        let accounts = (0..4)
            .map(|i| {
                let terr = if i % 2 == 0 {
                    Value::Ref(territory)
                } else {
                    Value::Null
                };
                record(
                    EntityKind::Account,
                    &t,
                    reps[i % 2],
                    crm_core::fields! { "name" => format!("A{i}"), "territory_id" => terr },
                )
            })
            .collect();
        Cast {
            t,
            reps,
            accounts,
            territory,
            products: (0..3).map(|_| new_id()).collect(),
        }
    }

    /// Lines with repeated and differently written values: `1.5` and `1.50` are different texts,
    /// descriptions differ in case, some lines have no product or no cost.
    fn lines(&self, rng: &mut Rng) -> Vec<LineItem> {
        let mut lines: Vec<LineItem> = (0..rng.below(4))
            .map(|_| LineItem {
                product_id: rng.pick(&[
                    None,
                    Some(self.products[0]),
                    Some(self.products[1]),
                    Some(self.products[2]),
                ]),
                description: rng
                    .pick(&["", "Widget", "widget", "Ünïcode", "a"])
                    .to_owned(),
                quantity: dec(rng.pick(&["1", "2", "1.5", "1.50", "0.3333"])),
                unit_price: dec(rng.pick(&["9.99", "10", "10.00", "0"])),
                discount_percent: dec(rng.pick(&["0", "5", "12.5"])),
                tax_rate: dec("22"),
                unit_cost: rng.pick(&[None, Some("4"), Some("4.0000")]).map(dec),
            })
            .collect();
        // The same line again, described differently: one group of two, the smaller description.
        if let Some(first) = lines.first().filter(|_| rng.below(3) == 0) {
            let mut again = first.clone();
            again.description = rng
                .pick(&["", "Widget", "widget", "Ünïcode", "a"])
                .to_owned();
            lines.push(again);
        }
        lines
    }

    fn ordered_at(&self, rng: &mut Rng) -> Value {
        if rng.below(10) == 0 {
            Value::Null
        } else {
            Value::Timestamp(t0() + Duration::hours(rng.below(24 * 150) as i64))
        }
    }

    fn account(&self, rng: &mut Rng) -> Value {
        match rng.below(5) {
            4 => Value::Null,
            i => Value::Ref(self.accounts[i].meta.id),
        }
    }

    fn order(&self, rng: &mut Rng) -> Record {
        let mut fields = crm_core::fields! {
            "number" => format!("N{}", rng.below(1000)),
            "account_id" => self.account(rng),
            "currency" => rng.pick(&["EUR", "EUR", "USD"]),
            "status" => rng.pick(&["open", "fulfilled", "cancelled"]),
            "ordered_at" => self.ordered_at(rng),
        };
        if rng.below(8) != 0 {
            fields.insert("lines".into(), Value::Lines(self.lines(rng)));
        }
        record(EntityKind::Order, &self.t, self.reps[rng.below(2)], fields)
    }

    /// One change of the kinds the facade makes to an order.
    fn change(&self, rng: &mut Rng, r: &mut Record) {
        match rng.below(9) {
            0 => {
                r.fields
                    .insert("lines".into(), Value::Lines(self.lines(rng)));
            }
            1 => {
                r.fields.remove("lines");
            }
            2 => {
                let s = rng.pick(&["open", "fulfilled", "cancelled"]);
                r.fields.insert("status".into(), Value::Text(s.into()));
            }
            3 => r.meta.deleted_at = Some(t0() + Duration::days(400)),
            4 => r.meta.deleted_at = None,
            5 => {
                r.fields.insert("account_id".into(), self.account(rng));
            }
            6 => r.meta.owner_id = self.reps[rng.below(2)],
            7 => {
                r.fields.insert("ordered_at".into(), self.ordered_at(rng));
            }
            _ => {
                // A field the lines do not copy: no line is written.
                r.fields.insert(
                    "number".into(),
                    Value::Text(format!("M{}", rng.below(1000))),
                );
            }
        }
        r.fields.retain(|_, v| *v != Value::Null);
        r.meta.version += 1;
    }
}

/// A stored value as comparable text.
fn show(v: &Sql) -> String {
    match v {
        Sql::Null => "NULL".to_owned(),
        Sql::Integer(i) => i.to_string(),
        Sql::Real(f) => format!("{f:?}"),
        Sql::Text(s) => format!("'{s}'"),
        Sql::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// Every row of `order_lines`, sorted.
fn table_rows(conn: &rusqlite::Connection) -> Vec<String> {
    let mut st = conn
        .prepare(
            "SELECT tenant_id, ordered_at, id, line_no, owner_id, deleted_at, status, account_id, \
             currency, product_id, description, quantity, unit_price, discount_percent, unit_cost \
             FROM order_lines",
        )
        .unwrap();
    let mut rows: Vec<String> = st
        .query_map([], |r| {
            Ok((0..15)
                .map(|i| show(&r.get::<_, Sql>(i).unwrap()))
                .collect::<Vec<_>>()
                .join(" | "))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    rows
}

/// What `order_lines` must hold, from the orders as the store decodes them (every order of the
/// tenant with an order instant, live or in the trash; each line as the JSON writes it), sorted.
fn expected_rows(store: &SqliteStore, t: &TenantId) -> Vec<String> {
    let mut q = Query::all(EntityKind::Order, t.clone());
    q.liveness = Liveness::Any;
    let blob = |id: RecordId| Sql::Blob(id.as_bytes().to_vec());
    let text = |s: String| Sql::Text(s);
    let mut rows = Vec::new();
    for o in store.read().unwrap().query(&q).unwrap() {
        let Some(at) = o.get("ordered_at").as_timestamp() else {
            continue;
        };
        let Value::Lines(lines) = o.get("lines") else {
            continue;
        };
        for (i, l) in lines.iter().enumerate() {
            let row = [
                text(t.as_str().to_owned()),
                Sql::Integer(at.timestamp_micros()),
                blob(o.meta.id),
                Sql::Integer(i as i64),
                blob(o.meta.owner_id),
                o.meta
                    .deleted_at
                    .map_or(Sql::Null, |d| Sql::Integer(d.timestamp_micros())),
                o.text("status").map_or(Sql::Null, |s| text(s.to_owned())),
                o.reference("account_id").map_or(Sql::Null, blob),
                o.text("currency").map_or(Sql::Null, |s| text(s.to_owned())),
                l.product_id.map_or(Sql::Null, |p| text(p.to_string())),
                text(l.description.clone()),
                text(l.quantity.to_string()),
                text(l.unit_price.to_string()),
                text(l.discount_percent.to_string()),
                l.unit_cost.map_or(Sql::Null, |c| text(c.to_string())),
            ];
            rows.push(row.iter().map(show).collect::<Vec<_>>().join(" | "));
        }
    }
    rows.sort();
    rows
}

/// The lines the store hands over for `q`, grouped as SQL's `GROUP BY` grouped them (by the
/// stored text: `1.5` and `1.50` apart; the smallest description) and in the order of that key.
fn groups(store: &SqliteStore, q: &Query) -> Vec<LineGroup> {
    let mut lines = Vec::new();
    let answered = store
        .read()
        .unwrap()
        .order_lines(q, &mut |g| {
            lines.push(g.clone());
            Ok(())
        })
        .unwrap();
    assert!(answered, "the SQLite store reads the lines itself");
    grouped(lines)
}

/// `lines` merged by every attribute but the description (kept: the smallest), counts added,
/// sorted by that key (NULL first, text as stored).
fn grouped(lines: Vec<LineGroup>) -> Vec<LineGroup> {
    type Key = (
        Option<[u8; 16]>,
        String,
        Option<String>,
        String,
        String,
        String,
        Option<String>,
    );
    let key = |g: &LineGroup| -> Key {
        (
            g.account_id.map(|a| *a.as_bytes()),
            g.currency.clone(),
            g.product_id.map(|p| p.to_string()),
            g.quantity.to_string(),
            g.unit_price.to_string(),
            g.discount_percent.to_string(),
            g.unit_cost.map(|c| c.to_string()),
        )
    };
    let mut by: std::collections::BTreeMap<Key, LineGroup> = Default::default();
    for g in lines {
        match by.entry(key(&g)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(g);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let e = o.get_mut();
                e.lines += g.lines;
                if g.description < e.description {
                    e.description = g.description;
                }
            }
        }
    }
    by.into_values().collect()
}

/// `q` with a condition that always holds but reads a column `order_lines` does not carry, so the
/// aggregate reads the orders' JSON instead.
fn through_json(q: &Query) -> Query {
    q.clone().and(Cond::Not(Box::new(Cond::IsNull(Column::Meta(
        MetaColumn::CreatedAt,
    )))))
}

fn reads_lines_table(plan: &[String]) -> bool {
    let names_orders = plan
        .iter()
        .any(|l| l.split_whitespace().any(|w| w == "orders"));
    plan.iter().any(|l| l.contains("order_lines")) && !names_orders
}

/// The period queries the reports make: live orders not cancelled in `[from, to)`.
fn period(t: &TenantId, from: DateTime<Utc>, to: DateTime<Utc>) -> Query {
    Query::all(EntityKind::Order, t.clone())
        .and(Cond::Compare(
            order_col("status"),
            Op::Ne,
            Value::Text("cancelled".into()),
        ))
        .and(Cond::Compare(
            order_col("ordered_at"),
            Op::Ge,
            Value::Timestamp(from),
        ))
        .and(Cond::Compare(
            order_col("ordered_at"),
            Op::Lt,
            Value::Timestamp(to),
        ))
}

/// The aggregate as it was before the lines table: the orders' JSON grouped by SQL (the statement
/// of the previous aggregate, with the period query written out), decoded the same way.
fn json_group_by(
    conn: &rusqlite::Connection,
    t: &TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    owner: Option<RecordId>,
) -> Vec<LineGroup> {
    let sql = format!(
        "SELECT o.account_id, o.currency, \
           json_extract(l.value, '$.product_id') AS p, \
           min(coalesce(json_extract(l.value, '$.description'), '')), \
           CAST(json_extract(l.value, '$.quantity') AS TEXT) AS q, \
           CAST(json_extract(l.value, '$.unit_price') AS TEXT) AS u, \
           CAST(coalesce(json_extract(l.value, '$.discount_percent'), '0') AS TEXT) AS d, \
           CAST(json_extract(l.value, '$.unit_cost') AS TEXT) AS c, \
           count(*) \
         FROM (SELECT account_id, currency, lines FROM orders WHERE tenant_id = ?1 \
               AND deleted_at IS NULL AND status != 'cancelled' AND ordered_at >= ?2 \
               AND ordered_at < ?3 {}) AS o, json_each(o.lines) AS l \
         GROUP BY o.account_id, o.currency, p, q, u, d, c",
        if owner.is_some() {
            "AND owner_id = ?4"
        } else {
            ""
        }
    );
    let mut params = vec![
        Sql::Text(t.as_str().to_owned()),
        Sql::Integer(from.timestamp_micros()),
        Sql::Integer(to.timestamp_micros()),
    ];
    params.extend(owner.map(|o| Sql::Blob(o.as_bytes().to_vec())));
    let mut st = conn.prepare(&sql).unwrap();
    let rows = st
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            let dec = |i: usize| {
                r.get::<_, Option<String>>(i)
                    .unwrap()
                    .map(|s| s.parse::<crm_core::Decimal>().unwrap())
            };
            Ok(LineGroup {
                account_id: r
                    .get::<_, Option<Vec<u8>>>(0)?
                    .map(|b| RecordId::from_bytes(b.try_into().unwrap())),
                currency: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                product_id: r.get::<_, Option<String>>(2)?.map(|p| p.parse().unwrap()),
                description: r.get(3)?,
                quantity: dec(4).unwrap_or_default(),
                unit_price: dec(5).unwrap_or_default(),
                discount_percent: dec(6).unwrap_or_default(),
                unit_cost: dec(7),
                lines: r.get::<_, i64>(8)? as u64,
            })
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// The queries compared after every transaction: the period for everyone, a rep's own and shared
/// orders, a territory, the trash, cancelled orders of any liveness, two periods at once (one
/// testing a column the lines table does not carry), no period.
fn queries(c: &Cast) -> Vec<(&'static str, Query)> {
    let (from, to) = (t0() + Duration::days(30), t0() + Duration::days(120));
    let p = period(&c.t, from, to);
    let rep = p
        .clone()
        .and(Cond::OwnerIn(vec![c.reps[0]]).or(Cond::SharedWith {
            principals: vec![c.reps[0]],
            edit: false,
            at: t0(),
        }));
    let territory = p.clone().and(Cond::AccountInTerritories {
        link: Some("account_id"),
        territories: vec![c.territory],
    });
    let mut trash = p.clone();
    trash.liveness = Liveness::Deleted;
    let mut cancelled = Query::all(EntityKind::Order, c.t.clone())
        .and(Cond::Compare(
            order_col("status"),
            Op::Eq,
            Value::Text("cancelled".into()),
        ))
        .and(Cond::In(
            order_col("ordered_at"),
            vec![Value::Timestamp(t0() + Duration::hours(5))],
        ));
    cancelled.liveness = Liveness::Any;
    let at = |d: i64| Value::Timestamp(t0() + Duration::days(d));
    let two_periods = Query::all(EntityKind::Order, c.t.clone()).and(Cond::Or(vec![
        Cond::Compare(order_col("ordered_at"), Op::Lt, at(20)),
        Cond::And(vec![
            Cond::Compare(order_col("ordered_at"), Op::Ge, at(100)),
            Cond::Compare(order_col("number"), Op::Ne, Value::Text("N1".into())),
        ]),
    ]));
    // No bound on the order instant: orders without one count too, so the orders are read.
    let unbounded = Query::all(EntityKind::Order, c.t.clone()).and(Cond::Compare(
        order_col("status"),
        Op::Ne,
        Value::Text("cancelled".into()),
    ));
    vec![
        ("period", p),
        ("rep", rep),
        ("territory", territory),
        ("trash", trash),
        ("cancelled", cancelled),
        ("two periods", two_periods),
        ("unbounded", unbounded),
    ]
}

fn check(store: &SqliteStore, conn: &rusqlite::Connection, c: &Cast, step: usize) {
    assert_eq!(
        table_rows(conn),
        expected_rows(store, &c.t),
        "order_lines after step {step}"
    );
    for (name, q) in queries(c) {
        let fast = groups(store, &q);
        assert_eq!(
            fast,
            groups(store, &through_json(&q)),
            "{name} after step {step}: lines table against the orders' JSON"
        );
        let reads_table = reads_lines_table(&store.explain_order_lines(&q).unwrap());
        // `two periods` reads `number`, which the lines table does not carry.
        let json = ["two periods", "unbounded"].contains(&name);
        assert_eq!(reads_table, !json, "{name}: path");
        assert!(!reads_lines_table(
            &store.explain_order_lines(&through_json(&q)).unwrap()
        ));
    }
    let (from, to) = (t0() + Duration::days(30), t0() + Duration::days(120));
    let p = period(&c.t, from, to);
    assert_eq!(
        groups(store, &p),
        grouped(json_group_by(conn, &c.t, from, to, None)),
        "admin period after step {step}: against the previous statement"
    );
    let own = p.and(Cond::OwnerIn(vec![c.reps[1]]));
    assert_eq!(
        groups(store, &own),
        grouped(json_group_by(conn, &c.t, from, to, Some(c.reps[1]))),
        "rep period after step {step}: against the previous statement"
    );
}

#[test]
fn order_lines_follow_every_write_and_answer_the_aggregate_as_the_json_did() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("order-lines.db");
    let store = SqliteStore::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let c = Cast::new("lines");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    {
        let mut tx = store.write().unwrap();
        for a in &c.accounts {
            tx.insert(a).unwrap();
        }
        // An order shared with the first rep, whatever its owner.
        let shared = c.order(&mut rng);
        tx.insert(&shared).unwrap();
        let mut share = record(
            EntityKind::Share,
            &c.t,
            c.reps[1],
            crm_core::fields! {
                "record_kind" => "order",
                "record_id" => Value::Ref(shared.meta.id),
                "access" => "read",
                "grantee_user_id" => Value::Ref(c.reps[0]),
            },
        );
        share.meta.created_at = t0();
        tx.insert(&share).unwrap();
        tx.commit().unwrap();
    }
    let mut live: Vec<Record> = Vec::new();
    let reload = |live: &mut Vec<Record>| {
        let mut q = Query::all(EntityKind::Order, c.t.clone());
        q.liveness = Liveness::Any;
        *live = store.read().unwrap().query(&q).unwrap();
    };
    reload(&mut live);
    let mut purged = 0;
    for step in 0..250 {
        let mut tx = store.write().unwrap();
        for _ in 0..1 + rng.below(4) {
            match rng.below(10) {
                0..=3 => {
                    let o = c.order(&mut rng);
                    tx.insert(&o).unwrap();
                    live.push(o);
                }
                4 if !live.is_empty() => {
                    let o = live.swap_remove(rng.below(live.len()));
                    tx.purge(EntityKind::Order, &c.t, o.meta.id).unwrap();
                    purged += 1;
                }
                5 if !live.is_empty() => {
                    // A change undone by a savepoint, as a failed facade operation is.
                    let i = rng.below(live.len());
                    let mut o = live[i].clone();
                    let v = o.meta.version;
                    c.change(&mut rng, &mut o);
                    tx.savepoint().unwrap();
                    tx.update(&o, v).unwrap();
                    tx.rollback_to_savepoint().unwrap();
                }
                _ if !live.is_empty() => {
                    let i = rng.below(live.len());
                    let v = live[i].meta.version;
                    c.change(&mut rng, &mut live[i]);
                    tx.update(&live[i], v).unwrap();
                }
                _ => {}
            }
        }
        if rng.below(6) == 0 {
            // A write that does not commit leaves no line behind.
            drop(tx);
            reload(&mut live);
        } else {
            tx.commit().unwrap();
        }
        check(&store, &conn, &c, step);
    }
    // The random walk reached the cases it is meant to cover.
    let n_lines = table_rows(&conn).len();
    assert!(n_lines > 100, "{n_lines} lines");
    assert!(purged > 5, "{purged} purges");
    let deleted = live.iter().filter(|o| o.meta.deleted_at.is_some()).count();
    assert!(deleted > 3, "{deleted} orders in the trash");
    let period = groups(&store, &queries(&c)[0].1);
    assert!(period.len() > 20, "{} groups", period.len());
    assert!(period.iter().any(|g| g.lines > 1), "no group of like lines");
    drop(conn);
    drop(store);
}

/// A store after a bulk load (statistics refreshed), with orders over half a year.
fn loaded() -> (SqliteStore, Cast) {
    let store = SqliteStore::open_in_memory().unwrap();
    let c = Cast::new("plans");
    let mut rng = Rng(7);
    let mut tx = store.write().unwrap();
    for a in &c.accounts {
        tx.insert(a).unwrap();
    }
    for _ in 0..3_000 {
        tx.insert(&c.order(&mut rng)).unwrap();
    }
    tx.commit().unwrap();
    (store, c)
}

#[test]
fn the_period_aggregate_is_one_key_range_of_order_lines() {
    let (store, c) = loaded();
    for (name, q) in queries(&c).into_iter().take(4) {
        let plan = store.explain_order_lines(&q).unwrap();
        let text = plan.join("\n");
        assert!(
            plan.iter().any(|l| l.starts_with(
                "SEARCH order_lines USING PRIMARY KEY (tenant_id=? AND ordered_at>? AND ordered_at<?)"
            )),
            "{name}: not a key range of order_lines:\n{text}"
        );
        // No order is looked up, no JSON is parsed, nothing is sorted by SQL.
        assert!(reads_lines_table(&plan), "{name}: reads orders:\n{text}");
        assert!(
            !text.contains("json_each") && !text.contains("VIRTUAL TABLE"),
            "{name}: parses JSON:\n{text}"
        );
        assert!(!text.contains("TEMP B-TREE"), "{name}: sorts:\n{text}");
    }
    // The reading it replaces, for contrast: orders by date, then each order's JSON.
    let plan = store
        .explain_order_lines(&through_json(&queries(&c)[0].1))
        .unwrap()
        .join("\n");
    assert!(
        plan.contains("SEARCH orders") && plan.contains("VIRTUAL TABLE"),
        "{plan}"
    );
}

#[test]
fn migration_7_fills_order_lines_from_the_stored_orders() {
    // Orders written by this library, in a database of the current schema.
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("lines-src.db");
    let c = Cast::new("migrate");
    let mut rng = Rng(99);
    {
        let store = SqliteStore::open(&src).unwrap();
        let mut tx = store.write().unwrap();
        for _ in 0..200 {
            let mut o = c.order(&mut rng);
            if rng.below(5) == 0 {
                o.meta.deleted_at = Some(t0());
            }
            tx.insert(&o).unwrap();
        }
        tx.commit().unwrap();
    }
    // The same orders in a database as version 6 left it, plus one whose lines are not JSON.
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("lines-v6.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in [
            include_str!("../migrations/0001_init.sql"),
            include_str!("../migrations/0002_orders_by_date.sql"),
            include_str!("../migrations/0003_audit_rowid.sql"),
            include_str!("../migrations/0004_survey_type.sql"),
            include_str!("../migrations/0005_accounts_order_stats.sql"),
            include_str!("../migrations/0006_orders_period_covering.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute("ATTACH DATABASE ?1 AS src", [src.to_str().unwrap()])
            .unwrap();
        let n = conn
            .execute("INSERT INTO orders SELECT * FROM src.orders", [])
            .unwrap();
        assert_eq!(n, 200);
        conn.execute_batch(
            "UPDATE orders SET lines = '[{not json' \
             WHERE id = (SELECT id FROM orders WHERE ordered_at IS NOT NULL LIMIT 1); \
             DETACH DATABASE src; PRAGMA user_version = 6;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 7);
    let conn = rusqlite::Connection::open(&path).unwrap();
    // The order with bad lines has none in the table; every other order's lines are there.
    let bad: Vec<u8> = conn
        .query_row(
            "SELECT id FROM orders WHERE lines = '[{not json'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let bad_hex: String = bad.iter().map(|x| format!("{x:02x}")).collect();
    let table = table_rows(&conn);
    assert!(table.len() > 100, "{} lines", table.len());
    assert!(!table.iter().any(|r| r.contains(&bad_hex)));
    let mut good = Vec::new();
    {
        let mut tx = store.write().unwrap();
        tx.purge(
            EntityKind::Order,
            &c.t,
            RecordId::from_bytes(bad.try_into().unwrap()),
        )
        .unwrap();
        tx.commit().unwrap();
        good.extend(expected_rows(&store, &c.t));
    }
    assert_eq!(table, good);
    // The triggers came with the table: a new order's lines arrive.
    let mut tx = store.write().unwrap();
    let mut o = c.order(&mut rng);
    o.fields
        .insert("lines".into(), Value::Lines(c.lines(&mut Rng(5))));
    o.fields.insert("ordered_at".into(), Value::Timestamp(t0()));
    tx.insert(&o).unwrap();
    tx.commit().unwrap();
    assert_eq!(table_rows(&conn), expected_rows(&store, &c.t));
    for (name, q) in queries(&c) {
        assert_eq!(
            groups(&store, &q),
            groups(&store, &through_json(&q)),
            "{name}"
        );
    }
    drop(conn);
    drop(store);
}
