//! The screen pop, cross-sell suggestions, the sales forecast and supervision KPIs.

use super::*;

impl Crm {
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
