/*
 * fuse.c - score fusion search. See fuse.h for the forms and metrics.
 *
 * NOTES ON THE DESIGN
 *   Every evaluation builds the fused score of all rows (in double, then
 *   float for the exact AUC sort of metrics.h) and measures both AUCs, so
 *   the Pareto front of click AUC against buy AUC comes from every score
 *   tried by either search at no extra cost. Products are computed as sums
 *   of logs (probabilities floored at 1e-30), which rank the same.
 *   The grid is the full product grid (grid^nparams points); BO starts from
 *   min(5, evals) random points and spends the rest on EI suggestions.
 */
#include "worker/fuse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/bayesopt.h"
#include "worker/metrics.h"

typedef struct fuse_ctx {
    const eval_data_t *d;
    const fuse_args_t *a;
    fuse_result_t *res;
    float *score;    /* n */
    double *lg[3];   /* log pctr, log pcvr, log pctavr (product form), n each */
    int has_avr;     /* the predictions have pctavr */
    metrics_ws_t ws; /* AUC sort workspace */
    int by;          /* FUSE_GRID / FUSE_BO: who is evaluating */
} fuse_ctx_t;

double fuse_metric(const fuse_point_t *p, int metric)
{
    switch (metric) {
    case FUSE_CLICK_AUC: return p->click_auc;
    case FUSE_BUY_NDCG:
    case FUSE_CLICK_NDCG: return p->ndcg;
    default: return p->buy_auc;
    }
}

static int is_ndcg(int metric)
{
    return metric == FUSE_BUY_NDCG || metric == FUSE_CLICK_NDCG;
}

static double flog(float p)
{
    return log(p > 1e-30f ? (double)p : 1e-30);
}

/* The fused score of every row for weights w. */
static void make_score(fuse_ctx_t *c, const double *w)
{
    const eval_data_t *d = c->d;
    const float *ctr = d->pred[EVAL_P_CTR], *avr = d->pred[EVAL_P_CTAVR];
    const float *cvr = d->pred[EVAL_P_CTCVR];
    double wa = pow(10, w[0]), wc = pow(10, c->has_avr ? w[1] : w[0]);

    for (size_t i = 0; i < d->n; i++) {
        double s;
        if (c->a->form == FUSE_PRODUCT) {
            s = c->lg[0][i] + w[0] * c->lg[1][i];
            if (c->has_avr)
                s += w[1] * c->lg[2][i];
        } else {
            s = ctr[i] + wc * cvr[i];
            if (c->has_avr)
                s += wa * avr[i];
        }
        c->score[i] = (float)s;
    }
}

/* Both AUCs of score, and the NDCG metric's per-request mean (NaN for
 * the AUC metrics). */
static int measure(fuse_ctx_t *c, const float *score, double *click, double *buy, double *ndcg)
{
    const eval_data_t *d = c->d;
    int rc = metrics_auc(click, score, d->label[EVAL_L_CLICK], NULL, d->n, &c->ws);

    if (rc == 0)
        rc = metrics_auc(buy, score, d->label[EVAL_L_BUY], NULL, d->n, &c->ws);
    *ndcg = NAN;
    if (rc == 0 && is_ndcg(c->a->metric)) {
        metrics_requests_t rq;
        int y = c->a->metric == FUSE_CLICK_NDCG ? EVAL_L_CLICK : EVAL_L_BUY;
        rc = metrics_per_request(&rq, score, d->label[y], NULL, d->req, d->n, &c->ws);
        *ndcg = rq.ndcg;
        c->res->requests = rq.requests;
    }
    return rc;
}

/* Evaluate weights w: record the point, return the metric in *y. */
static int evaluate(void *ctx, const double *w, double *y)
{
    fuse_ctx_t *c = ctx;
    fuse_result_t *r = c->res;
    fuse_point_t *p;
    int rc;

    if (r->npts >= r->cap)
        return ERR_TOOBIG; /* cannot happen: cap counts the grid and BO's budget */
    p = &r->pts[r->npts];
    memset(p, 0, sizeof(*p));
    memcpy(p->w, w, (size_t)r->nparams * sizeof(double));
    make_score(c, w);
    if ((rc = measure(c, c->score, &p->click_auc, &p->buy_auc, &p->ndcg)) != 0)
        return rc;
    p->by = c->by;
    r->npts++;
    *y = fuse_metric(p, c->a->metric);
    if (isnan(*y)) /* a single class: nothing to rank */
        return ERR_INVAL;
    return 0;
}

static void box(const fuse_args_t *a, double *lo, double *hi)
{
    for (int k = 0; k < FUSE_MAX_PARAMS; k++) {
        lo[k] = a->form == FUSE_PRODUCT ? 0.0 : -3.0;
        hi[k] = a->form == FUSE_PRODUCT ? 4.0 : 3.0;
    }
}

static int best_of(const fuse_result_t *r, int by, int metric)
{
    int bi = -1;

    for (int i = 0; i < r->npts; i++)
        if (r->pts[i].by == by &&
            (bi < 0 || fuse_metric(&r->pts[i], metric) > fuse_metric(&r->pts[bi], metric)))
            bi = i;
    return bi;
}

static int run_grid(fuse_ctx_t *c)
{
    int G = c->a->grid, np = c->res->nparams, total = np == 1 ? G : G * G;
    double lo[FUSE_MAX_PARAMS], hi[FUSE_MAX_PARAMS], w[FUSE_MAX_PARAMS] = {0, 0}, y;
    int rc;

    box(c->a, lo, hi);
    c->by = FUSE_GRID;
    for (int g = 0; g < total; g++) {
        int idx[2] = {g % G, g / G};
        for (int k = 0; k < np; k++)
            w[k] = lo[k] + (hi[k] - lo[k]) * idx[k] / (G - 1);
        if ((rc = evaluate(c, w, &y)) != 0)
            return rc;
    }
    c->res->grid_evals = total;
    c->res->best_grid = best_of(c->res, FUSE_GRID, c->a->metric);
    return 0;
}

static int run_bo(fuse_ctx_t *c, errbuf_t *eb)
{
    bo_opts_t o = {.dim = c->res->nparams, .seed = c->a->seed};
    double bx[FUSE_MAX_PARAMS], by;
    int first = c->res->npts, rc;
    bo_t *b;

    box(c->a, o.lo, o.hi);
    if (!(b = bo_new(&o, eb)))
        return ERR_NOMEM;
    c->by = FUSE_BO;
    rc = bo_maximize(b, evaluate, c, c->a->evals < 5 ? c->a->evals : 5, c->a->evals, bx, &by);
    if (rc == 0) {
        double sf2;
        bo_hyper(b, &c->res->bo_len, &sf2);
        c->res->bo_evals = c->res->npts - first;
        c->res->best_bo = best_of(c->res, FUSE_BO, c->a->metric);
        c->res->bo_first_best = c->res->best_bo - first + 1;
    } else
        errbuf_set(eb, rc, "fuse: Bayesian optimization stopped: %s", err_strerror(rc));
    bo_destroy(&b);
    return rc;
}

static int baselines(fuse_ctx_t *c)
{
    static const int col[3] = {EVAL_P_CTR, EVAL_P_CTCVR, EVAL_P_CTAVR};
    int rc;

    for (int k = 0; k < 3; k++) {
        c->res->base_click[k] = c->res->base_buy[k] = c->res->base_ndcg[k] = NAN;
        if (!c->d->pred[col[k]])
            continue;
        if ((rc = measure(c, c->d->pred[col[k]], &c->res->base_click[k], &c->res->base_buy[k],
                          &c->res->base_ndcg[k])))
            return rc;
    }
    return 0;
}

int fuse_search(fuse_result_t *res, const eval_data_t *d, const fuse_args_t *a, errbuf_t *eb)
{
    fuse_ctx_t c = {.d = d, .a = a, .res = res};
    int rc = 0;

    memset(res, 0, sizeof(*res));
    res->best_grid = res->best_bo = -1;
    if (a->search < FUSE_GRID || a->search > FUSE_BOTH)
        return errbuf_set(eb, ERR_INVAL, "fuse: search %d is not grid, bo or both", a->search);
    if (a->grid < 2 || a->grid > 64)
        return errbuf_set(eb, ERR_INVAL, "fuse: --grid %d: give 2..64 points per weight", a->grid);
    if ((a->search & FUSE_BO) && (a->evals < 2 || a->evals > BO_MAX_POINTS))
        return errbuf_set(eb, ERR_INVAL, "fuse: --evals %d: give 2..%d evaluations", a->evals,
                          BO_MAX_POINTS);
    if (d->n == 0)
        return errbuf_set(eb, ERR_INVAL, "fuse: no rows to score");
    if (is_ndcg(a->metric) && !d->has_req)
        return errbuf_set(eb, ERR_INVAL,
                          "fuse: --metric %s ranks within requests, and the log has no request "
                          "ids: give a log whose lines carry @req:ID (docs/FORMAT.md; funnel-gen "
                          "--request_size N writes them), or use --metric buy_auc",
                          a->metric == FUSE_CLICK_NDCG ? "click_ndcg" : "ndcg");
    c.has_avr = d->pred[EVAL_P_CTAVR] != NULL;
    res->nparams = c.has_avr ? 2 : 1;
    if (a->form == FUSE_PRODUCT) {
        res->names[0] = "b(pcvr)";
        res->names[1] = "c(pctavr)";
    } else {
        res->names[0] = c.has_avr ? "log10w(pctavr)" : "log10w(pctcvr)";
        res->names[1] = "log10w(pctcvr)";
    }
    metrics_ws_init(&c.ws);
    res->cap = (a->search & FUSE_GRID ? (res->nparams == 1 ? a->grid : a->grid * a->grid) : 0) +
               (a->search & FUSE_BO ? a->evals : 0);
    res->pts = calloc((size_t)res->cap, sizeof(*res->pts));
    c.score = malloc(d->n * sizeof(float));
    for (int k = 0; k < 3 && a->form == FUSE_PRODUCT; k++)
        c.lg[k] = malloc(d->n * sizeof(double));
    if (!res->pts || !c.score || (a->form == FUSE_PRODUCT && (!c.lg[0] || !c.lg[1] || !c.lg[2]))) {
        rc = errbuf_set(eb, ERR_NOMEM, "fuse: out of memory for %zu rows", d->n);
        goto out;
    }
    if (a->form == FUSE_PRODUCT)
        for (size_t i = 0; i < d->n; i++) {
            c.lg[0][i] = flog(d->pred[EVAL_P_CTR][i]);
            c.lg[1][i] = flog(d->pred[EVAL_P_CVR][i]);
            c.lg[2][i] = c.has_avr ? flog(d->pred[EVAL_P_CTAVR][i]) : 0;
        }
    if ((rc = baselines(&c)) != 0) {
        errbuf_set(eb, rc, "fuse: AUC of the baselines: %s", err_strerror(rc));
        goto out;
    }
    if (isnan(res->base_buy[0]) || isnan(res->base_click[0])) {
        rc = errbuf_set(eb, ERR_INVAL,
                        "fuse: the log's rows are all of one class for click or buy "
                        "(no AUC): give a validation log with clicks and buys");
        goto out;
    }
    if (is_ndcg(a->metric) && res->requests == 0) {
        rc = errbuf_set(eb, ERR_INVAL,
                        "fuse: no request of the log has both a %s and a row without one, so "
                        "per-request NDCG is undefined: give a log with more rows per request",
                        a->metric == FUSE_CLICK_NDCG ? "click" : "buy");
        goto out;
    }
    if ((a->search & FUSE_GRID) && (rc = run_grid(&c)) != 0) {
        errbuf_set(eb, rc, "fuse: grid search: %s", err_strerror(rc));
        goto out;
    }
    if (a->search & FUSE_BO)
        rc = run_bo(&c, eb);
out:
    for (int k = 0; k < 3; k++)
        free(c.lg[k]);
    free(c.score);
    metrics_ws_release(&c.ws);
    return rc;
}

void fuse_result_release(fuse_result_t *res)
{
    free(res->pts);
    memset(res, 0, sizeof(*res));
}

static const char *metric_name(int m)
{
    static const char *const names[] = {"buy_auc", "click_auc", "buy_ndcg", "click_ndcg"};

    return names[m >= 0 && m <= FUSE_CLICK_NDCG ? m : 0];
}

/* "  buy_ndcg 0.612345" after the AUCs for the NDCG metrics; nothing else. */
static void print_ndcg(FILE *out, int metric, double v)
{
    if (is_ndcg(metric))
        fprintf(out, "  %s %.6f", metric_name(metric), v);
}

static void print_w(FILE *out, const fuse_result_t *r, const fuse_point_t *p)
{
    for (int k = 0; k < r->nparams; k++)
        fprintf(out, "%s%s=%.4f", k ? " " : "", r->names[k], p->w[k]);
}

/* Is p dominated (both AUCs <=, one <) by another point? */
static int dominated(const fuse_result_t *r, int i)
{
    const fuse_point_t *p = &r->pts[i];

    for (int j = 0; j < r->npts; j++) {
        const fuse_point_t *q = &r->pts[j];
        if (q->click_auc >= p->click_auc && q->buy_auc >= p->buy_auc &&
            (q->click_auc > p->click_auc || q->buy_auc > p->buy_auc || j < i))
            return 1; /* ties: only the first copy is kept */
    }
    return 0;
}

static int by_click(const void *a, const void *b)
{
    const fuse_point_t *p = a, *q = b;

    return (p->click_auc > q->click_auc) - (p->click_auc < q->click_auc);
}

int fuse_print(FILE *out, const fuse_result_t *r, const fuse_args_t *a, size_t rows)
{
    static const char *bname[3] = {"pctr", "pctcvr", "pctavr"};
    const fuse_point_t *best = NULL;
    fuse_point_t *front;
    int nf = 0;

    fprintf(out, "fuse: %zu rows, maximising %s, form %s: %s\n", rows, metric_name(a->metric),
            a->form == FUSE_PRODUCT ? "product" : "sum",
            a->form == FUSE_PRODUCT
                ? (r->nparams == 2 ? "score = pctr * pcvr^b * pctavr^c" : "score = pctr * pcvr^b")
                : (r->nparams == 2 ? "score = pctr + 10^u pctavr + 10^v pctcvr"
                                   : "score = pctr + 10^u pctcvr"));
    for (int k = 0; k < 3; k++)
        if (!isnan(r->base_buy[k])) {
            fprintf(out, "baseline %-8s buy_auc %.6f  click_auc %.6f", bname[k], r->base_buy[k],
                    r->base_click[k]);
            print_ndcg(out, a->metric, r->base_ndcg[k]);
            fputc('\n', out);
        }
    if (r->best_grid >= 0) {
        const fuse_point_t *p = &r->pts[r->best_grid];
        fprintf(out, "grid     %4d evals  buy_auc %.6f  click_auc %.6f", r->grid_evals, p->buy_auc,
                p->click_auc);
        print_ndcg(out, a->metric, p->ndcg);
        fputs("  ", out);
        print_w(out, r, p);
        fputc('\n', out);
        best = p;
    }
    if (r->best_bo >= 0) {
        const fuse_point_t *p = &r->pts[r->best_bo];
        fprintf(out, "bo       %4d evals  buy_auc %.6f  click_auc %.6f", r->bo_evals, p->buy_auc,
                p->click_auc);
        print_ndcg(out, a->metric, p->ndcg);
        fputs("  ", out);
        print_w(out, r, p);
        fprintf(out, "  (best at eval %d, GP length scale %.2f)\n", r->bo_first_best, r->bo_len);
        if (!best || fuse_metric(p, a->metric) > fuse_metric(best, a->metric))
            best = p;
    }
    if (best) {
        fuse_point_t pctr = {
            .click_auc = r->base_click[0], .buy_auc = r->base_buy[0], .ndcg = r->base_ndcg[0]};
        double base = fuse_metric(&pctr, a->metric);
        double got = fuse_metric(best, a->metric);
        fprintf(out, "best     %-4s        %s %.6f  ", best->by == FUSE_GRID ? "grid" : "bo",
                metric_name(a->metric), got);
        print_w(out, r, best);
        if (got > base)
            fprintf(out, "\n  improves %s over pctr alone by %+.6f (%.6f -> %.6f)\n",
                    metric_name(a->metric), got - base, base, got);
        else
            fprintf(out,
                    "\n  cannot improve %s over pctr alone (%.6f): no fused score ranks "
                    "better on this log\n",
                    metric_name(a->metric), base);
    }
    front = malloc((size_t)(r->npts ? r->npts : 1) * sizeof(*front));
    if (!front)
        return ERR_NOMEM;
    for (int i = 0; i < r->npts; i++)
        if (!dominated(r, i))
            front[nf++] = r->pts[i];
    qsort(front, (size_t)nf, sizeof(*front), by_click);
    fprintf(out, "pareto front, click_auc vs buy_auc (%d of %d scores tried):\n", nf, r->npts);
    for (int i = 0; i < nf; i++) {
        fprintf(out, "  click_auc %.6f  buy_auc %.6f  ", front[i].click_auc, front[i].buy_auc);
        print_w(out, r, &front[i]);
        fprintf(out, "  (%s)\n", front[i].by == FUSE_GRID ? "grid" : "bo");
    }
    free(front);
    return ferror(out) ? ERR_IO : 0;
}

int fuse_parse_words(fuse_args_t *a, const char *metric, const char *form, const char *search,
                     errbuf_t *eb)
{
    if (metric) {
        if (strcmp(metric, "buy_auc") == 0)
            a->metric = FUSE_BUY_AUC;
        else if (strcmp(metric, "click_auc") == 0)
            a->metric = FUSE_CLICK_AUC;
        else if (strcmp(metric, "ndcg") == 0 || strcmp(metric, "buy_ndcg") == 0)
            a->metric = FUSE_BUY_NDCG;
        else if (strcmp(metric, "click_ndcg") == 0)
            a->metric = FUSE_CLICK_NDCG;
        else
            return errbuf_set(eb, ERR_INVAL,
                              "fuse: --metric %s: want buy_auc, click_auc, ndcg (= buy_ndcg, "
                              "per request) or click_ndcg",
                              metric);
    }
    if (form) {
        if (strcmp(form, "product") == 0)
            a->form = FUSE_PRODUCT;
        else if (strcmp(form, "sum") == 0)
            a->form = FUSE_SUM;
        else
            return errbuf_set(eb, ERR_INVAL, "fuse: --form %s: want product or sum", form);
    }
    if (search) {
        if (strcmp(search, "grid") == 0)
            a->search = FUSE_GRID;
        else if (strcmp(search, "bo") == 0)
            a->search = FUSE_BO;
        else if (strcmp(search, "both") == 0)
            a->search = FUSE_BOTH;
        else
            return errbuf_set(eb, ERR_INVAL, "fuse: --search %s: want grid, bo or both", search);
    }
    return 0;
}

int fuse_run(const worker_conf_t *wc, const char *pred_path, char *const *log_paths, int nlogs,
             const fuse_args_t *a, FILE *out, errbuf_t *eb)
{
    eval_data_t d;
    fuse_result_t res;
    int rc;

    memset(&res, 0, sizeof(res));
    rc = eval_load(&d, wc, pred_path, log_paths, nlogs, NULL, eb);
    if (rc == 0)
        rc = fuse_search(&res, &d, a, eb);
    if (rc == 0 && (rc = fuse_print(out, &res, a, d.n)) != 0)
        errbuf_set(eb, rc, "fuse: writing the report: %s", strerror(errno));
    fuse_result_release(&res);
    eval_data_release(&d);
    return rc;
}
