/*
 * bundle.h - the serving bundle: one directory per day holding what online
 * scoring needs of a trained model (docs/BUNDLE.md is the reference):
 *
 *   MANIFEST   "funnel-bundle 1", day, base_day, model_type, digest, and
 *              one "file NAME BYTES XXH64" line per other file
 *   META       the model's META, byte for byte (common/meta.h)
 *   dense.bin  the towers in the dense checkpoint format (model/model.h)
 *   full.emb   the full embedding export of the day (emb_export.h)
 *   delta.emb  the delta export since base_day (present iff base_day != -1)
 *
 * It writes a bundle from a model directory or a cluster checkpoint of any
 * shard count (optionally with the delta against a previous one), and opens
 * one: parses MANIFEST and verifies every file it lists. The rows of a
 * bundle are loaded by bundle_rows.h; the towers by the caller's model
 * (model_load_dense on bundle_path(.., BUNDLE_DENSE)).
 *
 * NOTES ON THE DESIGN
 *   A bundle is written into NAME.tmp (removed first if a crashed writer
 *   left one), every file fsynced, MANIFEST last, then renamed to NAME and
 *   the parent fsynced: a reader sees a whole bundle or none. An existing
 *   NAME is refused (bundles are never overwritten).
 *
 *   dense.bin of a model directory is its dense.bin, copied. A cluster
 *   checkpoint keeps the dense vector split in ranges over its shards (the
 *   record of ckpt_read.h); the writer concatenates the ranges' weights and,
 *   block by block, their optimizer state (Adam's m then v, Adagrad's sum)
 *   and lays the state out tower by tower as the dense checkpoint format
 *   does; the step is shard 0's. That format's fields are written here as
 *   model.h documents them (the table layer may not use model/); the model's
 *   own loader reads the result, and the tests load it.
 *
 * Thread-safety: reentrant; nothing shared.
 */
#ifndef FUNNEL_BUNDLE_H
#define FUNNEL_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/meta.h"

#define BUNDLE_MAGIC "funnel-bundle"
#define BUNDLE_VERSION 1
#define BUNDLE_MANIFEST "MANIFEST"
#define BUNDLE_META "META"
#define BUNDLE_DENSE "dense.bin"
#define BUNDLE_FULL "full.emb"
#define BUNDLE_DELTA "delta.emb"
#define BUNDLE_MAX_FILES 8
#define BUNDLE_PATH_MAX 4096

typedef struct bundle_file {
    char name[64];
    uint64_t bytes;
    uint64_t xxh64;
} bundle_file_t;

/* An opened (verified) bundle. */
typedef struct bundle {
    char dir[BUNDLE_PATH_MAX];
    int day;
    int base_day; /* -1: no delta */
    int model_type;
    uint64_t digest;
    int nfiles;
    bundle_file_t file[BUNDLE_MAX_FILES];
    meta_t meta; /* the bundle's META, parsed */
} bundle_t;

typedef struct bundle_stats {
    uint64_t rows;       /* rows in full.emb */
    uint64_t delta_puts; /* delta.emb puts */
    uint64_t delta_deletes;
    uint64_t bytes; /* all files */
    double seconds;
} bundle_stats_t;

/*
 * Write the bundle of the model directory or checkpoint src to out, with
 * the delta since the checkpoint prev when prev is not NULL (same shard
 * count and slots). st may be NULL. Returns 0, or ERR_EXISTS (out
 * exists), ERR_NOTFOUND / ERR_CORRUPT / ERR_MISMATCH / ERR_IO / ERR_STORE
 * naming the file; out is then not created.
 */
int bundle_write(const char *src, const char *prev, const char *out, bundle_stats_t *st,
                 errbuf_t *eb);

/*
 * Open the bundle in dir: read MANIFEST (first line must be "funnel-bundle
 * 1"; unknown keys are ignored), check that the files it requires are
 * listed, verify each listed file's size and XXH64, read META and check it
 * agrees with MANIFEST. Returns 0, or ERR_NOTFOUND (no MANIFEST),
 * ERR_VERSION, ERR_CORRUPT naming the file and what differed, ERR_IO.
 */
int bundle_open(bundle_t *b, const char *dir, errbuf_t *eb);

/* 1 if dir holds a MANIFEST (looks like a bundle), else 0. */
int bundle_is(const char *dir);

/* buf = dir/name; 0 or ERR_INVAL (too long). */
int bundle_path(const bundle_t *b, const char *name, char *buf, size_t len, errbuf_t *eb);

/* 1 if the bundle lists a file name. */
int bundle_has(const bundle_t *b, const char *name);

#endif
