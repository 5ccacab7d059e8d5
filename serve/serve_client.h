/*
 * serve_client.h - the client side of funnel-serve, for scripts and
 * tests: score a log file through a running server and write predict's
 * output format (FORMAT.md), ask it to apply a bundle, or describe what it
 * serves.
 *
 * A log line (tsv1) becomes a request: its tokens of the user/context
 * slots (user_slots) are the request's user part, the others its one
 * candidate; with group, consecutive lines whose user parts are equal are
 * one request with many candidates. A slot's tokens all go to one side,
 * so the scores equal predict's for the line (serve_score.h). Lines
 * predict rejects (column count, labels) are skipped and counted alike.
 *
 * Thread-safety: one call at a time per process.
 */
#ifndef FUNNEL_SERVE_CLIENT_H
#define FUNNEL_SERVE_CLIENT_H

#include <stdio.h>

#include "common/err.h"

typedef struct serve_client_opts {
    const char *connect;    /* server endpoint */
    const char *server_key; /* the server's NAME.pub for CURVE, or NULL */
    const char *client_key; /* this client's NAME.key for CURVE, or NULL */
    int timeout_ms;         /* per request */
} serve_client_opts_t;

typedef struct serve_score_opts {
    const char *in;         /* tsv1 log */
    const char *out;        /* prediction file */
    const char *user_slots; /* comma list of the slots sent once per request */
    int group;              /* 1: consecutive lines of one user are one request */
    int max_cands;          /* candidates per request at most (group) */
    int repeat;             /* passes over the log (each written in full) */
    int day_column;         /* 1: a first column with the day each reply came from */
} serve_score_opts_t;

/* Score o->in through the server into o->out. Returns 0 or ERR_* (a
 * request failed or timed out: eb names the line and the server's text). */
int serve_client_score(const serve_client_opts_t *c, const serve_score_opts_t *o, errbuf_t *eb);

/* Ask the server to apply the bundle dir (as the server sees the path);
 * its answer to out. Returns 0 or ERR_* with the server's reason. */
int serve_client_apply(const serve_client_opts_t *c, const char *dir, FILE *out, errbuf_t *eb);

/* What the server serves (day, rows, model, bundle) to out. */
int serve_client_info(const serve_client_opts_t *c, FILE *out, errbuf_t *eb);

#endif
