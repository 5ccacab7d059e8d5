/*
 * finite.h - is a block of float32 values free of NaN and infinities?
 *
 * The guard that keeps poison out of the tables: a shard checks every
 * pushed or assigned block before it applies any of a request, a worker
 * checks its losses and gradients before it pushes a batch.
 *
 * NOTES ON THE DESIGN
 *   A float32 is NaN or infinite exactly when its 8 exponent bits are all
 *   ones, so the test is on bits (immune to -ffast-math) and branch-free:
 *   one AND, one compare and one OR per value, which the compiler
 *   vectorizes. Blocks on the wire are not aligned for float; the loop
 *   reads them through memcpy, which compiles to plain loads.
 *
 * Thread-safety: pure functions.
 */
#ifndef FUNNEL_FINITE_H
#define FUNNEL_FINITE_H

#include <stddef.h>

/* 1 if all n float32 values at p (any alignment, host byte order) are
 * finite, else 0. n == 0 (or p == NULL with n == 0) is finite. */
int finite_all(const void *p, size_t n);

/* Index of the first non-finite value of the n floats at p, or n if there
 * is none (the slow path, for messages after finite_all() said 0). */
size_t finite_first_bad(const void *p, size_t n);

#endif
