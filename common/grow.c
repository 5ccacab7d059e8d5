/*
 * grow.c - the growing array. See grow.h.
 */
#include "common/grow.h"

#include <stdlib.h>

#include "common/err.h"

int grow_array(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return ERR_NOMEM;
    *p = q;
    *cap = n;
    return 0;
}
