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
} ctl_args_t;

int ctl_run(const worker_conf_t *wc, const ctl_args_t *a, FILE *out, errbuf_t *eb);

#endif
