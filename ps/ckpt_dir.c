/*
 * ckpt_dir.c - checkpoint names resolved under the shard's own root (see
 * ckpt_dir.h).
 */
#define _GNU_SOURCE /* renameat2, RENAME_NOREPLACE */
#include "ps/ckpt_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/afile.h"

static int name_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

int ckpt_dir_check_name(const char *name, size_t len, errbuf_t *eb)
{
    if (len == 0)
        return errbuf_set(eb, ERR_INVAL,
                          "CHECKPOINT needs a name (the shard writes it under "
                          "its checkpoint_root)");
    if (len > CKPT_NAME_MAX)
        return errbuf_set(eb, ERR_INVAL,
                          "checkpoint name longer than %d bytes: give a shorter name (the shard "
                          "writes it under its own checkpoint_root)",
                          CKPT_NAME_MAX);
    int ok = name[0] != '.'; /* ".", "..", and the shard's own temporary names */
    for (size_t i = 0; i < len && ok; i++)
        ok = name_char_ok(name[i]);
    if (!ok)
        return errbuf_set(eb, ERR_INVAL,
                          "checkpoint name '%.*s' refused: give one name of letters, digits, "
                          "'.', '_' or '-', not starting with '.' (never a path); the shard "
                          "writes it under its own checkpoint_root",
                          (int)len, name);
    return 0;
}

int ckpt_dir_root(char *out, size_t cap, const char *conf_root, const char *data, errbuf_t *eb)
{
    char want[DIRS_PATH_MAX], res[PATH_MAX];
    int rc;

    if (conf_root[0]) {
        rc = dirs_path(want, sizeof(want), eb, "%s", conf_root);
    } else {
        /* beside the data directory: DATA/../checkpoints without "..",
         * so a data path through a symlink still gives its own parent */
        char parent[DIRS_PATH_MAX];
        size_t n;
        rc = dirs_path(parent, sizeof(parent), eb, "%s", data);
        n = strlen(parent);
        while (n > 1 && parent[n - 1] == '/')
            parent[--n] = '\0';
        char *slash = strrchr(parent, '/');
        if (!slash)
            snprintf(parent, sizeof(parent), ".");
        else if (slash == parent)
            parent[1] = '\0';
        else
            *slash = '\0';
        if (rc == 0)
            rc = dirs_path(want, sizeof(want), eb, "%s/checkpoints", parent);
    }
    if (rc == 0)
        rc = dirs_make(want, eb);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "checkpoint_root");
    if (!realpath(want, res))
        return errbuf_set(eb, ERR_IO, "checkpoint_root %s: %s", want, strerror(errno));
    return dirs_path(out, cap, eb, "%s", res);
}

/* ROOT/NAME: made if missing; an existing entry must be a directory that
 * resolves to exactly ROOT/NAME (no symlink out of the root). */
static int open_name_dir(ckpt_dir_t *c, const char *root, errbuf_t *eb)
{
    char res[PATH_MAX];
    struct stat st;

    if (mkdir(c->dir, 0755) == 0)
        c->made_dir = 1;
    else if (errno != EEXIST)
        return errbuf_set(eb, ERR_IO, "checkpoint %s: %s", c->dir, strerror(errno));
    if (lstat(c->dir, &st) != 0)
        return errbuf_set(eb, ERR_IO, "checkpoint %s: %s", c->dir, strerror(errno));
    if (S_ISLNK(st.st_mode)) {
        if (!realpath(c->dir, res))
            return errbuf_set(eb, ERR_INVAL, "checkpoint %s: a symlink that does not resolve: %s",
                              c->dir, strerror(errno));
        size_t n = strlen(root);
        if (strncmp(res, root, n) != 0 || res[n] != '/')
            return errbuf_set(eb, ERR_INVAL,
                              "checkpoint %s is a symlink to %s, outside checkpoint_root %s: "
                              "refused",
                              c->dir, res, root);
        if (stat(c->dir, &st) != 0)
            return errbuf_set(eb, ERR_IO, "checkpoint %s: %s", c->dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return errbuf_set(eb, ERR_EXISTS, "checkpoint %s exists and is not a directory", c->dir);
    return 0;
}

int ckpt_dir_begin(ckpt_dir_t *c, const char *root, const char *name, size_t len, int shard,
                   errbuf_t *eb)
{
    struct stat st;
    int rc;

    memset(c, 0, sizeof(*c));
    rc = ckpt_dir_check_name(name, len, eb);
    if (rc == 0)
        rc = dirs_path(c->dir, sizeof(c->dir), eb, "%s/%.*s", root, (int)len, name);
    if (rc == 0)
        rc = dirs_path(c->final, sizeof(c->final), eb, "%s/shard-%d", c->dir, shard);
    if (rc == 0)
        rc = dirs_path(c->tmp, sizeof(c->tmp), eb, "%s/.shard-%d.XXXXXX", c->dir, shard);
    if (rc == 0)
        rc = dirs_path(c->store, sizeof(c->store), eb, "%s/store", c->tmp);
    if (rc != 0)
        return rc;
    rc = open_name_dir(c, root, eb);
    if (rc == 0 && lstat(c->final, &st) == 0)
        rc = errbuf_set(eb, ERR_EXISTS,
                        "checkpoint %s already holds %s: refused (nothing is overwritten; "
                        "choose a new name)",
                        c->dir, c->final);
    if (rc == 0 && !mkdtemp(c->tmp))
        rc = errbuf_set(eb, ERR_IO, "checkpoint %s: make a temporary directory: %s", c->dir,
                        strerror(errno));
    if (rc != 0) {
        c->tmp[0] = '\0';
        ckpt_dir_abort(c);
        return rc;
    }
    /* mkdtemp filled in the X's: the store path follows */
    return dirs_path(c->store, sizeof(c->store), eb, "%s/store", c->tmp);
}

int ckpt_dir_commit(ckpt_dir_t *c, errbuf_t *eb)
{
    if (renameat2(AT_FDCWD, c->store, AT_FDCWD, c->final, RENAME_NOREPLACE) != 0)
        return errbuf_set(eb, errno == EEXIST ? ERR_EXISTS : ERR_IO,
                          "checkpoint: move %s to %s: %s", c->store, c->final, strerror(errno));
    if (rmdir(c->tmp) != 0)
        return errbuf_set(eb, ERR_IO, "checkpoint: remove %s: %s", c->tmp, strerror(errno));
    c->tmp[0] = '\0';
    return afile_fsync_dir(c->dir, eb);
}

void ckpt_dir_abort(ckpt_dir_t *c)
{
    if (c->tmp[0])
        dirs_remove_tree(c->tmp, NULL); /* made by mkdtemp in this attempt: ours alone */
    c->tmp[0] = '\0';
    if (c->made_dir)
        rmdir(c->dir); /* only if still empty */
    c->made_dir = 0;
}
