//! The storage traits a backend implements. `crm-store` implements them on SQLite; a server database
//! can implement them later without touching the domain, and must pass the same conformance suite
//! (`crm_core::conformance`, behind the `testing` feature).
//!
//! Writers take a [`WriteTx`] (one transaction: the change, its audit entry and its outbox events
//! commit together or not at all); readers take a [`ReadTx`] (a consistent snapshot). Every method is
//! scoped by tenant: a backend adds the tenant predicate to every statement itself.

use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::error::Result;
use crate::events::{Event, NewEvent};
use crate::id::{RecordId, TenantId};
use crate::query::{CustomTypes, Query};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::value::{FieldType, Value};

/// The name that asks [`ReadTx::scan_fields`] for the record's owner (a meta column).
pub const OWNER_FIELD: &str = "owner_id";

/// A storage backend.
pub trait Store: Send + Sync {
    /// Starts a read-only snapshot.
    fn read(&self) -> Result<Box<dyn ReadTx + '_>>;
    /// Starts a read for one call of a [`ReadTx`] method: what that call reads is consistent, but
    /// nothing ties it to a later call, so a backend may skip opening and closing a snapshot around
    /// it. The default is [`Store::read`].
    fn read_once(&self) -> Result<Box<dyn ReadTx + '_>> {
        self.read()
    }
    /// Starts the (single) write transaction; waits for other writers.
    fn write(&self) -> Result<Box<dyn WriteTx + '_>>;
    /// Copies the whole live database to a new file at `dest` while writers keep writing, reporting
    /// `(done, total)` progress, and checks the copy. The file appears at `dest` only once it is
    /// complete and checked: a failed or interrupted backup leaves no file there. Backends that
    /// cannot answer `Storage` of rule `unsupported`.
    fn backup_to(&self, dest: &std::path::Path, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
        let _ = (dest, progress);
        Err(
            crate::error::CrmError::storage("this storage backend has no file backups")
                .with_rule("unsupported"),
        )
    }
    /// The backend's own consistency check: an empty list when sound.
    fn integrity_check(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Which audit entries to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// Only entries about this record.
    pub record: Option<(EntityKind, RecordId)>,
    /// Only entries by this user.
    pub user: Option<RecordId>,
    /// Only entries at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only entries with a smaller sequence number (paging newest first).
    pub before_seq: Option<u64>,
    /// Only entries with a larger sequence number (paging oldest first).
    pub after_seq: Option<u64>,
    /// Newest first (`true`) or oldest first.
    pub newest_first: bool,
    /// At most this many.
    pub limit: Option<u32>,
}

impl AuditQuery {
    /// Every entry of a tenant, oldest first.
    pub fn tenant(tenant: TenantId) -> Self {
        AuditQuery {
            tenant,
            record: None,
            user: None,
            from: None,
            until: None,
            before_seq: None,
            after_seq: None,
            newest_first: false,
            limit: None,
        }
    }
}

/// Reads inside one consistent snapshot.
pub trait ReadTx {
    /// One record by id (live or in the trash); `None` if there is none in this tenant. `custom` gives
    /// the types of the custom fields to decode.
    fn get(
        &self,
        kind: EntityKind,
        tenant: &TenantId,
        id: RecordId,
        custom: &CustomTypes,
    ) -> Result<Option<Record>>;
    /// The records matching a resolved query, in its order, at most `limit`.
    fn query(&self, q: &Query) -> Result<Vec<Record>>;
    /// How many records match (ignores sort, cursor and limit).
    fn count(&self, q: &Query) -> Result<u64>;
    /// The last audit entry's sequence number and hash for a tenant.
    fn audit_head(&self, tenant: &TenantId) -> Result<Option<(u64, String)>>;
    /// Audit entries.
    fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>>;
    /// Undelivered outbox events of a tenant after `after_seq`, oldest first.
    fn pending_events(&self, tenant: &TenantId, after_seq: u64, limit: u32) -> Result<Vec<Event>>;
    /// Every tenant that has data.
    fn tenants(&self) -> Result<Vec<TenantId>>;
    /// Hands every line of the orders matching `q` (an order query; sort, cursor and limit ignored)
    /// to `each`, read in one statement, in no particular order; lines with identical attributes
    /// may come as one [`LineGroup`](crate::analytics::LineGroup) counting them. The group is lent:
    /// `each` copies what it keeps. An error from `each` stops the read and is returned. `Ok(false)`
    /// without calling `each` when the backend has no such read (callers then read the orders).
    fn order_lines(
        &self,
        q: &Query,
        each: &mut dyn FnMut(&crate::analytics::LineGroup) -> Result<()>,
    ) -> Result<bool> {
        let _ = (q, each);
        Ok(false)
    }
    /// A narrow read for aggregates over many records: the id and the built-in `fields` of every
    /// record matching `q`, handed to `each` one record at a time (values in the order of `fields`,
    /// `Value::Null` where empty, decoded as [`ReadTx::query`] decodes them), in no particular
    /// order. Of the meta columns only the id, and the owner when [`OWNER_FIELD`] is among `fields`
    /// (as a `Value::Ref`); no custom values, no [`Record`]s. `q`'s sort, cursor, limit and field
    /// list are ignored. Nothing is redacted: callers check the field rules first. A name that is
    /// neither a built-in field of `q.kind` nor [`OWNER_FIELD`] is an `InvalidQuery` error naming
    /// it; an error from `each` stops the read and is returned.
    ///
    /// The default reads the records with [`ReadTx::query`]; backends answer it in one lean
    /// statement.
    fn scan_fields(
        &self,
        q: &Query,
        fields: &[&'static str],
        each: &mut dyn FnMut(RecordId, &[Value]) -> Result<()>,
    ) -> Result<()> {
        for f in fields {
            if *f != OWNER_FIELD && q.kind.schema().field(f).is_none() {
                return Err(crate::error::CrmError::invalid_query(
                    Some(f),
                    "unknown_field",
                    format!("{} has no field `{f}`", q.kind),
                ));
            }
        }
        let mut q = q.clone();
        q.sort = None;
        q.after = None;
        q.limit = None;
        q.fields = Some(fields.to_vec());
        let mut row = Vec::with_capacity(fields.len());
        for r in self.query(&q)? {
            row.clear();
            row.extend(fields.iter().map(|f| match *f {
                OWNER_FIELD => Value::Ref(r.meta.owner_id),
                f => r.get(f).clone(),
            }));
            each(r.meta.id, &row)?;
        }
        Ok(())
    }
}

/// A write transaction. Dropping it without [`WriteTx::commit`] rolls everything back.
pub trait WriteTx: ReadTx {
    /// Inserts a new record (version 1). A unique field clash is a `Conflict` naming the field.
    fn insert(&mut self, record: &Record) -> Result<()>;
    /// Replaces a record whose stored version is `expected_version`; otherwise `Conflict`, nothing
    /// written.
    fn update(&mut self, record: &Record, expected_version: i64) -> Result<()>;
    /// Removes a record for good.
    fn purge(&mut self, kind: EntityKind, tenant: &TenantId, id: RecordId) -> Result<()>;
    /// Appends an audit entry (its `seq` and hashes are already set).
    fn append_audit(&mut self, entry: &AuditEntry) -> Result<()>;
    /// Appends an outbox event; returns its sequence number.
    fn append_event(&mut self, event: &NewEvent) -> Result<u64>;
    /// Marks outbox events delivered.
    fn ack_events(&mut self, tenant: &TenantId, seqs: &[u64]) -> Result<u64>;
    /// Makes filters and sorts on a custom field fast (an index led by tenant).
    fn index_custom_field(&mut self, kind: EntityKind, key: &str, ty: &FieldType) -> Result<()>;
    /// Opens a savepoint: a later [`WriteTx::rollback_to_savepoint`] undoes everything written
    /// after it, leaving the transaction open. Savepoints nest.
    fn savepoint(&mut self) -> Result<()>;
    /// Keeps what was written since the innermost open savepoint and closes it.
    fn release_savepoint(&mut self) -> Result<()>;
    /// Undoes everything written since the innermost open savepoint and closes it.
    fn rollback_to_savepoint(&mut self) -> Result<()>;
    /// Commits the change, its audit entries and its events together.
    fn commit(self: Box<Self>) -> Result<()>;
}
