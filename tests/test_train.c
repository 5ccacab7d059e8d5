/*
 * test_train.c - in-process training end to end with the real programs:
 * funnel-gen writes a small world, funnel-worker trains, predicts and
 * evaluates it. The model must beat a constant predictor by a clear margin
 * on every task; a saved model predicts the same twice; a model directory
 * of another type is refused with a clear message; check-data passes the
 * generated logs.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/util.h"

static char dir[512];
static char gen[600], worker[600];

static int setup(void)
{
    if (tu_mkdtemp(dir, sizeof(dir), "train") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    tu_bin(worker, sizeof(worker), "funnel-worker");
    return tu_sh(NULL,
                 "%s --out %s/data --train 300000 --test 100000 --seed 11 "
                 "> %s/gen.log 2>&1",
                 gen, dir, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

/* Value of "key": number after `after` in JSON text, or NAN. */
static double json_num(const char *json, const char *task, const char *key)
{
    char pat[64];
    const char *t, *k;

    snprintf(pat, sizeof(pat), "\"%s\":{", task);
    t = strstr(json, pat);
    if (!t)
        return NAN;
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    k = strstr(t, pat);
    if (!k)
        return NAN;
    return strtod(k + strlen(pat), NULL);
}

/* Log-loss of always predicting the rate p. */
static double const_logloss(double p)
{
    return -(p * log(p) + (1 - p) * log(1 - p));
}

static void test_train_predict_eval_beats_constant(void)
{
    char out[700], path[700];
    char *json;

    snprintf(out, sizeof(out), "%s/train.log", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(out, "%s train --towers 128,64 --model %s/m1 %s/data/train.tsv", worker, dir, dir),
        0);
    snprintf(path, sizeof(path), "%s/m1/META", dir);
    char *meta = tu_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(meta ? strstr(meta, "model esm2") : NULL);
    free(meta);
    snprintf(out, sizeof(out), "%s/predict.log", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(out,
                                "%s predict --towers 128,64 --model %s/m1 --in %s/data/test.tsv "
                                "--out %s/pred.tsv",
                                worker, dir, dir, dir),
                          0);
    snprintf(out, sizeof(out), "%s/eval.json", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "%s eval --pred %s/pred.tsv --log %s/data/test.tsv "
                                "--truth %s/data/test.truth.tsv --json > %s 2>/dev/null",
                                worker, dir, dir, dir, out),
                          0);
    json = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    static const char *const tasks[] = {"ctr", "cvr", "ctcvr", "ctavr", "cvr_entire_space"};
    for (int i = 0; i < 5; i++) {
        double auc = json_num(json, tasks[i], "auc");
        double ll = json_num(json, tasks[i], "logloss");
        double rate = json_num(json, tasks[i], "rate");
        double oracle = json_num(json, tasks[i], "oracle_auc");
        if (!(auc > 0.58))
            fprintf(stderr, "\n  %s: auc %.4f (oracle %.4f)\n", tasks[i], auc, oracle);
        CU_ASSERT(auc > 0.58);           /* a constant predictor has 0.5 */
        CU_ASSERT(auc <= oracle + 0.01); /* nobody beats the truth */
        CU_ASSERT(ll < const_logloss(rate));
    }
    free(json);
}

static void test_saved_model_predicts_identically(void)
{
    char out[700], a[700], b[700];
    size_t la, lb;

    snprintf(out, sizeof(out), "%s/predict2.log", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(out,
                                "%s predict --towers 128,64 --model %s/m1 --in %s/data/test.tsv "
                                "--out %s/pred2.tsv",
                                worker, dir, dir, dir),
                          0);
    snprintf(a, sizeof(a), "%s/pred.tsv", dir);
    snprintf(b, sizeof(b), "%s/pred2.tsv", dir);
    char *x = tu_slurp(a, &la), *y = tu_slurp(b, &lb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    CU_ASSERT_EQUAL(la, lb);
    CU_ASSERT(la == lb && memcmp(x, y, la) == 0);
    free(x);
    free(y);
}

static void test_continue_from_saved_model(void)
{
    char out[700];
    char *log;

    snprintf(out, sizeof(out), "%s/train2.log", dir);
    /* days/2 does not exist yet: --model creates its parents */
    CU_ASSERT_EQUAL(tu_sh(out,
                          "%s train --towers 128,64 --init_from %s/m1 --model %s/days/2/m2 "
                          "%s/data/train.tsv",
                          worker, dir, dir, dir),
                    0);
    /* the wrong model type is refused, naming what differs (given with the
     * older spelling --init-from, still accepted: else nothing would differ) */
    snprintf(out, sizeof(out), "%s/train3.log", dir);
    CU_ASSERT_NOT_EQUAL(tu_sh(out,
                              "%s train --model_type esmm --loss_weights 1,1 --towers "
                              "128,64 --init-from %s/m1 --model %s/m3 %s/data/test.tsv",
                              worker, dir, dir, dir),
                        0);
    log = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "esm2"));
    free(log);
}

static void test_check_data_on_generated_and_broken_logs(void)
{
    char out[700], bad[700];
    char *text;

    snprintf(out, sizeof(out), "%s/check.log", dir);
    CU_ASSERT_EQUAL(tu_sh(out, "%s check-data %s/data/test.tsv", worker, dir), 0);
    snprintf(bad, sizeof(bad), "%s/bad.tsv", dir);
    tu_write(bad, "1\t1\t0\tuser_id:u1 item_id:i2\n"
                  "0\t1\t0\tuser_id:u1\n"       /* action without click */
                  "2\t0\t0\tuser_id:u1\n"       /* bad label */
                  "1\t0\t0\n"                   /* 3 columns */
                  "1\t0\t1\ttag:x:notaweight\n" /* bad weight */
                  "0\t0\t0\tuser_id:u2 item_id:i9\n");
    CU_ASSERT_EQUAL(tu_sh(out, "%s check-data %s", worker, bad), 1);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "bad.tsv:2"));
    free(text);
}

/* A log that is not there is the first thing train says: before the
 * configuration dump, not after it. */
static void test_missing_log_reported_first(void)
{
    char out[700];
    char *log;

    snprintf(out, sizeof(out), "%s/missing.log", dir);
    CU_ASSERT_NOT_EQUAL(tu_sh(out, "%s train --model %s/m-missing %s/data/train.tsv %s/no-such.tsv",
                              worker, dir, dir, dir),
                        0);
    log = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "no-such.tsv: No such file"));
    CU_ASSERT_PTR_NULL(strstr(log, "batch_size")); /* no configuration dump */
    free(log);
    CU_ASSERT_EQUAL(tu_sh(NULL, "test ! -e %s/m-missing", dir), 0);
}

/* OpenBLAS's generic "Prescott" kernels on a CPU it does not know are
 * replaced by the ones the CPU's flags allow: with OPENBLAS_VERBOSE=2
 * OpenBLAS prints "Core: NAME" each time it loads. Either it loaded once
 * (it knew the CPU), or twice, Prescott first and then SkylakeX or
 * Haswell. A core the user set is never overridden. */
static void test_blas_core_choice(void)
{
    char out[700];
    char *text, *first, *second;
    int n = 0;

    snprintf(out, sizeof(out), "%s/core.log", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(out,
                                "env -u OPENBLAS_CORETYPE -u FUNNEL_BLAS_FALLBACK "
                                "OPENBLAS_VERBOSE=2 %s --help",
                                worker),
                          0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    first = strstr(text, "Core: ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    second = strstr(first + 1, "Core: ");
    if (second) {
        CU_ASSERT_EQUAL(strncmp(first, "Core: Prescott", 14), 0);
        CU_ASSERT(strncmp(second, "Core: SkylakeX", 14) == 0 ||
                  strncmp(second, "Core: Haswell", 13) == 0);
        CU_ASSERT_PTR_NULL(strstr(second + 1, "Core: "));
    }
    free(text);

    CU_ASSERT_EQUAL_FATAL(tu_sh(out,
                                "env -u FUNNEL_BLAS_FALLBACK OPENBLAS_CORETYPE=Prescott "
                                "OPENBLAS_VERBOSE=2 %s --help",
                                worker),
                          0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    for (const char *p = text; (p = strstr(p, "Core: ")); p++)
        n++;
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "Core: Prescott"));
    free(text);

    /* the training log names the kernels (the first test's run: the
     * default library, oneDNN, with the instruction set it chose) */
    snprintf(out, sizeof(out), "%s/train.log", dir);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    first = strstr(text, "dense kernels: oneDNN sgemm (");
    CU_ASSERT_PTR_NOT_NULL(first);
    __builtin_cpu_init();
    if (first && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CU_ASSERT(strncmp(first, "dense kernels: oneDNN sgemm (avx", 32) == 0);
    free(text);
}

int test_train_register(void)
{
    CU_pSuite s = CU_add_suite("train", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "train, predict, eval: beats a constant predictor on every task",
                test_train_predict_eval_beats_constant);
    CU_add_test(s, "a saved model predicts identically twice",
                test_saved_model_predicts_identically);
    CU_add_test(s, "a missing log is reported before the configuration dump",
                test_missing_log_reported_first);
    CU_add_test(s, "--init_from (or --init-from) continues; a mismatched model is refused",
                test_continue_from_saved_model);
    CU_add_test(s, "check-data on generated and broken logs",
                test_check_data_on_generated_and_broken_logs);
    CU_add_test(s,
                "OpenBLAS's generic kernels give way to the CPU's, a set core stays; the log names "
                "oneDNN's",
                test_blas_core_choice);
    return CU_get_error();
}
