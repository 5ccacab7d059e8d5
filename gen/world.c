/*
 * world.c - the hidden synthetic world: entities, latent factors, drift,
 * intercept calibration and the sampling of one impression. See world.h
 * for the equations; this file implements them and nothing about output.
 *
 * Every random number of the world is drawn in world_new() in one fixed
 * order from the stream (seed, WORLD_STREAM), whatever the switches say,
 * so that ablations differ from the default world only by their effect.
 * Popularity draws use Vose alias tables: O(1) per draw, one 64-bit random
 * number (high half picks the column, low half tosses the coin).
 */
#include "gen/world.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WORLD_STREAM 0x77u
#define CALIB_STREAM 0xca1u

/* Mixing weights of the item factors and scalars (see world.h). */
#define W_CATE 0.6f
#define W_SHOP 0.4f
#define W_BRAND 0.4f
#define W_ITEM 0.57f
#define USER_CLICK_STD 0.5 /* std of a user's click propensity */
#define USER_CONV_STD 0.3  /* std of a user's conversion propensity */
#define TAG_EFFECT_STD 0.3
#define Y34_SLOPE 0.3 /* weight of the conversion core in z3, z4 */
#define CATE_ZIPF 0.8
#define BRAND_ZIPF 0.8
#define TAG_ZIPF 1.0
#define HOME_TAGS 4
#define HOME_TAG_PROB 0.7
#define CB_SHOP_ITEM_PROB 0.8
#define CB_OTHER_ITEM_PROB 0.02

/* Smoothed sigmoid table: g(z) = E sigmoid(z + noise e) on [-G_RANGE, G_RANGE]. */
#define G_RANGE 40.0
#define G_STEPS_PER_UNIT 64
#define G_N ((int)(2 * G_RANGE * G_STEPS_PER_UNIT) + 1)

/* Relative traffic per hour of the day (late-evening peak, night trough). */
static const double hour_traffic[WORLD_HOURS] = {60, 35, 20, 12, 10, 12, 20, 35, 50,  60,  68, 70,
                                                 72, 70, 68, 68, 70, 72, 78, 88, 100, 105, 95, 80};

/* Weight of an item's second and later tags (its first has weight 1). */
static const float tag_weights[3] = {1.0f, 0.5f, 0.25f};

typedef struct alias {
    uint32_t n;       /* columns */
    uint32_t *thresh; /* coin threshold of each column, 32-bit fixed point */
    uint32_t *alias;  /* the other outcome of each column */
    uint32_t *map;    /* column outcome -> id (NULL: identity) */
} alias_t;

struct world {
    int K, half; /* latent dims, |A| */
    uint32_t n_users, n_items, n_positions;
    int days;
    int clickbait, action_informative, shared;
    double click_aff, conv_aff, cb_click, cb_conv;
    double tc, tc_s;                /* task_corr (< 0: off) and sqrt(1 - tc^2) */
    double tc_ka;                   /* std(value2) / std(appeal) over items */
    double tc_ku;                   /* std(uconv2) / std(uclick): USER_CONV_STD / USER_CLICK_STD */
    double b[5];                    /* intercepts */
    float *ulat, *ulat2;            /* (n_users, K) */
    float *ilat, *ilat2;            /* (n_items, K) */
    float *uclick, *uconv, *uconv2; /* (n_users) */
    float *appeal, *value, *value2, *cb;   /* (n_items); cb: strength, 0 if not clickbait */
    double *iweight;                       /* (n_items) popularity weight */
    world_item_t *item;                    /* (n_items) */
    float pos_click[1001], pos_conv[1001]; /* by position 1..n_positions */
    float hour_click[WORLD_HOURS], hour_conv[WORLD_HOURS];
    alias_t users, items, hours;
    uint32_t *live; /* scratch ids of live items (n_items) */
    double *live_w; /* scratch weights (n_items) */
    float *gtab;    /* (G_N) smoothed sigmoid */
};

/* ---- random numbers -------------------------------------------------- */

void world_rng_seed(world_rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);

    for (int i = 0; i < 4; i++)
        r->s[i] = rng_splitmix64(&x);
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 1;
}

/* Uniform integer in [0, n) (n < 2^32), Lemire's multiply-shift. */
static uint32_t rng_below(world_rng_t *r, uint32_t n)
{
    return (uint32_t)(((world_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static double rng_gauss(world_rng_t *r)
{
    double u1 = world_rng_uniform(r), u2 = world_rng_uniform(r);

    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

/* ---- alias tables ------------------------------------------------------ */

static void alias_release(alias_t *a)
{
    free(a->thresh);
    free(a->alias);
    free(a->map);
    memset(a, 0, sizeof(*a));
}

/* Build over n outcomes with weights w (sum > 0); map (copied) may be NULL. */
static int alias_build(alias_t *a, const double *w, const uint32_t *map, uint32_t n)
{
    double *p = malloc((size_t)n * sizeof(*p));
    uint32_t *small = malloc((size_t)n * sizeof(*small));
    uint32_t *large = malloc((size_t)n * sizeof(*large));
    uint32_t ns = 0, nl = 0;
    double sum = 0;
    int rc = ERR_NOMEM;

    alias_release(a);
    a->thresh = malloc((size_t)n * sizeof(*a->thresh));
    a->alias = malloc((size_t)n * sizeof(*a->alias));
    if (map)
        a->map = malloc((size_t)n * sizeof(*a->map));
    if (!p || !small || !large || !a->thresh || !a->alias || (map && !a->map))
        goto out;
    a->n = n;
    if (map)
        memcpy(a->map, map, (size_t)n * sizeof(*map));
    for (uint32_t i = 0; i < n; i++)
        sum += w[i];
    for (uint32_t i = 0; i < n; i++) {
        p[i] = w[i] * n / sum;
        if (p[i] < 1.0)
            small[ns++] = i;
        else
            large[nl++] = i;
    }
    while (ns > 0 && nl > 0) {
        uint32_t s = small[--ns], l = large[nl - 1];

        a->thresh[s] = (uint32_t)(p[s] * 4294967296.0);
        a->alias[s] = l;
        p[l] -= 1.0 - p[s];
        if (p[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    /* Left-overs are 1 up to rounding: always keep them. */
    while (nl > 0) {
        uint32_t l = large[--nl];
        a->thresh[l] = UINT32_MAX;
        a->alias[l] = l;
    }
    while (ns > 0) {
        uint32_t s = small[--ns];
        a->thresh[s] = UINT32_MAX;
        a->alias[s] = s;
    }
    rc = 0;
out:
    free(p);
    free(small);
    free(large);
    if (rc != 0)
        alias_release(a);
    return rc;
}

static inline uint32_t alias_draw(const alias_t *a, world_rng_t *r)
{
    uint64_t x = world_rng_next(r);
    uint32_t col = (uint32_t)(((x >> 32) * (uint64_t)a->n) >> 32);
    uint32_t k = (uint32_t)x < a->thresh[col] ? col : a->alias[col];

    return a->map ? a->map[k] : k;
}

/* ---- smoothed sigmoid ------------------------------------------------- */

static double sigmoid(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

/* g(z) = E sigmoid(z + s e), e ~ N(0,1), by Simpson's rule on [-8, 8]. */
static void gtab_fill(float *tab, double s)
{
    enum { M = 320 };
    const double h = 16.0 / M;
    double wt[M + 1], norm = 0;

    for (int j = 0; j <= M; j++) {
        double e = -8.0 + j * h;
        wt[j] = (j == 0 || j == M ? 1 : (j % 2 ? 4 : 2)) * exp(-0.5 * e * e);
        norm += wt[j];
    }
    for (int i = 0; i < G_N; i++) {
        double z = -G_RANGE + (double)i / G_STEPS_PER_UNIT, acc = 0;

        if (s == 0) {
            tab[i] = (float)sigmoid(z);
            continue;
        }
        for (int j = 0; j <= M; j++)
            acc += wt[j] * sigmoid(z + s * (-8.0 + j * h));
        tab[i] = (float)(acc / norm);
    }
}

static inline double gfun(const float *tab, double z)
{
    double t = (z + G_RANGE) * G_STEPS_PER_UNIT;
    int i;

    if (t <= 0)
        return tab[0];
    if (t >= G_N - 1)
        return tab[G_N - 1];
    i = (int)t;
    return tab[i] + (t - i) * (tab[i + 1] - tab[i]);
}

/* ---- the heads ---------------------------------------------------------- */

static inline double dot(const float *a, const float *b, int from, int to)
{
    float s = 0;

    for (int k = from; k < to; k++)
        s += a[k] * b[k];
    return s;
}

/* Logits without intercepts: a[0] click, a[1] action, a[2] buy|action,
 * a[3] buy|no action, a[4] buy of the uninformative-action ablation. */
static void logits(const world_t *w, uint32_t u, uint32_t i, uint32_t pos, uint32_t hour,
                   double a[5])
{
    const int K = w->K, h = w->half;
    const float *pu = w->ulat + (size_t)u * K, *qi = w->ilat + (size_t)i * K;
    const float *pu2 = w->shared ? pu : w->ulat2 + (size_t)u * K;
    const float *qi2 = w->shared ? qi : w->ilat2 + (size_t)i * K;
    double sa = 1.0 / sqrt(h), sb = 1.0 / sqrt(K - h);
    double aff = (dot(pu, qi, 0, h) * sa + dot(pu, qi, h, K) * sb) * M_SQRT1_2;
    double conv_a = dot(pu2, qi2, 0, h) * sa, conv_b = dot(pu2, qi2, h, K) * sb;
    double cb = w->clickbait ? w->cb[i] : 0.0;
    double core = w->value[i] + w->uconv[u] - w->cb_conv * cb;
    double core2 = w->value2[i] + w->uconv2[u] - w->cb_conv * cb;
    double ctx = w->pos_conv[pos] + w->hour_conv[hour];

    if (w->tc >= 0) { /* task_corr: conversion drivers = tc click's + s independent ones */
        conv_a = w->tc * aff +
                 w->tc_s * dot(w->ulat2 + (size_t)u * K, w->ilat2 + (size_t)i * K, 0, h) * sa;
        core = w->tc * (w->tc_ka * w->appeal[i] + w->tc_ku * w->uclick[u]) +
               w->tc_s * (w->value2[i] + w->uconv2[u]) - w->cb_conv * cb;
    }

    a[0] = w->click_aff * aff + w->appeal[i] + w->uclick[u] + w->pos_click[pos] +
           w->hour_click[hour] + w->cb_click * cb;
    a[1] = w->conv_aff * conv_a + core + ctx;
    a[2] = Y34_SLOPE * core;
    a[3] = Y34_SLOPE * core;
    a[4] = w->conv_aff * conv_b + core2 + ctx;
}

static void heads(const world_t *w, const double a[5], double y[4])
{
    y[0] = gfun(w->gtab, w->b[0] + a[0]);
    y[1] = gfun(w->gtab, w->b[1] + a[1]);
    if (w->action_informative) {
        y[2] = gfun(w->gtab, w->b[2] + a[2]);
        y[3] = gfun(w->gtab, w->b[3] + a[3]);
    } else {
        y[2] = y[3] = gfun(w->gtab, w->b[4] + a[4]);
    }
}

void world_draw(const world_t *w, world_rng_t *r, world_imp_t *m)
{
    double a[5];
    double uc, ua, ub;
    int act;

    m->user = alias_draw(&w->users, r);
    m->item = alias_draw(&w->items, r);
    m->position = 1 + rng_below(r, w->n_positions);
    m->hour = alias_draw(&w->hours, r);
    logits(w, m->user, m->item, m->position, m->hour, a);
    heads(w, a, m->y);
    uc = world_rng_uniform(r);
    ua = world_rng_uniform(r);
    ub = world_rng_uniform(r);
    act = ua < m->y[1];
    m->click = uc < m->y[0];
    m->buy_cf = ub < (act ? m->y[2] : m->y[3]);
    m->action = (uint8_t)(m->click & act);
    m->buy = (uint8_t)(m->click & m->buy_cf);
}

void world_truth(const world_imp_t *m, double t[4])
{
    const double *y = m->y;

    t[0] = y[0];
    t[1] = (1.0 - y[1]) * y[3] + y[1] * y[2];
    t[2] = y[0] * t[1];
    t[3] = y[0] * y[1];
}

double world_relevance(const world_t *w, const world_imp_t *m)
{
    double a[5];

    logits(w, m->user, m->item, 1, m->hour, a);
    return gfun(w->gtab, w->b[0] + a[0]);
}

/* ---- construction ------------------------------------------------------ */

static void *xcalloc(size_t n, size_t size, int *fail)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        *fail = 1;
    return p;
}

static void fill_gauss(world_rng_t *r, float *x, size_t n, double std)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(std * rng_gauss(r));
}

/* Zipf weights (rank + 1 + offset)^-s of n ids; rank == id unless
 * shuffle, then ranks are a random permutation. Returns 0 or ERR_NOMEM. */
static int zipf_weights(world_rng_t *r, double *w, uint32_t n, double s, double offset, int shuffle)
{
    uint32_t *perm;

    if (!shuffle) {
        for (uint32_t i = 0; i < n; i++)
            w[i] = pow(i + 1.0 + offset, -s);
        return 0;
    }
    perm = malloc((size_t)n * sizeof(*perm));
    if (!perm)
        return ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = rng_below(r, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (uint32_t rank = 0; rank < n; rank++)
        w[perm[rank]] = pow(rank + 1.0 + offset, -s);
    free(perm);
    return 0;
}

/* Draw cate/shop/brand/tags, clickbait and drift of every item. */
static int draw_items(world_t *w, const gen_conf_t *c, world_rng_t *r, const float *shop_cb,
                      const uint16_t *home)
{
    alias_t cates = {0}, brands = {0}, tagz = {0};
    uint32_t nc = (uint32_t)c->categories, nb = (uint32_t)c->brands, nt = (uint32_t)c->tags;
    uint32_t most = nc > nb ? nc : nb;
    double *tmp = malloc((size_t)(most > nt ? most : nt) * sizeof(*tmp));
    double f = c->drift, p_first = 1.0;
    int D = (int)c->days;
    int rc = ERR_NOMEM;

    if (!tmp)
        goto out;
    zipf_weights(r, tmp, nc, CATE_ZIPF, 0, 0);
    if (alias_build(&cates, tmp, NULL, nc) != 0)
        goto out;
    zipf_weights(r, tmp, nb, BRAND_ZIPF, 0, 0);
    if (alias_build(&brands, tmp, NULL, nb) != 0)
        goto out;
    zipf_weights(r, tmp, nt, TAG_ZIPF, 0, 0);
    if (alias_build(&tagz, tmp, NULL, nt) != 0)
        goto out;
    if (D > 1)
        p_first = 1.0 / (1.0 + f * (D - 1));
    for (uint32_t i = 0; i < w->n_items; i++) {
        world_item_t *it = &w->item[i];
        int want = c->max_tags > 0 ? 1 + (int)rng_below(r, (uint32_t)c->max_tags) : 0;
        double u;

        it->cate = alias_draw(&cates, r);
        it->shop = rng_below(r, (uint32_t)c->shops);
        it->brand = alias_draw(&brands, r);
        it->ntags = 0;
        for (int k = 0; k < want; k++) {
            uint16_t t = world_rng_uniform(r) < HOME_TAG_PROB
                             ? home[(size_t)it->cate * HOME_TAGS + rng_below(r, HOME_TAGS)]
                             : (uint16_t)alias_draw(&tagz, r);
            float tw = k == 0 ? 1.0f : tag_weights[rng_below(r, 3)];
            int dup = 0;

            for (int j = 0; j < it->ntags; j++)
                dup |= it->tag[j] == t;
            if (dup)
                continue;
            it->tag[it->ntags] = t;
            it->tag_w[it->ntags] = tw;
            it->ntags++;
        }
        u = world_rng_uniform(r);
        it->clickbait = u < (shop_cb[it->shop] > 0 ? CB_SHOP_ITEM_PROB : CB_OTHER_ITEM_PROB);
        w->cb[i] = it->clickbait ? (float)(0.5 + world_rng_uniform(r)) : 0.0f;
        /* drift: birth day, then survive each further day with prob 1-f */
        u = world_rng_uniform(r);
        if (D <= 1) {
            it->birth = 0;
            it->death = UINT16_MAX;
        } else {
            double life;
            it->birth = u < p_first ? 1 : (uint16_t)(2 + rng_below(r, (uint32_t)(D - 1)));
            u = world_rng_uniform(r);
            life = f >= 1.0 ? 0 : f <= 0 ? 1e9 : floor(log(1.0 - u) / log(1.0 - f));
            it->death =
                (uint16_t)(it->birth + life > UINT16_MAX - 1 ? UINT16_MAX - 1 : it->birth + life);
        }
    }
    rc = 0;
out:
    alias_release(&cates);
    alias_release(&brands);
    alias_release(&tagz);
    free(tmp);
    return rc;
}

/* Random parts of the categories, shops, brands or tags. */
typedef struct parts {
    float *q, *q2;     /* (n, K) factors of both sets; NULL for tags */
    float *a, *v, *v2; /* (n) appeal, value, value of the ablation's buy head */
} parts_t;

static void parts_free(parts_t *p)
{
    free(p->q), free(p->q2), free(p->a), free(p->v), free(p->v2);
}

static int parts_draw(parts_t *p, size_t n, int K, double std, world_rng_t *r)
{
    int fail = 0;

    memset(p, 0, sizeof(*p));
    if (K > 0) {
        p->q = xcalloc(n * K, sizeof(float), &fail);
        p->q2 = xcalloc(n * K, sizeof(float), &fail);
    }
    p->a = xcalloc(n, sizeof(float), &fail);
    p->v = xcalloc(n, sizeof(float), &fail);
    p->v2 = xcalloc(n, sizeof(float), &fail);
    if (fail) {
        parts_free(p);
        return ERR_NOMEM;
    }
    if (K > 0) {
        fill_gauss(r, p->q, n * K, 1);
        fill_gauss(r, p->q2, n * K, 1);
    }
    fill_gauss(r, p->a, n, std);
    fill_gauss(r, p->v, n, std);
    fill_gauss(r, p->v2, n, std);
    return 0;
}

/* std(a) / std(b) over n values (1 if b is constant): task_corr scales the
 * click's item appeal to the spread of the independent item value. */
static double std_ratio(const float *a, const float *b, size_t n)
{
    double sa = 0, sb = 0, ma = 0, mb = 0;

    for (size_t k = 0; k < n; k++)
        ma += a[k], mb += b[k];
    ma /= n ? (double)n : 1.0;
    mb /= n ? (double)n : 1.0;
    for (size_t k = 0; k < n; k++)
        sa += (a[k] - ma) * (a[k] - ma), sb += (b[k] - mb) * (b[k] - mb);
    return sb > 0 ? sqrt(sa / sb) : 1.0;
}

/*
 * Item factors and scalars from their category/shop/brand/item/tag parts:
 * appeal = sum_e WA_e a_e, value = rho sum_e WV_e a_e + sqrt(1-rho^2)
 * sum_e WV_e v_e with rho = quality_corr when latents are shared, else 0;
 * value2 = sum_e WV_e v2_e (independent of both); q = sum_e WQ_e q_e (q2
 * from q2_e). e runs over category, shop, brand, the item itself and its
 * weighted tags.
 */
static int compose_items(world_t *w, const gen_conf_t *c, world_rng_t *r)
{
    static const double WA[4] = {0.4, 0.3, 0.3, 0.3}; /* cate, shop, brand, item */
    static const double WV[4] = {0.6, 0.4, 0.4, 0.3};
    static const float WQ[4] = {W_CATE, W_SHOP, W_BRAND, W_ITEM};
    const int K = w->K;
    double rho = c->shared_latents ? c->quality_corr : 0.0, sr = sqrt(1.0 - rho * rho);
    parts_t pc, ps, pb, pt;
    int rc = ERR_NOMEM;

    memset(&pc, 0, sizeof(pc)), memset(&ps, 0, sizeof(ps));
    memset(&pb, 0, sizeof(pb)), memset(&pt, 0, sizeof(pt));
    if (parts_draw(&pc, (size_t)c->categories, K, 1, r) ||
        parts_draw(&ps, (size_t)c->shops, K, 1, r) || parts_draw(&pb, (size_t)c->brands, K, 1, r) ||
        parts_draw(&pt, (size_t)c->tags, 0, TAG_EFFECT_STD, r))
        goto out;
    for (uint32_t i = 0; i < w->n_items; i++) {
        const world_item_t *it = &w->item[i];
        const parts_t *pp[3] = {&pc, &ps, &pb};
        const uint32_t id[3] = {it->cate, it->shop, it->brand};
        float *q = w->ilat + (size_t)i * K, *q2 = w->ilat2 + (size_t)i * K;
        double ai = rng_gauss(r), vi = rng_gauss(r), vi2 = rng_gauss(r);
        double app = WA[3] * ai, av = WV[3] * ai, v = WV[3] * vi, v2 = WV[3] * vi2;

        for (int e = 0; e < 3; e++) {
            app += WA[e] * pp[e]->a[id[e]];
            av += WV[e] * pp[e]->a[id[e]];
            v += WV[e] * pp[e]->v[id[e]];
            v2 += WV[e] * pp[e]->v2[id[e]];
        }
        for (int j = 0; j < it->ntags; j++) {
            app += it->tag_w[j] * pt.a[it->tag[j]];
            av += it->tag_w[j] * pt.a[it->tag[j]];
            v += it->tag_w[j] * pt.v[it->tag[j]];
            v2 += it->tag_w[j] * pt.v2[it->tag[j]];
        }
        w->appeal[i] = (float)app;
        w->value[i] = (float)(rho * av + sr * v);
        w->value2[i] = (float)v2;
        for (int k = 0; k < K; k++) {
            q[k] = WQ[3] * (float)rng_gauss(r);
            q2[k] = WQ[3] * (float)rng_gauss(r);
            for (int e = 0; e < 3; e++) {
                q[k] += WQ[e] * pp[e]->q[(size_t)id[e] * K + k];
                q2[k] += WQ[e] * pp[e]->q2[(size_t)id[e] * K + k];
            }
        }
    }
    rc = 0;
out:
    parts_free(&pc), parts_free(&ps), parts_free(&pb), parts_free(&pt);
    return rc;
}

static void fill_context(world_t *w, const gen_conf_t *c)
{
    for (uint32_t p = 1; p <= w->n_positions; p++) {
        w->pos_click[p] = (float)(-c->position_bias * log((double)p));
        w->pos_conv[p] = (float)(c->clickbait ? c->position_intent * log((double)p) : 0.0);
    }
    for (int h = 0; h < WORLD_HOURS; h++) {
        w->hour_click[h] = (float)(0.25 * cos(2 * M_PI * (h - 21) / 24.0));
        w->hour_conv[h] = (float)(0.2 * cos(2 * M_PI * (h - 20) / 24.0));
    }
}

/* Find b with mean_j wt_j g(b + a_j) / sum wt = target by bisection. */
static double solve_intercept(const world_t *w, const float *a, const double *wt, size_t n,
                              double target)
{
    double lo = -G_RANGE, hi = G_RANGE, wsum = 0;

    for (size_t j = 0; j < n; j++)
        wsum += wt ? wt[j] : 1.0;
    for (int it = 0; it < 40; it++) {
        double mid = 0.5 * (lo + hi), acc = 0;

        for (size_t j = 0; j < n; j++)
            acc += (wt ? wt[j] : 1.0) * gfun(w->gtab, mid + a[j]);
        if (acc > target * wsum)
            hi = mid;
        else
            lo = mid;
    }
    return 0.5 * (lo + hi);
}

/* Solve b0..b4 for the target rates on n impressions of the selected day. */
static int calibrate(world_t *w, const gen_conf_t *c)
{
    size_t n = (size_t)c->calib_samples;
    float *a = calloc(n * 5, sizeof(*a));
    double *wt = calloc(n, sizeof(*wt)), *w1 = calloc(n, sizeof(*w1));
    double buy_click =
        c->action_rate * c->buy_action_rate + (1.0 - c->action_rate) * c->buy_noaction_rate;
    world_rng_t r;
    int rc = ERR_NOMEM;

    if (!a || !wt || !w1)
        goto out;
    world_rng_seed(&r, (uint64_t)c->seed, CALIB_STREAM);
    for (size_t j = 0; j < n; j++) {
        uint32_t u = alias_draw(&w->users, &r), i = alias_draw(&w->items, &r);
        uint32_t pos = 1 + rng_below(&r, w->n_positions), h = alias_draw(&w->hours, &r);
        double z[5];

        logits(w, u, i, pos, h, z);
        for (int k = 0; k < 5; k++)
            a[k * n + j] = (float)z[k];
    }
    w->b[0] = solve_intercept(w, a, NULL, n, c->ctr);
    for (size_t j = 0; j < n; j++)
        w1[j] = gfun(w->gtab, w->b[0] + a[j]);
    w->b[1] = solve_intercept(w, a + n, w1, n, c->action_rate);
    for (size_t j = 0; j < n; j++)
        wt[j] = w1[j] * gfun(w->gtab, w->b[1] + a[n + j]);
    w->b[2] = solve_intercept(w, a + 2 * n, wt, n, c->buy_action_rate);
    for (size_t j = 0; j < n; j++)
        wt[j] = w1[j] - wt[j];
    w->b[3] = solve_intercept(w, a + 3 * n, wt, n, c->buy_noaction_rate);
    w->b[4] = solve_intercept(w, a + 4 * n, w1, n, buy_click);
    rc = 0;
out:
    free(a);
    free(wt);
    free(w1);
    return rc;
}

int world_new(world_t **out, const gen_conf_t *c, errbuf_t *eb)
{
    world_t *w = calloc(1, sizeof(*w));
    world_rng_t r;
    int fail = 0, rc = ERR_NOMEM;
    float *shop_cb = NULL;
    uint16_t *home = NULL;
    double *uw = NULL, hw[WORLD_HOURS];

    *out = NULL;
    if (!w)
        return errbuf_set(eb, ERR_NOMEM, "world: out of memory");
    w->K = (int)c->latent_dim;
    w->half = w->K / 2;
    w->n_users = (uint32_t)c->users;
    w->n_items = (uint32_t)c->items;
    w->n_positions = (uint32_t)c->positions;
    w->days = (int)c->days;
    w->clickbait = c->clickbait;
    w->action_informative = c->action_informative;
    w->shared = c->shared_latents;
    w->click_aff = c->click_affinity;
    w->conv_aff = c->conv_affinity;
    w->cb_click = c->clickbait_click;
    w->cb_conv = c->clickbait_conv;
    w->tc = c->task_corr < 0 ? -1.0 : c->task_corr;
    w->tc_s = w->tc < 0 ? 0.0 : sqrt(1.0 - w->tc * w->tc);
    w->tc_ku = USER_CONV_STD / USER_CLICK_STD;
    if (w->n_positions >= sizeof(w->pos_click) / sizeof(w->pos_click[0])) {
        rc = errbuf_set(eb, ERR_INVAL, "world: too many positions");
        goto fail;
    }

    size_t nu = w->n_users, ni = w->n_items, K = (size_t)w->K;
    w->ulat = xcalloc(nu * K, sizeof(float), &fail);
    w->ulat2 = xcalloc(nu * K, sizeof(float), &fail);
    w->ilat = xcalloc(ni * K, sizeof(float), &fail);
    w->ilat2 = xcalloc(ni * K, sizeof(float), &fail);
    w->uclick = xcalloc(nu, sizeof(float), &fail);
    w->uconv = xcalloc(nu, sizeof(float), &fail);
    w->uconv2 = xcalloc(nu, sizeof(float), &fail);
    w->appeal = xcalloc(ni, sizeof(float), &fail);
    w->value = xcalloc(ni, sizeof(float), &fail);
    w->value2 = xcalloc(ni, sizeof(float), &fail);
    w->cb = xcalloc(ni, sizeof(float), &fail);
    w->iweight = xcalloc(ni, sizeof(double), &fail);
    w->item = xcalloc(ni, sizeof(world_item_t), &fail);
    w->live = xcalloc(ni, sizeof(uint32_t), &fail);
    w->live_w = xcalloc(ni, sizeof(double), &fail);
    w->gtab = xcalloc(G_N, sizeof(float), &fail);
    uw = xcalloc(nu, sizeof(double), &fail);
    shop_cb = xcalloc((size_t)c->shops, sizeof(float), &fail);
    home = xcalloc((size_t)c->categories * HOME_TAGS, sizeof(uint16_t), &fail);
    if (fail)
        goto nomem;

    /* One fixed order of draws: see the file comment. */
    world_rng_seed(&r, (uint64_t)c->seed, WORLD_STREAM);
    if (zipf_weights(&r, uw, w->n_users, c->user_zipf, 0, 1) != 0 ||
        zipf_weights(&r, w->iweight, w->n_items, c->item_zipf, c->item_zipf_offset, 1) != 0)
        goto nomem;
    fill_gauss(&r, w->ulat, nu * K, 1);
    fill_gauss(&r, w->ulat2, nu * K, 1);
    fill_gauss(&r, w->uclick, nu, USER_CLICK_STD);
    fill_gauss(&r, w->uconv, nu, USER_CONV_STD);
    fill_gauss(&r, w->uconv2, nu, USER_CONV_STD);
    for (int64_t s = 0; s < c->shops; s++)
        shop_cb[s] = world_rng_uniform(&r) < c->clickbait_frac ? 1.0f : 0.0f;
    {
        /* home tags of each category, Zipf over the tag vocabulary */
        double *tw = malloc((size_t)c->tags * sizeof(*tw));
        alias_t ta = {0};
        if (!tw)
            goto nomem;
        zipf_weights(&r, tw, (uint32_t)c->tags, TAG_ZIPF, 0, 0);
        rc = alias_build(&ta, tw, NULL, (uint32_t)c->tags);
        free(tw);
        if (rc != 0)
            goto nomem;
        for (size_t k = 0; k < (size_t)c->categories * HOME_TAGS; k++)
            home[k] = (uint16_t)alias_draw(&ta, &r);
        alias_release(&ta);
    }
    if (draw_items(w, c, &r, shop_cb, home) != 0 || compose_items(w, c, &r) != 0)
        goto nomem;
    fill_context(w, c);
    w->tc_ka = std_ratio(w->value2, w->appeal, w->n_items);
    gtab_fill(w->gtab, c->noise);
    for (int h = 0; h < WORLD_HOURS; h++)
        hw[h] = hour_traffic[h];
    if (alias_build(&w->users, uw, NULL, w->n_users) != 0 ||
        alias_build(&w->hours, hw, NULL, WORLD_HOURS) != 0)
        goto nomem;
    rc = world_set_day(w, w->days > 0 ? 1 : 0, eb);
    if (rc != 0)
        goto fail;
    if (calibrate(w, c) != 0)
        goto nomem;
    free(uw);
    free(shop_cb);
    free(home);
    *out = w;
    return 0;
nomem:
    rc = errbuf_set(eb, ERR_NOMEM, "world: out of memory (%lld users, %lld items)",
                    (long long)c->users, (long long)c->items);
fail:
    free(uw);
    free(shop_cb);
    free(home);
    world_destroy(&w);
    return rc;
}

void world_destroy(world_t **wp)
{
    world_t *w;

    if (!wp || !*wp)
        return;
    w = *wp;
    free(w->ulat), free(w->ulat2), free(w->ilat), free(w->ilat2);
    free(w->uclick), free(w->uconv), free(w->uconv2);
    free(w->appeal), free(w->value), free(w->value2), free(w->cb);
    free(w->iweight), free(w->item), free(w->live), free(w->live_w), free(w->gtab);
    alias_release(&w->users);
    alias_release(&w->items);
    alias_release(&w->hours);
    free(w);
    *wp = NULL;
}

int world_set_day(world_t *w, int day, errbuf_t *eb)
{
    uint32_t n = 0;

    if (day < 0 || day > w->days)
        return errbuf_set(eb, ERR_INVAL, "world: day %d outside 0..%d", day, w->days);
    for (uint32_t i = 0; i < w->n_items; i++) {
        const world_item_t *it = &w->item[i];
        if (day == 0 || (it->birth <= day && day <= it->death)) {
            w->live[n] = i;
            w->live_w[n] = w->iweight[i];
            n++;
        }
    }
    if (n == 0)
        return errbuf_set(eb, ERR_INVAL, "world: no live item on day %d (more items or less drift)",
                          day);
    if (alias_build(&w->items, w->live_w, w->live, n) != 0)
        return errbuf_set(eb, ERR_NOMEM, "world: out of memory");
    return 0;
}

uint32_t world_live_items(const world_t *w)
{
    return w->items.n;
}

const world_item_t *world_item(const world_t *w, uint32_t i)
{
    return &w->item[i];
}

void world_intercepts(const world_t *w, double b[5])
{
    memcpy(b, w->b, sizeof(w->b));
}

double world_clickbait_share(const world_t *w)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < w->n_items; i++)
        n += w->item[i].clickbait;
    return w->n_items ? (double)n / w->n_items : 0.0;
}
