/*
 * serve_server.h - the funnel-serve loop: a ZeroMQ ROUTER on the listen
 * endpoint, scoring threads behind it, a control thread that applies the
 * next bundle while the scoring threads keep answering, and the one
 * pointer to the current state they all read.
 *
 * NOTES ON THE DESIGN
 *   Requests arrive on the ROUTER (clients use REQ). The main thread
 *   forwards SCORE requests to an inproc DEALER that spreads them over the
 *   scoring threads (REP each), and APPLY / INFO requests to a second
 *   DEALER with the control thread behind it, so applying a bundle (which
 *   takes seconds) never holds up scoring. Replies come back the same way.
 *
 *   Live deltas. The current state is one pointer under a mutex. A request
 *   takes a reference to the state (refs++ under the mutex) and scores all
 *   its candidates on it; applying builds the new state beside the old one
 *   (serve_state_build: a new table of rows and new tower weights), then
 *   swaps the pointer under the mutex and drops the old state's reference:
 *   the old state is freed when its last reader finishes. So every reply
 *   is computed from exactly one day's state, no request waits for an
 *   apply or fails because of one, and memory peaks at two states.
 *
 *   Keys. With --curve_secret_key the front socket is a CURVE server and
 *   the ZAP handler (proto/zap.h) admits only the allow list's keys; the
 *   main thread reads each request's key (its ZAP User-Id) and answers an
 *   APPLY from a key that is not an admin with ERR_DENIED itself, so the
 *   control thread never sees it. Without keys the endpoint must be local
 *   (ipc://, loopback) unless --insecure, the shards' rule (auth.h).
 *
 *   Stopping: SIGTERM (through *stop) ends the loop within 200 ms; the
 *   context is shut down, so threads blocked in receive return, and every
 *   thread is joined before the states are freed.
 *
 * Thread-safety: serve_run is called once, by main's thread.
 */
#ifndef FUNNEL_SERVE_SERVER_H
#define FUNNEL_SERVE_SERVER_H

#include <signal.h>

#include "common/err.h"

#define SERVE_MAX_THREADS 64

typedef struct serve_opts {
    const char *bundle;       /* the bundle to load */
    const char *const *apply; /* later bundles applied in order once loaded */
    int napply;
    const char *listen;           /* ZeroMQ endpoint to bind */
    int threads;                  /* scoring threads, 1..SERVE_MAX_THREADS */
    const char *curve_secret_key; /* NAME.key (funnel-ps keygen), or NULL: no CURVE */
    const char *curve_allow;      /* the allow list (proto/auth.h); needed with a key */
    int insecure;                 /* a non-local endpoint without keys is allowed */
    volatile sig_atomic_t *stop;  /* set by SIGTERM / SIGINT */
} serve_opts_t;

/* Load the bundle, apply o->apply, bind, serve until *o->stop. Returns 0
 * after a clean stop, or ERR_* (a bundle refused, the endpoint taken...). */
int serve_run(const serve_opts_t *o, errbuf_t *eb);

#endif
