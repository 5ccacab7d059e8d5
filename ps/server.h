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
 *   SHUTDOWN and on SIGTERM/SIGINT, the shard writes its dirty rows, then
 *   in one synced batch its dense range with the optimizer state and step
 *   (dense_shard.h), the last applied push sequence number of every sender
 *   and the workers' reader positions (records: shard_meta.h). After kill -9 a
 *   restarted shard serves exactly what the last flush wrote (plus rows
 *   that eviction wrote back since). A failing flush (disk full, I/O
 *   error) stops the shard with the error: serving on would make the loss
 *   unbounded.
 *
 *   Exactly-once pushes. A push (rows or dense) carries the sender's
 *   sequence number for this shard (1, 2, 3, ...; msg.h). The shard applies
 *   it only if it is above the last applied one for that sender; a retry
 *   gets an ACK flagged MSG_F_DUPLICATE. A worker that restarts reads
 *   seq_<rank> from STATS and continues from there. The sender table is
 *   bounded (max_senders; stale senders expire only to make room:
 *   shard_meta.h), and STATS lists at most 256 seq_<id> entries, or the
 *   one asked for by its full name.
 *
 *   Exactly-once samples. Every push of a training batch carries the
 *   worker's reader position after that batch (msg.h pos: epoch, file,
 *   offset, line, samples), and the batch's final push to each shard is
 *   marked last: the PUSH_DENSE of the shard's range, or an empty PUSH to
 *   a shard without one, so a batch with no rows on a shard still reaches
 *   it. Applying a push and recording its position for the sender are
 *   one step of the single-threaded loop, and both are flushed in the
 *   same synced batch (shard_meta.h). Invariant: for each rank, a shard's
 *   position is that of the last batch all of whose pushes to it were
 *   applied, and a batch's pushes are applied there at most once, in
 *   order; a push whose (samples, last) is not beyond what was applied is
 *   answered as a duplicate and counted (replayed_pushes). A restarted
 *   worker resumes from the least advanced shard's position (every
 *   earlier batch is complete everywhere) and replays, with the same
 *   batch boundaries, the batches some shards already hold: each is
 *   applied only where it is missing. So a worker killed at any moment
 *   trains every sample exactly once, provided it restarts with the same
 *   logs, workers and batch_size. A shard killed loses what it applied
 *   since its last flush (below); the worker, alive, does not replay it.
 *
 *   Lost updates. The first push of every sender after a (re)start is
 *   compared with the last seq the store held for it, L (0 for a sender
 *   it never recorded): seq S > L + 1 means S-1-L pushes were applied and
 *   acknowledged before the crash but not flushed. They are added to
 *   `lost_pushes` (STATS, since this start) and logged. The bound: at most
 *   the pushes each sender had received by this shard during one
 *   flush_interval plus the duration of one flush. Rows go to the store
 *   before the sequence numbers, so a crash between the two (or a dirty
 *   row evicted after the flush) can only make the count too high, never
 *   hide a loss.
 *
 *   Dense weights. Shard i owns the range route_dense_range(n, N, i) of the
 *   n dense floats (n: what model_new() allocates for the [model] towers).
 *   The shard never invents them: a fresh range reports dense_initialized
 *   0 in STATS; rank 0 then stores its initial weights (its model_new(seed))
 *   with PUSH_DENSE + MSG_F_ASSIGN and the other ranks wait for 1, so every
 *   worker and shard starts from the same weights. That first assignment
 *   is flushed before its ACK: a shard killed before its first timed flush
 *   must not come back with zero weights.
 *
 *   Bad input. A message that does not decode, does not fit the layout or
 *   is not a request gets an ERROR reply naming the problem, a counter
 *   (errors, errors_<CODE>, bad_messages), and a warning at most once per
 *   second with the number of warnings suppressed; the shard keeps
 *   serving. A message of another number of frames than [identity,
 *   payload] is dropped and counted (bad_frames). ZeroMQ refuses messages
 *   over max_msg_size before allocating them (the peer is disconnected).
 *
 *   Paths and limits. CHECKPOINT takes a name and writes under the shard's
 *   own checkpoint_root (ckpt_dir.h); no request names a path. A request
 *   creates at most max_new_rows rows and the shard holds at most max_rows
 *   (emb_table_set_max_rows()); beyond, ERROR and rows_refused. The data
 *   directory records its layout and refuses another (shard_layout.h).
 *
 *   Keys. With [ps] curve_secret_key and curve_allow the socket is a
 *   CURVE server and only the allow-list's keys complete a handshake
 *   (zap.h); each request is then checked against its key's role and
 *   ranks before anything else is done with it (auth.h): a refusal is an
 *   ERR_DENIED reply, counted in `denied`, and changes nothing. Without
 *   keys a shard serves anyone who reaches it, so it refuses to start on
 *   an address other machines can reach unless told --insecure.
 *
 *   Not served yet: EXPORT (funnel-emb exports checkpoints offline) and
 *   SCAN (the store has no seek); both get an ERROR reply.
 *
 * Thread-safety: server_run() runs on the main thread; stop is the only
 * thing a signal handler touches.
 */
#ifndef FUNNEL_SERVER_H
#define FUNNEL_SERVER_H

#include <signal.h>

#include "common/err.h"
#include "common/ps_conf.h"

/* Serve until a SHUTDOWN request or *stop. Returns 0 on a clean stop,
 * else ERR_* with eb filled (bind failure, store errors). */
int server_run(const ps_conf_t *pc, volatile sig_atomic_t *stop, errbuf_t *eb);

#endif
