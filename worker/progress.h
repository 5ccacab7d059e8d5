/*
 * progress.h - what a long training run shows while it works: a live
 * progress line for a person at a terminal (samples, samples/s, loss per
 * task, ETA) and, separately, one machine-readable JSON record per interval
 * in a metrics file, so curves can be plotted.
 *
 * Losses are averaged over the rows seen since the previous record.
 *
 * Thread-safety: one progress_t per training loop.
 */
#ifndef FUNNEL_PROGRESS_H
#define FUNNEL_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

#define PROGRESS_MAX_TASKS 3

typedef struct progress {
    FILE *line;    /* live line stream (stderr) or NULL */
    FILE *metrics; /* JSON-lines file or NULL */
    int ntasks;
    const char *task[PROGRESS_MAX_TASKS];
    double interval;                     /* s between metric records */
    double t0;                           /* s, start */
    double last_line;                    /* s, last live line */
    double last_record;                  /* s, last metric record */
    uint64_t samples;                    /* rows trained so far */
    uint64_t rec_samples;                /* rows at the last record */
    double loss_sum[PROGRESS_MAX_TASKS]; /* sum of row-weighted losses since last record */
    double loss_rows;                    /* rows in loss_sum */
    double last_loss[PROGRESS_MAX_TASKS];
    int epoch;
} progress_t;

/*
 * Start reporting. show_line: draw the live line on stderr. metrics_path:
 * file to append JSON records to (NULL or "" for none). Returns 0 or ERR_IO
 * naming the file.
 */
int progress_init(progress_t *p, int show_line, const char *metrics_path, double interval,
                  int ntasks, const char *const *task_names, errbuf_t *eb);

/* Record a trained batch of n rows with its mean losses per task; frac is
 * the fraction of the whole job done (0..1), or negative if unknown. */
void progress_update(progress_t *p, size_t n, const double *loss, double frac);

/* Final record and a closing newline for the live line. */
void progress_finish(progress_t *p);

/* Close the metrics file. */
void progress_release(progress_t *p);

/* Seconds since an arbitrary fixed point (monotonic clock). */
double progress_now(void);

#endif
