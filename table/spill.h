/*
 * spill.h - the spill file of one slot of an embedding table: rows evicted
 * from memory, appended to a file nobody else sees, and found again through
 * a compact index in memory. It sits between the table's memory and its
 * durable store: an evicted row goes here instead of to the store, and a
 * miss looks here first.
 *
 * NOTES ON THE DESIGN
 *   Why. A RocksDB point read of an evicted row cost 3-5 us of CPU here
 *   and its write-back 2-3 us (bench-table spill), so a table 10x over its
 *   budget ran at 2-8% of its in-memory speed. An appended record costs a
 *   share of one large write (0.02 us for 144 bytes; a random 144-byte
 *   pwrite on ext4 cost 7 us, which is why records are never rewritten in
 *   place) and a read one pread (0.45 us) from the page cache. Reads
 *   through a mapping of the file were faster still (bench-table dim 16:
 *   0.13 of in-memory against 0.07 with pread, before the compaction
 *   change) but put the file's pages in the shard's RSS, which the budget
 *   promises to bound; io_uring batches of 300 reads cost the same CPU per
 *   read as pread (0.43 against 0.45 us).
 *
 *   What is in memory. An open-addressing index of u32 entries (4 bits
 *   of the key's hash, 28 bits of record number; 70% full after a
 *   rebuild, at most 88%: 4.5..5.7 bytes per spilled row), three bit maps
 *   over the records (live, dirty: newer than the store, stored: the store
 *   has some copy) and a write buffer of up to 64 kB. spill_mem_bytes() is
 *   what the table counts against its budget. A record is read only when
 *   its 4-bit tag matches, and its full key is compared from the record.
 *
 *   Records are the table's resident records (u64 key first, host byte
 *   order); record i is at offset i x rec. A row taken back into memory
 *   leaves a dead record and a tombstone in the index; the next put whose
 *   chain meets the tombstone reuses it. When the dead records reach
 *   DEAD_FACTOR (3) per live one, or tombstones and entries fill the
 *   index, a compaction copies the live records in order to a new file
 *   (1 MB reads and writes) and rebuilds the index (within the memory
 *   cap); so each take costs about half a record copied. The old file
 *   is kept until the new one is whole; the old index is freed before
 *   the new one is built (the indexes are most of the spill's memory),
 *   and a compaction that fails builds it again from the old file, so it
 *   loses nothing. With the table's flush batches bounded by the budget
 *   too, bench-mem at 32 MB peaked at 3.08x the limit (VmHWM 3.16x)
 *   against 3.50x (3.83x) with spill = store; 4.36x before both.
 *
 *   Durability: none of its own. The file is unlinked from birth
 *   (O_TMPFILE), so a crash leaves nothing behind; the table's flush
 *   writes the dirty records to the store, so a crash loses what it lost
 *   before: what changed since the last flush.
 *
 *   Full. A put that would pass the memory cap, the record limit (2^28 -
 *   3), or follow a failed write is refused (SPILL_FULL): the table then
 *   writes the row to the store as it did without a spill file. After a
 *   failed write the records in the buffer stay readable, so nothing is
 *   lost.
 *
 * Thread-safety: none; the table's thread owns it.
 */
#ifndef FUNNEL_SPILL_H
#define FUNNEL_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct spill spill_t;

enum {
    SPILL_DIRTY = 1,  /* newer than the store's copy */
    SPILL_STORED = 2, /* the store holds a copy (maybe older) */
};

enum { SPILL_FULL = 1 }; /* spill_put(): not taken */

typedef struct spill_stats {
    uint64_t rows;        /* live records */
    uint64_t dirty;       /* of which dirty */
    uint64_t records;     /* records in the file and buffer, dead ones included */
    uint64_t mem_bytes;   /* index + bit maps + write buffer */
    uint64_t put, taken;  /* records appended / taken back */
    uint64_t refused;     /* puts refused (full) */
    uint64_t compactions; /* rebuilds */
    uint64_t read_calls;  /* preads of single records */
} spill_stats_t;

/*
 * Open an empty spill file in directory dir for records of rec bytes (rec
 * >= 8; the first 8 bytes are the key). mem_cap: bytes its memory may
 * reach (0: no cap). name is used in messages. Returns 0, ERR_IO naming
 * dir, or ERR_NOMEM.
 */
int spill_open(spill_t **out, const char *dir, size_t rec, uint64_t mem_cap, const char *name,
               errbuf_t *eb);
void spill_close(spill_t **sp);

/* Append the record of key (which the file must not hold) with flags
 * SPILL_*. Returns 0 or SPILL_FULL (see the notes; spill_error() says why
 * after a failed write). */
int spill_put(spill_t *sp, uint64_t key, const void *rec, unsigned flags);

/* If key is spilled: copy its record into out (rec bytes), its flags into
 * *flags, remove it and return 1. 0 if absent; ERR_IO on a failed read
 * (the record stays). */
int spill_take(spill_t *sp, uint64_t key, void *out, unsigned *flags, errbuf_t *eb);

/* Start loading key's index line (before a spill_take() of many keys). */
void spill_prefetch(const spill_t *sp, uint64_t key);

/* spill_take() that leaves the record where it is. */
int spill_peek(spill_t *sp, uint64_t key, void *out, unsigned *flags, errbuf_t *eb);

/* Call fn for every dirty record (record order), marking each stored;
 * stops at fn's first non-zero return, which it returns (ERR_IO for a
 * failed read). *stored: whether the store already had a copy. */
typedef int (*spill_fn)(void *ctx, const unsigned char *rec, int stored);
int spill_each_dirty(spill_t *sp, spill_fn fn, void *ctx, errbuf_t *eb);

/* Every record is now as the store holds it (after a successful flush). */
void spill_mark_clean(spill_t *sp);

/* Compact now (normally a put decides when; tests). 0, or ERR_IO /
 * ERR_NOMEM with spill_error()'s text: from then on puts are refused. */
int spill_compact(spill_t *sp, errbuf_t *eb);

/* Forget every record (the store holds them all: after a flush). */
void spill_clear(spill_t *sp);

uint64_t spill_mem_bytes(const spill_t *sp);

/* Change the memory cap (a table sharing one cap among its slots' files). */
void spill_set_cap(spill_t *sp, uint64_t mem_cap);
uint64_t spill_rows(const spill_t *sp);
void spill_stats(const spill_t *sp, spill_stats_t *st);

/* The last write error (empty if none): why puts are refused. */
const char *spill_error(const spill_t *sp);

#endif
