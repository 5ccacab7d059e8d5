/*
 * test_bottoms.c - the shared, mmoe, omoe and ple bottoms (model/bottom.h):
 *   - every parameter (towers and bottom) and dX of a small network against
 *     central finite differences, for every bottom under every head set, in
 *     double (model_train_step_f64) and in float (the OpenBLAS path), on 1
 *     and 2 threads;
 *   - the parameter count against a count by hand, and the tower input;
 *   - save -> load -> identical predictions, and a checkpoint of one bottom
 *     refused by a model of another (also a concat file);
 *   - real processes: every bottom trains, saves, predicts from its
 *     directory (the layout taken from META) and continues with --init_from,
 *     in process and on a 2-shard cluster (checkpoint, predict from it,
 *     restart the shards from it, train on); a mismatched bottom is refused
 *     with a message naming it;
 *   - funnel-gen --task_corr: the correlation of the true click and
 *     conversion logits follows the switch (1 > 0.5 > 0, about 0 at 0).
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

#include "model/bottom.h"
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

static const int BOTTOMS[] = {MODEL_BOTTOM_SHARED, MODEL_BOTTOM_MMOE, MODEL_BOTTOM_OMOE,
                              MODEL_BOTTOM_PLE};
#define NBOTTOMS (sizeof(BOTTOMS) / sizeof(BOTTOMS[0]))

enum { D = 5, GB = 7 };

static model_spec_t bottom_spec(int type, int bottom)
{
    model_spec_t ms;
    memset(&ms, 0, sizeof(ms));
    ms.type = type;
    ms.ntowers = type == MODEL_ESM2 ? 4 : 2;
    ms.nloss = type == MODEL_ESM2 ? 3 : 2;
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
    ms.nbottom_layers = 2;
    ms.bottom_layer[0] = 4;
    ms.bottom_layer[1] = 3;
    if (bottom == MODEL_BOTTOM_MMOE || bottom == MODEL_BOTTOM_OMOE)
        ms.experts = 3;
    if (bottom == MODEL_BOTTOM_PLE) {
        ms.ple_shared = 2;
        ms.ple_task = 1;
        ms.ple_levels = 2;
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

static int gc_setup(gc_t *g, int type, int bottom, uint64_t seed, int threads)
{
    model_spec_t ms = bottom_spec(type, bottom);
    float *p;

    memset(g, 0, sizeof(*g));
    if (!(g->m = model_new(&ms, 16, seed, NULL)))
        return -1;
    if (threads > 1 && model_threads_set(g->m, threads, MODEL_PAR_TOWERS, NULL)) {
        model_destroy(&g->m);
        return -1;
    }
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
    /* nonzero biases, so that they matter in the check */
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

static const char *label(int type, int bottom)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "%s on %s", heads_name(heads_for(type)), model_bottom_name(bottom));
    return buf;
}

/* Double: every parameter and input against central differences. */
static void gradcheck_f64(int type, int bottom, int threads)
{
    gc_t g;
    double *p, *gr, dx[GB * D], loss[3], worst = 0;
    size_t nb;

    if (gc_setup(&g, type, bottom, 300 + (uint64_t)(type * 10 + bottom), threads)) {
        CU_FAIL("model_new");
        return;
    }
    float *pf = model_params(g.m, &g.n);
    p = malloc(g.n * sizeof(double));
    gr = malloc(g.n * sizeof(double));
    for (size_t i = 0; i < g.n; i++)
        p[i] = pf[i];
    nb = model_spec_bottom_len(model_spec(g.m));
    CU_ASSERT(nb > 0 && nb < g.n);
    CU_ASSERT_EQUAL(
        model_train_step_f64(g.m, p, g.xd, g.c, g.ac, g.bu, NULL, GB, gr, dx, loss, NULL), 0);
    for (size_t i = 0; i < g.n + GB * D; i++) {
        double *slot = i < g.n ? &p[i] : &g.xd[i - g.n];
        double an = i < g.n ? gr[i] : dx[i - g.n];
        double v = *slot, e = 1e-5;
        *slot = v + e;
        double lp = total_f64(&g, p, g.xd);
        *slot = v - e;
        double lm = total_f64(&g, p, g.xd);
        *slot = v;
        double err = rel_err(an, (lp - lm) / (2 * e), 1e-3);
        if (err > worst)
            worst = err;
    }
    CU_ASSERT(worst < 1e-6);
    if (getenv("FUNNEL_TEST_VERBOSE") || !(worst < 1e-6))
        fprintf(stderr, "\n    %s, %d threads: double check over %zu params: worst %.3g\n",
                label(type, bottom), threads, g.n, worst);
    free(gr);
    free(p);
    model_destroy(&g.m);
}

static void test_gradcheck_f64(void)
{
    for (size_t b = 0; b < NBOTTOMS; b++)
        for (int type = 0; type < 3; type++)
            for (int th = 1; th <= 2; th++)
                gradcheck_f64(type, BOTTOMS[b], th);
}

/*
 * Float: the training path against central differences of its own loss,
 * skipping the few parameters whose step crosses a ReLU kink (the double
 * twin's difference then disagrees with its own gradient), as test_model
 * does for the towers.
 */
static void gradcheck_f32(int type, int bottom, int threads)
{
    gc_t g;
    size_t skipped = 0, checked = 0;
    double worst = 0, worst_vs64 = 0, loss[3];
    float dx[GB * D];
    double dx64[GB * D];

    if (gc_setup(&g, type, bottom, 400 + (uint64_t)(type * 10 + bottom), threads)) {
        CU_FAIL("model_new");
        return;
    }
    float *pf = model_params(g.m, &g.n);
    float *gf = malloc(g.n * sizeof(float));
    double *p = malloc(g.n * sizeof(double)), *g64 = malloc(g.n * sizeof(double));

    CU_ASSERT_EQUAL(model_train_step(g.m, g.x, g.c, g.ac, g.bu, NULL, GB, dx, loss), 0);
    memcpy(gf, model_grads(g.m, &g.n), g.n * sizeof(float));
    for (size_t i = 0; i < g.n; i++)
        p[i] = pf[i];
    model_train_step_f64(g.m, p, g.xd, g.c, g.ac, g.bu, NULL, GB, g64, dx64, loss, NULL);
    for (size_t i = 0; i < g.n + GB * D; i++) {
        int is_x = i >= g.n;
        size_t j = is_x ? i - g.n : i;
        float *slot = is_x ? &g.x[j] : &pf[j];
        double *slot64 = is_x ? &g.xd[j] : &p[j];
        double an = is_x ? dx[j] : gf[j], an64 = is_x ? dx64[j] : g64[j];
        float v = *slot, up = v + 1e-3f, dn = v - 1e-3f;
        double step = (double)up - (double)dn;

        *slot = up;
        *slot64 = up;
        double lp = total_f32(&g), lp64 = total_f64(&g, p, g.xd);
        *slot = dn;
        *slot64 = dn;
        double lm = total_f32(&g), lm64 = total_f64(&g, p, g.xd);
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
        fprintf(stderr,
                "\n    %s, %d threads: float check: worst %.3g, vs double %.3g, %zu "
                "skipped of %zu\n",
                label(type, bottom), threads, worst, worst_vs64, skipped, skipped + checked);
    free(g64);
    free(p);
    free(gf);
    model_destroy(&g.m);
}

static void test_gradcheck_f32(void)
{
    for (size_t b = 0; b < NBOTTOMS; b++)
        for (int type = 0; type < 3; type++)
            for (int th = 1; th <= 2; th++)
                gradcheck_f32(type, BOTTOMS[b], th);
}

/* Parameter counts by hand: experts, gates, towers on the bottom's width. */
static void test_shapes(void)
{
    const size_t E1 = D * 4 + 4 + 4 * 3 + 3; /* an expert on x: 5 -> 4 -> 3 */
    const size_t E2 = 3 * 4 + 4 + 4 * 3 + 3; /* an expert on a level-1 mixture: 3 -> 4 -> 3 */
    const size_t tower = 3 * 3 + 3 + 3 + 1;  /* 3 -> 3 -> 1 */
    struct {
        int bottom, type;
        size_t bottom_len;
    } want[] = {
        {MODEL_BOTTOM_SHARED, MODEL_ESM2, E1},
        {MODEL_BOTTOM_MMOE, MODEL_ESM2, 3 * E1 + 4 * (D * 3 + 3)},
        {MODEL_BOTTOM_OMOE, MODEL_ESMM, 3 * E1 + (D * 3 + 3)},
        /* level 0: 4 task + 2 shared experts, 4 task gates over 3, a shared
         * gate over 6; level 1: the same experts on width 3, task gates only */
        {MODEL_BOTTOM_PLE, MODEL_ESM2,
         6 * E1 + 4 * (D * 3 + 3) + (D * 6 + 6) + 6 * E2 + 4 * (3 * 3 + 3)},
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        model_spec_t ms = bottom_spec(want[i].type, want[i].bottom);
        model_t *m = model_new(&ms, 8, 1, NULL);
        size_t n = 0;

        CU_ASSERT_EQUAL(model_spec_bottom_len(&ms), want[i].bottom_len);
        CU_ASSERT_EQUAL(model_spec_tower_input(&ms), 3);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        model_params(m, &n);
        CU_ASSERT_EQUAL(n, (size_t)ms.ntowers * tower + want[i].bottom_len);
        CU_ASSERT_EQUAL(n, model_spec_dense_len(&ms));
        model_destroy(&m);
    }
    /* a bottom without layers is refused, naming the bottom */
    model_spec_t bad = bottom_spec(MODEL_ESM2, MODEL_BOTTOM_MMOE);
    errbuf_t eb = {0};
    bad.nbottom_layers = 0;
    CU_ASSERT_PTR_NULL(model_new(&bad, 8, 1, &eb));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "mmoe"));
}

/* Save -> load gives identical predictions; another bottom (or concat)
 * refuses the file with ERR_MISMATCH naming the bottom. */
static void test_save_load(void)
{
    model_spec_t ms = bottom_spec(MODEL_ESM2, MODEL_BOTTOM_PLE);
    model_spec_t other = bottom_spec(MODEL_ESM2, MODEL_BOTTOM_MMOE);
    model_spec_t concat = bottom_spec(MODEL_ESM2, MODEL_BOTTOM_CONCAT);
    model_t *a = model_new(&ms, 16, 5, NULL), *b = model_new(&ms, 16, 6, NULL);
    model_t *c = model_new(&other, 16, 5, NULL), *d;
    float x[16 * D], pa[16 * 4], pb[16 * 4];
    uint8_t cl[16] = {1, 0, 1}, ac[16] = {1}, bu[16] = {1};
    double loss[3];
    errbuf_t eb = {0};
    FILE *f = tmpfile();

    concat.nbottom_layers = 0;
    d = model_new(&concat, 16, 5, NULL);
    CU_ASSERT_FATAL(a && b && c && d && f);
    rs = 9;
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
        x[i] = (float)(urand() * 2 - 1);
    for (int s = 0; s < 3; s++) { /* a few steps so that the optimizer state is not zero */
        model_train_step(a, x, cl, ac, bu, NULL, 16, NULL, loss);
        model_apply_grads(a);
    }
    CU_ASSERT_EQUAL(model_save_dense(a, f, &eb), 0);
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(b, f, &eb), 0);
    model_predict(a, x, 16, pa);
    model_predict(b, x, 16, pb);
    CU_ASSERT_EQUAL(memcmp(pa, pb, sizeof(pa)), 0);
    CU_ASSERT_EQUAL(model_step(b), 3);
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(c, f, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "bottom is ple in the file but mmoe"));
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(d, f, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "ple in the file but concat"));
    /* a concat file (version 1) into a ple model */
    rewind(f);
    CU_ASSERT_EQUAL(model_save_dense(d, f, &eb), 0);
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(a, f, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "concat in the file but ple"));
    fclose(f);
    model_destroy(&a);
    model_destroy(&b);
    model_destroy(&c);
    model_destroy(&d);
}

/* ---- real processes ---------------------------------------------------- */

static char dir[512], bin[700];

#define SMALL "--towers 32,16 --emb_dim 8 --expert_layers 32,16 --shared_layers 32,16"

static const char *opts_of(int bottom)
{
    switch (bottom) {
    case MODEL_BOTTOM_SHARED: return "--bottom shared";
    case MODEL_BOTTOM_MMOE: return "--bottom mmoe --experts 3";
    case MODEL_BOTTOM_OMOE: return "--bottom omoe --experts 3";
    default: return "--bottom ple --ple_shared_experts 2 --ple_task_experts 1 --ple_levels 2";
    }
}

static int files_equal(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *ta = tu_slurp(a, &na), *tb = tu_slurp(b, &nb);
    int same = ta && tb && na == nb && na > 0 && memcmp(ta, tb, na) == 0;
    free(ta);
    free(tb);
    return same;
}

/* Lines of a prediction file whose every score is in (0, 1). */
static long good_lines(const char *path)
{
    char *t = tu_slurp(path, NULL), *p, *save = NULL;
    long n = 0;

    for (p = t ? strtok_r(t, "\n", &save) : NULL; p; p = strtok_r(NULL, "\n", &save)) {
        char *q = p, *end;
        int cols = 0, ok = 1;
        if (*p == '#')
            continue;
        while (*q) {
            double v = strtod(q, &end);
            if (end == q)
                break;
            ok &= v > 0.0 && v < 1.0;
            cols++;
            q = end;
        }
        n += ok && cols >= 3;
    }
    free(t);
    return n;
}

static void test_in_process(void)
{
    for (size_t b = 0; b < NBOTTOMS; b++) {
        const char *o = opts_of(BOTTOMS[b]), *name = model_bottom_name(BOTTOMS[b]);
        char log[800], m1[800], m2[800], p1[800], p2[800], p3[800];
        char *text;

        snprintf(log, sizeof(log), "%s/%s.log", dir, name);
        snprintf(m1, sizeof(m1), "%s/%s-1", dir, name);
        snprintf(m2, sizeof(m2), "%s/%s-2", dir, name);
        snprintf(p1, sizeof(p1), "%s/%s-1.pred", dir, name);
        snprintf(p2, sizeof(p2), "%s/%s-1b.pred", dir, name);
        snprintf(p3, sizeof(p3), "%s/%s-2.pred", dir, name);
        CU_ASSERT_EQUAL_FATAL(tu_sh(log,
                                    "%s/funnel-worker train " SMALL " %s --model %s %s/w/a.tsv",
                                    bin, o, m1, dir),
                              0);
        /* the layout comes from META: no option at all */
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --model %s --in %s/w/test.tsv --out %s",
                              bin, m1, dir, p1),
                        0);
        CU_ASSERT_EQUAL(good_lines(p1), 3000);
        /* the same options given: the same predictions */
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict " SMALL " %s --model %s --in %s/w/test.tsv "
                              "--out %s",
                              bin, o, m1, dir, p2),
                        0);
        CU_ASSERT(files_equal(p1, p2));
        /* continue on the second half from the first model */
        CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker train --init_from %s --model %s %s/w/b.tsv",
                              bin, m1, m2, dir),
                        0);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --model %s --in %s/w/test.tsv --out %s",
                              bin, m2, dir, p3),
                        0);
        CU_ASSERT_EQUAL(good_lines(p3), 3000);
        CU_ASSERT(!files_equal(p1, p3)); /* it trained on */
        /* another bottom is refused, naming it and what to change */
        snprintf(log, sizeof(log), "%s/%s-refused.log", dir, name);
        CU_ASSERT_NOT_EQUAL(tu_sh(log,
                                  "%s/funnel-worker predict --model %s --bottom %s --in "
                                  "%s/w/test.tsv --out %s/refused.pred",
                                  bin, m1, BOTTOMS[b] == MODEL_BOTTOM_MMOE ? "ple" : "mmoe", dir,
                                  dir),
                            0);
        text = tu_slurp(log, NULL);
        CU_ASSERT(text && strstr(text, "trained with bottom") && strstr(text, name));
        if (!(text && strstr(text, "trained with bottom")))
            fprintf(stderr, "\n  %s: %s\n", name, text ? text : "(no log)");
        free(text);
    }
}

/* Start the 2 shards of cluster cl with extra options; pids into ps. */
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

/* mmoe and ple on 2 shards: train, predict, checkpoint, predict from the
 * checkpoint, restart the shards from it (layout from its META), predict
 * the same, train on; a shard told another bottom refuses the checkpoint. */
static void test_cluster(void)
{
    static const int which[] = {MODEL_BOTTOM_MMOE, MODEL_BOTTOM_PLE};

    for (size_t k = 0; k < 2; k++) {
        const char *o = opts_of(which[k]), *name = model_bottom_name(which[k]);
        char cl[700], eps[1500], log[800], opt[400], ck[760], init[800], p1[800], p2[800], p3[800];
        pid_t ps[2] = {0, 0};
        char *text;

        snprintf(cl, sizeof(cl), "%s/cl-%s", dir, name);
        mkdir(cl, 0755);
        snprintf(eps, sizeof(eps), "ipc://%s/ps0.sock,ipc://%s/ps1.sock", cl, cl);
        snprintf(opt, sizeof(opt), SMALL " %s", o);
        snprintf(log, sizeof(log), "%s/worker.log", cl);
        snprintf(ck, sizeof(ck), "%s/checkpoints/c1", cl);
        snprintf(p1, sizeof(p1), "%s/ps.pred", cl);
        snprintf(p2, sizeof(p2), "%s/ck.pred", cl);
        snprintf(p3, sizeof(p3), "%s/restarted.pred", cl);
        CU_ASSERT_EQUAL_FATAL(start_shards(cl, opt, ps), 0);
        CU_ASSERT_EQUAL(
            tu_sh(log, "%s/funnel-worker train --ps %s %s --metrics_file %s/m.jsonl %s/w/a.tsv",
                  bin, eps, opt, cl, dir),
            0);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --ps %s %s --in %s/w/test.tsv --out %s",
                              bin, eps, opt, dir, p1),
                        0);
        CU_ASSERT_EQUAL(good_lines(p1), 3000);
        CU_ASSERT_EQUAL(
            tu_sh(log, "%s/funnel-worker ctl checkpoint --ps %s --name c1 %s", bin, eps, opt), 0);
        stop_shards(ps);
        /* the checkpoint predicts what the cluster predicted */
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --model %s --in %s/w/test.tsv --out %s",
                              bin, ck, dir, p2),
                        0);
        CU_ASSERT(files_equal(p1, p2));
        /* a shard told another bottom refuses it */
        snprintf(log, sizeof(log), "%s/refused.log", cl);
        CU_ASSERT_NOT_EQUAL(tu_sh(log,
                                  "timeout 60 %s/funnel-ps --shard 0 --shards 2 --listen "
                                  "ipc://%s/x.sock --data %s/x0 --init_from %s --bottom %s",
                                  bin, cl, cl, ck, which[k] == MODEL_BOTTOM_MMOE ? "ple" : "mmoe"),
                            0);
        text = tu_slurp(log, NULL);
        CU_ASSERT(text && strstr(text, "bottom") && strstr(text, name));
        if (!(text && strstr(text, "bottom")))
            fprintf(stderr, "\n  %s refused: %s\n", name, text ? text : "(no log)");
        free(text);
        /* new shards started from the checkpoint (their layout from its
         * META): the same predictions, and training goes on */
        snprintf(cl, sizeof(cl), "%s/cl-%s-2", dir, name);
        mkdir(cl, 0755);
        snprintf(eps, sizeof(eps), "ipc://%s/ps0.sock,ipc://%s/ps1.sock", cl, cl);
        snprintf(init, sizeof(init), "--init_from %s", ck);
        CU_ASSERT_EQUAL_FATAL(start_shards(cl, init, ps), 0);
        snprintf(log, sizeof(log), "%s/worker.log", cl);
        snprintf(opt, sizeof(opt), SMALL " %s", o);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --ps %s %s --in %s/w/test.tsv --out %s",
                              bin, eps, opt, dir, p3),
                        0);
        CU_ASSERT(files_equal(p1, p3));
        CU_ASSERT_EQUAL(
            tu_sh(log, "%s/funnel-worker train --ps %s %s --metrics_file %s/m.jsonl %s/w/b.tsv",
                  bin, eps, opt, cl, dir),
            0);
        stop_shards(ps);
    }
}

/* Pearson correlation of logit(pctr) and logit(pcvr) over a truth file
 * (columns click action buy buy_cf pctr pcvr ...), or NAN. */
static double truth_corr(const char *path)
{
    char *t = tu_slurp(path, NULL), *line, *save = NULL;
    double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;

    for (line = t ? strtok_r(t, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        double v[6];
        char *p = line, *end;
        int k;
        for (k = 0; k < 6; k++, p = end)
            if (v[k] = strtod(p, &end), end == p)
                break;
        if (k < 6 || !(v[4] > 0 && v[4] < 1 && v[5] > 0 && v[5] < 1))
            continue; /* the header */
        double x = log(v[4] / (1 - v[4])), y = log(v[5] / (1 - v[5]));
        n++, sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
    }
    free(t);
    if (n < 2)
        return NAN;
    return (sxy - sx * sy / n) / sqrt((sxx - sx * sx / n) * (syy - sy * sy / n));
}

static void test_gen_task_corr(void)
{
    static const char *const tc[] = {"1", "0.5", "0"};
    double r[3];

    for (int k = 0; k < 3; k++) {
        char path[800];
        snprintf(path, sizeof(path), "%s/tc%d", dir, k);
        CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                    "%s/funnel-gen --out %s --train 0 --test 20000 --seed 4 "
                                    "--users 5000 --items 3000 --clickbait false --task_corr %s "
                                    "> %s.log 2>&1",
                                    bin, path, tc[k], path),
                              0);
        snprintf(path, sizeof(path), "%s/tc%d/test.truth.tsv", dir, k);
        r[k] = truth_corr(path);
    }
    if (getenv("FUNNEL_TEST_VERBOSE") || !(r[0] > r[1] + 0.1 && r[1] > r[2] + 0.1))
        fprintf(stderr, "\n    task_corr 1 / 0.5 / 0: logit correlation %.3f / %.3f / %.3f\n", r[0],
                r[1], r[2]);
    CU_ASSERT(r[0] > r[1] + 0.1);
    CU_ASSERT(r[1] > r[2] + 0.1);
    CU_ASSERT(fabs(r[2]) < 0.15);
    CU_ASSERT(r[0] > 0.5);
}

static int setup(void)
{
    char gen[600];

    if (tu_mkdtemp(dir, sizeof(dir), "bottoms") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    if (access(gen, X_OK) != 0)
        return -1;
    return tu_sh(NULL,
                 "%s --out %s/w --train 30000 --test 3000 --seed 21 > %s/gen.log 2>&1 && "
                 "head -n 15000 %s/w/train.tsv > %s/w/a.tsv && "
                 "tail -n +15001 %s/w/train.tsv > %s/w/b.tsv",
                 gen, dir, dir, dir, dir, dir, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    tu_stop_all();
    if (CU_get_number_of_failures() > 0)
        fprintf(stderr, "\n  bottoms suite: files kept in %s\n", dir);
    else
        tu_rmtree(dir);
    return 0;
}

int test_bottoms_register(void)
{
    CU_pSuite s = CU_add_suite("bottoms", setup, teardown);

    if (!s)
        return -1;
    CU_add_test(s, "every bottom x head set: gradients vs finite differences, double",
                test_gradcheck_f64);
    CU_add_test(s, "every bottom x head set: gradients vs finite differences, float",
                test_gradcheck_f32);
    CU_add_test(s, "parameter counts by hand", test_shapes);
    CU_add_test(s, "save, load, predict; another bottom refuses the file", test_save_load);
    CU_add_test(s, "every bottom trains, saves, predicts, continues with --init_from",
                test_in_process);
    CU_add_test(s, "mmoe and ple on 2 shards: checkpoint, restart from it, refuse a mismatch",
                test_cluster);
    CU_add_test(s, "funnel-gen --task_corr sets how the click and conversion drivers correlate",
                test_gen_task_corr);
    return 0;
}
