/*
 * emb_export.h - the serving export of embedding tables: a versioned binary
 * file holding every row of a checkpoint (a full export) or what changed
 * since a previous checkpoint (a delta: puts and tombstones), the code that
 * writes and reads it, and the three things done with it: export a
 * checkpoint, export the delta between two checkpoints, apply a delta to a
 * full export. docs/export-format.md is the format's reference for the
 * people who write readers in other languages.
 *
 * It does not export dense weights, optimizer state, update counts or days:
 * serving needs the embeddings only.
 *
 * NOTES ON THE DESIGN
 *   File layout (every integer little-endian; floats IEEE-754 binary32 LE):
 *
 *     header   char[8] "FNLEXPRT" | u16 version (1) | u8 kind (1 full,
 *              2 delta) | u8 nslots | i32 day | i32 base_day (delta: day of
 *              the full export it applies to; full: -1) | u32 header_len
 *              (bytes, this hash included) | u64 records
 *              then per slot: u16 dim | u8 name_len | name bytes (no NUL)
 *              then u64 header_hash = XXH64(seed 0) of the header's bytes
 *              before it
 *     records  u8 op (1 put, 2 delete) | u8 slot | u64 key
 *              | put only: f32 embedding[dim of the slot]
 *     trailer  u64 records | u64 body_hash = XXH64(seed 0) of the records
 *              section | char[8] "FNLEXEND"
 *
 *   Records are in strictly increasing (slot, key) order (key as an
 *   unsigned number), one per row, so a full export and a delta can be
 *   merged in one pass, and two exports of the same content are equal byte
 *   for byte. A full export holds puts only.
 *
 *   Where a checkpoint's rows come from: CKPT/META names the slots, their
 *   dims, the day and the shard count N; the rows are in the RocksDB stores
 *   CKPT/shard-0 .. CKPT/shard-(N-1) (a model directory is the same with
 *   N = 1). Each shard's store iterates in (slot, key) order; the export
 *   merges the N iterations (a key found in two shards is corruption). A
 *   delta merges the two checkpoints' merged streams: a row only in PREV is
 *   a delete; a row only in CKPT, or in both with a different update count
 *   or any different byte of its embedding, is a put. The two checkpoints
 *   must have the same shard count and slot table.
 *
 *   Writing is atomic: the file is built as OUT.tmp (the header is written
 *   last, when the record count is known), fsynced, renamed to OUT, and
 *   the directory fsynced; a failed export leaves no OUT. Readers check the
 *   magic, the version (a newer one is ERR_VERSION, before anything else is
 *   trusted), the header hash, the trailer, the records' order and ops, and
 *   at the end the record count and the body hash: a flipped or missing
 *   byte anywhere is ERR_CORRUPT. Since the body hash is known only at the
 *   end, consumers of a stream (apply) write their output atomically too.
 *
 * Thread-safety: a writer or reader belongs to one thread; the functions
 * below share nothing.
 */
#ifndef FUNNEL_EMB_EXPORT_H
#define FUNNEL_EMB_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/model_conf.h"

#define EMB_EXPORT_MAGIC "FNLEXPRT"
#define EMB_EXPORT_END_MAGIC "FNLEXEND"
#define EMB_EXPORT_VERSION 1
#define EMB_EXPORT_HEAD_FIXED 32 /* bytes of the header before the slot table */
#define EMB_EXPORT_TRAILER 24    /* bytes */
#define EMB_EXPORT_REC_HEAD 10   /* bytes of a record before its floats */

enum { EMB_EXPORT_FULL = 1, EMB_EXPORT_DELTA = 2 };
enum { EMB_EXPORT_PUT = 1, EMB_EXPORT_DELETE = 2 };

typedef struct emb_export_header {
    int version;
    int kind;     /* EMB_EXPORT_FULL or EMB_EXPORT_DELTA */
    int day;      /* day of the table exported; -1: unknown */
    int base_day; /* delta: day of the full export it applies to; full: -1 */
    int nslots;
    char slot[MODEL_MAX_SLOTS][MODEL_SLOT_NAME_MAX];
    int dim[MODEL_MAX_SLOTS]; /* floats per embedding */
    uint64_t records;         /* records in the file (reader; the writer counts) */
} emb_export_header_t;

/* One record as read. emb points into the reader's buffer (unaligned,
 * little-endian: read with emb_export_float()); valid until the next read. */
typedef struct emb_export_rec {
    int op; /* EMB_EXPORT_PUT or EMB_EXPORT_DELETE */
    int slot;
    uint64_t key;
    const void *emb; /* put: dim floats; delete: NULL */
} emb_export_rec_t;

typedef struct emb_export_stats {
    uint64_t records; /* records written */
    uint64_t puts;
    uint64_t deletes;
    uint64_t bytes;   /* size of the file written */
    uint64_t scanned; /* rows (or records) read from the inputs */
    uint64_t source;  /* of which from the newest input: CKPT, or the delta */
    double seconds;   /* wall time */
} emb_export_stats_t;

typedef struct emb_export_writer emb_export_writer_t;
typedef struct emb_export_reader emb_export_reader_t;

/* The i-th float of a record's embedding (host order). */
float emb_export_float(const void *emb, size_t i);

/*
 * Start writing an export to path (through path.tmp). h gives kind, day,
 * base_day and the slot table (h->records is ignored: the writer counts).
 * Returns 0 or ERR_INVAL (bad slot table) / ERR_IO / ERR_NOMEM. Caller
 * finishes with emb_export_writer_finish() or abandons with
 * emb_export_writer_destroy() (which removes path.tmp).
 */
int emb_export_writer_open(emb_export_writer_t **out, const char *path,
                           const emb_export_header_t *h, errbuf_t *eb);

/* Append a put of (slot, key) with the slot's dim floats emb_le
 * (little-endian, any alignment: a stored record's or a read record's
 * bytes), or a delete. Records must come in strictly increasing (slot, key)
 * order, and a full export takes no delete: ERR_INVAL otherwise. */
int emb_export_writer_put(emb_export_writer_t *w, int slot, uint64_t key, const void *emb_le,
                          errbuf_t *eb);
int emb_export_writer_delete(emb_export_writer_t *w, int slot, uint64_t key, errbuf_t *eb);

/* Write the trailer and header, fsync, rename path.tmp to path and fsync
 * its directory; frees the writer and clears *w either way. st (if not
 * NULL) gets records, puts, deletes and bytes. Returns 0 or ERR_IO. */
int emb_export_writer_finish(emb_export_writer_t **w, emb_export_stats_t *st, errbuf_t *eb);

/* Abandon a writer: close and remove path.tmp. Accepts NULL; clears *w. */
void emb_export_writer_destroy(emb_export_writer_t **w);

/*
 * Open an export for reading and check its magic, version, header hash and
 * trailer. Returns 0, ERR_IO, ERR_VERSION (a newer format), or ERR_CORRUPT
 * naming the file and what is wrong. Release with
 * emb_export_reader_destroy().
 */
int emb_export_reader_open(emb_export_reader_t **out, const char *path, errbuf_t *eb);
void emb_export_reader_destroy(emb_export_reader_t **r);

/* The header of an open export (valid while the reader lives). */
const emb_export_header_t *emb_export_reader_header(const emb_export_reader_t *r);

/* Next record into rec: 1, or 0 at the end once the record count and the
 * body hash have been verified, or ERR_IO / ERR_CORRUPT. */
int emb_export_reader_next(emb_export_reader_t *r, emb_export_rec_t *rec, errbuf_t *eb);

/* Where the rows of a table directory come from when it has no META (a
 * bare store directory): its slot table and day. */
typedef struct emb_export_opts {
    const model_spec_t *spec; /* slot names and dims; NULL: META is required */
    int day;                  /* day recorded for a directory without META */
} emb_export_opts_t;

/*
 * Full export of the table in dir (a checkpoint or model directory: META
 * and shard-I stores; or a bare store directory described by o) to the
 * file out. st (if not NULL) gets the counts and time. Returns 0, or
 * ERR_NOTFOUND / ERR_IO / ERR_STORE / ERR_CORRUPT / ERR_MISMATCH (a row
 * narrower than its slot's dim) with eb naming the directory; out is then
 * not created.
 */
int emb_export_full(const char *dir, const emb_export_opts_t *o, const char *out,
                    emb_export_stats_t *st, errbuf_t *eb);

/*
 * Delta export: the rows of dir created or changed since prev (update
 * count or any byte of the embedding differs) as puts, and a delete for
 * every row of prev that dir no longer has; header day = dir's day,
 * base_day = prev's. ERR_MISMATCH if the shard counts or slot tables
 * differ; otherwise as emb_export_full().
 */
int emb_export_delta(const char *dir, const char *prev, const emb_export_opts_t *o, const char *out,
                     emb_export_stats_t *st, errbuf_t *eb);

/*
 * Apply the delta export at delta to the full export at base, writing the
 * resulting full export (day = the delta's) to out. ERR_MISMATCH if base
 * is not a full export, delta not a delta, the delta's base_day is not the
 * base's day, the slot tables differ, or the delta deletes a row the base
 * does not have; ERR_CORRUPT / ERR_VERSION / ERR_IO from reading either.
 * out is written only if everything checks out.
 */
int emb_export_apply(const char *base, const char *delta, const char *out, emb_export_stats_t *st,
                     errbuf_t *eb);

/* Print an export as text: '#' lines for the header and slot table, then
 * one tsv line per record (op, slot name, key in hex, embedding as
 * comma-separated floats that read back exactly), then a '#' line once the
 * checksum is verified. Returns 0 or an error of the reader. */
int emb_export_dump(const char *path, FILE *out, errbuf_t *eb);

#endif
