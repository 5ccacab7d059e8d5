#!/usr/bin/env python3
"""test_funnel_reader - checks funnel_reader against the C programs' output.

Run by tests/test_pyreader.c after it has trained two models and exported
them with the real programs; DIR holds:

  m1/, m2/             model directories (day-1 and day-2 logs)
  full1.emb, full2.emb funnel-emb export of each
  delta2.emb           funnel-emb export m2 --since m1
  applied.emb          funnel-emb apply full1.emb delta2.emb
  dump2.txt            funnel-emb export-dump full2.emb
  get2.jsonl           funnel-emb get m2 KEY... --json (a few rows)
  test.tsv, pred.tsv   a log and funnel-worker predict --model m2 on it

It assembles a serving bundle from them (the shared spec: MANIFEST, META,
dense.bin, full.emb, delta.emb), then checks that every embedding row
equals export-dump's and get's, that full1 + delta2 equals the C apply
byte for byte, that the dense towers reproduce predict's scores from
embeddings pooled in numpy, and that damaged files are refused.

Prints one line per check group and "pyreader: all N checks passed";
exits 1 at the first failure, naming it.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import xxhash

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import funnel_reader as fr  # noqa: E402

checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print("pyreader: FAILED: %s" % what)
        sys.exit(1)


def refused(fn, what, words):
    """fn() must raise FormatError whose message holds every word."""
    try:
        fn()
    except fr.FormatError as e:
        msg = str(e)
        check(all(w in msg for w in words), "%s: message %r lacks %s" % (what, msg, words))
        return msg
    check(False, "%s was accepted" % what)


def make_bundle(d, out, day, base_day, src_model, full, delta):
    """A bundle per the shared spec, written into out.tmp and renamed."""
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    names = [("META", os.path.join(src_model, "META")),
             ("dense.bin", os.path.join(src_model, "dense.bin")),
             ("full.emb", full)]
    if delta:
        names.append(("delta.emb", delta))
    meta = fr.read_meta(src_model)
    lines = ["funnel-bundle 1", "day %d" % day, "base_day %d" % base_day,
             "model_type %s" % meta.model, "digest %016x" % meta.digest]
    for name, src in names:
        shutil.copyfile(src, os.path.join(tmp, name))
        with open(src, "rb") as f:
            data = f.read()
        lines.append("file %s %d %016x" % (name, len(data), xxhash.xxh64_intdigest(data)))
    lines.append("future_key whatever")  # unknown keys are ignored
    with open(os.path.join(tmp, "MANIFEST"), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out)


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def main(d):
    # -- embeddings against export-dump (every row, exact: %.9g reads back)
    full2 = fr.read_export(os.path.join(d, "full2.emb"))
    dumped = {}
    with open(os.path.join(d, "dump2.txt")) as f:
        for line in f:
            if line.startswith("#") or line.startswith("op\t"):
                continue
            op, slot, key, emb = line.rstrip("\n").split("\t")
            check(op == "put", "export-dump of a full export shows %s" % op)
            dumped[(slot, int(key, 16))] = np.array([float(v) for v in emb.split(",")],
                                                    np.float32)
    n = 0
    for name, _ in full2.slots:
        keys, rows = full2.puts[name]
        for k, r in zip(keys, rows):
            want = dumped.pop((name, int(k)), None)
            check(want is not None, "row %s %016x is not in export-dump" % (name, int(k)))
            check(np.array_equal(want, r), "row %s %016x: %s, export-dump %s"
                  % (name, int(k), r, want))
            n += 1
    check(not dumped, "%d export-dump rows the reader did not return" % len(dumped))
    print("pyreader: %d rows equal export-dump's" % n)

    # -- against funnel-emb get --json (6 significant digits)
    got = 0
    with open(os.path.join(d, "get2.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            r = full2.lookup(j["slot"], int(j["key"], 16))
            check(r is not None, "get's row %s %s is not in the export" % (j["slot"], j["key"]))
            want = np.array(j["embedding"], np.float64)
            check(np.allclose(r, want, rtol=1e-5, atol=1e-6), "row %s %s: %s, get says %s"
                  % (j["slot"], j["key"], r, want))
            got += 1
    check(got >= 3, "only %d rows from funnel-emb get" % got)
    print("pyreader: %d rows equal funnel-emb get's" % got)

    # -- full + delta == C apply (byte for byte), == full2 (content)
    full1 = fr.read_export(os.path.join(d, "full1.emb"))
    delta = fr.read_export(os.path.join(d, "delta2.emb"))
    ndel = sum(len(v) for v in delta.deletes.values())
    nput = sum(len(v[0]) for v in delta.puts.values())
    check(delta.kind == fr.EXPORT_DELTA and ndel > 0 and nput > 0,
          "the delta should have puts and deletes (%d, %d)" % (nput, ndel))
    applied = fr.apply_delta(full1, delta)
    with open(os.path.join(d, "applied.emb"), "rb") as f:
        c_applied = f.read()
    check(applied.to_bytes() == c_applied, "reader's full1 + delta2 differs from funnel-emb apply")
    c_app = fr.parse_export(c_applied)
    for name, _ in full2.slots:
        check(np.array_equal(applied.puts[name][0], c_app.puts[name][0]) and
              np.array_equal(applied.puts[name][1], c_app.puts[name][1]),
              "slot %s of the applied export differs" % name)
    with open(os.path.join(d, "delta2.emb"), "rb") as f:
        check(delta.to_bytes() == f.read(), "re-encoding the delta changed its bytes")
    refused(lambda: fr.apply_delta(full2, full1), "a full export as the delta",
            ["not a delta"])
    print("pyreader: full1 + delta2 (%d puts, %d deletes) equals funnel-emb apply byte for byte"
          % (nput, ndel))

    # -- the bundle
    bdir = os.path.join(d, "bundle-2")
    make_bundle(d, bdir, full2.day, full1.day, os.path.join(d, "m2"),
                os.path.join(d, "full2.emb"), os.path.join(d, "delta2.emb"))
    b = fr.open_bundle(bdir)
    check(b.meta.model == b.model_type and b.delta is not None and b.manifest.get("future_key"),
          "bundle fields")
    for name, _ in full2.slots:
        check(np.array_equal(b.embeddings[name][0], full2.puts[name][0]) and
              np.array_equal(b.embeddings[name][1], full2.puts[name][1]),
              "bundle slot %s differs from full2.emb" % name)
    check(b.dense.input_dim == b.meta.input_dim() and len(b.dense.towers) ==
          fr.TOWERS[b.meta.model], "dense layout against META")
    layers = [W.shape for W, _ in b.dense.towers[0]]
    check(layers[-1][0] == 1 and layers[0][1] == b.meta.input_dim(), "tower shapes %s" % layers)
    print("pyreader: bundle day %d (base %d, %s) verified: %s" % (b.day, b.base_day, b.model_type,
                                                                ", ".join(b.order)))

    # -- funnel-emb bundle's own bundle, when this build has the command
    cdir = os.path.join(d, "bundle-c")
    if os.path.isdir(cdir):
        c = fr.open_bundle(cdir)
        check((c.day, c.base_day, c.model_type, c.digest) == (b.day, b.base_day, b.model_type,
                                                               b.digest),
              "funnel-emb bundle's MANIFEST: %s" % ((c.day, c.base_day, c.model_type, c.digest),))
        for name in ("META", "dense.bin", "full.emb", "delta.emb"):
            with open(os.path.join(cdir, name), "rb") as f1, open(os.path.join(bdir, name),
                                                                   "rb") as f2:
                check(f1.read() == f2.read(), "funnel-emb bundle's %s differs from the model's"
                      % name)
        check(c.order == b.order, "file order %s, want %s" % (c.order, b.order))
        print("pyreader: funnel-emb bundle's bundle verified and equal to the assembled one")
    else:
        print("pyreader: this funnel-emb has no bundle command: only the assembled bundle read")

    # -- the towers reproduce predict from numpy-pooled inputs
    rows = []
    with open(os.path.join(d, "test.tsv")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                rows.append(line.rstrip("\n").split("\t")[3])
            if len(rows) == 300:
                break
    x = np.stack([fr.pool_line(r, b.meta, b.embeddings) for r in rows])
    ours = fr.predict(b.dense, x)
    with open(os.path.join(d, "pred.tsv")) as f:
        header = f.readline().split()
        ref = np.array([[float(v) for v in f.readline().split()] for _ in rows])
    cols = [c for c in ("pctr", "pcvr", "pctcvr", "pctavr") if c in header]
    ref = ref[:, [header.index(c) for c in cols]]
    ours = ours[:, :len(cols)]
    err = np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-6)
    check(err.max() < 2e-5, "predictions differ from predict: worst relative error %g at row %d"
          % (err.max(), int(np.argmax(err.max(axis=1)))))
    print("pyreader: %d rows x %d columns equal predict's (worst relative error %.2g)"
          % (len(rows), len(cols), err.max()))

    # -- damaged files are refused
    def damaged(tag):
        p = os.path.join(d, "damaged-" + tag)
        shutil.rmtree(p, ignore_errors=True)
        shutil.copytree(bdir, p)
        return p

    p = damaged("full")
    flip(os.path.join(p, "full.emb"), os.path.getsize(os.path.join(p, "full.emb")) // 2)
    refused(lambda: fr.open_bundle(p), "a bundle with a flipped byte in full.emb",
            ["full.emb", "XXH64", "MANIFEST"])
    refused(lambda: fr.read_export(os.path.join(p, "full.emb")),
            "an export with a flipped record byte", ["hash"])
    p = damaged("header")
    flip(os.path.join(p, "delta.emb"), 40)
    refused(lambda: fr.read_export(os.path.join(p, "delta.emb")),
            "an export with a flipped header byte", ["header hash"])
    p = damaged("trunc")
    with open(os.path.join(p, "full.emb"), "r+b") as f:
        f.truncate(os.path.getsize(os.path.join(p, "full.emb")) - 5)
    refused(lambda: fr.open_bundle(p), "a bundle with a truncated full.emb",
            ["full.emb", "bytes, MANIFEST says"])
    refused(lambda: fr.read_export(os.path.join(p, "full.emb")), "a truncated export",
            ["FNLEXEND"])
    p = damaged("dense")
    flip(os.path.join(p, "dense.bin"), 100)
    refused(lambda: fr.read_dense(os.path.join(p, "dense.bin")), "a dense file with a flipped byte",
            ["checksum"])
    p = damaged("meta")
    with open(os.path.join(p, "META"), "r+b") as f:
        text = f.read().replace(b"towers ", b"towers 9,")
        f.seek(0)
        f.write(text)
        f.truncate()
    refused(lambda: fr.read_meta(p), "an edited META", ["META", "check"])
    p = damaged("magic")
    mpath = os.path.join(p, "MANIFEST")
    with open(mpath) as f:
        text = f.read()
    with open(mpath, "w") as f:
        f.write(text.replace("funnel-bundle 1", "funnel-bundle 2", 1))
    refused(lambda: fr.open_bundle(p), "a bundle of format 2", ["MANIFEST", "funnel-bundle 2",
                                                                "newer"])
    with open(mpath, "w") as f:
        f.write(text.replace("base_day %d" % b.base_day, "base_day -1"))
    refused(lambda: fr.open_bundle(p), "a bundle listing a delta with base_day -1",
            ["delta.emb"])
    # the CLI: info exits 0 on the good bundle, 1 naming the file on a damaged one
    cli = os.path.join(HERE, "funnel_reader.py")
    r = subprocess.run([sys.executable, cli, "info", bdir], capture_output=True, text=True)
    check(r.returncode == 0 and "full.emb" in r.stdout and " ok" in r.stdout,
          "info on the bundle: %d %s %s" % (r.returncode, r.stdout, r.stderr))
    r = subprocess.run([sys.executable, cli, "info", os.path.join(d, "damaged-full")],
                       capture_output=True, text=True)
    check(r.returncode == 1 and "full.emb" in r.stderr, "info on a damaged bundle: %d %s"
          % (r.returncode, r.stderr))
    r = subprocess.run([sys.executable, cli, "dump", os.path.join(d, "full2.emb")],
                       capture_output=True, text=True)
    ours = [l for l in r.stdout.splitlines() if l.startswith("put\t")]
    with open(os.path.join(d, "dump2.txt")) as f:
        theirs = [l.rstrip("\n") for l in f if l.startswith("put\t")]
    check(r.returncode == 0 and ours == theirs, "dump differs from export-dump's lines")
    print("pyreader: damaged exports, dense files, META and bundles are refused")
    print("pyreader: all %d checks passed" % checks)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: test_funnel_reader.py DIR (see the docstring)\n")
        sys.exit(2)
    main(sys.argv[1])
