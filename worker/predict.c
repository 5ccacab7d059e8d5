/*
 * predict.c - prediction files from a model directory or a cluster.
 * See predict.h.
 */
#include "worker/predict.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/afile.h"
#include "common/log.h"
#include "common/meta.h"
#include "table/bundle.h"
#include "worker/progress.h"
#include "worker/session.h"

#define PREDICT_BATCH 4096 /* rows per prediction batch */

/* Write the rows of one batch: pctr pcvr pctcvr [pctavr]. */
static int write_rows(FILE *f, const float *pred, size_t n, int with_ctavr)
{
    for (size_t i = 0; i < n; i++) {
        const float *p = pred + i * HEADS_NPRED;
        if (with_ctavr)
            fprintf(f, "%.6g\t%.6g\t%.6g\t%.6g\n", p[0], p[1], p[2], p[3]);
        else
            fprintf(f, "%.6g\t%.6g\t%.6g\n", p[0], p[1], p[2]);
    }
    return ferror(f) ? ERR_IO : 0;
}

/* Score every batch of the session's reader into af->f, with the header
 * line first. *written gets the rows written. */
static int predict_all(session_t *s, float *pred, afile_t *af, uint64_t *written, progress_t *pg,
                       errbuf_t *eb)
{
    batch_t *b = &s->batch[0];
    pool_t *pool = &s->pool[0];
    int with_ctavr = heads_has_pred(model_heads(s->model), 3);
    int rc;

    fprintf(af->f, with_ctavr ? "pctr\tpcvr\tpctcvr\tpctavr\n" : "pctr\tpcvr\tpctcvr\n");
    while ((rc = reader_next_batch(s->reader, b, PREDICT_BATCH, eb)) == 0) {
        rc = pool_prepare(pool, b);
        if (rc == 0)
            rc = param_pull_start(s->param, &pool->req, PARAM_PULL_PREDICT, eb);
        if (rc == 0)
            rc = param_pull_finish(s->param, pool->rows, eb);
        if (rc != 0)
            return rc;
        pool_forward(pool, b, s->x);
        rc = model_predict(s->model, s->x, b->n, pred);
        if (rc == 0)
            rc = write_rows(af->f, pred, b->n, with_ctavr);
        if (rc != 0)
            return errbuf_set(eb, rc, "write %s: %s", af->tmp, strerror(errno));
        *written += b->n;
        uint64_t done, total;
        reader_disk_progress(s->reader, &done, &total);
        progress_update(pg, b->n, NULL, total ? (double)done / (double)total : -1);
    }
    return rc == ERR_EOF ? 0 : rc;
}

int predict_set_bias(model_t *m, const worker_conf_t *wc, errbuf_t *eb)
{
    if (wc->with_bias && !model_has_bias(m))
        return errbuf_set(eb, ERR_CONFIG,
                          "--with_bias: the model has no bias tower (its bias_slots is empty); "
                          "drop --with_bias, or train a model with bias_slots = position");
    model_predict_set_bias(m, wc->with_bias);
    return 0;
}

int predict_take_layout(worker_conf_t *wc, const char *dir, errbuf_t *eb)
{
    bundle_t *b = bundle_is(dir) ? malloc(sizeof(*b)) : NULL; /* a bundle: verified first */
    meta_t m;
    int rc = !b ? meta_read(dir, &m, eb) : bundle_open(b, dir, eb);

    if (b && rc == 0)
        m = b->meta;
    free(b);
    if (rc == 0)
        rc = meta_apply_conf(&m, dir, &worker_conf_schema, wc, &wc->given, eb);
    return rc;
}

int predict_run(const worker_conf_t *wc, const char *model_dir, char *const *logs, int nlogs,
                const char *out_path, errbuf_t *eb)
{
    static volatile sig_atomic_t never;
    session_opts_t so = {
        .mode = SESSION_PREDICT,
        .batch_size = PREDICT_BATCH,
        .logs = logs,
        .nlogs = nlogs,
        .model_dir = model_dir,
        .stop = &never,
    };
    session_t s;
    afile_t af = {0};
    float *pred = NULL;
    uint64_t written = 0;
    progress_t pg;
    progress_opts_t po = {.show = progress_show((int)wc->progress),
                          .every = wc->metrics_interval,
                          .plain_every = wc->progress_interval,
                          .label = "predict"};
    size_t n;
    int rc;

    progress_init(&pg, &po, eb); /* no metrics file: cannot fail */
    rc = session_init(&s, wc, &so, eb);
    if (rc == 0)
        rc = predict_set_bias(s.model, wc, eb);
    if (rc == 0 && s.cluster) { /* the cluster's weights, once: prediction changes none */
        float *w = model_params(s.model, &n);
        rc = param_pull_dense(s.param, w, n, eb);
    }
    if (rc != 0)
        goto out;
    pred = malloc((size_t)PREDICT_BATCH * HEADS_NPRED * sizeof(float));
    if (!pred) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = afile_open(&af, out_path, eb);
    if (rc == 0)
        rc = predict_all(&s, pred, &af, &written, &pg, eb);
    progress_finish(&pg);
    if (rc == 0)
        rc = afile_commit(&af, eb);
    if (rc != 0)
        goto out;
    reader_log_summary(s.reader);
    LOG_INFO("wrote %llu predictions to %s", (unsigned long long)written, out_path);
out:
    afile_abort(&af);
    free(pred);
    session_release(&s);
    progress_release(&pg);
    return rc;
}
