/*
 * bayesopt.h - Bayesian optimization of a few (1..BO_MAX_DIM) bounded
 * parameters: a Gaussian process over the points evaluated so far and the
 * expected improvement, maximised over random candidates, to pick the next
 * point. Used by `funnel-worker fuse` (fuse.h) to tune a ranking score's
 * weights; it does no I/O and knows nothing about scores.
 *
 * NOTES ON THE DESIGN
 *   Inputs are mapped to the unit cube ([lo, hi] -> [0, 1] per dimension)
 *   and observations standardised (mean 0, sd 1) before the GP sees them,
 *   so one hyperparameter grid fits any box and any objective's scale.
 *   Kernel: RBF, k(a, b) = sf2 exp(-|a - b|^2 / (2 l^2)), one length scale
 *   l for all dimensions. The hyperparameters (l, sf2) are chosen at every
 *   fit from a small grid by the log marginal likelihood
 *     log p(y) = -y^T alpha / 2 - sum_i log L_ii - n log(2 pi) / 2,
 *     K + noise I = L L^T (Cholesky), alpha = L^-T L^-1 y.
 *   noise is the option's (0: noise-free, the objective is deterministic)
 *   plus a jitter that starts at 1e-10 and grows tenfold only when the
 *   Cholesky factorisation fails (near-duplicate points).
 *   Posterior: mean k*^T alpha, variance k** - |L^-1 k*|^2, taken as 0 when
 *   it is within 10 x the jitter (numerical, not uncertainty).
 *   Expected improvement over the best observation f+ (maximisation):
 *     EI = (mu - f+) Phi(z) + sd phi(z), z = (mu - f+) / sd, and
 *     max(mu - f+, 0) when sd = 0. At an evaluated point of a noise-free
 *     GP the variance is the jitter's, so sd = 0 and mu is that point's
 *     value <= f+ (up to rounding): EI is 0.
 *   Next point: the maximum of EI over ncand uniform candidates and as
 *   many Gaussian steps (sd 0.05 of the box) around the best points seen;
 *   a candidate closer than 1e-6 (unit cube) to an evaluated point is
 *   skipped, so the search never repeats itself.
 *
 * Memory: O(n^2) doubles for n points (n <= BO_MAX_POINTS); every array is
 * allocated by bo_new, nothing per step.
 *
 * Thread-safety: a bo_t is used by one thread at a time.
 */
#ifndef FUNNEL_BAYESOPT_H
#define FUNNEL_BAYESOPT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define BO_MAX_DIM 8
#define BO_MAX_POINTS 512

typedef struct bo bo_t;

typedef struct bo_opts {
    int dim;               /* parameters, 1..BO_MAX_DIM */
    double lo[BO_MAX_DIM]; /* box, lo[d] < hi[d] */
    double hi[BO_MAX_DIM];
    double noise;  /* observation noise variance (standardised units); 0: noise-free */
    int ncand;     /* random candidates per suggestion (0: 2000) */
    uint64_t seed; /* of the candidates and the initial design */
} bo_opts_t;

/* A new optimizer for o (copied). Returns NULL with eb filled (ERR_INVAL
 * naming the bad option, ERR_NOMEM). Caller owns it; bo_destroy(). */
bo_t *bo_new(const bo_opts_t *o, errbuf_t *eb);

/* Free it; accepts NULL and clears the pointer. */
void bo_destroy(bo_t **b);

/* Record an evaluation y = f(x) (x in the box). Returns 0, ERR_TOOBIG past
 * BO_MAX_POINTS, ERR_INVAL for a non-finite y or x outside the box. The GP
 * is refitted (hyperparameters and Cholesky) by the next bo_fit(). */
int bo_add(bo_t *b, const double *x, double y);

/* Fit the GP to the points added so far (at least 1): pick (l, sf2) by
 * the marginal likelihood, factorise. Returns 0 or ERR_INVAL (no points). */
int bo_fit(bo_t *b);

/* Posterior mean and variance (in the objective's units) at x after
 * bo_fit(). var may be NULL. */
double bo_mean(const bo_t *b, const double *x, double *var);

/* Expected improvement at x over the best observation, in the objective's
 * units (>= 0), after bo_fit(). */
double bo_ei(const bo_t *b, const double *x);

/* The next point to evaluate into x: maximum EI over random candidates
 * (fits first if points were added since). With no points yet, a uniform
 * random point. Returns 0 or ERR_INVAL. */
int bo_suggest(bo_t *b, double *x);

/* The chosen hyperparameters of the last fit: length scale (unit cube)
 * and signal variance (standardised units). */
void bo_hyper(const bo_t *b, double *len, double *sf2);

/* Points added, and the best one so far (x into best_x, may be NULL);
 * returns its y, or -inf with no points. */
size_t bo_count(const bo_t *b);
double bo_best(const bo_t *b, double *best_x);

/* Objective for bo_maximize: 0 and *y, or a negative ERR_* that stops the
 * search. */
typedef int bo_fn(void *ctx, const double *x, double *y);

/*
 * Maximise f over the box: ninit uniform random points, then suggestions
 * until neval evaluations in all (ninit <= neval <= BO_MAX_POINTS). The
 * best point goes to best_x, its value to *best_y. Returns 0 or the first
 * error of f or of the optimizer.
 */
int bo_maximize(bo_t *b, bo_fn *f, void *ctx, int ninit, int neval, double *best_x, double *best_y);

#endif
