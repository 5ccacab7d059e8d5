/*
 * guard.h - a worker's check of a trained batch before any of it leaves:
 * its losses, the row gradients of every slot and the dense gradient must
 * be finite, or the run stops with a message naming the batch (its number
 * and the lines of the input it came from) and what to lower.
 *
 * A diverging worker thus stops before it poisons a shard or a model
 * directory (the shards refuse non-finite pushes too, ps/server.c; this is
 * the check that gives the operator a useful message).
 *
 * Thread-safety: pure functions over caller-owned data.
 */
#ifndef FUNNEL_GUARD_H
#define FUNNEL_GUARD_H

#include <stddef.h>

#include "common/err.h"
#include "model/model.h"
#include "worker/param.h"

/* Where a batch came from, for the message. */
typedef struct guard_where {
    unsigned long long batch; /* 1 for the first batch of the run */
    const char *file;         /* input file, or NULL if unknown */
    unsigned long long line0; /* lines of the file before the batch (0: unknown, see below) */
    unsigned long long line1; /* lines of the file after the batch; 0: unknown */
} guard_where_t;

/*
 * Check the batch just trained by model: nloss losses, grads[s] (req->n[s]
 * rows of ms->slot[s].dim floats) and the n dense gradients dense_g.
 * Returns 0, or ERR_REJECTED with a message naming the batch, the first
 * non-finite value and the learning-rate keys to lower.
 */
int guard_check_batch(const model_t *model, const model_spec_t *ms, const double *loss,
                      const param_req_t *req, const float *const *grads, const float *dense_g,
                      size_t n, const guard_where_t *w, errbuf_t *eb);

#endif
