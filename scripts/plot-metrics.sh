#!/bin/sh
# Plot a training metrics file: loss per task (training, per interval) and,
# when the run had --valid, held-out AUC and log-loss per task, against
# samples trained, to PNG and SVG with gnuplot.
#
#   scripts/plot-metrics.sh [--run ID] [--out PREFIX] [--title TEXT] METRICS.jsonl...
#
# METRICS.jsonl: the files `funnel-worker train` writes (metrics_file; by
# default MODEL.metrics.jsonl, on a local cluster DIR/logs/metrics-worker<i>.jsonl).
# Every run appends to its file; --run ID keeps one run (the "run" field of
# its records; `grep '"event":"start"' FILE` lists them), otherwise every
# record is drawn (a resumed run continues the samples axis of the one
# before). Several files are drawn side by side, each curve named
# FILE:task.
#
# Writes PREFIX.png and PREFIX.svg (PREFIX defaults to the first file's
# name without .jsonl) and prints their paths. Needs gnuplot (Debian
# package gnuplot-nox; scripts/install-deps.sh installs it).
set -eu
. "$(dirname "$0")/lib.sh"

RUN="" OUT="" TITLE=""
while [ $# -gt 0 ]; do
    case "$1" in
    --run) RUN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --title) TITLE=$2; shift 2 ;;
    -h | --help) help_and_exit "$0" ;;
    --) shift; break ;;
    -*) echo "plot-metrics: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "plot-metrics: no metrics file given (see --help)" >&2; exit 2; }
command -v gnuplot > /dev/null 2>&1 ||
    { echo "plot-metrics: gnuplot not found: install gnuplot-nox (scripts/install-deps.sh)" >&2; exit 2; }
for f in "$@"; do
    [ -r "$f" ] || { echo "plot-metrics: $f: no such readable metrics file" >&2; exit 2; }
done
OUT=${OUT:-${1%.jsonl}}
[ -d "$(dirname "$OUT")" ] ||
    { echo "plot-metrics: --out $OUT: directory $(dirname "$OUT") does not exist: create it first" >&2; exit 2; }
TITLE=${TITLE:-$(basename "$1")${RUN:+ run $RUN}}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/plot-metrics.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# Per file: TMP/<i>.train and TMP/<i>.valid, whitespace columns
# "samples v1 v2 ...", and TMP/<i>.train.cols / .valid.cols naming v1 v2 ...
i=0
for f in "$@"; do
    awk -v run="$RUN" -v pre="$TMP/$i" '
        function field(k,   m) {
            if (!match($0, "\"" k "\":[-0-9.e+]+|\"" k "\":null")) return "NaN"
            m = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
            return m == "null" ? "NaN" : m
        }
        function cols(kind, re,   rest, k, n) {   # keys of this record matching re, in order
            rest = $0; n = 0
            while (match(rest, "\"" re "[A-Za-z0-9_]*\":")) {
                k = substr(rest, RSTART + 1, RLENGTH - 3)
                if (!(kind SUBSEP k in seen)) { seen[kind, k] = 1; order[kind, ++nk[kind]] = k }
                rest = substr(rest, RSTART + RLENGTH)
            }
        }
        run != "" && index($0, "\"run\":\"" run "\"") == 0 { next }
        /"event":"(train|end)"/ { cols("train", "loss_"); kind = "train" }
        /"event":"valid"/ { cols("valid", "(auc|logloss)_"); kind = "valid" }
        /"event":"(train|end|valid)"/ {
            line = field("samples")
            for (c = 1; c <= nk[kind]; c++) line = line " " field(order[kind, c])
            print line > (pre "." kind)
            rows[kind]++
        }
        END {
            for (kind in nk) {
                hdr = ""
                for (c = 1; c <= nk[kind]; c++) hdr = hdr (c > 1 ? " " : "") order[kind, c]
                print hdr > (pre "." kind ".cols")
            }
            if (rows["train"] + rows["valid"] == 0) exit 1
        }' "$f" || { echo "plot-metrics: $f: no training records${RUN:+ of run $RUN}" >&2; exit 1; }
    i=$((i + 1))
done
NF=$i

# gnuplot plot clauses: one curve per column per file
plots() { # kind, column prefix (loss_, auc_, logloss_)
    out=""
    i=0
    for f in "$@"; do
        if [ -s "$TMP/$i.$KIND" ]; then
            c=2
            for name in $(cat "$TMP/$i.$KIND.cols"); do
                case "$name" in
                "$PREFIX"*)
                    t=${name#"$PREFIX"}
                    [ "$NF" -gt 1 ] && t="$(basename "$f" .jsonl):$t"
                    out="$out${out:+, }'$TMP/$i.$KIND' using 1:$c with lines lw 2 title '$t'"
                    ;;
                esac
                c=$((c + 1))
            done
        fi
        i=$((i + 1))
    done
    echo "$out"
}
KIND=train PREFIX=loss_ LOSS=$(plots "$@")
KIND=valid PREFIX=auc_ AUC=$(plots "$@")
KIND=valid PREFIX=logloss_ VLOSS=$(plots "$@")
NPLOT=1
[ -n "$AUC" ] && NPLOT=3

script() { # terminal line, output file
    cat << GP
set terminal $1
set output '$2'
set datafile missing 'NaN'
set key outside right top
set grid
set xrange [0:*]
set multiplot layout $NPLOT,1 title '$(echo "$TITLE" | sed "s/'/ /g")'
set xlabel 'samples'
set ylabel 'training loss'
set logscale y
plot $LOSS
unset logscale y
GP
    if [ -n "$AUC" ]; then
        printf "set ylabel 'held-out AUC'\nplot %s\n" "$AUC"
        printf "set ylabel 'held-out log-loss'\nset logscale y\nplot %s\n" "$VLOSS"
    fi
    echo "unset multiplot"
}
H=$((NPLOT * 300 + 100))
script "pngcairo size 900,$H font ',10'" "$OUT.png" | gnuplot
script "svg size 900,$H dynamic font ',10'" "$OUT.svg" | gnuplot
echo "$OUT.png"
echo "$OUT.svg"
