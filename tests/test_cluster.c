/*
 * test_cluster.c - funnel as a real cluster on this machine: funnel-ps
 * shards and funnel-worker processes on ipc:// endpoints inside the test's
 * scratch directory, judged by what predict and eval say.
 *
 *   integration  2 shards + 2 workers (scripts/run-local.sh) reach the AUCs
 *                of in-process training on the same world.
 *   fault        kill -9 one shard in the middle of training and restart
 *                it on the same --data/--listen: the workers complete, the
 *                AUCs stay close to the undisturbed run, and the shard's
 *                lost_pushes respects the documented bound (what the
 *                senders pushed in flush_interval + the flush's duration).
 *   spill        shards with a mem_limit far below their table train and
 *                predict exactly like unlimited ones (1 worker: the runs
 *                are deterministic, so the predictions are identical),
 *                with rows beyond the budget in RocksDB and in a spill
 *                file (which serves most of the misses).
 *   late/absent  a worker started before its shards retries and warns; it
 *                gives up past --deadline_s naming the endpoint, and uses
 *                shards that come up in time.
 *
 * The world is small (600k training lines, towers 128,64 on both sides)
 * so the suite takes well under a minute and a half on 2 busy cores.
 * The AUC tolerances are for this small world: 0.01 on ctr, ctcvr and
 * ctavr, 0.03 on cvr (few buys: the noisiest task); the 0.005 is
 * for the big default world and is measured separately.
 *
 * Every process is started with tu_spawn() and stopped in the test, or in
 * the teardown if an assertion ended the test early.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/util.h"

#define MODEL "--towers 128,64"
#define TRAIN_LINES 600000
#define BATCH 512          /* the worker's default batch_size */
#define MAX_INFLIGHT 4     /* the worker's default max_inflight */
#define FLUSH_INTERVAL 1.0 /* s, fault test */
#define NTASKS 4
#define MAX_PIDS 16

static const char *const tasks[NTASKS] = {"ctr", "cvr", "ctcvr", "ctavr"};

static char dir[512], bin[700];
static pid_t pids[MAX_PIDS]; /* started here and not stopped yet */
static double undisturbed[NTASKS];
static int have_undisturbed;

/* ---- process bookkeeping ---- */

static pid_t track(pid_t pid)
{
    for (int i = 0; pid > 0 && i < MAX_PIDS; i++)
        if (pids[i] == 0) {
            pids[i] = pid;
            break;
        }
    return pid;
}

static int stop(pid_t pid, int sig)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (pids[i] == pid)
            pids[i] = 0;
    return tu_stop(pid, sig);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a cluster of 2 shards started here ---- */

typedef struct cluster {
    char dir[700];
    char ep[2][800];
    char eps[1700]; /* "EP0,EP1" */
    char ps_opt[256];
    pid_t ps[2];
    pid_t w[2];
    int nw;
} cluster_t;

static void cl_init(cluster_t *c, const char *name, const char *ps_opt)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s/%s", dir, name);
    mkdir(c->dir, 0755);
    for (int i = 0; i < 2; i++)
        snprintf(c->ep[i], sizeof(c->ep[i]), "ipc://%s/%s/ps%d.sock", dir, name, i);
    snprintf(c->eps, sizeof(c->eps), "%s,%s", c->ep[0], c->ep[1]);
    snprintf(c->ps_opt, sizeof(c->ps_opt), "%s", ps_opt);
}

/* Start (or restart: same --data and --listen) shard i. */
static int cl_shard(cluster_t *c, int i)
{
    char log[800];

    snprintf(log, sizeof(log), "%s/ps%d.log", c->dir, i);
    c->ps[i] = track(tu_spawn(log,
                              "exec %s/funnel-ps --shard %d --shards 2 --listen %s --data %s/ps%d "
                              "%s %s",
                              bin, i, c->ep[i], c->dir, i, MODEL, c->ps_opt));
    return c->ps[i] > 0 ? 0 : -1;
}

/* Start nw workers on the train file; each writes its exit status to
 * DIR/w<rank>.rc when it ends. */
static int cl_workers(cluster_t *c, int nw, const char *w_opt, const char *train)
{
    char log[800];

    c->nw = nw;
    for (int r = 0; r < nw; r++) {
        snprintf(log, sizeof(log), "%s/worker%d.log", c->dir, r);
        c->w[r] = track(tu_spawn(log,
                                 "%s/funnel-worker train --ps %s --rank %d --workers %d "
                                 "--metrics_file %s/metrics%d.jsonl %s %s %s; echo $? > %s/w%d.rc",
                                 bin, c->eps, r, nw, c->dir, r, MODEL, w_opt, train, c->dir, r));
        if (c->w[r] <= 0)
            return -1;
    }
    return 0;
}

/* Exit status of worker r if it ended, else -1. */
static int worker_rc(const cluster_t *c, int r)
{
    char path[800];
    char *t;
    int rc = -1;

    snprintf(path, sizeof(path), "%s/w%d.rc", c->dir, r);
    t = tu_slurp(path, NULL);
    if (t && t[0] >= '0' && t[0] <= '9')
        rc = atoi(t);
    free(t);
    return rc;
}

/* Wait up to timeout_s for every worker; 0 if all exited with status 0. */
static int cl_wait_workers(cluster_t *c, double timeout_s)
{
    double t0 = clock_now_s();
    int ok = 1;

    for (int r = 0; r < c->nw; r++) {
        while (worker_rc(c, r) < 0 && clock_now_s() - t0 < timeout_s)
            sleep_ms(100);
        if (worker_rc(c, r) != 0) {
            fprintf(stderr, "\n  worker %d of %s: status %d (see worker%d.log)\n", r, c->dir,
                    worker_rc(c, r), r);
            ok = 0;
        }
        stop(c->w[r], worker_rc(c, r) < 0 ? SIGKILL : SIGTERM);
        c->w[r] = 0;
    }
    return ok ? 0 : -1;
}

/* SIGTERM the shards (they flush); 0 if both exited cleanly. */
static int cl_stop(cluster_t *c)
{
    int rc = 0;

    for (int i = 0; i < 2; i++)
        if (c->ps[i] > 0) {
            if (stop(c->ps[i], SIGTERM) != 0)
                rc = -1;
            c->ps[i] = 0;
        }
    return rc;
}

/* ---- what the tools say ---- */

/* Counter `name` of the shard at ep (funnel-worker ctl stats), or -1. */
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

/* AUCs of the four tasks of pred against the world's test log (eval
 * --json). Returns 0, or -1 if eval failed. */
static int eval_aucs(const char *pred, double auc[NTASKS])
{
    char out[800], pat[64];
    char *json, *t, *a;
    int rc = 0;

    snprintf(out, sizeof(out), "%s.json", pred);
    if (tu_sh(NULL,
              "%s/funnel-worker eval --pred %s --log %s/w/test.tsv --truth %s/w/test.truth.tsv "
              "--json > %s 2>/dev/null",
              bin, pred, dir, dir, out) != 0)
        return -1;
    json = tu_slurp(out, NULL);
    for (int k = 0; k < NTASKS; k++) {
        snprintf(pat, sizeof(pat), "\"%s\":{", tasks[k]);
        t = json ? strstr(json, pat) : NULL;
        a = t ? strstr(t, "\"auc\":") : NULL;
        auc[k] = a ? strtod(a + 6, NULL) : NAN;
        if (!(auc[k] > 0.5 && auc[k] <= 1.0))
            rc = -1;
    }
    free(json);
    return rc;
}

/* Predict the test log from a running cluster into pred. */
static int predict_ps(const char *eps, const char *pred)
{
    char log[820];

    snprintf(log, sizeof(log), "%s.log", pred);
    return tu_sh(log, "%s/funnel-worker predict %s --ps %s --in %s/w/test.tsv --out %s", bin, MODEL,
                 eps, dir, pred);
}

static void print_aucs(const char *what, const double *a)
{
    fprintf(stderr, "  %-22s", what);
    for (int k = 0; k < NTASKS; k++)
        fprintf(stderr, " %s %.4f", tasks[k], a[k]);
    fprintf(stderr, "\n");
}

/* ---- suite ---- */

static int setup(void)
{
    char gen[600];

    if (tu_mkdtemp(dir, sizeof(dir), "cluster") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    if (access(gen, X_OK) != 0)
        return -1;
    return tu_sh(NULL, "%s --out %s/w --train %d --test 400000 --seed 12 > %s/gen.log 2>&1", gen,
                 dir, TRAIN_LINES, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (pids[i] > 0)
            tu_stop(pids[i], SIGKILL);
    memset(pids, 0, sizeof(pids));
    if (CU_get_number_of_failures() > 0) /* keep the logs to look at */
        fprintf(stderr, "\n  cluster suite: logs kept in %s\n", dir);
    else
        tu_rmtree(dir);
    return 0;
}

/* 2 shards + 2 workers with scripts/run-local.sh against one process. */
static void test_integration(void)
{
    char cl[700], log[800], rcf[800], pred[800], mdir[800], *eps = NULL;
    double local[NTASKS], dist[NTASKS];
    static const double tol[NTASKS] = {0.01, 0.03, 0.01, 0.01};
    pid_t job;
    char *t = NULL;

    /* in process */
    snprintf(log, sizeof(log), "%s/inproc.log", dir);
    snprintf(mdir, sizeof(mdir), "%s/inproc-model", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(log, "%s/funnel-worker train %s --model %s %s/w/train.tsv", bin, MODEL, mdir, dir),
        0);
    snprintf(pred, sizeof(pred), "%s/inproc.pred", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "%s/funnel-worker predict %s --model %s --in %s/w/test.tsv "
                                "--out %s > %s.log 2>&1",
                                bin, MODEL, mdir, dir, pred, pred),
                          0);
    CU_ASSERT_EQUAL_FATAL(eval_aucs(pred, local), 0);

    /* the cluster, kept running after training for predict */
    snprintf(cl, sizeof(cl), "%s/rl", dir);
    snprintf(log, sizeof(log), "%s/rl.log", dir);
    snprintf(rcf, sizeof(rcf), "%s/rl.rc", dir);
    job = track(tu_spawn(log,
                         "scripts/run-local.sh --bin %s --dir %s --keep --ps-opt '%s' "
                         "--worker-opt '%s' %s/w/train.tsv; echo $? > %s",
                         bin, cl, MODEL, MODEL, dir, rcf));
    CU_ASSERT_FATAL(job > 0);
    for (int i = 0; i < 3000 && !(t = tu_slurp(rcf, NULL)); i++)
        sleep_ms(100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(atoi(t), 0);
    free(t);
    snprintf(log, sizeof(log), "%s/endpoints", cl);
    eps = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL(eps);
    if (eps) {
        eps[strcspn(eps, "\n")] = '\0';
        snprintf(pred, sizeof(pred), "%s/cluster.pred", dir);
        CU_ASSERT_EQUAL(predict_ps(eps, pred), 0);
        /* both shards served a share of the work */
        char ep0[800];
        snprintf(ep0, sizeof(ep0), "%.*s", (int)strcspn(eps, ","), eps);
        CU_ASSERT(shard_stat(ep0, "pushes") > 100);
        CU_ASSERT(shard_stat(strchr(eps, ',') + 1, "pushes") > 100);
        CU_ASSERT_EQUAL(shard_stat(ep0, "errors"), 0);
    }
    free(eps);
    CU_ASSERT_EQUAL(tu_sh(NULL, "scripts/run-local.sh --stop --dir %s > /dev/null 2>&1", cl), 0);
    stop(job, SIGKILL); /* reaps the launcher; nothing of it is left */

    CU_ASSERT_EQUAL_FATAL(eval_aucs(pred, dist), 0);
    fprintf(stderr, "\n");
    print_aucs("in process:", local);
    print_aucs("2 shards + 2 workers:", dist);
    for (int k = 0; k < NTASKS; k++) {
        undisturbed[k] = dist[k];
        if (fabs(dist[k] - local[k]) > tol[k])
            fprintf(stderr, "  %s: |%.4f - %.4f| > %.3f\n", tasks[k], dist[k], local[k], tol[k]);
        CU_ASSERT(fabs(dist[k] - local[k]) <= tol[k]);
    }
    have_undisturbed = 1;
}

/* Pushes a shard expects from nw workers over the training file: a row
 * push and a dense push per batch, plus rank 0's dense assignment. */
static long long expected_pushes(int nw)
{
    long long per = (TRAIN_LINES / nw + BATCH - 1) / BATCH;
    return nw * per * 2 + 1;
}

static void test_fault_kill9_shard(void)
{
    cluster_t c;
    char pred[800], fi[64];
    double aucs[NTASKS];
#define NHIST 4096 /* samples of shard 0's counters, 50 ms apart: 200 s */
    static long long hp[NHIST], hf[NHIST];
    static double ht[NHIST];
    long long want = expected_pushes(2), p, fl = 0, fl0 = -1, pa = -1, pb = -1;
    double ta = 0, tb = 0, t0;
    int nh = 0;
    int killed = 0;

    if (!have_undisturbed) { /* the integration test did not get that far */
        CU_FAIL("no undisturbed run to compare with");
        return;
    }
    snprintf(fi, sizeof(fi), "--flush_interval %g", FLUSH_INTERVAL);
    cl_init(&c, "fault", fi);
    CU_ASSERT_EQUAL_FATAL(cl_shard(&c, 0), 0);
    CU_ASSERT_EQUAL_FATAL(cl_shard(&c, 1), 0);
    char train[700];
    snprintf(train, sizeof(train), "%s/w/train.tsv", dir);
    CU_ASSERT_EQUAL_FATAL(cl_workers(&c, 2, "--timeout_ms 500 --deadline_s 60", train), 0);

    /* Watch shard 0's pushes and flushes (sampled every 50 ms) and kill
     * it at 60% of the job, once it has flushed twice since the watch
     * began. By then it has applied more pushes than the bound allows to
     * lose, so a shard that did not flush would fail the bound. */
    t0 = clock_now_s();
    while (clock_now_s() - t0 < 240 && worker_rc(&c, 0) < 0 && worker_rc(&c, 1) < 0) {
        p = shard_stat(c.ep[0], "pushes");
        fl = shard_stat(c.ep[0], "flushes");
        ht[nh % NHIST] = clock_now_s();
        hp[nh % NHIST] = p;
        hf[nh % NHIST] = fl;
        nh++;
        if (fl0 < 0)
            fl0 = fl;
        if (p >= want / 10 && pa < 0) {
            pa = p;
            ta = clock_now_s();
        }
        if (pa >= 0 && p >= want * 60 / 100 && fl >= fl0 + 2 && clock_now_s() - ta > 0.3) {
            pb = p;
            tb = clock_now_s();
            stop(c.ps[0], SIGKILL);
            killed = 1;
            break;
        }
        sleep_ms(50);
    }
    if (!killed)
        fprintf(stderr, "\n  training ended (or stalled) before the kill\n");
    CU_ASSERT_FATAL(killed);
    CU_ASSERT_EQUAL_FATAL(cl_shard(&c, 0), 0); /* same --data, same --listen */

    CU_ASSERT_EQUAL(cl_wait_workers(&c, 300), 0);
    long long lost = shard_stat(c.ep[0], "lost_pushes");
    long long after = shard_stat(c.ep[0], "pushes");
    long long dups = shard_stat(c.ep[0], "duplicate_pushes");
    /* The bound, from the shard's own counters: the last flush before
     * the kill (number fl) started after flush fl - 1 had finished, which
     * was after the last sample that still counted fl - 2 flushes; every
     * push applied by that sample was in flush fl. So at most the pushes
     * since that sample are lost, plus those applied between the last
     * sample and the kill and those each sender had in flight
     * (max_inflight). It does not depend on how long a flush takes (a
     * rate x time bound failed under ASan on a loaded machine: flushes
     * took seconds). */
    long long durable = -1;
    double since = 0;
    for (int h = nh - 1; h >= 0 && h >= nh - NHIST; h--)
        if (hf[h % NHIST] <= fl - 2) {
            durable = hp[h % NHIST];
            since = tb - ht[h % NHIST];
            break;
        }
    CU_ASSERT_FATAL(durable >= 0); /* a sample before the previous flush */
    long long bound = pb - durable + 4 * MAX_INFLIGHT;
    fprintf(stderr,
            "\n  killed shard 0 at %lld of ~%lld pushes, %lld flushes (%.1f s after the sample "
            "before flush %lld); restarted shard: lost_pushes %lld (bound %lld), "
            "duplicate_pushes %lld, pushes %lld\n",
            pb, want, fl, since, fl - 1, lost, bound, dups, after);
    if (pb <= bound)
        fprintf(stderr, "  (note: the kill came before the bound exceeded what was pushed)\n");
    CU_ASSERT(lost >= 0 && lost <= bound);
    CU_ASSERT(after > 0); /* training went on against the restarted shard */

    /* Nothing is dropped silently: from its first push S after the
     * restart (the shard logs it with the gap) to its last, every push of
     * a sender is applied once by the restarted shard. A retried push
     * taken for a duplicate although it was never applied would show as
     * fewer pushes here, and be missing from lost_pushes too. */
    long long first[2] = {-1, -1};
    char logp[800], *text, *line;
    snprintf(logp, sizeof(logp), "%s/ps0.log", c.dir);
    text = tu_slurp(logp, NULL);
    for (line = text; line && (line = strstr(line, "WARN sender ")) != NULL; line++) {
        /* "... WARN sender R: ... (seq S after L)" on one line */
        unsigned snd;
        unsigned long long s, l;
        char *eol = strchr(line, '\n'), *sp = strstr(line, "(seq ");
        if (sscanf(line, "WARN sender %u:", &snd) == 1 && snd < 2 && sp && (!eol || sp < eol) &&
            sscanf(sp, "(seq %llu after %llu)", &s, &l) == 2)
            first[snd] = (long long)s;
    }
    free(text);
    if (first[0] > 0 && first[1] > 0) {
        long long applied = shard_stat(c.ep[0], "seq_0") - first[0] + 1 +
                            shard_stat(c.ep[0], "seq_1") - first[1] + 1;
        fprintf(stderr, "  pushes applied after the restart %lld, expected %lld\n", after, applied);
        CU_ASSERT_EQUAL(after, applied);
    } else {
        fprintf(stderr, "  (a sender lost nothing: exact push accounting skipped)\n");
    }

    snprintf(pred, sizeof(pred), "%s/fault.pred", dir);
    CU_ASSERT_EQUAL(predict_ps(c.eps, pred), 0);
    CU_ASSERT_EQUAL(cl_stop(&c), 0);
    CU_ASSERT_EQUAL_FATAL(eval_aucs(pred, aucs), 0);
    print_aucs("undisturbed:", undisturbed);
    print_aucs("shard 0 killed:", aucs);
    for (int k = 0; k < NTASKS; k++)
        CU_ASSERT(fabs(aucs[k] - undisturbed[k]) <= 0.02);
}

/* Train on the first 200k lines with 1 worker and predict; ps_opt for the
 * shards. Returns 0 with the shards' STATS of interest in st. */
static int spill_run(const char *name, const char *ps_opt, const char *pred, long long st[2][5])
{
    static const char *const names[5] = {"rows_evicted", "rows_loaded", "rows_created",
                                         "bytes_payload", "rows_spill_loaded"};
    cluster_t c;
    char train[800];
    int rc = 0;

    snprintf(train, sizeof(train), "%s/small.tsv", dir);
    cl_init(&c, name, ps_opt);
    if (cl_shard(&c, 0) != 0 || cl_shard(&c, 1) != 0 || cl_workers(&c, 1, "", train) != 0)
        rc = -1;
    if (rc == 0)
        rc = cl_wait_workers(&c, 300);
    if (rc == 0)
        rc = predict_ps(c.eps, pred);
    for (int i = 0; rc == 0 && i < 2; i++)
        for (int k = 0; k < 5; k++)
            st[i][k] = shard_stat(c.ep[i], names[k]);
    if (cl_stop(&c) != 0)
        rc = -1;
    return rc;
}

static void test_spill(void)
{
    char a[800], b[800], f[800], opt[96];
    long long sa[2][5], sb[2][5], sf[2][5];
    double auca[NTASKS], aucb[NTASKS];
    const long long limit = 400 * 1024;

    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "head -n 200000 %s/w/train.tsv > %s/small.tsv", dir, dir), 0);
    snprintf(a, sizeof(a), "%s/unlimited.pred", dir);
    snprintf(b, sizeof(b), "%s/spill.pred", dir);
    snprintf(f, sizeof(f), "%s/spillfile.pred", dir);
    CU_ASSERT_EQUAL_FATAL(spill_run("unlimited", "", a, sa), 0);
    /* rows beyond the budget in RocksDB itself, then in a spill file */
    snprintf(opt, sizeof(opt), "--mem_limit %lld --spill store", limit);
    CU_ASSERT_EQUAL_FATAL(spill_run("spill", opt, b, sb), 0);
    snprintf(opt, sizeof(opt), "--mem_limit %lld --spill file", limit);
    CU_ASSERT_EQUAL_FATAL(spill_run("spillfile", opt, f, sf), 0);
    fprintf(stderr, "\n");
    for (int i = 0; i < 2; i++) {
        /* the table is over ten times the budget: created rows times the
         * payload per row (the unlimited run holds every row) */
        double per_row = (double)sa[i][3] / (double)sa[i][2];
        fprintf(stderr,
                "  shard %d: %lld rows (%.1f MB payload), mem_limit %lld KB: spill = store: %lld "
                "rows evicted, %lld read back; spill = file: %lld evicted, %lld read back (%lld "
                "from the file)\n",
                i, sb[i][2], (double)sb[i][2] * per_row / 1e6, limit / 1024, sb[i][0], sb[i][1],
                sf[i][0], sf[i][1], sf[i][4]);
        CU_ASSERT_EQUAL(sa[i][0], 0);
        CU_ASSERT((double)sb[i][2] * per_row >= 10.0 * (double)limit);
        CU_ASSERT(sb[i][0] > 0);
        CU_ASSERT(sb[i][1] > 0);
        CU_ASSERT_EQUAL(sb[i][4], 0);
        CU_ASSERT_EQUAL(sb[i][2], sa[i][2]);
        CU_ASSERT(sf[i][0] > 0);
        CU_ASSERT(sf[i][4] > sf[i][1] / 2); /* the file served most misses */
        CU_ASSERT_EQUAL(sf[i][2], sa[i][2]);
    }
    /* one worker: every run is deterministic, so identical predictions */
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s %s", a, b), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s %s", a, f), 0);
    CU_ASSERT_EQUAL_FATAL(eval_aucs(a, auca), 0);
    CU_ASSERT_EQUAL_FATAL(eval_aucs(b, aucb), 0);
    print_aucs("unlimited:", auca);
    print_aucs("mem_limit:", aucb);
    for (int k = 0; k < NTASKS; k++)
        CU_ASSERT(fabs(auca[k] - aucb[k]) <= 0.01);
}

/* A worker whose shards are not up: it warns while it retries and, past
 * --deadline_s, ends with an error naming the endpoint; shards that come
 * up before the deadline are used, and the worker says they answer. */
static void test_shards_late_or_absent(void)
{
    cluster_t c;
    char small[800], log[800];
    char *text;

    cl_init(&c, "late", "");
    snprintf(small, sizeof(small), "%s/small.tsv", c.dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "head -n 20000 %s/w/train.tsv > %s", dir, small), 0);
    snprintf(log, sizeof(log), "%s/worker0.log", c.dir);

    /* nobody there */
    CU_ASSERT_EQUAL_FATAL(cl_workers(&c, 1, "--timeout_ms 300 --deadline_s 2", small), 0);
    for (double t0 = clock_now_s(); worker_rc(&c, 0) < 0 && clock_now_s() - t0 < 30;)
        sleep_ms(100);
    CU_ASSERT_EQUAL(worker_rc(&c, 0), 1);
    stop(c.w[0], worker_rc(&c, 0) < 0 ? SIGKILL : SIGTERM);
    text = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "retrying until deadline_s 2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "no reply for"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, c.ep[0]));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "is funnel-ps running there?"));
    free(text);

    /* the shards come up 1.5 s after the worker */
    tu_sh(NULL, "rm -f %s/w0.rc", c.dir);
    CU_ASSERT_EQUAL_FATAL(cl_workers(&c, 1, "--timeout_ms 300 --deadline_s 60", small), 0);
    sleep_ms(1500);
    CU_ASSERT_EQUAL_FATAL(cl_shard(&c, 0), 0);
    CU_ASSERT_EQUAL_FATAL(cl_shard(&c, 1), 0);
    CU_ASSERT_EQUAL(cl_wait_workers(&c, 120), 0);
    text = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "answers again"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "trained 20000 samples"));
    free(text);
    CU_ASSERT_EQUAL(cl_stop(&c), 0);
}

int test_cluster_register(void)
{
    CU_pSuite s = CU_add_suite("cluster", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "2 shards + 2 workers match in-process AUCs", test_integration);
    CU_add_test(s, "kill -9 a shard mid-training: job completes, loss bounded",
                test_fault_kill9_shard);
    CU_add_test(s, "spill: small mem_limit predicts like unlimited (RocksDB, spill file)",
                test_spill);
    CU_add_test(s, "shards absent: warnings, then an error naming the endpoint; late: used",
                test_shards_late_or_absent);
    return CUE_SUCCESS;
}
