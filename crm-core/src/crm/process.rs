//! Processes: lifecycle hooks of the write path (assignment, SLA timers, quote re-approval, follower
//! notifications) and the lifecycle operations.

use crate::error::Result;
use crate::record::Record;

use super::write::Uow;
use super::{Crm, TenantCache};

impl Crm {
    /// Runs before a new record is inserted (inside its transaction): assignment rules, SLA due dates.
    pub(crate) fn before_insert(&self, _uow: &mut Uow<'_>, _cache: &TenantCache, _r: &mut Record) -> Result<()> {
        Ok(())
    }

    /// Runs before a changed record is written (inside its transaction), after validation.
    pub(crate) fn before_update(&self, _uow: &mut Uow<'_>, _cache: &TenantCache, _old: &Record, _new: &mut Record) -> Result<()> {
        Ok(())
    }

    /// Runs just before a unit of work commits: `uow.written` lists what it changed.
    pub(crate) fn before_commit(&self, _uow: &mut Uow<'_>) -> Result<()> {
        Ok(())
    }
}
