/*
 * gen_conf.c - funnel-gen's key table, built from GEN_CONF_KEYS.
 * See gen_conf.h.
 */
#include "gen/gen_conf.h"

#define GEN_ROW(...) CONF_ROW(gen_conf_t, __VA_ARGS__)

static const conf_key_t keys[] = {GEN_CONF_KEYS(GEN_ROW)};

/* Sections of a shared config file that belong to other roles. */
static const char *const other_sections[] = {"model", "data", "train", "cluster",
                                             "ps",    "emb",  NULL};

const conf_schema_t gen_conf_schema = {"gen", keys, sizeof(keys) / sizeof(keys[0]), other_sections};
