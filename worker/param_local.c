/*
 * param_local.c - param.h in this process: rows in an emb_table over a
 * RocksDB store, dense weights in the model itself. See param_local.h.
 */
#include "worker/param_local.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/dirs.h"
#include "common/meta.h"
#include "model/modeldir.h"
#include "table/ckpt_read.h"
#include "table/emb_table.h"
#include "table/store.h"

typedef struct local {
    param_t base;
    model_t *model;
    store_t *store;
    emb_table_t *table;
    const param_req_t *req; /* the pull recorded by pull_start */
    int mode;
    int readonly;
} local_t;

static int local_pull_start(param_t *p, const param_req_t *req, int mode, errbuf_t *eb)
{
    local_t *l = (local_t *)p;

    (void)eb;
    /* The work happens in pull_finish, after the previous batch's push:
     * in process, training is exactly sequential. */
    l->req = req;
    l->mode = l->readonly ? PARAM_PULL_PREDICT : mode;
    return 0;
}

static int local_pull_finish(param_t *p, float *const *rows, errbuf_t *eb)
{
    local_t *l = (local_t *)p;
    const param_req_t *req = l->req;

    if (!req)
        return errbuf_set(eb, ERR_INVAL, "pull_finish without pull_start");
    l->req = NULL;
    for (int s = 0; s < req->nslots; s++) {
        if (req->n[s] == 0)
            continue;
        int rc =
            emb_table_pull(l->table, s, req->keys[s], req->n[s], rows[s],
                           l->mode == PARAM_PULL_TRAIN ? EMB_PULL_CREATE : EMB_PULL_READONLY, eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int local_push(param_t *p, const param_req_t *req, const float *const *grads, errbuf_t *eb)
{
    local_t *l = (local_t *)p;

    if (l->readonly)
        return errbuf_set(eb, ERR_INVAL, "push to a read-only model");
    for (int s = 0; s < req->nslots; s++) {
        if (req->n[s] == 0)
            continue;
        int rc = emb_table_push(l->table, s, req->keys[s], req->n[s], grads[s], eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int local_pull_dense(param_t *p, float *w, size_t n, errbuf_t *eb)
{
    local_t *l = (local_t *)p;
    size_t have;
    float *mine = model_params(l->model, &have);

    if (n != have)
        return errbuf_set(eb, ERR_MISMATCH, "dense size %zu, model has %zu", n, have);
    if (w != mine)
        memcpy(w, mine, n * sizeof(float));
    return 0;
}

static int local_push_dense(param_t *p, const float *g, size_t n, errbuf_t *eb)
{
    local_t *l = (local_t *)p;
    size_t have;
    float *mine = model_grads(l->model, &have);

    if (n != have)
        return errbuf_set(eb, ERR_MISMATCH, "dense size %zu, model has %zu", n, have);
    if (g != mine)
        memcpy(mine, g, n * sizeof(float));
    model_apply_grads(l->model);
    return 0;
}

static int local_sync(param_t *p, errbuf_t *eb)
{
    (void)p;
    (void)eb;
    return 0;
}

static void local_destroy(param_t *p)
{
    local_t *l = (local_t *)p;

    emb_table_destroy(&l->table);
    store_close(&l->store);
    free(l);
}

static const param_ops_t local_ops = {
    local_pull_start,
    local_pull_finish,
    local_push,
    local_pull_dense,
    local_push_dense,
    local_sync,
    NULL,
    NULL,
    local_destroy,
    NULL,
};

int param_local_open(param_t **out, model_t *m, const char *store_dir, int readonly,
                     uint64_t mem_limit, errbuf_t *eb)
{
    local_t *l = calloc(1, sizeof(*l));
    int rc;

    *out = NULL;
    if (!l)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    l->base.ops = &local_ops;
    l->model = m;
    l->readonly = readonly;
    rc = emb_store_open(&l->store, store_dir, readonly ? STORE_READONLY : STORE_CREATE, store_dir,
                        eb);
    if (rc == 0)
        rc = emb_table_open(&l->table, l->store, model_spec(m), mem_limit, eb);
    if (rc != 0) {
        local_destroy(&l->base);
        return rc;
    }
    *out = &l->base;
    return 0;
}

/* The shard stores of checkpoint dir as one read-only store, with its
 * dense weights loaded into m. */
static int open_checkpoint(store_t **out, model_t *m, const char *dir, const meta_t *saved,
                           errbuf_t *eb)
{
    store_t **parts = calloc((size_t)saved->shards, sizeof(*parts));
    meta_t running;
    size_t n;
    float *w = model_params(m, &n);
    int rc;

    if (!parts)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    meta_from_spec(&running, model_spec(m), 0, 0, n);
    rc = meta_check(saved, &running, dir, eb);
    if (rc == 0)
        rc = ckpt_read_open_shards(parts, dir, saved->shards, eb);
    if (rc != 0)
        goto out;
    rc = ckpt_read_dense(parts, saved->shards, dir, w, n, eb);
    if (rc == 0 && saved->shards == 1) {
        *out = parts[0];
        parts[0] = NULL;
    } else if (rc == 0) {
        rc = store_multi_open(out, parts, saved->shards, dir, eb);
        if (rc == 0)
            memset(parts, 0, (size_t)saved->shards * sizeof(*parts)); /* owned by *out */
    }
    for (int i = 0; i < saved->shards; i++)
        store_close(&parts[i]);
out:
    free(parts);
    return rc;
}

int param_local_open_saved(param_t **out, model_t *m, const char *dir, errbuf_t *eb)
{
    char path[DIRS_PATH_MAX];
    struct stat st;
    meta_t saved;
    local_t *l;
    int rc;

    *out = NULL;
    rc = meta_read(dir, &saved, eb);
    if (rc == 0)
        rc = dirs_path(path, sizeof(path), eb, "%s/%s", dir, MODELDIR_DENSE);
    if (rc != 0)
        return rc;
    if (stat(path, &st) == 0) { /* a model directory */
        rc = modeldir_load_dense(dir, m, eb);
        if (rc == 0)
            modeldir_rows_path(dir, path, sizeof(path));
        return rc == 0 ? param_local_open(out, m, path, 1, 0, eb) : rc;
    }
    l = calloc(1, sizeof(*l));
    if (!l)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    l->base.ops = &local_ops;
    l->model = m;
    l->readonly = 1;
    rc = open_checkpoint(&l->store, m, dir, &saved, eb);
    if (rc == 0)
        rc = emb_table_open(&l->table, l->store, model_spec(m), 0, eb);
    if (rc != 0) {
        local_destroy(&l->base);
        return rc;
    }
    *out = &l->base;
    return 0;
}

int param_local_flush(param_t *p, errbuf_t *eb)
{
    local_t *l = (local_t *)p;
    int rc = emb_table_flush(l->table, NULL, eb);

    /* a model directory keeps its rows in synced table files, not in the
     * log, and records that it does (store_seal) */
    return rc == 0 ? store_seal(l->store, 1, eb) : rc;
}
