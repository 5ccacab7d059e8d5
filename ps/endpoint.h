/*
 * endpoint.h - checks on a shard's listen endpoint before it binds.
 *
 * ZeroMQ binds an ipc:// endpoint by removing whatever file is at its path
 * and creating a new socket there: a second shard started on a running
 * shard's endpoint would silently take its clients. endpoint_probe() looks
 * first: a socket someone accepts connections on is refused, a socket file
 * nobody listens on (left by a shard that died) is removed so the bind can
 * reuse the path, and anything else at the path is refused. tcp:// needs
 * no probe: its bind fails by itself when the port is taken.
 *
 * Thread-safety: no shared state.
 */
#ifndef FUNNEL_ENDPOINT_H
#define FUNNEL_ENDPOINT_H

#include "common/err.h"

/*
 * Probe ep before binding it. Returns 0 if the bind may go ahead (not an
 * ipc:// endpoint, nothing at its path, or a stale socket file that was
 * removed; *stale set to 1 in that case if stale is not NULL), ERR_BUSY
 * if a process listens there, ERR_CONFIG if the path is not a socket or
 * does not fit a socket address, ERR_IO if it cannot be examined.
 */
int endpoint_probe(const char *ep, int *stale, errbuf_t *eb);

#endif
