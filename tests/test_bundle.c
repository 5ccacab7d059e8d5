/*
 * test_bundle.c - serving bundles (table/bundle.h) with the real programs:
 * a bundle of a model directory and of a two-shard checkpoint predicts
 * exactly as the model it was made from (predict --bundle against predict
 * --model, byte for byte), its delta turns the previous bundle's rows into
 * its own (funnel-emb apply, and bundle_rows_apply in memory), and a
 * damaged bundle is refused naming the file.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/bundle.h"
#include "table/bundle_rows.h"
#include "table/emb_export.h"
#include "tests/util.h"

#define OPTS "--towers 32,16"

static char dir[512], bin[600];

static int setup(void)
{
    char gen[600];

    if (tu_mkdtemp(dir, sizeof(dir), "bundle") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    return tu_sh(NULL,
                 "%s --out %s/w --days 2 --train 20000 --test 3000 --seed 7 > %s/gen.log 2>&1 && "
                 "%s/funnel-worker train --model %s/m1 " OPTS " %s/w/day1/train.tsv > %s/t1.log "
                 "2>&1 && %s/funnel-worker train --model %s/m2 --init_from %s/m1 " OPTS
                 " %s/w/day2/train.tsv > %s/t2.log 2>&1",
                 gen, dir, dir, bin, dir, dir, dir, bin, dir, dir, dir, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

/* predict day 2's test with `what` (--model DIR / --bundle DIR) into pred. */
static int predict(const char *what, const char *pred)
{
    char log[700];

    snprintf(log, sizeof(log), "%s/%s.log", dir, pred);
    return tu_sh(log, "%s/funnel-worker predict %s --in %s/w/day2/test.tsv --out %s/%s", bin, what,
                 dir, dir, pred);
}

static void test_model_dir(void)
{
    char what[700], *man;

    CU_ASSERT_EQUAL_FATAL(
        tu_sh(NULL, "%s/funnel-emb bundle %s/m1 --out %s/b1 > /dev/null", bin, dir, dir), 0);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "%s/funnel-emb bundle %s/m2 --since %s/m1 --out %s/b2 > /dev/null",
                                bin, dir, dir, dir),
                          0);
    snprintf(what, sizeof(what), "%s/b2/MANIFEST", dir);
    man = tu_slurp(what, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(man);
    CU_ASSERT_EQUAL(
        strncmp(man, "funnel-bundle 1\nday 0\nbase_day 0\nmodel_type esm2\ndigest ", 56), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(man, "\nfile META "));
    CU_ASSERT_PTR_NOT_NULL(strstr(man, "\nfile delta.emb "));
    free(man);
    /* the dense.bin of a model directory is its own */
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s/m2/dense.bin %s/b2/dense.bin", dir, dir), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s/m2/META %s/b2/META", dir, dir), 0);
    snprintf(what, sizeof(what), "--model %s/m2", dir);
    CU_ASSERT_EQUAL(predict(what, "p-m2"), 0);
    snprintf(what, sizeof(what), "--bundle %s/b2", dir);
    CU_ASSERT_EQUAL(predict(what, "p-b2"), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/p-m2 %s/p-b2", dir, dir), 0);
    /* full(b1) + delta(b2) = full(b2), by the tool and in memory */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "%s/funnel-emb apply %s/b1/full.emb %s/b2/delta.emb --out %s/ap.emb "
                          "> /dev/null && cmp %s/ap.emb %s/b2/full.emb",
                          bin, dir, dir, dir, dir, dir),
                    0);
    {
        bundle_rows_t *r1 = NULL, *r2 = NULL, *ra = NULL;
        bundle_t b;
        errbuf_t eb = {{0}};
        char p[800];
        CU_ASSERT_EQUAL_FATAL(bundle_open(&b, strcat(strcpy(p, dir), "/b2"), &eb), 0);
        CU_ASSERT_EQUAL(b.base_day, 0);
        CU_ASSERT_EQUAL(b.nfiles, 4);
        snprintf(p, sizeof(p), "%s/b1/full.emb", dir);
        CU_ASSERT_EQUAL_FATAL(bundle_rows_load(&r1, p, NULL, &eb), 0);
        snprintf(p, sizeof(p), "%s/b2/full.emb", dir);
        CU_ASSERT_EQUAL_FATAL(bundle_rows_load(&r2, p, NULL, &eb), 0);
        snprintf(p, sizeof(p), "%s/b2/delta.emb", dir);
        CU_ASSERT_EQUAL_FATAL(bundle_rows_apply(&ra, r1, p, &eb), 0);
        CU_ASSERT_EQUAL(bundle_rows_count(ra), bundle_rows_count(r2));
        CU_ASSERT(bundle_rows_count(r2) > bundle_rows_count(r1));
        /* every row of the applied table is the full table's, same bytes */
        emb_export_reader_t *rd = NULL;
        emb_export_rec_t rec;
        int rc, bad = 0, n = 0;
        snprintf(p, sizeof(p), "%s/b2/full.emb", dir);
        CU_ASSERT_EQUAL_FATAL(emb_export_reader_open(&rd, p, &eb), 0);
        const emb_export_header_t *h = emb_export_reader_header(rd);
        while ((rc = emb_export_reader_next(rd, &rec, &eb)) == 1) {
            const float *x = bundle_rows_find(ra, rec.slot, rec.key);
            n++;
            if (!x) {
                bad++;
                continue;
            }
            for (int d = 0; d < h->dim[rec.slot]; d++)
                if (memcmp(&x[d], (const char *)rec.emb + 4 * d, 4) != 0)
                    bad++;
        }
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL((uint64_t)n, bundle_rows_count(ra));
        CU_ASSERT_PTR_NULL(bundle_rows_find(ra, 0, 12345)); /* a key never seen */
        emb_export_reader_destroy(&rd);
        /* the delta of another day is refused */
        bundle_rows_destroy(&r1);
        snprintf(p, sizeof(p), "%s/b2/delta.emb", dir);
        CU_ASSERT_EQUAL(bundle_rows_apply(&r1, ra, p, &eb), 0); /* day 0 on day 0: applies */
        bundle_rows_destroy(&r1);
        bundle_rows_destroy(&r2);
        bundle_rows_destroy(&ra);
    }
    /* eval --bundle reads the format from the bundle's META */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "%s/funnel-worker eval --bundle %s/b2 --pred %s/p-b2 --log "
                          "%s/w/day2/test.tsv > %s/eval.txt 2>&1",
                          bin, dir, dir, dir, dir),
                    0);
}

static void test_checkpoint(void)
{
    char what[700], log[700];

    snprintf(log, sizeof(log), "%s/refresh.log", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(log,
                                "scripts/daily-refresh.sh --bin %s --day 1 --out %s/ck1 "
                                "--worker-opt '" OPTS "' --ps-opt '" OPTS "' --export-dir %s/exp "
                                "%s/w/day1/train.tsv && "
                                "scripts/daily-refresh.sh --bin %s --day 2 --prev %s/ck1 --out "
                                "%s/ck2 --worker-opt '" OPTS "' --ps-opt '" OPTS
                                "' --export-dir %s/exp %s/w/day2/train.tsv",
                                bin, dir, dir, dir, bin, dir, dir, dir, dir),
                          0);
    /* the refresh wrote bundle-1 (no delta) and bundle-2 (delta since day 1) */
    CU_ASSERT_EQUAL(tu_sh(NULL, "grep -qx 'base_day -1' %s/exp/bundle-1/MANIFEST", dir), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "grep -qx 'base_day 1' %s/exp/bundle-2/MANIFEST", dir), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s/exp/full-day2.emb %s/exp/bundle-2/full.emb", dir, dir),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s/exp/delta-day2.emb %s/exp/bundle-2/delta.emb", dir, dir),
                    0);
    /* dense.bin assembled from two shards predicts as the checkpoint */
    snprintf(what, sizeof(what), "--model %s/ck2", dir);
    CU_ASSERT_EQUAL(predict(what, "p-ck2"), 0);
    snprintf(what, sizeof(what), "--bundle %s/exp/bundle-2", dir);
    CU_ASSERT_EQUAL(predict(what, "p-bck2"), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/p-ck2 %s/p-bck2", dir, dir), 0);
    /* and the bundle command refuses to overwrite */
    snprintf(log, sizeof(log), "%s/again.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-emb bundle %s/ck2 --out %s/exp/bundle-2", bin, dir, dir),
                    1);
    char *text = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "exists; bundles are never overwritten") : NULL);
    free(text);
}

/* Expect predict --bundle DIR to fail saying `want`. */
static void refused(const char *want)
{
    char what[700], log[700], *text;

    snprintf(what, sizeof(what), "--bundle %s/bx", dir);
    CU_ASSERT_NOT_EQUAL(predict(what, "p-bx"), 0);
    snprintf(log, sizeof(log), "%s/p-bx.log", dir);
    text = tu_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, want) : NULL);
    if (!text || !strstr(text, want))
        fprintf(stderr, "\nexpected '%s' in: %s\n", want, text ? text : "(none)");
    free(text);
}

static void test_damaged(void)
{
    char want[800];

    const char *files[] = {"full.emb", "dense.bin", "META", "delta.emb"};
    for (int i = 0; i < 4; i++) {
        /* flip one byte in the middle of the file */
        CU_ASSERT_EQUAL_FATAL(
            tu_sh(NULL,
                  "rm -rf %s/bx && cp -r %s/b2 %s/bx && f=%s/bx/%s && n=$(stat -c %%s $f) && "
                  "o=$((n / 2)) && b=$(dd if=$f bs=1 skip=$o count=1 2>/dev/null | od -An -tu1 | "
                  "tr -d ' ') && printf \"$(printf '\\\\%%03o' $(( (b + 1) %% 256 )))\" | "
                  "dd of=$f bs=1 seek=$o count=1 conv=notrunc 2>/dev/null",
                  dir, dir, dir, dir, files[i]),
            0);
        snprintf(want, sizeof(want), "%s/bx/%s: XXH64 ", dir, files[i]);
        refused(want);
    }
    /* a truncated file: its size differs */
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "rm -rf %s/bx && cp -r %s/b2 %s/bx && truncate -s -1 "
                                "%s/bx/full.emb",
                                dir, dir, dir, dir),
                          0);
    snprintf(want, sizeof(want), "%s/bx/full.emb: ", dir);
    refused(want);
    refused("bytes, MANIFEST says");
    /* another first line */
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "rm -rf %s/bx && cp -r %s/b2 %s/bx && sed -i "
                                "'1s/.*/funnel-bundle 2/' %s/bx/MANIFEST",
                                dir, dir, dir, dir),
                          0);
    snprintf(want, sizeof(want), "%s/bx/MANIFEST: bundle version 2", dir);
    refused(want);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "sed -i '1s/.*/funnel-meta 1/' %s/bx/MANIFEST", dir), 0);
    snprintf(want, sizeof(want),
             "%s/bx/MANIFEST: first line \"funnel-meta 1\", expected \"funnel-bundle 1\"", dir);
    refused(want);
    /* unknown keys are ignored: a bundle with an extra line still predicts */
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "rm -rf %s/bx && cp -r %s/b2 %s/bx && echo 'created_by someone' "
                                ">> %s/bx/MANIFEST",
                                dir, dir, dir, dir),
                          0);
    snprintf(want, sizeof(want), "--bundle %s/bx", dir);
    CU_ASSERT_EQUAL(predict(want, "p-bx"), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/p-m2 %s/p-bx", dir, dir), 0);
}

int test_bundle_register(void)
{
    CU_pSuite s = CU_add_suite("bundle", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "a model directory's bundle predicts as the model; its delta applies",
                test_model_dir);
    CU_add_test(s, "daily-refresh writes bundles; a 2-shard checkpoint's predicts as it",
                test_checkpoint);
    CU_add_test(s, "a damaged bundle is refused naming the file", test_damaged);
    return CU_get_error();
}
