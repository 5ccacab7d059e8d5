/*
 * test_metrics.c - AUC on hand-computed cases (ties, masks, signs, -0),
 * against a brute-force pairwise AUC and an independent rank-sum AUC on
 * random data with many ties; undefined AUC; log-loss clamping;
 * calibration; workspace reuse; weighted AUC against brute force and
 * per-request AUC and NDCG on hand-computed requests.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "worker/metrics.h"

/* splitmix64: a fixed-seed generator for the random cases. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *s)
{
    return (double)(next_u64(s) >> 11) * 0x1p-53;
}

/* O(n^2) reference: every (positive, negative) pair, ties count one half. */
static double brute_auc(const float *score, const uint8_t *label, const uint8_t *mask, size_t n)
{
    double num = 0, pairs = 0;

    for (size_t i = 0; i < n; i++) {
        if ((mask && !mask[i]) || !label[i])
            continue;
        for (size_t j = 0; j < n; j++) {
            if ((mask && !mask[j]) || label[j])
                continue;
            pairs += 1;
            num += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
        }
    }
    return pairs > 0 ? num / pairs : NAN;
}

typedef struct scored {
    float s;
    uint8_t y;
} scored_t;

static int cmp_scored(const void *a, const void *b)
{
    float x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
    return (x > y) - (x < y);
}

/* Independent O(n log n) reference: Mann-Whitney U from average ranks. */
static double ranksum_auc(const float *score, const uint8_t *label, size_t n)
{
    scored_t *v = malloc(n * sizeof(*v));
    double rank_sum = 0, np = 0, nn = 0;

    for (size_t i = 0; i < n; i++) {
        v[i].s = score[i];
        v[i].y = label[i];
    }
    qsort(v, n, sizeof(*v), cmp_scored);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].s == v[i].s)
            j++;
        double avg = (double)(i + 1 + j) / 2.0; /* ranks i+1 .. j */
        for (size_t k = i; k < j; k++)
            if (v[k].y)
                rank_sum += avg;
        i = j;
    }
    for (size_t i = 0; i < n; i++) {
        np += label[i] != 0;
        nn += label[i] == 0;
    }
    free(v);
    return (rank_sum - np * (np + 1) / 2) / (np * nn);
}

static double auc_of(const float *score, const uint8_t *label, const uint8_t *mask, size_t n,
                     metrics_ws_t *ws)
{
    double a = -1;
    CU_ASSERT_EQUAL(metrics_auc(&a, score, label, mask, n, ws), 0);
    return a;
}

static void test_auc_hand(void)
{
    metrics_ws_t ws;
    const float s1[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t y1[] = {0, 0, 1, 1};
    const float s2[] = {0.5f, 0.5f, 0.2f, 0.9f};
    const uint8_t y2[] = {1, 0, 0, 1};
    const float flat[] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
    const uint8_t yf[] = {1, 0, 0, 1, 0};
    const float perfect[] = {0.9f, 0.1f, 0.8f, 0.2f};
    const uint8_t yp[] = {1, 0, 1, 0};

    metrics_ws_init(&ws);
    /* pairs (0.35 vs 0.1, 0.4), (0.8 vs 0.1, 0.4): 3 of 4 */
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s1, y1, NULL, 4, &ws), 0.75, 1e-15);
    /* (0.5|0.5) = 1/2, (0.5|0.2), (0.9|0.5), (0.9|0.2): 3.5 of 4 */
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s2, y2, NULL, 4, &ws), 0.875, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(auc_of(flat, yf, NULL, 5, &ws), 0.5, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(auc_of(perfect, yp, NULL, 4, &ws), 1.0, 1e-15);
    /* reversed labels: perfectly wrong */
    const uint8_t yr[] = {0, 1, 0, 1};
    CU_ASSERT_DOUBLE_EQUAL(auc_of(perfect, yr, NULL, 4, &ws), 0.0, 1e-15);
    metrics_ws_release(&ws);
}

static void test_auc_mask_signs(void)
{
    metrics_ws_t ws;
    /* masked rows would make the AUC 0 if they counted */
    const float s[] = {0.9f, 0.1f, 0.05f, 0.95f, 0.6f, 0.4f};
    const uint8_t y[] = {1, 0, 1, 0, 1, 0};
    const uint8_t m[] = {1, 1, 0, 0, 1, 1};
    /* logits of both signs, huge values, infinities */
    const float g[] = {-3.0f, -1e30f, 2.5f, -INFINITY, INFINITY, 0.0f, -0.5f, 1e30f};
    const uint8_t gy[] = {0, 0, 1, 0, 1, 1, 0, 1};
    /* -0 and +0 are one score: the single pair is a tie */
    const float z[] = {-0.0f, 0.0f};
    const uint8_t zy[] = {1, 0};

    metrics_ws_init(&ws);
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s, y, m, 6, &ws), 1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s, y, NULL, 6, &ws), brute_auc(s, y, NULL, 6), 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(auc_of(g, gy, NULL, 8, &ws), 1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(auc_of(z, zy, NULL, 2, &ws), 0.5, 1e-15);
    metrics_ws_release(&ws);
}

static void test_auc_undefined(void)
{
    metrics_ws_t ws;
    const float s[] = {0.2f, 0.7f, 0.4f};
    const uint8_t ones[] = {1, 1, 1}, zeros[] = {0, 0, 0};
    const uint8_t y[] = {1, 0, 1}, m[] = {1, 0, 1};
    double a = 0;

    metrics_ws_init(&ws);
    CU_ASSERT(isnan(auc_of(s, ones, NULL, 3, &ws)));
    CU_ASSERT(isnan(auc_of(s, zeros, NULL, 3, &ws)));
    CU_ASSERT(isnan(auc_of(s, y, m, 3, &ws))); /* only positives selected */
    CU_ASSERT_EQUAL(metrics_auc(&a, s, y, NULL, 0, &ws), 0);
    CU_ASSERT(isnan(a));
    metrics_ws_release(&ws);
}

/* Equal within 1e-12, or both undefined. */
static int same_auc(double got, double ref)
{
    return isnan(ref) ? isnan(got) : fabs(got - ref) <= 1e-12;
}

static void test_auc_random_brute(void)
{
    metrics_ws_t ws;
    uint64_t seed = 42;
    const size_t sizes[] = {1, 2, 3, 7, 50, 333, 1000, 2500};

    metrics_ws_init(&ws);
    for (int trial = 0; trial < 64; trial++) {
        size_t n = sizes[trial % 8];
        float *s = malloc(n * sizeof(*s));
        uint8_t *y = malloc(n), *m = malloc(n);
        /* few distinct levels -> many ties; some trials continuous */
        int levels = trial % 4 == 3 ? 0 : 1 + (int)(next_u64(&seed) % 12);
        double prate = 0.05 + 0.9 * next_unit(&seed);

        for (size_t i = 0; i < n; i++) {
            double u = next_unit(&seed);
            y[i] = next_unit(&seed) < prate;
            /* informative: positives shifted up */
            double x = u + (y[i] ? 0.3 : 0.0);
            s[i] = levels ? (float)floor(x * levels) / (float)levels : (float)x;
            if (trial % 5 == 0)
                s[i] = -s[i]; /* negative scores */
            m[i] = next_unit(&seed) < 0.6;
        }
        CU_ASSERT(same_auc(auc_of(s, y, NULL, n, &ws), brute_auc(s, y, NULL, n)));
        CU_ASSERT(same_auc(auc_of(s, y, m, n, &ws), brute_auc(s, y, m, n)));
        free(s);
        free(y);
        free(m);
    }
    metrics_ws_release(&ws);
}

/* Large inputs (all three radix passes busy) against the rank-sum AUC. */
static void test_auc_random_large(void)
{
    metrics_ws_t ws;
    uint64_t seed = 7;
    size_t n = 300000;
    float *s = malloc(n * sizeof(*s));
    uint8_t *y = malloc(n);

    metrics_ws_init(&ws);
    for (int trial = 0; trial < 3; trial++) {
        for (size_t i = 0; i < n; i++) {
            y[i] = next_unit(&seed) < 0.04;
            double x = next_unit(&seed) * (y[i] ? 1.3 : 1.0);
            if (trial == 0)
                s[i] = (float)x; /* nearly distinct */
            else if (trial == 1)
                s[i] = (float)(round(x * 1000) / 1000); /* heavy ties */
            else
                s[i] = (float)((x - 0.5) * 1e6); /* wide range, both signs */
        }
        CU_ASSERT_DOUBLE_EQUAL(auc_of(s, y, NULL, n, &ws), ranksum_auc(s, y, n), 1e-12);
    }
    /* the workspace shrinks to nothing and grows again */
    metrics_ws_release(&ws);
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s, y, NULL, 1000, &ws), brute_auc(s, y, NULL, 1000), 1e-12);
    metrics_ws_release(&ws);
    free(s);
    free(y);
}

static void test_logloss(void)
{
    const float s[] = {0.8f, 0.0f, 1.0f, 0.0f, 0.25f};
    const uint8_t y[] = {1, 1, 0, 0, 0};
    const uint8_t m[] = {1, 0, 0, 1, 1};
    double big = -log(METRICS_EPS);

    CU_ASSERT_DOUBLE_EQUAL(metrics_logloss(s, y, NULL, 1), -log((double)0.8f), 1e-12);
    /* a confident wrong 0 or 1 costs -log(eps), not infinity */
    CU_ASSERT_DOUBLE_EQUAL(metrics_logloss(s + 1, y + 1, NULL, 1), big, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(metrics_logloss(s + 2, y + 2, NULL, 1), big, 1e-9);
    CU_ASSERT(isfinite(big) && big > 16 && big < 16.2);
    /* a confident right 0 costs -log(1 - eps) */
    CU_ASSERT_DOUBLE_EQUAL(metrics_logloss(s + 3, y + 3, NULL, 1), METRICS_EPS, 1e-12);
    double all = (-log((double)0.8f) + 2 * big + METRICS_EPS - log(1 - 0.25)) / 5;
    CU_ASSERT_DOUBLE_EQUAL(metrics_logloss(s, y, NULL, 5), all, 1e-9);
    double sel = (-log((double)0.8f) + METRICS_EPS - log(1 - 0.25)) / 3;
    CU_ASSERT_DOUBLE_EQUAL(metrics_logloss(s, y, m, 5), sel, 1e-12);
    CU_ASSERT(isnan(metrics_logloss(s, y, NULL, 0)));
}

static void test_calibration(void)
{
    const float s[] = {0.1f, 0.2f, 0.3f, 0.4f};
    const uint8_t y[] = {0, 1, 1, 1};
    const uint8_t m[] = {1, 1, 0, 0};
    double mp, rate;
    uint64_t pos, n;

    metrics_calibration(&mp, &rate, &pos, &n, s, y, NULL, 4);
    CU_ASSERT_DOUBLE_EQUAL(mp, ((double)0.1f + 0.2f + 0.3f + 0.4f) / 4, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(rate, 0.75, 1e-15);
    CU_ASSERT(pos == 3 && n == 4);
    metrics_calibration(&mp, &rate, NULL, NULL, s, y, m, 4);
    CU_ASSERT_DOUBLE_EQUAL(mp, ((double)0.1f + 0.2f) / 2, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(rate, 0.5, 1e-15);
    metrics_calibration(&mp, &rate, &pos, &n, s, y, NULL, 0);
    CU_ASSERT(isnan(mp) && isnan(rate) && pos == 0 && n == 0);
}

/* Weighted AUC: brute force over pairs with weights; every weight 1 is
 * the plain AUC. */
static void test_auc_weighted(void)
{
    enum { N = 300 };
    float score[N], w[N], one[N];
    uint8_t y[N], mask[N];
    metrics_ws_t ws;
    uint64_t s = 5;

    metrics_ws_init(&ws);
    for (int i = 0; i < N; i++) {
        score[i] = (float)(next_u64(&s) % 20); /* many ties */
        w[i] = (float)(0.1 + 3 * next_unit(&s));
        one[i] = 1;
        y[i] = next_unit(&s) < 0.3;
        mask[i] = next_unit(&s) < 0.8;
    }
    double num = 0, den = 0, got, plain, unit;
    for (int p = 0; p < N; p++)
        for (int q = 0; q < N; q++)
            if (mask[p] && mask[q] && y[p] && !y[q]) {
                double ww = (double)w[p] * w[q];
                num += ww * (score[p] > score[q] ? 1.0 : score[p] == score[q] ? 0.5 : 0.0);
                den += ww;
            }
    CU_ASSERT_EQUAL_FATAL(metrics_auc_weighted(&got, score, y, mask, w, N, &ws), 0);
    CU_ASSERT_DOUBLE_EQUAL(got, num / den, 1e-12);
    CU_ASSERT_EQUAL(metrics_auc(&plain, score, y, mask, N, &ws), 0);
    CU_ASSERT_EQUAL(metrics_auc_weighted(&unit, score, y, mask, one, N, &ws), 0);
    CU_ASSERT_DOUBLE_EQUAL(unit, plain, 1e-12);
    CU_ASSERT_EQUAL(metrics_auc_weighted(&unit, score, y, mask, NULL, N, &ws), 0);
    CU_ASSERT_DOUBLE_EQUAL(unit, plain, 1e-12);
    metrics_ws_release(&ws);
}

/* Per request: hand-computed NDCG and AUC; requests of one class and
 * id 0 are left out. */
static void test_per_request(void)
{
    /* request 7: scores .9 .8 .7, buy on the second: rank 2, NDCG
     * 1/log2(3), AUC 1/2. request 8: .1 .5 .3 .2, buys on rows 1 and 3
     * (scores .5 and .2): ranks 1 and 3, NDCG (1 + 1/2) / (1 + 1/log2 3),
     * AUC 3/4. request 9: no buy (left out). id 0 rows: left out. */
    const float score[] = {.9f, .8f, .7f, .1f, .5f, .3f, .2f, .4f, .6f, .9f, .1f};
    const uint8_t y[] = {0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0};
    const uint64_t req[] = {7, 7, 7, 8, 8, 8, 8, 9, 9, 0, 0};
    const size_t n = sizeof(y);
    metrics_requests_t r;
    metrics_ws_t ws;

    metrics_ws_init(&ws);
    CU_ASSERT_EQUAL_FATAL(metrics_per_request(&r, score, y, NULL, req, n, &ws), 0);
    CU_ASSERT_EQUAL(r.requests, 2);
    double n7 = 1 / log2(3.0), n8 = 1.5 / (1 + 1 / log2(3.0));
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg, (n7 + n8) / 2, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(r.auc, (0.5 + 0.75) / 2, 1e-12);
    /* a mask that hides request 8's first buy leaves one buy at rank 2 of 3 */
    const uint8_t mask[] = {1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1};
    CU_ASSERT_EQUAL_FATAL(metrics_per_request(&r, score, y, mask, req, n, &ws), 0);
    CU_ASSERT_EQUAL(r.requests, 2);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg, (n7 + 1 / log2(3.0)) / 2, 1e-12);
    /* no request with both classes */
    const uint64_t none[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CU_ASSERT_EQUAL_FATAL(metrics_per_request(&r, score, y, NULL, none, n, &ws), 0);
    CU_ASSERT_EQUAL(r.requests, 0);
    CU_ASSERT(isnan(r.ndcg) && isnan(r.auc));
    metrics_ws_release(&ws);
}

static void test_summarize(void)
{
    metrics_ws_t ws;
    metrics_summary_t r;
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f, 0.9f};
    const uint8_t y[] = {0, 0, 1, 1, 1};
    const uint8_t m[] = {1, 1, 1, 1, 0};

    metrics_ws_init(&ws);
    CU_ASSERT_EQUAL(metrics_summarize(&r, s, y, m, 5, &ws), 0);
    CU_ASSERT(r.n == 4 && r.pos == 2);
    CU_ASSERT_DOUBLE_EQUAL(r.auc, 0.75, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.rate, 0.5, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.mean_pred, ((double)0.1f + 0.4f + 0.35f + 0.8f) / 4, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(r.logloss, metrics_logloss(s, y, m, 5), 0);
    metrics_ws_release(&ws);
}

int test_metrics_register(void)
{
    CU_pSuite s = CU_add_suite("metrics", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "AUC on hand-computed cases with ties", test_auc_hand);
    CU_add_test(s, "AUC masks, signs, infinities, -0", test_auc_mask_signs);
    CU_add_test(s, "AUC undefined for a single class", test_auc_undefined);
    CU_add_test(s, "AUC against brute force on random ties", test_auc_random_brute);
    CU_add_test(s, "AUC against rank sums on large inputs", test_auc_random_large);
    CU_add_test(s, "log-loss clamping", test_logloss);
    CU_add_test(s, "calibration", test_calibration);
    CU_add_test(s, "summary of one column", test_summarize);
    CU_add_test(s, "weighted AUC against brute force", test_auc_weighted);
    CU_add_test(s, "per-request AUC and NDCG by hand", test_per_request);
    return CU_get_error();
}
