/*
 * progress.h - what a long run shows while it works: a live line for a
 * person at a terminal (samples, samples/s, loss per task, done %, ETA),
 * plain periodic lines when the output is not a terminal (so `| tee` and
 * log files keep them), and, separately, one machine-readable JSON record
 * per interval in a metrics file, so curves can be plotted.
 *
 * It does not evaluate anything (valid.h) or decide how far a run is: the
 * caller passes the fraction done (reader_disk_progress: bytes on disk, so
 * a .gz input is measured by its compressed bytes).
 *
 * NOTES ON THE DESIGN
 *   This run. Counts, rates and the ETA are of this run only: a resumed
 *   run starts at the samples and fraction already done (o.base, o.frac0)
 *   and its rate and ETA use only what it did itself, so a rerun that has
 *   nothing left trains 0 samples at 0/s.
 *
 *   The live line is drawn through the logger (log_live), which erases it
 *   before every log line and draws it again after, so a log line is never
 *   glued to it; progress_finish() leaves it on screen and ends the line.
 *
 *   Metrics records (JSON lines, appended): every record carries
 *     run      the run id (UTC start time and pid: "20261206T001512Z-4242")
 *     time     wall clock, ISO 8601 UTC with ms
 *     time_s   seconds since the run started
 *     event    "start" (one per run, first), "train" (per interval),
 *              "valid" (valid.h), "end" (the run's last; also "final": true)
 *     epoch    the epoch being trained (0-based)
 *     samples  samples of this rank trained so far, earlier runs included
 *   "start" adds command, rank, tasks and run_samples 0; "train" and "end"
 *   add run_samples (this run), samples_per_s (since the previous record),
 *   done (fraction of the whole job, when known) and loss_<task> (mean
 *   over the rows since the previous record); with a learned loss
 *   weighting also weight_<task> (the weights of the last batch).
 *
 * Thread-safety: one progress_t per run, used by one thread.
 */
#ifndef FUNNEL_PROGRESS_H
#define FUNNEL_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/json.h"

#define PROGRESS_MAX_TASKS 8

/* The 'progress' config key, in the order of its choices. */
enum { PROGRESS_AUTO, PROGRESS_ON, PROGRESS_OFF, PROGRESS_PLAIN };

/* What is shown: nothing, a live line, plain lines. */
enum { PROGRESS_SHOW_NONE, PROGRESS_SHOW_LIVE, PROGRESS_SHOW_PLAIN };

typedef struct progress_opts {
    int show;                /* PROGRESS_SHOW_* (progress_show()) */
    double every;            /* s between metrics records */
    double plain_every;      /* s between plain lines */
    const char *label;       /* first word of each line: "train", "predict", "worker1" */
    const char *command;     /* the start record's command ("train") */
    long long rank;          /* the start record's rank */
    const char *metrics;     /* JSON-lines file to append to; NULL or "": none */
    int ntasks;              /* losses per update (0: none) */
    const char *const *task; /* their names */
    uint64_t base;           /* resumed: samples done before this run (else 0) */
    double frac0;            /* resumed: fraction of the job done before it (else 0) */
    int epoch;               /* the epoch the run starts in */
} progress_opts_t;

typedef struct progress {
    progress_opts_t o;
    FILE *metrics;                       /* NULL: no metrics file */
    char run[48];                        /* run id */
    double t0;                           /* s, start (monotonic) */
    double last_line;                    /* s, last line drawn or printed */
    double last_record;                  /* s, last metrics record */
    uint64_t base;                       /* samples done before this run */
    uint64_t samples;                    /* samples this run */
    uint64_t rec_samples;                /* this run's samples at the last record */
    double frac0;                        /* fraction done when this run began; <0 unknown */
    double frac;                         /* fraction done now; <0 unknown */
    double loss_sum[PROGRESS_MAX_TASKS]; /* row-weighted losses since the last record */
    double loss_rows;                    /* rows in loss_sum */
    double shown[PROGRESS_MAX_TASKS];    /* losses on the last line */
    int epoch;                           /* set by the caller: the epoch being trained */
    double weight[PROGRESS_MAX_TASKS];   /* the current loss weights (progress_set_weights) */
    int has_weights;                     /* 1 once set: lines and records show them */
} progress_t;

/* What to show for the 'progress' key value (PROGRESS_AUTO..PLAIN): auto
 * is a live line when stderr is a terminal, else plain lines. */
int progress_show(int mode);

/*
 * Start: copy o (its strings must outlive p), make the run id, open the
 * metrics file (if any) and write the start record. Returns 0 or ERR_IO
 * naming the file; either way release p with progress_release().
 */
int progress_init(progress_t *p, const progress_opts_t *o, errbuf_t *eb);

/* The loss weights now in use, one per task (learned or per-batch loss
 * weighting, model/lossw.h): from now on each line shows them ("w
 * 1.02/0.97/1.31") and each "train" and "end" record carries
 * weight_<task>. Not called: neither shows weights. */
void progress_set_weights(progress_t *p, const double *w);

/* n more samples done with their mean losses per task (NULL if ntasks is
 * 0); frac is the fraction of the whole job done (0..1), <0 if unknown. */
void progress_update(progress_t *p, size_t n, const double *loss, double frac);

/*
 * A record of the metrics file for another module (valid.c): writes the
 * common fields (run, time, time_s, event, epoch, samples) into j, opened on
 * the file, and returns 1; returns 0 (j untouched) without a metrics file.
 * Add fields, then progress_record_end().
 */
int progress_record_begin(progress_t *p, json_t *j, const char *event);
void progress_record_end(progress_t *p, json_t *j);

/* The end record, a last line, and the live line left on screen. */
void progress_finish(progress_t *p);

/* Close the metrics file (and end a live line still up). */
void progress_release(progress_t *p);

/* This run's samples and their rate since progress_init (samples/s). */
uint64_t progress_samples(const progress_t *p);
double progress_rate(const progress_t *p);

/* Seconds since an arbitrary fixed point (monotonic clock). */
double progress_now(void);

#endif
