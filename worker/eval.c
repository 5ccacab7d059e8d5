/*
 * eval.c - the eval command: labels from the log, columns from the
 * prediction and truth files, one metrics summary per task, a table or a
 * JSON object. See eval.h for the row alignment and the task table.
 */
#include "worker/eval.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/json.h"
#include "common/log.h"
#include "common/model_conf.h"
#include "common/parse.h"
#include "data/reader.h"

#define EVAL_BATCH 8192                  /* log rows per reader batch */
#define EVAL_BUF_INIT (4u << 20)         /* bytes of the first file block */
#define EVAL_LINE_MAX ((size_t)64 << 20) /* bytes; a longer line is an error */

typedef struct task_def {
    const char *name;
    int prob;  /* EVAL_P_* scored */
    int label; /* EVAL_L_* */
    int mask;  /* EVAL_L_* selecting the rows, -1: all rows */
} task_def_t;

/*
 * The ctavr label is click & action; the reader rejects action without
 * click, so on accepted rows it is the action column itself.
 */
static const task_def_t tasks[EVAL_NTASKS] = {
    [EVAL_CTR] = {"ctr", EVAL_P_CTR, EVAL_L_CLICK, -1},
    [EVAL_CVR] = {"cvr", EVAL_P_CVR, EVAL_L_BUY, EVAL_L_CLICK},
    [EVAL_CTCVR] = {"ctcvr", EVAL_P_CTCVR, EVAL_L_BUY, -1},
    [EVAL_CTAVR] = {"ctavr", EVAL_P_CTAVR, EVAL_L_ACTION, -1},
    [EVAL_CVR_ES] = {"cvr_es", EVAL_P_CVR, EVAL_L_BUY_CF, -1},
};

static const char *const prob_names[EVAL_NPROBS] = {"pctr", "pcvr", "pctcvr", "pctavr"};
static const char *const label_names[EVAL_NLABELS] = {"click", "action", "buy", "buy_cf"};

/* ---- lines of a text file, read in large blocks ------------------------ */

typedef struct lines {
    FILE *f;
    const char *path;
    char *buf;
    size_t cap;    /* bytes allocated */
    size_t beg;    /* first unread byte */
    size_t end;    /* end of the bytes read; end < cap (room for a NUL) */
    uint64_t line; /* number of the line last returned, from 1 */
    int eof;
} lines_t;

static int lines_open(lines_t *ls, const char *path, errbuf_t *eb)
{
    memset(ls, 0, sizeof(*ls));
    ls->path = path;
    ls->f = fopen(path, "rb");
    if (!ls->f)
        return errbuf_set(eb, ERR_IO, "open %s: %s", path, strerror(errno));
    ls->cap = EVAL_BUF_INIT;
    ls->buf = malloc(ls->cap);
    if (!ls->buf)
        return errbuf_set(eb, ERR_NOMEM, "%s: out of memory for the read buffer", path);
    return 0;
}

static void lines_close(lines_t *ls)
{
    if (ls->f)
        fclose(ls->f);
    free(ls->buf);
    memset(ls, 0, sizeof(*ls));
}

/* Move the unread bytes to the front, grow if full, read another block. */
static int lines_fill(lines_t *ls, errbuf_t *eb)
{
    size_t got;

    if (ls->beg > 0) {
        memmove(ls->buf, ls->buf + ls->beg, ls->end - ls->beg);
        ls->end -= ls->beg;
        ls->beg = 0;
    }
    if (ls->end + 1 >= ls->cap) {
        char *b;
        if (ls->cap >= EVAL_LINE_MAX)
            return errbuf_set(eb, ERR_PARSE, "%s:%llu: line longer than %zu bytes", ls->path,
                              (unsigned long long)ls->line + 1, EVAL_LINE_MAX);
        b = realloc(ls->buf, ls->cap * 2);
        if (!b)
            return errbuf_set(eb, ERR_NOMEM, "%s: out of memory for a long line", ls->path);
        ls->buf = b;
        ls->cap *= 2;
    }
    got = fread(ls->buf + ls->end, 1, ls->cap - 1 - ls->end, ls->f);
    if (got == 0) {
        if (ferror(ls->f))
            return errbuf_set(eb, ERR_IO, "read %s: %s", ls->path, strerror(errno));
        ls->eof = 1;
    }
    ls->end += got;
    return 0;
}

/*
 * The next line, NUL-terminated in place without its "\n" or "\r\n"
 * (valid until the next call). Returns 1, 0 at the end of the file, or
 * ERR_IO / ERR_NOMEM / ERR_PARSE.
 */
static int lines_next(lines_t *ls, char **line, errbuf_t *eb)
{
    for (;;) {
        char *p = ls->buf + ls->beg, *e = memchr(p, '\n', ls->end - ls->beg);
        if (e || (ls->eof && ls->beg < ls->end)) {
            if (!e)
                e = ls->buf + ls->end; /* last line without '\n' */
            ls->beg = e < ls->buf + ls->end ? (size_t)(e - ls->buf) + 1 : ls->end;
            *e = '\0';
            if (e > p && e[-1] == '\r')
                e[-1] = '\0';
            ls->line++;
            *line = p;
            return 1;
        }
        if (ls->eof)
            return 0;
        int rc = lines_fill(ls, eb);
        if (rc != 0)
            return rc;
    }
}

/* ---- TAB-separated tables with a header -------------------------------- */

enum { COL_PROB, COL_LABEL };

typedef struct colspec {
    const char *name;
    int kind;        /* COL_PROB: float in [0, 1]; COL_LABEL: 0 or 1 */
    int required;    /* the header must name it */
    float **prob;    /* COL_PROB: where the n-row array goes (left NULL if absent) */
    uint8_t **label; /* COL_LABEL: same */
} colspec_t;

#define TABLE_MAX_FIELDS 256

typedef struct table {
    lines_t ls;
    colspec_t *cs;
    int ncs;
    int nfields;                 /* header fields */
    int field[TABLE_MAX_FIELDS]; /* header field -> colspec index, -1: ignored */
} table_t;

static int count_fields(const char *line)
{
    int k = 1;
    for (; *line; line++)
        k += *line == '\t';
    return k;
}

/* Map the header's fields to the wanted columns and allocate their arrays. */
static int table_header(table_t *t, char *line, size_t n, errbuf_t *eb)
{
    const char *path = t->ls.path;
    int seen[TABLE_MAX_FIELDS] = {0};
    char *p = line;

    t->nfields = 0;
    for (;;) {
        char *e = p + strcspn(p, "\t");
        int c = -1;
        if (t->nfields == TABLE_MAX_FIELDS)
            return errbuf_set(eb, ERR_PARSE, "%s:1: more than %d columns in the header", path,
                              TABLE_MAX_FIELDS);
        for (int i = 0; i < t->ncs; i++)
            if ((size_t)(e - p) == strlen(t->cs[i].name) && memcmp(p, t->cs[i].name, e - p) == 0)
                c = i;
        if (c >= 0 && seen[c]++)
            return errbuf_set(eb, ERR_PARSE, "%s:1: column '%s' appears twice in the header", path,
                              t->cs[c].name);
        t->field[t->nfields++] = c;
        if (*e == '\0')
            break;
        p = e + 1;
    }
    for (int i = 0; i < t->ncs; i++) {
        colspec_t *c = &t->cs[i];
        if (!seen[i]) {
            if (c->required)
                return errbuf_set(eb, ERR_PARSE, "%s:1: the header has no column '%s'", path,
                                  c->name);
            continue;
        }
        if (c->kind == COL_PROB)
            *c->prob = malloc((n ? n : 1) * sizeof(float));
        else
            *c->label = malloc(n ? n : 1);
        if (c->kind == COL_PROB ? !*c->prob : !*c->label)
            return errbuf_set(eb, ERR_NOMEM, "%s: out of memory for %zu rows", path, n);
    }
    return 0;
}

/* Parse field [p, e) of row r into column c. */
static int table_value(table_t *t, const colspec_t *c, char *p, char *e, size_t r, errbuf_t *eb)
{
    if (c->kind == COL_LABEL) {
        if (e - p != 1 || (*p != '0' && *p != '1'))
            goto bad;
        (*c->label)[r] = (uint8_t)(*p - '0');
        return 0;
    }
    float v;
    /* Decimals are what funnel writes; any other spelling strtof reads
     * (leading blanks, hex) has always been accepted, so it still is. */
    if (parse_float(p, (size_t)(e - p), &v) != 0) {
        char *end;
        v = e > p ? strtof(p, &end) : NAN;
        if (e == p || end != e)
            goto bad;
    }
    if (!(v >= 0.0f && v <= 1.0f))
        goto bad;
    (*c->prob)[r] = v;
    return 0;
bad:
    *e = '\0';
    return errbuf_set(eb, ERR_PARSE, "%s:%llu: column '%s': '%.40s' is not %s", t->ls.path,
                      (unsigned long long)t->ls.line, c->name, p,
                      c->kind == COL_LABEL ? "0 or 1" : "a probability in [0, 1]");
}

static int table_row(table_t *t, char *line, size_t r, errbuf_t *eb)
{
    char *p = line;

    for (int k = 0;; k++) {
        char *e = p;
        while (*e && *e != '\t')
            e++;
        if (k == t->nfields - 1 && *e != '\0')
            break; /* too many fields */
        int c = t->field[k];
        char next = *e;
        if (c >= 0 && table_value(t, &t->cs[c], p, e, r, eb) != 0)
            return ERR_PARSE;
        if (next == '\0')
            return k == t->nfields - 1 ? 0 : ERR_MISMATCH;
        p = e + 1;
    }
    return ERR_MISMATCH;
}

/*
 * Read the table at path: the header must name every required column of
 * cs; each wanted column gets an n-row array. Rows beyond n are counted
 * but not parsed; *rows receives the number of data rows.
 */
static int table_read(const char *path, colspec_t *cs, int ncs, size_t n, uint64_t *rows,
                      errbuf_t *eb)
{
    table_t t;
    char *line;
    uint64_t r = 0;
    int rc;

    memset(&t, 0, sizeof(t));
    t.cs = cs;
    t.ncs = ncs;
    rc = lines_open(&t.ls, path, eb);
    if (rc != 0)
        goto done;
    rc = lines_next(&t.ls, &line, eb);
    if (rc == 0)
        rc = errbuf_set(eb, ERR_PARSE, "%s: empty file, expected a header line", path);
    if (rc < 0)
        goto done;
    rc = table_header(&t, line, n, eb);
    if (rc != 0)
        goto done;
    while ((rc = lines_next(&t.ls, &line, eb)) == 1) {
        if (r < n && (rc = table_row(&t, line, (size_t)r, eb)) != 0) {
            if (rc == ERR_MISMATCH)
                rc = errbuf_set(eb, ERR_PARSE, "%s:%llu: %d columns, the header has %d", path,
                                (unsigned long long)t.ls.line, count_fields(line), t.nfields);
            goto done;
        }
        r++;
    }
    *rows = r;
done:
    lines_close(&t.ls);
    return rc;
}

/* ---- loading ----------------------------------------------------------- */

/* "log.tsv" or "log.tsv (+2 more files)" for messages. */
static const char *describe_logs(char *buf, size_t len, char *const *logs, int nlogs)
{
    if (nlogs > 1)
        snprintf(buf, len, "%s (+%d more files)", logs[0], nlogs - 1);
    else
        snprintf(buf, len, "%s", nlogs > 0 ? logs[0] : "(no log)");
    return buf;
}

static int grow_labels(eval_data_t *d, size_t *cap, size_t need)
{
    size_t c = *cap ? *cap : 65536;
    float *w;
    uint64_t *q;

    while (c < need)
        c *= 2;
    if (c == *cap)
        return 0;
    for (int l = EVAL_L_CLICK; l <= EVAL_L_BUY; l++) {
        uint8_t *a = realloc(d->label[l], c);
        if (!a)
            return ERR_NOMEM;
        d->label[l] = a;
    }
    w = realloc(d->weight, c * sizeof(*w));
    if (!w)
        return ERR_NOMEM;
    d->weight = w;
    q = realloc(d->req, c * sizeof(*q));
    if (!q)
        return ERR_NOMEM;
    d->req = q;
    *cap = c;
    return 0;
}

/*
 * The model description eval reads logs with: labels only. Which lines are
 * accepted does not depend on the slots (a line's columns, labels and
 * token syntax do), so one slot no token can name (slot names in logs are
 * never empty) gives the same rows as predict's reader without any slot
 * configuration, and every token counts as "undeclared" silently.
 */
static void labels_only_spec(model_spec_t *ms)
{
    memset(ms, 0, sizeof(*ms));
    ms->nslots = 1;
    ms->slot[0].dim = 1;
    ms->slot[0].admit_min = 1;
    ms->input_dim = 1;
}

/* What the reader saw, without token counts (eval declares no slots). */
static void log_labels_summary(const reader_stats_t *st)
{
    LOG_INFO("read %llu lines: %llu rows with labels, %llu rejected, %llu skipped",
             (unsigned long long)st->lines, (unsigned long long)st->accepted,
             (unsigned long long)st->rejected, (unsigned long long)st->skipped);
    if (st->join_rows || st->join_rejected)
        LOG_INFO("common features: %llu rows joined by md5, %llu lines rejected",
                 (unsigned long long)st->join_rows, (unsigned long long)st->join_rejected);
}

/* The click/action/buy labels of every accepted line of the logs. */
static int read_log_labels(eval_data_t *d, const worker_conf_t *wc, char *const *logs, int nlogs,
                           errbuf_t *eb)
{
    model_spec_t ms;
    reader_t *r = NULL;
    batch_t b;
    size_t cap = 0;
    int rc, batch_ok = 0;

    float lw[3];

    labels_only_spec(&ms);
    rc = worker_conf_label_weights(wc, lw, eb);
    if (rc != 0)
        return rc;
    reader_opts_t o;
    worker_conf_reader_opts(wc, 0, &o);
    rc = reader_open(&r, &ms, &o, logs, nlogs, eb);
    if (rc != 0)
        goto done;
    if (batch_init(&b, ms.nslots, EVAL_BATCH) != 0) {
        rc = errbuf_set(eb, ERR_NOMEM, "eval: out of memory for a batch");
        goto done;
    }
    batch_ok = 1;
    while ((rc = reader_next_batch(r, &b, EVAL_BATCH, eb)) == 0) {
        if (grow_labels(d, &cap, d->n + b.n) != 0) {
            rc = errbuf_set(eb, ERR_NOMEM, "eval: out of memory for %zu labels", d->n + b.n);
            goto done;
        }
        memcpy(d->label[EVAL_L_CLICK] + d->n, b.click, b.n);
        memcpy(d->label[EVAL_L_ACTION] + d->n, b.action, b.n);
        memcpy(d->label[EVAL_L_BUY] + d->n, b.buy, b.n);
        batch_row_weights(&b, lw, d->weight + d->n);
        memcpy(d->req + d->n, b.req, b.n * sizeof(*d->req));
        for (size_t i = 0; i < b.n; i++) {
            d->weighted |= d->weight[d->n + i] != 1.0f;
            d->has_req |= b.req[i] != 0;
        }
        d->n += b.n;
    }
    if (rc != ERR_EOF)
        goto done;
    rc = grow_labels(d, &cap, 1) == 0 ? 0 : errbuf_set(eb, ERR_NOMEM, "eval: out of memory");
    d->rejected = reader_stats(r)->rejected;
    log_labels_summary(reader_stats(r));
done:
    if (batch_ok)
        batch_release(&b);
    reader_destroy(&r);
    return rc;
}

static int read_predictions(eval_data_t *d, const char *path, const char *logdesc, errbuf_t *eb)
{
    colspec_t cs[EVAL_NPROBS];
    uint64_t rows = 0;
    int rc;

    for (int p = 0; p < EVAL_NPROBS; p++)
        cs[p] = (colspec_t){prob_names[p], COL_PROB, p != EVAL_P_CTAVR, &d->pred[p], NULL};
    rc = table_read(path, cs, EVAL_NPROBS, d->n, &rows, eb);
    if (rc == 0 && rows != d->n)
        rc = errbuf_set(eb, ERR_MISMATCH,
                        "prediction file %s has %llu rows but log %s has %llu accepted lines", path,
                        (unsigned long long)rows, logdesc, (unsigned long long)d->n);
    return rc;
}

/* The first row whose truth labels differ from the log's, or n. */
static size_t first_label_mismatch(const eval_data_t *d, uint8_t *const tl[3])
{
    for (size_t i = 0; i < d->n; i++)
        for (int l = EVAL_L_CLICK; l <= EVAL_L_BUY; l++)
            if (tl[l][i] != d->label[l][i])
                return i;
    return d->n;
}

static int read_truth(eval_data_t *d, const char *path, const char *logdesc, errbuf_t *eb)
{
    colspec_t cs[EVAL_NLABELS + EVAL_NPROBS];
    uint8_t *tl[EVAL_NLABELS] = {NULL};
    uint64_t rows = 0;
    size_t bad;
    int rc;

    if (d->rejected > 0)
        return errbuf_set(eb, ERR_MISMATCH,
                          "truth file %s cannot be aligned with log %s: %llu log lines were "
                          "rejected (the truth file has a row for every impression, the "
                          "predictions only for accepted lines)",
                          path, logdesc, (unsigned long long)d->rejected);
    for (int l = 0; l < EVAL_NLABELS; l++)
        cs[l] = (colspec_t){label_names[l], COL_LABEL, 1, NULL, &tl[l]};
    for (int p = 0; p < EVAL_NPROBS; p++)
        cs[EVAL_NLABELS + p] =
            (colspec_t){prob_names[p], COL_PROB, p != EVAL_P_CTAVR, &d->truth[p], NULL};
    rc = table_read(path, cs, EVAL_NLABELS + EVAL_NPROBS, d->n, &rows, eb);
    if (rc != 0)
        goto done;
    if (rows != d->n) {
        rc = errbuf_set(eb, ERR_MISMATCH, "truth file %s has %llu rows but log %s has %llu lines",
                        path, (unsigned long long)rows, logdesc, (unsigned long long)d->n);
        goto done;
    }
    bad = first_label_mismatch(d, tl);
    if (bad < d->n) {
        rc = errbuf_set(eb, ERR_MISMATCH,
                        "truth file %s:%llu: labels click/action/buy %d/%d/%d differ from row "
                        "%zu of log %s (%d/%d/%d): not the truth of this log",
                        path, (unsigned long long)bad + 2, tl[0][bad], tl[1][bad], tl[2][bad],
                        bad + 1, logdesc, d->label[0][bad], d->label[1][bad], d->label[2][bad]);
        goto done;
    }
    d->label[EVAL_L_BUY_CF] = tl[EVAL_L_BUY_CF];
    tl[EVAL_L_BUY_CF] = NULL;
done:
    for (int l = 0; l < EVAL_NLABELS; l++)
        free(tl[l]);
    return rc;
}

int eval_load(eval_data_t *d, const worker_conf_t *wc, const char *pred_path,
              char *const *log_paths, int nlogs, const char *truth_path, errbuf_t *eb)
{
    char logdesc[1200];
    int rc;

    memset(d, 0, sizeof(*d));
    describe_logs(logdesc, sizeof(logdesc), log_paths, nlogs);
    rc = read_log_labels(d, wc, log_paths, nlogs, eb);
    if (rc == 0)
        rc = read_predictions(d, pred_path, logdesc, eb);
    if (rc == 0 && truth_path)
        rc = read_truth(d, truth_path, logdesc, eb);
    return rc;
}

void eval_data_release(eval_data_t *d)
{
    for (int l = 0; l < EVAL_NLABELS; l++)
        free(d->label[l]);
    free(d->weight);
    free(d->req);
    for (int p = 0; p < EVAL_NPROBS; p++) {
        free(d->pred[p]);
        free(d->truth[p]);
    }
    memset(d, 0, sizeof(*d));
}

/* ---- computing --------------------------------------------------------- */

/* Weighted AUC and the per-request means of task td into et. */
static int task_extras(eval_task_t *et, const task_def_t *td, const eval_data_t *d,
                       metrics_ws_t *ws)
{
    const float *score = d->pred[td->prob];
    const uint8_t *y = d->label[td->label], *mask = td->mask >= 0 ? d->label[td->mask] : NULL;
    metrics_requests_t rq = {.auc = NAN, .ndcg = NAN};
    int rc = 0;

    et->auc_weighted = et->model.auc; /* every weight 1: the same AUC by definition */
    if (d->weighted)
        rc = metrics_auc_weighted(&et->auc_weighted, score, y, mask, d->weight, d->n, ws);
    if (rc == 0 && d->has_req && td->label != EVAL_L_BUY_CF)
        rc = metrics_per_request(&rq, score, y, mask, d->req, d->n, ws);
    et->requests = rq.requests;
    et->request_auc = rq.auc;
    et->request_ndcg = rq.ndcg;
    return rc;
}

int eval_compute(eval_result_t *res, const eval_data_t *d, errbuf_t *eb)
{
    metrics_ws_t ws;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    metrics_ws_init(&ws);
    res->rows = d->n;
    res->rejected = d->rejected;
    res->has_truth = d->truth[EVAL_P_CTR] != NULL;
    res->weighted = d->weighted;
    res->has_req = d->has_req;
    for (int t = 0; t < EVAL_NTASKS && rc == 0; t++) {
        const task_def_t *td = &tasks[t];
        eval_task_t *et = &res->task[t];
        const uint8_t *y = d->label[td->label];
        const uint8_t *m = td->mask >= 0 ? d->label[td->mask] : NULL;

        et->regret = NAN;
        if (!d->pred[td->prob] || !y)
            continue;
        et->present = 1;
        rc = metrics_summarize(&et->model, d->pred[td->prob], y, m, d->n, &ws);
        if (rc == 0)
            rc = task_extras(et, td, d, &ws);
        if (rc == 0 && d->truth[td->prob]) {
            et->has_oracle = 1;
            rc = metrics_summarize(&et->oracle, d->truth[td->prob], y, m, d->n, &ws);
            et->regret = et->oracle.auc - et->model.auc;
        }
    }
    metrics_ws_release(&ws);
    if (rc != 0)
        errbuf_set(eb, rc, "eval: %s scoring %zu rows", err_strerror(rc), d->n);
    return rc;
}

/* ---- printing ---------------------------------------------------------- */

static double calibration(const metrics_summary_t *s)
{
    return s->mean_pred / s->rate; /* not finite for a zero rate: printed as n/a / null */
}

static const char *fmt_num(char *buf, size_t len, double x, int prec)
{
    if (isfinite(x))
        snprintf(buf, len, "%.*f", prec, x);
    else
        snprintf(buf, len, "n/a");
    return buf;
}

static void print_table(FILE *out, const eval_result_t *res)
{
    char b[7][32];

    fprintf(out, "rows: %llu (log lines rejected: %llu)\n", (unsigned long long)res->rows,
            (unsigned long long)res->rejected);
    fprintf(out, "%-7s %10s %10s %9s %9s %10s %10s %7s", "task", "rows", "positives", "auc",
            "logloss", "mean_pred", "rate", "calib");
    if (res->has_truth)
        fprintf(out, " %10s %9s", "oracle_auc", "regret");
    fputc('\n', out);
    for (int t = 0; t < EVAL_NTASKS; t++) {
        const eval_task_t *et = &res->task[t];
        const metrics_summary_t *s = &et->model;
        if (!et->present)
            continue;
        fprintf(out, "%-7s %10llu %10llu %9s %9s %10s %10s %7s", tasks[t].name,
                (unsigned long long)s->n, (unsigned long long)s->pos, fmt_num(b[0], 32, s->auc, 6),
                fmt_num(b[1], 32, s->logloss, 6), fmt_num(b[2], 32, s->mean_pred, 6),
                fmt_num(b[3], 32, s->rate, 6), fmt_num(b[4], 32, calibration(s), 3));
        if (res->has_truth)
            fprintf(out, " %10s %9s", fmt_num(b[5], 32, et->oracle.auc, 6),
                    fmt_num(b[6], 32, et->regret, 6));
        fputc('\n', out);
    }
    fprintf(out, "cvr: pcvr vs buy on clicked rows; ctavr: pctavr vs click&action; "
                 "calib: mean_pred / rate\n");
    if (res->has_truth)
        fprintf(out, "cvr_es: pcvr vs buy_cf on all rows (entire space); oracle_auc: the truth "
                     "probabilities on the same rows; regret: oracle_auc - auc\n");
    if (!res->weighted && !res->has_req)
        return;
    fprintf(out, "\n%-7s %12s %12s %12s %12s\n", "task", "auc", "auc_weighted", "requests",
            "request_auc");
    for (int t = 0; t < EVAL_NTASKS; t++) {
        const eval_task_t *et = &res->task[t];
        if (!et->present)
            continue;
        fprintf(out, "%-7s %12s %12s %12llu %12s  ndcg %s\n", tasks[t].name,
                fmt_num(b[0], 32, et->model.auc, 6), fmt_num(b[1], 32, et->auc_weighted, 6),
                (unsigned long long)et->requests, fmt_num(b[2], 32, et->request_auc, 6),
                fmt_num(b[3], 32, et->request_ndcg, 6));
    }
    fprintf(out, "auc_weighted: rows weighted by @w x label_weights; request_auc / ndcg: mean "
                 "over the requests (@req) with both classes\n");
}

static void json_task(json_t *j, const eval_task_t *et)
{
    const metrics_summary_t *s = &et->model;

    if (!et->present) {
        json_null(j);
        return;
    }
    json_object_begin(j);
    json_kv_u64(j, "n", s->n);
    json_kv_u64(j, "positives", s->pos);
    json_kv_num(j, "auc", s->auc, 17);
    json_kv_num(j, "logloss", s->logloss, 17);
    json_kv_num(j, "mean_pred", s->mean_pred, 17);
    json_kv_num(j, "rate", s->rate, 17);
    json_kv_num(j, "calibration", calibration(s), 17);
    json_kv_num(j, "oracle_auc", et->has_oracle ? et->oracle.auc : NAN, 17);
    json_kv_num(j, "oracle_logloss", et->has_oracle ? et->oracle.logloss : NAN, 17);
    json_kv_num(j, "regret", et->regret, 17);
    json_kv_num(j, "auc_weighted", et->auc_weighted, 17);
    json_kv_u64(j, "requests", et->requests);
    json_kv_num(j, "request_auc", et->request_auc, 17);
    json_kv_num(j, "request_ndcg", et->request_ndcg, 17);
    json_object_end(j);
}

static void print_json(FILE *out, const eval_result_t *res)
{
    json_t j;

    json_init(&j, out);
    json_object_begin(&j);
    json_kv_u64(&j, "rows", res->rows);
    json_kv_u64(&j, "rejected", res->rejected);
    json_key(&j, "truth");
    json_bool(&j, res->has_truth);
    json_key(&j, "tasks");
    json_object_begin(&j);
    for (int t = EVAL_CTR; t <= EVAL_CTAVR; t++) {
        json_key(&j, tasks[t].name);
        json_task(&j, &res->task[t]);
    }
    json_object_end(&j);
    json_key(&j, "cvr_entire_space");
    json_task(&j, &res->task[EVAL_CVR_ES]);
    json_object_end(&j);
    json_end_line(&j);
}

int eval_print(FILE *out, const eval_result_t *res, int json)
{
    if (json)
        print_json(out, res);
    else
        print_table(out, res);
    return fflush(out) != 0 || ferror(out) ? ERR_IO : 0;
}

int eval_run(const worker_conf_t *wc, const char *pred_path, char *const *log_paths, int nlogs,
             const char *truth_path, int json, FILE *out, errbuf_t *eb)
{
    eval_data_t d;
    eval_result_t res;
    int rc;

    rc = eval_load(&d, wc, pred_path, log_paths, nlogs, truth_path, eb);
    if (rc == 0)
        rc = eval_compute(&res, &d, eb);
    if (rc == 0 && eval_print(out, &res, json) != 0)
        rc = errbuf_set(eb, ERR_IO, "eval: writing the report: %s", strerror(errno));
    eval_data_release(&d);
    return rc;
}
