/*
 * test_progress.c - what a person and a plot see of a run (worker/progress.h,
 * worker/valid.h, the logger's live line, scripts/run-local.sh's cluster
 * line, scripts/plot-metrics.sh), on real processes and generated logs.
 *
 *   piped       train with stderr to a file: plain progress lines, each a
 *               line of its own, no '\r'; with --progress on every log line
 *               first erases the live line (never glued to it)
 *   records     every metrics record has run, time, epoch and event; a run
 *               starts with a start record; a second run appends its own id
 *   gz_eta      on a .gz log the done fraction follows the samples (by
 *               compressed bytes), not 100 % at a quarter
 *   valid       --valid writes per-task AUC and log-loss records, the last
 *               equal to `eval` of the saved model's predictions
 *   rerun       a worker rerun against a live cluster that has its samples
 *               trains 0 and says so; a two-epoch job split over two runs
 *               sums to two epochs and each run's rate is its own
 *   run_local   scripts/run-local.sh from another directory finds bin/ and
 *               prints the cluster's plain progress lines
 *   plot        scripts/plot-metrics.sh draws PNG and SVG (needs gnuplot)
 *
 * Every process is bounded by timeout(1); every directory and shard is
 * removed or stopped at the end of its test.
 */
#include <CUnit/CUnit.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/util.h"

#define NTRAIN 60000
#define BOUND "timeout 120 "

typedef struct env {
    char dir[512];
    char worker[PATH_MAX], gen[PATH_MAX], top[PATH_MAX];
} env_t;

/* Scratch dir, absolute program paths, a generated world (gzip or not). */
static int env_open(env_t *e, const char *tag, int gzip)
{
    char rel[600];

    if (tu_mkdtemp(e->dir, sizeof(e->dir), tag) != 0)
        return -1;
    if (!realpath(tu_bin(rel, sizeof(rel), "funnel-worker"), e->worker) ||
        !realpath(tu_bin(rel, sizeof(rel), "funnel-gen"), e->gen) ||
        !getcwd(e->top, sizeof(e->top)))
        return -1;
    return tu_sh(NULL,
                 BOUND "%s --out %s/data --train %d --test 20000 --seed 5 %s > /dev/null 2>&1",
                 e->gen, e->dir, NTRAIN, gzip ? "--gzip" : "");
}

static char *slurp_in(const env_t *e, const char *name)
{
    char p[700];

    snprintf(p, sizeof(p), "%s/%s", e->dir, name);
    return tu_slurp(p, NULL);
}

/* Value of "key":number in a JSON line, or NAN. */
static double num_field(const char *line, const char *key)
{
    char pat[80];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* The line of text that starts at p (copied, NUL-terminated). */
static void line_at(const char *p, char *buf, size_t len)
{
    size_t n = strcspn(p, "\n");

    if (n >= len)
        n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
}

static void test_piped(void)
{
    env_t e;
    char *out;

    CU_ASSERT_EQUAL_FATAL(env_open(&e, "prog-piped", 0), 0);
    /* auto with stderr not a terminal: plain lines */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "%s train --model %s/m --threads 1 --progress_interval 0.05 "
                                "%s/data/train.tsv 2> %s/plain.err | cat",
                          e.worker, e.dir, e.dir, e.dir),
                    0);
    out = slurp_in(&e, "plain.err");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NULL(strchr(out, '\r'));
    CU_ASSERT_PTR_NULL(strchr(out, '\033'));
    int plain = 0, logs = 0, other = 0;
    for (char *l = out; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
        if (strncmp(l, "train: ", 7) == 0)
            plain++;
        else if (strncmp(l, "20", 2) == 0 && l[4] == '-' && strstr(l, " worker0 "))
            logs++; /* a log line, from the start of its line */
        else
            other++;
    }
    CU_ASSERT(plain >= 3);
    CU_ASSERT(logs >= 3);
    CU_ASSERT_EQUAL(other, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "train: 60000 samples"));
    free(out);

    /* --progress on into a file: the live line's bytes show that every log
     * line first erased it, so none is glued onto it */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "%s train --model %s/m2 --threads 1 --progress on "
                                "%s/data/train.tsv 2> %s/live.err",
                          e.worker, e.dir, e.dir, e.dir),
                    0);
    out = slurp_in(&e, "live.err");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    int drawn = 0, glued = 0, erased = 0;
    for (char *p = out; (p = strstr(p, " worker0 ")) != NULL; p++) {
        char *s = p;
        while (s > out && s[-1] != '\n' && s[-1] != '\r' && s[-1] != 'K')
            s--;
        /* the line's start: after '\n', after "\r\033[K" (erased), or glued */
        if (s == out || s[-1] == '\n')
            continue;
        if (s - out >= 4 && memcmp(s - 4, "\r\033[K", 4) == 0)
            erased++;
        else
            glued++;
    }
    for (char *p = out; (p = strstr(p, "\rtrain: ")) != NULL; p++)
        drawn++;
    CU_ASSERT(drawn >= 2);
    CU_ASSERT(erased >= 1); /* the summary lines come while the line is up */
    CU_ASSERT_EQUAL(glued, 0);
    free(out);
    tu_rmtree(e.dir);
}

static void test_records(void)
{
    env_t e;
    char *m, line[4096], run1[64] = "", run2[64] = "";
    int n = 0, starts = 0, bad = 0;

    CU_ASSERT_EQUAL_FATAL(env_open(&e, "prog-rec", 0), 0);
    for (int r = 0; r < 2; r++)
        CU_ASSERT_EQUAL(tu_sh(NULL,
                              BOUND "%s train --model %s/m --threads 1 --progress off "
                                    "--metrics_file %s/m.jsonl --metrics_interval 0.1 "
                                    "--epochs %d %s/data/train.tsv > /dev/null 2>&1",
                              e.worker, e.dir, e.dir, r + 1, e.dir),
                        0);
    m = slurp_in(&e, "m.jsonl");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    int max_epoch = -1;
    for (char *l = m; *l; l += strcspn(l, "\n") + 1) {
        char run[64] = "";
        const char *p;
        line_at(l, line, sizeof(line));
        n++;
        if (!strstr(line, "\"time\":\"20") || !strstr(line, "\"epoch\":") ||
            !strstr(line, "\"event\":\"") || !(p = strstr(line, "\"run\":\""))) {
            bad++;
            continue;
        }
        sscanf(p + 7, "%63[^\"]", run);
        if (strstr(line, "\"event\":\"start\"")) {
            starts++;
            snprintf(starts == 1 ? run1 : run2, sizeof(run1), "%s", run);
            CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"tasks\":[\"ctr\""));
        } else {
            CU_ASSERT_STRING_EQUAL(run, starts == 1 ? run1 : run2);
        }
        if ((int)num_field(line, "epoch") > max_epoch)
            max_epoch = (int)num_field(line, "epoch");
        if (!l[strcspn(l, "\n")])
            break;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(starts, 2);
    CU_ASSERT(n > 6);
    CU_ASSERT(strcmp(run1, run2) != 0);
    CU_ASSERT_EQUAL(max_epoch, 1); /* the second run's second epoch */
    CU_ASSERT_EQUAL(strncmp(m, "{\"run\":", 7), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "\"event\":\"start\"")); /* first record */
    CU_ASSERT(strstr(m, "\"event\":\"start\"") < strstr(m, "\"event\":\"train\""));
    free(m);
    tu_rmtree(e.dir);
}

static void test_gz_eta(void)
{
    env_t e;
    char *m, line[4096];
    int checked = 0, off = 0;

    CU_ASSERT_EQUAL_FATAL(env_open(&e, "prog-gz", 1), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "%s train --model %s/m --threads 1 --progress off "
                                "--metrics_interval 0.02 %s/data/train.tsv.gz > /dev/null 2>&1",
                          e.worker, e.dir, e.dir),
                    0);
    m = slurp_in(&e, "m.metrics.jsonl");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (char *l = m; *l; l += strcspn(l, "\n") + 1) {
        line_at(l, line, sizeof(line));
        if (strstr(line, "\"event\":\"train\"")) {
            double done = num_field(line, "done"), real = num_field(line, "samples") / NTRAIN;
            if (real > 0.2 && real < 0.8) {
                checked++;
                /* compressed bytes run a little ahead (read-ahead), never
                 * far, and never behind by much */
                if (!(done > real - 0.05 && done < real + 0.2)) {
                    off++;
                    fprintf(stderr, "\n  done %.3f at %.3f of the samples\n", done, real);
                }
            }
        }
        if (!l[strcspn(l, "\n")])
            break;
    }
    CU_ASSERT(checked >= 3);
    CU_ASSERT_EQUAL(off, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "\"done\":1,"));
    free(m);
    tu_rmtree(e.dir);
}

static void test_valid(void)
{
    env_t e;
    char *m, *ev, last[4096] = "", line[4096];
    int nvalid = 0;

    CU_ASSERT_EQUAL_FATAL(env_open(&e, "prog-valid", 0), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "%s train --model %s/m --threads 1 --progress off "
                                "--valid %s/data/test.tsv --valid_every 20000 "
                                "%s/data/train.tsv > %s/train.log 2>&1",
                          e.worker, e.dir, e.dir, e.dir, e.dir),
                    0);
    m = slurp_in(&e, "m.metrics.jsonl");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (char *l = m; *l; l += strcspn(l, "\n") + 1) {
        line_at(l, line, sizeof(line));
        if (strstr(line, "\"event\":\"valid\"")) {
            nvalid++;
            snprintf(last, sizeof(last), "%s", line);
            CU_ASSERT_EQUAL(num_field(line, "valid_rows"), 20000);
            for (int t = 0; t < 4; t++) {
                static const char *const task[] = {"ctr", "cvr", "ctcvr", "ctavr"};
                char k[32];
                snprintf(k, sizeof(k), "auc_%s", task[t]);
                CU_ASSERT(num_field(line, k) > 0.3 && num_field(line, k) < 1);
                snprintf(k, sizeof(k), "logloss_%s", task[t]);
                CU_ASSERT(num_field(line, k) > 0 && num_field(line, k) < 1);
            }
        }
        if (!l[strcspn(l, "\n")])
            break;
    }
    CU_ASSERT_EQUAL(nvalid, 3); /* past 20 k and 40 k samples, and at the end (60 k) */
    /* the last evaluation is the saved model's: eval of its predictions agrees */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "%s predict --model %s/m --progress off --in %s/data/test.tsv "
                                "--out %s/pred.tsv > /dev/null 2>&1 && "
                                "%s eval --pred %s/pred.tsv --log %s/data/test.tsv --json "
                                "> %s/eval.json 2>/dev/null",
                          e.worker, e.dir, e.dir, e.dir, e.worker, e.dir, e.dir, e.dir),
                    0);
    ev = slurp_in(&e, "eval.json");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    const char *ctr = strstr(ev, "\"ctr\":{"), *ctcvr = strstr(ev, "\"ctcvr\":{");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctcvr);
    /* predictions are written with 6 digits: AUCs agree to about 1e-4 */
    CU_ASSERT(fabs(num_field(ctr, "auc") - num_field(last, "auc_ctr")) < 2e-3);
    CU_ASSERT(fabs(num_field(ctcvr, "auc") - num_field(last, "auc_ctcvr")) < 2e-3);
    CU_ASSERT(fabs(num_field(ctr, "logloss") - num_field(last, "logloss_ctr")) < 1e-3);
    CU_ASSERT(num_field(last, "auc_ctr") > 0.55); /* it learned something */
    free(ev);
    free(m);
    tu_rmtree(e.dir);
}

/* "trained N samples in T s (R samples/s); D already done": N, T, R, D of
 * the summary in a worker's output, or -1s. */
static void summary(const char *text, double *n, double *t, double *r, double *d)
{
    const char *p = text ? strstr(text, " INFO trained ") : NULL;

    *n = *t = *r = *d = -1;
    if (p && sscanf(p, " INFO trained %lf samples in %lf s (%lf samples/s); %lf", n, t, r, d) != 4)
        *n = -1;
}

static void test_rerun(void)
{
    env_t e;
    char eps[2048] = "", *out, *text;
    double n1, t1, r1, d1, n2, t2, r2, d2;

    CU_ASSERT_EQUAL_FATAL(env_open(&e, "prog-rerun", 0), 0);
    /* 1 shard, 1 worker, kept running; then the same worker again */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "scripts/run-local.sh --shards 1 --workers 1 --dir %s/c --keep "
                                "--progress off %s/data/train.tsv > %s/rl.out 2>&1",
                          e.dir, e.dir, e.dir),
                    0);
    out = slurp_in(&e, "c/endpoints");
    if (out)
        sscanf(out, "%2047s", eps);
    free(out);
    CU_ASSERT(eps[0] != '\0');
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "%s train --ps %s --metrics_file %s/re.jsonl %s/data/train.tsv "
                                "> %s/rerun.out 2>&1",
                          e.worker, eps, e.dir, e.dir, e.dir),
                    0);
    text = slurp_in(&e, "rerun.out");
    summary(text, &n2, &t2, &r2, &d2);
    CU_ASSERT_EQUAL(n2, 0);
    CU_ASSERT_EQUAL(r2, 0);
    CU_ASSERT_EQUAL(d2, NTRAIN);
    free(text);
    text = slurp_in(&e, "re.jsonl");
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "\"run_samples\":0,\"samples_per_s\":0"));
    free(text);
    tu_sh(NULL, "scripts/run-local.sh --stop --dir %s/c > /dev/null 2>&1", e.dir);

    /* two epochs over two runs: the first stopped by SIGTERM part-way, the
     * second resumes; together they train both epochs exactly, and each
     * reports its own rate (samples / seconds of its own) */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "scripts/run-local.sh --shards 1 --workers 0 --dir %s/d --keep "
                                "--progress off %s/data/train.tsv > %s/rl2.out 2>&1",
                          e.dir, e.dir, e.dir),
                    0);
    out = slurp_in(&e, "d/endpoints");
    eps[0] = '\0';
    if (out)
        sscanf(out, "%2047s", eps);
    free(out);
    /* stopped once its first interval record is out */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "sh -c \"%s train --ps %s --epochs 2 --threads 1 --metrics_file "
                                "%s/e.jsonl --metrics_interval 0.5 %s/data/train.tsv > %s/e1.out "
                                "2>&1 & p=\\$!; for i in \\$(seq 600); do grep -q "
                                "event.:.train %s/e.jsonl 2>/dev/null && break; sleep 0.1; done; "
                                "kill -TERM \\$p; wait \\$p; true\"",
                          e.worker, eps, e.dir, e.dir, e.dir, e.dir),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "%s train --ps %s --epochs 2 --threads 1 --metrics_file "
                                "%s/e.jsonl %s/data/train.tsv > %s/e2.out 2>&1",
                          e.worker, eps, e.dir, e.dir, e.dir),
                    0);
    tu_sh(NULL, "scripts/run-local.sh --stop --dir %s/d > /dev/null 2>&1", e.dir);
    text = slurp_in(&e, "e1.out");
    summary(text, &n1, &t1, &r1, &d1);
    if (n1 < 0 && text) /* no summary: show what the stopped run said */
        fprintf(stderr, "\n  first run's output:\n%s\n", text);
    free(text);
    text = slurp_in(&e, "e2.out");
    summary(text, &n2, &t2, &r2, &d2);
    free(text);
    CU_ASSERT(n1 > 0);
    if (n1 + n2 != 2 * NTRAIN || d2 != n1)
        fprintf(stderr, "\n  two runs: first trained %.0f, second %.0f with %.0f already done\n",
                n1, n2, d2);
    /* the resumed run's view is exact; the stopped run's summary may count
     * the batch in flight at SIGTERM that the shards did not record (seen:
     * 10240 reported, 9728 recorded; open, see the README's known gaps) */
    CU_ASSERT_EQUAL(d2 + n2, 2 * NTRAIN);
    CU_ASSERT(n1 >= d2 && n1 <= d2 + 512);
    if (n1 > 0 && t1 > 0) /* the seconds are printed to 0.1 s */
        CU_ASSERT(r1 >= n1 / (t1 + 0.05) - 1 && r1 <= n1 / fmax(t1 - 0.05, 0.01) + 1);
    if (n2 > 0 && t2 > 0) /* the seconds are printed to 0.1 s */
        CU_ASSERT(r2 >= n2 / (t2 + 0.05) - 1 && r2 <= n2 / fmax(t2 - 0.05, 0.01) + 1);
    tu_rmtree(e.dir);
}

static void test_run_local(void)
{
    env_t e;
    char *out;

    CU_ASSERT_EQUAL_FATAL(env_open(&e, "prog-rl", 0), 0);
    /* from inside the scratch dir: bin/ is found beside the script */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "sh -c 'cd %s && %s/scripts/run-local.sh --dir c --shards 1 "
                                "--workers 2 data/train.tsv' > %s/rl.out 2>&1",
                          e.dir, e.top, e.dir),
                    0);
    out = slurp_in(&e, "rl.out");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "training done"));
    CU_ASSERT_PTR_NULL(strchr(out, '\r'));
    /* the last cluster line counts every sample of this run */
    char want[128];
    snprintf(want, sizeof(want), "cluster: 0/2 workers running  %d samples", NTRAIN);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    if (!strstr(out, want))
        fprintf(stderr, "\n%s\n", out);
    free(out);
    tu_sh(NULL, "%s/scripts/run-local.sh --stop --dir %s/c > /dev/null 2>&1", e.top, e.dir);
    tu_rmtree(e.dir);
}

static void test_plot(void)
{
    env_t e;
    char *svg;

    if (tu_sh(NULL, "command -v gnuplot > /dev/null 2>&1") != 0) {
        fprintf(stderr, "\n  gnuplot not installed: plot not tested\n");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(env_open(&e, "prog-plot", 0), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "%s train --model %s/m --threads 1 --progress off "
                                "--metrics_interval 0.2 --valid %s/data/test.tsv "
                                "--valid_every 30000 %s/data/train.tsv > /dev/null 2>&1",
                          e.worker, e.dir, e.dir, e.dir),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          BOUND "scripts/plot-metrics.sh --out %s/plot %s/m.metrics.jsonl "
                                "> %s/plot.out 2>&1",
                          e.dir, e.dir, e.dir),
                    0);
    /* a real PNG, and an SVG with the AUC panel */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "test \"$(head -c 4 %s/plot.png | od -An -c | tr -d ' ')\" = "
                          "'211PNG'",
                          e.dir),
                    0);
    svg = slurp_in(&e, "plot.svg");
    CU_ASSERT_PTR_NOT_NULL(svg && strstr(svg, "<svg"));
    CU_ASSERT_PTR_NOT_NULL(svg && strstr(svg, "held-out AUC"));
    free(svg);
    /* one run by id; an unknown id is an error naming it */
    CU_ASSERT_NOT_EQUAL(tu_sh(NULL,
                              BOUND "scripts/plot-metrics.sh --run nosuchrun --out %s/p2 "
                                    "%s/m.metrics.jsonl > %s/p2.out 2>&1",
                              e.dir, e.dir, e.dir),
                        0);
    svg = slurp_in(&e, "p2.out");
    CU_ASSERT_PTR_NOT_NULL(svg && strstr(svg, "run nosuchrun"));
    free(svg);
    CU_ASSERT_EQUAL(tu_sh(NULL, "scripts/plot-metrics.sh --help | grep -q 'scripts/plot-metrics.sh "
                                "\\[--run ID\\]'"),
                    0);
    tu_rmtree(e.dir);
}

int test_progress_register(void)
{
    CU_pSuite s = CU_add_suite("progress", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "piped: plain lines, log lines never glued to the live line", test_piped);
    CU_add_test(s, "metrics records: run id, wall time, epoch; a start record per run",
                test_records);
    CU_add_test(s, ".gz: done follows the samples by compressed bytes", test_gz_eta);
    CU_add_test(s, "--valid: per-task AUC and log-loss, the last equal to eval's", test_valid);
    CU_add_test(s, "summaries count this run: rerun trains 0, two-epoch resume", test_rerun);
    CU_add_test(s, "run-local.sh from elsewhere: bin/ found, cluster progress lines",
                test_run_local);
    CU_add_test(s, "plot-metrics.sh: PNG and SVG", test_plot);
    return 0;
}
