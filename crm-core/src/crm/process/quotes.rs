//! The quote lifecycle: submission, approval thresholds, sending, acceptance.

use super::*;
use crate::crm::door::Why;

impl Engine {
    // ----------------------------------------------------------------- quotes

    /// Submits a draft quote. If an active approval rule triggers (a line discount above
    /// `max_discount_percent`, a total above `max_total`, or `always`), it waits for approval;
    /// otherwise it is approved at once (and sent, if `auto_send`).
    pub(crate) fn submit_quote(
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
            .unscoped(Why::Configuration)
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
            self.maybe_auto_send(&mut uow, &p, &cache, approved)?
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
    pub(crate) fn approve_quote(
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
        let saved = self.maybe_auto_send(&mut uow, &p, &cache, approved)?;
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    pub(crate) fn maybe_auto_send(
        &self,
        uow: &mut Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        approved: Record,
    ) -> Result<Record> {
        if approved.get("auto_send").as_bool() == Some(false) {
            return Ok(approved);
        }
        match self.quote_address(uow, p, cache, &approved)? {
            Some(to) => self.send_in(uow, approved, to, "auto_send"),
            None => Ok(approved),
        }
    }

    /// Where a quote goes: `email_to`, else its contact's e-mail, else its lead's e-mail — read as
    /// the sending user may read them: an address they may not see is not used (the quote would
    /// show it to them as `sent_to`).
    pub(crate) fn quote_address(
        &self,
        uow: &Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        q: &Record,
    ) -> Result<Option<String>> {
        if let Some(e) = q.text("email_to") {
            return Ok(Some(e.to_owned()));
        }
        let scoped = uow.tx.scoped(self.who(p, cache, &uow.ctx));
        for (field, kind) in [
            ("contact_id", EntityKind::Contact),
            ("lead_id", EntityKind::Lead),
        ] {
            if access::field_access(p, kind, "email") == Some(access::FieldAccess::Hidden) {
                continue;
            }
            if let Some(rid) = q.reference(field) {
                if let Some(r) = scoped.find(kind, rid, Action::Read)? {
                    if let Some(e) = r.text("email") {
                        return Ok(Some(e.to_owned()));
                    }
                }
            }
        }
        Ok(None)
    }

    pub(crate) fn send_in(
        &self,
        uow: &mut Uow<'_>,
        old: Record,
        to: String,
        rule: &str,
    ) -> Result<Record> {
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
    /// outbox for [`Engine::deliver_emails`].
    pub(crate) fn send_quote(
        &self,
        ctx: &Context,
        id: RecordId,
        expected_version: i64,
    ) -> Result<Record> {
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
        let Some(to) = self.quote_address(&uow, &p, &cache, &old)? else {
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
    pub(crate) fn reject_quote(
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
    pub(crate) fn accept_quote(
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
    pub(crate) fn expire_quote(
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
}
