/*
 * test_bf16.c - dense_precision = bf16 (dense.h's DENSE_BF16: inputs
 * rounded to bfloat16, oneDNN matmul, float32 accumulation): exact where
 * the inputs are bf16 numbers, within bf16 rounding elsewhere and really
 * not the float32 result, and a model step close to its float32 step on
 * one and two threads.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/model_conf.h"
#include "model/dense.h"
#include "model/model.h"

static uint64_t rs;

static double urand(void) /* [-1, 1) */
{
    rs = rs * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (double)(rs >> 11) * 0x1.0p-52 - 1.0;
}

enum { B = 64, D = 48, H = 40, LDO = 45 };

/* Inputs k / 8 with |k| <= 16 have 5 significant bits: bf16 holds them
 * exactly, and every product and partial sum of these sizes is exact in
 * float32 (multiples of 1/64 below 2^10), so bf16 must equal the double
 * reference bit for bit, forward and backward, accumulating or not. */
static void test_exact(void)
{
    static float in[B * D], w[H * D], b[H], out[B * LDO], dout[B * H], dw[H * D], db[H], din[B * D];
    static double ind[B * D], wd[H * D], bd[H], outd[B * H], doutd[B * H], dwd[H * D], dbd[H],
        dind[B * D];

    rs = 3;
    for (size_t i = 0; i < B * D; i++)
        ind[i] = in[i] = (float)((int)(urand() * 16) / 8.0);
    for (size_t i = 0; i < H * D; i++)
        wd[i] = w[i] = (float)((int)(urand() * 16) / 8.0);
    for (size_t i = 0; i < H; i++)
        bd[i] = b[i] = (float)((int)(urand() * 16) / 8.0);
    dense_precision_set(DENSE_BF16);
    CU_ASSERT_EQUAL(dense_precision_get(), DENSE_BF16);
    dense_forward_ld(out, LDO, in, D, w, b, B, D, H, DENSE_RELU);
    dense_forward_ref(outd, ind, wd, bd, B, D, H, DENSE_RELU);
    int bad = 0;
    for (size_t i = 0; i < B; i++)
        for (size_t j = 0; j < H; j++)
            bad += out[i * LDO + j] != (float)outd[i * H + j];
    CU_ASSERT_EQUAL(bad, 0);
    for (int accum = 0; accum < 2; accum++) {
        static float o2[B * H];
        for (size_t i = 0; i < B; i++)
            for (size_t j = 0; j < H; j++)
                o2[i * H + j] = out[i * LDO + j];
        for (size_t i = 0; i < B * H; i++)
            doutd[i] = dout[i] = (float)((int)(urand() * 16) / 8.0);
        for (size_t i = 0; i < B * D; i++)
            dind[i] = din[i] = (float)((int)(urand() * 16) / 8.0);
        dense_backward(din, dw, db, dout, in, w, o2, B, D, H, DENSE_RELU, accum);
        dense_backward_ref(dind, dwd, dbd, doutd, ind, wd, outd, B, D, H, DENSE_RELU, accum);
        bad = 0;
        for (size_t i = 0; i < H * D; i++)
            bad += dw[i] != (float)dwd[i];
        for (size_t i = 0; i < H; i++)
            bad += db[i] != (float)dbd[i];
        for (size_t i = 0; i < B * D; i++)
            bad += din[i] != (float)dind[i];
        CU_ASSERT_EQUAL(bad, 0);
    }
    dense_precision_set(DENSE_FP32);
}

/* Random inputs: each product's inputs are rounded to 8 significant bits,
 * so |bf16 - exact| <= 2^-7 sum_k |a_k b_k| (plus float32 accumulation);
 * and some outputs must differ from sgemm's, or bf16 did not run. */
static void test_rounding(void)
{
    static float in[B * D], w[H * D], b[H], o16[B * H], o32[B * H];
    static double ind[B * D], wd[H * D], bd[H], od[B * H];
    int bad = 0, differ = 0;

    rs = 5;
    for (size_t i = 0; i < B * D; i++)
        ind[i] = in[i] = (float)urand();
    for (size_t i = 0; i < H * D; i++)
        wd[i] = w[i] = (float)urand();
    for (size_t i = 0; i < H; i++)
        bd[i] = b[i] = 0.0f;
    dense_precision_set(DENSE_BF16);
    dense_forward(o16, in, w, b, B, D, H, DENSE_LINEAR);
    dense_precision_set(DENSE_FP32);
    dense_forward(o32, in, w, b, B, D, H, DENSE_LINEAR);
    dense_forward_ref(od, ind, wd, bd, B, D, H, DENSE_LINEAR);
    for (size_t i = 0; i < B; i++)
        for (size_t j = 0; j < H; j++) {
            double mag = 0;
            for (size_t k = 0; k < D; k++)
                mag += fabs(ind[i * D + k] * wd[j * D + k]);
            bad += fabs(o16[i * H + j] - od[i * H + j]) > 0x1.0p-7 * mag + 1e-5;
            differ += fabs(o16[i * H + j] - o32[i * H + j]) > 1e-5 * (1 + fabs(od[i * H + j]));
        }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(differ > B * H / 4);
}

static model_spec_t spec(void)
{
    model_spec_t ms;

    memset(&ms, 0, sizeof(ms));
    ms.type = MODEL_ESM2;
    ms.ntowers = 4;
    ms.nloss = 3;
    ms.loss_weight[0] = ms.loss_weight[1] = ms.loss_weight[2] = 1.0f;
    ms.input_dim = 32;
    ms.nlayers = 2;
    ms.layer[0] = 64;
    ms.layer[1] = 32;
    ms.dense_opt.kind = OPTIM_ADAM;
    ms.dense_opt.lr = 0.01f;
    ms.dense_opt.eps = 1e-8f;
    ms.dense_opt.beta1 = 0.9f;
    ms.dense_opt.beta2 = 0.999f;
    return ms;
}

/* One training step of an esm2 model in bf16 against the same step in
 * float32, on one thread and on a team of two: the gradient block and dx
 * within 0.1 in relative L2 (seen: 0.026 and 0.064; sums with cancellation
 * amplify the inputs' 2^-9 rounding), losses within 1%, and not equal.
 * A layout or transposition error would be off by order 1. */
static void test_model_step(void)
{
    enum { NB = 96 };
    model_spec_t ms = spec();
    static float x[NB * 32], dx32[NB * 32], dx16[NB * 32];
    uint8_t c[NB], a[NB], bu[NB];
    double l32[3], l16[3];
    size_t n;

    rs = 9;
    for (size_t i = 0; i < NB * 32; i++)
        x[i] = (float)urand();
    for (size_t i = 0; i < NB; i++) {
        c[i] = urand() > 0;
        a[i] = c[i] && urand() > 0;
        bu[i] = a[i] && urand() > 0;
    }
    model_t *ref = model_new(&ms, NB, 4, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    CU_ASSERT_EQUAL(model_train_step(ref, x, c, a, bu, NULL, NB, dx32, l32), 0);
    float *g32 = model_grads(ref, &n);
    for (int threads = 1; threads <= 2; threads++) {
        model_t *m = model_new(&ms, NB, 4, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(model_threads_set(m, threads, MODEL_PAR_TOWERS, NULL), 0);
        model_precision_set(m, DENSE_BF16);
        CU_ASSERT_EQUAL(model_train_step(m, x, c, a, bu, NULL, NB, dx16, l16), 0);
        float *g16 = model_grads(m, &n);
        double num = 0, den = 0, dnum = 0, dden = 0;
        for (size_t i = 0; i < n; i++) {
            num += (g16[i] - g32[i]) * (double)(g16[i] - g32[i]);
            den += g32[i] * (double)g32[i];
        }
        for (size_t i = 0; i < NB * 32; i++) {
            dnum += (dx16[i] - dx32[i]) * (double)(dx16[i] - dx32[i]);
            dden += dx32[i] * (double)dx32[i];
        }
        CU_ASSERT(num > 0);
        CU_ASSERT(sqrt(num / den) < 0.1);
        CU_ASSERT(sqrt(dnum / dden) < 0.1);
        for (int k = 0; k < 3; k++)
            CU_ASSERT(fabs(l16[k] - l32[k]) < 1e-2 * l32[k]);
        model_destroy(&m);
    }
    model_destroy(&ref);
    dense_precision_set(DENSE_FP32);
}

int test_bf16_register(void)
{
    CU_pSuite s = CU_add_suite("bf16", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "bf16-exact inputs: products equal the double reference", test_exact);
    CU_add_test(s, "random inputs: within bf16 rounding, not the fp32 result", test_rounding);
    CU_add_test(s, "a model step in bf16 against fp32, 1 and 2 threads", test_model_step);
    return CU_get_error();
}
