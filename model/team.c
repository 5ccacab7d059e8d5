/*
 * team.c - fork/join over a fixed set of threads. See team.h.
 */
#include "model/team.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/fpmode.h"
#include "model/dense.h"

#define TEAM_MAX 64

typedef struct member {
    team_t *team;
    int rank;
} member_t;

struct team {
    int size;
    int started; /* helper threads running */
    pthread_mutex_t mu;
    pthread_cond_t go;   /* a new run (or stop) was posted */
    pthread_cond_t done; /* the last helper of a run finished */
    uint64_t gen;        /* run counter, under mu */
    int pending;         /* helpers still working on run gen, under mu */
    int stop;            /* helpers exit, under mu */
    team_fn fn;
    void *arg;
    unsigned csr; /* the caller's float mode (fpmode_get), for this run */
    pthread_t tid[TEAM_MAX];
    member_t member[TEAM_MAX];
};

static void *helper(void *p)
{
    member_t *me = p;
    team_t *t = me->team;
    uint64_t seen = 0;

    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (t->gen == seen && !t->stop)
            pthread_cond_wait(&t->go, &t->mu);
        if (t->stop) {
            pthread_mutex_unlock(&t->mu);
            return NULL;
        }
        seen = t->gen;
        team_fn fn = t->fn;
        void *arg = t->arg;
        fpmode_set(t->csr);
        pthread_mutex_unlock(&t->mu);

        fn(arg, me->rank, t->size);

        pthread_mutex_lock(&t->mu);
        if (--t->pending == 0)
            pthread_cond_signal(&t->done);
        pthread_mutex_unlock(&t->mu);
    }
}

team_t *team_new(int n, errbuf_t *eb)
{
    team_t *t;

    if (n < 1 || n > TEAM_MAX) {
        errbuf_set(eb, ERR_INVAL, "team: %d threads not in [1, %d]", n, TEAM_MAX);
        return NULL;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        errbuf_set(eb, ERR_NOMEM, "team: out of memory");
        return NULL;
    }
    t->size = n;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->go, NULL);
    pthread_cond_init(&t->done, NULL);
    for (int r = 1; r < n; r++) {
        t->member[r] = (member_t){t, r};
        if (pthread_create(&t->tid[r], NULL, helper, &t->member[r]) != 0) {
            errbuf_set(eb, ERR_NOMEM, "team: cannot start thread %d of %d", r, n);
            team_destroy(&t);
            return NULL;
        }
        t->started = r;
    }
    return t;
}

void team_destroy(team_t **pt)
{
    team_t *t = pt ? *pt : NULL;

    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    for (int r = 1; r <= t->started; r++)
        pthread_join(t->tid[r], NULL);
    pthread_cond_destroy(&t->done);
    pthread_cond_destroy(&t->go);
    pthread_mutex_destroy(&t->mu);
    free(t);
    *pt = NULL;
}

int team_size(const team_t *t)
{
    return t->size;
}

void team_run(team_t *t, team_fn fn, void *arg)
{
    if (t->size > 1) {
        pthread_mutex_lock(&t->mu);
        t->fn = fn;
        t->arg = arg;
        t->csr = fpmode_get();
        t->pending = t->size - 1;
        t->gen++;
        pthread_cond_broadcast(&t->go);
        pthread_mutex_unlock(&t->mu);
    }
    fn(arg, 0, t->size);
    if (t->size > 1) {
        pthread_mutex_lock(&t->mu);
        while (t->pending > 0)
            pthread_cond_wait(&t->done, &t->mu);
        pthread_mutex_unlock(&t->mu);
    }
}
