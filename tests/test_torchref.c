/*
 * test_torchref.c - the dense model against the PyTorch reference
 * (bench/torch_model.py grad-check, the same model classes that train in
 * the benchmarks and experiments), issue 15 point 1:
 *   - for every bottom (concat, shared, mmoe, omoe, ple) under every head
 *     set of the reference (esm2, esmm, naive, nmtr): one float training
 *     step on a fixed random batch of 64 rows, and the reference, loaded
 *     with the same dense block by funnel's layout (model.h, bottom.h),
 *     computes the same predictions, losses, parameter gradients and
 *     d total / d x with autograd, in float32 (and float64 to show how far
 *     each float32 side is from exact). Tolerances are the checker's
 *     (GRAD_TOL etc. in bench/torch_model.py): a parameter group's worst
 *     difference (and dx's) within 1e-5 of the gradient's 2-norm, losses
 *     within 1e-5 relative, probabilities within 1e-6;
 *   - the checker can fail: one gradient element moved by 10x the
 *     tolerance, one dx element, one loss, one prediction, and two towers'
 *     weights swapped are each reported as a mismatch.
 *
 * Needs /usr/bin/python3 with torch and numpy (Debian python3-torch,
 * python3-numpy: scripts/install-deps.sh --dev); without them the suite
 * fails saying so. Runs from the top of the checkout (bench/ relative).
 *
 * Case files (native byte order; the checker runs on the same machine):
 * args (torch_model.py options), x.f32 (B, input_dim), labels.u8 (B, 3)
 * click/action/buy, params.f32 and grads.f32 (model_params layout),
 * dx.f32 (B, input_dim), loss.f64 (nloss), pred.f32 (B, HEADS_NPRED).
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/heads.h"
#include "model/model.h"
#include "tests/util.h"

#define PYTHON "/usr/bin/python3"
#define CHECKER "bench/torch_model.py"

enum { B = 64, NSLOT = 3, EDIM = 4, D = NSLOT * EDIM };

static const int TYPES[] = {MODEL_ESM2, MODEL_ESMM, MODEL_NAIVE, MODEL_NMTR};
#define NTYPES (sizeof(TYPES) / sizeof(TYPES[0]))

static char dir[512];
static int have_torch;

static uint64_t rs;

static double urand(void) /* [0, 1) */
{
    rs = rs * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (double)(rs >> 11) * 0x1.0p-53;
}

/* A small model of every part: 2-layer towers, 2-layer experts, 3 mmoe /
 * omoe experts, ple with 2 levels of 1 task and 2 shared experts, unequal
 * loss weights. The reference gets the same sizes (case_args). */
static model_spec_t spec(int type, int bottom)
{
    const heads_t *h = heads_for(type);
    model_spec_t ms;

    memset(&ms, 0, sizeof(ms));
    ms.type = type;
    ms.ntowers = heads_ntowers(h);
    ms.nloss = heads_nloss(h);
    ms.loss_weight[0] = 1.0f;
    ms.loss_weight[1] = 0.7f;
    ms.loss_weight[2] = 1.3f;
    ms.input_dim = D;
    ms.nlayers = 2;
    ms.layer[0] = 8;
    ms.layer[1] = 4;
    ms.dense_opt.kind = OPTIM_ADAM;
    ms.dense_opt.lr = 0.01f;
    ms.dense_opt.eps = 1e-8f;
    ms.dense_opt.beta1 = 0.9f;
    ms.dense_opt.beta2 = 0.999f;
    ms.bottom = bottom;
    if (bottom != MODEL_BOTTOM_CONCAT) {
        ms.nbottom_layers = 2;
        ms.bottom_layer[0] = 6;
        ms.bottom_layer[1] = 5;
    }
    if (bottom == MODEL_BOTTOM_MMOE || bottom == MODEL_BOTTOM_OMOE)
        ms.experts = 3;
    if (bottom == MODEL_BOTTOM_PLE) {
        ms.ple_shared = 2;
        ms.ple_task = 1;
        ms.ple_levels = 2;
    }
    return ms;
}

/* The reference's options for the same model. */
static void case_args(char *buf, size_t len, int type, int bottom)
{
    snprintf(buf, len,
             "--model %s --bottom %s --slots s0,s1,s2 --emb-dim %d --towers 8,4 "
             "--expert-layers 6,5 --shared-layers 6,5 --experts 3 --ple-shared-experts 2 "
             "--ple-task-experts 1 --ple-levels 2 --loss-weights %s\n",
             heads_name(heads_for(type)), model_bottom_name(bottom), EDIM,
             heads_nloss(heads_for(type)) == 3 ? "1,0.7,1.3" : "1,0.7");
}

/* One case: funnel's step and what the checker reads. */
typedef struct tcase {
    model_t *m;
    size_t n;       /* dense floats */
    float x[B * D]; /* pooled inputs */
    uint8_t lab[B * 3];
    uint8_t click[B], action[B], buy[B];
    float *grads; /* n, copied out of the model */
    float dx[B * D];
    double loss[HEADS_MAX_LOSS];
    float pred[B * HEADS_NPRED];
} tcase_t;

static void tcase_release(tcase_t *c)
{
    model_destroy(&c->m);
    free(c->grads);
    c->grads = NULL;
}

/* Build the model, draw a batch (about half the rows clicked, half of
 * those with an action, 40% with a buy), make the biases nonzero so that
 * they matter, and run one training step and a prediction. */
static int tcase_run(tcase_t *c, int type, int bottom, uint64_t seed)
{
    model_spec_t ms = spec(type, bottom);
    float *p;

    memset(c, 0, sizeof(*c));
    if (!(c->m = model_new(&ms, B, seed, NULL)))
        return -1;
    rs = seed;
    for (size_t i = 0; i < B * D; i++)
        c->x[i] = (float)(urand() * 2 - 1);
    for (size_t i = 0; i < B; i++) {
        c->click[i] = i == 0 || urand() < 0.5;
        c->action[i] = c->click[i] && (i == 0 || urand() < 0.5);
        c->buy[i] = c->click[i] && (i == 0 || urand() < 0.4);
        c->lab[i * 3] = c->click[i];
        c->lab[i * 3 + 1] = c->action[i];
        c->lab[i * 3 + 2] = c->buy[i];
    }
    p = model_params(c->m, &c->n);
    for (size_t i = 0; i < c->n; i++)
        if (p[i] == 0.0f)
            p[i] = (float)(urand() * 0.4 - 0.2);
    if (model_train_step(c->m, c->x, c->click, c->action, c->buy, NULL, B, c->dx, c->loss) ||
        model_predict(c->m, c->x, B, c->pred))
        return -1;
    if (!(c->grads = malloc(c->n * sizeof(float))))
        return -1;
    memcpy(c->grads, model_grads(c->m, &c->n), c->n * sizeof(float));
    return 0;
}

static int write_file(const char *d, const char *name, const void *data, size_t len)
{
    char path[700];
    FILE *f;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/%s", d, name);
    if (!(f = fopen(path, "wb")))
        return -1;
    if (len && fwrite(data, 1, len, f) != len)
        rc = -1;
    if (fclose(f))
        rc = -1;
    return rc;
}

/* Write case c (model type, bottom) as directory parent/name. */
static int tcase_write(const tcase_t *c, int type, int bottom, const char *parent, const char *name)
{
    char d[600], path[700], args[512];
    const float *params;
    size_t n;
    int nloss = model_nloss(c->m);

    snprintf(d, sizeof(d), "%s/%s", parent, name);
    if (mkdir(d, 0755))
        return -1;
    params = model_params(c->m, &n);
    case_args(args, sizeof(args), type, bottom);
    snprintf(path, sizeof(path), "%s/args", d);
    if (tu_write(path, args) || write_file(d, "x.f32", c->x, sizeof(c->x)) ||
        write_file(d, "labels.u8", c->lab, sizeof(c->lab)) ||
        write_file(d, "params.f32", params, n * sizeof(float)) ||
        write_file(d, "grads.f32", c->grads, n * sizeof(float)) ||
        write_file(d, "dx.f32", c->dx, sizeof(c->dx)) ||
        write_file(d, "loss.f64", c->loss, (size_t)nloss * sizeof(double)) ||
        write_file(d, "pred.f32", c->pred, sizeof(c->pred)))
        return -1;
    return 0;
}

/* Run the checker over parent; its output into parent.log. */
static int check(const char *parent)
{
    return tu_sh(NULL, "OPENBLAS_NUM_THREADS=1 %s %s grad-check --dir %s > %s.log 2>&1", PYTHON,
                 CHECKER, parent, parent);
}

/* Print the checker's summary line, or its whole log (a failure,
 * FUNNEL_TEST_VERBOSE). */
static void show_log(const char *parent, int whole)
{
    char path[700];
    char *log, *line;

    snprintf(path, sizeof(path), "%s.log", parent);
    if (!(log = tu_slurp(path, NULL)))
        return;
    if (whole)
        fprintf(stderr, "\n%s\n", log);
    else if ((line = strstr(log, "grad-check:"))) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        printf("\n    %s\n", line);
    }
    free(log);
}

static int need_torch(void)
{
    if (have_torch)
        return 1;
    printf("\n  torchref: no " PYTHON " with torch and numpy: run scripts/install-deps.sh --dev\n");
    CU_FAIL("no python3-torch: run scripts/install-deps.sh --dev");
    return 0;
}

/* Every bottom x head set agrees with the reference. */
static void test_agree(void)
{
    char parent[600];
    int rc;

    if (!need_torch())
        return;
    snprintf(parent, sizeof(parent), "%s/good", dir);
    CU_ASSERT_FATAL(mkdir(parent, 0755) == 0);
    for (size_t t = 0; t < NTYPES; t++)
        for (int b = 0; b < MODEL_NBOTTOMS; b++) {
            tcase_t c;
            char name[64];
            snprintf(name, sizeof(name), "%s-%s", heads_name(heads_for(TYPES[t])),
                     model_bottom_name(b));
            CU_ASSERT_FATAL(tcase_run(&c, TYPES[t], b, 1500 + (uint64_t)(t * 10) + (uint64_t)b) ==
                            0);
            CU_ASSERT(tcase_write(&c, TYPES[t], b, parent, name) == 0);
            tcase_release(&c);
        }
    rc = check(parent);
    CU_ASSERT_EQUAL(rc, 0);
    show_log(parent, rc != 0 || getenv("FUNNEL_TEST_VERBOSE"));
}

/* Whether the checker's log reports case name as mismatched. */
static int reported(const char *log, const char *name)
{
    char want[128];
    snprintf(want, sizeof(want), "case %s: ", name);
    for (const char *s = strstr(log, want); s; s = strstr(s + 1, want)) {
        const char *end = strchr(s, '\n');
        const char *m = strstr(s, "MISMATCH");
        if (m && (!end || m < end))
            return 1;
    }
    return 0;
}

/* The checker catches a wrong gradient, dx, loss, prediction or layout. */
static void test_caught(void)
{
    static const char *const names[] = {"bad-grad", "bad-dx",     "bad-loss",
                                        "bad-pred", "bad-layout", "good"};
    char parent[600], path[700];
    tcase_t c;
    char *log;
    float *p, dx5;
    size_t n, nt;
    double norm = 0, dnorm = 0;

    if (!need_torch())
        return;
    snprintf(parent, sizeof(parent), "%s/bad", dir);
    CU_ASSERT_FATAL(mkdir(parent, 0755) == 0);
    CU_ASSERT_FATAL(tcase_run(&c, MODEL_ESM2, MODEL_BOTTOM_PLE, 77) == 0);
    for (size_t i = 0; i < c.n; i++)
        norm += (double)c.grads[i] * c.grads[i];
    for (size_t i = 0; i < B * D; i++)
        dnorm += (double)c.dx[i] * c.dx[i];
    norm = sqrt(norm);
    dnorm = sqrt(dnorm);

    /* each value off by 10x its tolerance: one bottom gradient (the last
     * gate's last bias) and one dx by 1e-4 of their norms, a loss by 1e-4
     * relative, a probability by 1e-5 */
    c.grads[c.n - 1] += (float)(1e-4 * norm);
    CU_ASSERT(tcase_write(&c, MODEL_ESM2, MODEL_BOTTOM_PLE, parent, names[0]) == 0);
    c.grads[c.n - 1] -= (float)(1e-4 * norm);
    dx5 = c.dx[5];
    c.dx[5] += (float)(1e-4 * dnorm);
    CU_ASSERT(tcase_write(&c, MODEL_ESM2, MODEL_BOTTOM_PLE, parent, names[1]) == 0);
    c.dx[5] = dx5;
    c.loss[2] *= 1 + 1e-4;
    CU_ASSERT(tcase_write(&c, MODEL_ESM2, MODEL_BOTTOM_PLE, parent, names[2]) == 0);
    c.loss[2] /= 1 + 1e-4;
    c.pred[7 * HEADS_NPRED + HEADS_PCVR] += 1e-5f;
    CU_ASSERT(tcase_write(&c, MODEL_ESM2, MODEL_BOTTOM_PLE, parent, names[3]) == 0);
    c.pred[7 * HEADS_NPRED + HEADS_PCVR] -= 1e-5f;
    /* towers 0 and 1 swapped in the parameter block: a layout mix-up */
    p = model_params(c.m, &n);
    nt = (n - model_spec_bottom_len(model_spec(c.m))) / 4;
    for (size_t i = 0; i < nt; i++) {
        float v = p[i];
        p[i] = p[nt + i];
        p[nt + i] = v;
    }
    CU_ASSERT(tcase_write(&c, MODEL_ESM2, MODEL_BOTTOM_PLE, parent, names[4]) == 0);
    for (size_t i = 0; i < nt; i++) {
        float v = p[i];
        p[i] = p[nt + i];
        p[nt + i] = v;
    }
    CU_ASSERT(tcase_write(&c, MODEL_ESM2, MODEL_BOTTOM_PLE, parent, names[5]) == 0);
    tcase_release(&c);

    CU_ASSERT_EQUAL(check(parent), 1);
    snprintf(path, sizeof(path), "%s.log", parent);
    CU_ASSERT_FATAL((log = tu_slurp(path, NULL)) != NULL);
    for (size_t i = 0; i < 5; i++) {
        CU_ASSERT(reported(log, names[i]));
        if (!reported(log, names[i]))
            fprintf(stderr, "\n  torchref: %s was not reported as a mismatch\n", names[i]);
    }
    CU_ASSERT(!reported(log, "good")); /* the unperturbed control passes */
    CU_ASSERT(strstr(log, "5 mismatched") != NULL);
    free(log);
}

static int setup(void)
{
    if (tu_mkdtemp(dir, sizeof(dir), "torchref"))
        return -1;
    have_torch = tu_sh(NULL, "%s -c 'import torch, numpy' > /dev/null 2>&1", PYTHON) == 0;
    return 0;
}

static int teardown(void)
{
    if (CU_get_number_of_failures() > 0)
        fprintf(stderr, "\n  torchref suite: files kept in %s\n", dir);
    else
        tu_rmtree(dir);
    return 0;
}

int test_torchref_register(void)
{
    CU_pSuite s = CU_add_suite("torchref", setup, teardown);

    if (!s)
        return -1;
    CU_add_test(s, "every bottom x head set: predictions, losses, gradients = PyTorch autograd",
                test_agree);
    CU_add_test(s, "the checker reports a perturbed gradient, dx, loss, prediction, layout",
                test_caught);
    return 0;
}
