/*
 * clock.h - seconds on the monotonic clock, for timeouts, intervals and
 * rates, and the wall clock's Unix seconds. One definition for every
 * module that measures time.
 */
#ifndef FUNNEL_CLOCK_H
#define FUNNEL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline double clock_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds since the Unix epoch (wall clock): for times that must mean the
 * same after a restart, such as when a shard last heard from a sender. */
static inline uint64_t clock_unix_s(void)
{
    return (uint64_t)time(NULL);
}

#endif
