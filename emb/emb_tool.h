/*
 * emb_tool.h - funnel-emb, the embedding-table inspection tool: reads a
 * shard's data directory, a model directory or a checkpoint, opened
 * read-only (safe beside a running shard: it sees the rows as of the
 * shard's last flush), and answers what operators ask first.
 *
 *   stats                     rows per slot, bytes per row, update-count and
 *                             age histograms
 *   get SLOT:VALUE|KEY ...    a row's embedding, optimizer state, update
 *                             count and days - or that it has none
 *   top --by count|norm|age   the N rows with the most updates, the largest
 *                             L2 norm, or the oldest last-seen day
 *   dump                      every row as tsv or jsonl
 *   diff DIR_B                rows added, removed and changed, with the
 *                             distribution of L2 changes per slot
 *   export --out F [--since PREV]
 *                             the serving export (emb_export.h): every row,
 *                             or the delta since the checkpoint PREV
 *   apply DELTA --out F       DIR is a full export: apply the delta to it
 *   export-dump               DIR is an export file: print it as text
 *
 * Slot names and dims come from the [model] configuration (--conf), which
 * must match the table's (rows whose width differs are reported).
 *
 * Each answer is computed into a struct by one function (emb_tool_stats,
 * emb_tool_get, emb_tool_top, emb_tool_diff) and printed as text or JSON
 * by another (emb_tool_print_*), so the numbers can be checked without
 * parsing the text; emb_tool_run() is the two together per command.
 *
 * Thread-safety: one call per process.
 */
#ifndef FUNNEL_EMB_TOOL_H
#define FUNNEL_EMB_TOOL_H

#include <stdio.h>

#include "common/err.h"
#include "common/keydict.h"
#include "common/model_conf.h"
#include "table/emb_table.h"
#include "table/store.h"

typedef struct emb_tool_args {
    const char *cmd;   /* stats, get, top, dump, diff, export, apply, export-dump */
    const char *dir;   /* data, model or checkpoint directory */
    char *const *args; /* get: tokens or keys; diff: the other directory */
    int nargs;
    const char *slot;  /* restrict to one slot, or NULL */
    const char *by;    /* top: count, norm or age */
    long n;            /* top: rows */
    int json;          /* --json / --format jsonl */
    int day;           /* current day for ages; export: day of a store without META */
    const char *out;   /* export, apply: the file to write */
    const char *since; /* export: the previous checkpoint (a delta), or NULL (full) */
    const char *keys;  /* get, top, dump: key dictionary (common/keydict.h), or NULL */
} emb_tool_args_t;

/* Run one subcommand, writing to out. Returns 0, 1 ("not found" answers of
 * get), or a negative ERR_* with eb filled. */
int emb_tool_run(const model_spec_t *ms, const emb_tool_args_t *a, FILE *out, errbuf_t *eb);

/*
 * Open the rows of dir read-only: a checkpoint's shards (its META says how
 * many) merged into one view, a model directory's shard-0, or a shard's own
 * data directory. Returns 0 or ERR_*; release with store_close().
 */
int emb_tool_open(const char *dir, store_t **st, errbuf_t *eb);

/* ---- stats ---- */

#define EMB_TOOL_NBUCKET 12 /* histogram buckets: 0, 1, 2-3, 4-7, ..., 512-1023, >= 1024 */

typedef struct emb_tool_stats {
    uint64_t rows;   /* rows counted, all slots */
    int day;         /* the current day the ages count from */
    uint64_t narrow; /* rows narrower than their slot's configured dim */
    uint64_t slot_rows[MODEL_MAX_SLOTS];
    double bytes_per_row[MODEL_MAX_SLOTS]; /* stored: key, record header, floats */
    uint64_t updates_hist[MODEL_MAX_SLOTS][EMB_TOOL_NBUCKET]; /* rows by update count */
    uint64_t age_hist[MODEL_MAX_SLOTS][EMB_TOOL_NBUCKET];     /* rows by days since last seen */
} emb_tool_stats_t;

/* The histogram bucket of count v (emb_tool_stats_t). */
int emb_tool_bucket(uint64_t v);

/*
 * Count the rows of st (only slot `slot`'s, unless NULL). day: the current
 * day for ages, or -1 for the latest last-seen day in the rows (one more
 * pass). Returns 0 or a read error.
 */
int emb_tool_stats(const model_spec_t *ms, store_t *st, const char *slot, int day,
                   emb_tool_stats_t *s, errbuf_t *eb);

/* Slots with rows: a summary, rows and bytes per row, both histograms. */
void emb_tool_print_stats(const model_spec_t *ms, const emb_tool_stats_t *s, int json, FILE *out);

/* ---- get ---- */

typedef struct emb_tool_row {
    int found;           /* 0: no row (never seen, not admitted, expired, not flushed) */
    int slot;            /* found: the row's slot */
    uint64_t key;        /* the key asked for */
    emb_row_meta_t meta; /* found: updates, first and last day */
    uint32_t nf;         /* floats: the embedding (slot dim), then optimizer state */
    float *floats;       /* nf floats; release with emb_tool_row_release() */
} emb_tool_row_t;

/*
 * Look up query, "SLOT:VALUE" (the value hashed as the slot hashes it) or
 * a hex key (tried in every slot, first found wins), into *r. Returns 0
 * with r->found 0 or 1, ERR_INVAL for a query of neither form or an
 * unknown slot, or a read error.
 */
int emb_tool_get(const model_spec_t *ms, store_t *st, const char *query, emb_tool_row_t *r,
                 errbuf_t *eb);

/* Free r's floats (a zeroed r is fine). */
void emb_tool_row_release(emb_tool_row_t *r);

/* One answer of get: the row, or that query (key r->key) has none. With
 * keys (NULL: none), a key it knows is shown as SLOT:VALUE. */
void emb_tool_print_row(const model_spec_t *ms, const keydict_t *keys, const char *query,
                        const emb_tool_row_t *r, int json, FILE *out);

/* ---- top ---- */

typedef struct emb_tool_ranked {
    double score; /* what the rows are ranked by, largest first */
    int slot;
    uint64_t key;
    uint32_t updates;
    int last_day;
    double norm; /* L2 norm of the embedding */
} emb_tool_ranked_t;

typedef struct emb_tool_top {
    emb_tool_ranked_t *rows; /* n rows, best first; release with emb_tool_top_release() */
    long n;
} emb_tool_top_t;

/*
 * The n (10 if n <= 0) rows of st with the most updates (by "count" or
 * NULL), the largest norm ("norm") or the oldest last-seen day ("age"),
 * only slot `slot`'s unless NULL. Returns 0, ERR_INVAL for another `by`,
 * ERR_NOMEM or a read error.
 */
int emb_tool_top(const model_spec_t *ms, store_t *st, const char *slot, const char *by, long n,
                 emb_tool_top_t *top, errbuf_t *eb);

/* Free top's rows (a zeroed top is fine). */
void emb_tool_top_release(emb_tool_top_t *top);

/* A table (or one JSON line per row) of top's rows; with keys (NULL:
 * none), the value of each key it knows instead of the hash. */
void emb_tool_print_top(const model_spec_t *ms, const keydict_t *keys, const emb_tool_top_t *top,
                        int json, FILE *out);

/* ---- diff ---- */

typedef struct emb_tool_diff_slot {
    uint64_t added, removed; /* rows only in B, only in A */
    uint64_t changed;        /* rows in both whose embedding or update count differ */
    uint64_t unchanged;      /* rows in both, equal */
    double l2_p50, l2_p90, l2_max, l2_mean; /* L2 norm of the changed rows' change */
} emb_tool_diff_slot_t;

typedef struct emb_tool_diff {
    emb_tool_diff_slot_t slot[MODEL_MAX_SLOTS];
} emb_tool_diff_t;

/* Compare the rows of a (before) with those of b (after), per slot.
 * Returns 0, ERR_NOMEM or a read error. */
int emb_tool_diff(const model_spec_t *ms, store_t *a, store_t *b, emb_tool_diff_t *d, errbuf_t *eb);

/* One line (or one JSON object) per slot with rows in a or b. */
void emb_tool_print_diff(const model_spec_t *ms, const emb_tool_diff_t *d, int json, FILE *out);

#endif
