/*
 * predict.c - prediction files from a model directory or a cluster.
 * See predict.h.
 */
#include "worker/predict.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/log.h"
#include "common/meta.h"
#include "model/model.h"
#include "model/modeldir.h"
#include "worker/param_local.h"
#include "worker/param_remote.h"
#include "worker/pool.h"
#include "data/reader.h"

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

int predict_run(const worker_conf_t *wc, const char *model_dir, char *const *logs, int nlogs,
                const char *out_path, errbuf_t *eb)
{
    model_spec_t ms;
    model_t *m = NULL;
    param_t *p = NULL;
    reader_t *r = NULL;
    batch_t b;
    pool_t pool;
    float *x = NULL, *pred = NULL;
    FILE *f = NULL;
    char tmp[4200], rows[4200];
    uint64_t written = 0;
    size_t n;
    int with_ctavr, rc;
    static volatile sig_atomic_t never;

    memset(&b, 0, sizeof(b));
    memset(&pool, 0, sizeof(pool));
    rc = model_spec_from_conf(&ms, &wc->model, eb);
    if (rc != 0)
        return rc;
    m = model_new(&ms, PREDICT_BATCH, (uint64_t)wc->seed, eb);
    if (!m)
        return ERR_NOMEM;
    rc = model_threads_set(m, (int)wc->threads, wc->parallel, eb);
    if (rc != 0)
        goto out;
    if (model_dir) {
        rc = modeldir_load_dense(model_dir, m, eb);
        if (rc != 0)
            goto out;
        modeldir_rows_path(model_dir, rows, sizeof(rows));
        rc = param_local_open(&p, m, rows, 1, 0, eb);
    } else {
        float *w = model_params(m, &n);
        rc = param_remote_open(&p, wc, &ms, w, n, &never, eb);
        if (rc == 0)
            rc = param_pull_dense(p, w, n, eb);
    }
    if (rc != 0)
        goto out;
    reader_opts_t o;
    worker_conf_reader_opts(wc, 0, &o);
    rc = reader_open(&r, &ms, &o, logs, nlogs, eb);
    if (rc != 0)
        goto out;
    if (batch_init(&b, ms.nslots, PREDICT_BATCH) != 0 || pool_init(&pool, &ms) != 0) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    x = malloc((size_t)PREDICT_BATCH * (size_t)ms.input_dim * sizeof(float));
    pred = malloc((size_t)PREDICT_BATCH * HEADS_NPRED * sizeof(float));
    if (!x || !pred) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", out_path);
    f = fopen(tmp, "w");
    if (!f) {
        rc = errbuf_set(eb, ERR_IO, "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    with_ctavr = heads_has_pred(model_heads(m), 3);
    fprintf(f, with_ctavr ? "pctr\tpcvr\tpctcvr\tpctavr\n" : "pctr\tpcvr\tpctcvr\n");
    while ((rc = reader_next_batch(r, &b, PREDICT_BATCH, eb)) == 0) {
        rc = pool_prepare(&pool, &b);
        if (rc == 0)
            rc = param_pull_start(p, &pool.req, PARAM_PULL_PREDICT, eb);
        if (rc == 0)
            rc = param_pull_finish(p, pool.rows, eb);
        if (rc != 0)
            goto out;
        pool_forward(&pool, &b, x);
        rc = model_predict(m, x, b.n, pred);
        if (rc == 0)
            rc = write_rows(f, pred, b.n, with_ctavr);
        if (rc != 0) {
            errbuf_set(eb, rc, "write %s: %s", tmp, strerror(errno));
            goto out;
        }
        written += b.n;
    }
    if (rc != ERR_EOF)
        goto out;
    rc = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = errbuf_set(eb, ERR_IO, "write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fclose(f);
    f = NULL;
    if (rename(tmp, out_path) != 0) {
        rc = errbuf_set(eb, ERR_IO, "rename %s to %s: %s", tmp, out_path, strerror(errno));
        goto out;
    }
    reader_log_summary(r);
    LOG_INFO("wrote %llu predictions to %s", (unsigned long long)written, out_path);
out:
    if (f) {
        fclose(f);
        unlink(tmp);
    }
    free(pred);
    free(x);
    pool_release(&pool);
    batch_release(&b);
    reader_destroy(&r);
    param_destroy(&p);
    model_destroy(&m);
    return rc;
}
