/*
 * test_scale.c - 32 workers against 2 shards, on real processes (ipc://
 * endpoints in the test's scratch directory) and a small funnel-gen log:
 * every worker finishes, their summaries add up to the log (each sample
 * trained once), each shard heard from all 32 senders and reports no
 * errors and no lost pushes, and predict and eval run against the
 * cluster. Bounded: every wait has a limit; every process
 * is stopped in the test or by the teardown, also on failure.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/util.h"

#define NW 32
#define LINES 64000 /* 2000 per worker: 4 batches each */
#define MODEL "--towers 32,16"
#define RUN_LIMIT_S 300

static char dir[512], bin[700], eps[1700];
static pid_t ps[2], w[NW];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void)
{
    char gen[600];

    if (tu_mkdtemp(dir, sizeof(dir), "scale") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    return tu_sh(NULL, "%s --out %s/w --train %d --test 20000 --seed 3 > %s/gen.log 2>&1", gen, dir,
                 LINES, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    tu_stop_all();
    if (CU_get_number_of_failures() > 0)
        fprintf(stderr, "\n  scale suite: logs kept in %s\n", dir);
    else
        tu_rmtree(dir);
    return 0;
}

/* Exit status of worker r (its .rc file), or -1 while it runs. */
static int rc_of(int r)
{
    char path[800];
    char *t;
    int rc = -1;

    snprintf(path, sizeof(path), "%s/w%d.rc", dir, r);
    t = tu_slurp(path, NULL);
    if (t && t[0] >= '0' && t[0] <= '9')
        rc = atoi(t);
    free(t);
    return rc;
}

/* X + Y of worker r's "trained X samples ...; Y already done", or -1. */
static long long trained(int r)
{
    char path[800];
    char *t, *p;
    unsigned long long x, y;
    long long v = -1;

    snprintf(path, sizeof(path), "%s/worker%d.log", dir, r);
    t = tu_slurp(path, NULL);
    p = t ? strstr(t, "INFO trained ") : NULL;
    if (p && sscanf(p, "INFO trained %llu samples", &x) == 1 &&
        (p = strstr(p, "samples/s); ")) != NULL &&
        sscanf(p, "samples/s); %llu already done", &y) == 1)
        v = (long long)(x + y);
    free(t);
    return v;
}

/* Shard i's stats (ctl stats --json): counter name, and *senders the
 * "seq_" entries (one per sender that pushed). */
static long long stat_of(int i, const char *name, int *senders)
{
    char out[800], ep[800], pat[128];
    char *json, *p;
    long long v = -1;

    snprintf(ep, sizeof(ep), "ipc://%s/ps%d.sock", dir, i);
    snprintf(out, sizeof(out), "%s/stats%d.json", dir, i);
    if (tu_sh(NULL, "%s/funnel-worker ctl stats --ps %s --json > %s 2>/dev/null", bin, ep, out) !=
        0)
        return -1;
    json = tu_slurp(out, NULL);
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    p = json ? strstr(json, pat) : NULL;
    if (p)
        v = strtoll(p + strlen(pat), NULL, 10);
    if (senders) {
        *senders = 0;
        for (p = json; p && (p = strstr(p, "\"seq_")) != NULL; p++)
            (*senders)++;
    }
    free(json);
    return v;
}

static void test_32_workers(void)
{
    char log[800], pred[800];
    long long total = 0;
    double t0;
    int senders[2], bad = 0;

    snprintf(eps, sizeof(eps), "ipc://%s/ps0.sock,ipc://%s/ps1.sock", dir, dir);
    for (int i = 0; i < 2; i++) {
        snprintf(log, sizeof(log), "%s/ps%d.log", dir, i);
        ps[i] = tu_spawn(log,
                         "exec %s/funnel-ps --shard %d --shards 2 --listen ipc://%s/ps%d.sock "
                         "--data %s/ps%d %s",
                         bin, i, dir, i, dir, i, MODEL);
        CU_ASSERT_FATAL(ps[i] > 0);
    }
    for (int r = 0; r < NW; r++) {
        snprintf(log, sizeof(log), "%s/worker%d.log", dir, r);
        w[r] = tu_spawn(log,
                        "%s/funnel-worker train --ps %s --rank %d --workers %d --threads 1 "
                        "--progress off --deadline_s 240 --metrics_file %s/metrics%d.jsonl %s "
                        "%s/w/train.tsv; echo $? > %s/w%d.rc",
                        bin, eps, r, NW, dir, r, MODEL, dir, dir, r);
        CU_ASSERT_FATAL(w[r] > 0);
    }
    t0 = clock_now_s();
    for (int r = 0; r < NW; r++) {
        int rc;
        while ((rc = rc_of(r)) < 0 && clock_now_s() - t0 < RUN_LIMIT_S)
            sleep_ms(100);
        tu_stop(w[r], rc < 0 ? SIGKILL : SIGTERM);
        if (rc != 0) {
            fprintf(stderr, "\n  worker %d: status %d\n", r, rc);
            bad++;
        }
        total += trained(r);
    }
    CU_ASSERT_EQUAL(bad, 0);
    fprintf(stderr, "\n  32 workers, 2 shards: %lld samples of %d in %.1f s", total, LINES,
            clock_now_s() - t0);
    CU_ASSERT_EQUAL(total, LINES);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT(stat_of(i, "pushes", &senders[i]) >= NW);
        CU_ASSERT(senders[i] >= NW);
        CU_ASSERT_EQUAL(stat_of(i, "errors", NULL), 0);
        CU_ASSERT_EQUAL(stat_of(i, "lost_pushes", NULL), 0);
    }
    fprintf(stderr, "; senders seen by the shards: %d, %d\n", senders[0], senders[1]);
    snprintf(pred, sizeof(pred), "%s/pred.tsv", dir);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "%s/funnel-worker predict %s --ps %s --in %s/w/test.tsv --out %s > "
                          "%s.log 2>&1 && %s/funnel-worker eval --pred %s --log %s/w/test.tsv > "
                          "%s/eval.txt 2>&1",
                          bin, MODEL, eps, dir, pred, pred, bin, pred, dir, dir),
                    0);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(tu_stop(ps[i], SIGTERM), 0);
        ps[i] = 0;
    }
}

int test_scale_register(void)
{
    CU_pSuite s = CU_add_suite("scale", setup, teardown);

    if (!s)
        return CU_get_error();
    if (!CU_add_test(s, "32 workers against 2 shards", test_32_workers))
        return CU_get_error();
    return CUE_SUCCESS;
}
