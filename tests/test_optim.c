/*
 * test_optim.c - every optimizer against steps computed by hand (the
 * expected numbers below were worked out on paper / a desk calculator from
 * the formulas in optim.c's notes, not by calling the code), and the
 * deterministic row init.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <string.h>

#include "common/fpmode.h"
#include "common/optim.h"

#define CLOSE(a, b, tol) CU_ASSERT(fabs((double)(a) - (double)(b)) <= (tol))

static optim_t opt(int kind, float lr)
{
    optim_t o;
    memset(&o, 0, sizeof(o));
    o.kind = kind;
    o.lr = lr;
    o.eps = 1e-8f;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.ftrl_beta = 1.0f;
    o.init_std = 0.01f;
    return o;
}

static void test_state_len(void)
{
    optim_t o = opt(OPTIM_SGD, 1);
    CU_ASSERT_EQUAL(optim_state_len(&o, 16), 0);
    CU_ASSERT_EQUAL(optim_dense_state_len(&o, 16), 0);
    o.kind = OPTIM_ADAGRAD;
    CU_ASSERT_EQUAL(optim_state_len(&o, 16), 16);
    CU_ASSERT_EQUAL(optim_dense_state_len(&o, 16), 16);
    o.kind = OPTIM_ADAM;
    CU_ASSERT_EQUAL(optim_state_len(&o, 16), 33);
    CU_ASSERT_EQUAL(optim_dense_state_len(&o, 16), 32);
    o.kind = OPTIM_FTRL;
    CU_ASSERT_EQUAL(optim_state_len(&o, 16), 32);
    CU_ASSERT_STRING_EQUAL(optim_name(OPTIM_ADAGRAD), "adagrad");
    CU_ASSERT_STRING_EQUAL(optim_name(OPTIM_SGD), "sgd");
    CU_ASSERT_STRING_EQUAL(optim_name(OPTIM_ADAM), "adam");
    CU_ASSERT_STRING_EQUAL(optim_name(OPTIM_FTRL), "ftrl");
}

static void test_sgd(void)
{
    optim_t o = opt(OPTIM_SGD, 0.1f);
    float w[2] = {1.0f, -2.0f}, g[2] = {0.5f, 1.0f};

    optim_row_update(&o, w, NULL, g, 2);
    CLOSE(w[0], 0.95, 1e-7);
    CLOSE(w[1], -2.1, 1e-7);
    optim_dense_update(&o, w, NULL, g, 2, 1);
    CLOSE(w[0], 0.90, 1e-7);
    CLOSE(w[1], -2.2, 1e-6);
}

static void test_adagrad(void)
{
    optim_t o = opt(OPTIM_ADAGRAD, 0.1f);
    float w[1] = {1.0f}, acc[1] = {0.0f}, g1[1] = {2.0f}, g2[1] = {1.0f};
    float wd[1] = {1.0f}, accd[1] = {0.0f};

    /* acc = 4, w = 1 - 0.1 * 2 / 2 = 0.9 */
    optim_row_update(&o, w, acc, g1, 1);
    CLOSE(acc[0], 4.0, 0);
    CLOSE(w[0], 0.9, 1e-7);
    /* acc = 5, w = 0.9 - 0.1 / sqrt(5) = 0.85527864 */
    optim_row_update(&o, w, acc, g2, 1);
    CLOSE(acc[0], 5.0, 0);
    CLOSE(w[0], 0.85527864, 1e-7);
    /* the dense path is the same rule */
    optim_dense_update(&o, wd, accd, g1, 1, 1);
    optim_dense_update(&o, wd, accd, g2, 1, 2);
    CLOSE(wd[0], 0.85527864, 1e-7);
    /* a zero gradient on a fresh accumulator does nothing (no 0/0) */
    float z[1] = {0.0f}, a0[1] = {0.0f}, w0[1] = {0.5f};
    optim_row_update(&o, w0, a0, z, 1);
    CU_ASSERT_EQUAL(w0[0], 0.5f);
}

/*
 * Adam, lr 0.01, betas (0.9, 0.999), eps 1e-8, w = (0.5, -0.25):
 *   step 1, g = (0.2, -0.4): m = (0.02, -0.04), v = (4e-5, 1.6e-4),
 *     mhat = g, sqrt(vhat) = |g|, w = (0.49, -0.24) (minus eps effects)
 *   step 2, g = (-0.1, 0.3): m = (0.008, -0.006), v = (4.996e-5, 2.4984e-4),
 *     w0 = 0.49 - 0.01/0.19 * 0.008 / (sqrt(4.996e-5)/sqrt(0.001999) + 1e-8)
 *        = 0.48733663
 *     w1 = -0.24 + 0.01/0.19 * 0.006 / (sqrt(2.4984e-4)/sqrt(0.001999) + 1e-8)
 *        = -0.23910675
 */
static void test_adam(void)
{
    optim_t o = opt(OPTIM_ADAM, 0.01f);
    float g1[2] = {0.2f, -0.4f}, g2[2] = {-0.1f, 0.3f};
    float w[2] = {0.5f, -0.25f}, st[5] = {0};
    float wd[2] = {0.5f, -0.25f}, std_[4] = {0};

    optim_row_update(&o, w, st, g1, 2);
    CLOSE(st[4], 1.0, 0);
    CLOSE(st[0], 0.02, 1e-8);
    CLOSE(st[3], 1.6e-4, 5e-9); /* float 1 - 0.999 is off by 1.3e-5 relative */
    CLOSE(w[0], 0.49, 1e-6);
    CLOSE(w[1], -0.24, 1e-6);
    optim_row_update(&o, w, st, g2, 2);
    CLOSE(st[4], 2.0, 0);
    CLOSE(st[0], 0.008, 1e-8);
    CLOSE(st[1], -0.006, 1e-8);
    CLOSE(st[2], 4.996e-5, 1e-9);
    CLOSE(st[3], 2.4984e-4, 4e-9);
    CLOSE(w[0], 0.48733663, 1e-6);
    CLOSE(w[1], -0.23910675, 1e-6);

    /* dense: same numbers, t from the caller */
    optim_dense_update(&o, wd, std_, g1, 2, 1);
    optim_dense_update(&o, wd, std_, g2, 2, 2);
    CLOSE(wd[0], 0.48733663, 1e-6);
    CLOSE(wd[1], -0.23910675, 1e-6);

    /* each row counts its own steps */
    float w2[2] = {0.5f, -0.25f}, st2[5] = {0};
    optim_row_update(&o, w2, st2, g1, 2);
    CLOSE(st2[4], 1.0, 0);
    CLOSE(w2[0], 0.49, 1e-6);
}

/*
 * FTRL, alpha 0.1, beta 1, l1 0.05, l2 0.2, w0 = 0.3:
 *   z0 = -(1/0.1 + 0.2) * 0.3 - 0.05 = -3.11, n0 = 0
 *   g = 0.4:  sigma = 0.4/0.1 = 4, z = -3.11 + 0.4 - 4*0.3 = -3.91, n = 0.16
 *             w = 3.86 / ((1 + 0.4)/0.1 + 0.2) = 3.86/14.2 = 0.27183099
 *   g = -1:   n = 1.16, sigma = (sqrt(1.16) - 0.4)/0.1 = 6.7703296
 *             z = -3.91 - 1 - 6.7703296 * 0.27183099 = -6.7503854
 *             w = 6.7003854 / ((1 + sqrt(1.16))/0.1 + 0.2) = 0.31951741
 *   g = +50 drives z past zero and w becomes negative; small |z| <= l1 gives 0.
 */
static void test_ftrl(void)
{
    optim_t o = opt(OPTIM_FTRL, 0.1f);
    float w[1], st[2], g[1];

    o.l1 = 0.05f;
    o.l2 = 0.2f;
    o.init_std = 1.0f;
    optim_row_init(&o, 12345, w, st, 1);
    /* the init makes the closed form reproduce the random embedding */
    float base = o.ftrl_beta / o.lr + o.l2;
    float sg = w[0] > 0 ? 1.0f : -1.0f;
    CLOSE(-(st[0] - (st[0] > 0 ? 1 : -1) * o.l1) / base, w[0], 1e-6);
    CLOSE(st[0], -base * w[0] - sg * o.l1, 1e-6);
    CU_ASSERT_EQUAL(st[1], 0.0f);
    /* a zero gradient keeps the embedding where it was */
    float w0 = w[0];
    g[0] = 0;
    optim_row_update(&o, w, st, g, 1);
    CLOSE(w[0], w0, 1e-6);

    w[0] = 0.3f;
    st[0] = -3.11f;
    st[1] = 0.0f;
    g[0] = 0.4f;
    optim_row_update(&o, w, st, g, 1);
    CLOSE(st[0], -3.91, 1e-5);
    CLOSE(st[1], 0.16, 1e-7);
    CLOSE(w[0], 0.27183099, 1e-6);
    g[0] = -1.0f;
    optim_row_update(&o, w, st, g, 1);
    CLOSE(st[0], -6.7503854, 1e-5);
    CLOSE(st[1], 1.16, 1e-6);
    CLOSE(w[0], 0.31951741, 1e-6);

    /* L1 sparsity: |z| <= l1 gives exactly zero */
    w[0] = 0.0f;
    st[0] = 0.0f;
    st[1] = 0.0f;
    g[0] = 0.04f; /* z = 0.04 <= 0.05 */
    optim_row_update(&o, w, st, g, 1);
    CU_ASSERT_EQUAL(w[0], 0.0f);
    g[0] = 0.02f; /* z = 0.06 - sigma*0 > l1: w = -(0.01)/((1+sqrt(0.002))/0.1+0.2) */
    optim_row_update(&o, w, st, g, 1);
    CLOSE(w[0], -0.01 / ((1 + sqrt(0.0020)) / 0.1 + 0.2), 1e-7);
}

static void test_init_deterministic(void)
{
    optim_t o = opt(OPTIM_ADAM, 0.01f);
    float a[17], b[17], c[17], sa[35], sb[35];

    o.init_std = 0.5f;
    memset(sa, 0x7f, sizeof(sa));
    optim_row_init(&o, 0xdeadbeefULL, a, sa, 17);
    optim_row_init(&o, 0xdeadbeefULL, b, sb, 17);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof(a)), 0);
    for (int j = 0; j < 35; j++)
        CU_ASSERT_EQUAL(sa[j], 0.0f);
    /* a shorter row is a prefix of the longer one (odd dims included) */
    optim_row_init(&o, 0xdeadbeefULL, c, sb, 5);
    CU_ASSERT_EQUAL(memcmp(a, c, 5 * sizeof(float)), 0);
    /* another key gives another row */
    optim_row_init(&o, 0xdeadbef0ULL, c, sb, 17);
    CU_ASSERT_NOT_EQUAL(memcmp(a, c, sizeof(a)), 0);

    /* the values look like N(0, init_std^2) over many keys */
    double s1 = 0, s2 = 0, n = 0;
    float w[16], st[33];
    for (uint64_t k = 1; k <= 4000; k++) {
        optim_row_init(&o, k * UINT64_C(0x9e3779b97f4a7c15) ^ k, w, st, 16);
        for (int j = 0; j < 16; j++) {
            CU_ASSERT(isfinite(w[j]));
            s1 += w[j];
            s2 += (double)w[j] * w[j];
            n++;
        }
    }
    double mean = s1 / n, sd = sqrt(s2 / n - mean * mean);
    CU_ASSERT(fabs(mean) < 0.01); /* standard error 0.5/sqrt(64000) = 0.002 */
    CU_ASSERT(fabs(sd - 0.5) < 0.01);

    /* zero std gives a zero row */
    o.init_std = 0.0f;
    optim_row_init(&o, 7, w, st, 16);
    for (int j = 0; j < 16; j++)
        CU_ASSERT_EQUAL(w[j], 0.0f);
}

/* Adam's first moment of a unit whose gradient stopped: 0.9 x m, which
 * stays a denormal for good without FTZ/DAZ (the slow case fpmode.h is
 * about); under fpmode_enter it flushes to 0, and fpmode_set restores. */
static void test_fpmode(void)
{
    volatile float m = 4 * 1.401298464e-45f, beta = 0.9f; /* 4 ulp: a denormal */
    unsigned before = fpmode_get();

    CU_ASSERT(fpclassify(m * beta) == FP_SUBNORMAL); /* rounds back to 4 ulp */
    unsigned prev = fpmode_enter();
    CU_ASSERT_EQUAL(prev & ~0x3fu, before & ~0x3fu); /* the low 6 bits: sticky flags */
    CU_ASSERT(m * beta == 0.0f);                     /* FTZ: the result flushes */
    CU_ASSERT(m + 0.0f == 0.0f);                     /* DAZ: the input reads as zero */
    fpmode_set(prev);
    CU_ASSERT_EQUAL(fpmode_get() & ~0x3fu, before & ~0x3fu);
    CU_ASSERT(fpclassify(m * beta) == FP_SUBNORMAL);
}

int test_optim_register(void)
{
    CU_pSuite s = CU_add_suite("optim", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "state lengths and names", test_state_len);
    CU_add_test(s, "sgd rows and dense by hand", test_sgd);
    CU_add_test(s, "adagrad rows and dense by hand", test_adagrad);
    CU_add_test(s, "adam rows and dense by hand (PyTorch semantics)", test_adam);
    CU_add_test(s, "ftrl-proximal by hand, init reproduces the embedding", test_ftrl);
    CU_add_test(s, "row init is deterministic and normal", test_init_deterministic);
    CU_add_test(s, "fpmode: FTZ/DAZ flush denormals, the mode comes back", test_fpmode);
    return CU_get_error();
}
