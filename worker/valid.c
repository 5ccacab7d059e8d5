/*
 * valid.c - held-out AUC and log-loss during training. See valid.h.
 */
#include "worker/valid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "data/reader.h"
#include "worker/eval.h"
#include "worker/pool.h"

#define VALID_MAX_LOGS 64

/* Names of eval's tasks in the records (EVAL_* order, cvr_es never
 * present: a held-out log has no truth file). */
static const char *const task_name[EVAL_NTASKS] = {"ctr", "cvr", "ctcvr", "ctavr", "cvr_es"};

struct valid {
    const worker_conf_t *wc;
    model_spec_t ms;
    char *list;                /* copy of wc->valid, cut at the commas */
    char *log[VALID_MAX_LOGS]; /* into list */
    int nlogs;
    size_t rows;    /* rows per batch */
    uint64_t every; /* samples between evaluations */
    uint64_t next;  /* samples at which the next one is due */
    int runs;       /* evaluations done */
    batch_t batch;
    pool_t pool;
    float *x;      /* (rows, D) pooled input */
    float *pred;   /* (rows, HEADS_NPRED) */
    eval_data_t d; /* labels and predictions of the held-out rows */
    size_t cap;    /* rows allocated in d's arrays */
};

int valid_wanted(const worker_conf_t *wc)
{
    return wc->valid.s[0] && (!wc->ps.s[0] || wc->rank == 0);
}

void valid_destroy(valid_t **vp)
{
    valid_t *v = vp ? *vp : NULL;

    if (!v)
        return;
    free(v->pred);
    free(v->x);
    pool_release(&v->pool);
    batch_release(&v->batch);
    eval_data_release(&v->d);
    free(v->list);
    free(v);
    *vp = NULL;
}

int valid_open(valid_t **out, const worker_conf_t *wc, const model_spec_t *ms, size_t batch_rows,
               errbuf_t *eb)
{
    valid_t *v = calloc(1, sizeof(*v));
    int rc = ERR_NOMEM;

    *out = NULL;
    if (!v || !(v->list = strdup(wc->valid.s)))
        goto fail;
    v->wc = wc;
    v->ms = *ms;
    v->rows = batch_rows;
    v->every = (uint64_t)wc->valid_every;
    v->next = v->every;
    for (char *save = NULL, *t = strtok_r(v->list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (v->nlogs == VALID_MAX_LOGS) {
            rc = errbuf_set(eb, ERR_INVAL,
                            "--valid: more than %d held-out logs; give fewer, or a glob",
                            VALID_MAX_LOGS);
            goto fail;
        }
        v->log[v->nlogs++] = t;
    }
    if (v->nlogs == 0) {
        rc = errbuf_set(eb, ERR_INVAL, "--valid '%s': expected LOG[,LOG...]", wc->valid.s);
        goto fail;
    }
    rc = reader_check_inputs(v->log, v->nlogs, eb);
    if (rc != 0) {
        errbuf_prefix(eb, rc, "--valid (held-out logs)");
        goto fail;
    }
    rc = ERR_NOMEM;
    if (batch_init(&v->batch, ms->nslots, batch_rows) != 0 || pool_init(&v->pool, ms) != 0)
        goto fail;
    v->x = malloc(batch_rows * (size_t)ms->input_dim * sizeof(float));
    v->pred = malloc(batch_rows * HEADS_NPRED * sizeof(float));
    if (!v->x || !v->pred)
        goto fail;
    *out = v;
    return 0;
fail:
    if (rc == ERR_NOMEM)
        errbuf_set(eb, rc, "out of memory preparing the held-out evaluation");
    valid_destroy(&v);
    return rc;
}

int valid_due(const valid_t *v, uint64_t samples)
{
    return v && samples >= v->next;
}

/* Room for `need` rows in every array of d that is used. */
static int grow(valid_t *v, size_t need, int with_ctavr)
{
    size_t cap = v->cap ? v->cap : 65536;

    if (need <= v->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    for (int l = 0; l < EVAL_L_BUY_CF; l++) {
        uint8_t *p = realloc(v->d.label[l], cap);
        if (!p)
            return ERR_NOMEM;
        v->d.label[l] = p;
    }
    for (int k = 0; k < EVAL_NPROBS; k++) {
        if (k == EVAL_P_CTAVR && !with_ctavr)
            continue;
        float *p = realloc(v->d.pred[k], cap * sizeof(float));
        if (!p)
            return ERR_NOMEM;
        v->d.pred[k] = p;
    }
    v->cap = cap;
    return 0;
}

/* Predict every held-out row into v->d. */
static int predict_rows(valid_t *v, model_t *m, param_t *param, errbuf_t *eb)
{
    int with_ctavr = heads_has_pred(model_heads(m), HEADS_PCTAVR);
    reader_t *r = NULL;
    reader_opts_t ro;
    batch_t *b = &v->batch;
    int rc;

    worker_conf_reader_opts(v->wc, 0, &ro);
    if (v->runs > 0)
        ro.report_rejects = 0; /* said at the first evaluation */
    rc = reader_open(&r, &v->ms, &ro, v->log, v->nlogs, eb);
    v->d.n = 0;
    while (rc == 0 && (rc = reader_next_batch(r, b, v->rows, eb)) == 0) {
        rc = grow(v, v->d.n + b->n, with_ctavr);
        if (rc != 0) {
            rc = errbuf_set(eb, rc, "out of memory holding the held-out predictions");
            break;
        }
        rc = pool_prepare(&v->pool, b);
        if (rc == 0)
            rc = param_pull_start(param, &v->pool.req, PARAM_PULL_PREDICT, eb);
        if (rc == 0)
            rc = param_pull_finish(param, v->pool.rows, eb);
        if (rc != 0)
            break;
        pool_forward(&v->pool, b, v->x);
        rc = model_predict(m, v->x, b->n, v->pred);
        if (rc != 0) {
            rc = errbuf_set(eb, rc, "held-out prediction failed");
            break;
        }
        size_t o = v->d.n;
        memcpy(v->d.label[EVAL_L_CLICK] + o, b->click, b->n);
        memcpy(v->d.label[EVAL_L_ACTION] + o, b->action, b->n);
        memcpy(v->d.label[EVAL_L_BUY] + o, b->buy, b->n);
        for (size_t i = 0; i < b->n; i++)
            for (int k = 0; k < EVAL_NPROBS; k++)
                if (v->d.pred[k])
                    v->d.pred[k][o + i] = v->pred[i * HEADS_NPRED + k];
        v->d.n += b->n;
    }
    if (rc == ERR_EOF)
        rc = 0;
    if (r)
        v->d.rejected = reader_stats(r)->rejected;
    reader_destroy(&r);
    if (rc != 0)
        errbuf_prefix(eb, rc, "--valid (held-out evaluation)");
    return rc;
}

static void write_record(const valid_t *v, const eval_result_t *res, progress_t *p)
{
    char key[64];
    json_t j;

    if (!progress_record_begin(p, &j, "valid"))
        return;
    json_kv_u64(&j, "valid_rows", res->rows);
    for (int t = 0; t < EVAL_NTASKS; t++) {
        if (!res->task[t].present)
            continue;
        snprintf(key, sizeof(key), "auc_%s", task_name[t]);
        json_kv_num(&j, key, res->task[t].model.auc, 9);
        snprintf(key, sizeof(key), "logloss_%s", task_name[t]);
        json_kv_num(&j, key, res->task[t].model.logloss, 9);
    }
    (void)v;
    progress_record_end(p, &j);
}

int valid_run(valid_t *v, model_t *m, param_t *param, progress_t *p, errbuf_t *eb)
{
    uint64_t samples = p->base + p->samples;
    eval_result_t res;
    double t0 = progress_now();
    int rc = predict_rows(v, m, param, eb);

    if (rc == 0)
        rc = eval_compute(&res, &v->d, eb);
    if (rc != 0)
        return rc;
    v->runs++;
    v->next = (samples / v->every + 1) * v->every;
    write_record(v, &res, p);
    LOG_INFO("held-out after %llu samples: %llu rows, AUC ctr %.4f cvr %.4f ctcvr %.4f, log-loss "
             "ctr %.4f (%.1f s)",
             (unsigned long long)samples, (unsigned long long)res.rows,
             res.task[EVAL_CTR].model.auc, res.task[EVAL_CVR].model.auc,
             res.task[EVAL_CTCVR].model.auc, res.task[EVAL_CTR].model.logloss, progress_now() - t0);
    return 0;
}
