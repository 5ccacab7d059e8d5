/*
 * bottom.h - the bottoms of the multi-task model: what turns the pooled
 * embeddings x (B, input_dim) into each tower's input. One table of shapes
 * drives five bottoms (model_conf.h's 'bottom' key):
 *
 *   concat  no bottom: every tower reads x (model.c handles it; no bottom_t)
 *   shared  one ReLU MLP, its output feeds every tower (hard sharing)
 *   mmoe    E expert MLPs; tower t reads sum_e g_te(x) expert_e(x), with
 *           g_t = softmax(x W_t^T + b_t) its own gate (Ma et al., KDD 2018)
 *   omoe    the same experts under one gate shared by every tower
 *   ple     L levels of CGC (Tang et al., RecSys 2020): per level each task
 *           has its own experts and the level has shared ones; task k's gate
 *           mixes its experts and the shared ones, and at inner levels a
 *           shared gate mixes every expert to feed the next level's shared
 *           experts; task k's experts at level l + 1 read task k's mixture.
 *
 * Forward and backward use the dense layer module (dense.h) and
 * hand-written gradients for the gates (softmax) and mixtures, in float on
 * OpenBLAS and in double on the plain loops (gradient checks).
 *
 * NOTES ON THE DESIGN
 *   Parameters (the bottom's range, after the towers in the model's block),
 *   level after level: every expert (task 0's, ..., task T-1's, then the
 *   shared ones), each layer W (out, in) row-major then b (out); then the
 *   task gates 0..T-1 (untied bottoms: mmoe, ple), then the shared gate (at
 *   inner ple levels, and the one gate of shared/omoe), each W (nc, in) then
 *   b (nc). A gate over one expert is the identity and has no parameters
 *   (so shared is omoe with one expert and no gate). Init: W ~
 *   U(-1/sqrt(in), 1/sqrt(in)) in layout order, b = 0, like the towers.
 *
 *   Scratch: one caller-owned buffer of bottom_scratch_len(B) REALs holds
 *   every expert layer's output, gate probabilities and mixtures and their
 *   gradients for a batch of B rows, each (B, width) matrix at s + B * col.
 *   Forward fills it, the towers read their inputs from it and write their
 *   input gradients into it (bottom_doutput), backward consumes it.
 *
 *   Threads: forward runs each level's experts split across the team
 *   (expert e on member e mod n), then its gates likewise; backward runs
 *   the gates in the caller (their products are (B, nc) small), then the
 *   experts split across the team, each member > 0 adding its experts'
 *   input gradients into its own partial that the caller then sums in
 *   member order. Every expert's products stay single-threaded.
 *
 * Thread-safety: a bottom_t is immutable after bottom_new(); the kernels
 * are reentrant over caller-owned parameters and scratch.
 */
#ifndef FUNNEL_BOTTOM_H
#define FUNNEL_BOTTOM_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/model_conf.h"
#include "model/team.h"

typedef struct bottom bottom_t;

/*
 * The bottom ms describes (ms->bottom != MODEL_BOTTOM_CONCAT), for
 * ms->ntowers towers. Returns NULL with eb filled: ERR_INVAL (concat, or
 * sizes out of range), ERR_NOMEM. Release with bottom_destroy().
 */
bottom_t *bottom_new(const model_spec_t *ms, errbuf_t *eb);

/* Free; accepts NULL and clears the pointer. */
void bottom_destroy(bottom_t **b);

/* Floats of parameters (== model_spec_bottom_len()), the output width
 * (each tower's input), and the scratch length for B rows (REALs). */
size_t bottom_nparams(const bottom_t *b);
size_t bottom_out_dim(const bottom_t *b);
size_t bottom_scratch_len(const bottom_t *b, size_t B);

/* Draw the bottom's parameters p (its range) in layout order from the
 * splitmix64 stream *rng (see the notes). */
void bottom_init(const bottom_t *b, float *p, uint64_t *rng);

/* FLOPs of one sample's training step (forward 2 in out, backward 4 in out
 * per layer and gate). */
double bottom_flops_per_sample(const bottom_t *b);

/* REALs of per-member scratch backward needs for B rows: the caller passes
 * team_size(team) of them, one after another, as mem. */
size_t bottom_member_len(const bottom_t *b, size_t B);

/* Forward over x (B, input_dim) with parameters p into scratch s, on the
 * team (the caller is member 0). */
void bottom_forward(const bottom_t *b, team_t *team, float *s, const float *p, const float *x,
                    size_t B);
void bottom_forward_f64(const bottom_t *b, team_t *team, double *s, const double *p,
                        const double *x, size_t B);

/* Tower t's input (B, out_dim) in s after bottom_forward, and where tower t
 * stores (not adds) the gradient of the loss w.r.t. it before backward. */
const float *bottom_output(const bottom_t *b, const float *s, int t, size_t B);
float *bottom_doutput(const bottom_t *b, float *s, int t, size_t B);
const double *bottom_output_f64(const bottom_t *b, const double *s, int t, size_t B);
double *bottom_doutput_f64(const bottom_t *b, double *s, int t, size_t B);

/*
 * Backward after bottom_forward on the same s, x and p and the towers'
 * gradients in bottom_doutput(): writes every parameter gradient into g
 * (the bottom's range, overwritten) and, if dx is not NULL, stores
 * d loss / d x (B, input_dim) into dx. Scratch s is consumed; mem is
 * team_size(team) * bottom_member_len(B) REALs of per-member scratch.
 */
void bottom_backward(const bottom_t *b, team_t *team, float *s, const float *p, float *g,
                     const float *x, size_t B, float *dx, float *mem);
void bottom_backward_f64(const bottom_t *b, team_t *team, double *s, const double *p, double *g,
                         const double *x, size_t B, double *dx, double *mem);

#endif
