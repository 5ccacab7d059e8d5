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

#define META_BYTES_MAX 16384 /* the writer's buffer: no META is longer */

static const char *const model_names[] = {"esm2", "esmm", "naive", "nmtr"};

static uint64_t layout_digest(const meta_t *m);

const char *meta_model_name(int t)
{
    return t >= 0 && t < 4 ? model_names[t] : "?";
}

int meta_set_format(meta_t *m, const char *format)
{
    size_t n = format ? strlen(format) : 0;

    if (n >= sizeof(m->format) || strspn(format ? format : "", "abcdefghijklmnopqrstuvwxyz"
                                                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                               "0123456789_") != n)
        return ERR_INVAL;
    memcpy(m->format, n ? format : "", n + 1);
    return 0;
}

/* The dimension most slots have (the smallest of equally common ones). */
static int common_dim(const meta_t *m)
{
    int best = m->nslots ? m->dim[0] : 1, best_n = 0;

    for (int s = 0; s < m->nslots; s++) {
        int n = 0;
        for (int t = 0; t < m->nslots; t++)
            n += m->dim[t] == m->dim[s];
        if (n > best_n || (n == best_n && m->dim[s] < best))
            best = m->dim[s], best_n = n;
    }
    return best;
}

/* The bottom's size `key` if it applies to m's bottom: 1 (appended to buf
 * at *n), else 0. */
static int bottom_value(const meta_t *m, const char *key, char *buf, size_t len, size_t *n)
{
    int b = m->bottom, layers = 0, v = -1;

    if (b == MODEL_BOTTOM_CONCAT)
        return 0;
    if (strcmp(key, "shared_layers") == 0)
        layers = b == MODEL_BOTTOM_SHARED;
    else if (strcmp(key, "expert_layers") == 0)
        layers = b != MODEL_BOTTOM_SHARED;
    else if (strcmp(key, "experts") == 0 && (b == MODEL_BOTTOM_MMOE || b == MODEL_BOTTOM_OMOE))
        v = m->experts;
    else if (b == MODEL_BOTTOM_PLE && strcmp(key, "ple_shared_experts") == 0)
        v = m->ple_shared;
    else if (b == MODEL_BOTTOM_PLE && strcmp(key, "ple_task_experts") == 0)
        v = m->ple_task;
    else if (b == MODEL_BOTTOM_PLE && strcmp(key, "ple_levels") == 0)
        v = m->ple_levels;
    if (v >= 0)
        *n += (size_t)snprintf(buf + *n, *n < len ? len - *n : 0, "%d", v);
    for (int i = 0; layers && i < m->nbottom_layers; i++)
        *n += (size_t)snprintf(buf + *n, *n < len ? len - *n : 0, "%s%d", i ? "," : "",
                               m->bottom_layer[i]);
    return layers || v >= 0;
}

/* The bottom keys in the order META writes them. */
static const char *const bottom_keys[] = {"experts",          "expert_layers",
                                          "shared_layers",    "ple_shared_experts",
                                          "ple_task_experts", "ple_levels"};
#define NBOTTOM_KEYS (sizeof(bottom_keys) / sizeof(bottom_keys[0]))

int meta_conf_value(const meta_t *m, const char *key, char *buf, size_t len)
{
    size_t n = 0;

#define PUT(...) (n += (size_t)snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__))
    buf[0] = '\0';
    if (strcmp(key, "model_type") == 0) {
        PUT("%s", meta_model_name(m->model_type));
    } else if (strcmp(key, "slots") == 0) {
        for (int s = 0; s < m->nslots; s++)
            PUT("%s%s", s ? "," : "", m->slot[s]);
    } else if (strcmp(key, "emb_dim") == 0) {
        PUT("%d", common_dim(m));
    } else if (strcmp(key, "slot_dims") == 0) {
        int d = common_dim(m), first = 1;
        for (int s = 0; s < m->nslots; s++)
            if (m->dim[s] != d) {
                PUT("%s%s:%d", first ? "" : ",", m->slot[s], m->dim[s]);
                first = 0;
            }
    } else if (strcmp(key, "towers") == 0) {
        for (int i = 0; i < m->nlayers; i++)
            PUT("%s%d", i ? "," : "", m->layer[i]);
    } else if (strcmp(key, "emb_optimizer") == 0) {
        PUT("%s", optim_name(m->emb_opt));
    } else if (strcmp(key, "dense_optimizer") == 0) {
        PUT("%s", optim_name(m->dense_opt));
    } else if (strcmp(key, "format") == 0 && m->format[0]) {
        PUT("%s", m->format);
    } else if (strcmp(key, "bottom") == 0) {
        PUT("%s", model_bottom_name(m->bottom));
    } else if (bottom_value(m, key, buf, len, &n)) {
        /* written by bottom_value */
    } else if (strcmp(key, "bias_slots") == 0) {
        PUT("%s", m->bias_slots);
    } else if (strcmp(key, "bias_layers") == 0 && m->bias_slots[0]) {
        PUT("%s", m->bias_layers);
    } else if (strcmp(key, "loss_weighting") == 0 && m->loss_weighting == MODEL_LW_UNCERTAINTY) {
        PUT("%s", model_lossw_name(m->loss_weighting));
    } else {
        return ERR_NOTFOUND;
    }
#undef PUT
    return n < len ? 0 : ERR_TOOBIG;
}

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
    m->bottom = ms->bottom;
    m->nbottom_layers = ms->nbottom_layers;
    memcpy(m->bottom_layer, ms->bottom_layer, sizeof(m->bottom_layer));
    m->experts = ms->experts;
    m->ple_shared = ms->ple_shared;
    m->ple_task = ms->ple_task;
    m->ple_levels = ms->ple_levels;
    if (ms->nbias > 0) {
        size_t n = 0;
        for (int s = 0; s < ms->nslots; s++)
            if (ms->slot[s].bias && n < sizeof(m->bias_slots))
                n += (size_t)snprintf(m->bias_slots + n, sizeof(m->bias_slots) - n, "%s%s",
                                      n ? "," : "", ms->slot[s].name);
        n = 0;
        snprintf(m->bias_layers, sizeof(m->bias_layers), "0");
        for (int l = 0; l < ms->nbias_layers && n < sizeof(m->bias_layers); l++)
            n += (size_t)snprintf(m->bias_layers + n, sizeof(m->bias_layers) - n, "%s%d",
                                  l ? "," : "", ms->bias_layer[l]);
    }
    m->loss_weighting =
        ms->loss_weighting == MODEL_LW_UNCERTAINTY ? MODEL_LW_UNCERTAINTY : MODEL_LW_FIXED;
    m->digest = layout_digest(m);
}

/* The digest covers what decides the layout of rows and weights. */
static uint64_t layout_digest(const meta_t *m)
{
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
    if (m->bottom != MODEL_BOTTOM_CONCAT) { /* concat keeps the digest of before bottoms */
        XXH64_update(st, &m->bottom, sizeof(int));
        XXH64_update(st, &m->nbottom_layers, sizeof(int));
        XXH64_update(st, m->bottom_layer, sizeof(int) * (size_t)m->nbottom_layers);
        XXH64_update(st, &m->experts, sizeof(int));
        XXH64_update(st, &m->ple_shared, sizeof(int));
        XXH64_update(st, &m->ple_task, sizeof(int));
        XXH64_update(st, &m->ple_levels, sizeof(int));
    }
    if (m->bias_slots[0]) { /* no bias tower keeps the digest of before it */
        XXH64_update(st, m->bias_slots, strlen(m->bias_slots) + 1);
        XXH64_update(st, m->bias_layers, strlen(m->bias_layers) + 1);
    }
    if (m->loss_weighting != MODEL_LW_FIXED) /* fixed keeps the digest of before */
        XXH64_update(st, &m->loss_weighting, sizeof(int));
    uint64_t d = XXH64_digest(st);
    XXH64_freeState(st);
    return d;
}

/* a and b without blanks are the same text */
static int same_text(const char *a, const char *b)
{
    for (;;) {
        while (*a == ' ' || *a == '\t')
            a++;
        while (*b == ' ' || *b == '\t')
            b++;
        if (*a != *b)
            return 0;
        if (!*a)
            return 1;
        a++, b++;
    }
}

int meta_apply_conf(const meta_t *m, const char *dir, const conf_schema_t *sc, void *obj,
                    const conf_given_t *given, errbuf_t *eb)
{
    static const char *const keys[] = {"model_type", "slots", "towers", "emb_optimizer",
                                       "dense_optimizer", "format", "emb_dim", "slot_dims",
                                       /* bottoms (issue 15) */
                                       "bottom", "experts", "expert_layers", "shared_layers",
                                       "ple_shared_experts", "ple_task_experts", "ple_levels",
                                       /* the position-bias tower (issue 15) */
                                       "bias_slots", "bias_layers",
                                       /* loss weighting (issue 15) */
                                       "loss_weighting"};
    char saved[CONF_STR_MAX], mine[CONF_STR_MAX], where[DIRS_PATH_MAX + 8];
    int dims_given =
        conf_key_given(sc, given, "emb_dim") == 1 || conf_key_given(sc, given, "slot_dims") == 1;

    snprintf(where, sizeof(where), "%s/%s", dir, META_FILE);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const conf_key_t *k = conf_find(sc, keys[i]);
        int is_dim = i == 6 || i == 7, rc;

        if (!k || meta_conf_value(m, keys[i], saved, sizeof(saved)) != 0)
            continue; /* not this role's key, or not recorded */
        if (is_dim ? dims_given : conf_key_given(sc, given, keys[i]) == 1) {
            conf_format_value(k, obj, mine, sizeof(mine));
            if (is_dim || same_text(saved, mine))
                continue;
            if (i == 0)
                return errbuf_set(eb, ERR_MISMATCH,
                                  "the model in %s holds %s %s model; --model_type says %s: drop "
                                  "the option (or the config line) to use the model's, or give a "
                                  "model trained as %s",
                                  dir, saved[0] == 'e' ? "an" : "a", saved, mine, mine);
            return errbuf_set(eb, ERR_MISMATCH,
                              "the model in %s was trained with %s '%s'; --%s says '%s': drop the "
                              "option (or the config line) to use the model's, or give a model "
                              "trained with '%s'",
                              dir, keys[i], saved, keys[i], mine, mine);
        }
        rc = conf_set(sc, obj, keys[i], saved, where, eb);
        if (rc != 0)
            return errbuf_prefix(eb, ERR_CONFIG, "taking the layout of %s", dir);
    }
    return 0;
}

int meta_write(const char *dir, const meta_t *m, errbuf_t *eb)
{
    char buf[META_BYTES_MAX], path[DIRS_PATH_MAX];
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
    if (m->bottom != MODEL_BOTTOM_CONCAT) {
        PUT("bottom %s\n", model_bottom_name(m->bottom));
        for (size_t i = 0; i < NBOTTOM_KEYS; i++) {
            char v[CONF_STR_MAX];
            size_t vn = 0;
            if (bottom_value(m, bottom_keys[i], v, sizeof(v), &vn))
                PUT("%s %s\n", bottom_keys[i], v);
        }
    }
    if (m->bias_slots[0])
        PUT("bias_slots %s\nbias_layers %s\n", m->bias_slots, m->bias_layers);
    if (m->loss_weighting != MODEL_LW_FIXED)
        PUT("loss_weighting %s\n", model_lossw_name(m->loss_weighting));
    PUT("shards %d\nrouting xxh64-mod\nday %d\n", m->shards, m->day);
    PUT("dense_params %llu\n", (unsigned long long)m->dense_params);
    if (m->format[0])
        PUT("format %s\n", m->format);
    PUT("digest %016llx\n", (unsigned long long)m->digest);
    PUT("check %016llx\n", (unsigned long long)XXH64(buf, n, 0));
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

/* A bottom size line ("experts 4", "expert_layers 128,64", ...): 0, or
 * -1 if it is not one. */
static int parse_bottom_line(const char *line, meta_t *m)
{
    char key[32], val[128], extra[2];
    char *p = val, *end;
    long v;

    if (sscanf(line, "%31s %127s %1s", key, val, extra) != 2)
        return -1;
    if (strcmp(key, "expert_layers") == 0 || strcmp(key, "shared_layers") == 0) {
        m->nbottom_layers = 0;
        while (*p) {
            v = strtol(p, &end, 10);
            if (end == p || v < 1 || v > 65536 || m->nbottom_layers >= MODEL_MAX_LAYERS)
                return -1;
            m->bottom_layer[m->nbottom_layers++] = (int)v;
            p = end;
            if (*p == ',' && p[1])
                p++;
            else if (*p)
                return -1;
        }
        return 0;
    }
    v = strtol(val, &end, 10);
    if (end == val || *end || v < 1 || v > 64)
        return -1;
    if (strcmp(key, "experts") == 0)
        m->experts = (int)v;
    else if (strcmp(key, "ple_shared_experts") == 0)
        m->ple_shared = (int)v;
    else if (strcmp(key, "ple_task_experts") == 0)
        m->ple_task = (int)v;
    else if (strcmp(key, "ple_levels") == 0)
        m->ple_levels = (int)v;
    else
        return -1;
    return 0;
}

/* Parse one line of META (without its newline) into m. 0, or -1 if it is
 * not a line META has. */
static int parse_line(const char *line, meta_t *m, int *seen_slot)
{
    char word[256], name[128], extra[2];
    int a, b;
    unsigned long long u;

    if (sscanf(line, "slot %d %127s %d %1s", &a, name, &b, extra) == 3) {
        size_t len = strlen(name);
        if (a < 0 || a >= MODEL_MAX_SLOTS || len >= sizeof(m->slot[a]) || b < 1)
            return -1;
        memcpy(m->slot[a], name, len + 1); /* fits: checked above */
        m->dim[a] = b;
        seen_slot[a] = 1;
    } else if (sscanf(line, "model %127s %1s", word, extra) == 1) {
        m->model_type = -1;
        for (int t = 0; t < 4; t++)
            if (strcmp(word, model_names[t]) == 0)
                m->model_type = t;
        if (m->model_type < 0)
            return -1;
    } else if (sscanf(line, "slots %d %1s", &a, extra) == 1) {
        if (a < 1 || a > MODEL_MAX_SLOTS)
            return -1;
        m->nslots = a;
    } else if (strcmp(line, "towers ") == 0) {
        m->nlayers = 0; /* a layout without towers (tests, tools) */
    } else if (sscanf(line, "towers %127s %1s", word, extra) == 1) {
        char *p = word, *end;
        m->nlayers = 0;
        while (*p) {
            long v = strtol(p, &end, 10);
            if (end == p || v < 1 || m->nlayers >= MODEL_MAX_LAYERS)
                return -1;
            m->layer[m->nlayers++] = (int)v;
            p = end;
            if (*p == ',' && p[1])
                p++;
            else if (*p)
                return -1;
        }
    } else if (sscanf(line, "emb_optimizer %127s %1s", word, extra) == 1) {
        if ((m->emb_opt = optim_kind(word)) < 0)
            return -1;
    } else if (sscanf(line, "dense_optimizer %127s %1s", word, extra) == 1) {
        if ((m->dense_opt = optim_kind(word)) < 0)
            return -1;
    } else if (sscanf(line, "shards %d %1s", &a, extra) == 1) {
        if (a < 1)
            return -1;
        m->shards = a;
    } else if (sscanf(line, "routing %127s %1s", word, extra) == 1) {
        if (strcmp(word, "xxh64-mod") != 0)
            return -1;
    } else if (sscanf(line, "day %d %1s", &a, extra) == 1) {
        if (a < 0)
            return -1;
        m->day = a;
    } else if (sscanf(line, "dense_params %llu %1s", &u, extra) == 1) {
        m->dense_params = u;
    } else if (sscanf(line, "format %127s %1s", word, extra) == 1) {
        if (meta_set_format(m, word) != 0 || !word[0])
            return -1;
    } else if (sscanf(line, "bottom %127s %1s", word, extra) == 1) {
        m->bottom = -1;
        for (int b = MODEL_BOTTOM_SHARED; b < MODEL_NBOTTOMS; b++)
            if (strcmp(word, model_bottom_name(b)) == 0)
                m->bottom = b;
        if (m->bottom < 0)
            return -1;
    } else if (parse_bottom_line(line, m) == 0) {
        /* a bottom size */
    } else if (sscanf(line, "bias_slots %255s %1s", word, extra) == 1) {
        snprintf(m->bias_slots, sizeof(m->bias_slots), "%s", word);
    } else if (sscanf(line, "bias_layers %127s %1s", word, extra) == 1) {
        size_t wl = strlen(word);
        if (strspn(word, "0123456789,") != wl || wl >= sizeof(m->bias_layers))
            return -1;
        memcpy(m->bias_layers, word, wl + 1);
    } else if (sscanf(line, "loss_weighting %127s %1s", word, extra) == 1) {
        if (strcmp(word, model_lossw_name(MODEL_LW_UNCERTAINTY)) != 0)
            return -1;
        m->loss_weighting = MODEL_LW_UNCERTAINTY;
    } else if (sscanf(line, "digest %llx %1s", &u, extra) == 1) {
        m->digest = u;
    } else {
        return -1;
    }
    return 0;
}

int meta_read(const char *dir, meta_t *m, errbuf_t *eb)
{
    char path[DIRS_PATH_MAX], buf[META_BYTES_MAX + 1], word[128], line[512];
    int seen_slot[MODEL_MAX_SLOTS] = {0};
    int lineno = 0, rc = 0, a, has_digest = 0;
    size_t len, pos = 0;
    FILE *f;

    memset(m, 0, sizeof(*m));
    if ((rc = dirs_path(path, sizeof(path), eb, "%s/%s", dir, META_FILE)) != 0)
        return rc;
    f = fopen(path, "r");
    if (!f)
        return errbuf_set(eb, errno == ENOENT ? ERR_NOTFOUND : ERR_IO,
                          "%s: %s (not a funnel model or checkpoint directory?)", path,
                          strerror(errno));
    len = fread(buf, 1, sizeof(buf), f);
    rc = ferror(f) ? errbuf_set(eb, ERR_IO, "read %s: %s", path, strerror(errno)) : 0;
    fclose(f);
    if (rc != 0)
        return rc;
    if (len > META_BYTES_MAX)
        return errbuf_set(eb, ERR_CORRUPT, "%s: longer than %d bytes: not a funnel META file", path,
                          META_BYTES_MAX);
    buf[len] = '\0';
    if (len == 0 || buf[len - 1] != '\n')
        return errbuf_set(eb, ERR_CORRUPT, "%s: %s: not a funnel META file or cut short", path,
                          len ? "no newline at the end" : "empty");
    while (pos < len) {
        size_t ll = strcspn(buf + pos, "\n"), start = pos;
        unsigned long long u;
        pos += ll + 1;
        lineno++;
        snprintf(line, sizeof(line), "%.*s", (int)(ll < sizeof(line) ? ll : sizeof(line) - 1),
                 buf + start);
        if (ll >= sizeof(line) || strlen(line) != ll)
            goto bad; /* too long, or a NUL byte */
        if (lineno == 1) {
            if (sscanf(line, "%127s %d", word, &a) != 2 || strcmp(word, META_MAGIC) != 0)
                return errbuf_set(eb, ERR_CORRUPT, "%s: not a funnel META file", path);
            if (a > META_VERSION)
                return errbuf_set(eb, ERR_VERSION, "%s: format version %d is newer than %d", path,
                                  a, META_VERSION);
            m->version = a;
            continue;
        }
        if (sscanf(line, "check %llx", &u) == 1) {
            /* the checksum of every byte before it; the last line */
            if (pos != len)
                goto bad;
            if ((uint64_t)u != XXH64(buf, start, 0))
                return errbuf_set(eb, ERR_CORRUPT,
                                  "%s: the checksum on line %d does not match the lines before "
                                  "it: the file was edited or damaged",
                                  path, lineno);
            continue;
        }
        if (parse_line(line, m, seen_slot) != 0)
            goto bad;
        has_digest |= strncmp(line, "digest ", 7) == 0;
    }
    if (m->nslots == 0)
        return errbuf_set(eb, ERR_CORRUPT, "%s: no slots", path);
    for (int sl = 0; sl < m->nslots; sl++)
        if (!seen_slot[sl])
            return errbuf_set(eb, ERR_CORRUPT, "%s: no line for slot %d of %d", path, sl,
                              m->nslots);
    if (!has_digest)
        return errbuf_set(eb, ERR_CORRUPT, "%s: no digest line", path);
    if (m->digest != layout_digest(m))
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: digest %016llx does not match the layout the file describes "
                          "(%016llx): the file was edited or damaged",
                          path, (unsigned long long)m->digest,
                          (unsigned long long)layout_digest(m));
    return 0;
bad:
    return errbuf_set(eb, ERR_CORRUPT, "%s:%d: cannot parse '%.*s'", path, lineno,
                      (int)(strcspn(line, "\n") < 80 ? strcspn(line, "\n") : 80), line);
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
    if (saved->bottom != running->bottom)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s holds a model on the %s bottom, the configuration "
                          "says bottom = %s",
                          dir, model_bottom_name(saved->bottom),
                          model_bottom_name(running->bottom));
    if (saved->nbottom_layers != running->nbottom_layers ||
        memcmp(saved->bottom_layer, running->bottom_layer,
               sizeof(int) * (size_t)saved->nbottom_layers) != 0 ||
        saved->experts != running->experts || saved->ple_shared != running->ple_shared ||
        saved->ple_task != running->ple_task || saved->ple_levels != running->ple_levels)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s: the %s bottom's sizes (experts, expert or shared layers, ple "
                          "sizes) differ from the configuration",
                          dir, model_bottom_name(saved->bottom));
    if (strcmp(saved->bias_slots, running->bias_slots) != 0)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s holds a model with bias_slots '%s', the configuration says "
                          "bias_slots = '%s'",
                          dir, saved->bias_slots, running->bias_slots);
    if (strcmp(saved->bias_layers, running->bias_layers) != 0)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s: its bias tower has layers '%s', the configuration says "
                          "bias_layers = '%s'",
                          dir, saved->bias_layers, running->bias_layers);
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
