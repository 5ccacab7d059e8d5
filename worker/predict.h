/*
 * predict.h - `funnel-worker predict`: score every accepted line of the
 * logs with a saved model directory or a running cluster, and write the
 * prediction file of FORMAT.md (pctr pcvr pctcvr, plus pctavr for esm2),
 * one line per accepted input line, in input order. A model with a
 * position-bias tower predicts without it unless --with_bias.
 *
 * The model, parameters and reader are a session (session.h), as in
 * training. Keys that have no row (never trained, or not yet admitted)
 * pool as zeros; prediction creates and changes nothing, on disk or on a
 * cluster: an untrained cluster (a shard without dense weights) is refused,
 * a trained one without rows predicts from its towers alone.
 *
 * A saved model carries its layout: predict_take_layout() fills the
 * configuration's model_type, slots, dims, towers, optimizers and log
 * format (and the bias tower's bias_slots, bias_layers) from the model's
 * META wherever the user gave none, so
 * `predict --model DIR` needs no layout options; a model directory or a
 * checkpoint of any shard count is read in process.
 *
 * Thread-safety: one call per process.
 */
#ifndef FUNNEL_PREDICT_H
#define FUNNEL_PREDICT_H

#include "common/err.h"
#include "model/model.h"
#include "worker/worker_conf.h"

/*
 * Take the layout recorded in dir/META (a model directory or checkpoint)
 * into wc: keys the user did not give are set from it, a given one that
 * says otherwise is ERR_MISMATCH naming both values (meta_apply_conf).
 * Returns 0 or ERR_* (ERR_NOTFOUND: no META in dir).
 */
int predict_take_layout(worker_conf_t *wc, const char *dir, errbuf_t *eb);

/* Make m's predictions include its bias tower's logit in pctr if
 * wc->with_bias (model_predict_set_bias), else leave it out. ERR_CONFIG if
 * with_bias is asked of a model without a bias tower. */
int predict_set_bias(model_t *m, const worker_conf_t *wc, errbuf_t *eb);

/* model_dir: a saved model directory or checkpoint (read in process), or
 * NULL to use the cluster in wc->ps (read-only).
 * out_path: prediction file, written atomically (afile.h). Returns 0 or
 * ERR_*. */
int predict_run(const worker_conf_t *wc, const char *model_dir, char *const *logs, int nlogs,
                const char *out_path, errbuf_t *eb);

#endif
