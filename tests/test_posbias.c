/*
 * test_posbias.c - the position-bias tower (model/bias.h, issue 15):
 *   - every parameter (towers, bottom, bias tower) and dX of a small
 *     network against central finite differences, with a linear and a
 *     one-hidden-layer bias tower, under every head set, on the concat and
 *     an mmoe bottom, in double (1e-6) and in float (1e-3), 1 and 2 threads;
 *   - the bias logit is added to the click logit: predictions with the
 *     bias on differ in pCTR only by it, and are unchanged when it is off;
 *   - shapes, the config keys, save -> load, and a file of a model without
 *     a bias tower refused by one with it (and the reverse);
 *   - real processes: funnel-gen's position effect and its relevance file;
 *     a model with the bias tower ranks the held-out log closer to the true
 *     relevance than the same model with position as an ordinary feature;
 *     predict --with_bias; --init_from; a 2-shard cluster run.
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

#include "common/model_conf.h"
#include "model/bias.h"
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

/* Slots a:2 pos:1 (bias) b:2 dev:1 (bias): a row of 6, main 4, bias 2. */
enum { D = 6, DM = 4, DB = 2, GB = 7 };

static model_spec_t bias_spec(int type, int bottom, int hidden)
{
    static const struct {
        const char *name;
        int dim, bias;
    } slots[] = {{"a", 2, 0}, {"pos", 1, 1}, {"b", 2, 0}, {"dev", 1, 1}};
    model_spec_t ms;

    memset(&ms, 0, sizeof(ms));
    ms.type = type;
    ms.ntowers = type == MODEL_ESM2 ? 4 : 2;
    ms.nloss = type == MODEL_ESM2 ? 3 : 2;
    ms.loss_weight[0] = 1.0f;
    ms.loss_weight[1] = 0.7f;
    ms.loss_weight[2] = 1.3f;
    for (int s = 0; s < 4; s++) {
        snprintf(ms.slot[s].name, sizeof(ms.slot[s].name), "%s", slots[s].name);
        ms.slot[s].dim = slots[s].dim;
        ms.slot[s].bias = slots[s].bias;
        ms.input_dim += slots[s].dim;
        ms.nbias += slots[s].bias;
        ms.bias_dim += slots[s].bias ? slots[s].dim : 0;
    }
    ms.nslots = 4;
    ms.nlayers = 1;
    ms.layer[0] = 3;
    ms.dense_opt.kind = OPTIM_ADAM;
    ms.dense_opt.lr = 0.01f;
    ms.dense_opt.eps = 1e-8f;
    ms.dense_opt.beta1 = 0.9f;
    ms.dense_opt.beta2 = 0.999f;
    ms.bottom = bottom;
    if (bottom == MODEL_BOTTOM_MMOE) {
        ms.nbottom_layers = 1;
        ms.bottom_layer[0] = 3;
        ms.experts = 2;
    }
    ms.nbias_layers = hidden ? 1 : 0;
    ms.bias_layer[0] = hidden;
    return ms;
}

typedef struct gc {
    model_t *m;
    size_t n;
    float x[GB * D];
    double xd[GB * D];
    uint8_t c[GB], ac[GB], bu[GB];
} gc_t;

static int gc_setup(gc_t *g, const model_spec_t *ms, uint64_t seed, int threads)
{
    float *p;

    memset(g, 0, sizeof(*g));
    if (!(g->m = model_new(ms, 16, seed, NULL)))
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
    p = model_params(g->m, &g->n);
    for (size_t i = 0; i < g->n; i++) /* nonzero biases, so that they matter */
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

static const int BOTTOMS[] = {MODEL_BOTTOM_CONCAT, MODEL_BOTTOM_MMOE};
static const int HIDDEN[] = {0, 3};

/* Double: every parameter and input against central differences. */
static void gradcheck_f64(int type, int bottom, int hidden, int threads)
{
    model_spec_t ms = bias_spec(type, bottom, hidden);
    gc_t g;
    double *p, *gr, dx[GB * D], loss[3], worst = 0, bias_grad = 0;
    size_t nb = model_spec_bias_len(&ms);

    if (gc_setup(&g, &ms, 500 + (uint64_t)(type * 100 + bottom * 10 + hidden), threads)) {
        CU_FAIL("model_new");
        return;
    }
    float *pf = model_params(g.m, &g.n);
    p = malloc(g.n * sizeof(double));
    gr = malloc(g.n * sizeof(double));
    for (size_t i = 0; i < g.n; i++)
        p[i] = pf[i];
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
        if (err > 1e-6 && getenv("FUNNEL_TEST_VERBOSE"))
            fprintf(stderr, "\n      #%zu of %zu: %.9g vs %.9g", i, g.n, an, (lp - lm) / (2 * e));
        if (i >= g.n - nb && i < g.n)
            bias_grad += fabs(an);
    }
    CU_ASSERT(worst < 1e-6);
    CU_ASSERT(bias_grad > 1e-3); /* the bias tower does get a gradient */
    if (getenv("FUNNEL_TEST_VERBOSE") || !(worst < 1e-6))
        fprintf(stderr, "\n    %s on %s, bias hidden %d, %d threads: double worst %.3g\n",
                heads_name(heads_for(type)), model_bottom_name(bottom), hidden, threads, worst);
    free(gr);
    free(p);
    model_destroy(&g.m);
}

static void test_gradcheck_f64(void)
{
    for (int type = 0; type < 3; type++)
        for (size_t b = 0; b < 2; b++)
            for (size_t h = 0; h < 2; h++)
                for (int th = 1; th <= 2; th++)
                    gradcheck_f64(type, BOTTOMS[b], HIDDEN[h], th);
}

/* Float: the training path against central differences of its own loss,
 * skipping the few steps that cross a ReLU kink (as test_bottoms does). */
static void gradcheck_f32(int type, int bottom, int hidden, int threads)
{
    model_spec_t ms = bias_spec(type, bottom, hidden);
    gc_t g;
    size_t skipped = 0, checked = 0;
    double worst = 0, worst_vs64 = 0, loss[3];
    float dx[GB * D];
    double dx64[GB * D];

    if (gc_setup(&g, &ms, 600 + (uint64_t)(type * 10 + bottom + hidden), threads)) {
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
                "\n    %s on %s, bias hidden %d, %d threads: float worst %.3g, vs double %.3g, "
                "%zu skipped of %zu\n",
                heads_name(heads_for(type)), model_bottom_name(bottom), hidden, threads, worst,
                worst_vs64, skipped, skipped + checked);
    free(g64);
    free(p);
    free(gf);
    model_destroy(&g.m);
}

static void test_gradcheck_f32(void)
{
    for (int type = 0; type < 3; type++)
        for (size_t b = 0; b < 2; b++)
            for (size_t h = 0; h < 2; h++)
                for (int th = 1; th <= 2; th++)
                    gradcheck_f32(type, BOTTOMS[b], HIDDEN[h], th);
}

static double logit(double p)
{
    return log(p / (1.0 - p));
}

/*
 * With the bias on, pCTR's logit moves by exactly the bias tower's logit
 * (computed here from the bias part of x and the bias range of the
 * parameters); pCVR does not move; with it off (the default, and after
 * switching back) the predictions are those of the towers alone.
 */
static void test_predict_bias(void)
{
    model_spec_t ms = bias_spec(MODEL_ESM2, MODEL_BOTTOM_CONCAT, 3);
    model_t *m = model_new(&ms, 16, 7, NULL);
    bias_t *b = bias_new(&ms, NULL);
    float x[GB * D], xm[GB * DM], xb[GB * DB], off[GB * 4], on[GB * 4], again[GB * 4];
    float *s = NULL, *p;
    size_t n, nb = model_spec_bias_len(&ms);
    const float *z;
    double worst = 0;

    CU_ASSERT_FATAL(m && b);
    CU_ASSERT_EQUAL(model_has_bias(m), 1);
    s = malloc(bias_scratch_len(b, GB) * sizeof(float));
    p = model_params(m, &n);
    rs = 3;
    for (size_t i = 0; i < n; i++) /* nonzero biases: a clearly nonzero bias logit */
        if (p[i] == 0.0f)
            p[i] = (float)(urand() - 0.5);
    for (size_t i = 0; i < GB * D; i++)
        x[i] = (float)(urand() * 2 - 1);
    CU_ASSERT_EQUAL(model_predict(m, x, GB, off), 0);
    CU_ASSERT_EQUAL(model_predict_set_bias(m, 1), 0);
    CU_ASSERT_EQUAL(model_predict(m, x, GB, on), 0);
    CU_ASSERT_EQUAL(model_predict_set_bias(m, 0), 1);
    CU_ASSERT_EQUAL(model_predict(m, x, GB, again), 0);
    CU_ASSERT_EQUAL(memcmp(off, again, sizeof(off)), 0);
    bias_split(b, x, GB, xm, xb);
    /* the split keeps slot order: a:2 pos:1 b:2 dev:1 */
    CU_ASSERT_EQUAL(xm[0], x[0]);
    CU_ASSERT_EQUAL(xm[2], x[3]);
    CU_ASSERT_EQUAL(xb[0], x[2]);
    CU_ASSERT_EQUAL(xb[1], x[5]);
    z = bias_forward(b, s, p + n - nb, xb, GB);
    for (size_t i = 0; i < GB; i++) {
        double d = logit(on[i * 4 + HEADS_PCTR]) - logit(off[i * 4 + HEADS_PCTR]);
        double e = fabs(d - z[i]);
        if (e > worst)
            worst = e;
        CU_ASSERT_EQUAL(on[i * 4 + HEADS_PCVR], off[i * 4 + HEADS_PCVR]);
    }
    CU_ASSERT(worst < 1e-3);
    free(s);
    bias_destroy(&b);
    model_destroy(&m);
}

/* Parameter counts by hand; the towers read the main part only. */
static void test_shapes(void)
{
    const size_t tower = DM * 3 + 3 + 3 + 1; /* 4 -> 3 -> 1 */

    for (size_t h = 0; h < 2; h++) {
        model_spec_t ms = bias_spec(MODEL_ESM2, MODEL_BOTTOM_CONCAT, HIDDEN[h]);
        size_t nb = HIDDEN[h] ? DB * 3 + 3 + 3 + 1 : DB + 1, n = 0;
        model_t *m = model_new(&ms, 8, 1, NULL);

        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(model_spec_bias_len(&ms), nb);
        CU_ASSERT_EQUAL(model_spec_tower_input(&ms), DM);
        model_params(m, &n);
        CU_ASSERT_EQUAL(n, 4 * tower + nb);
        CU_ASSERT_EQUAL(n, model_spec_dense_len(&ms));
        CU_ASSERT_EQUAL(model_spec(m)->input_dim, D); /* the caller's spec */
        model_destroy(&m);
    }
}

/* The keys: bias_slots must name slots; bias_layers "0" is linear. */
static void test_conf(void)
{
    model_conf_t mc;
    model_spec_t ms;
    errbuf_t eb = {{0}};
    static const conf_key_t mkeys[] = {
#define ROW(...) CONF_ROW(model_conf_t, __VA_ARGS__)
        MODEL_CONF_KEYS(ROW)
#undef ROW
    };
    const conf_schema_t msc = {"model", mkeys, sizeof(mkeys) / sizeof(mkeys[0]), NULL};

    CU_ASSERT_EQUAL_FATAL(conf_defaults(&msc, &mc, &eb), 0);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), 0);
    CU_ASSERT_EQUAL(ms.nbias, 0); /* the default: no bias tower */
    CU_ASSERT_EQUAL(model_spec_bias_len(&ms), 0);
    conf_set(&msc, &mc, "slot_dims", "position:4", "t", &eb);
    conf_set(&msc, &mc, "bias_slots", "position", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), 0);
    CU_ASSERT_EQUAL(ms.nbias, 1);
    CU_ASSERT_EQUAL(ms.bias_dim, 4);
    CU_ASSERT_EQUAL(ms.input_dim, 7 * 16 + 4);
    CU_ASSERT_EQUAL(model_spec_tower_input(&ms), 7 * 16);
    CU_ASSERT_EQUAL(ms.nbias_layers, 1);
    CU_ASSERT_EQUAL(ms.bias_layer[0], 16);
    CU_ASSERT_EQUAL(model_spec_bias_len(&ms), 4 * 16 + 16 + 16 + 1);
    conf_set(&msc, &mc, "bias_layers", "0", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), 0);
    CU_ASSERT_EQUAL(ms.nbias_layers, 0);
    CU_ASSERT_EQUAL(model_spec_bias_len(&ms), 4 + 1);
    conf_set(&msc, &mc, "bias_slots", "device", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "bias_slots"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "device"));
    conf_set(&msc, &mc, "bias_slots", "position,position", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), ERR_CONFIG);
    conf_set(&msc, &mc, "slots", "position", "t", &eb);
    conf_set(&msc, &mc, "bias_slots", "position", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), ERR_CONFIG); /* nothing left */
    conf_release(&msc, &mc);
}

/* Save -> load: identical predictions with the bias on; a model without
 * the bias tower refuses the file, and the reverse. */
static void test_save_load(void)
{
    model_spec_t ms = bias_spec(MODEL_ESMM, MODEL_BOTTOM_MMOE, 3);
    model_spec_t plain = ms, lin = ms;
    model_t *a = model_new(&ms, 16, 5, NULL), *b = model_new(&ms, 16, 6, NULL), *c, *d;
    float x[16 * D], pa[16 * 4], pb[16 * 4];
    uint8_t cl[16] = {1, 0, 1}, ac[16] = {1}, bu[16] = {1};
    double loss[3];
    errbuf_t eb = {0};
    FILE *f = tmpfile();

    for (int s = 0; s < 4; s++)
        plain.slot[s].bias = 0;
    plain.nbias = plain.bias_dim = plain.nbias_layers = 0;
    lin.nbias_layers = 0;
    c = model_new(&plain, 16, 5, NULL);
    d = model_new(&lin, 16, 5, NULL);
    CU_ASSERT_FATAL(a && b && c && d && f);
    rs = 9;
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
        x[i] = (float)(urand() * 2 - 1);
    for (int s = 0; s < 3; s++) {
        model_train_step(a, x, cl, ac, bu, NULL, 16, NULL, loss);
        model_apply_grads(a);
    }
    CU_ASSERT_EQUAL(model_save_dense(a, f, &eb), 0);
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(b, f, &eb), 0);
    model_predict_set_bias(a, 1);
    model_predict_set_bias(b, 1);
    model_predict(a, x, 16, pa);
    model_predict(b, x, 16, pb);
    CU_ASSERT_EQUAL(memcmp(pa, pb, sizeof(pa)), 0);
    CU_ASSERT_EQUAL(model_step(b), 3);
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(c, f, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "bias"));
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(d, f, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "bias tower layer count"));
    rewind(f);
    CU_ASSERT_EQUAL(model_save_dense(c, f, &eb), 0);
    rewind(f);
    CU_ASSERT_EQUAL(model_load_dense(a, f, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "no bias tower"));
    fclose(f);
    model_destroy(&a);
    model_destroy(&b);
    model_destroy(&c);
    model_destroy(&d);
}

/* ---- real processes ---------------------------------------------------- */

static char dir[512], bin[700];

/* Small towers; the world below has a strong position effect. */
#define SMALL "--towers 64,32 --emb_dim 8"
#define WORLD_ROWS 200000
#define TEST_ROWS 20000

/* Column col (0-based) of every line of a TAB-separated file with a header
 * line, into a new array; *n gets the count. NULL if unreadable. */
static double *column(const char *path, int col, size_t *n)
{
    char *t = tu_slurp(path, NULL), *line, *save = NULL;
    double *v = NULL;
    size_t cap = 0;
    int first = 1;

    *n = 0;
    for (line = t ? strtok_r(t, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char *p = line, *end = NULL;
        double x = NAN;
        if (first) { /* the header */
            first = 0;
            continue;
        }
        for (int k = 0; k <= col; k++, p = end)
            x = strtod(p, &end);
        if (*n == cap) {
            double *nv = realloc(v, (cap = cap ? 2 * cap : 4096) * sizeof(*v));
            if (!nv)
                break;
            v = nv;
        }
        v[(*n)++] = x;
    }
    free(t);
    return v;
}

static const double *sort_key;

static int by_key(const void *a, const void *b)
{
    double x = sort_key[*(const size_t *)a], y = sort_key[*(const size_t *)b];
    return x < y ? -1 : x > y;
}

/* Ranks 0..n-1 of x, ties sharing their mean rank. */
static double *ranks(const double *x, size_t n)
{
    size_t *idx = malloc(n * sizeof(*idx));
    double *r = malloc(n * sizeof(*r));

    if (!idx || !r) {
        free(idx);
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_key = x;
    qsort(idx, n, sizeof(*idx), by_key);
    for (size_t i = 0, j; i < n; i = j + 1) {
        for (j = i; j + 1 < n && x[idx[j + 1]] == x[idx[i]]; j++)
            ;
        for (size_t k = i; k <= j; k++)
            r[idx[k]] = 0.5 * (double)(i + j);
    }
    free(idx);
    return r;
}

/* Spearman's rank correlation of the pctr column of a prediction file with
 * column col of a reference file (relevance or truth), or NAN. */
static double spearman(const char *pred, const char *ref, int col)
{
    size_t np = 0, nr = 0;
    double *p = column(pred, 0, &np), *q = column(ref, col, &nr), *rp = NULL, *rq = NULL;
    double res = NAN;

    if (p && q && np == nr && np > 1 && (rp = ranks(p, np)) && (rq = ranks(q, nr))) {
        double m = 0.5 * (double)(np - 1), sab = 0, saa = 0, sbb = 0;
        for (size_t i = 0; i < np; i++) {
            sab += (rp[i] - m) * (rq[i] - m);
            saa += (rp[i] - m) * (rp[i] - m);
            sbb += (rq[i] - m) * (rq[i] - m);
        }
        res = sab / sqrt(saa * sbb);
    }
    free(rq);
    free(rp);
    free(q);
    free(p);
    return res;
}

/* funnel-gen --relevance: one relevance per test line; it is the truth's
 * pctr at position 1 and above it at every later position (the click
 * logit falls by position_bias ln(position)). */
static void test_gen_relevance(void)
{
    char path[800], *log;
    size_t nr = 0, nt = 0, same = 0, above = 0, bad = 0, lines = 0;
    double *rel, *pctr;

    snprintf(path, sizeof(path), "%s/w/test.relevance.tsv", dir);
    rel = column(path, 0, &nr);
    snprintf(path, sizeof(path), "%s/w/test.truth.tsv", dir);
    pctr = column(path, 4, &nt);
    snprintf(path, sizeof(path), "%s/w/test.tsv", dir);
    log = tu_slurp(path, NULL);
    CU_ASSERT_FATAL(rel && pctr && log);
    CU_ASSERT_EQUAL(nr, (size_t)TEST_ROWS);
    CU_ASSERT_EQUAL(nt, nr);
    for (char *line = log, *nl; nr == nt && *line && lines < nr; line = nl + 1, lines++) {
        const char *pos = strstr(line, "position:");
        nl = strchr(line, '\n');
        if (!nl || !pos || pos > nl)
            break;
        if (atoi(pos + 9) == 1)
            same += rel[lines] == pctr[lines];
        else if (rel[lines] > pctr[lines])
            above++;
        else
            bad++;
    }
    CU_ASSERT_EQUAL(lines, nr);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(same > nr / 20); /* ~1/10 of the lines are at position 1 */
    CU_ASSERT_EQUAL(same + above, nr);
    free(log);
    free(pctr);
    free(rel);
}

/*
 * The point of the tower: train the same model twice on the same log, once
 * with position in the bias tower (in two runs: the second half continues
 * with --init_from) and once as an ordinary feature; the first ranks the
 * held-out log closer to the true relevance (Spearman), the second closer
 * to the biased truth it was fit to. With --with_bias the first predicts
 * the biased click probability again. A model without bias slots refuses
 * --with_bias, and a model dir refuses other bias_slots, naming the key.
 */
static void test_ranks_relevance(void)
{
    char log[800], ma[800], ma2[800], mb[800], pa[800], pa1[800], pab[800], pb[800], rel[800],
        truth[800], *text;
    double sa, sa1, sab, sb, ta, tab, tb;

    snprintf(log, sizeof(log), "%s/relevance.log", dir);
    snprintf(ma, sizeof(ma), "%s/bias-1", dir);
    snprintf(ma2, sizeof(ma2), "%s/bias-2", dir);
    snprintf(mb, sizeof(mb), "%s/feature", dir);
    snprintf(pa1, sizeof(pa1), "%s/bias-1.pred", dir);
    snprintf(pa, sizeof(pa), "%s/bias-2.pred", dir);
    snprintf(pab, sizeof(pab), "%s/bias-2-with.pred", dir);
    snprintf(pb, sizeof(pb), "%s/feature.pred", dir);
    snprintf(rel, sizeof(rel), "%s/w/test.relevance.tsv", dir);
    snprintf(truth, sizeof(truth), "%s/w/test.truth.tsv", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(log, "%s/funnel-worker train " SMALL " --bias_slots position --model %s %s/w/a.tsv",
              bin, ma, dir),
        0);
    CU_ASSERT_EQUAL_FATAL(tu_sh(log, "%s/funnel-worker train --init_from %s --model %s %s/w/b.tsv",
                                bin, ma, ma2, dir),
                          0);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(log, "%s/funnel-worker train " SMALL " --model %s %s/w/train.tsv", bin, mb, dir), 0);
    /* the layout (bias slots too) comes from META: no option at all */
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --model %s --in %s/w/test.tsv --out %s",
                          bin, ma, dir, pa1),
                    0);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --model %s --in %s/w/test.tsv --out %s",
                          bin, ma2, dir, pa),
                    0);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-worker predict --with_bias --model %s --in %s/w/test.tsv "
                          "--out %s",
                          bin, ma2, dir, pab),
                    0);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --model %s --in %s/w/test.tsv --out %s",
                          bin, mb, dir, pb),
                    0);
    sa1 = spearman(pa1, rel, 0);
    sa = spearman(pa, rel, 0);
    sab = spearman(pab, rel, 0);
    sb = spearman(pb, rel, 0);
    ta = spearman(pa, truth, 4);
    tab = spearman(pab, truth, 4);
    tb = spearman(pb, truth, 4);
    fprintf(stderr,
            "\n    Spearman with the true relevance: bias tower %.3f (half the log %.3f, with "
            "the bias %.3f), position as a feature %.3f;\n    with the biased truth pctr: bias "
            "tower %.3f (with the bias %.3f), position as a feature %.3f\n",
            sa, sa1, sab, sb, ta, tab, tb);
    CU_ASSERT(sa > sb + 0.1);  /* closer to the relevance */
    CU_ASSERT(sa > sa1);       /* --init_from went on learning */
    CU_ASSERT(tb > ta + 0.1);  /* the feature model fits the biased clicks */
    CU_ASSERT(tab > ta + 0.1); /* --with_bias puts the position effect back */
    CU_ASSERT(sab < sa - 0.1);
    /* a serving bundle of the bias model: predict --bundle gives the same
     * file, and funnel-serve scores without the bias too */
    {
        char ep[800], slog[800], sv[800];
        pid_t srv;
        double ss;
        snprintf(ep, sizeof(ep), "ipc://%s/serve.sock", dir);
        snprintf(slog, sizeof(slog), "%s/serve.log", dir);
        snprintf(sv, sizeof(sv), "%s/served.pred", dir);
        CU_ASSERT_EQUAL(tu_sh(log,
                              "%s/funnel-emb bundle %s --out %s/bundle && %s/funnel-worker "
                              "predict --bundle %s/bundle --in %s/w/test.tsv --out %s/bundle.pred "
                              "&& cmp %s %s/bundle.pred",
                              bin, ma2, dir, bin, dir, dir, dir, pa, dir),
                        0);
        srv = tu_spawn(slog, "exec %s/funnel-serve --bundle %s/bundle --listen %s", bin, dir, ep);
        CU_ASSERT_FATAL(srv > 0);
        CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-serve score --connect %s --in %s/w/test.tsv --out %s",
                              bin, ep, dir, sv),
                        0);
        tu_stop(srv, SIGTERM);
        ss = spearman(sv, rel, 0);
        fprintf(stderr, "    served: %.3f\n", ss);
        CU_ASSERT(fabs(ss - sa) < 1e-3);
    }
    /* --with_bias needs a bias tower */
    snprintf(log, sizeof(log), "%s/refused.log", dir);
    CU_ASSERT_NOT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --with_bias --model %s --in "
                              "%s/w/test.tsv --out %s/refused.pred",
                              bin, mb, dir, dir),
                        0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "--with_bias") && strstr(text, "no bias tower"));
    free(text);
    /* other bias slots than the model's are refused, naming the key */
    CU_ASSERT_NOT_EQUAL(tu_sh(log,
                              "%s/funnel-worker predict --bias_slots hour --model %s --in "
                              "%s/w/test.tsv --out %s/refused.pred",
                              bin, ma, dir, dir),
                        0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "bias_slots") && strstr(text, "position"));
    if (!(text && strstr(text, "bias_slots")))
        fprintf(stderr, "\n  refused: %s\n", text ? text : "(no log)");
    free(text);
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

/*
 * On 2 shards: the bias tower's weights are dense weights on the shards
 * and the position rows are pulled and pushed like any other; the cluster
 * model ranks by relevance better than the feature model of the previous
 * test, a checkpoint predicts what the cluster predicts (with and without
 * the bias), its META carries the bias slots, and shards restarted from it
 * predict the same and train on.
 */
static void test_cluster(void)
{
    char cl[700], eps[1500], log[800], ck[760], p1[800], p2[800], p3[800], p4[800], p5[800],
        p6[800], pb[800], rel[800], meta[800], init[800], *text;
    pid_t ps[2] = {0, 0};
    const char *opt = SMALL " --bias_slots position";
    double s1, sb;

    snprintf(cl, sizeof(cl), "%s/cl", dir);
    mkdir(cl, 0755);
    snprintf(eps, sizeof(eps), "ipc://%s/ps0.sock,ipc://%s/ps1.sock", cl, cl);
    snprintf(log, sizeof(log), "%s/worker.log", cl);
    snprintf(ck, sizeof(ck), "%s/checkpoints/c1", cl);
    snprintf(p1, sizeof(p1), "%s/ps.pred", cl);
    snprintf(p2, sizeof(p2), "%s/ck.pred", cl);
    snprintf(p3, sizeof(p3), "%s/ps-with.pred", cl);
    snprintf(p4, sizeof(p4), "%s/ck-with.pred", cl);
    snprintf(pb, sizeof(pb), "%s/feature.pred", dir);
    snprintf(rel, sizeof(rel), "%s/w/test.relevance.tsv", dir);
    snprintf(meta, sizeof(meta), "%s/META", ck);
    CU_ASSERT_EQUAL_FATAL(start_shards(cl, opt, ps), 0);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s/funnel-worker train --ps %s %s --metrics_file %s/m.jsonl %s/w/train.tsv",
              bin, eps, opt, cl, dir),
        0);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --ps %s %s --in %s/w/test.tsv --out %s",
                          bin, eps, opt, dir, p1),
                    0);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-worker predict --ps %s %s --with_bias --in %s/w/test.tsv "
                          "--out %s",
                          bin, eps, opt, dir, p3),
                    0);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s/funnel-worker ctl checkpoint --ps %s --name c1 %s", bin, eps, opt), 0);
    stop_shards(ps);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --model %s --in %s/w/test.tsv --out %s",
                          bin, ck, dir, p2),
                    0);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-worker predict --with_bias --model %s --in %s/w/test.tsv "
                          "--out %s",
                          bin, ck, dir, p4),
                    0);
    CU_ASSERT(files_equal(p1, p2));
    CU_ASSERT(files_equal(p3, p4));
    CU_ASSERT(!files_equal(p1, p3));
    text = tu_slurp(meta, NULL);
    CU_ASSERT(text && strstr(text, "\nbias_slots position\n") && strstr(text, "\nshards 2\n"));
    free(text);
    /* new shards started from the checkpoint (the layout, bias tower too,
     * from its META): the same predictions, and training goes on */
    snprintf(cl, sizeof(cl), "%s/cl-2", dir);
    mkdir(cl, 0755);
    snprintf(eps, sizeof(eps), "ipc://%s/ps0.sock,ipc://%s/ps1.sock", cl, cl);
    snprintf(init, sizeof(init), "--init_from %s", ck);
    snprintf(log, sizeof(log), "%s/worker.log", cl);
    snprintf(p5, sizeof(p5), "%s/restarted.pred", cl);
    snprintf(p6, sizeof(p6), "%s/trained-on.pred", cl);
    CU_ASSERT_EQUAL_FATAL(start_shards(cl, init, ps), 0);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --ps %s %s --in %s/w/test.tsv --out %s",
                          bin, eps, opt, dir, p5),
                    0);
    CU_ASSERT(files_equal(p1, p5));
    /* the shards resume the worker after its first log: a second one goes on */
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-worker train --ps %s %s --metrics_file %s/m.jsonl "
                          "%s/w/train.tsv %s/w/b.tsv",
                          bin, eps, opt, cl, dir, dir),
                    0);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-worker predict --ps %s %s --in %s/w/test.tsv --out %s",
                          bin, eps, opt, dir, p6),
                    0);
    stop_shards(ps);
    CU_ASSERT(!files_equal(p5, p6));
    s1 = spearman(p1, rel, 0);
    sb = spearman(pb, rel, 0);
    fprintf(stderr, "\n    2 shards: Spearman with the true relevance %.3f (feature model %.3f)\n",
            s1, sb);
    CU_ASSERT(s1 > sb + 0.1);
}

static int setup(void)
{
    char gen[600];

    if (tu_mkdtemp(dir, sizeof(dir), "posbias") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    if (access(gen, X_OK) != 0)
        return -1;
    /* a strong, known position effect: the click logit falls by 2 ln(position) */
    return tu_sh(NULL,
                 "%s --out %s/w --train %d --test %d --seed 5 --position_bias 2 --relevance true "
                 "> %s/gen.log 2>&1 && head -n %d %s/w/train.tsv > %s/w/a.tsv && "
                 "tail -n +%d %s/w/train.tsv > %s/w/b.tsv",
                 gen, dir, WORLD_ROWS, TEST_ROWS, dir, WORLD_ROWS / 2, dir, dir, WORLD_ROWS / 2 + 1,
                 dir, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    tu_stop_all();
    if (CU_get_number_of_failures() > 0)
        fprintf(stderr, "\n  posbias suite: files kept in %s\n", dir);
    else
        tu_rmtree(dir);
    return 0;
}

int test_posbias_register(void)
{
    CU_pSuite s = CU_add_suite("posbias", setup, teardown);

    if (!s)
        return -1;
    CU_add_test(s, "bias tower x head sets x bottoms: gradients vs finite differences, double",
                test_gradcheck_f64);
    CU_add_test(s, "bias tower x head sets x bottoms: gradients vs finite differences, float",
                test_gradcheck_f32);
    CU_add_test(s, "the bias logit moves the click logit only, and only when asked",
                test_predict_bias);
    CU_add_test(s, "parameter counts by hand; the towers read the main part", test_shapes);
    CU_add_test(s, "bias_slots and bias_layers", test_conf);
    CU_add_test(s, "save, load; a model with another bias tower refuses the file", test_save_load);
    CU_add_test(s, "funnel-gen --relevance: the true p(click) without the position effect",
                test_gen_relevance);
    CU_add_test(s,
                "the bias tower ranks held-out lines closer to the relevance than position as "
                "a feature; --with_bias, --init_from",
                test_ranks_relevance);
    CU_add_test(s, "on 2 shards: train, predict, checkpoint, predict from it", test_cluster);
    return 0;
}
