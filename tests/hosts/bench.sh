#!/bin/sh
# bench.sh - training throughput across hosts (make bench-hosts; root).
#
#   tests/hosts/bench.sh [BINDIR] [LINES] [RUNS] [RATE]
#
# 2 shards on hosts h0 and h1 and 1, 2 or 4 workers on hosts h2..h5, every
# host's link capped at RATE (default 1gbit) both ways with tc tbf
# (tests/hosts/hosts.sh), on a funnel-gen log of LINES lines (default
# 300000), RUNS times each (default 3; RATE '' for no cap): samples/s of the job (samples
# trained / the slowest worker's time) as min / median / max, beside the
# in-process figure on the same log. Each worker count runs with float32
# rows and dense vector on the wire and with `wire_fp16 = true` (16-bit),
# alternating run by run (WIRE="fp32" or "fp16" for one of them), and the
# bytes a sample moves are printed beside the rate. Every namespace and
# process is removed at the end, also on failure. Prints numbers; asserts
# nothing.
set -u
case "${1:-}" in -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
BIN=${1:-bin}
LINES=${2:-300000}
RUNS=${3:-3}
RATE=${4-1gbit}
WIRE=${WIRE:-fp32 fp16}
H=$(dirname "$0")/hosts.sh
ID=b$$
MODEL="--towers 256,128,64"
[ "$(id -u)" = 0 ] || { echo "bench-hosts: needs root (network namespaces)" >&2; exit 1; }
[ -x "$BIN/funnel-worker" ] || { echo "bench-hosts: $BIN/funnel-worker not found: run make" >&2; exit 1; }
DIR=$(mktemp -d /tmp/bench-hosts.XXXXXX)
cleanup() { "$H" down "$ID" 2> /dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN/funnel-gen" --out "$DIR/w" --train "$LINES" --test 1000 --seed 5 > "$DIR/gen.log" 2>&1 ||
    { echo "bench-hosts: funnel-gen failed (see $DIR/gen.log)" >&2; exit 1; }

# samples/s of a job from its workers' summaries: sum of samples / max seconds
job_rate() {
    sed -n 's/.*INFO trained \([0-9]*\) samples in \([0-9.]*\) s.*/\1 \2/p' "$@" |
        awk '{n += $1; if ($2 > t) t = $2} END {if (t > 0) printf "%.0f", n / t}'
}

stats() { # min / median / max of the numbers given
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%8.0f / %8.0f / %8.0f", v[1], v[int((NR + 1) / 2)], v[NR]}'
}

rates=""
for r in $(seq "$RUNS"); do
    "$BIN/funnel-worker" train $MODEL --progress off --model "$DIR/inproc$r" "$DIR/w/train.tsv" \
        > "$DIR/inproc$r.log" 2>&1 || { echo "bench-hosts: in-process run failed" >&2; exit 1; }
    rates="$rates $(job_rate "$DIR/inproc$r.log")"
    rm -rf "$DIR/inproc$r"
done
printf 'hosts  in process           samples/s min / median / max: %s  (%d lines, %d runs)\n' \
    "$(stats $rates)" "$LINES" "$RUNS"

"$H" up "$ID" 6 "$RATE" || exit 1
EPS="tcp://$("$H" addr 0):7700,tcp://$("$H" addr 1):7700"
# bytes on the wire per trained sample, both directions, of a job's workers
job_bytes() {
    sed -n 's/.*wire bytes ([a-z0-9_]*): pull \([0-9]*\) out \([0-9]*\) in ([0-9]* requests), push \([0-9]*\) out \([0-9]*\) in ([0-9]*), pull_dense \([0-9]*\) out \([0-9]*\) in ([0-9]*), push_dense \([0-9]*\) out \([0-9]*\) in.*/\1 \2 \3 \4 \5 \6 \7 \8/p' "$@" |
        awk '{for (i = 1; i <= 8; i++) b += $i} END {printf "%.0f", b}'
}

for nw in 1 2 4; do
    for w in $WIRE; do eval "rates_$w=''; bytes_$w=0"; done
    for r in $(seq "$RUNS"); do
        for w in $WIRE; do
            d="$DIR/w${nw}r$r$w"
            fp16=false
            [ "$w" = fp16 ] && fp16=true
            mkdir -p "$d"
            shards=""
            for s in 0 1; do
                "$H" exec "$ID" "$s" "$BIN/funnel-ps" --shard "$s" --shards 2 --insecure \
                    --listen "tcp://$("$H" addr "$s"):7700" --data "$d/ps$s" $MODEL > "$d/ps$s.log" 2>&1 &
                shards="$shards $!"
            done
            pids=""
            for k in $(seq 0 $((nw - 1))); do
                "$H" exec "$ID" $((2 + k)) "$BIN/funnel-worker" train --ps "$EPS" --rank "$k" \
                    --workers "$nw" --progress off --deadline_s 120 --wire_fp16 "$fp16" \
                    --metrics_file "$d/metrics$k.jsonl" $MODEL "$DIR/w/train.tsv" \
                    > "$d/worker$k.log" 2>&1 &
                pids="$pids $!"
            done
            ok=1
            for p in $pids; do wait "$p" || ok=0; done
            kill $shards 2> /dev/null # SIGTERM: each shard flushes and stops
            for p in $shards; do wait "$p"; done
            [ "$ok" = 1 ] || { echo "bench-hosts: a worker failed (see $d)" >&2; exit 1; }
            eval "rates_$w=\"\$rates_$w $(job_rate "$d"/worker*.log)\""
            eval "bytes_$w=$(job_bytes "$d"/worker*.log)"
            rm -rf "$d"
        done
    done
    for w in $WIRE; do
        eval "rates=\$rates_$w; bytes=\$bytes_$w"
        printf 'hosts  %d worker(s), 2 shards, %s  samples/s min / median / max: %s  (each host %s; %.2f kB a sample on the wire)\n' \
            "$nw" "$w" "$(stats $rates)" "${RATE:-uncapped}" "$(echo "$bytes $LINES" | awk '{print $1 / $2 / 1000}')"
    done
done
