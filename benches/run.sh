#!/usr/bin/env bash
# Runs the Rust benches (each beside its baseline, in the same run) and regenerates docs/benchmarks.md.
# Sizes: CRM_BENCH_N customers (default 10 000; the sales data set has ten orders per customer on
# average). Takes a few minutes on 2 cores, plus building the sales data set the first time per size.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Scratch databases go; the sales data sets (built once per size, minutes at 10⁵) stay.
rm -rf target/criterion target/bench-data/crm-* target/bench-data/raw-*
cargo bench -p crm-benches --bench core -- --warm-up-time 1 --measurement-time "${CRM_BENCH_SECONDS:-4}" | tee target/bench-output.txt
cargo bench -p crm-benches --bench analytics -- --warm-up-time 1 --measurement-time "${CRM_BENCH_SECONDS:-4}" | tee -a target/bench-output.txt
python3 benches/report.py > docs/benchmarks.md
echo "wrote docs/benchmarks.md"
