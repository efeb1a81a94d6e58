//! RFM's fast path (the maintained account statistics, read narrowly from the store) against the
//! same scores computed from the accounts as `get` returns them: ties at the tile borders, accounts
//! without orders, amounts converted by a rate table (finer decimals), a field hidden from the user,
//! a record scope, and the lifecycle of every account.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)] // test code

use crm_core::analytics::{self, LifecycleThresholds};
use crm_core::chrono::Duration;
use crm_core::{
    fields, Action, Context, Currency, EntityKind, FieldAccess, LineItem, ListRequest, Money,
    ObjectRule, Policy, RateTable, RecordId, RfmOptions, RfmRow, Scope, Value,
};
use crm_tests::{world, World};

fn d(s: &str) -> crm_core::Decimal {
    s.parse().unwrap()
}

fn order(w: &World, acc: RecordId, currency: &str, price: &str, days_ago: i64) {
    order_by(w, &w.admin, acc, currency, price, days_ago)
}

fn order_by(w: &World, by: &Context, acc: RecordId, currency: &str, price: &str, days_ago: i64) {
    let line = LineItem {
        product_id: None,
        description: "item".into(),
        quantity: d("1"),
        unit_price: d(price),
        discount_percent: d("0"),
        tax_rate: d("0"),
        unit_cost: None,
    };
    w.on(by)
        .records()
        .create(
            EntityKind::Order,
            fields! {
                "account_id" => acc,
                "currency" => currency,
                "lines" => Value::Lines(vec![line]),
                "ordered_at" => w.crm.now() - Duration::days(days_ago),
            },
        )
        .unwrap();
}

/// Accounts with many equal measures (ties at the borders), some without orders, some buying in
/// USD only; every other one created (so owned) by `odd`, their orders placed by the administrator.
fn customers(w: &World, odd: &Context) -> Vec<RecordId> {
    customers_ordered(w, odd, false)
}

/// [`customers`], the orders of each account placed by its owner when `orders_by_owner`.
fn customers_ordered(w: &World, odd: &Context, orders_by_owner: bool) -> Vec<RecordId> {
    let mut ids = Vec::new();
    for i in 0..23i64 {
        let by = if i % 2 == 1 { odd } else { &w.admin };
        let a = w
            .on(by)
            .records()
            .create(EntityKind::Account, fields! { "name" => format!("C{i}") })
            .unwrap()
            .meta
            .id;
        let currency = if i % 5 == 0 { "USD" } else { "EUR" };
        if i % 7 != 3 {
            for k in 0..(1 + i % 3) {
                // Prices repeat every four customers; days every six.
                let price = ["10", "25.5", "10", "99.99"][(i % 4) as usize];
                let placed_by = if orders_by_owner { by } else { &w.admin };
                order_by(w, placed_by, a, currency, price, 1 + (i % 6) * 20 + k);
            }
        }
        ids.push(a);
    }
    ids
}

/// The rows RFM must give `ctx`: from each readable account's statistics, quintiles by the plain
/// sort of `analytics::quintiles`, in account id order.
fn expected(w: &World, ctx: &Context, ids: &[RecordId], rates: Option<&RateTable>) -> Vec<RfmRow> {
    let now = w.crm.now();
    let mut ids = ids.to_vec();
    ids.sort();
    let mut measures = Vec::new();
    let mut first_last = Vec::new();
    for id in ids {
        let Ok(a) = w.on(ctx).records().get(EntityKind::Account, id) else {
            continue;
        };
        let (Some(last), Some(n), Some(ltv)) = (
            a.get("last_order_at").as_timestamp(),
            a.get("order_count").as_int(),
            a.get("lifetime_value").as_money(),
        ) else {
            continue;
        };
        let m = match rates {
            Some(r) => r.convert(ltv).unwrap(),
            None => ltv,
        };
        measures.push((id, last, n, m));
        first_last.push((a.get("first_order_at").as_timestamp(), Some(last)));
    }
    let r = analytics::quintiles(&measures.iter().map(|x| (x.1, x.0)).collect::<Vec<_>>());
    let f = analytics::quintiles(&measures.iter().map(|x| (x.2, x.0)).collect::<Vec<_>>());
    let m = analytics::quintiles(
        &measures
            .iter()
            .map(|x| (x.3.amount, x.0))
            .collect::<Vec<_>>(),
    );
    let rules = analytics::default_rfm_rules();
    measures
        .iter()
        .enumerate()
        .map(|(i, (id, last, n, money))| RfmRow {
            account_id: *id,
            recency_days: analytics::days_between(*last, now),
            frequency: *n,
            monetary: *money,
            r: r[i],
            f: f[i],
            m: m[i],
            segment: analytics::rfm_segment(&rules, r[i], f[i], m[i]),
            lifecycle: analytics::lifecycle(
                first_last[i].0,
                first_last[i].1,
                now,
                &LifecycleThresholds::default(),
            ),
        })
        .collect()
}

#[test]
fn fast_path_scores_equal_the_scores_of_the_records() {
    let w = world();
    let admin = w.admin_session();
    let ids = customers(&w, &w.admin);
    let eur: Currency = "EUR".parse().unwrap();
    let usd: Currency = "USD".parse().unwrap();
    // Without rates the USD buyers make the amounts incomparable.
    let e = admin.analytics().rfm(&RfmOptions::default()).unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("rates_needed"), "{e}");
    // A rate with many decimals: converted amounts have a finer scale than stored ones.
    let rates = RateTable::new(eur).with_rate(usd, d("0.91834517"));
    let opts = RfmOptions {
        rates: Some(rates.clone()),
        ..Default::default()
    };
    let rows = admin.analytics().rfm(&opts).unwrap();
    assert!(rows.len() > 15, "{}", rows.len());
    assert_eq!(rows, expected(&w, &w.admin, &ids, Some(&rates)));
    // The scores of the EUR buyers alone (a filter on the accounts), without rates.
    let eur_only = RfmOptions {
        accounts: Some(crm_core::Filter::cmp(
            "lifetime_value",
            crm_core::backend::Op::Ge,
            Money::new(d("0"), eur),
        )),
        ..Default::default()
    };
    let rows = admin.analytics().rfm(&eur_only).unwrap();
    let eur_ids: Vec<RecordId> = ids
        .iter()
        .copied()
        .filter(|id| {
            let a = admin.records().get(EntityKind::Account, *id).unwrap();
            a.get("lifetime_value").as_money().map(|m| m.currency) == Some(eur)
        })
        .collect();
    assert_eq!(rows, expected(&w, &w.admin, &eur_ids, None));
    // Lifecycles of every account (those without orders are prospects), in id order.
    let now = w.crm.now();
    let mut sorted = ids.clone();
    sorted.sort();
    let want: Vec<_> = sorted
        .iter()
        .map(|id| {
            let a = admin.records().get(EntityKind::Account, *id).unwrap();
            (
                *id,
                analytics::lifecycle(
                    a.get("first_order_at").as_timestamp(),
                    a.get("last_order_at").as_timestamp(),
                    now,
                    &LifecycleThresholds::default(),
                ),
            )
        })
        .collect();
    let got = admin
        .analytics()
        .lifecycles(None, &LifecycleThresholds::default())
        .unwrap();
    assert_eq!(got, want);
}

/// A user who does not see every order is scored from the orders they may read: an account's
/// maintained statistics (which count every order) are hidden from them, and an order of someone
/// else on their account does not move their scores.
#[test]
fn a_scoped_user_scores_only_their_accounts_from_their_orders() {
    let w = world();
    let mut p = Policy::default();
    p.objects.insert(
        "*".into(),
        ObjectRule::new(
            &[Action::Create, Action::Read, Action::Update],
            &[Scope::Own],
            &[Scope::Own],
        ),
    );
    let rep = w.user("rep", w.role("rep", &p), fields! {});
    let ids = customers_ordered(&w, &rep, true);
    // Someone else's order on one of the rep's accounts: invisible to the rep.
    order(&w, ids[1], "EUR", "5000", 1);
    let eur: Currency = "EUR".parse().unwrap();
    let rates = RateTable::new(eur).with_rate("USD".parse().unwrap(), d("1.1"));
    let opts = RfmOptions {
        rates: Some(rates.clone()),
        ..Default::default()
    };
    let session = w.on(&rep);
    let rows = session.analytics().rfm(&opts).unwrap();
    // What the rep may read: their accounts and their own orders.
    let orders = session
        .records()
        .list(EntityKind::Order, &ListRequest::default().limit(1000))
        .unwrap()
        .items;
    let now = w.crm.now();
    let mut by_account: std::collections::BTreeMap<RecordId, (_, _, i64, crm_core::Decimal)> =
        Default::default();
    for o in &orders {
        let a = o.reference("account_id").unwrap();
        let net = rates
            .convert(analytics::order_net(o).unwrap())
            .unwrap()
            .amount;
        let at = analytics::ordered_at(o);
        let e = by_account
            .entry(a)
            .or_insert((at, at, 0, crm_core::Decimal::ZERO));
        e.0 = e.0.min(at);
        e.1 = e.1.max(at);
        e.2 += 1;
        e.3 += net;
    }
    assert!(!by_account.is_empty() && by_account.len() < ids.len());
    let measures: Vec<_> = by_account.iter().collect();
    let r = analytics::quintiles(
        &measures
            .iter()
            .map(|(id, x)| (x.1, **id))
            .collect::<Vec<_>>(),
    );
    let f = analytics::quintiles(
        &measures
            .iter()
            .map(|(id, x)| (x.2, **id))
            .collect::<Vec<_>>(),
    );
    let m = analytics::quintiles(
        &measures
            .iter()
            .map(|(id, x)| (x.3, **id))
            .collect::<Vec<_>>(),
    );
    let rules = analytics::default_rfm_rules();
    let want: Vec<RfmRow> = measures
        .iter()
        .enumerate()
        .map(|(i, (id, x))| RfmRow {
            account_id: **id,
            recency_days: analytics::days_between(x.1, now),
            frequency: x.2,
            monetary: crm_core::Money::new(x.3, eur),
            r: r[i],
            f: f[i],
            m: m[i],
            segment: analytics::rfm_segment(&rules, r[i], f[i], m[i]),
            lifecycle: analytics::lifecycle(
                Some(x.0),
                Some(x.1),
                now,
                &LifecycleThresholds::default(),
            ),
        })
        .collect();
    assert_eq!(rows, want);
    let one = rows.iter().find(|r| r.account_id == ids[1]).unwrap();
    assert!(one.monetary.amount < d("5000"), "{one:?}");
    // The statistics themselves are hidden from the rep.
    let acc = session.records().get(EntityKind::Account, ids[1]).unwrap();
    assert!(acc.get("order_count").is_null() && acc.get("lifetime_value").is_null());
}

#[test]
fn a_hidden_count_of_other_currency_orders_reads_as_none() {
    let w = world();
    let admin = w.admin_session();
    let policy = Policy::admin().field(
        EntityKind::Account,
        "other_currency_orders",
        FieldAccess::Hidden,
    );
    let u = w.user("nocount", w.role("no count", &policy), fields! {});
    let a = admin
        .records()
        .create(EntityKind::Account, fields! { "name" => "Mixed" })
        .unwrap()
        .meta
        .id;
    order(&w, a, "EUR", "10", 5);
    order(&w, a, "USD", "20", 2);
    // The administrator sees the USD order and is asked for rates; the user cannot see that
    // count, so (as from their redacted record) the account's EUR statistics are scored.
    let e = admin.analytics().rfm(&RfmOptions::default()).unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("rates_needed"), "{e}");
    let rows = w.on(&u).analytics().rfm(&RfmOptions::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].frequency, 2);
    assert_eq!(rows[0].monetary, Money::parse("10", "EUR").unwrap());
}
