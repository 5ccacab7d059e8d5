#!/usr/bin/python3
"""Aggregate experiment-auc.sh results (eval --json files) into markdown:
mean +- std over seeds of each implementation/model's AUC per task, the
oracle's AUC on the same rows, and the ablation."""
import glob
import json
import os
import re
import statistics
import sys

TASKS = [("ctr", "CTR"), ("cvr", "CVR (clicked)"), ("ctcvr", "CTCVR"), ("ctavr", "CTAVR"),
         ("cvr_entire_space", "CVR entire space")]


def load(out):
    runs = {}
    for path in glob.glob(os.path.join(out, "*.json")):
        m = re.match(r"(seed\d+|ablation)-(funnel|torch)-(\w+)\.json$", os.path.basename(path))
        if not m:
            continue
        with open(path) as f:
            text = f.read().strip()
        if not text:
            continue
        runs[(m.group(1), m.group(2), m.group(3))] = json.loads(text)
    return runs


def cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return "%.4f" % values[0]
    return "%.4f ± %.4f" % (statistics.mean(values), statistics.stdev(values))


def auc(run, task):
    t = run["tasks"].get(task) if task != "cvr_entire_space" else run.get("cvr_entire_space")
    return None if not t else t.get("auc")


def oracle(run, task):
    t = run["tasks"].get(task) if task != "cvr_entire_space" else run.get("cvr_entire_space")
    return None if not t else t.get("oracle_auc")


def table(runs, tags, title):
    print("### " + title + "\n")
    print("| model | " + " | ".join(name for _, name in TASKS) + " |")
    print("|---|" + "---|" * len(TASKS))
    for impl in ("funnel", "torch"):
        for model in ("esm2", "esmm", "naive"):
            sel = [runs[(t, impl, model)] for t in tags if (t, impl, model) in runs]
            if not sel:
                continue
            print("| %s %s (n=%d) | " % (impl, model, len(sel)) +
                  " | ".join(cell([auc(r, t) for r in sel]) for t, _ in TASKS) + " |")
    sel = [runs[k] for k in runs if k[0] in tags and k[2] == "esm2"]
    if sel:
        print("| oracle | " + " | ".join(cell([oracle(r, t) for r in sel][:len(tags)])
                                        for t, _ in TASKS) + " |")
    print()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "experiment-out"
    runs = load(out)
    seeds = sorted({k[0] for k in runs if k[0].startswith("seed")})
    table(runs, seeds, "Default world, one epoch, %d seed(s): AUC mean ± std" % len(seeds))
    if any(k[0] == "ablation" for k in runs):
        table(runs, ["ablation"], "Ablation --action_informative false (seed 1)")


if __name__ == "__main__":
    main()
