/*
 * bench_ps.c - throughput of one parameter-server shard (bin/funnel-ps)
 * over ZeroMQ, beside a raw ZeroMQ request/reply of the same payload sizes
 * measured in the same run (issue 4's benchmark).
 *
 *   bin/bench-ps [SECONDS]     (SECONDS per measurement window; default 1)
 *
 * Starts the shards itself ($FUNNEL_BIN/funnel-ps, default bin/) on free
 * tcp://127.0.0.1 ports with a one-slot layout of dim 16 or 64 (towers 8:
 * the dense part is tiny) and data under a scratch directory in $TMPDIR,
 * and always kills them at the end (SIGKILL: their data is thrown away;
 * also if this process dies, through PR_SET_PDEATHSIG).
 *
 * What is measured, every figure as keys/s with 1000-key requests and 8
 * requests in flight over one DEALER socket:
 *   ps pull      PULL of 1000 uniformly random keys of a table of 1 M rows
 *                (a warm-up pass creates every row first);
 *   ps push      PUSH of 1000 random keys with gradients, each push a new
 *                sequence number: the shard applies Adagrad;
 *   raw zmq      the same client loop against a ROUTER echo process
 *                (forked before any ZeroMQ context exists; the shard's
 *                socket options and loop shape) that answers a request of
 *                the PULL's (PUSH's) size with a reply of the PULL_OK's
 *                (ACK's) size: what ZeroMQ alone costs for the same bytes
 *                on the same transport; the ratio ps / raw is the issue's
 *                target (>= 0.8);
 *   ps_client    the same pulls and pushes through worker/ps_client.h (the
 *                workers' client: retries, reply matching, 8 in flight);
 *   hot          the same pulls and pushes on the first 10 000 rows only
 *                (they stay in the CPU caches): what the table's memory
 *                accesses cost, by difference;
 *   zipf         the same pulls and pushes of 1000 distinct Zipf(1.1) keys
 *                over the 1 M rows (ID traffic is skewed: the hot rows stay
 *                in the caches, the tail does not);
 *   spill        pull then push of the same 1000 Zipf(1.1) keys (distinct
 *                within a request) on shards whose mem_limit holds a tenth
 *                of their 1 M rows (pre-filled, so most rows live beyond
 *                it), one with a spill file (spill = file, the default),
 *                one spilling to RocksDB (spill = store), as fractions of
 *                the same loop on an unlimited shard, the three in turn in
 *                each round. `bench-ps spill [SECONDS]` runs only this.
 *   pinned       the dim-16 pull and raw figures again with the shard's
 *                (echo's) loop thread alone on CPU 1 and its ZeroMQ I/O
 *                thread beside this process on CPU 0 (sched_setaffinity on
 *                each thread), when 2 CPUs are available;
 *   CPU ratio    the target for the shard's CPU per request: shard
 *                CPU per 1000-key pull / (echo CPU per request + 1000 x the
 *                bare loop's ns per key, `bench-table bare DIM`: the
 *                median of its passes, measured before the shards start
 *                and again after each round, so under the rounds' load;
 *                the median of those), pinned and unpinned (target
 *                <= 1.3).
 * Beside each rate: the CPU time the server process (shard or echo, all
 * its threads) and this process spent per request, from /proc and
 * getrusage - on a shared 2-core machine a rate moves with the other
 * load, CPU per request much less. Also the table's resident bytes per
 * row (STATS) after the warm-up.
 *
 * The raw-DEALER client encodes every request with proto/codec.h and
 * decodes and checks every reply (type, request id, row count and width,
 * no duplicate ACK); a wrong reply ends the benchmark with exit status 1.
 * Each figure is the median of 3 windows, interleaved with the others so
 * a noisy shared machine moves both sides of a ratio alike. Shards run
 * with flush_interval 3600: no timed flush falls into a window (flushing
 * is measured by bench-table). The last line is one JSON object.
 *
 * This program includes zmq.h for the raw baseline and the raw client;
 * nothing else of funnel outside the PS loop and client does.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/dirs.h"
#include "common/err.h"
#include "common/rng.h"
#include "proto/codec.h"
#include "proto/msg.h"
#include "proto/ps_client.h"

#define KEYS 1000          /* keys per request */
#define INFLIGHT 8         /* requests in flight */
#define UNIVERSE 1000000   /* rows of every shard's table */
#define HOT_ROWS 10000     /* rows of the cache-resident figures */
#define ROUNDS 3           /* windows per figure (median reported) */
#define SENDER 7           /* rank of the raw client's pushes */
#define CLIENT_SENDER 8    /* rank of ps_client's pushes */
#define ZIPF_S 1.1         /* Zipf exponent of the spill keys */
#define ZIPF_SETS 4096     /* precomputed 1000-key requests, cycled */
#define SPILL_FACTOR 10    /* rows / rows that fit in mem_limit */
#define REPLY_TIMEOUT 30.0 /* s without a reply before giving up */
#define START_TIMEOUT 30.0 /* s for a shard to answer its first request */
#define MAX_DIM 64         /* largest dim benchmarked */
#define STR_(x) #x
#define STR(x) STR_(x) /* a constant above as a string */

/* One funnel-ps process and our DEALER to it. */
typedef struct shard {
    pid_t pid;                /* 0: not running */
    int dim;                  /* floats per row */
    char endpoint[64];        /* tcp://127.0.0.1:PORT */
    char data[DIRS_PATH_MAX]; /* its --data directory */
    char log[DIRS_PATH_MAX];  /* its stdout + stderr */
    void *sock;               /* DEALER, in bench_t.ctx */
    uint64_t seq;             /* last push sequence number SENDER used */
} shard_t;

/* The ROUTER echo process of the raw baseline. */
typedef struct echo {
    pid_t pid;         /* 0: not running */
    char endpoint[64]; /* tcp://127.0.0.1:PORT */
} echo_t;

typedef struct bench {
    char bin[DIRS_PATH_MAX]; /* directory of funnel-ps */
    char dir[256];           /* scratch directory */
    double window;           /* s per measurement */
    volatile sig_atomic_t *stop;
    void *ctx;      /* the client side's ZeroMQ context */
    void *raw_sock; /* DEALER to the echo process */
    echo_t echo;
    codec_buf_t enc;
    codec_dec_t *dec;
    uint64_t keys[KEYS];         /* keys of the request being built */
    float grads[KEYS * MAX_DIM]; /* gradients of every push (small, fixed) */
    unsigned char *raw_req;      /* raw request bytes */
    size_t raw_cap;              /* bytes */
    uint64_t *zipf_sets;         /* ZIPF_SETS x KEYS distinct Zipf keys */
    uint64_t rng;
    double bare_ns[2];  /* bench-table's bare loop at dim 16 and 64: ns per key, 0: unknown */
    cpu_set_t all_cpus; /* this process's CPUs at the start */
    errbuf_t eb;
} bench_t;

/* Request streams. */
enum {
    F_PULL_SEQ,  /* PULL of keys n*KEYS .. +KEYS (creates the table) */
    F_PULL,      /* PULL of uniformly random keys */
    F_PUSH,      /* PUSH of uniformly random keys */
    F_PULL_HOT,  /* PULL of random keys of the first HOT_ROWS rows */
    F_PUSH_HOT,  /* PUSH of random keys of the first HOT_ROWS rows */
    F_ZIPF,      /* request 2i: PULL of Zipf set i; 2i+1: PUSH of the same keys */
    F_PULL_ZIPF, /* PULL of Zipf set n */
    F_PUSH_ZIPF, /* PUSH of Zipf set n */
    F_RAW,       /* raw bytes to the echo process */
};

typedef struct flow {
    int kind;
    int dim;          /* floats per row */
    uint64_t max_req; /* stop after this many requests; 0: by time only */
    size_t req_len;   /* F_RAW: bytes of a request */
    size_t rep_len;   /* F_RAW: bytes of a reply */
} flow_t;

typedef struct result {
    uint64_t requests; /* answered */
    double seconds;    /* from the first send to the last reply */
} result_t;

/* One reported figure: a rate per window. */
typedef struct fig {
    const char *name;
    double v[ROUNDS];      /* keys/s */
    double srv_us[ROUNDS]; /* CPU of the shard (or echo) process per request, us */
    double cli_us[ROUNDS]; /* CPU of this process per request, us */
    int n;
} fig_t;

/* The key of row i: scattered over 64 bits, so hot rows are not neighbours. */
static uint64_t key_of(uint64_t i)
{
    uint64_t s = i * 2 + 1;
    return rng_splitmix64(&s);
}

/* Median of the first n (at most ROUNDS + 1) of x. */
static double median_of(const double *x, int n)
{
    double v[ROUNDS + 1];

    if (n > ROUNDS + 1)
        n = ROUNDS + 1;
    memcpy(v, x, (size_t)(n > 0 ? n : 0) * sizeof(v[0]));
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n ? v[n / 2] : 0.0;
}

static double median(const fig_t *f)
{
    return median_of(f->v, f->n);
}

/* ---- scratch directory ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rmtree(const char *path)
{
    if (path[0])
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- shard processes ---- */

/* A port nobody listens on now: bind port 0 and ask which one we got. */
static int free_port(bench_t *b, int *port)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc = 0;

    if (fd < 0)
        return errbuf_set(&b->eb, ERR_NET, "socket: %s", strerror(errno));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        rc = errbuf_set(&b->eb, ERR_NET, "bind 127.0.0.1:0: %s", strerror(errno));
    else
        *port = ntohs(a.sin_port);
    close(fd);
    return rc;
}

/* Print the end of a shard's log to stderr (after a failure). */
static void show_log_tail(const shard_t *s)
{
    char line[512], ring[8][512];
    int n = 0;
    FILE *f = fopen(s->log, "r");

    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        snprintf(ring[n++ % 8], sizeof(ring[0]), "%s", line);
    fclose(f);
    fprintf(stderr, "bench-ps: last lines of %s:\n", s->log);
    for (int i = n > 8 ? n - 8 : 0; i < n; i++)
        fprintf(stderr, "  %s", ring[i % 8]);
}

/* 0 if the shard still runs, else ERR_NET naming how it ended. */
static int shard_alive(bench_t *b, shard_t *s)
{
    int status;

    if (s->pid <= 0)
        return errbuf_set(&b->eb, ERR_NET, "shard at %s is not running", s->endpoint);
    if (waitpid(s->pid, &status, WNOHANG) != s->pid)
        return 0;
    s->pid = 0;
    show_log_tail(s);
    return errbuf_set(&b->eb, ERR_NET, "funnel-ps at %s ended (%s %d)", s->endpoint,
                      WIFSIGNALED(status) ? "signal" : "exit status",
                      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

static void shard_stop(shard_t *s)
{
    if (s->sock) {
        zmq_close(s->sock);
        s->sock = NULL;
    }
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    rmtree(s->data);
}

static int stat_get(bench_t *b, shard_t *s, const char *name, uint64_t *v, double timeout);

/* Start funnel-ps for a one-slot table of dim floats per row (mem_limit
 * bytes, 0: unlimited), connect a DEALER and wait until it answers. */
/* spill: the shard's [ps] spill ("file" or "store"), or NULL for its default */
static int shard_start(bench_t *b, shard_t *s, const char *name, int dim, size_t mem_limit,
                       const char *spill)
{
    char prog[DIRS_PATH_MAX], dims[16], mem[32];
    int port, zero = 0, rc;
    uint64_t v;
    pid_t parent = getpid();

    memset(s, 0, sizeof(*s));
    s->dim = dim;
    rc = free_port(b, &port);
    if (rc != 0)
        return rc;
    snprintf(s->endpoint, sizeof(s->endpoint), "tcp://127.0.0.1:%d", port);
    if ((rc = dirs_path(s->data, sizeof(s->data), &b->eb, "%s/%s-data", b->dir, name)) != 0 ||
        (rc = dirs_path(s->log, sizeof(s->log), &b->eb, "%s/%s.log", b->dir, name)) != 0 ||
        (rc = dirs_path(prog, sizeof(prog), &b->eb, "%s/funnel-ps", b->bin)) != 0)
        return rc;
    snprintf(dims, sizeof(dims), "%d", dim);
    snprintf(mem, sizeof(mem), "%zu", mem_limit);
    char *argv[] = {prog,        "--shard",  "0",     "--shards",    "1",  "--listen",
                    s->endpoint, "--data",   s->data, "--slots",     "s0", "--emb_dim",
                    dims,        "--towers", "8",     "--mem_limit", mem,  "--flush_interval",
                    "3600",      NULL,       NULL,    NULL};
    if (spill) {
        argv[sizeof(argv) / sizeof(argv[0]) - 3] = "--spill";
        argv[sizeof(argv) / sizeof(argv[0]) - 2] = (char *)spill;
    }
    if (access(prog, X_OK) != 0)
        return errbuf_set(&b->eb, ERR_NOTFOUND, "%s: %s (set FUNNEL_BIN)", prog, strerror(errno));
    s->pid = fork();
    if (s->pid < 0)
        return errbuf_set(&b->eb, ERR_IO, "fork: %s", strerror(errno));
    if (s->pid == 0) {
        /* the shard dies with us, whatever ends us */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(prog, argv);
        _exit(127);
    }
    s->sock = zmq_socket(b->ctx, ZMQ_DEALER);
    if (!s->sock)
        return errbuf_set(&b->eb, ERR_NET, "DEALER socket: %s", zmq_strerror(errno));
    zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_connect(s->sock, s->endpoint) != 0)
        return errbuf_set(&b->eb, ERR_NET, "connect %s: %s", s->endpoint, zmq_strerror(errno));
    /* a STATS request waits in the DEALER's queue until the shard binds */
    return stat_get(b, s, "requests", &v, START_TIMEOUT);
}

/* ---- requests and replies ---- */

/* Wait for one message on sock into msg; checks the shard (if any) and
 * the stop flag while waiting. */
static int recv_reply(bench_t *b, void *sock, shard_t *s, zmq_msg_t *msg, double timeout)
{
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    double t0 = clock_now_s();

    for (;;) {
        int n = zmq_poll(&item, 1, 200);
        if (n > 0 && zmq_msg_recv(msg, sock, ZMQ_DONTWAIT) >= 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return errbuf_set(&b->eb, ERR_NET, "poll: %s", zmq_strerror(errno));
        if (*b->stop)
            return errbuf_set(&b->eb, ERR_STOPPED, "interrupted");
        if (s && shard_alive(b, s) != 0)
            return ERR_NET;
        if (clock_now_s() - t0 > timeout)
            return errbuf_set(&b->eb, ERR_TIMEOUT, "no reply from %s in %.0f s",
                              s ? s->endpoint : b->echo.endpoint, timeout);
    }
}

static int send_bytes(bench_t *b, void *sock, const void *data, size_t len)
{
    while (zmq_send(sock, data, len, 0) < 0) {
        if (errno != EINTR)
            return errbuf_set(&b->eb, ERR_NET, "send: %s", zmq_strerror(errno));
        if (*b->stop)
            return errbuf_set(&b->eb, ERR_STOPPED, "interrupted");
    }
    return 0;
}

/* A ROWS body of one entry for slot 0: keys, and rows of width dim (or none). */
static void rows_msg(msg_t *m, int type, uint64_t req_id, const uint64_t *keys, const float *rows,
                     int dim)
{
    msg_init(m, type, req_id);
    m->u.rows.nslots = 1;
    memset(&m->u.rows.slot[0], 0, sizeof(m->u.rows.slot[0]));
    m->u.rows.slot[0].nkeys = KEYS;
    m->u.rows.slot[0].keys = keys;
    m->u.rows.slot[0].rows = rows;
    m->u.rows.slot[0].dim = rows || type == MSG_PULL_OK ? (uint32_t)dim : 0;
}

static void random_keys(bench_t *b, uint64_t *keys, uint64_t rows)
{
    for (int i = 0; i < KEYS; i++)
        keys[i] = key_of(rng_splitmix64(&b->rng) % rows);
}

static int is_push(const flow_t *f, uint64_t n)
{
    return f->kind == F_PUSH || f->kind == F_PUSH_HOT || f->kind == F_PUSH_ZIPF ||
           (f->kind == F_ZIPF && (n & 1));
}

/* Request n of flow f, encoded into b->enc (or the raw bytes): *data, *len. */
static int make_request(bench_t *b, shard_t *s, const flow_t *f, uint64_t n, const void **data,
                        size_t *len)
{
    const uint64_t *keys = b->keys;
    msg_t m;
    int rc;

    switch (f->kind) {
    case F_RAW:
        bytes_put_le64(b->raw_req, f->rep_len); /* the echo's reply size */
        *data = b->raw_req;
        *len = f->req_len;
        return 0;
    case F_PULL_SEQ:
        for (int i = 0; i < KEYS; i++)
            b->keys[i] = key_of(n * KEYS + (uint64_t)i);
        break;
    case F_PULL:
    case F_PUSH: random_keys(b, b->keys, UNIVERSE); break;
    case F_PULL_HOT:
    case F_PUSH_HOT: random_keys(b, b->keys, HOT_ROWS); break;
    case F_ZIPF: keys = b->zipf_sets + (n / 2 % ZIPF_SETS) * KEYS; break;
    case F_PULL_ZIPF:
    case F_PUSH_ZIPF: keys = b->zipf_sets + (n % ZIPF_SETS) * KEYS; break;
    }
    if (is_push(f, n)) {
        rows_msg(&m, MSG_PUSH, n + 1, keys, b->grads, f->dim);
        m.hdr.sender = SENDER;
        m.hdr.seq = ++s->seq;
    } else {
        rows_msg(&m, MSG_PULL, n + 1, keys, NULL, 0);
    }
    rc = codec_encode(&b->enc, &m, &b->eb);
    *data = b->enc.data;
    *len = b->enc.len;
    return rc;
}

/* Check a reply to one of the first `sent` requests of flow f (request n
 * has id n + 1: a run waits for all its replies before the next starts). */
static int check_reply(bench_t *b, const flow_t *f, uint64_t sent, const void *data, size_t len)
{
    msg_t m;
    uint64_t n;
    int rc;

    if (f->kind == F_RAW) {
        if (len != f->rep_len)
            return errbuf_set(&b->eb, ERR_PROTO, "raw reply of %zu bytes, expected %zu", len,
                              f->rep_len);
        return 0;
    }
    rc = codec_decode(b->dec, &m, data, len, &b->eb);
    if (rc != 0)
        return errbuf_prefix(&b->eb, rc, "reply");
    if (m.hdr.type == MSG_ERROR)
        return errbuf_set(&b->eb, m.u.error.code < 0 ? m.u.error.code : ERR_PROTO, "shard: %.*s",
                          (int)m.u.error.text.len, m.u.error.text.ptr);
    n = m.hdr.req_id - 1;
    if (m.hdr.req_id == 0 || n >= sent)
        return errbuf_set(&b->eb, ERR_PROTO, "reply to unknown request %llu",
                          (unsigned long long)m.hdr.req_id);
    if (is_push(f, n)) {
        if (m.hdr.type != MSG_ACK || (m.u.kv.flags & MSG_F_DUPLICATE))
            return errbuf_set(&b->eb, ERR_PROTO, "push %llu: %s%s", (unsigned long long)n,
                              msg_type_name(m.hdr.type),
                              (m.u.kv.flags & MSG_F_DUPLICATE) ? " (duplicate)" : "");
        return 0;
    }
    if (m.hdr.type != MSG_PULL_OK || m.u.rows.nslots != 1 || m.u.rows.slot[0].nkeys != KEYS ||
        m.u.rows.slot[0].dim != (uint32_t)f->dim)
        return errbuf_set(&b->eb, ERR_PROTO, "pull %llu: %s is not %d rows of dim %d",
                          (unsigned long long)n, msg_type_name(m.hdr.type), KEYS, f->dim);
    return 0;
}

/*
 * Run flow f over sock (to shard s, or to the echo process if s is NULL)
 * with INFLIGHT requests outstanding, for `seconds` or f->max_req
 * requests, whichever ends first; then wait for every reply.
 */
static int drive(bench_t *b, void *sock, shard_t *s, const flow_t *f, double seconds, result_t *r)
{
    uint64_t sent = 0, done = 0;
    double t0 = clock_now_s(), t_end = t0 + seconds;
    int rc = 0;

    for (; sent < INFLIGHT && (!f->max_req || sent < f->max_req) && rc == 0; sent++) {
        const void *data;
        size_t len;
        rc = make_request(b, s, f, sent, &data, &len);
        if (rc == 0)
            rc = send_bytes(b, sock, data, len);
    }
    while (rc == 0 && done < sent) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        rc = recv_reply(b, sock, s, &msg, REPLY_TIMEOUT);
        if (rc == 0)
            rc = check_reply(b, f, sent, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
        if (rc != 0)
            break;
        done++;
        if ((!f->max_req || sent < f->max_req) && clock_now_s() < t_end) {
            const void *data;
            size_t len;
            rc = make_request(b, s, f, sent, &data, &len);
            if (rc == 0)
                rc = send_bytes(b, sock, data, len);
            sent++;
        }
    }
    r->requests = done;
    r->seconds = clock_now_s() - t0;
    return rc;
}

/* A counter of the shard's STATS (name matched exactly). */
static int stat_get(bench_t *b, shard_t *s, const char *name, uint64_t *v, double timeout)
{
    zmq_msg_t msg;
    msg_t m;
    int rc;

    msg_init(&m, MSG_STATS, 1);
    m.u.cmd.text.ptr = name;
    m.u.cmd.text.len = (uint32_t)strlen(name);
    rc = codec_encode(&b->enc, &m, &b->eb);
    if (rc == 0)
        rc = send_bytes(b, s->sock, b->enc.data, b->enc.len);
    if (rc != 0)
        return rc;
    zmq_msg_init(&msg);
    rc = recv_reply(b, s->sock, s, &msg, timeout);
    if (rc == 0)
        rc = codec_decode(b->dec, &m, zmq_msg_data(&msg), zmq_msg_size(&msg), &b->eb);
    if (rc == 0 && m.hdr.type != MSG_STATS_OK)
        rc = errbuf_set(&b->eb, ERR_PROTO, "STATS answered with %s", msg_type_name(m.hdr.type));
    if (rc == 0) {
        rc = errbuf_set(&b->eb, ERR_NOTFOUND, "%s: no counter %s", s->endpoint, name);
        for (uint32_t i = 0; i < m.u.kv.n; i++) {
            const msg_kv_t *kv = &m.u.kv.kv[i];
            if (!kv->is_str && kv->name.len == strlen(name) &&
                memcmp(kv->name.ptr, name, kv->name.len) == 0) {
                *v = kv->u64;
                rc = 0;
            }
        }
    }
    zmq_msg_close(&msg);
    return rc;
}

/* ---- the raw baseline: a second process whose ROUTER answers every
 * request with as many bytes as its first 8 bytes ask for, with the
 * shard's socket options and loop shape (drain the queue, then poll; a
 * reply goes out without a copy) ---- */

/* The echo process's whole life (in the child): 0 when *stop is set. */
static int echo_serve(const char *endpoint, size_t cap, volatile sig_atomic_t *stop)
{
    int zero = 0, hwm = 100000, rc = 1;
    unsigned char *buf = calloc(1, cap);
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_ROUTER) : NULL;
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};

    if (!buf || !sock)
        goto out;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &zero, sizeof(zero));
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    if (zmq_bind(sock, endpoint) != 0) {
        fprintf(stderr, "bench-ps: echo: bind %s: %s\n", endpoint, zmq_strerror(errno));
        goto out;
    }
    while (!*stop) {
        int n = zmq_poll(&item, 1, 100);
        for (int burst = 0; n > 0 && burst < 256; burst++) {
            zmq_msg_t id, body, reply;
            uint64_t want = 0;
            int got = 0;
            zmq_msg_init(&id);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&id, sock, ZMQ_DONTWAIT) >= 0 &&
                zmq_msg_recv(&body, sock, ZMQ_DONTWAIT) >= 0) {
                got = 1;
                if (zmq_msg_size(&body) >= sizeof(want))
                    want = bytes_get_le64(zmq_msg_data(&body));
                if (want > cap)
                    want = cap;
                /* buf is never freed while the socket lives: no free function */
                if (zmq_msg_send(&id, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
                    zmq_msg_init_data(&reply, buf, want, NULL, NULL) == 0 &&
                    zmq_msg_send(&reply, sock, ZMQ_DONTWAIT) < 0)
                    zmq_msg_close(&reply);
            }
            zmq_msg_close(&body);
            zmq_msg_close(&id);
            if (!got)
                break;
        }
    }
    rc = 0;
out:
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    free(buf);
    return rc;
}

/* Fork the echo process; before any ZeroMQ context exists in this one. */
static int echo_start(bench_t *b, size_t cap)
{
    echo_t *e = &b->echo;
    pid_t parent = getpid();
    int port, rc = free_port(b, &port);

    if (rc != 0)
        return rc;
    snprintf(e->endpoint, sizeof(e->endpoint), "tcp://127.0.0.1:%d", port);
    fflush(stdout);
    e->pid = fork();
    if (e->pid < 0)
        return errbuf_set(&b->eb, ERR_IO, "fork: %s", strerror(errno));
    if (e->pid == 0) {
        /* SIGTERM (from us, or when we die) sets the inherited stop flag */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(0);
        _exit(echo_serve(e->endpoint, cap, b->stop));
    }
    return 0;
}

/* Connect b->raw_sock to the echo process. */
static int echo_connect(bench_t *b)
{
    int zero = 0;

    b->raw_sock = zmq_socket(b->ctx, ZMQ_DEALER);
    if (!b->raw_sock)
        return errbuf_set(&b->eb, ERR_NET, "DEALER socket: %s", zmq_strerror(errno));
    zmq_setsockopt(b->raw_sock, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_connect(b->raw_sock, b->echo.endpoint) != 0)
        return errbuf_set(&b->eb, ERR_NET, "connect %s: %s", b->echo.endpoint, zmq_strerror(errno));
    return 0;
}

static void echo_stop(bench_t *b)
{
    echo_t *e = &b->echo;

    if (b->raw_sock)
        zmq_close(b->raw_sock);
    b->raw_sock = NULL;
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
}

/* ---- CPU time ---- */

/* User + system CPU seconds of process pid (all its threads); -1 if unknown. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* after the command name (which may hold spaces): state, ppid, pgrp,
     * session, tty, tpgid, flags, minflt, cminflt, majflt, cmajflt, utime,
     * stime */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of this process (the client and its ZeroMQ I/O threads). */
static double self_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ---- through ps_client ---- */

/* Pulls (8 outstanding, the oldest waited for) or pushes (the client's own
 * max_inflight 8) through the workers' client, for `seconds`. */
static int drive_client(bench_t *b, ps_client_t *c, const flow_t *f, double seconds, result_t *r)
{
    uint64_t ids[INFLIGHT], sent = 0, done = 0;
    double t0 = clock_now_s(), t_end = t0 + seconds;
    msg_t m, rep;
    int rc = 0;

    if (f->kind == F_PUSH) {
        while (rc == 0 && clock_now_s() < t_end && !*b->stop) {
            random_keys(b, b->keys, UNIVERSE);
            rows_msg(&m, MSG_PUSH, 0, b->keys, b->grads, f->dim);
            rc = ps_client_send(c, 0, &m, &ids[0], &b->eb);
            sent++;
        }
        if (rc == 0)
            rc = ps_client_drain(c, &b->eb);
        done = sent;
        if (rc == 0 && ps_client_duplicates(c) != 0)
            rc = errbuf_set(&b->eb, ERR_PROTO, "ps_client: pushes acknowledged as duplicates");
    } else {
        for (; sent < INFLIGHT && rc == 0; sent++) {
            random_keys(b, b->keys, UNIVERSE);
            rows_msg(&m, MSG_PULL, 0, b->keys, NULL, 0);
            rc = ps_client_send(c, 0, &m, &ids[sent % INFLIGHT], &b->eb);
        }
        while (rc == 0 && done < sent) {
            rc = ps_client_wait(c, 0, ids[done % INFLIGHT], &rep, &b->eb);
            if (rc == 0 && (rep.hdr.type != MSG_PULL_OK || rep.u.rows.slot[0].nkeys != KEYS ||
                            rep.u.rows.slot[0].dim != (uint32_t)f->dim))
                rc = errbuf_set(&b->eb, ERR_PROTO, "ps_client: bad PULL_OK");
            done++;
            if (rc == 0 && clock_now_s() < t_end && !*b->stop) {
                random_keys(b, b->keys, UNIVERSE);
                rows_msg(&m, MSG_PULL, 0, b->keys, NULL, 0);
                rc = ps_client_send(c, 0, &m, &ids[sent % INFLIGHT], &b->eb);
                sent++;
            }
        }
    }
    if (rc == 0 && *b->stop)
        rc = errbuf_set(&b->eb, ERR_STOPPED, "interrupted");
    r->requests = done;
    r->seconds = clock_now_s() - t0;
    return rc;
}

/* ---- the bare loop and pinning ---- */

/* bench-table's bare loop of a uniform pull's memory accesses on 1 M rows
 * of dim floats: ns per key, or 0 if it could not run (said on stderr). */
static double bare_loop_ns(const bench_t *b, int dim)
{
    char cmd[DIRS_PATH_MAX + 64], line[256];
    double ns = 0;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "'%s/bench-table' bare %d", b->bin, dim);
    fflush(stdout);
    p = popen(cmd, "r");
    if (!p) {
        fprintf(stderr, "bench-ps: %s: %s\n", cmd, strerror(errno));
        return 0;
    }
    while (fgets(line, sizeof(line), p)) {
        const char *c = strstr(line, "rows: ");
        if (c)
            ns = atof(c + 6);
    }
    if (pclose(p) != 0 || ns <= 0) {
        fprintf(stderr, "bench-ps: %s failed: no bare-loop figure\n", cmd);
        return 0;
    }
    return ns;
}

/* Put thread pid of process pid (its loop thread) on CPU main_cpu and its
 * other threads (ZeroMQ's I/O and reaper threads) on other_cpu; a
 * negative CPU means every CPU of all. 0, or -1 if a thread refused. */
static int pin_threads(pid_t pid, int main_cpu, int other_cpu, const cpu_set_t *all)
{
    char path[64];
    struct dirent *e;
    DIR *d;
    int rc = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    d = opendir(path);
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        pid_t tid = (pid_t)atoi(e->d_name);
        int cpu = tid == pid ? main_cpu : other_cpu;
        cpu_set_t set;
        if (tid <= 0)
            continue;
        if (cpu < 0) {
            set = *all;
        } else {
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
        }
        if (sched_setaffinity(tid, sizeof(set), &set) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

/* Pinned (1) or not (0): the server process srv's loop thread on the
 * second CPU of all, its I/O thread and all of this process on the first. */
static int pin_pair(bench_t *b, pid_t srv, int on)
{
    int cpu[2] = {-1, -1}, n = 0;

    for (int c = 0; on && c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &b->all_cpus))
            cpu[n++] = c;
    if (on && n < 2)
        return -1;
    if (pin_threads(getpid(), cpu[0], cpu[0], &b->all_cpus) != 0)
        return -1;
    return pin_threads(srv, cpu[1], cpu[0], &b->all_cpus);
}

/* ---- figures ---- */

static double rate(const result_t *r)
{
    return r->seconds > 0 ? (double)r->requests * KEYS / r->seconds : 0.0;
}

/* Add one window: its rate, and the CPU seconds the server process and
 * this one spent in it. */
static void fig_add(fig_t *f, const result_t *r, double srv_s, double cli_s)
{
    double n = r->requests ? (double)r->requests : 1.0;

    if (f->n >= ROUNDS)
        return;
    f->srv_us[f->n] = srv_s * 1e6 / n;
    f->cli_us[f->n] = cli_s * 1e6 / n;
    f->v[f->n++] = rate(r);
}

/* Encoded sizes of the messages the raw baseline mimics. */
static int msg_size(bench_t *b, int type, int dim, size_t *len)
{
    msg_t m;
    int rc;

    if (type == MSG_ACK) {
        msg_init(&m, MSG_ACK, UINT64_MAX / 2);
    } else {
        for (int i = 0; i < KEYS; i++)
            b->keys[i] = key_of((uint64_t)i);
        rows_msg(&m, type, UINT64_MAX / 2, type == MSG_PULL_OK ? NULL : b->keys,
                 type == MSG_PUSH ? b->grads : NULL, dim);
        if (type == MSG_PUSH) {
            m.hdr.sender = SENDER;
            m.hdr.seq = UINT64_MAX / 2;
        }
    }
    rc = codec_encode(&b->enc, &m, &b->eb);
    *len = b->enc.len;
    return rc;
}

/* Which figures one dim has. */
enum {
    PS_PULL,
    RAW_PULL,
    PS_PUSH,
    RAW_PUSH,
    CL_PULL,
    CL_PUSH,
    HOT_PULL,
    HOT_PUSH,
    ZIPF_PULL,
    ZIPF_PUSH,
    PIN_PULL, /* PS_PULL, pinned (dim 16 only) */
    PIN_RAW,  /* RAW_PULL, pinned (dim 16 only) */
    NFIG
};

typedef struct dim_run {
    int dim;
    fig_t fig[NFIG];
    size_t pull_req, pull_rep, push_req, push_rep; /* bytes */
    uint64_t rows, bytes_resident, bytes_payload;
    double bare_ns; /* bench-table's bare loop, ns per key; 0: unknown */
    /* the bare loop measured before the shards start and again after each
     * round, under the load the rounds saw; bare_ns is their median */
    double bare_v[ROUNDS + 1];
    int bare_n;
} dim_run_t;

/* Create every row of s with sequential pulls (rows 0 .. UNIVERSE-1). */
static int prefill(bench_t *b, shard_t *s)
{
    flow_t f = {F_PULL_SEQ, s->dim, UNIVERSE / KEYS, 0, 0};
    result_t r;

    return drive(b, s->sock, s, &f, 1e9, &r);
}

/* The pull and push figures of one dim on a fresh unlimited shard s
 * (left running for the spill comparison). */
static int run_dim(bench_t *b, shard_t *s, dim_run_t *d, char *const *ep)
{
    static const char *names[NFIG] = {"ps pull",      "raw pull",       "ps push",
                                      "raw push",     "ps_client pull", "ps_client push",
                                      "ps pull hot",  "ps push hot",    "ps pull zipf",
                                      "ps push zipf", "ps pull pinned", "raw pull pinned"};
    ps_client_opts_t o = {
        .sender = CLIENT_SENDER, .timeout_ms = 20000, .deadline_s = 60, .max_inflight = INFLIGHT};
    ps_client_t *c = NULL;
    flow_t fl[NFIG];
    result_t r;
    int rc;

    for (int i = 0; i < NFIG; i++)
        d->fig[i] = (fig_t){.name = names[i]};
    rc = msg_size(b, MSG_PULL, d->dim, &d->pull_req);
    if (rc == 0)
        rc = msg_size(b, MSG_PULL_OK, d->dim, &d->pull_rep);
    if (rc == 0)
        rc = msg_size(b, MSG_PUSH, d->dim, &d->push_req);
    if (rc == 0)
        rc = msg_size(b, MSG_ACK, d->dim, &d->push_rep);
    if (rc != 0)
        return rc;
    fl[PS_PULL] = (flow_t){F_PULL, d->dim, 0, 0, 0};
    fl[RAW_PULL] = (flow_t){F_RAW, d->dim, 0, d->pull_req, d->pull_rep};
    fl[PS_PUSH] = (flow_t){F_PUSH, d->dim, 0, 0, 0};
    fl[RAW_PUSH] = (flow_t){F_RAW, d->dim, 0, d->push_req, d->push_rep};
    fl[CL_PULL] = fl[PS_PULL];
    fl[CL_PUSH] = fl[PS_PUSH];
    fl[HOT_PULL] = (flow_t){F_PULL_HOT, d->dim, 0, 0, 0};
    fl[HOT_PUSH] = (flow_t){F_PUSH_HOT, d->dim, 0, 0, 0};
    fl[ZIPF_PULL] = (flow_t){F_PULL_ZIPF, d->dim, 0, 0, 0};
    fl[ZIPF_PUSH] = (flow_t){F_PUSH_ZIPF, d->dim, 0, 0, 0};
    fl[PIN_PULL] = fl[PS_PULL];
    fl[PIN_RAW] = fl[RAW_PULL];

    double t = clock_now_s();
    rc = prefill(b, s);
    if (rc == 0)
        rc = stat_get(b, s, "rows_resident", &d->rows, REPLY_TIMEOUT);
    if (rc == 0)
        rc = stat_get(b, s, "bytes_resident", &d->bytes_resident, REPLY_TIMEOUT);
    if (rc == 0)
        rc = stat_get(b, s, "bytes_payload", &d->bytes_payload, REPLY_TIMEOUT);
    if (rc != 0)
        return rc;
    fprintf(stderr, "bench-ps: dim %d: %llu rows created in %.1f s\n", d->dim,
            (unsigned long long)d->rows, clock_now_s() - t);
    rc = ps_client_open(&c, ep, 1, &o, &b->eb);
    if (rc != 0)
        return rc;
    ps_client_set_stop(c, b->stop);
    /* a short untimed pass of each, so connections and buffers are warm */
    for (int i = 0; i < PIN_PULL && rc == 0; i++) {
        if (i == CL_PULL || i == CL_PUSH)
            rc = drive_client(b, c, &fl[i], 0.1, &r);
        else
            rc = drive(b, i == RAW_PULL || i == RAW_PUSH ? b->raw_sock : s->sock,
                       i == RAW_PULL || i == RAW_PUSH ? NULL : s, &fl[i], 0.1, &r);
    }
    for (int round = 0; round < ROUNDS && rc == 0; round++) {
        for (int i = 0; i < NFIG && rc == 0; i++) {
            int raw = i == RAW_PULL || i == RAW_PUSH || i == PIN_RAW;
            int pin = i == PIN_PULL || i == PIN_RAW;
            pid_t srv = raw ? b->echo.pid : s->pid;
            if (pin && (d->dim != 16 || pin_pair(b, srv, 1) != 0)) {
                pin_pair(b, srv, 0);
                continue; /* no second CPU, or not allowed: no pinned figures */
            }
            double srv0 = proc_cpu_s(srv), cli0 = self_cpu_s();
            if (i == CL_PULL || i == CL_PUSH)
                rc = drive_client(b, c, &fl[i], b->window, &r);
            else if (raw)
                rc = drive(b, b->raw_sock, NULL, &fl[i], b->window, &r);
            else
                rc = drive(b, s->sock, s, &fl[i], b->window, &r);
            if (rc == 0)
                fig_add(&d->fig[i], &r, proc_cpu_s(srv) - srv0, self_cpu_s() - cli0);
            if (pin)
                pin_pair(b, srv, 0);
        }
        if (rc == 0 && d->bare_n > 0) {
            double ns = bare_loop_ns(b, d->dim);
            if (ns > 0)
                d->bare_v[d->bare_n++] = ns;
        }
    }
    if (d->bare_n > 0)
        d->bare_ns = median_of(d->bare_v, d->bare_n);
    ps_client_destroy(&c);
    return rc;
}

/* "<server> S + client C us" of a figure: CPU per request, medians. */
static const char *cpu_note(char *buf, size_t len, const char *server, const fig_t *f)
{
    snprintf(buf, len, "%s %.0f + client %.0f us", server, median_of(f->srv_us, f->n),
             median_of(f->cli_us, f->n));
    return buf;
}

static void print_dim(const dim_run_t *d)
{
    const fig_t *f = d->fig;
    char c1[128], c2[128];
    double m[NFIG];

    for (int i = 0; i < NFIG; i++)
        m[i] = median(&f[i]) / 1e6;
    printf("ps pull dim%d: %.2f M keys/s; raw zmq: %.2f M keys/s; ratio %.2f\n"
           "    request %zu B, reply %zu B; CPU per request: %s, raw: %s\n",
           d->dim, m[PS_PULL], m[RAW_PULL], m[PS_PULL] / m[RAW_PULL], d->pull_req, d->pull_rep,
           cpu_note(c1, sizeof(c1), "shard", &f[PS_PULL]),
           cpu_note(c2, sizeof(c2), "echo", &f[RAW_PULL]));
    printf("ps push dim%d (Adagrad): %.2f M keys/s; raw zmq: %.2f M keys/s; ratio %.2f\n"
           "    request %zu B, reply %zu B; CPU per request: %s, raw: %s\n",
           d->dim, m[PS_PUSH], m[RAW_PUSH], m[PS_PUSH] / m[RAW_PUSH], d->push_req, d->push_rep,
           cpu_note(c1, sizeof(c1), "shard", &f[PS_PUSH]),
           cpu_note(c2, sizeof(c2), "echo", &f[RAW_PUSH]));
    printf("ps_client pull dim%d: %.2f M keys/s (ratio to raw %.2f; CPU per request %s)\n", d->dim,
           m[CL_PULL], m[CL_PULL] / m[RAW_PULL], cpu_note(c1, sizeof(c1), "shard", &f[CL_PULL]));
    printf("ps_client push dim%d: %.2f M keys/s (ratio to raw %.2f; CPU per request %s)\n", d->dim,
           m[CL_PUSH], m[CL_PUSH] / m[RAW_PUSH], cpu_note(c1, sizeof(c1), "shard", &f[CL_PUSH]));
    /* the same requests on other keys, against the same raw figures */
    static const struct {
        int pull, push;
        const char *keys;
    } other[] = {{HOT_PULL, HOT_PUSH, STR(HOT_ROWS) " cache-resident rows"},
                 {ZIPF_PULL, ZIPF_PUSH, "Zipf(" STR(ZIPF_S) ") keys"}};
    for (size_t o = 0; o < sizeof(other) / sizeof(other[0]); o++)
        for (int push = 0; push < 2; push++) {
            int i = push ? other[o].push : other[o].pull, raw = push ? RAW_PUSH : RAW_PULL;
            printf("ps %s dim%d on %s: %.2f M keys/s (ratio to raw %.2f; CPU per request %s)\n",
                   push ? "push" : "pull", d->dim, other[o].keys, m[i], m[i] / m[raw],
                   cpu_note(c1, sizeof(c1), "shard", &f[i]));
        }
    /* issue 16: shard CPU per request against echo + bare loop */
    double bare_us = d->bare_ns * KEYS / 1e3;
    for (int pin = 0; pin < 2; pin++) {
        int ps = pin ? PIN_PULL : PS_PULL, raw = pin ? PIN_RAW : RAW_PULL;
        double sh = median_of(f[ps].srv_us, f[ps].n), echo = median_of(f[raw].srv_us, f[raw].n);
        if (!f[ps].n || !f[raw].n)
            continue;
        printf("ps pull dim%d %s: %.2f M keys/s, raw %.2f (ratio %.2f); CPU per request: shard "
               "%.0f us, echo %.0f us, bare loop %.1f ns x %d keys = %.0f us: shard / (echo + "
               "bare loop) = %.2f (target <= 1.3; bare loop median of %d measurements)%s\n",
               d->dim,
               pin ? "pinned (shard loop on its own CPU, I/O threads beside the client)"
                   : "unpinned",
               m[ps], m[raw], m[ps] / m[raw], sh, echo, d->bare_ns, KEYS, bare_us,
               d->bare_ns > 0 ? sh / (echo + bare_us) : 0.0, d->bare_n,
               d->bare_ns > 0 ? "" : " (no bare-loop figure: ratio not computed)");
    }
    if (d->rows)
        printf("resident row dim%d: %.1f bytes (payload %.1f, overhead %.1f) over %llu rows\n",
               d->dim, (double)d->bytes_resident / (double)d->rows,
               (double)d->bytes_payload / (double)d->rows,
               (double)(d->bytes_resident - d->bytes_payload) / (double)d->rows,
               (unsigned long long)d->rows);
    fflush(stdout);
}

/* ---- spill ---- */

typedef struct zipf {
    double *cdf;     /* cdf[i] = P(rank <= i) */
    uint32_t *guide; /* guide[j]: first i with cdf[i] >= j / n */
    size_t n;
} zipf_t;

static int zipf_init(zipf_t *z, size_t n, double s)
{
    double sum = 0;
    size_t i = 0;

    z->n = n;
    z->cdf = malloc(n * sizeof(*z->cdf));
    z->guide = malloc(n * sizeof(*z->guide));
    if (!z->cdf || !z->guide)
        return ERR_NOMEM;
    for (size_t k = 0; k < n; k++) {
        sum += pow((double)(k + 1), -s);
        z->cdf[k] = sum;
    }
    for (size_t k = 0; k < n; k++)
        z->cdf[k] /= sum;
    z->cdf[n - 1] = 1.0;
    for (size_t j = 0; j < n; j++) {
        while (z->cdf[i] < (double)j / (double)n)
            i++;
        z->guide[j] = (uint32_t)i;
    }
    return 0;
}

static size_t zipf_draw(const zipf_t *z, uint64_t *rng)
{
    double u = rng_unit(rng_splitmix64(rng));
    size_t i = z->guide[(size_t)(u * (double)z->n)];

    while (z->cdf[i] < u)
        i++;
    return i;
}

static void zipf_release(zipf_t *z)
{
    free(z->cdf);
    free(z->guide);
}

/* ZIPF_SETS requests of KEYS distinct keys drawn from Zipf(ZIPF_S) over
 * the table's rows, made before timing so the client stays cheap. */
static int make_zipf_sets(bench_t *b)
{
    enum { HB = 4096 }; /* open-addressing set of one request's ranks */
    uint32_t rank[HB], stamp[HB];
    zipf_t z = {0};
    int rc = zipf_init(&z, UNIVERSE, ZIPF_S);

    b->zipf_sets = malloc((size_t)ZIPF_SETS * KEYS * sizeof(uint64_t));
    if (rc != 0 || !b->zipf_sets) {
        zipf_release(&z);
        return errbuf_set(&b->eb, ERR_NOMEM, "out of memory for the Zipf keys");
    }
    memset(stamp, 0, sizeof(stamp));
    for (uint32_t set = 0; set < ZIPF_SETS; set++) {
        uint64_t *keys = b->zipf_sets + (size_t)set * KEYS;
        for (int n = 0; n < KEYS;) {
            uint32_t r = (uint32_t)zipf_draw(&z, &b->rng);
            uint32_t h = (r * 2654435761u) % HB;
            while (stamp[h] == set + 1 && rank[h] != r)
                h = (h + 1) % HB;
            if (stamp[h] == set + 1)
                continue; /* drawn before in this request */
            stamp[h] = set + 1;
            rank[h] = r;
            keys[n++] = key_of(r);
        }
    }
    zipf_release(&z);
    return 0;
}

/* The two ways a shard spills: a spill file ([ps] spill = file, the
 * default) and RocksDB itself (spill = store). */
enum { SP_FILE, SP_STORE, SP_KINDS };
static const char *const spill_kind[SP_KINDS] = {"file", "store"};

typedef struct spill_run {
    fig_t mem, spill[SP_KINDS];
    size_t mem_limit; /* bytes */
    uint64_t fit;     /* rows that fit */
    /* per kind: after the windows; during them */
    uint64_t resident[SP_KINDS], loaded[SP_KINDS], spill_loaded[SP_KINDS], evicted[SP_KINDS];
    uint64_t spill_index[SP_KINDS]; /* bytes of the spill file's index (of the budget) */
} spill_run_t;

/* Pull+push of Zipf keys on the unlimited shard `all` (dim 16, prefilled)
 * and on fresh shards with a tenth of the memory, prefilled the same way:
 * one per kind of spill, all three in turn within each round. */
static int run_spill(bench_t *b, shard_t *all, const dim_run_t *d, shard_t *sp, spill_run_t *out)
{
    flow_t f = {F_ZIPF, all->dim, 0, 0, 0};
    double per_row = (double)d->bytes_resident / (double)d->rows, t;
    uint64_t loaded0[SP_KINDS] = {0}, sloaded0[SP_KINDS] = {0}, evicted0[SP_KINDS] = {0};
    result_t r;
    int rc = 0;

    out->mem = (fig_t){.name = "all in memory"};
    out->fit = UNIVERSE / SPILL_FACTOR;
    out->mem_limit = (size_t)(per_row * (double)out->fit);
    for (int k = 0; k < SP_KINDS && rc == 0; k++) {
        char name[32];
        out->spill[k] = (fig_t){.name = spill_kind[k]};
        snprintf(name, sizeof(name), "spill-%s", spill_kind[k]);
        rc = shard_start(b, &sp[k], name, all->dim, out->mem_limit, spill_kind[k]);
        if (rc != 0)
            return rc;
        t = clock_now_s();
        rc = prefill(b, &sp[k]);
        if (rc != 0)
            return rc;
        fprintf(stderr,
                "bench-ps: spill shard (spill = %s): %d rows created in %.1f s (mem_limit %zu "
                "bytes)\n",
                spill_kind[k], UNIVERSE, clock_now_s() - t, out->mem_limit);
    }
    /* untimed: the spill shards' memory fills with the Zipf-hot rows */
    rc = drive(b, all->sock, all, &f, b->window / 2, &r);
    for (int k = 0; k < SP_KINDS && rc == 0; k++) {
        rc = drive(b, sp[k].sock, &sp[k], &f, b->window, &r);
        if (rc == 0)
            rc = stat_get(b, &sp[k], "rows_loaded", &loaded0[k], REPLY_TIMEOUT);
        if (rc == 0)
            rc = stat_get(b, &sp[k], "rows_spill_loaded", &sloaded0[k], REPLY_TIMEOUT);
        if (rc == 0)
            rc = stat_get(b, &sp[k], "rows_evicted", &evicted0[k], REPLY_TIMEOUT);
    }
    for (int round = 0; round < ROUNDS && rc == 0; round++) {
        rc = drive(b, all->sock, all, &f, b->window, &r);
        if (rc == 0)
            fig_add(&out->mem, &r, 0, 0);
        for (int k = 0; k < SP_KINDS && rc == 0; k++) {
            rc = drive(b, sp[k].sock, &sp[k], &f, b->window, &r);
            if (rc == 0)
                fig_add(&out->spill[k], &r, 0, 0);
        }
    }
    for (int k = 0; k < SP_KINDS && rc == 0; k++) {
        rc = stat_get(b, &sp[k], "rows_resident", &out->resident[k], REPLY_TIMEOUT);
        if (rc == 0)
            rc = stat_get(b, &sp[k], "rows_loaded", &out->loaded[k], REPLY_TIMEOUT);
        if (rc == 0)
            rc = stat_get(b, &sp[k], "rows_spill_loaded", &out->spill_loaded[k], REPLY_TIMEOUT);
        if (rc == 0)
            rc = stat_get(b, &sp[k], "rows_evicted", &out->evicted[k], REPLY_TIMEOUT);
        if (rc == 0)
            rc = stat_get(b, &sp[k], "bytes_spill_index", &out->spill_index[k], REPLY_TIMEOUT);
        out->loaded[k] -= loaded0[k];
        out->spill_loaded[k] -= sloaded0[k];
        out->evicted[k] -= evicted0[k];
    }
    return rc;
}

static void print_spill(const spill_run_t *s)
{
    double mem = median(&s->mem);

    for (int k = 0; k < SP_KINDS; k++) {
        double sp = median(&s->spill[k]);
        printf("spill dim16, spill = %-5s (Zipf %.1f, %d rows, mem_limit %.1f MB holds ~%llu; "
               "%llu resident, %.1f MB of the budget the spill file's index): %.2f M keys/s "
               "pulled+pushed vs %.2f M all in memory: fraction %.2f\n",
               spill_kind[k], ZIPF_S, UNIVERSE, (double)s->mem_limit / 1e6,
               (unsigned long long)s->fit, (unsigned long long)s->resident[k],
               (double)s->spill_index[k] / 1e6, sp / 1e6, mem / 1e6, sp / mem);
        printf("spill dim16, spill = %-5s: %llu rows read back (%llu from the spill file, the "
               "rest from RocksDB) and %llu evicted during the timed windows\n",
               spill_kind[k], (unsigned long long)s->loaded[k],
               (unsigned long long)s->spill_loaded[k], (unsigned long long)s->evicted[k]);
    }
    fflush(stdout);
}

static void print_json(const dim_run_t *d, int nd, const spill_run_t *s)
{
    printf("{\"bench\": \"ps\", \"keys_per_request\": %d, \"inflight\": %d, \"rows\": %d", KEYS,
           INFLIGHT, UNIVERSE);
    for (int k = 0; k < nd; k++) {
        static const char *const key[NFIG] = {
            "ps_pull",  "raw_pull", "ps_push",   "raw_push",  "client_pull", "client_push",
            "hot_pull", "hot_push", "zipf_pull", "zipf_push", "pinned_pull", "pinned_raw_pull"};
        for (int i = 0; i < NFIG; i++)
            printf(", \"%s_dim%d\": %.0f", key[i], d[k].dim, median(&d[k].fig[i]));
        for (int pin = 0; pin < 2; pin++) {
            const fig_t *ps = &d[k].fig[pin ? PIN_PULL : PS_PULL];
            const fig_t *raw = &d[k].fig[pin ? PIN_RAW : RAW_PULL];
            if (ps->n && raw->n && d[k].bare_ns > 0)
                printf(", \"cpu_ratio%s_dim%d\": %.3f", pin ? "_pinned" : "", d[k].dim,
                       median_of(ps->srv_us, ps->n) /
                           (median_of(raw->srv_us, raw->n) + d[k].bare_ns * KEYS / 1e3));
        }
        printf(", \"pull_ratio_dim%d\": %.3f, \"push_ratio_dim%d\": %.3f", d[k].dim,
               median(&d[k].fig[PS_PULL]) / median(&d[k].fig[RAW_PULL]), d[k].dim,
               median(&d[k].fig[PS_PUSH]) / median(&d[k].fig[RAW_PUSH]));
    }
    if (s)
        printf(", \"zipf_mem\": %.0f, \"zipf_spill\": %.0f, \"spill_fraction\": %.3f, "
               "\"zipf_spill_store\": %.0f, \"spill_fraction_store\": %.3f",
               median(&s->mem), median(&s->spill[SP_FILE]),
               median(&s->spill[SP_FILE]) / median(&s->mem), median(&s->spill[SP_STORE]),
               median(&s->spill[SP_STORE]) / median(&s->mem));
    printf("}\n");
}

static volatile sig_atomic_t *g_stop;

static void on_signal(int sig)
{
    (void)sig;
    if (g_stop)
        *g_stop = 1;
}

int main(int argc, char **argv)
{
    static bench_t b;
    static volatile sig_atomic_t stop;
    static const int dims[2] = {16, 64};
    dim_run_t d[2];
    spill_run_t sp;
    shard_t sh = {0}, sps[SP_KINDS] = {{0}};
    const char *env = getenv("FUNNEL_BIN"), *tmp = getenv("TMPDIR");
    char *ep[1];
    int rc = 0, nd = 0, have_spill = 0;

    memset(d, 0, sizeof(d));
    memset(&sp, 0, sizeof(sp));
    int spill_only = argc > 1 && strcmp(argv[1], "spill") == 0;
    b.window = argc > 1 + spill_only ? atof(argv[1 + spill_only]) : 1.0;
    if (b.window <= 0 || argc > 2 + spill_only) {
        fprintf(stderr, "usage: bench-ps [spill] [SECONDS per window]\n");
        return 2;
    }
    snprintf(b.bin, sizeof(b.bin), "%s", env && env[0] ? env : "bin");
    snprintf(b.dir, sizeof(b.dir), "%s/bench-ps.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(b.dir)) {
        fprintf(stderr, "bench-ps: mkdtemp %s: %s\n", b.dir, strerror(errno));
        return 1;
    }
    b.stop = &stop;
    g_stop = &stop;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    b.rng = 42;
    for (size_t i = 0; i < KEYS * MAX_DIM; i++)
        b.grads[i] = 0.01f * ((float)(rng_splitmix64(&b.rng) >> 40) / 16777216.0f - 0.5f);
    sched_getaffinity(0, sizeof(b.all_cpus), &b.all_cpus);
    for (int k = 0; k < 2 && !spill_only; k++) /* before any shard runs: quieter */
        b.bare_ns[k] = bare_loop_ns(&b, dims[k]);
    b.raw_cap = (size_t)KEYS * (MAX_DIM * 4 + 8) + 4096;
    rc = echo_start(&b, b.raw_cap); /* forks: before any ZeroMQ context */
    if (rc != 0)
        goto out;
    codec_buf_init(&b.enc, 0);
    b.dec = codec_dec_new(0);
    b.ctx = zmq_ctx_new();
    b.raw_req = calloc(1, b.raw_cap);
    if (!b.dec || !b.ctx || !b.raw_req) {
        rc = errbuf_set(&b.eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = echo_connect(&b);
    if (rc == 0)
        rc = make_zipf_sets(&b);
    if (rc != 0)
        goto out;
    printf("bench-ps: one funnel-ps shard on tcp loopback, %d-key requests, %d in flight, "
           "%d rows; median of %d x %.1f s windows per figure\n",
           KEYS, INFLIGHT, UNIVERSE, ROUNDS, b.window);
    fflush(stdout);
    for (int k = 0; k < 2 && rc == 0; k++) {
        d[k].dim = dims[k];
        d[k].bare_ns = b.bare_ns[k];
        d[k].bare_n = 0;
        if (b.bare_ns[k] > 0)
            d[k].bare_v[d[k].bare_n++] = b.bare_ns[k];
        rc = shard_start(&b, &sh, dims[k] == 16 ? "ps16" : "ps64", dims[k], 0, NULL);
        ep[0] = sh.endpoint;
        if (rc == 0 && spill_only) {
            /* only what the spill needs: the rows and their bytes */
            rc = prefill(&b, &sh);
            if (rc == 0)
                rc = stat_get(&b, &sh, "rows_resident", &d[k].rows, REPLY_TIMEOUT);
            if (rc == 0)
                rc = stat_get(&b, &sh, "bytes_resident", &d[k].bytes_resident, REPLY_TIMEOUT);
            if (rc == 0) {
                rc = run_spill(&b, &sh, &d[k], sps, &sp);
                have_spill = rc == 0;
                if (rc == 0)
                    print_spill(&sp);
            }
            break;
        }
        if (rc == 0)
            rc = run_dim(&b, &sh, &d[k], ep);
        if (rc == 0) {
            nd++;
            print_dim(&d[k]);
        }
        if (rc == 0 && dims[k] == 16) {
            rc = run_spill(&b, &sh, &d[k], sps, &sp);
            for (int q = 0; q < SP_KINDS; q++)
                shard_stop(&sps[q]);
            if (rc == 0) {
                have_spill = 1;
                print_spill(&sp);
            }
        }
        shard_stop(&sh);
    }
    if (rc == 0)
        print_json(d, nd, have_spill ? &sp : NULL);
out:
    for (int q = 0; q < SP_KINDS; q++)
        shard_stop(&sps[q]);
    shard_stop(&sh);
    echo_stop(&b);
    if (b.ctx)
        zmq_ctx_term(b.ctx);
    codec_dec_destroy(&b.dec);
    codec_buf_release(&b.enc);
    free(b.raw_req);
    free(b.zipf_sets);
    rmtree(b.dir);
    if (rc != 0) {
        fprintf(stderr, "bench-ps: %s\n", b.eb.msg);
        return 1;
    }
    return 0;
}
