/*
 * finite.c - NaN/infinity checks over float32 blocks. See finite.h.
 */
#include "common/finite.h"

#include <stdint.h>
#include <string.h>

#define EXP_MASK UINT32_C(0x7f800000) /* the exponent bits of a float32 */

int finite_all(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint32_t bad = 0;

    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, b + i * 4, 4);
        bad |= (u & EXP_MASK) == EXP_MASK;
    }
    return !bad;
}

size_t finite_first_bad(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, b + i * 4, 4);
        if ((u & EXP_MASK) == EXP_MASK)
            return i;
    }
    return n;
}
