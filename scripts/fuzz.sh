#!/bin/sh
# Run funnel's libFuzzer targets, each for SECONDS, from its seed corpus,
# and print one line per target: executions, speed, corpus growth, result.
#
#   scripts/fuzz.sh BIN SECONDS NAME...    (make fuzz / make fuzz-smoke)
#
# BIN holds fuzz-<NAME> (built by `make fuzz`); the seeds are
# tests/fuzz/corpus/<NAME>/ and are only read: inputs the run finds go to
# build/fuzz/run/<NAME>/ (kept, so a longer run continues from them). A
# crash, leak, timeout (10 s) or sanitizer report fails the run; the input
# is saved as build/fuzz/crash-<NAME>-* and the log as build/fuzz/<NAME>.log.
# Reproduce one with: BIN/fuzz-<NAME> build/fuzz/crash-<NAME>-...
set -eu
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac
[ $# -ge 3 ] || { echo "fuzz.sh: usage: fuzz.sh BIN SECONDS NAME... (see --help)" >&2; exit 2; }
bin=$1 secs=$2
shift 2
out=build/fuzz
failed=""
printf '%-8s %12s %10s %8s %8s  %s\n' target runs "execs/s" seeds corpus result
for name in "$@"; do
    need_prog fuzz.sh "$bin" "fuzz-$name"
    seeds=tests/fuzz/corpus/$name
    work=$out/run/$name
    mkdir -p "$work"
    log=$out/$name.log
    if "$bin/fuzz-$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/crash-$name-" "$work" "$seeds" >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (see $log)"
        failed="$failed $name"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    nseeds=$(find "$seeds" -type f | wc -l)
    ncorpus=$(find "$work" -type f | wc -l)
    printf '%-8s %12s %10s %8s %8s  %s\n' "$name" "${runs:-?}" "${speed:-?}" "$nseeds" "$ncorpus" "$result"
done
if [ -n "$failed" ]; then
    echo "fuzz.sh: failed:$failed" >&2
    exit 1
fi
