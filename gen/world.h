/*
 * world.h - the hidden synthetic world behind funnel-gen: users and items
 * with latent factors, the context of an impression, and the true
 * probabilities of ESM2's four heads, from which click, action and buy are
 * sampled. It knows nothing about files or formats (gen.c writes them).
 *
 * NOTES ON THE DESIGN
 *
 * Entities. Users u (Zipf activity, exponent user_zipf), items i
 * (Zipf-Mandelbrot popularity (rank + offset)^-item_zipf, so a long tail of
 * items is rarely seen). Each item has a category c (Zipf 0.8 over
 * categories), a shop s (uniform), a brand b (Zipf 0.8) and 1..max_tags
 * weighted tags (70% from its category's four "home" tags). Context: a
 * position 1..P (uniform) and an hour 0..23 (a diurnal traffic curve).
 *
 * Latent factors, K = latent_dim, split in halves A (dims < K/2) and B:
 *   p_u ~ N(0, I)                                 user factors
 *   q_i = 0.6 q_c + 0.4 q_s + 0.4 q_b + 0.57 e_i    item factors (~unit variance)
 *   aff_A = <p_u, q_i>_A / sqrt(|A|), aff_B likewise (each ~unit variance)
 * Item scalars mix N(0,1) parts of its category, shop, brand and itself,
 * plus the weighted sum of its tags' N(0, 0.3^2) parts:
 *   appeal_i = 0.4 a_c + 0.3 a_s + 0.3 a_b + 0.3 a_i + sum_t w_t a_t
 *   value_i  = rho (0.6 a_c + 0.4 a_s + 0.4 a_b + 0.3 a_i + sum w_t a_t)
 *              + sqrt(1 - rho^2) (0.6 v_c + 0.4 v_s + 0.4 v_b + 0.3 v_i + sum w_t v_t)
 * with rho = quality_corr: good items draw clicks and sell, so what the
 * click task learns about an item helps its conversion (shared
 * embeddings). Users: click_u ~ N(0, 0.5^2), conv_u ~ N(0, 0.3^2).
 * Clickbait: a clickbait_frac of shops are clickbait shops; 80% of their
 * items and 2% of the others are clickbait, with strength cb_i ~ U(0.5,
 * 1.5) (cb_i = 0 for other items).
 *
 * Logits (b0..b4 are intercepts solved at start-up by bisection on
 * calib_samples impressions so that the mean rates hit the targets):
 *   z1 = b0 + click_affinity (aff_A + aff_B)/sqrt2 + appeal_i + click_u
 *        - position_bias ln(pos) + hour_click(h) + clickbait_click cb_i
 *   core = value_i + conv_u - clickbait_conv cb_i
 *   z2 = b1 + conv_affinity aff_A + core + position_intent ln(pos) + hour_conv(h)
 *   z3 = b2 + 0.3 core          z4 = b3 + 0.3 core
 * hour_click(h) = 0.25 cos(2 pi (h-21)/24), hour_conv(h) = 0.2 cos(2 pi (h-20)/24).
 * y_k = E[sigmoid(z_k + noise e)], e ~ N(0,1) per impression and head
 * (unobservable noise, integrated out by a precomputed table so that the
 * truth is p(label | observable features)). y1 = p(click), y2 = p(action |
 * click), y3 = p(buy | action), y4 = p(buy | click, no action). Targets:
 * mean y1 = ctr; click-weighted y2 = action_rate; y3 over (click, action)
 * = buy_action_rate; y4 over (click, no action) = buy_noaction_rate.
 *
 * Switches (they never change which random numbers are drawn, so an
 * ablated world is the same world with one effect removed):
 *   clickbait=false         cb_i = 0 and no position_intent term
 *   action_informative=false  y3 = y4 = g(b4 + conv_affinity aff'_B
 *                           + value'_i + conv'_u - clickbait_conv cb_i
 *                           + position_intent ln(pos) + hour_conv(h)),
 *                           where value' = 0.6 v'_c + 0.4 v'_s + 0.4 v'_b
 *                           + 0.3 v'_i + sum w_t v'_t and conv'_u are
 *                           independent draws: the buy does not depend on
 *                           the action, nor share its hidden factors; b4 is
 *                           solved for the same buy/click as the default
 *   shared_latents=false    conversion heads use independent p', q' instead
 *                           of p, q, and rho = 0
 *   task_corr = t in [0, 1] (issue 15; off when < 0, the default) the
 *                           conversion heads' drivers become t times the
 *                           click's plus s = sqrt(1 - t^2) times
 *                           independent ones of the same spread, as in the
 *                           MMoE paper's synthetic tasks:
 *                             conv_a = t aff + s aff'_A   (p', q' dims A)
 *                             core = t (k_a appeal_i + k_u click_u)
 *                                    + s (value2_i + conv'_u) - clickbait
 *                           with k_a = std(value2)/std(appeal) over items
 *                           and k_u = 0.3/0.5; t = 1: conversion follows
 *                           the click's drivers, t = 0: unrelated to them
 *                           (run with clickbait=false for a clean study:
 *                           clickbait ties the tasks negatively)
 *
 * Sampling one impression: click ~ y1; a_cf ~ y2; buy_cf ~ (a_cf ? y3 : y4);
 * action = click & a_cf; buy = click & buy_cf. The same three uniforms are
 * drawn for every impression, so buy == buy_cf on clicked lines.
 *
 * Drift (days > 1): item i is live on days [birth_i, death_i]. With
 * drift f, an item is in the first day's catalog with probability
 * 1/(1 + f(D-1)), else born on a uniform day 2..D; it then survives each
 * further day with probability 1-f. So each day ~f of the live items leave
 * and about as many new ones appear.
 *
 * Thread-safety: a world_t is read-only after world_new() except for
 * world_set_day(); world_draw() on one world from several threads is safe
 * with one rng each, as long as no thread calls world_set_day().
 */
#ifndef FUNNEL_WORLD_H
#define FUNNEL_WORLD_H

#include <stdint.h>

#include "common/err.h"
#include "common/rng.h"
#include "gen/gen_conf.h"

#define WORLD_MAX_TAGS 4
#define WORLD_HOURS 24

/* xoshiro256** state; seed with world_rng_seed(). */
typedef struct world_rng {
    uint64_t s[4];
} world_rng_t;

/* Seed an rng from (seed, stream) through splitmix64: distinct streams of
 * one seed, and distinct seeds, give unrelated sequences. */
void world_rng_seed(world_rng_t *r, uint64_t seed, uint64_t stream);

/* Next 64 random bits. */
static inline uint64_t world_rng_next(world_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double world_rng_uniform(world_rng_t *r)
{
    return rng_unit(world_rng_next(r));
}

/* Observable attributes of an item. */
typedef struct world_item {
    uint32_t cate;                /* 0..categories-1 */
    uint32_t shop;                /* 0..shops-1 */
    uint32_t brand;               /* 0..brands-1 */
    uint16_t birth, death;        /* live on days birth..death (inclusive) */
    uint8_t ntags;                /* 0..WORLD_MAX_TAGS */
    uint8_t clickbait;            /* 1: drawn as clickbait (even if switched off) */
    uint16_t tag[WORLD_MAX_TAGS]; /* tag ids, distinct */
    float tag_w[WORLD_MAX_TAGS];  /* weights: 1, 0.5 or 0.25 */
} world_item_t;

/* One sampled impression: its observable ids, its true heads and labels. */
typedef struct world_imp {
    uint32_t user;
    uint32_t item;
    uint32_t position; /* 1..positions */
    uint32_t hour;     /* 0..23 */
    double y[4];       /* p(click), p(action|click), p(buy|action), p(buy|click,no action) */
    uint8_t click, action, buy, buy_cf;
} world_imp_t;

typedef struct world world_t;

/*
 * Build the world described by c (sizes, effects, targets) from c->seed,
 * select day 1 (or the whole catalog when c->days == 0) and calibrate the
 * intercepts on c->calib_samples impressions. Returns 0, ERR_NOMEM, or
 * ERR_INVAL (e.g. no live item on day 1) with eb filled. Caller owns *out;
 * release with world_destroy().
 */
int world_new(world_t **out, const gen_conf_t *c, errbuf_t *eb);

/* Free a world; accepts NULL and clears the pointer. */
void world_destroy(world_t **w);

/*
 * Select the items impressions are drawn from: day 1..days (those live that
 * day), or 0 for the whole catalog. Intercepts are not recalibrated.
 * Returns 0, ERR_INVAL (bad day or no live item) or ERR_NOMEM.
 */
int world_set_day(world_t *w, int day, errbuf_t *eb);

/* Number of items live on the selected day. */
uint32_t world_live_items(const world_t *w);

/* Draw one impression (context, true heads, labels) using r. Consumes a
 * fixed number of random numbers per call. */
void world_draw(const world_t *w, world_rng_t *r, world_imp_t *imp);

/* Truth columns of FORMAT.md for an impression: t[0] pctr = y1,
 * t[1] pcvr = (1-y2) y4 + y2 y3, t[2] pctcvr = y1 pcvr, t[3] pctavr = y1 y2. */
void world_truth(const world_imp_t *imp, double t[4]);

/* The relevance of an impression (issue 15's position bias): its true
 * p(click) y1 with the position term removed, i.e. y1 as if shown at
 * position 1 (position_bias ln(1) = 0). */
double world_relevance(const world_t *w, const world_imp_t *imp);

/* Attributes of item i (i < items). */
const world_item_t *world_item(const world_t *w, uint32_t i);

/* The calibrated intercepts b0..b4 (see the design notes). */
void world_intercepts(const world_t *w, double b[5]);

/* Fraction of items drawn as clickbait (before the switch). */
double world_clickbait_share(const world_t *w);

#endif
