/*
 * train.c - the training loop. See train.h.
 */
#include "worker/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "model/dense.h"
#include "worker/guard.h"
#include "worker/predict.h"
#include "worker/progress.h"
#include "worker/session.h"
#include "worker/train_obs.h"
#include "worker/valid.h"

/* Everything the loop owns; released in reverse order by loop_release().
 * The session's batch[i] and pool[i] are the two pipeline slots. */
typedef struct loop {
    const worker_conf_t *wc;
    const train_args_t *a;
    session_t s;                    /* model, parameters, reader, batches */
    reader_pos_t pos[2];            /* reader position after batch[i] */
    reader_pos_t start[2];          /* reader position before batch[i] (messages) */
    unsigned long long batch_no[2]; /* batch[i] is the batch_no[i]-th of this run */
    unsigned long long batches;     /* batches read this run */
    float *dx;                      /* (B, D) gradient of the session's input x */
    progress_t prog;
    valid_t *valid;       /* --valid: held-out evaluation, or NULL */
    uint64_t samples;     /* rows trained by this worker (this rank, all runs) */
    uint64_t done_before; /* of samples: already trained when this run resumed */
    uint64_t resent;      /* of the others: in batches some shards had already */
    train_obs_t *obs;     /* live metrics ([train] metrics_listen); NULL: off */
    float label_w[3];     /* [train] label_weights: click, action, buy */
    float *sw;            /* (B) training weight of each row of the batch */
    double *pair_work;    /* heads_sample_t.work, or NULL without a pairwise loss */
    double pair_sum;      /* pairwise loss x pairs, summed over this run's batches */
    uint64_t pairs;       /* pairs of this run's batches */
    /* Where a batch's time goes (seconds summed over this run's batches):
     * waiting for its rows and dense weights, reading and preparing the
     * next batch (and sending its pull), forward and backward, sending the
     * pushes (which wait when max_inflight pushes are unacknowledged). */
    double t_wait, t_read, t_compute, t_push;
    unsigned long long timed; /* batches timed */
} loop_t;

static void loop_release(loop_t *l)
{
    train_obs_close(&l->obs);
    progress_release(&l->prog);
    valid_destroy(&l->valid);
    free(l->pair_work);
    free(l->sw);
    free(l->dx);
    session_release(&l->s);
}

/* Fraction of the whole job done (epochs included), by bytes on disk of
 * this rank's share (compressed bytes for .gz), or -1. */
static double job_fraction(const loop_t *l, int epoch)
{
    uint64_t done, total;

    reader_disk_progress(l->s.reader, &done, &total);
    if (total == 0)
        return -1;
    return ((double)epoch + (double)done / (double)total) / (double)l->wc->epochs;
}

/* Read the next batch into slot i and start pulling its rows.
 * Returns 0, ERR_EOF, or an error. */
static int next_batch(loop_t *l, int i, errbuf_t *eb)
{
    int rc;

    reader_tell(l->s.reader, &l->start[i]);
    rc = reader_next_batch(l->s.reader, &l->s.batch[i], (size_t)l->wc->batch_size, eb);
    rc = slotuse_train_check(l->s.slots, &l->s.batch[i], rc, eb);
    if (rc != 0)
        return rc;
    l->batch_no[i] = ++l->batches;
    reader_tell(l->s.reader, &l->pos[i]);
    rc = pool_prepare(&l->s.pool[i], &l->s.batch[i]);
    if (rc != 0)
        return errbuf_set(eb, rc, "out of memory preparing a batch");
    return param_pull_start(l->s.param, &l->s.pool[i].req, PARAM_PULL_TRAIN, eb);
}

/* Losses and gradients of the batch in slot i finite, or ERR_REJECTED
 * naming the batch and its lines (guard.h). */
static int check_batch(loop_t *l, int i, const double *loss, const float *g, size_t n, errbuf_t *eb)
{
    const reader_pos_t *p0 = &l->start[i], *p1 = &l->pos[i];
    int known = (int)p1->file < reader_nfiles(l->s.reader);
    int lines = known && p0->file == p1->file && (p0->line || !p0->offset) && p1->line;
    guard_where_t w = {
        .batch = l->batch_no[i],
        .file = known ? reader_file_path(l->s.reader, (int)p1->file) : NULL,
        .line0 = lines ? p0->line : 0,
        .line1 = lines ? p1->line : 0,
    };

    return guard_check_batch(l->s.model, &l->s.ms, loss, &l->s.pool[i].req,
                             (const float *const *)l->s.pool[i].grads, g, n, &w, eb);
}

/* Forward, backward and push of the batch in slot i (its rows pulled),
 * the pushes carrying the position after it. */
static int step(loop_t *l, int i, int epoch, double *loss, errbuf_t *eb)
{
    batch_t *b = &l->s.batch[i];
    param_progress_t after = {
        1, (uint32_t)epoch, l->pos[i].file, l->pos[i].offset, l->pos[i].line, l->samples + b->n, 0};
    size_t n;
    float *g;
    int rc;

    heads_sample_t smp = {
        .weight = l->sw,
        .req = l->pair_work ? b->req : NULL,
        .pair_task = (int)l->wc->pairwise_task,
        .pair_weight = l->wc->pairwise_weight,
        .work = l->pair_work,
    };

    pool_forward(&l->s.pool[i], b, l->s.x);
    batch_row_weights(b, l->label_w, l->sw);
    rc = model_train_step(l->s.model, l->s.x, b->click, b->action, b->buy, &smp, b->n, l->dx, loss);
    if (rc != 0)
        return errbuf_set(eb, rc, "model step failed");
    if (!isfinite(smp.pair_loss))
        return errbuf_set(eb, ERR_INVAL,
                          "pairwise loss is %g in batch %llu: lower the learning rates or "
                          "pairwise_weight",
                          smp.pair_loss, l->batch_no[i]);
    l->pair_sum += smp.pair_loss * (double)smp.pairs;
    l->pairs += smp.pairs;
    pool_backward(&l->s.pool[i], b, l->dx);
    g = model_grads(l->s.model, &n);
    rc = check_batch(l, i, loss, g, n, eb);
    if (rc != 0)
        return rc;
    double t0 = progress_now();
    param_batch_pos(l->s.param, &after);
    rc = param_push(l->s.param, &l->s.pool[i].req, (const float *const *)l->s.pool[i].grads, eb);
    if (rc == 0)
        rc = param_push_dense(l->s.param, g, n, eb);
    l->t_push += progress_now() - t0;
    return rc;
}

/* One pass over this worker's part of the input, from where the reader
 * stands. */
static int run_epoch(loop_t *l, int epoch, errbuf_t *eb)
{
    double loss[HEADS_MAX_LOSS] = {0};
    size_t n;
    int cur = 0, rc;

    rc = next_batch(l, cur, eb);
    if (rc == ERR_EOF)
        return 0;
    while (rc == 0) {
        int nxt = 1 - cur, have_next;

        float *w = model_params(l->s.model, &n);
        double t0 = progress_now(), t1, t2;
        rc = param_pull_finish(l->s.param, l->s.pool[cur].rows, eb);
        if (rc == 0)
            rc = param_pull_dense(l->s.param, w, n, eb);
        t1 = progress_now();
        l->t_wait += t1 - t0;
        if (rc == 0 && valid_due(l->valid, l->samples)) /* no pull outstanding here */
            rc = valid_run(l->valid, l->s.model, l->s.param, &l->prog, eb);
        if (rc != 0)
            break;
        t1 = progress_now();
        rc = next_batch(l, nxt, eb);
        if (rc != 0 && rc != ERR_EOF)
            break;
        have_next = rc == 0;
        t2 = progress_now();
        l->t_read += t2 - t1;
        double pushed = l->t_push;
        rc = step(l, cur, epoch, loss, eb);
        if (rc != 0)
            break;
        l->t_compute += progress_now() - t2 - (l->t_push - pushed);
        l->timed++;
        l->samples += l->s.batch[cur].n;
        for (int k = 0; k < model_nloss(l->s.model); k++)
            if (!isfinite(loss[k])) {
                rc = errbuf_set(eb, ERR_INVAL,
                                "loss %s is %g after %llu samples: lower the learning rates",
                                heads_loss_name(model_heads(l->s.model), k), loss[k],
                                (unsigned long long)l->samples);
                break;
            }
        if (rc != 0)
            break;
        l->prog.epoch = epoch;
        if (model_spec(l->s.model)->loss_weighting != MODEL_LW_FIXED) { /* lossw.h */
            double lw[HEADS_MAX_LOSS];
            model_loss_weights(l->s.model, lw);
            progress_set_weights(&l->prog, lw);
        }
        progress_update(&l->prog, l->s.batch[cur].n, loss, job_fraction(l, epoch));
        train_obs_batch(l->obs, l->s.batch[cur].n, loss, epoch);
        if (*l->a->stop) {
            LOG_WARN("stopping on signal after %llu samples", (unsigned long long)l->samples);
            if (have_next)
                param_pull_finish(l->s.param, l->s.pool[nxt].rows, NULL);
            return ERR_STOPPED;
        }
        if (!have_next)
            return 0;
        cur = nxt;
    }
    return rc;
}

/* One log line of where this run's batches spent their time and of the
 * process's CPU (user + system) and context switches, for
 * scripts/bench-e2e.sh. */
static void log_timeline(const loop_t *l, double elapsed)
{
    struct rusage ru;
    double nb = l->timed ? (double)l->timed : 1.0;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        memset(&ru, 0, sizeof(ru));
    LOG_INFO("batch timeline over %llu batches, %d compute thread%s (ms per batch): pull wait "
             "%.2f, read %.2f, compute %.2f, push %.2f; process cpu %.1f s user %.1f s sys in "
             "%.1f s, %ld voluntary + %ld involuntary context switches",
             l->timed, model_threads(l->s.model, NULL),
             model_threads(l->s.model, NULL) > 1 ? "s" : "", 1e3 * l->t_wait / nb,
             1e3 * l->t_read / nb, 1e3 * l->t_compute / nb, 1e3 * l->t_push / nb,
             (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec,
             (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec, elapsed, ru.ru_nvcsw,
             ru.ru_nivcsw);
}

/* --valid: one last held-out evaluation of what this run trained, with
 * every update applied. */
static int final_valid(loop_t *l, errbuf_t *eb)
{
    size_t n;
    float *w = model_params(l->s.model, &n);
    int rc = param_sync(l->s.param, eb);

    if (rc == 0)
        rc = param_pull_dense(l->s.param, w, n, eb);
    if (rc == 0)
        rc = valid_run(l->valid, l->s.model, l->s.param, &l->prog, eb);
    return rc;
}

/* On a cluster: continue from the least advanced position the shards
 * recorded for this rank with its pushes (epoch, file, offset, samples),
 * if any. */
static int resume(loop_t *l, int *epoch, errbuf_t *eb)
{
    param_progress_t pr;
    int rc = param_progress_get(l->s.param, &pr, eb);

    if (rc != 0 || !pr.found)
        return rc;
    reader_pos_t pos = {pr.file, pr.offset, pr.line};
    *epoch = (int)pr.epoch;
    l->samples = l->done_before = pr.samples;
    l->resent = pr.ahead - pr.samples;
    if (*epoch < l->wc->epochs && (pos.offset || pos.file)) {
        rc = reader_seek(l->s.reader, &pos, eb);
        if (rc != 0)
            return rc;
    }
    LOG_INFO("resuming rank %lld at epoch %d, file %u, offset %llu (%llu samples done; the "
             "next %llu go only to the shards that missed them)",
             (long long)l->wc->rank, *epoch, pos.file, (unsigned long long)pos.offset,
             (unsigned long long)pr.samples, (unsigned long long)l->resent);
    return 0;
}

/* Keep what was trained: wait for every update, and in process save the
 * model directory. */
static int save(loop_t *l, errbuf_t *eb)
{
    int rc = param_sync(l->s.param, eb);

    if (rc != 0 || l->s.cluster)
        return rc;
    rc = session_commit_model(&l->s, eb);
    if (rc == 0)
        LOG_INFO("model saved to %s", l->a->model_dir);
    return rc;
}

/* Nothing was trained: a model saved now would be its random start, so in
 * process nothing is saved (even with allow_empty, which only lets empty
 * files be read); a cluster worker with nothing to do is an error unless
 * allow_empty says empty input is expected. */
static int no_samples(loop_t *l, const char *metrics, errbuf_t *eb)
{
    if (l->s.cluster && l->wc->allow_empty) {
        LOG_WARN("rank %lld: 0 samples in its share of the logs", (long long)l->wc->rank);
        return 0;
    }
    session_discard_model(&l->s);
    if (!l->s.cluster && !l->wc->metrics_file.s[0])
        unlink(metrics); /* MODEL.metrics.jsonl, made by this run: no record in it */
    return errbuf_set(eb, ERR_INVAL,
                      "0 samples trained from %d log path%s (empty, or every line rejected or "
                      "skipped: see funnel-worker check-data)%s",
                      l->a->nlogs, l->a->nlogs > 1 ? "s" : "",
                      l->s.cluster ? "; --allow-empty if this rank may have nothing to do"
                                   : ": the model is not saved, nothing was written");
}

int train_run(const worker_conf_t *wc, const train_args_t *a, errbuf_t *eb)
{
    static const char *const none[1] = {"loss"};
    const char *names[HEADS_MAX_LOSS];
    char metrics[4200], label[32];
    loop_t l;
    int epoch = 0, rc;
    double t0 = progress_now();
    int cluster = wc->ps.s[0] != '\0';
    session_opts_t so = {
        .mode = SESSION_TRAIN,
        .batch_size = (size_t)wc->batch_size,
        .logs = a->logs,
        .nlogs = a->nlogs,
        .model_dir = cluster ? NULL : a->model_dir,
        .init_from = a->init_from,
        .stop = a->stop,
    };

    memset(&l, 0, sizeof(l));
    l.wc = wc;
    l.a = a;
    rc = session_init(&l.s, wc, &so, eb);
    if (rc == 0)
        rc = predict_set_bias(l.s.model, wc, eb); /* what --valid scores */
    if (rc != 0)
        goto out;
    rc = worker_conf_label_weights(wc, l.label_w, eb);
    if (rc != 0)
        goto out;
    l.dx = malloc((size_t)wc->batch_size * (size_t)l.s.ms.input_dim * sizeof(float));
    l.sw = malloc((size_t)wc->batch_size * sizeof(float));
    if (wc->pairwise_task != HEADS_PAIR_NONE)
        l.pair_work =
            malloc((size_t)wc->batch_size * (HEADS_MAX_TOWERS + 1) * sizeof(*l.pair_work));
    if (!l.dx || !l.sw || (wc->pairwise_task != HEADS_PAIR_NONE && !l.pair_work)) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    if (cluster && (rc = resume(&l, &epoch, eb)) != 0)
        goto out;
    if (valid_wanted(wc) &&
        (rc = valid_open(&l.valid, wc, &l.s.ms, (size_t)wc->batch_size, eb)) != 0)
        goto out;

    for (int k = 0; k < model_nloss(l.s.model); k++)
        names[k] = heads_loss_name(model_heads(l.s.model), k);
    if (wc->metrics_file.s[0])
        snprintf(metrics, sizeof(metrics), "%s", wc->metrics_file.s);
    else if (cluster)
        snprintf(metrics, sizeof(metrics), "metrics-worker%lld.jsonl", (long long)wc->rank);
    else
        snprintf(metrics, sizeof(metrics), "%s.metrics.jsonl", a->model_dir);
    progress_opts_t po = {
        .show = progress_show((int)wc->progress),
        .every = wc->metrics_interval,
        .plain_every = wc->progress_interval,
        .label = label,
        .command = "train",
        .rank = (long long)wc->rank,
        .metrics = metrics,
        .ntasks = model_nloss(l.s.model) ? model_nloss(l.s.model) : 1,
        .task = model_nloss(l.s.model) ? names : none,
        .base = l.samples,
        .frac0 = epoch < wc->epochs ? job_fraction(&l, epoch) : 1.0,
        .epoch = epoch,
    };
    if (cluster)
        snprintf(label, sizeof(label), "worker%lld", (long long)wc->rank);
    else
        snprintf(label, sizeof(label), "train");
    rc = progress_init(&l.prog, &po, eb);
    if (rc == 0)
        rc = train_obs_open(&l.obs, wc, names, model_nloss(l.s.model), l.done_before, eb);
    if (rc != 0)
        goto out;
    char kernels[96];
    if (dense_gemm_get() == DENSE_GEMM_OPENBLAS && dense_blas_fallback())
        LOG_INFO("dense kernels: OpenBLAS %s; OpenBLAS chose its generic %s kernels on this CPU, "
                 "which it does not know, so funnel restarted with OPENBLAS_CORETYPE=%s (set "
                 "OPENBLAS_CORETYPE yourself to choose)",
                 dense_blas_core(), dense_blas_fallback(), dense_blas_core());
    else
        LOG_INFO("dense kernels: %s", dense_kernels(kernels, sizeof(kernels)));
    LOG_INFO("training %s on %d log path%s, %d epoch%s, batch %lld, metrics in %s",
             heads_name(model_heads(l.s.model)), a->nlogs, a->nlogs > 1 ? "s" : "", (int)wc->epochs,
             wc->epochs > 1 ? "s" : "", (long long)wc->batch_size, metrics);

    for (; epoch < wc->epochs; epoch++) {
        rc = run_epoch(&l, epoch, eb);
        if (rc != 0)
            break;
        reader_log_summary(l.s.reader);
        if (epoch + 1 < wc->epochs) {
            rc = session_reopen_reader(&l.s, eb);
            if (rc != 0)
                break;
        }
    }
    if (rc == 0 && l.valid && l.samples > l.done_before)
        rc = final_valid(&l, eb);
    if (rc == 0 && wc->pairwise_task != HEADS_PAIR_NONE) {
        if (l.pairs)
            LOG_INFO("pairwise loss (%s within requests): mean %.6f over %llu pairs",
                     wc->pairwise_task == HEADS_PAIR_CLICK ? "click" : "buy",
                     l.pair_sum / (double)l.pairs, (unsigned long long)l.pairs);
        else
            LOG_WARN("pairwise_task = %s, but no batch had a request (@req) with a positive and "
                     "a negative: no pairwise loss was trained (does the log carry @req ids?)",
                     wc->pairwise_task == HEADS_PAIR_CLICK ? "click" : "buy");
    }
    progress_finish(&l.prog);
    if (rc == 0 && l.samples == 0)
        rc = no_samples(&l, metrics, eb);
    if (rc == 0 || rc == ERR_STOPPED) {
        /* Whatever was trained is kept, also when stopped by a signal. */
        int src = save(&l, eb);
        if (src != 0)
            rc = src;
    }
    if (rc == 0 || rc == ERR_STOPPED) {
        double el = progress_now() - t0;
        uint64_t run = l.samples - l.done_before;
        LOG_INFO("trained %llu samples in %.1f s (%.0f samples/s); %llu already done before this "
                 "run were skipped, %llu of this run's were resent only to shards that missed them",
                 (unsigned long long)run, el, el > 0 ? (double)run / el : 0.0,
                 (unsigned long long)l.done_before,
                 (unsigned long long)(l.resent < run ? l.resent : run));
        log_timeline(&l, el);
    }
out:
    loop_release(&l);
    return rc;
}
