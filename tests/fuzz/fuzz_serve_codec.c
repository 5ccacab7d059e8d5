/*
 * fuzz_serve_codec.c - funnel-serve's request and reply decoders
 * (proto/serve_codec.h): the input is decoded as a request and as a reply;
 * whatever decodes is encoded again and decoded again, which must give
 * the same message.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/serve_codec.h"
#include "tests/fuzz/fuzz.h"

static int same_str(serve_str_t a, serve_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static serve_codec_t *dec, *enc, *dec2;
    serve_req_t req, again;
    serve_rep_t rep, rep2;
    const void *bytes;
    size_t len;
    errbuf_t eb;

    if (!dec) {
        dec = serve_codec_new(1 << 20);
        enc = serve_codec_new(1 << 22);
        dec2 = serve_codec_new(1 << 22);
        if (!dec || !enc || !dec2)
            abort();
    }
    serve_codec_peek_type(data, size);
    if (serve_codec_decode_req(dec, &req, data, size, &eb) == 0) {
        if (serve_codec_encode_req(enc, &req, &bytes, &len, &eb) != 0 ||
            serve_codec_decode_req(dec2, &again, bytes, len, &eb) != 0)
            abort();
        if (again.type != req.type || again.id != req.id || again.ncand != req.ncand ||
            !same_str(again.user, req.user) || !same_str(again.path, req.path))
            abort();
        for (uint32_t i = 0; i < req.ncand; i++)
            if (!same_str(again.cand[i], req.cand[i]))
                abort();
    }
    if (serve_codec_decode_rep(dec, &rep, data, size, &eb) == 0) {
        float *pred = NULL;
        if (rep.type == SERVE_SCORE && rep.status == 0) {
            pred = malloc((size_t)rep.n * (size_t)rep.npred * sizeof(float) + 1);
            if (!pred)
                abort();
            for (size_t i = 0; i < (size_t)rep.n * (size_t)rep.npred; i++)
                pred[i] = serve_rep_pred(&rep, i);
            rep.pred = pred;
        }
        if (serve_codec_encode_rep(enc, &rep, &bytes, &len, &eb) != 0 ||
            serve_codec_decode_rep(dec2, &rep2, bytes, len, &eb) != 0)
            abort();
        if (rep2.type != rep.type || rep2.id != rep.id || rep2.status != rep.status ||
            rep2.n != rep.n || !same_str(rep2.text, rep.text))
            abort();
        if (pred && memcmp(rep2.pred_le, rep.pred_le, (size_t)rep.n * (size_t)rep.npred * 4) != 0)
            abort();
        free(pred);
    }
    return 0;
}
