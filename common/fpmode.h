/*
 * fpmode.h - the calling thread's floating-point mode for training math:
 * denormal results flushed to zero and denormal inputs read as zero (x86
 * FTZ and DAZ; a no-op elsewhere).
 *
 * Gradients of a few towers and experts underflow into denormals, and so
 * do Adam's first moments of units that stopped moving (0.9 x 4 ulp rounds
 * back to 4 ulp, for good); AVX-512 sgemm and the optimizer loops take
 * microcode assists on them (the ple bottom's step ran 2-3x slower, the
 * dense Adam step 4x after 700 steps). Flushing changes values below
 * 1.2e-38 only. The training step, the in-process optimizer and a shard's
 * dense optimizer run under it; the training team hands the caller's mode
 * to its threads.
 *
 * Thread-safety: the mode is per thread (x86 MXCSR).
 */
#ifndef FUNNEL_FPMODE_H
#define FUNNEL_FPMODE_H

/* Turn FTZ and DAZ on; returns the previous mode, to put back with
 * fpmode_set(). */
unsigned fpmode_enter(void);

/* The thread's whole mode (x86 MXCSR; 0 and a no-op elsewhere). */
unsigned fpmode_get(void);
void fpmode_set(unsigned mode);

#endif
