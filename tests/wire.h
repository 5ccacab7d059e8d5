/*
 * wire.h - a raw DEALER client for the suites that talk to a real shard in
 * its wire format, as any peer (or attacker) can: requests built by hand
 * with proto/codec, plain or over CURVE, one reply awaited per request.
 * Not proto/ps_client: that one retries, routes and checks replies, which
 * is what the tests here must get around.
 */
#ifndef FUNNEL_TEST_WIRE_H
#define FUNNEL_TEST_WIRE_H

#include <stdint.h>
#include <zmq.h>

#include "proto/codec.h"
#include "proto/curve.h"
#include "proto/msg.h"

#define TW_REPLY_MS 10000 /* tw_call()'s wait for a reply */

typedef struct tw_conn {
    void *ctx, *sock;
    codec_buf_t enc;
    codec_dec_t *dec;
    zmq_msg_t rep; /* the last reply's bytes: a decoded reply points here */
    int has_rep;
    uint64_t next_id;
} tw_conn_t;

/* Connect to ep; server: the shard's public key (Z85, NULL: plain), self:
 * this client's key pair (with server). Returns 0 or -1; tw_close() also
 * after a failure. */
int tw_open(tw_conn_t *c, const char *ep, const char *server, const curve_pair_t *self);
void tw_close(tw_conn_t *c);

/* Send req (its req_id set here) and decode its reply into rep, valid
 * until the next call. Waits up to ms, also for a CURVE handshake still
 * running. Returns 0, or -1 (no reply, or an undecodable one). */
int tw_call_ms(tw_conn_t *c, msg_t *req, msg_t *rep, long ms);
int tw_call(tw_conn_t *c, msg_t *req, msg_t *rep);

/* The shard's counter `name` (exact); 0 when it is not listed (counters
 * are listed once non-zero), -1 when STATS got no answer. */
int64_t tw_stat(tw_conn_t *c, const char *name);

#endif
