/*
 * test_limits.c - what a client may make a shard do, on a real funnel-ps
 * over ipc://: CHECKPOINT writes only under the shard's own
 * checkpoint_root (names, never paths: "..", absolute names, slashes, a
 * symlink out of the root and an existing shard directory are refused,
 * and nothing outside the root, nor anything that existed, is created or
 * removed); `ctl checkpoint --name` lands where the ACK says, and shards
 * with different roots are refused (no META); rows created
 * per request and per shard are bounded (refused with ERROR and counted,
 * existing rows still served, the count survives a restart).
 *
 * Every process is stopped and the scratch directory removed by the
 * suite's teardown, also when an assertion failed.
 */
#include <CUnit/CUnit.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dirs.h"
#include "common/err.h"
#include "proto/msg.h"
#include "proto/ps_client.h"
#include "tests/util.h"

#define OPTS "--towers 8" /* the layout: shards and tools */
#define PS_OPTS OPTS " --flush_interval 3600"
#define DIM 16 /* emb_dim's default: every slot */

static char dir[512], psbin[600], wbin[600];

/* Start a shard on ipc://dir/name.sock over dir/name-data; ep gets the
 * endpoint. Returns the pid or -1. */
static pid_t shard_start(const char *name, char *ep, size_t eplen, const char *extra)
{
    char log[700];

    snprintf(ep, eplen, "ipc://%s/%s.sock", dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    return tu_spawn(log, "exec %s --listen %s --data %s/%s-data %s %s", psbin, ep, dir, name, OPTS,
                    extra);
}

static ps_client_t *client(const char *ep)
{
    char buf[800];
    char *eps[1] = {buf};
    ps_client_t *c = NULL;
    ps_client_opts_t o = {.sender = 3, .timeout_ms = 2000, .deadline_s = 20};
    errbuf_t eb;

    snprintf(buf, sizeof(buf), "%s", ep);
    if (ps_client_open(&c, eps, 1, &o, &eb) != 0) {
        fprintf(stderr, "\n  connect %s: %s\n", ep, eb.msg);
        return NULL;
    }
    return c;
}

/* CHECKPOINT name; ACK's "path" into path (if not NULL). Returns 0 or the
 * error code, with the shard's text in eb. */
static int checkpoint(ps_client_t *c, const char *name, char *path, size_t len, errbuf_t *eb)
{
    msg_t m, rep;
    int rc;

    msg_init(&m, MSG_CHECKPOINT, 0);
    m.u.cmd.day = 1;
    m.u.cmd.text.ptr = name;
    m.u.cmd.text.len = (uint32_t)strlen(name);
    rc = ps_client_call(c, 0, &m, &rep, eb);
    if (rc == 0 && path) {
        path[0] = '\0';
        for (uint32_t i = 0; i < rep.u.kv.n; i++)
            if (rep.u.kv.kv[i].is_str && rep.u.kv.kv[i].name.len == 4 &&
                !memcmp(rep.u.kv.kv[i].name.ptr, "path", 4))
                snprintf(path, len, "%.*s", (int)rep.u.kv.kv[i].str.len, rep.u.kv.kv[i].str.ptr);
    }
    return rc;
}

/* A listing of everything under the given paths (names and sizes). */
static char *tree(const char *paths)
{
    char out[700];

    snprintf(out, sizeof(out), "%s/tree.txt", dir);
    if (tu_sh(NULL, "find %s -printf '%%p %%y %%s\\n' 2>/dev/null | sort > %s", paths, out) < 0)
        return NULL;
    return tu_slurp(out, NULL);
}

static void test_checkpoint_paths(void)
{
    char ep[700], root[600], real[PATH_MAX], got[DIRS_PATH_MAX], watch[2400];
    char p[DIRS_PATH_MAX + 64];
    char longname[200]; /* longer than any name a shard accepts */
    errbuf_t eb;
    pid_t pid;

    snprintf(root, sizeof(root), "%s/root", dir);
    /* things a careless or hostile client could reach for */
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "mkdir -p %s/outside %s/busy/shard-0 %s/x.tmp/shard-0 && "
                                "echo keep > %s/outside/f && echo keep > %s/busy/shard-0/f && "
                                "echo keep > %s/x.tmp/shard-0/f && ln -s %s/outside %s/esc && "
                                "ln -s %s/busy %s/inside",
                                dir, root, root, dir, root, root, dir, root, root, root),
                          0);
    snprintf(p, sizeof(p), "--checkpoint_root %s", root);
    pid = shard_start("ck", ep, sizeof(ep), p);
    CU_ASSERT_FATAL(pid > 0);
    ps_client_t *c = client(ep);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);

    snprintf(watch, sizeof(watch), "%s/root %s/outside %s/x %s/abs /tmp/funnel-limits-x", dir, dir,
             dir, dir);
    char *before = tree(watch);
    CU_ASSERT_PTR_NOT_NULL_FATAL(before);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    snprintf(p, sizeof(p), "%s/abs", dir);
    const char *bad[] = {"../x",   "/tmp/funnel-limits-x",
                         p,        "a/b",
                         ".",      "..",
                         "",       "esc",
                         "inside", "busy",
                         "x.tmp",  ".hidden",
                         "a b",    longname};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = checkpoint(c, bad[i], NULL, 0, &eb);
        if (rc == 0)
            fprintf(stderr, "\n  CHECKPOINT '%s' was accepted\n", bad[i]);
        CU_ASSERT_NOT_EQUAL(rc, 0);
        CU_ASSERT_NOT_EQUAL(rc, ERR_TIMEOUT);
    }
    /* the reasons are told */
    CU_ASSERT_EQUAL(checkpoint(c, "../x", NULL, 0, &eb), ERR_INVAL);
    if (!strstr(eb.msg, "checkpoint_root"))
        fprintf(stderr, "\n  %s\n", eb.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "checkpoint_root"));
    CU_ASSERT_EQUAL(checkpoint(c, "esc", NULL, 0, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "outside checkpoint_root"));
    CU_ASSERT_EQUAL(checkpoint(c, "busy", NULL, 0, &eb), ERR_EXISTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "choose a new name"));
    /* nothing was created, changed or removed: inside the root or out */
    char *after = tree(watch);
    CU_ASSERT_PTR_NOT_NULL_FATAL(after);
    CU_ASSERT_STRING_EQUAL(after, before);
    free(after);
    free(before);

    /* a good name lands under the root, and the ACK says where */
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(root, real));
    CU_ASSERT_EQUAL(checkpoint(c, "day-1.a_b", got, sizeof(got), &eb), 0);
    snprintf(p, sizeof(p), "%s/day-1.a_b", real);
    CU_ASSERT_STRING_EQUAL(got, p);
    snprintf(p, sizeof(p), "%s/day-1.a_b/shard-0/CURRENT", real);
    CU_ASSERT_EQUAL(access(p, F_OK), 0);
    /* no temporary directory is left behind */
    CU_ASSERT_EQUAL(tu_sh(NULL, "test -z \"$(ls -A %s/day-1.a_b | grep -v '^shard-0$')\"", real),
                    0);
    /* the same name again is refused: nothing is overwritten */
    CU_ASSERT_EQUAL(checkpoint(c, "day-1.a_b", NULL, 0, &eb), ERR_EXISTS);
    ps_client_destroy(&c);

    /* the tool names, the shard places; --out is refused with what to do */
    snprintf(p, sizeof(p), "%s/ctl.out", dir);
    CU_ASSERT_EQUAL(tu_sh(p, "%s ctl checkpoint %s --ps %s --name tool --day 2", wbin, OPTS, ep),
                    0);
    char *text = tu_slurp(p, NULL);
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, real));
    free(text);
    snprintf(p, sizeof(p), "%s/tool/META", real);
    CU_ASSERT_EQUAL(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/ctl.out", dir);
    CU_ASSERT_NOT_EQUAL(
        tu_sh(p, "%s ctl checkpoint %s --ps %s --out %s/o --day 2", wbin, OPTS, ep, dir), 0);
    text = tu_slurp(p, NULL);
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "--name"));
    free(text);
    snprintf(p, sizeof(p), "%s/o", dir);
    CU_ASSERT_NOT_EQUAL(access(p, F_OK), 0);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
}

/* Default root: "checkpoints" beside the data directory. */
static void test_checkpoint_default_root(void)
{
    char ep[700], got[DIRS_PATH_MAX], want[PATH_MAX], p[700];
    errbuf_t eb;
    pid_t pid = shard_start("dflt", ep, sizeof(ep), "");

    CU_ASSERT_FATAL(pid > 0);
    ps_client_t *c = client(ep);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(checkpoint(c, "n1", got, sizeof(got), &eb), 0);
    snprintf(p, sizeof(p), "%s/checkpoints", dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(p, want));
    strncat(want, "/n1", sizeof(want) - strlen(want) - 1);
    CU_ASSERT_STRING_EQUAL(got, want);
    ps_client_destroy(&c);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
}

/* Shards of one cluster with different roots: the tool says so and writes
 * no META (the parts are not one checkpoint). */
static void test_checkpoint_split_roots(void)
{
    char ep0[700], ep1[700], o[700], extra[800];
    char *text;
    pid_t p0, p1;

    snprintf(extra, sizeof(extra), "--shard 0 --shards 2 --checkpoint_root %s/r0", dir);
    p0 = shard_start("sp0", ep0, sizeof(ep0), extra);
    snprintf(extra, sizeof(extra), "--shard 1 --shards 2 --checkpoint_root %s/r1", dir);
    p1 = shard_start("sp1", ep1, sizeof(ep1), extra);
    CU_ASSERT_FATAL(p0 > 0 && p1 > 0);
    snprintf(o, sizeof(o), "%s/split.out", dir);
    CU_ASSERT_NOT_EQUAL(
        tu_sh(o, "%s ctl checkpoint %s --ps %s,%s --name s --day 1", wbin, OPTS, ep0, ep1), 0);
    text = tu_slurp(o, NULL);
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "same checkpoint_root"));
    free(text);
    CU_ASSERT_EQUAL(tu_sh(NULL, "test -z \"$(find %s/r0 %s/r1 -name META)\"", dir, dir), 0);
    CU_ASSERT_EQUAL(tu_stop(p0, 15), 0);
    CU_ASSERT_EQUAL(tu_stop(p1, 15), 0);
}

/* ---- rows ---- */

static uint64_t keybuf[64];
static float rowbuf[64 * DIM];

/* PULL (or PUSH of small gradients) of n keys base..base+n-1 of slot 0. */
static int rows_call(ps_client_t *c, int type, uint64_t base, uint32_t n, errbuf_t *eb)
{
    msg_t m, rep;

    for (uint32_t i = 0; i < n; i++)
        keybuf[i] = base + i;
    for (size_t i = 0; i < (size_t)n * DIM; i++)
        rowbuf[i] = 0.01f;
    msg_init(&m, type, 0);
    m.u.rows.nslots = 1;
    m.u.rows.slot[0] = (msg_slot_t){
        0, n, type == MSG_PUSH ? DIM : 0, keybuf, type == MSG_PUSH ? rowbuf : NULL, NULL, NULL};
    return ps_client_call(c, 0, &m, &rep, eb);
}

static int64_t stat_of(ps_client_t *c, const char *name)
{
    msg_t m, rep;
    errbuf_t eb;

    msg_init(&m, MSG_STATS, 0);
    if (ps_client_call(c, 0, &m, &rep, &eb) != 0)
        return -1;
    for (uint32_t i = 0; i < rep.u.kv.n; i++)
        if (rep.u.kv.kv[i].name.len == strlen(name) &&
            !memcmp(rep.u.kv.kv[i].name.ptr, name, strlen(name)))
            return (int64_t)rep.u.kv.kv[i].u64;
    return -1;
}

static void test_row_limits(void)
{
    char ep[700];
    errbuf_t eb;
    pid_t pid = shard_start("rows", ep, sizeof(ep), "--max_rows 50 --max_new_rows 20");

    CU_ASSERT_FATAL(pid > 0);
    ps_client_t *c = client(ep);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    /* 21 new keys in one request: refused, nothing made */
    CU_ASSERT_EQUAL(rows_call(c, MSG_PULL, 1000, 21, &eb), ERR_TOOBIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "max_new_rows"));
    CU_ASSERT_EQUAL(stat_of(c, "rows_created"), 0);
    CU_ASSERT_EQUAL(stat_of(c, "rows_refused"), 1);
    CU_ASSERT_EQUAL(stat_of(c, "errors_TOOBIG"), 1);
    /* 20 + 20 fit; the next 20 would pass max_rows 50 */
    CU_ASSERT_EQUAL(rows_call(c, MSG_PULL, 1000, 20, &eb), 0);
    CU_ASSERT_EQUAL(rows_call(c, MSG_PUSH, 2000, 20, &eb), 0);
    CU_ASSERT_EQUAL(stat_of(c, "rows_total"), 40);
    CU_ASSERT_EQUAL(rows_call(c, MSG_PULL, 3000, 20, &eb), ERR_TOOBIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "max_rows 50"));
    CU_ASSERT_EQUAL(rows_call(c, MSG_PUSH, 3000, 11, &eb), ERR_TOOBIG);
    /* a refused push ends a client (ps_client.h): a worker stops there */
    ps_client_destroy(&c);
    c = client(ep);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(stat_of(c, "rows_refused"), 3);
    CU_ASSERT_EQUAL(stat_of(c, "rows_total"), 40);
    /* existing rows are still served and trained, and 10 more fit */
    CU_ASSERT_EQUAL(rows_call(c, MSG_PULL, 1000, 20, &eb), 0);
    CU_ASSERT_EQUAL(rows_call(c, MSG_PUSH, 1000, 20, &eb), 0);
    CU_ASSERT_EQUAL(rows_call(c, MSG_PULL, 3000, 10, &eb), 0);
    CU_ASSERT_EQUAL(stat_of(c, "rows_total"), 50);
    CU_ASSERT_EQUAL(rows_call(c, MSG_PULL, 4000, 1, &eb), ERR_TOOBIG);
    ps_client_destroy(&c);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);

    /* a restart counts the stored rows: the limit still holds */
    pid = shard_start("rows", ep, sizeof(ep), "--max_rows 50 --max_new_rows 20");
    CU_ASSERT_FATAL(pid > 0);
    c = client(ep);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(stat_of(c, "rows_total"), 50);
    CU_ASSERT_EQUAL(rows_call(c, MSG_PULL, 5000, 1, &eb), ERR_TOOBIG);
    CU_ASSERT_EQUAL(rows_call(c, MSG_PULL, 1000, 20, &eb), 0);
    ps_client_destroy(&c);
    CU_ASSERT_EQUAL(tu_stop(pid, 15), 0);
}

static int setup(void)
{
    if (tu_mkdtemp(dir, sizeof(dir), "limits") != 0)
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

int test_limits_register(void)
{
    CU_pSuite s = CU_add_suite("limits", setup, teardown);

    if (!s ||
        !CU_add_test(s, "CHECKPOINT: names only, under the root, nothing overwritten",
                     test_checkpoint_paths) ||
        !CU_add_test(s, "CHECKPOINT: default root beside the data directory",
                     test_checkpoint_default_root) ||
        !CU_add_test(s, "ctl checkpoint: shards with different roots are refused",
                     test_checkpoint_split_roots) ||
        !CU_add_test(s, "rows created per request and per shard are bounded", test_row_limits))
        return -1;
    return 0;
}
