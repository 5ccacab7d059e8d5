/*
 * gen_conf.h - every key funnel-gen reads: the [gen] section. The one
 * X-macro list below builds the struct and the key table (gen_conf.c) that
 * drive parsing, validation, `--key value` overrides, --help, the start-up
 * dump and the shipped conf/gen.conf.
 *
 * The keys fall in four groups: what to write (out, train, test, days,
 * format, gzip, seed), the size of the world (users, items, ...), the
 * target rates the intercepts are calibrated to, and the effects the
 * models exist for, each with a switch for ablations (clickbait,
 * action_informative, shared_latents). world.h describes the equations.
 */
#ifndef FUNNEL_GEN_CONF_H
#define FUNNEL_GEN_CONF_H

#include "common/conf.h"

/* X(section, name, TYPE, default, min, max, choices, help) */
#define GEN_CONF_KEYS(X)                                                                           \
    X(gen, out, STR, "", 0, 0, NULL, "output directory, created if missing (required)")            \
    X(gen, train, INT, "2000000", 0, 1e12, NULL, "training impressions (per day with --days)")     \
    X(gen, test, INT, "500000", 0, 1e12, NULL,                                                     \
      "test impressions (per day with --days); the truth file has one line per test line")         \
    X(gen, seed, INT, "1", 0, 9.2e18, NULL,                                                        \
      "seed of the world and of every log: same seed, same bytes")                                 \
    X(gen, days, INT, "0", 0, 10000, NULL,                                                         \
      "0: one train/test pair in --out; D > 0: folders day1..dayD with drifting items")            \
    X(gen, format, ENUM, "tsv1", 0, 0, "tsv1|aliccp",                                              \
      "tsv1 (train.tsv, test.tsv) or aliccp (sample_skeleton_*.csv + common_features_*.csv)")      \
    X(gen, gzip, BOOL, "false", 0, 0, NULL,                                                        \
      "gzip the train and test logs (name + .gz); the truth file stays plain text")                \
    X(gen, users, INT, "100000", 1, 20000000, NULL, "users (Zipf activity over user ids)")         \
    X(gen, items, INT, "50000", 1, 5000000, NULL,                                                  \
      "items in the catalog (over all days with --days)")                                          \
    X(gen, categories, INT, "500", 1, 1000000, NULL, "item categories (slot cate_id)")             \
    X(gen, shops, INT, "2000", 1, 1000000, NULL, "shops (slot shop_id)")                           \
    X(gen, brands, INT, "1000", 1, 1000000, NULL, "brands (slot brand_id)")                        \
    X(gen, tags, INT, "100", 1, 65535, NULL, "tag vocabulary (multi-valued weighted slot tag)")    \
    X(gen, max_tags, INT, "3", 0, 4, NULL, "tags per item: 1..max_tags (0: no tag slot)")          \
    X(gen, positions, INT, "10", 1, 1000, NULL, "display positions 1..N (slot position)")          \
    X(gen, latent_dim, INT, "8", 2, 64, NULL,                                                      \
      "dimension of the hidden user/item factors (first half: action path, second half: "          \
      "buy path of the uninformative-action ablation)")                                            \
    X(gen, item_zipf, FLOAT, "1.1", 0, 4, NULL,                                                    \
      "item popularity exponent: p(rank r) ~ (r + item_zipf_offset)^-item_zipf")                   \
    X(gen, item_zipf_offset, FLOAT, "10", 0, 1e6, NULL,                                            \
      "Zipf-Mandelbrot offset flattening the head of the item popularity")                         \
    X(gen, user_zipf, FLOAT, "0.9", 0, 4, NULL,                                                    \
      "user activity exponent: p(rank r) ~ r^-user_zipf")                                          \
    X(gen, ctr, FLOAT, "0.05", 1e-4, 0.9, NULL,                                                    \
      "target mean p(click) (calibrates the click intercept)")                                     \
    X(gen, action_rate, FLOAT, "0.15", 1e-4, 0.99, NULL, "target p(action | click) (ESM2's y2)")   \
    X(gen, buy_action_rate, FLOAT, "0.15", 1e-5, 0.99, NULL, "target p(buy | action) (ESM2's y3)") \
    X(gen, buy_noaction_rate, FLOAT, "0.003", 1e-6, 0.99, NULL,                                    \
      "target p(buy | click, no action) (ESM2's y4); far below buy_action_rate by default")        \
    X(gen, position_bias, FLOAT, "0.8", 0, 10, NULL,                                               \
      "the click logit falls by this times ln(position)")                                          \
    X(gen, click_affinity, FLOAT, "0.6", 0, 10, NULL,                                              \
      "weight of the user-item affinity (all latent dims) in the click logit")                     \
    X(gen, conv_affinity, FLOAT, "0.9", 0, 10, NULL,                                               \
      "weight of the user-item affinity (half of the latent dims) in the conversion logits")       \
    X(gen, quality_corr, FLOAT, "0.5", -1, 1, NULL,                                                \
      "correlation of an item's click appeal and its conversion value (shared quality; "           \
      "clickbait items break it); used only with shared_latents")                                  \
    X(gen, noise, FLOAT, "0.5", 0, 5, NULL,                                                        \
      "std of unobservable per-impression noise in each logit (integrated out in the truth)")      \
    X(gen, clickbait, BOOL, "true", 0, 0, NULL,                                                    \
      "selection bias: clickbait items and top positions attract clicks that convert less")        \
    X(gen, clickbait_frac, FLOAT, "0.1", 0, 1, NULL,                                               \
      "fraction of shops that are clickbait shops (80% of their items are clickbait, 2% of "       \
      "other items)")                                                                              \
    X(gen, clickbait_click, FLOAT, "1", 0, 10, NULL,                                               \
      "click logit boost of a clickbait item (times its strength, uniform in [0.5, 1.5])")         \
    X(gen, clickbait_conv, FLOAT, "1.5", 0, 10, NULL,                                              \
      "action and buy logit penalty of a clickbait item (times its strength)")                     \
    X(gen, position_intent, FLOAT, "0.3", 0, 10, NULL,                                             \
      "with clickbait: the conversion logit rises by this times ln(position) (clicks at the "      \
      "top are more casual)")                                                                      \
    X(gen, action_informative, BOOL, "true", 0, 0, NULL,                                           \
      "buys mostly follow actions (y3 >> y4); false: y3 == y4 with its own hidden factors, "       \
      "so the action label tells nothing about buys")                                              \
    X(gen, shared_latents, BOOL, "true", 0, 0, NULL,                                               \
      "conversion heads use the user/item factors of the click head; false: independent "          \
      "factors and quality_corr is ignored (shared embeddings stop helping)")                      \
    X(gen, drift, FLOAT, "0.1", 0, 1, NULL,                                                        \
      "with --days: expected fraction of the live catalog that leaves (and is replaced by "        \
      "new items) each day")                                                                       \
    X(gen, calib_samples, INT, "200000", 1000, 100000000, NULL,                                    \
      "impressions sampled at start-up to solve the intercepts for the target rates")              \
    /* task conflict (issue 15) */                                                                 \
    X(gen, task_corr, FLOAT, "-1", -1, 1, NULL,                                                    \
      "correlation of the click and conversion drivers (MMoE's synthetic study: 1, 0.5, 0); "      \
      "below 0: off, today's world")                                                               \
    X(gen, log_level, ENUM, "info", 0, 0, "debug|info|warn|error", "least severe log level")       \
    /* sample weights and request ids (issue 15): FORMAT.md's optional tsv1 fields */              \
    X(gen, weights, FLOAT, "0", 0, 1e6, NULL,                                                      \
      "tsv1: 0 writes no sample weight; W > 0 gives every line a @w field, W on lines with a "     \
      "buy and 1 on the others")                                                                   \
    X(gen, request_size, INT, "0", 0, 1000000, NULL,                                               \
      "tsv1: 0 writes no request id; N > 0 gives each run of N consecutive lines one @req id "     \
      "(a request of N independent impressions)")                                                  \
    /* position bias (issue 15) */                                                                 \
    X(gen, relevance, BOOL, "false", 0, 0, NULL,                                                   \
      "also write test.relevance.tsv: per test line the true p(click) without the position "       \
      "effect (as if at position 1), the target of a position-debiased model")

enum { GEN_FORMAT_TSV1 = 0, GEN_FORMAT_ALICCP = 1 };

typedef struct gen_conf {
    GEN_CONF_KEYS(CONF_FIELD)
} gen_conf_t;

/* funnel-gen's key table ([gen]). */
extern const conf_schema_t gen_conf_schema;

#endif
