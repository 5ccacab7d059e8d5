/*
 * cluster_env.h - who this process is in a cluster, when the cluster
 * manager says so: a worker's rank and worker count, a shard's index and
 * shard count, and the shard endpoints, taken from the first source that
 * sets them. It reads an environment given as an array (environ, or a
 * test's own), never the process's directly, and sets nothing it was not
 * asked about.
 *
 * Precedence (first that sets a value wins; rank and count each on its own):
 *
 *   worker rank / workers   --rank/--workers > config [cluster] rank/workers
 *                           > FUNNEL_RANK/FUNNEL_WORKERS
 *                           > OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE (Open MPI)
 *                           > SLURM_PROCID/SLURM_NTASKS (Slurm)
 *                           > JOB_COMPLETION_INDEX (Kubernetes Indexed Job; no count:
 *                             the count must come from a source above)
 *   shard index / shards    --shard/--shards > config [ps] shard/shards
 *                           > FUNNEL_SHARD/FUNNEL_SHARDS
 *                           > the hostname's ordinal (funnel-ps-3 -> 3), only in a
 *                             Kubernetes pod (KUBERNETES_SERVICE_HOST set)
 *   shard endpoints         --ps > config [cluster] ps > FUNNEL_PS
 *
 * An endpoint list is a comma list, "@FILE" (the file holds the list, items
 * separated by commas or newlines, '#' starts a comment), and any item may
 * hold one range "{A..B}" (A <= B, decimal) standing for B-A+1 items, e.g.
 * tcp://funnel-ps-{0..3}.funnel-ps:7700 is four endpoints in shard order.
 *
 * Thread-safety: pure functions of their arguments (and, for "@FILE" and
 * gethostname(), the file system and the kernel).
 */
#ifndef FUNNEL_CLUSTER_ENV_H
#define FUNNEL_CLUSTER_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/err.h"

#define CLUSTER_SAID_MAX 512
#define CLUSTER_RANGE_MAX 65536 /* items one {A..B} may stand for */

/* The process environment (POSIX leaves its declaration to programs); mains
 * pass it to the functions below, which never read it themselves. */
extern char **environ;

/* What was resolved, and from where: one line for the start-up log. */
typedef struct cluster_said {
    char line[CLUSTER_SAID_MAX];
} cluster_said_t;

/* The value of NAME in env (NULL-terminated "NAME=VALUE" strings), or NULL
 * when env is NULL or NAME is unset. */
const char *cluster_env_get(char *const *env, const char *name);

/*
 * A worker's rank and worker count. *rank and *workers hold the values
 * parsed from flags or config; rank_from / workers_from say where those came
 * from (conf_key_from()). A value that came from the default is replaced by
 * the first environment source that sets it. Then 0 <= rank < workers must
 * hold. Returns 0 and fills said, or ERR_CONFIG naming the variable or
 * option, its value and what to change.
 */
int cluster_env_worker(char *const *env, conf_from_t rank_from, conf_from_t workers_from,
                       int64_t *rank, int64_t *workers, cluster_said_t *said, errbuf_t *eb);

/*
 * A shard's index and shard count, the same way (sources above). hostname
 * is this machine's name (NULL: gethostname()); its ordinal is used only in
 * a Kubernetes pod. Returns 0 and fills said, or ERR_CONFIG.
 */
int cluster_env_shard(char *const *env, const char *hostname, conf_from_t shard_from,
                      conf_from_t shards_from, int64_t *shard, int64_t *shards,
                      cluster_said_t *said, errbuf_t *eb);

/*
 * The shard endpoints: ps (len bytes, NUL-terminated) holds the list from
 * flags or config (ps_from says which); from the default (empty) it is
 * taken from FUNNEL_PS. The list is then expanded in place (comma list,
 * @FILE, {A..B}); an empty list stays empty (train in process). Returns the
 * number of endpoints (0: none) and fills said (NULL: not wanted), or
 * ERR_CONFIG / ERR_IO / ERR_TOOBIG
 * naming the source, the item and what was expected.
 */
int cluster_env_endpoints(char *const *env, conf_from_t ps_from, char *ps, size_t len,
                          cluster_said_t *said, errbuf_t *eb);

/*
 * Expand an endpoint list spec (comma list, @FILE, {A..B}) into out (len
 * bytes): a comma list with no blanks. Returns the number of endpoints, or
 * ERR_CONFIG (bad range, empty item), ERR_IO (unreadable @FILE) or
 * ERR_TOOBIG (more than len-1 bytes), with eb filled.
 */
int cluster_env_expand(const char *spec, char *out, size_t len, errbuf_t *eb);

#endif
