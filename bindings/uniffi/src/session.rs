//! `CrmHandle` (one per database: the host's object) and `Session` (one acting user in one tenant,
//! wrapping a core [`crm_core::Session`]). Every method converts its arguments, forwards to the core
//! inside [`guard`], and converts the answer back. Every method blocks on SQLite I/O.

use std::collections::HashMap;
use std::sync::Arc;

use crm_core::{
    Context as CoreContext, Crm as CoreCrm, ManualClock, NewRecord as CoreNewRecord,
    Session as CoreSession,
};
use crm_store::SqliteStore;

use crate::error::{guard, CrmError};
use crate::process::{FfiEmailMessage, Mailer};
use crate::types::{
    action, core_fields, filter, instant, kind, list_request, micros, record_id, signed, tenant,
    unsigned32, unsigned64, FfiAccessReview, FfiAuditVerification, FfiDecision, FfiEvent,
    FfiFieldChange, FfiGrantee, FfiHistoryPage, FfiListRequest, FfiOrigin, FfiPage, FfiRecord,
    FfiRoleFieldAccess, FfiValue,
};

/// One open database: the host's object. Thread-safe: share it between threads and sessions. Host
/// operations (bootstrap, backup, integrity check, tenant export and import) are here; tenant work
/// goes through a [`Session`].
#[derive(Debug, uniffi::Object)]
pub struct CrmHandle {
    crm: CoreCrm,
    /// The manual clock, when the handle was opened with one.
    manual: Option<Arc<ManualClock>>,
}

fn build(
    store: SqliteStore,
    default_region: Option<String>,
    clock_start: Option<i64>,
) -> Result<Arc<CrmHandle>, CrmError> {
    let mut crm = CoreCrm::new(store);
    if let Some(region) = default_region {
        crm = crm.with_default_region(&region)?;
    }
    let manual = match clock_start {
        Some(at) => {
            let clock = Arc::new(ManualClock::new(instant("start_micros", at)?));
            crm = crm.with_clock(clock.clone());
            Some(clock)
        }
        None => None,
    };
    Ok(Arc::new(CrmHandle { crm, manual }))
}

#[uniffi::export]
impl CrmHandle {
    /// Opens (or creates) the database file at `path`. `default_region` is the ISO country assumed
    /// for phone numbers without an international prefix (Italy when absent).
    #[uniffi::constructor(default(default_region = None))]
    pub fn open(path: String, default_region: Option<String>) -> Result<Arc<Self>, CrmError> {
        guard(|| build(SqliteStore::open(&path)?, default_region, None))
    }

    /// A private database in memory, gone when the handle is.
    #[uniffi::constructor(default(default_region = None))]
    pub fn open_in_memory(default_region: Option<String>) -> Result<Arc<Self>, CrmError> {
        guard(|| build(SqliteStore::open_in_memory()?, default_region, None))
    }

    /// Like [`CrmHandle::open`], but the CRM runs on a manual clock showing `start_micros` (UTC epoch
    /// microseconds), moved only by `advance_clock` and `set_clock`: for tests, demos and SLA drills.
    #[uniffi::constructor]
    pub fn open_with_clock(
        path: String,
        default_region: Option<String>,
        start_micros: i64,
    ) -> Result<Arc<Self>, CrmError> {
        guard(|| {
            build(
                SqliteStore::open(&path)?,
                default_region,
                Some(start_micros),
            )
        })
    }

    /// Like [`CrmHandle::open_in_memory`], on a manual clock showing `start_micros`.
    #[uniffi::constructor]
    pub fn open_in_memory_with_clock(
        default_region: Option<String>,
        start_micros: i64,
    ) -> Result<Arc<Self>, CrmError> {
        guard(|| {
            build(
                SqliteStore::open_in_memory()?,
                default_region,
                Some(start_micros),
            )
        })
    }

    /// The CRM's current time, UTC epoch microseconds.
    pub fn now(&self) -> i64 {
        micros(self.crm.now())
    }

    /// Moves the manual clock forward by `seconds`; `Validation` (rule `system_clock`) when the handle
    /// runs on the system clock.
    pub fn advance_clock(&self, seconds: i64) -> Result<(), CrmError> {
        guard(|| {
            self.manual_clock()?
                .advance(crm_core::chrono::Duration::seconds(seconds));
            Ok(())
        })
    }

    /// Sets the manual clock to `at_micros`; `Validation` (rule `system_clock`) on the system clock.
    pub fn set_clock(&self, at_micros: i64) -> Result<(), CrmError> {
        guard(|| {
            self.manual_clock()?.set(instant("at_micros", at_micros)?);
            Ok(())
        })
    }

    /// Sets up an empty tenant (an `Administrator` role and its first user) and returns the
    /// administrator's session. Refused when the tenant already has users.
    #[uniffi::method(default(origin = None))]
    pub fn bootstrap(
        self: Arc<Self>,
        tenant_id: String,
        admin_username: String,
        origin: Option<FfiOrigin>,
    ) -> Result<Arc<Session>, CrmError> {
        guard(|| {
            let t = tenant(&tenant_id)?;
            let ctx = self
                .crm
                .bootstrap(&t, &admin_username, origin.unwrap_or_default().into())?;
            Session::open(&self, &ctx)
        })
    }

    /// A session for an existing user of a tenant (the host has authenticated them).
    /// `PermissionDenied` (rule `unknown_user` or `inactive_user`) when the tenant has no such
    /// user or the user is deactivated.
    #[uniffi::method(default(origin = None))]
    pub fn session(
        self: Arc<Self>,
        tenant_id: String,
        user_id: String,
        origin: Option<FfiOrigin>,
    ) -> Result<Arc<Session>, CrmError> {
        guard(|| {
            let mut ctx = CoreContext::new(tenant(&tenant_id)?, record_id(&user_id, "user_id")?);
            ctx.origin = origin.unwrap_or_default().into();
            Session::open(&self, &ctx)
        })
    }

    /// Forgets cached configuration (users, roles, custom fields) so the next call reloads it; needed
    /// only when another process changed them in the same file.
    pub fn reload_configuration(&self) {
        self.crm.reload_configuration();
    }
}

impl CrmHandle {
    pub(crate) fn core(&self) -> &CoreCrm {
        &self.crm
    }

    fn manual_clock(&self) -> Result<&ManualClock, CrmError> {
        self.manual.as_deref().ok_or_else(|| {
            CrmError::validation(
                "clock",
                "system_clock",
                "this handle runs on the system clock: open it with a manual clock",
            )
        })
    }
}

/// One user acting in one tenant from one origin: a core [`crm_core::Session`]. Thread-safe; cheap
/// to create.
#[derive(Debug, uniffi::Object)]
pub struct Session {
    /// The handle the session was opened from (for `as_user` and the transaction's handle check).
    pub(crate) handle: Arc<CrmHandle>,
    pub(crate) session: CoreSession,
}

impl Session {
    /// Opens a core session for `ctx` on `handle`'s CRM; refused for an unknown or deactivated user.
    fn open(handle: &Arc<CrmHandle>, ctx: &CoreContext) -> Result<Arc<Session>, CrmError> {
        Ok(Arc::new(Session {
            handle: handle.clone(),
            session: handle.crm.session(ctx)?,
        }))
    }
}

/// A host-side receiver of exported records, called once per record.
#[uniffi::export(with_foreign)]
pub trait ExportSink: Send + Sync {
    /// Takes one record; raising an error stops the export.
    fn accept(&self, record: FfiRecord) -> Result<(), CrmError>;
}

#[uniffi::export]
impl Session {
    /// The tenant.
    pub fn tenant_id(&self) -> String {
        self.session.tenant().to_string()
    }

    /// The acting user's id.
    pub fn user_id(&self) -> String {
        self.session.user_id().to_string()
    }

    /// The same origin and tenant, acting as another user: for administrators (a session of anyone
    /// else gets `PermissionDenied`, rule `not_an_administrator`; hosts open other users' sessions
    /// with `CrmHandle.session`). `PermissionDenied` (rule `unknown_user` or `inactive_user`) as for
    /// `CrmHandle.session`.
    pub fn as_user(&self, user_id: String) -> Result<Arc<Session>, CrmError> {
        guard(|| {
            if !self.session.is_administrator()? {
                return Err(crm_core::CrmError::permission_denied(
                    "act_as",
                    "user",
                    "not_an_administrator",
                )
                .into());
            }
            let ctx = self
                .session
                .context()
                .as_user(record_id(&user_id, "user_id")?);
            Session::open(&self.handle, &ctx)
        })
    }

    /// Creates a record; custom fields are named `custom.<name>`. `owner_id` defaults to the acting user.
    #[uniffi::method(default(owner_id = None))]
    pub fn create(
        &self,
        kind_name: String,
        fields: HashMap<String, FfiValue>,
        owner_id: Option<String>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let new = CoreNewRecord {
                fields: core_fields(fields)?,
                owner_id: owner_id.map(|o| record_id(&o, "owner_id")).transpose()?,
            };
            Ok(self
                .session
                .records()
                .create(kind(&kind_name)?, new)?
                .into())
        })
    }

    /// Creates many records of one type in one transaction: all or none.
    pub fn create_many(
        &self,
        kind_name: String,
        rows: Vec<HashMap<String, FfiValue>>,
    ) -> Result<Vec<FfiRecord>, CrmError> {
        guard(|| {
            let rows = rows
                .into_iter()
                .map(|r| core_fields(r).map(CoreNewRecord::from))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .session
                .records()
                .create_many(kind(&kind_name)?, rows)?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// One record; `NotFound` when it does not exist or the user may not read it.
    pub fn get(&self, kind_name: String, id: String) -> Result<FfiRecord, CrmError> {
        guard(|| {
            Ok(self
                .session
                .records()
                .get(kind(&kind_name)?, record_id(&id, "id")?)?
                .into())
        })
    }

    /// Changes fields; `Conflict` when the record is no longer at `expected_version`.
    pub fn update(
        &self,
        kind_name: String,
        id: String,
        expected_version: i64,
        changes: HashMap<String, FfiValue>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let r = self.session.records().update(
                kind(&kind_name)?,
                record_id(&id, "id")?,
                expected_version,
                core_fields(changes)?,
            )?;
            Ok(r.into())
        })
    }

    /// Moves a record to the trash.
    #[uniffi::method(default(expected_version = None))]
    pub fn delete(
        &self,
        kind_name: String,
        id: String,
        expected_version: Option<i64>,
    ) -> Result<(), CrmError> {
        guard(|| {
            Ok(self.session.records().delete(
                kind(&kind_name)?,
                record_id(&id, "id")?,
                expected_version,
            )?)
        })
    }

    /// Brings a record back from the trash.
    pub fn restore(&self, kind_name: String, id: String) -> Result<FfiRecord, CrmError> {
        guard(|| {
            Ok(self
                .session
                .records()
                .restore(kind(&kind_name)?, record_id(&id, "id")?)?
                .into())
        })
    }

    /// Removes a record in the trash for good (its history stays in the audit log).
    pub fn purge(&self, kind_name: String, id: String, reason: String) -> Result<(), CrmError> {
        guard(|| {
            Ok(self
                .session
                .records()
                .purge(kind(&kind_name)?, record_id(&id, "id")?, &reason)?)
        })
    }

    /// A page of records the user may read, filtered, sorted and keyset-paged.
    pub fn list(&self, kind_name: String, request: FfiListRequest) -> Result<FfiPage, CrmError> {
        guard(|| {
            let req = list_request(request)?;
            let page = self.session.records().list(kind(&kind_name)?, &req)?;
            Ok(FfiPage {
                items: page.items.into_iter().map(Into::into).collect(),
                next: page.next,
            })
        })
    }

    /// How many records match `filter_json` (all readable ones when absent).
    #[uniffi::method(default(filter_json = None))]
    pub fn count(&self, kind_name: String, filter_json: Option<String>) -> Result<i64, CrmError> {
        guard(|| {
            let f = filter(filter_json.as_deref())?;
            Ok(signed(
                self.session
                    .records()
                    .count(kind(&kind_name)?, f.as_ref())?,
            ))
        })
    }

    /// Caller-id lookup: records whose phone fields match `phone` written in any format.
    pub fn find_by_phone(
        &self,
        kind_name: String,
        phone: String,
    ) -> Result<Vec<FfiRecord>, CrmError> {
        guard(|| {
            let out = self
                .session
                .records()
                .find_by_phone(kind(&kind_name)?, &phone)?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// Streams every matching record the user may export to `sink`, one call per record; returns how
    /// many. `columns` limits the fields (all visible ones when absent).
    #[uniffi::method(default(filter_json = None, columns = None))]
    pub fn export(
        &self,
        kind_name: String,
        sink: Arc<dyn ExportSink>,
        filter_json: Option<String>,
        columns: Option<Vec<String>>,
    ) -> Result<i64, CrmError> {
        guard(|| {
            let f = filter(filter_json.as_deref())?;
            let cols: Option<Vec<&str>> = columns
                .as_ref()
                .map(|c| c.iter().map(String::as_str).collect());
            let mut host_error = None;
            let mut deliver = |r: crm_core::Record| match sink.accept(r.into()) {
                Ok(()) => Ok(()),
                Err(e) => {
                    host_error = Some(e);
                    Err(crm_core::CrmError::internal("export stopped by the host"))
                }
            };
            let n = self.session.records().export(
                kind(&kind_name)?,
                f.as_ref(),
                cols.as_deref(),
                &mut deliver,
            );
            match (n, host_error) {
                (_, Some(e)) => Err(e),
                (n, None) => Ok(signed(n?)),
            }
        })
    }

    /// Shares a record with a user, team or partner, for reading (or editing), until an optional
    /// instant (UTC epoch microseconds). Returns the share record.
    #[uniffi::method(default(until = None))]
    pub fn share(
        &self,
        kind_name: String,
        id: String,
        grantee: FfiGrantee,
        edit: bool,
        until: Option<i64>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let until = until.map(|u| instant("until", u)).transpose()?;
            let r = self.session.access().share(
                kind(&kind_name)?,
                record_id(&id, "id")?,
                grantee.try_into()?,
                edit,
                until,
            )?;
            Ok(r.into())
        })
    }

    /// Revokes a share.
    pub fn unshare(&self, share_id: String) -> Result<(), CrmError> {
        guard(|| {
            Ok(self
                .session
                .access()
                .unshare(record_id(&share_id, "share_id")?)?)
        })
    }

    /// Whether `user_id` may take `action_name` (`read`, `update`, …) on a record, and why.
    pub fn explain(
        &self,
        user_id: String,
        action_name: String,
        kind_name: String,
        id: String,
    ) -> Result<FfiDecision, CrmError> {
        guard(|| {
            let d = self.session.access().explain(
                record_id(&user_id, "user_id")?,
                action(&action_name)?,
                kind(&kind_name)?,
                record_id(&id, "id")?,
            )?;
            Ok(d.into())
        })
    }

    /// Every active user and whether they can read a record (administrators).
    pub fn who_can_read(
        &self,
        kind_name: String,
        id: String,
    ) -> Result<Vec<FfiAccessReview>, CrmError> {
        guard(|| {
            let out = self
                .session
                .access()
                .who_can_read(kind(&kind_name)?, record_id(&id, "id")?)?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// The roles whose holders can read `field` of a type.
    pub fn roles_reading_field(
        &self,
        kind_name: String,
        field: String,
    ) -> Result<Vec<FfiRoleFieldAccess>, CrmError> {
        guard(|| {
            let out = self
                .session
                .access()
                .roles_reading_field(kind(&kind_name)?, &field)?;
            Ok(out
                .into_iter()
                .map(|(id, role_name, access)| FfiRoleFieldAccess {
                    role_id: id.to_string(),
                    role_name,
                    access,
                })
                .collect())
        })
    }

    /// A record's history, newest first (who, when, from where, what changed).
    #[uniffi::method(default(before_seq = None, limit = None))]
    pub fn history(
        &self,
        kind_name: String,
        id: String,
        before_seq: Option<i64>,
        limit: Option<i32>,
    ) -> Result<FfiHistoryPage, CrmError> {
        guard(|| {
            let before_seq = before_seq
                .map(|s| unsigned64("before_seq", s))
                .transpose()?;
            let limit = limit.map(|l| unsigned32("limit", l)).transpose()?;
            let p = self.session.audit().history(
                kind(&kind_name)?,
                record_id(&id, "id")?,
                before_seq,
                limit,
            )?;
            Ok(p.into())
        })
    }

    /// The record as it was at `at` (UTC epoch microseconds); `null` if it did not exist then.
    pub fn as_of(
        &self,
        kind_name: String,
        id: String,
        at: i64,
    ) -> Result<Option<FfiRecord>, CrmError> {
        guard(|| {
            let r = self.session.audit().as_of(
                kind(&kind_name)?,
                record_id(&id, "id")?,
                instant("at", at)?,
            )?;
            Ok(r.map(Into::into))
        })
    }

    /// The record at `version`; `null` if there was no such version.
    pub fn version(
        &self,
        kind_name: String,
        id: String,
        version: i64,
    ) -> Result<Option<FfiRecord>, CrmError> {
        guard(|| {
            let r =
                self.session
                    .audit()
                    .version(kind(&kind_name)?, record_id(&id, "id")?, version)?;
            Ok(r.map(Into::into))
        })
    }

    /// Field differences between two versions of a record.
    pub fn diff_versions(
        &self,
        kind_name: String,
        id: String,
        from: i64,
        to: i64,
    ) -> Result<Vec<FfiFieldChange>, CrmError> {
        guard(|| {
            let out = self.session.audit().diff_versions(
                kind(&kind_name)?,
                record_id(&id, "id")?,
                from,
                to,
            )?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// What `user_id` did between two instants (UTC epoch microseconds), oldest first.
    #[uniffi::method(default(limit = None))]
    pub fn user_activity(
        &self,
        user_id: String,
        from: i64,
        until: i64,
        limit: Option<i32>,
    ) -> Result<Vec<crate::types::FfiHistoryEntry>, CrmError> {
        guard(|| {
            let limit = limit.map(|l| unsigned32("limit", l)).transpose()?;
            let out = self.session.audit().user_activity(
                record_id(&user_id, "user_id")?,
                instant("from", from)?,
                instant("until", until)?,
                limit,
            )?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// Checks the tenant's audit hash chain (administrators).
    pub fn verify_audit(&self) -> Result<FfiAuditVerification, CrmError> {
        guard(|| Ok(self.session.audit().verify()?.into()))
    }

    /// Undelivered outbox events after `after_seq`, oldest first.
    pub fn pending_events(&self, after_seq: i64, limit: i32) -> Result<Vec<FfiEvent>, CrmError> {
        guard(|| {
            let (after_seq, limit) = (
                unsigned64("after_seq", after_seq)?,
                unsigned32("limit", limit)?,
            );
            let out = self.session.outbox().pending(after_seq, limit)?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// Marks events delivered; returns how many were pending.
    pub fn ack_events(&self, seqs: Vec<i64>) -> Result<i64, CrmError> {
        guard(|| {
            let seqs = seqs
                .into_iter()
                .map(|s| unsigned64("seqs", s))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(signed(self.session.outbox().ack(&seqs)?))
        })
    }

    /// Glue for hosts: drains up to `limit` pending events of any type, sends one message per event to
    /// `to` through `mailer` (subject `[crm] <event type> <kind> <record id>`, body the event payload JSON)
    /// and acknowledges each event once its message is sent. A failing send stops the drain; the
    /// events sent so far stay acknowledged, the rest stay pending. Returns how many were delivered.
    pub fn deliver_pending_events(
        &self,
        mailer: Arc<dyn Mailer>,
        to: String,
        limit: i32,
    ) -> Result<i64, CrmError> {
        guard(|| {
            let events = self
                .session
                .outbox()
                .pending(0, unsigned32("limit", limit)?)?;
            let mut delivered = 0i64;
            for e in events {
                let message = FfiEmailMessage {
                    to: to.clone(),
                    subject: format!("[crm] {} {} {}", e.event_type, e.kind.name(), e.record_id),
                    body: e.payload.to_string(),
                    record_kind: e.kind.name().to_owned(),
                    record_id: e.record_id.to_string(),
                };
                mailer.send(message)?;
                delivered += signed(self.session.outbox().ack(&[e.seq])?);
            }
            Ok(delivered)
        })
    }
}
