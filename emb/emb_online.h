/*
 * emb_online.h - funnel-emb against a live cluster: ask the shards that own
 * the keys (route_shard) for their rows and, for keys without one, why:
 * never seen, seen N times but not admitted yet, or expired on day D.
 *
 * Thread-safety: one call per process.
 */
#ifndef FUNNEL_EMB_ONLINE_H
#define FUNNEL_EMB_ONLINE_H

#include <stdio.h>

#include "common/err.h"
#include "common/model_conf.h"

/* endpoints: "EP0,EP1,..." in shard order; server_pub and self_key: the
 * CURVE key files (ps_client_opts_keys(); both "" for none). Returns 0, 1
 * if some key has no row, or a negative ERR_*. */
int emb_online_get(const model_spec_t *ms, const char *endpoints, const char *server_pub,
                   const char *self_key, char *const *args, int nargs, int json, FILE *out,
                   errbuf_t *eb);

#endif
