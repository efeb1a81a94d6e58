//! The one place storage failures become [`CrmError`]s: every `Storage` error of this crate
//! carries a rule, so a host can act on it without reading messages.
//!
//! | rule | meaning | what the host does |
//! |---|---|---|
//! | `busy` | another write held the database longer than the busy timeout (this handle, another connection or another process) | retry the call ([`CrmError::is_retryable`]) |
//! | `disk_full` | the disk, or the database's size limit, is full | free space, then retry |
//! | `read_only` | the file (or its directory, or the connection) is read-only | open it writable |
//! | `corrupt` | the file is not an SQLite database, is damaged, or holds values this library never writes | restore a backup |
//! | `newer_schema` | written by a newer version of this library | upgrade the library |
//! | `not_a_backup` | an empty file, or an SQLite file without this library's schema, offered as a backup | pick the right file |
//! | `invalid_path` | an empty path, a directory, or another path that cannot name a database file | fix the path |
//! | `io` | the operating system failed to read, write, lock or open the file | check the disk and permissions |
//! | `constraint` | a database constraint other than a unique field failed (a library bug) | report it |
//! | `too_big` | a value or statement beyond SQLite's limits | send less at once |
//! | `out_of_memory` | SQLite could not allocate memory | retry with more memory |
//! | `interrupted` | the statement was interrupted | retry |
//! | `sqlite` | any other SQLite failure | report it |
//!
//! Messages name tables, columns and constraints (SQLite's own wording), never bound values or paths.

use crm_core::CrmError;

/// Another write held the database longer than the busy timeout.
pub(crate) const BUSY: &str = "busy";
/// The disk or the database's size limit is full.
pub(crate) const DISK_FULL: &str = "disk_full";
/// The file or the connection is read-only.
pub(crate) const READ_ONLY: &str = "read_only";
/// The file is damaged or not an SQLite database.
pub(crate) const CORRUPT: &str = "corrupt";
/// Written by a newer version of this library.
pub(crate) const NEWER_SCHEMA: &str = "newer_schema";
/// Not a backup of this library's database.
pub(crate) const NOT_A_BACKUP: &str = "not_a_backup";
/// The path cannot name a database file.
pub(crate) const INVALID_PATH: &str = "invalid_path";
/// The operating system failed.
pub(crate) const IO: &str = "io";

/// A `Storage` error of `rule`.
pub(crate) fn failure(rule: &str, message: impl Into<String>) -> CrmError {
    CrmError::storage(message).with_rule(rule)
}

/// The one busy error, whatever holds the lock: the same message and rule whether a write on this
/// handle or another connection (or process) kept it past the busy timeout.
pub(crate) fn busy() -> CrmError {
    failure(
        BUSY,
        "the database is busy: another write held it longer than the busy timeout; retry",
    )
}

/// Stored data this library never writes (`what` says which, without the value).
pub(crate) fn corrupt(what: &str) -> CrmError {
    failure(CORRUPT, format!("stored {what} is malformed"))
}

/// A path that cannot name a database file; `problem` says why, without the path itself (paths
/// carry user names).
pub(crate) fn invalid_path(problem: &str) -> CrmError {
    failure(INVALID_PATH, problem)
}

/// Maps an SQLite failure to a `Storage` error with its rule.
pub(crate) fn storage(e: rusqlite::Error) -> CrmError {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let detail = match msg {
                Some(m) => format!("sqlite error: {f}: {m}"),
                None => format!("sqlite error: {f}"),
            };
            let (rule, lead) = match f.code {
                C::DatabaseBusy | C::DatabaseLocked => return busy(),
                C::DiskFull => (DISK_FULL, "the disk or the database's size limit is full"),
                C::ReadOnly => (READ_ONLY, "the database is read-only"),
                C::DatabaseCorrupt => (CORRUPT, "the database file is damaged"),
                C::NotADatabase => (CORRUPT, "the file is not an SQLite database"),
                C::SystemIoFailure
                | C::CannotOpen
                | C::FileLockingProtocolFailed
                | C::NoLargeFileSupport
                | C::PermissionDenied => (IO, "the database file could not be used"),
                C::ConstraintViolation => ("constraint", "a database constraint failed"),
                C::TooBig => ("too_big", "a value or statement is too large"),
                C::OutOfMemory => ("out_of_memory", "out of memory"),
                C::OperationInterrupted => ("interrupted", "the statement was interrupted"),
                _ => return failure("sqlite", detail),
            };
            failure(rule, format!("{lead} ({detail})"))
        }
        rusqlite::Error::QueryReturnedNoRows => failure("sqlite", "sqlite error: no row"),
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => failure(
            CORRUPT,
            "a stored value has a type or range this library never writes",
        ),
        rusqlite::Error::InvalidPath(_) => invalid_path("the path is not valid unicode"),
        _ => failure("sqlite", "sqlite error"),
    }
}

/// Maps a file-system failure while handling `what` (no path in the message).
pub(crate) fn io(what: &str, e: &std::io::Error) -> CrmError {
    use std::io::ErrorKind as K;
    let rule = match e.kind() {
        K::StorageFull | K::FileTooLarge => DISK_FULL,
        K::ReadOnlyFilesystem => READ_ONLY,
        _ => IO,
    };
    failure(rule, format!("{what}: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn code(c: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(c), None)
    }

    #[test]
    fn every_sqlite_code_maps_to_its_rule() {
        for (c, rule) in [
            (ffi::SQLITE_BUSY, BUSY),
            (ffi::SQLITE_BUSY_SNAPSHOT, BUSY),
            (ffi::SQLITE_LOCKED, BUSY),
            (ffi::SQLITE_FULL, DISK_FULL),
            (ffi::SQLITE_READONLY, READ_ONLY),
            (ffi::SQLITE_READONLY_DBMOVED, READ_ONLY),
            (ffi::SQLITE_CORRUPT, CORRUPT),
            (ffi::SQLITE_NOTADB, CORRUPT),
            (ffi::SQLITE_IOERR, IO),
            (ffi::SQLITE_IOERR_WRITE, IO),
            (ffi::SQLITE_CANTOPEN, IO),
            (ffi::SQLITE_CONSTRAINT_FOREIGNKEY, "constraint"),
            (ffi::SQLITE_TOOBIG, "too_big"),
            (ffi::SQLITE_NOMEM, "out_of_memory"),
            (ffi::SQLITE_INTERRUPT, "interrupted"),
            (ffi::SQLITE_ERROR, "sqlite"),
        ] {
            let e = storage(code(c));
            assert_eq!(e.kind, crm_core::ErrorKind::Storage, "{c}");
            assert_eq!(e.rule.as_deref(), Some(rule), "{c}: {e}");
            assert_eq!(e.is_retryable(), rule == BUSY, "{c}");
        }
        assert_eq!(storage(code(ffi::SQLITE_BUSY)), busy());
        let e = storage(rusqlite::Error::IntegralValueOutOfRange(0, -1));
        assert_eq!(e.rule.as_deref(), Some(CORRUPT));
        assert!(!e.message.contains("unexpected type"), "{e}");
        assert_eq!(
            storage(rusqlite::Error::QueryReturnedNoRows)
                .rule
                .as_deref(),
            Some("sqlite")
        );
    }

    #[test]
    fn file_system_failures_carry_a_rule() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(io("x", &full).rule.as_deref(), Some(DISK_FULL));
        let ro = std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem);
        assert_eq!(io("x", &ro).rule.as_deref(), Some(READ_ONLY));
        let other = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(io("x", &other).rule.as_deref(), Some(IO));
    }
}
