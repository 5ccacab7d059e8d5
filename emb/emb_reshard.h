/*
 * emb_reshard.h - `funnel-emb reshard`: turn a checkpoint of N shards
 * into one of M shards that funnel-ps starts from (--init_from), with the
 * same rows, dense weights and optimizer state, so a cluster can grow or
 * shrink between runs.
 *
 * NOTES ON THE DESIGN
 *   Rows and expiry tombstones go to route_shard(key, M) (common/route.h,
 *   what workers use), with their optimizer state, update counts and days
 *   as stored. The dense vector is put together from the N ranges and cut
 *   into route_dense_range(total, M, j), weights and every state plane
 *   alike; each new range gets the largest step of the old ones (equal
 *   in a checkpoint taken between batches: every batch steps every range).
 *   Per store records:
 *     m:emb_rows   recounted for each new store;
 *     m:emb_sketch the admission count-min sketches added counter by
 *                  counter (saturating): a key's sightings were counted on
 *                  one old shard, so the sum over-counts only other keys,
 *                  which a count-min sketch may do, and never under-counts;
 *     m:day        the latest;
 *     m:seq        per sender, the largest sequence number (a restarted
 *                  worker continues after it on every new shard);
 *     m:progress   per rank, the least advanced position (what a resumed
 *                  worker would start from on the old cluster), only for
 *                  ranks every old shard recorded; a batch half applied
 *                  is forgotten. Checkpoints between jobs (the daily
 *                  refresh's) have one position per rank on every shard;
 *     anything else (m:layout, ...) must be byte-identical on every old
 *     shard and is copied; a record that differs is refused by name,
 *     since merging it is unknown.
 *   The new checkpoint's META is the old one with shards = M, written
 *   last (table/ckpt_io.h); nothing existing is overwritten.
 *
 * Thread-safety: none needed; a command-line tool.
 */
#ifndef FUNNEL_EMB_RESHARD_H
#define FUNNEL_EMB_RESHARD_H

#include <stdio.h>

#include "common/err.h"

/* What a reshard did. */
typedef struct emb_reshard_stats {
    int from_shards, to_shards;
    unsigned long long rows;       /* rows moved */
    unsigned long long tombstones; /* expiry tombstones moved */
    unsigned long long dense;      /* floats of the dense vector */
} emb_reshard_stats_t;

/*
 * Write checkpoint out with `shards` shards from checkpoint from.
 * Returns 0 with *st filled, or ERR_* (out is then removed). Warnings
 * (differing positions or steps) go to the log.
 */
int emb_reshard_run(const char *from, int shards, const char *out, emb_reshard_stats_t *st,
                    errbuf_t *eb);

/*
 * The command line `funnel-emb reshard --from CKPT --shards M --out DIR
 * [--json]` (argv[0] is "reshard"): prints a summary to out, errors to
 * err. Returns the process exit status (0, 1 failed, 2 usage).
 */
int emb_reshard_cli(int argc, char **argv, FILE *out, FILE *err);

#endif
