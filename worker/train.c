/*
 * train.c - the training loop. See train.h.
 */
#include "worker/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/log.h"
#include "model/model.h"
#include "model/modeldir.h"
#include "worker/param.h"
#include "worker/param_local.h"
#include "worker/param_remote.h"
#include "worker/pool.h"
#include "worker/progress.h"
#include "data/reader.h"

#define PROGRESS_EVERY_S 2.0 /* s between worker position records (cluster) */

/* Everything the loop owns; released in reverse order by loop_release(). */
typedef struct loop {
    const worker_conf_t *wc;
    const train_args_t *a;
    model_spec_t ms;
    model_t *model;
    param_t *param;
    reader_t *reader;
    batch_t batch[2];
    pool_t pool[2];
    reader_pos_t pos[2];     /* reader position after batch[i] */
    float *x, *dx;           /* (B, D) input and its gradient */
    progress_t prog;
    uint64_t total_bytes;    /* of the input files, for the ETA */
    uint64_t samples;        /* rows trained by this worker */
    char tmpdir[4096];       /* in process: the model directory being written */
    int cluster;
} loop_t;

static void loop_release(loop_t *l)
{
    progress_release(&l->prog);
    free(l->dx);
    free(l->x);
    for (int i = 0; i < 2; i++) {
        pool_release(&l->pool[i]);
        batch_release(&l->batch[i]);
    }
    reader_destroy(&l->reader);
    param_destroy(&l->param);
    model_destroy(&l->model);
}

static int open_reader(loop_t *l, errbuf_t *eb)
{
    reader_opts_t o;
    struct stat st;

    worker_conf_reader_opts(l->wc, 1, &o);
    reader_destroy(&l->reader);
    int rc = reader_open(&l->reader, &l->ms, &o, l->a->logs, l->a->nlogs, eb);
    if (rc != 0)
        return rc;
    l->total_bytes = 0;
    for (int i = 0; i < reader_nfiles(l->reader); i++)
        if (stat(reader_file_path(l->reader, i), &st) == 0)
            l->total_bytes += (uint64_t)st.st_size;
    return 0;
}

/* Fraction of the whole job done (epochs included), or -1. */
static double job_fraction(const loop_t *l, int epoch, const reader_pos_t *pos)
{
    struct stat st;
    uint64_t done = 0;
    int nf = reader_nfiles(l->reader);

    if (l->total_bytes == 0 || nf == 0)
        return -1;
    for (uint32_t i = 0; i < pos->file && (int)i < nf; i++)
        if (stat(reader_file_path(l->reader, (int)i), &st) == 0)
            done += (uint64_t)st.st_size;
    if ((int)pos->file < nf && stat(reader_file_path(l->reader, (int)pos->file), &st) == 0) {
        uint64_t off = pos->offset < (uint64_t)st.st_size ? pos->offset : (uint64_t)st.st_size;
        done += off; /* for .gz the offset is uncompressed: the estimate is rough */
    }
    double f = (double)done / (double)l->total_bytes;
    if (f > 1)
        f = 1;
    return ((double)epoch + f) / (double)l->wc->epochs;
}

static int open_param(loop_t *l, errbuf_t *eb)
{
    size_t n;
    float *w = model_params(l->model, &n);
    char rows[4200];
    int rc;

    if (l->cluster)
        return param_remote_open(&l->param, l->wc, &l->ms, w, n, l->a->stop, eb);
    rc = modeldir_begin(l->a->model_dir, l->a->init_from, l->tmpdir, sizeof(l->tmpdir), eb);
    if (rc == 0 && l->a->init_from)
        rc = modeldir_load_dense(l->a->init_from, l->model, eb);
    if (rc != 0)
        return rc;
    modeldir_rows_path(l->tmpdir, rows, sizeof(rows));
    return param_local_open(&l->param, l->model, rows, 0, 0, eb);
}

/* Read the next batch into slot i and start pulling its rows.
 * Returns 0, ERR_EOF, or an error. */
static int next_batch(loop_t *l, int i, errbuf_t *eb)
{
    int rc = reader_next_batch(l->reader, &l->batch[i], (size_t)l->wc->batch_size, eb);

    if (rc != 0)
        return rc;
    reader_tell(l->reader, &l->pos[i]);
    rc = pool_prepare(&l->pool[i], &l->batch[i]);
    if (rc != 0)
        return errbuf_set(eb, rc, "out of memory preparing a batch");
    return param_pull_start(l->param, &l->pool[i].req, PARAM_PULL_TRAIN, eb);
}

/* Forward, backward and push of the batch in slot i (its rows pulled). */
static int step(loop_t *l, int i, double *loss, errbuf_t *eb)
{
    batch_t *b = &l->batch[i];
    size_t n;
    float *g;
    int rc;

    pool_forward(&l->pool[i], b, l->x);
    rc = model_train_step(l->model, l->x, b->click, b->action, b->buy, b->n, l->dx, loss);
    if (rc != 0)
        return errbuf_set(eb, rc, "model step failed");
    pool_backward(&l->pool[i], b, l->dx);
    rc = param_push(l->param, &l->pool[i].req, (const float *const *)l->pool[i].grads, eb);
    if (rc != 0)
        return rc;
    g = model_grads(l->model, &n);
    return param_push_dense(l->param, g, n, eb);
}

static int record_progress(loop_t *l, int epoch, const reader_pos_t *pos, errbuf_t *eb)
{
    param_progress_t pr = {
        .found = 1,
        .epoch = (uint32_t)epoch,
        .file = pos->file,
        .offset = pos->offset,
        .line = pos->line,
        .samples = l->samples,
    };
    return param_progress_set(l->param, &pr, eb);
}

/* One pass over this worker's part of the input, from where the reader
 * stands. */
static int run_epoch(loop_t *l, int epoch, errbuf_t *eb)
{
    double loss[HEADS_MAX_LOSS] = {0};
    double last_rec = progress_now();
    size_t n;
    int cur = 0, rc;

    rc = next_batch(l, cur, eb);
    if (rc == ERR_EOF)
        return 0;
    while (rc == 0) {
        int nxt = 1 - cur, have_next;

        float *w = model_params(l->model, &n);
        rc = param_pull_finish(l->param, l->pool[cur].rows, eb);
        if (rc == 0)
            rc = param_pull_dense(l->param, w, n, eb);
        if (rc != 0)
            break;
        rc = next_batch(l, nxt, eb);
        if (rc != 0 && rc != ERR_EOF)
            break;
        have_next = rc == 0;
        rc = step(l, cur, loss, eb);
        if (rc != 0)
            break;
        l->samples += l->batch[cur].n;
        for (int k = 0; k < model_nloss(l->model); k++)
            if (!isfinite(loss[k])) {
                rc = errbuf_set(eb, ERR_INVAL,
                                "loss %s is %g after %llu samples: lower the learning rates",
                                heads_loss_name(model_heads(l->model), k), loss[k],
                                (unsigned long long)l->samples);
                break;
            }
        if (rc != 0)
            break;
        l->prog.epoch = epoch;
        progress_update(&l->prog, l->batch[cur].n, loss, job_fraction(l, epoch, &l->pos[cur]));
        if (l->cluster && progress_now() - last_rec >= PROGRESS_EVERY_S) {
            rc = record_progress(l, epoch, &l->pos[cur], eb);
            if (rc != 0)
                break;
            last_rec = progress_now();
        }
        if (*l->a->stop) {
            LOG_WARN("stopping on signal after %llu samples", (unsigned long long)l->samples);
            if (have_next)
                param_pull_finish(l->param, l->pool[nxt].rows, NULL);
            if (l->cluster)
                record_progress(l, epoch, &l->pos[cur], NULL);
            return ERR_STOPPED;
        }
        if (!have_next)
            return l->cluster ? record_progress(l, epoch + 1, &(reader_pos_t){0, 0, 0}, eb) : 0;
        cur = nxt;
    }
    return rc;
}

int train_run(const worker_conf_t *wc, const train_args_t *a, errbuf_t *eb)
{
    static const char *const none[1] = {"loss"};
    const char *names[HEADS_MAX_LOSS];
    char metrics[4200];
    loop_t l;
    int epoch = 0, rc;
    double t0 = progress_now();

    memset(&l, 0, sizeof(l));
    l.wc = wc;
    l.a = a;
    l.cluster = wc->ps.s[0] != '\0';
    rc = model_spec_from_conf(&l.ms, &wc->model, eb);
    if (rc != 0)
        return rc;
    l.model = model_new(&l.ms, (size_t)wc->batch_size, (uint64_t)wc->seed, eb);
    if (!l.model)
        return ERR_NOMEM;
    rc = model_threads_set(l.model, (int)wc->threads, wc->parallel, eb);
    if (rc != 0)
        goto out;
    for (int i = 0; i < 2; i++) {
        rc = batch_init(&l.batch[i], l.ms.nslots, (size_t)wc->batch_size);
        if (rc == 0)
            rc = pool_init(&l.pool[i], &l.ms);
        if (rc != 0) {
            errbuf_set(eb, rc, "out of memory");
            goto out;
        }
    }
    l.x = malloc((size_t)wc->batch_size * (size_t)l.ms.input_dim * sizeof(float));
    l.dx = malloc((size_t)wc->batch_size * (size_t)l.ms.input_dim * sizeof(float));
    if (!l.x || !l.dx) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = open_reader(&l, eb);
    if (rc == 0)
        rc = open_param(&l, eb);
    if (rc != 0)
        goto out;

    if (l.cluster) {
        param_progress_t pr;
        rc = param_progress_get(l.param, &pr, eb);
        if (rc != 0)
            goto out;
        if (pr.found) {
            reader_pos_t pos = {pr.file, pr.offset, pr.line};
            epoch = (int)pr.epoch;
            l.samples = pr.samples;
            if (epoch < wc->epochs && (pos.offset || pos.file)) {
                rc = reader_seek(l.reader, &pos, eb);
                if (rc != 0)
                    goto out;
            }
            LOG_INFO("resuming rank %lld at epoch %d, file %u, offset %llu (%llu samples done)",
                     (long long)wc->rank, epoch, pos.file, (unsigned long long)pos.offset,
                     (unsigned long long)pr.samples);
        }
    }

    for (int k = 0; k < model_nloss(l.model); k++)
        names[k] = heads_loss_name(model_heads(l.model), k);
    if (wc->metrics_file.s[0])
        snprintf(metrics, sizeof(metrics), "%s", wc->metrics_file.s);
    else if (l.cluster)
        snprintf(metrics, sizeof(metrics), "metrics-worker%lld.jsonl", (long long)wc->rank);
    else
        snprintf(metrics, sizeof(metrics), "%s.metrics.jsonl", a->model_dir);
    rc = progress_init(&l.prog,
                       wc->progress == 1 || (wc->progress == 0 && isatty(STDERR_FILENO)), metrics,
                       wc->metrics_interval, model_nloss(l.model),
                       model_nloss(l.model) ? names : none, eb);
    if (rc != 0)
        goto out;
    LOG_INFO("training %s on %d log path%s, %d epoch%s, batch %lld, metrics in %s",
             heads_name(model_heads(l.model)), a->nlogs, a->nlogs > 1 ? "s" : "",
             (int)wc->epochs, wc->epochs > 1 ? "s" : "", (long long)wc->batch_size, metrics);

    for (; epoch < wc->epochs; epoch++) {
        rc = run_epoch(&l, epoch, eb);
        if (rc != 0)
            break;
        reader_log_summary(l.reader);
        if (epoch + 1 < wc->epochs)
            rc = open_reader(&l, eb);
        if (rc != 0)
            break;
    }
    progress_finish(&l.prog);
    if (rc == 0 || rc == ERR_STOPPED) {
        /* Whatever was trained is kept, also when stopped by a signal. */
        int src = param_sync(l.param, eb);
        if (src == 0 && !l.cluster) {
            src = param_local_flush(l.param, eb);
            if (src == 0) {
                param_destroy(&l.param); /* closes the rows store before the rename */
                src = modeldir_commit(a->model_dir, l.tmpdir, l.model, eb);
            }
            if (src == 0)
                LOG_INFO("model saved to %s", a->model_dir);
        }
        if (src != 0)
            rc = src;
    }
    if (rc == 0 || rc == ERR_STOPPED) {
        double el = progress_now() - t0;
        LOG_INFO("trained %llu samples in %.1f s (%.0f samples/s)",
                 (unsigned long long)l.samples, el, el > 0 ? (double)l.samples / el : 0.0);
    }
out:
    loop_release(&l);
    return rc;
}
