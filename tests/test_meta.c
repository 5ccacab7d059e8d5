/*
 * test_meta.c - META files: round trip, mismatch messages, corrupt and
 * missing files.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "common/meta.h"
#include "common/model_conf.h"
#include "tests/util.h"

static model_spec_t default_spec(void)
{
    static const conf_key_t keys[] = {
#define ROW(...) CONF_ROW(model_conf_t, __VA_ARGS__)
        MODEL_CONF_KEYS(ROW)
#undef ROW
    };
    const conf_schema_t sc = {"model", keys, sizeof(keys) / sizeof(keys[0]), NULL};
    model_conf_t mc;
    model_spec_t ms;

    conf_defaults(&sc, &mc, NULL);
    model_spec_from_conf(&ms, &mc, NULL);
    return ms;
}

static void test_round_trip_and_mismatch(void)
{
    char dir[512], path[600];
    model_spec_t ms = default_spec();
    meta_t a, b;
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "meta"), 0);
    meta_from_spec(&a, &ms, 2, 3, 12345);
    CU_ASSERT_EQUAL(meta_write(dir, &a, &eb), 0);
    CU_ASSERT_EQUAL(meta_read(dir, &b, &eb), 0);
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof(a)), 0);
    CU_ASSERT_EQUAL(meta_check(&b, &a, dir, &eb), 0);

    meta_t c = a;
    c.shards = 3;
    CU_ASSERT_EQUAL(meta_check(&b, &c, dir, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "2 shards"));
    c = a;
    c.dim[1] = 32;
    CU_ASSERT_EQUAL(meta_check(&b, &c, dir, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "item_id"));
    c = a;
    c.emb_opt = 3;
    CU_ASSERT_EQUAL(meta_check(&b, &c, dir, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "ftrl"));

    snprintf(path, sizeof(path), "%s/META", dir);
    tu_write(path, "something else\n");
    CU_ASSERT_EQUAL(meta_read(dir, &b, &eb), ERR_CORRUPT);
    tu_write(path, "funnel-meta 99\n");
    CU_ASSERT_EQUAL(meta_read(dir, &b, &eb), ERR_VERSION);
    tu_write(path, "funnel-meta 1\nmodel dcn\n");
    CU_ASSERT_EQUAL(meta_read(dir, &b, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "META:2"));
    remove(path);
    CU_ASSERT_EQUAL(meta_read(dir, &b, &eb), ERR_NOTFOUND);
    tu_rmtree(dir);
}

int test_meta_register(void)
{
    CU_pSuite s = CU_add_suite("meta", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "round trip and mismatches", test_round_trip_and_mismatch);
    return CU_get_error();
}
