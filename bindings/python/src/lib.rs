//! Python bindings (PyO3) of the CRM library: the extension module `crm_core._crm_core`.
//!
//! Thin wrappers only: Python values are converted to core values, calls are forwarded to a
//! [`crm_core::Session`] (or, for host operations, the [`crm_core::Crm`]) with the GIL released,
//! and results and errors are converted back.

// The error type is the core's; its size is decided there, not in the binding.
#![allow(clippy::result_large_err)]

mod args;
mod convert;
mod error;
mod mailer;
mod rows;
mod session;
mod transaction;
mod types;

use pyo3::prelude::*;

/// Raises the exception a core error (given as its JSON form) maps to: a test hook for the mapping
/// of error kinds that the public API cannot provoke on demand (`internal`, `storage`, …).
#[pyfunction]
fn _raise_error(py: Python<'_>, error_json: &str) -> PyResult<()> {
    let e: crm_core::CrmError = serde_json::from_str(error_json)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("not an error: {e}")))?;
    Err(error::to_py(py, e))
}

/// The extension module.
#[pymodule]
fn _crm_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<session::Crm>()?;
    m.add_class::<session::Session>()?;
    m.add_class::<session::RecordIterator>()?;
    m.add_class::<transaction::Transaction>()?;
    m.add_class::<types::Record>()?;
    m.add_class::<types::Page>()?;
    m.add_class::<types::Money>()?;
    m.add_class::<types::Decision>()?;
    m.add_class::<types::AccessReview>()?;
    m.add_class::<types::FieldChange>()?;
    m.add_class::<types::HistoryEntry>()?;
    m.add_class::<types::HistoryPage>()?;
    m.add_class::<types::AuditVerification>()?;
    m.add_class::<types::Event>()?;
    m.add_class::<types::StageEntry>()?;
    m.add_class::<types::Conversion>()?;
    m.add_class::<types::EmailMessage>()?;
    m.add_class::<types::SegmentDiff>()?;
    m.add_class::<types::RfmRow>()?;
    m.add_class::<types::ProfitRow>()?;
    m.add_class::<types::TransferSummary>()?;
    m.add_class::<types::ForecastRow>()?;
    m.add_class::<types::Kpi>()?;
    m.add_class::<types::ActivityCount>()?;
    m.add_class::<types::Funnel>()?;
    m.add_class::<types::FunnelStage>()?;
    m.add_class::<types::CustomerValue>()?;
    m.add_class::<types::CrossSell>()?;
    m.add_class::<types::ScreenPop>()?;
    m.add_class::<rows::ResultTable>()?;
    m.add_function(wrap_pyfunction!(_raise_error, m)?)?;
    m.add_function(wrap_pyfunction!(error::_panic_for_tests, m)?)?;
    // A hidden test hook: out of `__all__` (and of the stub), like any private name.
    m.getattr("__all__")?
        .call_method1("remove", ("_panic_for_tests",))?;
    error::register(m)?;
    Ok(())
}
