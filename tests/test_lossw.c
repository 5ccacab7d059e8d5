/*
 * test_lossw.c - loss weighting (model/lossw.h, issue 15 point 2):
 *   - the min-norm solver against the closed form of two tasks (MGDA's
 *     clip((G22 - G12) / (G11 + G22 - 2 G12))), a known 2-task quadratic,
 *     the KKT conditions of three tasks, and a fine grid with lower bounds;
 *   - the logit-gradient Gram matrix against explicit dot products of
 *     each loss's gradient;
 *   - on a batch: the weights a pareto esmm model used equal the closed
 *     form computed here from the batch's logits and the esmm losses'
 *     gradients written out by hand; its parameter gradients equal a fixed
 *     model's with those weights;
 *   - uncertainty: every parameter (the log-variances s_k included) and
 *     input against central finite differences, double 1e-6 and float 1e-3,
 *     on concat and mmoe; d total / d s_k = 1 - exp(-s_k) w_k L_k;
 *   - the dense file: uncertainty writes version 3 and loads back
 *     identical; an old (version 1) file loads with s_k = 0; a version 3
 *     file into a model without log-variances is refused naming
 *     loss_weighting; fixed and pareto write the same bytes as before;
 *   - real processes: uncertainty and pareto train, print their weights
 *     in the metrics records, save (META records uncertainty), predict from
 *     the directory and continue with --init_from (also a fixed model
 *     continued under uncertainty); both on a 2-shard cluster: the learned
 *     s_k move, checkpoint, predict from the checkpoint what the cluster
 *     predicted, restart the shards from it and train on.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/heads.h"
#include "model/lossw.h"
#include "model/model.h"
#include "tests/util.h"

static uint64_t rs;

static double urand(void) /* [0, 1) */
{
    rs = rs * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (double)(rs >> 11) * 0x1.0p-53;
}

static double rel_err(double a, double b, double floor)
{
    double s = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) / (s > floor ? s : floor);
}

/* G = V V^T of K random vectors of length n (a Gram matrix). */
static void random_gram(int K, int n, double *G)
{
    double v[3][8];
    for (int k = 0; k < K; k++)
        for (int i = 0; i < n; i++)
            v[k][i] = urand() * 2 - 1;
    for (int k = 0; k < K; k++)
        for (int l = 0; l < K; l++) {
            G[k * K + l] = 0;
            for (int i = 0; i < n; i++)
                G[k * K + l] += v[k][i] * v[l][i];
        }
}

static double quad(int K, const double *G, const double *u)
{
    double q = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            q += u[i] * G[i * K + j] * u[j];
    return q;
}

static double closed2(const double *G) /* MGDA's u_1 for two tasks */
{
    double d = G[0] + G[3] - 2 * G[1], g = d > 0 ? (G[3] - G[1]) / d : 0.5;
    return g < 0 ? 0 : g > 1 ? 1 : g;
}

static void test_min_norm(void)
{
    double G[9], u[3];

    /* g1 = (1, 0), g2 = (0, 2): min || a g1 + (1 - a) g2 || at a = 4/5 */
    double Q[4] = {1, 0, 0, 4};
    CU_ASSERT_EQUAL(lossw_min_norm(2, Q, 0.0, u), 0);
    CU_ASSERT_DOUBLE_EQUAL(u[0], 0.8, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(u[1], 0.2, 1e-12);
    /* the same with a lower bound above the optimum's share: u2 = 0.3 */
    CU_ASSERT_EQUAL(lossw_min_norm(2, Q, 0.3, u), 0);
    CU_ASSERT_DOUBLE_EQUAL(u[1], 0.3, 1e-12);
    /* parallel gradients g2 = 2 g1: all on g1 (a vertex) */
    double P[4] = {1, 2, 2, 4};
    CU_ASSERT_EQUAL(lossw_min_norm(2, P, 0.0, u), 0);
    CU_ASSERT_DOUBLE_EQUAL(u[0], 1.0, 1e-12);
    /* random 2-task Grams against the closed form */
    rs = 11;
    for (int t = 0; t < 200; t++) {
        random_gram(2, 1 + t % 5, G);
        CU_ASSERT_EQUAL(lossw_min_norm(2, G, 0.0, u), 0);
        CU_ASSERT(fabs(u[0] - closed2(G)) < 1e-9 ||
                  fabs(quad(2, G, u) - quad(2, G, (double[]){closed2(G), 1 - closed2(G)})) < 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(u[0] + u[1], 1.0, 1e-12);
    }
    /* three tasks: KKT (G u)_k >= u'G u, with equality where u_k > 0 */
    for (int t = 0; t < 200; t++) {
        random_gram(3, 1 + t % 6, G);
        CU_ASSERT_EQUAL(lossw_min_norm(3, G, 0.0, u), 0);
        double q = quad(3, G, u), sum = 0;
        for (int k = 0; k < 3; k++) {
            double gk = G[k * 3] * u[0] + G[k * 3 + 1] * u[1] + G[k * 3 + 2] * u[2];
            CU_ASSERT(u[k] >= 0);
            CU_ASSERT(gk >= q - 1e-9);
            if (u[k] > 1e-9)
                CU_ASSERT(fabs(gk - q) < 1e-9);
            sum += u[k];
        }
        CU_ASSERT_DOUBLE_EQUAL(sum, 1.0, 1e-12);
    }
    /* three tasks with lower bounds 0.1: no point of a fine grid is better */
    for (int t = 0; t < 30; t++) {
        double best = INFINITY;
        random_gram(3, 2 + t % 3, G);
        CU_ASSERT_EQUAL(lossw_min_norm(3, G, 0.1, u), 0);
        for (int k = 0; k < 3; k++)
            CU_ASSERT(u[k] >= 0.1 - 1e-12);
        for (int i = 0; i <= 700; i++)
            for (int j = 0; i + j <= 700; j++) {
                double v[3] = {0.1 + i * 1e-3, 0.1 + j * 1e-3, 0.1 + (700 - i - j) * 1e-3};
                double q = quad(3, G, v);
                if (q < best)
                    best = q;
            }
        CU_ASSERT(quad(3, G, u) <= best + 1e-12);
    }
    /* bounds that cannot hold are refused */
    CU_ASSERT_EQUAL(lossw_min_norm(3, G, 0.4, u), -1);
    CU_ASSERT_EQUAL(lossw_min_norm(0, G, 0.0, u), -1);
}

/* heads_gram against explicit dot products of each loss's gradient. */
static void test_gram(void)
{
    enum { B = 12 };
    for (int type = 0; type <= MODEL_NMTR; type++) {
        const heads_t *h = heads_for(type);
        const int T = heads_ntowers(h), K = heads_nloss(h);
        double a[B * 4], g[3][B * 4], G[9], loss[3];
        float sw[B];
        uint8_t c[B], ac[B], bu[B];
        heads_sample_t smp = {.weight = sw};

        rs = 40 + (uint64_t)type;
        for (int i = 0; i < B; i++) {
            for (int j = 0; j < T; j++)
                a[i * T + j] = urand() * 4 - 2;
            c[i] = i < 2 || urand() < 0.5;
            ac[i] = urand() < 0.5;
            bu[i] = c[i] && urand() < 0.4;
            sw[i] = (float)(0.5 + urand());
        }
        for (int k = 0; k < K; k++) {
            double w[3] = {0, 0, 0};
            w[k] = 1;
            heads_loss_w(h, a, c, ac, bu, &smp, B, w, loss, g[k]);
        }
        heads_gram(h, a, c, ac, bu, &smp, B, G);
        for (int k = 0; k < K; k++)
            for (int l = 0; l < K; l++) {
                double d = 0;
                for (int i = 0; i < B * T; i++)
                    d += g[k][i] * g[l][i];
                CU_ASSERT(fabs(G[k * K + l] - d) < 1e-12 * (1 + fabs(d) + G[k * K + k]));
            }
    }
}

enum { D = 5, GB = 7 };

static model_spec_t spec(int type, int bottom, int lw)
{
    model_spec_t ms;
    memset(&ms, 0, sizeof(ms));
    ms.type = type;
    ms.ntowers = type == MODEL_ESM2 ? 4 : type == MODEL_NMTR ? 3 : 2;
    ms.nloss = type == MODEL_ESM2 || type == MODEL_NMTR ? 3 : 2;
    ms.loss_weight[0] = 1.0f;
    ms.loss_weight[1] = 0.7f;
    ms.loss_weight[2] = 1.3f;
    ms.input_dim = D;
    ms.nlayers = 1;
    ms.layer[0] = 3;
    ms.dense_opt.kind = OPTIM_ADAM;
    ms.dense_opt.lr = 0.01f;
    ms.dense_opt.eps = 1e-8f;
    ms.dense_opt.beta1 = 0.9f;
    ms.dense_opt.beta2 = 0.999f;
    ms.bottom = bottom;
    if (bottom == MODEL_BOTTOM_MMOE) {
        ms.nbottom_layers = 2;
        ms.bottom_layer[0] = 4;
        ms.bottom_layer[1] = 3;
        ms.experts = 3;
    }
    ms.loss_weighting = lw;
    ms.pareto_min = 0.0f;
    return ms;
}

typedef struct gc {
    model_t *m;
    size_t n;
    float x[GB * D];
    double xd[GB * D];
    uint8_t c[GB], ac[GB], bu[GB];
} gc_t;

static int gc_setup(gc_t *g, const model_spec_t *ms, uint64_t seed)
{
    float *p;

    memset(g, 0, sizeof(*g));
    if (!(g->m = model_new(ms, 16, seed, NULL)))
        return -1;
    rs = seed;
    for (size_t i = 0; i < GB * D; i++) {
        g->x[i] = (float)(urand() * 4 - 2);
        g->xd[i] = g->x[i];
    }
    for (size_t i = 0; i < GB; i++) {
        g->c[i] = i == 0 || urand() < 0.6;
        g->ac[i] = g->c[i] && urand() < 0.5;
        g->bu[i] = g->c[i] && (i == 1 || urand() < 0.5);
    }
    p = model_params(g->m, &g->n);
    for (size_t i = 0; i < g->n; i++)
        if (p[i] == 0.0f) /* nonzero biases, so that they matter */
            p[i] = (float)(urand() * 0.4 - 0.2);
    for (size_t k = 0; k < model_spec_lossw_len(ms); k++) /* s_k away from 0 */
        p[g->n - model_spec_lossw_len(ms) + k] = (float)(k % 2 ? 0.5 + 0.3 * k : -0.4 - 0.2 * k);
    return 0;
}

static double total_f64(gc_t *g, const double *p, const double *x)
{
    double loss[3], t = NAN;
    model_train_step_f64(g->m, p, x, g->c, g->ac, g->bu, NULL, GB, NULL, NULL, loss, &t);
    return t;
}

static double total_f32(gc_t *g)
{
    double loss[3];
    model_loss(g->m, g->x, g->c, g->ac, g->bu, NULL, GB, loss);
    return model_loss_total(g->m, loss);
}

/* Uncertainty: every parameter (s_k included) and input, double and float. */
static void gradcheck(int type, int bottom)
{
    model_spec_t ms = spec(type, bottom, MODEL_LW_UNCERTAINTY);
    gc_t g;
    double *p, *gr, dx[GB * D], loss[3], worst = 0, worst32 = 0, worst_s = 0;
    float dxf[GB * D], *gf;
    size_t skipped = 0, checked = 0, K = (size_t)ms.nloss;

    if (gc_setup(&g, &ms, 600 + (uint64_t)(type * 10 + bottom))) {
        CU_FAIL("model_new");
        return;
    }
    float *pf = model_params(g.m, &g.n);
    CU_ASSERT_EQUAL(g.n, model_spec_dense_len(&ms));
    p = malloc(g.n * sizeof(double));
    gr = malloc(g.n * sizeof(double));
    gf = malloc(g.n * sizeof(float));
    for (size_t i = 0; i < g.n; i++)
        p[i] = pf[i];
    CU_ASSERT_EQUAL(
        model_train_step_f64(g.m, p, g.xd, g.c, g.ac, g.bu, NULL, GB, gr, dx, loss, NULL), 0);
    /* the s_k's gradient by its formula: 1 - exp(-s_k) w_k L_k */
    for (size_t k = 0; k < K; k++) {
        double s = p[g.n - K + k];
        double want = 1.0 - exp(-s) * (double)ms.loss_weight[k] * loss[k];
        double e = rel_err(gr[g.n - K + k], want, 1e-9);
        if (e > worst_s)
            worst_s = e;
        CU_ASSERT(s != 0.0);
    }
    CU_ASSERT(worst_s < 1e-12);
    CU_ASSERT_EQUAL(model_train_step(g.m, g.x, g.c, g.ac, g.bu, NULL, GB, dxf, loss), 0);
    memcpy(gf, model_grads(g.m, &g.n), g.n * sizeof(float));
    for (size_t i = 0; i < g.n + GB * D; i++) {
        int is_x = i >= g.n;
        size_t j = is_x ? i - g.n : i;
        double *slot = is_x ? &g.xd[j] : &p[j];
        float *slot32 = is_x ? &g.x[j] : &pf[j];
        double an = is_x ? dx[j] : gr[j], an32 = is_x ? dxf[j] : gf[j];
        double v = *slot, e = 1e-5;
        float v32 = *slot32, up = v32 + 1e-3f, dn = v32 - 1e-3f;

        *slot = v + e;
        double lp = total_f64(&g, p, g.xd);
        *slot = v - e;
        double lm = total_f64(&g, p, g.xd);
        *slot = v;
        double err = rel_err(an, (lp - lm) / (2 * e), 1e-3);
        if (err > worst)
            worst = err;
        *slot = up;
        double lp64 = total_f64(&g, p, g.xd);
        *slot = dn;
        double lm64 = total_f64(&g, p, g.xd);
        *slot = v;
        double step = (double)up - (double)dn;
        if (rel_err(an, (lp64 - lm64) / step, 1e-2) > 1e-4) { /* a ReLU kink inside */
            skipped++;
            continue;
        }
        *slot32 = up;
        double lp32 = total_f32(&g);
        *slot32 = dn;
        double lm32 = total_f32(&g);
        *slot32 = v32;
        checked++;
        err = rel_err(an32, (lp32 - lm32) / step, 1e-2);
        if (err > worst32)
            worst32 = err;
    }
    CU_ASSERT(worst < 1e-6);
    CU_ASSERT(worst32 < 1e-3);
    CU_ASSERT(skipped * 10 < checked);
    if (getenv("FUNNEL_TEST_VERBOSE") || !(worst < 1e-6) || !(worst32 < 1e-3))
        fprintf(stderr,
                "\n    uncertainty, %s on %s: %zu params (%zu s_k) + %d inputs: double worst "
                "%.3g, float worst %.3g (%zu skipped), s_k formula %.3g\n",
                heads_name(heads_for(type)), model_bottom_name(bottom), g.n, K, GB * D, worst,
                worst32, skipped, worst_s);
    free(gf);
    free(gr);
    free(p);
    model_destroy(&g.m);
}

static void test_gradcheck(void)
{
    for (int type = 0; type <= MODEL_NMTR; type++)
        gradcheck(type, MODEL_BOTTOM_CONCAT);
    gradcheck(MODEL_ESM2, MODEL_BOTTOM_MMOE);
}

static double sig(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/*
 * Pareto on a batch, esmm: the logits come back from the predictions
 * (pctr = sigma(a0), pcvr = sigma(a1)); the two losses' logit gradients
 * are written out here, their Gram gives the closed-form shares, and the
 * model's weights are 2 times them. A fixed model with those weights has
 * the same parameter gradients.
 */
static void test_pareto_batch(void)
{
    enum { B = 16 };
    model_spec_t ms = spec(MODEL_ESMM, MODEL_BOTTOM_CONCAT, MODEL_LW_PARETO);
    model_spec_t fx = spec(MODEL_ESMM, MODEL_BOTTOM_CONCAT, MODEL_LW_FIXED);
    model_t *m = model_new(&ms, B, 3, NULL), *f;
    float x[B * D], pred[B * HEADS_NPRED], *gp, *gfx;
    uint8_t c[B], ac[B], bu[B];
    double loss[3], w[3], g1[B * 2], g2[B * 2], G[4], w0[3];
    size_t n, nf;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    rs = 17;
    for (int i = 0; i < B * D; i++)
        x[i] = (float)(urand() * 2 - 1);
    for (int i = 0; i < B; i++) {
        c[i] = urand() < 0.5;
        ac[i] = 0;
        bu[i] = c[i] && urand() < 0.5;
    }
    /* before any step: equal weights */
    CU_ASSERT_EQUAL(model_loss_weights(m, w0), 2);
    CU_ASSERT(w0[0] == 1.0 && w0[1] == 1.0);
    CU_ASSERT_EQUAL(model_train_step(m, x, c, ac, bu, NULL, B, NULL, loss), 0);
    CU_ASSERT_EQUAL(model_loss_weights(m, w), 2);
    model_predict(m, x, B, pred);
    for (int i = 0; i < B; i++) {
        double p0 = pred[i * HEADS_NPRED + HEADS_PCTR], p1 = pred[i * HEADS_NPRED + HEADS_PCVR];
        double a0 = log(p0 / (1 - p0)), a1 = log(p1 / (1 - p1));
        double y0 = sig(a0), y1 = sig(a1), p = y0 * y1;
        g1[i * 2] = (y0 - c[i]) / B; /* ctr: mean BCE(sigma(a0), click) */
        g1[i * 2 + 1] = 0;
        if (bu[i]) { /* ctcvr: -log(y0 y1) */
            g2[i * 2] = -(1 - y0) / B;
            g2[i * 2 + 1] = -(1 - y1) / B;
        } else { /* -log(1 - y0 y1) */
            g2[i * 2] = p * (1 - y0) / (1 - p) / B;
            g2[i * 2 + 1] = p * (1 - y1) / (1 - p) / B;
        }
    }
    G[0] = G[1] = G[3] = 0;
    for (int i = 0; i < B * 2; i++) {
        G[0] += g1[i] * g1[i];
        G[1] += g1[i] * g2[i];
        G[3] += g2[i] * g2[i];
    }
    G[2] = G[1];
    double u = closed2(G);
    if (getenv("FUNNEL_TEST_VERBOSE"))
        fprintf(stderr, "\n    pareto esmm batch: model %.6f / %.6f, closed form %.6f / %.6f\n",
                w[0], w[1], 2 * u, 2 * (1 - u));
    CU_ASSERT(fabs(w[0] - 2 * u) < 1e-4);
    CU_ASSERT(fabs(w[1] - 2 * (1 - u)) < 1e-4);
    CU_ASSERT(w[0] > 0.01 && w[1] > 0.01); /* an interior point: the test says something */
    /* a fixed model with these weights: the same gradients */
    fx.loss_weight[0] = (float)w[0];
    fx.loss_weight[1] = (float)w[1];
    f = model_new(&fx, B, 3, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    model_train_step(f, x, c, ac, bu, NULL, B, NULL, loss);
    gp = model_grads(m, &n);
    gfx = model_grads(f, &nf);
    CU_ASSERT_EQUAL_FATAL(n, nf);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < n; i++)
        gmax = fmax(gmax, fabs(gfx[i]));
    for (size_t i = 0; i < n; i++) /* float sums: relative to the largest gradient */
        worst = fmax(worst, fabs(gp[i] - gfx[i]) / gmax);
    if (getenv("FUNNEL_TEST_VERBOSE") || !(worst < 1e-5))
        fprintf(stderr, "    pareto vs fixed with its weights: worst gradient difference %.3g\n",
                worst);
    CU_ASSERT(gmax > 0);
    CU_ASSERT(worst < 1e-5);
    model_destroy(&f);
    model_destroy(&m);
}

/* The dense file under each weighting. */
static void test_dense_file(void)
{
    model_spec_t un = spec(MODEL_ESM2, MODEL_BOTTOM_CONCAT, MODEL_LW_UNCERTAINTY);
    model_spec_t fx = spec(MODEL_ESM2, MODEL_BOTTOM_CONCAT, MODEL_LW_FIXED);
    model_spec_t pa = spec(MODEL_ESM2, MODEL_BOTTOM_CONCAT, MODEL_LW_PARETO);
    model_t *a = model_new(&un, 16, 5, NULL), *b = model_new(&un, 16, 6, NULL);
    model_t *c = model_new(&fx, 16, 5, NULL), *d = model_new(&pa, 16, 5, NULL);
    float x[16 * D], pa_[16 * 4], pb[16 * 4];
    uint8_t cl[16] = {1, 0, 1, 1}, ac[16] = {1}, bu[16] = {1, 0, 0, 1};
    double loss[3];
    errbuf_t eb = {0};
    FILE *f = tmpfile(), *g = tmpfile();
    size_t n, nb, nc;

    CU_ASSERT_FATAL(a && b && c && d && f && g);
    rs = 9;
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
        x[i] = (float)(urand() * 2 - 1);
    for (int s = 0; s < 3; s++) {
        model_train_step(a, x, cl, ac, bu, NULL, 16, NULL, loss);
        model_apply_grads(a);
    }
    float *s_a = model_params(a, &n) + n - 3;
    CU_ASSERT(s_a[0] != 0.0f && s_a[2] != 0.0f); /* the s_k trained */
    CU_ASSERT_EQUAL(model_save_dense(a, f, &eb), 0);
    rewind(f);
    uint8_t hdr[12];
    CU_ASSERT_EQUAL(fread(hdr, 1, 12, f), 12);
    CU_ASSERT_EQUAL(hdr[8], MODEL_DENSE_VERSION_EXT);
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(b, f, &eb), 0);
    CU_ASSERT_EQUAL(memcmp(model_params(a, &n), model_params(b, &nb), n * sizeof(float)), 0);
    model_predict(a, x, 16, pa_);
    model_predict(b, x, 16, pb);
    CU_ASSERT_EQUAL(memcmp(pa_, pb, sizeof(pb)), 0);
    /* into a fixed model: refused, naming the key */
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(c, f, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "loss_weighting is uncertainty in the file but fixed"));
    /* fixed and pareto write the same (version 1) bytes */
    CU_ASSERT_EQUAL(model_save_dense(c, g, &eb), 0);
    long lc = ftell(g);
    CU_ASSERT_EQUAL(model_save_dense(d, g, &eb), 0);
    long ld = ftell(g) - lc;
    CU_ASSERT_EQUAL(lc, ld);
    rewind(g);
    char *bc = malloc((size_t)lc), *bd = malloc((size_t)lc);
    CU_ASSERT_EQUAL(fread(bc, 1, (size_t)lc, g), (size_t)lc);
    CU_ASSERT_EQUAL(fread(bd, 1, (size_t)lc, g), (size_t)lc);
    CU_ASSERT_EQUAL(memcmp(bc, bd, (size_t)lc), 0);
    CU_ASSERT_EQUAL((uint8_t)bc[8], MODEL_DENSE_VERSION_CONCAT);
    free(bc);
    free(bd);
    /* an old (version 1) file into an uncertainty model: the towers, s_k = 0 */
    rewind(g);
    CU_ASSERT_EQUAL(model_load_dense(b, g, &eb), 0);
    float *pbp = model_params(b, &nb), *pcp = model_params(c, &nc);
    CU_ASSERT_EQUAL(nb, nc + 3);
    CU_ASSERT_EQUAL(memcmp(pbp, pcp, nc * sizeof(float)), 0);
    CU_ASSERT(pbp[nc] == 0.0f && pbp[nc + 1] == 0.0f && pbp[nc + 2] == 0.0f);
    fclose(f);
    fclose(g);
    model_destroy(&a);
    model_destroy(&b);
    model_destroy(&c);
    model_destroy(&d);
}

/* ---- real processes ---------------------------------------------------- */

static char dir[512], bin[700];

#define SMALL "--towers 32,16 --emb_dim 8"

static int files_equal(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *ta = tu_slurp(a, &na), *tb = tu_slurp(b, &nb);
    int same = ta && tb && na == nb && na > 0 && memcmp(ta, tb, na) == 0;
    free(ta);
    free(tb);
    return same;
}

static long lines(const char *path)
{
    size_t n = 0;
    char *t = tu_slurp(path, &n);
    long c = 0;
    for (size_t i = 0; t && i < n; i++)
        c += t[i] == '\n';
    free(t);
    return c;
}

/* weight_<task> of the last record of a metrics file that has one, or NAN. */
static double last_weight(const char *path, const char *task)
{
    char *t = tu_slurp(path, NULL), key[64], *p, *last = NULL;
    double v = NAN;

    snprintf(key, sizeof(key), "\"weight_%s\":", task);
    for (p = t ? strstr(t, key) : NULL; p; p = strstr(p + 1, key))
        last = p;
    if (last)
        v = strtod(last + strlen(key), NULL);
    free(t);
    return v;
}

static void test_in_process(void)
{
    static const char *const lw[] = {"uncertainty", "pareto"};

    for (int k = 0; k < 2; k++) {
        char log[800], m1[800], m2[800], p1[800], p2[800], path[900], *text;
        double w;

        snprintf(log, sizeof(log), "%s/%s.log", dir, lw[k]);
        snprintf(m1, sizeof(m1), "%s/%s-1", dir, lw[k]);
        snprintf(m2, sizeof(m2), "%s/%s-2", dir, lw[k]);
        snprintf(p1, sizeof(p1), "%s/%s-1.pred", dir, lw[k]);
        snprintf(p2, sizeof(p2), "%s/%s-2.pred", dir, lw[k]);
        CU_ASSERT_EQUAL_FATAL(tu_sh(log,
                                    "%s/funnel-worker train " SMALL
                                    " --loss_weighting %s --metrics_interval 0.01 --model %s "
                                    "%s/data/a.tsv",
                                    bin, lw[k], m1, dir),
                              0);
        snprintf(path, sizeof(path), "%s.metrics.jsonl", m1);
        w = last_weight(path, "ctcvr");
        if (getenv("FUNNEL_TEST_VERBOSE"))
            fprintf(stderr, "\n    %s in process: weights %g / %g / %g\n", lw[k],
                    last_weight(path, "ctr"), last_weight(path, "ctavr"), w);
        CU_ASSERT(isfinite(w) && w > 0 && w != 1.0); /* printed, and moved from the start */
        snprintf(path, sizeof(path), "%s/META", m1);
        text = tu_slurp(path, NULL);
        CU_ASSERT(text && (strstr(text, "\nloss_weighting uncertainty\n") != NULL) == (k == 0));
        free(text);
        /* the layout (with the s_k) from META: no option */
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --model %s --in %s/data/test.tsv --out %s",
                              bin, m1, dir, p1),
                        0);
        CU_ASSERT_EQUAL(lines(p1), 3001);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker train --loss_weighting %s --init_from %s --model "
                              "%s %s/data/b.tsv",
                              bin, lw[k], m1, m2, dir),
                        0);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --model %s --in %s/data/test.tsv --out %s",
                              bin, m2, dir, p2),
                        0);
        CU_ASSERT_EQUAL(lines(p2), 3001);
        CU_ASSERT(!files_equal(p1, p2));
    }
    /* a fixed model continued under uncertainty (its s_k start at 0), and
     * an uncertainty model refused by an explicit other weighting */
    char log[800], f1[800], f2[800], path[900], *text;
    snprintf(log, sizeof(log), "%s/fixed.log", dir);
    snprintf(f1, sizeof(f1), "%s/fixed-1", dir);
    snprintf(f2, sizeof(f2), "%s/fixed-2", dir);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s/funnel-worker train " SMALL " --model %s %s/data/a.tsv", bin, f1, dir), 0);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-worker train --loss_weighting uncertainty --init_from %s "
                          "--model %s %s/data/b.tsv",
                          bin, f1, f2, dir),
                    0);
    snprintf(path, sizeof(path), "%s/META", f2);
    text = tu_slurp(path, NULL);
    CU_ASSERT(text && strstr(text, "\nloss_weighting uncertainty\n"));
    free(text);
    snprintf(log, sizeof(log), "%s/refused.log", dir);
    CU_ASSERT_NOT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --loss_weighting fixed --model %s/"
                              "uncertainty-1 --in %s/data/test.tsv --out %s/refused.pred",
                              bin, dir, dir, dir),
                        0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "loss_weighting") && strstr(text, "uncertainty"));
    free(text);
    /* lower bounds that cannot sum to 1 over esm2's 3 losses: refused, saying the bound */
    CU_ASSERT_NOT_EQUAL(tu_sh(log,
                              "%s/funnel-worker train --loss_weighting pareto --pareto_min_weight "
                              "0.4 --model %s/never %s/data/a.tsv",
                              bin, dir, dir),
                        0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "pareto_min_weight") && strstr(text, "at most 0.333333"));
    free(text);
}

static int start_shards(const char *cl, const char *extra, pid_t ps[2])
{
    char log[800];

    for (int i = 0; i < 2; i++) {
        snprintf(log, sizeof(log), "%s/ps%d.log", cl, i);
        ps[i] = tu_spawn(log,
                         "exec %s/funnel-ps --shard %d --shards 2 --listen ipc://%s/ps%d.sock "
                         "--data %s/ps%d %s",
                         bin, i, cl, i, cl, i, extra);
        if (ps[i] <= 0)
            return -1;
    }
    return 0;
}

static void stop_shards(pid_t ps[2])
{
    for (int i = 0; i < 2; i++)
        if (ps[i] > 0) {
            tu_stop(ps[i], SIGTERM);
            ps[i] = 0;
        }
}

static void test_cluster(void)
{
    static const char *const lw[] = {"uncertainty", "pareto"};

    for (int k = 0; k < 2; k++) {
        char cl[700], eps[1500], log[800], opt[200], ck[760], p1[800], p2[800], mf[800];
        pid_t ps[2] = {0, 0};

        snprintf(cl, sizeof(cl), "%s/cl-%s", dir, lw[k]);
        mkdir(cl, 0755);
        snprintf(eps, sizeof(eps), "ipc://%s/ps0.sock,ipc://%s/ps1.sock", cl, cl);
        snprintf(opt, sizeof(opt), SMALL " --loss_weighting %s", lw[k]);
        snprintf(log, sizeof(log), "%s/worker.log", cl);
        snprintf(ck, sizeof(ck), "%s/checkpoints/c1", cl);
        snprintf(p1, sizeof(p1), "%s/ps.pred", cl);
        snprintf(p2, sizeof(p2), "%s/ck.pred", cl);
        snprintf(mf, sizeof(mf), "%s/m.jsonl", cl);
        CU_ASSERT_EQUAL_FATAL(start_shards(cl, opt, ps), 0);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker train --ps %s %s --metrics_interval 0.01 "
                              "--metrics_file %s %s/data/a.tsv",
                              bin, eps, opt, mf, dir),
                        0);
        double w = last_weight(mf, "ctr");
        if (getenv("FUNNEL_TEST_VERBOSE"))
            fprintf(stderr, "\n    %s on 2 shards: weights %g / %g / %g\n", lw[k], w,
                    last_weight(mf, "ctavr"), last_weight(mf, "ctcvr"));
        /* uncertainty: exp(-s_k) moved, so the s_k went through the shards */
        CU_ASSERT(isfinite(w) && w > 0 && w != 1.0);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --ps %s %s --in %s/data/test.tsv --out %s",
                              bin, eps, opt, dir, p1),
                        0);
        CU_ASSERT_EQUAL(lines(p1), 3001);
        CU_ASSERT_EQUAL(
            tu_sh(log, "%s/funnel-worker ctl checkpoint --ps %s --name c1 %s", bin, eps, opt), 0);
        stop_shards(ps);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --model %s --in %s/data/test.tsv --out %s",
                              bin, ck, dir, p2),
                        0);
        CU_ASSERT(files_equal(p1, p2));
        /* shards restarted from the checkpoint (the weighting from its META):
         * the same predictions, and training goes on */
        char init[800], p3[800];
        snprintf(cl, sizeof(cl), "%s/cl-%s-2", dir, lw[k]);
        mkdir(cl, 0755);
        snprintf(eps, sizeof(eps), "ipc://%s/ps0.sock,ipc://%s/ps1.sock", cl, cl);
        snprintf(init, sizeof(init), "--init_from %s", ck);
        snprintf(p3, sizeof(p3), "%s/restarted.pred", cl);
        snprintf(log, sizeof(log), "%s/worker.log", cl);
        CU_ASSERT_EQUAL_FATAL(start_shards(cl, init, ps), 0);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --ps %s %s --in %s/data/test.tsv --out %s",
                              bin, eps, opt, dir, p3),
                        0);
        CU_ASSERT(files_equal(p1, p3));
        CU_ASSERT_EQUAL(
            tu_sh(log, "%s/funnel-worker train --ps %s %s --metrics_file %s/m.jsonl %s/data/b.tsv",
                  bin, eps, opt, cl, dir),
            0);
        stop_shards(ps);
    }
}

static int setup(void)
{
    char gen[600];

    if (tu_world(dir, sizeof(dir), "lossw", "--train 30000 --test 3000 --seed 29") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    return tu_sh(NULL,
                 "head -n 15000 %s/data/train.tsv > %s/data/a.tsv && "
                 "tail -n +15001 %s/data/train.tsv > %s/data/b.tsv",
                 dir, dir, dir, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    tu_stop_all();
    if (CU_get_number_of_failures() > 0)
        fprintf(stderr, "\n  lossw suite: files kept in %s\n", dir);
    else
        tu_rmtree(dir);
    return 0;
}

int test_lossw_register(void)
{
    CU_pSuite s = CU_add_suite("lossw", setup, teardown);

    if (!s)
        return -1;
    CU_add_test(s, "min-norm weights: closed form, a known quadratic, KKT, a grid with bounds",
                test_min_norm);
    CU_add_test(s, "the logit-gradient Gram matrix against explicit dot products", test_gram);
    CU_add_test(s, "pareto on a batch: the closed-form weights, a fixed model's gradients",
                test_pareto_batch);
    CU_add_test(s, "uncertainty: gradients (s_k too) vs finite differences, double and float",
                test_gradcheck);
    CU_add_test(s, "dense file: version 3 with s_k, old files load, fixed bytes unchanged",
                test_dense_file);
    CU_add_test(s, "uncertainty and pareto train, print weights, save, predict, --init_from",
                test_in_process);
    CU_add_test(s,
                "uncertainty and pareto on 2 shards: train, checkpoint, predict from it, restart",
                test_cluster);
    return 0;
}
