//! Lead and opportunity lifecycles: qualification, conversion, pipeline stages.

use super::*;

impl Engine {
    // ----------------------------------------------------------------- leads

    /// Moves a lead along its lifecycle (`contacted`, `qualified`, `disqualified` with a reason in
    /// `comment`). Converting is [`Engine::convert_lead`].
    pub(crate) fn transition_lead(
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
            // The reason is written to the lead: only by a user who may write it.
            access::check_field_write(&p, EntityKind::Lead, "disqualify_reason")?;
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
    pub(crate) fn disqualify_lead(
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
    pub(crate) fn convert_lead(
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
        // Only what the converting user may see of the lead is copied: a copy never carries a
        // value its source hides from them.
        let seen = |f: &str| {
            access::field_access(&p, EntityKind::Lead, f) != Some(access::FieldAccess::Hidden)
        };
        let copy = |f: &mut Fields, to: &str, from: &str| {
            if let Some(v) = old.fields.get(from).filter(|v| !v.is_null() && seen(from)) {
                f.insert(to.to_owned(), v.clone());
            }
        };
        let person = match (
            old.text("first_name").filter(|_| seen("first_name")),
            old.text("last_name").filter(|_| seen("last_name")),
        ) {
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
                    uow.tx.view(),
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
                    .filter(|_| seen("company"))
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
            .filter(|_| seen("last_name"))
            .or(old.text("first_name").filter(|_| seen("first_name")))
            .or(old.text("company").filter(|_| seen("company")))
            .unwrap_or("unknown");
        f.insert("last_name".into(), Value::from(last));
        copy(&mut f, "email", "email");
        copy(&mut f, "phone", "phone");
        copy(&mut f, "country", "country");
        f.insert("account_id".into(), Value::Ref(account.meta.id));
        f.insert("roles".into(), Value::List(vec!["prospect".into()]));
        let contact = self.insert_new(&mut uow, &p, &cache, EntityKind::Contact, f)?;
        let pipeline = self.load_pipeline(uow.tx.view(), &ctx.tenant, opts.pipeline.as_deref())?;
        let mut f = Fields::new();
        let default_name = format!(
            "{} – {}",
            old.text("company")
                .filter(|_| seen("company"))
                .map(str::to_owned)
                .unwrap_or(person),
            old.text("product_interest")
                .filter(|_| seen("product_interest"))
                .unwrap_or("opportunity")
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
    pub(crate) fn move_opportunity(
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
        if lost_reason.is_some() {
            // Written to the opportunity: only by a user who may write it.
            access::check_field_write(&p, EntityKind::Opportunity, "lost_reason")?;
        }
        let def = self
            .load_pipeline(uow.tx.view(), &ctx.tenant, old.text("pipeline"))?
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
}
