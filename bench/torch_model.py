#!/usr/bin/python3
"""
torch_model.py - PyTorch reference implementation of funnel's multi-task
models (esm2, esmm, naive, nmtr), used by the benchmark, the AUC comparison
of issue 3 and the torchref test suite (grad-check mode: funnel's
hand-written gradients against autograd on the same weights).

It implements the same model, data, optimizer and epochs as funnel-worker in
local mode:

  * Input: tsv1 logs (shared/FORMAT.md), plain or .gz. Lines are validated as
    FORMAT.md says; rejected lines are counted, the first few reported, and
    left out of training and of the prediction file (input order is kept).
  * Shared embedding layer: every declared slot (default
    user_id,item_id,cate_id,shop_id,brand_id,position,hour,tag) has its own
    rows of --emb-dim floats (default 16). A (slot, value) pair gets a row the
    first time it is read (a per-slot vocabulary in a dict, in place of
    funnel's 64-bit key hash: the same rows without hash collisions). A
    line's tokens of a slot are weighted and sum-pooled
    (F.embedding_bag mode='sum' with per_sample_weights); an absent slot
    pools to zeros; tokens of undeclared slots are ignored (counted).
    Rows start as normal(0, 0.01). Values first seen in the test log get a
    fresh, untrained row like any new key in funnel.
  * Bottoms (--bottom, funnel's 'bottom' key, model/bottom.h): concat (the
    towers read the concatenated pooled slots), shared (one ReLU MLP,
    --shared-layers), mmoe (--experts ReLU MLPs of --expert-layers, a
    softmax gate per tower: linear over the input), omoe (one gate for all
    towers), ple (--ple-levels CGC levels of --ple-task-experts per task and
    --ple-shared-experts shared experts; task gates over their own and the
    shared experts, a shared gate over all at inner levels). A gate over one
    expert is the identity. Expert and gate weights start like the towers'.
  * Towers: one MLP per tower on the bottom's output, hidden sizes
    --towers (default 256,128,64) with ReLU, then a 1-unit sigmoid head.
    Dense weights start as U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (the
    distribution of PyTorch's nn.Linear default, Kaiming uniform with
    a=sqrt(5)) and biases as 0, like funnel (--bias-init uniform gives
    nn.Linear's bias init instead).
  * Heads and losses (BCE on probabilities clamped to [1e-7, 1-1e-7]):
      esm2  towers y1..y4; pCTR = y1 vs click, pCTAVR = y1*y2 vs action,
            pCTCVR = y1*((1-y2)*y4 + y2*y3) vs buy; pCVR = (1-y2)*y4 + y2*y3.
      esmm  towers ctr, cvr; pCTR vs click, pCTCVR = pCTR*pCVR vs buy.
      naive towers ctr, cvr; pCTR vs click on every row, pCVR vs buy only on
            clicked rows (the CVR term is multiplied by click);
            pCTCVR = pCTR*pCVR is only reported.
      nmtr  towers a1..a3 as logits, cascaded (NMTR, Gao et al. ICDE 2019):
            z_click = a1, z_action = a1+a2, z_buy = a1+a2+a3; pCTR =
            sigmoid(z_click) vs click, pCTAVR = sigmoid(z_action) vs action,
            pCTCVR = sigmoid(z_buy) vs buy, all rows; pCVR = sigmoid(a2+a3)
            (the buy logit's rise over the click logit, as funnel's heads.c).
    Batch loss = sum_k weight_k * loss_k (--loss-weights, default 1,1,1 or
    1,1), where loss_k is the mean cross-entropy over the batch's rows -
    except naive's CVR loss, the mean over the batch's clicked rows (0 with
    no gradient in a batch without clicks). Same as funnel's heads.c.
    Funnel's losses are exact log-domain forms; where this reference clamps
    (a probability within 1e-7 of 0 or 1) its gradient is zero instead.
  * Optimizers: embedding rows Adagrad (acc += g^2; w -= lr*g/(sqrt(acc)+eps),
    lr 0.05, eps 1e-8, acc starts at 0, sparse gradients: only the rows of
    the batch change, a row's gradient summed over its occurrences); dense
    Adam with bias correction (lr 0.001, betas 0.9/0.999, eps 1e-8).
  * Batch 512, --epochs 1, no shuffling: batches in input order.

Modes:
  grad-check  compare funnel's dense forward and backward with autograd:
              --dir holds case directories written by funnel's torchref
              suite (tests/test_torchref.c), each funnel's dense block,
              batch, losses, predictions and gradients of one float step
              and an 'args' file of this script's model options. The
              block is loaded into these modules by funnel's layout
              (funnel_layout), the step recomputed in float32 (and float64,
              to show how far each side is from exact) and compared; prints
              the worst error per parameter group, exits 1 on a mismatch.
  train-eval  train on --train FILE..., predict --test FILE, write --pred in
              FORMAT.md's prediction format (pctr pcvr pctcvr, plus pctavr
              for esm2), print timings. Parsing and tensorizing happen once
              before the timed training loop.
  throughput  time --batches training steps (after --warmup steps) on
              synthetic random batches of the default shape.
Both print a final JSON line for scripts.

Threads: --threads N sets torch's intra- and inter-op threads and (through
OPENBLAS_NUM_THREADS, set before torch is imported) OpenBLAS's threads
(--blas-threads overrides). OMP_WAIT_POLICY is taken from the environment
and reported in the JSON line.

Single-threaded Python driver; not thread-safe, not meant to be imported.
"""

import argparse
import array
import gzip
import json
import math
import os
import re
import sys
import time

DEFAULT_SLOTS = "user_id,item_id,cate_id,shop_id,brand_id,position,hour,tag"
MODELS = {
    # model: (towers, loss names in order of --loss-weights)
    "esm2": (4, ("ctr", "ctavr", "ctcvr")),
    "esmm": (2, ("ctr", "ctcvr")),
    "naive": (2, ("ctr", "cvr")),
    "nmtr": (3, ("ctr", "ctavr", "ctcvr")),
}
BOTTOMS = ("concat", "shared", "mmoe", "omoe", "ple")
PROB_MIN = 1e-7
PROB_MAX = 1.0 - 1e-7
MAX_REPORTED_REJECTS = 5


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="PyTorch reference of funnel's esm2/esmm/naive/nmtr models")
    p.add_argument("mode", choices=("train-eval", "throughput", "grad-check"))
    p.add_argument("--model", choices=sorted(MODELS), default="esm2")
    p.add_argument("--train", nargs="+", default=[], metavar="LOG",
                   help="training log(s), tsv1, .gz read transparently")
    p.add_argument("--test", metavar="LOG", help="log to predict")
    p.add_argument("--pred", metavar="FILE", help="prediction output file")
    p.add_argument("--slots", default=DEFAULT_SLOTS,
                   help="comma-separated declared slots (default %(default)s)")
    p.add_argument("--emb-dim", type=int, default=16)
    p.add_argument("--towers", default="256,128,64",
                   help="hidden sizes of every tower")
    p.add_argument("--loss-weights", default=None,
                   help="ctr,ctavr,ctcvr (esm2, nmtr) or ctr,ctcvr|cvr; default all 1")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--emb-lr", type=float, default=0.05)
    p.add_argument("--emb-init-std", type=float, default=0.01)
    p.add_argument("--adagrad-eps", type=float, default=1e-8)
    p.add_argument("--dense-lr", type=float, default=0.001)
    p.add_argument("--adam-beta1", type=float, default=0.9)
    p.add_argument("--adam-beta2", type=float, default=0.999)
    p.add_argument("--adam-eps", type=float, default=1e-8)
    p.add_argument("--bias-init", choices=("zero", "uniform"), default="zero",
                   help="dense biases: zero (funnel) or U(+-1/sqrt(fan_in)) "
                   "(nn.Linear's default)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the parameter initialization and synthetic data")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op and inter-op threads")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="OpenBLAS threads (default: --threads)")
    p.add_argument("--tower-impl", choices=("separate", "fused"),
                   default="separate",
                   help="separate: one nn.Linear stack per tower; fused: one "
                   "GEMM for all towers' first layers and batched matmuls "
                   "after (same math)")
    p.add_argument("--bottom", choices=BOTTOMS, default="concat",
                   help="bottom under the towers (funnel's 'bottom' key)")
    p.add_argument("--experts", type=int, default=4, help="mmoe, omoe experts")
    p.add_argument("--expert-layers", default="128,64",
                   help="hidden sizes of every expert (mmoe, omoe, ple)")
    p.add_argument("--shared-layers", default="256,128",
                   help="hidden sizes of the shared bottom's MLP")
    p.add_argument("--ple-shared-experts", type=int, default=2)
    p.add_argument("--ple-task-experts", type=int, default=1)
    p.add_argument("--ple-levels", type=int, default=2)
    p.add_argument("--batches", type=int, default=200,
                   help="throughput: timed training steps")
    p.add_argument("--warmup", type=int, default=20,
                   help="throughput: untimed steps before timing")
    p.add_argument("--vocab", type=int, default=100000,
                   help="throughput: rows per slot")
    p.add_argument("--progress", type=int, default=0, metavar="N",
                   help="train-eval: print mean losses every N batches to stderr")
    p.add_argument("--strict", action="store_true",
                   help="any rejected line is fatal")
    p.add_argument("--self-check", action="store_true",
                   help="train-eval: print AUCs of the predictions on the test log")
    p.add_argument("--dir", metavar="DIR",
                   help="grad-check: a case directory written by funnel's "
                   "torchref test, or a directory of them")
    a = p.parse_args(argv)
    if a.mode == "train-eval" and (not a.train or not a.test or not a.pred):
        p.error("train-eval needs --train, --test and --pred")
    if a.mode == "grad-check" and not a.dir:
        p.error("grad-check needs --dir")
    a.slot_names = [s for s in a.slots.split(",") if s]
    if not a.slot_names or len(set(a.slot_names)) != len(a.slot_names):
        p.error("--slots must list distinct slot names")
    a.hidden = [int(x) for x in a.towers.split(",") if x]
    a.bottom_layers = [int(x) for x in (a.shared_layers if a.bottom == "shared"
                                        else a.expert_layers).split(",") if x]
    if a.bottom != "concat" and not a.bottom_layers:
        p.error("--%s-layers needs at least one size"
                % ("shared" if a.bottom == "shared" else "expert"))
    if a.bottom != "concat":
        a.tower_impl = "separate"  # the fused towers assume one shared input
    if a.mode == "grad-check":
        a.tower_impl = "separate"  # funnel's layout is tower after tower
    nloss = len(MODELS[a.model][1])
    if a.loss_weights is None:
        a.weights = [1.0] * nloss
    else:
        a.weights = [float(x) for x in a.loss_weights.split(",")]
        if len(a.weights) != nloss:
            p.error("--loss-weights needs %d values for %s" % (nloss, a.model))
    if a.threads < 1 or a.batch < 1 or a.epochs < 1:
        p.error("--threads, --batch and --epochs must be positive")
    return a


# ---------------------------------------------------------------- reading

# (click, action, buy) columns -> label code bits click|action<<1|buy<<2.
VALID_LABELS = {
    (b"0", b"0", b"0"): 0,
    (b"1", b"0", b"0"): 1,
    (b"1", b"1", b"0"): 3,
    (b"1", b"0", b"1"): 5,
    (b"1", b"1", b"1"): 7,
}
ZERO_ONE = (b"0", b"1")
WEIGHT_RE = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")

# Token-table ids below 0 mark a rejected token; the reason is -id - 1.
TOKEN_REJECT_REASONS = ("malformed token", "unparsable weight")


class TokenCache(dict):
    """token bytes -> token id; a miss parses the token once."""

    def __init__(self, parse):
        super().__init__()
        self.parse = parse

    def __missing__(self, tok):
        tid = self.parse(tok)
        self[tok] = tid
        return tid


class Vocab:
    """Token cache and per-slot vocabularies.

    A distinct token string gets a token id once; its row (-1 for an
    undeclared slot), slot index and weight are kept in parallel arrays, so a
    line costs one dict lookup per token. A (slot, value) pair gets a row of
    the shared embedding table the first time it is seen.
    """

    def __init__(self, slot_names):
        self.slot_index = {s.encode(): i for i, s in enumerate(slot_names)}
        self.values = [dict() for _ in slot_names]   # value -> row
        self.nrows = 0
        self.tok = TokenCache(self._add)              # token bytes -> token id
        self.tok_row = array.array("q")
        self.tok_slot = array.array("q")
        self.tok_weight = array.array("f")

    def _add(self, tok):
        colon = tok.find(b":")
        if colon <= 0:
            return -1
        slot, rest = tok[:colon], tok[colon + 1:]
        last = rest.rfind(b":")
        weight = 1.0
        if last >= 0:
            wtext = rest[last + 1:]
            rest = rest[:last]
            if not WEIGHT_RE.match(wtext):
                return -2
            weight = float(wtext)
            if not math.isfinite(array.array("f", [weight])[0]):
                return -2                       # overflows a float
        if not rest:
            return -1
        s = self.slot_index.get(slot)
        row = -1
        if s is not None:
            vals = self.values[s]
            row = vals.get(rest)
            if row is None:
                row = self.nrows
                vals[rest] = row
                self.nrows += 1
        tid = len(self.tok_row)
        self.tok_row.append(row)
        self.tok_slot.append(-1 if s is None else s)
        self.tok_weight.append(weight)
        return tid


class Reject(Exception):
    pass


def open_log(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb", buffering=1 << 20)


def read_logs(paths, vocab, strict):
    """Read tsv1 logs into flat arrays.

    Returns (labels: array('b') codes per accepted line, counts: array('i')
    tokens per line, tids: array('q') token ids of all accepted lines,
    stats dict).
    """
    import collections
    labels = array.array("b")
    counts = array.array("i")
    tids = array.array("q")
    rejected = collections.Counter()
    reported = 0
    lines = 0
    token_id = vocab.tok.__getitem__
    valid = VALID_LABELS

    for path in paths:
        with open_log(path) as f:
            for lineno, line in enumerate(f, 1):
                if line.endswith(b"\n"):
                    line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                if not line or line[0] == 35:  # '#'
                    continue
                lines += 1
                cols = line.split(b"\t")
                reason = None
                if len(cols) != 4:
                    reason = "wrong column count"
                else:
                    code = valid.get((cols[0], cols[1], cols[2]))
                    if code is None:
                        if all(c in ZERO_ONE for c in cols[:3]):
                            reason = "action or buy without click"
                        else:
                            reason = "label not 0/1"
                    elif cols[3]:
                        ids = list(map(token_id, cols[3].split(b" ")))
                        if min(ids) < 0:
                            reason = TOKEN_REJECT_REASONS[-min(ids) - 1]
                    else:
                        ids = []
                if reason is not None:
                    rejected[reason] += 1
                    if strict:
                        raise Reject("%s:%d: %s" % (path, lineno, reason))
                    if reported < MAX_REPORTED_REJECTS:
                        print("rejected %s:%d: %s" % (path, lineno, reason),
                              file=sys.stderr)
                        reported += 1
                    continue
                labels.append(code)
                counts.append(len(ids))
                tids.extend(ids)
    stats = {"lines": lines, "accepted": len(labels),
             "rejected": dict(rejected)}
    return labels, counts, tids, stats


class Data:
    """A tensorized log: labels and the token rows of every (line, slot) bag.

    Tokens are sorted by bag = line * nslots + slot, so the tokens of lines
    [a, b) are one contiguous range and a batch is a set of slices.
    """

    def __init__(self, labels, counts, tids, vocab, nslots):
        import numpy as np
        import torch
        code = np.frombuffer(labels, dtype=np.int8).astype(np.int64)
        n = len(code)
        self.n = n
        self.nslots = nslots
        y = np.empty((n, 3), dtype=np.float32)
        y[:, 0] = code & 1
        y[:, 1] = (code >> 1) & 1
        y[:, 2] = (code >> 2) & 1
        tid = np.frombuffer(tids, dtype=np.int64)
        tok_row = np.frombuffer(vocab.tok_row, dtype=np.int64)
        tok_slot = np.frombuffer(vocab.tok_slot, dtype=np.int64)
        tok_w = np.frombuffer(vocab.tok_weight, dtype=np.float32)
        line = np.repeat(np.arange(n, dtype=np.int64),
                         np.frombuffer(counts, dtype=np.int32))
        rows = tok_row[tid]
        keep = rows >= 0
        self.ignored_tokens = int(len(rows) - keep.sum())
        rows = rows[keep]
        bag = line[keep] * nslots + tok_slot[tid][keep]
        w = tok_w[tid][keep]
        order = np.argsort(bag, kind="stable")
        rows, bag, w = rows[order], bag[order], w[order]
        per_bag = np.bincount(bag, minlength=n * nslots)
        off = np.zeros(n * nslots + 1, dtype=np.int64)
        np.cumsum(per_bag, out=off[1:])
        self.y = torch.from_numpy(y)
        self.rows = torch.from_numpy(rows)
        self.w = torch.from_numpy(w)
        self.off = torch.from_numpy(off)
        self.tokens = int(len(rows))

    def batch(self, a, b):
        """(rows, bag offsets, weights, labels (b-a, 3)) of lines [a, b)."""
        s = self.nslots
        t0 = int(self.off[a * s])
        t1 = int(self.off[b * s])
        offsets = self.off[a * s:b * s] - t0
        return self.rows[t0:t1], offsets, self.w[t0:t1], self.y[a:b]

    def batches(self, size):
        return [self.batch(a, min(a + size, self.n))
                for a in range(0, self.n, size)]


# ---------------------------------------------------------------- model

def build_model(args, nrows):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    ntowers, _ = MODELS[args.model]
    nslots = len(args.slot_names)
    dim = args.emb_dim
    input_dim = nslots * dim
    tower_in = input_dim if args.bottom == "concat" else args.bottom_layers[-1]
    sizes = [tower_in] + args.hidden + [1]

    def linear_init(weight, bias, fan_in):
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(weight, -bound, bound)
        if args.bias_init == "uniform":
            nn.init.uniform_(bias, -bound, bound)
        else:
            nn.init.zeros_(bias)

    class SeparateTowers(nn.Module):
        """One nn.Linear stack per tower; returns logits (B, ntowers)."""

        def __init__(self):
            super().__init__()
            self.towers = nn.ModuleList()
            for _ in range(ntowers):
                layers = []
                for i in range(len(sizes) - 1):
                    lin = nn.Linear(sizes[i], sizes[i + 1])
                    linear_init(lin.weight, lin.bias, sizes[i])
                    layers.append(lin)
                    if i < len(sizes) - 2:
                        layers.append(nn.ReLU())
                self.towers.append(nn.Sequential(*layers))

        def forward(self, x):
            if isinstance(x, list):  # one input per tower (a bottom)
                return torch.cat([t(xt) for t, xt in zip(self.towers, x)], dim=1)
            return torch.cat([t(x) for t in self.towers], dim=1)

    def expert(fan_in):
        layers, d = [], fan_in
        for h in args.bottom_layers:
            lin = nn.Linear(d, h)
            linear_init(lin.weight, lin.bias, d)
            layers += [lin, nn.ReLU()]
            d = h
        return nn.Sequential(*layers)

    def gate(fan_in, nc):
        if nc < 2:
            return None  # one expert: the identity
        lin = nn.Linear(fan_in, nc)
        linear_init(lin.weight, lin.bias, fan_in)
        return lin

    class Bottom(nn.Module):
        """shared / mmoe / omoe / ple as funnel's model/bottom.c: groups are
        the tasks 0..T-1 and the shared group T; returns one input per
        tower."""

        def __init__(self):
            super().__init__()
            kind, T = args.bottom, ntowers
            self.T = T
            self.tied = kind in ("shared", "omoe")
            self.L = args.ple_levels if kind == "ple" else 1
            self.nt = args.ple_task_experts if kind == "ple" else 0
            self.ns = (args.ple_shared_experts if kind == "ple"
                       else 1 if kind == "shared" else args.experts)
            self.experts = nn.ModuleList()
            self.gates = nn.ModuleList()
            self.gate_group = []
            d = input_dim
            for lvl in range(self.L):
                ne = T * self.nt + self.ns
                self.experts.append(nn.ModuleList(expert(d) for _ in range(ne)))
                gl, gg = [], []
                if not self.tied:
                    for k in range(T):
                        gl.append(gate(d, self.nt + self.ns))
                        gg.append(k)
                if self.tied or lvl + 1 < self.L:
                    gl.append(gate(d, ne))
                    gg.append(T)
                self.gates.append(nn.ModuleList(
                    g if g is not None else nn.Identity() for g in gl))
                self.gate_group.append(gg)
                d = args.bottom_layers[-1]

        def choices(self, grp):
            if grp == self.T:
                return list(range(self.T * self.nt + self.ns))
            return (list(range(grp * self.nt, grp * self.nt + self.nt))
                    + list(range(self.T * self.nt, self.T * self.nt + self.ns)))

        def forward(self, x):
            inp = [x] * (self.T + 1)
            for lvl in range(self.L):
                outs = []
                for e, ex in enumerate(self.experts[lvl]):
                    grp = e // self.nt if e < self.T * self.nt else self.T
                    outs.append(ex(inp[grp]))
                new = [None] * (self.T + 1)
                for g, grp in zip(self.gates[lvl], self.gate_group[lvl]):
                    ch = self.choices(grp)
                    if len(ch) == 1:
                        new[grp] = outs[ch[0]]
                        continue
                    w = torch.softmax(g(inp[grp]), dim=1)        # (B, nc)
                    e = torch.stack([outs[c] for c in ch], 1)   # (B, nc, H)
                    new[grp] = (w.unsqueeze(2) * e).sum(1)
                inp = new
            return [inp[self.T]] * self.T if self.tied else inp[:self.T]

    class FusedTowers(nn.Module):
        """All towers at once: the first layers (same input) as one GEMM,
        the later layers as batched matmuls over the tower axis."""

        def __init__(self):
            super().__init__()
            self.first = nn.Linear(sizes[0], ntowers * sizes[1])
            for t in range(ntowers):
                sl = slice(t * sizes[1], (t + 1) * sizes[1])
                linear_init(self.first.weight.data[sl], self.first.bias.data[sl],
                            sizes[0])
            self.w = nn.ParameterList()
            self.b = nn.ParameterList()
            for i in range(1, len(sizes) - 1):
                w = nn.Parameter(torch.empty(ntowers, sizes[i], sizes[i + 1]))
                b = nn.Parameter(torch.empty(ntowers, 1, sizes[i + 1]))
                for t in range(ntowers):
                    linear_init(w.data[t], b.data[t], sizes[i])
                self.w.append(w)
                self.b.append(b)

        def forward(self, x):
            h = F.relu(self.first(x))                      # (B, T*H1)
            h = h.view(x.shape[0], ntowers, sizes[1]).transpose(0, 1)
            last = len(self.w) - 1
            for i, (w, b) in enumerate(zip(self.w, self.b)):
                h = torch.baddbmm(b, h, w)                 # (T, B, Hi+1)
                if i < last:
                    h = F.relu(h)
            return h.squeeze(2).transpose(0, 1)           # (B, T)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.empty(nrows, dim))
            nn.init.normal_(self.table, 0.0, args.emb_init_std)
            if args.tower_impl == "fused":
                self.towers = FusedTowers()
            else:
                self.towers = SeparateTowers()
            self.bottom = Bottom() if args.bottom != "concat" else None

        def forward(self, rows, offsets, w):
            pooled = F.embedding_bag(rows, self.table, offsets, mode="sum",
                                     sparse=True, per_sample_weights=w)
            return self.dense(pooled.view(-1, input_dim))

        def dense(self, x):
            """Tower logits (B, ntowers) of pooled inputs x (B, input_dim):
            the dense part funnel's model/model.c computes."""
            if self.bottom is not None:
                x = self.bottom(x)
            return self.towers(x)                        # logits (B, ntowers)

    return Model()


def heads(model_type, a):
    """Probabilities from tower logits a (B, T): dict of (B,) tensors."""
    import torch
    if model_type == "nmtr":
        z = torch.cumsum(a, 1)                           # the cascade's logits
        p = torch.sigmoid(z)
        return {"pctr": p[:, 0], "pcvr": torch.sigmoid(a[:, 1] + a[:, 2]),
                "pctcvr": p[:, 2], "pctavr": p[:, 1]}
    y = torch.sigmoid(a)
    if model_type == "esm2":
        y1, y2, y3, y4 = y.unbind(1)
        pcvr = (1 - y2) * y4 + y2 * y3
        return {"pctr": y1, "pcvr": pcvr, "pctcvr": y1 * pcvr,
                "pctavr": y1 * y2}
    y1, y2 = y.unbind(1)
    return {"pctr": y1, "pcvr": y2, "pctcvr": y1 * y2}


def bce(p, label):
    """Per-row binary cross-entropy of clamped probabilities."""
    import torch
    p = p.clamp(PROB_MIN, PROB_MAX)
    return -(label * torch.log(p) + (1 - label) * torch.log(1 - p))


def losses(model_type, h, lab):
    """Batch losses (scalars) in --loss-weights order; lab (B, 3) holds
    click/action/buy. Each is the mean cross-entropy over its rows: every
    row, except naive's CVR loss, whose rows are the clicked ones (0, with
    no gradient, in a batch without clicks)."""
    click, action, buy = lab.unbind(1)
    if model_type in ("esm2", "nmtr"):
        return (bce(h["pctr"], click).mean(), bce(h["pctavr"], action).mean(),
                bce(h["pctcvr"], buy).mean())
    if model_type == "esmm":
        return bce(h["pctr"], click).mean(), bce(h["pctcvr"], buy).mean()
    nclick = click.sum().clamp(min=1.0)
    return (bce(h["pctr"], click).mean(),
            (click * bce(h["pcvr"], buy)).sum() / nclick)


class Trainer:
    def __init__(self, args, nrows):
        import torch
        self.args = args
        self.model = build_model(args, nrows)
        self.emb_opt = torch.optim.Adagrad(
            [self.model.table], lr=args.emb_lr, eps=args.adagrad_eps,
            initial_accumulator_value=0.0)
        dense = [p for n, p in self.model.named_parameters() if n != "table"]
        self.dense_opt = torch.optim.Adam(
            dense, lr=args.dense_lr, betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_eps, foreach=True)
        self.weights = torch.tensor(args.weights)                 # (L,)

    def step(self, rows, offsets, w, lab):
        """One training step; returns the per-task batch losses (L,)."""
        import torch
        h = heads(self.args.model, self.model(rows, offsets, w))
        per_task = torch.stack(losses(self.args.model, h, lab))   # (L,)
        loss = (self.weights * per_task).sum()
        self.emb_opt.zero_grad(set_to_none=True)
        self.dense_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.emb_opt.step()
        self.dense_opt.step()
        return per_task.detach()

    def predict(self, data, size=8192):
        import torch
        out = []
        with torch.no_grad():
            for a in range(0, data.n, size):
                rows, offsets, w, _ = data.batch(a, min(a + size, data.n))
                h = heads(self.args.model, self.model(rows, offsets, w))
                cols = [h["pctr"], h["pcvr"], h["pctcvr"]]
                if "pctavr" in h:
                    cols.append(h["pctavr"])
                out.append(torch.stack(cols, 1))
        return torch.cat(out).numpy()


# ---------------------------------------------------------------- AUC

def auc(score, label):
    """Exact ROC AUC with ties (average ranks), in double; None if one class."""
    import numpy as np
    score = np.asarray(score, dtype=np.float64)
    label = np.asarray(label) > 0.5
    npos = int(label.sum())
    nneg = len(label) - npos
    if npos == 0 or nneg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    # average 1-based rank of each group of tied scores
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(avg, ends - starts)
    return (ranks[label].sum() - npos * (npos + 1) / 2.0) / (npos * nneg)


def self_check(pred, y):
    click, action, buy = y[:, 0], y[:, 1], y[:, 2]
    clicked = click > 0.5
    res = {"auc_ctr": auc(pred[:, 0], click),
           "auc_cvr": auc(pred[clicked, 1], buy[clicked]),
           "auc_ctcvr": auc(pred[:, 2], buy)}
    if pred.shape[1] > 3:
        res["auc_ctavr"] = auc(pred[:, 3], action)
    return res


# ---------------------------------------------------------------- modes

def thread_info(args):
    import torch
    return {"threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "blas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
            "tower_impl": args.tower_impl}


def write_predictions(path, pred, model_type):
    import numpy as np
    header = "pctr\tpcvr\tpctcvr" + ("\tpctavr" if model_type in ("esm2", "nmtr") else "")
    tmp = path + ".tmp"
    np.savetxt(tmp, pred, fmt="%.7g", delimiter="\t", header=header,
               comments="")
    os.replace(tmp, path)


def run_train_eval(args):
    import torch
    nslots = len(args.slot_names)
    vocab = Vocab(args.slot_names)
    t0 = time.perf_counter()
    train_raw = read_logs(args.train, vocab, args.strict)
    train = Data(*train_raw[:3], vocab, nslots)
    train_rows = vocab.nrows
    test_raw = read_logs([args.test], vocab, args.strict)
    test = Data(*test_raw[:3], vocab, nslots)
    batches = train.batches(args.batch)
    parse_s = time.perf_counter() - t0
    print("read %d train lines (%d tokens, %d ignored), %d test lines, "
          "%d rows (%d new in test) in %.1f s"
          % (train.n, train.tokens, train.ignored_tokens, test.n, vocab.nrows,
             vocab.nrows - train_rows, parse_s), file=sys.stderr)

    trainer = Trainer(args, vocab.nrows)
    names = MODELS[args.model][1]
    sums = torch.zeros(len(names))
    t0 = time.perf_counter()
    nb = 0
    for _ in range(args.epochs):
        for batch in batches:
            sums += trainer.step(*batch)
            nb += 1
            if args.progress and nb % args.progress == 0:
                print("batch %d  samples %d  %s  %.0f samples/s"
                      % (nb, nb * args.batch,
                         "  ".join("%s %.5f" % (n, v / args.progress)
                                   for n, v in zip(names, sums.tolist())),
                         min(nb * args.batch, train.n * args.epochs)
                         / (time.perf_counter() - t0)),
                      file=sys.stderr)
                sums.zero_()
    train_s = time.perf_counter() - t0
    samples = train.n * args.epochs

    t0 = time.perf_counter()
    pred = trainer.predict(test)
    write_predictions(args.pred, pred, args.model)
    pred_s = time.perf_counter() - t0
    print("trained %d samples in %.2f s (%.0f samples/s); predicted %d in %.2f s"
          % (samples, train_s, samples / train_s, test.n, pred_s),
          file=sys.stderr)
    res = {"mode": "train-eval", "model": args.model, "bottom": args.bottom,
           "train_samples": samples, "test_samples": test.n,
           "parse_seconds": round(parse_s, 3),
           "train_seconds": round(train_s, 3),
           "samples_per_s": round(samples / train_s, 1),
           "predict_seconds": round(pred_s, 3),
           "pred": args.pred, "embedding_rows": vocab.nrows,
           "rejected_train": train_raw[3]["rejected"],
           "rejected_test": test_raw[3]["rejected"]}
    res.update(thread_info(args))
    if args.self_check:
        chk = self_check(pred, test.y.numpy())
        for k, v in chk.items():
            print("%-10s %s" % (k, "n/a" if v is None else "%.5f" % v),
                  file=sys.stderr)
        res.update({k: (None if v is None else round(v, 6))
                    for k, v in chk.items()})
    print(json.dumps(res))


def synthetic_batches(args, count):
    """count random batches: one token per slot (row drawn uniformly from the
    slot's --vocab rows), except the last slot which gets 0-3 weighted tokens
    (a multi-valued tag-like slot)."""
    import numpy as np
    import torch
    rng = np.random.default_rng(args.seed)
    nslots = len(args.slot_names)
    B = args.batch
    out = []
    for _ in range(count):
        ntag = rng.integers(0, 4, size=B)
        per_bag = np.ones((B, nslots), dtype=np.int64)
        per_bag[:, -1] = ntag
        per_bag = per_bag.ravel()
        slot = np.tile(np.arange(nslots), B).repeat(per_bag)
        rows = slot * args.vocab + rng.integers(0, args.vocab, size=len(slot))
        w = np.ones(len(slot), dtype=np.float32)
        tag = slot == nslots - 1
        w[tag] = rng.uniform(0.1, 1.0, size=int(tag.sum())).astype(np.float32)
        off = np.zeros(B * nslots, dtype=np.int64)
        np.cumsum(per_bag[:-1], out=off[1:])
        click = (rng.random(B) < 0.05)
        action = click & (rng.random(B) < 0.3)
        buy = click & (rng.random(B) < 0.1)
        lab = np.stack([click, action, buy], 1).astype(np.float32)
        out.append((torch.from_numpy(rows), torch.from_numpy(off),
                    torch.from_numpy(w), torch.from_numpy(lab)))
    return out


def run_throughput(args):
    nslots = len(args.slot_names)
    batches = synthetic_batches(args, args.warmup + args.batches)
    trainer = Trainer(args, nslots * args.vocab)
    for b in batches[:args.warmup]:
        trainer.step(*b)
    t0 = time.perf_counter()
    for b in batches[args.warmup:]:
        trainer.step(*b)
    secs = time.perf_counter() - t0
    sps = args.batches * args.batch / secs
    print("%s: %d batches of %d in %.3f s: %.0f samples/s"
          % (args.model, args.batches, args.batch, secs, sps), file=sys.stderr)
    res = {"mode": "throughput", "model": args.model, "bottom": args.bottom,
           "batch": args.batch,
           "batches": args.batches, "seconds": round(secs, 4),
           "samples_per_s": round(sps, 1)}
    res.update(thread_info(args))
    print(json.dumps(res))


# ---------------------------------------------------------------- grad-check

# Tolerances of grad-check (funnel float32 against this reference in
# float32 on the same weights and batch). The largest differences measured
# over the 20 bottom x model cases of funnel's torchref suite were 3.9e-7
# (grad), 9.5e-8 (dx), 1.3e-7 (loss) and 6.0e-8 (pred), and the float64 run
# of the reference puts each float32 side about as far from exact as from
# the other: rounding, not a formula. The tolerances leave 17x-75x of room
# for other BLAS kernels and summation orders, and a wrong formula or a
# layout mix-up misses them by orders of magnitude.
GRAD_TOL = 1e-5   # max |funnel - torch| in a group / ||torch's gradient||_2
DX_TOL = 1e-5     # the same for d total / d x, over ||torch's dx||_2
LOSS_TOL = 1e-5   # |funnel - torch| / |torch| of each loss
PRED_TOL = 1e-6   # |funnel - torch| of each predicted probability
SAT = 1e-6        # trained probabilities must stay this far from 0 and 1


class CheckError(Exception):
    pass


def funnel_layout(model):
    """The dense parameters as (name, tensor) in the order of funnel's
    dense block (model/model.h): for every tower t, for every layer, W
    (out, in) row-major then b (out); then the bottom (model/bottom.h):
    level after level, every expert (task 0's, ..., then the shared ones)
    layer by layer, then the task gates and the shared gate, W (nc, in)
    then b (nc); a gate over one expert has none. nn.Linear's weight is
    (out, in) row-major, so every tensor is a plain slice of the block."""
    import torch.nn as nn

    def linears(seq):
        return [m for m in seq if isinstance(m, nn.Linear)]

    out = []
    for t, seq in enumerate(model.towers.towers):
        for k, lin in enumerate(linears(seq)):
            out.append(("tower%d.layer%d.W" % (t, k), lin.weight))
            out.append(("tower%d.layer%d.b" % (t, k), lin.bias))
    b = model.bottom
    if b is None:
        return out
    for lvl in range(b.L):
        for e, ex in enumerate(b.experts[lvl]):
            who = ("task%d.%d" % divmod(e, b.nt) if e < b.T * b.nt
                   else "shared%d" % (e - b.T * b.nt))
            for k, lin in enumerate(linears(ex)):
                name = "bottom.level%d.expert_%s.layer%d" % (lvl, who, k)
                out.append((name + ".W", lin.weight))
                out.append((name + ".b", lin.bias))
        for g, grp in zip(b.gates[lvl], b.gate_group[lvl]):
            if isinstance(g, nn.Linear):
                name = "bottom.level%d.gate_%s" % (
                    lvl, "shared" if grp == b.T else "task%d" % grp)
                out.append((name + ".W", g.weight))
                out.append((name + ".b", g.bias))
    return out


def read_case(d):
    """The files of a case directory (native float32 / float64 / uint8,
    written by tests/test_torchref.c on the same machine)."""
    import numpy as np

    def f(name, dtype):
        return np.fromfile(os.path.join(d, name), dtype=dtype)
    c = {"params": f("params.f32", np.float32), "grads": f("grads.f32", np.float32),
         "x": f("x.f32", np.float32), "dx": f("dx.f32", np.float32),
         "pred": f("pred.f32", np.float32), "loss": f("loss.f64", np.float64),
         "labels": f("labels.u8", np.uint8)}
    if len(c["labels"]) % 3 or len(c["pred"]) != len(c["labels"]) // 3 * 4:
        raise CheckError("labels.u8 / pred.f32: not B x 3 / B x 4")
    if len(c["params"]) != len(c["grads"]):
        raise CheckError("params.f32 and grads.f32 differ in length")
    return c


def reference_step(args, c, dtype):
    """The reference's forward and backward on funnel's weights and batch:
    (layout names, gradients, dx, losses, predictions (B, 4), trained
    probabilities), numpy float64 arrays of dtype's results."""
    import numpy as np
    import torch
    B = len(c["labels"]) // 3
    input_dim = len(args.slot_names) * args.emb_dim
    if len(c["x"]) != B * input_dim:
        raise CheckError("x.f32 has %d floats, want B x input_dim = %d x %d"
                         % (len(c["x"]), B, input_dim))
    model = build_model(args, 1).to(dtype)
    layout = funnel_layout(model)
    n = sum(p.numel() for _, p in layout)
    if n != len(c["params"]):
        raise CheckError("layout: funnel's dense block has %d floats, the "
                         "reference's %d" % (len(c["params"]), n))
    off = 0
    with torch.no_grad():
        for _, p in layout:
            src = torch.from_numpy(c["params"][off:off + p.numel()])
            p.copy_(src.view_as(p).to(dtype))
            off += p.numel()
    x = torch.from_numpy(c["x"]).to(dtype).view(B, input_dim).requires_grad_(True)
    lab = torch.from_numpy(c["labels"].reshape(B, 3).astype(np.float32)).to(dtype)
    h = heads(args.model, model.dense(x))
    per_task = torch.stack(losses(args.model, h, lab))
    (torch.tensor(args.weights, dtype=dtype) * per_task).sum().backward()
    grads = [p.grad.detach().double().numpy().ravel() if p.grad is not None
             else np.zeros(p.numel()) for _, p in layout]
    pred = np.full((B, 4), np.nan)
    for j, k in enumerate(("pctr", "pcvr", "pctcvr", "pctavr")):
        if k in h:
            pred[:, j] = h[k].detach().double().numpy()
    trained = ([h["pctr"], h["pctavr"], h["pctcvr"]] if args.model in ("esm2", "nmtr")
               else [h["pctr"], h["pctcvr"] if args.model == "esmm" else h["pcvr"]])
    trained = np.concatenate([t.detach().double().numpy() for t in trained])
    return ([name for name, _ in layout], grads, x.grad.double().numpy().ravel(),
            per_task.detach().double().numpy(), pred, trained)


def grad_check_case(args, d, name, out):
    """Compare one case; print a line per parameter group; return the
    worst errors (dict) and whether everything is within tolerance."""
    import numpy as np
    import torch
    c = read_case(d)
    names, g32, dx32, l32, p32, trained = reference_step(args, c, torch.float32)
    _, g64, dx64, l64, p64, _ = reference_step(args, c, torch.float64)
    if trained.min() < SAT or trained.max() > 1 - SAT:
        raise CheckError("a trained probability is within %g of 0 or 1, where "
                         "the reference clamps and funnel does not: use "
                         "smaller weights" % SAT)
    ok = True
    worst = {"grad": 0.0, "dx": 0.0, "loss": 0.0, "pred": 0.0}
    norm = float(np.linalg.norm(np.concatenate(g32)))
    print("case %s: %s on %s, B %d, %d dense floats, ||grad||_2 %.4g"
          % (name, args.model, args.bottom, len(c["labels"]) // 3,
             len(c["params"]), norm), file=out)
    print("  %-40s %6s %10s %10s %10s" % ("group", "floats", "funnel-t32",
                                           "funnel-t64", "t32-t64"), file=out)
    off = 0
    for gname, a32, a64 in zip(names, g32, g64):
        f = c["grads"][off:off + len(a32)].astype(np.float64)
        off += len(a32)
        e = float(np.abs(f - a32).max()) / norm
        bad = not e <= GRAD_TOL             # NaN is a mismatch too
        ok &= not bad
        worst["grad"] = max(worst["grad"], e)
        print("  %-40s %6d %10.2e %10.2e %10.2e%s"
              % (gname, len(a32), e, np.abs(f - a64).max() / norm,
                 np.abs(a32 - a64).max() / norm, "  MISMATCH" if bad else ""),
              file=out)
    dnorm = float(np.linalg.norm(dx32))
    f = c["dx"].astype(np.float64)
    e = float(np.abs(f - dx32).max()) / dnorm
    bad = not e <= DX_TOL
    ok &= not bad
    worst["dx"] = e
    print("  %-40s %6d %10.2e %10.2e %10.2e%s"
          % ("dx (over ||dx||_2 %.4g)" % dnorm, len(f), e,
             np.abs(f - dx64).max() / dnorm, np.abs(dx32 - dx64).max() / dnorm,
             "  MISMATCH" if bad else ""), file=out)
    for k, lname in enumerate(MODELS[args.model][1]):
        e = abs(float(c["loss"][k]) - l32[k]) / abs(l32[k])
        bad = not e <= LOSS_TOL
        ok &= not bad
        worst["loss"] = max(worst["loss"], e)
        print("  loss %-10s funnel %.8f torch %.8f (f64 %.8f) rel %.2e%s"
              % (lname, c["loss"][k], l32[k], l64[k], e,
                 "  MISMATCH" if bad else ""), file=out)
    fp = c["pred"].reshape(-1, 4).astype(np.float64)
    if not np.array_equal(np.isnan(fp), np.isnan(p32)):
        ok = False
        print("  pred: funnel and torch predict different columns  MISMATCH",
              file=out)
    have = ~np.isnan(p32)
    e = float(np.abs(fp[have] - p32[have]).max()) if have.any() else 0.0
    bad = not e <= PRED_TOL
    ok &= not bad
    worst["pred"] = e
    print("  pred max |funnel - torch| %.2e (f64: %.2e)%s"
          % (e, np.abs(fp[have] - p64[have]).max(), "  MISMATCH" if bad else ""),
          file=out)
    print("case %s: %s" % (name, "ok" if ok else "MISMATCH"), file=out)
    return worst, ok


def run_grad_check(args):
    """Every case under --dir (or --dir itself if it is one): each holds
    'args' (this script's options for the model) and funnel's arrays."""
    d = args.dir
    if os.path.exists(os.path.join(d, "args")):
        cases = [d]
    else:
        cases = sorted(os.path.join(d, e) for e in os.listdir(d)
                       if os.path.exists(os.path.join(d, e, "args")))
    if not cases:
        raise CheckError("%s: no case directories (with an 'args' file)" % d)
    worst = {"grad": 0.0, "dx": 0.0, "loss": 0.0, "pred": 0.0}
    bad = []
    for cd in cases:
        name = os.path.basename(os.path.normpath(cd))
        with open(os.path.join(cd, "args")) as f:
            case_args = parse_args(["grad-check", "--dir", cd] + f.read().split())
        try:
            w, ok = grad_check_case(case_args, cd, name, sys.stdout)
        except CheckError as e:
            print("case %s: %s  MISMATCH" % (name, e))
            w, ok = {}, False
        for k, v in w.items():
            worst[k] = max(worst[k], v)
        if not ok:
            bad.append(name)
    print("grad-check: %d cases, %d mismatched%s; worst grad %.2e (tol %g), "
          "dx %.2e (tol %g), loss %.2e (tol %g), pred %.2e (tol %g)"
          % (len(cases), len(bad), (": " + " ".join(bad)) if bad else "",
             worst["grad"], GRAD_TOL, worst["dx"], DX_TOL, worst["loss"],
             LOSS_TOL, worst["pred"], PRED_TOL), file=sys.stderr)
    res = {"mode": "grad-check", "cases": len(cases), "mismatched": bad}
    res.update({"worst_" + k: float("%.3g" % v) for k, v in worst.items()})
    print(json.dumps(res))
    return 1 if bad else 0


def main(argv):
    args = parse_args(argv)
    # OpenBLAS reads its thread count when the library loads, i.e. when
    # torch is imported, so this must happen first.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads or args.threads)
    import torch
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    try:
        if args.mode == "train-eval":
            run_train_eval(args)
        elif args.mode == "grad-check":
            return run_grad_check(args)
        else:
            run_throughput(args)
    except (OSError, Reject, CheckError) as e:
        print("torch_model: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
