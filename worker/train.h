/*
 * train.h - the training loop: logs -> batches -> pull rows -> pool ->
 * towers forward/backward -> push row and dense gradients, with progress,
 * metrics, and (in process) the saved model directory.
 *
 * The loop is the same in process and on a cluster; only the param_t
 * behind it differs (param_local.h / param_remote.h). What it opens
 * before the first batch, shared with prediction, is a session
 * (session.h).
 *
 * NOTES ON THE DESIGN
 *   Pipelining: batch t+1 is read, its unique keys found and its pull
 *   started before batch t computes; it is finished after batch t pushed.
 *   In process a pull does its work in pull_finish, so training is exactly
 *   sequential; against parameter servers the rows of t+1 travel while t
 *   computes and may miss t's update for shared keys (staleness: one batch
 *   of this worker, plus at most max_inflight unacknowledged pushes).
 *
 *   Resuming: on a cluster, every push of a batch carries the reader
 *   position after it (epoch, file, offset, line, samples; param.h
 *   param_batch_pos) and each shard records it as it applies the push. A
 *   worker restarted with the same rank (same logs, workers and
 *   batch_size) resumes from the least advanced shard's position; the
 *   batches it then replays are applied only on the shards that missed
 *   them, so after a kill -9 at any moment every sample is trained exactly
 *   once (server.h, "Exactly-once samples"). The summary line says how
 *   many samples this run trained and how many were already done.
 *
 * Thread-safety: one loop per process.
 */
#ifndef FUNNEL_TRAIN_H
#define FUNNEL_TRAIN_H

#include <signal.h>

#include "common/err.h"
#include "worker/worker_conf.h"

typedef struct train_args {
    const char *model_dir; /* in process: model directory to write */
    const char *init_from; /* in process: saved model to start from, or NULL */
    char *const *logs;     /* log files or globs */
    int nlogs;
    volatile sig_atomic_t *stop; /* set by a signal: stop cleanly */
} train_args_t;

/* Train per wc. Returns 0, or a negative ERR_* with eb filled. */
int train_run(const worker_conf_t *wc, const train_args_t *a, errbuf_t *eb);

#endif
