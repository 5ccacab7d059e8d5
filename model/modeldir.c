/*
 * modeldir.c - atomic save and load of model directories. See modeldir.h.
 */
#define _XOPEN_SOURCE 700
#include "model/modeldir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dirs.h"
#include "common/meta.h"

void modeldir_rows_path(const char *dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", dir, MODELDIR_ROWS);
}

int modeldir_begin(const char *dir, const char *init_from, char *tmp, size_t tmplen,
                   errbuf_t *eb)
{
    char from[4096], to[4096];
    int rc;

    snprintf(tmp, tmplen, "%s.tmp", dir);
    rc = dirs_remove_tree(tmp, eb);
    if (rc != 0)
        return rc;
    rc = dirs_make(tmp, eb); /* and DIR's parents */
    if (rc != 0)
        return rc;
    if (init_from) {
        modeldir_rows_path(init_from, from, sizeof(from));
        modeldir_rows_path(tmp, to, sizeof(to));
        rc = dirs_copy_files(from, to, eb);
        if (rc != 0)
            return errbuf_prefix(eb, rc, "--init-from %s", init_from);
    }
    return 0;
}

int modeldir_commit(const char *dir, const char *tmp, const model_t *m, errbuf_t *eb)
{
    char path[4096];
    meta_t meta;
    size_t n;
    FILE *f;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", tmp, MODELDIR_DENSE);
    f = fopen(path, "wb");
    if (!f)
        return errbuf_set(eb, ERR_IO, "create %s: %s", path, strerror(errno));
    rc = model_save_dense(m, f, eb);
    if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = errbuf_set(eb, ERR_IO, "write %s: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == 0)
        rc = errbuf_set(eb, ERR_IO, "close %s: %s", path, strerror(errno));
    if (rc != 0)
        return rc;
    model_params((model_t *)m, &n);
    meta_from_spec(&meta, model_spec(m), 1, 0, n);
    rc = meta_write(tmp, &meta, eb);
    if (rc == 0)
        rc = meta_fsync_dir(tmp, eb);
    if (rc != 0)
        return rc;
    return modeldir_install(tmp, dir, eb);
}

int modeldir_install(const char *tmp, const char *dir, errbuf_t *eb)
{
    char old[4200];

    snprintf(old, sizeof(old), "%s.old", dir);
    dirs_remove_tree(old, NULL);
    if (rename(dir, old) != 0 && errno != ENOENT)
        return errbuf_set(eb, ERR_IO, "move old %s aside: %s", dir, strerror(errno));
    if (rename(tmp, dir) != 0)
        return errbuf_set(eb, ERR_IO, "rename %s to %s: %s", tmp, dir, strerror(errno));
    dirs_remove_tree(old, NULL);
    return 0;
}

int modeldir_load_dense(const char *dir, model_t *m, errbuf_t *eb)
{
    char path[4096];
    meta_t saved, running;
    size_t n;
    FILE *f;
    int rc;

    rc = meta_read(dir, &saved, eb);
    if (rc != 0)
        return rc;
    model_params(m, &n);
    meta_from_spec(&running, model_spec(m), 1, 0, n);
    rc = meta_check(&saved, &running, dir, eb);
    if (rc != 0)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", dir, MODELDIR_DENSE);
    f = fopen(path, "rb");
    if (!f)
        return errbuf_set(eb, ERR_IO, "open %s: %s", path, strerror(errno));
    rc = model_load_dense(m, f, eb);
    fclose(f);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "%s", path);
    return 0;
}
