//! Assignment rules and queues: routing new leads and cases to a user, never at random.

use super::*;
use crate::crm::door::Why;

impl Engine {
    // ----------------------------------------------------------------- assignment

    /// Applies the first matching active assignment rule of the record's type (by `position`, then
    /// name): the chosen user becomes the owner. A record created with an explicit other owner is left
    /// alone; no match leaves the creator as owner.
    pub(crate) fn assign(
        &self,
        uow: &mut Uow<'_>,
        cache: &TenantCache,
        r: &mut Record,
    ) -> Result<()> {
        if r.meta.owner_id != r.meta.created_by {
            return Ok(());
        }
        let kind = r.meta.kind;
        let q = Query::all(EntityKind::AssignmentRule, uow.ctx.tenant.clone()).and(eq(
            EntityKind::AssignmentRule,
            "entity",
            kind.name(),
        )?);
        let mut rules: Vec<Record> = uow
            .tx
            .unscoped(Why::Configuration)
            .query(&q)?
            .into_iter()
            .filter(|x| x.get("active").as_bool() != Some(false))
            .collect();
        rules.sort_by(|a, b| {
            let key = |x: &Record| {
                (
                    x.get("position").as_int().unwrap_or(100),
                    x.text("name").unwrap_or_default().to_owned(),
                    x.meta.id,
                )
            };
            key(a).cmp(&key(b))
        });
        for rule in rules {
            if !parse_conditions(&rule)?.matches(r) {
                continue;
            }
            let min = rule.get("min_seniority").as_int().unwrap_or(i64::MIN);
            let chosen = if let Some(u) = rule.reference("target_user_id") {
                cache
                    .org
                    .principal(u)
                    .filter(|p| p.active && p.seniority >= min)
                    .map(|p| p.user_id)
            } else if let Some(qid) = rule.reference("queue_id") {
                self.pick_from_queue(uow, cache, qid, min, kind)?
            } else {
                None
            };
            if let Some(u) = chosen {
                r.meta.owner_id = u;
                set(r, "assigned_by_rule", rule.text("name").unwrap_or_default());
                return Ok(());
            }
        }
        Ok(())
    }

    pub(crate) fn pick_from_queue(
        &self,
        uow: &mut Uow<'_>,
        cache: &TenantCache,
        qid: RecordId,
        min: i64,
        kind: EntityKind,
    ) -> Result<Option<RecordId>> {
        let tenant = uow.ctx.tenant.clone();
        let Some(queue) = uow.tx.unscoped(Why::Routing).get(
            EntityKind::Queue,
            &tenant,
            qid,
            &cache.customs.types(EntityKind::Queue),
        )?
        else {
            return Ok(None);
        };
        if queue.meta.deleted_at.is_some() {
            return Ok(None);
        }
        let min = min.max(queue.get("min_seniority").as_int().unwrap_or(i64::MIN));
        let eligible: Vec<RecordId> = queue
            .get("member_ids")
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.parse::<RecordId>().ok())
            .filter(|u| {
                cache
                    .org
                    .principal(*u)
                    .is_some_and(|p| p.active && !p.external && p.seniority >= min)
            })
            .collect();
        if eligible.is_empty() {
            return Ok(None);
        }
        if queue.text("strategy") == Some("least_open") {
            let open = if kind == EntityKind::Case {
                OPEN_CASES
            } else {
                OPEN_LEADS
            };
            let mut best: Option<(u64, RecordId)> = None;
            for u in eligible {
                let q = Query::all(kind, tenant.clone())
                    .and(Cond::OwnerIn(vec![u]))
                    .and(one_of(kind, "status", open)?);
                let n = uow.tx.unscoped(Why::Routing).count(&q)?;
                if best.is_none_or(|b| (n, u) < b) {
                    best = Some((n, u));
                }
            }
            return Ok(best.map(|b| b.1));
        }
        let cursor = queue.get("cursor").as_int().unwrap_or(0).max(0);
        let len = i64::try_from(eligible.len()).unwrap_or(1);
        let chosen = usize::try_from(cursor % len)
            .ok()
            .and_then(|i| eligible.get(i))
            .copied();
        let mut next = queue.clone();
        set(&mut next, "cursor", cursor + 1);
        uow.replace_with(
            &queue,
            next,
            Operation::Update,
            "queue.advanced",
            json!({}),
            Some("round robin".into()),
        )?;
        Ok(chosen)
    }
}
