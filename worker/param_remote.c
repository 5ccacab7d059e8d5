/*
 * param_remote.c - param.h over parameter-server shards. See
 * param_remote.h.
 *
 * NOTES ON THE DESIGN
 *   Splitting a request: for slot s, key i goes to shard route_shard(key);
 *   it becomes entry j of that shard's key list for s, and back[s][shard]
 *   remembers i for every j, so the reply's rows (in request order) land
 *   at rows[s][i]. The per-shard key, gradient and index arrays are kept
 *   and reused across batches.
 *
 *   Dense weights: pull_start also asks every shard for its dense range;
 *   pull_finish waits only for the rows, and pull_dense() waits for the
 *   dense replies and decodes them straight into the model's weights (no
 *   copy kept here: 1.2 MB a batch for the default model). push_dense() sends each shard the
 *   gradient of its range. A fresh cluster's dense ranges are set by rank
 *   0 at start-up (PUSH_DENSE with MSG_F_ASSIGN) when a shard reports
 *   "dense_initialized" 0 in its STATS; other ranks wait until every
 *   shard reports 1. Opened read-only (no dense_init: prediction), the
 *   worker never assigns: a shard without dense weights (an untrained
 *   cluster) is an error at once, and nothing is written to any shard. A
 *   cluster with dense weights but no rows is a trained model whose keys
 *   are all unknown: it predicts (every key pools as zeros, as an unseen
 *   key does in any model).
 *
 *   Batch positions: batch_pos() gives the position after the batch whose
 *   pushes follow. Its row pushes carry it with last = 0, and push_dense()
 *   ends the batch on every shard with last = 1: the shard's PUSH_DENSE,
 *   or an empty PUSH for a shard without a dense range, so every shard
 *   learns of every batch, also of one that has no rows there.
 *   progress_get() asks every shard and resumes from the least advanced.
 */
#include "worker/param_remote.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/route.h"
#include "proto/codec.h"
#include "proto/half.h"
#include "proto/ps_client.h"

typedef struct shard_part {
    uint64_t *keys[MODEL_MAX_SLOTS]; /* keys of slot s routed here */
    uint32_t *back[MODEL_MAX_SLOTS]; /* their index in the request */
    float *grads[MODEL_MAX_SLOTS];   /* their gradients (push) */
    size_t n[MODEL_MAX_SLOTS];       /* keys in use */
    size_t cap[MODEL_MAX_SLOTS];     /* keys allocated */
    uint64_t pull_id;                /* outstanding PULL, 0: none */
    uint64_t dense_id;               /* outstanding PULL_DENSE, 0: none */
    uint64_t dense_off, dense_cnt;   /* this shard's dense range (floats) */
} shard_part_t;

typedef struct remote {
    param_t base;
    const model_spec_t *ms;
    ps_client_t *cli;
    int nshards;
    uint32_t rank;
    shard_part_t *part;  /* the outstanding pull's routing */
    shard_part_t *ppart; /* the push being sent (a pull may be in flight) */
    size_t dense_n;      /* floats */
    int dense_fresh;     /* the dense replies of the last (training) pull are due */
    int pulling;         /* a pull is outstanding */
    int mode;            /* of the outstanding pull */
    msg_pos_t bpos;      /* position of the batch being pushed; has = 0: none */
    int half;            /* wire_fp16: rows and dense weights pulled as fp16, gradients
                            pushed as bf16 */
    uint16_t *dense16;   /* wire_fp16: the dense gradient as bf16 (dense_n) */
} remote_t;

/* Install a PULL_DENSE_OK's values as this shard's range of the dense
 * weights w (widened from binary16 with wire_fp16). */
static void dense_take(float *w, const shard_part_t *sp, const msg_t *rep)
{
    if (rep->u.dense.flags & MSG_F_HALF)
        half_decode_fp16(w + sp->dense_off, rep->u.dense.values, sp->dense_cnt);
    else
        memcpy(w + sp->dense_off, rep->u.dense.values, sp->dense_cnt * sizeof(float));
}

/* Wait for the outstanding PULL_DENSE of every shard and install its values
 * in w (NULL: drop them). */
static int dense_collect(remote_t *r, float *w, errbuf_t *eb)
{
    msg_t rep;

    for (int h = 0; h < r->nshards; h++) {
        shard_part_t *sp = &r->part[h];
        if (!sp->dense_id)
            continue;
        uint64_t id = sp->dense_id;
        sp->dense_id = 0;
        int rc = ps_client_wait(r->cli, h, id, &rep, eb);
        if (rc != 0)
            return rc;
        if (rep.hdr.type != MSG_PULL_DENSE_OK || rep.u.dense.offset != sp->dense_off ||
            rep.u.dense.count != sp->dense_cnt)
            return errbuf_set(eb, ERR_PROTO, "shard %d: dense reply does not match", h);
        if (w)
            dense_take(w, sp, &rep);
    }
    return 0;
}

static int grow_part(shard_part_t *sp, int s, size_t need, size_t dim)
{
    if (need <= sp->cap[s])
        return 0;
    size_t cap = sp->cap[s] ? sp->cap[s] : 256;
    while (cap < need)
        cap *= 2;
    uint64_t *k = realloc(sp->keys[s], cap * sizeof(*k));
    if (!k)
        return ERR_NOMEM;
    sp->keys[s] = k;
    uint32_t *b = realloc(sp->back[s], cap * sizeof(*b));
    if (!b)
        return ERR_NOMEM;
    sp->back[s] = b;
    float *g = realloc(sp->grads[s], cap * dim * sizeof(*g));
    if (!g)
        return ERR_NOMEM;
    sp->grads[s] = g;
    sp->cap[s] = cap;
    return 0;
}

/* Route req's keys to shards (keys, back, n of every part). */
static int split(remote_t *r, shard_part_t *part, const param_req_t *req, errbuf_t *eb)
{
    for (int h = 0; h < r->nshards; h++)
        memset(part[h].n, 0, sizeof(part[h].n));
    for (int s = 0; s < req->nslots; s++) {
        size_t dim = (size_t)r->ms->slot[s].dim;
        for (size_t i = 0; i < req->n[s]; i++) {
            uint64_t k = req->keys[s][i];
            shard_part_t *sp = &part[route_shard(k, (uint32_t)r->nshards)];
            if (sp->n[s] == sp->cap[s] && grow_part(sp, s, sp->n[s] + 1, dim) != 0)
                return errbuf_set(eb, ERR_NOMEM, "out of memory routing keys");
            sp->keys[s][sp->n[s]] = k;
            sp->back[s][sp->n[s]] = (uint32_t)i;
            sp->n[s]++;
        }
    }
    return 0;
}

/* Fill a ROWS body with the slots of part sp that have keys. */
static void rows_body(msg_rows_t *rb, const remote_t *r, const shard_part_t *sp, int with_grads)
{
    rb->nslots = 0;
    for (int s = 0; s < r->ms->nslots; s++) {
        if (sp->n[s] == 0)
            continue;
        msg_slot_t *e = &rb->slot[rb->nslots++];
        memset(e, 0, sizeof(*e));
        e->slot = (uint32_t)s;
        e->nkeys = (uint32_t)sp->n[s];
        e->keys = sp->keys[s];
        if (with_grads) {
            e->dim = (uint32_t)r->ms->slot[s].dim;
            e->rows = sp->grads[s];
        }
    }
}

static int remote_pull_start(param_t *p, const param_req_t *req, int mode, errbuf_t *eb)
{
    remote_t *r = (remote_t *)p;
    msg_t m;
    int rc;

    /* dense weights of a training pull never taken with pull_dense */
    rc = dense_collect(r, NULL, eb);
    r->dense_fresh = 0;
    if (rc == 0)
        rc = split(r, r->part, req, eb);
    if (rc != 0)
        return rc;
    for (int h = 0; h < r->nshards; h++) {
        shard_part_t *sp = &r->part[h];
        sp->pull_id = 0;
        msg_init(&m, MSG_PULL, 0);
        rows_body(&m.u.rows, r, sp, 0);
        if (mode == PARAM_PULL_PREDICT)
            m.u.rows.flags |= MSG_F_READONLY;
        if (r->half)
            m.u.rows.flags |= MSG_F_HALF;
        if (m.u.rows.nslots > 0) {
            rc = ps_client_send(r->cli, h, &m, &sp->pull_id, eb);
            if (rc != 0)
                return rc;
        }
        if (sp->dense_cnt > 0 && mode == PARAM_PULL_TRAIN) {
            msg_init(&m, MSG_PULL_DENSE, 0);
            m.u.dense.offset = sp->dense_off;
            m.u.dense.count = sp->dense_cnt;
            m.u.dense.flags = r->half ? MSG_F_HALF : 0;
            rc = ps_client_send(r->cli, h, &m, &sp->dense_id, eb);
            if (rc != 0)
                return rc;
        }
    }
    r->pulling = 1;
    r->mode = mode;
    return 0;
}

static int remote_pull_finish(param_t *p, float *const *rows, errbuf_t *eb)
{
    remote_t *r = (remote_t *)p;
    msg_t rep;
    int rc;

    if (!r->pulling)
        return errbuf_set(eb, ERR_INVAL, "pull_finish without pull_start");
    r->pulling = 0;
    for (int h = 0; h < r->nshards; h++) {
        shard_part_t *sp = &r->part[h];
        if (sp->pull_id) {
            rc = ps_client_wait(r->cli, h, sp->pull_id, &rep, eb);
            if (rc != 0)
                return rc;
            if (rep.hdr.type != MSG_PULL_OK)
                return errbuf_set(eb, ERR_PROTO, "shard %d: PULL answered with %s", h,
                                  msg_type_name(rep.hdr.type));
            for (uint32_t e = 0; e < rep.u.rows.nslots; e++) {
                const msg_slot_t *ms = &rep.u.rows.slot[e];
                uint32_t s = ms->slot;
                size_t dim;
                if (s >= (uint32_t)r->ms->nslots || ms->nkeys != sp->n[s] ||
                    ms->dim != (uint32_t)r->ms->slot[s].dim)
                    return errbuf_set(eb, ERR_PROTO,
                                      "shard %d: PULL reply does not match the request (slot %u)",
                                      h, s);
                dim = ms->dim;
                if ((rep.u.rows.flags & MSG_F_HALF) != (r->half ? MSG_F_HALF : 0u))
                    return errbuf_set(eb, ERR_PROTO,
                                      "shard %d: PULL reply's rows are not of the width asked "
                                      "(wire_fp16)",
                                      h);
                for (uint32_t j = 0; j < ms->nkeys && r->half; j++)
                    half_decode_fp16(rows[s] + (size_t)sp->back[s][j] * dim,
                                     (const unsigned char *)ms->rows + (size_t)j * dim * 2, dim);
                for (uint32_t j = 0; j < ms->nkeys && !r->half; j++)
                    msg_row_get(rows[s] + (size_t)sp->back[s][j] * dim, ms->rows, j, dim);
            }
            sp->pull_id = 0;
        }
    }
    r->dense_fresh = r->mode == PARAM_PULL_TRAIN; /* pull_dense() waits for them */
    return 0;
}

static int remote_push(param_t *p, const param_req_t *req, const float *const *grads, errbuf_t *eb)
{
    remote_t *r = (remote_t *)p;
    msg_t m;
    uint64_t id;
    int rc = split(r, r->ppart, req, eb);

    if (rc != 0)
        return rc;
    for (int h = 0; h < r->nshards; h++) {
        shard_part_t *sp = &r->ppart[h];
        for (int s = 0; s < req->nslots; s++) {
            size_t dim = (size_t)r->ms->slot[s].dim;
            /* wire_fp16: bf16 gradients, packed at the front of the buffer */
            for (size_t j = 0; j < sp->n[s] && r->half; j++)
                half_encode_bf16((unsigned char *)sp->grads[s] + j * dim * 2,
                                 grads[s] + (size_t)sp->back[s][j] * dim, dim);
            for (size_t j = 0; j < sp->n[s] && !r->half; j++)
                memcpy(sp->grads[s] + j * dim, grads[s] + (size_t)sp->back[s][j] * dim,
                       dim * sizeof(float));
        }
        msg_init(&m, MSG_PUSH, 0);
        rows_body(&m.u.rows, r, sp, 1);
        if (r->half)
            m.u.rows.flags |= MSG_F_HALF;
        if (m.u.rows.nslots == 0)
            continue;
        m.u.rows.pos = r->bpos;
        m.u.rows.pos.last = 0;
        rc = ps_client_send(r->cli, h, &m, &id, eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int remote_pull_dense(param_t *p, float *w, size_t n, errbuf_t *eb)
{
    remote_t *r = (remote_t *)p;

    if (n != r->dense_n)
        return errbuf_set(eb, ERR_MISMATCH, "dense size %zu, cluster has %zu", n, r->dense_n);
    if (r->dense_fresh) { /* the replies of the last pull, straight into w */
        r->dense_fresh = 0;
        return dense_collect(r, w, eb);
    }
    {
        /* No pull has brought the weights yet: fetch them now. */
        msg_t m, rep;
        for (int h = 0; h < r->nshards; h++) {
            shard_part_t *sp = &r->part[h];
            if (sp->dense_cnt == 0)
                continue;
            msg_init(&m, MSG_PULL_DENSE, 0);
            m.u.dense.offset = sp->dense_off;
            m.u.dense.count = sp->dense_cnt;
            m.u.dense.flags = r->half ? MSG_F_HALF : 0;
            int rc = ps_client_call(r->cli, h, &m, &rep, eb);
            if (rc != 0)
                return rc;
            dense_take(w, sp, &rep);
        }
    }
    return 0;
}

static int send_dense(remote_t *r, const float *v, int assign, errbuf_t *eb)
{
    msg_t m;
    uint64_t id;
    int half = r->half && !assign; /* values to store always travel as float32 */

    if (half)
        half_encode_bf16(r->dense16, v, r->dense_n);
    for (int h = 0; h < r->nshards; h++) {
        shard_part_t *sp = &r->part[h];
        if (sp->dense_cnt == 0 && !r->bpos.has)
            continue;
        if (sp->dense_cnt == 0) { /* the batch still ends here */
            msg_init(&m, MSG_PUSH, 0);
            m.u.rows.pos = r->bpos;
        } else {
            msg_init(&m, MSG_PUSH_DENSE, 0);
            m.u.dense.flags = assign ? MSG_F_ASSIGN : 0;
            m.u.dense.offset = sp->dense_off;
            m.u.dense.count = sp->dense_cnt;
            m.u.dense.values = v + sp->dense_off;
            if (half) {
                m.u.dense.flags |= MSG_F_HALF;
                m.u.dense.values = r->dense16 + sp->dense_off;
            }
            m.u.dense.pos = r->bpos;
        }
        if (r->bpos.has) /* the batch's final push to this shard */
            (sp->dense_cnt == 0 ? &m.u.rows.pos : &m.u.dense.pos)->last = 1;
        int rc = ps_client_send(r->cli, h, &m, &id, eb);
        if (rc != 0)
            return rc;
    }
    r->bpos.has = 0;
    return 0;
}

static int remote_push_dense(param_t *p, const float *g, size_t n, errbuf_t *eb)
{
    remote_t *r = (remote_t *)p;

    if (n != r->dense_n)
        return errbuf_set(eb, ERR_MISMATCH, "dense size %zu, cluster has %zu", n, r->dense_n);
    return send_dense(r, g, 0, eb);
}

static int remote_sync(param_t *p, errbuf_t *eb)
{
    return ps_client_drain(((remote_t *)p)->cli, eb);
}

/* Set this rank's position on every shard (replacing what its pushes
 * recorded there). */
static int remote_progress_set(param_t *p, const param_progress_t *pr, errbuf_t *eb)
{
    remote_t *r = (remote_t *)p;
    msg_t m, rep;

    for (int h = 0; h < r->nshards; h++) {
        msg_init(&m, MSG_PROGRESS_SET, 0);
        m.u.progress.rank = r->rank;
        m.u.progress.found = 1;
        m.u.progress.epoch = pr->epoch;
        m.u.progress.file = pr->file;
        m.u.progress.offset = pr->offset;
        m.u.progress.line = pr->line;
        m.u.progress.samples = pr->samples;
        int rc = ps_client_call(r->cli, h, &m, &rep, eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The least advanced of the shards' positions for this rank: every batch
 * before it is applied on every shard. A shard with none: start over. */
static int remote_progress_get(param_t *p, param_progress_t *pr, errbuf_t *eb)
{
    remote_t *r = (remote_t *)p;
    msg_t m, rep;
    int none = 0;

    for (int h = 0; h < r->nshards; h++) {
        msg_init(&m, MSG_PROGRESS_GET, 0);
        m.u.progress.rank = r->rank;
        int rc = ps_client_call(r->cli, h, &m, &rep, eb);
        if (rc != 0)
            return rc;
        const msg_progress_t *q = &rep.u.progress;
        if (!q->found) {
            none = 1;
            continue;
        }
        if (!pr->found || q->samples < pr->samples) {
            uint64_t ahead = pr->ahead;
            *pr = (param_progress_t){1, q->epoch, q->file, q->offset, q->line, q->samples, ahead};
        }
        if (q->samples > pr->ahead)
            pr->ahead = q->samples;
    }
    if (none && pr->found) {
        uint64_t ahead = pr->ahead;
        memset(pr, 0, sizeof(*pr));
        pr->ahead = ahead;
    }
    return 0;
}

static void remote_batch_pos(param_t *p, const param_progress_t *pr)
{
    remote_t *r = (remote_t *)p;

    r->bpos = (msg_pos_t){1, 0, pr->epoch, pr->file, pr->offset, pr->line, pr->samples};
}

/* One log line of the bytes this worker moved, per request type, for
 * scripts/bench-wire.sh to divide by the samples trained. */
static void log_wire(const remote_t *r)
{
    ps_client_wire_t w;

    if (!r->cli)
        return;
    ps_client_wire(r->cli, &w);
    LOG_INFO(
        "wire bytes (%s): pull %llu out %llu in (%llu requests), push %llu out %llu in "
        "(%llu), pull_dense %llu out %llu in (%llu), push_dense %llu out %llu in (%llu)",
        r->half ? "wire_fp16" : "fp32", (unsigned long long)w.bytes_out[MSG_PULL],
        (unsigned long long)w.bytes_in[MSG_PULL], (unsigned long long)w.sent[MSG_PULL],
        (unsigned long long)w.bytes_out[MSG_PUSH], (unsigned long long)w.bytes_in[MSG_PUSH],
        (unsigned long long)w.sent[MSG_PUSH], (unsigned long long)w.bytes_out[MSG_PULL_DENSE],
        (unsigned long long)w.bytes_in[MSG_PULL_DENSE], (unsigned long long)w.sent[MSG_PULL_DENSE],
        (unsigned long long)w.bytes_out[MSG_PUSH_DENSE],
        (unsigned long long)w.bytes_in[MSG_PUSH_DENSE], (unsigned long long)w.sent[MSG_PUSH_DENSE]);
}

static void remote_destroy(param_t *p)
{
    remote_t *r = (remote_t *)p;

    log_wire(r);
    shard_part_t *sets[2] = {r->part, r->ppart};
    for (int k = 0; k < 2; k++)
        for (int h = 0; sets[k] && h < r->nshards; h++)
            for (int s = 0; s < MODEL_MAX_SLOTS; s++) {
                free(sets[k][h].keys[s]);
                free(sets[k][h].back[s]);
                free(sets[k][h].grads[s]);
            }
    free(r->ppart);
    free(r->part);
    free(r->dense16);
    ps_client_destroy(&r->cli);
    free(r);
}

static const param_ops_t remote_ops = {
    remote_pull_start, remote_pull_finish, remote_push,         remote_pull_dense,
    remote_push_dense, remote_sync,        remote_progress_set, remote_progress_get,
    remote_destroy,    remote_batch_pos,
};

/* Value of counter `name` in shard h's STATS, or -1 if absent. */
static int64_t stat_of(remote_t *r, int h, const char *name, errbuf_t *eb, int *rc)
{
    msg_t m, rep;

    msg_init(&m, MSG_STATS, 0);
    m.u.cmd.text.ptr = name;
    m.u.cmd.text.len = (uint32_t)strlen(name);
    *rc = ps_client_call(r->cli, h, &m, &rep, eb);
    if (*rc != 0)
        return -1;
    for (uint32_t i = 0; i < rep.u.kv.n; i++) {
        const msg_kv_t *kv = &rep.u.kv.kv[i];
        if (!kv->is_str && kv->name.len == strlen(name) &&
            memcmp(kv->name.ptr, name, kv->name.len) == 0)
            return (int64_t)kv->u64;
    }
    return -1;
}

/* Make sure every shard's dense range holds weights (see the notes). */
static int dense_bootstrap(remote_t *r, const float *init, int deadline_s,
                           volatile sig_atomic_t *stop, errbuf_t *eb)
{
    int rc = 0;

    for (int h = 0; h < r->nshards; h++) {
        for (int tries = 0;; tries++) {
            int64_t v = stat_of(r, h, "dense_initialized", eb, &rc);
            if (rc != 0)
                return rc;
            if (v < 0)
                return errbuf_set(eb, ERR_PROTO, "shard %d (%s) does not report dense_initialized",
                                  h, ps_client_endpoint(r->cli, h));
            if (v > 0)
                break;
            if (!init) /* read-only (predict): never assign, never wait */
                return errbuf_set(eb, ERR_NOTFOUND,
                                  "shard %d (%s) holds no dense weights: the cluster was never "
                                  "trained, so there is nothing to predict with (prediction "
                                  "writes nothing to a cluster); train it first (`funnel-worker "
                                  "train --ps ...`) or predict with --model DIR",
                                  h, ps_client_endpoint(r->cli, h));
            if (r->rank == 0) {
                msg_t m, rep;
                shard_part_t *sp = &r->part[h];
                msg_init(&m, MSG_PUSH_DENSE, 0);
                m.u.dense.flags = MSG_F_ASSIGN;
                m.u.dense.offset = sp->dense_off;
                m.u.dense.count = sp->dense_cnt;
                m.u.dense.values = init + sp->dense_off;
                rc = ps_client_call(r->cli, h, &m, &rep, eb);
                if (rc != 0)
                    return rc;
                LOG_INFO("shard %d: dense range [%llu, +%llu) initialized", h,
                         (unsigned long long)sp->dense_off, (unsigned long long)sp->dense_cnt);
                break;
            }
            if (stop && *stop)
                return errbuf_set(eb, ERR_STOPPED, "interrupted");
            if (tries * 0.1 > deadline_s)
                return errbuf_set(eb, ERR_TIMEOUT,
                                  "shard %d (%s): rank 0 did not initialize the dense weights "
                                  "within %d s (is the rank-0 worker running?)",
                                  h, ps_client_endpoint(r->cli, h), deadline_s);
            if (tries % 50 == 0)
                LOG_INFO("waiting for rank 0 to initialize the dense weights of shard %d", h);
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

/* Admission and expiry are applied by the shard: a difference from this
 * worker's configuration is worth a warning (once per shard), not a
 * refusal (codec_hello_policy_diff()). */
static void warn_policy_diff(const msg_hello_t *mine, const msg_hello_t *shard, int h,
                             const char *ep)
{
    char diff[256];

    if (codec_hello_policy_diff(mine, shard, diff, sizeof(diff)))
        LOG_WARN("shard %d (%s) applies other admission or expiry than this worker's "
                 "configuration (%s: 'here' is this worker): the shard's values hold",
                 h, ep, diff);
}

int param_remote_open(param_t **out, const worker_conf_t *wc, const model_spec_t *ms,
                      const float *dense_init, size_t dense_n, volatile sig_atomic_t *stop,
                      errbuf_t *eb)
{
    char buf[CONF_STR_MAX];
    char *eps[PS_CLIENT_MAX_SHARDS];
    remote_t *r;
    int n, rc;

    *out = NULL;
    snprintf(buf, sizeof(buf), "%s", wc->ps.s);
    n = conf_split_list(buf, ',', eps, PS_CLIENT_MAX_SHARDS);
    if (n <= 0)
        return errbuf_set(eb, ERR_CONFIG, "key 'ps': no parameter server endpoints");
    r = calloc(1, sizeof(*r));
    if (!r)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    r->base.ops = &remote_ops;
    r->ms = ms;
    r->nshards = n;
    r->rank = (uint32_t)wc->rank;
    r->half = wc->wire_fp16 != 0;
    r->dense_n = dense_n;
    r->part = calloc((size_t)n, sizeof(*r->part));
    r->ppart = calloc((size_t)n, sizeof(*r->ppart));
    r->dense16 = r->half ? malloc((dense_n ? dense_n : 1) * sizeof(uint16_t)) : NULL;
    if (!r->part || !r->ppart || (r->half && !r->dense16)) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto fail;
    }
    ps_client_opts_t o = {
        .sender = (uint32_t)wc->rank,
        .timeout_ms = (int)wc->timeout_ms,
        .deadline_s = (int)wc->deadline_s,
        .max_inflight = (int)wc->max_inflight,
    };
    rc = ps_client_opts_keys(&o, wc->curve_server_key.s, wc->curve_secret_key.s, eb);
    if (rc == 0)
        rc = ps_client_open(&r->cli, eps, n, &o, eb);
    memset(&o.curve_self, 0, sizeof(o.curve_self));
    if (rc != 0)
        goto fail;
    ps_client_set_stop(r->cli, stop);
    for (int h = 0; h < n; h++) {
        msg_t m, rep;
        route_dense_range(dense_n, (uint32_t)n, (uint32_t)h, &r->part[h].dense_off,
                          &r->part[h].dense_cnt);
        char them[64 + CONF_STR_MAX];
        /* Learn the shard's layout first (a probe asserts nothing), so that
         * a difference is worded from this worker's side; then the real
         * handshake, which the shard checks too. */
        snprintf(them, sizeof(them), "shard %d at %s", h, eps[h]);
        msg_init(&m, MSG_HELLO, 0);
        m.u.hello.flags = MSG_F_PROBE;
        rc = ps_client_call(r->cli, h, &m, &rep, eb);
        msg_init(&m, MSG_HELLO, 0);
        codec_hello_from_spec(&m.u.hello, ms, (uint32_t)h, (uint32_t)n, dense_n, -1);
        if (rc == 0)
            rc = codec_hello_check(&m.u.hello, &rep.u.hello, "this worker", them, eb);
        if (rc == 0)
            rc = ps_client_call(r->cli, h, &m, &rep, eb);
        if (rc == 0)
            rc = codec_hello_check(&m.u.hello, &rep.u.hello, "this worker", them, eb);
        if (rc != 0) {
            if (!eb || !strstr(eb->msg, eps[h]))
                errbuf_prefix(eb, rc, "handshake with shard %d (%s)", h, eps[h]);
            else
                errbuf_prefix(eb, rc, "handshake");
            goto fail;
        }
        warn_policy_diff(&m.u.hello, &rep.u.hello, h, eps[h]);
    }
    /* A restarted worker (or a new day's) continues its push numbering
     * where the shard stands, so its pushes are not taken for retries. */
    for (int h = 0; h < n; h++) {
        char nm[32];
        snprintf(nm, sizeof(nm), "seq_%u", r->rank);
        int64_t last = stat_of(r, h, nm, eb, &rc);
        if (rc != 0)
            goto fail;
        if (last > 0)
            ps_client_set_seq(r->cli, h, (uint64_t)last);
    }
    rc = dense_bootstrap(r, dense_init, (int)wc->deadline_s, stop, eb);
    if (rc != 0)
        goto fail;
    LOG_INFO("connected to %d parameter server shard%s", n, n > 1 ? "s" : "");
    *out = &r->base;
    return 0;
fail:
    remote_destroy(&r->base);
    return rc;
}
