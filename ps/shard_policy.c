/*
 * shard_policy.c - the recorded admission and expiry of a shard's data
 * (see shard_policy.h).
 */
#include "ps/shard_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define POLICY_HEAD "funnel-policy 1\n"
#define POLICY_MAX (32 + MODEL_MAX_SLOTS * (MODEL_SLOT_NAME_MAX + 48))

/* The record for ms into buf; its length. */
static size_t policy_text(const model_spec_t *ms, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "%s", POLICY_HEAD);

    for (int i = 0; i < ms->nslots && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "slot %s admit_min %d expire_days %d\n",
                              ms->slot[i].name, ms->slot[i].admit_min, ms->slot[i].expire_days);
    return n < len ? n : len - 1;
}

/* Find slot name's line in the NUL-terminated record; its values. */
static int recorded(const char *rec, const char *name, int *admit, int *expire)
{
    char nm[MODEL_SLOT_NAME_MAX];

    for (const char *p = rec; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        int a, e;
        if (sscanf(p, "slot %63s admit_min %d expire_days %d", nm, &a, &e) == 3 &&
            !strcmp(nm, name)) {
            *admit = a;
            *expire = e;
            return 1;
        }
    }
    return 0;
}

int shard_policy_check(store_t *st, const model_spec_t *ms, const char *dir, errbuf_t *eb)
{
    static const char key[] = SHARD_POLICY_KEY;
    char want[POLICY_MAX];
    size_t wl = policy_text(ms, want, sizeof(want)), sl = 0;
    void *saved = NULL;
    char *rec = NULL;
    int changed = 0;
    int rc = store_get(st, key, sizeof(key) - 1, &saved, &sl, eb);

    if (rc != 0 && rc != ERR_NOTFOUND)
        return errbuf_prefix(eb, rc, "data directory %s: read its admission and expiry", dir);
    if (rc == 0 && sl == wl && memcmp(saved, want, wl) == 0) {
        free(saved);
        return 0; /* as last time */
    }
    if (rc == 0 && (rec = malloc(sl + 1)) != NULL) {
        memcpy(rec, saved, sl);
        rec[sl] = '\0';
        if (strncmp(rec, POLICY_HEAD, strlen(POLICY_HEAD)) != 0) {
            LOG_WARN("data directory %s: unreadable %s record, replaced", dir, key);
            rec[0] = '\0';
        }
    }
    free(saved);
    for (int i = 0; rec && i < ms->nslots; i++) {
        const slot_spec_t *s = &ms->slot[i];
        int a, e;
        if (!recorded(rec, s->name, &a, &e))
            continue;
        if (a != s->admit_min) {
            LOG_WARN("ADMISSION CHANGED: data directory %s was last served with admit_min %d for "
                     "slot '%s'; this start gives %d (slot_admit / admit_min_count): new keys of "
                     "'%s' now need %d sightings before they get a row. If that is not meant, "
                     "stop and start with '%s:%d' in slot_admit",
                     dir, a, s->name, s->admit_min, s->name, s->admit_min, s->name, a);
            changed++;
        }
        if (e != s->expire_days) {
            char now[96];
            if (s->expire_days)
                snprintf(now, sizeof(now), "deletes rows unseen for %d days", s->expire_days);
            else
                snprintf(now, sizeof(now), "deletes none (0: never)");
            LOG_WARN("EXPIRY CHANGED: data directory %s was last served with expire_days %d for "
                     "slot '%s'; this start gives %d (slot_expire / expire_days): the next "
                     "begin-day --expire of '%s' %s. If that is not meant, stop and start with "
                     "'%s:%d' in slot_expire",
                     dir, e, s->name, s->expire_days, s->name, now, s->name, e);
            changed++;
        }
    }
    free(rec);
    rc = store_put(st, key, sizeof(key) - 1, want, wl, 1, eb);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "data directory %s: record its admission and expiry", dir);
    return changed;
}
