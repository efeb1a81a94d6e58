//! Cases and SLA timers, stage history, followers, tasks and reminders, e-mail delivery.

use super::*;

impl Engine {
    // ----------------------------------------------------------------- cases

    /// Moves a case along its lifecycle. The first move out of `new`/`assigned` sets
    /// `first_responded_at`; `resolved` sets `resolved_at`, `closed` sets `closed_at`; reopening clears
    /// both.
    pub(crate) fn transition_case(
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
    pub(crate) fn check_slas(&self, ctx: &Context) -> Result<Vec<RecordId>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Update, EntityKind::Case)?;
        let mut uow = self.begin(ctx, self.now())?;
        let now = uow.now;
        let k = EntityKind::Case;
        let not_breached = Cond::IsNull(col(k, "sla_breached")?).or(eq(k, "sla_breached", false)?);
        let mut q = Query::all(k, ctx.tenant.clone())
            .and(one_of(k, "status", OPEN_CASES)?)
            .and(not_breached);
        q.custom_types = cache.customs.types(k);
        let mut marked = Vec::new();
        let cases = uow
            .tx
            .scoped(self.who(&p, &cache, ctx))
            .query(q, Action::Update)?;
        for c in cases {
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
            uow.replace_with(
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
    pub(crate) fn stage_history(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Vec<StageEntry>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let tx = self.door().read()?;
        self.fetch_visible(tx.view(), &p, &cache, ctx, kind, id, Action::Read)?;
        // The history of a state field hidden from the user would show it.
        let state = if kind == EntityKind::Opportunity {
            "stage"
        } else {
            "status"
        };
        if kind.schema().field(state).is_some() {
            access::check_field_query(&p, kind, state)?;
        }
        let ts = transitions_of(tx.view(), &ctx.tenant, kind, id)?;
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
    pub(crate) fn follow(&self, ctx: &Context, kind: EntityKind, id: RecordId) -> Result<Record> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let mut uow = self.begin(ctx, self.now())?;
        self.fetch_visible(uow.tx.view(), &p, &cache, ctx, kind, id, Action::Read)?;
        if let Some(f) = self.find_follow(uow.tx.view(), ctx, kind, id)? {
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
    pub(crate) fn unfollow(&self, ctx: &Context, kind: EntityKind, id: RecordId) -> Result<bool> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let mut uow = self.begin(ctx, self.now())?;
        self.fetch_visible(uow.tx.view(), &p, &cache, ctx, kind, id, Action::Read)?;
        let Some(f) = self.find_follow(uow.tx.view(), ctx, kind, id)? else {
            return Ok(false);
        };
        let mut gone = f.clone();
        gone.meta.deleted_at = Some(uow.now);
        uow.replace_with(
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
    pub(crate) fn followers(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Vec<RecordId>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let tx = self.door().read()?;
        self.fetch_visible(tx.view(), &p, &cache, ctx, kind, id, Action::Read)?;
        let q = Query::all(EntityKind::Follow, ctx.tenant.clone())
            .and(eq(EntityKind::Follow, "record_kind", kind.name())?)
            .and(eq(EntityKind::Follow, "record_id", id)?);
        let users: BTreeSet<RecordId> = tx
            .unscoped(Why::OfVisible)
            .query(&q)?
            .iter()
            .filter_map(|f| f.reference("user_id"))
            .collect();
        Ok(users.into_iter().collect())
    }

    pub(crate) fn find_follow(
        &self,
        tx: View<'_>,
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
        Ok(tx.unscoped(Why::Own).query(&q)?.into_iter().next())
    }

    // ----------------------------------------------------------------- tasks and reminders

    pub(crate) fn task_query(
        &self,
        p: &Principal,
        cache: &TenantCache,
        ctx: &Context,
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
            ));
        let _ = p;
        q.sort = Some((col(k, "due_at")?, false));
        q.custom_types = cache.customs.types(k);
        Ok(q)
    }

    /// Open tasks (activities of type `task`, not completed) due before `until` that the user may
    /// read, earliest first.
    pub(crate) fn due_tasks(&self, ctx: &Context, until: DateTime<Utc>) -> Result<Vec<Record>> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, EntityKind::Activity)?;
        let q = self.task_query(&p, &cache, ctx, until)?;
        let rows = self
            .door()
            .read()?
            .scoped(self.who(&p, &cache, ctx))
            .query(q, Action::Read)?;
        Ok(rows
            .into_iter()
            .map(|r| self.present(&p, &cache, r))
            .collect())
    }

    /// Emits one `task.due` event for each open task due by now (among those the user may update) that
    /// has not been reminded yet, and sets its `reminded_at`. Returns how many reminders fired.
    pub(crate) fn fire_reminders(&self, ctx: &Context) -> Result<usize> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Update, EntityKind::Activity)?;
        let mut uow = self.begin(ctx, self.now())?;
        let now = uow.now;
        let q = self
            .task_query(&p, &cache, ctx, now + Duration::microseconds(1))?
            .and(Cond::IsNull(col(EntityKind::Activity, "reminded_at")?));
        let mut n = 0;
        let tasks = uow
            .tx
            .scoped(self.who(&p, &cache, ctx))
            .query(q, Action::Update)?;
        for t in tasks {
            let mut new = t.clone();
            set(&mut new, "reminded_at", now);
            let user = t.reference("performed_by").unwrap_or(t.meta.owner_id);
            let extra = json!({"user_id": user.to_string(), "subject": t.text("subject"), "due_at": t.get("due_at").to_json()});
            uow.replace_with(
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
    pub(crate) fn deliver_emails(&self, ctx: &Context, mailer: &dyn Mailer) -> Result<usize> {
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
