/*
 * param_bundle.h - parameter access on a serving bundle (table/bundle.h),
 * read-only, for `predict --bundle`: rows from the bundle's full export in
 * memory (bundle_rows.h), the towers from its dense.bin. A key without a
 * row reads zeros, as predict reads a model directory.
 *
 * Thread-safety: one thread.
 */
#ifndef FUNNEL_PARAM_BUNDLE_H
#define FUNNEL_PARAM_BUNDLE_H

#include "model/model.h"
#include "worker/param.h"

/*
 * Open the bundle in dir for model m (which must outlive the param):
 * verify it (bundle_open), check its META against m's spec (ERR_MISMATCH
 * naming the difference), load dense.bin into m and full.emb into memory.
 * Returns 0 or ERR_* naming the file.
 */
int param_bundle_open(param_t **out, model_t *m, const char *dir, errbuf_t *eb);

#endif
