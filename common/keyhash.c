/*
 * keyhash.c - XXH64-based feature keys. See keyhash.h.
 */
#include "common/keyhash.h"

#include <string.h>
#include <xxhash.h>

uint64_t keyhash_slot(const char *slot, size_t len)
{
    return XXH64(slot, len, KEYHASH_SEED);
}

uint64_t keyhash_value(uint64_t slot_seed, const char *value, size_t len)
{
    return XXH64(value, len, slot_seed);
}

uint64_t keyhash_token(const char *slot, const char *value)
{
    return keyhash_value(keyhash_slot(slot, strlen(slot)), value, strlen(value));
}
