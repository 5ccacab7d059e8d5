/*
 * keydict.h - the key dictionary: which feature value each embedding key
 * was hashed from, so a person reading funnel-emb's output sees
 * `item_id:i42` instead of `5c67ea3d0b9c1f27`.
 *
 * Keys are one-way hashes (keyhash.h); the dictionary is the way back,
 * recorded while logs are read (check-data --key_dict FILE, or train in
 * process with --key_dict FILE) and read by funnel-emb --keys FILE.
 *
 * THE FILE (text, UTF-8 or whatever bytes the logs held):
 *
 *   # funnel key dictionary v1: slot<TAB>key<TAB>value
 *   item_id<TAB>5c67ea3d0b9c1f27<TAB>i42
 *
 * One line per distinct (slot, key), in first-seen order; key is 16
 * lowercase hex digits, keyhash_value(slot seed, value); value is the
 * token's VALUE text exactly as in the log. Lines starting with '#' are
 * comments. A value or slot name holding a tab or newline cannot be
 * written and is left out (counted). The file is bounded: at most `max`
 * keys are kept (the first seen); keydict_capped() tells the writer so it
 * can say how to raise the bound.
 *
 * Reading checks every line: the key must be the hash of the value under
 * the slot's name, so a dictionary of other slots or a damaged file is an
 * error naming the file and line, not a wrong label.
 *
 * Thread-safety: one keydict_t per thread.
 */
#ifndef FUNNEL_KEYDICT_H
#define FUNNEL_KEYDICT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/model_conf.h"

#define KEYDICT_HEADER "# funnel key dictionary v1: slot<TAB>key<TAB>value"

typedef struct keydict keydict_t;

/* An empty dictionary over the slots of ms (copied) keeping at most max
 * keys. Returns NULL when out of memory. Release with keydict_destroy(). */
keydict_t *keydict_new(const model_spec_t *ms, size_t max);

/* Free d; accepts NULL and clears the pointer. */
void keydict_destroy(keydict_t **d);

/* Record that value (len bytes) of slot hashed to key. A key already
 * present is ignored; past max keys nothing is added and the dictionary
 * is marked capped. Returns 0 or ERR_NOMEM. */
int keydict_add(keydict_t *d, int slot, const char *value, size_t len, uint64_t key);

/* keydict_add() with d as a void pointer, for a reader's token callback
 * (data/tokens.h tokens_seen_fn). */
int keydict_add_cb(void *d, int slot, const char *value, size_t len, uint64_t key);

/* One line for a person about the dictionary written to path: keys held,
 * and, when capped, that later keys are missing and how to keep them. */
void keydict_summary(const keydict_t *d, const char *path, char *buf, size_t len);

/* Keys held. */
size_t keydict_size(const keydict_t *d);

/* 1 if a new key was refused because max keys were held. */
int keydict_capped(const keydict_t *d);

/* Values left out because they (or their slot name) hold a tab or newline. */
uint64_t keydict_unwritable(const keydict_t *d);

/* Write d to path atomically (afile.h). Returns 0 or ERR_IO naming path. */
int keydict_write(const keydict_t *d, const char *path, errbuf_t *eb);

/*
 * Read the dictionary at path for the slots of ms: lines of slots not in
 * ms are skipped. Returns 0 and *out, ERR_IO (cannot read path), ERR_CORRUPT
 * (path:line: a malformed line, or a key that is not its value's hash), or
 * ERR_NOMEM; eb says which.
 */
int keydict_load(keydict_t **out, const model_spec_t *ms, const char *path, errbuf_t *eb);

/* The value key of slot was hashed from, NUL-terminated, or NULL if d
 * (which may be NULL) does not know it. Owned by d. */
const char *keydict_find(const keydict_t *d, int slot, uint64_t key);

#endif
