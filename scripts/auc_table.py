#!/usr/bin/python3
"""Markdown tables of the issue-3 model comparison (scripts/experiment-auc.sh).

    scripts/auc_table.py OUTDIR

Reads OUTDIR/TAG-IMPL-MODEL.json (funnel-worker eval --json; TAG is seedN or
ablationN, IMPL funnel or torch, MODEL esm2, esmm or naive), funnel's loss
records TAG-funnel-MODEL.metrics.jsonl and PyTorch's progress lines in
TAG-torch-MODEL.log, and prints:

  - AUC per task, mean +- sample std over the seeds, for every implementation
    and model, and the Bayes-optimal (oracle) AUC on the same rows;
  - criterion 1: funnel minus PyTorch per model and task (>= -0.005 passes);
  - criterion 2: esm2's lead over esmm and naive on entire-space CVR AUC and
    CTCVR AUC against the seed-to-seed spread, unpaired (difference of the
    means vs the larger of the two std) and paired (per-seed differences);
  - esmm against naive, as measured;
  - the same for the ablation worlds;
  - mean training loss per task over the epoch and over its second half,
    funnel beside PyTorch;
  - every run's AUCs.

Standard library only.
"""
import glob
import json
import os
import re
import statistics
import sys

TASKS = [("ctr", "CTR"), ("cvr", "CVR (clicked)"), ("ctcvr", "CTCVR"), ("ctavr", "CTAVR"),
         ("cvr_es", "CVR entire space")]
MODELS = ("esm2", "esmm", "naive")
IMPLS = ("funnel", "torch")
TOLERANCE = 0.005      # criterion 1: funnel >= torch - TOLERANCE
LEAD_TASKS = ("cvr_es", "ctcvr")
NAME_RE = re.compile(r"(seed\d+|ablation\d*)-(funnel|torch)-(esm2|esmm|naive)\.json$")
TORCH_PROGRESS_RE = re.compile(r"^batch (\d+)\s+samples (\d+)\s+(.*?)\s+\d+ samples/s$")


def load(out):
    """{(tag, impl, model): eval json} of every complete run in out."""
    runs = {}
    for path in glob.glob(os.path.join(out, "*.json")):
        m = NAME_RE.match(os.path.basename(path))
        if not m:
            continue
        with open(path) as f:
            text = f.read().strip()
        if text:
            runs[m.groups()] = json.loads(text)
    return runs


def task_stats(run, task):
    return run.get("cvr_entire_space") if task == "cvr_es" else run["tasks"].get(task)


def auc(run, task):
    t = task_stats(run, task)
    return None if not t else t.get("auc")


def oracle_auc(run, task):
    t = task_stats(run, task)
    return None if not t else t.get("oracle_auc")


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, 0
    if len(values) == 1:
        return values[0], None, 1
    return statistics.mean(values), statistics.stdev(values), len(values)


def fmt(values, digits=4):
    m, s, n = mean_std(values)
    if n == 0:
        return "n/a"
    if s is None:
        return "%.*f" % (digits, m)
    return "%.*f ± %.*f" % (digits, m, digits, s)


def signed(v):
    return "n/a" if v is None else "%+.4f" % v


def seeds_of(runs, prefix):
    tags = {k[0] for k in runs if k[0].startswith(prefix)}
    return sorted(tags, key=lambda t: int(t[len(prefix):] or 0))


def auc_table(runs, tags, title):
    print("### %s\n" % title)
    print("| model | n | " + " | ".join(name for _, name in TASKS) + " |")
    print("|---|---|" + "---|" * len(TASKS))
    for impl in IMPLS:
        for model in MODELS:
            sel = [runs[(t, impl, model)] for t in tags if (t, impl, model) in runs]
            if sel:
                print("| %s %s | %d | " % (impl, model, len(sel)) +
                      " | ".join(fmt([auc(r, t) for r in sel]) for t, _ in TASKS) + " |")
    # the oracle's AUC depends only on the world's rows: one value per tag
    per_tag = [runs[(t, "funnel", "esm2")] if (t, "funnel", "esm2") in runs
               else next((runs[k] for k in sorted(runs) if k[0] == t), None) for t in tags]
    per_tag = [r for r in per_tag if r is not None]
    if per_tag:
        print("| oracle | %d | " % len(per_tag) +
              " | ".join(fmt([oracle_auc(r, t) for r in per_tag]) for t, _ in TASKS) + " |")
    print()


def paired(runs, tags, a, b, task):
    """Per-tag differences auc(a) - auc(b) on the tags where both ran."""
    out = []
    for t in tags:
        ra, rb = runs.get((t,) + a), runs.get((t,) + b)
        if ra and rb and auc(ra, task) is not None and auc(rb, task) is not None:
            out.append(auc(ra, task) - auc(rb, task))
    return out


def criterion_torch(runs, tags):
    print("### Criterion 1: funnel AUC >= PyTorch AUC - %.3f\n" % TOLERANCE)
    print("Difference of the means (funnel - PyTorch) per model and task; in "
          "brackets the worst single seed. PASS when the difference of the means "
          "is >= -%.3f.\n" % TOLERANCE)
    print("| model | " + " | ".join(name for _, name in TASKS) + " | verdict |")
    print("|---|" + "---|" * len(TASKS) + "---|")
    all_ok = True
    for model in MODELS:
        cells, ok = [], True
        for task, _ in TASKS:
            fa = [auc(runs[(t, "funnel", model)], task) for t in tags if (t, "funnel", model) in runs]
            ta = [auc(runs[(t, "torch", model)], task) for t in tags if (t, "torch", model) in runs]
            fm, _, fn = mean_std(fa)
            tm, _, tn = mean_std(ta)
            if fn == 0 or tn == 0:
                cells.append("n/a")
                continue
            d = fm - tm
            worst = min(paired(runs, tags, ("funnel", model), ("torch", model), task), default=None)
            ok = ok and d >= -TOLERANCE
            cells.append("%s (%s)" % (signed(d), signed(worst)))
        all_ok = all_ok and ok
        print("| %s | %s | %s |" % (model, " | ".join(cells), "PASS" if ok else "FAIL"))
    print("\nCriterion 1 overall: **%s**\n" % ("PASS" if all_ok else "FAIL"))
    return all_ok


def lead_rows(runs, tags, impl, a, b, tasks):
    """Markdown rows of a's lead over b; returns whether every lead beats the
    spread (None when a model has a single seed: no spread to beat)."""
    all_ok = True
    for task in tasks:
        name = dict(TASKS)[task]
        va = [auc(runs[(t, impl, a)], task) for t in tags if (t, impl, a) in runs]
        vb = [auc(runs[(t, impl, b)], task) for t in tags if (t, impl, b) in runs]
        ma, sa, na = mean_std(va)
        mb, sb, nb = mean_std(vb)
        if na == 0 or nb == 0:
            continue
        lead = ma - mb
        spread = max(s for s in (sa, sb, 0.0) if s is not None)
        diffs = paired(runs, tags, (impl, a), (impl, b), task)
        dm, ds, _ = mean_std(diffs)
        ok = lead > spread if na > 1 and nb > 1 else None
        all_ok = None if ok is None or all_ok is None else all_ok and ok
        print("| %s | %s vs %s | %s | %s | %s | %s | %s | %s |" % (
            impl, a, b, name, signed(lead), "%.4f" % spread if na > 1 else "n/a",
            " ".join(signed(d) for d in diffs),
            "n/a" if ds is None else "%.4f ± %.4f" % (dm, ds),
            "n/a (1 seed)" if ok is None else ("PASS" if ok else "FAIL")))
    return all_ok


def lead_header():
    print("| impl | comparison | task | lead (diff. of means) | spread (max std) | "
          "per-seed differences | paired mean ± std | lead > spread |")
    print("|---|---|---|---|---|---|---|---|")


def criterion_lead(runs, tags):
    print("### Criterion 2: esm2 leads esmm and naive on entire-space CVR and CTCVR AUC "
          "by more than the seed-to-seed spread\n")
    print("Spread = the larger of the two models' std over seeds; the paired "
          "columns difference each seed's two models (same world, same test rows).\n")
    lead_header()
    ok = {}
    for impl in IMPLS:
        ok[impl] = True
        for other in ("esmm", "naive"):
            r = lead_rows(runs, tags, impl, "esm2", other, LEAD_TASKS)
            ok[impl] = None if r is None or ok[impl] is None else r and ok[impl]
    print()
    for impl in IMPLS:
        if any(k[1] == impl for k in runs):
            print("Criterion 2 (%s): **%s**  " % (impl, "n/a (1 seed)" if ok[impl] is None
                                                    else "PASS" if ok[impl] else "FAIL"))
    print()
    print("### esmm vs naive (reported as measured)\n")
    lead_header()
    for impl in IMPLS:
        lead_rows(runs, tags, impl, "esmm", "naive", [t for t, _ in TASKS if t != "ctavr"])
    print()
    return ok.get("funnel", False)


def ablation(runs):
    tags = seeds_of(runs, "ablation")
    if not tags:
        return
    auc_table(runs, tags, "Ablation `--action_informative false` (seed(s) %s): AUC" %
              ", ".join(t[len("ablation"):] or "1" for t in tags))
    print("esm2's lead in the ablation world (it should be gone):\n")
    lead_header()
    for impl in IMPLS:
        for other in ("esmm", "naive"):
            lead_rows(runs, tags, impl, "esm2", other, LEAD_TASKS)
    print()


def funnel_losses(path):
    """[(samples at the record's end, rows in the record, {task: mean loss})]."""
    recs, prev = [], 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            n = r["samples"] - prev
            prev = r["samples"]
            recs.append((r["samples"], n, {k[5:]: v for k, v in r.items()
                                           if k.startswith("loss_")}))
    return recs


def torch_losses(path):
    recs, prev = [], 0
    with open(path) as f:
        for line in f:
            m = TORCH_PROGRESS_RE.match(line.strip())
            if not m:
                continue
            samples = int(m.group(2))
            parts = m.group(3).split()
            recs.append((samples, samples - prev,
                         {parts[i]: float(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}))
            prev = samples
    return recs


def weighted(recs, task, start):
    num = den = 0.0
    for end, n, losses in recs:
        if end - n >= start and task in losses:
            num += losses[task] * n
            den += n
    return num / den if den else None


def loss_table(runs, out, tags):
    rows = []
    for model in MODELS:
        for impl in IMPLS:
            recs = []
            for t in tags:
                p = os.path.join(out, "%s-%s-%s.%s" % (t, impl, model,
                                                       "metrics.jsonl" if impl == "funnel" else "log"))
                if os.path.exists(p):
                    r = funnel_losses(p) if impl == "funnel" else torch_losses(p)
                    if r:
                        recs.append(r)
            if recs:
                rows.append((model, impl, recs))
    if not rows:
        return
    total = max(r[-1][0] for _, _, recs in rows for r in recs)
    print("### Mean training loss per task (mean over seeds): whole epoch / second half\n")
    print("Funnel: its metrics records weighted by rows; PyTorch: its `--progress 100` "
          "lines (the last partial 100 batches are not printed).\n")
    print("| model | impl | seeds | task losses (epoch / 2nd half) |")
    print("|---|---|---|---|")
    for model, impl, recs in rows:
        tasks = list(recs[0][-1][2].keys())
        cells = []
        for task in tasks:
            whole = mean_std([weighted(r, task, 0) for r in recs])[0]
            half = mean_std([weighted(r, task, total / 2) for r in recs])[0]
            cells.append("%s %.5f / %.5f" % (task, whole, half))
        print("| %s | %s | %d | %s |" % (model, impl, len(recs), ", ".join(cells)))
    print()


def per_run(runs):
    print("### Every run's AUC\n")
    print("| run | " + " | ".join(name for _, name in TASKS) + " |")
    print("|---|" + "---|" * len(TASKS))
    for key in sorted(runs, key=lambda k: (k[0].rstrip("0123456789"),
                                           int(re.sub(r"\D", "", k[0]) or 0), k[1], MODELS.index(k[2]))):
        r = runs[key]
        print("| %s | " % " ".join(key) + " | ".join(
            "n/a" if auc(r, t) is None else "%.4f" % auc(r, t) for t, _ in TASKS) + " |")
    print()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/funnel-auc"
    runs = load(out)
    if not runs:
        sys.exit("auc_table: no eval results in %s" % out)
    tags = seeds_of(runs, "seed")
    if tags:
        auc_table(runs, tags, "Default world, one epoch, seed(s) %s: AUC mean ± std" %
                  ", ".join(t[4:] for t in tags))
        criterion_torch(runs, tags)
        criterion_lead(runs, tags)
        loss_table(runs, out, tags)
    ablation(runs)
    per_run(runs)


if __name__ == "__main__":
    main()
