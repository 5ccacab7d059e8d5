/*
 * test_emb_tool.c - funnel-emb's answers on tables whose content the test
 * knows: stats counts per slot, get of present and absent keys, top by
 * update count, and diff between two tables; both as the computed structs
 * (emb_tool_stats, _get, _top, _diff) and as the printed text.
 */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyhash.h"
#include "emb/emb_tool.h"
#include "table/emb_table.h"
#include "table/store.h"
#include "tests/json_check.h"
#include "tests/util.h"

static model_spec_t spec_named(const char *user, const char *item)
{
    model_spec_t ms;
    memset(&ms, 0, sizeof(ms));
    ms.nslots = 2;
    snprintf(ms.slot[0].name, sizeof(ms.slot[0].name), "%s", user);
    snprintf(ms.slot[1].name, sizeof(ms.slot[1].name), "%s", item);
    for (int s = 0; s < 2; s++) {
        ms.slot[s].seed = keyhash_slot(ms.slot[s].name, strlen(ms.slot[s].name));
        ms.slot[s].dim = 4;
    }
    ms.emb_opt = (optim_t){.kind = OPTIM_ADAGRAD, .lr = 0.1f, .eps = 1e-8f, .init_std = 0.1f};
    return ms;
}

static model_spec_t spec(void)
{
    return spec_named("user_id", "item_id");
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

static uint64_t key_of(const model_spec_t *ms, int slot, const char *v)
{
    return keyhash_value(ms->slot[slot].seed, v, strlen(v));
}

static void test_histogram_buckets(void)
{
    static const uint64_t v[] = {0, 1, 2, 3, 4, 7, 8, 511, 512, 1023, 1024, UINT64_MAX};
    static const int b[] = {0, 1, 2, 2, 3, 3, 4, 9, 10, 10, 11, 11};

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        CU_ASSERT_EQUAL(emb_tool_bucket(v[i]), b[i]);
    CU_ASSERT_EQUAL(EMB_TOOL_NBUCKET, 12);
}

static void test_computed_answers(void)
{
    char dir[512], a_dir[600], b_dir[600], hex[32];
    model_spec_t ms = spec();
    store_t *sa = NULL, *sb = NULL;
    emb_tool_stats_t st;
    emb_tool_row_t r;
    emb_tool_top_t top;
    emb_tool_diff_t d;
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "embtool"), 0);
    snprintf(a_dir, sizeof(a_dir), "%s/a", dir);
    snprintf(b_dir, sizeof(b_dir), "%s/b", dir);
    build(a_dir, &ms, 30, 20, 2);
    build(b_dir, &ms, 35, 10, 3); /* 5 users added, 10 items removed, users changed */
    CU_ASSERT_EQUAL_FATAL(emb_tool_open(a_dir, &sa, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(emb_tool_open(b_dir, &sb, &eb), 0);

    /* stats: u0 has 7 updates, the other users 2, the items 1; all seen on day 0 */
    CU_ASSERT_EQUAL_FATAL(emb_tool_stats(&ms, sa, NULL, -1, &st, &eb), 0);
    CU_ASSERT_EQUAL(st.rows, 50);
    CU_ASSERT_EQUAL(st.day, 0);
    CU_ASSERT_EQUAL(st.narrow, 0);
    CU_ASSERT_EQUAL(st.slot_rows[0], 30);
    CU_ASSERT_EQUAL(st.slot_rows[1], 20);
    CU_ASSERT_EQUAL(st.updates_hist[0][emb_tool_bucket(2)], 29);
    CU_ASSERT_EQUAL(st.updates_hist[0][emb_tool_bucket(7)], 1);
    CU_ASSERT_EQUAL(st.updates_hist[1][1], 20);
    CU_ASSERT_EQUAL(st.age_hist[0][0], 30);
    CU_ASSERT_EQUAL(st.age_hist[1][0], 20);
    /* key, record header, at least the 4 embedding floats */
    CU_ASSERT(st.bytes_per_row[0] >= EMB_KEY_LEN + EMB_RECORD_HEADER + 16);
    CU_ASSERT_EQUAL(st.bytes_per_row[2], 0);
    /* one slot, and ages from a given day */
    CU_ASSERT_EQUAL_FATAL(emb_tool_stats(&ms, sa, "item_id", 3, &st, &eb), 0);
    CU_ASSERT_EQUAL(st.rows, 20);
    CU_ASSERT_EQUAL(st.slot_rows[0], 0);
    CU_ASSERT_EQUAL(st.day, 3);
    CU_ASSERT_EQUAL(st.age_hist[1][emb_tool_bucket(3)], 20);

    /* get: by SLOT:VALUE, by hex key, absent, malformed */
    CU_ASSERT_EQUAL(emb_tool_get(&ms, sa, "user_id:u3", &r, &eb), 0);
    CU_ASSERT_EQUAL(r.found, 1);
    CU_ASSERT_EQUAL(r.slot, 0);
    CU_ASSERT_EQUAL(r.key, key_of(&ms, 0, "u3"));
    CU_ASSERT_EQUAL(r.meta.updates, 2);
    CU_ASSERT(r.nf >= 4 && r.floats != NULL);
    emb_tool_row_release(&r);
    snprintf(hex, sizeof(hex), "%llx", (unsigned long long)key_of(&ms, 1, "i4"));
    CU_ASSERT_EQUAL(emb_tool_get(&ms, sa, hex, &r, &eb), 0);
    CU_ASSERT_EQUAL(r.found, 1);
    CU_ASSERT_EQUAL(r.slot, 1);
    CU_ASSERT_EQUAL(r.meta.updates, 1);
    emb_tool_row_release(&r);
    CU_ASSERT_EQUAL(emb_tool_get(&ms, sa, "item_id:nope", &r, &eb), 0);
    CU_ASSERT_EQUAL(r.found, 0);
    CU_ASSERT_EQUAL(r.key, key_of(&ms, 1, "nope"));
    emb_tool_row_release(&r);
    CU_ASSERT_EQUAL(emb_tool_get(&ms, sa, "shop_id:1", &r, &eb), ERR_INVAL);
    CU_ASSERT_EQUAL(emb_tool_get(&ms, sa, "xyz", &r, &eb), ERR_INVAL);

    /* top: by update count, one slot, an unknown ranking */
    CU_ASSERT_EQUAL_FATAL(emb_tool_top(&ms, sa, NULL, "count", 3, &top, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(top.n, 3);
    CU_ASSERT_EQUAL(top.rows[0].key, key_of(&ms, 0, "u0"));
    CU_ASSERT_EQUAL(top.rows[0].updates, 7);
    CU_ASSERT_EQUAL(top.rows[1].updates, 2);
    CU_ASSERT(top.rows[0].norm > 0);
    emb_tool_top_release(&top);
    CU_ASSERT_EQUAL_FATAL(emb_tool_top(&ms, sa, "item_id", NULL, 100, &top, &eb), 0);
    CU_ASSERT_EQUAL(top.n, 20);
    for (long i = 0; i < top.n; i++)
        CU_ASSERT_EQUAL(top.rows[i].slot, 1);
    emb_tool_top_release(&top);
    CU_ASSERT_EQUAL(emb_tool_top(&ms, sa, NULL, "size", 3, &top, &eb), ERR_INVAL);
    emb_tool_top_release(&top);

    /* diff: users added and changed, items removed and unchanged */
    CU_ASSERT_EQUAL_FATAL(emb_tool_diff(&ms, sa, sb, &d, &eb), 0);
    CU_ASSERT_EQUAL(d.slot[0].added, 5);
    CU_ASSERT_EQUAL(d.slot[0].removed, 0);
    CU_ASSERT_EQUAL(d.slot[0].changed, 30);
    CU_ASSERT_EQUAL(d.slot[0].unchanged, 0);
    CU_ASSERT(d.slot[0].l2_p50 > 0);
    CU_ASSERT(d.slot[0].l2_p50 <= d.slot[0].l2_p90 && d.slot[0].l2_p90 <= d.slot[0].l2_max);
    CU_ASSERT(d.slot[0].l2_mean <= d.slot[0].l2_max);
    CU_ASSERT_EQUAL(d.slot[1].added, 0);
    CU_ASSERT_EQUAL(d.slot[1].removed, 10);
    CU_ASSERT_EQUAL(d.slot[1].changed, 0);
    CU_ASSERT_EQUAL(d.slot[1].unchanged, 10);
    CU_ASSERT_EQUAL(d.slot[1].l2_max, 0);

    store_close(&sb);
    store_close(&sa);
    tu_rmtree(dir);
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

/* Slot names a config can hold that JSON must escape: a quote; a
 * backslash, a control byte and non-ASCII. */
#define HOSTILE_USER "u\"id"
#define HOSTILE_ITEM "it\\em\001\xc3\xa9"

/* out parses as n JSON lines, and each name appears (unescaped) as often
 * as asked. */
static void check_json(const char *out, int lines, int users, int items)
{
    int found = -1;
    CU_ASSERT_EQUAL(jc_check_lines(out, HOSTILE_USER, strlen(HOSTILE_USER), &found), lines);
    CU_ASSERT_EQUAL(found, users);
    CU_ASSERT_EQUAL(jc_check_lines(out, HOSTILE_ITEM, strlen(HOSTILE_ITEM), &found), lines);
    CU_ASSERT_EQUAL(found, items);
}

static void test_json_hostile_slot_names(void)
{
    char dir[512], a_dir[600], b_dir[600], out_path[600], bin[512], q0[64], q1[64];
    model_spec_t ms = spec_named(HOSTILE_USER, HOSTILE_ITEM);
    int rc;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "embjson"), 0);
    snprintf(a_dir, sizeof(a_dir), "%s/a", dir);
    snprintf(b_dir, sizeof(b_dir), "%s/b", dir);
    build(a_dir, &ms, 3, 2, 1);
    build(b_dir, &ms, 4, 1, 2);

    emb_tool_args_t a = {.cmd = "stats", .dir = a_dir, .json = 1, .day = -1};
    char *out = run(&ms, &a, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    check_json(out, 1, 1, 1);
    free(out);

    snprintf(q0, sizeof(q0), "%s:u1", HOSTILE_USER);
    snprintf(q1, sizeof(q1), "%s:\"absent\\", HOSTILE_ITEM);
    char *q[] = {q0, q1};
    emb_tool_args_t g = {.cmd = "get", .dir = a_dir, .args = q, .nargs = 2, .json = 1};
    out = run(&ms, &g, &rc);
    CU_ASSERT_EQUAL(rc, 1);
    check_json(out, 2, 1, 0);
    int found = 0;
    CU_ASSERT_EQUAL(jc_check_lines(out, q1, strlen(q1), &found), 2); /* the query, echoed */
    CU_ASSERT_EQUAL(found, 1);
    free(out);

    emb_tool_args_t t = {.cmd = "top", .dir = a_dir, .n = 10, .json = 1};
    out = run(&ms, &t, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    check_json(out, 5, 3, 2);
    free(out);

    emb_tool_args_t d = {.cmd = "dump", .dir = a_dir, .json = 1};
    out = run(&ms, &d, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    check_json(out, 5, 3, 2);
    free(out);

    char *other[] = {b_dir};
    emb_tool_args_t df = {.cmd = "diff", .dir = a_dir, .args = other, .nargs = 1, .json = 1};
    out = run(&ms, &df, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    check_json(out, 1, 1, 1);
    free(out);

    /* the program, its slot names from the command line */
    snprintf(out_path, sizeof(out_path), "%s/stats.json", dir);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "%s stats %s --json --emb_dim 4 "
                          "--slots \"$(printf 'u\"id,it\\\\em\\001\\303\\251')\" > %s",
                          tu_bin(bin, sizeof(bin), "funnel-emb"), a_dir, out_path),
                    0);
    out = tu_slurp(out_path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    check_json(out, 1, 1, 1);
    free(out);
    /* a second, independent reader where one is installed */
    CU_ASSERT_EQUAL(
        tu_sh(NULL,
              "! command -v python3 >/dev/null || python3 -c 'import json,sys; "
              "d=json.load(open(sys.argv[1],encoding=\"utf-8\")); "
              "assert sorted(d[\"slots\"])==[\"it\\\\em\\x01\\xe9\",\"u\\\"id\"], d' %s",
              out_path),
        0);
    tu_rmtree(dir);
}

int test_emb_tool_register(void)
{
    CU_pSuite s = CU_add_suite("emb_tool", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "histogram buckets: 0, 1, powers of two, the last open", test_histogram_buckets);
    CU_add_test(s, "stats, get, top and diff compute what the test wrote", test_computed_answers);
    CU_add_test(s, "stats, get, top and diff report what the test wrote", test_stats_get_top_diff);
    CU_add_test(s, "--json with hostile slot names parses and keeps the names",
                test_json_hostile_slot_names);
    return CU_get_error();
}
