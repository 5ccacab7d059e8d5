/*
 * reader.h - impression logs in, training batches out: reads tsv1 (plain
 * or .gz, many files or globs) and Ali-CCP (skeleton files joined with
 * common-features files by md5) and yields batch_t rows - labels plus,
 * per declared slot, the keys and weights of that slot's tokens.
 *
 * It does not train, shuffle or cache anything: rows come out in input
 * order, the same on every run. Bad lines are rejected, counted by reason
 * and the first few reported (FORMAT.md, "Bad input"); reading goes on
 * unless the reader is strict. Thread-safety: one reader per thread.
 *
 * NOTES ON THE DESIGN
 *
 * Input set. Each path is a file or a glob(3) pattern; a pattern expands
 * to its matches in sorted order and must match something. Files keep the
 * order in which they were given. Under format aliccp, a file whose
 * basename starts with "common_features" is a join table, every other
 * file a skeleton; every join table is loaded into memory at open. The
 * "data files" below are the tsv1 files or the skeleton files, numbered
 * from 0 in that order; reader_pos_t.file is such a number.
 *
 * Split. Worker `rank` of `workers` (W) reads its own part of every data
 * file, so that the union over all ranks is every line exactly once:
 *   - plain file of S bytes: rank r owns the lines that START at a byte
 *     offset in [S*r/W, S*(r+1)/W) (integer division);
 *   - gzip files, when there are at least W of them: the i-th gzip file
 *     (counting gzip files only, from 0) belongs wholly to rank i % W;
 *   - gzip files, when there are fewer than W: every rank decompresses
 *     each of them and owns the lines whose 0-based line index i in the
 *     file has i % W == r.
 * Skipped (empty, '#') and rejected lines belong to a rank like any other
 * line, so per-rank statistics add up to the whole input.
 *
 * Positions. reader_tell() reports (file, offset, line) just after the
 * last line consumed by the last successful reader_next_batch() (the row
 * it ended on, or EOF). A reader opened with the same paths, format, rank
 * and workers continues there after reader_seek(): exactly the rows not
 * yet delivered, in the same order. `offset` counts uncompressed bytes;
 * `line` is the number of lines of that file before offset. A plain-file
 * reader with rank > 0 starts in the middle of a file and does not count
 * the lines before its range unless it has to (to report a rejected line);
 * until then it reports line 0, meaning "unknown" (offset > 0 is always
 * past at least one line). Gzip positions always carry the line number.
 *
 * Requests. A tsv1 line may carry a sample weight (@w) and a request id
 * (@req) (FORMAT.md); they land in batch_t.weight / .req. When the last
 * row of a batch has a request id, the reader reads one row further: if
 * that row belongs to the same request, the batch ends before the
 * request's first row instead (the rows read past the end are kept and
 * open the next batch), so a request's consecutive lines share one batch.
 * A request longer than a batch is split at the batch size, and so is a
 * request whose lines fall on both sides of a split between workers (a
 * plain file's byte ranges; gzip files split by line index interleave
 * every request's lines). Without request ids nothing changes. Positions
 * stay exact: reader_tell() is the position before the first row kept for
 * the next batch.
 *
 * Tokens. Slot names are found with a small open-addressing hash table
 * (tokens_slots_t), tokens are parsed in place in the line buffer and their
 * keys (keyhash_value with the slot's seed) appended straight into the
 * batch's CSR arrays: nothing is allocated per line or per token. Why a
 * line was rejected is one of the TOKENS_R_* reasons (tokens.h), which the
 * statistics count and tokens_reason_text() names.
 */
#ifndef FUNNEL_READER_H
#define FUNNEL_READER_H

#include <stddef.h>
#include <stdint.h>

#include "common/batch.h"
#include "common/err.h"
#include "common/model_conf.h"
#include "data/tokens.h"

enum { READER_TSV1 = 0, READER_ALICCP = 1 }; /* worker_conf 'format' */

typedef struct reader reader_t;

typedef struct reader_pos {
    uint32_t file;   /* data file index (see the design notes) */
    uint64_t offset; /* bytes, uncompressed, from the start of the file */
    uint64_t line;   /* lines of the file before offset; 0 with offset > 0: unknown */
} reader_pos_t;

typedef struct reader_opts {
    int format;              /* READER_TSV1 or READER_ALICCP */
    int strict;              /* 1: the first rejected line is fatal (ERR_REJECTED) */
    int report_rejects;      /* rejected lines logged one by one before only counting */
    int rank;                /* this worker, 0 .. workers-1 */
    int workers;             /* workers splitting the input (0 counts as 1) */
    size_t max_line;         /* bytes; longer lines are rejected (0: 64 MiB) */
    tokens_seen_fn on_token; /* NULL, or told of every token of a declared slot */
    void *on_token_ctx;      /* on_token's first argument */
    int allow_empty;         /* 1: an empty log file is read as no rows, not refused */
    /* NULL, or told of every token of an undeclared slot (with on_unknown_ctx) */
    tokens_unknown_fn on_unknown;
    void *on_unknown_ctx;
} reader_opts_t;

typedef struct reader_stats {
    uint64_t lines;                           /* lines this rank read (incl. skipped) */
    uint64_t bytes;                           /* bytes of those lines, uncompressed */
    uint64_t skipped;                         /* empty and '#' lines */
    uint64_t accepted;                        /* rows delivered */
    uint64_t rejected;                        /* lines rejected */
    uint64_t by_reason[TOKENS_NREASONS];      /* rejected lines per TOKENS_R_* */
    uint64_t tokens;                          /* tokens of declared slots in accepted rows */
    uint64_t unknown_slot_tokens;             /* tokens of undeclared slots in accepted rows */
    uint64_t join_rows;                       /* Ali-CCP common-features rows loaded */
    uint64_t join_rejected;                   /* common-features lines rejected */
    uint64_t join_by_reason[TOKENS_NREASONS]; /* per TOKENS_R_* */
} reader_stats_t;

/*
 * Open a reader over paths (files or glob patterns) for the slots of ms
 * (copied; ms need not outlive the reader). Loads the Ali-CCP join tables.
 * Returns 0 and *out (release with reader_destroy()), or ERR_IO naming a
 * missing/unreadable file, one that is not a regular file (directory,
 * FIFO, device) or a pattern that matches nothing, ERR_INVAL for an empty
 * file (unless o->allow_empty), bad options or no input (or an aliccp input without a
 * common_features file), ERR_CORRUPT for a bad gzip join table, ERR_REJECTED for a bad join-table
 * line under strict, ERR_NOMEM. eb says which.
 */
int reader_open(reader_t **out, const model_spec_t *ms, const reader_opts_t *o, char *const *paths,
                int npaths, errbuf_t *eb);

/*
 * Clear b and fill it with up to max_rows accepted rows, in input order
 * (ending early on a request boundary, see "Requests"; use the same
 * max_rows on every call).
 * b must have been set up with batch_init(b, ms->nslots, ...).
 * Returns 0 with b->n > 0; ERR_EOF when this rank has no more rows;
 * ERR_REJECTED under strict (eb: "file:line: reason"); ERR_IO, ERR_CORRUPT
 * (eb names the file); ERR_INVAL for a batch of the wrong shape; ERR_NOMEM.
 * After an error the rows in b are not delivered and reader_tell() still
 * gives the position of the last successful call.
 */
int reader_next_batch(reader_t *r, batch_t *b, size_t max_rows, errbuf_t *eb);

/* Position just after the last row delivered (see the design notes). */
void reader_tell(const reader_t *r, reader_pos_t *pos);

/*
 * Continue from a position reported by reader_tell() of a reader over the
 * same input, format, rank and workers. Returns 0, ERR_INVAL for a position
 * that cannot come from such a reader, ERR_IO / ERR_CORRUPT reading up to
 * it. Statistics keep counting from where they were.
 */
int reader_seek(reader_t *r, const reader_pos_t *pos, errbuf_t *eb);

/* Counters so far; valid until reader_destroy(). */
const reader_stats_t *reader_stats(const reader_t *r);

/* Number of data files after glob expansion. */
int reader_nfiles(const reader_t *r);

/* Path of data file i (0 <= i < reader_nfiles()), owned by the reader. */
const char *reader_file_path(const reader_t *r, int i);

/*
 * How far this rank is through its share of the data files, in bytes ON
 * DISK (compressed bytes for .gz, linesrc_disk_offset), for progress and
 * ETA: *total is the share (a plain file's byte range, a whole gzip file
 * this rank reads), *done what of it has been consumed. Both 0 when the
 * rank has nothing to read.
 */
void reader_disk_progress(const reader_t *r, uint64_t *done, uint64_t *total);

/* One LOG_INFO line: lines read, trained (accepted), rejected by reason. */
void reader_log_summary(const reader_t *r);

/*
 * Check, without reading them, that every path names a readable file and
 * every pattern matches one: what reader_open() would refuse first, for a
 * program to report before it prints anything else. Returns 0, ERR_IO
 * naming the path, ERR_INVAL (no paths) or ERR_NOMEM.
 */
int reader_check_inputs(char *const *paths, int npaths, errbuf_t *eb);

/* Close files and free; accepts NULL and clears the pointer. */
void reader_destroy(reader_t **r);

#endif
