/*
 * slotuse.c - slot usage counters and the slot-list verdict. See slotuse.h.
 */
#include "data/slotuse.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_CAP (2 * SLOTUSE_MAX_NAMES) /* buckets: at most half full */

typedef struct name_count {
    char *name;      /* NULL: empty bucket */
    uint32_t hash;   /* FNV-1a of the full name */
    size_t len;      /* bytes of the full name */
    uint64_t tokens; /* tokens seen */
} name_count_t;

struct slotuse {
    const model_spec_t *ms;
    slotuse_policy_t policy;
    uint64_t rows;      /* accepted rows counted */
    uint64_t *declared; /* ms->nslots token counts */
    name_count_t *name; /* TABLE_CAP buckets, allocated on the first name */
    int nnames;         /* names in the table */
    uint64_t unknown;   /* every undeclared token */
    uint64_t other;     /* undeclared tokens of names not in the table */
    int decided;        /* slotuse_train_check() has decided */
};

slotuse_t *slotuse_new(const model_spec_t *ms, const slotuse_policy_t *policy)
{
    slotuse_t *su = calloc(1, sizeof(*su));

    if (!su)
        return NULL;
    su->ms = ms;
    su->policy = *policy;
    su->declared = calloc((size_t)(ms->nslots > 0 ? ms->nslots : 1), sizeof(*su->declared));
    if (!su->declared) {
        free(su);
        return NULL;
    }
    return su;
}

void slotuse_destroy(slotuse_t **sup)
{
    slotuse_t *su = sup ? *sup : NULL;

    if (!su)
        return;
    for (int i = 0; su->name && i < TABLE_CAP; i++)
        free(su->name[i].name);
    free(su->name);
    free(su->declared);
    free(su);
    *sup = NULL;
}

static uint32_t fnv(const char *p, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

/* Same name as bucket e: the kept prefix and the full length must match. */
static int same(const name_count_t *e, const char *name, size_t len, uint32_t h)
{
    size_t kept = len < SLOTUSE_NAME_MAX ? len : SLOTUSE_NAME_MAX - 1;

    return e->hash == h && e->len == len && memcmp(e->name, name, kept) == 0;
}

void slotuse_unknown_cb(void *ctx, const char *name, size_t len)
{
    slotuse_t *su = ctx;
    uint32_t h, i;

    if (su->decided) /* train decided already: no cost for the rest of the run */
        return;
    h = fnv(name, len);
    su->unknown++;
    if (!su->name && !(su->name = calloc(TABLE_CAP, sizeof(*su->name)))) {
        su->other++;
        return;
    }
    for (i = h & (TABLE_CAP - 1); su->name[i].name; i = (i + 1) & (TABLE_CAP - 1))
        if (same(&su->name[i], name, len, h)) {
            su->name[i].tokens++;
            return;
        }
    size_t kept = len < SLOTUSE_NAME_MAX ? len : SLOTUSE_NAME_MAX - 1;
    char *copy = su->nnames < SLOTUSE_MAX_NAMES ? malloc(kept + 1) : NULL;
    if (!copy) {
        su->other++;
        return;
    }
    memcpy(copy, name, kept);
    copy[kept] = '\0';
    su->name[i] = (name_count_t){copy, h, len, 1};
    su->nnames++;
}

void slotuse_add_batch(slotuse_t *su, const batch_t *b)
{
    su->rows += b->n;
    for (int s = 0; s < b->nslots && s < su->ms->nslots; s++)
        su->declared[s] += b->slot[s].nnz;
}

uint64_t slotuse_rows(const slotuse_t *su)
{
    return su->rows;
}

uint64_t slotuse_unknown_tokens(const slotuse_t *su)
{
    return su->unknown;
}

int slotuse_unused_slots(const slotuse_t *su)
{
    int n = 0;

    for (int s = 0; s < su->ms->nslots; s++)
        n += su->declared[s] == 0;
    return n;
}

/* Most tokens first (ties: smaller name first). */
static int by_tokens(const void *a, const void *b)
{
    const name_count_t *x = *(const name_count_t *const *)a, *y = *(const name_count_t *const *)b;

    if (x->tokens != y->tokens)
        return x->tokens > y->tokens ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The names in use sorted by_tokens (su->nnames of them), or NULL when
 * there are none or memory runs out. Caller frees. */
static const name_count_t **sorted_names(const slotuse_t *su)
{
    const name_count_t **v = su->nnames ? malloc((size_t)su->nnames * sizeof(*v)) : NULL;
    size_t n = 0;

    if (!v)
        return NULL;
    for (int i = 0; i < TABLE_CAP; i++)
        if (su->name[i].name)
            v[n++] = &su->name[i];
    qsort(v, n, sizeof(*v), by_tokens);
    return v;
}

/* "name" or "name..." (cut) into buf. */
static const char *shown(const name_count_t *e, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", e->name, e->len >= SLOTUSE_NAME_MAX ? "..." : "");
    return buf;
}

/* Append printf-style text to buf[cap] at *len, cutting at the end. */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t cap, size_t *len,
                                                         const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len >= cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

int slotuse_verdict(const slotuse_t *su, errbuf_t *eb)
{
    int unknown_bad = !su->policy.allow_unknown && su->unknown > 0;
    int unused = slotuse_unused_slots(su);
    int unused_bad = !su->policy.allow_unused && unused > 0;
    char msg[sizeof(eb->msg)], nb[SLOTUSE_NAME_MAX + 4];
    size_t len = 0;
    const name_count_t **idx;
    int listed = 0;

    if (su->rows == 0 || (!unknown_bad && !unused_bad))
        return 0;
    msg[0] = '\0';
    if (unknown_bad) {
        append(msg, sizeof(msg), &len, "%llu tokens of slots the configuration does not declare (",
               (unsigned long long)su->unknown);
        idx = sorted_names(su);
        for (; idx && listed < SLOTUSE_LIST_MAX && listed < su->nnames; listed++) {
            const name_count_t *e = idx[listed];
            append(msg, sizeof(msg), &len, "%s%s: %llu", listed ? ", " : "",
                   shown(e, nb, sizeof(nb)), (unsigned long long)e->tokens);
        }
        free((void *)idx);
        if (su->nnames > listed || su->other)
            append(msg, sizeof(msg), &len, "%s%d more slot name%s", listed ? ", and " : "",
                   su->nnames - listed + (su->other ? 1 : 0), "s");
        append(msg, sizeof(msg), &len,
               "): add them to 'slots'%s, or set allow_unknown_slots = true to ignore them",
               su->policy.aliccp ? " (conf/aliccp.conf declares Ali-CCP's 23 field ids)" : "");
    }
    if (unused_bad) {
        listed = 0;
        append(msg, sizeof(msg), &len, "%sdeclared slot%s without any token (",
               unknown_bad ? "; " : "", unused > 1 ? "s" : "");
        for (int s = 0; s < su->ms->nslots; s++)
            if (su->declared[s] == 0)
                append(msg, sizeof(msg), &len, "%s%s", listed++ ? ", " : "", su->ms->slot[s].name);
        append(msg, sizeof(msg), &len,
               "): check the slot names in the log against 'slots' and remove the missing ones, "
               "or set allow_unused_slots = true");
    }
    return errbuf_set(eb, ERR_CONFIG, "%s", msg);
}

int slotuse_train_check(slotuse_t *su, const batch_t *b, int rc, errbuf_t *eb)
{
    if (!su || su->decided || (rc != 0 && rc != ERR_EOF))
        return rc;
    if (rc == 0)
        slotuse_add_batch(su, b);
    if (rc == 0 && (su->policy.rows == 0 || su->rows < su->policy.rows))
        return rc;
    su->decided = 1;
    int vrc = slotuse_verdict(su, eb);
    if (vrc == 0)
        return rc;
    char msg[sizeof(eb->msg)];
    snprintf(msg, sizeof(msg), "%s", eb->msg);
    return errbuf_set(eb, vrc, "slots do not fit the log after its first %llu rows: %s",
                      (unsigned long long)su->rows, msg);
}

int slotuse_print(const slotuse_t *su, FILE *out)
{
    char nb[SLOTUSE_NAME_MAX + 4];
    int unused = slotuse_unused_slots(su);

    if (su->nnames || su->other)
        fprintf(out, "undeclared slots: %d (tokens as parsed, rejected lines included)\n",
                su->nnames + (su->other ? 1 : 0));
    if (su->nnames) {
        const name_count_t **idx = sorted_names(su);
        if (!idx)
            return ERR_NOMEM;
        for (int k = 0; k < su->nnames; k++) {
            const name_count_t *e = idx[k];
            fprintf(out, "  %-20s %14llu\n", shown(e, nb, sizeof(nb)),
                    (unsigned long long)e->tokens);
        }
        free((void *)idx);
    }
    if (su->other)
        fprintf(out, "  %-20s %14llu\n", "(other names)", (unsigned long long)su->other);
    if (unused) {
        int listed = 0;
        fprintf(out, "declared slots without tokens: %d (", unused);
        for (int s = 0; s < su->ms->nslots; s++)
            if (su->declared[s] == 0)
                fprintf(out, "%s%s", listed++ ? ", " : "", su->ms->slot[s].name);
        fprintf(out, ")\n");
    }
    return 0;
}
