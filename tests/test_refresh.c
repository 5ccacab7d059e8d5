/*
 * test_refresh.c - the daily refresh on a 3-day synthetic world, with the
 * real programs: day 2 trained on top of day 1's checkpoint beats a cold
 * start on day 2's test; rows unseen past the expiry are gone from day 3's
 * checkpoint and funnel-emb's diff and stats say so; a checkpoint restored
 * into a new cluster predicts exactly as the cluster it was taken from.
 * With --ps the refresh runs against shards started here and its
 * exports equal the self-started ones byte for byte.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/util.h"

#define OPTS "--towers 64,32 --expire_days 1"

static char dir[512], bin[600];

static int setup(void)
{
    char gen[600];

    if (tu_mkdtemp(dir, sizeof(dir), "refresh") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    return tu_sh(NULL,
                 "%s --out %s/w --days 3 --train 150000 --test 40000 --seed 5 > %s/gen.log 2>&1",
                 gen, dir, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

/* daily-refresh for day d (prev: checkpoint or NULL) into dir/name. */
static int refresh(int d, const char *prev, const char *name)
{
    char out[700], prevarg[700] = "";

    if (prev)
        snprintf(prevarg, sizeof(prevarg), "--prev %s/%s", dir, prev);
    snprintf(out, sizeof(out), "%s/%s.log", dir, name);
    return tu_sh(
        out,
        "scripts/daily-refresh.sh --bin %s --day %d %s --out %s/%s --worker-opt '%s' "
        "--ps-opt '%s' --conf conf/funnel.conf --export-dir %s/exp-%s %s/w/day%d/train.tsv",
        bin, d, prevarg, dir, name, OPTS, OPTS, dir, name, dir, d);
}

/* Start 2 shards from checkpoint ck, predict day d's test into pred, stop. */
static int predict_from(const char *ck, int d, const char *pred)
{
    char ep[2][700], log[700];
    pid_t pid[2];
    int rc;

    for (int i = 0; i < 2; i++) {
        snprintf(ep[i], sizeof(ep[i]), "ipc://%s/%s-p%d.sock", dir, ck, i);
        snprintf(log, sizeof(log), "%s/%s-ps%d.log", dir, ck, i);
        pid[i] = tu_spawn(log,
                          "exec %s/funnel-ps --shard %d --shards 2 --listen %s --data %s/%s-data%d "
                          "--init_from %s/%s %s",
                          bin, i, ep[i], dir, ck, i, dir, ck, OPTS);
    }
    snprintf(log, sizeof(log), "%s/%s-predict.log", dir, ck);
    rc = tu_sh(log, "%s/funnel-worker predict %s --ps %s,%s --in %s/w/day%d/test.tsv --out %s/%s",
               bin, OPTS, ep[0], ep[1], dir, d, dir, pred);
    for (int i = 0; i < 2; i++)
        tu_stop(pid[i], 15);
    return rc;
}

static double auc_of(const char *pred, int d, const char *task)
{
    char out[700], pat[64];
    char *json;
    double v = NAN;

    snprintf(out, sizeof(out), "%s/%s.json", dir, pred);
    if (tu_sh(NULL,
              "%s/funnel-worker eval --pred %s/%s --log %s/w/day%d/test.tsv --json > %s "
              "2>/dev/null",
              bin, dir, pred, dir, d, out) != 0)
        return NAN;
    json = tu_slurp(out, NULL);
    snprintf(pat, sizeof(pat), "\"%s\":{", task);
    char *t = json ? strstr(json, pat) : NULL;
    char *a = t ? strstr(t, "\"auc\":") : NULL;
    if (a)
        v = strtod(a + 6, NULL);
    free(json);
    return v;
}

static void test_three_days(void)
{
    char cmd[2000], out[700];
    char *text;

    CU_ASSERT_EQUAL_FATAL(refresh(1, NULL, "ck1"), 0);
    CU_ASSERT_EQUAL_FATAL(refresh(2, "ck1", "ck2"), 0);
    CU_ASSERT_EQUAL_FATAL(refresh(2, NULL, "ck2cold"), 0);
    CU_ASSERT_EQUAL_FATAL(refresh(3, "ck2", "ck3"), 0);

    /* the day-3 delta is exactly what changed: yesterday's full export plus
     * today's delta is today's full export, byte for byte */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "%s/funnel-emb apply %s/exp-ck2/full-day2.emb "
                          "%s/exp-ck3/delta-day3.emb --out %s/rebuilt3.emb > /dev/null",
                          bin, dir, dir, dir),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s/rebuilt3.emb %s/exp-ck3/full-day3.emb", dir, dir), 0);
    /* and it carries tombstones for the rows expired on day 3 */
    snprintf(out, sizeof(out), "%s/delta3.tsv", dir);
    CU_ASSERT_EQUAL(
        tu_sh(NULL, "%s/funnel-emb export-dump %s/exp-ck3/delta-day3.emb > %s", bin, dir, out), 0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "delete"));
    free(text);

    /* warm start beats a cold start on day 2's test */
    CU_ASSERT_EQUAL_FATAL(predict_from("ck2", 2, "warm.tsv"), 0);
    CU_ASSERT_EQUAL_FATAL(predict_from("ck2cold", 2, "cold.tsv"), 0);
    double warm = auc_of("warm.tsv", 2, "ctr"), cold = auc_of("cold.tsv", 2, "ctr");
    fprintf(stderr, "\n  day-2 CTR AUC: warm %.4f, cold %.4f\n", warm, cold);
    CU_ASSERT(warm > cold + 0.005);
    double wc = auc_of("warm.tsv", 2, "ctcvr"), cc = auc_of("cold.tsv", 2, "ctcvr");
    fprintf(stderr, "  day-2 CTCVR AUC: warm %.4f, cold %.4f\n", wc, cc);
    CU_ASSERT(wc > cc);

    /* a restored checkpoint predicts identically, every time */
    CU_ASSERT_EQUAL_FATAL(predict_from("ck2", 2, "warm2.tsv"), 0);
    snprintf(cmd, sizeof(cmd), "cmp -s %s/warm.tsv %s/warm2.tsv", dir, dir);
    CU_ASSERT_EQUAL(tu_sh(NULL, "%s", cmd), 0);

    /* expiry: rows last seen on day 1 are gone from day 3 (expire_days 1) */
    snprintf(out, sizeof(out), "%s/stats3.json", dir);
    CU_ASSERT_EQUAL(tu_sh(NULL, "%s/funnel-emb stats %s/ck3 --json %s > %s", bin, dir, OPTS, out),
                    0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    /* ages (days since last seen) in day 3's table: only 0 and 1 */
    char *p = text;
    int checked = 0;
    while ((p = strstr(p, "\"age_hist\":[")) != NULL) {
        long b0, b1, rest = 0;
        p += strlen("\"age_hist\":[");
        b0 = strtol(p, &p, 10);
        p++;
        b1 = strtol(p, &p, 10);
        for (int i = 2; i < 12; i++) {
            p++;
            rest += strtol(p, &p, 10);
        }
        CU_ASSERT(b0 + b1 > 0);
        CU_ASSERT_EQUAL(rest, 0);
        checked++;
    }
    CU_ASSERT(checked >= 5);
    free(text);
    /* and the diff from day 2 to day 3 shows removed item rows */
    snprintf(out, sizeof(out), "%s/diff23.json", dir);
    CU_ASSERT_EQUAL(
        tu_sh(NULL, "%s/funnel-emb diff %s/ck2 %s/ck3 --json %s > %s", bin, dir, dir, OPTS, out),
        0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    char *item = strstr(text, "\"item_id\":{");
    char *rem = item ? strstr(item, "\"removed\":") : NULL;
    long removed = rem ? strtol(rem + 10, NULL, 10) : 0;
    fprintf(stderr, "  item rows expired between day 2 and 3: %ld\n", removed);
    CU_ASSERT(removed > 0);
    free(text);
}

/* The shards' push counters ("pushes" and "dense_pushes" of every shard
 * at endpoints, in order) as one line of text into buf, from `ctl stats`;
 * the number of pushes in *total. Returns 0, or -1 if the shards did not
 * answer. */
static int push_counters(const char *endpoints, char *buf, size_t len, long *total)
{
    char out[800];
    char *text, *p;

    snprintf(out, sizeof(out), "%s/counters.txt", dir);
    if (tu_sh(NULL,
              "%s/funnel-worker ctl stats --ps %s --json 2>/dev/null | "
              "grep -o '\"\\(dense_\\)\\{0,1\\}pushes\":[0-9]*' | tr '\\n' ' ' > %s",
              bin, endpoints, out) != 0)
        return -1;
    text = tu_slurp(out, NULL);
    if (!text)
        return -1;
    snprintf(buf, len, "%s", text);
    *total = 0;
    for (p = text; (p = strstr(p, "\"pushes\":")) != NULL;)
        *total += strtol(p += strlen("\"pushes\":"), NULL, 10);
    free(text);
    return 0;
}

/* Checkpoint a cluster in the middle of training (workers paused so that
 * "that point" is well defined), then compare the live cluster's
 * predictions with those of a new cluster restored from the checkpoint. */
static void test_checkpoint_during_training(void)
{
    char cl[700], pids[800], ep[800], log[800];
    char *text = NULL;
    pid_t job;

    snprintf(cl, sizeof(cl), "%s/mid", dir);
    snprintf(log, sizeof(log), "%s/mid.log", dir);
    job = tu_spawn(log,
                   "exec scripts/run-local.sh --bin %s --dir %s --keep "
                   "--ps-opt '%s --checkpoint_root %s/ck' "
                   "--worker-opt '%s --batch_size 64' %s/w/day*/train.tsv",
                   bin, cl, OPTS, dir, OPTS, dir);
    CU_ASSERT_FATAL(job > 0);
    snprintf(pids, sizeof(pids), "%s/worker.pids", cl);
    /* wait until both workers train, then let them run a little */
    for (int i = 0; i < 300; i++) {
        snprintf(ep, sizeof(ep), "%s/logs/worker1.log", cl);
        free(text);
        text = tu_slurp(ep, NULL);
        if (text && strstr(text, "training"))
            break;
        usleep(100 * 1000);
    }
    free(text);
    text = NULL;
    char endpoints[800], now[256], before[256] = "";
    long pushes = 0;
    snprintf(ep, sizeof(ep), "%s/endpoints", cl);
    char *e = tu_slurp(ep, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    snprintf(endpoints, sizeof(endpoints), "%.*s", (int)strcspn(e, "\n"), e);
    free(e);
    /* let them train: the shards have applied some pushes */
    for (int i = 0; i < 600 && pushes < 40; i++) {
        CU_ASSERT_EQUAL_FATAL(push_counters(endpoints, now, sizeof(now), &pushes), 0);
        usleep(50 * 1000);
    }
    CU_ASSERT_FATAL(pushes >= 40);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "kill -STOP $(cat %s)", pids), 0);
    /* pushes in flight are applied: the counters stand still (workers stopped) */
    int settled = 0;
    for (int i = 0; i < 200 && !settled; i++) {
        usleep(200 * 1000);
        CU_ASSERT_EQUAL_FATAL(push_counters(endpoints, now, sizeof(now), &pushes), 0);
        settled = strcmp(now, before) == 0;
        snprintf(before, sizeof(before), "%s", now);
    }
    CU_ASSERT_FATAL(settled);
    text = tu_slurp(pids, NULL);
    /* the shards made their checkpoint_root ck/ at start; the client names */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "%s/funnel-worker ctl checkpoint %s --ps %s --name mid --day 1 "
                          "> /dev/null",
                          bin, OPTS, endpoints),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "%s/funnel-worker predict %s --ps %s --in %s/w/day1/test.tsv "
                          "--out %s/mid-live.tsv 2>/dev/null",
                          bin, OPTS, endpoints, dir, dir),
                    0);
    tu_sh(NULL, "kill -CONT $(cat %s) 2>/dev/null", pids);
    free(text);
    CU_ASSERT_EQUAL(predict_from("ck/mid", 1, "mid-restored.tsv"), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s/mid-live.tsv %s/mid-restored.tsv", dir, dir), 0);
    /* the paused training job still completes (bounded: 300 s, for ASan on a loaded machine) */
    for (int i = 0; i < 3000 && access(pids, F_OK) == 0; i++)
        usleep(100 * 1000);
    CU_ASSERT_NOT_EQUAL(access(pids, F_OK), 0);
    tu_sh(NULL, "scripts/run-local.sh --stop --dir %s > /dev/null 2>&1", cl);
    tu_stop(job, 15);
}

/* daily-refresh --ps against 2 shards started here, 1 worker (so training
 * is deterministic): days 1 and 2 give byte-identical full and delta
 * exports to the self-started mode; a checkpoint_root other than --out's
 * parent is an error saying where the shards wrote. */
static void test_running_cluster(void)
{
    char eps[800], cmd[2000], log[800];
    pid_t ps[2];
    const char *self = "--shards 2 --workers 1";

    for (int i = 0; i < 2; i++) {
        snprintf(log, sizeof(log), "%s/run-ps%d.log", dir, i);
        ps[i] = tu_spawn(log,
                         "exec %s/funnel-ps --shard %d --shards 2 --listen ipc://%s/run-p%d "
                         "--data %s/run-d%d --checkpoint_root %s/run %s",
                         bin, i, dir, i, dir, i, dir, OPTS);
        CU_ASSERT_FATAL(ps[i] > 0);
    }
    snprintf(eps, sizeof(eps), "ipc://%s/run-p{0..1}", dir);
    for (int d = 1; d <= 2; d++) {
        char prev[700] = "", rprev[700] = "";
        if (d == 2) {
            snprintf(prev, sizeof(prev), "--prev %s/self/ck1", dir);
            snprintf(rprev, sizeof(rprev), "--prev %s/run/ck1", dir);
        }
        snprintf(log, sizeof(log), "%s/self-day%d.log", dir, d);
        CU_ASSERT_EQUAL_FATAL(
            tu_sh(log,
                  "scripts/daily-refresh.sh --bin %s %s --day %d %s --out %s/self/ck%d "
                  "--worker-opt '%s' --ps-opt '%s' --export-dir %s/self-exp %s/w/day%d/train.tsv",
                  bin, self, d, prev, dir, d, OPTS, OPTS, dir, dir, d),
            0);
        snprintf(log, sizeof(log), "%s/run-day%d.log", dir, d);
        CU_ASSERT_EQUAL_FATAL(
            tu_sh(log,
                  "scripts/daily-refresh.sh --bin %s --ps '%s' --workers 1 --day %d %s "
                  "--out %s/run/ck%d --worker-opt '%s' --export-dir %s/run-exp "
                  "%s/w/day%d/train.tsv",
                  bin, eps, d, rprev, dir, d, OPTS, dir, dir, d),
            0);
        snprintf(cmd, sizeof(cmd), "cmp %s/self-exp/full-day%d.emb %s/run-exp/full-day%d.emb", dir,
                 d, dir, d);
        CU_ASSERT_EQUAL(tu_sh(NULL, "%s", cmd), 0);
    }
    CU_ASSERT_EQUAL(
        tu_sh(NULL, "cmp %s/self-exp/delta-day2.emb %s/run-exp/delta-day2.emb", dir, dir), 0);
    /* --out elsewhere than the shards' checkpoint_root: refused, naming both */
    snprintf(log, sizeof(log), "%s/run-wrong.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "head -n 2000 %s/w/day3/train.tsv > %s/small.tsv && "
                          "scripts/daily-refresh.sh --bin %s --ps '%s' --workers 1 --day 3 "
                          "--out %s/elsewhere/ck3 --worker-opt '%s' %s/small.tsv",
                          dir, dir, bin, eps, dir, OPTS, dir),
                    1);
    char *text = tu_slurp(log, NULL);
    snprintf(cmd, sizeof(cmd), "the shards wrote the checkpoint to %s/run/ck3, not to --out", dir);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, cmd) : NULL);
    free(text);
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL(tu_stop(ps[i], 15), 0);
}

int test_refresh_register(void)
{
    CU_pSuite s = CU_add_suite("refresh", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "three days: warm start, expiry, restore", test_three_days);
    CU_add_test(s, "a checkpoint taken during training restores identically",
                test_checkpoint_during_training);
    CU_add_test(s, "daily-refresh --ps on a running cluster equals the self-started refresh",
                test_running_cluster);
    return CU_get_error();
}
