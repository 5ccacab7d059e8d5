/*
 * test_errors.c - errors worded from the user's side, on the real
 * programs: a worker whose dim, model type or towers differ from its
 * shard's reads what it has, what the shard has (index and endpoint) and
 * the key to change; `ctl` against a cluster with dead shards names every
 * one of them within --wait; a second shard on a running shard's ipc://
 * endpoint refuses to start while a dead shard's stale socket file is
 * reused; RocksDB's lock error names the other process and the fix;
 * admission and expiry that changed since the data directory was last
 * served are warned about at start; funnel-ps and train take --init_from
 * and --init-from alike.
 *
 * Every process is stopped and the scratch directory removed by the
 * suite's teardown, also when an assertion failed.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/util.h"

#define OPTS "--towers 8" /* the layout: shards and workers */
/* every command is bounded: a hang is a failure, never a stuck suite */
#define BOUND "timeout -k 5 60 "

static char dir[512], psbin[600], wbin[600];

static char *path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

/* Start a shard on ipc://dir/name.sock over dir/name-data, log in
 * dir/name.log. */
static pid_t shard_start(const char *name, char *ep, size_t eplen, const char *extra)
{
    char log[700];

    snprintf(ep, eplen, "ipc://%s/%s.sock", dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    return tu_spawn(log, "exec %s %s --listen %s --data %s/%s-data %s", psbin, OPTS, ep, dir, name,
                    extra);
}

/* Wait until the shard at ep answers ctl stats (at most ~10 s). */
static int shard_up(const char *ep)
{
    return tu_sh(NULL, BOUND "%s ctl stats %s --ps %s --wait 10 > /dev/null", wbin, OPTS, ep);
}

/* Run a worker train against ep with extra options; its output in *out. */
static int train_remote(const char *ep, const char *extra, char **out)
{
    char logs[700], o[700];
    int rc;

    path_of(logs, sizeof(logs), "train.tsv");
    path_of(o, sizeof(o), "worker.txt");
    rc = tu_sh(
        o,
        BOUND
        "%s train %s --threads 1 --allow_unused_slots --metrics_file %s/m.jsonl --ps %s %s %s",
        wbin, OPTS, dir, ep, extra, logs);
    *out = tu_slurp(o, NULL);
    return rc;
}

static void test_handshake_from_workers_side(void)
{
    char ep[700], want[1024];
    char *out = NULL;
    pid_t pid = shard_start("hs", ep, sizeof(ep), "--emb_dim 8 --model_type esmm");

    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL_FATAL(shard_up(ep), 0);
    /* the model type first: both types and tower counts, the key to set */
    CU_ASSERT_NOT_EQUAL(train_remote(ep, "--emb_dim 16", &out), 0);
    snprintf(want, sizeof(want),
             "this worker has model_type esm2 (4 towers); shard 0 at %s has model_type esmm (2 "
             "towers): set model_type = esmm in this worker's [model]",
             ep);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
    if (out && !strstr(out, want))
        fprintf(stderr, "\n%s\n", out);
    free(out);
    /* then the dim, from this worker's side */
    CU_ASSERT_NOT_EQUAL(train_remote(ep, "--emb_dim 16 --model_type esmm", &out), 0);
    snprintf(want, sizeof(want),
             "slot 'user_id': this worker has dim 16; shard 0 at %s has dim 8: set dim = 8 for "
             "'user_id' in this worker's [model]",
             ep);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
    CU_ASSERT_PTR_NULL(out && strstr(out, "at the peer"));
    free(out);
    /* hidden layers: both lists */
    CU_ASSERT_NOT_EQUAL(train_remote(ep, "--emb_dim 8 --model_type esmm --towers 16,8", &out), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "this worker has towers = 16,8; shard 0 at "));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "has towers = 8: set towers = 8"));
    free(out);
    /* the shard's own refusal names the worker (a worker that skips the
     * probe, e.g. an older one, reads it as "peer: ..."): in its log */
    CU_ASSERT_EQUAL(train_remote(ep, "--emb_dim 8 --model_type esmm", &out), 0);
    if (out && CU_get_number_of_failures() > 0)
        fprintf(stderr, "\n%s\n", out);
    free(out);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
}

static void test_ctl_names_every_dead_shard(void)
{
    char ep[700], o[700];
    char *out;
    pid_t pid = shard_start("live", ep, sizeof(ep), "");

    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL_FATAL(shard_up(ep), 0);
    path_of(o, sizeof(o), "ctl.txt");
    double t0 = clock_now_s();
    /* shard 1 is alive, shards 0 and 2 are not: both named, within --wait */
    CU_ASSERT_NOT_EQUAL(tu_sh(o, BOUND "%s ctl stats %s --ps ipc://%s/dead0,%s,ipc://%s/dead2",
                              wbin, OPTS, dir, ep, dir),
                        0);
    double dt = clock_now_s() - t0;
    CU_ASSERT(dt < 12); /* --wait 5 s, not deadline_s 60 s; generous under load */
    out = tu_slurp(o, NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "2 of 3 shards did not answer within 5 s"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "shard 0 (ipc://"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "/dead0), shard 2 (ipc://"));
    CU_ASSERT_PTR_NULL(out && strstr(out, "shard 1 ("));
    free(out);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
}

static void test_second_shard_on_ipc_endpoint(void)
{
    char ep[700], o[700], sock[700];
    char *out;
    pid_t pid = shard_start("same", ep, sizeof(ep), "");

    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL_FATAL(shard_up(ep), 0);
    /* a second shard (other data) on the same endpoint: refused, exit 1 */
    path_of(o, sizeof(o), "second.txt");
    CU_ASSERT_EQUAL(tu_sh(o, BOUND "%s %s --listen %s --data %s/second-data", psbin, OPTS, ep, dir),
                    1);
    out = tu_slurp(o, NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "another process (a running shard?) is listening"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "give this shard its own --listen endpoint"));
    free(out);
    /* the first one still has its socket and answers */
    CU_ASSERT_EQUAL(shard_up(ep), 0);
    /* a second shard on the first one's data: RocksDB's lock, explained */
    CU_ASSERT_EQUAL(tu_sh(o, BOUND "%s %s --listen ipc://%s/other.sock --data %s/same-data", psbin,
                          OPTS, dir, dir),
                    1);
    out = tu_slurp(o, NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "another process holds the store's lock"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "give this process its own --data directory"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "(RocksDB: IO error: "));
    free(out);
    /* kill -9 leaves the socket file behind: a new shard reuses it */
    CU_ASSERT_EQUAL(tu_stop(pid, 9), -1);
    path_of(sock, sizeof(sock), "same.sock");
    CU_ASSERT_EQUAL(access(sock, F_OK), 0);
    pid = shard_start("same", ep, sizeof(ep), "");
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(shard_up(ep), 0);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
    out = tu_slurp(path_of(o, sizeof(o), "same.log"), NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "removed a stale socket file"));
    free(out);
    /* a path that is not a socket is never deleted by a bind */
    path_of(sock, sizeof(sock), "plain.file");
    CU_ASSERT_EQUAL(tu_write(sock, "keep me\n"), 0);
    CU_ASSERT_EQUAL(
        tu_sh(o, BOUND "%s %s --listen ipc://%s --data %s/plain-data", psbin, OPTS, sock, dir), 1);
    out = tu_slurp(o, NULL);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "exists and is not a socket"));
    free(out);
    CU_ASSERT_EQUAL(access(sock, F_OK), 0);
}

/* 1 if the file at path contains needle. */
static int file_has(const char *path, const char *needle)
{
    char *t = tu_slurp(path, NULL);
    int has = t && strstr(t, needle) != NULL;

    free(t);
    return has;
}

static void test_policy_change_warned(void)
{
    char ep[700], log[700];
    pid_t pid = shard_start("pol", ep, sizeof(ep), "");

    path_of(log, sizeof(log), "pol.log");
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL_FATAL(shard_up(ep), 0);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
    CU_ASSERT(!file_has(log, "CHANGED"));
    CU_ASSERT_EQUAL(tu_write(log, ""), 0);
    /* the next day with other admission and expiry: starts, warns per slot */
    pid = shard_start("pol", ep, sizeof(ep), "--slot_admit item_id:3 --slot_expire user_id:30");
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(shard_up(ep), 0);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
    CU_ASSERT(file_has(log, "ADMISSION CHANGED: data directory "));
    CU_ASSERT(file_has(log, "was last served with admit_min 1 for slot 'item_id'; this start "
                            "gives 3"));
    CU_ASSERT(file_has(log, "start with 'item_id:1' in slot_admit"));
    CU_ASSERT(file_has(log, "EXPIRY CHANGED: "));
    CU_ASSERT(file_has(log, "expire_days 0 for slot 'user_id'; this start gives 30"));
    CU_ASSERT(!file_has(log, "slot 'tag'"));
    /* the same settings again: recorded, so quiet */
    CU_ASSERT_EQUAL(tu_write(log, ""), 0);
    pid = shard_start("pol", ep, sizeof(ep), "--slot_admit item_id:3 --slot_expire user_id:30");
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(shard_up(ep), 0);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
    CU_ASSERT(!file_has(log, "CHANGED"));
}

/* funnel-ps and the worker spell the option alike; both accept either */
static void test_init_from_spelled_alike(void)
{
    char o[700], logs[700], want[800];
    const char *spell[] = {"--init_from", "--init-from"};

    path_of(o, sizeof(o), "init.txt");
    path_of(logs, sizeof(logs), "train.tsv");
    snprintf(want, sizeof(want), "%s/no-model/META", dir);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(tu_sh(o,
                              BOUND "%s %s --listen ipc://%s/init.sock --data %s/init-data %s "
                                    "%s/no-model",
                              psbin, OPTS, dir, dir, spell[i], dir),
                        1);
        CU_ASSERT(file_has(o, want));
        CU_ASSERT(!file_has(o, "unknown"));
        CU_ASSERT_NOT_EQUAL(tu_sh(o, BOUND "%s train %s --threads 1 --model %s/m %s %s/no-model %s",
                                  wbin, OPTS, dir, spell[i], dir, logs),
                            0);
        CU_ASSERT(file_has(o, "/no-model"));
        CU_ASSERT(file_has(o, "No such file or directory"));
        CU_ASSERT(!file_has(o, "unknown"));
    }
    /* help shows one spelling, the key's */
    CU_ASSERT_EQUAL(tu_sh(o, "%s --help", psbin), 0);
    CU_ASSERT(file_has(o, "--init_from "));
    CU_ASSERT(!file_has(o, "--init-from"));
    CU_ASSERT_EQUAL(tu_sh(o, "%s train --help", wbin), 0);
    CU_ASSERT(file_has(o, "--init_from "));
}

static int setup(void)
{
    char logs[700];

    if (tu_mkdtemp(dir, sizeof(dir), "errors") != 0)
        return -1;
    tu_bin(psbin, sizeof(psbin), "funnel-ps");
    tu_bin(wbin, sizeof(wbin), "funnel-worker");
    if (tu_small_log(path_of(logs, sizeof(logs), "train.tsv"), 200) != 0)
        return -1;
    return access(psbin, X_OK) == 0 && access(wbin, X_OK) == 0 ? 0 : -1;
}

static int teardown(void)
{
    tu_stop_all();
    tu_rmtree(dir);
    return 0;
}

int test_errors_register(void)
{
    CU_pSuite s = CU_add_suite("errors", setup, teardown);

    if (!s ||
        !CU_add_test(s, "handshake: model type, towers, dim worded from the worker's side",
                     test_handshake_from_workers_side) ||
        !CU_add_test(s, "ctl names every dead shard within --wait",
                     test_ctl_names_every_dead_shard) ||
        !CU_add_test(s, "a second shard on a live ipc:// endpoint refuses; a stale one is reused",
                     test_second_shard_on_ipc_endpoint) ||
        !CU_add_test(s, "admission and expiry changed since the last start are warned about",
                     test_policy_change_warned) ||
        !CU_add_test(s, "funnel-ps and train take --init_from and --init-from alike",
                     test_init_from_spelled_alike))
        return -1;
    return 0;
}
