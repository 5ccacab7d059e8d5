/*
 * param_bundle.c - param.h over a serving bundle. See param_bundle.h.
 */
#include "worker/param_bundle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/meta.h"
#include "table/bundle.h"
#include "table/bundle_rows.h"

typedef struct pbundle {
    param_t base;
    model_t *model;
    bundle_rows_t *rows;
    const param_req_t *req;
} pbundle_t;

static int pb_pull_start(param_t *p, const param_req_t *req, int mode, errbuf_t *eb)
{
    (void)mode;
    (void)eb;
    ((pbundle_t *)p)->req = req;
    return 0;
}

static int pb_pull_finish(param_t *p, float *const *rows, errbuf_t *eb)
{
    pbundle_t *b = (pbundle_t *)p;
    const param_req_t *req = b->req;
    const model_spec_t *ms = model_spec(b->model);

    if (!req)
        return errbuf_set(eb, ERR_INVAL, "pull_finish without pull_start");
    b->req = NULL;
    for (int s = 0; s < req->nslots; s++) {
        size_t dim = (size_t)ms->slot[s].dim;
        for (size_t i = 0; i < req->n[s]; i++) {
            const float *r = bundle_rows_find(b->rows, s, req->keys[s][i]);
            if (r)
                memcpy(rows[s] + i * dim, r, dim * sizeof(float));
            else
                memset(rows[s] + i * dim, 0, dim * sizeof(float));
        }
    }
    return 0;
}

static int pb_push(param_t *p, const param_req_t *req, const float *const *grads, errbuf_t *eb)
{
    (void)p;
    (void)req;
    (void)grads;
    return errbuf_set(eb, ERR_INVAL, "push to a serving bundle (read-only)");
}

static int pb_pull_dense(param_t *p, float *w, size_t n, errbuf_t *eb)
{
    size_t have;
    float *mine = model_params(((pbundle_t *)p)->model, &have);

    if (n != have)
        return errbuf_set(eb, ERR_MISMATCH, "dense size %zu, model has %zu", n, have);
    if (w != mine)
        memcpy(w, mine, n * sizeof(float));
    return 0;
}

static int pb_push_dense(param_t *p, const float *g, size_t n, errbuf_t *eb)
{
    (void)p;
    (void)g;
    (void)n;
    return errbuf_set(eb, ERR_INVAL, "push to a serving bundle (read-only)");
}

static int pb_sync(param_t *p, errbuf_t *eb)
{
    (void)p;
    (void)eb;
    return 0;
}

static void pb_destroy(param_t *p)
{
    pbundle_t *b = (pbundle_t *)p;

    bundle_rows_destroy(&b->rows);
    free(b);
}

static const param_ops_t pb_ops = {
    pb_pull_start, pb_pull_finish, pb_push, pb_pull_dense, pb_push_dense,
    pb_sync,       NULL,           NULL,    pb_destroy,    NULL,
};

int param_bundle_open(param_t **out, model_t *m, const char *dir, errbuf_t *eb)
{
    char path[BUNDLE_PATH_MAX];
    bundle_t *bd = malloc(sizeof(*bd));
    pbundle_t *b = calloc(1, sizeof(*b));
    meta_t running;
    size_t n;
    FILE *f = NULL;
    int rc;

    *out = NULL;
    if (!bd || !b) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    b->base.ops = &pb_ops;
    b->model = m;
    rc = bundle_open(bd, dir, eb);
    model_params(m, &n);
    meta_from_spec(&running, model_spec(m), 0, 0, n);
    if (rc == 0)
        rc = meta_check(&bd->meta, &running, dir, eb);
    if (rc == 0)
        rc = bundle_path(bd, BUNDLE_DENSE, path, sizeof(path), eb);
    if (rc == 0 && !(f = fopen(path, "rb")))
        rc = errbuf_set(eb, ERR_IO, "open %s: %s", path, strerror(errno));
    if (rc == 0 && (rc = model_load_dense(m, f, eb)) != 0)
        errbuf_prefix(eb, rc, "%s", path);
    if (rc == 0)
        rc = bundle_path(bd, BUNDLE_FULL, path, sizeof(path), eb);
    if (rc == 0)
        rc = bundle_rows_load(&b->rows, path, model_spec(m), eb);
out:
    if (f)
        fclose(f);
    free(bd);
    if (rc != 0 && b) {
        pb_destroy(&b->base);
        b = NULL;
    }
    *out = b ? &b->base : NULL;
    return rc;
}
