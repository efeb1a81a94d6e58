//! Domain events, written to an outbox in the same transaction as the change they describe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{RecordId, TenantId};
use crate::schema::EntityKind;

/// An event waiting in (or drained from) the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The tenant.
    pub tenant: TenantId,
    /// Position in the outbox (assigned on write, increasing).
    pub seq: u64,
    /// When the change happened.
    pub at: DateTime<Utc>,
    /// What happened: `record.created`, `record.updated`, `lead.assigned`, `quote.approved`, …
    pub event_type: String,
    /// The record's type.
    pub kind: EntityKind,
    /// The record.
    pub record_id: RecordId,
    /// Who acted.
    pub user_id: RecordId,
    /// Event details (JSON).
    pub payload: serde_json::Value,
}

/// An event about to be written; the store assigns `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The tenant.
    pub tenant: TenantId,
    /// When.
    pub at: DateTime<Utc>,
    /// What happened.
    pub event_type: String,
    /// The record's type.
    pub kind: EntityKind,
    /// The record.
    pub record_id: RecordId,
    /// Who acted.
    pub user_id: RecordId,
    /// Details.
    pub payload: serde_json::Value,
}
