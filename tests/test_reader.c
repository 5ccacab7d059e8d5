/*
 * test_reader.c - the log reader: every rejection reason with exact
 * counts, CRLF, comments, multi-valued slots, weights, undeclared slots,
 * keys, gzip (good, corrupt, truncated, not gzip), missing files, globs,
 * the Ali-CCP join, resume from every reported position, the split across
 * workers (every line exactly once) and strict mode.
 *
 * Rows are compared through a text signature (labels, then every slot's
 * keys and weights), so "the same rows" means the same batch contents.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/keyhash.h"
#include "common/log.h"
#include "data/reader.h"
#include "data/tokens.h"
#include "tests/util.h"
#include "worker/worker_conf.h"

static char dir[512];

static int setup(void)
{
    return tu_mkdtemp(dir, sizeof(dir), "reader");
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

/* Path of a file in the scratch dir (64 rotating buffers). */
static const char *P(const char *name)
{
    static char buf[64][700];
    static int i;

    i = (i + 1) % 64;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
    return buf[i];
}

static void gzip_file(const char *plain, const char *gz)
{
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "gzip -c '%s' > '%s'", plain, gz), 0);
}

static void make_spec(model_spec_t *ms, const char *slots)
{
    worker_conf_t wc;
    errbuf_t eb;

    CU_ASSERT_EQUAL_FATAL(conf_defaults(&worker_conf_schema, &wc, &eb), 0);
    if (slots)
        CU_ASSERT_EQUAL_FATAL(conf_set(&worker_conf_schema, &wc, "slots", slots, "test", &eb), 0);
    CU_ASSERT_EQUAL_FATAL(model_spec_from_conf(ms, &wc.model, &eb), 0);
    conf_release(&worker_conf_schema, &wc);
}

static reader_opts_t opts(int rank, int workers)
{
    reader_opts_t o;

    memset(&o, 0, sizeof(o));
    o.rank = rank;
    o.workers = workers;
    return o;
}

/* ---- row signatures ------------------------------------------------------ */

typedef struct rows {
    char **v;
    size_t n, cap;
} rows_t;

static void rows_free(rows_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i]);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static void rows_add_batch(rows_t *r, const batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        char sig[4096];
        size_t o =
            (size_t)snprintf(sig, sizeof(sig), "%d%d%d", b->click[i], b->action[i], b->buy[i]);

        for (int s = 0; s < b->nslots; s++) {
            o += (size_t)snprintf(sig + o, sizeof(sig) - o, "|");
            for (uint32_t k = b->slot[s].off[i]; k < b->slot[s].off[i + 1] && o < sizeof(sig); k++)
                o += (size_t)snprintf(sig + o, sizeof(sig) - o, "%016llx*%g,",
                                      (unsigned long long)b->slot[s].keys[k],
                                      (double)b->slot[s].weights[k]);
        }
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->v = realloc(r->v, r->cap * sizeof(*r->v));
        }
        r->v[r->n++] = strdup(sig);
    }
}

/* Read everything from an open reader into rows; returns the final code. */
static int drain(reader_t *rd, int nslots, size_t bsize, rows_t *rows, errbuf_t *eb)
{
    batch_t b;
    int rc;

    batch_init(&b, nslots, bsize);
    while ((rc = reader_next_batch(rd, &b, bsize, eb)) == 0) {
        CU_ASSERT(b.n > 0 && b.n <= bsize);
        rows_add_batch(rows, &b);
    }
    batch_release(&b);
    return rc;
}

/* Open, read all, keep the stats; returns the final code (ERR_EOF: fine). */
static int read_all(const model_spec_t *ms, const reader_opts_t *o, char *const *paths, int n,
                    size_t bsize, rows_t *rows, reader_stats_t *st, errbuf_t *eb)
{
    reader_t *rd = NULL;
    int rc = reader_open(&rd, ms, o, paths, n, eb);

    if (rc != 0)
        return rc;
    rc = drain(rd, ms->nslots, bsize, rows, eb);
    if (st)
        *st = *reader_stats(rd);
    reader_destroy(&rd);
    CU_ASSERT_PTR_NULL(rd);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- a test log ---------------------------------------------------------- */

/*
 * n lines with a unique item id each; a comment, an empty line and a bad
 * line now and then; some lines without the final '\n' when last.
 */
static void write_log(const char *path, const char *tag, int n, unsigned seed, int final_nl)
{
    FILE *f = fopen(path, "wb");
    unsigned x = seed * 2654435761u + 1;

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < n; i++) {
        int c, a, y;

        x = x * 1103515245u + 12345u;
        c = (x >> 16) % 5 == 0;
        a = c && (x >> 20) % 3 == 0;
        y = c && (x >> 22) % 4 == 0;
        if (i % 17 == 5)
            fprintf(f, "# comment %d\n", i);
        else if (i % 23 == 7)
            fprintf(f, "\n");
        else if (i % 29 == 11)
            fprintf(f, "0\t1\t0\titem_id:%s%d\n", tag, i); /* COMBO */
        else
            fprintf(f, "%d\t%d\t%d\tuser_id:u%u item_id:%s%d cate_id:c%u tag:t%u:%.2f tag:x%s", c,
                    a, y, (x >> 8) % 50, tag, i, (x >> 12) % 9, (x >> 4) % 7,
                    (double)((x >> 3) % 100) / 50.0, i + 1 < n || final_nl ? "\n" : "");
    }
    fclose(f);
}

/* ---- tests --------------------------------------------------------------- */

static void test_reasons(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_stats_t st;
    rows_t rows = {0};
    errbuf_t eb;
    char big[2048];
    char *paths[1];
    FILE *f;

    make_spec(&ms, NULL);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    paths[0] = (char *)P("reasons.tsv");
    f = fopen(paths[0], "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("1\t0\t0\tuser_id:a item_id:b\n", f);  /* good */
    fputs("0\t0\tuser_id:a\n", f);               /* COLUMNS: 3 */
    fputs("0\t0\t0\tuser_id:a\textra\n", f);     /* COLUMNS: 5 */
    fputs("garbage\n", f);                       /* COLUMNS: 1 */
    fputs("2\t0\t0\tuser_id:a\n", f);            /* LABEL */
    fputs("0\tx\t0\tuser_id:a\n", f);            /* LABEL */
    fputs("00\t0\t0\tuser_id:a\n", f);           /* LABEL */
    fputs("\t0\t0\tuser_id:a\n", f);             /* LABEL (empty) */
    fputs("0\t1\t0\tuser_id:a\n", f);            /* COMBO */
    fputs("0\t0\t1\tuser_id:a\n", f);            /* COMBO */
    fputs("0\t1\t1\tuser_id:a\n", f);            /* COMBO */
    fputs("0\t0\t0\tuser_id\n", f);              /* TOKEN: no colon */
    fputs("0\t0\t0\t:v\n", f);                   /* TOKEN: no slot */
    fputs("0\t0\t0\tuser_id:\n", f);             /* TOKEN: no value */
    fputs("0\t0\t0\tuser_id:a  item_id:b\n", f); /* TOKEN: double space */
    fputs("0\t0\t0\tuser_id:a \n", f);           /* TOKEN: trailing space */
    fputs("0\t0\t0\ttag::0.5\n", f);             /* TOKEN: empty value */
    fputs("0\t0\t0\tnope user_id:a\n", f);       /* TOKEN, undeclared slot too */
    fputs("0\t0\t0\ttag:sale:abc\n", f);         /* WEIGHT */
    fputs("0\t0\t0\ttag:a:\n", f);               /* WEIGHT: empty */
    fputs("0\t0\t0\ttag:a:1.5x\n", f);           /* WEIGHT */
    fputs("0\t0\t0\ttag:a:nan\n", f);            /* WEIGHT */
    fputs("0\t0\t0\ttag:a:1e99\n", f);           /* WEIGHT: not finite */
    fputs("0\t0\t0\tunknown:a:b\n", f);          /* WEIGHT (undeclared slot) */
    fprintf(f, "0\t0\t0\tuser_id:%s\n", big);    /* TOOLONG (max_line 1000) */
    fputs("1\t1\t1\tuser_id:z\n", f);            /* good */
    fputs("0\t0\t0\t\n", f);                     /* good: no tokens */
    fclose(f);

    o.max_line = 1000;
    CU_ASSERT_EQUAL(read_all(&ms, &o, paths, 1, 4, &rows, &st, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(rows.n, 3);
    CU_ASSERT_EQUAL(st.accepted, 3);
    CU_ASSERT_EQUAL(st.by_reason[TOKENS_R_COLUMNS], 3);
    CU_ASSERT_EQUAL(st.by_reason[TOKENS_R_LABEL], 4);
    CU_ASSERT_EQUAL(st.by_reason[TOKENS_R_COMBO], 3);
    CU_ASSERT_EQUAL(st.by_reason[TOKENS_R_TOKEN], 7);
    CU_ASSERT_EQUAL(st.by_reason[TOKENS_R_WEIGHT], 6);
    CU_ASSERT_EQUAL(st.by_reason[TOKENS_R_TOOLONG], 1);
    CU_ASSERT_EQUAL(st.by_reason[TOKENS_R_FEATNUM], 0);
    CU_ASSERT_EQUAL(st.by_reason[TOKENS_R_MD5], 0);
    CU_ASSERT_EQUAL(st.rejected, 24);
    CU_ASSERT_EQUAL(st.lines, 27);
    CU_ASSERT_EQUAL(st.skipped, 0);
    CU_ASSERT_EQUAL(st.tokens, 3); /* rejected lines' tokens are not counted */
    CU_ASSERT_EQUAL(st.unknown_slot_tokens, 0);
    if (rows.n == 3) {
        CU_ASSERT_EQUAL(strncmp(rows.v[0], "100|", 4), 0);
        CU_ASSERT_EQUAL(strncmp(rows.v[1], "111|", 4), 0);
        CU_ASSERT_EQUAL(strncmp(rows.v[2], "000|", 4), 0);
    }
    for (int i = 1; i < TOKENS_NREASONS; i++)
        CU_ASSERT_PTR_NOT_NULL(strstr(tokens_reason_text(i), " "));
    CU_ASSERT_STRING_EQUAL(tokens_reason_text(TOKENS_R_COMBO), "action or buy without click");
    CU_ASSERT_STRING_EQUAL(tokens_reason_text(-1), "unknown reason");
    rows_free(&rows);
}

/* The first report_rejects rejected lines are logged as file:line: reason. */
static void test_report(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_t *rd = NULL;
    rows_t rows = {0};
    errbuf_t eb;
    char *paths[1], *text, line3[800], line5[800];
    FILE *logf = tmpfile();

    CU_ASSERT_PTR_NOT_NULL_FATAL(logf);
    make_spec(&ms, NULL);
    paths[0] = (char *)P("report.tsv");
    tu_write(paths[0], "1\t0\t0\tuser_id:a\n# c\n0\t0\tx\n0\t0\t0\tuser_id:a:zz\n"
                       "3\t0\t0\tuser_id:a\n0\t1\t0\tuser_id:a\n");
    o.report_rejects = 2;
    log_init("test", -1, LOG_LEVEL_WARN, logf);
    CU_ASSERT_EQUAL(reader_open(&rd, &ms, &o, paths, 1, &eb), 0);
    CU_ASSERT_EQUAL(drain(rd, ms.nslots, 16, &rows, &eb), ERR_EOF);
    reader_log_summary(rd); /* INFO: filtered at WARN */
    reader_destroy(&rd);
    log_init("test", -1, LOG_LEVEL_WARN, NULL);

    fflush(logf);
    long n = ftell(logf);
    rewind(logf);
    text = calloc(1, (size_t)n + 1);
    CU_ASSERT_EQUAL(fread(text, 1, (size_t)n, logf), (size_t)n);
    fclose(logf);
    snprintf(line3, sizeof(line3), "%s:3: wrong column count", paths[0]);
    snprintf(line5, sizeof(line5), "%s:4: unparsable weight 'user_id:a:zz'", paths[0]);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, line3));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, line5));
    CU_ASSERT_PTR_NULL(strstr(text, ":5: label")); /* over the budget */
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "further rejected lines are counted"));
    CU_ASSERT_PTR_NULL(strstr(text, " trained")); /* summary is INFO */
    free(text);
    rows_free(&rows);
}

static void test_crlf_comments(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_stats_t st1, st2;
    rows_t r1 = {0}, r2 = {0};
    errbuf_t eb;
    char *p1[1], *p2[1];

    make_spec(&ms, NULL);
    p1[0] = (char *)P("lf.tsv");
    p2[0] = (char *)P("crlf.tsv");
    tu_write(p1[0], "# header comment\n1\t0\t0\tuser_id:a hour:3\n\n0\t0\t0\titem_id:b:0.5\n"
                    "#\t1\t1\tnot a row\n1\t1\t1\tuser_id:c");
    tu_write(p2[0],
             "# header comment\r\n1\t0\t0\tuser_id:a hour:3\r\n\r\n0\t0\t0\titem_id:b:0.5\r\n"
             "#\t1\t1\tnot a row\r\n1\t1\t1\tuser_id:c\r\n\r\n");
    CU_ASSERT_EQUAL(read_all(&ms, &o, p1, 1, 2, &r1, &st1, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(read_all(&ms, &o, p2, 1, 2, &r2, &st2, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(r1.n, 3);
    CU_ASSERT_EQUAL(r2.n, 3);
    for (size_t i = 0; i < r1.n && i < r2.n; i++)
        CU_ASSERT_STRING_EQUAL(r1.v[i], r2.v[i]);
    CU_ASSERT_EQUAL(st1.skipped, 3);
    CU_ASSERT_EQUAL(st2.skipped, 4);
    CU_ASSERT_EQUAL(st1.rejected, 0);
    CU_ASSERT_EQUAL(st2.rejected, 0);
    CU_ASSERT_EQUAL(st1.lines, 6);
    CU_ASSERT_EQUAL(st2.lines, 7);
    rows_free(&r1);
    rows_free(&r2);
}

/* Multi-valued slots, weights, values with ':', undeclared slots, keys. */
static void test_tokens(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_t *rd = NULL;
    batch_t b;
    errbuf_t eb;
    char *paths[1];
    const batch_slot_t *u, *it, *tg, *h;

    make_spec(&ms, "user_id,item_id,tag,hour");
    paths[0] = (char *)P("tokens.tsv");
    tu_write(paths[0], "1\t1\t0\tuser_id:u1 tag:sale:0.5 tag:new other:x item_id:i:9:2.5 "
                       "tag:a:b:c:-1e-1 more:y:3\n"
                       "0\t0\t0\thour:14 hour:14 tag:x:+.25e1\n");
    CU_ASSERT_EQUAL_FATAL(reader_open(&rd, &ms, &o, paths, 1, &eb), 0);
    batch_init(&b, ms.nslots, 1);
    CU_ASSERT_EQUAL_FATAL(reader_next_batch(rd, &b, 10, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(b.n, 2);
    u = &b.slot[0];
    it = &b.slot[1];
    tg = &b.slot[2];
    h = &b.slot[3];
    CU_ASSERT(b.click[0] == 1 && b.action[0] == 1 && b.buy[0] == 0);
    CU_ASSERT(b.click[1] == 0 && b.action[1] == 0 && b.buy[1] == 0);
    /* row 0 */
    CU_ASSERT_EQUAL(u->off[1] - u->off[0], 1);
    CU_ASSERT_EQUAL(u->keys[0], keyhash_token("user_id", "u1"));
    CU_ASSERT_EQUAL(u->weights[0], 1.0f);
    CU_ASSERT_EQUAL(it->off[1] - it->off[0], 1);
    CU_ASSERT_EQUAL(it->keys[0], keyhash_token("item_id", "i:9"));
    CU_ASSERT_EQUAL(it->weights[0], 2.5f);
    CU_ASSERT_EQUAL_FATAL(tg->off[1] - tg->off[0], 3);
    CU_ASSERT_EQUAL(tg->keys[0], keyhash_token("tag", "sale"));
    CU_ASSERT_EQUAL(tg->weights[0], 0.5f);
    CU_ASSERT_EQUAL(tg->keys[1], keyhash_token("tag", "new"));
    CU_ASSERT_EQUAL(tg->weights[1], 1.0f);
    CU_ASSERT_EQUAL(tg->keys[2], keyhash_token("tag", "a:b:c"));
    CU_ASSERT_EQUAL(tg->weights[2], -0.1f);
    CU_ASSERT_EQUAL(h->off[1] - h->off[0], 0); /* absent slot: empty range */
    /* row 1 */
    CU_ASSERT_EQUAL(u->off[2] - u->off[1], 0);
    CU_ASSERT_EQUAL_FATAL(h->off[2] - h->off[1], 2);
    CU_ASSERT_EQUAL(h->keys[h->off[1]], keyhash_token("hour", "14"));
    CU_ASSERT_EQUAL(h->keys[h->off[1] + 1], keyhash_token("hour", "14"));
    CU_ASSERT_EQUAL_FATAL(tg->off[2] - tg->off[1], 1);
    CU_ASSERT_EQUAL(tg->keys[3], keyhash_token("tag", "x"));
    CU_ASSERT_EQUAL(tg->weights[3], 2.5f);

    const reader_stats_t *st = reader_stats(rd);
    CU_ASSERT_EQUAL(st->tokens, 8);
    CU_ASSERT_EQUAL(st->unknown_slot_tokens, 2);
    CU_ASSERT_EQUAL(st->accepted, 2);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &b, 10, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(b.n, 0);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &b, 10, &eb), ERR_EOF);
    /* a batch of the wrong shape is refused */
    batch_t small;
    batch_init(&small, 2, 4);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &small, 10, &eb), ERR_INVAL);
    batch_release(&small);
    batch_release(&b);
    reader_destroy(&rd);
    reader_destroy(&rd); /* NULL is fine */
}

static void test_weights(void)
{
    static const char *good[] = {"0.5",
                                 "1",
                                 "-2.25",
                                 ".5",
                                 "5.",
                                 "+1",
                                 "1e-3",
                                 "2E+2",
                                 "0.1234567890123456789",
                                 "123456789012345678901234",
                                 "1e-30",
                                 "-0"};
    static const char *bad[] = {"",     ".",    "-",    "1e", "1e+", "abc", "nan", "inf",
                                "1.5x", "1e39", "0x10", " 1", "1 ",  "--1", "1..2"};
    float w;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CU_ASSERT_EQUAL(tokens_parse_weight(good[i], strlen(good[i]), &w), 0);
        CU_ASSERT_EQUAL(w, strtof(good[i], NULL));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(tokens_parse_weight(bad[i], strlen(bad[i]), &w), ERR_PARSE);
    /* differential against strtof on many random decimals */
    unsigned x = 7;
    for (int i = 0; i < 20000; i++) {
        char s[64];
        x = x * 1103515245u + 12345u;
        int n =
            snprintf(s, sizeof(s), "%s%u.%0*u%s", x & 1 ? "-" : "", (x >> 3) % 1000,
                     (int)((x >> 13) % 7 + 1), (x >> 7) % 100000, (x >> 20) % 3 == 0 ? "e-2" : "");
        CU_ASSERT_EQUAL(tokens_parse_weight(s, (size_t)n, &w), 0);
        CU_ASSERT_EQUAL(w, strtof(s, NULL));
    }
}

static void test_gzip(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_stats_t st1, st2;
    rows_t r1 = {0}, r2 = {0}, r3 = {0};
    errbuf_t eb;
    char *p1[1], *p2[1], *p3[1];

    make_spec(&ms, NULL);
    p1[0] = (char *)P("g.tsv");
    p2[0] = (char *)P("g.tsv.gz");
    p3[0] = (char *)P("gg.tsv.gz");
    write_log(p1[0], "g", 3000, 1, 1);
    gzip_file(p1[0], p2[0]);
    CU_ASSERT_EQUAL(read_all(&ms, &o, p1, 1, 100, &r1, &st1, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(read_all(&ms, &o, p2, 1, 100, &r2, &st2, &eb), ERR_EOF);
    CU_ASSERT(r1.n > 2500);
    CU_ASSERT_EQUAL_FATAL(r1.n, r2.n);
    for (size_t i = 0; i < r1.n; i++)
        CU_ASSERT_STRING_EQUAL(r1.v[i], r2.v[i]);
    CU_ASSERT_EQUAL(st1.lines, st2.lines);
    CU_ASSERT_EQUAL(st1.rejected, st2.rejected);
    CU_ASSERT_EQUAL(st1.bytes, st2.bytes);
    /* two gzip members in one file read as one stream */
    CU_ASSERT_EQUAL(tu_sh(NULL, "cat '%s' '%s' > '%s'", p2[0], p2[0], p3[0]), 0);
    CU_ASSERT_EQUAL(read_all(&ms, &o, p3, 1, 100, &r3, NULL, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(r3.n, 2 * r1.n);
    rows_free(&r1);
    rows_free(&r2);
    rows_free(&r3);
}

/* Read until something other than 0; returns that code. */
static int read_code(const model_spec_t *ms, const char *path, errbuf_t *eb)
{
    rows_t rows = {0};
    char *paths[1] = {(char *)path};
    reader_opts_t o = opts(0, 1);
    int rc = read_all(ms, &o, paths, 1, 256, &rows, NULL, eb);

    rows_free(&rows);
    return rc;
}

static void test_bad_gzip(void)
{
    model_spec_t ms;
    errbuf_t eb;
    const char *plain = P("c.tsv"), *gz = P("c.tsv.gz"), *bad = P("bad.tsv.gz");
    const char *trunc = P("trunc.tsv.gz"), *notgz = P("notgz.tsv.gz"), *empty = P("empty.tsv.gz");

    make_spec(&ms, NULL);
    write_log(plain, "c", 20000, 3, 1);
    gzip_file(plain, gz);
    /* flip bytes in the middle of the deflate data */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cp '%s' '%s' && printf 'XXXXXXXXXXXXXXXX' | dd of='%s' bs=1 "
                          "seek=20000 conv=notrunc 2>/dev/null",
                          gz, bad, bad),
                    0);
    memset(&eb, 0, sizeof(eb));
    CU_ASSERT_EQUAL(read_code(&ms, bad, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, bad));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "corrupt gzip"));
    /* cut off the end */
    CU_ASSERT_EQUAL(tu_sh(NULL, "head -c 30000 '%s' > '%s'", gz, trunc), 0);
    memset(&eb, 0, sizeof(eb));
    CU_ASSERT_EQUAL(read_code(&ms, trunc, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, trunc));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "truncated"));
    /* plain text under a .gz name */
    CU_ASSERT_EQUAL(tu_sh(NULL, "cp '%s' '%s'", plain, notgz), 0);
    memset(&eb, 0, sizeof(eb));
    CU_ASSERT_EQUAL(read_code(&ms, notgz, &eb), ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, notgz));
    /* an empty file is refused, naming it (test_not_logs: --allow-empty) */
    tu_write(empty, "");
    CU_ASSERT_EQUAL(read_code(&ms, empty, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, empty));
}

/* Open a reader over one path with allow_empty; the code. */
static int open_code(const model_spec_t *ms, const char *path, int allow_empty, errbuf_t *eb)
{
    reader_t *r = NULL;
    char *paths[1] = {(char *)path};
    reader_opts_t o = opts(0, 1);
    int rc;

    o.allow_empty = allow_empty;
    memset(eb, 0, sizeof(*eb));
    rc = reader_open(&r, ms, &o, paths, 1, eb);
    reader_destroy(&r);
    return rc;
}

/* Empty files, directories, FIFOs and devices are not logs: refused at
 * open with the file named and what it is (a FIFO without a writer must
 * not hang, /dev/zero must not be read forever); allow_empty lets only an
 * empty regular file through, as no rows. */
static void test_not_logs(void)
{
    model_spec_t ms;
    errbuf_t eb;
    const char *empty = P("empty.tsv"), *fifo = P("fifo.tsv"), *sub = P("subdir");
    rows_t rows = {0};
    char *paths[1] = {(char *)empty};
    reader_opts_t o = opts(0, 1);

    make_spec(&ms, NULL);
    tu_write(empty, "");
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(NULL, "rm -f '%s' && mkfifo '%s' && mkdir -p '%s'", fifo, fifo, sub), 0);
    CU_ASSERT_EQUAL(open_code(&ms, empty, 0, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, empty));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "--allow-empty"));
    CU_ASSERT_EQUAL(open_code(&ms, fifo, 0, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, fifo));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "named pipe"));
    CU_ASSERT_EQUAL(open_code(&ms, fifo, 1, &eb), ERR_IO);
    CU_ASSERT_EQUAL(open_code(&ms, sub, 1, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "directory"));
    CU_ASSERT_EQUAL(open_code(&ms, "/dev/zero", 1, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "/dev/zero is a character device"));
    CU_ASSERT_EQUAL(open_code(&ms, P("missing.tsv"), 1, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "missing.tsv"));
    /* asked for: an empty log is no rows */
    o.allow_empty = 1;
    CU_ASSERT_EQUAL(read_all(&ms, &o, paths, 1, 16, &rows, NULL, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(rows.n, 0);
    rows_free(&rows);
}

static void test_missing(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_t *rd = NULL;
    errbuf_t eb;
    char *paths[2];

    make_spec(&ms, NULL);
    paths[0] = (char *)P("present.tsv");
    tu_write(paths[0], "1\t0\t0\tuser_id:a\n");
    paths[1] = (char *)P("absent.tsv");
    CU_ASSERT_EQUAL(reader_open(&rd, &ms, &o, paths, 2, &eb), ERR_IO);
    CU_ASSERT_PTR_NULL(rd);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, paths[1]));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "No such file"));
    paths[1] = (char *)P("nomatch*.tsv");
    CU_ASSERT_EQUAL(reader_open(&rd, &ms, &o, paths, 2, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, paths[1]));
    paths[1] = dir;
    CU_ASSERT_EQUAL(reader_open(&rd, &ms, &o, paths, 2, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "directory"));
    CU_ASSERT_EQUAL(reader_open(&rd, &ms, &o, paths, 0, &eb), ERR_INVAL);
    o.rank = 3;
    o.workers = 3;
    CU_ASSERT_EQUAL(reader_open(&rd, &ms, &o, paths, 1, &eb), ERR_INVAL);
    o = opts(0, 1);
    o.format = 7;
    CU_ASSERT_EQUAL(reader_open(&rd, &ms, &o, paths, 1, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NULL(rd);
}

static void test_glob(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_t *rd = NULL;
    rows_t rows = {0};
    errbuf_t eb;
    char *paths[2];

    make_spec(&ms, NULL);
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "mkdir -p '%s/gl'", dir), 0);
    tu_write(P("gl/a2.tsv"), "0\t0\t0\titem_id:a2\n");
    tu_write(P("gl/a10.tsv"), "0\t0\t0\titem_id:a10\n");
    tu_write(P("gl/a1.tsv"), "0\t0\t0\titem_id:a1\n");
    tu_write(P("gl/b.tsv"), "0\t0\t0\titem_id:b\n");
    tu_write(P("gl/z[1].tsv"), "0\t0\t0\titem_id:z\n"); /* literal name with [ ] */
    paths[0] = (char *)P("gl/a*.tsv");
    paths[1] = (char *)P("gl/z[1].tsv");
    CU_ASSERT_EQUAL_FATAL(reader_open(&rd, &ms, &o, paths, 2, &eb), 0);
    CU_ASSERT_EQUAL(reader_nfiles(rd), 4);
    CU_ASSERT_STRING_EQUAL(reader_file_path(rd, 0), P("gl/a1.tsv"));
    CU_ASSERT_STRING_EQUAL(reader_file_path(rd, 1), P("gl/a10.tsv"));
    CU_ASSERT_STRING_EQUAL(reader_file_path(rd, 2), P("gl/a2.tsv"));
    CU_ASSERT_STRING_EQUAL(reader_file_path(rd, 3), P("gl/z[1].tsv"));
    CU_ASSERT_PTR_NULL(reader_file_path(rd, 4));
    CU_ASSERT_EQUAL(drain(rd, ms.nslots, 3, &rows, &eb), ERR_EOF);
    CU_ASSERT_EQUAL_FATAL(rows.n, 4);
    char want[64];
    snprintf(want, sizeof(want), "%016llx", (unsigned long long)keyhash_token("item_id", "a10"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rows.v[1], want));
    snprintf(want, sizeof(want), "%016llx", (unsigned long long)keyhash_token("item_id", "z"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rows.v[3], want));
    reader_destroy(&rd);
    rows_free(&rows);
}

/* ---- Ali-CCP ------------------------------------------------------------- */

/*
 * Ali-CCP fixtures are written readably and turned into the real bytes by
 * ccp_write(): '/' stands for 0x02 (field id / feature id), '=' for 0x03
 * (feature id = value) and ';' for 0x01 (between features). So
 * "101/7=1.0;999/5=1" is field 101, feature 7, value 1.0, then field 999,
 * feature 5, value 1. No fixture uses these three characters otherwise.
 */
static void ccp_write(const char *path, const char *const *lines, size_t n)
{
    FILE *f = fopen(path, "wb");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (size_t i = 0; i < n; i++) {
        for (const char *c = lines[i]; *c; c++)
            fputc(*c == '/' ? 0x02 : *c == '=' ? 0x03 : *c == ';' ? 0x01 : *c, f);
        fputc('\n', f);
    }
    fclose(f);
}

static void test_aliccp(void)
{
    /* common features: md5,feature_num,feature_list */
    static const char *const join[] = {
        "m1,2,101/7=1.0;999/5=1", /* good: 101 declared, 999 not (dropped, counted) */
        "m2,2,216/a=0.5;216/b=2", /* good: slot 216 twice */
        "m1,1,101/8=1",           /* DUPMD5 (line 3): m1 again, the first m1 stays */
        "m3,3,101/8=1",           /* FEATNUM: says 3 features, has 1 */
        "m4,1,101/8",             /* TOKEN: no '=' before a value */
        "m5,0,",                  /* good: no features */
    };
    /* skeleton: sample_id,click,buy,md5,feature_num,feature_list */
    static const char *const skeleton[] = {
        "1,1,0,m1,1,205/42=1.0",         /* good: own 205:42, joined 101:7 */
        "2,1,1,m2,2,301/3=0.25;888/x=1", /* good: own 301:3, undeclared 888, joined 216 x2 */
        "3,0,0,m5,0,",                   /* good: no features */
        "4,0,0,nope,1,205/1=1",          /* MD5: no such common-features row */
        "5,0,0,m3,1,205/1=1",            /* MD5: m3 was rejected */
        "6,0,0,m1,2,205/1=1",            /* FEATNUM: says 2 features, has 1 */
        "7,0,0,m1,x,205/1=1",            /* FEATNUM: not a number */
        "8,0,0,m1,1,205=1",              /* TOKEN: no '/' after the field id */
        "9,0,0,m1,1,205/1=zz",           /* WEIGHT: value not a number */
        "10,0,1,m1,1,205/1=1",           /* COMBO: buy without click */
        "11,2,0,m1,1,205/1=1",           /* LABEL: click 2 */
        "12,0,0,m1,1",                   /* COLUMNS: 5 */
        "13,0,0,m1,1,205/1=1,x",         /* COLUMNS: 7 */
    };
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_t *rd = NULL;
    batch_t b;
    errbuf_t eb;
    char *paths[3];
    const reader_stats_t *st;

    make_spec(&ms, "101,205,216,301");
    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL, "mkdir -p '%s/ccp'", dir), 0);
    ccp_write(P("ccp/common_features_train.csv"), join, sizeof(join) / sizeof(join[0]));
    ccp_write(P("ccp/sample_skeleton_train.csv"), skeleton, sizeof(skeleton) / sizeof(skeleton[0]));
    paths[0] = (char *)P("ccp/sample_skeleton_*.csv");
    paths[1] = (char *)P("ccp/common_features_train.csv");
    o.format = READER_ALICCP;
    CU_ASSERT_EQUAL_FATAL(reader_open(&rd, &ms, &o, paths, 2, &eb), 0);
    CU_ASSERT_EQUAL(reader_nfiles(rd), 1);
    batch_init(&b, ms.nslots, 8);
    CU_ASSERT_EQUAL_FATAL(reader_next_batch(rd, &b, 100, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(b.n, 3);
    /* row 0: own 205:42, joined 101:7 */
    CU_ASSERT(b.click[0] == 1 && b.action[0] == 0 && b.buy[0] == 0);
    CU_ASSERT_EQUAL_FATAL(b.slot[0].off[1], 1);
    CU_ASSERT_EQUAL(b.slot[0].keys[0], keyhash_token("101", "7"));
    CU_ASSERT_EQUAL(b.slot[0].weights[0], 1.0f);
    CU_ASSERT_EQUAL_FATAL(b.slot[1].off[1], 1);
    CU_ASSERT_EQUAL(b.slot[1].keys[0], keyhash_token("205", "42"));
    /* row 1: own 301:3 (0.25) and undeclared 888, joined 216:a, 216:b */
    CU_ASSERT(b.click[1] == 1 && b.action[1] == 0 && b.buy[1] == 1);
    CU_ASSERT_EQUAL_FATAL(b.slot[2].off[2] - b.slot[2].off[1], 2);
    CU_ASSERT_EQUAL(b.slot[2].keys[0], keyhash_token("216", "a"));
    CU_ASSERT_EQUAL(b.slot[2].weights[0], 0.5f);
    CU_ASSERT_EQUAL(b.slot[2].keys[1], keyhash_token("216", "b"));
    CU_ASSERT_EQUAL(b.slot[2].weights[1], 2.0f);
    CU_ASSERT_EQUAL_FATAL(b.slot[3].off[2] - b.slot[3].off[1], 1);
    CU_ASSERT_EQUAL(b.slot[3].keys[0], keyhash_token("301", "3"));
    CU_ASSERT_EQUAL(b.slot[3].weights[0], 0.25f);
    /* row 2: nothing */
    for (int s = 0; s < ms.nslots; s++)
        CU_ASSERT_EQUAL(b.slot[s].off[3], b.slot[s].off[2]);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &b, 100, &eb), ERR_EOF);

    st = reader_stats(rd);
    CU_ASSERT_EQUAL(st->join_rows, 3);
    CU_ASSERT_EQUAL(st->join_rejected, 3);
    CU_ASSERT_EQUAL(st->join_by_reason[TOKENS_R_DUPMD5], 1);
    CU_ASSERT_EQUAL(st->join_by_reason[TOKENS_R_FEATNUM], 1);
    CU_ASSERT_EQUAL(st->join_by_reason[TOKENS_R_TOKEN], 1);
    CU_ASSERT_EQUAL(st->lines, 13);
    CU_ASSERT_EQUAL(st->accepted, 3);
    CU_ASSERT_EQUAL(st->rejected, 10);
    CU_ASSERT_EQUAL(st->by_reason[TOKENS_R_MD5], 2);
    CU_ASSERT_EQUAL(st->by_reason[TOKENS_R_FEATNUM], 2);
    CU_ASSERT_EQUAL(st->by_reason[TOKENS_R_TOKEN], 1);
    CU_ASSERT_EQUAL(st->by_reason[TOKENS_R_WEIGHT], 1);
    CU_ASSERT_EQUAL(st->by_reason[TOKENS_R_COMBO], 1);
    CU_ASSERT_EQUAL(st->by_reason[TOKENS_R_LABEL], 1);
    CU_ASSERT_EQUAL(st->by_reason[TOKENS_R_COLUMNS], 2);
    CU_ASSERT_EQUAL(st->tokens, 5);
    CU_ASSERT_EQUAL(st->unknown_slot_tokens, 2); /* 999 via m1, own 888 */
    batch_release(&b);
    reader_destroy(&rd);

    /* no join table among the inputs */
    CU_ASSERT_EQUAL(reader_open(&rd, &ms, &o, paths, 1, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "common_features"));
    /* strict: a bad join line is fatal at open, naming file and line */
    o.strict = 1;
    CU_ASSERT_EQUAL(reader_open(&rd, &ms, &o, paths, 2, &eb), ERR_REJECTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "common_features_train.csv:3: md5 already"));
    /* gzip join table and skeleton read the same */
    o.strict = 0;
    gzip_file(P("ccp/common_features_train.csv"), P("ccp/common_features_train.csv.gz"));
    gzip_file(P("ccp/sample_skeleton_train.csv"), P("ccp/sk.csv.gz"));
    paths[0] = (char *)P("ccp/sk.csv.gz");
    paths[1] = (char *)P("ccp/common_features_train.csv.gz");
    rows_t rows = {0};
    reader_stats_t st2;
    CU_ASSERT_EQUAL(read_all(&ms, &o, paths, 2, 2, &rows, &st2, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(rows.n, 3);
    CU_ASSERT_EQUAL(st2.rejected, 10);
    CU_ASSERT_EQUAL(st2.join_rows, 3);
    rows_free(&rows);
}

/* ---- positions ----------------------------------------------------------- */

/*
 * For every batch boundary of rank k of w: stop there, reopen, seek to the
 * reported position and read the rest; first part + rest == all rows.
 */
static void check_resume(const model_spec_t *ms, char *const *paths, int n, int k, int w,
                         size_t bsize)
{
    reader_opts_t o = opts(k, w);
    rows_t all = {0};
    reader_t *rd = NULL;
    batch_t b;
    errbuf_t eb;
    size_t nbatches, done = 0;

    CU_ASSERT_EQUAL_FATAL(read_all(ms, &o, paths, n, bsize, &all, NULL, &eb), ERR_EOF);
    nbatches = (all.n + bsize - 1) / bsize;
    batch_init(&b, ms->nslots, bsize);
    for (size_t stop = 0; stop <= nbatches; stop += 1 + nbatches / 12) {
        rows_t got = {0};
        reader_pos_t pos;

        CU_ASSERT_EQUAL_FATAL(reader_open(&rd, ms, &o, paths, n, &eb), 0);
        for (size_t i = 0; i < stop; i++) {
            CU_ASSERT_EQUAL(reader_next_batch(rd, &b, bsize, &eb), 0);
            rows_add_batch(&got, &b);
        }
        reader_tell(rd, &pos);
        reader_destroy(&rd);
        CU_ASSERT_EQUAL_FATAL(reader_open(&rd, ms, &o, paths, n, &eb), 0);
        CU_ASSERT_EQUAL_FATAL(reader_seek(rd, &pos, &eb), 0);
        CU_ASSERT_EQUAL(drain(rd, ms->nslots, bsize, &got, &eb), ERR_EOF);
        reader_destroy(&rd);
        CU_ASSERT_EQUAL(got.n, all.n);
        for (size_t i = 0; i < got.n && i < all.n; i++)
            if (strcmp(got.v[i], all.v[i]) != 0) {
                CU_FAIL("resumed rows differ");
                break;
            }
        rows_free(&got);
        done++;
    }
    CU_ASSERT(done >= 2);
    batch_release(&b);
    rows_free(&all);
}

static void test_resume(void)
{
    model_spec_t ms;
    char *paths[4];

    make_spec(&ms, NULL);
    paths[0] = (char *)P("r0.tsv");
    paths[1] = (char *)P("r1.tsv.gz");
    paths[2] = (char *)P("r2.tsv");
    paths[3] = (char *)P("r3.tsv.gz");
    write_log(paths[0], "r0_", 700, 11, 1);
    write_log(P("r1.tsv"), "r1_", 500, 12, 0);
    gzip_file(P("r1.tsv"), paths[1]);
    write_log(paths[2], "r2_", 300, 13, 0);
    write_log(P("r3.tsv"), "r3_", 400, 14, 1);
    gzip_file(P("r3.tsv"), paths[3]);
    check_resume(&ms, paths, 4, 0, 1, 37);
    check_resume(&ms, paths, 4, 1, 3, 29); /* plain mid-file starts, gzip line split */
    check_resume(&ms, paths, 4, 2, 3, 64);
    check_resume(&ms, paths, 4, 1, 2, 50); /* 2 gzip files >= 2 workers: whole files */
}

static void test_seek_invalid(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_t *rd = NULL;
    reader_pos_t pos;
    errbuf_t eb;
    char *paths[2];
    batch_t b;

    make_spec(&ms, NULL);
    paths[0] = (char *)P("s.tsv");
    paths[1] = (char *)P("s.tsv.gz");
    tu_write(paths[0], "1\t0\t0\tuser_id:a\n0\t0\t0\tuser_id:b\n");
    gzip_file(paths[0], paths[1]);
    CU_ASSERT_EQUAL_FATAL(reader_open(&rd, &ms, &o, paths, 2, &eb), 0);
    reader_tell(rd, &pos);
    CU_ASSERT(pos.file == 0 && pos.offset == 0 && pos.line == 0);
    pos = (reader_pos_t){3, 0, 0};
    CU_ASSERT_EQUAL(reader_seek(rd, &pos, &eb), ERR_INVAL);
    pos = (reader_pos_t){0, 3, 1}; /* not a line start */
    CU_ASSERT_EQUAL(reader_seek(rd, &pos, &eb), ERR_INVAL);
    pos = (reader_pos_t){0, 100, 1}; /* past the end */
    CU_ASSERT_EQUAL(reader_seek(rd, &pos, &eb), ERR_INVAL);
    pos = (reader_pos_t){1, 16, 0}; /* gzip without a line number */
    CU_ASSERT_EQUAL(reader_seek(rd, &pos, &eb), ERR_INVAL);
    pos = (reader_pos_t){1, 100, 1}; /* gzip past the end */
    CU_ASSERT_EQUAL(reader_seek(rd, &pos, &eb), ERR_INVAL);
    /* a good seek: second line of the plain file, then the gzip file */
    pos = (reader_pos_t){0, 16, 1};
    CU_ASSERT_EQUAL_FATAL(reader_seek(rd, &pos, &eb), 0);
    batch_init(&b, ms.nslots, 4);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &b, 10, &eb), 0);
    CU_ASSERT_EQUAL(b.n, 3);
    reader_tell(rd, &pos);
    CU_ASSERT(pos.file == 2 && pos.offset == 0);
    pos = (reader_pos_t){2, 0, 0}; /* the end */
    CU_ASSERT_EQUAL(reader_seek(rd, &pos, &eb), 0);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &b, 10, &eb), ERR_EOF);
    batch_release(&b);
    reader_destroy(&rd);
}

/* ---- split --------------------------------------------------------------- */

/* Ranks 0..w-1 together read exactly the rows of one reader, each once,
 * each rank in input order; their counters add up. */
static void check_split(const model_spec_t *ms, char *const *paths, int n, int w)
{
    reader_opts_t o1 = opts(0, 1);
    reader_stats_t one, st;

    o1.allow_empty = 1; /* the inputs include an empty file */
    rows_t all = {0}, uni = {0};
    uint64_t lines = 0, rejected = 0, skipped = 0, accepted = 0;
    errbuf_t eb;

    CU_ASSERT_EQUAL_FATAL(read_all(ms, &o1, paths, n, 100, &all, &one, &eb), ERR_EOF);
    for (int k = 0; k < w; k++) {
        reader_opts_t o = opts(k, w);
        rows_t part = {0};
        size_t at = 0;

        o.allow_empty = 1;
        CU_ASSERT_EQUAL_FATAL(read_all(ms, &o, paths, n, 33, &part, &st, &eb), ERR_EOF);
        /* a subsequence of the single reader's order */
        for (size_t i = 0; i < part.n; i++) {
            while (at < all.n && strcmp(all.v[at], part.v[i]) != 0)
                at++;
            CU_ASSERT(at < all.n);
        }
        lines += st.lines;
        rejected += st.rejected;
        skipped += st.skipped;
        accepted += st.accepted;
        /* move the strings into the union */
        for (size_t i = 0; i < part.n; i++) {
            if (uni.n == uni.cap) {
                uni.cap = uni.cap ? uni.cap * 2 : 64;
                uni.v = realloc(uni.v, uni.cap * sizeof(*uni.v));
            }
            uni.v[uni.n++] = part.v[i];
        }
        free(part.v);
    }
    CU_ASSERT_EQUAL(lines, one.lines);
    CU_ASSERT_EQUAL(rejected, one.rejected);
    CU_ASSERT_EQUAL(skipped, one.skipped);
    CU_ASSERT_EQUAL(accepted, one.accepted);
    CU_ASSERT_EQUAL_FATAL(uni.n, all.n);
    qsort(uni.v, uni.n, sizeof(*uni.v), cmp_str);
    qsort(all.v, all.n, sizeof(*all.v), cmp_str);
    for (size_t i = 0; i < all.n; i++) {
        CU_ASSERT_STRING_EQUAL(uni.v[i], all.v[i]);
        if (i > 0)
            CU_ASSERT(strcmp(all.v[i - 1], all.v[i]) != 0); /* lines are unique */
    }
    rows_free(&uni);
    rows_free(&all);
}

static void test_split(void)
{
    model_spec_t ms;
    char *paths[6];

    make_spec(&ms, NULL);
    paths[0] = (char *)P("p0.tsv");
    paths[1] = (char *)P("p1.tsv.gz");
    paths[2] = (char *)P("p2.tsv");
    paths[3] = (char *)P("p3.tsv.gz");
    paths[4] = (char *)P("p4.tsv"); /* tiny: fewer bytes than workers have ranks? */
    paths[5] = (char *)P("p5.tsv"); /* empty */
    write_log(paths[0], "p0_", 1000, 21, 1);
    write_log(P("p1.tsv"), "p1_", 800, 22, 0);
    gzip_file(P("p1.tsv"), paths[1]);
    write_log(paths[2], "p2_", 333, 23, 0);
    write_log(P("p3.tsv"), "p3_", 50, 24, 1);
    gzip_file(P("p3.tsv"), paths[3]);
    tu_write(paths[4], "1\t0\t0\titem_id:tiny\n");
    tu_write(paths[5], "");
    check_split(&ms, paths, 6, 3); /* 2 gzip files < 3 workers: line split */
    check_split(&ms, paths, 6, 2); /* 2 gzip files >= 2: whole files */
    check_split(&ms, paths, 6, 7);
    check_split(&ms, paths, 6, 40); /* more workers than lines in the tiny file */

    /* four gzip files over three workers: whole files */
    char *gz[4];
    for (int i = 0; i < 4; i++) {
        char name[32], plain[32];
        snprintf(plain, sizeof(plain), "w%d.tsv", i);
        snprintf(name, sizeof(name), "w%d.tsv.gz", i);
        write_log(P(plain), plain, 200 + 50 * i, 30 + (unsigned)i, 1);
        gz[i] = strdup(P(name));
        gzip_file(P(plain), gz[i]);
    }
    check_split(&ms, gz, 4, 3);
    for (int i = 0; i < 4; i++)
        free(gz[i]);
}

/* ---- strict -------------------------------------------------------------- */

static void test_strict(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_t *rd = NULL;
    reader_pos_t pos;
    batch_t b;
    errbuf_t eb;
    char *paths[1], want[700];
    FILE *f;

    make_spec(&ms, NULL);
    paths[0] = (char *)P("strict.tsv");
    f = fopen(paths[0], "wb");
    for (int i = 1; i <= 200; i++)
        fprintf(f, i == 150 ? "0\t0\t0\tuser_id:u%d tag\n" : "0\t0\t0\tuser_id:u%d\n", i);
    fclose(f);
    o.strict = 1;
    CU_ASSERT_EQUAL_FATAL(reader_open(&rd, &ms, &o, paths, 1, &eb), 0);
    batch_init(&b, ms.nslots, 100);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &b, 100, &eb), 0);
    reader_tell(rd, &pos);
    CU_ASSERT_EQUAL(pos.line, 100);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &b, 100, &eb), ERR_REJECTED);
    snprintf(want, sizeof(want), "%s:150: malformed token 'tag'", paths[0]);
    CU_ASSERT_STRING_EQUAL(eb.msg, want);
    reader_pos_t after;
    reader_tell(rd, &after); /* unchanged by the failed call */
    CU_ASSERT(after.file == pos.file && after.offset == pos.offset && after.line == pos.line);
    CU_ASSERT_EQUAL(reader_stats(rd)->by_reason[TOKENS_R_TOKEN], 1);
    reader_destroy(&rd);

    /* rank 1 of 2 starts mid-file, yet reports the true line number */
    o = opts(1, 2);
    o.strict = 1;
    CU_ASSERT_EQUAL_FATAL(reader_open(&rd, &ms, &o, paths, 1, &eb), 0);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &b, 1000, &eb), ERR_REJECTED);
    CU_ASSERT_STRING_EQUAL(eb.msg, want);
    reader_destroy(&rd);

    /* without strict the same file reads to the end */
    o = opts(0, 1);
    CU_ASSERT_EQUAL_FATAL(reader_open(&rd, &ms, &o, paths, 1, &eb), 0);
    CU_ASSERT_EQUAL(reader_next_batch(rd, &b, 1000, &eb), 0);
    CU_ASSERT_EQUAL(b.n, 199);
    reader_destroy(&rd);
    batch_release(&b);
}

/* Lines over max_line are rejected without being buffered, anywhere. */
static void test_long_lines(void)
{
    model_spec_t ms;
    reader_opts_t o = opts(0, 1);
    reader_stats_t st;
    rows_t rows = {0};
    errbuf_t eb;
    char *paths[2];
    FILE *f;

    make_spec(&ms, NULL);
    paths[0] = (char *)P("long.tsv");
    paths[1] = (char *)P("long.tsv.gz");
    f = fopen(paths[0], "wb");
    fputs("1\t0\t0\tuser_id:a\n", f);
    fputs("0\t0\t0\t", f);
    for (int i = 0; i < 5000; i++)
        fprintf(f, "tag:t%d ", i);
    fputs("tag:end\n0\t0\t0\tuser_id:b\n0\t0\t0\t", f);
    for (int i = 0; i < 3000; i++)
        fprintf(f, "tag:t%d ", i);
    fputs("tag:end", f); /* last line, no '\n' */
    fclose(f);
    gzip_file(paths[0], paths[1]);
    o.max_line = 100;
    CU_ASSERT_EQUAL(read_all(&ms, &o, paths, 2, 8, &rows, &st, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(rows.n, 4);
    CU_ASSERT_EQUAL(st.by_reason[TOKENS_R_TOOLONG], 4);
    CU_ASSERT_EQUAL(st.lines, 8);
    rows_free(&rows);
    /* the default limit takes them */
    o.max_line = 0;
    CU_ASSERT_EQUAL(read_all(&ms, &o, paths, 2, 8, &rows, &st, &eb), ERR_EOF);
    CU_ASSERT_EQUAL(rows.n, 8);
    CU_ASSERT_EQUAL(st.rejected, 0);
    CU_ASSERT_EQUAL(st.tokens, 2 * (1 + 5001 + 1 + 3001));
    rows_free(&rows);
}

int test_reader_register(void)
{
    CU_pSuite s = CU_add_suite("reader", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "every rejection reason, exact counts", test_reasons);
    CU_add_test(s, "first rejects reported as file:line: reason", test_report);
    CU_add_test(s, "CRLF, comments and empty lines", test_crlf_comments);
    CU_add_test(s, "multi-valued slots, weights, undeclared slots, keys", test_tokens);
    CU_add_test(s, "weight parser against strtof", test_weights);
    CU_add_test(s, "gzip reads like plain, multi-member", test_gzip);
    CU_add_test(s, "corrupt, truncated, non-gzip .gz files", test_bad_gzip);
    CU_add_test(s, "empty files, FIFOs, directories, devices are not logs", test_not_logs);
    CU_add_test(s, "missing file, unmatched glob, bad options", test_missing);
    CU_add_test(s, "glob expansion sorted, literal brackets", test_glob);
    CU_add_test(s, "Ali-CCP join by md5 and its rejections", test_aliccp);
    CU_add_test(s, "resume from every reported position", test_resume);
    CU_add_test(s, "invalid positions refused", test_seek_invalid);
    CU_add_test(s, "split across workers covers every line once", test_split);
    CU_add_test(s, "strict mode", test_strict);
    CU_add_test(s, "over-long lines", test_long_lines);
    return CU_get_error();
}
