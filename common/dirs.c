/*
 * dirs.c - mkdir -p, rm -rf, copying a directory's files, paths that fit
 * their buffer (see dirs.h).
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dirs.h"

int dirs_path(char *buf, size_t len, errbuf_t *eb, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len)
        return errbuf_set(eb, ERR_INVAL, "path too long (more than %zu bytes): %s...", len - 1,
                          buf);
    return 0;
}

/* 0 if p names a directory (after a failed mkdir: someone else made it,
 * or it was there), else the errno of the mkdir. */
static int is_dir_or(const char *p, int err)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : err;
}

int dirs_make(const char *path, errbuf_t *eb)
{
    char tmp[DIRS_PATH_MAX];
    size_t n = path ? strlen(path) : 0;

    if (n == 0 || n >= sizeof(tmp))
        return errbuf_set(eb, ERR_INVAL, "bad directory path '%s'", path ? path : "");
    memcpy(tmp, path, n + 1);
    /* every prefix ending before a '/', then the whole path */
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        if (tmp[i - 1] == '/')
            continue; /* "a//b": the prefix "a/" was made as "a" */
        char save = tmp[i];
        tmp[i] = '\0';
        int err = mkdir(tmp, 0755) == 0 ? 0 : is_dir_or(tmp, errno);
        if (err != 0) {
            if (err == EEXIST)
                err = ENOTDIR; /* a file where a directory must be */
            return errbuf_set(eb, ERR_IO, "create directory %s: %s", tmp, strerror(err));
        }
        tmp[i] = save;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

int dirs_remove_tree(const char *path, errbuf_t *eb)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : errbuf_set(eb, ERR_IO, "%s: %s", path, strerror(errno));
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return errbuf_set(eb, ERR_IO, "remove %s: %s", path, strerror(errno));
    return 0;
}

static int copy_file(const char *from, const char *to, errbuf_t *eb)
{
    char buf[1 << 16];
    int in = open(from, O_RDONLY), out = -1, rc = 0;
    ssize_t n;

    if (in < 0)
        return errbuf_set(eb, ERR_IO, "open %s: %s", from, strerror(errno));
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        rc = errbuf_set(eb, ERR_IO, "create %s: %s", to, strerror(errno));
        goto done;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n) {
            rc = errbuf_set(eb, ERR_IO, "write %s: %s", to, strerror(errno));
            goto done;
        }
    if (n < 0)
        rc = errbuf_set(eb, ERR_IO, "read %s: %s", from, strerror(errno));
    else if (fsync(out) != 0)
        rc = errbuf_set(eb, ERR_IO, "fsync %s: %s", to, strerror(errno));
done:
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

int dirs_copy_files(const char *from, const char *to, errbuf_t *eb)
{
    char src[DIRS_PATH_MAX], dst[DIRS_PATH_MAX];
    struct dirent *e;
    struct stat st;
    DIR *d;
    int rc = 0;

    rc = dirs_make(to, eb);
    if (rc != 0)
        return rc;
    d = opendir(from);
    if (!d)
        return errbuf_set(eb, ERR_IO, "open %s: %s", from, strerror(errno));
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if ((rc = dirs_path(src, sizeof(src), eb, "%s/%s", from, e->d_name)) != 0 ||
            (rc = dirs_path(dst, sizeof(dst), eb, "%s/%s", to, e->d_name)) != 0)
            break;
        if (stat(src, &st) == 0 && S_ISREG(st.st_mode))
            rc = copy_file(src, dst, eb);
    }
    closedir(d);
    return rc;
}
