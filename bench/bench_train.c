/*
 * bench_train.c - training throughput of the default model (batch 512,
 * 8 slots x 16 dims, towers 256-128-64) in process, beside the machine's
 * sgemm-bound limit for the same model, measured in the same run.
 *
 * The batches are synthetic (like bench/torch_model.py's throughput mode:
 * one token per slot, 0-3 weighted tokens in the last slot, 100k values per
 * slot, Zipf-free uniform ids) and built before timing, so the number is the
 * training step itself: unique keys, pull, pooling, towers forward and
 * backward, row and dense updates. Prints one line per configuration
 * (`bench-train TYPE:BOTTOM:THREADS:PAR` runs only those named):
 *   train esm2 threads=2 par=towers: 91234 samples/s median; min/median/max ...
 * and, for the bottoms of issue 15 (default sizes: 4 experts 128-64; ple 2
 * levels of 1 expert per task + 2 shared):
 *   train esm2+mmoe threads=2 par=towers: ...
 * Under each, where the median round's batch went: the products inside the
 * step (dense_timing_take) beside the same products alone (the bound's
 * time), the rest of the step, pull and pooling, push, the dense update:
 *   where a batch goes (ms, the median round): 8.47 = products 7.04 (alone: 7.78) + ...
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
#define TIMED 200     /* steps per round */
#define CHUNK 10      /* steps between two measurements of the bound */
#define ROUNDS 3      /* rounds of TIMED steps, the bound interleaved */
#define SHAPE_S 0.004 /* seconds per shape in one measurement of the bound */

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
 * times the towers. *cpu (if not NULL) gets the same by the thread's CPU
 * time. Only the concat bottom's towers read input_dim columns; other
 * bottoms get 0 (the caller falls back to FLOPs / rate).
 */
static double shape_bound(const model_spec_t *ms, int ntowers, size_t B, int threads, double *cpu)
{
    double sec = 0, csec = 0;
    size_t in = (size_t)ms->input_dim;

    if (cpu)
        *cpu = 0;
    if (ms->bottom != MODEL_BOTTOM_CONCAT)
        return 0;
    dense_threads_set(threads);
    for (int l = 0; l <= ms->nlayers; l++) {
        size_t out = l < ms->nlayers ? (size_t)ms->layer[l] : 1;
        const size_t shp[3][3] = {{B, out, in}, {out, in, B}, {B, in, out}};
        for (int k = 0; k < 3; k++) {
            double g = 0, gc = 0, f = 2.0 * (double)(shp[k][0] * shp[k][1] * shp[k][2]);
            if (dense_sgemm_rate(shp[k][0], shp[k][1], shp[k][2], SHAPE_S, &g, &gc) == 0 && g > 0) {
                sec += f / (g * 1e9);
                csec += gc > 0 ? f / (gc * 1e9) : 0;
            }
        }
        in = out;
    }
    if (cpu && csec > 0)
        *cpu = (double)B / (csec * ntowers);
    return sec > 0 ? (double)B / (sec * ntowers) : 0;
}

static double process_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* v[0..n) sorted in place; prints "min / median / max" with fmt. */
static void print_mmm(double *v, int n, const char *fmt)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    printf(fmt, v[0]);
    printf(" / ");
    printf(fmt, v[n / 2]);
    printf(" / ");
    printf(fmt, v[n - 1]);
}

/* Where a batch's time goes, in ms per batch (PH_PRODUCTS: the products'
 * wall time; with a team, summed over its members and divided by them;
 * PH_ALONE: the same products alone, the bound's time). */
enum { PH_PULL, PH_STEP, PH_PUSH, PH_DENSE, PH_PRODUCTS, PH_ALONE, PH_BATCH, NPHASE };

/* The breakdown of the round with the median samples/s: the products
 * inside the step against the same products alone (the bound), what else
 * the step does (elementwise passes, losses, a team's waiting), and the
 * work around it. */
static void print_phases(double ph[ROUNDS][NPHASE], const double *sps, int members, const char *how)
{
    int r = 0;

    for (int i = 0; i < ROUNDS; i++) {
        int below = 0, above = 0;
        for (int j = 0; j < ROUNDS; j++) {
            below += sps[j] < sps[i];
            above += sps[j] > sps[i];
        }
        if (below <= ROUNDS / 2 && above <= ROUNDS / 2)
            r = i;
    }
    printf("  where a batch goes (ms, the median round%s): %.2f = products %.2f (alone%s: %.2f) "
           "+ rest of the step %.2f + pull and pooling %.2f + push %.2f + dense update %.2f\n",
           members > 1 ? "; products per thread" : "", ph[r][PH_BATCH], ph[r][PH_PRODUCTS],
           strcmp(how, "shapes") ? ", by FLOPs" : "", ph[r][PH_ALONE],
           ph[r][PH_STEP] - ph[r][PH_PRODUCTS], ph[r][PH_PULL], ph[r][PH_PUSH], ph[r][PH_DENSE]);
}

/* The bound's time for one batch on `threads` threads (1-thread rates
 * over the threads), by wall time and (*cpu) by the measuring thread's CPU
 * time: the model's shapes, or its FLOPs at the 512x256x128 rate for
 * bottoms other than concat (*how says which). */
static double bound_batch_s(const model_spec_t *ms, int ntow, size_t B, int threads, double fps,
                            double *cpu, const char **how)
{
    double b1c = 0, b1 = shape_bound(ms, ntow, B, 1, &b1c);

    *how = "shapes";
    if (b1 <= 0) {
        double g = 0, gc = 0;
        dense_threads_set(1);
        dense_sgemm_rate(512, 256, 128, 12 * SHAPE_S, &g, &gc);
        b1 = g * 1e9 / fps;
        b1c = gc * 1e9 / fps;
        *how = "flops";
    }
    *cpu = b1c > 0 ? (double)B / (threads * b1c) : 0;
    return b1 > 0 ? (double)B / (threads * b1) : 0;
}

/* One thread's 512x256x128 rate (1 product thread), for pair(). */
static void *rate_thread(void *arg)
{
    dense_sgemm_rate(512, 256, 128, 0.5, (double *)arg, NULL);
    return NULL;
}

/*
 * What the machine gives two threads at once: one thread's 512x256x128
 * rate alone, then two threads each running their own product at the same
 * time, PAIRS times. Prints, min / median / max over the tries, both
 * together against 2 x the one alone (what the 2-thread bound assumes),
 * and the slower of the two against one alone (what a static split of
 * the work runs at). On a virtual machine the two cores are not always
 * equally fast.
 */
#define PAIRS 3
static void pair(void)
{
    double both[PAIRS], slow[PAIRS];

    dense_threads_set(1);
    for (int i = 0; i < PAIRS; i++) {
        double one = 0, g[2] = {0, 0};
        pthread_t th[2];
        rate_thread(&one);
        for (int k = 0; k < 2; k++)
            if (pthread_create(&th[k], NULL, rate_thread, &g[k]) != 0)
                return;
        for (int k = 0; k < 2; k++)
            pthread_join(th[k], NULL);
        both[i] = one > 0 ? (g[0] + g[1]) / (2 * one) : 0;
        slow[i] = one > 0 ? (g[0] < g[1] ? g[0] : g[1]) / one : 0;
    }
    printf("two threads at once, each its own 512x256x128 product, %d tries: together ", PAIRS);
    print_mmm(both, PAIRS, "%.2f");
    printf(" of 2 x one alone; the slower one ");
    print_mmm(slow, PAIRS, "%.2f");
    printf(" of one alone\n");
}

/*
 * One configuration, ROUNDS rounds of TIMED training steps, with the bound
 * (1 thread, the model's shapes, or the 512x256x128 rate for bottoms)
 * measured again every CHUNK steps: a round's ratio is its mean bound time
 * a batch over its mean training time a batch, both taken through the
 * same seconds, so a machine that slows down or speeds up moves both
 * sides of it together (measured once before each round, the bound alone
 * moved from 55 k to 90 k samples/s between rounds). Prints the median
 * samples/s first (what scripts/bench.sh reads), then min / median / max
 * of samples/s and of the ratio to the bound, by wall time and by CPU
 * time.
 */
static int run(const char *type, const char *bottom, int threads, int par, int prec, int lib)
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
    double loss[3], sps[ROUNDS], ratio[ROUNDS], cratio[ROUNDS], bnd[ROUNDS];
    double phase_ms[ROUNDS][NPHASE];
    const char *how = "shapes";

    conf_defaults(&worker_conf_schema, &wc, &eb);
    conf_set(&worker_conf_schema, &wc, "model_type", type, "bench", &eb);
    if (strcmp(type, "esm2") != 0)
        conf_set(&worker_conf_schema, &wc, "loss_weights", "1,1", "bench", &eb);
    conf_set(&worker_conf_schema, &wc, "bottom", bottom, "bench", &eb);
    if (model_spec_from_conf(&ms, &wc.model, &eb) != 0) {
        fprintf(stderr, "bench-train: %s\n", eb.msg);
        return 1;
    }
    int ntow = heads_ntowers(heads_for(ms.type));
    m = model_new(&ms, B, 1, &eb);
    if (!m || model_threads_set(m, threads, par, &eb) != 0) {
        fprintf(stderr, "bench-train: %s\n", eb.msg);
        return 1;
    }
    model_precision_set(m, prec);
    dense_gemm_set(lib); /* the products and the bound's, both */
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
    double fps = model_flops_per_sample(m);
    int it = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double el = 0, cpu = 0, bt = 0, bc = 0, ph[NPHASE] = {0};
        int warm = round ? 0 : WARMUP;
        dense_timing_take();
        for (int k = 0; k < warm + TIMED; k++, it++) {
            batch_t *bb = &b[it % NBATCH];
            if (k >= warm && (k - warm) % CHUNK == 0) {
                /* the bound for the next CHUNK steps: 1-thread rates (wall
                 * and CPU), times the threads; then model_threads_set's
                 * thread count again */
                double c = 0;
                bt += CHUNK * bound_batch_s(&ms, ntow, B, threads, fps, &c, &how);
                bc += CHUNK * c;
                dense_threads_set(par == MODEL_PAR_TOWERS ? 1 : threads);
                if (k == warm) {
                    memset(ph, 0, sizeof(ph));
                    dense_timing_take();
                }
            }
            double q0 = clock_now_s(), c0 = process_cpu_s();
            pool_prepare(&pool, bb);
            param_pull_start(p, &pool.req, PARAM_PULL_TRAIN, &eb);
            param_pull_finish(p, pool.rows, &eb);
            param_pull_dense(p, model_params(m, &n), n, &eb);
            pool_forward(&pool, bb, x);
            double q1 = clock_now_s();
            model_train_step(m, x, bb->click, bb->action, bb->buy, NULL, bb->n, dx, loss);
            double q2 = clock_now_s();
            pool_backward(&pool, bb, dx);
            param_push(p, &pool.req, (const float *const *)pool.grads, &eb);
            double q3 = clock_now_s();
            param_push_dense(p, model_grads(m, &n), n, &eb);
            double q4 = clock_now_s();
            ph[PH_PULL] += q1 - q0;
            ph[PH_STEP] += q2 - q1;
            ph[PH_PUSH] += q3 - q2;
            ph[PH_DENSE] += q4 - q3;
            if (k >= warm) {
                el += q4 - q0;
                cpu += process_cpu_s() - c0;
            }
        }
        /* towers: each member times its own products, so the sum is over
         * the threads; blas: the caller times each product, threads and all */
        ph[PH_PRODUCTS] = dense_timing_take() / (par == MODEL_PAR_TOWERS ? threads : 1);
        ph[PH_ALONE] = bt;
        for (int k = 0; k < NPHASE; k++)
            phase_ms[round][k] = ph[k] / TIMED * 1e3;
        phase_ms[round][PH_BATCH] = el / TIMED * 1e3;
        sps[round] = (double)TIMED * (double)B / el;
        bnd[round] = (double)TIMED * (double)B / bt;
        ratio[round] = 100.0 * bt / el;
        cratio[round] = bc > 0 ? 100.0 * bc / (cpu / threads) : 0;
    }
    double med[ROUNDS];
    memcpy(med, sps, sizeof(med));
    qsort(med, ROUNDS, sizeof(double), cmp_double);
    printf(
        "train %s%s%s threads=%d par=%s%s%s: %.0f samples/s median; min/median/max of %d rounds: "
        "samples/s ",
        type, strcmp(bottom, "concat") ? "+" : "", strcmp(bottom, "concat") ? bottom : "", threads,
        par == MODEL_PAR_TOWERS ? "towers" : "blas", prec == DENSE_BF16 ? " bf16" : "",
        lib == DENSE_GEMM_OPENBLAS ? " openblas" : "", med[ROUNDS / 2], ROUNDS);
    print_mmm(sps, ROUNDS, "%.0f");
    printf(", %% of the sgemm bound ");
    print_mmm(ratio, ROUNDS, "%.0f");
    printf(" (bound ");
    print_mmm(bnd, ROUNDS, "%.0f");
    printf(" [%s]); by CPU time: %% of the bound ", how);
    print_mmm(cratio, ROUNDS, "%.0f");
    printf("; %.2f MFLOP/sample\n", fps / 1e6);
    print_phases(phase_ms, sps, par == MODEL_PAR_TOWERS ? threads : 1, how);
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
    printf("usage: bench-train [--core | TYPE:BOTTOM:THREADS:PAR[:PRECISION[:LIB]] ...]\n"
           "  with no argument: every configuration of make bench; else only those named,\n"
           "  e.g. esm2:concat:2:towers or esm2:concat:1:towers:fp32:openblas (TYPE\n"
           "  esm2|esmm|naive, BOTTOM concat|shared|mmoe|omoe|ple, PAR towers|blas,\n"
           "  PRECISION fp32|bf16, LIB onednn|openblas: the fp32 products' library, and\n"
           "  the bound's; default onednn).\n"
           "  --core: print OpenBLAS's core name and exit. OPENBLAS_CORETYPE picks\n"
           "  OpenBLAS's kernel (e.g. SkylakeX, Haswell); oneDNN picks its own.\n");
}

int main(int argc, char **argv)
{
    double g[2][2];
    enum { ONE = DENSE_GEMM_ONEDNN, OB = DENSE_GEMM_OPENBLAS };
    static const struct {
        const char *type, *bottom;
        int threads, par, prec, lib;
    } all[] = {
        {"esm2", "concat", 1, MODEL_PAR_TOWERS, DENSE_FP32, ONE},
        {"esm2", "concat", 1, MODEL_PAR_TOWERS, DENSE_FP32, OB},
        {"esm2", "concat", 1, MODEL_PAR_TOWERS, DENSE_BF16, ONE},
        {"esm2", "concat", 2, MODEL_PAR_BLAS, DENSE_FP32, ONE},
        {"esm2", "concat", 2, MODEL_PAR_TOWERS, DENSE_FP32, ONE},
        {"esm2", "concat", 2, MODEL_PAR_TOWERS, DENSE_FP32, OB},
        {"esm2", "concat", 2, MODEL_PAR_TOWERS, DENSE_BF16, ONE},
        {"esmm", "concat", 2, MODEL_PAR_TOWERS, DENSE_FP32, ONE},
        {"esm2", "mmoe", 2, MODEL_PAR_BLAS, DENSE_FP32, ONE},
        {"esm2", "mmoe", 2, MODEL_PAR_TOWERS, DENSE_FP32, ONE},
        {"esm2", "ple", 2, MODEL_PAR_BLAS, DENSE_FP32, ONE},
        {"esm2", "ple", 2, MODEL_PAR_TOWERS, DENSE_FP32, ONE},
    };

    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        }
    if (argc == 2 && !strcmp(argv[1], "--core")) { /* for scripts/bench.sh */
        printf("%s\n", dense_blas_core());
        return 0;
    }
    for (int lib = 0; lib < 2; lib++) {
        dense_gemm_set(lib);
        dense_threads_set(1);
        g[lib][0] = dense_sgemm_gflops(512, 256, 128, 0.5);
        dense_threads_set(2);
        g[lib][1] = dense_sgemm_gflops(512, 256, 128, 0.5);
    }
    printf("blas: oneDNN sgemm (%s), the default; OpenBLAS core %s (OPENBLAS_CORETYPE=%s), %d "
           "threads at most\n",
           dense_onednn_isa(), dense_blas_core(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset (detected)",
           dense_blas_max_threads());
    printf("sgemm 512x256x128: oneDNN %.1f GFLOP/s on 1 thread, %.1f on 2; OpenBLAS %.1f on 1 "
           "thread, %.1f on 2\n",
           g[ONE][0], g[ONE][1], g[OB][0], g[OB][1]);
    dense_gemm_set(ONE);
    pair();
    dense_timing_set(1); /* for each configuration's breakdown */
    printf("bound: n threads reach at most n x the 1-thread sgemm rate of the model's own shapes, "
           "on the configuration's library (oneDNN unless the line says openblas) [shapes]; "
           "bottoms other than concat: their FLOPs over the 1-thread 512x256x128 rate, times n "
           "[flops]; measured again every 10 training steps, each round's ratio over the same "
           "seconds; by CPU time: samples per CPU-second against the "
           "bound by the sgemm thread's CPU time (per core; what a shared machine leaves of the "
           "ratio)\n");
    if (argc < 2) {
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            run(all[i].type, all[i].bottom, all[i].threads, all[i].par, all[i].prec, all[i].lib);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        char type[32], bottom[32], par[32], prec[32] = "fp32", lib[32] = "onednn";
        int threads;
        if (sscanf(argv[i], "%31[^:]:%31[^:]:%d:%31[^:]:%31[^:]:%31s", type, bottom, &threads, par,
                   prec, lib) < 4 ||
            (strcmp(par, "towers") && strcmp(par, "blas")) || threads < 1 || threads > 64 ||
            (strcmp(prec, "fp32") && strcmp(prec, "bf16")) || dense_gemm_parse(lib) < 0) {
            fprintf(stderr, "bench-train: bad configuration '%s'\n", argv[i]);
            usage();
            return 2;
        }
        if (run(type, bottom, threads, strcmp(par, "towers") ? MODEL_PAR_BLAS : MODEL_PAR_TOWERS,
                strcmp(prec, "bf16") ? DENSE_FP32 : DENSE_BF16, dense_gemm_parse(lib)))
            return 1;
    }
    return 0;
}
