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
