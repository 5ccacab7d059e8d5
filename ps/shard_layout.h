/*
 * shard_layout.h - the layout a shard's data directory was made with: the
 * embedding and dense optimizers (whose state every stored row and the
 * dense record carry) and the slots with their dimensions. Recorded once,
 * in the shard's store, when a data directory is first opened; compared at
 * every start, so a shard started with a changed optimizer or slot list
 * refuses at once with what changed, instead of failing every request on
 * old rows later. Checkpoints carry the record (it is a store record), so
 * --init_from is checked the same way.
 *
 * NOTES ON THE DESIGN
 *   Record m:layout: text, one "key value" line each, so it reads in an
 *   error message as it is:
 *     funnel-layout 1
 *     emb_optimizer adagrad
 *     dense_optimizer adam
 *     slots 8
 *     slot 0 user_id 16
 *     ...
 *   Learning rates, admission and expiry are not part of it: they may
 *   change between runs on the same rows.
 *
 * Thread-safety: none needed; called once at start-up.
 */
#ifndef FUNNEL_SHARD_LAYOUT_H
#define FUNNEL_SHARD_LAYOUT_H

#include "common/err.h"
#include "common/model_conf.h"
#include "table/store.h"

#define SHARD_LAYOUT_KEY "m:layout"

/*
 * Compare the layout recorded in st with ms; record it (synced) when st
 * has none (a new data directory, or one from before the record). dir
 * names the data directory in messages. Returns 0, ERR_MISMATCH naming
 * the first difference and what to do, ERR_CORRUPT for an unreadable
 * record, or the store's error.
 */
int shard_layout_check(store_t *st, const model_spec_t *ms, const char *dir, errbuf_t *eb);

#endif
