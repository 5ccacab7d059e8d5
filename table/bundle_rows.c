/*
 * bundle_rows.c - a bundle's rows in memory. See bundle_rows.h.
 */
#include "table/bundle_rows.h"

#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "table/emb_export.h"

typedef struct rows_slot {
    int dim;
    size_t n, cap;   /* rows held, rows allocated */
    uint64_t *keys;  /* n, increasing */
    float *rows;     /* n * dim */
    uint32_t *index; /* icap entries: row + 1, 0 empty */
    size_t icap;     /* power of two >= 2n */
} rows_slot_t;

struct bundle_rows {
    int day;
    int nslots;
    emb_export_header_t h; /* the slot table */
    rows_slot_t slot[MODEL_MAX_SLOTS];
};

static void free_rows(bundle_rows_t *r)
{
    for (int s = 0; s < MODEL_MAX_SLOTS; s++) {
        free(r->slot[s].keys);
        free(r->slot[s].rows);
        free(r->slot[s].index);
    }
    free(r);
}

void bundle_rows_destroy(bundle_rows_t **r)
{
    if (r && *r) {
        free_rows(*r);
        *r = NULL;
    }
}

/* Append a row (keys come in order). */
static int push_row(rows_slot_t *s, uint64_t key, const void *emb_le, const float *emb)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        uint64_t *k = realloc(s->keys, cap * sizeof(*k));
        if (!k)
            return ERR_NOMEM;
        s->keys = k;
        float *w = realloc(s->rows, cap * (size_t)s->dim * sizeof(float));
        if (!w)
            return ERR_NOMEM;
        s->rows = w;
        s->cap = cap;
    }
    float *dst = s->rows + s->n * (size_t)s->dim;
    if (emb)
        memcpy(dst, emb, (size_t)s->dim * sizeof(float));
    else
        for (int d = 0; d < s->dim; d++)
            dst[d] = emb_export_float(emb_le, (size_t)d);
    s->keys[s->n++] = key;
    return 0;
}

static int build_index(rows_slot_t *s)
{
    size_t cap = 16;
    while (cap < 2 * s->n)
        cap *= 2;
    s->index = calloc(cap, sizeof(uint32_t));
    if (!s->index)
        return ERR_NOMEM;
    s->icap = cap;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = rng_mix64(s->keys[i]) & (cap - 1);
        while (s->index[j])
            j = (j + 1) & (cap - 1);
        s->index[j] = (uint32_t)(i + 1);
    }
    return 0;
}

const float *bundle_rows_find(const bundle_rows_t *r, int slot, uint64_t key)
{
    const rows_slot_t *s = &r->slot[slot];
    if (!s->n)
        return NULL;
    for (size_t j = rng_mix64(key) & (s->icap - 1);; j = (j + 1) & (s->icap - 1)) {
        uint32_t v = s->index[j];
        if (!v)
            return NULL;
        if (s->keys[v - 1] == key)
            return s->rows + (size_t)(v - 1) * (size_t)s->dim;
    }
}

static bundle_rows_t *new_rows(const emb_export_header_t *h)
{
    bundle_rows_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->h = *h;
    r->day = h->day;
    r->nslots = h->nslots;
    for (int s = 0; s < h->nslots; s++)
        r->slot[s].dim = h->dim[s];
    return r;
}

static int finish(bundle_rows_t *r, errbuf_t *eb)
{
    for (int s = 0; s < r->nslots; s++)
        if (build_index(&r->slot[s]) != 0)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
    for (int s = 0; s < r->nslots; s++)
        if (r->slot[s].n > UINT32_MAX - 1)
            return errbuf_set(eb, ERR_TOOBIG, "slot %s: more than 2^32 rows", r->h.slot[s]);
    return 0;
}

int bundle_rows_load(bundle_rows_t **out, const char *path, const model_spec_t *ms, errbuf_t *eb)
{
    emb_export_reader_t *rd = NULL;
    const emb_export_header_t *h;
    emb_export_rec_t rec;
    bundle_rows_t *r = NULL;
    int rc;

    *out = NULL;
    rc = emb_export_reader_open(&rd, path, eb);
    if (rc != 0)
        return rc;
    h = emb_export_reader_header(rd);
    if (h->kind != EMB_EXPORT_FULL) {
        rc = errbuf_set(eb, ERR_MISMATCH, "%s: a delta export, not a full one", path);
        goto out;
    }
    if (ms && ms->nslots != h->nslots) {
        rc = errbuf_set(eb, ERR_MISMATCH, "%s: %d slots, the model has %d", path, h->nslots,
                        ms->nslots);
        goto out;
    }
    for (int s = 0; ms && s < ms->nslots; s++)
        if (strcmp(ms->slot[s].name, h->slot[s]) != 0 || ms->slot[s].dim != h->dim[s]) {
            rc = errbuf_set(eb, ERR_MISMATCH, "%s: slot %d is %s of dim %d, the model's %s of %d",
                            path, s, h->slot[s], h->dim[s], ms->slot[s].name, ms->slot[s].dim);
            goto out;
        }
    r = new_rows(h);
    if (!r) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    while ((rc = emb_export_reader_next(rd, &rec, eb)) == 1)
        if (push_row(&r->slot[rec.slot], rec.key, rec.emb, NULL) != 0) {
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
            break;
        }
    if (rc == 0)
        rc = finish(r, eb);
out:
    emb_export_reader_destroy(&rd);
    if (rc == 0)
        *out = r;
    else if (r)
        free_rows(r);
    return rc;
}

/* Copy base slot s's rows with keys below `below` (all if below_all) from
 * *i on into the new slot. */
static int copy_until(rows_slot_t *dst, const rows_slot_t *src, size_t *i, uint64_t below, int all)
{
    while (*i < src->n && (all || src->keys[*i] < below)) {
        if (push_row(dst, src->keys[*i], NULL, src->rows + *i * (size_t)src->dim) != 0)
            return ERR_NOMEM;
        (*i)++;
    }
    return 0;
}

int bundle_rows_apply(bundle_rows_t **out, const bundle_rows_t *base, const char *path,
                      errbuf_t *eb)
{
    emb_export_reader_t *rd = NULL;
    const emb_export_header_t *h;
    emb_export_rec_t rec;
    bundle_rows_t *r = NULL;
    size_t at[MODEL_MAX_SLOTS] = {0};
    int rc, cur = 0;

    *out = NULL;
    rc = emb_export_reader_open(&rd, path, eb);
    if (rc != 0)
        return rc;
    h = emb_export_reader_header(rd);
    if (h->kind != EMB_EXPORT_DELTA || h->base_day != base->day) {
        rc =
            errbuf_set(eb, ERR_MISMATCH, "%s: %s of day %d on day %d; the rows served are day %d's",
                       path, h->kind == EMB_EXPORT_DELTA ? "a delta" : "a full export", h->day,
                       h->base_day, base->day);
        goto out;
    }
    if (h->nslots != base->nslots) {
        rc = errbuf_set(eb, ERR_MISMATCH, "%s: %d slots, the rows served have %d", path, h->nslots,
                        base->nslots);
        goto out;
    }
    for (int s = 0; s < h->nslots; s++)
        if (strcmp(h->slot[s], base->h.slot[s]) != 0 || h->dim[s] != base->h.dim[s]) {
            rc = errbuf_set(eb, ERR_MISMATCH, "%s: slot %d is %s of dim %d, served: %s of %d", path,
                            s, h->slot[s], h->dim[s], base->h.slot[s], base->h.dim[s]);
            goto out;
        }
    r = new_rows(h);
    if (!r) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    while ((rc = emb_export_reader_next(rd, &rec, eb)) == 1) {
        const rows_slot_t *bs;
        rows_slot_t *ds;
        for (; cur < rec.slot; cur++) /* slots before this record's: the rest of base */
            if (copy_until(&r->slot[cur], &base->slot[cur], &at[cur], 0, 1) != 0)
                goto nomem;
        bs = &base->slot[rec.slot];
        ds = &r->slot[rec.slot];
        if (copy_until(ds, bs, &at[rec.slot], rec.key, 0) != 0)
            goto nomem;
        int have = at[rec.slot] < bs->n && bs->keys[at[rec.slot]] == rec.key;
        if (rec.op == EMB_EXPORT_DELETE && !have) {
            rc = errbuf_set(eb, ERR_MISMATCH,
                            "%s: deletes key %016llx of slot %s, which the rows served lack", path,
                            (unsigned long long)rec.key, h->slot[rec.slot]);
            break;
        }
        if (have)
            at[rec.slot]++;
        if (rec.op == EMB_EXPORT_PUT && push_row(ds, rec.key, rec.emb, NULL) != 0)
            goto nomem;
    }
    for (; rc == 0 && cur < r->nslots; cur++)
        if (copy_until(&r->slot[cur], &base->slot[cur], &at[cur], 0, 1) != 0)
            goto nomem;
    if (rc == 0)
        rc = finish(r, eb);
    goto out;
nomem:
    rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
out:
    emb_export_reader_destroy(&rd);
    if (rc == 0)
        *out = r;
    else if (r)
        free_rows(r);
    return rc;
}

int bundle_rows_day(const bundle_rows_t *r)
{
    return r->day;
}

uint64_t bundle_rows_count(const bundle_rows_t *r)
{
    uint64_t n = 0;
    for (int s = 0; s < r->nslots; s++)
        n += r->slot[s].n;
    return n;
}

uint64_t bundle_rows_bytes(const bundle_rows_t *r)
{
    uint64_t b = sizeof(*r);
    for (int s = 0; s < r->nslots; s++)
        b += r->slot[s].cap * (8 + (uint64_t)r->slot[s].dim * 4) + r->slot[s].icap * 4;
    return b;
}
