/*
 * worker_conf.c - funnel-worker's key table, built from MODEL_CONF_KEYS
 * and WORKER_CONF_KEYS. See worker_conf.h.
 */
#include "worker/worker_conf.h"

#include <stdlib.h>
#include <string.h>

#include "common/parse.h"

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

int worker_conf_label_weights(const worker_conf_t *wc, float lw[3], errbuf_t *eb)
{
    static const char *const names[3] = {"click", "action", "buy"};
    char *buf = strdup(wc->label_weights.s), *items[8];
    int n, rc = 0;

    lw[0] = lw[1] = lw[2] = 1.0f;
    if (!buf)
        return errbuf_set(eb, ERR_NOMEM, "key 'label_weights': out of memory");
    n = buf[0] ? conf_split_list(buf, ',', items, 8) : 0;
    if (n < 0)
        rc = errbuf_set(eb, ERR_CONFIG, "key 'label_weights': more than 8 items");
    for (int i = 0; rc == 0 && i < n; i++) {
        char *colon = strchr(items[i], ':');
        double v;
        int k = -1;

        if (colon) {
            *colon = '\0';
            for (int j = 0; j < 3; j++)
                if (strcmp(items[i], names[j]) == 0)
                    k = j;
        }
        if (k < 0 || parse_double_str(colon + 1, &v) != 0 || !(v >= 0) || v > 1e6)
            rc = errbuf_set(eb, ERR_CONFIG,
                            "key 'label_weights': item %d '%s%s%s' is not LABEL:WEIGHT with "
                            "LABEL click, action or buy and WEIGHT a number in [0, 1e6] "
                            "(e.g. click:1,action:1,buy:5)",
                            i + 1, items[i], colon ? ":" : "", colon ? colon + 1 : "");
        else
            lw[k] = (float)v;
    }
    free(buf);
    return rc;
}
