/*
 * zap.c - the CURVE server socket options and the ZAP handler thread.
 * See zap.h.
 */
#include "proto/zap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES 8    /* a request has 7 frames for CURVE; more is refused */
#define ZAP_POLL_MS 100 /* how soon zap_stop() is noticed */

struct zap {
    void *sock; /* REP, owned by the thread once started */
    const auth_t *auth;
    pthread_t thread;
    atomic_int stop;
    atomic_uint_fast64_t admitted, refused;
    double last_warn;    /* s; handler thread only */
    uint64_t suppressed; /* warnings not logged since last_warn */
};

uint64_t zap_admitted(const zap_t *z)
{
    return z ? atomic_load(&((zap_t *)z)->admitted) : 0;
}

uint64_t zap_refused(const zap_t *z)
{
    return z ? atomic_load(&((zap_t *)z)->refused) : 0;
}

int zap_curve_server(void *sock, const curve_pair_t *pair, errbuf_t *eb)
{
    int one = 1;

    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, pair->sec, CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) != 0)
        return errbuf_set(eb, ERR_NET, "cannot make the shard socket a CURVE server: %s",
                          zmq_strerror(errno));
    return 0;
}

/* At most one warning a second; the rest are counted and told later. */
static void warn_refused(zap_t *z, const char *key, const char *addr, const char *why)
{
    double t = clock_now_s();

    if (t - z->last_warn < 1.0) {
        z->suppressed++;
        return;
    }
    if (z->suppressed)
        LOG_WARN("refused a connection from %s (key %s): %s (%llu similar refusals suppressed)",
                 addr, key, why, (unsigned long long)z->suppressed);
    else
        LOG_WARN("refused a connection from %s (key %s): %s", addr, key, why);
    z->last_warn = t;
    z->suppressed = 0;
}

static void send_str(void *sock, const char *s, int more)
{
    zmq_send(sock, s, strlen(s), more ? ZMQ_SNDMORE : 0);
}

/* Read one ZAP request (all its frames) and answer it. */
static void answer(zap_t *z)
{
    zmq_msg_t f[ZAP_FRAMES];
    int n = 0, more = 1;
    size_t ml = sizeof(more);
    char reqid[256] = "", addr[64] = "?", key[CURVE_Z85_LEN + 1] = "?", uid[32] = "";
    const char *status = "400", *text = "bad ZAP request";

    while (more) {
        zmq_msg_t extra, *m = n < ZAP_FRAMES ? &f[n] : &extra;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, z->sock, 0) < 0) {
            zmq_msg_close(m);
            break;
        }
        if (zmq_getsockopt(z->sock, ZMQ_RCVMORE, &more, &ml) != 0)
            more = 0;
        if (n < ZAP_FRAMES)
            n++;
        else
            zmq_msg_close(m);
    }
    /* frames: version, request id, domain, address, routing id,
     * mechanism, then the credentials (CURVE: the 32-byte public key) */
    if (n >= 2 && zmq_msg_size(&f[1]) < sizeof(reqid)) {
        memcpy(reqid, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]));
        reqid[zmq_msg_size(&f[1])] = '\0';
    }
    if (n >= 4 && zmq_msg_size(&f[3]) < sizeof(addr)) {
        memcpy(addr, zmq_msg_data(&f[3]), zmq_msg_size(&f[3]));
        addr[zmq_msg_size(&f[3])] = '\0';
    }
    if (n == 7 && zmq_msg_size(&f[0]) == 3 && memcmp(zmq_msg_data(&f[0]), "1.0", 3) == 0 &&
        zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&f[6]) == 32) {
        long i;
        curve_z85_encode(key, zmq_msg_data(&f[6]));
        i = auth_find(z->auth, key);
        if (i >= 0) {
            status = "200";
            text = "OK";
            snprintf(uid, sizeof(uid), "%ld", i);
            LOG_DEBUG("admitted %s key '%s' from %s",
                      z->auth->keys[i].role == AUTH_ADMIN ? "admin" : "worker",
                      z->auth->keys[i].name, addr);
        } else {
            text = "key not in the allow-list";
        }
    } else if (n >= 6) {
        text = "not a CURVE handshake";
    }
    if (status[0] == '2') {
        atomic_fetch_add(&z->admitted, 1);
    } else {
        atomic_fetch_add(&z->refused, 1);
        warn_refused(z, key, addr, text);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    send_str(z->sock, "1.0", 1);
    send_str(z->sock, reqid, 1);
    send_str(z->sock, status, 1);
    send_str(z->sock, text, 1);
    send_str(z->sock, uid, 1);
    send_str(z->sock, "", 0);
}

static void *run(void *arg)
{
    zap_t *z = arg;

    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it = {z->sock, 0, ZMQ_POLLIN, 0};
        int r = zmq_poll(&it, 1, ZAP_POLL_MS);
        if (r < 0 && errno == ETERM)
            break;
        if (r > 0)
            answer(z);
    }
    if (z->suppressed)
        LOG_WARN("%llu more refused connections were not logged",
                 (unsigned long long)z->suppressed);
    zmq_close(z->sock);
    z->sock = NULL;
    return NULL;
}

int zap_start(zap_t **out, void *ctx, const auth_t *a, errbuf_t *eb)
{
    zap_t *z = calloc(1, sizeof(*z));
    int zero = 0;

    *out = NULL;
    if (!z)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    z->auth = a;
    atomic_init(&z->stop, 0);
    atomic_init(&z->admitted, 0);
    atomic_init(&z->refused, 0);
    z->sock = zmq_socket(ctx, ZMQ_REP);
    if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        int rc =
            errbuf_set(eb, ERR_NET, "ZAP handler: bind %s: %s", ZAP_ENDPOINT, zmq_strerror(errno));
        if (z->sock)
            zmq_close(z->sock);
        free(z);
        return rc;
    }
    /* the socket moves to the thread; pthread_create is the barrier */
    if (pthread_create(&z->thread, NULL, run, z) != 0) {
        zmq_close(z->sock);
        free(z);
        return errbuf_set(eb, ERR_NOMEM, "ZAP handler: cannot start its thread");
    }
    *out = z;
    return 0;
}

void zap_stop(zap_t **zp)
{
    zap_t *z = zp ? *zp : NULL;

    if (!z)
        return;
    atomic_store(&z->stop, 1);
    pthread_join(z->thread, NULL);
    free(z);
    *zp = NULL;
}
