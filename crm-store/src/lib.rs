//! SQLite storage for crm-core.
