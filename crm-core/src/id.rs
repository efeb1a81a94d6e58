//! Identifiers: time-ordered record ids (UUIDv7) and tenant ids.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{CrmError, Result};

/// The id of any record: a UUIDv7, so ids sort by creation time and inserts append to B-trees.
///
/// Shown and parsed as the usual hyphenated lowercase string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(Uuid);

impl RecordId {
    /// A new id whose time part is `at` (the injected clock's time) and whose rest is random.
    pub fn new_at(at: DateTime<Utc>) -> Self {
        let secs = u64::try_from(at.timestamp()).unwrap_or(0);
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, at.timestamp_subsec_nanos());
        RecordId(Uuid::new_v7(ts))
    }

    /// Wraps raw bytes (as stored).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        RecordId(Uuid::from_bytes(bytes))
    }

    /// The 16 raw bytes (as stored).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The nil id, used as the lowest keyset position.
    pub fn nil() -> Self {
        RecordId(Uuid::nil())
    }

    /// Parses an id, naming `field` in the error.
    pub fn parse_field(s: &str, field: &str) -> Result<Self> {
        Uuid::parse_str(s)
            .map(RecordId)
            .map_err(|_| CrmError::validation(field, "id_syntax", "not a valid record id"))
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({})", self.0.hyphenated())
    }
}

impl FromStr for RecordId {
    type Err = CrmError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse_field(s, "id")
    }
}

/// A tenant: one company of the host ERP. Every row carries it; nothing ever crosses tenants.
///
/// 1 to 64 characters from `A-Z a-z 0-9 _ - .`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Validates and wraps a tenant id.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if ok {
            Ok(TenantId(s))
        } else {
            Err(CrmError::validation(
                "tenant",
                "tenant_syntax",
                "a tenant id has 1 to 64 characters from letters, digits, `_`, `-` and `.`",
            ))
        }
    }

    /// The tenant id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = CrmError;
    fn try_from(s: String) -> Result<Self> {
        TenantId::new(s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_sort_by_time() {
        let a = RecordId::new_at(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        let b = RecordId::new_at(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 1).unwrap());
        assert!(a < b);
        assert_eq!(a.to_string().parse::<RecordId>().unwrap(), a);
    }

    #[test]
    fn tenant_syntax() {
        assert!(TenantId::new("acme-it").is_ok());
        assert_eq!(
            TenantId::new("a b").unwrap_err().rule.as_deref(),
            Some("tenant_syntax")
        );
        assert!(TenantId::new("").is_err());
    }
}
