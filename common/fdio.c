/*
 * fdio.c - whole reads and writes; see fdio.h.
 */
#include "common/fdio.h"

#include <errno.h>
#include <unistd.h>

/* off < 0: write at the file offset. */
static int write_loop(int fd, const void *buf, size_t len, int64_t off)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ssize_t k = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno;
        if (k == 0)
            return EIO; /* no progress: a device that takes nothing */
        p += k;
        len -= (size_t)k;
        if (off >= 0)
            off += k;
    }
    return 0;
}

int fdio_write(int fd, const void *buf, size_t len)
{
    return write_loop(fd, buf, len, -1);
}

int fdio_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    return write_loop(fd, buf, len, (int64_t)off);
}

int fdio_pread(int fd, void *buf, size_t len, uint64_t off)
{
    unsigned char *p = buf;

    while (len > 0) {
        ssize_t k = pread(fd, p, len, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno;
        if (k == 0)
            return FDIO_EOF;
        p += k;
        len -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}
