/*
 * batch.h - a batch of impressions ready for training: labels plus, per
 * slot, the keys and weights of that slot's tokens in CSR form.
 *
 * NOTES ON THE DESIGN
 *   For slot s and row i, the row's tokens are
 *     slot[s].keys[slot[s].off[i] .. slot[s].off[i+1])   (uint64 keys)
 *     slot[s].weights[same range]                       (token weights)
 *   A row with no token of a slot has an empty range (it pools to zeros).
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
int batch_row_add(batch_t *b, int s, uint64_t key, float weight);
void batch_row_end(batch_t *b);
void batch_row_cancel(batch_t *b);

#endif
