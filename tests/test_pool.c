/*
 * test_pool.c - unique keys, sum pooling and its backward pass against a
 * direct per-token computation.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "worker/pool.h"

static model_spec_t spec(void)
{
    model_spec_t ms;
    memset(&ms, 0, sizeof(ms));
    ms.nslots = 3;
    ms.slot[0].dim = 4;
    ms.slot[1].dim = 2;
    ms.slot[2].dim = 3;
    ms.input_dim = 9;
    return ms;
}

/* A row value that depends on slot, key and column only. */
static float rowval(int s, uint64_t k, size_t d)
{
    return (float)((int)(k % 7) - 3) * 0.25f + (float)s + (float)d * 0.01f;
}

static void fill_batch(batch_t *b, unsigned seed, size_t rows)
{
    srand(seed);
    batch_clear(b);
    for (size_t i = 0; i < rows; i++) {
        batch_row_begin(b, 1, 0, 0);
        for (int s = 0; s < 3; s++) {
            int n = rand() % 4; /* 0..3 tokens, 0 = absent slot */
            for (int t = 0; t < n; t++)
                batch_row_add(b, s, (uint64_t)(rand() % 10), (float)(rand() % 5) * 0.5f);
        }
        batch_row_end(b);
    }
}

static void test_unique_and_forward(void)
{
    model_spec_t ms = spec();
    pool_t p;
    batch_t b;

    CU_ASSERT_EQUAL(batch_init(&b, 3, 4), 0);
    CU_ASSERT_EQUAL(pool_init(&p, &ms), 0);
    for (unsigned round = 0; round < 5; round++) {
        fill_batch(&b, round + 1, 50);
        CU_ASSERT_EQUAL(pool_prepare(&p, &b), 0);
        for (int s = 0; s < 3; s++) {
            /* keys unique, and every token maps to its own key */
            for (size_t i = 0; i < p.req.n[s]; i++)
                for (size_t j = i + 1; j < p.req.n[s]; j++)
                    CU_ASSERT_NOT_EQUAL(p.req.keys[s][i], p.req.keys[s][j]);
            for (size_t t = 0; t < b.slot[s].nnz; t++)
                CU_ASSERT_EQUAL(p.req.keys[s][p.slot[s].tok[t]], b.slot[s].keys[t]);
            for (size_t u = 0; u < p.req.n[s]; u++)
                for (int d = 0; d < ms.slot[s].dim; d++)
                    p.rows[s][u * ms.slot[s].dim + d] = rowval(s, p.req.keys[s][u], (size_t)d);
        }
        float *x = calloc(b.n * 9, sizeof(float));
        pool_forward(&p, &b, x);
        for (size_t i = 0; i < b.n; i++)
            for (int s = 0; s < 3; s++)
                for (int d = 0; d < ms.slot[s].dim; d++) {
                    float want = 0;
                    for (uint32_t t = b.slot[s].off[i]; t < b.slot[s].off[i + 1]; t++)
                        want += b.slot[s].weights[t] * rowval(s, b.slot[s].keys[t], (size_t)d);
                    CU_ASSERT(fabsf(x[i * 9 + p.col[s] + d] - want) < 1e-5f);
                }
        free(x);
    }
    pool_release(&p);
    batch_release(&b);
}

static void test_backward_is_transpose(void)
{
    model_spec_t ms = spec();
    pool_t p;
    batch_t b;

    batch_init(&b, 3, 4);
    pool_init(&p, &ms);
    fill_batch(&b, 99, 40);
    pool_prepare(&p, &b);
    float *dx = malloc(b.n * 9 * sizeof(float));
    for (size_t i = 0; i < b.n * 9; i++)
        dx[i] = (float)((int)(i % 11) - 5) * 0.1f;
    pool_backward(&p, &b, dx);
    /* <dx, forward(rows)> is linear in rows: its gradient is backward(dx) */
    for (int s = 0; s < 3; s++)
        for (size_t u = 0; u < p.req.n[s]; u++)
            for (int d = 0; d < ms.slot[s].dim; d++) {
                float want = 0;
                for (size_t i = 0; i < b.n; i++)
                    for (uint32_t t = b.slot[s].off[i]; t < b.slot[s].off[i + 1]; t++)
                        if (b.slot[s].keys[t] == p.req.keys[s][u])
                            want += b.slot[s].weights[t] * dx[i * 9 + p.col[s] + d];
                CU_ASSERT(fabsf(p.grads[s][u * ms.slot[s].dim + d] - want) < 1e-5f);
            }
    free(dx);
    pool_release(&p);
    batch_release(&b);
}

int test_pool_register(void)
{
    CU_pSuite s = CU_add_suite("pool", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "unique keys and weighted sum pooling", test_unique_and_forward);
    CU_add_test(s, "backward is the transpose of forward", test_backward_is_transpose);
    return CU_get_error();
}
