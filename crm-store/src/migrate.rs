//! Numbered, forward-only migrations, recorded in `PRAGMA user_version`.

use crm_core::{CrmError, Result};
use rusqlite::Connection;

use crate::codec::storage;

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

/// The version recorded in the database.
pub(crate) fn version(conn: &Connection) -> Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))
        .map_err(storage)
}

fn newer(found: u32) -> CrmError {
    let mut e = CrmError::storage(format!(
        "the database has schema version {found}, newer than this library knows ({}); upgrade the library",
        latest()
    ));
    e.rule = Some("newer_schema".to_owned());
    e
}

/// Fails with rule `newer_schema` when the database is newer than this code. Writes nothing.
pub(crate) fn check(conn: &Connection) -> Result<()> {
    let found = version(conn)?;
    if found > latest() {
        return Err(newer(found));
    }
    Ok(())
}

/// Applies every missing migration, each in its own transaction. Returns how many were applied.
pub(crate) fn apply(conn: &Connection) -> Result<u32> {
    let mut applied = 0;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target = u32::try_from(i + 1).unwrap_or(u32::MAX);
        conn.execute_batch("BEGIN IMMEDIATE").map_err(storage)?;
        let step = (|| {
            let current = version(conn)?;
            if current > latest() {
                return Err(newer(current));
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
