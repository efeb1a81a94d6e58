//! Analytics on the facade: derived order statistics (maintained in the order's transaction), the
//! segment filter language, segments, RFM, lifecycle, profit and the screen pop. Every read goes
//! through the permission-filtered list calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::access::Action;
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

use super::read::MAX_PAGE;
use super::resolve::Resolver;
use super::write::Uow;
use super::{Context, Crm};

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

/// What [`Crm::rfm`] computes over.
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

/// How [`Crm::profit`] groups customers.
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

/// What [`Crm::profit`] computes.
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

/// Supervision figures of one user (as owner) over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserKpi {
    /// The user.
    pub user_id: RecordId,
    /// Activities created in the period.
    pub activities: u64,
    /// … of which calls.
    pub calls: u64,
    /// Orders placed in the period (not cancelled).
    pub orders: u64,
    /// Their net value (common currency; `None` without orders).
    pub order_revenue: Option<Money>,
    /// Opportunities closed in the period at probability 100.
    pub opportunities_won: u64,
    /// Cases owned that are not resolved or closed (now).
    pub open_cases: u64,
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

impl Crm {
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
        let mut rows = uow.tx.query(&q)?;
        rows.retain(|o| Some(o.meta.id) != exclude);
        let fields = match kind {
            EntityKind::Order => analytics::order_stats(&rows).fields(),
            EntityKind::Opportunity => analytics::open_opportunity_fields(&rows),
            EntityKind::Case => analytics::open_case_fields(&rows),
            _ => return Ok(()),
        };
        let types = self
            .tenant_cache(&tenant)?
            .customs
            .types(EntityKind::Account);
        let Some(mut acc) = uow.tx.get(EntityKind::Account, &tenant, account, &types)? else {
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
        let tenant = uow.ctx.tenant.clone();
        let mut accounts = BTreeSet::new();
        for (kind, id) in touched {
            if let Some(o) = uow.tx.get(kind, &tenant, id, &Default::default())? {
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

    // ----------------------------------------------------------------- filter language

    /// Parses filter-language text over `kind` into a [`Filter`], checked against the schema and the
    /// user's field rules. Errors are `InvalidQuery` naming the field, with the column in the message.
    /// Amounts without a currency are in `currency`.
    pub fn parse_filter(
        &self,
        ctx: &Context,
        kind: EntityKind,
        text: &str,
        currency: Option<Currency>,
    ) -> Result<Filter> {
        let (p, cache) = self.principal(ctx)?;
        let expr = segment::parse(text)?;
        let env = CrmEnv {
            resolver: Resolver {
                kind,
                principal: &p,
                customs: &cache.customs,
                phones: &self.phones,
            },
            now: self.now(),
            currency,
        };
        expr.to_filter(&env)
    }

    /// Refuses (naming the field) when one of `fields` of `kind` is hidden from the user.
    fn require_fields(&self, ctx: &Context, kind: EntityKind, fields: &[&str]) -> Result<()> {
        let (p, cache) = self.principal(ctx)?;
        let resolver = Resolver {
            kind,
            principal: &p,
            customs: &cache.customs,
            phones: &self.phones,
        };
        for f in fields {
            resolver.column(f)?;
        }
        Ok(())
    }

    /// Every record of `kind` matching `filter` that the user may read (paged internally).
    pub(crate) fn list_all(
        &self,
        ctx: &Context,
        kind: EntityKind,
        filter: Option<Filter>,
    ) -> Result<Vec<Record>> {
        let mut req = ListRequest {
            filter,
            limit: Some(MAX_PAGE),
            ..Default::default()
        };
        let mut out = Vec::new();
        loop {
            let page = self.list(ctx, kind, &req)?;
            out.extend(page.items);
            match page.next {
                Some(n) => req.after = Some(n),
                None => return Ok(out),
            }
        }
    }

    // ----------------------------------------------------------------- segments

    /// The entity type and filter of a segment the user may read.
    pub fn segment_filter(&self, ctx: &Context, id: RecordId) -> Result<(EntityKind, Filter)> {
        let seg = self.get(ctx, EntityKind::Segment, id)?;
        self.filter_of(ctx, &seg)
    }

    fn filter_of(&self, ctx: &Context, seg: &Record) -> Result<(EntityKind, Filter)> {
        let kind: EntityKind = seg.text("entity").unwrap_or("account").parse()?;
        if seg.text("kind") == Some("static") {
            return Ok((
                kind,
                Filter::In {
                    field: "id".into(),
                    values: member_ids(seg).into_iter().map(Value::Ref).collect(),
                },
            ));
        }
        let currency = match seg.get("currency") {
            Value::Text(c) => Some(c.parse::<Currency>()?),
            _ => None,
        };
        let text = seg.text("definition").unwrap_or_default();
        let f = self
            .parse_filter(ctx, kind, text, currency)
            .map_err(|e| e.in_field("definition"))?;
        Ok((kind, f))
    }

    /// How many records the user may read are in the segment now (dynamic: evaluated now).
    pub fn segment_count(&self, ctx: &Context, id: RecordId) -> Result<u64> {
        let (kind, f) = self.segment_filter(ctx, id)?;
        self.count(ctx, kind, Some(&f))
    }

    /// A page of the segment's members the user may read; `req.filter` narrows further, sort and
    /// keyset paging as in [`Crm::list`].
    pub fn segment_members(
        &self,
        ctx: &Context,
        id: RecordId,
        req: &ListRequest,
    ) -> Result<Page<Record>> {
        let (kind, f) = self.segment_filter(ctx, id)?;
        let mut req = req.clone();
        req.filter = Some(match req.filter.take() {
            Some(g) => f.and(g),
            None => f,
        });
        self.list(ctx, kind, &req)
    }

    /// Materialises a dynamic segment's members (those the acting user may read) into `member_ids`,
    /// with `member_count` and `last_refreshed_at`, recorded as an audited update; reports who entered
    /// and left since the previous refresh. A static segment's members are only recounted.
    pub fn refresh_segment(&self, ctx: &Context, id: RecordId) -> Result<SegmentDiff> {
        let seg = self.get(ctx, EntityKind::Segment, id)?;
        let (kind, f) = self.filter_of(ctx, &seg)?;
        let now_ids: BTreeSet<RecordId> = self
            .list_all(ctx, kind, Some(f))?
            .iter()
            .map(|r| r.meta.id)
            .collect();
        let before: BTreeSet<RecordId> = member_ids(&seg).into_iter().collect();
        let diff = SegmentDiff {
            entered: now_ids.difference(&before).copied().collect(),
            left: before.difference(&now_ids).copied().collect(),
            member_count: now_ids.len() as u64,
        };
        let (p, cache) = self.principal(ctx)?;
        let mut uow = self.begin(ctx, self.now())?;
        let old =
            self.fetch_for_write(&uow, &p, &cache, EntityKind::Segment, id, Action::Update)?;
        let mut new = old.clone();
        if old.text("kind") != Some("static") {
            new.fields.insert(
                "member_ids".into(),
                Value::Json(serde_json::Value::Array(
                    now_ids
                        .iter()
                        .map(|i| serde_json::Value::String(i.to_string()))
                        .collect(),
                )),
            );
        }
        new.fields.insert(
            "member_count".into(),
            Value::Int(i64::try_from(now_ids.len()).unwrap_or(i64::MAX)),
        );
        new.fields
            .insert("last_refreshed_at".into(), Value::Timestamp(uow.now));
        uow.replace(&old, new, Operation::Update, "segment.refreshed", None)?;
        uow.commit(self)?;
        Ok(diff)
    }

    // ----------------------------------------------------------------- RFM and lifecycle

    /// RFM scores of the accounts the user may read that have orders (in the window): quintiles with
    /// SQL `NTILE(5)` semantics, named segments from the rule table. Accounts without orders in the
    /// window are left out. See `docs/segments.md`.
    pub fn rfm(&self, ctx: &Context, opts: &RfmOptions) -> Result<Vec<RfmRow>> {
        let now = self.now();
        let rules = opts
            .rules
            .clone()
            .unwrap_or_else(analytics::default_rfm_rules);
        let thresholds = opts.lifecycle.unwrap_or_default();
        // Scores built from fields the user may not see would leak them: refuse instead.
        self.require_fields(
            ctx,
            EntityKind::Account,
            &[
                "order_count",
                "lifetime_value",
                "first_order_at",
                "last_order_at",
            ],
        )?;
        if opts.window_days.is_some() {
            self.require_fields(
                ctx,
                EntityKind::Order,
                &["account_id", "ordered_at", "total", "tax_total"],
            )?;
        }
        let accounts = self.list_all(ctx, EntityKind::Account, opts.accounts.clone())?;
        // (account, last order, frequency, monetary)
        let mut measures: Vec<(RecordId, DateTime<Utc>, i64, Money)> = Vec::new();
        let mut seen = None;
        let fast = opts.window_days.is_none()
            && accounts
                .iter()
                .all(|a| a.get("other_currency_orders").as_int().unwrap_or(0) == 0);
        if fast {
            for a in &accounts {
                let (Some(last), Some(n), Some(ltv)) = (
                    a.get("last_order_at").as_timestamp(),
                    a.get("order_count").as_int(),
                    a.get("lifetime_value").as_money(),
                ) else {
                    continue;
                };
                if n == 0 {
                    continue;
                }
                let m = to_common(ltv, opts.rates.as_ref(), &mut seen)?;
                measures.push((a.meta.id, last, n, m));
            }
        } else {
            let visible: BTreeSet<RecordId> = accounts.iter().map(|a| a.meta.id).collect();
            let mut f = Filter::cmp("status", Op::Ne, "cancelled");
            if let Some(days) = opts.window_days {
                f = f.and(Filter::cmp(
                    "ordered_at",
                    Op::Ge,
                    now - Duration::days(i64::from(days)),
                ));
            }
            let mut by: BTreeMap<RecordId, (DateTime<Utc>, i64, Option<Money>)> = BTreeMap::new();
            for o in self.list_all(ctx, EntityKind::Order, Some(f))? {
                let Some(a) = o.reference("account_id").filter(|a| visible.contains(a)) else {
                    continue;
                };
                let Some(net) = analytics::order_net(&o) else {
                    continue;
                };
                let net = to_common(net, opts.rates.as_ref(), &mut seen)?;
                let at = analytics::ordered_at(&o);
                let e = by.entry(a).or_insert((at, 0, None));
                e.0 = e.0.max(at);
                e.1 += 1;
                e.2 = Some(money_sum(e.2, net)?);
            }
            for (a, (last, n, m)) in by {
                if let Some(m) = m {
                    measures.push((a, last, n, m));
                }
            }
        }
        let r = analytics::quintiles(
            &measures
                .iter()
                .map(|(id, last, _, _)| (*last, *id))
                .collect::<Vec<_>>(),
        );
        let f = analytics::quintiles(
            &measures
                .iter()
                .map(|(id, _, n, _)| (*n, *id))
                .collect::<Vec<_>>(),
        );
        let m = analytics::quintiles(
            &measures
                .iter()
                .map(|(id, _, _, m)| (m.amount, *id))
                .collect::<Vec<_>>(),
        );
        let stats: HashMap<RecordId, &Record> = accounts.iter().map(|a| (a.meta.id, a)).collect();
        let mut out = Vec::with_capacity(measures.len());
        for (i, (id, last, n, money)) in measures.into_iter().enumerate() {
            let (ri, fi, mi) = (
                r.get(i).copied().unwrap_or(1),
                f.get(i).copied().unwrap_or(1),
                m.get(i).copied().unwrap_or(1),
            );
            let acc = stats.get(&id);
            out.push(RfmRow {
                account_id: id,
                recency_days: analytics::days_between(last, now),
                frequency: n,
                monetary: money,
                r: ri,
                f: fi,
                m: mi,
                segment: analytics::rfm_segment(&rules, ri, fi, mi),
                lifecycle: analytics::lifecycle(
                    acc.and_then(|a| a.get("first_order_at").as_timestamp()),
                    acc.and_then(|a| a.get("last_order_at").as_timestamp()),
                    now,
                    &thresholds,
                ),
            });
        }
        Ok(out)
    }

    /// The lifecycle stage of every account the user may read (matching `filter`), from the
    /// maintained first/last order instants.
    pub fn lifecycles(
        &self,
        ctx: &Context,
        filter: Option<Filter>,
        thresholds: &LifecycleThresholds,
    ) -> Result<Vec<(RecordId, Lifecycle)>> {
        let now = self.now();
        Ok(self
            .list_all(ctx, EntityKind::Account, filter)?
            .iter()
            .map(|a| {
                (
                    a.meta.id,
                    analytics::lifecycle(
                        a.get("first_order_at").as_timestamp(),
                        a.get("last_order_at").as_timestamp(),
                        now,
                        thresholds,
                    ),
                )
            })
            .collect())
    }

    // ----------------------------------------------------------------- profit

    /// The lines of the orders matching `filter` that the user may read, grouped by account, currency,
    /// product and identical attributes: one store aggregate when the backend has it, else read
    /// from the orders page by page.
    fn order_lines(&self, ctx: &Context, filter: Filter) -> Result<Vec<analytics::LineGroup>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, EntityKind::Order)?;
        let req = ListRequest::filter(filter.clone());
        let q = self.build_query(&p, &cache, ctx, EntityKind::Order, &req, Action::Read)?;
        if let Some(groups) = self.store().read()?.order_line_groups(&q)? {
            return Ok(groups);
        }
        let mut out = Vec::new();
        for o in self.list_all(ctx, EntityKind::Order, Some(filter))? {
            let Value::Lines(lines) = o.get("lines") else {
                continue;
            };
            for l in lines {
                out.push(analytics::LineGroup {
                    account_id: o.reference("account_id"),
                    currency: o.text("currency").unwrap_or_default().to_owned(),
                    product_id: l.product_id,
                    description: l.description.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    discount_percent: l.discount_percent,
                    unit_cost: l.unit_cost,
                    lines: 1,
                });
            }
        }
        Ok(out)
    }

    /// Revenue, cost and margin of the orders the user may read placed in `[from, to)` (not
    /// cancelled), by customer segment × product, largest margin first (ties: segment, product).
    pub fn profit(&self, ctx: &Context, opts: &ProfitOptions) -> Result<Vec<ProfitRow>> {
        self.require_fields(
            ctx,
            EntityKind::Order,
            &["account_id", "ordered_at", "lines", "currency"],
        )?;
        let f = Filter::cmp("status", Op::Ne, "cancelled")
            .and(Filter::cmp("ordered_at", Op::Ge, opts.from))
            .and(Filter::cmp("ordered_at", Op::Lt, opts.to));
        let line_groups = self.order_lines(ctx, f)?;
        let segment_of: HashMap<RecordId, String> = match &opts.by {
            ProfitDimension::Rfm => self
                .rfm(ctx, &opts.rfm)?
                .into_iter()
                .map(|r| (r.account_id, r.segment))
                .collect(),
            ProfitDimension::Lifecycle => self
                .lifecycles(ctx, None, &opts.rfm.lifecycle.unwrap_or_default())?
                .into_iter()
                .map(|(id, l)| (id, l.name().to_owned()))
                .collect(),
            ProfitDimension::Field { field } => {
                let (p, cache) = self.principal(ctx)?;
                Resolver {
                    kind: EntityKind::Account,
                    principal: &p,
                    customs: &cache.customs,
                    phones: &self.phones,
                }
                .column(field)?;
                self.list_all(ctx, EntityKind::Account, None)?
                    .iter()
                    .map(|a| {
                        let v = match field.strip_prefix("custom.") {
                            Some(c) => a.custom(c),
                            None => a.get(field),
                        };
                        let s = match v.to_json() {
                            serde_json::Value::String(s) => s,
                            serde_json::Value::Null => String::new(),
                            j => j.to_string(),
                        };
                        (a.meta.id, s)
                    })
                    .collect()
            }
        };
        type Acc = (String, Decimal, Decimal, Decimal, u64);
        let mut groups: BTreeMap<(String, Option<RecordId>), Acc> = BTreeMap::new();
        let mut seen = None;
        let hundred = Decimal::from(100);
        for g in &line_groups {
            let seg = g
                .account_id
                .and_then(|a| segment_of.get(&a).cloned())
                .unwrap_or_else(|| match opts.by {
                    ProfitDimension::Rfm => "no_rfm".to_owned(),
                    _ => String::new(),
                });
            let Ok(currency) = g.currency.parse::<Currency>() else {
                continue;
            };
            let n = Decimal::from(g.lines);
            // Rounded per line, as the order totals are, then times the number of like lines.
            let gross = currency.round(g.quantity * g.unit_price);
            let disc = currency.round(gross * g.discount_percent / hundred);
            let rev = to_common(
                Money::new((gross - disc) * n, currency),
                opts.rates.as_ref(),
                &mut seen,
            )?;
            let cost = to_common(
                Money::new(g.unit_cost.unwrap_or_default() * g.quantity * n, currency),
                opts.rates.as_ref(),
                &mut seen,
            )?;
            let e = groups.entry((seg, g.product_id)).or_insert_with(|| {
                (
                    g.description.clone(),
                    Decimal::ZERO,
                    Decimal::ZERO,
                    Decimal::ZERO,
                    0,
                )
            });
            if g.description < e.0 {
                e.0 = g.description.clone();
            }
            e.1 += g.quantity * n;
            e.2 += rev.amount;
            e.3 += cost.amount;
            if g.unit_cost.is_none() {
                e.4 += g.lines;
            }
        }
        let Some(c) = seen else {
            return Ok(Vec::new());
        };
        let mut rows: Vec<ProfitRow> = groups
            .into_iter()
            .map(
                |((segment, product_id), (product, q, rev, cost, missing))| ProfitRow {
                    segment,
                    product_id,
                    product,
                    quantity: q,
                    revenue: Money::new(rev, c),
                    cost: Money::new(cost, c),
                    margin: Money::new(rev - cost, c),
                    lines_without_cost: missing,
                },
            )
            .collect();
        rows.sort_by(|a, b| {
            b.margin
                .amount
                .cmp(&a.margin.amount)
                .then_with(|| a.segment.cmp(&b.segment))
                .then_with(|| a.product_id.cmp(&b.product_id))
        });
        Ok(rows)
    }

    // ----------------------------------------------------------------- screen pop

    /// The caller-id screen: who is calling (accounts and contacts with that phone), and for a single
    /// match its contacts, recent orders, open opportunities, quotes, open cases, last interactions,
    /// RFM segment, lifecycle and ERP facts — all as the user may see them.
    pub fn screen_pop(
        &self,
        ctx: &Context,
        phone: &str,
        facts: Option<&dyn ErpFacts>,
    ) -> Result<ScreenPop> {
        let accounts = self.find_by_phone(ctx, EntityKind::Account, phone)?;
        let contacts = self.find_by_phone(ctx, EntityKind::Contact, phone)?;
        let mut pop = ScreenPop {
            candidates: accounts.iter().chain(contacts.iter()).cloned().collect(),
            ..Default::default()
        };
        let account = match (accounts.as_slice(), contacts.as_slice()) {
            ([a], []) => Some(a.clone()),
            ([], [c]) => {
                pop.contact = Some(c.clone());
                match c.reference("account_id") {
                    Some(a) => self.get(ctx, EntityKind::Account, a).ok(),
                    None => None,
                }
            }
            ([a], [c]) if c.reference("account_id") == Some(a.meta.id) => {
                pop.contact = Some(c.clone());
                Some(a.clone())
            }
            _ => None,
        };
        let Some(account) = account else {
            return Ok(pop);
        };
        let id = account.meta.id;
        let of = |kind: EntityKind, extra: Option<Filter>, sort: Option<&str>, limit: u32| {
            let mut f = Filter::eq("account_id", id);
            if let Some(x) = extra {
                f = f.and(x);
            }
            let mut req = ListRequest::filter(f).limit(limit);
            if let Some(s) = sort {
                req = req.sort_by(s, true);
            }
            // A section the user may not read at all stays empty; the rest of the picture is shown.
            match self.list(ctx, kind, &req) {
                Ok(p) => Ok(p.items),
                Err(e) if not_allowed(&e) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        pop.contacts = of(EntityKind::Contact, None, None, 100)?;
        pop.recent_orders = of(EntityKind::Order, None, Some("ordered_at"), 10)?;
        pop.open_opportunities = of(
            EntityKind::Opportunity,
            Some(Filter::is_null("closed_at")),
            Some("expected_close"),
            50,
        )?;
        pop.quotes = of(EntityKind::Quote, None, Some("created_at"), 10)?;
        pop.open_cases = of(
            EntityKind::Case,
            Some(Filter::Not {
                not: Box::new(Filter::one_of("status", ["resolved", "closed"])),
            }),
            Some("created_at"),
            50,
        )?;
        pop.last_activities = of(EntityKind::Activity, None, Some("created_at"), 10)?;
        let opts = RfmOptions::default();
        pop.rfm_segment = self
            .rfm(ctx, &opts)
            .ok()
            .and_then(|rows| rows.into_iter().find(|r| r.account_id == id))
            .map(|r| r.segment);
        pop.lifecycle = Some(analytics::lifecycle(
            account.get("first_order_at").as_timestamp(),
            account.get("last_order_at").as_timestamp(),
            self.now(),
            &LifecycleThresholds::default(),
        ));
        pop.cross_sell = match self.cross_sell(ctx, id, 5) {
            Err(e) if not_allowed(&e) => Vec::new(),
            other => other?,
        };
        if let Some(f) = facts {
            pop.erp = Some(f.facts(id)?);
        }
        pop.account = Some(account);
        Ok(pop)
    }

    // ----------------------------------------------------------------- cross-sell, forecast, KPIs

    /// Products often bought together with the ones `account` bought, which it has not bought:
    /// association rules over the order baskets (non-cancelled orders) the user may read, best lift
    /// first (ties: confidence, then product id), at most `limit`.
    pub fn cross_sell(
        &self,
        ctx: &Context,
        account: RecordId,
        limit: usize,
    ) -> Result<Vec<CrossSell>> {
        let orders = self.list_all(
            ctx,
            EntityKind::Order,
            Some(Filter::cmp("status", Op::Ne, "cancelled")),
        )?;
        let mut baskets: Vec<BTreeSet<RecordId>> = Vec::new();
        let mut owned = BTreeSet::new();
        for o in &orders {
            let items: BTreeSet<RecordId> = match o.get("lines") {
                Value::Lines(l) => l.iter().filter_map(|l| l.product_id).collect(),
                _ => BTreeSet::new(),
            };
            if o.reference("account_id") == Some(account) {
                owned.extend(items.iter().copied());
            }
            if !items.is_empty() {
                baskets.push(items);
            }
        }
        let n = baskets.len() as f64;
        let mut count: BTreeMap<RecordId, f64> = BTreeMap::new();
        let mut pair: BTreeMap<(RecordId, RecordId), f64> = BTreeMap::new();
        for b in &baskets {
            for x in b {
                *count.entry(*x).or_default() += 1.0;
                if owned.contains(x) {
                    for y in b.iter().filter(|y| !owned.contains(y)) {
                        *pair.entry((*x, *y)).or_default() += 1.0;
                    }
                }
            }
        }
        let mut best: BTreeMap<RecordId, CrossSell> = BTreeMap::new();
        for ((a, b), both) in pair {
            let (ca, cb) = (
                count.get(&a).copied().unwrap_or(1.0),
                count.get(&b).copied().unwrap_or(1.0),
            );
            let confidence = both / ca;
            let c = CrossSell {
                product_id: b,
                because_of: a,
                support: both / n,
                confidence,
                lift: confidence / (cb / n),
            };
            let better = best
                .get(&b)
                .is_none_or(|o| (c.lift, c.confidence) > (o.lift, o.confidence));
            if better {
                best.insert(b, c);
            }
        }
        let mut out: Vec<CrossSell> = best.into_values().collect();
        out.sort_by(|x, y| {
            y.lift
                .total_cmp(&x.lift)
                .then(y.confidence.total_cmp(&x.confidence))
                .then(x.product_id.cmp(&y.product_id))
        });
        out.truncate(limit);
        Ok(out)
    }

    /// The weighted pipeline of the open opportunities (no `closed_at`) the user may read, by
    /// expected-close month and forecast category. Amounts in several currencies need `rates`.
    pub fn forecast(&self, ctx: &Context, rates: Option<&RateTable>) -> Result<Vec<ForecastRow>> {
        self.require_fields(
            ctx,
            EntityKind::Opportunity,
            &[
                "amount",
                "probability",
                "expected_close",
                "forecast_category",
            ],
        )?;
        let opps = self.list_all(
            ctx,
            EntityKind::Opportunity,
            Some(Filter::is_null("closed_at")),
        )?;
        let mut seen = None;
        let mut groups: BTreeMap<(String, String), (u64, Decimal, Decimal)> = BTreeMap::new();
        for o in &opps {
            let month = o
                .get("expected_close")
                .as_date()
                .map(|d| d.format("%Y-%m").to_string())
                .unwrap_or_default();
            let cat = o.text("forecast_category").unwrap_or("pipeline").to_owned();
            let e = groups.entry((month, cat)).or_default();
            e.0 += 1;
            if let Some(m) = o.get("amount").as_money() {
                let m = to_common(m, rates, &mut seen)?;
                let p = o.get("probability").as_decimal().unwrap_or_default();
                e.1 += m.amount;
                e.2 += m.amount * p / Decimal::from(100);
            }
        }
        let c = match seen {
            Some(c) => c,
            None => match rates.and_then(|r| r.base) {
                Some(c) => c,
                None if groups.is_empty() => return Ok(Vec::new()),
                None => Currency::parse_field("EUR", "currency")?,
            },
        };
        Ok(groups
            .into_iter()
            .map(
                |((month, forecast_category), (count, amount, weighted))| ForecastRow {
                    month,
                    forecast_category,
                    count,
                    amount: Money::new(amount, c),
                    weighted: Money::new(c.round(weighted), c),
                },
            )
            .collect())
    }

    /// Per-owner supervision figures over `[from, to)` for the records the user may read, one row
    /// per owner with any figure, by user id.
    pub fn kpis(
        &self,
        ctx: &Context,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rates: Option<&RateTable>,
    ) -> Result<Vec<UserKpi>> {
        let mut by: BTreeMap<RecordId, UserKpi> = BTreeMap::new();
        fn kpi(by: &mut BTreeMap<RecordId, UserKpi>, u: RecordId) -> &mut UserKpi {
            by.entry(u).or_insert_with(|| UserKpi {
                user_id: u,
                activities: 0,
                calls: 0,
                orders: 0,
                order_revenue: None,
                opportunities_won: 0,
                open_cases: 0,
            })
        }
        let period =
            |field: &str| Filter::cmp(field, Op::Ge, from).and(Filter::cmp(field, Op::Lt, to));
        for a in self.list_all(ctx, EntityKind::Activity, Some(period("created_at")))? {
            let r = kpi(&mut by, a.meta.owner_id);
            r.activities += 1;
            if a.text("activity_type") == Some("call") {
                r.calls += 1;
            }
        }
        let mut seen = None;
        let orders = self.list_all(
            ctx,
            EntityKind::Order,
            Some(period("ordered_at").and(Filter::cmp("status", Op::Ne, "cancelled"))),
        )?;
        for o in orders {
            let net = match analytics::order_net(&o) {
                Some(n) => Some(to_common(n, rates, &mut seen)?),
                None => None,
            };
            let r = kpi(&mut by, o.meta.owner_id);
            r.orders += 1;
            if let Some(net) = net {
                r.order_revenue = Some(money_sum(r.order_revenue, net)?);
            }
        }
        let won = period("closed_at").and(Filter::cmp("probability", Op::Eq, Decimal::from(100)));
        for o in self.list_all(ctx, EntityKind::Opportunity, Some(won))? {
            kpi(&mut by, o.meta.owner_id).opportunities_won += 1;
        }
        let open = Filter::Not {
            not: Box::new(Filter::one_of("status", ["resolved", "closed"])),
        };
        for c in self.list_all(ctx, EntityKind::Case, Some(open))? {
            kpi(&mut by, c.meta.owner_id).open_cases += 1;
        }
        Ok(by.into_values().collect())
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
