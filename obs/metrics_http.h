/*
 * metrics_http.h - serves a metrics registry (metrics.h) over HTTP with
 * libmicrohttpd, the only file that includes microhttpd.h:
 *
 *   GET/HEAD /metrics   200, the Prometheus text format (version 0.0.4)
 *   GET/HEAD /healthz   200, "ok"
 *   other methods there 405 with an Allow header; any other path 404
 *
 * NOTES ON THE DESIGN
 *   The server runs on libmicrohttpd's own thread and only reads the
 *   registry's published snapshot, so the thread owning the registry never
 *   waits for a scrape and a slow or hostile client never waits for it.
 *   Connections are bounded (16 at once, 10 s idle timeout).
 *
 *   Binding. The listening socket is made here (bind + listen) and handed
 *   to libmicrohttpd, so a taken port fails at start with the OS's reason
 *   and the address named. A bare PORT binds 127.0.0.1: the metrics port
 *   has no authentication (it reveals counts, never rows or keys), so only
 *   an address the user wrote makes it reachable from other machines.
 *
 * Thread-safety: start and stop from the registry's owning thread.
 */
#ifndef FUNNEL_OBS_METRICS_HTTP_H
#define FUNNEL_OBS_METRICS_HTTP_H

#include "common/err.h"
#include "obs/metrics.h"

typedef struct obs_http obs_http_t;

#define OBS_HOST_MAX 256

/*
 * Parse a listen address: "PORT" (then host 127.0.0.1), "HOST:PORT" or
 * "[IPV6]:PORT"; PORT 0..65535 (0: any free port). `what` names the
 * option in errors (e.g. "--metrics_listen"). Returns 0 or ERR_CONFIG
 * saying what was expected.
 */
int obs_http_parse_listen(const char *spec, const char *what, char host[OBS_HOST_MAX], int *port,
                          errbuf_t *eb);

/*
 * Serve reg at `spec` (obs_http_parse_listen) until obs_http_stop().
 * Returns 0 with *out set, or ERR_CONFIG (bad address) / ERR_NET (the
 * address cannot be bound, e.g. the port is taken: the message names it
 * and the option) with eb filled. reg must outlive the server.
 */
int obs_http_start(obs_http_t **out, const char *spec, const char *what, const obs_reg_t *reg,
                   errbuf_t *eb);

/* The bound TCP port (useful after asking for port 0). */
int obs_http_port(const obs_http_t *h);

/* Stop serving (waits for the server thread) and free; accepts NULL. */
void obs_http_stop(obs_http_t **h);

#endif
