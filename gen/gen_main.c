/*
 * gen_main.c - funnel-gen: parse the command line and config, set up the
 * logger, and run the generator (gen_run). Everything else is in gen.c.
 *
 *   funnel-gen --out DIR --train N --test N [--seed S] [--days D] [--gzip]
 *              [--format tsv1|aliccp] [--conf FILE] [--<key> value ...]
 */
#include <stdio.h>

#include "common/conf.h"
#include "common/log.h"
#include "gen/gen.h"
#include "gen/gen_conf.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: funnel-gen --out DIR [--train N] [--test N] [--seed S] [--days D] [--gzip]\n"
            "                  [--format tsv1|aliccp] [--conf FILE] [--<key> value ...]\n"
            "\n"
            "Writes synthetic click/action/buy logs whose true probabilities are known:\n"
            "DIR/train.tsv, DIR/test.tsv and DIR/test.truth.tsv (with --days D one folder\n"
            "DIR/dayN per day, with drifting items), and with --relevance true\n"
            "DIR/test.relevance.tsv (p(click) without the position effect). Same seed, same\n"
            "bytes.\n\n");
}

int main(int argc, char **argv)
{
    gen_conf_t c;
    errbuf_t eb;
    char *pos[1];
    int npos, help, rc;

    log_init("gen", -1, LOG_LEVEL_INFO, NULL);
    rc = conf_parse_args(&gen_conf_schema, &c, argc - 1, argv + 1, pos, 0, &npos, &help, &eb);
    if (rc != 0) {
        fprintf(stderr, "funnel-gen: %s\n", eb.msg);
        return 2;
    }
    if (help) {
        usage(stdout);
        conf_print_help(&gen_conf_schema, stdout);
        return 0;
    }
    log_init("gen", -1, c.log_level, NULL);
    conf_log_effective(&gen_conf_schema, &c);
    rc = gen_run(&c, NULL, &eb);
    if (rc != 0) {
        LOG_ERROR("%s", eb.msg);
        return 1;
    }
    return 0;
}
