//! Owner sets of record scopes as temporary tables of a reader connection.
//!
//! A rep's scope reaches the records owned by a set of users (the rep and the team, or the people
//! below them): `owner_id IN (?, ?, …)` with one bound id per member. SQLite builds a lookup table
//! from such a list on every execution of the statement, which costs a point lookup (a phone
//! lookup, a screen pop's section) more than the lookup itself. A reader connection therefore keeps
//! each owner set it meets as a small temporary table keyed by the owner id and compiles
//! `owner_id IN temp.crm_scope_N`, which SQLite reads through that table's key, with nothing built
//! per execution.
//!
//! A table holds exactly one owner set and is never changed after it is filled: a different set is
//! a different table. Tables are created and filled inside the read transaction of the statement that
//! first needs them (before that statement runs) and counted as the connection's own only once that
//! transaction commits; until then the transaction that made them uses them. Write transactions and
//! the in-memory store's shared connection use bound lists, as before.

use std::collections::HashMap;

use crm_core::backend::Cond;
use crm_core::RecordId;

/// An owner set at least this large is kept as a table; smaller ones stay bound lists.
const MIN_OWNERS: usize = 4;

/// At most this many owner-set tables per connection; further sets stay bound lists.
pub(crate) const MAX_TABLES: usize = 64;

/// The owner-set tables a connection holds: the set (sorted, as record scopes give it) and the
/// number in the table's name.
#[derive(Default)]
pub(crate) struct ScopeTables {
    tables: HashMap<Vec<RecordId>, u32>,
    next: u32,
}

impl ScopeTables {
    /// The table holding exactly `owners`, if this connection has one.
    pub(crate) fn get(&self, owners: &[RecordId]) -> Option<u32> {
        self.tables.get(owners).copied()
    }

    /// How many tables the connection holds.
    pub(crate) fn len(&self) -> usize {
        self.tables.len()
    }

    /// A number no table of this connection was ever given.
    pub(crate) fn reserve(&mut self) -> u32 {
        self.next = self.next.wrapping_add(1);
        self.next
    }

    /// Counts a table made (and committed) as the connection's own.
    pub(crate) fn add(&mut self, owners: Vec<RecordId>, n: u32) {
        self.tables.insert(owners, n);
    }
}

/// The name of table `n`.
pub(crate) fn table_name(n: u32) -> String {
    format!("crm_scope_{n}")
}

/// The tables one statement may read its owner sets from (the sets borrowed from its condition).
#[derive(Default)]
pub(crate) struct ScopeNames<'c>(Vec<(&'c [RecordId], u32)>);

impl<'c> ScopeNames<'c> {
    /// The table holding exactly `owners`.
    pub(crate) fn get(&self, owners: &[RecordId]) -> Option<u32> {
        self.0.iter().find(|(o, _)| *o == owners).map(|(_, n)| *n)
    }

    pub(crate) fn push(&mut self, owners: &'c [RecordId], n: u32) {
        self.0.push((owners, n));
    }
}

/// The owner sets in `cond` worth a table, each once.
pub(crate) fn owner_sets(cond: &Cond) -> Vec<&[RecordId]> {
    fn walk<'c>(cond: &'c Cond, out: &mut Vec<&'c [RecordId]>) {
        match cond {
            Cond::OwnerIn(ids) if ids.len() >= MIN_OWNERS && !out.contains(&ids.as_slice()) => {
                out.push(ids);
            }
            Cond::And(v) | Cond::Or(v) => v.iter().for_each(|c| walk(c, out)),
            Cond::Not(c) => walk(c, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(cond, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<RecordId> {
        (0..n).map(|i| RecordId::from_bytes([i; 16])).collect()
    }

    #[test]
    fn only_sets_of_several_owners_are_kept_and_each_once() {
        let big = Cond::OwnerIn(ids(5));
        let cond = Cond::Or(vec![
            Cond::OwnerIn(ids(2)),
            Cond::And(vec![big.clone(), Cond::Not(Box::new(big.clone()))]),
            Cond::OwnerIn(ids(6)),
        ]);
        let sets = owner_sets(&cond);
        assert_eq!(sets, vec![ids(5).as_slice(), ids(6).as_slice()]);
    }

    #[test]
    fn names_are_found_by_the_exact_set() {
        let mut names = ScopeNames::default();
        let five = ids(5);
        names.push(&five, 3);
        assert_eq!(names.get(&ids(5)), Some(3));
        assert_eq!(names.get(&ids(4)), None);
        assert_eq!(ScopeNames::default().get(&ids(5)), None);
        let mut t = ScopeTables::default();
        let n = t.reserve();
        assert_ne!(n, t.reserve());
        t.add(ids(5), n);
        assert_eq!((t.get(&ids(5)), t.len()), (Some(n), 1));
    }
}
