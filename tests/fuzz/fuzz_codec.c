/*
 * fuzz_codec.c - the wire decoder, as a shard meets it: any bytes are
 * decoded; what decodes is checked against a layout, encoded again and
 * decoded again, and must come back with the same header and body kind
 * (a message the decoder accepts is one the encoder can produce).
 */
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/msg.h"
#include "tests/fuzz/fuzz.h"

#define MAX_MSG (1u << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static codec_dec_t *dec, *dec2;
    static msg_hello_t layout;
    static int ready;
    msg_t m, m2;
    codec_buf_t out;
    errbuf_t eb;

    if (!ready) {
        model_spec_t ms;
        fuzz_spec(&ms, NULL);
        codec_hello_from_spec(&layout, &ms, 0, 2, 1000, 3);
        dec = codec_dec_new(MAX_MSG);
        dec2 = codec_dec_new(MAX_MSG);
        if (!dec || !dec2)
            abort();
        ready = 1;
    }
    if (codec_decode(dec, &m, data, size, &eb) != 0)
        return 0;
    (void)codec_check_layout(&m, &layout, &eb);

    codec_buf_init(&out, MAX_MSG);
    if (codec_encode(&out, &m, &eb) != 0)
        abort(); /* decoded but cannot be encoded: the two disagree */
    if (codec_decode(dec2, &m2, out.data, out.len, &eb) != 0)
        abort();
    if (m2.hdr.type != m.hdr.type || m2.hdr.req_id != m.hdr.req_id ||
        m2.hdr.sender != m.hdr.sender || m2.hdr.seq != m.hdr.seq)
        abort();
    codec_buf_release(&out);
    return 0;
}
