/*
 * session.c - the set-up shared by training and prediction. See session.h.
 */
#include "worker/session.h"

#include <stdlib.h>
#include <string.h>

#include "common/dirs.h"
#include "common/log.h"
#include "model/dense.h"
#include "model/modeldir.h"
#include "table/bundle.h"
#include "worker/param_bundle.h"
#include "worker/param_local.h"
#include "worker/param_remote.h"

/* The parameters in process: training begins a new model directory
 * (with init_from's rows and dense weights, if given) and writes its rows;
 * prediction reads the saved model's. */
static int open_param_local(session_t *s, errbuf_t *eb)
{
    const session_opts_t *o = &s->o;
    const char *rows_dir = o->model_dir, *dense_from = o->model_dir;
    int readonly = o->mode == SESSION_PREDICT;
    char rows[DIRS_PATH_MAX + 16];
    int rc = 0;

    if (readonly && bundle_is(o->model_dir)) /* a serving bundle (predict --bundle) */
        return param_bundle_open(&s->param, s->model, o->model_dir, eb);
    if (readonly) /* a model directory or a checkpoint of any shard count */
        return param_local_open_saved(&s->param, s->model, o->model_dir, eb);
    rc = modeldir_begin(o->model_dir, o->init_from, s->tmpdir, sizeof(s->tmpdir), eb);
    rows_dir = s->tmpdir;
    dense_from = o->init_from;
    if (rc == 0 && dense_from)
        rc = modeldir_load_dense(dense_from, s->model, eb);
    if (rc != 0)
        return rc;
    modeldir_rows_path(rows_dir, rows, sizeof(rows));
    return param_local_open(&s->param, s->model, rows, readonly, 0, eb);
}

static int open_param(session_t *s, errbuf_t *eb)
{
    size_t n;
    float *w;

    if (!s->cluster)
        return open_param_local(s, eb);
    w = model_params(s->model, &n);
    /* prediction opens the cluster read-only: no initial weights to give */
    return param_remote_open(&s->param, s->wc, &s->ms, s->o.mode == SESSION_PREDICT ? NULL : w, n,
                             s->o.stop, eb);
}

int session_reopen_reader(session_t *s, errbuf_t *eb)
{
    reader_opts_t ro;

    worker_conf_reader_opts(s->wc, s->o.mode == SESSION_TRAIN, &ro);
    if (s->keys) {
        ro.on_token = keydict_add_cb;
        ro.on_token_ctx = s->keys;
    }
    if (s->slots) {
        ro.on_unknown = slotuse_unknown_cb;
        ro.on_unknown_ctx = s->slots;
    }
    reader_destroy(&s->reader);
    return reader_open(&s->reader, &s->ms, &ro, s->o.logs, s->o.nlogs, eb);
}

int session_init(session_t *s, const worker_conf_t *wc, const session_opts_t *o, errbuf_t *eb)
{
    int rc;

    memset(s, 0, sizeof(*s));
    s->wc = wc;
    s->o = *o;
    s->cluster = o->model_dir == NULL;
    s->depth = o->mode == SESSION_TRAIN ? 2 : 1;
    rc = model_spec_from_conf(&s->ms, &wc->model, eb);
    if (rc != 0)
        return rc;
    s->model = model_new(&s->ms, o->batch_size, (uint64_t)wc->seed, eb);
    if (!s->model)
        return ERR_NOMEM;
    rc = model_threads_set(s->model, (int)wc->threads, wc->parallel, eb);
    if (rc != 0)
        return rc;
    model_precision_set(s->model, wc->dense_precision);
    dense_gemm_set(wc->dense_gemm);
    for (int i = 0; i < s->depth; i++) {
        rc = batch_init(&s->batch[i], s->ms.nslots, o->batch_size);
        if (rc == 0)
            rc = pool_init(&s->pool[i], &s->ms);
        if (rc != 0)
            return errbuf_set(eb, rc, "out of memory");
    }
    s->x = malloc(o->batch_size * (size_t)s->ms.input_dim * sizeof(float));
    if (!s->x)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    if (o->mode == SESSION_TRAIN && *wc->key_dict.s) {
        if (s->cluster)
            return errbuf_set(eb, ERR_CONFIG,
                              "--key_dict %s: a worker on a cluster reads only its share of the "
                              "logs; write the dictionary with `funnel-worker check-data "
                              "--key_dict %s LOGS...` instead",
                              wc->key_dict.s, wc->key_dict.s);
        s->keys = keydict_new(&s->ms, (size_t)wc->key_dict_max);
        if (!s->keys)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    if (o->mode == SESSION_TRAIN && wc->slot_check_rows > 0) {
        slotuse_policy_t p = {(int)wc->allow_unknown_slots, (int)wc->allow_unused_slots,
                              (uint64_t)wc->slot_check_rows, wc->format == READER_ALICCP};
        s->slots = slotuse_new(&s->ms, &p);
        if (!s->slots)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    rc = session_reopen_reader(s, eb);
    if (rc == 0)
        rc = open_param(s, eb);
    return rc;
}

int session_commit_model(session_t *s, errbuf_t *eb)
{
    int rc = param_local_flush(s->param, eb);

    if (rc == 0) {
        param_destroy(&s->param); /* closes the rows store before the rename */
        char format[32];
        conf_format_value(conf_find(&worker_conf_schema, "format"), s->wc, format, sizeof(format));
        rc = modeldir_commit(s->o.model_dir, s->tmpdir, s->model, format, eb);
    }
    if (rc != 0)
        return errbuf_prefix(eb, rc, "model not saved (%s keeps what it held)", s->o.model_dir);
    if (s->keys) {
        char line[1024];
        rc = keydict_write(s->keys, s->wc->key_dict.s, eb);
        keydict_summary(s->keys, s->wc->key_dict.s, line, sizeof(line));
        if (rc == 0)
            LOG_INFO("%s", line);
    }
    return rc;
}

void session_discard_model(session_t *s)
{
    if (s->cluster || !s->tmpdir[0])
        return;
    param_destroy(&s->param); /* closes the rows store inside tmpdir */
    dirs_remove_tree(s->tmpdir, NULL);
    s->tmpdir[0] = '\0';
}

void session_release(session_t *s)
{
    free(s->x);
    for (int i = 0; i < SESSION_DEPTH; i++) {
        pool_release(&s->pool[i]);
        batch_release(&s->batch[i]);
    }
    reader_destroy(&s->reader);
    param_destroy(&s->param);
    model_destroy(&s->model);
    keydict_destroy(&s->keys);
    slotuse_destroy(&s->slots);
    memset(s, 0, sizeof(*s));
}
