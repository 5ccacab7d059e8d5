/*
 * dense.c - fully connected layer on oneDNN or OpenBLAS, and its double
 * reference.
 * See dense.h for shapes and conventions.
 */
#include "model/dense.h"

#include <cblas.h>
#include <dnnl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"

/* ---- around every oneDNN call --------------------------------------------
 *
 * onednn_enter / onednn_leave bracket each oneDNN call (sgemm and the bf16
 * matmul alike). They do two things.
 *
 * Threads: oneDNN's are libgomp's, whose count is per calling thread; each
 * thread sets it to dense_threads_set()'s count before its first call and
 * whenever that count changes (a team member: 1).
 *
 * Signals:
 * oneDNN's JIT gemm kernels point the stack pointer into the heap while
 * they run (oneDNN issue 4845): a signal handled on that thread writes its
 * frame there. A SIGTERM to a training worker corrupted its heap in 3 of 20
 * runs ("corrupted size vs. prev_size" later, in an unrelated malloc), in 0
 * of 25 on OpenBLAS. So every oneDNN call runs with the asynchronous signals
 * blocked on its thread; one that arrives meanwhile waits the call's few
 * hundred microseconds and is handled on the ordinary stack. Threads that
 * oneDNN's runtime starts inside a call inherit the blocked mask, so its
 * own threads never take them. The synchronous fault signals stay open.
 */
extern void omp_set_num_threads(int); /* libgomp, oneDNN's runtime here */

static int gemm_threads = 1; /* dense_threads_set()'s count, for libgomp */
static sigset_t held;        /* every signal but the synchronous faults */
static pthread_once_t held_once = PTHREAD_ONCE_INIT;

static void held_init(void)
{
    sigfillset(&held);
    sigdelset(&held, SIGSEGV);
    sigdelset(&held, SIGBUS);
    sigdelset(&held, SIGFPE);
    sigdelset(&held, SIGILL);
    sigdelset(&held, SIGTRAP);
}

static void onednn_enter(sigset_t *old)
{
    static __thread int omp_n;
    int want = __atomic_load_n(&gemm_threads, __ATOMIC_RELAXED);

    if (omp_n != want) {
        omp_set_num_threads(want);
        omp_n = want;
    }
    pthread_once(&held_once, held_init);
    pthread_sigmask(SIG_BLOCK, &held, old);
}

static void onednn_leave(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* ---- bf16 products on oneDNN ---------------------------------------------
 *
 * With dense_precision_set(DENSE_BF16), every product of at least
 * BF16_MIN in each dimension converts its two inputs to bfloat16 (round to
 * nearest even) and multiplies them on oneDNN's matmul, which accumulates
 * and writes float32 (AMX or AVX512-BF16 where the CPU has them). Weights,
 * gradients and the optimizer stay float32. Each thread keeps its own
 * stream, conversion buffers and a small cache of matmul primitives by
 * shape (primitive creation costs far more than a product); the state is
 * freed when the thread exits.
 */
#define BF16_MIN 16
#define BF16_CACHE 48

typedef struct mm {
    int M, N, K, ta, tb, ldc;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} mm_t;

typedef struct bf16_state {
    dnnl_stream_t stream;
    uint16_t *abuf, *bbuf;
    float *cbuf;
    size_t alen, blen, clen;
    int n;
    mm_t mm[BF16_CACHE];
} bf16_state_t;

static int precision = DENSE_FP32; /* process-wide, like OpenBLAS's thread count */
static dnnl_engine_t engine;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t state_key;

static void state_free(void *p)
{
    bf16_state_t *st = p;

    for (int i = 0; i < st->n; i++) {
        dnnl_primitive_destroy(st->mm[i].prim);
        dnnl_memory_destroy(st->mm[i].a);
        dnnl_memory_destroy(st->mm[i].b);
        dnnl_memory_destroy(st->mm[i].c);
    }
    if (st->stream)
        dnnl_stream_destroy(st->stream);
    free(st->abuf);
    free(st->bbuf);
    free(st->cbuf);
    free(st);
}

static void bf16_init(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        engine = NULL;
    pthread_key_create(&state_key, state_free);
}

static bf16_state_t *bf16_state(void)
{
    bf16_state_t *st;

    pthread_once(&once, bf16_init);
    if (!engine)
        return NULL;
    if ((st = pthread_getspecific(state_key)))
        return st;
    if (!(st = calloc(1, sizeof(*st))))
        return NULL;
    if (dnnl_stream_create(&st->stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        free(st);
        return NULL;
    }
    pthread_setspecific(state_key, st);
    return st;
}

static int grow(void **buf, size_t *len, size_t want, size_t elem)
{
    void *p;

    if (*len >= want)
        return 0;
    if (!(p = realloc(*buf, want * elem)))
        return ERR_NOMEM;
    *buf = p;
    *len = want;
    return 0;
}

/* dst (rows, cols) compact <- src rows ld apart, rounded to bf16. */
static void to_bf16(uint16_t *restrict dst, const float *restrict src, size_t rows, size_t cols,
                    size_t ld)
{
    for (size_t i = 0; i < rows; i++) {
        const uint32_t *restrict s = (const uint32_t *)(const void *)(src + i * ld);
        uint16_t *restrict d = dst + i * cols;
        for (size_t j = 0; j < cols; j++) {
            uint32_t u = s[j];
            d[j] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        }
    }
}

static mm_t *matmul_for(bf16_state_t *st, int M, int N, int K, int ta, int tb, int ldc)
{
    dnnl_memory_desc_t ad, bd, cd;
    dnnl_dims_t adim = {M, K}, bdim = {K, N}, cdim = {M, N};
    dnnl_dims_t as = {ta ? 1 : K, ta ? M : 1}, bs = {tb ? 1 : N, tb ? K : 1}, cs = {ldc, 1};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    mm_t *e;

    for (int i = 0; i < st->n; i++) {
        e = &st->mm[i];
        if (e->M == M && e->N == N && e->K == K && e->ta == ta && e->tb == tb && e->ldc == ldc)
            return e;
    }
    if (st->n == BF16_CACHE)
        return NULL;
    e = &st->mm[st->n];
    *e = (mm_t){M, N, K, ta, tb, ldc, NULL, NULL, NULL, NULL};
    if (dnnl_memory_desc_init_by_strides(&ad, 2, adim, dnnl_bf16, as) ||
        dnnl_memory_desc_init_by_strides(&bd, 2, bdim, dnnl_bf16, bs) ||
        dnnl_memory_desc_init_by_strides(&cd, 2, cdim, dnnl_f32, cs) ||
        dnnl_matmul_desc_init(&md, &ad, &bd, NULL, &cd) ||
        dnnl_primitive_desc_create(&pd, &md, NULL, engine, NULL) ||
        dnnl_primitive_create(&e->prim, pd) ||
        dnnl_memory_create(&e->a, &ad, engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&e->b, &bd, engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&e->c, &cd, engine, DNNL_MEMORY_NONE)) {
        if (pd)
            dnnl_primitive_desc_destroy(pd);
        dnnl_primitive_destroy(e->prim);
        dnnl_memory_destroy(e->a);
        dnnl_memory_destroy(e->b);
        dnnl_memory_destroy(e->c);
        return NULL;
    }
    dnnl_primitive_desc_destroy(pd);
    st->n++;
    return e;
}

/* C (M,N) = A B + beta C in bf16 (row-major, op(A) (M,K), op(B) (K,N));
 * nonzero if it could not (the caller falls back to sgemm). */
static int gemm_bf16(int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda,
                     const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    bf16_state_t *st = bf16_state();
    float *out = C;
    size_t ldo = ldc;
    mm_t *e;

    if (!st || grow((void **)&st->abuf, &st->alen, M * K, 2) ||
        grow((void **)&st->bbuf, &st->blen, K * N, 2))
        return -1;
    if (beta != 0.0f) {
        if (grow((void **)&st->cbuf, &st->clen, M * N, sizeof(float)))
            return -1;
        out = st->cbuf;
        ldo = N;
    }
    if (!(e = matmul_for(st, (int)M, (int)N, (int)K, ta, tb, (int)ldo)))
        return -1;
    if (ta)
        to_bf16(st->abuf, A, K, M, lda);
    else
        to_bf16(st->abuf, A, M, K, lda);
    if (tb)
        to_bf16(st->bbuf, B, N, K, ldb);
    else
        to_bf16(st->bbuf, B, K, N, ldb);
    dnnl_memory_set_data_handle(e->a, st->abuf);
    dnnl_memory_set_data_handle(e->b, st->bbuf);
    dnnl_memory_set_data_handle(e->c, out);
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    sigset_t old;
    int rc;
    onednn_enter(&old);
    rc = dnnl_primitive_execute(e->prim, st->stream, 3, args) != dnnl_success ||
         dnnl_stream_wait(st->stream) != dnnl_success;
    onednn_leave(&old);
    if (rc)
        return -1;
    if (out != C)
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++)
                C[i * ldc + j] = beta * C[i * ldc + j] + out[i * N + j];
    return 0;
}

/* ---- fp32 products ------------------------------------------------------
 *
 * oneDNN's sgemm (the default) or OpenBLAS's. oneDNN picks its kernels
 * from the CPU's own flags (AVX-512 here, where OpenBLAS 0.3.21 needs a
 * re-exec with OPENBLAS_CORETYPE to leave its SSE3 ones), and at the
 * towers' shapes (batch 512, 64 to 1024 wide) ran 1.07-1.29x OpenBLAS's
 * SkylakeX kernels: it packs less around small products. A oneDNN error
 * falls back to OpenBLAS for that product.
 */
static int gemm_lib = DENSE_GEMM_ONEDNN;

static int sgemm_onednn(int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda,
                        const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    sigset_t old;
    dnnl_status_t st;

    onednn_enter(&old);
    st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', (dnnl_dim_t)M, (dnnl_dim_t)N, (dnnl_dim_t)K,
                    1.0f, A, (dnnl_dim_t)lda, B, (dnnl_dim_t)ldb, beta, C, (dnnl_dim_t)ldc);
    onednn_leave(&old);
    return st == dnnl_success ? 0 : -1;
}

/* C (M,N) = op(A) op(B) + beta C in fp32 on library lib. */
static void sgemm(int lib, int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    if (lib == DENSE_GEMM_ONEDNN &&
        sgemm_onednn(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static int timing_on;      /* dense_timing_set */
static uint64_t timing_ns; /* products' wall time, summed over threads */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* C (M,N) = op(A) op(B) + beta C, row-major: bf16 when asked and worth it,
 * else fp32 on the chosen library. */
static void gemm(int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda,
                 const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    int timed = __atomic_load_n(&timing_on, __ATOMIC_RELAXED);
    uint64_t t0 = timed ? now_ns() : 0;

    if (!(precision == DENSE_BF16 && M >= BF16_MIN && N >= BF16_MIN && K >= BF16_MIN &&
          gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc) == 0))
        sgemm(__atomic_load_n(&gemm_lib, __ATOMIC_RELAXED), ta, tb, M, N, K, A, lda, B, ldb, beta,
              C, ldc);
    if (timed)
        __atomic_fetch_add(&timing_ns, now_ns() - t0, __ATOMIC_RELAXED);
}

void dense_timing_set(int on)
{
    __atomic_store_n(&timing_on, on != 0, __ATOMIC_RELAXED);
}

double dense_timing_take(void)
{
    return (double)__atomic_exchange_n(&timing_ns, 0, __ATOMIC_RELAXED) * 1e-9;
}

void dense_gemm_set(int lib)
{
    __atomic_store_n(&gemm_lib,
                     lib == DENSE_GEMM_OPENBLAS ? DENSE_GEMM_OPENBLAS : DENSE_GEMM_ONEDNN,
                     __ATOMIC_RELAXED);
}

int dense_gemm_get(void)
{
    return __atomic_load_n(&gemm_lib, __ATOMIC_RELAXED);
}

int dense_gemm_parse(const char *name)
{
    return !strcmp(name, "onednn")     ? DENSE_GEMM_ONEDNN
           : !strcmp(name, "openblas") ? DENSE_GEMM_OPENBLAS
                                       : -1;
}

const char *dense_kernels(char *buf, size_t len)
{
    if (dense_gemm_get() == DENSE_GEMM_ONEDNN)
        snprintf(buf, len, "oneDNN sgemm (%s)", dense_onednn_isa());
    else
        snprintf(buf, len, "OpenBLAS %s", dense_blas_core());
    return buf;
}

const char *dense_gemm_name(int lib)
{
    return lib == DENSE_GEMM_OPENBLAS ? "openblas" : "onednn";
}

const char *dense_onednn_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "baseline";
    }
}

void dense_precision_set(int p)
{
    precision = p == DENSE_BF16 ? DENSE_BF16 : DENSE_FP32;
}

int dense_precision_get(void)
{
    return precision;
}

/* The elementwise passes around the products (bias and ReLU, the ReLU
 * mask and db's column sums) are built for AVX-512, AVX2 and the baseline
 * (picked at load time; -march stays x86-64-v2). They only add, compare
 * and select, each column's sum in row order, so every build gives the
 * same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define LANES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LANES
#endif

/* out (B,H, rows ldo apart) += b, then ReLU if asked: one pass. */
LANES
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
    gemm(0, 1, B, H, D, in, ldi, w, D, 0.0f, out, ldo);
    bias_act(out, ldo, b, B, H, act);
}

void dense_forward(float *out, const float *in, const float *w, const float *b, size_t B, size_t D,
                   size_t H, int act)
{
    dense_forward_ld(out, H, in, D, w, b, B, D, H, act);
}

/* db (H) = column sums of dout (B,H), after masking dout by out > 0 if ReLU. */
LANES
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
        gemm(1, 0, H, D, B, dout, lddo, in, ldi, 0.0f, dw, D);
    }
    /* din (B,D) = dout (B,H) W (H,D) */
    if (din)
        gemm(0, 0, B, D, H, dout, lddo, w, D, accum ? 1.0f : 0.0f, din, lddi);
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

static void relu_mask_ref(double *dout, size_t lddo, const double *out, size_t ldo, size_t B,
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
            relu_mask_ref(dout, lddo, out, ldo, B, H);
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
    __atomic_store_n(&gemm_threads, n < 1 ? 1 : n, __ATOMIC_RELAXED);
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

/* OpenBLAS falls back to its generic "Prescott" kernels (SSE3) on a CPU
 * model it does not know, even when the CPU has AVX2 or AVX-512: seen on
 * virtual machines that report a bare "Intel Xeon Processor", where it
 * costs training 3-4x. The core OpenBLAS would run best, from the CPU's
 * own feature flags, or NULL when its choice stands. */
static const char *blas_better_core(void)
{
    const char *core = openblas_get_corename();

    if (!core || strcasecmp(core, "Prescott") != 0)
        return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

void dense_blas_choose_core(char **argv)
{
    const char *better;

    if (getenv("OPENBLAS_CORETYPE") || getenv(DENSE_BLAS_FALLBACK_ENV))
        return;
    better = blas_better_core();
    if (!better)
        return;
    /* OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded: start the
     * program again with it set. Nothing has run yet but this check. */
    if (setenv("OPENBLAS_CORETYPE", better, 1) != 0 ||
        setenv(DENSE_BLAS_FALLBACK_ENV, openblas_get_corename(), 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): run on the generic kernels, as if never tried */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(DENSE_BLAS_FALLBACK_ENV);
}

const char *dense_blas_fallback(void)
{
    return getenv(DENSE_BLAS_FALLBACK_ENV);
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
    int rc = ERR_NOMEM, lib = dense_gemm_get();

    if (!a || !b || !c)
        goto out;
    for (size_t i = 0; i < M * K; i++)
        a[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < K * N; i++)
        b[i] = (float)(i % 7) * 0.02f;
    /* one untimed product warms caches and the library's threads */
    sgemm(lib, 0, 0, M, N, K, a, K, b, N, 0.0f, c, N);
    t0 = clock_now_s();
    c0 = cpu_now_s();
    do {
        sgemm(lib, 0, 0, M, N, K, a, K, b, N, 0.0f, c, N);
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
