/*
 * gen_out.c - buffered plain/gzip output files. See gen_out.h.
 */
#include "gen/gen_out.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int gen_out_open(gen_out_t **out, const char *path, int gzip, errbuf_t *eb)
{
    gen_out_t *o = calloc(1, sizeof(*o));

    *out = NULL;
    if (!o || !(o->buf = malloc(GEN_OUT_BUF))) {
        free(o);
        return errbuf_set(eb, ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(o->path, sizeof(o->path), "%s", path);
    o->gzip = gzip;
    errno = 0;
    o->fp = gzip ? (void *)gzopen(path, "wb1") : (void *)fopen(path, "wb");
    if (!o->fp) {
        int e = errno ? errno : ENOMEM;
        free(o->buf);
        free(o);
        return errbuf_set(eb, ERR_IO, "create %s: %s", path, strerror(e));
    }
    *out = o;
    return 0;
}

void gen_out_flush(gen_out_t *o)
{
    if (o->len == 0)
        return;
    if (o->err == 0) {
        errno = 0;
        if (o->gzip) {
            if (gzwrite((gzFile)o->fp, o->buf, (unsigned)o->len) != (int)o->len)
                o->err = errno ? errno : EIO;
        } else if (fwrite(o->buf, 1, o->len, (FILE *)o->fp) != o->len) {
            o->err = errno ? errno : EIO;
        }
    }
    o->len = 0;
}

void gen_out_write(gen_out_t *o, const void *data, size_t n)
{
    memcpy(gen_out_reserve(o, n), data, n);
    gen_out_commit(o, n);
}

int gen_out_close(gen_out_t **op, errbuf_t *eb)
{
    gen_out_t *o;
    int rc = 0;

    if (!op || !*op)
        return 0;
    o = *op;
    gen_out_flush(o);
    errno = 0;
    if (o->gzip) {
        if (gzclose((gzFile)o->fp) != Z_OK && o->err == 0)
            o->err = errno ? errno : EIO;
    } else if (fclose((FILE *)o->fp) != 0 && o->err == 0) {
        o->err = errno ? errno : EIO;
    }
    if (o->err)
        rc = errbuf_set(eb, ERR_IO, "write %s: %s", o->path, strerror(o->err));
    free(o->buf);
    free(o);
    *op = NULL;
    return rc;
}
