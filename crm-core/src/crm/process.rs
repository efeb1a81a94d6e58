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
use crate::audit::{diff, Operation};
use crate::error::{CrmError, Result};
use crate::id::RecordId;
use crate::money::Money;
use crate::pipeline::{self, MoveRequest, Outcome, PipelineDef, CASE, LEAD, QUOTE};
use crate::query::{Column, Cond, Liveness, MetaColumn, Op, Query};
use crate::record::{Record, RecordMeta};
use crate::schema::EntityKind;
use crate::store::ReadTx;
use crate::value::{Fields, Value};

use super::write::Uow;
use super::{Context, Crm, TenantCache};

/// How to convert a qualified lead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertLead {
    /// Link this existing account instead of creating one from the lead's company.
    pub account_id: Option<RecordId>,
    /// The opportunity's name (default: "<company or name> – <product interest or 'opportunity'>").
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

fn eq(kind: EntityKind, name: &str, v: impl Into<Value>) -> Result<Cond> {
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

/// Writes `new` over `old` (version bumped), with its audit entry and one event of `event_type`
/// whose payload is `{version, fields}` plus `extra`.
fn save(
    uow: &mut Uow<'_>,
    old: &Record,
    mut new: Record,
    op: Operation,
    event_type: &str,
    extra: serde_json::Value,
    comment: Option<String>,
) -> Result<Record> {
    new.meta.version = old.meta.version + 1;
    new.meta.updated_at = uow.now;
    new.meta.updated_by = uow.ctx.user_id;
    uow.tx.update(&new, old.meta.version)?;
    let changes = diff(&old.fields, &old.custom, &new.fields, &new.custom);
    let names: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    let mut payload = json!({"version": new.meta.version, "fields": names});
    if let (Some(p), serde_json::Value::Object(x)) = (payload.as_object_mut(), extra) {
        p.extend(x);
    }
    uow.event(event_type, new.meta.kind, new.meta.id, payload)?;
    uow.written
        .push((new.meta.kind, new.meta.id, event_type.to_owned()));
    uow.audit(
        op,
        new.meta.kind,
        new.meta.id,
        new.meta.version,
        changes,
        comment,
    )?;
    Ok(new)
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
    tx: &dyn ReadTx,
    tenant: &crate::id::TenantId,
    kind: EntityKind,
    id: RecordId,
) -> Result<Vec<Record>> {
    let mut q = Query::all(EntityKind::Transition, tenant.clone())
        .and(eq(EntityKind::Transition, "record_kind", kind.name())?)
        .and(eq(EntityKind::Transition, "record_id", id)?);
    q.sort = Some((Column::Meta(MetaColumn::CreatedAt), false));
    let mut v = tx.query(&q)?;
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

impl Crm {
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
        let r = self.fetch_for_write(&uow, &p, &cache, kind, id, Action::Update)?;
        if r.meta.deleted_at.is_some() {
            return Err(CrmError::conflict(
                kind.name(),
                "in_trash",
                "the record is in the trash; restore it first",
            ));
        }
        if r.meta.version != expected_version {
            return Err(CrmError::conflict(
                kind.name(),
                "stale_version",
                format!(
                    "the record changed since it was read (version {} now, {} expected)",
                    r.meta.version, expected_version
                ),
            ));
        }
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
        let last = transitions_of(&*uow.tx, &uow.ctx.tenant, record.meta.kind, record.meta.id)?
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
        save(
            uow,
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
        self.check_record(&*uow.tx, cache, &ctx, &mut r, None)?;
        self.before_insert(uow, cache, &mut r)?;
        uow.insert(&r, Operation::Create)?;
        Ok(r)
    }

    fn load_pipeline(
        &self,
        tx: &dyn ReadTx,
        tenant: &crate::id::TenantId,
        name: Option<&str>,
    ) -> Result<Option<PipelineDef>> {
        let all = tx.query(&Query::all(EntityKind::Pipeline, tenant.clone()))?;
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
                    self.load_pipeline(&*uow.tx, &uow.ctx.tenant, r.text("pipeline"))?
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
                if let Some(r) = uow.tx.get(*kind, &tenant, *id, &Default::default())? {
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
            .count(&Query::all(EntityKind::Follow, tenant.clone()))?
            == 0
        {
            return Ok(());
        }
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
                .query(&q)?
                .iter()
                .filter_map(|f| f.reference("user_id"))
                .collect();
            for u in users {
                if u == uow.ctx.user_id {
                    continue;
                }
                let payload =
                    json!({"user_id": u.to_string(), "record_kind": kind.name(), "events": events});
                uow.event("notification", kind, id, payload)?;
            }
        }
        Ok(())
    }

    // ----------------------------------------------------------------- assignment

    /// Applies the first matching active assignment rule of the record's type (by `position`, then
    /// name): the chosen user becomes the owner. A record created with an explicit other owner is left
    /// alone; no match leaves the creator as owner.
    fn assign(&self, uow: &mut Uow<'_>, cache: &TenantCache, r: &mut Record) -> Result<()> {
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

    fn pick_from_queue(
        &self,
        uow: &mut Uow<'_>,
        cache: &TenantCache,
        qid: RecordId,
        min: i64,
        kind: EntityKind,
    ) -> Result<Option<RecordId>> {
        let tenant = uow.ctx.tenant.clone();
        let Some(queue) = uow.tx.get(
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
                let n = uow.tx.count(&q)?;
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
        save(
            uow,
            &queue,
            next,
            Operation::Update,
            "queue.advanced",
            json!({}),
            Some("round robin".into()),
        )?;
        Ok(chosen)
    }

    // ----------------------------------------------------------------- leads

    /// Moves a lead along its lifecycle (`contacted`, `qualified`, `disqualified` with a reason in
    /// `comment`). Converting is [`Crm::convert_lead`].
    pub fn transition_lead(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
        to: &str,
        comment: Option<&str>,
    ) -> Result<Record> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Lead, id, expected_version)?;
        let from = status(&old);
        if to == "converted" && from == "qualified" {
            return Err(transition_error(
                "lead",
                pipeline::RULE_WRONG_STATE,
                "a lead is converted with convert_lead",
            ));
        }
        LEAD.check(&from, to)?;
        let mut new = old.clone();
        if to == "disqualified" {
            let reason = need_reason("lead", "disqualify_reason", comment)?;
            set(&mut new, "disqualify_reason", reason);
        }
        set(&mut new, "status", to);
        let saved = self.apply_transition(
            &mut uow,
            &old,
            new,
            "status",
            &format!("lead.{to}"),
            comment,
            Some("transition"),
            json!({}),
        )?;
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    /// Disqualifies a lead; the reason is required (`reason_required`).
    pub fn disqualify_lead(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
        reason: &str,
    ) -> Result<Record> {
        self.transition_lead(ctx, id, expected_version, "disqualified", Some(reason))
    }

    /// Converts a qualified lead, atomically: creates (or links) the account, creates a contact with
    /// the lead's name, e-mail, phone and country, and an opportunity in the pipeline's first stage;
    /// the lead becomes `converted` and points at all three.
    pub fn convert_lead(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
        opts: ConvertLead,
    ) -> Result<Conversion> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Lead, id, expected_version)?;
        let from = status(&old);
        LEAD.check(&from, "converted")?;
        let copy = |f: &mut Fields, to: &str, from: &str| {
            if let Some(v) = old.fields.get(from).filter(|v| !v.is_null()) {
                f.insert(to.to_owned(), v.clone());
            }
        };
        let person = match (old.text("first_name"), old.text("last_name")) {
            (Some(a), Some(b)) => format!("{a} {b}"),
            (None, Some(b)) => b.to_owned(),
            (Some(a), None) => a.to_owned(),
            (None, None) => String::new(),
        };
        let account = match opts.account_id {
            Some(aid) => {
                self.require(&p, Action::Read, EntityKind::Account)
                    .map_err(|_| CrmError::not_found("account", aid))?;
                let ctx2 = uow.ctx.clone();
                self.fetch_visible(
                    &*uow.tx,
                    &p,
                    &cache,
                    &ctx2,
                    EntityKind::Account,
                    aid,
                    Action::Read,
                )?
            }
            None => {
                let name = old
                    .text("company")
                    .map(str::to_owned)
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| person.clone());
                if name.is_empty() {
                    let mut e = transition_error(
                        "lead",
                        pipeline::RULE_MISSING_FIELD,
                        "converting needs a company or a name",
                    );
                    e.field = Some("company".into());
                    return Err(e);
                }
                let mut f = Fields::new();
                f.insert("name".into(), Value::from(name));
                copy(&mut f, "email", "email");
                copy(&mut f, "phone", "phone");
                copy(&mut f, "country", "country");
                copy(&mut f, "territory_id", "territory_id");
                f.insert("roles".into(), Value::List(vec!["prospect".into()]));
                self.insert_new(&mut uow, &p, &cache, EntityKind::Account, f)?
            }
        };
        let mut f = Fields::new();
        copy(&mut f, "first_name", "first_name");
        let last = old
            .text("last_name")
            .or(old.text("first_name"))
            .or(old.text("company"))
            .unwrap_or("unknown");
        f.insert("last_name".into(), Value::from(last));
        copy(&mut f, "email", "email");
        copy(&mut f, "phone", "phone");
        copy(&mut f, "country", "country");
        f.insert("account_id".into(), Value::Ref(account.meta.id));
        f.insert("roles".into(), Value::List(vec!["prospect".into()]));
        let contact = self.insert_new(&mut uow, &p, &cache, EntityKind::Contact, f)?;
        let pipeline = self.load_pipeline(&*uow.tx, &ctx.tenant, opts.pipeline.as_deref())?;
        let mut f = Fields::new();
        let default_name = format!(
            "{} – {}",
            old.text("company").map(str::to_owned).unwrap_or(person),
            old.text("product_interest").unwrap_or("opportunity")
        );
        f.insert(
            "name".into(),
            Value::from(opts.opportunity_name.unwrap_or(default_name)),
        );
        f.insert("account_id".into(), Value::Ref(account.meta.id));
        f.insert("contact_id".into(), Value::Ref(contact.meta.id));
        f.insert("lead_id".into(), Value::Ref(old.meta.id));
        match opts.amount {
            Some(m) => {
                f.insert("amount".into(), Value::Money(m));
            }
            None => copy(&mut f, "amount", "estimated_value"),
        }
        if let Some(pl) = &pipeline {
            f.insert("pipeline".into(), Value::from(pl.name.as_str()));
        }
        let opportunity = self.insert_new(&mut uow, &p, &cache, EntityKind::Opportunity, f)?;
        let mut new = old.clone();
        set(&mut new, "status", "converted");
        set(&mut new, "converted_account_id", account.meta.id);
        set(&mut new, "converted_contact_id", contact.meta.id);
        set(&mut new, "converted_opportunity_id", opportunity.meta.id);
        let extra = json!({
            "account_id": account.meta.id.to_string(),
            "contact_id": contact.meta.id.to_string(),
            "opportunity_id": opportunity.meta.id.to_string(),
        });
        let lead = self.apply_transition(
            &mut uow,
            &old,
            new,
            "status",
            "lead.converted",
            None,
            Some("convert"),
            extra,
        )?;
        uow.commit(self)?;
        Ok(Conversion {
            lead: self.present(&p, &cache, lead),
            account: self.present(&p, &cache, account),
            contact: self.present(&p, &cache, contact),
            opportunity: self.present(&p, &cache, opportunity),
        })
    }

    // ----------------------------------------------------------------- opportunities

    /// Moves an opportunity to another stage of its pipeline, checking the stage's guards (allowed
    /// moves, roles, required fields, a lost reason). Entering a stage copies its probability and
    /// forecast category; a won or lost stage sets `closed_at`.
    pub fn move_opportunity(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
        stage: &str,
        comment: Option<&str>,
        lost_reason: Option<&str>,
    ) -> Result<Record> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Opportunity, id, expected_version)?;
        let def = self
            .load_pipeline(&*uow.tx, &ctx.tenant, old.text("pipeline"))?
            .ok_or_else(|| {
                transition_error(
                    "opportunity",
                    pipeline::RULE_WRONG_STATE,
                    "the opportunity is in no pipeline",
                )
            })?;
        let role = p.role.as_ref().map(|(_, n)| n.as_str());
        let has = |f: &str| match f.strip_prefix("custom.") {
            Some(name) => cache
                .customs
                .by_name(EntityKind::Opportunity, name)
                .is_some_and(|d| !old.custom(&d.key).is_null()),
            None => !old.get(f).is_null(),
        };
        let req = MoveRequest {
            from: old.text("stage"),
            to: stage,
            role,
            lost_reason,
        };
        let target = def.check_move(&req, &has)?.clone();
        let mut new = old.clone();
        set(&mut new, "stage", stage);
        set(&mut new, "probability", target.probability);
        set(&mut new, "forecast_category", target.forecast());
        let event = match target.outcome {
            Some(o) => {
                set(&mut new, "closed_at", uow.now);
                if o == Outcome::Lost {
                    set(
                        &mut new,
                        "lost_reason",
                        lost_reason.unwrap_or_default().trim(),
                    );
                    "opportunity.lost"
                } else {
                    new.fields.remove("lost_reason");
                    "opportunity.won"
                }
            }
            None => {
                new.fields.remove("closed_at");
                new.fields.remove("lost_reason");
                "opportunity.stage_changed"
            }
        };
        let saved = self.apply_transition(
            &mut uow,
            &old,
            new,
            "stage",
            event,
            comment.or(lost_reason),
            Some("stage_move"),
            json!({}),
        )?;
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    // ----------------------------------------------------------------- quotes

    /// Submits a draft quote. If an active approval rule triggers (a line discount above
    /// `max_discount_percent`, a total above `max_total`, or `always`), it waits for approval;
    /// otherwise it is approved at once (and sent, if `auto_send`).
    pub fn submit_quote(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
        comment: Option<&str>,
    ) -> Result<Record> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Quote, id, expected_version)?;
        QUOTE.check(&status(&old), "pending_approval")?;
        let rules = uow
            .tx
            .query(&Query::all(EntityKind::ApprovalRule, ctx.tenant.clone()))?;
        let triggered: Vec<String> = rules
            .iter()
            .filter(|r| r.get("active").as_bool() != Some(false))
            .filter(|r| approval_triggers(r, &old))
            .map(|r| r.text("name").unwrap_or_default().to_owned())
            .collect();
        let mut new = old.clone();
        set(&mut new, "submitted_by", ctx.user_id);
        let saved = if triggered.is_empty() {
            set(&mut new, "status", "approved");
            set(&mut new, "approval_required", false);
            set(&mut new, "approved_at", uow.now);
            let approved = self.apply_transition(
                &mut uow,
                &old,
                new,
                "status",
                "quote.approved",
                comment,
                Some("no_approval_needed"),
                json!({}),
            )?;
            self.maybe_auto_send(&mut uow, &cache, approved)?
        } else {
            set(&mut new, "status", "pending_approval");
            set(&mut new, "approval_required", true);
            let rule = format!("approval_rule:{}", triggered.join(","));
            self.apply_transition(
                &mut uow,
                &old,
                new,
                "status",
                "quote.submitted",
                comment,
                Some(&rule),
                json!({"approval_rules": triggered}),
            )?
        };
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    /// Approves a quote waiting for approval. The approver needs the capability `approve_quotes`
    /// (`role`) and may not be its author or submitter (`same_person`). An `auto_send` quote is sent in
    /// the same transaction.
    pub fn approve_quote(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
        comment: Option<&str>,
    ) -> Result<Record> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Quote, id, expected_version)?;
        QUOTE.check(&status(&old), "approved")?;
        if status(&old) != "pending_approval" {
            return Err(transition_error(
                "quote",
                pipeline::RULE_WRONG_STATE,
                "only a quote waiting for approval can be approved",
            ));
        }
        if old.meta.created_by == ctx.user_id || old.reference("submitted_by") == Some(ctx.user_id)
        {
            return Err(transition_error(
                "quote",
                pipeline::RULE_SAME_PERSON,
                "the author of a quote cannot approve it",
            ));
        }
        if !p.has_capability("approve_quotes") {
            return Err(transition_error(
                "quote",
                pipeline::RULE_ROLE,
                "approving quotes needs the capability `approve_quotes`",
            ));
        }
        let mut new = old.clone();
        set(&mut new, "status", "approved");
        set(&mut new, "approved_by", ctx.user_id);
        set(&mut new, "approved_at", uow.now);
        let approved = self.apply_transition(
            &mut uow,
            &old,
            new,
            "status",
            "quote.approved",
            comment,
            Some("approve"),
            json!({}),
        )?;
        let saved = self.maybe_auto_send(&mut uow, &cache, approved)?;
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    fn maybe_auto_send(
        &self,
        uow: &mut Uow<'_>,
        cache: &TenantCache,
        approved: Record,
    ) -> Result<Record> {
        if approved.get("auto_send").as_bool() == Some(false) {
            return Ok(approved);
        }
        match self.quote_address(uow, cache, &approved)? {
            Some(to) => self.send_in(uow, approved, to, "auto_send"),
            None => Ok(approved),
        }
    }

    /// Where a quote goes: `email_to`, else its contact's e-mail, else its lead's e-mail.
    fn quote_address(
        &self,
        uow: &Uow<'_>,
        cache: &TenantCache,
        q: &Record,
    ) -> Result<Option<String>> {
        if let Some(e) = q.text("email_to") {
            return Ok(Some(e.to_owned()));
        }
        for (field, kind) in [
            ("contact_id", EntityKind::Contact),
            ("lead_id", EntityKind::Lead),
        ] {
            if let Some(rid) = q.reference(field) {
                if let Some(r) =
                    uow.tx
                        .get(kind, &uow.ctx.tenant, rid, &cache.customs.types(kind))?
                {
                    if let Some(e) = r.text("email") {
                        return Ok(Some(e.to_owned()));
                    }
                }
            }
        }
        Ok(None)
    }

    fn send_in(&self, uow: &mut Uow<'_>, old: Record, to: String, rule: &str) -> Result<Record> {
        let mut new = old.clone();
        set(&mut new, "status", "sent");
        set(&mut new, "sent_at", uow.now);
        set(&mut new, "sent_to", to.as_str());
        let saved = self.apply_transition(
            uow,
            &old,
            new,
            "status",
            "quote.sent",
            None,
            Some(rule),
            json!({}),
        )?;
        let number = saved
            .text("number")
            .map(str::to_owned)
            .unwrap_or_else(|| saved.meta.id.to_string());
        let total = saved.get("total").to_json();
        let body = format!(
            "Please find our quote {number}. Total: {} {}.",
            total.get("amount").and_then(|a| a.as_str()).unwrap_or("-"),
            total.get("currency").and_then(|a| a.as_str()).unwrap_or("")
        );
        uow.event(
            "email.requested",
            EntityKind::Quote,
            saved.meta.id,
            json!({"to": to, "subject": format!("Quote {number}"), "body": body, "quote_id": saved.meta.id.to_string(), "total": total}),
        )?;
        Ok(saved)
    }

    /// Sends an approved quote: refused with `approval_missing` unless it is approved. The address is
    /// `email_to`, else the contact's, else the lead's e-mail; an `email.requested` event goes to the
    /// outbox for [`Crm::deliver_emails`].
    pub fn send_quote(&self, ctx: &Context, id: RecordId, expected_version: i64) -> Result<Record> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Quote, id, expected_version)?;
        match status(&old).as_str() {
            "approved" => {}
            "draft" | "pending_approval" | "rejected" => {
                return Err(transition_error(
                    "quote",
                    pipeline::RULE_APPROVAL_MISSING,
                    "the quote must be approved before it is sent",
                ));
            }
            s => {
                return Err(transition_error(
                    "quote",
                    pipeline::RULE_WRONG_STATE,
                    format!("a {s} quote cannot be sent"),
                ))
            }
        }
        let Some(to) = self.quote_address(&uow, &cache, &old)? else {
            let mut e = transition_error(
                "quote",
                pipeline::RULE_MISSING_FIELD,
                "the quote has no address to send to",
            );
            e.field = Some("email_to".into());
            return Err(e);
        };
        let saved = self.send_in(&mut uow, old, to, "send")?;
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    /// Rejects a quote: one waiting for approval (by an approver: capability `approve_quotes`), or a
    /// sent one (the customer declined). The reason is required.
    pub fn reject_quote(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
        reason: &str,
    ) -> Result<Record> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Quote, id, expected_version)?;
        let from = status(&old);
        QUOTE.check(&from, "rejected")?;
        if from == "pending_approval" && !p.has_capability("approve_quotes") {
            return Err(transition_error(
                "quote",
                pipeline::RULE_ROLE,
                "rejecting a quote waiting for approval needs `approve_quotes`",
            ));
        }
        let reason = need_reason("quote", "rejected_reason", Some(reason))?;
        let mut new = old.clone();
        set(&mut new, "status", "rejected");
        set(&mut new, "rejected_reason", reason.as_str());
        let saved = self.apply_transition(
            &mut uow,
            &old,
            new,
            "status",
            "quote.rejected",
            Some(&reason),
            Some("reject"),
            json!({}),
        )?;
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    /// Records the customer's acceptance of a sent quote and, if asked, creates an order copying its
    /// account, contact, currency and lines. Returns the quote and the order.
    pub fn accept_quote(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
        create_order: bool,
    ) -> Result<(Record, Option<Record>)> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Quote, id, expected_version)?;
        QUOTE.check(&status(&old), "accepted")?;
        let order = if create_order {
            let mut f = Fields::new();
            for k in ["account_id", "contact_id", "currency", "lines", "number"] {
                if let Some(v) = old.fields.get(k).filter(|v| !v.is_null()) {
                    f.insert(k.to_owned(), v.clone());
                }
            }
            f.insert("quote_id".into(), Value::Ref(old.meta.id));
            Some(self.insert_new(&mut uow, &p, &cache, EntityKind::Order, f)?)
        } else {
            None
        };
        let mut new = old.clone();
        set(&mut new, "status", "accepted");
        let extra = json!({"order_id": order.as_ref().map(|o| o.meta.id.to_string())});
        let saved = self.apply_transition(
            &mut uow,
            &old,
            new,
            "status",
            "quote.accepted",
            None,
            Some("accept"),
            extra,
        )?;
        uow.commit(self)?;
        Ok((
            self.present(&p, &cache, saved),
            order.map(|o| self.present(&p, &cache, o)),
        ))
    }

    /// Marks an approved or sent quote expired.
    pub fn expire_quote(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
    ) -> Result<Record> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Quote, id, expected_version)?;
        QUOTE.check(&status(&old), "expired")?;
        let mut new = old.clone();
        set(&mut new, "status", "expired");
        let saved = self.apply_transition(
            &mut uow,
            &old,
            new,
            "status",
            "quote.expired",
            None,
            Some("expire"),
            json!({}),
        )?;
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    // ----------------------------------------------------------------- cases

    /// Moves a case along its lifecycle. The first move out of `new`/`assigned` sets
    /// `first_responded_at`; `resolved` sets `resolved_at`, `closed` sets `closed_at`; reopening clears
    /// both.
    pub fn transition_case(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
        to: &str,
        comment: Option<&str>,
    ) -> Result<Record> {
        let (p, cache, mut uow, old) =
            self.open_for_transition(ctx, EntityKind::Case, id, expected_version)?;
        let from = status(&old);
        CASE.check(&from, to)?;
        let mut new = old.clone();
        set(&mut new, "status", to);
        let now = uow.now;
        if matches!(to, "in_progress" | "waiting_on_customer" | "resolved")
            && new.get("first_responded_at").is_null()
        {
            set(&mut new, "first_responded_at", now);
        }
        let reopen = matches!(from.as_str(), "resolved" | "closed") && to == "in_progress";
        match to {
            "resolved" => set(&mut new, "resolved_at", now),
            "closed" => set(&mut new, "closed_at", now),
            _ if reopen => {
                new.fields.remove("resolved_at");
                new.fields.remove("closed_at");
            }
            _ => {}
        }
        let event = if reopen {
            "case.reopened".to_owned()
        } else {
            format!("case.{to}")
        };
        let saved = self.apply_transition(
            &mut uow,
            &old,
            new,
            "status",
            &event,
            comment,
            Some(if reopen { "reopen" } else { "transition" }),
            json!({}),
        )?;
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    /// Checks the SLA timers of the open cases the user may update, against the CRM's clock: a case
    /// past its first-response due time without a response, or past its resolution due time, is marked
    /// `sla_breached` and gets one `case.sla_breached` event (once per case). Returns the cases marked.
    pub fn check_slas(&self, ctx: &Context) -> Result<Vec<RecordId>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Update, EntityKind::Case)?;
        let mut uow = self.begin(ctx, self.now())?;
        let now = uow.now;
        let k = EntityKind::Case;
        let not_breached = Cond::IsNull(col(k, "sla_breached")?).or(eq(k, "sla_breached", false)?);
        let mut q = Query::all(k, ctx.tenant.clone())
            .and(one_of(k, "status", OPEN_CASES)?)
            .and(not_breached)
            .and(access::record_cond(&p, Action::Update, k, now));
        q.custom_types = cache.customs.types(k);
        let mut marked = Vec::new();
        for c in uow.tx.query(&q)? {
            let before = |f: &str| c.get(f).as_timestamp().is_some_and(|t| t < now);
            let which = if c.get("first_responded_at").is_null() && before("first_response_due") {
                "first_response"
            } else if before("resolution_due") {
                "resolution"
            } else {
                continue;
            };
            let due = c
                .get(if which == "first_response" {
                    "first_response_due"
                } else {
                    "resolution_due"
                })
                .to_json();
            let mut new = c.clone();
            set(&mut new, "sla_breached", true);
            save(
                &mut uow,
                &c,
                new,
                Operation::Update,
                "case.sla_breached",
                json!({"sla": which, "due": due}),
                Some(format!("sla {which} breached")),
            )?;
            marked.push(c.meta.id);
        }
        uow.commit(self)?;
        Ok(marked)
    }

    // ----------------------------------------------------------------- history

    /// The recorded transitions of a record, oldest first, with the time spent in each state. The
    /// user must be able to read the record.
    pub fn stage_history(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Vec<StageEntry>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let tx = self.store().read()?;
        self.fetch_visible(&*tx, &p, &cache, ctx, kind, id, Action::Read)?;
        let ts = transitions_of(&*tx, &ctx.tenant, kind, id)?;
        let now = self.now();
        let mut out = Vec::with_capacity(ts.len());
        for (i, t) in ts.iter().enumerate() {
            let until = ts.get(i + 1).map(|n| n.meta.created_at).unwrap_or(now);
            out.push(StageEntry {
                at: t.meta.created_at,
                user_id: t.meta.created_by,
                from_state: t.text("from_state").map(str::to_owned),
                to_state: t.text("to_state").unwrap_or_default().to_owned(),
                comment: t.text("comment").map(str::to_owned),
                rule: t.text("rule").map(str::to_owned),
                seconds_in_previous: t.get("seconds_in_previous").as_int().unwrap_or(0),
                seconds_in_state: (until - t.meta.created_at).num_seconds().max(0),
            });
        }
        Ok(out)
    }

    // ----------------------------------------------------------------- followers

    /// Follows a record the user may read: its later changes produce a `notification` event addressed
    /// to the user. Following twice is harmless. Returns the Follow record.
    pub fn follow(&self, ctx: &Context, kind: EntityKind, id: RecordId) -> Result<Record> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let mut uow = self.begin(ctx, self.now())?;
        self.fetch_visible(&*uow.tx, &p, &cache, ctx, kind, id, Action::Read)?;
        if let Some(f) = self.find_follow(&*uow.tx, ctx, kind, id)? {
            return Ok(f);
        }
        let mut f = Fields::new();
        f.insert("record_kind".into(), Value::from(kind.name()));
        f.insert("record_id".into(), Value::Ref(id));
        f.insert("user_id".into(), Value::Ref(ctx.user_id));
        let r = Record {
            meta: meta(&uow, EntityKind::Follow, ctx.user_id),
            fields: f,
            custom: Fields::new(),
        };
        uow.insert(&r, Operation::Create)?;
        uow.commit(self)?;
        Ok(r)
    }

    /// Stops following a record; `false` if the user was not following it.
    pub fn unfollow(&self, ctx: &Context, kind: EntityKind, id: RecordId) -> Result<bool> {
        self.principal(ctx)?;
        let mut uow = self.begin(ctx, self.now())?;
        let Some(f) = self.find_follow(&*uow.tx, ctx, kind, id)? else {
            return Ok(false);
        };
        let mut gone = f.clone();
        gone.meta.deleted_at = Some(uow.now);
        save(
            &mut uow,
            &f,
            gone,
            Operation::Delete,
            "record.deleted",
            json!({}),
            None,
        )?;
        uow.commit(self)?;
        Ok(true)
    }

    /// The users following a record the user may read.
    pub fn followers(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Vec<RecordId>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let tx = self.store().read()?;
        self.fetch_visible(&*tx, &p, &cache, ctx, kind, id, Action::Read)?;
        let q = Query::all(EntityKind::Follow, ctx.tenant.clone())
            .and(eq(EntityKind::Follow, "record_kind", kind.name())?)
            .and(eq(EntityKind::Follow, "record_id", id)?);
        let users: BTreeSet<RecordId> = tx
            .query(&q)?
            .iter()
            .filter_map(|f| f.reference("user_id"))
            .collect();
        Ok(users.into_iter().collect())
    }

    fn find_follow(
        &self,
        tx: &dyn ReadTx,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Option<Record>> {
        let mut q = Query::all(EntityKind::Follow, ctx.tenant.clone())
            .and(eq(EntityKind::Follow, "record_kind", kind.name())?)
            .and(eq(EntityKind::Follow, "record_id", id)?)
            .and(eq(EntityKind::Follow, "user_id", ctx.user_id)?);
        q.liveness = Liveness::Live;
        q.limit = Some(1);
        Ok(tx.query(&q)?.into_iter().next())
    }

    // ----------------------------------------------------------------- tasks and reminders

    fn task_query(
        &self,
        p: &Principal,
        cache: &TenantCache,
        ctx: &Context,
        action: Action,
        until: DateTime<Utc>,
    ) -> Result<Query> {
        let k = EntityKind::Activity;
        let mut q = Query::all(k, ctx.tenant.clone())
            .and(eq(k, "activity_type", "task")?)
            .and(Cond::IsNull(col(k, "completed_at")?))
            .and(Cond::Compare(
                col(k, "due_at")?,
                Op::Lt,
                Value::Timestamp(until),
            ))
            .and(access::record_cond(p, action, k, self.now()));
        q.sort = Some((col(k, "due_at")?, false));
        q.custom_types = cache.customs.types(k);
        Ok(q)
    }

    /// Open tasks (activities of type `task`, not completed) due before `until` that the user may
    /// read, earliest first.
    pub fn due_tasks(&self, ctx: &Context, until: DateTime<Utc>) -> Result<Vec<Record>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, EntityKind::Activity)?;
        let q = self.task_query(&p, &cache, ctx, Action::Read, until)?;
        let rows = self.store().read()?.query(&q)?;
        Ok(rows
            .into_iter()
            .map(|r| self.present(&p, &cache, r))
            .collect())
    }

    /// Emits one `task.due` event for each open task due by now (among those the user may update) that
    /// has not been reminded yet, and sets its `reminded_at`. Returns how many reminders fired.
    pub fn fire_reminders(&self, ctx: &Context) -> Result<usize> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Update, EntityKind::Activity)?;
        let mut uow = self.begin(ctx, self.now())?;
        let now = uow.now;
        let q = self
            .task_query(
                &p,
                &cache,
                ctx,
                Action::Update,
                now + Duration::microseconds(1),
            )?
            .and(Cond::IsNull(col(EntityKind::Activity, "reminded_at")?));
        let mut n = 0;
        for t in uow.tx.query(&q)? {
            let mut new = t.clone();
            set(&mut new, "reminded_at", now);
            let user = t.reference("performed_by").unwrap_or(t.meta.owner_id);
            let extra = json!({"user_id": user.to_string(), "subject": t.text("subject"), "due_at": t.get("due_at").to_json()});
            save(
                &mut uow,
                &t,
                new,
                Operation::Update,
                "task.due",
                extra,
                Some("reminder".into()),
            )?;
            n += 1;
        }
        uow.commit(self)?;
        Ok(n)
    }

    // ----------------------------------------------------------------- outbox delivery

    /// Delivers the pending `email.requested` events through `mailer`, oldest first, and acknowledges
    /// each one delivered. A failing send leaves its event pending for the next call (at-least-once);
    /// the others are still tried. Returns how many were delivered. Needs the outbox permission
    /// (administrators, capability `integration`).
    pub fn deliver_emails(&self, ctx: &Context, mailer: &dyn Mailer) -> Result<usize> {
        let mut after = 0;
        let mut delivered = 0;
        loop {
            let batch = self.pending_events(ctx, after, 500)?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            let mut acked = Vec::new();
            for e in batch.iter().filter(|e| e.event_type == "email.requested") {
                let text = |k: &str| {
                    e.payload
                        .get(k)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                let msg = EmailMessage {
                    to: text("to"),
                    subject: text("subject"),
                    body: text("body"),
                    record_kind: e.kind,
                    record_id: e.record_id,
                };
                if mailer.send(&msg).is_ok() {
                    acked.push(e.seq);
                }
            }
            if !acked.is_empty() {
                self.ack_events(ctx, &acked)?;
                delivered += acked.len();
            }
            if batch.len() < 500 {
                break;
            }
        }
        Ok(delivered)
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
