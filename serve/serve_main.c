/*
 * serve_main.c - funnel-serve: online scoring of a serving bundle.
 *
 *   funnel-serve --bundle DIR --listen EP [--threads N] [--apply DIR]...
 *                [--curve_secret_key NAME.key --curve_allow FILE] [--insecure]
 *                [--dense_gemm onednn|openblas]
 *   funnel-serve score --connect EP --in LOG --out PRED [--user_slots LIST]
 *                [--group] [--max_candidates N] [--repeat N] [--day_column]
 *   funnel-serve apply --connect EP DIR
 *   funnel-serve info  --connect EP
 *   (client modes: [--curve_server_key NAME.pub --curve_secret_key NAME.key]
 *    [--timeout_ms MS])
 *
 * Only wiring: options, signals, then serve_run() or a client call.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/parse.h"
#include "model/dense.h"
#include "serve/serve_client.h"
#include "serve/serve_server.h"

#define MAX_APPLY 64

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: funnel-serve --bundle DIR --listen EP [--threads N] [--apply DIR]...\n"
            "                    [--curve_secret_key NAME.key --curve_allow FILE]\n"
            "                    [--insecure] [--dense_gemm LIB] [--log_level L]\n"
            "       funnel-serve score --connect EP --in LOG --out PRED [--user_slots LIST]\n"
            "                    [--group] [--max_candidates N] [--repeat N] [--day_column]\n"
            "       funnel-serve apply --connect EP DIR\n"
            "       funnel-serve info --connect EP\n\n"
            "Serve a bundle (funnel-emb bundle; scripts/daily-refresh.sh --export-dir writes\n"
            "bundle-DAY/) over ZeroMQ: a request holds a user's user/context tokens and a list\n"
            "of candidates' tokens (FORMAT.md); the reply holds pctr, pcvr, pctcvr (and pctavr\n"
            "for esm2) per candidate, equal to funnel-worker predict's for the same model.\n\n"
            "server options:\n"
            "  --bundle DIR          the bundle to load (verified: sizes and checksums)\n"
            "  --listen EP           endpoint to bind, e.g. tcp://127.0.0.1:7800 or ipc:///run/s\n"
            "  --threads N           scoring threads (1..64, default 1)\n"
            "  --dense_gemm LIB      onednn (default) or openblas: the towers' products; give\n"
            "                        the model's [train] dense_gemm to score bit for bit as\n"
            "                        its predict does\n"
            "  --apply DIR           a later bundle to apply after loading (repeatable, in order)\n"
            "  --curve_secret_key K  CURVE: the server's NAME.key (funnel-ps keygen); clients\n"
            "                        then need NAME.pub and a key of their own on the allow list\n"
            "  --curve_allow FILE    the allow list, as funnel-ps's curve_allow: a 'worker' key\n"
            "                        may score and ask info, an 'admin' key may also apply\n"
            "                        bundles; other keys never complete a handshake\n"
            "  --insecure            listen on a non-local endpoint without keys (anyone who\n"
            "                        reaches it may score and apply bundles)\n"
            "  --log_level L         debug|info|warn|error (default info)\n"
            "While serving, `funnel-serve apply --connect EP DIR` applies the next day's\n"
            "bundle: its delta on the rows served (or its full export if it does not follow\n"
            "the day served), built beside the old state and swapped in at once; requests\n"
            "in flight finish on the old day, none fails. SIGTERM stops it cleanly.\n\n"
            "client options:\n"
            "  --connect EP          the server\n"
            "  --in LOG --out PRED   score a tsv1 log into predict's output format\n"
            "  --user_slots LIST     slots sent once per request (default user_id,hour)\n"
            "  --group               consecutive lines with the same user part: one request\n"
            "  --max_candidates N    candidates per grouped request (default 1000)\n"
            "  --repeat N            score the log N times (all passes written)\n"
            "  --day_column          first column: the day of the state that scored the line\n"
            "  --curve_server_key P  the server's NAME.pub, with --curve_secret_key (this\n"
            "                        client's NAME.key)\n"
            "  --timeout_ms MS       per request (default 60000)\n");
}

static int bad_int(const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (parse_int_str(v, lo, hi, out) == 0)
        return 0;
    fprintf(stderr, "funnel-serve: %s %s: give a whole number %lld..%lld\n", opt, v, (long long)lo,
            (long long)hi);
    return 1;
}

int main(int argc, char **argv)
{
    const char *cmd = "serve", *apply[MAX_APPLY], *pos = NULL, *level = "info";
    serve_opts_t so = {.threads = 1, .stop = &stop_flag};
    serve_client_opts_t co = {0};
    serve_score_opts_t sc = {.user_slots = "user_id,hour", .max_cands = 1000, .repeat = 1};
    errbuf_t eb = {{0}};
    int64_t v;
    int i = 1, rc, lv = LOG_LEVEL_INFO;

    dense_blas_choose_core(argv);
    if (argc > 1 &&
        (!strcmp(argv[1], "score") || !strcmp(argv[1], "apply") || !strcmp(argv[1], "info")))
        cmd = argv[i++];
    for (; i < argc; i++) {
        const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "--group")) {
            sc.group = 1;
        } else if (!strcmp(o, "--day_column")) {
            sc.day_column = 1;
        } else if (!strcmp(o, "--insecure")) {
            so.insecure = 1;
        } else if (o[0] == '-' && o[1] == '-' && !val) {
            fprintf(stderr, "funnel-serve: %s needs a value (see --help)\n", o);
            return 2;
        } else if (!strcmp(o, "--bundle")) {
            so.bundle = argv[++i];
        } else if (!strcmp(o, "--listen")) {
            so.listen = argv[++i];
        } else if (!strcmp(o, "--apply")) {
            if (so.napply == MAX_APPLY) {
                fprintf(stderr, "funnel-serve: at most %d --apply\n", MAX_APPLY);
                return 2;
            }
            apply[so.napply++] = argv[++i];
        } else if (!strcmp(o, "--threads")) {
            if (bad_int(o, argv[++i], 1, SERVE_MAX_THREADS, &v))
                return 2;
            so.threads = (int)v;
        } else if (!strcmp(o, "--dense_gemm")) {
            const char *name = argv[++i];
            int lib = dense_gemm_parse(name);
            if (lib < 0) {
                fprintf(stderr, "funnel-serve: --dense_gemm %s: use onednn or openblas\n", name);
                return 2;
            }
            dense_gemm_set(lib);
        } else if (!strcmp(o, "--curve_secret_key")) {
            so.curve_secret_key = co.client_key = argv[++i];
        } else if (!strcmp(o, "--curve_allow")) {
            so.curve_allow = argv[++i];
        } else if (!strcmp(o, "--curve_server_key")) {
            co.server_key = argv[++i];
        } else if (!strcmp(o, "--connect")) {
            co.connect = argv[++i];
        } else if (!strcmp(o, "--timeout_ms")) {
            if (bad_int(o, argv[++i], 1, 3600000, &v))
                return 2;
            co.timeout_ms = (int)v;
        } else if (!strcmp(o, "--in")) {
            sc.in = argv[++i];
        } else if (!strcmp(o, "--out")) {
            sc.out = argv[++i];
        } else if (!strcmp(o, "--user_slots")) {
            sc.user_slots = argv[++i];
        } else if (!strcmp(o, "--max_candidates")) {
            if (bad_int(o, argv[++i], 1, 100000, &v))
                return 2;
            sc.max_cands = (int)v;
        } else if (!strcmp(o, "--repeat")) {
            if (bad_int(o, argv[++i], 1, 1000000, &v))
                return 2;
            sc.repeat = (int)v;
        } else if (!strcmp(o, "--log_level")) {
            level = argv[++i];
            lv = !strcmp(level, "debug")   ? LOG_LEVEL_DEBUG
                 : !strcmp(level, "info")  ? LOG_LEVEL_INFO
                 : !strcmp(level, "warn")  ? LOG_LEVEL_WARN
                 : !strcmp(level, "error") ? LOG_LEVEL_ERROR
                                           : -1;
            if (lv < 0) {
                fprintf(stderr, "funnel-serve: --log_level %s: use debug, info, warn or error\n",
                        level);
                return 2;
            }
        } else if (o[0] != '-' && !pos) {
            pos = o;
        } else {
            fprintf(stderr, "funnel-serve: unknown argument '%s' (see --help)\n", o);
            return 2;
        }
    }
    log_init("serve", -1, lv, NULL);
    if (strcmp(cmd, "serve") != 0) {
        if (!co.connect || (!strcmp(cmd, "score") && (!sc.in || !sc.out)) ||
            (!strcmp(cmd, "apply") && !pos)) {
            fprintf(stderr, "funnel-serve %s: give --connect EP%s (see --help)\n", cmd,
                    !strcmp(cmd, "score")   ? ", --in LOG and --out PRED"
                    : !strcmp(cmd, "apply") ? " and the bundle directory"
                                            : "");
            return 2;
        }
        rc = !strcmp(cmd, "score")   ? serve_client_score(&co, &sc, &eb)
             : !strcmp(cmd, "apply") ? serve_client_apply(&co, pos, stdout, &eb)
                                     : serve_client_info(&co, stdout, &eb);
        if (rc != 0) {
            fprintf(stderr, "funnel-serve %s: %s\n", cmd, eb.msg);
            return 1;
        }
        return 0;
    }
    if (!so.bundle || !so.listen || pos) {
        fprintf(stderr, "funnel-serve: give --bundle DIR and --listen EP%s%s (see --help)\n",
                pos ? "; unexpected argument " : "", pos ? pos : "");
        return 2;
    }
    so.apply = apply;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    char kernels[96];
    LOG_INFO("dense kernels: %s", dense_kernels(kernels, sizeof(kernels)));
    rc = serve_run(&so, &eb);
    if (rc != 0) {
        fprintf(stderr, "funnel-serve: %s\n", eb.msg);
        return 1;
    }
    return 0;
}
