/*
 * batch.c - CSR batches of impressions. See batch.h.
 *
 * While a row is open (between begin and end) its tokens are appended to
 * each slot's arrays; off[n] is the start of the open row and off[n + 1] is
 * written at batch_row_end(), so an open row never changes closed rows.
 */
#include "common/batch.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static int grow_rows(batch_t *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 64;
    uint8_t *c, *a, *y;
    float *w;
    uint64_t *q;

    while (cap < need)
        cap *= 2;
    if (cap == b->cap)
        return 0;
    c = realloc(b->click, cap);
    if (!c)
        return ERR_NOMEM;
    b->click = c;
    a = realloc(b->action, cap);
    if (!a)
        return ERR_NOMEM;
    b->action = a;
    y = realloc(b->buy, cap);
    if (!y)
        return ERR_NOMEM;
    b->buy = y;
    w = realloc(b->weight, cap * sizeof(*w));
    if (!w)
        return ERR_NOMEM;
    b->weight = w;
    q = realloc(b->req, cap * sizeof(*q));
    if (!q)
        return ERR_NOMEM;
    b->req = q;
    for (int s = 0; s < b->nslots; s++) {
        uint32_t *off = realloc(b->slot[s].off, (cap + 1) * sizeof(*off));
        if (!off)
            return ERR_NOMEM;
        b->slot[s].off = off;
    }
    b->cap = cap;
    return 0;
}

int batch_init(batch_t *b, int nslots, size_t cap)
{
    memset(b, 0, sizeof(*b));
    b->nslots = nslots;
    b->slot = calloc((size_t)(nslots > 0 ? nslots : 1), sizeof(*b->slot));
    if (!b->slot)
        return ERR_NOMEM;
    if (grow_rows(b, cap ? cap : 1) != 0) {
        batch_release(b);
        return ERR_NOMEM;
    }
    batch_clear(b);
    return 0;
}

void batch_release(batch_t *b)
{
    if (!b)
        return;
    for (int s = 0; b->slot && s < b->nslots; s++) {
        free(b->slot[s].off);
        free(b->slot[s].keys);
        free(b->slot[s].weights);
    }
    free(b->slot);
    free(b->click);
    free(b->action);
    free(b->buy);
    free(b->weight);
    free(b->req);
    memset(b, 0, sizeof(*b));
}

void batch_clear(batch_t *b)
{
    b->n = 0;
    for (int s = 0; s < b->nslots; s++) {
        b->slot[s].nnz = 0;
        b->slot[s].off[0] = 0;
    }
}

int batch_row_begin(batch_t *b, int click, int action, int buy)
{
    if (b->n + 1 > b->cap && grow_rows(b, b->n + 1) != 0)
        return ERR_NOMEM;
    b->click[b->n] = (uint8_t)click;
    b->action[b->n] = (uint8_t)action;
    b->buy[b->n] = (uint8_t)buy;
    b->weight[b->n] = 1.0f;
    b->req[b->n] = 0;
    return 0;
}

void batch_row_meta(batch_t *b, float weight, uint64_t req)
{
    b->weight[b->n] = weight;
    b->req[b->n] = req;
}

int batch_row_add(batch_t *b, int s, uint64_t key, float weight)
{
    batch_slot_t *bs = &b->slot[s];

    if (bs->nnz == bs->cap) {
        size_t cap = bs->cap ? bs->cap * 2 : 256;
        uint64_t *k = realloc(bs->keys, cap * sizeof(*k));
        if (!k)
            return ERR_NOMEM;
        bs->keys = k;
        float *w = realloc(bs->weights, cap * sizeof(*w));
        if (!w)
            return ERR_NOMEM;
        bs->weights = w;
        bs->cap = cap;
    }
    bs->keys[bs->nnz] = key;
    bs->weights[bs->nnz] = weight;
    bs->nnz++;
    return 0;
}

void batch_row_end(batch_t *b)
{
    for (int s = 0; s < b->nslots; s++)
        b->slot[s].off[b->n + 1] = (uint32_t)b->slot[s].nnz;
    b->n++;
}

void batch_row_cancel(batch_t *b)
{
    for (int s = 0; s < b->nslots; s++)
        b->slot[s].nnz = b->slot[s].off[b->n];
}

int batch_append_rows(batch_t *dst, const batch_t *src, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        if (batch_row_begin(dst, src->click[i], src->action[i], src->buy[i]) != 0)
            return ERR_NOMEM;
        batch_row_meta(dst, src->weight[i], src->req[i]);
        for (int s = 0; s < src->nslots; s++) {
            const batch_slot_t *ss = &src->slot[s];
            for (uint32_t k = ss->off[i]; k < ss->off[i + 1]; k++)
                if (batch_row_add(dst, s, ss->keys[k], ss->weights[k]) != 0) {
                    batch_row_cancel(dst);
                    return ERR_NOMEM;
                }
        }
        batch_row_end(dst);
    }
    return 0;
}

void batch_row_weights(const batch_t *b, const float label_w[3], float *out)
{
    for (size_t i = 0; i < b->n; i++) {
        float lw = 0.0f;
        int any = 0;

        if (b->click[i]) {
            lw = label_w[0];
            any = 1;
        }
        if (b->action[i] && (!any || label_w[1] > lw)) {
            lw = label_w[1];
            any = 1;
        }
        if (b->buy[i] && (!any || label_w[2] > lw)) {
            lw = label_w[2];
            any = 1;
        }
        out[i] = b->weight[i] * (any ? lw : 1.0f);
    }
}
