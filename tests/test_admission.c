/*
 * test_admission.c - a key gets a row only on its admit_min-th sighting:
 * before that it pulls zeros, its gradients are dropped, and it costs no
 * row; other slots are unaffected.
 */
#include <CUnit/CUnit.h>
#include <string.h>

#include "common/optim.h"
#include "table/emb_table.h"
#include "table/store.h"

static void test_threshold(void)
{
    model_spec_t ms;
    store_t *st = NULL;
    emb_table_t *t = NULL;
    emb_table_stats_t s;
    float row[4], init[4], state[4], g[4] = {1, 1, 1, 1};
    uint64_t k = 12345, other = 777;
    static const float zero[4];

    memset(&ms, 0, sizeof(ms));
    ms.nslots = 2;
    ms.slot[0].dim = ms.slot[1].dim = 4;
    ms.slot[0].admit_min = 3; /* slot 0 admits on the third sighting */
    ms.slot[1].admit_min = 1;
    ms.emb_opt = (optim_t){.kind = OPTIM_ADAGRAD, .lr = 0.1f, .eps = 1e-8f, .init_std = 0.1f};
    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, &ms, 0, NULL), 0);

    for (int sight = 1; sight <= 2; sight++) {
        CU_ASSERT_EQUAL(emb_table_pull(t, 0, &k, 1, row, EMB_PULL_CREATE, NULL), 0);
        CU_ASSERT_EQUAL(memcmp(row, zero, sizeof(row)), 0);
        CU_ASSERT_EQUAL(emb_table_sightings(t, 0, k), (uint32_t)sight);
        CU_ASSERT_EQUAL(emb_table_push(t, 0, &k, 1, g, NULL), 0); /* dropped */
    }
    emb_table_stats(t, &s);
    CU_ASSERT_EQUAL(s.slot_rows[0], 0);
    CU_ASSERT_EQUAL(s.admit_pending, 2);
    CU_ASSERT_EQUAL(s.admit_dropped, 2);
    /* a read-only pull is not a sighting */
    CU_ASSERT_EQUAL(emb_table_pull(t, 0, &k, 1, row, EMB_PULL_READONLY, NULL), 0);
    CU_ASSERT_EQUAL(emb_table_sightings(t, 0, k), 2);

    /* the third sighting creates the row, as a fresh row would be */
    CU_ASSERT_EQUAL(emb_table_pull(t, 0, &k, 1, row, EMB_PULL_CREATE, NULL), 0);
    optim_row_init(&ms.emb_opt, k, init, state, 4);
    CU_ASSERT_EQUAL(memcmp(row, init, sizeof(row)), 0);
    CU_ASSERT_EQUAL(emb_table_push(t, 0, &k, 1, g, NULL), 0);
    emb_row_meta_t meta;
    float full[8];
    CU_ASSERT_EQUAL(emb_table_get(t, 0, k, full, &meta, NULL), 0);
    CU_ASSERT_EQUAL(meta.updates, 1);

    /* a slot without admission creates on first sight */
    CU_ASSERT_EQUAL(emb_table_pull(t, 1, &other, 1, row, EMB_PULL_CREATE, NULL), 0);
    emb_table_stats(t, &s);
    CU_ASSERT_EQUAL(s.slot_rows[0], 1);
    CU_ASSERT_EQUAL(s.slot_rows[1], 1);
    emb_table_destroy(&t);
    store_close(&st);
}

int test_admission_register(void)
{
    CU_pSuite s = CU_add_suite("admission", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "rows are created on the admit_min-th sighting", test_threshold);
    return CU_get_error();
}
