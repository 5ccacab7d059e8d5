/*
 * train_obs.c - the training worker's metrics and their HTTP server. See
 * train_obs.h.
 */
#include "worker/train_obs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "obs/metrics.h"
#include "obs/metrics_http.h"

#define MAX_LOSS 8 /* loss gauges; the heads table has at most HEADS_MAX_LOSS */

/* Batch duration buckets, s: 1 ms .. 10 s. */
static const double step_bounds[] = {1e-3,   2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
                                     250e-3, 500e-3, 1.0,  2.5,   5.0,   10.0};
#define NB ((int)(sizeof(step_bounds) / sizeof(step_bounds[0])))

struct train_obs {
    obs_reg_t *reg;
    obs_http_t *http;
    int id_samples, id_batches, id_epoch, id_loss[MAX_LOSS], id_step;
    int nloss;
    uint64_t samples, batches; /* this run */
    int epoch;
    double loss_sum[MAX_LOSS]; /* sample-weighted, since the last snapshot */
    double loss_last[MAX_LOSS];
    uint64_t loss_n; /* samples behind loss_sum */
    uint64_t step_counts[NB + 1];
    double step_sum;   /* s */
    double last, next; /* s, monotonic: the last batch's end, the next snapshot */
};

/* Add a series, or keep the first error in *rc. */
static int add(train_obs_t *o, obs_kind_t kind, const char *name, const char *help,
               const char *const *labels, int *rc, errbuf_t *eb)
{
    int id;

    if (*rc != 0)
        return -1;
    id = obs_series_add(o->reg, kind, name, help, labels, eb);
    if (id < 0)
        *rc = id;
    return id;
}

static int add_series(train_obs_t *o, const worker_conf_t *wc, const char *const *losses,
                      uint64_t skipped, errbuf_t *eb)
{
    char rank[24];
    const char *info[] = {"version", obs_version(), "rank", rank, NULL};
    int rc = 0, id_info, id_rank, id_workers, id_skipped, id_start;

    snprintf(rank, sizeof(rank), "%lld", (long long)wc->rank);
    o->id_samples = add(o, OBS_COUNTER, "funnel_worker_samples_total",
                        "Samples (impressions) trained by this run.", NULL, &rc, eb);
    o->id_batches = add(o, OBS_COUNTER, "funnel_worker_batches_total",
                        "Batches trained by this run.", NULL, &rc, eb);
    o->id_epoch = add(o, OBS_GAUGE, "funnel_worker_epoch", "Current epoch, from 0.", NULL, &rc, eb);
    for (int k = 0; k < o->nloss; k++) {
        const char *labels[] = {"task", losses[k], NULL};
        o->id_loss[k] = add(o, OBS_GAUGE, "funnel_worker_loss",
                            "Mean training loss per task over the batches of the last "
                            "snapshot period.",
                            labels, &rc, eb);
    }
    if (rc == 0) {
        o->id_step = obs_hist_add(o->reg, "funnel_worker_batch_duration_seconds",
                                  "Wall time per trained batch (read, pull, step, push).", NULL,
                                  step_bounds, NB, eb);
        rc = o->id_step < 0 ? o->id_step : 0;
    }
    id_skipped = add(o, OBS_GAUGE, "funnel_worker_samples_skipped",
                     "Samples a resume found already trained (not trained again).", NULL, &rc, eb);
    id_rank = add(o, OBS_GAUGE, "funnel_worker_rank", "This worker's rank.", NULL, &rc, eb);
    id_workers =
        add(o, OBS_GAUGE, "funnel_worker_workers", "Workers splitting the input.", NULL, &rc, eb);
    id_start = add(o, OBS_GAUGE, "funnel_worker_start_time_seconds",
                   "When this run started, Unix seconds.", NULL, &rc, eb);
    id_info = add(o, OBS_GAUGE, "funnel_worker_build_info",
                  "Always 1; the labels say which build this worker runs.", info, &rc, eb);
    if (rc != 0)
        return rc;
    /* the constants, kept by every later snapshot */
    obs_publish_begin(o->reg);
    obs_set(o->reg, id_skipped, (double)skipped);
    obs_set(o->reg, id_rank, (double)wc->rank);
    obs_set(o->reg, id_workers, (double)wc->workers);
    obs_set(o->reg, id_start, (double)clock_unix_s());
    obs_set(o->reg, id_info, 1);
    obs_publish_end(o->reg);
    return 0;
}

int train_obs_open(train_obs_t **out, const worker_conf_t *wc, const char *const *losses, int nloss,
                   uint64_t skipped, errbuf_t *eb)
{
    train_obs_t *o;
    int rc;

    *out = NULL;
    if (!wc->metrics_listen.s[0])
        return 0;
    o = calloc(1, sizeof(*o));
    if (!o)
        return errbuf_set(eb, ERR_NOMEM, "out of memory for the metrics");
    o->nloss = nloss < MAX_LOSS ? nloss : MAX_LOSS;
    o->last = clock_now_s();
    rc = obs_reg_new(&o->reg, eb);
    if (rc == 0)
        rc = add_series(o, wc, losses, skipped, eb);
    if (rc == 0)
        rc = obs_http_start(&o->http, wc->metrics_listen.s, "--metrics_listen", o->reg, eb);
    if (rc != 0) {
        obs_reg_destroy(&o->reg);
        free(o);
        return rc;
    }
    *out = o;
    return 0;
}

static void publish(train_obs_t *o, double now)
{
    if (o->loss_n > 0)
        for (int k = 0; k < o->nloss; k++)
            o->loss_last[k] = o->loss_sum[k] / (double)o->loss_n;
    obs_publish_begin(o->reg);
    obs_set(o->reg, o->id_samples, (double)o->samples);
    obs_set(o->reg, o->id_batches, (double)o->batches);
    obs_set(o->reg, o->id_epoch, o->epoch);
    for (int k = 0; k < o->nloss; k++)
        obs_set(o->reg, o->id_loss[k], o->loss_last[k]);
    obs_hist_set(o->reg, o->id_step, o->step_counts, o->step_sum);
    obs_publish_end(o->reg);
    memset(o->loss_sum, 0, sizeof(o->loss_sum));
    o->loss_n = 0;
    o->next = now + TRAIN_OBS_PERIOD;
}

void train_obs_batch(train_obs_t *o, size_t n, const double *loss, int epoch)
{
    double now, dt;
    int b = 0;

    if (!o)
        return;
    now = clock_now_s();
    dt = now - o->last;
    o->last = now;
    while (b < NB && dt > step_bounds[b])
        b++;
    o->step_counts[b]++;
    o->step_sum += dt;
    o->samples += n;
    o->batches++;
    o->epoch = epoch;
    for (int k = 0; k < o->nloss; k++)
        o->loss_sum[k] += loss[k] * (double)n;
    o->loss_n += n;
    if (now >= o->next)
        publish(o, now);
}

void train_obs_close(train_obs_t **o)
{
    if (!o || !*o)
        return;
    publish(*o, clock_now_s());
    obs_http_stop(&(*o)->http); /* first: its thread reads the registry */
    obs_reg_destroy(&(*o)->reg);
    free(*o);
    *o = NULL;
}
