//! Builds (the first time) or opens the sales data set of `CRM_BENCH_N` customers and prints where
//! it is and who may read it, as one JSON object, for the Python analytics bench:
//! `{"n", "path", "tenant", "admin", "reps", "accounts", "orders"}`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // benchmark support

fn main() {
    let n = crm_benches::size();
    let s = crm_benches::sales(n);
    let out = serde_json::json!({
        "n": n,
        "path": s.path.canonicalize().unwrap_or_else(|_| s.path.clone()),
        "tenant": "bench",
        "admin": s.f.admin.user_id().to_string(),
        "reps": s.f.reps.iter().map(|r| r.user_id().to_string()).collect::<Vec<_>>(),
        "accounts": s.accounts.len(),
        "orders": s.orders,
    });
    println!("{out}");
}
