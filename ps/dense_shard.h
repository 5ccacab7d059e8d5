/*
 * dense_shard.h - one shard's range of the dense weight vector (the tower
 * weights of every worker's model), with its optimizer state and step
 * counter, and the record that makes it durable. No I/O of its own: the
 * server writes the record in the same store batch as the rest of its
 * metadata, so dense weights, push sequence numbers and worker progress
 * are always flushed together.
 *
 * NOTES ON THE DESIGN
 *   Range. The whole vector has `total` floats (what model_new() of the
 *   [model] config allocates); shard i of N owns route_dense_range(total,
 *   N, i). Requests must name exactly that range: a worker that routes
 *   differently has another shard count or layout, which the handshake
 *   already refuses, so a partial range is a bug worth an error.
 *
 *   Initialization. A fresh range is all zeros and `initialized` is 0.
 *   The weights must equal what model_new(seed) gives every worker, so the
 *   shard does not invent them: rank 0 assigns its own initial weights
 *   (dense_shard_assign, PUSH_DENSE with MSG_F_ASSIGN) when the shard
 *   reports dense_initialized 0, and every rank waits for 1 before
 *   training. Assigning keeps the optimizer state and step (a restore
 *   from a model directory assigns the trained weights of a running job).
 *
 *   Steps. Each gradient is one optimizer step: step counts them (Adam's
 *   bias correction uses it), starting at 1 for the first gradient.
 *
 *   Record (little-endian, DENSE_SHARD_RECORD_VERSION 1):
 *     u8 version | u8 initialized | u16 0 | u32 optimizer kind |
 *     u64 total | u64 offset | u64 count | i64 step | u64 nstate |
 *     f32 w[count] | f32 state[nstate]
 *   Loading checks version, length, optimizer, total and range, so a data
 *   directory of another layout or shard count is refused by name.
 *
 * Thread-safety: none; the server loop owns its dense shard.
 */
#ifndef FUNNEL_DENSE_SHARD_H
#define FUNNEL_DENSE_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/optim.h"

#define DENSE_SHARD_RECORD_VERSION 1
#define DENSE_SHARD_RECORD_HEADER 48 /* bytes before w[] */

typedef struct dense_shard {
    optim_t opt;        /* dense optimizer ([model] dense_optimizer) */
    uint64_t total;     /* floats in the whole dense vector (all shards) */
    uint64_t offset;    /* first float of this shard's range */
    uint64_t count;     /* floats in this shard's range */
    float *w;           /* count weights */
    float *state;       /* nstate floats of optimizer state */
    size_t nstate;      /* floats */
    float *grad;        /* count floats: aligned copy of a gradient */
    int64_t step;       /* gradients applied so far */
    int initialized;    /* 1 once weights were assigned (or loaded) */
    unsigned char *rec; /* the last encoded record (reused) */
    size_t rec_cap;     /* bytes allocated for rec */
} dense_shard_t;

/*
 * Set up the range of shard `shard` of `nshards` in a vector of `total`
 * floats, all zeros, with optimizer opt (copied; OPTIM_ADAM or
 * OPTIM_ADAGRAD). Returns 0, ERR_INVAL (shard out of range, optimizer not
 * valid for dense weights) or ERR_NOMEM. Release with dense_shard_release()
 * (also after a failed init).
 */
int dense_shard_init(dense_shard_t *d, const optim_t *opt, uint64_t total, uint32_t nshards,
                     uint32_t shard, errbuf_t *eb);
void dense_shard_release(dense_shard_t *d);

/* 0 if [offset, offset + count) is exactly this shard's range, else
 * ERR_INVAL naming both ranges. */
int dense_shard_check_range(const dense_shard_t *d, uint64_t offset, uint64_t count, errbuf_t *eb);

/* Store count values (unaligned little-endian float32, as decoded from
 * the wire) as the weights; marks the range initialized. */
void dense_shard_assign(dense_shard_t *d, const void *values);

/* Apply one optimizer step with gradient g (count unaligned
 * little-endian float32). */
void dense_shard_apply(dense_shard_t *d, const void *g);

/*
 * Encode the durable record of d; *rec points into d (valid until the
 * next encode or the release). Returns 0 or ERR_NOMEM.
 */
int dense_shard_encode(dense_shard_t *d, const void **rec, size_t *len, errbuf_t *eb);

/*
 * Replace weights, state, step and initialized with those of a record.
 * Returns 0; ERR_CORRUPT (version or length); ERR_MISMATCH (another
 * optimizer, total or range: "dense range [0, +100) of 300 floats
 * stored, [100, +100) of 300 expected"), with d unchanged on failure.
 * where names the record's origin in messages (the data directory).
 */
int dense_shard_decode(dense_shard_t *d, const void *rec, size_t len, const char *where,
                       errbuf_t *eb);

#endif
