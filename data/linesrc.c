/*
 * linesrc.c - lines of a plain or gzip file from one big buffer. See
 * linesrc.h.
 *
 * Buffer invariant: buf[start, fill) is file data not yet handed out, and
 * buf[0] is at uncompressed offset buf_off, so the position after the last
 * line returned is buf_off + start. `scan` bytes after start are known to
 * hold no '\n', so a line split across reads is searched only once.
 */
#include "data/linesrc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define BUF_START ((size_t)1 << 20)  /* bytes */
#define GZ_INBUF ((unsigned)1 << 18) /* bytes of compressed input per read */

struct linesrc {
    char *path;
    int fd;           /* plain files; -1 when gz is used */
    gzFile gz;        /* gzip files; owns its descriptor */
    int eof;          /* the file has no more bytes */
    int checked_gzip; /* first gzip bytes seen and verified */
    char *buf;
    size_t cap;       /* bytes allocated at buf */
    size_t start;     /* first byte not handed out */
    size_t fill;      /* end of valid data */
    size_t scan;      /* bytes after start known to hold no '\n' */
    size_t max_line;  /* bytes */
    uint64_t buf_off; /* uncompressed offset of buf[0] */
    char head[LINESRC_HEAD];
};

int linesrc_is_gzip(const char *path)
{
    size_t n = strlen(path);

    return n >= 3 && strcmp(path + n - 3, ".gz") == 0;
}

static int gz_fail(linesrc_t *ls, errbuf_t *eb)
{
    int zerr = Z_OK;
    const char *msg = gzerror(ls->gz, &zerr);

    if (zerr == Z_ERRNO)
        return errbuf_set(eb, ERR_IO, "read %s: %s", ls->path, strerror(errno));
    if (zerr == Z_MEM_ERROR)
        return errbuf_set(eb, ERR_NOMEM, "read %s: out of memory in zlib", ls->path);
    if (zerr == Z_BUF_ERROR)
        return errbuf_set(eb, ERR_CORRUPT, "read %s: corrupt gzip data: truncated stream (%s)",
                          ls->path, msg);
    return errbuf_set(eb, ERR_CORRUPT, "read %s: corrupt gzip data: %s", ls->path, msg);
}

/* Read more bytes into buf[fill, cap); sets eof when the file is done. */
static int read_more(linesrc_t *ls, errbuf_t *eb)
{
    size_t room = ls->cap - ls->fill;

    if (ls->gz) {
        int zerr = Z_OK;
        int n = gzread(ls->gz, ls->buf + ls->fill, (unsigned)(room < INT_MAX ? room : INT_MAX));

        if (n < 0)
            return gz_fail(ls, eb);
        if (n == 0) {
            gzerror(ls->gz, &zerr);
            if (zerr != Z_OK)
                return gz_fail(ls, eb);
            ls->eof = 1;
            return 0;
        }
        /* zlib passes non-gzip bytes through unchanged; a ".gz" name
         * promises gzip, so plain bytes there are a corrupt file. */
        if (!ls->checked_gzip && gzdirect(ls->gz))
            return errbuf_set(eb, ERR_CORRUPT, "read %s: corrupt gzip data: not in gzip format",
                              ls->path);
        ls->checked_gzip = 1;
        ls->fill += (size_t)n;
        return 0;
    }
    for (;;) {
        ssize_t n = read(ls->fd, ls->buf + ls->fill, room);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errbuf_set(eb, ERR_IO, "read %s: %s", ls->path, strerror(errno));
        if (n == 0)
            ls->eof = 1;
        ls->fill += (size_t)n;
        return 0;
    }
}

/* Move the unconsumed tail to the front of the buffer. */
static void compact(linesrc_t *ls)
{
    if (ls->start == 0)
        return;
    memmove(ls->buf, ls->buf + ls->start, ls->fill - ls->start);
    ls->buf_off += ls->start;
    ls->fill -= ls->start;
    ls->start = 0;
}

/*
 * Consume bytes until the position reaches target, counting '\n' into
 * *newlines when it is not NULL. ERR_INVAL if the file ends first.
 */
static int advance(linesrc_t *ls, uint64_t target, uint64_t *newlines, errbuf_t *eb)
{
    while (ls->buf_off + ls->start < target) {
        if (ls->start == ls->fill) {
            int rc;

            ls->buf_off += ls->fill;
            ls->start = ls->fill = 0;
            if (ls->eof)
                return errbuf_set(eb, ERR_INVAL, "%s: offset %llu is past the end (%llu bytes)",
                                  ls->path, (unsigned long long)target,
                                  (unsigned long long)ls->buf_off);
            rc = read_more(ls, eb);
            if (rc != 0)
                return rc;
            continue;
        }
        size_t avail = ls->fill - ls->start;
        uint64_t want = target - (ls->buf_off + ls->start);
        size_t take = want < avail ? (size_t)want : avail;

        if (newlines) {
            const char *p = ls->buf + ls->start, *end = p + take;
            while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
                (*newlines)++;
                p++;
            }
        }
        ls->start += take;
    }
    ls->scan = 0;
    return 0;
}

int linesrc_open(linesrc_t **out, const char *path, uint64_t offset, size_t max_line, errbuf_t *eb)
{
    linesrc_t *ls;
    int rc;

    *out = NULL;
    ls = calloc(1, sizeof(*ls));
    if (!ls)
        return errbuf_set(eb, ERR_NOMEM, "open %s: out of memory", path);
    ls->fd = -1;
    ls->max_line = max_line ? max_line : LINESRC_MAX_LINE;
    ls->cap = ls->max_line < BUF_START ? ls->max_line + 1 : BUF_START;
    ls->path = strdup(path);
    ls->buf = malloc(ls->cap);
    if (!ls->path || !ls->buf) {
        rc = errbuf_set(eb, ERR_NOMEM, "open %s: out of memory", path);
        goto fail;
    }
    ls->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ls->fd < 0) {
        rc = errbuf_set(eb, ERR_IO, "open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (linesrc_is_gzip(path)) {
        ls->gz = gzdopen(ls->fd, "rb");
        if (!ls->gz) {
            rc = errbuf_set(eb, ERR_NOMEM, "open %s: cannot set up zlib", path);
            goto fail;
        }
        ls->fd = -1; /* owned by gz now */
        gzbuffer(ls->gz, GZ_INBUF);
        rc = advance(ls, offset, NULL, eb);
        if (rc != 0)
            goto fail;
    } else if (offset > 0) {
        struct stat st;

        if (fstat(ls->fd, &st) != 0) {
            rc = errbuf_set(eb, ERR_IO, "stat %s: %s", path, strerror(errno));
            goto fail;
        }
        if ((uint64_t)st.st_size < offset) {
            rc = errbuf_set(eb, ERR_INVAL, "%s: offset %llu is past the end (%llu bytes)", path,
                            (unsigned long long)offset, (unsigned long long)st.st_size);
            goto fail;
        }
        if (lseek(ls->fd, (off_t)offset, SEEK_SET) < 0) {
            rc = errbuf_set(eb, ERR_IO, "seek %s: %s", path, strerror(errno));
            goto fail;
        }
        ls->buf_off = offset;
    }
    if (ls->fd >= 0)
        posix_fadvise(ls->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    *out = ls;
    return 0;
fail:
    linesrc_destroy(&ls);
    return rc;
}

/* The pending line outgrew max_line: keep its head, drop it up to '\n'. */
static int skip_long_line(linesrc_t *ls, linesrc_line_t *line, errbuf_t *eb)
{
    size_t pending = ls->fill - ls->start;

    line->off = ls->buf_off + ls->start;
    line->len = pending < LINESRC_HEAD ? pending : LINESRC_HEAD;
    line->too_long = 1;
    memcpy(ls->head, ls->buf + ls->start, line->len);
    line->p = ls->head;
    for (;;) {
        char *nl = memchr(ls->buf + ls->start, '\n', ls->fill - ls->start);

        if (nl) {
            ls->start = (size_t)(nl - ls->buf) + 1;
            ls->scan = 0;
            return 0;
        }
        ls->buf_off += ls->fill;
        ls->start = ls->fill = 0;
        if (ls->eof) {
            ls->scan = 0;
            return 0;
        }
        int rc = read_more(ls, eb);
        if (rc != 0)
            return rc;
    }
}

int linesrc_next(linesrc_t *ls, linesrc_line_t *line, errbuf_t *eb)
{
    for (;;) {
        char *from = ls->buf + ls->start + ls->scan;
        char *nl = memchr(from, '\n', ls->fill - ls->start - ls->scan);
        int rc;

        if (nl) {
            line->p = ls->buf + ls->start;
            line->len = (size_t)(nl - line->p);
            line->off = ls->buf_off + ls->start;
            line->too_long = 0;
            ls->start = (size_t)(nl - ls->buf) + 1;
            ls->scan = 0;
            return 0;
        }
        ls->scan = ls->fill - ls->start;
        if (ls->scan > ls->max_line)
            return skip_long_line(ls, line, eb);
        if (ls->eof) {
            if (ls->fill == ls->start)
                return ERR_EOF;
            line->p = ls->buf + ls->start;
            line->len = ls->fill - ls->start;
            line->off = ls->buf_off + ls->start;
            line->too_long = 0;
            ls->start = ls->fill;
            ls->scan = 0;
            return 0;
        }
        compact(ls);
        if (ls->fill == ls->cap) {
            size_t cap = ls->cap * 2;
            char *nb;

            if (cap > ls->max_line + 1)
                cap = ls->max_line + 1;
            nb = realloc(ls->buf, cap);
            if (!nb)
                return errbuf_set(eb, ERR_NOMEM, "read %s: out of memory for a %zu-byte line",
                                  ls->path, cap);
            ls->buf = nb;
            ls->cap = cap;
        }
        rc = read_more(ls, eb);
        if (rc != 0)
            return rc;
    }
}

uint64_t linesrc_offset(const linesrc_t *ls)
{
    return ls->buf_off + ls->start;
}

uint64_t linesrc_disk_offset(const linesrc_t *ls)
{
    if (ls->gz) {
        z_off_t o = gzoffset(ls->gz);
        return o > 0 ? (uint64_t)o : 0;
    }
    return linesrc_offset(ls);
}

int linesrc_count_lines(const char *path, uint64_t end, uint64_t *n, errbuf_t *eb)
{
    linesrc_t *ls = NULL;
    int rc;

    *n = 0;
    rc = linesrc_open(&ls, path, 0, 0, eb);
    if (rc == 0)
        rc = advance(ls, end, n, eb);
    linesrc_destroy(&ls);
    return rc;
}

void linesrc_destroy(linesrc_t **lsp)
{
    linesrc_t *ls = lsp ? *lsp : NULL;

    if (!ls)
        return;
    if (ls->gz)
        gzclose(ls->gz);
    if (ls->fd >= 0)
        close(ls->fd);
    free(ls->buf);
    free(ls->path);
    free(ls);
    *lsp = NULL;
}
