/*
 * model_conf.c - turn the [model] section into a validated model_spec_t.
 * See model_conf.h.
 */
#include "common/model_conf.h"

#include <stdlib.h>
#include <string.h>

#include "common/keyhash.h"
#include "common/parse.h"

size_t model_spec_dense_len(const model_spec_t *ms)
{
    size_t in = (size_t)ms->input_dim, tower = 0;

    for (int l = 0; l <= ms->nlayers; l++) {
        size_t out = l < ms->nlayers ? (size_t)ms->layer[l] : 1;
        tower += in * out + out;
        in = out;
    }
    return (size_t)ms->ntowers * tower;
}

int model_spec_slot(const model_spec_t *ms, const char *name, size_t len)
{
    for (int i = 0; i < ms->nslots; i++)
        if (strlen(ms->slot[i].name) == len && memcmp(ms->slot[i].name, name, len) == 0)
            return i;
    return -1;
}

/* "slot:N,slot:N" overrides applied to the field at `field` of each slot. */
static int apply_overrides(model_spec_t *ms, const char *key, const char *text, long lo, long hi,
                           size_t field, errbuf_t *eb)
{
    char *buf = strdup(text); /* a TEXT value: any length */
    char *items[MODEL_MAX_SLOTS];
    int n, rc = 0;

    if (!buf)
        return errbuf_set(eb, ERR_NOMEM, "key '%s': out of memory", key);
    n = conf_split_list(buf, ',', items, MODEL_MAX_SLOTS);
    if (n < 0)
        rc = errbuf_set(eb, ERR_CONFIG, "key '%s': more than %d entries (one per slot)", key,
                        MODEL_MAX_SLOTS);
    for (int i = 0; rc == 0 && i < n; i++) {
        char *colon = strrchr(items[i], ':');
        int64_t v;
        int s;

        if (!colon) {
            rc = errbuf_set(eb, ERR_CONFIG, "key '%s': '%s' is not slot:value", key, items[i]);
            break;
        }
        *colon = '\0';
        s = model_spec_slot(ms, items[i], strlen(items[i]));
        if (s < 0)
            rc = errbuf_set(eb, ERR_CONFIG, "key '%s': slot '%s' is not in 'slots'", key, items[i]);
        else if (parse_int_str(colon + 1, lo, hi, &v) != 0)
            rc = errbuf_set(eb, ERR_CONFIG, "key '%s': slot '%s': '%s' is not in [%ld, %ld]", key,
                            items[i], colon + 1, lo, hi);
        else
            *(int *)((char *)&ms->slot[s] + field) = (int)v;
    }
    free(buf);
    return rc;
}

/* The slot names of the 'slots' list into ms. */
static int parse_slots(model_spec_t *ms, const model_conf_t *mc, errbuf_t *eb)
{
    char *buf = strdup(mc->slots.s); /* a TEXT value: any length */
    char *items[MODEL_MAX_SLOTS];
    int n, rc = 0;

    if (!buf)
        return errbuf_set(eb, ERR_NOMEM, "key 'slots': out of memory");
    n = conf_split_list(buf, ',', items, MODEL_MAX_SLOTS);
    if (n < 0)
        rc = errbuf_set(eb, ERR_CONFIG, "key 'slots': more than %d slots", MODEL_MAX_SLOTS);
    else if (n == 0)
        rc = errbuf_set(eb, ERR_CONFIG, "key 'slots': no slot declared");
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t len = strlen(items[i]);
        if (len == 0 || len >= MODEL_SLOT_NAME_MAX || strpbrk(items[i], ": \t"))
            rc = errbuf_set(eb, ERR_CONFIG, "key 'slots': bad slot name '%s'", items[i]);
        else if (model_spec_slot(ms, items[i], len) >= 0)
            rc = errbuf_set(eb, ERR_CONFIG, "key 'slots': slot '%s' declared twice", items[i]);
        if (rc != 0)
            break;
        slot_spec_t *s = &ms->slot[ms->nslots++];
        memcpy(s->name, items[i], len + 1);
        s->seed = keyhash_slot(s->name, len);
        s->dim = (int)mc->emb_dim;
        s->admit_min = (int)mc->admit_min_count;
        s->expire_days = (int)mc->expire_days;
    }
    free(buf);
    return rc;
}

int model_spec_from_conf(model_spec_t *ms, const model_conf_t *mc, errbuf_t *eb)
{
    char buf[CONF_STR_MAX];
    char *items[MODEL_MAX_LAYERS + 1];
    int n, rc;

    memset(ms, 0, sizeof(*ms));
    ms->type = mc->model_type;
    ms->ntowers = ms->type == MODEL_ESM2 ? 4 : 2;
    ms->nloss = ms->type == MODEL_ESM2 ? 3 : 2;

    rc = parse_slots(ms, mc, eb);
    if (rc == 0)
        rc = apply_overrides(ms, "slot_dims", mc->slot_dims.s, 1, 1024, offsetof(slot_spec_t, dim),
                             eb);
    if (rc == 0)
        rc = apply_overrides(ms, "slot_admit", mc->slot_admit.s, 1, 1000000,
                             offsetof(slot_spec_t, admit_min), eb);
    if (rc == 0)
        rc = apply_overrides(ms, "slot_expire", mc->slot_expire.s, 0, 100000,
                             offsetof(slot_spec_t, expire_days), eb);
    if (rc != 0)
        return rc;
    for (int i = 0; i < ms->nslots; i++)
        ms->input_dim += ms->slot[i].dim;

    snprintf(buf, sizeof(buf), "%s", mc->towers.s);
    n = conf_split_list(buf, ',', items, MODEL_MAX_LAYERS);
    if (n < 0)
        return errbuf_set(eb, ERR_CONFIG, "key 'towers': more than %d layers", MODEL_MAX_LAYERS);
    for (int i = 0; i < n; i++) {
        int64_t v;
        if (parse_int_str(items[i], 1, 65536, &v) != 0)
            return errbuf_set(eb, ERR_CONFIG, "key 'towers': '%s' is not a size in [1, 65536]",
                              items[i]);
        ms->layer[ms->nlayers++] = (int)v;
    }

    snprintf(buf, sizeof(buf), "%s", mc->loss_weights.s);
    n = conf_split_list(buf, ',', items, 3);
    /* The default "1,1,1" means "every loss weighs 1" for every model type. */
    if (n == 3 && ms->nloss == 2 && strcmp(mc->loss_weights.s, "1,1,1") == 0)
        n = 2;
    if (n != ms->nloss)
        return errbuf_set(eb, ERR_CONFIG, "key 'loss_weights': model needs %d weights, got '%s'",
                          ms->nloss, mc->loss_weights.s);
    for (int i = 0; i < n; i++) {
        char *end;
        double w = strtod(items[i], &end);
        if (end == items[i] || *end != '\0' || !(w >= 0 && w <= 1000)) /* also refuses nan */
            return errbuf_set(eb, ERR_CONFIG, "key 'loss_weights': '%s' is not in [0, 1000]",
                              items[i]);
        ms->loss_weight[i] = (float)w;
    }

    ms->emb_opt = (optim_t){
        .kind = mc->emb_optimizer,
        .lr = (float)(mc->emb_optimizer == OPTIM_FTRL ? mc->ftrl_alpha : mc->emb_lr),
        .eps = (float)(mc->emb_optimizer == OPTIM_ADAM ? mc->adam_eps : mc->adagrad_eps),
        .beta1 = (float)mc->adam_beta1,
        .beta2 = (float)mc->adam_beta2,
        .ftrl_beta = (float)mc->ftrl_beta,
        .l1 = (float)mc->ftrl_l1,
        .l2 = (float)mc->ftrl_l2,
        .init_std = (float)mc->emb_init_std,
    };
    /* dense enum is "adam|adagrad" */
    int dk = mc->dense_optimizer == 0 ? OPTIM_ADAM : OPTIM_ADAGRAD;
    ms->dense_opt = (optim_t){
        .kind = dk,
        .lr = (float)mc->dense_lr,
        .eps = (float)(dk == OPTIM_ADAM ? mc->adam_eps : mc->adagrad_eps),
        .beta1 = (float)mc->adam_beta1,
        .beta2 = (float)mc->adam_beta2,
    };
    return 0;
}
