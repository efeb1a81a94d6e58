//! Online backups: a consistent copy of a live database while writers keep writing, restore into a
//! new file, and integrity checks.
//!
//! A backup cannot lie: the copy is written under a temporary name beside the destination
//! (`.<name>.partial-<pid>-<n>`), checked — SQLite's integrity and foreign-key checks, and this
//! library's schema present — made durable, and only then given the destination's name in one
//! atomic step. A failed, refused or interrupted backup leaves no file at the destination (a
//! process killed mid-copy may leave its `.partial-` file, never a file under the real name).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crm_core::{CrmError, Result};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::error::{failure, invalid_path, io, storage, CORRUPT, IO, NOT_A_BACKUP};
use crate::migrate;

/// Pages copied per step: small enough to report progress, large enough to be quick.
const PAGES_PER_STEP: i32 = 256;

/// Copies `src` into a new database file at `dest`, reporting `(pages done, pages total)`.
///
/// The copy is taken inside one read transaction on `src`, so it is the database as of one instant:
/// writers on other connections keep writing (WAL) and their later commits are simply not in it.
/// The file appears at `dest` only once complete and checked.
pub(crate) fn copy(
    src: &Connection,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    if dest.as_os_str().is_empty() || dest.file_name().is_none() {
        return Err(invalid_path("the backup destination names no file"));
    }
    if dest.exists() {
        return Err(destination_exists());
    }
    let partial = Partial::create(dest)?;
    {
        let mut out = Connection::open_with_flags(
            &partial.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(storage)?;
        // Pin one snapshot of the source for the whole copy.
        src.execute_batch("BEGIN DEFERRED; SELECT count(*) FROM sqlite_master;")
            .map_err(storage)?;
        let result = pages(src, &mut out, progress);
        let _ = src.execute_batch("COMMIT;");
        result?;
        out.close().map_err(|(_, e)| storage(e))?;
    }
    seal(&partial.path)?;
    partial.publish(dest)
}

/// Runs the page copy from `src` to `out` to the end.
fn pages(src: &Connection, out: &mut Connection, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
    let backup = Backup::new(src, out).map_err(storage)?;
    loop {
        let step = backup.step(PAGES_PER_STEP).map_err(storage)?;
        let p = backup.progress();
        let total = u64::try_from(p.pagecount).unwrap_or(0);
        let left = u64::try_from(p.remaining).unwrap_or(0);
        progress(total.saturating_sub(left), total);
        match step {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            _ => {}
        }
    }
}

/// Checks a finished copy and makes it a self-contained file: one file (rollback journal mode, no
/// `-wal` beside it), this library's schema present, integrity and foreign keys sound, on disk.
fn seal(path: &Path) -> Result<()> {
    {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(storage)?;
        conn.query_row("PRAGMA journal_mode = DELETE", [], |r| {
            r.get::<_, String>(0)
        })
        .map_err(storage)?;
        migrate::check_backup(&conn)?;
        let problems = check(&conn)?;
        if !problems.is_empty() {
            return Err(failure(
                CORRUPT,
                format!(
                    "the backup failed its integrity check: {}",
                    problems.join("; ")
                ),
            ));
        }
        conn.close().map_err(|(_, e)| storage(e))?;
    }
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("cannot flush the backup to disk", &e))
}

fn destination_exists() -> CrmError {
    CrmError::conflict(
        "backup",
        "destination_exists",
        "the backup destination already exists",
    )
}

/// A copy in progress under a temporary name beside its destination; removed (with any journal
/// SQLite left beside it) unless published, also when the copy fails or panics.
struct Partial {
    path: PathBuf,
    published: bool,
}

impl Partial {
    /// Reserves a fresh temporary name beside `dest` (created empty, never an existing file).
    fn create(dest: &Path) -> Result<Partial> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dest.with_file_name(format!(".{name}.partial-{}-{n}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => {
                    return Ok(Partial {
                        path,
                        published: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(io(
                        "cannot create the backup's temporary file beside the destination",
                        &e,
                    ))
                }
            }
        }
        Err(failure(
            IO,
            "cannot find a free temporary name beside the backup destination",
        ))
    }

    /// Gives the checked copy the destination's name in one step, never replacing a file that
    /// appeared there meanwhile, and makes the new name durable.
    fn publish(mut self, dest: &Path) -> Result<()> {
        match std::fs::hard_link(&self.path, dest) {
            // A second name, made atomically and only if `dest` is free; the temporary one goes.
            Ok(()) => {
                self.published = true;
                let _ = std::fs::remove_file(&self.path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(destination_exists())
            }
            // A file system without hard links: an atomic rename (checked free just before).
            Err(_) => {
                if dest.exists() {
                    return Err(destination_exists());
                }
                std::fs::rename(&self.path, dest)
                    .map_err(|e| io("cannot move the backup to its destination", &e))?;
                self.published = true;
            }
        }
        // The directory entry itself, so the name survives a power loss (best effort: not every
        // platform can open a directory).
        if let Some(dir) = dest.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        let mut leftovers = vec![
            sibling(&self.path, "-journal"),
            sibling(&self.path, "-wal"),
            sibling(&self.path, "-shm"),
        ];
        if !self.published {
            leftovers.push(self.path.clone());
        }
        for p in leftovers {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `path` with `suffix` appended to its file name (SQLite's journal naming).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
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

/// Opens a file offered as a backup, read-only, after refusing what cannot be one: a missing file
/// or a directory, an empty file (`not_a_backup`: SQLite would take it for an empty database), a
/// file that is not SQLite (`corrupt`, by its header: SQLite takes a short file for an empty
/// database), an SQLite file without this library's schema
/// (`not_a_backup`), one with a negative or another application's version (`corrupt`) or a newer
/// one (`newer_schema`).
pub(crate) fn open_backup(path: &Path) -> Result<Connection> {
    if path.as_os_str().is_empty() {
        return Err(invalid_path("the backup path is empty"));
    }
    let meta = std::fs::metadata(path).map_err(|e| io("cannot read the backup file", &e))?;
    if meta.is_dir() {
        return Err(invalid_path("the backup path is a directory, not a file"));
    }
    if meta.len() == 0 {
        return Err(failure(
            NOT_A_BACKUP,
            "the backup file is empty (0 bytes): not a backup",
        ));
    }
    check_header(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(storage)?;
    migrate::check_backup(&conn)?;
    Ok(conn)
}

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Refuses an existing, non-empty file that does not start with SQLite's header (`corrupt`):
/// SQLite itself takes a file shorter than its first page for an empty database. A missing or
/// empty file, or one that cannot be read here (left to SQLite to report), passes.
pub(crate) fn check_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut head = Vec::with_capacity(16);
    if f.by_ref().take(16).read_to_end(&mut head).is_err() || head.is_empty() {
        return Ok(());
    }
    if head.as_slice() == SQLITE_HEADER {
        Ok(())
    } else {
        Err(failure(CORRUPT, "the file is not an SQLite database"))
    }
}

/// Integrity check of a database file offered as a backup, opened read-only: refuses what cannot
/// be a backup (see [`open_backup`]), else the problems found, empty when sound.
pub(crate) fn check_file(path: &Path) -> Result<Vec<String>> {
    let conn = open_backup(path)?;
    check(&conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn crm_db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        migrate::apply(&conn).unwrap();
        conn
    }

    #[test]
    fn a_copy_is_published_whole_under_its_name_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("copy.db");
        copy(&crm_db(), &dest, &mut |_, _| {}).unwrap();
        assert_eq!(names(dir.path()), ["copy.db"]);
        assert!(check_file(&dest).unwrap().is_empty());
        let conn = Connection::open(&dest).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "a backup is one self-contained file");
    }

    #[test]
    fn a_copy_that_fails_its_check_leaves_no_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("copy.db");
        // A source without the schema: the copy completes, the check refuses it.
        let src = Connection::open_in_memory().unwrap();
        src.execute_batch("CREATE TABLE other (x); INSERT INTO other VALUES (1);")
            .unwrap();
        let e = copy(&src, &dest, &mut |_, _| {}).unwrap_err();
        assert_eq!(e.rule.as_deref(), Some(NOT_A_BACKUP), "{e}");
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[test]
    fn a_copy_interrupted_midway_leaves_no_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("copy.db");
        let src = crm_db();
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            copy(&src, &dest, &mut |_, _| panic!("killed during the copy")).map(|_| ())
        }));
        assert!(crashed.is_err());
        assert!(!dest.exists());
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[test]
    fn a_destination_that_appears_during_the_copy_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("copy.db");
        let src = crm_db();
        let e = copy(&src, &dest, &mut |_, _| {
            let _ = std::fs::write(&dest, b"someone else's");
        })
        .unwrap_err();
        assert_eq!(e.rule.as_deref(), Some("destination_exists"));
        assert_eq!(std::fs::read(&dest).unwrap(), b"someone else's");
        assert_eq!(names(dir.path()), ["copy.db"]);
    }
}
