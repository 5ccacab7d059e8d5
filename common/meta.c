/*
 * meta.c - META files of model and checkpoint directories. See meta.h.
 */
#include "common/meta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/afile.h"
#include "common/dirs.h"
#include "common/optim.h"

static const char *const model_names[] = {"esm2", "esmm", "naive"};

void meta_from_spec(meta_t *m, const model_spec_t *ms, int shards, int day, uint64_t dense_params)
{
    memset(m, 0, sizeof(*m));
    m->version = META_VERSION;
    m->model_type = ms->type;
    m->nslots = ms->nslots;
    for (int s = 0; s < ms->nslots; s++) {
        snprintf(m->slot[s], sizeof(m->slot[s]), "%s", ms->slot[s].name);
        m->dim[s] = ms->slot[s].dim;
    }
    m->nlayers = ms->nlayers;
    memcpy(m->layer, ms->layer, sizeof(m->layer));
    m->emb_opt = ms->emb_opt.kind;
    m->dense_opt = ms->dense_opt.kind;
    m->shards = shards;
    m->day = day;
    m->dense_params = dense_params;
    /* The digest covers what decides the layout of rows and weights. */
    XXH64_state_t *st = XXH64_createState();
    XXH64_reset(st, 0);
    XXH64_update(st, &m->model_type, sizeof(m->model_type));
    XXH64_update(st, &m->nslots, sizeof(m->nslots));
    for (int s = 0; s < m->nslots; s++) {
        XXH64_update(st, m->slot[s], strlen(m->slot[s]) + 1);
        XXH64_update(st, &m->dim[s], sizeof(int));
    }
    XXH64_update(st, &m->nlayers, sizeof(m->nlayers));
    XXH64_update(st, m->layer, sizeof(int) * (size_t)m->nlayers);
    XXH64_update(st, &m->emb_opt, sizeof(int));
    XXH64_update(st, &m->dense_opt, sizeof(int));
    m->digest = XXH64_digest(st);
    XXH64_freeState(st);
}

int meta_write(const char *dir, const meta_t *m, errbuf_t *eb)
{
    char buf[16384], path[DIRS_PATH_MAX];
    size_t n = 0;
    int rc;

#define PUT(...) n += (size_t)snprintf(buf + n, sizeof(buf) - n, __VA_ARGS__)
    PUT("%s %d\n", META_MAGIC, m->version);
    PUT("model %s\n", model_names[m->model_type]);
    PUT("slots %d\n", m->nslots);
    for (int s = 0; s < m->nslots; s++)
        PUT("slot %d %s %d\n", s, m->slot[s], m->dim[s]);
    PUT("towers ");
    for (int i = 0; i < m->nlayers; i++)
        PUT("%s%d", i ? "," : "", m->layer[i]);
    PUT("\nemb_optimizer %s\n", optim_name(m->emb_opt));
    PUT("dense_optimizer %s\n", optim_name(m->dense_opt));
    PUT("shards %d\nrouting xxh64-mod\nday %d\n", m->shards, m->day);
    PUT("dense_params %llu\n", (unsigned long long)m->dense_params);
    PUT("digest %016llx\n", (unsigned long long)m->digest);
#undef PUT
    if ((rc = dirs_path(path, sizeof(path), eb, "%s/%s", dir, META_FILE)) != 0)
        return rc;
    return afile_write(path, buf, n, eb);
}

static int optim_kind(const char *name)
{
    for (int k = 0; k < 4; k++)
        if (strcmp(optim_name(k), name) == 0)
            return k;
    return -1;
}

int meta_read(const char *dir, meta_t *m, errbuf_t *eb)
{
    char path[DIRS_PATH_MAX], line[512], word[128], name[128];
    FILE *f;
    int lineno = 0, rc = 0;

    memset(m, 0, sizeof(*m));
    if ((rc = dirs_path(path, sizeof(path), eb, "%s/%s", dir, META_FILE)) != 0)
        return rc;
    f = fopen(path, "r");
    if (!f)
        return errbuf_set(eb, errno == ENOENT ? ERR_NOTFOUND : ERR_IO,
                          "%s: %s (not a funnel model or checkpoint directory?)", path,
                          strerror(errno));
    while (fgets(line, sizeof(line), f)) {
        int a, b;
        unsigned long long u;
        lineno++;
        if (lineno == 1) {
            if (sscanf(line, "%127s %d", word, &a) != 2 || strcmp(word, META_MAGIC) != 0) {
                rc = errbuf_set(eb, ERR_CORRUPT, "%s: not a funnel META file", path);
                goto out;
            }
            if (a > META_VERSION) {
                rc = errbuf_set(eb, ERR_VERSION, "%s: format version %d is newer than %d", path, a,
                                META_VERSION);
                goto out;
            }
            m->version = a;
            continue;
        }
        if (sscanf(line, "slot %d %127s %d", &a, name, &b) == 3) {
            size_t len = strlen(name);
            if (a < 0 || a >= MODEL_MAX_SLOTS || len >= sizeof(m->slot[a]))
                goto bad;
            memcpy(m->slot[a], name, len + 1); /* fits: checked above */
            m->dim[a] = b;
        } else if (sscanf(line, "model %127s", word) == 1) {
            m->model_type = -1;
            for (int t = 0; t < 3; t++)
                if (strcmp(word, model_names[t]) == 0)
                    m->model_type = t;
            if (m->model_type < 0)
                goto bad;
        } else if (sscanf(line, "slots %d", &a) == 1) {
            if (a < 1 || a > MODEL_MAX_SLOTS)
                goto bad;
            m->nslots = a;
        } else if (sscanf(line, "towers %127s", word) == 1) {
            char *p = word;
            while (*p && m->nlayers < MODEL_MAX_LAYERS) {
                m->layer[m->nlayers++] = (int)strtol(p, &p, 10);
                if (*p == ',')
                    p++;
            }
        } else if (sscanf(line, "emb_optimizer %127s", word) == 1) {
            if ((m->emb_opt = optim_kind(word)) < 0)
                goto bad;
        } else if (sscanf(line, "dense_optimizer %127s", word) == 1) {
            if ((m->dense_opt = optim_kind(word)) < 0)
                goto bad;
        } else if (sscanf(line, "shards %d", &a) == 1) {
            m->shards = a;
        } else if (sscanf(line, "day %d", &a) == 1) {
            m->day = a;
        } else if (sscanf(line, "dense_params %llu", &u) == 1) {
            m->dense_params = u;
        } else if (sscanf(line, "digest %llx", &u) == 1) {
            m->digest = u;
        }
    }
    if (m->nslots == 0)
        rc = errbuf_set(eb, ERR_CORRUPT, "%s: no slots", path);
out:
    fclose(f);
    return rc;
bad:
    fclose(f);
    return errbuf_set(eb, ERR_CORRUPT, "%s:%d: cannot parse '%.*s'", path, lineno,
                      (int)strcspn(line, "\n"), line);
}

int meta_check(const meta_t *saved, const meta_t *running, const char *dir, errbuf_t *eb)
{
    if (saved->model_type != running->model_type)
        return errbuf_set(eb, ERR_MISMATCH, "%s holds a %s model, the configuration says %s", dir,
                          model_names[saved->model_type], model_names[running->model_type]);
    if (saved->nslots != running->nslots)
        return errbuf_set(eb, ERR_MISMATCH, "%s has %d slots, the configuration %d", dir,
                          saved->nslots, running->nslots);
    for (int s = 0; s < saved->nslots; s++) {
        if (strcmp(saved->slot[s], running->slot[s]) != 0)
            return errbuf_set(eb, ERR_MISMATCH, "%s: slot %d is '%s', the configuration says '%s'",
                              dir, s, saved->slot[s], running->slot[s]);
        if (saved->dim[s] != running->dim[s])
            return errbuf_set(eb, ERR_MISMATCH,
                              "%s: slot '%s' has dimension %d, the configuration %d", dir,
                              saved->slot[s], saved->dim[s], running->dim[s]);
    }
    if (saved->nlayers != running->nlayers ||
        memcmp(saved->layer, running->layer, sizeof(int) * (size_t)saved->nlayers) != 0)
        return errbuf_set(eb, ERR_MISMATCH, "%s: tower sizes differ from the configuration", dir);
    if (saved->emb_opt != running->emb_opt)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s: embedding optimizer is %s, the configuration says %s", dir,
                          optim_name(saved->emb_opt), optim_name(running->emb_opt));
    if (saved->dense_opt != running->dense_opt)
        return errbuf_set(eb, ERR_MISMATCH, "%s: dense optimizer is %s, the configuration says %s",
                          dir, optim_name(saved->dense_opt), optim_name(running->dense_opt));
    if (saved->shards > 0 && running->shards > 0 && saved->shards != running->shards)
        return errbuf_set(eb, ERR_MISMATCH, "%s was written by %d shards, this cluster has %d", dir,
                          saved->shards, running->shards);
    return 0;
}
