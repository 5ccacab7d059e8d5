/*
 * test_inputs.c - inputs that used to be taken quietly, on the real
 * programs: logs that are empty, not regular files (a FIFO, a directory,
 * /dev/zero) or missing stop `funnel-worker train` with the file named
 * (bounded: a FIFO without a writer and /dev/zero must not hang), and
 * --allow-empty lets only an empty file through; a run that trained 0
 * samples writes no model; a worker whose learning rate differs from its
 * shard's is refused at the handshake with both values named, while a
 * different admission is reported (warning and hello_policy_diffs); a data
 * directory made with one optimizer refuses to start with another.
 *
 * Every process is stopped and the scratch directory removed by the
 * suite's teardown, also when an assertion failed.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/util.h"

#define OPTS "--towers 8 --slots user_id,item_id,tag" /* the layout: shards and workers */
/* every command is bounded: a hang is a failure, never a stuck suite */
#define BOUND "timeout -k 5 60 "

static char dir[512], psbin[600], wbin[600];

static char *path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

/* Run train in process over logs (a shell word list) into dir/model;
 * output into dir/out.txt (returned in *out, caller frees). */
static int train_local(const char *logs, const char *extra, char **out)
{
    char o[700];
    int rc;

    path_of(o, sizeof(o), "out.txt");
    rc = tu_sh(o, BOUND "%s train %s --threads 1 --model %s/model %s %s", wbin, OPTS, dir, extra,
               logs);
    *out = tu_slurp(o, NULL);
    return rc;
}

/* 1 if nothing of the model was written: no dir/model, dir/model.tmp or
 * dir/model.metrics.jsonl. */
static int no_model(void)
{
    char p[700], q[700], m[700];

    path_of(p, sizeof(p), "model");
    path_of(q, sizeof(q), "model.tmp");
    path_of(m, sizeof(m), "model.metrics.jsonl");
    return access(p, F_OK) != 0 && access(q, F_OK) != 0 && access(m, F_OK) != 0;
}

static void test_bad_logs(void)
{
    char empty[600], fifo[600], sub[600], good[600], comments[600], logs[1300];
    char *out = NULL;
    struct {
        const char *path, *says;
    } bad[] = {
        {empty, "is empty"},
        {fifo, "is a named pipe"},
        {sub, "is a directory"},
        {"/dev/zero", "/dev/zero is a character device"},
        {path_of(logs, sizeof(logs), "missing.tsv"), "missing.tsv"},
    };

    path_of(empty, sizeof(empty), "empty.tsv");
    path_of(fifo, sizeof(fifo), "fifo.tsv");
    path_of(sub, sizeof(sub), "sub");
    path_of(good, sizeof(good), "good.tsv");
    path_of(comments, sizeof(comments), "comments.tsv");
    CU_ASSERT_EQUAL_FATAL(tu_write(empty, ""), 0);
    CU_ASSERT_EQUAL_FATAL(tu_write(comments, "# nothing but a comment\n\n"), 0);
    CU_ASSERT_EQUAL_FATAL(tu_small_log(good, 300), 0);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "mkfifo %s && mkdir %s", fifo, sub), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = train_local(bad[i].path, "", &out);
        CU_ASSERT(rc > 0 && rc != 124); /* an error, not a hang cut by timeout */
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, bad[i].path));
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, bad[i].says));
        CU_ASSERT(no_model());
        free(out);
        out = NULL;
    }
    /* --allow-empty lets an empty file through, never a FIFO */
    CU_ASSERT_NOT_EQUAL(train_local(fifo, "--allow-empty", &out), 0);
    free(out);
    /* an empty log alone, or one of comments: 0 samples, nothing saved */
    CU_ASSERT_NOT_EQUAL(train_local(empty, "--allow-empty", &out), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "0 samples"));
    CU_ASSERT(no_model());
    free(out);
    CU_ASSERT_NOT_EQUAL(train_local(comments, "", &out), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "nothing was written"));
    CU_ASSERT(no_model());
    free(out);
    /* an empty file beside a real one: refused, unless allowed */
    snprintf(logs, sizeof(logs), "%s %s", good, empty);
    CU_ASSERT_NOT_EQUAL(train_local(logs, "", &out), 0);
    CU_ASSERT(no_model());
    free(out);
    CU_ASSERT_EQUAL(train_local(logs, "--allow-empty", &out), 0);
    free(out);
    CU_ASSERT_EQUAL(access(path_of(logs, sizeof(logs), "model/META"), F_OK), 0);
}

/* Start a shard on ipc://dir/name.sock over dir/name-data. */
static pid_t shard_start(const char *name, char *ep, size_t eplen, const char *extra)
{
    char log[700];

    snprintf(ep, eplen, "ipc://%s/%s.sock", dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    return tu_spawn(log, "exec %s %s --listen %s --data %s/%s-data %s", psbin, OPTS, ep, dir, name,
                    extra);
}

static void test_handshake(void)
{
    char ep[700], logs[600], o[700];
    char *out;
    pid_t pid = shard_start("hs", ep, sizeof(ep), "");

    CU_ASSERT_FATAL(pid > 0);
    path_of(logs, sizeof(logs), "hs.tsv");
    CU_ASSERT_EQUAL_FATAL(tu_small_log(logs, 200), 0);
    path_of(o, sizeof(o), "hs-worker.txt");
    /* another learning rate: refused, both values named */
    CU_ASSERT_NOT_EQUAL(
        tu_sh(o, BOUND "%s train %s --threads 1 --metrics_file %s/m.jsonl --ps %s --emb_lr 0.1 %s",
              wbin, OPTS, dir, ep, logs),
        0);
    out = tu_slurp(o, NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "this worker has lr 0.1; shard 0 at "));
    free(out);
    CU_ASSERT_NOT_EQUAL(
        tu_sh(o,
              BOUND "%s train %s --threads 1 --metrics_file %s/m.jsonl --ps %s --dense_lr 0.01 %s",
              wbin, OPTS, dir, ep, logs),
        0);
    out = tu_slurp(o, NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "set dense_lr = 0.001 in this worker's [model]"));
    free(out);
    /* another admission: trains (the shard's holds), reported on both sides
     * (after the shard's one-per-second warning limit has passed) */
    usleep(1100 * 1000);
    CU_ASSERT_EQUAL(
        tu_sh(o,
              BOUND
              "%s train %s --threads 1 --metrics_file %s/m.jsonl --ps %s --slot_admit item_id:3 %s",
              wbin, OPTS, dir, ep, logs),
        0);
    out = tu_slurp(o, NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "admit_min 3 here, 1 at the peer"));
    free(out);
    CU_ASSERT_EQUAL(tu_sh(o, BOUND "%s ctl stats %s --ps %s", wbin, OPTS, ep), 0);
    out = tu_slurp(o, NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "hello_policy_diffs"));
    CU_ASSERT_PTR_NULL(out && strstr(out, "hello_policy_diffs            0"));
    free(out);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
    out = tu_slurp(path_of(o, sizeof(o), "hs.log"), NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "admit_min 1 here, 3 at the peer"));
    free(out);
}

static void test_data_dir_layout(void)
{
    char ep[700], o[700];
    char *out;
    pid_t pid = shard_start("lay", ep, sizeof(ep), "");

    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, BOUND "%s ctl stats %s --ps %s > /dev/null", wbin, OPTS, ep), 0);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
    /* another row optimizer, another dense one, another dim: refused at start */
    const char *change[] = {"--emb_optimizer adam", "--dense_optimizer adagrad",
                            "--slot_dims tag:8"};
    const char *says[] = {"made with 'emb_optimizer adagrad'; the configuration gives "
                          "'emb_optimizer adam'",
                          "'dense_optimizer adam'; the configuration gives 'dense_optimizer "
                          "adagrad'",
                          "'slot 2 tag 16'; the configuration gives 'slot 2 tag 8'"};
    for (int i = 0; i < 3; i++) {
        path_of(o, sizeof(o), "lay-bad.txt");
        CU_ASSERT_EQUAL(tu_sh(o, BOUND "%s %s --listen ipc://%s/lay2.sock --data %s/lay-data %s",
                              psbin, OPTS, dir, dir, change[i]),
                        1);
        out = tu_slurp(o, NULL);
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, says[i]));
        free(out);
    }
    /* the same settings still start */
    pid = shard_start("lay", ep, sizeof(ep), "");
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, BOUND "%s ctl stats %s --ps %s > /dev/null", wbin, OPTS, ep), 0);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
}

static int setup(void)
{
    if (tu_mkdtemp(dir, sizeof(dir), "inputs") != 0)
        return -1;
    tu_bin(psbin, sizeof(psbin), "funnel-ps");
    tu_bin(wbin, sizeof(wbin), "funnel-worker");
    return access(psbin, X_OK) == 0 && access(wbin, X_OK) == 0 ? 0 : -1;
}

static int teardown(void)
{
    tu_stop_all();
    tu_rmtree(dir);
    return 0;
}

int test_inputs_register(void)
{
    CU_pSuite s = CU_add_suite("inputs", setup, teardown);

    if (!s ||
        !CU_add_test(s, "empty, FIFO, directory, /dev/zero, missing logs; 0 samples saves nothing",
                     test_bad_logs) ||
        !CU_add_test(s, "handshake: learning rates refused, admission reported", test_handshake) ||
        !CU_add_test(s, "a data directory refuses another optimizer or layout",
                     test_data_dir_layout))
        return -1;
    return 0;
}
