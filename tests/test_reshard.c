/*
 * test_reshard.c - `funnel-emb reshard` (issue 13): a real 2-shard
 * cluster is trained and checkpointed; the checkpoint is resharded 2 -> 3
 * and that one 3 -> 1; shards started from each (--init_from) predict
 * the test log byte for byte as the original cluster did. Also: the new
 * checkpoints read as the same table (funnel-emb diff), and a reshard
 * into an existing directory or from a directory without META is refused
 * naming the path, leaving nothing behind.
 *
 * Every process is started with tu_spawn() and stopped in its test (or by
 * tu_stop_all() at exit); every file lives in the suite's scratch
 * directory, removed by teardown.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/util.h"

#define MODEL "--towers 16,8"

static char dir[512], psbin[600], wbin[600], ebin[600];

static int setup(void)
{
    tu_bin(psbin, sizeof(psbin), "funnel-ps");
    tu_bin(wbin, sizeof(wbin), "funnel-worker");
    tu_bin(ebin, sizeof(ebin), "funnel-emb");
    return tu_world(dir, sizeof(dir), "reshard", "--train 80000 --test 4000 --seed 11");
}

static int teardown(void)
{
    tu_stop_all();
    tu_rmtree(dir);
    return 0;
}

/* Start n shards named tag (from checkpoint init, or fresh when NULL);
 * their endpoints, comma-separated, into eps. */
static int start(const char *tag, int n, const char *init, pid_t *pid, char *eps, size_t len)
{
    eps[0] = '\0';
    for (int i = 0; i < n; i++) {
        char log[700], ep[700], from[720] = "";
        snprintf(log, sizeof(log), "%s/%s-ps%d.log", dir, tag, i);
        snprintf(ep, sizeof(ep), "ipc://%s/%s-%d.sock", dir, tag, i);
        if (init)
            snprintf(from, sizeof(from), "--init_from %s", init);
        pid[i] = tu_spawn(log,
                          "exec %s --shard %d --shards %d --listen %s --data %s/%s-data%d "
                          "--checkpoint_root %s/ckroot %s %s",
                          psbin, i, n, ep, dir, tag, i, dir, from, MODEL);
        if (pid[i] <= 0)
            return -1;
        snprintf(eps + strlen(eps), len - strlen(eps), "%s%s", i ? "," : "", ep);
    }
    return 0;
}

static void stop(pid_t *pid, int n)
{
    for (int i = 0; i < n; i++)
        CU_ASSERT_EQUAL(tu_stop(pid[i], SIGTERM), 0);
}

static int predict(const char *eps, const char *tag)
{
    char log[700];

    snprintf(log, sizeof(log), "%s/%s-predict.log", dir, tag);
    return tu_sh(log, "%s predict %s --ps %s --in %s/data/test.tsv --out %s/%s.pred", wbin, MODEL,
                 eps, dir, dir, tag);
}

static void test_reshard_predictions(void)
{
    char eps[4096], log[700];
    pid_t pid[3];

    /* the original cluster: 2 shards, trained, checkpointed, predicting */
    CU_ASSERT_EQUAL_FATAL(start("orig", 2, NULL, pid, eps, sizeof(eps)), 0);
    snprintf(log, sizeof(log), "%s/train.log", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(log,
                                "%s train %s --ps %s --metrics_file %s/m.jsonl "
                                "%s/data/train.tsv",
                                wbin, MODEL, eps, dir, dir),
                          0);
    CU_ASSERT_EQUAL_FATAL(tu_sh(log, "%s ctl checkpoint %s --ps %s --name ck", wbin, MODEL, eps),
                          0);
    CU_ASSERT_EQUAL_FATAL(predict(eps, "orig"), 0);
    stop(pid, 2);

    /* 2 -> 3 */
    snprintf(log, sizeof(log), "%s/reshard.log", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(log, "%s reshard --from %s/ckroot/ck --shards 3 --out %s/r3", ebin, dir, dir), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "grep -q '^shards 3$' %s/r3/META", dir), 0);
    char r3[700];
    snprintf(r3, sizeof(r3), "%s/r3", dir);
    CU_ASSERT_EQUAL_FATAL(start("three", 3, r3, pid, eps, sizeof(eps)), 0);
    CU_ASSERT_EQUAL_FATAL(predict(eps, "three"), 0);
    stop(pid, 3);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/orig.pred %s/three.pred", dir, dir), 0);

    /* 3 -> 1 */
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(log, "%s reshard --from %s/r3 --shards 1 --out %s/r1 --json", ebin, dir, dir), 0);
    char r1[700];
    snprintf(r1, sizeof(r1), "%s/r1", dir);
    CU_ASSERT_EQUAL_FATAL(start("one", 1, r1, pid, eps, sizeof(eps)), 0);
    CU_ASSERT_EQUAL_FATAL(predict(eps, "one"), 0);
    stop(pid, 1);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/orig.pred %s/one.pred", dir, dir), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "test $(wc -l < %s/one.pred) -ge 3900", dir), 0);

    /* the same table, row for row, with its optimizer state */
    snprintf(log, sizeof(log), "%s/diff.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log, "%s diff %s %s/ckroot/ck %s/r1 --json", ebin, MODEL, dir, dir), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "grep -q '\"added\":0' %s && grep -q '\"removed\":0' %s && "
                          "grep -q '\"changed\":0' %s",
                          log, log, log),
                    0);
}

static void test_reshard_refusals(void)
{
    char log[700];
    struct stat st;

    snprintf(log, sizeof(log), "%s/refuse.log", dir);
    /* no META: not a checkpoint; nothing made */
    CU_ASSERT_EQUAL(tu_sh(NULL, "mkdir -p %s/nometa/shard-0", dir), 0);
    CU_ASSERT_EQUAL(tu_sh(log, "%s reshard --from %s/nometa --shards 2 --out %s/x", ebin, dir, dir),
                    1);
    CU_ASSERT_EQUAL(tu_sh(NULL, "grep -q 'no META' %s", log), 0);
    snprintf(log, sizeof(log), "%s/x", dir);
    CU_ASSERT_NOT_EQUAL(stat(log, &st), 0);
    /* an existing output directory is never written into */
    snprintf(log, sizeof(log), "%s/refuse.log", dir);
    CU_ASSERT_EQUAL(tu_sh(NULL, "mkdir -p %s/taken && touch %s/taken/keep", dir, dir), 0);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s reshard --from %s/ckroot/ck --shards 2 --out %s/taken", ebin, dir, dir), 1);
    CU_ASSERT_EQUAL(tu_sh(NULL, "grep -q 'taken exists' %s", log), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "test -f %s/taken/keep", dir), 0);
    /* usage errors say what to give */
    CU_ASSERT_EQUAL(tu_sh(log, "%s reshard --from %s/nometa --shards 0 --out %s/y", ebin, dir, dir),
                    2);
    CU_ASSERT_EQUAL(tu_sh(NULL, "grep -q 'give a whole number' %s", log), 0);
}

int test_reshard_register(void)
{
    CU_pSuite s = CU_add_suite("reshard", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "2 shards -> 3 -> 1: predictions byte-identical, same rows",
                test_reshard_predictions);
    CU_add_test(s, "no META, an existing --out, --shards 0: refused, nothing written",
                test_reshard_refusals);
    return CU_get_error();
}
