/*
 * train_obs.h - a training worker's live metrics on [train]
 * metrics_listen: samples and batches trained by this run, the epoch,
 * the loss of every task, the time per batch, served in the Prometheus
 * text format (obs/metrics_http.h) while `funnel-worker train` runs.
 *
 * NOTES ON THE DESIGN
 *   The training loop calls train_obs_batch() after every batch; it only
 *   adds to plain counters, and every TRAIN_OBS_PERIOD seconds copies them
 *   into the registry's snapshot, which the HTTP thread alone reads. A
 *   scrape never waits for a batch and a batch never waits for a scrape.
 *
 *   The loss gauges hold the sample-weighted mean loss of the batches
 *   since the previous snapshot (a single batch's loss is noise); the
 *   counters count what this process trained, so a resumed run starts at
 *   0 as Prometheus expects of a restarted process (samples a resume
 *   skipped are funnel_worker_samples_skipped).
 *
 * Thread-safety: everything from the training loop's thread.
 */
#ifndef FUNNEL_TRAIN_OBS_H
#define FUNNEL_TRAIN_OBS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/worker_conf.h"

#define TRAIN_OBS_PERIOD 0.25 /* s between snapshots */

typedef struct train_obs train_obs_t;

/*
 * Register the worker's series (one loss gauge per name in losses) and
 * serve them on wc->metrics_listen. With metrics_listen empty, *out is
 * NULL and the other calls do nothing. skipped: samples a resume found
 * already trained. Returns 0, or ERR_CONFIG / ERR_NET (the address is
 * refused or taken: the message names --metrics_listen) with eb filled.
 * Caller owns *out; release with train_obs_close().
 */
int train_obs_open(train_obs_t **out, const worker_conf_t *wc, const char *const *losses, int nloss,
                   uint64_t skipped, errbuf_t *eb);

/* One batch of n samples trained in epoch with these losses (nloss of
 * them, as opened). Publishes a snapshot when one is due. */
void train_obs_batch(train_obs_t *o, size_t n, const double *loss, int epoch);

/* Publish what was counted now (the end of a run), stop serving, free;
 * accepts NULL. */
void train_obs_close(train_obs_t **o);

#endif
