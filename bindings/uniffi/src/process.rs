//! Processes: lifecycle operations (leads, opportunities, quotes, cases), SLA checks, stage history,
//! followers, task reminders, the e-mail outbox through a host [`Mailer`], and restoring an earlier
//! version. Each method converts its arguments, forwards to the core session inside [`guard`] and
//! converts the answer back; refused moves raise `CrmError::InvalidTransition` with the guard as
//! `rule`.

use std::sync::Arc;

use crm_core::{
    Conversion as CoreConversion, ConvertLead as CoreConvertLead, CrmError as CoreError,
    EmailMessage as CoreEmailMessage, Mailer as CoreMailer, StageEntry as CoreStageEntry,
    Value as CoreValue,
};

use crate::error::{guard, CrmError};
use crate::session::Session;
use crate::types::{core_value, instant, kind, micros, record_id, signed, FfiRecord, FfiValue};

/// How to convert a qualified lead; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct FfiConvertLead {
    /// Link this existing account instead of creating one from the lead's company.
    #[uniffi(default = None)]
    pub account_id: Option<String>,
    /// The opportunity's name (default: `"<company or name> – <product interest or 'opportunity'>"`).
    #[uniffi(default = None)]
    pub opportunity_name: Option<String>,
    /// The opportunity's amount, an `FfiValue.Money` (default: the lead's estimated value).
    #[uniffi(default = None)]
    pub amount: Option<FfiValue>,
    /// The pipeline by name (default: the tenant's default pipeline, if any).
    #[uniffi(default = None)]
    pub pipeline: Option<String>,
}

impl TryFrom<FfiConvertLead> for CoreConvertLead {
    type Error = CrmError;
    fn try_from(o: FfiConvertLead) -> Result<Self, CrmError> {
        let amount = match o.amount.map(|a| core_value("amount", a)).transpose()? {
            None | Some(CoreValue::Null) => None,
            Some(CoreValue::Money(m)) => Some(m),
            Some(_) => {
                return Err(CrmError::validation(
                    "amount",
                    "type",
                    "the amount must be an FfiValue.Money",
                ))
            }
        };
        Ok(CoreConvertLead {
            account_id: o
                .account_id
                .map(|a| record_id(&a, "account_id"))
                .transpose()?,
            opportunity_name: o.opportunity_name,
            amount,
            pipeline: o.pipeline,
        })
    }
}

/// The records a lead conversion created or linked.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiConversion {
    /// The lead, now `converted`.
    pub lead: FfiRecord,
    /// The account (created or linked).
    pub account: FfiRecord,
    /// The contact created from the lead.
    pub contact: FfiRecord,
    /// The opportunity created.
    pub opportunity: FfiRecord,
}

impl From<CoreConversion> for FfiConversion {
    fn from(c: CoreConversion) -> Self {
        FfiConversion {
            lead: c.lead.into(),
            account: c.account.into(),
            contact: c.contact.into(),
            opportunity: c.opportunity.into(),
        }
    }
}

/// A customer's acceptance: the quote, and the order when one was asked for.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiQuoteAcceptance {
    /// The quote, now `accepted`.
    pub quote: FfiRecord,
    /// The order created from it (`null` unless `create_order`).
    pub order: Option<FfiRecord>,
}

/// One recorded lifecycle transition with the time spent in the state it entered.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiStageEntry {
    /// When the move happened, UTC epoch microseconds.
    pub at: i64,
    /// Who made it.
    pub user_id: String,
    /// The state left (`null` for the first recorded state).
    pub from_state: Option<String>,
    /// The state entered.
    pub to_state: String,
    /// The comment or reason given.
    pub comment: Option<String>,
    /// The rule or operation that made the move (`submit`, `approval_rule:<name>`, …).
    pub rule: Option<String>,
    /// Seconds spent in `from_state`.
    pub seconds_in_previous: i64,
    /// Seconds spent in `to_state` (until the next move, or until now).
    pub seconds_in_state: i64,
}

impl From<CoreStageEntry> for FfiStageEntry {
    fn from(s: CoreStageEntry) -> Self {
        FfiStageEntry {
            at: micros(s.at),
            user_id: s.user_id.to_string(),
            from_state: s.from_state,
            to_state: s.to_state,
            comment: s.comment,
            rule: s.rule,
            seconds_in_previous: s.seconds_in_previous,
            seconds_in_state: s.seconds_in_state,
        }
    }
}

/// An e-mail for the host to send.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiEmailMessage {
    /// The recipient address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// The type of the record the e-mail is about (`quote`, …).
    pub record_kind: String,
    /// Its id.
    pub record_id: String,
}

impl From<&CoreEmailMessage> for FfiEmailMessage {
    fn from(m: &CoreEmailMessage) -> Self {
        FfiEmailMessage {
            to: m.to.clone(),
            subject: m.subject.clone(),
            body: m.body.clone(),
            record_kind: m.record_kind.name().to_owned(),
            record_id: m.record_id.to_string(),
        }
    }
}

/// The host's mail transport, implemented in Kotlin/Java (or Swift, Python). Raising any exception
/// means "not sent": the outbox event stays pending for the next delivery (at-least-once).
#[uniffi::export(with_foreign)]
pub trait Mailer: Send + Sync {
    /// Sends one message.
    fn send(&self, message: FfiEmailMessage) -> Result<(), CrmError>;
}

/// The core's mailer trait driven by a host mailer. The core only needs to know that the send failed.
struct HostMailer<'a>(&'a dyn Mailer);

impl CoreMailer for HostMailer<'_> {
    fn send(&self, msg: &CoreEmailMessage) -> crm_core::Result<()> {
        self.0
            .send(msg.into())
            .map_err(|e| CoreError::internal(format!("host mailer failed: {e}")))
    }
}

fn opt(s: &Option<String>) -> Option<&str> {
    s.as_deref()
}

#[uniffi::export]
impl Session {
    /// Moves a lead along its lifecycle (`contacted`, `qualified`, `disqualified`, `new`); converting
    /// is [`Session::convert_lead`].
    #[uniffi::method(default(comment = None))]
    pub fn transition_lead(
        &self,
        id: String,
        expected_version: i64,
        to: String,
        comment: Option<String>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self.session.sales().transition_lead(
                record_id(&id, "id")?,
                expected_version,
                &to,
                opt(&comment),
            )?;
            Ok(r.into())
        })
    }

    /// Disqualifies a lead; the reason is required (`reason_required`).
    pub fn disqualify_lead(
        &self,
        id: String,
        expected_version: i64,
        reason: String,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self.session.sales().disqualify_lead(
                record_id(&id, "id")?,
                expected_version,
                &reason,
            )?;
            Ok(r.into())
        })
    }

    /// Converts a qualified lead, atomically, into an account (created or linked), a contact and an
    /// opportunity in the pipeline's first stage.
    #[uniffi::method(default(options = None))]
    pub fn convert_lead(
        &self,
        id: String,
        expected_version: i64,
        options: Option<FfiConvertLead>,
    ) -> Result<FfiConversion, CrmError> {
        guard(|| {
            let opts = options.unwrap_or_default().try_into()?;
            let c =
                self.session
                    .sales()
                    .convert_lead(record_id(&id, "id")?, expected_version, opts)?;
            Ok(c.into())
        })
    }

    /// Moves an opportunity to another stage of its pipeline, checking the stage's guards; a lost
    /// stage needs `lost_reason`.
    #[uniffi::method(default(comment = None, lost_reason = None))]
    pub fn move_opportunity(
        &self,
        id: String,
        expected_version: i64,
        stage: String,
        comment: Option<String>,
        lost_reason: Option<String>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self.session.sales().move_opportunity(
                record_id(&id, "id")?,
                expected_version,
                &stage,
                opt(&comment),
                opt(&lost_reason),
            )?;
            Ok(r.into())
        })
    }

    /// Submits a draft quote: it waits for approval when an approval rule triggers, otherwise it is
    /// approved at once (and sent, if `auto_send`).
    #[uniffi::method(default(comment = None))]
    pub fn submit_quote(
        &self,
        id: String,
        expected_version: i64,
        comment: Option<String>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self.session.sales().submit_quote(
                record_id(&id, "id")?,
                expected_version,
                opt(&comment),
            )?;
            Ok(r.into())
        })
    }

    /// Approves a quote waiting for approval (capability `approve_quotes`, rule `role`; not its
    /// author or submitter, rule `same_person`). An `auto_send` quote is sent at once.
    #[uniffi::method(default(comment = None))]
    pub fn approve_quote(
        &self,
        id: String,
        expected_version: i64,
        comment: Option<String>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self.session.sales().approve_quote(
                record_id(&id, "id")?,
                expected_version,
                opt(&comment),
            )?;
            Ok(r.into())
        })
    }

    /// Rejects a quote waiting for approval (by an approver) or a sent one (the customer declined);
    /// the reason is required.
    pub fn reject_quote(
        &self,
        id: String,
        expected_version: i64,
        reason: String,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self.session.sales().reject_quote(
                record_id(&id, "id")?,
                expected_version,
                &reason,
            )?;
            Ok(r.into())
        })
    }

    /// Sends an approved quote (`approval_missing` otherwise): an `email.requested` event goes to the
    /// outbox for [`Session::deliver_emails`].
    pub fn send_quote(&self, id: String, expected_version: i64) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self
                .session
                .sales()
                .send_quote(record_id(&id, "id")?, expected_version)?;
            Ok(r.into())
        })
    }

    /// Marks an approved or sent quote expired.
    pub fn expire_quote(&self, id: String, expected_version: i64) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self
                .session
                .sales()
                .expire_quote(record_id(&id, "id")?, expected_version)?;
            Ok(r.into())
        })
    }

    /// Records the customer's acceptance of a sent quote and, if `create_order`, creates an order
    /// from it.
    pub fn accept_quote(
        &self,
        id: String,
        expected_version: i64,
        create_order: bool,
    ) -> Result<FfiQuoteAcceptance, CrmError> {
        guard(|| {
            let (quote, order) = self.session.sales().accept_quote(
                record_id(&id, "id")?,
                expected_version,
                create_order,
            )?;
            Ok(FfiQuoteAcceptance {
                quote: quote.into(),
                order: order.map(Into::into),
            })
        })
    }

    /// Moves a case along its lifecycle (`assigned`, `in_progress`, `waiting_on_customer`,
    /// `resolved`, `closed`, reopening).
    #[uniffi::method(default(comment = None))]
    pub fn transition_case(
        &self,
        id: String,
        expected_version: i64,
        to: String,
        comment: Option<String>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self.session.service().transition_case(
                record_id(&id, "id")?,
                expected_version,
                &to,
                opt(&comment),
            )?;
            Ok(r.into())
        })
    }

    /// Marks the open cases past their SLA due times `sla_breached` (once per case); returns their ids.
    pub fn check_slas(&self) -> Result<Vec<String>, CrmError> {
        guard(|| {
            let ids = self.session.service().check_slas()?;
            Ok(ids.into_iter().map(|i| i.to_string()).collect())
        })
    }

    /// The recorded transitions of a record, oldest first, with the time spent in each state.
    pub fn stage_history(
        &self,
        kind_name: String,
        id: String,
    ) -> Result<Vec<FfiStageEntry>, CrmError> {
        guard(|| {
            let out = self
                .session
                .audit()
                .stage_history(kind(&kind_name)?, record_id(&id, "id")?)?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// Follows a record: its later changes by others notify the acting user. Returns the Follow record.
    pub fn follow(&self, kind_name: String, id: String) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self
                .session
                .records()
                .follow(kind(&kind_name)?, record_id(&id, "id")?)?;
            Ok(r.into())
        })
    }

    /// Stops following a record; `false` if the user was not following it.
    pub fn unfollow(&self, kind_name: String, id: String) -> Result<bool, CrmError> {
        guard(|| {
            Ok(self
                .session
                .records()
                .unfollow(kind(&kind_name)?, record_id(&id, "id")?)?)
        })
    }

    /// The ids of the users following a record.
    pub fn followers(&self, kind_name: String, id: String) -> Result<Vec<String>, CrmError> {
        guard(|| {
            let ids = self
                .session
                .records()
                .followers(kind(&kind_name)?, record_id(&id, "id")?)?;
            Ok(ids.into_iter().map(|i| i.to_string()).collect())
        })
    }

    /// Open tasks due before `until` (UTC epoch microseconds) that the user may read, earliest first.
    pub fn due_tasks(&self, until: i64) -> Result<Vec<FfiRecord>, CrmError> {
        guard(|| {
            let out = self.session.service().due_tasks(instant("until", until)?)?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// Emits one `task.due` event per open task due by now that was not reminded yet; returns how many.
    pub fn fire_reminders(&self) -> Result<i64, CrmError> {
        guard(|| Ok(signed(self.session.service().fire_reminders()? as u64)))
    }

    /// Delivers the pending `email.requested` events through `mailer`, oldest first, acknowledging
    /// each one sent. A `send` that raises leaves its event pending for the next call (the others
    /// are still tried). Returns how many were delivered. Needs the outbox permission
    /// (administrators, capability `integration`).
    pub fn deliver_emails(&self, mailer: Arc<dyn Mailer>) -> Result<i64, CrmError> {
        guard(|| {
            let n = self
                .session
                .outbox()
                .deliver_emails(&HostMailer(mailer.as_ref()))?;
            Ok(signed(n as u64))
        })
    }

    /// Restores the field values a record had at `version` as a new, recorded change under today's
    /// validation and permissions; lifecycle and computed fields keep their current values.
    pub fn restore_version(
        &self,
        kind_name: String,
        id: String,
        expected_version: i64,
        version: i64,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self.session.audit().restore_version(
                kind(&kind_name)?,
                record_id(&id, "id")?,
                expected_version,
                version,
            )?;
            Ok(r.into())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    struct Host(Mutex<Vec<FfiEmailMessage>>, bool);

    impl Mailer for Host {
        fn send(&self, message: FfiEmailMessage) -> Result<(), CrmError> {
            if self.1 {
                return Err(CrmError::internal("callback", "smtp down"));
            }
            self.0.lock().unwrap().push(message);
            Ok(())
        }
    }

    fn msg() -> CoreEmailMessage {
        CoreEmailMessage {
            to: "a@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
            record_kind: crm_core::EntityKind::Quote,
            record_id: crm_core::RecordId::new_at(crm_core::chrono::Utc::now()),
        }
    }

    #[test]
    fn the_host_mailer_gets_the_message_and_its_failure_reaches_the_core() {
        let ok = Host(Mutex::new(vec![]), false);
        let m = msg();
        HostMailer(&ok).send(&m).unwrap();
        let sent = ok.0.lock().unwrap();
        assert_eq!(sent[0].to, "a@example.com");
        assert_eq!(sent[0].record_kind, "quote");
        assert_eq!(sent[0].record_id, m.record_id.to_string());
        let failing = Host(Mutex::new(vec![]), true);
        assert!(HostMailer(&failing).send(&m).is_err());
    }

    #[test]
    fn convert_options_need_a_money_amount() {
        let bad = FfiConvertLead {
            amount: Some(FfiValue::Int { value: 5 }),
            ..Default::default()
        };
        assert!(matches!(
            CoreConvertLead::try_from(bad),
            Err(CrmError::Validation { .. })
        ));
        let ok = FfiConvertLead {
            amount: Some(FfiValue::Money {
                amount: "10.50".into(),
                currency: "EUR".into(),
            }),
            ..Default::default()
        };
        assert!(CoreConvertLead::try_from(ok).unwrap().amount.is_some());
    }
}
