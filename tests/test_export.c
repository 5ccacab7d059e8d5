/*
 * test_export.c - the serving export (emb_export.h) on checkpoints whose
 * content the test knows: a full export holds exactly the rows, a delta
 * exactly the rows that changed or appeared plus a delete for each one gone,
 * apply(full A, delta A->B) equals full B byte for byte, every single-byte
 * corruption and truncation is refused, layouts that do not match are
 * errors, model directories and bare stores export, a random multi-day
 * history against a reference map, and the funnel-emb commands.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/keyhash.h"
#include "common/meta.h"
#include "common/route.h"
#include "table/emb_export.h"
#include "table/emb_table.h"
#include "table/store.h"
#include "tests/util.h"

#define MAXDIM 4

typedef struct entry {
    int slot;
    uint64_t key;
    float w[MAXDIM];     /* embedding (dim of the slot) */
    float state[MAXDIM]; /* Adagrad accumulator */
    uint32_t updates;
} entry_t;

typedef struct table {
    entry_t *e;
    size_t n, cap;
} table_t;

static model_spec_t spec(int item_dim)
{
    model_spec_t ms;
    memset(&ms, 0, sizeof(ms));
    ms.nslots = 2;
    snprintf(ms.slot[0].name, sizeof(ms.slot[0].name), "user_id");
    snprintf(ms.slot[1].name, sizeof(ms.slot[1].name), "item_id");
    for (int s = 0; s < 2; s++)
        ms.slot[s].seed = keyhash_slot(ms.slot[s].name, strlen(ms.slot[s].name));
    ms.slot[0].dim = 4;
    ms.slot[1].dim = item_dim;
    ms.emb_opt = (optim_t){.kind = OPTIM_ADAGRAD, .lr = 0.1f, .eps = 1e-8f, .init_std = 0.1f};
    return ms;
}

static entry_t *add(table_t *t, int slot, uint64_t key)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->e = realloc(t->e, t->cap * sizeof(entry_t));
    }
    entry_t *e = &t->e[t->n++];
    memset(e, 0, sizeof(*e));
    e->slot = slot;
    e->key = key;
    for (int d = 0; d < MAXDIM; d++) {
        e->w[d] = (float)((double)(key % 1000) / 1000.0 + d * 0.25 + slot);
        e->state[d] = 0.5f + (float)d;
    }
    e->updates = (uint32_t)(key % 5) + 1;
    return e;
}

static uint64_t ukey(const model_spec_t *ms, int slot, const char *prefix, int i)
{
    char v[32];
    snprintf(v, sizeof(v), "%s%d", prefix, i);
    return keyhash_value(ms->slot[slot].seed, v, strlen(v));
}

static entry_t *find(table_t *t, int slot, uint64_t key)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].slot == slot && t->e[i].key == key)
            return &t->e[i];
    return NULL;
}

static void drop(table_t *t, int slot, uint64_t key)
{
    entry_t *e = find(t, slot, key);
    if (e)
        *e = t->e[--t->n];
}

static int cmp_entry(const void *x, const void *y)
{
    const entry_t *a = x, *b = y;
    if (a->slot != b->slot)
        return a->slot - b->slot;
    return (a->key > b->key) - (a->key < b->key);
}

/* Write t as a checkpoint-like directory: META and shard-0..shards-1
 * stores holding each row in the shard routing gives it; only shard-0 is
 * used when shards is 1 (a model directory). */
static void build(const char *dir, const model_spec_t *ms, int shards, int day, const table_t *t)
{
    char path[700];
    meta_t m;

    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
    for (int h = 0; h < shards; h++) {
        store_t *st = NULL;
        emb_table_t *et = NULL;
        snprintf(path, sizeof(path), "%s/shard-%d", dir, h);
        CU_ASSERT_EQUAL_FATAL(store_rocks_open(&st, path, STORE_CREATE, path, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(emb_table_open(&et, st, ms, 0, NULL), 0);
        for (size_t i = 0; i < t->n; i++) {
            const entry_t *e = &t->e[i];
            int dim = ms->slot[e->slot].dim;
            float v[2 * MAXDIM], zero[MAXDIM] = {0};
            if (route_shard(e->key, (uint32_t)shards) != (uint32_t)h)
                continue;
            CU_ASSERT_EQUAL_FATAL(emb_table_row_floats(et, e->slot), (size_t)(2 * dim));
            memcpy(v, e->w, (size_t)dim * sizeof(float));
            memcpy(v + dim, e->state, (size_t)dim * sizeof(float));
            CU_ASSERT_EQUAL(emb_table_assign(et, e->slot, &e->key, 1, v, 1, NULL), 0);
            /* a zero gradient counts an update and leaves the row as it is */
            for (uint32_t u = 0; u < e->updates; u++)
                CU_ASSERT_EQUAL(emb_table_push(et, e->slot, &e->key, 1, zero, NULL), 0);
        }
        CU_ASSERT_EQUAL(emb_table_flush(et, NULL, NULL), 0);
        emb_table_destroy(&et);
        store_close(&st);
    }
    meta_from_spec(&m, ms, shards, day, 0);
    CU_ASSERT_EQUAL_FATAL(meta_write(dir, &m, NULL), 0);
}

typedef struct want {
    int op;
    int slot;
    uint64_t key;
    const float *w; /* put: the embedding */
} want_t;

/* Read the export at path and compare it with the n records of want (in
 * order), and its header with kind, day, base_day and ms's slots. */
static void expect_file(const char *path, const model_spec_t *ms, int kind, int day, int base_day,
                        const want_t *want, size_t n)
{
    emb_export_reader_t *r = NULL;
    emb_export_rec_t rec;
    errbuf_t eb = {{0}};
    size_t i = 0, bad = 0;
    int rc;

    rc = emb_export_reader_open(&r, path, &eb);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    const emb_export_header_t *h = emb_export_reader_header(r);
    CU_ASSERT_EQUAL(h->version, EMB_EXPORT_VERSION);
    CU_ASSERT_EQUAL(h->kind, kind);
    CU_ASSERT_EQUAL(h->day, day);
    CU_ASSERT_EQUAL(h->base_day, base_day);
    CU_ASSERT_EQUAL(h->records, n);
    CU_ASSERT_EQUAL(h->nslots, ms->nslots);
    for (int s = 0; s < ms->nslots; s++) {
        CU_ASSERT_STRING_EQUAL(h->slot[s], ms->slot[s].name);
        CU_ASSERT_EQUAL(h->dim[s], ms->slot[s].dim);
    }
    while ((rc = emb_export_reader_next(r, &rec, &eb)) == 1) {
        if (i >= n) {
            bad++;
            break;
        }
        const want_t *w = &want[i++];
        if (rec.op != w->op || rec.slot != w->slot || rec.key != w->key) {
            bad++;
            continue;
        }
        for (int d = 0; rec.op == EMB_EXPORT_PUT && d < ms->slot[rec.slot].dim; d++) {
            float f = emb_export_float(rec.emb, (size_t)d);
            if (memcmp(&f, &w->w[d], 4) != 0)
                bad++;
        }
    }
    if (rc != 0)
        fprintf(stderr, "%s\n", eb.msg);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(i, n);
    CU_ASSERT_EQUAL(bad, 0);
    emb_export_reader_destroy(&r);
}

/* want[] of a full export of t (sorted in place). */
static want_t *full_of(table_t *t)
{
    want_t *w = calloc(t->n + 1, sizeof(*w));
    qsort(t->e, t->n, sizeof(entry_t), cmp_entry);
    for (size_t i = 0; i < t->n; i++)
        w[i] = (want_t){EMB_EXPORT_PUT, t->e[i].slot, t->e[i].key, t->e[i].w};
    return w;
}

/* want[] of the delta a -> b, computed from the tables; *n gets the count. */
static want_t *delta_of(table_t *a, table_t *b, const model_spec_t *ms, size_t *n)
{
    want_t *w = calloc(a->n + b->n + 1, sizeof(*w));
    size_t i = 0, j = 0;

    qsort(a->e, a->n, sizeof(entry_t), cmp_entry);
    qsort(b->e, b->n, sizeof(entry_t), cmp_entry);
    *n = 0;
    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1 : cmp_entry(&a->e[i], &b->e[j]);
        if (c < 0) {
            w[(*n)++] = (want_t){EMB_EXPORT_DELETE, a->e[i].slot, a->e[i].key, NULL};
            i++;
        } else if (c > 0) {
            w[(*n)++] = (want_t){EMB_EXPORT_PUT, b->e[j].slot, b->e[j].key, b->e[j].w};
            j++;
        } else {
            size_t bytes = (size_t)ms->slot[a->e[i].slot].dim * sizeof(float);
            if (a->e[i].updates != b->e[j].updates || memcmp(a->e[i].w, b->e[j].w, bytes))
                w[(*n)++] = (want_t){EMB_EXPORT_PUT, b->e[j].slot, b->e[j].key, b->e[j].w};
            i++;
            j++;
        }
    }
    return w;
}

static int same_file(const char *x, const char *y)
{
    size_t lx, ly;
    char *a = tu_slurp(x, &lx), *b = tu_slurp(y, &ly);
    int same = a && b && lx == ly && memcmp(a, b, lx) == 0;
    free(a);
    free(b);
    return same;
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* The tables of day 1 (A) and day 2 (B), with every kind of change. */
static void tables(const model_spec_t *ms, table_t *a, table_t *b)
{
    memset(a, 0, sizeof(*a));
    memset(b, 0, sizeof(*b));
    for (int i = 0; i < 40; i++)
        add(a, 0, ukey(ms, 0, "u", i));
    for (int i = 0; i < 30; i++)
        add(a, 1, ukey(ms, 1, "i", i));
    add(a, 1, 0);          /* the smallest key */
    add(a, 1, UINT64_MAX); /* and the largest: compared as unsigned */
    find(a, 0, ukey(ms, 0, "u", 10))->w[0] = 0.0f;
    for (size_t i = 0; i < a->n; i++)
        *add(b, a->e[i].slot, a->e[i].key) = a->e[i];
    find(b, 0, ukey(ms, 0, "u", 10))->w[0] = -0.0f; /* equal as floats, not as bytes */
    for (int i = 11; i < 20; i++)
        find(b, 0, ukey(ms, 0, "u", i))->w[i % 4] += 0.5f;
    for (int i = 20; i < 25; i++)
        drop(b, 0, ukey(ms, 0, "u", i));
    for (int i = 25; i < 30; i++) /* optimizer state only: not exported, no put */
        find(b, 0, ukey(ms, 0, "u", i))->state[1] += 1.0f;
    for (int i = 30; i < 35; i++) /* update count only: a put */
        find(b, 0, ukey(ms, 0, "u", i))->updates += 2;
    for (int i = 40; i < 50; i++)
        add(b, 0, ukey(ms, 0, "u", i));
    find(b, 1, ukey(ms, 1, "i", 5))->w[2] = 7.0f;
    for (int i = 15; i < 30; i++)
        drop(b, 1, ukey(ms, 1, "i", i));
    for (int i = 30; i < 35; i++)
        add(b, 1, ukey(ms, 1, "i", i));
    find(b, 1, UINT64_MAX)->w[0] = -1.0f;
}

typedef struct fixture {
    char dir[512];
    char a[600], b[600];   /* checkpoints of day 1 and day 2 (2 shards) */
    char fa[600], fb[600]; /* full exports */
    char dab[600];         /* delta a -> b */
    model_spec_t ms;
    table_t ta, tb;
} fixture_t;

static void setup(fixture_t *f, const char *tag)
{
    memset(f, 0, sizeof(*f));
    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(f->dir, sizeof(f->dir), tag), 0);
    f->ms = spec(3);
    tables(&f->ms, &f->ta, &f->tb);
    snprintf(f->a, sizeof(f->a), "%s/ckpt-a", f->dir);
    snprintf(f->b, sizeof(f->b), "%s/ckpt-b", f->dir);
    snprintf(f->fa, sizeof(f->fa), "%s/full-a.emb", f->dir);
    snprintf(f->fb, sizeof(f->fb), "%s/full-b.emb", f->dir);
    snprintf(f->dab, sizeof(f->dab), "%s/delta-ab.emb", f->dir);
    build(f->a, &f->ms, 2, 1, &f->ta);
    build(f->b, &f->ms, 2, 2, &f->tb);
}

static void teardown(fixture_t *f)
{
    free(f->ta.e);
    free(f->tb.e);
    tu_rmtree(f->dir);
}

static void test_full_delta_apply(void)
{
    fixture_t f;
    emb_export_stats_t st;
    errbuf_t eb = {{0}};
    char out[700];
    size_t nd, changed = 0, deleted = 0;

    setup(&f, "export");
    CU_ASSERT_EQUAL(emb_export_full(f.a, NULL, f.fa, &st, &eb), 0);
    CU_ASSERT_EQUAL(st.records, f.ta.n);
    CU_ASSERT_EQUAL(st.puts, f.ta.n);
    CU_ASSERT_EQUAL(st.deletes, 0);
    CU_ASSERT_EQUAL(st.scanned, f.ta.n);
    CU_ASSERT_FALSE(exists(strcat(strcpy(out, f.fa), ".tmp")));
    struct stat sb;
    CU_ASSERT_EQUAL(stat(f.fa, &sb), 0);
    CU_ASSERT_EQUAL((uint64_t)sb.st_size, st.bytes);
    CU_ASSERT_EQUAL(emb_export_full(f.b, NULL, f.fb, &st, &eb), 0);
    CU_ASSERT_EQUAL(emb_export_delta(f.b, f.a, NULL, f.dab, &st, &eb), 0);
    CU_ASSERT_EQUAL(st.scanned, f.ta.n + f.tb.n);

    want_t *wa = full_of(&f.ta), *wb = full_of(&f.tb), *wd = delta_of(&f.ta, &f.tb, &f.ms, &nd);
    expect_file(f.fa, &f.ms, EMB_EXPORT_FULL, 1, -1, wa, f.ta.n);
    expect_file(f.fb, &f.ms, EMB_EXPORT_FULL, 2, -1, wb, f.tb.n);
    expect_file(f.dab, &f.ms, EMB_EXPORT_DELTA, 2, 1, wd, nd);
    /* what the changes in tables() add up to: u10 (-0), u11..u19, u30..u34,
     * u40..u49, i5, i30..i34, the max key; deletes u20..u24, i15..i29 */
    for (size_t i = 0; i < nd; i++) {
        changed += wd[i].op == EMB_EXPORT_PUT;
        deleted += wd[i].op == EMB_EXPORT_DELETE;
    }
    CU_ASSERT_EQUAL(changed, 10 + 5 + 10 + 1 + 5 + 1);
    CU_ASSERT_EQUAL(deleted, 5 + 15);
    CU_ASSERT_EQUAL(st.puts, changed);
    CU_ASSERT_EQUAL(st.deletes, deleted);

    /* yesterday's full export + today's delta = today's full export */
    snprintf(out, sizeof(out), "%s/applied.emb", f.dir);
    CU_ASSERT_EQUAL(emb_export_apply(f.fa, f.dab, out, &st, &eb), 0);
    CU_ASSERT_EQUAL(st.records, f.tb.n);
    CU_ASSERT(same_file(out, f.fb));

    /* a delta of a table against itself is empty, and applies to nothing new */
    snprintf(out, sizeof(out), "%s/delta-bb.emb", f.dir);
    CU_ASSERT_EQUAL(emb_export_delta(f.b, f.b, NULL, out, &st, &eb), 0);
    CU_ASSERT_EQUAL(st.records, 0);
    expect_file(out, &f.ms, EMB_EXPORT_DELTA, 2, 2, NULL, 0);
    free(wa);
    free(wb);
    free(wd);
    teardown(&f);
}

/* Flip byte i of the file at src into dst. */
static void write_flipped(const char *src, const char *dst, size_t i, unsigned char x)
{
    size_t len;
    char *b = tu_slurp(src, &len);
    FILE *f = fopen(dst, "wb");

    if (i < len)
        b[i] ^= (char)x;
    fwrite(b, 1, len, f);
    fclose(f);
    free(b);
}

static void write_prefix(const char *src, const char *dst, size_t keep)
{
    size_t len;
    char *b = tu_slurp(src, &len);
    FILE *f = fopen(dst, "wb");

    fwrite(b, 1, keep < len ? keep : len, f);
    fclose(f);
    free(b);
}

/* Read a whole export; 0 or the first error. */
static int read_all(const char *path, errbuf_t *eb)
{
    emb_export_reader_t *r = NULL;
    emb_export_rec_t rec;
    int rc = emb_export_reader_open(&r, path, eb);

    if (rc == 0)
        while ((rc = emb_export_reader_next(r, &rec, eb)) == 1)
            ;
    emb_export_reader_destroy(&r);
    return rc;
}

static void test_corrupt(void)
{
    fixture_t f;
    errbuf_t eb = {{0}};
    char bad[700], out[700], tmp[720];
    size_t len, missed = 0;

    setup(&f, "export-corrupt");
    CU_ASSERT_EQUAL_FATAL(emb_export_full(f.a, NULL, f.fa, NULL, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_export_delta(f.b, f.a, NULL, f.dab, NULL, &eb), 0);
    snprintf(bad, sizeof(bad), "%s/bad.emb", f.dir);
    snprintf(out, sizeof(out), "%s/out.emb", f.dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    free(tu_slurp(f.dab, &len));
    CU_ASSERT_EQUAL(read_all(f.dab, &eb), 0);

    /* every single flipped byte of the delta is refused, with a message */
    for (size_t i = 0; i < len; i++) {
        write_flipped(f.dab, bad, i, 0x10);
        eb.msg[0] = '\0';
        int rc = read_all(bad, &eb);
        if (rc != ERR_CORRUPT && rc != ERR_VERSION) {
            fprintf(stderr, "flipped byte %zu of %zu: rc %d\n", i, len, rc);
            missed++;
        }
        CU_ASSERT(eb.msg[0] != '\0');
    }
    CU_ASSERT_EQUAL(missed, 0);

    /* a flipped float: the checksum says so at the end, and apply writes nothing */
    write_flipped(f.dab, bad, len - EMB_EXPORT_TRAILER - 2, 0x01);
    CU_ASSERT_EQUAL(read_all(bad, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "checksum"));
    CU_ASSERT_EQUAL(emb_export_apply(f.fa, bad, out, NULL, &eb), ERR_CORRUPT);
    CU_ASSERT_FALSE(exists(out));
    CU_ASSERT_FALSE(exists(tmp));

    /* truncated: anywhere, including inside the header */
    size_t cuts[] = {len - 1, len - EMB_EXPORT_TRAILER, len / 2, 40, 10, 0};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        write_prefix(f.dab, bad, cuts[i]);
        CU_ASSERT_EQUAL(read_all(bad, &eb), ERR_CORRUPT);
    }
    write_prefix(f.dab, bad, len - 1);
    CU_ASSERT_EQUAL(read_all(bad, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "truncated"));
    CU_ASSERT_EQUAL(emb_export_apply(f.fa, bad, out, NULL, &eb), ERR_CORRUPT);
    CU_ASSERT_FALSE(exists(out));

    /* a newer format version, something else entirely, a missing file */
    write_flipped(f.dab, bad, 8, 0x03); /* version 1 -> 2 */
    CU_ASSERT_EQUAL(read_all(bad, &eb), ERR_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "newer"));
    tu_write(bad, "slot\tkey\tembedding\nuser_id\t1\t0.5,0.5,0.5,0.5\n");
    CU_ASSERT_EQUAL(read_all(bad, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "not a funnel export"));
    CU_ASSERT_EQUAL(read_all(out, &eb), ERR_NOTFOUND);

    /* the wrong files to apply */
    CU_ASSERT_EQUAL(emb_export_full(f.b, NULL, f.fb, NULL, &eb), 0);
    CU_ASSERT_EQUAL(emb_export_apply(f.fb, f.dab, out, NULL, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "day"));
    CU_ASSERT_EQUAL(emb_export_apply(f.dab, f.dab, out, NULL, &eb), ERR_MISMATCH);
    CU_ASSERT_EQUAL(emb_export_apply(f.fa, f.fb, out, NULL, &eb), ERR_MISMATCH);
    CU_ASSERT_FALSE(exists(out));
    CU_ASSERT_FALSE(exists(tmp));
    teardown(&f);
}

static void test_layouts(void)
{
    fixture_t f;
    emb_export_stats_t st;
    errbuf_t eb = {{0}};
    char c3[600], dim5[600], model[600], bare[700], out[700], out2[700], path[1500];

    setup(&f, "export-layout");
    CU_ASSERT_EQUAL(emb_export_full(f.b, NULL, f.fb, NULL, &eb), 0);

    /* the same table in 3 shards: the same full export (global order), but
     * no delta against a 2-shard checkpoint */
    snprintf(c3, sizeof(c3), "%s/ckpt-3", f.dir);
    build(c3, &f.ms, 3, 2, &f.tb);
    snprintf(out, sizeof(out), "%s/full-3.emb", f.dir);
    CU_ASSERT_EQUAL(emb_export_full(c3, NULL, out, NULL, &eb), 0);
    CU_ASSERT(same_file(out, f.fb));
    snprintf(out, sizeof(out), "%s/delta-3.emb", f.dir);
    CU_ASSERT_EQUAL(emb_export_delta(c3, f.a, NULL, out, NULL, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "shards"));
    CU_ASSERT_FALSE(exists(out));

    /* different dims */
    model_spec_t ms5 = spec(5);
    table_t t5 = {0};
    add(&t5, 0, 42);
    snprintf(dim5, sizeof(dim5), "%s/ckpt-dim5", f.dir);
    build(dim5, &ms5, 2, 2, &t5);
    CU_ASSERT_EQUAL(emb_export_delta(dim5, f.a, NULL, out, NULL, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "item_id"));
    free(t5.e);

    /* a model directory: META (1 shard) and shard-0 */
    snprintf(model, sizeof(model), "%s/model", f.dir);
    build(model, &f.ms, 1, 2, &f.tb);
    snprintf(out2, sizeof(out2), "%s/model.emb", f.dir);
    CU_ASSERT_EQUAL(emb_export_full(model, NULL, out2, &st, &eb), 0);
    CU_ASSERT_EQUAL(st.records, f.tb.n);
    CU_ASSERT(same_file(out2, f.fb));

    /* a bare store: the slot table from the spec, the day from the options */
    snprintf(bare, sizeof(bare), "%s/shard-0", model);
    emb_export_opts_t o = {.spec = &f.ms, .day = 2};
    CU_ASSERT_EQUAL(emb_export_full(bare, &o, out2, &st, &eb), 0);
    CU_ASSERT(same_file(out2, f.fb));
    CU_ASSERT_EQUAL(emb_export_full(bare, NULL, out2, &st, &eb), ERR_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "META"));

    /* a checkpoint missing a shard, and one without META */
    snprintf(path, sizeof(path), "mv '%s/shard-1' '%s/shard-1.gone'", c3, c3);
    CU_ASSERT_EQUAL(tu_sh(NULL, "%s", path), 0);
    CU_ASSERT_EQUAL(emb_export_full(c3, NULL, out2, NULL, &eb), ERR_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "shard-1"));
    snprintf(path, sizeof(path), "%s/META", f.a);
    CU_ASSERT_EQUAL(unlink(path), 0);
    CU_ASSERT_EQUAL(emb_export_full(f.a, &o, out2, NULL, &eb), ERR_NOTFOUND);
    CU_ASSERT_EQUAL(emb_export_full("/nonexistent/ckpt", NULL, out2, NULL, &eb), ERR_NOTFOUND);
    teardown(&f);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Five days of random churn against the reference tables: each day's delta
 * is what the reference says changed, and applying it to yesterday's full
 * export gives today's, byte for byte. */
static void test_random_days(void)
{
    char dir[512], ck[2][600], full[2][600], delta[600], applied[600];
    model_spec_t ms = spec(3);
    table_t t[2] = {{0}};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    errbuf_t eb = {{0}};
    emb_export_stats_t st;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "export-random"), 0);
    for (int i = 0; i < 300; i++)
        add(&t[0], (int)(rnd(&seed) % 2), rnd(&seed));
    for (int day = 0; day < 5; day++) {
        int cur = day % 2, prev = 1 - cur;
        snprintf(ck[cur], sizeof(ck[cur]), "%s/ckpt-%d", dir, day);
        snprintf(full[cur], sizeof(full[cur]), "%s/full-%d.emb", dir, day);
        build(ck[cur], &ms, 2, day, &t[cur]);
        CU_ASSERT_EQUAL(emb_export_full(ck[cur], NULL, full[cur], NULL, &eb), 0);
        want_t *w = full_of(&t[cur]);
        expect_file(full[cur], &ms, EMB_EXPORT_FULL, day, -1, w, t[cur].n);
        free(w);
        if (day > 0) {
            size_t nd;
            snprintf(delta, sizeof(delta), "%s/delta-%d.emb", dir, day);
            snprintf(applied, sizeof(applied), "%s/applied-%d.emb", dir, day);
            CU_ASSERT_EQUAL(emb_export_delta(ck[cur], ck[prev], NULL, delta, &st, &eb), 0);
            w = delta_of(&t[prev], &t[cur], &ms, &nd);
            expect_file(delta, &ms, EMB_EXPORT_DELTA, day, day - 1, w, nd);
            free(w);
            CU_ASSERT_EQUAL(emb_export_apply(full[prev], delta, applied, NULL, &eb), 0);
            CU_ASSERT(same_file(applied, full[cur]));
        }
        /* tomorrow: drop, change, bump and add rows at random */
        t[prev].n = 0;
        for (size_t i = 0; i < t[cur].n; i++) {
            entry_t e = t[cur].e[i];
            uint64_t r = rnd(&seed) % 10;
            if (r == 0)
                continue;
            if (r == 1)
                e.w[rnd(&seed) % 3] += 0.125f;
            if (r == 2)
                e.updates++;
            if (r == 3)
                e.state[0] += 1.0f;
            *add(&t[prev], e.slot, e.key) = e;
        }
        for (int i = 0; i < 40; i++)
            add(&t[prev], (int)(rnd(&seed) % 2), rnd(&seed));
    }
    free(t[0].e);
    free(t[1].e);
    tu_rmtree(dir);
}

/* funnel-emb export / apply / export-dump as an operator runs them. */
static void test_commands(void)
{
    fixture_t f;
    char emb[512], log[700], full[700], c3[600];
    errbuf_t eb = {{0}};

    setup(&f, "export-cmd");
    tu_bin(emb, sizeof(emb), "funnel-emb");
    snprintf(log, sizeof(log), "%s/out.txt", f.dir);
    snprintf(full, sizeof(full), "%s/lib-full-b.emb", f.dir);
    CU_ASSERT_EQUAL(emb_export_full(f.b, NULL, full, NULL, &eb), 0);

    CU_ASSERT_EQUAL(tu_sh(log, "%s export %s --out %s", emb, f.a, f.fa), 0);
    char *text = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "full "));
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "rows/s"));
    free(text);
    CU_ASSERT_EQUAL(tu_sh(log, "%s export %s --since %s --out %s --json", emb, f.b, f.a, f.dab), 0);
    text = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "\"puts\":32,\"deletes\":20,"));
    free(text);
    CU_ASSERT_EQUAL(tu_sh(log, "%s apply %s %s --out %s", emb, f.fa, f.dab, f.fb), 0);
    CU_ASSERT(same_file(f.fb, full));

    CU_ASSERT_EQUAL(tu_sh(log, "%s export-dump %s", emb, f.dab), 0);
    text = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL(
        text && strstr(text, "# funnel export version 1, delta, day 2, base day 1, 52 records"));
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "# slot 1 item_id dim 3"));
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "delete\titem_id\t"));
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "put\titem_id\tffffffffffffffff\t-1,"));
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "# end: 52 records, checksum ok"));
    int deletes = 0;
    for (char *p = text; p && (p = strstr(p, "\ndelete\t")); p++)
        deletes++;
    CU_ASSERT_EQUAL(deletes, 20);
    free(text);

    /* errors: exit status 1 with the reason */
    snprintf(c3, sizeof(c3), "%s/ckpt-3", f.dir);
    build(c3, &f.ms, 3, 2, &f.tb);
    CU_ASSERT_EQUAL(tu_sh(log, "%s export %s --since %s --out %s/x.emb", emb, c3, f.a, f.dir), 1);
    text = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "shards"));
    free(text);
    CU_ASSERT_EQUAL(tu_sh(log, "%s export %s", emb, f.a), 1); /* no --out */
    CU_ASSERT_EQUAL(tu_sh(log, "%s apply %s %s --out %s/y.emb", emb, f.fb, f.dab, f.dir), 1);
    teardown(&f);
}

int test_export_register(void)
{
    CU_pSuite s = CU_add_suite("export", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "full and delta exports hold what changed; apply(full A, delta) == full B",
                test_full_delta_apply);
    CU_add_test(s, "flipped bytes, truncation, newer versions and wrong files are refused",
                test_corrupt);
    CU_add_test(s, "shard counts, dims, model directories, bare stores, missing shards",
                test_layouts);
    CU_add_test(s, "five random days against a reference map", test_random_days);
    CU_add_test(s, "funnel-emb export, apply and export-dump", test_commands);
    return CU_get_error();
}
