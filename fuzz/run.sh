#!/usr/bin/env bash
# Bounded fuzzing of every target: fuzz/run.sh [SECONDS_PER_TARGET] (default 30).
#
# Needs a nightly toolchain and cargo-fuzz (installed on first use with `cargo install
# cargo-fuzz --locked` into target/tools/cargo-fuzz, or TICKLINE_FUZZ_TOOLS). Where either is
# missing it prints a NOTICE and exits 0: a machine without nightly never fails CI for it.
# Builds the seed corpora from ../shared/data (fuzz/corpus.sh), runs each target for N seconds
# under AddressSanitizer (`cargo fuzz run`, libFuzzer), prints execs, execs/s, corpus size and
# crashes per target, and exits 1 if any target crashed (the input is in
# fuzz/artifacts/<target>/; minimize it with `cargo +nightly fuzz tmin <target> <file>` and add
# it under fuzz/regressions/<target>/, which `cargo test --test fuzz_regressions` replays).
# FUZZ_TARGETS="a b" runs only those targets. FUZZ_KEEP_GOING=1 (the longer campaign) runs
# libFuzzer in fork mode, which goes on after a crash (-fork=1 -ignore_crashes=1 -ignore_ooms=1
# -ignore_timeouts=1) and counts them all (crashes, OOMs and timeouts, duplicates included).
set -uo pipefail
secs=${1:-30}
cd "$(dirname "$0")"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "NOTICE: no nightly toolchain (rustup toolchain list); fuzzing skipped"
    exit 0
fi
tools=${TICKLINE_FUZZ_TOOLS:-$PWD/../target/tools/cargo-fuzz}
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $tools"
    if ! cargo install cargo-fuzz --locked --root "$tools" --quiet; then
        echo "NOTICE: cargo-fuzz could not be installed; fuzzing skipped"
        exit 0
    fi
fi
t_install=$SECONDS
./corpus.sh || { echo "corpus build failed" >&2; exit 1; }
t0=$SECONDS
cargo +nightly fuzz build || { echo "fuzz targets do not build" >&2; exit 1; }
t_build=$((SECONDS - t0))
t0=$SECONDS
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
max_len() {
    case $1 in
        capture) echo 65536 ;;
        rest_parsers | binance_decode | binance_diff | binance_usdm_decode) echo 70000 ;; # the real REST snapshot is 64 kB
        journal_bytes | journal_torn | config) echo 8192 ;;
        coinbase_decode) echo 65536 ;; # the capture's level2 snapshots reach 40 kB
        *) echo 4096 ;;
    esac
}
logs=${FUZZ_LOG_DIR:-logs}
mkdir -p "$logs"
printf '%-18s %12s %9s %8s %8s\n' target execs execs/s corpus crashes
failed=0
for t in $targets; do
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    before=$(ls "artifacts/$t" | wc -l)
    keep=()
    [[ ${FUZZ_KEEP_GOING:-0} == 1 ]] && keep=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
        -timeout=10 -print_final_stats=1 "${keep[@]}" >"$logs/$t.log" 2>&1
    rc=$?
    crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
    if [[ ${#keep[@]} -gt 0 ]]; then # fork mode: "#N: ... oom/timeout/crash: a/b/c time: Ts ..."
        last=$(grep -E '^#[0-9]+: cov' "$logs/$t.log" | tail -1)
        execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
        took=$(sed -E 's/.* time: ([0-9]+)s.*/\1/' <<<"$last")
        [[ -n $execs && -n $took && $took -gt 0 ]] && rate=$((execs / took))
        crashes=$(sed -E 's#.*oom/timeout/crash: ([0-9]+)/([0-9]+)/([0-9]+).*#\1+\2+\3#' <<<"$last")
        crashes=$(( ${crashes:-0} ))
    fi
    corpus=$(ls "corpus/$t" | wc -l)
    printf '%-18s %12s %9s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes"
    if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
        failed=1
        echo "CRASH in $t (exit $rc): fuzz/$logs/$t.log, fuzz/artifacts/$t/" >&2
        grep -m1 -A3 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$logs/$t.log" >&2
    fi
done
echo "time: cargo-fuzz check/install ${t_install}s, build ${t_build}s, fuzzing $((SECONDS - t0))s"
exit $failed
