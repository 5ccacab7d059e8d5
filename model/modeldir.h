/*
 * modeldir.h - the saved model directory written by in-process training
 * and read by predict and `train --init_from`.
 *
 *   DIR/META        what the model is (meta.h): type, slots, dims, towers,
 *                   optimizers; checked against the configuration on load
 *   DIR/dense.bin   tower weights + dense optimizer state (model.h format)
 *   DIR/shard-0/    embedding rows + their optimizer state: the RocksDB
 *                   store of the embedding table, the same record format a
 *                   parameter server keeps (a model directory is a
 *                   one-shard checkpoint)
 *
 * NOTES ON THE DESIGN
 *   Saving is atomic: training writes into DIR.tmp, and only a complete
 *   directory (every file fsynced) is renamed over DIR; an old DIR is
 *   moved aside first and removed after. A crash leaves either the old
 *   model or the new one, plus a stale DIR.tmp that the next run removes.
 *
 * Thread-safety: none needed (called from one thread).
 */
#ifndef FUNNEL_MODELDIR_H
#define FUNNEL_MODELDIR_H

#include <stddef.h>

#include "common/err.h"
#include "model/model.h"

#define MODELDIR_DENSE "dense.bin"
#define MODELDIR_ROWS "shard-0"

/* Prepare DIR.tmp (removing a stale one); its path into tmp[tmplen]. If
 * init_from is not NULL, copy its rows store into the new directory.
 * Returns 0, ERR_INVAL for a path too long, or ERR_IO. */
int modeldir_begin(const char *dir, const char *init_from, char *tmp, size_t tmplen, errbuf_t *eb);

/* Write dense.bin and META into tmp (each atomically, tmp fsynced), then
 * install tmp as dir (modeldir_install). format: the log format trained
 * on, recorded in META (NULL: none). Returns 0 or ERR_*. */
int modeldir_commit(const char *dir, const char *tmp, const model_t *m, const char *format,
                    errbuf_t *eb);

/* Check dir's META against m's spec and load its dense weights into m. */
int modeldir_load_dense(const char *dir, model_t *m, errbuf_t *eb);

/* Path of the rows store of dir into buf. */
void modeldir_rows_path(const char *dir, char *buf, size_t len);

/* Put the complete directory tmp in place of dir: an old dir is moved to
 * dir.old first and removed after, so a crash leaves one of them whole;
 * dir's parent is fsynced so the renames are durable. Returns 0, ERR_INVAL
 * for a path too long, or ERR_IO. */
int modeldir_install(const char *tmp, const char *dir, errbuf_t *eb);

#endif
