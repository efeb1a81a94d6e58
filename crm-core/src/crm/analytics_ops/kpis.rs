//! Supervision KPIs: per user (as owner of the records) and per team, over a period.

use super::*;

/// Supervision figures over a period, of one user (the owner of the records counted) or of one
/// team (its members' figures added up). Only records the acting user may read count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kpi {
    /// The user, on a per-user row.
    pub user_id: Option<RecordId>,
    /// The team, on a per-team row.
    pub team_id: Option<RecordId>,
    /// Users whose figures are in the row (1 on a per-user row; a team's members with any figure).
    pub users: u64,
    /// Activities created in the period.
    pub activities: u64,
    /// … of which calls.
    pub calls: u64,
    /// … calls marked inbound.
    pub inbound_calls: u64,
    /// … calls marked outbound.
    pub outbound_calls: u64,
    /// The activities by type, direction and outcome, most frequent first (ties: type, direction,
    /// outcome).
    pub activity_breakdown: Vec<ActivityCount>,
    /// Leads created in the period (the leads handled).
    pub leads: u64,
    /// … of which converted (now).
    pub leads_converted: u64,
    /// … of which disqualified (now).
    pub leads_disqualified: u64,
    /// `leads_converted / leads` (`None` without leads).
    pub lead_conversion_rate: Option<f64>,
    /// Opportunities closed in the period (`closed_at`) at probability 100.
    pub opportunities_won: u64,
    /// Opportunities closed in the period at a probability under 100.
    pub opportunities_lost: u64,
    /// `won / (won + lost)` (`None` without closed opportunities).
    pub win_rate: Option<f64>,
    /// Σ amount of the opportunities won (common currency; `None` without amounts).
    pub revenue_closed: Option<Money>,
    /// `revenue_closed` / won opportunities with an amount, rounded to the currency's minor unit.
    pub average_deal_size: Option<Money>,
    /// Orders placed in the period (not cancelled).
    pub orders: u64,
    /// Their net value (common currency; `None` without orders).
    pub order_revenue: Option<Money>,
    /// Cases owned that are not resolved or closed (now).
    pub open_cases: u64,
}

/// How many activities of one type, direction and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCount {
    /// `call`, `email`, `meeting`, …
    pub activity_type: String,
    /// `inbound` / `outbound`, when recorded.
    pub direction: Option<String>,
    /// The outcome text, when recorded.
    pub outcome: Option<String>,
    /// Activities.
    pub count: u64,
}

/// Running figures of one user or team.
#[derive(Debug, Default, Clone)]
struct Tally {
    activities: BTreeMap<(String, Option<String>, Option<String>), u64>,
    leads: u64,
    leads_converted: u64,
    leads_disqualified: u64,
    won: u64,
    lost: u64,
    won_with_amount: u64,
    revenue_closed: Option<Money>,
    orders: u64,
    order_revenue: Option<Money>,
    open_cases: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) -> Result<()> {
        for (k, n) in &o.activities {
            *self.activities.entry(k.clone()).or_default() += n;
        }
        self.leads += o.leads;
        self.leads_converted += o.leads_converted;
        self.leads_disqualified += o.leads_disqualified;
        self.won += o.won;
        self.lost += o.lost;
        self.won_with_amount += o.won_with_amount;
        if let Some(m) = o.revenue_closed {
            self.revenue_closed = Some(money_sum(self.revenue_closed, m)?);
        }
        self.orders += o.orders;
        if let Some(m) = o.order_revenue {
            self.order_revenue = Some(money_sum(self.order_revenue, m)?);
        }
        self.open_cases += o.open_cases;
        Ok(())
    }

    fn kpi(&self, user_id: Option<RecordId>, team_id: Option<RecordId>, users: u64) -> Kpi {
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        let count = |pred: &dyn Fn(&str, Option<&str>) -> bool| -> u64 {
            self.activities
                .iter()
                .filter(|((t, d, _), _)| pred(t, d.as_deref()))
                .map(|(_, n)| n)
                .sum()
        };
        let mut breakdown: Vec<ActivityCount> = self
            .activities
            .iter()
            .map(|((t, d, o), n)| ActivityCount {
                activity_type: t.clone(),
                direction: d.clone(),
                outcome: o.clone(),
                count: *n,
            })
            .collect();
        // Stable: equal counts keep the map's (type, direction, outcome) order.
        breakdown.sort_by_key(|a| std::cmp::Reverse(a.count));
        let average_deal_size = match (self.revenue_closed, self.won_with_amount) {
            (Some(m), n) if n > 0 => Some(Money::new(
                m.currency.round(m.amount / Decimal::from(n)),
                m.currency,
            )),
            _ => None,
        };
        Kpi {
            user_id,
            team_id,
            users,
            activities: count(&|_, _| true),
            calls: count(&|t, _| t == "call"),
            inbound_calls: count(&|t, d| t == "call" && d == Some("inbound")),
            outbound_calls: count(&|t, d| t == "call" && d == Some("outbound")),
            activity_breakdown: breakdown,
            leads: self.leads,
            leads_converted: self.leads_converted,
            leads_disqualified: self.leads_disqualified,
            lead_conversion_rate: ratio(self.leads_converted, self.leads),
            opportunities_won: self.won,
            opportunities_lost: self.lost,
            win_rate: ratio(self.won, self.won + self.lost),
            revenue_closed: self.revenue_closed,
            average_deal_size,
            orders: self.orders,
            order_revenue: self.order_revenue,
            open_cases: self.open_cases,
        }
    }
}

impl Engine {
    /// Supervision figures per owner over `[from, to)`, from the records the user may read (a type
    /// they may not read adds nothing): one row per owner with any figure, by user id. See [`Kpi`]
    /// for each figure and `docs/segments.md`. Amounts in several currencies need `rates`.
    pub(crate) fn kpis(
        &self,
        ctx: &Context,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rates: Option<&RateTable>,
    ) -> Result<Vec<Kpi>> {
        Ok(self
            .kpi_tallies(ctx, from, to, rates)?
            .iter()
            .map(|(u, t)| t.kpi(Some(*u), None, 1))
            .collect())
    }

    /// [`Engine::kpis`] rolled up per team: each team's row adds up the figures of its members (a
    /// user in two teams counts in both); rates and averages are recomputed from the sums. One row
    /// per team with a member with any figure, by team id.
    pub(crate) fn team_kpis(
        &self,
        ctx: &Context,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rates: Option<&RateTable>,
    ) -> Result<Vec<Kpi>> {
        let (_, cache) = self.principal(ctx)?;
        let per_user = self.kpi_tallies(ctx, from, to, rates)?;
        let mut teams: BTreeMap<RecordId, (Tally, u64)> = BTreeMap::new();
        for (u, t) in &per_user {
            let Some(p) = cache.org.principal(*u) else {
                continue;
            };
            for team in &p.teams {
                let e = teams.entry(*team).or_default();
                e.0.add(t)?;
                e.1 += 1;
            }
        }
        Ok(teams
            .iter()
            .map(|(team, (t, users))| t.kpi(None, Some(*team), *users))
            .collect())
    }

    fn kpi_tallies(
        &self,
        ctx: &Context,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rates: Option<&RateTable>,
    ) -> Result<BTreeMap<RecordId, Tally>> {
        let period =
            |field: &str| Filter::cmp(field, Op::Ge, from).and(Filter::cmp(field, Op::Lt, to));
        // A type the user may not read adds nothing (the other figures still come). One narrow
        // read per type: the owner and the fields each figure needs, no records.
        let scan =
            |kind, filter, fields: &[&'static str], each: &mut dyn FnMut(RecordId, &[Value])| {
                match self.scan_narrow(ctx, kind, filter, fields, each) {
                    Err(e) if not_allowed(&e) => Ok(()),
                    r => r,
                }
            };
        let owner = crate::store::OWNER_FIELD;
        let text = |v: &Value| v.as_text().map(str::to_owned);
        let owner_of = |v: &[Value]| v.first().and_then(Value::as_ref_id);
        let mut by: BTreeMap<RecordId, Tally> = BTreeMap::new();
        scan(
            EntityKind::Activity,
            Some(period("created_at")),
            &[owner, "activity_type", "direction", "outcome"],
            &mut |_, v| {
                let Some(o) = owner_of(v) else { return };
                let key = (
                    v.get(1).and_then(text).unwrap_or_default(),
                    v.get(2).and_then(text),
                    v.get(3).and_then(text),
                );
                *by.entry(o).or_default().activities.entry(key).or_default() += 1;
            },
        )?;
        scan(
            EntityKind::Lead,
            Some(period("created_at")),
            &[owner, "status"],
            &mut |_, v| {
                let Some(o) = owner_of(v) else { return };
                let t = by.entry(o).or_default();
                t.leads += 1;
                match v.get(1).and_then(Value::as_text) {
                    Some("converted") => t.leads_converted += 1,
                    Some("disqualified") => t.leads_disqualified += 1,
                    _ => {}
                }
            },
        )?;
        // Amounts are combined after the reads, so a currency error is reported, not swallowed.
        let mut orders: Vec<(RecordId, Option<Money>)> = Vec::new();
        scan(
            EntityKind::Order,
            Some(period("ordered_at").and(Filter::cmp("status", Op::Ne, "cancelled"))),
            &[owner, "total", "tax_total"],
            &mut |_, v| {
                let Some(o) = owner_of(v) else { return };
                let net = v.get(1).and_then(Value::as_money).map(|total| {
                    let tax = v
                        .get(2)
                        .and_then(Value::as_money)
                        .map(|t| t.amount)
                        .unwrap_or_default();
                    Money::new(total.amount - tax, total.currency)
                });
                orders.push((o, net));
            },
        )?;
        let mut closed: Vec<(RecordId, bool, Option<Money>)> = Vec::new();
        scan(
            EntityKind::Opportunity,
            Some(period("closed_at")),
            &[owner, "amount", "probability"],
            &mut |_, v| {
                let Some(o) = owner_of(v) else { return };
                let won = v.get(2).and_then(Value::as_decimal) == Some(Decimal::from(100));
                closed.push((o, won, v.get(1).and_then(Value::as_money)));
            },
        )?;
        let open = Filter::Not {
            not: Box::new(Filter::one_of("status", ["resolved", "closed"])),
        };
        scan(EntityKind::Case, Some(open), &[owner], &mut |_, v| {
            if let Some(o) = owner_of(v) {
                by.entry(o).or_default().open_cases += 1;
            }
        })?;
        let mut seen = None;
        for (o, net) in orders {
            let net = match net {
                Some(n) => Some(to_common(n, rates, &mut seen)?),
                None => None,
            };
            let t = by.entry(o).or_default();
            t.orders += 1;
            if let Some(net) = net {
                t.order_revenue = Some(money_sum(t.order_revenue, net)?);
            }
        }
        for (o, won, amount) in closed {
            let amount = match (won, amount) {
                (true, Some(m)) => Some(to_common(m, rates, &mut seen)?),
                _ => None,
            };
            let t = by.entry(o).or_default();
            if !won {
                t.lost += 1;
                continue;
            }
            t.won += 1;
            if let Some(m) = amount {
                t.won_with_amount += 1;
                t.revenue_closed = Some(money_sum(t.revenue_closed, m)?);
            }
        }
        Ok(by)
    }
}
