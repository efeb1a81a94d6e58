//! SQLite storage for crm-core: implements [`crm_core::backend::Store`] on one SQLite database.
//!
//! Queries are compiled to SQL with bound parameters only; every statement is scoped by tenant; the
//! schema is created and upgraded by numbered migrations (`migrations/*.sql`), and a database written
//! by a newer library version is refused.

// `CrmError` is crm-core's one public error; its size is not this crate's choice.
#![allow(clippy::result_large_err)]

mod aggregate;
mod audit;
mod backup;
mod codec;
mod compile;
mod error;
mod migrate;
mod scope;
mod store;

pub use store::{Durability, OpenOptions, SqliteStore};
