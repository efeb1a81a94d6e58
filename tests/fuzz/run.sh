#!/usr/bin/env bash
# Builds the fuzz targets of tests/fuzz and runs each for a while.
#
#   bash tests/fuzz/run.sh           # 60 s per target
#   bash tests/fuzz/run.sh 3600      # a long run: one hour per target
#   bash tests/fuzz/run.sh 120 filter_text import_reader   # only some targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). The machine's stable toolchain is enough:
# cargo fuzz passes nightly-only codegen flags (-Zsanitizer=address, sanitizer coverage), which
# stable rustc accepts with RUSTC_BOOTSTRAP=1.
#
# Layout (all under tests/fuzz; target/ and artifacts/ are git-ignored):
#   corpus/<target>/       seed corpus, committed (regenerate: see examples/make_seeds.rs)
#   regressions/<target>/  minimised crash inputs, committed; replayed by the seed run below and by
#                          `cargo test -p crm-tests --test fuzz_regressions`
#   target/                the build (its own target dir: never the main workspace's), the
#                          working corpora libFuzzer grows (target/corpus/<target>) and the logs
#                          (target/logs/<target>.log)
#   artifacts/<target>/    crash-*, oom-*, timeout-* inputs found by this run
#
# A crash stops that target (libFuzzer's default). Reproduce, minimise, keep it as a regression:
#   tests/fuzz/target/x86_64-unknown-linux-gnu/release/<target> tests/fuzz/artifacts/<target>/crash-…
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin --fuzz-dir tests/fuzz --target-dir tests/fuzz/target \
#       <target> tests/fuzz/artifacts/<target>/crash-…
#   cp tests/fuzz/artifacts/<target>/minimized-from-… tests/fuzz/regressions/<target>/<name>
# and check that `cargo test -p crm-tests --test fuzz_regressions` now fails on it.
#
# CRM_FUZZ_STRICT=1 in the environment also counts `Storage` errors as bugs (see src/lib.rs).
#
# Prints one summary line per target; exits 1 when any target crashed.
set -euo pipefail

secs="${1:-60}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
fuzz=tests/fuzz
all_targets=(filter_text filter_api record_input import_reader)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
common=(--fuzz-dir "$fuzz" --target-dir "$fuzz/target")

# Build once, then run the binaries themselves: `cargo fuzz run` would rebuild before every target,
# and crm-core/crm-store may change under a long run (other people work in the same tree).
echo "== building ${targets[*]} (release, debug assertions, AddressSanitizer)"
for t in "${targets[@]}"; do
    cargo fuzz build "${common[@]}" "$t"
done
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$fuzz/target/$triple/release"

# Per-target libFuzzer options: input size (the import seed is a 10 kB export) and dictionary.
opts_for() {
    case "$1" in
        filter_text) echo "-max_len=4096 -dict=$fuzz/dict/filter_text.dict" ;;
        import_reader) echo "-max_len=16384" ;;
        *) echo "-max_len=4096" ;;
    esac
}

mkdir -p "$fuzz/target/logs"
summary=()
failed=0
for t in "${targets[@]}"; do
    work="$fuzz/target/corpus/$t"
    arts="$fuzz/artifacts/$t"
    log="$fuzz/target/logs/$t.log"
    mkdir -p "$work" "$arts" "$fuzz/corpus/$t" "$fuzz/regressions/$t"
    before=$(find "$arts" -maxdepth 1 -type f | wc -l)
    touch "$log.start"
    echo "== $t: ${secs}s (log: $log)"
    # The first corpus directory is the one libFuzzer writes new inputs to: the working corpus, so
    # the committed seeds and regressions only ever grow by hand.
    set +e
    "$bin_dir/$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=6144 -malloc_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$arts/" $(opts_for "$t") \
        "$work" "$fuzz/corpus/$t" "$fuzz/regressions/$t" >"$log" 2>&1 # opts: split on purpose
    rc=$?
    set -e
    after=$(find "$arts" -maxdepth 1 -type f | wc -l)
    crashes=$((after - before))
    [ $rc -ne 0 ] && [ $crashes -eq 0 ] && crashes=1 # died without an artefact (e.g. a build error)
    runs=$(grep -o 'stat::number_of_executed_units:[[:space:]]*[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    rate=$(grep -o 'stat::average_exec_per_sec:[[:space:]]*[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    if [ -z "$runs" ]; then # stopped early (a crash): take the last status line
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
        rate=$(grep -oE 'exec/s: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
    fi
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
    line="$t: runs=${runs:-0} exec/s=${rate:-?} cov=${cov:-?} crashes=$crashes"
    if [ $crashes -ne 0 ]; then
        failed=1
        new=$(find "$arts" -maxdepth 1 -type f -newer "$log.start" 2>/dev/null | head -3 | tr '\n' ' ' || true)
        line="$line ${new:+artefacts: $new}(see $log)"
    fi
    summary+=("$line")
done

echo "== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit $failed
