//! Analytics on the facade: derived order statistics (maintained in the order's transaction), the
//! segment filter language, segments, RFM, lifecycle, profit and the screen pop. Every read goes
//! through the permission-filtered list calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::access::{Action, Principal};
use crate::analytics::{self, Lifecycle, LifecycleThresholds, RfmRule};
use crate::audit::Operation;
use crate::error::{CrmError, Result};
use crate::id::RecordId;
use crate::money::{Currency, Money, RateTable};
use crate::query::{Column, Cond, Filter, ListRequest, Op, Page, Query};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::segment::{self, FieldEnv};
use crate::value::{FieldType, Value};

mod customers;
mod funnel;
mod kpis;
pub use funnel::{Funnel, FunnelOptions, FunnelStage};
pub use kpis::{ActivityCount, Kpi};
mod value;
pub use value::{CustomerValue, ValueOptions};
mod screen_pop;

pub(crate) use screen_pop::Snapshot;
mod segments;

use super::door::Why;
use super::read::{Reader, MAX_PAGE};
use super::resolve::Resolver;
use super::write::Uow;
use super::{principal_in, Context, Engine, TenantCache};

/// Field types, clock and checks for the filter language, from the facade's resolver.
struct CrmEnv<'a> {
    resolver: Resolver<'a>,
    now: DateTime<Utc>,
    currency: Option<Currency>,
}

impl FieldEnv for CrmEnv<'_> {
    fn field_type(&self, field: &str) -> Result<FieldType> {
        self.resolver.column(field).map(|c| c.ty())
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
    fn currency(&self) -> Option<Currency> {
        self.currency
    }
    fn check(&self, leaf: &Filter) -> Result<()> {
        self.resolver.cond(leaf).map(|_| ())
    }
}

/// Who entered and who left a segment at a refresh.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SegmentDiff {
    /// Members now that were not members at the previous refresh.
    pub entered: Vec<RecordId>,
    /// Members at the previous refresh that are not members now.
    pub left: Vec<RecordId>,
    /// Members now.
    pub member_count: u64,
}

/// What [`Analytics::rfm`](crate::Analytics::rfm) computes over.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RfmOptions {
    /// Only orders of the last `window_days` days; `None` = all history (fast path: the maintained
    /// account statistics).
    pub window_days: Option<u32>,
    /// The segment rule table; `None` = [`analytics::default_rfm_rules`].
    pub rules: Option<Vec<RfmRule>>,
    /// Rates to combine amounts in several currencies (into `rates.base`).
    pub rates: Option<RateTable>,
    /// Lifecycle thresholds; `None` = the defaults.
    pub lifecycle: Option<LifecycleThresholds>,
    /// Only accounts matching this filter.
    pub accounts: Option<Filter>,
}

/// One customer's RFM scores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfmRow {
    /// The account.
    pub account_id: RecordId,
    /// Whole days since the last order (in the window).
    pub recency_days: i64,
    /// Orders in the window.
    pub frequency: i64,
    /// Net value of the orders in the window.
    pub monetary: Money,
    /// Recency score 1–5 (5 = most recent).
    pub r: u8,
    /// Frequency score 1–5 (5 = most orders).
    pub f: u8,
    /// Monetary score 1–5 (5 = highest spend).
    pub m: u8,
    /// The named segment from the rule table.
    pub segment: String,
    /// The lifecycle stage (from all-time first and last order).
    pub lifecycle: Lifecycle,
}

/// How [`Analytics::profit`](crate::Analytics::profit) groups customers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ProfitDimension {
    /// The RFM segment (computed with these options).
    Rfm,
    /// The lifecycle stage.
    Lifecycle,
    /// The value of an account field (rendered as text; `""` when empty).
    Field {
        /// The account field name.
        field: String,
    },
}

/// What [`Analytics::profit`](crate::Analytics::profit) computes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfitOptions {
    /// Orders placed at or after this instant…
    pub from: DateTime<Utc>,
    /// …and before this one.
    pub to: DateTime<Utc>,
    /// The customer dimension.
    pub by: ProfitDimension,
    /// Rates to combine currencies; without them all orders must share one currency.
    pub rates: Option<RateTable>,
    /// RFM options when grouping by RFM segment.
    #[serde(default)]
    pub rfm: RfmOptions,
}

/// Revenue, cost and margin of one segment × product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfitRow {
    /// The segment value.
    pub segment: String,
    /// The product (`None` for free-text lines).
    pub product_id: Option<RecordId>,
    /// The line description of the product (first seen).
    pub product: String,
    /// Units sold.
    pub quantity: Decimal,
    /// Net revenue (after line discounts, before tax).
    pub revenue: Money,
    /// Σ unit_cost × quantity (lines without a cost count 0 and are counted in `lines_without_cost`).
    pub cost: Money,
    /// revenue − cost.
    pub margin: Money,
    /// Lines without a unit cost.
    pub lines_without_cost: u64,
}

/// What the host's ERP knows about a customer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErpFactsRow {
    /// Open balance.
    pub balance: Option<Money>,
    /// Payment terms.
    pub credit_terms: Option<String>,
    /// Invoices past due.
    pub overdue_invoices: Vec<OverdueInvoice>,
}

/// An invoice past due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueInvoice {
    /// Invoice number.
    pub number: String,
    /// Amount open.
    pub amount: Money,
    /// Due date.
    pub due: NaiveDate,
}

/// The host's ERP: balance and credit facts per account (a host extension point).
pub trait ErpFacts {
    /// The facts of one account.
    fn facts(&self, account_id: RecordId) -> Result<ErpFactsRow>;
}

/// Everything an agent needs when a call comes in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScreenPop {
    /// Accounts and contacts whose phone matches (several = ask the caller).
    pub candidates: Vec<Record>,
    /// The matched account (one account, or the account of the one matched contact).
    pub account: Option<Record>,
    /// The matched contact, when the number is a contact's.
    pub contact: Option<Record>,
    /// Contacts of the account.
    pub contacts: Vec<Record>,
    /// Latest orders (newest first, at most 10) with their lines.
    pub recent_orders: Vec<Record>,
    /// Opportunities not closed.
    pub open_opportunities: Vec<Record>,
    /// Latest quotes (at most 10).
    pub quotes: Vec<Record>,
    /// Cases not resolved or closed.
    pub open_cases: Vec<Record>,
    /// Latest interactions (at most 10).
    pub last_activities: Vec<Record>,
    /// RFM segment (all history).
    pub rfm_segment: Option<String>,
    /// Lifecycle stage.
    pub lifecycle: Option<Lifecycle>,
    /// Products frequently bought with the customer's (at most 5).
    pub cross_sell: Vec<CrossSell>,
    /// ERP facts, when a provider was given.
    pub erp: Option<ErpFactsRow>,
}

/// A product suggested to a customer because customers buying one of theirs also buy it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossSell {
    /// The suggested product (not yet bought by the customer).
    pub product_id: RecordId,
    /// The customer's product the rule starts from (the one with the best lift).
    pub because_of: RecordId,
    /// Share of order baskets holding both.
    pub support: f64,
    /// Share of baskets with `because_of` that also hold `product_id`.
    pub confidence: f64,
    /// `confidence` / share of baskets holding `product_id` (> 1: bought together more than by chance).
    pub lift: f64,
}

/// Weighted pipeline of one expected-close month and forecast category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastRow {
    /// `YYYY-MM` of `expected_close`, or `""` when not set.
    pub month: String,
    /// The opportunities' forecast category.
    pub forecast_category: String,
    /// Open opportunities.
    pub count: u64,
    /// Σ amount.
    pub amount: Money,
    /// Σ amount × probability / 100.
    pub weighted: Money,
}

fn money_sum(a: Option<Money>, b: Money) -> Result<Money> {
    match a {
        Some(a) => a.checked_add(b),
        None => Ok(b),
    }
}

/// Amounts in one currency: converted with `rates` when given, else all must share one currency.
fn to_common(m: Money, rates: Option<&RateTable>, seen: &mut Option<Currency>) -> Result<Money> {
    let m = match rates {
        Some(r) => r.convert(m)?,
        None => m,
    };
    match seen {
        Some(c) if *c != m.currency => Err(CrmError::invalid_query(
            Some("rates"),
            "rates_needed",
            format!(
                "amounts in {} and {}: give a rate table to combine them",
                c, m.currency
            ),
        )),
        Some(_) => Ok(m),
        None => {
            *seen = Some(m.currency);
            Ok(m)
        }
    }
}

/// The kinds whose records feed statistics kept on their account.
const STATS_KINDS: &[EntityKind] = &[EntityKind::Order, EntityKind::Opportunity, EntityKind::Case];

fn builtin(kind: EntityKind, name: &str) -> Option<Column> {
    kind.schema().field(name).map(|s| Column::Builtin {
        name: s.name,
        ty: s.ty.clone(),
    })
}

impl Engine {
    // ----------------------------------------------------------------- derived order statistics

    /// Recomputes the statistics `kind` (orders, opportunities or cases) contributes to `account` from
    /// the account's live records of that kind (leaving out `exclude`), inside the unit of work. The
    /// account's version is not bumped and no audit entry is written: the stats are derived from
    /// audited changes of those records.
    pub(crate) fn refresh_account_stats(
        &self,
        uow: &mut Uow<'_>,
        kind: EntityKind,
        account: RecordId,
        exclude: Option<RecordId>,
    ) -> Result<()> {
        let tenant = uow.ctx.tenant.clone();
        let Some(col) = builtin(kind, "account_id") else {
            return Ok(());
        };
        let q =
            Query::all(kind, tenant.clone()).and(Cond::Compare(col, Op::Eq, Value::Ref(account)));
        let mut rows = uow.tx.unscoped(Why::Maintenance).query(&q)?;
        rows.retain(|o| Some(o.meta.id) != exclude);
        let fields = match kind {
            EntityKind::Order => analytics::order_stats(&rows).fields(),
            EntityKind::Opportunity => analytics::open_opportunity_fields(&rows),
            EntityKind::Case => analytics::open_case_fields(&rows),
            _ => return Ok(()),
        };
        // The account's custom fields as this unit of work sees them: configuration written inside
        // it (a custom field defined earlier in the same transaction) is not in the shared cache yet,
        // and loading that cache here could wait on the writer this unit of work holds.
        let types = match self.cached(&tenant) {
            Some(c) if !uow.config_changed => c.customs.types(EntityKind::Account),
            _ => super::load_cache(uow.tx.unscoped(Why::Configuration), &tenant)?
                .customs
                .types(EntityKind::Account),
        };
        let Some(mut acc) =
            uow.tx
                .unscoped(Why::Maintenance)
                .get(EntityKind::Account, &tenant, account, &types)?
        else {
            return Ok(());
        };
        let before = acc.fields.clone();
        for (name, v) in fields {
            if v.is_null() {
                acc.fields.remove(name);
            } else {
                acc.fields.insert(name.to_owned(), v);
            }
        }
        if acc.fields != before {
            let version = acc.meta.version;
            uow.tx.update(&acc, version)?;
        }
        Ok(())
    }

    /// Hook of `before_update`: an order, opportunity or case moved to another account leaves its old
    /// account's stats.
    pub(crate) fn order_stats_on_update(
        &self,
        uow: &mut Uow<'_>,
        old: &crate::record::Record,
        new: &crate::record::Record,
    ) -> Result<()> {
        let kind = old.meta.kind;
        if !STATS_KINDS.contains(&kind) {
            return Ok(());
        }
        let (a, b) = (old.reference("account_id"), new.reference("account_id"));
        match (a, b) {
            (Some(a), b) if Some(a) != b => {
                self.refresh_account_stats(uow, kind, a, Some(old.meta.id))
            }
            _ => Ok(()),
        }
    }

    /// Hook of `before_commit`: every account whose orders, opportunities or cases this unit of work
    /// created, changed, deleted or restored gets those statistics recomputed.
    pub(crate) fn order_stats_before_commit(&self, uow: &mut Uow<'_>) -> Result<()> {
        let touched: BTreeSet<(EntityKind, RecordId)> = uow
            .written
            .iter()
            .filter(|(k, _, _)| STATS_KINDS.contains(k))
            .map(|(k, id, _)| (*k, *id))
            .collect();
        if touched.is_empty() {
            return Ok(());
        }
        if touched.iter().any(|(k, _)| *k == EntityKind::Order) {
            self.orders_generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        let tenant = uow.ctx.tenant.clone();
        let mut accounts = BTreeSet::new();
        for (kind, id) in touched {
            if let Some(o) =
                uow.tx
                    .unscoped(Why::Maintenance)
                    .get(kind, &tenant, id, &Default::default())?
            {
                if let Some(a) = o.reference("account_id") {
                    accounts.insert((kind, a));
                }
            }
        }
        for (kind, a) in accounts {
            self.refresh_account_stats(uow, kind, a, None)?;
        }
        Ok(())
    }
}

/// The member ids stored on a segment.
fn member_ids(seg: &Record) -> Vec<RecordId> {
    match seg.get("member_ids") {
        Value::Json(serde_json::Value::Array(v)) => v
            .iter()
            .filter_map(|x| x.as_str().and_then(|s| s.parse().ok()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether an error only says the user may not read a whole entity type (a screen-pop section).
fn not_allowed(e: &CrmError) -> bool {
    e.kind == crate::error::ErrorKind::PermissionDenied
        && e.rule.as_deref() == Some("object_permission")
}
