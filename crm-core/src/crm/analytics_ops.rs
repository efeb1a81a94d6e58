//! Analytics on the facade: derived order statistics (maintained in the order's transaction), the
//! segment filter language, segments, RFM, lifecycle, profit and the screen pop. Every read goes
//! through the permission-filtered list calls.

use std::collections::{BTreeMap, BTreeSet};

use crate::analytics;
use crate::error::Result;
use crate::id::RecordId;
use crate::query::{Column, Cond, Op, Query};
use crate::schema::EntityKind;
use crate::value::Value;

use super::write::Uow;
use super::Crm;

fn builtin(kind: EntityKind, name: &str) -> Option<Column> {
    kind.schema().field(name).map(|s| Column::Builtin {
        name: s.name,
        ty: s.ty.clone(),
    })
}

impl Crm {
    // ----------------------------------------------------------------- derived order statistics

    /// Recomputes the order statistics of `account` from its live orders (leaving out `exclude`), inside
    /// the unit of work. The account's version is not bumped and no audit entry is written: the stats
    /// are derived from audited order changes.
    pub(crate) fn refresh_order_stats(
        &self,
        uow: &mut Uow<'_>,
        account: RecordId,
        exclude: Option<RecordId>,
    ) -> Result<()> {
        let tenant = uow.ctx.tenant.clone();
        let Some(col) = builtin(EntityKind::Order, "account_id") else {
            return Ok(());
        };
        let q = Query::all(EntityKind::Order, tenant.clone()).and(Cond::Compare(
            col,
            Op::Eq,
            Value::Ref(account),
        ));
        let mut orders = uow.tx.query(&q)?;
        orders.retain(|o| Some(o.meta.id) != exclude);
        let stats = analytics::order_stats(&orders);
        let types = self
            .tenant_cache(&tenant)?
            .customs
            .types(EntityKind::Account);
        let Some(mut acc) = uow.tx.get(EntityKind::Account, &tenant, account, &types)? else {
            return Ok(());
        };
        let before = acc.fields.clone();
        for (name, v) in stats.fields() {
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

    /// Hook of `before_update`: an order moved to another account leaves its old account's stats.
    pub(crate) fn order_stats_on_update(
        &self,
        uow: &mut Uow<'_>,
        old: &crate::record::Record,
        new: &crate::record::Record,
    ) -> Result<()> {
        if old.meta.kind != EntityKind::Order {
            return Ok(());
        }
        let (a, b) = (old.reference("account_id"), new.reference("account_id"));
        match (a, b) {
            (Some(a), b) if Some(a) != b => self.refresh_order_stats(uow, a, Some(old.meta.id)),
            _ => Ok(()),
        }
    }

    /// Hook of `before_commit`: every account whose orders this unit of work created, changed,
    /// deleted or restored gets its statistics recomputed.
    pub(crate) fn order_stats_before_commit(&self, uow: &mut Uow<'_>) -> Result<()> {
        let orders: BTreeSet<RecordId> = uow
            .written
            .iter()
            .filter(|(k, _, _)| *k == EntityKind::Order)
            .map(|(_, id, _)| *id)
            .collect();
        if orders.is_empty() {
            return Ok(());
        }
        let tenant = uow.ctx.tenant.clone();
        let mut accounts = BTreeSet::new();
        for id in orders {
            if let Some(o) = uow
                .tx
                .get(EntityKind::Order, &tenant, id, &Default::default())?
            {
                if let Some(a) = o.reference("account_id") {
                    accounts.insert(a);
                }
            }
        }
        for a in accounts {
            self.refresh_order_stats(uow, a, None)?;
        }
        Ok(())
    }
}

#[allow(dead_code)]
type Unused = BTreeMap<(), ()>;
