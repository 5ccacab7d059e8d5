/*
 * fuzz_tsv1.c - the tsv1 log reader end to end: the input is one log file
 * (a memfd), read in small batches by two ranks as workers read it. Every
 * delivered batch must have 0/1 labels, ordered offsets, finite token
 * weights and finite, non-negative sample weights (corpus seed `fields`).
 */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/batch.h"
#include "data/reader.h"
#include "tests/fuzz/fuzz.h"

/* What every consumer of a batch relies on. */
static void check_batch(const batch_t *b)
{
    for (size_t k = 0; k < b->n; k++)
        if (b->click[k] > 1 || b->action[k] > 1 || b->buy[k] > 1)
            abort();
    for (size_t k = 0; k < b->n; k++) /* sample weights (@w): finite, >= 0 */
        if (!isfinite(b->weight[k]) || !(b->weight[k] >= 0.0f))
            abort();
    for (int s = 0; s < b->nslots; s++) {
        const batch_slot_t *bs = &b->slot[s];
        if (bs->off[0] != 0 || bs->off[b->n] != bs->nnz)
            abort();
        for (size_t k = 0; k < b->n; k++)
            if (bs->off[k] > bs->off[k + 1])
                abort();
        for (size_t t = 0; t < bs->nnz; t++)
            if (!isfinite(bs->weights[t]))
                abort();
    }
}

static void read_all(const model_spec_t *ms, char *path, int rank)
{
    reader_opts_t o = {.format = READER_TSV1, .rank = rank, .workers = 2, .max_line = 4096};
    reader_t *r = NULL;
    batch_t b;
    errbuf_t eb;

    if (reader_open(&r, ms, &o, &path, 1, &eb) != 0)
        return;
    if (batch_init(&b, ms->nslots, 7) != 0)
        abort();
    for (int i = 0; i < 100000; i++) {
        int rc = reader_next_batch(r, &b, 7, &eb);
        if (rc != 0)
            break;
        check_batch(&b);
    }
    batch_release(&b);
    reader_destroy(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static model_spec_t ms;
    static int ready;
    char path[64];
    int fd;

    if (!ready) {
        fuzz_spec(&ms, NULL);
        ready = 1;
    }
    fd = fuzz_memfile(data, size, path, sizeof(path));
    read_all(&ms, path, 0);
    read_all(&ms, path, 1);
    close(fd);
    return 0;
}
