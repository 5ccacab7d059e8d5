/*
 * fdio.h - whole reads and writes on file descriptors: the loops around
 * read(2)/pread(2)/write(2)/pwrite(2) that retry on EINTR and continue
 * after short transfers, written once.
 *
 * They return 0 or the errno of the failed call (positive), so the caller
 * words the message with its own path; a read that meets the end of the
 * file first returns FDIO_EOF.
 *
 * Thread-safety: as the system calls (pread/pwrite do not move the file
 * offset).
 */
#ifndef FUNNEL_FDIO_H
#define FUNNEL_FDIO_H

#include <stddef.h>
#include <stdint.h>

#define FDIO_EOF (-1) /* the file ended before len bytes were read */

/* Write len bytes of buf at the file offset. 0 or an errno. */
int fdio_write(int fd, const void *buf, size_t len);

/* Write len bytes of buf at byte off. 0 or an errno. */
int fdio_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/* Read len bytes at byte off into buf. 0, FDIO_EOF or an errno. */
int fdio_pread(int fd, void *buf, size_t len, uint64_t off);

#endif
