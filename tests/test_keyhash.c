/*
 * test_keyhash.c - pins the embedding key of a token. These vectors must
 * never change: every trained table depends on them.
 */
#include <CUnit/CUnit.h>
#include <string.h>

#include "common/keyhash.h"

static void test_vectors(void)
{
    /* Computed once with XXH64 (libxxhash) per keyhash.h and frozen. */
    CU_ASSERT_EQUAL(keyhash_token("user_id", "u8812"), UINT64_C(0xfeebc8aa0962ed4c));
    CU_ASSERT_EQUAL(keyhash_token("item_id", "i55"), UINT64_C(0xd486c09b3dea675c));
    CU_ASSERT_EQUAL(keyhash_token("101", "7:3"), UINT64_C(0x57633051e853f165));
    CU_ASSERT_EQUAL(keyhash_token("tag", ""), UINT64_C(0xebf1c12fb1f2cd68));
}

static void test_slot_matters(void)
{
    CU_ASSERT_NOT_EQUAL(keyhash_token("a", "bc"), keyhash_token("ab", "c"));
    CU_ASSERT_NOT_EQUAL(keyhash_token("user_id", "1"), keyhash_token("item_id", "1"));
    uint64_t seed = keyhash_slot("user_id", 7);
    CU_ASSERT_EQUAL(keyhash_value(seed, "u8812", 5), keyhash_token("user_id", "u8812"));
}

int test_keyhash_register(void)
{
    CU_pSuite s = CU_add_suite("keyhash", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "frozen test vectors", test_vectors);
    CU_add_test(s, "slot is part of the key", test_slot_matters);
    return CU_get_error();
}
