/*
 * test_slots.c - slot mistakes are loud, and slot lists fit real data:
 * funnel-worker check-data names undeclared slots (with token counts) and
 * declared slots without tokens and exits 1 unless allow_unknown_slots /
 * allow_unused_slots; train stops after slot_check_rows rows (or at the end
 * of a shorter input) naming them and saves nothing; conf/aliccp.conf reads
 * an Ali-CCP sample with all 23 public field ids and conf/gen-aliccp.conf
 * the generator's Ali-CCP output; 256 slots declared on a config line of
 * several KB (slots and slot_dims) check and train, and the export header
 * keeps 256 slots. Every command runs the real programs under a timeout in
 * the suite's scratch directory.
 */
#include <CUnit/CUnit.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/util.h"

#define BOUND "timeout -k 5 120 " /* a hang is a failure, never a stuck suite */
#define OPTS "--towers 8 --threads 1 --progress off"

static char dir[512], wbin[600], gbin[600], ebin[600];

static int setup(void)
{
    tu_bin(wbin, sizeof(wbin), "funnel-worker");
    tu_bin(gbin, sizeof(gbin), "funnel-gen");
    tu_bin(ebin, sizeof(ebin), "funnel-emb");
    return tu_mkdtemp(dir, sizeof(dir), "slots");
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

static char *path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

/* Run a shell command (printf-style, after BOUND) with its output into
 * dir/out.txt; *out gets that text (caller frees). Returns the exit status. */
__attribute__((format(printf, 2, 3))) static int run(char **out, const char *fmt, ...)
{
    char cmd[16384], o[700];
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    path_of(o, sizeof(o), "out.txt");
    rc = tu_sh(o, BOUND "%s", cmd);
    *out = tu_slurp(o, NULL);
    return rc;
}

static int has(const char *text, const char *what)
{
    int ok = text && strstr(text, what);

    if (!ok)
        fprintf(stderr, "\n  expected \"%s\" in:\n%s\n", what, text ? text : "(no output)");
    return ok;
}

static int model_saved(const char *name)
{
    char p[700];

    snprintf(p, sizeof(p), "%s/%s/META", dir, name);
    return access(p, F_OK) == 0;
}

/* ---- check-data ---- */

static void test_check_data(void)
{
    char log[700], *out = NULL;
    FILE *f = fopen(path_of(log, sizeof(log), "xy.tsv"), "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 50; i++) /* x: 100 tokens, y: 50, foo: none */
        fprintf(f, "%d\t0\t0\tuser_id:u%d item_id:i%d x:1 x:%d y:z\n", i % 2, i % 7, i, i);
    fclose(f);

    CU_ASSERT_EQUAL(run(&out, "%s check-data --slots user_id,item_id,foo %s", wbin, log), 1);
    CU_ASSERT(has(out, "undeclared slots: 2"));
    CU_ASSERT(has(out, "\n  x                               100\n"));
    CU_ASSERT(has(out, "\n  y                                50\n"));
    CU_ASSERT(has(out, "declared slots without tokens: 1 (foo)"));
    CU_ASSERT(has(out, "150 tokens of slots the configuration does not declare (x: 100, y: 50)"));
    CU_ASSERT(has(out, "allow_unknown_slots"));
    CU_ASSERT(has(out, "without any token (foo)"));
    CU_ASSERT(has(out, "allow_unused_slots"));
    CU_ASSERT(has(out, "result: SLOTS DO NOT FIT THE LOG"));
    free(out);

    /* each allow key forgives only its own mistake */
    CU_ASSERT_EQUAL(
        run(&out, "%s check-data --slots user_id,item_id,foo --allow_unknown_slots %s", wbin, log),
        1);
    CU_ASSERT(has(out, "without any token (foo)"));
    CU_ASSERT(out && !strstr(out, "(x: 100"));
    free(out);
    CU_ASSERT_EQUAL(
        run(&out, "%s check-data --slots user_id,item_id,foo --allow_unused_slots %s", wbin, log),
        1);
    CU_ASSERT(has(out, "(x: 100, y: 50)"));
    CU_ASSERT(out && !strstr(out, "without any token"));
    free(out);
    CU_ASSERT_EQUAL(run(&out,
                        "%s check-data --slots user_id,item_id,foo --allow_unknown_slots "
                        "--allow_unused_slots %s",
                        wbin, log),
                    0);
    CU_ASSERT(has(out, "undeclared slots: 2")); /* still reported */
    CU_ASSERT(has(out, "result: ok"));
    free(out);

    /* the right list: nothing to report */
    CU_ASSERT_EQUAL(run(&out, "%s check-data --slots user_id,item_id,x,y %s", wbin, log), 0);
    CU_ASSERT(out && !strstr(out, "undeclared slots:") && !strstr(out, "without tokens"));
    CU_ASSERT(has(out, "result: ok"));
    free(out);
}

/* ---- train ---- */

static void test_train_stops(void)
{
    char *out = NULL;

    CU_ASSERT_EQUAL_FATAL(run(&out, "%s --out %s/gen --train 3000 --test 10", gbin, dir), 0);
    free(out);

    /* after slot_check_rows rows (two batches of 512 here) */
    CU_ASSERT_EQUAL(run(&out,
                        "%s train %s --slots user_id,item_id,nosuch --slot_check_rows 1000 "
                        "--model %s/m1 %s/gen/train.tsv",
                        wbin, OPTS, dir, dir),
                    1);
    CU_ASSERT(has(out, "slots do not fit the log after its first 1024 rows"));
    CU_ASSERT(has(out, "cate_id: 1024"));
    CU_ASSERT(has(out, "without any token (nosuch)"));
    CU_ASSERT(has(out, "allow_unknown_slots = true"));
    CU_ASSERT(!model_saved("m1"));
    free(out);

    /* an input shorter than slot_check_rows is judged at its end */
    CU_ASSERT_EQUAL(run(&out,
                        "%s train %s --slots user_id,item_id,nosuch --model %s/m1 %s/gen/train.tsv",
                        wbin, OPTS, dir, dir),
                    1);
    CU_ASSERT(has(out, "after its first 3000 rows"));
    CU_ASSERT(!model_saved("m1"));
    free(out);

    /* told otherwise, it trains */
    CU_ASSERT_EQUAL(run(&out,
                        "%s train %s --slots user_id,item_id,nosuch --allow_unknown_slots "
                        "--allow_unused_slots --model %s/m1 %s/gen/train.tsv",
                        wbin, OPTS, dir, dir),
                    0);
    CU_ASSERT(model_saved("m1"));
    free(out);
    CU_ASSERT_EQUAL(run(&out,
                        "%s train %s --slots user_id,item_id,nosuch --slot_check_rows 0 --model "
                        "%s/m2 %s/gen/train.tsv",
                        wbin, OPTS, dir, dir),
                    0);
    CU_ASSERT(model_saved("m2"));
    free(out);
}

/* ---- Ali-CCP ---- */

static const char *const user_fields[] = {"101", "109_14", "110_14", "127_14", "150_14",
                                          "121", "122",    "124",    "125",    "126",
                                          "127", "128",    "129"};
static const char *const ad_fields[] = {"205", "206", "207", "210", "216",
                                        "508", "509", "702", "853", "301"};
#define NUSER (sizeof(user_fields) / sizeof(user_fields[0]))
#define NAD (sizeof(ad_fields) / sizeof(ad_fields[0]))

/* An Ali-CCP sample: 20 common-features rows (the user fields), 400
 * skeleton rows (the ad fields) joined to them by md5. */
static void write_aliccp(const char *sk, const char *cf)
{
    FILE *f = fopen(cf, "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int u = 0; u < 20; u++) {
        fprintf(f, "md5u%02d,%zu,", u, NUSER);
        for (size_t k = 0; k < NUSER; k++)
            fprintf(f, "%s%s\x02%d\x03%s", k ? "\x01" : "", user_fields[k], u * 100 + (int)k,
                    k == 1 ? "0.5" : "1");
        fputc('\n', f);
    }
    fclose(f);
    f = fopen(sk, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 400; i++) {
        int click = i % 5 == 0, buy = i % 25 == 0;
        fprintf(f, "%d,%d,%d,md5u%02d,%zu,", i + 1, click, buy, i % 20, NAD);
        for (size_t k = 0; k < NAD; k++)
            fprintf(f,
                    "%s%s\x02%d\x03"
                    "1",
                    k ? "\x01" : "", ad_fields[k], (i * 7 + (int)k) % 53);
        fputc('\n', f);
    }
    fclose(f);
}

static void test_aliccp_conf(void)
{
    char sk[700], cf[700], *out = NULL;

    path_of(sk, sizeof(sk), "sample_skeleton_train.csv");
    path_of(cf, sizeof(cf), "common_features_train.csv");
    write_aliccp(sk, cf);

    CU_ASSERT_EQUAL(run(&out, "%s check-data --conf conf/aliccp.conf %s %s", wbin, sk, cf), 0);
    CU_ASSERT(has(out, "accepted: 400"));
    for (size_t k = 0; k < NUSER; k++) {
        char row[64];
        snprintf(row, sizeof(row), "\n  %-20s %14d", user_fields[k], 400);
        CU_ASSERT(has(out, row));
    }
    for (size_t k = 0; k < NAD; k++) {
        char row[64];
        snprintf(row, sizeof(row), "\n  %-20s %14d", ad_fields[k], 400);
        CU_ASSERT(has(out, row));
    }
    CU_ASSERT(has(out, "undeclared-slot tokens: 0"));
    CU_ASSERT(has(out, "result: ok"));
    free(out);

    CU_ASSERT_EQUAL(run(&out, "%s train %s --conf conf/aliccp.conf --model %s/ali %s %s", wbin,
                        OPTS, dir, sk, cf),
                    0);
    CU_ASSERT(model_saved("ali"));
    free(out);

    /* the default slots on Ali-CCP: loud, and pointing at conf/aliccp.conf */
    CU_ASSERT_EQUAL(run(&out, "%s check-data --format aliccp %s %s", wbin, sk, cf), 1);
    CU_ASSERT(has(out, "(205: 400, 206: 400"));
    CU_ASSERT(has(out, "conf/aliccp.conf"));
    CU_ASSERT(has(out, "without any token (user_id, item_id"));
    free(out);
}

static void test_gen_aliccp_conf(void)
{
    char *out = NULL;

    CU_ASSERT_EQUAL_FATAL(
        run(&out, "%s --conf conf/gen-aliccp.conf --out %s/ali-gen --train 2000 --test 10", gbin,
            dir),
        0);
    free(out);
    CU_ASSERT_EQUAL(
        run(&out,
            "%s check-data --conf conf/gen-aliccp.conf %s/ali-gen/sample_skeleton_train.csv "
            "%s/ali-gen/common_features_train.csv",
            wbin, dir, dir),
        0);
    CU_ASSERT(has(out, "accepted: 2000"));
    CU_ASSERT(has(out, "result: ok"));
    free(out);
}

/* ---- 256 slots on a long line ---- */

#define WIDE 256 /* MODEL_MAX_SLOTS */

static void slot_name(char *buf, size_t len, int i)
{
    snprintf(buf, len, "a_rather_long_field_name_%03d", i);
}

/* dir/NAME: [model] with n slots (and a slot_dims entry for each) on two
 * lines of several KB each. */
static void write_wide_conf(const char *name, int n)
{
    char p[700], s[64];
    FILE *f = fopen(path_of(p, sizeof(p), name), "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "[model]\nemb_dim = 2\nslots = ");
    for (int i = 0; i < n; i++) {
        slot_name(s, sizeof(s), i);
        fprintf(f, "%s%s", i ? "," : "", s);
    }
    fprintf(f, "\nslot_dims = ");
    for (int i = 0; i < n; i++) {
        slot_name(s, sizeof(s), i);
        fprintf(f, "%s%s:%d", i ? ", " : "", s, 1 + i % 3);
    }
    fprintf(f, "\n");
    CU_ASSERT_EQUAL(ftell(f) > 2 * 7000, 1);
    fclose(f);
}

static void test_wide(void)
{
    char log[700], *out = NULL, s[64];
    FILE *f = fopen(path_of(log, sizeof(log), "wide.tsv"), "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int r = 0; r < 600; r++) {
        fprintf(f, "%d\t%d\t0\t", r % 4 == 0, r % 8 == 0);
        for (int i = 0; i < WIDE; i++) {
            slot_name(s, sizeof(s), i);
            fprintf(f, "%s%s:v%d", i ? " " : "", s, (r * 31 + i) % 17);
        }
        fputc('\n', f);
    }
    fclose(f);
    write_wide_conf("wide.conf", WIDE);
    write_wide_conf("wider.conf", WIDE + 1);

    CU_ASSERT_EQUAL(run(&out, "%s check-data --conf %s/wide.conf %s", wbin, dir, log), 0);
    CU_ASSERT(has(out, "\n  a_rather_long_field_name_255            600"));
    CU_ASSERT(has(out, "result: ok"));
    free(out);
    CU_ASSERT_EQUAL(
        run(&out, "%s train %s --conf %s/wide.conf --model %s/wide %s", wbin, OPTS, dir, dir, log),
        0);
    CU_ASSERT(model_saved("wide"));
    free(out);
    /* the export header holds 256 slots (stored as 0) and reads back */
    CU_ASSERT_EQUAL(run(&out,
                        "%s export %s/wide --conf %s/wide.conf --out %s/wide.emb && %s export-dump "
                        "%s/wide.emb",
                        ebin, dir, dir, dir, ebin, dir),
                    0);
    CU_ASSERT(has(out, "# slot 255 a_rather_long_field_name_255 dim 1"));
    CU_ASSERT(has(out, "checksum ok"));
    free(out);

    /* one more than the limit: an error naming key and limit */
    CU_ASSERT_EQUAL(run(&out, "%s check-data --conf %s/wider.conf %s", wbin, dir, log), 1);
    CU_ASSERT(has(out, "key 'slots': more than 256 slots"));
    free(out);
}

int test_slots_register(void)
{
    CU_pSuite s = CU_add_suite("slots", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "check-data names undeclared and unused slots; allow keys", test_check_data);
    CU_add_test(s, "train stops naming the slots, saves nothing; allow keys", test_train_stops);
    CU_add_test(s, "conf/aliccp.conf reads the 23 Ali-CCP fields and trains", test_aliccp_conf);
    CU_add_test(s, "conf/gen-aliccp.conf reads the generator's Ali-CCP output",
                test_gen_aliccp_conf);
    CU_add_test(s, "256 slots on multi-KB config lines check, train and export", test_wide);
    return CU_get_error();
}
