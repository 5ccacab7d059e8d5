/*
 * auth.h - who may do what on a shard: the allow-list of client public
 * keys with their roles, the rule that decides each request, and the rule
 * that a shard reachable from other machines needs keys. funnel-serve
 * reads the same allow-list (a worker key may score, an admin key may
 * also apply bundles) and follows the same listening rule. The transport
 * side (CURVE, the ZAP handler that admits a key and names it) is zap.h;
 * this module includes no ZeroMQ header, so it is tested in process.
 *
 * THE ALLOW-LIST FILE ([ps] curve_allow). One key per line:
 *
 *     ROLE  PUBKEY_Z85  NAME  [RANKS]
 *
 *   ROLE    worker or admin.
 *   PUBKEY  the 40-character Z85 public key (the public-key value of the
 *           client's NAME.pub, made by funnel-ps keygen).
 *   NAME    a label for logs and errors ([A-Za-z0-9_.-], up to 63).
 *   RANKS   worker only, required: the sender ids (worker ranks) the key
 *           may push and record progress as, e.g. "0-3,7", or "*" for any
 *           rank (one key shared by every worker: then a worker can speak
 *           for another; give each worker its own key to rule that out).
 *
 * A line whose first non-blank character is '#' is a comment, and so is
 * the rest of a line from a word starting with '#' after NAME (not
 * before: Z85 keys may contain '#'); blank lines are skipped. A bad line, a key listed
 * twice or a duplicate name is an error naming file:line, at start.
 *
 * THE ROLES (auth_allow).
 *   worker  HELLO, PULL, ROWS_GET, STATS; PUSH and PUSH_DENSE as a sender
 *           within its RANKS, without MSG_F_ASSIGN, except one case: a
 *           dense ASSIGN while the shard's dense range is still
 *           uninitialized (rank 0's initial weights, server.h); once the
 *           range holds weights, assigning it is admin work.
 *           PROGRESS_SET and PROGRESS_GET of a rank within its RANKS.
 *   admin   everything, also SHUTDOWN, BEGIN_DAY, FLUSH, CHECKPOINT,
 *           EXPORT, row ASSIGN and dense ASSIGN.
 * A refused request gets an ERR_DENIED reply; nothing else happens.
 *
 * Thread-safety: an auth_t is read-only after auth_load(); the ZAP thread
 * and the server loop read it at the same time without locks.
 */
#ifndef FUNNEL_AUTH_H
#define FUNNEL_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/curve.h"
#include "proto/msg.h"

#define AUTH_NAME_MAX 64
#define AUTH_MAX_RANGES 32 /* rank ranges of one key */

typedef enum { AUTH_WORKER = 0, AUTH_ADMIN = 1 } auth_role_t;

typedef struct auth_key {
    auth_role_t role;
    char pub[CURVE_Z85_LEN + 1]; /* Z85 */
    char name[AUTH_NAME_MAX];
    int any_rank;                 /* RANKS "*" */
    uint32_t lo[AUTH_MAX_RANGES]; /* rank ranges, inclusive */
    uint32_t hi[AUTH_MAX_RANGES];
    int nranges;
} auth_key_t;

typedef struct auth {
    auth_key_t *keys;
    size_t n;
} auth_t;

/*
 * Read the allow-list at path. Returns 0 with *out set (release with
 * auth_destroy()), ERR_IO (cannot read it), ERR_CONFIG "path:line: ..."
 * for a bad line, or an empty list (no client could ever connect).
 */
int auth_load(auth_t **out, const char *path, errbuf_t *eb);
void auth_destroy(auth_t **a);

/* Index of the key whose Z85 public key is pub, or -1. */
long auth_find(const auth_t *a, const char *pub);

/* The key named by a ZAP User-Id (its index, as decimal text), or NULL. */
const auth_key_t *auth_key_of(const auth_t *a, const char *user_id);

/* 1 if key k may use rank r as its sender id. */
int auth_has_rank(const auth_key_t *k, uint32_t rank);

/*
 * May key k make request m? dense_initialized: the shard's dense range
 * holds weights. Returns 0, or ERR_DENIED with eb saying what was refused,
 * for which key, and what would be allowed.
 */
int auth_allow(const auth_key_t *k, const msg_t *m, int dense_initialized, errbuf_t *eb);

/* 1 if a ZeroMQ endpoint is reachable only from this machine: ipc://,
 * inproc://, tcp:// on 127.0.0.0/8, localhost or [::1]. */
int auth_endpoint_is_local(const char *endpoint);

/*
 * The start-up rule: a shard listening on anything but this machine
 * needs keys (keyed), unless insecure. Returns 0 (insecure: after a loud
 * warning) or ERR_CONFIG saying how to make keys.
 */
int auth_check_listen(const char *endpoint, int keyed, int insecure, errbuf_t *eb);

#endif
