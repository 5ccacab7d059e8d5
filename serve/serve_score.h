/*
 * serve_score.h - what funnel-serve scores with: the model's layout (from
 * a bundle's META), the serving state (one day's rows and tower weights,
 * loaded from a bundle or built from the current state plus the next
 * bundle's delta), and a scorer (one per thread: a model with its scratch)
 * that turns a request's tokens into pctr, pcvr, pctcvr [, pctavr].
 *
 * It does no networking (serve_server.h) and never changes a state once
 * built: a new day is a new state, swapped in by the server.
 *
 * NOTES ON THE DESIGN
 *   Scoring equals training's prediction (worker/predict.c) float for
 *   float: a token's key is keyhash of (slot, value); each slot's input is
 *   0 + w_1 row_1 + w_2 row_2 ... in token order, with a key that has no
 *   row contributing w * 0 (predict pulls zeros for it); the towers run on
 *   the concatenation through model_predict. The user/context tokens are
 *   pooled once per request into one input row, which each candidate's row
 *   starts from before its own tokens are added. So a log line split into
 *   user slots and candidate slots scores exactly as predict scores the
 *   line, as long as no slot has tokens on both sides (a slot's tokens
 *   would then be summed user's first).
 *
 *   Same floats also needs the same matrix products: OpenBLAS's sgemm
 *   rounds a row's dot products differently depending on how many rows
 *   the product has and where the row sits among them (its kernels treat
 *   edge blocks and small products apart: seen as a last-digit change of
 *   pctcvr in ~5 % of rows when a predict log is shifted by one line). So
 *   the candidates of a request go through model_predict in chunks of
 *   SERVE_BATCH = predict's batch, in request order, on one BLAS thread:
 *   a request's scores equal, float for float, `funnel-worker predict` of
 *   a log holding exactly the request's lines (its user tokens on each),
 *   and differ from predict of a longer log only in such last bits.
 *
 * Thread-safety: a layout and a state are immutable once built and shared
 * by every thread; a scorer belongs to one thread.
 */
#ifndef FUNNEL_SERVE_SCORE_H
#define FUNNEL_SERVE_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/meta.h"
#include "common/model_conf.h"
#include "data/tokens.h"
#include "table/bundle_rows.h"

#define SERVE_BATCH 4096 /* candidates per model_predict call: predict's batch */

/* The model layout a server serves (every state must have it). */
typedef struct serve_layout {
    model_spec_t ms;
    tokens_slots_t slots; /* slot name -> index */
    meta_t meta;          /* of the first bundle */
    int col[MODEL_MAX_SLOTS];
    int npred; /* 3, or 4 with pctavr (esm2) */
} serve_layout_t;

typedef struct serve_state {
    uint64_t gen; /* unique per state built by this process */
    int day;
    int base_day;   /* bundle's base_day */
    char dir[4096]; /* the bundle it came from */
    bundle_rows_t *rows;
    float *params; /* tower weights */
    size_t nparams;
    int refs; /* the server's: readers holding it + 1 while current */
} serve_state_t;

/* Fill lay from the bundle in dir (verified). 0 or ERR_* naming the file. */
int serve_layout_load(serve_layout_t *lay, const char *dir, errbuf_t *eb);

/*
 * Build the state of the bundle in dir: verify it, check its model is
 * lay's (digest), load the towers and then either apply its delta to cur
 * (when cur is not NULL and the bundle's base_day is cur's day) or load its
 * full export. *how (if not NULL) gets "delta" or "full". Returns 0 or
 * ERR_*; cur is unchanged either way. Free with serve_state_destroy().
 */
int serve_state_build(serve_state_t **out, const serve_layout_t *lay, const serve_state_t *cur,
                      const char *dir, const char **how, errbuf_t *eb);
void serve_state_destroy(serve_state_t **s);

typedef struct serve_scorer serve_scorer_t;

/* A scorer for lay (which must outlive it). NULL with eb filled. */
serve_scorer_t *serve_scorer_new(const serve_layout_t *lay, errbuf_t *eb);
void serve_scorer_destroy(serve_scorer_t **sc);

/*
 * Score n candidates (their token texts cand[i]) for the user/context
 * tokens user, on state st: pred gets n * lay->npred floats. Returns 0,
 * ERR_PARSE (a malformed token or weight, named in eb), ERR_NOMEM.
 */
int serve_scorer_score(serve_scorer_t *sc, const serve_state_t *st, const char *user,
                       size_t user_len, const char *const *cand, const size_t *cand_len, size_t n,
                       float *pred, errbuf_t *eb);

#endif
