//! A tiny filter builder for hosts that would rather not write the filter JSON by hand. Each function
//! returns the core `Filter` as JSON text, to pass as `filter_json`.

use crm_core::backend::Op as CoreOp;
use crm_core::Filter as CoreFilter;

use crate::error::{guard, CrmError};
use crate::types::{core_value, FfiValue};

fn to_json(f: &CoreFilter) -> Result<String, CrmError> {
    serde_json::to_string(f).map_err(|e| CrmError::internal("filter_json", e.to_string()))
}

fn parse(json: &str) -> Result<CoreFilter, CrmError> {
    serde_json::from_str(json).map_err(|e| {
        CrmError::invalid_query("filter_syntax", format!("filter JSON does not parse: {e}"))
    })
}

/// `field <cmp> value`, `cmp` one of `eq`, `ne`, `lt`, `le`, `gt`, `ge`.
#[uniffi::export]
pub fn filter_compare(field: String, cmp: String, value: FfiValue) -> Result<String, CrmError> {
    guard(|| {
        let op: CoreOp =
            serde_json::from_value(serde_json::Value::String(cmp.clone())).map_err(|_| {
                CrmError::invalid_query("operator", format!("`{cmp}` is not an operator"))
            })?;
        let value = core_value(&field, value)?;
        to_json(&CoreFilter::Compare {
            field,
            cmp: op,
            value,
        })
    })
}

/// `field` has no value.
#[uniffi::export]
pub fn filter_is_null(field: String) -> Result<String, CrmError> {
    guard(|| to_json(&CoreFilter::IsNull { field }))
}

/// A list field holds `value`, or a text field contains it (case-insensitive).
#[uniffi::export]
pub fn filter_contains(field: String, value: FfiValue) -> Result<String, CrmError> {
    guard(|| {
        let value = core_value(&field, value)?;
        to_json(&CoreFilter::Contains { field, value })
    })
}

/// A text field starts with `prefix`.
#[uniffi::export]
pub fn filter_starts_with(field: String, prefix: String) -> Result<String, CrmError> {
    guard(|| {
        to_json(&CoreFilter::StartsWith {
            field,
            value: prefix,
        })
    })
}

/// Every filter holds.
#[uniffi::export]
pub fn filter_all(filters: Vec<String>) -> Result<String, CrmError> {
    guard(|| {
        let all = filters
            .iter()
            .map(|f| parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        to_json(&CoreFilter::And { all })
    })
}

/// At least one filter holds.
#[uniffi::export]
pub fn filter_any(filters: Vec<String>) -> Result<String, CrmError> {
    guard(|| {
        let any = filters
            .iter()
            .map(|f| parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        to_json(&CoreFilter::Or { any })
    })
}

/// The filter does not hold.
#[uniffi::export]
pub fn filter_not(filter: String) -> Result<String, CrmError> {
    guard(|| {
        to_json(&CoreFilter::Not {
            not: Box::new(parse(&filter)?),
        })
    })
}
