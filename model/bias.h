/*
 * bias.h - the shallow position-bias tower (issue 15; Zhao et al., RecSys
 * 2019, "Recommending what video to watch next", section 4.3): a small MLP
 * over the bias slots (model_conf.h's bias_slots, e.g. position, device)
 * whose 1-unit logit is added to the click tower's logit in training, so
 * the bias those slots explain is learnt here and not by the main towers.
 * Prediction leaves it out unless asked (model_predict_set_bias).
 *
 * It also owns the split of a pooled row x (B, input_dim), in slot order,
 * into the main part (B, input_dim - bias_dim: the bottom's and towers'
 * input) and the bias part (B, bias_dim), and the merge of their gradients.
 *
 * NOTES ON THE DESIGN
 *   Parameters (the bias range, after the bottom in the model's block):
 *   for l = 0..nbias_layers (the last is the 1-unit logit layer) W (out,
 *   in) row-major then b (out); in_0 = bias_dim. Hidden layers are ReLU,
 *   the logit layer linear. Init: W ~ U(-1/sqrt(in), 1/sqrt(in)) in layout
 *   order, b = 0, like the towers.
 *
 *   Scratch for B rows (bias_scratch_len): every layer's output (B, out),
 *   then two (B, max width) backward buffers.
 *
 * Thread-safety: a bias_t is immutable after bias_new(); the kernels are
 * reentrant over caller-owned parameters and scratch.
 */
#ifndef FUNNEL_BIAS_H
#define FUNNEL_BIAS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/model_conf.h"

typedef struct bias bias_t;

/* The bias tower ms describes (ms->nbias > 0). NULL with eb filled:
 * ERR_INVAL (no bias slots, sizes out of range), ERR_NOMEM. */
bias_t *bias_new(const model_spec_t *ms, errbuf_t *eb);

/* Free; accepts NULL and clears the pointer. */
void bias_destroy(bias_t **b);

/* Floats of parameters (== model_spec_bias_len()), scratch REALs for B
 * rows, and the widths of the main and bias parts of a pooled row. */
size_t bias_nparams(const bias_t *b);
size_t bias_scratch_len(const bias_t *b, size_t B);
size_t bias_main_dim(const bias_t *b);
size_t bias_in_dim(const bias_t *b);

/* Draw the parameters p (the bias range) from the splitmix64 stream. */
void bias_init(const bias_t *b, float *p, uint64_t *rng);

/* FLOPs of one sample's training step (6 in out per layer). */
double bias_flops_per_sample(const bias_t *b);

/* xm (B, main) and xb (B, bias_dim) <- the columns of x (B, input_dim). */
void bias_split(const bias_t *b, const float *x, size_t B, float *xm, float *xb);
void bias_split_f64(const bias_t *b, const double *x, size_t B, double *xm, double *xb);

/* dx (B, input_dim) <- dxm and dxb in their columns (the inverse of split). */
void bias_merge(const bias_t *b, const float *dxm, const float *dxb, size_t B, float *dx);
void bias_merge_f64(const bias_t *b, const double *dxm, const double *dxb, size_t B, double *dx);

/* Forward over xb (B, bias_dim) with parameters p into scratch s; returns
 * the B bias logits (inside s). */
const float *bias_forward(const bias_t *b, float *s, const float *p, const float *xb, size_t B);
const double *bias_forward_f64(const bias_t *b, double *s, const double *p, const double *xb,
                               size_t B);

/*
 * Backward after bias_forward on the same s, p and xb, given dz (B) =
 * d loss / d bias logit: writes the parameter gradients into g (the bias
 * range, overwritten) and, if dxb is not NULL, stores d loss / d xb. The
 * scratch's activations are consumed.
 */
void bias_backward(const bias_t *b, float *s, const float *p, float *g, const float *xb, size_t B,
                   const double *dz, float *dxb);
void bias_backward_f64(const bias_t *b, double *s, const double *p, double *g, const double *xb,
                       size_t B, const double *dz, double *dxb);

#endif
