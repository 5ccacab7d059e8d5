/*
 * serve_codec.h - the scoring protocol of funnel-serve: requests (score a
 * user's candidates, apply a bundle, describe the state) and their replies,
 * as msgpack bytes and back. Like codec.c for the parameter-server protocol
 * it does no I/O; serve_codec.c is the one other file of funnel that
 * includes msgpack.h (the two protocols share nothing but the library).
 *
 * NOTES ON THE DESIGN
 *   A request is one msgpack array [magic, version, type, id, body]:
 *     SCORE  body [user, [candidate, ...]]   (str each: feature tokens of
 *            FORMAT.md, "SLOT:VALUE[:WEIGHT]" separated by single spaces;
 *            user holds the user/context tokens, pooled once per request)
 *     APPLY  body [bundle_dir]               (str: a later bundle to apply)
 *     INFO   body []
 *   A reply is [magic, version, type, id, status, body]: status 0 or a
 *   negative ERR_* code; an error's body is [text]; otherwise
 *     SCORE  [day, npred, n, preds]  (preds: bin of n * npred little-endian
 *            float32: pctr, pcvr, pctcvr and, for esm2, pctavr per candidate)
 *     APPLY  [day, text]
 *     INFO   [day, rows, model_type, bundle_dir]
 *   The encoder always writes the header the same way (fixarray, str8
 *   magic, fixint version and type), so serve_codec_peek_type() finds a
 *   request's type in its first 12 bytes without decoding (a server routes
 *   control requests apart from scoring ones).
 *
 *   Decoding checks the size against the codec's maximum first, then one
 *   pass over the msgpack structure checks every declared length and
 *   element count against the bytes that remain and bounds the number of
 *   objects (so msgpack-c never allocates by what a message declares),
 *   then msgpack-c builds the object tree in the codec's zone, then types
 *   and counts are checked; strings point into the caller's bytes (valid
 *   while they are and until the next decode).
 *
 * Thread-safety: a serve_codec_t belongs to one thread.
 */
#ifndef FUNNEL_SERVE_CODEC_H
#define FUNNEL_SERVE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SERVE_MAGIC "fnlserve"
#define SERVE_VERSION 1
#define SERVE_MAX_MSG ((size_t)64 << 20) /* bytes */
#define SERVE_MAX_CANDIDATES 100000      /* per request */
#define SERVE_NPRED_MAX 4

enum { SERVE_SCORE = 1, SERVE_APPLY = 2, SERVE_INFO = 3 };

typedef struct serve_str {
    const char *p;
    size_t len;
} serve_str_t;

typedef struct serve_req {
    int type;
    uint64_t id;
    serve_str_t user;        /* SCORE */
    uint32_t ncand;          /* SCORE */
    const serve_str_t *cand; /* SCORE: ncand (decode: the codec's memory) */
    serve_str_t path;        /* APPLY */
} serve_req_t;

typedef struct serve_rep {
    int type;
    uint64_t id;
    int status;       /* 0 or ERR_* */
    serve_str_t text; /* error, APPLY's message, INFO's bundle dir */
    int day;
    int npred;           /* SCORE: 3 or 4 */
    uint32_t n;          /* SCORE: candidates */
    const float *pred;   /* SCORE encode: n * npred floats */
    const void *pred_le; /* SCORE decode: n * npred little-endian float32 */
    uint64_t rows;       /* INFO */
    serve_str_t model;   /* INFO: model type */
} serve_rep_t;

typedef struct serve_codec serve_codec_t;

/* A codec accepting messages up to max bytes (0: SERVE_MAX_MSG). NULL if
 * out of memory. Release with serve_codec_destroy(). */
serve_codec_t *serve_codec_new(size_t max);
void serve_codec_destroy(serve_codec_t **c);

/* Encode into the codec's buffer; *data / *len valid until the next
 * encode. 0 or ERR_NOMEM / ERR_TOOBIG / ERR_INVAL. */
int serve_codec_encode_req(serve_codec_t *c, const serve_req_t *r, const void **data, size_t *len,
                           errbuf_t *eb);
int serve_codec_encode_rep(serve_codec_t *c, const serve_rep_t *r, const void **data, size_t *len,
                           errbuf_t *eb);

/* Decode; 0, ERR_TOOBIG, ERR_VERSION (another version: r->id is still
 * set when readable), ERR_PROTO naming the field. */
int serve_codec_decode_req(serve_codec_t *c, serve_req_t *r, const void *data, size_t len,
                           errbuf_t *eb);
int serve_codec_decode_rep(serve_codec_t *c, serve_rep_t *r, const void *data, size_t len,
                           errbuf_t *eb);

/* The type of an encoded request (SERVE_*), or 0 if its header is not
 * the encoder's. */
int serve_codec_peek_type(const void *data, size_t len);

/* The i-th prediction of a decoded SCORE reply. */
float serve_rep_pred(const serve_rep_t *r, size_t i);

#endif
