//! Any Python object with a `send(message)` method as the core's [`crm_core::Mailer`].

use std::sync::Mutex;

use crm_core::{CrmError, EmailMessage as CoreEmailMessage, Mailer};
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;

use crate::error::to_py;
use crate::types::EmailMessage;

/// A failed `send`: the message and what Python raised.
pub(crate) struct Failure {
    pub(crate) message: CoreEmailMessage,
    pub(crate) error: PyErr,
}

/// The host's Python mailer. `send` runs with the GIL re-acquired; a Python exception becomes a core
/// error (kind `storage`), which leaves the outbox event pending and lets the other messages be tried.
pub(crate) struct PyMailer {
    obj: Py<PyAny>,
    failures: Mutex<Vec<Failure>>,
    /// A `BaseException` that is not an `Exception` (`KeyboardInterrupt`, `SystemExit`): later sends
    /// are skipped and it is raised once the core returns.
    fatal: Mutex<Option<PyErr>>,
}

impl PyMailer {
    pub(crate) fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let send = obj.getattr("send").ok();
        if !send.is_some_and(|s| s.is_callable()) {
            return Err(PyTypeError::new_err(
                "the mailer must have a callable `send(message)` method",
            ));
        }
        Ok(PyMailer {
            obj: obj.clone().unbind(),
            failures: Mutex::new(Vec::new()),
            fatal: Mutex::new(None),
        })
    }

    /// The failed sends, in order, and the fatal exception if any.
    pub(crate) fn into_outcome(self) -> (Vec<Failure>, Option<PyErr>) {
        (
            self.failures
                .into_inner()
                .unwrap_or_else(|p| p.into_inner()),
            self.fatal.into_inner().unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// The `StorageError` (a `CrmError`) reported for a failed send, caused by the Python exception.
    pub(crate) fn error_of(py: Python<'_>, f: &Failure) -> PyErr {
        let err = to_py(
            py,
            CrmError::storage(format!("the mailer could not send the e-mail: {}", f.error))
                .with_action("send")
                .with_entity(f.message.record_kind.name()),
        );
        err.set_cause(py, Some(f.error.clone_ref(py)));
        err
    }
}

impl Mailer for PyMailer {
    fn send(&self, msg: &CoreEmailMessage) -> crm_core::Result<()> {
        Python::attach(|py| {
            let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
            if fatal.is_some() {
                return Err(CrmError::storage("delivery interrupted"));
            }
            let result = Py::new(py, EmailMessage::from(msg))
                .and_then(|m| self.obj.bind(py).call_method1("send", (m,)));
            match result {
                Ok(_) => Ok(()),
                Err(e) => {
                    let text = format!("the mailer could not send the e-mail: {e}");
                    if e.is_instance_of::<PyException>(py) {
                        self.failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(Failure {
                                message: msg.clone(),
                                error: e,
                            });
                    } else {
                        *fatal = Some(e);
                    }
                    Err(CrmError::storage(text))
                }
            }
        })
    }
}
