#!/usr/bin/env bash
# Runs the Rust benches (each beside its baseline, in the same run) and regenerates docs/benchmarks.md.
# Sizes: CRM_BENCH_N customers (default 10 000). Takes a few minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rm -rf target/criterion target/bench-data
cargo bench -p crm-benches --bench core -- --warm-up-time 1 --measurement-time "${CRM_BENCH_SECONDS:-4}" | tee target/bench-output.txt
python3 benches/report.py > docs/benchmarks.md
echo "wrote docs/benchmarks.md"
