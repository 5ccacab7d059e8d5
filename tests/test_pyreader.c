/*
 * test_pyreader.c - the Python reader (python/funnel_reader.py) against the
 * real programs: funnel-gen writes a 2-day world, funnel-worker trains one
 * model per day, funnel-emb exports both (full, and the delta from day 1 to
 * day 2, with puts and tombstones), applies the delta, dumps and gets rows,
 * and funnel-worker predicts a test log. python/test_funnel_reader.py then
 * assembles a serving bundle (the shared spec in python/README.md) and,
 * when this funnel-emb has the `bundle` command, also reads the one it
 * writes (bundle-c) and compares the two; it checks every row, the apply,
 * the towers' predictions from numpy-pooled inputs, and that damaged files
 * are refused.
 *
 * Needs a python3 with numpy and xxhash (Debian: python3-numpy,
 * python3-xxhash; scripts/install-deps.sh --dev): without one the suite
 * prints a note and passes nothing but that check.
 */
#include <CUnit/CUnit.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/util.h"

static char dir[512], bin[PATH_MAX], py[64];
static int prepared; /* prepare() succeeded */

/* A python3 that has numpy and xxhash into py, or "" (a pyenv shim may
 * shadow the system one that has them). */
static void find_python(void)
{
    static const char *const cands[] = {"python3", "/usr/bin/python3"};

    py[0] = '\0';
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
        if (tu_sh(NULL, "%s -c 'import numpy, xxhash' > /dev/null 2>&1", cands[i]) == 0) {
            snprintf(py, sizeof(py), "%s", cands[i]);
            return;
        }
}

static int setup(void)
{
    char p[700];

    if (tu_mkdtemp(dir, sizeof(dir), "pyreader") != 0)
        return -1;
    tu_bin(p, sizeof(p), "funnel-emb");
    *strrchr(p, '/') = '\0';
    if (!realpath(p, bin)) /* absolute: prepare() runs commands from dir */
        return -1;
    find_python();
    return 0;
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

#define MODEL_OPTS "--towers 16,8 --emb_dim 4 --slot_dims item_id:6 --threads 1"

/* Everything the script reads (see its docstring), made by the programs. */
static int prepare(void)
{
    int rc = 0;

    rc |= tu_sh(NULL,
                "%s/funnel-gen --out %s/w --days 2 --train 20000 --test 2000 --users 2000 "
                "--items 1000 --seed 7 > %s/gen.log 2>&1",
                bin, dir, dir);
    for (int d = 1; d <= 2 && rc == 0; d++)
        rc |= tu_sh(NULL,
                    "%s/funnel-worker train --model %s/m%d " MODEL_OPTS
                    " %s/w/day%d/train.tsv > %s/train%d.log 2>&1",
                    bin, dir, d, dir, d, dir, d);
    if (rc == 0)
        rc |= tu_sh(NULL,
                    "cd %s && E=%s/funnel-emb && { $E export m1 --out full1.emb && "
                    "$E export m2 --out full2.emb && $E export m2 --since m1 --out delta2.emb && "
                    "$E apply full1.emb delta2.emb --out applied.emb && "
                    "$E export-dump full2.emb > dump2.txt && "
                    "$E get m2 $(grep '^put' dump2.txt | awk 'NR %% 500 == 1 {print $3}') "
                    "--json > get2.jsonl && cp w/day2/test.tsv test.tsv && "
                    "%s/funnel-worker predict --model m2 --in test.tsv --out pred.tsv && "
                    "if $E bundle --help 2>&1 | grep -q 'bundle SRC'; then "
                    "$E bundle m2 --since m1 --out bundle-c; fi; "
                    "} > emb.log 2>&1",
                    dir, bin, bin);
    return rc;
}

static void test_reader(void)
{
    char out[700];
    char *text;

    if (!py[0]) {
        printf("\n  pyreader: SKIPPED, no python3 with numpy and xxhash (install python3-numpy "
               "python3-xxhash: scripts/install-deps.sh --dev)\n");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(prepare(), 0);
    prepared = 1;
    snprintf(out, sizeof(out), "%s/py.log", dir);
    CU_ASSERT_EQUAL(tu_sh(out, "%s python/test_funnel_reader.py %s", py, dir), 0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "equals funnel-emb apply byte for byte") : NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "equal predict's") : NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "checks passed") : NULL);
    if (text && !strstr(text, "checks passed"))
        printf("\n%s\n", text);
    else if (text)
        printf("\n%s", text);
    free(text);
}

/* A corrupted export is refused by the CLI too, with the C tool agreeing. */
static void test_cli_refuses(void)
{
    char out[700];
    char *text;

    if (!py[0] || !prepared)
        return;
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cp %s/full1.emb %s/bad.emb && printf '\\377' | dd of=%s/bad.emb "
                          "bs=1 seek=200 conv=notrunc 2> /dev/null",
                          dir, dir, dir),
                    0);
    snprintf(out, sizeof(out), "%s/cli.log", dir);
    CU_ASSERT_EQUAL(tu_sh(out, "%s python/funnel_reader.py info %s/bad.emb", py, dir), 1);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "bad.emb") : NULL);
    free(text);
    CU_ASSERT_NOT_EQUAL(tu_sh(out, "%s/funnel-emb export-dump %s/bad.emb", bin, dir), 0);
    CU_ASSERT_EQUAL(tu_sh(out, "%s python/funnel_reader.py info %s/full1.emb", py, dir), 0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "export full") : NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "slot item_id          dim   6") : NULL);
    free(text);
}

int test_pyreader_register(void)
{
    CU_pSuite s = CU_add_suite("pyreader", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "the Python reader equals funnel-emb, apply and predict; refuses damage",
                test_reader);
    CU_add_test(s, "funnel_reader.py info refuses a corrupted export like funnel-emb",
                test_cli_refuses);
    return CU_get_error();
}
