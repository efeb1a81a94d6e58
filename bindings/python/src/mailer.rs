//! Host extension points implemented by Python objects: the outbox `Mailer` (`send(message)`) and
//! the `ErpFacts` provider of the screen pop (`facts(account_id)`).

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

/// The host's Python ERP provider: an object with a `facts(account_id)` method returning a mapping
/// with `balance` (Money or None), `credit_terms` (str or None) and `overdue_invoices` (dicts with
/// `number`, `amount` and `due`). Its exception is kept and raised once the core returns.
pub(crate) struct PyErpFacts {
    obj: Py<PyAny>,
    pub(crate) error: Mutex<Option<PyErr>>,
}

impl PyErpFacts {
    pub(crate) fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !obj.getattr("facts").ok().is_some_and(|f| f.is_callable()) {
            return Err(PyTypeError::new_err(
                "the ERP provider must have a callable `facts(account_id)` method",
            ));
        }
        Ok(PyErpFacts {
            obj: obj.clone().unbind(),
            error: Mutex::new(None),
        })
    }

    fn convert(row: &Bound<'_, PyAny>) -> PyResult<crm_core::ErpFactsRow> {
        let get = |k: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
            Ok(row.get_item(k).ok().filter(|v| !v.is_none()))
        };
        let money = |v: &Bound<'_, PyAny>, what: &str| -> PyResult<crm_core::Money> {
            crate::convert::money_of(v, what)?.ok_or_else(|| {
                PyTypeError::new_err(format!("`{what}` must be a Money or (amount, currency)"))
            })
        };
        let mut out = crm_core::ErpFactsRow {
            balance: get("balance")?.map(|b| money(&b, "balance")).transpose()?,
            credit_terms: get("credit_terms")?.map(|c| c.extract()).transpose()?,
            overdue_invoices: Vec::new(),
        };
        if let Some(list) = get("overdue_invoices")? {
            for (i, inv) in list.try_iter()?.enumerate() {
                let inv = inv?;
                out.overdue_invoices.push(crm_core::OverdueInvoice {
                    number: inv.get_item("number")?.extract()?,
                    amount: money(
                        &inv.get_item("amount")?,
                        &format!("overdue_invoices[{i}].amount"),
                    )?,
                    due: inv.get_item("due")?.extract()?,
                });
            }
        }
        Ok(out)
    }
}

impl crm_core::ErpFacts for PyErpFacts {
    fn facts(&self, account_id: crm_core::RecordId) -> crm_core::Result<crm_core::ErpFactsRow> {
        Python::attach(|py| {
            let result = self
                .obj
                .bind(py)
                .call_method1("facts", (account_id.to_string(),))
                .and_then(|row| Self::convert(&row));
            result.map_err(|e| {
                let text = format!("the ERP provider failed: {e}");
                *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                CrmError::storage(text)
            })
        })
    }
}
