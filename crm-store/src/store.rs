//! The SQLite store: connections, transactions and the trait implementations.

use parking_lot::{Mutex, MutexGuard};
use std::cell::RefCell;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crm_core::backend::{AuditQuery, CustomTypes, Query, ReadTx, Store, WriteTx};
use crm_core::{
    AuditEntry, CrmError, EntityKind, Event, FieldType, Fields, NewEvent, Record, RecordId,
    RecordMeta, Result, TenantId,
};
use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension, Row};

use crate::codec::{
    blob_id, decode_column_ref, decode_custom, encode_column_into, encode_custom, int_to_ts,
    storage, ts_to_int, valid_key, Currencies,
};
use crate::compile;
use crate::error::{busy, invalid_path};
use crate::scope::{self, ScopeNames, ScopeTables};
use crate::{audit, migrate};

/// How many idle reader connections a file store keeps.
const MAX_READERS: usize = 4;

/// A CRM store in one SQLite database (a file, or memory for tests).
///
/// A file store has one writer connection (writes wait for each other, `BEGIN IMMEDIATE`) and up to
/// four pooled reader connections in WAL mode, so reads never wait for writes. An in-memory store has
/// one connection shared by reads and writes: do not hold a [`ReadTx`] while starting a write on the
/// same thread.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// Per table: rows inserted since its statistics were last refreshed, and how many new rows make
    /// the next refresh due (the table's size at the last refresh, at least [`ANALYZE_AFTER_ROWS`]).
    unanalyzed: Mutex<Vec<(&'static str, u64, u64)>>,
    /// `None` for in-memory stores (reads use the writer connection).
    readers: Option<Readers>,
    /// Durability and busy timeout of every connection.
    options: OpenOptions,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<ReaderConn>>,
}

/// A pooled reader connection and the owner-set tables it holds (see [`crate::scope`]).
struct ReaderConn {
    conn: Connection,
    scopes: RefCell<ScopeTables>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("in_memory", &self.readers.is_none())
            .finish()
    }
}

/// How durable a commit is once it returns: SQLite's `synchronous` setting on every connection of a
/// file store (WAL mode). See `docs/architecture.md`, "Durability".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// `synchronous=FULL` (the default): the write-ahead log is flushed to disk at every commit, so
    /// a commit that returned survives a power loss or an operating-system crash. Costs one `fsync`
    /// per write transaction.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the log is flushed only at checkpoints. The database stays consistent
    /// and is never corrupted, and an application crash loses nothing, but the last transactions
    /// committed before a power loss or an operating-system crash may be rolled back. Faster for
    /// many small writes; choose it only when those can be redone.
    Normal,
}

impl Durability {
    /// The value of `PRAGMA synchronous` this choice sets.
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// How [`SqliteStore::open_with`] opens a database file. Build it from the default, so options added
/// later keep their defaults: `OpenOptions { durability: Durability::Normal, ..Default::default() }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpenOptions {
    /// How durable a returned commit is (default [`Durability::Full`]).
    pub durability: Durability,
    /// How long a write waits for the database held by another write — on this handle, another
    /// connection or another process — before it fails with the `Storage` error of rule `busy`
    /// (retryable: [`crm_core::CrmError::is_retryable`]). Default 5 s.
    pub busy_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

fn configure(conn: &Connection, options: &OpenOptions) -> Result<()> {
    conn.busy_timeout(options.busy_timeout).map_err(storage)?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; PRAGMA temp_store = MEMORY;",
        options.durability.pragma()
    ))
    .map_err(storage)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

fn open_reader(path: &Path, options: &OpenOptions) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(storage)?;
    configure(&conn, options)?;
    conn.execute_batch(&format!("PRAGMA cache_size = -{READER_CACHE_KIB};"))
        .map_err(storage)?;
    Ok(conn)
}

/// Refuses a path that cannot name a database file, before SQLite reads it: an empty path (SQLite
/// would open a private temporary database that vanishes on close), `:memory:` (each connection
/// would see its own empty database: use [`SqliteStore::open_in_memory`]), a directory, and an
/// existing file that is not an SQLite database (`corrupt`, the file left untouched; an empty file
/// is a new database). The message names the problem, not the path.
fn check_path(path: &Path) -> Result<()> {
    let text = path.as_os_str();
    if text.is_empty() || text.to_string_lossy().trim().is_empty() {
        return Err(invalid_path("the database path is empty"));
    }
    if text == ":memory:" {
        return Err(invalid_path(
            "the in-memory name names no file: open an in-memory store instead",
        ));
    }
    if path.is_dir() {
        return Err(invalid_path("the database path is a directory, not a file"));
    }
    // SQLite takes a short file for an empty database and would write its schema over it.
    crate::backup::check_header(path)
}

/// Page cache of the writing connection, in KiB. SQLite's default (2 MiB) holds too few interior
/// pages of a million-row table and its indexes: inserts then re-read pages through the OS.
const WRITER_CACHE_KIB: u32 = 64 * 1024;
/// Page cache of each reading connection, in KiB.
const READER_CACHE_KIB: u32 = 16 * 1024;

impl SqliteStore {
    /// Opens (or creates) the database file at `path` with the default [`OpenOptions`] (durable
    /// commits, `synchronous=FULL`; 5 s busy timeout) and brings its schema up to date.
    ///
    /// Fails with a `Storage` error of rule `newer_schema`, leaving the file untouched, when the file
    /// was written by a newer version of this library; `corrupt` when it is not an SQLite database,
    /// is damaged, or records a schema version this library never writes; `invalid_path` for an
    /// empty path or a directory.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens (or creates) the database file at `path` as `options` say and brings its schema up to
    /// date; otherwise as [`SqliteStore::open`].
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        check_path(&path)?;
        let conn = Connection::open(&path).map_err(storage)?;
        conn.busy_timeout(options.busy_timeout).map_err(storage)?;
        // Check before anything writes (switching to WAL writes the header).
        migrate::check(&conn)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(storage)?;
        configure(&conn, &options)?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB};"))
            .map_err(storage)?;
        migrate::apply(&conn)?;
        Ok(SqliteStore {
            writer: Mutex::new(conn),
            unanalyzed: Mutex::new(Vec::new()),
            readers: Some(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            options,
        })
    }

    /// A fresh store in memory (tests, throw-away work): one connection for reads and writes.
    pub fn open_in_memory() -> Result<SqliteStore> {
        let options = OpenOptions::default();
        let conn = Connection::open_in_memory().map_err(storage)?;
        configure(&conn, &options)?;
        migrate::apply(&conn)?;
        Ok(SqliteStore {
            writer: Mutex::new(conn),
            unanalyzed: Mutex::new(Vec::new()),
            readers: None,
            options,
        })
    }

    /// The options this store was opened with.
    pub fn options(&self) -> OpenOptions {
        self.options
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<u32> {
        let conn = lock(&self.writer, self.options.busy_timeout)?;
        migrate::version(&conn)
    }

    /// The schema version this library writes (the newest it knows).
    pub fn latest_schema_version() -> u32 {
        migrate::latest()
    }

    /// Copies the live database to a new file at `dest` while writers keep writing (SQLite's online
    /// backup, inside one read snapshot), reporting `(pages done, pages total)`.
    ///
    /// The copy is written under a temporary name beside `dest` (`.<name>.partial-…`), checked
    /// (integrity, foreign keys, this library's schema present), flushed to disk and only then
    /// renamed to `dest` in one atomic step: a failed or interrupted backup leaves no file at `dest`.
    /// Refuses an existing destination (`Conflict`, rule `destination_exists`).
    pub fn backup_to(
        &self,
        dest: impl AsRef<Path>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        match &self.readers {
            Some(r) => {
                let src = open_reader(&r.path, &self.options)?;
                crate::backup::copy(&src, dest.as_ref(), progress)
            }
            None => {
                let conn = lock(&self.writer, self.options.busy_timeout)?;
                crate::backup::copy(&conn, dest.as_ref(), progress)
            }
        }
    }

    /// Restores a backup into a new database file `into` (refused if it exists) and checks it,
    /// with the same temporary name and atomic rename as [`SqliteStore::backup_to`].
    ///
    /// Refuses, before copying anything, what cannot be a backup, with a `Storage` error: an empty
    /// (0-byte) file or an SQLite file without this library's schema (rule `not_a_backup`), a file
    /// that is not SQLite or is damaged (`corrupt`), one from a newer library (`newer_schema`), a
    /// directory (`invalid_path`), a missing file (`io`).
    pub fn restore_backup(
        backup: impl AsRef<Path>,
        into: impl AsRef<Path>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let src = crate::backup::open_backup(backup.as_ref())?;
        crate::backup::copy(&src, into.as_ref(), progress)
    }

    /// `PRAGMA integrity_check` and the foreign-key check of this database: empty when sound.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let conn = lock(&self.writer, self.options.busy_timeout)?;
        crate::backup::check(&conn)
    }

    /// Integrity check of a database file (for example a backup), opened read-only: the problems
    /// found, empty when sound. A file that cannot be a backup is refused with a `Storage` error,
    /// as [`SqliteStore::restore_backup`] refuses it (an empty file, a file that is not SQLite, an
    /// SQLite file without this library's schema).
    pub fn check_file(path: impl AsRef<Path>) -> Result<Vec<String>> {
        crate::backup::check_file(path.as_ref())
    }

    /// A read on a pooled reader connection (on the one connection of an in-memory store): a
    /// snapshot held until the transaction ends with `snapshot`, else each statement in its own.
    fn read_tx(&self, snapshot: bool) -> Result<Tx<'_>> {
        let conn = match &self.readers {
            None => Handle::Locked(lock(&self.writer, self.options.busy_timeout)?),
            Some(r) => {
                let pooled = lock(&r.idle, self.options.busy_timeout)?.pop();
                let c = match pooled {
                    Some(c) => c,
                    None => ReaderConn {
                        conn: open_reader(&r.path, &self.options)?,
                        scopes: RefCell::default(),
                    },
                };
                Handle::Pooled(Some(c), &r.idle)
            }
        };
        let mut tx = Tx {
            conn,
            open: false,
            inserted: Vec::new(),
            store: None,
            made: RefCell::default(),
        };
        if snapshot {
            tx.control("BEGIN DEFERRED").map_err(storage)?;
            tx.open = true;
        }
        Ok(tx)
    }

    /// The query plan SQLite picks for a query, one `EXPLAIN QUERY PLAN` detail line per step
    /// (for tests and tuning).
    /// Explained on a reader connection where the store has them, as reads run.
    pub fn explain(&self, q: &Query) -> Result<Vec<String>> {
        self.explain_read(q, |names| compile::select(q, names))
    }

    /// The query plan of the narrow read [`ReadTx::scan_fields`] of `fields` over `q`.
    pub fn explain_scan_fields(&self, q: &Query, fields: &[&str]) -> Result<Vec<String>> {
        self.explain_read(q, |names| compile::select_fields(q, fields, names))
    }

    /// The query plan of the order line read [`ReadTx::order_lines`] over `q`.
    pub fn explain_order_lines(&self, q: &Query) -> Result<Vec<String>> {
        self.explain_read(q, |names| crate::aggregate::statement(q, names))
    }

    /// The plan of the statement `build` compiles for `q`, on a read transaction of this store.
    fn explain_read(
        &self,
        q: &Query,
        build: impl FnOnce(&ScopeNames) -> Result<compile::Stmt>,
    ) -> Result<Vec<String>> {
        let tx = self.read_tx(true)?;
        let stmt = build(&tx.scope_names(&q.cond)?)?;
        let mut st = tx
            .prepare(&format!("EXPLAIN QUERY PLAN {}", stmt.sql))
            .map_err(storage)?;
        let rows = st
            .query_map(params_from_iter(stmt.params.iter()), |r| {
                r.get::<_, String>(3)
            })
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage)
    }
}

/// Takes `m`, waiting at most the busy timeout: a write that waits longer (another transaction
/// left open, or a transaction's own thread writing outside it) fails with the one busy error —
/// `Storage`, rule `busy`, retryable — exactly as when another connection holds SQLite's lock.
fn lock<T>(m: &Mutex<T>, timeout: Duration) -> Result<MutexGuard<'_, T>> {
    m.try_lock_for(timeout).ok_or_else(busy)
}

enum Handle<'a> {
    Locked(MutexGuard<'a, Connection>),
    Pooled(Option<ReaderConn>, &'a Mutex<Vec<ReaderConn>>),
}

/// One transaction on one connection; a read or a write transaction.
struct Tx<'a> {
    conn: Handle<'a>,
    open: bool,
    /// Rows inserted per table in this transaction: large loads refresh the planner's statistics.
    inserted: Vec<(&'static str, u64)>,
    /// The store, for write transactions (statistics bookkeeping after commit).
    store: Option<&'a SqliteStore>,
    /// Owner-set tables this read transaction made, the connection's own once it commits.
    made: RefCell<Vec<(Vec<RecordId>, u32)>>,
}

/// A transaction inserting at least this many rows into a table refreshes that table's statistics.
const ANALYZE_AFTER_ROWS: u64 = 1_000;

/// The row count ANALYZE recorded for `table` (the first figure of its statistics).
fn analyzed_rows(conn: &Connection, table: &str) -> Result<u64> {
    let stat: Option<String> = conn
        .query_row(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = ?1 LIMIT 1",
            [table],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage)?;
    Ok(stat
        .as_deref()
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match &self.conn {
            Handle::Locked(g) => g,
            Handle::Pooled(Some(c), _) => &c.conn,
            // ok: the connection is only taken out in Drop.
            #[allow(clippy::unreachable)]
            Handle::Pooled(None, _) => unreachable!("connection used after drop"),
        }
    }
}

impl Tx<'_> {
    /// The owner-set tables a statement over `cond` reads: on a pooled reader connection, each owner
    /// set of `cond` worth a table, made now (filled in this transaction) if the connection has
    /// none yet and holds fewer than [`scope::MAX_TABLES`]; none on other connections.
    fn scope_names<'c>(&self, cond: &'c crm_core::backend::Cond) -> Result<ScopeNames<'c>> {
        let mut names = ScopeNames::default();
        let Handle::Pooled(Some(c), _) = &self.conn else {
            return Ok(names);
        };
        for owners in scope::owner_sets(cond) {
            let known = c.scopes.borrow().get(owners).or_else(|| {
                self.made
                    .borrow()
                    .iter()
                    .find(|(o, _)| o.as_slice() == owners)
                    .map(|(_, n)| *n)
            });
            if let Some(n) = known {
                names.push(owners, n);
                continue;
            }
            if c.scopes.borrow().len() + self.made.borrow().len() >= scope::MAX_TABLES {
                continue;
            }
            let n = c.scopes.borrow_mut().reserve();
            let table = scope::table_name(n);
            // A table of that name left by a transaction that did not commit is emptied first.
            c.conn
                .execute_batch(&format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {table} (owner_id BLOB PRIMARY KEY) WITHOUT ROWID; \
                     DELETE FROM temp.{table};"
                ))
                .map_err(storage)?;
            let mut st = c
                .conn
                .prepare(&format!(
                    "INSERT OR IGNORE INTO temp.{table} (owner_id) VALUES (?1)"
                ))
                .map_err(storage)?;
            for o in owners {
                st.execute([o.as_bytes().as_slice()]).map_err(storage)?;
            }
            if self.open {
                // The connection's own once this transaction commits.
                self.made.borrow_mut().push((owners.to_vec(), n));
            } else {
                // Made outside a transaction: already committed.
                c.scopes.borrow_mut().add(owners.to_vec(), n);
            }
            names.push(owners, n);
        }
        Ok(names)
    }

    /// Runs a fixed transaction-control statement through the statement cache: no parse per call
    /// (a lookup opens and ends a read snapshot, and each facade write a savepoint).
    fn control(&self, sql: &str) -> rusqlite::Result<()> {
        self.prepare_cached(sql)?.execute([]).map(|_| ())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Handle::Pooled(Some(c), _) = &self.conn {
                // Ends a read snapshot, keeping the owner-set tables it made.
                if self.control("COMMIT").is_ok() {
                    let mut tables = c.scopes.borrow_mut();
                    for (owners, n) in self.made.take() {
                        tables.add(owners, n);
                    }
                } else {
                    let _ = self.control("ROLLBACK");
                }
            } else {
                // Rolls back an uncommitted write.
                let _ = self.control("ROLLBACK");
            }
        }
        if let Handle::Pooled(conn, pool) = &mut self.conn {
            if let Some(c) = conn.take() {
                let mut idle = pool.lock();
                if idle.len() < MAX_READERS {
                    idle.push(c);
                }
            }
        }
    }
}

impl Store for SqliteStore {
    fn backup_to(&self, dest: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
        SqliteStore::backup_to(self, dest, progress)
    }

    fn integrity_check(&self) -> Result<Vec<String>> {
        SqliteStore::integrity_check(self)
    }

    fn read(&self) -> Result<Box<dyn ReadTx + '_>> {
        Ok(Box::new(self.read_tx(true)?))
    }

    /// No `BEGIN`/`COMMIT` around the one call: its statement reads in its own snapshot.
    fn read_once(&self) -> Result<Box<dyn ReadTx + '_>> {
        Ok(Box::new(self.read_tx(false)?))
    }

    fn write(&self) -> Result<Box<dyn WriteTx + '_>> {
        let mut tx = Tx {
            conn: Handle::Locked(lock(&self.writer, self.options.busy_timeout)?),
            open: false,
            inserted: Vec::new(),
            store: Some(self),
            made: RefCell::default(),
        };
        tx.control("BEGIN IMMEDIATE").map_err(storage)?;
        tx.open = true;
        Ok(Box::new(tx))
    }
}

fn decode_record(
    kind: EntityKind,
    tenant: &TenantId,
    row: &Row<'_>,
    custom: &CustomTypes,
    only: Option<&[&str]>,
    currencies: &mut Currencies,
) -> Result<Record> {
    // Borrowed column values: ids and numbers decode without an intermediate allocation.
    let col = |i: usize| row.get_ref(i).map_err(storage);
    let id = |i: usize| -> Result<RecordId> {
        match col(i)? {
            ValueRef::Blob(b) => blob_id(b),
            _ => Err(crate::error::corrupt("id")),
        }
    };
    let int = |i: usize| -> Result<i64> { row.get::<_, i64>(i).map_err(storage) };
    let deleted_at = row.get::<_, Option<i64>>(7).map_err(storage)?;
    let meta = RecordMeta {
        kind,
        id: id(0)?,
        tenant: tenant.clone(),
        owner_id: id(1)?,
        created_at: int_to_ts(int(2)?)?,
        created_by: id(3)?,
        updated_at: int_to_ts(int(4)?)?,
        updated_by: id(5)?,
        version: int(6)?,
        deleted_at: deleted_at.map(int_to_ts).transpose()?,
    };
    let custom = decode_custom(row.get::<_, Option<String>>(8).map_err(storage)?, custom)?;
    let mut fields = Fields::new();
    let mut i = 9;
    for f in &kind.schema().fields {
        if only.is_some_and(|o| !o.contains(&f.name)) {
            continue;
        }
        let v = col(i)?;
        i += 1;
        let ccy = if f.ty == FieldType::Money {
            i += 1;
            Some(col(i - 1)?)
        } else {
            None
        };
        let v = decode_column_ref(&f.ty, v, ccy, currencies)?;
        // Only an empty column is left out: an empty list is kept, as stored.
        if !matches!(v, crm_core::Value::Null) {
            fields.insert(f.name.to_owned(), v);
        }
    }
    Ok(Record {
        meta,
        fields,
        custom,
    })
}

/// Meta and field parameters of a record, in `META (without tenant) + fields` column order, after
/// `first` (the parameters that come before them). Text and ids are borrowed from the record.
fn record_params<'a>(r: &'a Record, first: &[ToSqlOutput<'a>]) -> Result<Vec<ToSqlOutput<'a>>> {
    let m = &r.meta;
    let schema = m.kind.schema();
    let blob = |id: &'a RecordId| ToSqlOutput::Borrowed(ValueRef::Blob(id.as_bytes()));
    let int = |i: i64| ToSqlOutput::Owned(Sql::Integer(i));
    let mut p = Vec::with_capacity(first.len() + 9 + schema.fields.len() + 4);
    p.extend_from_slice(first);
    p.extend([
        blob(&m.id),
        blob(&m.owner_id),
        int(ts_to_int(m.created_at)),
        blob(&m.created_by),
        int(ts_to_int(m.updated_at)),
        blob(&m.updated_by),
        int(m.version),
        ToSqlOutput::Owned(
            m.deleted_at
                .map_or(Sql::Null, |t| Sql::Integer(ts_to_int(t))),
        ),
        ToSqlOutput::Owned(encode_custom(&r.custom)?),
    ]);
    for name in r.fields.keys() {
        if schema.field(name).is_none() {
            return Err(CrmError::validation(
                name.as_str(),
                "unknown_field",
                format!("{} has no such field", m.kind),
            ));
        }
    }
    for f in &schema.fields {
        let v = r.fields.get(f.name).unwrap_or(&crm_core::Value::Null);
        encode_column_into(&f.ty, v, f.name, &mut p)?;
    }
    Ok(p)
}

/// Maps a failed write to a `Conflict` naming the unique field, or a storage error.
fn write_error(kind: EntityKind, e: rusqlite::Error) -> CrmError {
    if let rusqlite::Error::SqliteFailure(err, Some(msg)) = &e {
        if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE {
            let table = kind.table();
            for f in kind.schema().fields.iter().filter(|f| f.unique) {
                if msg.contains(&format!("{table}.{}", f.name)) {
                    let mut c = CrmError::conflict(
                        kind.name(),
                        "unique",
                        format!("another {kind} already has this `{}`", f.name),
                    );
                    c.field = Some(f.name.to_owned());
                    return c;
                }
            }
            return CrmError::conflict(
                kind.name(),
                "unique",
                format!("this {kind} already exists"),
            );
        }
    }
    storage(e)
}

impl ReadTx for Tx<'_> {
    fn get(
        &self,
        kind: EntityKind,
        tenant: &TenantId,
        id: RecordId,
        custom: &CustomTypes,
    ) -> Result<Option<Record>> {
        let mut st = self
            .prepare_cached(compile::get_sql(kind))
            .map_err(storage)?;
        let mut rows = st
            .query(rusqlite::params![tenant.as_str(), id.as_bytes().as_slice()])
            .map_err(storage)?;
        match rows.next().map_err(storage)? {
            Some(row) => Ok(Some(decode_record(
                kind,
                tenant,
                row,
                custom,
                None,
                &mut Currencies::default(),
            )?)),
            None => Ok(None),
        }
    }

    fn query(&self, q: &Query) -> Result<Vec<Record>> {
        let stmt = compile::select(q, &self.scope_names(&q.cond)?)?;
        let mut st = self.prepare_cached(&stmt.sql).map_err(storage)?;
        let mut rows = st
            .query(params_from_iter(stmt.params.iter()))
            .map_err(storage)?;
        let mut out = Vec::new();
        let mut currencies = Currencies::default();
        while let Some(row) = rows.next().map_err(storage)? {
            out.push(decode_record(
                q.kind,
                &q.tenant,
                row,
                &q.custom_types,
                q.fields.as_deref(),
                &mut currencies,
            )?);
        }
        Ok(out)
    }

    fn scan_fields(
        &self,
        q: &Query,
        fields: &[&'static str],
        each: &mut dyn FnMut(RecordId, &[crm_core::Value]) -> Result<()>,
    ) -> Result<()> {
        let stmt = compile::select_fields(q, fields, &self.scope_names(&q.cond)?)?;
        let schema = q.kind.schema();
        let owner = FieldType::Reference {
            to: EntityKind::User,
        };
        let mut types = Vec::with_capacity(fields.len());
        for f in fields {
            if *f == crm_core::backend::OWNER_FIELD {
                types.push(&owner);
                continue;
            }
            // Checked by `select_fields`; kept total here.
            let spec = schema.field(f).ok_or_else(|| {
                CrmError::invalid_query(Some(f), "unknown_field", "no such field")
            })?;
            types.push(&spec.ty);
        }
        let mut st = self.prepare_cached(&stmt.sql).map_err(storage)?;
        let mut rows = st
            .query(params_from_iter(stmt.params.iter()))
            .map_err(storage)?;
        let mut values = Vec::with_capacity(fields.len());
        let mut currencies = Currencies::default();
        while let Some(row) = rows.next().map_err(storage)? {
            let id = match row.get_ref(0).map_err(storage)? {
                ValueRef::Blob(b) => blob_id(b)?,
                _ => return Err(crate::error::corrupt("id")),
            };
            values.clear();
            let mut i = 1;
            for ty in &types {
                let v = row.get_ref(i).map_err(storage)?;
                let ccy = if **ty == FieldType::Money {
                    i += 1;
                    Some(row.get_ref(i).map_err(storage)?)
                } else {
                    None
                };
                i += 1;
                values.push(decode_column_ref(ty, v, ccy, &mut currencies)?);
            }
            each(id, &values)?;
        }
        Ok(())
    }

    fn order_lines(
        &self,
        q: &Query,
        each: &mut dyn FnMut(&crm_core::analytics::LineGroup) -> Result<()>,
    ) -> Result<bool> {
        crate::aggregate::order_lines(self, q, &self.scope_names(&q.cond)?, each).map(|()| true)
    }

    fn count(&self, q: &Query) -> Result<u64> {
        let stmt = compile::count(q, &self.scope_names(&q.cond)?)?;
        let mut st = self.prepare_cached(&stmt.sql).map_err(storage)?;
        st.query_row(params_from_iter(stmt.params.iter()), |r| r.get::<_, u64>(0))
            .map_err(storage)
    }

    fn audit_head(&self, tenant: &TenantId) -> Result<Option<(u64, String)>> {
        audit::head(self, tenant)
    }

    fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        audit::read(self, q)
    }

    fn pending_events(&self, tenant: &TenantId, after_seq: u64, limit: u32) -> Result<Vec<Event>> {
        audit::pending_events(self, tenant, after_seq, limit)
    }

    fn tenants(&self) -> Result<Vec<TenantId>> {
        let mut st = self
            .prepare_cached(
                "SELECT tenant_id FROM users UNION SELECT tenant_id FROM audit_log \
                 UNION SELECT tenant_id FROM outbox ORDER BY 1",
            )
            .map_err(storage)?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(storage)?;
        let mut out = Vec::new();
        for t in rows {
            out.push(TenantId::new(t.map_err(storage)?)?);
        }
        Ok(out)
    }
}

impl WriteTx for Tx<'_> {
    fn insert(&mut self, record: &Record) -> Result<()> {
        let kind = record.meta.kind;
        match self.inserted.iter_mut().find(|(t, _)| *t == kind.table()) {
            Some((_, n)) => *n += 1,
            None => self.inserted.push((kind.table(), 1)),
        }
        let tenant = ToSqlOutput::Borrowed(ValueRef::Text(record.meta.tenant.as_str().as_bytes()));
        let params = record_params(record, &[tenant])?;
        let mut st = self
            .prepare_cached(compile::insert_sql(kind))
            .map_err(storage)?;
        st.execute(params_from_iter(params.iter()))
            .map_err(|e| write_error(kind, e))?;
        Ok(())
    }

    fn update(&mut self, record: &Record, expected_version: i64) -> Result<()> {
        let kind = record.meta.kind;
        let mut all = record_params(record, &[])?;
        let sql = compile::update_sql(kind);
        // id is not rewritten: drop the first meta parameter.
        all.remove(0);
        all.push(ToSqlOutput::Borrowed(ValueRef::Text(
            record.meta.tenant.as_str().as_bytes(),
        )));
        all.push(ToSqlOutput::Borrowed(ValueRef::Blob(
            record.meta.id.as_bytes(),
        )));
        all.push(ToSqlOutput::Owned(Sql::Integer(expected_version)));
        let n = {
            let mut st = self.prepare_cached(sql).map_err(storage)?;
            st.execute(params_from_iter(all.iter()))
                .map_err(|e| write_error(kind, e))?
        };
        if n == 1 {
            return Ok(());
        }
        let exists: bool = self
            .prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE tenant_id = ? AND id = ?)",
                kind.table()
            ))
            .and_then(|mut st| {
                st.query_row(
                    rusqlite::params![
                        record.meta.tenant.as_str(),
                        record.meta.id.as_bytes().as_slice()
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(storage)?;
        if exists {
            Err(CrmError::conflict(
                kind.name(),
                "stale_version",
                format!(
                    "{kind} `{}` changed since version {expected_version} was read",
                    record.meta.id
                ),
            ))
        } else {
            Err(CrmError::not_found(kind.name(), record.meta.id))
        }
    }

    fn purge(&mut self, kind: EntityKind, tenant: &TenantId, id: RecordId) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE tenant_id = ? AND id = ?",
            kind.table()
        );
        let mut st = self.prepare_cached(&sql).map_err(storage)?;
        let n = st
            .execute(rusqlite::params![tenant.as_str(), id.as_bytes().as_slice()])
            .map_err(storage)?;
        if n == 0 {
            return Err(CrmError::not_found(kind.name(), id));
        }
        Ok(())
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> Result<()> {
        audit::append(self, entry)
    }

    fn append_event(&mut self, event: &NewEvent) -> Result<u64> {
        audit::append_event(self, event)
    }

    fn ack_events(&mut self, tenant: &TenantId, seqs: &[u64]) -> Result<u64> {
        audit::ack_events(self, tenant, seqs)
    }

    fn index_custom_field(&mut self, kind: EntityKind, key: &str, _ty: &FieldType) -> Result<()> {
        if !valid_key(key) {
            return Err(CrmError::validation(
                "key",
                "custom_key",
                "a custom field key has the form [a-z][a-z0-9_]*",
            ));
        }
        let table = kind.table();
        let name = format!("cx_{table}_{key}");
        let exists: bool = self
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?)",
                [&name],
                |r| r.get(0),
            )
            .map_err(storage)?;
        if exists {
            return Ok(());
        }
        // Statistics for the new index, so the planner knows it narrows a tenant down.
        self.execute_batch(&format!(
            "CREATE INDEX {name} ON {table} (tenant_id, json_extract(custom, '$.{key}')); \
             ANALYZE {name};"
        ))
        .map_err(storage)
    }

    fn savepoint(&mut self) -> Result<()> {
        self.control("SAVEPOINT op").map_err(storage)
    }

    fn release_savepoint(&mut self) -> Result<()> {
        self.control("RELEASE op").map_err(storage)
    }

    fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.control("ROLLBACK TO op").map_err(storage)?;
        self.control("RELEASE op").map_err(storage)
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.control("COMMIT").map_err(storage)?;
        self.open = false;
        // Once enough rows have arrived, give the planner real statistics (bounded work with
        // `analysis_limit`): the seeded ones assume large, selective indexes and would, for example,
        // pick the owner index plus a sort for a permission-scoped first page instead of walking the
        // primary key in order.
        let Some(store) = self.store else {
            return Ok(());
        };
        let mut due = Vec::new();
        {
            let mut pending = lock(&store.unanalyzed, store.options.busy_timeout)?;
            for (table, n) in std::mem::take(&mut self.inserted) {
                match pending.iter_mut().find(|(t, _, _)| *t == table) {
                    Some((_, total, _)) => *total += n,
                    None => pending.push((table, n, ANALYZE_AFTER_ROWS)),
                }
            }
            for (table, total, threshold) in pending.iter_mut() {
                if *total >= *threshold {
                    due.push(*table);
                    *total = 0;
                }
            }
        }
        if !due.is_empty() {
            for table in due {
                self.execute_batch(&format!("PRAGMA analysis_limit = 1000; ANALYZE {table};"))
                    .map_err(storage)?;
                // ANALYZE counts the whole table: refresh again when it has doubled, so loading N
                // rows costs O(N) in statistics work overall, not O(N²).
                let rows = analyzed_rows(&self, table)?;
                let mut pending = lock(&store.unanalyzed, store.options.busy_timeout)?;
                if let Some((_, _, threshold)) = pending.iter_mut().find(|(t, _, _)| *t == table) {
                    *threshold = rows.max(ANALYZE_AFTER_ROWS);
                }
            }
            // Open connections keep the statistics they loaded: let idle readers be reopened.
            if let Some(r) = &store.readers {
                lock(&r.idle, store.options.busy_timeout)?.clear();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_core::conformance::{new_id, record, tenant};

    /// `PRAGMA synchronous` of the writer and of a reader connection (0 off, 1 normal, 2 full).
    fn synchronous(store: &SqliteStore) -> (i64, i64) {
        let pragma = |c: &Connection| -> i64 {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
        };
        let w = pragma(&store.writer.lock());
        let tx = store.read_tx(false).unwrap();
        (w, pragma(&tx))
    }

    #[test]
    fn commits_are_durable_by_default_and_normal_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("full.db")).unwrap();
        assert_eq!(store.options().durability, Durability::Full);
        assert_eq!(synchronous(&store), (2, 2), "synchronous=FULL everywhere");
        let mode: String = store
            .writer
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");

        let normal = SqliteStore::open_with(
            dir.path().join("normal.db"),
            OpenOptions {
                durability: Durability::Normal,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            synchronous(&normal),
            (1, 1),
            "synchronous=NORMAL everywhere"
        );
        // The choice is per handle, not stored in the file.
        drop(normal);
        let reopened = SqliteStore::open(dir.path().join("normal.db")).unwrap();
        assert_eq!(synchronous(&reopened), (2, 2));
    }

    #[test]
    fn a_full_database_fails_with_rule_disk_full_and_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("small.db")).unwrap();
        // A size limit a few pages above what the file holds: SQLite answers SQLITE_FULL, as on a
        // full disk, with no special file system.
        let pages: i64 = store
            .writer
            .lock()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store
            .writer
            .lock()
            .query_row(&format!("PRAGMA max_page_count = {}", pages + 4), [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap();
        let t = tenant("full");
        let owner = new_id();
        let big = "x".repeat(3000);
        let mut failed = None;
        for i in 0..200 {
            let mut tx = store.write().unwrap();
            let r = tx
                .insert(&record(
                    EntityKind::Account,
                    &t,
                    owner,
                    crm_core::fields! { "name" => format!("{i} {big}") },
                ))
                .and_then(|()| tx.commit());
            if let Err(e) = r {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("the size limit was reached");
        assert_eq!(e.kind, crm_core::ErrorKind::Storage);
        assert_eq!(e.rule.as_deref(), Some("disk_full"), "{e}");
        assert!(!e.is_retryable());
        // Space again: the failed write left nothing half-done.
        store
            .writer
            .lock()
            .query_row("PRAGMA max_page_count = 1000000", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap();
        let mut tx = store.write().unwrap();
        tx.insert(&record(
            EntityKind::Account,
            &t,
            owner,
            crm_core::fields! { "name" => "after" },
        ))
        .unwrap();
        tx.commit().unwrap();
        assert!(store.integrity_check().unwrap().is_empty());
    }
}
