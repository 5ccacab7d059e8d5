/*
 * bytes.h - fixed-width integers (and float bits) at a stated byte order in
 * unaligned byte buffers: the one place funnel converts between host values
 * and the bytes of its files and records.
 *
 * Little-endian is the order of every funnel file and record (export
 * files, dense checkpoints, stored rows, dense shard records, the admission
 * sketch); big-endian is for keys that must sort by value in the store
 * (emb_table.h's row keys).
 *
 * Each function is a memcpy plus, when the host's order differs, a byte
 * swap: on the supported little-endian hosts an _le access is one unaligned
 * load or store, so these are fine in hot loops. p need not be aligned.
 *
 * Thread-safety: pure functions.
 */
#ifndef FUNNEL_BYTES_H
#define FUNNEL_BYTES_H

#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || \
    (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__ && __BYTE_ORDER__ != __ORDER_BIG_ENDIAN__)
#error "bytes.h needs a compiler that defines __BYTE_ORDER__ (GCC, Clang)"
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define BYTES_LE16(v) (v)
#define BYTES_LE32(v) (v)
#define BYTES_LE64(v) (v)
#define BYTES_BE64(v) __builtin_bswap64(v)
#else
#define BYTES_LE16(v) __builtin_bswap16(v)
#define BYTES_LE32(v) __builtin_bswap32(v)
#define BYTES_LE64(v) __builtin_bswap64(v)
#define BYTES_BE64(v) (v)
#endif

/* Store v at p[0..n) in little-endian order (least significant byte first). */
static inline void bytes_put_le16(void *p, uint16_t v)
{
    v = BYTES_LE16(v);
    memcpy(p, &v, 2);
}

static inline void bytes_put_le32(void *p, uint32_t v)
{
    v = BYTES_LE32(v);
    memcpy(p, &v, 4);
}

static inline void bytes_put_le64(void *p, uint64_t v)
{
    v = BYTES_LE64(v);
    memcpy(p, &v, 8);
}

/* The little-endian value at p[0..n). */
static inline uint16_t bytes_get_le16(const void *p)
{
    uint16_t v;

    memcpy(&v, p, 2);
    return BYTES_LE16(v);
}

static inline uint32_t bytes_get_le32(const void *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return BYTES_LE32(v);
}

static inline uint64_t bytes_get_le64(const void *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return BYTES_LE64(v);
}

/* Store v at p[0..8) in big-endian order (most significant byte first). */
static inline void bytes_put_be64(void *p, uint64_t v)
{
    v = BYTES_BE64(v);
    memcpy(p, &v, 8);
}

/* The big-endian value at p[0..8). */
static inline uint64_t bytes_get_be64(const void *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return BYTES_BE64(v);
}

/* Store f's IEEE-754 binary32 bits at p[0..4), little-endian. */
static inline void bytes_put_le_float(void *p, float f)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    bytes_put_le32(p, u);
}

/* The float whose IEEE-754 binary32 bits are stored little-endian at p[0..4). */
static inline float bytes_get_le_float(const void *p)
{
    uint32_t u = bytes_get_le32(p);
    float f;

    memcpy(&f, &u, 4);
    return f;
}

#endif
