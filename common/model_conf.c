/*
 * model_conf.c - turn the [model] section into a validated model_spec_t.
 * See model_conf.h.
 */
#include "common/model_conf.h"

#include <stdlib.h>
#include <string.h>

#include "common/keyhash.h"
#include "common/parse.h"

static const char *const bottom_names[MODEL_NBOTTOMS] = {"concat", "shared", "mmoe", "omoe", "ple"};

const char *model_bottom_name(int b)
{
    return b >= 0 && b < MODEL_NBOTTOMS ? bottom_names[b] : "?";
}

int model_spec_tower_input(const model_spec_t *ms)
{
    return ms->bottom == MODEL_BOTTOM_CONCAT || ms->nbottom_layers < 1
               ? ms->input_dim - ms->bias_dim
               : ms->bottom_layer[ms->nbottom_layers - 1];
}

/* Weights and biases of a gate over nc experts: none for one expert. */
static size_t gate_len(size_t in, size_t nc)
{
    return nc > 1 ? (in + 1) * nc : 0;
}

size_t model_spec_bottom_len(const model_spec_t *ms)
{
    int tied = ms->bottom == MODEL_BOTTOM_SHARED || ms->bottom == MODEL_BOTTOM_OMOE;
    size_t T = (size_t)ms->ntowers, levels = ms->bottom == MODEL_BOTTOM_PLE ? ms->ple_levels : 1;
    size_t ns = ms->bottom == MODEL_BOTTOM_PLE      ? (size_t)ms->ple_shared
                : ms->bottom == MODEL_BOTTOM_SHARED ? 1
                                                    : (size_t)ms->experts;
    size_t nt = ms->bottom == MODEL_BOTTOM_PLE ? (size_t)ms->ple_task : 0;
    size_t in = (size_t)(ms->input_dim - ms->bias_dim), n = 0;

    if (ms->bottom == MODEL_BOTTOM_CONCAT)
        return 0;
    for (size_t l = 0; l < levels; l++) {
        size_t expert = 0, ein = in;
        for (int k = 0; k < ms->nbottom_layers; k++) {
            expert += ein * (size_t)ms->bottom_layer[k] + (size_t)ms->bottom_layer[k];
            ein = (size_t)ms->bottom_layer[k];
        }
        n += (T * nt + ns) * expert;
        if (!tied)
            n += T * gate_len(in, nt + ns);
        if (tied || l + 1 < levels)
            n += gate_len(in, T * nt + ns);
        in = ein;
    }
    return n;
}

size_t model_spec_dense_len(const model_spec_t *ms)
{
    size_t in = (size_t)model_spec_tower_input(ms), tower = 0;

    for (int l = 0; l <= ms->nlayers; l++) {
        size_t out = l < ms->nlayers ? (size_t)ms->layer[l] : 1;
        tower += in * out + out;
        in = out;
    }
    return (size_t)ms->ntowers * tower + model_spec_bottom_len(ms) + model_spec_bias_len(ms) +
           model_spec_lossw_len(ms);
}

size_t model_spec_bias_len(const model_spec_t *ms)
{
    size_t in = (size_t)ms->bias_dim, n = 0;

    if (ms->nbias == 0)
        return 0;
    for (int l = 0; l <= ms->nbias_layers; l++) {
        size_t out = l < ms->nbias_layers ? (size_t)ms->bias_layer[l] : 1;
        n += in * out + out;
        in = out;
    }
    return n;
}

size_t model_spec_lossw_len(const model_spec_t *ms)
{
    return ms->loss_weighting == MODEL_LW_UNCERTAINTY ? (size_t)ms->nloss : 0;
}

const char *model_lossw_name(int w)
{
    static const char *const name[] = {"fixed", "uncertainty", "pareto"};
    return w >= 0 && w < 3 ? name[w] : "?";
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

/* A "128,64" list of layer sizes of key `key` into n, layer. */
static int parse_sizes(const char *key, const char *text, int *n, int *layer, errbuf_t *eb)
{
    char buf[CONF_STR_MAX];
    char *items[MODEL_MAX_LAYERS + 1];
    int k;

    snprintf(buf, sizeof(buf), "%s", text);
    k = conf_split_list(buf, ',', items, MODEL_MAX_LAYERS);
    if (k < 0)
        return errbuf_set(eb, ERR_CONFIG, "key '%s': more than %d layers", key, MODEL_MAX_LAYERS);
    if (k == 0)
        return errbuf_set(eb, ERR_CONFIG, "key '%s': no layer size (give e.g. \"128,64\")", key);
    for (int i = 0; i < k; i++) {
        int64_t v;
        if (parse_int_str(items[i], 1, 65536, &v) != 0)
            return errbuf_set(eb, ERR_CONFIG, "key '%s': '%s' is not a size in [1, 65536]", key,
                              items[i]);
        layer[i] = (int)v;
    }
    *n = k;
    return 0;
}

/* The bottom and the sizes that apply to it (the others stay 0). */
static int parse_bottom(model_spec_t *ms, const model_conf_t *mc, errbuf_t *eb)
{
    ms->bottom = mc->bottom;
    switch (ms->bottom) {
    case MODEL_BOTTOM_CONCAT: return 0;
    case MODEL_BOTTOM_SHARED:
        return parse_sizes("shared_layers", mc->shared_layers.s, &ms->nbottom_layers,
                           ms->bottom_layer, eb);
    case MODEL_BOTTOM_MMOE:
    case MODEL_BOTTOM_OMOE: ms->experts = (int)mc->experts; break;
    case MODEL_BOTTOM_PLE:
        ms->ple_shared = (int)mc->ple_shared_experts;
        ms->ple_task = (int)mc->ple_task_experts;
        ms->ple_levels = (int)mc->ple_levels;
        break;
    default: return errbuf_set(eb, ERR_CONFIG, "key 'bottom': unknown bottom %d", ms->bottom);
    }
    return parse_sizes("expert_layers", mc->expert_layers.s, &ms->nbottom_layers, ms->bottom_layer,
                       eb);
}

/* The bias slots (flagged in ms->slot) and the bias tower's sizes. */
static int parse_bias(model_spec_t *ms, const model_conf_t *mc, errbuf_t *eb)
{
    char buf[CONF_STR_MAX];
    char *items[MODEL_MAX_SLOTS + 1];
    int k;

    snprintf(buf, sizeof(buf), "%s", mc->bias_slots.s);
    k = conf_split_list(buf, ',', items, MODEL_MAX_SLOTS);
    if (k < 0)
        return errbuf_set(eb, ERR_CONFIG, "key 'bias_slots': more than %d slots", MODEL_MAX_SLOTS);
    if (k == 0)
        return 0;
    for (int i = 0; i < k; i++) {
        int s = model_spec_slot(ms, items[i], strlen(items[i]));
        if (s < 0)
            return errbuf_set(eb, ERR_CONFIG,
                              "key 'bias_slots': '%s' is not one of 'slots' (add it there too)",
                              items[i]);
        if (ms->slot[s].bias)
            return errbuf_set(eb, ERR_CONFIG, "key 'bias_slots': '%s' is listed twice", items[i]);
        ms->slot[s].bias = 1;
        ms->nbias++;
        ms->bias_dim += ms->slot[s].dim;
    }
    if (ms->nbias == ms->nslots)
        return errbuf_set(eb, ERR_CONFIG,
                          "key 'bias_slots': every slot is a bias slot; the main towers need at "
                          "least one other slot");
    if (strcmp(mc->bias_layers.s, "0") == 0)
        return 0;
    return parse_sizes("bias_layers", mc->bias_layers.s, &ms->nbias_layers, ms->bias_layer, eb);
}

int model_spec_from_conf(model_spec_t *ms, const model_conf_t *mc, errbuf_t *eb)
{
    char buf[CONF_STR_MAX];
    char *items[MODEL_MAX_LAYERS + 1];
    int n, rc;

    memset(ms, 0, sizeof(*ms));
    ms->type = mc->model_type;
    ms->ntowers = ms->type == MODEL_ESM2 ? 4 : ms->type == MODEL_NMTR ? 3 : 2;
    ms->nloss = ms->type == MODEL_ESM2 || ms->type == MODEL_NMTR ? 3 : 2;

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

    if ((rc = parse_bottom(ms, mc, eb)) != 0 || (rc = parse_bias(ms, mc, eb)) != 0)
        return rc;
    ms->loss_weighting = mc->loss_weighting;
    ms->pareto_min = (float)mc->pareto_min_weight;
    if (ms->loss_weighting == MODEL_LW_PARETO && mc->pareto_min_weight * ms->nloss > 1.0)
        return errbuf_set(eb, ERR_CONFIG,
                          "key 'pareto_min_weight': %g times %d losses is more than 1 (the "
                          "shares sum to 1): lower it to at most %g",
                          mc->pareto_min_weight, ms->nloss, 1.0 / ms->nloss);

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
