/*
 * slotuse.h - which slots a log really uses, against the slots the model
 * declares: tokens per declared slot (from accepted rows) and tokens per
 * undeclared slot name (told by the reader as it parses), and the verdict
 * "the slot list does not fit this data" that check-data and train turn
 * into a failure unless the configuration allows it.
 *
 * It reads nothing itself: a reader is opened with slotuse_unknown_cb as
 * its on_unknown callback, and every batch it yields is given to
 * slotuse_add_batch() (or slotuse_train_check(), which also decides once
 * enough rows were seen). Thread-safety: one slotuse per reader, used by
 * the thread that reads.
 *
 * NOTES ON THE DESIGN
 *
 * Undeclared names are kept in a small open-addressing table (FNV-1a,
 * linear probing, at most half full) of at most SLOTUSE_MAX_NAMES names;
 * tokens of further names, or of any name when memory runs out, are
 * counted as "other" so that garbage input cannot grow it without bound.
 * A name is kept up to SLOTUSE_NAME_MAX - 1 bytes (longer ones cannot be
 * declared anyway) and reported with "..." when cut. Undeclared tokens are
 * counted as parsed, so tokens of a line rejected later are included, and
 * an Ali-CCP common-features row counts once, not once per impression.
 */
#ifndef FUNNEL_SLOTUSE_H
#define FUNNEL_SLOTUSE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/batch.h"
#include "common/err.h"
#include "common/model_conf.h"

#define SLOTUSE_MAX_NAMES 1024 /* undeclared names tracked one by one */
#define SLOTUSE_NAME_MAX 128   /* bytes kept of an undeclared name, NUL included */
#define SLOTUSE_LIST_MAX 20    /* names listed in a verdict message */

typedef struct slotuse slotuse_t;

/* What the configuration tolerates (worker keys allow_unknown_slots,
 * allow_unused_slots, slot_check_rows). */
typedef struct slotuse_policy {
    int allow_unknown; /* 1: undeclared slots in the log are no error */
    int allow_unused;  /* 1: declared slots without tokens are no error */
    uint64_t rows;     /* slotuse_train_check(): decide after this many rows (0: never) */
    int aliccp;        /* 1: the log is Ali-CCP (the message points to conf/aliccp.conf) */
} slotuse_policy_t;

/*
 * New counters for the slots of ms (ms must outlive it). Returns NULL when
 * out of memory. Release with slotuse_destroy().
 */
slotuse_t *slotuse_new(const model_spec_t *ms, const slotuse_policy_t *policy);

/* Free; accepts NULL and clears the pointer. */
void slotuse_destroy(slotuse_t **su);

/* reader_opts_t.on_unknown: count one token of the undeclared slot
 * name[0, len). ctx is the slotuse_t. Never fails. */
void slotuse_unknown_cb(void *ctx, const char *name, size_t len);

/* Count the declared slots' tokens and the rows of an accepted batch. */
void slotuse_add_batch(slotuse_t *su, const batch_t *b);

/*
 * Whether the slots fit the data seen so far under the policy. Returns 0,
 * or ERR_CONFIG with eb naming the undeclared slots (largest token counts
 * first, at most SLOTUSE_LIST_MAX) and the declared slots without tokens,
 * and what to change ('slots', allow_unknown_slots, allow_unused_slots).
 * A slotuse that saw no row yet always fits (nothing to judge).
 */
int slotuse_verdict(const slotuse_t *su, errbuf_t *eb);

/*
 * The training hook, called with every reader_next_batch() result rc and
 * the batch it filled: counts b while rc == 0 and, once policy.rows rows
 * were seen or at the first ERR_EOF (fewer rows in the input), decides
 * once with slotuse_verdict(). Returns rc unchanged, or ERR_CONFIG (eb
 * filled, prefixed with the rows seen) when the slots do not fit. su may
 * be NULL (no check). After the decision it only returns rc.
 */
int slotuse_train_check(slotuse_t *su, const batch_t *b, int rc, errbuf_t *eb);

/*
 * Print the undeclared slots with their token counts (largest first) and
 * the declared slots without tokens, for the check-data report; nothing
 * for what is absent. Returns 0 or ERR_NOMEM.
 */
int slotuse_print(const slotuse_t *su, FILE *out);

/* Rows counted, undeclared tokens counted, declared slots without tokens. */
uint64_t slotuse_rows(const slotuse_t *su);
uint64_t slotuse_unknown_tokens(const slotuse_t *su);
int slotuse_unused_slots(const slotuse_t *su);

#endif
