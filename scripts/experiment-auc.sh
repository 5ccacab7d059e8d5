#!/bin/sh
# The model comparison of issue 3, reproducible:
#   for seeds 1 2 3: funnel-gen --train 2000000 --test 500000 (default world);
#   funnel's esm2, esmm and naive, one epoch each, and the PyTorch reference
#   of the same three (bench/torch_model.py), scored by funnel-worker eval
#   against the truth file; plus the ablation --action_informative false
#   (seed 1, funnel's three models).
# Prints a markdown table of mean +- std per model and task (scripts/auc_table.py).
#
#   scripts/experiment-auc.sh [BINDIR] [OUTDIR]      (about 25 minutes on 2 cores)
# Environment: SEEDS (default "1 2 3"), TORCH=0 to skip PyTorch.
set -eu
BIN=${1:-bin}
OUT=${2:-experiment-out}
SEEDS=${SEEDS:-"1 2 3"}
TORCH=${TORCH:-1}
mkdir -p "$OUT"

run_funnel() { # world-dir tag model
    d=$1 tag=$2 m=$3
    [ -f "$OUT/$tag-funnel-$m.json" ] && return 0
    "$BIN/funnel-worker" train --model_type "$m" --model "$OUT/model-$tag-$m" --progress off \
        "$d/train.tsv" > "$OUT/$tag-funnel-$m.train.log" 2>&1
    "$BIN/funnel-worker" predict --model_type "$m" --model "$OUT/model-$tag-$m" \
        --in "$d/test.tsv" --out "$OUT/$tag-funnel-$m.pred" > /dev/null 2>&1
    "$BIN/funnel-worker" eval --pred "$OUT/$tag-funnel-$m.pred" --log "$d/test.tsv" \
        --truth "$d/test.truth.tsv" --json > "$OUT/$tag-funnel-$m.json" 2> /dev/null
    rm -rf "$OUT/model-$tag-$m" "$OUT/$tag-funnel-$m.pred"
    echo "  funnel $m done"
}

run_torch() { # world-dir tag model
    d=$1 tag=$2 m=$3
    [ -f "$OUT/$tag-torch-$m.json" ] && return 0
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_model.py train-eval --model "$m" \
        --threads 1 --blas-threads 2 --seed 1 --train "$d/train.tsv" --test "$d/test.tsv" \
        --pred "$OUT/$tag-torch-$m.pred" > "$OUT/$tag-torch-$m.log" 2>&1
    "$BIN/funnel-worker" eval --pred "$OUT/$tag-torch-$m.pred" --log "$d/test.tsv" \
        --truth "$d/test.truth.tsv" --json > "$OUT/$tag-torch-$m.json" 2> /dev/null
    rm -f "$OUT/$tag-torch-$m.pred"
    echo "  torch $m done"
}

for s in $SEEDS; do
    d="$OUT/world-seed$s"
    [ -f "$d/test.truth.tsv" ] || "$BIN/funnel-gen" --out "$d" --train 2000000 --test 500000 \
        --seed "$s" > /dev/null 2>&1
    echo "seed $s"
    for m in esm2 esmm naive; do run_funnel "$d" "seed$s" "$m"; done
    if [ "$TORCH" = 1 ]; then
        for m in esm2 esmm naive; do run_torch "$d" "seed$s" "$m"; done
    fi
done
d="$OUT/world-ablation"
[ -f "$d/test.truth.tsv" ] || "$BIN/funnel-gen" --out "$d" --train 2000000 --test 500000 \
    --seed 1 --action_informative false > /dev/null 2>&1
echo "ablation: --action_informative false"
for m in esm2 esmm naive; do run_funnel "$d" "ablation" "$m"; done
/usr/bin/python3 scripts/auc_table.py "$OUT"
