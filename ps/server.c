/*
 * server.c - the parameter-server shard loop; the only server file that
 * includes zmq.h. See server.h for the design notes.
 */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include "codec.h"
#include "emb_table.h"
#include "log.h"
#include "meta.h"
#include "modeldir.h"
#include "model.h"
#include "msg.h"
#include "optim.h"
#include "route.h"
#include "store.h"

/* Counters reported by STATS, listed once. */
#define SERVER_COUNTERS(X)                                                   \
    X(requests, "requests served")                                           \
    X(pull_keys, "keys pulled")                                              \
    X(push_keys, "keys pushed")                                              \
    X(pushes, "pushes applied (rows and dense)")                             \
    X(duplicate_pushes, "retried pushes answered without applying them")     \
    X(lost_pushes, "pushes applied before a crash and not flushed")          \
    X(dense_pulls, "dense range pulls")                                      \
    X(errors, "requests answered with an error")                             \
    X(bad_messages, "messages that did not decode or had bad framing")      \
    X(flushes, "flushes to RocksDB")                                         \
    X(rows_flushed, "rows written by flushes")                               \
    X(checkpoints, "checkpoints written")

typedef struct counters {
#define X(name, desc) uint64_t name;
    SERVER_COUNTERS(X)
#undef X
} counters_t;

/* Last applied push of one sender. */
typedef struct sender {
    uint32_t id;
    uint64_t last_seq;  /* applied */
    int restored;       /* last_seq came from the store: next gap = lost */
} sender_t;

typedef struct progress_rec {
    uint32_t rank;
    msg_progress_t p;
} progress_rec_t;

typedef struct server {
    const ps_conf_t *pc;
    model_spec_t ms;
    store_t *store;
    emb_table_t *table;
    void *ctx, *sock;
    codec_dec_t *dec;
    codec_buf_t out;
    msg_hello_t hello;          /* this shard's layout */
    uint64_t dense_total;       /* floats in the whole dense vector */
    uint64_t dense_off, dense_cnt; /* this shard's range */
    float *dense_w, *dense_state;
    size_t dense_nstate;
    int64_t dense_step;
    int dense_init;
    sender_t *senders;
    size_t nsenders;
    progress_rec_t *prog;
    size_t nprog;
    float *scratch;             /* rows of one request */
    size_t scratch_cap;         /* floats */
    counters_t c;
    uint64_t by_type[MSG_TYPE_END];
    double t0, last_flush, last_warn;
    uint64_t warn_suppressed;
    int shutdown;
    int day;                    /* stamped on rows as first/last seen */
} server_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- metadata in the store: dense range, senders, progress ---- */

static const char KEY_DENSE[] = "m:dense";
static const char KEY_SEQ[] = "m:seq";
static const char KEY_PROG[] = "m:progress";

static int save_meta(server_t *s, errbuf_t *eb)
{
    size_t dn = 8 * 3 + 4 + (s->dense_cnt + s->dense_nstate) * 4;
    size_t sn = s->nsenders * 12, pn = s->nprog * sizeof(progress_rec_t);
    unsigned char *d = malloc(dn), *q = malloc(sn ? sn : 1);
    int rc;

    if (!d || !q) {
        free(d);
        free(q);
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    uint32_t init = (uint32_t)s->dense_init;
    memcpy(d, &s->dense_off, 8);
    memcpy(d + 8, &s->dense_cnt, 8);
    memcpy(d + 16, &s->dense_step, 8);
    memcpy(d + 24, &init, 4);
    memcpy(d + 28, s->dense_w, s->dense_cnt * 4);
    memcpy(d + 28 + s->dense_cnt * 4, s->dense_state, s->dense_nstate * 4);
    for (size_t i = 0; i < s->nsenders; i++) {
        memcpy(q + i * 12, &s->senders[i].id, 4);
        memcpy(q + i * 12 + 4, &s->senders[i].last_seq, 8);
    }
    store_op_t ops[3] = {
        {KEY_DENSE, sizeof(KEY_DENSE) - 1, d, dn},
        {KEY_SEQ, sizeof(KEY_SEQ) - 1, q, sn},
        {KEY_PROG, sizeof(KEY_PROG) - 1, s->prog ? (const void *)s->prog : (const void *)"", pn},
    };
    rc = store_write(s->store, ops, 3, 1, eb);
    free(d);
    free(q);
    return rc;
}

static int load_meta(server_t *s, errbuf_t *eb)
{
    void *v = NULL;
    size_t vl;
    int rc = store_get(s->store, KEY_DENSE, sizeof(KEY_DENSE) - 1, &v, &vl, eb);

    if (rc == 0) {
        uint64_t off = UINT64_MAX, cnt = 0;
        uint32_t init;
        if (vl >= 28) {
            memcpy(&off, v, 8);
            memcpy(&cnt, (char *)v + 8, 8);
        }
        if (vl != 28 + (s->dense_cnt + s->dense_nstate) * 4 || off != s->dense_off ||
            cnt != s->dense_cnt) {
            free(v);
            return errbuf_set(eb, ERR_MISMATCH,
                              "%s: stored dense range does not match this shard's layout "
                              "(different shard count or towers?)",
                              s->pc->data.s);
        }
        memcpy(&s->dense_step, (char *)v + 16, 8);
        memcpy(&init, (char *)v + 24, 4);
        s->dense_init = init != 0;
        memcpy(s->dense_w, (char *)v + 28, s->dense_cnt * 4);
        memcpy(s->dense_state, (char *)v + 28 + s->dense_cnt * 4, s->dense_nstate * 4);
        free(v);
    } else if (rc != ERR_NOTFOUND) {
        return rc;
    }
    v = NULL;
    rc = store_get(s->store, KEY_SEQ, sizeof(KEY_SEQ) - 1, &v, &vl, eb);
    if (rc == 0) {
        size_t n = vl / 12;
        s->senders = calloc(n ? n : 1, sizeof(*s->senders));
        if (!s->senders) {
            free(v);
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            memcpy(&s->senders[i].id, (char *)v + i * 12, 4);
            memcpy(&s->senders[i].last_seq, (char *)v + i * 12 + 4, 8);
            s->senders[i].restored = 1;
        }
        s->nsenders = n;
        free(v);
    } else if (rc != ERR_NOTFOUND) {
        return rc;
    }
    v = NULL;
    rc = store_get(s->store, KEY_PROG, sizeof(KEY_PROG) - 1, &v, &vl, eb);
    if (rc == 0) {
        size_t n = vl / sizeof(progress_rec_t);
        s->prog = malloc((n ? n : 1) * sizeof(progress_rec_t));
        if (!s->prog) {
            free(v);
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        }
        memcpy(s->prog, v, n * sizeof(progress_rec_t));
        s->nprog = n;
        free(v);
    } else if (rc != ERR_NOTFOUND) {
        return rc;
    }
    return 0;
}

static int flush_all(server_t *s, errbuf_t *eb)
{
    uint64_t rows = 0;
    int rc = emb_table_flush(s->table, &rows, eb);

    if (rc == 0)
        rc = save_meta(s, eb);
    if (rc == 0) {
        s->c.flushes++;
        s->c.rows_flushed += rows;
        LOG_DEBUG("flushed %llu rows", (unsigned long long)rows);
    }
    s->last_flush = now_s();
    return rc;
}

/* ---- replies ---- */

static void send_reply(server_t *s, zmq_msg_t *id)
{
    zmq_msg_t idc;

    zmq_msg_init(&idc);
    zmq_msg_copy(&idc, id);
    if (zmq_msg_send(&idc, s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&idc);
        return;
    }
    if (zmq_send(s->sock, s->out.data, s->out.len, ZMQ_DONTWAIT) < 0)
        LOG_DEBUG("reply dropped: %s", zmq_strerror(errno));
}

static void warn_limited(server_t *s, const char *what, const char *msg)
{
    double t = now_s();

    if (t - s->last_warn >= 1.0) {
        if (s->warn_suppressed)
            LOG_WARN("%s: %s (%llu similar warnings suppressed)", what, msg,
                     (unsigned long long)s->warn_suppressed);
        else
            LOG_WARN("%s: %s", what, msg);
        s->last_warn = t;
        s->warn_suppressed = 0;
    } else {
        s->warn_suppressed++;
    }
}

static void reply_error(server_t *s, zmq_msg_t *id, uint64_t req_id, int code, const char *text)
{
    msg_t m;
    errbuf_t eb;

    s->c.errors++;
    msg_init(&m, MSG_ERROR, req_id);
    m.u.error.code = code;
    m.u.error.text.ptr = text;
    m.u.error.text.len = (uint32_t)strnlen(text, MSG_MAX_TEXT - 1);
    if (codec_encode(&s->out, &m, &eb) == 0)
        send_reply(s, id);
}

static int reply_ack(server_t *s, zmq_msg_t *id, uint64_t req_id, uint32_t flags,
                     const msg_kv_t *kv, uint32_t nkv, errbuf_t *eb)
{
    msg_t m;
    int rc;

    msg_init(&m, MSG_ACK, req_id);
    m.u.kv.flags = flags;
    m.u.kv.n = nkv;
    m.u.kv.kv = kv;
    rc = codec_encode(&s->out, &m, eb);
    if (rc == 0)
        send_reply(s, id);
    return rc;
}

static float *scratch(server_t *s, size_t floats)
{
    if (floats > s->scratch_cap) {
        float *p = realloc(s->scratch, floats * sizeof(float));
        if (!p)
            return NULL;
        s->scratch = p;
        s->scratch_cap = floats;
    }
    return s->scratch;
}

/* ---- handlers: return 0 (reply sent) or an error to report ---- */

static int on_hello(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    msg_t r;
    int rc = codec_hello_check(&s->hello, &m->u.hello, eb);

    if (rc != 0) {
        LOG_WARN("handshake refused: %s", eb->msg);
        return rc;
    }
    msg_init(&r, MSG_HELLO_OK, m->hdr.req_id);
    r.u.hello = s->hello;
    rc = codec_encode(&s->out, &r, eb);
    if (rc == 0)
        send_reply(s, id);
    return rc;
}

static int on_pull(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    const msg_rows_t *q = &m->u.rows;
    int mode = (q->flags & MSG_F_READONLY) ? EMB_PULL_READONLY : EMB_PULL_CREATE;
    msg_t r;
    int rc;

    msg_init(&r, MSG_PULL_OK, m->hdr.req_id);
    r.u.rows.nslots = q->nslots;
    for (uint32_t e = 0; e < q->nslots; e++) {
        msg_slot_t *o = &r.u.rows.slot[e];
        memset(o, 0, sizeof(*o));
        o->slot = q->slot[e].slot;
        o->nkeys = q->slot[e].nkeys;
        o->dim = (uint32_t)s->ms.slot[o->slot].dim;
    }
    rc = codec_encode(&s->out, &r, eb); /* rows blobs reserved, filled below */
    if (rc != 0)
        return rc;
    for (uint32_t e = 0; e < q->nslots; e++) {
        const msg_slot_t *in = &q->slot[e];
        size_t dim = (size_t)s->ms.slot[in->slot].dim;
        float *rows = scratch(s, (size_t)in->nkeys * dim + 1);
        uint64_t *keys = malloc(((size_t)in->nkeys + 1) * sizeof(uint64_t));
        if (!rows || !keys) {
            free(keys);
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        }
        for (uint32_t j = 0; j < in->nkeys; j++)
            keys[j] = msg_key_get(in->keys, j);
        rc = emb_table_pull(s->table, (int)in->slot, keys, in->nkeys, rows, mode, eb);
        free(keys);
        if (rc != 0)
            return rc;
        memcpy(codec_buf_blob(&s->out, e), rows, (size_t)in->nkeys * dim * sizeof(float));
        s->c.pull_keys += in->nkeys;
    }
    send_reply(s, id);
    return 0;
}

static sender_t *sender_of(server_t *s, uint32_t id)
{
    for (size_t i = 0; i < s->nsenders; i++)
        if (s->senders[i].id == id)
            return &s->senders[i];
    sender_t *n = realloc(s->senders, (s->nsenders + 1) * sizeof(*n));
    if (!n)
        return NULL;
    s->senders = n;
    n[s->nsenders] = (sender_t){id, 0, 0};
    return &n[s->nsenders++];
}

/* 1 if the push must be skipped as a duplicate; counts lost pushes. */
static int push_seen(server_t *s, const msg_t *m, sender_t *snd)
{
    if (m->hdr.seq <= snd->last_seq) {
        s->c.duplicate_pushes++;
        return 1;
    }
    if (snd->restored && m->hdr.seq > snd->last_seq + 1) {
        uint64_t lost = m->hdr.seq - 1 - snd->last_seq;
        s->c.lost_pushes += lost;
        LOG_WARN("sender %u: %llu push(es) since the last flush were lost (seq %llu after %llu)",
                 snd->id, (unsigned long long)lost, (unsigned long long)m->hdr.seq,
                 (unsigned long long)snd->last_seq);
    }
    snd->restored = 0;
    return 0;
}

static int on_push(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    const msg_rows_t *q = &m->u.rows;
    sender_t *snd = sender_of(s, m->hdr.sender);
    int rc = 0;

    if (!snd)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    if (push_seen(s, m, snd))
        return reply_ack(s, id, m->hdr.req_id, MSG_F_DUPLICATE, NULL, 0, eb);
    for (uint32_t e = 0; e < q->nslots && rc == 0; e++) {
        const msg_slot_t *in = &q->slot[e];
        size_t width = in->dim;
        float *g = scratch(s, (size_t)in->nkeys * width + 1);
        uint64_t *keys = malloc(((size_t)in->nkeys + 1) * sizeof(uint64_t));
        if (!g || !keys) {
            free(keys);
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        }
        for (uint32_t j = 0; j < in->nkeys; j++)
            keys[j] = msg_key_get(in->keys, j);
        memcpy(g, in->rows, (size_t)in->nkeys * width * sizeof(float));
        if (q->flags & MSG_F_ASSIGN)
            rc = emb_table_assign(s->table, (int)in->slot, keys, in->nkeys, g,
                                  (q->flags & MSG_F_STATE) != 0, eb);
        else
            rc = emb_table_push(s->table, (int)in->slot, keys, in->nkeys, g, eb);
        free(keys);
        s->c.push_keys += in->nkeys;
    }
    if (rc != 0)
        return rc;
    snd->last_seq = m->hdr.seq;
    s->c.pushes++;
    return reply_ack(s, id, m->hdr.req_id, 0, NULL, 0, eb);
}

static int dense_range_ok(server_t *s, const msg_dense_t *d, errbuf_t *eb)
{
    if (d->offset != s->dense_off || d->count != s->dense_cnt)
        return errbuf_set(eb, ERR_INVAL,
                          "dense range [%llu, +%llu) is not this shard's [%llu, +%llu)",
                          (unsigned long long)d->offset, (unsigned long long)d->count,
                          (unsigned long long)s->dense_off, (unsigned long long)s->dense_cnt);
    return 0;
}

static int on_pull_dense(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    msg_t r;
    int rc = dense_range_ok(s, &m->u.dense, eb);

    if (rc != 0)
        return rc;
    msg_init(&r, MSG_PULL_DENSE_OK, m->hdr.req_id);
    r.u.dense.offset = s->dense_off;
    r.u.dense.count = s->dense_cnt;
    r.u.dense.values = s->dense_w;
    rc = codec_encode(&s->out, &r, eb);
    if (rc == 0) {
        send_reply(s, id);
        s->c.dense_pulls++;
    }
    return rc;
}

static int on_push_dense(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    const msg_dense_t *d = &m->u.dense;
    sender_t *snd = sender_of(s, m->hdr.sender);
    int rc = dense_range_ok(s, d, eb);

    if (rc != 0)
        return rc;
    if (!snd)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    if (push_seen(s, m, snd))
        return reply_ack(s, id, m->hdr.req_id, MSG_F_DUPLICATE, NULL, 0, eb);
    if (d->flags & MSG_F_ASSIGN) {
        memcpy(s->dense_w, d->values, s->dense_cnt * sizeof(float));
        if (!s->dense_init)
            LOG_INFO("dense range initialized by sender %u", m->hdr.sender);
        s->dense_init = 1;
    } else {
        float *g = scratch(s, s->dense_cnt + 1);
        if (!g)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        memcpy(g, d->values, s->dense_cnt * sizeof(float));
        s->dense_step++;
        optim_dense_update(&s->ms.dense_opt, s->dense_w, s->dense_state, g, s->dense_cnt,
                           s->dense_step);
    }
    snd->last_seq = m->hdr.seq;
    s->c.pushes++;
    return reply_ack(s, id, m->hdr.req_id, 0, NULL, 0, eb);
}

static int on_progress(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    progress_rec_t *p = NULL;
    msg_t r;

    for (size_t i = 0; i < s->nprog; i++)
        if (s->prog[i].rank == m->u.progress.rank)
            p = &s->prog[i];
    if (m->hdr.type == MSG_PROGRESS_SET) {
        if (!p) {
            progress_rec_t *n = realloc(s->prog, (s->nprog + 1) * sizeof(*n));
            if (!n)
                return errbuf_set(eb, ERR_NOMEM, "out of memory");
            s->prog = n;
            p = &n[s->nprog++];
            memset(p, 0, sizeof(*p));
        }
        p->rank = m->u.progress.rank;
        p->p = m->u.progress;
        p->p.found = 1;
        return reply_ack(s, id, m->hdr.req_id, 0, NULL, 0, eb);
    }
    msg_init(&r, MSG_PROGRESS_OK, m->hdr.req_id);
    if (p)
        r.u.progress = p->p;
    r.u.progress.rank = m->u.progress.rank;
    r.u.progress.found = p != NULL;
    int rc = codec_encode(&s->out, &r, eb);
    if (rc == 0)
        send_reply(s, id);
    return rc;
}

#define MAX_KV 128

static int on_stats(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    static char names[MAX_KV][64];
    msg_kv_t kv[MAX_KV];
    uint32_t n = 0;
    emb_table_stats_t ts;
    const char *pfx = m->u.cmd.text.ptr;
    size_t pl = m->u.cmd.text.len;
    msg_t r;

    emb_table_stats(s->table, &ts);
#define ADD(nm, val)                                                                       \
    do {                                                                                   \
        if (n < MAX_KV && strlen(nm) >= pl && (pl == 0 || memcmp(nm, pfx, pl) == 0)) {     \
            snprintf(names[n], sizeof(names[n]), "%s", nm);                                \
            kv[n] = (msg_kv_t){{names[n], (uint32_t)strlen(names[n])}, 0, (val), {NULL, 0}}; \
            n++;                                                                           \
        }                                                                                  \
    } while (0)
#define X(name, desc) ADD(#name, s->c.name);
    SERVER_COUNTERS(X)
#undef X
    ADD("shard", (uint64_t)s->pc->shard);
    ADD("shards", (uint64_t)s->pc->shards);
    ADD("uptime_s", (uint64_t)(now_s() - s->t0));
    ADD("dense_initialized", (uint64_t)s->dense_init);
    ADD("day", (uint64_t)s->day);
    ADD("rows_expired", ts.expired);
    ADD("admit_pending", ts.admit_pending);
    ADD("admit_dropped", ts.admit_dropped);
    ADD("dense_step", (uint64_t)s->dense_step);
    ADD("dense_floats", s->dense_cnt);
    ADD("rows_resident", ts.resident_rows);
    ADD("bytes_resident", ts.resident_bytes);
    ADD("bytes_payload", ts.payload_bytes);
    ADD("rows_dirty", ts.dirty_rows);
    ADD("rows_created", ts.created);
    ADD("rows_loaded", ts.loaded);
    ADD("rows_evicted", ts.evicted);
    ADD("rows_evicted_dirty", ts.evicted_dirty);
    for (size_t i = 0; i < s->nsenders; i++) {
        char nm[64];
        snprintf(nm, sizeof(nm), "seq_%u", s->senders[i].id);
        ADD(nm, s->senders[i].last_seq);
    }
    for (int t = 1; t < MSG_TYPE_END; t++)
        if (s->by_type[t]) {
            char nm[64];
            snprintf(nm, sizeof(nm), "requests_%s", msg_type_name(t));
            ADD(nm, s->by_type[t]);
        }
#undef ADD
    msg_init(&r, MSG_STATS_OK, m->hdr.req_id);
    r.u.kv.n = n;
    r.u.kv.kv = kv;
    int rc = codec_encode(&s->out, &r, eb);
    if (rc == 0)
        send_reply(s, id);
    return rc;
}

static int on_checkpoint(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    char dir[MSG_MAX_TEXT + 1];
    int rc;

    snprintf(dir, sizeof(dir), "%.*s", (int)m->u.cmd.text.len, m->u.cmd.text.ptr);
    rc = flush_all(s, eb);
    if (rc == 0)
        rc = store_checkpoint(s->store, dir, eb);
    if (rc != 0)
        return rc;
    s->c.checkpoints++;
    LOG_INFO("checkpoint written to %s", dir);
    return reply_ack(s, id, m->hdr.req_id, 0, NULL, 0, eb);
}

/* ROWS_GET: each key's row (with optimizer state if asked) and why it has
 * none. */
static int on_rows_get(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    const msg_rows_t *q = &m->u.rows;
    int with_state = (q->flags & MSG_F_STATE) != 0;
    size_t total_f = 0, total_k = 0;
    msg_t r;
    int rc = 0;

    for (uint32_t e = 0; e < q->nslots; e++) {
        total_k += q->slot[e].nkeys;
        total_f += (size_t)q->slot[e].nkeys * emb_table_row_floats(s->table, (int)q->slot[e].slot);
    }
    float *vals = malloc((total_f + 1) * sizeof(float));
    msg_row_meta_t *metas = malloc((total_k + 1) * sizeof(*metas));
    float *row = malloc(((size_t)MSG_MAX_DIM + 1) * sizeof(float));
    if (!vals || !metas || !row) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    msg_init(&r, MSG_ROWS_OK, m->hdr.req_id);
    r.u.rows.flags = q->flags & MSG_F_STATE;
    r.u.rows.nslots = q->nslots;
    size_t fo = 0, ko = 0;
    for (uint32_t e = 0; e < q->nslots && rc == 0; e++) {
        const msg_slot_t *in = &q->slot[e];
        int sl = (int)in->slot;
        size_t full = emb_table_row_floats(s->table, sl);
        size_t width = with_state ? full : (size_t)s->ms.slot[sl].dim;
        msg_slot_t *o = &r.u.rows.slot[e];
        memset(o, 0, sizeof(*o));
        o->slot = in->slot;
        o->nkeys = in->nkeys;
        o->dim = (uint32_t)width;
        o->keys = in->keys;
        o->rows = vals + fo;
        o->meta = metas + ko;
        for (uint32_t j = 0; j < in->nkeys && rc == 0; j++) {
            emb_row_meta_t rm;
            int status, exp;
            uint32_t seen;
            memset(row, 0, full * sizeof(float));
            rc = emb_table_inspect(s->table, sl, msg_key_get(in->keys, j), row, &rm, &status,
                                   &seen, &exp, eb);
            memcpy(vals + fo, row, width * sizeof(float));
            fo += width;
            int has = status == EMB_ROW_RESIDENT || status == EMB_ROW_STORED;
            metas[ko++] = (msg_row_meta_t){(uint32_t)status, seen, rm.updates,
                                           has ? rm.first_day : -1, has ? rm.last_day : -1,
                                           exp, 0};
        }
    }
    if (rc == 0)
        rc = codec_encode(&s->out, &r, eb);
    if (rc == 0)
        send_reply(s, id);
out:
    free(row);
    free(metas);
    free(vals);
    return rc;
}

static int on_begin_day(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    uint64_t deleted = 0;
    int rc = 0;

    if (m->u.cmd.day < 0)
        return errbuf_set(eb, ERR_INVAL, "BEGIN_DAY needs a day");
    s->day = m->u.cmd.day;
    emb_table_set_day(s->table, s->day);
    s->nprog = 0; /* a new day is a new job: workers start on its logs */
    if (m->u.cmd.flags & MSG_F_EXPIRE) {
        rc = emb_table_expire(s->table, s->day, &deleted, eb);
        if (rc == 0)
            rc = flush_all(s, eb);
        if (rc != 0)
            return rc;
    }
    LOG_INFO("day %d begins%s: %llu rows expired", s->day,
             (m->u.cmd.flags & MSG_F_EXPIRE) ? " with expiry" : "", (unsigned long long)deleted);
    static char nm[] = "expired";
    msg_kv_t kv = {{nm, sizeof(nm) - 1}, 0, deleted, {NULL, 0}};
    return reply_ack(s, id, m->hdr.req_id, 0, &kv, 1, eb);
}

/* Decode and answer one request. */
static void handle(server_t *s, zmq_msg_t *id, const void *data, size_t len)
{
    msg_t m;
    errbuf_t eb = {{0}};
    int rc;

    s->c.requests++;
    rc = codec_decode(s->dec, &m, data, len, &eb);
    if (rc != 0) {
        s->c.bad_messages++;
        warn_limited(s, "bad message", eb.msg);
        reply_error(s, id, m.hdr.req_id, rc, eb.msg);
        return;
    }
    if (!msg_type_is_request(m.hdr.type)) {
        s->c.bad_messages++;
        snprintf(eb.msg, sizeof(eb.msg), "%s is not a request", msg_type_name(m.hdr.type));
        warn_limited(s, "bad message", eb.msg);
        reply_error(s, id, m.hdr.req_id, ERR_PROTO, eb.msg);
        return;
    }
    s->by_type[m.hdr.type]++;
    rc = codec_check_layout(&m, &s->hello, &eb);
    if (rc == 0) {
        switch (m.hdr.type) {
        case MSG_HELLO: rc = on_hello(s, id, &m, &eb); break;
        case MSG_PULL: rc = on_pull(s, id, &m, &eb); break;
        case MSG_PUSH: rc = on_push(s, id, &m, &eb); break;
        case MSG_PULL_DENSE: rc = on_pull_dense(s, id, &m, &eb); break;
        case MSG_PUSH_DENSE: rc = on_push_dense(s, id, &m, &eb); break;
        case MSG_PROGRESS_SET:
        case MSG_PROGRESS_GET: rc = on_progress(s, id, &m, &eb); break;
        case MSG_STATS: rc = on_stats(s, id, &m, &eb); break;
        case MSG_FLUSH:
            rc = flush_all(s, &eb);
            if (rc == 0)
                rc = reply_ack(s, id, m.hdr.req_id, 0, NULL, 0, &eb);
            break;
        case MSG_CHECKPOINT: rc = on_checkpoint(s, id, &m, &eb); break;
        case MSG_BEGIN_DAY: rc = on_begin_day(s, id, &m, &eb); break;
        case MSG_ROWS_GET: rc = on_rows_get(s, id, &m, &eb); break;
        case MSG_SHUTDOWN:
            rc = flush_all(s, &eb);
            if (rc == 0) {
                s->shutdown = 1;
                rc = reply_ack(s, id, m.hdr.req_id, 0, NULL, 0, &eb);
            }
            break;
        default:
            rc = errbuf_set(&eb, ERR_PROTO, "%s is not supported by this shard yet",
                            msg_type_name(m.hdr.type));
        }
    }
    if (rc != 0) {
        warn_limited(s, msg_type_name(m.hdr.type), eb.msg);
        reply_error(s, id, m.hdr.req_id, rc, eb.msg);
    }
}

/* Receive one multipart message: [identity][payload]. */
static void serve_one(server_t *s)
{
    zmq_msg_t id, body;
    int more;
    size_t ml = sizeof(more);

    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, s->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        return;
    }
    zmq_msg_init(&body);
    zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &ml);
    if (!more || zmq_msg_recv(&body, s->sock, ZMQ_DONTWAIT) < 0) {
        s->c.bad_messages++;
        goto out;
    }
    zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &ml);
    if (more) { /* more frames than one payload: drain and drop */
        s->c.bad_messages++;
        do {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            zmq_msg_recv(&extra, s->sock, 0);
            zmq_msg_close(&extra);
            zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &ml);
        } while (more);
        warn_limited(s, "bad message", "more than one payload frame; dropped");
        goto out;
    }
    handle(s, &id, zmq_msg_data(&body), zmq_msg_size(&body));
out:
    zmq_msg_close(&body);
    zmq_msg_close(&id);
}

/* --init_from CKPT: a fresh data directory starts as the checkpoint's copy
 * of this shard; a directory that already holds a store (a restart) keeps
 * it. The checkpoint's META must match the running layout and shard count. */
static int restore_checkpoint(server_t *s, errbuf_t *eb)
{
    const ps_conf_t *pc = s->pc;
    char from[CONF_STR_MAX + 32], current[CONF_STR_MAX + 32];
    meta_t saved, running;
    struct stat st;
    int rc;

    if (!pc->init_from.s[0])
        return 0;
    snprintf(current, sizeof(current), "%s/CURRENT", pc->data.s);
    if (stat(current, &st) == 0) {
        LOG_INFO("%s already holds a store: continuing from it, not from %s", pc->data.s,
                 pc->init_from.s);
        return 0;
    }
    rc = meta_read(pc->init_from.s, &saved, eb);
    if (rc != 0)
        return rc;
    meta_from_spec(&running, &s->ms, (int)pc->shards, (int)pc->day, s->dense_total);
    rc = meta_check(&saved, &running, pc->init_from.s, eb);
    if (rc != 0)
        return rc;
    snprintf(from, sizeof(from), "%s/shard-%lld", pc->init_from.s, (long long)pc->shard);
    rc = modeldir_copy_files(from, pc->data.s, eb);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "restore from checkpoint %s", pc->init_from.s);
    LOG_INFO("restored shard %lld from checkpoint %s (day %d)", (long long)pc->shard,
             pc->init_from.s, saved.day);
    return 0;
}

static int open_dense(server_t *s, errbuf_t *eb)
{
    model_t *m = model_new(&s->ms, 1, 0, eb);
    size_t n;

    if (!m)
        return ERR_NOMEM;
    model_params(m, &n);
    model_destroy(&m);
    s->dense_total = n;
    route_dense_range(n, (uint32_t)s->pc->shards, (uint32_t)s->pc->shard, &s->dense_off,
                      &s->dense_cnt);
    s->dense_nstate = optim_dense_state_len(&s->ms.dense_opt, s->dense_cnt);
    s->dense_w = calloc(s->dense_cnt + 1, sizeof(float));
    s->dense_state = calloc(s->dense_nstate + 1, sizeof(float));
    if (!s->dense_w || !s->dense_state)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    return 0;
}

static void server_release(server_t *s)
{
    emb_table_destroy(&s->table);
    store_close(&s->store);
    if (s->sock)
        zmq_close(s->sock);
    if (s->ctx)
        zmq_ctx_term(s->ctx);
    codec_dec_destroy(&s->dec);
    codec_buf_release(&s->out);
    free(s->scratch);
    free(s->prog);
    free(s->senders);
    free(s->dense_state);
    free(s->dense_w);
}

static int open_socket(server_t *s, errbuf_t *eb)
{
    int zero = 0, hwm = 100000;
    int64_t maxmsg = (int64_t)s->pc->max_msg_size;

    s->ctx = zmq_ctx_new();
    s->sock = s->ctx ? zmq_socket(s->ctx, ZMQ_ROUTER) : NULL;
    if (!s->sock)
        return errbuf_set(eb, ERR_NET, "cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
    zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    if (zmq_bind(s->sock, s->pc->listen.s) != 0)
        return errbuf_set(eb, ERR_NET, "shard %lld: listen on %s: %s", (long long)s->pc->shard,
                          s->pc->listen.s, zmq_strerror(errno));
    return 0;
}

int server_run(const ps_conf_t *pc, volatile sig_atomic_t *stop, errbuf_t *eb)
{
    server_t s;
    char name[CONF_STR_MAX + 64];
    int rc;

    memset(&s, 0, sizeof(s));
    s.pc = pc;
    s.t0 = s.last_flush = now_s();
    codec_buf_init(&s.out, pc->max_msg_size);
    if (pc->shard >= pc->shards)
        return errbuf_set(eb, ERR_CONFIG, "--shard %lld must be below --shards %lld",
                          (long long)pc->shard, (long long)pc->shards);
    rc = model_spec_from_conf(&s.ms, &pc->model, eb);
    if (rc == 0)
        rc = open_dense(&s, eb);
    if (rc != 0)
        goto out;
    if (mkdir(pc->data.s, 0755) != 0 && errno != EEXIST) {
        rc = errbuf_set(eb, ERR_IO, "shard %lld: create %s: %s", (long long)pc->shard,
                        pc->data.s, strerror(errno));
        goto out;
    }
    rc = restore_checkpoint(&s, eb);
    if (rc != 0)
        goto out;
    snprintf(name, sizeof(name), "shard %lld %s", (long long)pc->shard, pc->data.s);
    rc = store_rocks_open(&s.store, pc->data.s, STORE_CREATE, name, eb);
    if (rc == 0)
        rc = emb_table_open(&s.table, s.store, &s.ms, pc->mem_limit, eb);
    if (rc == 0)
        rc = load_meta(&s, eb);
    if (rc != 0)
        goto out;
    s.day = (int)pc->day;
    emb_table_set_day(s.table, s.day);
    codec_hello_from_spec(&s.hello, &s.ms, (uint32_t)pc->shard, (uint32_t)pc->shards,
                          s.dense_total, (int32_t)pc->day);
    s.dec = codec_dec_new(pc->max_msg_size);
    if (!s.dec) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = open_socket(&s, eb);
    if (rc != 0)
        goto out;
    LOG_INFO("shard %lld of %lld listening on %s (data %s, %s dense floats [%llu, +%llu), "
             "%zu senders and %zu worker positions restored)",
             (long long)pc->shard, (long long)pc->shards, pc->listen.s, pc->data.s,
             s.dense_init ? "restored" : "uninitialized", (unsigned long long)s.dense_off,
             (unsigned long long)s.dense_cnt, s.nsenders, s.nprog);

    while (!*stop && !s.shutdown) {
        zmq_pollitem_t item = {s.sock, 0, ZMQ_POLLIN, 0};
        double wait = pc->flush_interval - (now_s() - s.last_flush);
        long ms = wait <= 0 ? 0 : wait > 0.1 ? 100 : (long)(wait * 1000);
        int n = zmq_poll(&item, 1, ms);
        if (n < 0 && errno != EINTR) {
            rc = errbuf_set(eb, ERR_NET, "poll: %s", zmq_strerror(errno));
            break;
        }
        for (int burst = 0; n > 0 && burst < 256; burst++) {
            serve_one(&s);
            n = zmq_poll(&item, 1, 0);
        }
        if (now_s() - s.last_flush >= pc->flush_interval) {
            rc = flush_all(&s, eb);
            if (rc != 0)
                break;
        }
    }
    if (rc == 0 && !s.shutdown) {
        LOG_INFO("stopping: flushing to %s", pc->data.s);
        rc = flush_all(&s, eb);
    }
    if (rc == 0)
        LOG_INFO("stopped cleanly after %llu requests", (unsigned long long)s.c.requests);
out:
    server_release(&s);
    return rc;
}
