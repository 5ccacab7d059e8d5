/*
 * serve_score.c - layouts, states and scorers of funnel-serve. See
 * serve_score.h.
 */
#include "serve/serve_score.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyhash.h"
#include "common/ps_conf.h"
#include "model/heads.h"
#include "model/model.h"
#include "table/bundle.h"

static atomic_uint_fast64_t next_gen = 1; /* state generations; only ever grows */

int serve_layout_load(serve_layout_t *lay, const char *dir, errbuf_t *eb)
{
    static const conf_given_t none;
    bundle_t *b = malloc(sizeof(*b));
    ps_conf_t *conf = calloc(1, sizeof(*conf));
    int rc, c = 0;

    memset(lay, 0, sizeof(*lay));
    if (!b || !conf) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = bundle_open(b, dir, eb);
    if (rc == 0)
        rc = conf_defaults(&ps_conf_schema, conf, eb);
    if (rc == 0)
        rc = meta_apply_conf(&b->meta, dir, &ps_conf_schema, conf, &none, eb);
    if (rc == 0)
        rc = model_spec_from_conf(&lay->ms, &conf->model, eb);
    if (rc != 0)
        goto out;
    lay->meta = b->meta;
    tokens_slots_init(&lay->slots, &lay->ms);
    for (int s = 0; s < lay->ms.nslots; s++) {
        lay->col[s] = c;
        c += lay->ms.slot[s].dim;
    }
    {
        model_t *m = model_new(&lay->ms, 1, 0, eb); /* which heads predict (as predict.c) */
        if (!m) {
            rc = ERR_NOMEM;
            goto out;
        }
        lay->npred = heads_has_pred(model_heads(m), 3) ? 4 : 3;
        model_destroy(&m);
    }
out:
    if (conf)
        conf_release(&ps_conf_schema, conf);
    free(conf);
    free(b);
    return rc;
}

void serve_state_destroy(serve_state_t **s)
{
    if (!s || !*s)
        return;
    bundle_rows_destroy(&(*s)->rows);
    free((*s)->params);
    free(*s);
    *s = NULL;
}

/* The towers of bundle b into st->params (through a model of lay). */
static int load_dense(serve_state_t *st, const serve_layout_t *lay, const bundle_t *b, errbuf_t *eb)
{
    char path[BUNDLE_PATH_MAX];
    model_t *m = model_new(&lay->ms, 1, 0, eb);
    FILE *f = NULL;
    size_t n;
    int rc;

    if (!m)
        return ERR_NOMEM;
    rc = bundle_path(b, BUNDLE_DENSE, path, sizeof(path), eb);
    if (rc == 0 && !(f = fopen(path, "rb")))
        rc = errbuf_set(eb, ERR_IO, "open %s: %s", path, strerror(errno));
    if (rc == 0 && (rc = model_load_dense(m, f, eb)) != 0)
        errbuf_prefix(eb, rc, "%s", path);
    if (rc == 0) {
        const float *w = model_params(m, &n);
        st->params = malloc(n * sizeof(float));
        if (!st->params)
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        else
            memcpy(st->params, w, n * sizeof(float));
        st->nparams = n;
    }
    if (f)
        fclose(f);
    model_destroy(&m);
    return rc;
}

int serve_state_build(serve_state_t **out, const serve_layout_t *lay, const serve_state_t *cur,
                      const char *dir, const char **how, errbuf_t *eb)
{
    char path[BUNDLE_PATH_MAX];
    bundle_t *b = malloc(sizeof(*b));
    serve_state_t *st = calloc(1, sizeof(*st));
    int rc = 0, delta;

    *out = NULL;
    if (!b || !st) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = bundle_open(b, dir, eb);
    if (rc == 0 && b->meta.digest != lay->meta.digest)
        rc = errbuf_set(eb, ERR_MISMATCH,
                        "%s holds another model (digest %016llx, served %016llx: %s of %d slots); "
                        "start a new funnel-serve for it",
                        dir, (unsigned long long)b->meta.digest,
                        (unsigned long long)lay->meta.digest, meta_model_name(lay->meta.model_type),
                        lay->meta.nslots);
    if (rc == 0)
        rc = load_dense(st, lay, b, eb);
    if (rc != 0)
        goto out;
    delta = cur && b->base_day != -1 && b->base_day == cur->day;
    rc = bundle_path(b, delta ? BUNDLE_DELTA : BUNDLE_FULL, path, sizeof(path), eb);
    if (rc == 0)
        rc = delta ? bundle_rows_apply(&st->rows, cur->rows, path, eb)
                   : bundle_rows_load(&st->rows, path, &lay->ms, eb);
    if (rc != 0)
        goto out;
    st->gen = atomic_fetch_add(&next_gen, 1);
    st->day = b->day;
    st->base_day = b->base_day;
    snprintf(st->dir, sizeof(st->dir), "%s", dir);
    if (how)
        *how = delta ? "delta" : "full";
out:
    free(b);
    if (rc != 0)
        serve_state_destroy(&st);
    *out = st;
    return rc;
}

/* One parsed token. */
typedef struct tok {
    int slot;
    float w;
    uint64_t key;
} tok_t;

struct serve_scorer {
    const serve_layout_t *lay;
    model_t *model;
    uint64_t gen; /* state whose weights the model holds; 0: none */
    float *ux;    /* (D) pooled user/context row */
    float *x;     /* (SERVE_BATCH, D) */
    float *out;   /* (SERVE_BATCH, HEADS_NPRED) */
    float *zero;  /* a row of zeros, widest slot */
    tok_t *tok;
    size_t ntok, cap;
};

void serve_scorer_destroy(serve_scorer_t **sc)
{
    if (!sc || !*sc)
        return;
    model_destroy(&(*sc)->model);
    free((*sc)->ux);
    free((*sc)->x);
    free((*sc)->out);
    free((*sc)->zero);
    free((*sc)->tok);
    free(*sc);
    *sc = NULL;
}

serve_scorer_t *serve_scorer_new(const serve_layout_t *lay, errbuf_t *eb)
{
    serve_scorer_t *sc = calloc(1, sizeof(*sc));
    size_t D = (size_t)lay->ms.input_dim;
    int wide = 1;

    if (!sc) {
        errbuf_set(eb, ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (int s = 0; s < lay->ms.nslots; s++)
        if (lay->ms.slot[s].dim > wide)
            wide = lay->ms.slot[s].dim;
    sc->lay = lay;
    sc->model = model_new(&lay->ms, SERVE_BATCH, 0, eb);
    /* whole towers on this thread, each product single-threaded (as predict's
     * towers run): OpenBLAS's own threads would split the products otherwise */
    if (sc->model && model_threads_set(sc->model, 1, MODEL_PAR_TOWERS, eb) != 0)
        model_destroy(&sc->model);
    sc->ux = malloc(D * sizeof(float));
    sc->x = malloc(SERVE_BATCH * D * sizeof(float));
    sc->out = malloc(SERVE_BATCH * HEADS_NPRED * sizeof(float));
    sc->zero = calloc((size_t)wide, sizeof(float));
    if (!sc->model || !sc->ux || !sc->x || !sc->out || !sc->zero) {
        if (sc->model)
            errbuf_set(eb, ERR_NOMEM, "out of memory");
        serve_scorer_destroy(&sc);
    }
    return sc;
}

/* Parse the tokens of text (FORMAT.md's feature column) into sc->tok.
 * Tokens of undeclared slots are ignored, as training ignores them. */
static int parse(serve_scorer_t *sc, const char *text, size_t len, const char *what, errbuf_t *eb)
{
    const tokens_slots_t *sl = &sc->lay->slots;
    const char *q = text, *end = text + len;

    sc->ntok = 0;
    while (q < end) {
        const char *tok = q, *colon, *val, *last = NULL;
        uint32_t h = TOKENS_SLOT_HASH0;
        float w = 1.0f;
        int s;

        for (; q < end && *q != ':' && *q != ' '; q++)
            h = tokens_slot_hash_step(h, (unsigned char)*q);
        colon = q;
        if (q == end || *q == ' ' || q == tok)
            goto bad;
        val = ++q;
        for (; q < end && *q != ' '; q++)
            if (*q == ':')
                last = q;
        if (!last)
            last = q;
        else if (tokens_parse_weight(last + 1, (size_t)(q - last - 1), &w) != 0)
            return errbuf_set(eb, ERR_PARSE, "%s: token '%.*s': unparsable weight", what,
                              (int)(q - tok > 80 ? 80 : q - tok), tok);
        if (last == val)
            goto bad;
        s = tokens_slots_find(sl, tok, (size_t)(colon - tok), h);
        if (s >= 0) {
            if (sc->ntok == sc->cap) {
                size_t cap = sc->cap ? 2 * sc->cap : 64;
                tok_t *t = realloc(sc->tok, cap * sizeof(*t));
                if (!t)
                    return errbuf_set(eb, ERR_NOMEM, "out of memory");
                sc->tok = t;
                sc->cap = cap;
            }
            sc->tok[sc->ntok++] =
                (tok_t){s, w, keyhash_value(sl->ms->slot[s].seed, val, (size_t)(last - val))};
        }
        if (q < end) { /* one space between tokens, none at the end */
            q++;
            if (q == end || *q == ' ')
                return errbuf_set(eb, ERR_PARSE, "%s: two spaces or a trailing space", what);
        }
        continue;
    bad:
        while (q < end && *q != ' ')
            q++;
        return errbuf_set(eb, ERR_PARSE,
                          "%s: malformed token '%.*s' (expected SLOT:VALUE[:WEIGHT])", what,
                          (int)(q - tok > 80 ? 80 : q - tok), tok);
    }
    return 0;
}

/* x (D) += the parsed tokens' weighted rows (see the notes). */
static void pool(const serve_scorer_t *sc, const serve_state_t *st, float *x)
{
    const model_spec_t *ms = &sc->lay->ms;

    for (size_t t = 0; t < sc->ntok; t++) {
        const tok_t *k = &sc->tok[t];
        const float *row = bundle_rows_find(st->rows, k->slot, k->key);
        float *xi = x + sc->lay->col[k->slot];
        size_t dim = (size_t)ms->slot[k->slot].dim;
        if (!row)
            row = sc->zero;
        for (size_t d = 0; d < dim; d++)
            xi[d] += k->w * row[d];
    }
}

int serve_scorer_score(serve_scorer_t *sc, const serve_state_t *st, const char *user,
                       size_t user_len, const char *const *cand, const size_t *cand_len, size_t n,
                       float *pred, errbuf_t *eb)
{
    size_t D = (size_t)sc->lay->ms.input_dim, np = (size_t)sc->lay->npred;
    char what[48];
    int rc;

    if (sc->gen != st->gen) { /* a new day: its towers into this thread's model */
        size_t have;
        float *w = model_params(sc->model, &have);
        memcpy(w, st->params, have * sizeof(float));
        sc->gen = st->gen;
    }
    memset(sc->ux, 0, D * sizeof(float));
    rc = parse(sc, user, user_len, "user", eb);
    if (rc != 0)
        return rc;
    pool(sc, st, sc->ux);
    for (size_t b0 = 0; b0 < n; b0 += SERVE_BATCH) {
        size_t B = n - b0 < SERVE_BATCH ? n - b0 : SERVE_BATCH;
        for (size_t i = 0; i < B; i++) {
            snprintf(what, sizeof(what), "candidate %zu", b0 + i);
            rc = parse(sc, cand[b0 + i], cand_len[b0 + i], what, eb);
            if (rc != 0)
                return rc;
            memcpy(sc->x + i * D, sc->ux, D * sizeof(float));
            pool(sc, st, sc->x + i * D);
        }
        rc = model_predict(sc->model, sc->x, B, sc->out);
        if (rc != 0)
            return errbuf_set(eb, rc, "model_predict of %zu rows failed", B);
        for (size_t i = 0; i < B; i++)
            memcpy(pred + (b0 + i) * np, sc->out + i * HEADS_NPRED, np * sizeof(float));
    }
    return 0;
}
