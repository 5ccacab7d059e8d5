/*
 * bottom.c - the shared, mmoe, omoe and ple bottoms: shape table, init,
 * forward and backward. See bottom.h for the layout and the math.
 *
 * NOTES ON THE DESIGN
 *   Everything is one shape: a bottom is `levels` levels; level l has
 *   T * nt task experts (nt per task, 0 unless ple) and ns shared experts,
 *   task gates (untied bottoms) and a shared gate (tied bottoms, and inner
 *   ple levels). Group g (task g < T, or shared g == T) reads x at level 0
 *   and the mixture of its gate at level l - 1 above. The towers read the
 *   last level's task mixtures (untied) or its shared mixture (tied).
 *
 *   The kernels are written once (bottom_tmpl.h) and compiled for float on
 *   OpenBLAS and double on the plain loops, as the towers are.
 */
#include "model/bottom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "model/dense.h"
#include "model/heads.h"

#define BOTTOM_MAX_LEVELS 8
#define BOTTOM_MAX_GATES (HEADS_MAX_TOWERS + 1)

typedef struct blayer {
    size_t in, out; /* units */
    size_t w, b;    /* offsets of W (out, in) and b (out) in the bottom's range */
    size_t col;     /* scratch column of the (ReLU) output */
} blayer_t;

typedef struct bexpert {
    int group;                        /* task < T, or T: shared */
    blayer_t layer[MODEL_MAX_LAYERS]; /* nl layers */
    size_t dcol;                      /* scratch column of d loss / d output (B, H) */
} bexpert_t;

typedef struct bgate {
    int group;   /* task < T, or T: the shared gate; its input is the group's */
    size_t nc;   /* experts mixed; 1: identity, no parameters */
    size_t w, b; /* W (nc, in), b (nc) in the bottom's range (nc > 1) */
    size_t pcol; /* probabilities (B, nc) */
    size_t zcol; /* their gradients (B, nc) */
    size_t ocol; /* mixture (B, H) */
    size_t dcol; /* d loss / d mixture (B, H) */
} bgate_t;

typedef struct blevel {
    size_t in; /* input width: input_dim at level 0, else H */
    int nexp;
    bexpert_t *exp;
    int ngate;
    bgate_t gate[BOTTOM_MAX_GATES];
    int gate_of[BOTTOM_MAX_GATES]; /* group -> its gate's index, -1: none */
} blevel_t;

struct bottom {
    int T;       /* tasks (towers) */
    int nt, ns;  /* task experts per task, shared experts, per level */
    int tied;    /* every tower reads the shared mixture */
    int L;       /* levels */
    int nl;      /* layers per expert */
    size_t D, H; /* input_dim, output width */
    blevel_t level[BOTTOM_MAX_LEVELS];
    size_t nparams; /* floats */
    size_t maxw;    /* widest expert layer */
    size_t tgcol;   /* tied: T * H columns, tower t's gradient at tgcol + t * H */
    size_t ncols;   /* scratch columns */
    double flops;   /* per sample and step */
};

/* Expert index (within the level) of gate gt's choice c. */
static size_t gate_expert(const bottom_t *bt, const bgate_t *gt, size_t c)
{
    if (gt->group == bt->T)
        return c; /* the shared gate mixes every expert */
    if (c < (size_t)bt->nt)
        return (size_t)gt->group * (size_t)bt->nt + c;
    return (size_t)bt->T * (size_t)bt->nt + (c - (size_t)bt->nt);
}

static void add_gate(bottom_t *bt, blevel_t *lv, int group, size_t nc, size_t *off, size_t *col)
{
    bgate_t *gt = &lv->gate[lv->ngate];

    gt->group = group;
    gt->nc = nc;
    gt->w = *off;
    gt->b = *off + (nc > 1 ? nc * lv->in : 0);
    *off += nc > 1 ? (lv->in + 1) * nc : 0;
    gt->pcol = *col;
    gt->zcol = *col + nc;
    gt->ocol = *col + 2 * nc;
    gt->dcol = *col + 2 * nc + bt->H;
    *col += 2 * nc + 2 * bt->H;
    if (nc > 1)
        bt->flops += 6.0 * (double)lv->in * (double)nc;
    bt->flops += 4.0 * (double)nc * (double)bt->H; /* mixture forward and backward */
    lv->gate_of[group] = lv->ngate++;
}

/* The shape table: parameter offsets and scratch columns in layout order. */
static void lay_out(bottom_t *bt)
{
    size_t off = 0, col = 0, in = bt->D;

    for (int l = 0; l < bt->L; l++) {
        blevel_t *lv = &bt->level[l];
        lv->in = in;
        for (int e = 0; e < lv->nexp; e++) {
            bexpert_t *ex = &lv->exp[e];
            size_t ein = in;
            ex->group = e < bt->T * bt->nt ? e / bt->nt : bt->T;
            for (int k = 0; k < bt->nl; k++) {
                blayer_t *ly = &ex->layer[k];
                ly->in = ein;
                ly->w = off;
                off += ly->in * ly->out;
                ly->b = off;
                off += ly->out;
                ly->col = col;
                col += ly->out;
                if (ly->out > bt->maxw)
                    bt->maxw = ly->out;
                bt->flops += 6.0 * (double)ly->in * (double)ly->out;
                ein = ly->out;
            }
            ex->dcol = col;
            col += bt->H;
        }
        for (int g = 0; g < BOTTOM_MAX_GATES; g++)
            lv->gate_of[g] = -1;
        if (!bt->tied)
            for (int k = 0; k < bt->T; k++)
                add_gate(bt, lv, k, (size_t)(bt->nt + bt->ns), &off, &col);
        if (bt->tied || l + 1 < bt->L)
            add_gate(bt, lv, bt->T, (size_t)lv->nexp, &off, &col);
        in = bt->H;
    }
    bt->tgcol = col;
    col += bt->tied ? (size_t)bt->T * bt->H : 0;
    bt->ncols = col;
    bt->nparams = off;
}

bottom_t *bottom_new(const model_spec_t *ms, errbuf_t *eb)
{
    bottom_t *bt;
    int ple = ms->bottom == MODEL_BOTTOM_PLE;

    if (ms->bottom <= MODEL_BOTTOM_CONCAT || ms->bottom >= MODEL_NBOTTOMS) {
        errbuf_set(eb, ERR_INVAL, "bottom: %s has no bottom module", model_bottom_name(ms->bottom));
        return NULL;
    }
    if (ms->nbottom_layers < 1 || ms->nbottom_layers > MODEL_MAX_LAYERS || ms->ntowers < 1 ||
        ms->ntowers > HEADS_MAX_TOWERS ||
        (ple ? ms->ple_levels < 1 || ms->ple_levels > BOTTOM_MAX_LEVELS || ms->ple_shared < 1 ||
                   ms->ple_task < 1 || ms->ple_shared > 64 || ms->ple_task > 64
             : ms->bottom != MODEL_BOTTOM_SHARED && (ms->experts < 1 || ms->experts > 64))) {
        errbuf_set(eb, ERR_INVAL,
                   "bottom %s: sizes out of range (layers %d, experts %d, ple %d shared %d per "
                   "task %d levels)",
                   model_bottom_name(ms->bottom), ms->nbottom_layers, ms->experts, ms->ple_shared,
                   ms->ple_task, ms->ple_levels);
        return NULL;
    }
    for (int k = 0; k < ms->nbottom_layers; k++)
        if (ms->bottom_layer[k] < 1) {
            errbuf_set(eb, ERR_INVAL, "bottom: layer %d has %d units", k, ms->bottom_layer[k]);
            return NULL;
        }
    if (!(bt = calloc(1, sizeof(*bt))))
        goto nomem;
    bt->T = ms->ntowers;
    bt->nt = ple ? ms->ple_task : 0;
    bt->ns = ple ? ms->ple_shared : ms->bottom == MODEL_BOTTOM_SHARED ? 1 : ms->experts;
    bt->tied = ms->bottom == MODEL_BOTTOM_SHARED || ms->bottom == MODEL_BOTTOM_OMOE;
    bt->L = ple ? ms->ple_levels : 1;
    bt->nl = ms->nbottom_layers;
    bt->D = (size_t)ms->input_dim;
    bt->H = (size_t)ms->bottom_layer[bt->nl - 1];
    for (int l = 0; l < bt->L; l++) {
        blevel_t *lv = &bt->level[l];
        lv->nexp = bt->T * bt->nt + bt->ns;
        if (!(lv->exp = calloc((size_t)lv->nexp, sizeof(*lv->exp))))
            goto nomem;
        for (int e = 0; e < lv->nexp; e++)
            for (int k = 0; k < bt->nl; k++)
                lv->exp[e].layer[k].out = (size_t)ms->bottom_layer[k];
    }
    lay_out(bt);
    return bt;
nomem:
    bottom_destroy(&bt);
    errbuf_set(eb, ERR_NOMEM, "bottom %s: out of memory", model_bottom_name(ms->bottom));
    return NULL;
}

void bottom_destroy(bottom_t **pb)
{
    bottom_t *bt = pb ? *pb : NULL;

    if (!bt)
        return;
    for (int l = 0; l < BOTTOM_MAX_LEVELS; l++)
        free(bt->level[l].exp);
    free(bt);
    *pb = NULL;
}

size_t bottom_nparams(const bottom_t *b)
{
    return b->nparams;
}

size_t bottom_out_dim(const bottom_t *b)
{
    return b->H;
}

size_t bottom_scratch_len(const bottom_t *b, size_t B)
{
    return B * b->ncols;
}

size_t bottom_member_len(const bottom_t *b, size_t B)
{
    return B * (2 * b->maxw + (size_t)(b->T + 1) * (b->D > b->H ? b->D : b->H));
}

double bottom_flops_per_sample(const bottom_t *b)
{
    return b->flops;
}

/* One uniform draw in [-bound, bound), as model.c draws tower weights. */
static float draw(uint64_t *rng, double bound)
{
    double u = (double)(rng_splitmix64(rng) >> 40) * 0x1.0p-24; /* [0, 1) */
    return (float)((2.0 * u - 1.0) * bound);
}

void bottom_init(const bottom_t *bt, float *p, uint64_t *rng)
{
    memset(p, 0, bt->nparams * sizeof(float));
    for (int l = 0; l < bt->L; l++) {
        const blevel_t *lv = &bt->level[l];
        for (int e = 0; e < lv->nexp; e++)
            for (int k = 0; k < bt->nl; k++) {
                const blayer_t *ly = &lv->exp[e].layer[k];
                double bound = 1.0 / sqrt((double)ly->in);
                for (size_t i = 0; i < ly->in * ly->out; i++)
                    p[ly->w + i] = draw(rng, bound);
            }
        for (int g = 0; g < lv->ngate; g++) {
            const bgate_t *gt = &lv->gate[g];
            double bound = 1.0 / sqrt((double)lv->in);
            if (gt->nc > 1)
                for (size_t i = 0; i < gt->nc * lv->in; i++)
                    p[gt->w + i] = draw(rng, bound);
        }
    }
}

/* Scratch column of tower t's input: the last level's mixture it reads. */
static size_t output_col(const bottom_t *bt, int t)
{
    const blevel_t *lv = &bt->level[bt->L - 1];
    return lv->gate[lv->gate_of[bt->tied ? bt->T : t]].ocol;
}

/* Scratch column of tower t's input gradient: straight into its mixture's
 * gradient when untied; tied towers each get their own, summed by backward. */
static size_t doutput_col(const bottom_t *bt, int t)
{
    const blevel_t *lv = &bt->level[bt->L - 1];
    return bt->tied ? bt->tgcol + (size_t)t * bt->H : lv->gate[lv->gate_of[t]].dcol;
}

/* The float path: OpenBLAS. */
#define REAL float
#define FN(name) name##_f32
#define EXP expf
#define DENSE_FORWARD dense_forward
#define DENSE_BACKWARD dense_backward
#include "model/bottom_tmpl.h"
#undef REAL
#undef FN
#undef EXP
#undef DENSE_FORWARD
#undef DENSE_BACKWARD

/* The double path: plain loops. */
#define REAL double
#define FN(name) name##_f64
#define EXP exp
#define DENSE_FORWARD dense_forward_ref
#define DENSE_BACKWARD dense_backward_ref
#include "model/bottom_tmpl.h"
#undef REAL
#undef FN
#undef EXP
#undef DENSE_FORWARD
#undef DENSE_BACKWARD

void bottom_forward(const bottom_t *b, team_t *team, float *s, const float *p, const float *x,
                    size_t B)
{
    forward_f32(b, team, s, p, x, B);
}

void bottom_forward_f64(const bottom_t *b, team_t *team, double *s, const double *p,
                        const double *x, size_t B)
{
    forward_f64(b, team, s, p, x, B);
}

const float *bottom_output(const bottom_t *b, const float *s, int t, size_t B)
{
    return s + B * output_col(b, t);
}

float *bottom_doutput(const bottom_t *b, float *s, int t, size_t B)
{
    return s + B * doutput_col(b, t);
}

const double *bottom_output_f64(const bottom_t *b, const double *s, int t, size_t B)
{
    return s + B * output_col(b, t);
}

double *bottom_doutput_f64(const bottom_t *b, double *s, int t, size_t B)
{
    return s + B * doutput_col(b, t);
}

void bottom_backward(const bottom_t *b, team_t *team, float *s, const float *p, float *g,
                     const float *x, size_t B, float *dx, float *mem)
{
    backward_f32(b, team, s, p, g, x, B, dx, mem);
}

void bottom_backward_f64(const bottom_t *b, team_t *team, double *s, const double *p, double *g,
                         const double *x, size_t B, double *dx, double *mem)
{
    backward_f64(b, team, s, p, g, x, B, dx, mem);
}
