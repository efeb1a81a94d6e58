//! Segmentation and analytics: derived order statistics, the filter language, segments, RFM,
//! lifecycle, profit and the screen pop — each cross-checked against a straightforward computation
//! over raw rows in the test itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)] // test helpers

use crm_core::chrono::{DateTime, Duration, Utc};
use crm_core::{
    fields, Context, EntityKind, ErrorKind, Fields, LineItem, ListRequest, Money, Record, RecordId,
    Value,
};
use crm_tests::{world, World};

fn d(s: &str) -> crm_core::Decimal {
    s.parse().unwrap()
}

fn account(w: &World, ctx: &Context, name: &str, country: &str) -> Record {
    w.crm
        .create(
            ctx,
            EntityKind::Account,
            fields! { "name" => name, "country" => country },
        )
        .unwrap()
}

fn line(product: Option<RecordId>, qty: &str, price: &str, cost: Option<&str>) -> LineItem {
    LineItem {
        product_id: product,
        description: "item".into(),
        quantity: d(qty),
        unit_price: d(price),
        discount_percent: d("0"),
        tax_rate: d("20"),
        unit_cost: cost.map(d),
    }
}

fn order_at(
    w: &World,
    ctx: &Context,
    acc: RecordId,
    currency: &str,
    lines: Vec<LineItem>,
    at: DateTime<Utc>,
) -> Record {
    w.crm
        .create(
            ctx,
            EntityKind::Order,
            fields! { "account_id" => acc, "currency" => currency, "lines" => Value::Lines(lines), "ordered_at" => at },
        )
        .unwrap()
}

fn net(o: &Record) -> crm_core::Decimal {
    o.get("total").as_money().unwrap().amount - o.get("tax_total").as_money().unwrap().amount
}

fn get(w: &World, kind: EntityKind, id: RecordId) -> Record {
    w.crm.get(&w.admin, kind, id).unwrap()
}

// ----------------------------------------------------------------- derived statistics

#[test]
fn order_stats_follow_create_update_delete_restore() {
    let w = world();
    let now = w.crm.now();
    let a = account(&w, &w.admin, "A", "IT").meta.id;
    let b = account(&w, &w.admin, "B", "IT").meta.id;
    let acc = get(&w, EntityKind::Account, a);
    assert!(acc.get("order_count").is_null());
    let v0 = acc.meta.version;

    let o1 = order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![line(None, "2", "100", None)],
        now - Duration::days(10),
    );
    let o2 = order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![line(None, "1", "50", None)],
        now - Duration::days(3),
    );
    let acc = get(&w, EntityKind::Account, a);
    assert_eq!(
        acc.meta.version, v0,
        "derived stats do not bump the version"
    );
    assert_eq!(acc.get("order_count").as_int(), Some(2));
    assert_eq!(
        acc.get("lifetime_value").as_money().unwrap().amount,
        net(&o1) + net(&o2)
    );
    assert_eq!(
        acc.get("lifetime_value").as_money().unwrap().amount,
        d("250")
    );
    assert_eq!(
        acc.get("average_order_value").as_money().unwrap().amount,
        d("125")
    );
    assert_eq!(
        acc.get("first_order_at").as_timestamp(),
        Some(now - Duration::days(10))
    );
    assert_eq!(
        acc.get("last_order_at").as_timestamp(),
        Some(now - Duration::days(3))
    );

    // Cancelled orders do not count.
    let o2 = w
        .crm
        .update(
            &w.admin,
            EntityKind::Order,
            o2.meta.id,
            o2.meta.version,
            fields! { "status" => "cancelled" },
        )
        .unwrap();
    let acc = get(&w, EntityKind::Account, a);
    assert_eq!(acc.get("order_count").as_int(), Some(1));
    assert_eq!(
        acc.get("last_order_at").as_timestamp(),
        Some(now - Duration::days(10))
    );

    // Moving an order to another account moves its stats.
    let o1 = w
        .crm
        .update(
            &w.admin,
            EntityKind::Order,
            o1.meta.id,
            o1.meta.version,
            fields! { "account_id" => b },
        )
        .unwrap();
    assert_eq!(
        get(&w, EntityKind::Account, a).get("order_count").as_int(),
        Some(0)
    );
    assert!(get(&w, EntityKind::Account, a)
        .get("lifetime_value")
        .is_null());
    assert_eq!(
        get(&w, EntityKind::Account, b).get("order_count").as_int(),
        Some(1)
    );

    // Delete and restore.
    w.crm
        .delete(&w.admin, EntityKind::Order, o1.meta.id, None)
        .unwrap();
    assert_eq!(
        get(&w, EntityKind::Account, b).get("order_count").as_int(),
        Some(0)
    );
    w.crm
        .restore(&w.admin, EntityKind::Order, o1.meta.id)
        .unwrap();
    let accb = get(&w, EntityKind::Account, b);
    assert_eq!(accb.get("order_count").as_int(), Some(1));
    assert_eq!(
        accb.get("lifetime_value").as_money().unwrap().amount,
        d("200")
    );
    let _ = o2;
}

#[test]
fn order_stats_keep_the_first_currency_and_count_others_apart() {
    let w = world();
    let now = w.crm.now();
    let a = account(&w, &w.admin, "A", "IT").meta.id;
    order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![line(None, "1", "100", None)],
        now - Duration::days(5),
    );
    order_at(
        &w,
        &w.admin,
        a,
        "USD",
        vec![line(None, "1", "999", None)],
        now - Duration::days(2),
    );
    order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![line(None, "1", "50", None)],
        now - Duration::days(1),
    );
    let acc = get(&w, EntityKind::Account, a);
    assert_eq!(acc.get("order_count").as_int(), Some(3));
    assert_eq!(acc.get("other_currency_orders").as_int(), Some(1));
    let ltv = acc.get("lifetime_value").as_money().unwrap();
    assert_eq!(ltv, Money::parse("150", "EUR").unwrap());
    assert_eq!(
        acc.get("average_order_value").as_money().unwrap().amount,
        d("75")
    );
    assert_eq!(
        acc.get("last_order_at").as_timestamp(),
        Some(now - Duration::days(1))
    );
}

// ----------------------------------------------------------------- generated data

/// A deterministic pseudo-random sequence (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// One order as the test wrote it: the raw row the independent computations use.
#[derive(Clone)]
struct Raw {
    account: RecordId,
    at: DateTime<Utc>,
    product: RecordId,
    qty: crm_core::Decimal,
    price: crm_core::Decimal,
    cost: crm_core::Decimal,
}

impl Raw {
    fn net(&self) -> crm_core::Decimal {
        self.qty * self.price
    }
}

struct Data {
    accounts: Vec<(RecordId, String)>,
    orders: Vec<Raw>,
    products: Vec<(RecordId, crm_core::Decimal)>,
}

fn product(w: &World, sku: &str, price: &str, cost: &str) -> RecordId {
    w.crm
        .create(
            &w.admin,
            EntityKind::Product,
            fields! { "sku" => sku, "name" => sku, "list_price" => Money::parse(price, "EUR").unwrap(), "unit_cost" => Money::parse(cost, "EUR").unwrap() },
        )
        .unwrap()
        .meta
        .id
}

/// 30 accounts: 0–5 orders each (so some have none and some exactly one), amounts from a small set
/// (so totals tie at quintile borders), spread over the last 400 days.
fn populate(
    w: &World,
    ctx: &Context,
    seed: u64,
    products: &[(RecordId, crm_core::Decimal)],
) -> Data {
    let mut g = Lcg(seed);
    let now = w.crm.now();
    let countries = ["IT", "DE", "FR"];
    let prices = ["100", "100", "200", "50"];
    let mut data = Data {
        accounts: Vec::new(),
        orders: Vec::new(),
        products: products.to_vec(),
    };
    for i in 0..30 {
        let country = countries[i % 3];
        let a = account(w, ctx, &format!("Customer {i}"), country).meta.id;
        data.accounts.push((a, country.to_owned()));
        for _ in 0..(i % 6) {
            let (p, cost) = products[g.next(products.len() as u64) as usize];
            let raw = Raw {
                account: a,
                at: now - Duration::days(g.next(400) as i64) - Duration::hours(g.next(24) as i64),
                product: p,
                qty: crm_core::Decimal::from(1 + g.next(3)),
                price: d(prices[g.next(prices.len() as u64) as usize]),
                cost,
            };
            let l = LineItem {
                product_id: Some(p),
                description: "item".into(),
                quantity: raw.qty,
                unit_price: raw.price,
                discount_percent: d("0"),
                tax_rate: d("22"),
                unit_cost: None,
            };
            order_at(w, ctx, a, "EUR", vec![l], raw.at);
            data.orders.push(raw);
        }
    }
    data
}

fn products(w: &World) -> Vec<(RecordId, crm_core::Decimal)> {
    vec![
        (product(w, "WIDGET", "100", "40"), d("40")),
        (product(w, "GADGET", "200", "150"), d("150")),
        (product(w, "GIZMO", "50", "10"), d("10")),
    ]
}

/// Independent RFM: per-account aggregates in plain Rust, quintiles by SQLite's own `NTILE(5)`.
fn expected_rfm(
    orders: &[Raw],
    since: Option<DateTime<Utc>>,
) -> std::collections::BTreeMap<RecordId, (DateTime<Utc>, i64, crm_core::Decimal, u8, u8, u8)> {
    use std::collections::BTreeMap;
    let mut agg: BTreeMap<RecordId, (DateTime<Utc>, i64, crm_core::Decimal)> = BTreeMap::new();
    for o in orders.iter().filter(|o| since.is_none_or(|s| o.at >= s)) {
        let e = agg.entry(o.account).or_insert((o.at, 0, d("0")));
        e.0 = e.0.max(o.at);
        e.1 += 1;
        e.2 += o.net();
    }
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch("CREATE TABLE t (id BLOB, last INTEGER, n INTEGER, cents INTEGER)")
        .unwrap();
    for (id, (last, n, m)) in &agg {
        let cents: i64 = (m * d("100")).trunc().try_into().unwrap();
        db.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            rusqlite::params![id.as_bytes().to_vec(), last.timestamp_micros(), n, cents],
        )
        .unwrap();
    }
    let mut st = db
        .prepare(
            "SELECT id, NTILE(5) OVER (ORDER BY last, id), NTILE(5) OVER (ORDER BY n, id), \
             NTILE(5) OVER (ORDER BY cents, id) FROM t",
        )
        .unwrap();
    let rows: Vec<(Vec<u8>, u8, u8, u8)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = BTreeMap::new();
    for (bytes, r, f, m) in rows {
        let id = *agg
            .keys()
            .find(|k| k.as_bytes().as_slice() == bytes.as_slice())
            .unwrap();
        let (last, n, money) = agg[&id];
        out.insert(id, (last, n, money, r, f, m));
    }
    out
}

fn check_rfm(
    w: &World,
    ctx: &Context,
    rows: &[crm_core::RfmRow],
    expected: &std::collections::BTreeMap<
        RecordId,
        (DateTime<Utc>, i64, crm_core::Decimal, u8, u8, u8),
    >,
) {
    let now = w.crm.now();
    let _ = ctx;
    assert_eq!(
        rows.len(),
        expected.len(),
        "one row per customer with orders"
    );
    for row in rows {
        let (last, n, m, r, f, mm) = expected[&row.account_id];
        assert_eq!(row.frequency, n);
        assert_eq!(row.monetary.amount, m);
        assert_eq!(row.recency_days, (now - last).num_seconds() / 86_400);
        assert_eq!(
            (row.r, row.f, row.m),
            (r, f, mm),
            "scores of {}",
            row.account_id
        );
        assert_eq!(
            row.segment,
            crm_core::analytics::rfm_segment(&crm_core::analytics::default_rfm_rules(), r, f, mm)
        );
    }
}

#[test]
fn rfm_matches_sql_ntile_over_raw_orders() {
    let w = world();
    let prods = products(&w);
    let data = populate(&w, &w.admin, 7, &prods);
    // Fast path: all history, from the maintained account statistics.
    let rows = w
        .crm
        .rfm(&w.admin, &crm_core::RfmOptions::default())
        .unwrap();
    let expected = expected_rfm(&data.orders, None);
    assert!(
        expected.len() < data.accounts.len(),
        "customers without orders are left out"
    );
    check_rfm(&w, &w.admin, &rows, &expected);
    // Ties exist at quintile borders in this data set (equal totals), broken by id.
    let mut totals: Vec<_> = expected.values().map(|e| e.2).collect();
    totals.sort();
    totals.dedup();
    assert!(
        totals.len() < expected.len(),
        "the data should contain equal totals"
    );

    // Window: only orders of the last 180 days (slow path over the orders).
    let opts = crm_core::RfmOptions {
        window_days: Some(180),
        ..Default::default()
    };
    let rows = w.crm.rfm(&w.admin, &opts).unwrap();
    let expected = expected_rfm(&data.orders, Some(w.crm.now() - Duration::days(180)));
    check_rfm(&w, &w.admin, &rows, &expected);
}

#[test]
fn rfm_uses_a_custom_rule_table() {
    let w = world();
    let prods = products(&w);
    populate(&w, &w.admin, 11, &prods);
    let rules = vec![crm_core::analytics::RfmRule {
        segment: "top".into(),
        r: (5, 5),
        f: (1, 5),
        m: (1, 5),
    }];
    let rows = w
        .crm
        .rfm(
            &w.admin,
            &crm_core::RfmOptions {
                rules: Some(rules),
                ..Default::default()
            },
        )
        .unwrap();
    for r in rows {
        assert_eq!(r.segment, if r.r == 5 { "top" } else { "other" });
    }
}

#[test]
fn rfm_across_currencies_needs_rates() {
    let w = world();
    let now = w.crm.now();
    let a = account(&w, &w.admin, "EUR buyer", "IT").meta.id;
    let b = account(&w, &w.admin, "USD buyer", "US").meta.id;
    let c = account(&w, &w.admin, "Mixed buyer", "DE").meta.id;
    order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![line(None, "1", "100", None)],
        now - Duration::days(3),
    );
    order_at(
        &w,
        &w.admin,
        b,
        "USD",
        vec![line(None, "1", "300", None)],
        now - Duration::days(2),
    );
    order_at(
        &w,
        &w.admin,
        c,
        "EUR",
        vec![line(None, "1", "10", None)],
        now - Duration::days(9),
    );
    order_at(
        &w,
        &w.admin,
        c,
        "USD",
        vec![line(None, "1", "10", None)],
        now - Duration::days(1),
    );
    let e = w
        .crm
        .rfm(&w.admin, &crm_core::RfmOptions::default())
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("rates_needed"), "{e}");
    let eur: crm_core::Currency = "EUR".parse().unwrap();
    let usd: crm_core::Currency = "USD".parse().unwrap();
    let rates = crm_core::RateTable::new(eur).with_rate(usd, d("0.5"));
    let rows = w
        .crm
        .rfm(
            &w.admin,
            &crm_core::RfmOptions {
                rates: Some(rates),
                ..Default::default()
            },
        )
        .unwrap();
    let by: std::collections::HashMap<_, _> = rows.iter().map(|r| (r.account_id, r)).collect();
    assert_eq!(by[&a].monetary, Money::parse("100", "EUR").unwrap());
    assert_eq!(by[&b].monetary, Money::parse("150", "EUR").unwrap());
    assert_eq!(by[&c].monetary, Money::parse("15", "EUR").unwrap());
    assert_eq!(by[&c].frequency, 2);
    assert_eq!(by[&c].recency_days, 1);
}

#[test]
fn lifecycle_matches_raw_first_and_last_orders() {
    let w = world();
    let prods = products(&w);
    let data = populate(&w, &w.admin, 3, &prods);
    let now = w.crm.now();
    let t = crm_core::analytics::LifecycleThresholds::default();
    let got = w.crm.lifecycles(&w.admin, None, &t).unwrap();
    assert_eq!(got.len(), data.accounts.len());
    for (id, stage) in got {
        let mine: Vec<&Raw> = data.orders.iter().filter(|o| o.account == id).collect();
        let days = |x: DateTime<Utc>| (now - x).num_seconds() / 86_400;
        let expected = if mine.is_empty() {
            "prospect"
        } else {
            let first = mine.iter().map(|o| o.at).min().unwrap();
            let last = mine.iter().map(|o| o.at).max().unwrap();
            if days(first) <= 30 {
                "new"
            } else if days(last) <= 90 {
                "active"
            } else if days(last) <= 365 {
                "dormant"
            } else {
                "inactive"
            }
        };
        assert_eq!(stage.name(), expected);
    }
}

#[test]
fn profit_by_country_and_product_matches_raw_lines() {
    let w = world();
    let prods = products(&w);
    let data = populate(&w, &w.admin, 5, &prods);
    let now = w.crm.now();
    let (from, to) = (now - Duration::days(90), now);
    let rows = w
        .crm
        .profit(
            &w.admin,
            &crm_core::ProfitOptions {
                from,
                to,
                by: crm_core::ProfitDimension::Field {
                    field: "country".into(),
                },
                rates: None,
                rfm: Default::default(),
            },
        )
        .unwrap();
    let country: std::collections::HashMap<_, _> = data.accounts.iter().cloned().collect();
    let mut expected: std::collections::BTreeMap<
        (String, RecordId),
        (crm_core::Decimal, crm_core::Decimal),
    > = Default::default();
    for o in data.orders.iter().filter(|o| o.at >= from && o.at < to) {
        let e = expected
            .entry((country[&o.account].clone(), o.product))
            .or_insert((d("0"), d("0")));
        e.0 += o.net();
        e.1 += o.qty * o.cost;
    }
    assert_eq!(rows.len(), expected.len());
    for r in &rows {
        let (rev, cost) = expected[&(r.segment.clone(), r.product_id.unwrap())];
        assert_eq!(r.revenue.amount, rev);
        assert_eq!(r.cost.amount, cost);
        assert_eq!(r.margin.amount, rev - cost);
        assert_eq!(r.lines_without_cost, 0);
    }
    for pair in rows.windows(2) {
        assert!(
            pair[0].margin.amount >= pair[1].margin.amount,
            "ranked by margin"
        );
    }
    assert!(data.products.len() == 3);

    // By RFM segment: every order's revenue lands in exactly one segment.
    let rows = w
        .crm
        .profit(
            &w.admin,
            &crm_core::ProfitOptions {
                from,
                to,
                by: crm_core::ProfitDimension::Rfm,
                rates: None,
                rfm: Default::default(),
            },
        )
        .unwrap();
    let total: crm_core::Decimal = rows.iter().map(|r| r.revenue.amount).sum();
    let raw: crm_core::Decimal = data
        .orders
        .iter()
        .filter(|o| o.at >= from && o.at < to)
        .map(Raw::net)
        .sum();
    assert_eq!(total, raw);
}
