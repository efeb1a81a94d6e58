//! Times one target over the files given (or the files of directories given) without sanitizer
//! and prints the slowest, to find what makes a target slow; with `CRM_FUZZ_SHOW=1` it also prints
//! each decoded `filter_api` input and its `count` answer. Run from the repository root:
//!
//! ```text
//! cargo run --release --manifest-path tests/fuzz/Cargo.toml --target-dir tests/fuzz/target \
//!     --example time_inputs -- filter_api tests/fuzz/target/corpus/filter_api
//! ```

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "filter_text".into());
    let mut files = Vec::new();
    for a in args {
        let p = std::path::PathBuf::from(a);
        match std::fs::read_dir(&p) {
            Ok(dir) => files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path())),
            Err(_) => files.push(p),
        }
    }
    files.sort();
    let mut times = Vec::new();
    let all = Instant::now();
    for f in &files {
        let Ok(data) = std::fs::read(f) else { continue };
        let t = Instant::now();
        if std::env::var_os("CRM_FUZZ_SHOW").is_some() {
            show(&target, &data);
        }
        crm_fuzz::run(&target, &data);
        times.push((t.elapsed(), f.clone(), data.len()));
    }
    let total = all.elapsed();
    times.sort();
    for (d, f, len) in times.iter().rev().take(10) {
        let extra = if target == "filter_api" {
            describe(&std::fs::read(f).unwrap_or_default())
        } else {
            String::new()
        };
        println!("{:>10.3?} {len:>6} B {} {extra}", d, f.display());
    }
    println!("{} inputs in {total:.2?}", times.len());
}

/// Depth, conditions and values of a `filter_api` input's filter.
fn describe(data: &[u8]) -> String {
    use arbitrary::{Arbitrary, Unstructured};
    match crm_fuzz::ApiInput::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(i) => {
            let f = i.filter.filter(crm_fuzz::shared_world());
            let m = crm_fuzz::measure(&f);
            crm_fuzz::dismantle(f);
            format!("{m:?}")
        }
        Err(_) => "-".into(),
    }
}

/// `CRM_FUZZ_SHOW=1`: prints the decoded input and what `count` answers.
fn show(target: &str, data: &[u8]) {
    use arbitrary::{Arbitrary, Unstructured};
    if target == "filter_api" {
        if let Ok(i) = crm_fuzz::ApiInput::arbitrary_take_rest(Unstructured::new(data)) {
            let w = crm_fuzz::shared_world();
            let f = i.filter.filter(w);
            let kind = i
                .other_kind
                .map_or(crm_core::EntityKind::Account, |k| k.kind());
            println!("{i:?}");
            println!("count: {:?}", w.session().records().count(kind, Some(&f)));
            crm_fuzz::dismantle(f);
        }
    }
}
