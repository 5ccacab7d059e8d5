/*
 * ckpt_io.c - reading and writing a cluster checkpoint's shard stores,
 * and the dense record. See ckpt_io.h.
 */
#include "table/ckpt_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/bytes.h"
#include "table/ckpt_read.h"
#include "table/emb_table.h"

int ckpt_io_open(ckpt_in_t *c, const char *dir, errbuf_t *eb)
{
    int rc;

    memset(c, 0, sizeof(*c));
    if ((rc = dirs_path(c->dir, sizeof(c->dir), eb, "%s", dir)) != 0)
        return rc;
    rc = meta_read(dir, &c->meta, eb);
    if (rc == ERR_NOTFOUND)
        return errbuf_set(eb, rc,
                          "%s: no META: not a checkpoint, or an incomplete one (META is "
                          "written last); give a directory `funnel-worker ctl checkpoint` "
                          "completed",
                          dir);
    if (rc != 0)
        return rc;
    if (c->meta.shards < 1)
        return errbuf_set(eb, ERR_CORRUPT, "%s/META: %d shards", dir, c->meta.shards);
    c->shard = calloc((size_t)c->meta.shards, sizeof(*c->shard));
    if (!c->shard)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    if ((rc = ckpt_read_open_shards(c->shard, dir, c->meta.shards, eb)) != 0)
        return rc;
    c->nshards = c->meta.shards;
    return 0;
}

void ckpt_io_close(ckpt_in_t *c)
{
    for (int i = 0; c->shard && i < c->meta.shards; i++)
        store_close(&c->shard[i]);
    free(c->shard);
    c->shard = NULL;
    c->nshards = 0;
}

int ckpt_io_create(ckpt_out_t *c, const char *dir, int nshards, errbuf_t *eb)
{
    char path[DIRS_PATH_MAX];
    struct stat st;
    int rc;

    memset(c, 0, sizeof(*c));
    if ((rc = dirs_path(c->dir, sizeof(c->dir), eb, "%s", dir)) != 0)
        return rc;
    if (nshards < 1)
        return errbuf_set(eb, ERR_INVAL, "%s: %d shards (at least 1)", dir, nshards);
    if (lstat(dir, &st) == 0)
        return errbuf_set(eb, ERR_EXISTS,
                          "%s exists: a new checkpoint is written only into a new directory "
                          "(nothing is overwritten); give another path",
                          dir);
    if (mkdir(dir, 0755) != 0)
        return errbuf_set(eb, ERR_IO, "make %s: %s", dir, strerror(errno));
    c->made = 1;
    c->shard = calloc((size_t)nshards, sizeof(*c->shard));
    if (!c->shard)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    c->nshards = nshards;
    for (int j = 0; j < nshards; j++)
        if ((rc = dirs_path(path, sizeof(path), eb, "%s/shard-%d", dir, j)) != 0 ||
            (rc = store_rocks_open(&c->shard[j], path, STORE_CREATE, path, eb)) != 0)
            return rc;
    return 0;
}

int ckpt_io_commit(ckpt_out_t *c, const meta_t *m, errbuf_t *eb)
{
    int rc;

    if (m->shards != c->nshards)
        return errbuf_set(eb, ERR_INVAL, "%s: META says %d shards, %d written", c->dir, m->shards,
                          c->nshards);
    for (int j = 0; j < c->nshards; j++) {
        if ((rc = store_seal(c->shard[j], 1, eb)) != 0)
            return rc;
        store_close(&c->shard[j]);
    }
    if ((rc = meta_write(c->dir, m, eb)) != 0)
        return rc;
    free(c->shard);
    c->shard = NULL;
    c->made = 0; /* complete: no longer ours to remove */
    return 0;
}

void ckpt_io_abort(ckpt_out_t *c)
{
    errbuf_t eb;

    for (int j = 0; c->shard && j < c->nshards; j++)
        store_close(&c->shard[j]);
    free(c->shard);
    c->shard = NULL;
    if (c->made)
        dirs_remove_tree(c->dir, &eb);
    c->made = 0;
}

int ckpt_io_dense_decode(ckpt_dense_t *d, const void *rec, size_t len, const char *where,
                         errbuf_t *eb)
{
    ckpt_dense_rec_t r;
    int rc;

    memset(d, 0, sizeof(*d));
    if ((rc = ckpt_read_dense_decode(&r, rec, len, where, eb)) != 0)
        return rc;
    if (r.offset > r.total || r.count > r.total - r.offset ||
        (r.count ? r.nstate % r.count : r.nstate) != 0)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: dense record of %zu bytes does not hold range [%llu, +%llu) of "
                          "%llu floats with %llu floats of state",
                          where, len, (unsigned long long)r.offset, (unsigned long long)r.count,
                          (unsigned long long)r.total, (unsigned long long)r.nstate);
    d->initialized = r.initialized;
    d->optim = r.opt_kind;
    d->total = r.total;
    d->offset = r.offset;
    d->count = r.count;
    d->step = r.step;
    d->nstate = r.nstate;
    d->w = malloc((d->count + 1) * sizeof(float));
    d->state = malloc((d->nstate + 1) * sizeof(float));
    if (!d->w || !d->state) {
        ckpt_io_dense_release(d);
        return errbuf_set(eb, ERR_NOMEM, "%s: out of memory for the dense range", where);
    }
    memcpy(d->w, r.w, d->count * sizeof(float));
    memcpy(d->state, r.state, d->nstate * sizeof(float));
    return 0;
}

int ckpt_io_dense_encode(const ckpt_dense_t *d, unsigned char **rec, size_t *len, errbuf_t *eb)
{
    size_t n = CKPT_READ_DENSE_HEADER + (d->count + d->nstate) * 4;
    unsigned char *p = malloc(n);

    if (!p)
        return errbuf_set(eb, ERR_NOMEM, "out of memory for a dense record");
    memset(p, 0, CKPT_READ_DENSE_HEADER);
    p[0] = CKPT_READ_DENSE_VERSION;
    p[1] = (unsigned char)(d->initialized != 0);
    bytes_put_le32(p + 4, d->optim);
    bytes_put_le64(p + 8, d->total);
    bytes_put_le64(p + 16, d->offset);
    bytes_put_le64(p + 24, d->count);
    bytes_put_le64(p + 32, (uint64_t)d->step);
    bytes_put_le64(p + 40, d->nstate);
    /* the floats as they are in memory: funnel's hosts are little-endian */
    memcpy(p + CKPT_READ_DENSE_HEADER, d->w, d->count * 4);
    memcpy(p + CKPT_READ_DENSE_HEADER + d->count * 4, d->state, d->nstate * 4);
    *rec = p;
    *len = n;
    return 0;
}

void ckpt_io_dense_release(ckpt_dense_t *d)
{
    free(d->w);
    free(d->state);
    d->w = d->state = NULL;
}
