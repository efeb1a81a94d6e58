//! Numbered, forward-only migrations, recorded in `PRAGMA user_version`.

use crm_core::{CrmError, Result};
use rusqlite::Connection;

use crate::error::{failure, storage, CORRUPT, NEWER_SCHEMA, NOT_A_BACKUP};

/// The migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_orders_by_date.sql"),
    include_str!("../migrations/0003_audit_rowid.sql"),
    include_str!("../migrations/0004_survey_type.sql"),
    include_str!("../migrations/0005_accounts_order_stats.sql"),
    include_str!("../migrations/0006_orders_period_covering.sql"),
    include_str!("../migrations/0007_order_lines.sql"),
];

/// The schema version this code writes.
pub(crate) fn latest() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Tables every version of the schema has: a database without them is not this library's.
const CORE_TABLES: &[&str] = &["accounts", "users", "audit_log", "outbox"];

/// The version recorded in the database. A negative one (SQLite keeps a signed 32-bit number) was
/// never written by this library: `corrupt`, with the number, not a type error.
pub(crate) fn version(conn: &Connection) -> Result<u32> {
    let found = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(storage)?;
    u32::try_from(found).map_err(|_| {
        failure(
            CORRUPT,
            format!(
                "the database records schema version {found}, which this library never writes: \
                 the file is damaged or belongs to another application"
            ),
        )
    })
}

/// Whether the database has this library's tables.
fn has_schema(conn: &Connection) -> Result<bool> {
    let mut st = conn
        .prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1")
        .map_err(storage)?;
    for t in CORE_TABLES {
        if st.query_row([t], |r| r.get::<_, i64>(0)).map_err(storage)? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

fn newer(found: u32) -> CrmError {
    failure(
        NEWER_SCHEMA,
        format!(
            "the database has schema version {found}, newer than this library knows ({}); upgrade the library",
            latest()
        ),
    )
}

/// The error for a version beyond this library's: `newer_schema` when the file has this
/// library's tables, else `corrupt` (another application's database, with its own numbering).
fn beyond(conn: &Connection, found: u32) -> CrmError {
    match has_schema(conn) {
        Ok(true) => newer(found),
        Ok(false) => failure(
            CORRUPT,
            format!(
                "the database records schema version {found} but has none of this library's \
                 tables: it belongs to another application"
            ),
        ),
        Err(e) => e,
    }
}

/// Fails with rule `newer_schema` when the database is newer than this code (`corrupt` when its
/// version is negative or another application's). Writes nothing.
pub(crate) fn check(conn: &Connection) -> Result<()> {
    let found = version(conn)?;
    if found > latest() {
        return Err(beyond(conn, found));
    }
    Ok(())
}

/// Checks that a file offered as a backup holds this library's schema, at a version this library
/// reads: `not_a_backup` for an SQLite file without it (an empty database included), `corrupt` or
/// `newer_schema` as [`check`]. Writes nothing.
pub(crate) fn check_backup(conn: &Connection) -> Result<u32> {
    let found = version(conn)?;
    if found > latest() {
        return Err(beyond(conn, found));
    }
    if found == 0 || !has_schema(conn)? {
        return Err(failure(
            NOT_A_BACKUP,
            "the file is an SQLite database without this library's schema: not a backup",
        ));
    }
    Ok(found)
}

/// Applies every missing migration, each in its own transaction. Returns how many were applied.
pub(crate) fn apply(conn: &Connection) -> Result<u32> {
    // Up to date (every open after the first): nothing to write, so no write lock is taken and a
    // read-only file or a busy database opens.
    if version(conn)? == latest() {
        return Ok(0);
    }
    let mut applied = 0;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target = u32::try_from(i + 1).unwrap_or(u32::MAX);
        conn.execute_batch("BEGIN IMMEDIATE").map_err(storage)?;
        let step = (|| {
            let current = version(conn)?;
            if current > latest() {
                return Err(beyond(conn, current));
            }
            if current >= target {
                return Ok(false);
            }
            conn.execute_batch(sql).map_err(storage)?;
            conn.execute_batch(&format!("PRAGMA user_version = {target}"))
                .map_err(storage)?;
            Ok(true)
        })();
        match step {
            Ok(did) => {
                conn.execute_batch("COMMIT").map_err(storage)?;
                applied += u32::from(did);
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(applied)
}
