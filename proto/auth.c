/*
 * auth.c - the allow-list, the per-request rule and the listen rule. See
 * auth.h.
 */
#include "proto/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define LINE_MAX_AUTH 1024

static int name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= AUTH_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return 1;
}

static int parse_rank(const char *s, const char *end, uint32_t *out)
{
    uint64_t v = 0;

    if (s == end)
        return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > 65535)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* "0-3,7" or "*" into k. */
static int parse_ranks(auth_key_t *k, const char *s)
{
    if (strcmp(s, "*") == 0) {
        k->any_rank = 1;
        return 0;
    }
    while (*s) {
        const char *comma = strchr(s, ','), *end = comma ? comma : s + strlen(s);
        const char *dash = memchr(s, '-', (size_t)(end - s));
        uint32_t lo, hi;
        if (k->nranges == AUTH_MAX_RANGES)
            return -1;
        if (parse_rank(s, dash ? dash : end, &lo) != 0)
            return -1;
        hi = lo;
        if (dash && parse_rank(dash + 1, end, &hi) != 0)
            return -1;
        if (hi < lo)
            return -1;
        k->lo[k->nranges] = lo;
        k->hi[k->nranges] = hi;
        k->nranges++;
        if (!comma)
            break;
        s = comma + 1;
        if (!*s)
            return -1;
    }
    return k->nranges > 0 ? 0 : -1;
}

/* One non-comment line into k; fields are split in place. */
static int parse_line(auth_key_t *k, char *line, const char *where, errbuf_t *eb)
{
    char *f[5], *save = NULL;
    int nf = 0;

    for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (t[0] == '#' && nf >= 3)
            break; /* a trailing comment (a key itself may hold '#') */
        if (nf == 4)
            return errbuf_set(eb, ERR_CONFIG, "%s: too many fields (ROLE PUBKEY NAME [RANKS])",
                              where);
        f[nf++] = t;
    }
    memset(k, 0, sizeof(*k));
    if (nf < 3)
        return errbuf_set(eb, ERR_CONFIG, "%s: expected ROLE PUBKEY NAME [RANKS]", where);
    if (strcmp(f[0], "worker") == 0)
        k->role = AUTH_WORKER;
    else if (strcmp(f[0], "admin") == 0)
        k->role = AUTH_ADMIN;
    else
        return errbuf_set(eb, ERR_CONFIG, "%s: role '%s': use worker or admin", where, f[0]);
    if (!curve_z85_valid(f[1], strlen(f[1])))
        return errbuf_set(eb, ERR_CONFIG,
                          "%s: '%s' is not a 40-character Z85 public key (the public-key value "
                          "of a .pub file from funnel-ps keygen)",
                          where, f[1]);
    memcpy(k->pub, f[1], CURVE_Z85_LEN + 1);
    if (!name_ok(f[2]))
        return errbuf_set(eb, ERR_CONFIG, "%s: name '%s': use 1..%d of A-Z a-z 0-9 _ . -", where,
                          f[2], AUTH_NAME_MAX - 1);
    snprintf(k->name, sizeof(k->name), "%s", f[2]);
    if (k->role == AUTH_ADMIN && nf == 4)
        return errbuf_set(eb, ERR_CONFIG, "%s: an admin key takes no RANKS (it may do anything)",
                          where);
    if (k->role == AUTH_WORKER && nf < 4)
        return errbuf_set(eb, ERR_CONFIG,
                          "%s: a worker key needs RANKS, the ranks it pushes as (e.g. 0-3,7; "
                          "* for any rank)",
                          where);
    if (nf == 4 && parse_ranks(k, f[3]) != 0)
        return errbuf_set(eb, ERR_CONFIG,
                          "%s: ranks '%s': use a list of ranks and ranges 0..65535 such as "
                          "0-3,7 (at most %d), or *",
                          where, f[3], AUTH_MAX_RANGES);
    return 0;
}

int auth_load(auth_t **out, const char *path, errbuf_t *eb)
{
    char line[LINE_MAX_AUTH], where[1100];
    auth_t *a;
    FILE *f;
    int ln = 0, rc = 0;
    size_t cap = 0;

    *out = NULL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    f = fopen(path, "r");
    if (!f) {
        rc = errbuf_set(eb, ERR_IO, "open allow-list %s: %s", path, strerror(errno));
        goto fail;
    }
    while (fgets(line, sizeof(line), f)) {
        char *p = line;
        ln++;
        snprintf(where, sizeof(where), "%s:%d", path, ln);
        if (!strchr(line, '\n') && !feof(f)) {
            rc = errbuf_set(eb, ERR_CONFIG, "%s: line too long", where);
            goto fail;
        }
        p += strspn(p, " \t\r\n");
        if (!*p || *p == '#')
            continue;
        if (a->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            auth_key_t *nk = realloc(a->keys, nc * sizeof(*nk));
            if (!nk) {
                rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
                goto fail;
            }
            a->keys = nk;
            cap = nc;
        }
        auth_key_t *k = &a->keys[a->n];
        rc = parse_line(k, p, where, eb);
        if (rc != 0)
            goto fail;
        for (size_t i = 0; i < a->n; i++) {
            if (strcmp(a->keys[i].pub, k->pub) == 0) {
                rc = errbuf_set(eb, ERR_CONFIG, "%s: key of '%s' is listed twice (also as '%s')",
                                where, k->name, a->keys[i].name);
                goto fail;
            }
            if (strcmp(a->keys[i].name, k->name) == 0) {
                rc = errbuf_set(eb, ERR_CONFIG, "%s: name '%s' is used twice", where, k->name);
                goto fail;
            }
        }
        a->n++;
    }
    if (ferror(f)) {
        rc = errbuf_set(eb, ERR_IO, "read %s: %s", path, strerror(errno));
        goto fail;
    }
    if (a->n == 0) {
        rc = errbuf_set(eb, ERR_CONFIG,
                        "%s lists no key: no client could connect (add lines ROLE PUBKEY NAME "
                        "[RANKS])",
                        path);
        goto fail;
    }
    fclose(f);
    *out = a;
    return 0;
fail:
    if (f)
        fclose(f);
    auth_destroy(&a);
    return rc;
}

void auth_destroy(auth_t **ap)
{
    auth_t *a = ap ? *ap : NULL;

    if (!a)
        return;
    free(a->keys);
    free(a);
    *ap = NULL;
}

long auth_find(const auth_t *a, const char *pub)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->keys[i].pub, pub) == 0)
            return (long)i;
    return -1;
}

const auth_key_t *auth_key_of(const auth_t *a, const char *user_id)
{
    char *end;
    unsigned long i;

    if (!a || !user_id || *user_id < '0' || *user_id > '9')
        return NULL;
    errno = 0;
    i = strtoul(user_id, &end, 10);
    if (errno || *end || i >= a->n)
        return NULL;
    return &a->keys[i];
}

int auth_has_rank(const auth_key_t *k, uint32_t rank)
{
    if (k->any_rank)
        return 1;
    for (int i = 0; i < k->nranges; i++)
        if (rank >= k->lo[i] && rank <= k->hi[i])
            return 1;
    return 0;
}

static int denied(const auth_key_t *k, const char *what, errbuf_t *eb)
{
    return errbuf_set(eb, ERR_DENIED, "worker key '%s' may not %s (admin keys may)", k->name, what);
}

static int rank_denied(const auth_key_t *k, const char *what, uint32_t rank, errbuf_t *eb)
{
    return errbuf_set(eb, ERR_DENIED,
                      "worker key '%s' may not %s as rank %u: its ranks in the allow-list do "
                      "not include it",
                      k->name, what, rank);
}

int auth_allow(const auth_key_t *k, const msg_t *m, int dense_initialized, errbuf_t *eb)
{
    if (!k)
        return errbuf_set(eb, ERR_DENIED, "no authenticated key for this request");
    if (k->role == AUTH_ADMIN)
        return 0;
    switch (m->hdr.type) {
    case MSG_HELLO:
    case MSG_PULL:
    case MSG_PULL_DENSE:
    case MSG_ROWS_GET:
    case MSG_STATS: return 0;
    case MSG_PUSH:
        if (m->u.rows.flags & MSG_F_ASSIGN)
            return denied(k, "assign rows", eb);
        if (!auth_has_rank(k, m->hdr.sender))
            return rank_denied(k, "push", m->hdr.sender, eb);
        return 0;
    case MSG_PUSH_DENSE:
        if ((m->u.dense.flags & MSG_F_ASSIGN) && dense_initialized)
            return denied(k, "assign the dense range once it is initialized", eb);
        if (!auth_has_rank(k, m->hdr.sender))
            return rank_denied(k, "push", m->hdr.sender, eb);
        return 0;
    case MSG_PROGRESS_SET:
    case MSG_PROGRESS_GET:
        if (!auth_has_rank(k, m->u.progress.rank))
            return rank_denied(k, "set or read the progress", m->u.progress.rank, eb);
        return 0;
    default: {
        char what[64];
        snprintf(what, sizeof(what), "send %s", msg_type_name(m->hdr.type));
        return denied(k, what, eb);
    }
    }
}

int auth_endpoint_is_local(const char *ep)
{
    const char *host;
    size_t hl;

    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return 1;
    if (strncmp(ep, "tcp://", 6) != 0)
        return 0;
    host = ep + 6;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        return close && close - host == 4 && memcmp(host, "[::1]", 5) == 0 && close[1] == ':';
    }
    hl = strcspn(host, ":");
    if (host[hl] != ':')
        return 0;
    if (hl == 9 && memcmp(host, "localhost", 9) == 0)
        return 1;
    /* 127.a.b.c: four dotted decimal parts, the first 127 (an interface
     * name or a host name is not local: it may resolve to anything) */
    if (hl < 4 || memcmp(host, "127.", 4) != 0)
        return 0;
    int parts = 2, digits = 0, val = 0; /* "127." was the first */
    for (size_t i = 4; i < hl; i++) {
        char ch = host[i];
        if (ch == '.') {
            if (!digits)
                return 0;
            parts++;
            digits = val = 0;
        } else if (ch >= '0' && ch <= '9') {
            val = val * 10 + (ch - '0');
            if (++digits > 3 || val > 255)
                return 0;
        } else {
            return 0;
        }
    }
    return parts == 4 && digits > 0;
}

int auth_check_listen(const char *endpoint, int keyed, int insecure, errbuf_t *eb)
{
    if (keyed || auth_endpoint_is_local(endpoint))
        return 0;
    if (insecure) {
        LOG_WARN("INSECURE: listening on %s without keys: anyone who can reach it can read, "
                 "rewrite, checkpoint and stop this shard (--insecure). Use CURVE keys: "
                 "funnel-ps keygen --out DIR/NAME, then curve_secret_key and curve_allow in [ps]",
                 endpoint);
        return 0;
    }
    return errbuf_set(eb, ERR_CONFIG,
                      "--listen %s is reachable from other machines and this shard has no keys: "
                      "anyone could stop or rewrite it. Make keys with `funnel-ps keygen --out "
                      "DIR/shard` (and one per client), then set [ps] curve_secret_key = "
                      "DIR/shard.key and curve_allow = FILE listing the clients' public keys; "
                      "or listen on tcp://127.0.0.1:PORT or ipc://PATH; or pass --insecure to "
                      "serve without authentication anyway",
                      endpoint);
}
