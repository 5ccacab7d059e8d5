/*
 * test_nmtr.c - the nmtr head set (model/heads.c; Gao et al., ICDE 2019):
 *   - losses and predictions of a batch against the cascade computed by
 *     hand (z_click = a0, z_action = a0 + a1, z_buy = a0 + a1 + a2);
 *   - every parameter and input of a small network against central finite
 *     differences, on the concat and the mmoe bottom, in double
 *     (model_train_step_f64, 1e-6) and in float (the OpenBLAS path, 1e-3);
 *   - real processes: nmtr trains, saves, predicts from its directory (the
 *     type taken from META, 4 columns) and continues with --init_from in
 *     process; on a 2-shard cluster it trains, checkpoints, predicts from
 *     the checkpoint what the cluster predicted, and trains on from shards
 *     restarted from the checkpoint.
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

static double sig(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* The cascade by hand: losses and predictions of a random batch. */
static void test_by_hand(void)
{
    enum { B = 9 };
    const heads_t *h = heads_for(MODEL_NMTR);
    double a[B * 3], loss[HEADS_MAX_LOSS], want[3] = {0, 0, 0}, total;
    float pred[B * HEADS_NPRED], w[3] = {1.0f, 0.5f, 2.0f};
    uint8_t c[B], ac[B], bu[B];

    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_STRING_EQUAL(heads_name(h), "nmtr");
    CU_ASSERT_EQUAL(heads_ntowers(h), 3);
    CU_ASSERT_EQUAL(heads_nloss(h), 3);
    CU_ASSERT_STRING_EQUAL(heads_loss_name(h, 1), "ctavr");
    for (int col = 0; col < HEADS_NPRED; col++)
        CU_ASSERT(heads_has_pred(h, col));
    rs = 77;
    for (int i = 0; i < B; i++) {
        for (int j = 0; j < 3; j++)
            a[i * 3 + j] = urand() * 6 - 3;
        c[i] = urand() < 0.5;
        ac[i] = urand() < 0.5; /* the ctavr label is click AND action */
        bu[i] = c[i] && urand() < 0.5;
    }
    total = heads_loss(h, a, c, ac, bu, NULL, B, w, loss, NULL);
    heads_predict(h, a, B, pred);
    for (int i = 0; i < B; i++) {
        double z0 = a[i * 3], z1 = z0 + a[i * 3 + 1], z2 = z1 + a[i * 3 + 2];
        double p[3] = {sig(z0), sig(z1), sig(z2)};
        int l[3] = {c[i], c[i] && ac[i], bu[i]};
        for (int k = 0; k < 3; k++)
            want[k] -= (l[k] ? log(p[k]) : log(1 - p[k])) / B;
        CU_ASSERT(rel_err(pred[i * HEADS_NPRED + HEADS_PCTR], p[0], 1e-6) < 1e-6);
        CU_ASSERT(rel_err(pred[i * HEADS_NPRED + HEADS_PCTAVR], p[1], 1e-6) < 1e-6);
        CU_ASSERT(rel_err(pred[i * HEADS_NPRED + HEADS_PCTCVR], p[2], 1e-6) < 1e-6);
        CU_ASSERT(rel_err(pred[i * HEADS_NPRED + HEADS_PCVR], sig(z2 - z0), 1e-6) < 1e-6);
    }
    for (int k = 0; k < 3; k++)
        CU_ASSERT(rel_err(loss[k], want[k], 1e-9) < 1e-12);
    CU_ASSERT(rel_err(total, want[0] + 0.5 * want[1] + 2 * want[2], 1e-9) < 1e-12);
}

enum { D = 5, GB = 7 };

static model_spec_t nmtr_spec(int bottom)
{
    model_spec_t ms;
    memset(&ms, 0, sizeof(ms));
    ms.type = MODEL_NMTR;
    ms.ntowers = 3;
    ms.nloss = 3;
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
    return ms;
}

typedef struct gc {
    model_t *m;
    size_t n;
    float x[GB * D];
    double xd[GB * D];
    uint8_t c[GB], ac[GB], bu[GB];
} gc_t;

static int gc_setup(gc_t *g, int bottom, uint64_t seed)
{
    model_spec_t ms = nmtr_spec(bottom);
    float *p;

    memset(g, 0, sizeof(*g));
    if (!(g->m = model_new(&ms, 16, seed, NULL)))
        return -1;
    rs = seed;
    for (size_t i = 0; i < GB * D; i++) {
        g->x[i] = (float)(urand() * 4 - 2);
        g->xd[i] = g->x[i];
    }
    for (size_t i = 0; i < GB; i++) {
        g->c[i] = i == 0 || urand() < 0.6;
        g->ac[i] = g->c[i] && urand() < 0.5;
        g->bu[i] = g->c[i] && urand() < 0.5;
    }
    p = model_params(g->m, &g->n);
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

static double total_f32(gc_t *g)
{
    double loss[3];
    model_loss(g->m, g->x, g->c, g->ac, g->bu, NULL, GB, loss);
    return model_loss_total(g->m, loss);
}

static void gradcheck(int bottom)
{
    gc_t g;
    double *p, *gr, dx[GB * D], loss[3], worst = 0, worst32 = 0;
    float dxf[GB * D], *gf;
    size_t skipped = 0, checked = 0;

    if (gc_setup(&g, bottom, 500 + (uint64_t)bottom)) {
        CU_FAIL("model_new");
        return;
    }
    float *pf = model_params(g.m, &g.n);
    p = malloc(g.n * sizeof(double));
    gr = malloc(g.n * sizeof(double));
    gf = malloc(g.n * sizeof(float));
    for (size_t i = 0; i < g.n; i++)
        p[i] = pf[i];
    CU_ASSERT_EQUAL(
        model_train_step_f64(g.m, p, g.xd, g.c, g.ac, g.bu, NULL, GB, gr, dx, loss, NULL), 0);
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
        /* float: its own loss's differences, skipping a step across a
         * ReLU kink (the double twin then disagrees with its gradient) */
        *slot = up;
        double lp64 = total_f64(&g, p, g.xd);
        *slot = dn;
        double lm64 = total_f64(&g, p, g.xd);
        *slot = v;
        double step = (double)up - (double)dn;
        if (rel_err(an, (lp64 - lm64) / step, 1e-2) > 1e-4) {
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
                "\n    nmtr on %s: %zu params + %d inputs: double worst %.3g, float worst %.3g "
                "(%zu skipped)\n",
                model_bottom_name(bottom), g.n, GB * D, worst, worst32, skipped);
    free(gf);
    free(gr);
    free(p);
    model_destroy(&g.m);
}

static void test_gradcheck(void)
{
    gradcheck(MODEL_BOTTOM_CONCAT);
    gradcheck(MODEL_BOTTOM_MMOE);
}

/* ---- real processes ---------------------------------------------------- */

static char dir[512], bin[700];

#define SMALL "--model_type nmtr --towers 32,16 --emb_dim 8"

static int files_equal(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *ta = tu_slurp(a, &na), *tb = tu_slurp(b, &nb);
    int same = ta && tb && na == nb && na > 0 && memcmp(ta, tb, na) == 0;
    free(ta);
    free(tb);
    return same;
}

/* Lines with 4 scores in (0, 1) and pctcvr's column read through the
 * header: the count, or -1 without the 4-column header. */
static long good_lines(const char *path)
{
    char *t = tu_slurp(path, NULL), *p, *save = NULL;
    long n = 0;

    if (!t || strncmp(t, "pctr\tpcvr\tpctcvr\tpctavr\n", 24) != 0) {
        free(t);
        return -1;
    }
    for (p = strtok_r(t + 24, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
        char *q = p, *end;
        int cols = 0, ok = 1;
        while (*q) {
            double v = strtod(q, &end);
            if (end == q)
                break;
            ok &= v > 0.0 && v < 1.0;
            cols++;
            q = end;
        }
        n += ok && cols == 4;
    }
    free(t);
    return n;
}

static void test_in_process(void)
{
    char log[800], m1[800], m2[800], p1[800], p2[800], meta[800];
    char *text;

    snprintf(log, sizeof(log), "%s/inproc.log", dir);
    snprintf(m1, sizeof(m1), "%s/m1", dir);
    snprintf(m2, sizeof(m2), "%s/m2", dir);
    snprintf(p1, sizeof(p1), "%s/m1.pred", dir);
    snprintf(p2, sizeof(p2), "%s/m2.pred", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(log, "%s/funnel-worker train " SMALL " --model %s %s/data/a.tsv", bin, m1, dir), 0);
    snprintf(meta, sizeof(meta), "%.700s/META", m1);
    text = tu_slurp(meta, NULL);
    CU_ASSERT(text && strstr(text, "model nmtr\n"));
    free(text);
    /* the type comes from META: no option */
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --model %s --in %s/data/test.tsv --out %s",
                          bin, m1, dir, p1),
                    0);
    CU_ASSERT_EQUAL(good_lines(p1), 3000);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker train --init_from %s --model %s %s/data/b.tsv",
                          bin, m1, m2, dir),
                    0);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --model %s --in %s/data/test.tsv --out %s",
                          bin, m2, dir, p2),
                    0);
    CU_ASSERT_EQUAL(good_lines(p2), 3000);
    CU_ASSERT(!files_equal(p1, p2));
    /* esm2 is refused, naming both types */
    snprintf(log, sizeof(log), "%s/refused.log", dir);
    CU_ASSERT_NOT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --model %s --model_type esm2 --in "
                              "%s/data/test.tsv --out %s/refused.pred",
                              bin, m1, dir, dir),
                        0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "nmtr") && strstr(text, "esm2"));
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
    char cl[700], eps[1500], log[800], ck[760], init[800], p1[800], p2[800], p3[800];
    pid_t ps[2] = {0, 0};

    snprintf(cl, sizeof(cl), "%s/cl", dir);
    mkdir(cl, 0755);
    snprintf(eps, sizeof(eps), "ipc://%s/ps0.sock,ipc://%s/ps1.sock", cl, cl);
    snprintf(log, sizeof(log), "%s/worker.log", cl);
    snprintf(ck, sizeof(ck), "%s/checkpoints/c1", cl);
    snprintf(p1, sizeof(p1), "%s/ps.pred", cl);
    snprintf(p2, sizeof(p2), "%s/ck.pred", cl);
    snprintf(p3, sizeof(p3), "%s/restarted.pred", cl);
    CU_ASSERT_EQUAL_FATAL(start_shards(cl, SMALL, ps), 0);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-worker train --ps %s " SMALL
                          " --metrics_file %s/m.jsonl %s/data/a.tsv",
                          bin, eps, cl, dir),
                    0);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s/funnel-worker predict --ps %s " SMALL " --in %s/data/test.tsv --out %s", bin,
              eps, dir, p1),
        0);
    CU_ASSERT_EQUAL(good_lines(p1), 3000);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s/funnel-worker ctl checkpoint --ps %s --name c1 " SMALL, bin, eps), 0);
    stop_shards(ps);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --model %s --in %s/data/test.tsv --out %s",
                          bin, ck, dir, p2),
                    0);
    CU_ASSERT(files_equal(p1, p2));
    /* shards restarted from the checkpoint: the same predictions, train on */
    snprintf(cl, sizeof(cl), "%s/cl2", dir);
    mkdir(cl, 0755);
    snprintf(eps, sizeof(eps), "ipc://%s/ps0.sock,ipc://%s/ps1.sock", cl, cl);
    snprintf(init, sizeof(init), "--init_from %s", ck);
    CU_ASSERT_EQUAL_FATAL(start_shards(cl, init, ps), 0);
    snprintf(log, sizeof(log), "%s/worker.log", cl);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s/funnel-worker predict --ps %s " SMALL " --in %s/data/test.tsv --out %s", bin,
              eps, dir, p3),
        0);
    CU_ASSERT(files_equal(p1, p3));
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-worker train --ps %s " SMALL
                          " --metrics_file %s/m.jsonl %s/data/b.tsv",
                          bin, eps, cl, dir),
                    0);
    stop_shards(ps);
}

static int setup(void)
{
    char gen[600];

    if (tu_world(dir, sizeof(dir), "nmtr", "--train 30000 --test 3000 --seed 23") != 0)
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
        fprintf(stderr, "\n  nmtr suite: files kept in %s\n", dir);
    else
        tu_rmtree(dir);
    return 0;
}

int test_nmtr_register(void)
{
    CU_pSuite s = CU_add_suite("nmtr", setup, teardown);

    if (!s)
        return -1;
    CU_add_test(s, "nmtr losses and predictions against the cascade by hand", test_by_hand);
    CU_add_test(s, "nmtr gradients vs finite differences (concat, mmoe; double, float)",
                test_gradcheck);
    CU_add_test(s, "nmtr trains, saves, predicts from META, continues with --init_from",
                test_in_process);
    CU_add_test(s, "nmtr on 2 shards: checkpoint, predict from it, restart from it, train on",
                test_cluster);
    return 0;
}
