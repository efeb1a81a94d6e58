#!/usr/bin/env bash
# The one script CI calls to prove the UniFFI binding from the JVM:
#   1. builds the native library (debug: faster to build, fast enough to test),
#   2. generates the Kotlin, Swift and Python bindings from it (library mode),
#   3. import-checks the Python binding, compiles Swift only when swiftc exists,
#   4. compiles and runs the JUnit 5 suite (Kotlin and plain Java) with Maven.
# Exits non-zero on the first failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
lib="$target/debug/libcrm_ffi.so"
gen="$here/target/generated-sources/uniffi"
other="$here/target/generated-bindings"

cd "$repo"
echo "==> cargo build -p crm-ffi -p uniffi-bindgen"
cargo build -q -p crm-ffi -p uniffi-bindgen

bindgen() { "$target/debug/uniffi-bindgen" generate "$lib" --no-format "$@"; }

echo "==> generating Kotlin, Swift and Python bindings"
rm -rf "$gen" "$other"
bindgen --language kotlin --out-dir "$gen"
bindgen --language swift --out-dir "$other/swift"
bindgen --language python --out-dir "$other/python"

if command -v python3 >/dev/null 2>&1; then
    echo "==> python import check"
    ln -sf "$lib" "$other/python/"
    (cd "$other/python" && python3 -c "import crm_ffi; h = crm_ffi.CrmHandle.open_in_memory(None); s = h.bootstrap('py', 'admin', None); print('python binding ok:', s.tenant_id())")
fi
if command -v swiftc >/dev/null 2>&1; then
    echo "==> swiftc typecheck"
    (cd "$other/swift" && swiftc -typecheck -module-name CrmFfi -Xcc -fmodule-map-file=CrmFfiFFI.modulemap CrmFfi.swift)
else
    echo "==> swiftc not found: Swift binding generated only ($other/swift)"
fi

echo "==> mvn test"
cd "$here"
mvn -q -B test -Dcrm.native.dir="$target/debug"
# -q hides surefire's summary: print the totals from its reports.
python3 - "$here/target/surefire-reports" <<'PY' || true
import glob, sys, xml.etree.ElementTree as ET
t = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for f in glob.glob(sys.argv[1] + "/TEST-*.xml"):
    r = ET.parse(f).getroot()
    print(f"    {r.get('name')}: {r.get('tests')} tests")
    for k in t:
        t[k] += int(r.get(k, 0))
print("    total: {tests} tests, {failures} failures, {errors} errors, {skipped} skipped".format(**t))
PY
echo "==> bindings/kotlin: all tests passed"
