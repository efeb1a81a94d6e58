#!/usr/bin/env bash
# Builds the wheel into a throw-away venv with SQLAlchemy 2 and runs bench_wheel.py.
# Usage: bash benches/python/run.sh [--rows N] [--lookups N]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
python="${PYTHON:-python3}"
venv="$CARGO_TARGET_DIR/py-bench-venv"

rm -rf "$venv"
"$python" -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "$root/bindings/python" "sqlalchemy>=2,<3"
python "$here/bench_wheel.py" --workdir "$venv" "$@"
