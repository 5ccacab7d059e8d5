/*
 * shard_policy.h - the admission and expiry a shard's data was last served
 * with. Unlike the layout (shard_layout.h), these may change between runs
 * on the same rows, but a change is rarely meant: a daily job started with
 * another admit_min or expire_days silently changes which keys get rows
 * and which rows are deleted. So they are recorded in the shard's store,
 * compared at every start, and a change is warned about loudly, one
 * warning per changed slot naming both values, then recorded, so that the
 * next start with the same settings is quiet. Checkpoints carry the record
 * (it is a store record), so a day started with --init_from is checked
 * against the day before.
 *
 * NOTES ON THE DESIGN
 *   Record m:policy: text, one line per slot:
 *     funnel-policy 1
 *     slot user_id admit_min 1 expire_days 0
 *     ...
 *   Slots are matched by name; a slot the record does not list (a new
 *   data directory, or one from before the record) is recorded quietly.
 *
 * Thread-safety: none needed; called once at start-up.
 */
#ifndef FUNNEL_SHARD_POLICY_H
#define FUNNEL_SHARD_POLICY_H

#include "common/err.h"
#include "common/model_conf.h"
#include "table/store.h"

#define SHARD_POLICY_KEY "m:policy"

/*
 * Compare the admission and expiry recorded in st with ms's, warn (log)
 * about every slot whose values changed, and record ms's (synced) if
 * anything differs or nothing was recorded. dir names the data directory
 * in messages. Returns the number of slots whose values changed (0: none),
 * or the store's error.
 */
int shard_policy_check(store_t *st, const model_spec_t *ms, const char *dir, errbuf_t *eb);

#endif
