//! Access control, pure: who may see or change what.
//!
//! A role carries a [`Policy`]: object permissions per entity type (create, read, update, delete,
//! export, configure), record scopes for reading and for writing, and field rules (hidden, read-only).
//! Sharing grants single records to users, teams or partner organisations. Decisions are made in memory
//! from an [`OrgSnapshot`]; list queries get the same decision as a [`Cond`] the database evaluates.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::id::RecordId;
use crate::query::Cond;
use crate::record::Record;
use crate::schema::EntityKind;

/// Something a user may do to records of an entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create records.
    Create,
    /// Read records.
    Read,
    /// Change records (and make lifecycle transitions).
    Update,
    /// Move records to the trash, restore or purge them.
    Delete,
    /// Export records in bulk.
    Export,
    /// Change configuration (roles, custom fields, audit switches, pipelines).
    Configure,
}

impl Action {
    /// The stable lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Export => "export",
            Action::Configure => "configure",
        }
    }

    /// Whether this action changes a record (and so uses the write scope).
    pub fn is_write(self) -> bool {
        !matches!(self, Action::Read | Action::Export)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which records of a type a role reaches (besides what is shared with the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Records the user owns.
    Own,
    /// Records owned by the user or a member of one of the user's teams.
    Team,
    /// Records owned by the user or anyone below them in the manager hierarchy, at any depth.
    Subordinates,
    /// Records whose account lies in one of the user's territories (plus the user's own).
    Territory,
    /// Every record of the tenant.
    All,
}

impl Scope {
    /// The stable lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Own => "own",
            Scope::Team => "team",
            Scope::Subordinates => "subordinates",
            Scope::Territory => "territory",
            Scope::All => "all",
        }
    }
}

/// What a role may do with one entity type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRule {
    /// The actions allowed.
    #[serde(default)]
    pub actions: BTreeSet<Action>,
    /// Scopes (a union) for reading and exporting. Own records are always in scope.
    #[serde(default)]
    pub read: Vec<Scope>,
    /// Scopes (a union) for updating and deleting. Own records are always in scope.
    #[serde(default)]
    pub write: Vec<Scope>,
}

impl ObjectRule {
    /// A rule allowing `actions` with the given read and write scopes.
    pub fn new(actions: &[Action], read: &[Scope], write: &[Scope]) -> Self {
        ObjectRule {
            actions: actions.iter().copied().collect(),
            read: read.to_vec(),
            write: write.to_vec(),
        }
    }
}

/// How a role sees one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldAccess {
    /// The field never leaves the library for holders of the role, and may not be filtered or sorted on.
    Hidden,
    /// The field is shown but may not be set.
    ReadOnly,
    /// The field is shown and may be set: the grant of an allow-list policy (see [`FieldMode`]);
    /// in an open policy the same as no rule.
    Visible,
}

/// How a role's field rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldMode {
    /// Every field is visible and writable unless a rule hides it or makes it read-only.
    Open,
    /// Only the fields a rule grants (`visible` or `read_only`) are shown; every other field —
    /// a custom field defined later included — is hidden until granted.
    AllowList,
}

/// The access configuration of a role, stored as the role's `policy` field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Rules per entity type name (`account`); `*` applies to types not listed.
    #[serde(default)]
    pub objects: BTreeMap<String, ObjectRule>,
    /// Field rules keyed `entity.field` (`account.vat_number`); a custom field's rule is keyed by
    /// its stable key (`contact.custom.score`: the name it was created with), so it follows the
    /// field through renames.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldAccess>,
    /// How `fields` reads: open (the default for internal users) or an allow-list (the default for
    /// external users, whose role leaves it unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_mode: Option<FieldMode>,
    /// Named capabilities beyond CRUD (`approve_quotes`).
    #[serde(default)]
    pub capabilities: BTreeSet<String>,
}

impl Policy {
    /// Everything, everywhere: the administrator's policy.
    pub fn admin() -> Self {
        let all = [
            Action::Create,
            Action::Read,
            Action::Update,
            Action::Delete,
            Action::Export,
            Action::Configure,
        ];
        let mut p = Policy::default();
        p.objects.insert(
            "*".into(),
            ObjectRule::new(&all, &[Scope::All], &[Scope::All]),
        );
        p
    }

    /// Sets the rule for one entity type.
    pub fn allow(mut self, kind: EntityKind, rule: ObjectRule) -> Self {
        self.objects.insert(kind.name().to_owned(), rule);
        self
    }

    /// Sets a field rule.
    pub fn field(mut self, kind: EntityKind, field: &str, access: FieldAccess) -> Self {
        self.fields
            .insert(format!("{}.{field}", kind.name()), access);
        self
    }

    /// Sets how the field rules read (see [`FieldMode`]).
    pub fn field_mode(mut self, mode: FieldMode) -> Self {
        self.field_mode = Some(mode);
        self
    }

    /// Adds a capability.
    pub fn capability(mut self, name: &str) -> Self {
        self.capabilities.insert(name.to_owned());
        self
    }

    /// The rule for `kind` and where it came from (`account` or `*`).
    pub fn rule(&self, kind: EntityKind) -> Option<(&str, &ObjectRule)> {
        self.objects
            .get_key_value(kind.name())
            .or_else(|| self.objects.get_key_value("*"))
            .map(|(k, r)| (k.as_str(), r))
    }

    /// The rule for field `field` of `kind` (custom fields as `custom.<name>`).
    pub fn field_access(&self, kind: EntityKind, field: &str) -> Option<FieldAccess> {
        if self.fields.is_empty() {
            return None;
        }
        self.fields
            .get(&format!("{}.{field}", kind.name()))
            .copied()
    }

    /// Reads a policy from a role's `policy` JSON, naming the problem if it is malformed.
    pub fn from_json(j: &serde_json::Value) -> Result<Policy> {
        if j.is_null() {
            return Ok(Policy::default());
        }
        serde_json::from_value(j.clone()).map_err(|e| {
            CrmError::validation(
                "policy",
                "policy_syntax",
                format!("malformed role policy: {e}"),
            )
        })
    }

    /// The policy as JSON, for the role's `policy` field.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// One user as the access rules see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: RecordId,
    /// The user's name, for explanations.
    pub username: String,
    /// External (partner) users see only their own and shared records.
    pub external: bool,
    /// The partner organisation of an external user.
    pub partner_account: Option<RecordId>,
    /// Whether the user may act at all.
    pub active: bool,
    /// The role's id and name.
    pub role: Option<(RecordId, String)>,
    /// The role's policy.
    pub policy: Arc<Policy>,
    /// Teams the user belongs to.
    pub teams: Vec<RecordId>,
    /// Territories the user holds.
    pub territories: Vec<RecordId>,
    /// The user and every member of the user's teams.
    pub teammates: Vec<RecordId>,
    /// The user and everyone below them in the manager hierarchy.
    pub subordinates: Vec<RecordId>,
    /// Seniority level (assignment rules use it).
    pub seniority: i64,
}

impl Principal {
    /// Whether the user holds a capability through their role.
    pub fn has_capability(&self, name: &str) -> bool {
        self.policy.capabilities.contains(name)
    }
}

/// The organisation of one tenant: users, their roles, teams, territories and managers, in memory.
#[derive(Debug, Default, Clone)]
pub struct OrgSnapshot {
    principals: HashMap<RecordId, Arc<Principal>>,
}

impl OrgSnapshot {
    /// Builds the snapshot from user and role records.
    pub fn build(users: &[Record], roles: &[Record]) -> Self {
        let role_policies: HashMap<RecordId, (String, Arc<Policy>)> = roles
            .iter()
            .filter(|r| r.meta.deleted_at.is_none())
            .map(|r| {
                let policy = match r.get("policy") {
                    crate::value::Value::Json(j) => Policy::from_json(j).unwrap_or_default(),
                    _ => Policy::default(),
                };
                (r.meta.id, (r.label(), Arc::new(policy)))
            })
            .collect();
        let live: Vec<&Record> = users
            .iter()
            .filter(|u| u.meta.deleted_at.is_none())
            .collect();
        let ids = |r: &Record, f: &str| -> Vec<RecordId> {
            r.get(f)
                .as_list()
                .map(|l| l.iter().filter_map(|s| s.parse().ok()).collect())
                .unwrap_or_default()
        };
        let mut team_members: HashMap<RecordId, Vec<RecordId>> = HashMap::new();
        let mut reports: HashMap<RecordId, Vec<RecordId>> = HashMap::new();
        for u in &live {
            for t in ids(u, "team_ids") {
                team_members.entry(t).or_default().push(u.meta.id);
            }
            if let Some(m) = u.reference("manager_id") {
                reports.entry(m).or_default().push(u.meta.id);
            }
        }
        let mut principals = HashMap::new();
        for u in &live {
            let id = u.meta.id;
            let teams = ids(u, "team_ids");
            let mut teammates: BTreeSet<RecordId> = BTreeSet::from([id]);
            for t in &teams {
                teammates.extend(team_members.get(t).into_iter().flatten().copied());
            }
            // Everyone below the user, any depth; the visited set stops manager cycles.
            let mut subordinates: BTreeSet<RecordId> = BTreeSet::from([id]);
            let mut stack = vec![id];
            while let Some(m) = stack.pop() {
                for r in reports.get(&m).into_iter().flatten() {
                    if subordinates.insert(*r) {
                        stack.push(*r);
                    }
                }
            }
            let role = u.reference("role_id").and_then(|rid| {
                role_policies
                    .get(&rid)
                    .map(|(name, p)| (rid, name.clone(), p.clone()))
            });
            let (role, policy) = match role {
                Some((rid, name, p)) => (Some((rid, name)), p),
                None => (None, Arc::new(Policy::default())),
            };
            principals.insert(
                id,
                Arc::new(Principal {
                    user_id: id,
                    username: u.text("username").unwrap_or_default().to_owned(),
                    external: u.text("user_type") == Some("external"),
                    partner_account: u.reference("partner_account_id"),
                    active: u.get("active").as_bool().unwrap_or(true),
                    role,
                    policy,
                    teams,
                    territories: ids(u, "territory_ids"),
                    teammates: teammates.into_iter().collect(),
                    subordinates: subordinates.into_iter().collect(),
                    seniority: u.get("seniority").as_int().unwrap_or(0),
                }),
            );
        }
        OrgSnapshot { principals }
    }

    /// The principal for `user`.
    pub fn principal(&self, user: RecordId) -> Option<Arc<Principal>> {
        self.principals.get(&user).cloned()
    }

    /// Every principal.
    pub fn principals(&self) -> impl Iterator<Item = &Arc<Principal>> {
        self.principals.values()
    }
}

/// The answer to "may this user do this?", with the reason in an administrator's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// The rule that decided, as a short code (`object_permission`, `record_scope`, `share`, …).
    pub rule: String,
    /// An explanation an administrator understands.
    pub reason: String,
}

impl Decision {
    fn allow(rule: &str, reason: String) -> Self {
        Decision {
            allowed: true,
            rule: rule.to_owned(),
            reason,
        }
    }
    fn deny(rule: &str, reason: String) -> Self {
        Decision {
            allowed: false,
            rule: rule.to_owned(),
            reason,
        }
    }
}

fn role_name(p: &Principal) -> String {
    p.role
        .as_ref()
        .map(|(_, n)| format!("role `{n}`"))
        .unwrap_or_else(|| "no role".to_owned())
}

/// The answer of [`object_decision`] without its explanation: what the hot paths ask.
pub fn object_allowed(p: &Principal, action: Action, kind: EntityKind) -> bool {
    let needed = if kind.is_configuration() && action != Action::Read {
        Action::Configure
    } else {
        action
    };
    p.active
        && p.policy
            .rule(kind)
            .is_some_and(|(_, r)| r.actions.contains(&needed))
}

/// May `p` take `action` on records of `kind` at all (object permission)?
pub fn object_decision(p: &Principal, action: Action, kind: EntityKind) -> Decision {
    if !p.active {
        return Decision::deny(
            "inactive_user",
            format!("user `{}` is deactivated", p.username),
        );
    }
    if kind.is_configuration() && action != Action::Read {
        // Changing configuration needs `configure` on that configuration type.
        return match p.policy.rule(kind) {
            Some((src, r)) if r.actions.contains(&Action::Configure) => Decision::allow(
                "object_permission",
                format!("{} grants configure on `{src}`", role_name(p)),
            ),
            _ => Decision::deny(
                "object_permission",
                format!("{} does not grant configure on {kind}", role_name(p)),
            ),
        };
    }
    match p.policy.rule(kind) {
        Some((src, r)) if r.actions.contains(&action) => Decision::allow(
            "object_permission",
            format!("{} grants {action} on `{src}`", role_name(p)),
        ),
        Some((src, _)) => Decision::deny(
            "object_permission",
            format!("{} does not grant {action} on `{src}`", role_name(p)),
        ),
        None => Decision::deny(
            "object_permission",
            format!("{} has no rule for {kind}", role_name(p)),
        ),
    }
}

/// The scopes that apply to `p` for `action` on `kind` (empty for external users: they get own and
/// shared records only).
fn scopes(p: &Principal, action: Action, kind: EntityKind) -> Vec<Scope> {
    if p.external {
        return Vec::new();
    }
    match p.policy.rule(kind) {
        Some((_, r)) if action.is_write() => r.write.clone(),
        Some((_, r)) => r.read.clone(),
        None => Vec::new(),
    }
}

/// The principals a share may name for `p`: the user, their teams, their partner organisation.
pub fn share_principals(p: &Principal) -> Vec<RecordId> {
    let mut v = vec![p.user_id];
    v.extend(p.teams.iter().copied());
    v.extend(p.partner_account);
    v
}

/// The records of `kind` that `p` reaches for `action`, as a condition the database evaluates.
/// Assumes the object permission was checked.
pub fn record_cond(p: &Principal, action: Action, kind: EntityKind, now: DateTime<Utc>) -> Cond {
    let scopes = scopes(p, action, kind);
    if scopes.contains(&Scope::All) {
        return Cond::True;
    }
    // Sorted and without repeats (a set's order), gathered in one vector: a team is a few dozen ids.
    let mut owners: Vec<RecordId> = vec![p.user_id];
    let mut cond = Cond::False;
    for s in &scopes {
        match s {
            Scope::Own | Scope::All => {}
            Scope::Team => owners.extend(p.teammates.iter().copied()),
            Scope::Subordinates => owners.extend(p.subordinates.iter().copied()),
            Scope::Territory => {
                if !p.territories.is_empty() {
                    let link = if kind == EntityKind::Account {
                        Some(None)
                    } else {
                        kind.account_link().map(Some)
                    };
                    if let Some(link) = link {
                        cond = cond.or(Cond::AccountInTerritories {
                            link,
                            territories: p.territories.clone(),
                        });
                    }
                }
            }
        }
    }
    owners.sort_unstable();
    owners.dedup();
    cond = Cond::OwnerIn(owners).or(cond);
    if kind == EntityKind::User && action != Action::Delete {
        // Everyone reaches their own user record (the role's object permission still decides what
        // they may do with it; the fields that grant rights are configuration, and nobody deletes
        // themselves through a scope).
        cond = cond.or(Cond::In(
            crate::query::Column::Meta(crate::query::MetaColumn::Id),
            vec![crate::value::Value::Ref(p.user_id)],
        ));
    }
    cond.or(Cond::SharedWith {
        principals: share_principals(p),
        edit: action.is_write(),
        at: now,
    })
}

/// Explains, without touching storage, whether `record` is in `p`'s scope for `action` given the
/// facts the caller looked up (`account_territory`: the territory of the record's account;
/// `share`: the best live share for the user, if any).
pub fn explain_record(
    p: &Principal,
    action: Action,
    record: &Record,
    account_territory: Option<RecordId>,
    share: Option<(&str, bool)>,
) -> Decision {
    let kind = record.meta.kind;
    let object = object_decision(p, action, kind);
    if !object.allowed {
        return object;
    }
    let owner = record.meta.owner_id;
    if owner == p.user_id {
        return Decision::allow(
            "record_scope",
            format!("{}; the record is owned by the user", object.reason),
        );
    }
    if kind == EntityKind::User && record.meta.id == p.user_id && action != Action::Delete {
        return Decision::allow(
            "record_scope",
            format!("{}; users reach their own user record", object.reason),
        );
    }
    let scopes = scopes(p, action, kind);
    let which = if action.is_write() { "write" } else { "read" };
    for s in &scopes {
        if scope_covers(p, *s, owner, account_territory) {
            let why = match s {
                Scope::All => "every record of the tenant".to_owned(),
                Scope::Team => "the owner is a teammate".to_owned(),
                Scope::Subordinates => "the owner reports to the user".to_owned(),
                Scope::Territory => {
                    "the record's account lies in one of the user's territories".to_owned()
                }
                Scope::Own => String::new(),
            };
            return Decision::allow(
                "record_scope",
                format!(
                    "{}; {which} scope `{}` covers it: {why}",
                    object.reason,
                    s.name()
                ),
            );
        }
    }
    if let Some((via, edit)) = share {
        if edit || !action.is_write() {
            return Decision::allow(
                "share",
                format!(
                    "{}; the record is shared with {via} ({})",
                    object.reason,
                    if edit { "edit" } else { "read" }
                ),
            );
        }
    }
    let scope_names: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
    let reason = if p.external {
        format!(
            "user `{}` is external and the record is neither theirs nor shared with them",
            p.username
        )
    } else {
        format!(
            "{} gives {which} scope [{}] on {kind}, which does not cover this record, and no share grants it",
            role_name(p),
            if scope_names.is_empty() { "own".to_owned() } else { scope_names.join(", ") }
        )
    };
    Decision::deny("record_scope", reason)
}

/// Whether scope `s` of `p` covers a record owned by `owner` whose account lies in `account_territory`
/// (own records are checked before scopes).
fn scope_covers(
    p: &Principal,
    s: Scope,
    owner: RecordId,
    account_territory: Option<RecordId>,
) -> bool {
    match s {
        Scope::All => true,
        Scope::Own => false,
        Scope::Team => p.teammates.contains(&owner),
        Scope::Subordinates => p.subordinates.contains(&owner),
        Scope::Territory => account_territory.is_some_and(|t| p.territories.contains(&t)),
    }
}

/// Field rule of `p` for `field` of `kind`: the role's rule, or `Hidden` for a derived field whose
/// sources `p` may not wholly see (see [`sees_derived`]).
pub fn field_access(p: &Principal, kind: EntityKind, field: &str) -> Option<FieldAccess> {
    if !sees_derived(p, kind, field) {
        return Some(FieldAccess::Hidden);
    }
    role_field_access(p, kind, field)
}

/// The rule `p`'s role sets for `field` of `kind` (its field mode included), leaving aside the rule
/// for derived fields.
pub fn role_field_access(p: &Principal, kind: EntityKind, field: &str) -> Option<FieldAccess> {
    match p.policy.field_access(kind, field) {
        Some(FieldAccess::Visible) => None,
        Some(a) => Some(a),
        None if allow_list(p) => Some(FieldAccess::Hidden),
        None => None,
    }
}

/// Whether `p`'s field rules are an allow-list: their role says so, or they are external and their
/// role does not say otherwise.
pub fn allow_list(p: &Principal) -> bool {
    match p.policy.field_mode {
        Some(m) => m == FieldMode::AllowList,
        None => p.external,
    }
}

/// Account fields maintained from the account's orders, opportunities and cases, with the source
/// fields each group is computed from.
const DERIVED: &[(&[&str], EntityKind, &[&str])] = &[
    (
        &[
            "order_count",
            "lifetime_value",
            "average_order_value",
            "first_order_at",
            "last_order_at",
            "other_currency_orders",
        ],
        EntityKind::Order,
        &["account_id", "total", "ordered_at", "status"],
    ),
    (
        &["open_opportunities", "open_opportunity_value"],
        EntityKind::Opportunity,
        &["account_id", "amount", "closed_at"],
    ),
    (&["open_cases"], EntityKind::Case, &["account_id", "status"]),
];

/// The kinds a segment's materialised members can be records of.
const SEGMENT_KINDS: &[EntityKind] = &[EntityKind::Account, EntityKind::Contact, EntityKind::Lead];

/// Whether `p` may see `field` of `kind` as far as derived values go: a field that is not derived,
/// an account's maintained total when `p` reads every source record with none of the source fields
/// hidden, a segment's stored members when `p` sees the members of a segment of any kind (without
/// the record, the strictest reading; see [`sees_members`]). A total over records the reader cannot
/// see, or a member list evaluated with rights they lack, would tell them what those records hold.
pub fn sees_derived(p: &Principal, kind: EntityKind, field: &str) -> bool {
    match kind {
        EntityKind::Account => DERIVED
            .iter()
            .find(|(fs, _, _)| fs.contains(&field))
            .is_none_or(|(_, k, src)| sees_all(p, *k, src)),
        EntityKind::Segment if matches!(field, "member_ids" | "member_count") => {
            SEGMENT_KINDS.iter().all(|k| sees_members(p, *k))
        }
        _ => true,
    }
}

/// Whether `p` reads every record of `kind` (object permission and scope `all`, not external) and
/// none of `fields` of it is hidden from them by their role.
pub fn sees_all(p: &Principal, kind: EntityKind, fields: &[&str]) -> bool {
    let reads_all = !p.external
        && p.policy.rule(kind).is_some_and(|(_, r)| {
            r.actions.contains(&Action::Read) && r.read.contains(&Scope::All)
        });
    reads_all
        && fields
            .iter()
            .all(|f| role_field_access(p, kind, f) != Some(FieldAccess::Hidden))
}

/// Whether `p` may see the stored members of a segment of records of `kind`: they read every
/// record of the kind and no field of it is hidden from them (the definition may test it).
pub fn sees_members(p: &Principal, kind: EntityKind) -> bool {
    sees_all(p, kind, &[])
        && !allow_list(p)
        && !p.policy.fields.iter().any(|(key, a)| {
            *a == FieldAccess::Hidden
                && key
                    .strip_prefix(kind.name())
                    .is_some_and(|r| r.starts_with('.'))
        })
}

/// Removes from `record` the derived values `p` may not see, record by record: a segment's member
/// list when `p` does not read every record of its kind or has fields of it hidden (its definition
/// may test them), and order and quote lines' unit cost when the product cost is hidden from `p`.
fn redact_derived(p: &Principal, record: &mut Record) {
    match record.meta.kind {
        EntityKind::Segment => {
            let kind: Option<EntityKind> = record.text("entity").and_then(|e| e.parse().ok());
            let shows = kind.is_some_and(|k| sees_members(p, k));
            if !shows {
                record.fields.remove("member_ids");
                record.fields.remove("member_count");
            }
        }
        EntityKind::Order | EntityKind::Quote
            if field_access(p, EntityKind::Product, "unit_cost") == Some(FieldAccess::Hidden) =>
        {
            if let Some(crate::value::Value::Lines(lines)) = record.fields.get_mut("lines") {
                for l in lines {
                    l.unit_cost = None;
                }
            }
        }
        EntityKind::Account => {
            for (fields, k, src) in DERIVED {
                if !sees_all(p, *k, src) {
                    for f in *fields {
                        record.fields.remove(*f);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Removes the fields hidden from `p`: built-in ones, derived ones they may not see, and custom
/// values (keyed, as stored, by their stable key: the rule `kind.custom.<key>` decides).
pub fn redact(p: &Principal, record: &mut Record) {
    redact_derived(p, record);
    if allow_list(p) {
        let kind = record.meta.kind;
        record
            .fields
            .retain(|f, _| field_access(p, kind, f) != Some(FieldAccess::Hidden));
        record.custom.retain(|f, _| {
            field_access(p, kind, &format!("custom.{f}")) != Some(FieldAccess::Hidden)
        });
        return;
    }
    if p.policy.fields.is_empty() {
        return;
    }
    // The fields hidden for this kind, from the policy's `kind.field` keys, once per record
    // instead of a key built for every field.
    let kind = record.meta.kind.name();
    let hidden: Vec<&str> = p
        .policy
        .fields
        .iter()
        .filter(|(_, a)| **a == FieldAccess::Hidden)
        .filter_map(|(key, _)| key.strip_prefix(kind)?.strip_prefix('.'))
        .collect();
    if hidden.is_empty() {
        return;
    }
    record.fields.retain(|f, _| !hidden.contains(&f.as_str()));
    record.custom.retain(|f, _| {
        !hidden
            .iter()
            .any(|h| h.strip_prefix("custom.") == Some(f.as_str()))
    });
}

/// Refuses `p` writing `field` of `kind` when the field is hidden or read-only for them.
pub fn check_field_write(p: &Principal, kind: EntityKind, field: &str) -> Result<()> {
    match field_access(p, kind, field) {
        Some(FieldAccess::Hidden) => Err(CrmError::field_denied(
            "update",
            kind.name(),
            field,
            "hidden_field",
        )),
        Some(FieldAccess::ReadOnly) => Err(CrmError::field_denied(
            "update",
            kind.name(),
            field,
            "read_only_field",
        )),
        Some(FieldAccess::Visible) | None => Ok(()),
    }
}

/// Refuses filtering or sorting on a field hidden from `p` (its values could be probed).
pub fn check_field_query(p: &Principal, kind: EntityKind, field: &str) -> Result<()> {
    if field_access(p, kind, field) == Some(FieldAccess::Hidden) {
        let mut e = CrmError::invalid_query(
            Some(field),
            "hidden_field",
            format!("field `{field}` of {kind} cannot be used here"),
        );
        e.kind = crate::error::ErrorKind::PermissionDenied;
        e.action = Some("read".to_owned());
        e.entity = Some(kind.name().to_owned());
        return Err(e);
    }
    Ok(())
}

/// The same decision as [`explain_record`], without building the explanation: may `p` take `action`
/// on `record`, given the territory of its account and whether a live share grants it (`Some(edit)`)?
/// This is what a host can call per record in a tight loop.
pub fn decide(
    p: &Principal,
    action: Action,
    record: &Record,
    account_territory: Option<RecordId>,
    share: Option<bool>,
) -> bool {
    let kind = record.meta.kind;
    if !object_allowed(p, action, kind) {
        return false;
    }
    let owner = record.meta.owner_id;
    if owner == p.user_id
        || (kind == EntityKind::User && record.meta.id == p.user_id && action != Action::Delete)
    {
        return true;
    }
    if !p.external {
        let rule = p.policy.rule(kind).map(|(_, r)| r);
        let scopes = match rule {
            Some(r) if action.is_write() => r.write.as_slice(),
            Some(r) => r.read.as_slice(),
            None => &[],
        };
        if scopes
            .iter()
            .any(|s| scope_covers(p, *s, owner, account_territory))
        {
            return true;
        }
    }
    matches!(share, Some(edit) if edit || !action.is_write())
}

#[cfg(test)]
mod redact_tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::record::RecordMeta;
    use crate::value::Value;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const KINDS: [EntityKind; 3] = [EntityKind::Account, EntityKind::Contact, EntityKind::Order];
    const NAMES: [&str; 5] = ["name", "phone", "email", "status", "total"];

    fn principal(fields: BTreeMap<String, FieldAccess>) -> Principal {
        let at = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Principal {
            user_id: RecordId::new_at(at),
            username: "u".into(),
            external: false,
            partner_account: None,
            active: true,
            role: None,
            policy: Arc::new(Policy {
                fields,
                ..Policy::default()
            }),
            teams: Vec::new(),
            territories: Vec::new(),
            teammates: Vec::new(),
            subordinates: Vec::new(),
            seniority: 0,
        }
    }

    proptest! {
        /// Redaction removes exactly the fields (built-in and `custom.<name>`) whose `kind.field`
        /// policy entry is `Hidden` — not read-only ones, not those of another kind.
        #[test]
        fn redact_removes_exactly_the_hidden_fields(
            rules in proptest::collection::vec(
                (0..KINDS.len(), any::<bool>(), 0..NAMES.len(), any::<bool>()), 0..8),
            kind in 0..KINDS.len(),
            present in proptest::collection::vec(any::<bool>(), NAMES.len()),
        ) {
            let mut fields = BTreeMap::new();
            for (k, custom, n, hidden) in rules {
                let key = format!(
                    "{}.{}{}",
                    KINDS[k].name(),
                    if custom { "custom." } else { "" },
                    NAMES[n]
                );
                fields.insert(key, if hidden { FieldAccess::Hidden } else { FieldAccess::ReadOnly });
            }
            let p = principal(fields);
            let kind = KINDS[kind];
            let at = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let id = RecordId::new_at(at);
            let mut record = Record {
                meta: RecordMeta {
                    kind,
                    id,
                    tenant: crate::id::TenantId::new("t").unwrap(),
                    owner_id: id,
                    created_at: at,
                    created_by: id,
                    updated_at: at,
                    updated_by: id,
                    version: 1,
                    deleted_at: None,
                },
                fields: Default::default(),
                custom: Default::default(),
            };
            for (n, on) in NAMES.iter().zip(&present) {
                if *on {
                    record.fields.insert((*n).to_owned(), Value::Int(1));
                    record.custom.insert((*n).to_owned(), Value::Int(2));
                }
            }
            let mut expected = record.clone();
            expected
                .fields
                .retain(|f, _| field_access(&p, kind, f) != Some(FieldAccess::Hidden));
            expected.custom.retain(|f, _| {
                field_access(&p, kind, &format!("custom.{f}")) != Some(FieldAccess::Hidden)
            });
            redact(&p, &mut record);
            prop_assert_eq!(record, expected);
        }
    }
}
