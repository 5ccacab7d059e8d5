/*
 * metrics.c - exact AUC, clamped log-loss and calibration. See metrics.h
 * for the definitions and the design of the AUC sweep.
 */
#include "worker/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define RADIX_BITS 11
#define RADIX_SIZE (1u << RADIX_BITS)
#define RADIX_PASSES 3 /* 11 + 11 + 10 bits cover the 32 score bits */

void metrics_ws_init(metrics_ws_t *ws)
{
    memset(ws, 0, sizeof(*ws));
}

void metrics_ws_release(metrics_ws_t *ws)
{
    free(ws->key);
    free(ws->tmp);
    free(ws->scored);
    metrics_ws_init(ws);
}

static int ws_reserve(metrics_ws_t *ws, size_t n)
{
    uint64_t *k, *t;

    if (n <= ws->cap)
        return 0;
    k = malloc(n * sizeof(*k));
    t = malloc(n * sizeof(*t));
    if (!k || !t) {
        free(k);
        free(t);
        return ERR_NOMEM;
    }
    free(ws->key);
    free(ws->tmp);
    ws->key = k;
    ws->tmp = t;
    ws->cap = n;
    return 0;
}

/* The bits of a float as an unsigned number in the float's order; -0 = +0. */
static uint32_t float_order(float f)
{
    uint32_t u;

    if (f == 0.0f)
        f = 0.0f;
    memcpy(&u, &f, sizeof(u));
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/*
 * Stable LSD radix sort of n words by their high 32 bits, ping-ponging
 * between a and t. Returns whichever array holds the result. A pass whose
 * digit is the same for every word is skipped (probabilities share their
 * top bits).
 */
static uint64_t *sort_high(uint64_t *a, uint64_t *t, size_t n)
{
    size_t count[RADIX_PASSES][RADIX_SIZE];

    memset(count, 0, sizeof(count));
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < RADIX_PASSES; p++)
            count[p][(a[i] >> (32 + p * RADIX_BITS)) & (RADIX_SIZE - 1)]++;
    for (int p = 0; p < RADIX_PASSES; p++) {
        int shift = 32 + p * RADIX_BITS;
        size_t sum = 0, *c = count[p];

        if (n == 0 || c[(a[0] >> shift) & (RADIX_SIZE - 1)] == n)
            continue;
        for (size_t d = 0; d < RADIX_SIZE; d++) {
            size_t k = c[d];
            c[d] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++)
            t[c[(a[i] >> shift) & (RADIX_SIZE - 1)]++] = a[i];
        uint64_t *s = a;
        a = t;
        t = s;
    }
    return a;
}

int metrics_auc(double *auc, const float *score, const uint8_t *label, const uint8_t *mask,
                size_t n, metrics_ws_t *ws)
{
    uint64_t *w, npos = 0, nneg = 0, neg_below = 0, twice = 0;
    size_t m = 0;

    *auc = NAN;
    if ((uint64_t)n >= (UINT64_C(1) << 32))
        return ERR_TOOBIG;
    if (ws_reserve(ws, n) != 0)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (!mask || mask[i])
            ws->key[m++] = (uint64_t)float_order(score[i]) << 32 | (label[i] != 0);
    w = sort_high(ws->key, ws->tmp, m);
    for (size_t i = 0; i < m;) {
        uint64_t gp = 0, gn = 0, hi = w[i] >> 32;
        for (; i < m && (w[i] >> 32) == hi; i++) {
            if (w[i] & 1)
                gp++;
            else
                gn++;
        }
        twice += 2 * gp * neg_below + gp * gn;
        neg_below += gn;
        npos += gp;
        nneg += gn;
    }
    if (npos > 0 && nneg > 0)
        *auc = (double)twice / (2.0 * (double)npos * (double)nneg);
    return 0;
}

double metrics_logloss(const float *score, const uint8_t *label, const uint8_t *mask, size_t n)
{
    double sum = 0;
    uint64_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i])
            continue;
        double p = score[i];
        if (p < METRICS_EPS)
            p = METRICS_EPS;
        else if (p > 1 - METRICS_EPS)
            p = 1 - METRICS_EPS;
        sum -= label[i] ? log(p) : log1p(-p);
        k++;
    }
    return k ? sum / (double)k : NAN;
}

void metrics_calibration(double *mean_pred, double *rate, uint64_t *npos, uint64_t *nsel,
                         const float *score, const uint8_t *label, const uint8_t *mask, size_t n)
{
    double sum = 0;
    uint64_t k = 0, pos = 0;

    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i])
            continue;
        sum += score[i];
        pos += label[i] != 0;
        k++;
    }
    *mean_pred = k ? sum / (double)k : NAN;
    *rate = k ? (double)pos / (double)k : NAN;
    if (npos)
        *npos = pos;
    if (nsel)
        *nsel = k;
}

int metrics_summarize(metrics_summary_t *out, const float *score, const uint8_t *label,
                      const uint8_t *mask, size_t n, metrics_ws_t *ws)
{
    metrics_calibration(&out->mean_pred, &out->rate, &out->pos, &out->n, score, label, mask, n);
    out->logloss = metrics_logloss(score, label, mask, n);
    return metrics_auc(&out->auc, score, label, mask, n, ws);
}

/* ---- weighted and per-request ranking ------------------------------------ */

typedef struct scored {
    float s;    /* score */
    uint32_t i; /* row */
} scored_t;

static scored_t *scored_reserve(metrics_ws_t *ws, size_t n)
{
    scored_t *p;

    if (n <= ws->scored_cap)
        return ws->scored;
    if (!(p = malloc((n ? n : 1) * sizeof(*p))))
        return NULL;
    free(ws->scored);
    ws->scored = p;
    ws->scored_cap = n;
    return p;
}

/* Ascending score, then row. */
static int by_score(const void *a, const void *b)
{
    const scored_t *x = a, *y = b;

    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Sort the selected rows of [from, to) into sc; returns how many. */
static size_t sort_rows(scored_t *sc, const float *score, const uint8_t *mask, size_t from,
                        size_t to)
{
    size_t m = 0;

    for (size_t i = from; i < to; i++)
        if (!mask || mask[i])
            sc[m++] = (scored_t){score[i], (uint32_t)i};
    qsort(sc, m, sizeof(*sc), by_score);
    return m;
}

/* Weighted AUC of the m sorted rows of sc (w NULL: 1 each). */
static double sorted_auc(const scored_t *sc, size_t m, const uint8_t *y, const float *w)
{
    double wneg_below = 0, wpos = 0, wneg = 0, num = 0;

    for (size_t a = 0, e; a < m; a = e) {
        double gp = 0, gn = 0;
        for (e = a; e < m && sc[e].s == sc[a].s; e++) {
            double wi = w ? (double)w[sc[e].i] : 1.0;
            if (y[sc[e].i])
                gp += wi;
            else
                gn += wi;
        }
        num += gp * (wneg_below + 0.5 * gn);
        wneg_below += gn;
        wpos += gp;
        wneg += gn;
    }
    return wpos > 0 && wneg > 0 ? num / (wpos * wneg) : NAN;
}

/* NDCG of the m rows of sc sorted ascending (see metrics_per_request). */
static double sorted_ndcg(const scored_t *sc, size_t m, const uint8_t *y)
{
    double dcg = 0, ideal = 0;
    size_t npos = 0, r = 0;

    /* descending score; within a tie, row order */
    for (size_t e = m; e > 0;) {
        size_t a = e;
        while (a > 0 && sc[a - 1].s == sc[e - 1].s)
            a--;
        for (size_t k = a; k < e; k++, r++)
            if (y[sc[k].i]) {
                dcg += 1.0 / log2((double)r + 2.0);
                npos++;
            }
        e = a;
    }
    for (size_t k = 0; k < npos; k++)
        ideal += 1.0 / log2((double)k + 2.0);
    return ideal > 0 ? dcg / ideal : NAN;
}

int metrics_auc_weighted(double *auc, const float *score, const uint8_t *label, const uint8_t *mask,
                         const float *w, size_t n, metrics_ws_t *ws)
{
    scored_t *sc = scored_reserve(ws, n);

    if (!sc)
        return ERR_NOMEM;
    *auc = sorted_auc(sc, sort_rows(sc, score, mask, 0, n), label, w);
    return 0;
}

int metrics_per_request(metrics_requests_t *out, const float *score, const uint8_t *label,
                        const uint8_t *mask, const uint64_t *req, size_t n, metrics_ws_t *ws)
{
    scored_t *sc = scored_reserve(ws, n);
    double sa = 0, sn = 0;

    memset(out, 0, sizeof(*out));
    out->auc = out->ndcg = NAN;
    if (!sc)
        return ERR_NOMEM;
    for (size_t a = 0, e; a < n; a = e) {
        size_t m = 0, pos = 0;

        for (e = a; e < n && req[e] == req[a]; e++)
            if (!mask || mask[e]) {
                m++;
                pos += label[e] != 0;
            }
        if (req[a] == 0 || pos == 0 || pos == m)
            continue;
        m = sort_rows(sc, score, mask, a, e);
        sa += sorted_auc(sc, m, label, NULL);
        sn += sorted_ndcg(sc, m, label);
        out->requests++;
    }
    if (out->requests) {
        out->auc = sa / (double)out->requests;
        out->ndcg = sn / (double)out->requests;
    }
    return 0;
}
