//! Transactions that span several calls: [`Transaction`] (borrowing the [`Engine`]) and
//! [`OwnedTransaction`] (holding an `Arc<Engine>`, run on a thread of its own, for bindings and hosts
//! that cannot keep a borrow).
//!
//! Every facade write is itself a transaction of one step: `Engine::create_many` opens a
//! [`Transaction`], calls [`Transaction::create_many`] and commits, so both paths run the same code.

use std::sync::{mpsc, Arc, Mutex};

use crate::access::Principal;
use crate::error::{CrmError, Result};
use crate::id::RecordId;
use crate::query::{Filter, ListRequest, Page};
use crate::record::Record;
use crate::schema::EntityKind;
use crate::value::Fields;

use super::read::Reader;
use super::write::{NewRecord, Uow};
use super::{load_cache, principal_in, Context, Engine, TenantCache};

/// Several writes and reads that commit together or not at all, opened by [`Session::transaction`](super::Session::transaction).
///
/// Each call is checked exactly like the facade call of the same name (permissions, field rules,
/// validation, audit entry, outbox events) and sees what the transaction wrote before it. A call
/// that fails leaves nothing behind — its rows, audit entries and events are undone — and the
/// transaction stays usable. [`Transaction::commit`] makes everything visible at once; dropping the
/// transaction or calling [`Transaction::rollback`] discards it all.
///
/// The store has one writer: while a transaction is open, other writes wait for it (a write that
/// waits longer than the store's limit fails with a `Storage` error of rule `busy`). Do not call the
/// facade for the same store on the thread that holds an open transaction; use the transaction's own
/// methods.
pub struct Transaction<'c> {
    crm: &'c Engine,
    uow: Uow<'c>,
    principal: Arc<Principal>,
    cache: Arc<TenantCache>,
    /// Configuration (users, roles, custom fields, audit settings) was written since `cache` was
    /// built: it is rebuilt from the transaction before the next call.
    stale: bool,
    /// Each call runs inside a savepoint (off for the one-call facade path, which drops the whole
    /// transaction when its call fails).
    guarded: bool,
    /// A savepoint could not be released or undone: the transaction can only be rolled back.
    broken: bool,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("tenant", &self.uow.ctx.tenant)
            .field("user_id", &self.uow.ctx.user_id)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens a transaction for `ctx`: the writes made through it commit together, with their audit
    /// entries and outbox events, when [`Transaction::commit`] is called, and are discarded when the
    /// transaction is rolled back or dropped. It holds the store's writer until then.
    ///
    pub(crate) fn transaction(&self, ctx: &Context) -> Result<Transaction<'_>> {
        self.open_transaction(ctx, true)
    }

    /// Runs `op` as a transaction of its own and commits it: the path of every facade write.
    pub(crate) fn in_transaction<T>(
        &self,
        ctx: &Context,
        op: impl FnOnce(&mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut tx = self.open_transaction(ctx, false)?;
        let out = op(&mut tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn open_transaction(&self, ctx: &Context, guarded: bool) -> Result<Transaction<'_>> {
        let mut uow = super::write::Uow::new(self.door().write()?, ctx, self.now());
        // Load the configuration through the transaction itself: a store whose reads share the
        // writer's connection would otherwise wait for the lock this thread now holds.
        let cache = match self.cached(&ctx.tenant) {
            Some(c) => c,
            None => {
                let c = Arc::new(load_cache(
                    uow.tx.unscoped(super::door::Why::Configuration),
                    &ctx.tenant,
                )?);
                self.remember(&ctx.tenant, c.clone());
                c
            }
        };
        let principal = principal_in(&cache, ctx)?;
        uow.audit_off = cache.audit_off.clone();
        Ok(Transaction {
            crm: self,
            uow,
            principal,
            cache,
            stale: false,
            guarded,
            broken: false,
        })
    }
}

/// The error of a call on a transaction that failed beyond repair.
fn broken() -> CrmError {
    let mut e = CrmError::storage(
        "an earlier call of this transaction could not be undone; roll it back and start again",
    );
    e.rule = Some("transaction_failed".to_owned());
    e
}

/// The error of a call on a transaction that was committed or rolled back.
pub(crate) fn ended() -> CrmError {
    CrmError::invalid_transition(
        "transaction",
        "transaction_ended",
        "the transaction was already committed or rolled back; open a new one",
    )
}

impl<'c> Transaction<'c> {
    /// Who acts in this transaction.
    pub fn context(&self) -> &Context {
        &self.uow.ctx
    }

    /// Rebuilds the configuration after this transaction changed it, so later calls see the new
    /// users, roles, custom fields and audit settings.
    fn refresh(&mut self) -> Result<()> {
        if self.broken {
            return Err(broken());
        }
        if self.stale {
            let cache = Arc::new(load_cache(
                self.uow.tx.unscoped(super::door::Why::Configuration),
                &self.uow.ctx.tenant,
            )?);
            self.principal = principal_in(&cache, &self.uow.ctx)?;
            self.uow.audit_off = cache.audit_off.clone();
            self.cache = cache;
            self.stale = false;
        }
        Ok(())
    }

    /// Runs one write inside a savepoint: on failure the store rolls back to it and the unit of
    /// work's audit chain head, written records and configuration flag return to where they were.
    fn step<T>(
        &mut self,
        op: impl FnOnce(&Engine, &mut Uow<'c>, &Principal, &TenantCache) -> Result<T>,
    ) -> Result<T> {
        self.refresh()?;
        self.uow.now = self.crm.now();
        let mark = self.uow.mark();
        let config_before = self.uow.config_changed;
        if self.guarded {
            self.uow.tx.savepoint()?;
        }
        self.uow.config_changed = false;
        let result = op(self.crm, &mut self.uow, &self.principal, &self.cache);
        match result {
            Ok(v) => {
                if self.guarded {
                    if let Err(e) = self.uow.tx.release_savepoint() {
                        self.broken = true;
                        return Err(e);
                    }
                }
                if self.uow.config_changed {
                    self.stale = true;
                }
                self.uow.config_changed |= config_before;
                Ok(v)
            }
            Err(e) => {
                if self.guarded && self.uow.tx.rollback_to_savepoint().is_err() {
                    self.broken = true;
                }
                self.uow.reset(mark);
                Err(e)
            }
        }
    }

    /// Runs one read on the transaction (it sees this transaction's writes).
    fn read<T>(
        &mut self,
        op: impl FnOnce(&Engine, Reader<'_>, &Principal, &TenantCache, &Context) -> Result<T>,
    ) -> Result<T> {
        self.refresh()?;
        op(
            self.crm,
            Reader::Tx(self.uow.tx.view()),
            &self.principal,
            &self.cache,
            &self.uow.ctx,
        )
    }

    /// Creates a record, as [`Records::create`](crate::Records::create).
    pub fn create(&mut self, kind: EntityKind, new: impl Into<NewRecord>) -> Result<Record> {
        let mut v = self.create_many(kind, vec![new.into()])?;
        v.pop()
            .ok_or_else(|| CrmError::internal("batch create returned nothing"))
    }

    /// Creates many records of one type, as [`Records::create_many`](crate::Records::create_many): all of them or, if one is
    /// invalid, none (the error names the row as `rows[i].field`).
    pub fn create_many(&mut self, kind: EntityKind, rows: Vec<NewRecord>) -> Result<Vec<Record>> {
        self.step(|crm, uow, p, cache| crm.create_many_in(uow, p, cache, kind, rows))
    }

    /// Changes fields of a record, as [`Records::update`](crate::Records::update).
    pub fn update(
        &mut self,
        kind: EntityKind,
        id: RecordId,
        expected_version: i64,
        changes: Fields,
    ) -> Result<Record> {
        self.step(|crm, uow, p, cache| {
            crm.update_in(uow, p, cache, kind, id, expected_version, changes)
        })
    }

    /// Moves a record to the trash, as [`Records::delete`](crate::Records::delete).
    pub fn delete(
        &mut self,
        kind: EntityKind,
        id: RecordId,
        expected_version: Option<i64>,
    ) -> Result<()> {
        self.step(|crm, uow, p, cache| crm.delete_in(uow, p, cache, kind, id, expected_version))
    }

    /// Brings a record back from the trash, as [`Records::restore`](crate::Records::restore).
    pub fn restore(&mut self, kind: EntityKind, id: RecordId) -> Result<Record> {
        self.step(|crm, uow, p, cache| crm.restore_in(uow, p, cache, kind, id))
    }

    /// Removes a record in the trash for good, as [`Records::purge`](crate::Records::purge).
    pub fn purge(&mut self, kind: EntityKind, id: RecordId, reason: &str) -> Result<()> {
        self.step(|crm, uow, p, cache| crm.purge_in(uow, p, cache, kind, id, reason))
    }

    /// One record by id, as [`Records::get`](crate::Records::get), including what this transaction wrote.
    pub fn get(&mut self, kind: EntityKind, id: RecordId) -> Result<Record> {
        self.read(|crm, reader, p, cache, ctx| crm.get_in(reader, p, cache, ctx, kind, id))
    }

    /// A page of records, as [`Records::list`](crate::Records::list), including what this transaction wrote.
    pub fn list(&mut self, kind: EntityKind, req: &ListRequest) -> Result<Page<Record>> {
        self.read(|crm, reader, p, cache, ctx| crm.list_in(reader, p, cache, ctx, kind, req))
    }

    /// How many records match, as [`Records::count`](crate::Records::count), including what this transaction wrote.
    pub fn count(&mut self, kind: EntityKind, filter: Option<&Filter>) -> Result<u64> {
        self.read(|crm, reader, p, cache, ctx| crm.count_in(reader, p, cache, ctx, kind, filter))
    }

    /// Commits every write of the transaction, with their audit entries and outbox events (plus the
    /// follower notifications and assignment events they cause). If the commit fails nothing is
    /// written.
    pub fn commit(self) -> Result<()> {
        if self.broken {
            return Err(broken());
        }
        self.uow.commit(self.crm)
    }

    /// Discards every write of the transaction (dropping it does the same).
    pub fn rollback(self) {}
}

/// A job for the thread of an [`OwnedTransaction`]: it gets the transaction while it is open.
type Job = Box<dyn for<'c> FnOnce(&mut Option<Transaction<'c>>) + Send>;

/// A [`Transaction`] that owns its `Arc<Engine>` and lives on a thread of its own, so it can be kept
/// anywhere (`Send + Sync + 'static`): what bindings hand to Python, Kotlin or Swift hosts.
///
/// [`OwnedTransaction::run`] sends a call to that thread and waits for its answer; calls from several
/// threads are served one at a time. [`OwnedTransaction::commit`] and
/// [`OwnedTransaction::rollback`] end it; dropping it without either rolls back. Once ended, every
/// call answers `InvalidTransition` with rule `transaction_ended`.
pub struct OwnedTransaction {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for OwnedTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedTransaction")
            .field("open", &self.is_open())
            .finish()
    }
}

impl OwnedTransaction {
    /// Starts the transaction's thread and opens a transaction of `session` on it.
    pub fn open(session: &super::Session) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened_tx, opened) = mpsc::sync_channel::<Result<()>>(1);
        let crm: Arc<Engine> = session.engine().clone();
        let ctx = session.context().clone();
        std::thread::Builder::new()
            .name("crm-transaction".to_owned())
            .spawn(move || {
                let mut state = match crm.transaction(&ctx) {
                    Ok(tx) => {
                        let _ = opened_tx.send(Ok(()));
                        Some(tx)
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = queue.recv() {
                    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job(&mut state);
                    }));
                    if done.is_err() {
                        // A bug inside the library: give up the transaction (rolls back).
                        state = None;
                    }
                }
                // Every handle is gone: `state`, if still open, rolls back as it drops.
            })
            .map_err(|e| {
                CrmError::storage(format!("cannot start the transaction's thread: {e}"))
                    .with_rule("io")
            })?;
        match opened.recv() {
            Ok(Ok(())) => Ok(OwnedTransaction {
                jobs: Mutex::new(Some(jobs)),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(stopped()),
        }
    }

    /// Whether the transaction is still open (neither committed nor rolled back).
    pub fn is_open(&self) -> bool {
        self.jobs.lock().map(|j| j.is_some()).unwrap_or(false)
    }

    /// Runs `op` on the open transaction, on its thread, and returns its answer.
    pub fn run<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&mut Transaction<'c>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.send(false, move |state| match state.as_mut() {
            Some(tx) => op(tx),
            None => Err(ended()),
        })
    }

    /// Commits the transaction (see [`Transaction::commit`]) and ends it. If the commit fails
    /// nothing is written, and the transaction has ended all the same.
    pub fn commit(&self) -> Result<()> {
        self.send(true, |state| match state.take() {
            Some(tx) => tx.commit(),
            None => Err(ended()),
        })
    }

    /// Discards every write of the transaction and ends it.
    pub fn rollback(&self) -> Result<()> {
        self.send(true, |state| match state.take() {
            Some(tx) => {
                tx.rollback();
                Ok(())
            }
            None => Err(ended()),
        })
    }

    /// Sends `op` to the transaction's thread and waits for its answer; `last` ends the transaction.
    fn send<T: Send + 'static>(
        &self,
        last: bool,
        op: impl for<'c> FnOnce(&mut Option<Transaction<'c>>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer_tx, answer) = mpsc::sync_channel::<Result<T>>(1);
        let job: Job = Box::new(move |state| {
            let _ = answer_tx.send(op(state));
        });
        {
            let mut jobs = self
                .jobs
                .lock()
                .map_err(|_| CrmError::internal("the transaction's lock was poisoned"))?;
            let sender = jobs.as_ref().ok_or_else(ended)?;
            if sender.send(job).is_err() {
                *jobs = None;
                return Err(stopped());
            }
            if last {
                // The thread finishes this job, then sees the queue closed and stops.
                *jobs = None;
            }
        }
        answer.recv().map_err(|_| {
            if let Ok(mut jobs) = self.jobs.lock() {
                *jobs = None;
            }
            stopped()
        })?
    }
}

/// The error when the transaction's thread stopped without answering (a bug inside the library).
fn stopped() -> CrmError {
    let mut e = CrmError::internal("the transaction stopped after an error inside the library");
    e.rule = Some("panic".to_owned());
    e
}
