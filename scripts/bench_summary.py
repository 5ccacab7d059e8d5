#!/usr/bin/env python3
"""Merge several runs of scripts/bench.sh into one report of min/median/max.

    scripts/bench_summary.py RUN_DIR... > summary.txt

Each RUN_DIR holds one run's NAME.txt files (bench.sh's BENCH_DIR) and
its env.txt (printed as it is, run by run). A line
of a benchmark's output is matched across the runs by its template: the
line with every number replaced by a placeholder (the k-th line of a
template in one run goes with the k-th in each other run). Each number of
a line found in every run is printed as min/median/max over the runs (one
value when all runs agree); a line missing from some run is merged over
the runs that printed it and marked with how many did. Numbers
glued to a letter before them (esm2, fp16, x86) are part of the words.
"""
import os
import re
import statistics
import sys

NUM = re.compile(r"(?<![A-Za-z_0-9.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def template(line):
    """The line's words: numbers masked, runs of blanks as one (columns move)."""
    return re.sub(r"\s+", " ", NUM.sub("#", line)).strip()


def fmt(texts):
    """min/median/max of the numbers texts, at the most decimals any run printed."""
    if len(set(texts)) == 1:
        return texts[0]
    if any("e" in t.lower() for t in texts):
        return "/".join(f"{v:g}" for v in spread(texts))
    dec = max(len(t.split(".")[1]) if "." in t else 0 for t in texts)
    return "/".join(f"{v:.{dec}f}" for v in spread(texts))


def spread(texts):
    v = sorted(float(t) for t in texts)
    return v[0], statistics.median(v), v[-1]


def merge(files):
    runs = []
    for path in files:
        try:
            with open(path, errors="replace") as fh:
                runs.append([l.rstrip("\n") for l in fh])
        except OSError:
            runs.append(None)
    present = [r for r in runs if r is not None]
    if not present:
        return []
    # k-th occurrence of a template in each run
    index = []
    for r in present:
        seen, m = {}, {}
        for line in r:
            t = template(line)
            k = seen.get(t, 0)
            seen[t] = k + 1
            m[(t, k)] = line
        index.append(m)
    out, seen = [], {}
    order = []
    for r in present:  # every template, first run first
        cnt = {}
        for line in r:
            t = template(line)
            k = cnt.get(t, 0)
            cnt[t] = k + 1
            if (t, k) not in seen:
                seen[(t, k)] = True
                order.append((t, k))
    for key in order:
        lines = [m[key] for m in index if key in m]
        nums = [NUM.findall(l) for l in lines]
        parts = NUM.split(lines[0])
        merged = parts[0]
        for i in range(len(nums[0])):
            texts = [n[i] for n in nums]
            merged += fmt(texts) + parts[i + 1]
        if len(lines) < len(present):
            merged += f"   [{len(lines)} of {len(present)} runs]"
        out.append(merged)
    return out


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    dirs = argv[1:]
    names = []
    for d in dirs:
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if f.endswith(".txt") and f not in names:
                names.append(f)
    print(f"# {len(dirs)} runs; each number: min/median/max over the runs (one value: all equal)")
    if "env.txt" in names:  # each run's environment, verbatim
        names.remove("env.txt")
        print("\n== environment of each run")
        for d in dirs:
            with open(os.path.join(d, "env.txt"), errors="replace") as fh:
                print("  " + "\n  ".join(l.rstrip("\n") for l in fh))
    for n in names:
        print(f"\n== {n[:-4]}")
        for line in merge([os.path.join(d, n) for d in dirs]):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
