/*
 * fuse.h - `funnel-worker fuse`: tune a ranking score made of a model's
 * predicted probabilities on a validation log, by a grid and by Bayesian
 * optimization (bayesopt.h), and print the best weights, the metric and
 * the trade-off between click AUC and buy AUC along the Pareto front of
 * every score tried.
 *
 * Forms (the weights searched; a rank-preserving map of a score changes
 * nothing, so one weight is fixed to 1):
 *   product  score = pctr * pcvr^b * pctavr^c   b, c in [0, 4]
 *            (c only when the predictions have pctavr: esm2); b = 1, c = 0
 *            is pctcvr, b = c = 0 pctr alone
 *   sum      score = pctr + 10^u * pctavr + 10^v * pctcvr   u, v in [-3, 3]
 *            (u only with pctavr); log-scaled because pctcvr is ~100x
 *            smaller than pctr
 * Metrics: buy AUC (score against buy over every row), click AUC (against
 * click), and buy or click NDCG per request: the mean over the log's
 * requests (@req ids, docs/FORMAT.md) holding both classes of the NDCG of
 * the request's rows ranked by the score (metrics_per_request). A log
 * without request ids is refused for the NDCG metrics with that reason.
 *
 * Not here: predicting (predict.h). Thread-safety: one call at a time.
 */
#ifndef FUNNEL_FUSE_H
#define FUNNEL_FUSE_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "worker/eval.h"
#include "worker/worker_conf.h"

enum { FUSE_BUY_AUC = 0, FUSE_CLICK_AUC = 1, FUSE_BUY_NDCG = 2, FUSE_CLICK_NDCG = 3 };
enum { FUSE_PRODUCT = 0, FUSE_SUM = 1 };
enum { FUSE_GRID = 1, FUSE_BO = 2, FUSE_BOTH = 3 };

#define FUSE_MAX_PARAMS 2

typedef struct fuse_args {
    int metric;    /* FUSE_BUY_AUC, ..._CLICK_AUC, ..._BUY_NDCG, ..._CLICK_NDCG: maximised */
    int form;      /* FUSE_* form */
    int search;    /* FUSE_GRID, FUSE_BO or both */
    int grid;      /* grid points per parameter, >= 2 */
    int evals;     /* BO evaluations, 2..BO_MAX_POINTS */
    uint64_t seed; /* BO's random candidates */
} fuse_args_t;

/* One score tried. */
typedef struct fuse_point {
    double w[FUSE_MAX_PARAMS]; /* the form's weights (b, c or u, v) */
    double click_auc;
    double buy_auc;
    double ndcg; /* per-request NDCG of the NDCG metrics' label; NaN for the AUC metrics */
    int by;      /* FUSE_GRID or FUSE_BO */
} fuse_point_t;

typedef struct fuse_result {
    int nparams;          /* 1 or 2 */
    const char *names[2]; /* of the weights */
    double base_click[3]; /* pctr, pctcvr and pctavr (NaN if absent) alone: click AUC */
    double base_buy[3];   /*   ... and buy AUC */
    double base_ndcg[3];  /*   ... and the NDCG metric (NaN for the AUC metrics) */
    uint64_t requests;    /* requests the NDCG metrics average over */
    fuse_point_t *pts;    /* every score tried, grid first (caller frees: fuse_result_release) */
    int npts;
    int cap;           /* pts allocated: grid points + BO evaluations */
    int grid_evals;    /* of pts */
    int bo_evals;      /* of pts */
    int best_grid;     /* index into pts, -1 if no grid */
    int best_bo;       /* index into pts, -1 if no BO */
    int bo_first_best; /* evaluations BO took to reach its best (1-based) */
    double bo_len;     /* GP length scale of BO's last fit (unit box) */
} fuse_result_t;

/* The metric of a point (args->metric). */
double fuse_metric(const fuse_point_t *p, int metric);

/*
 * Search the score forms over the rows of d (labels click and buy, the
 * predictions) as a says, into *res (release with fuse_result_release(),
 * also after a failure). Returns 0, ERR_INVAL for bad arguments (eb says
 * which), ERR_NOMEM, ERR_TOOBIG.
 */
int fuse_search(fuse_result_t *res, const eval_data_t *d, const fuse_args_t *a, errbuf_t *eb);

void fuse_result_release(fuse_result_t *res);

/* Print res: the baselines, each search's best, the overall best beside
 * pctr alone (or that pctr alone is not beaten), and the Pareto front of
 * click AUC against buy AUC. Returns 0 or ERR_IO. */
int fuse_print(FILE *out, const fuse_result_t *res, const fuse_args_t *a, size_t rows);

/*
 * The fuse command: read the predictions and the labels of the logs
 * (eval_load: same rows, same order), fuse_search(), fuse_print(). Returns
 * 0 or the first failure's code (eb filled).
 */
int fuse_run(const worker_conf_t *wc, const char *pred_path, char *const *log_paths, int nlogs,
             const fuse_args_t *a, FILE *out, errbuf_t *eb);

/* Parse the --metric (buy_auc, click_auc, ndcg = buy_ndcg, click_ndcg),
 * --form and --search words into a. 0, or ERR_INVAL with eb naming the
 * option, the value and the accepted words. NULL leaves the default. */
int fuse_parse_words(fuse_args_t *a, const char *metric, const char *form, const char *search,
                     errbuf_t *eb);

#endif
