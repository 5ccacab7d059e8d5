/*
 * test_emb_tool.c - funnel-emb's answers on tables whose content the test
 * knows: stats counts per slot, get of present and absent keys, top by
 * update count, and diff between two tables.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/emb_table.h"
#include "emb/emb_tool.h"
#include "common/keyhash.h"
#include "table/store.h"
#include "tests/util.h"

static model_spec_t spec(void)
{
    model_spec_t ms;
    memset(&ms, 0, sizeof(ms));
    ms.nslots = 2;
    snprintf(ms.slot[0].name, sizeof(ms.slot[0].name), "user_id");
    snprintf(ms.slot[1].name, sizeof(ms.slot[1].name), "item_id");
    for (int s = 0; s < 2; s++) {
        ms.slot[s].seed = keyhash_slot(ms.slot[s].name, strlen(ms.slot[s].name));
        ms.slot[s].dim = 4;
    }
    ms.emb_opt = (optim_t){.kind = OPTIM_ADAGRAD, .lr = 0.1f, .eps = 1e-8f, .init_std = 0.1f};
    return ms;
}

/* A table in dir: users u0..u(nu-1) pushed `pushes` times each; items
 * i0..i(ni-1) pushed once. */
static void build(const char *dir, const model_spec_t *ms, int nu, int ni, int pushes)
{
    store_t *st = NULL;
    emb_table_t *t = NULL;
    float g[4] = {0.1f, -0.2f, 0.3f, 0.05f};
    char v[32];

    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&st, dir, STORE_CREATE, dir, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(emb_table_open(&t, st, ms, 0, NULL), 0);
    for (int i = 0; i < nu; i++) {
        snprintf(v, sizeof(v), "u%d", i);
        uint64_t k = keyhash_value(ms->slot[0].seed, v, strlen(v));
        for (int p = 0; p < pushes + (i == 0 ? 5 : 0); p++)
            emb_table_push(t, 0, &k, 1, g, NULL);
    }
    for (int i = 0; i < ni; i++) {
        snprintf(v, sizeof(v), "i%d", i);
        uint64_t k = keyhash_value(ms->slot[1].seed, v, strlen(v));
        emb_table_push(t, 1, &k, 1, g, NULL);
    }
    CU_ASSERT_EQUAL(emb_table_flush(t, NULL, NULL), 0);
    emb_table_destroy(&t);
    store_close(&st);
}

static char *run(const model_spec_t *ms, emb_tool_args_t *a, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    errbuf_t eb = {{0}};

    *rc = emb_tool_run(ms, a, f, &eb);
    fclose(f);
    return buf;
}

static void test_stats_get_top_diff(void)
{
    char dir[512], a_dir[600], b_dir[600];
    model_spec_t ms = spec();
    int rc;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "embtool"), 0);
    snprintf(a_dir, sizeof(a_dir), "%s/a", dir);
    snprintf(b_dir, sizeof(b_dir), "%s/b", dir);
    build(a_dir, &ms, 30, 20, 2);
    build(b_dir, &ms, 35, 10, 3); /* 5 users added, 10 items removed, users changed */

    emb_tool_args_t a = {.cmd = "stats", .dir = a_dir, .json = 1, .day = -1};
    char *out = run(&ms, &a, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"rows\":50,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"user_id\":{\"rows\":30,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"item_id\":{\"rows\":20,"));
    free(out);

    char *q[] = {"user_id:u3", "item_id:nope"};
    emb_tool_args_t g = {.cmd = "get", .dir = a_dir, .args = q, .nargs = 2, .json = 1};
    out = run(&ms, &g, &rc);
    CU_ASSERT_EQUAL(rc, 1); /* one key has no row */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"slot\":\"user_id\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"updates\":2,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"row\":null"));
    free(out);

    emb_tool_args_t t = {.cmd = "top", .dir = a_dir, .by = "count", .n = 1, .json = 1};
    out = run(&ms, &t, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"updates\":7,")); /* u0: 2 + 5 pushes */
    free(out);

    char *other[] = {b_dir};
    emb_tool_args_t d = {.cmd = "diff", .dir = a_dir, .args = other, .nargs = 1, .json = 1};
    out = run(&ms, &d, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"user_id\":{\"added\":5,\"removed\":0,\"changed\":30,"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "\"item_id\":{\"added\":0,\"removed\":10,\"changed\":0,\"unchanged\":10"));
    free(out);

    emb_tool_args_t bad = {.cmd = "stats", .dir = "/nonexistent/table", .day = -1};
    out = run(&ms, &bad, &rc);
    CU_ASSERT(rc < 0);
    free(out);
    tu_rmtree(dir);
}

int test_emb_tool_register(void)
{
    CU_pSuite s = CU_add_suite("emb_tool", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "stats, get, top and diff report what the test wrote", test_stats_get_top_diff);
    return CU_get_error();
}
