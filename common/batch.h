/*
 * batch.h - a batch of impressions ready for training: labels plus, per
 * slot, the keys and weights of that slot's tokens in CSR form.
 *
 * NOTES ON THE DESIGN
 *   For slot s and row i, the row's tokens are
 *     slot[s].keys[slot[s].off[i] .. slot[s].off[i+1])   (uint64 keys)
 *     slot[s].weights[same range]                       (token weights)
 *   A row with no token of a slot has an empty range (it pools to zeros).
 *   Every row also carries a sample weight (weight[i], 1 unless the log
 *   line gave one) and a request id (req[i], a nonzero hash of the line's
 *   request id text, 0 when it has none): FORMAT.md's optional fields.
 *   Arrays grow geometrically and are kept across batch_clear(), so a
 *   reader filling the same batch again allocates nothing per token.
 *
 * Thread-safety: a batch belongs to one thread at a time.
 */
#ifndef FUNNEL_BATCH_H
#define FUNNEL_BATCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct batch_slot {
    uint32_t *off;  /* rows + 1 offsets into keys/weights */
    uint64_t *keys; /* nnz keys */
    float *weights; /* nnz token weights */
    size_t nnz;     /* tokens in use */
    size_t cap;     /* tokens allocated */
} batch_slot_t;

typedef struct batch {
    size_t n;   /* rows in use */
    size_t cap; /* rows allocated */
    int nslots;
    uint8_t *click;     /* n labels, 0/1 */
    uint8_t *action;    /* n labels, 0/1 */
    uint8_t *buy;       /* n labels, 0/1 */
    float *weight;      /* n sample weights (1: none given) */
    uint64_t *req;      /* n request ids (0: none given) */
    batch_slot_t *slot; /* nslots */
} batch_t;

/* Set up an empty batch for nslots slots with room for cap rows.
 * Returns 0 or ERR_NOMEM. Release with batch_release(). */
int batch_init(batch_t *b, int nslots, size_t cap);
void batch_release(batch_t *b);

/* Forget all rows, keep the memory. */
void batch_clear(batch_t *b);

/*
 * Append a row: begin a row, add its tokens, end it. batch_row_begin()
 * reserves the labels; batch_row_add() appends a token to slot s of the
 * current row; batch_row_end() closes the row (an abandoned row is undone
 * with batch_row_cancel()). Return 0 or ERR_NOMEM.
 */
int batch_row_begin(batch_t *b, int click, int action, int buy);
/* Sample weight and request id of the open row (after batch_row_begin,
 * which sets them to 1 and 0). */
void batch_row_meta(batch_t *b, float weight, uint64_t req);
int batch_row_add(batch_t *b, int s, uint64_t key, float weight);
void batch_row_end(batch_t *b);
void batch_row_cancel(batch_t *b);

/*
 * Append rows [from, to) of src to dst (same nslots), labels, weights,
 * request ids and tokens. Returns 0 or ERR_NOMEM (dst keeps its complete
 * rows). src is not changed.
 */
int batch_append_rows(batch_t *dst, const batch_t *src, size_t from, size_t to);

/*
 * Training weight of each row into out (n floats): the row's sample
 * weight times the label weight of its positive labels - label_w[0]
 * click, [1] action, [2] buy; a row with several positive labels takes
 * the largest of theirs, a row with none takes 1.
 */
void batch_row_weights(const batch_t *b, const float label_w[3], float *out);

#endif
