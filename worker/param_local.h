/*
 * param_local.h - parameter access in this process (the in-process
 * implementation of param.h): embedding rows live in the same embedding
 * table the parameter server runs (ps/emb_table.h), on a RocksDB store in
 * a model directory; the dense weights are the model's own block, updated
 * by the model's dense optimizer.
 *
 * Thread-safety: one thread.
 */
#ifndef FUNNEL_PARAM_LOCAL_H
#define FUNNEL_PARAM_LOCAL_H

#include <stdint.h>

#include "model/model.h"
#include "worker/param.h"

/*
 * Open the rows store in directory store_dir (created if missing unless
 * readonly) for model m (which must outlive the param). readonly: no row
 * is created or written (prediction). mem_limit: bytes of resident rows
 * (0: unlimited). Returns 0 or ERR_*.
 */
int param_local_open(param_t **out, model_t *m, const char *store_dir, int readonly,
                     uint64_t mem_limit, errbuf_t *eb);

/*
 * Open a saved model read-only for prediction: a model directory (META,
 * dense.bin, shard-0) or a checkpoint of any number of shards (META,
 * shard-0 .. shard-N-1, each with its rows and its range of the dense
 * weights). META is checked against m's spec (ERR_MISMATCH naming the
 * difference), the dense weights are loaded into m, and the rows of every
 * shard are read as one table. Nothing is created or written. Returns 0
 * or ERR_* naming the directory.
 */
int param_local_open_saved(param_t **out, model_t *m, const char *dir, errbuf_t *eb);

/* Write every changed row to the store (before the directory is saved). */
int param_local_flush(param_t *p, errbuf_t *eb);

#endif
