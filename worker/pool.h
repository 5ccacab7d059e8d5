/*
 * pool.h - the shared embedding layer on the worker side: find each slot's
 * unique keys in a batch, and turn pulled rows into the towers' input by
 * weighted sum pooling (and the input gradient back into row gradients).
 *
 * NOTES ON THE DESIGN
 *   For slot s, the batch's tokens map to unique keys through tok[s][t]
 *   (index into ukeys[s]); rows[s] holds nu[s] * dim[s] floats pulled for
 *   those keys, grads[s] the same shape for the push. The towers' input row
 *   i is the concatenation over slots of sum_t weight_t * rows[s][tok_t],
 *   at column offset col[s]; an absent slot pools to zeros.
 *   Deduplication uses an open-addressing table stamped with a generation
 *   counter, so it is never cleared between batches. All arrays grow to
 *   the largest batch seen and are reused.
 *
 * Thread-safety: one pool per thread; two pools let a trainer prepare the
 * next batch while this one computes.
 */
#ifndef FUNNEL_POOL_H
#define FUNNEL_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "common/batch.h"
#include "common/model_conf.h"
#include "worker/param.h"

typedef struct pool_slot {
    uint64_t *ukeys; /* nu unique keys */
    uint32_t *tok;   /* per token of the batch: index into ukeys */
    float *rows;     /* nu * dim pulled rows */
    float *grads;    /* nu * dim row gradients */
    size_t nu;       /* unique keys */
    size_t cap_u;    /* unique keys allocated */
    size_t cap_t;    /* tokens allocated */
    uint64_t *hkeys; /* dedup table: keys */
    uint32_t *hval;  /* dedup table: index into ukeys */
    uint32_t *hgen;  /* dedup table: generation stamp */
    size_t hcap;     /* dedup table size (power of two) */
} pool_slot_t;

typedef struct pool {
    const model_spec_t *ms;
    int col[MODEL_MAX_SLOTS]; /* column offset of slot s in the input */
    pool_slot_t slot[MODEL_MAX_SLOTS];
    uint32_t gen;                  /* current dedup generation */
    param_req_t req;               /* unique keys, ready for param_pull_start */
    float *rows[MODEL_MAX_SLOTS];  /* views for param_pull_finish */
    float *grads[MODEL_MAX_SLOTS]; /* views for param_push */
} pool_t;

/* Set up an empty pool for ms (which must outlive it). 0 or ERR_NOMEM. */
int pool_init(pool_t *p, const model_spec_t *ms);
void pool_release(pool_t *p);

/* Collect the batch's unique keys per slot into p->req and size the row
 * buffers. Returns 0 or ERR_NOMEM. */
int pool_prepare(pool_t *p, const batch_t *b);

/* x (B, D) = per slot, weighted sum of the batch tokens' rows. */
void pool_forward(const pool_t *p, const batch_t *b, float *x);

/* grads[s] (nu, dim) = sum over tokens of weight * dx (B, D) slice. */
void pool_backward(pool_t *p, const batch_t *b, const float *dx);

#endif
