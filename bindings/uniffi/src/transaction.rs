//! `Transaction`: several calls that commit together. The core transaction lives on a thread of its
//! own ([`crm_core::OwnedTransaction`]), so the host can keep this object as long as it likes; each
//! method sends it one call and waits for the answer.
//!
//! Kotlin: `session.transaction().use { tx -> …; tx.commit() }` — `close()` (from `use`) frees the
//! object, and a transaction freed without `commit()` rolls back.

use std::collections::HashMap;
use std::sync::Arc;

use crm_core::{
    NewRecord as CoreNewRecord, OwnedTransaction, Result as CoreResult, Session as CoreSession,
    Transaction as CoreTransaction,
};

use crate::error::{guard, CrmError};
use crate::session::{CrmHandle, Session};
use crate::types::{
    core_fields, filter, kind, list_request, record_id, signed, FfiListRequest, FfiPage, FfiRecord,
    FfiValue,
};

/// Several writes and reads of one user that commit together or not at all. Open it with
/// `Session.transaction()`; end it with `commit()` or `rollback()` (freeing it without either rolls
/// back). While it is open the database's other writers wait for it. Once ended, every call raises
/// `InvalidTransition` with rule `transaction_ended`.
#[derive(Debug, uniffi::Object)]
pub struct Transaction {
    inner: OwnedTransaction,
    /// The session the transaction was opened for (who acts).
    session: CoreSession,
}

impl Transaction {
    pub(crate) fn open(session: &CoreSession) -> Result<Arc<Self>, CrmError> {
        Ok(Arc::new(Transaction {
            inner: session.owned_transaction()?,
            session: session.clone(),
        }))
    }

    fn run<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&mut CoreTransaction<'c>) -> CoreResult<T> + Send + 'static,
    ) -> Result<T, CrmError> {
        Ok(self.inner.run(op)?)
    }
}

#[uniffi::export]
impl Session {
    /// Opens a transaction for this user (waits for other writers, at most 5 s).
    pub fn transaction(&self) -> Result<Arc<Transaction>, CrmError> {
        guard(|| Transaction::open(&self.session))
    }
}

#[uniffi::export]
impl CrmHandle {
    /// Opens a transaction for `session` (the same as `session.transaction()`).
    pub fn transaction(&self, session: Arc<Session>) -> Result<Arc<Transaction>, CrmError> {
        guard(|| {
            if !std::ptr::eq(self, Arc::as_ptr(&session.handle)) {
                return Err(CrmError::validation(
                    "session",
                    "other_handle",
                    "the session belongs to another handle",
                ));
            }
            Transaction::open(&session.session)
        })
    }
}

#[uniffi::export]
impl Transaction {
    /// The tenant.
    pub fn tenant_id(&self) -> String {
        self.session.tenant().to_string()
    }

    /// The acting user's id.
    pub fn user_id(&self) -> String {
        self.session.user_id().to_string()
    }

    /// Whether the transaction is still open (neither committed nor rolled back).
    pub fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    /// Creates a record, as `Session.create`.
    #[uniffi::method(default(owner_id = None))]
    pub fn create(
        &self,
        kind_name: String,
        fields: HashMap<String, FfiValue>,
        owner_id: Option<String>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let k = kind(&kind_name)?;
            let new = CoreNewRecord {
                fields: core_fields(fields)?,
                owner_id: owner_id.map(|o| record_id(&o, "owner_id")).transpose()?,
            };
            Ok(self.run(move |tx| tx.create(k, new))?.into())
        })
    }

    /// Creates many records of one type: all or none.
    pub fn create_many(
        &self,
        kind_name: String,
        rows: Vec<HashMap<String, FfiValue>>,
    ) -> Result<Vec<FfiRecord>, CrmError> {
        guard(|| {
            let k = kind(&kind_name)?;
            let rows = rows
                .into_iter()
                .map(|r| core_fields(r).map(CoreNewRecord::from))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self.run(move |tx| tx.create_many(k, rows))?;
            Ok(out.into_iter().map(Into::into).collect())
        })
    }

    /// One record, including what this transaction wrote.
    pub fn get(&self, kind_name: String, id: String) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let (k, id) = (kind(&kind_name)?, record_id(&id, "id")?);
            Ok(self.run(move |tx| tx.get(k, id))?.into())
        })
    }

    /// Changes fields; `Conflict` when the record is no longer at `expected_version`.
    pub fn update(
        &self,
        kind_name: String,
        id: String,
        expected_version: i64,
        changes: HashMap<String, FfiValue>,
    ) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let (k, id) = (kind(&kind_name)?, record_id(&id, "id")?);
            let changes = core_fields(changes)?;
            Ok(self
                .run(move |tx| tx.update(k, id, expected_version, changes))?
                .into())
        })
    }

    /// Moves a record to the trash.
    #[uniffi::method(default(expected_version = None))]
    pub fn delete(
        &self,
        kind_name: String,
        id: String,
        expected_version: Option<i64>,
    ) -> Result<(), CrmError> {
        guard(|| {
            let (k, id) = (kind(&kind_name)?, record_id(&id, "id")?);
            self.run(move |tx| tx.delete(k, id, expected_version))
        })
    }

    /// Brings a record back from the trash.
    pub fn restore(&self, kind_name: String, id: String) -> Result<FfiRecord, CrmError> {
        guard(|| {
            let (k, id) = (kind(&kind_name)?, record_id(&id, "id")?);
            Ok(self.run(move |tx| tx.restore(k, id))?.into())
        })
    }

    /// Removes a record in the trash for good.
    pub fn purge(&self, kind_name: String, id: String, reason: String) -> Result<(), CrmError> {
        guard(|| {
            let (k, id) = (kind(&kind_name)?, record_id(&id, "id")?);
            self.run(move |tx| tx.purge(k, id, &reason))
        })
    }

    /// A page of records, including what this transaction wrote.
    pub fn list(&self, kind_name: String, request: FfiListRequest) -> Result<FfiPage, CrmError> {
        guard(|| {
            let (k, req) = (kind(&kind_name)?, list_request(request)?);
            let page = self.run(move |tx| tx.list(k, &req))?;
            Ok(FfiPage {
                items: page.items.into_iter().map(Into::into).collect(),
                next: page.next,
            })
        })
    }

    /// How many records match `filter_json`, including what this transaction wrote.
    #[uniffi::method(default(filter_json = None))]
    pub fn count(&self, kind_name: String, filter_json: Option<String>) -> Result<i64, CrmError> {
        guard(|| {
            let (k, f) = (kind(&kind_name)?, filter(filter_json.as_deref())?);
            Ok(signed(self.run(move |tx| tx.count(k, f.as_ref()))?))
        })
    }

    /// Commits every write, with its audit entries and events, and ends the transaction.
    pub fn commit(&self) -> Result<(), CrmError> {
        guard(|| Ok(self.inner.commit()?))
    }

    /// Discards every write and ends the transaction.
    pub fn rollback(&self) -> Result<(), CrmError> {
        guard(|| Ok(self.inner.rollback()?))
    }
}
