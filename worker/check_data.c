/*
 * check_data.c - the check-data report. See check_data.h.
 *
 * Distinct values are counted per slot with a set of 64-bit keys (open
 * addressing, linear probing, at most half full; key 0 is kept aside as a
 * flag because 0 marks an empty bucket). Keys are hashes already, so the
 * bucket is taken from their high bits after one multiply.
 */
#include "worker/check_data.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/keydict.h"
#include "common/model_conf.h"
#include "data/reader.h"
#include "data/slotuse.h"
#include "data/tokens.h"

#define CHECK_BATCH 4096 /* rows per batch */

typedef struct keyset {
    uint64_t *key; /* cap buckets, 0 = empty */
    size_t cap;    /* power of 2 */
    size_t n;      /* distinct nonzero keys */
    int has_zero;  /* key 0 was seen */
} keyset_t;

typedef struct slot_count {
    uint64_t tokens; /* tokens of the slot in accepted rows */
    keyset_t keys;   /* distinct keys */
} slot_count_t;

static size_t bucket_of(uint64_t key, size_t cap)
{
    return (size_t)((key * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & (cap - 1);
}

static int keyset_grow(keyset_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uint64_t *k = calloc(cap, sizeof(*k));

    if (!k)
        return ERR_NOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->key[i])
            continue;
        size_t b = bucket_of(s->key[i], cap);
        while (k[b])
            b = (b + 1) & (cap - 1);
        k[b] = s->key[i];
    }
    free(s->key);
    s->key = k;
    s->cap = cap;
    return 0;
}

static int keyset_add(keyset_t *s, uint64_t key)
{
    size_t b;

    if (key == 0) {
        s->has_zero = 1;
        return 0;
    }
    if ((s->n + 1) * 2 > s->cap && keyset_grow(s) != 0)
        return ERR_NOMEM;
    for (b = bucket_of(key, s->cap); s->key[b]; b = (b + 1) & (s->cap - 1))
        if (s->key[b] == key)
            return 0;
    s->key[b] = key;
    s->n++;
    return 0;
}

static uint64_t keyset_count(const keyset_t *s)
{
    return s->n + (uint64_t)s->has_zero;
}

/* "0.041234" or "n/a" for a rate with an empty denominator. */
static void print_rate(FILE *out, const char *name, uint64_t num, uint64_t den)
{
    if (den == 0)
        fprintf(out, "%-26s n/a\n", name);
    else
        fprintf(out, "%-26s %.6f  (%llu / %llu)\n", name, (double)num / (double)den,
                (unsigned long long)num, (unsigned long long)den);
}

static void print_reasons(FILE *out, const uint64_t *by_reason)
{
    for (int i = 1; i < TOKENS_NREASONS; i++)
        if (by_reason[i])
            fprintf(out, "  %-40s %llu\n", tokens_reason_text(i), (unsigned long long)by_reason[i]);
}

static int print_report(FILE *out, const reader_t *rd, const model_spec_t *ms,
                        const slot_count_t *sc, const slotuse_t *su, const uint64_t labels[3],
                        int aliccp, errbuf_t *verdict)
{
    int rc;

    const reader_stats_t *st = reader_stats(rd);

    fprintf(out, "files: %d\n", reader_nfiles(rd));
    fprintf(out, "lines read: %llu\n", (unsigned long long)st->lines);
    fprintf(out, "accepted: %llu\n", (unsigned long long)st->accepted);
    fprintf(out, "rejected: %llu\n", (unsigned long long)st->rejected);
    print_reasons(out, st->by_reason);
    fprintf(out, "skipped (empty or comment): %llu\n", (unsigned long long)st->skipped);
    if (aliccp) {
        fprintf(out, "common-features rows: %llu\n", (unsigned long long)st->join_rows);
        fprintf(out, "common-features rejected: %llu\n", (unsigned long long)st->join_rejected);
        print_reasons(out, st->join_by_reason);
    }
    fprintf(out, "%-22s %14s %14s\n", "slot", "tokens", "distinct");
    for (int s = 0; s < ms->nslots; s++)
        fprintf(out, "  %-20s %14llu %14llu\n", ms->slot[s].name, (unsigned long long)sc[s].tokens,
                (unsigned long long)keyset_count(&sc[s].keys));
    fprintf(out, "undeclared-slot tokens: %llu\n", (unsigned long long)st->unknown_slot_tokens);
    rc = slotuse_print(su, out);
    if (rc != 0)
        return rc;
    fprintf(out, "impressions: %llu\n", (unsigned long long)st->accepted);
    fprintf(out, "clicks: %llu\n", (unsigned long long)labels[0]);
    fprintf(out, "actions: %llu\n", (unsigned long long)labels[1]);
    fprintf(out, "buys: %llu\n", (unsigned long long)labels[2]);
    print_rate(out, "CTR (click/impression):", labels[0], st->accepted);
    print_rate(out, "action/click:", labels[1], labels[0]);
    print_rate(out, "buy/click:", labels[2], labels[0]);
    print_rate(out, "buy/impression:", labels[2], st->accepted);
    rc = slotuse_verdict(su, verdict);
    if (rc != 0)
        fprintf(out, "slots: %s\n", verdict->msg);
    if (st->rejected || st->join_rejected)
        fprintf(out, "result: REJECTED LINES (%llu)%s\n",
                (unsigned long long)(st->rejected + st->join_rejected),
                rc != 0 ? ", SLOTS DO NOT FIT THE LOG" : "");
    else if (rc != 0)
        fprintf(out, "result: SLOTS DO NOT FIT THE LOG\n");
    else
        fprintf(out, "result: ok\n");
    return rc != 0 ? 1 : 0;
}

/* Add one batch's labels, token counts and keys. */
static int count_batch(const batch_t *b, slot_count_t *sc, slotuse_t *su, uint64_t labels[3])
{
    slotuse_add_batch(su, b);
    for (size_t i = 0; i < b->n; i++) {
        labels[0] += b->click[i];
        labels[1] += b->action[i];
        labels[2] += b->buy[i];
    }
    for (int s = 0; s < b->nslots; s++) {
        sc[s].tokens += b->slot[s].nnz;
        for (size_t k = 0; k < b->slot[s].nnz; k++)
            if (keyset_add(&sc[s].keys, b->slot[s].keys[k]) != 0)
                return ERR_NOMEM;
    }
    return 0;
}

int check_data_run(const worker_conf_t *wc, char *const *paths, int npaths, FILE *out, errbuf_t *eb)
{
    model_spec_t ms;
    reader_opts_t o;
    reader_t *rd = NULL;
    slot_count_t *sc = NULL;
    keydict_t *keys = NULL;
    slotuse_t *su = NULL;
    slotuse_policy_t policy = {(int)wc->allow_unknown_slots, (int)wc->allow_unused_slots, 0,
                               wc->format == READER_ALICCP};
    uint64_t labels[3] = {0, 0, 0};
    batch_t b;
    errbuf_t verdict;
    int rc, batch_ok = 0, slots_bad;

    rc = model_spec_from_conf(&ms, &wc->model, eb);
    if (rc != 0)
        return rc;
    memset(&o, 0, sizeof(o));
    o.format = wc->format;
    o.report_rejects = (int)wc->report_rejects;
    o.rank = 0;
    o.workers = 1;
    if (*wc->key_dict.s) {
        keys = keydict_new(&ms, (size_t)wc->key_dict_max);
        if (!keys) {
            rc = errbuf_set(eb, ERR_NOMEM, "check-data: out of memory");
            goto done;
        }
        o.on_token = keydict_add_cb;
        o.on_token_ctx = keys;
    }
    su = slotuse_new(&ms, &policy);
    if (!su) {
        rc = errbuf_set(eb, ERR_NOMEM, "check-data: out of memory");
        goto done;
    }
    o.on_unknown = slotuse_unknown_cb;
    o.on_unknown_ctx = su;
    rc = reader_open(&rd, &ms, &o, paths, npaths, eb);
    if (rc != 0)
        goto done;
    sc = calloc((size_t)ms.nslots, sizeof(*sc));
    if (!sc || batch_init(&b, ms.nslots, CHECK_BATCH) != 0) {
        rc = errbuf_set(eb, ERR_NOMEM, "check-data: out of memory");
        goto done;
    }
    batch_ok = 1;
    while ((rc = reader_next_batch(rd, &b, CHECK_BATCH, eb)) == 0)
        if (count_batch(&b, sc, su, labels) != 0) {
            rc = errbuf_set(eb, ERR_NOMEM, "check-data: out of memory for distinct keys");
            goto done;
        }
    if (rc != ERR_EOF)
        goto done;
    slots_bad = print_report(out, rd, &ms, sc, su, labels, wc->format == READER_ALICCP, &verdict);
    if (slots_bad < 0) {
        rc = errbuf_set(eb, slots_bad, "check-data: out of memory");
        goto done;
    }
    if (keys) {
        char line[1024];
        rc = keydict_write(keys, wc->key_dict.s, eb);
        if (rc != 0)
            goto done;
        keydict_summary(keys, wc->key_dict.s, line, sizeof(line));
        fprintf(out, "%s\n", line);
    }
    fflush(out);
    rc = slots_bad || reader_stats(rd)->rejected || reader_stats(rd)->join_rejected ? 1 : 0;
done:
    if (batch_ok)
        batch_release(&b);
    for (int s = 0; sc && s < ms.nslots; s++)
        free(sc[s].keys.key);
    free(sc);
    reader_destroy(&rd);
    keydict_destroy(&keys);
    slotuse_destroy(&su);
    return rc;
}
