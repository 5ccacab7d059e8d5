/*
 * tokens.h - what the parsers of the two log formats share (tsv1 in
 * reader.c, Ali-CCP in aliccp.c): the reasons a line is rejected, the
 * lookup of a feature's slot name among the declared slots, and how a
 * feature's weight text becomes a float.
 *
 * It reads no lines itself. Thread-safety: a slot table is built by one
 * thread and then only read; everything else is a pure function.
 *
 * NOTES ON THE DESIGN
 *
 * Slot names are found with a small open-addressing table (linear probing)
 * keyed by FNV-1a of the name. The hash step is exposed so that a parser
 * hashes a name while scanning for its end, and the lookup is static inline:
 * both run for every token of every line.
 *
 * Weights. FORMAT.md says a weight is a decimal float: the text is read by
 * parse_double() (strtod's value), then rounded to float, and must be
 * finite as a float. That double-then-float rounding is what funnel has
 * always done; it differs from strtof in the last bit for rare texts within
 * a hair of a float rounding boundary, so it stays.
 */
#ifndef FUNNEL_TOKENS_H
#define FUNNEL_TOKENS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "common/model_conf.h"

/* Why a line was rejected: X(name, text). */
#define TOKENS_REASONS(X)                                      \
    X(COLUMNS, "wrong column count")                           \
    X(LABEL, "label not 0/1")                                  \
    X(COMBO, "action or buy without click")                    \
    X(TOKEN, "malformed token")                                \
    X(WEIGHT, "unparsable weight")                             \
    X(TOOLONG, "line too long")                                \
    X(FEATNUM, "feature_num does not match the feature list")  \
    X(MD5, "md5 not in the common features")                   \
    X(DUPMD5, "md5 already in the common features")            \
    X(SWEIGHT, "bad sample weight (@w: a finite number >= 0)") \
    X(FIELD, "empty or repeated @w / @req field")

enum {
    TOKENS_R_NONE = 0, /* not a reason: the line is fine */
#define X(name, text) TOKENS_R_##name,
    TOKENS_REASONS(X)
#undef X
        TOKENS_NREASONS
};

/* Text of a TOKENS_R_* reason; "unknown reason" out of range. */
const char *tokens_reason_text(int reason);

/* What a parser found wrong, for the report: the reason's offending bytes. */
typedef struct tokens_bad {
    const char *p; /* into the line, or NULL */
    size_t len;    /* bytes */
} tokens_bad_t;

/* Point bad (if not NULL) at [p, p+len) and return reason. */
static inline int tokens_reject(tokens_bad_t *bad, const char *p, size_t len, int reason)
{
    if (bad) {
        bad->p = p;
        bad->len = len;
    }
    return reason;
}

#define TOKENS_SLOT_TABLE 1024 /* hash buckets, a power of 2 >= 4 * MODEL_MAX_SLOTS */

/* Told of each token of a declared slot as it is parsed (also in a line
 * rejected later): its slot, VALUE text and key. Nonzero means out of
 * memory. */
typedef int (*tokens_seen_fn)(void *ctx, int slot, const char *value, size_t len, uint64_t key);

/* Told of each token of an undeclared slot as it is parsed (also in a line
 * rejected later): the slot name's bytes (not NUL-terminated). */
typedef void (*tokens_unknown_fn)(void *ctx, const char *name, size_t len);

/* Slot name -> slot index, for the slots of one model_spec_t. */
typedef struct tokens_slots {
    const model_spec_t *ms;            /* names and seeds; must outlive the table */
    uint8_t len[MODEL_MAX_SLOTS];      /* bytes of each slot name */
    int16_t bucket[TOKENS_SLOT_TABLE]; /* slot index, -1: empty */
    tokens_seen_fn seen;               /* NULL (the default), or told of every token */
    void *seen_ctx;
    tokens_unknown_fn unknown; /* NULL (the default), or told of every undeclared token */
    void *unknown_ctx;
} tokens_slots_t;

/* Tell sl->seen (if set) of a token; 0 or ERR_NOMEM. */
static inline int tokens_tell(const tokens_slots_t *sl, int slot, const char *value, size_t len,
                              uint64_t key)
{
    return sl->seen && sl->seen(sl->seen_ctx, slot, value, len, key) != 0 ? ERR_NOMEM : 0;
}

/* Tell sl->unknown (if set) of a token of the undeclared slot name[0, len). */
static inline void tokens_tell_unknown(const tokens_slots_t *sl, const char *name, size_t len)
{
    if (sl->unknown)
        sl->unknown(sl->unknown_ctx, name, len);
}

/* Build the table for ms (at most MODEL_MAX_SLOTS slots). */
void tokens_slots_init(tokens_slots_t *t, const model_spec_t *ms);

/* FNV-1a step and start value, so a parser can hash a name while scanning it. */
#define TOKENS_SLOT_HASH0 2166136261u
static inline uint32_t tokens_slot_hash_step(uint32_t h, unsigned char c)
{
    return (h ^ c) * 16777619u;
}

/* Slot index of name[0, len) whose tokens_slot_hash_step() hash is h, or -1. */
static inline int tokens_slots_find(const tokens_slots_t *t, const char *name, size_t len,
                                    uint32_t h)
{
    for (uint32_t i = h & (TOKENS_SLOT_TABLE - 1);; i = (i + 1) & (TOKENS_SLOT_TABLE - 1)) {
        int s = t->bucket[i];
        if (s < 0)
            return -1;
        if (t->len[s] == len && memcmp(t->ms->slot[s].name, name, len) == 0)
            return s;
    }
}

/*
 * Parse a token weight occupying exactly [p, p+len) (no NUL needed): a
 * decimal float as parse_double() reads it, rounded to float, finite.
 * Returns 0 and *w, or ERR_PARSE.
 */
int tokens_parse_weight(const char *p, size_t len, float *w);

#endif
