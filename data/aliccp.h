/*
 * aliccp.h - the Ali-CCP log format (FORMAT.md): the in-memory join table
 * built from common-features lines, and the parser that turns a skeleton
 * line plus its joined row into a batch row.
 *
 * It reads no files: the reader hands it lines (and does the counting and
 * reporting of rejected ones). Field ids are slots, a feature's feature_id
 * is the token value and its value the token weight; Ali-CCP has no action
 * label, so every row has action = 0.
 *
 * NOTES ON THE DESIGN
 *   Join rows are parsed once, when loaded: each keeps only the features of
 *   declared slots, as (slot, key, weight) in three flat arrays, plus the
 *   number of undeclared-slot features it dropped. A skeleton line then
 *   costs a hash lookup of its md5 and a copy of those features; its own
 *   features come first in each slot, the joined ones after them.
 *
 *   Decisions on bad input (each its own TOKENS_R_* reason):
 *   - a skeleton whose md5 has no common-features row is rejected (MD5):
 *     training on half of its features would be silently wrong;
 *   - a feature_num that is not a number or differs from the number of
 *     features in the list is FEATNUM, for skeleton and join lines alike;
 *   - a second common-features row with an md5 already loaded is rejected
 *     (DUPMD5); the first one stays;
 *   - skeleton: exactly 6 comma-separated columns, join line: exactly 3,
 *     else COLUMNS; click/buy not 0/1 is LABEL, buy without click COMBO;
 *     a feature without 0x02 or 0x03, or with an empty field or feature
 *     id, is TOKEN; a value that is not a decimal float is WEIGHT.
 *
 * Thread-safety: the table is built by one thread; once built, finds and
 * skeleton parses only read it.
 */
#ifndef FUNNEL_ALICCP_H
#define FUNNEL_ALICCP_H

#include <stddef.h>
#include <stdint.h>

#include "common/batch.h"
#include "data/tokens.h"

typedef struct aliccp_join aliccp_join_t;

/* 1 if path's basename starts with "common_features" (a join table). */
int aliccp_is_join_file(const char *path);

/* New empty table. Returns 0 and *out, or ERR_NOMEM. */
int aliccp_join_new(aliccp_join_t **out);

/*
 * Parse one common-features line (md5,feature_num,feature_list; no '\n')
 * and add its row. Returns 0, a TOKENS_R_* reason (> 0; the table is
 * unchanged and *bad says where), or ERR_NOMEM.
 */
int aliccp_join_add(aliccp_join_t *j, const tokens_slots_t *slots, const char *line, size_t len,
                    tokens_bad_t *bad);

/* Rows in the table. */
size_t aliccp_join_rows(const aliccp_join_t *j);

/*
 * Parse one skeleton line (sample_id,click,buy,md5,feature_num,
 * feature_list) and append it, with the features of its joined row, as one
 * row of b. Returns 0 (tokens added to *tokens, undeclared-slot features
 * to *unknown), a TOKENS_R_* reason (> 0; b unchanged, *bad says where),
 * or ERR_NOMEM.
 */
int aliccp_parse_skeleton(const aliccp_join_t *j, const tokens_slots_t *slots, const char *line,
                          size_t len, batch_t *b, uint64_t *tokens, uint64_t *unknown,
                          tokens_bad_t *bad);

/* Free; accepts NULL and clears the pointer. */
void aliccp_join_destroy(aliccp_join_t **j);

#endif
