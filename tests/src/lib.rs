//! Shared fixtures for the integration tests: an in-memory CRM with a manual clock, a bootstrapped
//! tenant and helpers to build an organisation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // test support code

use std::sync::Arc;

use crm_core::chrono::{TimeZone, Utc};
use crm_core::{
    fields, Context, Crm, EntityKind, Fields, ManualClock, Origin, Policy, RecordId, TenantId, Value,
};
use crm_store::SqliteStore;

/// A CRM with one bootstrapped tenant.
pub struct World {
    pub crm: Crm,
    pub clock: Arc<ManualClock>,
    pub tenant: TenantId,
    pub admin: Context,
}

/// Monday 5 January 2026, 09:00 UTC: the fixtures' "now".
pub fn start() -> crm_core::chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// A fresh in-memory CRM with tenant `acme` and its administrator.
pub fn world() -> World {
    world_on(SqliteStore::open_in_memory().unwrap())
}

/// The same on a given store.
pub fn world_on(store: SqliteStore) -> World {
    let clock = Arc::new(ManualClock::new(start()));
    let crm = Crm::new(Arc::new(store)).with_clock(clock.clone());
    let tenant = TenantId::new("acme").unwrap();
    let admin = crm
        .bootstrap(
            &tenant,
            "admin",
            Origin {
                client: Some("tests".into()),
                address: Some("127.0.0.1".into()),
                location: Some("lab".into()),
            },
        )
        .unwrap();
    World {
        crm,
        clock,
        tenant,
        admin,
    }
}

impl World {
    /// Creates a role with `policy`.
    pub fn role(&self, name: &str, policy: &Policy) -> RecordId {
        self.crm
            .create(
                &self.admin,
                EntityKind::Role,
                fields! { "name" => name, "policy" => Value::Json(policy.to_json()) },
            )
            .unwrap()
            .meta
            .id
    }

    /// Creates a team.
    pub fn team(&self, name: &str) -> RecordId {
        self.crm
            .create(&self.admin, EntityKind::Team, fields! { "name" => name })
            .unwrap()
            .meta
            .id
    }

    /// Creates a territory.
    pub fn territory(&self, name: &str) -> RecordId {
        self.crm
            .create(&self.admin, EntityKind::Territory, fields! { "name" => name })
            .unwrap()
            .meta
            .id
    }

    /// Creates a user holding `role`, with extra fields (teams, territories, manager, seniority…),
    /// and returns their context.
    pub fn user(&self, username: &str, role: RecordId, extra: Fields) -> Context {
        let mut f = fields! { "username" => username, "role_id" => role };
        f.extend(extra);
        let u = self.crm.create(&self.admin, EntityKind::User, f).unwrap();
        self.admin.as_user(u.meta.id)
    }
}

/// A list value of ids, for `team_ids` / `territory_ids` / `member_ids`.
pub fn ids(ids: &[RecordId]) -> Value {
    Value::List(ids.iter().map(|i| i.to_string()).collect())
}
