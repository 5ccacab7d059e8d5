/*
 * metrics.c - the metrics registry and its Prometheus text rendering. See
 * metrics.h for the design (seqlock snapshot, names, escaping).
 */
#include "obs/metrics.h"

#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One series: its family, its rendered label set, and where its values
 * are (counter/gauge: 1 value; histogram: nbounds+1 bucket counts, then
 * the sum). */
typedef struct series {
    obs_kind_t kind;
    char *name;   /* family name */
    char *help;   /* family help (the first series' is used) */
    char *labels; /* rendered: `a="x",b="y"` or "" */
    double bounds[OBS_MAX_BOUNDS];
    int nbounds;
    size_t first; /* index of its first value in vals */
} series_t;

struct obs_reg {
    series_t *s;
    size_t n, cap;          /* series */
    _Atomic uint64_t *vals; /* double bits (histogram counts: integers) */
    size_t nvals, vcap;
    _Atomic uint64_t seq; /* odd while a publish is under way */
};

#ifndef FUNNEL_VERSION
#define FUNNEL_VERSION "unknown"
#endif

const char *obs_version(void)
{
    return FUNNEL_VERSION;
}

int obs_name_ok(const char *name, int label)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n >= OBS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (!label && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return !(label && n >= 2 && name[0] == '_' && name[1] == '_'); /* reserved */
}

int obs_reg_new(obs_reg_t **out, errbuf_t *eb)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return errbuf_set(eb, ERR_NOMEM, "out of memory for the metrics registry");
    return 0;
}

void obs_reg_destroy(obs_reg_t **r)
{
    if (!r || !*r)
        return;
    for (size_t i = 0; i < (*r)->n; i++) {
        free((*r)->s[i].name);
        free((*r)->s[i].help);
        free((*r)->s[i].labels);
    }
    free((*r)->s);
    free((void *)(*r)->vals);
    free(*r);
    *r = NULL;
}

/* Append `text` to buf[*len], escaping what the format requires
 * (label values: \ " and newline; help: \ and newline). */
static void put_escaped(char *buf, size_t *len, const char *text, int quote)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\\' || *p == '\n' || (quote && *p == '"')) {
            buf[(*len)++] = '\\';
            buf[(*len)++] = *p == '\n' ? 'n' : *p;
        } else {
            buf[(*len)++] = *p;
        }
    }
    buf[*len] = '\0';
}

/* Render a label list into a new string *out. Returns 0, ERR_INVAL (a bad
 * name, too many labels) or ERR_NOMEM. */
static int render_labels(const char *const *labels, char **res, errbuf_t *eb)
{
    size_t need = 1, len = 0;
    int pairs = 0;
    char *out;

    *res = NULL;
    for (int i = 0; labels && labels[i]; i += 2) {
        if (!labels[i + 1] || ++pairs > OBS_MAX_LABELS || !obs_name_ok(labels[i], 1) ||
            strlen(labels[i + 1]) >= OBS_VALUE_MAX) {
            return errbuf_set(eb, ERR_INVAL,
                              "metric label '%s': expected a name [a-zA-Z_][a-zA-Z0-9_]* with a "
                              "value under %d bytes, at most %d labels",
                              labels[i], OBS_VALUE_MAX, OBS_MAX_LABELS);
        }
        need += strlen(labels[i]) + 2 * strlen(labels[i + 1]) + 4;
    }
    out = malloc(need);
    if (!out)
        return errbuf_set(eb, ERR_NOMEM, "out of memory for metric labels");
    out[0] = '\0';
    for (int i = 0; labels && labels[i]; i += 2) {
        len += (size_t)sprintf(out + len, "%s%s=\"", i ? "," : "", labels[i]);
        put_escaped(out, &len, labels[i + 1], 1);
        out[len++] = '"';
        out[len] = '\0';
    }
    *res = out;
    return 0;
}

static int add(obs_reg_t *r, obs_kind_t kind, const char *name, const char *help,
               const char *const *labels, const double *bounds, int nbounds, errbuf_t *eb)
{
    size_t nv = kind == OBS_HISTOGRAM ? (size_t)nbounds + 2 : 1;
    series_t *sr;
    int rc;

    if (!obs_name_ok(name, 0))
        return errbuf_set(eb, ERR_INVAL,
                          "metric name '%s': expected [a-zA-Z_:][a-zA-Z0-9_:]*, under %d bytes",
                          name ? name : "", OBS_NAME_MAX);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->s[i].name, name) == 0 && r->s[i].kind != kind)
            return errbuf_set(eb, ERR_INVAL, "metric %s: added again as another type", name);
    if (kind == OBS_HISTOGRAM) {
        if (nbounds < 1 || nbounds > OBS_MAX_BOUNDS)
            return errbuf_set(eb, ERR_INVAL, "histogram %s: %d bounds, expected 1..%d", name,
                              nbounds, OBS_MAX_BOUNDS);
        for (int i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
                return errbuf_set(eb, ERR_INVAL,
                                  "histogram %s: bounds must be finite and increasing", name);
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 32;
        series_t *s = realloc(r->s, cap * sizeof(*s));
        if (!s)
            return errbuf_set(eb, ERR_NOMEM, "out of memory for metric %s", name);
        r->s = s;
        r->cap = cap;
    }
    if (r->nvals + nv > r->vcap) {
        size_t cap = r->vcap ? 2 * r->vcap : 64;
        while (cap < r->nvals + nv)
            cap *= 2;
        _Atomic uint64_t *v = realloc((void *)r->vals, cap * sizeof(*v));
        if (!v)
            return errbuf_set(eb, ERR_NOMEM, "out of memory for metric %s", name);
        r->vals = v;
        r->vcap = cap;
    }
    sr = &r->s[r->n];
    memset(sr, 0, sizeof(*sr));
    sr->kind = kind;
    sr->name = strdup(name);
    sr->help = strdup(help ? help : "");
    rc = render_labels(labels, &sr->labels, eb);
    if (rc == 0 && (!sr->name || !sr->help))
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory for metric %s", name);
    if (rc != 0) {
        free(sr->name);
        free(sr->help);
        free(sr->labels);
        return rc;
    }
    if (kind == OBS_HISTOGRAM)
        memcpy(sr->bounds, bounds, (size_t)nbounds * sizeof(double));
    sr->nbounds = kind == OBS_HISTOGRAM ? nbounds : 0;
    sr->first = r->nvals;
    for (size_t i = 0; i < nv; i++)
        atomic_init(&r->vals[r->nvals + i], 0); /* 0 bits: 0.0 and count 0 */
    r->nvals += nv;
    return (int)r->n++;
}

int obs_series_add(obs_reg_t *r, obs_kind_t kind, const char *name, const char *help,
                   const char *const *labels, errbuf_t *eb)
{
    if (kind == OBS_HISTOGRAM)
        return errbuf_set(eb, ERR_INVAL, "metric %s: histograms are added by obs_hist_add", name);
    return add(r, kind, name, help, labels, NULL, 0, eb);
}

int obs_hist_add(obs_reg_t *r, const char *name, const char *help, const char *const *labels,
                 const double *bounds, int nbounds, errbuf_t *eb)
{
    return add(r, OBS_HISTOGRAM, name, help, labels, bounds, nbounds, eb);
}

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double double_of(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

void obs_publish_begin(obs_reg_t *r)
{
    atomic_store_explicit(&r->seq, atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

void obs_set(obs_reg_t *r, int id, double value)
{
    if (id < 0 || (size_t)id >= r->n || r->s[id].kind == OBS_HISTOGRAM)
        return;
    atomic_store_explicit(&r->vals[r->s[id].first], bits_of(value), memory_order_relaxed);
}

void obs_hist_set(obs_reg_t *r, int id, const uint64_t *counts, double sum)
{
    const series_t *s;

    if (id < 0 || (size_t)id >= r->n || r->s[id].kind != OBS_HISTOGRAM)
        return;
    s = &r->s[id];
    for (int i = 0; i <= s->nbounds; i++)
        atomic_store_explicit(&r->vals[s->first + (size_t)i], counts[i], memory_order_relaxed);
    atomic_store_explicit(&r->vals[s->first + (size_t)s->nbounds + 1], bits_of(sum),
                          memory_order_relaxed);
}

void obs_publish_end(obs_reg_t *r)
{
    atomic_store_explicit(&r->seq, atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
                          memory_order_release);
}

/* Copy every value of one snapshot into v. Returns 0, or ERR_BUSY when
 * publishes kept overlapping (each takes microseconds; they come every
 * few hundred ms, so a few tries always suffice in practice). */
static int snapshot(const obs_reg_t *r, uint64_t *v)
{
    obs_reg_t *w = (obs_reg_t *)r; /* the atomics are read only */

    for (int attempt = 0; attempt < 1000; attempt++) {
        uint64_t s0 = atomic_load_explicit(&w->seq, memory_order_acquire), s1;
        if (s0 & 1) {
            sched_yield();
            continue;
        }
        for (size_t i = 0; i < r->nvals; i++)
            v[i] = atomic_load_explicit(&w->vals[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        s1 = atomic_load_explicit(&w->seq, memory_order_relaxed);
        if (s0 == s1)
            return 0;
    }
    return ERR_BUSY;
}

/* A growable text buffer for rendering. */
typedef struct text {
    char *p;
    size_t len, cap;
    int nomem;
} text_t;

static char *reserve(text_t *t, size_t n)
{
    if (t->nomem)
        return NULL;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->nomem = 1;
            return NULL;
        }
        t->p = p;
        t->cap = cap;
    }
    return t->p + t->len;
}

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_t *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(t, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* A sample value as the format spells it: integers without exponent or
 * fraction, NaN, +Inf, -Inf, else the shortest %g that reads back exactly. */
static void fmt_value(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "NaN");
    else if (isinf(v))
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, len, "%.0f", v);
    else
        for (int prec = 15; prec <= 17; prec++) { /* shortest that reads back the same */
            snprintf(buf, len, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
}

/* One sample line: name{labels[,extra]} value. */
static void put_sample(text_t *t, const char *name, const char *suffix, const char *labels,
                       const char *extra, double v)
{
    char num[64];
    int any = labels[0] || extra[0];

    fmt_value(num, sizeof(num), v);
    put(t, "%s%s%s%s%s%s%s %s\n", name, suffix, any ? "{" : "", labels,
        labels[0] && extra[0] ? "," : "", extra, any ? "}" : "", num);
}

static void put_series(text_t *t, const series_t *s, const uint64_t *v)
{
    if (s->kind != OBS_HISTOGRAM) {
        put_sample(t, s->name, "", s->labels, "", double_of(v[s->first]));
        return;
    }
    uint64_t cum = 0;
    char le[96], num[64];
    for (int b = 0; b <= s->nbounds; b++) {
        cum += v[s->first + (size_t)b];
        if (b < s->nbounds)
            fmt_value(num, sizeof(num), s->bounds[b]);
        snprintf(le, sizeof(le), "le=\"%s\"", b < s->nbounds ? num : "+Inf");
        put_sample(t, s->name, "_bucket", s->labels, le, (double)cum);
    }
    put_sample(t, s->name, "_sum", s->labels, "", double_of(v[s->first + (size_t)s->nbounds + 1]));
    put_sample(t, s->name, "_count", s->labels, "", (double)cum);
}

int obs_render(const obs_reg_t *r, char **out, size_t *len)
{
    static const char *const type[] = {"counter", "gauge", "histogram"};
    uint64_t *v = malloc((r->nvals ? r->nvals : 1) * sizeof(*v));
    text_t t = {0};
    int rc;

    *out = NULL;
    *len = 0;
    if (!v)
        return ERR_NOMEM;
    rc = snapshot(r, v);
    if (rc != 0) {
        free(v);
        return rc;
    }
    reserve(&t, 0);
    /* Families in order of their first series; each family's series
     * together, as the format requires. */
    for (size_t i = 0; i < r->n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(r->s[j].name, r->s[i].name) == 0;
        if (seen)
            continue;
        char *help = malloc(2 * strlen(r->s[i].help) + 1);
        size_t hl = 0;
        if (!help) {
            t.nomem = 1;
            break;
        }
        put_escaped(help, &hl, r->s[i].help, 0);
        put(&t, "# HELP %s %s\n", r->s[i].name, help);
        free(help);
        put(&t, "# TYPE %s %s\n", r->s[i].name, type[r->s[i].kind]);
        for (size_t j = i; j < r->n; j++)
            if (strcmp(r->s[j].name, r->s[i].name) == 0)
                put_series(&t, &r->s[j], v);
    }
    free(v);
    if (t.nomem || !t.p) {
        free(t.p);
        return ERR_NOMEM;
    }
    *out = t.p;
    *len = t.len;
    return 0;
}
