/*
 * bench_codec.c - cost of the wire codec for the messages that dominate a
 * shard's traffic, on one core, and of the alternative the protocol rejects.
 *
 *   bin/bench-codec [KEYS]      (default 1000 keys per message)
 *
 * For rows of dim 16 and 64:
 *   - PULL_OK with rows as one bin blob: encode, decode, copy the rows out
 *     (what a worker does with a reply); also each step alone and the
 *     encode with the blob reserved and filled in place (what a shard can
 *     do);
 *   - the same rows as msgpack arrays of float32 (codec_ref_*): encode,
 *     decode through msgpack-c's object tree, convert to floats;
 * and the ratio of the two per row. Also a PULL request (keys only):
 * encode + decode, the shard's side of every pull.
 *
 * Each figure is the best of a few timed runs of about 0.3 s. Prints
 * numbers; asserts nothing (it does exit 1 if a codec call fails).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "proto/codec.h"
#include "proto/msg.h"

#define RUNS 3
#define RUN_SECONDS 0.3

typedef struct bench {
    size_t nkeys;   /* keys per message */
    uint32_t dim;   /* floats per row */
    uint64_t *keys; /* nkeys */
    float *rows;    /* nkeys * dim */
    float *out;     /* nkeys * dim, decoded rows */
    codec_buf_t buf;
    codec_dec_t *dec;
    msg_t m, d;
    errbuf_t eb;
} bench_t;

static void die(const bench_t *b, const char *what)
{
    fprintf(stderr, "bench-codec: %s: %s\n", what, b->eb.msg);
    exit(1);
}

static void set_pull_ok(bench_t *b, const float *rows)
{
    msg_init(&b->m, MSG_PULL_OK, 42);
    b->m.u.rows.nslots = 1;
    b->m.u.rows.slot[0] =
        (msg_slot_t){.slot = 3, .nkeys = (uint32_t)b->nkeys, .dim = b->dim, .rows = rows};
}

/* One operation on b; returns 0 or exits. */
typedef void (*op_fn)(bench_t *b);

static void op_blob_encode(bench_t *b)
{
    set_pull_ok(b, b->rows);
    if (codec_encode(&b->buf, &b->m, &b->eb) < 0)
        die(b, "encode");
}

static void op_blob_encode_reserved(bench_t *b)
{
    set_pull_ok(b, NULL);
    if (codec_encode(&b->buf, &b->m, &b->eb) < 0)
        die(b, "encode");
    /* a shard copies each row from its table into the message */
    unsigned char *dst = codec_buf_blob(&b->buf, 0);
    size_t row = (size_t)b->dim * 4;
    for (size_t i = 0; i < b->nkeys; i++)
        memcpy(dst + i * row, b->rows + i * b->dim, row);
}

static void op_blob_decode(bench_t *b)
{
    if (codec_decode(b->dec, &b->d, b->buf.data, b->buf.len, &b->eb) < 0)
        die(b, "decode");
}

static void op_blob_decode_copy(bench_t *b)
{
    op_blob_decode(b);
    const msg_slot_t *s = &b->d.u.rows.slot[0];
    for (size_t i = 0; i < s->nkeys; i++)
        msg_row_get(b->out + i * s->dim, s->rows, i, s->dim);
}

static void op_blob_round_trip(bench_t *b)
{
    op_blob_encode(b);
    op_blob_decode_copy(b);
}

static void op_array_round_trip(bench_t *b)
{
    if (codec_ref_encode_float_arrays(&b->buf, b->rows, b->nkeys, b->dim, &b->eb) < 0)
        die(b, "array encode");
    if (codec_ref_decode_float_arrays(b->dec, b->out, b->nkeys, b->dim, b->buf.data, b->buf.len,
                                      &b->eb) < 0)
        die(b, "array decode");
}

static void op_pull_round_trip(bench_t *b)
{
    msg_init(&b->m, MSG_PULL, 7);
    b->m.u.rows.nslots = 1;
    b->m.u.rows.slot[0] = (msg_slot_t){.slot = 3, .nkeys = (uint32_t)b->nkeys, .keys = b->keys};
    if (codec_encode(&b->buf, &b->m, &b->eb) < 0)
        die(b, "encode pull");
    if (codec_decode(b->dec, &b->d, b->buf.data, b->buf.len, &b->eb) < 0)
        die(b, "decode pull");
    /* a shard reads every key */
    uint64_t x = 0;
    for (size_t i = 0; i < b->nkeys; i++)
        x ^= msg_key_get(b->d.u.rows.slot[0].keys, i);
    if (x == 0x5a5a5a5a5a5a5a5aull) /* keep the loop */
        fprintf(stderr, "?");
}

/* Best messages/s of RUNS timed runs. */
static double measure(bench_t *b, op_fn op)
{
    double best = 0;

    op(b); /* warm: buffers at their steady size */
    for (int r = 0; r < RUNS; r++) {
        double t0 = clock_now_s(), t;
        long n = 0;

        do {
            for (int i = 0; i < 16; i++)
                op(b);
            n += 16;
            t = clock_now_s() - t0;
        } while (t < RUN_SECONDS);
        if (n / t > best)
            best = n / t;
    }
    return best;
}

static void report(const bench_t *b, const char *what, double msgs, size_t bytes)
{
    printf("  %-40s %8.2f M keys/s  %7.3f us/msg  %8zu bytes/msg\n", what,
           msgs * (double)b->nkeys / 1e6, 1e6 / msgs, bytes);
}

int main(int argc, char **argv)
{
    static const uint32_t dims[] = {16, 64};
    size_t nkeys = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1000;

    if (nkeys == 0 || nkeys > 1000000) {
        fprintf(stderr, "usage: bench-codec [KEYS]   (1 .. 1000000, default 1000)\n");
        return 2;
    }
    printf("codec: PULL_OK with %zu keys, one slot; rows as bin blobs vs msgpack float arrays\n",
           nkeys);
    for (size_t k = 0; k < sizeof(dims) / sizeof(dims[0]); k++) {
        bench_t b = {.nkeys = nkeys, .dim = dims[k]};
        double blob, arr, pull;
        size_t blob_bytes, arr_bytes;

        b.keys = malloc(nkeys * sizeof(uint64_t));
        b.rows = malloc(nkeys * b.dim * sizeof(float));
        b.out = malloc(nkeys * b.dim * sizeof(float));
        b.dec = codec_dec_new(0);
        if (!b.keys || !b.rows || !b.out || !b.dec) {
            fprintf(stderr, "bench-codec: out of memory\n");
            return 1;
        }
        codec_buf_init(&b.buf, 0);
        for (size_t i = 0; i < nkeys; i++)
            b.keys[i] = UINT64_C(0x9e3779b97f4a7c15) * (i + 1);
        for (size_t i = 0; i < nkeys * b.dim; i++)
            b.rows[i] = (float)((double)(i % 1000) * 0.001 - 0.5);

        printf("dim %u:\n", b.dim);
        op_blob_encode(&b);
        blob_bytes = b.buf.len;
        report(&b, "blob encode", measure(&b, op_blob_encode), blob_bytes);
        report(&b, "blob encode, rows filled in place", measure(&b, op_blob_encode_reserved),
               blob_bytes);
        op_blob_encode(&b);
        report(&b, "blob decode (zero-copy)", measure(&b, op_blob_decode), blob_bytes);
        report(&b, "blob decode + copy rows out", measure(&b, op_blob_decode_copy), blob_bytes);
        blob = measure(&b, op_blob_round_trip);
        report(&b, "blob encode + decode + copy out", blob, blob_bytes);
        if (memcmp(b.out, b.rows, nkeys * b.dim * sizeof(float)) != 0)
            die(&b, "blob rows differ");

        op_array_round_trip(&b);
        arr_bytes = b.buf.len;
        if (memcmp(b.out, b.rows, nkeys * b.dim * sizeof(float)) != 0)
            die(&b, "array rows differ");
        arr = measure(&b, op_array_round_trip);
        report(&b, "float arrays encode + decode", arr, arr_bytes);
        printf("  arrays cost %.1fx the blob round trip per row (%.1fx the bytes)\n", blob / arr,
               (double)arr_bytes / (double)blob_bytes);

        pull = measure(&b, op_pull_round_trip);
        report(&b, "PULL request (keys) encode + decode", pull, b.buf.len);

        codec_buf_release(&b.buf);
        codec_dec_destroy(&b.dec);
        free(b.keys);
        free(b.rows);
        free(b.out);
    }
    return 0;
}
