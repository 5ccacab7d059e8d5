/*
 * afile.c - atomic file writes (see afile.h).
 */
#include "common/afile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int afile_fsync_dir(const char *dir, errbuf_t *eb)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);

    if (fd < 0)
        return errbuf_set(eb, ERR_IO, "open directory %s: %s", dir, strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return errbuf_set(eb, ERR_IO, "fsync directory %s: %s", dir, strerror(e));
    }
    close(fd);
    return 0;
}

int afile_fsync_parent(const char *path, errbuf_t *eb)
{
    char dir[DIRS_PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n;

    if (!slash)
        return afile_fsync_dir(".", eb);
    n = slash == path ? 1 : (size_t)(slash - path); /* "/x" lives in "/" */
    if (n >= sizeof(dir))
        return errbuf_set(eb, ERR_INVAL, "path too long: %s", path);
    memcpy(dir, path, n);
    dir[n] = '\0';
    return afile_fsync_dir(dir, eb);
}

int afile_open(afile_t *af, const char *path, errbuf_t *eb)
{
    int n;

    af->f = NULL;
    af->tmp[0] = '\0';
    n = snprintf(af->path, sizeof(af->path), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(af->path) - 4)
        return errbuf_set(eb, ERR_INVAL, "path too long: %s", path);
    snprintf(af->tmp, sizeof(af->tmp), "%s.tmp", path);
    af->f = fopen(af->tmp, "w");
    if (!af->f) {
        int rc = errbuf_set(eb, ERR_IO, "create %s: %s", af->tmp, strerror(errno));
        af->tmp[0] = '\0';
        return rc;
    }
    return 0;
}

int afile_commit(afile_t *af, errbuf_t *eb)
{
    FILE *f = af->f;
    int rc = 0;

    af->f = NULL;
    if (!f)
        return errbuf_set(eb, ERR_INVAL, "%s: not open", af->path);
    if (fflush(f) != 0 || ferror(f))
        rc = errbuf_set(eb, ERR_IO, "write %s: %s", af->tmp, strerror(errno));
    else if (fsync(fileno(f)) != 0)
        rc = errbuf_set(eb, ERR_IO, "fsync %s: %s", af->tmp, strerror(errno));
    if (fclose(f) != 0 && rc == 0)
        rc = errbuf_set(eb, ERR_IO, "close %s: %s", af->tmp, strerror(errno));
    if (rc == 0 && rename(af->tmp, af->path) != 0)
        rc = errbuf_set(eb, ERR_IO, "rename %s to %s: %s", af->tmp, af->path, strerror(errno));
    if (rc != 0) {
        unlink(af->tmp);
        af->tmp[0] = '\0';
        return rc;
    }
    af->tmp[0] = '\0';
    return afile_fsync_parent(af->path, eb);
}

void afile_abort(afile_t *af)
{
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
    }
    if (af->tmp[0]) {
        unlink(af->tmp);
        af->tmp[0] = '\0';
    }
}

int afile_write(const char *path, const void *data, size_t len, errbuf_t *eb)
{
    afile_t af;
    int rc = afile_open(&af, path, eb);

    if (rc != 0)
        return rc;
    if (len > 0 && fwrite(data, 1, len, af.f) != len) {
        rc = errbuf_set(eb, ERR_IO, "write %s: %s", af.tmp, strerror(errno));
        afile_abort(&af);
        return rc;
    }
    return afile_commit(&af, eb);
}
