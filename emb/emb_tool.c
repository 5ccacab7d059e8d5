/*
 * emb_tool.c - funnel-emb subcommands over a read-only rows store.
 * See emb_tool.h.
 */
#include "emb/emb_tool.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "table/emb_export.h"
#include "table/emb_table.h"
#include "common/keyhash.h"
#include "common/meta.h"
#include "table/store.h"

#define NBUCKET 12 /* histogram buckets: 0, 1, 2-3, 4-7, ..., >= 512 */

typedef struct row {
    int slot;
    uint64_t key;
    emb_row_meta_t meta;
    const void *floats; /* unaligned; nf floats */
    uint32_t nf;
} row_t;

/* The rows of dir: a checkpoint's shards (META says how many) merged into
 * one view, a model directory's shard-0, or a shard's own data directory. */
static int open_rows(const char *dir, store_t **s, errbuf_t *eb)
{
    char path[4200];
    struct stat st;
    meta_t meta;
    int shards = 1, rc;

    snprintf(path, sizeof(path), "%s/shard-0", dir);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (stat(dir, &st) != 0)
            return errbuf_set(eb, ERR_IO, "%s: %s (give a shard data directory, a model "
                                          "directory or a checkpoint)",
                              dir, strerror(errno));
        return store_rocks_open(s, dir, STORE_READONLY, dir, eb);
    }
    if (meta_read(dir, &meta, NULL) == 0 && meta.shards > 1)
        shards = meta.shards;
    if (shards == 1)
        return store_rocks_open(s, path, STORE_READONLY, path, eb);
    store_t **parts = calloc((size_t)shards, sizeof(*parts));
    if (!parts)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    rc = 0;
    for (int i = 0; i < shards && rc == 0; i++) {
        snprintf(path, sizeof(path), "%s/shard-%d", dir, i);
        rc = store_rocks_open(&parts[i], path, STORE_READONLY, path, eb);
    }
    if (rc == 0)
        rc = store_multi_open(s, parts, shards, dir, eb);
    if (rc != 0)
        for (int i = 0; i < shards; i++)
            store_close(&parts[i]);
    free(parts);
    return rc;
}

/* Next row of an iteration; 1, 0 at the end, or a negative error. */
static int next_row(store_t *s, store_iter_t *it, row_t *r, errbuf_t *eb)
{
    const void *k, *v;
    size_t kl, vl;

    if (!store_iter_next(s, it, &k, &kl, &v, &vl))
        return store_iter_error(s, it, eb); /* the end, or a read error */
    int sl;
    if (emb_key_decode(k, kl, &r->slot, &r->key) != 0 ||
        emb_record_decode(v, vl, &sl, &r->meta, &r->floats, &r->nf) != 0)
        return errbuf_set(eb, ERR_CORRUPT, "%s: unreadable row record", s->name);
    return 1;
}

static float fget(const void *p, size_t i)
{
    float f;
    memcpy(&f, (const char *)p + i * 4, 4);
    return f;
}

static int slot_dim(const model_spec_t *ms, int slot)
{
    return slot < ms->nslots ? ms->slot[slot].dim : 0;
}

static const char *slot_name(const model_spec_t *ms, int slot)
{
    return slot < ms->nslots ? ms->slot[slot].name : "?";
}

static int bucket(uint64_t v)
{
    int b = 0;
    if (v == 0)
        return 0;
    while (v > 1 && b < NBUCKET - 2) {
        v >>= 1;
        b++;
    }
    return b + 1;
}

static const char *bucket_label(int b, char *buf, size_t len)
{
    if (b == 0)
        snprintf(buf, len, "0");
    else if (b == 1)
        snprintf(buf, len, "1");
    else if (b == NBUCKET - 1)
        snprintf(buf, len, ">=%d", 1 << (b - 1));
    else
        snprintf(buf, len, "%d-%d", 1 << (b - 1), (1 << b) - 1);
    return buf;
}

static double norm_of(const row_t *r, int dim)
{
    double s = 0;
    for (int d = 0; d < dim && (uint32_t)d < r->nf; d++) {
        double x = fget(r->floats, (size_t)d);
        s += x * x;
    }
    return sqrt(s);
}

static int want_slot(const model_spec_t *ms, const char *slot, int s)
{
    return !slot || strcmp(slot, slot_name(ms, s)) == 0;
}

/* ---- stats ---- */

static int cmd_stats(const model_spec_t *ms, const emb_tool_args_t *a, store_t *st, FILE *out,
                     errbuf_t *eb)
{
    uint64_t rows[MODEL_MAX_SLOTS] = {0}, floats[MODEL_MAX_SLOTS] = {0};
    uint64_t upd[MODEL_MAX_SLOTS][NBUCKET] = {{0}}, age[MODEL_MAX_SLOTS][NBUCKET] = {{0}};
    uint64_t total = 0, bad_width = 0;
    int maxday = a->day;
    const char pfx = 'r';
    store_iter_t *it = store_iter_new(st, &pfx, 1);
    row_t r;
    int rc;

    if (!it)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    /* first pass: the latest day, unless given */
    if (maxday < 0) {
        maxday = 0;
        while ((rc = next_row(st, it, &r, eb)) == 1)
            if (r.meta.last_day > maxday)
                maxday = r.meta.last_day;
        store_iter_destroy(st, &it);
        if (rc < 0)
            return rc;
        it = store_iter_new(st, &pfx, 1);
    }
    while ((rc = next_row(st, it, &r, eb)) == 1) {
        if (r.slot >= MODEL_MAX_SLOTS || !want_slot(ms, a->slot, r.slot))
            continue;
        rows[r.slot]++;
        floats[r.slot] += r.nf;
        upd[r.slot][bucket(r.meta.updates)]++;
        age[r.slot][bucket((uint64_t)(maxday > r.meta.last_day ? maxday - r.meta.last_day : 0))]++;
        if ((int)r.nf < slot_dim(ms, r.slot))
            bad_width++;
        total++;
    }
    store_iter_destroy(st, &it);
    if (rc < 0)
        return rc;
    if (a->json) {
        fprintf(out, "{\"rows\":%" PRIu64 ",\"day\":%d,\"slots\":{", total, maxday);
        int first = 1;
        for (int s = 0; s < MODEL_MAX_SLOTS; s++) {
            if (!rows[s])
                continue;
            fprintf(out, "%s\"%s\":{\"rows\":%" PRIu64 ",\"bytes_per_row\":%.1f,\"updates_hist\":[",
                    first ? "" : ",", slot_name(ms, s), rows[s],
                    (double)EMB_KEY_LEN + EMB_RECORD_HEADER + 4.0 * (double)floats[s] / (double)rows[s]);
            for (int b = 0; b < NBUCKET; b++)
                fprintf(out, "%s%" PRIu64, b ? "," : "", upd[s][b]);
            fprintf(out, "],\"age_hist\":[");
            for (int b = 0; b < NBUCKET; b++)
                fprintf(out, "%s%" PRIu64, b ? "," : "", age[s][b]);
            fprintf(out, "]}");
            first = 0;
        }
        fprintf(out, "}}\n");
        return 0;
    }
    fprintf(out, "rows on disk: %" PRIu64 " (as of the last flush), latest day %d\n\n", total,
            maxday);
    fprintf(out, "%-16s %12s %14s\n", "slot", "rows", "bytes/row");
    for (int s = 0; s < MODEL_MAX_SLOTS; s++)
        if (rows[s])
            fprintf(out, "%-16s %12" PRIu64 " %14.1f\n", slot_name(ms, s), rows[s],
                    (double)EMB_KEY_LEN + EMB_RECORD_HEADER +
                        4.0 * (double)floats[s] / (double)rows[s]);
    const char *titles[2] = {"updates per row", "days since last seen"};
    for (int h = 0; h < 2; h++) {
        char lab[32];
        fprintf(out, "\n%s:\n%-16s", titles[h], "slot");
        for (int b = 0; b < NBUCKET; b++)
            fprintf(out, " %9s", bucket_label(b, lab, sizeof(lab)));
        fputc('\n', out);
        for (int s = 0; s < MODEL_MAX_SLOTS; s++) {
            if (!rows[s])
                continue;
            fprintf(out, "%-16s", slot_name(ms, s));
            for (int b = 0; b < NBUCKET; b++)
                fprintf(out, " %9" PRIu64, h ? age[s][b] : upd[s][b]);
            fputc('\n', out);
        }
    }
    if (bad_width)
        fprintf(out, "\nwarning: %" PRIu64 " rows are narrower than the configured dims "
                     "(a different [model] configuration?)\n",
                bad_width);
    return 0;
}

/* ---- get ---- */

static void print_row(const model_spec_t *ms, const row_t *r, int json, FILE *out)
{
    int dim = slot_dim(ms, r->slot);

    if (dim <= 0 || (uint32_t)dim > r->nf)
        dim = (int)r->nf;
    if (json) {
        fprintf(out, "{\"slot\":\"%s\",\"key\":\"%016" PRIx64 "\",\"updates\":%u,\"first_day\":%d,"
                     "\"last_day\":%d,\"embedding\":[",
                slot_name(ms, r->slot), r->key, r->meta.updates, r->meta.first_day,
                r->meta.last_day);
        for (int d = 0; d < dim; d++)
            fprintf(out, "%s%.6g", d ? "," : "", fget(r->floats, (size_t)d));
        fprintf(out, "],\"state\":[");
        for (uint32_t d = (uint32_t)dim; d < r->nf; d++)
            fprintf(out, "%s%.6g", d > (uint32_t)dim ? "," : "", fget(r->floats, d));
        fprintf(out, "]}\n");
        return;
    }
    fprintf(out, "%s %016" PRIx64 "  updates %u  first day %d  last day %d\n  embedding:",
            slot_name(ms, r->slot), r->key, r->meta.updates, r->meta.first_day,
            r->meta.last_day);
    for (int d = 0; d < dim; d++)
        fprintf(out, " %.5g", fget(r->floats, (size_t)d));
    fprintf(out, "\n  optimizer state (%s):", optim_name(ms->emb_opt.kind));
    for (uint32_t d = (uint32_t)dim; d < r->nf; d++)
        fprintf(out, " %.5g", fget(r->floats, d));
    fputc('\n', out);
}

static int lookup(store_t *st, int slot, uint64_t key, row_t *r, void **buf, errbuf_t *eb)
{
    unsigned char kb[EMB_KEY_LEN];
    size_t vl;
    int sl;
    int rc;

    emb_key_encode(kb, slot, key);
    *buf = NULL;
    rc = store_get(st, kb, EMB_KEY_LEN, buf, &vl, eb);
    if (rc != 0)
        return rc;
    r->slot = slot;
    r->key = key;
    if (emb_record_decode(*buf, vl, &sl, &r->meta, &r->floats, &r->nf) != 0)
        return errbuf_set(eb, ERR_CORRUPT, "%s: unreadable row record", st->name);
    return 0;
}

static int cmd_get(const model_spec_t *ms, const emb_tool_args_t *a, store_t *st, FILE *out,
                   errbuf_t *eb)
{
    int missing = 0;

    if (a->nargs == 0)
        return errbuf_set(eb, ERR_INVAL, "get: give SLOT:VALUE tokens or hex keys");
    for (int i = 0; i < a->nargs; i++) {
        const char *arg = a->args[i];
        const char *colon = strchr(arg, ':');
        int lo = 0, hi = ms->nslots, found = 0, rc;
        uint64_t key;
        row_t r;
        void *buf;

        if (colon) {
            int s = model_spec_slot(ms, arg, (size_t)(colon - arg));
            if (s < 0)
                return errbuf_set(eb, ERR_INVAL, "get %s: slot '%.*s' is not in the configured "
                                                 "slots (pass the table's --conf)",
                                  arg, (int)(colon - arg), arg);
            key = keyhash_value(ms->slot[s].seed, colon + 1, strlen(colon + 1));
            lo = s;
            hi = s + 1;
        } else {
            char *end;
            key = strtoull(arg, &end, 16);
            if (end == arg || *end)
                return errbuf_set(eb, ERR_INVAL, "get %s: not SLOT:VALUE or a hex key", arg);
        }
        for (int s = lo; s < hi && !found; s++) {
            rc = lookup(st, s, key, &r, &buf, eb);
            if (rc == 0) {
                print_row(ms, &r, a->json, out);
                found = 1;
            }
            free(buf);
            if (rc != 0 && rc != ERR_NOTFOUND)
                return rc;
        }
        if (!found) {
            missing = 1;
            if (a->json)
                fprintf(out, "{\"query\":\"%s\",\"key\":\"%016" PRIx64 "\",\"row\":null,"
                             "\"why\":\"no row: never seen, not admitted, expired, or not yet "
                             "flushed\"}\n",
                        arg, key);
            else
                fprintf(out, "%s (key %016" PRIx64 "): no row - never seen, not yet admitted, "
                             "expired, or not flushed yet\n",
                        arg, key);
        }
    }
    return missing;
}

/* ---- top and dump ---- */

typedef struct scored {
    double score;
    int slot;
    uint64_t key;
    uint32_t updates;
    int last_day;
    double norm;
} scored_t;

static int cmp_scored(const void *x, const void *y)
{
    double a = ((const scored_t *)x)->score, b = ((const scored_t *)y)->score;
    return (a < b) - (a > b);
}

static int cmd_top(const model_spec_t *ms, const emb_tool_args_t *a, store_t *st, FILE *out,
                   errbuf_t *eb)
{
    const char *by = a->by ? a->by : "count";
    long n = a->n > 0 ? a->n : 10;
    scored_t *best = calloc((size_t)n, sizeof(*best));
    long have = 0;
    const char pfx = 'r';
    store_iter_t *it;
    row_t r;
    int rc, kind;

    if (!strcmp(by, "count"))
        kind = 0;
    else if (!strcmp(by, "norm"))
        kind = 1;
    else if (!strcmp(by, "age"))
        kind = 2;
    else {
        free(best);
        return errbuf_set(eb, ERR_INVAL, "top --by %s: use count, norm or age", by);
    }
    it = store_iter_new(st, &pfx, 1);
    if (!best || !it) {
        free(best);
        store_iter_destroy(st, &it);
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    while ((rc = next_row(st, it, &r, eb)) == 1) {
        if (!want_slot(ms, a->slot, r.slot))
            continue;
        double nm = norm_of(&r, slot_dim(ms, r.slot));
        scored_t c = {kind == 0 ? (double)r.meta.updates : kind == 1 ? nm : -(double)r.meta.last_day,
                      r.slot, r.key, r.meta.updates, r.meta.last_day, nm};
        if (have < n) {
            best[have++] = c;
            continue;
        }
        long worst = 0;
        for (long i = 1; i < have; i++)
            if (best[i].score < best[worst].score)
                worst = i;
        if (c.score > best[worst].score)
            best[worst] = c;
    }
    store_iter_destroy(st, &it);
    if (rc < 0) {
        free(best);
        return rc;
    }
    qsort(best, (size_t)have, sizeof(*best), cmp_scored);
    if (!a->json)
        fprintf(out, "%-16s %-18s %10s %9s %10s\n", "slot", "key", "updates", "last_day", "norm");
    for (long i = 0; i < have; i++) {
        if (a->json)
            fprintf(out, "{\"slot\":\"%s\",\"key\":\"%016" PRIx64 "\",\"updates\":%u,"
                         "\"last_day\":%d,\"norm\":%.6g}\n",
                    slot_name(ms, best[i].slot), best[i].key, best[i].updates, best[i].last_day,
                    best[i].norm);
        else
            fprintf(out, "%-16s %016" PRIx64 "   %10u %9d %10.4f\n", slot_name(ms, best[i].slot),
                    best[i].key, best[i].updates, best[i].last_day, best[i].norm);
    }
    free(best);
    return 0;
}

static int cmd_dump(const model_spec_t *ms, const emb_tool_args_t *a, store_t *st, FILE *out,
                    errbuf_t *eb)
{
    const char pfx = 'r';
    store_iter_t *it = store_iter_new(st, &pfx, 1);
    row_t r;
    int rc;

    if (!it)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    if (!a->json)
        fprintf(out, "slot\tkey\tupdates\tfirst_day\tlast_day\tembedding\n");
    while ((rc = next_row(st, it, &r, eb)) == 1) {
        if (!want_slot(ms, a->slot, r.slot))
            continue;
        if (a->json) {
            print_row(ms, &r, 1, out);
            continue;
        }
        int dim = slot_dim(ms, r.slot);
        if (dim <= 0 || (uint32_t)dim > r.nf)
            dim = (int)r.nf;
        fprintf(out, "%s\t%016" PRIx64 "\t%u\t%d\t%d\t", slot_name(ms, r.slot), r.key,
                r.meta.updates, r.meta.first_day, r.meta.last_day);
        for (int d = 0; d < dim; d++)
            fprintf(out, "%s%.6g", d ? "," : "", fget(r.floats, (size_t)d));
        fputc('\n', out);
    }
    store_iter_destroy(st, &it);
    return rc < 0 ? rc : 0;
}

/* ---- diff ---- */

typedef struct dvec {
    double *v;
    size_t n, cap;
} dvec_t;

static int dpush(dvec_t *d, double x)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        double *p = realloc(d->v, cap * sizeof(double));
        if (!p)
            return ERR_NOMEM;
        d->v = p;
        d->cap = cap;
    }
    d->v[d->n++] = x;
    return 0;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static int cmd_diff(const model_spec_t *ms, const emb_tool_args_t *a, store_t *sa, FILE *out,
                    errbuf_t *eb)
{
    uint64_t added[MODEL_MAX_SLOTS] = {0}, removed[MODEL_MAX_SLOTS] = {0};
    uint64_t same[MODEL_MAX_SLOTS] = {0};
    dvec_t changed[MODEL_MAX_SLOTS];
    store_t *sb = NULL;
    store_iter_t *ia = NULL, *ib = NULL;
    const char pfx = 'r';
    row_t ra, rb;
    int ha, hb, rc;

    memset(changed, 0, sizeof(changed));
    if (a->nargs != 1)
        return errbuf_set(eb, ERR_INVAL, "diff: give the second directory");
    rc = open_rows(a->args[0], &sb, eb);
    if (rc != 0)
        return rc;
    ia = store_iter_new(sa, &pfx, 1);
    ib = store_iter_new(sb, &pfx, 1);
    ha = next_row(sa, ia, &ra, eb);
    hb = next_row(sb, ib, &rb, eb);
    /* both stores iterate in key order: merge */
    while (ha == 1 || hb == 1) {
        int c;
        if (ha != 1)
            c = 1;
        else if (hb != 1)
            c = -1;
        else
            c = ra.slot != rb.slot ? (ra.slot < rb.slot ? -1 : 1)
                                   : (ra.key < rb.key ? -1 : ra.key > rb.key ? 1 : 0);
        if (c < 0) {
            if (ra.slot < MODEL_MAX_SLOTS)
                removed[ra.slot]++;
            ha = next_row(sa, ia, &ra, eb);
        } else if (c > 0) {
            if (rb.slot < MODEL_MAX_SLOTS)
                added[rb.slot]++;
            hb = next_row(sb, ib, &rb, eb);
        } else {
            int dim = slot_dim(ms, ra.slot);
            double d2 = 0;
            if (dim <= 0 || (uint32_t)dim > ra.nf || (uint32_t)dim > rb.nf)
                dim = (int)(ra.nf < rb.nf ? ra.nf : rb.nf);
            for (int d = 0; d < dim; d++) {
                double x = (double)fget(ra.floats, (size_t)d) - fget(rb.floats, (size_t)d);
                d2 += x * x;
            }
            if (d2 > 0 || ra.meta.updates != rb.meta.updates) {
                if (ra.slot < MODEL_MAX_SLOTS && dpush(&changed[ra.slot], sqrt(d2)) != 0) {
                    rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
                    goto out;
                }
            } else if (ra.slot < MODEL_MAX_SLOTS) {
                same[ra.slot]++;
            }
            ha = next_row(sa, ia, &ra, eb);
            hb = next_row(sb, ib, &rb, eb);
        }
        if (ha < 0 || hb < 0) {
            rc = ha < 0 ? ha : hb;
            goto out;
        }
    }
    if (!a->json)
        fprintf(out, "%-16s %10s %10s %10s %10s %10s %10s %10s %10s\n", "slot", "added", "removed",
                "changed", "unchanged", "l2_p50", "l2_p90", "l2_max", "l2_mean");
    else
        fprintf(out, "{\"slots\":{");
    int first = 1;
    for (int s = 0; s < MODEL_MAX_SLOTS; s++) {
        dvec_t *d = &changed[s];
        double p50 = 0, p90 = 0, mx = 0, mean = 0;
        if (!added[s] && !removed[s] && !d->n && !same[s])
            continue;
        if (d->n) {
            qsort(d->v, d->n, sizeof(double), cmp_double);
            p50 = d->v[d->n / 2];
            p90 = d->v[(size_t)((double)(d->n - 1) * 0.9)];
            mx = d->v[d->n - 1];
            for (size_t i = 0; i < d->n; i++)
                mean += d->v[i];
            mean /= (double)d->n;
        }
        if (a->json)
            fprintf(out, "%s\"%s\":{\"added\":%" PRIu64 ",\"removed\":%" PRIu64
                         ",\"changed\":%zu,\"unchanged\":%" PRIu64
                         ",\"l2_p50\":%.6g,\"l2_p90\":%.6g,\"l2_max\":%.6g,\"l2_mean\":%.6g}",
                    first ? "" : ",", slot_name(ms, s), added[s], removed[s], d->n, same[s], p50,
                    p90, mx, mean);
        else
            fprintf(out, "%-16s %10" PRIu64 " %10" PRIu64 " %10zu %10" PRIu64
                         " %10.4g %10.4g %10.4g %10.4g\n",
                    slot_name(ms, s), added[s], removed[s], d->n, same[s], p50, p90, mx, mean);
        first = 0;
    }
    if (a->json)
        fprintf(out, "}}\n");
    rc = 0;
out:
    for (int s = 0; s < MODEL_MAX_SLOTS; s++)
        free(changed[s].v);
    store_iter_destroy(sa, &ia);
    store_iter_destroy(sb, &ib);
    store_close(&sb);
    return rc;
}

/* ---- export, apply, export-dump (emb_export.h) ---- */

static void print_summary(const char *what, const emb_export_stats_t *s, const char *file,
                          int json, FILE *out)
{
    double rate = s->seconds > 0 ? (double)s->scanned / s->seconds : 0;

    if (json) {
        fprintf(out, "{\"%s\":\"%s\",\"records\":%" PRIu64 ",\"puts\":%" PRIu64
                     ",\"deletes\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"read\":%" PRIu64
                     ",\"seconds\":%.3f,\"rows_per_s\":%.0f}\n",
                what, file, s->records, s->puts, s->deletes, s->bytes, s->scanned, s->seconds,
                rate);
        return;
    }
    fprintf(out, "%s %s: %" PRIu64 " records (%" PRIu64 " puts, %" PRIu64 " deletes), %" PRIu64
                 " bytes, %" PRIu64 " rows read in %.2f s (%.0f rows/s)\n",
            what, file, s->records, s->puts, s->deletes, s->bytes, s->scanned, s->seconds, rate);
}

static int cmd_export(const model_spec_t *ms, const emb_tool_args_t *a, FILE *out, errbuf_t *eb)
{
    emb_export_opts_t o = {.spec = ms, .day = a->day};
    emb_export_stats_t s;
    int rc;

    if (!a->out)
        return errbuf_set(eb, ERR_INVAL, "export: give the file to write with --out FILE");
    if (a->nargs > 0)
        return errbuf_set(eb, ERR_INVAL, "export: unexpected '%s' (the previous checkpoint goes "
                                         "after --since)",
                          a->args[0]);
    if (a->since)
        rc = emb_export_delta(a->dir, a->since, &o, a->out, &s, eb);
    else
        rc = emb_export_full(a->dir, &o, a->out, &s, eb);
    if (rc == 0)
        print_summary(a->since ? "delta" : "full", &s, a->out, a->json, out);
    return rc;
}

static int cmd_apply(const emb_tool_args_t *a, FILE *out, errbuf_t *eb)
{
    emb_export_stats_t s;
    int rc;

    if (a->nargs != 1 || !a->out)
        return errbuf_set(eb, ERR_INVAL, "apply: give BASE_EXPORT DELTA_EXPORT --out FILE");
    rc = emb_export_apply(a->dir, a->args[0], a->out, &s, eb);
    if (rc == 0)
        print_summary("applied", &s, a->out, a->json, out);
    return rc;
}

int emb_tool_run(const model_spec_t *ms, const emb_tool_args_t *a, FILE *out, errbuf_t *eb)
{
    store_t *st = NULL;
    int rc;

    if (!strcmp(a->cmd, "export"))
        return cmd_export(ms, a, out, eb);
    if (!strcmp(a->cmd, "apply"))
        return cmd_apply(a, out, eb);
    if (!strcmp(a->cmd, "export-dump"))
        return a->nargs ? errbuf_set(eb, ERR_INVAL, "export-dump: give one export file")
                        : emb_export_dump(a->dir, out, eb);
    rc = open_rows(a->dir, &st, eb);
    if (rc != 0)
        return rc;
    if (!strcmp(a->cmd, "stats"))
        rc = cmd_stats(ms, a, st, out, eb);
    else if (!strcmp(a->cmd, "get"))
        rc = cmd_get(ms, a, st, out, eb);
    else if (!strcmp(a->cmd, "top"))
        rc = cmd_top(ms, a, st, out, eb);
    else if (!strcmp(a->cmd, "dump"))
        rc = cmd_dump(ms, a, st, out, eb);
    else if (!strcmp(a->cmd, "diff"))
        rc = cmd_diff(ms, a, st, out, eb);
    else
        rc = errbuf_set(eb, ERR_INVAL, "unknown command '%s' (stats, get, top, dump, diff, "
                                       "export, apply, export-dump)",
                        a->cmd);
    store_close(&st);
    return rc;
}
