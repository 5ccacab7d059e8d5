/*
 * route.h - which shard owns what. Workers, shards and tools share these
 * pure functions; changing them re-deals every key of every cluster.
 *
 *   shard(key) = floor(key * nshards / 2^64)
 *
 * Keys are XXH64 outputs (keyhash.h), uniform over 64 bits, so the high
 * bits of the product split them evenly without a modulo. The dense
 * parameter vector of n floats is cut into nshards contiguous ranges:
 * shard i owns [floor(i*n/S), floor((i+1)*n/S)).
 */
#ifndef FUNNEL_ROUTE_H
#define FUNNEL_ROUTE_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t route_shard(uint64_t key, uint32_t nshards)
{
    return (uint32_t)(((unsigned __int128)key * nshards) >> 64);
}

static inline void route_dense_range(uint64_t n, uint32_t nshards, uint32_t shard, uint64_t *offset,
                                     uint64_t *count)
{
    uint64_t lo = (uint64_t)(((unsigned __int128)n * shard) / nshards);
    uint64_t hi = (uint64_t)(((unsigned __int128)n * (shard + 1)) / nshards);

    *offset = lo;
    *count = hi - lo;
}

#endif
