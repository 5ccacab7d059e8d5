/*
 * gen.h - funnel-gen's job: draw impressions from the hidden world
 * (world.h) and write them as train/test logs plus the truth file of the
 * test log, in one folder or one folder per day.
 *
 * Layout of --out DIR (with --days D: DIR/day1 .. DIR/dayD, each alike):
 *   tsv1:    train.tsv  test.tsv  test.truth.tsv
 *   aliccp:  sample_skeleton_train.csv  common_features_train.csv
 *            sample_skeleton_test.csv   common_features_test.csv
 *            test.truth.tsv
 * With --gzip the logs get a .gz suffix; the truth file stays plain.
 *
 * tsv1 lines (FORMAT.md) carry exactly the default model slots, in order:
 *   click action buy  user_id:u<id> item_id:i<id> cate_id:c<id> shop_id:s<id>
 *   brand_id:b<id> position:<1..P> hour:<0..23> tag:<name>[:<weight>]...
 * Tag names: sale new hot free_ship gift limited eco premium, then t<id>.
 *
 * aliccp (Ali-CCP layout of FORMAT.md; no action column). Slot -> field id:
 *   user_id 101 (in the common-features row, keyed by a 16-hex-digit id of
 *   the user), item_id 205, cate_id 206, shop_id 207, brand_id 216,
 *   tag 210 (value = the tag's weight), position 301, hour 302 (not an
 *   Ali-CCP field). Feature ids are the numeric entity ids; values are 1.0
 *   except tags. sample_id counts from 1 in each skeleton file. A model
 *   reading it declares slots "101,205,206,207,216,210,301,302".
 *
 * Truth file: header `click action buy buy_cf pctr pcvr pctcvr pctavr`
 * (TAB-separated), one line per test impression in log order;
 * probabilities printed with 6 significant digits, never in exponent form.
 * With --relevance, test.relevance.tsv: header `relevance`, one line per
 * test impression, the true p(click) without the position effect
 * (world_relevance), printed the same way.
 *
 * Randomness: the world from (seed, world stream); each file from (seed,
 * day, split), so one split's bytes do not depend on the other's length.
 *
 * Thread-safety: gen_run() is single-threaded and owns all its state.
 */
#ifndef FUNNEL_GEN_H
#define FUNNEL_GEN_H

#include <stdint.h>

#include "common/err.h"
#include "gen/gen_conf.h"

enum { GEN_TRAIN = 0, GEN_TEST = 1 };

/* Realized counts of one split (summed over days). */
typedef struct gen_split_stats {
    uint64_t lines; /* impressions */
    uint64_t clicks;
    uint64_t actions;
    uint64_t buys;
    uint64_t buys_action; /* buys with action = 1 */
    uint64_t buys_cf;     /* counterfactual buys over all impressions */
} gen_split_stats_t;

typedef struct gen_stats {
    gen_split_stats_t split[2]; /* GEN_TRAIN, GEN_TEST */
    double seconds;             /* s, wall time of the whole run */
} gen_stats_t;

/*
 * Build the world of c and write every file under c->out (created if
 * missing). Logs progress about every 10% and a summary of realized rates
 * at INFO level. stats (may be NULL) receives the realized counts.
 * Returns 0, ERR_CONFIG (no --out), ERR_IO naming the file, ERR_NOMEM or
 * ERR_INVAL from the world, with eb filled.
 */
int gen_run(const gen_conf_t *c, gen_stats_t *stats, errbuf_t *eb);

/*
 * Write probability x (in [0, 1]) with 6 significant digits and no
 * exponent ("0.0312", "0.0000123457") into p; returns the length
 * (at most 40). Exposed for tests.
 */
int gen_format_prob(char *p, double x);

#endif
