//! Online backups: a consistent copy of a live database while writers keep writing, restore into a
//! new file, and integrity checks.

use std::path::Path;

use crm_core::{CrmError, Result};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::codec::storage;
use crate::migrate;

/// Pages copied per step: small enough to report progress, large enough to be quick.
const PAGES_PER_STEP: i32 = 256;

/// Copies `src` into a new database file at `dest`, reporting `(pages done, pages total)`.
///
/// The copy is taken inside one read transaction on `src`, so it is the database as of one instant:
/// writers on other connections keep writing (WAL) and their later commits are simply not in it.
pub(crate) fn copy(
    src: &Connection,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    if dest.exists() {
        return Err(CrmError::conflict(
            "backup",
            "destination_exists",
            "the backup destination already exists",
        ));
    }
    let mut out = Connection::open(dest).map_err(storage)?;
    // Pin one snapshot of the source for the whole copy.
    src.execute_batch("BEGIN DEFERRED; SELECT count(*) FROM sqlite_master;")
        .map_err(storage)?;
    let result = (|| {
        let backup = Backup::new(src, &mut out).map_err(storage)?;
        loop {
            let step = backup.step(PAGES_PER_STEP).map_err(storage)?;
            let p = backup.progress();
            let total = u64::try_from(p.pagecount).unwrap_or(0);
            let left = u64::try_from(p.remaining).unwrap_or(0);
            progress(total.saturating_sub(left), total);
            match step {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                _ => {}
            }
        }
        Ok(())
    })();
    let _ = src.execute_batch("COMMIT;");
    result?;
    drop(out);
    let problems = check_file(dest)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CrmError::storage(format!(
            "the backup failed its integrity check: {}",
            problems.join("; ")
        )))
    }
}

/// `PRAGMA integrity_check` (and the foreign-key check) of an open connection: empty when sound.
pub(crate) fn check(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare("PRAGMA integrity_check").map_err(storage)?;
    let mut problems: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?
        .into_iter()
        .filter(|l| l != "ok")
        .collect();
    let mut fk = conn.prepare("PRAGMA foreign_key_check").map_err(storage)?;
    let n = fk.query_map([], |_| Ok(())).map_err(storage)?.count();
    if n > 0 {
        problems.push(format!("{n} foreign key violation(s)"));
    }
    Ok(problems)
}

/// Integrity check of a database file, opened read-only.
pub(crate) fn check_file(path: &Path) -> Result<Vec<String>> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(storage)?;
    migrate::check(&conn)?;
    check(&conn)
}
