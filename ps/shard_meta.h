/*
 * shard_meta.h - what a parameter-server shard records about itself, apart
 * from its rows: the last applied push of every sender, the workers'
 * reader positions, the current day and (as dense_shard.h's record) its
 * dense range. They live in the shard's store, are written in one synced
 * batch at every flush and read back at start-up. A fresh data directory
 * may instead start as a checkpoint's copy of the shard (--init_from),
 * after the checkpoint's META was checked.
 *
 * Not here: the rows (emb_table.h), when to flush, and what a push or a
 * progress request does with these records (server.c).
 *
 * NOTES ON THE DESIGN
 *   Records. Keys starting with 'm' belong to the server (emb_table.h).
 *   Records are little-endian with a version byte:
 *     m:dense     dense_shard.h's record
 *     m:seq       u8 2 | u8[3] 0 | u32 n | n x (u32 sender, u32 0, u64 last_seq,
 *                 u64 active: unix s of its last push)
 *     m:progress  u8 2 | u8[3] 0 | u32 n | n x (u32 rank, u32 epoch, u32 file,
 *                 u32 found (1: a position; 0: none yet), u64 offset, u64 line, u64 samples, u64
 * partial) Version-1 records (without active and partial) are still read: their senders count as
 * active at load, their positions as complete. m:day       u8 1 | u8[3] 0 | i32 day: the current
 * day (set by --day or BEGIN_DAY), so a restart does not fall back to an older one Batch positions.
 * A worker's position on this shard is that of the last training batch whose pushes to this shard
 * all arrived (its final push carries last = 1, msg.h); `partial` is the samples value of a batch
 * whose earlier push (rows) was applied here but not yet its final one (dense), else 0. Ordered by
 * (samples, last), they say which pushes of a replayed batch were already applied
 * (shard_meta_batch_check).
 *
 *   Sender table. At most max_senders senders are recorded. A push from a
 *   new sender when the table is full expires the sender idle longest,
 *   if it has been idle (no push at all) for sender_idle_s, together with
 *   its position; else the push is refused (ERR_BUSY). Expiry happens only
 *   then, so with fewer senders than the bound nobody is ever forgotten.
 *   A live worker pushes every batch and retries a push only within its
 *   deadline_s, far below sender_idle_s (default a day; keep it so):
 *   no retry of an expired sender can still be on its way, so expiry
 *   cannot re-open a duplicate window for a live worker. A worker that
 *   was away longer, restarted, starts its seq numbers at 1 and its part
 *   of the logs over (its position was expired with it).
 *
 *   A missing record is a fresh shard (no senders, no positions, the
 *   command line's day, an uninitialized dense range); a record of another
 *   version or length is ERR_CORRUPT naming the data directory.
 *
 * Thread-safety: none; the server loop owns its shard_meta_t.
 */
#ifndef FUNNEL_SHARD_META_H
#define FUNNEL_SHARD_META_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/model_conf.h"
#include "common/ps_conf.h"
#include "proto/msg.h"
#include "ps/dense_shard.h"
#include "table/store.h"

/* Last applied push of one sender (a worker rank or a tool). */
typedef struct shard_sender {
    uint32_t id;
    uint64_t last_seq; /* applied */
    int checked;       /* its first push since this start was compared with last_seq */
    uint64_t active;   /* unix s of its last push (wall clock: survives restarts) */
} shard_sender_t;

typedef struct shard_meta {
    long long shard;         /* for messages */
    const char *dir;         /* the data directory, for messages */
    shard_sender_t *senders; /* nsenders, in order of first push */
    size_t nsenders;
    msg_progress_t *prog; /* recorded positions, one per rank (found = 1) */
    uint64_t *partial;    /* per prog entry: samples of a batch applied in part, 0: none */
    size_t nprog;
    size_t prog_cap;          /* entries allocated in prog and partial */
    size_t max_senders;       /* bound of senders and of positions */
    uint64_t sender_idle_s;   /* s without a push before a sender may expire */
    uint64_t senders_expired; /* since this start */
    uint64_t senders_refused; /* pushes refused: table full, none idle */
    int day;                  /* the current day, stamped on rows as first/last seen */
    unsigned char *buf;       /* scratch: the encoded m:seq and m:progress records */
    size_t buf_cap;           /* bytes */
} shard_meta_t;

/* Start m empty on day `day` for shard `shard` in data directory dir
 * (dir must outlive m). */
void shard_meta_init(shard_meta_t *m, long long shard, const char *dir, int day);

/*
 * Read the records of store st into m and dense. The day is the larger of
 * m->day (the command line's) and the stored one (a later BEGIN_DAY the
 * command line does not know of). Returns 0 (missing records leave m and
 * dense as they were), ERR_CORRUPT naming dir, ERR_NOMEM, or the store's
 * error.
 */
int shard_meta_load(shard_meta_t *m, store_t *st, dense_shard_t *dense, errbuf_t *eb);

/* Write the four records (dense's included) to st in one synced batch.
 * Returns 0 or ERR_*. */
int shard_meta_save(shard_meta_t *m, store_t *st, dense_shard_t *dense, errbuf_t *eb);

/* The record of sender id, added (last_seq 0) if it has none. NULL when
 * out of memory. The pointer is valid until the next call. */
shard_sender_t *shard_meta_sender(shard_meta_t *m, uint32_t id);

/* Bound the sender table (see the design notes); shard_meta_init() sets
 * SHARD_META_MAX_SENDERS and SHARD_META_IDLE_S. */
void shard_meta_set_limits(shard_meta_t *m, size_t max_senders, uint64_t sender_idle_s);

#define SHARD_META_MAX_SENDERS 4096
#define SHARD_META_IDLE_S 86400

/*
 * The record of sender id at wall-clock time now (unix s), added if it has
 * none, its `active` time set to now. A new sender beyond max_senders
 * expires the longest-idle sender idle for sender_idle_s, or is refused:
 * ERR_BUSY with eb saying which key to raise. Returns 0 with *out (valid
 * until the next call), ERR_BUSY or ERR_NOMEM.
 */
int shard_meta_sender_admit(shard_meta_t *m, uint32_t id, uint64_t now, shard_sender_t **out,
                            errbuf_t *eb);

/*
 * Before applying a push of sender id that carries batch position pos
 * (pos->has): 1 if this shard already applied that part of that batch
 * (skip it), 0 if it is to be applied (the sender's position entry then
 * exists, so shard_meta_batch_done() cannot fail), ERR_BUSY when a new
 * entry would exceed max_senders, ERR_NOMEM.
 */
int shard_meta_batch_check(shard_meta_t *m, uint32_t id, const msg_pos_t *pos);

/* Record, in the step that applied it, the push of sender id carrying pos
 * (after shard_meta_batch_check() returned 0). */
void shard_meta_batch_done(shard_meta_t *m, uint32_t id, const msg_pos_t *pos);

/* The position recorded for rank, or NULL. */
const msg_progress_t *shard_meta_progress_get(const shard_meta_t *m, uint32_t rank);

/* Record *p as the position of rank p->rank (found = 1), replacing an older
 * one (and a partly applied batch). Returns 0, ERR_BUSY for a new rank
 * beyond max_senders, or ERR_NOMEM. */
int shard_meta_progress_set(shard_meta_t *m, const msg_progress_t *p);

/* Begin day `day`: a new day is a new job, so the workers' positions are
 * cleared (they start on the day's logs). */
void shard_meta_begin_day(shard_meta_t *m, int day);

/* Free what m holds (a zeroed m is fine). */
void shard_meta_release(shard_meta_t *m);

/*
 * --init_from CKPT: if pc->data holds no store yet, copy the checkpoint's
 * CKPT/shard-<pc->shard> into it, after checking CKPT/META against the
 * running layout (ms, pc->shards, dense_total floats). A directory that
 * already holds a store (a restart) is kept. Returns 0 (also without
 * --init_from) or ERR_*.
 */
int shard_meta_restore(const ps_conf_t *pc, const model_spec_t *ms, uint64_t dense_total,
                       errbuf_t *eb);

#endif
