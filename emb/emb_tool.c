/*
 * emb_tool.c - funnel-emb subcommands over a read-only rows store: the
 * answers as structs, their printing, and emb_tool_run() joining the two.
 * See emb_tool.h.
 */
#include "emb/emb_tool.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/keydict.h"
#include "common/keyhash.h"
#include "common/meta.h"
#include "table/ckpt_read.h"
#include "table/emb_export.h"
#include "table/emb_table.h"

#define NBUCKET EMB_TOOL_NBUCKET

/* A row as the store iteration yields it (valid until the next row). */
typedef struct row {
    int slot;
    uint64_t key;
    emb_row_meta_t meta;
    const void *floats; /* unaligned; nf floats */
    uint32_t nf;
} row_t;

int emb_tool_open(const char *dir, store_t **s, errbuf_t *eb)
{
    char path[4200];
    struct stat st;
    meta_t meta;
    int shards = 1, rc;

    snprintf(path, sizeof(path), "%s/shard-0", dir);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (stat(dir, &st) != 0)
            return errbuf_set(eb, ERR_IO,
                              "%s: %s (give a shard data directory, a model "
                              "directory or a checkpoint)",
                              dir, strerror(errno));
        return emb_store_open(s, dir, STORE_READONLY, dir, eb);
    }
    /* a directory of shards without META is read as it is; a damaged META
     * is refused like damaged rows */
    rc = meta_read(dir, &meta, eb);
    if (rc != 0 && rc != ERR_NOTFOUND)
        return rc;
    if (rc == 0 && meta.shards > 1)
        shards = meta.shards;
    if (shards == 1)
        return emb_store_open(s, path, STORE_READONLY, path, eb);
    store_t **parts = calloc((size_t)shards, sizeof(*parts));
    if (!parts)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    rc = ckpt_read_open_shards(parts, dir, shards, eb);
    if (rc == 0) {
        rc = store_multi_open(s, parts, shards, dir, eb);
        if (rc != 0)
            for (int i = 0; i < shards; i++)
                store_close(&parts[i]);
    }
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

int emb_tool_bucket(uint64_t v)
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

/* The latest last-seen day of the rows of st. */
static int latest_day(store_t *st, int *day, errbuf_t *eb)
{
    const char pfx = 'r';
    store_iter_t *it = store_iter_new(st, &pfx, 1);
    row_t r;
    int rc;

    if (!it)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    *day = 0;
    while ((rc = next_row(st, it, &r, eb)) == 1)
        if (r.meta.last_day > *day)
            *day = r.meta.last_day;
    store_iter_destroy(st, &it);
    return rc < 0 ? rc : 0;
}

int emb_tool_stats(const model_spec_t *ms, store_t *st, const char *slot, int day,
                   emb_tool_stats_t *s, errbuf_t *eb)
{
    uint64_t floats[MODEL_MAX_SLOTS] = {0};
    const char pfx = 'r';
    store_iter_t *it;
    row_t r;
    int rc;

    memset(s, 0, sizeof(*s));
    s->day = day;
    if (day < 0 && (rc = latest_day(st, &s->day, eb)) != 0)
        return rc;
    it = store_iter_new(st, &pfx, 1);
    if (!it)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    while ((rc = next_row(st, it, &r, eb)) == 1) {
        if (r.slot >= MODEL_MAX_SLOTS || !want_slot(ms, slot, r.slot))
            continue;
        int age = s->day > r.meta.last_day ? s->day - r.meta.last_day : 0;
        s->slot_rows[r.slot]++;
        floats[r.slot] += r.nf;
        s->updates_hist[r.slot][emb_tool_bucket(r.meta.updates)]++;
        s->age_hist[r.slot][emb_tool_bucket((uint64_t)age)]++;
        if ((int)r.nf < slot_dim(ms, r.slot))
            s->narrow++;
        s->rows++;
    }
    store_iter_destroy(st, &it);
    if (rc < 0)
        return rc;
    for (int sl = 0; sl < MODEL_MAX_SLOTS; sl++)
        if (s->slot_rows[sl])
            s->bytes_per_row[sl] = (double)EMB_KEY_LEN + EMB_RECORD_HEADER +
                                   4.0 * (double)floats[sl] / (double)s->slot_rows[sl];
    return 0;
}

void emb_tool_print_stats(const model_spec_t *ms, const emb_tool_stats_t *s, int json, FILE *out)
{
    if (json) {
        json_t j;
        json_init(&j, out);
        json_object_begin(&j);
        json_kv_u64(&j, "rows", s->rows);
        json_kv_i64(&j, "day", s->day);
        json_key(&j, "slots");
        json_object_begin(&j);
        for (int sl = 0; sl < MODEL_MAX_SLOTS; sl++) {
            if (!s->slot_rows[sl])
                continue;
            json_key(&j, slot_name(ms, sl));
            json_object_begin(&j);
            json_kv_u64(&j, "rows", s->slot_rows[sl]);
            json_kv_num(&j, "bytes_per_row", s->bytes_per_row[sl], 6);
            json_key(&j, "updates_hist");
            json_array_begin(&j);
            for (int b = 0; b < NBUCKET; b++)
                json_u64(&j, s->updates_hist[sl][b]);
            json_array_end(&j);
            json_key(&j, "age_hist");
            json_array_begin(&j);
            for (int b = 0; b < NBUCKET; b++)
                json_u64(&j, s->age_hist[sl][b]);
            json_array_end(&j);
            json_object_end(&j);
        }
        json_object_end(&j);
        json_object_end(&j);
        json_end_line(&j);
        return;
    }
    fprintf(out, "rows on disk: %" PRIu64 " (as of the last flush), latest day %d\n\n", s->rows,
            s->day);
    fprintf(out, "%-16s %12s %14s\n", "slot", "rows", "bytes/row");
    for (int sl = 0; sl < MODEL_MAX_SLOTS; sl++)
        if (s->slot_rows[sl])
            fprintf(out, "%-16s %12" PRIu64 " %14.1f\n", slot_name(ms, sl), s->slot_rows[sl],
                    s->bytes_per_row[sl]);
    const char *titles[2] = {"updates per row", "days since last seen"};
    for (int h = 0; h < 2; h++) {
        char lab[32];
        fprintf(out, "\n%s:\n%-16s", titles[h], "slot");
        for (int b = 0; b < NBUCKET; b++)
            fprintf(out, " %9s", bucket_label(b, lab, sizeof(lab)));
        fputc('\n', out);
        for (int sl = 0; sl < MODEL_MAX_SLOTS; sl++) {
            if (!s->slot_rows[sl])
                continue;
            fprintf(out, "%-16s", slot_name(ms, sl));
            for (int b = 0; b < NBUCKET; b++)
                fprintf(out, " %9" PRIu64, h ? s->age_hist[sl][b] : s->updates_hist[sl][b]);
            fputc('\n', out);
        }
    }
    if (s->narrow)
        fprintf(out,
                "\nwarning: %" PRIu64 " rows are narrower than the configured dims "
                "(a different [model] configuration?)\n",
                s->narrow);
}

static int cmd_stats(const model_spec_t *ms, const emb_tool_args_t *a, store_t *st, FILE *out,
                     errbuf_t *eb)
{
    emb_tool_stats_t s;
    int rc = emb_tool_stats(ms, st, a->slot, a->day, &s, eb);

    if (rc == 0)
        emb_tool_print_stats(ms, &s, a->json, out);
    return rc;
}

/* ---- get ---- */

static void print_row(const model_spec_t *ms, const keydict_t *keys, const row_t *r, int json,
                      FILE *out)
{
    int dim = slot_dim(ms, r->slot);
    const char *value = keydict_find(keys, r->slot, r->key);

    if (dim <= 0 || (uint32_t)dim > r->nf)
        dim = (int)r->nf;
    if (json) {
        json_t j;
        json_init(&j, out);
        json_object_begin(&j);
        json_kv_str(&j, "slot", slot_name(ms, r->slot));
        json_key(&j, "key");
        json_hex64(&j, r->key);
        if (keys)
            json_kv_str(&j, "value", value);
        json_kv_u64(&j, "updates", r->meta.updates);
        json_kv_i64(&j, "first_day", r->meta.first_day);
        json_kv_i64(&j, "last_day", r->meta.last_day);
        json_key(&j, "embedding");
        json_array_begin(&j);
        for (int d = 0; d < dim; d++)
            json_num(&j, fget(r->floats, (size_t)d), 6);
        json_array_end(&j);
        json_key(&j, "state");
        json_array_begin(&j);
        for (uint32_t d = (uint32_t)dim; d < r->nf; d++)
            json_num(&j, fget(r->floats, d), 6);
        json_array_end(&j);
        json_object_end(&j);
        json_end_line(&j);
        return;
    }
    if (value)
        fprintf(out, "%s:%s (key %016" PRIx64 ")", slot_name(ms, r->slot), value, r->key);
    else
        fprintf(out, "%s %016" PRIx64, slot_name(ms, r->slot), r->key);
    fprintf(out, "  updates %u  first day %d  last day %d\n  embedding:", r->meta.updates,
            r->meta.first_day, r->meta.last_day);
    for (int d = 0; d < dim; d++)
        fprintf(out, " %.5g", fget(r->floats, (size_t)d));
    fprintf(out, "\n  optimizer state (%s):", optim_name(ms->emb_opt.kind));
    for (uint32_t d = (uint32_t)dim; d < r->nf; d++)
        fprintf(out, " %.5g", fget(r->floats, d));
    fputc('\n', out);
}

/* The row of (slot, key) into r (found, meta, floats). Returns 0,
 * ERR_NOTFOUND, or an error. */
static int lookup(store_t *st, int slot, uint64_t key, emb_tool_row_t *r, errbuf_t *eb)
{
    unsigned char kb[EMB_KEY_LEN];
    const void *floats;
    void *buf = NULL;
    size_t vl;
    int sl;
    int rc;

    emb_key_encode(kb, slot, key);
    rc = store_get(st, kb, EMB_KEY_LEN, &buf, &vl, eb);
    if (rc == 0 && emb_record_decode(buf, vl, &sl, &r->meta, &floats, &r->nf) != 0)
        rc = errbuf_set(eb, ERR_CORRUPT, "%s: unreadable row record", st->name);
    if (rc == 0) {
        r->floats = malloc(((size_t)r->nf + 1) * sizeof(float));
        if (!r->floats)
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    if (rc == 0) {
        memcpy(r->floats, floats, (size_t)r->nf * sizeof(float));
        r->found = 1;
        r->slot = slot;
    }
    free(buf);
    return rc;
}

int emb_tool_get(const model_spec_t *ms, store_t *st, const char *query, emb_tool_row_t *r,
                 errbuf_t *eb)
{
    const char *colon = strchr(query, ':');
    int lo = 0, hi = ms->nslots, rc;

    memset(r, 0, sizeof(*r));
    if (colon) {
        int s = model_spec_slot(ms, query, (size_t)(colon - query));
        if (s < 0)
            return errbuf_set(eb, ERR_INVAL,
                              "get %s: slot '%.*s' is not in the configured "
                              "slots (pass the table's --conf)",
                              query, (int)(colon - query), query);
        r->key = keyhash_value(ms->slot[s].seed, colon + 1, strlen(colon + 1));
        lo = s;
        hi = s + 1;
    } else {
        char *end;
        r->key = strtoull(query, &end, 16);
        if (end == query || *end)
            return errbuf_set(eb, ERR_INVAL, "get %s: not SLOT:VALUE or a hex key", query);
    }
    for (int s = lo; s < hi && !r->found; s++) {
        rc = lookup(st, s, r->key, r, eb);
        if (rc != 0 && rc != ERR_NOTFOUND)
            return rc;
    }
    return 0;
}

void emb_tool_row_release(emb_tool_row_t *r)
{
    free(r->floats);
    r->floats = NULL;
    r->nf = 0;
}

void emb_tool_print_row(const model_spec_t *ms, const keydict_t *keys, const char *query,
                        const emb_tool_row_t *r, int json, FILE *out)
{
    if (r->found) {
        row_t row = {r->slot, r->key, r->meta, r->floats, r->nf};
        print_row(ms, keys, &row, json, out);
    } else if (json) {
        json_t j;
        json_init(&j, out);
        json_object_begin(&j);
        json_kv_str(&j, "query", query);
        json_key(&j, "key");
        json_hex64(&j, r->key);
        json_key(&j, "row");
        json_null(&j);
        json_kv_str(&j, "why", "no row: never seen, not admitted, expired, or not yet flushed");
        json_object_end(&j);
        json_end_line(&j);
    } else {
        fprintf(out,
                "%s (key %016" PRIx64 "): no row - never seen, not yet admitted, "
                "expired, or not flushed yet\n",
                query, r->key);
    }
}

static int cmd_get(const model_spec_t *ms, const keydict_t *keys, const emb_tool_args_t *a,
                   store_t *st, FILE *out, errbuf_t *eb)
{
    int missing = 0;

    if (a->nargs == 0)
        return errbuf_set(eb, ERR_INVAL, "get: give SLOT:VALUE tokens or hex keys");
    for (int i = 0; i < a->nargs; i++) {
        emb_tool_row_t r;
        int rc = emb_tool_get(ms, st, a->args[i], &r, eb);

        if (rc == 0)
            emb_tool_print_row(ms, keys, a->args[i], &r, a->json, out);
        emb_tool_row_release(&r);
        if (rc != 0)
            return rc;
        if (!r.found)
            missing = 1;
    }
    return missing;
}

/* ---- top and dump ---- */

static int cmp_ranked(const void *x, const void *y)
{
    double a = ((const emb_tool_ranked_t *)x)->score, b = ((const emb_tool_ranked_t *)y)->score;
    return (a < b) - (a > b);
}

int emb_tool_top(const model_spec_t *ms, store_t *st, const char *slot, const char *by, long n,
                 emb_tool_top_t *top, errbuf_t *eb)
{
    emb_tool_ranked_t *best;
    long have = 0;
    const char pfx = 'r';
    store_iter_t *it;
    row_t r;
    int rc, kind;

    memset(top, 0, sizeof(*top));
    by = by ? by : "count";
    n = n > 0 ? n : 10;
    if (!strcmp(by, "count"))
        kind = 0;
    else if (!strcmp(by, "norm"))
        kind = 1;
    else if (!strcmp(by, "age"))
        kind = 2;
    else
        return errbuf_set(eb, ERR_INVAL, "top --by %s: use count, norm or age", by);
    best = calloc((size_t)n, sizeof(*best));
    it = store_iter_new(st, &pfx, 1);
    if (!best || !it) {
        free(best);
        store_iter_destroy(st, &it);
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    while ((rc = next_row(st, it, &r, eb)) == 1) {
        if (!want_slot(ms, slot, r.slot))
            continue;
        double nm = norm_of(&r, slot_dim(ms, r.slot));
        emb_tool_ranked_t c = {kind == 0   ? (double)r.meta.updates
                               : kind == 1 ? nm
                                           : -(double)r.meta.last_day,
                               r.slot,
                               r.key,
                               r.meta.updates,
                               r.meta.last_day,
                               nm};
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
    qsort(best, (size_t)have, sizeof(*best), cmp_ranked);
    top->rows = best;
    top->n = have;
    return 0;
}

void emb_tool_top_release(emb_tool_top_t *top)
{
    free(top->rows);
    top->rows = NULL;
    top->n = 0;
}

void emb_tool_print_top(const model_spec_t *ms, const keydict_t *keys, const emb_tool_top_t *top,
                        int json, FILE *out)
{
    if (!json)
        fprintf(out, "%-16s %-18s %10s %9s %10s\n", "slot", keys ? "value" : "key", "updates",
                "last_day", "norm");
    for (long i = 0; i < top->n; i++) {
        const emb_tool_ranked_t *b = &top->rows[i];
        if (json) {
            json_t j;
            json_init(&j, out);
            json_object_begin(&j);
            json_kv_str(&j, "slot", slot_name(ms, b->slot));
            json_key(&j, "key");
            json_hex64(&j, b->key);
            if (keys)
                json_kv_str(&j, "value", keydict_find(keys, b->slot, b->key));
            json_kv_u64(&j, "updates", b->updates);
            json_kv_i64(&j, "last_day", b->last_day);
            json_kv_num(&j, "norm", b->norm, 6);
            json_object_end(&j);
            json_end_line(&j);
        } else {
            char hex[20];
            const char *value = keydict_find(keys, b->slot, b->key);
            snprintf(hex, sizeof(hex), "%s%016" PRIx64, keys ? "#" : "", b->key);
            fprintf(out, "%-16s %-18s %10u %9d %10.4f\n", slot_name(ms, b->slot),
                    value ? value : hex, b->updates, b->last_day, b->norm);
        }
    }
}

static int cmd_top(const model_spec_t *ms, const keydict_t *keys, const emb_tool_args_t *a,
                   store_t *st, FILE *out, errbuf_t *eb)
{
    emb_tool_top_t top;
    int rc = emb_tool_top(ms, st, a->slot, a->by, a->n, &top, eb);

    if (rc == 0)
        emb_tool_print_top(ms, keys, &top, a->json, out);
    emb_tool_top_release(&top);
    return rc;
}

/* Every row, as it is read: nothing to compute. */
static int cmd_dump(const model_spec_t *ms, const keydict_t *keys, const emb_tool_args_t *a,
                    store_t *st, FILE *out, errbuf_t *eb)
{
    const char pfx = 'r';
    store_iter_t *it = store_iter_new(st, &pfx, 1);
    row_t r;
    int rc;

    if (!it)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    if (!a->json)
        fprintf(out, "slot\tkey\tupdates\tfirst_day\tlast_day\tembedding%s\n",
                keys ? "\tvalue" : "");
    while ((rc = next_row(st, it, &r, eb)) == 1) {
        if (!want_slot(ms, a->slot, r.slot))
            continue;
        if (a->json) {
            print_row(ms, keys, &r, 1, out);
            continue;
        }
        int dim = slot_dim(ms, r.slot);
        if (dim <= 0 || (uint32_t)dim > r.nf)
            dim = (int)r.nf;
        fprintf(out, "%s\t%016" PRIx64 "\t%u\t%d\t%d\t", slot_name(ms, r.slot), r.key,
                r.meta.updates, r.meta.first_day, r.meta.last_day);
        for (int d = 0; d < dim; d++)
            fprintf(out, "%s%.6g", d ? "," : "", fget(r.floats, (size_t)d));
        if (keys) {
            const char *value = keydict_find(keys, r.slot, r.key);
            fprintf(out, "\t%s", value ? value : "");
        }
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

/* The distribution of one slot's changes (sorts them). */
static void summarize(dvec_t *c, emb_tool_diff_slot_t *o)
{
    o->changed = c->n;
    if (!c->n)
        return;
    qsort(c->v, c->n, sizeof(double), cmp_double);
    o->l2_p50 = c->v[c->n / 2];
    o->l2_p90 = c->v[(size_t)((double)(c->n - 1) * 0.9)];
    o->l2_max = c->v[c->n - 1];
    for (size_t i = 0; i < c->n; i++)
        o->l2_mean += c->v[i];
    o->l2_mean /= (double)c->n;
}

int emb_tool_diff(const model_spec_t *ms, store_t *sa, store_t *sb, emb_tool_diff_t *d,
                  errbuf_t *eb)
{
    dvec_t changed[MODEL_MAX_SLOTS];
    store_iter_t *ia = NULL, *ib = NULL;
    const char pfx = 'r';
    row_t ra, rb;
    int ha, hb, rc = 0;

    memset(d, 0, sizeof(*d));
    memset(changed, 0, sizeof(changed));
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
                                   : (ra.key < rb.key   ? -1
                                      : ra.key > rb.key ? 1
                                                        : 0);
        if (c < 0) {
            if (ra.slot < MODEL_MAX_SLOTS)
                d->slot[ra.slot].removed++;
            ha = next_row(sa, ia, &ra, eb);
        } else if (c > 0) {
            if (rb.slot < MODEL_MAX_SLOTS)
                d->slot[rb.slot].added++;
            hb = next_row(sb, ib, &rb, eb);
        } else {
            int dim = slot_dim(ms, ra.slot);
            double d2 = 0;
            if (dim <= 0 || (uint32_t)dim > ra.nf || (uint32_t)dim > rb.nf)
                dim = (int)(ra.nf < rb.nf ? ra.nf : rb.nf);
            for (int k = 0; k < dim; k++) {
                double x = (double)fget(ra.floats, (size_t)k) - fget(rb.floats, (size_t)k);
                d2 += x * x;
            }
            if (d2 > 0 || ra.meta.updates != rb.meta.updates) {
                if (ra.slot < MODEL_MAX_SLOTS && dpush(&changed[ra.slot], sqrt(d2)) != 0) {
                    rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
                    goto out;
                }
            } else if (ra.slot < MODEL_MAX_SLOTS) {
                d->slot[ra.slot].unchanged++;
            }
            ha = next_row(sa, ia, &ra, eb);
            hb = next_row(sb, ib, &rb, eb);
        }
        if (ha < 0 || hb < 0) {
            rc = ha < 0 ? ha : hb;
            goto out;
        }
    }
    for (int s = 0; s < MODEL_MAX_SLOTS; s++)
        summarize(&changed[s], &d->slot[s]);
out:
    for (int s = 0; s < MODEL_MAX_SLOTS; s++)
        free(changed[s].v);
    store_iter_destroy(sa, &ia);
    store_iter_destroy(sb, &ib);
    return rc;
}

void emb_tool_print_diff(const model_spec_t *ms, const emb_tool_diff_t *d, int json, FILE *out)
{
    json_t j;

    json_init(&j, out);
    if (!json) {
        fprintf(out, "%-16s %10s %10s %10s %10s %10s %10s %10s %10s\n", "slot", "added", "removed",
                "changed", "unchanged", "l2_p50", "l2_p90", "l2_max", "l2_mean");
    } else {
        json_object_begin(&j);
        json_key(&j, "slots");
        json_object_begin(&j);
    }
    for (int s = 0; s < MODEL_MAX_SLOTS; s++) {
        const emb_tool_diff_slot_t *o = &d->slot[s];
        if (!o->added && !o->removed && !o->changed && !o->unchanged)
            continue;
        if (json) {
            json_key(&j, slot_name(ms, s));
            json_object_begin(&j);
            json_kv_u64(&j, "added", o->added);
            json_kv_u64(&j, "removed", o->removed);
            json_kv_u64(&j, "changed", o->changed);
            json_kv_u64(&j, "unchanged", o->unchanged);
            json_kv_num(&j, "l2_p50", o->l2_p50, 6);
            json_kv_num(&j, "l2_p90", o->l2_p90, 6);
            json_kv_num(&j, "l2_max", o->l2_max, 6);
            json_kv_num(&j, "l2_mean", o->l2_mean, 6);
            json_object_end(&j);
        } else
            fprintf(out,
                    "%-16s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64
                    " %10.4g %10.4g %10.4g %10.4g\n",
                    slot_name(ms, s), o->added, o->removed, o->changed, o->unchanged, o->l2_p50,
                    o->l2_p90, o->l2_max, o->l2_mean);
    }
    if (json) {
        json_object_end(&j);
        json_object_end(&j);
        json_end_line(&j);
    }
}

static int cmd_diff(const model_spec_t *ms, const emb_tool_args_t *a, store_t *sa, FILE *out,
                    errbuf_t *eb)
{
    emb_tool_diff_t d;
    store_t *sb = NULL;
    int rc;

    if (a->nargs != 1)
        return errbuf_set(eb, ERR_INVAL, "diff: give the second directory");
    rc = emb_tool_open(a->args[0], &sb, eb);
    if (rc == 0)
        rc = emb_tool_diff(ms, sa, sb, &d, eb);
    if (rc == 0)
        emb_tool_print_diff(ms, &d, a->json, out);
    store_close(&sb);
    return rc;
}

/* ---- export, apply, export-dump (emb_export.h) ---- */

static void print_summary(const char *what, const emb_export_stats_t *s, const char *file, int json,
                          FILE *out)
{
    double rate = s->seconds > 0 ? (double)s->scanned / s->seconds : 0;

    if (json) {
        json_t j;
        json_init(&j, out);
        json_object_begin(&j);
        json_kv_str(&j, what, file);
        json_kv_u64(&j, "records", s->records);
        json_kv_u64(&j, "puts", s->puts);
        json_kv_u64(&j, "deletes", s->deletes);
        json_kv_u64(&j, "bytes", s->bytes);
        json_kv_u64(&j, "read", s->scanned);
        json_kv_num(&j, "seconds", s->seconds, 6);
        json_kv_u64(&j, "rows_per_s", (uint64_t)(rate + 0.5));
        json_object_end(&j);
        json_end_line(&j);
        return;
    }
    fprintf(out,
            "%s %s: %" PRIu64 " records (%" PRIu64 " puts, %" PRIu64 " deletes), %" PRIu64
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
        return errbuf_set(eb, ERR_INVAL,
                          "export: unexpected '%s' (the previous checkpoint goes "
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
    keydict_t *keys = NULL;
    store_t *st = NULL;
    int rc;

    if (!strcmp(a->cmd, "export"))
        return cmd_export(ms, a, out, eb);
    if (!strcmp(a->cmd, "apply"))
        return cmd_apply(a, out, eb);
    if (!strcmp(a->cmd, "export-dump"))
        return a->nargs ? errbuf_set(eb, ERR_INVAL, "export-dump: give one export file")
                        : emb_export_dump(a->dir, out, eb);
    if (a->keys && (rc = keydict_load(&keys, ms, a->keys, eb)) != 0)
        return rc;
    rc = emb_tool_open(a->dir, &st, eb);
    if (rc != 0) {
        keydict_destroy(&keys);
        return rc;
    }
    if (!strcmp(a->cmd, "stats"))
        rc = cmd_stats(ms, a, st, out, eb);
    else if (!strcmp(a->cmd, "get"))
        rc = cmd_get(ms, keys, a, st, out, eb);
    else if (!strcmp(a->cmd, "top"))
        rc = cmd_top(ms, keys, a, st, out, eb);
    else if (!strcmp(a->cmd, "dump"))
        rc = cmd_dump(ms, keys, a, st, out, eb);
    else if (!strcmp(a->cmd, "diff"))
        rc = cmd_diff(ms, a, st, out, eb);
    else
        rc = errbuf_set(eb, ERR_INVAL,
                        "unknown command '%s' (stats, get, top, dump, diff, "
                        "export, apply, export-dump)",
                        a->cmd);
    store_close(&st);
    keydict_destroy(&keys);
    return rc;
}
