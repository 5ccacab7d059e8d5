/*
 * lossw.h - loss weighting (issue 15 point 2): how the per-task losses of
 * a batch are combined into the one loss the model descends.
 *
 *   fixed        total = sum_k w_k L_k, w_k = loss_weights (the default).
 *   uncertainty  Kendall, Gal and Cipolla, CVPR 2018: a learned
 *                log-variance s_k per loss (a dense weight, model.h),
 *                total = sum_k exp(-s_k) w_k L_k + s_k.
 *   pareto       PE-LTR (Lin et al., RecSys 2019): per batch, the weights
 *                u on the simplex with u_k >= c (pareto_min_weight) that
 *                minimise || sum_k u_k grad L_k ||^2; total = sum_k K u_k L_k.
 *
 * NOTES ON THE DESIGN
 *   Uncertainty, the form. The paper's classification likelihood (a
 *   softmax scaled by 1/sigma^2) gives L_k / sigma_k^2 + log sigma_k; with
 *   s_k = log sigma_k^2 that is exp(-s_k) L_k + s_k / 2. We use + s_k (the
 *   form of most public implementations and of issue 15): the optimum of
 *   s_k alone is then exp(s_k) = w_k L_k, so the effective weight
 *   exp(-s_k) w_k is 1 / L_k of the current loss - a cross-entropy near 0
 *   is not up-weighted twice as hard as with s_k / 2, which on these
 *   logs (buy losses ~0.02) would drive the buy weight to ~100. Gradients:
 *     d total / d logits = sum_k exp(-s_k) w_k dL_k / d logits
 *     d total / d s_k    = 1 - exp(-s_k) w_k L_k.
 *   s_k starts at 0, so the first step weighs like fixed.
 *
 *   Pareto, why PE-LTR and not GradNorm. GradNorm needs per-task gradient
 *   norms at a chosen last shared layer and a second loss with its own
 *   weight updates and asymmetry hyper-parameter alpha, and its "last
 *   shared layer" differs per bottom (concat has none in the dense part).
 *   PE-LTR needs only the per-task gradients of what the tasks share and a
 *   small quadratic program, with no state across steps. Which gradients:
 *   every parameter reaches the losses through the B x T logits, so
 *   grad_theta L_k = J^T g_k with g_k = d L_k / d logits and the same J for
 *   every k; || sum u_k J^T g_k || <= ||J|| || sum u_k g_k ||. We minimise
 *   the bound over the logit gradients (the upper bound MGDA-UB of Sener
 *   and Koltun, NeurIPS 2018, takes over the shared representation): one
 *   backward pass instead of K, and it is exact for the shared towers'
 *   coupling the heads create (esm2's ctcvr reaches towers 0..3). The Gram
 *   matrix G_kl = <g_k, g_l> comes from one extra pass over the heads
 *   (heads_gram), no tower work. The weights are constants of the step
 *   (not differentiated), as in PE-LTR; loss_weights are not used. They
 *   are scaled by K so that equal shares are the fixed 1,1,1.
 *
 *   The QP min_u u^T G u, sum u = 1, u_k >= c, is solved exactly for
 *   K <= 3: u = c + (1 - K c) v, v on the simplex; every support S of v
 *   has a KKT point from a (|S|+1) linear system; the best feasible one is
 *   the optimum (a convex QP attains its minimum at such a point). With
 *   K = 2 and c = 0 this is the closed form of MGDA:
 *   u_1 = clip((G22 - G12) / (G11 + G22 - 2 G12), 0, 1).
 *
 * Thread-safety: pure functions.
 */
#ifndef FUNNEL_LOSSW_H
#define FUNNEL_LOSSW_H

#include <stddef.h>
#include <stdint.h>

#include "model/heads.h"

/*
 * The min-norm shares u (K <= HEADS_MAX_LOSS) for Gram matrix G (K x K,
 * row-major, positive semi-definite) with u_k >= c, sum u = 1, 0 <= c <=
 * 1/K. Returns 0, or -1 for a bad K or c (u then equal shares).
 */
int lossw_min_norm(int K, const double *G, double c, double *u);

#endif
