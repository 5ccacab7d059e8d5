/*
 * test_scripts.c - the shell scripts under scripts/ answer --help with
 * their usage and nothing else (before, some took --help for their BINDIR
 * argument and started a benchmark), and refuse a BINDIR without funnel's
 * programs with a hint instead of failing half-way; make bench's summary
 * of several runs (bench_summary.py) gives min/median/max per number;
 * run-local.sh shares the cores among its workers.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/util.h"

static const char *const scripts[] = {"run-local", "demo",           "daily-refresh", "bench",
                                      "bench-e2e", "experiment-auc", "install-deps",  "bench-runs"};
#define NSCRIPTS (sizeof(scripts) / sizeof(scripts[0]))

static char dir[512], root[512]; /* scratch; the checkout (tests run from its top) */

static int setup(void)
{
    if (!getcwd(root, sizeof(root)))
        return -1;
    return tu_mkdtemp(dir, sizeof(dir), "scripts");
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

static void test_help(void)
{
    char out[700];

    for (size_t i = 0; i < NSCRIPTS; i++) {
        snprintf(out, sizeof(out), "%s/%s.help", dir, scripts[i]);
        /* run from the scratch directory: --help must not write anything there */
        CU_ASSERT_EQUAL(tu_sh(out, "cd %s && sh %s/scripts/%s.sh --help", dir, root, scripts[i]),
                        0);
        char *text = tu_slurp(out, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        char usage[128];
        snprintf(usage, sizeof(usage), "scripts/%s.sh", scripts[i]);
        if (!strstr(text, usage))
            fprintf(stderr, "\n  %s --help printed:\n%s\n", scripts[i], text);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, usage)); /* the usage line */
        CU_ASSERT_PTR_NULL(strstr(text, "set -"));   /* not the code after the header */
        free(text);
    }
    CU_ASSERT_EQUAL(tu_sh(NULL, "test -z \"$(ls -A %s | grep -v '\\.help$')\"", dir), 0);
}

static void test_missing_programs(void)
{
    static const char *const with_bindir[] = {"demo", "bench", "bench-e2e", "experiment-auc",
                                              "bench-runs"};
    char out[700];

    for (size_t i = 0; i < sizeof(with_bindir) / sizeof(with_bindir[0]); i++) {
        snprintf(out, sizeof(out), "%s/%s.nobin", dir, with_bindir[i]);
        CU_ASSERT_EQUAL(
            tu_sh(out, "cd %s && sh %s/scripts/%s.sh %s/nowhere", dir, root, with_bindir[i], dir),
            2);
        char *text = tu_slurp(out, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "not found: run make first"));
        free(text);
    }
}

/* Three runs' outputs merged: numbers matched by the line's words (columns
 * may move), min/median/max at the most decimals printed, equal values
 * once, a line missing from a run marked, each run's environment kept. */
static void test_bench_summary(void)
{
    static const char *const run[3][2] = {
        {"train esm2 threads=1: 42.5 k samples/s = 79% of 53.9 k\nkeys 1000\nonly here 7\n",
         "start 2026-12-06T06:00:00Z load 1.00\n"},
        {"train esm2 threads=1:   40.1 k samples/s = 75% of 53.1 k\nkeys 1000\nonly here 9\n",
         "start 2026-12-06T06:10:00Z load 9.00\n"},
        {"train esm2 threads=1: 44.25 k samples/s = 81% of 55 k\nkeys 1000\n",
         "start 2026-12-06T06:20:00Z load 5.00\n"}};
    char out[700], *text;

    for (int k = 0; k < 3; k++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/sum-%d", dir, k);
        CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "mkdir -p %s", path), 0);
        CU_ASSERT_EQUAL_FATAL(tu_write(strcat(path, "/train.txt"), run[k][0]), 0);
        snprintf(path, sizeof(path), "%s/sum-%d/env.txt", dir, k);
        CU_ASSERT_EQUAL_FATAL(tu_write(path, run[k][1]), 0);
    }
    snprintf(out, sizeof(out), "%s/summary.txt", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(out,
                                "python3 %s/scripts/bench_summary.py %s/sum-0 %s/sum-1 %s/sum-2",
                                root, dir, dir, dir),
                          0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(text, "train esm2 threads=1: 40.10/42.50/44.25 k samples/s = 75/79/81% of "
                     "53.1/53.9/55.0 k\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nkeys 1000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "only here 7/8/9   [2 of 3 runs]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "start 2026-12-06T06:10:00Z load 9.00"));
    free(text);
}

/* run-local.sh run from another directory finds the programs of its own
 * checkout (not ./bin), trains a real log and stops its shard; a --bin
 * without the programs is refused with a hint before anything starts. The
 * checkout is a copy of scripts/ beside a bin/ linking to the programs
 * under test (so an ASan build is the one run). */
static void test_run_local_from_elsewhere(void)
{
    char out[700], gen[600], bin[600];
    char *text;

    tu_bin(bin, sizeof(bin), "");
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "mkdir -p %s/co/scripts %s/elsewhere && cp %s/scripts/*.sh "
                                "%s/co/scripts/ && ln -s \"$(cd %s && pwd)\" %s/co/bin",
                                dir, dir, root, dir, bin, dir),
                          0);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(NULL,
              "%s --out %s/rl-data --train 3000 --test 10 --users 200 --items 100 "
              "> %s/rl-gen.log 2>&1",
              tu_bin(gen, sizeof(gen), "funnel-gen"), dir, dir),
        0);
    snprintf(out, sizeof(out), "%s/rl.out", dir);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "cd %s/elsewhere && sh ../co/scripts/run-local.sh --shards 1 --workers 1 "
                          "--dir ../rl-cluster --worker-opt '--progress off' ../rl-data/train.tsv",
                          dir),
                    0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "run-local: training done"));
    free(text);
    /* the shard is gone: nothing listens on its socket's pid file */
    CU_ASSERT_EQUAL(tu_sh(NULL, "test ! -e %s/rl-cluster/ps.pids", dir), 0);

    snprintf(out, sizeof(out), "%s/rl-nobin.out", dir);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "cd %s/elsewhere && sh ../co/scripts/run-local.sh --bin %s/nowhere "
                          "--dir ../rl-nobin ../rl-data/train.tsv",
                          dir, dir),
                    2);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "not found: run make first"));
    free(text);
}

/* Compute threads of a worker, from its log's "batch timeline" line, or -1. */
static int worker_threads(const char *log)
{
    char *text = tu_slurp(log, NULL), *p;
    int n = -1;

    if (text && (p = strstr(text, "batch timeline over ")) != NULL &&
        (p = strstr(p, " batches, ")) != NULL)
        n = atoi(p + strlen(" batches, "));
    free(text);
    return n;
}

/* run-local.sh gives each of its M workers this machine's cores / M
 * compute threads (at least 1), unless --worker-opt sets --threads; each
 * worker's summary says how many it ran and where its batches' time went. */
static void test_run_local_threads(void)
{
    char out[700], gen[600], bin[600], log[700];
    char *text;
    int cores, want;

    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "%s --out %s/rt-data --train 3000 --test 10 --users 200 "
                                "--items 100 > %s/rt-gen.log 2>&1",
                                tu_bin(gen, sizeof(gen), "funnel-gen"), dir, dir),
                          0);
    snprintf(out, sizeof(out), "%s/rt-nproc", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(out, "nproc"), 0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    cores = atoi(text);
    free(text);
    CU_ASSERT_FATAL(cores >= 1);
    want = cores / 2 > 0 ? cores / 2 : 1;

    tu_bin(bin, sizeof(bin), "");
    snprintf(out, sizeof(out), "%s/rt.out", dir);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "sh scripts/run-local.sh --bin %s --shards 1 --workers 2 --dir %s/rt "
                          "--progress off --worker-opt '--progress off' %s/rt-data/train.tsv",
                          bin, dir, dir),
                    0);
    for (int i = 0; i < 2; i++) {
        snprintf(log, sizeof(log), "%s/rt/logs/worker%d.log", dir, i);
        CU_ASSERT_EQUAL(worker_threads(log), want);
    }
    text = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "ms per batch): pull wait "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, " context switches"));
    free(text);

    /* the caller's --threads wins */
    CU_ASSERT_EQUAL(tu_sh(out,
                          "sh scripts/run-local.sh --bin %s --shards 1 --workers 2 --dir %s/rt3 "
                          "--progress off --worker-opt '--progress off --threads 3' "
                          "%s/rt-data/train.tsv",
                          bin, dir, dir),
                    0);
    for (int i = 0; i < 2; i++) {
        snprintf(log, sizeof(log), "%s/rt3/logs/worker%d.log", dir, i);
        CU_ASSERT_EQUAL(worker_threads(log), 3);
    }
}

int test_scripts_register(void)
{
    CU_pSuite s = CU_add_suite("scripts", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "--help prints the usage and runs nothing", test_help);
    CU_add_test(s, "a BINDIR without funnel's programs: exit 2 with a hint", test_missing_programs);
    CU_add_test(s, "make bench's summary: min/median/max of each number", test_bench_summary);
    CU_add_test(s, "run-local.sh from another directory uses its checkout's bin/",
                test_run_local_from_elsewhere);
    CU_add_test(s, "run-local.sh: cores / workers compute threads, unless --threads is given",
                test_run_local_threads);
    return CU_get_error();
}
