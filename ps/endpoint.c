/*
 * endpoint.c - probing a shard's ipc:// endpoint before the bind. See
 * endpoint.h.
 */
#include "ps/endpoint.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

/* 1: a process accepts connections on the unix socket at path; 0: nobody
 * does (refused: a stale file); < 0: -errno of another failure. */
static int someone_listens(const char *path)
{
    struct sockaddr_un a;
    int fd, rc;

    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    rc = connect(fd, (const struct sockaddr *)&a, sizeof(a));
    int e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN) /* EAGAIN: alive, its backlog full */
        return 1;
    return e == ECONNREFUSED ? 0 : -e;
}

int endpoint_probe(const char *ep, int *stale, errbuf_t *eb)
{
    const char *path;
    struct sockaddr_un a;
    struct stat st;
    int r;

    if (stale)
        *stale = 0;
    if (strncmp(ep, "ipc://", 6) != 0)
        return 0;
    path = ep + 6;
    if (path[0] == '@' || path[0] == '\0' || !strcmp(path, "*"))
        return 0; /* abstract or ZeroMQ-chosen names: nothing on disk to take over */
    if (strlen(path) >= sizeof(a.sun_path))
        return errbuf_set(eb, ERR_CONFIG,
                          "listen %s: the path is %zu bytes, a unix socket's at most %zu: give "
                          "--listen a shorter ipc:// path",
                          ep, strlen(path), sizeof(a.sun_path) - 1);
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        return errbuf_set(eb, ERR_IO, "listen %s: cannot examine %s: %s", ep, path,
                          strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return errbuf_set(eb, ERR_CONFIG,
                          "listen %s: %s exists and is not a socket (binding would delete it): "
                          "give --listen another path",
                          ep, path);
    r = someone_listens(path);
    if (r == 1)
        return errbuf_set(eb, ERR_BUSY,
                          "listen %s: another process (a running shard?) is listening there; "
                          "binding would silently take its clients: stop it first, or give "
                          "this shard its own --listen endpoint",
                          ep);
    if (r < 0)
        return errbuf_set(eb, ERR_IO, "listen %s: cannot probe the socket %s: %s", ep, path,
                          strerror(-r));
    /* nobody listens: a dead shard's leftover, reused */
    if (unlink(path) != 0 && errno != ENOENT)
        return errbuf_set(eb, ERR_IO, "listen %s: remove the stale socket %s: %s", ep, path,
                          strerror(errno));
    LOG_INFO("listen %s: removed a stale socket file nobody listened on (a stopped shard's)", ep);
    if (stale)
        *stale = 1;
    return 0;
}
