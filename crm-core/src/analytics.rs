//! Pure analytic computations: per-customer order statistics, `NTILE` quintiles, RFM scores and
//! named segments from a rule table, customer lifecycle. No storage here; `Crm` methods feed them
//! permission-filtered rows.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::id::RecordId;
use crate::money::{Currency, Money};
use crate::record::Record;
use crate::value::Value;

/// The order statistics kept on an account (see `docs/segments.md`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderStats {
    /// Orders counted (live, not cancelled), in any currency.
    pub order_count: i64,
    /// Sum of net order values (total minus tax) of the orders in the stats currency.
    pub lifetime_value: Option<Money>,
    /// `lifetime_value` divided by the number of orders in the stats currency, rounded.
    pub average_order_value: Option<Money>,
    /// The earliest `ordered_at`.
    pub first_order_at: Option<DateTime<Utc>>,
    /// The latest `ordered_at`.
    pub last_order_at: Option<DateTime<Utc>>,
    /// Orders counted whose currency differs from the stats currency (left out of the amounts).
    pub other_currency_orders: i64,
}

/// The net value of an order: total minus tax (what margins and lifetime value use).
pub fn order_net(order: &Record) -> Option<Money> {
    let total = order.get("total").as_money()?;
    let tax = order
        .get("tax_total")
        .as_money()
        .map(|t| t.amount)
        .unwrap_or_default();
    Some(Money::new(total.amount - tax, total.currency))
}

/// Order lines with identical attributes, counted (a backend may also hand over each line alone,
/// counted once): what a backend's one-statement read of the order lines gives
/// ([`crate::backend::ReadTx::order_lines`]). Amounts are then computed exactly in
/// Rust, so the database never does decimal arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineGroup {
    /// The order's account.
    pub account_id: Option<RecordId>,
    /// The order's currency code.
    pub currency: String,
    /// The line's product.
    pub product_id: Option<RecordId>,
    /// One of the lines' descriptions (the smallest).
    pub description: String,
    /// Quantity of each line.
    pub quantity: Decimal,
    /// Unit price of each line.
    pub unit_price: Decimal,
    /// Discount percent of each line.
    pub discount_percent: Decimal,
    /// Unit cost of each line.
    pub unit_cost: Option<Decimal>,
    /// How many lines are alike.
    pub lines: u64,
}

/// Whether an order counts in statistics: live and not cancelled.
pub fn order_counts(order: &Record) -> bool {
    order.meta.deleted_at.is_none() && order.text("status") != Some("cancelled")
}

/// The instant an order was placed (`ordered_at`, else its creation).
pub fn ordered_at(order: &Record) -> DateTime<Utc> {
    order
        .get("ordered_at")
        .as_timestamp()
        .unwrap_or(order.meta.created_at)
}

/// Statistics of one account's orders. The stats currency is the currency of the earliest counted
/// order (ties by id); amounts in other currencies are counted in `other_currency_orders` only.
pub fn order_stats(orders: &[Record]) -> OrderStats {
    let mut counted: Vec<&Record> = orders.iter().filter(|o| order_counts(o)).collect();
    counted.sort_by_key(|o| (ordered_at(o), o.meta.id));
    let mut s = OrderStats::default();
    let mut currency: Option<Currency> = None;
    let mut sum = Decimal::ZERO;
    let mut n_money = 0i64;
    for o in counted {
        s.order_count += 1;
        let at = ordered_at(o);
        s.first_order_at = Some(s.first_order_at.map_or(at, |f| f.min(at)));
        s.last_order_at = Some(s.last_order_at.map_or(at, |l| l.max(at)));
        if let Some(net) = order_net(o) {
            let c = *currency.get_or_insert(net.currency);
            if c == net.currency {
                sum += net.amount;
                n_money += 1;
            } else {
                s.other_currency_orders += 1;
            }
        }
    }
    if let Some(c) = currency {
        s.lifetime_value = Some(Money::new(sum, c));
        if n_money > 0 {
            s.average_order_value = Some(Money::new(c.round(sum / Decimal::from(n_money)), c));
        }
    }
    s
}

impl OrderStats {
    /// The account fields these statistics are stored in (`Null` clears a field).
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        let opt_money = |m: Option<Money>| m.map(Value::Money).unwrap_or(Value::Null);
        let opt_ts = |t: Option<DateTime<Utc>>| t.map(Value::Timestamp).unwrap_or(Value::Null);
        vec![
            ("order_count", Value::Int(self.order_count)),
            ("lifetime_value", opt_money(self.lifetime_value)),
            ("average_order_value", opt_money(self.average_order_value)),
            ("first_order_at", opt_ts(self.first_order_at)),
            ("last_order_at", opt_ts(self.last_order_at)),
            (
                "other_currency_orders",
                Value::Int(self.other_currency_orders),
            ),
        ]
    }
}

/// The open-opportunity fields of an account from its opportunities: `open_opportunities` (live,
/// no `closed_at`) and `open_opportunity_value` (Σ amount in the currency of the earliest-created open
/// opportunity with an amount; amounts in other currencies are left out).
pub fn open_opportunity_fields(opps: &[Record]) -> Vec<(&'static str, Value)> {
    let mut open: Vec<&Record> = opps
        .iter()
        .filter(|o| o.meta.deleted_at.is_none() && o.get("closed_at").is_null())
        .collect();
    open.sort_by_key(|o| (o.meta.created_at, o.meta.id));
    let mut sum: Option<Money> = None;
    for o in &open {
        if let Some(m) = o.get("amount").as_money() {
            match sum {
                None => sum = Some(m),
                Some(s) if s.currency == m.currency => {
                    sum = Some(Money::new(s.amount + m.amount, s.currency))
                }
                Some(_) => {}
            }
        }
    }
    vec![
        ("open_opportunities", Value::Int(open.len() as i64)),
        (
            "open_opportunity_value",
            sum.map(Value::Money).unwrap_or(Value::Null),
        ),
    ]
}

/// The `open_cases` field of an account: live cases not resolved or closed.
pub fn open_case_fields(cases: &[Record]) -> Vec<(&'static str, Value)> {
    let n = cases
        .iter()
        .filter(|c| {
            c.meta.deleted_at.is_none()
                && !matches!(c.text("status"), Some("resolved") | Some("closed"))
        })
        .count();
    vec![("open_cases", Value::Int(n as i64))]
}

/// SQL `NTILE(n)` over rows already in order: the bucket (1-based) of each row. The first
/// `len % n` buckets hold one row more than the others.
pub fn ntile(len: usize, n: usize) -> Vec<u8> {
    let n = n.max(1);
    let q = len / n;
    let r = len % n;
    (0..len)
        .map(|i| {
            let b = if i < r * (q + 1) {
                i / (q + 1)
            } else {
                r + (i - r * (q + 1)) / q.max(1)
            };
            u8::try_from(b + 1).unwrap_or(u8::MAX)
        })
        .collect()
}

/// Quintiles (1–5) of `keys` with SQL semantics: `NTILE(5) OVER (ORDER BY key ASC, id ASC)`.
pub fn quintiles<K: Ord + Clone>(keys: &[(K, RecordId)]) -> Vec<u8> {
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    idx.sort_by(|a, b| {
        let (ka, ia) = &keys[*a];
        let (kb, ib) = &keys[*b];
        ka.cmp(kb).then(ia.cmp(ib))
    });
    let tiles = ntile(keys.len(), 5);
    let mut out = vec![0u8; keys.len()];
    for (pos, i) in idx.into_iter().enumerate() {
        if let (Some(slot), Some(t)) = (out.get_mut(i), tiles.get(pos)) {
            *slot = *t;
        }
    }
    out
}

/// One rule of the RFM segment table: the segment applies when each score lies in its inclusive range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfmRule {
    /// The segment name.
    pub segment: String,
    /// Recency score range.
    pub r: (u8, u8),
    /// Frequency score range.
    pub f: (u8, u8),
    /// Monetary score range.
    pub m: (u8, u8),
}

impl RfmRule {
    fn new(segment: &str, r: (u8, u8), f: (u8, u8), m: (u8, u8)) -> Self {
        RfmRule {
            segment: segment.to_owned(),
            r,
            f,
            m,
        }
    }

    /// Whether the scores fall in this rule's ranges.
    pub fn matches(&self, r: u8, f: u8, m: u8) -> bool {
        let within = |x: u8, (lo, hi): (u8, u8)| lo <= x && x <= hi;
        within(r, self.r) && within(f, self.f) && within(m, self.m)
    }
}

/// The default RFM rule table (first matching rule wins; documented in `docs/segments.md`). It covers
/// all 125 score combinations.
pub fn default_rfm_rules() -> Vec<RfmRule> {
    vec![
        RfmRule::new("champions", (4, 5), (4, 5), (4, 5)),
        RfmRule::new("loyal", (3, 5), (4, 5), (1, 5)),
        RfmRule::new("potential_loyalists", (4, 5), (2, 3), (1, 5)),
        RfmRule::new("new", (5, 5), (1, 1), (1, 5)),
        RfmRule::new("promising", (4, 4), (1, 1), (1, 5)),
        RfmRule::new("need_attention", (3, 3), (2, 3), (1, 5)),
        RfmRule::new("about_to_sleep", (3, 3), (1, 1), (1, 5)),
        RfmRule::new("cant_lose", (1, 1), (4, 5), (1, 5)),
        RfmRule::new("at_risk", (1, 2), (3, 5), (1, 5)),
        RfmRule::new("hibernating", (2, 2), (1, 2), (1, 5)),
        RfmRule::new("lost", (1, 1), (1, 2), (1, 5)),
    ]
}

/// The segment of a score triple under `rules` (`"other"` when none matches).
pub fn rfm_segment(rules: &[RfmRule], r: u8, f: u8, m: u8) -> String {
    rules
        .iter()
        .find(|x| x.matches(r, f, m))
        .map(|x| x.segment.clone())
        .unwrap_or_else(|| "other".to_owned())
}

/// Where a customer is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// First order within `new_days`.
    New,
    /// Last order within `active_days`.
    Active,
    /// Last order within `dormant_days`.
    Dormant,
    /// Last order longer ago.
    Inactive,
    /// No order at all.
    Prospect,
}

impl Lifecycle {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Lifecycle::New => "new",
            Lifecycle::Active => "active",
            Lifecycle::Dormant => "dormant",
            Lifecycle::Inactive => "inactive",
            Lifecycle::Prospect => "prospect",
        }
    }
}

/// Thresholds of the lifecycle, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleThresholds {
    /// A customer whose first order is at most this old is `new` (default 30).
    pub new_days: i64,
    /// A customer whose last order is at most this old is `active` (default 90).
    pub active_days: i64,
    /// … at most this old is `dormant` (default 365); older is `inactive`.
    pub dormant_days: i64,
}

impl Default for LifecycleThresholds {
    fn default() -> Self {
        LifecycleThresholds {
            new_days: 30,
            active_days: 90,
            dormant_days: 365,
        }
    }
}

/// Whole days from `then` to `now` (floor; 0 for the future).
pub fn days_between(then: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - then).num_days().max(0)
}

/// The lifecycle stage from first and last order instants.
pub fn lifecycle(
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    t: &LifecycleThresholds,
) -> Lifecycle {
    let (Some(first), Some(last)) = (first, last) else {
        return Lifecycle::Prospect;
    };
    if days_between(first, now) <= t.new_days {
        Lifecycle::New
    } else if days_between(last, now) <= t.active_days {
        Lifecycle::Active
    } else if days_between(last, now) <= t.dormant_days {
        Lifecycle::Dormant
    } else {
        Lifecycle::Inactive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntile_matches_sql() {
        assert_eq!(ntile(7, 5), vec![1, 1, 2, 2, 3, 4, 5]);
        assert_eq!(ntile(3, 5), vec![1, 2, 3]);
        assert_eq!(ntile(10, 5), vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert!(ntile(0, 5).is_empty());
    }

    #[test]
    fn default_rules_cover_every_score() {
        let rules = default_rfm_rules();
        for r in 1..=5 {
            for f in 1..=5 {
                for m in 1..=5 {
                    assert_ne!(rfm_segment(&rules, r, f, m), "other", "{r}{f}{m}");
                }
            }
        }
    }
}
