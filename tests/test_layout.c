/*
 * test_layout.c - a saved model carries its layout, and predict and eval
 * read what train reads, shown with the real programs on generated logs:
 *
 *   - train in process with a non-default layout (esmm, dims 8 and 4,
 *     small towers); predict with no layout options writes the same bytes
 *     as predict with every option; an option that contradicts META is an
 *     error naming both values (model type, towers, slots, dims, format);
 *     `train --init_from` takes the layout too;
 *   - several inputs: `--in A --in B` and `--in A B` predict the rows of
 *     A then B, the same bytes as the concatenated log;
 *   - Ali-CCP: train, predict (both files as repeated --in, no layout
 *     options) and eval (no slot configuration, no undeclared-slot talk);
 *   - a 2-shard cluster: predict --ps against it untrained is refused and
 *     the shards' counters show nothing was written; after training,
 *     predict from its 2-shard checkpoint in process writes the same bytes
 *     as predict --ps against the running cluster.
 *
 * Every process is stopped and the scratch directory removed at the end,
 * also when an assertion fails.
 */
#include <CUnit/CUnit.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/util.h"

#define LAYOUT "--model_type esmm --emb_dim 8 --slot_dims tag:4 --towers 32,16"
#define ALI_SLOTS "101,205,206,207,216,210,301,302"

static char dir[512], bin[512];

/* 1 if files a and b have the same bytes (and exist). */
static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = tu_slurp(a, &la), *y = tu_slurp(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;

    free(x);
    free(y);
    return same;
}

/* Run a shell command with its output in DIR/out.txt; the exit status.
 * The output stays readable with out_has(). */
static int run(const char *fmt, const char *a, const char *b)
{
    char out[700], cmd[4096];

    snprintf(out, sizeof(out), "%s/out.txt", dir);
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    return tu_sh(out, "%s", cmd);
}

/* 1 if the last run()'s output contains s. */
static int out_has(const char *s)
{
    char out[700];
    char *t;
    int has;

    snprintf(out, sizeof(out), "%s/out.txt", dir);
    t = tu_slurp(out, NULL);
    has = t && strstr(t, s);
    if (!has)
        fprintf(stderr, "\n  expected '%s' in:\n%s\n", s, t ? t : "(no output)");
    free(t);
    return has;
}

static int setup(void)
{
    char gen[600];

    if (tu_mkdtemp(dir, sizeof(dir), "layout") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    char real[PATH_MAX];
    if (access(gen, X_OK) != 0 || !realpath(gen, real) || strlen(real) >= sizeof(bin))
        return -1; /* absolute: the tests cd into the scratch directory */
    memcpy(bin, real, strlen(real) + 1);
    *strrchr(bin, '/') = '\0';
    if (tu_sh(NULL, "%s --out %s/d --train 20000 --test 3000 --seed 5 > %s/gen.log 2>&1", gen, dir,
              dir) != 0 ||
        tu_sh(NULL,
              "%s --out %s/a --train 20000 --test 3000 --seed 6 --format aliccp >> %s/gen.log "
              "2>&1",
              gen, dir, dir) != 0)
        return -1;
    return 0;
}

static int teardown(void)
{
    tu_stop_all();
    tu_rmtree(dir);
    return 0;
}

/* ---- in process ---- */

static void test_model_carries_layout(void)
{
    char cmd[3000];

    snprintf(cmd, sizeof(cmd), "%s/funnel-worker train --model %%s/m %s %%s/d/train.tsv", bin,
             LAYOUT);
    CU_ASSERT_EQUAL_FATAL(run(cmd, dir, dir), 0);
    snprintf(cmd, sizeof(cmd),
             "grep -qx 'format tsv1' %%s/m/META && grep -qx 'model esmm' %%s/m/META");
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 0);

    /* no layout options: the same bytes as with all of them */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cd %s && %s/funnel-worker predict --model m --in d/test.tsv "
                          "--out p-meta.tsv > /dev/null 2>&1",
                          dir, bin),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cd %s && %s/funnel-worker predict --model m " LAYOUT
                          " --format tsv1 --in d/test.tsv --out p-flags.tsv > /dev/null 2>&1",
                          dir, bin),
                    0);
    snprintf(cmd, sizeof(cmd), "%s/p-meta.tsv", dir);
    char other[700];
    snprintf(other, sizeof(other), "%s/p-flags.tsv", dir);
    CU_ASSERT_TRUE(same_file(cmd, other));
    char *t = tu_slurp(cmd, NULL);
    CU_ASSERT_TRUE(t && strncmp(t, "pctr\tpcvr\tpctcvr\n", 17) == 0); /* esmm: no pctavr */
    free(t);

    /* contradictions name both values */
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --model %%s/m --model_type esm2 --in %%s/d/test.tsv "
             "--out x.tsv",
             bin);
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 1);
    CU_ASSERT_TRUE(out_has("holds an esmm model; --model_type says esm2"));
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --model %%s/m --towers 64 --in %%s/d/test.tsv --out x.tsv",
             bin);
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 1);
    CU_ASSERT_TRUE(out_has("towers '32,16'; --towers says '64'"));
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --model %%s/m --slots user_id,item_id --in "
             "%%s/d/test.tsv --out x.tsv",
             bin);
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 1);
    CU_ASSERT_TRUE(out_has("--slots says 'user_id,item_id'"));
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --model %%s/m --emb_dim 16 --in %%s/d/test.tsv --out x.tsv",
             bin);
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 1);
    CU_ASSERT_TRUE(out_has("has dimension 8, the configuration 16"));
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --model %%s/m --format aliccp --in %%s/d/test.tsv "
             "--out x.tsv",
             bin);
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 1);
    CU_ASSERT_TRUE(out_has("format 'tsv1'; --format says 'aliccp'"));

    /* train --init_from takes the layout as well, and refuses a contradiction */
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker train --model %%s/m2 --init_from %%s/m --model_type esm2 "
             "%s/d/train.tsv",
             bin, dir);
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 1);
    CU_ASSERT_TRUE(out_has("holds an esmm model; --model_type says esm2"));
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker train --model %%s/m2 --init_from %%s/m %s/d/train.tsv", bin, dir);
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 0);
    snprintf(cmd, sizeof(cmd),
             "grep -qx 'towers 32,16' %%s/m2/META && grep -qx 'slot 7 tag 4' %%s/m2/META");
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 0);
}

static void test_several_inputs(void)
{
    char a[700], b[700];

    if (tu_sh(NULL,
              "cd %s && head -n 1000 d/test.tsv > h1.tsv && tail -n +1001 d/test.tsv > h2.tsv",
              dir) != 0 ||
        tu_sh(NULL, "test -d %s/m", dir) != 0) {
        CU_FAIL("no halves or no model (the layout test trains it)");
        return;
    }
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cd %s && %s/funnel-worker predict --model m --in h1.tsv --in "
                          "h2.tsv --out p-two.tsv > /dev/null 2>&1",
                          dir, bin),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cd %s && %s/funnel-worker predict --model m --in h1.tsv h2.tsv "
                          "--out p-trail.tsv > /dev/null 2>&1",
                          dir, bin),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cd %s && %s/funnel-worker predict --model m --in=h2.tsv "
                          "--out p-rev.tsv h1.tsv > /dev/null 2>&1",
                          dir, bin),
                    0);
    snprintf(a, sizeof(a), "%s/p-meta.tsv", dir);
    snprintf(b, sizeof(b), "%s/p-two.tsv", dir);
    CU_ASSERT_TRUE(same_file(a, b));
    snprintf(b, sizeof(b), "%s/p-trail.tsv", dir);
    CU_ASSERT_TRUE(same_file(a, b));
    snprintf(b, sizeof(b), "%s/p-rev.tsv", dir); /* h2 first: other bytes */
    CU_ASSERT_FALSE(same_file(a, b));
    /* eval reads both halves too: 3000 rows */
    CU_ASSERT_EQUAL(
        run("cd %s && %s/funnel-worker eval --pred p-two.tsv --log h1.tsv --log h2.tsv", dir, bin),
        0);
    CU_ASSERT_TRUE(out_has("rows: 3000"));
}

static void test_aliccp(void)
{
    char cmd[3000];

    snprintf(cmd, sizeof(cmd),
             "cd %%s && %%s/funnel-worker train --model ma --format aliccp --slots " ALI_SLOTS
             " --towers 16 a/sample_skeleton_train.csv a/common_features_train.csv");
    CU_ASSERT_EQUAL_FATAL(run(cmd, dir, bin), 0);
    /* no layout options: slots and format come from META */
    CU_ASSERT_EQUAL(run("cd %s && %s/funnel-worker predict --model ma --in "
                        "a/sample_skeleton_test.csv --in a/common_features_test.csv --out pa.tsv",
                        dir, bin),
                    0);
    CU_ASSERT_TRUE(out_has("wrote 3000 predictions"));
    /* eval: the format from the model, no slots at all */
    CU_ASSERT_EQUAL(run("cd %s && %s/funnel-worker eval --pred pa.tsv --model ma --log "
                        "a/sample_skeleton_test.csv --log a/common_features_test.csv",
                        dir, bin),
                    0);
    CU_ASSERT_TRUE(out_has("rows: 3000"));
    CU_ASSERT_TRUE(out_has("ctcvr"));
    /* or the format given, files as arguments; nothing said about slots */
    CU_ASSERT_EQUAL(run("cd %s && %s/funnel-worker eval --pred pa.tsv --format aliccp --json "
                        "--log a/sample_skeleton_test.csv a/common_features_test.csv",
                        dir, bin),
                    0);
    CU_ASSERT_TRUE(out_has("\"rows\":3000"));
    char out[700];
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    char *t = tu_slurp(out, NULL);
    CU_ASSERT_TRUE(t && !strstr(t, "undeclared") && !strstr(t, "WARN"));
    free(t);
}

/* ---- on a cluster ---- */

typedef struct cl {
    char eps[1700];
    pid_t ps[2];
} cl_t;

static long long shard_stat(const char *ep, const char *name)
{
    char out[800], pat[128];
    char *json, *p;
    long long v = -1;

    snprintf(out, sizeof(out), "%s/stats.json", dir);
    if (tu_sh(NULL, "%s/funnel-worker ctl stats --ps %s --json > %s 2>/dev/null", bin, ep, out) !=
        0)
        return -1;
    json = tu_slurp(out, NULL);
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    p = json ? strstr(json, pat) : NULL;
    if (p)
        v = strtoll(p + strlen(pat), NULL, 10);
    free(json);
    return v;
}

static void test_cluster_readonly_and_checkpoint(void)
{
    char ep[2][800], log[800], cmd[4096], a[800], b[800];
    pid_t ps[2] = {0, 0};

    for (int i = 0; i < 2; i++) {
        snprintf(ep[i], sizeof(ep[i]), "ipc://%s/ps%d.sock", dir, i);
        snprintf(log, sizeof(log), "%s/ps%d.log", dir, i);
        ps[i] = tu_spawn(
            log, "exec %s/funnel-ps --shard %d --shards 2 --listen %s --data %s/ps%d " LAYOUT, bin,
            i, ep[i], dir, i);
        CU_ASSERT_FATAL(ps[i] > 0);
    }
    char eps[1700];
    snprintf(eps, sizeof(eps), "%s,%s", ep[0], ep[1]);

    /* untrained: refused, and nothing written */
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker ctl stats --ps %s --wait 20 > /dev/null 2>&1 && %s/funnel-worker "
             "predict --ps %%s " LAYOUT " --in %%s/d/test.tsv --out %s/p-untrained.tsv",
             bin, eps, bin, dir);
    CU_ASSERT_EQUAL(run(cmd, eps, dir), 1);
    CU_ASSERT_TRUE(out_has("holds no dense weights: the cluster was never trained"));
    snprintf(a, sizeof(a), "%s/p-untrained.tsv", dir);
    CU_ASSERT_EQUAL(access(a, F_OK), -1);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(shard_stat(ep[i], "dense_initialized"), 0);
        CU_ASSERT_EQUAL(shard_stat(ep[i], "pushes"), 0);
        CU_ASSERT_EQUAL(shard_stat(ep[i], "rows_created"), 0);
    }

    /* trained by one worker; predict --ps, then from its checkpoint */
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker train --ps %%s " LAYOUT " --metrics_file %s/m.jsonl %%s/d/train.tsv",
             bin, dir);
    CU_ASSERT_EQUAL_FATAL(run(cmd, eps, dir), 0);
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --ps %%s " LAYOUT " --in %%s/d/test.tsv --out %s/p-ps.tsv",
             bin, dir);
    CU_ASSERT_EQUAL(run(cmd, eps, dir), 0);
    long long pushes = shard_stat(ep[0], "pushes");
    snprintf(cmd, sizeof(cmd), "%s/funnel-worker ctl checkpoint --ps %%s --name c1 " LAYOUT " %%s",
             bin);
    CU_ASSERT_EQUAL(run(cmd, eps, ""), 0);
    CU_ASSERT_TRUE(out_has("checkpoint of 2 shards written to"));
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --model %%s/checkpoints/c1 --in %%s/d/test.tsv --out "
             "%s/p-ckpt.tsv",
             bin, dir);
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 0);
    snprintf(a, sizeof(a), "%s/p-ps.tsv", dir);
    snprintf(b, sizeof(b), "%s/p-ckpt.tsv", dir);
    CU_ASSERT_TRUE(same_file(a, b));
    /* predicting again changed nothing on the shards */
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --ps %%s " LAYOUT " --in %%s/d/test.tsv --out %s/p-ps2.tsv",
             bin, dir);
    CU_ASSERT_EQUAL(run(cmd, eps, dir), 0);
    CU_ASSERT_EQUAL(shard_stat(ep[0], "pushes"), pushes);
    snprintf(b, sizeof(b), "%s/p-ps2.tsv", dir);
    CU_ASSERT_TRUE(same_file(a, b));
    /* a checkpoint's layout contradicted */
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --model %%s/checkpoints/c1 --model_type naive --in "
             "%%s/d/test.tsv --out x.tsv",
             bin);
    CU_ASSERT_EQUAL(run(cmd, dir, dir), 1);
    CU_ASSERT_TRUE(out_has("holds an esmm model; --model_type says naive"));
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL(tu_stop(ps[i], SIGTERM), 0);

    /* funnel-ps --init_from takes the layout from the checkpoint: no [model]
     * options, and the restored cluster predicts the same bytes */
    for (int i = 0; i < 2; i++) {
        snprintf(ep[i], sizeof(ep[i]), "ipc://%s/rs%d.sock", dir, i);
        snprintf(log, sizeof(log), "%s/rs%d.log", dir, i);
        ps[i] = tu_spawn(log,
                         "exec %s/funnel-ps --shard %d --shards 2 --listen %s --data %s/rs%d "
                         "--init_from %s/checkpoints/c1",
                         bin, i, ep[i], dir, i, dir);
        CU_ASSERT_FATAL(ps[i] > 0);
    }
    snprintf(eps, sizeof(eps), "%s,%s", ep[0], ep[1]);
    snprintf(cmd, sizeof(cmd),
             "%s/funnel-worker predict --ps %%s " LAYOUT " --in %%s/d/test.tsv --out %s/p-rs.tsv",
             bin, dir);
    CU_ASSERT_EQUAL(run(cmd, eps, dir), 0);
    snprintf(b, sizeof(b), "%s/p-rs.tsv", dir);
    CU_ASSERT_TRUE(same_file(a, b));
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL(tu_stop(ps[i], SIGTERM), 0);
}

int test_layout_register(void)
{
    CU_pSuite s = CU_add_suite("layout", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "train -> predict without layout options; contradictions",
                test_model_carries_layout);
    CU_add_test(s, "several inputs, in order", test_several_inputs);
    CU_add_test(s, "Ali-CCP predict and eval from META", test_aliccp);
    CU_add_test(s, "cluster: untrained refused read-only; N-shard checkpoint predict",
                test_cluster_readonly_and_checkpoint);
    return CU_get_error();
}
