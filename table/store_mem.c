/*
 * store_mem.c - an in-memory store.h for tests: a sorted array of
 * (key, value) byte strings. Inserts are O(n); tests hold thousands of
 * records, not millions. Checkpoints are not supported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/store.h"

typedef struct rec {
    unsigned char *k, *v;
    size_t klen, vlen;
} rec_t;

typedef struct mem {
    store_t base;
    rec_t *r;
    size_t n, cap;
} mem_t;

struct store_iter {
    mem_t *m;
    size_t i;
    unsigned char *prefix;
    size_t plen;
};

static int cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* First index with key >= k. */
static size_t lower(const mem_t *m, const void *k, size_t kl)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cmp(m->r[mid].k, m->r[mid].klen, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int mem_multiget(store_t *s, size_t n, const void *const *keys, const size_t *klens,
                        void **vals, size_t *vlens, errbuf_t *eb)
{
    mem_t *m = (mem_t *)s;

    for (size_t i = 0; i < n; i++) {
        size_t j = lower(m, keys[i], klens[i]);
        vals[i] = NULL;
        vlens[i] = 0;
        if (j < m->n && cmp(m->r[j].k, m->r[j].klen, keys[i], klens[i]) == 0) {
            vals[i] = malloc(m->r[j].vlen ? m->r[j].vlen : 1);
            if (!vals[i])
                return errbuf_set(eb, ERR_NOMEM, "out of memory");
            memcpy(vals[i], m->r[j].v, m->r[j].vlen);
            vlens[i] = m->r[j].vlen;
        }
    }
    return 0;
}

static int put_one(mem_t *m, const store_op_t *op)
{
    size_t j = lower(m, op->k, op->klen);
    int found = j < m->n && cmp(m->r[j].k, m->r[j].klen, op->k, op->klen) == 0;

    if (!op->v) {
        if (found) {
            free(m->r[j].k);
            free(m->r[j].v);
            memmove(&m->r[j], &m->r[j + 1], (m->n - j - 1) * sizeof(rec_t));
            m->n--;
        }
        return 0;
    }
    unsigned char *v = malloc(op->vlen ? op->vlen : 1);
    if (!v)
        return ERR_NOMEM;
    memcpy(v, op->v, op->vlen);
    if (found) {
        free(m->r[j].v);
        m->r[j].v = v;
        m->r[j].vlen = op->vlen;
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        rec_t *r = realloc(m->r, cap * sizeof(*r));
        if (!r) {
            free(v);
            return ERR_NOMEM;
        }
        m->r = r;
        m->cap = cap;
    }
    unsigned char *k = malloc(op->klen ? op->klen : 1);
    if (!k) {
        free(v);
        return ERR_NOMEM;
    }
    memcpy(k, op->k, op->klen);
    memmove(&m->r[j + 1], &m->r[j], (m->n - j) * sizeof(rec_t));
    m->r[j] = (rec_t){k, v, op->klen, op->vlen};
    m->n++;
    return 0;
}

static int mem_write(store_t *s, const store_op_t *ops, size_t n, int sync, errbuf_t *eb)
{
    (void)sync;
    for (size_t i = 0; i < n; i++)
        if (put_one((mem_t *)s, &ops[i]) != 0)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
    return 0;
}

static store_iter_t *mem_iter_new(store_t *s, const void *prefix, size_t plen)
{
    store_iter_t *it = calloc(1, sizeof(*it));

    if (!it)
        return NULL;
    it->m = (mem_t *)s;
    it->prefix = malloc(plen ? plen : 1);
    if (!it->prefix) {
        free(it);
        return NULL;
    }
    if (plen)
        memcpy(it->prefix, prefix, plen);
    it->plen = plen;
    it->i = lower(it->m, it->prefix, plen);
    return it;
}

static int mem_iter_next(store_iter_t *it, const void **k, size_t *klen, const void **v,
                         size_t *vlen)
{
    if (it->i >= it->m->n)
        return 0;
    rec_t *r = &it->m->r[it->i];
    if (r->klen < it->plen || memcmp(r->k, it->prefix, it->plen) != 0)
        return 0;
    *k = r->k;
    *klen = r->klen;
    *v = r->v;
    *vlen = r->vlen;
    it->i++;
    return 1;
}

static int mem_iter_error(store_iter_t *it, errbuf_t *eb)
{
    (void)it;
    (void)eb;
    return 0;
}

static void mem_iter_destroy(store_iter_t *it)
{
    free(it->prefix);
    free(it);
}

static int mem_checkpoint(store_t *s, const char *dir, errbuf_t *eb)
{
    (void)s;
    return errbuf_set(eb, ERR_NOTFOUND, "in-memory store: no checkpoint to %s", dir);
}

static void mem_close(store_t *s)
{
    mem_t *m = (mem_t *)s;
    for (size_t i = 0; i < m->n; i++) {
        free(m->r[i].k);
        free(m->r[i].v);
    }
    free(m->r);
    free(m);
}

static const store_ops_t mem_ops = {
    .multiget = mem_multiget,
    .write = mem_write,
    .iter_new = mem_iter_new,
    .iter_next = mem_iter_next,
    .iter_error = mem_iter_error,
    .iter_destroy = mem_iter_destroy,
    .checkpoint = mem_checkpoint,
    .close = mem_close,
};

int store_mem_open(store_t **out, errbuf_t *eb)
{
    mem_t *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (!m)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    m->base.ops = &mem_ops;
    snprintf(m->base.name, sizeof(m->base.name), "memory store");
    *out = &m->base;
    return 0;
}
