//! Batch insert as the customer base grows: 1 000 customers in one `create_many` into a database that
//! already holds `CRM_BENCH_N` customers (a copy of the cached data set, see
//! `crm_benches::customers_db`), beside raw rusqlite inserts into a table holding as many rows.
//! The core bench's insert group always starts from 1 000 customers; this one is what the growth
//! row compares across sizes (`CRM_BENCH_SIZES` in `run.sh`).
//!
//! Few iterations on purpose (flat sampling, ten samples of one batch after a short warm-up): each
//! batch adds 1 000 rows, so a long measurement would change the size being measured. At 10⁴ the
//! table still grows by about a fifth during the group; at 10⁶ by a few per mille.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use crm_benches::{
    customers, customers_db, open_customers, raw_insert, raw_open, rows, scratch, size, REPS,
};
use crm_core::EntityKind;

fn insert_at_size(c: &mut Criterion) {
    let n = size();
    let cached = customers_db(n);
    let copy = scratch("crm-growth");
    for s in ["", "-wal"] {
        let from = format!("{}{s}", cached.display());
        if std::path::Path::new(&from).exists() {
            std::fs::copy(&from, format!("{}{s}", copy.display())).unwrap();
        }
    }
    let f = open_customers(&copy, &cached.with_extension("ids.json"), n);
    let mut raw = raw_open("raw-growth");
    let mut done = 0;
    while done < n {
        let k = (n - done).min(100_000);
        raw_insert(&mut raw, &customers(done, k, REPS));
        done += k;
    }

    let mut g = c.benchmark_group(format!("insert_1000_into_{n}"));
    g.throughput(Throughput::Elements(1_000));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_millis(100));
    // New customers continue the sequence after the existing ones (unique names, e-mails, phones).
    let mut next = n;
    g.bench_function("crm_create_many", |b| {
        b.iter_batched(
            || {
                next += 1_000;
                rows(&f.reps, &customers(next, 1_000, REPS))
            },
            |r| {
                f.admin
                    .records()
                    .create_many(EntityKind::Account, r)
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    let mut next = n;
    g.bench_function("raw_rusqlite", |b| {
        b.iter_batched(
            || {
                next += 1_000;
                customers(next, 1_000, REPS)
            },
            |cs| raw_insert(&mut raw, &cs),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    drop(f);
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", copy.display()));
    }
}

criterion_group!(benches, insert_at_size);
criterion_main!(benches);
