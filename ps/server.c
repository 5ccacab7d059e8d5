/*
 * server.c - the parameter-server shard loop; the only server file that
 * includes zmq.h. It owns the embedding table, the dense range, the push
 * sequence numbers and the workers' progress, answers every request from
 * them, and writes them to the store at each flush (their records:
 * shard_meta.h). See server.h for the design notes.
 */
#include "ps/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/dirs.h"
#include "common/finite.h"
#include "common/grow.h"
#include "common/log.h"
#include "proto/codec.h"
#include "proto/half.h"
#include "proto/msg.h"
#include "proto/zap.h"
#include "ps/ckpt_dir.h"
#include "ps/dense_shard.h"
#include "ps/endpoint.h"
#include "ps/ps_metrics.h"
#include "ps/shard_layout.h"
#include "ps/shard_meta.h"
#include "ps/shard_policy.h"
#include "table/emb_table.h"
#include "table/store.h"

/* Counters reported by STATS, listed once. */
#define SERVER_COUNTERS(X)                                                                 \
    X(requests, "messages received (every payload, good or bad)")                          \
    X(bytes_in, "bytes of payloads received")                                              \
    X(bytes_out, "bytes of replies sent")                                                  \
    X(replies_dropped, "replies ZeroMQ could not queue (peer gone or not reading)")        \
    X(pull_keys, "keys pulled")                                                            \
    X(push_keys, "keys pushed")                                                            \
    X(pushes, "pushes applied (rows and dense)")                                           \
    X(duplicate_pushes, "retried pushes answered without applying them")                   \
    X(replayed_pushes, "pushes of batches already applied, resent by a restarted worker")  \
    X(lost_pushes, "pushes applied before a crash and not flushed (since this start)")     \
    X(dense_pulls, "dense range pulls")                                                    \
    X(dense_pushes, "dense gradients and assignments applied")                             \
    X(errors, "requests answered with an error (errors_<CODE>: by kind)")                  \
    X(bad_messages, "messages that did not decode, were not requests or had bad framing")  \
    X(bad_frames, "of bad_messages: multipart messages dropped without a reply")           \
    X(flushes, "flushes to RocksDB")                                                       \
    X(rows_flushed, "rows written by flushes")                                             \
    X(checkpoints, "checkpoints written")                                                  \
    X(hello_policy_diffs, "handshakes whose admission or expiry differ from this shard's") \
    X(nonfinite_pushes, "pushes and assignments refused for carrying NaN or infinity")     \
    X(denied, "requests refused: the client key's role or ranks do not allow them")

typedef struct counters {
#define X(name, desc) uint64_t name;
    SERVER_COUNTERS(X)
#undef X
} counters_t;

#define ERR_KINDS 32 /* errors_by_kind[-code]; the last one: codes out of the list */

/* One STATS entry being built (names copied into `name`). */
typedef struct stat_ent {
    char name[64];
    uint64_t value;
} stat_ent_t;

typedef struct server {
    const ps_conf_t *pc;
    model_spec_t ms;
    store_t *store;
    emb_table_t *table;
    dense_shard_t dense;
    void *ctx, *sock;
    codec_dec_t *dec;
    codec_buf_t out;
    msg_hello_t hello; /* this shard's layout */
    shard_meta_t meta; /* push seqs, worker positions, day: saved at each flush */
    uint64_t *keys;    /* scratch: keys of one request entry (unaligned in the message) */
    size_t keys_cap;   /* keys */
    float *wide;       /* scratch (wire_fp16): float32 rows of one 16-bit request or reply */
    size_t wide_cap;   /* floats */
    msg_t wmsg;        /* scratch (wire_fp16): a 16-bit push with its rows widened */
    stat_ent_t *st;    /* scratch: STATS entries */
    size_t st_cap;     /* entries */
    msg_kv_t *kv;      /* scratch: STATS reply list */
    size_t kv_cap;     /* entries */
    counters_t c;
    uint64_t by_type[MSG_TYPE_END];
    uint64_t by_err[ERR_KINDS];
    double t0, last_flush, last_warn; /* s, monotonic */
    int spill_warned;                 /* the spill file's failure was logged */
    uint64_t warn_suppressed;
    int shutdown;
    char ckpt_root[DIRS_PATH_MAX]; /* resolved checkpoint_root: CHECKPOINT writes only here */
    auth_t *auth;                  /* the allow-list; NULL: no keys, every peer may do anything */
    zap_t *zap;                    /* the ZAP handler admitting the allow-list's keys */
    const auth_key_t *peer;        /* the key of the request being handled (User-Id) */
    ps_metrics_t *pm;              /* live metrics ([ps] metrics_listen); NULL: off */
} server_t;

static const char *err_name(int code)
{
    switch (code) {
#define X(name, val, text) \
    case val: return #name;
        ERR_LIST(X)
#undef X
    }
    return "OTHER";
}

/* Write dirty rows, then (synced) the dense range, the senders' last seqs
 * and the progress. Rows first: a crash between the two leaves rows newer
 * than the seqs, which can only overcount lost_pushes, never hide a loss. */
static int flush_all(server_t *s, errbuf_t *eb)
{
    uint64_t rows = 0;
    double t = clock_now_s();
    int rc = emb_table_flush(s->table, &rows, eb);

    if (rc == 0)
        rc = shard_meta_save(&s->meta, s->store, &s->dense, eb);
    if (rc == 0)
        rc = store_seal(s->store, 0, eb);
    if (rc == 0) {
        s->c.flushes++;
        s->c.rows_flushed += rows;
        LOG_DEBUG("flushed %llu rows in %.3f s", (unsigned long long)rows, clock_now_s() - t);
        const char *why = emb_table_spill_error(s->table);
        if (why && !s->spill_warned) {
            LOG_WARN("%s", why);
            s->spill_warned = 1;
        }
    } else {
        errbuf_prefix(eb, rc,
                      "flush failed: what was applied since the last flush %.1f s ago (at most "
                      "one flush interval) is lost",
                      t - s->last_flush);
    }
    s->last_flush = clock_now_s();
    return rc;
}

/* ---- replies ---- */

static void free_reply(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Replies this large are handed to ZeroMQ without a copy. */
#define ZERO_COPY_MIN 8192

/* Send s->out to the peer `id`. Never blocks: a peer that is gone or does
 * not read its replies loses them (ZMQ_ROUTER_MANDATORY is off). */
static void send_reply(server_t *s, zmq_msg_t *id)
{
    zmq_msg_t idc, body;
    size_t len = s->out.len;
    unsigned char *data;

    zmq_msg_init(&idc);
    zmq_msg_copy(&idc, id);
    if (zmq_msg_send(&idc, s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&idc);
        s->c.replies_dropped++;
        return;
    }
    if (len >= ZERO_COPY_MIN && (data = codec_buf_take(&s->out)) != NULL) {
        if (zmq_msg_init_data(&body, data, len, free_reply, NULL) != 0) {
            free(data);
            s->c.replies_dropped++;
            return;
        }
        if (zmq_msg_send(&body, s->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&body);
            s->c.replies_dropped++;
            LOG_DEBUG("reply dropped: %s", zmq_strerror(errno));
            return;
        }
    } else if (zmq_send(s->sock, s->out.data, len, ZMQ_DONTWAIT) < 0) {
        s->c.replies_dropped++;
        LOG_DEBUG("reply dropped: %s", zmq_strerror(errno));
        return;
    }
    s->c.bytes_out += len;
}

/* A warning about peer input, at most one per second; the others are
 * counted and their number is told with the next one. */
static void warn_limited(server_t *s, const char *what, const char *msg)
{
    double t = clock_now_s();

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
    int kind = code <= 0 && code > -(ERR_KINDS - 1) ? -code : ERR_KINDS - 1;

    s->c.errors++;
    s->by_err[kind]++;
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

/* The keys of one request entry as an aligned array: the message's own
 * bytes when they are aligned, else a copy in s->keys. NULL when out of
 * memory. (Rows are read and written in place: the table takes unaligned
 * row buffers.) */
static const uint64_t *entry_keys(server_t *s, const msg_slot_t *in, errbuf_t *eb)
{
    if ((uintptr_t)in->keys % _Alignof(uint64_t) == 0)
        return (const uint64_t *)in->keys;
    if (grow_array((void **)&s->keys, &s->keys_cap, (size_t)in->nkeys + 1, sizeof(uint64_t)) != 0) {
        errbuf_set(eb, ERR_NOMEM, "out of memory for %u keys", in->nkeys);
        return NULL;
    }
    memcpy(s->keys, in->keys, (size_t)in->nkeys * sizeof(uint64_t));
    return s->keys;
}

/* ---- handlers: return 0 (reply sent) or an error to report ---- */

/* Admission and expiry are this shard's to apply: a worker configured
 * otherwise still trains correctly, so the difference is counted and
 * warned about (rate-limited), not refused. */
static void hello_policy_diff(server_t *s, const msg_hello_t *peer)
{
    char diff[256], msg[320];

    if (!codec_hello_policy_diff(&s->hello, peer, diff, sizeof(diff)))
        return;
    s->c.hello_policy_diffs++;
    snprintf(msg, sizeof(msg), "%s ('here' is this shard, whose values hold)", diff);
    warn_limited(s, "handshake: admission or expiry differ", msg);
}

static int on_hello(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    msg_t r;
    char me[64 + CONF_STR_MAX], them[32];

    snprintf(me, sizeof(me), "shard %u at %s", s->hello.shard, s->pc->listen.s);
    if (m->hdr.sender == MSG_SENDER_TOOL)
        snprintf(them, sizeof(them), "the tool");
    else
        snprintf(them, sizeof(them), "worker %u", (unsigned)m->hdr.sender);
    int rc = codec_hello_check(&s->hello, &m->u.hello, me, them, eb);

    if (rc != 0)
        return errbuf_prefix(eb, rc, "handshake refused"); /* logged rate-limited */
    hello_policy_diff(s, &m->u.hello);
    msg_init(&r, MSG_HELLO_OK, m->hdr.req_id);
    r.u.hello = s->hello;
    rc = codec_encode(&s->out, &r, eb);
    if (rc == 0)
        send_reply(s, id);
    return rc;
}

/* wire_fp16: pull an entry's rows as float32 into scratch, send binary16. */
static int pull_half(server_t *s, const msg_slot_t *in, const uint64_t *keys, void *blob, int mode,
                     errbuf_t *eb)
{
    size_t n = (size_t)in->nkeys * (size_t)s->ms.slot[in->slot].dim;
    int rc;

    if (grow_array((void **)&s->wide, &s->wide_cap, n + 1, sizeof(float)) != 0)
        return errbuf_set(eb, ERR_NOMEM, "out of memory for %zu floats", n);
    rc = emb_table_pull(s->table, (int)in->slot, keys, in->nkeys, s->wide, mode, eb);
    if (rc == 0)
        half_encode_fp16(blob, s->wide, n);
    return rc;
}

/* wire_fp16: a copy of push m (in s->wmsg) with its bfloat16 gradients
 * widened to float32 (in s->wide); m itself when it has float32 rows. */
static const msg_t *widen_push(server_t *s, const msg_t *m, errbuf_t *eb)
{
    const msg_rows_t *q = &m->u.rows;
    size_t n = 0, at = 0;

    if (!(q->flags & MSG_F_HALF))
        return m;
    for (uint32_t e = 0; e < q->nslots; e++)
        n += (size_t)q->slot[e].nkeys * q->slot[e].dim;
    if (grow_array((void **)&s->wide, &s->wide_cap, n + 1, sizeof(float)) != 0) {
        errbuf_set(eb, ERR_NOMEM, "out of memory for %zu floats", n);
        return NULL;
    }
    s->wmsg.hdr = m->hdr;
    s->wmsg.u.rows = *q;
    s->wmsg.u.rows.flags &= ~MSG_F_HALF;
    for (uint32_t e = 0; e < q->nslots; e++) {
        size_t k = (size_t)q->slot[e].nkeys * q->slot[e].dim;
        half_decode_bf16(s->wide + at, q->slot[e].rows, k);
        s->wmsg.u.rows.slot[e].rows = s->wide + at;
        at += k;
    }
    return &s->wmsg;
}

static int on_pull(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    const msg_rows_t *q = &m->u.rows;
    int mode = (q->flags & MSG_F_READONLY) ? EMB_PULL_READONLY : EMB_PULL_CREATE;
    msg_t r;
    int rc;

    /* the reply's row blobs are reserved by the encode and filled below */
    msg_init(&r, MSG_PULL_OK, m->hdr.req_id);
    r.u.rows.flags = q->flags & MSG_F_HALF;
    r.u.rows.nslots = q->nslots;
    for (uint32_t e = 0; e < q->nslots; e++) {
        msg_slot_t *o = &r.u.rows.slot[e];
        memset(o, 0, sizeof(*o));
        o->slot = q->slot[e].slot;
        o->nkeys = q->slot[e].nkeys;
        o->dim = (uint32_t)s->ms.slot[o->slot].dim;
    }
    rc = codec_encode(&s->out, &r, eb);
    for (uint32_t e = 0; e < q->nslots && rc == 0; e++) {
        const msg_slot_t *in = &q->slot[e];
        const uint64_t *keys = entry_keys(s, in, eb);
        if (keys && (q->flags & MSG_F_HALF))
            rc = pull_half(s, in, keys, codec_buf_blob(&s->out, e), mode, eb);
        else
            rc = keys ? emb_table_pull(s->table, (int)in->slot, keys, in->nkeys,
                                       codec_buf_blob(&s->out, e), mode, eb)
                      : ERR_NOMEM;
        if (rc == 0)
            s->c.pull_keys += in->nkeys;
    }
    if (rc == 0)
        send_reply(s, id);
    return rc;
}

/*
 * 1 if the push must be skipped as a duplicate. The first push of each
 * sender since this start is compared with the last seq the store held
 * (0 for a sender it never recorded): a gap means pushes this shard
 * applied and acknowledged before a crash and never flushed.
 */
static int push_seen(server_t *s, const msg_t *m, shard_sender_t *snd)
{
    if (m->hdr.seq <= snd->last_seq) {
        s->c.duplicate_pushes++;
        return 1;
    }
    if (!snd->checked && m->hdr.seq > snd->last_seq + 1) {
        uint64_t lost = m->hdr.seq - 1 - snd->last_seq;
        char msg[256];
        s->c.lost_pushes += lost;
        snprintf(msg, sizeof(msg),
                 "sender %u: %llu push(es) acknowledged before the last stop were not flushed "
                 "and are lost (seq %llu after %llu)",
                 snd->id, (unsigned long long)lost, (unsigned long long)m->hdr.seq,
                 (unsigned long long)snd->last_seq);
        warn_limited(s, "lost pushes", msg);
    }
    snd->checked = 1;
    return 0;
}

/* The sender's record, admitted into the bounded table (shard_meta.h). */
static int push_sender(server_t *s, const msg_t *m, shard_sender_t **snd, errbuf_t *eb)
{
    return shard_meta_sender_admit(&s->meta, m->hdr.sender, clock_unix_s(), snd, eb);
}

/*
 * 1 if the push carries the position of a batch part this shard applied
 * already (a restarted worker replaying from the minimum position of all
 * shards): it is answered as a duplicate, counted, and its seq taken.
 * 0 to apply it, or an error.
 */
static int batch_seen(server_t *s, const msg_t *m, shard_sender_t *snd, const msg_pos_t *pos,
                      errbuf_t *eb)
{
    int rc = pos->has ? shard_meta_batch_check(&s->meta, m->hdr.sender, pos) : 0;

    if (rc == ERR_BUSY)
        return errbuf_set(eb, rc,
                          "shard %lld: %zu worker positions recorded: raise [ps] "
                          "max_senders",
                          (long long)s->pc->shard, s->meta.nprog);
    if (rc < 0)
        return errbuf_set(eb, rc, "out of memory for the position of sender %u", m->hdr.sender);
    if (rc == 1) {
        s->c.replayed_pushes++;
        snd->last_seq = m->hdr.seq;
    }
    return rc;
}

/* ERR_REJECTED naming the first NaN or infinity of a push's rows (gradients,
 * values or optimizer state), checked before any of it is applied. */
static int check_finite_rows(server_t *s, const msg_t *m, errbuf_t *eb)
{
    const msg_rows_t *q = &m->u.rows;

    for (uint32_t e = 0; e < q->nslots; e++) {
        const msg_slot_t *in = &q->slot[e];
        size_t n = (size_t)in->nkeys * in->dim;
        if (!in->rows || finite_all(in->rows, n))
            continue;
        size_t i = finite_first_bad(in->rows, n);
        s->c.nonfinite_pushes++;
        return errbuf_set(eb, ERR_REJECTED,
                          "%s from sender %u: slot %u, row %zu, float %zu is not finite "
                          "(NaN or infinity); nothing of the request was applied",
                          (q->flags & MSG_F_ASSIGN) ? "assignment" : "push", m->hdr.sender,
                          in->slot, i / in->dim, i % in->dim);
    }
    return 0;
}

static int on_push(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    const msg_rows_t *q;
    shard_sender_t *snd;
    int rc;

    if ((m = widen_push(s, m, eb)) == NULL)
        return ERR_NOMEM;
    q = &m->u.rows;
    rc = check_finite_rows(s, m, eb);
    if (rc != 0)
        return rc;
    if ((rc = push_sender(s, m, &snd, eb)) != 0)
        return rc;
    if (push_seen(s, m, snd) || (rc = batch_seen(s, m, snd, &q->pos, eb)) == 1)
        return reply_ack(s, id, m->hdr.req_id, MSG_F_DUPLICATE, NULL, 0, eb);
    if (rc != 0)
        return rc;
    for (uint32_t e = 0; e < q->nslots && rc == 0; e++) {
        const msg_slot_t *in = &q->slot[e];
        const uint64_t *keys = entry_keys(s, in, eb);
        if (!keys) {
            rc = ERR_NOMEM;
            break;
        }
        if (q->flags & MSG_F_ASSIGN)
            rc = emb_table_assign(s->table, (int)in->slot, keys, in->nkeys, in->rows,
                                  (q->flags & MSG_F_STATE) != 0, eb);
        else
            rc = emb_table_push(s->table, (int)in->slot, keys, in->nkeys, in->rows, eb);
        s->c.push_keys += in->nkeys;
    }
    if (rc != 0)
        return rc;
    snd->last_seq = m->hdr.seq;
    if (q->pos.has)
        shard_meta_batch_done(&s->meta, m->hdr.sender, &q->pos);
    s->c.pushes++;
    return reply_ack(s, id, m->hdr.req_id, 0, NULL, 0, eb);
}

static int on_pull_dense(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    msg_t r;
    int rc = dense_shard_check_range(&s->dense, m->u.dense.offset, m->u.dense.count, eb);

    if (rc != 0)
        return rc;
    msg_init(&r, MSG_PULL_DENSE_OK, m->hdr.req_id);
    r.u.dense.offset = s->dense.offset;
    r.u.dense.count = s->dense.count;
    r.u.dense.values = s->dense.w;
    if (m->u.dense.flags & MSG_F_HALF) { /* wire_fp16: binary16 values, in the scratch */
        if (grow_array((void **)&s->wide, &s->wide_cap, s->dense.count / 2 + 1, sizeof(float)) != 0)
            return errbuf_set(eb, ERR_NOMEM, "out of memory for %zu dense values",
                              (size_t)s->dense.count);
        half_encode_fp16(s->wide, s->dense.w, s->dense.count);
        r.u.dense.values = s->wide;
        r.u.dense.flags = MSG_F_HALF;
    }
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
    msg_dense_t wd;
    shard_sender_t *snd;
    int rc = dense_shard_check_range(&s->dense, d->offset, d->count, eb);

    if (rc != 0)
        return rc;
    if (d->flags & MSG_F_HALF) { /* wire_fp16: bfloat16 gradients, widened in the scratch */
        if (grow_array((void **)&s->wide, &s->wide_cap, d->count + 1, sizeof(float)) != 0)
            return errbuf_set(eb, ERR_NOMEM, "out of memory for %zu dense values",
                              (size_t)d->count);
        half_decode_bf16(s->wide, d->values, d->count);
        wd = *d;
        wd.values = s->wide;
        wd.flags &= ~MSG_F_HALF;
        d = &wd;
    }
    if (d->values && !finite_all(d->values, d->count)) {
        s->c.nonfinite_pushes++;
        return errbuf_set(eb, ERR_REJECTED,
                          "dense %s from sender %u: float %llu is not finite (NaN or infinity); "
                          "nothing of the request was applied",
                          (d->flags & MSG_F_ASSIGN) ? "assignment" : "push", m->hdr.sender,
                          (unsigned long long)(d->offset + finite_first_bad(d->values, d->count)));
    }
    if ((rc = push_sender(s, m, &snd, eb)) != 0)
        return rc;
    if (push_seen(s, m, snd) || (rc = batch_seen(s, m, snd, &d->pos, eb)) == 1)
        return reply_ack(s, id, m->hdr.req_id, MSG_F_DUPLICATE, NULL, 0, eb);
    if (rc != 0)
        return rc;
    int first_init = (d->flags & MSG_F_ASSIGN) && !s->dense.initialized;
    if (d->flags & MSG_F_ASSIGN) {
        if (first_init)
            LOG_INFO("dense range initialized by sender %u", m->hdr.sender);
        dense_shard_assign(&s->dense, d->values);
    } else {
        dense_shard_apply(&s->dense, d->values);
    }
    snd->last_seq = m->hdr.seq;
    if (d->pos.has)
        shard_meta_batch_done(&s->meta, m->hdr.sender, &d->pos);
    s->c.pushes++;
    s->c.dense_pushes++;
    /* The initial weights exist nowhere else once workers train on them
     * (they initialize only at start-up): durable before the ACK, so a
     * crash before the first timed flush cannot bring the range back
     * uninitialized under running workers. */
    if (first_init && (rc = flush_all(s, eb)) != 0)
        return rc;
    return reply_ack(s, id, m->hdr.req_id, 0, NULL, 0, eb);
}

static int on_progress(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    const msg_progress_t *p;
    msg_t r;
    int rc;

    if (m->hdr.type == MSG_PROGRESS_SET) {
        rc = shard_meta_progress_set(&s->meta, &m->u.progress);
        if (rc != 0)
            return errbuf_set(eb, rc, "shard %lld: cannot record the position of rank %u: %s",
                              (long long)s->pc->shard, m->u.progress.rank,
                              rc == ERR_BUSY ? "table full, raise [ps] max_senders"
                                             : "out of memory");
        return reply_ack(s, id, m->hdr.req_id, 0, NULL, 0, eb);
    }
    p = shard_meta_progress_get(&s->meta, m->u.progress.rank);
    msg_init(&r, MSG_PROGRESS_OK, m->hdr.req_id);
    if (p)
        r.u.progress = *p;
    r.u.progress.rank = m->u.progress.rank;
    r.u.progress.found = p != NULL;
    rc = codec_encode(&s->out, &r, eb);
    if (rc == 0)
        send_reply(s, id);
    return rc;
}

/* ---- STATS ---- */

typedef struct stats_req {
    const char *pfx; /* name prefix (not NUL-terminated) */
    size_t pl;       /* bytes */
    size_t n;        /* entries in s->st */
    int nomem;
} stats_req_t;

static void stat_add(server_t *s, stats_req_t *q, const char *name, uint64_t value)
{
    size_t nl = strlen(name);

    if (nl < q->pl || (q->pl && memcmp(name, q->pfx, q->pl) != 0))
        return;
    if (grow_array((void **)&s->st, &s->st_cap, q->n + 1, sizeof(*s->st)) != 0) {
        q->nomem = 1;
        return;
    }
    snprintf(s->st[q->n].name, sizeof(s->st[q->n].name), "%s", name);
    s->st[q->n].value = value;
    q->n++;
}

#define STATS_MAX_SENDERS 256 /* seq_<id> entries in one reply, at most */

/*
 * The sender table's counters and the senders' last seqs. A reply lists
 * at most STATS_MAX_SENDERS seq_<id> entries (in order of first push, so
 * the workers that came first), keeping STATS small with any number of
 * senders; asked for exactly "seq_<id>", the reply has that sender's
 * entry whatever its place.
 */
static void stats_senders(server_t *s, stats_req_t *q)
{
    const shard_meta_t *mt = &s->meta;
    char nm[32], want[32];
    size_t listed = 0;

    stat_add(s, q, "senders", mt->nsenders);
    stat_add(s, q, "senders_max", mt->max_senders);
    stat_add(s, q, "senders_expired", mt->senders_expired);
    stat_add(s, q, "senders_refused", mt->senders_refused);
    snprintf(want, sizeof(want), "%.*s", (int)(q->pl < sizeof(want) - 1 ? q->pl : 0), q->pfx);
    for (size_t i = 0; i < mt->nsenders; i++) {
        snprintf(nm, sizeof(nm), "seq_%u", mt->senders[i].id);
        if (want[0] && strcmp(nm, want) == 0) {
            stat_add(s, q, nm, mt->senders[i].last_seq);
            return;
        }
        if (listed < STATS_MAX_SENDERS && !(want[0] && strncmp(nm, want, strlen(want)) != 0)) {
            stat_add(s, q, nm, mt->senders[i].last_seq);
            listed++;
        }
    }
}

/* Every counter whose name starts with qp's prefix into s->st. */
static void collect_stats(server_t *s, stats_req_t *qp)
{
    stats_req_t q = *qp;
    emb_table_stats_t ts;
    char nm[96];

    emb_table_stats(s->table, &ts);
#define X(name, desc) stat_add(s, &q, #name, s->c.name);
    SERVER_COUNTERS(X)
#undef X
    stat_add(s, &q, "shard", (uint64_t)s->pc->shard);
    stat_add(s, &q, "shards", (uint64_t)s->pc->shards);
    stat_add(s, &q, "uptime_s", (uint64_t)(clock_now_s() - s->t0));
    stat_add(s, &q, "day", (uint64_t)s->meta.day);
    stat_add(s, &q, "dense_initialized", (uint64_t)s->dense.initialized);
    stat_add(s, &q, "dense_step", (uint64_t)s->dense.step);
    stat_add(s, &q, "dense_floats", s->dense.count);
    stat_add(s, &q, "rows_resident", ts.resident_rows);
    stat_add(s, &q, "bytes_resident", ts.resident_bytes);
    stat_add(s, &q, "bytes_payload", ts.payload_bytes);
    stat_add(s, &q, "rows_dirty", ts.dirty_rows);
    stat_add(s, &q, "rows_created", ts.created);
    stat_add(s, &q, "rows_loaded", ts.loaded);
    stat_add(s, &q, "rows_spill_loaded", ts.spill_loaded);
    stat_add(s, &q, "rows_spilled", ts.spill_rows);
    stat_add(s, &q, "bytes_spill_index", ts.spill_mem_bytes);
    stat_add(s, &q, "spill_refused", ts.spill_refused);
    stat_add(s, &q, "rows_evicted", ts.evicted);
    stat_add(s, &q, "rows_evicted_dirty", ts.evicted_dirty);
    stat_add(s, &q, "rows_expired", ts.expired);
    stat_add(s, &q, "rows_total", ts.rows_total);
    stat_add(s, &q, "rows_refused", ts.create_refused);
    stat_add(s, &q, "admit_pending", ts.admit_pending);
    stat_add(s, &q, "admit_dropped", ts.admit_dropped);
    stat_add(s, &q, "curve", s->auth != NULL);
    stat_add(s, &q, "zap_admitted", zap_admitted(s->zap));
    stat_add(s, &q, "zap_refused", zap_refused(s->zap));
    for (int sl = 0; sl < s->ms.nslots; sl++) {
        snprintf(nm, sizeof(nm), "rows_resident_%s", s->ms.slot[sl].name);
        stat_add(s, &q, nm, ts.slot_rows[sl]);
    }
    stats_senders(s, &q);
    for (int t = 1; t < MSG_TYPE_END; t++)
        if (s->by_type[t]) {
            snprintf(nm, sizeof(nm), "requests_%s", msg_type_name(t));
            stat_add(s, &q, nm, s->by_type[t]);
        }
    for (int k = 1; k < ERR_KINDS; k++)
        if (s->by_err[k]) {
            snprintf(nm, sizeof(nm), "errors_%s", k < ERR_KINDS - 1 ? err_name(-k) : "OTHER");
            stat_add(s, &q, nm, s->by_err[k]);
        }
    *qp = q;
}

static int on_stats(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    stats_req_t q = {m->u.cmd.text.ptr, m->u.cmd.text.len, 0, 0};
    msg_t r;
    int rc;

    collect_stats(s, &q);
    if (q.nomem)
        return errbuf_set(eb, ERR_NOMEM, "out of memory for the counters");
    /* the names are final only now (s->st may have moved while growing) */
    if (q.n > 0 && grow_array((void **)&s->kv, &s->kv_cap, q.n, sizeof(*s->kv)) != 0)
        return errbuf_set(eb, ERR_NOMEM, "out of memory for the counters");
    for (size_t i = 0; i < q.n; i++)
        s->kv[i] = (msg_kv_t){
            {s->st[i].name, (uint32_t)strlen(s->st[i].name)}, 0, s->st[i].value, {NULL, 0}};
    msg_init(&r, MSG_STATS_OK, m->hdr.req_id);
    r.u.kv.n = (uint32_t)q.n;
    r.u.kv.kv = s->kv;
    rc = codec_encode(&s->out, &r, eb);
    if (rc == 0)
        send_reply(s, id);
    return rc;
}

/* Live metrics: the same counters as STATS, into the snapshot the metrics
 * HTTP thread serves (ps_metrics.h). */
static void publish_metrics(server_t *s, double now)
{
    stats_req_t q = {"", 0, 0, 0};

    collect_stats(s, &q);
    ps_metrics_begin(s->pm);
    for (size_t i = 0; i < q.n; i++)
        ps_metrics_put(s->pm, s->st[i].name, s->st[i].value);
    ps_metrics_end(s->pm, now);
}

/* ---- control ---- */

/* CHECKPOINT: text is a name, never a path; the store goes to
 * ROOT/NAME/shard-I (ckpt_dir.h) and the ACK's "path" says where ROOT/NAME
 * is, so the client can write META there once every shard answered. */
static int on_checkpoint(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    ckpt_dir_t cd;
    msg_kv_t kv;
    int rc = ckpt_dir_begin(&cd, s->ckpt_root, m->u.cmd.text.ptr, m->u.cmd.text.len,
                            (int)s->pc->shard, eb);

    if (rc != 0)
        return rc;
    rc = flush_all(s, eb);
    if (rc == 0)
        rc = store_checkpoint(s->store, cd.store, eb);
    if (rc == 0)
        rc = ckpt_dir_commit(&cd, eb);
    if (rc != 0) {
        ckpt_dir_abort(&cd);
        return rc;
    }
    s->c.checkpoints++;
    LOG_INFO("checkpoint written to %s", cd.final);
    kv = (msg_kv_t){{"path", 4}, 1, 0, {cd.dir, (uint32_t)strlen(cd.dir)}};
    return reply_ack(s, id, m->hdr.req_id, 0, &kv, 1, eb);
}

/* ROWS_GET: each key's row (with optimizer state if asked) and why it has
 * none. */
static int on_rows_get(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    const msg_rows_t *q = &m->u.rows;
    int with_state = (q->flags & MSG_F_STATE) != 0;
    size_t total_f = 0, total_k = 0, fo = 0, ko = 0;
    float *vals = NULL, *row = NULL;
    msg_row_meta_t *metas = NULL;
    msg_t r;
    int rc = 0;

    for (uint32_t e = 0; e < q->nslots; e++) {
        total_k += q->slot[e].nkeys;
        total_f += (size_t)q->slot[e].nkeys * emb_table_row_floats(s->table, (int)q->slot[e].slot);
    }
    vals = malloc((total_f + 1) * sizeof(float));
    metas = malloc((total_k + 1) * sizeof(*metas));
    row = malloc(((size_t)MSG_MAX_DIM + 1) * sizeof(float));
    if (!vals || !metas || !row) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    msg_init(&r, MSG_ROWS_OK, m->hdr.req_id);
    r.u.rows.flags = q->flags & MSG_F_STATE;
    r.u.rows.nslots = q->nslots;
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
            emb_row_meta_t rm = {0, -1, -1};
            int status = EMB_ROW_NEVER, exp = -1, has;
            uint32_t seen = 0;
            memset(row, 0, full * sizeof(float));
            rc = emb_table_inspect(s->table, sl, msg_key_get(in->keys, j), row, &rm, &status, &seen,
                                   &exp, eb);
            memcpy(vals + fo, row, width * sizeof(float));
            fo += width;
            has = status == EMB_ROW_RESIDENT || status == EMB_ROW_STORED;
            metas[ko++] =
                (msg_row_meta_t){(uint32_t)status,       seen, rm.updates, has ? rm.first_day : -1,
                                 has ? rm.last_day : -1, exp,  0};
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
    static const char nm[] = "expired";
    uint64_t deleted = 0;
    msg_kv_t kv;
    int rc;

    if (m->u.cmd.day < 0)
        return errbuf_set(eb, ERR_INVAL, "BEGIN_DAY needs a day");
    rc = emb_table_set_day(s->table, m->u.cmd.day);
    if (rc != 0)
        return errbuf_set(eb, rc, "BEGIN_DAY %d: days are 0..65535", (int)m->u.cmd.day);
    shard_meta_begin_day(&s->meta, m->u.cmd.day);
    s->hello.day = s->meta.day;
    if (m->u.cmd.flags & MSG_F_EXPIRE)
        rc = emb_table_expire(s->table, s->meta.day, &deleted, eb);
    /* the new day and the cleared progress survive a crash from here on */
    if (rc == 0)
        rc = flush_all(s, eb);
    if (rc != 0)
        return rc;
    LOG_INFO("day %d begins%s: %llu rows expired", s->meta.day,
             (m->u.cmd.flags & MSG_F_EXPIRE) ? " with expiry" : "", (unsigned long long)deleted);
    kv = (msg_kv_t){{nm, sizeof(nm) - 1}, 0, deleted, {NULL, 0}};
    return reply_ack(s, id, m->hdr.req_id, 0, &kv, 1, eb);
}

/* Answer one decoded request that fits the layout. */
static int dispatch(server_t *s, zmq_msg_t *id, const msg_t *m, errbuf_t *eb)
{
    int rc;

    emb_table_set_create_budget(s->table, s->pc->max_new_rows > 0 ? (uint64_t)s->pc->max_new_rows
                                                                  : UINT64_MAX);
    switch (m->hdr.type) {
    case MSG_HELLO: return on_hello(s, id, m, eb);
    case MSG_PULL: return on_pull(s, id, m, eb);
    case MSG_PUSH: return on_push(s, id, m, eb);
    case MSG_PULL_DENSE: return on_pull_dense(s, id, m, eb);
    case MSG_PUSH_DENSE: return on_push_dense(s, id, m, eb);
    case MSG_PROGRESS_SET:
    case MSG_PROGRESS_GET: return on_progress(s, id, m, eb);
    case MSG_STATS: return on_stats(s, id, m, eb);
    case MSG_FLUSH:
        rc = flush_all(s, eb);
        return rc == 0 ? reply_ack(s, id, m->hdr.req_id, 0, NULL, 0, eb) : rc;
    case MSG_CHECKPOINT: return on_checkpoint(s, id, m, eb);
    case MSG_BEGIN_DAY: return on_begin_day(s, id, m, eb);
    case MSG_ROWS_GET: return on_rows_get(s, id, m, eb);
    case MSG_SHUTDOWN:
        rc = flush_all(s, eb);
        if (rc != 0)
            return rc;
        s->shutdown = 1;
        return reply_ack(s, id, m->hdr.req_id, 0, NULL, 0, eb);
    case MSG_EXPORT:
        return errbuf_set(eb, ERR_PROTO,
                          "EXPORT is not supported by shards yet: take a CHECKPOINT and run "
                          "funnel-emb export on it");
    default:
        return errbuf_set(eb, ERR_PROTO, "%s is not supported by this shard yet",
                          msg_type_name(m->hdr.type));
    }
}

/* May the peer's key make request m? Refusals are counted (denied) and
 * answered with ERR_DENIED by the caller; without keys everything is. */
static int authorize(server_t *s, const msg_t *m, errbuf_t *eb)
{
    int rc;

    if (!s->auth)
        return 0;
    rc = auth_allow(s->peer, m, s->dense.initialized, eb);
    if (rc != 0)
        s->c.denied++;
    return rc;
}

/* Decode and answer one request. */
static void handle(server_t *s, zmq_msg_t *id, const void *data, size_t len)
{
    msg_t m;
    errbuf_t eb = {{0}};
    double t0 = s->pm ? clock_now_s() : 0;
    int rc;

    s->c.requests++;
    s->c.bytes_in += len;
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
    rc = authorize(s, &m, &eb);
    if (rc == 0)
        rc = codec_check_layout(&m, &s->hello, &eb);
    if (rc == 0)
        rc = dispatch(s, id, &m, &eb);
    if (rc != 0) {
        warn_limited(s, msg_type_name(m.hdr.type), eb.msg);
        reply_error(s, id, m.hdr.req_id, rc, eb.msg);
    }
    if (s->pm)
        ps_metrics_observe(s->pm, m.hdr.type, clock_now_s() - t0);
}

/* Receive one message: [identity][payload]. Anything with another number
 * of frames is dropped and counted (there is no payload to answer).
 * Returns 0 when nothing was queued. */
static int serve_one(server_t *s)
{
    zmq_msg_t id, body;
    int more = 0, got = 1;
    size_t ml = sizeof(more);

    zmq_msg_init(&id);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&id, s->sock, ZMQ_DONTWAIT) < 0) {
        got = 0;
        goto out;
    }
    zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &ml);
    if (!more || zmq_msg_recv(&body, s->sock, ZMQ_DONTWAIT) < 0) {
        s->c.requests++;
        s->c.bad_messages++;
        s->c.bad_frames++;
        warn_limited(s, "bad message", "no payload frame; dropped");
        goto out;
    }
    zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &ml);
    if (more) {
        s->c.requests++;
        s->c.bad_messages++;
        s->c.bad_frames++;
        while (more) { /* a multipart message arrives whole: this never waits */
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            zmq_msg_recv(&extra, s->sock, ZMQ_DONTWAIT);
            zmq_msg_close(&extra);
            if (zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &ml) != 0)
                more = 0;
        }
        warn_limited(s, "bad message", "more than one payload frame; dropped");
        goto out;
    }
    if (s->auth)
        s->peer = auth_key_of(s->auth, zmq_msg_gets(&body, "User-Id"));
    handle(s, &id, zmq_msg_data(&body), zmq_msg_size(&body));
out:
    zmq_msg_close(&body);
    zmq_msg_close(&id);
    return got;
}

/* The dense range: model_spec_dense_len() is the layout the workers'
 * models allocate, so shards and workers agree by construction. */
static int open_dense(server_t *s, errbuf_t *eb)
{
    return dense_shard_init(&s->dense, &s->ms.dense_opt, model_spec_dense_len(&s->ms),
                            (uint32_t)s->pc->shards, (uint32_t)s->pc->shard, eb);
}

/* With [ps] curve_secret_key and curve_allow: load both (the listen rule
 * is checked either way: auth.h). */
static int load_keys(server_t *s, errbuf_t *eb)
{
    const ps_conf_t *pc = s->pc;
    int keyed = pc->curve_secret_key.s[0] != 0, rc;

    if (keyed != (pc->curve_allow.s[0] != 0))
        return errbuf_set(eb, ERR_CONFIG,
                          "[ps] curve_secret_key and curve_allow go together: %s is set, %s is "
                          "not (make keys with funnel-ps keygen --out DIR/NAME)",
                          keyed ? "curve_secret_key" : "curve_allow",
                          keyed ? "curve_allow" : "curve_secret_key");
    if (keyed && !curve_available())
        return errbuf_set(eb, ERR_CONFIG, "curve_secret_key is set but this libzmq has no CURVE");
    rc = auth_check_listen(pc->listen.s, keyed, (int)pc->insecure, eb);
    if (rc == 0 && keyed)
        rc = auth_load(&s->auth, pc->curve_allow.s, eb);
    return rc != 0 ? errbuf_prefix(eb, rc, "shard %lld", (long long)pc->shard) : 0;
}

/* The socket becomes a CURVE server whose handshakes the ZAP handler
 * decides (zap.h); the key pair is read here and not kept. */
static int secure_socket(server_t *s, errbuf_t *eb)
{
    curve_pair_t pair;
    int rc = curve_load_pair(s->pc->curve_secret_key.s, &pair, eb);

    if (rc == 0)
        rc = zap_start(&s->zap, s->ctx, s->auth, eb);
    if (rc == 0)
        rc = zap_curve_server(s->sock, &pair, eb);
    memset(&pair, 0, sizeof(pair));
    if (rc == 0)
        LOG_INFO("CURVE on: %zu keys allowed (%s), server key %s", s->auth->n, s->pc->curve_allow.s,
                 s->pc->curve_secret_key.s);
    return rc;
}

static int open_socket(server_t *s, errbuf_t *eb)
{
    int zero = 0, hwm = 100000;
    int64_t maxmsg = (int64_t)s->pc->max_msg_size;

    s->ctx = zmq_ctx_new();
    s->sock = s->ctx ? zmq_socket(s->ctx, ZMQ_ROUTER) : NULL;
    if (!s->sock)
        return errbuf_set(eb, ERR_NET, "cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
    /* refused before allocation; a peer sending more is disconnected */
    zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof(zero));
    /* a vanished peer's replies are dropped, never waited for */
    zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &zero, sizeof(zero));
    zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    if (s->auth) {
        int rc = secure_socket(s, eb);
        if (rc != 0)
            return rc;
    }
    int prc = endpoint_probe(s->pc->listen.s, NULL, eb); /* a live shard's ipc:// path */
    if (prc != 0)
        return errbuf_prefix(eb, prc, "shard %lld", (long long)s->pc->shard);
    if (zmq_bind(s->sock, s->pc->listen.s) != 0)
        return errbuf_set(eb, ERR_NET, "shard %lld: listen on %s: %s", (long long)s->pc->shard,
                          s->pc->listen.s, zmq_strerror(errno));
    return 0;
}

/* Everything before serving: layout, store, table, metadata, socket. */
static int server_open(server_t *s, errbuf_t *eb)
{
    const ps_conf_t *pc = s->pc;
    char name[CONF_STR_MAX + 64];
    int rc;

    codec_buf_init(&s->out, pc->max_msg_size);
    if (pc->shard >= pc->shards)
        return errbuf_set(eb, ERR_CONFIG, "--shard %lld must be below --shards %lld",
                          (long long)pc->shard, (long long)pc->shards);
    rc = load_keys(s, eb);
    if (rc != 0)
        return rc;
    rc = model_spec_from_conf(&s->ms, &pc->model, eb);
    if (rc == 0)
        rc = open_dense(s, eb);
    if (rc != 0)
        return rc;
    rc = dirs_make(pc->data.s, eb);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "shard %lld", (long long)pc->shard);
    rc = shard_meta_restore(pc, &s->ms, s->dense.total, eb);
    if (rc != 0)
        return rc;
    snprintf(name, sizeof(name), "shard %lld %s", (long long)pc->shard, pc->data.s);
    rc = emb_store_open(&s->store, pc->data.s, STORE_CREATE | (pc->mem_limit ? STORE_NO_MMAP : 0),
                        name, eb);
    if (rc == 0)
        rc = shard_layout_check(s->store, &s->ms, pc->data.s, eb);
    if (rc == 0 && (rc = shard_policy_check(s->store, &s->ms, pc->data.s, eb)) > 0)
        rc = 0; /* changed admission or expiry: warned, not refused */
    if (rc == 0)
        rc = emb_table_open(&s->table, s->store, &s->ms, pc->mem_limit, eb);
    if (rc == 0)
        rc = emb_table_set_max_rows(s->table, (uint64_t)pc->max_rows, eb);
    if (rc == 0 && pc->mem_limit && pc->spill == PS_SPILL_FILE)
        rc = emb_table_set_spill(s->table, pc->data.s, eb);
    if (rc == 0)
        rc = ckpt_dir_root(s->ckpt_root, sizeof(s->ckpt_root), pc->checkpoint_root.s, pc->data.s,
                           eb);
    if (rc == 0)
        rc = shard_meta_load(&s->meta, s->store, &s->dense, eb);
    if (rc != 0)
        return rc;
    emb_table_set_day(s->table, s->meta.day);
    codec_hello_from_spec(&s->hello, &s->ms, (uint32_t)pc->shard, (uint32_t)pc->shards,
                          s->dense.total, (int32_t)s->meta.day);
    s->dec = codec_dec_new(pc->max_msg_size);
    if (!s->dec)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    rc = open_socket(s, eb);
    if (rc == 0)
        rc = ps_metrics_open(&s->pm, pc, &s->ms, eb);
    return rc;
}

static void server_release(server_t *s)
{
    ps_metrics_close(&s->pm); /* its HTTP thread reads only its own snapshot */
    emb_table_destroy(&s->table);
    store_close(&s->store);
    if (s->sock) {
        /* after SHUTDOWN its acknowledgement may still sit in the queue:
         * give it up to 5 s to leave instead of dropping it (1 s was not
         * always enough for a CURVE reply on a machine loaded by two test
         * runs at once: `ctl shutdown` then failed though the shard
         * stopped cleanly) */
        int linger = s->shutdown ? 5000 : 0;
        zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(s->sock);
    }
    zap_stop(&s->zap); /* before the context ends: it owns a socket of it */
    auth_destroy(&s->auth);
    if (s->ctx)
        zmq_ctx_term(s->ctx);
    codec_dec_destroy(&s->dec);
    codec_buf_release(&s->out);
    dense_shard_release(&s->dense);
    free(s->kv);
    free(s->st);
    free(s->keys);
    free(s->wide);
    shard_meta_release(&s->meta);
}

int server_run(const ps_conf_t *pc, volatile sig_atomic_t *stop, errbuf_t *eb)
{
    server_t s;
    int rc;

    memset(&s, 0, sizeof(s));
    s.pc = pc;
    s.t0 = s.last_flush = clock_now_s();
    shard_meta_init(&s.meta, (long long)pc->shard, pc->data.s, (int)pc->day);
    shard_meta_set_limits(&s.meta, (size_t)pc->max_senders, (uint64_t)pc->sender_idle_s);
    rc = server_open(&s, eb);
    if (rc != 0)
        goto out;
    LOG_INFO("shard %lld of %lld listening on %s (data %s, %s dense floats [%llu, +%llu), "
             "%zu senders and %zu worker positions restored)",
             (long long)pc->shard, (long long)pc->shards, pc->listen.s, pc->data.s,
             s.dense.initialized ? "restored" : "uninitialized", (unsigned long long)s.dense.offset,
             (unsigned long long)s.dense.count, s.meta.nsenders, s.meta.nprog);

    while (!*stop && !s.shutdown) {
        zmq_pollitem_t item = {s.sock, 0, ZMQ_POLLIN, 0};
        double wait = pc->flush_interval - (clock_now_s() - s.last_flush);
        long ms = wait <= 0 ? 0 : wait > 0.1 ? 100 : (long)(wait * 1000);
        int n = zmq_poll(&item, 1, ms);
        if (n < 0 && errno != EINTR) {
            rc = errbuf_set(eb, ERR_NET, "poll: %s", zmq_strerror(errno));
            break;
        }
        /* the queued requests until none is left (no poll between them),
         * bounded so the flush and a signal are still noticed under load */
        for (int burst = 0; n > 0 && burst < 256 && !s.shutdown; burst++)
            if (!serve_one(&s))
                break;
        if (clock_now_s() - s.last_flush >= pc->flush_interval) {
            rc = flush_all(&s, eb);
            if (rc != 0)
                break;
        }
        if (ps_metrics_due(s.pm, clock_now_s()))
            publish_metrics(&s, clock_now_s());
    }
    if (s.warn_suppressed)
        LOG_WARN("%llu more warnings about bad requests were suppressed",
                 (unsigned long long)s.warn_suppressed);
    if (rc == 0 && !s.shutdown) {
        LOG_INFO("stopping: flushing to %s", pc->data.s);
        rc = flush_all(&s, eb);
    }
    if (rc == 0)
        LOG_INFO("stopped cleanly after %llu requests (%llu lost pushes counted since start)",
                 (unsigned long long)s.c.requests, (unsigned long long)s.c.lost_pushes);
out:
    server_release(&s);
    return rc;
}
