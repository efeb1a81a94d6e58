//! Analytics benches on the sales data set (`CRM_BENCH_N` customers, ten orders each on average):
//! RFM for every customer, profit by segment × product over the last three months, and the screen
//! pop against the same data fetched by hand-written rusqlite queries on the same file; the
//! supervision and segment reports (KPIs per user and per team, value indices, a dynamic segment's
//! count and refresh) on the same data.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use crm_benches::{sales, size};
use crm_core::chrono::Duration;
use crm_core::{
    fields, EntityKind, Filter, ListRequest, ProfitDimension, ProfitOptions, RfmOptions,
};

fn analytics(c: &mut Criterion) {
    let n = size();
    let s = sales(n);
    let admin = &s.f.admin;
    eprintln!("sales data: {n} customers, {} orders", s.orders);

    let mut g = c.benchmark_group(format!("rfm_{n}"));
    g.sample_size(10);
    g.bench_function("crm_rfm_all_customers", |b| {
        b.iter(|| black_box(admin.analytics().rfm(&RfmOptions::default()).unwrap().len()))
    });
    g.finish();

    let mut g = c.benchmark_group(format!("profit_{n}"));
    g.sample_size(10);
    let now = admin.now();
    let opts = ProfitOptions {
        from: now - Duration::days(91),
        to: now,
        by: ProfitDimension::Rfm,
        rates: None,
        rfm: RfmOptions::default(),
    };
    g.bench_function("crm_profit_rfm_x_product_3_months", |b| {
        b.iter(|| black_box(admin.analytics().profit(&opts).unwrap().len()))
    });
    g.finish();

    // The screen pop for a rep (own + team) calling about one of their customers.
    let mut g = c.benchmark_group(format!("screen_pop_{n}"));
    let rep = &s.f.reps[0];
    let mine: Vec<&(crm_core::RecordId, String, usize)> =
        s.accounts.iter().filter(|a| a.2 % 2 == 0).collect();
    let mut i = 0usize;
    g.bench_function("crm_screen_pop", |b| {
        b.iter(|| {
            i = (i + 7919) % mine.len();
            let national = &mine[i].1[3..];
            black_box(rep.analytics().screen_pop(national, None).unwrap())
        })
    });
    let raw = rusqlite::Connection::open(&s.path).unwrap();
    let mut i = 0usize;
    g.bench_function("raw_rusqlite", |b| {
        b.iter(|| {
            i = (i + 7919) % mine.len();
            black_box(crm_benches::raw_screen_pop(&raw, &mine[i].1))
        })
    });
    g.finish();
}

/// Reports a supervisor or an analyst runs over the whole customer base.
fn reports(c: &mut Criterion) {
    let n = size();
    let s = sales(n);
    let admin = &s.f.admin;
    let now = admin.now();
    let mut g = c.benchmark_group(format!("reports_{n}"));
    g.sample_size(10);
    let from = now - Duration::days(91);
    g.bench_function("crm_kpis_per_user_3_months", |b| {
        b.iter(|| black_box(admin.analytics().kpis(from, now, None).unwrap().len()))
    });
    g.bench_function("crm_kpis_per_team_3_months", |b| {
        b.iter(|| black_box(admin.analytics().team_kpis(from, now, None).unwrap().len()))
    });
    g.bench_function("crm_customer_values_all", |b| {
        b.iter(|| {
            black_box(
                admin
                    .analytics()
                    .customer_values(&Default::default())
                    .unwrap()
                    .len(),
            )
        })
    });
    // One dynamic segment, made once per data set.
    let name = "Recent Italian buyers";
    let existing = admin
        .records()
        .list(
            EntityKind::Segment,
            &ListRequest {
                filter: Some(Filter::eq("name", name)),
                ..Default::default()
            },
        )
        .unwrap();
    let seg = match existing.items.first() {
        Some(r) => r.meta.id,
        None => {
            admin.records().create(
                EntityKind::Segment,
                fields! { "name" => name, "entity" => "account", "definition" => r#"country = "IT" and days_since_last_order < 30"# },
            )
            .unwrap()
            .meta
            .id
        }
    };
    g.bench_function("crm_segment_count", |b| {
        b.iter(|| black_box(admin.segments().count(seg).unwrap()))
    });
    g.bench_function("crm_segment_refresh", |b| {
        b.iter(|| black_box(admin.segments().refresh(seg).unwrap().member_count))
    });
    g.finish();
}

criterion_group!(benches, analytics, reports);
criterion_main!(benches);
