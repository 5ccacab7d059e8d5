/*
 * dense.c - fully connected layer on OpenBLAS and its double reference.
 * See dense.h for shapes and conventions.
 */
#include "model/dense.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"

/* out (B,H, rows ldo apart) += b, then ReLU if asked: one pass. */
static void bias_act(float *restrict out, size_t ldo, const float *restrict b, size_t B, size_t H,
                     int act)
{
    for (size_t i = 0; i < B; i++) {
        float *restrict o = out + i * ldo;
        if (act == DENSE_RELU)
            for (size_t j = 0; j < H; j++) {
                float v = o[j] + b[j];
                o[j] = v > 0.0f ? v : 0.0f;
            }
        else
            for (size_t j = 0; j < H; j++)
                o[j] += b[j];
    }
}

void dense_forward_ld(float *out, size_t ldo, const float *in, size_t ldi, const float *w,
                      const float *b, size_t B, size_t D, size_t H, int act)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)H, (int)D, 1.0f, in, (int)ldi,
                w, (int)D, 0.0f, out, (int)ldo);
    bias_act(out, ldo, b, B, H, act);
}

void dense_forward(float *out, const float *in, const float *w, const float *b, size_t B, size_t D,
                   size_t H, int act)
{
    dense_forward_ld(out, H, in, D, w, b, B, D, H, act);
}

void dense_relu_mask(float *dout, size_t lddo, const float *out, size_t ldo, size_t B, size_t H)
{
    for (size_t i = 0; i < B; i++) {
        float *restrict d = dout + i * lddo;
        const float *restrict o = out + i * ldo;
        for (size_t j = 0; j < H; j++)
            d[j] = o[j] > 0.0f ? d[j] : 0.0f;
    }
}

/* db (H) = column sums of dout (B,H), after masking dout by out > 0 if ReLU. */
static void mask_and_colsum(float *restrict db, float *restrict dout, size_t lddo,
                            const float *restrict out, size_t ldo, size_t B, size_t H, int act)
{
    memset(db, 0, H * sizeof(float));
    for (size_t i = 0; i < B; i++) {
        float *restrict d = dout + i * lddo;
        if (act == DENSE_RELU) {
            const float *restrict o = out + i * ldo;
            for (size_t j = 0; j < H; j++)
                d[j] = o[j] > 0.0f ? d[j] : 0.0f;
        }
        for (size_t j = 0; j < H; j++)
            db[j] += d[j];
    }
}

void dense_backward_ld(float *din, size_t lddi, float *dw, float *db, float *dout, size_t lddo,
                       const float *in, size_t ldi, const float *w, const float *out, size_t ldo,
                       size_t B, size_t D, size_t H, int act, int accum)
{
    if (dw) {
        mask_and_colsum(db, dout, lddo, out, ldo, B, H, act);
        /* dw (H,D) = dout^T (H,B) in (B,D) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)H, (int)D, (int)B, 1.0f, dout,
                    (int)lddo, in, (int)ldi, 0.0f, dw, (int)D);
    }
    /* din (B,D) = dout (B,H) W (H,D) */
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)D, (int)H, 1.0f, dout,
                    (int)lddo, w, (int)D, accum ? 1.0f : 0.0f, din, (int)lddi);
}

void dense_backward(float *din, float *dw, float *db, float *dout, const float *in, const float *w,
                    const float *out, size_t B, size_t D, size_t H, int act, int accum)
{
    dense_backward_ld(din, D, dw, db, dout, H, in, D, w, out, H, B, D, H, act, accum);
}

void dense_forward_ld_ref(double *out, size_t ldo, const double *in, size_t ldi, const double *w,
                          const double *b, size_t B, size_t D, size_t H, int act)
{
    for (size_t i = 0; i < B; i++)
        for (size_t j = 0; j < H; j++) {
            double s = b[j];
            for (size_t k = 0; k < D; k++)
                s += in[i * ldi + k] * w[j * D + k];
            out[i * ldo + j] = act == DENSE_RELU && s <= 0.0 ? 0.0 : s;
        }
}

void dense_forward_ref(double *out, const double *in, const double *w, const double *b, size_t B,
                       size_t D, size_t H, int act)
{
    dense_forward_ld_ref(out, H, in, D, w, b, B, D, H, act);
}

void dense_relu_mask_ref(double *dout, size_t lddo, const double *out, size_t ldo, size_t B,
                         size_t H)
{
    for (size_t i = 0; i < B; i++)
        for (size_t j = 0; j < H; j++)
            if (!(out[i * ldo + j] > 0.0))
                dout[i * lddo + j] = 0.0;
}

void dense_backward_ld_ref(double *din, size_t lddi, double *dw, double *db, double *dout,
                           size_t lddo, const double *in, size_t ldi, const double *w,
                           const double *out, size_t ldo, size_t B, size_t D, size_t H, int act,
                           int accum)
{
    if (dw) {
        if (act == DENSE_RELU)
            dense_relu_mask_ref(dout, lddo, out, ldo, B, H);
        for (size_t j = 0; j < H; j++) {
            double s = 0.0;
            for (size_t i = 0; i < B; i++)
                s += dout[i * lddo + j];
            db[j] = s;
            for (size_t k = 0; k < D; k++) {
                double t = 0.0;
                for (size_t i = 0; i < B; i++)
                    t += dout[i * lddo + j] * in[i * ldi + k];
                dw[j * D + k] = t;
            }
        }
    }
    if (!din)
        return;
    for (size_t i = 0; i < B; i++)
        for (size_t k = 0; k < D; k++) {
            double s = accum ? din[i * lddi + k] : 0.0;
            for (size_t j = 0; j < H; j++)
                s += dout[i * lddo + j] * w[j * D + k];
            din[i * lddi + k] = s;
        }
}

void dense_backward_ref(double *din, double *dw, double *db, double *dout, const double *in,
                        const double *w, const double *out, size_t B, size_t D, size_t H, int act,
                        int accum)
{
    dense_backward_ld_ref(din, D, dw, db, dout, H, in, D, w, out, H, B, D, H, act, accum);
}

void dense_threads_set(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}

int dense_threads_get(void)
{
    return openblas_get_num_threads();
}

const char *dense_blas_core(void)
{
    return openblas_get_corename();
}

int dense_blas_max_threads(void)
{
    return openblas_get_num_procs();
}

static double cpu_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int dense_sgemm_rate(size_t M, size_t N, size_t K, double min_seconds, double *wall_gflops,
                     double *cpu_gflops)
{
    float *a = malloc(M * K * sizeof(float));
    float *b = malloc(K * N * sizeof(float));
    float *c = malloc(M * N * sizeof(float));
    double t0, c0, t = 0, reps = 0, flops = 2.0 * (double)M * (double)N * (double)K;
    int rc = ERR_NOMEM;

    if (!a || !b || !c)
        goto out;
    for (size_t i = 0; i < M * K; i++)
        a[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < K * N; i++)
        b[i] = (float)(i % 7) * 0.02f;
    /* one untimed product warms caches and OpenBLAS's thread pool */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)K,
                b, (int)N, 0.0f, c, (int)N);
    t0 = clock_now_s();
    c0 = cpu_now_s();
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a,
                    (int)K, b, (int)N, 0.0f, c, (int)N);
        reps++;
        t = clock_now_s() - t0;
    } while (t < min_seconds);
    if (wall_gflops)
        *wall_gflops = flops * reps / t * 1e-9;
    if (cpu_gflops) {
        double ct = cpu_now_s() - c0;
        *cpu_gflops = ct > 0 ? flops * reps / ct * 1e-9 : 0;
    }
    rc = 0;
out:
    free(c);
    free(b);
    free(a);
    return rc;
}

double dense_sgemm_gflops(size_t M, size_t N, size_t K, double min_seconds)
{
    double g;

    return dense_sgemm_rate(M, N, K, min_seconds, &g, NULL) ? ERR_NOMEM : g;
}
