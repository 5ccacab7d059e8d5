/*
 * metrics_http.c - the /metrics and /healthz HTTP server on
 * libmicrohttpd. See metrics_http.h.
 */
#include "obs/metrics_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

#define CONN_LIMIT 16     /* connections at once */
#define CONN_TIMEOUT_S 10 /* idle connection closed after */

struct obs_http {
    struct MHD_Daemon *d;
    const obs_reg_t *reg;
    int fd;   /* listening socket (the daemon closes it when it stops) */
    int port; /* bound */
};

int obs_http_parse_listen(const char *spec, const char *what, char host[OBS_HOST_MAX], int *port,
                          errbuf_t *eb)
{
    const char *colon, *ps;
    size_t hl = 0;
    char *end;
    long p;

    if (!spec || !spec[0])
        return errbuf_set(eb, ERR_CONFIG, "%s is empty: expected PORT or HOST:PORT", what);
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':')
            return errbuf_set(eb, ERR_CONFIG, "%s '%s': expected [IPV6]:PORT, e.g. [::1]:9100",
                              what, spec);
        hl = (size_t)(close - spec - 1);
        memcpy(host, spec + 1, hl < OBS_HOST_MAX ? hl : 0);
        ps = close + 2;
    } else if ((colon = strrchr(spec, ':')) != NULL) {
        if (strchr(spec, ':') != colon)
            return errbuf_set(eb, ERR_CONFIG,
                              "%s '%s': an IPv6 address goes in brackets, e.g. [::1]:9100", what,
                              spec);
        hl = (size_t)(colon - spec);
        memcpy(host, spec, hl < OBS_HOST_MAX ? hl : 0);
        ps = colon + 1;
    } else {
        hl = strlen("127.0.0.1");
        memcpy(host, "127.0.0.1", hl + 1);
        ps = spec;
    }
    if (hl == 0 || hl >= OBS_HOST_MAX)
        return errbuf_set(eb, ERR_CONFIG,
                          "%s '%s': expected PORT or HOST:PORT with a host of "
                          "1..%d bytes, e.g. 127.0.0.1:9100",
                          what, spec, OBS_HOST_MAX - 1);
    host[hl] = '\0';
    errno = 0;
    p = strtol(ps, &end, 10);
    if (!ps[0] || *end || errno || p < 0 || p > 65535)
        return errbuf_set(eb, ERR_CONFIG,
                          "%s '%s': the port must be a number 0..65535 (0: any free port), "
                          "e.g. 127.0.0.1:9100",
                          what, spec);
    *port = (int)p;
    return 0;
}

/* Bind and listen on host:port; the socket or a negative code. */
static int open_listener(const char *host, int port, const char *what, const char *spec,
                         errbuf_t *eb)
{
    struct addrinfo hints, *ai = NULL;
    char ps[16];
    int fd = -1, one = 1, g, err = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    snprintf(ps, sizeof(ps), "%d", port);
    g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0)
        return errbuf_set(eb, ERR_CONFIG, "%s %s: cannot resolve host '%s': %s", what, spec, host,
                          gai_strerror(g));
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        /* a restart binds again over TIME_WAIT; a live listener still refuses */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 32) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return errbuf_set(eb, ERR_NET, "%s %s: cannot listen: %s%s", what, spec, strerror(err),
                          err == EADDRINUSE ? " (another process serves this port: pick another "
                                              "port or stop that process)"
                          : err == EADDRNOTAVAIL ? " (not an address of this machine)"
                                                 : "");
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body,
                             size_t len, int owned, const char *allow)
{
    struct MHD_Response *r;
    enum MHD_Result ok;

    r = MHD_create_response_from_buffer(len, body,
                                        owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **con_cls)
{
    static char not_found[] = "not found: this server has /metrics and /healthz\n";
    static char not_allowed[] = "method not allowed: use GET or HEAD\n";
    static char ok_text[] = "ok\n";
    static char busy[] = "metrics are being published; retry\n";
    const char *plain = "text/plain; charset=utf-8";
    obs_http_t *h = cls;
    int metrics = strcmp(url, "/metrics") == 0, health = strcmp(url, "/healthz") == 0;
    char *text;
    size_t len;

    (void)version;
    (void)upload;
    (void)con_cls;
    *upload_len = 0; /* a body is never read */
    if (!metrics && !health)
        return reply(c, MHD_HTTP_NOT_FOUND, plain, not_found, sizeof(not_found) - 1, 0, NULL);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, plain, not_allowed, sizeof(not_allowed) - 1, 0,
                     "GET, HEAD");
    if (health)
        return reply(c, MHD_HTTP_OK, plain, ok_text, sizeof(ok_text) - 1, 0, NULL);
    int rc = obs_render(h->reg, &text, &len);
    if (rc == ERR_BUSY)
        return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, plain, busy, sizeof(busy) - 1, 0, NULL);
    if (rc != 0)
        return MHD_NO; /* out of memory: drop the connection */
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len, 1, NULL);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    LOG_WARN("metrics http: %s", msg);
}

int obs_http_start(obs_http_t **out, const char *spec, const char *what, const obs_reg_t *reg,
                   errbuf_t *eb)
{
    char host[OBS_HOST_MAX];
    obs_http_t *h;
    int port, rc;

    *out = NULL;
    rc = obs_http_parse_listen(spec, what, host, &port, eb);
    if (rc != 0)
        return rc;
    h = calloc(1, sizeof(*h));
    if (!h)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    h->reg = reg;
    h->fd = open_listener(host, port, what, spec, eb);
    if (h->fd < 0) {
        rc = h->fd;
        free(h);
        return rc;
    }
    h->port = bound_port(h->fd);
    h->d = MHD_start_daemon(MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
                            NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                            MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)CONN_TIMEOUT_S, MHD_OPTION_END);
    if (!h->d) {
        close(h->fd);
        free(h);
        return errbuf_set(eb, ERR_NET, "%s %s: the HTTP server (libmicrohttpd) did not start", what,
                          spec);
    }
    LOG_INFO("metrics on http://%s%s%s:%d/metrics (no authentication: counts only)",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", h->port);
    *out = h;
    return 0;
}

int obs_http_port(const obs_http_t *h)
{
    return h ? h->port : -1;
}

void obs_http_stop(obs_http_t **h)
{
    if (!h || !*h)
        return;
    MHD_stop_daemon((*h)->d); /* closes the listening socket too */
    free(*h);
    *h = NULL;
}
