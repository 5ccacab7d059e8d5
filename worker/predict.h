/*
 * predict.h - `funnel-worker predict`: score every accepted line of the
 * logs with a saved model directory or a running cluster, and write the
 * prediction file of FORMAT.md (pctr pcvr pctcvr, plus pctavr for esm2),
 * one line per accepted input line, in input order.
 *
 * The model, parameters and reader are a session (session.h), as in
 * training. Keys that have no row (never trained, or not yet admitted)
 * pool as zeros; prediction creates and changes nothing.
 *
 * Thread-safety: one call per process.
 */
#ifndef FUNNEL_PREDICT_H
#define FUNNEL_PREDICT_H

#include "common/err.h"
#include "worker/worker_conf.h"

/* model_dir: a saved model, or NULL to use the cluster in wc->ps.
 * out_path: prediction file, written atomically (afile.h). Returns 0 or
 * ERR_*. */
int predict_run(const worker_conf_t *wc, const char *model_dir, char *const *logs, int nlogs,
                const char *out_path, errbuf_t *eb);

#endif
