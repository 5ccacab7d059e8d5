/*
 * test_fuse.c - Bayesian optimization (worker/bayesopt.c) on functions with
 * a known maximum, the GP's defining properties, and score fusion
 * (worker/fuse.c): on rows whose labels follow a known fused score, and on
 * the real predictions of a model trained by funnel-worker on a
 * funnel-gen log.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "tests/util.h"
#include "worker/bayesopt.h"
#include "worker/fuse.h"
#include "worker/metrics.h"

/* Two bumps on [0, 1]: the global maximum 1 at x = 0.3 (the other bump's
 * tail adds < 1e-11 there), a local one of 0.6 at 0.8. */
static int bumps1(void *ctx, const double *x, double *y)
{
    int *calls = ctx;

    (*calls)++;
    *y = exp(-(x[0] - 0.3) * (x[0] - 0.3) / 0.02) + 0.6 * exp(-(x[0] - 0.8) * (x[0] - 0.8) / 0.01);
    return 0;
}

/* Two bumps on [0, 1]^2: maximum 1 at (0.62, 0.27), a local 0.7 at (0.2, 0.8). */
static int bumps2(void *ctx, const double *x, double *y)
{
    int *calls = ctx;
    double a = (x[0] - 0.62) * (x[0] - 0.62) + (x[1] - 0.27) * (x[1] - 0.27);
    double b = (x[0] - 0.2) * (x[0] - 0.2) + (x[1] - 0.8) * (x[1] - 0.8);

    (*calls)++;
    *y = exp(-a / 0.03) + 0.7 * exp(-b / 0.03);
    return 0;
}

/* The best of an even grid of n points per dimension (n^dim evaluations). */
static double grid_best(bo_fn *f, int dim, int n, double *bx)
{
    double best = -INFINITY, x[2], y;
    int calls = 0, total = dim == 1 ? n : n * n;

    for (int g = 0; g < total; g++) {
        x[0] = (double)(g % n) / (n - 1);
        x[1] = (double)(g / n) / (n - 1);
        f(&calls, x, &y);
        if (y > best) {
            best = y;
            memcpy(bx, x, sizeof(x));
        }
    }
    return best;
}

static bo_t *unit_bo(int dim, uint64_t seed)
{
    bo_opts_t o = {.dim = dim, .seed = seed};
    errbuf_t eb = {{0}};

    for (int d = 0; d < dim; d++) {
        o.lo[d] = 0;
        o.hi[d] = 1;
    }
    return bo_new(&o, &eb);
}

static void test_bo_1d(void)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        bo_t *b = unit_bo(1, seed);
        double x[1], y, gx[2];
        int calls = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(bo_maximize(b, bumps1, &calls, 3, 15, x, &y), 0);
        CU_ASSERT_EQUAL(calls, 15);
        printf("\n  1-D seed %llu: best x %.4f (max at 0.3), f %.6f in 15 evaluations",
               (unsigned long long)seed, x[0], y);
        CU_ASSERT(fabs(x[0] - 0.3) < 0.01);
        CU_ASSERT(y > 0.999);
        /* a grid of the same 15 evaluations misses the tolerance (step 1/14);
         * it needs 51 points to be sure of 0.01 */
        double g = grid_best(bumps1, 1, 15, gx);
        CU_ASSERT(fabs(gx[0] - 0.3) > 0.01);
        CU_ASSERT(y > g);
        bo_destroy(&b);
        CU_ASSERT_PTR_NULL(b);
    }
}

static void test_bo_2d(void)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        bo_t *b = unit_bo(2, seed);
        double x[2], y, gx[2];
        int calls = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(bo_maximize(b, bumps2, &calls, 5, 40, x, &y), 0);
        CU_ASSERT_EQUAL(calls, 40);
        double dist = hypot(x[0] - 0.62, x[1] - 0.27);
        printf("\n  2-D seed %llu: best (%.4f, %.4f), %.4f from the max, f %.6f in 40 evaluations",
               (unsigned long long)seed, x[0], x[1], dist, y);
        CU_ASSERT(dist < 0.02);
        /* the grid of 6 x 6 = 36 (fewer than 40) and even 20 x 20 = 400
         * evaluations stay farther: within 0.02 needs a step <= 0.028, 37^2 */
        double g36 = grid_best(bumps2, 2, 6, gx);
        CU_ASSERT(y > g36);
        double g400 = grid_best(bumps2, 2, 20, gx);
        CU_ASSERT(hypot(gx[0] - 0.62, gx[1] - 0.27) > 0.02 || y >= g400);
        bo_destroy(&b);
    }
}

/* Noise-free GP: the mean goes through every point, the variance and the
 * expected improvement vanish there, and not between the points. */
static void test_gp_interpolates(void)
{
    bo_opts_t o = {.dim = 2, .lo = {-2, 10}, .hi = {3, 20}, .seed = 5};
    errbuf_t eb = {{0}};
    bo_t *b = bo_new(&o, &eb);
    double xs[12][2], ys[12];
    uint64_t s = 42;

    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (int i = 0; i < 12; i++) {
        xs[i][0] = -2 + 5 * rng_unit(rng_splitmix64(&s));
        xs[i][1] = 10 + 10 * rng_unit(rng_splitmix64(&s));
        ys[i] = 100 + 7 * sin(xs[i][0]) * cos(xs[i][1] / 3); /* offset and scale: standardised */
        CU_ASSERT_EQUAL(bo_add(b, xs[i], ys[i]), 0);
    }
    CU_ASSERT_EQUAL(bo_fit(b), 0);
    double worst = 0, worst_ei = 0;
    for (int i = 0; i < 12; i++) {
        double var, mu = bo_mean(b, xs[i], &var);
        worst = fmax(worst, fabs(mu - ys[i]));
        CU_ASSERT(var < 1e-6);
        worst_ei = fmax(worst_ei, bo_ei(b, xs[i]));
    }
    printf("\n  GP at its 12 points: |mean - y| <= %.2g, EI <= %.2g", worst, worst_ei);
    CU_ASSERT(worst < 1e-3);
    CU_ASSERT(worst_ei == 0.0);
    /* between the points: uncertainty, and room to improve somewhere */
    double far[2] = {3, 20}, var;
    bo_mean(b, far, &var);
    CU_ASSERT(var > 1e-3);
    CU_ASSERT(bo_ei(b, far) > 1e-4);
    /* the best point is the best y */
    double bx[2], by = bo_best(b, bx);
    for (int i = 0; i < 12; i++)
        CU_ASSERT(ys[i] <= by);
    bo_destroy(&b);

    /* the marginal likelihood picks a longer length scale for a smoother
     * function of the same points */
    double len[2], sf2;
    for (int k = 0; k < 2; k++) {
        bo_opts_t o1 = {.dim = 1, .lo = {0}, .hi = {1}};
        bo_t *g = bo_new(&o1, &eb);
        CU_ASSERT_PTR_NOT_NULL_FATAL(g);
        for (int i = 0; i < 20; i++) {
            double x = i / 19.0;
            bo_add(g, &x, k == 0 ? sin(2 * x) : sin(40 * x));
        }
        CU_ASSERT_EQUAL(bo_fit(g), 0);
        bo_hyper(g, &len[k], &sf2);
        bo_destroy(&g);
    }
    printf("\n  length scale: sin(2x) %.2f, sin(40x) %.2f", len[0], len[1]);
    CU_ASSERT(len[0] > len[1]);
}

static void test_bo_errors(void)
{
    bo_opts_t o = {.dim = 0};
    errbuf_t eb = {{0}};
    double x = 0.5;

    CU_ASSERT_PTR_NULL(bo_new(&o, &eb));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "0 parameters"));
    o.dim = 1;
    o.lo[0] = 1;
    o.hi[0] = 1;
    CU_ASSERT_PTR_NULL(bo_new(&o, &eb));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "empty"));
    o.hi[0] = 2;
    bo_t *b = bo_new(&o, &eb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(bo_fit(b), ERR_INVAL);          /* nothing to fit */
    CU_ASSERT_EQUAL(bo_add(b, &x, 1.0), ERR_INVAL); /* outside [1, 2] */
    x = 1.5;
    CU_ASSERT_EQUAL(bo_add(b, &x, NAN), ERR_INVAL);
    CU_ASSERT_EQUAL(bo_add(b, &x, 1.0), 0);
    CU_ASSERT_EQUAL(bo_suggest(b, &x), 0);
    CU_ASSERT(x >= 1 && x <= 2 && fabs(x - 1.5) > 1e-6);
    bo_destroy(&b);
}

/* Rows whose buy label is exactly "pctr * pcvr^2 is high" and click label
 * "pctr is high": fusion finds b near 2 with buy AUC near 1, and the
 * Pareto front runs from pctr alone (click AUC 1) to that score. */
static void test_fuse_known(void)
{
    const size_t n = 20000;
    eval_data_t d;
    fuse_result_t r;
    fuse_args_t a = {.metric = FUSE_BUY_AUC,
                     .form = FUSE_PRODUCT,
                     .search = FUSE_BOTH,
                     .grid = 11,
                     .evals = 25,
                     .seed = 1};
    errbuf_t eb = {{0}};
    uint64_t s = 9;

    memset(&d, 0, sizeof(d));
    d.n = n;
    d.label[EVAL_L_CLICK] = calloc(n, 1);
    d.label[EVAL_L_BUY] = calloc(n, 1);
    d.label[EVAL_L_ACTION] = calloc(n, 1);
    for (int k = 0; k < EVAL_NPROBS; k++)
        d.pred[k] = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float ctr = (float)(0.01 + 0.3 * rng_unit(rng_splitmix64(&s)));
        float cvr = (float)(0.01 + 0.5 * rng_unit(rng_splitmix64(&s)));
        d.pred[EVAL_P_CTR][i] = ctr;
        d.pred[EVAL_P_CVR][i] = cvr;
        d.pred[EVAL_P_CTCVR][i] = ctr * cvr;
        d.pred[EVAL_P_CTAVR][i] = (float)(0.01 + 0.2 * rng_unit(rng_splitmix64(&s))); /* noise */
        d.label[EVAL_L_CLICK][i] = ctr > 0.2f;
        d.label[EVAL_L_BUY][i] = (double)ctr * cvr * cvr > 0.01;
    }
    CU_ASSERT_EQUAL_FATAL(fuse_search(&r, &d, &a, &eb), 0);
    CU_ASSERT_EQUAL(r.nparams, 2);
    CU_ASSERT_EQUAL(r.grid_evals, 121);
    CU_ASSERT_EQUAL(r.bo_evals, 25);
    const fuse_point_t *g = &r.pts[r.best_grid], *bo = &r.pts[r.best_bo];
    printf("\n  known b = 2, c = 0: grid b %.3f c %.3f buy AUC %.5f; bo b %.3f c %.3f buy AUC %.5f"
           " (pctr alone %.5f)",
           g->w[0], g->w[1], g->buy_auc, bo->w[0], bo->w[1], bo->buy_auc, r.base_buy[0]);
    CU_ASSERT(fabs(g->w[0] - 2) < 0.01 && g->w[1] == 0); /* on the grid: 2.0, 0.0 */
    CU_ASSERT(g->buy_auc > 0.9999);
    CU_ASSERT(fabs(bo->w[0] - 2) < 0.4);
    CU_ASSERT(bo->buy_auc > 0.995);
    CU_ASSERT(r.base_buy[0] < 0.95);
    CU_ASSERT(fabs(r.base_click[0] - 1) < 1e-9);

    char path[600], dir[512];
    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "fuse-known"), 0);
    snprintf(path, sizeof(path), "%s/report.txt", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fuse_print(f, &r, &a, n), 0);
    fclose(f);
    char *text = tu_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "improves buy_auc over pctr alone") : NULL);
    /* the front: sorted by click AUC, buy AUC falling; its ends are pctr
     * alone (click 1) and the best buy score */
    char *p = text ? strstr(text, "pareto front") : NULL;
    double last_c = -1, last_b = 2, c, bb, first_b = -1;
    int rows = 0;
    while (p && (p = strstr(p, "\n  click_auc ")) &&
           sscanf(p, "\n  click_auc %lf  buy_auc %lf", &c, &bb) == 2) {
        CU_ASSERT(c > last_c && bb < last_b);
        if (rows++ == 0)
            first_b = bb;
        last_c = c;
        last_b = bb;
        p++;
    }
    CU_ASSERT(rows >= 3);
    CU_ASSERT(fabs(last_c - 1) < 1e-6);
    CU_ASSERT(first_b > 0.9999);
    free(text);
    tu_rmtree(dir);
    fuse_result_release(&r);

    /* the sum form: buy follows pctr + 100 pctcvr, so log10 of pctcvr's
     * weight is 2 (between grid points) and pctavr's weight small */
    for (size_t i = 0; i < n; i++)
        d.label[EVAL_L_BUY][i] =
            (double)d.pred[EVAL_P_CTR][i] + 100.0 * d.pred[EVAL_P_CTCVR][i] > 6.0;
    a.form = FUSE_SUM;
    a.evals = 30;
    CU_ASSERT_EQUAL_FATAL(fuse_search(&r, &d, &a, &eb), 0);
    bo = &r.pts[r.best_bo];
    g = &r.pts[r.best_grid];
    printf("\n  known sum u < -1, v = 2: grid u %.3f v %.3f buy AUC %.5f; bo u %.3f v %.3f buy AUC "
           "%.5f",
           g->w[0], g->w[1], g->buy_auc, bo->w[0], bo->w[1], bo->buy_auc);
    CU_ASSERT(fabs(bo->w[1] - 2) < 0.3 && bo->w[0] < -1);
    CU_ASSERT(bo->buy_auc > 0.999);
    CU_ASSERT(bo->buy_auc > g->buy_auc);
    fuse_result_release(&r);
    eval_data_release(&d);
}

/* Requests of 10 rows whose one buy is the row ranked first by
 * pctr * pcvr^2: maximising buy NDCG finds b near 2 with NDCG near 1,
 * above pctr alone; the NDCG reported is metrics_per_request's. */
static void test_fuse_ndcg_known(void)
{
    const size_t n = 5000, per = 10;
    eval_data_t d;
    fuse_result_t r;
    fuse_args_t a = {.metric = FUSE_BUY_NDCG,
                     .form = FUSE_PRODUCT,
                     .search = FUSE_BOTH,
                     .grid = 9,
                     .evals = 20,
                     .seed = 2};
    errbuf_t eb = {{0}};
    uint64_t s = 21;

    memset(&d, 0, sizeof(d));
    d.n = n;
    d.has_req = 1;
    d.req = calloc(n, sizeof(*d.req));
    for (int k = 0; k < EVAL_NLABELS - 1; k++)
        d.label[k] = calloc(n, 1);
    for (int k = 0; k < EVAL_NPROBS; k++)
        d.pred[k] = calloc(n, sizeof(float));
    for (size_t a0 = 0; a0 < n; a0 += per) {
        size_t top = a0;
        for (size_t i = a0; i < a0 + per; i++) {
            float ctr = (float)(0.01 + 0.3 * rng_unit(rng_splitmix64(&s)));
            float cvr = (float)(0.01 + 0.5 * rng_unit(rng_splitmix64(&s)));
            d.req[i] = 1 + a0 / per;
            d.pred[EVAL_P_CTR][i] = ctr;
            d.pred[EVAL_P_CVR][i] = cvr;
            d.pred[EVAL_P_CTCVR][i] = ctr * cvr;
            d.pred[EVAL_P_CTAVR][i] = (float)(0.01 + 0.2 * rng_unit(rng_splitmix64(&s)));
            d.label[EVAL_L_CLICK][i] = ctr > 0.15f;
            if ((double)ctr * cvr * cvr >
                (double)d.pred[EVAL_P_CTR][top] * d.pred[EVAL_P_CVR][top] * d.pred[EVAL_P_CVR][top])
                top = i;
        }
        d.label[EVAL_L_BUY][top] = 1;
    }
    CU_ASSERT_EQUAL_FATAL(fuse_search(&r, &d, &a, &eb), 0);
    CU_ASSERT_EQUAL(r.requests, n / per);
    const fuse_point_t *g = &r.pts[r.best_grid], *bo = &r.pts[r.best_bo];
    printf("\n  known b = 2 by NDCG: grid b %.3f NDCG %.5f; bo b %.3f NDCG %.5f (pctr alone %.5f)",
           g->w[0], g->ndcg, bo->w[0], bo->ndcg, r.base_ndcg[0]);
    CU_ASSERT(fabs(g->w[0] - 2) < 0.01 && g->w[1] == 0); /* on the grid: 2.0, 0.0 */
    CU_ASSERT(g->ndcg > 0.9999);
    CU_ASSERT(bo->ndcg > 0.97);
    CU_ASSERT(r.base_ndcg[0] < 0.9);
    /* the metric is the per-request NDCG of the fused score */
    float *sc = malloc(n * sizeof(float));
    metrics_ws_t ws;
    metrics_requests_t rq;
    metrics_ws_init(&ws);
    for (size_t i = 0; i < n; i++)
        sc[i] = (float)(log(d.pred[EVAL_P_CTR][i]) + g->w[0] * log(d.pred[EVAL_P_CVR][i]) +
                        g->w[1] * log(d.pred[EVAL_P_CTAVR][i]));
    CU_ASSERT_EQUAL(metrics_per_request(&rq, sc, d.label[EVAL_L_BUY], NULL, d.req, n, &ws), 0);
    CU_ASSERT_DOUBLE_EQUAL(rq.ndcg, g->ndcg, 1e-9);
    metrics_ws_release(&ws);
    free(sc);
    fuse_result_release(&r);
    /* without request ids the NDCG metrics are refused, naming the field */
    d.has_req = 0;
    CU_ASSERT_EQUAL(fuse_search(&r, &d, &a, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "@req:ID"));
    fuse_result_release(&r);
    eval_data_release(&d);
}

/* funnel-worker fuse on the predictions of a model trained on a
 * funnel-gen world, and its refusals. */
static void test_fuse_real(void)
{
    char dir[512], bin[700], out[700];
    char *text;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "fuse"), 0);
    tu_bin(bin, sizeof(bin), "funnel-worker");
    *strrchr(bin, '/') = '\0';
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(out,
                                "%s/funnel-gen --out %s/w --train 200000 --test 30000 --seed 11 && "
                                "%s/funnel-worker train --model %s/m --towers 32,16 --emb_dim 8 "
                                "--threads 1 %s/w/train.tsv && "
                                "%s/funnel-worker predict --model %s/m --in %s/w/test.tsv "
                                "--out %s/pred.tsv && "
                                "%s/funnel-worker eval --pred %s/pred.tsv --log %s/w/test.tsv "
                                "--json > %s/eval.json",
                                bin, dir, bin, dir, dir, bin, dir, dir, dir, bin, dir, dir, dir),
                          0);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "%s/funnel-worker fuse --pred %s/pred.tsv --log %s/w/test.tsv --model "
                          "%s/m --evals 20 --grid 9",
                          bin, dir, dir, dir),
                    0);
    text = tu_slurp(out, NULL);
    printf("\n%s", text ? text : "(no output)");
    double pctr_buy = NAN, ctcvr_buy = NAN, best = NAN;
    char *p;
    if (text && (p = strstr(text, "baseline pctr ")))
        sscanf(p, "baseline pctr %*s %lf", &pctr_buy);
    if (text && (p = strstr(text, "baseline pctcvr ")))
        sscanf(p, "baseline pctcvr %*s %lf", &ctcvr_buy);
    if (text && (p = strstr(text, "\nbest ")))
        sscanf(p, "\nbest %*s buy_auc %lf", &best);
    CU_ASSERT(!isnan(pctr_buy) && !isnan(best));
    /* pctr alone is on the grid (b = c = 0): the best cannot be worse */
    CU_ASSERT(best >= pctr_buy - 1e-4);
    CU_ASSERT_PTR_NOT_NULL(text ? (strstr(text, "improves buy_auc over pctr alone")
                                       ? strstr(text, "improves")
                                       : strstr(text, "cannot improve"))
                                : NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "pareto front, click_auc vs buy_auc") : NULL);
    free(text);
    /* the baseline pctcvr buy AUC is eval's ctcvr AUC */
    text = tu_slurp(strcat(strcpy(out, dir), "/eval.json"), NULL);
    p = text ? strstr(text, "\"ctcvr\":{") : NULL;
    p = p ? strstr(p, "\"auc\":") : NULL;
    double eval_ctcvr = p ? atof(p + 6) : NAN;
    CU_ASSERT(fabs(eval_ctcvr - ctcvr_buy) < 1e-5);
    free(text);

    /* the sum form runs too; ndcg and bad words are refused, naming why */
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "%s/funnel-worker fuse --pred %s/pred.tsv --log %s/w/test.tsv --form sum "
                          "--search bo --evals 10",
                          bin, dir, dir),
                    0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "score = pctr + 10^u pctavr + 10^v pctcvr") : NULL);
    CU_ASSERT_PTR_NULL(text ? strstr(text, "\ngrid ") : "x");
    free(text);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "%s/funnel-worker fuse --pred %s/pred.tsv --log %s/w/test.tsv "
                          "--metric ndcg",
                          bin, dir, dir),
                    1);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "and the log has no request ids") : NULL);
    free(text);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "%s/funnel-worker fuse --pred %s/pred.tsv --log %s/w/test.tsv "
                          "--form power",
                          bin, dir, dir),
                    1);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "--form power: want product or sum") : NULL);
    free(text);
    CU_ASSERT_EQUAL(tu_sh(out, "%s/funnel-worker fuse --pred %s/pred.tsv", bin, dir), 2);

    /* with request ids (@req): --metric ndcg maximises buy NDCG per
     * request; its pctcvr baseline is eval's ctcvr request NDCG */
    CU_ASSERT_EQUAL_FATAL(tu_sh(out,
                                "%s/funnel-gen --out %s/r --train 1 --test 30000 --seed 11 "
                                "--request_size 20 && "
                                "%s/funnel-worker predict --model %s/m --in %s/r/test.tsv "
                                "--out %s/rpred.tsv && "
                                "%s/funnel-worker eval --pred %s/rpred.tsv --log %s/r/test.tsv "
                                "--json > %s/reval.json",
                                bin, dir, bin, dir, dir, dir, bin, dir, dir, dir),
                          0);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "%s/funnel-worker fuse --pred %s/rpred.tsv --log %s/r/test.tsv --model "
                          "%s/m --metric ndcg --evals 12 --grid 7",
                          bin, dir, dir, dir),
                    0);
    text = tu_slurp(out, NULL);
    printf("\n%s", text ? text : "(no output)");
    double base_ndcg = NAN, pctr_ndcg = NAN, best_ndcg = NAN;
    if (text && (p = strstr(text, "baseline pctcvr ")))
        sscanf(p, "baseline pctcvr %*s %*f %*s %*f %*s %lf", &base_ndcg);
    if (text && (p = strstr(text, "baseline pctr ")))
        sscanf(p, "baseline pctr %*s %*f %*s %*f %*s %lf", &pctr_ndcg);
    if (text && (p = strstr(text, "\nbest ")))
        sscanf(p, "\nbest %*s buy_ndcg %lf", &best_ndcg);
    CU_ASSERT(!isnan(base_ndcg) && !isnan(pctr_ndcg) && !isnan(best_ndcg));
    CU_ASSERT(best_ndcg >= pctr_ndcg - 1e-12); /* pctr alone is on the grid */
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "maximising buy_ndcg") : NULL);
    free(text);
    text = tu_slurp(strcat(strcpy(out, dir), "/reval.json"), NULL);
    p = text ? strstr(text, "\"ctcvr\":{") : NULL;
    p = p ? strstr(p, "\"request_ndcg\":") : NULL;
    double eval_ndcg = p ? atof(p + 15) : NAN;
    printf("  eval ctcvr request_ndcg %.6f, fuse baseline pctcvr buy_ndcg %.6f\n", eval_ndcg,
           base_ndcg);
    CU_ASSERT(fabs(eval_ndcg - base_ndcg) < 1e-5);
    free(text);
    tu_rmtree(dir);
}

int test_fuse_register(void)
{
    CU_pSuite s = CU_add_suite("fuse", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "BO finds a 1-D maximum within 0.01 in 15 evaluations (a grid needs 51)",
                test_bo_1d);
    CU_add_test(s, "BO finds a 2-D maximum within 0.02 in 40 evaluations (a grid needs 37^2)",
                test_bo_2d);
    CU_add_test(s, "GP mean interpolates, variance and EI vanish at the points",
                test_gp_interpolates);
    CU_add_test(s, "bad options and observations are refused", test_bo_errors);
    CU_add_test(s, "fusion finds a known score and its Pareto front", test_fuse_known);
    CU_add_test(s, "fusion by per-request NDCG finds a known score", test_fuse_ndcg_known);
    CU_add_test(s, "funnel-worker fuse on a trained model's predictions", test_fuse_real);
    return CU_get_error();
}
