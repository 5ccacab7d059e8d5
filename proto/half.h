/*
 * half.h - the 16-bit floats of the wire option `wire_fp16` (msg.h,
 * MSG_F_HALF): pulled rows travel as IEEE-754 binary16 ("fp16"), pushed
 * gradients as bfloat16 ("bf16"), both little-endian. Only the wire uses
 * them: tables, optimizers and models stay float32, so a value is narrowed
 * once when it is put into a message and widened once when it is read.
 *
 * Why two formats. Embedding values are O(0.01..1): binary16's 11-bit
 * significand keeps them to 2^-11 relative (bfloat16 would give 2^-8).
 * Gradients of one row in one batch are often 1e-5..1e-8, below
 * binary16's smallest normal (6.1e-5), where it loses bits or flushes to
 * zero; bfloat16 has float32's exponent range, so every gradient keeps
 * 8 significant bits and none vanishes.
 *
 * Rounding is to nearest, ties to even, in both directions exact for
 * every float32 input: NaN stays NaN, binary16 saturates to +-65504
 * instead of becoming infinite (a row never grows that large; a shard
 * must never send an infinity), and subnormals are kept.
 *
 * Pure functions, no state: thread-safe. No third-party header (F16C
 * instructions are not in the x86-64-v2 baseline the build targets).
 */
#ifndef FUNNEL_HALF_H
#define FUNNEL_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t half_f32_bits(float f)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    return u;
}

static inline float half_bits_f32(uint32_t u)
{
    float f;

    memcpy(&f, &u, 4);
    return f;
}

/* float32 -> binary16, round to nearest even, saturating at +-65504. */
static inline uint16_t half_from_f32(float f)
{
    uint32_t u = half_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;

    if (a > 0x7f800000u) /* NaN: keep it quiet and a NaN */
        return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) /* rounds to 65520 or more: saturate */
        return (uint16_t)(sign | 0x7bffu);
    if (a < 0x38800000u) { /* below 2^-14: a binary16 subnormal (or zero) */
        /* scale by 2^24 in float32 arithmetic: exact rounding by the FPU */
        float v = half_bits_f32(a) * 16777216.0f;
        uint32_t m = (uint32_t)v;
        float frac = v - (float)m;
        if (frac > 0.5f || (frac == 0.5f && (m & 1u)))
            m++;
        return (uint16_t)(sign | m); /* m == 0x400 is the smallest normal: right */
    }
    /* normal: rebias the exponent, round the 13 dropped bits to even */
    uint32_t h = (a - 0x38000000u) >> 13;
    uint32_t rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

/* binary16 -> float32 (exact). */
static inline float half_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;

    if (e == 0) /* zero or subnormal: m * 2^-24 */
        return half_bits_f32(sign | half_f32_bits((float)m * (1.0f / 16777216.0f)));
    if (e == 31)
        return half_bits_f32(sign | 0x7f800000u | (m << 13));
    return half_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

/* float32 -> bfloat16, round to nearest even; NaN stays NaN. */
static inline uint16_t half_bf16_from_f32(float f)
{
    uint32_t u = half_f32_bits(f);

    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* bfloat16 -> float32 (exact). */
static inline float half_bf16_to_f32(uint16_t b)
{
    return half_bits_f32((uint32_t)b << 16);
}

/* n floats -> n binary16 at dst (unaligned, little-endian). */
static inline void half_encode_fp16(void *dst, const float *src, size_t n)
{
    unsigned char *d = dst;

    for (size_t i = 0; i < n; i++) {
        uint16_t h = half_from_f32(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

/* n binary16 at src (unaligned) -> n floats. */
static inline void half_decode_fp16(float *dst, const void *src, size_t n)
{
    const unsigned char *s = src;

    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = half_to_f32(h);
    }
}

/* n floats -> n bfloat16 at dst (unaligned, little-endian). */
static inline void half_encode_bf16(void *dst, const float *src, size_t n)
{
    unsigned char *d = dst;

    for (size_t i = 0; i < n; i++) {
        uint16_t h = half_bf16_from_f32(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

/* n bfloat16 at src (unaligned) -> n floats. */
static inline void half_decode_bf16(float *dst, const void *src, size_t n)
{
    const unsigned char *s = src;

    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = half_bf16_to_f32(h);
    }
}

#endif
