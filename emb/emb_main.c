/*
 * emb_main.c - funnel-emb: inspect embedding tables offline (a shard's
 * data directory, a model directory or a checkpoint, opened read-only).
 *
 *   funnel-emb stats DIR [--slot S] [--json]
 *   funnel-emb get   DIR SLOT:VALUE|KEY... [--keys FILE] [--json]
 *   funnel-emb get   --ps EP0,EP1,... SLOT:VALUE... [--json]
 *                    [--curve_server_key SHARD.pub --curve_secret_key CLIENT.key]
 *   funnel-emb top   DIR [--by count|norm|age] [--slot S] [-n N] [--keys FILE] [--json]
 *   funnel-emb dump  DIR [--slot S] [--format tsv|jsonl] [--keys FILE]
 *   funnel-emb diff  DIR_A DIR_B [--json]
 *   funnel-emb export CKPT [--since PREV_CKPT] --out FILE [--json]
 *   funnel-emb apply BASE_EXPORT DELTA_EXPORT --out FILE [--json]
 *   funnel-emb export-dump FILE
 *   funnel-emb reshard --from CKPT --shards M --out DIR [--json]
 *   funnel-emb bundle SRC --out DIR [--since PREV]
 *
 * A table with META (model directory, checkpoint) names its own slots and
 * dims; a bare store takes them from the [model] configuration (--conf FILE
 * and --key value), which may otherwise only repeat them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/meta.h"
#include "common/ps_conf.h"
#include "emb/emb_bundle.h"
#include "emb/emb_online.h"
#include "emb/emb_reshard.h"
#include "emb/emb_tool.h"

#define MAX_ARGS 1024

static void usage(FILE *out)
{
    fprintf(out,
            "usage: funnel-emb COMMAND DIR [args] [options]\n\n"
            "Inspect an embedding table offline: DIR is a shard's data directory, a model\n"
            "directory (train --model) or a checkpoint; it is opened read-only, so this is\n"
            "safe beside a running shard (rows as of its last flush).\n\n"
            "commands:\n"
            "  stats DIR                       rows per slot, bytes per row, update-count and\n"
            "                                  age histograms\n"
            "  get DIR SLOT:VALUE|KEY...       a row's embedding, optimizer state, update count,\n"
            "                                  first/last day - or why there is none\n"
            "  get --ps EP0,EP1 SLOT:VALUE...  the same from a live cluster, with the reason a\n"
            "                                  key has no row (never seen, seen N times but not\n"
            "                                  admitted, expired on day D); a keyed cluster\n"
            "                                  also needs --curve_server_key SHARD.pub and\n"
            "                                  --curve_secret_key CLIENT.key (as [cluster])\n"
            "  top DIR [--by count|norm|age] [-n N]\n"
            "                                  rows with the most updates, largest norm, oldest\n"
            "  dump DIR [--format tsv|jsonl]   every row\n"
            "  diff DIR_A DIR_B                rows added, removed, changed; L2 change per slot\n"
            "  export CKPT --out FILE          the serving export: every row's embedding (a\n"
            "                                  full export; docs/export-format.md)\n"
            "  export CKPT --since PREV --out FILE\n"
            "                                  the delta since the checkpoint PREV: rows created\n"
            "                                  or changed, and a delete for each row gone\n"
            "  apply BASE DELTA --out FILE     apply a delta export to a full export, giving\n"
            "                                  the full export of the delta's day\n"
            "  export-dump FILE                an export's header and records as text\n"
            "  reshard --from CKPT --shards M --out DIR\n"
            "                                  the checkpoint as one of M shards, for\n"
            "                                  funnel-ps --init_from (reshard --help)\n"
            "  bundle SRC --out DIR [--since PREV]\n"
            "                                  the serving bundle of funnel-serve (bundle\n"
            "                                  --help)\n\n"
            "options: --slot S (one slot), --json, --day D (current day for ages; default:\n"
            "the latest day in the table), --keys FILE (get, top, dump: show the value a\n"
            "key was hashed from, e.g. item_id:i42, using the key dictionary that\n"
            "funnel-worker check-data or train wrote with --key_dict FILE), --conf FILE and\n"
            "any [model] key (a table with META gives its own slots and dims, and a key\n"
            "that contradicts them is an error). export takes the slots and day from the\n"
            "checkpoint's META; only a bare store directory without META needs --conf (and\n"
            "--day for the day recorded).\n");
}

int main(int argc, char **argv)
{
    static ps_conf_t conf;
    static conf_given_t given; /* keys the user set: the rest may come from META */
    meta_t meta = {0};
    emb_tool_args_t a = {.n = 10, .day = -1};
    const char *online = NULL, *server_pub = "", *self_key = "";
    char *rest[MAX_ARGS], *pos[MAX_ARGS];
    int nrest = 0, npos = 0, help = 0, rc;
    model_spec_t ms;
    errbuf_t eb = {{0}};

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "reshard")) { /* its own options: no [model] config needed */
        log_init("emb", -1, LOG_LEVEL_WARN, NULL);
        return emb_reshard_cli(argc - 1, argv + 1, stdout, stderr);
    }
    if (!strcmp(argv[1], "bundle")) { /* its own options, as reshard */
        log_init("emb", -1, LOG_LEVEL_WARN, NULL);
        return emb_bundle_cli(argc - 1, argv + 1, stdout, stderr);
    }
    a.cmd = argv[1];
    for (int i = 2; i < argc && nrest < MAX_ARGS; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--json")) {
            a.json = 1;
        } else if ((!strcmp(o, "--slot") || !strcmp(o, "--by") || !strcmp(o, "-n") ||
                    !strcmp(o, "--format") || !strcmp(o, "--day") || !strcmp(o, "--out") ||
                    !strcmp(o, "--since") || !strcmp(o, "--curve_server_key") ||
                    !strcmp(o, "--curve_secret_key") || !strcmp(o, "--keys")) &&
                   !v) {
            fprintf(stderr, "funnel-emb: %s needs a value\n", o);
            return 2;
        } else if (!strcmp(o, "--ps") && v) {
            online = argv[++i];
        } else if (!strcmp(o, "--curve_server_key")) {
            server_pub = argv[++i]; /* not [ps] curve_secret_key: this is the client's */
        } else if (!strcmp(o, "--curve_secret_key")) {
            self_key = argv[++i];
        } else if (!strcmp(o, "--slot")) {
            a.slot = argv[++i];
        } else if (!strcmp(o, "--by")) {
            a.by = argv[++i];
        } else if (!strcmp(o, "-n")) {
            a.n = strtol(argv[++i], NULL, 10);
        } else if (!strcmp(o, "--out")) {
            a.out = argv[++i];
        } else if (!strcmp(o, "--since")) {
            a.since = argv[++i];
        } else if (!strcmp(o, "--keys")) {
            a.keys = argv[++i];
        } else if (!strcmp(o, "--day")) {
            a.day = (int)strtol(argv[++i], NULL, 10);
        } else if (!strcmp(o, "--format")) {
            const char *f = argv[++i];
            if (strcmp(f, "tsv") && strcmp(f, "jsonl")) {
                fprintf(stderr, "funnel-emb: --format %s: use tsv or jsonl\n", f);
                return 2;
            }
            a.json = !strcmp(f, "jsonl");
        } else {
            rest[nrest++] = argv[i];
        }
    }
    rc = conf_parse_args_given(&ps_conf_schema, &conf, &given, nrest, rest, pos, MAX_ARGS, &npos,
                               &help, &eb);
    if (help) {
        usage(stdout);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "funnel-emb %s: %s\n", a.cmd, eb.msg);
        return 2;
    }
    log_init("emb", -1, LOG_LEVEL_WARN, NULL);
    if (a.keys && strcmp(a.cmd, "get") && strcmp(a.cmd, "top") && strcmp(a.cmd, "dump")) {
        fprintf(stderr, "funnel-emb %s: --keys works with get, top and dump\n", a.cmd);
        return 2;
    }
    if (online) {
        if (strcmp(a.cmd, "get") != 0) {
            fprintf(stderr,
                    "funnel-emb %s: --ps works with get; for a live cluster's counters "
                    "use funnel-worker ctl stats --ps ...\n",
                    a.cmd);
            return 2;
        }
        rc = model_spec_from_conf(&ms, &conf.model, &eb);
        if (rc == 0)
            rc = emb_online_get(&ms, online, server_pub, self_key, pos, npos, a.json, stdout, &eb);
        if (rc < 0) {
            fprintf(stderr, "funnel-emb get: %s\n", eb.msg);
            return 1;
        }
        return rc;
    }
    if (npos < 1) {
        fprintf(stderr, "funnel-emb %s: give the table directory (see --help)\n", a.cmd);
        return 2;
    }
    a.dir = pos[0];
    a.args = pos + 1;
    a.nargs = npos - 1;
    rc = meta_read(a.dir, &meta, &eb); /* a saved table carries its slots and dims */
    if (rc == 0)
        rc = meta_apply_conf(&meta, a.dir, &ps_conf_schema, &conf, &given, &eb);
    else if (rc == ERR_NOTFOUND || rc == ERR_IO) /* a bare store or a file: the configuration */
        rc = 0;                                  /* names the slots */
    if (rc == 0)
        rc = model_spec_from_conf(&ms, &conf.model, &eb);
    if (rc == 0 && meta.nslots > 0) { /* given dims must be the table's too */
        meta_t running;
        meta_from_spec(&running, &ms, 0, 0, 0);
        rc = meta_check(&meta, &running, a.dir, &eb);
    }
    if (rc == 0)
        rc = emb_tool_run(&ms, &a, stdout, &eb);
    if (rc < 0) {
        fprintf(stderr, "funnel-emb %s: %s\n", a.cmd, eb.msg);
        return 1;
    }
    return rc;
}
