/*
 * pool.c - unique keys, sum pooling and its backward pass. See pool.h.
 */
#include "worker/pool.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static inline uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    return k;
}

int pool_init(pool_t *p, const model_spec_t *ms)
{
    int col = 0;

    memset(p, 0, sizeof(*p));
    p->ms = ms;
    p->req.nslots = ms->nslots;
    for (int s = 0; s < ms->nslots; s++) {
        p->col[s] = col;
        col += ms->slot[s].dim;
    }
    return 0;
}

void pool_release(pool_t *p)
{
    for (int s = 0; s < MODEL_MAX_SLOTS; s++) {
        pool_slot_t *ps = &p->slot[s];
        free(ps->ukeys);
        free(ps->tok);
        free(ps->rows);
        free(ps->grads);
        free(ps->hkeys);
        free(ps->hval);
        free(ps->hgen);
    }
    memset(p, 0, sizeof(*p));
}

static int grow(void **ptr, size_t n, size_t size)
{
    void *q = realloc(*ptr, n * size);
    if (!q)
        return ERR_NOMEM;
    *ptr = q;
    return 0;
}

/* Make room for nnz tokens (hence at most nnz unique keys) in slot s. */
static int reserve(pool_t *p, int s, size_t nnz)
{
    pool_slot_t *ps = &p->slot[s];
    size_t dim = (size_t)p->ms->slot[s].dim;

    if (nnz > ps->cap_t) {
        size_t cap = ps->cap_t ? ps->cap_t : 1024;
        while (cap < nnz)
            cap *= 2;
        if (grow((void **)&ps->tok, cap, sizeof(*ps->tok)) ||
            grow((void **)&ps->ukeys, cap, sizeof(*ps->ukeys)) ||
            grow((void **)&ps->rows, cap * dim, sizeof(float)) ||
            grow((void **)&ps->grads, cap * dim, sizeof(float)))
            return ERR_NOMEM;
        ps->cap_t = ps->cap_u = cap;
    }
    if (ps->hcap < 2 * nnz || ps->hcap == 0) {
        size_t h = ps->hcap ? ps->hcap : 2048;
        while (h < 2 * nnz)
            h *= 2;
        free(ps->hkeys);
        free(ps->hval);
        free(ps->hgen);
        ps->hkeys = malloc(h * sizeof(*ps->hkeys));
        ps->hval = malloc(h * sizeof(*ps->hval));
        ps->hgen = calloc(h, sizeof(*ps->hgen));
        if (!ps->hkeys || !ps->hval || !ps->hgen)
            return ERR_NOMEM;
        ps->hcap = h;
    }
    return 0;
}

int pool_prepare(pool_t *p, const batch_t *b)
{
    if (++p->gen == 0) { /* stamps wrapped: forget every old stamp */
        for (int s = 0; s < p->ms->nslots; s++)
            if (p->slot[s].hgen)
                memset(p->slot[s].hgen, 0, p->slot[s].hcap * sizeof(uint32_t));
        p->gen = 1;
    }
    for (int s = 0; s < p->ms->nslots; s++) {
        const batch_slot_t *bs = &b->slot[s];
        pool_slot_t *ps = &p->slot[s];
        uint32_t gen = p->gen;
        int rc = reserve(p, s, bs->nnz ? bs->nnz : 1);

        if (rc != 0)
            return rc;
        size_t mask = ps->hcap - 1, nu = 0;
        for (size_t t = 0; t < bs->nnz; t++) {
            uint64_t k = bs->keys[t];
            size_t h = mix(k) & mask;
            while (ps->hgen[h] == gen && ps->hkeys[h] != k)
                h = (h + 1) & mask;
            if (ps->hgen[h] != gen) {
                ps->hgen[h] = gen;
                ps->hkeys[h] = k;
                ps->hval[h] = (uint32_t)nu;
                ps->ukeys[nu++] = k;
            }
            ps->tok[t] = ps->hval[h];
        }
        ps->nu = nu;
        p->req.keys[s] = ps->ukeys;
        p->req.n[s] = nu;
        p->rows[s] = ps->rows;
        p->grads[s] = ps->grads;
    }
    return 0;
}

void pool_forward(const pool_t *p, const batch_t *b, float *x)
{
    size_t D = (size_t)p->ms->input_dim;

    memset(x, 0, b->n * D * sizeof(float));
    for (int s = 0; s < p->ms->nslots; s++) {
        const batch_slot_t *bs = &b->slot[s];
        const pool_slot_t *ps = &p->slot[s];
        size_t dim = (size_t)p->ms->slot[s].dim;

        for (size_t i = 0; i < b->n; i++) {
            float *xi = x + i * D + p->col[s];
            for (uint32_t t = bs->off[i]; t < bs->off[i + 1]; t++) {
                const float *row = ps->rows + (size_t)ps->tok[t] * dim;
                float w = bs->weights[t];
                for (size_t d = 0; d < dim; d++)
                    xi[d] += w * row[d];
            }
        }
    }
}

void pool_backward(pool_t *p, const batch_t *b, const float *dx)
{
    size_t D = (size_t)p->ms->input_dim;

    for (int s = 0; s < p->ms->nslots; s++) {
        const batch_slot_t *bs = &b->slot[s];
        pool_slot_t *ps = &p->slot[s];
        size_t dim = (size_t)p->ms->slot[s].dim;

        memset(ps->grads, 0, ps->nu * dim * sizeof(float));
        for (size_t i = 0; i < b->n; i++) {
            const float *gi = dx + i * D + p->col[s];
            for (uint32_t t = bs->off[i]; t < bs->off[i + 1]; t++) {
                float *g = ps->grads + (size_t)ps->tok[t] * dim;
                float w = bs->weights[t];
                for (size_t d = 0; d < dim; d++)
                    g[d] += w * gi[d];
            }
        }
    }
}
