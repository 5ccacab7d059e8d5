/*
 * linesrc.h - the lines of one log file, plain or gzip-compressed, read in
 * big blocks and handed out in place.
 *
 * A file whose name ends in ".gz" is decompressed with zlib (the only
 * module that includes zlib.h); any other file is read as plain bytes.
 * Offsets are always counted in uncompressed bytes, so a position means
 * the same thing for both kinds. A line is the bytes up to (not including)
 * the next '\n'; a last line without '\n' is still a line. Nothing is
 * interpreted here: '\r', comments and columns belong to the reader.
 *
 * NOTES ON THE DESIGN
 *   One buffer (1 MiB to start) holds the unconsumed tail of the file; a
 *   returned line points into it and stays valid until the next call.
 *   The buffer grows only for a line longer than itself, up to max_line
 *   bytes; a longer line is skipped to its '\n' without being buffered and
 *   reported with too_long set and only its head, so a runaway file cannot
 *   take unbounded memory. Seeking a plain file is lseek(); a gzip file is
 *   decompressed from its start up to the offset (gzip has no index).
 *
 * Thread-safety: a linesrc belongs to one thread at a time.
 */
#ifndef FUNNEL_LINESRC_H
#define FUNNEL_LINESRC_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define LINESRC_MAX_LINE ((size_t)64 << 20) /* bytes; default line length limit */
#define LINESRC_HEAD 64                     /* bytes kept of a too-long line */

typedef struct linesrc linesrc_t;

typedef struct linesrc_line {
    char *p;      /* line bytes without the '\n'; valid until the next call */
    size_t len;   /* bytes at p */
    uint64_t off; /* offset of the line's first byte (uncompressed bytes) */
    int too_long; /* 1: the line exceeded max_line; p/len hold its head only */
} linesrc_line_t;

/* 1 if path names a gzip file (ends in ".gz"), else 0. */
int linesrc_is_gzip(const char *path);

/*
 * Open path and position it at `offset` uncompressed bytes (0: the start).
 * max_line is the longest line buffered, in bytes (0: LINESRC_MAX_LINE).
 * Returns 0 and *out (release with linesrc_destroy()), ERR_IO if the file
 * cannot be opened or read, ERR_CORRUPT for bad gzip data before offset,
 * ERR_INVAL if offset is past the end, ERR_NOMEM. eb names the file.
 */
int linesrc_open(linesrc_t **out, const char *path, uint64_t offset, size_t max_line, errbuf_t *eb);

/*
 * Next line into *line. Returns 0, ERR_EOF at the end of the file, ERR_IO
 * on a read error, ERR_CORRUPT on a corrupt or truncated gzip stream or a
 * ".gz" file that is not gzip data (eb names the file).
 */
int linesrc_next(linesrc_t *ls, linesrc_line_t *line, errbuf_t *eb);

/* Offset just after the last line returned (or the opening offset). */
uint64_t linesrc_offset(const linesrc_t *ls);

/*
 * Bytes of the file on disk consumed so far, for progress estimates: for
 * a gzip file the compressed bytes zlib has taken in (gzoffset: it runs a
 * little ahead of the lines handed out, never behind), for a plain file
 * linesrc_offset(). Uncompressed offsets of a .gz file say nothing about
 * how much of it is left; these do.
 */
uint64_t linesrc_disk_offset(const linesrc_t *ls);

/*
 * Count the '\n' bytes in the first `end` uncompressed bytes of path, i.e.
 * the number of lines before offset `end` when `end` is a line start.
 * Returns 0 and *n, or the codes of linesrc_open().
 */
int linesrc_count_lines(const char *path, uint64_t end, uint64_t *n, errbuf_t *eb);

/* Close and free; accepts NULL and clears the pointer. */
void linesrc_destroy(linesrc_t **ls);

#endif
