/*
 * serve_server.c - the funnel-serve loop. See serve_server.h.
 */
#include "serve/serve_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/log.h"
#include "proto/auth.h"
#include "proto/curve.h"
#include "proto/serve_codec.h"
#include "proto/zap.h"
#include "serve/serve_score.h"

#define EP_SCORE "inproc://funnel-serve-score"
#define EP_CTL "inproc://funnel-serve-ctl"
#define POLL_MS 200

typedef struct server {
    void *ctx;
    serve_layout_t lay;
    pthread_mutex_t mu;       /* guards cur and every state's refs */
    serve_state_t *cur;       /* the state new requests score on */
    pthread_mutex_t apply_mu; /* one apply at a time */
    auth_t *auth;             /* the allow list; NULL: no keys */
    zap_t *zap;               /* admits the allow list's keys */
    serve_codec_t *codec;     /* the main thread's, for refusals */
} server_t;

/* The current state, with a reference the caller drops with release(). */
static serve_state_t *acquire(server_t *s)
{
    pthread_mutex_lock(&s->mu);
    serve_state_t *st = s->cur;
    st->refs++;
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void release(server_t *s, serve_state_t *st)
{
    pthread_mutex_lock(&s->mu);
    int last = --st->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        serve_state_destroy(&st);
}

/* Make st current (it holds the one reference of being current). */
static void install(server_t *s, serve_state_t *st)
{
    pthread_mutex_lock(&s->mu);
    serve_state_t *old = s->cur;
    st->refs = 1;
    s->cur = st;
    pthread_mutex_unlock(&s->mu);
    if (old)
        release(s, old);
}

/* Build the state of bundle dir on the current one and install it. */
static int apply_bundle(server_t *s, const char *dir, char *msg, size_t len, errbuf_t *eb)
{
    serve_state_t *cur, *st = NULL;
    const char *how = "full";
    int rc;

    pthread_mutex_lock(&s->apply_mu);
    cur = s->cur ? acquire(s) : NULL;
    rc = serve_state_build(&st, &s->lay, cur, dir, &how, eb);
    if (rc == 0) {
        char was[32] = "";
        if (cur)
            snprintf(was, sizeof(was), ", was day %d", cur->day);
        snprintf(msg, len, "day %d from %.900s (%s%s): %llu rows", st->day, dir, how, was,
                 (unsigned long long)bundle_rows_count(st->rows));
        install(s, st);
    }
    if (cur)
        release(s, cur);
    pthread_mutex_unlock(&s->apply_mu);
    return rc;
}

/* A thread's reusable buffers. */
typedef struct worker {
    server_t *s;
    const char *ep;
    serve_codec_t *codec;
    serve_scorer_t *scorer;
    float *pred;
    size_t cap; /* floats */
    const char **cand;
    size_t *clen;
    size_t ccap;
    pthread_t tid;
    int started;
} worker_t;

static int grow(worker_t *w, size_t n)
{
    size_t np = n * SERVE_NPRED_MAX;
    if (np > w->cap) {
        float *p = realloc(w->pred, np * sizeof(float));
        if (!p)
            return ERR_NOMEM;
        w->pred = p;
        w->cap = np;
    }
    if (n > w->ccap) {
        const char **c = realloc(w->cand, n * sizeof(*c));
        if (!c)
            return ERR_NOMEM;
        w->cand = c;
        size_t *l = realloc(w->clen, n * sizeof(*l));
        if (!l)
            return ERR_NOMEM;
        w->clen = l;
        w->ccap = n;
    }
    return 0;
}

/* Answer one request into rep (text in buf). */
static void handle(worker_t *w, const void *data, size_t len, serve_rep_t *rep, char *buf,
                   size_t blen)
{
    serve_req_t req;
    errbuf_t eb = {{0}};
    serve_state_t *st;
    int rc = serve_codec_decode_req(w->codec, &req, data, len, &eb);

    memset(rep, 0, sizeof(*rep));
    rep->type = req.type ? req.type : SERVE_SCORE;
    rep->id = req.id;
    if (rc == 0 && req.type == SERVE_SCORE) {
        rc = grow(w, req.ncand);
        if (rc != 0)
            errbuf_set(&eb, rc, "out of memory");
        for (uint32_t i = 0; rc == 0 && i < req.ncand; i++) {
            w->cand[i] = req.cand[i].p;
            w->clen[i] = req.cand[i].len;
        }
        if (rc == 0) {
            st = acquire(w->s);
            rc = serve_scorer_score(w->scorer, st, req.user.p, req.user.len, w->cand, w->clen,
                                    req.ncand, w->pred, &eb);
            rep->day = st->day;
            release(w->s, st);
        }
        rep->npred = w->s->lay.npred;
        rep->n = req.ncand;
        rep->pred = w->pred;
    } else if (rc == 0 && req.type == SERVE_APPLY) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%.*s", (int)req.path.len, req.path.p);
        rc = apply_bundle(w->s, dir, buf, blen, &eb);
        if (rc == 0) {
            LOG_INFO("applied %s", buf);
            rep->text = (serve_str_t){buf, strlen(buf)};
            st = acquire(w->s);
            rep->day = st->day;
            release(w->s, st);
        } else {
            LOG_WARN("apply %s refused, still serving the previous day: %s", dir, eb.msg);
        }
    } else if (rc == 0) { /* INFO */
        st = acquire(w->s);
        rep->day = st->day;
        rep->rows = bundle_rows_count(st->rows);
        snprintf(buf, blen, "%.1000s", st->dir);
        release(w->s, st);
        rep->text = (serve_str_t){buf, strlen(buf)};
        const char *m = meta_model_name(w->s->lay.ms.type);
        rep->model = (serve_str_t){m, strlen(m)};
    }
    if (rc != 0) {
        rep->status = rc;
        snprintf(buf, blen, "%s", eb.msg);
        rep->text = (serve_str_t){buf, strlen(buf)};
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    void *sock = zmq_socket(w->s->ctx, ZMQ_REP);
    char buf[1024];

    if (!sock || zmq_connect(sock, w->ep) != 0) {
        LOG_ERROR("scoring thread: connect %s: %s", w->ep, zmq_strerror(errno));
        if (sock)
            zmq_close(sock);
        return NULL;
    }
    for (;;) {
        zmq_msg_t in;
        serve_rep_t rep;
        const void *out;
        size_t olen;
        errbuf_t eb = {{0}};

        zmq_msg_init(&in);
        if (zmq_msg_recv(&in, sock, 0) < 0) {
            zmq_msg_close(&in);
            if (errno == EINTR)
                continue;
            break; /* ETERM: stopping */
        }
        handle(w, zmq_msg_data(&in), zmq_msg_size(&in), &rep, buf, sizeof(buf));
        if (serve_codec_encode_rep(w->codec, &rep, &out, &olen, &eb) != 0) {
            rep.status = ERR_TOOBIG;
            rep.text = (serve_str_t){eb.msg, strlen(eb.msg)};
            serve_codec_encode_rep(w->codec, &rep, &out, &olen, &eb);
        }
        zmq_msg_close(&in);
        if (zmq_send(sock, out, olen, 0) < 0 && errno == ETERM)
            break;
    }
    zmq_close(sock);
    return NULL;
}

/* Answer request m (its routing parts before it) on sock with ERR_DENIED:
 * an APPLY from a key that is not an admin. Closes the parts. */
static void deny(server_t *s, void *sock, zmq_msg_t *part, int n, const auth_key_t *k)
{
    serve_req_t req;
    serve_rep_t rep;
    errbuf_t eb = {{0}};
    char text[256];
    const void *out;
    size_t olen;

    memset(&rep, 0, sizeof(rep));
    if (serve_codec_decode_req(s->codec, &req, zmq_msg_data(&part[n - 1]),
                               zmq_msg_size(&part[n - 1]), &eb) == 0)
        rep.id = req.id;
    rep.type = SERVE_APPLY;
    rep.status = ERR_DENIED;
    snprintf(text, sizeof(text),
             "key %s is a worker key: applying a bundle needs an admin key on the server's "
             "curve_allow list",
             k ? k->name : "?");
    rep.text = (serve_str_t){text, strlen(text)};
    LOG_WARN("apply refused: %s", text);
    for (int i = 0; i < n - 1; i++)
        if (zmq_msg_send(&part[i], sock, ZMQ_SNDMORE) < 0)
            zmq_msg_close(&part[i]);
    zmq_msg_close(&part[n - 1]);
    if (serve_codec_encode_rep(s->codec, &rep, &out, &olen, &eb) == 0)
        zmq_send(sock, out, olen, 0);
    else
        zmq_send(sock, "", 0, 0);
}

/* Forward one whole message (every part) from `from` to `to`, or to ctl
 * (when given) if its payload is a control request. A message of more
 * than 8 parts is no client's (REQ sends 3) and is dropped. With keys,
 * an APPLY must come from an admin key: others are answered here. */
static void forward(server_t *s, void *from, void *to, void *ctl)
{
    zmq_msg_t part[8];
    int n = 0, more = 1, drop = 0;

    while (more) {
        zmq_msg_t spill, *m = n < 8 ? &part[n] : &spill;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, from, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        if (n < 8) {
            n++;
        } else {
            drop = 1;
            zmq_msg_close(m);
        }
    }
    if (n > 0 && ctl && !drop) {
        int t = serve_codec_peek_type(zmq_msg_data(&part[n - 1]), zmq_msg_size(&part[n - 1]));
        if (t == SERVE_APPLY && s->auth) {
            const char *uid = zmq_msg_gets(&part[n - 1], "User-Id");
            const auth_key_t *k = uid ? auth_key_of(s->auth, uid) : NULL;
            if (!k || k->role != AUTH_ADMIN) {
                deny(s, from, part, n, k);
                return;
            }
        }
        if (t == SERVE_APPLY || t == SERVE_INFO)
            to = ctl;
    }
    for (int i = 0; i < n; i++)
        if (drop || zmq_msg_send(&part[i], to, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            zmq_msg_close(&part[i]);
}

/* Keys on the front socket: the allow list, its ZAP handler, the CURVE
 * server key pair at o->curve_secret_key (funnel-ps's way, proto/zap.h). */
static int set_curve(server_t *s, void *sock, const serve_opts_t *o, errbuf_t *eb)
{
    curve_pair_t kp;
    int rc;

    if (!curve_available())
        return errbuf_set(eb, ERR_CONFIG, "--curve_secret_key is set but this libzmq has no CURVE");
    if (!o->curve_allow || !*o->curve_allow)
        return errbuf_set(eb, ERR_CONFIG,
                          "--curve_secret_key needs --curve_allow FILE: the clients' public keys "
                          "('worker KEY NAME *' may score, 'admin KEY NAME' may also apply "
                          "bundles; funnel-ps keygen makes key pairs)");
    rc = curve_load_pair(o->curve_secret_key, &kp, eb);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "--curve_secret_key %s", o->curve_secret_key);
    if ((rc = auth_load(&s->auth, o->curve_allow, eb)) != 0 ||
        (rc = zap_start(&s->zap, s->ctx, s->auth, eb)) != 0 ||
        (rc = zap_curve_server(sock, &kp, eb)) != 0) {
        memset(&kp, 0, sizeof(kp));
        return rc;
    }
    LOG_INFO("CURVE on: server key %s, %zu client keys allowed", kp.pub, s->auth->n);
    memset(&kp, 0, sizeof(kp));
    return 0;
}

/* The shards' rule: an endpoint other machines reach needs keys, unless
 * --insecure (then a warning). */
static int check_listen(const serve_opts_t *o, errbuf_t *eb)
{
    if ((o->curve_secret_key && *o->curve_secret_key) || auth_endpoint_is_local(o->listen))
        return 0;
    if (!o->insecure)
        return errbuf_set(eb, ERR_CONFIG,
                          "--listen %s is reachable from other machines and funnel-serve has no "
                          "keys: anyone could score and apply bundles. Make keys with `funnel-ps "
                          "keygen --out DIR/serve` (and one per client), then give "
                          "--curve_secret_key DIR/serve.key --curve_allow FILE; or --insecure on "
                          "a network you trust",
                          o->listen);
    LOG_WARN("--insecure: %s is reachable from other machines without keys; anyone who reaches "
             "it may score and apply bundles",
             o->listen);
    return 0;
}

static void *new_socket(server_t *s, int type, errbuf_t *eb, int *rc)
{
    void *sock = zmq_socket(s->ctx, type);
    int zero = 0;

    if (!sock) {
        *rc = errbuf_set(eb, ERR_NET, "socket: %s", zmq_strerror(errno));
        return NULL;
    }
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    *rc = 0;
    return sock;
}

int serve_run(const serve_opts_t *o, errbuf_t *eb)
{
    server_t s = {0};
    worker_t w[SERVE_MAX_THREADS + 1] = {0};
    void *front = NULL, *back = NULL, *ctl = NULL;
    char msg[1024];
    int rc, nw = o->threads + 1; /* the last one is the control thread */

    pthread_mutex_init(&s.mu, NULL);
    pthread_mutex_init(&s.apply_mu, NULL);
    rc = serve_layout_load(&s.lay, o->bundle, eb);
    if (rc == 0)
        rc = apply_bundle(&s, o->bundle, msg, sizeof(msg), eb);
    if (rc == 0)
        LOG_INFO("loaded %s", msg);
    for (int i = 0; rc == 0 && i < o->napply; i++) {
        rc = apply_bundle(&s, o->apply[i], msg, sizeof(msg), eb);
        if (rc == 0)
            LOG_INFO("applied %s", msg);
    }
    if (rc == 0)
        rc = check_listen(o, eb);
    if (rc == 0 && !(s.codec = serve_codec_new(0)))
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
    if (rc != 0)
        goto out;
    s.ctx = zmq_ctx_new();
    if (!s.ctx) {
        rc = errbuf_set(eb, ERR_NET, "zmq context: %s", zmq_strerror(errno));
        goto out;
    }
    front = new_socket(&s, ZMQ_ROUTER, eb, &rc);
    if (rc == 0)
        back = new_socket(&s, ZMQ_DEALER, eb, &rc);
    if (rc == 0)
        ctl = new_socket(&s, ZMQ_DEALER, eb, &rc);
    if (rc == 0 && o->curve_secret_key && *o->curve_secret_key)
        rc = set_curve(&s, front, o, eb);
    if (rc == 0 && zmq_bind(front, o->listen) != 0)
        rc = errbuf_set(eb, ERR_NET, "--listen %s: %s (another server on it? a typo?)", o->listen,
                        zmq_strerror(errno));
    if (rc == 0 && (zmq_bind(back, EP_SCORE) != 0 || zmq_bind(ctl, EP_CTL) != 0))
        rc = errbuf_set(eb, ERR_NET, "inproc bind: %s", zmq_strerror(errno));
    for (int i = 0; rc == 0 && i < nw; i++) {
        w[i].s = &s;
        w[i].ep = i < o->threads ? EP_SCORE : EP_CTL;
        w[i].codec = serve_codec_new(0);
        w[i].scorer = serve_scorer_new(&s.lay, eb);
        if (!w[i].codec || !w[i].scorer)
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        else if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
            rc = errbuf_set(eb, ERR_NOMEM, "cannot start a thread");
        else
            w[i].started = 1;
    }
    if (rc != 0)
        goto out;
    LOG_INFO("serving %s (day %d, %s) on %s with %d scoring thread%s", s.cur->dir, s.cur->day,
             meta_model_name(s.lay.ms.type), o->listen, o->threads, o->threads > 1 ? "s" : "");
    while (!*o->stop) {
        zmq_pollitem_t it[3] = {
            {front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}, {ctl, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 3, POLL_MS) < 0) {
            if (errno == EINTR)
                continue;
            rc = errbuf_set(eb, ERR_NET, "poll: %s", zmq_strerror(errno));
            break;
        }
        if (it[0].revents & ZMQ_POLLIN)
            forward(&s, front, back, ctl);
        if (it[1].revents & ZMQ_POLLIN)
            forward(&s, back, front, NULL);
        if (it[2].revents & ZMQ_POLLIN)
            forward(&s, ctl, front, NULL);
    }
    if (rc == 0)
        LOG_INFO("stopping");
out:
    if (s.ctx)
        zmq_ctx_shutdown(s.ctx); /* threads blocked in receive return ETERM */
    for (int i = 0; i < nw; i++) {
        if (w[i].started)
            pthread_join(w[i].tid, NULL);
        serve_codec_destroy(&w[i].codec);
        serve_scorer_destroy(&w[i].scorer);
        free(w[i].pred);
        free(w[i].cand);
        free(w[i].clen);
    }
    if (front)
        zmq_close(front);
    if (back)
        zmq_close(back);
    if (ctl)
        zmq_close(ctl);
    zap_stop(&s.zap); /* before the context ends: it owns a socket of it */
    if (s.ctx)
        zmq_ctx_term(s.ctx);
    auth_destroy(&s.auth);
    serve_codec_destroy(&s.codec);
    if (s.cur)
        release(&s, s.cur);
    pthread_mutex_destroy(&s.mu);
    pthread_mutex_destroy(&s.apply_mu);
    return rc;
}
