/*
 * ps_metrics.h - a shard's live metrics: maps the counters STATS reports
 * (server.c) to Prometheus names (funnel_ps_pushes_total,
 * funnel_ps_rows_resident, ...), times every request into a latency
 * histogram per request type, and serves them on [ps] metrics_listen
 * (obs/metrics_http.h).
 *
 * NOTES ON THE DESIGN
 *   The shard's loop stays the only thread touching the table. It hands
 *   its STATS entries to ps_metrics_put() when ps_metrics_due() says
 *   so (every PS_METRICS_PERIOD seconds), which copies them into the
 *   registry's snapshot; the HTTP thread only reads that snapshot. So a
 *   scrape never waits for the loop and the loop never waits for a
 *   scrape, and every value was at some moment what `ctl stats` answers
 *   (at most one period old).
 *
 *   Names: each STATS counter becomes funnel_ps_<name>_total and each
 *   level a gauge (table in ps_metrics.c); per-slot rows, requests per
 *   type and errors per code become one family with a label (slot, type,
 *   code). Per-sender seq_<id> entries are not exported (one series per
 *   worker that ever pushed is unbounded).
 *
 * Thread-safety: everything from the shard's loop thread.
 */
#ifndef FUNNEL_PS_METRICS_H
#define FUNNEL_PS_METRICS_H

#include <stdint.h>

#include "common/err.h"
#include "common/ps_conf.h"

#define PS_METRICS_PERIOD 0.25 /* s between snapshots */

typedef struct ps_metrics ps_metrics_t;

/*
 * Register the shard's series (its slots from ms) and start serving on
 * pc->metrics_listen. With metrics_listen empty, *out is NULL and every
 * other call is a no-op. Returns 0, or ERR_CONFIG / ERR_NET (address
 * refused or port taken: the message names --metrics_listen) with eb
 * filled. Caller owns *out; release with ps_metrics_close().
 */
int ps_metrics_open(ps_metrics_t **out, const ps_conf_t *pc, const model_spec_t *ms, errbuf_t *eb);

/* 1 when a snapshot is due at monotonic time now (s); 0 when not or pm
 * is NULL. */
int ps_metrics_due(const ps_metrics_t *pm, double now);

/* Publish one snapshot: begin, then put every STATS entry (name, value)
 * as counted now, then end. Names not exported are skipped; an exported
 * one not put is 0 (STATS lists per-type and per-code counters only once
 * nonzero). */
void ps_metrics_begin(ps_metrics_t *pm);
void ps_metrics_put(ps_metrics_t *pm, const char *name, uint64_t value);
void ps_metrics_end(ps_metrics_t *pm, double now);

/* Count one request of message type `type` that took `seconds` (decode
 * to reply queued). */
void ps_metrics_observe(ps_metrics_t *pm, int type, double seconds);

/* Stop serving and free; accepts NULL. */
void ps_metrics_close(ps_metrics_t **pm);

#endif
