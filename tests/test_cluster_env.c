/*
 * test_cluster_env.c - ranks, shard indices and endpoint lists from the
 * cluster manager (common/cluster_env.c).
 *
 *   precedence   flag > config > FUNNEL_* > Open MPI > Slurm > Kubernetes,
 *                rank and count each on its own, over fake environments
 *   shard        FUNNEL_SHARD, the StatefulSet hostname ordinal (only in a
 *                Kubernetes pod), and the errors that name what to change
 *   patterns     comma lists, {A..B}, @FILE with comments, and malformed
 *                lists refused with the item named
 *   conf_from    conf_key_from() tells a flag, a config file and a default
 *   processes    2 real shards and 2 real workers started with no cluster
 *                flag at all (FUNNEL_SHARD/S, Slurm and Open MPI variables, FUNNEL_PS with
 *                a pattern) train a model that predicts (AUC well above
 *                chance) and log which source won; a worker whose rank is
 *                past its count is refused; training in process ignores
 *                the environment's rank
 *   hostname     a real shard in a UTS namespace named funnel-ps-1, with
 *                KUBERNETES_SERVICE_HOST set, serves as shard 1 (root)
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cluster_env.h"
#include "tests/util.h"
#include "worker/worker_conf.h"

#define F CONF_FROM_FLAG
#define C CONF_FROM_FILE
#define D CONF_FROM_DEFAULT

static char dir[512], bin[700];

static int setup(void)
{
    char gen[700];

    if (tu_mkdtemp(dir, sizeof(dir), "clenv") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    return tu_sh(NULL, "%s --out %s/w --train 120000 --test 30000 --seed 3 > %s/gen.log 2>&1", gen,
                 dir, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    tu_stop_all();
    tu_rmtree(dir);
    return 0;
}

/* ---- precedence ---- */

typedef struct wcase {
    const char *env[6];
    conf_from_t rank_from, workers_from;
    int64_t rank, workers; /* as parsed from flags/config/defaults */
    int64_t want_rank, want_workers;
    const char *want; /* substring of said, or of the error when want_rank < 0 */
} wcase_t;

static const wcase_t wcases[] = {
    /* nothing set: the defaults */
    {{NULL}, D, D, 0, 1, 0, 1, "rank 0 (default) of 1 workers (default)"},
    /* each manager alone */
    {{"FUNNEL_RANK=2", "FUNNEL_WORKERS=5"}, D, D, 0, 1, 2, 5, "FUNNEL_RANK=2"},
    {{"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=3"}, D, D, 0, 1, 1, 3, "Open MPI"},
    {{"SLURM_PROCID=3", "SLURM_NTASKS=4"}, D, D, 0, 1, 3, 4, "SLURM_PROCID=3, Slurm"},
    {{"JOB_COMPLETION_INDEX=2", "FUNNEL_WORKERS=3"}, D, D, 0, 1, 2, 3, "Kubernetes Indexed Job"},
    /* Indexed Job: the count from the config */
    {{"JOB_COMPLETION_INDEX=6"}, D, C, 0, 8, 6, 8, "of 8 workers (config)"},
    /* order: funnel > Open MPI > Slurm > Kubernetes */
    {{"SLURM_PROCID=1", "SLURM_NTASKS=2", "OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=4",
      "JOB_COMPLETION_INDEX=3"},
     D,
     D,
     0,
     1,
     0,
     4,
     "OMPI_COMM_WORLD_RANK=0"},
    {{"SLURM_PROCID=1", "SLURM_NTASKS=2", "FUNNEL_RANK=3", "FUNNEL_WORKERS=5"},
     D,
     D,
     0,
     1,
     3,
     5,
     "FUNNEL_WORKERS=5"},
    {{"SLURM_PROCID=1", "SLURM_NTASKS=2", "JOB_COMPLETION_INDEX=0"}, D, D, 0, 1, 1, 2, "Slurm"},
    /* flags and config win, even at the default value */
    {{"SLURM_PROCID=1", "SLURM_NTASKS=2"}, F, F, 0, 1, 0, 1, "rank 0 (flag) of 1 workers (flag)"},
    {{"SLURM_PROCID=1", "SLURM_NTASKS=4"}, C, D, 0, 1, 0, 4, "rank 0 (config)"},
    /* rank and count each on its own: rank from Slurm, count from a flag */
    {{"SLURM_PROCID=2", "SLURM_NTASKS=9"}, D, F, 0, 3, 2, 3, "of 3 workers (flag)"},
    /* errors */
    {{"JOB_COMPLETION_INDEX=2"}, D, D, 0, 1, -1, 0, "nothing gives the number of workers"},
    {{"SLURM_PROCID=4", "SLURM_NTASKS=4"}, D, D, 0, 1, -1, 0, "rank 4 (from SLURM_PROCID=4"},
    {{"FUNNEL_RANK=x1"}, D, D, 0, 1, -1, 0, "FUNNEL_RANK='x1': expected a whole number"},
    {{"FUNNEL_RANK=0", "FUNNEL_WORKERS=0"}, D, D, 0, 1, -1, 0, "FUNNEL_WORKERS='0'"},
    {{"SLURM_PROCID=-1", "SLURM_NTASKS=2"}, D, D, 0, 1, -1, 0, "SLURM_PROCID='-1'"},
    {{"FUNNEL_RANK=0", "FUNNEL_WORKERS=2"}, F, D, 5, 1, -1, 0, "rank 5 (from flag)"},
};

static void test_precedence(void)
{
    for (size_t i = 0; i < sizeof(wcases) / sizeof(wcases[0]); i++) {
        const wcase_t *w = &wcases[i];
        int64_t rank = w->rank, workers = w->workers;
        cluster_said_t said = {{0}};
        errbuf_t eb = {{0}};
        int rc = cluster_env_worker((char *const *)w->env, w->rank_from, w->workers_from, &rank,
                                    &workers, &said, &eb);

        if (w->want_rank < 0) {
            CU_ASSERT_EQUAL(rc, ERR_CONFIG);
            if (!strstr(eb.msg, w->want))
                printf("\ncase %zu: error '%s' lacks '%s'\n", i, eb.msg, w->want);
            CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, w->want));
            continue;
        }
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(rank, w->want_rank);
        CU_ASSERT_EQUAL(workers, w->want_workers);
        if (!strstr(said.line, w->want))
            printf("\ncase %zu: said '%s' lacks '%s' (%s)\n", i, said.line, w->want, eb.msg);
        CU_ASSERT_PTR_NOT_NULL(strstr(said.line, w->want));
    }
}

static void test_shard(void)
{
    char *k8s[] = {"KUBERNETES_SERVICE_HOST=10.0.0.1", NULL};
    char *k8s_env[] = {"KUBERNETES_SERVICE_HOST=10.0.0.1", "FUNNEL_SHARD=1", "FUNNEL_SHARDS=4",
                       NULL};
    char *plain[] = {"FUNNEL_SHARDS=4", NULL};
    cluster_said_t said;
    errbuf_t eb = {{0}};
    int64_t shard = 0, shards = 4;

    /* StatefulSet ordinal in a pod */
    CU_ASSERT_EQUAL(cluster_env_shard(k8s, "funnel-ps-3", D, C, &shard, &shards, &said, &eb), 0);
    CU_ASSERT_EQUAL(shard, 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(said.line, "hostname funnel-ps-3"));
    /* FUNNEL_SHARD beats the hostname; FUNNEL_SHARDS gives the count */
    shard = 0, shards = 1;
    CU_ASSERT_EQUAL(cluster_env_shard(k8s_env, "funnel-ps-3", D, D, &shard, &shards, &said, &eb),
                    0);
    CU_ASSERT_EQUAL(shard, 1);
    CU_ASSERT_EQUAL(shards, 4);
    /* a flag beats both */
    shard = 2, shards = 4;
    CU_ASSERT_EQUAL(cluster_env_shard(k8s_env, "funnel-ps-3", F, D, &shard, &shards, &said, &eb),
                    0);
    CU_ASSERT_EQUAL(shard, 2);
    /* outside Kubernetes a hostname ending in -N means nothing */
    shard = 0, shards = 1;
    CU_ASSERT_EQUAL(cluster_env_shard(plain, "node-12", D, D, &shard, &shards, &said, &eb), 0);
    CU_ASSERT_EQUAL(shard, 0);
    CU_ASSERT_EQUAL(shards, 4);
    /* errors: no ordinal; ordinal past the count */
    shard = 0, shards = 4;
    CU_ASSERT_EQUAL(cluster_env_shard(k8s, "funnel-ps", D, C, &shard, &shards, &said, &eb),
                    ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "'funnel-ps' does not end in -N"));
    shard = 0, shards = 2;
    CU_ASSERT_EQUAL(cluster_env_shard(k8s, "funnel-ps-2", D, C, &shard, &shards, &said, &eb),
                    ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "shard 2 (from hostname funnel-ps-2"));
}

/* ---- endpoint lists ---- */

static void expect_list(const char *spec, int n, const char *want)
{
    char out[CONF_STR_MAX];
    errbuf_t eb = {{0}};
    int rc = cluster_env_expand(spec, out, sizeof(out), &eb);

    if (rc != n || strcmp(out, want) != 0)
        printf("\n'%s' -> %d '%s' (%s), want %d '%s'\n", spec, rc, out, eb.msg, n, want);
    CU_ASSERT_EQUAL(rc, n);
    CU_ASSERT_STRING_EQUAL(out, want);
}

static void expect_bad(const char *spec, int code, const char *want)
{
    char out[CONF_STR_MAX];
    errbuf_t eb = {{0}};
    int rc = cluster_env_expand(spec, out, sizeof(out), &eb);

    if (rc != code || !strstr(eb.msg, want))
        printf("\n'%s' -> %d '%s', want %d '%s'\n", spec, rc, eb.msg, code, want);
    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, want));
}

static void test_patterns(void)
{
    char path[700], spec[720], big[2000];

    expect_list("", 0, "");
    expect_list("tcp://a:1", 1, "tcp://a:1");
    expect_list(" tcp://a:1 , tcp://b:2", 2, "tcp://a:1,tcp://b:2");
    expect_list("tcp://funnel-ps-{0..3}.funnel-ps:7700", 4,
                "tcp://funnel-ps-0.funnel-ps:7700,tcp://funnel-ps-1.funnel-ps:7700,"
                "tcp://funnel-ps-2.funnel-ps:7700,tcp://funnel-ps-3.funnel-ps:7700");
    expect_list("tcp://h:{7700..7701},ipc:///x/{5..5}.sock", 3,
                "tcp://h:7700,tcp://h:7701,ipc:///x/5.sock");

    /* @FILE: one a line or commas, comments and blank lines ignored */
    snprintf(path, sizeof(path), "%s/eps", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_write(path, "# shards of job 7\ntcp://h0:7700\n\n  tcp://h{1..2}:7700 # two more\n"
                       "tcp://x:1,tcp://y:2\n"),
        0);
    snprintf(spec, sizeof(spec), "@%s", path);
    expect_list(spec, 5, "tcp://h0:7700,tcp://h1:7700,tcp://h2:7700,tcp://x:1,tcp://y:2");

    /* malformed */
    expect_bad("tcp://h-{3..1}:1", ERR_CONFIG, "must go up");
    expect_bad("tcp://h-{a..b}:1", ERR_CONFIG, "a range is written {A..B}");
    expect_bad("tcp://h-{0..3:1", ERR_CONFIG, "a range is written {A..B}");
    expect_bad("tcp://h-{0-3}:1", ERR_CONFIG, "a range is written {A..B}");
    expect_bad("tcp://h-0..3}:1", ERR_CONFIG, "'}' without '{'");
    expect_bad("tcp://h{0..1}-{0..1}:1", ERR_CONFIG, "at most one {A..B}");
    expect_bad("tcp://a:1,,tcp://b:2", ERR_CONFIG, "empty endpoint");
    expect_bad("tcp://a:1,", ERR_CONFIG, "empty endpoint");
    expect_bad("tcp://h-{0..99999}:1", ERR_CONFIG, "a range is written");
    snprintf(spec, sizeof(spec), "@%s/missing", dir);
    expect_bad(spec, ERR_IO, "missing");
    CU_ASSERT_EQUAL_FATAL(tu_write(path, "# nothing here\n\n"), 0);
    snprintf(spec, sizeof(spec), "@%s", path);
    expect_bad(spec, ERR_CONFIG, "lists no endpoint");
    /* longer than the config's string */
    snprintf(big, sizeof(big), "tcp://a-very-long-host-name-{0..99}.example.org:7700");
    expect_bad(big, ERR_TOOBIG, "longer than 1023 bytes");
}

static void test_endpoints_env(void)
{
    char *env[] = {"FUNNEL_PS=tcp://p-{0..1}:7", NULL};
    char ps[CONF_STR_MAX] = "";
    cluster_said_t said;
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL(cluster_env_endpoints(env, D, ps, sizeof(ps), &said, &eb), 2);
    CU_ASSERT_STRING_EQUAL(ps, "tcp://p-0:7,tcp://p-1:7");
    CU_ASSERT_PTR_NOT_NULL(strstr(said.line, "FUNNEL_PS"));
    /* the config beats FUNNEL_PS */
    snprintf(ps, sizeof(ps), "tcp://c:{1..3}");
    CU_ASSERT_EQUAL(cluster_env_endpoints(env, C, ps, sizeof(ps), &said, &eb), 3);
    CU_ASSERT_STRING_EQUAL(ps, "tcp://c:1,tcp://c:2,tcp://c:3");
    /* an error says where the list came from */
    snprintf(ps, sizeof(ps), "tcp://c:{3..1}");
    CU_ASSERT_EQUAL(cluster_env_endpoints(env, F, ps, sizeof(ps), &said, &eb), ERR_CONFIG);
    CU_ASSERT_EQUAL(strncmp(eb.msg, "--ps: ", 6), 0);
}

/* ---- conf_key_from ---- */

static void test_conf_from(void)
{
    char path[700];
    char *a1[] = {"--rank", "0", "x.tsv"};
    char *a2[] = {"--conf", path, "--workers=3"};
    char *a3[] = {"--max-inflight", "2", "--conf", path};

    snprintf(path, sizeof(path), "%s/c.conf", dir);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, "[cluster]\nrank = 0\n"), 0);
    CU_ASSERT_EQUAL(conf_key_from(&worker_conf_schema, 3, a1, "rank"), F);
    CU_ASSERT_EQUAL(conf_key_from(&worker_conf_schema, 3, a1, "workers"), D);
    CU_ASSERT_EQUAL(conf_key_from(&worker_conf_schema, 3, a2, "rank"), C);
    CU_ASSERT_EQUAL(conf_key_from(&worker_conf_schema, 3, a2, "workers"), F);
    CU_ASSERT_EQUAL(conf_key_from(&worker_conf_schema, 4, a3, "max_inflight"), F);
    CU_ASSERT_EQUAL(conf_key_from(&worker_conf_schema, 4, a3, "ps"), D);
    /* a key of another section with the same name does not count */
    CU_ASSERT_EQUAL_FATAL(tu_write(path, "[ps]\nshard = 1\n"), 0);
    CU_ASSERT_EQUAL(conf_key_from(&worker_conf_schema, 4, a3, "rank"), D);
}

/* ---- real processes, started by environment only ---- */

#define MODEL "--towers 64,32"

static int file_has(const char *path, const char *text)
{
    char *s = tu_slurp(path, NULL);
    int yes = s && strstr(s, text) != NULL;

    if (!yes)
        printf("\n%s lacks '%s'\n", path, text);
    free(s);
    return yes;
}

/* The exit status a worker wrote to path, waiting at most max_s for it; -1. */
static int wait_rc(const char *path, int max_s)
{
    for (int i = 0; i < max_s * 10; i++) {
        char *s = tu_slurp(path, NULL);
        if (s && strchr(s, '\n')) {
            int rc = atoi(s);
            free(s);
            return rc;
        }
        free(s);
        usleep(100 * 1000);
    }
    return -1;
}

static void test_processes(void)
{
    char log[800], pat[800], out[800];
    pid_t ps[2], w[2];
    /* each worker from a different manager's variables */
    const char *wenv[2] = {"SLURM_PROCID=0 SLURM_NTASKS=2",
                           "OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2"};

    snprintf(pat, sizeof(pat), "ipc://%s/ps-{0..1}.sock", dir);
    for (int i = 0; i < 2; i++) {
        snprintf(log, sizeof(log), "%s/ps%d.log", dir, i);
        ps[i] = tu_spawn(log,
                         "FUNNEL_SHARD=%d FUNNEL_SHARDS=2 exec %s/funnel-ps --listen "
                         "ipc://%s/ps-%d.sock --data %s/data%d %s",
                         i, bin, dir, i, dir, i, MODEL);
        CU_ASSERT_FATAL(ps[i] > 0);
    }
    for (int r = 0; r < 2; r++) {
        snprintf(log, sizeof(log), "%s/worker%d.log", dir, r);
        w[r] = tu_spawn(log,
                        "%s FUNNEL_PS='%s' %s/funnel-worker train --metrics_file %s/m%d.jsonl "
                        "%s %s/w/train.tsv; echo $? > %s/w%d.rc",
                        wenv[r], pat, bin, dir, r, MODEL, dir, dir, r);
        CU_ASSERT_FATAL(w[r] > 0);
    }
    /* a worker whose rank is past its count is refused before it starts */
    snprintf(out, sizeof(out), "%s/bad.log", dir);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "SLURM_PROCID=2 SLURM_NTASKS=2 FUNNEL_PS='%s' %s/funnel-worker train "
                          "%s/w/train.tsv",
                          pat, bin, dir),
                    2);
    CU_ASSERT(file_has(out, "rank 2 (from SLURM_PROCID=2, Slurm) is not below workers 2"));

    for (int r = 0; r < 2; r++) {
        char rcf[800];

        snprintf(rcf, sizeof(rcf), "%s/w%d.rc", dir, r);
        CU_ASSERT_EQUAL(wait_rc(rcf, 300), 0);
        tu_stop(w[r], 15);
    }
    snprintf(log, sizeof(log), "%s/worker0.log", dir);
    CU_ASSERT(file_has(log, "cluster: rank 0 (SLURM_PROCID=0, Slurm) of 2 workers "
                            "(SLURM_NTASKS=2, Slurm); 2 shard endpoints (FUNNEL_PS, from ipc://"));
    snprintf(log, sizeof(log), "%s/worker1.log", dir);
    CU_ASSERT(file_has(log, "cluster: rank 1 (OMPI_COMM_WORLD_RANK=1, Open MPI) of 2 workers"));
    snprintf(log, sizeof(log), "%s/ps1.log", dir);
    CU_ASSERT(file_has(log, "cluster: shard 1 (FUNNEL_SHARD=1, funnel) of 2 shards"));

    /* the model they trained predicts: through the same pattern */
    snprintf(log, sizeof(log), "%s/predict.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "FUNNEL_PS='%s' %s/funnel-worker predict %s --in %s/w/test.tsv --out "
                          "%s/pred.tsv && %s/funnel-worker eval --pred %s/pred.tsv --log "
                          "%s/w/test.tsv --json > %s/eval.json",
                          pat, bin, MODEL, dir, dir, bin, dir, dir, dir),
                    0);
    snprintf(out, sizeof(out), "%s/eval.json", dir);
    char *json = tu_slurp(out, NULL);
    char *t = json ? strstr(json, "\"ctr\":{") : NULL;
    char *a = t ? strstr(t, "\"auc\":") : NULL;
    double auc = a ? strtod(a + 6, NULL) : 0;
    printf("\n    env-started cluster: ctr AUC %.4f\n", auc);
    CU_ASSERT(auc > 0.65);
    free(json);
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL(tu_stop(ps[i], 15), 0);

    /* in process a rank means nothing: every line is trained */
    snprintf(out, sizeof(out), "%s/inproc.log", dir);
    CU_ASSERT_EQUAL(tu_sh(out,
                          "SLURM_PROCID=1 SLURM_NTASKS=2 %s/funnel-worker train --model %s/m %s "
                          "%s/w/train.tsv",
                          bin, dir, MODEL, dir),
                    0);
    CU_ASSERT(file_has(out, "trained 120000 samples"));
}

/* A shard in a UTS namespace named like a StatefulSet pod (root only: the
 * hostname path needs a hostname to set) takes its index from the name. */
static void test_statefulset_hostname(void)
{
    char log[800], out[800];
    pid_t ps;

    if (geteuid() != 0) {
        printf("\n    skipped: setting a hostname (unshare --uts) needs root\n");
        return;
    }
    snprintf(log, sizeof(log), "%s/sts.log", dir);
    ps = tu_spawn(log,
                  "exec unshare --uts sh -c 'hostname funnel-ps-1 && "
                  "KUBERNETES_SERVICE_HOST=10.0.0.1 FUNNEL_SHARDS=2 exec %s/funnel-ps --listen "
                  "ipc://%s/sts.sock --data %s/sts-data %s'",
                  bin, dir, dir, MODEL);
    CU_ASSERT_FATAL(ps > 0);
    snprintf(out, sizeof(out), "%s/sts-stats.txt", dir);
    CU_ASSERT_EQUAL(
        tu_sh(out, "%s/funnel-worker ctl stats --ps ipc://%s/sts.sock --wait 20", bin, dir), 0);
    char *text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "shard                        1") : NULL);
    free(text);
    CU_ASSERT_EQUAL(tu_stop(ps, 15), 0);
    CU_ASSERT(file_has(log, "cluster: shard 1 (hostname funnel-ps-1, StatefulSet ordinal) of 2 "
                            "shards (FUNNEL_SHARDS=2, funnel)"));
}

int test_cluster_env_register(void)
{
    CU_pSuite s = CU_add_suite("cluster_env", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "rank and workers: flag > config > FUNNEL > Open MPI > Slurm > Kubernetes",
                test_precedence);
    CU_add_test(s, "shard index: FUNNEL_SHARD, StatefulSet ordinal in a pod", test_shard);
    CU_add_test(s, "endpoint lists: comma, {A..B}, @FILE, malformed", test_patterns);
    CU_add_test(s, "endpoints: flag and config beat FUNNEL_PS", test_endpoints_env);
    CU_add_test(s, "conf_key_from: flag, config file, default", test_conf_from);
    CU_add_test(s, "real shards and workers started by environment only", test_processes);
    CU_add_test(s, "a real shard named funnel-ps-1 in a pod is shard 1", test_statefulset_hostname);
    return CU_get_error();
}
