/*
 * heads.h - the multi-task heads: which probabilities a model type builds
 * from its towers' logits, which of them are trained against which label on
 * which rows, and what the model predicts. One table, one row per model
 * type (esm2, esmm, naive, nmtr); the loss and prediction code reads the table.
 *
 * Everything here works per sample on B x T logits in double precision: the
 * heads are a few scalar operations per sample, so double costs nothing
 * measurable next to the towers and serves both the float training path and
 * the double gradient checks.
 *
 * Not here: the towers (model.c), pooling (pool.c).
 *
 * Thread-safety: the table is constant; the functions are pure.
 */
#ifndef FUNNEL_HEADS_H
#define FUNNEL_HEADS_H

#include <stddef.h>
#include <stdint.h>

#define HEADS_MAX_TOWERS 4
#define HEADS_MAX_LOSS 3

/* Columns of a prediction row. */
enum { HEADS_PCTR = 0, HEADS_PCVR = 1, HEADS_PCTCVR = 2, HEADS_PCTAVR = 3, HEADS_NPRED = 4 };

typedef struct heads heads_t;

/* The table row of a model type (MODEL_*), or NULL for an unknown type. */
const heads_t *heads_for(int model_type);

/* Model type name ("esm2", ...), towers and losses of a row. */
const char *heads_name(const heads_t *h);
int heads_ntowers(const heads_t *h);
int heads_nloss(const heads_t *h);

/* Name of loss k ("ctr", "ctavr", "ctcvr", "cvr"), k < heads_nloss(). */
const char *heads_loss_name(const heads_t *h, int k);

/* 1 if the model predicts the column (every type predicts pctr, pcvr,
 * pctcvr; esm2 and nmtr predict pctavr). */
int heads_has_pred(const heads_t *h, int col);

/* The task a pairwise loss ranks within requests. */
enum { HEADS_PAIR_NONE = 0, HEADS_PAIR_CLICK = 1, HEADS_PAIR_BUY = 2 };

/*
 * Per-sample inputs of a batch beyond its labels, and the pairwise loss.
 * A NULL heads_sample_t means every weight 1 and no pairwise loss.
 */
typedef struct heads_sample {
    const float *weight; /* B training weights w_i >= 0 (NULL: all 1) */
    const uint64_t *req; /* B request ids, 0: none (NULL: no pairwise loss) */
    int pair_task;       /* HEADS_PAIR_*: whose probability is ranked */
    double pair_weight;  /* weight of the pairwise loss in the total */
    double *work;        /* B * (HEADS_MAX_TOWERS + 1) doubles, for the pairwise loss */
    double pair_loss;    /* out: the pairwise loss (see heads.c), 0 without pairs */
    size_t pairs;        /* out: (positive, negative) pairs in the batch */
} heads_sample_t;

/*
 * Losses of a batch. logits (B,T) row-major, T = heads_ntowers(h); labels
 * click/action/buy (B) are 0 or 1. weight[k] weighs loss k; smp (may be
 * NULL) gives each sample's weight w_i and the pairwise loss.
 *   loss[k]   = mean over loss k's rows of w_i times its binary
 *               cross-entropy (0 if it has no rows in this batch: naive's
 *               CVR without clicks)
 *   smp->pair_loss, smp->pairs: BPR loss within requests (heads.c notes)
 *   dlogits   (B,T) = d total / d logits (may be NULL)
 * Returns total = sum_k weight[k] * loss[k] + pair_weight * pair_loss.
 */
double heads_loss(const heads_t *h, const double *logits, const uint8_t *click,
                  const uint8_t *action, const uint8_t *buy, heads_sample_t *smp, size_t B,
                  const float *weight, double loss[HEADS_MAX_LOSS], double *dlogits);

/* heads_loss with double weights (the loss weighting's exp(-s_k) and
 * Pareto weights, model/lossw.h, keep double precision to the loss). */
double heads_loss_w(const heads_t *h, const double *logits, const uint8_t *click,
                    const uint8_t *action, const uint8_t *buy, heads_sample_t *smp, size_t B,
                    const double *weight, double loss[HEADS_MAX_LOSS], double *dlogits);

/* The Gram matrix G (K x K, K = heads_nloss) of the per-loss gradients
 * g_k = d loss[k] / d logits (B, T) of heads_loss (sample weights from smp,
 * no pairwise loss): G_kl = <g_k, g_l>, in one pass over the rows (row i's
 * gradients touch only row i's logits). For the pareto loss weighting. */
void heads_gram(const heads_t *h, const double *logits, const uint8_t *click, const uint8_t *action,
                const uint8_t *buy, const heads_sample_t *smp, size_t B, double *G);

/* Predictions out (B, HEADS_NPRED): pctr, pcvr, pctcvr, pctavr from logits
 * (B,T); a column the model does not predict is NaN. */
void heads_predict(const heads_t *h, const double *logits, size_t B, float *out);

#endif
