/*
 * grow.h - the growing array: make room for `need` elements of `elem`
 * bytes in a heap array, doubling its capacity (from 64) so that n
 * appends cost O(n) copies in all.
 *
 * Thread-safety: a pure function of its arguments.
 */
#ifndef FUNNEL_GROW_H
#define FUNNEL_GROW_H

#include <stddef.h>

/* Grow *p (capacity *cap elements) to hold at least need elements.
 * Returns 0, or ERR_NOMEM with *p and *cap unchanged. */
int grow_array(void **p, size_t *cap, size_t need, size_t elem);

#endif
