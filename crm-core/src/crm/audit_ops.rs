//! Reading history, checking the audit chain, and draining the outbox.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{self, Action, FieldAccess, Principal};
use crate::audit::{verify_chain, AuditEntry, AuditVerification, FieldChange, Operation};
use crate::error::{CrmError, Result};
use crate::events::Event;
use crate::id::RecordId;
use crate::record::{Record, RecordMeta};
use crate::schema::EntityKind;
use crate::store::AuditQuery;
use crate::value::{Fields, Value};

use std::sync::Arc;

/// The reader, their tenant's configuration, the record as stored and its audit entries.
type VisibleHistory = (Arc<Principal>, Arc<TenantCache>, Record, Vec<AuditEntry>);

use super::door::Why;
use super::{Context, Engine, TenantCache};

/// An audit entry as a reader sees it: custom fields by their current name, hidden fields left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Position in the tenant's audit chain.
    pub seq: u64,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// Who.
    pub user_id: RecordId,
    /// From where.
    pub origin: crate::audit::Origin,
    /// How.
    pub operation: Operation,
    /// The record's type.
    pub kind: EntityKind,
    /// The record.
    pub record_id: RecordId,
    /// The record's version after the change.
    pub version: i64,
    /// Field-level old → new values the reader may see.
    pub changes: Vec<FieldChange>,
    /// A comment (transition comments, purge reasons).
    pub comment: Option<String>,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The entries.
    pub entries: Vec<HistoryEntry>,
    /// Pass as `before_seq` for the next (older) page; `None` at the end.
    pub next: Option<u64>,
}

impl Engine {
    fn present_entry(&self, p: &Principal, cache: &TenantCache, e: AuditEntry) -> HistoryEntry {
        let kind = e.kind;
        let changes = e
            .changes
            .into_iter()
            .filter_map(|mut c| {
                // The rule is read with the stored name (`custom.<key>`), then the key is named.
                if access::field_access(p, kind, &c.field) == Some(FieldAccess::Hidden) {
                    return None;
                }
                // Line items carry a copy of the product cost: hidden with it.
                if c.field == "lines"
                    && access::field_access(p, EntityKind::Product, "unit_cost")
                        == Some(FieldAccess::Hidden)
                {
                    for v in [&mut c.old, &mut c.new] {
                        if let Value::Lines(lines) = v {
                            for l in lines {
                                l.unit_cost = None;
                            }
                        }
                    }
                }
                if let Some(key) = c.field.strip_prefix("custom.") {
                    let name = cache
                        .customs
                        .by_key(kind, key)
                        .map(|d| d.name.clone())
                        .unwrap_or_else(|| key.to_owned());
                    c.field = format!("custom.{name}");
                }
                Some(c)
            })
            .collect();
        HistoryEntry {
            seq: e.seq,
            at: e.at,
            user_id: e.user_id,
            origin: e.origin,
            operation: e.operation,
            kind,
            record_id: e.record_id,
            version: e.version,
            changes,
            comment: e.comment,
        }
    }

    /// The history of a record, newest first, `limit` entries a page (default 50). Fields hidden from
    /// the reader appear in no entry.
    pub(crate) fn history(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        before_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<HistoryPage> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let tx = self.door().read()?;
        self.fetch_visible(tx.view(), &p, &cache, ctx, kind, id, Action::Read)?;
        let limit = super::read::page_size(limit, 50, 1000)?;
        let mut q = AuditQuery::tenant(ctx.tenant.clone());
        q.record = Some((kind, id));
        q.before_seq = before_seq;
        q.newest_first = true;
        q.limit = Some(limit + 1);
        let mut rows = tx.scoped(self.who(&p, &cache, ctx)).audit(&q)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(HistoryPage {
            entries: rows
                .into_iter()
                .map(|e| self.present_entry(&p, &cache, e))
                .collect(),
            next,
        })
    }

    /// A record the user may read (as stored) and its audit entries, oldest first, before `until`.
    fn visible_history(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        until: Option<DateTime<Utc>>,
    ) -> Result<VisibleHistory> {
        let (p, cache) = self.principal(ctx)?;
        self.require(&p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let tx = self.door().read()?;
        let current = self.fetch_visible(tx.view(), &p, &cache, ctx, kind, id, Action::Read)?;
        let mut q = AuditQuery::tenant(ctx.tenant.clone());
        q.record = Some((kind, id));
        q.until = until;
        let entries = tx.scoped(self.who(&p, &cache, ctx)).audit(&q)?;
        Ok((p, cache, current, entries))
    }

    /// The record as it was at instant `at`, rebuilt from its history; `None` if it did not exist then
    /// (or was in the trash). Hidden fields are left out.
    pub(crate) fn as_of(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        at: DateTime<Utc>,
    ) -> Result<Option<Record>> {
        let until = at
            .checked_add_signed(chrono::Duration::microseconds(1))
            .unwrap_or(at);
        let (p, cache, current, entries) = self.visible_history(ctx, kind, id, Some(until))?;
        let Some(r) = replay(&current.meta, &entries) else {
            return Ok(None);
        };
        if r.meta.deleted_at.is_some() {
            return Ok(None);
        }
        Ok(Some(self.present(&p, &cache, r)))
    }

    /// The record at `version`, rebuilt from its history (`None` if there was no such version).
    pub(crate) fn version(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        version: i64,
    ) -> Result<Option<Record>> {
        let (p, cache, current, mut entries) = self.visible_history(ctx, kind, id, None)?;
        entries.retain(|e| e.version <= version);
        if entries.last().map(|e| e.version) != Some(version) {
            return Ok(None);
        }
        Ok(replay(&current.meta, &entries).map(|r| self.present(&p, &cache, r)))
    }

    /// Field-level differences between two versions of a record (old = `from`, new = `to`).
    pub(crate) fn diff_versions(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        from: i64,
        to: i64,
    ) -> Result<Vec<FieldChange>> {
        let a = self
            .version(ctx, kind, id, from)?
            .ok_or_else(|| CrmError::validation("from", "version", format!("no version {from}")))?;
        let b = self
            .version(ctx, kind, id, to)?
            .ok_or_else(|| CrmError::validation("to", "version", format!("no version {to}")))?;
        Ok(crate::audit::diff(
            &a.fields, &a.custom, &b.fields, &b.custom,
        ))
    }

    /// Restores the field values a record had at `version`, as a new, recorded change that must pass
    /// today's validation. Lifecycle and computed fields (status, totals) keep their current values:
    /// states change only through their transitions. Fields the user may not write are left as they are
    /// today only if unchanged; otherwise the restore is refused.
    pub(crate) fn restore_version(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        expected_version: i64,
        version: i64,
    ) -> Result<Record> {
        let (p, cache, mut uow, current) =
            self.open_for_transition(ctx, kind, id, expected_version)?;
        let mut q = AuditQuery::tenant(ctx.tenant.clone());
        q.record = Some((kind, id));
        let entries: Vec<AuditEntry> = uow
            .tx
            .scoped(self.who(&p, &cache, ctx))
            .audit(&q)?
            .into_iter()
            .filter(|e| e.version <= version)
            .collect();
        if entries.last().map(|e| e.version) != Some(version) {
            return Err(CrmError::validation(
                "version",
                "version",
                format!("no recorded version {version}"),
            ));
        }
        let old = replay(&current.meta, &entries).ok_or_else(|| {
            CrmError::validation(
                "version",
                "version",
                format!("no recorded version {version}"),
            )
        })?;
        // The restore is the change back to those values, checked as any update is: field rules,
        // the fields that grant rights, normalisation, references, and the kind's own rules before
        // an update (a quote's content is frozen once submitted, totals are recomputed).
        let mut changes = Fields::new();
        for spec in &kind.schema().fields {
            let (a, b) = (current.get(spec.name), old.get(spec.name));
            if !spec.system && a != b {
                changes.insert(spec.name.to_owned(), b.clone());
            }
        }
        for def in cache.customs.all(kind) {
            let (a, b) = (current.custom(&def.key), old.custom(&def.key));
            if !def.archived && a != b {
                changes.insert(format!("custom.{}", def.name), b.clone());
            }
        }
        let (fields, custom) =
            self.apply_input(&p, &cache.customs, kind, changes, Some(&current))?;
        let mut new = Record {
            meta: current.meta.clone(),
            fields,
            custom,
        };
        self.check_record(&uow.tx, &p, &cache, ctx, &mut new, Some(&current))?;
        self.before_update(&mut uow, &cache, &current, &mut new)?;
        let saved = uow.replace(
            &current,
            new,
            Operation::Restore,
            "record.restored",
            Some(format!("restored version {version}")),
        )?;
        uow.commit(self)?;
        Ok(self.present(&p, &cache, saved))
    }

    /// What `user_id` did between `from` and `until`, oldest first: the supervisor's activity log.
    /// Asked by an administrator, the user themselves, or one of their managers.
    pub(crate) fn user_activity(
        &self,
        ctx: &Context,
        user_id: RecordId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: Option<u32>,
    ) -> Result<Vec<HistoryEntry>> {
        let (p, cache) = self.principal(ctx)?;
        let admin = access::object_decision(&p, Action::Configure, EntityKind::Role).allowed;
        if !admin && !p.subordinates.contains(&user_id) {
            return Err(CrmError::permission_denied(
                "supervise",
                "user",
                "not_a_manager",
            ));
        }
        let mut q = AuditQuery::tenant(ctx.tenant.clone());
        q.user = Some(user_id);
        q.from = Some(from);
        q.until = Some(until);
        q.limit = Some(super::read::page_size(limit, 1000, 10_000)?);
        // Only entries about records the supervisor may read now, with the fields hidden from them
        // left out: supervision shows what the agent did within the supervisor's own reach.
        let tx = self.door().read()?;
        let rows = tx.scoped(self.who(&p, &cache, ctx)).audit(&q)?;
        Ok(rows
            .into_iter()
            .map(|e| self.present_entry(&p, &cache, e))
            .collect())
    }

    /// Checks the tenant's audit hash chain and reports the first entry that was altered, removed or
    /// reordered. For administrators.
    pub(crate) fn verify_audit(&self, ctx: &Context) -> Result<AuditVerification> {
        let (p, _) = self.principal(ctx)?;
        if !access::object_decision(&p, Action::Configure, EntityKind::Role).allowed {
            return Err(CrmError::permission_denied(
                "verify",
                "audit",
                "object_permission",
            ));
        }
        let tx = self.door().read()?;
        let mut q = AuditQuery::tenant(ctx.tenant.clone());
        q.limit = None;
        // The whole chain: the answer is counts and the position of the first bad entry, no values.
        let entries = tx.unscoped(Why::Verification).audit(&q)?;
        Ok(verify_chain(&entries))
    }

    /// Takes an online backup of the whole database (every tenant) into a new file while other
    /// users keep working, reporting `(done, total)` progress, and checks the copy's integrity. A
    /// host operation.
    pub(crate) fn backup(
        &self,
        dest: &std::path::Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        self.door().backup_to(dest, progress)
    }

    /// The storage's own consistency check (SQLite `integrity_check` and foreign keys): empty when
    /// sound. A host operation.
    pub(crate) fn integrity_check(&self) -> Result<Vec<String>> {
        self.door().integrity_check()
    }

    /// Undelivered outbox events after `after_seq` about records the user may read, oldest first
    /// (at most `limit`). Delivery is at-least-once: events stay pending until acknowledged. For
    /// administrators and integration users (capability `integration`).
    pub(crate) fn pending_events(
        &self,
        ctx: &Context,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>> {
        let (p, cache) = self.principal(ctx)?;
        self.require_integration(&p)?;
        // Events about records the user may read: an integration user with a narrow scope drains
        // only its part of the outbox.
        let tx = self.door().read()?;
        tx.scoped(self.who(&p, &cache, ctx))
            .pending_events(after_seq, super::read::page_size(Some(limit), 500, 10_000)?)
    }

    /// Marks outbox events delivered (those about records the user may read); returns how many
    /// were pending.
    pub(crate) fn ack_events(&self, ctx: &Context, seqs: &[u64]) -> Result<u64> {
        let (p, cache) = self.principal(ctx)?;
        self.require_integration(&p)?;
        let mut tx = self.door().write()?;
        let own = tx.scoped(self.who(&p, &cache, ctx)).own_pending(seqs)?;
        let n = tx.ack_events(&ctx.tenant, &own)?;
        tx.commit()?;
        Ok(n)
    }

    fn require_integration(&self, p: &Principal) -> Result<()> {
        if p.has_capability("integration")
            || access::object_decision(p, Action::Configure, EntityKind::Role).allowed
        {
            Ok(())
        } else {
            Err(CrmError::permission_denied(
                "drain",
                "outbox",
                "integration_capability",
            ))
        }
    }
}

/// Rebuilds a record from its audit entries (oldest first).
pub(crate) fn replay(meta: &RecordMeta, entries: &[AuditEntry]) -> Option<Record> {
    let first = entries.first()?;
    let mut r = Record {
        meta: RecordMeta {
            created_at: first.at,
            created_by: first.user_id,
            ..meta.clone()
        },
        fields: Fields::new(),
        custom: Fields::new(),
    };
    for e in entries {
        for c in &e.changes {
            let (map, name) = match c.field.strip_prefix("custom.") {
                Some(k) => (&mut r.custom, k.to_owned()),
                None => (&mut r.fields, c.field.clone()),
            };
            if c.new == Value::Null {
                map.remove(&name);
            } else {
                map.insert(name, c.new.clone());
            }
        }
        r.meta.version = e.version;
        r.meta.updated_at = e.at;
        r.meta.updated_by = e.user_id;
        match e.operation {
            Operation::Delete => r.meta.deleted_at = Some(e.at),
            Operation::Restore => r.meta.deleted_at = None,
            _ => {}
        }
    }
    Some(r)
}
