/*
 * dirs.c - mkdir -p (see dirs.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "dirs.h"

#define PATH_BYTES 4096

/* 0 if p names a directory (after a failed mkdir: someone else made it,
 * or it was there), else the errno of the mkdir. */
static int is_dir_or(const char *p, int err)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : err;
}

int dirs_make(const char *path, errbuf_t *eb)
{
    char tmp[PATH_BYTES];
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
