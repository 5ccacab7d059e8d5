/*
 * team.h - a fixed team of threads that runs one function on every member
 * at once and returns when all are done (fork/join without creating
 * threads per call). The model uses it to run its towers on both cores.
 *
 * NOTES ON THE DESIGN
 *   team_new(n) starts n - 1 helper threads; the caller of team_run() is
 *   member 0, so a team of 1 has no threads and runs fn inline. Helpers
 *   sleep on a condition variable between runs (no spinning: the cores are
 *   shared with the reader and the network threads). One mutex, a
 *   generation counter to start a run and a pending count to end it.
 *
 * Thread-safety: team_run() is called by one thread at a time (the owner).
 */
#ifndef FUNNEL_TEAM_H
#define FUNNEL_TEAM_H

#include "common/err.h"

typedef struct team team_t;

/* Work of member `rank` of `size` (0 <= rank < size). */
typedef void (*team_fn)(void *arg, int rank, int size);

/* A team of n >= 1 members (n - 1 threads). NULL on error with eb filled
 * (ERR_INVAL, ERR_NOMEM). Caller owns it; release with team_destroy(). */
team_t *team_new(int n, errbuf_t *eb);

/* Stop and join the helpers, free the team; accepts NULL, clears the pointer. */
void team_destroy(team_t **t);

int team_size(const team_t *t);

/* Run fn(arg, r, size) for every r concurrently (r = 0 on the calling
 * thread) and return when every member has returned. Members run under the
 * caller's floating-point modes (x86: its MXCSR, e.g. flush-to-zero). */
void team_run(team_t *t, team_fn fn, void *arg);

#endif
