/*
 * param_remote.h - parameter access through a cluster of parameter-server
 * shards (the remote implementation of param.h).
 *
 * Keys are routed to shards with route_shard(); the dense vector is cut
 * into the shards' ranges with route_dense_range(). A pull sends one PULL
 * per shard (and one PULL_DENSE per shard) in pull_start() and gathers the
 * replies in pull_finish(), so the next batch's rows travel while this one
 * computes. Pushes are sent without waiting; ps_client bounds the
 * unacknowledged ones per shard (max_inflight).
 *
 * Thread-safety: one thread.
 */
#ifndef FUNNEL_PARAM_REMOTE_H
#define FUNNEL_PARAM_REMOTE_H

#include <signal.h>

#include "worker/param.h"
#include "worker/worker_conf.h"

/*
 * Connect to the shards in wc->ps, handshake with each (layout, shard
 * count, optimizers, dense size must match: a mismatch is an error naming
 * the shard and the difference). dense_init (n floats) are the weights a
 * fresh cluster starts from: rank 0 stores them on shards whose dense range
 * was never set. dense_init NULL opens read-only (prediction): nothing is
 * assigned, and a shard without dense weights is ERR_NOTFOUND (an untrained
 * cluster). stop interrupts waits. Returns 0 or ERR_*.
 */
int param_remote_open(param_t **out, const worker_conf_t *wc, const model_spec_t *ms,
                      const float *dense_init, size_t dense_n, volatile sig_atomic_t *stop,
                      errbuf_t *eb);

#endif
