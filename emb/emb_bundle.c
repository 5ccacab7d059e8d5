/*
 * emb_bundle.c - the bundle command of funnel-emb. See emb_bundle.h.
 */
#include "emb/emb_bundle.h"

#include <string.h>

#include "common/err.h"
#include "table/bundle.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: funnel-emb bundle SRC --out DIR [--since PREV]\n\n"
                 "Write the serving bundle of SRC (a model directory or a checkpoint of any\n"
                 "shard count) to the new directory DIR: MANIFEST, META, dense.bin (the towers),\n"
                 "full.emb (every row) and, with --since PREV (the previous day's checkpoint,\n"
                 "same shard count and slots), delta.emb (rows changed since PREV and deletes).\n"
                 "DIR is written as DIR.tmp and renamed, and never overwritten. funnel-serve\n"
                 "loads a bundle and applies the next one's delta live; docs/BUNDLE.md is the\n"
                 "format.\n");
}

int emb_bundle_cli(int argc, char **argv, FILE *out, FILE *err)
{
    const char *src = NULL, *dir = NULL, *prev = NULL;
    bundle_stats_t st;
    errbuf_t eb = {{0}};

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(out);
            return 0;
        } else if (!v && (!strcmp(o, "--out") || !strcmp(o, "--since"))) {
            fprintf(err, "funnel-emb bundle: %s needs a value (see --help)\n", o);
            return 2;
        } else if (!strcmp(o, "--out")) {
            dir = argv[++i];
        } else if (!strcmp(o, "--since")) {
            prev = argv[++i];
        } else if (o[0] != '-' && !src) {
            src = o;
        } else {
            fprintf(err, "funnel-emb bundle: unknown argument '%s' (see --help)\n", o);
            return 2;
        }
    }
    if (!src || !dir) {
        fprintf(err, "funnel-emb bundle: give the model directory or checkpoint and --out DIR "
                     "(see --help)\n");
        return 2;
    }
    if (bundle_write(src, prev, dir, &st, &eb) != 0) {
        fprintf(err, "funnel-emb bundle: %s\n", eb.msg);
        return 1;
    }
    fprintf(out,
            "bundle %s written from %s%s%s: %llu rows, delta %llu puts %llu deletes, %llu bytes, "
            "%.2f s\n",
            dir, src, prev ? " since " : "", prev ? prev : "", (unsigned long long)st.rows,
            (unsigned long long)st.delta_puts, (unsigned long long)st.delta_deletes,
            (unsigned long long)st.bytes, st.seconds);
    return 0;
}
