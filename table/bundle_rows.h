/*
 * bundle_rows.h - the embedding rows of a serving bundle in memory: every
 * row of a full export, looked up by (slot, key), and a new table made from
 * an old one plus a delta export. Read-only once built, so any number of
 * threads may look up in one table while another thread builds the next.
 *
 * NOTES ON THE DESIGN
 *   Per slot: keys[n] in increasing order (the export's order), rows[n *
 *   dim] beside them, and an open-addressing index (power of two, at most
 *   half full) of row number + 1 by key. Applying a delta merges the old
 *   sorted arrays with the delta's sorted records into new arrays and
 *   builds a new index: the old table is not touched, so readers of it
 *   finish undisturbed; the new one costs a full copy while both live.
 *
 * Thread-safety: a built table is immutable; building is one thread's.
 */
#ifndef FUNNEL_BUNDLE_ROWS_H
#define FUNNEL_BUNDLE_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/model_conf.h"

typedef struct bundle_rows bundle_rows_t;

/*
 * Load every row of the full export at path. ms (if not NULL) must have
 * the export's slots and dims, in order (ERR_MISMATCH naming the slot).
 * Returns 0, ERR_NOMEM, or the reader's ERR_IO / ERR_CORRUPT / ERR_VERSION.
 * Caller owns *out; release with bundle_rows_destroy().
 */
int bundle_rows_load(bundle_rows_t **out, const char *path, const model_spec_t *ms, errbuf_t *eb);

/*
 * A new table: base with the delta export at path applied (its base_day
 * must be base's day and its slot table the same; a delete of a row base
 * lacks is ERR_MISMATCH). base is unchanged. Returns 0 or ERR_*.
 */
int bundle_rows_apply(bundle_rows_t **out, const bundle_rows_t *base, const char *path,
                      errbuf_t *eb);

/* The row of (slot, key): dim floats, or NULL if the table has none. */
const float *bundle_rows_find(const bundle_rows_t *r, int slot, uint64_t key);

/* The table's day, its row count, and the bytes it holds. */
int bundle_rows_day(const bundle_rows_t *r);
uint64_t bundle_rows_count(const bundle_rows_t *r);
uint64_t bundle_rows_bytes(const bundle_rows_t *r);

/* Free; accepts NULL and clears the pointer. */
void bundle_rows_destroy(bundle_rows_t **r);

#endif
