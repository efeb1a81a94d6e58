//! `Transaction`: several calls that commit together, usable as a context manager.
//!
//! A Python object cannot hold the borrowed core transaction, so it holds a
//! [`crm_core::OwnedTransaction`], opened by [`crm_core::Session::owned_transaction`]: the core
//! transaction lives on a thread of its own, and each method sends it one call and waits for the
//! answer with the GIL released.

use crm_core::{
    Context, EntityKind, ListRequest, OwnedTransaction, Result as CoreResult,
    Session as CoreSession, Transaction as CoreTransaction,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

use crate::convert::{opt_filter, to_fields, to_kind};
use crate::error::call;
use crate::session::{new_record, new_rows, records, rid, sort_of};
use crate::types::{Page, Record};

/// Several writes and reads that commit together or not at all.
#[pyclass(frozen, module = "crm_core._crm_core")]
pub(crate) struct Transaction {
    inner: OwnedTransaction,
    ctx: Context,
}

impl Transaction {
    /// Opens a transaction of `session` (waits for other writers, at most the store's limit).
    pub(crate) fn open(py: Python<'_>, session: &CoreSession) -> PyResult<Self> {
        let inner = call(py, || session.owned_transaction())?;
        Ok(Transaction {
            inner,
            ctx: session.context().clone(),
        })
    }

    /// Runs `op` on the transaction's thread without the GIL, inside the panic guard (a panic on
    /// the transaction's own thread is the core's `internal` error); errors become exceptions.
    fn run<T: Send + 'static>(
        &self,
        py: Python<'_>,
        op: impl for<'c> FnOnce(&mut CoreTransaction<'c>) -> CoreResult<T> + Send + 'static,
    ) -> PyResult<T> {
        let inner = &self.inner;
        call(py, move || inner.run(op))
    }
}

#[pymethods]
impl Transaction {
    /// The tenant.
    #[getter]
    fn tenant(&self) -> &str {
        self.ctx.tenant.as_str()
    }

    /// The acting user's id.
    #[getter]
    fn user_id(&self) -> String {
        self.ctx.user_id.to_string()
    }

    /// Whether the transaction is still open (neither committed nor rolled back).
    #[getter]
    fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    /// Creates a record, as `Session.create`.
    #[pyo3(signature = (kind, /, **fields))]
    fn create(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        fields: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Record> {
        let kind = to_kind(kind)?;
        let new = new_record(kind, fields)?;
        self.run(py, move |tx| tx.create(kind, new)).map(Record)
    }

    /// Creates many records of one type, as `Session.create_many`: all of them or none.
    #[pyo3(signature = (kind, rows, progress=None))]
    fn create_many(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        rows: &Bound<'_, PyAny>,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Py<Record>>> {
        let kind = to_kind(kind)?;
        let new = new_rows(kind, rows, progress)?;
        let total = new.len();
        let out = self.run(py, move |tx| tx.create_many(kind, new))?;
        if let Some(p) = progress {
            p.call1((total, total))?;
        }
        records(py, out)
    }

    /// One record by id, including what this transaction wrote.
    fn get(&self, py: Python<'_>, kind: &Bound<'_, PyAny>, id: &str) -> PyResult<Record> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |tx| tx.get(kind, id)).map(Record)
    }

    /// Changes fields of a record, as `Session.update`.
    #[pyo3(signature = (kind, id, version, /, **changes))]
    fn update(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        changes: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Record> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        let changes = to_fields(kind, changes)?;
        self.run(py, move |tx| tx.update(kind, id, version, changes))
            .map(Record)
    }

    /// Moves a record to the trash, as `Session.delete`.
    #[pyo3(signature = (kind, id, version=None))]
    fn delete(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        #[pyo3(from_py_with = crate::args::opt_version)] version: Option<i64>,
    ) -> PyResult<()> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |tx| tx.delete(kind, id, version))
    }

    /// Brings a record back from the trash, as `Session.restore`.
    fn restore(&self, py: Python<'_>, kind: &Bound<'_, PyAny>, id: &str) -> PyResult<Record> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |tx| tx.restore(kind, id)).map(Record)
    }

    /// Removes a record in the trash for good, as `Session.purge`.
    fn purge(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        reason: String,
    ) -> PyResult<()> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |tx| tx.purge(kind, id, &reason))
    }

    /// A page of records, as `Session.list`, including what this transaction wrote.
    #[pyo3(signature = (kind, filter=None, sort=None, descending=false, limit=50, after=None, deleted=false))]
    #[allow(clippy::too_many_arguments)] // reason: mirrors the keyword arguments of the Python API
    fn list(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        filter: Option<&Bound<'_, PyAny>>,
        sort: Option<String>,
        descending: bool,
        #[pyo3(from_py_with = crate::args::limit)] limit: u32,
        after: Option<String>,
        deleted: bool,
    ) -> PyResult<Page> {
        let kind: EntityKind = to_kind(kind)?;
        let req = ListRequest {
            filter: opt_filter(filter)?,
            sort: sort_of(sort, descending),
            after,
            limit: Some(limit),
            deleted,
        };
        let page = self.run(py, move |tx| tx.list(kind, &req))?;
        Ok(Page {
            items: records(py, page.items)?,
            next: page.next,
        })
    }

    /// How many records match, as `Session.count`, including what this transaction wrote.
    #[pyo3(signature = (kind, filter=None))]
    fn count(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let (kind, filter) = (to_kind(kind)?, opt_filter(filter)?);
        self.run(py, move |tx| tx.count(kind, filter.as_ref()))
    }

    /// Commits every write, with its audit entries and events, and ends the transaction.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        let inner = &self.inner;
        call(py, || inner.commit())
    }

    /// Discards every write and ends the transaction.
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        let inner = &self.inner;
        call(py, || inner.rollback())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Commits when the block ends normally, rolls back when it raises (the exception goes on).
    /// A transaction already committed or rolled back inside the block is left as it is.
    #[pyo3(signature = (exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyType>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if !self.inner.is_open() {
            return Ok(false);
        }
        match exc_type {
            None => self.commit(py)?,
            Some(_) => {
                // The block's own exception is the one to raise.
                let _ = self.rollback(py);
            }
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Transaction tenant={} user_id={} {}>",
            self.ctx.tenant.as_str(),
            self.ctx.user_id,
            if self.inner.is_open() {
                "open"
            } else {
                "ended"
            }
        )
    }
}
