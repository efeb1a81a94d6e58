#![doc = include_str!("../README.md")]

pub mod access;
pub mod analytics;
mod audit;
pub mod backend;
mod clock;
mod crm;
mod custom_field;
mod error;
mod events;
mod id;
mod money;
pub mod pipeline;
mod query;
mod record;
mod schema;
pub mod segment;
mod store;
mod validate;
mod value;

#[cfg(feature = "testing")]
pub mod conformance;

pub use access::{
    Action, Decision, FieldAccess, FieldMode, ObjectRule, OrgSnapshot, Policy, Principal, Scope,
};
pub use audit::{
    diff, verify_chain, AuditEntry, AuditVerification, FieldChange, Operation, Origin,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use crm::{
    AccessAdmin, AccessReview, Analytics, Audit, Context, Crm, Grantee, HistoryEntry, HistoryPage,
    MergeOutcome, NewRecord, Outbox, OwnedTransaction, Records, Sales, Segments, Service, Session,
    Transaction, TransferSummary,
};
pub use crm::{
    ActivityCount, CustomerValue, Funnel, FunnelOptions, FunnelStage, Kpi, ValueOptions,
};
pub use crm::{Conversion, ConvertLead, EmailMessage, Mailer, StageEntry};
pub use crm::{
    CrossSell, ErpFacts, ErpFactsRow, ForecastRow, OverdueInvoice, ProfitDimension, ProfitOptions,
    ProfitRow, RfmOptions, RfmRow, ScreenPop, SegmentDiff,
};
pub use custom_field::CustomFieldDef;
pub use error::{CrmError, ErrorKind, Result};
pub use events::{Event, NewEvent};
pub use id::{RecordId, TenantId};
pub use money::{Currency, Money, RateTable};
pub use query::{
    Filter, ListRequest, Op, Page, Sort, MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_FILTER_TEXT,
    MAX_FILTER_VALUES,
};
pub use record::{Record, RecordMeta};
pub use schema::{EntityKind, FieldSpec, Schema};
pub use validate::{line_totals, PhoneRules, Totals, MAX_JSON_DEPTH};
pub use value::{FieldType, Fields, LineItem, Value};

pub use chrono;
pub use rust_decimal::Decimal;
