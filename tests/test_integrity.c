/*
 * test_integrity.c - no poisoned or silently lost tables: a real funnel-ps
 * (over ipc:// and tcp://127.0.0.1) refuses pushes, assignments and dense
 * pushes carrying NaN or infinity and changes nothing; a diverging worker
 * stops naming its batch and pushes nothing of it; damaged shard data
 * directories, checkpoints and model directories (truncated MANIFEST,
 * flipped table-file bytes, cut log, edited META) are refused by funnel-ps,
 * --init_from, predict and funnel-emb with a message naming the path,
 * leaving every file in place.
 *
 * Every process is started with tu_spawn() and stopped in its test (or by
 * tu_stop_all() at exit); every file lives in the suite's scratch
 * directory, removed by teardown.
 */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/optim.h"
#include "proto/codec.h"
#include "proto/msg.h"
#include "table/emb_table.h"
#include "table/store.h"
#include "tests/util.h"
#include "tests/wire.h"

#define OPTS "--towers 16,8 --flush_interval 1"
#define NK 4      /* keys per request */
#define DIM 16    /* emb_dim of slot 0 (default) */
#define NSTATE 16 /* adagrad: one accumulator per float */

static char dir[512], psbin[600], wbin[600], ebin[600];

/* ---- requests over the raw client (tests/wire.h), as an attacker speaks ---- */

static int simple(tw_conn_t *c, int type)
{
    msg_t m, r;

    msg_init(&m, type, 0);
    return tw_call(c, &m, &r) == 0 && r.hdr.type == MSG_ACK ? 0 : -1;
}

/* PULL (creating) the NK keys of slot 0 into v[NK * DIM]. */
static int pull(tw_conn_t *c, const uint64_t *keys, float *v)
{
    msg_t m, r;

    msg_init(&m, MSG_PULL, 0);
    m.u.rows.nslots = 1;
    memset(&m.u.rows.slot[0], 0, sizeof(m.u.rows.slot[0]));
    m.u.rows.slot[0].slot = 0;
    m.u.rows.slot[0].nkeys = NK;
    m.u.rows.slot[0].keys = keys;
    if (tw_call(c, &m, &r) != 0)
        return -1;
    if (r.hdr.type != MSG_PULL_OK || r.u.rows.slot[0].dim != DIM)
        return -1;
    for (int i = 0; i < NK; i++)
        msg_row_get(v + (size_t)i * DIM, r.u.rows.slot[0].rows, (size_t)i, DIM);
    return 0;
}

/* PUSH rows (dim floats each) of slot 0 with flags; the reply's type, its
 * error code in *code. */
static int push(tw_conn_t *c, uint64_t seq, uint32_t flags, const uint64_t *keys, const float *rows,
                uint32_t dim, int *code)
{
    msg_t m, r;

    msg_init(&m, MSG_PUSH, 0);
    m.hdr.sender = 7;
    m.hdr.seq = seq;
    m.u.rows.flags = flags;
    m.u.rows.nslots = 1;
    memset(&m.u.rows.slot[0], 0, sizeof(m.u.rows.slot[0]));
    m.u.rows.slot[0].slot = 0;
    m.u.rows.slot[0].nkeys = NK;
    m.u.rows.slot[0].keys = keys;
    m.u.rows.slot[0].dim = dim;
    m.u.rows.slot[0].rows = rows;
    if (tw_call(c, &m, &r) != 0)
        return -1;
    *code = r.hdr.type == MSG_ERROR ? r.u.error.code : 0;
    return r.hdr.type;
}

static int dense(tw_conn_t *c, int type, uint64_t seq, uint32_t flags, uint64_t cnt, float *v,
                 int *code)
{
    msg_t m, r;

    msg_init(&m, type, 0);
    m.hdr.sender = 7;
    m.hdr.seq = seq;
    m.u.dense.flags = flags;
    m.u.dense.offset = 0;
    m.u.dense.count = cnt;
    m.u.dense.values = type == MSG_PUSH_DENSE ? v : NULL;
    if (tw_call(c, &m, &r) != 0)
        return -1;
    *code = r.hdr.type == MSG_ERROR ? r.u.error.code : 0;
    if (r.hdr.type == MSG_PULL_DENSE_OK) {
        if (r.u.dense.count != cnt)
            return -1;
        memcpy(v, r.u.dense.values, cnt * sizeof(float));
    }
    return r.hdr.type;
}

/* ---- processes and files ---- */

static pid_t shard_start(const char *ep, const char *data, const char *extra, const char *log)
{
    return tu_spawn(log, "exec %s --shard 0 --shards 1 --listen %s --data %s %s %s", psbin, ep,
                    data, OPTS, extra ? extra : "");
}

/* Run funnel-ps in the foreground (it should refuse to start); its exit
 * status, output in log. */
static int shard_run(const char *ep, const char *data, const char *extra, const char *log)
{
    return tu_sh(log, "timeout 30 %s --shard 0 --shards 1 --listen %s --data %s %s %s", psbin, ep,
                 data, OPTS, extra ? extra : "");
}

static int file_has(const char *path, const char *needle)
{
    char *t = tu_slurp(path, NULL);
    int has = t && strstr(t, needle) != NULL;

    if (!has)
        fprintf(stderr, "\n  %s lacks '%s':\n%s\n", path, needle, t ? t : "(unreadable)");
    free(t);
    return has;
}

/* "name size\n" of every file of d, sorted, into a heap string. */
static char *listing(const char *d)
{
    char out[800];

    snprintf(out, sizeof(out), "%s.ls", d);
    if (tu_sh(NULL, "cd %s && for f in $(ls | sort); do echo \"$f $(stat -c %%s $f)\"; done > %s",
              d, out) != 0)
        return NULL;
    return tu_slurp(out, NULL);
}

/* The first file of d whose name ends in suffix, into buf. */
static int find_file(const char *d, const char *suffix, char *buf, size_t len)
{
    DIR *dp = opendir(d);
    struct dirent *e;
    int found = -1;
    size_t sl = strlen(suffix);

    while (dp && found && (e = readdir(dp)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > sl && strcmp(e->d_name + n - sl, suffix) == 0) {
            snprintf(buf, len, "%s/%s", d, e->d_name);
            found = 0;
        }
    }
    if (dp)
        closedir(dp);
    return found;
}

static int setup(void)
{
    tu_bin(psbin, sizeof(psbin), "funnel-ps");
    tu_bin(wbin, sizeof(wbin), "funnel-worker");
    tu_bin(ebin, sizeof(ebin), "funnel-emb");
    return tu_world(dir, sizeof(dir), "integrity", "--train 150000 --test 2000 --seed 5");
}

static int teardown(void)
{
    tu_stop_all();
    tu_rmtree(dir);
    return 0;
}

/* ---- point 3: non-finite values ---- */

static void poison_on(const char *ep, const char *tag)
{
    char data[700], log[700], dump0[700], dump1[700];
    uint64_t keys[NK] = {11, 22, 33, 44};
    float before[NK * DIM], after[NK * DIM], g[NK * DIM], full[NK * (DIM + NSTATE)];
    float *d0 = NULL, *d1 = NULL;
    tw_conn_t c;
    int code = 0;
    pid_t pid;

    snprintf(data, sizeof(data), "%s/%s-data", dir, tag);
    snprintf(log, sizeof(log), "%s/%s.log", dir, tag);
    snprintf(dump0, sizeof(dump0), "%s/%s-dump0", dir, tag);
    snprintf(dump1, sizeof(dump1), "%s/%s-dump1", dir, tag);
    pid = shard_start(ep, data, NULL, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL_FATAL(tw_open(&c, ep, NULL, NULL), 0);
    int64_t nd = tw_stat(&c, "dense_floats");
    CU_ASSERT_FATAL(nd > 0);
    d0 = calloc((size_t)nd, sizeof(float));
    d1 = calloc((size_t)nd, sizeof(float));
    CU_ASSERT_FATAL(d0 && d1);
    for (int64_t i = 0; i < nd; i++)
        d0[i] = 0.01f * (float)(i % 7);
    CU_ASSERT_EQUAL(dense(&c, MSG_PUSH_DENSE, 1, MSG_F_ASSIGN, (uint64_t)nd, d0, &code), MSG_ACK);
    CU_ASSERT_EQUAL(pull(&c, keys, before), 0);
    for (int i = 0; i < NK * DIM; i++)
        g[i] = 0.1f;
    CU_ASSERT_EQUAL(push(&c, 2, 0, keys, g, DIM, &code), MSG_ACK); /* a real update */
    CU_ASSERT_EQUAL(pull(&c, keys, before), 0);
    CU_ASSERT_EQUAL(simple(&c, MSG_FLUSH), 0);
    CU_ASSERT_EQUAL(tu_sh(dump0, "%s dump %s", ebin, data), 0);

    /* a NaN gradient in the last row, after three good ones */
    g[NK * DIM - 1] = NAN;
    CU_ASSERT_EQUAL(push(&c, 3, 0, keys, g, DIM, &code), MSG_ERROR);
    CU_ASSERT_EQUAL(code, ERR_REJECTED);
    /* an assignment with an infinite optimizer state */
    for (int i = 0; i < NK * (DIM + NSTATE); i++)
        full[i] = 0.5f;
    full[DIM + 3] = INFINITY;
    CU_ASSERT_EQUAL(push(&c, 4, MSG_F_ASSIGN | MSG_F_STATE, keys, full, DIM + NSTATE, &code),
                    MSG_ERROR);
    CU_ASSERT_EQUAL(code, ERR_REJECTED);
    /* an assignment of values, -inf */
    full[5] = -INFINITY;
    CU_ASSERT_EQUAL(push(&c, 5, MSG_F_ASSIGN, keys, full, DIM, &code), MSG_ERROR);
    /* dense: a NaN gradient and an infinite assignment */
    for (int64_t i = 0; i < nd; i++)
        d1[i] = 0.001f;
    d1[nd / 2] = NAN;
    CU_ASSERT_EQUAL(dense(&c, MSG_PUSH_DENSE, 6, 0, (uint64_t)nd, d1, &code), MSG_ERROR);
    CU_ASSERT_EQUAL(code, ERR_REJECTED);
    d1[nd / 2] = INFINITY;
    CU_ASSERT_EQUAL(dense(&c, MSG_PUSH_DENSE, 7, MSG_F_ASSIGN, (uint64_t)nd, d1, &code), MSG_ERROR);
    CU_ASSERT_EQUAL(tw_stat(&c, "nonfinite_pushes"), 5);
    CU_ASSERT_EQUAL(tw_stat(&c, "errors_REJECTED"), 5);

    /* nothing changed: rows, dense range, and the files after a flush */
    CU_ASSERT_EQUAL(pull(&c, keys, after), 0);
    CU_ASSERT_EQUAL(memcmp(before, after, sizeof(before)), 0);
    CU_ASSERT_EQUAL(dense(&c, MSG_PULL_DENSE, 0, 0, (uint64_t)nd, d1, &code), MSG_PULL_DENSE_OK);
    CU_ASSERT_EQUAL(memcmp(d0, d1, (size_t)nd * sizeof(float)), 0);
    CU_ASSERT_EQUAL(simple(&c, MSG_FLUSH), 0);
    CU_ASSERT_EQUAL(tu_sh(dump1, "%s dump %s", ebin, data), 0);
    char *a = tu_slurp(dump0, NULL), *b = tu_slurp(dump1, NULL);
    CU_ASSERT(a && b && strcmp(a, b) == 0);
    free(a);
    free(b);
    /* the good pushes still work, and the warning was logged */
    g[NK * DIM - 1] = 0.1f;
    CU_ASSERT_EQUAL(push(&c, 8, 0, keys, g, DIM, &code), MSG_ACK);
    tw_close(&c);
    CU_ASSERT_EQUAL(tu_stop(pid, SIGTERM), 0);
    CU_ASSERT(file_has(log, "not finite"));
    free(d0);
    free(d1);
}

static void test_nonfinite_refused_ipc(void)
{
    char ep[700];

    snprintf(ep, sizeof(ep), "ipc://%s/poison.sock", dir);
    poison_on(ep, "ipc");
}

static void test_nonfinite_refused_tcp(void)
{
    char ep[64];

    int port = tu_free_port();

    CU_ASSERT_FATAL(port > 0);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", port);
    poison_on(ep, "tcp");
}

/* A copy of the training log with 640 lines of absurd feature weights in
 * its middle (from line 2001): one key repeated 64 times with weight 3e38
 * in slot tag. Pooling sums a slot's tokens in order, so with embeddings
 * drawn at std 0.1 (DIVERGE_OPT) a component of that sum passes FLT_MAX
 * on the first poisoned line, whatever GEMM kernel runs next: the first
 * poisoned batch (32, lines 1985-2048) has non-finite gradients. (Eight
 * distinct keys at std 0.01 overflowed only inside the first layer's GEMM,
 * where OpenBLAS's Haswell kernel did and its AVX-512 kernel did not.) */
#define DIVERGE_OPT "--dense_lr 100 --emb_init_std 0.1"
static void diverging_log(char *path, size_t len)
{
    char poison[64 * 12 + 1] = "";

    for (int k = 0; k < 64; k++)
        strcat(poison, " tag:x1:3e38");
    snprintf(path, len, "%s/diverge.tsv", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "head -2000 %s/data/train.tsv > %s && head -640 %s/data/train.tsv "
                                "| sed 's/$/%s/' >> %s && head -1000 %s/data/train.tsv >> %s",
                                dir, path, dir, poison, path, dir, path),
                          0);
}

static void test_diverging_worker_stops(void)
{
    char log[700], in[700], out[700], ep[700], data[700], psl[700], dump[700];
    struct stat st;
    pid_t pid;

    diverging_log(in, sizeof(in));
    /* in process: exits 1 naming the batch and its lines, saves nothing */
    snprintf(log, sizeof(log), "%s/diverge-local.log", dir);
    snprintf(out, sizeof(out), "%s/diverge-model", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s train --towers 16,8 " DIVERGE_OPT " --batch_size 64 --model %s %s",
                          wbin, out, in),
                    1);
    CU_ASSERT(file_has(log, "batch 32 (") && file_has(log, "diverge.tsv lines 1985-2048") &&
              file_has(log, "lower the learning rates") && file_has(log, "nothing of this batch"));
    CU_ASSERT_NOT_EQUAL(stat(out, &st), 0);

    /* on a cluster: the worker exits 1, the shard's rows stay finite */
    snprintf(ep, sizeof(ep), "ipc://%s/div.sock", dir);
    snprintf(data, sizeof(data), "%s/div-data", dir);
    snprintf(psl, sizeof(psl), "%s/div-ps.log", dir);
    snprintf(log, sizeof(log), "%s/diverge-cluster.log", dir);
    snprintf(dump, sizeof(dump), "%s/div-dump", dir);
    pid = shard_start(ep, data, DIVERGE_OPT, psl); /* the shard applies the updates */
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s train --towers 16,8 " DIVERGE_OPT " --batch_size 64 --ps %s "
                          "--metrics_file %s/div-metrics.jsonl %s",
                          wbin, ep, dir, in),
                    1);
    CU_ASSERT(file_has(log, "is not finite") && file_has(log, "lower the learning rates"));
    CU_ASSERT_EQUAL(tu_stop(pid, SIGTERM), 0);
    CU_ASSERT_EQUAL(tu_sh(dump, "%s dump %s", ebin, data), 0);
    char *t = tu_slurp(dump, NULL);
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT(strlen(t) > 1000);
    CU_ASSERT(!strstr(t, "nan") && !strstr(t, "inf"));
    free(t);
}

/* ---- point 4: corruption ---- */

static char good[700]; /* a shard data directory with rows in table files and the log */

/* Train a shard for real, once; its directory is copied by each case. */
static void make_good_shard(void)
{
    char ep[700], log[700];
    pid_t pid;

    if (good[0])
        return;
    snprintf(good, sizeof(good), "%s/good-data", dir);
    snprintf(ep, sizeof(ep), "ipc://%s/good.sock", dir);
    snprintf(log, sizeof(log), "%s/good.log", dir);
    pid = shard_start(ep, good, NULL, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_FATAL(pid > 0);
    snprintf(log, sizeof(log), "%s/good-train.log", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(log,
                                "%s train --towers 16,8 --ps %s --metrics_file %s/good.jsonl "
                                "%s/data/train.tsv",
                                wbin, ep, dir, dir),
                          0);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(log, "%s ctl checkpoint --towers 16,8 --ps %s --name ckpt", wbin, ep), 0);
    CU_ASSERT_EQUAL(tu_stop(pid, SIGTERM), 0);
}

/* Copy the good shard to dir/name, damage it with the shell command
 * `damage` (run inside the copy), start funnel-ps on it: it must exit
 * non-zero naming the directory and leave the files as they were. */
static void refused_shard(const char *name, const char *damage, const char *needle)
{
    char copy[700], ep[700], log[700];

    make_good_shard();
    snprintf(copy, sizeof(copy), "%s/%s", dir, name);
    snprintf(ep, sizeof(ep), "ipc://%s/%s.sock", dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "cp -a %s %s && cd %s && %s", good, copy, copy, damage), 0);
    char *before = listing(copy);
    int rc = shard_run(ep, copy, NULL, log);
    CU_ASSERT(rc != 0 && rc != 124 && rc != -1);
    CU_ASSERT(file_has(log, copy) && file_has(log, needle) && file_has(log, "left as it is"));
    char *after = listing(copy);
    CU_ASSERT(before && after && strcmp(before, after) == 0);
    free(before);
    free(after);
}

static void test_truncated_manifest(void)
{
    refused_shard("cut-manifest", "truncate -s 60 MANIFEST-*", "rows of slot");
}

static void test_flipped_table_file(void)
{
    /* four bytes in the middle of the first table file */
    refused_shard("flip-sst",
                  "f=$(ls *.sst | head -1) && printf '\\125\\252\\125\\252' | dd of=$f bs=1 "
                  "seek=$(( $(stat -c %s $f) / 2 )) conv=notrunc 2>/dev/null",
                  "Corruption");
}

static void test_cut_log(void)
{
    refused_shard("cut-log",
                  "f=$(ls -S *.log | head -1) && truncate -s $(( $(stat -c %s $f) / 2 )) $f",
                  "Corruption");
}

static void test_init_from_damaged_checkpoint(void)
{
    char ck[700], data[700], ep[700], log[700];

    make_good_shard();
    snprintf(ck, sizeof(ck), "%s/ckpt-cut", dir);
    snprintf(data, sizeof(data), "%s/from-cut", dir);
    snprintf(ep, sizeof(ep), "ipc://%s/from-cut.sock", dir);
    snprintf(log, sizeof(log), "%s/from-cut.log", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(NULL, "cp -a %s/checkpoints/ckpt %s && truncate -s 60 %s/shard-0/MANIFEST-*", dir, ck,
              ck),
        0);
    char *before = listing(ck);
    char extra[800];
    snprintf(extra, sizeof(extra), "--init_from %s", ck);
    int rc = shard_run(ep, data, extra, log);
    CU_ASSERT(rc != 0 && rc != 124 && rc != -1);
    CU_ASSERT(file_has(log, "from-cut") && file_has(log, "left as it is"));
    char *after = listing(ck);
    CU_ASSERT(before && after && strcmp(before, after) == 0);
    free(before);
    free(after);
    /* the intact checkpoint restores */
    snprintf(data, sizeof(data), "%s/from-good", dir);
    snprintf(extra, sizeof(extra), "--init_from %s/checkpoints/ckpt", dir);
    snprintf(log, sizeof(log), "%s/from-good.log", dir);
    snprintf(ep, sizeof(ep), "ipc://%s/from-good.sock", dir);
    pid_t pid = shard_start(ep, data, extra, log);
    tw_conn_t c;
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL_FATAL(tw_open(&c, ep, NULL, NULL), 0);
    CU_ASSERT(tw_stat(&c, "requests") >= 0);
    tw_close(&c);
    CU_ASSERT_EQUAL(tu_stop(pid, SIGTERM), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "%s stats %s | grep -q 'rows on disk: [1-9]'", ebin, data), 0);
}

static void test_model_dir(void)
{
    char m[700], log[700], p0[700], p1[700], lf[1400], rows[700];

    snprintf(m, sizeof(m), "%s/model", dir);
    snprintf(rows, sizeof(rows), "%s/model/shard-0", dir);
    snprintf(log, sizeof(log), "%s/model.log", dir);
    snprintf(p0, sizeof(p0), "%s/pred0.tsv", dir);
    snprintf(p1, sizeof(p1), "%s/pred1.tsv", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(log, "%s train --towers 16,8 --model %s %s/data/train.tsv", wbin, m, dir), 0);
    CU_ASSERT_EQUAL_FATAL(tu_sh(log,
                                "%s predict --towers 16,8 --model %s --in %s/data/test.tsv "
                                "--out %s",
                                wbin, m, dir, p0),
                          0);
    /* the rows are in table files: cutting the log to nothing changes no
     * prediction (before, the log held them all) */
    CU_ASSERT_EQUAL_FATAL(find_file(rows, ".log", lf, sizeof(lf)), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "truncate -s 0 %s", lf), 0);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s predict --towers 16,8 --model %s --in %s/data/test.tsv "
                          "--out %s",
                          wbin, m, dir, p1),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s %s", p0, p1), 0);

    /* a flipped table file: predict and funnel-emb refuse, naming it */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cp -a %s %s.flip && cd %s.flip/shard-0 && f=$(ls *.sst | head "
                          "-1) && printf '\\125\\252\\125\\252' | dd of=$f bs=1 seek=$(( "
                          "$(stat -c %%s $f) / 2 )) conv=notrunc 2>/dev/null",
                          m, m, m),
                    0);
    snprintf(log, sizeof(log), "%s/model-flip.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s predict --towers 16,8 --model %s.flip --in %s/data/test.tsv "
                          "--out %s/pred2.tsv",
                          wbin, m, dir, dir),
                    1);
    CU_ASSERT(file_has(log, "model.flip/shard-0") && file_has(log, "Corruption"));
    CU_ASSERT_EQUAL(tu_sh(log, "%s dump %s.flip", ebin, m), 1);
    CU_ASSERT(file_has(log, "model.flip/shard-0") && file_has(log, "Corruption"));

    /* an edited META line (the day, outside the layout digest) and an
     * unreadable one */
    CU_ASSERT_EQUAL(
        tu_sh(NULL, "cp -a %s %s.meta && sed -i 's/^day 0$/day 9/' %s.meta/META", m, m, m), 0);
    snprintf(log, sizeof(log), "%s/model-meta.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s predict --towers 16,8 --model %s.meta --in %s/data/test.tsv "
                          "--out %s/pred3.tsv",
                          wbin, m, dir, dir),
                    1);
    CU_ASSERT(file_has(log, "model.meta/META") && file_has(log, "checksum"));
    /* a layout line changed, its checksum line dropped: the digest says so */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cp -a %s %s.dig && sed -i -e '/^check /d' -e 's/^slot 7 tag 16$/slot 7 "
                          "tag 8/' %s.dig/META && grep -q 'slot 7 tag 8' %s.dig/META",
                          m, m, m, m),
                    0);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s predict --towers 16,8 --model %s.dig --in %s/data/test.tsv "
                          "--out %s/pred4.tsv",
                          wbin, m, dir, dir),
                    1);
    CU_ASSERT(file_has(log, "model.dig/META") && file_has(log, "digest"));
    CU_ASSERT_EQUAL(tu_sh(NULL, "sed -i 's/^day 9$/day zero/' %s.meta/META", m), 0);
    CU_ASSERT_EQUAL(tu_sh(log, "%s stats %s.meta", ebin, m), 1);
    CU_ASSERT(file_has(log, "model.meta/META:") && file_has(log, "cannot parse 'day zero'"));
}

/* The row count record equals the stored rows after every batch: random
 * creation, updates, evictions (a small memory budget), reloads and
 * expiry over several days; a row deleted behind the table's back is
 * then caught. */
static void test_row_count_record(void)
{
    model_spec_t ms;
    store_t *st = NULL;
    emb_table_t *t = NULL;
    errbuf_t eb = {{0}};
    uint64_t rng = 12345, keys[64];
    float buf[64 * 4];
    void *v = NULL;
    size_t vl = 0;

    memset(&ms, 0, sizeof(ms));
    ms.nslots = 2;
    for (int i = 0; i < 2; i++) {
        snprintf(ms.slot[i].name, sizeof(ms.slot[i].name), "s%d", i);
        ms.slot[i].dim = 4;
        ms.slot[i].admit_min = 1;
        ms.slot[i].expire_days = i == 0 ? 2 : 0;
    }
    ms.emb_opt.kind = OPTIM_SGD;
    ms.emb_opt.lr = 0.1f;
    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 24 << 10, &eb), 0); /* ~600 rows */
    for (int day = 1; day <= 6; day++) {
        emb_table_set_day(t, day);
        for (int req = 0; req < 40; req++) {
            int slot = req & 1;
            for (int i = 0; i < 64; i++) {
                rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                keys[i] = (rng >> 33) % 3000 + (uint64_t)day * 400 + (uint64_t)i * 100000;
            }
            CU_ASSERT_EQUAL(emb_table_pull(t, slot, keys, 64, buf, EMB_PULL_CREATE, &eb), 0);
            for (int i = 0; i < 64 * 4; i++)
                buf[i] = 0.01f;
            CU_ASSERT_EQUAL(emb_table_push(t, slot, keys, 64, buf, &eb), 0);
        }
        CU_ASSERT_EQUAL(emb_table_flush(t, NULL, &eb), 0);
        CU_ASSERT_EQUAL(store_get(st, EMB_ROWS_KEY, sizeof(EMB_ROWS_KEY) - 1, &v, &vl, &eb), 0);
        free(v);
        v = NULL;
        CU_ASSERT_EQUAL(emb_table_check_store(st, &eb), 0);
        if (day >= 4) { /* rows last seen on day 1 expire on day 4 */
            uint64_t deleted = 0;
            CU_ASSERT_EQUAL(emb_table_expire(t, day, &deleted, &eb), 0);
            CU_ASSERT(deleted > 0);
            CU_ASSERT_EQUAL(emb_table_check_store(st, &eb), 0);
        }
    }
    emb_table_stats_t ts;
    emb_table_stats(t, &ts);
    CU_ASSERT(ts.evicted > 0 && ts.loaded > 0);
    emb_table_destroy(&t);
    /* a row removed behind the table's back */
    unsigned char k[EMB_KEY_LEN];
    const void *kk, *vv;
    size_t kl, vvl;
    store_iter_t *it = store_iter_new(st, "r", 1);
    CU_ASSERT_FATAL(it && store_iter_next(st, it, &kk, &kl, &vv, &vvl));
    memcpy(k, kk, EMB_KEY_LEN);
    store_iter_destroy(st, &it);
    store_op_t del = {k, EMB_KEY_LEN, NULL, 0};
    CU_ASSERT_EQUAL(store_write(st, &del, 1, 0, &eb), 0);
    CU_ASSERT_EQUAL(emb_table_check_store(st, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "but the last write recorded"));
    store_close(&st);
}

int test_integrity_register(void)
{
    CU_pSuite s = CU_add_suite("integrity", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "row count record = stored rows through evictions, reloads, expiry",
                test_row_count_record);
    CU_add_test(s, "NaN/Inf push, assign, dense push refused over ipc://; nothing changes",
                test_nonfinite_refused_ipc);
    CU_add_test(s, "NaN/Inf push, assign, dense push refused over tcp://127.0.0.1",
                test_nonfinite_refused_tcp);
    CU_add_test(s, "a diverging worker stops naming its batch; the shard stays finite",
                test_diverging_worker_stops);
    CU_add_test(s, "truncated MANIFEST: funnel-ps refuses, no file deleted",
                test_truncated_manifest);
    CU_add_test(s, "flipped bytes in a table file: funnel-ps refuses", test_flipped_table_file);
    CU_add_test(s, "cut log: funnel-ps refuses", test_cut_log);
    CU_add_test(s, "--init_from a checkpoint with a truncated MANIFEST is refused",
                test_init_from_damaged_checkpoint);
    CU_add_test(s, "model dir: rows in table files; flipped bytes and edited META refused",
                test_model_dir);
    return CU_get_error();
}
