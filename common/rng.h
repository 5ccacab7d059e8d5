/*
 * rng.h - splitmix64 (Steele, Lea, Flood 2014; Vigna's reference code), the
 * one small random number generator funnel uses: model init, row init,
 * seeding the generator's xoshiro streams, and the benchmarks' keys.
 *
 * Fixed forever: trained models, generated data and the tests' expected
 * values depend on these exact bits (the same seed gives the same model
 * init and the same generated world on every machine).
 *
 * Thread-safety: pure functions; a state belongs to its caller.
 */
#ifndef FUNNEL_RNG_H
#define FUNNEL_RNG_H

#include <stdint.h>

/* splitmix64's increment: 2^64 / golden ratio, odd. */
#define RNG_GAMMA UINT64_C(0x9e3779b97f4a7c15)

/* splitmix64's output function: a bijective mix of all 64 bits of z. */
static inline uint64_t rng_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Advance the state *s by RNG_GAMMA and return the next 64 random bits. */
static inline uint64_t rng_splitmix64(uint64_t *s)
{
    return rng_mix64(*s += RNG_GAMMA);
}

/* Uniform double in [0, 1) from the top 53 bits of x (every value k 2^-53). */
static inline double rng_unit(uint64_t x)
{
    return (double)(x >> 11) * 0x1.0p-53;
}

#endif
