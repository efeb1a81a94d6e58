#!/usr/bin/env bash
# Builds the wheel into a throw-away venv and runs one of the Python benches:
#   bash benches/python/run.sh [wheel] [--rows N] [--lookups N] [--json FILE]
#       crm_core wheel vs SQLAlchemy 2 ORM (bench_wheel.py)
#   bash benches/python/run.sh analytics [--repeat N] [--json FILE]
#       RFM and profit by segment × product vs DuckDB, pandas, polars on the sales data set of
#       CRM_BENCH_N customers (bench_analytics.py; builds the data set the first time)
# The venv (target/py-bench-venv) is made anew when its requirements change or with
# CRM_PY_BENCH_FRESH=1; the wheel is rebuilt from the work tree and reinstalled every time (unless
# CRM_PY_BENCH_KEEP_WHEEL=1: benches/run.sh installs it once per run).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
python="${PYTHON:-python3}"
venv="$CARGO_TARGET_DIR/py-bench-venv"
requirements=("maturin>=1.5,<2" "sqlalchemy>=2,<3" "duckdb>=1" "pandas>=2" "polars>=1" "pyarrow>=14" "numpy")

bench=wheel
case "${1:-}" in
    wheel | analytics) bench="$1"; shift ;;
esac

if [[ "${CRM_PY_BENCH_FRESH:-0}" == 1 || ! -x "$venv/bin/python" || "$(cat "$venv/.requirements" 2>/dev/null)" != "${requirements[*]}" ]]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "${requirements[@]}"
    echo "${requirements[*]}" > "$venv/.requirements"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
if [[ "${CRM_PY_BENCH_KEEP_WHEEL:-0}" != 1 ]] || ! python -c "import crm_core" 2>/dev/null; then
    python -m pip install --quiet --no-build-isolation --force-reinstall --no-deps "$root/bindings/python"
fi

case "$bench" in
    wheel) python "$here/bench_wheel.py" --workdir "$venv" "$@" ;;
    analytics)
        data="$(cd "$root" && cargo run --quiet --profile bench -p crm-benches --bin sales_data)"
        python "$here/bench_analytics.py" --data "$data" "$@"
        ;;
esac
