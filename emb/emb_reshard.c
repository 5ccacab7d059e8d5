/*
 * emb_reshard.c - a checkpoint of N shards rewritten as M shards. See
 * emb_reshard.h for what goes where and why.
 */
#include "emb/emb_reshard.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/grow.h"
#include "common/json.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/route.h"
#include "table/ckpt_io.h"
#include "table/ckpt_read.h"
#include "table/emb_table.h"

#define BATCH_BYTES ((size_t)4 << 20) /* bytes buffered per new shard before a write */
#define BATCH_OPS 16384               /* records buffered per new shard */

/* Records names (emb_table.h and ps/shard_meta.h own their formats). */
#define KEY_SEQ "m:seq"
#define KEY_PROG "m:progress"
#define KEY_DAY "m:day"
#define LIST_HEADER 8 /* u8 version | u8[3] 0 | u32 n */
#define SEQ_REC 24    /* version 2; version 1: 16 (no `active`) */
#define PROG_REC 48   /* version 2; version 1: 40 (no `partial`) */

/* Writes buffered for one new shard: key and value bytes in buf. */
typedef struct batch {
    unsigned char *buf;
    size_t len, cap; /* bytes */
    size_t *off;     /* per record: key at off, value right after */
    size_t *klen, *vlen;
    size_t n, ncap;     /* records */
    uint64_t rows[256]; /* rows written per slot (the m:emb_rows record) */
    store_op_t ops[BATCH_OPS];
} batch_t;

typedef struct seq_ent {
    uint32_t sender;
    uint64_t last_seq, active;
} seq_ent_t;

typedef struct prog_ent {
    uint32_t rank, epoch, file, seen; /* seen: old shards that recorded it */
    uint64_t offset, line, samples;
    int differs; /* 1: old shards recorded different positions */
} prog_ent_t;

/* A record copied as it is: the same bytes on every old shard. */
typedef struct same_rec {
    char *key;
    size_t klen;
    unsigned char *val;
    size_t vlen;
    int seen;
} same_rec_t;

typedef struct reshard {
    ckpt_in_t in;
    ckpt_out_t out;
    int m;      /* new shards */
    batch_t *b; /* m */
    emb_reshard_stats_t *st;
    unsigned char *sketch; /* summed m:emb_sketch, or NULL */
    size_t sketch_len;
    int sketch_seen;
    int day, has_day;
    seq_ent_t *seq;
    size_t nseq, seq_cap;
    prog_ent_t *prog;
    size_t nprog, prog_cap;
    ckpt_dense_t *dense; /* per old shard; dense_seen of them decoded */
    int dense_seen;
    same_rec_t *same;
    size_t nsame, same_cap;
} reshard_t;

static int batch_flush(reshard_t *r, int j, int sync, errbuf_t *eb)
{
    batch_t *b = &r->b[j];
    int rc = 0;

    for (size_t i = 0; i < b->n; i++)
        b->ops[i] = (store_op_t){b->buf + b->off[i], b->klen[i], b->buf + b->off[i] + b->klen[i],
                                 b->vlen[i]};
    if (b->n > 0 || sync)
        rc = store_write(r->out.shard[j], b->ops, b->n, sync, eb);
    b->n = 0;
    b->len = 0;
    return rc;
}

/* Buffer one record for new shard j (written when the batch is full). */
static int put(reshard_t *r, int j, const void *k, size_t klen, const void *v, size_t vlen,
               errbuf_t *eb)
{
    batch_t *b = &r->b[j];
    size_t c1 = b->ncap, c2 = b->ncap, c3 = b->ncap;

    if (grow_array((void **)&b->buf, &b->cap, b->len + klen + vlen, 1) != 0 ||
        grow_array((void **)&b->off, &c1, b->n + 1, sizeof(size_t)) != 0 ||
        grow_array((void **)&b->klen, &c2, b->n + 1, sizeof(size_t)) != 0 ||
        grow_array((void **)&b->vlen, &c3, b->n + 1, sizeof(size_t)) != 0)
        return errbuf_set(eb, ERR_NOMEM, "out of memory buffering shard %d", j);
    b->ncap = c3;
    b->off[b->n] = b->len;
    b->klen[b->n] = klen;
    b->vlen[b->n] = vlen;
    memcpy(b->buf + b->len, k, klen);
    memcpy(b->buf + b->len + klen, v, vlen);
    b->len += klen + vlen;
    b->n++;
    if (b->n == BATCH_OPS || b->len >= BATCH_BYTES)
        return batch_flush(r, j, 0, eb);
    return 0;
}

static int is_key(const void *k, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(k, name, klen) == 0;
}

static int add_sketch(reshard_t *r, const unsigned char *v, size_t vl, const char *where,
                      errbuf_t *eb)
{
    if (!r->sketch) {
        if (!(r->sketch = malloc(vl ? vl : 1)))
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        memcpy(r->sketch, v, vl);
        r->sketch_len = vl;
    } else if (vl != r->sketch_len || vl < 4 || memcmp(v, r->sketch, 4) != 0 || (vl - 4) % 2) {
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: admission sketch of %zu bytes, another shard's has %zu (or "
                          "another format)",
                          where, vl, r->sketch_len);
    } else {
        for (size_t i = 4; i + 1 < vl; i += 2) {
            uint32_t s = (uint32_t)bytes_get_le16(r->sketch + i) + bytes_get_le16(v + i);
            bytes_put_le16(r->sketch + i, (uint16_t)(s > 0xffffu ? 0xffffu : s));
        }
    }
    r->sketch_seen++;
    return 0;
}

/* A list record's entries: n and the entry size, after checking. */
static int list_of(const unsigned char *v, size_t vl, size_t rec2, size_t rec1, const char *what,
                   const char *where, uint32_t *n, size_t *rec, errbuf_t *eb)
{
    *n = vl >= LIST_HEADER ? bytes_get_le32(v + 4) : 0;
    *rec = vl >= LIST_HEADER && v[0] == 2 ? rec2 : rec1;
    if (vl < LIST_HEADER || (v[0] != 1 && v[0] != 2) || vl != LIST_HEADER + *n * *rec)
        return errbuf_set(eb, ERR_CORRUPT, "%s: %s record of %zu bytes, version %d", where, what,
                          vl, vl ? v[0] : -1);
    return 0;
}

static int add_seq(reshard_t *r, const unsigned char *v, size_t vl, const char *where, errbuf_t *eb)
{
    uint32_t n;
    size_t rec;
    int rc = list_of(v, vl, SEQ_REC, 16, KEY_SEQ, where, &n, &rec, eb);

    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        const unsigned char *p = v + LIST_HEADER + i * rec;
        seq_ent_t e = {bytes_get_le32(p), bytes_get_le64(p + 8),
                       rec == SEQ_REC ? bytes_get_le64(p + 16) : 0};
        size_t k = 0;
        while (k < r->nseq && r->seq[k].sender != e.sender)
            k++;
        if (k == r->nseq) {
            if (grow_array((void **)&r->seq, &r->seq_cap, r->nseq + 1, sizeof(*r->seq)) != 0)
                return errbuf_set(eb, ERR_NOMEM, "out of memory");
            r->seq[r->nseq++] = e;
            continue;
        }
        if (e.last_seq > r->seq[k].last_seq)
            r->seq[k].last_seq = e.last_seq;
        if (e.active > r->seq[k].active)
            r->seq[k].active = e.active;
    }
    return rc;
}

static int add_prog(reshard_t *r, const unsigned char *v, size_t vl, const char *where,
                    errbuf_t *eb)
{
    uint32_t n;
    size_t rec;
    int rc = list_of(v, vl, PROG_REC, 40, KEY_PROG, where, &n, &rec, eb);

    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        const unsigned char *p = v + LIST_HEADER + i * rec;
        if (rec == PROG_REC && bytes_get_le32(p + 12) == 0)
            continue; /* a rank with no position recorded on this shard */
        prog_ent_t e = {.rank = bytes_get_le32(p),
                        .epoch = bytes_get_le32(p + 4),
                        .file = bytes_get_le32(p + 8),
                        .seen = 1,
                        .offset = bytes_get_le64(p + 16),
                        .line = bytes_get_le64(p + 24),
                        .samples = bytes_get_le64(p + 32)};
        size_t k = 0;
        while (k < r->nprog && r->prog[k].rank != e.rank)
            k++;
        if (k == r->nprog) {
            if (grow_array((void **)&r->prog, &r->prog_cap, r->nprog + 1, sizeof(*r->prog)) != 0)
                return errbuf_set(eb, ERR_NOMEM, "out of memory");
            r->prog[r->nprog++] = e;
            continue;
        }
        prog_ent_t *o = &r->prog[k];
        o->seen++;
        if (e.samples != o->samples || e.offset != o->offset || e.epoch != o->epoch ||
            e.file != o->file)
            o->differs = 1;
        if (e.samples < o->samples) {
            e.seen = o->seen;
            e.differs = 1;
            *o = e;
        }
    }
    return rc;
}

/* A record every old shard must hold with the same bytes. */
static int add_same(reshard_t *r, const void *k, size_t klen, const void *v, size_t vl,
                    const char *where, errbuf_t *eb)
{
    for (size_t i = 0; i < r->nsame; i++) {
        same_rec_t *s = &r->same[i];
        if (s->klen != klen || memcmp(s->key, k, klen) != 0)
            continue;
        if (s->vlen != vl || memcmp(s->val, v, vl) != 0)
            return errbuf_set(eb, ERR_MISMATCH,
                              "%s: record '%.*s' differs from shard 0's, and reshard does not "
                              "know how to merge it: reshard a checkpoint written by this "
                              "version of funnel",
                              where, (int)klen, (const char *)k);
        s->seen++;
        return 0;
    }
    if (grow_array((void **)&r->same, &r->same_cap, r->nsame + 1, sizeof(*r->same)) != 0)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    same_rec_t *s = &r->same[r->nsame];
    s->key = malloc(klen + 1);
    s->val = malloc(vl + 1);
    if (!s->key || !s->val) {
        free(s->key);
        free(s->val);
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    memcpy(s->key, k, klen);
    memcpy(s->val, v, vl);
    s->klen = klen;
    s->vlen = vl;
    s->seen = 1;
    r->nsame++;
    return 0;
}

/* One record of old shard i. */
static int take(reshard_t *r, int i, const unsigned char *k, size_t kl, const unsigned char *v,
                size_t vl, errbuf_t *eb)
{
    const char *where = r->in.shard[i]->name;

    if ((k[0] == 'r' || k[0] == 'x') && kl == EMB_KEY_LEN) {
        int j = (int)route_shard(bytes_get_be64(k + 2), (uint32_t)r->m);
        if (k[0] == 'r') {
            r->b[j].rows[k[1]]++;
            r->st->rows++;
        } else {
            r->st->tombstones++;
        }
        return put(r, j, k, kl, v, vl, eb);
    }
    if (is_key(k, kl, EMB_ROWS_KEY))
        return 0; /* recounted */
    if (is_key(k, kl, EMB_SKETCH_KEY))
        return add_sketch(r, v, vl, where, eb);
    if (is_key(k, kl, KEY_SEQ))
        return add_seq(r, v, vl, where, eb);
    if (is_key(k, kl, KEY_PROG))
        return add_prog(r, v, vl, where, eb);
    if (is_key(k, kl, KEY_DAY)) {
        if (vl != 8 || v[0] != 1)
            return errbuf_set(eb, ERR_CORRUPT, "%s: day record of %zu bytes", where, vl);
        int d = (int)(int32_t)bytes_get_le32(v + 4);
        if (!r->has_day || d > r->day)
            r->day = d;
        r->has_day = 1;
        return 0;
    }
    if (is_key(k, kl, CKPT_READ_DENSE_KEY)) {
        int rc = ckpt_io_dense_decode(&r->dense[i], v, vl, where, eb);
        if (rc == 0)
            r->dense_seen++;
        return rc;
    }
    if (k[0] == 'm')
        return add_same(r, k, kl, v, vl, where, eb);
    return errbuf_set(eb, ERR_CORRUPT,
                      "%s: a record of unknown kind (key of %zu bytes starting with 0x%02x); "
                      "nothing was written",
                      where, kl, k[0]);
}

/* The dense vector of all old ranges, cut into the new ones. */
static int split_dense(reshard_t *r, errbuf_t *eb)
{
    ckpt_dense_t *d = r->dense, whole = {0};
    uint64_t planes, covered = 0;
    int rc = 0;

    if (r->dense_seen == 0)
        return 0; /* a cluster that never trained: no dense records */
    if (r->dense_seen != r->in.nshards)
        return errbuf_set(eb, ERR_CORRUPT, "%s: %d of %d shards hold a dense range", r->in.dir,
                          r->dense_seen, r->in.nshards);
    whole.total = d[0].total;
    whole.optim = d[0].optim;
    whole.initialized = 1;
    planes = 0; /* state planes: from the first non-empty range, checked on all */
    for (int i = r->in.nshards - 1; i >= 0; i--)
        if (d[i].count)
            planes = d[i].nstate / d[i].count;
    whole.w = calloc(whole.total + 1, sizeof(float));
    whole.state = calloc(whole.total * planes + 1, sizeof(float));
    if (!whole.w || !whole.state) {
        ckpt_io_dense_release(&whole);
        return errbuf_set(eb, ERR_NOMEM, "out of memory for %llu dense floats",
                          (unsigned long long)whole.total);
    }
    for (int i = 0; i < r->in.nshards && rc == 0; i++) {
        uint64_t lo, cnt;
        route_dense_range(whole.total, (uint32_t)r->in.nshards, (uint32_t)i, &lo, &cnt);
        if (d[i].total != whole.total || d[i].optim != whole.optim || d[i].offset != lo ||
            d[i].count != cnt || d[i].nstate != cnt * planes) {
            rc = errbuf_set(eb, ERR_CORRUPT,
                            "%s: dense range [%llu, +%llu) of %llu floats, %llu of state; "
                            "shard %d of %d owns [%llu, +%llu) of %llu",
                            r->in.shard[i]->name, (unsigned long long)d[i].offset,
                            (unsigned long long)d[i].count, (unsigned long long)d[i].total,
                            (unsigned long long)d[i].nstate, i, r->in.nshards,
                            (unsigned long long)lo, (unsigned long long)cnt,
                            (unsigned long long)whole.total);
            break;
        }
        memcpy(whole.w + lo, d[i].w, cnt * sizeof(float));
        for (uint64_t p = 0; p < planes; p++)
            memcpy(whole.state + p * whole.total + lo, d[i].state + p * cnt, cnt * sizeof(float));
        whole.initialized &= d[i].initialized;
        if (i > 0 && d[i].step != whole.step)
            LOG_WARN("%s: dense step %lld, shard 0's %lld: the checkpoint was taken mid-batch; "
                     "every new range gets the largest",
                     r->in.shard[i]->name, (long long)d[i].step, (long long)d[0].step);
        if (i == 0 || d[i].step > whole.step)
            whole.step = d[i].step;
        covered += cnt;
    }
    for (int j = 0; j < r->m && rc == 0; j++) {
        ckpt_dense_t part = whole;
        unsigned char *rec = NULL;
        size_t len = 0;
        route_dense_range(whole.total, (uint32_t)r->m, (uint32_t)j, &part.offset, &part.count);
        part.nstate = part.count * planes;
        part.w = whole.w + part.offset;
        part.state = malloc((part.nstate + 1) * sizeof(float));
        if (!part.state) {
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
            break;
        }
        for (uint64_t p = 0; p < planes; p++)
            memcpy(part.state + p * part.count, whole.state + p * whole.total + part.offset,
                   part.count * sizeof(float));
        rc = ckpt_io_dense_encode(&part, &rec, &len, eb);
        if (rc == 0)
            rc = put(r, j, CKPT_READ_DENSE_KEY, strlen(CKPT_READ_DENSE_KEY), rec, len, eb);
        free(rec);
        free(part.state);
    }
    r->st->dense = covered;
    ckpt_io_dense_release(&whole);
    return rc;
}

/* The records every new shard gets besides its rows. */
static int write_records(reshard_t *r, int j, errbuf_t *eb)
{
    unsigned char *buf;
    size_t n;
    int rc = 0;

    for (size_t i = 0; i < r->nsame && rc == 0; i++) {
        if (r->same[i].seen != r->in.nshards)
            return errbuf_set(eb, ERR_CORRUPT, "%s: record '%.*s' on %d of %d shards", r->in.dir,
                              (int)r->same[i].klen, r->same[i].key, r->same[i].seen, r->in.nshards);
        rc = put(r, j, r->same[i].key, r->same[i].klen, r->same[i].val, r->same[i].vlen, eb);
    }
    if (rc == 0 && r->sketch)
        rc = put(r, j, EMB_SKETCH_KEY, strlen(EMB_SKETCH_KEY), r->sketch, r->sketch_len, eb);
    if (rc == 0 && r->has_day) {
        unsigned char d[8] = {1, 0, 0, 0};
        bytes_put_le32(d + 4, (uint32_t)r->day);
        rc = put(r, j, KEY_DAY, strlen(KEY_DAY), d, sizeof(d), eb);
    }
    n = LIST_HEADER + (r->nseq > r->nprog ? r->nseq * SEQ_REC : r->nprog * PROG_REC);
    if (rc != 0 || !(buf = calloc(1, n)))
        return rc ? rc : errbuf_set(eb, ERR_NOMEM, "out of memory");
    buf[0] = 2;
    bytes_put_le32(buf + 4, (uint32_t)r->nseq);
    for (size_t i = 0; i < r->nseq; i++) {
        unsigned char *p = buf + LIST_HEADER + i * SEQ_REC;
        bytes_put_le32(p, r->seq[i].sender);
        bytes_put_le32(p + 4, 0);
        bytes_put_le64(p + 8, r->seq[i].last_seq);
        bytes_put_le64(p + 16, r->seq[i].active);
    }
    if (r->nseq)
        rc = put(r, j, KEY_SEQ, strlen(KEY_SEQ), buf, LIST_HEADER + r->nseq * SEQ_REC, eb);
    uint32_t kept = 0;
    memset(buf, 0, n);
    buf[0] = 2;
    for (size_t i = 0; i < r->nprog; i++) {
        const prog_ent_t *e = &r->prog[i];
        if (e->seen != (uint32_t)r->in.nshards)
            continue; /* not a complete position on the old cluster either */
        unsigned char *p = buf + LIST_HEADER + kept++ * PROG_REC;
        bytes_put_le32(p, e->rank);
        bytes_put_le32(p + 4, e->epoch);
        bytes_put_le32(p + 8, e->file);
        bytes_put_le32(p + 12, 1); /* found: a position the shard returns */
        bytes_put_le64(p + 16, e->offset);
        bytes_put_le64(p + 24, e->line);
        bytes_put_le64(p + 32, e->samples);
    }
    bytes_put_le32(buf + 4, kept);
    if (rc == 0 && r->nprog)
        rc = put(r, j, KEY_PROG, strlen(KEY_PROG), buf, LIST_HEADER + kept * PROG_REC, eb);
    free(buf);
    if (rc == 0) {
        /* the row count record (emb_table.h), checked when the store opens */
        uint32_t ns = (uint32_t)r->in.meta.nslots;
        unsigned char rec[8 + 8 * 256] = {EMB_ROWS_VERSION};
        bytes_put_le32(rec + 4, ns);
        for (uint32_t s = 0; s < ns; s++)
            bytes_put_le64(rec + 8 + 8 * s, r->b[j].rows[s]);
        rc = put(r, j, EMB_ROWS_KEY, strlen(EMB_ROWS_KEY), rec, 8 + 8 * (size_t)ns, eb);
    }
    return rc;
}

static void release(reshard_t *r)
{
    for (int j = 0; r->b && j < r->m; j++) {
        free(r->b[j].buf);
        free(r->b[j].off);
        free(r->b[j].klen);
        free(r->b[j].vlen);
    }
    free(r->b);
    for (int i = 0; r->dense && i < r->in.nshards; i++)
        ckpt_io_dense_release(&r->dense[i]);
    free(r->dense);
    for (size_t i = 0; i < r->nsame; i++) {
        free(r->same[i].key);
        free(r->same[i].val);
    }
    free(r->same);
    free(r->seq);
    free(r->prog);
    free(r->sketch);
    ckpt_io_close(&r->in);
}

int emb_reshard_run(const char *from, int shards, const char *out, emb_reshard_stats_t *st,
                    errbuf_t *eb)
{
    reshard_t r;
    meta_t meta;
    int rc;

    memset(&r, 0, sizeof(r));
    memset(st, 0, sizeof(*st));
    r.st = st;
    r.m = shards;
    if (shards < 1 || shards > 65536)
        return errbuf_set(eb, ERR_INVAL, "--shards %d: give 1..65536", shards);
    rc = ckpt_io_open(&r.in, from, eb);
    if (rc == 0)
        rc = ckpt_io_create(&r.out, out, shards, eb);
    r.b = rc == 0 ? calloc((size_t)shards, sizeof(*r.b)) : NULL;
    r.dense = rc == 0 ? calloc((size_t)r.in.nshards, sizeof(*r.dense)) : NULL;
    if (rc == 0 && (!r.b || !r.dense))
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
    for (int i = 0; i < r.in.nshards && rc == 0; i++) {
        store_t *s = r.in.shard[i];
        store_iter_t *it = store_iter_new(s, NULL, 0);
        const void *k, *v;
        size_t kl, vl;
        if (!it) {
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
            break;
        }
        while (rc == 0 && store_iter_next(s, it, &k, &kl, &v, &vl))
            rc = kl == 0 ? errbuf_set(eb, ERR_CORRUPT, "%s: an empty key", s->name)
                         : take(&r, i, k, kl, v, vl, eb);
        if (rc == 0)
            rc = store_iter_error(s, it, eb);
        store_iter_destroy(s, &it);
    }
    for (size_t i = 0; rc == 0 && i < r.nprog; i++)
        if (r.prog[i].differs)
            LOG_WARN("rank %u: old shards recorded different reader positions; the new ones "
                     "start it from the least advanced (%llu samples)",
                     r.prog[i].rank, (unsigned long long)r.prog[i].samples);
    if (rc == 0)
        rc = split_dense(&r, eb);
    for (int j = 0; j < shards && rc == 0; j++)
        if ((rc = write_records(&r, j, eb)) == 0)
            rc = batch_flush(&r, j, 1, eb);
    if (rc == 0) {
        meta = r.in.meta;
        meta.shards = shards;
        rc = ckpt_io_commit(&r.out, &meta, eb);
    }
    st->from_shards = r.in.nshards;
    st->to_shards = shards;
    if (rc != 0)
        ckpt_io_abort(&r.out);
    release(&r);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: funnel-emb reshard --from CKPT --shards M --out DIR [--json]\n\n"
               "Rewrite the checkpoint CKPT (any shard count) as a checkpoint of M shards in the\n"
               "new directory DIR, which `funnel-ps --shards M --init_from DIR` starts from:\n"
               "every row goes to the shard the workers route its key to, the dense weights and\n"
               "their optimizer state are cut into M ranges, admission counts, push sequence\n"
               "numbers, reader positions and the day are kept. CKPT is only read; DIR must not\n"
               "exist and is removed again if anything fails.\n");
}

int emb_reshard_cli(int argc, char **argv, FILE *out, FILE *err)
{
    const char *from = NULL, *dir = NULL;
    int64_t m = 0;
    int json = 0, rc;
    emb_reshard_stats_t st;
    errbuf_t eb = {{0}};

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(out);
            return 0;
        } else if (!strcmp(o, "--json")) {
            json = 1;
        } else if (!v && (!strcmp(o, "--from") || !strcmp(o, "--shards") || !strcmp(o, "--out"))) {
            fprintf(err, "funnel-emb reshard: %s needs a value (see --help)\n", o);
            return 2;
        } else if (!strcmp(o, "--from")) {
            from = argv[++i];
        } else if (!strcmp(o, "--out")) {
            dir = argv[++i];
        } else if (!strcmp(o, "--shards")) {
            if (parse_int_str(argv[++i], 1, 65536, &m) != 0) {
                fprintf(err, "funnel-emb reshard: --shards %s: give a whole number 1..65536\n",
                        argv[i]);
                return 2;
            }
        } else {
            fprintf(err, "funnel-emb reshard: unknown argument '%s' (see --help)\n", o);
            return 2;
        }
    }
    if (!from || !dir || m == 0) {
        fprintf(err, "funnel-emb reshard: give --from CKPT, --shards M and --out DIR (see "
                     "--help)\n");
        return 2;
    }
    rc = emb_reshard_run(from, (int)m, dir, &st, &eb);
    if (rc != 0) {
        fprintf(err, "funnel-emb reshard: %s\n", eb.msg);
        return 1;
    }
    if (json) {
        json_t j;
        json_init(&j, out);
        json_object_begin(&j);
        json_kv_u64(&j, "from_shards", (uint64_t)st.from_shards);
        json_kv_u64(&j, "to_shards", (uint64_t)st.to_shards);
        json_kv_u64(&j, "rows", st.rows);
        json_kv_u64(&j, "tombstones", st.tombstones);
        json_kv_u64(&j, "dense_floats", st.dense);
        json_kv_str(&j, "out", dir);
        json_object_end(&j);
        json_end_line(&j);
    } else {
        fprintf(out,
                "resharded %s (%d shards) into %s (%d shards): %llu rows, %llu tombstones, "
                "%llu dense floats\n",
                from, st.from_shards, dir, st.to_shards, st.rows, st.tombstones, st.dense);
    }
    return 0;
}
