//! Entity types and their built-in fields: one table of truth that validation, queries, access rules,
//! audit diffs, storage and bindings all read.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::value::{FieldType, Value};

macro_rules! kinds {
    ($( $(#[$m:meta])* $variant:ident = $name:literal, $table:literal; )*) => {
        /// The type of a record.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum EntityKind {
            $( $(#[$m])* $variant, )*
        }

        impl EntityKind {
            /// Every entity type.
            pub const ALL: &'static [EntityKind] = &[$(EntityKind::$variant),*];

            /// The stable snake_case name (`account`, `knowledge_article`).
            pub fn name(self) -> &'static str {
                match self { $(EntityKind::$variant => $name,)* }
            }

            /// The storage table name.
            pub fn table(self) -> &'static str {
                match self { $(EntityKind::$variant => $table,)* }
            }
        }

        impl FromStr for EntityKind {
            type Err = CrmError;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($name => Ok(EntityKind::$variant),)*
                    _ => Err(CrmError::validation("entity", "entity_type", format!("`{s}` is not an entity type"))),
                }
            }
        }
    };
}

kinds! {
    /// An organisation: customer, prospect, partner, supplier.
    Account = "account", "accounts";
    /// A person, linked to any number of accounts.
    Contact = "contact", "contacts";
    /// The link of a contact to an account, with a job title.
    AccountContact = "account_contact", "account_contacts";
    /// An unqualified request or prospect.
    Lead = "lead", "leads";
    /// A business opportunity in a pipeline.
    Opportunity = "opportunity", "opportunities";
    /// Something sold.
    Product = "product", "products";
    /// A quote with line items.
    Quote = "quote", "quotes";
    /// An order with line items.
    Order = "order", "orders";
    /// A call, e-mail, meeting, chat, note or task.
    Activity = "activity", "activities";
    /// A service case (ticket).
    Case = "case", "cases";
    /// A known problem and its solution, for call scripting.
    KnowledgeArticle = "knowledge_article", "knowledge_articles";
    /// A marketing campaign.
    Campaign = "campaign", "campaigns";
    /// A contact or lead targeted by a campaign.
    CampaignMember = "campaign_member", "campaign_members";
    /// A user of the CRM, internal or external (partner staff).
    User = "user", "users";
    /// A team of users.
    Team = "team", "teams";
    /// A role: what its holders may do.
    Role = "role", "roles";
    /// A sales territory.
    Territory = "territory", "territories";
    /// Metadata of a document linked to any record.
    Attachment = "attachment", "attachments";
    /// The definition of a custom field.
    CustomField = "custom_field", "custom_fields";
    /// A grant of one record to a user, team or partner organisation.
    Share = "share", "shares";
    /// An opportunity pipeline: ordered stages with probabilities, guards and allowed moves.
    Pipeline = "pipeline", "pipelines";
    /// One recorded lifecycle transition (who, when, from, to, comment).
    Transition = "transition", "transitions";
    /// A rule routing new leads or cases to a user or a queue.
    AssignmentRule = "assignment_rule", "assignment_rules";
    /// A group of users sharing incoming work, round-robin or by least open work.
    Queue = "queue", "queues";
    /// When a quote needs a manager's approval before it can be sent.
    ApprovalRule = "approval_rule", "approval_rules";
    /// A user following a record, to be notified of its changes.
    Follow = "follow", "follows";
    /// Whether changes to one entity type are audited.
    AuditSetting = "audit_setting", "audit_settings";
    /// A named set of accounts, contacts or leads: a filter-language definition (dynamic) or a fixed
    /// member list (static).
    Segment = "segment", "segments";
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl EntityKind {
    /// The schema of this entity type.
    pub fn schema(self) -> &'static Schema {
        // ok: SCHEMAS holds one entry per kind, built from EntityKind::ALL.
        #[allow(clippy::indexing_slicing)]
        &SCHEMAS[self as usize]
    }

    /// Whether records of this type are configuration (roles, custom fields, shares): changing them
    /// takes the `configure` permission.
    pub fn is_configuration(self) -> bool {
        matches!(
            self,
            EntityKind::Role
                | EntityKind::CustomField
                | EntityKind::Share
                | EntityKind::Pipeline
                | EntityKind::AssignmentRule
                | EntityKind::Queue
                | EntityKind::ApprovalRule
                | EntityKind::AuditSetting
        )
    }

    /// Whether records of this type are written only by the library itself (transitions, follows),
    /// never through the generic create/update/delete calls.
    pub fn is_system_managed(self) -> bool {
        matches!(self, EntityKind::Transition | EntityKind::Follow)
    }

    /// Whether this entity type may carry custom fields.
    pub fn allows_custom_fields(self) -> bool {
        !matches!(
            self,
            EntityKind::CustomField | EntityKind::Share | EntityKind::Role
        )
    }

    /// The field linking a record of this type to its account, for territory scopes.
    pub fn account_link(self) -> Option<&'static str> {
        match self {
            EntityKind::Contact
            | EntityKind::AccountContact
            | EntityKind::Opportunity
            | EntityKind::Quote
            | EntityKind::Order
            | EntityKind::Activity
            | EntityKind::Case => Some("account_id"),
            _ => None,
        }
    }
}

/// A built-in field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldSpec {
    /// The field's name (`email`).
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// Whether a record needs a value.
    pub required: bool,
    /// Whether only the library sets it (lifecycle status, computed totals, conversion links).
    pub system: bool,
    /// Whether two live records of a tenant may not share a value.
    pub unique: bool,
    /// The value a new record gets when none is given.
    #[serde(skip)]
    pub default: Option<Value>,
}

impl FieldSpec {
    fn new(name: &'static str, ty: FieldType) -> Self {
        FieldSpec {
            name,
            ty,
            required: false,
            system: false,
            unique: false,
            default: None,
        }
    }
    fn req(mut self) -> Self {
        self.required = true;
        self
    }
    fn system(mut self) -> Self {
        self.system = true;
        self
    }
    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    fn default(mut self, v: impl Into<Value>) -> Self {
        self.default = Some(v.into());
        self
    }
}

/// The fields of an entity type.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The entity type.
    pub kind: EntityKind,
    /// Its built-in fields, in display order.
    pub fields: Vec<FieldSpec>,
    by_name: HashMap<&'static str, usize>,
}

impl Schema {
    fn new(kind: EntityKind, fields: Vec<FieldSpec>) -> Self {
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name, i))
            .collect();
        Schema {
            kind,
            fields,
            by_name,
        }
    }

    /// The built-in field called `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.by_name.get(name).and_then(|i| self.fields.get(*i))
    }
}

/// Roles a party (account or contact) may hold.
pub(crate) const PARTY_ROLES: &[&str] = &[
    "customer",
    "prospect",
    "partner",
    "supplier",
    "employee",
    "external_contact",
];
/// Channels a request arrives through.
pub(crate) const CHANNELS: &[&str] = &[
    "phone", "web_form", "email", "partner", "chat", "event", "other",
];
/// Priorities of leads and cases.
pub(crate) const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
/// Lead lifecycle states.
pub(crate) const LEAD_STATUSES: &[&str] =
    &["new", "contacted", "qualified", "converted", "disqualified"];
/// Quote lifecycle states.
pub(crate) const QUOTE_STATUSES: &[&str] = &[
    "draft",
    "pending_approval",
    "approved",
    "sent",
    "accepted",
    "rejected",
    "expired",
];
/// Case lifecycle states.
pub(crate) const CASE_STATUSES: &[&str] = &[
    "new",
    "assigned",
    "in_progress",
    "waiting_on_customer",
    "resolved",
    "closed",
];
/// Order states.
pub(crate) const ORDER_STATUSES: &[&str] = &["open", "fulfilled", "cancelled"];
/// Activity types.
pub(crate) const ACTIVITY_TYPES: &[&str] =
    &["call", "email", "meeting", "chat", "note", "task", "survey"];
/// Activity channels.
pub(crate) const ACTIVITY_CHANNELS: &[&str] = &[
    "phone",
    "email",
    "web",
    "chat",
    "in_person",
    "video",
    "other",
];
/// Satisfaction surveys: CSAT scores 1–5, NPS scores 0–10.
pub(crate) const SURVEY_TYPES: &[&str] = &["csat", "nps"];
/// Directions of an interaction.
pub(crate) const DIRECTIONS: &[&str] = &["inbound", "outbound"];
/// Forecast categories of opportunity stages.
pub(crate) const FORECAST_CATEGORIES: &[&str] =
    &["pipeline", "best_case", "commit", "closed", "omitted"];
/// Campaign states.
pub(crate) const CAMPAIGN_STATUSES: &[&str] = &["planned", "active", "completed", "aborted"];
/// Campaign member states.
pub(crate) const MEMBER_STATUSES: &[&str] = &[
    "targeted",
    "sent",
    "opened",
    "clicked",
    "responded",
    "converted",
    "unsubscribed",
    "bounced",
];
/// Entity types a segment may group.
pub(crate) const SEGMENT_ENTITIES: &[&str] = &["account", "contact", "lead"];
/// Custom field types that can be defined at run time.
pub(crate) const CUSTOM_FIELD_TYPES: &[&str] = &[
    "text",
    "email",
    "phone",
    "int",
    "decimal",
    "money",
    "date",
    "timestamp",
    "bool",
    "choice",
    "multi_choice",
    "reference",
];

fn kind_names() -> Vec<&'static str> {
    EntityKind::ALL.iter().map(|k| k.name()).collect()
}

static SCHEMAS: LazyLock<Vec<Schema>> = LazyLock::new(|| {
    EntityKind::ALL
        .iter()
        .map(|k| Schema::new(*k, build(*k)))
        .collect()
});

fn build(kind: EntityKind) -> Vec<FieldSpec> {
    use EntityKind as K;
    use FieldSpec as F;
    use FieldType as T;
    let r = |to| T::Reference { to };
    match kind {
        K::Account => vec![
            F::new("name", T::Text).req(),
            F::new("legal_name", T::Text),
            F::new("roles", T::multi_choice(PARTY_ROLES)),
            F::new("email", T::Email),
            F::new("phone", T::Phone),
            F::new("website", T::Text),
            F::new("industry", T::Text),
            F::new("vat_number", T::Text),
            F::new("address", T::Text),
            F::new("city", T::Text),
            F::new("postal_code", T::Text),
            F::new("country", T::Country),
            F::new("territory_id", r(K::Territory)),
            F::new("parent_id", r(K::Account)),
            // Derived order statistics, maintained in the order's transaction (see docs/segments.md).
            F::new("order_count", T::Int).system(),
            F::new("lifetime_value", T::Money).system(),
            F::new("average_order_value", T::Money).system(),
            F::new("first_order_at", T::Timestamp).system(),
            F::new("last_order_at", T::Timestamp).system(),
            F::new("other_currency_orders", T::Int).system(),
            F::new("open_opportunities", T::Int).system(),
            F::new("open_opportunity_value", T::Money).system(),
            F::new("open_cases", T::Int).system(),
        ],
        K::Contact => vec![
            F::new("first_name", T::Text),
            F::new("last_name", T::Text).req(),
            F::new("email", T::Email),
            F::new("phone", T::Phone),
            F::new("mobile", T::Phone),
            F::new("roles", T::multi_choice(PARTY_ROLES)),
            F::new("account_id", r(K::Account)),
            F::new("job_title", T::Text),
            F::new("country", T::Country),
            F::new("email_opt_in", T::Bool).default(false),
            F::new("do_not_contact", T::Bool).default(false),
            F::new("birth_date", T::Date),
        ],
        K::AccountContact => vec![
            F::new("account_id", r(K::Account)).req(),
            F::new("contact_id", r(K::Contact)).req(),
            F::new("job_title", T::Text),
            F::new("is_primary", T::Bool).default(false),
        ],
        K::Lead => vec![
            F::new("first_name", T::Text),
            F::new("last_name", T::Text),
            F::new("company", T::Text),
            F::new("email", T::Email),
            F::new("phone", T::Phone),
            F::new("country", T::Country),
            F::new("channel", T::choice(CHANNELS)).default("other"),
            F::new("status", T::choice(LEAD_STATUSES))
                .system()
                .default("new"),
            F::new("priority", T::choice(PRIORITIES)).default("normal"),
            F::new("estimated_value", T::Money),
            F::new("product_interest", T::Text),
            F::new("description", T::Text),
            F::new("territory_id", r(K::Territory)),
            F::new("disqualify_reason", T::Text),
            F::new("converted_account_id", r(K::Account)).system(),
            F::new("converted_contact_id", r(K::Contact)).system(),
            F::new("converted_opportunity_id", r(K::Opportunity)).system(),
            F::new("assigned_by_rule", T::Text).system(),
        ],
        K::Opportunity => vec![
            F::new("name", T::Text).req(),
            F::new("account_id", r(K::Account)).req(),
            F::new("contact_id", r(K::Contact)),
            F::new("lead_id", r(K::Lead)),
            F::new("pipeline", T::Text),
            F::new("stage", T::Text),
            F::new("amount", T::Money),
            F::new("probability", T::Decimal),
            F::new("forecast_category", T::choice(FORECAST_CATEGORIES)).default("pipeline"),
            F::new("expected_close", T::Date),
            F::new("lost_reason", T::Text),
            F::new("closed_at", T::Timestamp),
        ],
        K::Product => vec![
            F::new("sku", T::Text).req().unique(),
            F::new("name", T::Text).req(),
            F::new("description", T::Text),
            F::new("family", T::Text),
            F::new("list_price", T::Money).req(),
            F::new("unit_cost", T::Money),
            F::new("active", T::Bool).default(true),
        ],
        K::Quote => vec![
            F::new("number", T::Text),
            F::new("account_id", r(K::Account)).req(),
            F::new("contact_id", r(K::Contact)),
            F::new("opportunity_id", r(K::Opportunity)),
            F::new("lead_id", r(K::Lead)),
            F::new("status", T::choice(QUOTE_STATUSES))
                .system()
                .default("draft"),
            F::new("currency", T::Currency).req(),
            F::new("lines", T::Lines),
            F::new("subtotal", T::Money).system(),
            F::new("discount_total", T::Money).system(),
            F::new("tax_total", T::Money).system(),
            F::new("total", T::Money).system(),
            F::new("valid_until", T::Date),
            F::new("email_to", T::Email),
            F::new("auto_send", T::Bool).default(true),
            F::new("approval_required", T::Bool).system().default(false),
            F::new("submitted_by", r(K::User)).system(),
            F::new("approved_by", r(K::User)).system(),
            F::new("approved_at", T::Timestamp).system(),
            F::new("sent_at", T::Timestamp).system(),
            F::new("sent_to", T::Email).system(),
            F::new("rejected_reason", T::Text),
        ],
        K::Order => vec![
            F::new("number", T::Text),
            F::new("account_id", r(K::Account)).req(),
            F::new("contact_id", r(K::Contact)),
            F::new("quote_id", r(K::Quote)),
            F::new("status", T::choice(ORDER_STATUSES)).default("open"),
            F::new("ordered_at", T::Timestamp),
            F::new("currency", T::Currency).req(),
            F::new("lines", T::Lines),
            F::new("subtotal", T::Money).system(),
            F::new("discount_total", T::Money).system(),
            F::new("tax_total", T::Money).system(),
            F::new("total", T::Money).system(),
        ],
        K::Activity => vec![
            F::new("activity_type", T::choice(ACTIVITY_TYPES)).req(),
            F::new("subject", T::Text),
            F::new("body", T::Text),
            F::new("channel", T::choice(ACTIVITY_CHANNELS)),
            F::new("direction", T::choice(DIRECTIONS)),
            F::new("outcome", T::Text),
            F::new("duration_seconds", T::Int),
            F::new("occurred_at", T::Timestamp),
            F::new("due_at", T::Timestamp),
            F::new("completed_at", T::Timestamp),
            F::new("performed_by", r(K::User)),
            F::new("account_id", r(K::Account)),
            F::new("contact_id", r(K::Contact)),
            F::new("lead_id", r(K::Lead)),
            F::new("opportunity_id", r(K::Opportunity)),
            F::new("quote_id", r(K::Quote)),
            F::new("case_id", r(K::Case)),
            F::new("campaign_id", r(K::Campaign)),
            F::new("score", T::Int),
            F::new("survey_type", T::choice(SURVEY_TYPES)),
            F::new("reminded_at", T::Timestamp).system(),
        ],
        K::Case => vec![
            F::new("subject", T::Text).req(),
            F::new("description", T::Text),
            F::new("account_id", r(K::Account)),
            F::new("contact_id", r(K::Contact)),
            F::new("status", T::choice(CASE_STATUSES))
                .system()
                .default("new"),
            F::new("priority", T::choice(PRIORITIES)).default("normal"),
            F::new("channel", T::choice(CHANNELS)).default("other"),
            F::new("product_id", r(K::Product)),
            F::new("article_id", r(K::KnowledgeArticle)),
            F::new("first_response_due", T::Timestamp),
            F::new("resolution_due", T::Timestamp),
            F::new("first_responded_at", T::Timestamp).system(),
            F::new("resolved_at", T::Timestamp).system(),
            F::new("closed_at", T::Timestamp).system(),
            F::new("sla_breached", T::Bool).system().default(false),
            F::new("assigned_by_rule", T::Text).system(),
        ],
        K::KnowledgeArticle => vec![
            F::new("title", T::Text).req(),
            F::new("problem", T::Text),
            F::new("solution", T::Text),
            F::new("keywords", T::Text),
            F::new("product_id", r(K::Product)),
            F::new("published", T::Bool).default(false),
        ],
        K::Campaign => vec![
            F::new("name", T::Text).req(),
            F::new("description", T::Text),
            F::new("status", T::choice(CAMPAIGN_STATUSES)).default("planned"),
            F::new("channel", T::choice(ACTIVITY_CHANNELS)),
            F::new("starts_on", T::Date),
            F::new("ends_on", T::Date),
            F::new("budget", T::Money),
        ],
        K::CampaignMember => vec![
            F::new("campaign_id", r(K::Campaign)).req(),
            F::new("contact_id", r(K::Contact)),
            F::new("lead_id", r(K::Lead)),
            F::new("status", T::choice(MEMBER_STATUSES)).default("targeted"),
            F::new("responded_at", T::Timestamp),
        ],
        K::User => vec![
            F::new("username", T::Text).req().unique(),
            F::new("display_name", T::Text),
            F::new("email", T::Email),
            F::new("user_type", T::choice(&["internal", "external"])).default("internal"),
            F::new("partner_account_id", r(K::Account)),
            F::new("role_id", r(K::Role)),
            F::new("team_ids", T::MultiReference { to: K::Team }),
            F::new("territory_ids", T::MultiReference { to: K::Territory }),
            F::new("manager_id", r(K::User)),
            F::new("seniority", T::Int).default(1_i64),
            F::new("active", T::Bool).default(true),
        ],
        K::Team => vec![
            F::new("name", T::Text).req().unique(),
            F::new("description", T::Text),
        ],
        K::Role => vec![
            F::new("name", T::Text).req().unique(),
            F::new("description", T::Text),
            F::new("policy", T::Json),
        ],
        K::Territory => vec![
            F::new("name", T::Text).req().unique(),
            F::new("description", T::Text),
            F::new("parent_id", r(K::Territory)),
        ],
        K::Attachment => vec![
            F::new("record_kind", T::choice(&kind_names())).req(),
            F::new("record_id", T::AnyReference).req(),
            F::new("name", T::Text).req(),
            F::new("media_type", T::Text).req(),
            F::new("size_bytes", T::Int).req(),
            F::new("checksum", T::Text),
            F::new("storage", T::choice(&["blob", "host"])).default("host"),
            F::new("host_ref", T::Text),
            F::new("description", T::Text),
        ],
        K::CustomField => vec![
            F::new("entity", T::choice(&kind_names())).req(),
            F::new("name", T::Text).req(),
            F::new("key", T::Text).system(),
            F::new("label", T::Text),
            F::new("field_type", T::choice(CUSTOM_FIELD_TYPES)).req(),
            F::new("choices", T::Json),
            F::new("reference_to", T::choice(&kind_names())),
            F::new("required", T::Bool).default(false),
            F::new("archived", T::Bool).default(false),
        ],
        K::Pipeline => vec![
            F::new("name", T::Text).req().unique(),
            F::new("description", T::Text),
            F::new("stages", T::Json).req(),
            F::new("is_default", T::Bool).default(false),
            F::new("active", T::Bool).default(true),
        ],
        K::Transition => vec![
            F::new("record_kind", T::choice(&kind_names())).req(),
            F::new("record_id", T::AnyReference).req(),
            F::new("from_state", T::Text),
            F::new("to_state", T::Text).req(),
            F::new("comment", T::Text),
            F::new("seconds_in_previous", T::Int),
            F::new("rule", T::Text),
        ],
        K::AssignmentRule => vec![
            F::new("name", T::Text).req(),
            F::new("entity", T::choice(&["lead", "case"])).req(),
            F::new("position", T::Int).default(100_i64),
            F::new("active", T::Bool).default(true),
            F::new("conditions", T::Json),
            F::new("target_user_id", r(K::User)),
            F::new("queue_id", r(K::Queue)),
            F::new("min_seniority", T::Int),
        ],
        K::Queue => vec![
            F::new("name", T::Text).req().unique(),
            F::new("strategy", T::choice(&["round_robin", "least_open"])).default("round_robin"),
            F::new("member_ids", T::MultiReference { to: K::User }),
            F::new("min_seniority", T::Int),
            F::new("cursor", T::Int).system().default(0_i64),
        ],
        K::ApprovalRule => vec![
            F::new("name", T::Text).req(),
            F::new("active", T::Bool).default(true),
            F::new("max_discount_percent", T::Decimal),
            F::new("max_total", T::Money),
            F::new("always", T::Bool).default(false),
        ],
        K::Follow => vec![
            F::new("record_kind", T::choice(&kind_names())).req(),
            F::new("record_id", T::AnyReference).req(),
            F::new("user_id", r(K::User)).req(),
        ],
        K::AuditSetting => vec![
            F::new("entity", T::choice(&kind_names())).req().unique(),
            F::new("enabled", T::Bool).default(true),
        ],
        K::Segment => vec![
            F::new("name", T::Text).req(),
            F::new("entity", T::choice(SEGMENT_ENTITIES)).req(),
            F::new("kind", T::choice(&["static", "dynamic"])).default("dynamic"),
            F::new("definition", T::Text),
            F::new("currency", T::Currency),
            F::new("member_ids", T::Json),
            F::new("member_count", T::Int).system(),
            F::new("last_refreshed_at", T::Timestamp).system(),
        ],
        K::Share => vec![
            F::new("record_kind", T::choice(&kind_names())).req(),
            F::new("record_id", T::AnyReference).req(),
            F::new("grantee_user_id", r(K::User)),
            F::new("grantee_team_id", r(K::Team)),
            F::new("grantee_account_id", r(K::Account)),
            F::new("access", T::choice(&["read", "edit"])).req(),
            F::new("expires_at", T::Timestamp),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_schema_and_round_trips_its_name() {
        for k in EntityKind::ALL {
            assert_eq!(k.schema().kind, *k);
            assert_eq!(k.name().parse::<EntityKind>().unwrap(), *k);
            assert!(!k.schema().fields.is_empty());
        }
    }
}
