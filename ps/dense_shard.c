/*
 * dense_shard.c - one shard's range of the dense weights, its optimizer
 * state and its durable record. See dense_shard.h.
 */
#include "ps/dense_shard.h"

#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/fpmode.h"
#include "common/route.h"
#include "table/ckpt_read.h"

int dense_shard_init(dense_shard_t *d, const optim_t *opt, uint64_t total, uint32_t nshards,
                     uint32_t shard, errbuf_t *eb)
{
    memset(d, 0, sizeof(*d));
    d->opt = *opt;
    d->total = total;
    if (nshards == 0 || shard >= nshards)
        return errbuf_set(eb, ERR_INVAL, "dense range: shard %u of %u does not exist", shard,
                          nshards);
    if (opt->kind != OPTIM_ADAM && opt->kind != OPTIM_ADAGRAD)
        return errbuf_set(eb, ERR_INVAL, "dense range: %s is not a dense optimizer",
                          optim_name(opt->kind));
    route_dense_range(total, nshards, shard, &d->offset, &d->count);
    d->nstate = optim_dense_state_len(opt, d->count);
    /* +1: a shard may own an empty range (more shards than floats) */
    d->w = calloc(d->count + 1, sizeof(float));
    d->state = calloc(d->nstate + 1, sizeof(float));
    d->grad = malloc((d->count + 1) * sizeof(float));
    if (!d->w || !d->state || !d->grad)
        return errbuf_set(eb, ERR_NOMEM, "dense range: out of memory for %llu floats",
                          (unsigned long long)(d->count + d->nstate));
    return 0;
}

void dense_shard_release(dense_shard_t *d)
{
    free(d->rec);
    free(d->grad);
    free(d->state);
    free(d->w);
    memset(d, 0, sizeof(*d));
}

int dense_shard_check_range(const dense_shard_t *d, uint64_t offset, uint64_t count, errbuf_t *eb)
{
    if (offset != d->offset || count != d->count)
        return errbuf_set(eb, ERR_INVAL,
                          "dense range [%llu, +%llu) is not this shard's [%llu, +%llu)",
                          (unsigned long long)offset, (unsigned long long)count,
                          (unsigned long long)d->offset, (unsigned long long)d->count);
    return 0;
}

void dense_shard_assign(dense_shard_t *d, const void *values)
{
    memcpy(d->w, values, d->count * sizeof(float));
    d->initialized = 1;
}

void dense_shard_apply(dense_shard_t *d, const void *g)
{
    memcpy(d->grad, g, d->count * sizeof(float)); /* the wire is not aligned */
    d->step++;
    /* under FTZ/DAZ like the workers' in-process step (common/fpmode.h):
     * Adam's moments of idle units would otherwise sit in denormals */
    unsigned fp = fpmode_enter();
    optim_dense_update(&d->opt, d->w, d->state, d->grad, d->count, d->step);
    fpmode_set(fp);
}

int dense_shard_encode(dense_shard_t *d, const void **rec, size_t *len, errbuf_t *eb)
{
    size_t n = DENSE_SHARD_RECORD_HEADER + (d->count + d->nstate) * sizeof(float);
    unsigned char *p;

    if (n > d->rec_cap) {
        p = realloc(d->rec, n);
        if (!p)
            return errbuf_set(eb, ERR_NOMEM, "dense range: out of memory for its record");
        d->rec = p;
        d->rec_cap = n;
    }
    p = d->rec;
    p[0] = DENSE_SHARD_RECORD_VERSION;
    p[1] = (unsigned char)(d->initialized != 0);
    p[2] = p[3] = 0;
    bytes_put_le32(p + 4, (uint32_t)d->opt.kind);
    bytes_put_le64(p + 8, d->total);
    bytes_put_le64(p + 16, d->offset);
    bytes_put_le64(p + 24, d->count);
    bytes_put_le64(p + 32, (uint64_t)d->step);
    bytes_put_le64(p + 40, (uint64_t)d->nstate);
    p += DENSE_SHARD_RECORD_HEADER;
    /* the floats as they are in memory: funnel's hosts are little-endian (proto/msg.h) */
    memcpy(p, d->w, d->count * sizeof(float));
    memcpy(p + d->count * sizeof(float), d->state, d->nstate * sizeof(float));
    *rec = d->rec;
    *len = n;
    return 0;
}

int dense_shard_decode(dense_shard_t *d, const void *rec, size_t len, const char *where,
                       errbuf_t *eb)
{
    ckpt_dense_rec_t r;
    int rc = ckpt_read_dense_decode(&r, rec, len, where, eb);

    if (rc != 0)
        return rc;
    if (r.opt_kind != (uint32_t)d->opt.kind)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s: dense weights were trained with %s, the config says %s", where,
                          optim_name((int)r.opt_kind), optim_name(d->opt.kind));
    if (r.total != d->total || r.offset != d->offset || r.count != d->count ||
        r.nstate != d->nstate)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s: dense range [%llu, +%llu) of %llu floats stored, [%llu, +%llu) "
                          "of %llu expected (another shard count or towers?)",
                          where, (unsigned long long)r.offset, (unsigned long long)r.count,
                          (unsigned long long)r.total, (unsigned long long)d->offset,
                          (unsigned long long)d->count, (unsigned long long)d->total);
    d->initialized = r.initialized;
    d->step = r.step;
    memcpy(d->w, r.w, r.count * sizeof(float));
    memcpy(d->state, r.state, r.nstate * sizeof(float));
    return 0;
}
