//! Tenant bootstrap, sharing, explanations and access reviews.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{self, Action, Decision, FieldAccess, Policy};
use crate::audit::{Operation, Origin};
use crate::error::{CrmError, Result};
use crate::fields;
use crate::id::{RecordId, TenantId};
use crate::query::{Column, Cond, Op, Query};
use crate::record::{Record, RecordMeta};
use crate::schema::EntityKind;
use crate::value::{Fields, Value};

use super::door::{View, Why};
use super::{load_all, Context, Engine, TenantCache};

/// Who a record is shared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    /// One user.
    User(RecordId),
    /// Every member of a team.
    Team(RecordId),
    /// Every external user of a partner organisation (an account).
    Partner(RecordId),
}

/// Who can read a record, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessReview {
    /// The user.
    pub user_id: RecordId,
    /// The user's name.
    pub username: String,
    /// The decision and the rule behind it.
    pub decision: Decision,
}

impl Engine {
    /// Sets up an empty tenant: an `Administrator` role allowed everything and its first user.
    /// Returns the administrator's context. Refused when the tenant already has users. This is the
    /// only call without an acting user, and it is recorded in the audit log as the new administrator's.
    pub(crate) fn bootstrap(
        &self,
        tenant: &TenantId,
        admin_username: &str,
        origin: Origin,
    ) -> Result<Context> {
        let now = self.now();
        let admin_id = RecordId::new_at(now);
        let ctx = Context {
            tenant: tenant.clone(),
            user_id: admin_id,
            origin,
        };
        let mut uow = self.begin(&ctx, now)?;
        if !load_all(uow.tx.unscoped(Why::Host), EntityKind::User, tenant)?.is_empty() {
            return Err(CrmError::conflict(
                "tenant",
                "already_bootstrapped",
                "the tenant already has users",
            ));
        }
        let role_id = RecordId::new_at(now);
        let meta = |kind, id| RecordMeta {
            kind,
            id,
            tenant: tenant.clone(),
            owner_id: admin_id,
            created_at: now,
            created_by: admin_id,
            updated_at: now,
            updated_by: admin_id,
            version: 1,
            deleted_at: None,
        };
        let role = Record {
            meta: meta(EntityKind::Role, role_id),
            fields: fields! {
                "name" => "Administrator",
                "description" => "Everything, everywhere in the tenant",
                "policy" => Value::Json(Policy::admin().to_json()),
            },
            custom: Fields::new(),
        };
        let username = admin_username.trim();
        if username.is_empty() {
            return Err(CrmError::validation(
                "username",
                "required",
                "field `username` is required",
            ));
        }
        let user = Record {
            meta: meta(EntityKind::User, admin_id),
            fields: fields! {
                "username" => username,
                "user_type" => "internal",
                "role_id" => role_id,
                "seniority" => 10_i64,
                "active" => true,
            },
            custom: Fields::new(),
        };
        uow.insert(&role, Operation::Configure)?;
        uow.insert(&user, Operation::Create)?;
        uow.commit(self)?;
        Ok(ctx)
    }

    /// Shares a record with a user, a team or a partner organisation, for reading or editing, until
    /// an optional instant. Allowed to the record's owner and to users who may configure shares.
    pub(crate) fn share(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
        grantee: Grantee,
        edit: bool,
        until: Option<DateTime<Utc>>,
    ) -> Result<Record> {
        let (p, cache) = self.principal(ctx)?;
        let mut uow = self.begin(ctx, self.now())?;
        let target = self.fetch_visible(uow.tx.view(), &p, &cache, ctx, kind, id, Action::Read)?;
        let admin = access::object_decision(&p, Action::Configure, EntityKind::Share).allowed;
        if target.meta.owner_id != p.user_id && !admin {
            return Err(CrmError::permission_denied(
                "share",
                kind.name(),
                "owner_or_admin",
            ));
        }
        let (field, gid, gkind) = match grantee {
            Grantee::User(g) => ("grantee_user_id", g, EntityKind::User),
            Grantee::Team(g) => ("grantee_team_id", g, EntityKind::Team),
            Grantee::Partner(g) => ("grantee_account_id", g, EntityKind::Account),
        };
        // The grantee: a user or team of the tenant (configuration), or a partner account the
        // sharer may read — one out of their reach is refused as a missing one is.
        let exists = match gkind {
            EntityKind::Account => uow
                .tx
                .scoped(self.who(&p, &cache, ctx))
                .find(gkind, gid, Action::Read)?
                .is_some(),
            _ => uow
                .tx
                .unscoped(Why::Configuration)
                .get(gkind, &ctx.tenant, gid, &Default::default())?
                .is_some(),
        };
        if !exists {
            return Err(CrmError::validation(
                field,
                "reference",
                format!("no {gkind} with id `{gid}`"),
            ));
        }
        let mut fields = fields! {
            "record_kind" => kind.name(),
            "record_id" => id,
            "access" => if edit { "edit" } else { "read" },
        };
        fields.insert(field.to_owned(), Value::Ref(gid));
        if let Some(u) = until {
            fields.insert("expires_at".into(), Value::Timestamp(u));
        }
        let now = uow.now;
        let share = Record {
            meta: RecordMeta {
                kind: EntityKind::Share,
                id: RecordId::new_at(now),
                tenant: ctx.tenant.clone(),
                owner_id: p.user_id,
                created_at: now,
                created_by: p.user_id,
                updated_at: now,
                updated_by: p.user_id,
                version: 1,
                deleted_at: None,
            },
            fields,
            custom: Fields::new(),
        };
        uow.insert(&share, Operation::Share)?;
        uow.event("record.shared", kind, id, serde_json::json!({"share_id": share.meta.id.to_string(), "access": if edit {"edit"} else {"read"}}))?;
        uow.commit(self)?;
        Ok(share)
    }

    /// Revokes a share (moves it to the trash, recorded). Allowed to whoever made it and to admins.
    pub(crate) fn unshare(&self, ctx: &Context, share_id: RecordId) -> Result<()> {
        let (p, cache) = self.principal(ctx)?;
        let mut uow = self.begin(ctx, self.now())?;
        let share = uow
            .tx
            .unscoped(Why::Configuration)
            .get(
                EntityKind::Share,
                &ctx.tenant,
                share_id,
                &Default::default(),
            )?
            .filter(|s| s.meta.deleted_at.is_none())
            .ok_or_else(|| CrmError::not_found("share", share_id))?;
        let admin = access::object_decision(&p, Action::Configure, EntityKind::Share).allowed;
        if share.meta.owner_id != p.user_id && !admin {
            return Err(CrmError::not_found("share", share_id));
        }
        let _ = cache;
        let mut new = share.clone();
        new.meta.deleted_at = Some(uow.now);
        uow.replace(
            &share,
            new,
            Operation::Share,
            "record.unshared",
            Some("share revoked".into()),
        )?;
        uow.commit(self)
    }

    /// Live shares of one record.
    fn shares_of(
        &self,
        tx: View<'_>,
        tenant: &TenantId,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Vec<Record>> {
        let col = |name: &'static str| Column::Builtin {
            name,
            ty: EntityKind::Share
                .schema()
                .field(name)
                .map(|f| f.ty.clone())
                .unwrap_or(crate::value::FieldType::Text),
        };
        let q = Query::all(EntityKind::Share, tenant.clone())
            .and(Cond::Compare(
                col("record_kind"),
                Op::Eq,
                Value::Text(kind.name().into()),
            ))
            .and(Cond::Compare(col("record_id"), Op::Eq, Value::Ref(id)));
        tx.unscoped(Why::Decision).query(&q)
    }

    #[allow(clippy::too_many_arguments)] // the facts of one decision, all borrowed from the caller
    fn explain_with(
        &self,
        tx: View<'_>,
        cache: &TenantCache,
        ctx: &Context,
        p: &access::Principal,
        action: Action,
        record: &Record,
        shares: &[Record],
    ) -> Result<Decision> {
        let now = self.now();
        let account = match record.meta.kind {
            EntityKind::Account => Some(record.clone()),
            k => match k.account_link().and_then(|f| record.reference(f)) {
                Some(aid) => tx.unscoped(Why::Decision).get(
                    EntityKind::Account,
                    &ctx.tenant,
                    aid,
                    &cache.customs.types(EntityKind::Account),
                )?,
                None => None,
            },
        };
        let territory = account.and_then(|a| a.reference("territory_id"));
        let principals = access::share_principals(p);
        let mut best: Option<(String, bool)> = None;
        for s in shares {
            if s.get("expires_at").as_timestamp().is_some_and(|t| t <= now) {
                continue;
            }
            let hit = ["grantee_user_id", "grantee_team_id", "grantee_account_id"]
                .iter()
                .find_map(|f| {
                    s.reference(f)
                        .filter(|g| principals.contains(g))
                        .map(|_| *f)
                });
            if let Some(f) = hit {
                let edit = s.text("access") == Some("edit");
                let via = match f {
                    "grantee_user_id" => "the user".to_owned(),
                    "grantee_team_id" => "one of the user's teams".to_owned(),
                    _ => "the user's partner organisation".to_owned(),
                };
                if best.as_ref().is_none_or(|(_, e)| !e && edit) {
                    best = Some((via, edit));
                }
            }
        }
        Ok(access::explain_record(
            p,
            action,
            record,
            territory,
            best.as_ref().map(|(v, e)| (v.as_str(), *e)),
        ))
    }

    fn require_admin(&self, p: &access::Principal) -> Result<()> {
        if access::object_decision(p, Action::Configure, EntityKind::Role).allowed {
            Ok(())
        } else {
            Err(CrmError::permission_denied(
                "configure",
                "role",
                "object_permission",
            ))
        }
    }

    /// Says whether `user_id` may take `action` on a record and which rule decided, in words an
    /// administrator understands. Asked by an administrator, or by a user about themselves.
    pub(crate) fn explain(
        &self,
        ctx: &Context,
        user_id: RecordId,
        action: Action,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Decision> {
        let (me, cache) = self.principal(ctx)?;
        // The record is one the caller may read: otherwise it is not found, whoever is asked about
        // and whatever the caller's role (an explanation is no oracle of what exists).
        let tx = self.door().read()?;
        let record = tx
            .scoped(self.who(&me, &cache, ctx))
            .get(kind, id, Action::Read)?;
        if me.user_id != user_id {
            self.require_admin(&me)?;
        }
        let p = cache
            .org
            .principal(user_id)
            .ok_or_else(|| CrmError::not_found("user", user_id))?;
        let shares = self.shares_of(tx.view(), &ctx.tenant, kind, id)?;
        self.explain_with(tx.view(), &cache, ctx, &p, action, &record, &shares)
    }

    /// Every active user of the tenant and whether they can read a record, with the deciding rule.
    /// For administrators.
    pub(crate) fn who_can_read(
        &self,
        ctx: &Context,
        kind: EntityKind,
        id: RecordId,
    ) -> Result<Vec<AccessReview>> {
        let (me, cache) = self.principal(ctx)?;
        let tx = self.door().read()?;
        let record = tx
            .scoped(self.who(&me, &cache, ctx))
            .get(kind, id, Action::Read)?;
        self.require_admin(&me)?;
        let shares = self.shares_of(tx.view(), &ctx.tenant, kind, id)?;
        let mut out = Vec::new();
        for p in cache.org.principals() {
            let decision =
                self.explain_with(tx.view(), &cache, ctx, p, Action::Read, &record, &shares)?;
            out.push(AccessReview {
                user_id: p.user_id,
                username: p.username.clone(),
                decision,
            });
        }
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }

    /// The roles whose holders can read field `field` of `kind` (built-in, or `custom.<name>`), with
    /// `read` or `read_only`; roles that cannot read the type or have the field hidden are left out.
    pub(crate) fn roles_reading_field(
        &self,
        ctx: &Context,
        kind: EntityKind,
        field: &str,
    ) -> Result<Vec<(RecordId, String, String)>> {
        let (me, cache) = self.principal(ctx)?;
        self.require_admin(&me)?;
        let tx = self.door().read()?;
        let roles = load_all(
            tx.unscoped(Why::Configuration),
            EntityKind::Role,
            &ctx.tenant,
        )?;
        // A custom field's rules are keyed by its stable key.
        let field = match field.strip_prefix("custom.") {
            Some(name) => match cache.customs.by_name(kind, name) {
                Some(def) => format!("custom.{}", def.key),
                None => field.to_owned(),
            },
            None => field.to_owned(),
        };
        let mut out = Vec::new();
        for r in roles {
            let policy = match r.get("policy") {
                Value::Json(j) => Policy::from_json(j)?,
                _ => Policy::default(),
            };
            let reads = policy
                .rule(kind)
                .is_some_and(|(_, rule)| rule.actions.contains(&Action::Read));
            if !reads {
                continue;
            }
            let allow_list = policy.field_mode == Some(access::FieldMode::AllowList);
            match policy.field_access(kind, &field) {
                Some(FieldAccess::Hidden) => {}
                None if allow_list => {}
                Some(FieldAccess::ReadOnly) => {
                    out.push((r.meta.id, r.label(), "read_only".to_owned()))
                }
                Some(FieldAccess::Visible) | None => {
                    out.push((r.meta.id, r.label(), "read".to_owned()))
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }
}
