/*
 * model_conf.h - the [model] section of the configuration, shared by every
 * role that must agree on the table layout (worker, ps, emb), and the parsed
 * model description (slots, dimensions, towers, optimizers) built from it.
 *
 * The X-macro MODEL_CONF_KEYS lists every [model] key once; roles include it
 * in their own key tables. model_spec_from_conf() validates the list-valued
 * keys (slots, slot_dims, towers, ...) that the generic parser keeps as text.
 *
 * Thread-safety: a model_spec_t is immutable after construction.
 */
#ifndef FUNNEL_MODEL_CONF_H
#define FUNNEL_MODEL_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/optim.h"

/* X(section, name, TYPE, default, min, max, choices, help) */
#define MODEL_CONF_KEYS(X)                                                                         \
    X(model, model_type, ENUM, "esm2", 0, 0, "esm2|esmm|naive|nmtr",                               \
      "model type: esm2 (4 towers, 3 losses), esmm (2 towers), naive (CVR on clicks only), nmtr "  \
      "(3 towers: click -> action -> buy logit cascade)")                                          \
    X(model, slots, TEXT, "user_id,item_id,cate_id,shop_id,brand_id,position,hour,tag", 0, 0,      \
      NULL, "comma-separated feature slots; tokens of other slots are ignored (counted)")          \
    X(model, emb_dim, INT, "16", 1, 1024, NULL, "embedding dimension of every slot")               \
    X(model, slot_dims, TEXT, "", 0, 0, NULL,                                                      \
      "per-slot dimension overrides, e.g. \"tag:8,hour:4\"")                                       \
    X(model, towers, STR, "256,128,64", 0, 0, NULL,                                                \
      "hidden layer sizes of every tower (ReLU), then a sigmoid head")                             \
    X(model, loss_weights, STR, "1,1,1", 0, 0, NULL,                                               \
      "loss weights: ctr,ctavr,ctcvr (esm2, nmtr); ctr,ctcvr (esmm); ctr,cvr-on-clicks (naive); "  \
      "1,1,1 = all ones")                                                                          \
    X(model, emb_optimizer, ENUM, "adagrad", 0, 0, "adagrad|sgd|adam|ftrl",                        \
      "optimizer of embedding rows (state stored beside each row)")                                \
    X(model, emb_lr, FLOAT, "0.05", 0, 100, NULL, "learning rate of embedding rows")               \
    X(model, emb_init_std, FLOAT, "0.01", 0, 10, NULL,                                             \
      "std of the initial embedding (a deterministic function of the key)")                        \
    X(model, dense_optimizer, ENUM, "adam", 0, 0, "adam|adagrad", "optimizer of tower weights")    \
    X(model, dense_lr, FLOAT, "0.001", 0, 100, NULL, "learning rate of tower weights")             \
    X(model, adagrad_eps, FLOAT, "1e-8", 0, 1, NULL, "Adagrad epsilon")                            \
    X(model, adam_beta1, FLOAT, "0.9", 0, 1, NULL, "Adam beta1")                                   \
    X(model, adam_beta2, FLOAT, "0.999", 0, 1, NULL, "Adam beta2")                                 \
    X(model, adam_eps, FLOAT, "1e-8", 0, 1, NULL, "Adam epsilon")                                  \
    X(model, ftrl_alpha, FLOAT, "0.05", 0, 100, NULL, "FTRL alpha (learning rate)")                \
    X(model, ftrl_beta, FLOAT, "1", 0, 100, NULL, "FTRL beta")                                     \
    X(model, ftrl_l1, FLOAT, "0", 0, 100, NULL, "FTRL L1 strength")                                \
    X(model, ftrl_l2, FLOAT, "0", 0, 100, NULL, "FTRL L2 strength")                                \
    X(model, admit_min_count, INT, "1", 1, 1000000, NULL,                                          \
      "a new key gets a row after it was seen this many times (1: at once)")                       \
    X(model, slot_admit, TEXT, "", 0, 0, NULL, "per-slot admission overrides, e.g. \"item_id:3\"") \
    X(model, expire_days, INT, "0", 0, 100000, NULL,                                               \
      "rows unseen for this many days are deleted at refresh (0: never)")                          \
    X(model, slot_expire, TEXT, "", 0, 0, NULL, "per-slot expiry overrides, e.g. \"user_id:30\"")  \
    /* bottoms (issue 15): what sits between the pooled embeddings and the towers */               \
    X(model, bottom, ENUM, "concat", 0, 0, "concat|shared|mmoe|omoe|ple",                          \
      "bottom under the towers: concat (pooled embeddings straight in), shared (one MLP), mmoe "   \
      "(experts, a softmax gate per tower), omoe (experts, one gate), ple (CGC levels)")           \
    X(model, experts, INT, "4", 1, 64, NULL, "experts of the mmoe and omoe bottoms")               \
    X(model, expert_layers, STR, "128,64", 0, 0, NULL,                                             \
      "hidden sizes of every expert (ReLU; mmoe, omoe, ple); the last is the towers' input")       \
    X(model, shared_layers, STR, "256,128", 0, 0, NULL,                                            \
      "hidden sizes of the shared bottom's MLP (ReLU); the last is the towers' input")             \
    X(model, ple_shared_experts, INT, "2", 1, 64, NULL, "ple: shared experts per level")           \
    X(model, ple_task_experts, INT, "1", 1, 64, NULL, "ple: experts of each task per level")       \
    X(model, ple_levels, INT, "2", 1, 8, NULL, "ple: extraction levels (1 = one CGC layer)")       \
    /* position bias (issue 15) */                                                                 \
    X(model, bias_slots, TEXT, "", 0, 0, NULL,                                                     \
      "slots (of 'slots') that feed only the shallow bias tower, e.g. \"position\"; its logit is " \
      "added to the click logit in training only (empty: no bias tower)")                          \
    X(model, bias_layers, STR, "16", 0, 0, NULL,                                                   \
      "hidden sizes of the bias tower (ReLU) before its 1-unit logit; \"0\": a linear tower")      \
    /* loss weighting (issue 15) */                                                                \
    X(model, loss_weighting, ENUM, "fixed", 0, 0, "fixed|uncertainty|pareto",                      \
      "how the losses are weighted: fixed (loss_weights), uncertainty (learned log-variances, "    \
      "dense weights), pareto (PE-LTR min-norm weights per batch)")                                \
    X(model, pareto_min_weight, FLOAT, "0.1", 0, 0.5, NULL,                                        \
      "pareto: lower bound of each loss's share (PE-LTR's c_k); shares sum to 1: at most "         \
      "1/losses")

typedef struct model_conf {
    MODEL_CONF_KEYS(CONF_FIELD)
} model_conf_t;

enum { MODEL_ESM2 = 0, MODEL_ESMM = 1, MODEL_NAIVE = 2, MODEL_NMTR = 3 };

/* The bottoms, in the order of the 'bottom' key's choices. */
enum {
    MODEL_BOTTOM_CONCAT = 0,
    MODEL_BOTTOM_SHARED = 1,
    MODEL_BOTTOM_MMOE = 2,
    MODEL_BOTTOM_OMOE = 3,
    MODEL_BOTTOM_PLE = 4,
    MODEL_NBOTTOMS = 5
};

/* The loss weightings, in the order of the 'loss_weighting' key's choices. */
enum { MODEL_LW_FIXED = 0, MODEL_LW_UNCERTAINTY = 1, MODEL_LW_PARETO = 2 };

#define MODEL_MAX_SLOTS 256 /* one byte per slot index in store keys and exports */
#define MODEL_MAX_LAYERS 8
#define MODEL_SLOT_NAME_MAX 64

typedef struct slot_spec {
    char name[MODEL_SLOT_NAME_MAX];
    int bias;        /* 1: a bias slot (feeds only the bias tower) */
    uint64_t seed;   /* keyhash_slot(name) */
    int dim;         /* floats per embedding row */
    int admit_min;   /* sightings before a row is created */
    int expire_days; /* 0: never */
} slot_spec_t;

typedef struct model_spec {
    int type; /* MODEL_* */
    int nslots;
    slot_spec_t slot[MODEL_MAX_SLOTS];
    int input_dim;               /* sum of slot dims */
    int nlayers;                 /* hidden layers per tower */
    int layer[MODEL_MAX_LAYERS]; /* hidden sizes */
    int ntowers;                 /* 4 for esm2, 3 for nmtr, 2 otherwise */
    int nloss;                   /* 3 for esm2 and nmtr, 2 otherwise */
    float loss_weight[3];
    optim_t emb_opt;
    optim_t dense_opt;
    /* the bottom (issue 15); sizes that do not apply to it are 0 */
    int bottom;                         /* MODEL_BOTTOM_* */
    int nbottom_layers;                 /* layers of each expert / the shared MLP; 0 for concat */
    int bottom_layer[MODEL_MAX_LAYERS]; /* their sizes */
    int experts;                        /* mmoe, omoe: experts (shared has one) */
    int ple_shared;                     /* ple: shared experts per level */
    int ple_task;                       /* ple: experts of each task per level */
    int ple_levels;                     /* ple: levels (the others have one) */
    /* the position-bias tower (issue 15; model/bias.h): bias slots are
     * slots with slot[s].bias set; they count in input_dim (the pooled
     * row) but not in the bottom's or towers' input */
    int nbias;                        /* bias slots, 0: no bias tower */
    int bias_dim;                     /* sum of their dims: the bias tower's input */
    int nbias_layers;                 /* hidden layers of the bias tower (0: linear) */
    int bias_layer[MODEL_MAX_LAYERS]; /* their sizes */
    int loss_weighting;               /* MODEL_LW_* */
    float pareto_min;                 /* pareto: lower bound of each loss's share */
} model_spec_t;

/* Build and validate the model description. Errors name the key. */
int model_spec_from_conf(model_spec_t *ms, const model_conf_t *mc, errbuf_t *eb);

/*
 * Floats in the dense parameter vector of the model ms describes: every
 * tower's layers (input_dim -> layer[0] -> ... -> 1), weights then biases,
 * then the bottom's and the bias tower's parameters.
 * This is the layout model.c allocates and the dense range a shard serves;
 * a shard learns its size here without building a model.
 */
size_t model_spec_dense_len(const model_spec_t *ms);

/* Floats of the learned loss weights in the dense vector: one
 * log-variance per loss with uncertainty weighting, else 0 (model.h lays
 * them out after the bottom). */
size_t model_spec_lossw_len(const model_spec_t *ms);

/* Name of loss weighting w (MODEL_LW_*): "fixed", ...; "?" otherwise. */
const char *model_lossw_name(int w);

/* Name of bottom b (MODEL_BOTTOM_*): "concat", ...; "?" otherwise. */
const char *model_bottom_name(int b);

/* Width of each tower's input: input_dim - bias_dim for concat, else the
 * last bottom layer's size. */
int model_spec_tower_input(const model_spec_t *ms);

/* Floats of the bottom's parameters (0 for concat); model/bottom.h lays
 * them out after the towers. */
size_t model_spec_bottom_len(const model_spec_t *ms);

/* Floats of the bias tower's parameters (0 without bias slots);
 * model/bias.h lays them out after the bottom. */
size_t model_spec_bias_len(const model_spec_t *ms);

/* Index of a slot by name, or -1. */
int model_spec_slot(const model_spec_t *ms, const char *name, size_t len);

#endif
