//! The exception hierarchy: `CrmError` and one subclass per error kind, mapped in one function.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;

use crm_core::{CrmError as CoreError, ErrorKind, Result as CoreResult};
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

thread_local! {
    /// Set by `_panic_for_tests("next")`: the calling thread's next guarded call panics.
    static PANIC_NEXT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a Rust panic into an internal error (rule `panic`), so that it reaches Python
/// as `InternalError` (an `Exception`) and never as pyo3's `PanicException` (a `BaseException`).
/// Every call into the library goes through here, by [`call`] or [`run`].
pub(crate) fn guard<T>(f: impl FnOnce() -> CoreResult<T>) -> CoreResult<T> {
    let guarded = AssertUnwindSafe(|| {
        if PANIC_NEXT.with(|p| p.replace(false)) {
            panic_for_tests();
        }
        f()
    });
    match std::panic::catch_unwind(guarded) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            let mut e = CoreError::internal(format!("the library panicked: {what}"));
            e.rule = Some("panic".to_owned());
            Err(e)
        }
    }
}

/// Runs `f` with the GIL released, inside [`guard`]; the core error is kept (for callers that
/// look at other outcomes first).
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> CoreResult<T> + Send,
) -> CoreResult<T> {
    py.detach(|| guard(f))
}

/// Runs `f` with the GIL released, inside [`guard`]; errors become exceptions.
pub(crate) fn call<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> CoreResult<T> + Send,
) -> PyResult<T> {
    run(py, f).map_err(|e| to_py(py, e))
}

#[allow(clippy::panic)] // reason: the test hook's whole point is to panic inside the guard
fn panic_for_tests() -> ! {
    panic!("panic requested by _panic_for_tests") // ok: a test hook whose one purpose is to panic inside the guard
}

/// A test hook, not part of the public API: `"now"` panics at once inside [`guard`], `"next"`
/// makes the calling thread's next guarded call (any method) panic, `"never"` disarms that.
#[pyfunction]
#[pyo3(signature = (when = "now"))]
pub(crate) fn _panic_for_tests(py: Python<'_>, when: &str) -> PyResult<()> {
    match when {
        "now" => call(py, || -> CoreResult<()> { panic_for_tests() }),
        "next" | "never" => {
            PANIC_NEXT.with(|p| p.set(when == "next"));
            Ok(())
        }
        _ => Err(pyo3::exceptions::PyValueError::new_err(
            "`when` is \"now\", \"next\" or \"never\"",
        )),
    }
}
