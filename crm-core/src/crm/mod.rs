//! The `Crm` facade: the only door to the data. Every call names who acts ([`Context`]), is checked
//! against the access rules, validated, and — for writes — committed in one transaction with its audit
//! entry and its outbox events.

mod access_ops;
mod analytics_ops;
mod audit_ops;
mod door;
mod merge;
mod process;
mod read;
mod resolve;
mod rules;
mod session;
mod transaction;
mod transfer;
mod write;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::access::{OrgSnapshot, Principal};
use crate::audit::Origin;
use crate::clock::{Clock, SystemClock};
use crate::custom_field::CustomCatalog;
use crate::error::{CrmError, Result};
use crate::id::{RecordId, TenantId};
use crate::query::{Liveness, Query};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::store::{ReadTx, Store};
use crate::validate::PhoneRules;

pub use access_ops::{AccessReview, Grantee};
pub use analytics_ops::{
    ActivityCount, CustomerValue, Funnel, FunnelOptions, FunnelStage, Kpi, ValueOptions,
};
pub use analytics_ops::{
    CrossSell, ErpFacts, ErpFactsRow, ForecastRow, OverdueInvoice, ProfitDimension, ProfitOptions,
    ProfitRow, RfmOptions, RfmRow, ScreenPop, SegmentDiff,
};
pub use audit_ops::{HistoryEntry, HistoryPage};
pub use merge::MergeOutcome;
pub use process::{Conversion, ConvertLead, EmailMessage, Mailer, StageEntry};
pub use session::{
    AccessAdmin, Analytics, Audit, Crm, Outbox, Records, Sales, Segments, Service, Session,
};
pub use transaction::{OwnedTransaction, Transaction};
pub use transfer::TransferSummary;
pub use write::NewRecord;

/// Who acts, in which tenant, and from where: what a [`Session`] is opened for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// The tenant acted in.
    pub tenant: TenantId,
    /// The acting user (a user record of that tenant).
    pub user_id: RecordId,
    /// Where the request came from, as the host tells it (recorded in the audit log).
    pub origin: Origin,
}

impl Context {
    /// `user` acting in `tenant`, origin unknown.
    pub fn new(tenant: TenantId, user_id: RecordId) -> Self {
        Context {
            tenant,
            user_id,
            origin: Origin::default(),
        }
    }

    /// Sets the client application name.
    pub fn client(mut self, client: &str) -> Self {
        self.origin.client = Some(client.to_owned());
        self
    }

    /// Sets the network address.
    pub fn address(mut self, address: &str) -> Self {
        self.origin.address = Some(address.to_owned());
        self
    }

    /// Sets the location.
    pub fn location(mut self, location: &str) -> Self {
        self.origin.location = Some(location.to_owned());
        self
    }

    /// The same user acting as another user of the tenant (for hosts that serve many users).
    pub fn as_user(&self, user_id: RecordId) -> Self {
        Context {
            user_id,
            ..self.clone()
        }
    }
}

/// Per-tenant configuration kept in memory: the organisation and the custom fields.
#[derive(Debug, Default)]
pub(crate) struct TenantCache {
    pub(crate) org: OrgSnapshot,
    pub(crate) customs: CustomCatalog,
    /// Entity types whose auditing is switched off.
    pub(crate) audit_off: Arc<std::collections::HashSet<EntityKind>>,
}

/// The engine behind [`Crm`] and every [`Session`]: the store, the clock, the phone rules and the
/// in-memory configuration of each tenant. Crate-private: hosts hold a [`Crm`], tenant work holds a
/// [`Session`].
pub(crate) struct Engine {
    door: door::Door,
    clock: Arc<dyn Clock>,
    phones: PhoneRules,
    cache: RwLock<HashMap<TenantId, Arc<TenantCache>>>,
    /// Screen-pop snapshots of the customer base, per tenant and user.
    snapshots: Mutex<HashMap<(TenantId, RecordId), Arc<analytics_ops::Snapshot>>>,
    /// Bumped whenever orders are written: a snapshot taken before is out of date.
    orders_generation: AtomicU64,
    /// How long a screen-pop snapshot may be reused after orders changed.
    snapshot_max_age: chrono::Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Engine::new_on(door::Door::new(store))
    }

    fn new_on(door: door::Door) -> Self {
        Engine {
            door,
            clock: Arc::new(SystemClock),
            phones: PhoneRules::default(),
            cache: RwLock::new(HashMap::new()),
            snapshots: Mutex::new(HashMap::new()),
            orders_generation: AtomicU64::new(0),
            snapshot_max_age: chrono::Duration::minutes(5),
        }
    }

    /// The same store and settings with empty caches: what a builder method of a shared [`Crm`]
    /// starts from.
    fn fork(&self) -> Self {
        Engine {
            clock: self.clock.clone(),
            phones: self.phones,
            snapshot_max_age: self.snapshot_max_age,
            ..Engine::new_on(self.door.share())
        }
    }

    /// The current instant of the clock, to the microsecond (what storage keeps).
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        use chrono::SubsecRound;
        self.clock.now().trunc_subsecs(6)
    }

    /// Forgets the in-memory configuration of every tenant.
    pub(crate) fn reload_configuration(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
        if let Ok(mut s) = self.snapshots.lock() {
            s.clear();
        }
    }

    /// The store, behind the door.
    pub(crate) fn door(&self) -> &door::Door {
        &self.door
    }

    pub(crate) fn invalidate(&self, tenant: &TenantId) {
        if let Ok(mut c) = self.cache.write() {
            c.remove(tenant);
        }
        // Screen-pop snapshots were computed with the rights of their day: a change of users or
        // roles retires them.
        if let Ok(mut s) = self.snapshots.lock() {
            s.retain(|(t, _), _| t != tenant);
        }
    }

    pub(crate) fn tenant_cache(&self, tenant: &TenantId) -> Result<Arc<TenantCache>> {
        if let Some(c) = self.cached(tenant) {
            return Ok(c);
        }
        let tx = self.door.read()?;
        let cache = Arc::new(load_cache(tx.unscoped(door::Why::Configuration), tenant)?);
        drop(tx);
        self.remember(tenant, cache.clone());
        Ok(cache)
    }

    /// The tenant's configuration if it is in memory.
    pub(crate) fn cached(&self, tenant: &TenantId) -> Option<Arc<TenantCache>> {
        self.cache.read().ok().and_then(|c| c.get(tenant).cloned())
    }

    /// Keeps a tenant's configuration, loaded from committed data, in memory.
    pub(crate) fn remember(&self, tenant: &TenantId, cache: Arc<TenantCache>) {
        if let Ok(mut c) = self.cache.write() {
            c.insert(tenant.clone(), cache);
        }
    }

    /// The acting user as the access rules see them; an unknown or deactivated user may do nothing.
    pub(crate) fn principal(&self, ctx: &Context) -> Result<(Arc<Principal>, Arc<TenantCache>)> {
        let cache = self.tenant_cache(&ctx.tenant)?;
        Ok((principal_in(&cache, ctx)?, cache))
    }
}

/// The acting user of `ctx` in a tenant's configuration; an unknown or deactivated user may do
/// nothing.
pub(crate) fn principal_in(cache: &TenantCache, ctx: &Context) -> Result<Arc<Principal>> {
    match cache.org.principal(ctx.user_id) {
        Some(p) if p.active => Ok(p),
        Some(_) => Err(CrmError::permission_denied(
            "act",
            "tenant",
            "inactive_user",
        )),
        None => Err(CrmError::permission_denied("act", "tenant", "unknown_user")),
    }
}

/// Loads every live record of `kind`, unchecked: only for building the in-memory configuration.
pub(crate) fn load_all(
    tx: &dyn ReadTx,
    kind: EntityKind,
    tenant: &TenantId,
) -> Result<Vec<Record>> {
    let mut q = Query::all(kind, tenant.clone());
    q.liveness = Liveness::Live;
    tx.query(&q)
}

/// Builds a tenant's configuration from what `tx` sees.
pub(crate) fn load_cache(tx: &dyn ReadTx, tenant: &TenantId) -> Result<TenantCache> {
    let users = load_all(tx, EntityKind::User, tenant)?;
    let roles = load_all(tx, EntityKind::Role, tenant)?;
    let defs = load_all(tx, EntityKind::CustomField, tenant)?;
    let audit_off = load_all(tx, EntityKind::AuditSetting, tenant)?
        .iter()
        .filter(|s| s.get("enabled").as_bool() == Some(false))
        .filter_map(|s| s.text("entity").and_then(|e| e.parse().ok()))
        .collect();
    Ok(TenantCache {
        org: OrgSnapshot::build(&users, &roles),
        customs: CustomCatalog::build(&defs),
        audit_off: Arc::new(audit_off),
    })
}
