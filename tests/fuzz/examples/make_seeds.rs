//! Writes the seed corpus under `tests/fuzz/corpus/<target>/` (run from the repository root):
//!
//! ```text
//! cargo run --manifest-path tests/fuzz/Cargo.toml --target-dir tests/fuzz/target --example make_seeds
//! ```
//!
//! * `filter_text`: hand-written filters (real fields, every operator, limits just within and just
//!   beyond);
//! * `filter_api`, `record_input`: byte strings found by a seeded random search whose decoded input
//!   has a wanted property (a filter that runs, one too deep, too large, with too many values; a
//!   create that succeeds, one that fails, an update that succeeds, …);
//! * `import_reader`: a small export made by `Crm::export_tenant` (`crm_fuzz::sample_export`), a
//!   header-only and a truncated copy, and one with a changed record (its audit chain breaks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use crm_core::{EntityKind, Fields, ListRequest, NewRecord, MAX_FILTER_DEPTH};
use crm_fuzz::{measure, shared_world, within_limits, ApiInput, RecordInput, Target};

/// A small deterministic generator (xorshift64*), so the seeds are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = 8 + (self.next() as usize) % max;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new("tests/fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn filter_text_seeds() {
    let nots = |n: usize| format!("{}country = \"IT\"", "not ".repeat(n));
    let parens = |n: usize| format!("{}country = \"IT\"{}", "(".repeat(n), ")".repeat(n));
    let values = (0..2_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let seeds: Vec<(&str, String)> = vec![
        ("country_ltv", r#"country = "IT" and lifetime_value > 1000"#.into()),
        ("country_ltv_eur", r#"country = "IT" and lifetime_value > 1000 EUR"#.into()),
        ("docs_example", r#"country in ("IT", "DE") and lifetime_value > 1000 EUR and days_since_last_order < 90 and custom.sector = "retail""#.into()),
        ("text_ops", r#"name starts with "AC" or name contains "gmbh" or city != 'Berlin'"#.into()),
        ("nulls", "email is not null and phone is null or website is not null".into()),
        ("lists", r#"roles contains "customer" and custom.tags contains "vip""#.into()),
        ("custom", "custom.score >= -3 and custom.since < 2020-01-01 and custom.revenue <= 125000.50 EUR".into()),
        ("timestamps", "last_order_at > 2025-12-01T00:00:00Z or first_order_at <= 2025-01-01 or updated_at >= 2026-01-05T09:00:00+01:00".into()),
        ("not_in", r#"country not in ("US", "XX") and order_count != 0 and not (industry = "bank")"#.into()),
        ("injection", r#"name = 'ACME Srl' or name = "Nameless ' OR 1=1 --" or name contains "%_\\""#.into()),
        ("days_since", "days_since_created_at = 0 or days_since_last_order >= 31 or days_since_first_order is null".into()),
        ("stats", "open_cases is null or open_opportunities > 2 or average_order_value < 10 USD".into()),
        ("contact", r#"first_name == "Mario" and email_opt_in = true and birth_date = 1980-02-29 and mobile <> "+39 333 123 4567""#.into()),
        ("bookkeeping", "version > 0 and created_at < 2030-01-01 and id != null and owner_id is not null".into()),
        ("numbers", "order_count > 9223372036854775807 or order_count < -9223372036854775808 or custom.score = 1.5".into()),
        ("not_31", nots(MAX_FILTER_DEPTH - 1)),
        ("not_40", nots(MAX_FILTER_DEPTH + 8)),
        ("parens_40", parens(MAX_FILTER_DEPTH + 8)),
        ("in_2000", format!("order_count in ({values})")),
        ("too_long", format!("name = \"{}\"", "x".repeat(crm_core::MAX_FILTER_TEXT + 1))),
        ("syntax_error", "country = and (".into()),
        // 1 200 conditions in one `or`: within MAX_FILTER_NODES, longer than SQLite's expression
        // depth limit (1 000) if compiled as a chain of binary ORs.
        ("or_1200", vec!["id = null"; 1_200].join(" or ")),
    ];
    for (name, text) in seeds {
        write("filter_text", name, text.as_bytes());
    }
}

/// What a `filter_api` input does, in a few words (the seed's file name).
fn api_class(data: &[u8]) -> Option<String> {
    let input = ApiInput::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    let w = shared_world();
    let f = input.filter.filter(w);
    let (depth, nodes, values) = measure(&f);
    let class = if depth > MAX_FILTER_DEPTH {
        "too_deep".to_owned()
    } else if nodes > crm_core::MAX_FILTER_NODES {
        "too_many_nodes".to_owned()
    } else if values > crm_core::MAX_FILTER_VALUES {
        "too_many_values".to_owned()
    } else {
        assert!(within_limits(&f));
        let kind = input.other_kind.map_or(EntityKind::Account, |k| k.kind());
        let s = w.session();
        match s.records().count(kind, Some(&f)) {
            Ok(n) if n > 0 && nodes > 3 => "runs_nested".to_owned(),
            Ok(n) if n > 0 => format!("matches_{}", kind.name()),
            Ok(_) => "no_match".to_owned(),
            Err(e) => format!("refused_{}", e.kind.code()),
        }
    };
    crm_fuzz::dismantle(f);
    Some(class)
}

/// What a `record_input` input does, run on a fresh world.
fn record_class(data: &[u8]) -> Option<String> {
    let input = RecordInput::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    let w = crm_fuzz::world();
    let s = w.session();
    let kind = input.kind.kind();
    let mut fields = if input.base {
        input.kind.base(&w, 1)
    } else {
        Fields::new()
    };
    let ids: Vec<_> = w.accounts.iter().chain(&w.contacts).copied().collect();
    for (n, v) in &input.fields {
        fields.insert(n.name(), v.value(&ids));
    }
    let created = s.records().create(
        kind,
        NewRecord {
            fields,
            owner_id: None,
        },
    );
    let mut class = match &created {
        Ok(_)
            if matches!(
                kind,
                EntityKind::Account | EntityKind::Contact | EntityKind::Order
            ) =>
        {
            format!("create_ok_{}", kind.name())
        }
        Ok(_) => "create_ok_other".to_owned(),
        Err(e) => format!("create_refused_{}", e.kind.code()),
    };
    if let (Ok(r), Some(u)) = (&created, input.updates.first()) {
        if matches!(u.target, Target::Created) && !u.changes.is_empty() {
            let mut changes = Fields::new();
            for (n, v) in &u.changes {
                changes.insert(n.name(), v.value(&ids));
            }
            let ok = s
                .records()
                .update(kind, r.meta.id, r.meta.version, changes)
                .is_ok();
            class.push_str(if ok { "_update_ok" } else { "_update_refused" });
        }
    }
    let _ = s.records().list(kind, &ListRequest::default());
    Some(class)
}

/// Up to `per_class` seeds of every class `classify` finds among `tries` random byte strings.
fn search(
    target: &str,
    tries: usize,
    max_len: usize,
    per_class: usize,
    classify: impl Fn(&[u8]) -> Option<String>,
) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..tries {
        let data = rng.bytes(max_len);
        let Some(class) = classify(&data) else {
            continue;
        };
        let n = found.entry(class.clone()).or_default();
        if *n < per_class {
            *n += 1;
            write(target, &format!("{class}_{n}"), &data);
        }
    }
    eprintln!("{target}: {found:?}");
}

fn import_seeds() {
    let export = crm_fuzz::sample_export();
    write("import_reader", "export.jsonl", &export);
    let lines: Vec<&[u8]> = export.split_inclusive(|b| *b == b'\n').collect();
    write("import_reader", "header_only.jsonl", lines[0]);
    let without_last: Vec<u8> = lines[..lines.len() - 1].concat();
    write("import_reader", "truncated.jsonl", &without_last);
    // A later line changed: the audit chain no longer verifies.
    let mut tampered = export.clone();
    if let Some(p) = tampered.windows(5).position(|w| w == b"Rossi") {
        tampered[p] = b'X';
    }
    write("import_reader", "tampered.jsonl", &tampered);
    eprintln!(
        "import_reader: {} lines, {} bytes",
        lines.len(),
        export.len()
    );
}

fn main() {
    filter_text_seeds();
    search("filter_api", 4_000, 300, 1, api_class);
    search("record_input", 400, 400, 1, record_class);
    import_seeds();
}
