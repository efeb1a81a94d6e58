//! The public entry points: [`Crm`], the host's object (open, configure, back up, bootstrap and
//! move tenants), and [`Session`], one user acting in one tenant — the only way to reach tenant
//! data. A session's sub-handles ([`Session::records`], [`Session::sales`], …) group its calls by
//! domain; each call is checked against the acting user's permissions, validated, and (for writes)
//! committed with its audit entry and outbox events.

use std::io::{BufRead, Write};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{Action, Decision, Principal};
use crate::analytics::{Lifecycle, LifecycleThresholds};
use crate::audit::{AuditVerification, FieldChange, Origin};
use crate::backend::Store;
use crate::clock::Clock;
use crate::error::Result;
use crate::events::Event;
use crate::id::{RecordId, TenantId};
use crate::money::{Currency, RateTable};
use crate::query::{Filter, ListRequest, Page};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::value::Fields;

use super::{
    principal_in, AccessReview, Context, Conversion, ConvertLead, CrossSell, CustomerValue, Engine,
    ErpFacts, ForecastRow, Funnel, FunnelOptions, Grantee, HistoryEntry, HistoryPage, Kpi, Mailer,
    MergeOutcome, NewRecord, OwnedTransaction, ProfitOptions, ProfitRow, RfmOptions, RfmRow,
    ScreenPop, SegmentDiff, StageEntry, Transaction, TransferSummary, ValueOptions,
};

/// The CRM of one database: what the host holds. Cheap to clone (the clones share one engine) and
/// `Send + Sync`.
///
/// The `Crm` does the host's work — configuration, whole-database backups and integrity checks,
/// tenant bootstrap, export and import — and opens [`Session`]s, through which all tenant work goes.
/// It owns its store: nothing else can reach the data past the permission rules.
///
/// ```
/// use crm_core::{fields, Crm, EntityKind, TenantId};
/// # fn demo(store: impl crm_core::backend::Store + 'static) -> crm_core::Result<()> {
/// let crm = Crm::new(store);
/// let admin = crm.bootstrap(&TenantId::new("acme")?, "admin", Default::default())?;
/// let session = crm.session(&admin)?;
/// let acme = session.records().create(EntityKind::Account, fields! { "name" => "ACME Srl" })?;
/// assert_eq!(session.records().get(EntityKind::Account, acme.meta.id)?.text("name"), Some("ACME Srl"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Crm {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Crm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crm").finish_non_exhaustive()
    }
}

impl Crm {
    /// A CRM over `store`, which it owns from now on, with the system clock and Italy as the default
    /// phone region.
    pub fn new(store: impl Store + 'static) -> Self {
        Crm {
            engine: Arc::new(Engine::new(Arc::new(store))),
        }
    }

    /// Changes the engine's settings: in place while this handle is the only one, otherwise on a
    /// new engine over the same store (the other handles keep theirs).
    fn configure(mut self, f: impl FnOnce(&mut Engine)) -> Self {
        match Arc::get_mut(&mut self.engine) {
            Some(e) => f(e),
            None => {
                let mut e = self.engine.fork();
                f(&mut e);
                self.engine = Arc::new(e);
            }
        }
        self
    }

    /// How long the screen pop may reuse its per-user snapshot of the customer base (RFM tile
    /// borders and product co-purchase counts) after orders were written; default 5 minutes. While
    /// no order is written the snapshot stays exact; `Duration::zero()` rebuilds it after every
    /// order write. The full analytics calls ([`Analytics::rfm`], [`Analytics::cross_sell`]) always
    /// compute afresh.
    pub fn with_snapshot_max_age(self, age: chrono::Duration) -> Self {
        self.configure(|e| e.snapshot_max_age = age)
    }

    /// Replaces the clock (tests, demos and SLA timers use a [`crate::ManualClock`]).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.configure(|e| e.clock = clock)
    }

    /// Sets the country assumed for phone numbers written without an international prefix.
    pub fn with_default_region(self, region: &str) -> Result<Self> {
        let phones = crate::validate::PhoneRules::for_region(region)?;
        Ok(self.configure(|e| e.phones = phones))
    }

    /// The current instant of the CRM's clock, to the microsecond (what storage keeps, so a record
    /// returned by a write equals the record read back).
    pub fn now(&self) -> DateTime<Utc> {
        self.engine.now()
    }

    /// The clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.engine.clock.clone()
    }

    /// Forgets the in-memory configuration of every tenant, so the next call reloads it. Needed only
    /// when another process changed users, roles or custom fields in the same database file.
    pub fn reload_configuration(&self) {
        self.engine.reload_configuration()
    }

    /// Opens a session: `ctx`'s user acting in `ctx`'s tenant. An unknown or deactivated user is
    /// refused (`PermissionDenied`, rule `unknown_user` or `inactive_user`). The session checks the
    /// user's current rights on every call, so a role changed after it was opened applies at once.
    pub fn session(&self, ctx: &Context) -> Result<Session> {
        let cache = self.engine.tenant_cache(&ctx.tenant)?;
        principal_in(&cache, ctx)?;
        Ok(Session {
            engine: self.engine.clone(),
            ctx: ctx.clone(),
        })
    }

    /// Creates a tenant with its first user, an administrator named `admin_username` holding the
    /// Administrator role, and returns that user's context. `Conflict` (rule `already_bootstrapped`)
    /// when the tenant already has users. A host operation.
    pub fn bootstrap(
        &self,
        tenant: &TenantId,
        admin_username: &str,
        origin: Origin,
    ) -> Result<Context> {
        self.engine.bootstrap(tenant, admin_username, origin)
    }

    /// Takes an online backup of the whole database — every tenant — into a new file while other
    /// users keep working, reporting `(done, total)` progress, and checks the copy's integrity. A
    /// host operation: no tenant role reaches it.
    pub fn backup(&self, dest: &std::path::Path, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
        self.engine.backup(dest, progress)
    }

    /// The storage's own consistency check (SQLite `integrity_check` and foreign keys): empty when
    /// sound. A host operation.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.engine.integrity_check()
    }

    /// Writes the whole of `tenant` to `out` as JSON Lines — every record with every field, the
    /// audit trail and the pending outbox events — for moving the tenant to another database.
    /// `progress` is called with the number of lines written so far. A host operation: nothing is
    /// redacted, so no tenant role reaches it (users export what they may see with
    /// [`Records::export`]).
    pub fn export_tenant(
        &self,
        tenant: &TenantId,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<TransferSummary> {
        self.engine.export_tenant(tenant, out, progress)
    }

    /// Reads an export into this database, whose tenant must be empty (no users, no audit entries):
    /// records keep their ids, versions and history; the audit chain is checked before anything is
    /// committed; everything is one transaction. A host operation. `progress` is called with the
    /// number of lines read so far.
    pub fn import_tenant(
        &self,
        input: &mut dyn BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> Result<TransferSummary> {
        self.engine.import_tenant(input, progress)
    }
}

/// One user acting in one tenant: the door to tenant data. Opened by [`Crm::session`]; cheap to
/// clone; `Send + Sync`.
///
/// Calls are grouped by domain in sub-handles borrowed from the session: [`Session::records`],
/// [`Session::sales`], [`Session::service`], [`Session::analytics`], [`Session::segments`],
/// [`Session::audit`], [`Session::access`] and [`Session::outbox`]; [`Session::transaction`] opens
/// a transaction over several calls. Every call checks the user's current permissions (object
/// permission, record scope, field rules), so a record the user may not read answers `NotFound`
/// as if it did not exist, and a hidden field never leaves the library.
#[derive(Clone)]
pub struct Session {
    engine: Arc<Engine>,
    ctx: Context,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tenant", &self.ctx.tenant)
            .field("user_id", &self.ctx.user_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Who acts: tenant, user and origin.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The tenant acted in.
    pub fn tenant(&self) -> &TenantId {
        &self.ctx.tenant
    }

    /// The acting user.
    pub fn user_id(&self) -> RecordId {
        self.ctx.user_id
    }

    /// The acting user as the access rules see them now (role, policy, teams, territories).
    pub fn principal(&self) -> Result<Arc<Principal>> {
        Ok(self.engine.principal(&self.ctx)?.0)
    }

    /// Whether the acting user administers the tenant (their role may configure roles): what a
    /// binding checks before letting a session act as another user.
    pub fn is_administrator(&self) -> Result<bool> {
        let p = self.principal()?;
        Ok(crate::access::object_decision(&p, Action::Configure, EntityKind::Role).allowed)
    }

    /// The current instant of the CRM's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.engine.now()
    }

    /// The same user acting from another origin (client, address, location), as the audit log
    /// records it.
    pub fn with_origin(&self, origin: Origin) -> Session {
        Session {
            engine: self.engine.clone(),
            ctx: Context {
                origin,
                ..self.ctx.clone()
            },
        }
    }

    /// Opens a transaction: the writes made through it commit together, with their audit entries
    /// and outbox events, when [`Transaction::commit`] is called, and are discarded when it is
    /// rolled back or dropped. It holds the store's writer until then.
    ///
    /// ```
    /// # use crm_core::{fields, Crm, EntityKind, TenantId};
    /// # fn demo(store: impl crm_core::backend::Store + 'static) -> crm_core::Result<()> {
    /// let crm = Crm::new(store);
    /// let admin = crm.bootstrap(&TenantId::new("acme")?, "admin", Default::default())?;
    /// let session = crm.session(&admin)?;
    /// let mut tx = session.transaction()?;
    /// let acme = tx.create(EntityKind::Account, fields! { "name" => "ACME Srl" })?;
    /// tx.create(
    ///     EntityKind::Contact,
    ///     fields! { "last_name" => "Rossi", "account_id" => acme.meta.id },
    /// )?;
    /// // A failed call undoes only itself; the transaction goes on.
    /// assert!(tx.create(EntityKind::Contact, fields! { "email" => "not-an-email" }).is_err());
    /// assert_eq!(tx.count(EntityKind::Contact, None)?, 1);
    /// tx.commit()?; // both records, their audit entries and events, at once
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction(&self) -> Result<Transaction<'_>> {
        self.engine.transaction(&self.ctx)
    }

    /// A transaction that owns what it needs and runs on a thread of its own (see
    /// [`OwnedTransaction`]): for hosts that cannot keep a borrow.
    pub fn owned_transaction(&self) -> Result<OwnedTransaction> {
        OwnedTransaction::open(self)
    }

    /// Records of every kind.
    pub fn records(&self) -> Records<'_> {
        Records { session: self }
    }

    /// The sales process.
    pub fn sales(&self) -> Sales<'_> {
        Sales { session: self }
    }

    /// The service process.
    pub fn service(&self) -> Service<'_> {
        Service { session: self }
    }

    /// Analytics.
    pub fn analytics(&self) -> Analytics<'_> {
        Analytics { session: self }
    }

    /// Segments.
    pub fn segments(&self) -> Segments<'_> {
        Segments { session: self }
    }

    /// History and audit.
    pub fn audit(&self) -> Audit<'_> {
        Audit { session: self }
    }

    /// Access administration.
    pub fn access(&self) -> AccessAdmin<'_> {
        AccessAdmin { session: self }
    }

    /// The outbox.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox { session: self }
    }
}

/// Records of every kind: read, list, count, phone lookup, export, create, change, trash, restore, purge, merge, follow. Borrowed from a [`Session`] by [`Session::records`].
#[derive(Debug, Clone, Copy)]
pub struct Records<'s> {
    session: &'s Session,
}

impl Records<'_> {
    /// One record by id. A record the user may not read answers `NotFound`, as if it did not exist.
    /// Records in the trash are returned too (their `deleted_at` is set).
    pub fn get(&self, kind: EntityKind, id: RecordId) -> Result<Record> {
        self.session.engine.get(&self.session.ctx, kind, id)
    }

    /// A page of the records of `kind` the user may read, filtered and sorted as asked, paged with a
    /// keyset cursor: page 1 000 costs what page 1 costs.
    pub fn list(&self, kind: EntityKind, req: &ListRequest) -> Result<Page<Record>> {
        self.session.engine.list(&self.session.ctx, kind, req)
    }

    /// How many records of `kind` matching `filter` the user may read.
    pub fn count(&self, kind: EntityKind, filter: Option<&Filter>) -> Result<u64> {
        self.session.engine.count(&self.session.ctx, kind, filter)
    }

    /// Records of `kind` whose phone fields match `phone`, written in any format: the caller-id lookup.
    /// Looks in `phone` and, for contacts, `mobile`.
    pub fn find_by_phone(&self, kind: EntityKind, phone: &str) -> Result<Vec<Record>> {
        self.session
            .engine
            .find_by_phone(&self.session.ctx, kind, phone)
    }

    /// Every record of `kind` matching `filter` that the user may export, with only `columns` (all
    /// visible fields when `None`), passed to `sink` one at a time, so memory does not grow with the
    /// number of records. Asking for a hidden column is refused. Returns how many were exported.
    pub fn export(
        &self,
        kind: EntityKind,
        filter: Option<&Filter>,
        columns: Option<&[&str]>,
        sink: &mut dyn FnMut(Record) -> Result<()>,
    ) -> Result<u64> {
        self.session
            .engine
            .export(&self.session.ctx, kind, filter, columns, sink)
    }

    /// Creates a record. Fields are validated and normalised (phones to E.164, e-mails lower-cased);
    /// custom fields are named `custom.<name>`.
    pub fn create(&self, kind: EntityKind, new: impl Into<NewRecord>) -> Result<Record> {
        self.session.engine.create(&self.session.ctx, kind, new)
    }

    /// Creates many records of one type in one transaction: all of them or, if one is invalid, none
    /// (the error names the row as `rows[i].field`).
    pub fn create_many(&self, kind: EntityKind, rows: Vec<NewRecord>) -> Result<Vec<Record>> {
        self.session
            .engine
            .create_many(&self.session.ctx, kind, rows)
    }

    /// Changes fields of a record. `expected_version` is the version the caller read: if the record
    /// changed since, the update is a `Conflict` and nothing is written. Setting a field to `Null`
    /// clears it. Writing a hidden or read-only field refuses the whole update.
    pub fn update(
        &self,
        kind: EntityKind,
        id: RecordId,
        expected_version: i64,
        changes: Fields,
    ) -> Result<Record> {
        self.session
            .engine
            .update(&self.session.ctx, kind, id, expected_version, changes)
    }

    /// Moves a record to the trash (a soft delete, recorded). `expected_version`, when given, guards
    /// against deleting a record changed since it was read.
    pub fn delete(
        &self,
        kind: EntityKind,
        id: RecordId,
        expected_version: Option<i64>,
    ) -> Result<()> {
        self.session
            .engine
            .delete(&self.session.ctx, kind, id, expected_version)
    }

    /// Brings a record back from the trash (recorded). Today's validation rules apply to it.
    pub fn restore(&self, kind: EntityKind, id: RecordId) -> Result<Record> {
        self.session.engine.restore(&self.session.ctx, kind, id)
    }

    /// Removes a record in the trash for good. The audit log keeps its history and records the purge.
    pub fn purge(&self, kind: EntityKind, id: RecordId, reason: &str) -> Result<()> {
        self.session
            .engine
            .purge(&self.session.ctx, kind, id, reason)
    }

    /// Merges `duplicate` into `keep` (both of `kind`: account, contact or lead). Fields empty on
    /// `keep` take the duplicate's values — not fields hidden from the user (left as they are);
    /// a read-only field that would be filled refuses the merge (`PermissionDenied`). References to
    /// the duplicate move to `keep` on the records the user may change (the others keep pointing at
    /// the duplicate); the duplicate is moved to the trash. The user needs update on `keep` and
    /// delete on the duplicate; the moved references are part of the merge and recorded with it.
    pub fn merge(
        &self,
        kind: EntityKind,
        keep: RecordId,
        keep_version: i64,
        duplicate: RecordId,
    ) -> Result<MergeOutcome> {
        self.session
            .engine
            .merge(&self.session.ctx, kind, keep, keep_version, duplicate)
    }

    /// Follows a record the user may read: its later changes produce a `notification` event addressed
    /// to the user. Following twice is harmless. Returns the Follow record.
    pub fn follow(&self, kind: EntityKind, id: RecordId) -> Result<Record> {
        self.session.engine.follow(&self.session.ctx, kind, id)
    }

    /// Stops following a record; `false` if the user was not following it.
    pub fn unfollow(&self, kind: EntityKind, id: RecordId) -> Result<bool> {
        self.session.engine.unfollow(&self.session.ctx, kind, id)
    }

    /// The users following a record the user may read.
    pub fn followers(&self, kind: EntityKind, id: RecordId) -> Result<Vec<RecordId>> {
        self.session.engine.followers(&self.session.ctx, kind, id)
    }
}

/// The sales process: lead lifecycle and conversion, opportunity stages, quotes and their approval, the forecast and the funnel. Borrowed from a [`Session`] by [`Session::sales`].
#[derive(Debug, Clone, Copy)]
pub struct Sales<'s> {
    session: &'s Session,
}

impl Sales<'_> {
    /// Moves a lead along its lifecycle (`contacted`, `qualified`, `disqualified` with a reason in
    /// `comment`). Converting is [`Sales::convert_lead`].
    pub fn transition_lead(
        &self,
        id: RecordId,
        expected_version: i64,
        to: &str,
        comment: Option<&str>,
    ) -> Result<Record> {
        self.session
            .engine
            .transition_lead(&self.session.ctx, id, expected_version, to, comment)
    }

    /// Disqualifies a lead; the reason is required (`reason_required`).
    pub fn disqualify_lead(
        &self,
        id: RecordId,
        expected_version: i64,
        reason: &str,
    ) -> Result<Record> {
        self.session
            .engine
            .disqualify_lead(&self.session.ctx, id, expected_version, reason)
    }

    /// Converts a qualified lead, atomically: creates (or links) the account, creates a contact with
    /// the lead's name, e-mail, phone and country, and an opportunity in the pipeline's first stage;
    /// the lead becomes `converted` and points at all three.
    pub fn convert_lead(
        &self,
        id: RecordId,
        expected_version: i64,
        opts: ConvertLead,
    ) -> Result<Conversion> {
        self.session
            .engine
            .convert_lead(&self.session.ctx, id, expected_version, opts)
    }

    /// Moves an opportunity to another stage of its pipeline, checking the stage's guards (allowed
    /// moves, roles, required fields, a lost reason). Entering a stage copies its probability and
    /// forecast category; a won or lost stage sets `closed_at`.
    #[allow(clippy::too_many_arguments)] // the call's own arguments, as the facade takes them
    pub fn move_opportunity(
        &self,
        id: RecordId,
        expected_version: i64,
        stage: &str,
        comment: Option<&str>,
        lost_reason: Option<&str>,
    ) -> Result<Record> {
        self.session.engine.move_opportunity(
            &self.session.ctx,
            id,
            expected_version,
            stage,
            comment,
            lost_reason,
        )
    }

    /// Submits a draft quote. If an active approval rule triggers (a line discount above
    /// `max_discount_percent`, a total above `max_total`, or `always`), it waits for approval;
    /// otherwise it is approved at once (and sent, if `auto_send`).
    pub fn submit_quote(
        &self,
        id: RecordId,
        expected_version: i64,
        comment: Option<&str>,
    ) -> Result<Record> {
        self.session
            .engine
            .submit_quote(&self.session.ctx, id, expected_version, comment)
    }

    /// Approves a quote waiting for approval. The approver needs the capability `approve_quotes`
    /// (`role`) and may not be its author or submitter (`same_person`). An `auto_send` quote is sent in
    /// the same transaction.
    pub fn approve_quote(
        &self,
        id: RecordId,
        expected_version: i64,
        comment: Option<&str>,
    ) -> Result<Record> {
        self.session
            .engine
            .approve_quote(&self.session.ctx, id, expected_version, comment)
    }

    /// Sends an approved quote: refused with `approval_missing` unless it is approved. The address is
    /// `email_to`, else the contact's, else the lead's e-mail; an `email.requested` event goes to the
    /// outbox for [`Outbox::deliver_emails`].
    pub fn send_quote(&self, id: RecordId, expected_version: i64) -> Result<Record> {
        self.session
            .engine
            .send_quote(&self.session.ctx, id, expected_version)
    }

    /// Rejects a quote: one waiting for approval (by an approver: capability `approve_quotes`), or a
    /// sent one (the customer declined). The reason is required.
    pub fn reject_quote(
        &self,
        id: RecordId,
        expected_version: i64,
        reason: &str,
    ) -> Result<Record> {
        self.session
            .engine
            .reject_quote(&self.session.ctx, id, expected_version, reason)
    }

    /// Records the customer's acceptance of a sent quote and, if asked, creates an order copying its
    /// account, contact, currency and lines. Returns the quote and the order.
    pub fn accept_quote(
        &self,
        id: RecordId,
        expected_version: i64,
        create_order: bool,
    ) -> Result<(Record, Option<Record>)> {
        self.session
            .engine
            .accept_quote(&self.session.ctx, id, expected_version, create_order)
    }

    /// Marks an approved or sent quote expired.
    pub fn expire_quote(&self, id: RecordId, expected_version: i64) -> Result<Record> {
        self.session
            .engine
            .expire_quote(&self.session.ctx, id, expected_version)
    }

    /// The weighted pipeline of the open opportunities (no `closed_at`) the user may read, by
    /// expected-close month and forecast category. Amounts in several currencies need `rates`.
    pub fn forecast(&self, rates: Option<&RateTable>) -> Result<Vec<ForecastRow>> {
        self.session.engine.forecast(&self.session.ctx, rates)
    }

    /// The funnel of a pipeline over the opportunities the user may read (created in the period,
    /// when given): for each stage, how many reached it or a later stage — from the recorded stage
    /// moves, so an opportunity that was in a stage and went back still counts as having reached
    /// it — the stage-to-stage conversion rates, the win rate and the average cycle time.
    /// Refuses (naming the field) when `stage` or `closed_at` is hidden from the user.
    pub fn funnel(&self, opts: &FunnelOptions) -> Result<Funnel> {
        self.session.engine.funnel(&self.session.ctx, opts)
    }
}

/// The service side: case lifecycle, SLA checks, task reminders. Borrowed from a [`Session`] by [`Session::service`].
#[derive(Debug, Clone, Copy)]
pub struct Service<'s> {
    session: &'s Session,
}

impl Service<'_> {
    /// Moves a case along its lifecycle. The first move out of `new`/`assigned` sets
    /// `first_responded_at`; `resolved` sets `resolved_at`, `closed` sets `closed_at`; reopening clears
    /// both.
    pub fn transition_case(
        &self,
        id: RecordId,
        expected_version: i64,
        to: &str,
        comment: Option<&str>,
    ) -> Result<Record> {
        self.session
            .engine
            .transition_case(&self.session.ctx, id, expected_version, to, comment)
    }

    /// Checks the SLA timers of the open cases the user may update, against the CRM's clock: a case
    /// past its first-response due time without a response, or past its resolution due time, is marked
    /// `sla_breached` and gets one `case.sla_breached` event (once per case). Returns the cases marked.
    pub fn check_slas(&self) -> Result<Vec<RecordId>> {
        self.session.engine.check_slas(&self.session.ctx)
    }

    /// Open tasks (activities of type `task`, not completed) due before `until` that the user may
    /// read, earliest first.
    pub fn due_tasks(&self, until: DateTime<Utc>) -> Result<Vec<Record>> {
        self.session.engine.due_tasks(&self.session.ctx, until)
    }

    /// Emits one `task.due` event for each open task due by now (among those the user may update) that
    /// has not been reminded yet, and sets its `reminded_at`. Returns how many reminders fired.
    pub fn fire_reminders(&self) -> Result<usize> {
        self.session.engine.fire_reminders(&self.session.ctx)
    }
}

/// Analytical CRM: RFM, lifecycles, profit, value indices, KPIs, the screen pop and cross-selling. Borrowed from a [`Session`] by [`Session::analytics`].
#[derive(Debug, Clone, Copy)]
pub struct Analytics<'s> {
    session: &'s Session,
}

impl Analytics<'_> {
    /// RFM scores of the accounts the user may read that have orders (in the window): quintiles with
    /// SQL `NTILE(5)` semantics, named segments from the rule table. Accounts without orders in the
    /// window are left out. See `docs/segments.md`.
    pub fn rfm(&self, opts: &RfmOptions) -> Result<Vec<RfmRow>> {
        self.session.engine.rfm(&self.session.ctx, opts)
    }

    /// The lifecycle stage of every account the user may read (matching `filter`), from the
    /// maintained first/last order instants.
    pub fn lifecycles(
        &self,
        filter: Option<Filter>,
        thresholds: &LifecycleThresholds,
    ) -> Result<Vec<(RecordId, Lifecycle)>> {
        self.session
            .engine
            .lifecycles(&self.session.ctx, filter, thresholds)
    }

    /// Revenue, cost and margin of the orders the user may read placed in `[from, to)` (not
    /// cancelled), by customer segment × product, largest margin first (ties: segment, product).
    pub fn profit(&self, opts: &ProfitOptions) -> Result<Vec<ProfitRow>> {
        self.session.engine.profit(&self.session.ctx, opts)
    }

    /// Supervision figures per owner over `[from, to)`, from the records the user may read (a type
    /// they may not read adds nothing): one row per owner with any figure, by user id. See [`Kpi`]
    /// for each figure and `docs/segments.md`. Amounts in several currencies need `rates`.
    pub fn kpis(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rates: Option<&RateTable>,
    ) -> Result<Vec<Kpi>> {
        self.session.engine.kpis(&self.session.ctx, from, to, rates)
    }

    /// [`Analytics::kpis`] rolled up per team: each team's row adds up the figures of its members (a
    /// user in two teams counts in both); rates and averages are recomputed from the sums. One row
    /// per team with a member with any figure, by team id.
    pub fn team_kpis(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rates: Option<&RateTable>,
    ) -> Result<Vec<Kpi>> {
        self.session
            .engine
            .team_kpis(&self.session.ctx, from, to, rates)
    }

    /// The caller-id screen: who is calling (accounts and contacts with that phone), and for a single
    /// match its contacts, recent orders, open opportunities, quotes, open cases, last interactions,
    /// RFM segment, lifecycle and ERP facts — all as the user may see them.
    pub fn screen_pop(&self, phone: &str, facts: Option<&dyn ErpFacts>) -> Result<ScreenPop> {
        self.session
            .engine
            .screen_pop(&self.session.ctx, phone, facts)
    }

    /// Products often bought together with the ones `account` bought, which it has not bought:
    /// association rules over the order baskets (non-cancelled orders) the user may read, best lift
    /// first (ties: confidence, then product id), at most `limit`. An account the user may not read
    /// is `NotFound`.
    pub fn cross_sell(&self, account: RecordId, limit: usize) -> Result<Vec<CrossSell>> {
        self.session
            .engine
            .cross_sell(&self.session.ctx, account, limit)
    }

    /// Value indices for the accounts the user may read (one row each, by account id): historic and
    /// predicted lifetime value, churn risk from the recency trend, CSAT and NPS from survey
    /// activities (`activity_type` = `survey` with a `survey_type` and a `score`, linked by
    /// `account_id`; none when the user may not read activities). Refuses (naming the field) when
    /// an order statistic of the account is hidden from the user.
    pub fn customer_values(&self, opts: &ValueOptions) -> Result<Vec<CustomerValue>> {
        self.session.engine.customer_values(&self.session.ctx, opts)
    }
}

/// Segments: the filter language, counts, members and maintained membership. Borrowed from a [`Session`] by [`Session::segments`].
#[derive(Debug, Clone, Copy)]
pub struct Segments<'s> {
    session: &'s Session,
}

impl Segments<'_> {
    /// Parses filter-language text over `kind` into a [`Filter`], checked against the schema and the
    /// user's field rules. Errors are `InvalidQuery` naming the field, with the column in the message.
    /// Amounts without a currency are in `currency`.
    pub fn parse(
        &self,
        kind: EntityKind,
        text: &str,
        currency: Option<Currency>,
    ) -> Result<Filter> {
        self.session
            .engine
            .parse_filter(&self.session.ctx, kind, text, currency)
    }

    /// The entity type and filter of a segment the user may read (a static segment's filter names
    /// only the members the user may read).
    pub fn filter(&self, id: RecordId) -> Result<(EntityKind, Filter)> {
        self.session.engine.segment_filter(&self.session.ctx, id)
    }

    /// How many records the user may read are in the segment now (dynamic: evaluated now).
    pub fn count(&self, id: RecordId) -> Result<u64> {
        self.session.engine.segment_count(&self.session.ctx, id)
    }

    /// A page of the segment's members the user may read; `req.filter` narrows further, sort and
    /// keyset paging as in [`Records::list`].
    pub fn members(&self, id: RecordId, req: &ListRequest) -> Result<Page<Record>> {
        self.session
            .engine
            .segment_members(&self.session.ctx, id, req)
    }

    /// Materialises a dynamic segment's members (those the acting user may read) into `member_ids`,
    /// with `member_count` and `last_refreshed_at`, recorded as an audited update; reports who entered
    /// and left since the previous refresh. A static segment's members are only recounted. The
    /// stored members are everyone's view of the segment, so only a user who reads every record of
    /// its type (with none of its fields hidden) refreshes it; others get `PermissionDenied` (rule
    /// `derived_scope`) and use [`Segments::count`] and [`Segments::members`].
    pub fn refresh(&self, id: RecordId) -> Result<SegmentDiff> {
        self.session.engine.refresh_segment(&self.session.ctx, id)
    }
}

/// History and audit: versions, diffs, restores, supervision of a user's activity, chain verification. Borrowed from a [`Session`] by [`Session::audit`].
#[derive(Debug, Clone, Copy)]
pub struct Audit<'s> {
    session: &'s Session,
}

impl Audit<'_> {
    /// The history of a record, newest first, `limit` entries a page (default 50). Fields hidden from
    /// the reader appear in no entry.
    pub fn history(
        &self,
        kind: EntityKind,
        id: RecordId,
        before_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<HistoryPage> {
        self.session
            .engine
            .history(&self.session.ctx, kind, id, before_seq, limit)
    }

    /// The record as it was at instant `at`, rebuilt from its history; `None` if it did not exist then
    /// (or was in the trash). Hidden fields are left out.
    pub fn as_of(
        &self,
        kind: EntityKind,
        id: RecordId,
        at: DateTime<Utc>,
    ) -> Result<Option<Record>> {
        self.session.engine.as_of(&self.session.ctx, kind, id, at)
    }

    /// The record at `version`, rebuilt from its history (`None` if there was no such version).
    pub fn version(&self, kind: EntityKind, id: RecordId, version: i64) -> Result<Option<Record>> {
        self.session
            .engine
            .version(&self.session.ctx, kind, id, version)
    }

    /// Field-level differences between two versions of a record (old = `from`, new = `to`).
    pub fn diff_versions(
        &self,
        kind: EntityKind,
        id: RecordId,
        from: i64,
        to: i64,
    ) -> Result<Vec<FieldChange>> {
        self.session
            .engine
            .diff_versions(&self.session.ctx, kind, id, from, to)
    }

    /// Restores the field values a record had at `version`, as a new, recorded change that must pass
    /// today's validation. Lifecycle and computed fields (status, totals) keep their current values:
    /// states change only through their transitions. Fields the user may not write are left as they are
    /// today only if unchanged; otherwise the restore is refused.
    pub fn restore_version(
        &self,
        kind: EntityKind,
        id: RecordId,
        expected_version: i64,
        version: i64,
    ) -> Result<Record> {
        self.session
            .engine
            .restore_version(&self.session.ctx, kind, id, expected_version, version)
    }

    /// What `user_id` did between `from` and `until`, oldest first: the supervisor's activity log.
    /// Asked by an administrator, the user themselves, or one of their managers.
    pub fn user_activity(
        &self,
        user_id: RecordId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: Option<u32>,
    ) -> Result<Vec<HistoryEntry>> {
        self.session
            .engine
            .user_activity(&self.session.ctx, user_id, from, until, limit)
    }

    /// Checks the tenant's audit hash chain and reports the first entry that was altered, removed or
    /// reordered. For administrators.
    pub fn verify(&self) -> Result<AuditVerification> {
        self.session.engine.verify_audit(&self.session.ctx)
    }

    /// The recorded transitions of a record, oldest first, with the time spent in each state. The
    /// user must be able to read the record.
    pub fn stage_history(&self, kind: EntityKind, id: RecordId) -> Result<Vec<StageEntry>> {
        self.session
            .engine
            .stage_history(&self.session.ctx, kind, id)
    }
}

/// Access administration: sharing, explanations, access reviews. Borrowed from a [`Session`] by [`Session::access`].
#[derive(Debug, Clone, Copy)]
pub struct AccessAdmin<'s> {
    session: &'s Session,
}

impl AccessAdmin<'_> {
    /// Shares a record with a user, a team or a partner organisation, for reading or editing, until
    /// an optional instant. Allowed to the record's owner and to users who may configure shares.
    #[allow(clippy::too_many_arguments)] // the call's own arguments, as the facade takes them
    pub fn share(
        &self,
        kind: EntityKind,
        id: RecordId,
        grantee: Grantee,
        edit: bool,
        until: Option<DateTime<Utc>>,
    ) -> Result<Record> {
        self.session
            .engine
            .share(&self.session.ctx, kind, id, grantee, edit, until)
    }

    /// Revokes a share (moves it to the trash, recorded). Allowed to whoever made it and to admins.
    pub fn unshare(&self, share_id: RecordId) -> Result<()> {
        self.session.engine.unshare(&self.session.ctx, share_id)
    }

    /// Says whether `user_id` may take `action` on a record and which rule decided, in words an
    /// administrator understands. Asked by an administrator, or by a user about themselves.
    pub fn explain(
        &self,
        user_id: RecordId,
        action: Action,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Decision> {
        self.session
            .engine
            .explain(&self.session.ctx, user_id, action, kind, id)
    }

    /// Every active user of the tenant and whether they can read a record, with the deciding rule.
    /// For administrators; a record the caller may not read is `NotFound` first.
    pub fn who_can_read(&self, kind: EntityKind, id: RecordId) -> Result<Vec<AccessReview>> {
        self.session
            .engine
            .who_can_read(&self.session.ctx, kind, id)
    }

    /// The roles whose holders can read field `field` of `kind` (built-in, or `custom.<name>`), with
    /// `read` or `read_only`; roles that cannot read the type or have the field hidden are left out.
    pub fn roles_reading_field(
        &self,
        kind: EntityKind,
        field: &str,
    ) -> Result<Vec<(RecordId, String, String)>> {
        self.session
            .engine
            .roles_reading_field(&self.session.ctx, kind, field)
    }
}

/// The transactional outbox: pending events, acknowledgements, e-mail delivery. Borrowed from a [`Session`] by [`Session::outbox`].
#[derive(Debug, Clone, Copy)]
pub struct Outbox<'s> {
    session: &'s Session,
}

impl Outbox<'_> {
    /// Undelivered outbox events after `after_seq` about records the user may read, oldest first (at
    /// most `limit`). Delivery is at-least-once: events stay pending until acknowledged. For
    /// administrators and integration users (capability `integration`); an integration user with a
    /// narrow scope drains only its part of the outbox.
    pub fn pending(&self, after_seq: u64, limit: u32) -> Result<Vec<Event>> {
        self.session
            .engine
            .pending_events(&self.session.ctx, after_seq, limit)
    }

    /// Marks outbox events delivered — those about records the user may read; returns how many were
    /// pending.
    pub fn ack(&self, seqs: &[u64]) -> Result<u64> {
        self.session.engine.ack_events(&self.session.ctx, seqs)
    }

    /// Delivers the pending `email.requested` events through `mailer`, oldest first, and acknowledges
    /// each one delivered. A failing send leaves its event pending for the next call (at-least-once);
    /// the others are still tried. Returns how many were delivered. Needs the outbox permission
    /// (administrators, capability `integration`).
    pub fn deliver_emails(&self, mailer: &dyn Mailer) -> Result<usize> {
        self.session
            .engine
            .deliver_emails(&self.session.ctx, mailer)
    }
}
