/*
 * ps_client.h - talking to the parameter-server shards of a cluster:
 * one ZeroMQ DEALER socket per shard, requests with ids, replies matched
 * by id, timeouts with retries, and a deadline after which an unreachable
 * shard is an error naming its endpoint. The worker's remote parameter
 * access (param_remote.c) and the tools are built on it.
 *
 * NOTES ON THE DESIGN
 *   Several requests may be in flight per shard (DEALER), and replies may
 *   come back in any order: a reply that is not the one being waited for
 *   is kept (raw bytes) until someone waits for it; ACKs of pushes are
 *   consumed on arrival. Every request's encoded bytes are kept until its
 *   reply arrives, so a request not answered within timeout_ms is sent
 *   again with the same id and sequence number: a shard applies a push
 *   once per (sender, seq), so a retried push is never applied twice.
 *   Push sequence numbers are per shard: each shard sees 1, 2, 3, ...
 *   from this sender, which is what lets a restarted shard count the
 *   pushes it lost. A shard silent past timeout_ms gets a warning in the
 *   log every WARN_EVERY_S (10 s) until it answers or deadline_s ends
 *   the wait with ERR_TIMEOUT.
 *
 *   A decoded reply points into bytes the client keeps until the next
 *   ps_client_wait() on the same shard.
 *
 *   CURVE. With keys (ps_client_opts_keys()) every socket is a CURVE
 *   client of the shards' public key. A shard that refuses the key (not
 *   in its allow-list) or does not speak CURVE sends no reply; a socket
 *   monitor sees the failed handshake and the next wait ends at once
 *   with ERR_DENIED saying which key file to fix, instead of timing out.
 *
 * Thread-safety: one thread per client.
 */
#ifndef FUNNEL_PS_CLIENT_H
#define FUNNEL_PS_CLIENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/curve.h"
#include "proto/msg.h"

#define PS_CLIENT_MAX_SHARDS 256

typedef struct ps_client ps_client_t;

typedef struct ps_client_opts {
    uint32_t sender;  /* worker rank, or MSG_SENDER_TOOL */
    int timeout_ms;   /* resend a request unanswered this long */
    int deadline_s;   /* give up on a shard silent this long */
    int max_inflight; /* unacknowledged pushes per shard before a push waits */
    size_t max_msg;   /* largest message accepted (bytes; 0: default) */
    /* CURVE (curve.h): the shards' public key and this client's key pair,
     * Z85; curve_server empty: plain ZeroMQ. Set by ps_client_opts_keys(). */
    char curve_server[CURVE_Z85_LEN + 1];
    curve_pair_t curve_self;
} ps_client_opts_t;

/*
 * Fill o's CURVE keys from files: server_pub, the shards' NAME.pub (every
 * shard of a cluster uses the same key pair), and self_key, this client's
 * NAME.key (mode 0600). Both empty: no CURVE, 0. One without the other, or
 * a bad file: ERR_CONFIG / ERR_IO naming the key and the file.
 */
int ps_client_opts_keys(ps_client_opts_t *o, const char *server_pub, const char *self_key,
                        errbuf_t *eb);

/*
 * Connect to the shards at endpoints[0..n) (shard i at endpoints[i]).
 * Connecting does not wait for the shards; the first request does.
 * Returns 0 or ERR_*; release with ps_client_destroy().
 */
int ps_client_open(ps_client_t **out, char *const *endpoints, int n, const ps_client_opts_t *o,
                   errbuf_t *eb);
void ps_client_destroy(ps_client_t **c);

/* Number of shards, and the endpoint of shard i. */
int ps_client_shards(const ps_client_t *c);
const char *ps_client_endpoint(const ps_client_t *c, int shard);

/*
 * Send request m to shard (m->hdr.req_id, sender and, for PUSH and
 * PUSH_DENSE, seq are filled in here). Returns 0 with *req_id set, or an
 * error (encoding). Pushes are tracked until acknowledged; if max_inflight
 * pushes are unacknowledged at that shard, this first waits for one.
 */
int ps_client_send(ps_client_t *c, int shard, msg_t *m, uint64_t *req_id, errbuf_t *eb);

/*
 * Wait for the reply to req_id from shard and decode it into rep (valid
 * until the next wait on that shard). An ERROR reply is returned as its
 * code with "shard N (endpoint): text" in eb. ERR_TIMEOUT after the
 * deadline; ERR_STOPPED if *stop became non-zero while waiting.
 */
int ps_client_wait(ps_client_t *c, int shard, uint64_t req_id, msg_t *rep, errbuf_t *eb);

/* send + wait. */
int ps_client_call(ps_client_t *c, int shard, msg_t *req, msg_t *rep, errbuf_t *eb);

/* Continue shard's push sequence numbers after seq (what the shard last
 * applied from this sender, e.g. before this process was restarted). */
void ps_client_set_seq(ps_client_t *c, int shard, uint64_t seq);

/*
 * Ask every shard at once whether it answers (a probing HELLO), waiting up
 * to deadline_s (give a short one). Returns 0 if all answered, ERR_TIMEOUT
 * naming every silent shard and its endpoint, or another error of the
 * first shard that answered with one (a refused CURVE key, ...).
 */
int ps_client_ping(ps_client_t *c, errbuf_t *eb);

/* Wait until every push sent to every shard is acknowledged. */
int ps_client_drain(ps_client_t *c, errbuf_t *eb);

/* Let a signal flag interrupt waits (NULL: none). */
void ps_client_set_stop(ps_client_t *c, volatile sig_atomic_t *stop);

/* Pushes acknowledged as duplicates (retries the shard had applied). */
uint64_t ps_client_duplicates(const ps_client_t *c);

/*
 * Bytes on the wire, by request type (index MSG_*): every send of a
 * request (retries included) and every reply received for one (a late
 * second reply to a retried request is dropped unread, uncounted). Bytes are ZeroMQ message
 * payloads: the encoded msgpack message; ZMTP framing (2-9 bytes a message) and CURVE's box (+33)
 * are not in them.
 */
typedef struct ps_client_wire {
    uint64_t sent[MSG_TYPE_END];      /* requests sent, retries included */
    uint64_t bytes_out[MSG_TYPE_END]; /* bytes of those requests */
    uint64_t replies[MSG_TYPE_END];   /* replies received */
    uint64_t bytes_in[MSG_TYPE_END];  /* bytes of those replies */
} ps_client_wire_t;

/* Copy the client's wire counters since it was opened into *out. */
void ps_client_wire(const ps_client_t *c, ps_client_wire_t *out);

#endif
