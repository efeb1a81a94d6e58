//! `Crm` (one per database, the host's object) and `Session` (wrapping the core `Session`: one user
//! acting in one tenant).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crm_core::chrono::{DateTime, Duration, Utc};
use crm_core::{
    Context, ConvertLead, Crm as CoreCrm, EntityKind, Filter, Grantee, ListRequest, ManualClock,
    NewRecord, Origin, RecordId, Session as CoreSession, Sort, TenantId,
};
use crm_store::SqliteStore;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyDict, PyList};

use crate::convert::{
    from_json, from_value, kind_named, money_of, opt_filter, to_action, to_fields, to_instant,
    to_json_at, to_kind, Floats,
};
use crate::error::{call, run, Error};
use crate::mailer::{PyErpFacts, PyMailer};
use crate::rows::{result_rows, table_rows, ResultTable};
use crate::transaction::Transaction;
use crate::types::{
    AccessReview, AuditVerification, Conversion, CrossSell, CustomerValue, Decision, Event,
    FieldChange, ForecastRow, Funnel, HistoryEntry, HistoryPage, Kpi, Page, ProfitRow, Record,
    RfmRow, ScreenPop, SegmentDiff, StageEntry, TransferSummary,
};

fn origin(client: Option<String>, address: Option<String>, location: Option<String>) -> Origin {
    Origin {
        client,
        address,
        location,
    }
}

fn tenant(s: &str) -> PyResult<TenantId> {
    TenantId::new(s).map_err(|e| Error(e).into())
}

pub(crate) fn rid(s: &str) -> PyResult<RecordId> {
    RecordId::parse_field(s, "id").map_err(|e| Error(e).into())
}

pub(crate) fn records(py: Python<'_>, rs: Vec<crm_core::Record>) -> PyResult<Vec<Py<Record>>> {
    rs.into_iter().map(|r| Py::new(py, Record(r))).collect()
}

/// Splits `owner_id` out of keyword fields.
pub(crate) fn new_record(
    kind: EntityKind,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<NewRecord> {
    let mut owner_id = None;
    if let Some(kw) = kwargs {
        if let Some(o) = kw.get_item("owner_id")? {
            if !o.is_none() {
                let id: String = o
                    .extract()
                    .map_err(|_| PyTypeError::new_err("`owner_id` must be a str"))?;
                owner_id = Some(rid(&id)?);
            }
            let rest = kw.copy()?;
            rest.del_item("owner_id")?;
            return Ok(NewRecord {
                fields: to_fields(kind, Some(&rest))?,
                owner_id,
            });
        }
    }
    Ok(NewRecord {
        fields: to_fields(kind, kwargs)?,
        owner_id,
    })
}

/// The rows of a batch create (dicts of keyword fields), reporting `progress(done, total)` every
/// 100 rows read; the caller reports `(total, total)` once the batch is written.
pub(crate) fn new_rows(
    kind: EntityKind,
    rows: &Bound<'_, PyAny>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<NewRecord>> {
    let rows: Vec<Bound<'_, PyAny>> = rows.try_iter()?.collect::<PyResult<_>>()?;
    let total = rows.len();
    let mut new = Vec::with_capacity(total);
    for (i, row) in rows.iter().enumerate() {
        let d = row
            .cast::<PyDict>()
            .map_err(|_| PyTypeError::new_err("each row must be a dict"))?;
        new.push(new_record(kind, Some(d))?);
        if let Some(p) = progress {
            if (i + 1) % 100 == 0 && i + 1 < total {
                p.call1((i + 1, total))?;
            }
        }
    }
    Ok(new)
}

/// An optional argument given as the JSON form of a core type (read as decimals: a float anywhere
/// inside is a `TypeError` naming its place, `rates.rates.USD`).
fn serde_arg<T: serde::de::DeserializeOwned>(
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<T>> {
    match obj {
        Some(o) if !o.is_none() => serde_json::from_value(to_json_at(o, name, Floats::Refuse)?)
            .map(Some)
            .map_err(|e| PyValueError::new_err(format!("malformed `{name}`: {e}"))),
        _ => Ok(None),
    }
}

pub(crate) fn sort_of(sort: Option<String>, descending: bool) -> Option<Sort> {
    sort.map(|s| match s.strip_prefix('-') {
        Some(f) => Sort {
            field: f.to_owned(),
            descending: true,
        },
        None => Sort {
            field: s,
            descending,
        },
    })
}

/// A Python `progress(done, total)` callback for a long storage operation running without the GIL:
/// each call re-acquires the GIL; the first exception stops further calls and is raised afterwards.
struct Progress {
    callback: Option<Py<PyAny>>,
    error: Option<PyErr>,
}

impl Progress {
    fn new(callback: Option<&Bound<'_, PyAny>>) -> Self {
        Progress {
            callback: callback
                .filter(|c| !c.is_none())
                .map(|c| c.clone().unbind()),
            error: None,
        }
    }

    fn report(&mut self, done: u64, total: u64) {
        if let (Some(cb), None) = (&self.callback, &self.error) {
            if let Err(e) = Python::attach(|py| cb.call1(py, (done, total)).map(drop)) {
                self.error = Some(e);
            }
        }
    }

    fn count(&mut self, n: u64) {
        if let (Some(cb), None) = (&self.callback, &self.error) {
            if let Err(e) = Python::attach(|py| cb.call1(py, (n,)).map(drop)) {
                self.error = Some(e);
            }
        }
    }

    /// The operation's result, or the callback's exception if it raised one.
    fn finish<T>(self, result: crm_core::Result<T>) -> PyResult<T> {
        let value = result.map_err(Error)?;
        match self.error {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

/// A CRM over one SQLite database: the host's object. Share it between threads freely.
#[pyclass(frozen, module = "crm_core._crm_core")]
pub(crate) struct Crm {
    inner: CoreCrm,
    /// The manual clock, when the CRM was opened with `clock=`.
    manual: Option<Arc<ManualClock>>,
}

impl Crm {
    fn build(
        py: Python<'_>,
        store: SqliteStore,
        region: &str,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let manual = match clock {
            Some(c) if !c.is_none() => Some(Arc::new(ManualClock::new(to_instant(c)?))),
            _ => None,
        };
        let clock = manual.clone();
        let crm = call(py, move || {
            let crm = CoreCrm::new(store).with_default_region(region)?;
            Ok(match clock {
                Some(m) => crm.with_clock(m),
                None => crm,
            })
        })?;
        Ok(Crm { inner: crm, manual })
    }

    fn manual(&self) -> PyResult<&ManualClock> {
        self.manual.as_deref().ok_or_else(|| {
            PyRuntimeError::new_err("the CRM runs on the system clock: open it with `clock=`")
        })
    }

    /// Opens the core session of `ctx` without the GIL (refused for an unknown or deactivated
    /// user) and wraps it.
    fn open_session(slf: &Bound<'_, Self>, ctx: Context) -> PyResult<Session> {
        let py = slf.py();
        let crm = &slf.get().inner;
        let inner = call(py, || crm.session(&ctx))?;
        Ok(Session {
            host: slf.clone().unbind(),
            inner,
        })
    }
}

#[pymethods]
impl Crm {
    /// Opens (or creates) the database file at `path`. With `clock` (an aware datetime) the CRM runs
    /// on a manual clock showing that instant, moved only by `advance` and `set_clock`.
    #[staticmethod]
    #[pyo3(signature = (path, *, default_region = "IT", clock = None))]
    fn open(
        py: Python<'_>,
        path: PathBuf,
        default_region: &str,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let store = call(py, move || SqliteStore::open(path))?;
        Crm::build(py, store, default_region, clock)
    }

    /// A throw-away in-memory database (`clock` as in `open`).
    #[staticmethod]
    #[pyo3(signature = (*, default_region = "IT", clock = None))]
    fn memory(
        py: Python<'_>,
        default_region: &str,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let store = call(py, SqliteStore::open_in_memory)?;
        Crm::build(py, store, default_region, clock)
    }

    /// Restores the backup file `backup` into the new database file `into` (refused if it exists)
    /// and checks it; `progress(done, total)` is called as pages are copied.
    #[staticmethod]
    #[pyo3(signature = (backup, into, progress=None))]
    fn restore_backup(
        py: Python<'_>,
        backup: PathBuf,
        into: PathBuf,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut p = Progress::new(progress);
        let r = run(py, || {
            SqliteStore::restore_backup(backup, into, &mut |d, t| p.report(d, t))
        });
        p.finish(r)
    }

    /// Takes an online backup of the whole database (every tenant) into the new file `dest` while
    /// others keep working, then checks the copy; `progress(done, total)` is called as pages are
    /// copied. A host operation: no tenant role reaches it.
    #[pyo3(signature = (dest, progress=None))]
    fn backup(
        &self,
        py: Python<'_>,
        dest: PathBuf,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut p = Progress::new(progress);
        let crm = &self.inner;
        let r = run(py, || crm.backup(&dest, &mut |d, t| p.report(d, t)));
        p.finish(r)
    }

    /// The storage's own consistency check of the live database (SQLite `integrity_check` and
    /// foreign keys): empty when sound. A host operation.
    fn integrity_check(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let crm = &self.inner;
        call(py, || crm.integrity_check())
    }

    /// Writes the whole of `tenant` (every record with every field, the audit trail, the pending
    /// events) to the new file `path` as JSON Lines, for `import_tenant` into another database;
    /// `progress(lines)` is called with the number of lines written so far. A host operation:
    /// nothing is redacted.
    #[pyo3(signature = (tenant, path, progress=None))]
    fn export_tenant(
        &self,
        py: Python<'_>,
        tenant: &str,
        path: PathBuf,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<TransferSummary> {
        let t = self::tenant(tenant)?;
        let mut p = Progress::new(progress);
        let crm = &self.inner;
        let r = run(py, || {
            let io = |e: std::io::Error| {
                crm_core::CrmError::storage(format!("cannot write {}: {e}", path.display()))
            };
            let file = std::fs::File::create_new(&path).map_err(io)?;
            let mut out = std::io::BufWriter::new(file);
            let sum = crm.export_tenant(&t, &mut out, &mut |n| p.count(n))?;
            std::io::Write::flush(&mut out).map_err(io)?;
            Ok(sum)
        });
        p.finish(r).map(TransferSummary::from)
    }

    /// Reads a tenant export (JSON Lines, from `Crm.export_tenant`) into this database, whose
    /// tenant must be empty; one transaction, the audit chain checked first. `progress(lines)` is
    /// called with the number of lines read so far. A host operation.
    #[pyo3(signature = (path, progress=None))]
    fn import_tenant(
        &self,
        py: Python<'_>,
        path: PathBuf,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<TransferSummary> {
        let mut p = Progress::new(progress);
        let crm = &self.inner;
        let r = run(py, || {
            let file = std::fs::File::open(&path).map_err(|e| {
                crm_core::CrmError::storage(format!("cannot open {}: {e}", path.display()))
            })?;
            let mut input = std::io::BufReader::new(file);
            crm.import_tenant(&mut input, &mut |n| p.count(n))
        });
        p.finish(r).map(TransferSummary::from)
    }

    /// The integrity check of a database file (a backup, say), opened read-only: empty when sound.
    #[staticmethod]
    fn check_file(py: Python<'_>, path: PathBuf) -> PyResult<Vec<String>> {
        call(py, move || SqliteStore::check_file(path))
    }

    /// The current instant of the CRM's clock (UTC, to the microsecond).
    fn now(&self, py: Python<'_>) -> PyResult<DateTime<Utc>> {
        let crm = &self.inner;
        call(py, || Ok(crm.now()))
    }

    /// Moves the manual clock forward by `delta` (a `timedelta`).
    fn advance(&self, py: Python<'_>, delta: Duration) -> PyResult<()> {
        let clock = self.manual()?;
        call(py, || {
            clock.advance(delta);
            Ok(())
        })
    }

    /// Sets the manual clock to `at` (an aware datetime).
    fn set_clock(&self, py: Python<'_>, at: &Bound<'_, PyAny>) -> PyResult<()> {
        let at = to_instant(at)?;
        let clock = self.manual()?;
        call(py, || {
            clock.set(at);
            Ok(())
        })
    }

    /// Sets up an empty tenant with an administrator and returns the administrator's session.
    #[pyo3(signature = (tenant, admin_username, *, client=None, address=None, location=None))]
    fn bootstrap(
        slf: &Bound<'_, Self>,
        tenant: &str,
        admin_username: String,
        client: Option<String>,
        address: Option<String>,
        location: Option<String>,
    ) -> PyResult<Session> {
        let t = self::tenant(tenant)?;
        let o = origin(client, address, location);
        let crm = &slf.get().inner;
        let ctx = call(slf.py(), move || crm.bootstrap(&t, &admin_username, o))?;
        Crm::open_session(slf, ctx)
    }

    /// A session of `user_id` acting in `tenant`; `PermissionDenied` (rule `unknown_user` or
    /// `inactive_user`) for a user who does not exist there or was deactivated.
    #[pyo3(signature = (tenant, user_id, *, client=None, address=None, location=None))]
    fn session(
        slf: &Bound<'_, Self>,
        tenant: &str,
        user_id: &str,
        client: Option<String>,
        address: Option<String>,
        location: Option<String>,
    ) -> PyResult<Session> {
        let ctx = Context {
            tenant: self::tenant(tenant)?,
            user_id: rid(user_id)?,
            origin: origin(client, address, location),
        };
        Crm::open_session(slf, ctx)
    }

    /// Opens a transaction for `session` (the same as `session.transaction()`).
    fn transaction(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        session: &Session,
    ) -> PyResult<Transaction> {
        if !session.host.bind(py).is(slf) {
            return Err(PyValueError::new_err("the session belongs to another Crm"));
        }
        Transaction::open(py, &session.inner)
    }

    /// Forgets cached configuration (after another process changed users, roles or custom fields).
    fn reload_configuration(&self, py: Python<'_>) -> PyResult<()> {
        let crm = &self.inner;
        call(py, || {
            crm.reload_configuration();
            Ok(())
        })
    }

    fn __repr__(&self) -> String {
        "<Crm>".to_owned()
    }
}

/// A user acting in a tenant: every tenant operation is a method of a session. Wraps the core
/// session, which checks the user's current rights on every call.
#[pyclass(frozen, module = "crm_core._crm_core")]
pub(crate) struct Session {
    /// The `Crm` that opened the session (for `as_user` and `Crm.transaction`).
    host: Py<Crm>,
    pub(crate) inner: CoreSession,
}

impl Session {
    /// Runs `f` on the core session without the GIL, inside the panic guard; errors become
    /// exceptions.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&CoreSession) -> crm_core::Result<T> + Send,
    ) -> PyResult<T> {
        let s = &self.inner;
        call(py, move || f(s))
    }
}

#[pymethods]
impl Session {
    #[getter]
    fn tenant(&self) -> &str {
        self.inner.tenant().as_str()
    }

    #[getter]
    fn user_id(&self) -> String {
        self.inner.user_id().to_string()
    }

    /// The same origin, acting as another user of the tenant: for administrators (anyone else gets
    /// `PermissionDenied`, rule `not_an_administrator`; hosts open other users' sessions with
    /// `Crm.session`), and refused as `Crm.session` refuses.
    fn as_user(&self, py: Python<'_>, user_id: &str) -> PyResult<Session> {
        let admin = self
            .inner
            .is_administrator()
            .map_err(|e| crate::error::to_py(py, e))?;
        if !admin {
            return Err(crate::error::to_py(
                py,
                crm_core::CrmError::permission_denied("act_as", "user", "not_an_administrator"),
            ));
        }
        let ctx = self.inner.context().as_user(rid(user_id)?);
        Crm::open_session(self.host.bind(py), ctx)
    }

    /// Opens a transaction: use it as `with session.transaction() as tx:` (commits when the block
    /// ends, rolls back when it raises) or call `commit()` / `rollback()` yourself. It holds the
    /// database's writer until it ends.
    fn transaction(&self, py: Python<'_>) -> PyResult<Transaction> {
        Transaction::open(py, &self.inner)
    }

    #[pyo3(signature = (kind, /, **fields))]
    fn create(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        fields: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Record> {
        let kind = to_kind(kind)?;
        let new = new_record(kind, fields)?;
        self.run(py, move |s| s.records().create(kind, new))
            .map(Record)
    }

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
        let out = self.run(py, move |s| s.records().create_many(kind, new))?;
        if let Some(p) = progress {
            p.call1((total, total))?;
        }
        records(py, out)
    }

    fn get(&self, py: Python<'_>, kind: &Bound<'_, PyAny>, id: &str) -> PyResult<Record> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |s| s.records().get(kind, id)).map(Record)
    }

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
        self.run(py, move |s| s.records().update(kind, id, version, changes))
            .map(Record)
    }

    #[pyo3(signature = (kind, id, version=None))]
    fn delete(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        #[pyo3(from_py_with = crate::args::opt_version)] version: Option<i64>,
    ) -> PyResult<()> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |s| s.records().delete(kind, id, version))
    }

    fn restore(&self, py: Python<'_>, kind: &Bound<'_, PyAny>, id: &str) -> PyResult<Record> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |s| s.records().restore(kind, id))
            .map(Record)
    }

    fn purge(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        reason: String,
    ) -> PyResult<()> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |s| s.records().purge(kind, id, &reason))
    }

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
        let kind = to_kind(kind)?;
        let req = ListRequest {
            filter: opt_filter(filter)?,
            sort: sort_of(sort, descending),
            after,
            limit: Some(limit),
            deleted,
        };
        let page = self.run(py, move |s| s.records().list(kind, &req))?;
        Ok(Page {
            items: records(py, page.items)?,
            next: page.next,
        })
    }

    /// Every matching record, fetched lazily page by page with the keyset cursor.
    #[pyo3(signature = (kind, filter=None, sort=None, descending=false, page_size=500))]
    fn iterate(
        &self,
        kind: &Bound<'_, PyAny>,
        filter: Option<&Bound<'_, PyAny>>,
        sort: Option<String>,
        descending: bool,
        #[pyo3(from_py_with = crate::args::page_size)] page_size: u32,
    ) -> PyResult<RecordIterator> {
        let kind = to_kind(kind)?;
        Ok(RecordIterator {
            session: self.inner.clone(),
            kind,
            filter: opt_filter(filter)?,
            sort: sort_of(sort, descending),
            page_size,
            state: Mutex::new(IterState {
                buffer: Vec::new(),
                next: None,
                done: false,
            }),
        })
    }

    #[pyo3(signature = (kind, filter=None))]
    fn count(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let (kind, filter) = (to_kind(kind)?, opt_filter(filter)?);
        self.run(py, move |s| s.records().count(kind, filter.as_ref()))
    }

    fn find_by_phone(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        phone: String,
    ) -> PyResult<Vec<Py<Record>>> {
        let kind = to_kind(kind)?;
        let out = self.run(py, move |s| s.records().find_by_phone(kind, &phone))?;
        records(py, out)
    }

    /// Matching records as flat dicts (`id`, visible fields, custom fields as `custom.<name>`).
    #[pyo3(signature = (kind, filter=None, columns=None))]
    fn export<'py>(
        &self,
        py: Python<'py>,
        kind: &Bound<'_, PyAny>,
        filter: Option<&Bound<'_, PyAny>>,
        columns: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (kind, filter) = (to_kind(kind)?, opt_filter(filter)?);
        let names = columns.as_ref().map(|cols| {
            let mut v = vec!["id".to_owned()];
            v.extend(cols.iter().filter(|c| c.as_str() != "id").cloned());
            v
        });
        let rows = self.run(py, move |s| {
            let cols: Option<Vec<&str>> = columns
                .as_ref()
                .map(|v| v.iter().map(String::as_str).collect());
            let mut rows = Vec::new();
            s.records()
                .export(kind, filter.as_ref(), cols.as_deref(), &mut |r| {
                    rows.push(r);
                    Ok(())
                })?;
            Ok(rows)
        })?;
        let out = PyList::empty(py);
        for r in rows {
            let d = PyDict::new(py);
            d.set_item("id", r.meta.id.to_string())?;
            for (k, v) in &r.fields {
                d.set_item(k, from_value(py, v)?)?;
            }
            for (k, v) in &r.custom {
                d.set_item(format!("custom.{k}"), from_value(py, v)?)?;
            }
            out.append(d)?;
        }
        let items: Vec<Bound<'py, PyAny>> = out.iter().collect();
        result_rows(py, items, None, names)
    }

    /// Shares a record with exactly one of `user`, `team` or `partner`; returns the share record.
    #[pyo3(signature = (kind, id, *, user=None, team=None, partner=None, edit=false, until=None))]
    #[allow(clippy::too_many_arguments)] // reason: mirrors the keyword arguments of the Python API
    fn share(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        user: Option<&str>,
        team: Option<&str>,
        partner: Option<&str>,
        edit: bool,
        until: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Record> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        let grantee = match (user, team, partner) {
            (Some(u), None, None) => Grantee::User(rid(u)?),
            (None, Some(t), None) => Grantee::Team(rid(t)?),
            (None, None, Some(p)) => Grantee::Partner(rid(p)?),
            _ => {
                return Err(PyValueError::new_err(
                    "pass exactly one of `user`, `team` or `partner`",
                ))
            }
        };
        let until = match until {
            Some(u) if !u.is_none() => Some(to_instant(u)?),
            _ => None,
        };
        self.run(py, move |s| {
            s.access().share(kind, id, grantee, edit, until)
        })
        .map(Record)
    }

    fn unshare(&self, py: Python<'_>, share_id: &str) -> PyResult<()> {
        let id = rid(share_id)?;
        self.run(py, move |s| s.access().unshare(id))
    }

    fn explain(
        &self,
        py: Python<'_>,
        user_id: &str,
        action: &Bound<'_, PyAny>,
        kind: &Bound<'_, PyAny>,
        id: &str,
    ) -> PyResult<Decision> {
        let (user, action, kind, id) = (
            rid(user_id)?,
            to_action(action, "action")?,
            to_kind(kind)?,
            rid(id)?,
        );
        self.run(py, move |s| s.access().explain(user, action, kind, id))
            .map(Decision::from)
    }

    fn who_can_read(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
    ) -> PyResult<Vec<AccessReview>> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        let out = self.run(py, move |s| s.access().who_can_read(kind, id))?;
        out.into_iter().map(|r| AccessReview::new(py, r)).collect()
    }

    /// `(role_id, role_name, access)` for every role that can read the field.
    fn roles_reading_field(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        field: String,
    ) -> PyResult<Vec<(String, String, String)>> {
        let kind = to_kind(kind)?;
        let out = self.run(py, move |s| s.access().roles_reading_field(kind, &field))?;
        Ok(out
            .into_iter()
            .map(|(id, name, access)| (id.to_string(), name, access))
            .collect())
    }

    #[pyo3(signature = (kind, id, before=None, limit=50))]
    fn history(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        #[pyo3(from_py_with = crate::args::before)] before: Option<u64>,
        #[pyo3(from_py_with = crate::args::limit)] limit: u32,
    ) -> PyResult<HistoryPage> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        let page = self.run(py, move |s| {
            s.audit().history(kind, id, before, Some(limit))
        })?;
        let mut entries = Vec::with_capacity(page.entries.len());
        for e in page.entries {
            entries.push(Py::new(py, HistoryEntry::new(py, e)?)?);
        }
        Ok(HistoryPage {
            entries,
            next: page.next,
        })
    }

    fn as_of(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        at: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Record>> {
        let (kind, id, at) = (to_kind(kind)?, rid(id)?, to_instant(at)?);
        Ok(self
            .run(py, move |s| s.audit().as_of(kind, id, at))?
            .map(Record))
    }

    fn version(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        #[pyo3(from_py_with = crate::args::n)] n: i64,
    ) -> PyResult<Option<Record>> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        Ok(self
            .run(py, move |s| s.audit().version(kind, id, n))?
            .map(Record))
    }

    fn diff_versions(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        #[pyo3(from_py_with = crate::args::a)] a: i64,
        #[pyo3(from_py_with = crate::args::b)] b: i64,
    ) -> PyResult<Vec<FieldChange>> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        let out = self.run(py, move |s| s.audit().diff_versions(kind, id, a, b))?;
        out.iter().map(|ch| FieldChange::new(py, ch)).collect()
    }

    #[pyo3(signature = (user_id, start, end, limit=None))]
    fn user_activity(
        &self,
        py: Python<'_>,
        user_id: &str,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = crate::args::opt_limit)] limit: Option<u32>,
    ) -> PyResult<Vec<HistoryEntry>> {
        let (user, start, end) = (rid(user_id)?, to_instant(start)?, to_instant(end)?);
        let out = self.run(py, move |s| {
            s.audit().user_activity(user, start, end, limit)
        })?;
        out.into_iter().map(|e| HistoryEntry::new(py, e)).collect()
    }

    fn verify_audit(&self, py: Python<'_>) -> PyResult<AuditVerification> {
        self.run(py, |s| s.audit().verify())
            .map(AuditVerification::from)
    }

    #[pyo3(signature = (after=0, limit=100))]
    fn pending_events(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::after_seq)] after: u64,
        #[pyo3(from_py_with = crate::args::limit)] limit: u32,
    ) -> PyResult<Vec<Event>> {
        let out = self.run(py, move |s| s.outbox().pending(after, limit))?;
        out.into_iter().map(|e| Event::new(py, e)).collect()
    }

    fn ack_events(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::seqs)] seqs: Vec<u64>,
    ) -> PyResult<u64> {
        self.run(py, move |s| s.outbox().ack(&seqs))
    }

    /// Defines a custom field (creates a `custom_field` record).
    #[pyo3(signature = (kind, name, field_type, *, label=None, choices=None, reference_to=None, required=false))]
    #[allow(clippy::too_many_arguments)] // reason: mirrors the keyword arguments of the Python API
    fn define_custom_field(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        name: &str,
        field_type: &str,
        label: Option<&str>,
        choices: Option<Vec<String>>,
        reference_to: Option<&Bound<'_, PyAny>>,
        required: bool,
    ) -> PyResult<Record> {
        let kw = PyDict::new(py);
        kw.set_item("entity", to_kind(kind)?.name())?;
        kw.set_item("name", name)?;
        kw.set_item("field_type", field_type)?;
        kw.set_item("label", label)?;
        kw.set_item("choices", choices)?;
        if let Some(r) = reference_to {
            if !r.is_none() {
                kw.set_item("reference_to", kind_named(r, "reference_to")?.name())?;
            }
        }
        kw.set_item("required", required)?;
        let new = new_record(EntityKind::CustomField, Some(&kw))?;
        self.run(py, move |s| {
            s.records().create(EntityKind::CustomField, new)
        })
        .map(Record)
    }

    /// Creates a role with a policy (the JSON form of the core `Policy`).
    #[pyo3(signature = (name, policy, *, description=None))]
    fn create_role(
        &self,
        py: Python<'_>,
        name: &str,
        policy: &Bound<'_, PyAny>,
        description: Option<&str>,
    ) -> PyResult<Record> {
        let kw = PyDict::new(py);
        kw.set_item("name", name)?;
        kw.set_item("policy", policy)?;
        kw.set_item("description", description)?;
        let new = new_record(EntityKind::Role, Some(&kw))?;
        self.run(py, move |s| s.records().create(EntityKind::Role, new))
            .map(Record)
    }

    // ------------------------------------------------------------- processes

    /// Moves a lead along its lifecycle (`contacted`, `qualified`, `disqualified`…); converting is
    /// `convert_lead`. Refused moves raise `InvalidTransition`.
    #[pyo3(signature = (id, version, to, *, comment=None))]
    fn transition_lead(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        to: String,
        comment: Option<String>,
    ) -> PyResult<Record> {
        let id = rid(id)?;
        self.run(py, move |s| {
            s.sales()
                .transition_lead(id, version, &to, comment.as_deref())
        })
        .map(Record)
    }

    /// Disqualifies a lead; the reason is required.
    fn disqualify_lead(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        reason: String,
    ) -> PyResult<Record> {
        let id = rid(id)?;
        self.run(py, move |s| s.sales().disqualify_lead(id, version, &reason))
            .map(Record)
    }

    /// Converts a qualified lead atomically into an account (created, or `account_id` linked), a
    /// contact and an opportunity (named `opportunity_name`, worth `amount`, in `pipeline` or the
    /// default pipeline).
    #[pyo3(signature = (id, version, *, account_id=None, opportunity_name=None, amount=None, pipeline=None))]
    #[allow(clippy::too_many_arguments)] // reason: mirrors the keyword arguments of the Python API
    fn convert_lead(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        account_id: Option<&str>,
        opportunity_name: Option<String>,
        amount: Option<&Bound<'_, PyAny>>,
        pipeline: Option<String>,
    ) -> PyResult<Conversion> {
        let id = rid(id)?;
        let amount = match amount {
            Some(a) if !a.is_none() => Some(money_of(a, "amount")?.ok_or_else(|| {
                PyTypeError::new_err("`amount` must be a Money or an (amount, currency) tuple")
            })?),
            _ => None,
        };
        let opts = ConvertLead {
            account_id: account_id.map(rid).transpose()?,
            opportunity_name,
            amount,
            pipeline,
        };
        let conv = self.run(py, move |s| s.sales().convert_lead(id, version, opts))?;
        Conversion::new(py, conv)
    }

    /// Moves an opportunity to another stage of its pipeline, checking the stage's guards.
    #[pyo3(signature = (id, version, stage, *, comment=None, lost_reason=None))]
    fn move_opportunity(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        stage: String,
        comment: Option<String>,
        lost_reason: Option<String>,
    ) -> PyResult<Record> {
        let id = rid(id)?;
        self.run(py, move |s| {
            s.sales().move_opportunity(
                id,
                version,
                &stage,
                comment.as_deref(),
                lost_reason.as_deref(),
            )
        })
        .map(Record)
    }

    /// Submits a draft quote: it waits for approval if an approval rule triggers, else it is
    /// approved at once (and sent, if `auto_send`).
    #[pyo3(signature = (id, version, *, comment=None))]
    fn submit_quote(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        comment: Option<String>,
    ) -> PyResult<Record> {
        let id = rid(id)?;
        self.run(py, move |s| {
            s.sales().submit_quote(id, version, comment.as_deref())
        })
        .map(Record)
    }

    /// Approves a quote waiting for approval (capability `approve_quotes`; not by its author or
    /// submitter: rule `same_person`).
    #[pyo3(signature = (id, version, *, comment=None))]
    fn approve_quote(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        comment: Option<String>,
    ) -> PyResult<Record> {
        let id = rid(id)?;
        self.run(py, move |s| {
            s.sales().approve_quote(id, version, comment.as_deref())
        })
        .map(Record)
    }

    /// Rejects a quote waiting for approval or a sent one; the reason is required.
    fn reject_quote(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        reason: String,
    ) -> PyResult<Record> {
        let id = rid(id)?;
        self.run(py, move |s| s.sales().reject_quote(id, version, &reason))
            .map(Record)
    }

    /// Sends an approved quote (rule `approval_missing` otherwise): an `email.requested` event goes
    /// to the outbox for `deliver_emails`.
    fn send_quote(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
    ) -> PyResult<Record> {
        let id = rid(id)?;
        self.run(py, move |s| s.sales().send_quote(id, version))
            .map(Record)
    }

    /// Marks an approved or sent quote expired.
    fn expire_quote(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
    ) -> PyResult<Record> {
        let id = rid(id)?;
        self.run(py, move |s| s.sales().expire_quote(id, version))
            .map(Record)
    }

    /// Records the customer's acceptance of a sent quote; with `create_order` also creates the
    /// order. Returns `(quote, order or None)`.
    #[pyo3(signature = (id, version, *, create_order=false))]
    fn accept_quote(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        create_order: bool,
    ) -> PyResult<(Record, Option<Record>)> {
        let id = rid(id)?;
        let (q, o) = self.run(py, move |s| {
            s.sales().accept_quote(id, version, create_order)
        })?;
        Ok((Record(q), o.map(Record)))
    }

    /// Moves a case along its lifecycle (reopening included).
    #[pyo3(signature = (id, version, to, *, comment=None))]
    fn transition_case(
        &self,
        py: Python<'_>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        to: String,
        comment: Option<String>,
    ) -> PyResult<Record> {
        let id = rid(id)?;
        self.run(py, move |s| {
            s.service()
                .transition_case(id, version, &to, comment.as_deref())
        })
        .map(Record)
    }

    /// Marks the open cases past an SLA due time as breached (once each); returns their ids.
    fn check_slas(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let out = self.run(py, |s| s.service().check_slas())?;
        Ok(out.into_iter().map(|id| id.to_string()).collect())
    }

    /// The recorded transitions of a record, oldest first, with the time spent in each state.
    fn stage_history(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
    ) -> PyResult<Vec<StageEntry>> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        let out = self.run(py, move |s| s.audit().stage_history(kind, id))?;
        Ok(out.into_iter().map(StageEntry::from).collect())
    }

    /// Follows a record (its later changes notify the user); returns the Follow record.
    fn follow(&self, py: Python<'_>, kind: &Bound<'_, PyAny>, id: &str) -> PyResult<Record> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |s| s.records().follow(kind, id))
            .map(Record)
    }

    /// Stops following a record; `False` if the user was not following it.
    fn unfollow(&self, py: Python<'_>, kind: &Bound<'_, PyAny>, id: &str) -> PyResult<bool> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |s| s.records().unfollow(kind, id))
    }

    /// The ids of the users following a record.
    fn followers(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
    ) -> PyResult<Vec<String>> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        let out = self.run(py, move |s| s.records().followers(kind, id))?;
        Ok(out.into_iter().map(|id| id.to_string()).collect())
    }

    /// Open tasks due before `until` (an aware datetime), earliest first.
    fn due_tasks(&self, py: Python<'_>, until: &Bound<'_, PyAny>) -> PyResult<Vec<Py<Record>>> {
        let until = to_instant(until)?;
        let out = self.run(py, move |s| s.service().due_tasks(until))?;
        records(py, out)
    }

    /// Emits one `task.due` event per open task due by now not yet reminded; returns how many.
    fn fire_reminders(&self, py: Python<'_>) -> PyResult<usize> {
        self.run(py, |s| s.service().fire_reminders())
    }

    /// Delivers the pending `email.requested` events through `mailer` (any object with a
    /// `send(message)` method, called with an `EmailMessage`), oldest first, and acknowledges each one
    /// sent; returns how many. An exception raised by `send` leaves that event pending for the next
    /// call and the other messages are still tried; `on_error(message, error)` is then called with a
    /// `StorageError` whose `__cause__` is the exception.
    #[pyo3(signature = (mailer, *, on_error=None))]
    fn deliver_emails(
        &self,
        py: Python<'_>,
        mailer: &Bound<'_, PyAny>,
        on_error: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let m = PyMailer::new(mailer)?;
        let result = self.run(py, |s| s.outbox().deliver_emails(&m));
        let (failures, fatal) = m.into_outcome();
        if let Some(e) = fatal {
            return Err(e);
        }
        let delivered = result?;
        if let Some(cb) = on_error.filter(|cb| !cb.is_none()) {
            for f in &failures {
                let msg = crate::types::EmailMessage::from(&f.message);
                cb.call1((msg, PyMailer::error_of(py, f).into_value(py)))?;
            }
        }
        Ok(delivered)
    }

    /// Restores the field values a record had at `restore_to`, as a new recorded change that passes
    /// today's validation (`version` is the current version, checked as in `update`).
    fn restore_version(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        id: &str,
        #[pyo3(from_py_with = crate::args::version)] version: i64,
        #[pyo3(from_py_with = crate::args::restore_to)] restore_to: i64,
    ) -> PyResult<Record> {
        let (kind, id) = (to_kind(kind)?, rid(id)?);
        self.run(py, move |s| {
            s.audit().restore_version(kind, id, version, restore_to)
        })
        .map(Record)
    }

    // ------------------------------------------------------------- segments and analytics

    /// Parses filter-language text over `kind` (e.g. `country in ("IT", "DE") and
    /// lifetime_value > 1000`) into the serde dict form of a filter, which every `filter=` accepts.
    /// Amounts without a currency are in `currency`. Errors are `InvalidQuery` naming the field.
    #[pyo3(signature = (kind, text, *, currency=None))]
    fn parse_filter(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        text: String,
        currency: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let kind = to_kind(kind)?;
        let currency = currency
            .map(|c| crm_core::Currency::parse_field(c, "currency"))
            .transpose()
            .map_err(Error)?;
        let f = self.run(py, move |s| s.segments().parse(kind, &text, currency))?;
        let j = serde_json::to_value(&f)
            .map_err(|e| PyRuntimeError::new_err(format!("filter not serialisable: {e}")))?;
        from_json(py, &j)
    }

    /// How many records the user may read are in the segment now.
    fn segment_count(&self, py: Python<'_>, id: &str) -> PyResult<u64> {
        let id = rid(id)?;
        self.run(py, move |s| s.segments().count(id))
    }

    /// A page of the segment's members the user may read; `filter` narrows further, sorting and
    /// keyset paging as in `list`.
    #[pyo3(signature = (id, filter=None, sort=None, descending=false, limit=50, after=None))]
    #[allow(clippy::too_many_arguments)] // reason: mirrors the keyword arguments of the Python API
    fn segment_members(
        &self,
        py: Python<'_>,
        id: &str,
        filter: Option<&Bound<'_, PyAny>>,
        sort: Option<String>,
        descending: bool,
        #[pyo3(from_py_with = crate::args::limit)] limit: u32,
        after: Option<String>,
    ) -> PyResult<Page> {
        let id = rid(id)?;
        let req = ListRequest {
            filter: opt_filter(filter)?,
            sort: sort_of(sort, descending),
            after,
            limit: Some(limit),
            deleted: false,
        };
        let page = self.run(py, move |s| s.segments().members(id, &req))?;
        Ok(Page {
            items: records(py, page.items)?,
            next: page.next,
        })
    }

    /// Materialises a dynamic segment's members (recounts a static one); reports who entered and
    /// who left since the previous refresh.
    fn refresh_segment(&self, py: Python<'_>, id: &str) -> PyResult<SegmentDiff> {
        let id = rid(id)?;
        self.run(py, move |s| s.segments().refresh(id))
            .map(SegmentDiff::from)
    }

    /// `(account_id, lifecycle)` for every account the user may read (matching `filter`), the
    /// lifecycle being `new`, `active`, `dormant`, `inactive` or `prospect`.
    #[pyo3(signature = (filter=None, *, new_days=30, active_days=90, dormant_days=365))]
    fn lifecycles<'py>(
        &self,
        py: Python<'py>,
        filter: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = crate::args::new_days)] new_days: i64,
        #[pyo3(from_py_with = crate::args::active_days)] active_days: i64,
        #[pyo3(from_py_with = crate::args::dormant_days)] dormant_days: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = opt_filter(filter)?;
        let t = crm_core::analytics::LifecycleThresholds {
            new_days,
            active_days,
            dormant_days,
        };
        let out = self.run(py, move |s| s.analytics().lifecycles(filter, &t))?;
        // Filled at once, not on first use: lists of tuples go to JSON encoders and other C code
        // that may read a list's items without calling its methods.
        table_rows(
            py,
            ResultTable::from(out),
            py.get_type::<pyo3::types::PyTuple>(),
            Some(vec!["account_id".to_owned(), "lifecycle".to_owned()]),
        )
    }

    /// RFM scores (quintiles 1–5 with `NTILE(5)` semantics) of the accounts the user may read that
    /// have orders in the window (`window_days`, default all history), with named segments from
    /// `rules` (dicts `{"segment": name, "r": [lo, hi], "f": [lo, hi], "m": [lo, hi]}`, default
    /// the built-in table) and lifecycle stages; `rates` (`{"base": "EUR", "rates": {"USD": "0.9"}}`)
    /// combines currencies; `accounts` filters the accounts.
    #[pyo3(signature = (*, window_days=None, accounts=None, rules=None, rates=None, new_days=30, active_days=90, dormant_days=365))]
    #[allow(clippy::too_many_arguments)] // reason: mirrors the keyword arguments of the Python API
    fn rfm<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = crate::args::window_days)] window_days: Option<u32>,
        accounts: Option<&Bound<'_, PyAny>>,
        rules: Option<&Bound<'_, PyAny>>,
        rates: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = crate::args::new_days)] new_days: i64,
        #[pyo3(from_py_with = crate::args::active_days)] active_days: i64,
        #[pyo3(from_py_with = crate::args::dormant_days)] dormant_days: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = crm_core::RfmOptions {
            window_days,
            rules: serde_arg(rules, "rules")?,
            rates: serde_arg(rates, "rates")?,
            lifecycle: Some(crm_core::analytics::LifecycleThresholds {
                new_days,
                active_days,
                dormant_days,
            }),
            accounts: opt_filter(accounts)?,
        };
        let out = self.run(py, move |s| s.analytics().rfm(&opts))?;
        table_rows(py, ResultTable::from(out), py.get_type::<RfmRow>(), None)
    }

    /// Revenue, cost and margin of the orders the user may read placed in `[start, end)` (not
    /// cancelled), by customer segment × product, largest margin first. `by` is `"rfm"` (the RFM
    /// segment over `window_days`), `"lifecycle"`, or `"field"` with an account `field` (e.g.
    /// `"country"`); `rates` as in `rfm`.
    #[pyo3(signature = (start, end, *, by="rfm", field=None, rates=None, window_days=None))]
    #[allow(clippy::too_many_arguments)] // reason: mirrors the keyword arguments of the Python API
    fn profit<'py>(
        &self,
        py: Python<'py>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        by: &str,
        field: Option<String>,
        rates: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = crate::args::window_days)] window_days: Option<u32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let by = match (by, field) {
            ("rfm", None) => crm_core::ProfitDimension::Rfm,
            ("lifecycle", None) => crm_core::ProfitDimension::Lifecycle,
            ("field", Some(field)) => crm_core::ProfitDimension::Field { field },
            _ => {
                return Err(PyValueError::new_err(
                    "`by` is \"rfm\", \"lifecycle\" or \"field\" (with `field`)",
                ))
            }
        };
        let rates: Option<crm_core::RateTable> = serde_arg(rates, "rates")?;
        let opts = crm_core::ProfitOptions {
            from: to_instant(start)?,
            to: to_instant(end)?,
            by,
            rates: rates.clone(),
            rfm: crm_core::RfmOptions {
                window_days,
                rates,
                ..Default::default()
            },
        };
        let out = self.run(py, move |s| s.analytics().profit(&opts))?;
        table_rows(py, ResultTable::from(out), py.get_type::<ProfitRow>(), None)
    }

    /// The caller-id screen for `phone`: the matching accounts and contacts and, for a single match,
    /// its contacts, recent orders, open opportunities, quotes, open cases, last interactions, RFM
    /// segment, lifecycle, cross-sell hints and (with `erp`, an object with a `facts(account_id)`
    /// method returning `balance`, `credit_terms` and `overdue_invoices`) the ERP facts.
    #[pyo3(signature = (phone, *, erp=None))]
    fn screen_pop(
        &self,
        py: Python<'_>,
        phone: String,
        erp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ScreenPop> {
        let provider = erp
            .filter(|e| !e.is_none())
            .map(PyErpFacts::new)
            .transpose()?;
        let session = &self.inner;
        let r = run(py, || {
            session.analytics().screen_pop(
                &phone,
                provider.as_ref().map(|p| p as &dyn crm_core::ErpFacts),
            )
        });
        if let Some(p) = provider {
            if let Some(e) = p.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(e);
            }
        }
        ScreenPop::new(py, r.map_err(Error)?)
    }

    /// Products often bought together with the ones the account bought and it has not bought
    /// (association rules over the order baskets), best lift first, at most `limit`.
    #[pyo3(signature = (account_id, *, limit=5))]
    fn cross_sell<'py>(
        &self,
        py: Python<'py>,
        account_id: &str,
        #[pyo3(from_py_with = crate::args::top)] limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = rid(account_id)?;
        let out = self.run(py, move |s| s.analytics().cross_sell(id, limit))?;
        let out: Vec<CrossSell> = out.into_iter().map(CrossSell::from).collect();
        result_rows(py, out, Some(py.get_type::<CrossSell>()), None)
    }

    /// How the opportunities of a pipeline (default: the tenant's default pipeline), created in
    /// `[start, end)` when given, went through its stages: reached / current per stage, stage-to-stage
    /// conversion rates, win rate and average cycle time in days.
    #[pyo3(signature = (pipeline=None, *, start=None, end=None))]
    fn funnel(
        &self,
        py: Python<'_>,
        pipeline: Option<String>,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Funnel> {
        let opts = crm_core::FunnelOptions {
            pipeline,
            from: start.map(to_instant).transpose()?,
            to: end.map(to_instant).transpose()?,
        };
        let out = self.run(py, move |s| s.sales().funnel(&opts))?;
        Ok(Funnel::from(out))
    }

    /// Value indices of the accounts the user may read (or those matching `accounts`): historic and
    /// predicted lifetime value over `horizon_years`, churn risk, CSAT and NPS from survey activities.
    #[pyo3(signature = (accounts=None, *, horizon_years=3, rates=None))]
    fn customer_values<'py>(
        &self,
        py: Python<'py>,
        accounts: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = crate::args::horizon_years)] horizon_years: u32,
        rates: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = crm_core::ValueOptions {
            accounts: opt_filter(accounts)?,
            horizon_years,
            rates: serde_arg(rates, "rates")?,
        };
        let out = self.run(py, move |s| s.analytics().customer_values(&opts))?;
        table_rows(
            py,
            ResultTable::from(out),
            py.get_type::<CustomerValue>(),
            None,
        )
    }

    /// The weighted pipeline of the open opportunities the user may read, by expected-close month
    /// and forecast category; `rates` as in `rfm`.
    #[pyo3(signature = (*, rates=None))]
    fn forecast<'py>(
        &self,
        py: Python<'py>,
        rates: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rates: Option<crm_core::RateTable> = serde_arg(rates, "rates")?;
        let out = self.run(py, move |s| s.sales().forecast(rates.as_ref()))?;
        let out: Vec<ForecastRow> = out.into_iter().map(ForecastRow::from).collect();
        result_rows(py, out, Some(py.get_type::<ForecastRow>()), None)
    }

    /// Per-owner supervision figures over `[start, end)`, one row per owner with any figure.
    #[pyo3(signature = (start, end, *, rates=None))]
    fn kpis<'py>(
        &self,
        py: Python<'py>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        rates: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.kpi_rows(py, start, end, rates, false)
    }

    /// The per-owner figures rolled up per team (a member's figures count in each of their teams).
    #[pyo3(signature = (start, end, *, rates=None))]
    fn team_kpis<'py>(
        &self,
        py: Python<'py>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        rates: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.kpi_rows(py, start, end, rates, true)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Session tenant={} user={}>",
            self.inner.tenant(),
            self.inner.user_id()
        )
    }
}

struct IterState {
    buffer: Vec<crm_core::Record>,
    next: Option<String>,
    done: bool,
}

/// Lazily pages through records with the keyset cursor.
#[pyclass(frozen, module = "crm_core._crm_core")]
pub(crate) struct RecordIterator {
    session: CoreSession,
    kind: EntityKind,
    filter: Option<Filter>,
    sort: Option<Sort>,
    page_size: u32,
    state: Mutex<IterState>,
}

#[pymethods]
impl RecordIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Record>> {
        // Waits for the lock with the GIL released, so two threads sharing one iterator cannot
        // deadlock (the holder re-attaches after its page query).
        let mut st = self
            .state
            .lock_py_attached(py)
            .map_err(|_| PyRuntimeError::new_err("iterator state poisoned"))?;
        if st.buffer.is_empty() && !st.done {
            let req = ListRequest {
                filter: self.filter.clone(),
                sort: self.sort.clone(),
                after: st.next.clone(),
                limit: Some(self.page_size),
                deleted: false,
            };
            let (session, kind) = (&self.session, self.kind);
            let page = call(py, move || session.records().list(kind, &req))?;
            st.buffer = page.items;
            st.buffer.reverse();
            st.done = page.next.is_none();
            st.next = page.next;
        }
        Ok(st.buffer.pop().map(Record))
    }
}

impl Session {
    fn kpi_rows<'py>(
        &self,
        py: Python<'py>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        rates: Option<&Bound<'_, PyAny>>,
        per_team: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (start, end) = (to_instant(start)?, to_instant(end)?);
        let rates: Option<crm_core::RateTable> = serde_arg(rates, "rates")?;
        let out = self.run(py, move |s| {
            if per_team {
                s.analytics().team_kpis(start, end, rates.as_ref())
            } else {
                s.analytics().kpis(start, end, rates.as_ref())
            }
        })?;
        let out: Vec<Kpi> = out.into_iter().map(Kpi::from).collect();
        result_rows(py, out, Some(py.get_type::<Kpi>()), None)
    }
}
