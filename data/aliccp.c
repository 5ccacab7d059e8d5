/*
 * aliccp.c - Ali-CCP join table and line parsers. See aliccp.h.
 *
 * The table is an array of rows, an arena of md5 bytes, three flat feature
 * arrays and an open-addressing index (linear probing, at most half full)
 * of row numbers + 1 keyed by a 64-bit FNV-1a hash of the md5 bytes; a hit
 * is confirmed by comparing the bytes, so hash collisions cannot join the
 * wrong row.
 */
#include "data/aliccp.h"

#include <stdlib.h>
#include <string.h>

#include "common/keyhash.h"
#include "common/parse.h"

#define SEP_FEATURE '\x01'
#define SEP_FIELD '\x02'
#define SEP_VALUE '\x03'
#define SKELETON_COLS 6
#define JOIN_COLS 3

typedef struct jrow {
    uint64_t hash;    /* FNV-1a 64 of the md5 bytes */
    uint64_t md5_off; /* into the md5 arena */
    uint64_t feat;    /* index of the row's first feature */
    uint32_t md5_len; /* bytes */
    uint32_t n;       /* features of declared slots */
    uint32_t unknown; /* features of undeclared slots (dropped) */
} jrow_t;

struct aliccp_join {
    jrow_t *row;
    size_t nrows, rowcap;
    uint32_t *index; /* icap buckets: row + 1, 0 = empty */
    size_t icap;     /* power of 2 */
    char *md5;       /* arena */
    size_t md5_used, md5_cap;
    uint64_t *key; /* nfeat keys */
    float *weight; /* nfeat weights */
    uint8_t *slot; /* nfeat slot indexes */
    size_t nfeat, featcap;
};

/* Receives one feature of a declared slot; returns 0 or ERR_NOMEM. */
typedef int (*emit_fn)(void *ctx, int slot, uint64_t key, float weight);

int aliccp_is_join_file(const char *path)
{
    const char *base = strrchr(path, '/');

    base = base ? base + 1 : path;
    return strncmp(base, "common_features", 15) == 0;
}

static uint64_t md5_hash(const char *p, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * UINT64_C(1099511628211);
    return h;
}

/* Split line into exactly `want` columns at sep. Returns 0 or COLUMNS. */
static int split_cols(const char *line, size_t len, char sep, const char **col, size_t *clen,
                      int want)
{
    const char *p = line, *end = line + len;

    for (int i = 0; i < want; i++) {
        const char *c = i + 1 < want ? memchr(p, sep, (size_t)(end - p)) : NULL;
        if (i + 1 < want && !c)
            return TOKENS_R_COLUMNS;
        if (!c)
            c = end;
        col[i] = p;
        clen[i] = (size_t)(c - p);
        p = c + 1;
    }
    /* The last column must not hold another separator. */
    if (memchr(col[want - 1], sep, clen[want - 1]))
        return TOKENS_R_COLUMNS;
    return 0;
}

static int parse_label(const char *p, size_t len)
{
    return len == 1 && (p[0] == '0' || p[0] == '1') ? p[0] - '0' : -1;
}

/* A feature_num: 1 to 10 decimal digits. Returns 0 and *n, or ERR_PARSE. */
static int parse_count(const char *p, size_t len, uint64_t *n)
{
    return len <= 10 ? parse_uint(p, len, UINT64_MAX, n) : ERR_PARSE;
}

/*
 * Parse a feature list of `want` features, emitting those of declared
 * slots. Returns 0, a reason, or ERR_NOMEM from emit.
 */
static int parse_features(const tokens_slots_t *sl, const char *p, size_t len, uint64_t want,
                          emit_fn emit, void *ctx, uint64_t *unknown, tokens_bad_t *bad)
{
    const char *end = p + len;
    uint64_t n = 0;

    if (len == 0)
        return want == 0 ? 0 : tokens_reject(bad, NULL, 0, TOKENS_R_FEATNUM);
    for (;;) {
        const char *f = p, *q = p, *fid, *x;
        const char *fe = memchr(p, SEP_FEATURE, (size_t)(end - p));
        uint32_t h = TOKENS_SLOT_HASH0;
        float w;
        int s, rc;

        if (!fe)
            fe = end;
        while (q < fe && *q != SEP_FIELD)
            h = tokens_slot_hash_step(h, (unsigned char)*q++);
        if (q == fe || q == f)
            return tokens_reject(bad, f, (size_t)(fe - f), TOKENS_R_TOKEN);
        fid = q + 1;
        x = memchr(fid, SEP_VALUE, (size_t)(fe - fid));
        if (!x || x == fid || memchr(fid, SEP_FIELD, (size_t)(x - fid)))
            return tokens_reject(bad, f, (size_t)(fe - f), TOKENS_R_TOKEN);
        if (tokens_parse_weight(x + 1, (size_t)(fe - x - 1), &w) != 0)
            return tokens_reject(bad, x + 1, (size_t)(fe - x - 1), TOKENS_R_WEIGHT);
        n++;
        s = tokens_slots_find(sl, f, (size_t)(q - f), h);
        if (s < 0) {
            (*unknown)++;
            tokens_tell_unknown(sl, f, (size_t)(q - f));
        } else {
            uint64_t key = keyhash_value(sl->ms->slot[s].seed, fid, (size_t)(x - fid));
            rc = emit(ctx, s, key, w);
            if (rc == 0)
                rc = tokens_tell(sl, s, fid, (size_t)(x - fid), key);
            if (rc != 0)
                return rc;
        }
        if (fe == end)
            break;
        p = fe + 1;
    }
    return n == want ? 0 : tokens_reject(bad, NULL, 0, TOKENS_R_FEATNUM);
}

int aliccp_join_new(aliccp_join_t **out)
{
    aliccp_join_t *j = calloc(1, sizeof(*j));

    *out = NULL;
    if (!j)
        return ERR_NOMEM;
    j->icap = 1024;
    j->index = calloc(j->icap, sizeof(*j->index));
    if (!j->index) {
        free(j);
        return ERR_NOMEM;
    }
    *out = j;
    return 0;
}

static const jrow_t *find_row(const aliccp_join_t *j, const char *md5, size_t len, uint64_t h)
{
    for (size_t i = h & (j->icap - 1);; i = (i + 1) & (j->icap - 1)) {
        uint32_t r = j->index[i];
        if (r == 0)
            return NULL;
        const jrow_t *row = &j->row[r - 1];
        if (row->hash == h && row->md5_len == len && memcmp(j->md5 + row->md5_off, md5, len) == 0)
            return row;
    }
}

static int grow_index(aliccp_join_t *j)
{
    size_t cap = j->icap * 2;
    uint32_t *ix = calloc(cap, sizeof(*ix));

    if (!ix)
        return ERR_NOMEM;
    for (size_t r = 0; r < j->nrows; r++) {
        size_t i = j->row[r].hash & (cap - 1);
        while (ix[i])
            i = (i + 1) & (cap - 1);
        ix[i] = (uint32_t)(r + 1);
    }
    free(j->index);
    j->index = ix;
    j->icap = cap;
    return 0;
}

static int join_emit(void *ctx, int slot, uint64_t key, float weight)
{
    aliccp_join_t *j = ctx;

    if (j->nfeat == j->featcap) {
        size_t cap = j->featcap ? j->featcap * 2 : 4096;
        uint64_t *k = realloc(j->key, cap * sizeof(*k));
        if (!k)
            return ERR_NOMEM;
        j->key = k;
        float *w = realloc(j->weight, cap * sizeof(*w));
        if (!w)
            return ERR_NOMEM;
        j->weight = w;
        uint8_t *s = realloc(j->slot, cap);
        if (!s)
            return ERR_NOMEM;
        j->slot = s;
        j->featcap = cap;
    }
    j->key[j->nfeat] = key;
    j->weight[j->nfeat] = weight;
    j->slot[j->nfeat] = (uint8_t)slot;
    j->nfeat++;
    return 0;
}

/* Room for one more row and its md5 bytes. */
static int reserve_row(aliccp_join_t *j, size_t md5_len)
{
    if ((j->nrows + 1) * 2 > j->icap && grow_index(j) != 0)
        return ERR_NOMEM;
    if (j->nrows == j->rowcap) {
        size_t cap = j->rowcap ? j->rowcap * 2 : 1024;
        jrow_t *r = realloc(j->row, cap * sizeof(*r));
        if (!r)
            return ERR_NOMEM;
        j->row = r;
        j->rowcap = cap;
    }
    if (!j->md5 || j->md5_used + md5_len > j->md5_cap) { /* an arena even for an empty md5 */
        size_t cap = j->md5_cap ? j->md5_cap : 16384;
        while (cap < j->md5_used + md5_len)
            cap *= 2;
        char *m = realloc(j->md5, cap);
        if (!m)
            return ERR_NOMEM;
        j->md5 = m;
        j->md5_cap = cap;
    }
    return 0;
}

int aliccp_join_add(aliccp_join_t *j, const tokens_slots_t *slots, const char *line, size_t len,
                    tokens_bad_t *bad)
{
    const char *col[JOIN_COLS];
    size_t clen[JOIN_COLS];
    uint64_t want, unknown = 0, h;
    size_t first = j->nfeat;
    jrow_t *row;
    int rc;

    if (bad)
        bad->p = NULL;
    rc = split_cols(line, len, ',', col, clen, JOIN_COLS);
    if (rc != 0)
        return rc;
    if (parse_count(col[1], clen[1], &want) != 0)
        return tokens_reject(bad, col[1], clen[1], TOKENS_R_FEATNUM);
    h = md5_hash(col[0], clen[0]);
    if (find_row(j, col[0], clen[0], h))
        return tokens_reject(bad, col[0], clen[0], TOKENS_R_DUPMD5);
    if (clen[0] > UINT32_MAX || reserve_row(j, clen[0]) != 0)
        return ERR_NOMEM;
    rc = parse_features(slots, col[2], clen[2], want, join_emit, j, &unknown, bad);
    if (rc == 0 && j->nfeat - first > UINT32_MAX)
        rc = ERR_TOOBIG;
    if (rc != 0) {
        j->nfeat = first;
        return rc;
    }
    row = &j->row[j->nrows];
    row->hash = h;
    row->md5_off = j->md5_used;
    row->md5_len = (uint32_t)clen[0];
    row->feat = first;
    row->n = (uint32_t)(j->nfeat - first);
    row->unknown = (uint32_t)(unknown > UINT32_MAX ? UINT32_MAX : unknown);
    memcpy(j->md5 + j->md5_used, col[0], clen[0]);
    j->md5_used += clen[0];
    {
        size_t i = h & (j->icap - 1);
        while (j->index[i])
            i = (i + 1) & (j->icap - 1);
        j->index[i] = (uint32_t)(j->nrows + 1);
    }
    j->nrows++;
    return 0;
}

size_t aliccp_join_rows(const aliccp_join_t *j)
{
    return j->nrows;
}

static int batch_emit(void *ctx, int slot, uint64_t key, float weight)
{
    return batch_row_add(ctx, slot, key, weight);
}

int aliccp_parse_skeleton(const aliccp_join_t *j, const tokens_slots_t *slots, const char *line,
                          size_t len, batch_t *b, uint64_t *tokens, uint64_t *unknown,
                          tokens_bad_t *bad)
{
    const char *col[SKELETON_COLS];
    size_t clen[SKELETON_COLS];
    uint64_t want, unk = 0;
    const jrow_t *row;
    size_t nnz0 = 0, nnz1 = 0;
    int click, buy, rc;

    if (bad)
        bad->p = NULL;
    rc = split_cols(line, len, ',', col, clen, SKELETON_COLS);
    if (rc != 0)
        return rc;
    click = parse_label(col[1], clen[1]);
    buy = parse_label(col[2], clen[2]);
    if (click < 0)
        return tokens_reject(bad, col[1], clen[1], TOKENS_R_LABEL);
    if (buy < 0)
        return tokens_reject(bad, col[2], clen[2], TOKENS_R_LABEL);
    if (buy && !click)
        return TOKENS_R_COMBO;
    if (parse_count(col[4], clen[4], &want) != 0)
        return tokens_reject(bad, col[4], clen[4], TOKENS_R_FEATNUM);
    row = find_row(j, col[3], clen[3], md5_hash(col[3], clen[3]));
    if (!row)
        return tokens_reject(bad, col[3], clen[3], TOKENS_R_MD5);

    for (int s = 0; s < b->nslots; s++)
        nnz0 += b->slot[s].nnz;
    if (batch_row_begin(b, click, 0, buy) != 0)
        return ERR_NOMEM;
    rc = parse_features(slots, col[5], clen[5], want, batch_emit, b, &unk, bad);
    for (uint32_t i = 0; rc == 0 && i < row->n; i++) {
        uint64_t f = row->feat + i;
        rc = batch_row_add(b, j->slot[f], j->key[f], j->weight[f]);
    }
    if (rc != 0) {
        batch_row_cancel(b);
        return rc;
    }
    batch_row_end(b);
    for (int s = 0; s < b->nslots; s++)
        nnz1 += b->slot[s].nnz;
    *tokens += nnz1 - nnz0;
    *unknown += unk + row->unknown;
    return 0;
}

void aliccp_join_destroy(aliccp_join_t **jp)
{
    aliccp_join_t *j = jp ? *jp : NULL;

    if (!j)
        return;
    free(j->row);
    free(j->index);
    free(j->md5);
    free(j->key);
    free(j->weight);
    free(j->slot);
    free(j);
    *jp = NULL;
}
