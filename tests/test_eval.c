/*
 * test_eval.c - the eval command end to end on small hand-written log,
 * prediction and truth files whose AUCs were computed by hand: the table,
 * the JSON object (checked to be valid JSON, then for its values), a file
 * without pctavr and without truth, a single-class task, header order,
 * CRLF, extra columns, a file larger than the read block, and every
 * mismatch and malformed-input error with the file, line and counts it
 * must name.
 */
#include <CUnit/CUnit.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/util.h"
#include "worker/eval.h"
#include "worker/metrics.h"
#include "worker/worker_conf.h"

static char dir[512];
static char log_path[700], pred_path[700], truth_path[700];

/*
 * Eight impressions (click action buy):
 *   r1 1 1 1   r2 1 0 0   r3 0 0 0   r4 1 1 0
 *   r5 0 0 0   r6 1 0 1   r7 0 0 0   r8 0 0 0
 * buy_cf of the unclicked rows r3, r5, r7, r8: 1 0 0 1.
 */
static const char *LOG8 = "1\t1\t1\tuser_id:a\n"
                          "1\t0\t0\tuser_id:b\n"
                          "0\t0\t0\tuser_id:c\n"
                          "1\t1\t0\tuser_id:d\n"
                          "0\t0\t0\tuser_id:e\n"
                          "1\t0\t1\tuser_id:f\n"
                          "0\t0\t0\tuser_id:g\n"
                          "0\t0\t0\tuser_id:h\n";

/*
 * Model scores and their AUCs, pair by pair:
 *   ctr   pos .9 .6 .8 .5 vs neg .6 .2 .1 .3: 4 + 3.5 + 4 + 3 = 14.5 / 16
 *   cvr   clicked rows, pos .4 .3 vs neg .4 .1: 1.5 + 1 = 2.5 / 4
 *   ctcvr pos .3 .2 vs neg .2 .05 .2 .01 .01 .02: 6 + 5 = 11 / 12
 *   ctavr pos .5 .3 vs neg .3 .1 .1 .6 0 .1: 5 + 4.5 = 9.5 / 12
 *   cvr_es (pcvr vs buy_cf) pos .4 .05 .3 .5 vs neg .4 .1 .2 .05:
 *         3.5 + 0.5 + 3 + 4 = 11 / 16
 */
static const char *PRED8 = "pctr\tpcvr\tpctcvr\tpctavr\n"
                           "0.9\t0.4\t0.3\t0.5\n"
                           "0.6\t0.4\t0.2\t0.3\n"
                           "0.6\t0.05\t0.05\t0.1\n"
                           "0.8\t0.1\t0.2\t0.3\n"
                           "0.2\t0.2\t0.01\t0.1\n"
                           "0.5\t0.3\t0.2\t0.6\n"
                           "0.1\t0.05\t0.01\t0\n"
                           "0.3\t0.5\t0.02\t0.1\n";

/*
 * True probabilities: ctr, cvr (clicked rows) and ctcvr rank perfectly
 * (oracle AUC 1); ctavr: r4 .35 loses to r6 .36, 11 / 12; cvr_es: r8 .15
 * loses to r2 .2, 15 / 16.
 */
static const char *TRUTH8 = "click\taction\tbuy\tbuy_cf\tpctr\tpcvr\tpctcvr\tpctavr\n"
                            "1\t1\t1\t1\t0.7\t0.5\t0.35\t0.4\n"
                            "1\t0\t0\t0\t0.6\t0.2\t0.12\t0.2\n"
                            "0\t0\t0\t1\t0.2\t0.45\t0.09\t0.05\n"
                            "1\t1\t0\t0\t0.65\t0.1\t0.06\t0.35\n"
                            "0\t0\t0\t0\t0.1\t0.05\t0.005\t0.03\n"
                            "1\t0\t1\t1\t0.55\t0.4\t0.3\t0.36\n"
                            "0\t0\t0\t0\t0.05\t0.02\t0.001\t0.01\n"
                            "0\t0\t0\t1\t0.15\t0.15\t0.045\t0.04\n";

static int setup(void)
{
    if (tu_mkdtemp(dir, sizeof(dir), "eval") != 0)
        return -1;
    snprintf(log_path, sizeof(log_path), "%s/test.tsv", dir);
    snprintf(pred_path, sizeof(pred_path), "%s/pred.tsv", dir);
    snprintf(truth_path, sizeof(truth_path), "%s/test.truth.tsv", dir);
    return 0;
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

static void make_conf(worker_conf_t *wc)
{
    errbuf_t eb;

    CU_ASSERT_EQUAL_FATAL(conf_defaults(&worker_conf_schema, wc, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(conf_set(&worker_conf_schema, wc, "slots", "user_id", "test", &eb), 0);
    wc->report_rejects = 0;
}

/* eval_run over log_path; the report into *text (caller frees). */
static int run(const char *truth, int json, char **text, errbuf_t *eb)
{
    worker_conf_t wc;
    char *logs[1] = {log_path};
    size_t len = 0;
    FILE *out;
    int rc;

    make_conf(&wc);
    out = open_memstream(text, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    eb->msg[0] = '\0';
    rc = eval_run(&wc, pred_path, logs, 1, truth, json, out, eb);
    conf_release(&worker_conf_schema, &wc);
    fclose(out);
    return rc;
}

/* ---- a small JSON syntax check and value lookup ------------------------ */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (; *p && *p != '"'; p++)
        if (*p == '\\' && !*++p)
            return NULL;
    return *p == '"' ? p + 1 : NULL;
}

static const char *json_number(const char *p)
{
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return NULL;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return p;
}

/* End of the JSON value at p, or NULL if it is not valid JSON. */
static const char *json_value(const char *p)
{
    p = skip_ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = skip_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                p = json_string(skip_ws(p));
                if (!p || *(p = skip_ws(p)) != ':')
                    return NULL;
                p++;
            }
            if (!(p = json_value(p)))
                return NULL;
            p = skip_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return json_string(p);
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0)
        return p + 4;
    if (strncmp(p, "false", 5) == 0)
        return p + 5;
    return json_number(p);
}

static int json_valid(const char *text)
{
    const char *e = json_value(text);
    return e && *skip_ws(e) == '\0';
}

/* Number of key inside the object that follows "obj": (obj NULL: the
 * first occurrence anywhere). NaN for null; -999 if missing. */
static double json_get(const char *text, const char *obj, const char *key)
{
    char pat[80];
    const char *p = text, *end;

    if (obj) {
        snprintf(pat, sizeof(pat), "\"%s\":{", obj);
        if (!(p = strstr(text, pat)))
            return -999;
    }
    end = obj ? strchr(p, '}') : text + strlen(text);
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(p, pat);
    if (!p || p > end)
        return -999;
    p += strlen(pat);
    if (strncmp(p, "null", 4) == 0)
        return NAN;
    return strtod(p, NULL);
}

/* ---- the table --------------------------------------------------------- */

/* The fields of the table row of a task, after its name, into v[]. */
static int table_row(const char *text, const char *task, char v[10][32])
{
    char pat[40], line[512];
    const char *l;
    int n;

    snprintf(pat, sizeof(pat), "\n%s ", task);
    if (!(l = strstr(text, pat)))
        return 0;
    l += strlen(pat);
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(l, "\n"), l);
    n = sscanf(line, "%31s %31s %31s %31s %31s %31s %31s %31s %31s", v[0], v[1], v[2], v[3], v[4],
               v[5], v[6], v[7], v[8]);
    return n;
}

static double logloss_of(const double *p, const int *y, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s -= y[i] ? log((double)(float)p[i]) : log(1 - (double)(float)p[i]);
    return s / n;
}

static void write_all(const char *log, const char *pred, const char *truth)
{
    CU_ASSERT_EQUAL_FATAL(tu_write(log_path, log), 0);
    CU_ASSERT_EQUAL_FATAL(tu_write(pred_path, pred), 0);
    if (truth)
        CU_ASSERT_EQUAL_FATAL(tu_write(truth_path, truth), 0);
}

static void test_compute_by_hand(void)
{
    worker_conf_t wc;
    char *logs[1] = {log_path};
    eval_data_t d;
    eval_result_t r;
    errbuf_t eb;
    const double pctr[8] = {.9, .6, .6, .8, .2, .5, .1, .3};
    const int click[8] = {1, 1, 0, 1, 0, 1, 0, 0};

    write_all(LOG8, PRED8, TRUTH8);
    make_conf(&wc);
    CU_ASSERT_EQUAL_FATAL(eval_load(&d, &wc, pred_path, logs, 1, truth_path, &eb), 0);
    CU_ASSERT_EQUAL(d.n, 8);
    CU_ASSERT_EQUAL_FATAL(eval_compute(&r, &d, &eb), 0);
    CU_ASSERT(r.rows == 8 && r.rejected == 0 && r.has_truth);
    for (int t = 0; t < EVAL_NTASKS; t++)
        CU_ASSERT(r.task[t].present && r.task[t].has_oracle);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTR].model.auc, 14.5 / 16, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CVR].model.auc, 2.5 / 4, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTCVR].model.auc, 11.0 / 12, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTAVR].model.auc, 9.5 / 12, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CVR_ES].model.auc, 11.0 / 16, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTR].oracle.auc, 1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CVR].oracle.auc, 1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTCVR].oracle.auc, 1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTAVR].oracle.auc, 11.0 / 12, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CVR_ES].oracle.auc, 15.0 / 16, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTR].regret, 1 - 14.5 / 16, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CVR_ES].regret, 15.0 / 16 - 11.0 / 16, 1e-15);
    /* row counts: cvr on the 4 clicked rows, 2 of them bought */
    CU_ASSERT(r.task[EVAL_CTR].model.n == 8 && r.task[EVAL_CTR].model.pos == 4);
    CU_ASSERT(r.task[EVAL_CVR].model.n == 4 && r.task[EVAL_CVR].model.pos == 2);
    CU_ASSERT(r.task[EVAL_CTAVR].model.n == 8 && r.task[EVAL_CTAVR].model.pos == 2);
    CU_ASSERT(r.task[EVAL_CVR_ES].model.n == 8 && r.task[EVAL_CVR_ES].model.pos == 4);
    /* calibration: mean pctr (0.9+0.6+0.6+0.8+0.2+0.5+0.1+0.3)/8 = 0.5 vs 4/8 */
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTR].model.mean_pred, 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTR].model.rate, 0.5, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CVR].model.mean_pred, (0.4 + 0.4 + 0.1 + 0.3) / 4, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTR].model.logloss, logloss_of(pctr, click, 8), 1e-12);
    eval_data_release(&d);
    CU_ASSERT_PTR_NULL(d.label[0]);
    conf_release(&worker_conf_schema, &wc);
}

static void test_table(void)
{
    errbuf_t eb;
    char *text = NULL, v[10][32];

    write_all(LOG8, PRED8, TRUTH8);
    CU_ASSERT_EQUAL_FATAL(run(truth_path, 0, &text, &eb), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "oracle_auc"));
    /* rows positives auc logloss mean_pred rate calib oracle_auc regret */
    CU_ASSERT_EQUAL(table_row(text, "ctr", v), 9);
    CU_ASSERT_STRING_EQUAL(v[0], "8");
    CU_ASSERT_STRING_EQUAL(v[1], "4");
    CU_ASSERT_STRING_EQUAL(v[2], "0.906250");
    CU_ASSERT_STRING_EQUAL(v[4], "0.500000");
    CU_ASSERT_STRING_EQUAL(v[5], "0.500000");
    CU_ASSERT_STRING_EQUAL(v[6], "1.000");
    CU_ASSERT_STRING_EQUAL(v[7], "1.000000");
    CU_ASSERT_STRING_EQUAL(v[8], "0.093750");
    CU_ASSERT_EQUAL(table_row(text, "cvr", v), 9);
    CU_ASSERT_STRING_EQUAL(v[0], "4");
    CU_ASSERT_STRING_EQUAL(v[2], "0.625000");
    CU_ASSERT_EQUAL(table_row(text, "ctavr", v), 9);
    CU_ASSERT_STRING_EQUAL(v[2], "0.791667");
    CU_ASSERT_STRING_EQUAL(v[7], "0.916667");
    CU_ASSERT_EQUAL(table_row(text, "cvr_es", v), 9);
    CU_ASSERT_STRING_EQUAL(v[2], "0.687500");
    CU_ASSERT_STRING_EQUAL(v[7], "0.937500");
    CU_ASSERT_STRING_EQUAL(v[8], "0.250000");
    free(text);
}

static void test_json(void)
{
    errbuf_t eb;
    char *text = NULL;

    write_all(LOG8, PRED8, TRUTH8);
    CU_ASSERT_EQUAL_FATAL(run(truth_path, 1, &text, &eb), 0);
    CU_ASSERT_FATAL(json_valid(text));
    CU_ASSERT_EQUAL(json_get(text, NULL, "rows"), 8);
    CU_ASSERT_EQUAL(json_get(text, NULL, "rejected"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"truth\":true"));
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctr", "auc"), 14.5 / 16, 1e-15);
    CU_ASSERT_EQUAL(json_get(text, "ctr", "n"), 8);
    CU_ASSERT_EQUAL(json_get(text, "ctr", "positives"), 4);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctr", "mean_pred"), 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctr", "rate"), 0.5, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctr", "calibration"), 1.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctr", "oracle_auc"), 1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctr", "regret"), 1 - 14.5 / 16, 1e-15);
    CU_ASSERT(json_get(text, "ctr", "logloss") > 0.3 && json_get(text, "ctr", "logloss") < 0.6);
    CU_ASSERT(json_get(text, "ctr", "oracle_logloss") > 0);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "cvr", "auc"), 0.625, 1e-15);
    CU_ASSERT_EQUAL(json_get(text, "cvr", "n"), 4);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctcvr", "auc"), 11.0 / 12, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctavr", "auc"), 9.5 / 12, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctavr", "oracle_auc"), 11.0 / 12, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "cvr_entire_space", "auc"), 11.0 / 16, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "cvr_entire_space", "oracle_auc"), 15.0 / 16, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "cvr_entire_space", "regret"), 0.25, 1e-15);
    free(text);
}

/* Three columns, no truth: no ctavr, no oracle, no entire-space CVR. */
static void test_no_truth_no_ctavr(void)
{
    errbuf_t eb;
    char *text = NULL, v[10][32];
    const char *pred = "pctr\tpcvr\tpctcvr\n"
                       "0.9\t0.4\t0.3\n0.6\t0.4\t0.2\n0.6\t0.05\t0.05\n0.8\t0.1\t0.2\n"
                       "0.2\t0.2\t0.01\n0.5\t0.3\t0.2\n0.1\t0.05\t0.01\n0.3\t0.5\t0.02\n";

    write_all(LOG8, pred, NULL);
    CU_ASSERT_EQUAL_FATAL(run(NULL, 1, &text, &eb), 0);
    CU_ASSERT_FATAL(json_valid(text));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"truth\":false"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"ctavr\":null"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"cvr_entire_space\":null"));
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctr", "auc"), 14.5 / 16, 1e-15);
    CU_ASSERT(isnan(json_get(text, "ctr", "oracle_auc")));
    CU_ASSERT(isnan(json_get(text, "ctr", "regret")));
    free(text);
    text = NULL;
    CU_ASSERT_EQUAL_FATAL(run(NULL, 0, &text, &eb), 0);
    CU_ASSERT_PTR_NULL(strstr(text, "oracle"));
    CU_ASSERT_EQUAL(table_row(text, "ctr", v), 7);
    CU_ASSERT_STRING_EQUAL(v[2], "0.906250");
    CU_ASSERT_EQUAL(table_row(text, "ctavr", v), 0);
    CU_ASSERT_EQUAL(table_row(text, "cvr_es", v), 0);
    free(text);
}

/* No clicks at all: every AUC is undefined, nothing crashes. */
static void test_single_class(void)
{
    errbuf_t eb;
    char *text = NULL, v[10][32];

    write_all("0\t0\t0\tuser_id:a\n0\t0\t0\tuser_id:b\n0\t0\t0\tuser_id:c\n",
              "pctr\tpcvr\tpctcvr\n0.1\t0.2\t0.02\n0.3\t0.2\t0.06\n0.2\t0.1\t0.02\n", NULL);
    CU_ASSERT_EQUAL_FATAL(run(NULL, 1, &text, &eb), 0);
    CU_ASSERT_FATAL(json_valid(text));
    CU_ASSERT(isnan(json_get(text, "ctr", "auc")));
    CU_ASSERT(isnan(json_get(text, "ctr", "calibration"))); /* rate 0 */
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctr", "rate"), 0, 0);
    CU_ASSERT_EQUAL(json_get(text, "cvr", "n"), 0);
    CU_ASSERT(isnan(json_get(text, "cvr", "auc")));
    CU_ASSERT(isnan(json_get(text, "cvr", "logloss")));
    free(text);
    text = NULL;
    CU_ASSERT_EQUAL_FATAL(run(NULL, 0, &text, &eb), 0);
    CU_ASSERT_EQUAL(table_row(text, "ctr", v), 7);
    CU_ASSERT_STRING_EQUAL(v[2], "n/a");
    CU_ASSERT_STRING_EQUAL(v[6], "n/a");
    free(text);
}

/* Columns found by name in any order, extra columns ignored, CRLF, no
 * final newline. */
static void test_header_order_crlf(void)
{
    worker_conf_t wc;
    char *logs[1] = {log_path};
    eval_data_t d;
    eval_result_t r;
    errbuf_t eb;
    const char *pred = "id\tpctcvr\tpcvr\tpctr\r\n"
                       "a\t0.3\t0.4\t0.9\r\nb\t0.2\t0.4\t0.6\r\nc\t0.05\t0.05\t0.6\r\n"
                       "d\t0.2\t0.1\t0.8\r\ne\t0.01\t0.2\t0.2\r\nf\t0.2\t0.3\t0.5\r\n"
                       "g\t0.01\t0.05\t0.1\r\nh\t0.02\t0.5\t0.3";

    write_all(LOG8, pred, NULL);
    make_conf(&wc);
    CU_ASSERT_EQUAL_FATAL(eval_load(&d, &wc, pred_path, logs, 1, NULL, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(eval_compute(&r, &d, &eb), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTR].model.auc, 14.5 / 16, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CVR].model.auc, 2.5 / 4, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r.task[EVAL_CTCVR].model.auc, 11.0 / 12, 1e-15);
    CU_ASSERT(!r.task[EVAL_CTAVR].present && !r.task[EVAL_CVR_ES].present && !r.has_truth);
    eval_data_release(&d);
    conf_release(&worker_conf_schema, &wc);
}

/* Rejected log lines are not in the predictions; with truth they are an error. */
static void test_rejected_lines(void)
{
    errbuf_t eb;
    char *text = NULL;
    char log[512];

    /* r3 broken: an action without a click */
    snprintf(log, sizeof(log), "%s", LOG8);
    memcpy(strstr(log, "0\t0\t0\tuser_id:c"), "0\t1\t0", 5);
    CU_ASSERT_EQUAL_FATAL(tu_write(log_path, log), 0);
    CU_ASSERT_EQUAL_FATAL(tu_write(pred_path, "pctr\tpcvr\tpctcvr\n"
                                              "0.9\t0.4\t0.3\n0.6\t0.4\t0.2\n"
                                              "0.8\t0.1\t0.2\n0.2\t0.2\t0.01\n0.5\t0.3\t0.2\n"
                                              "0.1\t0.05\t0.01\n0.3\t0.5\t0.02\n"),
                          0);
    CU_ASSERT_EQUAL_FATAL(tu_write(truth_path, TRUTH8), 0);
    CU_ASSERT_EQUAL_FATAL(run(NULL, 1, &text, &eb), 0);
    CU_ASSERT(json_valid(text));
    CU_ASSERT_EQUAL(json_get(text, NULL, "rows"), 7);
    CU_ASSERT_EQUAL(json_get(text, NULL, "rejected"), 1);
    /* without r3 (neg .6): ctr pos .9 .6 .8 .5 vs neg .2 .1 .3 -> 12/12 */
    CU_ASSERT_DOUBLE_EQUAL(json_get(text, "ctr", "auc"), 1.0, 1e-15);
    free(text);
    text = NULL;
    CU_ASSERT_EQUAL(run(truth_path, 1, &text, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, truth_path));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "1 log lines were rejected"));
    CU_ASSERT(text == NULL || text[0] == '\0');
    free(text);
}

/* eb.msg contains each of the n strings. */
static int says(const errbuf_t *eb, int n, ...)
{
    va_list ap;
    int ok = 1;

    va_start(ap, n);
    for (int i = 0; i < n; i++)
        ok &= strstr(eb->msg, va_arg(ap, const char *)) != NULL;
    va_end(ap);
    if (!ok)
        fprintf(stderr, "\n  unexpected message: %s\n", eb->msg);
    return ok;
}

/* Cut the last line of a text that ends in '\n'. */
static void drop_last_line(char *text)
{
    text[strlen(text) - 1] = '\0';
    *(strrchr(text, '\n') + 1) = '\0';
}

static void test_count_mismatch(void)
{
    errbuf_t eb;
    char *text = NULL, pred[1024], buf[800];

    /* one row short, one row too many */
    snprintf(pred, sizeof(pred), "%s", PRED8);
    drop_last_line(pred);
    write_all(LOG8, pred, NULL);
    CU_ASSERT_EQUAL(run(NULL, 0, &text, &eb), ERR_MISMATCH);
    CU_ASSERT(says(&eb, 4, pred_path, log_path, "has 7 rows", "8 accepted lines"));
    free(text);
    text = NULL;
    snprintf(pred, sizeof(pred), "%s0.5\t0.5\t0.5\t0.5\n0.5\t0.5\t0.5\t0.5\n", PRED8);
    write_all(LOG8, pred, NULL);
    CU_ASSERT_EQUAL(run(NULL, 0, &text, &eb), ERR_MISMATCH);
    CU_ASSERT(says(&eb, 3, pred_path, "has 10 rows", "8 accepted lines"));
    free(text);
    text = NULL;
    /* truth one row short */
    snprintf(buf, sizeof(buf), "%s", TRUTH8);
    drop_last_line(buf);
    write_all(LOG8, PRED8, buf);
    CU_ASSERT_EQUAL(run(truth_path, 0, &text, &eb), ERR_MISMATCH);
    CU_ASSERT(says(&eb, 4, truth_path, log_path, "has 7 rows", "8 lines"));
    free(text);
}

static void test_truth_label_mismatch(void)
{
    errbuf_t eb;
    char *text = NULL, buf[800], *l;

    /* row 5 (file line 6): the truth says clicked */
    snprintf(buf, sizeof(buf), "%s", TRUTH8);
    l = strstr(buf, "0\t0\t0\t0\t0.1\t");
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    l[0] = '1';
    write_all(LOG8, PRED8, buf);
    CU_ASSERT_EQUAL(run(truth_path, 0, &text, &eb), ERR_MISMATCH);
    char where[800];
    snprintf(where, sizeof(where), "%s:6:", truth_path);
    CU_ASSERT(says(&eb, 4, where, "row 5", "1/0/0", "0/0/0"));
    free(text);
}

static void expect_parse_error(const char *pred, const char *where_suffix, const char *what)
{
    errbuf_t eb;
    char *text = NULL, where[800];

    write_all(LOG8, pred, NULL);
    CU_ASSERT_EQUAL(run(NULL, 0, &text, &eb), ERR_PARSE);
    snprintf(where, sizeof(where), "%s%s", pred_path, where_suffix);
    CU_ASSERT(says(&eb, 2, where, what));
    CU_ASSERT(text == NULL || text[0] == '\0');
    free(text);
}

static void test_malformed(void)
{
    char buf[1024];

    expect_parse_error("pctr\tpctcvr\n0.1\t0.2\n", ":1:", "no column 'pcvr'");
    expect_parse_error("", ":", "empty file");
    expect_parse_error("pctr\tpcvr\tpctr\tpctcvr\n", ":1:", "'pctr' appears twice");
    /* line 4: a word where a probability goes */
    snprintf(buf, sizeof(buf), "%s", PRED8);
    memcpy(strstr(buf, "0.6\t0.05"), "abc", 3);
    expect_parse_error(buf, ":4:", "column 'pctr': 'abc'");
    /* out of range, NaN, trailing garbage, empty field */
    snprintf(buf, sizeof(buf), "%s", PRED8);
    memcpy(strstr(buf, "0.8\t0.1"), "1.8", 3);
    expect_parse_error(buf, ":5:", "not a probability");
    snprintf(buf, sizeof(buf), "%s", PRED8);
    memcpy(strstr(buf, "0.8\t0.1"), "nan", 3);
    expect_parse_error(buf, ":5:", "'nan'");
    snprintf(buf, sizeof(buf), "%s", PRED8);
    memcpy(strstr(buf, "0.8\t0.1"), "0.8x", 4);
    expect_parse_error(buf, ":5:", "column 'pctr': '0.8x0.1'");
    expect_parse_error("pctr\tpcvr\tpctcvr\n0.1\t\t0.3\n", ":2:", "column 'pcvr': ''");
    /* missing and extra columns */
    expect_parse_error("pctr\tpcvr\tpctcvr\n0.1\t0.2\t0.3\n0.1\t0.2\n",
                       ":3:", "2 columns, the header has 3");
    expect_parse_error("pctr\tpcvr\tpctcvr\n0.1\t0.2\t0.3\t0.4\n",
                       ":2:", "4 columns, the header has 3");
    /* a truth label that is not 0/1 */
    {
        errbuf_t eb;
        char *text = NULL, t[800], where[800];
        snprintf(t, sizeof(t), "%s", TRUTH8);
        t[strlen("click\taction\tbuy\tbuy_cf\tpctr\tpcvr\tpctcvr\tpctavr\n") + 6] = '2';
        write_all(LOG8, PRED8, t);
        CU_ASSERT_EQUAL(run(truth_path, 0, &text, &eb), ERR_PARSE);
        snprintf(where, sizeof(where), "%s:2:", truth_path);
        CU_ASSERT(says(&eb, 2, where, "column 'buy_cf': '2' is not 0 or 1"));
        free(text);
    }
}

static void test_missing_files(void)
{
    errbuf_t eb;
    char *text = NULL, none[800];

    write_all(LOG8, PRED8, NULL);
    snprintf(none, sizeof(none), "%s/none.truth.tsv", dir);
    CU_ASSERT_EQUAL(run(none, 0, &text, &eb), ERR_IO);
    CU_ASSERT(says(&eb, 1, none));
    free(text);
    text = NULL;
    remove(pred_path);
    CU_ASSERT_EQUAL(run(NULL, 0, &text, &eb), ERR_IO);
    CU_ASSERT(says(&eb, 1, pred_path));
    free(text);
    text = NULL;
    remove(log_path);
    CU_ASSERT_EQUAL(run(NULL, 0, &text, &eb), ERR_IO);
    CU_ASSERT(says(&eb, 1, log_path));
    free(text);
}

/* More rows than one 4 MiB read block: every row must land in its place. */
static void test_large_files(void)
{
    worker_conf_t wc;
    char *logs[1] = {log_path};
    const size_t n = 400000;
    float *p = malloc(n * sizeof(*p));
    uint8_t *y = malloc(n);
    uint64_t seed = 99;
    eval_data_t d;
    eval_result_t r;
    metrics_ws_t ws;
    errbuf_t eb;
    double want;
    FILE *fl = fopen(log_path, "w"), *fp = fopen(pred_path, "w");
    const char *fmts[6] = {"%.5g", "%.7g", "%.9g", "%.3e", "%.8f", "%.12f"};

    CU_ASSERT_FATAL(fl && fp && p && y);
    fprintf(fp, "pctr\tpcvr\tpctcvr\n");
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        y[i] = (seed >> 60) < 3;
        double x = (double)((seed >> 20) % 100000) / 100000.0 * (y[i] ? 1.2 : 1.0);
        char s[32];
        /* the parser's fast path and its strtof fallback must agree with strtof */
        x = (x > 1 ? 1.0 : x) * pow(10, -(double)(i % 7));
        snprintf(s, sizeof(s), fmts[i % 6], x);
        p[i] = strtof(s, NULL);
        fprintf(fl, "%d\t0\t0\tuser_id:u%zu\n", y[i], i % 1000);
        fprintf(fp, "%s\t0.5\t0.1\n", s);
    }
    fclose(fl);
    fclose(fp);
    metrics_ws_init(&ws);
    CU_ASSERT_EQUAL_FATAL(metrics_auc(&want, p, y, NULL, n, &ws), 0);
    metrics_ws_release(&ws);
    make_conf(&wc);
    CU_ASSERT_EQUAL_FATAL(eval_load(&d, &wc, pred_path, logs, 1, NULL, &eb), 0);
    CU_ASSERT_EQUAL(d.n, n);
    CU_ASSERT(memcmp(d.pred[EVAL_P_CTR], p, n * sizeof(*p)) == 0);
    CU_ASSERT(memcmp(d.label[EVAL_L_CLICK], y, n) == 0);
    CU_ASSERT_EQUAL_FATAL(eval_compute(&r, &d, &eb), 0);
    CU_ASSERT_EQUAL(r.task[EVAL_CTR].model.auc, want);
    CU_ASSERT(want > 0.5 && want < 0.7);
    eval_data_release(&d);
    free(p);
    free(y);
    conf_release(&worker_conf_schema, &wc);
}

int test_eval_register(void)
{
    CU_pSuite s = CU_add_suite("eval", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "AUCs, oracle, regret, counts by hand", test_compute_by_hand);
    CU_add_test(s, "table", test_table);
    CU_add_test(s, "JSON is valid and carries the values", test_json);
    CU_add_test(s, "no truth, no pctavr", test_no_truth_no_ctavr);
    CU_add_test(s, "single class: AUC n/a", test_single_class);
    CU_add_test(s, "columns by name, CRLF, no final newline", test_header_order_crlf);
    CU_add_test(s, "rejected log lines", test_rejected_lines);
    CU_add_test(s, "row count mismatches", test_count_mismatch);
    CU_add_test(s, "truth labels differ from the log", test_truth_label_mismatch);
    CU_add_test(s, "malformed prediction and truth files", test_malformed);
    CU_add_test(s, "missing files", test_missing_files);
    CU_add_test(s, "files larger than a read block", test_large_files);
    return CU_get_error();
}
