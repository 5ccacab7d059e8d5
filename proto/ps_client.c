/*
 * ps_client.c - requests to parameter-server shards over ZeroMQ DEALER
 * sockets, with reply matching, retries and deadlines. See ps_client.h.
 */
#include "proto/ps_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/log.h"
#include "proto/codec.h"

#define WARN_EVERY_S 10.0 /* s between "no reply" warnings about one shard */

typedef struct pending {
    uint64_t req_id;
    int type; /* MSG_* of the request: what its bytes are counted as */
    int is_push;
    int replied;          /* raw holds the reply */
    unsigned char *bytes; /* the encoded request, for retries */
    size_t len, cap;
    double first_sent; /* s */
    double sent_at;    /* s, last (re)send */
    int attempts;
    zmq_msg_t raw; /* the reply, when replied */
} pending_t;

typedef struct shard_conn {
    void *sock;
    void *mon; /* PAIR receiving the socket's handshake failures (CURVE only) */
    char endpoint[256];
    uint64_t next_seq; /* push sequence numbers, per shard */
    pending_t *pend;   /* outstanding requests */
    size_t npend, cap;
    int pushes;        /* unacknowledged pushes */
    double last_heard; /* s */
    double warned_at;  /* s; when "no reply" was last logged, 0: not since the last reply */
    codec_dec_t *dec;
    zmq_msg_t cur; /* bytes of the last reply handed out */
    int has_cur;
    int push_err; /* first error a push got back */
    errbuf_t push_eb;
} shard_conn_t;

struct ps_client {
    void *ctx;
    ps_client_opts_t o;
    int n;
    shard_conn_t *sh;
    codec_buf_t enc;
    codec_dec_t *scratch; /* decodes replies on arrival */
    uint64_t next_req;
    uint64_t duplicates;
    volatile sig_atomic_t *stop;
    ps_client_wire_t wire; /* bytes sent and received, by request type */
};

int ps_client_shards(const ps_client_t *c)
{
    return c->n;
}

const char *ps_client_endpoint(const ps_client_t *c, int shard)
{
    return c->sh[shard].endpoint;
}

void ps_client_set_stop(ps_client_t *c, volatile sig_atomic_t *stop)
{
    c->stop = stop;
}

void ps_client_set_seq(ps_client_t *c, int shard, uint64_t seq)
{
    c->sh[shard].next_seq = seq + 1;
}

uint64_t ps_client_duplicates(const ps_client_t *c)
{
    return c->duplicates;
}

int ps_client_opts_keys(ps_client_opts_t *o, const char *server_pub, const char *self_key,
                        errbuf_t *eb)
{
    curve_pair_t srv;
    int rc;

    o->curve_server[0] = '\0';
    memset(&o->curve_self, 0, sizeof(o->curve_self));
    if (!server_pub[0] && !self_key[0])
        return 0;
    if (!server_pub[0] || !self_key[0])
        return errbuf_set(eb, ERR_CONFIG,
                          "[cluster] curve_server_key (the shards' NAME.pub) and curve_secret_key "
                          "(this client's NAME.key) go together: %s is not set",
                          server_pub[0] ? "curve_secret_key" : "curve_server_key");
    rc = curve_load_public(server_pub, &srv, eb);
    if (rc == 0)
        rc = curve_load_pair(self_key, &o->curve_self, eb);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "CURVE keys");
    memcpy(o->curve_server, srv.pub, sizeof(o->curve_server));
    return 0;
}

#define HANDSHAKE_FAILED                                                     \
    (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | \
     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)

/* Watch shard i's socket for failed CURVE handshakes (a refused key
 * never gets a reply: without this the client would only time out). */
static int watch_handshakes(ps_client_t *c, int i)
{
    shard_conn_t *s = &c->sh[i];
    char ep[64];
    int zero = 0;

    snprintf(ep, sizeof(ep), "inproc://funnel-handshakes-%d", i);
    if (zmq_socket_monitor(s->sock, ep, HANDSHAKE_FAILED) != 0)
        return -1;
    s->mon = zmq_socket(c->ctx, ZMQ_PAIR);
    if (!s->mon)
        return -1;
    zmq_setsockopt(s->mon, ZMQ_LINGER, &zero, sizeof(zero));
    return zmq_connect(s->mon, ep);
}

/* ERR_DENIED if shard i refused a handshake since the last look, else 0. */
static int handshake_refused(ps_client_t *c, int i, errbuf_t *eb)
{
    shard_conn_t *s = &c->sh[i];
    int rc = 0;

    for (int round = 0; s->mon && round < 64; round++) {
        zmq_msg_t ev, addr;
        uint16_t event = 0;
        uint32_t value = 0;
        zmq_msg_init(&ev);
        zmq_msg_init(&addr);
        if (zmq_msg_recv(&ev, s->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            zmq_msg_close(&addr);
            break;
        }
        zmq_msg_recv(&addr, s->mon, ZMQ_DONTWAIT); /* frame 2: the endpoint */
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        if (rc != 0 || !(event & HANDSHAKE_FAILED))
            continue;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            rc = errbuf_set(eb, ERR_DENIED,
                            "shard %d (%s) refused this client's CURVE key (ZAP status %u): add "
                            "its public key (the .pub beside curve_secret_key) to the shard's "
                            "curve_allow",
                            i, s->endpoint, (unsigned)value);
        else
            rc = errbuf_set(eb, ERR_DENIED,
                            "shard %d (%s): CURVE handshake failed: does the shard run with "
                            "curve_secret_key, and is curve_server_key its .pub?",
                            i, s->endpoint);
    }
    return rc;
}

/* Make sock a CURVE client of the shards' key with the client's pair. */
static int curve_client(void *sock, const ps_client_opts_t *o)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, o->curve_server, CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, o->curve_self.pub, CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, o->curve_self.sec, CURVE_Z85_LEN) != 0)
        return -1;
    return 0;
}

int ps_client_open(ps_client_t **out, char *const *endpoints, int n, const ps_client_opts_t *o,
                   errbuf_t *eb)
{
    ps_client_t *c;
    int rc = 0;

    *out = NULL;
    if (n < 1 || n > PS_CLIENT_MAX_SHARDS)
        return errbuf_set(eb, ERR_INVAL, "need 1..%d shard endpoints, got %d", PS_CLIENT_MAX_SHARDS,
                          n);
    c = calloc(1, sizeof(*c));
    if (!c)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    c->o = *o;
    if (c->o.timeout_ms <= 0)
        c->o.timeout_ms = 5000;
    if (c->o.deadline_s <= 0)
        c->o.deadline_s = 60;
    if (c->o.max_inflight <= 0)
        c->o.max_inflight = 4;
    c->n = n;
    c->next_req = 1;
    codec_buf_init(&c->enc, c->o.max_msg);
    c->scratch = codec_dec_new(c->o.max_msg);
    c->sh = calloc((size_t)n, sizeof(*c->sh));
    c->ctx = zmq_ctx_new();
    if (!c->sh || !c->scratch || !c->ctx) {
        rc = errbuf_set(eb, ERR_NOMEM, "cannot set up the parameter-server client");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        shard_conn_t *s = &c->sh[i];
        int zero = 0, one = 1, hwm = 100000, ivl = 100, ivl_max = 1000;
        int64_t maxmsg = c->o.max_msg ? (int64_t)c->o.max_msg : (int64_t)CODEC_MAX_MSG_DEFAULT;

        snprintf(s->endpoint, sizeof(s->endpoint), "%s", endpoints[i]);
        s->next_seq = 1;
        s->dec = codec_dec_new(c->o.max_msg);
        s->sock = zmq_socket(c->ctx, ZMQ_DEALER);
        if (!s->dec || !s->sock) {
            rc = errbuf_set(eb, ERR_NOMEM, "shard %d (%s): cannot create socket", i, s->endpoint);
            goto fail;
        }
        zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_setsockopt(s->sock, ZMQ_IMMEDIATE, &one, sizeof(one));
        zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(s->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(s->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
        zmq_setsockopt(s->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
        if (c->o.curve_server[0] && curve_client(s->sock, &c->o) != 0) {
            rc = errbuf_set(eb, ERR_NET, "shard %d (%s): cannot set the CURVE keys: %s", i,
                            s->endpoint, zmq_strerror(errno));
            goto fail;
        }
        if (c->o.curve_server[0] && watch_handshakes(c, i) != 0) {
            rc = errbuf_set(eb, ERR_NET, "shard %d (%s): cannot watch the handshake: %s", i,
                            s->endpoint, zmq_strerror(errno));
            goto fail;
        }
        if (zmq_connect(s->sock, s->endpoint) != 0) {
            rc = errbuf_set(eb, ERR_NET, "shard %d: connect %s: %s", i, s->endpoint,
                            zmq_strerror(errno));
            goto fail;
        }
        s->last_heard = clock_now_s();
    }
    memset(c->o.curve_self.sec, 0, sizeof(c->o.curve_self.sec)); /* the sockets hold it */
    *out = c;
    return 0;
fail:
    ps_client_destroy(&c);
    return rc;
}

static void pending_free(pending_t *p)
{
    if (p->replied)
        zmq_msg_close(&p->raw);
    p->replied = 0;
}

void ps_client_destroy(ps_client_t **cp)
{
    ps_client_t *c = cp ? *cp : NULL;

    if (!c)
        return;
    for (int i = 0; c->sh && i < c->n; i++) {
        shard_conn_t *s = &c->sh[i];
        for (size_t j = 0; j < s->npend; j++)
            pending_free(&s->pend[j]);
        for (size_t j = 0; j < s->cap; j++)
            free(s->pend[j].bytes);
        free(s->pend);
        if (s->has_cur)
            zmq_msg_close(&s->cur);
        codec_dec_destroy(&s->dec);
        if (s->mon)
            zmq_close(s->mon);
        if (s->sock)
            zmq_close(s->sock);
    }
    free(c->sh);
    codec_dec_destroy(&c->scratch);
    codec_buf_release(&c->enc);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    memset(&c->o.curve_self, 0, sizeof(c->o.curve_self)); /* set if open failed */
    free(c);
    *cp = NULL;
}

static pending_t *find_pending(shard_conn_t *s, uint64_t req_id)
{
    for (size_t j = 0; j < s->npend; j++)
        if (s->pend[j].req_id == req_id)
            return &s->pend[j];
    return NULL;
}

/* Forget a pending request; keeps its byte buffer for reuse. The others
 * keep their order, which is the order they were sent in (retry_overdue
 * relies on it). */
static void drop_pending(shard_conn_t *s, pending_t *p)
{
    size_t j = (size_t)(p - s->pend);
    pending_t gone;

    pending_free(p);
    if (p->is_push)
        s->pushes--;
    gone = *p;
    memmove(&s->pend[j], &s->pend[j + 1], (s->npend - 1 - j) * sizeof(*p));
    s->pend[s->npend - 1] = gone;
    s->npend--;
}

static void transmit(ps_client_t *c, shard_conn_t *s, pending_t *p, int timeout_ms)
{
    p->sent_at = clock_now_s();
    p->attempts++;
    if (zmq_send(s->sock, p->bytes, p->len, ZMQ_DONTWAIT) >= 0) {
        c->wire.sent[p->type]++;
        c->wire.bytes_out[p->type] += p->len;
    } else {
        /* Not connected yet (or the queue is full): try again in about
         * 100 ms instead of a whole timeout. */
        if (errno != EAGAIN)
            LOG_DEBUG("send to %s: %s", s->endpoint, zmq_strerror(errno));
        p->sent_at -= (double)timeout_ms / 1000.0 - 0.1;
    }
}

/* Receive and file every reply that is ready on shard i, waiting at most
 * timeout_ms for the first. Returns 0 or an error. */
static int pump(ps_client_t *c, int i, long timeout_ms, errbuf_t *eb)
{
    shard_conn_t *s = &c->sh[i];
    zmq_pollitem_t item = {s->sock, 0, ZMQ_POLLIN, 0};
    int r = zmq_poll(&item, 1, timeout_ms);

    if (r < 0) {
        if (errno == EINTR)
            return 0;
        return errbuf_set(eb, ERR_NET, "shard %d (%s): poll: %s", i, s->endpoint,
                          zmq_strerror(errno));
    }
    while (r > 0) {
        zmq_msg_t raw;
        msg_t m;
        errbuf_t deb;

        zmq_msg_init(&raw);
        if (zmq_msg_recv(&raw, s->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&raw);
            break;
        }
        s->last_heard = clock_now_s();
        if (s->warned_at > 0) {
            LOG_INFO("shard %d (%s) answers again", i, s->endpoint);
            s->warned_at = 0;
        }
        int drc = codec_decode(c->scratch, &m, zmq_msg_data(&raw), zmq_msg_size(&raw), &deb);
        pending_t *p = find_pending(s, m.hdr.req_id);
        if (!p) { /* a late answer to a request retried and already answered */
            zmq_msg_close(&raw);
            continue;
        }
        c->wire.replies[p->type]++;
        c->wire.bytes_in[p->type] += zmq_msg_size(&raw);
        if (drc != 0) {
            zmq_msg_close(&raw);
            return errbuf_set(eb, drc, "shard %d (%s): bad reply: %s", i, s->endpoint, deb.msg);
        }
        if (p->is_push) {
            if (m.hdr.type == MSG_ERROR && !s->push_err) {
                s->push_err = m.u.error.code < 0 ? m.u.error.code : ERR_PROTO;
                errbuf_set(&s->push_eb, s->push_err, "shard %d (%s): push refused: %.*s", i,
                           s->endpoint, (int)m.u.error.text.len, m.u.error.text.ptr);
            } else if (m.hdr.type == MSG_ACK && (m.u.kv.flags & MSG_F_DUPLICATE)) {
                c->duplicates++;
            }
            zmq_msg_close(&raw);
            drop_pending(s, p);
        } else if (!p->replied) {
            p->raw = raw;
            p->replied = 1;
        } else {
            zmq_msg_close(&raw);
        }
        r = zmq_poll(&item, 1, 0);
    }
    return 0;
}

/*
 * Resend what is overdue; fail if the shard has been silent too long.
 *
 * Pushes must reach a shard in sequence order: it takes a push whose seq
 * is at or below the last one it applied for a retry, and drops it. After
 * a shard restarts, unacknowledged pushes fall due one by one, and one
 * resent late would arrive after a later push (resent or new) and be
 * dropped without ever being applied - an update lost and not counted as
 * lost. So when any push to a shard is overdue, every unacknowledged push
 * to it is resent, in the order they were first sent (pend keeps it).
 */
static int retry_overdue(ps_client_t *c, int i, errbuf_t *eb)
{
    shard_conn_t *s = &c->sh[i];
    double now = clock_now_s(), oldest = now;
    int push_due = 0;

    for (size_t j = 0; j < s->npend; j++)
        if (s->pend[j].is_push && (now - s->pend[j].sent_at) * 1000.0 >= c->o.timeout_ms)
            push_due = 1;
    for (size_t j = 0; j < s->npend; j++) {
        pending_t *p = &s->pend[j];
        if (p->replied)
            continue;
        if (p->first_sent < oldest)
            oldest = p->first_sent;
        if ((now - p->sent_at) * 1000.0 >= c->o.timeout_ms || (p->is_push && push_due)) {
            LOG_DEBUG("shard %d (%s): no reply to request %llu for %d ms, resending", i,
                      s->endpoint, (unsigned long long)p->req_id, c->o.timeout_ms);
            transmit(c, s, p, c->o.timeout_ms);
        }
    }
    if (oldest >= now)
        return 0; /* nothing waits for a reply */
    double since = now - (s->last_heard > oldest ? s->last_heard : oldest);
    if (since * 1000.0 >= c->o.timeout_ms && since <= c->o.deadline_s &&
        now - s->warned_at >= WARN_EVERY_S) {
        LOG_WARN("shard %d (%s): no reply for %.0f s, retrying until deadline_s %d", i, s->endpoint,
                 since, c->o.deadline_s);
        s->warned_at = now;
    }
    if (since > c->o.deadline_s)
        return errbuf_set(eb, ERR_TIMEOUT,
                          "shard %d (%s): no reply for %.0f s (deadline_s %d); is funnel-ps "
                          "running there?",
                          i, s->endpoint, since, c->o.deadline_s);
    return 0;
}

/* One round of waiting on shard i: pump for a short while, retry, check. */
static int wait_round(ps_client_t *c, int i, errbuf_t *eb)
{
    long slice = c->o.timeout_ms < 100 ? c->o.timeout_ms : 100;
    int rc = pump(c, i, slice, eb);

    if (rc == 0)
        rc = handshake_refused(c, i, eb);
    if (rc == 0)
        rc = retry_overdue(c, i, eb);
    if (rc == 0 && c->stop && *c->stop)
        rc = errbuf_set(eb, ERR_STOPPED, "interrupted");
    if (rc == 0 && c->sh[i].push_err) {
        if (eb)
            *eb = c->sh[i].push_eb;
        rc = c->sh[i].push_err;
    }
    return rc;
}

int ps_client_send(ps_client_t *c, int shard, msg_t *m, uint64_t *req_id, errbuf_t *eb)
{
    shard_conn_t *s = &c->sh[shard];
    int is_push = m->hdr.type == MSG_PUSH || m->hdr.type == MSG_PUSH_DENSE;
    pending_t *p;
    int rc;

    while (is_push && s->pushes >= c->o.max_inflight) {
        rc = wait_round(c, shard, eb);
        if (rc != 0)
            return rc;
    }
    m->hdr.req_id = c->next_req++;
    m->hdr.sender = c->o.sender;
    m->hdr.seq = is_push ? s->next_seq : 0;
    rc = codec_encode(&c->enc, m, eb);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "shard %d (%s): encode %s", shard, s->endpoint,
                             msg_type_name(m->hdr.type));
    if (is_push)
        s->next_seq++;
    if (s->npend == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        pending_t *np = realloc(s->pend, cap * sizeof(*np));
        if (!np)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        memset(np + s->cap, 0, (cap - s->cap) * sizeof(*np));
        s->pend = np;
        s->cap = cap;
    }
    p = &s->pend[s->npend];
    if (p->cap < c->enc.len) { /* a block as large as the message, contents not kept */
        free(p->bytes);
        p->cap = 0;
        p->bytes = malloc(c->enc.len);
        if (!p->bytes)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        p->cap = c->enc.len;
    }
    s->npend++;
    /* The encoded bytes become the request's (kept for retries) and the
     * request slot's block, as large, the encoder's next one: no copy (a
     * dense push is 0.6 MB a shard a batch), and once every slot's block
     * is as large as the largest message, no allocation either. */
    unsigned char *spare = p->bytes;
    size_t spare_cap = p->cap;
    p->bytes = c->enc.data;
    p->cap = c->enc.cap;
    p->len = c->enc.len;
    c->enc.data = spare;
    c->enc.cap = spare_cap;
    c->enc.len = 0;
    p->req_id = m->hdr.req_id;
    p->type = m->hdr.type;
    p->is_push = is_push;
    p->replied = 0;
    p->attempts = 0;
    p->first_sent = clock_now_s();
    if (s->npend == 1)
        s->last_heard = p->first_sent; /* the deadline counts from here after idling */
    if (is_push)
        s->pushes++;
    transmit(c, s, p, c->o.timeout_ms);
    *req_id = m->hdr.req_id;
    return 0;
}

int ps_client_wait(ps_client_t *c, int shard, uint64_t req_id, msg_t *rep, errbuf_t *eb)
{
    shard_conn_t *s = &c->sh[shard];

    for (;;) {
        pending_t *p = find_pending(s, req_id);
        int rc;

        if (!p)
            return errbuf_set(eb, ERR_INVAL, "shard %d: no request %llu outstanding", shard,
                              (unsigned long long)req_id);
        if (p->replied) {
            if (s->has_cur)
                zmq_msg_close(&s->cur);
            s->cur = p->raw; /* ownership moves to cur */
            s->has_cur = 1;
            p->replied = 0;
            drop_pending(s, p);
            rc = codec_decode(s->dec, rep, zmq_msg_data(&s->cur), zmq_msg_size(&s->cur), eb);
            if (rc != 0)
                return errbuf_prefix(eb, rc, "shard %d (%s)", shard, s->endpoint);
            if (rep->hdr.type == MSG_ERROR) {
                int code = rep->u.error.code < 0 ? rep->u.error.code : ERR_PROTO;
                return errbuf_set(eb, code, "shard %d (%s): %.*s", shard, s->endpoint,
                                  (int)rep->u.error.text.len, rep->u.error.text.ptr);
            }
            return 0;
        }
        rc = wait_round(c, shard, eb);
        if (rc != 0)
            return rc;
    }
}

int ps_client_call(ps_client_t *c, int shard, msg_t *req, msg_t *rep, errbuf_t *eb)
{
    uint64_t id;
    int rc = ps_client_send(c, shard, req, &id, eb);

    if (rc == 0 && (req->hdr.type == MSG_PUSH || req->hdr.type == MSG_PUSH_DENSE)) {
        /* Push acknowledgements are consumed on arrival: wait for this one. */
        while (rc == 0 && find_pending(&c->sh[shard], id))
            rc = wait_round(c, shard, eb);
        if (rc == 0) {
            msg_init(rep, MSG_ACK, id);
            return 0;
        }
        return rc;
    }
    if (rc == 0)
        rc = ps_client_wait(c, shard, id, rep, eb);
    if (rc == 0)
        rc = codec_check_reply(req, rep, eb);
    return rc;
}

int ps_client_ping(ps_client_t *c, errbuf_t *eb)
{
    uint64_t *ids = calloc((size_t)c->n, sizeof(*ids));
    char dead[ERRBUF_MAX / 2];
    size_t o = 0;
    int ndead = 0, rc = 0;

    if (!ids)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    dead[0] = '\0';
    /* All at once: the deadline of each counts from its send, so waiting
     * for them one after the other still ends within one deadline_s. */
    for (int i = 0; i < c->n && rc == 0; i++) {
        msg_t m;
        msg_init(&m, MSG_HELLO, 0);
        m.u.hello.flags = MSG_F_PROBE;
        rc = ps_client_send(c, i, &m, &ids[i], eb);
    }
    /* Round robin, so that every socket is pumped and its request resent
     * (a send before the connection is up is retried by the waiter). */
    for (int left = c->n; left > 0 && rc == 0;) {
        for (int i = 0; i < c->n && rc == 0; i++) {
            pending_t *p;
            msg_t rep;
            int r;

            if (!ids[i] || ids[i] == UINT64_MAX)
                continue; /* answered or given up */
            p = find_pending(&c->sh[i], ids[i]);
            if (!p || p->replied)
                r = ps_client_wait(c, i, ids[i], &rep, eb);
            else if ((r = wait_round(c, i, eb)) == 0)
                continue;
            ids[i] = r == ERR_TIMEOUT ? UINT64_MAX : 0; /* UINT64_MAX: silent */
            left--;
            if (r != 0 && r != ERR_TIMEOUT)
                rc = r;
        }
    }
    for (int i = 0; i < c->n && rc == 0; i++) /* in shard order */
        if (ids[i] == UINT64_MAX) {
            if (o < sizeof(dead))
                o += (size_t)snprintf(dead + o, sizeof(dead) - o, "%sshard %d (%s)",
                                      ndead ? ", " : "", i, c->sh[i].endpoint);
            ndead++;
        }
    free(ids);
    if (rc == 0 && ndead > 0)
        rc = errbuf_set(eb, ERR_TIMEOUT,
                        "%d of %d shard%s did not answer within %d s: %s; is funnel-ps running "
                        "there?",
                        ndead, c->n, c->n > 1 ? "s" : "", c->o.deadline_s, dead);
    return rc;
}

int ps_client_drain(ps_client_t *c, errbuf_t *eb)
{
    for (int i = 0; i < c->n; i++)
        while (c->sh[i].pushes > 0) {
            int rc = wait_round(c, i, eb);
            if (rc != 0)
                return rc;
        }
    return 0;
}

void ps_client_wire(const ps_client_t *c, ps_client_wire_t *out)
{
    *out = c->wire;
}
