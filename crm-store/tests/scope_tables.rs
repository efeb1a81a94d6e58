//! Owner sets kept as temporary tables of a reader connection: every read through them returns
//! exactly the records a bound list returns, in one transaction and across transactions, past the
//! per-connection table limit, and the hot queries keep their indexes.

// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_core::backend::{Column, Cond, Op, Query, Store};
use crm_core::conformance::{new_id, record, tenant};
use crm_core::{EntityKind, RecordId, TenantId, Value};
use crm_store::SqliteStore;
use proptest::prelude::*;

fn builtin(kind: EntityKind, name: &str) -> Column {
    let f = kind.schema().field(name).unwrap();
    Column::Builtin {
        name: f.name,
        ty: f.ty.clone(),
    }
}

/// A file store (reads on pooled reader connections) and an in-memory store (reads on its one
/// connection, bound lists only) holding the same 240 accounts of 12 owners.
struct Stores {
    file: SqliteStore,
    memory: SqliteStore,
    owners: Vec<RecordId>,
    _dir: tempfile::TempDir,
}

fn stores() -> Stores {
    let dir = tempfile::tempdir().unwrap();
    let file = SqliteStore::open(dir.path().join("scope.db")).unwrap();
    let memory = SqliteStore::open_in_memory().unwrap();
    let t = tenant("scope");
    let mut owners: Vec<RecordId> = (0..12).map(|_| new_id()).collect();
    owners.sort();
    for store in [&file, &memory] {
        let mut tx = store.write().unwrap();
        for i in 0..240usize {
            let mut a = record(
                EntityKind::Account,
                &t,
                owners[i % owners.len()],
                crm_core::fields! {
                    "name" => format!("Account {i:03}"),
                    "phone" => format!("+3902{:07}", i % 60),
                },
            );
            a.meta.id = RecordId::from_bytes([i as u8; 16]);
            tx.insert(&a).unwrap();
        }
        tx.commit().unwrap();
    }
    Stores {
        file,
        memory,
        owners,
        _dir: dir,
    }
}

fn scoped(t: &TenantId, owners: Vec<RecordId>, phone: Option<usize>) -> Query {
    let mut q = Query::all(EntityKind::Account, t.clone()).and(Cond::OwnerIn(owners));
    if let Some(p) = phone {
        q = q.and(Cond::Compare(
            builtin(EntityKind::Account, "phone"),
            Op::Eq,
            Value::Text(format!("+3902{p:07}")),
        ));
    }
    q
}

fn ids(store: &SqliteStore, queries: &[Query]) -> Vec<(Vec<RecordId>, u64)> {
    // All in one read transaction: tables made by an earlier query serve the later ones.
    let tx = store.read().unwrap();
    let in_one: Vec<(Vec<RecordId>, u64)> = queries
        .iter()
        .map(|q| {
            let rows = tx.query(q).unwrap();
            (
                rows.iter().map(|r| r.meta.id).collect(),
                tx.count(q).unwrap(),
            )
        })
        .collect();
    drop(tx);
    // Each call on its own, outside a transaction (tables made there are committed at once).
    let once: Vec<(Vec<RecordId>, u64)> = queries
        .iter()
        .map(|q| {
            let rows = store.read_once().unwrap().query(q).unwrap();
            let n = store.read_once().unwrap().count(q).unwrap();
            (rows.iter().map(|r| r.meta.id).collect(), n)
        })
        .collect();
    assert_eq!(in_one, once, "one transaction against single calls");
    in_one
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn reads_through_owner_tables_equal_reads_with_bound_lists(
        picks in prop::collection::vec(
            (prop::collection::btree_set(0usize..12, 0..12), prop::option::of(0usize..60)),
            1..6,
        ),
        rounds in 1usize..4,
    ) {
        let s = stores();
        let t = tenant("scope");
        let queries: Vec<Query> = picks
            .iter()
            .map(|(set, phone)| scoped(&t, set.iter().map(|i| s.owners[*i]).collect(), *phone))
            .collect();
        // Several transactions: the second and later find the tables the first committed.
        for _ in 0..rounds {
            prop_assert_eq!(ids(&s.file, &queries), ids(&s.memory, &queries));
        }
    }
}

#[test]
fn more_owner_sets_than_a_connection_keeps_still_read_right() {
    let s = stores();
    let t = tenant("scope");
    // Every set of 4 to 12 of the owners that starts at a given owner: well over the table limit.
    let queries: Vec<Query> = (0..12)
        .flat_map(|start| (4..=12).map(move |len| (start, len)))
        .map(|(start, len)| {
            let mut set: Vec<RecordId> = (0..len).map(|k| s.owners[(start + k) % 12]).collect();
            set.sort();
            set.dedup();
            scoped(&t, set, None)
        })
        .collect();
    assert!(queries.len() > 64);
    // An owner set given with repeats and out of order reads the same records.
    let mut odd: Vec<RecordId> = s.owners[..5].iter().rev().copied().collect();
    odd.push(s.owners[0]);
    let odd = scoped(&t, odd, None);
    assert_eq!(
        ids(&s.file, std::slice::from_ref(&odd)),
        ids(&s.memory, &[odd])
    );
    for _ in 0..2 {
        assert_eq!(ids(&s.file, &queries), ids(&s.memory, &queries));
    }
}

#[test]
fn a_scoped_phone_lookup_reads_the_phone_index_and_the_owner_table_by_key() {
    let s = stores();
    let t = tenant("scope");
    let q = scoped(&t, s.owners[..6].to_vec(), Some(7));
    let plan = s.file.explain(&q).unwrap();
    let text = plan.join("\n");
    assert!(
        plan.iter().any(|l| l.contains("ix_accounts_phone")),
        "{text}"
    );
    assert!(!text.contains("SCAN"), "{text}");
    assert!(!text.contains("TEMP B-TREE"), "{text}");
    // The owner set is read from its table by key, not built from bound values per execution.
    assert!(text.contains("FOR IN-OPERATOR"), "{text}");
}

#[test]
fn scoped_reads_plan_as_with_a_bound_list() {
    let s = stores();
    let t = tenant("scope");
    let name = builtin(EntityKind::Account, "name");
    for n in [4usize, 6, 11] {
        let by_id = {
            let mut q = scoped(&t, s.owners[..n].to_vec(), None);
            q.limit = Some(50);
            q
        };
        let mut by_name = by_id.clone();
        by_name.sort = Some((name.clone(), false));
        for q in [by_id, by_name, scoped(&t, s.owners[..n].to_vec(), Some(3))] {
            let file = s.file.explain(&q).unwrap();
            assert!(
                file.iter().any(|l| l.contains("FOR IN-OPERATOR")),
                "reads the owner table: {file:?}"
            );
            let file: Vec<String> = file
                .into_iter()
                .filter(|l| !l.contains("FOR IN-OPERATOR"))
                .collect();
            assert_eq!(file, s.memory.explain(&q).unwrap(), "{n} owners");
        }
    }
}
