//! Shared fixtures for the integration tests: an in-memory CRM with a manual clock, a bootstrapped
//! tenant and helpers to build an organisation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // test support code

use std::sync::Arc;

use crm_core::chrono::{TimeZone, Utc};
use crm_core::{
    fields, Context, Crm, EntityKind, Fields, LineItem, ManualClock, Money, Origin, Policy,
    RecordId, Session, TenantId, Value,
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
    let crm = Crm::new(store).with_clock(clock.clone());
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
    /// A session of `ctx` (panics if the user cannot act: use `crm.session` to test that).
    pub fn on(&self, ctx: &Context) -> Session {
        self.crm.session(ctx).unwrap()
    }

    /// The administrator's session.
    pub fn admin_session(&self) -> Session {
        self.on(&self.admin)
    }

    /// Creates a role with `policy`.
    pub fn role(&self, name: &str, policy: &Policy) -> RecordId {
        self.admin_session()
            .records()
            .create(
                EntityKind::Role,
                fields! { "name" => name, "policy" => Value::Json(policy.to_json()) },
            )
            .unwrap()
            .meta
            .id
    }

    /// Creates a team.
    pub fn team(&self, name: &str) -> RecordId {
        self.admin_session()
            .records()
            .create(EntityKind::Team, fields! { "name" => name })
            .unwrap()
            .meta
            .id
    }

    /// Creates a territory.
    pub fn territory(&self, name: &str) -> RecordId {
        self.admin_session()
            .records()
            .create(EntityKind::Territory, fields! { "name" => name })
            .unwrap()
            .meta
            .id
    }

    /// Creates a user holding `role`, with extra fields (teams, territories, manager, seniority…),
    /// and returns their context.
    pub fn user(&self, username: &str, role: RecordId, extra: Fields) -> Context {
        let mut f = fields! { "username" => username, "role_id" => role };
        f.extend(extra);
        let u = self
            .admin_session()
            .records()
            .create(EntityKind::User, f)
            .unwrap();
        self.admin.as_user(u.meta.id)
    }
}

/// A list value of ids, for `team_ids` / `territory_ids` / `member_ids`.
pub fn ids(ids: &[RecordId]) -> Value {
    Value::List(ids.iter().map(|i| i.to_string()).collect())
}

fn d(s: &str) -> crm_core::Decimal {
    s.parse().unwrap()
}

fn eur(s: &str) -> Value {
    Value::Money(Money::parse(s, "EUR").unwrap())
}

fn account(w: &World, name: &str) -> crm_core::Record {
    w.admin_session()
        .records()
        .create(
            EntityKind::Account,
            fields! { "name" => name, "country" => "IT" },
        )
        .unwrap()
}

/// Minimal valid fields for every entity type the generic API writes.
pub fn sample(w: &World, kind: EntityKind) -> Fields {
    let acc = || account(w, "Sample").meta.id;
    match kind {
        EntityKind::Account => {
            fields! { "name" => "ACME S.p.A.", "roles" => Value::List(vec!["customer".into()]), "phone" => "02 1234 5678" }
        }
        EntityKind::Contact => {
            fields! { "first_name" => "Giulia", "last_name" => "Bianchi", "email" => "giulia@example.it" }
        }
        EntityKind::AccountContact => {
            let c = w
                .admin_session()
                .records()
                .create(EntityKind::Contact, fields! { "last_name" => "Verdi" })
                .unwrap();
            fields! { "account_id" => acc(), "contact_id" => c.meta.id, "job_title" => "CFO" }
        }
        EntityKind::Lead => {
            fields! { "last_name" => "Neri", "company" => "Neri SRL", "channel" => "phone" }
        }
        EntityKind::Opportunity => {
            fields! { "name" => "Renewal", "account_id" => acc(), "amount" => eur("1000") }
        }
        EntityKind::Product => {
            fields! { "sku" => format!("SKU-{}", RecordId::new_at(w.crm.now())), "name" => "Widget", "list_price" => eur("9.90"), "unit_cost" => eur("4.00") }
        }
        EntityKind::Quote | EntityKind::Order => fields! {
            "account_id" => acc(),
            "currency" => "EUR",
            "lines" => Value::Lines(vec![LineItem { product_id: None, description: "Service".into(), quantity: d("2"), unit_price: d("50"), discount_percent: d("10"), tax_rate: d("22"), unit_cost: None }]),
        },
        EntityKind::Activity => {
            fields! { "activity_type" => "call", "direction" => "inbound", "channel" => "phone", "duration_seconds" => 120_i64 }
        }
        EntityKind::Case => fields! { "subject" => "Printer broken", "priority" => "high" },
        EntityKind::KnowledgeArticle => {
            fields! { "title" => "Paper jam", "solution" => "Open tray 2" }
        }
        EntityKind::Campaign => {
            fields! { "name" => "Spring", "starts_on" => Value::Date("2026-03-01".parse().unwrap()) }
        }
        EntityKind::CampaignMember => {
            let c = w
                .admin_session()
                .records()
                .create(EntityKind::Campaign, fields! { "name" => "Autumn" })
                .unwrap();
            fields! { "campaign_id" => c.meta.id }
        }
        EntityKind::User => {
            fields! { "username" => format!("user{}", RecordId::new_at(w.crm.now())) }
        }
        EntityKind::Team => fields! { "name" => format!("team{}", RecordId::new_at(w.crm.now())) },
        EntityKind::Role => fields! { "name" => format!("role{}", RecordId::new_at(w.crm.now())) },
        EntityKind::Territory => {
            fields! { "name" => format!("territory{}", RecordId::new_at(w.crm.now())) }
        }
        EntityKind::Attachment => {
            fields! { "record_kind" => "account", "record_id" => acc(), "name" => "contract.pdf", "media_type" => "application/pdf", "size_bytes" => 1024_i64 }
        }
        EntityKind::CustomField => {
            fields! { "entity" => "account", "name" => format!("f{}", w.crm.now().timestamp_micros() % 100_000), "field_type" => "text" }
        }
        EntityKind::Share => unreachable!("shares are written through Crm::share"),
        EntityKind::Pipeline => {
            fields! { "name" => "Default", "stages" => Value::Json(serde_json::json!([{"name": "prospecting"}])) }
        }
        EntityKind::AssignmentRule => fields! { "name" => "all phone leads", "entity" => "lead" },
        EntityKind::Queue => fields! { "name" => "Inside sales" },
        EntityKind::ApprovalRule => {
            fields! { "name" => "big discounts", "max_discount_percent" => d("10") }
        }
        EntityKind::AuditSetting => fields! { "entity" => "campaign", "enabled" => true },
        EntityKind::Segment => {
            fields! { "name" => "Italian customers", "entity" => "account", "definition" => "country = \"IT\"" }
        }
        EntityKind::Transition | EntityKind::Follow => unreachable!("system managed"),
    }
}
