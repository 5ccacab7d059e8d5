/*
 * bench_curve.c - what CURVE costs a shard: keys/s of pulls and pushes
 * through the workers' client (proto/ps_client.h) against a plain shard
 * and a keyed one (CURVE + the ZAP handler + the per-request role check),
 * side by side, in the same run.
 *
 *   bin/bench-curve [SECONDS]     (SECONDS per window; default 1)
 *
 * Starts two funnel-ps processes ($FUNNEL_BIN, default bin/) on free
 * tcp://127.0.0.1 ports with the same one-slot layout (dim 16, towers 8),
 * makes the keys (curve_keygen) and the allow-list in a scratch directory
 * under $TMPDIR, fills both tables with the same 100 000 rows, then
 * measures, ROUNDS times each and interleaved so a noisy shared machine
 * moves both sides alike:
 *   pull   PULL of 1000 uniformly random keys, 8 requests in flight;
 *   push   PUSH of 1000 random keys with gradients (Adagrad), the client's
 *          max_inflight 8.
 * Each line prints min / median / max keys/s of the plain and the CURVE
 * shard and the ratio of the medians. The last line is one JSON object.
 * Both shards are killed at the end (SIGKILL; also if this process dies,
 * PR_SET_PDEATHSIG) and the scratch directory is removed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/dirs.h"
#include "common/err.h"
#include "common/rng.h"
#include "proto/curve.h"
#include "proto/msg.h"
#include "proto/ps_client.h"

#define KEYS 1000         /* keys per request */
#define INFLIGHT 8        /* requests in flight */
#define UNIVERSE 100000   /* rows of each table */
#define DIM 16            /* floats per row */
#define ROUNDS 5          /* windows per figure */
#define SENDER 3          /* the client's rank (the worker key's) */
#define START_DEADLINE 30 /* s for a shard to answer */

typedef struct shard {
    pid_t pid;
    char endpoint[64];
    char data[DIRS_PATH_MAX];
    ps_client_t *cli;
} shard_t;

typedef struct fig {
    double v[ROUNDS]; /* keys/s */
    int n;
} fig_t;

typedef struct bench {
    char bin[DIRS_PATH_MAX], dir[256];
    double window; /* s */
    uint64_t rng;
    uint64_t keys[KEYS];
    float grads[KEYS * DIM];
    volatile sig_atomic_t stop;
    errbuf_t eb;
} bench_t;

static bench_t b;

static void on_signal(int sig)
{
    (void)sig;
    b.stop = 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int free_port(int *port)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc = 0;

    if (fd < 0)
        return errbuf_set(&b.eb, ERR_NET, "socket: %s", strerror(errno));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        rc = errbuf_set(&b.eb, ERR_NET, "bind 127.0.0.1:0: %s", strerror(errno));
    else
        *port = ntohs(a.sin_port);
    close(fd);
    return rc;
}

/* Start funnel-ps (keyed: with the scratch keys) and connect a client. */
static int shard_start(shard_t *s, const char *name, int keyed)
{
    char prog[DIRS_PATH_MAX], log[DIRS_PATH_MAX], skey[DIRS_PATH_MAX], allow[DIRS_PATH_MAX];
    char spub[DIRS_PATH_MAX], wkey[DIRS_PATH_MAX];
    char dim[16];
    int port = 0, rc;
    pid_t parent = getpid();
    ps_client_opts_t o = {
        .sender = SENDER, .timeout_ms = 20000, .deadline_s = 60, .max_inflight = INFLIGHT};
    char *ep[1];

    memset(s, 0, sizeof(*s));
    rc = free_port(&port);
    if (rc != 0)
        return rc;
    snprintf(s->endpoint, sizeof(s->endpoint), "tcp://127.0.0.1:%d", port);
    snprintf(dim, sizeof(dim), "%d", DIM);
    if ((rc = dirs_path(s->data, sizeof(s->data), &b.eb, "%s/%s-data", b.dir, name)) != 0 ||
        (rc = dirs_path(log, sizeof(log), &b.eb, "%s/%s.log", b.dir, name)) != 0 ||
        (rc = dirs_path(prog, sizeof(prog), &b.eb, "%s/funnel-ps", b.bin)) != 0 ||
        (rc = dirs_path(skey, sizeof(skey), &b.eb, "%s/shard.key", b.dir)) != 0 ||
        (rc = dirs_path(spub, sizeof(spub), &b.eb, "%s/shard.pub", b.dir)) != 0 ||
        (rc = dirs_path(wkey, sizeof(wkey), &b.eb, "%s/worker.key", b.dir)) != 0 ||
        (rc = dirs_path(allow, sizeof(allow), &b.eb, "%s/allow", b.dir)) != 0)
        return rc;
    /* the plain shard's argv ends where the keyed one's key options begin */
    char *argv[] = {prog,        "--listen",
                    s->endpoint, "--data",
                    s->data,     "--slots",
                    "s0",        "--emb_dim",
                    dim,         "--towers",
                    "8",         "--flush_interval",
                    "3600",      keyed ? "--curve_secret_key" : NULL,
                    skey,        "--curve_allow",
                    allow,       NULL};
    if (access(prog, X_OK) != 0)
        return errbuf_set(&b.eb, ERR_NOTFOUND, "%s: %s (set FUNNEL_BIN)", prog, strerror(errno));
    s->pid = fork();
    if (s->pid < 0)
        return errbuf_set(&b.eb, ERR_IO, "fork: %s", strerror(errno));
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(prog, argv);
        _exit(127);
    }
    if (keyed && (rc = ps_client_opts_keys(&o, spub, wkey, &b.eb)) != 0)
        return rc;
    o.deadline_s = START_DEADLINE;
    ep[0] = s->endpoint;
    rc = ps_client_open(&s->cli, ep, 1, &o, &b.eb);
    memset(&o.curve_self, 0, sizeof(o.curve_self));
    if (rc == 0)
        ps_client_set_stop(s->cli, &b.stop);
    return rc;
}

static void shard_stop(shard_t *s)
{
    ps_client_destroy(&s->cli);
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

static void rows_msg(msg_t *m, int type)
{
    msg_init(m, type, 0);
    m->u.rows.nslots = 1;
    memset(&m->u.rows.slot[0], 0, sizeof(m->u.rows.slot[0]));
    m->u.rows.slot[0].slot = 0;
    m->u.rows.slot[0].nkeys = KEYS;
    m->u.rows.slot[0].keys = b.keys;
    if (type == MSG_PUSH) {
        m->u.rows.slot[0].dim = DIM;
        m->u.rows.slot[0].rows = b.grads;
    }
}

/* Keys of request n: sequential (fill) or uniformly random. */
static void next_keys(uint64_t n, int fill)
{
    for (int i = 0; i < KEYS; i++) {
        uint64_t r = fill ? n * KEYS + (uint64_t)i : rng_splitmix64(&b.rng) % UNIVERSE;
        uint64_t s = r * 2 + 1;
        b.keys[i] = rng_splitmix64(&s);
    }
}

/* Pulls (INFLIGHT outstanding) or pushes for `seconds` (or max_req
 * requests when > 0); *keys_s gets the rate. */
static int drive(shard_t *s, int push, int fill, double seconds, uint64_t max_req, double *keys_s)
{
    uint64_t ids[INFLIGHT], sent = 0, done = 0;
    double t0 = clock_now_s(), t_end = t0 + seconds;
    msg_t m, rep;
    int rc = 0;

#define MORE() (!b.stop && (max_req ? sent < max_req : clock_now_s() < t_end))
    if (push) {
        while (rc == 0 && MORE()) {
            next_keys(sent, fill);
            rows_msg(&m, MSG_PUSH);
            rc = ps_client_send(s->cli, 0, &m, &ids[0], &b.eb);
            sent++;
        }
        if (rc == 0)
            rc = ps_client_drain(s->cli, &b.eb);
        done = sent;
    } else {
        for (; sent < INFLIGHT && rc == 0; sent++) {
            next_keys(sent, fill);
            rows_msg(&m, MSG_PULL);
            rc = ps_client_send(s->cli, 0, &m, &ids[sent % INFLIGHT], &b.eb);
        }
        while (rc == 0 && done < sent) {
            rc = ps_client_wait(s->cli, 0, ids[done % INFLIGHT], &rep, &b.eb);
            if (rc == 0 && (rep.hdr.type != MSG_PULL_OK || rep.u.rows.slot[0].nkeys != KEYS))
                rc = errbuf_set(&b.eb, ERR_PROTO, "%s: bad PULL_OK", s->endpoint);
            done++;
            if (rc == 0 && MORE()) {
                next_keys(sent, fill);
                rows_msg(&m, MSG_PULL);
                rc = ps_client_send(s->cli, 0, &m, &ids[sent % INFLIGHT], &b.eb);
                sent++;
            }
        }
    }
#undef MORE
    if (rc == 0 && b.stop)
        rc = errbuf_set(&b.eb, ERR_STOPPED, "interrupted");
    *keys_s = (double)done * KEYS / (clock_now_s() - t0);
    return rc;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

/* min, median, max of a figure into out[3]. */
static void spread(const fig_t *f, double out[3])
{
    double v[ROUNDS];

    memcpy(v, f->v, sizeof(v));
    qsort(v, (size_t)f->n, sizeof(double), cmp_double);
    out[0] = v[0];
    out[1] = v[f->n / 2];
    out[2] = v[f->n - 1];
}

static int make_keys(void)
{
    char path[DIRS_PATH_MAX], line[256];
    curve_pair_t w;
    int rc;

    rc = dirs_path(path, sizeof(path), &b.eb, "%s/shard", b.dir);
    if (rc == 0)
        rc = curve_keygen(path, NULL, &b.eb);
    if (rc == 0)
        rc = dirs_path(path, sizeof(path), &b.eb, "%s/worker", b.dir);
    if (rc == 0)
        rc = curve_keygen(path, &w, &b.eb);
    if (rc == 0)
        rc = dirs_path(path, sizeof(path), &b.eb, "%s/allow", b.dir);
    if (rc != 0)
        return rc;
    snprintf(line, sizeof(line), "worker %s bench %d\n", w.pub, SENDER);
    FILE *f = fopen(path, "w");
    if (!f || fputs(line, f) < 0 || fclose(f) != 0)
        return errbuf_set(&b.eb, ERR_IO, "write %s: %s", path, strerror(errno));
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const what[2] = {"pull", "push"};
    const char *env = getenv("FUNNEL_BIN"), *tmp = getenv("TMPDIR");
    shard_t sh[2]; /* plain, curve */
    fig_t fig[2][2];
    double r;
    int rc = 0;

    memset(sh, 0, sizeof(sh));
    memset(fig, 0, sizeof(fig));
    b.window = argc > 1 ? atof(argv[1]) : 1.0;
    if (b.window <= 0 || argc > 2) {
        fprintf(stderr, "usage: bench-curve [SECONDS per window]\n");
        return 2;
    }
    if (!curve_available()) {
        printf("bench-curve: this libzmq has no CURVE; nothing to measure\n");
        return 0;
    }
    snprintf(b.bin, sizeof(b.bin), "%s", env && env[0] ? env : "bin");
    snprintf(b.dir, sizeof(b.dir), "%s/bench-curve.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(b.dir)) {
        fprintf(stderr, "bench-curve: mkdtemp %s: %s\n", b.dir, strerror(errno));
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    b.rng = 42;
    for (size_t i = 0; i < KEYS * DIM; i++)
        b.grads[i] = 0.01f * ((float)(rng_splitmix64(&b.rng) >> 40) / 16777216.0f - 0.5f);
    rc = make_keys();
    if (rc == 0)
        rc = shard_start(&sh[0], "plain", 0);
    if (rc == 0)
        rc = shard_start(&sh[1], "curve", 1);
    for (int k = 0; k < 2 && rc == 0; k++)
        rc = drive(&sh[k], 0, 1, 1e9, UNIVERSE / KEYS, &r); /* create every row */
    for (int k = 0; k < 2 && rc == 0; k++)                  /* warm: connections, buffers */
        for (int p = 0; p < 2 && rc == 0; p++)
            rc = drive(&sh[k], p, 0, 0.2, 0, &r);
    if (rc == 0)
        printf("bench-curve: a plain and a CURVE funnel-ps shard on tcp loopback through "
               "ps_client, %d-key requests, %d in flight, %d rows of dim %d; %d x %.1f s "
               "windows each, interleaved\n",
               KEYS, INFLIGHT, UNIVERSE, DIM, ROUNDS, b.window);
    for (int round = 0; round < ROUNDS && rc == 0; round++)
        for (int p = 0; p < 2 && rc == 0; p++)
            for (int k = 0; k < 2 && rc == 0; k++) {
                rc = drive(&sh[k], p, 0, b.window, 0, &r);
                fig[p][k].v[fig[p][k].n++] = r;
            }
    if (rc == 0) {
        double s[2][2][3];
        for (int p = 0; p < 2; p++) {
            spread(&fig[p][0], s[p][0]);
            spread(&fig[p][1], s[p][1]);
            printf("curve %s dim%d: plain %.2f / %.2f / %.2f M keys/s; CURVE %.2f / %.2f / "
                   "%.2f M keys/s (min / median / max); CURVE / plain %.2f\n",
                   what[p], DIM, s[p][0][0] / 1e6, s[p][0][1] / 1e6, s[p][0][2] / 1e6,
                   s[p][1][0] / 1e6, s[p][1][1] / 1e6, s[p][1][2] / 1e6, s[p][1][1] / s[p][0][1]);
        }
        printf("{\"bench\": \"curve\", \"keys_per_request\": %d, \"inflight\": %d, \"dim\": %d, "
               "\"plain_pull\": %.0f, \"curve_pull\": %.0f, \"plain_push\": %.0f, "
               "\"curve_push\": %.0f, \"pull_ratio\": %.3f, \"push_ratio\": %.3f}\n",
               KEYS, INFLIGHT, DIM, s[0][0][1], s[0][1][1], s[1][0][1], s[1][1][1],
               s[0][1][1] / s[0][0][1], s[1][1][1] / s[1][0][1]);
    }
    shard_stop(&sh[0]);
    shard_stop(&sh[1]);
    nftw(b.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) {
        fprintf(stderr, "bench-curve: %s\n", b.eb.msg);
        return 1;
    }
    return 0;
}
