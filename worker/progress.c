/*
 * progress.c - live progress line and JSON-lines metrics. See progress.h.
 */
#include "worker/progress.h"

#include "common/clock.h"
#include "common/json.h"

#include <errno.h>
#include <string.h>
#include <time.h>

double progress_now(void)
{
    return clock_now_s();
}

int progress_init(progress_t *p, int show_line, const char *metrics_path, double interval,
                  int ntasks, const char *const *task_names, errbuf_t *eb)
{
    memset(p, 0, sizeof(*p));
    p->line = show_line ? stderr : NULL;
    p->interval = interval;
    p->ntasks = ntasks > PROGRESS_MAX_TASKS ? PROGRESS_MAX_TASKS : ntasks;
    for (int i = 0; i < p->ntasks; i++)
        p->task[i] = task_names[i];
    p->t0 = p->last_line = p->last_record = progress_now();
    if (metrics_path && *metrics_path) {
        p->metrics = fopen(metrics_path, "a");
        if (!p->metrics)
            return errbuf_set(eb, ERR_IO, "metrics file %s: %s", metrics_path, strerror(errno));
    }
    return 0;
}

static void fmt_eta(char *buf, size_t len, double s)
{
    if (s < 0)
        snprintf(buf, len, "?");
    else if (s < 60)
        snprintf(buf, len, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

static void write_record(progress_t *p, double now, int final)
{
    double dt = now - p->last_record;
    double rows = p->loss_rows > 0 ? p->loss_rows : 1;

    if (!p->metrics)
        return;
    json_t j;
    char key[64];
    json_init(&j, p->metrics);
    json_object_begin(&j);
    json_kv_num(&j, "time_s", now - p->t0, 9);
    json_kv_i64(&j, "epoch", p->epoch);
    json_kv_u64(&j, "samples", p->samples);
    json_kv_num(&j, "samples_per_s", dt > 0 ? (double)(p->samples - p->rec_samples) / dt : 0.0, 9);
    for (int i = 0; i < p->ntasks; i++) {
        snprintf(key, sizeof(key), "loss_%s", p->task[i]);
        json_kv_num(&j, key, p->loss_sum[i] / rows, 9);
    }
    if (final) {
        json_key(&j, "final");
        json_bool(&j, 1);
    }
    json_object_end(&j);
    json_end_line(&j);
    fflush(p->metrics);
}

void progress_update(progress_t *p, size_t n, const double *loss, double frac)
{
    double now = progress_now();

    p->samples += n;
    for (int i = 0; i < p->ntasks; i++) {
        p->loss_sum[i] += loss[i] * (double)n;
        p->last_loss[i] = loss[i];
    }
    p->loss_rows += (double)n;
    if (p->line && now - p->last_line >= 0.25) {
        double el = now - p->t0;
        char eta[32];
        fmt_eta(eta, sizeof(eta), frac > 0.001 ? el * (1 - frac) / frac : -1);
        fprintf(p->line, "\r%llu samples  %.0f/s", (unsigned long long)p->samples,
                el > 0 ? (double)p->samples / el : 0.0);
        for (int i = 0; i < p->ntasks; i++)
            fprintf(p->line, "  %s %.4f", p->task[i], p->loss_sum[i] / p->loss_rows);
        if (frac >= 0)
            fprintf(p->line, "  %3.0f%%  ETA %s ", frac * 100, eta);
        fflush(p->line);
        p->last_line = now;
    }
    if (now - p->last_record >= p->interval) {
        write_record(p, now, 0);
        p->rec_samples = p->samples;
        p->last_record = now;
        memset(p->loss_sum, 0, sizeof(p->loss_sum));
        p->loss_rows = 0;
    }
}

void progress_finish(progress_t *p)
{
    double now = progress_now();

    if (p->loss_rows > 0)
        write_record(p, now, 1);
    if (p->line && p->samples > 0) {
        fputc('\n', p->line);
        fflush(p->line);
    }
}

void progress_release(progress_t *p)
{
    if (p->metrics)
        fclose(p->metrics);
    p->metrics = NULL;
}
