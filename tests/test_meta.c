/*
 * test_meta.c - META files: round trip, mismatch messages, corrupt and
 * missing files; the format line (optional: files without it still read);
 * the layout as configuration values, and taking it into a configuration
 * where the user gave no value (contradictions name both values).
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The digest a META of spec ms carries. */
static uint64_t layout_of(const model_spec_t *ms)
{
    meta_t m;

    meta_from_spec(&m, ms, 1, 0, 0);
    return m.digest;
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

static void test_format_line(void)
{
    char dir[512], path[600];
    model_spec_t ms = default_spec();
    meta_t a, b;
    errbuf_t eb = {{0}};
    char *text;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "meta"), 0);
    snprintf(path, sizeof(path), "%s/META", dir);
    meta_from_spec(&a, &ms, 1, 0, 7);
    CU_ASSERT_STRING_EQUAL(a.format, ""); /* not recorded unless set */
    CU_ASSERT_EQUAL(meta_write(dir, &a, &eb), 0);
    text = tu_slurp(path, NULL);
    CU_ASSERT_PTR_NULL(text ? strstr(text, "format") : "no file"); /* as files before it */
    free(text);
    CU_ASSERT_EQUAL(meta_read(dir, &b, &eb), 0);
    CU_ASSERT_STRING_EQUAL(b.format, "");

    CU_ASSERT_EQUAL(meta_set_format(&a, "aliccp"), 0);
    CU_ASSERT_EQUAL(meta_set_format(&b, "ali ccp"), ERR_INVAL);
    CU_ASSERT_EQUAL(meta_set_format(&b, "a-very-long-format-name"), ERR_INVAL);
    CU_ASSERT_EQUAL(meta_write(dir, &a, &eb), 0);
    text = tu_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "\nformat aliccp\n") : NULL);
    free(text);
    CU_ASSERT_EQUAL(meta_read(dir, &b, &eb), 0);
    CU_ASSERT_STRING_EQUAL(b.format, "aliccp");
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof(a)), 0);
    CU_ASSERT_EQUAL(a.digest, layout_of(&ms)); /* the format is not in the digest */

    /* an edited format line breaks the checksum */
    text = tu_slurp(path, NULL);
    if (text) {
        char *f = strstr(text, "format aliccp");
        if (f)
            memcpy(f, "format tsv1xx", 13);
        tu_write(path, text);
        free(text);
    }
    CU_ASSERT_EQUAL(meta_read(dir, &b, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "checksum"));
    tu_rmtree(dir);
}

static void test_layout_into_conf(void)
{
    static const conf_key_t keys[] = {
#define ROW(...) CONF_ROW(model_conf_t, __VA_ARGS__)
        MODEL_CONF_KEYS(ROW)
#undef ROW
    };
    const conf_schema_t sc = {"model", keys, sizeof(keys) / sizeof(keys[0]), NULL};
    char *argv[8], *pos[2], buf[256];
    conf_given_t given;
    model_conf_t mc;
    model_spec_t ms;
    meta_t m;
    errbuf_t eb = {{0}};
    int npos, help;

    /* the saved layout: esmm, dims 8 (tag 4), towers 32,16 */
    argv[0] = "--model_type", argv[1] = "esmm", argv[2] = "--emb_dim", argv[3] = "8";
    argv[4] = "--slot_dims", argv[5] = "tag:4", argv[6] = "--towers", argv[7] = "32,16";
    CU_ASSERT_EQUAL_FATAL(
        conf_parse_args_given(&sc, &mc, &given, 8, argv, pos, 2, &npos, &help, &eb), 0);
    CU_ASSERT_EQUAL(conf_key_given(&sc, &given, "towers"), 1);
    CU_ASSERT_EQUAL(conf_key_given(&sc, &given, "slots"), 0);
    CU_ASSERT_EQUAL(conf_key_given(&sc, &given, "no_such_key"), -1);
    CU_ASSERT_EQUAL_FATAL(model_spec_from_conf(&ms, &mc, &eb), 0);
    meta_from_spec(&m, &ms, 1, 0, 0);
    CU_ASSERT_EQUAL(meta_conf_value(&m, "emb_dim", buf, sizeof(buf)), 0);
    CU_ASSERT_STRING_EQUAL(buf, "8");
    CU_ASSERT_EQUAL(meta_conf_value(&m, "slot_dims", buf, sizeof(buf)), 0);
    CU_ASSERT_STRING_EQUAL(buf, "tag:4");
    CU_ASSERT_EQUAL(meta_conf_value(&m, "format", buf, sizeof(buf)), ERR_NOTFOUND);

    /* nothing given: everything comes from META, and the spec is the same */
    conf_release(&sc, &mc); /* the slot lists META put on the heap */
    CU_ASSERT_EQUAL(conf_parse_args_given(&sc, &mc, &given, 0, argv, pos, 2, &npos, &help, &eb), 0);
    CU_ASSERT_EQUAL(meta_apply_conf(&m, "DIR", &sc, &mc, &given, &eb), 0);
    model_spec_t back;
    CU_ASSERT_EQUAL_FATAL(model_spec_from_conf(&back, &mc, &eb), 0);
    meta_t mb;
    meta_from_spec(&mb, &back, 1, 0, 0);
    CU_ASSERT_EQUAL(meta_check(&m, &mb, "DIR", &eb), 0);
    CU_ASSERT_EQUAL(mb.digest, m.digest);

    /* the same value given: fine; another: both named */
    argv[0] = "--towers", argv[1] = "32, 16";
    conf_release(&sc, &mc);
    CU_ASSERT_EQUAL(conf_parse_args_given(&sc, &mc, &given, 2, argv, pos, 2, &npos, &help, &eb), 0);
    CU_ASSERT_EQUAL(meta_apply_conf(&m, "DIR", &sc, &mc, &given, &eb), 0);
    argv[0] = "--model_type", argv[1] = "naive";
    conf_release(&sc, &mc);
    CU_ASSERT_EQUAL(conf_parse_args_given(&sc, &mc, &given, 2, argv, pos, 2, &npos, &help, &eb), 0);
    CU_ASSERT_EQUAL(meta_apply_conf(&m, "DIR", &sc, &mc, &given, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(eb.msg, "the model in DIR holds an esmm model; --model_type says naive"));
    argv[0] = "--slots", argv[1] = "user_id";
    conf_release(&sc, &mc);
    CU_ASSERT_EQUAL(conf_parse_args_given(&sc, &mc, &given, 2, argv, pos, 2, &npos, &help, &eb), 0);
    CU_ASSERT_EQUAL(meta_apply_conf(&m, "DIR", &sc, &mc, &given, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "--slots says 'user_id'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "'user_id,item_id,cate_id"));

    /* a config file: a line repeating the default pins nothing, another does */
    char d[512], path[600];
    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(d, sizeof(d), "metaconf"), 0);
    snprintf(path, sizeof(path), "%s/x.conf", d);
    tu_write(path, "[model]\ntowers = 256,128,64\nmodel_type = esmm\n");
    argv[0] = "--conf", argv[1] = path;
    conf_release(&sc, &mc);
    CU_ASSERT_EQUAL(conf_parse_args_given(&sc, &mc, &given, 2, argv, pos, 2, &npos, &help, &eb), 0);
    CU_ASSERT_EQUAL(conf_key_given(&sc, &given, "towers"), 0);
    CU_ASSERT_EQUAL(conf_key_given(&sc, &given, "model_type"), 1);
    CU_ASSERT_EQUAL(meta_apply_conf(&m, "DIR", &sc, &mc, &given, &eb), 0);
    CU_ASSERT_STRING_EQUAL(mc.towers.s, "32,16");
    conf_release(&sc, &mc);
    tu_rmtree(d);
}

int test_meta_register(void)
{
    CU_pSuite s = CU_add_suite("meta", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "round trip and mismatches", test_round_trip_and_mismatch);
    CU_add_test(s, "format line, old files without it", test_format_line);
    CU_add_test(s, "layout into a configuration", test_layout_into_conf);
    return CU_get_error();
}
