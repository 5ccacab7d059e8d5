/*
 * eval.h - `funnel-worker eval`: score a prediction file against the labels
 * of the log it was predicted from, and, for synthetic data, against the
 * generator's truth file.
 *
 * Per task it reports AUC, log-loss, calibration (mean prediction against
 * the label rate) and row counts; with a truth file also the Bayes-optimal
 * (oracle) AUC on the same rows, the regret (oracle - model) and the
 * entire-space CVR AUC that only the truth's counterfactual label allows.
 * Output is an aligned table or one JSON object. The math is in metrics.h;
 * this module reads the files, lines the rows up and prints.
 *
 * It does not predict (predict.h) and writes no file. Thread-safety: none
 * needed (one call per run); eval_compute() only reads its input.
 *
 * NOTES ON THE DESIGN
 *
 * Rows. The prediction file has one row per ACCEPTED log line, in order
 * (FORMAT.md, "Prediction output"), so the log is read with the project's
 * reader under the same [model] slots and [data] settings as predict; row
 * i of the prediction file goes with the i-th accepted line. The truth
 * file has one row per impression the generator wrote, so it lines up only
 * when no log line was rejected; its click/action/buy must then equal the
 * log's row by row (any difference means the wrong file).
 *
 * Tasks (a table in eval.c):
 *   ctr     pctr   vs click          all rows
 *   cvr     pcvr   vs buy            clicked rows only (what naive trains on)
 *   ctcvr   pctcvr vs buy            all rows
 *   ctavr   pctavr vs click&action   all rows; only if the file has pctavr
 *   cvr_es  pcvr   vs buy_cf         all rows; only with a truth file
 * Each oracle uses the truth column of the same name on the same rows.
 *
 * Files. The prediction and truth files are TAB-separated with a header
 * naming the columns; columns are found by name (others are ignored) and
 * every row must have as many fields as the header. Probabilities are
 * parsed to float (their ranking is exact for the 6 significant digits
 * funnel writes) and must lie in [0, 1]. Files are read in large blocks.
 *
 * Weights and requests (README, "Weights and pairwise loss"). Each row
 * weighs its line's @w times the [train] label_weights of its positive
 * labels, as in training; auc_weighted is the probability that a positive
 * drawn in proportion to its weight scores above a negative drawn the
 * same way (ties count half). With request ids (@req), a request is a run
 * of consecutive rows with one id; for each task the requests having both
 * classes among its rows give an AUC and an NDCG (binary gain, the whole
 * request ranked by score, ties in row order), averaged with equal weight
 * per request. cvr_es has no per-request numbers.
 * Memory: about 52 bytes per row (4 label bytes, up to 8 float columns and
 * the AUC sort workspace of 16 bytes per row).
 */
#ifndef FUNNEL_EVAL_H
#define FUNNEL_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "worker/metrics.h"
#include "worker/worker_conf.h"

enum { EVAL_CTR, EVAL_CVR, EVAL_CTCVR, EVAL_CTAVR, EVAL_CVR_ES, EVAL_NTASKS };

/* Probability columns of the prediction and truth files. */
enum { EVAL_P_CTR, EVAL_P_CVR, EVAL_P_CTCVR, EVAL_P_CTAVR, EVAL_NPROBS };

/* Label columns: the log's three, the truth's counterfactual buy. */
enum { EVAL_L_CLICK, EVAL_L_ACTION, EVAL_L_BUY, EVAL_L_BUY_CF, EVAL_NLABELS };

/* The rows to score, lined up: every array has n entries. */
typedef struct eval_data {
    size_t n;                     /* rows (accepted log lines) */
    uint64_t rejected;            /* log lines the reader rejected */
    uint8_t *label[EVAL_NLABELS]; /* 0/1; buy_cf NULL without truth */
    float *pred[EVAL_NPROBS];     /* the model's; pctavr may be NULL */
    float *truth[EVAL_NPROBS];    /* all NULL without truth; pctavr may be NULL */
    float *weight;                /* row weights: @w times label_weights (FORMAT.md) */
    uint64_t *req;                /* request ids (0: none) */
    int weighted;                 /* some row weight is not 1 */
    int has_req;                  /* some row has a request id */
} eval_data_t;

typedef struct eval_task {
    int present;              /* 0: not measured (no pctavr column; no truth for cvr_es) */
    int has_oracle;           /* oracle and regret are set */
    metrics_summary_t model;  /* the prediction file's scores */
    metrics_summary_t oracle; /* the truth probabilities on the same rows */
    double regret;            /* oracle.auc - model.auc (AUC points); NaN if undefined */
    double auc_weighted;      /* AUC with each row counted by its weight; NaN if undefined */
    uint64_t requests;        /* requests with both classes (0: none, or no request ids) */
    double request_auc;       /* mean AUC within those requests; NaN without any */
    double request_ndcg;      /* mean NDCG within those requests; NaN without any */
} eval_task_t;

typedef struct eval_result {
    uint64_t rows;                 /* rows scored */
    uint64_t rejected;             /* log lines rejected (not in the predictions) */
    int has_truth;                 /* a truth file was given */
    int weighted;                  /* the rows have weights other than 1 */
    int has_req;                   /* the rows have request ids */
    eval_task_t task[EVAL_NTASKS]; /* EVAL_* order */
} eval_result_t;

/*
 * Read the labels of the logs (files or globs, read with wc's [model]
 * slots and [data] format/strict/report_rejects), the prediction file and,
 * if truth_path is not NULL, the truth file, and line them up in *d
 * (release with eval_data_release(), also after a failure).
 * Returns 0; ERR_MISMATCH when the row counts differ (eb names both files
 * and both counts), when the truth file cannot be aligned because log
 * lines were rejected, or when a truth row's labels differ from the log's
 * (eb names the first such row); ERR_PARSE for a bad header, a row with
 * the wrong number of columns or a value that is not a probability / 0-1
 * label (eb: "file:line: ..."); ERR_IO, ERR_NOMEM, and the reader's codes.
 */
int eval_load(eval_data_t *d, const worker_conf_t *wc, const char *pred_path,
              char *const *log_paths, int nlogs, const char *truth_path, errbuf_t *eb);

/* Free the arrays of d (a zeroed or partly loaded d is fine) and zero it. */
void eval_data_release(eval_data_t *d);

/*
 * Compute every task of d into *res. Tasks whose columns are missing are
 * left with present = 0. Returns 0, ERR_NOMEM or ERR_TOOBIG (n >= 2^32).
 */
int eval_compute(eval_result_t *res, const eval_data_t *d, errbuf_t *eb);

/* Print res as an aligned table, or with json as one JSON object on one
 * line (keys below; NaN prints as n/a or null). Returns 0 or ERR_IO.
 *   {"rows":N,"rejected":N,"truth":bool,
 *    "tasks":{"ctr":T,"cvr":T,"ctcvr":T,"ctavr":T|null},
 *    "cvr_entire_space":T|null}
 *   T = {"n","positives","auc","logloss","mean_pred","rate","calibration",
 *        "oracle_auc","oracle_logloss","regret","auc_weighted","requests",
 *        "request_auc","request_ndcg"}  (oracle_* and regret are null
 *   without truth; calibration = mean_pred / rate; auc_weighted equals auc
 *   when every weight is 1; request_* are null without request ids) */
int eval_print(FILE *out, const eval_result_t *res, int json);

/*
 * The eval command: eval_load(), eval_compute(), eval_print() to out.
 * Returns 0 or the first failure's code (eb filled).
 */
int eval_run(const worker_conf_t *wc, const char *pred_path, char *const *log_paths, int nlogs,
             const char *truth_path, int json, FILE *out, errbuf_t *eb);

#endif
