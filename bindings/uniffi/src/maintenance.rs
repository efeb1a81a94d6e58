//! Small facade additions beside the processes: the filter language, segment counts and refreshes
//! (on the session), and the host operations — online backups, the storage integrity check, tenant
//! export and import (on the handle). Thin conversions inside [`guard`], as elsewhere.

use std::io::{BufReader, BufWriter};

use crm_core::{Currency as CoreCurrency, TransferSummary as CoreTransferSummary};

use crate::error::{guard, CrmError};
use crate::session::{CrmHandle, Session};
use crate::types::{kind, record_id, signed, tenant};

/// What a segment refresh changed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiSegmentDiff {
    /// Ids of the members now that were not members at the previous refresh.
    pub entered: Vec<String>,
    /// Ids of the members at the previous refresh that are not members now.
    pub left: Vec<String>,
    /// How many members now.
    pub member_count: i64,
}

/// What a tenant export or import moved.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiTransferSummary {
    /// Records (of every type, trash included).
    pub records: i64,
    /// Audit entries.
    pub audit: i64,
    /// Pending outbox events.
    pub events: i64,
}

impl From<CoreTransferSummary> for FfiTransferSummary {
    fn from(s: CoreTransferSummary) -> Self {
        FfiTransferSummary {
            records: signed(s.records),
            audit: signed(s.audit),
            events: signed(s.events),
        }
    }
}

fn io(path: &str, e: std::io::Error) -> CrmError {
    CrmError::Storage {
        detail: format!("cannot use the file: {e}"),
        field: Some(path.to_owned()),
        rule: Some("io".to_owned()),
        action: None,
        entity: None,
    }
}

#[uniffi::export]
impl CrmHandle {
    /// Takes an online backup of the whole database — every tenant — into the new file `dest_path`
    /// while others keep working, and checks the copy's integrity. A host operation: no acting user.
    pub fn backup(&self, dest_path: String) -> Result<(), CrmError> {
        guard(|| {
            Ok(self
                .core()
                .backup(std::path::Path::new(&dest_path), &mut |_, _| {})?)
        })
    }

    /// The storage's own consistency check: empty when sound. A host operation: no acting user.
    pub fn integrity_check(&self) -> Result<Vec<String>, CrmError> {
        guard(|| Ok(self.core().integrity_check()?))
    }

    /// Writes the whole of tenant `tenant_id` — every record with every field, the audit trail and
    /// the pending outbox events — to the new file `dest_path` as JSON Lines (an existing file is
    /// never overwritten: `Storage`, rule `io`). A host operation: no acting user, nothing redacted.
    pub fn export_tenant(
        &self,
        tenant_id: String,
        dest_path: String,
    ) -> Result<FfiTransferSummary, CrmError> {
        guard(|| {
            let t = tenant(&tenant_id)?;
            let file = std::fs::File::create_new(&dest_path).map_err(|e| io(&dest_path, e))?;
            let s = self
                .core()
                .export_tenant(&t, &mut BufWriter::new(file), &mut |_| {})?;
            Ok(s.into())
        })
    }

    /// Reads a tenant export (JSON Lines, from `CrmHandle::export_tenant`) into this database, whose
    /// tenant must be empty: records keep their ids, versions and history; the audit chain is checked
    /// first; all or nothing. Needs no acting user (the export brings its users).
    pub fn import_tenant(&self, src_path: String) -> Result<FfiTransferSummary, CrmError> {
        guard(|| {
            let file = std::fs::File::open(&src_path).map_err(|e| io(&src_path, e))?;
            let s = self
                .core()
                .import_tenant(&mut BufReader::new(file), &mut |_| {})?;
            Ok(s.into())
        })
    }
}

#[uniffi::export]
impl Session {
    /// Parses filter-language text over a type (`country = "IT" and days_since_last_order < 30`)
    /// into the filter JSON that `list`, `count` and `export` take. Amounts without a currency are in
    /// `currency`. Errors are `InvalidQuery` naming the field.
    #[uniffi::method(default(currency = None))]
    pub fn parse_filter(
        &self,
        kind_name: String,
        text: String,
        currency: Option<String>,
    ) -> Result<String, CrmError> {
        guard(|| {
            let currency = currency
                .map(|c| CoreCurrency::parse_field(&c, "currency"))
                .transpose()?;
            let f = self
                .session
                .segments()
                .parse(kind(&kind_name)?, &text, currency)?;
            serde_json::to_string(&f)
                .map_err(|e| CrmError::internal("serialize", format!("filter to JSON: {e}")))
        })
    }

    /// How many records the user may read are in a segment now.
    pub fn segment_count(&self, segment_id: String) -> Result<i64, CrmError> {
        guard(|| {
            Ok(signed(
                self.session
                    .segments()
                    .count(record_id(&segment_id, "segment_id")?)?,
            ))
        })
    }

    /// Materialises a dynamic segment's members into `member_ids` and reports who entered and left.
    pub fn refresh_segment(&self, segment_id: String) -> Result<FfiSegmentDiff, CrmError> {
        guard(|| {
            let d = self
                .session
                .segments()
                .refresh(record_id(&segment_id, "segment_id")?)?;
            Ok(FfiSegmentDiff {
                entered: d.entered.into_iter().map(|i| i.to_string()).collect(),
                left: d.left.into_iter().map(|i| i.to_string()).collect(),
                member_count: signed(d.member_count),
            })
        })
    }
}
