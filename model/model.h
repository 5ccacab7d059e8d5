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
 *   Init draws the towers first, then the bottom, from the same stream.
 *
 *   Init: W ~ U(-1/sqrt(in), 1/sqrt(in)) (the distribution of PyTorch's
 *   nn.Linear weight init, kaiming_uniform with a = sqrt(5)), drawn in
 *   layout order from a splitmix64 stream of the seed; b = 0.
 *
 *   Dense checkpoint (model_save_dense), every field little-endian:
 *     magic    8 bytes "FNLDENSE"
 *     u32      version (MODEL_DENSE_VERSION)
 *     u32      model type (MODEL_*)
 *     u32      input_dim
 *     u32      nlayers, then u32 layer[nlayers]
 *     (version 2 only, the bottom:)
 *     u32      bottom (MODEL_BOTTOM_*), u32 nbottom_layers, then u32
 *              bottom_layer[nbottom_layers], u32 experts, u32 ple_shared,
 *              u32 ple_task, u32 ple_levels
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
 *   other bottom version 2; both load (a version 1 file is a concat model).
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

/* Weighted total of losses from model_train_step: sum_k weight_k loss[k]. */
double model_loss_total(const model_t *m, const double loss[HEADS_MAX_LOSS]);

/* One dense optimizer step with the gradient block (step count + 1). */
void model_apply_grads(model_t *m);

/*
 * Predictions out (B, HEADS_NPRED) = pctr, pcvr, pctcvr, pctavr for x
 * (B, input_dim); pctavr is NaN for models without it. Returns 0 or
 * ERR_INVAL (B == 0 or B > max_batch).
 */
int model_predict(model_t *m, const float *x, size_t B, float *out);

/* The blocks (owned by the model, valid until model_destroy); *n gets the
 * length in floats. Writing the parameter block is how a pulled copy is
 * installed; the gradient block is what a push sends. */
float *model_params(model_t *m, size_t *n);
float *model_grads(model_t *m, size_t *n);
float *model_opt_state(model_t *m, size_t *n);

/* Optimizer steps applied so far (Adam's t of the last step). */
int64_t model_step(const model_t *m);

/* The model's spec (its own copy), heads and loss count. */
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
