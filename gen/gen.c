/*
 * gen.c - funnel-gen's job: files, formats, days, truth, progress and the
 * summary of realized rates. The world itself (who clicks what, and why)
 * is world.c; the file sinks are gen_out.c. See gen.h for the layout.
 *
 * Speed: every token that depends only on the user, the item, the position
 * or the hour is formatted once at start-up into string tables, so writing
 * a line is a handful of memcpy calls into the output buffer, and the only
 * numbers formatted per line are the truth probabilities and the Ali-CCP
 * sample id.
 */
#include "gen/gen.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/clock.h"
#include "common/dirs.h"
#include "common/log.h"
#include "gen/gen_out.h"
#include "gen/world.h"

#define FIELD_USER "101"
#define FIELD_ITEM "205"
#define FIELD_CATE "206"
#define FIELD_SHOP "207"
#define FIELD_BRAND "216"
#define FIELD_TAG "210"
#define FIELD_POSITION "301"
#define FIELD_HOUR "302"
#define SEP_FEAT "\x01" /* between features */
#define SEP_ID "\x02"   /* field id | feature id */
#define SEP_VAL "\x03"  /* feature id | value */

#define GEN_PROGRESS_MIN_LINES 1000000 /* shorter runs report progress at DEBUG */

static const char *const tag_names[] = {"sale", "new",     "hot", "free_ship",
                                        "gift", "limited", "eco", "premium"};

static const char *const split_name[2] = {"train", "test"};

/* Strings k = buf[off[k] .. off[k+1]). */
typedef struct strtab {
    char *buf;
    size_t len, cap;
    size_t *off; /* n + 1 */
    size_t n;
} strtab_t;

typedef struct gen {
    const gen_conf_t *c;
    world_t *w;
    strtab_t user; /* tsv1 "user_id:u1"; aliccp common row "md5,1,101^B1^C1.0\n" */
    strtab_t md5;  /* aliccp: 16 hex digits per user */
    strtab_t item; /* item, cate, shop, brand tokens */
    strtab_t tags; /* tag tokens with their leading separators */
    strtab_t pos;  /* position token, leading separator */
    strtab_t hour; /* hour token, leading separator */
    uint8_t *seen; /* aliccp: user's common row already written (n_users) */
    uint64_t done, total, next_report; /* lines, for progress */
    double t0;                         /* s, start of the run */
    double t_write;                    /* s, start of writing */
} gen_t;

/* ---- small formatting helpers ----------------------------------------- */

/* Decimal digits of v into p; returns the length. */
static int fmt_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

int gen_format_prob(char *p, double x)
{
    char d[40];
    uint64_t m;
    int k = 6, n;

    if (!(x > 0)) {
        p[0] = '0';
        return 1;
    }
    if (x >= 1) {
        p[0] = '1';
        return 1;
    }
    /* x = m 10^-k with 6-digit m */
    double y = x * 1e6;
    while (y < 99999.5 && k < 30) {
        y *= 10;
        k++;
    }
    m = (uint64_t)llround(y);
    if (m >= 1000000) {
        m = (m + 5) / 10;
        k--;
    }
    if (k <= 5) {
        p[0] = '1';
        return 1;
    }
    /* k decimals: k-6 zeros then m as 6 digits */
    memset(d, '0', (size_t)k);
    for (int i = k - 1; i >= k - 6; i--) {
        d[i] = (char)('0' + m % 10);
        m /= 10;
    }
    while (k > 0 && d[k - 1] == '0')
        k--;
    if (k == 0) {
        p[0] = '0';
        return 1;
    }
    p[0] = '0';
    p[1] = '.';
    memcpy(p + 2, d, (size_t)k);
    n = k + 2;
    return n;
}

/* ---- string tables ------------------------------------------------------ */

static void strtab_release(strtab_t *t)
{
    free(t->buf);
    free(t->off);
    memset(t, 0, sizeof(*t));
}

static int strtab_init(strtab_t *t, size_t n, size_t guess)
{
    memset(t, 0, sizeof(*t));
    t->off = malloc((n + 1) * sizeof(*t->off));
    t->cap = guess > 64 ? guess : 64;
    t->buf = malloc(t->cap);
    if (!t->off || !t->buf) {
        strtab_release(t);
        return ERR_NOMEM;
    }
    t->off[0] = 0;
    return 0;
}

/* Append text to the string being built (string t->n). */
static int strtab_add(strtab_t *t, const char *s, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = t->cap * 2 > t->len + n ? t->cap * 2 : t->len + n;
        char *b = realloc(t->buf, cap);
        if (!b)
            return ERR_NOMEM;
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    return 0;
}

static int strtab_addf(strtab_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int strtab_addf(strtab_t *t, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return ERR_INVAL;
    return strtab_add(t, tmp, (size_t)n);
}

/* Close string t->n. */
static void strtab_end(strtab_t *t)
{
    t->off[++t->n] = t->len;
}

static inline const char *strtab_get(const strtab_t *t, size_t k, size_t *len)
{
    *len = t->off[k + 1] - t->off[k];
    return t->buf + t->off[k];
}

/* Append string k of t at p; returns the bytes written. */
static inline size_t put(char *p, const strtab_t *t, size_t k)
{
    size_t n;
    const char *s = strtab_get(t, k, &n);

    memcpy(p, s, n);
    return n;
}

static int tag_name(char *buf, size_t len, unsigned tag)
{
    if (tag < sizeof(tag_names) / sizeof(tag_names[0]))
        return snprintf(buf, len, "%s", tag_names[tag]);
    return snprintf(buf, len, "t%u", tag);
}

/* 16 hex digits naming user u's common-features row: a bijective mix of u,
 * so distinct users get distinct ids. */
static uint64_t user_md5(uint64_t u)
{
    uint64_t z = u + 0x9E3779B97F4A7C15ull;

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Format every per-user, per-item, per-position and per-hour token once. */
static int build_tokens(gen_t *g)
{
    const gen_conf_t *c = g->c;
    int ali = c->format == GEN_FORMAT_ALICCP;
    size_t nu = (size_t)c->users, ni = (size_t)c->items;
    int rc = 0;

    if (strtab_init(&g->user, nu, nu * (ali ? 40 : 16)) || strtab_init(&g->md5, nu, nu * 16) ||
        strtab_init(&g->item, ni, ni * 64) || strtab_init(&g->tags, ni, ni * 24) ||
        strtab_init(&g->pos, (size_t)c->positions + 1, 32 * ((size_t)c->positions + 1)) ||
        strtab_init(&g->hour, WORLD_HOURS, 32 * WORLD_HOURS))
        return ERR_NOMEM;
    for (size_t u = 0; u < nu; u++) {
        char hex[20];
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)user_md5(u));
        rc |= strtab_add(&g->md5, hex, 16);
        strtab_end(&g->md5);
        if (ali)
            rc |= strtab_addf(&g->user, "%s,1," FIELD_USER SEP_ID "%zu" SEP_VAL "1.0\n", hex, u);
        else
            rc |= strtab_addf(&g->user, "user_id:u%zu", u);
        strtab_end(&g->user);
    }
    for (size_t i = 0; i < ni; i++) {
        const world_item_t *it = world_item(g->w, (uint32_t)i);
        if (ali)
            rc |= strtab_addf(&g->item,
                              FIELD_ITEM SEP_ID "%zu" SEP_VAL "1.0" SEP_FEAT FIELD_CATE SEP_ID
                                                "%u" SEP_VAL "1.0" SEP_FEAT FIELD_SHOP SEP_ID
                                                "%u" SEP_VAL "1.0" SEP_FEAT FIELD_BRAND SEP_ID
                                                "%u" SEP_VAL "1.0",
                              i, it->cate, it->shop, it->brand);
        else
            rc |= strtab_addf(&g->item, "item_id:i%zu cate_id:c%u shop_id:s%u brand_id:b%u", i,
                              it->cate, it->shop, it->brand);
        strtab_end(&g->item);
        for (int k = 0; k < it->ntags; k++) {
            char name[32];
            float tw = it->tag_w[k];
            if (ali) {
                rc |= strtab_addf(&g->tags, SEP_FEAT FIELD_TAG SEP_ID "%u" SEP_VAL "%s",
                                  (unsigned)it->tag[k],
                                  tw == 1.0f   ? "1.0"
                                  : tw == 0.5f ? "0.5"
                                               : "0.25");
            } else {
                tag_name(name, sizeof(name), it->tag[k]);
                rc |= strtab_addf(&g->tags, " tag:%s%s", name,
                                  tw == 1.0f   ? ""
                                  : tw == 0.5f ? ":0.5"
                                               : ":0.25");
            }
        }
        strtab_end(&g->tags);
    }
    for (int p = 0; p <= c->positions; p++) {
        if (ali)
            rc |= strtab_addf(&g->pos, SEP_FEAT FIELD_POSITION SEP_ID "%d" SEP_VAL "1.0", p);
        else
            rc |= strtab_addf(&g->pos, " position:%d", p);
        strtab_end(&g->pos);
    }
    for (int h = 0; h < WORLD_HOURS; h++) {
        if (ali)
            rc |= strtab_addf(&g->hour, SEP_FEAT FIELD_HOUR SEP_ID "%d" SEP_VAL "1.0", h);
        else
            rc |= strtab_addf(&g->hour, " hour:%d", h);
        strtab_end(&g->hour);
    }
    if (ali && !(g->seen = calloc(nu, 1)))
        rc = ERR_NOMEM;
    return rc ? ERR_NOMEM : 0;
}

/* ---- one line of each format ------------------------------------------ */

/* FORMAT.md's optional fields (--weights, --request_size) of line j of
 * split `split` of day `day` at p; returns the bytes written. */
static size_t put_fields(const gen_conf_t *c, char *p, int day, int split, int64_t j,
                         const world_imp_t *m)
{
    size_t n = 0;

    if (c->weights > 0)
        n += (size_t)sprintf(p + n, " @w:%.9g", m->buy ? c->weights : 1.0);
    if (c->request_size > 0)
        n += (size_t)sprintf(p + n, " @req:%c%d-%lld", split == GEN_TRAIN ? 'r' : 't', day,
                             (long long)(j / c->request_size));
    return n;
}

static void write_tsv1(gen_t *g, gen_out_t *o, const world_imp_t *m, int day, int split, int64_t j)
{
    char *p0 = gen_out_reserve(o, GEN_OUT_LINE_MAX), *p = p0;

    *p++ = (char)('0' + m->click);
    *p++ = '\t';
    *p++ = (char)('0' + m->action);
    *p++ = '\t';
    *p++ = (char)('0' + m->buy);
    *p++ = '\t';
    p += put(p, &g->user, m->user);
    *p++ = ' ';
    p += put(p, &g->item, m->item);
    p += put(p, &g->pos, m->position);
    p += put(p, &g->hour, m->hour);
    p += put(p, &g->tags, m->item);
    p += put_fields(g->c, p, day, split, j, m);
    *p++ = '\n';
    gen_out_commit(o, (size_t)(p - p0));
}

static void write_aliccp(gen_t *g, gen_out_t *skel, gen_out_t *common, uint64_t sample_id,
                         const world_imp_t *m)
{
    char *p0 = gen_out_reserve(skel, GEN_OUT_LINE_MAX), *p = p0;
    const world_item_t *it = world_item(g->w, m->item);

    p += fmt_u64(p, sample_id);
    *p++ = ',';
    *p++ = (char)('0' + m->click);
    *p++ = ',';
    *p++ = (char)('0' + m->buy);
    *p++ = ',';
    p += put(p, &g->md5, m->user);
    *p++ = ',';
    p += fmt_u64(p, 6u + it->ntags);
    *p++ = ',';
    p += put(p, &g->item, m->item);
    p += put(p, &g->pos, m->position);
    p += put(p, &g->hour, m->hour);
    p += put(p, &g->tags, m->item);
    *p++ = '\n';
    gen_out_commit(skel, (size_t)(p - p0));
    if (!g->seen[m->user]) {
        size_t n;
        const char *s = strtab_get(&g->user, m->user, &n);
        g->seen[m->user] = 1;
        gen_out_write(common, s, n);
    }
}

static void write_truth(gen_out_t *o, const world_imp_t *m)
{
    char *p0 = gen_out_reserve(o, 256), *p = p0;
    double t[4];

    world_truth(m, t);
    *p++ = (char)('0' + m->click);
    *p++ = '\t';
    *p++ = (char)('0' + m->action);
    *p++ = '\t';
    *p++ = (char)('0' + m->buy);
    *p++ = '\t';
    *p++ = (char)('0' + m->buy_cf);
    for (int k = 0; k < 4; k++) {
        *p++ = '\t';
        p += gen_format_prob(p, t[k]);
    }
    *p++ = '\n';
    gen_out_commit(o, (size_t)(p - p0));
}

static void write_relevance(gen_out_t *o, double p)
{
    char *p0 = gen_out_reserve(o, 64), *q = p0;

    q += gen_format_prob(q, p);
    *q++ = '\n';
    gen_out_commit(o, (size_t)(q - p0));
}

/* ---- files ------------------------------------------------------------- */

/* A line about every 10% of the run: INFO on long runs, DEBUG on short ones. */
static void progress(gen_t *g)
{
    int level = g->total >= GEN_PROGRESS_MIN_LINES ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG;
    double dt;

    if (++g->done < g->next_report)
        return;
    g->next_report = g->done + (g->total + 9) / 10;
    if (!log_enabled(level))
        return;
    dt = clock_now_s() - g->t_write;
    log_write(level, "%3.0f%%  %llu/%llu lines  %.2f M lines/s", 100.0 * g->done / g->total,
              (unsigned long long)g->done, (unsigned long long)g->total,
              dt > 0 ? g->done / dt / 1e6 : 0.0);
}

static void count(gen_split_stats_t *st, const world_imp_t *m)
{
    st->lines++;
    st->clicks += m->click;
    st->actions += m->action;
    st->buys += m->buy;
    st->buys_action += m->buy & m->action;
    st->buys_cf += m->buy_cf;
}

/* Write one split (train or test) of one day (0: no day folders) into dir. */
static int write_split(gen_t *g, const char *dir, int day, int split, gen_split_stats_t *st,
                       errbuf_t *eb)
{
    const gen_conf_t *c = g->c;
    int ali = c->format == GEN_FORMAT_ALICCP;
    const char *gz = c->gzip ? ".gz" : "";
    int64_t n = split == GEN_TRAIN ? c->train : c->test;
    gen_out_t *log = NULL, *common = NULL, *truth = NULL, *rel = NULL;
    char path[1200];
    world_rng_t r;
    world_imp_t m;
    int rc;

    if (ali)
        snprintf(path, sizeof(path), "%s/sample_skeleton_%s.csv%s", dir, split_name[split], gz);
    else
        snprintf(path, sizeof(path), "%s/%s.tsv%s", dir, split_name[split], gz);
    rc = gen_out_open(&log, path, c->gzip, eb);
    if (rc == 0 && ali) {
        snprintf(path, sizeof(path), "%s/common_features_%s.csv%s", dir, split_name[split], gz);
        rc = gen_out_open(&common, path, c->gzip, eb);
        memset(g->seen, 0, (size_t)c->users);
    }
    if (rc == 0 && split == GEN_TEST) {
        static const char header[] = "click\taction\tbuy\tbuy_cf\tpctr\tpcvr\tpctcvr\tpctavr\n";
        snprintf(path, sizeof(path), "%s/test.truth.tsv", dir);
        rc = gen_out_open(&truth, path, 0, eb);
        if (rc == 0)
            gen_out_write(truth, header, sizeof(header) - 1);
    }
    if (rc == 0 && split == GEN_TEST && c->relevance) {
        static const char header[] = "relevance\n";
        snprintf(path, sizeof(path), "%s/test.relevance.tsv", dir);
        rc = gen_out_open(&rel, path, 0, eb);
        if (rc == 0)
            gen_out_write(rel, header, sizeof(header) - 1);
    }
    if (rc != 0)
        goto out;
    world_rng_seed(&r, (uint64_t)c->seed, 1 + 2 * (uint64_t)day + (uint64_t)split);
    for (int64_t j = 0; j < n; j++) {
        world_draw(g->w, &r, &m);
        if (ali)
            write_aliccp(g, log, common, (uint64_t)j + 1, &m);
        else
            write_tsv1(g, log, &m, day, split, j);
        if (truth)
            write_truth(truth, &m);
        if (rel)
            write_relevance(rel, world_relevance(g->w, &m));
        count(st, &m);
        progress(g);
    }
out:
    /* close all; report the first error */
    if (gen_out_close(&rel, rc ? NULL : eb) != 0 && rc == 0)
        rc = ERR_IO;
    if (gen_out_close(&truth, rc ? NULL : eb) != 0 && rc == 0)
        rc = ERR_IO;
    if (gen_out_close(&common, rc ? NULL : eb) != 0 && rc == 0)
        rc = ERR_IO;
    if (gen_out_close(&log, rc ? NULL : eb) != 0 && rc == 0)
        rc = ERR_IO;
    return rc;
}

static void log_split(const char *name, const gen_split_stats_t *s)
{
    double n = s->lines ? (double)s->lines : 1, cl = s->clicks ? (double)s->clicks : 1;

    LOG_INFO("%s: %llu lines, CTR %.3f%%, action/click %.2f%%, buy/click %.3f%%, "
             "buy/impression %.4f%%, buys after an action %.1f%%, counterfactual buy rate %.3f%%",
             name, (unsigned long long)s->lines, 100.0 * s->clicks / n, 100.0 * s->actions / cl,
             100.0 * s->buys / cl, 100.0 * s->buys / n,
             s->buys ? 100.0 * s->buys_action / s->buys : 0.0, 100.0 * s->buys_cf / n);
}

static void log_world(const gen_t *g)
{
    double b[5];

    world_intercepts(g->w, b);
    LOG_INFO("world: %lld users, %lld items (%.1f%% drawn as clickbait%s), %lld categories, "
             "%lld shops, %lld brands, %lld tags, %lld positions",
             (long long)g->c->users, (long long)g->c->items, 100.0 * world_clickbait_share(g->w),
             g->c->clickbait ? "" : ", switched off", (long long)g->c->categories,
             (long long)g->c->shops, (long long)g->c->brands, (long long)g->c->tags,
             (long long)g->c->positions);
    LOG_INFO("world: intercepts click %.3f action %.3f buy|action %.3f buy|no-action %.3f "
             "buy(uninformative) %.3f; action %s buys, latents %s",
             b[0], b[1], b[2], b[3], b[4], g->c->action_informative ? "informs" : "does not inform",
             g->c->shared_latents ? "shared" : "independent");
}

int gen_run(const gen_conf_t *c, gen_stats_t *stats, errbuf_t *eb)
{
    gen_t g = {.c = c};
    gen_stats_t local;
    gen_stats_t *st = stats ? stats : &local;
    int days = (int)c->days;
    char dir[1100];
    int rc;

    memset(st, 0, sizeof(*st));
    g.t0 = clock_now_s();
    if (c->out.s[0] == '\0')
        return errbuf_set(eb, ERR_CONFIG, "--out DIR is required (see --help)");
    rc = world_new(&g.w, c, eb);
    if (rc != 0)
        goto out;
    log_world(&g);
    rc = build_tokens(&g);
    if (rc != 0) {
        errbuf_set(eb, rc, "gen: out of memory formatting tokens");
        goto out;
    }
    rc = dirs_make(c->out.s, eb);
    if (rc != 0)
        goto out;
    g.total = (uint64_t)(c->train + c->test) * (uint64_t)(days > 0 ? days : 1);
    g.next_report = (g.total + 9) / 10;
    g.t_write = clock_now_s();
    for (int d = days > 0 ? 1 : 0; d <= days; d++) {
        if (d == 0) {
            snprintf(dir, sizeof(dir), "%s", c->out.s);
        } else {
            snprintf(dir, sizeof(dir), "%s/day%d", c->out.s, d);
            rc = world_set_day(g.w, d, eb);
            if (rc == 0)
                rc = dirs_make(dir, eb);
            if (rc != 0)
                goto out;
            LOG_INFO("day %d: %u live items", d, world_live_items(g.w));
        }
        for (int s = GEN_TRAIN; s <= GEN_TEST; s++) {
            rc = write_split(&g, dir, d, s, &st->split[s], eb);
            if (rc != 0)
                goto out;
        }
    }
    st->seconds = clock_now_s() - g.t0;
    log_split("train", &st->split[GEN_TRAIN]);
    log_split("test", &st->split[GEN_TEST]);
    {
        double tw = clock_now_s() - g.t_write;
        LOG_INFO("wrote %llu lines to %s in %.2f s (world and tokens %.2f s, then %.2f M "
                 "lines/s)",
                 (unsigned long long)g.total, c->out.s, st->seconds, g.t_write - g.t0,
                 tw > 0 ? g.total / tw / 1e6 : 0.0);
    }
out:
    free(g.seen);
    strtab_release(&g.user);
    strtab_release(&g.md5);
    strtab_release(&g.item);
    strtab_release(&g.tags);
    strtab_release(&g.pos);
    strtab_release(&g.hour);
    world_destroy(&g.w);
    return rc;
}
