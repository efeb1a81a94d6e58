//! The one error of the binding: a flat enum mirroring [`CoreErrorKind`], every variant carrying the
//! same details as the core error.
//!
//! The human-readable text is in `detail`, not `message`: Kotlin exceptions already have a `message`
//! property (UniFFI fills it with every field), and a field of that name would clash with it.

use std::any::Any;

use crm_core::{CrmError as CoreError, ErrorKind as CoreErrorKind};

/// The error every call of the binding may raise. In Kotlin/Java it is `CrmException` with one
/// subclass per variant (`CrmException.PermissionDenied`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CrmError {
    /// The input breaks a validation rule; `field` and `rule` say which.
    #[error("validation: {detail}")]
    Validation {
        /// A short message without personal data.
        detail: String,
        /// The field concerned.
        field: Option<String>,
        /// The rule that failed.
        rule: Option<String>,
        /// The action concerned.
        action: Option<String>,
        /// The entity type concerned.
        entity: Option<String>,
    },
    /// The record does not exist, or the acting user may not know that it exists.
    #[error("not_found: {detail}")]
    NotFound {
        /// A short message without personal data.
        detail: String,
        /// The field concerned.
        field: Option<String>,
        /// The rule that failed.
        rule: Option<String>,
        /// The action concerned.
        action: Option<String>,
        /// The entity type concerned.
        entity: Option<String>,
    },
    /// The acting user may see the record but may not take the action.
    #[error("permission_denied: {detail}")]
    PermissionDenied {
        /// A short message without personal data.
        detail: String,
        /// The field concerned.
        field: Option<String>,
        /// The rule that decided.
        rule: Option<String>,
        /// The action refused.
        action: Option<String>,
        /// The entity type concerned.
        entity: Option<String>,
    },
    /// The record changed since it was read, or a uniqueness rule was hit.
    #[error("conflict: {detail}")]
    Conflict {
        /// A short message without personal data.
        detail: String,
        /// The field concerned.
        field: Option<String>,
        /// The rule that failed (`stale_version`, `unique`, …).
        rule: Option<String>,
        /// The action concerned.
        action: Option<String>,
        /// The entity type concerned.
        entity: Option<String>,
    },
    /// A lifecycle transition is not allowed; `rule` names the guard.
    #[error("invalid_transition: {detail}")]
    InvalidTransition {
        /// A short message without personal data.
        detail: String,
        /// The field concerned.
        field: Option<String>,
        /// The guard that failed.
        rule: Option<String>,
        /// The action concerned.
        action: Option<String>,
        /// The entity type concerned.
        entity: Option<String>,
    },
    /// A filter, sort or query is malformed.
    #[error("invalid_query: {detail}")]
    InvalidQuery {
        /// A short message without personal data.
        detail: String,
        /// The offending field.
        field: Option<String>,
        /// The rule that failed.
        rule: Option<String>,
        /// The action concerned.
        action: Option<String>,
        /// The entity type concerned.
        entity: Option<String>,
    },
    /// The database could not be used.
    #[error("storage: {detail}")]
    Storage {
        /// A short message without personal data.
        detail: String,
        /// The field concerned.
        field: Option<String>,
        /// The rule that failed.
        rule: Option<String>,
        /// The action concerned.
        action: Option<String>,
        /// The entity type concerned.
        entity: Option<String>,
    },
    /// A bug in the library (or a Rust panic, or an unexpected exception in a host callback).
    #[error("internal: {detail}")]
    Internal {
        /// A short message without personal data.
        detail: String,
        /// The field concerned.
        field: Option<String>,
        /// The rule that failed.
        rule: Option<String>,
        /// The action concerned.
        action: Option<String>,
        /// The entity type concerned.
        entity: Option<String>,
    },
}

impl From<CoreError> for CrmError {
    fn from(e: CoreError) -> Self {
        let CoreError {
            kind,
            message: detail,
            field,
            rule,
            action,
            entity,
        } = e;
        match kind {
            CoreErrorKind::Validation => CrmError::Validation {
                detail,
                field,
                rule,
                action,
                entity,
            },
            CoreErrorKind::NotFound => CrmError::NotFound {
                detail,
                field,
                rule,
                action,
                entity,
            },
            CoreErrorKind::PermissionDenied => CrmError::PermissionDenied {
                detail,
                field,
                rule,
                action,
                entity,
            },
            CoreErrorKind::Conflict => CrmError::Conflict {
                detail,
                field,
                rule,
                action,
                entity,
            },
            CoreErrorKind::InvalidTransition => CrmError::InvalidTransition {
                detail,
                field,
                rule,
                action,
                entity,
            },
            CoreErrorKind::InvalidQuery => CrmError::InvalidQuery {
                detail,
                field,
                rule,
                action,
                entity,
            },
            CoreErrorKind::Storage => CrmError::Storage {
                detail,
                field,
                rule,
                action,
                entity,
            },
            CoreErrorKind::Internal => CrmError::Internal {
                detail,
                field,
                rule,
                action,
                entity,
            },
        }
    }
}

/// An unexpected exception thrown by a host callback (anything but a `CrmException`).
impl From<uniffi::UnexpectedUniFFICallbackError> for CrmError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        CrmError::internal("callback", format!("host callback failed: {}", e.reason))
    }
}

impl CrmError {
    /// An internal error with `rule` set (`panic`, `callback`, …).
    pub(crate) fn internal(rule: &str, detail: impl Into<String>) -> Self {
        CrmError::Internal {
            detail: detail.into(),
            field: None,
            rule: Some(rule.to_owned()),
            action: None,
            entity: None,
        }
    }

    /// A validation error on `field` breaking `rule`.
    pub(crate) fn validation(field: &str, rule: &str, detail: impl Into<String>) -> Self {
        CrmError::Validation {
            detail: detail.into(),
            field: Some(field.to_owned()),
            rule: Some(rule.to_owned()),
            action: None,
            entity: None,
        }
    }

    /// An invalid-query error (bad filter JSON).
    pub(crate) fn invalid_query(rule: &str, detail: impl Into<String>) -> Self {
        CrmError::InvalidQuery {
            detail: detail.into(),
            field: None,
            rule: Some(rule.to_owned()),
            action: None,
            entity: None,
        }
    }
}

/// Runs `f`, turning a Rust panic into [`CrmError::Internal`] (rule `panic`) so that it never
/// unwinds into, or aborts, the host process.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, CrmError>) -> Result<T, CrmError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(CrmError::internal("panic", panic_text(payload.as_ref()))),
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("the library panicked: {what}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let r: Result<(), CrmError> = guard(|| panic!("invariant broken"));
        match r {
            Err(CrmError::Internal { rule, detail, .. }) => {
                assert_eq!(rule.as_deref(), Some("panic"));
                assert!(detail.contains("invariant broken"));
            }
            other => panic!("expected Internal, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_maps_to_its_variant() {
        let e: CrmError = CoreError::validation("email", "email_syntax", "bad").into();
        assert!(matches!(e, CrmError::Validation { ref field, ref rule, .. }
            if field.as_deref() == Some("email") && rule.as_deref() == Some("email_syntax")));
        let e: CrmError =
            CoreError::permission_denied("delete", "account", "object_permission").into();
        assert!(
            matches!(e, CrmError::PermissionDenied { ref action, .. } if action.as_deref() == Some("delete"))
        );
        assert!(matches!(
            CrmError::from(CoreError::storage("x")),
            CrmError::Storage { .. }
        ));
        assert!(matches!(
            CrmError::from(CoreError::internal("x")),
            CrmError::Internal { .. }
        ));
        assert!(matches!(
            CrmError::from(CoreError::invalid_query(None, "r", "x")),
            CrmError::InvalidQuery { .. }
        ));
    }
}
