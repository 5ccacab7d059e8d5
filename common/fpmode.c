/*
 * fpmode.c - FTZ/DAZ for the calling thread; see fpmode.h.
 */
#include "common/fpmode.h"

#ifdef __SSE__
#include <xmmintrin.h>
#endif

unsigned fpmode_get(void)
{
#ifdef __SSE__
    return _mm_getcsr();
#else
    return 0;
#endif
}

void fpmode_set(unsigned mode)
{
#ifdef __SSE__
    if (_mm_getcsr() != mode)
        _mm_setcsr(mode);
#else
    (void)mode;
#endif
}

unsigned fpmode_enter(void)
{
    unsigned prev = fpmode_get();

#ifdef __SSE__
    fpmode_set(prev | _MM_FLUSH_ZERO_ON | 0x0040 /* DAZ */);
#endif
    return prev;
}
