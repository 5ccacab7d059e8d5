/*
 * ckpt_read.h - reading a saved table from outside the shard that wrote
 * it: a checkpoint of N shards (CKPT/shard-0 .. shard-N-1, each a shard's
 * RocksDB store) or a model directory (its one store, shard-0). It opens
 * the shard stores read-only, and decodes the dense record every shard
 * keeps beside its rows (the one definition of that record: the shard
 * itself, ps/dense_shard.c, and the checkpoint files of table/ckpt_io.c
 * decode through it), so `predict` can run a
 * checkpoint in process and `funnel-emb` can read every shard as one table.
 *
 * It does not read META (meta.h: the caller knows the shard count from
 * there), write anything, or know optimizers beyond the kind recorded.
 *
 * NOTES ON THE DESIGN
 *   Dense record (key "m:dense" of every shard's store; little-endian,
 *   version 1):
 *     u8 version | u8 initialized | u16 0 | u32 optimizer kind |
 *     u64 total | u64 offset | u64 count | i64 step | u64 nstate |
 *     f32 w[count] | f32 state[nstate]
 *   Shard i of N holds the range route_dense_range(total, N, i) of the
 *   whole vector of `total` floats; the ranges of a checkpoint's shards
 *   tile the vector, so the weights of the whole model are their
 *   concatenation. A shard whose range was never assigned (initialized
 *   0) has no trained weights: reading it is an error.
 *
 * Thread-safety: reentrant; the stores are the caller's.
 */
#ifndef FUNNEL_CKPT_READ_H
#define FUNNEL_CKPT_READ_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "table/store.h"

#define CKPT_READ_DENSE_KEY "m:dense"
#define CKPT_READ_DENSE_VERSION 1
#define CKPT_READ_DENSE_HEADER 48  /* bytes before w[] */
#define CKPT_READ_MAX_SHARDS 65536 /* the most `funnel-emb reshard` writes */

/* One dense record, decoded in place: w and state point into the record. */
typedef struct ckpt_dense_rec {
    int initialized;            /* 1: weights were assigned or trained */
    uint32_t opt_kind;          /* OPTIM_* of the dense optimizer */
    uint64_t total;             /* floats in the whole dense vector */
    uint64_t offset, count;     /* this shard's range (floats) */
    int64_t step;               /* gradients applied */
    uint64_t nstate;            /* floats of optimizer state */
    const unsigned char *w;     /* count unaligned little-endian f32 */
    const unsigned char *state; /* nstate unaligned little-endian f32 */
} ckpt_dense_rec_t;

/*
 * Decode the header of a dense record of len bytes and check its version
 * and length. where names its origin in messages. Returns 0 or ERR_CORRUPT
 * ("DIR: dense record: 12 bytes, version 1 (expected version 1)").
 */
int ckpt_read_dense_decode(ckpt_dense_rec_t *r, const void *rec, size_t len, const char *where,
                           errbuf_t *eb);

/*
 * Shard i of n's dense record from its store st (DIR/shard-i), checked
 * against the range of total floats the routing gives shard i, and for
 * initialized weights. *v receives the record's bytes (the caller frees
 * them; NULL on error) and r points into them. Returns 0, ERR_NOTFOUND (no
 * record, or never initialized: an untrained cluster's checkpoint),
 * ERR_MISMATCH (another range: another shard count or towers),
 * ERR_CORRUPT, or the store's error; eb names the shard.
 */
int ckpt_read_dense_shard(store_t *st, int i, int n, const char *dir, uint64_t total,
                          ckpt_dense_rec_t *r, void **v, errbuf_t *eb);

/*
 * Open DIR/shard-0 .. shard-(n-1) read-only into parts[0..n-1] (1 <= n <=
 * CKPT_READ_MAX_SHARDS). Returns 0, or ERR_IO / ERR_CORRUPT naming the
 * shard directory, with every part closed and NULL. Close each with
 * store_close(), or hand them to store_multi_open() to read them as one.
 */
int ckpt_read_open_shards(store_t **parts, const char *dir, int n, errbuf_t *eb);

/*
 * Assemble the dense weights (total floats) of the n shard stores of DIR
 * (as opened by ckpt_read_open_shards, in shard order) into w. Returns 0;
 * ERR_NOTFOUND for a shard without a dense record or one never
 * initialized; ERR_MISMATCH for a record of another size or range
 * ("DIR/shard-1: dense range [..] of T floats, [..] of T' expected");
 * ERR_CORRUPT; ERR_STORE.
 */
int ckpt_read_dense(store_t *const *parts, int n, const char *dir, float *w, uint64_t total,
                    errbuf_t *eb);

#endif
