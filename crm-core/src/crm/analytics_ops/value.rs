//! Value indices per customer: lifetime value (historic and predicted), churn risk from the
//! recency trend, satisfaction (CSAT, NPS) from survey activities.

use super::customers::OrderFigures;
use super::*;

/// What [`Analytics::customer_values`](crate::Analytics::customer_values) computes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValueOptions {
    /// Only these accounts (default: every account the user may read).
    pub accounts: Option<Filter>,
    /// Years ahead the predicted value covers (default 3).
    pub horizon_years: u32,
    /// Converts amounts in other currencies (else mixed currencies are refused).
    pub rates: Option<RateTable>,
}

impl Default for ValueOptions {
    fn default() -> Self {
        ValueOptions {
            accounts: None,
            horizon_years: 3,
            rates: None,
        }
    }
}

/// The value indices of one customer. See `docs/segments.md` for the formulas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerValue {
    /// The account.
    pub account_id: RecordId,
    /// Orders placed (not cancelled).
    pub orders: i64,
    /// Historic lifetime value: the net value of those orders (`None` without orders).
    pub lifetime_value: Option<Money>,
    /// `lifetime_value / orders`, rounded to the currency's minor unit.
    pub average_order_value: Option<Money>,
    /// Predicted value over the horizon: average order value × orders per year × horizon years ×
    /// (1 − churn risk), rounded.
    pub predicted_value: Option<Money>,
    /// 0 (ordering on rhythm) to 1: how far the time since the last order exceeds the customer's
    /// usual gap between orders (`None` without orders).
    pub churn_risk: Option<f64>,
    /// Share of CSAT answers scoring 4 or 5, in percent (`None` without CSAT answers).
    pub csat: Option<f64>,
    /// Net promoter score: percent of NPS answers 9–10 minus percent 0–6 (`None` without answers).
    pub nps: Option<f64>,
    /// Survey answers counted (CSAT and NPS).
    pub survey_responses: u64,
}

impl Engine {
    /// Value indices for the accounts the user may read (one row each, by account id): historic and
    /// predicted lifetime value, churn risk from the recency trend, CSAT and NPS from survey
    /// activities (`activity_type` = `survey` with a `survey_type` and a `score`, linked by
    /// `account_id`; none when the user may not read activities). Refuses (naming the field) when
    /// an order statistic of the account is hidden from the user.
    pub(crate) fn customer_values(
        &self,
        ctx: &Context,
        opts: &ValueOptions,
    ) -> Result<Vec<CustomerValue>> {
        let stats = [
            "order_count",
            "lifetime_value",
            "first_order_at",
            "last_order_at",
        ];
        self.require_fields(ctx, EntityKind::Account, &stats)?;
        let now = self.now();
        // One narrow read of the kept statistics (in account id order).
        let accounts = self.account_stats(ctx, opts.accounts.clone())?;
        let rates = opts.rates.as_ref();
        let mut seen = None;
        let mut figures: HashMap<RecordId, OrderFigures> = HashMap::new();
        let mixed = accounts.iter().any(|a| a.other > 0);
        if mixed {
            // The kept statistics cover one currency: add the orders up instead.
            self.require_fields(
                ctx,
                EntityKind::Order,
                &["account_id", "ordered_at", "total", "tax_total"],
            )?;
            figures.extend(self.order_figures(ctx, None, &|_| true, rates, &mut seen)?);
        } else {
            for a in &accounts {
                if let (Some(first), Some(last), Some(n), Some(ltv)) = (a.first, a.last, a.n, a.ltv)
                {
                    if n > 0 {
                        let ltv = to_common(ltv, rates, &mut seen)?;
                        figures.insert(a.id, (first, last, n, ltv));
                    }
                }
            }
        }
        // The usual gap between orders of customers with one order: the median of the others'.
        let days =
            |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_seconds() as f64 / 86_400.0;
        let gap_of = |(first, last, n, _): &OrderFigures| {
            (*n > 1).then(|| (days(*first, *last) / (*n - 1) as f64).max(1.0))
        };
        let mut gaps: Vec<f64> = figures.values().filter_map(gap_of).collect();
        gaps.sort_by(f64::total_cmp);
        let typical_gap = gaps.get(gaps.len() / 2).copied().unwrap_or(365.0);
        let surveys = self.survey_scores(ctx)?;
        let horizon = Decimal::from(opts.horizon_years);
        let mut out = Vec::with_capacity(accounts.len());
        for a in &accounts {
            let id = a.id;
            let (csat, nps, responses) = surveys.get(&id).copied().unwrap_or_default().indices();
            let mut row = CustomerValue {
                account_id: id,
                orders: 0,
                lifetime_value: None,
                average_order_value: None,
                predicted_value: None,
                churn_risk: None,
                csat,
                nps,
                survey_responses: responses,
            };
            if let Some(fig) = figures.get(&id) {
                let (first, last, n, ltv) = *fig;
                let c = ltv.currency;
                let aov = c.round(ltv.amount / Decimal::from(n));
                let overdue = days(last, now) / gap_of(fig).unwrap_or(typical_gap) - 1.0;
                let risk = if overdue > 0.0 {
                    1.0 - (-overdue).exp()
                } else {
                    0.0
                };
                let per_year = n as f64 / (days(first, now) / 365.25).max(1.0);
                // An estimate: the factor goes through f64, the amounts stay decimal.
                let factor = Decimal::try_from(per_year * (1.0 - risk)).unwrap_or_default();
                row.orders = n;
                row.lifetime_value = Some(ltv);
                row.average_order_value = Some(Money::new(aov, c));
                // `None` when the horizon takes the estimate beyond what a decimal holds.
                row.predicted_value = aov
                    .checked_mul(factor)
                    .and_then(|x| x.checked_mul(horizon))
                    .map(|x| Money::new(c.round(x), c));
                row.churn_risk = Some(risk);
            }
            out.push(row);
        }
        Ok(out)
    }

    /// Survey answers per account (none when the user may not read activities).
    fn survey_scores(&self, ctx: &Context) -> Result<HashMap<RecordId, Answers>> {
        let f = Filter::cmp("activity_type", Op::Eq, "survey").and(Filter::Not {
            not: Box::new(Filter::is_null("survey_type")),
        });
        let rows = match self.scan(
            ctx,
            EntityKind::Activity,
            Some(f),
            &["account_id", "survey_type", "score"],
        ) {
            Err(e) if not_allowed(&e) => return Ok(HashMap::new()),
            r => r?,
        };
        let mut by: HashMap<RecordId, Answers> = HashMap::new();
        for r in rows {
            let (Some(a), Some(score)) = (r.reference("account_id"), r.get("score").as_int())
            else {
                continue;
            };
            let e = by.entry(a).or_default();
            match r.text("survey_type") {
                Some("csat") => {
                    e.csat += 1;
                    e.satisfied += u64::from(score >= 4);
                }
                Some("nps") => {
                    e.nps += 1;
                    e.promoters += u64::from(score >= 9);
                    e.detractors += u64::from(score <= 6);
                }
                _ => {}
            }
        }
        Ok(by)
    }
}

/// Survey answer counts of one account.
#[derive(Debug, Default, Clone, Copy)]
struct Answers {
    csat: u64,
    satisfied: u64,
    nps: u64,
    promoters: u64,
    detractors: u64,
}

impl Answers {
    /// (CSAT %, NPS, answers).
    fn indices(self) -> (Option<f64>, Option<f64>, u64) {
        let pct = |n: u64, d: u64| 100.0 * n as f64 / d as f64;
        (
            (self.csat > 0).then(|| pct(self.satisfied, self.csat)),
            (self.nps > 0).then(|| pct(self.promoters, self.nps) - pct(self.detractors, self.nps)),
            self.csat + self.nps,
        )
    }
}
