/*
 * ps_conf.h - every key funnel-ps reads: the shared [model] section (so a
 * shard and its workers agree on the table layout) plus [ps]. One X-macro
 * list builds the struct and the key table (ps_conf.c).
 */
#ifndef FUNNEL_PS_CONF_H
#define FUNNEL_PS_CONF_H

#include "common/conf.h"
#include "common/model_conf.h"

/* X(section, name, TYPE, default, min, max, choices, help) */
#define PS_CONF_KEYS(X)                                                                  \
    X(ps, shard, INT, "0", 0, 65535, NULL, "this shard's index, 0..shards-1")            \
    X(ps, shards, INT, "1", 1, 65536, NULL, "number of shards in the cluster")           \
    X(ps, listen, STR, "tcp://127.0.0.1:7700", 0, 0, NULL,                               \
      "ZeroMQ endpoint to serve on (tcp://HOST:PORT or ipc://PATH)")                     \
    X(ps, curve_secret_key, STR, "", 0, 0, NULL,                                         \
      "this shard's CURVE key pair (NAME.key of funnel-ps keygen); empty: no keys")      \
    X(ps, curve_allow, STR, "", 0, 0, NULL,                                              \
      "allow-list of client keys, lines ROLE PUBKEY NAME [RANKS] (README)")              \
    X(ps, insecure, BOOL, "false", 0, 0, NULL,                                           \
      "serve without keys on an address other machines reach (a loud warning)")          \
    X(ps, data, STR, "ps-data", 0, 0, NULL,                                              \
      "directory of this shard's RocksDB store (made if missing)")                       \
    X(ps, mem_limit, SIZE, "0", 0, 1.8e19, NULL,                                         \
      "bytes of resident rows; beyond it cold rows go to `spill` (0: unlimited)")        \
    X(ps, spill, ENUM, "file", 0, 0, "file|store",                                       \
      "rows beyond mem_limit: an unlinked file in DATA (file) or RocksDB (store)")       \
    X(ps, flush_interval, FLOAT, "10", 0.05, 86400, NULL,                                \
      "seconds between writes of dirty rows to RocksDB: the most a crash can lose")      \
    X(ps, max_msg_size, SIZE, "256M", 1024, 1.8e19, NULL,                                \
      "largest request accepted; bigger ones are refused before allocation")             \
    X(ps, day, INT, "0", 0, 65535, NULL, "current day number (first/last-seen, expiry)") \
    X(ps, init_from, STR, "", 0, 0, NULL, "start from this checkpoint directory")        \
    X(ps, max_senders, INT, "4096", 1, 1048576, NULL,                                    \
      "most senders (workers, tools) recorded; a new one beyond is refused")             \
    X(ps, sender_idle_s, INT, "86400", 1, 31536000, NULL,                                \
      "s without a push before a sender may expire; keep above deadline_s")              \
    X(ps, checkpoint_root, STR, "", 0, 0, NULL,                                          \
      "CHECKPOINT writes ROOT/NAME/shard-I here, never elsewhere "                       \
      "(empty: DATA/../checkpoints)")                                                    \
    X(ps, max_rows, INT, "10000000", 0, 1e15, NULL,                                      \
      "rows this shard may hold; requests that would create more get ERROR "             \
      "(0: no limit)")                                                                   \
    X(ps, max_new_rows, INT, "262144", 0, 1e15, NULL,                                    \
      "new rows one PULL or PUSH may create; more gets ERROR (0: no limit)")             \
    /* live metrics (Prometheus, obs/) */                                                \
    X(ps, metrics_listen, STR, "", 0, 0, NULL,                                           \
      "serve /metrics over HTTP on PORT (127.0.0.1) or HOST:PORT, no auth "              \
      "(empty: off)")                                                                    \
    X(ps, log_level, ENUM, "info", 0, 0, "debug|info|warn|error", "least severe log level")

enum { PS_SPILL_FILE = 0, PS_SPILL_STORE = 1 }; /* [ps] spill */

typedef struct ps_conf {
    model_conf_t model;
    PS_CONF_KEYS(CONF_FIELD)
} ps_conf_t;

extern const conf_schema_t ps_conf_schema;

#endif
