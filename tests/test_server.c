/*
 * test_server.c - one real funnel-ps shard (shard 1 of 2) spoken to over a
 * raw ZeroMQ DEALER socket with the codec, as a worker would, but with
 * every header field in the test's hands: the handshake (and a layout
 * mismatch), deterministic new rows, one Adagrad step per push, exactly
 * once under a retried sequence number, the dense range, worker progress,
 * the counters, malformed input that must not stop the shard, and
 * durability: SIGTERM flushes, kill -9 after FLUSH keeps what was flushed,
 * and the pushes a crash lost are counted from the sequence gap.
 *
 * Expected values come from the same library code the shard runs
 * (optim_row_init, optim_row_update, optim_dense_update), so rows are
 * compared bit for bit. The shard's own records (shard_meta.h) are also
 * checked in process on an in-memory store. Every shard is started with flush_interval 3600 so
 * that only explicit FLUSH, SIGTERM or SHUTDOWN write to RocksDB.
 *
 * Each test that restarts a shard uses its own data directory and
 * endpoint; every process is stopped in the test or, if an assertion
 * failed, in the suite's teardown.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/model_conf.h"
#include "common/optim.h"
#include "common/ps_conf.h"
#include "common/route.h"
#include "proto/codec.h"
#include "proto/msg.h"
#include "ps/dense_shard.h"
#include "ps/shard_meta.h"
#include "table/store.h"
#include "tests/util.h"

#define SHARD 1
#define NSHARDS 2
#define OPTS "--towers 16,8 --slot_dims tag:8 --flush_interval 3600"
#define NK 6      /* keys per slot in a request */
#define MAXDIM 16 /* largest slot dim of OPTS */
#define REPLY_MS 10000

/* The two slots the tests use: item_id (dim 16) and tag (dim 8). */
static const uint32_t SL[2] = {1, 7};

typedef struct conn {
    void *ctx, *sock;
    codec_buf_t enc;
    codec_dec_t *dec;
    zmq_msg_t rep; /* bytes of the last reply (decoded messages point here) */
    int has_rep;
    uint64_t next_id;
} conn_t;

/* A block of rows for the two slots: NK keys each. */
typedef struct rowset {
    uint64_t keys[2][NK];
    float v[2][NK * MAXDIM];
} rowset_t;

static char dir[512], psbin[600];
static model_spec_t spec;
static pid_t main_pid;
static char main_ep[700];
static conn_t mc; /* connection to the suite's main shard */
static pid_t extra_pid[4];

/* ---- the shard layout, parsed from the same options the shard gets ---- */

static int load_spec(void)
{
    static char a0[] = "--towers", a1[] = "16,8", a2[] = "--slot_dims", a3[] = "tag:8";
    char *argv[] = {a0, a1, a2, a3};
    static ps_conf_t pc;
    errbuf_t eb = {{0}};
    int npos = 0, help = 0;

    if (conf_parse_args(&ps_conf_schema, &pc, 4, argv, NULL, 0, &npos, &help, &eb) != 0)
        return -1;
    return model_spec_from_conf(&spec, &pc.model, &eb) == 0 ? 0 : -1;
}

static uint32_t dim_of(int e)
{
    return (uint32_t)spec.slot[SL[e]].dim;
}

/* Keys owned by shard SHARD of NSHARDS, distinct per (base, i). */
static uint64_t key_at(uint64_t base, int i)
{
    uint64_t z = base * 0x9e3779b97f4a7c15ULL + (uint64_t)i + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (z >> 1) | (1ULL << 63); /* upper half: shard 1 of 2 */
}

static void make_keys(rowset_t *r, uint64_t base)
{
    memset(r, 0, sizeof(*r));
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < NK; i++)
            r->keys[e][i] = key_at(base * 2 + (uint64_t)e, i);
}

/* Gradients that differ per key, slot and round. */
static void make_grads(rowset_t *g, const rowset_t *k, int round)
{
    *g = *k;
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < NK * (int)dim_of(e); i++)
            g->v[e][i] = 0.05f * sinf((float)(i + 1) * 0.37f + (float)(e * 11 + round * 5));
}

/* ---- a raw DEALER connection ---- */

static int conn_open(conn_t *c, const char *ep)
{
    int zero = 0;

    memset(c, 0, sizeof(*c));
    c->next_id = 1;
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    c->dec = codec_dec_new(0);
    codec_buf_init(&c->enc, 0);
    if (!c->sock || !c->dec)
        return -1;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero));
    return zmq_connect(c->sock, ep);
}

static void conn_close(conn_t *c)
{
    if (c->has_rep)
        zmq_msg_close(&c->rep);
    c->has_rep = 0;
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    codec_dec_destroy(&c->dec);
    codec_buf_release(&c->enc);
    c->sock = c->ctx = NULL;
}

static int send_bytes(conn_t *c, const void *data, size_t len)
{
    return zmq_send(c->sock, data, len, 0) == (int)len ? 0 : -1;
}

/* Receive one reply frame within ms; 0, or -1 on timeout or a multi-frame
 * reply. The bytes stay in c->rep until the next receive. */
static int recv_frame(conn_t *c, long ms)
{
    zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
    int more = 0;
    size_t ml = sizeof(more);

    if (zmq_poll(&it, 1, ms) <= 0)
        return -1;
    if (c->has_rep)
        zmq_msg_close(&c->rep);
    zmq_msg_init(&c->rep);
    c->has_rep = 1;
    if (zmq_msg_recv(&c->rep, c->sock, 0) < 0)
        return -1;
    zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &ml);
    return more ? -1 : 0;
}

/* Receive and decode the reply to req_id (skipping stale replies). */
static int recv_reply(conn_t *c, uint64_t req_id, msg_t *rep, long ms)
{
    errbuf_t eb;

    for (;;) {
        if (recv_frame(c, ms) != 0)
            return -1;
        if (codec_decode(c->dec, rep, zmq_msg_data(&c->rep), zmq_msg_size(&c->rep), &eb) != 0) {
            fprintf(stderr, "\n  undecodable reply: %s\n", eb.msg);
            return -1;
        }
        if (rep->hdr.req_id == req_id)
            return 0;
    }
}

/* Encode req (a fresh req_id unless it has one), send it, wait for its
 * reply. Returns 0 or -1 (encode error, timeout). */
static int call(conn_t *c, msg_t *req, msg_t *rep)
{
    errbuf_t eb;

    if (req->hdr.req_id == 0)
        req->hdr.req_id = c->next_id++;
    if (codec_encode(&c->enc, req, &eb) != 0) {
        fprintf(stderr, "\n  encode: %s\n", eb.msg);
        return -1;
    }
    if (send_bytes(c, c->enc.data, c->enc.len) != 0)
        return -1;
    return recv_reply(c, req->hdr.req_id, rep, REPLY_MS);
}

/* Value of counter `name` (exact name), or -1. */
static int64_t stat_of(conn_t *c, const char *name)
{
    msg_t m, r;

    msg_init(&m, MSG_STATS, 0);
    m.u.cmd.text.ptr = name;
    m.u.cmd.text.len = (uint32_t)strlen(name);
    if (call(c, &m, &r) != 0 || r.hdr.type != MSG_STATS_OK)
        return -1;
    for (uint32_t i = 0; i < r.u.kv.n; i++)
        if (!r.u.kv.kv[i].is_str && r.u.kv.kv[i].name.len == strlen(name) &&
            memcmp(r.u.kv.kv[i].name.ptr, name, strlen(name)) == 0)
            return (int64_t)r.u.kv.kv[i].u64;
    return -1;
}

/* Value of a counter that may not be listed yet (listed once non-zero). */
static int64_t stat0(conn_t *c, const char *name)
{
    int64_t v = stat_of(c, name);

    return v < 0 ? 0 : v;
}

/* Sum of the counters whose name starts with prefix, or -1. */
static int64_t stat_sum(conn_t *c, const char *prefix)
{
    msg_t m, r;
    int64_t sum = 0;

    msg_init(&m, MSG_STATS, 0);
    m.u.cmd.text.ptr = prefix;
    m.u.cmd.text.len = (uint32_t)strlen(prefix);
    if (call(c, &m, &r) != 0 || r.hdr.type != MSG_STATS_OK)
        return -1;
    for (uint32_t i = 0; i < r.u.kv.n; i++)
        sum += (int64_t)r.u.kv.kv[i].u64;
    return sum;
}

/* ---- requests on the two test slots ---- */

static void rows_req(msg_t *m, int type, const rowset_t *r, int with_rows)
{
    msg_init(m, type, 0);
    m->u.rows.nslots = 2;
    for (int e = 0; e < 2; e++) {
        msg_slot_t *s = &m->u.rows.slot[e];
        memset(s, 0, sizeof(*s));
        s->slot = SL[e];
        s->nkeys = NK;
        s->keys = r->keys[e];
        if (with_rows) {
            s->dim = dim_of(e);
            s->rows = r->v[e];
        }
    }
}

/* Pull r's keys into r->v. Returns 0, or -1 (no/bad reply). */
static int pull(conn_t *c, rowset_t *r, uint32_t flags)
{
    msg_t m, rep;

    rows_req(&m, MSG_PULL, r, 0);
    m.u.rows.flags = flags;
    if (call(c, &m, &rep) != 0 || rep.hdr.type != MSG_PULL_OK || rep.u.rows.nslots != 2)
        return -1;
    for (int e = 0; e < 2; e++) {
        const msg_slot_t *s = &rep.u.rows.slot[e];
        if (s->slot != SL[e] || s->nkeys != NK || s->dim != dim_of(e))
            return -1;
        for (int i = 0; i < NK; i++)
            msg_row_get(r->v[e] + (size_t)i * s->dim, s->rows, (size_t)i, s->dim);
    }
    return 0;
}

/* Push gradients g as sender/seq. Returns the reply type (MSG_ACK or
 * MSG_ERROR) or -1; *ack_flags gets the ACK's flags. */
static int push(conn_t *c, const rowset_t *g, uint32_t sender, uint64_t seq, uint32_t *ack_flags)
{
    msg_t m, rep;

    rows_req(&m, MSG_PUSH, g, 1);
    m.hdr.sender = sender;
    m.hdr.seq = seq;
    if (call(c, &m, &rep) != 0)
        return -1;
    if (ack_flags)
        *ack_flags = rep.hdr.type == MSG_ACK ? rep.u.kv.flags : 0;
    return rep.hdr.type;
}

static int flush(conn_t *c)
{
    msg_t m, rep;

    msg_init(&m, MSG_FLUSH, 0);
    return call(c, &m, &rep) == 0 && rep.hdr.type == MSG_ACK ? 0 : -1;
}

/* What a new row of every key of r is: optim_row_init. */
static void expect_init(rowset_t *x, const rowset_t *r)
{
    float state[4 * MAXDIM + 1];

    *x = *r;
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < NK; i++)
            optim_row_init(&spec.emb_opt, r->keys[e][i], x->v[e] + (size_t)i * dim_of(e), state,
                           dim_of(e));
}

/* A reference copy of rows with their optimizer state, updated with the
 * shard's optimizer code. */
typedef struct refrows {
    rowset_t w;
    float st[2][NK * (4 * MAXDIM + 1)];
} refrows_t;

static void ref_init(refrows_t *ref, const rowset_t *keys)
{
    size_t sl;

    ref->w = *keys;
    for (int e = 0; e < 2; e++) {
        sl = optim_state_len(&spec.emb_opt, dim_of(e));
        for (int i = 0; i < NK; i++)
            optim_row_init(&spec.emb_opt, keys->keys[e][i], ref->w.v[e] + (size_t)i * dim_of(e),
                           ref->st[e] + (size_t)i * sl, dim_of(e));
    }
}

static void ref_step(refrows_t *ref, const rowset_t *g)
{
    for (int e = 0; e < 2; e++) {
        size_t d = dim_of(e), sl = optim_state_len(&spec.emb_opt, d);
        for (int i = 0; i < NK; i++)
            optim_row_update(&spec.emb_opt, ref->w.v[e] + i * d, ref->st[e] + i * sl,
                             g->v[e] + i * d, d);
    }
}

static int same_rows(const rowset_t *a, const rowset_t *b)
{
    for (int e = 0; e < 2; e++)
        if (memcmp(a->v[e], b->v[e], (size_t)NK * dim_of(e) * sizeof(float)) != 0)
            return 0;
    return 1;
}

/* ---- shard processes ---- */

/* Start a shard on ipc://dir/name.sock with data dir/name-data; ep gets
 * the endpoint. Returns the pid (exec'd, so signals reach funnel-ps). */
static pid_t shard_start(const char *name, char *ep, size_t eplen, const char *extra)
{
    char log[700];

    snprintf(ep, eplen, "ipc://%s/%s.sock", dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    return tu_spawn(log, "exec %s --shard %d --shards %d --listen %s --data %s/%s-data %s %s",
                    psbin, SHARD, NSHARDS, ep, dir, name, OPTS, extra ? extra : "");
}

/* Connect and wait until the shard answers (it may still be opening). */
static int connect_ready(conn_t *c, const char *ep)
{
    if (conn_open(c, ep) != 0)
        return -1;
    return stat_of(c, "requests") >= 0 ? 0 : -1;
}

static void remember(pid_t pid)
{
    for (int i = 0; i < 4; i++)
        if (extra_pid[i] == 0) {
            extra_pid[i] = pid;
            return;
        }
}

static void forget(pid_t pid)
{
    for (int i = 0; i < 4; i++)
        if (extra_pid[i] == pid)
            extra_pid[i] = 0;
}

/* Stop a shard with sig and forget it; returns its exit status. */
static int shard_stop(pid_t pid, int sig)
{
    forget(pid);
    return tu_stop(pid, sig);
}

static int setup(void)
{
    if (load_spec() != 0 || tu_mkdtemp(dir, sizeof(dir), "server") != 0)
        return -1;
    tu_bin(psbin, sizeof(psbin), "funnel-ps");
    if (access(psbin, X_OK) != 0)
        return -1;
    main_pid = shard_start("main", main_ep, sizeof(main_ep), "--max_msg_size 1M");
    if (main_pid <= 0)
        return -1;
    return connect_ready(&mc, main_ep);
}

static int teardown(void)
{
    conn_close(&mc);
    for (int i = 0; i < 4; i++)
        if (extra_pid[i] > 0)
            tu_stop(extra_pid[i], SIGKILL);
    if (main_pid > 0)
        tu_stop(main_pid, SIGTERM);
    main_pid = 0;
    tu_rmtree(dir);
    return 0;
}

/* ---- tests ---- */

static void test_handshake(void)
{
    msg_t m, rep;
    msg_hello_t mine;
    errbuf_t eb = {{0}};
    uint64_t dense_n = (uint64_t)stat_of(&mc, "dense_floats");

    /* the shard's dense size: what the layout implies */
    msg_init(&m, MSG_HELLO, 0);
    m.u.hello.flags = MSG_F_PROBE;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL_FATAL(rep.hdr.type, MSG_HELLO_OK);
    uint64_t total = rep.u.hello.dense_size;
    uint64_t off, cnt;
    route_dense_range(total, NSHARDS, SHARD, &off, &cnt);
    CU_ASSERT_EQUAL(cnt, dense_n);

    /* same layout: HELLO_OK with the shard's own layout, equal to ours */
    codec_hello_from_spec(&mine, &spec, SHARD, NSHARDS, total, -1);
    msg_init(&m, MSG_HELLO, 0);
    m.u.hello = mine;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL_FATAL(rep.hdr.type, MSG_HELLO_OK);
    CU_ASSERT_EQUAL(rep.hdr.req_id, m.hdr.req_id);
    CU_ASSERT_EQUAL(codec_hello_check(&mine, &rep.u.hello, "test", "shard", &eb), 0);
    CU_ASSERT_EQUAL(rep.u.hello.shard, SHARD);
    CU_ASSERT_EQUAL(rep.u.hello.nshards, NSHARDS);
    CU_ASSERT_EQUAL(rep.u.hello.nslots, (uint32_t)spec.nslots);
    CU_ASSERT_EQUAL(rep.u.hello.slot[7].dim, 8);

    /* a different emb_dim: ERROR naming the slot and both dims */
    model_spec_t other = spec;
    for (int s = 0; s < other.nslots; s++)
        if (s != 7)
            other.slot[s].dim = 8;
    msg_init(&m, MSG_HELLO, 0);
    codec_hello_from_spec(&m.u.hello, &other, SHARD, NSHARDS, total, -1);
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL_FATAL(rep.hdr.type, MSG_ERROR);
    CU_ASSERT_EQUAL(rep.u.error.code, ERR_MISMATCH);
    char text[MSG_MAX_TEXT + 1];
    snprintf(text, sizeof(text), "%.*s", (int)rep.u.error.text.len, rep.u.error.text.ptr);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "user_id"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "dim 16"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "8"));

    /* the wrong shard index is refused too */
    msg_init(&m, MSG_HELLO, 0);
    codec_hello_from_spec(&m.u.hello, &spec, 0, NSHARDS, total, -1);
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ERROR);
    CU_ASSERT_EQUAL(rep.u.error.code, ERR_MISMATCH);

    /* and the shard keeps serving */
    CU_ASSERT(stat_of(&mc, "requests") > 0);
}

static void test_pull_creates_init_rows(void)
{
    rowset_t r, again, x;
    int64_t created0 = stat_of(&mc, "rows_created");

    for (int i = 0; i < NK; i++)
        CU_ASSERT_EQUAL(route_shard(key_at(1, i), NSHARDS), SHARD);
    make_keys(&r, 1);
    expect_init(&x, &r);
    CU_ASSERT_EQUAL_FATAL(pull(&mc, &r, 0), 0);
    CU_ASSERT(same_rows(&r, &x));
    /* not all zero: the init is pseudo-normal with init_std 0.01 */
    CU_ASSERT(r.v[0][0] != 0.0f || r.v[0][1] != 0.0f);
    CU_ASSERT_EQUAL(stat_of(&mc, "rows_created"), created0 + 2 * NK);

    /* pulling again returns the same rows and creates nothing */
    again = r;
    memset(again.v, 0, sizeof(again.v));
    CU_ASSERT_EQUAL_FATAL(pull(&mc, &again, 0), 0);
    CU_ASSERT(same_rows(&again, &x));
    CU_ASSERT_EQUAL(stat_of(&mc, "rows_created"), created0 + 2 * NK);

    /* a read-only pull of unseen keys reads zeros and creates nothing */
    make_keys(&r, 2);
    memset(x.v, 0, sizeof(x.v));
    CU_ASSERT_EQUAL_FATAL(pull(&mc, &r, MSG_F_READONLY), 0);
    CU_ASSERT(same_rows(&r, &x));
    CU_ASSERT_EQUAL(stat_of(&mc, "rows_created"), created0 + 2 * NK);
}

static void test_push_one_adagrad_step(void)
{
    rowset_t k, g, got;
    refrows_t ref;
    uint32_t fl = 99;

    CU_ASSERT_EQUAL_FATAL(spec.emb_opt.kind, OPTIM_ADAGRAD);
    make_keys(&k, 3);
    got = k;
    CU_ASSERT_EQUAL_FATAL(pull(&mc, &got, 0), 0);
    ref_init(&ref, &k);
    CU_ASSERT(same_rows(&got, &ref.w));

    make_grads(&g, &k, 1);
    CU_ASSERT_EQUAL_FATAL(push(&mc, &g, 5, 1, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(fl, 0);
    ref_step(&ref, &g);
    CU_ASSERT_EQUAL_FATAL(pull(&mc, &got, 0), 0);
    CU_ASSERT(same_rows(&got, &ref.w));
    /* the row moved by about lr per coordinate (Adagrad's first step) */
    rowset_t init;
    expect_init(&init, &k);
    float d = fabsf(got.v[0][0] - init.v[0][0]);
    CU_ASSERT(d > 0.5f * spec.emb_opt.lr && d < 1.5f * spec.emb_opt.lr);

    /* ROWS_GET with state: one update, accumulator = g^2 */
    msg_t m, rep;
    rows_req(&m, MSG_ROWS_GET, &k, 0);
    m.u.rows.flags = MSG_F_STATE;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL_FATAL(rep.hdr.type, MSG_ROWS_OK);
    for (int e = 0; e < 2; e++) {
        const msg_slot_t *s = &rep.u.rows.slot[e];
        uint32_t dd = dim_of(e);
        CU_ASSERT_EQUAL_FATAL(s->dim, 2 * dd);
        for (int i = 0; i < NK; i++) {
            msg_row_meta_t meta;
            float row[2 * MAXDIM];
            msg_row_meta_get(&meta, s->meta, (size_t)i);
            CU_ASSERT_EQUAL(meta.updates, 1);
            msg_row_get(row, s->rows, (size_t)i, 2 * dd);
            CU_ASSERT(memcmp(row, ref.w.v[e] + i * dd, dd * sizeof(float)) == 0);
            CU_ASSERT(memcmp(row + dd, ref.st[e] + i * dd, dd * sizeof(float)) == 0);
        }
    }

    /* a second, different gradient: a second step from the updated state */
    make_grads(&g, &k, 2);
    CU_ASSERT_EQUAL_FATAL(push(&mc, &g, 5, 2, NULL), MSG_ACK);
    ref_step(&ref, &g);
    CU_ASSERT_EQUAL_FATAL(pull(&mc, &got, 0), 0);
    CU_ASSERT(same_rows(&got, &ref.w));
}

static void test_push_retry_applied_once(void)
{
    rowset_t k, g, got;
    refrows_t ref;
    msg_t m, rep;
    errbuf_t eb;
    int64_t dup0 = stat_of(&mc, "duplicate_pushes"), pushes0 = stat_of(&mc, "pushes");

    make_keys(&k, 4);
    ref_init(&ref, &k);
    make_grads(&g, &k, 3);
    /* the same encoded bytes twice, as a worker's retry sends them */
    rows_req(&m, MSG_PUSH, &g, 1);
    m.hdr.req_id = 777;
    m.hdr.sender = 6;
    m.hdr.seq = 1;
    CU_ASSERT_EQUAL_FATAL(codec_encode(&mc.enc, &m, &eb), 0);
    unsigned char *bytes = malloc(mc.enc.len);
    size_t len = mc.enc.len;
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    memcpy(bytes, mc.enc.data, len);
    for (int t = 0; t < 2; t++) {
        CU_ASSERT_EQUAL(send_bytes(&mc, bytes, len), 0);
        CU_ASSERT_EQUAL(recv_reply(&mc, 777, &rep, REPLY_MS), 0);
        CU_ASSERT_EQUAL(rep.hdr.type, MSG_ACK);
        CU_ASSERT_EQUAL(rep.u.kv.flags & MSG_F_DUPLICATE, t == 0 ? 0 : MSG_F_DUPLICATE);
    }
    free(bytes);
    /* a retry with a new request id but the same seq: still a duplicate */
    uint32_t fl = 0;
    CU_ASSERT_EQUAL(push(&mc, &g, 6, 1, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(fl, MSG_F_DUPLICATE);

    ref_step(&ref, &g); /* exactly one step */
    got = k;
    CU_ASSERT_EQUAL_FATAL(pull(&mc, &got, 0), 0);
    CU_ASSERT(same_rows(&got, &ref.w));
    CU_ASSERT_EQUAL(stat_of(&mc, "duplicate_pushes"), dup0 + 2);
    CU_ASSERT_EQUAL(stat_of(&mc, "pushes"), pushes0 + 1);
    CU_ASSERT_EQUAL(stat_of(&mc, "seq_6"), 1);

    /* the next seq is applied again; an older one is not */
    CU_ASSERT_EQUAL(push(&mc, &g, 6, 2, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(fl, 0);
    ref_step(&ref, &g);
    CU_ASSERT_EQUAL(push(&mc, &g, 6, 1, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(fl, MSG_F_DUPLICATE);
    CU_ASSERT_EQUAL_FATAL(pull(&mc, &got, 0), 0);
    CU_ASSERT(same_rows(&got, &ref.w));
    /* a push without a sequence number is not a valid push */
    rows_req(&m, MSG_PUSH, &g, 1);
    m.hdr.sender = 6;
    m.hdr.seq = 0;
    CU_ASSERT(codec_encode(&mc.enc, &m, &eb) != 0);
}

static void test_dense_range(void)
{
    msg_t m, rep;
    uint64_t off, cnt, total;
    float *v, *w, *st, *g;

    msg_init(&m, MSG_HELLO, 0);
    m.u.hello.flags = MSG_F_PROBE;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    total = rep.u.hello.dense_size;
    route_dense_range(total, NSHARDS, SHARD, &off, &cnt);
    CU_ASSERT_FATAL(cnt > 0 && off > 0 && off + cnt == total);
    CU_ASSERT_EQUAL(stat_of(&mc, "dense_initialized"), 0);

    v = calloc(cnt, sizeof(float));
    w = calloc(cnt, sizeof(float));
    g = calloc(cnt, sizeof(float));
    st = calloc(optim_dense_state_len(&spec.dense_opt, cnt) + 1, sizeof(float));
    CU_ASSERT_FATAL(v && w && g && st);

    /* a fresh shard's range reads zeros */
    msg_init(&m, MSG_PULL_DENSE, 0);
    m.u.dense.offset = off;
    m.u.dense.count = cnt;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL_FATAL(rep.hdr.type, MSG_PULL_DENSE_OK);
    CU_ASSERT_EQUAL(rep.u.dense.offset, off);
    CU_ASSERT_EQUAL_FATAL(rep.u.dense.count, cnt);
    memcpy(w, rep.u.dense.values, cnt * sizeof(float));
    CU_ASSERT(memcmp(w, v, cnt * sizeof(float)) == 0);

    /* the other shard's range is refused */
    uint64_t off0, cnt0;
    route_dense_range(total, NSHARDS, 0, &off0, &cnt0);
    msg_init(&m, MSG_PULL_DENSE, 0);
    m.u.dense.offset = off0;
    m.u.dense.count = cnt0;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ERROR);

    /* assign the initial weights: dense_initialized 0 -> 1 */
    for (uint64_t i = 0; i < cnt; i++) {
        v[i] = 0.1f * sinf((float)i * 0.01f);
        g[i] = 0.02f * cosf((float)i * 0.03f);
    }
    msg_init(&m, MSG_PUSH_DENSE, 0);
    m.hdr.sender = 20;
    m.hdr.seq = 1;
    m.u.dense.flags = MSG_F_ASSIGN;
    m.u.dense.offset = off;
    m.u.dense.count = cnt;
    m.u.dense.values = v;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ACK);
    CU_ASSERT_EQUAL(stat_of(&mc, "dense_initialized"), 1);
    msg_init(&m, MSG_PULL_DENSE, 0);
    m.u.dense.offset = off;
    m.u.dense.count = cnt;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_FATAL(rep.hdr.type == MSG_PULL_DENSE_OK && rep.u.dense.count == cnt);
    memcpy(w, rep.u.dense.values, cnt * sizeof(float));
    CU_ASSERT(memcmp(w, v, cnt * sizeof(float)) == 0);

    /* a gradient: one step of the dense optimizer (Adam, t = 1) */
    msg_init(&m, MSG_PUSH_DENSE, 0);
    m.hdr.sender = 20;
    m.hdr.seq = 2;
    m.u.dense.offset = off;
    m.u.dense.count = cnt;
    m.u.dense.values = g;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ACK);
    optim_dense_update(&spec.dense_opt, v, st, g, cnt, 1);
    msg_init(&m, MSG_PULL_DENSE, 0);
    m.u.dense.offset = off;
    m.u.dense.count = cnt;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_FATAL(rep.hdr.type == MSG_PULL_DENSE_OK && rep.u.dense.count == cnt);
    memcpy(w, rep.u.dense.values, cnt * sizeof(float));
    CU_ASSERT(memcmp(w, v, cnt * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(stat_of(&mc, "dense_step"), 1);

    /* a gradient of the wrong length is refused */
    msg_init(&m, MSG_PUSH_DENSE, 0);
    m.hdr.sender = 20;
    m.hdr.seq = 3;
    m.u.dense.offset = off;
    m.u.dense.count = cnt - 1;
    m.u.dense.values = g;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ERROR);
    CU_ASSERT_EQUAL(stat_of(&mc, "dense_step"), 1);

    /* a retried dense gradient (seq 2 again) is acknowledged, not applied */
    msg_init(&m, MSG_PUSH_DENSE, 0);
    m.hdr.sender = 20;
    m.hdr.seq = 2;
    m.u.dense.offset = off;
    m.u.dense.count = cnt;
    m.u.dense.values = g;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ACK);
    CU_ASSERT_EQUAL(rep.u.kv.flags, MSG_F_DUPLICATE);
    CU_ASSERT_EQUAL(stat_of(&mc, "dense_step"), 1);
    msg_init(&m, MSG_PULL_DENSE, 0);
    m.u.dense.offset = off;
    m.u.dense.count = cnt;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_FATAL(rep.hdr.type == MSG_PULL_DENSE_OK && rep.u.dense.count == cnt);
    CU_ASSERT(memcmp(rep.u.dense.values, v, cnt * sizeof(float)) == 0);
    free(st);
    free(g);
    free(w);
    free(v);
}

static void test_progress(void)
{
    msg_t m, rep;

    msg_init(&m, MSG_PROGRESS_GET, 0);
    m.u.progress.rank = 3;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL_FATAL(rep.hdr.type, MSG_PROGRESS_OK);
    CU_ASSERT_EQUAL(rep.u.progress.rank, 3);
    CU_ASSERT_EQUAL(rep.u.progress.found, 0);

    msg_init(&m, MSG_PROGRESS_SET, 0);
    m.u.progress = (msg_progress_t){3, 1, 2, 1, 123456789012ULL, 4242, 99999};
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ACK);
    m.u.progress = (msg_progress_t){4, 1, 0, 0, 10, 1, 5};
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    m.u.progress = (msg_progress_t){3, 1, 2, 3, 555, 7, 100000}; /* rank 3 moves on */
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);

    msg_init(&m, MSG_PROGRESS_GET, 0);
    m.u.progress.rank = 3;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL_FATAL(rep.hdr.type, MSG_PROGRESS_OK);
    CU_ASSERT_EQUAL(rep.u.progress.rank, 3);
    CU_ASSERT_EQUAL(rep.u.progress.found, 1);
    CU_ASSERT_EQUAL(rep.u.progress.epoch, 2);
    CU_ASSERT_EQUAL(rep.u.progress.file, 3);
    CU_ASSERT_EQUAL(rep.u.progress.offset, 555);
    CU_ASSERT_EQUAL(rep.u.progress.line, 7);
    CU_ASSERT_EQUAL(rep.u.progress.samples, 100000);
    msg_init(&m, MSG_PROGRESS_GET, 0);
    m.u.progress.rank = 4;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.u.progress.found, 1);
    CU_ASSERT_EQUAL(rep.u.progress.samples, 5);
    m.u.progress.rank = 5;
    msg_init(&m, MSG_PROGRESS_GET, 0);
    m.u.progress.rank = 5;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.u.progress.found, 0);
}

static void test_stats_move(void)
{
    rowset_t k, g;
    msg_t m, rep;
    int64_t req0 = stat_of(&mc, "requests"), pk0 = stat_of(&mc, "pull_keys");
    int64_t push0 = stat_of(&mc, "push_keys"), pushes0 = stat_of(&mc, "pushes");
    int64_t rp0 = stat_of(&mc, "requests_PULL"), fl0 = stat_of(&mc, "flushes");
    int64_t res0 = stat_of(&mc, "rows_resident");

    CU_ASSERT_FATAL(req0 > 0 && pk0 >= 0 && push0 >= 0 && rp0 >= 0 && fl0 >= 0);
    make_keys(&k, 5);
    CU_ASSERT_EQUAL_FATAL(pull(&mc, &k, 0), 0);
    make_grads(&g, &k, 1);
    CU_ASSERT_EQUAL(push(&mc, &g, 7, 1, NULL), MSG_ACK);
    CU_ASSERT_EQUAL(stat_of(&mc, "rows_dirty") > 0, 1);
    CU_ASSERT_EQUAL(flush(&mc), 0);

    CU_ASSERT_EQUAL(stat_of(&mc, "pull_keys"), pk0 + 2 * NK);
    CU_ASSERT_EQUAL(stat_of(&mc, "push_keys"), push0 + 2 * NK);
    CU_ASSERT_EQUAL(stat_of(&mc, "pushes"), pushes0 + 1);
    CU_ASSERT_EQUAL(stat_of(&mc, "requests_PULL"), rp0 + 1);
    CU_ASSERT_EQUAL(stat_of(&mc, "flushes"), fl0 + 1);
    CU_ASSERT_EQUAL(stat_of(&mc, "rows_dirty"), 0);
    CU_ASSERT_EQUAL(stat_of(&mc, "rows_resident"), res0 + 2 * NK);
    CU_ASSERT_EQUAL(stat_of(&mc, "seq_7"), 1);
    CU_ASSERT_EQUAL(stat_of(&mc, "shard"), SHARD);
    CU_ASSERT_EQUAL(stat_of(&mc, "shards"), NSHARDS);
    /* every stat_of is a request too: at least the 14 above */
    CU_ASSERT(stat_of(&mc, "requests") >= req0 + 14);

    /* the prefix filter */
    msg_init(&m, MSG_STATS, 0);
    m.u.cmd.text.ptr = "rows_";
    m.u.cmd.text.len = 5;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL_FATAL(rep.hdr.type, MSG_STATS_OK);
    CU_ASSERT(rep.u.kv.n >= 5);
    for (uint32_t i = 0; i < rep.u.kv.n; i++)
        CU_ASSERT(rep.u.kv.kv[i].name.len >= 5 && memcmp(rep.u.kv.kv[i].name.ptr, "rows_", 5) == 0);
}

static uint64_t rnd_state = 0x1234567;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Expect an ERROR reply (or none) to bytes; returns 1 if an ERROR came. */
static int send_bad(conn_t *c, const void *bytes, size_t len, int *code, uint64_t *req_id)
{
    msg_t rep;
    errbuf_t eb;

    if (send_bytes(c, bytes, len) != 0 || recv_frame(c, 2000) != 0)
        return 0;
    if (codec_decode(c->dec, &rep, zmq_msg_data(&c->rep), zmq_msg_size(&c->rep), &eb) != 0)
        return 0;
    if (code)
        *code = rep.u.error.code;
    if (req_id)
        *req_id = rep.hdr.req_id;
    return rep.hdr.type == MSG_ERROR;
}

static void test_malformed_input(void)
{
    unsigned char buf[512];
    msg_t m, rep;
    errbuf_t eb;
    int code = 0, nbad = 0, nerr = 0;
    uint64_t rid = 0;
    int64_t bad0 = stat_of(&mc, "bad_messages"), err0 = stat_of(&mc, "errors");
    int64_t ver0 = stat0(&mc, "errors_VERSION"), proto0 = stat0(&mc, "errors_PROTO");
    int64_t frames0 = stat_of(&mc, "bad_frames"), in0 = stat_of(&mc, "bytes_in");

    CU_ASSERT_FATAL(bad0 >= 0 && err0 >= 0 && frames0 >= 0 && in0 > 0);
    /* random garbage of many lengths, including empty */
    for (int t = 0; t < 40; t++) {
        size_t len = (size_t)(rnd() % sizeof(buf));
        if (t == 0)
            len = 0;
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rnd();
        if (t % 3 == 1 && len > 0)
            buf[0] = 0x97; /* looks like the 7-element frame */
        nbad++;
        CU_ASSERT(send_bad(&mc, buf, len, &code, NULL) == 1);
    }
    /* huge declared lengths and counts */
    static const unsigned char huge[][6] = {
        {0xdb, 0xff, 0xff, 0xff, 0xff, 0x00}, /* str32 of 4 GB */
        {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00}, /* array32 of 4 G elements */
        {0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00}, /* bin32 of 2 GB */
    };
    for (size_t t = 0; t < sizeof(huge) / sizeof(huge[0]); t++) {
        nbad++;
        CU_ASSERT(send_bad(&mc, huge[t], sizeof(huge[t]), &code, NULL) == 1);
    }

    /* a truncated valid message */
    rowset_t k;
    make_keys(&k, 6);
    rows_req(&m, MSG_PULL, &k, 0);
    m.hdr.req_id = 4242;
    CU_ASSERT_EQUAL_FATAL(codec_encode(&mc.enc, &m, &eb), 0);
    size_t full = mc.enc.len;
    unsigned char *copy = malloc(full);
    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    memcpy(copy, mc.enc.data, full);
    size_t cuts[3] = {full - 1, full / 2, 9};
    for (int t = 0; t < 3; t++) {
        nbad++;
        rid = 0;
        CU_ASSERT(send_bad(&mc, copy, cuts[t], &code, &rid) == 1);
        CU_ASSERT_EQUAL(code, ERR_PROTO);
        /* cut after the header's req_id (the first two cuts), the ERROR
         * is addressed to the request; cut inside it, 0 (array, magic,
         * version and type take 8 bytes, req_id 4242 3 more) */
        CU_ASSERT_EQUAL(rid, t < 2 ? 4242 : 0);
    }
    /* trailing bytes after a valid message */
    unsigned char *longer = malloc(full + 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(longer);
    memcpy(longer, copy, full);
    memset(longer + full, 0xc0, 3);
    nbad++;
    CU_ASSERT(send_bad(&mc, longer, full + 3, &code, NULL) == 1);
    free(longer);

    /* the wrong protocol version: [magic (uint32), version (fixint), ...] */
    CU_ASSERT_FATAL(copy[0] == 0x97 && copy[1] == 0xce && copy[6] == MSG_VERSION);
    copy[6] = MSG_VERSION + 1;
    nbad++;
    rid = 0;
    CU_ASSERT(send_bad(&mc, copy, full, &code, &rid) == 1);
    CU_ASSERT_EQUAL(code, ERR_VERSION);
    CU_ASSERT_EQUAL(rid, 4242);
    free(copy);

    /* a reply type sent as a request */
    msg_init(&m, MSG_ACK, 99);
    CU_ASSERT_EQUAL_FATAL(codec_encode(&mc.enc, &m, &eb), 0);
    nbad++;
    CU_ASSERT(send_bad(&mc, mc.enc.data, mc.enc.len, &code, &rid) == 1);
    CU_ASSERT_EQUAL(code, ERR_PROTO);
    CU_ASSERT_EQUAL(rid, 99);

    /* a 2-frame message: dropped (no reply) and counted */
    msg_init(&m, MSG_STATS, 5151);
    CU_ASSERT_EQUAL_FATAL(codec_encode(&mc.enc, &m, &eb), 0);
    CU_ASSERT_EQUAL(zmq_send(mc.sock, mc.enc.data, mc.enc.len, ZMQ_SNDMORE), (int)mc.enc.len);
    CU_ASSERT_EQUAL(zmq_send(mc.sock, mc.enc.data, mc.enc.len, 0), (int)mc.enc.len);
    nbad++;
    CU_ASSERT_EQUAL(recv_frame(&mc, 500), -1);

    /* layout errors: a slot the table does not have; a wrong row width */
    rows_req(&m, MSG_PULL, &k, 0);
    m.u.rows.slot[1].slot = (uint32_t)spec.nslots + 3;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ERROR);
    nerr++;
    rowset_t g;
    make_grads(&g, &k, 1);
    rows_req(&m, MSG_PUSH, &g, 1);
    m.hdr.sender = 8;
    m.hdr.seq = 1;
    m.u.rows.slot[1].dim = 4; /* tag is dim 8 */
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ERROR);
    CU_ASSERT_EQUAL(rep.u.error.code, ERR_MISMATCH);
    CU_ASSERT_EQUAL(stat_of(&mc, "seq_8"), -1); /* nothing was applied */
    nerr++;

    /* oversized for the shard's max_msg_size (1M): refused by ZeroMQ
     * before allocation, on a separate connection (the peer is dropped);
     * it never reaches the decoder, so it is not among bad_messages */
    conn_t big;
    int linger = 3000;
    CU_ASSERT_EQUAL_FATAL(conn_open(&big, main_ep), 0);
    zmq_setsockopt(big.sock, ZMQ_LINGER, &linger, sizeof(linger));
    size_t hl = (size_t)2 << 20;
    unsigned char *h = calloc(1, hl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    h[0] = 0x97;
    zmq_send(big.sock, h, hl, 0);
    free(h);
    conn_close(&big);

    /* the shard kept serving; every bad message was counted */
    rowset_t r;
    make_keys(&r, 1);
    CU_ASSERT_EQUAL(pull(&mc, &r, MSG_F_READONLY), 0);
    CU_ASSERT_EQUAL(stat_of(&mc, "bad_messages"), bad0 + nbad);
    /* errors: every ERROR reply (bad messages answered + layout errors) */
    CU_ASSERT_EQUAL(stat_of(&mc, "errors"), err0 + nbad - 1 + nerr);
    /* ... by kind: every ERROR under its code's name */
    CU_ASSERT_EQUAL(stat_sum(&mc, "errors_"), stat_of(&mc, "errors"));
    CU_ASSERT_EQUAL(stat0(&mc, "errors_VERSION"), ver0 + 1);
    CU_ASSERT(stat0(&mc, "errors_PROTO") >= proto0 + 6); /* 3 truncated, trailing, ACK, slot */
    CU_ASSERT(stat0(&mc, "errors_MISMATCH") >= 1);
    CU_ASSERT_EQUAL(stat_of(&mc, "bad_frames"), frames0 + 1);
    CU_ASSERT(stat_of(&mc, "bytes_in") > in0 + (int64_t)full);
    (void)code;
}

static void test_not_served_yet(void)
{
    msg_t m, rep;

    msg_init(&m, MSG_EXPORT, 0);
    m.u.cmd.day = 1;
    m.u.cmd.text.ptr = "/tmp/x";
    m.u.cmd.text.len = 6;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ERROR);
    CU_ASSERT_EQUAL(rep.u.error.code, ERR_PROTO);
    CU_ASSERT(rep.u.error.text.len > 0);
    msg_init(&m, MSG_SCAN, 0);
    m.u.scan.slot = SL[0];
    m.u.scan.limit = 10;
    CU_ASSERT_EQUAL_FATAL(call(&mc, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ERROR);
    CU_ASSERT_EQUAL(rep.u.error.code, ERR_PROTO);
    /* and the shard still answers */
    CU_ASSERT(stat_of(&mc, "requests_EXPORT") == 1 && stat_of(&mc, "requests_SCAN") == 1);
}

/* Pull k, push g (sender 9, seq 1): returns 0 and the pulled rows after. */
static int pull_push(conn_t *c, const rowset_t *k, uint64_t seq, int round, rowset_t *after)
{
    rowset_t g;

    *after = *k;
    if (pull(c, after, 0) != 0)
        return -1;
    make_grads(&g, k, round);
    if (push(c, &g, 9, seq, NULL) != MSG_ACK)
        return -1;
    return pull(c, after, 0);
}

/* This shard's dense range, from a probing HELLO. */
static int dense_range_of(conn_t *c, uint64_t *off, uint64_t *cnt)
{
    msg_t m, rep;

    msg_init(&m, MSG_HELLO, 0);
    m.u.hello.flags = MSG_F_PROBE;
    if (call(c, &m, &rep) != 0 || rep.hdr.type != MSG_HELLO_OK)
        return -1;
    route_dense_range(rep.u.hello.dense_size, NSHARDS, SHARD, off, cnt);
    return 0;
}

/* PUSH_DENSE of v as sender/seq; returns the reply type or -1. */
static int dense_push(conn_t *c, uint32_t sender, uint64_t seq, uint32_t flags, uint64_t off,
                      uint64_t cnt, const float *v)
{
    msg_t m, rep;

    msg_init(&m, MSG_PUSH_DENSE, 0);
    m.hdr.sender = sender;
    m.hdr.seq = seq;
    m.u.dense.flags = flags;
    m.u.dense.offset = off;
    m.u.dense.count = cnt;
    m.u.dense.values = v;
    return call(c, &m, &rep) == 0 ? rep.hdr.type : -1;
}

/* PULL_DENSE into out[cnt]; 0 or -1. */
static int dense_pull(conn_t *c, uint64_t off, uint64_t cnt, float *out)
{
    msg_t m, rep;

    msg_init(&m, MSG_PULL_DENSE, 0);
    m.u.dense.offset = off;
    m.u.dense.count = cnt;
    if (call(c, &m, &rep) != 0 || rep.hdr.type != MSG_PULL_DENSE_OK || rep.u.dense.count != cnt)
        return -1;
    memcpy(out, rep.u.dense.values, cnt * sizeof(float));
    return 0;
}

static int progress_set(conn_t *c, const msg_progress_t *p)
{
    msg_t m, rep;

    msg_init(&m, MSG_PROGRESS_SET, 0);
    m.u.progress = *p;
    return call(c, &m, &rep) == 0 && rep.hdr.type == MSG_ACK ? 0 : -1;
}

static int progress_get(conn_t *c, uint32_t rank, msg_progress_t *out)
{
    msg_t m, rep;

    msg_init(&m, MSG_PROGRESS_GET, 0);
    m.u.progress.rank = rank;
    if (call(c, &m, &rep) != 0 || rep.hdr.type != MSG_PROGRESS_OK)
        return -1;
    *out = rep.u.progress;
    return 0;
}

static int same_progress(const msg_progress_t *a, const msg_progress_t *b)
{
    return a->rank == b->rank && a->found == b->found && a->epoch == b->epoch &&
           a->file == b->file && a->offset == b->offset && a->line == b->line &&
           a->samples == b->samples;
}

/* The dense weights a shard should hold: v after `steps` gradients g
 * (the shard's optimizer code, run here). */
typedef struct dense_ref {
    uint64_t off, cnt;
    float *v, *g, *st, *got;
} dense_ref_t;

static int dense_ref_new(dense_ref_t *d, conn_t *c)
{
    memset(d, 0, sizeof(*d));
    if (dense_range_of(c, &d->off, &d->cnt) != 0 || d->cnt == 0)
        return -1;
    d->v = calloc(d->cnt, sizeof(float));
    d->g = calloc(d->cnt, sizeof(float));
    d->got = calloc(d->cnt, sizeof(float));
    d->st = calloc(optim_dense_state_len(&spec.dense_opt, d->cnt) + 1, sizeof(float));
    if (!d->v || !d->g || !d->got || !d->st)
        return -1;
    for (uint64_t i = 0; i < d->cnt; i++) {
        d->v[i] = 0.05f * cosf((float)i * 0.02f);
        d->g[i] = 0.01f * sinf((float)i * 0.05f + 1.0f);
    }
    return 0;
}

static void dense_ref_free(dense_ref_t *d)
{
    free(d->v);
    free(d->g);
    free(d->st);
    free(d->got);
}

/* 1 if the shard's dense range equals d->v. */
static int dense_matches(conn_t *c, dense_ref_t *d)
{
    return dense_pull(c, d->off, d->cnt, d->got) == 0 &&
           memcmp(d->got, d->v, d->cnt * sizeof(float)) == 0;
}

static void test_sigterm_flushes(void)
{
    char ep[700];
    conn_t c;
    rowset_t k, v1, back;
    pid_t pid = shard_start("term", ep, sizeof(ep), NULL);

    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    /* the dense range's initial weights are written at once (the only
     * write before SIGTERM) */
    dense_ref_t d;
    CU_ASSERT_EQUAL_FATAL(dense_ref_new(&d, &c), 0);
    CU_ASSERT_EQUAL(dense_push(&c, 21, 1, MSG_F_ASSIGN, d.off, d.cnt, d.v), MSG_ACK);
    CU_ASSERT_EQUAL(stat_of(&c, "flushes"), 1);
    make_keys(&k, 10);
    CU_ASSERT_EQUAL_FATAL(pull_push(&c, &k, 1, 1, &v1), 0);
    CU_ASSERT_EQUAL(pull_push(&c, &k, 2, 2, &v1), 0);
    /* a worker position and one Adam step of the dense range */
    msg_progress_t pos = {2, 1, 1, 4, 987654321ULL, 1234, 777}, got;
    CU_ASSERT_EQUAL(progress_set(&c, &pos), 0);
    CU_ASSERT_EQUAL(dense_push(&c, 21, 2, 0, d.off, d.cnt, d.g), MSG_ACK);
    optim_dense_update(&spec.dense_opt, d.v, d.st, d.g, d.cnt, 1);
    CU_ASSERT(dense_matches(&c, &d));
    CU_ASSERT_EQUAL(stat_of(&c, "flushes"), 1); /* nothing written since */
    conn_close(&c);
    CU_ASSERT_EQUAL(shard_stop(pid, SIGTERM), 0); /* exit status 0: clean */

    pid = shard_start("term", ep, sizeof(ep), NULL);
    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    CU_ASSERT_EQUAL(stat_of(&c, "rows_resident"), 0); /* all in RocksDB */
    back = k;
    CU_ASSERT_EQUAL(pull(&c, &back, MSG_F_READONLY), 0);
    CU_ASSERT(same_rows(&back, &v1));
    CU_ASSERT_EQUAL(stat_of(&c, "seq_9"), 2);
    CU_ASSERT_EQUAL(stat_of(&c, "rows_loaded"), 2 * NK);
    /* the worker position, the dense weights, Adam's state and step */
    CU_ASSERT_EQUAL(progress_get(&c, 2, &got), 0);
    CU_ASSERT(same_progress(&got, &pos));
    CU_ASSERT_EQUAL(stat_of(&c, "dense_initialized"), 1);
    CU_ASSERT_EQUAL(stat_of(&c, "dense_step"), 1);
    CU_ASSERT_EQUAL(stat_of(&c, "seq_21"), 2);
    CU_ASSERT(dense_matches(&c, &d));
    CU_ASSERT_EQUAL(dense_push(&c, 21, 3, 0, d.off, d.cnt, d.g), MSG_ACK);
    optim_dense_update(&spec.dense_opt, d.v, d.st, d.g, d.cnt, 2);
    CU_ASSERT(dense_matches(&c, &d)); /* the second step used the restored m, v */
    dense_ref_free(&d);
    /* the next push continues from the restored sequence: no loss */
    CU_ASSERT_EQUAL(pull_push(&c, &k, 3, 3, &v1), 0);
    CU_ASSERT_EQUAL(stat_of(&c, "lost_pushes"), 0);
    conn_close(&c);
    CU_ASSERT_EQUAL(shard_stop(pid, SIGTERM), 0);
}

/* BEGIN_DAY is durable: a shard killed right after it and restarted with
 * its old --day continues on the new day, and stamps new rows with it. */
static void test_begin_day_survives_kill9(void)
{
    char ep[700];
    conn_t c;
    msg_t m, rep;
    rowset_t k;
    pid_t pid = shard_start("day", ep, sizeof(ep), "--day 3");

    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    CU_ASSERT_EQUAL(stat_of(&c, "day"), 3);
    msg_init(&m, MSG_BEGIN_DAY, 0);
    m.u.cmd.day = 5;
    CU_ASSERT_EQUAL(call(&c, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ACK);
    CU_ASSERT_EQUAL(stat_of(&c, "day"), 5);
    conn_close(&c);
    shard_stop(pid, SIGKILL);

    pid = shard_start("day", ep, sizeof(ep), "--day 3");
    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    CU_ASSERT_EQUAL(stat_of(&c, "day"), 5);
    make_keys(&k, 15);
    CU_ASSERT_EQUAL(pull(&c, &k, 0), 0);
    /* a later --day on the command line still wins */
    conn_close(&c);
    CU_ASSERT_EQUAL(shard_stop(pid, SIGTERM), 0);
    pid = shard_start("day", ep, sizeof(ep), "--day 7");
    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    CU_ASSERT_EQUAL(stat_of(&c, "day"), 7);
    conn_close(&c);
    CU_ASSERT_EQUAL(shard_stop(pid, SIGTERM), 0);
}

static void test_shutdown_request(void)
{
    char ep[700];
    conn_t c;
    rowset_t k, v1, back;
    msg_t m, rep;
    pid_t pid = shard_start("shut", ep, sizeof(ep), NULL);

    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    make_keys(&k, 14);
    CU_ASSERT_EQUAL_FATAL(pull_push(&c, &k, 1, 1, &v1), 0);
    msg_init(&m, MSG_SHUTDOWN, 0);
    CU_ASSERT_EQUAL(call(&c, &m, &rep), 0);
    CU_ASSERT_EQUAL(rep.hdr.type, MSG_ACK);
    conn_close(&c);
    /* signal 0: the shard must exit by itself, with status 0 */
    CU_ASSERT_EQUAL(shard_stop(pid, 0), 0);

    pid = shard_start("shut", ep, sizeof(ep), NULL);
    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    back = k;
    CU_ASSERT_EQUAL(pull(&c, &back, MSG_F_READONLY), 0);
    CU_ASSERT(same_rows(&back, &v1));
    CU_ASSERT_EQUAL(stat_of(&c, "seq_9"), 1);
    conn_close(&c);
    CU_ASSERT_EQUAL(shard_stop(pid, SIGTERM), 0);
}

/* --data DIR whose parents do not exist yet: the shard creates them and
 * keeps its store there (a fresh machine's /srv/funnel/ps0). */
static void test_data_parents_created(void)
{
    char ep[700], extra[700], current[800];
    conn_t c;
    rowset_t k, v;
    struct stat st;

    snprintf(extra, sizeof(extra), "--data %s/fresh/parents/data", dir); /* the last --data wins */
    snprintf(current, sizeof(current), "%s/fresh/parents/data/CURRENT", dir);
    pid_t pid = shard_start("fresh", ep, sizeof(ep), extra);
    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    make_keys(&k, 15);
    CU_ASSERT_EQUAL(pull_push(&c, &k, 1, 1, &v), 0);
    conn_close(&c);
    CU_ASSERT_EQUAL(shard_stop(pid, SIGTERM), 0);
    CU_ASSERT_EQUAL(stat(current, &st), 0); /* RocksDB's store is there */
}

static void test_kill9_after_flush(void)
{
    char ep[700];
    conn_t c;
    rowset_t k, v1, back;
    pid_t pid = shard_start("k9", ep, sizeof(ep), NULL);

    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    make_keys(&k, 11);
    CU_ASSERT_EQUAL_FATAL(pull_push(&c, &k, 1, 1, &v1), 0);
    msg_progress_t pos = {1, 1, 0, 2, 5000, 50, 640}, later = {1, 1, 0, 2, 9000, 90, 1280};
    msg_progress_t got;
    CU_ASSERT_EQUAL(progress_set(&c, &pos), 0);
    dense_ref_t d;
    CU_ASSERT_EQUAL_FATAL(dense_ref_new(&d, &c), 0);
    CU_ASSERT_EQUAL(dense_push(&c, 22, 1, MSG_F_ASSIGN, d.off, d.cnt, d.v), MSG_ACK);
    CU_ASSERT_EQUAL_FATAL(flush(&c), 0);
    /* after the flush: a newer position and a dense step, both lost */
    CU_ASSERT_EQUAL(progress_set(&c, &later), 0);
    CU_ASSERT_EQUAL(dense_push(&c, 22, 2, 0, d.off, d.cnt, d.g), MSG_ACK);
    CU_ASSERT_EQUAL(stat_of(&c, "dense_step"), 1);
    conn_close(&c);
    shard_stop(pid, SIGKILL);

    pid = shard_start("k9", ep, sizeof(ep), NULL);
    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    back = k;
    CU_ASSERT_EQUAL(pull(&c, &back, MSG_F_READONLY), 0);
    CU_ASSERT(same_rows(&back, &v1));
    CU_ASSERT_EQUAL(stat_of(&c, "seq_9"), 1);
    CU_ASSERT_EQUAL(progress_get(&c, 1, &got), 0);
    CU_ASSERT(same_progress(&got, &pos));
    CU_ASSERT_EQUAL(stat_of(&c, "dense_initialized"), 1);
    CU_ASSERT_EQUAL(stat_of(&c, "dense_step"), 0);
    CU_ASSERT_EQUAL(stat_of(&c, "seq_22"), 1);
    CU_ASSERT(dense_matches(&c, &d)); /* the assigned weights, not the step */
    /* sender 22 goes on with seq 3: its dense push 2 is counted as lost */
    CU_ASSERT_EQUAL(dense_push(&c, 22, 3, 0, d.off, d.cnt, d.g), MSG_ACK);
    CU_ASSERT_EQUAL(stat_of(&c, "lost_pushes"), 1);
    dense_ref_free(&d);
    conn_close(&c);
    CU_ASSERT_EQUAL(shard_stop(pid, SIGTERM), 0);
}

static void test_lost_pushes_counted(void)
{
    char ep[700];
    conn_t c;
    rowset_t k, v1, v3, back, g;
    refrows_t ref;
    pid_t pid = shard_start("lost", ep, sizeof(ep), NULL);

    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    make_keys(&k, 12);
    ref_init(&ref, &k);
    CU_ASSERT_EQUAL_FATAL(pull_push(&c, &k, 1, 1, &v1), 0); /* seq 1: flushed */
    make_grads(&g, &k, 1);
    ref_step(&ref, &g);
    CU_ASSERT(same_rows(&v1, &ref.w));
    CU_ASSERT_EQUAL_FATAL(flush(&c), 0);
    CU_ASSERT_EQUAL_FATAL(pull_push(&c, &k, 2, 2, &v3), 0); /* seq 2, 3: not flushed */
    CU_ASSERT_EQUAL_FATAL(pull_push(&c, &k, 3, 3, &v3), 0);
    CU_ASSERT(!same_rows(&v3, &v1));
    /* sender 11 starts after the flush: the store never hears of it */
    rowset_t k11, g11;
    make_keys(&k11, 13);
    make_grads(&g11, &k11, 1);
    CU_ASSERT_EQUAL(push(&c, &g11, 11, 1, NULL), MSG_ACK);
    CU_ASSERT_EQUAL(push(&c, &g11, 11, 2, NULL), MSG_ACK);
    conn_close(&c);
    shard_stop(pid, SIGKILL);

    pid = shard_start("lost", ep, sizeof(ep), NULL);
    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    back = k;
    CU_ASSERT_EQUAL(pull(&c, &back, MSG_F_READONLY), 0);
    CU_ASSERT(same_rows(&back, &v1)); /* the flushed state */
    CU_ASSERT_EQUAL(stat_of(&c, "seq_9"), 1);
    CU_ASSERT_EQUAL(stat_of(&c, "lost_pushes"), 0);
    /* sender 9 continues with seq 4: seqs 2 and 3 were applied and lost */
    uint32_t fl = 99;
    make_grads(&g, &k, 4);
    CU_ASSERT_EQUAL(push(&c, &g, 9, 4, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(fl, 0);
    CU_ASSERT_EQUAL(stat_of(&c, "lost_pushes"), 2);
    ref_step(&ref, &g);
    CU_ASSERT_EQUAL(pull(&c, &back, MSG_F_READONLY), 0);
    CU_ASSERT(same_rows(&back, &ref.w));
    /* later pushes in sequence add nothing; a stale seq is a duplicate */
    make_grads(&g, &k, 5);
    CU_ASSERT_EQUAL(push(&c, &g, 9, 5, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(fl, 0);
    CU_ASSERT_EQUAL(push(&c, &g, 9, 3, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(fl, MSG_F_DUPLICATE);
    CU_ASSERT_EQUAL(stat_of(&c, "lost_pushes"), 2);
    /* sender 11, unknown to the store, goes on with seq 3: 1 and 2 lost */
    CU_ASSERT_EQUAL(stat_of(&c, "seq_11"), -1);
    CU_ASSERT_EQUAL(push(&c, &g11, 11, 3, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(fl, 0);
    CU_ASSERT_EQUAL(stat_of(&c, "lost_pushes"), 4);
    /* a new sender starting at seq 1 loses nothing */
    CU_ASSERT_EQUAL(push(&c, &g, 10, 1, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(push(&c, &g, 10, 2, &fl), MSG_ACK);
    CU_ASSERT_EQUAL(stat_of(&c, "lost_pushes"), 4);
    conn_close(&c);
    CU_ASSERT_EQUAL(shard_stop(pid, SIGTERM), 0);
}

/* ---- dense_shard, in process ---- */

/* The dense range's initial weights exist only in rank 0's ASSIGN: a
 * shard killed before its first timed flush must still have them after a
 * restart, or the workers (which initialize only at start-up) would go on
 * training a range of zeros. */
static void test_kill9_after_dense_assign(void)
{
    char ep[700];
    conn_t c;
    dense_ref_t d;
    pid_t pid = shard_start("k9dense", ep, sizeof(ep), NULL);

    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    CU_ASSERT_EQUAL_FATAL(dense_ref_new(&d, &c), 0);
    CU_ASSERT_EQUAL(stat_of(&c, "dense_initialized"), 0);
    CU_ASSERT_EQUAL(dense_push(&c, 0, 1, MSG_F_ASSIGN, d.off, d.cnt, d.v), MSG_ACK);
    CU_ASSERT_EQUAL(stat_of(&c, "dense_initialized"), 1);
    conn_close(&c);
    shard_stop(pid, SIGKILL); /* no FLUSH, and flush_interval is an hour */

    pid = shard_start("k9dense", ep, sizeof(ep), NULL);
    CU_ASSERT_FATAL(pid > 0);
    remember(pid);
    CU_ASSERT_EQUAL_FATAL(connect_ready(&c, ep), 0);
    CU_ASSERT_EQUAL(stat_of(&c, "dense_initialized"), 1);
    CU_ASSERT(dense_matches(&c, &d));
    CU_ASSERT_EQUAL(stat_of(&c, "seq_0"), 1);
    conn_close(&c);
    CU_ASSERT_EQUAL(shard_stop(pid, SIGTERM), 0);
    dense_ref_free(&d);
}

static void test_dense_shard_ranges(void)
{
    static const uint64_t totals[] = {0, 1, 7, 1000, 12345};
    optim_t adam = spec.dense_opt, sgd = spec.dense_opt;
    dense_shard_t d;
    errbuf_t eb;

    for (size_t t = 0; t < sizeof(totals) / sizeof(totals[0]); t++)
        for (uint32_t n = 1; n <= 9; n++) {
            uint64_t next = 0;
            for (uint32_t i = 0; i < n; i++) {
                CU_ASSERT_EQUAL_FATAL(dense_shard_init(&d, &adam, totals[t], n, i, &eb), 0);
                /* the shards' ranges tile the vector in order */
                CU_ASSERT_EQUAL(d.offset, next);
                next = d.offset + d.count;
                CU_ASSERT_EQUAL(d.nstate, optim_dense_state_len(&adam, d.count));
                CU_ASSERT_EQUAL(dense_shard_check_range(&d, d.offset, d.count, &eb), 0);
                CU_ASSERT_EQUAL(dense_shard_check_range(&d, d.offset + 1, d.count, &eb), ERR_INVAL);
                CU_ASSERT_EQUAL(dense_shard_check_range(&d, d.offset, d.count + 1, &eb), ERR_INVAL);
                CU_ASSERT_EQUAL(d.initialized, 0);
                dense_shard_release(&d);
            }
            CU_ASSERT_EQUAL(next, totals[t]);
        }
    CU_ASSERT_EQUAL(dense_shard_init(&d, &adam, 100, 2, 2, &eb), ERR_INVAL);
    dense_shard_release(&d);
    sgd.kind = OPTIM_SGD;
    CU_ASSERT_EQUAL(dense_shard_init(&d, &sgd, 100, 2, 0, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "sgd"));
    dense_shard_release(&d);
}

/* Values as they come off the wire: at an odd address. */
static void *unaligned_copy(unsigned char *buf, const float *v, size_t n)
{
    memcpy(buf + 1, v, n * sizeof(float));
    return buf + 1;
}

static void test_dense_shard_steps_and_record(void)
{
    const size_t total = 1001;
    dense_shard_t d, e;
    optim_t ada = spec.dense_opt;
    errbuf_t eb;
    const void *rec;
    size_t len, n;
    float *v, *g, *st, *w2;
    unsigned char *buf, *bad;

    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&d, &spec.dense_opt, total, 3, 1, &eb), 0);
    n = d.count;
    v = calloc(n, sizeof(float));
    g = calloc(n, sizeof(float));
    w2 = calloc(n, sizeof(float));
    st = calloc(d.nstate + 1, sizeof(float));
    buf = malloc(n * sizeof(float) + 1);
    CU_ASSERT_FATAL(v && g && st && w2 && buf);
    for (size_t i = 0; i < n; i++) {
        v[i] = 0.1f * sinf((float)i);
        g[i] = 0.01f * cosf((float)i * 0.7f);
    }
    /* assign, then three optimizer steps: bit for bit the library's */
    dense_shard_assign(&d, unaligned_copy(buf, v, n));
    CU_ASSERT_EQUAL(d.initialized, 1);
    CU_ASSERT(memcmp(d.w, v, n * sizeof(float)) == 0);
    for (int t = 1; t <= 3; t++) {
        dense_shard_apply(&d, unaligned_copy(buf, g, n));
        optim_dense_update(&spec.dense_opt, v, st, g, n, t);
    }
    CU_ASSERT_EQUAL(d.step, 3);
    CU_ASSERT(memcmp(d.w, v, n * sizeof(float)) == 0);
    CU_ASSERT(memcmp(d.state, st, d.nstate * sizeof(float)) == 0);
    /* assigning keeps the optimizer's state and step */
    dense_shard_assign(&d, unaligned_copy(buf, g, n));
    CU_ASSERT_EQUAL(d.step, 3);
    CU_ASSERT(memcmp(d.state, st, d.nstate * sizeof(float)) == 0);
    dense_shard_assign(&d, unaligned_copy(buf, v, n));

    /* the record round trip */
    CU_ASSERT_EQUAL_FATAL(dense_shard_encode(&d, &rec, &len, &eb), 0);
    CU_ASSERT_EQUAL(len, DENSE_SHARD_RECORD_HEADER + (n + d.nstate) * sizeof(float));
    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&e, &spec.dense_opt, total, 3, 1, &eb), 0);
    CU_ASSERT_EQUAL(dense_shard_decode(&e, rec, len, "test", &eb), 0);
    CU_ASSERT_EQUAL(e.initialized, 1);
    CU_ASSERT_EQUAL(e.step, 3);
    CU_ASSERT(memcmp(e.w, d.w, n * sizeof(float)) == 0);
    CU_ASSERT(memcmp(e.state, d.state, d.nstate * sizeof(float)) == 0);
    /* ... and the next step after it equals the uninterrupted one */
    dense_shard_apply(&d, unaligned_copy(buf, g, n));
    dense_shard_apply(&e, unaligned_copy(buf, g, n));
    CU_ASSERT(memcmp(e.w, d.w, n * sizeof(float)) == 0);
    dense_shard_release(&e);
    CU_ASSERT_EQUAL_FATAL(dense_shard_encode(&d, &rec, &len, &eb), 0);
    bad = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);

    /* another shard's range, another shard count, another optimizer: refused */
    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&e, &spec.dense_opt, total, 3, 2, &eb), 0);
    memcpy(w2, e.w, n * sizeof(float));
    CU_ASSERT_EQUAL(dense_shard_decode(&e, rec, len, "dir-x", &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "dir-x"));
    CU_ASSERT_EQUAL(e.initialized, 0);
    dense_shard_release(&e);
    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&e, &spec.dense_opt, total, 2, 1, &eb), 0);
    CU_ASSERT_EQUAL(dense_shard_decode(&e, rec, len, "test", &eb), ERR_MISMATCH);
    dense_shard_release(&e);
    ada.kind = spec.dense_opt.kind == OPTIM_ADAM ? OPTIM_ADAGRAD : OPTIM_ADAM;
    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&e, &ada, total, 3, 1, &eb), 0);
    CU_ASSERT_EQUAL(dense_shard_decode(&e, rec, len, "test", &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, optim_name(spec.dense_opt.kind)));
    dense_shard_release(&e);

    /* truncated, padded, empty, another version: corrupt, d unchanged */
    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&e, &spec.dense_opt, total, 3, 1, &eb), 0);
    CU_ASSERT_EQUAL(dense_shard_decode(&e, rec, len - 4, "test", &eb), ERR_CORRUPT);
    CU_ASSERT_EQUAL(dense_shard_decode(&e, rec, 20, "test", &eb), ERR_CORRUPT);
    CU_ASSERT_EQUAL(dense_shard_decode(&e, rec, 0, "test", &eb), ERR_CORRUPT);
    memcpy(bad, rec, len);
    bad[0] = DENSE_SHARD_RECORD_VERSION + 1;
    CU_ASSERT_EQUAL(dense_shard_decode(&e, bad, len, "test", &eb), ERR_CORRUPT);
    CU_ASSERT_EQUAL(e.initialized, 0);
    CU_ASSERT_EQUAL(e.step, 0);
    dense_shard_release(&e);

    free(bad);
    free(buf);
    free(st);
    free(w2);
    free(g);
    free(v);
    dense_shard_release(&d);
}

/* shard_meta on an in-memory store: what is saved is loaded back, the later
 * day wins, a new day clears the positions, a bad record is refused. */
static void test_shard_meta_records(void)
{
    const msg_progress_t pos = {2, 0, 1, 3, 1000, 77, 5000};
    static const char bad_seq[] = {1, 0, 0, 0, 2, 0, 0}; /* 7 bytes */
    store_t *st = NULL;
    dense_shard_t d, e;
    shard_meta_t m, l;
    shard_sender_t *snd;
    const msg_progress_t *p;
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&d, &spec.dense_opt, 100, 2, 1, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(dense_shard_init(&e, &spec.dense_opt, 100, 2, 1, &eb), 0);

    /* a fresh store: nothing to load, the command line's day */
    shard_meta_init(&l, 1, "dir-m", 4);
    CU_ASSERT_EQUAL(shard_meta_load(&l, st, &e, &eb), 0);
    CU_ASSERT_EQUAL(l.nsenders, 0);
    CU_ASSERT_EQUAL(l.nprog, 0);
    CU_ASSERT_EQUAL(l.day, 4);
    CU_ASSERT_EQUAL(e.initialized, 0);
    shard_meta_release(&l);

    shard_meta_init(&m, 1, "dir-m", 3);
    snd = shard_meta_sender(&m, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(snd);
    snd->last_seq = 42;
    snd->checked = 1;
    CU_ASSERT_PTR_NOT_NULL_FATAL(shard_meta_sender(&m, 9));
    shard_meta_sender(&m, 9)->last_seq = 7;
    CU_ASSERT_EQUAL(shard_meta_sender(&m, 5)->last_seq, 42); /* found, not added */
    CU_ASSERT_EQUAL(m.nsenders, 2);
    CU_ASSERT_EQUAL(shard_meta_progress_set(&m, &pos), 0);
    CU_ASSERT_EQUAL(shard_meta_progress_set(&m, &pos), 0); /* replaces */
    CU_ASSERT_EQUAL(m.nprog, 1);
    CU_ASSERT_PTR_NULL(shard_meta_progress_get(&m, 3));
    d.initialized = 1;
    d.step = 11;
    CU_ASSERT_EQUAL_FATAL(shard_meta_save(&m, st, &d, &eb), 0);

    /* loaded back; the stored day 3 is later than the command line's 1 */
    shard_meta_init(&l, 1, "dir-m", 1);
    CU_ASSERT_EQUAL_FATAL(shard_meta_load(&l, st, &e, &eb), 0);
    CU_ASSERT_EQUAL(l.day, 3);
    CU_ASSERT_EQUAL_FATAL(l.nsenders, 2);
    CU_ASSERT_EQUAL(l.senders[0].id, 5);
    CU_ASSERT_EQUAL(l.senders[0].last_seq, 42);
    CU_ASSERT_EQUAL(l.senders[0].checked, 0); /* checked again after a start */
    CU_ASSERT_EQUAL(l.senders[1].id, 9);
    CU_ASSERT_EQUAL(l.senders[1].last_seq, 7);
    p = shard_meta_progress_get(&l, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->found, 1);
    CU_ASSERT_EQUAL(p->epoch, 1);
    CU_ASSERT_EQUAL(p->file, 3);
    CU_ASSERT_EQUAL(p->offset, 1000);
    CU_ASSERT_EQUAL(p->line, 77);
    CU_ASSERT_EQUAL(p->samples, 5000);
    CU_ASSERT_EQUAL(e.initialized, 1);
    CU_ASSERT_EQUAL(e.step, 11);
    shard_meta_release(&l);

    /* a later command-line day wins over the stored one */
    shard_meta_init(&l, 1, "dir-m", 8);
    CU_ASSERT_EQUAL(shard_meta_load(&l, st, &e, &eb), 0);
    CU_ASSERT_EQUAL(l.day, 8);
    shard_meta_release(&l);

    /* a new day clears the positions, and that is what is saved */
    shard_meta_begin_day(&m, 6);
    CU_ASSERT_EQUAL(m.day, 6);
    CU_ASSERT_PTR_NULL(shard_meta_progress_get(&m, 2));
    CU_ASSERT_EQUAL_FATAL(shard_meta_save(&m, st, &d, &eb), 0);
    shard_meta_init(&l, 1, "dir-m", 0);
    CU_ASSERT_EQUAL(shard_meta_load(&l, st, &e, &eb), 0);
    CU_ASSERT_EQUAL(l.day, 6);
    CU_ASSERT_EQUAL(l.nprog, 0);
    CU_ASSERT_EQUAL(l.nsenders, 2);
    shard_meta_release(&l);

    /* a truncated sequence record: corrupt, naming the directory */
    store_op_t op = {"m:seq", 5, bad_seq, sizeof(bad_seq)};
    CU_ASSERT_EQUAL_FATAL(store_write(st, &op, 1, 0, &eb), 0);
    shard_meta_init(&l, 1, "dir-m", 0);
    CU_ASSERT_EQUAL(shard_meta_load(&l, st, &e, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "dir-m"));
    shard_meta_release(&l);

    shard_meta_release(&m);
    dense_shard_release(&e);
    dense_shard_release(&d);
    store_close(&st);
}

int test_server_register(void)
{
    CU_pSuite s = CU_add_suite("server", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "dense_shard: ranges tile the vector; bad shard or optimizer refused",
                test_dense_shard_ranges);
    CU_add_test(s, "dense_shard: steps bit for bit, record round trip, mismatch, corrupt",
                test_dense_shard_steps_and_record);
    CU_add_test(s, "shard_meta: records round trip, the later day, a new day, corrupt",
                test_shard_meta_records);
    CU_add_test(s, "handshake: same layout ok, other emb_dim refused", test_handshake);
    CU_add_test(s, "pull creates optim_row_init rows", test_pull_creates_init_rows);
    CU_add_test(s, "push then pull: one Adagrad step", test_push_one_adagrad_step);
    CU_add_test(s, "a retried push (same seq) is applied once", test_push_retry_applied_once);
    CU_add_test(s, "dense range: pull, assign, gradient", test_dense_range);
    CU_add_test(s, "progress set and get", test_progress);
    CU_add_test(s, "stats counters move", test_stats_move);
    CU_add_test(s, "malformed messages: error replies, counted, still serving",
                test_malformed_input);
    CU_add_test(s, "EXPORT and SCAN: an ERROR reply, not served yet", test_not_served_yet);
    CU_add_test(s, "SIGTERM flushes; the restart serves rows, progress, dense range",
                test_sigterm_flushes);
    CU_add_test(s, "SHUTDOWN flushes and exits 0", test_shutdown_request);
    CU_add_test(s, "--data's missing parents are created", test_data_parents_created);
    CU_add_test(s, "BEGIN_DAY survives kill -9 and an older --day", test_begin_day_survives_kill9);
    CU_add_test(s, "kill -9 after FLUSH serves the flushed rows, progress and dense range",
                test_kill9_after_flush);
    CU_add_test(s, "kill -9 right after the dense ASSIGN keeps the initial weights",
                test_kill9_after_dense_assign);
    CU_add_test(s, "kill -9 + restart: a seq gap is counted in lost_pushes",
                test_lost_pushes_counted);
    return CUE_SUCCESS;
}
