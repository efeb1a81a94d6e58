//! Analytics and duplicates: the caller-id screen pop with a host [`ErpFactsProvider`], RFM scores,
//! lifecycles, profit by customer segment × product, segment members, cross-sell suggestions, the
//! weighted forecast, per-user KPIs and merging duplicates. Thin conversions inside [`guard`], as
//! elsewhere: amounts are decimal strings, instants UTC epoch microseconds, ids strings. The only
//! floating-point values are the cross-sell statistics (support, confidence, lift), which are ratios,
//! never amounts.

use std::sync::Arc;

use crm_core::analytics::Lifecycle as CoreLifecycle;
use crm_core::chrono::NaiveDate;
use crm_core::{
    CrmError as CoreError, CrossSell as CoreCrossSell, Currency as CoreCurrency,
    ErpFacts as CoreErpFacts, ErpFactsRow as CoreErpFactsRow, ErrorKind as CoreErrorKind,
    ForecastRow as CoreForecastRow, Kpi as CoreKpi, MergeOutcome as CoreMergeOutcome,
    Money as CoreMoney, OverdueInvoice as CoreOverdueInvoice,
    ProfitDimension as CoreProfitDimension, ProfitOptions as CoreProfitOptions,
    ProfitRow as CoreProfitRow, RecordId as CoreRecordId, RfmOptions as CoreRfmOptions,
    RfmRow as CoreRfmRow, ScreenPop as CoreScreenPop,
};

use crate::error::{guard, CrmError};
use crate::session::Session;
use crate::types::{
    filter, instant, kind, parse_decimal, record_id, signed, unsigned32, FfiListRequest, FfiPage,
    FfiRecord,
};

/// An exact amount of money: a decimal string (`"1234.50"`) and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiMoney {
    /// The amount as a decimal string, never a float.
    pub amount: String,
    /// The currency code (`EUR`).
    pub currency: String,
}

impl From<CoreMoney> for FfiMoney {
    fn from(m: CoreMoney) -> Self {
        FfiMoney {
            amount: m.amount.to_string(),
            currency: m.currency.code().to_owned(),
        }
    }
}

/// A host amount to a core one; `field` is named in the error.
fn core_money(field: &str, m: FfiMoney) -> Result<CoreMoney, CrmError> {
    let amount = parse_decimal(&m.amount).ok_or_else(|| {
        CrmError::validation(field, "decimal_syntax", "not a valid decimal amount")
    })?;
    Ok(CoreMoney::new(
        amount,
        CoreCurrency::parse_field(&m.currency, field)?,
    ))
}

/// An invoice past due, as the host's ERP knows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiOverdueInvoice {
    /// The invoice number.
    pub number: String,
    /// The amount still open.
    pub amount: FfiMoney,
    /// The due date, `YYYY-MM-DD`.
    pub due: String,
}

/// What the host's ERP knows about one customer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiErpFacts {
    /// The open balance.
    #[uniffi(default = None)]
    pub balance: Option<FfiMoney>,
    /// The payment terms (`30 days end of month`).
    #[uniffi(default = None)]
    pub credit_terms: Option<String>,
    /// The invoices past due.
    #[uniffi(default = [])]
    pub overdue_invoices: Vec<FfiOverdueInvoice>,
}

impl TryFrom<FfiErpFacts> for CoreErpFactsRow {
    type Error = CrmError;
    fn try_from(f: FfiErpFacts) -> Result<Self, CrmError> {
        let overdue_invoices = f
            .overdue_invoices
            .into_iter()
            .map(|i| {
                Ok(CoreOverdueInvoice {
                    number: i.number,
                    amount: core_money("overdue_invoices.amount", i.amount)?,
                    due: NaiveDate::parse_from_str(&i.due, "%Y-%m-%d").map_err(|_| {
                        CrmError::validation(
                            "overdue_invoices.due",
                            "date_syntax",
                            "not a valid date (YYYY-MM-DD)",
                        )
                    })?,
                })
            })
            .collect::<Result<_, CrmError>>()?;
        Ok(CoreErpFactsRow {
            balance: f.balance.map(|b| core_money("balance", b)).transpose()?,
            credit_terms: f.credit_terms,
            overdue_invoices,
        })
    }
}

impl From<CoreErpFactsRow> for FfiErpFacts {
    fn from(f: CoreErpFactsRow) -> Self {
        FfiErpFacts {
            balance: f.balance.map(Into::into),
            credit_terms: f.credit_terms,
            overdue_invoices: f
                .overdue_invoices
                .into_iter()
                .map(|i| FfiOverdueInvoice {
                    number: i.number,
                    amount: i.amount.into(),
                    due: i.due.format("%Y-%m-%d").to_string(),
                })
                .collect(),
        }
    }
}

/// The host's ERP, implemented in Kotlin/Java (or Swift, Python): balance, credit terms and overdue
/// invoices of one account, for the screen pop. Raising a `CrmException` fails the screen pop with
/// that exception; any other exception fails it with `Internal` (rule `callback`).
#[uniffi::export(with_foreign)]
pub trait ErpFactsProvider: Send + Sync {
    /// The facts of the account with this id.
    fn facts(&self, account_id: String) -> Result<FfiErpFacts, CrmError>;
}

/// The binding's flat error back into the core's error, keeping its kind and details, so that a
/// host's `CrmException` comes back out of the core call as the same exception.
fn core_error(e: CrmError) -> CoreError {
    let (kind, detail, field, rule, action, entity) = match e {
        CrmError::Validation {
            detail,
            field,
            rule,
            action,
            entity,
        } => (
            CoreErrorKind::Validation,
            detail,
            field,
            rule,
            action,
            entity,
        ),
        CrmError::NotFound {
            detail,
            field,
            rule,
            action,
            entity,
        } => (CoreErrorKind::NotFound, detail, field, rule, action, entity),
        CrmError::PermissionDenied {
            detail,
            field,
            rule,
            action,
            entity,
        } => (
            CoreErrorKind::PermissionDenied,
            detail,
            field,
            rule,
            action,
            entity,
        ),
        CrmError::Conflict {
            detail,
            field,
            rule,
            action,
            entity,
        } => (CoreErrorKind::Conflict, detail, field, rule, action, entity),
        CrmError::InvalidTransition {
            detail,
            field,
            rule,
            action,
            entity,
        } => (
            CoreErrorKind::InvalidTransition,
            detail,
            field,
            rule,
            action,
            entity,
        ),
        CrmError::InvalidQuery {
            detail,
            field,
            rule,
            action,
            entity,
        } => (
            CoreErrorKind::InvalidQuery,
            detail,
            field,
            rule,
            action,
            entity,
        ),
        CrmError::Storage {
            detail,
            field,
            rule,
            action,
            entity,
        } => (CoreErrorKind::Storage, detail, field, rule, action, entity),
        CrmError::Internal {
            detail,
            field,
            rule,
            action,
            entity,
        } => (CoreErrorKind::Internal, detail, field, rule, action, entity),
    };
    CoreError {
        kind,
        message: detail,
        field,
        rule,
        action,
        entity,
    }
}

/// The core's ERP trait driven by a host provider.
struct HostErp<'a>(&'a dyn ErpFactsProvider);

impl CoreErpFacts for HostErp<'_> {
    fn facts(&self, account_id: CoreRecordId) -> crm_core::Result<CoreErpFactsRow> {
        let f = self.0.facts(account_id.to_string()).map_err(core_error)?;
        f.try_into().map_err(core_error)
    }
}

/// A product suggested to a customer because customers buying one of theirs also buy it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FfiCrossSell {
    /// The suggested product (not yet bought by the customer).
    pub product_id: String,
    /// The customer's product the rule starts from (the one with the best lift).
    pub because_of: String,
    /// Share of order baskets holding both (a ratio 0–1).
    pub support: f64,
    /// Share of baskets with `because_of` that also hold `product_id`.
    pub confidence: f64,
    /// `confidence` / share of baskets holding `product_id` (> 1: bought together more than by chance).
    pub lift: f64,
}

impl From<CoreCrossSell> for FfiCrossSell {
    fn from(c: CoreCrossSell) -> Self {
        FfiCrossSell {
            product_id: c.product_id.to_string(),
            because_of: c.because_of.to_string(),
            support: c.support,
            confidence: c.confidence,
            lift: c.lift,
        }
    }
}

/// Everything an agent needs when a call comes in.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FfiScreenPop {
    /// Accounts and contacts whose phone matches (several: ask the caller).
    pub candidates: Vec<FfiRecord>,
    /// The matched account (one account, or the account of the one matched contact).
    pub account: Option<FfiRecord>,
    /// The matched contact, when the number is a contact's.
    pub contact: Option<FfiRecord>,
    /// Contacts of the account.
    pub contacts: Vec<FfiRecord>,
    /// Latest orders, newest first (at most 10), with their lines.
    pub recent_orders: Vec<FfiRecord>,
    /// Opportunities not closed.
    pub open_opportunities: Vec<FfiRecord>,
    /// Latest quotes (at most 10).
    pub quotes: Vec<FfiRecord>,
    /// Cases not resolved or closed.
    pub open_cases: Vec<FfiRecord>,
    /// Latest interactions (at most 10).
    pub last_activities: Vec<FfiRecord>,
    /// The RFM segment (all history).
    pub rfm_segment: Option<String>,
    /// The lifecycle stage (`new`, `active`, `dormant`, `inactive`, `prospect`).
    pub lifecycle: Option<String>,
    /// Products frequently bought with the customer's (at most 5).
    pub cross_sell: Vec<FfiCrossSell>,
    /// The ERP facts, when a provider was given.
    pub erp: Option<FfiErpFacts>,
}

fn records(v: Vec<crm_core::Record>) -> Vec<FfiRecord> {
    v.into_iter().map(Into::into).collect()
}

impl From<CoreScreenPop> for FfiScreenPop {
    fn from(p: CoreScreenPop) -> Self {
        FfiScreenPop {
            candidates: records(p.candidates),
            account: p.account.map(Into::into),
            contact: p.contact.map(Into::into),
            contacts: records(p.contacts),
            recent_orders: records(p.recent_orders),
            open_opportunities: records(p.open_opportunities),
            quotes: records(p.quotes),
            open_cases: records(p.open_cases),
            last_activities: records(p.last_activities),
            rfm_segment: p.rfm_segment,
            lifecycle: p.lifecycle.map(|l| l.name().to_owned()),
            cross_sell: p.cross_sell.into_iter().map(Into::into).collect(),
            erp: p.erp.map(Into::into),
        }
    }
}

/// One customer's RFM scores.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiRfmRow {
    /// The account.
    pub account_id: String,
    /// Whole days since the last order (in the window).
    pub recency_days: i64,
    /// Orders in the window.
    pub frequency: i64,
    /// Net value of the orders in the window.
    pub monetary: FfiMoney,
    /// Recency score 1–5 (5 = most recent).
    pub r: i32,
    /// Frequency score 1–5 (5 = most orders).
    pub f: i32,
    /// Monetary score 1–5 (5 = highest spend).
    pub m: i32,
    /// The named segment from the rule table (`champions`, …).
    pub segment: String,
    /// The lifecycle stage (from the all-time first and last order).
    pub lifecycle: String,
}

impl From<CoreRfmRow> for FfiRfmRow {
    fn from(r: CoreRfmRow) -> Self {
        FfiRfmRow {
            account_id: r.account_id.to_string(),
            recency_days: r.recency_days,
            frequency: r.frequency,
            monetary: r.monetary.into(),
            r: r.r.into(),
            f: r.f.into(),
            m: r.m.into(),
            segment: r.segment,
            lifecycle: r.lifecycle.name().to_owned(),
        }
    }
}

/// An account's lifecycle stage.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiLifecycle {
    /// The account.
    pub account_id: String,
    /// `new`, `active`, `dormant`, `inactive` or `prospect`.
    pub lifecycle: String,
}

/// Revenue, cost and margin of one customer segment × product.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiProfitRow {
    /// The segment value (RFM segment, lifecycle stage or field value; `""` when empty).
    pub segment: String,
    /// The product (`null` for free-text lines).
    pub product_id: Option<String>,
    /// The line description of the product (first seen).
    pub product: String,
    /// Units sold, a decimal string.
    pub quantity: String,
    /// Net revenue (after line discounts, before tax).
    pub revenue: FfiMoney,
    /// Σ unit cost × quantity (lines without a cost count 0).
    pub cost: FfiMoney,
    /// revenue − cost.
    pub margin: FfiMoney,
    /// Lines without a unit cost.
    pub lines_without_cost: i64,
}

impl From<CoreProfitRow> for FfiProfitRow {
    fn from(r: CoreProfitRow) -> Self {
        FfiProfitRow {
            segment: r.segment,
            product_id: r.product_id.map(|i| i.to_string()),
            product: r.product,
            quantity: r.quantity.to_string(),
            revenue: r.revenue.into(),
            cost: r.cost.into(),
            margin: r.margin.into(),
            lines_without_cost: signed(r.lines_without_cost),
        }
    }
}

/// Weighted pipeline of one expected-close month and forecast category.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiForecastRow {
    /// `YYYY-MM` of `expected_close`, or `""` when not set.
    pub month: String,
    /// The opportunities' forecast category.
    pub forecast_category: String,
    /// Open opportunities.
    pub count: i64,
    /// Σ amount.
    pub amount: FfiMoney,
    /// Σ amount × probability / 100.
    pub weighted: FfiMoney,
}

impl From<CoreForecastRow> for FfiForecastRow {
    fn from(r: CoreForecastRow) -> Self {
        FfiForecastRow {
            month: r.month,
            forecast_category: r.forecast_category,
            count: signed(r.count),
            amount: r.amount.into(),
            weighted: r.weighted.into(),
        }
    }
}

/// Supervision figures over a period, of one user (`user_id`) or one team (`team_id`, its members'
/// figures added up). Only records the acting user may read count.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FfiKpi {
    /// The user, on a per-user row.
    pub user_id: Option<String>,
    /// The team, on a per-team row.
    pub team_id: Option<String>,
    /// Users whose figures are in the row.
    pub users: i64,
    /// Activities created in the period.
    pub activities: i64,
    /// … of which calls.
    pub calls: i64,
    /// … calls marked inbound.
    pub inbound_calls: i64,
    /// … calls marked outbound.
    pub outbound_calls: i64,
    /// The activities by type, direction and outcome, most frequent first.
    pub activity_breakdown: Vec<FfiActivityCount>,
    /// Leads created in the period.
    pub leads: i64,
    /// … of which converted (now).
    pub leads_converted: i64,
    /// … of which disqualified (now).
    pub leads_disqualified: i64,
    /// `leads_converted / leads` (`null` without leads).
    pub lead_conversion_rate: Option<f64>,
    /// Opportunities closed in the period at probability 100.
    pub opportunities_won: i64,
    /// Opportunities closed in the period at a lower probability.
    pub opportunities_lost: i64,
    /// `won / (won + lost)` (`null` without closed opportunities).
    pub win_rate: Option<f64>,
    /// Σ amount of the opportunities won (`null` without amounts).
    pub revenue_closed: Option<FfiMoney>,
    /// `revenue_closed` / won opportunities with an amount.
    pub average_deal_size: Option<FfiMoney>,
    /// Orders placed in the period (not cancelled).
    pub orders: i64,
    /// Their net value (`null` without orders).
    pub order_revenue: Option<FfiMoney>,
    /// Cases owned that are not resolved or closed (now).
    pub open_cases: i64,
}

/// How many activities of one type, direction and outcome.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiActivityCount {
    /// `call`, `email`, `meeting`, …
    pub activity_type: String,
    /// `inbound` / `outbound`, when recorded.
    pub direction: Option<String>,
    /// The outcome text, when recorded.
    pub outcome: Option<String>,
    /// Activities.
    pub count: i64,
}

impl From<CoreKpi> for FfiKpi {
    fn from(k: CoreKpi) -> Self {
        FfiKpi {
            user_id: k.user_id.map(|u| u.to_string()),
            team_id: k.team_id.map(|t| t.to_string()),
            users: signed(k.users),
            activities: signed(k.activities),
            calls: signed(k.calls),
            inbound_calls: signed(k.inbound_calls),
            outbound_calls: signed(k.outbound_calls),
            activity_breakdown: k
                .activity_breakdown
                .into_iter()
                .map(|a| FfiActivityCount {
                    activity_type: a.activity_type,
                    direction: a.direction,
                    outcome: a.outcome,
                    count: signed(a.count),
                })
                .collect(),
            leads: signed(k.leads),
            leads_converted: signed(k.leads_converted),
            leads_disqualified: signed(k.leads_disqualified),
            lead_conversion_rate: k.lead_conversion_rate,
            opportunities_won: signed(k.opportunities_won),
            opportunities_lost: signed(k.opportunities_lost),
            win_rate: k.win_rate,
            revenue_closed: k.revenue_closed.map(Into::into),
            average_deal_size: k.average_deal_size.map(Into::into),
            orders: signed(k.orders),
            order_revenue: k.order_revenue.map(Into::into),
            open_cases: signed(k.open_cases),
        }
    }
}

/// One stage of a funnel.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FfiFunnelStage {
    /// The stage name.
    pub stage: String,
    /// Opportunities that reached this stage or a later one.
    pub reached: i64,
    /// Opportunities in this stage now.
    pub current: i64,
    /// Stage-to-stage conversion rate to the next stage (`null` for the last, or when none reached).
    pub conversion_to_next: Option<f64>,
}

/// How the opportunities of one pipeline went through its stages.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FfiFunnel {
    /// The pipeline.
    pub pipeline: String,
    /// Its stages in order, the won stages last.
    pub stages: Vec<FfiFunnelStage>,
    /// Opportunities followed.
    pub opportunities: i64,
    /// … of which won.
    pub won: i64,
    /// … of which lost.
    pub lost: i64,
    /// Won / (won + lost).
    pub win_rate: Option<f64>,
    /// Mean days from creation to close of the won ones.
    pub average_days_to_win: Option<f64>,
    /// Mean days from creation to close of the won and lost ones.
    pub average_cycle_days: Option<f64>,
}

impl From<crm_core::Funnel> for FfiFunnel {
    fn from(f: crm_core::Funnel) -> Self {
        FfiFunnel {
            pipeline: f.pipeline,
            stages: f
                .stages
                .into_iter()
                .map(|s| FfiFunnelStage {
                    stage: s.stage,
                    reached: signed(s.reached),
                    current: signed(s.current),
                    conversion_to_next: s.conversion_to_next,
                })
                .collect(),
            opportunities: signed(f.opportunities),
            won: signed(f.won),
            lost: signed(f.lost),
            win_rate: f.win_rate,
            average_days_to_win: f.average_days_to_win,
            average_cycle_days: f.average_cycle_days,
        }
    }
}

/// Value indices of one customer.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FfiCustomerValue {
    /// The account.
    pub account_id: String,
    /// Orders placed (not cancelled).
    pub orders: i64,
    /// Historic lifetime value (net of the orders).
    pub lifetime_value: Option<FfiMoney>,
    /// Average order value.
    pub average_order_value: Option<FfiMoney>,
    /// Predicted value over the horizon (default three years).
    pub predicted_value: Option<FfiMoney>,
    /// Churn risk 0–1 from the recency trend.
    pub churn_risk: Option<f64>,
    /// Share of CSAT answers 4–5, percent.
    pub csat: Option<f64>,
    /// Net promoter score.
    pub nps: Option<f64>,
    /// Survey answers counted.
    pub survey_responses: i64,
}

impl From<crm_core::CustomerValue> for FfiCustomerValue {
    fn from(v: crm_core::CustomerValue) -> Self {
        FfiCustomerValue {
            account_id: v.account_id.to_string(),
            orders: v.orders,
            lifetime_value: v.lifetime_value.map(Into::into),
            average_order_value: v.average_order_value.map(Into::into),
            predicted_value: v.predicted_value.map(Into::into),
            churn_risk: v.churn_risk,
            csat: v.csat,
            nps: v.nps,
            survey_responses: signed(v.survey_responses),
        }
    }
}

/// A record whose reference to the merged duplicate now points at the survivor.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiMovedRef {
    /// Its type (`contact`, `order`, …).
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// The result of a merge.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiMergeOutcome {
    /// The surviving record, after the merge (pass its version to the next update).
    pub kept: FfiRecord,
    /// The records whose references were moved from the duplicate to the survivor.
    pub moved: Vec<FfiMovedRef>,
}

impl From<CoreMergeOutcome> for FfiMergeOutcome {
    fn from(m: CoreMergeOutcome) -> Self {
        FfiMergeOutcome {
            kept: m.kept.into(),
            moved: m
                .moved
                .into_iter()
                .map(|(k, id)| FfiMovedRef {
                    kind: k.name().to_owned(),
                    id: id.to_string(),
                })
                .collect(),
        }
    }
}

/// `rfm`, `lifecycle` or `field:<name>` to the core's profit dimension.
fn dimension(by: &str) -> Result<CoreProfitDimension, CrmError> {
    match by.trim() {
        "rfm" => Ok(CoreProfitDimension::Rfm),
        "lifecycle" => Ok(CoreProfitDimension::Lifecycle),
        other => match other.strip_prefix("field:").map(str::trim) {
            Some(field) if !field.is_empty() => Ok(CoreProfitDimension::Field {
                field: field.to_owned(),
            }),
            _ => Err(CrmError::validation(
                "by",
                "dimension",
                "`by` is `rfm`, `lifecycle` or `field:<name>`",
            )),
        },
    }
}

fn rfm_options(
    window_days: Option<i32>,
    filter_json: Option<String>,
) -> Result<CoreRfmOptions, CrmError> {
    Ok(CoreRfmOptions {
        window_days: window_days
            .map(|d| unsigned32("window_days", d))
            .transpose()?,
        accounts: filter(filter_json.as_deref())?,
        ..Default::default()
    })
}

fn lifecycle_name(l: CoreLifecycle) -> String {
    l.name().to_owned()
}

#[uniffi::export]
impl Session {
    /// The caller-id screen for `phone` (any format; matched as E.164 with the handle's default
    /// region): the matching accounts and contacts and, for a single match, its contacts, recent
    /// orders, open opportunities, quotes, open cases, last interactions, RFM segment, lifecycle,
    /// cross-sell suggestions and — when `erp` is given — the ERP's facts, all as the user may see
    /// them. An exception raised by `erp` fails the call (see [`ErpFactsProvider`]).
    #[uniffi::method(default(erp = None))]
    pub fn screen_pop(
        &self,
        phone: String,
        erp: Option<Arc<dyn ErpFactsProvider>>,
    ) -> Result<FfiScreenPop, CrmError> {
        guard(|| {
            let host = erp.as_deref().map(HostErp);
            let pop = self
                .session
                .analytics()
                .screen_pop(&phone, host.as_ref().map(|h| h as &dyn CoreErpFacts))?;
            Ok(pop.into())
        })
    }

    /// RFM scores (1–5 each, quintiles) and named segments of the accounts the user may read that
    /// have orders in the last `window_days` days (all history when `null`), optionally only the
    /// accounts matching `filter_json`. Amounts in several currencies are refused
    /// (`InvalidQuery`, rule `rates_needed`).
    #[uniffi::method(default(window_days = None, filter_json = None))]
    pub fn rfm(
        &self,
        window_days: Option<i32>,
        filter_json: Option<String>,
    ) -> Result<Vec<FfiRfmRow>, CrmError> {
        guard(|| {
            let rows = self
                .session
                .analytics()
                .rfm(&rfm_options(window_days, filter_json)?)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
    }

    /// The lifecycle stage of every account the user may read (matching `filter_json`).
    #[uniffi::method(default(filter_json = None))]
    pub fn lifecycles(&self, filter_json: Option<String>) -> Result<Vec<FfiLifecycle>, CrmError> {
        guard(|| {
            let out = self
                .session
                .analytics()
                .lifecycles(filter(filter_json.as_deref())?, &Default::default())?;
            Ok(out
                .into_iter()
                .map(|(id, l)| FfiLifecycle {
                    account_id: id.to_string(),
                    lifecycle: lifecycle_name(l),
                })
                .collect())
        })
    }

    /// Revenue, cost and margin of the orders placed in `[from_micros, to_micros)` (not cancelled),
    /// by customer segment × product, largest margin first. `by` is `rfm`, `lifecycle` or
    /// `field:<account field>`; `window_days` applies to the RFM segments.
    #[uniffi::method(default(window_days = None))]
    pub fn profit(
        &self,
        from_micros: i64,
        to_micros: i64,
        by: String,
        window_days: Option<i32>,
    ) -> Result<Vec<FfiProfitRow>, CrmError> {
        guard(|| {
            let opts = CoreProfitOptions {
                from: instant("from_micros", from_micros)?,
                to: instant("to_micros", to_micros)?,
                by: dimension(&by)?,
                rates: None,
                rfm: rfm_options(window_days, None)?,
            };
            let rows = self.session.analytics().profit(&opts)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
    }

    /// A page of a segment's members that the user may read; `request.filterJson` narrows further,
    /// sort and keyset paging as in `list`.
    pub fn segment_members(
        &self,
        segment_id: String,
        request: FfiListRequest,
    ) -> Result<FfiPage, CrmError> {
        guard(|| {
            let req = crate::types::list_request(request)?;
            let page = self
                .session
                .segments()
                .members(record_id(&segment_id, "segment_id")?, &req)?;
            Ok(FfiPage {
                items: records(page.items),
                next: page.next,
            })
        })
    }

    /// Products often bought together with the ones the account bought, which it has not bought,
    /// best lift first, at most `limit`.
    #[uniffi::method(default(limit = 5))]
    pub fn cross_sell(
        &self,
        account_id: String,
        limit: i32,
    ) -> Result<Vec<FfiCrossSell>, CrmError> {
        guard(|| {
            let limit = unsigned32("limit", limit)? as usize;
            let out = self
                .session
                .analytics()
                .cross_sell(record_id(&account_id, "account_id")?, limit)?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// The weighted pipeline of the open opportunities, by expected-close month and forecast
    /// category. Amounts in several currencies are refused (`InvalidQuery`, rule `rates_needed`).
    pub fn forecast(&self) -> Result<Vec<FfiForecastRow>, CrmError> {
        guard(|| {
            let rows = self.session.sales().forecast(None)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
    }

    /// How the opportunities of `pipeline` (default: the tenant's default pipeline), created in
    /// `[from_micros, to_micros)` when given, went through its stages.
    #[uniffi::method(default(pipeline = None, from_micros = None, to_micros = None))]
    pub fn funnel(
        &self,
        pipeline: Option<String>,
        from_micros: Option<i64>,
        to_micros: Option<i64>,
    ) -> Result<FfiFunnel, CrmError> {
        guard(|| {
            let opts = crm_core::FunnelOptions {
                pipeline,
                from: from_micros.map(|m| instant("from_micros", m)).transpose()?,
                to: to_micros.map(|m| instant("to_micros", m)).transpose()?,
            };
            Ok(self.session.sales().funnel(&opts)?.into())
        })
    }

    /// Value indices of the accounts the user may read (matching `filter_json`): historic and
    /// predicted lifetime value (three years ahead), churn risk, CSAT and NPS.
    #[uniffi::method(default(filter_json = None))]
    pub fn customer_values(
        &self,
        filter_json: Option<String>,
    ) -> Result<Vec<FfiCustomerValue>, CrmError> {
        guard(|| {
            let opts = crm_core::ValueOptions {
                accounts: filter(filter_json.as_deref())?,
                ..Default::default()
            };
            let rows = self.session.analytics().customer_values(&opts)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
    }

    /// Per-owner supervision figures over `[from_micros, to_micros)`, one row per owner, by user id.
    pub fn kpis(&self, from_micros: i64, to_micros: i64) -> Result<Vec<FfiKpi>, CrmError> {
        self.kpi_rows(from_micros, to_micros, |a, from, to, rates| {
            a.kpis(from, to, rates)
        })
    }

    /// The per-owner figures rolled up per team (a member's figures count in each of their
    /// teams), one row per team, by team id.
    pub fn team_kpis(&self, from_micros: i64, to_micros: i64) -> Result<Vec<FfiKpi>, CrmError> {
        self.kpi_rows(from_micros, to_micros, |a, from, to, rates| {
            a.team_kpis(from, to, rates)
        })
    }

    /// Merges `duplicate` into `keep` (both of `kind_name`: account, contact or lead): fields empty on
    /// `keep` take the duplicate's values, references to the duplicate move to `keep`, the duplicate
    /// goes to the trash. Needs update on `keep` (at `keep_version`) and delete on the duplicate.
    pub fn merge(
        &self,
        kind_name: String,
        keep: String,
        keep_version: i64,
        duplicate: String,
    ) -> Result<FfiMergeOutcome, CrmError> {
        guard(|| {
            let out = self.session.records().merge(
                kind(&kind_name)?,
                record_id(&keep, "keep")?,
                keep_version,
                record_id(&duplicate, "duplicate")?,
            )?;
            Ok(out.into())
        })
    }
}

/// The signature of `Analytics::kpis` and `Analytics::team_kpis`.
type KpiReport = fn(
    &crm_core::Analytics<'_>,
    crm_core::chrono::DateTime<crm_core::chrono::Utc>,
    crm_core::chrono::DateTime<crm_core::chrono::Utc>,
    Option<&crm_core::RateTable>,
) -> crm_core::Result<Vec<CoreKpi>>;

impl Session {
    fn kpi_rows(
        &self,
        from_micros: i64,
        to_micros: i64,
        report: KpiReport,
    ) -> Result<Vec<FfiKpi>, CrmError> {
        guard(|| {
            let rows = report(
                &self.session.analytics(),
                instant("from_micros", from_micros)?,
                instant("to_micros", to_micros)?,
                None,
            )?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Erp(bool);

    impl ErpFactsProvider for Erp {
        fn facts(&self, account_id: String) -> Result<FfiErpFacts, CrmError> {
            if self.0 {
                return Err(CrmError::NotFound {
                    detail: "no such customer in the ERP".into(),
                    field: None,
                    rule: Some("erp".into()),
                    action: None,
                    entity: Some("account".into()),
                });
            }
            Ok(FfiErpFacts {
                balance: Some(FfiMoney {
                    amount: "1200.50".into(),
                    currency: "EUR".into(),
                }),
                credit_terms: Some(format!("30 days for {account_id}")),
                overdue_invoices: vec![FfiOverdueInvoice {
                    number: "F-1".into(),
                    amount: FfiMoney {
                        amount: "100.00".into(),
                        currency: "EUR".into(),
                    },
                    due: "2026-01-31".into(),
                }],
            })
        }
    }

    #[test]
    fn the_host_erp_reaches_the_core_and_its_errors_keep_their_kind() {
        let id = CoreRecordId::new_at(crm_core::chrono::Utc::now());
        let row = HostErp(&Erp(false)).facts(id).unwrap();
        assert_eq!(row.balance.unwrap().amount.to_string(), "1200.50");
        assert_eq!(row.overdue_invoices[0].due.to_string(), "2026-01-31");
        let back: FfiErpFacts = HostErp(&Erp(false)).facts(id).unwrap().into();
        assert_eq!(back.overdue_invoices[0].amount.amount, "100.00");
        let e = HostErp(&Erp(true)).facts(id).unwrap_err();
        assert_eq!(e.kind, CoreErrorKind::NotFound);
        assert!(
            matches!(CrmError::from(e), CrmError::NotFound { rule, .. } if rule.as_deref() == Some("erp"))
        );
    }

    #[test]
    fn bad_erp_amounts_and_dates_are_validation_errors() {
        let bad = FfiErpFacts {
            balance: None,
            credit_terms: None,
            overdue_invoices: vec![FfiOverdueInvoice {
                number: "F-2".into(),
                amount: FfiMoney {
                    amount: "1,5".into(),
                    currency: "EUR".into(),
                },
                due: "2026-01-31".into(),
            }],
        };
        assert!(matches!(
            CoreErpFactsRow::try_from(bad),
            Err(CrmError::Validation { .. })
        ));
    }

    #[test]
    fn profit_dimensions_parse() {
        assert_eq!(dimension("rfm").unwrap(), CoreProfitDimension::Rfm);
        assert_eq!(
            dimension("lifecycle").unwrap(),
            CoreProfitDimension::Lifecycle
        );
        assert_eq!(
            dimension("field:country").unwrap(),
            CoreProfitDimension::Field {
                field: "country".into()
            }
        );
        assert!(dimension("field:").is_err());
        assert!(dimension("region").is_err());
    }
}
