//! Peak memory of exports as the number of customers grows: for each size, a fresh process opens the
//! cached customers data set (built through the facade, see `crm_benches::customers_db`), reads its
//! resident set size, exports to a JSON Lines file and reads the peak (`VmHWM`).
//!
//! ```text
//! export_rss [--sizes 10000,100000] [--out target/bench-export.json]
//! ```
//!
//! Two exports, each in its own process: `accounts` — every customer through `Records::export` (the
//! permission-checked, redacted stream an integration would use, here the administrator's session),
//! one JSON object per line; and `tenant` — `Crm::export_tenant`, the host's export of the whole
//! tenant (records, audit trail, pending events).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // benchmark support: failures should be loud

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crm_benches::{customers_db, open_customers, rss_kib};
use crm_core::EntityKind;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("build") => {
            customers_db(args[2].parse().unwrap());
        }
        Some("measure") => measure(args[2].parse().unwrap(), &args[3]),
        _ => drive(&args[1..]),
    }
}

/// Runs a fresh process per size and export, and writes their figures as JSON.
fn drive(args: &[String]) {
    let mut sizes = vec![10_000usize, 100_000];
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-export.json");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sizes" => {
                sizes = it
                    .next()
                    .unwrap()
                    .split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap())
                    .collect()
            }
            "--out" => out = PathBuf::from(it.next().unwrap()),
            other => panic!("unknown argument `{other}`"),
        }
    }
    let me = std::env::current_exe().unwrap();
    let mut results = Vec::new();
    for n in sizes {
        // Built in a process of its own, so the measuring processes start from an opened file only.
        let status = Command::new(&me)
            .args(["build", &n.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "building {n} customers failed");
        for mode in ["accounts", "tenant"] {
            let o = Command::new(&me)
                .args(["measure", &n.to_string(), mode])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let line = String::from_utf8(o.stdout).unwrap();
            eprintln!("{}", line.trim());
            results.push(serde_json::from_str::<serde_json::Value>(line.trim()).unwrap());
        }
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    eprintln!("wrote {}", out.display());
}

fn measure(n: usize, mode: &str) {
    let path = customers_db(n);
    let f = open_customers(&path, &path.with_extension("ids.json"), n);
    let dest = path.with_extension(format!("{mode}.jsonl"));
    let (_, rss_opened) = rss_kib().unwrap();
    let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(&dest).unwrap());
    let (hwm_before, rss_before) = rss_kib().unwrap();
    let started = Instant::now();
    let (lines, records) = match mode {
        "accounts" => {
            let mut lines = 0u64;
            let n = f
                .admin
                .records()
                .export(EntityKind::Account, None, None, &mut |r| {
                    serde_json::to_writer(&mut out, &r).unwrap();
                    out.write_all(b"\n").unwrap();
                    lines += 1;
                    Ok(())
                })
                .unwrap();
            (lines, n)
        }
        "tenant" => {
            let mut lines = 0u64;
            let s = f
                .crm
                .export_tenant(f.admin.tenant(), &mut out, &mut |l| lines = l)
                .unwrap();
            (lines, s.records)
        }
        other => panic!("unknown export `{other}`"),
    };
    out.flush().unwrap();
    drop(out);
    let secs = started.elapsed().as_secs_f64();
    let (hwm_after, rss_after) = rss_kib().unwrap();
    let bytes = std::fs::metadata(&dest).unwrap().len();
    std::fs::remove_file(&dest).unwrap();
    let v = serde_json::json!({
        "n": n,
        "mode": mode,
        "lines": lines,
        "records": records,
        "bytes": bytes,
        "seconds": secs,
        "rss_opened_kib": rss_opened,
        "rss_before_kib": rss_before,
        "peak_before_kib": hwm_before,
        "peak_kib": hwm_after,
        "rss_after_kib": rss_after,
    });
    println!("{v}");
}
