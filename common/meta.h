/*
 * meta.h - the metadata file of a saved model or checkpoint directory.
 *
 * Every model directory (worker save) and checkpoint (cluster) carries a
 * file META describing what the rows and dense weights inside mean: magic
 * and format version, model type, slots with their dimensions, tower sizes,
 * optimizers, shard count and routing, the day, and a digest of the [model]
 * configuration. Loading compares it with the running configuration and
 * refuses a mismatch with a message that says which property differs.
 *
 * NOTES ON THE DESIGN
 *   META is text, one "key value" per line, so an operator can read it with
 *   cat. It is written atomically (afile.h: META.tmp, fsynced, renamed over
 *   META, directory fsynced), so a reader sees the old or the new file,
 *   never a torn one.
 *
 *     funnel-meta 1
 *     model esm2
 *     slots 8
 *     slot 0 user_id 16
 *     ...
 *     towers 256,128,64
 *     emb_optimizer adagrad
 *     dense_optimizer adam
 *     shards 2
 *     routing xxh64-mod
 *     day 3
 *     dense_params 295172
 *     format tsv1
 *     digest 9a1f...
 *     check 5c03...
 *
 *   Models with a bottom other than concat (issue 15) carry its lines after
 *   "dense_optimizer": "bottom mmoe" and the sizes that apply to it, each
 *   named as its [model] key ("experts 4", "expert_layers 128,64",
 *   "shared_layers 256,128", "ple_shared_experts 2", "ple_task_experts 1",
 *   "ple_levels 2"); they are part of the digest. A concat model writes
 *   none of them, so its META (and digest) is the one written before
 *   bottoms existed, and a file without them reads as concat.
 *   Models with a position-bias tower (issue 15) carry "bias_slots
 *   position,device" (in slot order) and "bias_layers 16" ("0": linear)
 *   after the bottom lines; they are part of the digest. Models without
 *   one write neither, so their META and digest are unchanged, and a file
 *   without them reads as no bias tower.
 *
 *   A model with uncertainty loss weighting (model/lossw.h: its
 *   log-variances are dense weights) writes "loss_weighting uncertainty"
 *   after them, part of the digest; other weightings write nothing (their
 *   META and digest are unchanged), and a file without the line reads as
 *   a model without log-variances.
 *
 *   "format" (optional) names the log format the model was trained on
 *   (the worker's [data] format: tsv1, aliccp), so predict reads new logs
 *   the way train read them; it is not part of the digest (it says how
 *   logs are read, not what the rows mean). A file written before it
 *   existed has no such line and reads with format "" (unknown): the
 *   configuration decides.
 *
 *   Reading is strict: every line must be one of these, the digest must
 *   match the layout the lines describe, and "check" (the last line, an
 *   XXH64 of every byte before it; files written before it existed have
 *   none) must match, so an edited or damaged META is refused, never read
 *   in part.
 *
 * Thread-safety: pure functions over caller-owned structs.
 */
#ifndef FUNNEL_META_H
#define FUNNEL_META_H

#include <stdint.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/model_conf.h"

#define META_MAGIC "funnel-meta"
#define META_VERSION 1
#define META_FILE "META"

typedef struct meta {
    int version;
    int model_type; /* MODEL_* */
    int nslots;
    char slot[MODEL_MAX_SLOTS][MODEL_SLOT_NAME_MAX];
    int dim[MODEL_MAX_SLOTS]; /* floats per row */
    int nlayers;
    int layer[MODEL_MAX_LAYERS];
    int emb_opt;   /* OPTIM_* */
    int dense_opt; /* OPTIM_* */
    int shards;
    int day;
    uint64_t dense_params; /* floats in the dense block */
    uint64_t digest;       /* of the layout-defining [model] keys */
    char format[16];       /* log format trained on ("tsv1", "aliccp"); "": not recorded */
    /* the bottom (issue 15); sizes that do not apply to it are 0 */
    int bottom; /* MODEL_BOTTOM_* */
    int nbottom_layers;
    int bottom_layer[MODEL_MAX_LAYERS];
    int experts, ple_shared, ple_task, ple_levels;
    /* the position-bias tower (issue 15): "" without one */
    char bias_slots[256];  /* bias slot names in slot order, "position,device" */
    char bias_layers[128]; /* its hidden sizes, "16" ("0": linear) */
    int loss_weighting;    /* MODEL_LW_UNCERTAINTY (s_k in the dense block) or MODEL_LW_FIXED */
} meta_t;

/* Describe spec as it would be saved by `shards` shards on `day`; the
 * format is left unrecorded (set it with meta_set_format). */
void meta_from_spec(meta_t *m, const model_spec_t *ms, int shards, int day, uint64_t dense_params);

/* Record the log format (a word of letters and digits, < 16 bytes; NULL
 * or "" records none). Returns 0, or ERR_INVAL for another name. */
int meta_set_format(meta_t *m, const char *format);

/* Name of model type t (MODEL_*): "esm2", "esmm", "naive", "nmtr"; "?" otherwise. */
const char *meta_model_name(int t);

/* The layout META records as configuration text, for the key `key` of
 * [model] or [data]: model_type, slots ("a,b,c"), emb_dim (the dimension
 * most slots have), slot_dims (the others, "name:dim,..." or ""), towers,
 * emb_optimizer, dense_optimizer, format, bottom, and the bottom's sizes
 * that apply to it (experts, expert_layers, shared_layers,
 * ple_shared_experts, ple_task_experts, ple_levels), bias_slots ("" without
 * a bias tower), bias_layers (with one) and loss_weighting (only
 * "uncertainty": the other weightings do not change the layout and are
 * the configuration's). Returns 0, or ERR_NOTFOUND for another key or a
 * format or weighting META does not record. */
int meta_conf_value(const meta_t *m, const char *key, char *buf, size_t len);

/*
 * Take the layout of the model in dir (described by m) into a role's
 * configuration obj of schema sc: every layout key of meta_conf_value()
 * the schema has and the user did not give (given, see conf_key_given) is
 * set to META's value; a given one must say the same, else ERR_MISMATCH
 * naming both values and what to change ("the model in DIR holds an esmm
 * model; --model_type says esm2: drop the option to use the model's, or
 * give a model trained as esm2"). emb_dim and slot_dims are filled only
 * when neither was given; given ones are compared per slot by meta_check()
 * when the model is loaded. Returns 0, ERR_MISMATCH or ERR_CONFIG.
 */
int meta_apply_conf(const meta_t *m, const char *dir, const conf_schema_t *sc, void *obj,
                    const conf_given_t *given, errbuf_t *eb);

/* Write dir/META atomically (afile_write), which fsyncs dir too: entries
 * made in dir before, such as shard stores, are then durable as well.
 * Returns 0, ERR_INVAL for a path too long, or ERR_IO naming the file. */
int meta_write(const char *dir, const meta_t *m, errbuf_t *eb);

/* Read dir/META. ERR_NOTFOUND if absent, ERR_CORRUPT (naming the file and
 * line) for a line META does not have, a digest or checksum that does not
 * match, a missing slot or digest line; ERR_VERSION for a newer format,
 * ERR_INVAL for a path too long. */
int meta_read(const char *dir, meta_t *m, errbuf_t *eb);

/* Compare a saved description with the running one (shards compared only
 * when both are > 0). ERR_MISMATCH naming the first difference. */
int meta_check(const meta_t *saved, const meta_t *running, const char *dir, errbuf_t *eb);

#endif
