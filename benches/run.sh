#!/usr/bin/env bash
# The one benchmark command: runs every bench, each beside its baseline in the same run, and
# regenerates docs/benchmarks.md from their results.
#
#   bash benches/run.sh
#
# Environment (defaults in brackets):
#   CRM_BENCH_N             customers of the main figures and of the sales data set [10000]
#   CRM_BENCH_SIZES         customer counts of the growth table [10000 100000]; 10⁶ builds a fixture
#                           of a million customers through the facade in every run (a few minutes)
#   CRM_BENCH_ANALYTICS_SIZES  sales data set sizes for the analytics bench and the DuckDB comparison
#                           [$CRM_BENCH_N]; building a data set the first time takes ~10 s at 10⁴,
#                           minutes at 10⁵ (kept under target/bench-data)
#   CRM_BENCH_EXPORT_SIZES  customer counts of the export memory table [10000 100000 1000000]; the
#                           10⁶ data set takes ~4 minutes to build the first time, its exports ~40 s
#   CRM_BENCH_SECONDS       criterion measurement time per bench [4]
#
# Parts: the core criterion bench at CRM_BENCH_N (insert, lookup, scoped pages, permission decision,
# audited update), then at each other growth size its lookup and page groups, and the growth bench
# (batch insert into a database of that size) at every size; the analytics bench (RFM, profit,
# screen pop) at CRM_BENCH_N; the Python wheel against SQLAlchemy; RFM and profit through the wheel
# against DuckDB, pandas and polars on the same sales data set; the export's peak memory, one fresh
# process per size. Data sets built through the facade (sales, customers) are kept under
# target/bench-data between runs; scratch databases go.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
t="$CARGO_TARGET_DIR"
export CRM_BENCH_N="${CRM_BENCH_N:-10000}"
export CRM_BENCH_SIZES="${CRM_BENCH_SIZES:-10000 100000}"
export CRM_BENCH_ANALYTICS_SIZES="${CRM_BENCH_ANALYTICS_SIZES:-$CRM_BENCH_N}"
export CRM_BENCH_EXPORT_SIZES="${CRM_BENCH_EXPORT_SIZES:-10000 100000 1000000}"
secs="${CRM_BENCH_SECONDS:-4}"
criterion=(--warm-up-time 1 --measurement-time "$secs")

mkdir -p "$t"
rm -rf "$t/criterion" "$t"/bench-data/crm-* "$t"/bench-data/raw-* "$t"/bench-*.json \
    "$t/bench-output.txt" "$t/bench-times.tsv"
out="$t/bench-output.txt"
# Each part's wall time goes to bench-times.tsv (shown in the generated page).
part() {
    local name="$1" started=$SECONDS
    shift
    echo "== $name" | tee -a "$out"
    "$@" 2>&1 | tee -a "$out"
    printf '%s\t%s\n' "$name" "$((SECONDS - started))" >> "$t/bench-times.tsv"
}

part "build (bench profile)" bash -c 'cargo bench -p crm-benches --no-run && cargo build --profile bench -p crm-benches --bins'
part "core bench, $CRM_BENCH_N customers" cargo bench -p crm-benches --bench core -- "${criterion[@]}"
for n in $CRM_BENCH_SIZES; do
    if [[ "$n" != "$CRM_BENCH_N" ]]; then
        part "core bench lookups and pages, $n customers" env CRM_BENCH_N="$n" \
            cargo bench -p crm-benches --bench core -- "${criterion[@]}" 'lookup_phone|scoped_page'
    fi
    part "growth bench (batch insert), $n customers" env CRM_BENCH_N="$n" \
        cargo bench -p crm-benches --bench growth
done
part "Python wheel vs SQLAlchemy" bash benches/python/run.sh wheel --json "$t/bench-python-wheel.json"
analytics_ok=1
for n in $CRM_BENCH_ANALYTICS_SIZES; do
    part "analytics bench, $n customers" env CRM_BENCH_N="$n" \
        cargo bench -p crm-benches --bench analytics -- "${criterion[@]}"
    part "Python RFM and profit vs DuckDB, pandas, polars, $n customers" env CRM_BENCH_N="$n" \
        CRM_PY_BENCH_KEEP_WHEEL=1 bash benches/python/run.sh analytics \
        --json "$t/bench-python-analytics-$n.json" || analytics_ok=0
done
part "export peak memory" cargo run --quiet --profile bench -p crm-benches --bin export_rss -- \
    --sizes "$CRM_BENCH_EXPORT_SIZES" --out "$t/bench-export.json"

python3 benches/report.py > docs/benchmarks.md
echo "wrote docs/benchmarks.md"
if [[ "$analytics_ok" != 1 ]]; then
    echo "the library's RFM or profit differs from DuckDB's: see docs/benchmarks.md" >&2
    exit 1
fi
