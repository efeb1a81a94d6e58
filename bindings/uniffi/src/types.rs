//! Mirror types and their conversions. No floating point crosses the boundary: decimals and money
//! amounts are strings, instants are UTC epoch microseconds, ids are strings.

use std::collections::HashMap;
use std::str::FromStr;

use crm_core::chrono::{DateTime, NaiveDate, Utc};
use crm_core::{
    AccessReview as CoreAccessReview, Action as CoreAction,
    AuditVerification as CoreAuditVerification, Currency as CoreCurrency, Decimal as CoreDecimal,
    Decision as CoreDecision, EntityKind as CoreEntityKind, Event as CoreEvent,
    FieldChange as CoreFieldChange, Fields as CoreFields, Filter as CoreFilter,
    Grantee as CoreGrantee, HistoryEntry as CoreHistoryEntry, HistoryPage as CoreHistoryPage,
    LineItem as CoreLineItem, Money as CoreMoney, Origin as CoreOrigin, Record as CoreRecord,
    RecordId as CoreRecordId, TenantId as CoreTenantId, Value as CoreValue,
};

use crate::error::CrmError;

/// A field value. Decimals and money amounts travel as strings (`"0.10"`) so no precision is lost to
/// floating point; instants as UTC epoch microseconds; dates as ISO `YYYY-MM-DD`; ids as strings.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum FfiValue {
    /// No value (writing it clears a field).
    Null,
    /// Text, e-mail, phone, country, currency or choice values.
    Text {
        /// The text.
        value: String,
    },
    /// A 64-bit integer.
    Int {
        /// The integer.
        value: i64,
    },
    /// An exact decimal, as a string (`"12.50"`).
    Decimal {
        /// The decimal, `.` as separator, no exponent.
        value: String,
    },
    /// An amount with its ISO 4217 currency.
    Money {
        /// The amount as a decimal string.
        amount: String,
        /// The currency code (`EUR`).
        currency: String,
    },
    /// A calendar date.
    Date {
        /// `YYYY-MM-DD`.
        iso: String,
    },
    /// An instant.
    Timestamp {
        /// Microseconds since 1970-01-01T00:00:00Z.
        epoch_micros: i64,
    },
    /// True or false.
    Bool {
        /// The flag.
        value: bool,
    },
    /// A record id.
    Ref {
        /// The id (hyphenated UUID).
        id: String,
    },
    /// Several texts (multi choice) or ids (multi reference).
    List {
        /// The items.
        items: Vec<String>,
    },
    /// Structured configuration (a role's policy, …) as JSON text.
    Json {
        /// The JSON document.
        json: String,
    },
    /// Quote or order line items as a JSON array (decimals as strings).
    Lines {
        /// The JSON array.
        json: String,
    },
}

impl From<CoreValue> for FfiValue {
    fn from(v: CoreValue) -> Self {
        match v {
            CoreValue::Null => FfiValue::Null,
            CoreValue::Text(value) => FfiValue::Text { value },
            CoreValue::Int(value) => FfiValue::Int { value },
            CoreValue::Decimal(d) => FfiValue::Decimal {
                value: d.to_string(),
            },
            CoreValue::Money(m) => FfiValue::Money {
                amount: m.amount.to_string(),
                currency: m.currency.code().to_owned(),
            },
            CoreValue::Date(d) => FfiValue::Date {
                iso: d.format("%Y-%m-%d").to_string(),
            },
            CoreValue::Timestamp(t) => FfiValue::Timestamp {
                epoch_micros: t.timestamp_micros(),
            },
            CoreValue::Bool(value) => FfiValue::Bool { value },
            CoreValue::Ref(id) => FfiValue::Ref { id: id.to_string() },
            CoreValue::List(items) => FfiValue::List { items },
            CoreValue::Json(j) => FfiValue::Json {
                json: j.to_string(),
            },
            CoreValue::Lines(lines) => FfiValue::Lines {
                json: serde_json::to_string(&lines).unwrap_or_else(|_| "[]".to_owned()),
            },
        }
    }
}

/// Converts a value for field `field` (named in errors).
pub(crate) fn core_value(field: &str, v: FfiValue) -> Result<CoreValue, CrmError> {
    let bad =
        |rule: &str, what: &str| CrmError::validation(field, rule, format!("not a valid {what}"));
    Ok(match v {
        FfiValue::Null => CoreValue::Null,
        FfiValue::Text { value } => CoreValue::Text(value),
        FfiValue::Int { value } => CoreValue::Int(value),
        FfiValue::Decimal { value } => CoreValue::Decimal(
            parse_decimal(&value).ok_or_else(|| bad("decimal_syntax", "decimal"))?,
        ),
        FfiValue::Money { amount, currency } => {
            let amount =
                parse_decimal(&amount).ok_or_else(|| bad("decimal_syntax", "decimal amount"))?;
            let currency = CoreCurrency::parse_field(&currency, field)?;
            CoreValue::Money(CoreMoney::new(amount, currency))
        }
        FfiValue::Date { iso } => CoreValue::Date(
            NaiveDate::parse_from_str(&iso, "%Y-%m-%d")
                .map_err(|_| bad("date_syntax", "date (YYYY-MM-DD)"))?,
        ),
        FfiValue::Timestamp { epoch_micros } => CoreValue::Timestamp(instant(field, epoch_micros)?),
        FfiValue::Bool { value } => CoreValue::Bool(value),
        FfiValue::Ref { id } => CoreValue::Ref(CoreRecordId::parse_field(&id, field)?),
        FfiValue::List { items } => CoreValue::List(items),
        FfiValue::Json { json } => CoreValue::Json(
            serde_json::from_str(&json).map_err(|_| bad("json_syntax", "JSON document"))?,
        ),
        FfiValue::Lines { json } => {
            let lines: Vec<CoreLineItem> =
                serde_json::from_str(&json).map_err(|_| bad("lines_syntax", "line item array"))?;
            CoreValue::Lines(lines)
        }
    })
}

pub(crate) fn parse_decimal(s: &str) -> Option<CoreDecimal> {
    CoreDecimal::from_str(s.trim()).ok()
}

/// Epoch microseconds to an instant; `field` is named in the error.
pub(crate) fn instant(field: &str, epoch_micros: i64) -> Result<DateTime<Utc>, CrmError> {
    DateTime::from_timestamp_micros(epoch_micros)
        .ok_or_else(|| CrmError::validation(field, "timestamp_range", "instant out of range"))
}

/// Unsigned core counts to the signed integers every host language has (Java has no unsigned types).
pub(crate) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A host's signed integer to an unsigned core one; negative numbers are refused naming `field`.
pub(crate) fn unsigned32(field: &str, n: i32) -> Result<u32, CrmError> {
    u32::try_from(n)
        .map_err(|_| CrmError::validation(field, "non_negative", "must not be negative"))
}

/// Same, 64 bits.
pub(crate) fn unsigned64(field: &str, n: i64) -> Result<u64, CrmError> {
    u64::try_from(n)
        .map_err(|_| CrmError::validation(field, "non_negative", "must not be negative"))
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Host field maps to core field maps.
pub(crate) fn core_fields(fields: HashMap<String, FfiValue>) -> Result<CoreFields, CrmError> {
    fields
        .into_iter()
        .map(|(k, v)| core_value(&k, v).map(|v| (k, v)))
        .collect()
}

fn ffi_fields(fields: CoreFields) -> HashMap<String, FfiValue> {
    fields.into_iter().map(|(k, v)| (k, v.into())).collect()
}

pub(crate) fn kind(s: &str) -> Result<CoreEntityKind, CrmError> {
    Ok(CoreEntityKind::from_str(s)?)
}

pub(crate) fn record_id(s: &str, field: &str) -> Result<CoreRecordId, CrmError> {
    Ok(CoreRecordId::parse_field(s, field)?)
}

pub(crate) fn tenant(s: &str) -> Result<CoreTenantId, CrmError> {
    Ok(CoreTenantId::new(s)?)
}

pub(crate) fn action(s: &str) -> Result<CoreAction, CrmError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| CrmError::validation("action", "action", format!("`{s}` is not an action")))
}

/// Parses the serde JSON form of the core `Filter`.
pub(crate) fn filter(json: Option<&str>) -> Result<Option<CoreFilter>, CrmError> {
    match json.map(str::trim) {
        None | Some("") | Some("null") => Ok(None),
        Some(j) => serde_json::from_str(j).map(Some).map_err(|e| {
            CrmError::invalid_query("filter_syntax", format!("filter JSON does not parse: {e}"))
        }),
    }
}

/// A host list request to the core's.
pub(crate) fn list_request(request: FfiListRequest) -> Result<crm_core::ListRequest, CrmError> {
    Ok(crm_core::ListRequest {
        filter: filter(request.filter_json.as_deref())?,
        sort: request.sort.map(|field| crm_core::Sort {
            field,
            descending: request.descending,
        }),
        after: request.after,
        limit: request.limit.map(|l| unsigned32("limit", l)).transpose()?,
        deleted: request.deleted,
    })
}

/// A saved record.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiRecord {
    /// The entity type (`account`, `contact`, …).
    pub kind: String,
    /// The record id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The owning user.
    pub owner_id: String,
    /// Starts at 1, grows with every change; pass it back to `update`.
    pub version: i64,
    /// Creation instant, UTC epoch microseconds.
    pub created_at: i64,
    /// Creator.
    pub created_by: String,
    /// Last change instant, UTC epoch microseconds.
    pub updated_at: i64,
    /// Last changer.
    pub updated_by: String,
    /// When it went to the trash, if it did.
    pub deleted_at: Option<i64>,
    /// Built-in field values (hidden fields absent).
    pub fields: HashMap<String, FfiValue>,
    /// Custom field values by custom field name.
    pub custom: HashMap<String, FfiValue>,
}

impl From<CoreRecord> for FfiRecord {
    fn from(r: CoreRecord) -> Self {
        let m = r.meta;
        FfiRecord {
            kind: m.kind.name().to_owned(),
            id: m.id.to_string(),
            tenant: m.tenant.to_string(),
            owner_id: m.owner_id.to_string(),
            version: m.version,
            created_at: micros(m.created_at),
            created_by: m.created_by.to_string(),
            updated_at: micros(m.updated_at),
            updated_by: m.updated_by.to_string(),
            deleted_at: m.deleted_at.map(micros),
            fields: ffi_fields(r.fields),
            custom: ffi_fields(r.custom),
        }
    }
}

/// A page of records and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiPage {
    /// The records.
    pub items: Vec<FfiRecord>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// What a list asks for. Every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct FfiListRequest {
    /// The core `Filter` as JSON, e.g.
    /// `{"op":"compare","field":"city","cmp":"eq","value":{"type":"text","value":"Milano"}}`.
    #[uniffi(default)]
    pub filter_json: Option<String>,
    /// The sort field; by id (creation order) when absent.
    #[uniffi(default)]
    pub sort: Option<String>,
    /// Largest first.
    #[uniffi(default)]
    pub descending: bool,
    /// Page size, 1 to 1 000 (default 50).
    #[uniffi(default)]
    pub limit: Option<i32>,
    /// The `next` cursor of the previous page.
    #[uniffi(default)]
    pub after: Option<String>,
    /// List the trash instead of live records.
    #[uniffi(default)]
    pub deleted: bool,
}

/// Where a request comes from (recorded in the audit log).
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct FfiOrigin {
    /// Client application (`erp-desktop 7.2`).
    #[uniffi(default)]
    pub client: Option<String>,
    /// Network address.
    #[uniffi(default)]
    pub address: Option<String>,
    /// Place (`Milan office`).
    #[uniffi(default)]
    pub location: Option<String>,
}

impl From<FfiOrigin> for CoreOrigin {
    fn from(o: FfiOrigin) -> Self {
        CoreOrigin {
            client: o.client,
            address: o.address,
            location: o.location,
        }
    }
}

impl From<CoreOrigin> for FfiOrigin {
    fn from(o: CoreOrigin) -> Self {
        FfiOrigin {
            client: o.client,
            address: o.address,
            location: o.location,
        }
    }
}

/// Who a record is shared with.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum FfiGrantee {
    /// One user.
    User {
        /// The user id.
        id: String,
    },
    /// Every member of a team.
    Team {
        /// The team id.
        id: String,
    },
    /// Every external user of a partner account.
    Partner {
        /// The account id.
        id: String,
    },
}

impl TryFrom<FfiGrantee> for CoreGrantee {
    type Error = CrmError;
    fn try_from(g: FfiGrantee) -> Result<Self, CrmError> {
        Ok(match g {
            FfiGrantee::User { id } => CoreGrantee::User(record_id(&id, "grantee")?),
            FfiGrantee::Team { id } => CoreGrantee::Team(record_id(&id, "grantee")?),
            FfiGrantee::Partner { id } => CoreGrantee::Partner(record_id(&id, "grantee")?),
        })
    }
}

/// An access decision and the rule behind it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiDecision {
    /// Allowed or not.
    pub allowed: bool,
    /// The deciding rule (`object_permission`, `record_scope`, `share`, …).
    pub rule: String,
    /// An explanation an administrator understands.
    pub reason: String,
}

impl From<CoreDecision> for FfiDecision {
    fn from(d: CoreDecision) -> Self {
        FfiDecision {
            allowed: d.allowed,
            rule: d.rule,
            reason: d.reason,
        }
    }
}

/// Whether one user can read a record, and why.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiAccessReview {
    /// The user id.
    pub user_id: String,
    /// The username.
    pub username: String,
    /// The decision.
    pub decision: FfiDecision,
}

impl From<CoreAccessReview> for FfiAccessReview {
    fn from(a: CoreAccessReview) -> Self {
        FfiAccessReview {
            user_id: a.user_id.to_string(),
            username: a.username,
            decision: a.decision.into(),
        }
    }
}

/// A role able to read a field.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiRoleFieldAccess {
    /// The role id.
    pub role_id: String,
    /// The role name.
    pub role_name: String,
    /// `read` or `read_only`.
    pub access: String,
}

/// The change of one field.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiFieldChange {
    /// The field (`custom.<name>` for custom fields).
    pub field: String,
    /// Before.
    pub old: FfiValue,
    /// After.
    pub new: FfiValue,
}

impl From<CoreFieldChange> for FfiFieldChange {
    fn from(c: CoreFieldChange) -> Self {
        FfiFieldChange {
            field: c.field,
            old: c.old.into(),
            new: c.new.into(),
        }
    }
}

/// An audit entry as the reader may see it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiHistoryEntry {
    /// Position in the tenant's audit chain.
    pub seq: i64,
    /// When, UTC epoch microseconds.
    pub at: i64,
    /// Who.
    pub user_id: String,
    /// From where.
    pub origin: FfiOrigin,
    /// How (`create`, `update`, `delete`, `restore`, `purge`, `share`, …).
    pub operation: String,
    /// The record's type.
    pub kind: String,
    /// The record.
    pub record_id: String,
    /// The record's version after the change.
    pub version: i64,
    /// Field changes the reader may see.
    pub changes: Vec<FfiFieldChange>,
    /// Transition comment or purge reason.
    pub comment: Option<String>,
}

impl From<CoreHistoryEntry> for FfiHistoryEntry {
    fn from(h: CoreHistoryEntry) -> Self {
        FfiHistoryEntry {
            seq: signed(h.seq),
            at: micros(h.at),
            user_id: h.user_id.to_string(),
            origin: h.origin.into(),
            operation: h.operation.name().to_owned(),
            kind: h.kind.name().to_owned(),
            record_id: h.record_id.to_string(),
            version: h.version,
            changes: h.changes.into_iter().map(Into::into).collect(),
            comment: h.comment,
        }
    }
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiHistoryPage {
    /// The entries.
    pub entries: Vec<FfiHistoryEntry>,
    /// Pass as `before_seq` for the next (older) page.
    pub next: Option<i64>,
}

impl From<CoreHistoryPage> for FfiHistoryPage {
    fn from(p: CoreHistoryPage) -> Self {
        FfiHistoryPage {
            entries: p.entries.into_iter().map(Into::into).collect(),
            next: p.next.map(signed),
        }
    }
}

/// The outcome of checking the audit hash chain.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiAuditVerification {
    /// Entries checked.
    pub checked: i64,
    /// Whether the chain is intact.
    pub ok: bool,
    /// The first bad entry.
    pub first_bad_seq: Option<i64>,
    /// `altered`, `missing` or `reordered`.
    pub problem: Option<String>,
}

impl From<CoreAuditVerification> for FfiAuditVerification {
    fn from(v: CoreAuditVerification) -> Self {
        FfiAuditVerification {
            checked: signed(v.checked),
            ok: v.ok,
            first_bad_seq: v.first_bad_seq.map(signed),
            problem: v.problem,
        }
    }
}

/// An outbox event.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiEvent {
    /// Position in the outbox; pass to `ack_events` once delivered.
    pub seq: i64,
    /// When, UTC epoch microseconds.
    pub at: i64,
    /// `record.created`, `record.updated`, …
    pub event_type: String,
    /// The record's type.
    pub kind: String,
    /// The record.
    pub record_id: String,
    /// Who acted.
    pub user_id: String,
    /// Details as JSON text.
    pub payload_json: String,
}

impl From<CoreEvent> for FfiEvent {
    fn from(e: CoreEvent) -> Self {
        FfiEvent {
            seq: signed(e.seq),
            at: micros(e.at),
            event_type: e.event_type,
            kind: e.kind.name().to_owned(),
            record_id: e.record_id.to_string(),
            user_id: e.user_id.to_string(),
            payload_json: e.payload.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn round_trip(v: FfiValue) -> FfiValue {
        core_value("f", v).unwrap().into()
    }

    #[test]
    fn values_round_trip_without_floats() {
        for v in [
            FfiValue::Null,
            FfiValue::Text { value: "x".into() },
            FfiValue::Int { value: -7 },
            FfiValue::Decimal {
                value: "0.10".into(),
            },
            FfiValue::Money {
                amount: "1234.50".into(),
                currency: "EUR".into(),
            },
            FfiValue::Date {
                iso: "2024-02-29".into(),
            },
            FfiValue::Timestamp {
                epoch_micros: 1_700_000_000_123_456,
            },
            FfiValue::Bool { value: true },
            FfiValue::Ref {
                id: "0190f0e4-0000-7000-8000-000000000000".into(),
            },
            FfiValue::List {
                items: vec!["a".into(), "b".into()],
            },
            FfiValue::Json {
                json: r#"{"a":1}"#.into(),
            },
        ] {
            assert_eq!(round_trip(v.clone()), v);
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = core_value(
            "amount",
            FfiValue::Decimal {
                value: "1,5".into(),
            },
        )
        .unwrap_err();
        assert!(
            matches!(e, CrmError::Validation { ref field, .. } if field.as_deref() == Some("amount"))
        );
        assert!(core_value(
            "d",
            FfiValue::Date {
                iso: "2023-02-29".into()
            }
        )
        .is_err());
        assert!(core_value(
            "m",
            FfiValue::Money {
                amount: "1".into(),
                currency: "XXZ".into()
            }
        )
        .is_err());
        assert!(matches!(
            filter(Some("{")),
            Err(CrmError::InvalidQuery { .. })
        ));
        assert!(filter(Some("  ")).unwrap().is_none());
        assert!(unsigned32("limit", -1).is_err());
    }
}
