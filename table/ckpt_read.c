/*
 * ckpt_read.c - the shard stores and dense records of a saved table.
 * See ckpt_read.h.
 */
#include "table/ckpt_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/dirs.h"
#include "common/route.h"
#include "table/emb_table.h"

int ckpt_read_dense_decode(ckpt_dense_rec_t *r, const void *rec, size_t len, const char *where,
                           errbuf_t *eb)
{
    const unsigned char *p = rec;

    memset(r, 0, sizeof(*r));
    if (len < CKPT_READ_DENSE_HEADER || p[0] != CKPT_READ_DENSE_VERSION)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: dense record: %zu bytes, version %d (expected version %d)", where,
                          len, len ? p[0] : -1, CKPT_READ_DENSE_VERSION);
    r->initialized = p[1] != 0;
    r->opt_kind = bytes_get_le32(p + 4);
    r->total = bytes_get_le64(p + 8);
    r->offset = bytes_get_le64(p + 16);
    r->count = bytes_get_le64(p + 24);
    r->step = (int64_t)bytes_get_le64(p + 32);
    r->nstate = bytes_get_le64(p + 40);
    if (r->count > (len - CKPT_READ_DENSE_HEADER) / sizeof(float) ||
        r->nstate > (len - CKPT_READ_DENSE_HEADER) / sizeof(float) ||
        len != CKPT_READ_DENSE_HEADER + (r->count + r->nstate) * sizeof(float))
        return errbuf_set(eb, ERR_CORRUPT, "%s: dense record of %zu bytes, %llu + %llu floats said",
                          where, len, (unsigned long long)r->count, (unsigned long long)r->nstate);
    r->w = p + CKPT_READ_DENSE_HEADER;
    r->state = r->w + r->count * sizeof(float);
    return 0;
}

int ckpt_read_open_shards(store_t **parts, const char *dir, int n, errbuf_t *eb)
{
    char path[DIRS_PATH_MAX];
    int rc = 0;

    if (n < 1 || n > CKPT_READ_MAX_SHARDS)
        return errbuf_set(eb, ERR_INVAL, "%s: %d shards (1..%d)", dir, n, CKPT_READ_MAX_SHARDS);
    for (int i = 0; i < n; i++)
        parts[i] = NULL;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = dirs_path(path, sizeof(path), eb, "%s/shard-%d", dir, i);
        if (rc == 0)
            rc = emb_store_open(&parts[i], path, STORE_READONLY, path, eb);
    }
    if (rc != 0)
        for (int i = 0; i < n; i++)
            store_close(&parts[i]);
    return rc;
}

int ckpt_read_dense_shard(store_t *st, int i, int n, const char *dir, uint64_t total,
                          ckpt_dense_rec_t *r, void **v, errbuf_t *eb)
{
    char where[DIRS_PATH_MAX + 16];
    uint64_t off, cnt;
    size_t vl = 0;
    int rc;

    *v = NULL;
    snprintf(where, sizeof(where), "%s/shard-%d", dir, i);
    rc = store_get(st, CKPT_READ_DENSE_KEY, strlen(CKPT_READ_DENSE_KEY), v, &vl, eb);
    if (rc == ERR_NOTFOUND)
        return errbuf_set(eb, ERR_NOTFOUND,
                          "%s holds no dense weights (a shard that never served a training "
                          "worker, or a reshard of a model directory)",
                          where);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "%s: dense record", where);
    rc = ckpt_read_dense_decode(r, *v, vl, where, eb);
    route_dense_range(total, (uint32_t)n, (uint32_t)i, &off, &cnt);
    if (rc == 0 && (r->total != total || r->offset != off || r->count != cnt))
        rc = errbuf_set(eb, ERR_MISMATCH,
                        "%s: dense range [%llu, +%llu) of %llu floats stored, [%llu, +%llu) of "
                        "%llu expected (another shard count or towers?)",
                        where, (unsigned long long)r->offset, (unsigned long long)r->count,
                        (unsigned long long)r->total, (unsigned long long)off,
                        (unsigned long long)cnt, (unsigned long long)total);
    if (rc == 0 && !r->initialized)
        rc = errbuf_set(eb, ERR_NOTFOUND,
                        "%s: its dense weights were never initialized (an untrained "
                        "cluster's checkpoint)",
                        where);
    if (rc != 0) {
        free(*v);
        *v = NULL;
    }
    return rc;
}

/* Copy shard i's weights into w after checking its record. */
static int read_one(store_t *st, int i, int n, const char *dir, float *w, uint64_t total,
                    errbuf_t *eb)
{
    ckpt_dense_rec_t r;
    void *v;
    int rc = ckpt_read_dense_shard(st, i, n, dir, total, &r, &v, eb);

    if (rc == 0)
        memcpy(w + r.offset, r.w, r.count * sizeof(float)); /* little-endian f32, as floats here */
    free(v);
    return rc;
}

int ckpt_read_dense(store_t *const *parts, int n, const char *dir, float *w, uint64_t total,
                    errbuf_t *eb)
{
    for (int i = 0; i < n; i++) {
        int rc = read_one(parts[i], i, n, dir, w, total, eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}
