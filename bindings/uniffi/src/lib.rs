//! UniFFI bindings of the CRM library for Kotlin/Java, Swift and Python.
//!
//! Thin by design: every exported call converts its arguments, forwards to the core — tenant work to
//! the `crm_core::Session` a [`Session`] wraps, host operations to the `crm_core::Crm` a [`CrmHandle`]
//! holds — and converts the answer back. Core types are called `CoreX` inside this crate. No floating
//! point crosses the boundary but the cross-sell ratios (decimals and money amounts are strings,
//! instants UTC epoch microseconds, ids strings). A Rust panic never reaches the host: it becomes
//! `CrmError::Internal` with rule `panic`. See `bindings/kotlin/README.md` for the host-side guide.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented
)]
#![warn(missing_docs)]
// The core error is large by design (kind plus five optional details) and crosses the FFI by value.
#![allow(clippy::result_large_err)]

mod analytics;
mod error;
mod filter;
mod maintenance;
mod process;
mod session;
mod transaction;
mod types;

pub use analytics::{
    ErpFactsProvider, FfiActivityCount, FfiCrossSell, FfiErpFacts, FfiForecastRow, FfiKpi,
    FfiLifecycle, FfiMergeOutcome, FfiMoney, FfiMovedRef, FfiOverdueInvoice, FfiProfitRow,
    FfiRfmRow, FfiScreenPop,
};
pub use error::CrmError;
pub use filter::*;
pub use maintenance::{FfiSegmentDiff, FfiTransferSummary};
pub use process::{
    FfiConversion, FfiConvertLead, FfiEmailMessage, FfiQuoteAcceptance, FfiStageEntry, Mailer,
};
pub use session::{CrmHandle, ExportSink, Session};
pub use transaction::Transaction;
pub use types::{
    FfiAccessReview, FfiAuditVerification, FfiDecision, FfiEvent, FfiFieldChange, FfiGrantee,
    FfiHistoryEntry, FfiHistoryPage, FfiListRequest, FfiOrigin, FfiPage, FfiRecord,
    FfiRoleFieldAccess, FfiValue,
};

uniffi::setup_scaffolding!();
