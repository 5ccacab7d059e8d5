/*
 * model.h - the dense part of the multi-task model: the towers (MLPs over
 * the pooled embeddings), the heads and losses of the model type (heads.h),
 * the parameter / gradient / optimizer-state blocks, the dense optimizer
 * step, prediction, and the dense checkpoint format.
 *
 * Not here: embeddings and pooling (pool.h, param.h) - the caller pools a
 * batch into x (B, input_dim) and scatters dx back into row gradients.
 *
 * NOTES ON THE DESIGN
 *   Parameters, gradients and the optimizer state each live in ONE float
 *   block laid out by one table: for tower t = 0..T-1, for layer
 *   l = 0..nlayers (the last one is the 1-unit logit layer): W (out, in)
 *   row-major, then b (out). Sizes: in_0 = input_dim, in_l = layer[l-1],
 *   out_l = layer[l], out_nlayers = 1. So tower t's parameters are the
 *   contiguous range [t * n_t, (t + 1) * n_t) of the block (all towers have
 *   the same shape). The gradient block has the same layout. The optimizer
 *   state block is tower after tower, optim_dense_state_len(o, n_t) floats
 *   each (Adam: the tower's m, then its v), so each tower is updated on its
 *   own. In cluster mode the worker pulls the parameter block from and
 *   pushes the gradient block to the parameter servers as flat float
 *   ranges.
 *
 *   Bottoms (issue 15; bottom.h): with a bottom other than concat, layer 0
 *   of every tower reads the bottom's output (in_0 = the last bottom layer's
 *   size, model_spec_tower_input()) instead of x, and the bottom's
 *   parameters (bottom.h's layout) follow the last tower in the parameter
 *   and gradient blocks: [T * n_t, nparams). Its optimizer state follows
 *   the towers' state. A concat model's layout is exactly the one above.
 *
 *   Bias tower (issue 15; bias.h): with bias slots, the pooled row x
 *   (B, input_dim) is split by columns into the main part (every other
 *   slot, in slot order: the bottom's and towers' input) and the bias part
 *   (the bias tower's input). The bias tower's parameters follow the
 *   bottom's (or the towers' when concat) in the parameter and gradient
 *   blocks, and its optimizer state follows the bottom's. In training and
 *   in model_loss its logit is added to the click logit (tower 0) before
 *   the heads, so every head built on pCTR (esm2's pCTAVR and pCTCVR,
 *   esmm's pCTCVR) sees the biased click probability in training; the
 *   gradient of the click logit flows into the bias tower unchanged.
 *   model_predict leaves it out unless model_predict_set_bias() asked.
 *   Init draws it after the bottom, from the same stream.
 *   Init draws the towers first, then the bottom, from the same stream.
 *
 *   Init: W ~ U(-1/sqrt(in), 1/sqrt(in)) (the distribution of PyTorch's
 *   nn.Linear weight init, kaiming_uniform with a = sqrt(5)), drawn in
 *   layout order from a splitmix64 stream of the seed; b = 0.
 *
 *   Dense checkpoint (model_save_dense), every field little-endian:
 *     magic    8 bytes "FNLDENSE"
 *     u32      version (MODEL_DENSE_VERSION)
 *     (version 3 only, the bias tower and the loss weighting:)
 *     u32      bias_dim (0: no bias tower), u32 nbias_layers, then u32
 *              bias_layer[nbias_layers]
 *     u32      loss weighting (MODEL_LW_UNCERTAINTY, or MODEL_LW_FIXED:
 *              no log-variances)
 *     u32      model type (MODEL_*)
 *     u32      input_dim
 *     u32      nlayers, then u32 layer[nlayers]
 *     (versions 2 and 3, the bottom:)
 *     u32      bottom (MODEL_BOTTOM_*), then unless it is concat: u32
 *              nbottom_layers, u32 bottom_layer[nbottom_layers], u32
 *              experts, u32 ple_shared, u32 ple_task, u32 ple_levels
 *     u32      dense optimizer kind (OPTIM_*)
 *     u64      nparams
 *     u64      nstate
 *     i64      step (optimizer steps applied)
 *     f32      params[nparams]
 *     f32      state[nstate]
 *     u64      FNV-1a 64 of every preceding byte after the magic
 *   Loading into a model of another type, shape or optimizer fails with
 *   ERR_MISMATCH naming the field; a bad magic or checksum or a short file
 *   is ERR_CORRUPT; another version ERR_VERSION. Concat models write
 *   version 1 (byte for byte the format before bottoms existed) and any
 *   other bottom version 2; models with a bias tower or with uncertainty
 *   loss weighting (the two that add parameters after the bottom's)
 *   version 3. All load (a version 1 file is a concat model, versions 1
 *   and 2 have no bias tower and no log-variances). input_dim is the main
 *   part's width (input_dim - bias_dim). The other weightings add no
 *   parameters and keep versions 1 and 2, byte for byte. A file without
 *   log-variances loads into an uncertainty model with every s_k = 0 and
 *   its optimizer state 0 (continuing an old model under uncertainty
 *   weighting); a file with them into a model without is ERR_MISMATCH
 *   naming loss_weighting; a bias tower in one and not the other is
 *   ERR_MISMATCH naming bias_slots.
 *
 *   Order of the dense block: the towers, the bottom, the bias tower
 *   (bias.h), then with uncertainty weighting the nloss log-variances s_k,
 *   [nparams - nloss, nparams); optimizer state in the same order. The s_k
 *   are dense weights like any other, pulled from and pushed to the
 *   shards, saved and loaded.
 *
 *   Threads (model_threads_set): MODEL_PAR_TOWERS runs whole towers on a
 *   team of threads, each tower's sgemms single-threaded (esm2's 4 towers
 *   split 2 + 2 on two cores, esmm's 2 towers 1 + 1); MODEL_PAR_BLAS runs
 *   the towers one after another and lets OpenBLAS split each sgemm.
 *   Concat models run the towers' first layers (which all read x) as one
 *   fused layer, its forward and input-gradient products split by rows
 *   across the team (tower_tmpl.h); bottoms split their experts and gates
 *   across the team (bottom.h).
 *   A new model uses one thread.
 *
 * Thread-safety: a model_t is used by one thread at a time.
 */
#ifndef FUNNEL_MODEL_H
#define FUNNEL_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/model_conf.h"
#include "model/heads.h"

#define MODEL_DENSE_MAGIC "FNLDENSE"
#define MODEL_DENSE_VERSION 2        /* written by models with a bottom */
#define MODEL_DENSE_VERSION_CONCAT 1 /* written by concat models: no bottom fields */
#define MODEL_DENSE_VERSION_EXT 3    /* written with a bias tower or log-variances */

typedef struct model model_t;

/*
 * A new model for ms (copied; need not outlive the model) that accepts
 * batches of up to max_batch rows, initialized from seed (see the notes).
 * All memory (blocks and per-step scratch) is allocated here. Returns NULL
 * on error with eb filled (ERR_INVAL for a bad spec, ERR_NOMEM). Caller owns
 * the model; release with model_destroy().
 */
model_t *model_new(const model_spec_t *ms, size_t max_batch, uint64_t seed, errbuf_t *eb);

/* Free the model; accepts NULL and clears the pointer. */
void model_destroy(model_t **m);

/*
 * Forward and backward over a batch: x (B, input_dim) pooled inputs, labels
 * click/action/buy (B) of 0/1, smp the sample weights and pairwise loss
 * (NULL: weights 1, no pairwise loss; heads.h). Fills the gradient block (overwritten, not
 * accumulated), dx (B, input_dim) = d total / d x (may be NULL), and
 * loss[k] = mean cross-entropy of loss k for k < model_nloss() (see
 * heads.h). Does not change the parameters. Returns 0, or ERR_INVAL if
 * B == 0 or B > max_batch.
 */
int model_train_step(model_t *m, const float *x, const uint8_t *click, const uint8_t *action,
                     const uint8_t *buy, heads_sample_t *smp, size_t B, float *dx,
                     double loss[HEADS_MAX_LOSS]);

/* The losses of a batch without the backward pass (validation). Same
 * arguments and returns as model_train_step; the gradients are untouched. */
int model_loss(model_t *m, const float *x, const uint8_t *click, const uint8_t *action,
               const uint8_t *buy, heads_sample_t *smp, size_t B, double loss[HEADS_MAX_LOSS]);

/* Weighted total of losses from the last model_train_step or model_loss:
 * sum_k weight_k loss[k] with the weights that step used (lossw.h), plus
 * sum_k s_k with uncertainty weighting; without the pairwise loss. */
double model_loss_total(const model_t *m, const double loss[HEADS_MAX_LOSS]);

/* The loss weights the last step used (fixed: loss_weights; uncertainty:
 * loss_weight_k exp(-s_k); pareto: K times the min-norm shares) into w;
 * returns their count (model_nloss). */
int model_loss_weights(const model_t *m, double w[HEADS_MAX_LOSS]);

/* One dense optimizer step with the gradient block (step count + 1), in
 * the training step's float mode (fpmode_enter: values below
 * 1.2e-38 are read and written as 0). */
void model_apply_grads(model_t *m);

/*
 * Predictions out (B, HEADS_NPRED) = pctr, pcvr, pctcvr, pctavr for x
 * (B, input_dim); pctavr is NaN for models without it. Returns 0 or
 * ERR_INVAL (B == 0 or B > max_batch).
 */
int model_predict(model_t *m, const float *x, size_t B, float *out);

/* Whether model_predict adds the bias tower's logit to the click logit
 * (off in a new model; no effect without bias slots). Returns the previous
 * setting. */
int model_predict_set_bias(model_t *m, int on);

/* 1 if the model has a bias tower (bias slots in its spec). */
int model_has_bias(const model_t *m);

/* The blocks (owned by the model, valid until model_destroy); *n gets the
 * length in floats. Writing the parameter block is how a pulled copy is
 * installed; the gradient block is what a push sends. */
float *model_params(model_t *m, size_t *n);
float *model_grads(model_t *m, size_t *n);
float *model_opt_state(model_t *m, size_t *n);

/* Optimizer steps applied so far (Adam's t of the last step). */
int64_t model_step(const model_t *m);

/* The model's spec (its own copy of the one model_new got), heads and
 * loss count. */
const model_spec_t *model_spec(const model_t *m);
const heads_t *model_heads(const model_t *m);
int model_nloss(const model_t *m);

enum { MODEL_PAR_BLAS = 0, MODEL_PAR_TOWERS = 1 };

/*
 * Use n threads (1..64) for the towers, split as par says (MODEL_PAR_*, see
 * the notes). Sets OpenBLAS's process-wide thread count (n for BLAS, 1 for
 * TOWERS). Returns 0, ERR_INVAL or ERR_NOMEM (the model keeps its previous
 * setting). Not while another thread uses the model.
 */
int model_threads_set(model_t *m, int n, int par, errbuf_t *eb);

/* Threads in use; *par (if not NULL) gets the MODEL_PAR_* mode. */
int model_threads(const model_t *m, int *par);

/* Precision of the float path's products: dense.h's DENSE_FP32 (new
 * models) or DENSE_BF16 (bf16 inputs, fp32 accumulation; parameters,
 * gradients and optimizer state stay fp32). The model applies it
 * (dense_precision_set) at the start of each step and prediction. */
void model_precision_set(model_t *m, int precision);

/* FLOPs of one sample's training step: the towers' matrix products,
 * forward (2 in out per layer) + backward (dW and din: 4 in out). */
double model_flops_per_sample(const model_t *m);

/* Write / read the dense checkpoint (format in the notes). 0 or ERR_IO
 * (write / read failure), ERR_CORRUPT, ERR_VERSION, ERR_MISMATCH; eb says
 * which field. A failed load leaves the model unchanged. */
int model_save_dense(const model_t *m, FILE *f, errbuf_t *eb);
int model_load_dense(model_t *m, FILE *f, errbuf_t *eb);

/*
 * The same training step in double precision, over a caller-owned
 * parameter block p (model_params layout, double): the towers run on the
 * plain-loop kernels, on the model's team of threads. For gradient checks;
 * allocates its scratch per call.
 * g (same layout) receives the gradients if not NULL, dx (B, input_dim) if
 * not NULL; *total (if not NULL) gets the weighted total loss. Returns 0,
 * ERR_INVAL or ERR_NOMEM.
 */
int model_train_step_f64(const model_t *m, const double *p, const double *x, const uint8_t *click,
                         const uint8_t *action, const uint8_t *buy, heads_sample_t *smp, size_t B,
                         double *g, double *dx, double loss[HEADS_MAX_LOSS], double *total);

#endif
