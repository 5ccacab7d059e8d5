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
 *     m:seq       u8 1 | u8[3] 0 | u32 n | n x (u32 sender, u32 0, u64 last_seq)
 *     m:progress  u8 1 | u8[3] 0 | u32 n | n x (u32 rank, u32 epoch, u32 file,
 *                 u32 0, u64 offset, u64 line, u64 samples)
 *     m:day       u8 1 | u8[3] 0 | i32 day: the current day (set by --day or
 *                 BEGIN_DAY), so a restart does not fall back to an older one
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
} shard_sender_t;

typedef struct shard_meta {
    long long shard;         /* for messages */
    const char *dir;         /* the data directory, for messages */
    shard_sender_t *senders; /* nsenders, in order of first push */
    size_t nsenders;
    msg_progress_t *prog; /* recorded positions, one per rank (found = 1) */
    size_t nprog;
    int day;            /* the current day, stamped on rows as first/last seen */
    unsigned char *buf; /* scratch: the encoded m:seq and m:progress records */
    size_t buf_cap;     /* bytes */
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

/* The position recorded for rank, or NULL. */
const msg_progress_t *shard_meta_progress_get(const shard_meta_t *m, uint32_t rank);

/* Record *p as the position of rank p->rank (found = 1), replacing an older
 * one. Returns 0 or ERR_NOMEM. */
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
