/*
 * bench_serve.c - funnel-serve's speed: requests/s and latency (p50, p99)
 * for one user with 100 and with 1000 candidates, on 1 and 2 scoring
 * threads; the cost per candidate beside `funnel-worker predict`'s cost
 * per sample on the same model; and the time and extra memory (RSS) to
 * apply a delta of 1 % and 10 % of the rows of a table.
 *
 *   FUNNEL_BIN=bin bin/bench-serve [ROWS]   (delta table: default 1000000 rows, dim 16)
 *
 * The model is the README's (esm2, 8 slots of dim 16, towers 256,128,64),
 * trained in process on a synthetic day (funnel-gen) and bundled with
 * funnel-emb bundle; the server is the real program on an ipc endpoint,
 * the clients are threads of this process (one REQ socket each; as many
 * clients as server threads, so the server is kept busy). Each request
 * is the same user with candidates taken from the test log. The delta
 * figures are bundle_rows_apply() in this process (what the server runs
 * to apply a delta) on a synthetic full export: time, and the growth of
 * this process's RSS while the old and the new table are both alive.
 * Nothing is asserted; the last line is one JSON object with every number.
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/rng.h"
#include "proto/serve_codec.h"
#include "table/bundle_rows.h"
#include "table/emb_export.h"

#define REQS_PER_CLIENT 400 /* bounded load: requests each client sends */

static char dir[256], bin[256];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* One user's request: candidate texts from the test log. */
static char *user_text;
static char **cand;
static size_t *cand_len;
static int ncand_max;

static int load_candidates(const char *log, int n)
{
    FILE *f = fopen(log, "r");
    char *line = NULL;
    size_t cap = 0;
    int k = 0;

    if (!f)
        return -1;
    cand = calloc((size_t)n, sizeof(*cand));
    cand_len = calloc((size_t)n, sizeof(*cand_len));
    while (k < n && getline(&line, &cap, f) > 0) {
        char *feat = strrchr(line, '\t'), *out, *tok, *save = NULL;
        if (!feat)
            continue;
        out = calloc(strlen(feat) + 1, 1);
        for (tok = strtok_r(feat + 1, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
            if (!strncmp(tok, "user_id:", 8) || !strncmp(tok, "hour:", 5))
                continue; /* the user's part, sent once */
            if (*out)
                strcat(out, " ");
            strcat(out, tok);
        }
        cand[k] = out;
        cand_len[k++] = strlen(out);
    }
    free(line);
    fclose(f);
    ncand_max = k;
    user_text = "user_id:u1234 hour:20";
    return k == n ? 0 : -1;
}

typedef struct client {
    const char *ep;
    int ncand;
    int nreq;
    double *lat; /* s, per request */
    int fails;
    pthread_t tid;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_REQ);
    serve_codec_t *codec = serve_codec_new(0);
    serve_str_t *cs = calloc((size_t)c->ncand, sizeof(*cs));
    int t = 30000, zero = 0;

    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof(t));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_connect(s, c->ep);
    for (int i = 0; i < c->ncand; i++)
        cs[i] = (serve_str_t){cand[i], cand_len[i]};
    for (int r = 0; r < c->nreq; r++) {
        serve_req_t req = {.type = SERVE_SCORE,
                           .id = (uint64_t)r + 1,
                           .user = {user_text, strlen(user_text)},
                           .ncand = (uint32_t)c->ncand,
                           .cand = cs};
        serve_rep_t rep;
        const void *data;
        size_t len;
        errbuf_t eb;
        zmq_msg_t m;
        double t0 = clock_now_s();

        serve_codec_encode_req(codec, &req, &data, &len, &eb);
        zmq_msg_init(&m);
        if (zmq_send(s, data, len, 0) < 0 || zmq_msg_recv(&m, s, 0) < 0 ||
            serve_codec_decode_rep(codec, &rep, zmq_msg_data(&m), zmq_msg_size(&m), &eb) != 0 ||
            rep.status != 0 || rep.n != (uint32_t)c->ncand) {
            c->fails++;
            zmq_msg_close(&m);
            break;
        }
        zmq_msg_close(&m);
        c->lat[r] = clock_now_s() - t0;
    }
    free(cs);
    serve_codec_destroy(&codec);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct result {
    double rps, p50, p99, per_cand_us;
    int fails;
} result_t;

/* funnel-serve with `threads` threads, as many clients, ncand per request. */
static result_t run_load(int threads, int ncand)
{
    char ep[300], cmdline[1024];
    client_t c[2];
    result_t res = {0};
    pid_t pid;
    double t0, wall;
    int n = 0;

    snprintf(ep, sizeof(ep), "ipc://%s/bench.sock", dir);
    snprintf(cmdline, sizeof(cmdline),
             "exec %s/funnel-serve --bundle %s/bundle --listen %s --threads %d --log_level warn",
             bin, dir, ep, threads);
    pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmdline, (char *)NULL);
        _exit(127);
    }
    { /* warm up: a few requests, the first of which waits for the server to load */
        client_t w = {ep, ncand, 5, calloc(5, sizeof(double)), 0, 0};
        client_main(&w);
        free(w.lat);
        if (w.fails)
            res.fails++;
    }
    for (int i = 0; i < threads; i++)
        c[i] =
            (client_t){ep, ncand, REQS_PER_CLIENT, calloc(REQS_PER_CLIENT, sizeof(double)), 0, 0};
    t0 = clock_now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&c[i].tid, NULL, client_main, &c[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(c[i].tid, NULL);
    wall = clock_now_s() - t0;
    double *all = calloc((size_t)threads * REQS_PER_CLIENT, sizeof(double));
    for (int i = 0; i < threads; i++) {
        res.fails += c[i].fails;
        for (int r = 0; r < REQS_PER_CLIENT; r++)
            if (c[i].lat[r] > 0)
                all[n++] = c[i].lat[r];
        free(c[i].lat);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    qsort(all, (size_t)n, sizeof(double), cmp_double);
    res.rps = n / wall;
    res.p50 = n ? all[n / 2] * 1e3 : 0;
    res.p99 = n ? all[(n * 99) / 100] * 1e3 : 0;
    res.per_cand_us = n ? 1e6 * wall / n / ncand * threads : 0;
    free(all);
    return res;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* Full export of rows rows (4 slots, dim 16) and a delta changing frac of
 * them (puts of new values; a tenth of them deletes). */
static int write_exports(uint64_t rows, double frac, const char *full, const char *delta,
                         uint64_t *changed)
{
    emb_export_header_t h = {0};
    emb_export_writer_t *w = NULL;
    errbuf_t eb;
    float emb[16];
    uint64_t per = rows / 4, step = (uint64_t)(1.0 / frac);

    h.kind = EMB_EXPORT_FULL;
    h.day = 1;
    h.base_day = -1;
    h.nslots = 4;
    for (int s = 0; s < 4; s++) {
        snprintf(h.slot[s], sizeof(h.slot[s]), "s%d", s);
        h.dim[s] = 16;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0 && full == NULL)
            continue;
        h.kind = pass ? EMB_EXPORT_DELTA : EMB_EXPORT_FULL;
        h.day = pass ? 2 : 1;
        h.base_day = pass ? 1 : -1;
        if (emb_export_writer_open(&w, pass ? delta : full, &h, &eb) != 0)
            return -1;
        *changed = 0;
        for (int s = 0; s < 4; s++)
            for (uint64_t i = 0; i < per; i++) { /* keys i * gamma-ish, increasing */
                uint64_t key = (i + 1) * UINT64_C(4294967311);
                for (int d = 0; d < 16; d++)
                    emb[d] = (float)((double)(rng_mix64(key + (uint64_t)d + (uint64_t)pass) >> 40) /
                                     (double)(1 << 24)) -
                             0.5f;
                if (pass == 0) {
                    if (emb_export_writer_put(w, s, key, emb, &eb) != 0)
                        return -1;
                } else if (i % step == 0) {
                    int rc = (i / step) % 10 == 9 ? emb_export_writer_delete(w, s, key, &eb)
                                                  : emb_export_writer_put(w, s, key, emb, &eb);
                    if (rc != 0)
                        return -1;
                    (*changed)++;
                }
            }
        if (emb_export_writer_finish(&w, NULL, &eb) != 0)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    uint64_t rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    result_t r[2][2];
    double predict_us = 0, apply_s[2] = {0};
    long apply_kb[2] = {0}, table_kb = 0;
    uint64_t changed[2] = {0};
    int ncands[2] = {100, 1000};

    snprintf(bin, sizeof(bin), "%s", getenv("FUNNEL_BIN") ? getenv("FUNNEL_BIN") : "bin");
    snprintf(dir, sizeof(dir), "%s/bench-serve-XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("model: esm2, 8 slots of dim 16, towers 256,128,64 (trained on a synthetic day)\n");
    if (sh("%s/funnel-gen --out %s/w --days 1 --train 30000 --test 41000 --seed 3 > /dev/null "
           "2>&1 && %s/funnel-worker train --model %s/m %s/w/day1/train.tsv > %s/train.log 2>&1 "
           "&& %s/funnel-emb bundle %s/m --out %s/bundle > /dev/null",
           bin, dir, bin, dir, dir, dir, bin, dir, dir) != 0 ||
        load_candidates(strcat(strcpy((char[300]){0}, dir), "/w/day1/test.tsv"), 1000) != 0) {
        fprintf(stderr, "bench-serve: setup failed (logs in %s)\n", dir);
        return 1;
    }
    /* predict's cost per sample: the slope between 1000 and 41000 lines */
    {
        double t[2];
        int n[2] = {1000, 41000};
        for (int i = 0; i < 2; i++) {
            sh("head -n %d %s/w/day1/test.tsv > %s/p.tsv", n[i], dir, dir);
            double t0 = clock_now_s();
            sh("%s/funnel-worker predict --model %s/m --threads 1 --in %s/p.tsv --out %s/p.out "
               "> /dev/null 2>&1",
               bin, dir, dir, dir);
            t[i] = clock_now_s() - t0;
        }
        predict_us = 1e6 * (t[1] - t[0]) / (n[1] - n[0]);
    }
    for (int th = 1; th <= 2; th++)
        for (int k = 0; k < 2; k++) {
            result_t *x = &r[th - 1][k];
            *x = run_load(th, ncands[k]);
            printf("serve %d thread%s, 1 user x %4d candidates: %8.1f requests/s, p50 %7.2f ms, "
                   "p99 %7.2f ms, %.2f us per candidate%s\n",
                   th, th > 1 ? "s" : " ", ncands[k], x->rps, x->p50, x->p99, x->per_cand_us,
                   x->fails ? " (FAILED requests)" : "");
        }
    printf("predict (1 thread, 4096-line batches, reading a log): %.2f us per sample\n",
           predict_us);
    /* applying a delta */
    {
        char full[300], delta[300];
        bundle_rows_t *base = NULL, *next = NULL;
        errbuf_t eb;
        snprintf(full, sizeof(full), "%s/full.emb", dir);
        snprintf(delta, sizeof(delta), "%s/delta.emb", dir);
        for (int k = 0; k < 2; k++) {
            double frac = k ? 0.10 : 0.01;
            if (write_exports(rows, frac, k ? NULL : full, delta, &changed[k]) != 0) {
                fprintf(stderr, "bench-serve: writing exports failed\n");
                return 1;
            }
            if (!base) {
                long before = rss_kb();
                if (bundle_rows_load(&base, full, NULL, &eb) != 0) {
                    fprintf(stderr, "bench-serve: %s\n", eb.msg);
                    return 1;
                }
                table_kb = rss_kb() - before;
            }
            long before = rss_kb();
            double t0 = clock_now_s();
            if (bundle_rows_apply(&next, base, delta, &eb) != 0) {
                fprintf(stderr, "bench-serve: %s\n", eb.msg);
                return 1;
            }
            apply_s[k] = clock_now_s() - t0;
            apply_kb[k] = rss_kb() - before;
            printf("apply a delta of %4.1f %% of %llu rows (dim 16; %llu records): %.3f s, "
                   "+%ld MiB RSS while both tables live (table %ld MiB)\n",
                   100 * frac, (unsigned long long)rows, (unsigned long long)changed[k], apply_s[k],
                   apply_kb[k] / 1024, table_kb / 1024);
            bundle_rows_destroy(&next);
        }
        bundle_rows_destroy(&base);
    }
    printf("{\"serve\": [");
    for (int th = 1; th <= 2; th++)
        for (int k = 0; k < 2; k++)
            printf("%s{\"threads\": %d, \"candidates\": %d, \"rps\": %.1f, \"p50_ms\": %.3f, "
                   "\"p99_ms\": %.3f, \"us_per_candidate\": %.3f, \"fails\": %d}",
                   th + k > 1 ? ", " : "", th, ncands[k], r[th - 1][k].rps, r[th - 1][k].p50,
                   r[th - 1][k].p99, r[th - 1][k].per_cand_us, r[th - 1][k].fails);
    printf("], \"predict_us_per_sample\": %.3f, \"delta_rows\": %llu, \"apply_1pct_s\": %.3f, "
           "\"apply_1pct_rss_kb\": %ld, \"apply_10pct_s\": %.3f, \"apply_10pct_rss_kb\": %ld, "
           "\"table_rss_kb\": %ld}\n",
           predict_us, (unsigned long long)rows, apply_s[0], apply_kb[0], apply_s[1], apply_kb[1],
           table_kb);
    sh("rm -rf %s", dir);
    return 0;
}
