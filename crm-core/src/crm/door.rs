//! The only way the facade reaches the store: a permission-scoped reader, and unscoped reads that
//! must name why they are safe.
//!
//! The [`Door`] owns the store. Its snapshots ([`Snapshot`]) and its writer ([`Writer`]) keep the raw
//! transaction in a private field: facade code reads through [`Snapshot::scoped`] /
//! [`Writer::scoped`], a [`Scoped`] reader that ANDs the acting user's record predicate into every
//! query and answers "not found" for what they may not read — or through `unscoped(Why::…)`, whose
//! every use names one of the few reasons in [`Why`]. A read that forgets the check does not compile:
//! there is no other path to a `ReadTx`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{self, Action, Principal};
use crate::audit::AuditEntry;
use crate::error::{CrmError, Result};
use crate::events::{Event, NewEvent};
use crate::id::{RecordId, TenantId};
use crate::query::{Column, Cond, Liveness, MetaColumn, Op, Query};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::store::{AuditQuery, ReadTx, Store, WriteTx};
use crate::value::{FieldType, Value};

use super::TenantCache;

/// Why a read may look past the acting user's permissions. Every unscoped read names one; each is
/// safe for the reason given, and nothing else may read unscoped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// Loading a tenant's configuration (users, roles, custom fields, audit switches, pipelines) into
    /// memory: it decides permissions and is never returned as such; what a user reads of it goes
    /// through the scoped reader like any record.
    Configuration,
    /// Maintaining derived data (per-account statistics) inside the unit of work of the change that
    /// caused it: the values are written, not returned, and readers see them only where
    /// the rules for derived fields let them (`access::field_access`).
    Maintenance,
    /// Routing work (assignment rules counting each candidate's open load, queue lookup): decides
    /// an owner, returns nothing to the caller.
    Routing,
    /// Fan-out of notifications and system processes (followers, SLA and reminder sweeps) whose
    /// recipients are checked one by one against their own permissions before anything is sent.
    Notification,
    /// The facts a permission decision needs about a record the caller may read (the territory of
    /// its account, its shares): they decide, and only the decision is returned.
    Decision,
    /// System rows about records the caller may read (the stage transitions of opportunities listed
    /// through the scoped reader): only the rows of those records are used.
    OfVisible,
    /// The acting user's own system rows (the follows they made).
    Own,
    /// Checking the audit chain (administrators): the answer is counts and the position of the first
    /// bad entry, never values.
    Verification,
    /// Whether the references a record already holds still point at live records (a restore):
    /// the ids are in the record the user reads; only "live or not" is answered.
    KnownReference,
    /// Host operations on a whole tenant (bootstrap, export, import): reached only from the host's
    /// [`Crm`](crate::Crm), never from a session.
    Host,
}

/// Who reads: the acting user as the rules see them, their tenant's configuration, and the instant
/// (shares expire).
#[derive(Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) p: &'a Principal,
    pub(crate) cache: &'a TenantCache,
    pub(crate) tenant: &'a TenantId,
    pub(crate) now: DateTime<Utc>,
}

/// The store, held privately.
pub(crate) struct Door {
    store: Arc<dyn Store>,
}

impl Door {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Door { store }
    }

    /// The same store (a new engine over it keeps one door).
    pub(crate) fn share(&self) -> Self {
        Door {
            store: self.store.clone(),
        }
    }

    /// A read snapshot.
    pub(crate) fn read(&self) -> Result<Snapshot<'_>> {
        Ok(Snapshot {
            tx: self.store.read()?,
        })
    }

    /// A read for one call (see `Store::read_once`).
    pub(crate) fn read_once(&self) -> Result<Snapshot<'_>> {
        Ok(Snapshot {
            tx: self.store.read_once()?,
        })
    }

    /// The writer.
    pub(crate) fn write(&self) -> Result<Writer<'_>> {
        Ok(Writer {
            tx: self.store.write()?,
        })
    }

    /// Whole-database backup: a host operation.
    pub(crate) fn backup_to(
        &self,
        dest: &std::path::Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        self.store.backup_to(dest, progress)
    }

    /// The backend's consistency check: a host operation.
    pub(crate) fn integrity_check(&self) -> Result<Vec<String>> {
        self.store.integrity_check()
    }
}

/// A read snapshot whose transaction only the scoped reader and named unscoped reads reach.
pub(crate) struct Snapshot<'s> {
    tx: Box<dyn ReadTx + 's>,
}

impl Snapshot<'_> {
    /// A view to hand on (a reader over this snapshot).
    pub(crate) fn view(&self) -> View<'_> {
        View { tx: &*self.tx }
    }

    /// Reads as `who` may.
    pub(crate) fn scoped<'a>(&'a self, who: Who<'a>) -> Scoped<'a> {
        self.view().scoped(who)
    }

    /// Reads past the permissions, for `why`.
    pub(crate) fn unscoped(&self, why: Why) -> &dyn ReadTx {
        self.view().unscoped(why)
    }
}

/// A borrowed reader over a snapshot or an open write transaction (which sees its own writes).
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    tx: &'a dyn ReadTx,
}

impl<'a> View<'a> {
    /// Reads as `who` may.
    pub(crate) fn scoped(self, who: Who<'a>) -> Scoped<'a> {
        Scoped { tx: self.tx, who }
    }

    /// Reads past the permissions, for `why`.
    pub(crate) fn unscoped(self, why: Why) -> &'a dyn ReadTx {
        let _ = why;
        self.tx
    }
}

/// The write transaction, held privately: writes, and reads through the scoped reader.
pub(crate) struct Writer<'s> {
    tx: Box<dyn WriteTx + 's>,
}

impl<'s> Writer<'s> {
    /// A view to hand on (it sees this transaction's writes).
    pub(crate) fn view(&self) -> View<'_> {
        View { tx: &*self.tx }
    }

    /// Reads as `who` may, seeing this transaction's writes.
    pub(crate) fn scoped<'a>(&'a self, who: Who<'a>) -> Scoped<'a> {
        self.view().scoped(who)
    }

    /// Reads past the permissions, for `why`.
    pub(crate) fn unscoped(&self, why: Why) -> &dyn ReadTx {
        self.view().unscoped(why)
    }

    /// The tenant's audit chain head (sequence, hash).
    pub(crate) fn audit_head(&self, tenant: &TenantId) -> Result<Option<(u64, String)>> {
        self.tx.audit_head(tenant)
    }

    pub(crate) fn insert(&mut self, r: &Record) -> Result<()> {
        self.tx.insert(r)
    }
    pub(crate) fn update(&mut self, r: &Record, expected_version: i64) -> Result<()> {
        self.tx.update(r, expected_version)
    }
    pub(crate) fn purge(
        &mut self,
        kind: EntityKind,
        tenant: &TenantId,
        id: RecordId,
    ) -> Result<()> {
        self.tx.purge(kind, tenant, id)
    }
    pub(crate) fn append_audit(&mut self, e: &AuditEntry) -> Result<()> {
        self.tx.append_audit(e)
    }
    pub(crate) fn append_event(&mut self, e: &NewEvent) -> Result<u64> {
        self.tx.append_event(e)
    }
    pub(crate) fn ack_events(&mut self, tenant: &TenantId, seqs: &[u64]) -> Result<u64> {
        self.tx.ack_events(tenant, seqs)
    }
    pub(crate) fn index_custom_field(
        &mut self,
        kind: EntityKind,
        key: &str,
        ty: &FieldType,
    ) -> Result<()> {
        self.tx.index_custom_field(kind, key, ty)
    }
    pub(crate) fn savepoint(&mut self) -> Result<()> {
        self.tx.savepoint()
    }
    pub(crate) fn release_savepoint(&mut self) -> Result<()> {
        self.tx.release_savepoint()
    }
    pub(crate) fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.tx.rollback_to_savepoint()
    }
    pub(crate) fn commit(self) -> Result<()> {
        self.tx.commit()
    }
}

/// Reads as one user may: every query gets the user's record predicate for the action, records of
/// a type they may not read do not exist, and one record they may not reach is "not found".
#[derive(Clone, Copy)]
pub(crate) struct Scoped<'a> {
    tx: &'a dyn ReadTx,
    who: Who<'a>,
}

impl<'a> Scoped<'a> {
    /// Who reads.
    pub(crate) fn who(&self) -> Who<'a> {
        self.who
    }

    /// Whether the user may take `action` on records of `kind` at all (for reads: read them).
    fn allowed(&self, kind: EntityKind, action: Action) -> bool {
        let object = |a| access::object_allowed(self.who.p, a, kind);
        object(Action::Read) && (action == Action::Read || object(action))
    }

    /// `q` narrowed to what the user reaches for `action`; `None` when that is nothing.
    fn narrow(&self, mut q: Query, action: Action) -> Option<Query> {
        if !self.allowed(q.kind, action) || &q.tenant != self.who.tenant {
            return None;
        }
        let cond = access::record_cond(self.who.p, action, q.kind, self.who.now);
        q = q.and(cond);
        Some(q)
    }

    /// One record the user reaches for `action` (live or in the trash), as stored; `None` when it
    /// does not exist, is another tenant's, or is out of the user's reach.
    pub(crate) fn find(
        &self,
        kind: EntityKind,
        id: RecordId,
        action: Action,
    ) -> Result<Option<Record>> {
        if !self.allowed(kind, action) {
            return Ok(None);
        }
        let cond = access::record_cond(self.who.p, action, kind, self.who.now);
        let custom_types = self.who.cache.customs.types(kind);
        if cond == Cond::True {
            return self.tx.get(kind, self.who.tenant, id, &custom_types);
        }
        let mut q = Query::all(kind, self.who.tenant.clone());
        q.cond = Cond::Compare(Column::Meta(MetaColumn::Id), Op::Eq, Value::Ref(id)).and(cond);
        q.liveness = Liveness::Any;
        q.limit = Some(1);
        q.custom_types = custom_types;
        Ok(self.tx.query(&q)?.into_iter().next())
    }

    /// [`Scoped::find`], `NotFound` when `None`.
    pub(crate) fn get(&self, kind: EntityKind, id: RecordId, action: Action) -> Result<Record> {
        self.find(kind, id, action)?
            .ok_or_else(|| CrmError::not_found(kind.name(), id))
    }

    /// A live record the user may read, for a reference from a record being written: a record out
    /// of reach fails exactly as a missing one does (`Validation`, rule `reference`, on `field`).
    ///
    /// A reference to a user is checked against the tenant's organisation instead (the users every
    /// permission decision already reads): naming a colleague — or oneself, as an activity's
    /// `performed_by` does — needs no permission on user records.
    pub(crate) fn reference(&self, kind: EntityKind, id: RecordId, field: &str) -> Result<()> {
        let live = if kind == EntityKind::User {
            self.who.cache.org.principal(id).is_some()
        } else {
            self.find(kind, id, Action::Read)?
                .is_some_and(|t| t.meta.deleted_at.is_none())
        };
        if live {
            Ok(())
        } else {
            Err(CrmError::validation(
                field,
                "reference",
                format!("no live {kind} with id `{id}`"),
            ))
        }
    }

    /// The records of `q` the user reaches for `action`.
    pub(crate) fn query(&self, q: Query, action: Action) -> Result<Vec<Record>> {
        match self.narrow(q, action) {
            Some(q) => self.tx.query(&q),
            None => Ok(Vec::new()),
        }
    }

    /// How many records of `q` the user reaches for `action`.
    pub(crate) fn count(&self, q: Query, action: Action) -> Result<u64> {
        match self.narrow(q, action) {
            Some(q) => self.tx.count(&q),
            None => Ok(0),
        }
    }

    /// The narrow read (`ReadTx::scan_fields`) over the records the user may read. Values come as
    /// stored: the caller blanks the fields hidden from the user.
    pub(crate) fn scan_fields(
        &self,
        q: Query,
        fields: &[&'static str],
        each: &mut dyn FnMut(RecordId, &[Value]) -> Result<()>,
    ) -> Result<()> {
        match self.narrow(q, Action::Read) {
            Some(q) => self.tx.scan_fields(&q, fields, each),
            None => Ok(()),
        }
    }

    /// The order lines (`ReadTx::order_lines`) of the orders the user may read. Whether a line's
    /// cost may be shown is the caller's check.
    pub(crate) fn order_lines(
        &self,
        q: Query,
        each: &mut dyn FnMut(&crate::analytics::LineGroup) -> Result<()>,
    ) -> Result<bool> {
        match self.narrow(q, Action::Read) {
            Some(q) => self.tx.order_lines(&q, each),
            None => Ok(true),
        }
    }

    /// Audit entries of `q` about records the user may read now (entries about purged records only
    /// for users who read every record of the type). Entries are returned as stored: the caller
    /// redacts hidden fields.
    pub(crate) fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        if &q.tenant != self.who.tenant {
            return Ok(Vec::new());
        }
        let rows = self.tx.audit(q)?;
        let seen = self.visible_of(rows.iter().map(|e| (e.kind, e.record_id)))?;
        Ok(rows
            .into_iter()
            .filter(|e| seen.shows(e.kind, e.record_id))
            .collect())
    }

    /// Undelivered outbox events after `after_seq` about records the user may read, oldest first, at
    /// most `limit` (pages on past the events of other records, so a page is short only at the end).
    pub(crate) fn pending_events(&self, after_seq: u64, limit: u32) -> Result<Vec<Event>> {
        let limit = limit.max(1);
        let mut out = Vec::new();
        let mut after = after_seq;
        loop {
            let page = self.tx.pending_events(self.who.tenant, after, limit)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == limit as usize;
            let seen = self.visible_of(page.iter().map(|e| (e.kind, e.record_id)))?;
            for e in page {
                if seen.shows(e.kind, e.record_id) {
                    out.push(e);
                    if out.len() == limit as usize {
                        return Ok(out);
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Of `seqs`, the pending events about records the user may read.
    pub(crate) fn own_pending(&self, seqs: &[u64]) -> Result<Vec<u64>> {
        let wanted: BTreeSet<u64> = seqs.iter().copied().collect();
        let Some(first) = wanted.first().copied() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut after = first.saturating_sub(1);
        loop {
            let page = self.tx.pending_events(self.who.tenant, after, 1000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == 1000;
            let page: Vec<Event> = page
                .into_iter()
                .filter(|e| wanted.contains(&e.seq))
                .collect();
            let seen = self.visible_of(page.iter().map(|e| (e.kind, e.record_id)))?;
            out.extend(
                page.iter()
                    .filter(|e| seen.shows(e.kind, e.record_id))
                    .map(|e| e.seq),
            );
            if !full || wanted.last().is_some_and(|l| after >= *l) {
                break;
            }
        }
        Ok(out)
    }

    /// Which of the records named by `refs` the user may read.
    fn visible_of(&self, refs: impl Iterator<Item = (EntityKind, RecordId)>) -> Result<Seen> {
        let mut by_kind: HashMap<EntityKind, BTreeSet<RecordId>> = HashMap::new();
        for (k, id) in refs {
            by_kind.entry(k).or_default().insert(id);
        }
        let mut seen = HashMap::new();
        for (kind, ids) in by_kind {
            seen.insert(kind, self.visible(kind, ids)?);
        }
        Ok(Seen(seen))
    }

    /// Which of `ids` (records of `kind`) the user may read.
    fn visible(&self, kind: EntityKind, ids: BTreeSet<RecordId>) -> Result<Visible> {
        if !self.allowed(kind, Action::Read) {
            return Ok(Visible::Some(BTreeSet::new()));
        }
        let cond = access::record_cond(self.who.p, Action::Read, kind, self.who.now);
        if cond == Cond::True {
            return Ok(Visible::All);
        }
        let mut out = BTreeSet::new();
        let ids: Vec<RecordId> = ids.into_iter().collect();
        for chunk in ids.chunks(500) {
            let mut q = Query::all(kind, self.who.tenant.clone());
            q.cond = Cond::In(
                Column::Meta(MetaColumn::Id),
                chunk.iter().map(|i| Value::Ref(*i)).collect(),
            )
            .and(cond.clone());
            q.liveness = Liveness::Any;
            q.fields = Some(Vec::new());
            out.extend(self.tx.query(&q)?.into_iter().map(|r| r.meta.id));
        }
        Ok(Visible::Some(out))
    }
}

/// The records a user may read, among some, per kind.
struct Seen(HashMap<EntityKind, Visible>);

impl Seen {
    fn shows(&self, kind: EntityKind, id: RecordId) -> bool {
        match self.0.get(&kind) {
            Some(Visible::All) => true,
            Some(Visible::Some(set)) => set.contains(&id),
            None => false,
        }
    }
}

/// The records of one kind a user may read, among some.
enum Visible {
    /// Every record of the kind.
    All,
    /// These.
    Some(BTreeSet<RecordId>),
}
