//! Customer analytics: RFM scores and segments, lifecycle, profit by segment × product.

use super::*;

impl Crm {
    // ----------------------------------------------------------------- RFM and lifecycle

    /// RFM scores of the accounts the user may read that have orders (in the window): quintiles with
    /// SQL `NTILE(5)` semantics, named segments from the rule table. Accounts without orders in the
    /// window are left out. See `docs/segments.md`.
    pub fn rfm(&self, ctx: &Context, opts: &RfmOptions) -> Result<Vec<RfmRow>> {
        Ok(self.rfm_scored(ctx, opts)?.rows)
    }

    /// [`Crm::rfm`] with the measures each tile starts at (for scoring one more customer later).
    pub(crate) fn rfm_scored(&self, ctx: &Context, opts: &RfmOptions) -> Result<RfmScored> {
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
        let accounts = self.scan(
            ctx,
            EntityKind::Account,
            opts.accounts.clone(),
            &[
                "order_count",
                "lifetime_value",
                "first_order_at",
                "last_order_at",
                "other_currency_orders",
            ],
        )?;
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
            let fields = ["account_id", "ordered_at", "total", "tax_total"];
            for o in self.scan(ctx, EntityKind::Order, Some(f), &fields)? {
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
        let borders = RfmBorders {
            r: tile_starts(&r, measures.iter().map(|(id, last, _, _)| (*last, *id))),
            f: tile_starts(&f, measures.iter().map(|(id, _, n, _)| (*n, *id))),
            m: tile_starts(&m, measures.iter().map(|(id, _, _, m)| (m.amount, *id))),
            rules,
        };
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
                segment: analytics::rfm_segment(&borders.rules, ri, fi, mi),
                lifecycle: analytics::lifecycle(
                    acc.and_then(|a| a.get("first_order_at").as_timestamp()),
                    acc.and_then(|a| a.get("last_order_at").as_timestamp()),
                    now,
                    &thresholds,
                ),
            });
        }
        Ok(RfmScored { rows: out, borders })
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
            .scan(
                ctx,
                EntityKind::Account,
                filter,
                &["first_order_at", "last_order_at"],
            )?
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
    pub(crate) fn order_lines(
        &self,
        ctx: &Context,
        filter: Filter,
    ) -> Result<Vec<analytics::LineGroup>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, EntityKind::Order)?;
        let req = ListRequest::filter(filter.clone());
        let q = self.build_query(&p, &cache, ctx, EntityKind::Order, &req, Action::Read)?;
        if let Some(groups) = self.store().read()?.order_line_groups(&q)? {
            return Ok(groups);
        }
        let mut out = Vec::new();
        let fields = ["account_id", "currency", "lines"];
        for o in self.scan(ctx, EntityKind::Order, Some(filter), &fields)? {
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

/// The smallest key of each tile above the first, given each key's tile.
fn tile_starts<K: Ord + Copy>(
    tiles: &[u8],
    keys: impl Iterator<Item = (K, RecordId)>,
) -> Vec<(K, RecordId)> {
    let mut starts: BTreeMap<u8, (K, RecordId)> = BTreeMap::new();
    for (t, k) in tiles.iter().zip(keys) {
        if *t > 1 {
            let e = starts.entry(*t).or_insert(k);
            if k < *e {
                *e = k;
            }
        }
    }
    starts.into_values().collect()
}
