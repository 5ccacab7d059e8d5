/*
 * test_prom.c - live metrics in the Prometheus text format (obs/, issue 12
 * point 6): the registry's rendering (names, HELP/TYPE once per family,
 * escaped labels, cumulative histograms), one consistent snapshot per
 * scrape while the owner publishes, the HTTP server's 200/404/405, and then
 * a real shard and a real training worker with --metrics_listen on free
 * loopback ports, scraped with curl: the text parses, the names and types
 * are there, the counters grow and equal what `ctl stats` says, and a
 * shard whose metrics port is taken stops with an error naming it.
 *
 * Every process is started with tu_spawn() and stopped in its test (or by
 * the suite's cleanup); all traffic stays on 127.0.0.1 and ipc:// paths in
 * the suite's scratch directory; every wait is bounded.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "obs/metrics.h"
#include "obs/metrics_http.h"
#include "tests/util.h"

static char dir[512], psbin[600], wbin[600];

/* ---- a small parser of the text format, strict about what we emit ---- */

#define MAXS 4096

typedef struct sample {
    char name[128];
    char labels[512]; /* as written between the braces, "" if none */
    double value;
} sample_t;

typedef struct family {
    char name[128];
    char type[32];
    int help;
} family_t;

typedef struct scrape {
    sample_t s[MAXS];
    int ns;
    family_t f[1024];
    int nf;
    int bad; /* lines that broke the format; the first one in why */
    char why[256];
} scrape_t;

static void bad_line(scrape_t *sc, const char *line, const char *what)
{
    if (!sc->bad++)
        snprintf(sc->why, sizeof(sc->why), "%s: %.200s", what, line);
}

static family_t *family_of(scrape_t *sc, const char *name)
{
    for (int i = 0; i < sc->nf; i++)
        if (strcmp(sc->f[i].name, name) == 0)
            return &sc->f[i];
    return NULL;
}

/* The family a sample belongs to: its name, or for a histogram's
 * _bucket/_sum/_count the name without the suffix. */
static family_t *family_of_sample(scrape_t *sc, const char *name)
{
    static const char *const suf[] = {"_bucket", "_sum", "_count"};
    family_t *f = family_of(sc, name);
    char base[128];

    if (f)
        return f;
    for (int i = 0; i < 3; i++) {
        size_t nl = strlen(name), sl = strlen(suf[i]);
        if (nl > sl && strcmp(name + nl - sl, suf[i]) == 0) {
            snprintf(base, sizeof(base), "%.*s", (int)(nl - sl), name);
            f = family_of(sc, base);
            if (f && strcmp(f->type, "histogram") == 0)
                return f;
        }
    }
    return NULL;
}

static void parse_line(scrape_t *sc, char *line)
{
    char name[128], type[32];
    sample_t *s;
    char *p, *end;

    if (line[0] == '\0')
        return;
    if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
        int help = line[2] == 'H';
        if (sscanf(line + 7, "%127s %31s", name, type) < (help ? 1 : 2) || !obs_name_ok(name, 0)) {
            bad_line(sc, line, "bad HELP/TYPE line");
            return;
        }
        family_t *f = family_of(sc, name);
        if (!f) {
            if (sc->nf == 1024)
                return bad_line(sc, line, "too many families");
            f = &sc->f[sc->nf++];
            memset(f, 0, sizeof(*f));
            snprintf(f->name, sizeof(f->name), "%s", name);
        } else if ((help && f->help) || (!help && f->type[0])) {
            return bad_line(sc, line, "HELP or TYPE repeated");
        }
        if (help)
            f->help = 1;
        else if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram"))
            bad_line(sc, line, "unknown TYPE");
        else
            snprintf(f->type, sizeof(f->type), "%s", type);
        return;
    }
    if (line[0] == '#')
        return bad_line(sc, line, "comment of an unknown kind");
    if (sc->ns == MAXS)
        return bad_line(sc, line, "too many samples");
    s = &sc->s[sc->ns];
    memset(s, 0, sizeof(*s));
    p = line + strcspn(line, "{ ");
    if ((size_t)(p - line) >= sizeof(s->name))
        return bad_line(sc, line, "name too long");
    memcpy(s->name, line, (size_t)(p - line));
    if (!obs_name_ok(s->name, 0))
        return bad_line(sc, line, "bad metric name");
    if (*p == '{') {
        /* labels: name="value" pairs; values may hold escaped \" \\ \n */
        char *q = p + 1;
        while (*q && *q != '}') {
            char *eq = strchr(q, '=');
            if (!eq || eq[1] != '"')
                return bad_line(sc, line, "label without =\"");
            q = eq + 2;
            while (*q && *q != '"') {
                if (*q == '\\' && (q[1] == '"' || q[1] == '\\' || q[1] == 'n'))
                    q++;
                else if (*q == '\\')
                    return bad_line(sc, line, "bad escape in a label value");
                q++;
            }
            if (*q != '"')
                return bad_line(sc, line, "unterminated label value");
            q++;
            if (*q == ',')
                q++;
        }
        if (*q != '}')
            return bad_line(sc, line, "unterminated labels");
        snprintf(s->labels, sizeof(s->labels), "%.*s", (int)(q - p - 1), p + 1);
        p = q + 1;
    }
    if (*p != ' ')
        return bad_line(sc, line, "no space before the value");
    p++;
    if (strcmp(p, "+Inf") == 0)
        s->value = INFINITY;
    else if (strcmp(p, "-Inf") == 0)
        s->value = -INFINITY;
    else if (strcmp(p, "NaN") == 0)
        s->value = NAN;
    else {
        s->value = strtod(p, &end);
        if (end == p || *end)
            return bad_line(sc, line, "value is not a number");
    }
    family_t *f = family_of_sample(sc, s->name);
    if (!f || !f->type[0] || !f->help)
        return bad_line(sc, line, "sample before its family's HELP and TYPE");
    sc->ns++;
}

static void parse_text(scrape_t *sc, char *text)
{
    memset(sc, 0, sizeof(*sc));
    for (char *line = text, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = '\0';
        parse_line(sc, line);
    }
}

/* Value of the sample name{labels} (labels "" for none); NAN if absent. */
static double value(const scrape_t *sc, const char *name, const char *labels)
{
    for (int i = 0; i < sc->ns; i++)
        if (strcmp(sc->s[i].name, name) == 0 && strcmp(sc->s[i].labels, labels) == 0)
            return sc->s[i].value;
    return NAN;
}

static const char *type_of(scrape_t *sc, const char *family)
{
    family_t *f = family_of(sc, family);
    return f ? f->type : "";
}

/* ---- curl ---- */

/* GET (or another method) a path on 127.0.0.1:port with curl; the HTTP
 * status, or -1 if curl failed to connect. The body goes to body_path. */
static int http(int port, const char *method, const char *path, const char *body_path)
{
    char code_path[700], *code;
    int rc, status = -1;

    snprintf(code_path, sizeof(code_path), "%s/http-code", dir);
    /* HEAD is -I: with -X HEAD curl would wait for a body */
    rc = tu_sh(code_path,
               "curl -sS --max-time 10 %s%s -o %s -w '%%{http_code}' http://127.0.0.1:%d%s",
               strcmp(method, "HEAD") == 0 ? "-I" : "-X ",
               strcmp(method, "HEAD") == 0 ? "" : method, body_path, port, path);
    code = tu_slurp(code_path, NULL);
    if (rc == 0 && code)
        status = atoi(code);
    free(code);
    return status;
}

/* Scrape /metrics into sc; 0 or -1. */
static int scrape(int port, scrape_t *sc)
{
    char body[700], *text;

    snprintf(body, sizeof(body), "%s/scrape-%d.txt", dir, port);
    if (http(port, "GET", "/metrics", body) != 200)
        return -1;
    text = tu_slurp(body, NULL);
    if (!text)
        return -1;
    parse_text(sc, text);
    free(text);
    return 0;
}

/* Wait (at most limit s) until /healthz answers 200. */
static int wait_healthy(int port, double limit)
{
    char body[700];
    double t0 = clock_now_s();

    snprintf(body, sizeof(body), "%s/health.txt", dir);
    while (clock_now_s() - t0 < limit) {
        if (http(port, "GET", "/healthz", body) == 200)
            return 0;
        usleep(100 * 1000);
    }
    return -1;
}

/* ---- the registry and the server, in process ---- */

static void test_render_format(void)
{
    obs_reg_t *r = NULL;
    errbuf_t eb = {{0}};
    const double bounds[] = {0.5, 1, 2.5};
    const uint64_t counts[] = {1, 2, 0, 3};
    const char *hostile[] = {"slot", "u\"id\\x\ny", NULL};
    const char *plain[] = {"slot", "item_id", NULL};
    const char *badl[] = {"le:x", "1", NULL};
    char *text = NULL;
    size_t len;
    scrape_t *sc = calloc(1, sizeof(*sc));
    int c, g1, g2, h;

    CU_ASSERT_PTR_NOT_NULL_FATAL(sc);
    CU_ASSERT_EQUAL_FATAL(obs_reg_new(&r, &eb), 0);
    c = obs_series_add(r, OBS_COUNTER, "t_pushes_total", "Pushes.\nSecond \\ line.", NULL, &eb);
    g1 = obs_series_add(r, OBS_GAUGE, "t_rows", "Rows per slot.", hostile, &eb);
    g2 = obs_series_add(r, OBS_GAUGE, "t_rows", "Rows per slot.", plain, &eb);
    h = obs_hist_add(r, "t_seconds", "Latency.", NULL, bounds, 3, &eb);
    CU_ASSERT(c >= 0 && g1 >= 0 && g2 >= 0 && h >= 0);
    /* refused: bad names, a family added again as another type, bad bounds */
    CU_ASSERT_EQUAL(obs_series_add(r, OBS_GAUGE, "9lives", "x", NULL, &eb), ERR_INVAL);
    CU_ASSERT_EQUAL(obs_series_add(r, OBS_GAUGE, "a-b", "x", NULL, &eb), ERR_INVAL);
    CU_ASSERT_EQUAL(obs_series_add(r, OBS_GAUGE, "t_pushes_total", "x", NULL, &eb), ERR_INVAL);
    CU_ASSERT_EQUAL(obs_series_add(r, OBS_GAUGE, "t_ok", "x", badl, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "le:x"));
    const double down[] = {1, 0.5};
    CU_ASSERT_EQUAL(obs_hist_add(r, "t_h2", "x", NULL, down, 2, &eb), ERR_INVAL);

    obs_publish_begin(r);
    obs_set(r, c, 12345678901.0);
    obs_set(r, g1, 7);
    obs_set(r, g2, 0.25);
    obs_hist_set(r, h, counts, 4.75);
    obs_publish_end(r);
    CU_ASSERT_EQUAL_FATAL(obs_render(r, &text, &len), 0);
    CU_ASSERT_EQUAL(strlen(text), len);
    /* the exact lines, escaping included */
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "# HELP t_pushes_total Pushes.\\nSecond \\\\ line.\n"
                                        "# TYPE t_pushes_total counter\n"
                                        "t_pushes_total 12345678901\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "t_rows{slot=\"u\\\"id\\\\x\\ny\"} 7\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "t_rows{slot=\"item_id\"} 0.25\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "t_seconds_bucket{le=\"0.5\"} 1\n"
                                        "t_seconds_bucket{le=\"1\"} 3\n"
                                        "t_seconds_bucket{le=\"2.5\"} 3\n"
                                        "t_seconds_bucket{le=\"+Inf\"} 6\n"
                                        "t_seconds_sum 4.75\n"
                                        "t_seconds_count 6\n"));
    /* one HELP and TYPE per family, the parser agrees */
    char *second = strstr(text, "# TYPE t_rows gauge");
    CU_ASSERT(second && !strstr(second + 1, "# TYPE t_rows "));
    parse_text(sc, text);
    CU_ASSERT_EQUAL(sc->bad, 0);
    if (sc->bad)
        fprintf(stderr, "\n  %s\n", sc->why);
    CU_ASSERT_EQUAL(sc->ns, 3 + 6);
    CU_ASSERT_STRING_EQUAL(type_of(sc, "t_seconds"), "histogram");
    free(text);
    obs_reg_destroy(&r);
    CU_ASSERT_PTR_NULL(r);
    free(sc);
}

static void test_parse_listen(void)
{
    char host[OBS_HOST_MAX];
    errbuf_t eb = {{0}};
    int port = -1;

    CU_ASSERT_EQUAL(obs_http_parse_listen("9100", "--metrics_listen", host, &port, &eb), 0);
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1"); /* loopback unless told otherwise */
    CU_ASSERT_EQUAL(port, 9100);
    CU_ASSERT_EQUAL(obs_http_parse_listen("0.0.0.0:80", "--m", host, &port, &eb), 0);
    CU_ASSERT_STRING_EQUAL(host, "0.0.0.0");
    CU_ASSERT_EQUAL(port, 80);
    CU_ASSERT_EQUAL(obs_http_parse_listen("[::1]:0", "--m", host, &port, &eb), 0);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(port, 0);
    static const char *const bad[] = {"",         "host:",     ":9100", "localhost:65536",
                                      "::1:9100", "[::1]9100", "9100x", "-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        eb.msg[0] = '\0';
        CU_ASSERT_EQUAL(obs_http_parse_listen(bad[i], "--metrics_listen", host, &port, &eb),
                        ERR_CONFIG);
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "--metrics_listen"));
    }
}

/* A publisher that keeps two gauges equal and a histogram's count equal
 * to a counter, publishing as fast as it can until told to stop. */
#define NWIDE 1000 /* gauges kept equal: a copy without the seqlock would tear */

typedef struct pub {
    obs_reg_t *r;
    int a, b, n, h, wide[NWIDE];
    atomic_int stop;
    unsigned long rounds;
} pub_t;

static void *publisher(void *arg)
{
    pub_t *p = arg;
    uint64_t counts[2] = {0, 0};
    double t0 = clock_now_s(), burst = t0;

    /* bounded: stopped by the test, or after 60 s whatever happens */
    while (!atomic_load(&p->stop) && clock_now_s() - t0 < 60) {
        p->rounds++;
        counts[p->rounds & 1]++;
        obs_publish_begin(p->r);
        obs_set(p->r, p->a, (double)p->rounds);
        obs_set(p->r, p->b, (double)p->rounds);
        obs_set(p->r, p->n, (double)p->rounds);
        for (int i = 0; i < NWIDE; i++)
            obs_set(p->r, p->wide[i], (double)p->rounds);
        obs_hist_set(p->r, p->h, counts, (double)p->rounds);
        obs_publish_end(p->r);
        /* bursts of back-to-back publishes (a copy then overlaps one
         * almost surely) with pauses a reader can finish in */
        if (clock_now_s() - burst > 0.002) {
            usleep(2000);
            burst = clock_now_s();
        }
    }
    return NULL;
}

static void test_server_in_process(void)
{
    obs_reg_t *r = NULL;
    obs_http_t *h = NULL, *h2 = NULL;
    errbuf_t eb = {{0}};
    const double bounds[] = {1};
    pub_t p;
    pthread_t th;
    char body[700], spec[64];
    scrape_t *sc = calloc(1, sizeof(*sc));
    int port, torn = 0, scrapes = 0, busy = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(sc);
    memset(&p, 0, sizeof(p));
    CU_ASSERT_EQUAL_FATAL(obs_reg_new(&r, &eb), 0);
    p.r = r;
    p.a = obs_series_add(r, OBS_GAUGE, "t_a", "a", NULL, &eb);
    p.b = obs_series_add(r, OBS_GAUGE, "t_b", "b", NULL, &eb);
    p.n = obs_series_add(r, OBS_COUNTER, "t_rounds_total", "rounds", NULL, &eb);
    p.h = obs_hist_add(r, "t_h", "h", NULL, bounds, 1, &eb);
    for (int i = 0; i < NWIDE; i++) {
        char num[16];
        const char *labels[] = {"i", num, NULL};
        snprintf(num, sizeof(num), "%d", i);
        p.wide[i] = obs_series_add(r, OBS_GAUGE, "t_wide", "wide", labels, &eb);
    }
    CU_ASSERT_EQUAL_FATAL(obs_http_start(&h, "127.0.0.1:0", "--metrics_listen", r, &eb), 0);
    port = obs_http_port(h);
    CU_ASSERT_FATAL(port > 0);
    snprintf(body, sizeof(body), "%s/inproc.txt", dir);
    CU_ASSERT_EQUAL(http(port, "GET", "/healthz", body), 200);
    CU_ASSERT_EQUAL(http(port, "HEAD", "/metrics", body), 200);
    CU_ASSERT_EQUAL(http(port, "GET", "/", body), 404);
    CU_ASSERT_EQUAL(http(port, "GET", "/metrics/x", body), 404);
    CU_ASSERT_EQUAL(http(port, "POST", "/metrics", body), 405);
    CU_ASSERT_EQUAL(http(port, "DELETE", "/healthz", body), 405);
    /* the same port again: refused, naming the option and the reason */
    snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
    CU_ASSERT_EQUAL(obs_http_start(&h2, spec, "--metrics_listen", r, &eb), ERR_NET);
    CU_ASSERT_PTR_NULL(h2);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "--metrics_listen"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "in use"));

    /* every scrape is one snapshot while the owner publishes non-stop */
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, publisher, &p), 0);
    for (int i = 0; i < 200 && scrapes < 20; i++) {
        if (scrape(port, sc) != 0 || sc->bad) {
            busy++; /* 503: publishes kept overlapping the copy; try again */
            continue;
        }
        scrapes++;
        double a = value(sc, "t_a", ""), b = value(sc, "t_b", "");
        double n = value(sc, "t_rounds_total", "");
        double cnt = value(sc, "t_h_count", ""), inf = value(sc, "t_h_bucket", "le=\"+Inf\"");
        int same = a == b && a == n && cnt == n && inf == n;
        for (int k = 0; k < sc->ns; k++)
            if (strcmp(sc->s[k].name, "t_wide") == 0 && sc->s[k].value != a)
                same = 0;
        torn += !same;
    }
    atomic_store(&p.stop, 1);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(scrapes, 20);
    CU_ASSERT_EQUAL(torn, 0);
    CU_ASSERT(p.rounds > 0);
    obs_http_stop(&h);
    CU_ASSERT_PTR_NULL(h);
    /* stopped: nothing listens there any more */
    CU_ASSERT_EQUAL(http(port, "GET", "/healthz", body), -1);
    obs_reg_destroy(&r);
    free(sc);
}

/* ---- a real shard and a real training worker ---- */

/* The value ctl stats prints for counter name, or -1. */
static double ctl_stat(const char *ep, const char *name)
{
    char out[700], *text, *p;
    double v = -1;

    snprintf(out, sizeof(out), "%s/ctl.txt", dir);
    if (tu_sh(out, "%s ctl stats --ps %s --wait 10", wbin, ep) != 0)
        return -1;
    text = tu_slurp(out, NULL);
    for (p = text; p && (p = strstr(p, name)) != NULL; p += strlen(name))
        if (p[-1] == ' ' && p[strlen(name)] == ' ') {
            v = strtod(p + strlen(name), NULL);
            break;
        }
    free(text);
    return v;
}

static int check_names(scrape_t *sc, const char *const *want, int n)
{
    int missing = 0;

    for (int i = 0; i < n; i += 2)
        if (strcmp(type_of(sc, want[i]), want[i + 1]) != 0) {
            fprintf(stderr, "\n  %s: TYPE '%s', expected %s", want[i], type_of(sc, want[i]),
                    want[i + 1]);
            missing++;
        }
    return missing;
}

static void test_shard_and_worker(void)
{
    static const char *const ps_want[] = {
        "funnel_ps_rows_resident",
        "gauge",
        "funnel_ps_pushes_total",
        "counter",
        "funnel_ps_pull_keys_total",
        "counter",
        "funnel_ps_push_keys_total",
        "counter",
        "funnel_ps_requests_total",
        "counter",
        "funnel_ps_request_duration_seconds",
        "histogram",
        "funnel_ps_slot_rows_resident",
        "gauge",
        "funnel_ps_build_info",
        "gauge",
    };
    static const char *const w_want[] = {
        "funnel_worker_samples_total",
        "counter",
        "funnel_worker_batches_total",
        "counter",
        "funnel_worker_loss",
        "gauge",
        "funnel_worker_batch_duration_seconds",
        "histogram",
        "funnel_worker_build_info",
        "gauge",
    };
    static const char *const compare[][2] = {
        {"pushes", "funnel_ps_pushes_total"},
        {"pull_keys", "funnel_ps_pull_keys_total"},
        {"push_keys", "funnel_ps_push_keys_total"},
        {"rows_resident", "funnel_ps_rows_resident"},
        {"dense_pushes", "funnel_ps_dense_pushes_total"},
        {"rows_created", "funnel_ps_rows_created_total"},
    };
    char ep[600], log[700], body[700];
    scrape_t *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    int pport = tu_free_port(), wport = tu_free_port();
    pid_t ps = -1, w = -1;
    double t0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_FATAL(pport > 0 && wport > 0 && pport != wport);
    snprintf(ep, sizeof(ep), "ipc://%s/shard0", dir);
    snprintf(body, sizeof(body), "%s/body.txt", dir);
    snprintf(log, sizeof(log), "%s/ps.log", dir);
    ps = tu_spawn(log, "exec %s --listen %s --data %s/ps --towers 16,8 --metrics_listen %d", psbin,
                  ep, dir, pport);
    CU_ASSERT_FATAL(ps > 0);
    if (wait_healthy(pport, 30) != 0) {
        CU_FAIL("the shard's /healthz never answered");
        goto out;
    }
    /* the shard before any worker: parses, names and types are there */
    CU_ASSERT_EQUAL_FATAL(scrape(pport, a), 0);
    CU_ASSERT_EQUAL(a->bad, 0);
    if (a->bad)
        fprintf(stderr, "\n  %s\n", a->why);
    CU_ASSERT_EQUAL(check_names(a, ps_want, (int)(sizeof(ps_want) / sizeof(ps_want[0]))), 0);
    CU_ASSERT_EQUAL(value(a, "funnel_ps_pushes_total", ""), 0);
    CU_ASSERT_EQUAL(value(a, "funnel_ps_slot_rows_resident", "slot=\"item_id\""), 0);
    CU_ASSERT_EQUAL(http(pport, "GET", "/nothing", body), 404);
    CU_ASSERT_EQUAL(http(pport, "PUT", "/metrics", body), 405);

    /* a worker that trains until stopped (many epochs of a small log) */
    snprintf(log, sizeof(log), "%s/w.log", dir);
    w = tu_spawn(log,
                 "exec %s train --ps %s --towers 16,8 --epochs 10000 --progress off --metrics_file "
                 "%s/w.jsonl "
                 "--metrics_listen 127.0.0.1:%d %s/data/train.tsv",
                 wbin, ep, dir, wport, dir);
    CU_ASSERT_FATAL(w > 0);
    if (wait_healthy(wport, 30) != 0) {
        CU_FAIL("the worker's /healthz never answered");
        goto out;
    }
    /* its counters grow between two scrapes */
    t0 = clock_now_s();
    double s1 = NAN, s2 = NAN;
    while (clock_now_s() - t0 < 60) {
        if (scrape(wport, a) == 0 && !a->bad &&
            (s1 = value(a, "funnel_worker_samples_total", "")) > 0)
            break;
        usleep(200 * 1000);
    }
    CU_ASSERT_FATAL(s1 > 0);
    CU_ASSERT_EQUAL(a->bad, 0);
    CU_ASSERT_EQUAL(check_names(a, w_want, (int)(sizeof(w_want) / sizeof(w_want[0]))), 0);
    double loss = value(a, "funnel_worker_loss", "task=\"ctr\"");
    CU_ASSERT(loss > 0 && loss < 2);
    CU_ASSERT(value(a, "funnel_worker_loss", "task=\"ctcvr\"") > 0);
    t0 = clock_now_s();
    while (clock_now_s() - t0 < 60) {
        usleep(300 * 1000);
        if (scrape(wport, b) == 0 && !b->bad &&
            (s2 = value(b, "funnel_worker_samples_total", "")) > s1)
            break;
    }
    CU_ASSERT(s2 > s1);
    CU_ASSERT(value(b, "funnel_worker_batches_total", "") >=
              value(a, "funnel_worker_batches_total", ""));
    CU_ASSERT_EQUAL(value(b, "funnel_worker_batch_duration_seconds_count", ""),
                    value(b, "funnel_worker_batches_total", ""));
    /* and so do the shard's */
    CU_ASSERT_EQUAL(scrape(pport, b), 0);
    CU_ASSERT(value(b, "funnel_ps_pushes_total", "") > 0);
    CU_ASSERT(value(b, "funnel_ps_pull_keys_total", "") > 0);
    CU_ASSERT(value(b, "funnel_ps_rows_resident", "") > 0);
    CU_ASSERT(value(b, "funnel_ps_request_duration_seconds_count", "type=\"PULL\"") > 0);
    CU_ASSERT(value(b, "funnel_ps_requests_by_type_total", "type=\"PUSH\"") > 0);

    /* the worker stops; then the shard's numbers are those of ctl stats */
    tu_stop(w, SIGTERM);
    w = -1;
    CU_ASSERT_EQUAL(http(wport, "GET", "/healthz", body), -1); /* its server went with it */
    double prev = -1, now = -2;
    t0 = clock_now_s();
    while (clock_now_s() - t0 < 30 && prev != now) { /* settled: two scrapes agree */
        prev = now;
        usleep(400 * 1000);
        if (scrape(pport, a) == 0)
            now = value(a, "funnel_ps_pushes_total", "");
    }
    for (size_t i = 0; i < sizeof(compare) / sizeof(compare[0]); i++) {
        double want = ctl_stat(ep, compare[i][0]);
        double got = value(a, compare[i][1], "");
        if (want != got)
            fprintf(stderr, "\n  %s: ctl stats %.0f, /metrics %.0f", compare[i][0], want, got);
        CU_ASSERT(want >= 0 && want == got);
    }
    /* counters never went down */
    CU_ASSERT(value(a, "funnel_ps_pushes_total", "") >= value(b, "funnel_ps_pushes_total", ""));
    CU_ASSERT(value(a, "funnel_ps_requests_total", "") > value(b, "funnel_ps_requests_total", ""));
out:
    if (w > 0)
        tu_stop(w, SIGTERM);
    if (ps > 0)
        tu_stop(ps, SIGTERM);
    free(a);
    free(b);
}

/* A shard whose metrics port is taken (or whose address is wrong) does not
 * start, and says which option and why. */
static void test_port_taken(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port, rc;
    char out[700], *text;

    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    CU_ASSERT_EQUAL_FATAL(listen(fd, 1), 0);
    CU_ASSERT_EQUAL_FATAL(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    snprintf(out, sizeof(out), "%s/taken.txt", dir);
    rc =
        tu_sh(out, "timeout 60 %s --listen ipc://%s/taken.sock --data %s/taken --metrics_listen %d",
              psbin, dir, dir, port);
    close(fd);
    CU_ASSERT(rc != 0 && rc != 124); /* failed by itself, not by the timeout */
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "--metrics_listen"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "Address already in use"));
    free(text);

    rc = tu_sh(
        out,
        "timeout 60 %s --listen ipc://%s/bad.sock --data %s/bad --metrics_listen 127.0.0.1:http",
        psbin, dir, dir);
    CU_ASSERT(rc != 0 && rc != 124);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "port must be a number"));
    free(text);

    /* and --help names the option for both programs */
    CU_ASSERT_EQUAL(tu_sh(out, "%s --help", psbin), 0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "--metrics_listen"));
    free(text);
    CU_ASSERT_EQUAL(tu_sh(out, "%s train --help", wbin), 0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "--metrics_listen"));
    free(text);
}

static int setup(void)
{
    tu_bin(psbin, sizeof(psbin), "funnel-ps");
    tu_bin(wbin, sizeof(wbin), "funnel-worker");
    return tu_world(dir, sizeof(dir), "prom", "--train 20000 --test 100 --seed 3");
}

static int teardown(void)
{
    tu_stop_all();
    tu_rmtree(dir);
    return 0;
}

int test_prom_register(void)
{
    CU_pSuite s = CU_add_suite("prom", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "registry renders the text format: HELP/TYPE, escaped labels, histograms",
                test_render_format);
    CU_add_test(s, "--metrics_listen: PORT binds 127.0.0.1; bad forms are named",
                test_parse_listen);
    CU_add_test(s, "server: 200/404/405, a taken port, one snapshot per scrape under publishes",
                test_server_in_process);
    CU_add_test(s, "shard + worker scraped with curl: names, types, growth, equal to ctl stats",
                test_shard_and_worker);
    CU_add_test(s, "a shard whose metrics port is taken stops with a clear error", test_port_taken);
    return CU_get_error();
}
