/*
 * keydict.c - the key dictionary. See keydict.h.
 *
 * An open-addressing hash set of (slot, key) entries (linear probing, at
 * most half full) whose values live in one growing text arena; entries
 * also keep first-seen order for writing.
 */
#include "common/keydict.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/afile.h"
#include "common/keyhash.h"

typedef struct entry {
    uint64_t key;
    uint32_t slot;
    uint32_t len; /* value bytes */
    size_t off;   /* value in the arena, NUL-terminated */
} entry_t;

struct keydict {
    model_spec_t ms;
    size_t max;     /* keys kept at most */
    entry_t *e;     /* n entries, first-seen order */
    size_t n, cap;  /* entries, allocated */
    uint32_t *tab;  /* hash table: entry index + 1, 0: empty */
    size_t tabsize; /* power of 2, >= 2 * cap */
    char *text;     /* the arena */
    size_t tlen, tcap;
    int capped;
    uint64_t unwritable;
};

static uint64_t mix(int slot, uint64_t key)
{
    uint64_t z = key ^ ((uint64_t)slot * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
    return z ^ (z >> 29);
}

keydict_t *keydict_new(const model_spec_t *ms, size_t max)
{
    keydict_t *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->ms = *ms;
    d->max = max ? max : 1;
    return d;
}

void keydict_destroy(keydict_t **pd)
{
    keydict_t *d = *pd;

    if (!d)
        return;
    free(d->e);
    free(d->tab);
    free(d->text);
    free(d);
    *pd = NULL;
}

/* The table position holding (slot, key), or the empty one where it goes. */
static size_t probe(const keydict_t *d, int slot, uint64_t key)
{
    size_t mask = d->tabsize - 1, i = (size_t)mix(slot, key) & mask;

    while (d->tab[i]) {
        const entry_t *x = &d->e[d->tab[i] - 1];
        if (x->key == key && x->slot == (uint32_t)slot)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

/* Room for one more entry: grow the entries and rehash when half full. */
static int reserve(keydict_t *d)
{
    if (d->n < d->cap)
        return 0;
    size_t cap = d->cap ? d->cap * 2 : 1024;
    entry_t *e = realloc(d->e, cap * sizeof(*e));
    if (!e)
        return ERR_NOMEM;
    d->e = e;
    uint32_t *tab = calloc(cap * 2, sizeof(*tab));
    if (!tab)
        return ERR_NOMEM;
    free(d->tab);
    d->tab = tab;
    d->tabsize = cap * 2;
    d->cap = cap;
    for (size_t k = 0; k < d->n; k++)
        d->tab[probe(d, (int)d->e[k].slot, d->e[k].key)] = (uint32_t)(k + 1);
    return 0;
}

static int put_text(keydict_t *d, const char *s, size_t len, size_t *off)
{
    if (d->tlen + len + 1 > d->tcap) {
        size_t cap = d->tcap ? d->tcap : 65536;
        while (cap < d->tlen + len + 1)
            cap *= 2;
        char *t = realloc(d->text, cap);
        if (!t)
            return ERR_NOMEM;
        d->text = t;
        d->tcap = cap;
    }
    *off = d->tlen;
    memcpy(d->text + d->tlen, s, len);
    d->text[d->tlen + len] = '\0';
    d->tlen += len + 1;
    return 0;
}

int keydict_add(keydict_t *d, int slot, const char *value, size_t len, uint64_t key)
{
    size_t i, off;

    if (d->tabsize && d->tab[probe(d, slot, key)])
        return 0;
    if (memchr(value, '\t', len) || memchr(value, '\n', len) || memchr(value, '\0', len) ||
        len > UINT32_MAX || strpbrk(d->ms.slot[slot].name, "\t\n")) {
        d->unwritable++;
        return 0;
    }
    if (d->n >= d->max || d->n >= UINT32_MAX - 1) {
        d->capped = 1;
        return 0;
    }
    if (reserve(d) != 0 || put_text(d, value, len, &off) != 0)
        return ERR_NOMEM;
    i = probe(d, slot, key);
    d->e[d->n] = (entry_t){key, (uint32_t)slot, (uint32_t)len, off};
    d->tab[i] = (uint32_t)++d->n;
    return 0;
}

int keydict_add_cb(void *d, int slot, const char *value, size_t len, uint64_t key)
{
    return keydict_add(d, slot, value, len, key);
}

void keydict_summary(const keydict_t *d, const char *path, char *buf, size_t len)
{
    int n = snprintf(buf, len, "key dictionary: %zu keys written to %s", d->n, path);

    if (n >= 0 && (size_t)n < len && d->capped)
        n += snprintf(buf + n, len - (size_t)n,
                      " - capped at key_dict_max = %zu: keys first seen later are not in it "
                      "(raise --key_dict_max to keep them all)",
                      d->max);
    if (n >= 0 && (size_t)n < len && d->unwritable)
        snprintf(buf + n, len - (size_t)n,
                 "; %llu values with a tab or newline left out (the format cannot hold them)",
                 (unsigned long long)d->unwritable);
}

size_t keydict_size(const keydict_t *d)
{
    return d->n;
}

int keydict_capped(const keydict_t *d)
{
    return d->capped;
}

uint64_t keydict_unwritable(const keydict_t *d)
{
    return d->unwritable;
}

const char *keydict_find(const keydict_t *d, int slot, uint64_t key)
{
    if (!d || !d->tabsize)
        return NULL;
    uint32_t k = d->tab[probe(d, slot, key)];
    return k ? d->text + d->e[k - 1].off : NULL;
}

int keydict_write(const keydict_t *d, const char *path, errbuf_t *eb)
{
    afile_t af;
    int rc = afile_open(&af, path, eb);

    if (rc != 0)
        return errbuf_prefix(eb, rc, "key dictionary");
    fprintf(af.f, "%s\n", KEYDICT_HEADER);
    for (size_t i = 0; i < d->n; i++) {
        const entry_t *x = &d->e[i];
        fprintf(af.f, "%s\t%016" PRIx64 "\t", d->ms.slot[x->slot].name, x->key);
        fwrite(d->text + x->off, 1, x->len, af.f);
        fputc('\n', af.f);
    }
    rc = afile_commit(&af, eb);
    return rc != 0 ? errbuf_prefix(eb, rc, "key dictionary") : 0;
}

/* One line (without its newline) of a dictionary file into d. */
static int load_line(keydict_t *d, char *line, const char *path, uint64_t lineno, errbuf_t *eb)
{
    char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL, *end;
    int slot;
    uint64_t key;

    if (!t2 || t2 - t1 != 17)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s:%" PRIu64 ": not slot<TAB>key<TAB>value (a key dictionary "
                          "written by check-data or train --key_dict?)",
                          path, lineno);
    key = strtoull(t1 + 1, &end, 16);
    if (end != t2)
        return errbuf_set(eb, ERR_CORRUPT, "%s:%" PRIu64 ": the key is not 16 hex digits", path,
                          lineno);
    slot = model_spec_slot(&d->ms, line, (size_t)(t1 - line));
    if (slot < 0)
        return 0; /* a slot this model does not have */
    size_t vlen = strlen(t2 + 1);
    if (keyhash_value(d->ms.slot[slot].seed, t2 + 1, vlen) != key)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s:%" PRIu64 ": key %016" PRIx64 " is not the hash of '%s' in slot "
                          "'%s' (the file is damaged or not a funnel key dictionary)",
                          path, lineno, key, t2 + 1, d->ms.slot[slot].name);
    return keydict_add(d, slot, t2 + 1, vlen, key) != 0
               ? errbuf_set(eb, ERR_NOMEM, "%s: out of memory", path)
               : 0;
}

int keydict_load(keydict_t **out, const model_spec_t *ms, const char *path, errbuf_t *eb)
{
    FILE *f = fopen(path, "r");
    keydict_t *d = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    int rc = 0;

    *out = NULL;
    if (!f)
        return errbuf_set(eb, ERR_IO, "key dictionary %s: %s", path, strerror(errno));
    d = keydict_new(ms, SIZE_MAX);
    if (!d)
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        rc = load_line(d, line, path, lineno, eb);
    }
    if (rc == 0 && ferror(f))
        rc = errbuf_set(eb, ERR_IO, "key dictionary %s: read error", path);
    free(line);
    fclose(f);
    if (rc != 0)
        keydict_destroy(&d);
    *out = d;
    return rc;
}
