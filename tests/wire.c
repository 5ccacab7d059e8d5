/*
 * wire.c - the tests' raw DEALER client (wire.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tests/wire.h"

int tw_open(tw_conn_t *c, const char *ep, const char *server, const curve_pair_t *self)
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
    if (server && (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, server, 40) != 0 ||
                   zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, self->pub, 40) != 0 ||
                   zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, self->sec, 40) != 0))
        return -1;
    return zmq_connect(c->sock, ep);
}

void tw_close(tw_conn_t *c)
{
    if (c->has_rep)
        zmq_msg_close(&c->rep);
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    codec_dec_destroy(&c->dec);
    codec_buf_release(&c->enc);
    memset(c, 0, sizeof(*c));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int tw_call_ms(tw_conn_t *c, msg_t *req, msg_t *rep, long ms)
{
    errbuf_t eb;
    long left = ms;

    req->hdr.req_id = c->next_id++;
    if (codec_encode(&c->enc, req, &eb) != 0) {
        fprintf(stderr, "\n  encode: %s\n", eb.msg);
        return -1;
    }
    /* not connected yet (a CURVE handshake may still run): wait, retry */
    while (zmq_send(c->sock, c->enc.data, c->enc.len, ZMQ_DONTWAIT) != (int)c->enc.len) {
        if (left <= 0)
            return -1;
        sleep_ms(20);
        left -= 20;
    }
    for (int round = 0; round < 1000 && left > 0; round++) {
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, left) <= 0)
            return -1;
        if (c->has_rep)
            zmq_msg_close(&c->rep);
        zmq_msg_init(&c->rep);
        c->has_rep = 1;
        if (zmq_msg_recv(&c->rep, c->sock, 0) < 0)
            return -1;
        if (codec_decode(c->dec, rep, zmq_msg_data(&c->rep), zmq_msg_size(&c->rep), &eb) != 0) {
            fprintf(stderr, "\n  undecodable reply: %s\n", eb.msg);
            return -1;
        }
        if (rep->hdr.req_id == req->hdr.req_id)
            return 0;
    }
    return -1;
}

int tw_call(tw_conn_t *c, msg_t *req, msg_t *rep)
{
    return tw_call_ms(c, req, rep, TW_REPLY_MS);
}

int64_t tw_stat(tw_conn_t *c, const char *name)
{
    size_t len = strlen(name);
    msg_t m, r;

    msg_init(&m, MSG_STATS, 0);
    m.u.cmd.text.ptr = name;
    m.u.cmd.text.len = (uint32_t)len;
    if (tw_call(c, &m, &r) != 0 || r.hdr.type != MSG_STATS_OK)
        return -1;
    for (uint32_t i = 0; i < r.u.kv.n; i++)
        if (r.u.kv.kv[i].name.len == len && memcmp(r.u.kv.kv[i].name.ptr, name, len) == 0)
            return (int64_t)r.u.kv.kv[i].u64;
    return 0;
}
