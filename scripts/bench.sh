#!/bin/sh
# make bench: every benchmark prints numbers; nothing is asserted.
# Ratios are measured in the same run, so a noisy shared machine moves both
# sides together.
#
#   scripts/bench.sh [BINDIR] [NAME...]     NAME: reader codec table train torch ps curve mem export e2e wire serve
set -u
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h | --help) help_and_exit "$0" ;; esac
BIN=${1:-bin}
need_prog bench "$BIN" funnel-ps
[ $# -gt 0 ] && shift
WANT="${*:-reader codec table train torch ps curve mem export e2e wire serve}"
OUT=${BENCH_DIR:-bench-out}
mkdir -p "$OUT"
want() { case " $WANT " in *" $1 "*) return 0 ;; esac; return 1; }
run() { # name, command...
    n=$1; shift
    printf '\n== %s\n' "$n"
    "$@" 2>&1 | tee "$OUT/$n.txt"
}

want reader && [ -x "$BIN/bench-reader" ] && run reader "$BIN/bench-reader"
want codec && [ -x "$BIN/bench-codec" ] && run codec "$BIN/bench-codec"
want table && [ -x "$BIN/bench-table" ] && run table "$BIN/bench-table"
want train && [ -x "$BIN/bench-train" ] && run train "$BIN/bench-train"
# the same under OpenBLAS's AVX-512 kernels (issue 16) where the CPU has
# them: without the environment's OpenBLAS overrides when OpenBLAS detects
# an AVX-512 core itself, else forced (OpenBLAS 0.3.21 does not know
# Sapphire Rapids and falls back to its Prescott kernels there)
if want train && [ -x "$BIN/bench-train" ] && grep -q '^flags.* avx512f' /proc/cpuinfo; then
    core=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$BIN/bench-train" --core 2>/dev/null)
    case "$core" in
    SkylakeX | Cooperlake | SapphireRapids)
        if env | grep -q '^OPENBLAS_\(CORETYPE\|L2_SIZE\)='; then
            run train-detected env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$BIN/bench-train"
        fi ;;
    *) run train-detected env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=SkylakeX "$BIN/bench-train" ;;
    esac
fi
if want torch && [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    printf '\n== torch (PyTorch CPU reference, same model and batch; best thread setting)\n'
    best=0
    for tb in "1 1" "2 2" "1 2"; do
        set -- $tb
        r=$(OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_model.py throughput \
            --model esm2 --threads "$1" --blas-threads "$2" --batches 200 --warmup 20 2>/dev/null |
            tail -n 1)
        sps=$(printf '%s' "$r" | sed -n 's/.*"samples_per_s": *\([0-9.]*\).*/\1/p')
        echo "torch esm2 threads=$1 blas_threads=$2: ${sps:-?} samples/s"
        if [ -n "$sps" ] && awk "BEGIN{exit !($sps > $best)}"; then best=$sps; fi
    done | tee "$OUT/torch.txt"
    best=$(sed -n 's/.*: \([0-9.]*\) samples\/s/\1/p' "$OUT/torch.txt" | sort -g | tail -n 1)
    ours=$(sed -n 's/^train esm2 threads=[0-9]* par=[a-z]*: \([0-9.]*\) samples\/s.*/\1/p' "$OUT/train.txt" 2>/dev/null |
        sort -g | tail -n 1)
    if [ -n "$best" ] && [ -n "$ours" ]; then
        awk -v o="$ours" -v t="$best" \
            'BEGIN{printf "funnel / PyTorch (esm2, best of each): %.0f / %.0f = %.2fx\n", o, t, o/t}' |
            tee -a "$OUT/torch.txt"
    fi
    ours=$(sed -n 's/^train esm2 threads=[0-9]* par=[a-z]*: \([0-9.]*\) samples\/s.*/\1/p' "$OUT/train-detected.txt" \
        2>/dev/null | sort -g | tail -n 1)
    if [ -f "$OUT/train-detected.txt" ] && [ -n "$best" ] && [ -n "$ours" ]; then
        awk -v o="$ours" -v t="$best" \
            'BEGIN{printf "funnel (detected kernel) / PyTorch (esm2, best of each): %.0f / %.0f = %.2fx\n", o, t, o/t}' |
            tee -a "$OUT/torch.txt"
    fi
    # bottoms (issue 15): esm2 on mmoe and ple, PyTorch on 2 threads beside
    # funnel's best 2-thread setting of the same model (bench-train, either
    # kernel)
    for b in mmoe ple; do
        r=$(OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_model.py throughput \
            --model esm2 --bottom "$b" --threads 2 --blas-threads 2 --batches 100 --warmup 10 \
            2>/dev/null | tail -n 1)
        t=$(printf '%s' "$r" | sed -n 's/.*"samples_per_s": *\([0-9.]*\).*/\1/p')
        o=$(cat "$OUT/train.txt" "$OUT/train-detected.txt" 2>/dev/null |
            sed -n "s/^train esm2+$b threads=2 par=[a-z]*: \([0-9.]*\) samples\/s.*/\1/p" |
            sort -g | tail -n 1)
        echo "torch esm2+$b threads=2 blas_threads=2: ${t:-?} samples/s"
        if [ -n "$t" ] && [ -n "$o" ]; then
            awk -v o="$o" -v t="$t" -v b="$b" \
                'BEGIN{printf "funnel / PyTorch (esm2 on %s, 2 threads): %.0f / %.0f = %.2fx\n", b, o, t, o/t}'
        fi
    done | tee -a "$OUT/torch.txt"
fi
want ps && [ -x "$BIN/bench-ps" ] && run ps "$BIN/bench-ps"
want curve && [ -x "$BIN/bench-curve" ] && run curve "$BIN/bench-curve"
want mem && [ -x "$BIN/bench-mem" ] && run mem env FUNNEL_BIN="$BIN" "$BIN/bench-mem"
want export && [ -x "$BIN/bench-export" ] && run export "$BIN/bench-export"
want e2e && [ -x "$BIN/funnel-gen" ] && [ -x "$BIN/funnel-worker" ] && run e2e scripts/bench-e2e.sh "$BIN"
# bytes on the wire per sample, wire_fp16 (issue 13)
want wire && [ -x "$BIN/funnel-gen" ] && [ -x "$BIN/funnel-worker" ] && run wire scripts/bench-wire.sh "$BIN"
# funnel-serve: requests/s, latency, delta apply (issue 14)
want serve && [ -x "$BIN/bench-serve" ] && run serve env FUNNEL_BIN="$BIN" "$BIN/bench-serve"
printf '\nResults are in %s/.\n' "$OUT"
