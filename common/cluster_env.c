/*
 * cluster_env.c - ranks, shard indices and endpoints from the cluster
 * manager's environment. See cluster_env.h for the precedence.
 *
 * NOTES ON THE DESIGN
 *
 * The sources are one table per role, tried in order; a row names the
 * variable for the index and the one for the count (NULL: this manager
 * does not say). Rank and count are resolved separately, so a Kubernetes
 * Indexed Job takes its rank from JOB_COMPLETION_INDEX and its count from
 * the config or FUNNEL_WORKERS. An explicit setting (flag or config file)
 * always wins, even when it equals the default: conf_key_from() tells.
 */
#define _GNU_SOURCE /* memmem */
#include "common/cluster_env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/parse.h"

#define ID_MAX 65535 /* largest rank or shard index (the config keys' range) */

/* One environment source: index and count variables, and its name. */
typedef struct src {
    const char *index_var;
    const char *count_var; /* NULL: the manager gives no count */
    const char *name;
} src_t;

static const src_t worker_srcs[] = {
    {"FUNNEL_RANK", "FUNNEL_WORKERS", "funnel"},
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI"},
    {"SLURM_PROCID", "SLURM_NTASKS", "Slurm"},
    {"JOB_COMPLETION_INDEX", NULL, "Kubernetes Indexed Job"},
};

static const src_t shard_srcs[] = {
    {"FUNNEL_SHARD", "FUNNEL_SHARDS", "funnel"},
};

#define NSRC(a) (sizeof(a) / sizeof(a[0]))

const char *cluster_env_get(char *const *env, const char *name)
{
    size_t nl = strlen(name);

    for (char *const *e = env; e && *e; e++)
        if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=')
            return *e + nl + 1;
    return NULL;
}

static const char *from_name(conf_from_t f)
{
    return f == CONF_FROM_FLAG ? "flag" : f == CONF_FROM_FILE ? "config" : "default";
}

/* Parse env variable var (value v) as a whole number in [lo, ID_MAX + 1]. */
static int env_num(const char *var, const char *v, int64_t lo, int64_t *out, errbuf_t *eb)
{
    if (parse_int_str(v, lo, ID_MAX + 1, out) != 0)
        return errbuf_set(eb, ERR_CONFIG,
                          "environment %s='%s': expected a whole number %lld..%d (unset it, or "
                          "give the value as an option)",
                          var, v, (long long)lo, ID_MAX + 1);
    return 0;
}

/*
 * Resolve one value: keep *v if it came from a flag or the config, else
 * take the first source in srcs whose variable (index or count) is set.
 * src_said gets "flag", "config", "default" or "VAR=VALUE".
 */
static int resolve(char *const *env, const src_t *srcs, size_t nsrc, int count, conf_from_t from,
                   int64_t *v, char *src_said, size_t said_len, errbuf_t *eb)
{
    snprintf(src_said, said_len, "%s", from_name(from));
    if (from != CONF_FROM_DEFAULT)
        return 0;
    for (size_t i = 0; i < nsrc; i++) {
        const char *var = count ? srcs[i].count_var : srcs[i].index_var;
        const char *val = var ? cluster_env_get(env, var) : NULL;
        int rc;

        if (!val)
            continue;
        rc = env_num(var, val, count ? 1 : 0, v, eb);
        if (rc != 0)
            return rc;
        snprintf(src_said, said_len, "%s=%s, %s", var, val, srcs[i].name);
        return 0;
    }
    return 0;
}

/* index < count, or an error naming both sources. */
static int check_pair(const char *what, const char *count_what, int64_t index, const char *isaid,
                      int64_t count, const char *csaid, errbuf_t *eb)
{
    if (index >= 0 && index < count)
        return 0;
    return errbuf_set(eb, ERR_CONFIG,
                      "%s %lld (from %s) is not below %s %lld (from %s): give both from one "
                      "place (--%s and --%s, or the cluster manager's variables)",
                      what, (long long)index, isaid, count_what, (long long)count, csaid, what,
                      count_what);
}

int cluster_env_worker(char *const *env, conf_from_t rank_from, conf_from_t workers_from,
                       int64_t *rank, int64_t *workers, cluster_said_t *said, errbuf_t *eb)
{
    char rs[160], ws[160];
    int rc;

    rc = resolve(env, worker_srcs, NSRC(worker_srcs), 0, rank_from, rank, rs, sizeof(rs), eb);
    if (rc == 0)
        rc = resolve(env, worker_srcs, NSRC(worker_srcs), 1, workers_from, workers, ws, sizeof(ws),
                     eb);
    if (rc != 0)
        return rc;
    if (rank_from == CONF_FROM_DEFAULT && workers_from == CONF_FROM_DEFAULT &&
        strcmp(ws, "default") == 0 && strcmp(rs, "default") != 0)
        return errbuf_set(eb, ERR_CONFIG,
                          "rank %lld comes from the environment (%s) but nothing gives the "
                          "number of workers: set --workers, [cluster] workers in the config, or "
                          "FUNNEL_WORKERS",
                          (long long)*rank, rs);
    rc = check_pair("rank", "workers", *rank, rs, *workers, ws, eb);
    if (rc != 0)
        return rc;
    if (said)
        snprintf(said->line, sizeof(said->line), "rank %lld (%s) of %lld workers (%s)",
                 (long long)*rank, rs, (long long)*workers, ws);
    return 0;
}

/* The ordinal of a StatefulSet pod name ("funnel-ps-3" -> 3), or -1. */
static int64_t host_ordinal(const char *host)
{
    const char *dash = strrchr(host, '-');
    uint64_t v;

    if (!dash || dash == host || parse_uint(dash + 1, strlen(dash + 1), ID_MAX, &v) != 0)
        return -1;
    return (int64_t)v;
}

int cluster_env_shard(char *const *env, const char *hostname, conf_from_t shard_from,
                      conf_from_t shards_from, int64_t *shard, int64_t *shards,
                      cluster_said_t *said, errbuf_t *eb)
{
    char is[300], cs[160], hbuf[256];
    int rc;

    rc = resolve(env, shard_srcs, NSRC(shard_srcs), 0, shard_from, shard, is, sizeof(is), eb);
    if (rc == 0)
        rc = resolve(env, shard_srcs, NSRC(shard_srcs), 1, shards_from, shards, cs, sizeof(cs), eb);
    if (rc != 0)
        return rc;
    if (strcmp(is, "default") == 0 && cluster_env_get(env, "KUBERNETES_SERVICE_HOST")) {
        if (!hostname) {
            if (gethostname(hbuf, sizeof(hbuf)) != 0)
                return errbuf_set(eb, ERR_CONFIG, "gethostname: %s (give --shard)",
                                  strerror(errno));
            hbuf[sizeof(hbuf) - 1] = '\0';
            hostname = hbuf;
        }
        int64_t ord = host_ordinal(hostname);
        if (ord < 0)
            return errbuf_set(eb, ERR_CONFIG,
                              "in a Kubernetes pod without --shard or FUNNEL_SHARD, the shard "
                              "index is the hostname's StatefulSet ordinal, but '%s' does not end "
                              "in -N: run the shards as a StatefulSet or set FUNNEL_SHARD",
                              hostname);
        *shard = ord;
        snprintf(is, sizeof(is), "hostname %s, StatefulSet ordinal", hostname);
    }
    rc = check_pair("shard", "shards", *shard, is, *shards, cs, eb);
    if (rc != 0)
        return rc;
    if (said)
        snprintf(said->line, sizeof(said->line), "shard %lld (%s) of %lld shards (%s)",
                 (long long)*shard, is, (long long)*shards, cs);
    return 0;
}

/* ---- endpoint lists ---- */

/* Append text [p, p+n) to out (used bytes *o of len). */
static int put(char *out, size_t len, size_t *o, const char *p, size_t n, errbuf_t *eb)
{
    if (*o + n + 1 > len)
        return errbuf_set(eb, ERR_TOOBIG,
                          "ps: the expanded endpoint list is longer than %zu bytes (use shorter "
                          "host names, e.g. the headless Service's short name)",
                          len - 1);
    memcpy(out + *o, p, n);
    *o += n;
    out[*o] = '\0';
    return 0;
}

/* Expand one trimmed item [p, p+n) (at most one {A..B}) onto out. Returns
 * the number of endpoints added or a negative code. */
static int expand_item(const char *p, size_t n, char *out, size_t len, size_t *o, errbuf_t *eb)
{
    const char *lb = memchr(p, '{', n);
    const char *rb = lb ? memchr(lb, '}', n - (size_t)(lb - p)) : NULL;
    uint64_t a, b;
    int rc;

    if (n == 0)
        return errbuf_set(eb, ERR_CONFIG, "ps: empty endpoint (two commas, or a comma at an end)");
    if (!lb) {
        if (memchr(p, '}', n))
            return errbuf_set(eb, ERR_CONFIG, "ps: '%.*s': '}' without '{'", (int)n, p);
        if ((rc = put(out, len, o, ",", *o ? 1 : 0, eb)) != 0 ||
            (rc = put(out, len, o, p, n, eb)) != 0)
            return rc;
        return 1;
    }
    const char *dots = rb ? memmem(lb, (size_t)(rb - lb), "..", 2) : NULL;
    if (!rb || !dots || parse_uint(lb + 1, (size_t)(dots - lb - 1), ID_MAX, &a) != 0 ||
        parse_uint(dots + 2, (size_t)(rb - dots - 2), ID_MAX, &b) != 0)
        return errbuf_set(eb, ERR_CONFIG,
                          "ps: '%.*s': a range is written {A..B} with whole numbers A <= B "
                          "(e.g. tcp://funnel-ps-{0..3}.funnel-ps:7700)",
                          (int)n, p);
    if (a > b || b - a + 1 > CLUSTER_RANGE_MAX)
        return errbuf_set(eb, ERR_CONFIG, "ps: '%.*s': range {%llu..%llu} must go up (A <= B)",
                          (int)n, p, (unsigned long long)a, (unsigned long long)b);
    if (memchr(rb + 1, '{', n - (size_t)(rb + 1 - p)) ||
        memchr(rb + 1, '}', n - (size_t)(rb + 1 - p)))
        return errbuf_set(eb, ERR_CONFIG, "ps: '%.*s': at most one {A..B} range per endpoint",
                          (int)n, p);
    for (uint64_t i = a; i <= b; i++) {
        char num[24];
        int nn = snprintf(num, sizeof(num), "%llu", (unsigned long long)i);

        if ((rc = put(out, len, o, ",", *o ? 1 : 0, eb)) != 0 ||
            (rc = put(out, len, o, p, (size_t)(lb - p), eb)) != 0 ||
            (rc = put(out, len, o, num, (size_t)nn, eb)) != 0 ||
            (rc = put(out, len, o, rb + 1, n - (size_t)(rb + 1 - p), eb)) != 0)
            return rc;
    }
    return (int)(b - a + 1);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Expand a list text (items separated by commas or, with lines, newlines;
 * with lines, '#' comments) onto out. */
static int expand_text(const char *text, int lines, char *out, size_t len, size_t *o, errbuf_t *eb)
{
    const char *p = text;
    int total = 0;

    while (*p) {
        const char *end = p;
        while (*end && *end != ',' && !(lines && (*end == '\n' || *end == '#')))
            end++;
        const char *s = p, *e = end;
        while (s < e && is_blank(*s))
            s++;
        while (e > s && is_blank(e[-1]))
            e--;
        /* blank lines in a file are nothing; a blank between commas is an error */
        if (s < e || *end == ',' || (!lines && p != text)) {
            int n = expand_item(s, (size_t)(e - s), out, len, o, eb);
            if (n < 0)
                return n;
            total += n;
        }
        if (lines && *end == '#')
            while (*end && *end != '\n')
                end++;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p)
            return errbuf_set(eb, ERR_CONFIG, "ps: empty endpoint (a comma at the end)");
    }
    return total;
}

int cluster_env_expand(const char *spec, char *out, size_t len, errbuf_t *eb)
{
    size_t o = 0;
    int n;

    if (len == 0)
        return ERR_TOOBIG;
    out[0] = '\0';
    while (is_blank(*spec))
        spec++;
    if (spec[0] != '@')
        return spec[0] ? expand_text(spec, 0, out, len, &o, eb) : 0;

    FILE *f = fopen(spec + 1, "r");
    char text[65536];
    size_t got;

    if (!f)
        return errbuf_set(eb, ERR_IO, "ps: endpoint file %s: %s", spec + 1, strerror(errno));
    got = fread(text, 1, sizeof(text) - 1, f);
    int toolong = !feof(f);
    fclose(f);
    if (toolong)
        return errbuf_set(eb, ERR_TOOBIG, "ps: endpoint file %s is over %zu bytes", spec + 1,
                          sizeof(text) - 1);
    if (memchr(text, '\0', got))
        return errbuf_set(eb, ERR_CONFIG, "ps: endpoint file %s is not text", spec + 1);
    text[got] = '\0';
    n = expand_text(text, 1, out, len, &o, eb);
    if (n == 0)
        return errbuf_set(eb, ERR_CONFIG,
                          "ps: endpoint file %s lists no endpoint (one a line, or comma-separated)",
                          spec + 1);
    if (n < 0)
        return errbuf_prefix(eb, n, "%s", spec + 1);
    return n;
}

int cluster_env_endpoints(char *const *env, conf_from_t ps_from, char *ps, size_t len,
                          cluster_said_t *said, errbuf_t *eb)
{
    char spec[CONF_STR_MAX], src[64];
    const char *ev = cluster_env_get(env, "FUNNEL_PS");
    int n;

    snprintf(src, sizeof(src), "%s", from_name(ps_from));
    if (ps_from == CONF_FROM_DEFAULT && ev && ev[0]) {
        snprintf(spec, sizeof(spec), "%s", ev);
        snprintf(src, sizeof(src), "FUNNEL_PS");
    } else {
        snprintf(spec, sizeof(spec), "%s", ps);
    }
    n = cluster_env_expand(spec, ps, len, eb);
    if (n < 0)
        return errbuf_prefix(eb, n, "%s",
                             strcmp(src, "FUNNEL_PS") == 0 ? "environment FUNNEL_PS"
                             : ps_from == CONF_FROM_FLAG   ? "--ps"
                                                           : "[cluster] ps");
    if (said) {
        if (n == 0)
            snprintf(said->line, sizeof(said->line), "no shard endpoints (%s): in process", src);
        else
            snprintf(said->line, sizeof(said->line), "%d shard endpoint%s (%s%s%.*s)", n,
                     n == 1 ? "" : "s", src, strcmp(spec, ps) != 0 ? ", from " : "",
                     strcmp(spec, ps) != 0 ? 200 : 0, spec);
    }
    return n;
}
