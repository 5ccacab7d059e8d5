/*
 * emb_table.h - the embedding table of a parameter-server shard (and of
 * in-process training): uint64 key -> row record (embedding + optimizer
 * state + update count + first/last-seen day), one sub-table per slot, in
 * memory, written back to a durable store (store.h).
 *
 * NOTES ON THE DESIGN
 *   Memory. Each slot keeps a slab of fixed-size records
 *     u64 key | u32 updates | u16 first_day | u16 last_day | f32 w[dim] | f32 state[S]
 *   (S = optim_state_len) and an open-addressing index of u32 entries
 *   (linear probing, load 3/8..3/4, backward-shift deletion, grown
 *   incrementally: see "Growing" in emb_table.c): 28 bits of
 *   slab slot and a 4-bit tag of the key's hash, so a probe reads a record
 *   only when the tags agree (a slot of a table holds at most 2^28 - 2
 *   rows). Plus three bit maps (live, dirty, referenced). Overhead per
 *   resident row beyond the payload (w + state): 16 bytes of header + 5.3
 *   ..10.7 bytes of index + 3 bits; bench-table measures 21.8..27 bytes.
 *   (16 bytes of overhead would need a smaller header: the key, update
 *   count and two days the issue asks for are 16 bytes before any index.)
 *   Indexes and slabs ask for transparent huge pages (a probe is one TLB
 *   miss less). A slab is a list of segments that never move (capacity
 *   doubles by mapping one more), so a growth copies nothing; a realloc'd
 *   slab of huge pages took ~150 ms to move at 277 MB. A bare loop of a
 *   uniform pull's accesses (bench-table) ran at 17-24 ns a key with
 *   huge pages against 30-38 without. CLOCK's referenced bits are set
 *   only under a mem_limit (nothing else reads them; a hit would
 *   otherwise touch one more random line).
 *
 *   Speed. A request's keys are independent, so resolving them is a
 *   software pipeline: index lines are prefetched 32 keys ahead, records
 *   16 keys ahead, and each row is used (copied out, optimizer step) as
 *   soon as it is found, while its lines are in L1. On a table much larger
 *   than the CPU caches this doubles pull throughput over key-at-a-time
 *   lookups (bench-table "uniform"). The record stage remembers the
 *   record it found (or that the chain ended), so the use stage only
 *   checks the key: no second index read or segment lookup (table / bare
 *   loop 0.70-0.75 -> 0.73-0.85 by medians of alternating passes).
 *
 *   Memory budget. resident_bytes counts live records, indexes, bit maps
 *   and the spill files' memory. When it exceeds mem_limit after a
 *   request, CLOCK hands (one per slot, swept in turn by slices
 *   proportional to the slot's size, so together they act as one CLOCK)
 *   evict rows not referenced since the last pass, down to 90% of the
 *   budget. With spill files (emb_table_set_spill, a shard's default) an
 *   evicted row, clean or dirty, is appended to its slot's file and a miss
 *   takes it back from there (spill.h); a row the files cannot take, and
 *   every row without them, goes as follows: dirty ones are written to the
 *   store first (one write batch, in key order); clean ones are dropped
 *   without a write. A row that a miss loads or creates starts on
 *   probation (not referenced), so it is the next to go unless a later
 *   pull references it: a row earns its place by being pulled twice
 *   while a hand's turn lasts, and the one-off keys of a skewed stream
 *   do not push out the hot rows (pushes do not count: they follow
 *   their pull). On Zipf(1.1) keys over 10x the budget (bench-table
 *   spill) this cut the keys read back from 31.6% to 29.0% of those
 *   pulled (a static top-k would miss 21.7%). Indexes left under 1/8
 *   full shrink. A slab keeps its capacity (freed records are reused), so
 *   the process holds each slot's high-water mark of records. A miss reads
 *   the spill file, then the store (one MultiGet for all misses of a
 *   request left), before creating a row, so an evicted row comes back
 *   exactly. Within one request the
 *   budget may be exceeded by that request's new rows.
 *
 *   Durability. Rows changed since the last emb_table_flush() are dirty;
 *   flush writes them all, the spilled ones too (one record = row +
 *   optimizer state, so what is stored is always consistent) and clears
 *   the bits. What a crash loses is what changed since the last flush (the
 *   spill files are unlinked: a crash leaves nothing to trust). Expiry
 *   flushes, then forgets the spilled rows, so it judges the store.
 *
 *   Admission. A slot with admit_min > 1 creates a row only on the
 *   admit_min-th sighting of its key (a pull in create mode); until then
 *   the key pulls zeros and its gradients are dropped. Sightings are
 *   counted in a count-min sketch (4 x 2^18 saturating u16 counters per
 *   table, conservative update), so never-admitted keys cost no row; the
 *   count may overestimate (a key admitted early), never underestimate.
 *   Flushes store the sketch (when it changed) under EMB_SKETCH_KEY, so
 *   sightings survive restarts, checkpoints and daily refreshes.
 *
 *   On disk. Key: 'r' | u8 slot | u64 key big-endian (10 bytes: a slot's
 *   rows are one key range). Value: u8 version (EMB_RECORD_VERSION) | u8
 *   slot | u16 0 | u32 updates | u16 first_day | u16 last_day | u32 nfloats
 *   | f32 values[nfloats] (w then state), little-endian. Days are u16, so
 *   a table serves days 0..EMB_DAY_MAX. An expired row
 *   leaves a tombstone 'x' | u8 slot | u64 key -> i32 day. Keys starting
 *   with 'm' are the owner's metadata (store_get / store_put).
 *
 *   Row count. Every batch that writes or deletes rows also writes, in
 *   the same atomic batch, EMB_ROWS_KEY -> u8 version | u8[3] 0 | u32 n |
 *   n x u64 rows of slot s in the store (little-endian). So the record
 *   always equals the rows the store holds, and emb_table_check_store()
 *   compares the two when a store is opened: rows that a damaged MANIFEST,
 *   table file or log lost make the store refused, never "restored" with
 *   fewer (or zero) rows. The table knows which resident rows the store
 *   already holds (one bit per record); after a failed write it no longer
 *   knows the count and deletes the record in every later batch (a store
 *   without the record is counted at the next open, as one written before
 *   records were).
 *
 * Thread-safety: none; one thread (the server loop or the trainer) owns a
 * table.
 */
#ifndef FUNNEL_EMB_TABLE_H
#define FUNNEL_EMB_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/model_conf.h"
#include "table/store.h"

#define EMB_RECORD_VERSION 1
#define EMB_KEY_LEN 10
#define EMB_RECORD_HEADER 16 /* bytes before the floats of a stored record */
#define EMB_ROW_HEADER 16    /* bytes before the floats of a resident row: key, updates, days */
#define EMB_DAY_MAX 65535    /* largest day a row can carry */
/* The admission sketch's record: u8 version | u8 rows (4) | u8 log2 width
 * (18) | u8 0 | u16 counters, little-endian, row after row. */
#define EMB_SKETCH_KEY "m:emb_sketch"
#define EMB_ROWS_KEY "m:emb_rows" /* the row count record; see the notes */
#define EMB_ROWS_VERSION 1
#define EMB_SKETCH_VERSION 1

enum {
    EMB_PULL_CREATE = 0,   /* a key without row gets a new one */
    EMB_PULL_READONLY = 1, /* a key without row reads zeros; nothing is created */
};

typedef struct emb_table emb_table_t;

typedef struct emb_row_meta {
    uint32_t updates; /* gradient steps applied */
    int first_day;    /* day created */
    int last_day;     /* day last updated */
} emb_row_meta_t;

typedef struct emb_table_stats {
    uint64_t resident_rows;              /* rows in memory */
    uint64_t resident_bytes;             /* bytes of records + index + bit maps */
    uint64_t payload_bytes;              /* bytes of w + state of resident rows */
    uint64_t index_bytes;                /* of resident_bytes: the hash indexes */
    uint64_t dirty_rows;                 /* resident rows changed since the last flush */
    uint64_t created;                    /* rows created */
    uint64_t loaded;                     /* rows read back from the store */
    uint64_t evicted;                    /* rows dropped from memory */
    uint64_t evicted_dirty;              /* of which written to the store first */
    uint64_t flushed;                    /* rows written by flushes */
    uint64_t pulls, pushes;              /* keys pulled / pushed */
    uint64_t expired;                    /* rows deleted by expiry */
    uint64_t admit_pending;              /* pulls of keys not admitted yet (zeros returned) */
    uint64_t admit_dropped;              /* gradients dropped for keys not admitted yet */
    uint64_t slot_rows[MODEL_MAX_SLOTS]; /* resident rows per slot */
    uint64_t rows_total;                 /* rows stored or resident (0 unless max_rows set) */
    uint64_t create_refused;             /* calls refused: they would pass a row limit */
    uint64_t index_moving;               /* index positions still to move (growth under way) */
    uint64_t store_read_keys;            /* keys asked of the store for missed rows */
    uint64_t store_written; /* rows written back by evictions (evicted_dirty, batched) */
    double store_read_s, store_write_s;         /* wall seconds in those reads / eviction writes */
    double store_read_cpu_s, store_write_cpu_s; /* the same in the calling thread's CPU time */
    uint64_t spilled;                           /* evicted rows appended to the spill files */
    uint64_t spill_loaded;      /* of loaded: rows taken back from the spill files */
    uint64_t spill_rows;        /* rows in the spill files now */
    uint64_t spill_dirty;       /* of which newer than the store */
    uint64_t spill_records;     /* records in the spill files, dead ones included */
    uint64_t spill_mem_bytes;   /* of resident_bytes: the spill files' indexes, maps, buffers */
    uint64_t spill_refused;     /* evictions the spill files could not take (to the store) */
    uint64_t spill_compactions; /* spill file rebuilds */
    uint64_t spill_reads;       /* single-record reads of the spill files */
} emb_table_stats_t;

/*
 * Open a table over store (not owned; must outlive the table) for the
 * slots and row optimizer of ms (copied). mem_limit: bytes of resident
 * rows, 0 for unlimited. Returns 0 or ERR_*; release with
 * emb_table_destroy() (which does not flush).
 */
int emb_table_open(emb_table_t **out, store_t *store, const model_spec_t *ms, uint64_t mem_limit,
                   errbuf_t *eb);
void emb_table_destroy(emb_table_t **t);

/*
 * Row limits (a shard serving unauthenticated clients must not grow
 * without bound). max_rows: rows the table may hold, stored or resident
 * (0: no limit); setting it counts the stored rows once (a scan of the
 * store), so set it right after opening, before any row is resident. A pull, push or assign that
 * would create rows beyond the limit, or beyond the budget of emb_table_set_create_budget(),
 * creates none and returns ERR_TOOBIG naming the limit; existing rows are still served. Repeated
 * new keys of one call count once each time they appear. Returns 0, or ERR_STORE if the store could
 * not be counted.
 */
int emb_table_set_max_rows(emb_table_t *t, uint64_t max_rows, errbuf_t *eb);

/* New rows the following calls may create together (a server sets it
 * before each request; UINT64_MAX, the default: no budget). */
void emb_table_set_create_budget(emb_table_t *t, uint64_t rows);

/*
 * Compare the rows store holds with its row count record (see the notes),
 * reading every row (block checksums checked). Returns 0 (also for a store
 * without a record), ERR_CORRUPT naming the store, the slot and both
 * counts, or the store's read error. A store_check_fn.
 */
int emb_table_check_store(store_t *store, errbuf_t *eb);

/* store_rocks_open_checked() with emb_table_check_store(): how every
 * program opens a directory of embedding rows. */
int emb_store_open(store_t **out, const char *path, int flags, const char *name, errbuf_t *eb);

/*
 * Give every slot a spill file (table/spill.h) in directory dir: evicted
 * rows are appended there instead of written to the store, and a miss
 * looks there first; flushes write the spilled dirty rows to the store.
 * The files' memory (index, bit maps, buffers: 6-8 bytes per spilled row)
 * counts against mem_limit; together they may take up to 2/3 of it, beyond
 * which evicted rows go to the store as without a spill file (10x more rows
 * than fit at dim 16 need about 45%). Call after opening, with
 * a mem_limit. Returns 0 or ERR_IO naming dir.
 */
int emb_table_set_spill(emb_table_t *t, const char *dir, errbuf_t *eb);

/* Why a spill file stopped taking rows (a failed write), or NULL. */
const char *emb_table_spill_error(const emb_table_t *t);

/* The day stamped on rows as first/last seen: 0..EMB_DAY_MAX (days are
 * u16 in memory and on disk). Returns 0, or ERR_INVAL (the day is kept). */
int emb_table_set_day(emb_table_t *t, int day);

/* Sightings counted for a key of slot without a row (admission). */
uint32_t emb_table_sightings(const emb_table_t *t, int slot, uint64_t key);

/* Rows (embeddings only, dim floats each) of n keys of slot into out
 * (n x dim floats; need not be aligned: a shard writes straight into its
 * reply). mode EMB_PULL_*. Returns 0, or ERR_STORE / ERR_CORRUPT /
 * ERR_NOMEM. */
int emb_table_pull(emb_table_t *t, int slot, const uint64_t *keys, size_t n, void *out, int mode,
                   errbuf_t *eb);

/* Apply gradients g (n x dim floats, need not be aligned) to the rows of
 * n keys of slot with the row optimizer (a key without row gets one
 * first). */
int emb_table_push(emb_table_t *t, int slot, const uint64_t *keys, size_t n, const void *g,
                   errbuf_t *eb);

/* Store values (n x (dim + state) floats with state, else n x dim) as the
 * rows of n keys, marking them dirty (restores, tests); v need not be
 * aligned. */
int emb_table_assign(emb_table_t *t, int slot, const uint64_t *keys, size_t n, const void *v,
                     int with_state, errbuf_t *eb);

/* Write every dirty row to the store (batches of 64k rows, or under a
 * budget of mem_limit / 32 bytes, each atomic;
 * the dirty bits clear only when all succeeded), then the admission
 * sketch if it changed; *rows (if not NULL) gets the rows written. */
int emb_table_flush(emb_table_t *t, uint64_t *rows, errbuf_t *eb);

/*
 * Expiry: delete every row of a slot with expire_days > 0 whose last-seen
 * day is before day - expire_days, from memory and from the store (dirty
 * rows are flushed first so nothing is judged on stale data). *deleted (if
 * not NULL) gets the count. Returns 0, ERR_INVAL for a day outside
 * 0..EMB_DAY_MAX, ERR_CORRUPT for an unreadable record, or ERR_STORE.
 */
int emb_table_expire(emb_table_t *t, int day, uint64_t *deleted, errbuf_t *eb);

/* Copy one row (w then state: emb_table_row_floats() floats) and its
 * metadata, from memory or the store. ERR_NOTFOUND if it has no row. */
int emb_table_get(emb_table_t *t, int slot, uint64_t key, float *vals, emb_row_meta_t *meta,
                  errbuf_t *eb);

/* Why a key has (no) row: EMB_ROW_* (same values as MSG_ROW_* on the wire). */
enum {
    EMB_ROW_RESIDENT = 0, /* in memory */
    EMB_ROW_STORED = 1,   /* only in the store */
    EMB_ROW_NEVER = 2,    /* never seen */
    EMB_ROW_PENDING = 3,  /* seen, not admitted yet */
    EMB_ROW_EXPIRED = 4,  /* deleted by expiry */
};

/*
 * Inspect a key without changing anything: its status, its row (vals, w
 * then state, when it has one), metadata, sightings counted toward
 * admission, and for an expired row the day it was deleted. Returns 0 or
 * ERR_STORE / ERR_CORRUPT.
 */
int emb_table_inspect(emb_table_t *t, int slot, uint64_t key, float *vals, emb_row_meta_t *meta,
                      int *status, uint32_t *seen, int *expired_day, errbuf_t *eb);

/* Floats of a slot's row as stored: dim + optimizer state. */
size_t emb_table_row_floats(const emb_table_t *t, int slot);

void emb_table_stats(const emb_table_t *t, emb_table_stats_t *st);

/* The store key of (slot, key) into buf[EMB_KEY_LEN]. */
void emb_key_encode(unsigned char *buf, int slot, uint64_t key);
/* Parse a store key; 0, or ERR_CORRUPT if it is not a row key. */
int emb_key_decode(const void *buf, size_t len, int *slot, uint64_t *key);

/* Parse a stored record into its metadata and a pointer to its floats
 * (unaligned: copy with memcpy). Returns 0 or ERR_CORRUPT. */
int emb_record_decode(const void *v, size_t vlen, int *slot, emb_row_meta_t *meta,
                      const void **floats, uint32_t *nfloats);

#endif
