//! The screen pop, cross-sell suggestions, the sales forecast and supervision KPIs.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::*;

impl Engine {
    // ----------------------------------------------------------------- screen pop

    /// The caller-id screen: who is calling (accounts and contacts with that phone), and for a single
    /// match its contacts, recent orders, open opportunities, quotes, open cases, last interactions,
    /// RFM segment, lifecycle and ERP facts — all as the user may see them.
    pub(crate) fn screen_pop(
        &self,
        ctx: &Context,
        phone: &str,
        facts: Option<&dyn ErpFacts>,
    ) -> Result<ScreenPop> {
        let normalised = self.phones.normalise_for_lookup(phone, "phone")?;
        let (p, cache) = self.principal(ctx)?;
        // Who is calling and the sections come from one read snapshot: one consistent picture,
        // and one snapshot opened instead of one per query.
        let (mut pop, account) = {
            let tx = self.door().read()?;
            let reader = Reader::Tx(tx.view());
            self.screen_pop_records(reader, &p, &cache, ctx, &normalised)?
        };
        let Some(account) = account else {
            return Ok(pop);
        };
        let id = account.meta.id;
        let snap = self.snapshot(ctx)?;
        if let (Some(b), Some(last), Some(n), Some(ltv)) = (
            &snap.borders,
            account.get("last_order_at").as_timestamp(),
            account.get("order_count").as_int().filter(|n| *n > 0),
            account.get("lifetime_value").as_money(),
        ) {
            pop.rfm_segment = Some(b.segment(id, last, n, ltv.amount));
        }
        pop.lifecycle = Some(analytics::lifecycle(
            account.get("first_order_at").as_timestamp(),
            account.get("last_order_at").as_timestamp(),
            self.now(),
            &LifecycleThresholds::default(),
        ));
        if let Some(co) = &snap.co {
            let owned = self.products_of(&p, &cache, ctx, id)?;
            pop.cross_sell = co.suggest(&owned, 5);
        }
        if let Some(f) = facts {
            pop.erp = Some(f.facts(id)?);
        }
        pop.account = Some(account);
        Ok(pop)
    }

    /// The records of a screen pop, read through `reader`: the candidates with the (normalised)
    /// phone, and for a single match its account and sections.
    fn screen_pop_records(
        &self,
        reader: Reader<'_>,
        p: &Principal,
        cache: &TenantCache,
        ctx: &Context,
        phone: &str,
    ) -> Result<(ScreenPop, Option<Record>)> {
        // A type the user may not read at all is not searched; the other one still is.
        let find =
            |kind: EntityKind| match self.find_by_phone_in(reader, p, cache, ctx, kind, phone) {
                Err(e) if not_allowed(&e) => Ok(Vec::new()),
                other => other,
            };
        let accounts = find(EntityKind::Account)?;
        let contacts = find(EntityKind::Contact)?;
        let mut pop = ScreenPop {
            candidates: accounts.iter().chain(contacts.iter()).cloned().collect(),
            ..Default::default()
        };
        let account = match (accounts.as_slice(), contacts.as_slice()) {
            ([a], []) => Some(a.clone()),
            ([], [c]) => {
                pop.contact = Some(c.clone());
                match c.reference("account_id") {
                    Some(a) => self
                        .get_in(reader, p, cache, ctx, EntityKind::Account, a)
                        .ok(),
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
            return Ok((pop, None));
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
            match self.list_in(reader, p, cache, ctx, kind, &req) {
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
        Ok((pop, Some(account)))
    }

    // ----------------------------------------------------------------- cross-sell, forecast, KPIs

    /// Products often bought together with the ones `account` bought, which it has not bought:
    /// association rules over the order baskets (non-cancelled orders) the user may read, best lift
    /// first (ties: confidence, then product id), at most `limit`.
    pub(crate) fn cross_sell(
        &self,
        ctx: &Context,
        account: RecordId,
        limit: usize,
    ) -> Result<Vec<CrossSell>> {
        // The account is one the user may read (else not found, as for an id that does not exist).
        self.get(ctx, EntityKind::Account, account)?;
        let (co, owned) = self.co_purchase(ctx, Some(account))?;
        Ok(co.suggest(&owned, limit))
    }

    /// Product co-purchase counts over the baskets (non-cancelled orders with products) the user may
    /// read, and the products bought by `owner` when given.
    fn co_purchase(
        &self,
        ctx: &Context,
        owner: Option<RecordId>,
    ) -> Result<(CoPurchase, BTreeSet<RecordId>)> {
        let orders = self.scan(
            ctx,
            EntityKind::Order,
            Some(Filter::cmp("status", Op::Ne, "cancelled")),
            &["account_id", "lines"],
        )?;
        let mut co = CoPurchase::default();
        let mut owned = BTreeSet::new();
        for o in &orders {
            let items: BTreeSet<RecordId> = match o.get("lines") {
                Value::Lines(l) => l.iter().filter_map(|l| l.product_id).collect(),
                _ => BTreeSet::new(),
            };
            if owner.is_some() && o.reference("account_id") == owner {
                owned.extend(items.iter().copied());
            }
            co.add(&items);
        }
        Ok((co.sealed(), owned))
    }

    /// The products in the non-cancelled orders of `account` that the user may read.
    fn products_of(
        &self,
        p: &Principal,
        cache: &TenantCache,
        ctx: &Context,
        account: RecordId,
    ) -> Result<BTreeSet<RecordId>> {
        let f = Filter::eq("account_id", account).and(Filter::cmp("status", Op::Ne, "cancelled"));
        let mut owned = BTreeSet::new();
        let reader = Reader::Store(self.door());
        for o in self.scan_in(
            reader,
            p,
            cache,
            ctx,
            EntityKind::Order,
            Some(f),
            &["lines"],
        )? {
            if let Value::Lines(l) = o.get("lines") {
                owned.extend(l.iter().filter_map(|l| l.product_id));
            }
        }
        Ok(owned)
    }

    /// The user's snapshot of the customer base for screen pops: reused while no order was written
    /// since it was taken, or while it is younger than the snapshot age
    /// ([`Engine::with_snapshot_max_age`]); rebuilt otherwise.
    fn snapshot(&self, ctx: &Context) -> Result<Arc<Snapshot>> {
        let key = (ctx.tenant.clone(), ctx.user_id);
        let now = self.now();
        let generation = self.orders_generation.load(Ordering::Acquire);
        if let Some(s) = self
            .snapshots
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            if s.generation == generation || now - s.taken < self.snapshot_max_age {
                return Ok(s);
            }
        }
        let borders = self
            .rfm_scored(ctx, &RfmOptions::default())
            .ok()
            .map(|s| s.borders);
        let co = match self.co_purchase(ctx, None) {
            Err(e) if not_allowed(&e) => None,
            other => Some(other?.0),
        };
        let s = Arc::new(Snapshot {
            taken: now,
            generation,
            borders,
            co,
        });
        if let Ok(mut m) = self.snapshots.lock() {
            if m.len() >= MAX_SNAPSHOTS {
                // Forget the oldest: a user's next screen pop rebuilds theirs.
                if let Some(k) = m
                    .iter()
                    .min_by_key(|(_, v)| v.taken)
                    .map(|(k, _)| k.clone())
                {
                    m.remove(&k);
                }
            }
            m.insert(key, Arc::clone(&s));
        }
        Ok(s)
    }

    /// The weighted pipeline of the open opportunities (no `closed_at`) the user may read, by
    /// expected-close month and forecast category. Amounts in several currencies need `rates`.
    pub(crate) fn forecast(
        &self,
        ctx: &Context,
        rates: Option<&RateTable>,
    ) -> Result<Vec<ForecastRow>> {
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
}

/// How many users' screen-pop snapshots a CRM keeps.
const MAX_SNAPSHOTS: usize = 256;

/// What a screen pop needs from the whole customer base, for one user.
#[derive(Debug)]
pub(crate) struct Snapshot {
    taken: DateTime<Utc>,
    generation: u64,
    /// RFM tile borders (`None` when RFM is not available to the user, e.g. mixed currencies).
    borders: Option<super::customers::RfmBorders>,
    /// Co-purchase counts (`None` when the user may not read orders).
    co: Option<CoPurchase>,
}

/// Product co-purchase counts over order baskets. Products are numbered as first seen, so a
/// suggestion reads and marks them by position instead of looking them up by id.
#[derive(Debug, Default)]
pub(crate) struct CoPurchase {
    baskets: f64,
    /// Each product, at its position.
    ids: Vec<RecordId>,
    /// The position of each product.
    at: HashMap<RecordId, usize>,
    /// Baskets holding each product, by position.
    count: Vec<f64>,
    /// Baskets holding both products: by the first product's position, then the second's (while
    /// baskets are added).
    pair: Vec<HashMap<usize, f64>>,
    /// `pair` as lists (by the first product's position: the second's and the count), which a
    /// suggestion walks; made by [`CoPurchase::sealed`].
    rows: Vec<Vec<(usize, f64)>>,
}

impl CoPurchase {
    fn position(&mut self, id: RecordId) -> usize {
        if let Some(&i) = self.at.get(&id) {
            return i;
        }
        let i = self.ids.len();
        self.ids.push(id);
        self.at.insert(id, i);
        self.count.push(0.0);
        self.pair.push(HashMap::new());
        i
    }

    fn add(&mut self, basket: &BTreeSet<RecordId>) {
        if basket.is_empty() {
            return;
        }
        self.baskets += 1.0;
        let items: Vec<usize> = basket.iter().map(|x| self.position(*x)).collect();
        for &x in &items {
            if let Some(c) = self.count.get_mut(x) {
                *c += 1.0;
            }
            if let Some(row) = self.pair.get_mut(x) {
                for &y in items.iter().filter(|y| **y != x) {
                    *row.entry(y).or_default() += 1.0;
                }
            }
        }
    }

    /// The counts ready for suggestions: the pairs as lists, walked faster than maps.
    fn sealed(mut self) -> Self {
        self.rows = std::mem::take(&mut self.pair)
            .into_iter()
            .map(|m| m.into_iter().collect())
            .collect();
        self
    }

    /// Association rules from the products in `owned` to products not in it (counts
    /// [`sealed`](CoPurchase::sealed) first): for each suggested
    /// product the rule with the best lift (ties: confidence, then the smaller starting product),
    /// best lift first (ties: confidence, then product id), at most `limit`.
    fn suggest(&self, owned: &BTreeSet<RecordId>, limit: usize) -> Vec<CrossSell> {
        let n = self.baskets;
        // In ascending id order, as `owned` is: on a tie the earlier rule stays.
        let starts: Vec<usize> = owned
            .iter()
            .filter_map(|a| self.at.get(a).copied())
            .collect();
        let mut mine = vec![false; self.ids.len()];
        for &a in &starts {
            if let Some(m) = mine.get_mut(a) {
                *m = true;
            }
        }
        let mut best: Vec<Option<CrossSell>> = vec![None; self.ids.len()];
        for &a in &starts {
            let (Some(row), Some(&because_of)) = (self.rows.get(a), self.ids.get(a)) else {
                continue;
            };
            let ca = self.count.get(a).copied().unwrap_or(1.0);
            for &(b, both) in row {
                if mine.get(b).copied().unwrap_or(true) {
                    continue;
                }
                let (Some(&product_id), Some(slot)) = (self.ids.get(b), best.get_mut(b)) else {
                    continue;
                };
                let cb = self.count.get(b).copied().unwrap_or(1.0);
                let confidence = both / ca;
                let c = CrossSell {
                    product_id,
                    because_of,
                    support: both / n,
                    confidence,
                    lift: confidence / (cb / n),
                };
                let better = slot
                    .as_ref()
                    .is_none_or(|o| (c.lift, c.confidence) > (o.lift, o.confidence));
                if better {
                    *slot = Some(c);
                }
            }
        }
        let mut out: Vec<CrossSell> = best.into_iter().flatten().collect();
        out.sort_by(|x, y| {
            y.lift
                .total_cmp(&x.lift)
                .then(y.confidence.total_cmp(&x.confidence))
                .then(x.product_id.cmp(&y.product_id))
        });
        out.truncate(limit);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rules as their definition reads: every (owned a, not owned b) pair by id, keeping per b
    /// the best lift, then confidence, then the smaller a.
    fn by_definition(baskets: &[BTreeSet<RecordId>], owned: &BTreeSet<RecordId>) -> Vec<CrossSell> {
        let n = baskets.iter().filter(|b| !b.is_empty()).count() as f64;
        let holding = |p: &RecordId| baskets.iter().filter(|b| b.contains(p)).count() as f64;
        let products: BTreeSet<RecordId> = baskets.iter().flatten().copied().collect();
        let mut best: BTreeMap<RecordId, CrossSell> = BTreeMap::new();
        for a in owned {
            for b in products.iter().filter(|b| !owned.contains(*b)) {
                let both = baskets
                    .iter()
                    .filter(|s| s.contains(a) && s.contains(b))
                    .count() as f64;
                if both == 0.0 {
                    continue;
                }
                let confidence = both / holding(a);
                let c = CrossSell {
                    product_id: *b,
                    because_of: *a,
                    support: both / n,
                    confidence,
                    lift: confidence / (holding(b) / n),
                };
                if best
                    .get(b)
                    .is_none_or(|o| (c.lift, c.confidence) > (o.lift, o.confidence))
                {
                    best.insert(*b, c);
                }
            }
        }
        let mut out: Vec<CrossSell> = best.into_values().collect();
        out.sort_by(|x, y| {
            y.lift
                .total_cmp(&x.lift)
                .then(y.confidence.total_cmp(&x.confidence))
                .then(x.product_id.cmp(&y.product_id))
        });
        out
    }

    proptest! {
        #[test]
        fn suggestions_follow_the_rule_definition(
            baskets in prop::collection::vec(prop::collection::btree_set(0u8..12, 0..5), 0..40),
            owned in prop::collection::btree_set(0u8..14, 0..6),
            limit in 0usize..15,
        ) {
            let id = |i: u8| RecordId::from_bytes([i; 16]);
            let baskets: Vec<BTreeSet<RecordId>> =
                baskets.iter().map(|b| b.iter().map(|i| id(*i)).collect()).collect();
            let owned: BTreeSet<RecordId> = owned.iter().map(|i| id(*i)).collect();
            let mut co = CoPurchase::default();
            for b in &baskets {
                co.add(b);
            }
            let co = co.sealed();
            let mut want = by_definition(&baskets, &owned);
            want.truncate(limit);
            prop_assert_eq!(co.suggest(&owned, limit), want);
        }
    }
}
