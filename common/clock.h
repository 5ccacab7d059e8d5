/*
 * clock.h - seconds on the monotonic clock, for timeouts, intervals and
 * rates. One definition for every module that measures time.
 */
#ifndef FUNNEL_CLOCK_H
#define FUNNEL_CLOCK_H

#include <time.h>

static inline double clock_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
