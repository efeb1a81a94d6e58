//! Small facade additions beside the processes: the filter language, segment counts and refreshes,
//! online backups and the storage integrity check. Thin conversions inside [`guard`], as elsewhere.

use crm_core::Currency as CoreCurrency;

use crate::error::{guard, CrmError};
use crate::session::Session;
use crate::types::{kind, record_id, signed};

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
                .crm
                .parse_filter(&self.ctx, kind(&kind_name)?, &text, currency)?;
            serde_json::to_string(&f)
                .map_err(|e| CrmError::internal("serialize", format!("filter to JSON: {e}")))
        })
    }

    /// How many records the user may read are in a segment now.
    pub fn segment_count(&self, segment_id: String) -> Result<i64, CrmError> {
        guard(|| {
            Ok(signed(self.crm.segment_count(
                &self.ctx,
                record_id(&segment_id, "segment_id")?,
            )?))
        })
    }

    /// Materialises a dynamic segment's members into `member_ids` and reports who entered and left.
    pub fn refresh_segment(&self, segment_id: String) -> Result<FfiSegmentDiff, CrmError> {
        guard(|| {
            let d = self
                .crm
                .refresh_segment(&self.ctx, record_id(&segment_id, "segment_id")?)?;
            Ok(FfiSegmentDiff {
                entered: d.entered.into_iter().map(|i| i.to_string()).collect(),
                left: d.left.into_iter().map(|i| i.to_string()).collect(),
                member_count: signed(d.member_count),
            })
        })
    }

    /// Takes an online backup of the whole database into the new file `dest_path` while others keep
    /// working, and checks the copy's integrity (administrators).
    pub fn backup(&self, dest_path: String) -> Result<(), CrmError> {
        guard(|| {
            Ok(self
                .crm
                .backup(&self.ctx, std::path::Path::new(&dest_path), &mut |_, _| {})?)
        })
    }

    /// The storage's own consistency check: empty when sound (administrators).
    pub fn integrity_check(&self) -> Result<Vec<String>, CrmError> {
        guard(|| Ok(self.crm.integrity_check(&self.ctx)?))
    }
}
