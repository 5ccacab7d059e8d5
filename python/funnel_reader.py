#!/usr/bin/env python3
"""funnel_reader - read funnel's embedding exports, dense towers, META files
and serving bundles into numpy, without the C code.

What it reads (each format is specified in the repository; this module
follows those pages, not the C sources):

  export   docs/export-format.md: "FNLEXPRT" full (kind 1) or delta (kind 2)
           exports; every check of "Checking a file" is made (header hash,
           order, trailer, body hash) and a failing file is refused with
           FormatError naming the file and what differed.
  dense    model/model.h notes: the "FNLDENSE" dense checkpoint (tower
           weights and optimizer state, FNV-1a 64 checksum), split into
           per-tower, per-layer (W, b) arrays with the layout META describes.
  META     common/meta.h: the text description of a model (type, slots,
           dims, towers, day, digest, check); the "check" line and the
           layout digest are verified.
  bundle   the serving bundle (MANIFEST, META, dense.bin, full.emb and an
           optional delta.emb): every MANIFEST "file" line is verified (size
           and XXH64) before the file is used.

It also applies a delta to a full export (the same result as
`funnel-emb apply`, byte for byte through Export.to_bytes()), computes
feature keys (common/keyhash.h), pools a tsv1 line into the towers' input
(worker/pool.h) and runs the towers and heads forward (model/heads.c), so
a pipeline can score with the exported model.

It does not write bundles or train. Only numpy and the xxhash module
(Debian: python3-numpy, python3-xxhash) are needed.

CLI:  python3 python/funnel_reader.py info FILE_OR_BUNDLE
      python3 python/funnel_reader.py dump FILE_OR_BUNDLE
"""

import os
import struct
import sys

import numpy as np
import xxhash

__all__ = [
    "FormatError", "Export", "Dense", "Meta", "Bundle", "read_export", "apply_delta",
    "read_dense", "read_meta", "parse_meta", "open_bundle", "feature_key", "pool_line",
    "forward", "predict",
]

MODEL_NAMES = ("esm2", "esmm", "naive", "nmtr")  # MODEL_* order (common/model_conf.h)
OPTIM_NAMES = ("adagrad", "sgd", "adam", "ftrl")  # OPTIM_* order (common/optim.h)
TOWERS = {"esm2": 4, "esmm": 2, "naive": 2, "nmtr": 3}  # model/heads.c table

EXPORT_MAGIC = b"FNLEXPRT"
EXPORT_END = b"FNLEXEND"
EXPORT_VERSION = 1
EXPORT_FULL, EXPORT_DELTA = 1, 2
OP_PUT, OP_DELETE = 1, 2

DENSE_MAGIC = b"FNLDENSE"
DENSE_VERSION = 1

META_MAGIC = "funnel-meta"
META_VERSION = 1

BUNDLE_MAGIC = "funnel-bundle 1"

KEYHASH_SEED = 0x66756E6E656C3031  # "funnel01", common/keyhash.h


class FormatError(Exception):
    """A file is not what its format says: the message names the file and
    what differed. `newer` is True when the file is of a newer version."""

    def __init__(self, msg, newer=False):
        super().__init__(msg)
        self.newer = newer


def _xxh64_file(path, chunk=1 << 20):
    h = xxhash.xxh64(seed=0)
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.intdigest()


# ---------------------------------------------------------------- exports


class Export:
    """An embedding export.

    kind       1 (full) or 2 (delta); day, base_day as in the header
    slots      [(name, dim)] in the header's slot order
    puts       {slot name: (keys uint64 (n,), rows float32 (n, dim))}, keys
               increasing; every slot of the table is present (maybe empty)
    deletes    {slot name: keys uint64 (n,)} (empty arrays for a full export)
    """

    def __init__(self, kind, day, base_day, slots, puts, deletes):
        self.kind = kind
        self.day = day
        self.base_day = base_day
        self.slots = slots
        self.puts = puts
        self.deletes = deletes

    @property
    def records(self):
        return sum(len(k) for k, _ in self.puts.values()) + sum(
            len(k) for k in self.deletes.values())

    def embeddings(self):
        """{slot: (keys, rows)}: the rows a full export holds."""
        return dict(self.puts)

    def lookup(self, slot, key):
        """The embedding of (slot, key) as a float32 array, or None."""
        keys, rows = self.puts[slot]
        i = int(np.searchsorted(keys, np.uint64(key)))
        if i < len(keys) and int(keys[i]) == int(key):
            return rows[i]
        return None

    def to_bytes(self):
        """The file in export format (what `funnel-emb` writes for the same
        content: records in (slot, key) order, puts before nothing else)."""
        head = bytearray()
        for name, dim in self.slots:
            nb = name.encode()
            head += struct.pack("<HB", dim, len(nb)) + nb
        header_len = 32 + len(head) + 8
        nslots = len(self.slots)
        fixed = EXPORT_MAGIC + struct.pack(
            "<HBBiiIQ", EXPORT_VERSION, self.kind, nslots & 0xFF, self.day, self.base_day,
            header_len, self.records)
        header = fixed + bytes(head)
        header += struct.pack("<Q", xxhash.xxh64_intdigest(header, seed=0))
        body = bytearray()
        for si, (name, dim) in enumerate(self.slots):
            keys, rows = self.puts[name]
            dels = self.deletes.get(name, np.zeros(0, np.uint64))
            put_rec = np.zeros(len(keys), dtype=_record_dtype(dim))
            put_rec["op"] = OP_PUT
            put_rec["slot"] = si
            put_rec["key"] = keys
            put_rec["emb"] = rows
            del_rec = np.zeros(len(dels), dtype=_record_dtype(0))
            del_rec["op"] = OP_DELETE
            del_rec["slot"] = si
            del_rec["key"] = dels
            if len(dels) == 0:
                body += put_rec.tobytes()
                continue
            # interleave puts and deletes in key order
            allk = np.concatenate([keys, dels])
            order = np.argsort(allk, kind="stable")
            pb, db = put_rec.tobytes(), del_rec.tobytes()
            ps, ds = put_rec.itemsize, del_rec.itemsize
            for j in order:
                if j < len(keys):
                    body += pb[j * ps:(j + 1) * ps]
                else:
                    j -= len(keys)
                    body += db[j * ds:(j + 1) * ds]
        body = bytes(body)
        trailer = struct.pack("<QQ", self.records, xxhash.xxh64_intdigest(body, seed=0))
        return header + body + trailer + EXPORT_END

    def write(self, path):
        """Write to_bytes() to path (via path.tmp, renamed)."""
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(self.to_bytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _record_dtype(dim):
    fields = [("op", "u1"), ("slot", "u1"), ("key", "<u8")]
    if dim:
        fields.append(("emb", "<f4", (dim,)))
    return np.dtype(fields)


def _run_length(buf, p, end, size, op, slot):
    """Records of `size` bytes from p with this op and slot, in a row.
    Every position tested up to the first mismatch is a real record
    boundary (the records before it all had `size` bytes), so the run
    found is exact; the window doubles so a long run costs O(n)."""
    n = 0
    win = 64
    while True:
        avail = (end - p) // size - n
        if avail <= 0:
            return n
        w = min(win, avail)
        start = p + n * size
        ops = np.frombuffer(buf, np.uint8, count=(w - 1) * size + 2, offset=start)
        bad = (ops[0::size] != op) | (ops[1::size] != slot)
        if bad.any():
            return n + int(np.argmax(bad))
        n += w
        win *= 2


def read_export(path):
    """Read and verify an export file (docs/export-format.md). Returns an
    Export; raises FormatError naming the file and the failed check, or
    OSError when it cannot be read."""
    with open(path, "rb") as f:
        buf = f.read()
    return parse_export(buf, path)


def parse_export(buf, path="<bytes>"):
    """read_export() of bytes already in memory."""

    def bad(msg, newer=False):
        raise FormatError("%s: %s" % (path, msg), newer)

    size = len(buf)
    if size < 8 or buf[:8] != EXPORT_MAGIC:
        bad("not a funnel export (the first 8 bytes are not FNLEXPRT)")
    if size < 32:
        bad("truncated header (%d bytes, the fixed header has 32)" % size)
    version, kind, nslots_b, day, base_day, header_len, records = struct.unpack_from(
        "<HBBiiIQ", buf, 8)
    if version > EXPORT_VERSION:
        bad("export format version %d is newer than this reader's %d: update the reader"
            % (version, EXPORT_VERSION), newer=True)
    if version != EXPORT_VERSION:
        bad("export format version %d is not valid (want %d)" % (version, EXPORT_VERSION))
    if header_len < 40 or header_len > size:
        bad("header_len %d does not fit the file of %d bytes" % (header_len, size))
    (hh,) = struct.unpack_from("<Q", buf, header_len - 8)
    if xxhash.xxh64_intdigest(buf[:header_len - 8], seed=0) != hh:
        bad("header hash mismatch: the header was changed or damaged")
    if kind not in (EXPORT_FULL, EXPORT_DELTA):
        bad("kind %d is neither 1 (full) nor 2 (delta)" % kind)
    nslots = nslots_b or 256
    slots = []
    p = 32
    for s in range(nslots):
        if p + 3 > header_len - 8:
            bad("slot table ends before slot %d of %d" % (s, nslots))
        dim, nl = struct.unpack_from("<HB", buf, p)
        p += 3
        if dim < 1 or nl < 1 or nl > 63 or p + nl > header_len - 8:
            bad("slot %d: dim %d / name length %d out of range" % (s, dim, nl))
        slots.append((buf[p:p + nl].decode("utf-8", "replace"), dim))
        p += nl
    if p != header_len - 8:
        bad("the slot table ends at byte %d, the header hash is at %d" % (p, header_len - 8))
    if size < header_len + 24 or buf[size - 8:] != EXPORT_END:
        bad("no FNLEXEND end magic: the file is truncated or was never completed")
    end = size - 24
    t_records, body_hash = struct.unpack_from("<QQ", buf, end)
    if t_records != records:
        bad("the trailer counts %d records, the header %d" % (t_records, records))
    if kind == EXPORT_FULL and base_day != -1:
        bad("a full export with base_day %d (want -1)" % base_day)

    put_keys = [[] for _ in slots]
    put_rows = [[] for _ in slots]
    del_keys = [[] for _ in slots]
    p = header_len
    n = 0
    last = None  # (slot, key) of the previous record
    while p < end:
        if p + 10 > end:
            bad("record %d at byte %d is cut short by the trailer" % (n, p))
        op, s = buf[p], buf[p + 1]
        if op not in (OP_PUT, OP_DELETE) or (kind == EXPORT_FULL and op != OP_PUT):
            bad("record %d at byte %d: op %d is not valid in a %s export"
                % (n, p, op, "full" if kind == EXPORT_FULL else "delta"))
        if s >= nslots:
            bad("record %d at byte %d: slot %d is not in the slot table (%d slots)"
                % (n, p, s, nslots))
        dim = slots[s][1] if op == OP_PUT else 0
        rs = 10 + 4 * dim
        run = _run_length(buf, p, end, rs, op, s)
        if run == 0:
            bad("record %d at byte %d is cut short by the trailer" % (n, p))
        recs = np.frombuffer(buf, _record_dtype(dim), count=run, offset=p)
        keys = recs["key"].astype(np.uint64)
        if (last is not None and (s, int(keys[0])) <= last) or (
                run > 1 and not bool(np.all(keys[1:] > keys[:-1]))):
            bad("records out of (slot, key) order near record %d (byte %d)" % (n, p))
        last = (s, int(keys[-1]))
        if op == OP_PUT:
            put_keys[s].append(keys)
            put_rows[s].append(recs["emb"].astype(np.float32))
        else:
            del_keys[s].append(keys)
        p += run * rs
        n += run
    if n != records:
        bad("%d records in the records section, the header says %d" % (n, records))
    if xxhash.xxh64_intdigest(buf[header_len:end], seed=0) != body_hash:
        bad("body hash mismatch: the records were changed or damaged")
    puts, deletes = {}, {}
    for s, (name, dim) in enumerate(slots):
        k = np.concatenate(put_keys[s]) if put_keys[s] else np.zeros(0, np.uint64)
        r = np.concatenate(put_rows[s]) if put_rows[s] else np.zeros((0, dim), np.float32)
        puts[name] = (k, r)
        deletes[name] = np.concatenate(del_keys[s]) if del_keys[s] else np.zeros(0, np.uint64)
    return Export(kind, day, base_day, slots, puts, deletes)


def apply_delta(base, delta, base_name="base", delta_name="delta"):
    """The full export of delta.day: base (a full export of delta.base_day)
    with the delta's puts inserted or replaced and its deletes removed.
    Refuses what `funnel-emb apply` refuses, with FormatError."""
    if base.kind != EXPORT_FULL:
        raise FormatError("%s: not a full export (kind %d)" % (base_name, base.kind))
    if delta.kind != EXPORT_DELTA:
        raise FormatError("%s: not a delta export (kind %d)" % (delta_name, delta.kind))
    if delta.base_day != base.day:
        raise FormatError("%s applies to day %d, but %s is of day %d"
                          % (delta_name, delta.base_day, base_name, base.day))
    if base.slots != delta.slots:
        raise FormatError("%s and %s have different slot tables: %s vs %s"
                          % (base_name, delta_name, base.slots, delta.slots))
    puts = {}
    for name, dim in base.slots:
        bk, br = base.puts[name]
        pk, pr = delta.puts[name]
        dk = delta.deletes[name]
        missing = ~np.isin(dk, bk)
        if missing.any():
            raise FormatError("%s deletes %s key %016x, which %s does not have"
                              % (delta_name, name, int(dk[np.argmax(missing)]), base_name))
        keep = ~(np.isin(bk, dk) | np.isin(bk, pk))
        keys = np.concatenate([bk[keep], pk])
        rows = np.concatenate([br[keep], pr]).reshape(-1, dim)
        order = np.argsort(keys, kind="stable")
        puts[name] = (keys[order], np.ascontiguousarray(rows[order]))
    deletes = {name: np.zeros(0, np.uint64) for name, _ in base.slots}
    return Export(EXPORT_FULL, delta.day, -1, list(base.slots), puts, deletes)


# ---------------------------------------------------------------- META


class Meta:
    """A parsed META file: model (name), slots [(name, dim)], towers (hidden
    layer sizes), emb_optimizer, dense_optimizer, shards, day, dense_params,
    format ("" if not recorded), digest (int), text (the file's text)."""

    def input_dim(self):
        return sum(d for _, d in self.slots)

    def columns(self):
        """{slot: (first column, dim)} of the towers' input."""
        out, c = {}, 0
        for name, dim in self.slots:
            out[name] = (c, dim)
            c += dim
        return out


def _layout_digest(m):
    """common/meta.c layout_digest: XXH64 over the model type, slot names
    (with their NUL) and dims, the layer sizes and both optimizers, each
    int as 4 native (little-endian) bytes."""
    h = xxhash.xxh64(seed=0)
    i32 = lambda v: struct.pack("<i", v)
    h.update(i32(MODEL_NAMES.index(m.model)))
    h.update(i32(len(m.slots)))
    for name, dim in m.slots:
        h.update(name.encode() + b"\0")
        h.update(i32(dim))
    h.update(i32(len(m.towers)))
    for l in m.towers:
        h.update(i32(l))
    h.update(i32(OPTIM_NAMES.index(m.emb_optimizer)))
    h.update(i32(OPTIM_NAMES.index(m.dense_optimizer)))
    return h.intdigest()


def parse_meta(text, path="META"):
    """Parse META text (strict, like common/meta.c): FormatError for an
    unknown line, a missing one, a digest or check that does not match."""

    def bad(msg, newer=False):
        raise FormatError("%s: %s" % (path, msg), newer)

    lines = text.split("\n")
    if not lines or not lines[0].startswith(META_MAGIC + " "):
        bad("not a META file (the first line is not '%s N')" % META_MAGIC)
    try:
        version = int(lines[0].split()[1])
    except (IndexError, ValueError):
        bad("line 1: bad version in %r" % lines[0])
    if version > META_VERSION:
        bad("META version %d is newer than this reader's %d" % (version, META_VERSION), True)
    if version != META_VERSION:
        bad("META version %d is not valid" % version)
    m = Meta()
    m.version, m.text, m.format, m.day, m.shards = version, text, "", -1, 0
    m.model = None
    m.slots, m.towers = [], []
    m.digest = None
    nslots = None
    pos = len(lines[0]) + 1
    for no, line in enumerate(lines[1:], start=2):
        start = pos
        pos += len(line) + 1
        if line == "":
            continue
        f = line.split(" ")
        try:
            if f[0] == "model" and len(f) == 2 and f[1] in MODEL_NAMES:
                m.model = f[1]
            elif f[0] == "slots" and len(f) == 2:
                nslots = int(f[1])
            elif f[0] == "slot" and len(f) == 4 and int(f[1]) == len(m.slots):
                m.slots.append((f[2], int(f[3])))
            elif f[0] == "towers" and len(f) <= 2:
                m.towers = [int(v) for v in f[1].split(",")] if len(f) == 2 and f[1] else []
            elif f[0] == "emb_optimizer" and len(f) == 2 and f[1] in OPTIM_NAMES:
                m.emb_optimizer = f[1]
            elif f[0] == "dense_optimizer" and len(f) == 2 and f[1] in OPTIM_NAMES:
                m.dense_optimizer = f[1]
            elif f[0] == "shards" and len(f) == 2:
                m.shards = int(f[1])
            elif f[0] == "routing" and len(f) == 2:
                m.routing = f[1]
            elif f[0] == "day" and len(f) == 2:
                m.day = int(f[1])
            elif f[0] == "dense_params" and len(f) == 2:
                m.dense_params = int(f[1])
            elif f[0] == "format" and len(f) == 2:
                m.format = f[1]
            elif f[0] == "digest" and len(f) == 2:
                m.digest = int(f[1], 16)
            elif f[0] == "check" and len(f) == 2:
                want = int(f[1], 16)
                if xxhash.xxh64_intdigest(text[:start].encode(), seed=0) != want:
                    bad("line %d: check %s does not match the file's bytes: META was edited "
                        "or damaged" % (no, f[1]))
                if any(l for l in lines[no:]):
                    bad("line %d: lines after the check line" % no)
                break
            else:
                bad("line %d: unexpected line %r" % (no, line))
        except ValueError:
            bad("line %d: bad number in %r" % (no, line))
    if m.model is None or nslots is None or m.digest is None:
        bad("missing the model, slots or digest line")
    if nslots != len(m.slots):
        bad("slots says %d, %d slot lines follow" % (nslots, len(m.slots)))
    for attr in ("emb_optimizer", "dense_optimizer"):
        if not hasattr(m, attr):
            bad("missing the %s line" % attr)
    if _layout_digest(m) != m.digest:
        bad("digest %016x does not match the layout the lines describe (%016x)"
            % (m.digest, _layout_digest(m)))
    return m


def read_meta(path):
    """Read a META file (or the META of a model directory)."""
    if os.path.isdir(path):
        path = os.path.join(path, "META")
    with open(path, "rb") as f:
        return parse_meta(f.read().decode("utf-8"), path)


# ---------------------------------------------------------------- dense


class Dense:
    """A dense checkpoint: model (name), input_dim, layers (hidden sizes),
    optimizer (name), step, params (float32, the whole block), state
    (float32), and towers: a list (one per tower) of lists of (W, b), W of
    shape (out, in), the last layer the 1-unit logit layer."""


def _fnv1a64(data):
    """FNV-1a 64 (model.c). A byte loop: about 1 s per 5 MB in CPython."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def parse_dense(buf, path="dense.bin", meta=None):
    """Parse a dense checkpoint; with meta, check it describes the same
    model (type, input width, towers, optimizer). FormatError otherwise."""

    def bad(msg, newer=False):
        raise FormatError("%s: %s" % (path, msg), newer)

    if len(buf) < 8 or buf[:8] != DENSE_MAGIC:
        bad("not a dense checkpoint (the first 8 bytes are not FNLDENSE)")
    try:
        version, mtype, input_dim, nl = struct.unpack_from("<IIII", buf, 8)
        if version > DENSE_VERSION:
            bad("dense format version %d is newer than this reader's %d"
                % (version, DENSE_VERSION), True)
        if version != DENSE_VERSION:
            bad("dense format version %d is not valid" % version)
        if nl > 64 or mtype >= len(MODEL_NAMES):
            bad("bad header: model type %d, %d layers" % (mtype, nl))
        layers = list(struct.unpack_from("<%dI" % nl, buf, 24))
        p = 24 + 4 * nl
        opt, nparams, nstate, step = struct.unpack_from("<IQQq", buf, p)
        p += 28
    except struct.error:
        bad("truncated header")
    if len(buf) != p + 4 * (nparams + nstate) + 8:
        bad("%d bytes, the header announces %d" % (len(buf), p + 4 * (nparams + nstate) + 8))
    (check,) = struct.unpack_from("<Q", buf, len(buf) - 8)
    if _fnv1a64(memoryview(buf)[8:len(buf) - 8]) != check:
        bad("checksum mismatch: the file was changed or damaged")
    d = Dense()
    d.model = MODEL_NAMES[mtype]
    d.input_dim, d.layers, d.step = input_dim, layers, step
    d.optimizer = OPTIM_NAMES[opt] if opt < len(OPTIM_NAMES) else str(opt)
    d.params = np.frombuffer(buf, "<f4", count=nparams, offset=p).astype(np.float32)
    d.state = np.frombuffer(buf, "<f4", count=nstate, offset=p + 4 * nparams).astype(np.float32)
    ntowers = TOWERS[d.model]
    sizes = [input_dim] + layers + [1]
    per_tower = sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))
    if per_tower * ntowers != nparams:
        bad("%d params, %s towers of shape %s need %d"
            % (nparams, d.model, sizes, per_tower * ntowers))
    if meta is not None:
        want = (meta.model, meta.input_dim(), meta.towers, meta.dense_optimizer)
        got = (d.model, input_dim, layers, d.optimizer)
        if want != got:
            bad("describes (type, input, towers, optimizer) %s, META says %s" % (got, want))
    d.towers = []
    off = 0
    for _ in range(ntowers):
        tower = []
        for i in range(len(sizes) - 1):
            n_in, n_out = sizes[i], sizes[i + 1]
            W = d.params[off:off + n_in * n_out].reshape(n_out, n_in)
            off += n_in * n_out
            b = d.params[off:off + n_out]
            off += n_out
            tower.append((W, b))
        d.towers.append(tower)
    return d


def read_dense(path, meta=None):
    """Read and verify a dense checkpoint file (see parse_dense)."""
    with open(path, "rb") as f:
        return parse_dense(f.read(), path, meta)


# ---------------------------------------------------------------- scoring


def feature_key(slot, value):
    """The embedding key of a token (common/keyhash.h)."""
    if isinstance(slot, str):
        slot = slot.encode()
    if isinstance(value, str):
        value = value.encode()
    seed = xxhash.xxh64_intdigest(slot, seed=KEYHASH_SEED)
    return xxhash.xxh64_intdigest(value, seed=seed)


def pool_line(features, meta, embeddings):
    """The towers' input row (float32, meta.input_dim()) of a tsv1 features
    column (docs/FORMAT.md): per declared slot, the weighted sum of its
    tokens' rows (a key without a row counts as zeros, as predict reads
    it); tokens of other slots are ignored."""
    cols = meta.columns()
    x = np.zeros(meta.input_dim(), np.float32)
    for tok in features.split(" "):
        if not tok:
            continue
        slot, sep, rest = tok.partition(":")
        if not sep or slot not in cols:
            continue
        w = np.float32(1.0)
        if ":" in rest:
            rest, wtxt = rest.rsplit(":", 1)
            w = np.float32(float(wtxt))
        c, dim = cols[slot]
        keys, rows = embeddings[slot]
        k = np.uint64(feature_key(slot, rest))
        i = int(np.searchsorted(keys, k))
        if i < len(keys) and keys[i] == k:
            x[c:c + dim] += w * rows[i]
    return x


def forward(dense, x):
    """Tower logits (B, T) of inputs x (B, input_dim): ReLU hidden layers,
    a linear last layer, in float32 like the C towers."""
    x = np.atleast_2d(np.asarray(x, np.float32))
    out = np.zeros((x.shape[0], len(dense.towers)), np.float64)
    for t, tower in enumerate(dense.towers):
        h = x
        for i, (W, b) in enumerate(tower):
            h = (h @ W.T + b).astype(np.float32)
            if i < len(tower) - 1:
                h = np.maximum(h, np.float32(0))
        out[:, t] = h[:, 0]
    return out


def predict(dense, x):
    """Predictions (B, 4): pctr, pcvr, pctcvr, pctavr (NaN unless esm2 or
    nmtr), the heads of model/heads.c computed in double from the logits."""
    a = forward(dense, x)
    y = 1.0 / (1.0 + np.exp(-a))
    out = np.full((a.shape[0], 4), np.nan)
    out[:, 0] = y[:, 0]
    if dense.model == "nmtr":  # the logit cascade click -> action -> buy
        z = np.cumsum(a, axis=1)
        out[:, 1] = 1.0 / (1.0 + np.exp(-(a[:, 1] + a[:, 2])))
        out[:, 2] = 1.0 / (1.0 + np.exp(-z[:, 2]))
        out[:, 3] = 1.0 / (1.0 + np.exp(-z[:, 1]))
    elif dense.model == "esm2":
        cvr = y[:, 1] * y[:, 2] + (1.0 - y[:, 1]) * y[:, 3]
        out[:, 1] = cvr
        out[:, 2] = y[:, 0] * cvr
        out[:, 3] = y[:, 0] * y[:, 1]
    else:
        out[:, 1] = y[:, 1]
        out[:, 2] = y[:, 0] * y[:, 1]
    return out.astype(np.float32)


# ---------------------------------------------------------------- bundles


class Bundle:
    """An opened serving bundle: day, base_day, model_type, digest (int),
    manifest ({key: value} of its other lines, "file" excluded), files
    ({name: (bytes, xxh64)}), meta (Meta), dense (Dense), full (Export of
    day), delta (Export or None), embeddings ({slot: (keys, rows)} of day)."""


def _parse_manifest(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    lines = text.split("\n")
    if lines[0] != BUNDLE_MAGIC:
        tail = lines[0][len("funnel-bundle "):]
        newer = lines[0].startswith("funnel-bundle ") and tail.isdigit() and int(tail) > 1
        raise FormatError("%s: first line is %r, want %r%s" % (
            path, lines[0][:40], BUNDLE_MAGIC,
            " (a newer bundle format: update the reader)" if newer else ""), newer)
    b = Bundle()
    b.manifest, b.files, order = {}, {}, []
    for no, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        f = line.split(" ")
        if f[0] == "file":
            if len(f) != 4 or len(f[3]) != 16:
                raise FormatError("%s: line %d: want 'file NAME BYTES XXH64HEX16', got %r"
                                  % (path, no, line))
            try:
                b.files[f[1]] = (int(f[2]), int(f[3], 16))
            except ValueError:
                raise FormatError("%s: line %d: bad number in %r" % (path, no, line))
            order.append(f[1])
        else:
            b.manifest[f[0]] = " ".join(f[1:])  # unknown keys are kept, not used
    try:
        b.day = int(b.manifest["day"])
        b.base_day = int(b.manifest["base_day"])
        b.model_type = b.manifest["model_type"]
        b.digest = int(b.manifest["digest"], 16)
    except KeyError as e:
        raise FormatError("%s: no %s line" % (path, e.args[0]))
    except ValueError:
        raise FormatError("%s: day, base_day or digest is not a number" % path)
    b.order = order
    return b


def open_bundle(path):
    """Open a bundle directory: verify MANIFEST (first line, every file's
    size and XXH64, before the file is read), then read META, dense.bin,
    full.emb and delta.emb (present iff base_day != -1) and check they
    agree with MANIFEST and each other. Raises FormatError naming the file
    and what differed."""
    mpath = os.path.join(path, "MANIFEST")
    b = _parse_manifest(mpath)
    need = ["META", "dense.bin", "full.emb"] + (["delta.emb"] if b.base_day != -1 else [])
    for name in need:
        if name not in b.files:
            raise FormatError("%s: no file line for %s" % (mpath, name))
    if b.base_day == -1 and "delta.emb" in b.files:
        raise FormatError("%s: base_day -1 but a delta.emb is listed" % mpath)
    for name, (size, h) in b.files.items():
        fp = os.path.join(path, name)
        if os.sep in name or name in ("", ".", ".."):
            raise FormatError("%s: file name %r is not a plain name" % (mpath, name))
        try:
            got = os.path.getsize(fp)
        except OSError as e:
            raise FormatError("%s: listed in MANIFEST but cannot be read (%s)"
                              % (fp, e.strerror))
        if got != size:
            raise FormatError("%s: %d bytes, MANIFEST says %d" % (fp, got, size))
        got = _xxh64_file(fp)
        if got != h:
            raise FormatError("%s: XXH64 %016x, MANIFEST says %016x: the file was changed or "
                              "damaged" % (fp, got, h))
    b.meta = read_meta(os.path.join(path, "META"))
    if b.meta.digest != b.digest or b.meta.model != b.model_type:
        raise FormatError("%s: META is %s digest %016x, MANIFEST says %s digest %016x"
                          % (mpath, b.meta.model, b.meta.digest, b.model_type, b.digest))
    b.dense = read_dense(os.path.join(path, "dense.bin"), b.meta)
    b.full = read_export(os.path.join(path, "full.emb"))
    if b.meta.day != b.day:
        raise FormatError("%s: day %d, META says day %d" % (mpath, b.day, b.meta.day))
    if b.full.kind != EXPORT_FULL or b.full.day != b.day:
        raise FormatError("%s: kind %d day %d, want a full export of day %d"
                          % (os.path.join(path, "full.emb"), b.full.kind, b.full.day, b.day))
    if [n for n, _ in b.full.slots] != [n for n, _ in b.meta.slots] or any(
            b.full.puts[n][1].shape[1] != d for n, d in b.meta.slots):
        raise FormatError("%s: slot table %s differs from META's %s"
                          % (os.path.join(path, "full.emb"), b.full.slots, b.meta.slots))
    b.delta = None
    if b.base_day != -1:
        dp = os.path.join(path, "delta.emb")
        b.delta = read_export(dp)
        if b.delta.kind != EXPORT_DELTA or b.delta.day != b.day or b.delta.base_day != b.base_day:
            raise FormatError("%s: kind %d day %d base day %d, want a delta from day %d to %d"
                              % (dp, b.delta.kind, b.delta.day, b.delta.base_day, b.base_day,
                                 b.day))
    b.embeddings = b.full.embeddings()
    return b


# ---------------------------------------------------------------- CLI


def _describe_export(e, out):
    kind = "full" if e.kind == EXPORT_FULL else "delta"
    out.write("export %s, day %d, base day %d, %d records\n" % (kind, e.day, e.base_day, e.records))
    for name, dim in e.slots:
        out.write("  slot %-16s dim %3d  puts %d  deletes %d\n"
                  % (name, dim, len(e.puts[name][0]), len(e.deletes[name])))


def _dump_export(e, out):
    out.write("op\tslot\tkey\tembedding\n")
    for name, _ in e.slots:
        keys, rows = e.puts[name]
        for k, r in zip(keys, rows):
            out.write("put\t%s\t%016x\t%s\n" % (name, int(k), ",".join("%.9g" % v for v in r)))
        for k in e.deletes[name]:
            out.write("delete\t%s\t%016x\n" % (name, int(k)))


def _describe_dense(d, out):
    out.write("dense %s, input %d, towers %s x %d, optimizer %s, step %d, %d params\n"
              % (d.model, d.input_dim, d.layers, len(d.towers), d.optimizer, d.step,
                 len(d.params)))


def _kind_of(path):
    if os.path.isdir(path):
        return "bundle" if os.path.exists(os.path.join(path, "MANIFEST")) else "modeldir"
    with open(path, "rb") as f:
        head = f.read(11)
    if head[:8] == EXPORT_MAGIC:
        return "export"
    if head[:8] == DENSE_MAGIC:
        return "dense"
    if head.startswith(META_MAGIC.encode()):
        return "meta"
    return None


USAGE = """usage: python3 funnel_reader.py info|dump PATH

  info PATH   what PATH holds (verified): an export, a dense file, a META
              file, a bundle directory or a model directory (META + dense.bin)
  dump PATH   every record of an export (or of a bundle's full.emb), as
              `funnel-emb export-dump` prints them; the weights of a dense file

Exit status 0, or 1 with the reason when PATH fails a check.
"""


def main(argv):
    if len(argv) != 3 or argv[1] not in ("info", "dump"):
        sys.stderr.write(USAGE)
        return 0 if len(argv) > 1 and argv[1] in ("-h", "--help") else 2
    cmd, path = argv[1], argv[2]
    out = sys.stdout
    try:
        kind = _kind_of(path)
        if kind == "export":
            e = read_export(path)
            (_describe_export if cmd == "info" else _dump_export)(e, out)
        elif kind == "dense":
            d = read_dense(path)
            _describe_dense(d, out)
            if cmd == "dump":
                for t, tower in enumerate(d.towers):
                    for l, (W, b) in enumerate(tower):
                        out.write("tower %d layer %d W %s b %s\n" % (t, l, W.shape, b.shape))
                        np.savetxt(out, W, fmt="%.9g")
                        np.savetxt(out, b[None, :], fmt="%.9g")
        elif kind == "meta":
            out.write(read_meta(path).text)
        elif kind == "bundle":
            b = open_bundle(path)
            if cmd == "info":
                out.write("bundle day %d, base day %d, %s, digest %016x\n"
                          % (b.day, b.base_day, b.model_type, b.digest))
                for name in b.order:
                    out.write("  file %-10s %10d bytes  xxh64 %016x  ok\n"
                              % (name, b.files[name][0], b.files[name][1]))
                _describe_dense(b.dense, out)
                _describe_export(b.full, out)
                if b.delta:
                    _describe_export(b.delta, out)
            else:
                _dump_export(b.full, out)
        elif kind == "modeldir":
            m = read_meta(path)
            out.write(m.text)
            _describe_dense(read_dense(os.path.join(path, "dense.bin"), m), out)
        else:
            sys.stderr.write("%s: not an export, dense file, META, bundle or model directory\n"
                             % path)
            return 1
    except FormatError as e:
        sys.stderr.write("funnel_reader: %s\n" % e)
        return 1
    except OSError as e:
        sys.stderr.write("funnel_reader: %s: %s\n" % (path, e.strerror or e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
