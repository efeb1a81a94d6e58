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
    w.on(ctx)
        .records()
        .create(
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
    w.on(ctx).records().create(EntityKind::Order,
            fields! { "account_id" => acc, "currency" => currency, "lines" => Value::Lines(lines), "ordered_at" => at },
        )
        .unwrap()
}

fn net(o: &Record) -> crm_core::Decimal {
    o.get("total").as_money().unwrap().amount - o.get("tax_total").as_money().unwrap().amount
}

fn get(w: &World, kind: EntityKind, id: RecordId) -> Record {
    w.admin_session().records().get(kind, id).unwrap()
}

// ----------------------------------------------------------------- derived statistics

#[test]
fn order_stats_follow_create_update_delete_restore() {
    let w = world();
    let admin = w.admin_session();
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
    let o2 = admin
        .records()
        .update(
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
    let o1 = admin
        .records()
        .update(
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
    admin
        .records()
        .delete(EntityKind::Order, o1.meta.id, None)
        .unwrap();
    assert_eq!(
        get(&w, EntityKind::Account, b).get("order_count").as_int(),
        Some(0)
    );
    admin
        .records()
        .restore(EntityKind::Order, o1.meta.id)
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
    w.admin_session().records().create(EntityKind::Product,
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

/// Expected RFM per account: last order, frequency, monetary, r, f, m.
type Expected =
    std::collections::BTreeMap<RecordId, (DateTime<Utc>, i64, crm_core::Decimal, u8, u8, u8)>;

/// Independent RFM: per-account aggregates in plain Rust, quintiles by SQLite's own `NTILE(5)`.
fn expected_rfm(orders: &[Raw], since: Option<DateTime<Utc>>) -> Expected {
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

fn check_rfm(w: &World, ctx: &Context, rows: &[crm_core::RfmRow], expected: &Expected) {
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
    let admin = w.admin_session();
    let prods = products(&w);
    let data = populate(&w, &w.admin, 7, &prods);
    // Fast path: all history, from the maintained account statistics.
    let rows = admin
        .analytics()
        .rfm(&crm_core::RfmOptions::default())
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
    let rows = admin.analytics().rfm(&opts).unwrap();
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
        .admin_session()
        .analytics()
        .rfm(&crm_core::RfmOptions {
            rules: Some(rules),
            ..Default::default()
        })
        .unwrap();
    for r in rows {
        assert_eq!(r.segment, if r.r == 5 { "top" } else { "other" });
    }
}

#[test]
fn rfm_across_currencies_needs_rates() {
    let w = world();
    let admin = w.admin_session();
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
    let e = admin
        .analytics()
        .rfm(&crm_core::RfmOptions::default())
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("rates_needed"), "{e}");
    let eur: crm_core::Currency = "EUR".parse().unwrap();
    let usd: crm_core::Currency = "USD".parse().unwrap();
    let rates = crm_core::RateTable::new(eur).with_rate(usd, d("0.5"));
    let rows = admin
        .analytics()
        .rfm(&crm_core::RfmOptions {
            rates: Some(rates),
            ..Default::default()
        })
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
    let got = w.admin_session().analytics().lifecycles(None, &t).unwrap();
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
    let admin = w.admin_session();
    let prods = products(&w);
    let data = populate(&w, &w.admin, 5, &prods);
    let now = w.crm.now();
    let (from, to) = (now - Duration::days(90), now);
    let rows = admin
        .analytics()
        .profit(&crm_core::ProfitOptions {
            from,
            to,
            by: crm_core::ProfitDimension::Field {
                field: "country".into(),
            },
            rates: None,
            rfm: Default::default(),
        })
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
    let rows = admin
        .analytics()
        .profit(&crm_core::ProfitOptions {
            from,
            to,
            by: crm_core::ProfitDimension::Rfm,
            rates: None,
            rfm: Default::default(),
        })
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

// ----------------------------------------------------------------- filter language

use crm_core::segment::{parse, Expr};
use crm_core::{Action, FieldAccess, ObjectRule, Policy, Scope};

fn ids_of(page: &[Record]) -> std::collections::BTreeSet<RecordId> {
    page.iter().map(|r| r.meta.id).collect()
}

fn matching(w: &World, ctx: &Context, text: &str) -> std::collections::BTreeSet<RecordId> {
    let eur = "EUR".parse().ok();
    let session = w.on(ctx);
    let f = session
        .segments()
        .parse(EntityKind::Account, text, eur)
        .unwrap();
    ids_of(
        &session
            .records()
            .list(EntityKind::Account, &ListRequest::filter(f).limit(1000))
            .unwrap()
            .items,
    )
}

fn all_accounts(w: &World) -> Vec<Record> {
    w.admin_session()
        .records()
        .list(EntityKind::Account, &ListRequest::default().limit(1000))
        .unwrap()
        .items
}

#[test]
fn filter_text_round_trips_through_display_and_serde() {
    let texts = [
        r#"country in ("IT", "DE") and lifetime_value > 1000 and days_since_last_order < 90 and custom.sector = "retail""#,
        r#"a = 1 or b = 2 and not (c != 3 or d is not null)"#,
        r#"name starts with "Ac\"me" and roles contains "customer" and x <= -2.5 and y >= 2026-01-31"#,
        r#"t > 2026-01-31T10:00:00+00:00 and m = 10.50 EUR and b = true and n not in (1, 2)"#,
    ];
    for t in texts {
        let e = parse(t).unwrap();
        let shown = e.to_string();
        let again = parse(&shown).unwrap();
        assert_eq!(again.to_string(), shown, "display is stable for {t}");
        let json = serde_json::to_string(&e).unwrap();
        let back: Expr = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
    // Precedence: `and` binds tighter than `or`; `not` tighter than both.
    assert_eq!(
        parse("a = 1 or b = 2 and c = 3").unwrap().to_string(),
        "a = 1 or (b = 2 and c = 3)"
    );
    assert_eq!(
        parse("(a = 1 or b = 2) and c = 3").unwrap().to_string(),
        "(a = 1 or b = 2) and c = 3"
    );
    assert_eq!(
        parse("NOT a = 1 AND b = 2").unwrap().to_string(),
        "not a = 1 and b = 2"
    );
}

#[test]
fn filter_precedence_selects_the_right_records() {
    let w = world();
    let it_a = account(&w, &w.admin, "A", "IT").meta.id;
    let de_b = account(&w, &w.admin, "B", "DE").meta.id;
    let fr_a = account(&w, &w.admin, "A", "FR").meta.id;
    let want = |v: &[RecordId]| v.iter().copied().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        matching(
            &w,
            &w.admin,
            r#"country = "IT" or country = "FR" and name = "B""#
        ),
        want(&[it_a])
    );
    assert_eq!(
        matching(
            &w,
            &w.admin,
            r#"(country = "IT" or country = "FR") and name = "A""#
        ),
        want(&[it_a, fr_a])
    );
    assert_eq!(
        matching(&w, &w.admin, r#"not country in ("IT", "FR")"#),
        want(&[de_b])
    );
    assert_eq!(
        matching(&w, &w.admin, r#"name = "A" and not country = "IT""#),
        want(&[fr_a])
    );
}

#[test]
fn filter_errors_name_field_and_column() {
    let w = world();
    let err = |text: &str| {
        w.admin_session()
            .segments()
            .parse(EntityKind::Account, text, None)
            .unwrap_err()
    };
    let cases: &[(&str, ErrorKind, Option<&str>, &str, usize)] = &[
        (
            "country = ",
            ErrorKind::InvalidQuery,
            Some("country"),
            "syntax",
            11,
        ),
        ("country ~ 1", ErrorKind::InvalidQuery, None, "syntax", 9),
        (
            r#"country = "IT" and"#,
            ErrorKind::InvalidQuery,
            None,
            "syntax",
            19,
        ),
        (
            r#"country = "IT" country"#,
            ErrorKind::InvalidQuery,
            None,
            "syntax",
            16,
        ),
        (
            r#"(country = "IT""#,
            ErrorKind::InvalidQuery,
            None,
            "syntax",
            16,
        ),
        (
            r#"name = "open"#,
            ErrorKind::InvalidQuery,
            None,
            "syntax",
            8,
        ),
        (
            "country in (1,",
            ErrorKind::InvalidQuery,
            Some("country"),
            "syntax",
            15,
        ),
        (
            "name starts with 3",
            ErrorKind::InvalidQuery,
            Some("name"),
            "syntax",
            18,
        ),
        (
            "name is empty",
            ErrorKind::InvalidQuery,
            Some("name"),
            "syntax",
            9,
        ),
        (
            "order_count = 1 XYZ",
            ErrorKind::InvalidQuery,
            Some("order_count"),
            "syntax",
            17,
        ),
        (
            r#"country = "IT" and colour = "red""#,
            ErrorKind::InvalidQuery,
            Some("colour"),
            "unknown_field",
            20,
        ),
        (
            r#"country = "IT" and custom.nope = 1"#,
            ErrorKind::InvalidQuery,
            Some("custom.nope"),
            "unknown_field",
            20,
        ),
        (
            "order_count = 1.5",
            ErrorKind::InvalidQuery,
            Some("order_count"),
            "type",
            1,
        ),
        (
            "lifetime_value > 1000",
            ErrorKind::InvalidQuery,
            Some("lifetime_value"),
            "currency_needed",
            1,
        ),
        (
            "days_since_last_order < 1.5",
            ErrorKind::InvalidQuery,
            Some("days_since_last_order"),
            "type",
            1,
        ),
    ];
    for (text, kind, field, rule, col) in cases {
        let e = err(text);
        assert_eq!(e.kind, *kind, "{text}: {e}");
        assert_eq!(e.field.as_deref(), *field, "{text}: {e}");
        assert_eq!(e.rule.as_deref(), Some(*rule), "{text}: {e}");
        assert!(
            e.message.ends_with(&format!("at column {col}")),
            "{text}: {}",
            e.message
        );
    }
    // A value of the wrong type for its field is caught by the facade's resolver, with the position.
    let e = err(r#"name = "x" or order_count = "many""#);
    assert_eq!(e.field.as_deref(), Some("order_count"));
    assert!(e.message.ends_with("at column 15"), "{}", e.message);
}

#[test]
fn hidden_fields_are_refused_in_filters_with_their_position() {
    let w = world();
    let policy = Policy::admin().field(EntityKind::Account, "lifetime_value", FieldAccess::Hidden);
    let role = w.role("no money", &policy);
    let u_ctx = w.user("nomo", role, fields! {});
    let u = w.on(&u_ctx);
    let e = u
        .segments()
        .parse(
            EntityKind::Account,
            r#"name = "x" and lifetime_value > 5 EUR"#,
            None,
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
    assert_eq!(e.field.as_deref(), Some("lifetime_value"));
    assert!(e.message.ends_with("at column 16"), "{}", e.message);
    // And the value never shows up in results.
    let a = account(&w, &w.admin, "A", "IT").meta.id;
    order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![line(None, "1", "10", None)],
        w.crm.now(),
    );
    let r = u.records().get(EntityKind::Account, a).unwrap();
    assert!(r.get("lifetime_value").is_null());
    assert_eq!(r.get("order_count").as_int(), Some(1));
    // Analytics built on the hidden field are refused rather than silently leaking or dropping it.
    let e = u
        .analytics()
        .rfm(&crm_core::RfmOptions::default())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert_eq!(e.field.as_deref(), Some("lifetime_value"));
}

#[test]
fn values_are_bound_parameters() {
    let w = world();
    let evil = "x' OR 1=1 --";
    let hit = account(&w, &w.admin, evil, "IT").meta.id;
    account(&w, &w.admin, "plain", "IT");
    let want: std::collections::BTreeSet<_> = [hit].into_iter().collect();
    assert_eq!(matching(&w, &w.admin, r#"name = "x' OR 1=1 --""#), want);
    assert_eq!(matching(&w, &w.admin, r#"name = 'x\' OR 1=1 --'"#), want);
    assert_eq!(
        matching(&w, &w.admin, r#"name contains "' OR 1=1 --""#),
        want
    );
    assert!(matching(&w, &w.admin, r#"name = "' OR 1=1 --""#).is_empty());
}

#[test]
fn stats_filters_and_days_since_match_raw_data() {
    let w = world();
    let prods = products(&w);
    let data = populate(&w, &w.admin, 13, &prods);
    let now = w.crm.now();
    let accounts = all_accounts(&w);
    let mine = |id: RecordId| data.orders.iter().filter(move |o| o.account == id);
    for (text, pred) in [
        (
            "days_since_last_order < 90",
            Box::new(|id: RecordId| mine(id).any(|o| (now - o.at).num_seconds() / 86_400 < 90))
                as Box<dyn Fn(RecordId) -> bool>,
        ),
        (
            "days_since_last_order >= 90",
            Box::new(|id: RecordId| {
                mine(id).count() > 0 && mine(id).all(|o| (now - o.at).num_seconds() / 86_400 >= 90)
            }),
        ),
        (
            "days_since_last_order <= 30 or days_since_last_order > 300",
            Box::new(|id: RecordId| {
                let last = mine(id).map(|o| o.at).max();
                last.is_some_and(|l| {
                    let dd = (now - l).num_seconds() / 86_400;
                    dd <= 30 || dd > 300
                })
            }),
        ),
        (
            "lifetime_value > 400 and order_count >= 2",
            Box::new(|id: RecordId| {
                mine(id).map(Raw::net).sum::<crm_core::Decimal>() > d("400")
                    && mine(id).count() >= 2
            }),
        ),
        (
            r#"country in ("IT", "DE") and lifetime_value >= 200 EUR"#,
            Box::new(|id: RecordId| {
                let c = &data.accounts.iter().find(|a| a.0 == id).unwrap().1;
                (c == "IT" || c == "DE")
                    && mine(id).map(Raw::net).sum::<crm_core::Decimal>() >= d("200")
            }),
        ),
        (
            "order_count is null or order_count = 0",
            Box::new(|id: RecordId| mine(id).count() == 0),
        ),
        (
            "days_since_last_order is null",
            Box::new(|id: RecordId| mine(id).count() == 0),
        ),
    ] {
        let expected: std::collections::BTreeSet<RecordId> = accounts
            .iter()
            .map(|a| a.meta.id)
            .filter(|id| pred(*id))
            .collect();
        assert_eq!(matching(&w, &w.admin, text), expected, "{text}");
    }
    // Exact day borders: an order exactly 90 days ago is 90 days old.
    let a = account(&w, &w.admin, "border", "IT").meta.id;
    order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![line(None, "1", "1", None)],
        now - Duration::days(90),
    );
    assert!(matching(&w, &w.admin, "days_since_last_order = 90").contains(&a));
    assert!(!matching(&w, &w.admin, "days_since_last_order < 90").contains(&a));
    assert!(matching(&w, &w.admin, "days_since_last_order <= 90").contains(&a));
    assert!(!matching(&w, &w.admin, "days_since_last_order > 90").contains(&a));
    assert!(matching(&w, &w.admin, "days_since_last_order != 89").contains(&a));
}

#[test]
fn custom_fields_work_in_the_filter_language() {
    let w = world();
    let admin = w.admin_session();
    admin
        .records()
        .create(
            EntityKind::CustomField,
            fields! { "entity" => "account", "name" => "sector", "field_type" => "text" },
        )
        .unwrap();
    let r = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Shop", "country" => "IT", "custom.sector" => "retail" },
        )
        .unwrap()
        .meta
        .id;
    account(&w, &w.admin, "Bank", "IT");
    let got = matching(
        &w,
        &w.admin,
        r#"country in ("IT", "DE") and custom.sector = "retail""#,
    );
    assert_eq!(got, [r].into_iter().collect());
}

// ----------------------------------------------------------------- segments

fn segment(w: &World, ctx: &Context, f: Fields) -> RecordId {
    w.on(ctx)
        .records()
        .create(EntityKind::Segment, f)
        .unwrap()
        .meta
        .id
}

#[test]
fn segment_refresh_reports_who_entered_and_left() {
    let w = world();
    let admin = w.admin_session();
    let now = w.crm.now();
    let a = account(&w, &w.admin, "A", "IT").meta.id;
    let b = account(&w, &w.admin, "B", "IT").meta.id;
    let c = account(&w, &w.admin, "C", "DE").meta.id;
    let s = segment(
        &w,
        &w.admin,
        fields! { "name" => "Recent Italians", "entity" => "account", "definition" => r#"country = "IT" and days_since_last_order < 30"#, "currency" => "EUR" },
    );
    order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![line(None, "1", "10", None)],
        now - Duration::days(1),
    );
    order_at(
        &w,
        &w.admin,
        c,
        "EUR",
        vec![line(None, "1", "10", None)],
        now - Duration::days(1),
    );
    assert_eq!(admin.segments().count(s).unwrap(), 1);
    let diff = admin.segments().refresh(s).unwrap();
    assert_eq!(diff.entered, vec![a]);
    assert!(diff.left.is_empty());
    let seg = get(&w, EntityKind::Segment, s);
    assert_eq!(seg.get("member_count").as_int(), Some(1));
    assert_eq!(seg.get("last_refreshed_at").as_timestamp(), Some(now));

    // Time passes, b orders; a's order ages out.
    w.clock.advance(Duration::days(40));
    let now = w.crm.now();
    order_at(
        &w,
        &w.admin,
        b,
        "EUR",
        vec![line(None, "1", "10", None)],
        now,
    );
    let diff = admin.segments().refresh(s).unwrap();
    assert_eq!(diff.entered, vec![b]);
    assert_eq!(diff.left, vec![a]);
    assert_eq!(diff.member_count, 1);
    // Members page through the ordinary list.
    let page = admin
        .segments()
        .members(s, &ListRequest::default())
        .unwrap();
    assert_eq!(ids_of(&page.items), [b].into_iter().collect());
    // The refresh is an audited update.
    let h = admin
        .audit()
        .history(EntityKind::Segment, s, None, None)
        .unwrap();
    assert!(h.entries.len() >= 3, "created + two refreshes");
}

#[test]
fn static_segments_and_paging() {
    let w = world();
    let admin = w.admin_session();
    let accs: Vec<RecordId> = (0..7)
        .map(|i| account(&w, &w.admin, &format!("S{i}"), "IT").meta.id)
        .collect();
    let members = serde_json::Value::Array(
        accs[..5]
            .iter()
            .map(|i| serde_json::json!(i.to_string()))
            .collect(),
    );
    let s = segment(
        &w,
        &w.admin,
        fields! { "name" => "Hand picked", "entity" => "account", "kind" => "static", "member_ids" => Value::Json(members) },
    );
    assert_eq!(admin.segments().count(s).unwrap(), 5);
    let mut seen = Vec::new();
    let mut req = ListRequest::default().limit(2);
    loop {
        let p = admin.segments().members(s, &req).unwrap();
        seen.extend(p.items.iter().map(|r| r.meta.id));
        match p.next {
            Some(n) => req = req.after(Some(n)),
            None => break,
        }
    }
    let mut expected = accs[..5].to_vec();
    expected.sort();
    assert_eq!(seen, expected, "all members, once, in id order");
    let diff = admin.segments().refresh(s).unwrap();
    assert_eq!(diff.member_count, 5);
    assert!(diff.entered.is_empty() && diff.left.is_empty());
}

#[test]
fn a_segment_definition_is_checked_when_saved() {
    let w = world();
    let admin = w.admin_session();
    let segments = |w: &World| {
        w.admin_session()
            .records()
            .count(EntityKind::Segment, None)
            .unwrap()
    };
    let save = |f: Fields| admin.records().create(EntityKind::Segment, f).unwrap_err();
    // A syntax error is reported on the definition field with its position, and nothing is saved.
    let e = save(fields! { "name" => "bad", "entity" => "account", "definition" => "country = " });
    assert_eq!(e.kind, ErrorKind::InvalidQuery);
    // Stored text is trimmed, so the end is column 10; the field is named under `definition`.
    assert!(e.message.ends_with("at column 10"), "{e}");
    assert_eq!(e.field.as_deref(), Some("definition.country"));
    // An unknown field, and a type mismatch, each named.
    let e = save(
        fields! { "name" => "bad", "entity" => "account", "definition" => "colour = \"red\"" },
    );
    assert_eq!(e.kind, ErrorKind::InvalidQuery);
    assert_eq!(e.field.as_deref(), Some("definition.colour"), "{e}");
    let e = save(
        fields! { "name" => "bad", "entity" => "account", "definition" => "lifetime_value > \"lots\"" },
    );
    assert_eq!(e.kind, ErrorKind::InvalidQuery);
    assert_eq!(e.field.as_deref(), Some("definition.lifetime_value"), "{e}");
    // A dynamic segment needs a definition.
    let e = save(fields! { "name" => "empty", "entity" => "account" });
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Validation, Some("definition"))
    );
    assert_eq!(segments(&w), 0);
    // A valid one saves; changing its definition to a bad one is refused and keeps the old text.
    let s = segment(
        &w,
        &w.admin,
        fields! { "name" => "IT", "entity" => "account", "definition" => r#"country = "IT""# },
    );
    let e = w
        .admin_session()
        .records()
        .update(
            EntityKind::Segment,
            s,
            1,
            fields! { "definition" => "country in (" },
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidQuery);
    assert_eq!(
        get(&w, EntityKind::Segment, s).text("definition"),
        Some(r#"country = "IT""#)
    );
    // A field the saving user may not see is refused, as in a query.
    let policy = Policy::admin().field(EntityKind::Account, "lifetime_value", FieldAccess::Hidden);
    let role = w.role("no values", &policy);
    let analyst = w.user("analyst", role, fields! {});
    let e = w.on(&analyst).records().create(EntityKind::Segment,
            fields! { "name" => "big", "entity" => "account", "definition" => "lifetime_value > 100" },
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
    assert_eq!(e.field.as_deref(), Some("definition.lifetime_value"), "{e}");
    assert_eq!(segments(&w), 1);
}

// ----------------------------------------------------------------- permissions

fn rep(w: &World, name: &str) -> Context {
    let mut p = Policy::default();
    p.objects.insert(
        "*".into(),
        ObjectRule::new(
            &[Action::Create, Action::Read, Action::Update],
            &[Scope::Own],
            &[Scope::Own],
        ),
    );
    // The product catalogue is everyone's to read: an order line names a product the rep may see.
    let p = p.allow(
        EntityKind::Product,
        ObjectRule::new(&[Action::Read], &[Scope::All], &[Scope::Own]),
    );
    let role = w.role(
        &format!("rep {name}"),
        &p.field(EntityKind::Account, "vat_number", FieldAccess::Hidden),
    );
    w.user(name, role, fields! {})
}

#[test]
fn a_rep_sees_only_their_customers_in_rfm_profit_and_screen_pop() {
    let w = world();
    let admin = w.admin_session();
    let prods = products(&w);
    let rep1_ctx = rep(&w, "rita");
    let rep1 = w.on(&rep1_ctx);
    let mine = populate(&w, &rep1_ctx, 21, &prods);
    let theirs = populate(&w, &w.admin, 22, &prods);
    let rows = rep1
        .analytics()
        .rfm(&crm_core::RfmOptions::default())
        .unwrap();
    let expected = expected_rfm(&mine.orders, None);
    check_rfm(&w, &rep1_ctx, &rows, &expected);
    let all = admin
        .analytics()
        .rfm(&crm_core::RfmOptions::default())
        .unwrap();
    let mut every = mine.orders.clone();
    every.extend(theirs.orders.iter().cloned());
    check_rfm(&w, &w.admin, &all, &expected_rfm(&every, None));

    let now = w.crm.now();
    let profit = |ctx: &Context| {
        w.on(ctx)
            .analytics()
            .profit(&crm_core::ProfitOptions {
                from: now - Duration::days(400),
                to: now + Duration::days(1),
                by: crm_core::ProfitDimension::Lifecycle,
                rates: None,
                rfm: Default::default(),
            })
            .unwrap()
            .iter()
            .map(|r| r.revenue.amount)
            .sum::<crm_core::Decimal>()
    };
    assert_eq!(
        profit(&rep1_ctx),
        mine.orders.iter().map(Raw::net).sum::<crm_core::Decimal>()
    );
    assert_eq!(
        profit(&w.admin),
        every.iter().map(Raw::net).sum::<crm_core::Decimal>()
    );

    // Screen pop: the admin's customer is invisible to the rep.
    let acc = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Caller", "phone" => "02 1234 5678", "vat_number" => "IT123" },
        )
        .unwrap();
    assert!(rep1
        .analytics()
        .screen_pop("+39 02 1234 5678", None)
        .unwrap()
        .candidates
        .is_empty());
    assert_eq!(
        admin
            .analytics()
            .screen_pop("+39 02 1234 5678", None)
            .unwrap()
            .account
            .unwrap()
            .meta
            .id,
        acc.meta.id
    );
    // The rep's own customer shows, without hidden fields.
    let own = rep1
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Own", "phone" => "02 9999 0000" },
        )
        .unwrap();
    let own = admin
        .records()
        .update(
            EntityKind::Account,
            own.meta.id,
            own.meta.version,
            fields! { "vat_number" => "IT999" },
        )
        .unwrap();
    assert_eq!(own.get("vat_number").as_text(), Some("IT999"));
    let pop = rep1.analytics().screen_pop("0299990000", None).unwrap();
    let a = pop.account.unwrap();
    assert_eq!(a.meta.id, own.meta.id);
    assert!(a.get("vat_number").is_null());
}

struct Erp;

impl crm_core::ErpFacts for Erp {
    fn facts(&self, _account: RecordId) -> crm_core::Result<crm_core::ErpFactsRow> {
        Ok(crm_core::ErpFactsRow {
            balance: Some(Money::parse("1234.50", "EUR").unwrap()),
            credit_terms: Some("30 days".into()),
            overdue_invoices: vec![crm_core::OverdueInvoice {
                number: "INV-7".into(),
                amount: Money::parse("200", "EUR").unwrap(),
                due: "2025-12-01".parse().unwrap(),
            }],
        })
    }
}

#[test]
fn screen_pop_gathers_the_customer_picture() {
    let w = world();
    let admin = w.admin_session();
    let now = w.crm.now();
    let acc = admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Caller", "phone" => "02 1234 5678" },
        )
        .unwrap()
        .meta
        .id;
    let contact = admin
        .records()
        .create(
            EntityKind::Contact,
            fields! { "last_name" => "Rossi", "mobile" => "333 123 4567", "account_id" => acc },
        )
        .unwrap()
        .meta
        .id;
    for i in 0..12 {
        order_at(
            &w,
            &w.admin,
            acc,
            "EUR",
            vec![line(None, "1", "10", None)],
            now - Duration::days(i * 20),
        );
    }
    admin
        .records()
        .create(
            EntityKind::Opportunity,
            fields! { "name" => "Upsell", "account_id" => acc },
        )
        .unwrap();
    admin
        .records()
        .create(
            EntityKind::Case,
            fields! { "subject" => "Broken", "account_id" => acc },
        )
        .unwrap();
    admin
        .records()
        .create(
            EntityKind::Activity,
            fields! { "activity_type" => "call", "account_id" => acc },
        )
        .unwrap();
    let pop = admin
        .analytics()
        .screen_pop("+393331234567", Some(&Erp))
        .unwrap();
    assert_eq!(pop.contact.as_ref().unwrap().meta.id, contact);
    assert_eq!(pop.account.as_ref().unwrap().meta.id, acc);
    assert_eq!(pop.contacts.len(), 1);
    assert_eq!(pop.recent_orders.len(), 10);
    let dates: Vec<_> = pop
        .recent_orders
        .iter()
        .map(|o| o.get("ordered_at").as_timestamp().unwrap())
        .collect();
    assert!(dates.windows(2).all(|p| p[0] >= p[1]), "newest first");
    assert!(matches!(pop.recent_orders[0].get("lines"), Value::Lines(l) if l.len() == 1));
    assert_eq!(pop.open_opportunities.len(), 1);
    assert_eq!(pop.open_cases.len(), 1);
    assert_eq!(pop.last_activities.len(), 1);
    assert!(pop.rfm_segment.is_some());
    assert_eq!(pop.lifecycle, Some(crm_core::analytics::Lifecycle::Active));
    assert_eq!(pop.erp.unwrap().credit_terms.as_deref(), Some("30 days"));

    // Two parties with one number: candidates only.
    admin
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => "Twin", "phone" => "02 1234 5678" },
        )
        .unwrap();
    let pop = admin
        .analytics()
        .screen_pop("02 1234 5678", Some(&Erp))
        .unwrap();
    assert_eq!(pop.candidates.len(), 2);
    assert!(pop.account.is_none() && pop.erp.is_none());
}

/// Timing of the analytic paths on a larger data set: `cargo test --release -p crm-tests --test
/// analytics perf -- --ignored --nocapture`.
#[test]
#[ignore]
fn perf_rfm_and_order_writes() {
    let w = world();
    let admin = w.admin_session();
    let n_accounts = 5_000;
    let accounts: Vec<RecordId> = admin
        .records()
        .create_many(
            EntityKind::Account,
            (0..n_accounts)
                .map(|i| fields! { "name" => format!("C{i}"), "country" => "IT" }.into())
                .collect(),
        )
        .unwrap()
        .iter()
        .map(|r| r.meta.id)
        .collect();
    let now = w.crm.now();
    let t = std::time::Instant::now();
    let mut n_orders = 0;
    for chunk in accounts.chunks(500) {
        let rows = chunk
            .iter()
            .enumerate()
            .flat_map(|(i, a)| {
                (0..(i % 4)).map(move |k| {
                    fields! { "account_id" => *a, "currency" => "EUR", "ordered_at" => now - Duration::days((i * 7 + k * 30) as i64 % 700), "lines" => Value::Lines(vec![line(None, "1", "100", None)]) }
                        .into()
                })
            })
            .collect::<Vec<crm_core::NewRecord>>();
        n_orders += rows.len();
        admin
            .records()
            .create_many(EntityKind::Order, rows)
            .unwrap();
    }
    let write = t.elapsed();
    let one = std::time::Instant::now();
    order_at(
        &w,
        &w.admin,
        accounts[3],
        "EUR",
        vec![line(None, "1", "5", None)],
        now,
    );
    let single = one.elapsed();
    let t = std::time::Instant::now();
    let fast = admin
        .analytics()
        .rfm(&crm_core::RfmOptions::default())
        .unwrap();
    let fast_t = t.elapsed();
    let t = std::time::Instant::now();
    let slow = admin
        .analytics()
        .rfm(&crm_core::RfmOptions {
            window_days: Some(3650),
            ..Default::default()
        })
        .unwrap();
    let slow_t = t.elapsed();
    assert_eq!(fast.len(), slow.len());
    let t = std::time::Instant::now();
    let n = admin
        .records()
        .count(
            EntityKind::Account,
            Some(
                &admin
                    .segments()
                    .parse(
                        EntityKind::Account,
                        "days_since_last_order < 90 and lifetime_value > 150 EUR",
                        None,
                    )
                    .unwrap(),
            ),
        )
        .unwrap();
    let seg_t = t.elapsed();
    let t = std::time::Instant::now();
    let profit = admin
        .analytics()
        .profit(&crm_core::ProfitOptions {
            from: now - Duration::days(3650),
            to: now + Duration::days(1),
            by: crm_core::ProfitDimension::Field {
                field: "country".into(),
            },
            rates: None,
            rfm: Default::default(),
        })
        .unwrap();
    println!(
        "profit over {n_orders} orders: {} rows in {:?}",
        profit.len(),
        t.elapsed()
    );
    println!(
        "{n_orders} orders written in {write:?} ({:?}/order incl. stats); one order {single:?}; \
         rfm fast path {} rows {fast_t:?}; rfm over orders {slow_t:?}; segment count {n} in {seg_t:?}",
        write / n_orders as u32,
        fast.len()
    );
}

// ----------------------------------------------------------------- cross-sell, forecast, KPIs

#[test]
fn cross_sell_matches_hand_counted_baskets() {
    let w = world();
    let now = w.crm.now();
    let p: Vec<RecordId> = (0..4)
        .map(|i| product(&w, &format!("P{i}"), "10", "5"))
        .collect();
    let basket = |acc: RecordId, items: &[usize]| {
        order_at(
            &w,
            &w.admin,
            acc,
            "EUR",
            items
                .iter()
                .map(|i| line(Some(p[*i]), "1", "10", None))
                .collect(),
            now,
        );
    };
    let me = account(&w, &w.admin, "Me", "IT").meta.id;
    let other = account(&w, &w.admin, "Other", "IT").meta.id;
    basket(me, &[0]);
    basket(other, &[0, 1]);
    basket(other, &[0, 1, 2]);
    basket(other, &[1, 3]);
    basket(other, &[3]);
    // Baskets: {0} {0,1} {0,1,2} {1,3} {3}: N = 5; count(0)=3, count(1)=3, count(2)=1, count(3)=2.
    // 0→1: both 2, confidence 2/3, lift (2/3)/(3/5) = 10/9. 0→2: both 1, conf 1/3, lift (1/3)/(1/5) = 5/3.
    // 0→3: never together. Owned: {0}.
    let got = w.admin_session().analytics().cross_sell(me, 10).unwrap();
    assert_eq!(got.len(), 2);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert_eq!(got[0].product_id, p[2]);
    assert!(
        close(got[0].lift, 5.0 / 3.0)
            && close(got[0].confidence, 1.0 / 3.0)
            && close(got[0].support, 0.2)
    );
    assert_eq!(got[1].product_id, p[1]);
    assert!(
        close(got[1].lift, 10.0 / 9.0)
            && close(got[1].confidence, 2.0 / 3.0)
            && close(got[1].support, 0.4)
    );
    assert!(got.iter().all(|c| c.because_of == p[0]));
}

#[test]
fn forecast_weights_open_opportunities_by_month_and_category() {
    let w = world();
    let admin = w.admin_session();
    let acc = account(&w, &w.admin, "A", "IT").meta.id;
    let raw = [
        ("2026-02-10", "100", "10", "pipeline"),
        ("2026-02-20", "300", "50", "pipeline"),
        ("2026-02-25", "200", "90", "commit"),
        ("2026-03-01", "1000", "25", "best_case"),
    ];
    for (i, (date, amount, prob, cat)) in raw.iter().enumerate() {
        admin.records().create(EntityKind::Opportunity,
                fields! {
                    "name" => format!("O{i}"), "account_id" => acc,
                    "amount" => Money::parse(amount, "EUR").unwrap(), "probability" => d(prob),
                    "forecast_category" => *cat, "expected_close" => Value::Date(date.parse().unwrap()),
                },
            )
            .unwrap();
    }
    let rows = admin.sales().forecast(None).unwrap();
    let mut expected: std::collections::BTreeMap<
        (String, String),
        (u64, crm_core::Decimal, crm_core::Decimal),
    > = Default::default();
    for (date, amount, prob, cat) in raw {
        let e = expected
            .entry((date[..7].to_owned(), cat.to_owned()))
            .or_default();
        e.0 += 1;
        e.1 += d(amount);
        e.2 += d(amount) * d(prob) / d("100");
    }
    assert_eq!(rows.len(), expected.len());
    for r in rows {
        let (n, amount, weighted) = expected[&(r.month.clone(), r.forecast_category.clone())];
        assert_eq!(
            (r.count, r.amount.amount, r.weighted.amount),
            (n, amount, weighted)
        );
    }
}

#[test]
fn kpis_count_per_owner() {
    let w = world();
    let admin = w.admin_session();
    let rep1_ctx = rep(&w, "rita");
    let rep1 = w.on(&rep1_ctx);
    let now = w.crm.now();
    let a = account(&w, &rep1_ctx, "Mine", "IT").meta.id;
    order_at(
        &w,
        &rep1_ctx,
        a,
        "EUR",
        vec![line(None, "2", "50", None)],
        now,
    );
    for t in ["call", "call", "email"] {
        rep1.records()
            .create(
                EntityKind::Activity,
                fields! { "activity_type" => t, "account_id" => a },
            )
            .unwrap();
    }
    rep1.records()
        .create(
            EntityKind::Case,
            fields! { "subject" => "Help", "account_id" => a },
        )
        .unwrap();
    admin
        .records()
        .create(EntityKind::Activity, fields! { "activity_type" => "call" })
        .unwrap();
    let k = admin
        .analytics()
        .kpis(now - Duration::days(1), now + Duration::days(1), None)
        .unwrap();
    let mine = k
        .iter()
        .find(|r| r.user_id == Some(rep1_ctx.user_id))
        .unwrap();
    assert_eq!(
        (mine.activities, mine.calls, mine.orders, mine.open_cases),
        (3, 2, 1, 1)
    );
    assert_eq!(mine.order_revenue.unwrap().amount, d("100"));
    // The rep sees only their own figures.
    let k = rep1
        .analytics()
        .kpis(now - Duration::days(1), now + Duration::days(1), None)
        .unwrap();
    assert_eq!(k.len(), 1);
    assert_eq!(k[0].user_id, Some(rep1_ctx.user_id));
}

#[test]
fn open_opportunity_and_case_stats_follow_their_records() {
    let w = world();
    let admin = w.admin_session();
    let a = account(&w, &w.admin, "A", "IT").meta.id;
    let b = account(&w, &w.admin, "B", "IT").meta.id;
    let opp = |amount: &str, ccy: &str| {
        // Creation order decides the currency of the sum: keep it unambiguous.
        w.clock.advance(Duration::seconds(1));
        admin.records().create(EntityKind::Opportunity,
                fields! { "name" => "O", "account_id" => a, "amount" => Money::parse(amount, ccy).unwrap() },
            )
            .unwrap()
    };
    let o1 = opp("100", "EUR");
    opp("50", "EUR");
    opp("70", "USD");
    let acc = get(&w, EntityKind::Account, a);
    assert_eq!(acc.get("open_opportunities").as_int(), Some(3));
    assert_eq!(
        acc.get("open_opportunity_value").as_money(),
        Some(Money::parse("150", "EUR").unwrap())
    );
    admin
        .records()
        .delete(EntityKind::Opportunity, o1.meta.id, None)
        .unwrap();
    let acc = get(&w, EntityKind::Account, a);
    assert_eq!(acc.get("open_opportunities").as_int(), Some(2));
    assert_eq!(
        acc.get("open_opportunity_value").as_money(),
        Some(Money::parse("50", "EUR").unwrap())
    );

    let c = admin
        .records()
        .create(
            EntityKind::Case,
            fields! { "subject" => "S", "account_id" => a },
        )
        .unwrap();
    assert_eq!(
        get(&w, EntityKind::Account, a).get("open_cases").as_int(),
        Some(1)
    );
    let c = admin
        .records()
        .update(
            EntityKind::Case,
            c.meta.id,
            c.meta.version,
            fields! { "account_id" => b },
        )
        .unwrap();
    assert_eq!(
        get(&w, EntityKind::Account, a).get("open_cases").as_int(),
        Some(0)
    );
    assert_eq!(
        get(&w, EntityKind::Account, b).get("open_cases").as_int(),
        Some(1)
    );
    let got = matching(
        &w,
        &w.admin,
        "open_cases > 0 and open_opportunities is null",
    );
    assert_eq!(got, [b].into_iter().collect());
    let _ = c;
}

// ----------------------------------------------------------------- parser property

mod parser_props {
    use crm_core::backend::Op;
    use crm_core::segment::{parse, Expr, Literal};
    use proptest::prelude::*;

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            any::<String>().prop_map(Literal::Text),
            (any::<i64>(), 0u32..5)
                .prop_map(|(n, s)| Literal::Number(crm_core::Decimal::new(n, s))),
            (
                (-1_000_000i64..1_000_000),
                prop::sample::select(vec!["EUR", "USD", "JPY"])
            )
                .prop_map(|(n, c)| Literal::Money {
                    amount: crm_core::Decimal::new(n, 2),
                    currency: c.into()
                }),
            any::<bool>().prop_map(Literal::Bool),
            (1900i32..2100, 1u32..13, 1u32..29).prop_map(|(y, m, d)| Literal::Date(
                crm_core::chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
            )),
            (0i64..4_000_000_000).prop_map(|s| Literal::Timestamp(
                crm_core::chrono::DateTime::from_timestamp(s, 0).unwrap()
            )),
            Just(Literal::Null),
        ]
    }

    fn field() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "name",
            "country",
            "custom.tier",
            "days_since_last_order",
            "lifetime_value",
            "a_b.c9",
        ])
        .prop_map(str::to_owned)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge])
    }

    fn leaf() -> impl Strategy<Value = Expr> {
        prop_oneof![
            (field(), op(), literal()).prop_map(|(field, cmp, value)| Expr::Compare {
                field,
                cmp,
                value,
                at: 0
            }),
            (field(), prop::collection::vec(literal(), 1..4)).prop_map(|(field, values)| {
                Expr::In {
                    field,
                    values,
                    at: 0,
                }
            }),
            (field(), literal()).prop_map(|(field, value)| Expr::Contains {
                field,
                value,
                at: 0
            }),
            (field(), any::<String>()).prop_map(|(field, value)| Expr::StartsWith {
                field,
                value,
                at: 0
            }),
            field().prop_map(|field| Expr::IsNull { field, at: 0 }),
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        leaf().prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(|all| Expr::And { all }),
                prop::collection::vec(inner.clone(), 2..4).prop_map(|any| Expr::Or { any }),
                inner.prop_map(|e| Expr::Not { not: Box::new(e) }),
            ]
        })
    }

    fn strip(e: Expr) -> Expr {
        match e {
            Expr::And { all } => Expr::And {
                all: all.into_iter().map(strip).collect(),
            },
            Expr::Or { any } => Expr::Or {
                any: any.into_iter().map(strip).collect(),
            },
            Expr::Not { not } => Expr::Not {
                not: Box::new(strip(*not)),
            },
            Expr::Compare {
                field, cmp, value, ..
            } => Expr::Compare {
                field,
                cmp,
                value,
                at: 0,
            },
            Expr::In { field, values, .. } => Expr::In {
                field,
                values,
                at: 0,
            },
            Expr::Contains { field, value, .. } => Expr::Contains {
                field,
                value,
                at: 0,
            },
            Expr::StartsWith { field, value, .. } => Expr::StartsWith {
                field,
                value,
                at: 0,
            },
            Expr::IsNull { field, .. } => Expr::IsNull { field, at: 0 },
        }
    }

    proptest! {
        #[test]
        fn display_then_parse_gives_the_same_tree(e in expr()) {
            let text = e.to_string();
            let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
            prop_assert_eq!(strip(back), e, "{}", text);
        }

        #[test]
        fn parsing_garbage_never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }
    }
}

#[test]
fn profit_across_currencies_and_lines_without_cost() {
    let w = world();
    let admin = w.admin_session();
    let now = w.crm.now();
    let p = product(&w, "P", "10", "4");
    let a = account(&w, &w.admin, "A", "IT").meta.id;
    let b = account(&w, &w.admin, "B", "US").meta.id;
    order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![line(Some(p), "3", "10", None), line(None, "1", "7", None)],
        now - Duration::days(1),
    );
    order_at(
        &w,
        &w.admin,
        b,
        "USD",
        vec![line(Some(p), "2", "20", None)],
        now - Duration::days(1),
    );
    let opts = |rates| crm_core::ProfitOptions {
        from: now - Duration::days(7),
        to: now,
        by: crm_core::ProfitDimension::Field {
            field: "country".into(),
        },
        rates,
        rfm: Default::default(),
    };
    let e = admin.analytics().profit(&opts(None)).unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("rates_needed"));
    let eur: crm_core::Currency = "EUR".parse().unwrap();
    let usd: crm_core::Currency = "USD".parse().unwrap();
    let rows = admin
        .analytics()
        .profit(&opts(Some(
            crm_core::RateTable::new(eur).with_rate(usd, d("0.5")),
        )))
        .unwrap();
    let find = |seg: &str, prod: Option<RecordId>| {
        rows.iter()
            .find(|r| r.segment == seg && r.product_id == prod)
            .unwrap()
    };
    let it = find("IT", Some(p));
    assert_eq!(
        (it.revenue.amount, it.cost.amount, it.margin.amount),
        (d("30"), d("12"), d("18"))
    );
    let free = find("IT", None);
    assert_eq!(
        (
            free.revenue.amount,
            free.cost.amount,
            free.lines_without_cost
        ),
        (d("7"), d("0"), 1)
    );
    let us = find("US", Some(p));
    // 2 × 20 USD = 40 USD = 20 EUR revenue; the product's cost is in EUR, not the order's USD, so
    // the line carries no cost and is reported as such rather than mixing currencies.
    assert_eq!(
        (us.revenue.amount, us.cost.amount, us.lines_without_cost),
        (d("20"), d("0"), 1)
    );
    assert_eq!(us.revenue.currency, eur);
}

// ----------------------------------------------------------------- store aggregate vs. reading orders

/// The SQLite store without its order-line aggregate: the facade falls back to reading orders.
struct NoAggregate(std::sync::Arc<crm_store::SqliteStore>);

/// The same SQLite store, unchanged, shared with a [`NoAggregate`] (a `Crm` owns its store).
struct Shared(std::sync::Arc<crm_store::SqliteStore>);

impl crm_core::backend::Store for Shared {
    fn read(&self) -> crm_core::Result<Box<dyn crm_core::backend::ReadTx + '_>> {
        self.0.read()
    }
    fn read_once(&self) -> crm_core::Result<Box<dyn crm_core::backend::ReadTx + '_>> {
        self.0.read_once()
    }
    fn write(&self) -> crm_core::Result<Box<dyn crm_core::backend::WriteTx + '_>> {
        self.0.write()
    }
}

struct NoAggregateTx<'a>(Box<dyn crm_core::backend::ReadTx + 'a>);

impl crm_core::backend::ReadTx for NoAggregateTx<'_> {
    fn get(
        &self,
        kind: EntityKind,
        tenant: &crm_core::TenantId,
        id: RecordId,
        custom: &crm_core::backend::CustomTypes,
    ) -> crm_core::Result<Option<Record>> {
        self.0.get(kind, tenant, id, custom)
    }
    fn query(&self, q: &crm_core::backend::Query) -> crm_core::Result<Vec<Record>> {
        self.0.query(q)
    }
    fn count(&self, q: &crm_core::backend::Query) -> crm_core::Result<u64> {
        self.0.count(q)
    }
    fn audit_head(&self, t: &crm_core::TenantId) -> crm_core::Result<Option<(u64, String)>> {
        self.0.audit_head(t)
    }
    fn audit(
        &self,
        q: &crm_core::backend::AuditQuery,
    ) -> crm_core::Result<Vec<crm_core::AuditEntry>> {
        self.0.audit(q)
    }
    fn pending_events(
        &self,
        t: &crm_core::TenantId,
        after: u64,
        limit: u32,
    ) -> crm_core::Result<Vec<crm_core::Event>> {
        self.0.pending_events(t, after, limit)
    }
    fn tenants(&self) -> crm_core::Result<Vec<crm_core::TenantId>> {
        self.0.tenants()
    }
}

impl crm_core::backend::Store for NoAggregate {
    fn read(&self) -> crm_core::Result<Box<dyn crm_core::backend::ReadTx + '_>> {
        Ok(Box::new(NoAggregateTx(self.0.read()?)))
    }
    fn write(&self) -> crm_core::Result<Box<dyn crm_core::backend::WriteTx + '_>> {
        self.0.write()
    }
}

#[test]
fn profit_from_the_store_aggregate_equals_profit_from_orders() {
    use std::sync::Arc;
    let store = Arc::new(crm_store::SqliteStore::open_in_memory().unwrap());
    let clock = Arc::new(crm_core::ManualClock::new(crm_tests::start()));
    let crm = crm_core::Crm::new(Shared(store.clone())).with_clock(clock.clone());
    let tenant = crm_core::TenantId::new("acme").unwrap();
    let admin = crm.bootstrap(&tenant, "admin", Default::default()).unwrap();
    let w = World {
        crm,
        clock: clock.clone(),
        tenant,
        admin,
    };
    let prods = products(&w);
    populate(&w, &w.admin, 17, &prods);
    // Discounts and a free-text line without cost, to exercise per-line rounding.
    let a = account(&w, &w.admin, "Disc", "IT").meta.id;
    let mut l = line(Some(prods[0].0), "3", "9.99", None);
    l.discount_percent = d("12.5");
    order_at(
        &w,
        &w.admin,
        a,
        "EUR",
        vec![l.clone(), l, line(None, "1", "0.333", None)],
        w.crm.now(),
    );
    let slow = crm_core::Crm::new(NoAggregate(store)).with_clock(clock);
    let fast_admin = w.admin_session();
    let slow_admin = slow.session(&w.admin).unwrap();
    let now = w.crm.now();
    for by in [
        crm_core::ProfitDimension::Rfm,
        crm_core::ProfitDimension::Lifecycle,
        crm_core::ProfitDimension::Field {
            field: "country".into(),
        },
    ] {
        let opts = crm_core::ProfitOptions {
            from: now - Duration::days(200),
            to: now + Duration::days(1),
            by,
            rates: None,
            rfm: Default::default(),
        };
        let fast = fast_admin.analytics().profit(&opts).unwrap();
        assert!(!fast.is_empty());
        assert_eq!(fast, slow_admin.analytics().profit(&opts).unwrap());
    }
}

/// The screen pop scores one customer from a snapshot of the customer base (RFM tile borders,
/// co-purchase counts): its RFM segment and cross-sell must equal the full computations, and an order
/// written afterwards must show (with a snapshot age of zero) on the next pop.
#[test]
fn screen_pop_rfm_and_cross_sell_equal_the_full_computations() {
    let w = world();
    let prods = products(&w);
    let data = populate(&w, &w.admin, 11, &prods);
    let mut phones = Vec::new();
    for (i, (a, _)) in data.accounts.iter().enumerate() {
        let phone = format!("+3902555{i:04}");
        let v = get(&w, EntityKind::Account, *a).meta.version;
        w.admin_session()
            .records()
            .update(
                EntityKind::Account,
                *a,
                v,
                fields! { "phone" => phone.as_str() },
            )
            .unwrap();
        phones.push((*a, phone));
    }
    let check = |crm: &crm_core::Crm| {
        let admin = crm.session(&w.admin).unwrap();
        let rfm: std::collections::HashMap<RecordId, String> = admin
            .analytics()
            .rfm(&crm_core::RfmOptions::default())
            .unwrap()
            .into_iter()
            .map(|r| (r.account_id, r.segment))
            .collect();
        for (a, phone) in &phones {
            let pop = admin.analytics().screen_pop(phone, None).unwrap();
            assert_eq!(pop.account.as_ref().unwrap().meta.id, *a);
            assert_eq!(pop.rfm_segment.as_ref(), rfm.get(a), "RFM segment of {a}");
            assert_eq!(pop.cross_sell, admin.analytics().cross_sell(*a, 5).unwrap());
        }
    };
    check(&w.crm);
    // A new order moves scores; once the snapshot is older than its age limit the pop sees it.
    let (first, _) = phones[0];
    for _ in 0..4 {
        order_at(
            &w,
            &w.admin,
            first,
            "EUR",
            vec![line(Some(prods[2].0), "1", "900", None)],
            w.crm.now(),
        );
    }
    w.clock.advance(Duration::minutes(6));
    check(&w.crm);
}

/// What one user did, as the test wrote it: the raw rows the independent KPI computation uses.
#[derive(Default, Clone, Debug, PartialEq)]
struct Did {
    activities: std::collections::BTreeMap<(String, Option<String>, Option<String>), u64>,
    leads: u64,
    converted: u64,
    disqualified: u64,
    won: Vec<crm_core::Decimal>,
    lost: u64,
}

impl Did {
    fn add(&mut self, o: &Did) {
        for (k, n) in &o.activities {
            *self.activities.entry(k.clone()).or_default() += n;
        }
        self.leads += o.leads;
        self.converted += o.converted;
        self.disqualified += o.disqualified;
        self.won.extend(o.won.iter().copied());
        self.lost += o.lost;
    }

    fn check(&self, k: &crm_core::Kpi) {
        let sum = |f: &dyn Fn(&str, Option<&str>) -> bool| -> u64 {
            self.activities
                .iter()
                .filter(|((t, dir, _), _)| f(t, dir.as_deref()))
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!(k.activities, sum(&|_, _| true));
        assert_eq!(k.calls, sum(&|t, _| t == "call"));
        assert_eq!(
            k.inbound_calls,
            sum(&|t, d| t == "call" && d == Some("inbound"))
        );
        assert_eq!(
            k.outbound_calls,
            sum(&|t, d| t == "call" && d == Some("outbound"))
        );
        let got: std::collections::BTreeMap<_, _> = k
            .activity_breakdown
            .iter()
            .map(|a| {
                (
                    (
                        a.activity_type.clone(),
                        a.direction.clone(),
                        a.outcome.clone(),
                    ),
                    a.count,
                )
            })
            .collect();
        assert_eq!(got, self.activities);
        assert!(k
            .activity_breakdown
            .windows(2)
            .all(|w| w[0].count >= w[1].count));
        assert_eq!(
            (k.leads, k.leads_converted, k.leads_disqualified),
            (self.leads, self.converted, self.disqualified)
        );
        let rate = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        assert_eq!(k.lead_conversion_rate, rate(self.converted, self.leads));
        let won = self.won.len() as u64;
        assert_eq!(
            (k.opportunities_won, k.opportunities_lost),
            (won, self.lost)
        );
        assert_eq!(k.win_rate, rate(won, won + self.lost));
        let total: Option<crm_core::Decimal> =
            (!self.won.is_empty()).then(|| self.won.iter().copied().sum());
        assert_eq!(k.revenue_closed.map(|m| m.amount), total);
        assert_eq!(
            k.average_deal_size.map(|m| m.amount),
            total.map(|t| (t / crm_core::Decimal::from(won)).round_dp(2))
        );
    }
}

#[test]
fn kpis_per_user_and_per_team_equal_a_count_of_what_each_user_did() {
    let w = world();
    let admin = w.admin_session();
    let t1 = w.team("north");
    let t2 = w.team("south");
    let role = w.role("seller", &Policy::admin());
    let teams = [vec![t1], vec![t1], vec![t1, t2], vec![t2]];
    let users: Vec<Context> = teams
        .iter()
        .enumerate()
        .map(|(i, t)| {
            w.user(
                &format!("u{i}"),
                role,
                fields! { "team_ids" => crm_tests::ids(t) },
            )
        })
        .collect();
    let a = account(&w, &w.admin, "Client", "IT").meta.id;
    let mut did: Vec<Did> = vec![Did::default(); users.len()];
    let mut g = Lcg(7);
    // Two rounds: the first falls before the period and must not count.
    for round in 0..2 {
        let counted = round == 1;
        if counted {
            w.clock.advance(Duration::days(30));
        }
        for (u, ctx) in users.iter().enumerate() {
            let session = w.on(ctx);
            for _ in 0..g.next(6) {
                let t = ["call", "call", "email", "meeting"][g.next(4) as usize];
                let dir = [None, Some("inbound"), Some("outbound")][g.next(3) as usize];
                let out = [None, Some("reached"), Some("voicemail")][g.next(3) as usize];
                let mut f = fields! { "activity_type" => t, "account_id" => a };
                if let Some(x) = dir {
                    f.insert("direction".into(), Value::Text(x.into()));
                }
                if let Some(x) = out {
                    f.insert("outcome".into(), Value::Text(x.into()));
                }
                session.records().create(EntityKind::Activity, f).unwrap();
                if counted {
                    let key = (t.to_owned(), dir.map(str::to_owned), out.map(str::to_owned));
                    *did[u].activities.entry(key).or_default() += 1;
                }
            }
            for l in 0..g.next(4) {
                let lead = session
                    .records()
                    .create(
                        EntityKind::Lead,
                        fields! { "last_name" => format!("L{l}"), "company" => "Co" },
                    )
                    .unwrap();
                let fate = g.next(3);
                if fate == 1 {
                    admin
                        .sales()
                        .disqualify_lead(lead.meta.id, lead.meta.version, "no budget")
                        .unwrap();
                } else if fate == 2 {
                    let q = admin
                        .sales()
                        .transition_lead(lead.meta.id, lead.meta.version, "qualified", None)
                        .unwrap();
                    admin
                        .sales()
                        .convert_lead(q.meta.id, q.meta.version, Default::default())
                        .unwrap();
                }
                if counted {
                    did[u].leads += 1;
                    did[u].converted += u64::from(fate == 2);
                    did[u].disqualified += u64::from(fate == 1);
                }
            }
            for o in 0..g.next(5) {
                let won = g.next(2) == 0;
                let amount = d(&format!("{}.{:02}", 100 + g.next(900), g.next(100)));
                let now = w.crm.now();
                session
                    .records()
                    .create(
                        EntityKind::Opportunity,
                        fields! {
                            "name" => format!("O{o}"), "account_id" => a,
                            "amount" => Money::new(amount, "EUR".parse().unwrap()),
                            "probability" => d(if won { "100" } else { "0" }),
                            "closed_at" => now,
                        },
                    )
                    .unwrap();
                if counted {
                    if won {
                        did[u].won.push(amount);
                    } else {
                        did[u].lost += 1;
                    }
                }
            }
        }
    }
    // The generated data reaches every case.
    let mut all = Did::default();
    did.iter().for_each(|x| all.add(x));
    assert!(
        all.converted > 0 && all.disqualified > 0 && all.leads > all.converted + all.disqualified
    );
    assert!(all.lost > 0 && all.won.len() > 1);
    assert!(all
        .activities
        .keys()
        .any(|(t, d, o)| t == "call" && d.is_some() && o.is_some()));
    let now = w.crm.now();
    let (from, to) = (now - Duration::days(1), now + Duration::days(1));
    let per_user = admin.analytics().kpis(from, to, None).unwrap();
    for (u, ctx) in users.iter().enumerate() {
        let row = per_user.iter().find(|k| k.user_id == Some(ctx.user_id));
        match row {
            Some(k) => {
                assert_eq!((k.team_id, k.users), (None, 1));
                did[u].check(k);
            }
            None => assert_eq!(did[u], Did::default(), "user {u} has figures"),
        }
    }
    let per_team = admin.analytics().team_kpis(from, to, None).unwrap();
    for team in [t1, t2] {
        let mut sum = Did::default();
        let mut members = 0;
        for (u, t) in teams.iter().enumerate() {
            if t.contains(&team) && per_user.iter().any(|k| k.user_id == Some(users[u].user_id)) {
                sum.add(&did[u]);
                members += 1;
            }
        }
        let k = per_team.iter().find(|k| k.team_id == Some(team)).unwrap();
        assert_eq!((k.user_id, k.users), (None, members));
        sum.check(k);
    }
    assert!(per_team
        .iter()
        .all(|k| k.team_id == Some(t1) || k.team_id == Some(t2)));
}

#[test]
fn the_funnel_equals_a_count_over_each_opportunitys_path() {
    let w = world();
    let admin = w.admin_session();
    let stages = serde_json::json!([
        {"name": "prospecting", "probability": 10},
        {"name": "qualification", "probability": 30},
        {"name": "proposal", "probability": 60},
        {"name": "won", "probability": 100, "outcome": "won"},
        {"name": "lost", "probability": 0, "outcome": "lost"}
    ]);
    admin
        .records()
        .create(
            EntityKind::Pipeline,
            fields! { "name" => "funnel", "stages" => Value::Json(stages) },
        )
        .unwrap();
    let steps = ["prospecting", "qualification", "proposal", "won"];
    let a = account(&w, &w.admin, "Client", "IT").meta.id;
    let mut g = Lcg(11);
    // (stages visited, final stage, days from creation to close)
    let mut paths: Vec<(Vec<&str>, &str, Option<i64>)> = Vec::new();
    let start = w.crm.now();
    for i in 0..40 {
        let mut o = admin
            .records()
            .create(
                EntityKind::Opportunity,
                fields! { "name" => format!("O{i}"), "account_id" => a, "pipeline" => "funnel" },
            )
            .unwrap();
        let created = w.crm.now();
        let mut visited = vec!["prospecting"];
        let mut at = 0usize;
        let mut closed = None;
        for _ in 0..g.next(6) {
            w.clock.advance(Duration::days(1 + g.next(9) as i64));
            let to = match g.next(6) {
                0 => "lost",
                1 if at > 0 => steps[at - 1],
                2 => "won",
                _ => steps[(at + 1 + g.next(2) as usize).min(2)],
            };
            if to == steps[at] {
                continue;
            }
            o = admin
                .sales()
                .move_opportunity(o.meta.id, o.meta.version, to, None, Some("price"))
                .unwrap();
            visited.push(to);
            if to == "won" || to == "lost" {
                closed = Some((w.crm.now() - created).num_days());
                break;
            }
            at = steps.iter().position(|s| *s == to).unwrap();
        }
        let last = *visited.last().unwrap();
        paths.push((visited, last, closed));
    }
    let f = admin
        .sales()
        .funnel(&crm_core::FunnelOptions {
            pipeline: Some("funnel".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(f.pipeline, "funnel");
    assert_eq!(f.opportunities, 40);
    let furthest = |v: &[&str]| {
        v.iter()
            .filter_map(|s| steps.iter().position(|x| x == s))
            .max()
    };
    let got: Vec<&str> = f.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(got, steps);
    for (k, s) in f.stages.iter().enumerate() {
        let reached = paths
            .iter()
            .filter(|p| furthest(&p.0).unwrap_or(0) >= k)
            .count() as u64;
        let current = paths.iter().filter(|p| p.1 == steps[k]).count() as u64;
        assert_eq!((s.reached, s.current), (reached, current), "{}", s.stage);
        let next = paths
            .iter()
            .filter(|p| furthest(&p.0).unwrap_or(0) > k)
            .count() as u64;
        let rate = (k + 1 < steps.len() && reached > 0).then(|| next as f64 / reached as f64);
        assert_eq!(s.conversion_to_next, rate, "{}", s.stage);
    }
    let won: Vec<i64> = paths
        .iter()
        .filter(|p| p.1 == "won")
        .filter_map(|p| p.2)
        .collect();
    let closed: Vec<i64> = paths.iter().filter_map(|p| p.2).collect();
    let lost = closed.len() - won.len();
    assert!(
        !won.is_empty() && lost > 0,
        "the data reaches both outcomes"
    );
    assert!(
        paths.iter().any(|p| p
            .0
            .windows(2)
            .any(|w| furthest(&w[1..]) < furthest(&w[..1]))),
        "some go back"
    );
    assert_eq!((f.won, f.lost), (won.len() as u64, lost as u64));
    assert_eq!(f.win_rate, Some(won.len() as f64 / closed.len() as f64));
    let mean = |v: &[i64]| v.iter().sum::<i64>() as f64 / v.len() as f64;
    assert!((f.average_days_to_win.unwrap() - mean(&won)).abs() < 1e-9);
    assert!((f.average_cycle_days.unwrap() - mean(&closed)).abs() < 1e-9);
    // A period that holds none of them; a pipeline that does not exist.
    let none = admin
        .sales()
        .funnel(&crm_core::FunnelOptions {
            pipeline: Some("funnel".into()),
            from: Some(start - Duration::days(10)),
            to: Some(start - Duration::days(1)),
        })
        .unwrap();
    assert_eq!(
        (
            none.opportunities,
            none.stages[0].reached,
            none.stages[0].conversion_to_next
        ),
        (0, 0, None)
    );
    let e = admin
        .sales()
        .funnel(&crm_core::FunnelOptions {
            pipeline: Some("nope".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("pipeline"));
}

#[test]
fn customer_values_equal_the_documented_formulas_over_the_raw_orders_and_answers() {
    let w = world();
    let admin = w.admin_session();
    let now = w.crm.now();
    let mut g = Lcg(5);
    // Per account: (ordered at, net) of each order.
    type Placed = Vec<(DateTime<Utc>, crm_core::Decimal)>;
    let mut expected_orders: Vec<(RecordId, Placed)> = Vec::new();
    for i in 0..12 {
        let a = account(&w, &w.admin, &format!("C{i}"), "IT").meta.id;
        // 0, 1 or several orders, spread over the last three years.
        let n = [0, 1, 2, 5][i % 4];
        let mut rows = Vec::new();
        for _ in 0..n {
            let at = now - Duration::days(g.next(1000) as i64 + 1);
            let o = order_at(
                &w,
                &w.admin,
                a,
                "EUR",
                vec![line(None, "1", &format!("{}.25", 10 + g.next(90)), None)],
                at,
            );
            rows.push((at, net(&o)));
        }
        expected_orders.push((a, rows));
    }
    // Survey answers on the first account: CSAT 5, 4, 2 and NPS 10, 9, 7, 3.
    let first = expected_orders[0].0;
    for (kind, score) in [
        ("csat", 5),
        ("csat", 4),
        ("csat", 2),
        ("nps", 10),
        ("nps", 9),
        ("nps", 7),
        ("nps", 3),
    ] {
        admin.records().create(EntityKind::Activity,
                fields! { "activity_type" => "survey", "survey_type" => kind, "score" => score as i64, "account_id" => first },
            )
            .unwrap();
    }
    let rows = admin
        .analytics()
        .customer_values(&crm_core::ValueOptions::default())
        .unwrap();
    assert_eq!(rows.len(), 12);
    let days = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_seconds() as f64 / 86_400.0;
    // The usual gap of one-order customers: the median of the others' mean gaps.
    let gap = |v: &[(DateTime<Utc>, crm_core::Decimal)]| {
        let first = v.iter().map(|o| o.0).min().unwrap();
        let last = v.iter().map(|o| o.0).max().unwrap();
        (days(first, last) / (v.len() - 1) as f64).max(1.0)
    };
    let mut gaps: Vec<f64> = expected_orders
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(_, v)| gap(v))
        .collect();
    gaps.sort_by(f64::total_cmp);
    let typical = gaps[gaps.len() / 2];
    for (a, orders) in &expected_orders {
        let r = rows.iter().find(|r| r.account_id == *a).unwrap();
        assert_eq!(r.orders, orders.len() as i64);
        if orders.is_empty() {
            assert!(
                r.lifetime_value.is_none() && r.predicted_value.is_none() && r.churn_risk.is_none()
            );
            continue;
        }
        let ltv: crm_core::Decimal = orders.iter().map(|o| o.1).sum();
        assert_eq!(r.lifetime_value.unwrap().amount, ltv);
        let aov = (ltv / crm_core::Decimal::from(orders.len())).round_dp(2);
        assert_eq!(r.average_order_value.unwrap().amount, aov);
        let first = orders.iter().map(|o| o.0).min().unwrap();
        let last = orders.iter().map(|o| o.0).max().unwrap();
        let g = if orders.len() > 1 {
            gap(orders)
        } else {
            typical
        };
        let overdue = days(last, now) / g - 1.0;
        let risk = if overdue > 0.0 {
            1.0 - (-overdue).exp()
        } else {
            0.0
        };
        assert!(
            (r.churn_risk.unwrap() - risk).abs() < 1e-12,
            "{risk} vs {:?}",
            r.churn_risk
        );
        let per_year = orders.len() as f64 / (days(first, now) / 365.25).max(1.0);
        let predicted = aov.to_string().parse::<f64>().unwrap() * per_year * (1.0 - risk) * 3.0;
        let got = r
            .predicted_value
            .unwrap()
            .amount
            .to_string()
            .parse::<f64>()
            .unwrap();
        assert!((got - predicted).abs() < 0.011, "{got} vs {predicted}");
    }
    let r = rows.iter().find(|r| r.account_id == first).unwrap();
    assert_eq!(r.survey_responses, 7);
    assert!((r.csat.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    assert!((r.nps.unwrap() - (50.0 - 25.0)).abs() < 1e-9);
    assert!(rows
        .iter()
        .filter(|x| x.account_id != first)
        .all(|x| x.csat.is_none() && x.nps.is_none()));
    // A score off its scale, or a survey type on another activity, is refused.
    for f in [
        fields! { "activity_type" => "survey", "survey_type" => "csat", "score" => 6_i64 },
        fields! { "activity_type" => "survey", "survey_type" => "nps" },
        fields! { "activity_type" => "call", "survey_type" => "nps", "score" => 8_i64 },
    ] {
        let e = admin.records().create(EntityKind::Activity, f).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation, "{e}");
    }
}
