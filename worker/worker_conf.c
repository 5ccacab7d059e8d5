/*
 * worker_conf.c - funnel-worker's key table, built from MODEL_CONF_KEYS
 * and WORKER_CONF_KEYS. See worker_conf.h.
 */
#include "worker/worker_conf.h"

#include <string.h>

#include "data/reader.h"

#define MODEL_ROW(...) CONF_ROW_IN(worker_conf_t, model, __VA_ARGS__)
#define WORKER_ROW(...) CONF_ROW(worker_conf_t, __VA_ARGS__)

static const conf_key_t keys[] = {MODEL_CONF_KEYS(MODEL_ROW) WORKER_CONF_KEYS(WORKER_ROW)};

static const char *const other_sections[] = {"ps", "gen", NULL};

const conf_schema_t worker_conf_schema = {"worker", keys, sizeof(keys) / sizeof(keys[0]),
                                          other_sections};

void worker_conf_reader_opts(const worker_conf_t *wc, int split, reader_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->format = wc->format;
    o->strict = wc->strict;
    o->report_rejects = (int)wc->report_rejects;
    o->allow_empty = wc->allow_empty;
    o->rank = split ? (int)wc->rank : 0;
    o->workers = split ? (int)wc->workers : 1;
}
