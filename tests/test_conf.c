/*
 * test_conf.c - the configuration engine and the [model] section: good
 * files, unknown keys and sections, bad ranges and types, overrides, and
 * the model description built from them.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/model_conf.h"
#include "common/ps_conf.h"
#include "tests/util.h"
#include "worker/worker_conf.h"

typedef struct tconf {
    model_conf_t model;
    int64_t batch;
    double lr;
    int verbose;
    uint64_t mem;
    conf_str_t name;
} tconf_t;

static const conf_key_t tkeys[] = {
#define ROW(...) CONF_ROW(tconf_t, __VA_ARGS__)
#define MROW(sect, name, ...) {#sect, #name, 0, 0, NULL, 0, 0, NULL, NULL},
    {"model", "emb_dim", CONF_INT, offsetof(tconf_t, model.emb_dim), "16", 1, 1024, NULL, "d"},
    {"model", "slots", CONF_TEXT, offsetof(tconf_t, model.slots), "a,b", 0, 0, NULL, "s"},
    {"model", "model_type", CONF_ENUM, offsetof(tconf_t, model.model_type), "esm2", 0, 0,
     "esm2|esmm|naive", "m"},
    ROW(train, batch, INT, "512", 1, 4096, NULL, "rows per batch")
        ROW(train, lr, FLOAT, "0.5", 0, 1, NULL, "learning rate")
            ROW(train, verbose, BOOL, "false", 0, 0, NULL, "chatty")
                ROW(train, mem, SIZE, "1G", 0, 1e15, NULL, "memory")
                    ROW(train, name, STR, "x", 0, 0, NULL, "name")
#undef ROW
#undef MROW
};

static const char *const tother[] = {"ps", NULL};
static const conf_schema_t tschema = {"test", tkeys, sizeof(tkeys) / sizeof(tkeys[0]), tother};

static char dir[512];

static int setup(void)
{
    return tu_mkdtemp(dir, sizeof(dir), "conf");
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

static int load_text(const char *text, tconf_t *c, errbuf_t *eb)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/t.conf", dir);
    tu_write(path, text);
    conf_defaults(&tschema, c, eb);
    return conf_load_file(&tschema, c, path, eb);
}

static void test_defaults_and_good_file(void)
{
    tconf_t c;
    errbuf_t eb;

    CU_ASSERT_EQUAL(conf_defaults(&tschema, &c, &eb), 0);
    CU_ASSERT_EQUAL(c.batch, 512);
    CU_ASSERT_EQUAL(c.mem, 1ull << 30);
    CU_ASSERT_EQUAL(c.verbose, 0);
    CU_ASSERT_EQUAL(load_text("# comment\n[train]\nbatch = 64\nlr = 0.25\nverbose = yes\n"
                              "mem = 512M\n[model]\nmodel_type = esmm\n[ps]\nanything = 1\n",
                              &c, &eb),
                    0);
    CU_ASSERT_EQUAL(c.batch, 64);
    CU_ASSERT_DOUBLE_EQUAL(c.lr, 0.25, 1e-12);
    CU_ASSERT_EQUAL(c.verbose, 1);
    CU_ASSERT_EQUAL(c.mem, 512ull << 20);
    CU_ASSERT_EQUAL(c.model.model_type, MODEL_ESMM);
}

static void test_unknown_key_names_file_line_key(void)
{
    tconf_t c;
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL(load_text("[train]\nbatch = 64\n\nbatchsize = 3\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "t.conf:4"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "batchsize"));
    CU_ASSERT_EQUAL(load_text("[nosuch]\nbatch = 1\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "nosuch"));
    /* a key in the wrong section is unknown there */
    CU_ASSERT_EQUAL(load_text("[model]\nbatch = 1\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "t.conf:2"));
}

static void test_bad_values(void)
{
    tconf_t c;
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL(load_text("[train]\nbatch = 0\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "out of range"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "'batch'"));
    CU_ASSERT_EQUAL(load_text("[train]\nbatch = 12x\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_EQUAL(load_text("[train]\nlr = 2\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_EQUAL(load_text("[train]\nlr = nan\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_EQUAL(load_text("[train]\nverbose = maybe\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_EQUAL(load_text("[train]\nmem = 12Q\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_EQUAL(load_text("[model]\nmodel_type = dcn\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "esm2|esmm|naive"));
    CU_ASSERT_EQUAL(load_text("[train]\nthis is not ini\n", &c, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "t.conf:2"));
}

static void test_missing_file(void)
{
    tconf_t c;
    errbuf_t eb = {{0}};

    conf_defaults(&tschema, &c, &eb);
    CU_ASSERT_EQUAL(conf_load_file(&tschema, &c, "/nonexistent/x.conf", &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "/nonexistent/x.conf"));
}

static void test_overrides(void)
{
    tconf_t c;
    errbuf_t eb = {{0}};
    char path[600];
    char *pos[4];
    int npos, help;

    snprintf(path, sizeof(path), "%s/o.conf", dir);
    tu_write(path, "[train]\nbatch = 64\nlr = 0.1\n");
    char *argv[] = {"--batch", "128", "in.log", "--conf", path, "--verbose", "--lr=0.3", "out.log"};
    CU_ASSERT_EQUAL(conf_parse_args(&tschema, &c, 8, argv, pos, 4, &npos, &help, &eb), 0);
    CU_ASSERT_EQUAL(c.batch, 128); /* command line wins over the file */
    CU_ASSERT_DOUBLE_EQUAL(c.lr, 0.3, 1e-12);
    CU_ASSERT_EQUAL(c.verbose, 1);
    CU_ASSERT_EQUAL(npos, 2);
    CU_ASSERT_STRING_EQUAL(pos[0], "in.log");
    CU_ASSERT_STRING_EQUAL(pos[1], "out.log");
    CU_ASSERT_EQUAL(help, 0);

    char *bad[] = {"--no-such-key", "1"};
    CU_ASSERT_EQUAL(conf_parse_args(&tschema, &c, 2, bad, pos, 4, &npos, &help, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "--no-such-key"));
    char *range[] = {"--batch", "99999"};
    CU_ASSERT_EQUAL(conf_parse_args(&tschema, &c, 2, range, pos, 4, &npos, &help, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "--batch"));
    char *nov[] = {"--batch"};
    CU_ASSERT_EQUAL(conf_parse_args(&tschema, &c, 1, nov, pos, 4, &npos, &help, &eb), ERR_CONFIG);
    char *h[] = {"--help"};
    CU_ASSERT_EQUAL(conf_parse_args(&tschema, &c, 1, h, pos, 4, &npos, &help, &eb), 0);
    CU_ASSERT_EQUAL(help, 1);
}

static void test_model_spec(void)
{
    model_conf_t mc;
    model_spec_t ms;
    errbuf_t eb = {{0}};
    static const conf_key_t mkeys[] = {
#define ROW(...) CONF_ROW(model_conf_t, __VA_ARGS__)
        MODEL_CONF_KEYS(ROW)
#undef ROW
    };
    const conf_schema_t msc = {"model", mkeys, sizeof(mkeys) / sizeof(mkeys[0]), NULL};

    CU_ASSERT_EQUAL(conf_defaults(&msc, &mc, &eb), 0);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), 0);
    CU_ASSERT_EQUAL(ms.nslots, 8);
    CU_ASSERT_EQUAL(ms.input_dim, 8 * 16);
    CU_ASSERT_EQUAL(ms.nlayers, 3);
    CU_ASSERT_EQUAL(ms.layer[0], 256);
    CU_ASSERT_EQUAL(ms.nloss, 3);
    CU_ASSERT_EQUAL(model_spec_slot(&ms, "tag", 3), 7);

    CU_ASSERT_EQUAL(conf_set(&msc, &mc, "slot_dims", "tag:8,hour:4", "t", &eb), 0);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), 0);
    CU_ASSERT_EQUAL(ms.input_dim, 6 * 16 + 8 + 4);
    CU_ASSERT_EQUAL(conf_set(&msc, &mc, "slot_dims", "nope:8", "t", &eb), 0);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "nope"));
    conf_set(&msc, &mc, "slot_dims", "", "t", &eb);
    conf_set(&msc, &mc, "model_type", "esmm", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), 0); /* the default: all ones */
    CU_ASSERT_EQUAL(ms.nloss, 2);
    conf_set(&msc, &mc, "loss_weights", "1,2,1", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), ERR_CONFIG); /* 3 weights for esmm */
    conf_set(&msc, &mc, "loss_weights", "1,2", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), 0);
    CU_ASSERT_DOUBLE_EQUAL(ms.loss_weight[1], 2.0, 1e-9);
    conf_set(&msc, &mc, "loss_weights", "1,nan", "t", &eb);
    /* never a non-finite weight */
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), ERR_CONFIG);
    conf_set(&msc, &mc, "loss_weights", "inf,1", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), ERR_CONFIG);
    conf_set(&msc, &mc, "loss_weights", "1,2", "t", &eb);
    conf_set(&msc, &mc, "slots", "a,b,a", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), ERR_CONFIG);
    conf_set(&msc, &mc, "slots", "a,b", "t", &eb);
    conf_set(&msc, &mc, "towers", "64,0", "t", &eb);
    CU_ASSERT_EQUAL(model_spec_from_conf(&ms, &mc, &eb), ERR_CONFIG);
    conf_release(&msc, &mc);
}

/* The shipped file parses for both roles, names every key, and holds
 * exactly the defaults. */
static void check_shipped(const conf_schema_t *sc, size_t size)
{
    char *a = calloc(1, size), *b = calloc(1, size), *text;
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL(conf_defaults(sc, a, &eb), 0);
    CU_ASSERT_EQUAL(conf_defaults(sc, b, &eb), 0);
    CU_ASSERT_EQUAL(conf_load_file(sc, b, "conf/funnel.conf", &eb), 0);
    if (eb.msg[0])
        fprintf(stderr, "\n  conf/funnel.conf: %s\n", eb.msg);
    for (size_t i = 0; i < sc->nkeys; i++) { /* value by value: TEXT values are heap copies */
        char va[CONF_STR_MAX], vb[CONF_STR_MAX];
        conf_format_value(&sc->keys[i], a, va, sizeof(va));
        conf_format_value(&sc->keys[i], b, vb, sizeof(vb));
        CU_ASSERT_STRING_EQUAL(va, vb);
    }
    conf_release(sc, b);
    text = tu_slurp("conf/funnel.conf", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    for (size_t i = 0; i < sc->nkeys; i++) {
        char line[256];
        snprintf(line, sizeof(line), "\n%s = ", sc->keys[i].name);
        if (!strstr(text, line))
            fprintf(stderr, "\n  conf/funnel.conf lacks %s\n", sc->keys[i].name);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, line));
    }
    free(text);
    free(a);
    free(b);
}

static void test_shipped_config(void)
{
    check_shipped(&worker_conf_schema, sizeof(worker_conf_t));
    check_shipped(&ps_conf_schema, sizeof(ps_conf_t));
}

/* Byte sizes: suffixes multiply by powers of 1024; a size no uint64_t
 * holds is refused (found by fuzz_conf: 300000000T was converted with
 * undefined behaviour). */
static void test_sizes(void)
{
    uint64_t v = 0;

    CU_ASSERT_EQUAL(conf_parse_size("4K", &v), 0);
    CU_ASSERT_EQUAL(v, 4096);
    CU_ASSERT_EQUAL(conf_parse_size("1.5 GB", &v), 0);
    CU_ASSERT_EQUAL(v, UINT64_C(1610612736));
    CU_ASSERT_EQUAL(conf_parse_size("16777215T", &v), 0);
    CU_ASSERT_EQUAL(v, UINT64_C(16777215) << 40);
    CU_ASSERT_EQUAL(conf_parse_size("16777216T", &v), ERR_PARSE); /* 2^64 */
    CU_ASSERT_EQUAL(conf_parse_size("300000000T", &v), ERR_PARSE);
    CU_ASSERT_EQUAL(conf_parse_size("1e30", &v), ERR_PARSE);
    CU_ASSERT_EQUAL(conf_parse_size("-1", &v), ERR_PARSE);
}

int test_conf_register(void)
{
    CU_pSuite s = CU_add_suite("conf", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "defaults and a good file", test_defaults_and_good_file);
    CU_add_test(s, "unknown key names file, line and key", test_unknown_key_names_file_line_key);
    CU_add_test(s, "bad values", test_bad_values);
    CU_add_test(s, "byte sizes, and one past 2^64 refused", test_sizes);
    CU_add_test(s, "missing file", test_missing_file);
    CU_add_test(s, "command-line overrides", test_overrides);
    CU_add_test(s, "model description", test_model_spec);
    CU_add_test(s, "conf/funnel.conf documents every key with its default", test_shipped_config);
    return CU_get_error();
}
