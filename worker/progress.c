/*
 * progress.c - live line, plain lines and JSON-lines metrics. See
 * progress.h.
 */
#include "worker/progress.h"

#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#define LIVE_EVERY 0.25 /* s between redraws of the live line */

double progress_now(void)
{
    return clock_now_s();
}

int progress_show(int mode)
{
    switch (mode) {
    case PROGRESS_ON: return PROGRESS_SHOW_LIVE;
    case PROGRESS_OFF: return PROGRESS_SHOW_NONE;
    case PROGRESS_PLAIN: return PROGRESS_SHOW_PLAIN;
    default: return isatty(STDERR_FILENO) ? PROGRESS_SHOW_LIVE : PROGRESS_SHOW_PLAIN;
    }
}

/* Wall clock as ISO 8601 UTC with milliseconds. */
static void wall_time(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    char s[32];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", s, (int)(tv.tv_usec / 1000));
}

int progress_record_begin(progress_t *p, json_t *j, const char *event)
{
    char wall[48];

    if (!p->metrics)
        return 0;
    wall_time(wall, sizeof(wall));
    json_init(j, p->metrics);
    json_object_begin(j);
    json_kv_str(j, "run", p->run);
    json_kv_str(j, "time", wall);
    json_kv_num(j, "time_s", progress_now() - p->t0, 9);
    json_kv_str(j, "event", event);
    json_kv_i64(j, "epoch", p->epoch);
    json_kv_u64(j, "samples", p->base + p->samples);
    return 1;
}

void progress_record_end(progress_t *p, json_t *j)
{
    json_object_end(j);
    json_end_line(j);
    fflush(p->metrics);
}

static void start_record(progress_t *p)
{
    json_t j;

    if (!progress_record_begin(p, &j, "start"))
        return;
    json_kv_str(&j, "command", p->o.command ? p->o.command : "");
    json_kv_i64(&j, "rank", p->o.rank);
    json_kv_u64(&j, "run_samples", 0);
    json_key(&j, "tasks");
    json_array_begin(&j);
    for (int i = 0; i < p->o.ntasks; i++)
        json_str(&j, p->o.task[i]);
    json_array_end(&j);
    progress_record_end(p, &j);
}

int progress_init(progress_t *p, const progress_opts_t *o, errbuf_t *eb)
{
    struct tm tm;
    time_t now = time(NULL);
    char stamp[32];

    memset(p, 0, sizeof(*p));
    p->o = *o;
    if (p->o.ntasks > PROGRESS_MAX_TASKS)
        p->o.ntasks = PROGRESS_MAX_TASKS;
    if (!p->o.label)
        p->o.label = "progress";
    p->base = o->base;
    p->frac0 = o->frac0;
    p->frac = -1;
    p->epoch = o->epoch;
    p->t0 = p->last_line = p->last_record = progress_now();
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(p->run, sizeof(p->run), "%s-%ld", stamp, (long)getpid());
    if (o->metrics && *o->metrics) {
        p->metrics = fopen(o->metrics, "a");
        if (!p->metrics)
            return errbuf_set(eb, ERR_IO,
                              "metrics file %s (metrics_file): %s: give a writable path",
                              o->metrics, strerror(errno));
        start_record(p);
    }
    return 0;
}

uint64_t progress_samples(const progress_t *p)
{
    return p->samples;
}

double progress_rate(const progress_t *p)
{
    double el = progress_now() - p->t0;

    return el > 0 ? (double)p->samples / el : 0.0;
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

/* Seconds left at this run's pace, or -1 while unknown. */
static double eta(const progress_t *p, double el)
{
    double f0 = p->frac0 > 0 ? p->frac0 : 0, df = p->frac - f0;

    if (p->frac < 0 || df <= 0.001 || el <= 0)
        return -1;
    return el * (1 - p->frac) / df;
}

/* The text of a line: label, samples, rate, losses, done %, ETA. */
static void line_text(progress_t *p, char *buf, size_t len, double now)
{
    double el = now - p->t0;
    size_t o = 0;
    char e[32];

#define ADD(...)                                                  \
    do {                                                          \
        if (o < len)                                              \
            o += (size_t)snprintf(buf + o, len - o, __VA_ARGS__); \
    } while (0)
    ADD("%s: %llu samples  %.0f/s", p->o.label, (unsigned long long)p->samples,
        el > 0 ? (double)p->samples / el : 0.0);
    if (p->loss_rows > 0)
        for (int i = 0; i < p->o.ntasks; i++)
            p->shown[i] = p->loss_sum[i] / p->loss_rows;
    for (int i = 0; i < p->o.ntasks && (p->loss_rows > 0 || p->samples > 0); i++)
        ADD("  %s %.4f", p->o.task[i], p->shown[i]);
    for (int i = 0; p->has_weights && i < p->o.ntasks; i++)
        ADD("%s%.3g", i ? "/" : "  w ", p->weight[i]);
    if (p->frac >= 0) {
        fmt_eta(e, sizeof(e), eta(p, el));
        ADD("  %.0f%%  ETA %s", p->frac * 100, e);
    }
#undef ADD
}

static void show_line(progress_t *p, double now, int force)
{
    char text[512];

    if (p->o.show == PROGRESS_SHOW_NONE)
        return;
    if (!force &&
        now - p->last_line < (p->o.show == PROGRESS_SHOW_LIVE ? LIVE_EVERY : p->o.plain_every))
        return;
    line_text(p, text, sizeof(text), now);
    if (p->o.show == PROGRESS_SHOW_LIVE)
        log_live(text);
    else {
        fprintf(stderr, "%s\n", text);
        fflush(stderr);
    }
    p->last_line = now;
}

static void interval_record(progress_t *p, double now, const char *event)
{
    double dt = now - p->last_record;
    json_t j;
    char key[64];

    if (!progress_record_begin(p, &j, event))
        return;
    json_kv_u64(&j, "run_samples", p->samples);
    json_kv_num(&j, "samples_per_s", dt > 0 ? (double)(p->samples - p->rec_samples) / dt : 0.0, 9);
    if (p->frac >= 0)
        json_kv_num(&j, "done", p->frac, 6);
    if (p->loss_rows > 0)
        for (int i = 0; i < p->o.ntasks; i++) {
            snprintf(key, sizeof(key), "loss_%s", p->o.task[i]);
            json_kv_num(&j, key, p->loss_sum[i] / p->loss_rows, 9);
        }
    for (int i = 0; p->has_weights && i < p->o.ntasks; i++) {
        snprintf(key, sizeof(key), "weight_%s", p->o.task[i]);
        json_kv_num(&j, key, p->weight[i], 9);
    }
    if (strcmp(event, "end") == 0) {
        json_key(&j, "final");
        json_bool(&j, 1);
    }
    progress_record_end(p, &j);
}

void progress_set_weights(progress_t *p, const double *w)
{
    for (int i = 0; i < p->o.ntasks && i < PROGRESS_MAX_TASKS; i++)
        p->weight[i] = w[i];
    p->has_weights = 1;
}

void progress_update(progress_t *p, size_t n, const double *loss, double frac)
{
    double now = progress_now();

    p->samples += n;
    if (frac >= 0)
        p->frac = frac > 1 ? 1 : frac;
    for (int i = 0; i < p->o.ntasks && loss; i++)
        p->loss_sum[i] += loss[i] * (double)n;
    if (loss)
        p->loss_rows += (double)n;
    show_line(p, now, 0);
    if (now - p->last_record >= p->o.every) {
        interval_record(p, now, "train");
        p->rec_samples = p->samples;
        p->last_record = now;
        memset(p->loss_sum, 0, sizeof(p->loss_sum));
        p->loss_rows = 0;
    }
}

void progress_finish(progress_t *p)
{
    double now = progress_now();

    if (p->samples > 0)
        show_line(p, now, 1);
    if (p->o.show == PROGRESS_SHOW_LIVE)
        log_live(NULL);
    interval_record(p, now, "end");
    p->loss_rows = 0;
}

void progress_release(progress_t *p)
{
    if (p->o.show == PROGRESS_SHOW_LIVE)
        log_live(NULL);
    if (p->metrics)
        fclose(p->metrics);
    p->metrics = NULL;
}
