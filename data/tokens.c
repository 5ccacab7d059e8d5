/*
 * tokens.c - reason texts, the slot table and the weight rule shared by
 * the log format parsers. See tokens.h.
 */
#include "data/tokens.h"

#include <math.h>

#include "common/parse.h"

static const char *const reason_text[TOKENS_NREASONS] = {"none",
#define X(name, text) text,
                                                         TOKENS_REASONS(X)
#undef X
};

const char *tokens_reason_text(int reason)
{
    return reason >= 0 && reason < TOKENS_NREASONS ? reason_text[reason] : "unknown reason";
}

void tokens_slots_init(tokens_slots_t *t, const model_spec_t *ms)
{
    memset(t->bucket, -1, sizeof(t->bucket));
    t->ms = ms;
    t->seen = NULL;
    t->seen_ctx = NULL;
    t->unknown = NULL;
    t->unknown_ctx = NULL;
    for (int s = 0; s < ms->nslots; s++) {
        const char *name = ms->slot[s].name;
        size_t len = strlen(name);
        uint32_t h = TOKENS_SLOT_HASH0, i;

        for (size_t k = 0; k < len; k++)
            h = tokens_slot_hash_step(h, (unsigned char)name[k]);
        for (i = h & (TOKENS_SLOT_TABLE - 1); t->bucket[i] >= 0;
             i = (i + 1) & (TOKENS_SLOT_TABLE - 1))
            ;
        t->bucket[i] = (int16_t)s;
        t->len[s] = (uint8_t)len;
    }
}

int tokens_parse_weight(const char *p, size_t len, float *w)
{
    double v;

    if (parse_double(p, len, &v) != 0)
        return ERR_PARSE;
    *w = (float)v;
    return isfinite(*w) ? 0 : ERR_PARSE;
}
