/*
 * test_keydict.c - the key dictionary (common/keydict.h) and the readable
 * keys it gives funnel-emb.
 *
 * In memory: keys are kept once, in first-seen order, up to the bound
 * (then marked capped); values a line cannot hold are counted, not
 * written; a written file reads back to the same answers; a damaged line
 * (a key that is not its value's hash) or a missing file is an error
 * naming the file and line. End to end on real generated data: check-data
 * (tsv1 and Ali-CCP) and in-process train write dictionaries of what the
 * logs hold, a small bound says so and how to raise it, and funnel-emb
 * top/get/dump with --keys print item_id values (i<N>) instead of hashes,
 * on a real model directory.
 */
#include <CUnit/CUnit.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keydict.h"
#include "common/keyhash.h"
#include "tests/util.h"

static model_spec_t spec(void)
{
    model_spec_t ms;
    static const char *const names[] = {"user_id", "item_id", "bad\tslot"};
    memset(&ms, 0, sizeof(ms));
    ms.nslots = 3;
    for (int s = 0; s < 3; s++) {
        snprintf(ms.slot[s].name, sizeof(ms.slot[s].name), "%s", names[s]);
        ms.slot[s].seed = keyhash_slot(names[s], strlen(names[s]));
        ms.slot[s].dim = 4;
    }
    return ms;
}

static uint64_t key_of(const model_spec_t *ms, int slot, const char *v)
{
    return keyhash_value(ms->slot[slot].seed, v, strlen(v));
}

static void add(keydict_t *d, const model_spec_t *ms, int slot, const char *v)
{
    CU_ASSERT_EQUAL(keydict_add(d, slot, v, strlen(v), key_of(ms, slot, v)), 0);
}

static void test_add_find_cap_write_load(void)
{
    model_spec_t ms = spec();
    keydict_t *d = keydict_new(&ms, 3), *r = NULL;
    char dir[512], path[600], line[1024];
    errbuf_t eb = {{0}};

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "keydict"), 0);
    add(d, &ms, 0, "u1");
    add(d, &ms, 1, "i42");
    add(d, &ms, 1, "i42"); /* again: kept once */
    add(d, &ms, 1, "caf\xc3\xa9 \"x\"");
    CU_ASSERT_EQUAL(keydict_size(d), 3);
    CU_ASSERT_FALSE(keydict_capped(d));
    add(d, &ms, 1, "i43"); /* past the bound */
    CU_ASSERT_EQUAL(keydict_size(d), 3);
    CU_ASSERT_TRUE(keydict_capped(d));
    CU_ASSERT_PTR_NULL(keydict_find(d, 1, key_of(&ms, 1, "i43")));
    /* the same key under another slot is another entry */
    CU_ASSERT_PTR_NULL(keydict_find(d, 0, key_of(&ms, 1, "i42")));
    CU_ASSERT_STRING_EQUAL(keydict_find(d, 1, key_of(&ms, 1, "i42")), "i42");
    CU_ASSERT_STRING_EQUAL(keydict_find(d, 0, key_of(&ms, 0, "u1")), "u1");
    CU_ASSERT_PTR_NULL(keydict_find(NULL, 0, 1));
    /* what a line cannot hold is counted, not written */
    keydict_t *u = keydict_new(&ms, 10);
    add(u, &ms, 1, "a\tb");
    add(u, &ms, 1, "a\nb");
    add(u, &ms, 2, "fine");
    CU_ASSERT_EQUAL(keydict_size(u), 0);
    CU_ASSERT_EQUAL(keydict_unwritable(u), 3);
    keydict_destroy(&u);
    CU_ASSERT_PTR_NULL(u);

    snprintf(path, sizeof(path), "%s/keys.tsv", dir);
    CU_ASSERT_EQUAL_FATAL(keydict_write(d, path, &eb), 0);
    keydict_summary(d, path, line, sizeof(line));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "3 keys written to"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "--key_dict_max"));
    char *text = tu_slurp(path, NULL);
    char want[256];
    snprintf(want, sizeof(want), "%s\nuser_id\t%016" PRIx64 "\tu1\nitem_id\t%016" PRIx64 "\ti42\n",
             KEYDICT_HEADER, key_of(&ms, 0, "u1"), key_of(&ms, 1, "i42"));
    CU_ASSERT_EQUAL(strncmp(text, want, strlen(want)), 0);
    free(text);

    CU_ASSERT_EQUAL_FATAL(keydict_load(&r, &ms, path, &eb), 0);
    CU_ASSERT_EQUAL(keydict_size(r), 3);
    CU_ASSERT_STRING_EQUAL(keydict_find(r, 1, key_of(&ms, 1, "caf\xc3\xa9 \"x\"")),
                           "caf\xc3\xa9 \"x\"");
    keydict_destroy(&r);

    /* a model without item_id skips those lines */
    model_spec_t one = ms;
    one.nslots = 1;
    CU_ASSERT_EQUAL_FATAL(keydict_load(&r, &one, path, &eb), 0);
    CU_ASSERT_EQUAL(keydict_size(r), 1);
    keydict_destroy(&r);

    /* a key that is not its value's hash: the file and line are named */
    char bad[700];
    snprintf(bad, sizeof(bad), "%s/bad.tsv", dir);
    snprintf(want, sizeof(want), "# c\nitem_id\t%016" PRIx64 "\ti42\nitem_id\t%016" PRIx64 "\ti7\n",
             key_of(&ms, 1, "i42"), key_of(&ms, 1, "i8"));
    CU_ASSERT_EQUAL_FATAL(tu_write(bad, want), 0);
    CU_ASSERT_EQUAL(keydict_load(&r, &ms, bad, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "bad.tsv:3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "'i7'"));
    CU_ASSERT_EQUAL_FATAL(tu_write(bad, "item_id 0000000000000001 i42\n"), 0);
    CU_ASSERT_EQUAL(keydict_load(&r, &ms, bad, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "bad.tsv:1"));
    snprintf(bad, sizeof(bad), "%s/none.tsv", dir);
    CU_ASSERT_EQUAL(keydict_load(&r, &ms, bad, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "none.tsv"));

    keydict_destroy(&d);
    tu_rmtree(dir);
}

/* The first data row of a `top` table: its second column into val. */
static int top_value(const char *text, char *val, size_t len)
{
    const char *nl = strchr(text, '\n');
    char slot[64], v[128];

    if (!nl || sscanf(nl + 1, "%63s %127s", slot, v) != 2)
        return -1;
    snprintf(val, len, "%s", v);
    return 0;
}

static void test_generated_data_readable_keys(void)
{
    char dir[512], gen[600], worker[600], emb[600], path[700], val[128];
    char *text;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "keydict"), 0);
    tu_bin(gen, sizeof(gen), "funnel-gen");
    tu_bin(worker, sizeof(worker), "funnel-worker");
    tu_bin(emb, sizeof(emb), "funnel-emb");
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "%s --out %s/data --train 20000 --test 100 --users 2000 "
                                "--items 1000 --seed 5 > %s/gen.log 2>&1",
                                gen, dir, dir),
                          0);

    /* check-data: every distinct key of the log; a small bound says so */
    snprintf(path, sizeof(path), "%s/check.out", dir);
    CU_ASSERT_EQUAL(
        tu_sh(path, "%s check-data %s/data/train.tsv --key_dict %s/check.keys", worker, dir, dir),
        0);
    text = tu_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "keys written to"));
    CU_ASSERT_PTR_NULL(strstr(text, "capped"));
    free(text);
    CU_ASSERT_EQUAL(tu_sh(path,
                          "%s check-data %s/data/train.tsv --key_dict %s/small.keys "
                          "--key_dict_max 10",
                          worker, dir, dir),
                    0);
    text = tu_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "10 keys written to"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "capped at key_dict_max = 10"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "raise --key_dict_max"));
    free(text);
    CU_ASSERT_EQUAL(tu_sh(NULL, "test $(grep -vc '^#' %s/small.keys) -eq 10", dir), 0);
    /* every item_id:VALUE of the log is in the dictionary with its hash */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "test \"$(cut -f4 %s/data/train.tsv | tr ' ' '\\n' | grep '^item_id:' "
                          "| cut -d: -f2 | sort -u | wc -l)\" = \"$(grep -c '^item_id\t' "
                          "%s/check.keys)\"",
                          dir, dir),
                    0);

    /* Ali-CCP: item ids from the skeleton, user ids from the common features */
    CU_ASSERT_EQUAL(
        tu_sh(NULL,
              "%s --out %s/ali --format aliccp --train 2000 --test 10 --users 200 "
              "--items 100 > %s/gen.log 2>&1 && %s check-data --format aliccp "
              "--slots 101,205,206,207,216,210,301,302 %s/ali/sample_skeleton_train.csv "
              "%s/ali/common_features_train.csv --key_dict %s/ali.keys > /dev/null 2>&1",
              gen, dir, dir, worker, dir, dir, dir),
        0);
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "grep -q '^101\t[0-9a-f]*\t[0-9]*$' %s/ali.keys && "
                          "grep -q '^205\t[0-9a-f]*\t[0-9]*$' %s/ali.keys",
                          dir, dir),
                    0);

    /* train in process writes the same dictionary */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "%s train --model %s/model --key_dict %s/train.keys --progress off "
                          "%s/data/train.tsv > %s/train.log 2>&1",
                          worker, dir, dir, dir, dir),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/check.keys %s/train.keys", dir, dir), 0);
    /* ... but not from a worker of a cluster, which sees a share of the logs */
    snprintf(path, sizeof(path), "%s/cluster.out", dir);
    CU_ASSERT_NOT_EQUAL(tu_sh(path,
                              "%s train --ps ipc://%s/nowhere --key_dict %s/c.keys "
                              "%s/data/train.tsv",
                              worker, dir, dir, dir),
                        0);
    text = tu_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "check-data --key_dict"));
    free(text);

    /* funnel-emb: the most updated item is shown by its value */
    snprintf(path, sizeof(path), "%s/top.out", dir);
    CU_ASSERT_EQUAL(
        tu_sh(path, "%s top %s/model --slot item_id -n 3 --keys %s/train.keys", emb, dir, dir), 0);
    text = tu_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "value"));
    CU_ASSERT_EQUAL(top_value(text, val, sizeof(val)), 0);
    CU_ASSERT_EQUAL(val[0], 'i'); /* i<N>, not a hash */
    CU_ASSERT(strlen(val) < 16);
    free(text);
    /* ... and get finds it by that value, printing it */
    snprintf(path, sizeof(path), "%s/get.out", dir);
    CU_ASSERT_EQUAL(
        tu_sh(path, "%s get %s/model item_id:%s --keys %s/train.keys", emb, dir, val, dir), 0);
    text = tu_slurp(path, NULL);
    char want[200];
    snprintf(want, sizeof(want), "item_id:%s (key ", val);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
    free(text);
    /* dump: every row of the model has its value */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "%s dump %s/model --keys %s/train.keys > %s/dump.tsv && "
                          "test \"$(awk -F'\\t' 'NR > 1 && $7 == \"\"' %s/dump.tsv | wc -l)\" = 0 "
                          "&& test $(wc -l < %s/dump.tsv) -gt 1000",
                          emb, dir, dir, dir, dir, dir),
                    0);
    /* a damaged dictionary is refused, naming the line */
    snprintf(path, sizeof(path), "%s/bad.out", dir);
    CU_ASSERT_EQUAL(
        tu_sh(NULL, "sed '3s/\\t[a-z0-9_]*$/\\tnot-this/' %s/train.keys > %s/bad.keys", dir, dir),
        0);
    CU_ASSERT_NOT_EQUAL(tu_sh(path, "%s top %s/model --keys %s/bad.keys", emb, dir, dir), 0);
    text = tu_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "bad.keys:3"));
    free(text);
    tu_rmtree(dir);
}

int test_keydict_register(void)
{
    CU_pSuite s = CU_add_suite("keydict", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "kept once, bounded, written and read back; damage named by line",
                test_add_find_cap_write_load);
    CU_add_test(s, "generated data: check-data and train write it, funnel-emb shows values",
                test_generated_data_readable_keys);
    return CU_get_error();
}
