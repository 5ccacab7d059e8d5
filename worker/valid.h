/*
 * valid.h - held-out evaluation during training: every valid_every
 * samples, predict the held-out logs (--valid LOG[,LOG]) with the model
 * as it stands and write AUC and log-loss per task into the metrics file
 * (an "valid" record, progress.h).
 *
 * The scoring is eval's (eval_compute(): the same tasks, masks, exact AUC
 * and clamped log-loss as `funnel-worker eval`); this module only predicts
 * the rows and lines them up. It does not train and changes no parameter:
 * rows are pulled with PARAM_PULL_PREDICT (a missing key reads as zeros and
 * creates nothing), so a held-out log never adds rows to a table.
 *
 * NOTES ON THE DESIGN
 *   The held-out logs are read whole by every worker that evaluates (no
 *   split); on a cluster only rank 0 evaluates (valid_wanted()), so W
 *   workers do not repeat the same work. Predictions and labels are kept
 *   in memory for the AUC: about 20 bytes per held-out row, so keep the
 *   held-out log to what a minute of training would read.
 *
 *   It must run when the caller has no pull outstanding (param.h: one at a
 *   time); the model's dense weights are used as they are.
 *
 * Thread-safety: one valid_t per training loop, on its thread.
 */
#ifndef FUNNEL_VALID_H
#define FUNNEL_VALID_H

#include "common/err.h"
#include "model/model.h"
#include "worker/param.h"
#include "worker/progress.h"
#include "worker/worker_conf.h"

typedef struct valid valid_t;

/* 1 if this worker evaluates held-out logs: valid is set and, on a
 * cluster, this is rank 0. */
int valid_wanted(const worker_conf_t *wc);

/*
 * Get ready to evaluate wc->valid (comma-separated logs or globs) for the
 * model ms, batch_rows rows at a time (at most the model's max batch).
 * Checks that the logs can be read. Returns 0 and *out (release with
 * valid_destroy()), or ERR_* naming the option and the file.
 */
int valid_open(valid_t **out, const worker_conf_t *wc, const model_spec_t *ms, size_t batch_rows,
               errbuf_t *eb);

/* 1 when `samples` (this rank's, all runs) has reached the next multiple
 * of valid_every since the last evaluation. */
int valid_due(const valid_t *v, uint64_t samples);

/*
 * Evaluate now: predict every held-out row with m and param, score it with
 * eval_compute(), write a "valid" record to p's metrics file and one log
 * line. Returns 0 or ERR_* (eb filled).
 */
int valid_run(valid_t *v, model_t *m, param_t *param, progress_t *p, errbuf_t *eb);

/* Free; accepts NULL and clears the pointer. */
void valid_destroy(valid_t **v);

#endif
