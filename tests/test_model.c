/*
 * test_model.c - the heads and the multi-task network:
 *   - head losses and predictions against direct formulas;
 *   - d loss / d logits against central finite differences for every model
 *     type, with logits far into saturation (|a| up to 30);
 *   - every parameter and dX of a small network against finite differences,
 *     in double (the double twin of the step) and in float (the OpenBLAS
 *     training path), and float analytic against double analytic, each with
 *     the towers on 1, 2 and 3 threads;
 *   - every thread setting computes the same step;
 *   - init, errors, save -> load -> identical predictions, mismatch and
 *     corruption of the checkpoint, and a short learning run.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/dense.h"
#include "model/heads.h"
#include "model/model.h"
#include "tests/util.h"

static uint64_t rs;

static double urand(void) /* [0, 1) */
{
    rs = rs * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (double)(rs >> 11) * 0x1.0p-53;
}

static double sigm(double a)
{
    return 1.0 / (1.0 + exp(-a));
}

/* Relative error with a floor: below `floor` the error is absolute/floor. */
static double rel_err(double a, double b, double floor)
{
    double s = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) / (s > floor ? s : floor);
}

/* Random valid labels: action and buy only on clicks. */
static void labels(uint8_t *click, uint8_t *action, uint8_t *buy, size_t B, double pclick)
{
    for (size_t i = 0; i < B; i++) {
        click[i] = urand() < pclick;
        action[i] = click[i] && urand() < 0.5;
        buy[i] = click[i] && urand() < 0.5;
    }
}

static model_spec_t small_spec(int type, int dense_kind)
{
    model_spec_t ms;
    memset(&ms, 0, sizeof(ms));
    ms.type = type;
    ms.ntowers = type == MODEL_ESM2 ? 4 : 2;
    ms.nloss = type == MODEL_ESM2 ? 3 : 2;
    ms.loss_weight[0] = 1.0f;
    ms.loss_weight[1] = 0.7f;
    ms.loss_weight[2] = 1.3f;
    ms.input_dim = 5;
    ms.nlayers = 2;
    ms.layer[0] = 4;
    ms.layer[1] = 3;
    ms.dense_opt.kind = dense_kind;
    ms.dense_opt.lr = 0.01f;
    ms.dense_opt.eps = 1e-8f;
    ms.dense_opt.beta1 = 0.9f;
    ms.dense_opt.beta2 = 0.999f;
    return ms;
}

/* ---- heads ----------------------------------------------------------------- */

static const float W3[3] = {1.0f, 0.7f, 1.3f};

static void test_heads_table(void)
{
    const heads_t *e2 = heads_for(MODEL_ESM2), *em = heads_for(MODEL_ESMM);
    const heads_t *nv = heads_for(MODEL_NAIVE);

    CU_ASSERT_PTR_NULL(heads_for(-1));
    CU_ASSERT_PTR_NULL(heads_for(MODEL_NMTR + 1));
    CU_ASSERT_STRING_EQUAL(heads_name(e2), "esm2");
    CU_ASSERT_EQUAL(heads_ntowers(e2), 4);
    CU_ASSERT_EQUAL(heads_nloss(e2), 3);
    CU_ASSERT_STRING_EQUAL(heads_loss_name(e2, 1), "ctavr");
    CU_ASSERT_STRING_EQUAL(heads_loss_name(e2, 2), "ctcvr");
    CU_ASSERT_EQUAL(heads_ntowers(em), 2);
    CU_ASSERT_STRING_EQUAL(heads_loss_name(em, 1), "ctcvr");
    CU_ASSERT_STRING_EQUAL(heads_loss_name(nv, 1), "cvr");
    CU_ASSERT(heads_has_pred(e2, HEADS_PCTAVR));
    CU_ASSERT(!heads_has_pred(em, HEADS_PCTAVR));
    CU_ASSERT(heads_has_pred(nv, HEADS_PCTCVR));
}

/* Loss values and predictions against the formulas written out directly. */
static void test_heads_direct(void)
{
    enum { B = 40 };
    double a[B * 4], loss[3], dl[B * 4];
    uint8_t c[B], ac[B], bu[B];
    float out[B * 4];

    rs = 11;
    for (int type = 0; type < 3; type++) {
        const heads_t *h = heads_for(type);
        int T = heads_ntowers(h);
        double want[3] = {0, 0, 0}, nclick = 0;

        for (int i = 0; i < B * T; i++)
            a[i] = urand() * 8 - 4;
        labels(c, ac, bu, B, 0.5);
        for (int i = 0; i < B; i++) {
            const double *x = a + i * T;
            double y0 = sigm(x[0]), y1 = sigm(x[1]);
            double cvr = type == MODEL_ESM2 ? y1 * sigm(x[2]) + (1 - y1) * sigm(x[3]) : y1;
            /* esm2: ctr, ctavr, ctcvr; esmm: ctr, ctcvr; naive: ctr, cvr */
            double l[3] = {c[i], type == MODEL_ESM2 ? ac[i] : bu[i], bu[i]};
            double p[3] = {y0, type == MODEL_NAIVE ? y1 : y0 * y1, y0 * cvr};
            for (int k = 0; k < heads_nloss(h); k++) {
                if (type == MODEL_NAIVE && k == 1 && !c[i])
                    continue;
                want[k] -= l[k] * log(p[k]) + (1 - l[k]) * log(1 - p[k]);
            }
            nclick += c[i];
        }
        double tot = heads_loss(h, a, c, ac, bu, NULL, B, W3, loss, dl);
        double wt = 0;
        for (int k = 0; k < heads_nloss(h); k++) {
            double n = type == MODEL_NAIVE && k == 1 ? nclick : B;
            CU_ASSERT(rel_err(loss[k], want[k] / n, 1e-12) < 1e-12);
            wt += W3[k] * want[k] / n;
        }
        CU_ASSERT(rel_err(tot, wt, 1e-12) < 1e-12);
        /* no loss is fed by tower 1 on a non-clicked row of naive */
        if (type == MODEL_NAIVE)
            for (int i = 0; i < B; i++)
                if (!c[i])
                    CU_ASSERT_EQUAL(dl[i * 2 + 1], 0.0);

        heads_predict(h, a, B, out);
        for (int i = 0; i < B; i++) {
            const double *x = a + i * T;
            double y0 = sigm(x[0]), y1 = sigm(x[1]);
            double cvr = type == MODEL_ESM2 ? y1 * sigm(x[2]) + (1 - y1) * sigm(x[3]) : y1;
            CU_ASSERT(rel_err(out[i * 4 + 0], y0, 1e-30) < 1e-6);
            CU_ASSERT(rel_err(out[i * 4 + 1], cvr, 1e-30) < 1e-6);
            CU_ASSERT(rel_err(out[i * 4 + 2], y0 * cvr, 1e-30) < 1e-6);
            if (type == MODEL_ESM2) {
                CU_ASSERT(rel_err(out[i * 4 + 3], y0 * y1, 1e-30) < 1e-6);
            } else {
                CU_ASSERT(isnan(out[i * 4 + 3]));
            }
        }
    }
}

/* Saturated logits: exact losses, bounded gradients, nothing infinite. */
static void test_heads_saturated(void)
{
    const heads_t *h = heads_for(MODEL_ESM2);
    double a[4] = {-30, 30, -30, -30}, loss[3], d[4];
    uint8_t c = 1, ac = 1, bu = 1;

    /* -log sigma(-30) = 30 + log1p(e^-30) */
    heads_loss(h, a, &c, &ac, &bu, NULL, 1, W3, loss, d);
    CU_ASSERT(fabs(loss[0] - (30 + log1p(exp(-30)))) < 1e-12);
    /* pCTAVR = y0 y1: -log = 30 + tiny + log1p(e^-30) */
    CU_ASSERT(fabs(loss[1] - (30 + 2 * log1p(exp(-30)))) < 1e-12);
    /* pCTCVR = y0 (y1 y2 + (1 - y1) y3) with y2 = y3 = sigma(-30): about 60 */
    CU_ASSERT(fabs(loss[2] - 60) < 1e-9);
    for (int j = 0; j < 4; j++)
        CU_ASSERT(isfinite(d[j]) && fabs(d[j]) <= 4);
    /* the confidently wrong CTR logit still learns: d/da0 = -(w0 + w1 + w2) (1 - y0) */
    CU_ASSERT(fabs(d[0] + ((double)W3[0] + W3[1] + W3[2]) * sigm(30)) < 1e-12);

    /* a correct saturated prediction: loss and gradient near zero, not NaN */
    double b[4] = {40, -40, 0, 0};
    uint8_t c0 = 1, a0 = 0, b0 = 0;
    heads_loss(h, b, &c0, &a0, &b0, NULL, 1, W3, loss, d);
    CU_ASSERT(loss[0] < 1e-17 && loss[0] >= 0);
    CU_ASSERT(loss[1] < 1e-17 && loss[1] >= 0);
    CU_ASSERT(isfinite(loss[2]) && fabs(loss[2] - log(2)) < 1e-12);
    CU_ASSERT(fabs(d[0]) < 1e-16);
}

/* d total / d logits against central differences, every type, saturated. */
static void test_heads_gradcheck(void)
{
    enum { B = 24 };
    double a[B * 4], dl[B * 4], loss[3];
    uint8_t c[B], ac[B], bu[B];
    double worst = 0;

    rs = 5;
    for (int type = 0; type < 3; type++) {
        const heads_t *h = heads_for(type);
        int T = heads_ntowers(h);
        for (int round = 0; round < 4; round++) {
            double range = round == 0 ? 4 : 30; /* rounds 1..3: deep saturation */
            for (int i = 0; i < B * T; i++)
                a[i] = (urand() * 2 - 1) * range;
            if (round == 3) /* extremes on both sides of every tower */
                for (int i = 0; i < B * T; i++)
                    a[i] = (urand() < 0.5 ? -1 : 1) * (25 + 5 * urand());
            labels(c, ac, bu, B, 0.6);
            heads_loss(h, a, c, ac, bu, NULL, B, W3, loss, dl);
            for (int i = 0; i < B * T; i++) {
                double v = a[i], e = 1e-5;
                a[i] = v + e;
                double lp = heads_loss(h, a, c, ac, bu, NULL, B, W3, loss, NULL);
                a[i] = v - e;
                double lm = heads_loss(h, a, c, ac, bu, NULL, B, W3, loss, NULL);
                a[i] = v;
                double err = rel_err(dl[i], (lp - lm) / (2 * e), 1e-3);
                if (err > worst)
                    worst = err;
                CU_ASSERT(err < 1e-6);
            }
        }
    }
    CU_ASSERT(worst < 1e-6);
    if (getenv("FUNNEL_TEST_VERBOSE") || !(worst < 1e-6))
        fprintf(stderr, "\n    logit gradient check: worst relative error %.3g\n", worst);
}

/* ---- the network ------------------------------------------------------------ */

enum { GB = 7 }; /* batch of the gradient checks */

typedef struct gc {
    model_t *m;
    size_t n, D;
    float x[GB * 5];
    double xd[GB * 5];
    uint8_t c[GB], ac[GB], bu[GB];
} gc_t;

/* Thread settings every check runs under: serial, towers split 2 ways
 * (esmm 1 + 1, esm2 2 + 2) and 3 ways (uneven, one member idle for esmm). */
static const struct {
    int n, par;
} THREADS[] = {{1, MODEL_PAR_BLAS}, {2, MODEL_PAR_TOWERS}, {3, MODEL_PAR_TOWERS}};
#define NTHREADS (sizeof(THREADS) / sizeof(THREADS[0]))

static int gc_setup(gc_t *g, int type, uint64_t seed, int th)
{
    model_spec_t ms = small_spec(type, OPTIM_ADAM);

    memset(g, 0, sizeof(*g));
    g->m = model_new(&ms, 16, seed, NULL);
    if (!g->m)
        return -1;
    if (model_threads_set(g->m, THREADS[th].n, THREADS[th].par, NULL)) {
        model_destroy(&g->m);
        return -1;
    }
    model_params(g->m, &g->n);
    g->D = 5;
    rs = seed;
    for (size_t i = 0; i < GB * g->D; i++) {
        g->x[i] = (float)(urand() * 4 - 2);
        g->xd[i] = g->x[i];
    }
    labels(g->c, g->ac, g->bu, GB, 0.6);
    g->c[0] = 1; /* naive's CVR loss needs a click */
    /* make the biases nonzero so they matter in the check */
    float *p = model_params(g->m, &g->n);
    for (size_t i = 0; i < g->n; i++)
        if (p[i] == 0.0f)
            p[i] = (float)(urand() * 0.4 - 0.2);
    return 0;
}

static double total_f64(gc_t *g, const double *p, const double *x)
{
    double loss[3], t = NAN;
    model_train_step_f64(g->m, p, x, g->c, g->ac, g->bu, NULL, GB, NULL, NULL, loss, &t);
    return t;
}

static double total_f32(gc_t *g, const float *x)
{
    double loss[3];
    model_loss(g->m, x, g->c, g->ac, g->bu, NULL, GB, loss);
    return model_loss_total(g->m, loss);
}

/* Double: every parameter and every input against central differences. */
static void gradcheck_f64(int type, int th)
{
    gc_t g;
    double *p, *gr, dx[GB * 5], loss[3], worst = 0;

    if (gc_setup(&g, type, 100 + (uint64_t)type, th)) {
        CU_FAIL("model_new");
        return;
    }
    float *pf = model_params(g.m, &g.n);
    p = malloc(g.n * sizeof(double));
    gr = malloc(g.n * sizeof(double));
    for (size_t i = 0; i < g.n; i++)
        p[i] = pf[i];
    CU_ASSERT_EQUAL(
        model_train_step_f64(g.m, p, g.xd, g.c, g.ac, g.bu, NULL, GB, gr, dx, loss, NULL), 0);
    for (size_t i = 0; i < g.n; i++) {
        double v = p[i], e = 1e-5;
        p[i] = v + e;
        double lp = total_f64(&g, p, g.xd);
        p[i] = v - e;
        double lm = total_f64(&g, p, g.xd);
        p[i] = v;
        double err = rel_err(gr[i], (lp - lm) / (2 * e), 1e-3);
        if (err > worst)
            worst = err;
    }
    for (size_t i = 0; i < GB * g.D; i++) {
        double v = g.xd[i], e = 1e-5;
        g.xd[i] = v + e;
        double lp = total_f64(&g, p, g.xd);
        g.xd[i] = v - e;
        double lm = total_f64(&g, p, g.xd);
        g.xd[i] = v;
        double err = rel_err(dx[i], (lp - lm) / (2 * e), 1e-3);
        if (err > worst)
            worst = err;
    }
    CU_ASSERT(worst < 1e-6);
    if (getenv("FUNNEL_TEST_VERBOSE") || !(worst < 1e-6))
        fprintf(stderr, "\n    %s, %d threads: double gradient check: worst relative error %.3g\n",
                heads_name(heads_for(type)), THREADS[th].n, worst);
    free(gr);
    free(p);
    model_destroy(&g.m);
}

static void test_net_gradcheck_f64(void)
{
    for (int type = 0; type < 3; type++)
        for (size_t th = 0; th < NTHREADS; th++)
            gradcheck_f64(type, (int)th);
}

/*
 * Float: the training path's gradients against central differences of the
 * training path's loss. A tower's logit is piecewise linear in any one
 * parameter, so a difference with step e is exact for it unless e moves a
 * hidden unit across its ReLU kink. The double twin, differenced with the
 * very same perturbed values, tells those few parameters apart (its
 * difference then disagrees with its own analytic gradient); they are
 * skipped, and there must be few of them.
 */
static void gradcheck_f32(int type, int th)
{
    gc_t g;
    size_t skipped = 0, checked = 0;
    double worst = 0, worst_vs64 = 0, loss[3];
    float dx[GB * 5];

    if (gc_setup(&g, type, 200 + (uint64_t)type, th)) {
        CU_FAIL("model_new");
        return;
    }
    float *pf = model_params(g.m, &g.n);
    float *gf = malloc(g.n * sizeof(float));
    double *p = malloc(g.n * sizeof(double)), *g64 = malloc(g.n * sizeof(double));
    double dx64[GB * 5];

    CU_ASSERT_EQUAL(model_train_step(g.m, g.x, g.c, g.ac, g.bu, NULL, GB, dx, loss), 0);
    memcpy(gf, model_grads(g.m, &g.n), g.n * sizeof(float));
    for (size_t i = 0; i < g.n; i++)
        p[i] = pf[i];
    model_train_step_f64(g.m, p, g.xd, g.c, g.ac, g.bu, NULL, GB, g64, dx64, loss, NULL);

    for (size_t i = 0; i < g.n + GB * g.D; i++) {
        int is_x = i >= g.n;
        size_t j = is_x ? i - g.n : i;
        float *slot = is_x ? &g.x[j] : &pf[j];
        double *slot64 = is_x ? &g.xd[j] : &p[j];
        double an = is_x ? dx[j] : gf[j], an64 = is_x ? dx64[j] : g64[j];
        float v = *slot;
        float up = v + 1e-3f, dn = v - 1e-3f;
        double step = (double)up - (double)dn;

        *slot = up;
        *slot64 = up;
        double lp = total_f32(&g, g.x), lp64 = total_f64(&g, p, g.xd);
        *slot = dn;
        *slot64 = dn;
        double lm = total_f32(&g, g.x), lm64 = total_f64(&g, p, g.xd);
        *slot = v;
        *slot64 = v;
        double fd = (lp - lm) / step, fd64 = (lp64 - lm64) / step;

        double e64 = rel_err(an, an64, 1e-2);
        if (e64 > worst_vs64)
            worst_vs64 = e64;
        if (rel_err(an64, fd64, 1e-2) > 1e-4) { /* a ReLU kink inside [dn, up] */
            skipped++;
            continue;
        }
        checked++;
        double err = rel_err(an, fd, 1e-2);
        if (err > worst)
            worst = err;
    }
    CU_ASSERT(worst < 1e-3);
    CU_ASSERT(worst_vs64 < 1e-4);
    CU_ASSERT(skipped * 10 < checked);
    if (getenv("FUNNEL_TEST_VERBOSE") || !(worst < 1e-3) || !(worst_vs64 < 1e-4) ||
        !(skipped * 10 < checked))
        fprintf(
            stderr,
            "\n    %s, %d threads: float check: worst %.3g, vs double %.3g, %zu skipped of %zu\n",
            heads_name(heads_for(type)), THREADS[th].n, worst, worst_vs64, skipped,
            skipped + checked);
    free(g64);
    free(p);
    free(gf);
    model_destroy(&g.m);
}

static void test_net_gradcheck_f32(void)
{
    for (int type = 0; type < 3; type++)
        for (size_t th = 0; th < NTHREADS; th++)
            gradcheck_f32(type, (int)th);
}

/* Every thread setting computes the same step: gradients, losses and
 * predictions bit for bit (each tower runs the same single-threaded code),
 * dx up to the order of the towers' sum; the optimizer step too. On each
 * library of the products (dense_gemm_set). */
static void threads_agree(int lib)
{
    enum { B = 33 };
    float x[B * 5], dx0[B * 5], dx[B * 5], out0[B * 4], out[B * 4];
    uint8_t c[B], ac[B], bu[B];
    double l0[3], l[3];
    size_t n;

    int lib0 = dense_gemm_get();

    dense_gemm_set(lib);
    rs = 21;
    for (size_t i = 0; i < B * 5; i++)
        x[i] = (float)(urand() * 2 - 1);
    labels(c, ac, bu, B, 0.5);
    for (int type = 0; type < 3; type++) {
        model_spec_t ms = small_spec(type, OPTIM_ADAM);
        model_t *ref = model_new(&ms, B, 8, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
        model_train_step(ref, x, c, ac, bu, NULL, B, dx0, l0);
        model_predict(ref, x, B, out0);
        model_apply_grads(ref);
        float *g0 = model_grads(ref, &n), *p0 = model_params(ref, &n);
        for (int n_th = 1; n_th <= 4; n_th++)
            for (int par = 0; par < 2; par++) {
                model_t *m = model_new(&ms, B, 8, NULL);
                int got_par;
                CU_ASSERT_EQUAL(model_threads_set(m, n_th, par, NULL), 0);
                CU_ASSERT_EQUAL(model_threads(m, &got_par), n_th);
                CU_ASSERT_EQUAL(got_par, par);
                model_train_step(m, x, c, ac, bu, NULL, B, dx, l);
                model_predict(m, x, B, out);
                model_apply_grads(m);
                if (par == MODEL_PAR_TOWERS) {
                    CU_ASSERT_EQUAL(memcmp(g0, model_grads(m, &n), n * sizeof(float)), 0);
                    CU_ASSERT_EQUAL(memcmp(p0, model_params(m, &n), n * sizeof(float)), 0);
                    CU_ASSERT_EQUAL(memcmp(out0, out, sizeof(out)), 0);
                    for (int k = 0; k < model_nloss(m); k++)
                        CU_ASSERT_EQUAL(l0[k], l[k]);
                }
                for (size_t i = 0; i < n; i++)
                    CU_ASSERT(rel_err(model_grads(m, &n)[i], g0[i], 1e-3) < 1e-5);
                for (size_t i = 0; i < B * 5; i++)
                    CU_ASSERT(rel_err(dx[i], dx0[i], 1e-3) < 1e-5);
                model_destroy(&m);
            }
        model_destroy(&ref);
    }
    dense_gemm_set(lib0);
}

static void test_threads_agree(void)
{
    threads_agree(DENSE_GEMM_ONEDNN);
    threads_agree(DENSE_GEMM_OPENBLAS);
    model_t *m = model_new(&(model_spec_t){0}, 4, 1, NULL);
    CU_ASSERT_PTR_NULL(m);
    model_spec_t ms = small_spec(MODEL_ESMM, OPTIM_ADAM);
    m = model_new(&ms, 4, 1, NULL);
    errbuf_t eb;
    CU_ASSERT_EQUAL(model_threads_set(m, 0, MODEL_PAR_TOWERS, &eb), ERR_INVAL);
    CU_ASSERT_EQUAL(model_threads_set(m, 2, 7, &eb), ERR_INVAL);
    CU_ASSERT_EQUAL(model_threads(m, NULL), 1);
    model_destroy(&m);
}

/*
 * The same at the default model's size (esm2, 16-dim slots x 8, towers
 * 256-128-64, batch 512), where the libraries pick their blocked kernels:
 * two steps on 1, 2 and 3 threads give the same parameters bit for bit,
 * on each library.
 */
static void test_threads_agree_full_size(void)
{
    enum { B = 512, D = 128 };
    float *x = malloc(B * D * sizeof(float)), *dx = malloc(B * D * sizeof(float));
    float *p1 = NULL;
    uint8_t c[B], ac[B], bu[B];
    double l[3];
    size_t n = 0;
    int lib0 = dense_gemm_get();

    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dx);
    rs = 5;
    for (size_t i = 0; i < B * D; i++)
        x[i] = (float)(urand() - 0.5);
    labels(c, ac, bu, B, 0.3);
    for (int lib = 0; lib < 2; lib++) {
        dense_gemm_set(lib);
        for (int th = 1; th <= 3; th++) {
            model_spec_t ms = small_spec(MODEL_ESM2, OPTIM_ADAM);
            ms.input_dim = D;
            ms.nlayers = 3;
            ms.layer[0] = 256;
            ms.layer[1] = 128;
            ms.layer[2] = 64;
            model_t *m = model_new(&ms, B, 3, NULL);
            CU_ASSERT_PTR_NOT_NULL_FATAL(m);
            CU_ASSERT_EQUAL(model_threads_set(m, th, MODEL_PAR_TOWERS, NULL), 0);
            for (int k = 0; k < 2; k++) {
                model_train_step(m, x, c, ac, bu, NULL, B, dx, l);
                model_apply_grads(m);
            }
            float *p = model_params(m, &n);
            if (th == 1) {
                free(p1);
                p1 = malloc(n * sizeof(float));
                CU_ASSERT_PTR_NOT_NULL_FATAL(p1);
                memcpy(p1, p, n * sizeof(float));
            } else {
                CU_ASSERT_EQUAL(memcmp(p1, p, n * sizeof(float)), 0);
            }
            model_destroy(&m);
        }
    }
    dense_gemm_set(lib0);
    free(p1);
    free(dx);
    free(x);
}

/* The optimizer step runs flush-to-zero and denormals-are-zero (a denormal
 * first moment of a weight whose gradient stays 0 would stick at a few ulp
 * and slow every update), and gives the caller back its float mode. */
static void test_apply_flushes_denormals(void)
{
    model_spec_t ms = small_spec(MODEL_ESM2, OPTIM_ADAM);
    model_t *m = model_new(&ms, 4, 1, NULL);
    volatile float tiny = 1e-30f, small = 1e-10f;
    size_t n, ns, zeros = 0;
    float *g, *st, *p0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    g = model_grads(m, &n);
    st = model_opt_state(m, &ns);
    p0 = malloc(n * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p0);
    memcpy(p0, model_params(m, &n), n * sizeof(float));
    memset(g, 0, n * sizeof(float));
    for (size_t i = 0; i < ns; i++) /* 4 ulp: b1 m and b2 v round back to it */
        st[i] = 4 * 0x1p-149f;
    model_apply_grads(m);
    for (size_t i = 0; i < ns; i++)
        zeros += st[i] == 0.0f;
#if defined(__x86_64__)
    CU_ASSERT_EQUAL(zeros, ns);
#endif
    CU_ASSERT_EQUAL(memcmp(p0, model_params(m, &n), n * sizeof(float)), 0);
    CU_ASSERT(tiny * small > 0.0f); /* the caller still has denormals */
    free(p0);
    model_destroy(&m);
}

/* ---- init, errors, shapes --------------------------------------------------- */

static void test_init_and_errors(void)
{
    model_spec_t ms = small_spec(MODEL_ESM2, OPTIM_ADAM);
    errbuf_t eb;
    model_t *a = model_new(&ms, 8, 1, &eb), *b = model_new(&ms, 8, 1, &eb);
    model_t *c = model_new(&ms, 8, 2, &eb);
    size_t n, nb, nc, ns;
    float x[5] = {0}, dx[5], out[4];
    uint8_t l0 = 0;
    double loss[3];

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    /* 4 towers of 5->4->3->1: (20+4) + (12+3) + (3+1) = 43 each */
    float *pa = model_params(a, &n), *pb = model_params(b, &nb), *pc = model_params(c, &nc);
    CU_ASSERT_EQUAL(n, 4 * 43);
    CU_ASSERT_EQUAL(memcmp(pa, pb, n * sizeof(float)), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(pa, pc, n * sizeof(float)), 0);
    model_opt_state(a, &ns);
    CU_ASSERT_EQUAL(ns, 2 * n);
    /* tower 0, layer 0: W (4,5) within 1/sqrt(5), then zero b */
    for (int i = 0; i < 20; i++)
        CU_ASSERT(fabsf(pa[i]) <= 1.0f / sqrtf(5.0f) && pa[i] != 0.0f);
    for (int i = 20; i < 24; i++)
        CU_ASSERT_EQUAL(pa[i], 0.0f);
    /* layer 1: W (3,4) within 1/2 */
    for (int i = 24; i < 36; i++)
        CU_ASSERT(fabsf(pa[i]) <= 0.5f);
    CU_ASSERT_EQUAL(model_flops_per_sample(a), 4 * 6.0 * (20 + 12 + 3));

    CU_ASSERT_EQUAL(model_train_step(a, x, &l0, &l0, &l0, NULL, 0, dx, loss), ERR_INVAL);
    CU_ASSERT_EQUAL(model_train_step(a, x, &l0, &l0, &l0, NULL, 9, dx, loss), ERR_INVAL);
    CU_ASSERT_EQUAL(model_predict(a, x, 9, out), ERR_INVAL);
    CU_ASSERT_EQUAL(model_train_step(a, x, &l0, &l0, &l0, NULL, 1, NULL, loss), 0);

    ms.type = 7;
    CU_ASSERT_PTR_NULL(model_new(&ms, 8, 1, &eb));
    CU_ASSERT(strstr(eb.msg, "type") != NULL);
    ms = small_spec(MODEL_ESMM, OPTIM_ADAM);
    ms.nloss = 3;
    CU_ASSERT_PTR_NULL(model_new(&ms, 8, 1, &eb));
    ms = small_spec(MODEL_ESMM, OPTIM_FTRL);
    CU_ASSERT_PTR_NULL(model_new(&ms, 8, 1, &eb));
    ms = small_spec(MODEL_ESMM, OPTIM_ADAM);
    ms.layer[1] = 0;
    CU_ASSERT_PTR_NULL(model_new(&ms, 8, 1, &eb));
    CU_ASSERT_PTR_NULL(model_new(&ms, 0, 1, &eb));
    /* no hidden layers: a logistic regression per tower */
    ms = small_spec(MODEL_NAIVE, OPTIM_ADAGRAD);
    ms.nlayers = 0;
    model_t *lr = model_new(&ms, 4, 1, &eb);
    CU_ASSERT_PTR_NOT_NULL(lr);
    if (lr) {
        model_params(lr, &n);
        CU_ASSERT_EQUAL(n, 2 * 6);
        model_opt_state(lr, &ns);
        CU_ASSERT_EQUAL(ns, n);
    }
    model_destroy(&lr);
    model_destroy(&a);
    model_destroy(&b);
    model_destroy(&c);
    CU_ASSERT_PTR_NULL(a);
    model_destroy(NULL);
    model_destroy(&a);
}

/* ---- checkpoint ------------------------------------------------------------- */

static void test_save_load(void)
{
    char dir[512], path[600];
    model_spec_t ms = small_spec(MODEL_ESM2, OPTIM_ADAM);
    model_t *a = model_new(&ms, 32, 3, NULL), *b = model_new(&ms, 32, 4, NULL);
    float x[32 * 5], dx[32 * 5], pa[32 * 4], pb[32 * 4];
    uint8_t c[32], ac[32], bu[32];
    double loss[3];
    errbuf_t eb;
    FILE *f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "model"), 0);
    snprintf(path, sizeof(path), "%s/dense.bin", dir);
    rs = 9;
    for (size_t i = 0; i < 32 * 5; i++)
        x[i] = (float)(urand() * 2 - 1);
    labels(c, ac, bu, 32, 0.5);
    for (int s = 0; s < 3; s++) { /* some steps so the optimizer state is not zero */
        model_train_step(a, x, c, ac, bu, NULL, 32, dx, loss);
        model_apply_grads(a);
    }
    f = fopen(path, "wb");
    CU_ASSERT_EQUAL(model_save_dense(a, f, &eb), 0);
    fclose(f);
    f = fopen(path, "rb");
    CU_ASSERT_EQUAL(model_load_dense(b, f, &eb), 0);
    fclose(f);
    size_t n, ns;
    float *sa = model_opt_state(a, &ns), *sb = model_opt_state(b, &ns);
    float *wa = model_params(a, &n), *wb = model_params(b, &n);
    CU_ASSERT_EQUAL(memcmp(wa, wb, n * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(sa, sb, ns * sizeof(float)), 0);
    CU_ASSERT_EQUAL(model_step(b), 3);
    model_predict(a, x, 32, pa);
    model_predict(b, x, 32, pb);
    CU_ASSERT_EQUAL(memcmp(pa, pb, sizeof(pa)), 0);

    /* mismatches: type, layer size, input dim, optimizer */
    model_spec_t bad[4];
    const char *field[4] = {"model type", "hidden layer 1", "input_dim", "optimizer"};
    for (int k = 0; k < 4; k++)
        bad[k] = ms;
    bad[0] = small_spec(MODEL_ESMM, OPTIM_ADAM);
    bad[1].layer[1] = 5;
    bad[2].input_dim = 6;
    bad[3].dense_opt.kind = OPTIM_ADAGRAD;
    for (int k = 0; k < 4; k++) {
        model_t *o = model_new(&bad[k], 4, 1, NULL);
        f = fopen(path, "rb");
        CU_ASSERT_EQUAL(model_load_dense(o, f, &eb), ERR_MISMATCH);
        CU_ASSERT(strstr(eb.msg, field[k]) != NULL);
        fclose(f);
        model_destroy(&o);
    }

    /* truncated, corrupted, wrong magic, wrong version: b stays as it was */
    size_t len;
    char *bytes = tu_slurp(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    model_t *fresh = model_new(&ms, 4, 77, NULL);
    float before[4 * 43];
    memcpy(before, model_params(fresh, &n), sizeof(before));
    struct {
        size_t off; /* byte to flip, or cut length */
        int cut;
        int want;
    } cases[] = {
        {len - 1, 1, ERR_CORRUPT}, {40, 1, ERR_CORRUPT}, {3, 1, ERR_CORRUPT},
        {len / 2, 0, ERR_CORRUPT}, {0, 0, ERR_CORRUPT},  {8, 0, ERR_VERSION},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        f = fopen(path, "wb");
        if (cases[k].cut) {
            fwrite(bytes, 1, cases[k].off, f);
        } else {
            bytes[cases[k].off] ^= 0x10;
            fwrite(bytes, 1, len, f);
            bytes[cases[k].off] ^= 0x10;
        }
        fclose(f);
        f = fopen(path, "rb");
        CU_ASSERT_EQUAL(model_load_dense(fresh, f, &eb), cases[k].want);
        fclose(f);
        CU_ASSERT_EQUAL(memcmp(before, model_params(fresh, &n), sizeof(before)), 0);
        CU_ASSERT_EQUAL(model_step(fresh), 0);
    }
    free(bytes);
    model_destroy(&fresh);
    tu_rmtree(dir);
    model_destroy(&a);
    model_destroy(&b);
}

/* ---- learning --------------------------------------------------------------- */

/* A few hundred Adam steps on a separable synthetic funnel reduce every loss. */
static void test_learns(void)
{
    enum { D = 8, B = 64, NB = 8 };
    static float x[NB][B * D];
    static uint8_t c[NB][B], ac[NB][B], bu[NB][B];
    float dx[B * D];

    rs = 3;
    for (int k = 0; k < NB; k++)
        for (int i = 0; i < B; i++) {
            float *r = x[k] + i * D;
            for (int d = 0; d < D; d++)
                r[d] = (float)(urand() * 2 - 1);
            c[k][i] = r[0] + r[1] > 0;
            ac[k][i] = c[k][i] && r[2] > 0;
            bu[k][i] = c[k][i] && (ac[k][i] ? r[3] > -0.5f : r[4] > 0.5f);
        }
    for (int type = 0; type < 3; type++) {
        model_spec_t ms = small_spec(type, OPTIM_ADAM);
        ms.input_dim = D;
        ms.layer[0] = 16;
        ms.layer[1] = 8;
        model_t *m = model_new(&ms, B, 5, NULL);
        double first[3] = {0}, last[3] = {0}, loss[3];
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        for (int step = 0; step < 400; step++) {
            int k = step % NB;
            CU_ASSERT_EQUAL(model_train_step(m, x[k], c[k], ac[k], bu[k], NULL, B, dx, loss), 0);
            model_apply_grads(m);
            for (int j = 0; j < model_nloss(m); j++) {
                if (step < NB)
                    first[j] += loss[j] / NB;
                if (step >= 400 - NB)
                    last[j] += loss[j] / NB;
            }
        }
        for (int j = 0; j < model_nloss(m); j++)
            CU_ASSERT(last[j] < 0.5 * first[j]);
        CU_ASSERT_EQUAL(model_step(m), 400);
        model_destroy(&m);
    }
}

int test_model_register(void)
{
    CU_pSuite s = CU_add_suite("model", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "heads table", test_heads_table);
    CU_add_test(s, "head losses and predictions against direct formulas", test_heads_direct);
    CU_add_test(s, "saturated logits: exact losses, bounded gradients", test_heads_saturated);
    CU_add_test(s, "logit gradients vs finite differences, saturated", test_heads_gradcheck);
    CU_add_test(s, "network gradients vs finite differences, double", test_net_gradcheck_f64);
    CU_add_test(s, "network gradients vs finite differences, float", test_net_gradcheck_f32);
    CU_add_test(s, "every thread setting computes the same step, both libraries",
                test_threads_agree);
    CU_add_test(s, "the same at the default model's size, 1 to 3 threads",
                test_threads_agree_full_size);
    CU_add_test(s, "the optimizer step flushes denormals, keeps the caller's float mode",
                test_apply_flushes_denormals);
    CU_add_test(s, "init, shapes and argument errors", test_init_and_errors);
    CU_add_test(s, "save, load, predict; mismatch and corruption", test_save_load);
    CU_add_test(s, "a few hundred steps learn a separable funnel", test_learns);
    return CU_get_error();
}
