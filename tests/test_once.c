/*
 * test_once.c - every sample trained exactly once, and a bounded sender
 * table, on real processes: two funnel-ps shards (shard 0 on ipc:// in
 * the scratch directory, shard 1 on tcp://127.0.0.1) and funnel-worker
 * train on a funnel-gen log.
 *
 *   kill9 one    a worker killed with SIGKILL several times at random
 *                moments of its training, each time restarted with its
 *                rank, leaves the shards exactly as an uninterrupted run
 *                does: the same applied pushes, pushed keys (one row
 *                update each), dense steps, and per-rank position with
 *                the log's sample count on every shard.
 *   kill9 two    the same with two workers, rank 1 killed and restarted
 *                while rank 0 trains on.
 *   senders      a raw client pushing from many sender ids: the table
 *                stops at max_senders (a new one gets ERROR), a sender
 *                idle for sender_idle_s makes room, a live one is kept,
 *                STATS stays small and answers every "seq_<id>", also
 *                after a restart.
 *
 * The kill moments come from a seed printed by the suite (set it with
 * FUNNEL_ONCE_SEED to replay a run). Every wait is bounded in time; every
 * process is stopped in its test or by the teardown; the scratch
 * directory is removed unless a test failed.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/ps_conf.h"
#include "common/rng.h"
#include "proto/codec.h"
#include "proto/msg.h"
#include "proto/ps_client.h"
#include "ps/shard_meta.h"
#include "table/store.h"
#include "tests/util.h"

#define MODEL "--towers 128,64"
#define TRAIN_LINES 300000
#define WORKER_OPTS "--timeout_ms 1000 --deadline_s 60"
#define KILLS 4         /* kills per killed worker, at most */
#define RUN_LIMIT_S 300 /* s, for any one run to finish */
#define MAX_PIDS 8
#define NSEND 300             /* senders of the sender-table test (> 256 listed) */
#define NSEND_MAX (NSEND + 1) /* and one newcomer */
#define NEWCOMER 100000u

static char dir[512], bin[700], train[800];
static uint64_t seed, rng;
static pid_t pids[MAX_PIDS]; /* started here and not stopped yet */

/* ---- processes ---- */

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

/* ---- a cluster: shard 0 on ipc://, shard 1 on tcp://127.0.0.1 ---- */

typedef struct cluster {
    char dir[700];
    char ep[2][800];
    char eps[1700];
    pid_t ps[2];
    pid_t w[2];      /* running worker of each rank (its shell), 0: none */
    int attempt[2];  /* runs started per rank */
    char extra[200]; /* funnel-ps options */
} cluster_t;

static int cl_start(cluster_t *c, const char *name, const char *extra)
{
    char log[800];
    int port = tu_free_port();

    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s/%s", dir, name);
    snprintf(c->extra, sizeof(c->extra), "%s", extra);
    if (port <= 0 || mkdir(c->dir, 0755) != 0)
        return -1;
    snprintf(c->ep[0], sizeof(c->ep[0]), "ipc://%s/ps0.sock", c->dir);
    snprintf(c->ep[1], sizeof(c->ep[1]), "tcp://127.0.0.1:%d", port);
    snprintf(c->eps, sizeof(c->eps), "%s,%s", c->ep[0], c->ep[1]);
    for (int i = 0; i < 2; i++) {
        snprintf(log, sizeof(log), "%s/ps%d.log", c->dir, i);
        c->ps[i] = track(tu_spawn(log,
                                  "exec %s/funnel-ps --shard %d --shards 2 --listen %s "
                                  "--data %s/ps%d %s %s",
                                  bin, i, c->ep[i], c->dir, i, MODEL, extra));
        if (c->ps[i] <= 0)
            return -1;
    }
    return 0;
}

/* Start (or restart) worker `rank` of nw; it writes its exit status to
 * DIR/w<rank>.<attempt>.rc. */
static int cl_worker(cluster_t *c, int rank, int nw)
{
    char log[800];
    int a = ++c->attempt[rank];

    snprintf(log, sizeof(log), "%s/worker%d.%d.log", c->dir, rank, a);
    c->w[rank] = track(
        tu_spawn(log,
                 "%s/funnel-worker train --ps %s --rank %d --workers %d "
                 "--metrics_file %s/metrics%d.jsonl %s %s %s; echo $? > %s/w%d.%d.rc",
                 bin, c->eps, rank, nw, c->dir, rank, MODEL, WORKER_OPTS, train, c->dir, rank, a));
    return c->w[rank] > 0 ? 0 : -1;
}

/* Exit status of the current run of rank, or -1 while it runs. */
static int worker_rc(const cluster_t *c, int rank)
{
    char path[800];
    char *t;
    int rc = -1;

    snprintf(path, sizeof(path), "%s/w%d.%d.rc", c->dir, rank, c->attempt[rank]);
    t = tu_slurp(path, NULL);
    if (t && t[0] >= '0' && t[0] <= '9')
        rc = atoi(t);
    free(t);
    return rc;
}

/* Wait (bounded) for rank's run to end; its exit status, or -1. */
static int worker_wait(cluster_t *c, int rank)
{
    double t0 = clock_now_s();
    int rc;

    while ((rc = worker_rc(c, rank)) < 0 && clock_now_s() - t0 < RUN_LIMIT_S)
        sleep_ms(50);
    stop(c->w[rank], rc < 0 ? SIGKILL : SIGTERM);
    c->w[rank] = 0;
    if (rc != 0)
        fprintf(stderr, "\n  worker %d run %d: status %d (see %s)\n", rank, c->attempt[rank], rc,
                c->dir);
    return rc;
}

static int cl_stop(cluster_t *c)
{
    int rc = 0;

    for (int r = 0; r < 2; r++)
        if (c->w[r] > 0) {
            stop(c->w[r], SIGKILL);
            c->w[r] = 0;
        }
    for (int i = 0; i < 2; i++)
        if (c->ps[i] > 0) {
            if (stop(c->ps[i], SIGTERM) != 0)
                rc = -1;
            c->ps[i] = 0;
        }
    return rc;
}

/* ---- what the shards say (a raw client: proto/ps_client) ---- */

static ps_client_t *client(const char *ep, uint32_t sender)
{
    char *eps[1] = {(char *)ep};
    ps_client_opts_t o = {
        .sender = sender, .timeout_ms = 1000, .deadline_s = 30, .max_inflight = 4};
    ps_client_t *cli = NULL;
    errbuf_t eb = {{0}};

    if (ps_client_open(&cli, eps, 1, &o, &eb) != 0)
        fprintf(stderr, "\n  client for %s: %s\n", ep, eb.msg);
    return cli;
}

/* Counter `name` in the STATS reply to prefix `pfx`; -1 if absent, -2 if
 * the request failed. *nseq (if not NULL) gets the number of seq_ entries. */
static long long stat_in(ps_client_t *cli, const char *pfx, const char *name, int *nseq)
{
    msg_t m, rep;
    errbuf_t eb = {{0}};
    long long v = -1;

    msg_init(&m, MSG_STATS, 0);
    m.u.cmd.text = (msg_str_t){pfx, (uint32_t)strlen(pfx)};
    if (ps_client_call(cli, 0, &m, &rep, &eb) != 0 || rep.hdr.type != MSG_STATS_OK) {
        fprintf(stderr, "\n  STATS: %s\n", eb.msg);
        return -2;
    }
    if (nseq)
        *nseq = 0;
    for (uint32_t i = 0; i < rep.u.kv.n; i++) {
        const msg_kv_t *kv = &rep.u.kv.kv[i];
        if (nseq && kv->name.len > 4 && memcmp(kv->name.ptr, "seq_", 4) == 0)
            (*nseq)++;
        if (!kv->is_str && kv->name.len == strlen(name) &&
            memcmp(kv->name.ptr, name, kv->name.len) == 0)
            v = (long long)kv->u64;
    }
    return v;
}

static long long stat_of(const char *ep, const char *name)
{
    ps_client_t *cli = client(ep, MSG_SENDER_TOOL);
    long long v = cli ? stat_in(cli, name, name, NULL) : -2;

    ps_client_destroy(&cli);
    return v;
}

/* Samples recorded for rank by the shard at ep (-1: no position). */
static long long rank_samples(const char *ep, uint32_t rank)
{
    ps_client_t *cli = client(ep, MSG_SENDER_TOOL);
    msg_t m, rep;
    errbuf_t eb = {{0}};
    long long v = -2;

    msg_init(&m, MSG_PROGRESS_GET, 0);
    m.u.progress.rank = rank;
    if (cli && ps_client_call(cli, 0, &m, &rep, &eb) == 0)
        v = rep.u.progress.found ? (long long)rep.u.progress.samples : -1;
    ps_client_destroy(&cli);
    return v;
}

/* What must come out the same, interrupted or not: per shard. */
#define NCOUNT 4
static const char *const counted[NCOUNT] = {"pushes", "push_keys", "dense_pushes", "dense_step"};

typedef struct outcome {
    long long c[2][NCOUNT];  /* counted[] of each shard */
    long long samples[2][2]; /* [shard][rank] recorded position's samples */
    long long replayed[2];   /* replayed_pushes of each shard */
} outcome_t;

static void measure(const cluster_t *c, int nw, outcome_t *o)
{
    memset(o, 0, sizeof(*o));
    for (int h = 0; h < 2; h++) {
        for (int k = 0; k < NCOUNT; k++)
            o->c[h][k] = stat_of(c->ep[h], counted[k]);
        o->replayed[h] = stat_of(c->ep[h], "replayed_pushes");
        for (int r = 0; r < nw; r++)
            o->samples[h][r] = rank_samples(c->ep[h], (uint32_t)r);
    }
}

/* "trained X samples ...; Y already done" of a worker log: X + Y, or -1. */
static long long summary_total(const cluster_t *c, int rank, int attempt)
{
    char path[800];
    char *t, *p;
    unsigned long long x, y;
    long long v = -1;

    snprintf(path, sizeof(path), "%s/worker%d.%d.log", c->dir, rank, attempt);
    t = tu_slurp(path, NULL);
    p = t ? strstr(t, "INFO trained ") : NULL;
    if (p && sscanf(p, "INFO trained %llu samples", &x) == 1 &&
        (p = strstr(p, "samples/s); ")) != NULL &&
        sscanf(p, "samples/s); %llu already done", &y) == 1)
        v = (long long)(x + y);
    free(t);
    return v;
}

/* An uninterrupted run of nw workers; its outcome in o. */
static int reference(const char *name, int nw, outcome_t *o)
{
    cluster_t c;
    int rc = cl_start(&c, name, "");

    for (int r = 0; r < nw && rc == 0; r++)
        rc = cl_worker(&c, r, nw);
    for (int r = 0; r < nw; r++)
        if (worker_wait(&c, r) != 0)
            rc = -1;
    if (rc == 0)
        measure(&c, nw, o);
    if (cl_stop(&c) != 0)
        rc = -1;
    return rc;
}

/* Kill rank's worker up to KILLS times at random moments of its training
 * (after its pushes have begun reaching shard 1, then 0..1.2 s), each time
 * restarting it; then let it finish. Returns the kills done, -1 on error. */
static int kill_and_restart(cluster_t *c, int rank, int nw)
{
    int kills = 0;

    for (int k = 0; k < KILLS; k++) {
        long long p0 = stat_of(c->ep[1], "pushes");
        double t0 = clock_now_s();
        /* a resumed run has less left to train: later kills come sooner,
         * so the restarted worker is still running when they land */
        long delay = (long)(rng_unit(rng_splitmix64(&rng)) * 1200 / (k + 1));

        /* training has (re)started: shard 1 sees new pushes */
        while (worker_rc(c, rank) < 0 && stat_of(c->ep[1], "pushes") <= p0 &&
               clock_now_s() - t0 < RUN_LIMIT_S)
            sleep_ms(20);
        sleep_ms(delay);
        if (worker_rc(c, rank) >= 0)
            break; /* done before the kill */
        stop(c->w[rank], SIGKILL);
        c->w[rank] = 0;
        kills++;
        fprintf(stderr, "  [kill %d of rank %d after %.2f s of run %d]", kills, rank,
                clock_now_s() - t0, c->attempt[rank]);
        if (cl_worker(c, rank, nw) != 0)
            return -1;
    }
    return worker_wait(c, rank) == 0 ? kills : -1;
}

static void expect_same(const outcome_t *ref, const outcome_t *got, int nw, long long per_rank_sum)
{
    long long total = 0;

    for (int h = 0; h < 2; h++) {
        fprintf(stderr, "\n  shard %d:", h);
        for (int k = 0; k < NCOUNT; k++) {
            fprintf(stderr, " %s %lld/%lld", counted[k], got->c[h][k], ref->c[h][k]);
            CU_ASSERT(got->c[h][k] > 0);
            CU_ASSERT_EQUAL(got->c[h][k], ref->c[h][k]);
        }
        fprintf(stderr, "; replayed_pushes %lld", got->replayed[h]);
        CU_ASSERT_EQUAL(ref->replayed[h], 0);
        for (int r = 0; r < nw; r++) {
            CU_ASSERT_EQUAL(got->samples[h][r], ref->samples[h][r]);
            if (h == 0)
                total += got->samples[h][r];
        }
    }
    fprintf(stderr, "\n  samples recorded per rank sum to %lld (log: %lld)\n", total, per_rank_sum);
    CU_ASSERT_EQUAL(total, per_rank_sum);
}

/* ---- suite ---- */

static int setup(void)
{
    char gen[600];
    const char *s = getenv("FUNNEL_ONCE_SEED");

    if (tu_mkdtemp(dir, sizeof(dir), "once") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    if (access(gen, X_OK) != 0)
        return -1;
    seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    rng = seed;
    fprintf(stderr, "\n  once suite: kill moments from seed %llu (FUNNEL_ONCE_SEED=%llu replays)\n",
            (unsigned long long)seed, (unsigned long long)seed);
    snprintf(train, sizeof(train), "%s/w/train.tsv", dir);
    return tu_sh(NULL, "%s --out %s/w --train %d --test 1000 --seed 21 > %s/gen.log 2>&1", gen, dir,
                 TRAIN_LINES, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (pids[i] > 0)
            tu_stop(pids[i], SIGKILL);
    memset(pids, 0, sizeof(pids));
    if (CU_get_number_of_failures() > 0)
        fprintf(stderr, "\n  once suite: logs kept in %s (seed %llu)\n", dir,
                (unsigned long long)seed);
    else
        tu_rmtree(dir);
    return 0;
}

static void test_kill9_one_worker(void)
{
    outcome_t ref, got;
    cluster_t c;
    int kills;

    CU_ASSERT_EQUAL_FATAL(reference("ref1", 1, &ref), 0);
    CU_ASSERT_EQUAL_FATAL(cl_start(&c, "kill1", ""), 0);
    CU_ASSERT_EQUAL_FATAL(cl_worker(&c, 0, 1), 0);
    kills = kill_and_restart(&c, 0, 1);
    fprintf(stderr, "\n  rank 0: %d kill(s), %d runs", kills, c.attempt[0]);
    CU_ASSERT(kills >= 1);
    if (kills >= 0) {
        measure(&c, 1, &got);
        expect_same(&ref, &got, 1, TRAIN_LINES);
        /* the last run's summary: trained now + already done = the log */
        CU_ASSERT_EQUAL(summary_total(&c, 0, c.attempt[0]), TRAIN_LINES);
    }
    CU_ASSERT_EQUAL(cl_stop(&c), 0);
}

static void test_kill9_one_of_two(void)
{
    outcome_t ref, got;
    cluster_t c;
    int kills;

    CU_ASSERT_EQUAL_FATAL(reference("ref2", 2, &ref), 0);
    CU_ASSERT_EQUAL_FATAL(cl_start(&c, "kill2", ""), 0);
    CU_ASSERT_EQUAL_FATAL(cl_worker(&c, 0, 2), 0);
    CU_ASSERT_EQUAL_FATAL(cl_worker(&c, 1, 2), 0);
    kills = kill_and_restart(&c, 1, 2);
    fprintf(stderr, "\n  rank 1: %d kill(s), %d runs; rank 0 not killed", kills, c.attempt[1]);
    CU_ASSERT(kills >= 1);
    CU_ASSERT_EQUAL(worker_wait(&c, 0), 0);
    if (kills >= 0) {
        measure(&c, 2, &got);
        expect_same(&ref, &got, 2, TRAIN_LINES);
        for (int r = 0; r < 2; r++)
            CU_ASSERT_EQUAL(summary_total(&c, r, c.attempt[r]), ref.samples[0][r]);
    }
    CU_ASSERT_EQUAL(cl_stop(&c), 0);
}

/* A raw DEALER connection: pushes with any sender id and seq in the
 * header, as an impostor would send them. */
typedef struct raw {
    void *ctx, *sock;
    codec_buf_t enc;
    codec_dec_t *dec;
    zmq_msg_t rep;
    uint64_t next_id;
    uint64_t seq[NSEND_MAX]; /* last seq sent per sender slot */
} raw_t;

static int raw_open(raw_t *r, const char *ep)
{
    int zero = 0;

    memset(r, 0, sizeof(*r));
    r->next_id = 1;
    zmq_msg_init(&r->rep);
    r->ctx = zmq_ctx_new();
    r->sock = r->ctx ? zmq_socket(r->ctx, ZMQ_DEALER) : NULL;
    r->dec = codec_dec_new(0);
    codec_buf_init(&r->enc, 1u << 20);
    if (!r->sock || !r->dec)
        return -1;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &zero, sizeof(zero));
    return zmq_connect(r->sock, ep);
}

static void raw_close(raw_t *r)
{
    zmq_msg_close(&r->rep);
    if (r->sock)
        zmq_close(r->sock);
    if (r->ctx)
        zmq_ctx_term(r->ctx);
    codec_dec_destroy(&r->dec);
    codec_buf_release(&r->enc);
    r->sock = r->ctx = NULL;
}

/*
 * An empty PUSH from sender id (its next seq; slot: the id's index in
 * r->seq) carrying batch position pos (NULL: a complete batch at samples
 * 7). Returns 0 (ACK, its flags in *ack if not NULL), the ERROR's code
 * with its text in eb, or ERR_TIMEOUT after 10 s.
 */
static int raw_push_pos(raw_t *r, uint32_t id, int slot, const msg_pos_t *pos, uint32_t *ack,
                        errbuf_t *eb)
{
    msg_t m, rep;
    double t0 = clock_now_s();

    msg_init(&m, MSG_PUSH, r->next_id++);
    m.hdr.sender = id;
    m.hdr.seq = ++r->seq[slot];
    m.u.rows.pos = pos ? *pos : (msg_pos_t){1, 1, 0, 0, 100, 1, 7};
    if (codec_encode(&r->enc, &m, eb) != 0 || zmq_send(r->sock, r->enc.data, r->enc.len, 0) < 0)
        return ERR_NET;
    while (clock_now_s() - t0 < 10) {
        zmq_pollitem_t it = {r->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) <= 0)
            continue;
        if (zmq_msg_recv(&r->rep, r->sock, 0) < 0 ||
            codec_decode(r->dec, &rep, zmq_msg_data(&r->rep), zmq_msg_size(&r->rep), eb) != 0)
            return ERR_PROTO;
        if (rep.hdr.req_id != m.hdr.req_id)
            continue;
        if (rep.hdr.type == MSG_ERROR)
            return errbuf_set(eb, rep.u.error.code, "%.*s", (int)rep.u.error.text.len,
                              rep.u.error.text.ptr);
        if (ack)
            *ack = rep.u.kv.flags;
        return rep.hdr.type == MSG_ACK ? 0 : ERR_PROTO;
    }
    return errbuf_set(eb, ERR_TIMEOUT, "no reply");
}

static int raw_push(raw_t *r, uint32_t id, int slot, errbuf_t *eb)
{
    return raw_push_pos(r, id, slot, NULL, NULL, eb);
}

/* Push part `last` of the batch ending at samples from rank 0 to shard h;
 * 1 if answered as already applied, 0 if applied, -1 on error. */
static int part(raw_t *r, uint64_t samples, uint32_t last)
{
    msg_pos_t pos = {1, last, 0, 0, samples * 10, 0, samples};
    uint32_t ack = 0;
    errbuf_t eb = {{0}};

    if (raw_push_pos(r, 0, 0, &pos, &ack, &eb) != 0) {
        fprintf(stderr, "\n  push of batch %llu part %u: %s\n", (unsigned long long)samples, last,
                eb.msg);
        return -1;
    }
    return (ack & MSG_F_DUPLICATE) != 0;
}

/*
 * The kill -9 moments that matter, made on purpose with a raw client
 * speaking for rank 0: batch 200 reached shard 0 whole but shard 1 not at
 * all, batch 300 reached shard 0 in part (its rows, not its final push).
 * The restarted worker resumes from the least advanced shard (batch 100
 * on shard 1) and replays 200 and 300 to both: each part is applied
 * exactly where it was missing.
 */
static void test_replay_parts(void)
{
    cluster_t c;
    raw_t *r[2] = {calloc(1, sizeof(raw_t)), calloc(1, sizeof(raw_t))};

    CU_ASSERT_FATAL(r[0] && r[1]);
    CU_ASSERT_EQUAL_FATAL(cl_start(&c, "parts", ""), 0);
    for (int h = 0; h < 2; h++)
        CU_ASSERT_EQUAL_FATAL(raw_open(r[h], c.ep[h]), 0);
    for (int h = 0; h < 2; h++) { /* batch 100 everywhere */
        CU_ASSERT_EQUAL(part(r[h], 100, 0), 0);
        CU_ASSERT_EQUAL(part(r[h], 100, 1), 0);
    }
    CU_ASSERT_EQUAL(part(r[0], 200, 0), 0); /* batch 200 on shard 0 only */
    CU_ASSERT_EQUAL(part(r[0], 200, 1), 0);
    CU_ASSERT_EQUAL(part(r[0], 300, 0), 0); /* batch 300: shard 0's rows only */
    /* -- kill -9 -- */
    CU_ASSERT_EQUAL(rank_samples(c.ep[0], 0), 200);
    CU_ASSERT_EQUAL(rank_samples(c.ep[1], 0), 100);
    /* the restart replays from 100 to both shards */
    CU_ASSERT_EQUAL(part(r[0], 200, 0), 1);
    CU_ASSERT_EQUAL(part(r[0], 200, 1), 1);
    CU_ASSERT_EQUAL(part(r[1], 200, 0), 0);
    CU_ASSERT_EQUAL(part(r[1], 200, 1), 0);
    CU_ASSERT_EQUAL(part(r[0], 300, 0), 1);
    CU_ASSERT_EQUAL(part(r[0], 300, 1), 0);
    CU_ASSERT_EQUAL(part(r[1], 300, 0), 0);
    CU_ASSERT_EQUAL(part(r[1], 300, 1), 0);
    CU_ASSERT_EQUAL(part(r[0], 100, 1), 1); /* an older batch: never again */
    for (int h = 0; h < 2; h++) {
        CU_ASSERT_EQUAL(rank_samples(c.ep[h], 0), 300);
        CU_ASSERT_EQUAL(stat_of(c.ep[h], "pushes"), 6); /* 3 batches x 2 parts, once each */
        CU_ASSERT_EQUAL(stat_of(c.ep[h], "replayed_pushes"), h == 0 ? 4 : 0);
    }
    /* the positions survive a restart of the shard (flushed on SIGTERM) */
    CU_ASSERT_EQUAL(stop(c.ps[0], SIGTERM), 0);
    char log[800];
    snprintf(log, sizeof(log), "%s/ps0.restart.log", c.dir);
    c.ps[0] =
        track(tu_spawn(log, "exec %s/funnel-ps --shard 0 --shards 2 --listen %s --data %s/ps0 %s",
                       bin, c.ep[0], c.dir, MODEL));
    CU_ASSERT_FATAL(c.ps[0] > 0);
    CU_ASSERT_EQUAL(rank_samples(c.ep[0], 0), 300);
    CU_ASSERT_EQUAL(part(r[0], 300, 1), 1);
    for (int h = 0; h < 2; h++) {
        raw_close(r[h]);
        free(r[h]);
    }
    CU_ASSERT_EQUAL(cl_stop(&c), 0);
}

static void test_sender_table(void)
{
    cluster_t c;
    errbuf_t eb = {{0}};
    ps_client_t *cli;
    raw_t *r = calloc(1, sizeof(*r));
    int bad = 0, nseq = -1;
    double t0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(cl_start(&c, "senders", "--max_senders 300 --sender_idle_s 3"), 0);
    CU_ASSERT_EQUAL_FATAL(raw_open(r, c.ep[1]), 0);
    t0 = clock_now_s();
    for (uint32_t id = 0; id < NSEND; id++)
        if (raw_push(r, id, (int)id, &eb) != 0) {
            fprintf(stderr, "\n  sender %u: %s\n", id, eb.msg);
            bad++;
        }
    CU_ASSERT_EQUAL(bad, 0);
    fprintf(stderr, "\n  %d senders pushed in %.2f s", NSEND, clock_now_s() - t0);
    /* full, nobody idle yet: a new sender is refused, saying what to raise */
    CU_ASSERT_EQUAL(raw_push(r, NEWCOMER, NSEND, &eb), ERR_BUSY);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "max_senders"));

    cli = client(c.ep[1], MSG_SENDER_TOOL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cli);
    CU_ASSERT_EQUAL(stat_in(cli, "", "senders", &nseq), NSEND);
    CU_ASSERT_EQUAL(nseq, 256);                              /* the listing is capped... */
    CU_ASSERT(stat_in(cli, "seq_299", "seq_299", NULL) > 0); /* ...not a named sender */
    CU_ASSERT_EQUAL(stat_in(cli, "", "senders_refused", NULL), 1);

    /* Idle past sender_idle_s, except sender 0, which keeps pushing: the
     * newcomer takes the longest-idle sender's place, never sender 0's. */
    t0 = clock_now_s();
    while (clock_now_s() - t0 < 4.2) {
        CU_ASSERT_EQUAL(raw_push(r, 0, 0, &eb), 0);
        sleep_ms(400);
    }
    CU_ASSERT_EQUAL(raw_push(r, NEWCOMER, NSEND, &eb), 0);
    CU_ASSERT_EQUAL(stat_in(cli, "", "senders_expired", NULL), 1);
    CU_ASSERT_EQUAL(stat_in(cli, "", "senders", NULL), NSEND);
    CU_ASSERT(stat_in(cli, "seq_0", "seq_0", NULL) > 0);
    CU_ASSERT_EQUAL(stat_in(cli, "seq_100000", "seq_100000", NULL), 2);
    CU_ASSERT_EQUAL(stat_in(cli, "seq_1", "seq_1", NULL), -1); /* sender 1 expired */
    CU_ASSERT_EQUAL(rank_samples(c.ep[1], 1), -1);             /* with its position */
    CU_ASSERT_EQUAL(rank_samples(c.ep[1], 0), 7);
    ps_client_destroy(&cli);
    raw_close(r);
    free(r);

    /* After a restart the table is as bounded and STATS as usable, also
     * through the operator's tool. */
    CU_ASSERT_EQUAL(stop(c.ps[1], SIGTERM), 0);
    char log[800];
    snprintf(log, sizeof(log), "%s/ps1.restart.log", c.dir);
    c.ps[1] = track(tu_spawn(log,
                             "exec %s/funnel-ps --shard 1 --shards 2 --listen %s --data %s/ps1 %s "
                             "--max_senders 300 --sender_idle_s 3",
                             bin, c.ep[1], c.dir, MODEL));
    CU_ASSERT_FATAL(c.ps[1] > 0);
    CU_ASSERT_EQUAL(stat_of(c.ep[1], "senders"), NSEND);
    CU_ASSERT_EQUAL(
        tu_sh(NULL, "%s/funnel-worker ctl stats --ps %s > %s/ctl.out 2>&1", bin, c.ep[1], c.dir),
        0);
    CU_ASSERT_EQUAL(cl_stop(&c), 0);
}

/*
 * The positions' record in process, on an in-memory store: a batch
 * applied in part and a rank with only a partial batch (no position yet)
 * are saved and loaded as they were, a version-1 record (before
 * positions travelled with pushes) still loads as complete positions,
 * and the sender table's bound holds for positions set by PROGRESS_SET.
 */
static void test_position_records(void)
{
    static const unsigned char v1[8 + 40] = {1, 0, 0, 0, 1, 0, 0, 0, 4,  0, 0, 0, 1, 0, 0, 0,
                                             2, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0,
                                             5, 0, 0, 0, 0, 0, 0, 0, 9,  0, 0, 0, 0, 0, 0, 0};
    msg_pos_t a = {1, 0, 0, 0, 10, 1, 100}, b = {1, 1, 0, 0, 10, 1, 100};
    msg_pos_t c = {1, 0, 0, 0, 20, 2, 200}, d = {1, 0, 0, 0, 5, 1, 50};
    store_t *st = NULL;
    dense_shard_t dn, de;
    shard_meta_t m, l;
    errbuf_t eb = {{0}};
    static ps_conf_t pc; /* the defaults */
    model_spec_t spec;
    int npos = 0, help = 0;

    CU_ASSERT_EQUAL_FATAL(
        conf_parse_args(&ps_conf_schema, &pc, 0, NULL, NULL, 0, &npos, &help, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(model_spec_from_conf(&spec, &pc.model, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&dn, &spec.dense_opt, 10, 1, 0, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&de, &spec.dense_opt, 10, 1, 0, &eb), 0);

    shard_meta_init(&m, 0, "dir-once", 0);
    /* rank 1: batch 100 complete, batch 200 in part */
    CU_ASSERT_EQUAL(shard_meta_batch_check(&m, 1, &a), 0);
    shard_meta_batch_done(&m, 1, &a);
    CU_ASSERT_PTR_NULL(shard_meta_progress_get(&m, 1)); /* in part: no position yet */
    CU_ASSERT_EQUAL(shard_meta_batch_check(&m, 1, &a), 1);
    CU_ASSERT_EQUAL(shard_meta_batch_check(&m, 1, &b), 0);
    shard_meta_batch_done(&m, 1, &b);
    CU_ASSERT_EQUAL(shard_meta_batch_check(&m, 1, &c), 0);
    shard_meta_batch_done(&m, 1, &c);
    /* rank 2: only a batch in part */
    CU_ASSERT_EQUAL(shard_meta_batch_check(&m, 2, &d), 0);
    shard_meta_batch_done(&m, 2, &d);
    CU_ASSERT_EQUAL_FATAL(shard_meta_save(&m, st, &dn, &eb), 0);

    shard_meta_init(&l, 0, "dir-once", 0);
    CU_ASSERT_EQUAL_FATAL(shard_meta_load(&l, st, &de, &eb), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(shard_meta_progress_get(&l, 1));
    CU_ASSERT_EQUAL(shard_meta_progress_get(&l, 1)->samples, 100);
    CU_ASSERT_EQUAL(shard_meta_progress_get(&l, 1)->offset, 10);
    CU_ASSERT_EQUAL(shard_meta_batch_check(&l, 1, &c), 1); /* 200's first part: applied */
    c.last = 1;
    CU_ASSERT_EQUAL(shard_meta_batch_check(&l, 1, &c), 0); /* its final part: not yet */
    CU_ASSERT_PTR_NULL(shard_meta_progress_get(&l, 2));
    CU_ASSERT_EQUAL(shard_meta_batch_check(&l, 2, &d), 1);
    shard_meta_release(&l);

    /* a version-1 record: rank 4, complete at samples 9 */
    store_op_t op = {"m:progress", 10, v1, sizeof(v1)};
    CU_ASSERT_EQUAL_FATAL(store_write(st, &op, 1, 0, &eb), 0);
    shard_meta_init(&l, 0, "dir-once", 0);
    CU_ASSERT_EQUAL_FATAL(shard_meta_load(&l, st, &de, &eb), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(shard_meta_progress_get(&l, 4));
    CU_ASSERT_EQUAL(shard_meta_progress_get(&l, 4)->samples, 9);
    CU_ASSERT_EQUAL(shard_meta_progress_get(&l, 4)->offset, 50);
    CU_ASSERT_EQUAL(shard_meta_progress_get(&l, 4)->file, 2);
    shard_meta_release(&l);

    /* positions are bounded like senders */
    shard_meta_set_limits(&m, 2, 60);
    msg_progress_t p = {7, 1, 0, 0, 1, 1, 1};
    CU_ASSERT_EQUAL(shard_meta_progress_set(&m, &p), ERR_BUSY);
    p.rank = 1;
    CU_ASSERT_EQUAL(shard_meta_progress_set(&m, &p), 0); /* a known rank: replaced */

    shard_meta_release(&m);
    dense_shard_release(&de);
    dense_shard_release(&dn);
    store_close(&st);
}

int test_once_register(void)
{
    CU_pSuite s = CU_add_suite("once", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "kill -9 a worker at random moments: every sample trained once",
                test_kill9_one_worker);
    CU_add_test(s, "two workers, one killed and restarted: every sample trained once",
                test_kill9_one_of_two);
    CU_add_test(s, "position records: parts, no position yet, version 1, bounded",
                test_position_records);
    CU_add_test(s, "a batch on one shard, in part on another: replayed parts applied once",
                test_replay_parts);
    CU_add_test(s, "sender table: bounded, idle senders expire, live kept, STATS usable",
                test_sender_table);
    return CUE_SUCCESS;
}
