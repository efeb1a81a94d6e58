//! Writes: create, update, delete (to the trash), restore, purge. Each facade call is one
//! [`super::Transaction`] holding the change, its audit entry and its outbox events; the `*_in`
//! functions do the work inside a unit of work, for the facade and for multi-call transactions alike.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::access::{self, Action, Principal};
use crate::audit::{diff, AuditEntry, FieldChange, Operation};
use crate::custom_field::{self, CustomCatalog};
use crate::error::{CrmError, ErrorKind, Result};
use crate::events::NewEvent;
use crate::id::RecordId;
use crate::record::{Record, RecordMeta};
use crate::schema::EntityKind;
use crate::validate::normalise_value;
use crate::value::{FieldType, Fields, Value};

use super::door::{Who, Why, Writer};
use super::{Context, Engine, TenantCache};

/// A record to create: field values (custom fields as `custom.<name>`) and, optionally, an owner other
/// than the acting user (allowed to users whose write scope on the type is `all`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    /// Field values by name.
    pub fields: Fields,
    /// The owner; the acting user when `None`.
    pub owner_id: Option<RecordId>,
}

impl From<Fields> for NewRecord {
    fn from(fields: Fields) -> Self {
        NewRecord {
            fields,
            owner_id: None,
        }
    }
}

/// One unit of work: the write transaction plus the audit chain head and the events it appends.
pub(crate) struct Uow<'s> {
    pub(crate) tx: Writer<'s>,
    pub(crate) ctx: Context,
    pub(crate) now: DateTime<Utc>,
    head: Option<Option<(u64, String)>>,
    pub(crate) config_changed: bool,
    /// Records changed in this unit of work, with the event type, for follower notifications.
    pub(crate) written: Vec<(EntityKind, RecordId, String)>,
    /// Entity types whose changes are not audited (per-tenant audit settings).
    pub(crate) audit_off: Arc<HashSet<EntityKind>>,
    /// Where each audit entry is serialised for its hash: one buffer for the unit of work.
    hash_buf: Vec<u8>,
}

/// The in-memory state of a [`Uow`] at a savepoint.
pub(crate) struct UowMark {
    head: Option<Option<(u64, String)>>,
    written: usize,
    config_changed: bool,
}

impl<'s> Uow<'s> {
    pub(crate) fn new(tx: Writer<'s>, ctx: &Context, now: DateTime<Utc>) -> Self {
        Uow {
            tx,
            ctx: ctx.clone(),
            now,
            head: None,
            config_changed: false,
            written: Vec::new(),
            audit_off: Arc::default(),
            hash_buf: Vec::new(),
        }
    }

    /// Appends an audit entry to the tenant's hash chain.
    pub(crate) fn audit(
        &mut self,
        operation: Operation,
        kind: EntityKind,
        record_id: RecordId,
        version: i64,
        changes: Vec<FieldChange>,
        comment: Option<String>,
    ) -> Result<()> {
        if self.audit_off.contains(&kind) {
            return Ok(());
        }
        let head = match self.head.take() {
            Some(h) => h,
            None => self.tx.audit_head(&self.ctx.tenant)?,
        };
        let (seq, prev_hash) = match head {
            Some((s, h)) => (s + 1, h),
            None => (1, String::new()),
        };
        let entry = AuditEntry {
            tenant: self.ctx.tenant.clone(),
            seq,
            at: self.now,
            user_id: self.ctx.user_id,
            origin: self.ctx.origin.clone(),
            operation,
            kind,
            record_id,
            version,
            changes,
            comment,
            prev_hash,
            hash: String::new(),
        }
        .seal_with(&mut self.hash_buf);
        self.tx.append_audit(&entry)?;
        self.head = Some(Some((seq, entry.hash)));
        Ok(())
    }

    /// Appends an outbox event.
    pub(crate) fn event(
        &mut self,
        event_type: &str,
        kind: EntityKind,
        record_id: RecordId,
        payload: serde_json::Value,
    ) -> Result<u64> {
        self.tx.append_event(&NewEvent {
            tenant: self.ctx.tenant.clone(),
            at: self.now,
            event_type: event_type.to_owned(),
            kind,
            record_id,
            user_id: self.ctx.user_id,
            payload,
        })
    }

    /// Inserts a record with its audit entry and `record.created` event.
    pub(crate) fn insert(&mut self, r: &Record, operation: Operation) -> Result<()> {
        self.tx.insert(r)?;
        let changes = diff(&Fields::new(), &Fields::new(), &r.fields, &r.custom);
        self.audit(
            operation,
            r.meta.kind,
            r.meta.id,
            r.meta.version,
            changes,
            None,
        )?;
        self.event(
            "record.created",
            r.meta.kind,
            r.meta.id,
            json!({"version": r.meta.version}),
        )?;
        self.written
            .push((r.meta.kind, r.meta.id, "record.created".to_owned()));
        if cached(r.meta.kind) {
            self.config_changed = true;
        }
        Ok(())
    }

    /// Replaces `old` by `new` (version bumped here), with its audit entry and event.
    pub(crate) fn replace(
        &mut self,
        old: &Record,
        new: Record,
        operation: Operation,
        event_type: &str,
        comment: Option<String>,
    ) -> Result<Record> {
        self.replace_with(old, new, operation, event_type, json!({}), comment)
    }

    /// [`Uow::replace`] with `extra` fields added to the event payload `{version, fields}`.
    pub(crate) fn replace_with(
        &mut self,
        old: &Record,
        mut new: Record,
        operation: Operation,
        event_type: &str,
        extra: serde_json::Value,
        comment: Option<String>,
    ) -> Result<Record> {
        new.meta.version = old.meta.version + 1;
        new.meta.updated_at = self.now;
        new.meta.updated_by = self.ctx.user_id;
        self.tx.update(&new, old.meta.version)?;
        let changes = diff(&old.fields, &old.custom, &new.fields, &new.custom);
        let names: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        let mut payload = json!({"version": new.meta.version, "fields": names});
        if let (Some(p), serde_json::Value::Object(x)) = (payload.as_object_mut(), extra) {
            p.extend(x);
        }
        self.event(event_type, new.meta.kind, new.meta.id, payload)?;
        self.written
            .push((new.meta.kind, new.meta.id, event_type.to_owned()));
        self.audit(
            operation,
            new.meta.kind,
            new.meta.id,
            new.meta.version,
            changes,
            comment,
        )?;
        if cached(new.meta.kind) {
            self.config_changed = true;
        }
        Ok(new)
    }

    /// What a failed step must give back besides the rows: the audit chain head, the list of
    /// records written and the configuration flag.
    pub(crate) fn mark(&self) -> UowMark {
        UowMark {
            head: self.head.clone(),
            written: self.written.len(),
            config_changed: self.config_changed,
        }
    }

    /// Returns the in-memory state to `mark` (after the store rolled back to the matching
    /// savepoint).
    pub(crate) fn reset(&mut self, mark: UowMark) {
        self.head = mark.head;
        self.written.truncate(mark.written);
        self.config_changed = mark.config_changed;
    }

    pub(crate) fn commit(mut self, crm: &Engine) -> Result<()> {
        crm.before_commit(&mut self)?;
        let tenant = self.ctx.tenant.clone();
        let changed = self.config_changed;
        self.tx.commit()?;
        if changed {
            crm.invalidate(&tenant);
        }
        Ok(())
    }
}

impl Engine {
    /// Starts a unit of work for `ctx`: the write transaction, with the tenant's audit settings.
    pub(crate) fn begin(&self, ctx: &Context, now: DateTime<Utc>) -> Result<Uow<'_>> {
        let audit_off = self.tenant_cache(&ctx.tenant)?.audit_off.clone();
        let mut uow = Uow::new(self.door().write()?, ctx, now);
        uow.audit_off = audit_off;
        Ok(uow)
    }

    /// Validates caller input for `kind` and merges it onto `base` (the current record for updates,
    /// defaults for creates). Returns built-in fields and custom values by storage key.
    pub(crate) fn apply_input(
        &self,
        p: &Principal,
        customs: &CustomCatalog,
        kind: EntityKind,
        input: Fields,
        base: Option<&Record>,
    ) -> Result<(Fields, Fields)> {
        let schema = kind.schema();
        let (mut fields, mut custom) = match base {
            Some(r) => (r.fields.clone(), r.custom.clone()),
            None => {
                let mut f = Fields::new();
                for spec in &schema.fields {
                    if let Some(d) = &spec.default {
                        f.insert(spec.name.to_owned(), d.clone());
                    }
                }
                (f, Fields::new())
            }
        };
        for (name, value) in input {
            if let Some(cname) = name.strip_prefix("custom.") {
                if !kind.allows_custom_fields() {
                    return Err(CrmError::validation(
                        name.as_str(),
                        "unknown_field",
                        format!("{kind} has no custom fields"),
                    ));
                }
                let def = customs.by_name(kind, cname).ok_or_else(|| {
                    CrmError::validation(
                        name.as_str(),
                        "unknown_field",
                        format!("{kind} has no custom field `{cname}`"),
                    )
                })?;
                access::check_field_write(p, kind, &format!("custom.{}", def.key))
                    .map_err(|e| e.in_field_named(&name))?;
                let v = normalise_value(&def.ty, value, &name, &self.phones)?;
                if v.is_null() {
                    custom.remove(&def.key);
                } else {
                    custom.insert(def.key.clone(), v);
                }
            } else {
                let spec = schema.field(&name).ok_or_else(|| {
                    CrmError::validation(
                        name.as_str(),
                        "unknown_field",
                        format!("{kind} has no field `{name}`"),
                    )
                })?;
                if spec.system {
                    return Err(CrmError::validation(
                        name.as_str(),
                        "system_field",
                        format!("field `{name}` is set by the library"),
                    ));
                }
                access::check_field_write(p, kind, &name)?;
                if kind == EntityKind::User && USER_ASSIGNMENTS.contains(&name.as_str()) {
                    require_assignment(p, &name)?;
                }
                let v = normalise_value(&spec.ty, value, &name, &self.phones)?;
                if v.is_null() {
                    fields.remove(&name);
                } else {
                    fields.insert(name, v);
                }
            }
        }
        Ok((fields, custom))
    }

    /// Checks required fields, kind rules and references, and computes derived fields.
    ///
    /// References are looked up as `p` may read: a record out of their reach is refused exactly as a
    /// missing one is, so a write is no oracle of what exists.
    #[allow(clippy::too_many_arguments)] // transaction, principal, configuration, context, record
    pub(crate) fn check_record(
        &self,
        tx: &Writer<'_>,
        p: &Principal,
        cache: &TenantCache,
        ctx: &Context,
        r: &mut Record,
        old: Option<&Record>,
    ) -> Result<()> {
        let kind = r.meta.kind;
        let scoped = tx.scoped(Who {
            p,
            cache,
            tenant: &ctx.tenant,
            now: self.now(),
        });
        super::rules::kind_rules(self, scoped, cache, ctx, r, old)?;
        for spec in &kind.schema().fields {
            if spec.required && r.get(spec.name).is_null() {
                return Err(CrmError::validation(
                    spec.name,
                    "required",
                    format!("field `{}` is required", spec.name),
                ));
            }
        }
        for def in cache.customs.all(kind) {
            if def.required && !def.archived && r.custom(&def.key).is_null() {
                let f = format!("custom.{}", def.name);
                return Err(CrmError::validation(
                    f.as_str(),
                    "required",
                    format!("field `{f}` is required"),
                ));
            }
        }
        // References point at live records of the same tenant, that the writer may read.
        for (to, id, field) in references(cache, r, old) {
            scoped.reference(to, id, &field)?;
        }
        Ok(())
    }

    fn new_record(
        &self,
        ctx: &Context,
        kind: EntityKind,
        owner: RecordId,
        now: DateTime<Utc>,
        fields: Fields,
        custom: Fields,
    ) -> Record {
        Record {
            meta: RecordMeta {
                kind,
                id: RecordId::new_at(now),
                tenant: ctx.tenant.clone(),
                owner_id: owner,
                created_at: now,
                created_by: ctx.user_id,
                updated_at: now,
                updated_by: ctx.user_id,
                version: 1,
                deleted_at: None,
            },
            fields,
            custom,
        }
    }

    fn owner_for(
        &self,
        p: &Principal,
        kind: EntityKind,
        cache: &TenantCache,
        owner: Option<RecordId>,
    ) -> Result<RecordId> {
        match owner {
            None => Ok(p.user_id),
            Some(o) if o == p.user_id => Ok(o),
            Some(o) => {
                let all = p
                    .policy
                    .rule(kind)
                    .is_some_and(|(_, r)| r.write.contains(&access::Scope::All));
                if !all || p.external {
                    return Err(CrmError::permission_denied(
                        "assign",
                        kind.name(),
                        "record_scope",
                    ));
                }
                if cache.org.principal(o).is_none() {
                    return Err(CrmError::validation(
                        "owner_id",
                        "reference",
                        format!("no active user with id `{o}`"),
                    ));
                }
                Ok(o)
            }
        }
    }

    /// Creates a record. Fields are validated and normalised (phones to E.164, e-mails lower-cased);
    /// custom fields are named `custom.<name>`.
    pub(crate) fn create(
        &self,
        ctx: &Context,
        kind: EntityKind,
        new: impl Into<NewRecord>,
    ) -> Result<Record> {
        let new = new.into();
        self.in_transaction(ctx, |tx| tx.create(kind, new))
    }

    /// Creates many records of one type in one transaction: all of them or, if one is invalid, none
    /// (the error names the row as `rows[i].field`).
    pub(crate) fn create_many(
        &self,
        ctx: &Context,
        kind: EntityKind,
        rows: Vec<NewRecord>,
    ) -> Result<Vec<Record>> {
        self.in_transaction(ctx, |tx| tx.create_many(kind, rows))
    }

    /// Changes fields of a record. `expected_version` is the version the caller read: if the record
    /// changed since, the update is a `Conflict` and nothing is written. Setting a field to `Null`
    /// clears it. Writing a hidden or read-only field refuses the whole update.
    pub(crate) fn update(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        expected_version: i64,
        changes: Fields,
    ) -> Result<Record> {
        self.in_transaction(ctx, |tx| tx.update(kind, id, expected_version, changes))
    }

    /// Moves a record to the trash (a soft delete, recorded). `expected_version`, when given, guards
    /// against deleting a record changed since it was read.
    pub(crate) fn delete(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        expected_version: Option<i64>,
    ) -> Result<()> {
        self.in_transaction(ctx, |tx| tx.delete(kind, id, expected_version))
    }

    /// Brings a record back from the trash (recorded). Today's validation rules apply to it.
    pub(crate) fn restore(&self, ctx: &Context, kind: EntityKind, id: RecordId) -> Result<Record> {
        self.in_transaction(ctx, |tx| tx.restore(kind, id))
    }

    /// Removes a record in the trash for good. The audit log keeps its history and records the purge.
    pub(crate) fn purge(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        reason: &str,
    ) -> Result<()> {
        self.in_transaction(ctx, |tx| tx.purge(kind, id, reason))
    }

    // ------------------------------------------------- the writes, inside a unit of work

    /// [`Engine::create_many`] inside `uow`, for `p`; returns the records as `p` may see them.
    pub(crate) fn create_many_in(
        &self,
        uow: &mut Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        kind: EntityKind,
        rows: Vec<NewRecord>,
    ) -> Result<Vec<Record>> {
        refuse_system_managed(kind, "create")?;
        self.require(p, Action::Create, kind)?;
        let (ctx, now) = (uow.ctx.clone(), uow.now);
        let mut out = Vec::with_capacity(rows.len());
        let many = rows.len() > 1;
        for (i, row) in rows.into_iter().enumerate() {
            let row_err = |e: CrmError| if many { in_row(e, i) } else { e };
            let owner = self
                .owner_for(p, kind, cache, row.owner_id)
                .map_err(row_err)?;
            let (fields, custom) = self
                .apply_input(p, &cache.customs, kind, row.fields, None)
                .map_err(row_err)?;
            let mut r = self.new_record(&ctx, kind, owner, now, fields, custom);
            self.check_record(&uow.tx, p, cache, &ctx, &mut r, None)
                .map_err(row_err)?;
            self.before_insert(uow, cache, &mut r).map_err(row_err)?;
            uow.insert(
                &r,
                if kind.is_configuration() {
                    Operation::Configure
                } else {
                    Operation::Create
                },
            )
            .map_err(row_err)?;
            if kind == EntityKind::CustomField {
                if let (Some(entity), Some(key), Ok(ty)) = (
                    r.text("entity").and_then(|e| e.parse().ok()),
                    r.text("key"),
                    custom_field::type_of(&r),
                ) {
                    uow.tx.index_custom_field(entity, key, &ty)?;
                }
            }
            out.push(r);
        }
        Ok(out.into_iter().map(|r| self.present(p, cache, r)).collect())
    }

    /// Loads a record for a change by `p`: `NotFound` if they may not read it, `PermissionDenied`
    /// naming `action` if they may read but not change it.
    pub(crate) fn fetch_for_write(
        &self,
        uow: &Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        kind: EntityKind,
        id: RecordId,
        action: Action,
    ) -> Result<Record> {
        self.require(p, Action::Read, kind)
            .map_err(|_| CrmError::not_found(kind.name(), id))?;
        let r = self.fetch_visible(uow.tx.view(), p, cache, &uow.ctx, kind, id, Action::Read)?;
        self.require(p, action, kind)?;
        if r.meta.owner_id != p.user_id || kind.is_configuration() {
            self.fetch_visible(uow.tx.view(), p, cache, &uow.ctx, kind, id, action)
                .map_err(|e| match e.kind {
                    ErrorKind::NotFound => {
                        CrmError::permission_denied(action.name(), kind.name(), "record_scope")
                    }
                    _ => e,
                })?;
        }
        Ok(r)
    }

    /// Loads a record `p` may change, not in the trash, at the version the caller read — else
    /// `NotFound`, `PermissionDenied` or `Conflict`.
    pub(crate) fn fetch_current(
        &self,
        uow: &Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        kind: EntityKind,
        id: RecordId,
        expected_version: i64,
    ) -> Result<Record> {
        let r = self.fetch_for_write(uow, p, cache, kind, id, Action::Update)?;
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
        Ok(r)
    }

    /// [`Engine::update`] inside `uow`.
    #[allow(clippy::too_many_arguments)] // unit of work, principal, configuration and the call's own
    pub(crate) fn update_in(
        &self,
        uow: &mut Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        kind: EntityKind,
        id: RecordId,
        expected_version: i64,
        changes: Fields,
    ) -> Result<Record> {
        refuse_system_managed(kind, "update")?;
        let old = self.fetch_current(uow, p, cache, kind, id, expected_version)?;
        let (fields, custom) = self.apply_input(p, &cache.customs, kind, changes, Some(&old))?;
        let mut new = Record {
            meta: old.meta.clone(),
            fields,
            custom,
        };
        let ctx = uow.ctx.clone();
        self.check_record(&uow.tx, p, cache, &ctx, &mut new, Some(&old))?;
        self.before_update(uow, cache, &old, &mut new)?;
        if new.fields == old.fields && new.custom == old.custom {
            return Ok(self.present(p, cache, old));
        }
        let op = if kind.is_configuration() {
            Operation::Configure
        } else {
            Operation::Update
        };
        let saved = uow.replace(&old, new, op, "record.updated", None)?;
        Ok(self.present(p, cache, saved))
    }

    /// [`Engine::delete`] inside `uow`.
    pub(crate) fn delete_in(
        &self,
        uow: &mut Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        kind: EntityKind,
        id: RecordId,
        expected_version: Option<i64>,
    ) -> Result<()> {
        refuse_system_managed(kind, "delete")?;
        let old = self.fetch_for_write(uow, p, cache, kind, id, Action::Delete)?;
        if let Some(v) = expected_version {
            if v != old.meta.version {
                return Err(CrmError::conflict(
                    kind.name(),
                    "stale_version",
                    "the record changed since it was read",
                ));
            }
        }
        if old.meta.deleted_at.is_some() {
            return Ok(());
        }
        let mut new = old.clone();
        new.meta.deleted_at = Some(uow.now);
        uow.replace(&old, new, Operation::Delete, "record.deleted", None)?;
        Ok(())
    }

    /// [`Engine::restore`] inside `uow`.
    pub(crate) fn restore_in(
        &self,
        uow: &mut Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Record> {
        let old = self.fetch_for_write(uow, p, cache, kind, id, Action::Delete)?;
        if old.meta.deleted_at.is_none() {
            return Ok(self.present(p, cache, old));
        }
        let mut new = old.clone();
        new.meta.deleted_at = None;
        let ctx = uow.ctx.clone();
        // Today's rules apply to the record coming back; the references it already holds need only
        // still point at live records (they are ids the user already sees in the record).
        self.check_record(&uow.tx, p, cache, &ctx, &mut new, Some(&old))?;
        for (to, id, field) in references(cache, &new, None) {
            let target = uow.tx.unscoped(Why::KnownReference).get(
                to,
                &ctx.tenant,
                id,
                &Default::default(),
            )?;
            if target.is_none_or(|t| t.meta.deleted_at.is_some()) {
                // A field hidden from the user is not named, nor its value.
                let hidden = access::field_access(p, new.meta.kind, &field)
                    == Some(access::FieldAccess::Hidden);
                return Err(if hidden {
                    CrmError::validation(
                        "record",
                        "reference",
                        "the record refers to a record that is no longer live",
                    )
                } else {
                    CrmError::validation(
                        field.as_str(),
                        "reference",
                        format!("no live {to} with id `{id}`"),
                    )
                });
            }
        }
        let saved = uow.replace(&old, new, Operation::Restore, "record.restored", None)?;
        Ok(self.present(p, cache, saved))
    }

    /// [`Engine::purge`] inside `uow`.
    pub(crate) fn purge_in(
        &self,
        uow: &mut Uow<'_>,
        p: &Principal,
        cache: &TenantCache,
        kind: EntityKind,
        id: RecordId,
        reason: &str,
    ) -> Result<()> {
        let old = self.fetch_for_write(uow, p, cache, kind, id, Action::Delete)?;
        if old.meta.deleted_at.is_none() {
            return Err(CrmError::conflict(
                kind.name(),
                "not_in_trash",
                "only records in the trash can be purged",
            ));
        }
        uow.tx.purge(kind, &uow.ctx.tenant, id)?;
        uow.audit(
            Operation::Purge,
            kind,
            id,
            old.meta.version + 1,
            Vec::new(),
            Some(reason.to_owned()),
        )?;
        uow.event("record.purged", kind, id, json!({}))?;
        if cached(kind) {
            uow.config_changed = true;
        }
        Ok(())
    }
}

/// The fields of a user that grant rights: which role, teams, territories, manager and partner
/// organisation they have, whether they are external and whether they may act. Setting them is
/// configuration, whoever may otherwise write the user record (their own included).
pub(crate) const USER_ASSIGNMENTS: &[&str] = &[
    "role_id",
    "team_ids",
    "territory_ids",
    "manager_id",
    "user_type",
    "partner_account_id",
    "active",
    "seniority",
];

/// Refuses setting `field` of a user unless `p` may configure users (their role grants `configure`
/// on `user`).
pub(crate) fn require_assignment(p: &Principal, field: &str) -> Result<()> {
    let may = p
        .policy
        .rule(EntityKind::User)
        .is_some_and(|(_, r)| r.actions.contains(&Action::Configure));
    if may && p.active && !p.external {
        Ok(())
    } else {
        Err(CrmError::field_denied(
            "configure",
            EntityKind::User.name(),
            field,
            "assignment",
        ))
    }
}

/// The references `r` holds (kind, id, field name), leaving out those unchanged from `old`.
fn references(
    cache: &TenantCache,
    r: &Record,
    old: Option<&Record>,
) -> Vec<(EntityKind, RecordId, String)> {
    let kind = r.meta.kind;
    let mut out = Vec::new();
    for spec in &kind.schema().fields {
        let v = r.get(spec.name);
        if old.is_some_and(|o| o.get(spec.name) == v) {
            continue;
        }
        match (&spec.ty, v) {
            (FieldType::Reference { to }, Value::Ref(id)) => {
                out.push((*to, *id, spec.name.to_owned()))
            }
            (FieldType::AnyReference, Value::Ref(id)) => {
                if let Some(k) = r.text("record_kind").and_then(|k| k.parse().ok()) {
                    out.push((k, *id, spec.name.to_owned()));
                }
            }
            (FieldType::MultiReference { to }, Value::List(ids)) => out.extend(
                ids.iter()
                    .filter_map(|s| s.parse().ok())
                    .map(|id| (*to, id, spec.name.to_owned())),
            ),
            _ => {}
        }
    }
    for def in cache.customs.all(kind) {
        if let (FieldType::Reference { to }, Value::Ref(id)) = (&def.ty, r.custom(&def.key)) {
            if old.is_some_and(|o| o.custom(&def.key) == &Value::Ref(*id)) {
                continue;
            }
            out.push((*to, *id, format!("custom.{}", def.name)));
        }
    }
    out
}

/// Whether records of `kind` feed the per-tenant cache (organisation, custom fields, audit switches),
/// so that writing them must refresh it.
fn cached(kind: EntityKind) -> bool {
    matches!(
        kind,
        EntityKind::User | EntityKind::Role | EntityKind::CustomField | EntityKind::AuditSetting
    )
}

fn refuse_system_managed(kind: EntityKind, action: &str) -> Result<()> {
    if kind.is_system_managed() {
        Err(CrmError::permission_denied(
            action,
            kind.name(),
            "system_managed",
        ))
    } else {
        Ok(())
    }
}

fn in_row(mut e: CrmError, i: usize) -> CrmError {
    e.field = Some(match e.field.take() {
        Some(f) => format!("rows[{i}].{f}"),
        None => format!("rows[{i}]"),
    });
    e
}
