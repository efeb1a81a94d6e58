//! Processes: lifecycle operations (leads, opportunities, quotes, cases), assignment rules and queues,
//! approvals, SLA timers, followers, task reminders and the e-mail outbox, plus the hooks the generic
//! write path calls (assignment, SLA due dates, quote re-approval, follower notifications).
//!
//! Every operation is one transaction holding the change, a `Transition` record, an audit entry
//! (`Operation::Transition`) and its outbox events; a refused operation writes nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::{self, Action, Principal};
use crate::audit::Operation;
use crate::error::{CrmError, Result};
use crate::id::RecordId;
use crate::money::Money;
use crate::pipeline::{self, MoveRequest, Outcome, PipelineDef, CASE, LEAD, QUOTE};
use crate::query::{Column, Cond, Liveness, MetaColumn, Op, Query};
use crate::record::{Record, RecordMeta};
use crate::schema::EntityKind;
use crate::value::{Fields, Value};

mod assignment;
mod quotes;
mod sales;
mod service;

use super::door::{View, Who, Why};
use super::write::Uow;
use super::{Context, Engine, TenantCache};

/// How to convert a qualified lead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertLead {
    /// Link this existing account instead of creating one from the lead's company.
    pub account_id: Option<RecordId>,
    /// The opportunity's name (default: `"<company or name> – <product interest or 'opportunity'>"`).
    pub opportunity_name: Option<String>,
    /// The opportunity's amount (default: the lead's estimated value).
    pub amount: Option<Money>,
    /// The pipeline by name (default: the tenant's default pipeline, if any).
    pub pipeline: Option<String>,
}

/// The records a lead conversion created or linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The lead, now `converted`.
    pub lead: Record,
    /// The account (created or linked).
    pub account: Record,
    /// The contact created from the lead.
    pub contact: Record,
    /// The opportunity created.
    pub opportunity: Record,
}

/// One recorded lifecycle transition with the time spent in the state it entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageEntry {
    /// When the move happened.
    pub at: DateTime<Utc>,
    /// Who made it.
    pub user_id: RecordId,
    /// The state left (`None` for the first recorded state).
    pub from_state: Option<String>,
    /// The state entered.
    pub to_state: String,
    /// The comment or reason given.
    pub comment: Option<String>,
    /// The rule or operation that made the move (`submit`, `approval_rule:<name>`, `content_changed`…).
    pub rule: Option<String>,
    /// Seconds spent in `from_state` (since the previous transition, or since creation).
    pub seconds_in_previous: i64,
    /// Seconds spent in `to_state`: until the next transition, or until now for the current state.
    pub seconds_in_state: i64,
}

/// An e-mail the outbox asks the host to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailMessage {
    /// The recipient address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// The record the e-mail is about.
    pub record_kind: EntityKind,
    /// Its id.
    pub record_id: RecordId,
}

/// The host's mail transport. A failing `send` leaves the outbox event pending (at-least-once).
pub trait Mailer {
    /// Sends one message.
    fn send(&self, msg: &EmailMessage) -> Result<()>;
}

/// Conditions of an assignment rule (`conditions` JSON); all given ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Conditions {
    #[serde(default)]
    channel: Option<Vec<String>>,
    #[serde(default)]
    min_value: Option<serde_json::Value>,
    #[serde(default)]
    countries: Option<Vec<String>>,
    #[serde(default)]
    territory_id: Option<RecordId>,
    #[serde(default)]
    product_interest: Option<String>,
    #[serde(default)]
    priorities: Option<Vec<String>>,
}

fn parse_conditions(r: &Record) -> Result<Conditions> {
    let c = match r.get("conditions") {
        Value::Json(j) if !j.is_null() => {
            serde_json::from_value::<Conditions>(j.clone()).map_err(|e| {
                CrmError::validation(
                    "conditions",
                    "conditions_syntax",
                    format!("malformed assignment conditions: {e}"),
                )
            })?
        }
        _ => Conditions::default(),
    };
    if let Some(v) = &c.min_value {
        json_decimal(v)?;
    }
    Ok(c)
}

fn json_decimal(v: &serde_json::Value) -> Result<Decimal> {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    s.parse::<Decimal>().map_err(|_| {
        CrmError::validation(
            "conditions",
            "conditions_syntax",
            "`min_value` must be a decimal number",
        )
    })
}

impl Conditions {
    fn matches(&self, r: &Record) -> bool {
        let text_in = |field: &str, list: &Option<Vec<String>>| match list {
            None => true,
            Some(l) => r
                .text(field)
                .is_some_and(|v| l.iter().any(|x| x.eq_ignore_ascii_case(v))),
        };
        if !text_in("channel", &self.channel)
            || !text_in("country", &self.countries)
            || !text_in("priority", &self.priorities)
        {
            return false;
        }
        if let Some(min) = self.min_value.as_ref().and_then(|v| json_decimal(v).ok()) {
            let value = match r.get("estimated_value") {
                Value::Money(m) => Some(m.amount),
                Value::Decimal(d) => Some(*d),
                _ => None,
            };
            if value.is_none_or(|v| v < min) {
                return false;
            }
        }
        if let Some(t) = self.territory_id {
            if r.reference("territory_id") != Some(t) {
                return false;
            }
        }
        if let Some(pi) = &self.product_interest {
            let pi = pi.to_lowercase();
            if !r
                .text("product_interest")
                .is_some_and(|v| v.to_lowercase().contains(&pi))
            {
                return false;
            }
        }
        true
    }
}

/// A column of a built-in field.
fn col(kind: EntityKind, name: &str) -> Result<Column> {
    let spec = kind
        .schema()
        .field(name)
        .ok_or_else(|| CrmError::internal(format!("{kind} has no field `{name}`")))?;
    Ok(Column::Builtin {
        name: spec.name,
        ty: spec.ty.clone(),
    })
}

pub(crate) fn eq(kind: EntityKind, name: &str, v: impl Into<Value>) -> Result<Cond> {
    Ok(Cond::Compare(col(kind, name)?, Op::Eq, v.into()))
}

fn one_of(kind: EntityKind, name: &str, vs: &[&str]) -> Result<Cond> {
    Ok(Cond::In(
        col(kind, name)?,
        vs.iter().map(|v| Value::from(*v)).collect(),
    ))
}

fn status(r: &Record) -> String {
    r.text("status").unwrap_or_default().to_owned()
}

fn set(r: &mut Record, name: &str, v: impl Into<Value>) {
    let v = v.into();
    if v.is_null() {
        r.fields.remove(name);
    } else {
        r.fields.insert(name.to_owned(), v);
    }
}

fn transition_error(entity: &str, rule: &str, message: impl Into<String>) -> CrmError {
    CrmError::invalid_transition(entity, rule, message)
}

fn need_reason(entity: &str, field: &str, reason: Option<&str>) -> Result<String> {
    match reason.map(str::trim) {
        Some(r) if !r.is_empty() => Ok(r.to_owned()),
        _ => {
            let mut e = transition_error(
                entity,
                pipeline::RULE_REASON_REQUIRED,
                "this move needs a reason",
            );
            e.field = Some(field.to_owned());
            Err(e)
        }
    }
}

/// Open states of leads and cases (for least-open queues).
const OPEN_LEADS: &[&str] = &["new", "contacted", "qualified"];
const OPEN_CASES: &[&str] = &["new", "assigned", "in_progress", "waiting_on_customer"];
/// Quote fields whose change sends a pending or approved quote back to draft.
const QUOTE_CONTENT: &[&str] = &[
    "lines",
    "currency",
    "account_id",
    "contact_id",
    "opportunity_id",
    "lead_id",
    "valid_until",
    "number",
];
/// Default SLA hours (first response, resolution) by case priority.
fn sla_hours(priority: &str) -> (i64, i64) {
    match priority {
        "urgent" => (1, 8),
        "high" => (4, 24),
        "low" => (24, 120),
        _ => (8, 72),
    }
}

/// A new record's bookkeeping.
fn meta(uow: &Uow<'_>, kind: EntityKind, owner: RecordId) -> RecordMeta {
    RecordMeta {
        kind,
        id: RecordId::new_at(uow.now),
        tenant: uow.ctx.tenant.clone(),
        owner_id: owner,
        created_at: uow.now,
        created_by: uow.ctx.user_id,
        updated_at: uow.now,
        updated_by: uow.ctx.user_id,
        version: 1,
        deleted_at: None,
    }
}

/// The transitions recorded for a record, oldest first (moves made at the same instant in chain order).
fn transitions_of(
    tx: View<'_>,
    tenant: &crate::id::TenantId,
    kind: EntityKind,
    id: RecordId,
) -> Result<Vec<Record>> {
    let mut q = Query::all(EntityKind::Transition, tenant.clone())
        .and(eq(EntityKind::Transition, "record_kind", kind.name())?)
        .and(eq(EntityKind::Transition, "record_id", id)?);
    q.sort = Some((Column::Meta(MetaColumn::CreatedAt), false));
    let mut v = tx.unscoped(Why::OfVisible).query(&q)?;
    v.sort_by_key(|t| t.meta.created_at);
    // Several moves in one transaction share their instant: order each such group as a chain, each
    // move starting where the previous one ended.
    let mut out: Vec<Record> = Vec::with_capacity(v.len());
    let initial = match kind {
        EntityKind::Lead => LEAD.states.first().copied(),
        EntityKind::Case => CASE.states.first().copied(),
        EntityKind::Quote => QUOTE.states.first().copied(),
        _ => None,
    };
    let mut rest = v.into_iter().peekable();
    while let Some(first) = rest.next() {
        let mut group = vec![first];
        while let Some(t) =
            rest.next_if(|t| Some(t.meta.created_at) == group.first().map(|g| g.meta.created_at))
        {
            group.push(t);
        }
        let mut prev_to = match out.last() {
            Some(p) => p.text("to_state").map(str::to_owned),
            None => initial.map(str::to_owned),
        };
        while !group.is_empty() {
            let pos = group
                .iter()
                .position(|t| prev_to.is_some() && t.text("from_state") == prev_to.as_deref())
                .or_else(|| {
                    group.iter().position(|t| {
                        !group.iter().any(|o| {
                            o.meta.id != t.meta.id && o.text("to_state") == t.text("from_state")
                        })
                    })
                })
                .unwrap_or(0);
            let t = group.remove(pos);
            prev_to = t.text("to_state").map(str::to_owned);
            out.push(t);
        }
    }
    Ok(out)
}

impl Engine {
    // ----------------------------------------------------------------- shared plumbing

    /// Starts a change of an existing record: the record, loaded for update (not in the trash), at
    /// the version the caller read — else `NotFound`, `PermissionDenied` or `Conflict`.
    pub(crate) fn open_for_transition(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        expected_version: i64,
    ) -> Result<(Arc<Principal>, Arc<TenantCache>, Uow<'_>, Record)> {
        let (p, cache) = self.principal(ctx)?;
        let uow = self.begin(ctx, self.now())?;
        let r = self.fetch_current(&uow, &p, &cache, kind, id, expected_version)?;
        Ok((p, cache, uow, r))
    }

    /// Records a `Transition` of `record` (as it was before the move) in the unit of work.
    fn record_transition(
        &self,
        uow: &mut Uow<'_>,
        record: &Record,
        from: Option<&str>,
        to: &str,
        comment: Option<&str>,
        rule: Option<&str>,
    ) -> Result<()> {
        let last = transitions_of(
            uow.tx.view(),
            &uow.ctx.tenant,
            record.meta.kind,
            record.meta.id,
        )?
        .last()
        .map(|t| t.meta.created_at)
        .unwrap_or(record.meta.created_at);
        let secs = (uow.now - last).num_seconds().max(0);
        let mut f = Fields::new();
        f.insert("record_kind".into(), Value::from(record.meta.kind.name()));
        f.insert("record_id".into(), Value::Ref(record.meta.id));
        if let Some(from) = from.filter(|s| !s.is_empty()) {
            f.insert("from_state".into(), Value::from(from));
        }
        f.insert("to_state".into(), Value::from(to));
        if let Some(c) = comment {
            f.insert("comment".into(), Value::from(c));
        }
        f.insert("seconds_in_previous".into(), Value::Int(secs));
        if let Some(r) = rule {
            f.insert("rule".into(), Value::from(r));
        }
        let t = Record {
            meta: meta(uow, EntityKind::Transition, uow.ctx.user_id),
            fields: f,
            custom: Fields::new(),
        };
        // The parent record's audit entry (operation `transition`) records the move; the Transition
        // row is its queryable index, so it gets no audit entry or event of its own.
        uow.tx.insert(&t)
    }

    /// Writes a state change: the record, its Transition, audit entry and event.
    #[allow(clippy::too_many_arguments)]
    fn apply_transition(
        &self,
        uow: &mut Uow<'_>,
        old: &Record,
        new: Record,
        state_field: &str,
        event_type: &str,
        comment: Option<&str>,
        rule: Option<&str>,
        extra: serde_json::Value,
    ) -> Result<Record> {
        let from = old.text(state_field).map(str::to_owned);
        let to = new.text(state_field).unwrap_or_default().to_owned();
        self.record_transition(uow, old, from.as_deref(), &to, comment, rule)?;
        let mut payload = json!({"from": from, "to": to});
        if let (Some(p), serde_json::Value::Object(x)) = (payload.as_object_mut(), extra) {
            p.extend(x);
        }
        uow.replace_with(
            old,
            new,
            Operation::Transition,
            event_type,
            payload,
            comment.map(str::to_owned),
        )
    }

    /// Creates a record inside a lifecycle operation, with the same checks as `create`.
    fn insert_new(
        &self,
        uow: &mut Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        kind: EntityKind,
        input: Fields,
    ) -> Result<Record> {
        self.require(p, Action::Create, kind)?;
        let (fields, custom) = self.apply_input(p, &cache.customs, kind, input, None)?;
        let mut r = Record {
            meta: meta(uow, kind, p.user_id),
            fields,
            custom,
        };
        let ctx = uow.ctx.clone();
        self.check_record(&uow.tx, p, cache, &ctx, &mut r, None)?;
        self.before_insert(uow, cache, &mut r)?;
        uow.insert(&r, Operation::Create)?;
        Ok(r)
    }

    pub(crate) fn load_pipeline(
        &self,
        tx: View<'_>,
        tenant: &crate::id::TenantId,
        name: Option<&str>,
    ) -> Result<Option<PipelineDef>> {
        let all = tx
            .unscoped(Why::Configuration)
            .query(&Query::all(EntityKind::Pipeline, tenant.clone()))?;
        let active: Vec<&Record> = all
            .iter()
            .filter(|r| r.get("active").as_bool() != Some(false))
            .collect();
        let found = match name {
            Some(n) => Some(
                *active
                    .iter()
                    .find(|r| r.text("name") == Some(n))
                    .ok_or_else(|| {
                        CrmError::validation(
                            "pipeline",
                            "reference",
                            format!("no active pipeline `{n}`"),
                        )
                    })?,
            ),
            None => active
                .iter()
                .find(|r| r.get("is_default").as_bool() == Some(true))
                .copied(),
        };
        match found {
            Some(r) => match r.get("stages") {
                Value::Json(j) => Ok(Some(PipelineDef::from_json(
                    r.text("name").unwrap_or_default(),
                    j,
                )?)),
                _ => Err(CrmError::validation(
                    "stages",
                    "required",
                    "the pipeline has no stages",
                )),
            },
            None => Ok(None),
        }
    }

    // ----------------------------------------------------------------- hooks of the write path

    /// Runs before a new record is inserted (inside its transaction): assignment rules, SLA due dates,
    /// checks of process configuration.
    pub(crate) fn before_insert(
        &self,
        uow: &mut Uow<'_>,
        cache: &TenantCache,
        r: &mut Record,
    ) -> Result<()> {
        match r.meta.kind {
            EntityKind::Lead => self.assign(uow, cache, r)?,
            EntityKind::Case => {
                let (h1, h2) = sla_hours(r.text("priority").unwrap_or("normal"));
                if r.get("first_response_due").is_null() {
                    set(
                        r,
                        "first_response_due",
                        r.meta.created_at + Duration::hours(h1),
                    );
                }
                if r.get("resolution_due").is_null() {
                    set(r, "resolution_due", r.meta.created_at + Duration::hours(h2));
                }
                self.assign(uow, cache, r)?;
                if !r.get("assigned_by_rule").is_null() && r.text("status") == Some("new") {
                    set(r, "status", "assigned");
                }
            }
            EntityKind::Opportunity if r.get("stage").is_null() => {
                if let Some(p) =
                    self.load_pipeline(uow.tx.view(), &uow.ctx.tenant, r.text("pipeline"))?
                {
                    if let Some(s) = p.first() {
                        let (name, prob, fc) =
                            (s.name.clone(), s.probability, s.forecast().to_owned());
                        set(r, "pipeline", p.name.as_str());
                        set(r, "stage", name);
                        set(r, "probability", prob);
                        set(r, "forecast_category", fc);
                    }
                }
            }
            EntityKind::Pipeline => {
                if let Value::Json(j) = r.get("stages") {
                    PipelineDef::from_json(r.text("name").unwrap_or_default(), j)?;
                }
            }
            EntityKind::AssignmentRule => {
                parse_conditions(r)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs before a changed record is written (inside its transaction), after validation: changing
    /// the content of a pending, approved or rejected quote sends it back to draft; a sent, accepted or
    /// expired quote's content cannot change.
    pub(crate) fn before_update(
        &self,
        uow: &mut Uow<'_>,
        _cache: &TenantCache,
        old: &Record,
        new: &mut Record,
    ) -> Result<()> {
        match new.meta.kind {
            EntityKind::Quote => {
                let changed = QUOTE_CONTENT.iter().any(|f| old.get(f) != new.get(f));
                if !changed {
                    return Ok(());
                }
                let from = status(old);
                match from.as_str() {
                    "draft" => {}
                    "pending_approval" | "approved" | "rejected" => {
                        set(new, "status", "draft");
                        for f in ["submitted_by", "approved_by", "approved_at"] {
                            new.fields.remove(f);
                        }
                        set(new, "approval_required", false);
                        self.record_transition(
                            uow,
                            old,
                            Some(&from),
                            "draft",
                            Some("content changed"),
                            Some("content_changed"),
                        )?;
                        uow.event(
                            "quote.returned_to_draft",
                            EntityKind::Quote,
                            old.meta.id,
                            json!({"from": from, "to": "draft"}),
                        )?;
                    }
                    _ => {
                        return Err(transition_error(
                            "quote",
                            pipeline::RULE_WRONG_STATE,
                            format!("a {from} quote cannot change; copy it to a new quote"),
                        ));
                    }
                }
            }
            EntityKind::Pipeline => {
                if let Value::Json(j) = new.get("stages") {
                    PipelineDef::from_json(new.text("name").unwrap_or_default(), j)?;
                }
            }
            EntityKind::AssignmentRule => {
                parse_conditions(new)?;
            }
            EntityKind::Order | EntityKind::Opportunity | EntityKind::Case => {
                self.order_stats_on_update(uow, old, new)?
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs just before a unit of work commits: `uow.written` lists what it changed. Emits the
    /// assignment events of new leads and cases, and one `notification` per follower of each changed
    /// record (not to the acting user).
    pub(crate) fn before_commit(&self, uow: &mut Uow<'_>) -> Result<()> {
        if uow.written.is_empty() {
            return Ok(());
        }
        self.order_stats_before_commit(uow)?;
        let written = uow.written.clone();
        let tenant = uow.ctx.tenant.clone();
        for (kind, id, ev) in &written {
            if ev == "record.created" && matches!(kind, EntityKind::Lead | EntityKind::Case) {
                if let Some(r) =
                    uow.tx
                        .unscoped(Why::Routing)
                        .get(*kind, &tenant, *id, &Default::default())?
                {
                    if let Some(rule) = r.text("assigned_by_rule") {
                        let payload =
                            json!({"owner_id": r.meta.owner_id.to_string(), "rule": rule});
                        uow.event(&format!("{}.assigned", kind.name()), *kind, *id, payload)?;
                    }
                }
            }
        }
        if uow
            .tx
            .unscoped(Why::Notification)
            .count(&Query::all(EntityKind::Follow, tenant.clone()))?
            == 0
        {
            return Ok(());
        }
        // Followers are told only about records they may still read (a revoked share or a changed
        // role ends the notifications), each checked with their own rights.
        let cache = match self.cached(&tenant) {
            Some(c) if !uow.config_changed => c,
            _ => std::sync::Arc::new(super::load_cache(
                uow.tx.unscoped(Why::Configuration),
                &tenant,
            )?),
        };
        // Group the events per record (a batch can touch thousands of records).
        let mut seen: std::collections::BTreeMap<(EntityKind, RecordId), Vec<String>> =
            std::collections::BTreeMap::new();
        for (kind, id, ev) in written {
            if matches!(kind, EntityKind::Follow | EntityKind::Transition)
                || kind.is_configuration()
            {
                continue;
            }
            seen.entry((kind, id)).or_default().push(ev);
        }
        for ((kind, id), events) in seen {
            let q = Query::all(EntityKind::Follow, tenant.clone())
                .and(eq(EntityKind::Follow, "record_kind", kind.name())?)
                .and(eq(EntityKind::Follow, "record_id", id)?);
            let users: BTreeSet<RecordId> = uow
                .tx
                .unscoped(Why::Notification)
                .query(&q)?
                .iter()
                .filter_map(|f| f.reference("user_id"))
                .collect();
            for u in users {
                if u == uow.ctx.user_id {
                    continue;
                }
                let Some(follower) = cache.org.principal(u).filter(|f| f.active) else {
                    continue;
                };
                let who = Who {
                    p: &follower,
                    cache: &cache,
                    tenant: &tenant,
                    now: uow.now,
                };
                if uow.tx.scoped(who).find(kind, id, Action::Read)?.is_none() {
                    continue;
                }
                let payload =
                    json!({"user_id": u.to_string(), "record_kind": kind.name(), "events": events});
                uow.event("notification", kind, id, payload)?;
            }
        }
        Ok(())
    }
}

/// Whether an approval rule asks for approval of `quote`.
fn approval_triggers(rule: &Record, quote: &Record) -> bool {
    if rule.get("always").as_bool() == Some(true) {
        return true;
    }
    if let Some(max) = rule.get("max_discount_percent").as_decimal() {
        if let Value::Lines(lines) = quote.get("lines") {
            if lines.iter().any(|l| l.discount_percent > max) {
                return true;
            }
        }
    }
    if let (Some(max), Some(total)) = (
        rule.get("max_total").as_money(),
        quote.get("total").as_money(),
    ) {
        // A limit in another currency cannot be compared: ask a person.
        if max.currency != total.currency || total.amount > max.amount {
            return true;
        }
    }
    false
}
