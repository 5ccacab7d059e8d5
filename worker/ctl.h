/*
 * ctl.h - `funnel-worker ctl`: operate a running cluster.
 *
 *   ctl stats                      every shard's counters
 *   ctl flush                      write every shard's dirty rows now
 *   ctl checkpoint --name NAME --day D
 *                                  a checkpoint of the whole job: each shard
 *                                  flushes and writes a RocksDB checkpoint
 *                                  of its store (rows with optimizer state,
 *                                  its dense range, push sequence numbers,
 *                                  worker positions) into ROOT/NAME/shard-I
 *                                  under its own checkpoint_root ROOT (a
 *                                  client names, never gives a path); then
 *                                  ROOT/NAME/META describes the layout,
 *                                  shard count, day and config digest. META
 *                                  comes last: a directory without it is
 *                                  incomplete and refused by every reader.
 *                                  Nothing existing is overwritten: a used
 *                                  NAME is refused.
 *   ctl begin-day --day D [--expire]
 *                                  set the day stamped on rows; with
 *                                  --expire, delete rows unseen for longer
 *                                  than their slot's expire_days
 *   ctl shutdown                   flush and stop every shard
 *
 * Training is not paused: each shard answers the checkpoint request between
 * two other requests, so training waits at most for that shard's flush.
 *
 * Thread-safety: one call per process.
 */
#ifndef FUNNEL_CTL_H
#define FUNNEL_CTL_H

#include <stdio.h>

#include "common/err.h"
#include "worker/worker_conf.h"

typedef struct ctl_args {
    const char *cmd;  /* stats, flush, checkpoint, begin-day, shutdown */
    const char *out;  /* refused: checkpoints are named, not placed (--name) */
    const char *name; /* checkpoint name under the shards' checkpoint_root */
    int day;          /* -1: none */
    int expire;       /* begin-day: expire stale rows */
    int json;
    int wait_s; /* s: give up on a shard that does not answer (0: CTL_WAIT_S) */
} ctl_args_t;

#define CTL_WAIT_S 5 /* s */

/*
 * Run a->cmd against the cluster in wc->ps, printing to out. Every command
 * first asks each shard for its counters and gives up on one silent for
 * a->wait_s (so a dead cluster is reported within seconds, not after
 * deadline_s); flush, checkpoint, begin-day and shutdown then wait up to
 * deadline_s for the shards to do the work. Returns 0 or ERR_* with eb
 * filled (ERR_TIMEOUT: a shard did not answer).
 */
int ctl_run(const worker_conf_t *wc, const ctl_args_t *a, FILE *out, errbuf_t *eb);

#endif
