/*
 * server.h - one parameter-server shard: serves its share of the embedding
 * rows and its range of the dense weights to workers and tools over a
 * ZeroMQ ROUTER socket, and keeps them durable in RocksDB.
 *
 * NOTES ON THE DESIGN
 *   Loop. One thread owns the table: it polls the socket (at most 100 ms
 *   at a time, so a signal or the flush timer is noticed quickly), decodes
 *   a request, answers it from memory (or RocksDB for evicted rows) and
 *   never waits on a peer. Workers use DEALER sockets: each request is one
 *   frame, each reply one frame back to the same peer identity.
 *
 *   Durability. Every flush_interval seconds, on FLUSH, CHECKPOINT,
 *   SHUTDOWN and on SIGTERM/SIGINT, the shard writes its dirty rows, its
 *   dense range with the optimizer state, the last applied push sequence
 *   number of every sender and the workers' reader positions, ending with
 *   a synced write. After kill -9 a restarted shard serves exactly what the
 *   last flush wrote.
 *
 *   Exactly-once pushes. A push (rows or dense) carries the sender's
 *   sequence number for this shard (1, 2, 3, ...). The shard applies it only
 *   if it is above the last applied one for that sender; a retry gets an
 *   ACK flagged duplicate. Lost updates: after a restart, the first push of
 *   a sender with seq S when the flushed last seq is L means S-1-L pushes
 *   were applied before the crash but not flushed; they are counted in
 *   `lost_pushes` and logged. The bound: at most the pushes a sender made
 *   during one flush_interval (plus one flush's duration) per shard.
 *
 *   Dense weights. Shard i owns the range route_dense_range(n, N, i) of the
 *   n dense floats (n follows from the [model] towers). A fresh shard
 *   reports dense_initialized 0 in STATS; rank 0 then stores its initial
 *   weights with PUSH_DENSE + MSG_F_ASSIGN (other ranks wait for 1).
 *
 *   Bad input. A message that does not decode, does not fit the layout or
 *   is not a request gets an ERROR reply naming the problem, a counter, and
 *   a warning at most once per second; the shard keeps serving. ZeroMQ
 *   refuses messages over max_msg_size before allocating them.
 *
 * Thread-safety: server_run() runs on the main thread; stop is the only
 * thing a signal handler touches.
 */
#ifndef FUNNEL_SERVER_H
#define FUNNEL_SERVER_H

#include <signal.h>

#include "err.h"
#include "ps_conf.h"

/* Serve until a SHUTDOWN request or *stop. Returns 0 on a clean stop,
 * else ERR_* with eb filled (bind failure, store errors). */
int server_run(const ps_conf_t *pc, volatile sig_atomic_t *stop, errbuf_t *eb);

#endif
