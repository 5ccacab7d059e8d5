/*
 * metrics.h - the math of evaluation: exact ROC AUC with ties, log-loss
 * with clamped probabilities, and calibration (mean prediction against the
 * observed rate), over the rows of a column that a mask selects.
 *
 * It reads no files and prints nothing (eval.c does). Pure functions over
 * caller-owned arrays; the only state is a caller-owned sort workspace, so
 * one workspace per thread.
 *
 * NOTES ON THE DESIGN
 *
 * AUC. The AUC is the probability that a random positive scores above a
 * random negative, a tie counting one half:
 *   AUC = (#{pos > neg} + 0.5 #{pos == neg}) / (P N).
 * Rows are sorted by score (a stable LSD radix sort of 64-bit words whose
 * high half is the float's bits mapped to an unsigned order and whose low
 * bit is the label: O(n), three passes of 11 bits), then swept once in
 * ascending order: a group of equal scores with gp positives and gn
 * negatives adds 2 gp (negatives below) + gp gn to an integer count of
 * twice the concordant pairs. The count is exact in 64 bits for n < 2^32
 * rows, so the AUC is that exact rational rounded once to double. +0 and
 * -0 are the same score. Scores must not be NaN (the parsers refuse them).
 *
 * Single class. With no positive or no negative row the AUC is undefined
 * and reported as NaN; log-loss and calibration are still defined.
 *
 * Log-loss. Mean over the selected rows of -(y log p + (1-y) log(1-p)) in
 * nats, with p clamped to [METRICS_EPS, 1 - METRICS_EPS] first, the clamp
 * of the PyTorch reference model, so a confident wrong 0 or 1 costs
 * -log(1e-7) = 16.1 rather than infinity.
 */
#ifndef FUNNEL_METRICS_H
#define FUNNEL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_EPS 1e-7 /* probability clamp of the log-loss */

/* Scratch memory of the AUC sort, kept across calls. */
typedef struct metrics_ws {
    uint64_t *key;     /* cap sort words */
    uint64_t *tmp;     /* cap sort words (the other half of each pass) */
    size_t cap;        /* words allocated in each array */
    void *scored;      /* scored_cap (score, row) pairs: weighted and per-request metrics */
    size_t scored_cap; /* pairs allocated */
} metrics_ws_t;

/* Means over the requests of one column (metrics_per_request). */
typedef struct metrics_requests {
    uint64_t requests; /* requests with both classes among their selected rows */
    double auc;        /* mean AUC over them; NaN if none */
    double ndcg;       /* mean NDCG over them; NaN if none */
} metrics_requests_t;

/* Everything measured about one score column against one label column. */
typedef struct metrics_summary {
    uint64_t n;       /* rows selected */
    uint64_t pos;     /* rows selected with label 1 */
    double auc;       /* NaN with a single class (or no rows) */
    double logloss;   /* nats per row, clamped; NaN with no rows */
    double mean_pred; /* mean score; NaN with no rows */
    double rate;      /* pos / n; NaN with no rows */
} metrics_summary_t;

/* An empty workspace (no memory yet). */
void metrics_ws_init(metrics_ws_t *ws);

/* Free the workspace's memory; it can be used again afterwards. */
void metrics_ws_release(metrics_ws_t *ws);

/*
 * Exact AUC of score against label (0/1; any nonzero counts as 1) over the
 * rows i < n with mask == NULL or mask[i] != 0. Scores must not be NaN.
 * Returns 0 and *auc (NaN when the selected rows have a single class),
 * ERR_NOMEM growing the workspace, ERR_TOOBIG for n >= 2^32.
 */
int metrics_auc(double *auc, const float *score, const uint8_t *label, const uint8_t *mask,
                size_t n, metrics_ws_t *ws);

/* Clamped mean log-loss (nats) over the selected rows; NaN if none. */
double metrics_logloss(const float *score, const uint8_t *label, const uint8_t *mask, size_t n);

/* Mean score and label rate over the selected rows (NaN, NaN if none);
 * *npos and *nsel receive the counts when not NULL. */
void metrics_calibration(double *mean_pred, double *rate, uint64_t *npos, uint64_t *nsel,
                         const float *score, const uint8_t *label, const uint8_t *mask, size_t n);

/*
 * AUC with row weights: the sum over (positive, negative) pairs of
 * w_p w_n [s_p > s_n] (a tie counts half) over (sum w_p)(sum w_n), rows
 * selected as in metrics_auc(); w NULL weighs every row 1. *auc is NaN
 * without both classes of positive weight. Returns 0 or ERR_NOMEM.
 */
int metrics_auc_weighted(double *auc, const float *score, const uint8_t *label, const uint8_t *mask,
                         const float *w, size_t n, metrics_ws_t *ws);

/*
 * Per-request ranking quality: rows with the same request id req[i] (in
 * consecutive rows; id 0 is no request) form one request; over the
 * requests whose selected rows hold both classes, the mean AUC and the
 * mean NDCG (binary gain = label; rank by descending score, ties in row
 * order; DCG = sum over positives at rank r (from 1) of 1 / log2(r + 1),
 * over the DCG of the positives ranked first). Returns 0 or ERR_NOMEM.
 */
int metrics_per_request(metrics_requests_t *out, const float *score, const uint8_t *label,
                        const uint8_t *mask, const uint64_t *req, size_t n, metrics_ws_t *ws);

/* All of the above in one call. Returns 0, ERR_NOMEM or ERR_TOOBIG. */
int metrics_summarize(metrics_summary_t *out, const float *score, const uint8_t *label,
                      const uint8_t *mask, size_t n, metrics_ws_t *ws);

#endif
