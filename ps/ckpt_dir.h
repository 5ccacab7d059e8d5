/*
 * ckpt_dir.h - where a shard writes a checkpoint: always under the root its
 * own config names ([ps] checkpoint_root), at a name the client chooses.
 *
 * A client never gives a path. CHECKPOINT carries a NAME: one path
 * component of [A-Za-z0-9._-], at most CKPT_NAME_MAX bytes, not "." or
 * "..". The shard writes ROOT/NAME/shard-<i>; ROOT/NAME must be a
 * directory inside ROOT (made if missing; a symlink there that leaves ROOT
 * is refused), and ROOT/NAME/shard-<i> must not exist. Nothing that exists
 * is ever removed or replaced: the store is first written into a fresh
 * directory made by mkdtemp (ROOT/NAME/.shard-<i>.XXXXXX, ours alone), then
 * renamed to shard-<i> with RENAME_NOREPLACE, so a concurrent or earlier
 * shard-<i> makes the checkpoint fail instead of being overwritten.
 *
 * What a checkpoint guarantees: META (written by the client that asked,
 * once every shard answered) is the last entry, so a directory without META
 * is incomplete and every reader refuses it. A failed attempt leaves at
 * most ROOT/NAME with the shard directories that succeeded; retry under a
 * new name.
 *
 * Thread-safety: reentrant; the checks race only with a local user able to
 * change ROOT, which is the shard's own directory.
 */
#ifndef FUNNEL_CKPT_DIR_H
#define FUNNEL_CKPT_DIR_H

#include <stddef.h>

#include "common/dirs.h"
#include "common/err.h"

#define CKPT_NAME_MAX 128 /* bytes of a checkpoint name */

/*
 * 0 if name[len] is a valid checkpoint name, else ERR_INVAL saying what is
 * wrong and what a name may hold.
 */
int ckpt_dir_check_name(const char *name, size_t len, errbuf_t *eb);

/*
 * The shard's checkpoint root: conf_root, or when empty the folder
 * "checkpoints" beside the data directory (DATA/../checkpoints), made if
 * missing, resolved to an absolute path without symlinks into out[cap].
 * Returns 0, or ERR_IO / ERR_INVAL naming the path.
 */
int ckpt_dir_root(char *out, size_t cap, const char *conf_root, const char *data, errbuf_t *eb);

/* One checkpoint being written by one shard. */
typedef struct ckpt_dir {
    char dir[DIRS_PATH_MAX];   /* ROOT/NAME: the checkpoint (reported to the client) */
    char tmp[DIRS_PATH_MAX];   /* ROOT/NAME/.shard-I.XXXXXX, made by us */
    char store[DIRS_PATH_MAX]; /* tmp/store: give this to store_checkpoint() */
    char final[DIRS_PATH_MAX]; /* ROOT/NAME/shard-I */
    int made_dir;              /* 1: ROOT/NAME was made by this attempt */
} ckpt_dir_t;

/*
 * Check name, make ROOT/NAME if missing, check that it resolves inside
 * root and that shard-<shard> is absent, and make the fresh temporary
 * directory. Returns 0, ERR_INVAL (bad name, escapes the root), ERR_EXISTS
 * (shard-<shard> or a non-directory in the way) or ERR_IO. On failure
 * nothing is left behind.
 */
int ckpt_dir_begin(ckpt_dir_t *c, const char *root, const char *name, size_t len, int shard,
                   errbuf_t *eb);

/*
 * Move the written store to shard-<i> (never over an existing entry),
 * remove the now empty temporary directory and fsync ROOT/NAME. Returns 0,
 * ERR_EXISTS or ERR_IO; on failure call ckpt_dir_abort().
 */
int ckpt_dir_commit(ckpt_dir_t *c, errbuf_t *eb);

/* Remove what ckpt_dir_begin() made (the temporary directory, and ROOT/NAME
 * if this attempt made it and it is empty); never anything else. */
void ckpt_dir_abort(ckpt_dir_t *c);

#endif
