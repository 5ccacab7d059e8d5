/*
 * test_dense.c - the layer on each library (oneDNN, OpenBLAS) against the
 * plain-loop double reference on random shapes (B = 1, odd sizes, ReLU and
 * linear, accumulate or not), the reference itself against a product worked
 * out by hand, and signals delivered while oneDNN's kernels run.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "model/dense.h"

static uint64_t rng_state;

static double urand(void) /* [-1, 1) */
{
    rng_state = rng_state * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (double)(rng_state >> 11) * 0x1.0p-52 - 1.0;
}

static void fill(float *f, double *d, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)(urand() * scale);
        d[i] = f[i];
    }
}

/* Largest |a - b| / (1 + |b|) over n values. */
static double max_err(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (1.0 + fabs(b[i]));
        if (!(e <= m))
            m = e;
    }
    return m;
}

static void test_reference_by_hand(void)
{
    /* in (2,3), W (2,3), b (2) */
    double in[6] = {1, 2, 3, -1, 0, 1};
    double w[6] = {1, 0, -1, 0.5, 0.5, 0.5};
    double b[2] = {0.5, -4};
    double out[4], dout[4], din[6], dw[6], db[2];

    /* row 0: 1-3+0.5 = -1.5, 0.5+1+1.5-4 = -1;  row 1: -1-1+0.5 = -1.5, -0.5+0.5-4 = -4 */
    dense_forward_ref(out, in, w, b, 2, 3, 2, DENSE_LINEAR);
    CU_ASSERT_EQUAL(out[0], -1.5);
    CU_ASSERT_EQUAL(out[1], -1.0);
    CU_ASSERT_EQUAL(out[2], -1.5);
    CU_ASSERT_EQUAL(out[3], -4.0);
    w[0] = 3; /* row 0, unit 0: 3-3+0.5 = 0.5 > 0; everything else stays <= 0 */
    dense_forward_ref(out, in, w, b, 2, 3, 2, DENSE_RELU);
    CU_ASSERT_EQUAL(out[0], 0.5);
    CU_ASSERT_EQUAL(out[1], 0.0);
    CU_ASSERT_EQUAL(out[2], 0.0);
    CU_ASSERT_EQUAL(out[3], 0.0);
    /* only (0,0) passes the mask: dw row 0 = 2 * in row 0, din row 0 = 2 * W row 0 */
    for (int i = 0; i < 4; i++)
        dout[i] = 2.0;
    for (int i = 0; i < 6; i++)
        din[i] = 1.0;
    dense_backward_ref(din, dw, db, dout, in, w, out, 2, 3, 2, DENSE_RELU, 1);
    CU_ASSERT_EQUAL(db[0], 2.0);
    CU_ASSERT_EQUAL(db[1], 0.0);
    CU_ASSERT_EQUAL(dw[0], 2.0);
    CU_ASSERT_EQUAL(dw[1], 4.0);
    CU_ASSERT_EQUAL(dw[2], 6.0);
    CU_ASSERT_EQUAL(dw[3], 0.0);
    CU_ASSERT_EQUAL(din[0], 1.0 + 6.0);
    CU_ASSERT_EQUAL(din[1], 1.0);
    CU_ASSERT_EQUAL(din[2], 1.0 - 2.0);
    CU_ASSERT_EQUAL(din[3], 1.0);
    CU_ASSERT_EQUAL(dout[1], 0.0);
}

/* One random case: forward and backward, float BLAS vs double loops. */
static void check_shape(size_t B, size_t D, size_t H, int act, int accum, int with_din)
{
    float *in = malloc(B * D * sizeof(float)), *w = malloc(H * D * sizeof(float));
    float *b = malloc(H * sizeof(float)), *out = malloc(B * H * sizeof(float));
    float *dout = malloc(B * H * sizeof(float)), *din = malloc(B * D * sizeof(float));
    float *dw = malloc(H * D * sizeof(float)), *db = malloc(H * sizeof(float));
    double *ind = malloc(B * D * sizeof(double)), *wd = malloc(H * D * sizeof(double));
    double *bd = malloc(H * sizeof(double)), *outd = malloc(B * H * sizeof(double));
    double *doutd = malloc(B * H * sizeof(double)), *dind = malloc(B * D * sizeof(double));
    double *dwd = malloc(H * D * sizeof(double)), *dbd = malloc(H * sizeof(double));

    fill(in, ind, B * D, 1.0);
    fill(w, wd, H * D, 1.0 / sqrt((double)D));
    fill(b, bd, H, 0.5);
    dense_forward(out, in, w, b, B, D, H, act);
    dense_forward_ref(outd, ind, wd, bd, B, D, H, act);
    CU_ASSERT(max_err(out, outd, B * H) < 1e-5);
    if (act == DENSE_RELU) {
        size_t zeros = 0;
        for (size_t i = 0; i < B * H; i++) {
            CU_ASSERT(out[i] >= 0.0f);
            zeros += out[i] == 0.0f;
        }
        CU_ASSERT(B * H < 8 || (zeros > 0 && zeros < B * H)); /* the mask is exercised */
    }

    /* backward from the same out, so both sides use the same ReLU mask */
    for (size_t i = 0; i < B * H; i++)
        outd[i] = out[i];
    fill(dout, doutd, B * H, 1.0);
    fill(din, dind, B * D, 1.0);
    memset(dw, 0x7f, H * D * sizeof(float)); /* garbage: must be overwritten */
    memset(db, 0x7f, H * sizeof(float));
    dense_backward(with_din ? din : NULL, dw, db, dout, in, w, out, B, D, H, act, accum);
    dense_backward_ref(with_din ? dind : NULL, dwd, dbd, doutd, ind, wd, outd, B, D, H, act, accum);
    CU_ASSERT(max_err(dout, doutd, B * H) == 0.0); /* the mask is exact */
    CU_ASSERT(max_err(db, dbd, H) < 1e-5);
    CU_ASSERT(max_err(dw, dwd, H * D) < 1e-5);
    CU_ASSERT(max_err(din, dind, B * D) < 1e-5);

    free(in);
    free(w);
    free(b);
    free(out);
    free(dout);
    free(din);
    free(dw);
    free(db);
    free(ind);
    free(wd);
    free(bd);
    free(outd);
    free(doutd);
    free(dind);
    free(dwd);
    free(dbd);
}

/* Every shape on one library of the fp32 products (dense_gemm_set). */
static void blas_vs_reference(int lib)
{
    static const size_t fixed[][3] = {
        {1, 1, 1},    {1, 7, 3},    {1, 128, 256}, {2, 3, 1},     {5, 1, 9},
        {17, 33, 65}, {64, 128, 1}, {31, 257, 63}, {128, 64, 64},
    };
    int before = dense_gemm_get();

    dense_gemm_set(lib);
    CU_ASSERT_EQUAL(dense_gemm_get(), lib);
    rng_state = 42;
    for (size_t c = 0; c < sizeof(fixed) / sizeof(fixed[0]); c++)
        for (int act = 0; act < 2; act++) {
            check_shape(fixed[c][0], fixed[c][1], fixed[c][2], act, 0, 1);
            check_shape(fixed[c][0], fixed[c][1], fixed[c][2], act, 1, 1);
        }
    for (int r = 0; r < 40; r++) {
        size_t B = 1 + (size_t)((urand() + 1) * 40);
        size_t D = 1 + (size_t)((urand() + 1) * 70);
        size_t H = 1 + (size_t)((urand() + 1) * 70);
        check_shape(B, D, H, r & 1, (r >> 1) & 1, r % 5 != 0);
    }
    dense_gemm_set(before);
}

static void test_onednn_vs_reference(void)
{
    blas_vs_reference(DENSE_GEMM_ONEDNN);
    CU_ASSERT_STRING_EQUAL(dense_gemm_name(DENSE_GEMM_ONEDNN), "onednn");
    CU_ASSERT_PTR_NOT_NULL(dense_onednn_isa());
}

static void test_openblas_vs_reference(void)
{
    blas_vs_reference(DENSE_GEMM_OPENBLAS);
    CU_ASSERT_STRING_EQUAL(dense_gemm_name(DENSE_GEMM_OPENBLAS), "openblas");
    /* names both ways, and the log's description of what runs */
    CU_ASSERT_EQUAL(dense_gemm_parse("onednn"), DENSE_GEMM_ONEDNN);
    CU_ASSERT_EQUAL(dense_gemm_parse("openblas"), DENSE_GEMM_OPENBLAS);
    CU_ASSERT_EQUAL(dense_gemm_parse("mkl"), -1);
    char k[96];
    int lib0 = dense_gemm_get();
    dense_gemm_set(DENSE_GEMM_OPENBLAS);
    CU_ASSERT_EQUAL(strncmp(dense_kernels(k, sizeof(k)), "OpenBLAS ", 9), 0);
    dense_gemm_set(DENSE_GEMM_ONEDNN);
    CU_ASSERT_EQUAL(strncmp(dense_kernels(k, sizeof(k)), "oneDNN sgemm (", 14), 0);
    dense_gemm_set(lib0);
}

/* 1 and 2 threads on each library: oneDNN's libgomp count follows
 * dense_threads_set on the calling thread's next product. */
static void test_threads(void)
{
    int before = dense_threads_get(), lib0 = dense_gemm_get();

    for (int lib = 0; lib < 2; lib++) {
        dense_gemm_set(lib);
        dense_threads_set(1);
        CU_ASSERT_EQUAL(dense_threads_get(), 1);
        rng_state = 7;
        check_shape(96, 80, 72, DENSE_RELU, 1, 1);
        dense_threads_set(2);
        CU_ASSERT(dense_threads_get() >= 1);
        check_shape(300, 80, 72, DENSE_RELU, 1, 1);
        dense_threads_set(1);
        check_shape(300, 80, 72, DENSE_RELU, 0, 1);
        CU_ASSERT(dense_sgemm_gflops(16, 16, 16, 0.001) > 0.0);
    }
    dense_threads_set(before);
    dense_gemm_set(lib0);
}

/*
 * oneDNN's JIT gemm kernels run with the stack pointer in the heap; a
 * signal handled on their thread then wrote its frame there and a training
 * worker stopped by SIGTERM aborted with a corrupted heap in 3 of 20 runs.
 * Here one thread runs products (and mallocs) while the other sends it
 * 3000 signals, one every ~20 us: the signals are handled, and the heap
 * stays whole (a corrupted heap aborts the test program). Without the
 * products' signal mask this aborted 3 times in 3.
 */
static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
    (void)sig;
    handled++;
}

typedef struct {
    volatile int stop;
    int products;
} sigrun_t;

/* A 256 x 128 -> 256 layer's buffers (zeros), for the threads below that
 * run products; NULL if they cannot be had. */
enum { LB = 256, LD = 128, LH = 256 };
typedef struct {
    float *in, *w, *b, *out;
} layer_bufs_t;

static layer_bufs_t *layer_bufs_new(layer_bufs_t *l)
{
    l->in = calloc(LB * LD, sizeof(float));
    l->w = calloc(LH * LD, sizeof(float));
    l->b = calloc(LH, sizeof(float));
    l->out = calloc(LB * LH, sizeof(float));
    return l->in && l->w && l->b && l->out ? l : NULL;
}

static void layer_bufs_free(layer_bufs_t *l)
{
    free(l->out);
    free(l->b);
    free(l->w);
    free(l->in);
}

static void layer_forward(const layer_bufs_t *l)
{
    dense_forward(l->out, l->in, l->w, l->b, LB, LD, LH, DENSE_RELU);
}

static void *products(void *arg)
{
    sigrun_t *r = arg;
    layer_bufs_t l;

    if (layer_bufs_new(&l))
        for (int i = 0; !r->stop; i++) {
            void *churn = malloc(100 + (size_t)(i % 7) * 4096);
            layer_forward(&l);
            free(churn);
            r->products++;
        }
    layer_bufs_free(&l);
    return NULL;
}

static void test_signals_during_products(void)
{
    struct sigaction sa, old;
    sigrun_t r = {0, 0};
    pthread_t th;
    int lib0 = dense_gemm_get(), sent = 0;
    double t0;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    CU_ASSERT_EQUAL_FATAL(sigaction(SIGUSR1, &sa, &old), 0);
    dense_gemm_set(DENSE_GEMM_ONEDNN);
    dense_threads_set(1);
    handled = 0;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, products, &r), 0);
    t0 = clock_now_s();
    /* 3000 signals, bounded by 60 s (a quarter of a second here) */
    while (sent < 3000 && clock_now_s() - t0 < 60) {
        struct timespec ts = {0, 20000};
        if (pthread_kill(th, SIGUSR1) == 0)
            sent++;
        nanosleep(&ts, NULL);
    }
    r.stop = 1;
    pthread_join(th, NULL);
    CU_ASSERT(r.products > 0);
    CU_ASSERT_EQUAL(sent, 3000);
    /* every signal sent before the join was handled (a held one on release) */
    CU_ASSERT(handled > 0 && handled <= sent);
    sigaction(SIGUSR1, &old, NULL);
    dense_gemm_set(lib0);
}

/* Product time: nothing counted while off; on, the caller's products and
 * another thread's count in the same sum, never more than the time taken
 * around them; rate measurements never count; take restarts the sum. */
typedef struct {
    double took;
} timed_t;

static void *timed_products(void *arg)
{
    timed_t *t = arg;
    layer_bufs_t l;
    double t0 = clock_now_s();

    if (layer_bufs_new(&l))
        for (int i = 0; i < 20; i++)
            layer_forward(&l);
    t->took = clock_now_s() - t0;
    layer_bufs_free(&l);
    return NULL;
}

static void test_product_timing(void)
{
    timed_t mine = {0}, theirs = {0};
    pthread_t th;

    dense_timing_set(0);
    dense_timing_take();
    timed_products(&mine);
    CU_ASSERT_EQUAL(dense_timing_take(), 0.0);
    dense_timing_set(1);
    CU_ASSERT(dense_sgemm_gflops(64, 64, 64, 0.001) > 0.0);
    CU_ASSERT_EQUAL(dense_timing_take(), 0.0); /* the rate does not count */
    timed_products(&mine);
    double alone = dense_timing_take();
    CU_ASSERT(alone > 0.0 && alone <= mine.took);
    /* another thread's products alone: counted in the same sum */
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, timed_products, &theirs), 0);
    pthread_join(th, NULL);
    double other = dense_timing_take();
    CU_ASSERT(other > 0.0 && other <= theirs.took);
    CU_ASSERT_EQUAL(dense_timing_take(), 0.0);
    dense_timing_set(0);
}

int test_dense_register(void)
{
    CU_pSuite s = CU_add_suite("dense", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "double reference against a hand computation", test_reference_by_hand);
    CU_add_test(s, "oneDNN layer against the reference on random shapes", test_onednn_vs_reference);
    CU_add_test(s, "OpenBLAS layer against the reference on random shapes",
                test_openblas_vs_reference);
    CU_add_test(s, "thread count and product rate, both libraries", test_threads);
    CU_add_test(s, "product time sums every thread's products, and only while on",
                test_product_timing);
    CU_add_test(s, "signals while oneDNN's kernels run leave the heap whole",
                test_signals_during_products);
    return CU_get_error();
}
