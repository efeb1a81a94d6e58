//! The one public error of the library.
//!
//! Variants are chosen by what the caller will do differently: fix the input (`Validation`), look
//! elsewhere (`NotFound`), stop (`PermissionDenied`), reload and retry (`Conflict`), take another path
//! (`InvalidTransition`), or report an outage (`Storage`). Messages never carry personal data: they name
//! fields, rules, actions and ids, never e-mails, phone numbers or names.

use std::fmt;

/// What kind of failure happened; stable across releases and across every binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input breaks a validation rule; `field` and `rule` say which.
    Validation,
    /// The record does not exist, or the acting user may not know that it exists.
    NotFound,
    /// The acting user may see the record but may not take the action.
    PermissionDenied,
    /// The record changed since it was read (stale version) or a uniqueness rule was hit.
    Conflict,
    /// A lifecycle transition is not allowed; `rule` names the guard that failed.
    InvalidTransition,
    /// A filter, sort or query is malformed (unknown field, type mismatch, parse error).
    InvalidQuery,
    /// The database could not be used; `rule` says why: `busy` (retry, see
    /// [`CrmError::is_retryable`]), `disk_full`, `read_only`, `corrupt`, `newer_schema`, `io`, …
    Storage,
    /// A bug inside the library (an invariant did not hold); never the caller's fault.
    Internal,
}

impl ErrorKind {
    /// The stable lowercase code of this kind, e.g. `permission_denied`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidTransition => "invalid_transition",
            ErrorKind::InvalidQuery => "invalid_query",
            ErrorKind::Storage => "storage",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The error every public operation returns.
///
/// `kind` tells what to do; `field`, `rule`, `action` and `entity` say what it concerns, when known;
/// `message` is a short lowercase sentence without personal data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub struct CrmError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// A human-readable message: lowercase, no final period, no personal data.
    pub message: String,
    /// The field concerned (`email`, `custom.industry`, `lines[2].quantity`), when one is.
    pub field: Option<String>,
    /// The rule or guard that failed (`email_syntax`, `required`, `approval_missing`), when one is.
    pub rule: Option<String>,
    /// The action concerned (`read`, `update`, `approve`, …), for permission errors.
    pub action: Option<String>,
    /// The entity type concerned (`account`, `quote`, …), when one is.
    pub entity: Option<String>,
}

impl fmt::Display for CrmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`")?;
            if let Some(rule) = &self.rule {
                write!(f, ", rule `{rule}`")?;
            }
            f.write_str(")")?;
        } else if let Some(rule) = &self.rule {
            write!(f, " (rule `{rule}`)")?;
        }
        Ok(())
    }
}

/// Shorthand for results of this library.
pub type Result<T, E = CrmError> = std::result::Result<T, E>;

impl CrmError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CrmError {
            kind,
            message: message.into(),
            field: None,
            rule: None,
            action: None,
            entity: None,
        }
    }

    /// A validation failure on `field` breaking `rule`.
    pub fn validation(field: impl Into<String>, rule: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Validation, message);
        e.field = Some(field.into());
        e.rule = Some(rule.to_owned());
        e
    }

    /// A missing record of `entity` (or one the user may not see).
    pub fn not_found(entity: &str, id: impl fmt::Display) -> Self {
        let mut e = Self::new(ErrorKind::NotFound, format!("no {entity} with id `{id}`"));
        e.entity = Some(entity.to_owned());
        e
    }

    /// The acting user may not take `action` on `entity`; `rule` names the deciding rule.
    pub fn permission_denied(action: &str, entity: &str, rule: &str) -> Self {
        let mut e = Self::new(
            ErrorKind::PermissionDenied,
            format!("not allowed to {action} {entity}"),
        );
        e.action = Some(action.to_owned());
        e.entity = Some(entity.to_owned());
        e.rule = Some(rule.to_owned());
        e
    }

    /// A permission failure on a single field (hidden or read-only).
    pub fn field_denied(action: &str, entity: &str, field: &str, rule: &str) -> Self {
        let mut e = Self::permission_denied(action, entity, rule);
        e.message = format!("not allowed to {action} field `{field}` of {entity}");
        e.field = Some(field.to_owned());
        e
    }

    /// The same error, naming `field` (and saying it in the message) instead of the field it named:
    /// what a rule checked under a custom field's stable key reports under its current name.
    pub(crate) fn in_field_named(mut self, field: &str) -> Self {
        if let Some(old) = self.field.take() {
            self.message = self
                .message
                .replace(&format!("`{old}`"), &format!("`{field}`"));
        }
        self.field = Some(field.to_owned());
        self
    }

    /// A stale version or a uniqueness clash.
    pub fn conflict(entity: &str, rule: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Conflict, message);
        e.entity = Some(entity.to_owned());
        e.rule = Some(rule.to_owned());
        e
    }

    /// A refused lifecycle transition; `rule` names the guard.
    pub fn invalid_transition(entity: &str, rule: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::InvalidTransition, message);
        e.entity = Some(entity.to_owned());
        e.rule = Some(rule.to_owned());
        e
    }

    /// A malformed query; `field` names the offending field when there is one.
    pub fn invalid_query(field: Option<&str>, rule: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::InvalidQuery, message);
        e.field = field.map(str::to_owned);
        e.rule = Some(rule.to_owned());
        e
    }

    /// A storage failure.
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Storage, message)
    }

    /// A broken invariant inside the library.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Sets the entity this error concerns.
    pub fn with_entity(mut self, entity: &str) -> Self {
        self.entity = Some(entity.to_owned());
        self
    }

    /// Sets the action this error concerns.
    pub fn with_action(mut self, action: &str) -> Self {
        self.action = Some(action.to_owned());
        self
    }

    /// Sets the rule this error concerns (for example the storage rule `busy` or `disk_full`).
    pub fn with_rule(mut self, rule: &str) -> Self {
        self.rule = Some(rule.to_owned());
        self
    }

    /// Whether the same call, repeated unchanged a little later, may succeed: the database was busy
    /// (`Storage` of rule `busy`: another write held the lock longer than the busy timeout, on this
    /// handle or from another connection or process). Nothing was written by the failed call, so the
    /// host may retry it, preferably after a short, growing pause. Every other error is not retryable
    /// as it stands: a stale version needs a re-read, invalid input a correction, a full disk space.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Storage && self.rule.as_deref() == Some("busy")
    }

    /// Prefixes the field name (used for nested values such as `lines[2].quantity` or `custom.x`).
    pub fn in_field(mut self, prefix: &str) -> Self {
        self.field = Some(match self.field.take() {
            Some(f) => format!("{prefix}.{f}"),
            None => prefix.to_owned(),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_field_and_rule() {
        let e = CrmError::validation("email", "email_syntax", "not a valid e-mail address");
        assert_eq!(
            e.to_string(),
            "validation: not a valid e-mail address (field `email`, rule `email_syntax`)"
        );
        assert_eq!(e.kind.code(), "validation");
    }

    #[test]
    fn only_busy_storage_errors_are_retryable() {
        assert!(CrmError::storage("the database is busy")
            .with_rule("busy")
            .is_retryable());
        assert!(!CrmError::storage("disk")
            .with_rule("disk_full")
            .is_retryable());
        assert!(!CrmError::storage("no rule").is_retryable());
        // A rule of the same name on another kind is not a busy database.
        let mut e = CrmError::conflict("account", "busy", "x");
        assert!(!e.is_retryable());
        e.kind = ErrorKind::Storage;
        assert!(e.is_retryable());
        assert!(!CrmError::conflict("account", "stale_version", "x").is_retryable());
    }
}
