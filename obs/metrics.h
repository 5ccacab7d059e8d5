/*
 * metrics.h - a registry of live metrics in the Prometheus text exposition
 * format (version 0.0.4): counters, gauges and histograms, each series with
 * its own labels, rendered as text for an HTTP thread to serve
 * (metrics_http.h). It knows no program: ps/ps_metrics.c and
 * worker/train_obs.c decide the names.
 *
 * NOTES ON THE DESIGN
 *   Two threads, no lock. The owning loop (the shard's request loop, the
 *   training loop) registers every series before the registry is shared,
 *   then publishes a whole snapshot now and then (obs_publish_begin, one
 *   obs_set / obs_hist_set per series, obs_publish_end). The HTTP thread
 *   renders with obs_render(). Values are 64-bit atomics behind a sequence
 *   counter (a seqlock): the publisher never waits, and the reader copies
 *   the values again when a publish ran meanwhile, so one scrape shows one
 *   snapshot (a histogram's buckets, sum and count agree).
 *
 *   Counters must be published monotonic (Prometheus treats a decrease as
 *   a restart); the registry does not check it. Values are doubles, exact
 *   for counts below 2^53.
 *
 *   Names follow Prometheus' rules ([a-zA-Z_:][a-zA-Z0-9_:]*, label names
 *   without ':'; checked when added); label values may hold any bytes and
 *   are escaped when rendered, so a slot named u"id stays one label.
 *
 * Thread-safety: obs_*_add and the publish calls from one thread, before
 * and after sharing; obs_render from any number of other threads.
 */
#ifndef FUNNEL_OBS_METRICS_H
#define FUNNEL_OBS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef enum { OBS_COUNTER, OBS_GAUGE, OBS_HISTOGRAM } obs_kind_t;

typedef struct obs_reg obs_reg_t;

#define OBS_MAX_LABELS 4  /* label pairs on one series */
#define OBS_MAX_BOUNDS 32 /* histogram bucket bounds, +Inf not counted */
#define OBS_NAME_MAX 128  /* bytes of a metric or label name */
#define OBS_VALUE_MAX 256 /* bytes of a label value */

/* A new, empty registry. Returns 0 or ERR_NOMEM. Caller owns it; release
 * with obs_reg_destroy() after the HTTP server using it stopped. */
int obs_reg_new(obs_reg_t **out, errbuf_t *eb);
void obs_reg_destroy(obs_reg_t **r);

/*
 * Add a counter or gauge series of the family `name` (help and kind are
 * the family's: a second series of the family must have the same kind).
 * labels: NULL, or name, value, name, value, ..., NULL (at most
 * OBS_MAX_LABELS pairs). Its value is 0 until published.
 * Returns the series id (>= 0), or ERR_INVAL (bad name, kind differs,
 * too many labels) / ERR_NOMEM with eb filled.
 */
int obs_series_add(obs_reg_t *r, obs_kind_t kind, const char *name, const char *help,
                   const char *const *labels, errbuf_t *eb);

/* Add a histogram series: bounds are the buckets' upper bounds, strictly
 * increasing, nbounds <= OBS_MAX_BOUNDS (+Inf is implied). Returns its id
 * or an error as obs_series_add(). */
int obs_hist_add(obs_reg_t *r, const char *name, const char *help, const char *const *labels,
                 const double *bounds, int nbounds, errbuf_t *eb);

/* Publish one snapshot: begin, any number of sets, end. Only the owning
 * thread publishes. An id the registry did not return is ignored. */
void obs_publish_begin(obs_reg_t *r);
void obs_set(obs_reg_t *r, int id, double value);
/* counts: per bucket, not cumulative, nbounds + 1 of them (the last: above
 * every bound); sum: of the observed values. */
void obs_hist_set(obs_reg_t *r, int id, const uint64_t *counts, double sum);
void obs_publish_end(obs_reg_t *r);

/*
 * Render the last published snapshot as Prometheus text (HELP and TYPE
 * once per family, then its series). *text is a NUL-terminated heap
 * buffer of *len bytes the caller frees. Returns 0, ERR_NOMEM, or
 * ERR_BUSY if a publish kept overlapping the copy (the caller retries).
 */
int obs_render(const obs_reg_t *r, char **text, size_t *len);

/* The version this build was made from (git describe, or "unknown"), for
 * the funnel_*_build_info series. */
const char *obs_version(void);

/* 1 if name is a valid metric name (label: no ':' allowed). */
int obs_name_ok(const char *name, int label);

#endif
