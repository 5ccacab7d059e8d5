/*
 * fuzz_aliccp.c - the Ali-CCP line parsers: the input's bytes before its
 * first NUL are common-features lines (the join table), the rest skeleton
 * lines joined against it, as the reader feeds them.
 */
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "data/aliccp.h"
#include "data/tokens.h"
#include "tests/fuzz/fuzz.h"

/* Call fn on each '\n'-separated line of p[0, len), without the '\n'. */
#define EACH_LINE(p, len, line, n, body)                               \
    for (const char *line = (p), *end_ = (p) + (len); line < end_;) {  \
        const char *nl_ = memchr(line, '\n', (size_t)(end_ - line));   \
        size_t n = nl_ ? (size_t)(nl_ - line) : (size_t)(end_ - line); \
        body;                                                          \
        line += n + 1;                                                 \
    }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static model_spec_t ms;
    static tokens_slots_t slots;
    static int ready;
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t njoin = nul ? (size_t)(nul - text) : size;
    aliccp_join_t *j = NULL;
    batch_t b;
    uint64_t tokens = 0, unknown = 0;
    tokens_bad_t bad;

    if (!ready) {
        fuzz_spec(&ms, "101,205,206,207,216,210,301,302,109_14");
        tokens_slots_init(&slots, &ms);
        ready = 1;
    }
    if (aliccp_join_new(&j) != 0 || batch_init(&b, ms.nslots, 4) != 0)
        abort();
    EACH_LINE(text, njoin, line, n, (void)aliccp_join_add(j, &slots, line, n, &bad));
    if (nul) {
        EACH_LINE(nul + 1, size - njoin - 1, line, n, {
            if (b.n == b.cap)
                batch_clear(&b);
            if (aliccp_parse_skeleton(j, &slots, line, n, &b, &tokens, &unknown, &bad) < 0)
                abort(); /* only ERR_NOMEM is negative, and nothing here is that big */
        });
    }
    batch_release(&b);
    aliccp_join_destroy(&j);
    return 0;
}
