/*
 * ps_main.c - funnel-ps: one parameter-server shard. Parses the command
 * line and config, installs signal handlers, runs server_run().
 *
 *   funnel-ps [--conf FILE] [--shard I --shards N] [--listen ENDPOINT] [--data DIR]
 *   funnel-ps keygen --out DIR/NAME
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/cluster_env.h"
#include "common/log.h"
#include "common/meta.h"
#include "common/ps_conf.h"
#include "proto/curve.h"
#include "ps/server.h"

typedef struct ps_state {
    ps_conf_t conf;
    volatile sig_atomic_t stop;
} ps_state_t;

static volatile sig_atomic_t *g_stop;

static void on_signal(int sig)
{
    (void)sig;
    if (g_stop)
        *g_stop = 1;
}

/* funnel-ps keygen --out DIR/NAME: a CURVE key pair (curve.h). */
static int keygen_main(int argc, char **argv)
{
    curve_pair_t p;
    errbuf_t eb = {{0}};

    if (argc != 4 || strcmp(argv[2], "--out") != 0) {
        fprintf(stderr, "usage: funnel-ps keygen --out DIR/NAME   (writes NAME.key, mode 0600, "
                        "and NAME.pub)\n");
        return 2;
    }
    if (curve_keygen(argv[3], &p, &eb) != 0) {
        fprintf(stderr, "funnel-ps keygen: %s\n", eb.msg);
        return 1;
    }
    printf("wrote %s.key (secret, mode 0600) and %s.pub\npublic-key = %s\n", argv[3], argv[3],
           p.pub);
    memset(&p, 0, sizeof(p));
    return 0;
}

int main(int argc, char **argv)
{
    static ps_state_t st;
    static conf_given_t given; /* keys the user set (--init_from's META fills the rest) */
    errbuf_t eb = {{0}};
    char *pos[1];
    int npos, help, rc;

    if (argc > 1 && strcmp(argv[1], "print-conf") == 0) {
        static const char *const sections[] = {"ps", NULL};
        conf_print_ini(&ps_conf_schema, sections, stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "keygen") == 0)
        return keygen_main(argc, argv);
    rc = conf_parse_args_given(&ps_conf_schema, &st.conf, &given, argc - 1, argv + 1, pos, 0, &npos,
                               &help, &eb);
    if (help) {
        printf("usage: funnel-ps [--conf FILE] [--shard I --shards N] [--listen ENDPOINT]\n"
               "                 [--data DIR] [--KEY VALUE ...]\n"
               "       funnel-ps print-conf\n"
               "       funnel-ps keygen --out DIR/NAME\n\n"
               "One parameter-server shard: serves its share of the embedding rows and of the\n"
               "dense weights over ZeroMQ, durable in RocksDB under --data. Every option has\n"
               "a default (below), so without options it is a single shard on this machine.\n"
               "SIGINT or SIGTERM stops it after writing its dirty rows to RocksDB.\n\n"
               "Keys: keygen writes a CURVE key pair, NAME.key (secret, mode 0600) and\n"
               "NAME.pub. With curve_secret_key (the shard's NAME.key) and curve_allow (one\n"
               "client key a line: ROLE PUBKEY NAME [RANKS], ROLE worker or admin) only the\n"
               "listed keys are served, encrypted; workers may pull, push as their RANKS and\n"
               "read stats, admins may also shut down, begin a day, flush and checkpoint.\n"
               "A --listen other machines can reach needs keys, or --insecure.\n\n"
               "Without --shard/--shards (flag or config) they come from FUNNEL_SHARD /\n"
               "FUNNEL_SHARDS, or in a Kubernetes pod the index from the StatefulSet\n"
               "hostname (funnel-ps-3 is shard 3); README \"Running on a cluster\".\n\n");
        conf_print_help(&ps_conf_schema, stdout);
        return 0;
    }
    if (rc == 0 && st.conf.init_from.s[0]) { /* [model] keys not given: the checkpoint's */
        meta_t m;
        int mrc = meta_read(st.conf.init_from.s, &m, &eb);
        rc = mrc == 0
                 ? meta_apply_conf(&m, st.conf.init_from.s, &ps_conf_schema, &st.conf, &given, &eb)
                 : 0; /* no META: the restore says so, unless the data is already there */
    }
    if (rc != 0) {
        fprintf(stderr, "funnel-ps: %s\n", eb.msg);
        return 2;
    }
    /* cluster_env: the shard index and count from the cluster manager */
    cluster_said_t who = {{0}};
    rc = cluster_env_shard(environ, NULL,
                           conf_key_from(&ps_conf_schema, argc - 1, argv + 1, "shard"),
                           conf_key_from(&ps_conf_schema, argc - 1, argv + 1, "shards"),
                           &st.conf.shard, &st.conf.shards, &who, &eb);
    if (rc != 0) {
        fprintf(stderr, "funnel-ps: %s\n", eb.msg);
        return 2;
    }
    log_init("ps", (int)st.conf.shard, st.conf.log_level, NULL);
    LOG_INFO("cluster: %s", who.line);
    conf_log_effective(&ps_conf_schema, &st.conf);
    /* Fixed malloc thresholds: glibc's adaptive ones rise after the first
     * large free (up to a 32 MB mmap threshold and a 64 MB trim threshold),
     * and the shard's freed request buffers then stay resident for good,
     * beyond mem_limit (bench-mem measures it). 1 MB, not 256 kB (issue
     * 16): a 1000-key push at dim 64 is 264 kB, and each one mapped fresh
     * cost the shard ~1.5 ms of page faults (bench-ps: 2.0 -> 1.25 ms of
     * CPU per push; 0.35-0.55 ms with a 4 MB trim threshold, which held
     * 3.39x a 32 MB limit in bench-mem). bench-mem, 1 M keys at 32 MB, one
     * run each: peak RSS 2.65x the limit with 256 kB, 2.90x with 1 MB;
     * 28 k -> 61 k keys/s (its 262 kB replies were mapped fresh too). */
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    g_stop = &st.stop;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    rc = server_run(&st.conf, &st.stop, &eb);
    conf_release(&ps_conf_schema, &st.conf); /* slot lists: any length, on the heap */
    if (rc != 0) {
        LOG_ERROR("%s", eb.msg[0] ? eb.msg : err_strerror(rc));
        return 1;
    }
    return 0;
}
