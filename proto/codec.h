/*
 * codec.h - encoding msg_t messages (msg.h) to msgpack bytes and decoding
 * them back, plus the protocol checks every peer needs (handshake
 * comparison, reply matches request, message fits the table layout).
 * codec.c is the only file of funnel that includes msgpack.h. It does no
 * I/O: bytes come from and go to the caller (the ZeroMQ loop or client).
 *
 * Thread-safety: a codec_buf_t or codec_dec_t belongs to one thread at a
 * time; everything else is pure.
 *
 * NOTES ON THE DESIGN
 *
 *   Encoding writes into a caller-owned codec_buf_t that grows
 *   geometrically and is kept between messages: in the steady state an
 *   encode allocates nothing. A rows or dense values blob whose pointer is
 *   NULL (with a non-zero size) is reserved, not copied: after the encode
 *   codec_buf_blob() gives where to write it, so a shard can copy rows from
 *   its table straight into the outgoing message.
 *
 *   Decoding is zero-copy: blobs and strings of the decoded msg_t point into
 *   the caller's input bytes; the few things that need memory (msgpack's
 *   object tree, KV lists) live in the decoder's arena, which is reset, not
 *   freed, by the next decode. A decoded message is therefore valid until
 *   the input bytes are released or the same codec_dec_t decodes again.
 *
 *   Bad input never crashes and never makes the decoder allocate by what it
 *   declares: the length is compared with the decoder's maximum first
 *   (ERR_TOOBIG), then one pass over the msgpack structure checks every
 *   declared length and element count against the bytes that remain and
 *   bounds nesting and the number of objects, before msgpack-c builds
 *   anything. Then every field is checked for type, range and consistency.
 *   Errors: ERR_TOOBIG (message, declared length or object count over a
 *   limit), ERR_VERSION (another protocol version), ERR_PROTO (anything else
 *   malformed: truncated, wrong types, unknown type or flags, counts that do
 *   not match blob lengths, slots out of order, trailing bytes). The errbuf
 *   says which field of which message was wrong.
 */
#ifndef FUNNEL_CODEC_H
#define FUNNEL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/model_conf.h"
#include "proto/msg.h"

#define CODEC_MAX_MSG_DEFAULT ((size_t)256 << 20) /* bytes (ps max_msg_size default) */
#define CODEC_MAX_DEPTH 16                        /* nesting of msgpack containers */
#define CODEC_MAX_OBJECTS 65536                   /* msgpack objects in one message */

/* A growable output buffer, reused across messages. */
typedef struct codec_buf {
    unsigned char *data;              /* the encoded message: data[0 .. len) */
    size_t len;                       /* bytes of the last encoded message */
    size_t cap;                       /* bytes allocated */
    size_t max;                       /* largest message it may hold (bytes) */
    int err;                          /* internal: first error while writing */
    size_t blob_off[MODEL_MAX_SLOTS]; /* internal: offsets of reserved blobs */
} codec_buf_t;

/*
 * Set up an empty buffer that refuses messages over max bytes (0:
 * CODEC_MAX_MSG_DEFAULT). Nothing is allocated until the first encode.
 * Release with codec_buf_release().
 */
void codec_buf_init(codec_buf_t *b, size_t max);

/* Free the buffer's memory and reset it to empty; safe on an empty buffer. */
void codec_buf_release(codec_buf_t *b);

/*
 * Take the encoded message (b->data, b->len bytes) out of b, so it can be
 * handed over without a copy (free() releases it); b starts over with no
 * block, and its next encode allocates one the size of that message
 * (without copying anything). NULL (b unchanged) when b holds nothing.
 */
unsigned char *codec_buf_take(codec_buf_t *b);

/*
 * Encode m into b, replacing b's previous content (b->data, b->len).
 * Returns 0; ERR_INVAL if m is not a valid message (unknown type, flags
 * the type does not take, slots out of order or out of range, a missing
 * keys blob, oversized text, a push without seq, ...); ERR_TOOBIG if the
 * encoding would exceed b->max (split the request); ERR_NOMEM. m is not
 * modified and may point into a decoded message. On failure b->len is 0.
 */
int codec_encode(codec_buf_t *b, const msg_t *m, errbuf_t *eb);

/*
 * Where to write the blob reserved by the last codec_encode() for a rows
 * blob of entry i of a ROWS body (or, i = 0, the values of a DENSE body)
 * whose pointer was NULL. NULL if no such blob was reserved. The pointer is
 * not aligned; it is valid until b is encoded into again or released.
 */
void *codec_buf_blob(codec_buf_t *b, uint32_t i);

typedef struct codec_dec codec_dec_t;

/*
 * A decoder accepting messages up to max_size bytes (0:
 * CODEC_MAX_MSG_DEFAULT). Returns NULL when out of memory. Release with
 * codec_dec_destroy().
 */
codec_dec_t *codec_dec_new(size_t max_size);

/* Free a decoder; accepts NULL and clears the pointer. */
void codec_dec_destroy(codec_dec_t **d);

/*
 * Decode the message in data[0 .. len) into m. Returns 0, ERR_TOOBIG,
 * ERR_VERSION or ERR_PROTO (see the design notes), or ERR_NOMEM. On
 * success m's blobs and strings point into data and its KV list into d:
 * keep data and do not decode with d again while using m. On failure
 * m->hdr.req_id holds the request id if the header could be read (else
 * 0; also for a message cut short or malformed after its req_id), so
 * that an ERROR reply can be addressed; the rest of m is undefined.
 */
int codec_decode(codec_dec_t *d, msg_t *m, const void *data, size_t len, errbuf_t *eb);

/*
 * Fill a HELLO body describing spec as seen by shard `shard` of `nshards`
 * with a dense vector of dense_size floats on day `day` (-1: none).
 */
void codec_hello_from_spec(msg_hello_t *h, const model_spec_t *spec, uint32_t shard,
                           uint32_t nshards, uint64_t dense_size, int32_t day);

/*
 * Compare our layout with the peer's HELLO or HELLO_OK body: shard index
 * and count, model type and towers, slots (count, names, dims),
 * optimizers and dense size. me and them name the two sides as the
 * reader of the message knows them ("this worker", "shard 0 at
 * ipc:///run/ps0"). Returns 0 if they agree or either side set
 * MSG_F_PROBE, else ERR_MISMATCH naming the first difference from me's
 * side, both values and the key to change ("slot 'cate_id': this worker
 * has dim 16; shard 0 at EP has dim 8: set dim = 8 for 'cate_id' in this
 * worker's [model] ..."), including the optimizers' learning rates and the
 * other parameters each optimizer kind uses (the shard applies its own, so
 * a worker configured otherwise would train with rates other than its
 * configuration says). Admission, expiry and day are not compared
 * (codec_hello_policy_diff()).
 */
int codec_hello_check(const msg_hello_t *mine, const msg_hello_t *peer, const char *me,
                      const char *them, errbuf_t *eb);

/*
 * Admission (admit_min) and expiry (expire_days) are the shard's to apply:
 * a worker with other values still trains correctly, so a difference is
 * reported, not refused. Returns 1 and the first difference in buf[len]
 * ("slot 'item_id': admit_min 3 here, 1 at the peer"), or 0 if they agree
 * (or the slots differ, which codec_hello_check() refuses).
 */
int codec_hello_policy_diff(const msg_hello_t *mine, const msg_hello_t *peer, char *buf,
                            size_t len);

/*
 * Check that rep answers req: same req_id, the reply type of req, and for
 * PULL, ROWS_GET, PULL_DENSE and PROGRESS_GET the same slots and key
 * counts, range or rank. If rep is an ERROR, returns the peer's code
 * (ERR_PROTO if it is not a known ERR_*) with "peer: <text>" in eb.
 * Otherwise returns 0 or ERR_PROTO.
 */
int codec_check_reply(const msg_t *req, const msg_t *rep, errbuf_t *eb);

/*
 * Check a decoded ROWS, DENSE or SCAN message against a table layout:
 * slot indexes below layout->nslots (ERR_PROTO), row widths that match the
 * slot dims and optimizer (ERR_MISMATCH), dense ranges inside dense_size
 * (ERR_PROTO). Other bodies pass. Returns 0 or the error.
 */
int codec_check_layout(const msg_t *m, const msg_hello_t *layout, errbuf_t *eb);

/*
 * Reference encoding, for the benchmark only: n rows of dim floats as a
 * msgpack array of arrays of float32 - what the protocol deliberately does
 * not do. The decoder converts the same back into out[n*dim]. Return 0,
 * ERR_TOOBIG, ERR_NOMEM or ERR_PROTO.
 */
int codec_ref_encode_float_arrays(codec_buf_t *b, const float *rows, size_t n, size_t dim,
                                  errbuf_t *eb);
int codec_ref_decode_float_arrays(codec_dec_t *d, float *out, size_t n, size_t dim,
                                  const void *data, size_t len, errbuf_t *eb);

#endif
