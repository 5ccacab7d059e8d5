/*
 * bias.c - the position-bias tower and the split of pooled rows into main
 * and bias columns. See bias.h.
 *
 * The layers run on dense.h's kernels: OpenBLAS in float, the plain loops
 * in double (gradient checks), from one body written for both (the
 * BIAS_DEFINE macro below), as the towers do in tower_tmpl.h.
 */
#include "model/bias.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "model/dense.h"

typedef struct blayer {
    size_t in, out; /* units */
    size_t w, b;    /* offsets of W (out, in) and b (out) in the bias range */
    size_t act;     /* column offset of the output in the scratch */
    int fn;         /* DENSE_RELU or DENSE_LINEAR */
} blayer_t;

typedef struct seg {
    size_t from, len; /* columns of x */
    size_t to;        /* column in the main or bias part */
    int bias;         /* 1: bias part */
} seg_t;

struct bias {
    int depth; /* nbias_layers + 1 */
    blayer_t layer[MODEL_MAX_LAYERS + 1];
    size_t nparams;
    size_t act_width; /* sum of the layers' outputs */
    size_t max_width; /* widest layer input or output */
    size_t D, main, in;
    int nseg;
    seg_t seg[MODEL_MAX_SLOTS];
};

bias_t *bias_new(const model_spec_t *ms, errbuf_t *eb)
{
    bias_t *b;
    size_t in, off = 0, col = 0, cm = 0, cb = 0;

    if (ms->nbias < 1 || ms->bias_dim < 1 || ms->nbias_layers < 0 ||
        ms->nbias_layers > MODEL_MAX_LAYERS || ms->bias_dim >= ms->input_dim) {
        errbuf_set(eb, ERR_INVAL, "bias tower: %d bias slots of width %d in a row of %d", ms->nbias,
                   ms->bias_dim, ms->input_dim);
        return NULL;
    }
    for (int l = 0; l < ms->nbias_layers; l++)
        if (ms->bias_layer[l] < 1) {
            errbuf_set(eb, ERR_INVAL, "bias tower: hidden layer %d has %d units", l,
                       ms->bias_layer[l]);
            return NULL;
        }
    if (!(b = calloc(1, sizeof(*b)))) {
        errbuf_set(eb, ERR_NOMEM, "bias tower: out of memory");
        return NULL;
    }
    b->depth = ms->nbias_layers + 1;
    b->D = (size_t)ms->input_dim;
    b->in = (size_t)ms->bias_dim;
    b->main = b->D - b->in;
    in = b->in;
    b->max_width = in;
    for (int l = 0; l < b->depth; l++) {
        blayer_t *L = &b->layer[l];
        L->in = in;
        L->out = l < ms->nbias_layers ? (size_t)ms->bias_layer[l] : 1;
        L->fn = l < ms->nbias_layers ? DENSE_RELU : DENSE_LINEAR;
        L->w = off;
        off += L->in * L->out;
        L->b = off;
        off += L->out;
        L->act = col;
        col += L->out;
        if (L->out > b->max_width)
            b->max_width = L->out;
        in = L->out;
    }
    b->nparams = off;
    b->act_width = col;
    /* consecutive slots of one kind make one segment */
    for (int s = 0, from = 0; s < ms->nslots; s++) {
        int isb = ms->slot[s].bias != 0;
        size_t d = (size_t)ms->slot[s].dim;
        seg_t *last = b->nseg ? &b->seg[b->nseg - 1] : NULL;
        if (last && last->bias == isb)
            last->len += d;
        else
            b->seg[b->nseg++] = (seg_t){(size_t)from, d, isb ? cb : cm, isb};
        if (isb)
            cb += d;
        else
            cm += d;
        from += (int)d;
    }
    return b;
}

void bias_destroy(bias_t **pb)
{
    if (!pb || !*pb)
        return;
    free(*pb);
    *pb = NULL;
}

size_t bias_nparams(const bias_t *b)
{
    return b->nparams;
}

size_t bias_scratch_len(const bias_t *b, size_t B)
{
    return B * (b->act_width + 2 * b->max_width);
}

size_t bias_main_dim(const bias_t *b)
{
    return b->main;
}

size_t bias_in_dim(const bias_t *b)
{
    return b->in;
}

void bias_init(const bias_t *b, float *p, uint64_t *rng)
{
    for (int l = 0; l < b->depth; l++) {
        const blayer_t *L = &b->layer[l];
        double bound = 1.0 / sqrt((double)L->in);
        for (size_t i = 0; i < L->in * L->out; i++) {
            double u = (double)(rng_splitmix64(rng) >> 40) * 0x1.0p-24; /* [0, 1) */
            p[L->w + i] = (float)((2.0 * u - 1.0) * bound);
        }
        memset(p + L->b, 0, L->out * sizeof(float));
    }
}

double bias_flops_per_sample(const bias_t *b)
{
    double f = 0.0;

    for (int l = 0; l < b->depth; l++)
        f += 6.0 * (double)b->layer[l].in * (double)b->layer[l].out;
    return f;
}

/* One body for both precisions. */
#define BIAS_DEFINE(REAL, SFX, FWD, BWD)                                                        \
    void bias_split##SFX(const bias_t *b, const REAL *x, size_t B, REAL *xm, REAL *xb)          \
    {                                                                                           \
        for (size_t i = 0; i < B; i++)                                                          \
            for (int k = 0; k < b->nseg; k++) {                                                 \
                const seg_t *g = &b->seg[k];                                                    \
                REAL *to = g->bias ? xb + i * b->in : xm + i * b->main;                         \
                memcpy(to + g->to, x + i * b->D + g->from, g->len * sizeof(REAL));              \
            }                                                                                   \
    }                                                                                           \
                                                                                                \
    void bias_merge##SFX(const bias_t *b, const REAL *dxm, const REAL *dxb, size_t B, REAL *dx) \
    {                                                                                           \
        for (size_t i = 0; i < B; i++)                                                          \
            for (int k = 0; k < b->nseg; k++) {                                                 \
                const seg_t *g = &b->seg[k];                                                    \
                const REAL *from = g->bias ? dxb + i * b->in : dxm + i * b->main;               \
                memcpy(dx + i * b->D + g->from, from + g->to, g->len * sizeof(REAL));           \
            }                                                                                   \
    }                                                                                           \
                                                                                                \
    const REAL *bias_forward##SFX(const bias_t *b, REAL *s, const REAL *p, const REAL *xb,      \
                                  size_t B)                                                     \
    {                                                                                           \
        const REAL *in = xb;                                                                    \
        for (int l = 0; l < b->depth; l++) {                                                    \
            const blayer_t *L = &b->layer[l];                                                   \
            REAL *out = s + B * L->act;                                                         \
            FWD(out, in, p + L->w, p + L->b, B, L->in, L->out, L->fn);                          \
            in = out;                                                                           \
        }                                                                                       \
        return in;                                                                              \
    }                                                                                           \
                                                                                                \
    void bias_backward##SFX(const bias_t *b, REAL *s, const REAL *p, REAL *g, const REAL *xb,   \
                            size_t B, const double *dz, REAL *dxb)                              \
    {                                                                                           \
        REAL *dout = s + B * b->act_width, *din = dout + B * b->max_width;                      \
        for (size_t i = 0; i < B; i++)                                                          \
            dout[i] = (REAL)dz[i];                                                              \
        for (int l = b->depth - 1; l >= 0; l--) {                                               \
            const blayer_t *L = &b->layer[l];                                                   \
            const REAL *in = l ? s + B * b->layer[l - 1].act : xb;                              \
            REAL *next = l ? din : dxb;                                                         \
            BWD(next, g + L->w, g + L->b, dout, in, p + L->w, s + B * L->act, B, L->in, L->out, \
                L->fn, 0);                                                                      \
            din = dout;                                                                         \
            dout = next;                                                                        \
        }                                                                                       \
    }

BIAS_DEFINE(float, , dense_forward, dense_backward)
BIAS_DEFINE(double, _f64, dense_forward_ref, dense_backward_ref)
