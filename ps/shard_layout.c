/*
 * shard_layout.c - the data directory's recorded layout (see
 * shard_layout.h).
 */
#include "ps/shard_layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/optim.h"

#define LAYOUT_MAX (64 + MODEL_MAX_SLOTS * (MODEL_SLOT_NAME_MAX + 32))

/* The record for ms into buf; its length. */
static size_t layout_text(const model_spec_t *ms, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(
        buf, len, "funnel-layout 1\nemb_optimizer %s\ndense_optimizer %s\nslots %d\n",
        optim_name(ms->emb_opt.kind), optim_name(ms->dense_opt.kind), ms->nslots);
    for (int i = 0; i < ms->nslots && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "slot %d %s %d\n", i, ms->slot[i].name,
                              ms->slot[i].dim);
    return n < len ? n : len - 1;
}

/* Length of the line starting at p (without '\n'), within end. */
static size_t line_len(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? (size_t)(nl - p) : (size_t)(end - p);
}

/* The first line where saved and want differ, as an error. */
static int report(const char *saved, size_t sl, const char *want, size_t wl, const char *dir,
                  errbuf_t *eb)
{
    const char *a = saved, *ae = saved + sl, *b = want, *be = want + wl;

    while (a < ae && b < be) {
        size_t la = line_len(a, ae), lb = line_len(b, be);
        if (la != lb || memcmp(a, b, la) != 0)
            return errbuf_set(eb, ERR_MISMATCH,
                              "data directory %s was made with '%.*s'; the configuration gives "
                              "'%.*s': its rows hold that layout's state. Start with the "
                              "settings it was made with, or give a new --data (a checkpoint "
                              "of it cannot change its layout either)",
                              dir, (int)la, a, (int)lb, b);
        a += la + 1;
        b += lb + 1;
    }
    return errbuf_set(eb, ERR_MISMATCH,
                      "data directory %s was made with another slot list than the "
                      "configuration's: start with the settings it was made with, or give a new "
                      "--data",
                      dir);
}

int shard_layout_check(store_t *st, const model_spec_t *ms, const char *dir, errbuf_t *eb)
{
    static const char key[] = SHARD_LAYOUT_KEY;
    char want[LAYOUT_MAX];
    size_t wl = layout_text(ms, want, sizeof(want)), sl = 0;
    void *saved = NULL;
    int rc = store_get(st, key, sizeof(key) - 1, &saved, &sl, eb);

    if (rc == ERR_NOTFOUND) {
        rc = store_put(st, key, sizeof(key) - 1, want, wl, 1, eb);
        if (rc != 0)
            return errbuf_prefix(eb, rc, "data directory %s: record its layout", dir);
        LOG_INFO("data directory %s: layout recorded (optimizers %s/%s, %d slots)", dir,
                 optim_name(ms->emb_opt.kind), optim_name(ms->dense_opt.kind), ms->nslots);
        return 0;
    }
    if (rc != 0)
        return errbuf_prefix(eb, rc, "data directory %s: read its layout", dir);
    if (sl < 16 || memcmp(saved, "funnel-layout 1\n", 16) != 0)
        rc =
            errbuf_set(eb, ERR_CORRUPT, "data directory %s: unreadable layout record %s", dir, key);
    else if (sl != wl || memcmp(saved, want, wl) != 0)
        rc = report(saved, sl, want, wl, dir, eb);
    free(saved);
    return rc;
}
