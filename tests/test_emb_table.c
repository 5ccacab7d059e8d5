/*
 * test_emb_table.c - the embedding table against a trivial reference.
 *
 * The backbone is a differential test (rax's fuzz test): four tables -
 * RocksDB with a small mem_limit (rows are evicted and read back all the
 * time), RocksDB unlimited, the in-memory store unlimited and with a small
 * mem_limit - and a reference that keeps every row in a plain array indexed
 * by the key's position in a fixed universe, updated with the same optim.h
 * functions, run the same random pulls, pushes, flushes, day changes,
 * expiries and close/reopen cycles from a fixed seed; one slot expires
 * rows, one admits keys on their third sighting (the reference counts
 * exactly; the sketch is wide enough to be exact here). Every pulled row
 * and, at checkpoints, every row with its optimizer state, update count
 * and days must agree bit for bit (memcmp).
 *
 * Also: a table ten times larger than mem_limit against an unlimited one,
 * the memory bound holding even when one request brings more new rows
 * than fit, malformed records on disk (ERR_CORRUPT, never a crash), the
 * flush count and the record layout as documented; and rows created,
 * updated, expired, evicted and stored while an index grows incrementally
 * (stopped in the middle of moves), each found exactly once.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/optim.h"
#include "common/rng.h"
#include "table/emb_table.h"
#include "table/spill.h"
#include "table/store.h"
#include "tests/util.h"

/* Skewed index in [0, n): most draws hit a small hot set. */
static size_t rng_skewed(uint64_t *s, size_t n)
{
    double u = rng_unit(rng_splitmix64(s));
    return (size_t)((double)n * u * u * u) % n;
}

static optim_t make_opt(int kind)
{
    optim_t o;
    memset(&o, 0, sizeof(o));
    o.kind = kind;
    o.lr = 0.05f;
    o.eps = 1e-8f;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.ftrl_beta = 1.0f;
    o.l1 = 0.001f;
    o.l2 = 0.01f;
    o.init_std = 0.1f;
    return o;
}

static model_spec_t make_spec(int kind, int nslots, const int *dims, const int *expire)
{
    model_spec_t ms;
    memset(&ms, 0, sizeof(ms));
    ms.nslots = nslots;
    for (int i = 0; i < nslots; i++) {
        snprintf(ms.slot[i].name, sizeof(ms.slot[i].name), "s%d", i);
        ms.slot[i].dim = dims[i];
        ms.slot[i].admit_min = 1;
        ms.slot[i].expire_days = expire ? expire[i] : 0;
    }
    ms.emb_opt = make_opt(kind);
    return ms;
}

/* ---- the reference: every row in an array, by universe position ---- */

#define MAXSLOTS 4

typedef struct ref {
    const model_spec_t *ms;
    size_t nk;                      /* keys per slot */
    uint64_t *key[MAXSLOTS];        /* the universe */
    float *row[MAXSLOTS];           /* nk x (dim + state) */
    uint8_t *has[MAXSLOTS];         /* row exists */
    emb_row_meta_t *meta[MAXSLOTS]; /* its metadata */
    int *expired[MAXSLOTS];         /* day of the last expiry, -1 */
    uint32_t *seen[MAXSLOTS];       /* sightings while without a row (admission) */
    size_t nf[MAXSLOTS];            /* floats per row */
    int day;
} ref_t;

static void ref_init(ref_t *r, const model_spec_t *ms, size_t nk, uint64_t seed)
{
    memset(r, 0, sizeof(*r));
    r->ms = ms;
    r->nk = nk;
    for (int s = 0; s < ms->nslots; s++) {
        size_t dim = (size_t)ms->slot[s].dim;
        r->nf[s] = dim + optim_state_len(&ms->emb_opt, dim);
        r->key[s] = malloc(nk * sizeof(uint64_t));
        r->row[s] = calloc(nk * r->nf[s], sizeof(float));
        r->has[s] = calloc(nk, 1);
        r->meta[s] = calloc(nk, sizeof(emb_row_meta_t));
        r->expired[s] = malloc(nk * sizeof(int));
        r->seen[s] = calloc(nk, sizeof(uint32_t));
        for (size_t i = 0; i < nk; i++) {
            /* random keys plus the extremes */
            r->key[s][i] = i == 0 ? 0 : i == 1 ? UINT64_MAX : rng_splitmix64(&seed);
            r->expired[s][i] = -1;
        }
    }
}

static void ref_release(ref_t *r)
{
    for (int s = 0; s < MAXSLOTS; s++) {
        free(r->key[s]);
        free(r->row[s]);
        free(r->has[s]);
        free(r->meta[s]);
        free(r->expired[s]);
        free(r->seen[s]);
    }
}

static float *ref_row(ref_t *r, int s, size_t i)
{
    return r->row[s] + i * r->nf[s];
}

static void ref_create(ref_t *r, int s, size_t i)
{
    size_t dim = (size_t)r->ms->slot[s].dim;
    float *w = ref_row(r, s, i);
    optim_row_init(&r->ms->emb_opt, r->key[s][i], w, w + dim, dim);
    r->has[s][i] = 1;
    r->meta[s][i] = (emb_row_meta_t){0, r->day, r->day};
}

static void ref_pull(ref_t *r, int s, const size_t *idx, size_t n, float *out, int create)
{
    size_t dim = (size_t)r->ms->slot[s].dim;
    for (size_t j = 0; j < n; j++) {
        if (!r->has[s][idx[j]] && create &&
            ++r->seen[s][idx[j]] >= (uint32_t)r->ms->slot[s].admit_min)
            ref_create(r, s, idx[j]);
        if (r->has[s][idx[j]])
            memcpy(out + j * dim, ref_row(r, s, idx[j]), dim * sizeof(float));
        else
            memset(out + j * dim, 0, dim * sizeof(float));
    }
}

static void ref_push(ref_t *r, int s, const size_t *idx, size_t n, const float *g)
{
    size_t dim = (size_t)r->ms->slot[s].dim;
    for (size_t j = 0; j < n; j++) {
        size_t i = idx[j];
        if (!r->has[s][i] && r->ms->slot[s].admit_min > 1)
            continue; /* not admitted: the gradient is dropped */
        if (!r->has[s][i])
            ref_create(r, s, i);
        float *w = ref_row(r, s, i);
        optim_row_update(&r->ms->emb_opt, w, w + dim, g + j * dim, dim);
        r->meta[s][i].updates++;
        r->meta[s][i].last_day = r->day;
    }
}

static uint64_t ref_expire(ref_t *r, int day)
{
    uint64_t n = 0;
    for (int s = 0; s < r->ms->nslots; s++) {
        int exp = r->ms->slot[s].expire_days;
        if (exp <= 0 || day - exp <= 0)
            continue;
        for (size_t i = 0; i < r->nk; i++)
            if (r->has[s][i] && r->meta[s][i].last_day < day - exp) {
                r->has[s][i] = 0;
                r->expired[s][i] = day;
                n++;
            }
    }
    return n;
}

/* ---- the tables under test ---- */

enum { ROCKS_SMALL = 0, ROCKS_FULL, MEM_FULL, MEM_SMALL, ROCKS_SPILL, MEM_SPILL, NTAB };
static const char *const tab_name[NTAB] = {
    "rocks+limit", "rocks", "mem", "mem+limit", "rocks+limit+spill file", "mem+limit+spill file"};

static int is_small(int i)
{
    return i == ROCKS_SMALL || i == MEM_SMALL || i == ROCKS_SPILL || i == MEM_SPILL;
}
static int is_rocks(int i)
{
    return i == ROCKS_SMALL || i == ROCKS_FULL || i == ROCKS_SPILL;
}

typedef struct fixture {
    char dir[512];
    store_t *st[NTAB];
    emb_table_t *t[NTAB];
    const model_spec_t *ms;
    uint64_t small_limit;     /* bytes */
    uint64_t evicted, loaded; /* by the budgeted tables, summed over reopens */
    uint64_t spill_loaded;    /* by the spill-file tables, summed over reopens */
} fixture_t;

static int fx_open_tables(fixture_t *f, int day)
{
    errbuf_t eb = {{0}};
    for (int i = 0; i < NTAB; i++) {
        uint64_t lim = is_small(i) ? f->small_limit : 0;
        if (!f->st[i]) {
            char path[600];
            snprintf(path, sizeof(path), "%s/db%d", f->dir, i);
            if (store_rocks_open(&f->st[i], path, STORE_CREATE, tab_name[i], &eb) != 0) {
                fprintf(stderr, "%s\n", eb.msg);
                return -1;
            }
        }
        if (emb_table_open(&f->t[i], f->st[i], f->ms, lim, &eb) != 0 ||
            ((i == ROCKS_SPILL || i == MEM_SPILL) && emb_table_set_spill(f->t[i], f->dir, &eb))) {
            fprintf(stderr, "%s\n", eb.msg);
            return -1;
        }
        emb_table_set_day(f->t[i], day);
    }
    return 0;
}

static int fx_open(fixture_t *f, const model_spec_t *ms, uint64_t small_limit)
{
    errbuf_t eb = {{0}};
    memset(f, 0, sizeof(*f));
    f->ms = ms;
    f->small_limit = small_limit;
    if (tu_mkdtemp(f->dir, sizeof(f->dir), "emb") != 0)
        return -1;
    if (store_mem_open(&f->st[MEM_FULL], &eb) != 0 || store_mem_open(&f->st[MEM_SMALL], &eb) != 0 ||
        store_mem_open(&f->st[MEM_SPILL], &eb) != 0)
        return -1;
    return fx_open_tables(f, 0);
}

/* Flush, close everything (RocksDB stores too), reopen. */
static int fx_reopen(fixture_t *f, int day)
{
    for (int i = 0; i < NTAB; i++) {
        emb_table_stats_t st;
        emb_table_stats(f->t[i], &st);
        if (is_small(i)) {
            f->evicted += st.evicted;
            f->loaded += st.loaded;
            f->spill_loaded += st.spill_loaded;
        }
        CU_ASSERT_EQUAL(emb_table_flush(f->t[i], NULL, NULL), 0);
        /* the row count record equals the rows stored (spilled rows too) */
        errbuf_t eb = {{0}};
        CU_ASSERT_EQUAL(emb_table_check_store(f->st[i], &eb), 0);
        if (eb.msg[0])
            fprintf(stderr, "\n%s: %s\n", tab_name[i], eb.msg);
        emb_table_destroy(&f->t[i]);
        CU_ASSERT_PTR_NULL(f->t[i]);
        if (is_rocks(i))
            store_close(&f->st[i]);
    }
    return fx_open_tables(f, day);
}

static void fx_close(fixture_t *f)
{
    for (int i = 0; i < NTAB; i++) {
        emb_table_destroy(&f->t[i]);
        store_close(&f->st[i]);
    }
    tu_rmtree(f->dir);
}

/* Every key of the universe: same row, state, updates and days in every
 * table as in the reference; absent where the reference has none, with
 * the expiry day where it expired. Returns the mismatches. */
static int compare_all(fixture_t *f, ref_t *r)
{
    float *got = malloc(4096 * sizeof(float));
    int bad = 0;

    for (int s = 0; s < f->ms->nslots; s++)
        for (size_t i = 0; i < r->nk; i++)
            for (int t = 0; t < NTAB; t++) {
                emb_row_meta_t m;
                int status, xday;
                uint32_t seen;
                int rc = emb_table_inspect(f->t[t], s, r->key[s][i], got, &m, &status, &seen, &xday,
                                           NULL);
                if (rc != 0) {
                    bad++;
                    continue;
                }
                if (r->ms->slot[s].admit_min > 1 && seen != r->seen[s][i])
                    bad++;
                if (!r->has[s][i]) {
                    int want = r->expired[s][i] >= 0 ? EMB_ROW_EXPIRED
                               : r->seen[s][i] > 0   ? EMB_ROW_PENDING
                                                     : EMB_ROW_NEVER;
                    if (status != want || (want == EMB_ROW_EXPIRED && xday != r->expired[s][i]))
                        bad++;
                    continue;
                }
                if ((status != EMB_ROW_RESIDENT && status != EMB_ROW_STORED) ||
                    memcmp(got, ref_row(r, s, i), r->nf[s] * sizeof(float)) != 0 ||
                    m.updates != r->meta[s][i].updates || m.first_day != r->meta[s][i].first_day ||
                    m.last_day != r->meta[s][i].last_day) {
                    if (bad < 5)
                        fprintf(stderr, "\n%s: slot %d key %016llx differs (status %d)\n",
                                tab_name[t], s, (unsigned long long)r->key[s][i], status);
                    bad++;
                }
            }
    free(got);
    return bad;
}

typedef struct diff_counts {
    uint64_t evicted, loaded, spill_loaded, expired, pulls_compared;
} diff_counts_t;

/* The differential run for one optimizer. */
static void run_differential(int kind, int steps, uint64_t seed, diff_counts_t *dc)
{
    static const int dims[3] = {4, 8, 16}, expire[3] = {0, 3, 0};
    model_spec_t ms = make_spec(kind, 3, dims, expire);
    fixture_t f;
    ref_t r;
    size_t nk = 1500;
    float *out[NTAB + 1], *g;
    size_t idx[96];
    uint64_t keys[96];
    int day = 0, bad_pulls = 0, over_budget = 0;
    enum { MAXN = 96, MAXDIM = 16 };

    ms.slot[2].admit_min = 3; /* rows on the third sighting; sightings persist */
    memset(dc, 0, sizeof(*dc));
    CU_ASSERT_EQUAL_FATAL(fx_open(&f, &ms, 48 * 1024), 0);
    ref_init(&r, &ms, nk, seed);
    for (int i = 0; i <= NTAB; i++)
        out[i] = malloc(MAXN * MAXDIM * sizeof(float));
    g = malloc(MAXN * MAXDIM * sizeof(float));

    for (int step = 0; step < steps; step++) {
        uint64_t op = rng_splitmix64(&seed) % 100;
        int s = (int)(rng_splitmix64(&seed) % 3);
        size_t dim = (size_t)dims[s], n = 1 + rng_splitmix64(&seed) % MAXN;

        for (size_t j = 0; j < n; j++) {
            /* mostly skewed, sometimes a duplicate of an earlier key */
            idx[j] = (j > 0 && rng_splitmix64(&seed) % 16 == 0) ? idx[rng_splitmix64(&seed) % j]
                                                                : rng_skewed(&seed, nk);
            keys[j] = r.key[s][idx[j]];
        }
        if (op < 40 || (op >= 40 && op < 50)) { /* pull, creating or not */
            int create = op < 40;
            for (int t = 0; t < NTAB; t++)
                CU_ASSERT_EQUAL(emb_table_pull(f.t[t], s, keys, n, out[t],
                                               create ? EMB_PULL_CREATE : EMB_PULL_READONLY, NULL),
                                0);
            ref_pull(&r, s, idx, n, out[NTAB], create);
            for (int t = 0; t < NTAB; t++)
                bad_pulls += memcmp(out[t], out[NTAB], n * dim * sizeof(float)) != 0;
            dc->pulls_compared += n;
        } else if (op < 90) { /* push */
            for (size_t j = 0; j < n * dim; j++)
                g[j] = (float)(rng_unit(rng_splitmix64(&seed)) - 0.5);
            for (int t = 0; t < NTAB; t++)
                CU_ASSERT_EQUAL(emb_table_push(f.t[t], s, keys, n, g, NULL), 0);
            ref_push(&r, s, idx, n, g);
        } else if (op < 94) { /* flush */
            uint64_t rows[NTAB];
            for (int t = 0; t < NTAB; t++)
                CU_ASSERT_EQUAL(emb_table_flush(f.t[t], &rows[t], NULL), 0);
            /* unlimited tables hold every dirty row: same count */
            CU_ASSERT_EQUAL(rows[ROCKS_FULL], rows[MEM_FULL]);
        } else if (op < 97) { /* a new day */
            day++;
            r.day = day;
            for (int t = 0; t < NTAB; t++)
                emb_table_set_day(f.t[t], day);
        } else if (op < 99) { /* expiry at the start of a day */
            uint64_t del[NTAB], want = ref_expire(&r, day);
            for (int t = 0; t < NTAB; t++) {
                CU_ASSERT_EQUAL(emb_table_expire(f.t[t], day, &del[t], NULL), 0);
                CU_ASSERT_EQUAL(del[t], want);
            }
            dc->expired += want;
        } else {
            CU_ASSERT_EQUAL_FATAL(fx_reopen(&f, day), 0);
        }
        for (int t = 0; t < NTAB; t++) {
            emb_table_stats_t st;
            emb_table_stats(f.t[t], &st);
            if (is_small(t) && st.resident_bytes > f.small_limit)
                over_budget++;
        }
        if (step % 500 == 499)
            CU_ASSERT_EQUAL(compare_all(&f, &r), 0);
    }
    CU_ASSERT_EQUAL(bad_pulls, 0);
    CU_ASSERT_EQUAL(over_budget, 0);
    CU_ASSERT_EQUAL(compare_all(&f, &r), 0);
    /* and everything is still there after a final close and reopen */
    CU_ASSERT_EQUAL_FATAL(fx_reopen(&f, day), 0);
    CU_ASSERT_EQUAL(compare_all(&f, &r), 0);
    dc->evicted = f.evicted;
    dc->loaded = f.loaded;
    dc->spill_loaded = f.spill_loaded;
    fx_close(&f);
    ref_release(&r);
    for (int i = 0; i <= NTAB; i++)
        free(out[i]);
    free(g);
}

static void test_differential_adagrad(void)
{
    diff_counts_t dc;
    run_differential(OPTIM_ADAGRAD, 4000, 1, &dc);
    /* the small budget really did evict and reload, and expiry deleted */
    CU_ASSERT(dc.evicted > 1000);
    CU_ASSERT(dc.loaded > 1000);
    CU_ASSERT(dc.spill_loaded > 500); /* the spill files served misses */
    CU_ASSERT(dc.expired > 0);
    CU_ASSERT(dc.pulls_compared > 50000);
}

static void test_differential_other_optimizers(void)
{
    static const int kinds[3] = {OPTIM_SGD, OPTIM_ADAM, OPTIM_FTRL};
    for (int k = 0; k < 3; k++) {
        diff_counts_t dc;
        run_differential(kinds[k], 1200, 100 + (uint64_t)k, &dc);
        CU_ASSERT(dc.evicted > 0);
        CU_ASSERT(dc.loaded > 0);
    }
}

/* A table ten times larger than its budget answers like an unlimited one. */
static void test_spill(void)
{
    static const int dims[1] = {16};
    model_spec_t ms = make_spec(OPTIM_ADAGRAD, 1, dims, NULL);
    char dir[512], pa[600], pb[600];
    store_t *sa = NULL, *sb = NULL;
    emb_table_t *a = NULL, *b = NULL;
    emb_table_stats_t st;
    errbuf_t eb = {{0}};
    enum { NKEYS = 30000, BATCH = 500 };
    uint64_t seed = 7, *keys = malloc(BATCH * sizeof(uint64_t));
    float *ra = malloc(BATCH * 16 * sizeof(float)), *rb = malloc(BATCH * 16 * sizeof(float));
    float *g = malloc(BATCH * 16 * sizeof(float));
    /* 30000 rows x (16 header + 128 payload) bytes = 4.3 MB: budget a tenth */
    uint64_t limit = (uint64_t)NKEYS * (16 + 32 * 4) / 10;
    int bad = 0, over = 0;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "spill"), 0);
    snprintf(pa, sizeof(pa), "%s/a", dir);
    snprintf(pb, sizeof(pb), "%s/b", dir);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&sa, pa, STORE_CREATE, "spill", &eb), 0);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&sb, pb, STORE_CREATE, "full", &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&a, sa, &ms, limit, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&b, sb, &ms, 0, &eb), 0);
    /* first touch every key once (the table grows to 10x its budget), then
     * random batches */
    for (int round = 0; round < NKEYS / BATCH + 200; round++) {
        for (int j = 0; j < BATCH; j++)
            keys[j] = round < NKEYS / BATCH ? (uint64_t)(round * BATCH + j) * 2654435761u
                                            : (rng_splitmix64(&seed) % NKEYS) * 2654435761u;
        CU_ASSERT_EQUAL(emb_table_pull(a, 0, keys, BATCH, ra, EMB_PULL_CREATE, &eb), 0);
        CU_ASSERT_EQUAL(emb_table_pull(b, 0, keys, BATCH, rb, EMB_PULL_CREATE, &eb), 0);
        bad += memcmp(ra, rb, BATCH * 16 * sizeof(float)) != 0;
        for (int j = 0; j < BATCH * 16; j++)
            g[j] = ra[j] * 0.5f + 0.01f;
        CU_ASSERT_EQUAL(emb_table_push(a, 0, keys, BATCH, g, &eb), 0);
        CU_ASSERT_EQUAL(emb_table_push(b, 0, keys, BATCH, g, &eb), 0);
        emb_table_stats(a, &st);
        over += st.resident_bytes > limit;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(over, 0);
    emb_table_stats(a, &st);
    CU_ASSERT(st.resident_rows < NKEYS / 8);
    CU_ASSERT(st.evicted > NKEYS);
    CU_ASSERT(st.loaded > NKEYS / 2);
    /* every row, state included, agrees */
    float fa[32], fb[32];
    emb_row_meta_t ma, mb;
    for (uint64_t k = 0; k < NKEYS; k++) {
        uint64_t key = k * 2654435761u;
        CU_ASSERT_EQUAL(emb_table_get(a, 0, key, fa, &ma, NULL), 0);
        CU_ASSERT_EQUAL(emb_table_get(b, 0, key, fb, &mb, NULL), 0);
        bad += memcmp(fa, fb, sizeof(fa)) != 0 || ma.updates != mb.updates;
    }
    CU_ASSERT_EQUAL(bad, 0);
    emb_table_destroy(&a);
    emb_table_destroy(&b);
    store_close(&sa);
    store_close(&sb);
    free(keys);
    free(ra);
    free(rb);
    free(g);
    tu_rmtree(dir);
}

/*
 * The same with a spill file, against an unlimited table: every pull and
 * every row agree, the budget (spill index included) holds, and most misses
 * are served from the file. Run under an RLIMIT_FSIZE (in a child
 * process), the file's writes fail part way; rows then go to the store and
 * nothing is lost. Returns the disagreements and broken bounds.
 */
static int run_spill_file(const char *dir, emb_table_stats_t *out)
{
    static const int dims[1] = {16};
    model_spec_t ms = make_spec(OPTIM_ADAGRAD, 1, dims, NULL);
    store_t *sa = NULL, *sb = NULL;
    emb_table_t *a = NULL, *b = NULL;
    emb_table_stats_t st;
    errbuf_t eb = {{0}};
    enum { NKEYS = 30000, BATCH = 500 };
    uint64_t seed = 11, *keys = malloc(BATCH * sizeof(uint64_t));
    float *ra = malloc(BATCH * 16 * sizeof(float)), *rb = malloc(BATCH * 16 * sizeof(float));
    float *g = malloc(BATCH * 16 * sizeof(float));
    uint64_t limit = (uint64_t)NKEYS * (16 + 32 * 4) / 10;
    int bad = 0;

    if (store_mem_open(&sa, &eb) != 0 || store_mem_open(&sb, &eb) != 0 ||
        emb_table_open(&a, sa, &ms, limit, &eb) != 0 || emb_table_set_spill(a, dir, &eb) != 0 ||
        emb_table_open(&b, sb, &ms, 0, &eb) != 0) {
        fprintf(stderr, "%s\n", eb.msg);
        return 1000;
    }
    for (int round = 0; round < NKEYS / BATCH + 300; round++) {
        for (int j = 0; j < BATCH; j++)
            keys[j] = round < NKEYS / BATCH ? (uint64_t)(round * BATCH + j) * 2654435761u
                                            : (rng_splitmix64(&seed) % NKEYS) * 2654435761u;
        bad += emb_table_pull(a, 0, keys, BATCH, ra, EMB_PULL_CREATE, &eb) != 0;
        bad += emb_table_pull(b, 0, keys, BATCH, rb, EMB_PULL_CREATE, &eb) != 0;
        bad += memcmp(ra, rb, BATCH * 16 * sizeof(float)) != 0;
        for (int j = 0; j < BATCH * 16; j++)
            g[j] = ra[j] * 0.5f + 0.01f;
        bad += emb_table_push(a, 0, keys, BATCH, g, &eb) != 0;
        bad += emb_table_push(b, 0, keys, BATCH, g, &eb) != 0;
        if (round % 97 == 0) /* flushes write the spilled dirty rows */
            bad += emb_table_flush(a, NULL, &eb) != 0;
        emb_table_stats(a, &st);
        bad += st.resident_bytes > limit;
    }
    /* every row, state and update count included, agrees: through get,
     * and from the store alone after a flush */
    float fa[32], fb[32];
    emb_row_meta_t ma, mb;
    for (uint64_t k = 0; k < NKEYS; k++) {
        uint64_t key = k * 2654435761u;
        bad += emb_table_get(a, 0, key, fa, &ma, NULL) != 0;
        bad += emb_table_get(b, 0, key, fb, &mb, NULL) != 0;
        bad += memcmp(fa, fb, sizeof(fa)) != 0 || ma.updates != mb.updates;
    }
    emb_table_stats(a, out);
    bad += emb_table_flush(a, NULL, &eb) != 0;
    emb_table_destroy(&a);
    bad += emb_table_open(&a, sa, &ms, 0, &eb) != 0;
    for (uint64_t k = 0; a && k < NKEYS; k++) {
        uint64_t key = k * 2654435761u;
        bad += emb_table_get(a, 0, key, fa, &ma, NULL) != 0;
        bad += emb_table_get(b, 0, key, fb, &mb, NULL) != 0;
        bad += memcmp(fa, fb, sizeof(fa)) != 0 || ma.updates != mb.updates;
    }
    emb_table_destroy(&a);
    emb_table_destroy(&b);
    store_close(&sa);
    store_close(&sb);
    free(keys);
    free(ra);
    free(rb);
    free(g);
    return bad;
}

static void test_spill_file(void)
{
    char dir[512];
    emb_table_stats_t st;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "spillf"), 0);
    CU_ASSERT_EQUAL(run_spill_file(dir, &st), 0);
    CU_ASSERT(st.resident_rows < 30000 / 8);
    CU_ASSERT(st.spill_rows > 20000);    /* most rows live in the file */
    CU_ASSERT(st.spill_loaded > 30000);  /* and come back from it */
    CU_ASSERT(st.spill_compactions > 0); /* taken rows leave dead records */
    CU_ASSERT(st.loaded - st.spill_loaded < st.spill_loaded / 10); /* the store is rarely asked */
    CU_ASSERT(st.spill_mem_bytes > 0 && st.spill_mem_bytes < st.resident_bytes);
    CU_ASSERT_PTR_NULL(st.spill_refused ? "refused" : NULL);
    tu_rmtree(dir);
}

/* A spill file that cannot grow (RLIMIT_FSIZE in a child): its writes
 * fail, evicted rows go to the store, every row is still there. */
static void test_spill_file_write_fails(void)
{
    char dir[512];
    int pfd[2];

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "spillw"), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {1 << 20, 1 << 20}; /* 1 MiB: about 7000 records */
        emb_table_stats_t st;
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        int bad = run_spill_file(dir, &st);
        uint64_t r[3] = {(uint64_t)bad, st.spill_refused, st.spill_loaded};
        _exit(write(pfd[1], r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(pfd[1]);
    uint64_t r[3] = {1, 0, 0};
    CU_ASSERT_EQUAL(read(pfd[0], r, sizeof(r)), (ssize_t)sizeof(r));
    close(pfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_EQUAL(r[0], 0); /* nothing lost, nothing differs */
    CU_ASSERT(r[1] > 1000);   /* the file refused rows: they went to the store */
    CU_ASSERT(r[2] > 1000);   /* after serving some */
    tu_rmtree(dir);
}

/* Fill a spill file with n records of key k -> bytes (k, k+1, ...), take
 * every tenth back; count the records then found wrong (or found taken). */
static int spill_fill_check(spill_t *sp, uint32_t n, int fill)
{
    unsigned char rec[144], got[144];
    unsigned flags;
    int bad = 0;

    for (uint32_t k = 0; k < n; k++) {
        uint64_t key = (uint64_t)k * 0x9e3779b97f4a7c15ull;
        for (int b = 0; b < 144; b++)
            rec[b] = (unsigned char)(k + (uint32_t)b);
        memcpy(rec, &key, 8);
        if (fill) {
            bad += spill_put(sp, key, rec, k % 3 ? SPILL_DIRTY : SPILL_STORED) != 0;
            continue;
        }
        int r = spill_peek(sp, key, got, &flags, NULL);
        if (k % 10 == 0)
            bad += r != 0;
        else
            bad += r != 1 || memcmp(got, rec, 144) != 0 ||
                   flags != (k % 3 ? SPILL_DIRTY : SPILL_STORED);
    }
    for (uint32_t k = 0; fill && k < n; k += 10) {
        uint64_t key = (uint64_t)k * 0x9e3779b97f4a7c15ull;
        bad += spill_take(sp, key, got, &flags, NULL) != 1;
    }
    return bad;
}

/* A compaction copies the live records to a new file: on a full file
 * system (a 3.1 MB tmpfs the test mounts; root only) it fails, and the old
 * file's index is built again: every record is still found; with room it
 * succeeds and drops the dead ones. */
static void test_spill_compaction(void)
{
    char dir[512], mnt[600];
    errbuf_t eb = {{0}};
    spill_t *sp = NULL;
    spill_stats_t st;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "spillc"), 0);
    /* with room */
    CU_ASSERT_EQUAL_FATAL(spill_open(&sp, dir, 144, 0, "roomy", &eb), 0);
    CU_ASSERT_EQUAL(spill_fill_check(sp, 12500, 1), 0);
    CU_ASSERT_EQUAL(spill_compact(sp, &eb), 0);
    spill_stats(sp, &st);
    CU_ASSERT_EQUAL(st.records, 11250); /* the 1250 taken are gone */
    CU_ASSERT_EQUAL(spill_fill_check(sp, 12500, 0), 0);
    spill_close(&sp);
    /* without */
    snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(mnt, 0755), 0);
    if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=3100k") != 0) {
        fprintf(stderr, "\n  spill compaction on a full disk: not root or no tmpfs: skipped\n");
        tu_rmtree(dir);
        return;
    }
    CU_ASSERT_EQUAL(spill_open(&sp, mnt, 144, 0, "full", &eb), 0);
    if (sp) {
        /* 12500 x 144 = 1.8 MB in the file (the fill's own compactions, the
         * last at 9952 rows, fit): the 1.62 MB copy of the live ones does
         * not */
        CU_ASSERT_EQUAL(spill_fill_check(sp, 12500, 1), 0);
        CU_ASSERT_EQUAL(spill_compact(sp, &eb), ERR_IO);
        CU_ASSERT_PTR_NOT_NULL(strstr(spill_error(sp), "compaction failed"));
        CU_ASSERT_PTR_NULL(strstr(spill_error(sp), "lost"));
        CU_ASSERT_EQUAL(spill_fill_check(sp, 12500, 0), 0); /* nothing lost */
        CU_ASSERT_EQUAL(spill_put(sp, 1, "12345678", 0), SPILL_FULL);
        spill_stats(sp, &st);
        CU_ASSERT_EQUAL(st.rows, 11250);
        spill_close(&sp);
    }
    CU_ASSERT_EQUAL(umount(mnt), 0);
    tu_rmtree(dir);
}

/* One request bringing many more new rows than the budget holds, all of
 * them referenced: the CLOCK hand must still bring memory under the
 * budget before the call returns. */
static void test_budget_after_big_request(void)
{
    static const int dims[2] = {8, 8};
    model_spec_t ms = make_spec(OPTIM_SGD, 2, dims, NULL);
    store_t *st = NULL;
    emb_table_t *t = NULL;
    emb_table_stats_t s;
    enum { N = 60000 };
    uint64_t *keys = malloc(N * sizeof(uint64_t));
    float *out = malloc((size_t)N * 8 * sizeof(float));
    uint64_t limit = 200 * 1024;

    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, limit, NULL), 0);
    for (int i = 0; i < N; i++)
        keys[i] = (uint64_t)i + 1;
    CU_ASSERT_EQUAL(emb_table_pull(t, 1, keys, N, out, EMB_PULL_CREATE, NULL), 0);
    emb_table_stats(t, &s);
    CU_ASSERT(s.resident_bytes <= limit);
    CU_ASSERT_EQUAL(s.created, N);
    /* the evicted rows were written (they were new) and read back intact */
    float row[8], init[8];
    emb_row_meta_t m;
    CU_ASSERT_EQUAL(emb_table_get(t, 1, keys[0], row, &m, NULL), 0);
    optim_row_init(&ms.emb_opt, keys[0], init, NULL, 8);
    CU_ASSERT_EQUAL(memcmp(row, init, sizeof(row)), 0);
    CU_ASSERT_EQUAL(memcmp(out, init, sizeof(init)), 0);
    emb_table_destroy(&t);
    store_close(&st);
    free(keys);
    free(out);
}

/* Records on disk as documented: key 'r' | slot | big-endian key; value
 * version | slot | 0 0 | updates | first | last | nfloats | floats. */
static void test_record_layout(void)
{
    static const int dims[2] = {2, 3};
    model_spec_t ms = make_spec(OPTIM_ADAGRAD, 2, dims, NULL);
    store_t *st = NULL;
    emb_table_t *t = NULL;
    uint64_t key = UINT64_C(0x0102030405060708), n = 0;
    float g[3] = {1, 2, 3}, row[6];
    unsigned char kb[EMB_KEY_LEN];
    static const unsigned char want_key[EMB_KEY_LEN] = {'r', 1, 1, 2, 3, 4, 5, 6, 7, 8};
    void *v = NULL;
    size_t vl = 0;

    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 0, NULL), 0);
    emb_table_set_day(t, 7);
    CU_ASSERT_EQUAL(emb_table_pull(t, 1, &key, 1, row, EMB_PULL_CREATE, NULL), 0);
    emb_table_set_day(t, 9);
    CU_ASSERT_EQUAL(emb_table_push(t, 1, &key, 1, g, NULL), 0);
    CU_ASSERT_EQUAL(emb_table_push(t, 1, &key, 1, g, NULL), 0);
    CU_ASSERT_EQUAL(emb_table_flush(t, &n, NULL), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(emb_table_flush(t, &n, NULL), 0); /* nothing dirty any more */
    CU_ASSERT_EQUAL(n, 0);
    emb_key_encode(kb, 1, key);
    CU_ASSERT_EQUAL(memcmp(kb, want_key, EMB_KEY_LEN), 0);
    int slot;
    uint64_t k2;
    CU_ASSERT_EQUAL(emb_key_decode(kb, EMB_KEY_LEN, &slot, &k2), 0);
    CU_ASSERT(slot == 1 && k2 == key);
    CU_ASSERT_EQUAL(emb_key_decode(kb, EMB_KEY_LEN - 1, &slot, &k2), ERR_CORRUPT);

    CU_ASSERT_EQUAL_FATAL(store_get(st, kb, EMB_KEY_LEN, &v, &vl, NULL), 0);
    const unsigned char *b = v;
    CU_ASSERT_EQUAL(vl, EMB_RECORD_HEADER + 6 * 4);
    CU_ASSERT_EQUAL(b[0], EMB_RECORD_VERSION);
    CU_ASSERT_EQUAL(b[1], 1);
    CU_ASSERT(b[2] == 0 && b[3] == 0);
    CU_ASSERT(b[4] == 2 && b[5] == 0 && b[6] == 0 && b[7] == 0); /* updates, LE */
    CU_ASSERT(b[8] == 7 && b[9] == 0);                           /* first day */
    CU_ASSERT(b[10] == 9 && b[11] == 0);                         /* last day */
    CU_ASSERT(b[12] == 6 && b[13] == 0 && b[14] == 0 && b[15] == 0);
    float full[6];
    emb_row_meta_t m;
    CU_ASSERT_EQUAL(emb_table_get(t, 1, key, full, &m, NULL), 0);
    CU_ASSERT_EQUAL(memcmp(b + EMB_RECORD_HEADER, full, sizeof(full)), 0);
    free(v);
    emb_table_destroy(&t);
    store_close(&st);
}

/* A record with the wrong version, length, float count or slot is
 * ERR_CORRUPT naming the key - for pull, push, get and expiry - and the
 * table keeps serving other keys. */
static void test_corrupt_records(void)
{
    static const int dims[2] = {4, 4}, expire[2] = {1, 0};
    model_spec_t ms = make_spec(OPTIM_ADAGRAD, 2, dims, expire);
    char dir[512], path[600];
    store_t *st = NULL;
    emb_table_t *t = NULL;
    errbuf_t eb = {{0}};
    uint64_t key = 77, good = 78, n = 0;
    unsigned char kb[EMB_KEY_LEN], rec[EMB_RECORD_HEADER + 8 * 4];
    float row[8], g[4] = {1, 1, 1, 1};
    emb_row_meta_t m;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "corrupt"), 0);
    snprintf(path, sizeof(path), "%s/db", dir);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&st, path, STORE_CREATE, "shard 5", &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 0, &eb), 0);
    CU_ASSERT_EQUAL(emb_table_pull(t, 0, &key, 1, row, EMB_PULL_CREATE, &eb), 0);
    CU_ASSERT_EQUAL(emb_table_flush(t, &n, &eb), 0);
    emb_table_destroy(&t);
    emb_key_encode(kb, 0, key);
    void *v = NULL;
    size_t vl = 0;
    CU_ASSERT_EQUAL_FATAL(store_get(st, kb, EMB_KEY_LEN, &v, &vl, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(vl, sizeof(rec));
    memcpy(rec, v, vl);
    free(v);

    /* the variants: version, truncated, float count, slot byte, empty */
    for (int variant = 0; variant < 5; variant++) {
        unsigned char bad[sizeof(rec)];
        size_t bl = sizeof(rec);
        memcpy(bad, rec, sizeof(rec));
        switch (variant) {
        case 0: bad[0] = EMB_RECORD_VERSION + 1; break;
        case 1: bl -= 3; break;
        case 2:
            bad[12] = 7;
            bl -= 4;
            break; /* consistent length, wrong width */
        case 3: bad[1] = 1; break;
        case 4: bl = 0; break;
        }
        CU_ASSERT_EQUAL(store_put(st, kb, EMB_KEY_LEN, bad, bl, 0, &eb), 0);
        CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 0, &eb), 0);
        eb.msg[0] = 0;
        CU_ASSERT_EQUAL(emb_table_pull(t, 0, &key, 1, row, EMB_PULL_CREATE, &eb), ERR_CORRUPT);
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "shard 5"));
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "000000000000004d"));
        CU_ASSERT_EQUAL(emb_table_push(t, 0, &key, 1, g, &eb), ERR_CORRUPT);
        CU_ASSERT_EQUAL(emb_table_get(t, 0, key, row, &m, &eb), ERR_CORRUPT);
        CU_ASSERT_EQUAL(emb_table_expire(t, 10, &n, &eb), ERR_CORRUPT);
        /* still serving */
        CU_ASSERT_EQUAL(emb_table_pull(t, 0, &good, 1, row, EMB_PULL_CREATE, &eb), 0);
        CU_ASSERT_EQUAL(emb_table_push(t, 1, &key, 1, g, &eb), 0);
        emb_table_destroy(&t);
    }
    /* a row key of the wrong length inside a slot's range */
    CU_ASSERT_EQUAL(store_put(st, kb, EMB_KEY_LEN, rec, sizeof(rec), 0, &eb), 0);
    CU_ASSERT_EQUAL(store_put(st, "r\0abc", 5, rec, sizeof(rec), 0, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 0, &eb), 0);
    CU_ASSERT_EQUAL(emb_table_expire(t, 10, &n, &eb), ERR_CORRUPT);
    CU_ASSERT_EQUAL(emb_table_pull(t, 0, &key, 1, row, EMB_PULL_CREATE, &eb), 0);
    emb_table_destroy(&t);
    store_close(&st);
    tu_rmtree(dir);
}

/* Bad slots and days are errors, not crashes or wrapped values. */
static void test_bad_slot(void)
{
    static const int dims[1] = {4};
    model_spec_t ms = make_spec(OPTIM_ADAGRAD, 1, dims, NULL);
    store_t *st = NULL;
    emb_table_t *t = NULL;
    errbuf_t eb = {{0}};
    uint64_t key = 1;
    float row[8]; /* w + Adagrad state */
    emb_row_meta_t m;

    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 0, NULL), 0);
    CU_ASSERT_EQUAL(emb_table_pull(t, 1, &key, 1, row, EMB_PULL_CREATE, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "slot 1"));
    CU_ASSERT_EQUAL(emb_table_push(t, -1, &key, 1, row, &eb), ERR_INVAL);
    CU_ASSERT_EQUAL(emb_table_get(t, 3, key, row, &m, &eb), ERR_INVAL);
    CU_ASSERT_EQUAL(emb_table_get(t, 0, key, row, &m, &eb), ERR_NOTFOUND);
    CU_ASSERT_EQUAL(emb_table_pull(t, 0, &key, 0, row, EMB_PULL_CREATE, &eb), 0);
    /* days are u16: out of range is refused, never wrapped */
    uint64_t n = 0;
    CU_ASSERT_EQUAL(emb_table_set_day(t, 12), 0);
    CU_ASSERT_EQUAL(emb_table_set_day(t, EMB_DAY_MAX + 1), ERR_INVAL);
    CU_ASSERT_EQUAL(emb_table_set_day(t, -1), ERR_INVAL);
    CU_ASSERT_EQUAL(emb_table_expire(t, EMB_DAY_MAX + 1, &n, &eb), ERR_INVAL);
    CU_ASSERT_EQUAL(emb_table_pull(t, 0, &key, 1, row, EMB_PULL_CREATE, &eb), 0);
    CU_ASSERT_EQUAL(emb_table_get(t, 0, key, row, &m, &eb), 0);
    CU_ASSERT_EQUAL(m.first_day, 12); /* the last valid day was kept */
    emb_table_destroy(&t);
    emb_table_destroy(&t);
    store_close(&st);
}

/* A write-back that fails while evicting (here: a read-only RocksDB
 * handle refuses every write) is an error, and the dirty rows it could not
 * write stay resident with their updates - nothing pushed is lost. */
static void test_failed_writeback_keeps_rows(void)
{
    static const int dims[1] = {8};
    model_spec_t ms = make_spec(OPTIM_SGD, 1, dims, NULL);
    char dir[512], path[600];
    store_t *st = NULL;
    emb_table_t *t = NULL;
    errbuf_t eb = {{0}};
    enum { NPUSHED = 50, NEW = 4000, ROUNDS = 5 };
    uint64_t pushed[NPUSHED], *keys = malloc(NEW * sizeof(uint64_t));
    float g[NPUSHED * 8], *out = malloc((size_t)NEW * 8 * sizeof(float));
    float want[8], got[8];
    emb_row_meta_t m;
    int failed = 0, bad = 0;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "wbfail"), 0);
    snprintf(path, sizeof(path), "%s/db", dir);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&st, path, STORE_CREATE, "rw", &eb), 0);
    store_close(&st);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&st, path, STORE_READONLY, "ro", &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 64 * 1024, &eb), 0);
    for (int i = 0; i < NPUSHED; i++) {
        pushed[i] = UINT64_C(0x5151) + (uint64_t)i * 7919;
        for (int j = 0; j < 8; j++)
            g[i * 8 + j] = (float)(i + 1) * 0.01f * (float)(j - 3);
    }
    CU_ASSERT_EQUAL(emb_table_push(t, 0, pushed, NPUSHED, g, &eb), 0);
    /* many new rows: the budget forces evictions, whose writes fail */
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < NEW; i++)
            keys[i] = UINT64_C(1) << 40 | (uint64_t)(round * NEW + i);
        eb.msg[0] = 0;
        int rc = emb_table_pull(t, 0, keys, NEW, out, EMB_PULL_CREATE, &eb);
        CU_ASSERT(rc == 0 || rc == ERR_STORE);
        if (rc == ERR_STORE) {
            failed++;
            CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "ro: write"));
        }
    }
    CU_ASSERT(failed > 0);
    /* every pushed row is still there, updated exactly once */
    for (int i = 0; i < NPUSHED; i++) {
        optim_row_init(&ms.emb_opt, pushed[i], want, NULL, 8);
        optim_row_update(&ms.emb_opt, want, NULL, g + i * 8, 8);
        if (emb_table_get(t, 0, pushed[i], got, &m, &eb) != 0 || m.updates != 1 ||
            memcmp(got, want, sizeof(want)) != 0)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    emb_table_destroy(&t);
    store_close(&st);
    free(keys);
    free(out);
    tu_rmtree(dir);
}

/* ---- the dirty bit ---- */

/* A store that counts the row puts written through it (to a memory store
 * it owns). */
typedef struct count_store {
    store_t base;
    store_t *inner;
    store_ops_t ops;
    uint64_t row_puts; /* puts of row keys ('r' | slot | key) */
} count_store_t;

static int cs_multiget(store_t *s, size_t n, const void *const *keys, const size_t *klens,
                       void **vals, size_t *vlens, errbuf_t *eb)
{
    return store_multiget(((count_store_t *)s)->inner, n, keys, klens, vals, vlens, eb);
}

static int cs_write(store_t *s, const store_op_t *ops, size_t n, int sync, errbuf_t *eb)
{
    count_store_t *c = (count_store_t *)s;
    int rc = store_write(c->inner, ops, n, sync, eb);

    for (size_t i = 0; rc == 0 && i < n; i++)
        c->row_puts +=
            ops[i].v && ops[i].klen == EMB_KEY_LEN && ((const unsigned char *)ops[i].k)[0] == 'r';
    return rc;
}

static store_iter_t *cs_iter_new(store_t *s, const void *prefix, size_t plen)
{
    return store_iter_new(((count_store_t *)s)->inner, prefix, plen);
}

static void cs_close(store_t *s)
{
    count_store_t *c = (count_store_t *)s;

    store_close(&c->inner);
    free(c);
}

static count_store_t *count_store_new(void)
{
    count_store_t *c = calloc(1, sizeof(*c));
    errbuf_t eb = {{0}};

    if (!c || store_mem_open(&c->inner, &eb) != 0) {
        free(c);
        return NULL;
    }
    c->ops = *c->inner->ops; /* its iterators, as they are */
    c->ops.multiget = cs_multiget;
    c->ops.write = cs_write;
    c->ops.iter_new = cs_iter_new;
    c->ops.checkpoint = NULL;
    c->ops.seal = NULL;
    c->ops.close = cs_close;
    c->base.ops = &c->ops;
    snprintf(c->base.name, sizeof(c->base.name), "counting");
    return c;
}

/* Compare every row of the universe, state and update count included,
 * with the reference; returns the rows that differ. */
static int rows_differ(emb_table_t *t, ref_t *r)
{
    float got[64];
    emb_row_meta_t m;
    int bad = 0;

    for (size_t i = 0; i < r->nk; i++) {
        int rc = emb_table_get(t, 0, r->key[0][i], got, &m, NULL);
        if (!r->has[0][i])
            bad += rc != ERR_NOTFOUND;
        else
            bad += rc != 0 || m.updates != r->meta[0][i].updates ||
                   memcmp(got, ref_row(r, 0, i), r->nf[0] * sizeof(float)) != 0;
    }
    return bad;
}

/*
 * A table 10x over its budget under skewed keys loses nothing: after a
 * spill-heavy random workload of pulls and pushes every row equals a
 * reference model of it. And the dirty bit holds: once the rows are
 * flushed, pulls alone (which evict and reload thousands of rows) write
 * no row; rows pushed once are each written exactly once afterwards.
 */
static void test_dirty_bit(void)
{
    static const int dims[1] = {8};
    model_spec_t ms = make_spec(OPTIM_ADAGRAD, 1, dims, NULL);
    enum { NK = 20000, BATCH = 400, NPUSH = 300 };
    count_store_t *cs = count_store_new();
    store_t *st = cs ? &cs->base : NULL;
    emb_table_t *t = NULL;
    emb_table_stats_t s0, s1;
    errbuf_t eb = {{0}};
    ref_t r;
    uint64_t seed = 11, keys[BATCH];
    size_t idx[BATCH];
    float out[BATCH * 8], want[BATCH * 8], g[BATCH * 8];
    int bad = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    ref_init(&r, &ms, NK, 5);
    /* a tenth of the rows fit: 16 header + 8 w + 8 Adagrad floats */
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, (uint64_t)NK * (16 + 64) / 10, &eb), 0);
    for (int round = 0; round < 300; round++) {
        for (int j = 0; j < BATCH; j++) {
            idx[j] = rng_skewed(&seed, NK);
            keys[j] = r.key[0][idx[j]];
        }
        CU_ASSERT_EQUAL(emb_table_pull(t, 0, keys, BATCH, out, EMB_PULL_CREATE, &eb), 0);
        ref_pull(&r, 0, idx, BATCH, want, 1);
        bad += memcmp(out, want, sizeof(out)) != 0;
        if (round % 3 == 2)
            continue; /* a third of the rounds only pull */
        for (int j = 0; j < BATCH * 8; j++)
            g[j] = out[j] * 0.25f + 0.01f * (float)(j % 5 - 2);
        CU_ASSERT_EQUAL(emb_table_push(t, 0, keys, BATCH, g, &eb), 0);
        ref_push(&r, 0, idx, BATCH, g);
    }
    CU_ASSERT_EQUAL(bad, 0);
    emb_table_stats(t, &s0);
    CU_ASSERT(s0.evicted > NK); /* spill-heavy indeed */
    CU_ASSERT(s0.loaded > NK / 2);
    CU_ASSERT(s0.resident_rows < NK / 8);
    CU_ASSERT_EQUAL(rows_differ(t, &r), 0);
    /* the store's timings count what they time: every dirty eviction was
     * written back by an eviction batch, every loaded row was asked for */
    CU_ASSERT_EQUAL(s0.store_written, s0.evicted_dirty);
    CU_ASSERT(s0.store_read_keys >= s0.loaded);
    CU_ASSERT(s0.store_read_s > 0 && s0.store_write_s > 0);

    /* every row made, flushed, then pulls only (both modes): no row write */
    for (size_t i = 0; i < NK; i += BATCH) {
        for (int j = 0; j < BATCH; j++) {
            idx[j] = i + (size_t)j;
            keys[j] = r.key[0][idx[j]];
        }
        CU_ASSERT_EQUAL(emb_table_pull(t, 0, keys, BATCH, out, EMB_PULL_CREATE, &eb), 0);
        ref_pull(&r, 0, idx, BATCH, want, 1);
    }
    CU_ASSERT_EQUAL(emb_table_flush(t, NULL, &eb), 0);
    uint64_t puts0 = cs->row_puts;
    emb_table_stats(t, &s0);
    for (int round = 0; round < 200; round++) {
        for (int j = 0; j < BATCH; j++) {
            idx[j] = rng_splitmix64(&seed) % NK;
            keys[j] = r.key[0][idx[j]];
        }
        CU_ASSERT_EQUAL(emb_table_pull(t, 0, keys, BATCH, out, round % 2, &eb), 0);
        ref_pull(&r, 0, idx, BATCH, want, round % 2 == EMB_PULL_CREATE);
        bad += memcmp(out, want, sizeof(out)) != 0;
    }
    emb_table_stats(t, &s1);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(s1.evicted - s0.evicted > NK);
    CU_ASSERT(s1.loaded - s0.loaded > NK);
    CU_ASSERT_EQUAL(s1.evicted_dirty, s0.evicted_dirty);
    CU_ASSERT_EQUAL(s1.store_written, s0.store_written);
    CU_ASSERT(s1.store_read_keys - s0.store_read_keys >= s1.loaded - s0.loaded);
    CU_ASSERT_EQUAL(cs->row_puts, puts0);

    /* NPUSH distinct rows pushed once, then evicted by pulls and flushed:
     * each is written exactly once, however often it is reloaded */
    for (int j = 0; j < NPUSH; j++) {
        idx[j] = (size_t)j * (NK / NPUSH);
        keys[j] = r.key[0][idx[j]];
        for (int k = 0; k < 8; k++)
            g[j * 8 + k] = 0.02f * (float)(k - j % 7);
    }
    CU_ASSERT_EQUAL(emb_table_push(t, 0, keys, NPUSH, g, &eb), 0);
    ref_push(&r, 0, idx, NPUSH, g);
    for (int round = 0; round < 200; round++) {
        for (int j = 0; j < BATCH; j++) {
            idx[j] = rng_splitmix64(&seed) % NK;
            keys[j] = r.key[0][idx[j]];
        }
        CU_ASSERT_EQUAL(emb_table_pull(t, 0, keys, BATCH, out, EMB_PULL_READONLY, &eb), 0);
    }
    CU_ASSERT_EQUAL(emb_table_flush(t, NULL, &eb), 0);
    CU_ASSERT_EQUAL(cs->row_puts - puts0, NPUSH);
    CU_ASSERT_EQUAL(rows_differ(t, &r), 0);

    /* and a table reopened over the store holds the same rows */
    emb_table_destroy(&t);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 0, &eb), 0);
    CU_ASSERT_EQUAL(rows_differ(t, &r), 0);
    emb_table_destroy(&t);
    ref_release(&r);
    store_close(&st);
}

/* ---- incremental index growth ---- */

typedef struct grow_ref {
    uint64_t *key;  /* keys created, in order */
    float *val;     /* their w (dim floats each) as last assigned */
    uint8_t *state; /* 0 never created, 1 has a row, 2 expired */
    size_t n, cap;
} grow_ref_t;

#define GDIM 4

static uint64_t grow_key(size_t i)
{
    return (i + 1) * UINT64_C(0x9e3779b97f4a7c15) ^ UINT64_C(0x5bd1e995);
}

static uint64_t moving(emb_table_t *t)
{
    emb_table_stats_t st;
    emb_table_stats(t, &st);
    return st.index_moving;
}

/* Create m rows (assign: values derived from the key and a version). */
static void grow_add(emb_table_t *t, grow_ref_t *r, size_t m, int version)
{
    uint64_t keys[64];
    float v[64 * GDIM];
    errbuf_t eb = {{0}};

    CU_ASSERT_FATAL(m <= 64 && r->n + m <= r->cap);
    for (size_t j = 0; j < m; j++) {
        keys[j] = grow_key(r->n + j);
        for (int d = 0; d < GDIM; d++)
            v[j * GDIM + d] = (float)(r->n + j) + 0.25f * (float)d + (float)version;
    }
    CU_ASSERT_EQUAL_FATAL(emb_table_assign(t, 0, keys, m, v, 0, &eb), 0);
    memcpy(r->val + r->n * GDIM, v, m * GDIM * sizeof(float));
    memset(r->state + r->n, 1, m);
    r->n += m;
}

/* Every row created answers get and a read-only pull exactly as assigned;
 * expired and never-created keys have none. The pull is one request of all
 * keys (the pipelined lookup; a request moves only a share of an index
 * being moved, so the check sees the move as it is). Returns the rows
 * checked. */
static size_t grow_check(emb_table_t *t, const grow_ref_t *r)
{
    size_t n = r->n + 50, ok = 0, bad = 0;
    uint64_t *keys = malloc(n * sizeof(uint64_t));
    float *out = malloc(n * GDIM * sizeof(float)), vals[GDIM * 2], zero[GDIM] = {0};
    emb_row_meta_t meta;
    errbuf_t eb = {{0}};

    CU_ASSERT_FATAL(keys && out);
    for (size_t i = 0; i < n; i++) {
        keys[i] = grow_key(i);
        int rc = emb_table_get(t, 0, keys[i], vals, &meta, &eb);
        if (i < r->n && r->state[i] == 1)
            bad += rc != 0 || memcmp(vals, r->val + i * GDIM, GDIM * sizeof(float)) != 0;
        else
            bad += rc != ERR_NOTFOUND;
    }
    CU_ASSERT_EQUAL_FATAL(emb_table_pull(t, 0, keys, n, out, EMB_PULL_READONLY, &eb), 0);
    for (size_t i = 0; i < n; i++) {
        int live = i < r->n && r->state[i] == 1;
        const float *want = live ? r->val + i * GDIM : zero;
        if (memcmp(out + i * GDIM, want, GDIM * sizeof(float)) != 0)
            bad++;
        else
            ok += live;
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(keys);
    free(out);
    return ok;
}

/* Every row once in the store after a flush (what export iterates), and
 * (all_resident: nothing was evicted) the table's row count agrees. */
static void grow_check_store(emb_table_t *t, store_t *st, const grow_ref_t *r, int all_resident)
{
    const char pfx[2] = {'r', 0};
    const void *k, *v;
    size_t kl, vl, live = 0, seen = 0;
    uint8_t *mark = calloc(r->n, 1);
    errbuf_t eb = {{0}};
    emb_table_stats_t s;

    CU_ASSERT_FATAL(mark != NULL);
    CU_ASSERT_EQUAL_FATAL(emb_table_flush(t, NULL, &eb), 0);
    for (size_t i = 0; i < r->n; i++)
        live += r->state[i] == 1;
    store_iter_t *it = store_iter_new(st, pfx, 2);
    CU_ASSERT_FATAL(it != NULL);
    while (store_iter_next(st, it, &k, &kl, &v, &vl)) {
        int slot;
        uint64_t key;
        CU_ASSERT_EQUAL_FATAL(emb_key_decode(k, kl, &slot, &key), 0);
        /* find its position: keys are grow_key(i); search the reference */
        size_t i = 0;
        while (i < r->n && grow_key(i) != key)
            i++;
        CU_ASSERT(i < r->n && r->state[i] == 1 && !mark[i]);
        if (i < r->n)
            mark[i] = 1;
        seen++;
    }
    CU_ASSERT_EQUAL(store_iter_error(st, it, &eb), 0);
    store_iter_destroy(st, &it);
    CU_ASSERT_EQUAL(seen, live);
    emb_table_stats(t, &s);
    if (all_resident)
        CU_ASSERT_EQUAL(s.slot_rows[0], live);
    free(mark);
}

/*
 * Rows created, updated, deleted (expiry) and stored while the index is
 * being moved: the table is stopped in the middle of moves (the old and
 * new index both hold rows), and every row must be found exactly once,
 * with its last values, by get, pull, and the store after a flush.
 */
static void test_incremental_growth(void)
{
    const int dims[1] = {GDIM}, expire[1] = {2};
    model_spec_t ms = make_spec(OPTIM_SGD, 1, dims, expire);
    store_t *st = NULL;
    emb_table_t *t = NULL;
    errbuf_t eb = {{0}};
    grow_ref_t r = {0};
    int moves_seen = 0, checked_mid_move = 0;
    uint64_t deleted = 0, *upd_keys;
    float *upd;

    r.cap = 200000;
    upd_keys = malloc(r.cap / 13 * sizeof(uint64_t));
    upd = malloc(r.cap / 13 * GDIM * sizeof(float));
    CU_ASSERT_FATAL(upd_keys && upd);
    r.key = NULL;
    r.val = malloc(r.cap * GDIM * sizeof(float));
    r.state = calloc(r.cap, 1);
    CU_ASSERT_FATAL(r.val && r.state);
    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 0, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_set_day(t, 0), 0);

    /* day 0: small requests until moves were caught half done (a request
     * moves a share of the old index, so small indexes move at once) */
    while ((moves_seen < 3 || checked_mid_move < 10) && r.n + 64 <= r.cap / 4) {
        uint64_t before = moving(t);
        grow_add(t, &r, 7, 0);
        uint64_t now = moving(t);
        if (now > 0 && before == 0)
            moves_seen++;
        if (now > 0) {
            CU_ASSERT(grow_check(t, &r) > 0);
            checked_mid_move++;
            /* updates of rows in either index, in one request */
            size_t m = 0;
            for (size_t i = 0; i < r.n; i += 13, m++) {
                float *w = r.val + i * GDIM;
                w[0] += 1.0f;
                upd_keys[m] = grow_key(i);
                memcpy(upd + m * GDIM, w, GDIM * sizeof(float));
            }
            CU_ASSERT_EQUAL_FATAL(emb_table_assign(t, 0, upd_keys, m, upd, 0, &eb), 0);
        }
    }
    CU_ASSERT(moves_seen >= 3);
    CU_ASSERT(checked_mid_move >= 10);
    /* stop inside a move, then delete every day-0 row: some sit in the old
     * index (marked moved), some in the new one (shifted back) */
    while (moving(t) == 0 && r.n + 64 <= r.cap)
        grow_add(t, &r, 7, 0);
    CU_ASSERT_FATAL(moving(t) > 0);
    size_t day0 = r.n;
    CU_ASSERT_EQUAL_FATAL(emb_table_set_day(t, 10), 0);
    grow_add(t, &r, 3, 1); /* day-10 rows beside them */
    CU_ASSERT(moving(t) > 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_expire(t, 10, &deleted, &eb), 0);
    CU_ASSERT_EQUAL(deleted, day0);
    memset(r.state, 2, day0);
    CU_ASSERT_EQUAL(grow_check(t, &r), r.n - day0);
    grow_check_store(t, st, &r, 1);
    /* grow again from the survivors, through more moves, and check */
    moves_seen = 0;
    while (moves_seen < 1 && r.n + 64 <= r.cap) {
        uint64_t before = moving(t);
        grow_add(t, &r, 61, 2);
        if (moving(t) > 0 && before == 0) {
            moves_seen++;
            CU_ASSERT_EQUAL(grow_check(t, &r), r.n - day0);
            grow_check_store(t, st, &r, 1);
        }
    }
    CU_ASSERT_EQUAL(moves_seen, 1);
    /* lookups alone finish a move (each request moves a share) */
    for (int i = 0; i < 100000 && moving(t) > 0; i++) {
        uint64_t k = grow_key(r.n - 1);
        float out[GDIM];
        CU_ASSERT_EQUAL_FATAL(emb_table_pull(t, 0, &k, 1, out, EMB_PULL_READONLY, &eb), 0);
    }
    CU_ASSERT_EQUAL(moving(t), 0);
    CU_ASSERT_EQUAL(grow_check(t, &r), r.n - day0);
    /* after a close, the store gives every row back */
    grow_check_store(t, st, &r, 1);
    emb_table_destroy(&t);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 0, &eb), 0);
    CU_ASSERT_EQUAL(grow_check(t, &r), r.n - day0);
    emb_table_destroy(&t);
    store_close(&st);
    free(r.val);
    free(r.state);
    free(upd_keys);
    free(upd);
}

/* Evictions (a small budget) remove rows from both indexes during moves;
 * they come back from the store with their values. */
static void test_incremental_growth_evicting(void)
{
    const int dims[1] = {GDIM};
    model_spec_t ms = make_spec(OPTIM_SGD, 1, dims, NULL);
    store_t *st = NULL;
    emb_table_t *t = NULL;
    errbuf_t eb = {{0}};
    grow_ref_t r = {0};
    emb_table_stats_t s;
    int checked_mid_move = 0;

    r.cap = 20000;
    r.val = malloc(r.cap * GDIM * sizeof(float));
    r.state = calloc(r.cap, 1);
    CU_ASSERT_FATAL(r.val && r.state);
    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st, &eb), 0);
    /* about 3000 resident rows: indexes grow, evictions shrink them */
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 3000 * (16 + 2 * GDIM * 4 + 10), &eb), 0);
    while (r.n + 64 <= r.cap) {
        grow_add(t, &r, 40, 3);
        if (moving(t) > 0 && (r.n % 400) == 0) {
            CU_ASSERT_EQUAL(grow_check(t, &r), r.n);
            checked_mid_move++;
        }
    }
    emb_table_stats(t, &s);
    CU_ASSERT(s.evicted > 10000);
    CU_ASSERT(checked_mid_move > 0);
    CU_ASSERT_EQUAL(grow_check(t, &r), r.n);
    grow_check_store(t, st, &r, 0);
    emb_table_destroy(&t);
    store_close(&st);
    free(r.val);
    free(r.state);
}

int test_emb_table_register(void)
{
    CU_pSuite s = CU_add_suite("emb_table", NULL, NULL);

    if (!s)
        return CU_get_error();
    if (!CU_add_test(s, "differential, adagrad (rocks+limit, rocks, mem, mem+limit, reference)",
                     test_differential_adagrad) ||
        !CU_add_test(s, "differential, sgd / adam / ftrl", test_differential_other_optimizers) ||
        !CU_add_test(s, "spill: 10x the budget equals unlimited", test_spill) ||
        !CU_add_test(s, "spill file: 10x the budget equals unlimited, also after a flush",
                     test_spill_file) ||
        !CU_add_test(s, "spill file whose writes fail: rows go to the store, none lost",
                     test_spill_file_write_fails) ||
        !CU_add_test(s, "spill file compaction, with room and on a full disk (nothing lost)",
                     test_spill_compaction) ||
        !CU_add_test(s, "budget holds after one huge request", test_budget_after_big_request) ||
        !CU_add_test(s, "record layout on disk", test_record_layout) ||
        !CU_add_test(s, "malformed records are ERR_CORRUPT", test_corrupt_records) ||
        !CU_add_test(s, "bad slot and day range", test_bad_slot) ||
        !CU_add_test(s, "failed write-back keeps the evicted rows",
                     test_failed_writeback_keeps_rows) ||
        !CU_add_test(s, "spill loses nothing; the dirty bit spares clean rows a write",
                     test_dirty_bit) ||
        !CU_add_test(s, "incremental index growth: get/put/delete/store mid-move",
                     test_incremental_growth) ||
        !CU_add_test(s, "incremental index growth under eviction",
                     test_incremental_growth_evicting))
        return CU_get_error();
    return CUE_SUCCESS;
}
