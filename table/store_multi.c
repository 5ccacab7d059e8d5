/*
 * store_multi.c - several stores seen as one (store.h): the shards of a
 * checkpoint, for the inspection tool. Every key lives in exactly one part
 * (routing), so a read asks every part; iteration merges the parts' sorted
 * iterations into one byte-ordered stream. Read-only: writes and
 * checkpoints are refused. The parts are owned and closed with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/store.h"

typedef struct multi {
    store_t base;
    store_t **part;
    int n;
} multi_t;

typedef struct sub {
    store_iter_t *it;
    const void *k, *v;
    size_t kl, vl;
    int valid;
} sub_t;

struct store_iter {
    multi_t *m;
    sub_t *sub;
    int last; /* part returned last time, to advance first; -1 at start */
};

static int multi_multiget(store_t *s, size_t n, const void *const *keys, const size_t *klens,
                          void **vals, size_t *vlens, errbuf_t *eb)
{
    multi_t *m = (multi_t *)s;
    void **tmp = calloc(n ? n : 1, sizeof(void *));
    size_t *tl = calloc(n ? n : 1, sizeof(size_t));
    int rc = 0;

    if (!tmp || !tl) {
        free(tmp);
        free(tl);
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    memset(vals, 0, n * sizeof(void *));
    memset(vlens, 0, n * sizeof(size_t));
    for (int p = 0; p < m->n && rc == 0; p++) {
        rc = store_multiget(m->part[p], n, keys, klens, tmp, tl, eb);
        for (size_t i = 0; i < n; i++) {
            if (rc == 0 && tmp[i] && !vals[i]) {
                vals[i] = tmp[i];
                vlens[i] = tl[i];
            } else {
                free(tmp[i]);
            }
            tmp[i] = NULL;
        }
    }
    free(tmp);
    free(tl);
    return rc;
}

static int multi_write(store_t *s, const store_op_t *ops, size_t n, int sync, errbuf_t *eb)
{
    (void)ops;
    (void)n;
    (void)sync;
    return errbuf_set(eb, ERR_INVAL, "%s: read-only view of several shards", s->name);
}

static void advance(multi_t *m, sub_t *u, int p)
{
    u->valid = store_iter_next(m->part[p], u->it, &u->k, &u->kl, &u->v, &u->vl);
}

static store_iter_t *multi_iter_new(store_t *s, const void *prefix, size_t plen)
{
    multi_t *m = (multi_t *)s;
    store_iter_t *it = calloc(1, sizeof(*it));

    if (!it)
        return NULL;
    it->m = m;
    it->last = -1;
    it->sub = calloc((size_t)m->n, sizeof(sub_t));
    if (!it->sub) {
        free(it);
        return NULL;
    }
    for (int p = 0; p < m->n; p++) {
        it->sub[p].it = store_iter_new(m->part[p], prefix, plen);
        if (it->sub[p].it)
            advance(m, &it->sub[p], p);
    }
    return it;
}

static int keycmp(const sub_t *a, const sub_t *b)
{
    int c = memcmp(a->k, b->k, a->kl < b->kl ? a->kl : b->kl);
    return c ? c : (a->kl > b->kl) - (a->kl < b->kl);
}

static int multi_iter_next(store_iter_t *it, const void **k, size_t *klen, const void **v,
                           size_t *vlen)
{
    multi_t *m = it->m;
    int best = -1;

    if (it->last >= 0 && it->sub[it->last].it)
        advance(m, &it->sub[it->last], it->last);
    for (int p = 0; p < m->n; p++)
        if (it->sub[p].it && it->sub[p].valid &&
            (best < 0 || keycmp(&it->sub[p], &it->sub[best]) < 0))
            best = p;
    it->last = best;
    if (best < 0)
        return 0;
    *k = it->sub[best].k;
    *klen = it->sub[best].kl;
    *v = it->sub[best].v;
    *vlen = it->sub[best].vl;
    return 1;
}

static void multi_iter_destroy(store_iter_t *it)
{
    for (int p = 0; p < it->m->n; p++)
        store_iter_destroy(it->m->part[p], &it->sub[p].it);
    free(it->sub);
    free(it);
}

static int multi_checkpoint(store_t *s, const char *dir, errbuf_t *eb)
{
    return errbuf_set(eb, ERR_INVAL, "%s: cannot checkpoint a view into %s", s->name, dir);
}

static void multi_close(store_t *s)
{
    multi_t *m = (multi_t *)s;
    for (int p = 0; p < m->n; p++)
        store_close(&m->part[p]);
    free(m->part);
    free(m);
}

static int multi_iter_error(store_iter_t *it, errbuf_t *eb)
{
    for (int p = 0; p < it->m->n; p++)
        if (it->sub[p].it) {
            int rc = it->m->part[p]->ops->iter_error(it->sub[p].it, eb);
            if (rc != 0)
                return rc;
        }
    return 0;
}

static const store_ops_t multi_ops = {
    .multiget = multi_multiget,
    .write = multi_write,
    .iter_new = multi_iter_new,
    .iter_next = multi_iter_next,
    .iter_error = multi_iter_error,
    .iter_destroy = multi_iter_destroy,
    .checkpoint = multi_checkpoint,
    .close = multi_close,
};

int store_multi_open(store_t **out, store_t **parts, int n, const char *name, errbuf_t *eb)
{
    multi_t *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (!m || !(m->part = calloc((size_t)(n > 0 ? n : 1), sizeof(store_t *)))) {
        free(m);
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    m->base.ops = &multi_ops;
    snprintf(m->base.name, sizeof(m->base.name), "%s", name);
    memcpy(m->part, parts, (size_t)n * sizeof(store_t *));
    m->n = n;
    *out = &m->base;
    return 0;
}
