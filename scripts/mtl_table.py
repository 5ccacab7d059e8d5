#!/usr/bin/python3
"""mtl_table.py OUT - the markdown tables of scripts/experiment-mtl.sh.

Reads OUT/c<corr>-s<seed>-<impl>-<bottom>.json (funnel-worker eval --json)
and prints, per implementation (funnel, torch), a table with a row per task
correlation and a column per bottom holding the AUC of each task (ctr, cvr
on clicked rows, ctcvr), mean +- std over the seeds present (n given), then
the gaps concat, mmoe and ple - shared in cvr and ctcvr AUC per correlation.
"""
import glob
import json
import os
import re
import statistics
import sys

TASKS = ("ctr", "cvr", "ctcvr")
BOTTOMS = ("concat", "shared", "mmoe", "ple")
NAME = re.compile(r"c([0-9.]+)-s(\d+)-(funnel|torch)-(\w+)\.json$")


def fmt(v):
    if not v:
        return "-"
    if len(v) == 1:
        return "%.4f" % v[0]
    return "%.4f ± %.4f" % (statistics.mean(v), statistics.stdev(v))


def main(out):
    auc = {}  # (impl, corr, bottom, task) -> [auc per seed]
    seeds = {}
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        m = NAME.search(os.path.basename(path))
        if not m:
            continue
        corr, seed, impl, bottom = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        with open(path) as f:
            tasks = json.load(f)["tasks"]
        seeds.setdefault(impl, set()).add(seed)
        for t in TASKS:
            auc.setdefault((impl, corr, bottom, t), []).append(tasks[t]["auc"])
    corrs = sorted({k[1] for k in auc}, key=float, reverse=True)
    for impl in ("funnel", "torch"):
        if impl not in seeds:
            continue
        print("\n### %s (esm2 heads; %d seed%s: %s)\n" % (
            impl, len(seeds[impl]), "" if len(seeds[impl]) == 1 else "s",
            ", ".join(str(s) for s in sorted(seeds[impl]))))
        print("| task_corr | task | " + " | ".join(BOTTOMS) + " |")
        print("|---|---|" + "---|" * len(BOTTOMS))
        for c in corrs:
            for t in TASKS:
                print("| %s | %s | " % (c, t) + " | ".join(
                    fmt(auc.get((impl, c, b, t))) for b in BOTTOMS) + " |")
        for task in ("cvr", "ctcvr"):
            print("\n%s AUC gaps over the shared bottom (mean over seeds):\n" % task)
            print("| task_corr | concat - shared | mmoe - shared | ple - shared |")
            print("|---|---|---|---|")
            for c in corrs:
                base = auc.get((impl, c, "shared", task))
                row = []
                for b in ("concat", "mmoe", "ple"):
                    v = auc.get((impl, c, b, task))
                    row.append("%+.4f" % (statistics.mean(v) - statistics.mean(base))
                               if v and base else "-")
                print("| %s | %s |" % (c, " | ".join(row)))

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: mtl_table.py OUT")
    main(sys.argv[1])
