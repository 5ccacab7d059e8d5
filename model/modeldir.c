/*
 * modeldir.c - atomic save and load of model directories. See modeldir.h.
 */
#include "model/modeldir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/afile.h"
#include "common/dirs.h"
#include "common/meta.h"

static int rows_path(const char *dir, char *buf, size_t len, errbuf_t *eb)
{
    return dirs_path(buf, len, eb, "%s/%s", dir, MODELDIR_ROWS);
}

void modeldir_rows_path(const char *dir, char *buf, size_t len)
{
    rows_path(dir, buf, len, NULL);
}

int modeldir_begin(const char *dir, const char *init_from, char *tmp, size_t tmplen, errbuf_t *eb)
{
    char from[DIRS_PATH_MAX], to[DIRS_PATH_MAX];
    int rc;

    rc = dirs_path(tmp, tmplen, eb, "%s.tmp", dir);
    if (rc != 0)
        return rc;
    rc = dirs_remove_tree(tmp, eb);
    if (rc != 0)
        return rc;
    rc = dirs_make(tmp, eb); /* and DIR's parents */
    if (rc != 0)
        return rc;
    if (init_from) {
        if ((rc = rows_path(init_from, from, sizeof(from), eb)) != 0 ||
            (rc = rows_path(tmp, to, sizeof(to), eb)) != 0)
            return rc;
        rc = dirs_copy_files(from, to, eb);
        if (rc != 0)
            return errbuf_prefix(eb, rc, "--init-from %s", init_from);
    }
    return 0;
}

int modeldir_commit(const char *dir, const char *tmp, const model_t *m, const char *format,
                    errbuf_t *eb)
{
    char path[DIRS_PATH_MAX];
    afile_t af;
    meta_t meta;
    size_t n;
    int rc;

    rc = dirs_path(path, sizeof(path), eb, "%s/%s", tmp, MODELDIR_DENSE);
    if (rc != 0)
        return rc;
    rc = afile_open(&af, path, eb);
    if (rc != 0)
        return rc;
    rc = model_save_dense(m, af.f, eb);
    if (rc != 0) {
        afile_abort(&af);
        return rc;
    }
    rc = afile_commit(&af, eb);
    if (rc != 0)
        return rc;
    model_params((model_t *)m, &n);
    meta_from_spec(&meta, model_spec(m), 1, 0, n);
    if (meta_set_format(&meta, format) != 0)
        return errbuf_set(eb, ERR_INVAL, "log format '%s' cannot be recorded in META", format);
    rc = meta_write(tmp, &meta, eb); /* fsyncs tmp: shard-0 and dense.bin are durable */
    if (rc != 0)
        return rc;
    return modeldir_install(tmp, dir, eb);
}

int modeldir_install(const char *tmp, const char *dir, errbuf_t *eb)
{
    char old[DIRS_PATH_MAX];
    int rc;

    rc = dirs_path(old, sizeof(old), eb, "%s.old", dir);
    if (rc != 0)
        return rc;
    dirs_remove_tree(old, NULL);
    if (rename(dir, old) != 0 && errno != ENOENT)
        return errbuf_set(eb, ERR_IO, "move old %s aside: %s", dir, strerror(errno));
    if (rename(tmp, dir) != 0)
        return errbuf_set(eb, ERR_IO, "rename %s to %s: %s", tmp, dir, strerror(errno));
    rc = afile_fsync_parent(dir, eb); /* the renames survive a crash */
    dirs_remove_tree(old, NULL);
    return rc;
}

int modeldir_load_dense(const char *dir, model_t *m, errbuf_t *eb)
{
    char path[DIRS_PATH_MAX];
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
    rc = dirs_path(path, sizeof(path), eb, "%s/%s", dir, MODELDIR_DENSE);
    if (rc != 0)
        return rc;
    f = fopen(path, "rb");
    if (!f)
        return errbuf_set(eb, ERR_IO, "open %s: %s", path, strerror(errno));
    rc = model_load_dense(m, f, eb);
    fclose(f);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "%s", path);
    return 0;
}
