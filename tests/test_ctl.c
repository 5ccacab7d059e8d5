/*
 * test_ctl.c - `funnel-worker ctl` as an operator meets it before any
 * cluster is up: its --help lists the options ctl reads, not the training
 * ones; against shards that are not there it gives up within --wait
 * (default 5 s, not the workers' deadline_s of 60 s) with a message that
 * names the endpoint and the option to change.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "tests/util.h"

static void test_help_lists_what_ctl_reads(void)
{
    char dir[512], worker[600], out[700];
    char *text;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "ctl"), 0);
    tu_bin(worker, sizeof(worker), "funnel-worker");
    snprintf(out, sizeof(out), "%s/help.txt", dir);
    CU_ASSERT_EQUAL(tu_sh(out, "%s ctl --help", worker), 0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "--ps "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "--wait "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "--deadline_s "));
    CU_ASSERT_PTR_NULL(strstr(text, "--batch_size"));
    CU_ASSERT_PTR_NULL(strstr(text, "--epochs"));
    CU_ASSERT_PTR_NULL(strstr(text, "--metrics_file"));
    /* one line per option and its help: far from the 40 training keys */
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    CU_ASSERT(lines < 30);
    free(text);
    /* train's own help keeps them all, and spells --init_from like a key */
    CU_ASSERT_EQUAL(tu_sh(out, "%s train --help", worker), 0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "--batch_size"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "--init_from "));
    free(text);
    tu_rmtree(dir);
}

static void test_dead_cluster_reported_within_wait(void)
{
    char dir[512], worker[600], out[700];
    char *text;
    double t0, dt;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "ctl"), 0);
    tu_bin(worker, sizeof(worker), "funnel-worker");
    snprintf(out, sizeof(out), "%s/stats.txt", dir);
    t0 = clock_now_s();
    CU_ASSERT_NOT_EQUAL(tu_sh(out, "%s ctl stats --ps ipc://%s/shard0 --wait 1", worker, dir), 0);
    dt = clock_now_s() - t0;
    CU_ASSERT(dt >= 0.9 && dt < 4);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "shard0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "--wait 1 s"));
    free(text);
    /* the default: 5 s, for every command (checkpoint here) */
    t0 = clock_now_s();
    CU_ASSERT_NOT_EQUAL(
        tu_sh(out, "%s ctl checkpoint --out %s/ckpt --ps ipc://%s/shard0", worker, dir, dir), 0);
    dt = clock_now_s() - t0;
    CU_ASSERT(dt >= 4.5 && dt < 15);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "--wait 5 s"));
    free(text);
    CU_ASSERT_EQUAL(tu_sh(out, "%s ctl stats --ps ipc://%s/shard0 --wait 0", worker, dir), 2);
    tu_rmtree(dir);
}

int test_ctl_register(void)
{
    CU_pSuite s = CU_add_suite("ctl", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "--help lists the options ctl reads", test_help_lists_what_ctl_reads);
    CU_add_test(s, "a dead cluster is reported within --wait (default 5 s)",
                test_dead_cluster_reported_within_wait);
    return CU_get_error();
}
