/*
 * bench_export.c - speed and size of the serving export (emb_export.h) on
 * checkpoint-sized tables, and the size of the checkpoint itself.
 *
 *   bin/bench-export [ROWS] [DIM]     (default 1000000 rows of dim 16)
 *
 * Builds two checkpoints like a 2-shard cluster writes them (META and
 * shard-0, shard-1 RocksDB stores holding Adagrad rows, 4 slots):
 *   day 1: ROWS rows;
 *   day 2: a RocksDB checkpoint of day 1 (hard links) where a day of
 *          training pushed gradients to 10% of the rows, 2% were deleted
 *          (expired) and 2% of ROWS new rows were created;
 * then times a full export of day 1 and of day 2, the delta day 1 -> day 2
 * and applying that delta to day 1's full export (checked equal to day 2's,
 * byte for byte; exit 1 if not, or if a count is not what was built).
 * Rates are rows of the checkpoint exported per second (a delta also reads
 * PREV's rows; both are shown). The stores are freshly written, so they
 * are read from the page cache, as on a machine with RAM for its
 * checkpoint. Sizes: bytes per row of each export file and of the
 * checkpoint's files on disk (RocksDB, lz4; like du -b of the directory).
 * The last line is one JSON object with every number.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/meta.h"
#include "common/rng.h"
#include "common/route.h"
#include "table/emb_export.h"
#include "table/emb_table.h"
#include "table/store.h"

#define SHARDS 2
#define NSLOTS 4
#define BATCH 4096

typedef struct bench {
    char dir[256];
    char ck1[300], ck2[300];
    char full1[300], full2[300], delta[300], applied[300];
    model_spec_t ms;
    uint64_t rows; /* day 1 */
    int dim;
    errbuf_t eb;
} bench_t;

/* splitmix64: row i's key, uniform over 64 bits like keyhash's */
static uint64_t key_of(uint64_t i)
{
    return rng_mix64(i * RNG_GAMMA + UINT64_C(0x632be59bd9b4e019));
}

static void die(const bench_t *b, const char *what)
{
    fprintf(stderr, "bench-export: %s: %s\n", what, b->eb.msg);
    exit(1);
}

/* What day 2 does to row i of day 1 (i < rows), and which new rows it has. */
static int pushed(uint64_t i)
{
    return i % 10 == 3;
}

static int deleted(uint64_t i)
{
    return i % 50 == 7;
}

typedef struct batch {
    uint64_t keys[NSLOTS][BATCH];
    size_t n[NSLOTS];
    float *v[NSLOTS]; /* BATCH x (dim + state): new rows, or gradients */
    uint64_t rng;
} batch_t;

/* Assign (with state) or push the batched keys of each slot; empties the batch. */
static void drain(bench_t *b, emb_table_t *t, batch_t *q, int push, int slot)
{
    int rc = 0;
    if (!q->n[slot])
        return;
    if (push)
        rc = emb_table_push(t, slot, q->keys[slot], q->n[slot], q->v[slot], &b->eb);
    else
        rc = emb_table_assign(t, slot, q->keys[slot], q->n[slot], q->v[slot], 1, &b->eb);
    if (rc != 0)
        die(b, push ? "push" : "assign");
    q->n[slot] = 0;
}

static void queue(bench_t *b, emb_table_t *t, batch_t *q, int push, uint64_t i)
{
    int slot = (int)(i % NSLOTS);
    size_t width = push ? (size_t)b->dim : 2 * (size_t)b->dim;
    float *v = q->v[slot] + q->n[slot] * width;
    /* trained-looking values: small embeddings, positive accumulators */
    for (size_t d = 0; d < width; d++) {
        q->rng = key_of(q->rng);
        float u = (float)(q->rng >> 40) * (1.0f / 16777216.0f);
        v[d] = push || d < (size_t)b->dim ? 0.1f * (u - 0.5f) : u;
    }
    q->keys[slot][q->n[slot]++] = key_of(i);
    if (q->n[slot] == BATCH)
        drain(b, t, q, push, slot);
}

static void write_meta(bench_t *b, const char *dir, int day)
{
    meta_t m;
    meta_from_spec(&m, &b->ms, SHARDS, day, 0);
    if (meta_write(dir, &m, &b->eb) != 0)
        die(b, "meta");
}

static void checkpoint(bench_t *b, store_t *st, const char *ckpt, int h)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/shard-%d", ckpt, h);
    if (store_checkpoint(st, path, &b->eb) != 0)
        die(b, "checkpoint");
}

/* Shard h as a cluster's shard lives it: its data directory gets day 1's
 * rows (those of 0..rows-1 that route to it) and is checkpointed; a day of
 * training pushes to some rows and creates others, expiry deletes some,
 * and it is checkpointed again. */
static void build_shard(bench_t *b, batch_t *q, int h, uint64_t *npush, uint64_t *ndel,
                        uint64_t *nnew)
{
    static unsigned char kb[BATCH][EMB_KEY_LEN];
    store_op_t ops[BATCH];
    char path[400];
    store_t *st = NULL;
    emb_table_t *t = NULL;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/data-%d", b->dir, h);
    if (store_rocks_open(&st, path, STORE_CREATE, path, &b->eb) != 0 ||
        emb_table_open(&t, st, &b->ms, 0, &b->eb) != 0)
        die(b, "open");
    for (uint64_t i = 0; i < b->rows; i++)
        if (route_shard(key_of(i), SHARDS) == (uint32_t)h)
            queue(b, t, q, 0, i);
    for (int s = 0; s < NSLOTS; s++)
        drain(b, t, q, 0, s);
    if (emb_table_flush(t, NULL, &b->eb) != 0)
        die(b, "flush day 1");
    checkpoint(b, st, b->ck1, h);

    emb_table_set_day(t, 2);
    for (uint64_t i = 0; i < b->rows; i++)
        if (route_shard(key_of(i), SHARDS) == (uint32_t)h && pushed(i)) {
            queue(b, t, q, 1, i);
            (*npush)++;
        }
    for (int s = 0; s < NSLOTS; s++)
        drain(b, t, q, 1, s);
    for (uint64_t i = b->rows; i < b->rows + b->rows / 50; i++)
        if (route_shard(key_of(i), SHARDS) == (uint32_t)h) {
            queue(b, t, q, 0, i);
            (*nnew)++;
        }
    for (int s = 0; s < NSLOTS; s++)
        drain(b, t, q, 0, s);
    if (emb_table_flush(t, NULL, &b->eb) != 0)
        die(b, "flush day 2");
    emb_table_destroy(&t);
    /* expiry: rows gone from the store (none of them was pushed). These
     * deletes go around the table, so they also drop the table's row count
     * record: a store without it is counted when it is next opened (a
     * stale record would rightly make the export refuse the store). */
    ops[n++] = (store_op_t){EMB_ROWS_KEY, sizeof(EMB_ROWS_KEY) - 1, NULL, 0};
    for (uint64_t i = 0; i <= b->rows; i++) {
        if (n == BATCH || (i == b->rows && n)) {
            if (store_write(st, ops, n, 0, &b->eb) != 0)
                die(b, "delete");
            n = 0;
        }
        if (i == b->rows || !deleted(i) || route_shard(key_of(i), SHARDS) != (uint32_t)h)
            continue;
        emb_key_encode(kb[n], (int)(i % NSLOTS), key_of(i));
        ops[n] = (store_op_t){kb[n], EMB_KEY_LEN, NULL, 0};
        n++;
        (*ndel)++;
    }
    checkpoint(b, st, b->ck2, h);
    store_close(&st);
}

static uint64_t tree_bytes;

static int add_size(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        tree_bytes += (uint64_t)sb->st_size;
    return 0;
}

static uint64_t du(const char *dir)
{
    tree_bytes = 0;
    nftw(dir, add_size, 16, FTW_PHYS);
    return tree_bytes;
}

static int same_file(const char *x, const char *y)
{
    static char a[1 << 20], b[1 << 20];
    FILE *f = fopen(x, "rb"), *g = fopen(y, "rb");
    int same = f && g;
    while (same) {
        size_t n = fread(a, 1, sizeof(a), f), m = fread(b, 1, sizeof(b), g);
        same = n == m && memcmp(a, b, n) == 0;
        if (n == 0)
            break;
    }
    if (f)
        fclose(f);
    if (g)
        fclose(g);
    return same;
}

static void report(const char *what, const emb_export_stats_t *s, uint64_t rows)
{
    printf("%-22s %9.0f rows/s  %8.2f s  %9llu records (%llu puts, %llu deletes)  %6.1f "
           "bytes/record  %6.1f bytes per checkpoint row\n",
           what, (double)s->source / s->seconds, s->seconds, (unsigned long long)s->records,
           (unsigned long long)s->puts, (unsigned long long)s->deletes,
           s->records ? (double)s->bytes / (double)s->records : 0.0,
           (double)s->bytes / (double)rows);
}

int main(int argc, char **argv)
{
    static bench_t b;
    batch_t *q = calloc(1, sizeof(*q));
    emb_export_stats_t f1, f2, d, a;
    uint64_t npush, ndel, nnew, rows2;
    double t0;
    int fails = 0;

    b.rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    b.dim = argc > 2 ? atoi(argv[2]) : 16;
    if (b.rows < 100 || b.dim < 1 || b.dim > 1024 || !q) {
        fprintf(stderr, "usage: bench-export [ROWS >= 100] [DIM 1..1024]\n");
        return 2;
    }
    for (int s = 0; s < NSLOTS; s++)
        if (!(q->v[s] = malloc((size_t)BATCH * (size_t)b.dim * 2 * sizeof(float))))
            return 1;
    memset(&b.ms, 0, sizeof(b.ms));
    b.ms.nslots = NSLOTS;
    for (int s = 0; s < NSLOTS; s++) {
        snprintf(b.ms.slot[s].name, sizeof(b.ms.slot[s].name), "slot%d", s);
        b.ms.slot[s].dim = b.dim;
    }
    b.ms.emb_opt = (optim_t){.kind = OPTIM_ADAGRAD, .lr = 0.05f, .eps = 1e-8f, .init_std = 0.01f};
    snprintf(b.dir, sizeof(b.dir), "%s/funnel-bench-export-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(b.dir)) {
        perror("bench-export: mkdtemp");
        return 1;
    }
    snprintf(b.ck1, sizeof(b.ck1), "%s/ckpt-day1", b.dir);
    snprintf(b.ck2, sizeof(b.ck2), "%s/ckpt-day2", b.dir);
    snprintf(b.full1, sizeof(b.full1), "%s/full-day1.emb", b.dir);
    snprintf(b.full2, sizeof(b.full2), "%s/full-day2.emb", b.dir);
    snprintf(b.delta, sizeof(b.delta), "%s/delta-day2.emb", b.dir);
    snprintf(b.applied, sizeof(b.applied), "%s/applied-day2.emb", b.dir);
    if (mkdir(b.ck1, 0755) != 0 || mkdir(b.ck2, 0755) != 0) {
        perror("bench-export: mkdir");
        return 1;
    }

    t0 = clock_now_s();
    npush = ndel = nnew = 0;
    for (int h = 0; h < SHARDS; h++)
        build_shard(&b, q, h, &npush, &ndel, &nnew);
    write_meta(&b, b.ck1, 1);
    write_meta(&b, b.ck2, 2);
    double build = clock_now_s() - t0;
    rows2 = b.rows - ndel + nnew;
    printf("tables: %llu rows of dim %d (Adagrad state: %zu bytes stored per row), %d slots, "
           "%d shards; day 2: %llu pushed, %llu deleted, %llu new (built in %.1f s)\n",
           (unsigned long long)b.rows, b.dim,
           (size_t)EMB_KEY_LEN + EMB_RECORD_HEADER + 8 * (size_t)b.dim, NSLOTS, SHARDS,
           (unsigned long long)npush, (unsigned long long)ndel, (unsigned long long)nnew, build);

    if (emb_export_full(b.ck1, NULL, b.full1, &f1, &b.eb) != 0)
        die(&b, "full export day 1");
    if (emb_export_full(b.ck2, NULL, b.full2, &f2, &b.eb) != 0)
        die(&b, "full export day 2");
    if (emb_export_delta(b.ck2, b.ck1, NULL, b.delta, &d, &b.eb) != 0)
        die(&b, "delta export");
    if (emb_export_apply(b.full1, b.delta, b.applied, &a, &b.eb) != 0)
        die(&b, "apply");
    report("full export day 1", &f1, b.rows);
    report("full export day 2", &f2, rows2);
    report("delta day 1 -> 2", &d, rows2);
    printf("%-22s (the delta also read the %llu rows of day 1: %.0f rows/s of both)\n", "",
           (unsigned long long)b.rows, (double)d.scanned / d.seconds);
    printf("%-22s %9.0f records/s of the delta, %.0f records/s read in all, %.2f s\n",
           "apply to full day 1", (double)a.source / a.seconds, (double)a.scanned / a.seconds,
           a.seconds);
    uint64_t disk1 = du(b.ck1), disk2 = du(b.ck2);
    printf("checkpoint on disk: day 1 %.1f bytes/row (%llu bytes), day 2 %.1f bytes/row "
           "(%llu bytes); full export %.1f bytes/row, delta %.1f bytes per changed row\n",
           (double)disk1 / (double)b.rows, (unsigned long long)disk1, (double)disk2 / (double)rows2,
           (unsigned long long)disk2, (double)f2.bytes / (double)rows2,
           (double)d.bytes / (double)(d.records ? d.records : 1));

    if (f1.records != b.rows || f2.records != rows2 || d.puts != npush + nnew ||
        d.deletes != ndel) {
        fprintf(stderr, "bench-export: counts differ from what was built\n");
        fails++;
    }
    if (!same_file(b.applied, b.full2)) {
        fprintf(stderr, "bench-export: full day 1 + delta != full day 2\n");
        fails++;
    } else {
        printf("full day 1 + delta == full day 2: byte for byte\n");
    }
    printf("{\"rows\":%llu,\"dim\":%d,\"full_rows_per_s\":%.0f,\"delta_rows_per_s\":%.0f,"
           "\"apply_records_per_s\":%.0f,\"full_bytes_per_row\":%.1f,\"delta_records\":%llu,"
           "\"delta_bytes\":%llu,\"checkpoint_bytes_per_row\":%.1f}\n",
           (unsigned long long)b.rows, b.dim, (double)f2.source / f2.seconds,
           (double)d.source / d.seconds, (double)a.scanned / a.seconds,
           (double)f2.bytes / (double)rows2, (unsigned long long)d.records,
           (unsigned long long)d.bytes, (double)disk2 / (double)rows2);

    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench-export: could not remove %s\n", b.dir);
    for (int s = 0; s < NSLOTS; s++)
        free(q->v[s]);
    free(q);
    return fails ? 1 : 0;
}
