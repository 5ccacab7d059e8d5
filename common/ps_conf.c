/*
 * ps_conf.c - funnel-ps's key table, built from MODEL_CONF_KEYS and
 * PS_CONF_KEYS. See ps_conf.h.
 */
#include "common/ps_conf.h"

#define MODEL_ROW(...) CONF_ROW_IN(ps_conf_t, model, __VA_ARGS__)
#define PS_ROW(...) CONF_ROW(ps_conf_t, __VA_ARGS__)

static const conf_key_t keys[] = {MODEL_CONF_KEYS(MODEL_ROW) PS_CONF_KEYS(PS_ROW)};

static const char *const other_sections[] = {"data", "train", "cluster", "gen", NULL};

const conf_schema_t ps_conf_schema = {"ps", keys, sizeof(keys) / sizeof(keys[0]), other_sections};
