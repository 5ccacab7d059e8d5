/*
 * model.c - towers, parameter blocks, training step, prediction and the
 * dense checkpoint. See model.h for the block layout, the init and the file
 * format; heads.c for the losses.
 *
 * NOTES ON THE DESIGN
 *   The layer table layer[t][l] is computed once in model_new() and drives
 *   everything: offsets of W and b in the blocks, shapes, activation
 *   (ReLU for hidden layers, identity for the logit layer) and the column
 *   offset `act` of the layer's output in the activation scratch. For a
 *   batch of B rows the output of (t, l) is the (B, out) matrix at
 *   act_scratch + B * act, so one buffer of max_batch * act_width floats
 *   serves every batch size without gaps.
 *
 *   Precision. The towers are written once (tower_tmpl.h) and compiled for
 *   float on OpenBLAS (training) and for double on the plain loops
 *   (model_train_step_f64, for gradient checks). The heads are per-sample
 *   scalar math and run in double for both: the float path converts the
 *   B x T logits to double and the logit gradients back to float.
 *
 *   Threads. A step is: towers forward (team) -> heads (caller) -> towers
 *   backward (team) -> sum of the members' dx partials (caller); the
 *   optimizer step runs tower by tower on the team too. The towers' sgemms
 *   are independent, so splitting whole towers across cores needs no
 *   synchronization inside a tower and keeps each sgemm single-threaded
 *   (no OpenBLAS fork/join per product).
 */
#include "model/model.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/fpmode.h"
#include "common/optim.h"
#include "common/rng.h"
#include "model/bias.h"
#include "model/bottom.h"
#include "model/dense.h"
#include "model/lossw.h"
#include "model/team.h"

typedef struct layer {
    size_t in, out; /* units */
    size_t w, b;    /* offsets of W (out, in) and b (out) in the blocks, floats */
    size_t act;     /* column offset of the output in the activation scratch */
    int fn;         /* DENSE_RELU or DENSE_LINEAR */
} layer_t;

struct model {
    model_spec_t spec;
    const heads_t *heads;
    int ntowers;
    int depth; /* layers per tower: nlayers + 1 */
    layer_t layer[HEADS_MAX_TOWERS][MODEL_MAX_LAYERS + 1];
    size_t tower_p[HEADS_MAX_TOWERS]; /* offset of tower t's parameters, floats */
    size_t tower_s[HEADS_MAX_TOWERS]; /* offset of tower t's optimizer state, floats */
    size_t tower_n;                   /* parameters per tower (every tower has the same shape) */
    size_t nparams;                   /* floats in the parameter and gradient blocks */
    size_t nstate;                    /* floats of optimizer state */
    size_t act_width;                 /* sum of every layer's out over every tower */
    size_t max_width;                 /* widest layer input or output */
    size_t max_batch;                 /* rows */
    int64_t step;                     /* optimizer steps applied */
    float *params, *grads, *state;
    team_t *team;     /* runs the towers; size 1 unless MODEL_PAR_TOWERS */
    int par;          /* MODEL_PAR_* */
    int prec;         /* DENSE_FP32 or DENSE_BF16 */
    float *act;       /* max_batch * act_width */
    float *tmp;       /* per team member: 2 * max_batch * max_width */
    float *bmem;      /* with a bottom, per team member: bottom_member_len(max_batch) */
    double *lg, *dlg; /* max_batch * ntowers: logits and their gradients */
    bottom_t *bot;    /* NULL for the concat bottom (towers read x) */
    size_t bottom_p;  /* offset of the bottom's parameters: after the towers, floats */
    size_t bottom_s;  /* offset of its optimizer state: after the towers', floats */
    float *bs;        /* the bottom's scratch for max_batch rows */
    /* the bias tower (bias.h; NULL without bias slots). spec then describes
     * the main part of the pooled rows (input_dim - bias_dim wide, no bias
     * slots) and xspec the caller's spec */
    model_spec_t xspec;
    bias_t *bias;
    size_t bias_p, bias_s; /* offsets of its parameters (after the bottom) and state */
    int with_bias;         /* model_predict adds its logit (model_predict_set_bias) */
    float *xm, *dxm;       /* max_batch * main: the main part and its gradient */
    float *xb, *dxb;       /* max_batch * bias_dim: the bias part and its gradient */
    float *bsc;            /* the bias tower's scratch */
    double *dz;            /* max_batch: gradient of the bias logit */
    size_t lw_p;           /* offset of the log-variances s_k (uncertainty): after the bottom */
    size_t lw_s;           /* offset of their optimizer state: after the bottom's */
    size_t nlw;            /* model_spec_lossw_len: nloss with uncertainty weighting, else 0 */
    double *lw_last;       /* HEADS_MAX_LOSS: the loss weights of the last step (lossw.h) */
    float *wcat;           /* concat: the towers' layer 0 packed, (T*H0, D) then (T*H0) */
    float *F, *dF;         /* concat: layer 0's outputs and gradients, max_batch * ldf each */
    size_t ldf;            /* concat: their row stride (first_stride), floats */
};

/*
 * The loss of a step under the model's loss weighting (lossw.h), for both
 * precisions' net_step: s the log-variances (uncertainty; read from the
 * parameter block), gs (if not NULL) receives d total / d s_k. Writes the
 * weights used into m->lw_last (a step's, not a forward-only pareto pass:
 * validation batches do not move the weights shown). dlg is the logit
 * gradient (NULL: forward only).
 */
static double net_loss(const model_t *m, const double *s, double *gs, const double *lg,
                       const uint8_t *click, const uint8_t *action, const uint8_t *buy,
                       heads_sample_t *smp, size_t B, double loss[HEADS_MAX_LOSS], double *dlg)
{
    const model_spec_t *ms = &m->spec;
    const int K = heads_nloss(m->heads);
    double w[HEADS_MAX_LOSS], total;

    for (int k = 0; k < K; k++)
        w[k] = (double)ms->loss_weight[k];
    if (ms->loss_weighting == MODEL_LW_UNCERTAINTY) {
        for (int k = 0; k < K; k++)
            w[k] *= exp(-s[k]);
    } else if (ms->loss_weighting == MODEL_LW_PARETO && dlg) {
        double G[HEADS_MAX_LOSS * HEADS_MAX_LOSS], u[HEADS_MAX_LOSS];
        heads_gram(m->heads, lg, click, action, buy, smp, B, G);
        lossw_min_norm(K, G, (double)ms->pareto_min, u);
        for (int k = 0; k < K; k++)
            w[k] = K * u[k];
    } else if (ms->loss_weighting == MODEL_LW_PARETO) {
        for (int k = 0; k < K; k++)
            w[k] = m->lw_last[k]; /* a forward-only pass: the last step's weights */
    }
    total = heads_loss_w(m->heads, lg, click, action, buy, smp, B, w, loss, dlg);
    if (ms->loss_weighting == MODEL_LW_UNCERTAINTY)
        for (int k = 0; k < K; k++) {
            total += s[k];
            if (gs)
                gs[k] = 1.0 - w[k] * loss[k];
        }
    memcpy(m->lw_last, w, (size_t)K * sizeof(double));
    return total;
}

#define NET_LOSS(REAL, suffix)                                                                  \
    static double net_loss_##suffix(const model_t *m, const REAL *p, REAL *g, const double *lg, \
                                    const uint8_t *click, const uint8_t *action,                \
                                    const uint8_t *buy, heads_sample_t *smp, size_t B,          \
                                    double loss[HEADS_MAX_LOSS], double *dlg)                   \
    {                                                                                           \
        double s[HEADS_MAX_LOSS], gs[HEADS_MAX_LOSS], total;                                    \
        for (size_t k = 0; k < m->nlw; k++)                                                     \
            s[k] = (double)p[m->lw_p + k];                                                      \
        total = net_loss(m, s, g ? gs : NULL, lg, click, action, buy, smp, B, loss, dlg);       \
        for (size_t k = 0; g && k < m->nlw; k++)                                                \
            g[m->lw_p + k] = (REAL)gs[k];                                                       \
        return total;                                                                           \
    }
NET_LOSS(float, f32)
NET_LOSS(double, f64)
#undef NET_LOSS

/* Member r of a team of n runs towers [*t0, *t1): contiguous blocks, as
 * even as T / n allows (a member may get none when n > T). The forward,
 * the backward and the optimizer use the same blocks, so a tower's
 * activations, gradients and weights stay with one core. */
static void member_towers(const model_t *m, int r, int n, int *t0, int *t1)
{
    *t0 = m->ntowers * r / n;
    *t1 = m->ntowers * (r + 1) / n;
}

/* The float path: oneDNN's or OpenBLAS's sgemm (dense_gemm_set). */
#define REAL float
#define FN(name) name##_f32
#define DENSE_FORWARD_LD dense_forward_ld
#define DENSE_BACKWARD_LD dense_backward_ld
#define BOTTOM_FORWARD bottom_forward
#define BOTTOM_BACKWARD bottom_backward
#define BOTTOM_OUTPUT bottom_output
#define BOTTOM_DOUTPUT bottom_doutput
#define BIAS_FORWARD bias_forward
#define BIAS_BACKWARD bias_backward
#include "model/tower_tmpl.h"
#undef BIAS_FORWARD
#undef BIAS_BACKWARD
#undef REAL
#undef FN
#undef DENSE_FORWARD_LD
#undef DENSE_BACKWARD_LD
#undef BOTTOM_FORWARD
#undef BOTTOM_BACKWARD
#undef BOTTOM_OUTPUT
#undef BOTTOM_DOUTPUT

/* The double path: plain loops. */
#define REAL double
#define FN(name) name##_f64
#define DENSE_FORWARD_LD dense_forward_ld_ref
#define DENSE_BACKWARD_LD dense_backward_ld_ref
#define BOTTOM_FORWARD bottom_forward_f64
#define BOTTOM_BACKWARD bottom_backward_f64
#define BOTTOM_OUTPUT bottom_output_f64
#define BOTTOM_DOUTPUT bottom_doutput_f64
#define BIAS_FORWARD bias_forward_f64
#define BIAS_BACKWARD bias_backward_f64
#include "model/tower_tmpl.h"
#undef BIAS_FORWARD
#undef BIAS_BACKWARD
#undef REAL
#undef FN
#undef DENSE_FORWARD_LD
#undef DENSE_BACKWARD_LD
#undef BOTTOM_FORWARD
#undef BOTTOM_BACKWARD
#undef BOTTOM_OUTPUT
#undef BOTTOM_DOUTPUT

static int check_spec(const model_spec_t *ms, const heads_t *h, size_t max_batch, errbuf_t *eb)
{
    if (!h)
        return errbuf_set(eb, ERR_INVAL, "model: unknown model type %d", ms->type);
    if (ms->ntowers != heads_ntowers(h))
        return errbuf_set(eb, ERR_INVAL, "model %s: %d towers, the model has %d", heads_name(h),
                          ms->ntowers, heads_ntowers(h));
    if (ms->nloss != heads_nloss(h))
        return errbuf_set(eb, ERR_INVAL, "model %s: %d loss weights, the model has %d losses",
                          heads_name(h), ms->nloss, heads_nloss(h));
    if (ms->input_dim < 1)
        return errbuf_set(eb, ERR_INVAL, "model: input_dim %d < 1", ms->input_dim);
    if (ms->nlayers < 0 || ms->nlayers > MODEL_MAX_LAYERS)
        return errbuf_set(eb, ERR_INVAL, "model: %d hidden layers, at most %d", ms->nlayers,
                          MODEL_MAX_LAYERS);
    for (int l = 0; l < ms->nlayers; l++)
        if (ms->layer[l] < 1)
            return errbuf_set(eb, ERR_INVAL, "model: hidden layer %d has %d units", l,
                              ms->layer[l]);
    if (ms->dense_opt.kind != OPTIM_ADAM && ms->dense_opt.kind != OPTIM_ADAGRAD)
        return errbuf_set(eb, ERR_INVAL, "model: dense optimizer '%s' is not adam or adagrad",
                          optim_name(ms->dense_opt.kind));
    if (max_batch < 1 || max_batch > (size_t)1 << 24)
        return errbuf_set(eb, ERR_INVAL, "model: max batch %zu not in [1, 2^24]", max_batch);
    return 0;
}

/* The layer table: offsets, shapes and scratch columns, in layout order. */
static void lay_out(model_t *m)
{
    const model_spec_t *ms = &m->spec;
    size_t off = 0, col = 0;

    m->max_width = (size_t)ms->input_dim;
    for (int t = 0; t < m->ntowers; t++) {
        size_t in = (size_t)model_spec_tower_input(ms);
        m->tower_p[t] = off;
        for (int l = 0; l < m->depth; l++) {
            layer_t *L = &m->layer[t][l];
            L->in = in;
            L->out = l < ms->nlayers ? (size_t)ms->layer[l] : 1;
            L->fn = l < ms->nlayers ? DENSE_RELU : DENSE_LINEAR;
            L->w = off;
            off += L->in * L->out;
            L->b = off;
            off += L->out;
            L->act = col;
            col += L->out;
            if (L->out > m->max_width)
                m->max_width = L->out;
            in = L->out;
        }
    }
    m->tower_n = off / (size_t)m->ntowers;
    m->bottom_p = off;
    m->bias_p = off + (m->bot ? bottom_nparams(m->bot) : 0);
    m->lw_p = m->bias_p + (m->bias ? bias_nparams(m->bias) : 0);
    m->nlw = model_spec_lossw_len(ms);
    m->nparams = m->lw_p + m->nlw;
    assert(m->nparams == model_spec_dense_len(&m->xspec));
    m->act_width = col;
    for (int t = 0; t < m->ntowers; t++)
        m->tower_s[t] = (size_t)t * optim_dense_state_len(&ms->dense_opt, m->tower_n);
    m->bottom_s = (size_t)m->ntowers * optim_dense_state_len(&ms->dense_opt, m->tower_n);
    m->bias_s =
        m->bottom_s + (m->bot ? optim_dense_state_len(&ms->dense_opt, bottom_nparams(m->bot)) : 0);
    m->lw_s =
        m->bias_s + (m->bias ? optim_dense_state_len(&ms->dense_opt, bias_nparams(m->bias)) : 0);
    m->nstate = m->lw_s + (m->nlw ? optim_dense_state_len(&ms->dense_opt, m->nlw) : 0);
}

/* The row stride of F and dF for T*H0 columns: a multiple of 16 floats
 * (rows start on cache lines) that is not a multiple of 1 KiB (rows on
 * different cache sets; tower_tmpl.h). */
static size_t first_stride(size_t th)
{
    size_t ld = (th + 15) / 16 * 16;

    return ld % 256 ? ld : ld + 16;
}

/* W ~ U(-1/sqrt(in), 1/sqrt(in)) in layout order, b = 0. */
static void init_params(model_t *m, uint64_t seed)
{
    uint64_t s = seed;

    memset(m->params, 0, m->nparams * sizeof(float));
    for (int t = 0; t < m->ntowers; t++)
        for (int l = 0; l < m->depth; l++) {
            const layer_t *L = &m->layer[t][l];
            double bound = 1.0 / sqrt((double)L->in);
            for (size_t i = 0; i < L->in * L->out; i++) {
                double u = (double)(rng_splitmix64(&s) >> 40) * 0x1.0p-24; /* [0, 1) */
                m->params[L->w + i] = (float)((2.0 * u - 1.0) * bound);
            }
        }
    if (m->bot)
        bottom_init(m->bot, m->params + m->bottom_p, &s);
    if (m->bias)
        bias_init(m->bias, m->params + m->bias_p, &s);
}

/* Per-member scratch for a team of n: backward buffers and the bottom's. */
static int alloc_team_scratch(model_t *m, int n)
{
    size_t bl = m->bot ? bottom_member_len(m->bot, m->max_batch) : 0;
    float *tmp = malloc((size_t)n * 2 * m->max_batch * m->max_width * sizeof(float));
    float *bmem = malloc((size_t)n * bl * sizeof(float) + 1);

    if (!tmp || !bmem) {
        free(tmp);
        free(bmem);
        return ERR_NOMEM;
    }
    free(m->tmp);
    free(m->bmem);
    m->tmp = tmp;
    m->bmem = bmem;
    return 0;
}

/* The bias tower and its buffers; spec becomes the main part's (bias.h). */
static int bias_hook_new(model_t *m, size_t max_batch, errbuf_t *eb)
{
    size_t Db;

    if (!(m->bias = bias_new(&m->xspec, eb)))
        return ERR_INVAL;
    Db = bias_in_dim(m->bias);
    m->spec.input_dim -= m->spec.bias_dim;
    m->spec.nbias = m->spec.bias_dim = m->spec.nbias_layers = 0;
    m->xm = malloc(max_batch * bias_main_dim(m->bias) * sizeof(float));
    m->dxm = malloc(max_batch * bias_main_dim(m->bias) * sizeof(float));
    m->xb = malloc(max_batch * Db * sizeof(float));
    m->dxb = malloc(max_batch * Db * sizeof(float));
    m->bsc = malloc(bias_scratch_len(m->bias, max_batch) * sizeof(float));
    m->dz = malloc(max_batch * sizeof(double));
    return m->xm && m->dxm && m->xb && m->dxb && m->bsc && m->dz ? 0 : ERR_NOMEM;
}

model_t *model_new(const model_spec_t *ms, size_t max_batch, uint64_t seed, errbuf_t *eb)
{
    const heads_t *h = heads_for(ms->type);
    model_t *m = NULL;
    int rc;

    if (check_spec(ms, h, max_batch, eb))
        return NULL;
    m = calloc(1, sizeof(*m));
    if (!m)
        goto nomem;
    m->spec = *ms;
    m->xspec = *ms;
    if (ms->nbias > 0 && (rc = bias_hook_new(m, max_batch, eb)) != 0) {
        if (rc == ERR_NOMEM)
            goto nomem;
        goto fail;
    }
    m->heads = h;
    m->ntowers = heads_ntowers(h);
    m->depth = ms->nlayers + 1;
    m->max_batch = max_batch;
    m->par = MODEL_PAR_BLAS;
    if (ms->bottom != MODEL_BOTTOM_CONCAT) {
        if (!(m->bot = bottom_new(&m->spec, eb)))
            goto fail;
        if (!(m->bs = malloc(bottom_scratch_len(m->bot, max_batch) * sizeof(float))))
            goto nomem;
    }
    lay_out(m);
    m->params = malloc(m->nparams * sizeof(float));
    m->grads = calloc(m->nparams, sizeof(float));
    m->state = calloc(m->nstate ? m->nstate : 1, sizeof(float));
    m->act = malloc(max_batch * m->act_width * sizeof(float));
    m->lg = malloc(max_batch * (size_t)m->ntowers * sizeof(double));
    m->dlg = malloc(max_batch * (size_t)m->ntowers * sizeof(double));
    if (!m->bot) {
        size_t th = (size_t)m->ntowers * m->layer[0][0].out;
        m->ldf = first_stride(th);
        m->wcat = malloc(th * (m->layer[0][0].in + 1) * sizeof(float));
        m->F = malloc(max_batch * m->ldf * sizeof(float));
        m->dF = malloc(max_batch * m->ldf * sizeof(float));
        if (!m->wcat || !m->F || !m->dF)
            goto nomem;
    }
    m->team = team_new(1, NULL);
    m->lw_last = malloc(HEADS_MAX_LOSS * sizeof(double));
    if (!m->params || !m->grads || !m->state || !m->act || !m->lg || !m->dlg || !m->team ||
        !m->lw_last || alloc_team_scratch(m, 1))
        goto nomem;
    init_params(m, seed);
    for (int k = 0; k < HEADS_MAX_LOSS; k++) /* s_k = 0: the first step weighs as fixed */
        m->lw_last[k] = k < ms->nloss && ms->loss_weighting != MODEL_LW_PARETO
                            ? (double)ms->loss_weight[k]
                            : 1.0;
    return m;
nomem:
    errbuf_set(eb, ERR_NOMEM, "model %s: out of memory (max batch %zu)", heads_name(h), max_batch);
fail:
    model_destroy(&m);
    return NULL;
}

void model_destroy(model_t **pm)
{
    model_t *m = pm ? *pm : NULL;

    if (!m)
        return;
    team_destroy(&m->team);
    free(m->dz);
    free(m->bsc);
    free(m->dxb);
    free(m->xb);
    free(m->dxm);
    free(m->xm);
    bias_destroy(&m->bias);
    free(m->dF);
    free(m->F);
    free(m->wcat);
    free(m->bs);
    free(m->lw_last);
    bottom_destroy(&m->bot);
    free(m->dlg);
    free(m->lg);
    free(m->bmem);
    free(m->tmp);
    free(m->act);
    free(m->state);
    free(m->grads);
    free(m->params);
    free(m);
    *pm = NULL;
}

int model_threads_set(model_t *m, int n, int par, errbuf_t *eb)
{
    team_t *team;
    int members = par == MODEL_PAR_TOWERS ? n : 1;

    if (n < 1 || n > 64 || (par != MODEL_PAR_BLAS && par != MODEL_PAR_TOWERS))
        return errbuf_set(eb, ERR_INVAL, "model: %d threads (mode %d): want 1..64, mode %d or %d",
                          n, par, MODEL_PAR_BLAS, MODEL_PAR_TOWERS);
    if (!(team = team_new(members, eb)))
        return ERR_NOMEM;
    if (alloc_team_scratch(m, members)) {
        team_destroy(&team);
        return errbuf_set(eb, ERR_NOMEM, "model: out of memory for %d threads", n);
    }
    team_destroy(&m->team);
    m->team = team;
    m->par = par;
    dense_threads_set(par == MODEL_PAR_TOWERS ? 1 : n);
    return 0;
}

void model_precision_set(model_t *m, int precision)
{
    m->prec = precision == DENSE_BF16 ? DENSE_BF16 : DENSE_FP32;
}

int model_threads(const model_t *m, int *par)
{
    if (par)
        *par = m->par;
    return m->par == MODEL_PAR_TOWERS ? team_size(m->team) : dense_threads_get();
}

static job_t_f32 job_f32(model_t *m, float *g, const float *x, size_t B, float *dx)
{
    dense_precision_set(m->prec);
    return (job_t_f32){
        .m = m,
        .p = m->params,
        .g = g,
        .x = x,
        .B = B,
        .act = m->act,
        .tmp = m->tmp,
        .dx = dx,
        .wcat = m->wcat,
        .F = m->F,
        .dF = m->dF,
        .bs = m->bs,
        .bmem = m->bmem,
    };
}

/* A step with the bias tower: split x, step, merge the input gradients. */
static void bias_step(model_t *m, float *g, const float *x, const uint8_t *click,
                      const uint8_t *action, const uint8_t *buy, heads_sample_t *smp, size_t B,
                      float *dx, double loss[HEADS_MAX_LOSS])
{
    job_t_f32 j = job_f32(m, g, m->xm, B, dx ? m->dxm : NULL);

    j.xb = m->xb;
    j.dxb = dx ? m->dxb : NULL;
    j.bsc = m->bsc;
    j.dz = m->dz;
    bias_split(m->bias, x, B, m->xm, m->xb);
    net_step_f32(m->team, &j, click, action, buy, smp, m->lg, m->dlg, loss);
    if (g && dx)
        bias_merge(m->bias, m->dxm, m->dxb, B, dx);
}

int model_train_step(model_t *m, const float *x, const uint8_t *click, const uint8_t *action,
                     const uint8_t *buy, heads_sample_t *smp, size_t B, float *dx,
                     double loss[HEADS_MAX_LOSS])
{
    job_t_f32 j = job_f32(m, m->grads, x, B, dx);
    unsigned fp;

    if (B == 0 || B > m->max_batch)
        return ERR_INVAL;
    fp = fpmode_enter(); /* the team's members follow the caller's mode */
    if (m->bias)
        bias_step(m, m->grads, x, click, action, buy, smp, B, dx, loss);
    else
        net_step_f32(m->team, &j, click, action, buy, smp, m->lg, m->dlg, loss);
    fpmode_set(fp);
    return 0;
}

int model_loss(model_t *m, const float *x, const uint8_t *click, const uint8_t *action,
               const uint8_t *buy, heads_sample_t *smp, size_t B, double loss[HEADS_MAX_LOSS])
{
    job_t_f32 j = job_f32(m, NULL, x, B, NULL);

    if (B == 0 || B > m->max_batch)
        return ERR_INVAL;
    if (m->bias)
        bias_step(m, NULL, x, click, action, buy, smp, B, NULL, loss);
    else
        net_step_f32(m->team, &j, click, action, buy, smp, m->lg, m->dlg, loss);
    return 0;
}

double model_loss_total(const model_t *m, const double loss[HEADS_MAX_LOSS])
{
    double total = 0.0;

    for (int k = 0; k < m->spec.nloss; k++)
        total += m->lw_last[k] * loss[k];
    for (size_t k = 0; k < m->nlw; k++)
        total += (double)m->params[m->lw_p + k];
    return total;
}

int model_loss_weights(const model_t *m, double w[HEADS_MAX_LOSS])
{
    memcpy(w, m->lw_last, (size_t)m->spec.nloss * sizeof(double));
    return m->spec.nloss;
}

/* Member r updates the towers whose gradients it computed (member_towers):
 * each tower's weights and state are contiguous, and the update is
 * elementwise. */
static void run_apply(void *arg, int r, int n)
{
    model_t *m = arg;
    int t0, t1;

    member_towers(m, r, n, &t0, &t1);
    for (int t = t0; t < t1; t++)
        optim_dense_update(&m->spec.dense_opt, m->params + m->tower_p[t], m->state + m->tower_s[t],
                           m->grads + m->tower_p[t], m->tower_n, m->step);
    if (m->bot && r == 0) /* the bottom: member 0, whose block is the smallest */
        optim_dense_update(&m->spec.dense_opt, m->params + m->bottom_p, m->state + m->bottom_s,
                           m->grads + m->bottom_p, bottom_nparams(m->bot), m->step);
    if (m->nlw && r == n - 1) /* the log-variances (a few floats): the last member */
        optim_dense_update(&m->spec.dense_opt, m->params + m->lw_p, m->state + m->lw_s,
                           m->grads + m->lw_p, m->nlw, m->step);
}

/*
 * Under the step's float mode (flush-to-zero, denormals-are-zero; the team
 * hands it to its members): Adam's first moment of a weight whose gradient
 * stays 0 (a dead ReLU unit) decays by beta1 a step into the denormals and
 * sticks there (0.9 x 4 ulp rounds back to 4 ulp), and every update of
 * it takes a microcode assist: after ~700 steps a fifth of an esm2
 * model's first moments were denormal and the update ran 5x slower.
 */
void model_apply_grads(model_t *m)
{
    unsigned fp = fpmode_enter();

    m->step++;
    team_run(m->team, run_apply, m);
    if (m->bias) /* a few hundred floats: not worth a thread */
        optim_dense_update(&m->spec.dense_opt, m->params + m->bias_p, m->state + m->bias_s,
                           m->grads + m->bias_p, bias_nparams(m->bias), m->step);
    fpmode_set(fp);
}

int model_predict(model_t *m, const float *x, size_t B, float *out)
{
    job_t_f32 j = job_f32(m, NULL, m->bias ? m->xm : x, B, NULL);

    if (B == 0 || B > m->max_batch)
        return ERR_INVAL;
    if (m->bias)
        bias_split(m->bias, x, B, m->xm, m->xb);
    net_forward_f32(m->team, &j);
    gather_logits_f32(m, m->act, j.F, B, m->lg);
    if (m->bias && m->with_bias) {
        const float *zb = bias_forward(m->bias, m->bsc, m->params + m->bias_p, m->xb, B);
        for (size_t i = 0; i < B; i++)
            m->lg[i * (size_t)m->ntowers] += (double)zb[i];
    }
    heads_predict(m->heads, m->lg, B, out);
    return 0;
}

int model_predict_set_bias(model_t *m, int on)
{
    int was = m->with_bias;

    m->with_bias = on != 0;
    return was;
}

int model_has_bias(const model_t *m)
{
    return m->bias != NULL;
}

float *model_params(model_t *m, size_t *n)
{
    *n = m->nparams;
    return m->params;
}

float *model_grads(model_t *m, size_t *n)
{
    *n = m->nparams;
    return m->grads;
}

float *model_opt_state(model_t *m, size_t *n)
{
    *n = m->nstate;
    return m->state;
}

int64_t model_step(const model_t *m)
{
    return m->step;
}

const model_spec_t *model_spec(const model_t *m)
{
    return &m->xspec;
}

const heads_t *model_heads(const model_t *m)
{
    return m->heads;
}

int model_nloss(const model_t *m)
{
    return heads_nloss(m->heads);
}

double model_flops_per_sample(const model_t *m)
{
    double f = 0.0;

    for (int t = 0; t < m->ntowers; t++)
        for (int l = 0; l < m->depth; l++)
            f += 6.0 * (double)m->layer[t][l].in * (double)m->layer[t][l].out;
    return f + (m->bot ? bottom_flops_per_sample(m->bot) : 0.0) +
           (m->bias ? bias_flops_per_sample(m->bias) : 0.0);
}

int model_train_step_f64(const model_t *m, const double *p, const double *x, const uint8_t *click,
                         const uint8_t *action, const uint8_t *buy, heads_sample_t *smp, size_t B,
                         double *g, double *dx, double loss[HEADS_MAX_LOSS], double *total)
{
    size_t T = (size_t)m->ntowers, n = (size_t)team_size(m->team);
    size_t D = (size_t)m->spec.input_dim, Db = m->bias ? bias_in_dim(m->bias) : 0;
    size_t TH = T * m->layer[0][0].out, LF = m->ldf;
    double *act = NULL, *tmp = NULL, *fl = NULL, *lg = NULL, *dlg = NULL, *bs = NULL, *bm = NULL;
    double *xm = NULL, *dxm = NULL, *xb = NULL, *dxb = NULL, *bsc = NULL, *dz = NULL, tl;
    job_t_f64 j;
    int rc = ERR_NOMEM;

    if (B == 0)
        return ERR_INVAL;
    if (m->bias) {
        xm = malloc(B * D * sizeof(double));
        dxm = malloc(B * D * sizeof(double));
        xb = malloc(B * Db * sizeof(double));
        dxb = malloc(B * Db * sizeof(double));
        bsc = malloc(bias_scratch_len(m->bias, B) * sizeof(double));
        dz = malloc(B * sizeof(double));
        if (!xm || !dxm || !xb || !dxb || !bsc || !dz)
            goto out;
        bias_split_f64(m->bias, x, B, xm, xb);
    }
    act = malloc(B * m->act_width * sizeof(double));
    tmp = malloc(n * 2 * B * m->max_width * sizeof(double));
    fl = malloc((TH * (D + 1) + 2 * B * LF) * sizeof(double)); /* wcat, F, dF */
    lg = malloc(B * T * sizeof(double));
    dlg = malloc(B * T * sizeof(double));
    bs = malloc((m->bot ? bottom_scratch_len(m->bot, B) : 0) * sizeof(double) + 1);
    bm = malloc((m->bot ? n * bottom_member_len(m->bot, B) : 0) * sizeof(double) + 1);
    if (!act || !tmp || !fl || !lg || !dlg || !bs || !bm)
        goto out;
    j = (job_t_f64){
        .m = m,
        .p = p,
        .g = g,
        .x = m->bias ? xm : x,
        .B = B,
        .act = act,
        .tmp = tmp,
        .dx = m->bias && dx ? dxm : dx,
        .wcat = fl,
        .F = fl + TH * (D + 1),
        .dF = fl + TH * (D + 1) + B * LF,
        .xb = xb,
        .dxb = dx ? dxb : NULL,
        .bsc = bsc,
        .dz = dz,
        .bs = bs,
        .bmem = bm,
    };
    tl = net_step_f64(m->team, &j, click, action, buy, smp, lg, dlg, loss);
    if (m->bias && g && dx)
        bias_merge_f64(m->bias, dxm, dxb, B, dx);
    if (total)
        *total = tl;
    rc = 0;
out:
    free(dz);
    free(bsc);
    free(dxb);
    free(xb);
    free(dxm);
    free(xm);
    free(bm);
    free(bs);
    free(dlg);
    free(lg);
    free(fl);
    free(tmp);
    free(act);
    return rc;
}

/* ---- dense checkpoint ---------------------------------------------------- */

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

typedef struct io {
    FILE *f;
    uint64_t hash; /* FNV-1a over the bytes after the magic */
    int failed;    /* a read or write came up short */
} io_t;

static void hash_bytes(io_t *io, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        io->hash = (io->hash ^ b[i]) * FNV_PRIME;
}

static void put(io_t *io, const void *b, size_t n)
{
    hash_bytes(io, b, n);
    if (!io->failed && fwrite(b, 1, n, io->f) != n)
        io->failed = 1;
}

static void put_u32(io_t *io, uint32_t v)
{
    uint8_t b[4];
    bytes_put_le32(b, v);
    put(io, b, 4);
}

static void put_u64(io_t *io, uint64_t v)
{
    uint8_t b[8];
    bytes_put_le64(b, v);
    put(io, b, 8);
}

static void put_floats(io_t *io, const float *x, size_t n)
{
    uint8_t buf[4096];

    while (n) {
        size_t k = n < sizeof(buf) / 4 ? n : sizeof(buf) / 4;
        for (size_t i = 0; i < k; i++)
            bytes_put_le_float(buf + 4 * i, x[i]);
        put(io, buf, 4 * k);
        x += k;
        n -= k;
    }
}

static void get(io_t *io, void *b, size_t n)
{
    if (io->failed || fread(b, 1, n, io->f) != n) {
        io->failed = 1;
        memset(b, 0, n);
        return;
    }
    hash_bytes(io, b, n);
}

static uint32_t get_u32(io_t *io)
{
    uint8_t b[4];
    get(io, b, 4);
    return bytes_get_le32(b);
}

static uint64_t get_u64(io_t *io)
{
    uint8_t b[8];
    get(io, b, 8);
    return bytes_get_le64(b);
}

static void get_floats(io_t *io, float *x, size_t n)
{
    uint8_t buf[4096];

    while (n) {
        size_t k = n < sizeof(buf) / 4 ? n : sizeof(buf) / 4;
        get(io, buf, 4 * k);
        for (size_t i = 0; i < k; i++)
            x[i] = bytes_get_le_float(buf + 4 * i);
        x += k;
        n -= k;
    }
}

/* Version 2's and 3's bottom fields (see model.h). */
static void put_bottom(io_t *io, const model_spec_t *ms)
{
    put_u32(io, (uint32_t)ms->bottom);
    if (ms->bottom == MODEL_BOTTOM_CONCAT)
        return;
    put_u32(io, (uint32_t)ms->nbottom_layers);
    for (int l = 0; l < ms->nbottom_layers; l++)
        put_u32(io, (uint32_t)ms->bottom_layer[l]);
    put_u32(io, (uint32_t)ms->experts);
    put_u32(io, (uint32_t)ms->ple_shared);
    put_u32(io, (uint32_t)ms->ple_task);
    put_u32(io, (uint32_t)ms->ple_levels);
}

/* Version 3's bias tower fields (see model.h). */
static void put_bias(io_t *io, const model_spec_t *ms)
{
    put_u32(io, (uint32_t)ms->bias_dim);
    put_u32(io, (uint32_t)ms->nbias_layers);
    for (int l = 0; l < ms->nbias_layers; l++)
        put_u32(io, (uint32_t)ms->bias_layer[l]);
}

int model_save_dense(const model_t *m, FILE *f, errbuf_t *eb)
{
    io_t io = {f, FNV_OFFSET, 0};
    uint64_t hash;

    if (fwrite(MODEL_DENSE_MAGIC, 1, 8, f) != 8)
        return errbuf_set(eb, ERR_IO, "dense checkpoint: write failed");
    put_u32(&io, m->bias || m->nlw ? MODEL_DENSE_VERSION_EXT
                 : m->bot          ? MODEL_DENSE_VERSION
                                   : MODEL_DENSE_VERSION_CONCAT);
    if (m->bias || m->nlw) { /* version 3: the bias tower, then the loss weighting */
        put_bias(&io, &m->xspec);
        put_u32(&io, m->nlw ? (uint32_t)m->spec.loss_weighting : MODEL_LW_FIXED);
    }
    put_u32(&io, (uint32_t)m->spec.type);
    put_u32(&io, (uint32_t)m->spec.input_dim);
    put_u32(&io, (uint32_t)m->spec.nlayers);
    for (int l = 0; l < m->spec.nlayers; l++)
        put_u32(&io, (uint32_t)m->spec.layer[l]);
    if (m->bot || m->bias || m->nlw)
        put_bottom(&io, &m->spec);
    put_u32(&io, (uint32_t)m->spec.dense_opt.kind);
    put_u64(&io, m->nparams);
    put_u64(&io, m->nstate);
    put_u64(&io, (uint64_t)m->step);
    put_floats(&io, m->params, m->nparams);
    put_floats(&io, m->state, m->nstate);
    hash = io.hash;
    put_u64(&io, hash);
    if (io.failed || fflush(f) != 0)
        return errbuf_set(eb, ERR_IO, "dense checkpoint: write failed");
    return 0;
}

/* Compare one header field; ERR_MISMATCH naming it. */
static int same(errbuf_t *eb, const char *field, uint64_t file, uint64_t model)
{
    if (file == model)
        return 0;
    return errbuf_set(eb, ERR_MISMATCH,
                      "dense checkpoint: %s is %llu in the file but %llu in the model", field,
                      (unsigned long long)file, (unsigned long long)model);
}

/* The bottom fields of a version 2 header; a version 1 file is concat. */
static int read_bottom(model_t *m, io_t *io, uint32_t version, errbuf_t *eb)
{
    const model_spec_t *ms = &m->spec;
    uint32_t bottom = version == MODEL_DENSE_VERSION_CONCAT ? MODEL_BOTTOM_CONCAT : get_u32(io);
    uint32_t nl;
    int rc;

    if (io->failed)
        return errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated header");
    if (bottom != (uint32_t)ms->bottom)
        return errbuf_set(eb, ERR_MISMATCH,
                          "dense checkpoint: bottom is %s in the file but %s in the model",
                          model_bottom_name((int)bottom), model_bottom_name(ms->bottom));
    if (bottom == MODEL_BOTTOM_CONCAT)
        return 0;
    if ((rc = same(eb, "bottom layer count", nl = get_u32(io), (uint32_t)ms->nbottom_layers)))
        return io->failed ? errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated header") : rc;
    for (uint32_t l = 0; l < nl; l++) {
        char what[40];
        snprintf(what, sizeof(what), "size of bottom layer %u", l);
        if ((rc = same(eb, what, get_u32(io), (uint32_t)ms->bottom_layer[l])))
            break;
    }
    if (rc == 0 && (rc = same(eb, "experts", get_u32(io), (uint32_t)ms->experts)) == 0 &&
        (rc = same(eb, "ple_shared_experts", get_u32(io), (uint32_t)ms->ple_shared)) == 0 &&
        (rc = same(eb, "ple_task_experts", get_u32(io), (uint32_t)ms->ple_task)) == 0)
        rc = same(eb, "ple_levels", get_u32(io), (uint32_t)ms->ple_levels);
    if (io->failed)
        return errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated header");
    return rc;
}

/* The bias tower fields of a version 3 header (width 0: none); versions 1
 * and 2 have none. */
static int read_bias(model_t *m, io_t *io, errbuf_t *eb)
{
    const model_spec_t *ms = &m->xspec;
    uint32_t nl;
    int rc = 0;

    uint32_t dim = get_u32(io);

    if (!io->failed && (dim != 0) != (m->bias != NULL))
        return errbuf_set(eb, ERR_MISMATCH,
                          "dense checkpoint: the file has %s bias tower but the model has %s "
                          "(key 'bias_slots')",
                          dim ? "a" : "no", m->bias ? "one" : "none");
    if (!m->bias) { /* width 0 and no layers */
        nl = get_u32(io);
        if (io->failed)
            return errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated header");
        return nl ? errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: %u layers of no bias tower", nl)
                  : 0;
    }
    if ((rc = same(eb, "bias tower input width", dim, (uint32_t)ms->bias_dim)) == 0 &&
        (rc = same(eb, "bias tower layer count", nl = get_u32(io), (uint32_t)ms->nbias_layers)) ==
            0)
        for (uint32_t l = 0; l < nl; l++) {
            char what[40];
            snprintf(what, sizeof(what), "size of bias tower layer %u", l);
            if ((rc = same(eb, what, get_u32(io), (uint32_t)ms->bias_layer[l])))
                break;
        }
    if (io->failed)
        return errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated header");
    return rc;
}

/*
 * The header; *no_lw gets 1 if the file has no log-variances but the
 * model has (a file written before or without uncertainty weighting: its
 * parameters and state are the model's without the trailing s_k).
 */
static int read_header(model_t *m, io_t *io, int *no_lw, errbuf_t *eb)
{
    const model_spec_t *ms = &m->spec;
    uint32_t version, type, nl, lw = MODEL_LW_FIXED;
    size_t np_want = m->nparams, ns_want = m->nstate;
    int rc;

    *no_lw = 0;
    version = get_u32(io);
    if (io->failed)
        return errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated header");
    if (version != MODEL_DENSE_VERSION && version != MODEL_DENSE_VERSION_CONCAT &&
        version != MODEL_DENSE_VERSION_EXT)
        return errbuf_set(eb, ERR_VERSION, "dense checkpoint: version %u, expected %u, %u or %u",
                          version, MODEL_DENSE_VERSION_CONCAT, MODEL_DENSE_VERSION,
                          MODEL_DENSE_VERSION_EXT);
    if (version != MODEL_DENSE_VERSION_EXT && m->bias) /* before its input_dim */
        return errbuf_set(eb, ERR_MISMATCH,
                          "dense checkpoint: the file has no bias tower but the model has one "
                          "(key 'bias_slots')");
    if (version == MODEL_DENSE_VERSION_EXT) { /* before input_dim, which the bias tower changes */
        if ((rc = read_bias(m, io, eb)))
            return rc;
        lw = get_u32(io);
    }
    type = get_u32(io);
    if (!io->failed && type != (uint32_t)ms->type) {
        const heads_t *fh = heads_for((int)type);
        return errbuf_set(eb, ERR_MISMATCH,
                          "dense checkpoint: model type is %s in the file but %s in the model",
                          fh ? heads_name(fh) : "unknown", heads_name(m->heads));
    }
    if ((rc = same(eb, "input_dim", get_u32(io), (uint32_t)ms->input_dim)) ||
        (rc = same(eb, "hidden layer count", nl = get_u32(io), (uint32_t)ms->nlayers)))
        return io->failed ? errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated header") : rc;
    for (uint32_t l = 0; l < nl; l++) {
        char what[32];
        snprintf(what, sizeof(what), "size of hidden layer %u", l);
        if ((rc = same(eb, what, get_u32(io), (uint32_t)ms->layer[l])))
            return io->failed ? errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated header")
                              : rc;
    }
    if ((rc = read_bottom(m, io, version, eb)))
        return rc;
    if (!io->failed && lw != MODEL_LW_FIXED && lw != (uint32_t)ms->loss_weighting)
        return errbuf_set(eb, ERR_MISMATCH,
                          "dense checkpoint: loss_weighting is %s in the file but %s in the model",
                          model_lossw_name((int)lw), model_lossw_name(ms->loss_weighting));
    if (lw == MODEL_LW_FIXED && m->nlw) { /* no s_k in the file: they start at 0 */
        *no_lw = 1;
        np_want -= m->nlw;
        ns_want = m->lw_s;
    }
    uint32_t kind = get_u32(io);
    if (!io->failed && kind != (uint32_t)ms->dense_opt.kind)
        return errbuf_set(eb, ERR_MISMATCH,
                          "dense checkpoint: dense optimizer is %s in the file but %s in the model",
                          optim_name((int)kind), optim_name(ms->dense_opt.kind));
    uint64_t np = get_u64(io), ns = get_u64(io);
    if (io->failed)
        return errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated header");
    if (np != np_want || ns != ns_want)
        return errbuf_set(eb, ERR_CORRUPT,
                          "dense checkpoint: %llu parameters and %llu state floats, the "
                          "header's shape implies %zu and %zu",
                          (unsigned long long)np, (unsigned long long)ns, np_want, ns_want);
    return 0;
}

int model_load_dense(model_t *m, FILE *f, errbuf_t *eb)
{
    io_t io = {f, FNV_OFFSET, 0};
    char magic[8];
    float *params = NULL, *state = NULL;
    uint64_t step, hash, stored;
    size_t np, ns;
    int rc, no_lw;

    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, MODEL_DENSE_MAGIC, 8) != 0)
        return errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: bad magic (not a dense model file)");
    if ((rc = read_header(m, &io, &no_lw, eb)))
        return rc;
    np = no_lw ? m->nparams - m->nlw : m->nparams;
    ns = no_lw ? m->lw_s : m->nstate;
    step = get_u64(&io);
    params = malloc(m->nparams * sizeof(float));
    state = malloc((m->nstate ? m->nstate : 1) * sizeof(float));
    if (!params || !state) {
        rc = errbuf_set(eb, ERR_NOMEM, "dense checkpoint: out of memory");
        goto out;
    }
    memset(params, 0, m->nparams * sizeof(float)); /* s_k = 0 when the file has none */
    memset(state, 0, m->nstate * sizeof(float));
    get_floats(&io, params, np);
    get_floats(&io, state, ns);
    hash = io.hash;
    stored = get_u64(&io);
    if (io.failed) {
        rc = errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: truncated (%zu parameters expected)",
                        np);
        goto out;
    }
    if (stored != hash) {
        rc = errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: checksum mismatch");
        goto out;
    }
    if (step > INT64_MAX) {
        rc = errbuf_set(eb, ERR_CORRUPT, "dense checkpoint: step %llu out of range",
                        (unsigned long long)step);
        goto out;
    }
    memcpy(m->params, params, m->nparams * sizeof(float));
    memcpy(m->state, state, m->nstate * sizeof(float));
    m->step = (int64_t)step;
    rc = 0;
out:
    free(state);
    free(params);
    return rc;
}
