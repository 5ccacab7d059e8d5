/*
 * serve_client.c - funnel-serve's client modes. See serve_client.h.
 */
#include "serve/serve_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/afile.h"
#include "common/log.h"
#include "proto/curve.h"
#include "proto/serve_codec.h"

typedef struct client {
    void *ctx, *sock;
    serve_codec_t *codec;
    uint64_t id;
    const serve_client_opts_t *o;
    zmq_msg_t reply; /* the last reply's bytes (decoded strings point here) */
    int have_reply;
} client_t;

static void client_close(client_t *c)
{
    if (c->have_reply)
        zmq_msg_close(&c->reply);
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    serve_codec_destroy(&c->codec);
}

static int client_open(client_t *c, const serve_client_opts_t *o, errbuf_t *eb)
{
    int zero = 0, t = o->timeout_ms > 0 ? o->timeout_ms : 60000;

    memset(c, 0, sizeof(*c));
    c->o = o;
    c->codec = serve_codec_new(0);
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_REQ) : NULL;
    if (!c->codec || !c->sock)
        return errbuf_set(eb, ERR_NOMEM, "zmq socket: %s", zmq_strerror(errno));
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(c->sock, ZMQ_RCVTIMEO, &t, sizeof(t));
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &t, sizeof(t));
    if ((o->server_key && *o->server_key) || (o->client_key && *o->client_key)) {
        curve_pair_t srv, me;
        int rc;
        if (!o->server_key || !*o->server_key || !o->client_key || !*o->client_key)
            return errbuf_set(eb, ERR_CONFIG,
                              "CURVE needs both --curve_server_key (the server's NAME.pub) and "
                              "--curve_secret_key (this client's NAME.key)");
        rc = curve_load_public(o->server_key, &srv, eb);
        if (rc == 0)
            rc = curve_load_pair(o->client_key, &me, eb);
        if (rc != 0)
            return rc;
        if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, srv.pub, strlen(srv.pub)) != 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, me.pub, strlen(me.pub)) != 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, me.sec, strlen(me.sec)) != 0)
            return errbuf_set(eb, ERR_CONFIG, "CURVE: %s", zmq_strerror(errno));
    }
    if (zmq_connect(c->sock, o->connect) != 0)
        return errbuf_set(eb, ERR_NET, "--connect %s: %s", o->connect, zmq_strerror(errno));
    return 0;
}

/* Send req, wait for its reply into rep. ERR_TIMEOUT, ERR_NET, ERR_PROTO,
 * or the server's status with its text. */
static int call(client_t *c, serve_req_t *req, serve_rep_t *rep, errbuf_t *eb)
{
    const void *data;
    size_t len;
    int rc;

    req->id = ++c->id;
    rc = serve_codec_encode_req(c->codec, req, &data, &len, eb);
    if (rc != 0)
        return rc;
    if (zmq_send(c->sock, data, len, 0) < 0)
        return errbuf_set(eb, errno == EAGAIN ? ERR_TIMEOUT : ERR_NET, "send to %s: %s",
                          c->o->connect, zmq_strerror(errno));
    if (c->have_reply)
        zmq_msg_close(&c->reply);
    zmq_msg_init(&c->reply);
    c->have_reply = 1;
    if (zmq_msg_recv(&c->reply, c->sock, 0) < 0)
        return errbuf_set(eb, errno == EAGAIN ? ERR_TIMEOUT : ERR_NET,
                          "no reply from %s in %d ms (is funnel-serve running there, with "
                          "these CURVE keys?)",
                          c->o->connect, c->o->timeout_ms > 0 ? c->o->timeout_ms : 60000);
    rc =
        serve_codec_decode_rep(c->codec, rep, zmq_msg_data(&c->reply), zmq_msg_size(&c->reply), eb);
    if (rc == 0 && (rep->id != req->id || rep->type != req->type))
        rc = errbuf_set(eb, ERR_PROTO, "reply %llu of type %d to request %llu of type %d",
                        (unsigned long long)rep->id, rep->type, (unsigned long long)req->id,
                        req->type);
    if (rc == 0 && rep->status != 0)
        rc = errbuf_set(eb, rep->status, "%s says: %.*s", c->o->connect, (int)rep->text.len,
                        rep->text.p);
    return rc;
}

int serve_client_apply(const serve_client_opts_t *o, const char *dir, FILE *out, errbuf_t *eb)
{
    client_t c;
    serve_req_t req = {.type = SERVE_APPLY, .path = {dir, strlen(dir)}};
    serve_rep_t rep;
    int rc = client_open(&c, o, eb);

    if (rc == 0)
        rc = call(&c, &req, &rep, eb);
    if (rc == 0)
        fprintf(out, "applied %.*s\n", (int)rep.text.len, rep.text.p);
    client_close(&c);
    return rc;
}

int serve_client_info(const serve_client_opts_t *o, FILE *out, errbuf_t *eb)
{
    client_t c;
    serve_req_t req = {.type = SERVE_INFO};
    serve_rep_t rep;
    int rc = client_open(&c, o, eb);

    if (rc == 0)
        rc = call(&c, &req, &rep, eb);
    if (rc == 0)
        fprintf(out, "day %d\nrows %llu\nmodel_type %.*s\nbundle %.*s\n", rep.day,
                (unsigned long long)rep.rows, (int)rep.model.len, rep.model.p, (int)rep.text.len,
                rep.text.p);
    client_close(&c);
    return rc;
}

/* A growable string. */
typedef struct str {
    char *p;
    size_t len, cap;
} str_t;

static int str_add(str_t *s, const char *p, size_t n)
{
    if (s->len + n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n + 2)
            cap *= 2;
        char *q = realloc(s->p, cap);
        if (!q)
            return ERR_NOMEM;
        s->p = q;
        s->cap = cap;
    }
    if (s->len)
        s->p[s->len++] = ' ';
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
    return 0;
}

/* The request being gathered: one user part, its candidates' lines. */
typedef struct pending {
    str_t user;
    str_t *cand;
    serve_str_t *view;
    int n, cap;
} pending_t;

/* 1 if slot name[0, len) is in the comma list. */
static int in_list(const char *list, const char *name, size_t len)
{
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && memcmp(p, name, len) == 0)
            return 1;
        p += l + (e ? 1 : 0);
    }
    return 0;
}

/* Split a feature column into user and candidate parts. */
static int split(const char *feat, size_t len, const char *user_slots, str_t *u, str_t *cnd)
{
    const char *p = feat, *end = feat + len;

    u->len = cnd->len = 0;
    if (u->p)
        u->p[0] = '\0';
    if (str_add(cnd, "", 0) != 0) /* allocated even when empty */
        return ERR_NOMEM;
    cnd->len = 0;
    while (p < end) {
        const char *q = memchr(p, ' ', (size_t)(end - p));
        const char *colon;
        size_t n;
        if (!q)
            q = end;
        n = (size_t)(q - p);
        colon = memchr(p, ':', n);
        if (str_add(colon && in_list(user_slots, p, (size_t)(colon - p)) ? u : cnd, p, n) != 0)
            return ERR_NOMEM;
        p = q + 1;
    }
    if (!u->p && str_add(u, "", 0) != 0)
        return ERR_NOMEM;
    return 0;
}

/* Labels and columns as predict's reader checks them: NULL if fine, else
 * the reason; *feat / *flen the feature column. */
static const char *check_line(const char *line, size_t len, const char **feat, size_t *flen)
{
    const char *tab[3], *p = line, *end = line + len;
    int n = 0;

    for (const char *q = p; (q = memchr(q, '\t', (size_t)(end - q))) != NULL; q++) {
        if (n == 3)
            return "wrong column count";
        tab[n++] = q;
    }
    if (n != 3)
        return "wrong column count";
    if (tab[0] - line != 1 || tab[1] - tab[0] != 2 || tab[2] - tab[1] != 2)
        return "label not 0/1";
    char c = line[0], a = tab[0][1], b = tab[1][1];
    if ((c != '0' && c != '1') || (a != '0' && a != '1') || (b != '0' && b != '1'))
        return "label not 0/1";
    if (c == '0' && (a == '1' || b == '1'))
        return "action or buy without click";
    *feat = tab[2] + 1;
    *flen = (size_t)(end - *feat);
    return NULL;
}

static void pending_free(pending_t *pd)
{
    free(pd->user.p);
    for (int i = 0; i < pd->cap; i++)
        free(pd->cand[i].p);
    free(pd->cand);
    free(pd->view);
}

/* Send the pending request and write its scores. */
static int flush(client_t *c, pending_t *pd, const serve_score_opts_t *o, FILE *f, long line,
                 errbuf_t *eb)
{
    serve_req_t req = {.type = SERVE_SCORE};
    serve_rep_t rep;
    int rc;

    if (pd->n == 0)
        return 0;
    for (int i = 0; i < pd->n; i++)
        pd->view[i] = (serve_str_t){pd->cand[i].p, pd->cand[i].len};
    req.user = (serve_str_t){pd->user.p, pd->user.len};
    req.ncand = (uint32_t)pd->n;
    req.cand = pd->view;
    rc = call(c, &req, &rep, eb);
    if (rc == 0 && rep.n != (uint32_t)pd->n)
        rc = errbuf_set(eb, ERR_PROTO, "%u scores for %d candidates", rep.n, pd->n);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "%s line %ld", o->in, line);
    for (uint32_t i = 0; i < rep.n; i++) {
        size_t k = (size_t)i * (size_t)rep.npred;
        if (o->day_column)
            fprintf(f, "%d\t", rep.day);
        if (rep.npred == 4)
            fprintf(f, "%.6g\t%.6g\t%.6g\t%.6g\n", serve_rep_pred(&rep, k),
                    serve_rep_pred(&rep, k + 1), serve_rep_pred(&rep, k + 2),
                    serve_rep_pred(&rep, k + 3));
        else
            fprintf(f, "%.6g\t%.6g\t%.6g\n", serve_rep_pred(&rep, k), serve_rep_pred(&rep, k + 1),
                    serve_rep_pred(&rep, k + 2));
    }
    pd->n = 0;
    return ferror(f) ? errbuf_set(eb, ERR_IO, "write %s: %s", o->out, strerror(errno)) : 0;
}

/* One pass over the log. */
static int score_pass(client_t *c, const serve_score_opts_t *o, int npred, FILE *f, uint64_t *nrej,
                      errbuf_t *eb)
{
    FILE *in = fopen(o->in, "r");
    pending_t pd = {0};
    str_t u = {0};
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    long ln = 0;
    int rc = 0, maxc = o->group ? (o->max_cands > 0 ? o->max_cands : 1000) : 1;

    if (!in)
        return errbuf_set(eb, ERR_IO, "--in %s: %s", o->in, strerror(errno));
    pd.cand = calloc((size_t)maxc + 1, sizeof(*pd.cand)); /* + the line that ends a group */
    pd.view = calloc((size_t)maxc, sizeof(*pd.view));
    pd.cap = maxc + 1;
    if (!pd.cand || !pd.view) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    if (o->day_column)
        fprintf(f, "day\t");
    fprintf(f, npred == 4 ? "pctr\tpcvr\tpctcvr\tpctavr\n" : "pctr\tpcvr\tpctcvr\n");
    while (rc == 0 && (n = getline(&line, &lcap, in)) >= 0) {
        const char *feat, *why;
        size_t flen;
        ln++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        if ((why = check_line(line, (size_t)n, &feat, &flen)) != NULL) {
            if ((*nrej)++ < 5)
                LOG_WARN("%s line %ld rejected: %s", o->in, ln, why);
            continue;
        }
        if (split(feat, flen, o->user_slots, &u, &pd.cand[pd.n]) != 0) {
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
            break;
        }
        if (pd.n > 0 && (pd.n == maxc || u.len != pd.user.len || memcmp(u.p, pd.user.p, u.len))) {
            /* this line (at index n) starts the next request: send 0..n-1 */
            int k = pd.n;
            rc = flush(c, &pd, o, f, ln - 1, eb);
            str_t t = pd.cand[0];
            pd.cand[0] = pd.cand[k];
            pd.cand[k] = t;
            pd.n = 0;
        }
        if (rc == 0) {
            str_t t = pd.user;
            pd.user = u;
            u = t;
            pd.n++;
        }
    }
    if (rc == 0)
        rc = flush(c, &pd, o, f, ln, eb);
out:
    free(line);
    free(u.p);
    pending_free(&pd);
    fclose(in);
    return rc;
}

int serve_client_score(const serve_client_opts_t *co, const serve_score_opts_t *o, errbuf_t *eb)
{
    client_t c;
    serve_req_t req = {.type = SERVE_INFO};
    serve_rep_t rep;
    afile_t af = {0};
    uint64_t nrej = 0;
    int rc = client_open(&c, co, eb), npred = 3;

    if (rc == 0)
        rc = call(&c, &req, &rep, eb); /* the model type says the columns */
    if (rc == 0)
        npred = rep.model.len == 4 && memcmp(rep.model.p, "esm2", 4) == 0 ? 4 : 3;
    if (rc == 0)
        rc = afile_open(&af, o->out, eb);
    for (int p = 0; rc == 0 && p < (o->repeat > 0 ? o->repeat : 1); p++)
        rc = score_pass(&c, o, npred, af.f, &nrej, eb);
    if (rc == 0)
        rc = afile_commit(&af, eb);
    afile_abort(&af);
    if (rc == 0 && nrej)
        LOG_WARN("%llu lines rejected (not scored), as predict rejects them",
                 (unsigned long long)nrej);
    client_close(&c);
    return rc;
}
