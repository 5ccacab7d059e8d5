/*
 * worker_conf.c - funnel-worker's key table, built from MODEL_CONF_KEYS
 * and WORKER_CONF_KEYS. See worker_conf.h.
 */
#include "worker_conf.h"

#define MODEL_ROW(...) CONF_ROW_IN(worker_conf_t, model, __VA_ARGS__)
#define WORKER_ROW(...) CONF_ROW(worker_conf_t, __VA_ARGS__)

static const conf_key_t keys[] = {MODEL_CONF_KEYS(MODEL_ROW) WORKER_CONF_KEYS(WORKER_ROW)};

static const char *const other_sections[] = {"ps", "gen", NULL};

const conf_schema_t worker_conf_schema = {"worker", keys, sizeof(keys) / sizeof(keys[0]),
                                          other_sections};
