/*
 * guard.c - the finite check of a trained batch before its push. See
 * guard.h.
 */
#include "worker/guard.h"

#include <math.h>
#include <stdio.h>

#include "common/dirs.h"
#include "common/finite.h"
#include "model/heads.h"

#define ADVICE                                                                                \
    "nothing of this batch was pushed or saved; lower the learning rates (emb_lr, dense_lr, " \
    "or ftrl_alpha for ftrl) and restart from the last checkpoint"

/* "batch 7 (data/day1.tsv lines 641-704)" into buf. */
static const char *where_text(char *buf, size_t len, const guard_where_t *w)
{
    if (w->file && w->line1 > w->line0)
        snprintf(buf, len, "batch %llu (%s lines %llu-%llu)", w->batch, w->file, w->line0 + 1,
                 w->line1);
    else if (w->file)
        snprintf(buf, len, "batch %llu (%s)", w->batch, w->file);
    else
        snprintf(buf, len, "batch %llu", w->batch);
    return buf;
}

int guard_check_batch(const model_t *model, const model_spec_t *ms, const double *loss,
                      const param_req_t *req, const float *const *grads, const float *dense_g,
                      size_t n, const guard_where_t *w, errbuf_t *eb)
{
    char at[DIRS_PATH_MAX + 96];

    for (int k = 0; k < model_nloss(model); k++)
        if (!isfinite(loss[k]))
            return errbuf_set(eb, ERR_REJECTED, "%s: loss %s is %g: %s",
                              where_text(at, sizeof(at), w), heads_loss_name(model_heads(model), k),
                              loss[k], ADVICE);
    for (int s = 0; s < req->nslots; s++) {
        size_t dim = (size_t)ms->slot[s].dim, nf = req->n[s] * dim;
        if (nf == 0 || finite_all(grads[s], nf))
            continue;
        size_t i = finite_first_bad(grads[s], nf);
        return errbuf_set(eb, ERR_REJECTED,
                          "%s: the gradient of slot %s, key %llu is not finite (%g): %s",
                          where_text(at, sizeof(at), w), ms->slot[s].name,
                          (unsigned long long)req->keys[s][i / dim], (double)grads[s][i], ADVICE);
    }
    if (n && !finite_all(dense_g, n)) {
        size_t i = finite_first_bad(dense_g, n);
        return errbuf_set(eb, ERR_REJECTED, "%s: dense gradient %zu of %zu is not finite (%g): %s",
                          where_text(at, sizeof(at), w), i, n, (double)dense_g[i], ADVICE);
    }
    return 0;
}
