/*
 * param.h - how the training loop reaches the model's parameters: the
 * embedding rows of a batch's keys and the dense tower weights.
 *
 * Two implementations sit behind this one interface so that the training
 * loop never changes: an in-process one (param_local.c: the same embedding
 * table code the parameter server runs, in this process) and a remote one
 * (the parameter-server client: keys routed to shards over ZeroMQ).
 *
 * NOTES ON THE DESIGN
 *   A pull is split in two - pull_start() sends (or records) the request,
 *   pull_finish() delivers the rows - so a remote implementation can fetch
 *   the next batch's rows while this batch computes. Pushes return as soon
 *   as the update is queued; param_sync() waits until every queued update
 *   is applied (end of an epoch, before a save).
 *
 *   Keys in a request are unique per slot. Rows come back slot by slot,
 *   n[s] * dim[s] floats each, in key order.
 *
 * Thread-safety: a param_t is used by one thread at a time.
 */
#ifndef FUNNEL_PARAM_H
#define FUNNEL_PARAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "common/model_conf.h"

typedef struct param_req {
    int nslots;
    const uint64_t *keys[MODEL_MAX_SLOTS]; /* unique keys of slot s */
    size_t n[MODEL_MAX_SLOTS];             /* keys in slot s */
} param_req_t;

/* What a pull does with a key that has no row. */
enum {
    PARAM_PULL_TRAIN = 0,   /* create the row (subject to admission) */
    PARAM_PULL_PREDICT = 1, /* return zeros, create nothing */
};

/* A worker's reader position, kept by the parameter servers so that a
 * restarted worker of the same rank resumes (in process: not kept). */
typedef struct param_progress {
    int found;        /* 1 if a position was recorded */
    uint32_t epoch;   /* passes completed */
    uint32_t file;    /* reader file index */
    uint64_t offset;  /* bytes into that file (uncompressed) */
    uint64_t line;    /* lines before offset */
    uint64_t samples; /* rows trained by this rank so far */
    uint64_t ahead;   /* progress_get: samples of the furthest shard's position (>= samples):
                         batches up to it are resent only to the shards that missed them */
} param_progress_t;

typedef struct param param_t;

typedef struct param_ops {
    int (*pull_start)(param_t *p, const param_req_t *req, int mode, errbuf_t *eb);
    int (*pull_finish)(param_t *p, float *const *rows, errbuf_t *eb);
    int (*push)(param_t *p, const param_req_t *req, const float *const *grads, errbuf_t *eb);
    int (*pull_dense)(param_t *p, float *w, size_t n, errbuf_t *eb);
    int (*push_dense)(param_t *p, const float *g, size_t n, errbuf_t *eb);
    int (*sync)(param_t *p, errbuf_t *eb);
    int (*progress_set)(param_t *p, const param_progress_t *pr, errbuf_t *eb);
    int (*progress_get)(param_t *p, param_progress_t *pr, errbuf_t *eb);
    void (*destroy)(param_t *p);
    void (*batch_pos)(param_t *p, const param_progress_t *pr);
} param_ops_t;

/* Every implementation starts with this header. */
struct param {
    const param_ops_t *ops;
};

/*
 * Start a pull of req's rows. req (and the key arrays it points to) must
 * stay valid until param_pull_finish(). At most one pull is outstanding.
 */
static inline int param_pull_start(param_t *p, const param_req_t *req, int mode, errbuf_t *eb)
{
    return p->ops->pull_start(p, req, mode, eb);
}

/* Deliver the started pull's rows into rows[s] (n[s] * dim[s] floats). */
static inline int param_pull_finish(param_t *p, float *const *rows, errbuf_t *eb)
{
    return p->ops->pull_finish(p, rows, eb);
}

/* Queue the gradients of req's rows (grads[s]: n[s] * dim[s] floats). The
 * implementation copies what it needs before returning. */
static inline int param_push(param_t *p, const param_req_t *req, const float *const *grads,
                             errbuf_t *eb)
{
    return p->ops->push(p, req, grads, eb);
}

/* Copy the current dense weights (n floats) into w. */
static inline int param_pull_dense(param_t *p, float *w, size_t n, errbuf_t *eb)
{
    return p->ops->pull_dense(p, w, n, eb);
}

/* Apply the dense gradient g (n floats) with the dense optimizer. */
static inline int param_push_dense(param_t *p, const float *g, size_t n, errbuf_t *eb)
{
    return p->ops->push_dense(p, g, n, eb);
}

/* Wait until every queued update has been applied. */
static inline int param_sync(param_t *p, errbuf_t *eb)
{
    return p->ops->sync(p, eb);
}

/* Record this worker's position (remote: on the parameter servers). */
static inline int param_progress_set(param_t *p, const param_progress_t *pr, errbuf_t *eb)
{
    return p->ops->progress_set ? p->ops->progress_set(p, pr, eb) : 0;
}

/* The last recorded position of this worker's rank (pr->found = 0: none). */
static inline int param_progress_get(param_t *p, param_progress_t *pr, errbuf_t *eb)
{
    memset(pr, 0, sizeof(*pr));
    return p->ops->progress_get ? p->ops->progress_get(p, pr, eb) : 0;
}

/*
 * The pushes that follow, up to and including the next param_push_dense(),
 * are those of the training batch after which this worker's position is
 * pr (pr->samples: trained with it). Remote: they carry it, and each shard
 * records it as it applies them, so a restarted worker resumes exactly
 * there (server.h, "Exactly-once samples"). In process: nothing to keep.
 */
static inline void param_batch_pos(param_t *p, const param_progress_t *pr)
{
    if (p->ops->batch_pos)
        p->ops->batch_pos(p, pr);
}

/* Release the implementation; accepts NULL and clears the pointer. */
static inline void param_destroy(param_t **p)
{
    if (p && *p) {
        (*p)->ops->destroy(*p);
        *p = NULL;
    }
}

#endif
