/*
 * session.h - what a training or prediction run opens before its first
 * batch, in one place: the model spec from the [model] config, the model
 * (dense towers) with its compute threads, the parameter access (in
 * process on a model directory, or the cluster in [cluster] ps), the log
 * reader, and the per-batch buffers (batches, pools, pooled input).
 *
 * It does not run batches (train.c, predict.c) and writes nothing but,
 * for in-process training, the model directory being written
 * (modeldir.h): created by session_init(), put in place by
 * session_commit_model().
 *
 * Thread-safety: a session belongs to one thread.
 */
#ifndef FUNNEL_SESSION_H
#define FUNNEL_SESSION_H

#include <signal.h>
#include <stddef.h>

#include "common/batch.h"
#include "common/dirs.h"
#include "common/err.h"
#include "common/keydict.h"
#include "data/reader.h"
#include "data/slotuse.h"
#include "model/model.h"
#include "worker/param.h"
#include "worker/pool.h"
#include "worker/worker_conf.h"

#define SESSION_DEPTH 2 /* batches in flight at most (training pipelines two) */

typedef enum session_mode {
    /* This rank's share of the logs, two batches in flight; in process, a
     * new model directory is written (from init_from, if given). */
    SESSION_TRAIN,
    /* All of the logs, one batch; nothing is created or written. */
    SESSION_PREDICT,
} session_mode_t;

typedef struct session_opts {
    session_mode_t mode;
    size_t batch_size; /* rows per batch */
    char *const *logs; /* log files or globs */
    int nlogs;
    const char *model_dir;       /* in process: the model directory to write (train)
                                    or read (predict); NULL: the cluster in wc->ps */
    const char *init_from;       /* train in process: saved model to start from, or NULL */
    volatile sig_atomic_t *stop; /* cluster: interrupts waits for the shards */
} session_opts_t;

typedef struct session {
    const worker_conf_t *wc;
    session_opts_t o;
    model_spec_t ms;
    model_t *model;
    param_t *param;
    reader_t *reader;
    batch_t batch[SESSION_DEPTH]; /* the first `depth` are initialized */
    pool_t pool[SESSION_DEPTH];   /* one per batch */
    int depth;                    /* batches: 2 (train) or 1 (predict) */
    float *x;                     /* (B, D) pooled input of one batch */
    char tmpdir[DIRS_PATH_MAX];   /* train in process: the model directory being written */
    int cluster;                  /* 1: parameters on the cluster in wc->ps */
    keydict_t *keys;              /* train in process with key_dict: the tokens read */
    slotuse_t *slots;             /* train with slot_check_rows: the slot check (slotuse.h) */
} session_t;

/*
 * Open everything of a run per wc and o, in this order: model spec, model
 * and its threads, batches and pools, the reader on o->logs, then the
 * parameters (a failing log is found before a model directory is begun or
 * a cluster is contacted). On a cluster the model's dense weights are the
 * initial ones (model_new(seed)); pull the cluster's with param_pull_dense.
 * wc and o->logs must outlive s. Returns 0 or ERR_* with eb filled; either
 * way release s with session_release().
 */
int session_init(session_t *s, const worker_conf_t *wc, const session_opts_t *o, errbuf_t *eb);

/* Open the reader again at the start of the logs (the next epoch).
 * Returns 0 or ERR_*. */
int session_reopen_reader(session_t *s, errbuf_t *eb);

/*
 * Train in process: write every changed row, close the parameters (the
 * rows store) and put the model directory being written in place of
 * o->model_dir with the model's dense weights (modeldir_commit); then,
 * with key_dict set, write the key dictionary of the tokens read.
 * Returns 0 or ERR_*. Call after the last param_sync().
 */
int session_commit_model(session_t *s, errbuf_t *eb);

/* Train in process: drop the model directory being written (DIR.tmp, made
 * by this run) so nothing is saved; a no-op in a cluster. */
void session_discard_model(session_t *s);

/* Free everything s holds, in reverse order; accepts a zeroed or partly
 * initialized s and leaves it zeroed. A model directory being written is
 * left for the next run to remove (modeldir_begin). */
void session_release(session_t *s);

#endif
