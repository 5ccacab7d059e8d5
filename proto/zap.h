/*
 * zap.h - a server's side of CURVE (funnel-ps and funnel-serve, so it
 * lives in the protocol library): its socket becomes a CURVE server
 * (every frame encrypted and authenticated, CurveZMQ), and a ZAP handler
 * (ZeroMQ's authentication protocol, RFC 27, on inproc://zeromq.zap.01)
 * admits only the public keys of the allow-list (auth.h). An admitted
 * connection's messages carry the ZAP User-Id, the key's index in the
 * allow-list, which the server reads per request (zmq_msg_gets "User-Id")
 * to decide what the key may do. A client whose key is not listed, or
 * that does not speak CURVE, never completes the handshake: none of its
 * bytes reach the server loop.
 *
 * NOTES ON THE DESIGN
 *   The handler runs in its own thread. libzmq's I/O thread sends the ZAP
 *   request during the handshake and waits for the reply asynchronously,
 *   so the handler could also be polled by the server loop; but that loop
 *   may spend seconds in a flush or checkpoint, and a handler on its own
 *   thread keeps admitting (and refusing) connections meanwhile. It
 *   shares nothing writable with the server loop: the allow-list is
 *   read-only once loaded, the counters are atomics, and it owns its own
 *   REP socket (bound in zap_start() before the server socket is, so no
 *   handshake can ever happen without it).
 *
 * Thread-safety: zap_start()/zap_stop() on the server thread; the
 * counters may be read from it at any time.
 */
#ifndef FUNNEL_ZAP_H
#define FUNNEL_ZAP_H

#include <stdint.h>

#include "common/err.h"
#include "proto/auth.h"
#include "proto/curve.h"

#define ZAP_DOMAIN "funnel"

typedef struct zap zap_t;

/*
 * Bind the ZAP endpoint in ZeroMQ context ctx and start the handler for
 * allow-list a (borrowed: it must outlive the handler). Returns 0 or
 * ERR_NET / ERR_NOMEM; stop and release with zap_stop() before the
 * context is terminated.
 */
int zap_start(zap_t **out, void *ctx, const auth_t *a, errbuf_t *eb);

/* Stop the handler thread and close its socket. Accepts NULL. */
void zap_stop(zap_t **z);

/* Handshakes admitted / refused (unknown key or bad request) so far. */
uint64_t zap_admitted(const zap_t *z);
uint64_t zap_refused(const zap_t *z);

/* Make sock (not yet bound) a CURVE server with the shard's key pair, in
 * the ZAP domain ZAP_DOMAIN. Returns 0 or ERR_NET. */
int zap_curve_server(void *sock, const curve_pair_t *pair, errbuf_t *eb);

#endif
