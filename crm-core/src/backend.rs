//! For storage backend authors: the traits a backend implements and the storage-neutral query it
//! compiles. Application code never needs this module — it reaches data through a
//! [`Session`](crate::Session), and a [`Crm`](crate::Crm) owns its store, so nothing outside the
//! library holds a store the permission rules do not guard.
//!
//! A backend implements [`Store`] (snapshots and the single writer), [`ReadTx`] and [`WriteTx`],
//! compiles every [`Query`] with bound parameters only and adds the tenant predicate to every
//! statement itself. It must pass the conformance suite (`crm_core::conformance`, behind the
//! `testing` feature).

pub use crate::analytics::LineGroup;
pub use crate::query::{Column, Cond, CustomTypes, Keyset, Liveness, MetaColumn, Op, Query};
pub use crate::store::{AuditQuery, ReadTx, Store, WriteTx, OWNER_FIELD};
