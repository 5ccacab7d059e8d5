/*
 * bench_train.c - training throughput of the default model (batch 512,
 * 8 slots x 16 dims, towers 256-128-64) in process, beside the machine's
 * sgemm-bound limit for the same model, measured in the same run.
 *
 * The batches are synthetic (like bench/torch_model.py's throughput mode:
 * one token per slot, 0-3 weighted tokens in the last slot, 100k values per
 * slot, Zipf-free uniform ids) and built before timing, so the number is the
 * training step itself: unique keys, pull, pooling, towers forward and
 * backward, row and dense updates. Prints one line per configuration:
 *   train esm2 threads=2 par=towers: 91234 samples/s (xx% of sgemm bound)
 * and, for the bottoms of issue 15 (default sizes: 4 experts 128-64; ple 2
 * levels of 1 expert per task + 2 shared):
 *   train esm2+mmoe threads=2 par=towers: ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/clock.h"
#include "common/model_conf.h"
#include "common/rng.h"
#include "model/dense.h"
#include "model/model.h"
#include "worker/param_local.h"
#include "worker/pool.h"
#include "worker/worker_conf.h"

#define NBATCH 64 /* distinct batches, cycled */
#define WARMUP 20
#define TIMED 300

static void make_batches(batch_t *b, int nslots, size_t B)
{
    uint64_t s = 42;
    for (int i = 0; i < NBATCH; i++) {
        batch_init(&b[i], nslots, B);
        for (size_t r = 0; r < B; r++) {
            uint64_t x = rng_splitmix64(&s);
            batch_row_begin(&b[i], (x & 15) == 0, (x & 127) == 0, (x & 511) == 0);
            for (int k = 0; k < nslots - 1; k++)
                batch_row_add(&b[i], k, (uint64_t)k << 40 | (rng_splitmix64(&s) % 100000), 1.0f);
            int nt = (int)(rng_splitmix64(&s) % 4);
            for (int t = 0; t < nt; t++)
                batch_row_add(&b[i], nslots - 1, (rng_splitmix64(&s) % 100000), 0.5f);
            batch_row_end(&b[i]);
        }
    }
}

/*
 * The sgemm bound of one training step, in samples/s, on `threads`
 * OpenBLAS threads: the time OpenBLAS takes for the towers' own products
 * at batch B (per layer D -> H: forward (B,D)x(D,H), weight gradient
 * (H,B)x(B,D), input gradient (B,H)x(H,D)), each shape timed on its own,
 * times the towers. Only the concat bottom's towers read input_dim
 * columns; other bottoms get 0 (the caller falls back to FLOPs / rate).
 */
static double shape_bound(const model_spec_t *ms, int ntowers, size_t B, int threads)
{
    double sec = 0;
    size_t in = (size_t)ms->input_dim;

    if (ms->bottom != MODEL_BOTTOM_CONCAT)
        return 0;
    dense_threads_set(threads);
    for (int l = 0; l <= ms->nlayers; l++) {
        size_t out = l < ms->nlayers ? (size_t)ms->layer[l] : 1;
        const size_t shp[3][3] = {{B, out, in}, {out, in, B}, {B, in, out}};
        for (int k = 0; k < 3; k++) {
            double g = dense_sgemm_gflops(shp[k][0], shp[k][1], shp[k][2], 0.05);
            if (g > 0)
                sec += 2.0 * (double)(shp[k][0] * shp[k][1] * shp[k][2]) / (g * 1e9);
        }
        in = out;
    }
    return sec > 0 ? (double)B / (sec * ntowers) : 0;
}

static int run(const char *type, const char *bottom, int threads, int par, double gflops2,
               double gflops1)
{
    worker_conf_t wc;
    model_spec_t ms;
    errbuf_t eb = {{0}};
    char dir[512], rows[600];
    batch_t b[NBATCH];
    pool_t pool;
    param_t *p = NULL;
    model_t *m;
    size_t n, B = 512;
    double loss[3];

    conf_defaults(&worker_conf_schema, &wc, &eb);
    conf_set(&worker_conf_schema, &wc, "model_type", type, "bench", &eb);
    if (strcmp(type, "esm2") != 0)
        conf_set(&worker_conf_schema, &wc, "loss_weights", "1,1", "bench", &eb);
    conf_set(&worker_conf_schema, &wc, "bottom", bottom, "bench", &eb);
    if (model_spec_from_conf(&ms, &wc.model, &eb) != 0) {
        fprintf(stderr, "bench-train: %s\n", eb.msg);
        return 1;
    }
    /* the bound n threads can reach: n x the 1-thread rate of the same
     * shapes, or the measured n-thread rate when that is higher */
    int ntow = heads_ntowers(heads_for(ms.type));
    double sb1 = shape_bound(&ms, ntow, B, 1), sbn = 0;
    if (threads > 1)
        sbn = shape_bound(&ms, ntow, B, threads);
    m = model_new(&ms, B, 1, &eb);
    if (!m || model_threads_set(m, threads, par, &eb) != 0) {
        fprintf(stderr, "bench-train: %s\n", eb.msg);
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s/funnel-bench-train-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("bench-train: mkdtemp");
        return 1;
    }
    snprintf(rows, sizeof(rows), "%s/rows", dir);
    if (param_local_open(&p, m, rows, 0, 0, &eb) != 0) {
        fprintf(stderr, "bench-train: %s\n", eb.msg);
        return 1;
    }
    make_batches(b, ms.nslots, B);
    pool_init(&pool, &ms);
    float *x = malloc(B * (size_t)ms.input_dim * sizeof(float));
    float *dx = malloc(B * (size_t)ms.input_dim * sizeof(float));
    double t0 = 0;
    for (int it = 0; it < WARMUP + TIMED; it++) {
        batch_t *bb = &b[it % NBATCH];
        if (it == WARMUP)
            t0 = clock_now_s();
        pool_prepare(&pool, bb);
        param_pull_start(p, &pool.req, PARAM_PULL_TRAIN, &eb);
        param_pull_finish(p, pool.rows, &eb);
        param_pull_dense(p, model_params(m, &n), n, &eb);
        pool_forward(&pool, bb, x);
        model_train_step(m, x, bb->click, bb->action, bb->buy, NULL, bb->n, dx, loss);
        pool_backward(&pool, bb, dx);
        param_push(p, &pool.req, (const float *const *)pool.grads, &eb);
        param_push_dense(p, model_grads(m, &n), n, &eb);
    }
    double el = clock_now_s() - t0;
    double sps = (double)TIMED * (double)B / el;
    double fps = model_flops_per_sample(m);
    /* FLOPs over the 512x256x128 rate where the shapes are not timed */
    double bound = threads * sb1 > sbn ? threads * sb1 : sbn;
    const char *how = "shapes";
    if (bound <= 0) {
        double r = threads > 1 && gflops2 > threads * gflops1 ? gflops2 : threads * gflops1;
        bound = r * 1e9 / fps;
        how = "flops";
    }
    printf("train %s%s%s threads=%d par=%s: %.0f samples/s (%.0f%% of the sgemm-bound %.0f "
           "samples/s [%s]; %.2f MFLOP/sample)\n",
           type, strcmp(bottom, "concat") ? "+" : "", strcmp(bottom, "concat") ? bottom : "",
           threads, par == MODEL_PAR_TOWERS ? "towers" : "blas", sps, 100.0 * sps / bound, bound,
           how, fps / 1e6);
    fflush(stdout);
    free(x);
    free(dx);
    pool_release(&pool);
    for (int i = 0; i < NBATCH; i++)
        batch_release(&b[i]);
    param_destroy(&p);
    model_destroy(&m);
    snprintf(rows, sizeof(rows), "rm -rf '%s'", dir);
    if (system(rows) != 0)
        fprintf(stderr, "bench-train: could not remove %s\n", dir);
    return 0;
}

static void usage(void)
{
    printf("usage: bench-train [TYPE:BOTTOM:THREADS:PAR ...]\n"
           "  with no argument: every configuration of make bench; else only those named,\n"
           "  e.g. esm2:concat:2:towers (TYPE esm2|esmm|naive, BOTTOM concat|shared|mmoe|omoe|ple,\n"
           "  PAR towers|blas). OPENBLAS_CORETYPE picks OpenBLAS's kernel (e.g. SkylakeX, Haswell).\n");
}

int main(int argc, char **argv)
{
    double g1, g2;
    static const struct {
        const char *type, *bottom;
        int threads, par;
    } all[] = {
        {"esm2", "concat", 1, MODEL_PAR_TOWERS}, {"esm2", "concat", 2, MODEL_PAR_BLAS},
        {"esm2", "concat", 2, MODEL_PAR_TOWERS}, {"esmm", "concat", 2, MODEL_PAR_TOWERS},
        {"esm2", "mmoe", 2, MODEL_PAR_BLAS},     {"esm2", "mmoe", 2, MODEL_PAR_TOWERS},
        {"esm2", "ple", 2, MODEL_PAR_BLAS},      {"esm2", "ple", 2, MODEL_PAR_TOWERS},
    };

    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        }
    dense_threads_set(1);
    g1 = dense_sgemm_gflops(512, 256, 128, 1.0);
    dense_threads_set(2);
    g2 = dense_sgemm_gflops(512, 256, 128, 1.0);
    printf("blas: OpenBLAS core %s (OPENBLAS_CORETYPE=%s), %d threads at most\n", dense_blas_core(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset (detected)",
           dense_blas_max_threads());
    printf("sgemm 512x256x128: %.1f GFLOP/s on 1 thread, %.1f on 2\n", g1, g2);
    printf("bound: n threads reach at most n x the 1-thread sgemm rate of the model's own shapes "
           "(or the measured n-thread rate if higher) [shapes]; bottoms other than concat: their "
           "FLOPs over the 512x256x128 rate, same rule [flops]\n");
    if (argc < 2) {
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            run(all[i].type, all[i].bottom, all[i].threads, all[i].par, g2, g1);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        char type[32], bottom[32], par[32];
        int threads;
        if (sscanf(argv[i], "%31[^:]:%31[^:]:%d:%31s", type, bottom, &threads, par) != 4 ||
            (strcmp(par, "towers") && strcmp(par, "blas")) || threads < 1 || threads > 64) {
            fprintf(stderr, "bench-train: bad configuration '%s'\n", argv[i]);
            usage();
            return 2;
        }
        if (run(type, bottom, threads, strcmp(par, "towers") ? MODEL_PAR_BLAS : MODEL_PAR_TOWERS,
                g2, g1))
            return 1;
    }
    return 0;
}
