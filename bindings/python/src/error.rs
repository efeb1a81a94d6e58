//! The exception hierarchy: `CrmError` and one subclass per error kind, mapped in one function.

use crm_core::{CrmError as CoreError, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    crm_core,
    CrmError,
    PyException,
    "Base class of every error raised by the CRM."
);
create_exception!(
    crm_core,
    ValidationError,
    CrmError,
    "The input breaks a validation rule."
);
create_exception!(
    crm_core,
    NotFound,
    CrmError,
    "The record does not exist or is not visible."
);
create_exception!(
    crm_core,
    PermissionDenied,
    CrmError,
    "The acting user may not take the action."
);
create_exception!(
    crm_core,
    Conflict,
    CrmError,
    "Stale version or uniqueness clash."
);
create_exception!(
    crm_core,
    InvalidTransition,
    CrmError,
    "A lifecycle transition is not allowed."
);
create_exception!(
    crm_core,
    InvalidQuery,
    CrmError,
    "A filter, sort or cursor is malformed."
);
create_exception!(
    crm_core,
    StorageError,
    CrmError,
    "The database could not be used."
);
create_exception!(
    crm_core,
    InternalError,
    CrmError,
    "A bug inside the library."
);

/// A core error on its way to Python (`?` converts it into the matching exception).
pub(crate) struct Error(pub(crate) CoreError);

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        Error(e)
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| to_py(py, e.0))
    }
}

/// The one mapping from core errors to Python exceptions, with `kind`, `message`, `field`, `rule`,
/// `action` and `entity` attributes set on the exception instance.
pub(crate) fn to_py(py: Python<'_>, e: CoreError) -> PyErr {
    let text = e.to_string();
    let err = match e.kind {
        ErrorKind::Validation => ValidationError::new_err(text),
        ErrorKind::NotFound => NotFound::new_err(text),
        ErrorKind::PermissionDenied => PermissionDenied::new_err(text),
        ErrorKind::Conflict => Conflict::new_err(text),
        ErrorKind::InvalidTransition => InvalidTransition::new_err(text),
        ErrorKind::InvalidQuery => InvalidQuery::new_err(text),
        ErrorKind::Storage => StorageError::new_err(text),
        ErrorKind::Internal => InternalError::new_err(text),
    };
    let value = err.value(py);
    let attrs: [(&str, Option<&str>); 6] = [
        ("kind", Some(e.kind.code())),
        ("message", Some(e.message.as_str())),
        ("field", e.field.as_deref()),
        ("rule", e.rule.as_deref()),
        ("action", e.action.as_deref()),
        ("entity", e.entity.as_deref()),
    ];
    for (name, v) in attrs {
        if let Err(set_err) = value.setattr(name, v) {
            return set_err;
        }
    }
    err
}

/// Registers the exception classes in the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CrmError", py.get_type::<CrmError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("PermissionDenied", py.get_type::<PermissionDenied>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("InvalidTransition", py.get_type::<InvalidTransition>())?;
    m.add("InvalidQuery", py.get_type::<InvalidQuery>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}
