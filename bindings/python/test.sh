#!/usr/bin/env bash
# Builds the Python binding into a throw-away venv and runs the stub check and the tests.
# Usage: bash bindings/python/test.sh   (from anywhere; exits non-zero on failure)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export MYPY_CACHE_DIR="$CARGO_TARGET_DIR/py-mypy-cache"
python="${PYTHON:-python3}"
venv="$CARGO_TARGET_DIR/py-venv"

rm -rf "$venv"
"$python" -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
# One release build of the extension, through maturin as the PEP 517 backend.
python -m pip install --quiet "$here[test]"

cd "$here"
# The runtime must match the stubs (run outside the source tree so the installed package is used).
(cd "$venv" && python -m mypy.stubtest crm_core --allowlist "$here/stubtest-allowlist.txt" --ignore-unused-allowlist)
# The tests use the package as a typed client would.
python -m mypy --strict --no-incremental tests
python -m pytest "$here/tests" -q -p no:cacheprovider "$@"
# Smoke test of the example tour through the installed wheel (small data set).
python "$root/examples/python/tour.py" "$venv/tour.db" --accounts 30 > "$venv/tour.out"
echo "examples/python/tour.py: ok ($(wc -l < "$venv/tour.out") lines)"
