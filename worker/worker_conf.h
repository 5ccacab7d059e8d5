/*
 * worker_conf.h - every key funnel-worker reads: the shared [model]
 * section plus [data], [train] and [cluster]. The one X-macro list below
 * builds the struct and the key table (worker_conf.c) that drive parsing,
 * validation, --help and the start-up dump.
 */
#ifndef FUNNEL_WORKER_CONF_H
#define FUNNEL_WORKER_CONF_H

#include "common/conf.h"
#include "common/model_conf.h"

/* X(section, name, TYPE, default, min, max, choices, help) */
#define WORKER_CONF_KEYS(X)                                                                      \
    X(data, format, ENUM, "tsv1", 0, 0, "tsv1|aliccp",                                           \
      "log format: tsv1, or aliccp (pass skeleton and common_features* files, any order)")       \
    X(data, strict, BOOL, "false", 0, 0, NULL, "make any rejected log line fatal")               \
    X(data, report_rejects, INT, "5", 0, 1000000, NULL,                                          \
      "rejected lines reported individually (file:line: reason) before only counting")           \
    X(data, allow_empty, BOOL, "false", 0, 0, NULL,                                              \
      "read an empty log file as no rows instead of refusing it (--allow-empty)")                \
    X(data, key_dict, STR, "", 0, 0, NULL,                                                       \
      "check-data, train in process: write which value each key hashes (funnel-emb --keys)")     \
    X(data, key_dict_max, INT, "1000000", 1, 1e9, NULL,                                          \
      "keys the key dictionary holds at most (the first seen; about 40 bytes each)")             \
    X(train, batch_size, INT, "512", 1, 1048576, NULL, "impressions per training batch")         \
    X(train, epochs, INT, "1", 1, 10000, NULL, "passes over the training logs")                  \
    X(train, threads, INT, "2", 1, 256, NULL, "compute threads (BLAS + data-parallel batches)")  \
    X(train, parallel, ENUM, "towers", 0, 0, "blas|towers",                                      \
      "how threads split the towers: whole towers per thread, or each sgemm across threads")     \
    X(train, dense_precision, ENUM, "fp32", 0, 0, "fp32|bf16",                                   \
      "precision of the dense products: fp32, or bf16 inputs with fp32 accumulation and fp32 "   \
      "weights (oneDNN; fastest where the CPU has AMX or AVX512-BF16)")                          \
    X(train, dense_gemm, ENUM, "onednn", 0, 0, "onednn|openblas",                                \
      "library of the fp32 dense products: oneDNN (picks the CPU's AVX-512 or AVX2 kernels "     \
      "itself; faster at the towers' shapes) or OpenBLAS")                                       \
    X(train, seed, INT, "1", 0, 9.2e18, NULL, "seed of the dense weight initialization")         \
    X(train, metrics_file, STR, "", 0, 0, NULL,                                                  \
      "JSON-lines metrics (one record per interval); empty: MODEL.metrics.jsonl beside the "     \
      "model directory, on a cluster metrics-worker<rank>.jsonl in the current directory")       \
    X(train, metrics_interval, FLOAT, "5", 0.01, 86400, NULL, "seconds between metric records")  \
    X(train, progress, ENUM, "auto", 0, 0, "auto|on|off|plain",                                  \
      "progress on stderr: on a live line, plain a line per progress_interval (auto: live on a " \
      "terminal, else plain)")                                                                   \
    X(train, log_level, ENUM, "info", 0, 0, "debug|info|warn|error", "least severe log level")   \
    /* live metrics (Prometheus, obs/) */                                                        \
    X(train, metrics_listen, STR, "", 0, 0, NULL,                                                \
      "serve /metrics over HTTP on PORT (127.0.0.1) or HOST:PORT, no auth (empty: off)")         \
    X(cluster, ps, STR, "", 0, 0, NULL,                                                          \
      "shard endpoints in shard order: a comma list, @FILE or tcp://h-{0..3}:7700 (empty: "      \
      "FUNNEL_PS, else train in process)")                                                       \
    X(cluster, rank, INT, "0", 0, 65535, NULL,                                                   \
      "this worker's rank, 0..workers-1 (unset: from the cluster manager, README)")              \
    X(cluster, workers, INT, "1", 1, 65536, NULL,                                                \
      "number of workers splitting the input (unset: from the cluster manager)")                 \
    X(cluster, max_inflight, INT, "4", 1, 1024, NULL,                                            \
      "batches whose pushes may still be unacknowledged (staleness bound)")                      \
    X(cluster, timeout_ms, INT, "5000", 10, 3600000, NULL, "per-request timeout before a retry") \
    X(cluster, deadline_s, INT, "60", 1, 86400, NULL,                                            \
      "a shard unreachable for this long ends the worker with an error")                         \
    X(cluster, curve_server_key, STR, "", 0, 0, NULL,                                            \
      "the shards' public key file (their NAME.pub): with curve_secret_key, talk CURVE "         \
      "(empty: plain)")                                                                          \
    X(cluster, curve_secret_key, STR, "", 0, 0, NULL,                                            \
      "this client's key pair file (NAME.key of funnel-ps keygen, mode 0600; its public key "    \
      "in the shards' curve_allow)")                                                             \
    /* bytes on the wire (issue 13): 16-bit rows and gradients */                                \
    X(cluster, wire_fp16, BOOL, "false", 0, 0, NULL,                                             \
      "pull rows and dense weights as fp16, push gradients as bf16 (half the bytes; shards "     \
      "keep fp32)")                                                                              \
    /* slot checks (check-data, train): slot mistakes are loud */                                \
    X(data, allow_unknown_slots, BOOL, "false", 0, 0, NULL,                                      \
      "check-data and train accept tokens of slots 'slots' does not declare (ignored)")          \
    X(data, allow_unused_slots, BOOL, "false", 0, 0, NULL,                                       \
      "check-data and train accept declared slots that have no token in the log")                \
    X(data, slot_check_rows, INT, "4096", 0, 1e12, NULL,                                         \
      "train checks the slots against the log after this many rows of its input (0: never)")     \
    /* progress and metrics (issue 12): held-out evaluation into the metrics file */             \
    X(train, valid, STR, "", 0, 0, NULL,                                                         \
      "held-out logs LOG[,LOG] scored every valid_every samples (AUC, log-loss per task) into "  \
      "the metrics file; on a cluster rank 0 does it (empty: none)")                             \
    X(train, valid_every, INT, "100000", 1, 1e15, NULL,                                          \
      "samples between held-out evaluations (--valid); one more at the end")                     \
    X(train, progress_interval, FLOAT, "10", 0.01, 86400, NULL,                                  \
      "seconds between plain progress lines (progress = plain, or auto off a terminal)")         \
    /* sample weights and pairwise loss (issue 15): README "Weights and pairwise loss" */        \
    X(train, label_weights, STR, "", 0, 0, NULL,                                                 \
      "weight of a positive of each label, e.g. click:1,action:1,buy:5 (a row takes the "        \
      "largest of its positive labels', times its @w; empty: all 1)")                            \
    X(train, pairwise_task, ENUM, "none", 0, 0, "none|click|buy",                                \
      "BPR loss within each request (@req) ranking pctr (click) or pctcvr (buy); none: off")     \
    X(train, pairwise_weight, FLOAT, "1", 0, 1e6, NULL,                                          \
      "weight of the pairwise loss beside the pointwise losses (loss_weights 0 leave it alone)") \
    /* position bias (issue 15): README "Position bias" */                                       \
    X(train, with_bias, BOOL, "false", 0, 0, NULL,                                               \
      "predict and --valid: add the bias tower's logit to pctr (the biased click probability "   \
      "of training); false: leave it out (needs bias_slots)")

typedef struct worker_conf {
    model_conf_t model;
    WORKER_CONF_KEYS(CONF_FIELD)
    conf_given_t given; /* keys a file or an option set (layout from META) */
} worker_conf_t;

/* The worker's key table ([model] + worker sections). */
extern const conf_schema_t worker_conf_schema;

struct reader_opts;

/* Reader options from [data] (and, with split, this rank's share of the
 * input per [cluster]; without, the whole input). */
void worker_conf_reader_opts(const worker_conf_t *wc, int split, struct reader_opts *o);

/*
 * The label weights of 'label_weights' into lw (click, action, buy; 1 for
 * a label not named). Returns 0 or ERR_CONFIG saying which item is wrong.
 */
int worker_conf_label_weights(const worker_conf_t *wc, float lw[3], errbuf_t *eb);

#endif
