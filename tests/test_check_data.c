/*
 * test_check_data.c - the check-data report: exact counts per reason, per
 * slot tokens and distinct values, label rates and the exit code, on a
 * file with broken lines and on a clean one; Ali-CCP; unreadable input.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/util.h"
#include "worker/check_data.h"
#include "worker/worker_conf.h"

static char dir[512];

static int setup(void)
{
    return tu_mkdtemp(dir, sizeof(dir), "check_data");
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

static void make_conf(worker_conf_t *wc, const char *slots)
{
    errbuf_t eb;

    CU_ASSERT_EQUAL_FATAL(conf_defaults(&worker_conf_schema, wc, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(conf_set(&worker_conf_schema, wc, "slots", slots, "test", &eb), 0);
    wc->report_rejects = 0;
}

/* Run check-data on paths; the report text into *text (caller frees). */
static int run(const worker_conf_t *wc, char **paths, int n, char **text, errbuf_t *eb)
{
    size_t len = 0;
    FILE *out = open_memstream(text, &len);
    int rc;

    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    rc = check_data_run(wc, paths, n, out, eb);
    fclose(out);
    return rc;
}

/* The number after "key" at the start of a line (after spaces), or -1. */
static long long value_of(const char *text, const char *key)
{
    size_t kl = strlen(key);

    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        const char *p = l;
        while (*p == ' ')
            p++;
        if (strncmp(p, key, kl) == 0)
            return strtoll(p + kl, NULL, 10);
    }
    return -1;
}

/* Tokens and distinct values of a slot row "  name tokens distinct". */
static int slot_row(const char *text, const char *slot, long long *tokens, long long *distinct)
{
    char pat[80];
    const char *l;

    snprintf(pat, sizeof(pat), "\n  %s ", slot);
    l = strstr(text, pat);
    if (!l)
        return -1;
    return sscanf(l + strlen(pat), "%lld %lld", tokens, distinct) == 2 ? 0 : -1;
}

static void test_broken_file(void)
{
    worker_conf_t wc;
    errbuf_t eb;
    char *paths[1], *text = NULL, path[700];
    long long t, d;
    FILE *f;

    make_conf(&wc, "user_id,item_id,tag");
    snprintf(path, sizeof(path), "%s/broken.tsv", dir);
    paths[0] = path;
    f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("# ten good lines, four bad ones\n", f);
    for (int i = 0; i < 10; i++) {
        fprintf(f, "%d\t%d\t%d\tuser_id:u%d item_id:i%d tag:a%s%s\n", i < 4, i < 2,
                i == 0 || i == 3, i % 3, i, i % 2 == 0 ? " tag:b:0.5" : "", i == 7 ? " x:1" : "");
        if (i == 2)
            fputs("1\t0\tuser_id:a\n", f);
        if (i == 5)
            fputs("1\t0\t0\tuser_id:a\tmore\n", f);
        if (i == 6)
            fputs("1\t0\t5\tuser_id:a\n", f);
        if (i == 8)
            fputs("1\t0\t0\ttag:a:heavy\n", f);
    }
    fclose(f);

    CU_ASSERT_EQUAL(run(&wc, paths, 1, &text, &eb), 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_EQUAL(value_of(text, "files:"), 1);
    CU_ASSERT_EQUAL(value_of(text, "lines read:"), 15);
    CU_ASSERT_EQUAL(value_of(text, "accepted:"), 10);
    CU_ASSERT_EQUAL(value_of(text, "rejected:"), 4);
    CU_ASSERT_EQUAL(value_of(text, "wrong column count"), 2);
    CU_ASSERT_EQUAL(value_of(text, "label not 0/1"), 1);
    CU_ASSERT_EQUAL(value_of(text, "unparsable weight"), 1);
    CU_ASSERT_PTR_NULL(strstr(text, "malformed token")); /* zero counts are not listed */
    CU_ASSERT_EQUAL(value_of(text, "skipped (empty or comment):"), 1);
    CU_ASSERT_EQUAL(slot_row(text, "user_id", &t, &d), 0);
    CU_ASSERT(t == 10 && d == 3);
    CU_ASSERT_EQUAL(slot_row(text, "item_id", &t, &d), 0);
    CU_ASSERT(t == 10 && d == 10);
    CU_ASSERT_EQUAL(slot_row(text, "tag", &t, &d), 0);
    CU_ASSERT(t == 15 && d == 2);
    CU_ASSERT_EQUAL(value_of(text, "undeclared-slot tokens:"), 1);
    CU_ASSERT_EQUAL(value_of(text, "clicks:"), 4);
    CU_ASSERT_EQUAL(value_of(text, "actions:"), 2);
    CU_ASSERT_EQUAL(value_of(text, "buys:"), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "CTR (click/impression):    0.400000"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "action/click:              0.500000"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "buy/click:                 0.500000"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "buy/impression:            0.200000"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "result: REJECTED LINES (4)"));
    free(text);
    conf_release(&worker_conf_schema, &wc);
}

static void test_clean_file(void)
{
    worker_conf_t wc;
    errbuf_t eb;
    char *paths[1], *text = NULL, path[700];

    make_conf(&wc, "user_id");
    snprintf(path, sizeof(path), "%s/clean.tsv", dir);
    paths[0] = path;
    tu_write(path, "0\t0\t0\tuser_id:a\n0\t0\t0\tuser_id:b\n");
    CU_ASSERT_EQUAL(run(&wc, paths, 1, &text, &eb), 0);
    CU_ASSERT_EQUAL(value_of(text, "accepted:"), 2);
    CU_ASSERT_EQUAL(value_of(text, "rejected:"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "action/click:              n/a"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "result: ok"));
    free(text);
    /* strict is ignored: every line is counted */
    wc.strict = 1;
    tu_write(path, "0\t0\t0\tuser_id:a\n0\t1\t0\tuser_id:b\n0\t1\t0\tuser_id:b\n");
    CU_ASSERT_EQUAL(run(&wc, paths, 1, &text, &eb), 1);
    CU_ASSERT_EQUAL(value_of(text, "action or buy without click"), 2);
    free(text);
    conf_release(&worker_conf_schema, &wc);
}

static void test_aliccp(void)
{
    worker_conf_t wc;
    errbuf_t eb;
    char *paths[2], *text = NULL, sk[700], cf[700];
    long long t, d;

    make_conf(&wc, "101,205");
    wc.format = 1;
    snprintf(sk, sizeof(sk), "%s/sample_skeleton_test.csv", dir);
    snprintf(cf, sizeof(cf), "%s/common_features_test.csv", dir);
    tu_write(cf, "m1,1,101\x02"
                 "7\x03"
                 "1\nm1,1,101\x02"
                 "8\x03"
                 "1\n");
    tu_write(sk, "1,1,0,m1,1,205\x02"
                 "1\x03"
                 "1\n2,0,0,m1,1,205\x02"
                 "2\x03"
                 "1\n");
    paths[0] = sk;
    paths[1] = cf;
    CU_ASSERT_EQUAL(run(&wc, paths, 2, &text, &eb), 1); /* the duplicate md5 */
    CU_ASSERT_EQUAL(value_of(text, "accepted:"), 2);
    CU_ASSERT_EQUAL(value_of(text, "rejected:"), 0);
    CU_ASSERT_EQUAL(value_of(text, "common-features rows:"), 1);
    CU_ASSERT_EQUAL(value_of(text, "common-features rejected:"), 1);
    CU_ASSERT_EQUAL(value_of(text, "md5 already in the common features"), 1);
    CU_ASSERT_EQUAL(slot_row(text, "101", &t, &d), 0);
    CU_ASSERT(t == 2 && d == 1);
    CU_ASSERT_EQUAL(slot_row(text, "205", &t, &d), 0);
    CU_ASSERT(t == 2 && d == 2);
    free(text);
    conf_release(&worker_conf_schema, &wc);
}

static void test_unreadable(void)
{
    worker_conf_t wc;
    errbuf_t eb;
    char *paths[1], *text = NULL, path[700];

    make_conf(&wc, "user_id");
    snprintf(path, sizeof(path), "%s/none.tsv", dir);
    paths[0] = path;
    CU_ASSERT_EQUAL(run(&wc, paths, 1, &text, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, path));
    CU_ASSERT(text == NULL || text[0] == '\0');
    free(text);
    text = NULL;
    snprintf(path, sizeof(path), "%s/bad.tsv.gz", dir);
    tu_write(path, "0\t0\t0\tuser_id:a\n");
    CU_ASSERT_EQUAL(run(&wc, paths, 1, &text, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, path));
    free(text);
    conf_release(&worker_conf_schema, &wc);
}

int test_check_data_register(void)
{
    CU_pSuite s = CU_add_suite("check_data", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "broken lines: counts per reason, slots, rates", test_broken_file);
    CU_add_test(s, "clean file exits 0; strict ignored", test_clean_file);
    CU_add_test(s, "Ali-CCP join table counts", test_aliccp);
    CU_add_test(s, "missing and corrupt input", test_unreadable);
    return CU_get_error();
}
