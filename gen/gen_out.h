/*
 * gen_out.h - buffered output files for funnel-gen: plain or gzip, with
 * one check of every write error at close. Lines are formatted straight
 * into the buffer (gen_out_reserve / gen_out_commit), so writing a line
 * costs no allocation and no stdio call.
 *
 * This is the only gen file that includes zlib (gen_out.c). The bytes
 * written are a function of the data alone: gzip members carry no name
 * and no time stamp, so the same data gives the same file.
 *
 * Thread-safety: one gen_out_t per thread.
 */
#ifndef FUNNEL_GEN_OUT_H
#define FUNNEL_GEN_OUT_H

#include <stddef.h>

#include "common/err.h"

#define GEN_OUT_BUF (1u << 20) /* bytes buffered before a write */
#define GEN_OUT_LINE_MAX 4096  /* longest reservation, bytes */

typedef struct gen_out {
    char *buf;  /* GEN_OUT_BUF bytes */
    size_t len; /* bytes pending in buf */
    void *fp;   /* FILE * or gzFile */
    int gzip;   /* 1: fp is a gzFile */
    int err;    /* first write error (errno), 0 if none */
    char path[1024];
} gen_out_t;

/* Create (truncate) path; gzip: compress (level 1). Returns 0, ERR_NOMEM or
 * ERR_IO naming the file. Caller owns *out; close with gen_out_close(). */
int gen_out_open(gen_out_t **out, const char *path, int gzip, errbuf_t *eb);

/* Write the pending bytes (internal to the reserve fast path). */
void gen_out_flush(gen_out_t *o);

/* Room for at least n (<= GEN_OUT_LINE_MAX) bytes at the returned pointer;
 * make them part of the file with gen_out_commit(). Never NULL: after a
 * write error the data is dropped and the error reported at close. */
static inline char *gen_out_reserve(gen_out_t *o, size_t n)
{
    if (GEN_OUT_BUF - o->len < n)
        gen_out_flush(o);
    return o->buf + o->len;
}

static inline void gen_out_commit(gen_out_t *o, size_t n)
{
    o->len += n;
}

/* Append n bytes (n <= GEN_OUT_LINE_MAX). */
void gen_out_write(gen_out_t *o, const void *data, size_t n);

/* Flush, close and free; accepts NULL and clears the pointer. Returns 0, or
 * ERR_IO naming the file if any write, the flush or the close failed. */
int gen_out_close(gen_out_t **o, errbuf_t *eb);

#endif
