/*
 * test_gen.c - the synthetic world and funnel-gen: label consistency,
 * realized rates for the default world and the ablations, the effects the
 * models exist for (clickbait, informative actions), determinism, the
 * truth file, day folders with drift, gzip and Ali-CCP output (read back
 * through the real reader), the command line and the shipped conf/gen.conf.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/reader.h"
#include "gen/gen.h"
#include "gen/gen_conf.h"
#include "gen/world.h"
#include "tests/util.h"
#include "worker/worker_conf.h"

static char dir[512];

static int setup(void)
{
    return tu_mkdtemp(dir, sizeof(dir), "gen");
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

/* Defaults, written under dir/sub, with a smaller calibration sample. */
static void conf_for(gen_conf_t *c, const char *sub, int64_t train, int64_t test)
{
    errbuf_t eb;

    CU_ASSERT_EQUAL_FATAL(conf_defaults(&gen_conf_schema, c, &eb), 0);
    snprintf(c->out.s, sizeof(c->out.s), "%s/%s", dir, sub);
    c->train = train;
    c->test = test;
    c->calib_samples = 50000;
}

static char *slurp_at(const char *sub, const char *name, size_t *len)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
    return tu_slurp(path, len);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int same_file(const char *a, const char *b, const char *name)
{
    size_t la, lb;
    char *x = slurp_at(a, name, &la), *y = slurp_at(b, name, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;

    free(x);
    free(y);
    return same;
}

static void check_rates(const gen_split_stats_t *s)
{
    double ctr = (double)s->clicks / s->lines;
    double apc = (double)s->actions / s->clicks;
    double bpc = (double)s->buys / s->clicks;

    CU_ASSERT(ctr >= 0.04 && ctr <= 0.08);
    CU_ASSERT(apc >= 0.10 && apc <= 0.20);
    CU_ASSERT(bpc >= 0.01 && bpc <= 0.03);
    if (!(ctr >= 0.04 && ctr <= 0.08 && apc >= 0.10 && apc <= 0.20 && bpc >= 0.01 && bpc <= 0.03))
        fprintf(stderr, "rates: CTR %.4f action/click %.4f buy/click %.4f\n", ctr, apc, bpc);
}

/* ---- tsv1 line and truth checks ------------------------------------------ */

static const char *const slot_order[] = {"user_id",  "item_id",  "cate_id", "shop_id",
                                         "brand_id", "position", "hour"};

/* Check one tsv1 line (without '\n'): labels valid, the seven single slots
 * in order, then at least one tag token. Returns 1 if good; labels out. */
static int check_tsv1_line(char *line, int lab[3])
{
    char *tok, *save = NULL, *feat;
    int k = 0, ntag = 0;

    if (strlen(line) < 7 || line[1] != '\t' || line[3] != '\t' || line[5] != '\t')
        return 0;
    for (int j = 0; j < 3; j++) {
        if (line[2 * j] != '0' && line[2 * j] != '1')
            return 0;
        lab[j] = line[2 * j] - '0';
    }
    if ((lab[1] || lab[2]) && !lab[0])
        return 0;
    feat = line + 6;
    if (strchr(feat, '\t'))
        return 0;
    for (tok = strtok_r(feat, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon || colon[1] == '\0')
            return 0;
        if (k < 7) {
            size_t n = strlen(slot_order[k]);
            if ((size_t)(colon - tok) != n || strncmp(tok, slot_order[k], n) != 0)
                return 0;
            k++;
        } else {
            char *w;
            if (strncmp(tok, "tag:", 4) != 0)
                return 0;
            w = strchr(colon + 1, ':');
            if (w && strtod(w + 1, NULL) <= 0)
                return 0;
            ntag++;
        }
    }
    return k == 7 && ntag >= 1;
}

typedef struct truth_row {
    int lab[4];
    double p[4]; /* pctr pcvr pctcvr pctavr */
} truth_row_t;

static int parse_truth(char *line, truth_row_t *t)
{
    char *p = line, *end;

    for (int j = 0; j < 4; j++) {
        if ((p[0] != '0' && p[0] != '1') || p[1] != '\t')
            return 0;
        t->lab[j] = p[0] - '0';
        p += 2;
    }
    for (int j = 0; j < 4; j++) {
        t->p[j] = strtod(p, &end);
        if (end == p || (j < 3 && *end != '\t') || (j == 3 && *end != '\0'))
            return 0;
        p = end + (j < 3);
    }
    return 1;
}

/* ---- tests --------------------------------------------------------------- */

static void test_format_prob(void)
{
    char b[64];
    int n;
    static const double v[] = {0.0312,    0.5,   0.123456789, 1.234567e-5, 9.9999996e-4,
                               0.9999999, 3e-12, 0.1,         1e-3};

    n = gen_format_prob(b, 0.0312);
    b[n] = '\0';
    CU_ASSERT_STRING_EQUAL(b, "0.0312");
    n = gen_format_prob(b, 1.234567e-5);
    b[n] = '\0';
    CU_ASSERT_STRING_EQUAL(b, "0.0000123457");
    n = gen_format_prob(b, 0.0);
    b[n] = '\0';
    CU_ASSERT_STRING_EQUAL(b, "0");
    n = gen_format_prob(b, 1.0);
    b[n] = '\0';
    CU_ASSERT_STRING_EQUAL(b, "1");
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        n = gen_format_prob(b, v[i]);
        b[n] = '\0';
        CU_ASSERT(strchr(b, 'e') == NULL);
        CU_ASSERT(fabs(strtod(b, NULL) - v[i]) <= 5e-6 * v[i] + 1e-300);
    }
}

/* Default world, 200k train lines: labels, slots, rates, truth. */
static void test_default_world(void)
{
    gen_conf_t c;
    gen_stats_t st;
    errbuf_t eb;
    size_t len, nbad = 0, nlines = 0, ntruth = 0, tbad = 0;
    uint64_t clicks = 0, actions = 0, buys = 0;
    double sum_pctr = 0, sum_pcvr = 0, sum_pcvr_clicked = 0, max_err = 0;
    uint64_t test_clicks = 0, test_buys = 0, test_cf = 0;
    char *log, *line, *save = NULL;

    conf_for(&c, "default", 200000, 50000);
    CU_ASSERT_EQUAL_FATAL(gen_run(&c, &st, &eb), 0);
    CU_ASSERT_EQUAL(st.split[GEN_TRAIN].lines, 200000);
    CU_ASSERT_EQUAL(st.split[GEN_TEST].lines, 50000);
    check_rates(&st.split[GEN_TRAIN]);
    check_rates(&st.split[GEN_TEST]);
    /* buys are far sparser than actions and mostly follow one */
    CU_ASSERT(st.split[GEN_TRAIN].buys * 4 < st.split[GEN_TRAIN].actions);
    CU_ASSERT(st.split[GEN_TRAIN].buys_action * 10 > st.split[GEN_TRAIN].buys * 7);

    log = slurp_at("default", "train.tsv", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    for (line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int lab[3];
        nlines++;
        if (!check_tsv1_line(line, lab)) {
            nbad++;
            continue;
        }
        clicks += lab[0];
        actions += lab[1];
        buys += lab[2];
    }
    free(log);
    CU_ASSERT_EQUAL(nlines, 200000);
    CU_ASSERT_EQUAL(nbad, 0);
    CU_ASSERT_EQUAL(clicks, st.split[GEN_TRAIN].clicks);
    CU_ASSERT_EQUAL(actions, st.split[GEN_TRAIN].actions);
    CU_ASSERT_EQUAL(buys, st.split[GEN_TRAIN].buys);

    /* truth: one line per test line, same labels, consistent probabilities */
    char *tl = slurp_at("default", "test.tsv", &len);
    char *tt = slurp_at("default", "test.truth.tsv", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tt);
    CU_ASSERT_EQUAL(count_lines(tl), 50000);
    CU_ASSERT_EQUAL(count_lines(tt), 50001);
    CU_ASSERT(strncmp(tt, "click\taction\tbuy\tbuy_cf\tpctr\tpcvr\tpctcvr\tpctavr\n", 48) == 0);
    {
        char *ls = NULL, *ts = NULL;
        char *l = strtok_r(tl, "\n", &ls);
        char *t = strtok_r(tt, "\n", &ts); /* header */
        for (t = strtok_r(NULL, "\n", &ts); t && l;
             t = strtok_r(NULL, "\n", &ts), l = strtok_r(NULL, "\n", &ls)) {
            truth_row_t r;
            int lab[3], ok = 1;
            ntruth++;
            if (!parse_truth(t, &r) || !check_tsv1_line(l, lab)) {
                tbad++;
                continue;
            }
            for (int j = 0; j < 3; j++)
                ok &= lab[j] == r.lab[j];
            ok &= !r.lab[0] || r.lab[3] == r.lab[2]; /* buy_cf == buy where clicked */
            ok &= r.lab[0] || !r.lab[2];
            for (int j = 0; j < 4; j++)
                ok &= r.p[j] >= 0 && r.p[j] <= 1;
            ok &= r.p[3] <= r.p[0] + 1e-9 && r.p[2] <= r.p[0] + 1e-9;
            tbad += !ok;
            double err = fabs(r.p[2] - r.p[0] * r.p[1]);
            if (err > max_err)
                max_err = err;
            sum_pctr += r.p[0];
            sum_pcvr += r.p[1];
            test_clicks += r.lab[0];
            test_buys += r.lab[2];
            test_cf += r.lab[3];
            if (r.lab[0])
                sum_pcvr_clicked += r.p[1];
        }
    }
    free(tl);
    free(tt);
    CU_ASSERT_EQUAL(ntruth, 50000);
    CU_ASSERT_EQUAL(tbad, 0);
    CU_ASSERT(max_err <= 1e-6);
    /* the truth is the probability behind the labels */
    CU_ASSERT(fabs(sum_pctr / 50000 - (double)test_clicks / 50000) < 0.004);
    CU_ASSERT(fabs(sum_pcvr / 50000 - (double)test_cf / 50000) < 0.003);
    CU_ASSERT(fabs(sum_pcvr_clicked - (double)test_buys) < 4 * sqrt(sum_pcvr_clicked) + 5);
    CU_ASSERT_EQUAL(test_cf, st.split[GEN_TEST].buys_cf);
}

/* The ablations keep the rates in range and switch their effect off. */
static void test_ablations(void)
{
    static const char *const keys[] = {"action_informative", "clickbait", "shared_latents"};
    gen_conf_t c;
    gen_stats_t st;
    errbuf_t eb;

    for (int k = 0; k < 3; k++) {
        char sub[64];
        snprintf(sub, sizeof(sub), "abl%d", k);
        conf_for(&c, sub, 150000, 1000);
        CU_ASSERT_EQUAL_FATAL(conf_set(&gen_conf_schema, &c, keys[k], "false", "test", &eb), 0);
        CU_ASSERT_EQUAL_FATAL(gen_run(&c, &st, &eb), 0);
        check_rates(&st.split[GEN_TRAIN]);
        const gen_split_stats_t *s = &st.split[GEN_TRAIN];
        double buy_after_action = (double)s->buys_action / s->actions;
        double buy_no_action = (double)(s->buys - s->buys_action) / (s->clicks - s->actions);
        if (k == 0) { /* y3 == y4: the action says nothing about the buy */
            CU_ASSERT(buy_after_action < 2 * buy_no_action && buy_no_action < 2 * buy_after_action);
        } else {
            CU_ASSERT(buy_after_action > 10 * buy_no_action);
        }
    }
}

/* Clickbait items draw more clicks that convert less; top positions more clicks. */
static void test_effects(void)
{
    gen_conf_t c;
    errbuf_t eb;
    world_t *w = NULL;
    world_rng_t r;
    world_imp_t m;
    double n[2] = {0}, ctr[2] = {0}, cvr[2] = {0}, top = 0, ntop = 0, bottom = 0, nbottom = 0;
    double cb_share;

    conf_for(&c, "unused", 0, 0);
    c.users = 20000;
    c.items = 10000;
    CU_ASSERT_EQUAL_FATAL(world_new(&w, &c, &eb), 0);
    cb_share = world_clickbait_share(w);
    CU_ASSERT(cb_share > 0.05 && cb_share < 0.2);
    world_rng_seed(&r, 7, 1);
    for (int j = 0; j < 200000; j++) {
        double t[4];
        int k;
        world_draw(w, &r, &m);
        world_truth(&m, t);
        k = world_item(w, m.item)->clickbait;
        n[k]++;
        ctr[k] += t[0];
        cvr[k] += t[1];
        if (m.position == 1)
            top += t[0], ntop++;
        if (m.position == (uint32_t)c.positions)
            bottom += t[0], nbottom++;
        CU_ASSERT_FATAL(m.position >= 1 && m.position <= (uint32_t)c.positions && m.hour < 24);
        CU_ASSERT_FATAL(m.item < (uint32_t)c.items && m.user < (uint32_t)c.users);
    }
    CU_ASSERT(ctr[1] / n[1] > 1.5 * ctr[0] / n[0]);
    CU_ASSERT(cvr[1] / n[1] < 0.6 * cvr[0] / n[0]);
    CU_ASSERT(top / ntop > 3 * bottom / nbottom);
    world_destroy(&w);
    CU_ASSERT_PTR_NULL(w);
    world_destroy(&w); /* NULL is fine */
}

static void test_determinism(void)
{
    gen_conf_t c;
    errbuf_t eb;

    conf_for(&c, "s1a", 20000, 5000);
    c.users = 5000;
    c.items = 3000;
    CU_ASSERT_EQUAL_FATAL(gen_run(&c, NULL, &eb), 0);
    snprintf(c.out.s, sizeof(c.out.s), "%s/s1b", dir);
    CU_ASSERT_EQUAL_FATAL(gen_run(&c, NULL, &eb), 0);
    c.seed = 2;
    snprintf(c.out.s, sizeof(c.out.s), "%s/s2", dir);
    CU_ASSERT_EQUAL_FATAL(gen_run(&c, NULL, &eb), 0);
    CU_ASSERT(same_file("s1a", "s1b", "train.tsv"));
    CU_ASSERT(same_file("s1a", "s1b", "test.tsv"));
    CU_ASSERT(same_file("s1a", "s1b", "test.truth.tsv"));
    CU_ASSERT(!same_file("s1a", "s2", "train.tsv"));
    CU_ASSERT(!same_file("s1a", "s2", "test.truth.tsv"));
}

/* Item ids of a tsv1 file into a bitmap. */
static void items_of(const char *sub, const char *name, uint8_t *seen, size_t n)
{
    size_t len;
    char *s = slurp_at(sub, name, &len), *p;

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (p = s; (p = strstr(p, "item_id:i")) != NULL; p += 9) {
        unsigned long id = strtoul(p + 9, NULL, 10);
        if (id < n)
            seen[id] = 1;
    }
    free(s);
}

static void test_days_drift(void)
{
    enum { NI = 3000 };
    gen_conf_t c;
    errbuf_t eb;
    static uint8_t d1[NI], d2[NI], d3[NI];
    int new2 = 0, gone3 = 0;

    conf_for(&c, "days", 20000, 2000);
    c.users = 5000;
    c.items = NI;
    c.days = 3;
    c.drift = 0.2;
    CU_ASSERT_EQUAL_FATAL(gen_run(&c, NULL, &eb), 0);
    for (int d = 1; d <= 3; d++) {
        char sub[64];
        size_t len;
        char *t;
        snprintf(sub, sizeof(sub), "days/day%d", d);
        t = slurp_at(sub, "test.truth.tsv", &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_EQUAL(count_lines(t), 2001);
        free(t);
    }
    items_of("days/day1", "train.tsv", d1, NI);
    items_of("days/day2", "train.tsv", d2, NI);
    items_of("days/day3", "train.tsv", d3, NI);
    for (int i = 0; i < NI; i++) {
        new2 += d2[i] && !d1[i];
        gone3 += d1[i] && !d3[i] && !d2[i];
    }
    CU_ASSERT(new2 > 50);
    CU_ASSERT(gone3 > 20);
    /* the world's own bookkeeping agrees: no item seen outside its life */
    {
        world_t *w = NULL;
        int outside = 0;
        CU_ASSERT_EQUAL_FATAL(world_new(&w, &c, &eb), 0);
        for (uint32_t i = 0; i < NI; i++) {
            const world_item_t *it = world_item(w, i);
            outside += d1[i] && !(it->birth <= 1 && 1 <= it->death);
            outside += d3[i] && !(it->birth <= 3 && 3 <= it->death);
        }
        CU_ASSERT_EQUAL(outside, 0);
        world_destroy(&w);
    }
}

static void test_gzip(void)
{
    gen_conf_t c;
    errbuf_t eb;
    char path[1024];

    conf_for(&c, "plain", 20000, 3000);
    c.users = 5000;
    c.items = 3000;
    CU_ASSERT_EQUAL_FATAL(gen_run(&c, NULL, &eb), 0);
    c.gzip = 1;
    snprintf(c.out.s, sizeof(c.out.s), "%s/gz", dir);
    CU_ASSERT_EQUAL_FATAL(gen_run(&c, NULL, &eb), 0);
    snprintf(path, sizeof(path), "%s/gz.out", dir);
    CU_ASSERT_EQUAL(tu_sh(path, "gunzip -t '%s/gz/train.tsv.gz' '%s/gz/test.tsv.gz'", dir, dir), 0);
    /* decompressed bytes equal the plain output of the same seed */
    CU_ASSERT_EQUAL(
        tu_sh(path, "gunzip -c '%s/gz/train.tsv.gz' | cmp - '%s/plain/train.tsv'", dir, dir), 0);
    CU_ASSERT(same_file("gz", "plain", "test.truth.tsv"));
}

/* Read files through the real reader; returns accepted rows (rejects counted). */
static uint64_t read_back(const char *slots, int format, char **paths, int npaths,
                          uint64_t *rejected, uint64_t *unknown)
{
    worker_conf_t wc;
    model_spec_t ms;
    reader_opts_t o;
    reader_t *rd = NULL;
    batch_t b;
    errbuf_t eb;
    uint64_t acc;
    int rc;

    CU_ASSERT_EQUAL_FATAL(conf_defaults(&worker_conf_schema, &wc, &eb), 0);
    if (slots)
        CU_ASSERT_EQUAL_FATAL(conf_set(&worker_conf_schema, &wc, "slots", slots, "test", &eb), 0);
    CU_ASSERT_EQUAL_FATAL(model_spec_from_conf(&ms, &wc.model, &eb), 0);
    conf_release(&worker_conf_schema, &wc);
    memset(&o, 0, sizeof(o));
    o.format = format;
    o.workers = 1;
    rc = reader_open(&rd, &ms, &o, paths, npaths, &eb);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL_FATAL(batch_init(&b, ms.nslots, 1024), 0);
    while ((rc = reader_next_batch(rd, &b, 1024, &eb)) == 0)
        ;
    CU_ASSERT_EQUAL(rc, ERR_EOF);
    acc = reader_stats(rd)->accepted;
    *rejected = reader_stats(rd)->rejected + reader_stats(rd)->join_rejected;
    *unknown = reader_stats(rd)->unknown_slot_tokens;
    batch_release(&b);
    reader_destroy(&rd);
    return acc;
}

static void test_reader_accepts_tsv1(void)
{
    gen_conf_t c;
    errbuf_t eb;
    char p1[1024], p2[1024];
    char *paths[2] = {p1, p2};
    uint64_t rej, unk;

    conf_for(&c, "rd", 30000, 3000);
    c.users = 5000;
    c.items = 3000;
    c.gzip = 1;
    CU_ASSERT_EQUAL_FATAL(gen_run(&c, NULL, &eb), 0);
    snprintf(p1, sizeof(p1), "%s/rd/train.tsv.gz", dir);
    snprintf(p2, sizeof(p2), "%s/rd/test.tsv.gz", dir);
    CU_ASSERT_EQUAL(read_back(NULL, READER_TSV1, paths, 2, &rej, &unk), 33000);
    CU_ASSERT_EQUAL(rej, 0);
    CU_ASSERT_EQUAL(unk, 0); /* every token is a default model slot */
}

static void test_aliccp(void)
{
    gen_conf_t c;
    gen_stats_t st;
    errbuf_t eb;
    size_t len, bad = 0, nskel = 0, ncommon = 0;
    char *skel, *common, *line, *save = NULL;
    char p1[1024], p2[1024];
    char *paths[2] = {p1, p2};
    uint64_t rej, unk, clicks = 0, buys = 0;

    conf_for(&c, "ali", 20000, 2000);
    c.users = 3000;
    c.items = 3000;
    c.format = GEN_FORMAT_ALICCP;
    CU_ASSERT_EQUAL_FATAL(gen_run(&c, &st, &eb), 0);
    skel = slurp_at("ali", "sample_skeleton_train.csv", &len);
    common = slurp_at("ali", "common_features_train.csv", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(skel);
    CU_ASSERT_PTR_NOT_NULL_FATAL(common);
    for (line = strtok_r(skel, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char md5[32];
        unsigned long long sid;
        int click, buy, num, pos = 0, nfeat = 0;
        char *f;
        nskel++;
        if (sscanf(line, "%llu,%d,%d,%16[0-9a-f],%d,%n", &sid, &click, &buy, md5, &num, &pos) !=
                5 ||
            pos == 0 || sid != nskel || (buy && !click) || strlen(md5) != 16) {
            bad++;
            continue;
        }
        clicks += click;
        buys += buy;
        /* md5 present in the common features (at a line start) */
        char key[40];
        snprintf(key, sizeof(key), "%s,1,101\x02", md5);
        if (strncmp(common, key, strlen(key)) != 0) {
            snprintf(key, sizeof(key), "\n%s,1,101\x02", md5);
            bad += strstr(common, key) == NULL;
        }
        for (f = line + pos; f; f = strchr(f, '\x01')) {
            char *a;
            if (*f == '\x01')
                f++;
            a = strchr(f, '\x02');
            nfeat++;
            if (!a || !strchr(a, '\x03') || a == f)
                bad++;
        }
        bad += nfeat != num;
    }
    ncommon = count_lines(common);
    free(skel);
    free(common);
    CU_ASSERT_EQUAL(nskel, 20000);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(ncommon > 100 && ncommon <= 3000);
    CU_ASSERT_EQUAL(clicks, st.split[GEN_TRAIN].clicks);
    CU_ASSERT_EQUAL(buys, st.split[GEN_TRAIN].buys);
    /* the truth file is still written for the test split */
    common = slurp_at("ali", "test.truth.tsv", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(common);
    CU_ASSERT_EQUAL(count_lines(common), 2001);
    free(common);
    /* and the real reader joins it without a reject, every field declared */
    snprintf(p1, sizeof(p1), "%s/ali/sample_skeleton_train.csv", dir);
    snprintf(p2, sizeof(p2), "%s/ali/common_features_train.csv", dir);
    CU_ASSERT_EQUAL(
        read_back("101,205,206,207,216,210,301,302", READER_ALICCP, paths, 2, &rej, &unk), 20000);
    CU_ASSERT_EQUAL(rej, 0);
    CU_ASSERT_EQUAL(unk, 0);
}

static void test_cli(void)
{
    char gen[512], out[1024];
    size_t len;
    char *text;

    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(out, sizeof(out), "%s/cli.out", dir);
    CU_ASSERT_EQUAL(tu_sh(out, "%s --help", gen), 0);
    text = tu_slurp(out, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT(strstr(text, "--action_informative") != NULL);
    CU_ASSERT(strstr(text, "--clickbait") != NULL);
    free(text);
    CU_ASSERT_NOT_EQUAL(tu_sh(out, "%s --train 10", gen), 0); /* no --out */
    CU_ASSERT_NOT_EQUAL(tu_sh(out, "%s --out %s/x --no_such_key 1", gen, dir), 0);
    CU_ASSERT_NOT_EQUAL(tu_sh(out, "%s --out %s/x --format csv", gen, dir), 0);
    CU_ASSERT_EQUAL(
        tu_sh(out,
              "%s --conf conf/gen.conf --out %s/cli --train 3000 --test 300 --users 2000 "
              "--items 1000 --calib_samples 5000 --clickbait false",
              gen, dir),
        0);
    text = tu_slurp(out, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT(strstr(text, "CTR") != NULL && strstr(text, "buy/impression") != NULL);
    free(text);
    text = slurp_at("cli", "test.truth.tsv", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_EQUAL(count_lines(text), 301);
    free(text);
}

/* conf/gen.conf documents every key with its default. */
static void test_shipped_conf(void)
{
    gen_conf_t d, f;
    errbuf_t eb;
    size_t len;
    char *text = tu_slurp("conf/gen.conf", &len);

    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_EQUAL_FATAL(conf_defaults(&gen_conf_schema, &d, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(conf_defaults(&gen_conf_schema, &f, &eb), 0);
    /* load over distinct values so that a missing key would show */
    f.train = 7;
    f.noise = 4.25;
    f.clickbait = 0;
    CU_ASSERT_EQUAL(conf_load_file(&gen_conf_schema, &f, "conf/gen.conf", &eb), 0);
    for (size_t i = 0; i < gen_conf_schema.nkeys; i++) {
        const conf_key_t *k = &gen_conf_schema.keys[i];
        char a[CONF_STR_MAX], b[CONF_STR_MAX], want[256];
        conf_format_value(k, &d, a, sizeof(a));
        conf_format_value(k, &f, b, sizeof(b));
        CU_ASSERT_STRING_EQUAL(a, b);
        snprintf(want, sizeof(want), "\n%s = ", k->name);
        CU_ASSERT(strstr(text, want) != NULL);
    }
    free(text);
}

int test_gen_register(void)
{
    CU_pSuite s = CU_add_suite("gen", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "probability formatting", test_format_prob);
    CU_add_test(s, "default world: labels, slots, rates, truth", test_default_world);
    CU_add_test(s, "ablations keep rates and remove their effect", test_ablations);
    CU_add_test(s, "clickbait and position effects", test_effects);
    CU_add_test(s, "same seed same bytes, other seed other bytes", test_determinism);
    CU_add_test(s, "days: one folder per day, items drift", test_days_drift);
    CU_add_test(s, "gzip output", test_gzip);
    CU_add_test(s, "reader accepts tsv1 output", test_reader_accepts_tsv1);
    CU_add_test(s, "aliccp output", test_aliccp);
    CU_add_test(s, "command line", test_cli);
    CU_add_test(s, "shipped conf/gen.conf", test_shipped_conf);
    return CU_get_error();
}
