//! Saved records: the payload (built-in and custom field values) plus the bookkeeping every record has.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{RecordId, TenantId};
use crate::schema::EntityKind;
use crate::value::{Fields, Value};

/// What every record carries besides its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The entity type.
    pub kind: EntityKind,
    /// The record's id.
    pub id: RecordId,
    /// The tenant the record belongs to.
    pub tenant: TenantId,
    /// The user who owns the record (record scopes are computed from it).
    pub owner_id: RecordId,
    /// When the record was created (UTC).
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: RecordId,
    /// When it was last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    pub updated_by: RecordId,
    /// Starts at 1 and grows by one with every change; an update naming an older version is a conflict.
    pub version: i64,
    /// When it was moved to the trash, if it was.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A saved record of any entity type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Id, tenant, owner, timestamps, version.
    pub meta: RecordMeta,
    /// Built-in field values by field name. Fields hidden from the reader are absent.
    pub fields: Fields,
    /// Custom field values by custom field name (in storage: by the field's stable key).
    pub custom: Fields,
}

impl Record {
    /// The value of built-in field `name` (`Null` when absent).
    pub fn get(&self, name: &str) -> &Value {
        self.fields.get(name).unwrap_or(&Value::Null)
    }

    /// The value of custom field `name` (`Null` when absent).
    pub fn custom(&self, name: &str) -> &Value {
        self.custom.get(name).unwrap_or(&Value::Null)
    }

    /// The text of built-in field `name`, if it holds text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).as_text()
    }

    /// The record id of reference field `name`, if set.
    pub fn reference(&self, name: &str) -> Option<RecordId> {
        self.get(name).as_ref_id()
    }

    /// A short label for lists and logs: the name, title, subject or id.
    pub fn label(&self) -> String {
        for f in ["name", "title", "subject", "username", "sku", "number"] {
            if let Some(t) = self.text(f) {
                return t.to_owned();
            }
        }
        if let (Some(first), Some(last)) = (self.text("first_name"), self.text("last_name")) {
            return format!("{first} {last}");
        }
        if let Some(last) = self.text("last_name") {
            return last.to_owned();
        }
        self.meta.id.to_string()
    }
}

/// Builds a [`Fields`] map: `fields! { "name" => "ACME", "country" => "IT" }`.
#[macro_export]
macro_rules! fields {
    () => { $crate::Fields::new() };
    ($($k:expr => $v:expr),+ $(,)?) => {{
        let mut m = $crate::Fields::new();
        $( m.insert(($k).to_string(), $crate::Value::from($v)); )+
        m
    }};
}
