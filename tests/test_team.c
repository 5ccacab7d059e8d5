/*
 * test_team.c - fork/join: every member runs once per run, on distinct
 * threads, and team_run returns only after all of them finished.
 */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "model/team.h"

typedef struct probe {
    int calls[8]; /* per rank, this run */
    int size_seen[8];
    pthread_t who[8];
    long work[8]; /* per rank, a slow-ish result that must be complete */
} probe_t;

static void mark(void *arg, int r, int n)
{
    probe_t *p = arg;
    long s = 0;

    if (r == n - 1)
        usleep(2000); /* the last member is late: run must still wait for it */
    for (long i = 0; i < 100000; i++)
        s += i % (r + 2);
    p->work[r] = s;
    p->calls[r]++;
    p->size_seen[r] = n;
    p->who[r] = pthread_self();
}

static long expected_work(int r)
{
    long s = 0;
    for (long i = 0; i < 100000; i++)
        s += i % (r + 2);
    return s;
}

static void test_runs(void)
{
    for (int n = 1; n <= 5; n++) {
        errbuf_t eb;
        team_t *t = team_new(n, &eb);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_EQUAL(team_size(t), n);
        for (int run = 0; run < 50; run++) {
            probe_t p;
            memset(&p, 0, sizeof(p));
            team_run(t, mark, &p);
            for (int r = 0; r < n; r++) {
                CU_ASSERT_EQUAL(p.calls[r], 1);
                CU_ASSERT_EQUAL(p.size_seen[r], n);
                CU_ASSERT_EQUAL(p.work[r], expected_work(r));
            }
            CU_ASSERT(pthread_equal(p.who[0], pthread_self()));
            for (int r = 1; r < n; r++)
                for (int q = 0; q < r; q++)
                    CU_ASSERT(!pthread_equal(p.who[r], p.who[q]));
            CU_ASSERT_EQUAL(p.calls[n], 0);
        }
        team_destroy(&t);
        CU_ASSERT_PTR_NULL(t);
    }
    team_destroy(NULL);
}

static void test_errors(void)
{
    errbuf_t eb;
    CU_ASSERT_PTR_NULL(team_new(0, &eb));
    CU_ASSERT_PTR_NULL(team_new(65, &eb));
    /* destroy right after creation, before any run */
    team_t *t = team_new(3, &eb);
    CU_ASSERT_PTR_NOT_NULL(t);
    team_destroy(&t);
}

int test_team_register(void)
{
    CU_pSuite s = CU_add_suite("team", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "each member runs once per run, joined", test_runs);
    CU_add_test(s, "bad sizes; destroy without runs", test_errors);
    return CU_get_error();
}
