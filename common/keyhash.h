/*
 * keyhash.h - the embedding key of a feature token.
 *
 * key(SLOT, VALUE) = XXH64(VALUE, XXH64(SLOT, KEYHASH_SEED))
 *
 * XXH64 is the published, frozen 64-bit xxHash (libxxhash). Hashing the slot
 * first gives a per-slot seed that a reader computes once per slot, so a
 * token costs one XXH64 over its value bytes. The same (slot, value) pair
 * gives the same key on every machine and in every release; the test suite
 * pins this with test vectors. Changing anything here invalidates every
 * trained table.
 *
 * Thread-safety: pure functions.
 */
#ifndef FUNNEL_KEYHASH_H
#define FUNNEL_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

#define KEYHASH_SEED UINT64_C(0x66756e6e656c3031) /* "funnel01" */

/* Seed for all values of one slot. */
uint64_t keyhash_slot(const char *slot, size_t len);

/* Key of a value under a slot seed from keyhash_slot(). */
uint64_t keyhash_value(uint64_t slot_seed, const char *value, size_t len);

/* keyhash_value(keyhash_slot(slot), value) for NUL-terminated strings. */
uint64_t keyhash_token(const char *slot, const char *value);

#endif
