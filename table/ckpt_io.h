/*
 * ckpt_io.h - a cluster checkpoint as files: reading the N shard stores
 * of CKPT (with CKPT/META) one by one, writing a new checkpoint of M
 * shard stores that funnel-ps can start from (--init_from), and the dense
 * record every shard store holds as a copy the caller owns (decoded by
 * ckpt_read_dense_decode, which owns the record's layout: see
 * table/ckpt_read.h; the stores are opened by ckpt_read_open_shards).
 *
 * Not here: what goes where when the shard count changes
 * (emb/emb_reshard.c), the shard's own handling of its records.
 *
 * NOTES ON THE DESIGN
 *   A checkpoint is CKPT/shard-<i> (a RocksDB store, i = 0..shards-1) and
 *   CKPT/META (common/meta.h), written last: a directory without META is
 *   incomplete and refused. Reading opens each store read-only and checked
 *   (emb_store_open: seal, log, row count), so a damaged checkpoint is
 *   refused by name, never half read.
 *
 *   Writing makes OUT (it must not exist) and OUT/shard-<j> with fresh
 *   stores; commit seals each store into synced table files, closes it
 *   and writes OUT/META last. A failed or abandoned write removes OUT,
 *   which it made and only it wrote into.
 *
 *   Dense record: its layout is in table/ckpt_read.h (key
 *   CKPT_READ_DENSE_KEY). Decoding here also checks that the range lies
 *   in the vector and that the state is whole planes: the state is
 *   nstate / count planes of count floats each (Adam: m then
 *   v; Adagrad: one accumulator), each plane indexed like w.
 *
 * Thread-safety: none; one thread owns a ckpt_in_t or ckpt_out_t.
 */
#ifndef FUNNEL_CKPT_IO_H
#define FUNNEL_CKPT_IO_H

#include <stddef.h>
#include <stdint.h>

#include "common/dirs.h"
#include "common/err.h"
#include "common/meta.h"
#include "table/store.h"

/* A checkpoint opened for reading. */
typedef struct ckpt_in {
    char dir[DIRS_PATH_MAX]; /* CKPT, for messages */
    meta_t meta;             /* CKPT/META */
    int nshards;             /* meta.shards stores in shard[] */
    store_t **shard;         /* read-only, checked */
} ckpt_in_t;

/*
 * Open checkpoint dir: read and check META, then open every
 * dir/shard-<i> read-only (checked). Returns 0; ERR_NOTFOUND (no META:
 * not a checkpoint, or an incomplete one), ERR_CORRUPT, ERR_STORE naming
 * the shard's path, ERR_NOMEM. Release with ckpt_io_close() (also after
 * a failure).
 */
int ckpt_io_open(ckpt_in_t *c, const char *dir, errbuf_t *eb);
void ckpt_io_close(ckpt_in_t *c);

/* A checkpoint being written. */
typedef struct ckpt_out {
    char dir[DIRS_PATH_MAX]; /* OUT */
    int nshards;
    store_t **shard; /* OUT/shard-<j>, open for writing */
    int made;        /* 1: OUT was made by ckpt_io_create (removed on abort) */
} ckpt_out_t;

/*
 * Make the new checkpoint dir with nshards empty stores. dir must not
 * exist (ERR_EXISTS: nothing is ever overwritten); its parent must.
 * Returns 0 or ERR_*; on failure call ckpt_io_abort().
 */
int ckpt_io_create(ckpt_out_t *c, const char *dir, int nshards, errbuf_t *eb);

/*
 * Finish: seal every store into synced table files, close it, write
 * dir/META from m (m->shards must be nshards). Returns 0 or ERR_*; on
 * failure call ckpt_io_abort().
 */
int ckpt_io_commit(ckpt_out_t *c, const meta_t *m, errbuf_t *eb);

/* Close what is open and remove dir if ckpt_io_create() made it. Safe on
 * a committed or zeroed c (it then removes nothing). */
void ckpt_io_abort(ckpt_out_t *c);

/* One shard's dense range, decoded (floats are copies owned here). */
typedef struct ckpt_dense {
    int initialized; /* 1 once weights were assigned */
    uint32_t optim;  /* OPTIM_* of the dense optimizer */
    uint64_t total;  /* floats in the whole dense vector */
    uint64_t offset; /* first float of the range */
    uint64_t count;  /* floats in the range */
    int64_t step;    /* optimizer steps applied */
    uint64_t nstate; /* floats of state: planes * count */
    float *w;        /* count */
    float *state;    /* nstate */
} ckpt_dense_t;

/*
 * Decode a dense record (where names it in messages). Returns 0,
 * ERR_CORRUPT (version, length, state not whole planes) or ERR_NOMEM.
 * Release with ckpt_io_dense_release().
 */
int ckpt_io_dense_decode(ckpt_dense_t *d, const void *rec, size_t len, const char *where,
                         errbuf_t *eb);

/* Encode d into a malloc()ed record *rec of *len bytes (caller frees).
 * Returns 0 or ERR_NOMEM. */
int ckpt_io_dense_encode(const ckpt_dense_t *d, unsigned char **rec, size_t *len, errbuf_t *eb);

void ckpt_io_dense_release(ckpt_dense_t *d);

#endif
