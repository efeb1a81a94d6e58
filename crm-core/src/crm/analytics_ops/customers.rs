//! Customer analytics: RFM scores and segments, lifecycle, profit by segment × product.

use super::*;

impl Engine {
    // ----------------------------------------------------------------- RFM and lifecycle

    /// RFM scores of the accounts the user may read that have orders (in the window): quintiles with
    /// SQL `NTILE(5)` semantics, named segments from the rule table. Accounts without orders in the
    /// window are left out. See `docs/segments.md`.
    pub(crate) fn rfm(&self, ctx: &Context, opts: &RfmOptions) -> Result<Vec<RfmRow>> {
        Ok(self.rfm_scored(ctx, opts)?.rows)
    }

    /// [`Engine::rfm`] with the measures each tile starts at (for scoring one more customer later).
    pub(crate) fn rfm_scored(&self, ctx: &Context, opts: &RfmOptions) -> Result<RfmScored> {
        let now = self.now();
        let rules = opts
            .rules
            .clone()
            .unwrap_or_else(analytics::default_rfm_rules);
        let thresholds = opts.lifecycle.unwrap_or_default();
        // The maintained statistics serve only users who may see them (they sum every order of an
        // account); for anyone else the scores are computed from the orders they may read.
        // A statistic the role itself hides refuses the scores (they would show it).
        const STATS: [&str; 4] = [
            "order_count",
            "lifetime_value",
            "first_order_at",
            "last_order_at",
        ];
        let p = self.principal(ctx)?.0;
        for f in STATS {
            if crate::access::role_field_access(&p, EntityKind::Account, f)
                == Some(crate::access::FieldAccess::Hidden)
            {
                self.require_fields(ctx, EntityKind::Account, &[f])?;
            }
        }
        let stats_visible = self
            .require_fields(ctx, EntityKind::Account, &STATS)
            .is_ok();
        if opts.window_days.is_some() || !stats_visible {
            self.require_fields(
                ctx,
                EntityKind::Order,
                &["account_id", "ordered_at", "total", "tax_total"],
            )?;
        }
        // (account, last order, frequency, monetary, all-history first and last order).
        let mut measures: Vec<Measures> = Vec::new();
        let mut seen = None;
        // The maintained statistics are the measures unless some account has orders in more than
        // one currency (or a window is asked for): then the orders themselves are read.
        let mut fast = opts.window_days.is_none() && stats_visible;
        if fast {
            self.each_account_stats(ctx, opts.accounts.clone(), &mut |a| {
                if a.other != 0 {
                    fast = false;
                }
                if let (true, Some(last), Some(n), Some(ltv)) = (fast, a.last, a.n, a.ltv) {
                    if n != 0 {
                        measures.push((a.id, last, n, ltv, (a.first, a.last)));
                    }
                }
            })?;
        }
        if fast {
            // In account id order, as the rows are returned (and amounts checked) in.
            sort_by_account(&mut measures);
            for x in &mut measures {
                x.3 = to_common(x.3, opts.rates.as_ref(), &mut seen)?;
            }
        } else {
            measures.clear();
            let accounts = self.account_stats(ctx, opts.accounts.clone())?;
            let visible: HashMap<RecordId, &AccountStats> =
                accounts.iter().map(|a| (a.id, a)).collect();
            let mut f = None;
            if let Some(days) = opts.window_days {
                let from = Duration::try_days(i64::from(days))
                    .and_then(|d| now.checked_sub_signed(d))
                    .filter(|t| t.year() >= 1)
                    .ok_or_else(|| {
                        CrmError::invalid_query(
                            Some("window_days"),
                            "out_of_range",
                            "the window reaches before year 1",
                        )
                    })?;
                f = Some(Filter::cmp("ordered_at", Op::Ge, from));
            }
            let by = self.order_figures(
                ctx,
                f,
                &|a| visible.contains_key(&a),
                opts.rates.as_ref(),
                &mut seen,
            )?;
            for (a, (first, last, n, m)) in by {
                let acc = visible.get(&a);
                // The all-history first and last order: kept on the account, or — for a user who
                // may not see those statistics — from the orders they may read.
                let first_last = if stats_visible {
                    (acc.and_then(|s| s.first), acc.and_then(|s| s.last))
                } else {
                    (Some(first), Some(last))
                };
                measures.push((a, last, n, m, first_last));
            }
        }
        // Scores follow the order (measure, account id). With the rows in id order (they are), a
        // row's position breaks ties as its id does.
        sort_by_account(&mut measures);
        let recency: Vec<DateTime<Utc>> = measures.iter().map(|x| x.1).collect();
        let (r, r_starts) = tiles(&sorted_positions(&recency));
        let frequency: Vec<i64> = measures.iter().map(|x| x.2).collect();
        let (f, f_starts) =
            tiles(&counting_positions(&frequency).unwrap_or_else(|| sorted_positions(&frequency)));
        let amounts: Vec<Decimal> = measures.iter().map(|x| x.3.amount).collect();
        let (m, m_starts) = match amount_keys(&amounts) {
            Some(keys) => match keys
                .iter()
                .map(|k| i64::try_from(*k).ok())
                .collect::<Option<Vec<i64>>>()
            {
                Some(small) => tiles(&sorted_positions(&small)),
                None => tiles(&sorted_positions(&keys)),
            },
            None => tiles(&sorted_positions(&amounts)),
        };
        let borders = RfmBorders {
            r: starts(&measures, &r_starts, |x| x.1),
            f: starts(&measures, &f_starts, |x| x.2),
            m: starts(&measures, &m_starts, |x| x.3.amount),
            rules,
        };
        // The segment of every score triple, named once.
        let mut names: Vec<String> = Vec::with_capacity(125);
        for ri in 1..=5 {
            for fi in 1..=5 {
                for mi in 1..=5 {
                    names.push(analytics::rfm_segment(&borders.rules, ri, fi, mi));
                }
            }
        }
        let mut out = Vec::with_capacity(measures.len());
        for (i, (id, last, n, money, (first, last_any))) in measures.into_iter().enumerate() {
            let (ri, fi, mi) = (
                r.get(i).copied().unwrap_or(1),
                f.get(i).copied().unwrap_or(1),
                m.get(i).copied().unwrap_or(1),
            );
            let slot = (usize::from(ri.clamp(1, 5)) - 1) * 25
                + (usize::from(fi.clamp(1, 5)) - 1) * 5
                + (usize::from(mi.clamp(1, 5)) - 1);
            out.push(RfmRow {
                account_id: id,
                recency_days: analytics::days_between(last, now),
                frequency: n,
                monetary: money,
                r: ri,
                f: fi,
                m: mi,
                segment: names.get(slot).cloned().unwrap_or_default(),
                lifecycle: analytics::lifecycle(first, last_any, now, &thresholds),
            });
        }
        Ok(RfmScored { rows: out, borders })
    }

    /// Per account kept by `keep`, from the non-cancelled orders the user may read (matching
    /// `filter` too): (first order, last order, count, Σ net in one currency — converted with
    /// `rates`, else all must share the currency `seen` settles on). Orders without a total are
    /// left out. Reads the orders themselves, for when the kept statistics do not answer.
    pub(crate) fn order_figures(
        &self,
        ctx: &Context,
        filter: Option<Filter>,
        keep: &dyn Fn(RecordId) -> bool,
        rates: Option<&RateTable>,
        seen: &mut Option<Currency>,
    ) -> Result<BTreeMap<RecordId, OrderFigures>> {
        let mut f = Filter::cmp("status", Op::Ne, "cancelled");
        if let Some(g) = filter {
            f = f.and(g);
        }
        let fields = ["account_id", "ordered_at", "total", "tax_total"];
        let mut by: BTreeMap<RecordId, OrderFigures> = BTreeMap::new();
        for o in self.scan(ctx, EntityKind::Order, Some(f), &fields)? {
            let Some(a) = o.reference("account_id").filter(|a| keep(*a)) else {
                continue;
            };
            let Some(net) = analytics::order_net(&o) else {
                continue;
            };
            let net = to_common(net, rates, seen)?;
            let at = analytics::ordered_at(&o);
            match by.get_mut(&a) {
                Some(e) => {
                    e.0 = e.0.min(at);
                    e.1 = e.1.max(at);
                    e.2 += 1;
                    e.3 = e.3.checked_add(net)?;
                }
                None => {
                    by.insert(a, (at, at, 1, net));
                }
            }
        }
        Ok(by)
    }

    /// The maintained order statistics of every account the user may read (matching `filter`), in
    /// account id order.
    pub(crate) fn account_stats(
        &self,
        ctx: &Context,
        filter: Option<Filter>,
    ) -> Result<Vec<AccountStats>> {
        let mut out = Vec::new();
        self.each_account_stats(ctx, filter, &mut |a| out.push(a))?;
        // Already in id order when the backend read the table in key order: then this is one pass.
        out.sort_unstable_by_key(|a| u128::from_be_bytes(*a.id.as_bytes()));
        Ok(out)
    }

    /// The maintained order statistics of every account the user may read (matching `filter`), one
    /// account at a time in the store's order: one narrow store read, no records. A field hidden
    /// from the user reads as empty (`other_currency_orders` as 0), as from a redacted record.
    fn each_account_stats(
        &self,
        ctx: &Context,
        filter: Option<Filter>,
        each: &mut dyn FnMut(AccountStats),
    ) -> Result<()> {
        const FIELDS: [&str; 5] = [
            "order_count",
            "lifetime_value",
            "first_order_at",
            "last_order_at",
            "other_currency_orders",
        ];
        self.scan_narrow(ctx, EntityKind::Account, filter, &FIELDS, &mut |id, v| {
            let at = |i: usize| v.get(i).unwrap_or(&Value::Null);
            each(AccountStats {
                id,
                n: at(0).as_int(),
                ltv: at(1).as_money(),
                first: at(2).as_timestamp(),
                last: at(3).as_timestamp(),
                other: at(4).as_int().unwrap_or(0),
            });
        })
    }

    /// The lifecycle stage of every account the user may read (matching `filter`), from the
    /// maintained first/last order instants.
    pub(crate) fn lifecycles(
        &self,
        ctx: &Context,
        filter: Option<Filter>,
        thresholds: &LifecycleThresholds,
    ) -> Result<Vec<(RecordId, Lifecycle)>> {
        let now = self.now();
        let stats = self.account_stats(ctx, filter)?;
        // First and last orders kept on the account count every order: for a user who may not see
        // them (and whose role does not hide them itself) they come from the orders they may read.
        let p = self.principal(ctx)?.0;
        let dates = ["first_order_at", "last_order_at"];
        let hidden = |f: &&str| {
            crate::access::field_access(&p, EntityKind::Account, f)
                == Some(crate::access::FieldAccess::Hidden)
        };
        let role_hides = |f: &&str| {
            crate::access::role_field_access(&p, EntityKind::Account, f)
                == Some(crate::access::FieldAccess::Hidden)
        };
        if !dates.iter().any(hidden) || dates.iter().any(role_hides) {
            return Ok(stats
                .iter()
                .map(|a| (a.id, analytics::lifecycle(a.first, a.last, now, thresholds)))
                .collect());
        }
        let mut span: HashMap<RecordId, (DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
        let f = Filter::cmp("status", Op::Ne, "cancelled");
        for o in self.scan(
            ctx,
            EntityKind::Order,
            Some(f),
            &["account_id", "ordered_at"],
        )? {
            let Some(a) = o.reference("account_id") else {
                continue;
            };
            let at = analytics::ordered_at(&o);
            let e = span.entry(a).or_insert((at, at));
            e.0 = e.0.min(at);
            e.1 = e.1.max(at);
        }
        Ok(stats
            .iter()
            .map(|a| {
                let (first, last) = match span.get(&a.id) {
                    Some((f, l)) => (Some(*f), Some(*l)),
                    None => (None, None),
                };
                (a.id, analytics::lifecycle(first, last, now, thresholds))
            })
            .collect())
    }

    // ----------------------------------------------------------------- profit

    /// Hands the lines of the orders matching `filter` that the user may read to `each` (alike
    /// lines possibly as one counted group): one store read when the backend has it, else read from
    /// the orders page by page.
    pub(crate) fn order_lines(
        &self,
        ctx: &Context,
        filter: Filter,
        each: &mut dyn FnMut(&analytics::LineGroup) -> Result<()>,
    ) -> Result<()> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, EntityKind::Order)?;
        let req = ListRequest::filter(filter.clone());
        let q = self.build_query(&p, &cache, ctx, EntityKind::Order, &req)?;
        let aggregated = {
            let tx = self.door().read()?;
            tx.scoped(self.who(&p, &cache, ctx)).order_lines(q, each)?
        };
        if aggregated {
            return Ok(());
        }
        let fields = ["account_id", "currency", "lines"];
        for o in self.scan(ctx, EntityKind::Order, Some(filter), &fields)? {
            let Value::Lines(lines) = o.get("lines") else {
                continue;
            };
            for l in lines {
                each(&analytics::LineGroup {
                    account_id: o.reference("account_id"),
                    currency: o.text("currency").unwrap_or_default().to_owned(),
                    product_id: l.product_id,
                    description: l.description.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    discount_percent: l.discount_percent,
                    unit_cost: l.unit_cost,
                    lines: 1,
                })?;
            }
        }
        Ok(())
    }

    /// Revenue, cost and margin of the orders the user may read placed in `[from, to)` (not
    /// cancelled), by customer segment × product, largest margin first (ties: segment, product).
    pub(crate) fn profit(&self, ctx: &Context, opts: &ProfitOptions) -> Result<Vec<ProfitRow>> {
        self.require_fields(
            ctx,
            EntityKind::Order,
            &["account_id", "ordered_at", "lines", "currency"],
        )?;
        // Cost and margin come from the product costs kept on the lines: hidden with them.
        self.require_fields(ctx, EntityKind::Product, &["unit_cost"])?;
        let f = Filter::cmp("status", Op::Ne, "cancelled")
            .and(Filter::cmp("ordered_at", Op::Ge, opts.from))
            .and(Filter::cmp("ordered_at", Op::Lt, opts.to));
        let segment_of: Vec<(RecordId, String)> = match &opts.by {
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
        // Each segment name once; accounts and groups point at their name's position, so no name
        // is copied or compared per line.
        let mut names: Vec<String> = Vec::new();
        let mut name_at: HashMap<String, u32> = HashMap::new();
        let mut intern = |name: String| -> u32 {
            if let Some(&i) = name_at.get(&name) {
                return i;
            }
            let i = u32::try_from(names.len()).unwrap_or(u32::MAX); // ok: fewer names than accounts
            names.push(name.clone());
            name_at.insert(name, i);
            i
        };
        let mut segment: HashMap<RecordId, u32> = HashMap::with_capacity(segment_of.len());
        for (id, name) in segment_of {
            segment.insert(id, intern(name));
        }
        let no_segment = intern(match opts.by {
            ProfitDimension::Rfm => "no_rfm".to_owned(),
            _ => String::new(),
        });
        type Acc = (String, Decimal, Decimal, Decimal, u64);
        let mut groups: HashMap<(u32, Option<RecordId>), Acc> = HashMap::new();
        let mut seen = None;
        // The currency of the previous line, parsed again only when the code changes.
        let mut last_currency: Option<(String, Currency)> = None;
        // × 0.01 is ÷ 100 exactly, without a decimal division per line.
        let percent = Decimal::new(1, 2);
        self.order_lines(ctx, f, &mut |g| {
            let seg = g
                .account_id
                .and_then(|a| segment.get(&a).copied())
                .unwrap_or(no_segment);
            let currency = match &last_currency {
                Some((code, c)) if *code == g.currency => *c,
                _ => {
                    let Ok(c) = g.currency.parse::<Currency>() else {
                        return Ok(());
                    };
                    last_currency = Some((g.currency.clone(), c));
                    c
                }
            };
            let n = Decimal::from(g.lines);
            // Every step checked: stored amounts are bounded, their products and sums need not be.
            let big = || CrmError::validation("lines", "range", "an amount is out of range");
            let mul = |a: Decimal, b: Decimal| a.checked_mul(b).ok_or_else(big);
            // Rounded per line, as the order totals are, then times the number of like lines.
            let gross = currency.round(mul(g.quantity, g.unit_price)?);
            let disc = currency.round(mul(mul(gross, g.discount_percent)?, percent)?);
            let rev = to_common(
                Money::new(mul(gross - disc, n)?, currency),
                opts.rates.as_ref(),
                &mut seen,
            )?;
            let cost = to_common(
                Money::new(
                    mul(mul(g.unit_cost.unwrap_or_default(), g.quantity)?, n)?,
                    currency,
                ),
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
                e.0.clone_from(&g.description);
            }
            e.1 = e.1.checked_add(mul(g.quantity, n)?).ok_or_else(big)?;
            e.2 = e.2.checked_add(rev.amount).ok_or_else(big)?;
            e.3 = e.3.checked_add(cost.amount).ok_or_else(big)?;
            if g.unit_cost.is_none() {
                e.4 += g.lines;
            }
            Ok(())
        })?;
        let Some(c) = seen else {
            return Ok(Vec::new());
        };
        let mut rows: Vec<ProfitRow> = groups
            .into_iter()
            .map(
                |((segment, product_id), (product, q, rev, cost, missing))| ProfitRow {
                    segment: names.get(segment as usize).cloned().unwrap_or_default(),
                    product_id,
                    product,
                    quantity: q,
                    revenue: Money::new(rev, c),
                    cost: Money::new(cost, c),
                    margin: Money::new(rev.saturating_sub(cost), c),
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
}

/// RFM rows with the borders of their tiles.
pub(crate) struct RfmScored {
    pub(crate) rows: Vec<RfmRow>,
    pub(crate) borders: RfmBorders,
}

/// Where each RFM tile starts — the smallest `(measure, account id)` of tiles 2 to 5 — so one
/// customer's scores follow from its own measures: the tile is one plus the number of starts at or
/// below its key (the same `NTILE(5)` result, for a customer of the scored population).
#[derive(Debug, Clone)]
pub(crate) struct RfmBorders {
    r: Vec<(DateTime<Utc>, RecordId)>,
    f: Vec<(i64, RecordId)>,
    m: Vec<(Decimal, RecordId)>,
    rules: Vec<RfmRule>,
}

impl RfmBorders {
    /// The segment of a customer with these all-history measures (last order, order count, lifetime
    /// value in the scored currency).
    pub(crate) fn segment(
        &self,
        id: RecordId,
        last: DateTime<Utc>,
        n: i64,
        ltv: Decimal,
    ) -> String {
        let tile = |above: usize| 1 + above as u8;
        let r = tile(self.r.iter().filter(|k| **k <= (last, id)).count());
        let f = tile(self.f.iter().filter(|k| **k <= (n, id)).count());
        let m = tile(self.m.iter().filter(|k| **k <= (ltv, id)).count());
        analytics::rfm_segment(&self.rules, r, f, m)
    }
}

/// Per-account order figures read from the orders: (first order, last order, count, net value).
pub(crate) type OrderFigures = (DateTime<Utc>, DateTime<Utc>, i64, Money);

/// The maintained order statistics of one account (see [`Engine::rfm_scored`]).
pub(crate) struct AccountStats {
    pub(crate) id: RecordId,
    pub(crate) n: Option<i64>,
    pub(crate) ltv: Option<Money>,
    pub(crate) first: Option<DateTime<Utc>>,
    pub(crate) last: Option<DateTime<Utc>>,
    pub(crate) other: i64,
}

/// `NTILE(5)` over rows given in order (by their positions): each position's tile, and the
/// positions where tiles 2 to 5 start.
fn tiles(order: &[usize]) -> (Vec<u8>, Vec<usize>) {
    let mut out = vec![1u8; order.len()];
    let mut starts = Vec::with_capacity(4);
    let mut prev = 0u8;
    for (&i, t) in order.iter().zip(analytics::ntile(order.len(), 5)) {
        if let Some(slot) = out.get_mut(i) {
            *slot = t;
        }
        if t > 1 && t != prev {
            starts.push(i);
        }
        prev = t;
    }
    (out, starts)
}

/// The positions of `keys` in `(key, position)` order: with rows in account id order, the SQL
/// order `(measure, account id)`. Positions are unique, so an unstable sort is exact.
fn sorted_positions<K: Ord + Copy>(keys: &[K]) -> Vec<usize> {
    if u32::try_from(keys.len()).is_ok() {
        // Narrower elements sort faster.
        let mut v: Vec<(K, u32)> = keys.iter().copied().zip(0..).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, i)| i as usize).collect()
    } else {
        let mut v: Vec<(K, usize)> = keys.iter().copied().zip(0..).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, i)| i).collect()
    }
}

/// [`sorted_positions`] by counting, for keys in a small range (order counts); `None` otherwise.
fn counting_positions(keys: &[i64]) -> Option<Vec<usize>> {
    let (min, max) = (*keys.iter().min()?, *keys.iter().max()?);
    let span = usize::try_from(max.checked_sub(min)?)
        .ok()?
        .checked_add(1)?;
    if span > keys.len().saturating_mul(2).max(1024) {
        return None;
    }
    let bucket = |k: i64| usize::try_from(k - min).unwrap_or(0);
    // next[b]: where the next key of bucket b goes.
    let mut next = vec![0usize; span + 1];
    for &k in keys {
        if let Some(c) = next.get_mut(bucket(k) + 1) {
            *c += 1;
        }
    }
    for b in 1..next.len() {
        let before = next.get(b - 1).copied().unwrap_or(0);
        if let Some(c) = next.get_mut(b) {
            *c += before;
        }
    }
    let mut out = vec![0usize; keys.len()];
    for (i, &k) in keys.iter().enumerate() {
        if let Some(at) = next.get_mut(bucket(k)) {
            if let Some(slot) = out.get_mut(*at) {
                *slot = i;
            }
            *at += 1;
        }
    }
    Some(out)
}

/// What RFM scores one account on: (account, last order, frequency, monetary, all-history first
/// and last order for the lifecycle).
type Measures = (
    RecordId,
    DateTime<Utc>,
    i64,
    Money,
    (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
);

/// Sorts the rows by account id (one pass when they already are).
fn sort_by_account(measures: &mut Vec<Measures>) {
    if measures.is_sorted_by_key(|x| x.0) {
        return;
    }
    // Sort narrow keys, then move each row once.
    let mut order: Vec<(u128, usize)> = measures
        .iter()
        .map(|x| u128::from_be_bytes(*x.0.as_bytes()))
        .zip(0..)
        .collect();
    order.sort_unstable();
    let mut sorted = Vec::with_capacity(measures.len());
    sorted.extend(
        order
            .into_iter()
            .filter_map(|(_, i)| measures.get(i).copied()),
    );
    *measures = sorted;
}

/// The `(measure, account id)` of the rows at `positions`.
fn starts<K>(
    measures: &[Measures],
    positions: &[usize],
    key: impl Fn(&Measures) -> K,
) -> Vec<(K, RecordId)> {
    positions
        .iter()
        .filter_map(|&i| measures.get(i).map(|x| (key(x), x.0)))
        .collect()
}

/// The amounts as integers in their largest scale (same order, cheaper to sort than decimals);
/// `None` when one does not fit.
fn amount_keys(amounts: &[Decimal]) -> Option<Vec<i128>> {
    let scale = amounts.iter().map(|a| a.scale()).max().unwrap_or(0);
    amounts
        .iter()
        .map(|a| {
            10i128
                .checked_pow(scale - a.scale())
                .and_then(|p| a.mantissa().checked_mul(p))
        })
        .collect()
}
