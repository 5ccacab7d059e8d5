/*
 * bundle.c - writing and verifying serving bundles. See bundle.h.
 */
#include "table/bundle.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/afile.h"
#include "common/bytes.h"
#include "common/dirs.h"
#include "common/route.h"
#include "table/ckpt_read.h"
#include "table/emb_export.h"

#define DENSE_MAGIC "FNLDENSE" /* model.h MODEL_DENSE_MAGIC */
#define DENSE_VERSION 1        /* model.h MODEL_DENSE_VERSION */
#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

/* XXH64 (seed 0) and size of the file at path. */
static int hash_file(const char *path, uint64_t *bytes, uint64_t *hash, errbuf_t *eb)
{
    unsigned char buf[1 << 16];
    XXH64_state_t *s = XXH64_createState();
    FILE *f = fopen(path, "rb");
    size_t n;
    int rc = 0;

    if (!s || !f) {
        rc = !s ? errbuf_set(eb, ERR_NOMEM, "out of memory")
                : errbuf_set(eb, ERR_IO, "open %s: %s", path, strerror(errno));
        goto out;
    }
    XXH64_reset(s, 0);
    *bytes = 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        XXH64_update(s, buf, n);
        *bytes += n;
    }
    if (ferror(f))
        rc = errbuf_set(eb, ERR_IO, "read %s: %s", path, strerror(errno));
    *hash = XXH64_digest(s);
out:
    if (f)
        fclose(f);
    XXH64_freeState(s);
    return rc;
}

/* Copy the file from to the new file to, fsynced. */
static int copy_file(const char *from, const char *to, errbuf_t *eb)
{
    unsigned char buf[1 << 16];
    FILE *in = fopen(from, "rb"), *out = NULL;
    size_t n;
    int rc = 0;

    if (!in)
        return errbuf_set(eb, ERR_IO, "open %s: %s", from, strerror(errno));
    out = fopen(to, "wb");
    if (!out) {
        rc = errbuf_set(eb, ERR_IO, "create %s: %s", to, strerror(errno));
        goto out;
    }
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            break;
    if (ferror(in) || ferror(out) || fflush(out) != 0 || fsync(fileno(out)) != 0)
        rc = errbuf_set(eb, ERR_IO, "copy %s to %s: %s", from, to, strerror(errno));
out:
    if (out && fclose(out) != 0 && rc == 0)
        rc = errbuf_set(eb, ERR_IO, "close %s: %s", to, strerror(errno));
    fclose(in);
    return rc;
}

/* The dense checkpoint writer state: a FILE and the running FNV-1a. */
typedef struct dense_out {
    FILE *f;
    uint64_t hash;
    int failed;
} dense_out_t;

static void put(dense_out_t *o, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        o->hash = (o->hash ^ b[i]) * FNV_PRIME;
    if (fwrite(p, 1, n, o->f) != n)
        o->failed = 1;
}

static void put_u32(dense_out_t *o, uint32_t v)
{
    unsigned char b[4];
    bytes_put_le32(b, v);
    put(o, b, 4);
}

static void put_u64(dense_out_t *o, uint64_t v)
{
    unsigned char b[8];
    bytes_put_le64(b, v);
    put(o, b, 8);
}

/* Floats per tower of the layout m describes (model.h: layers, then the
 * one-unit logit layer, each W (out, in) then b (out)). */
static uint64_t tower_params(const meta_t *m)
{
    uint64_t in = 0, n = 0;

    for (int s = 0; s < m->nslots; s++)
        in += (uint64_t)m->dim[s];
    for (int l = 0; l <= m->nlayers; l++) {
        uint64_t out = l < m->nlayers ? (uint64_t)m->layer[l] : 1;
        n += in * out + out;
        in = out;
    }
    return n;
}

/* The shards' dense records of checkpoint dir, decoded: weights w (total),
 * state blocks st (k blocks of total floats), step of shard 0. */
typedef struct dense_all {
    float *w;
    float *st;
    int k;
    int64_t step;
    uint32_t opt;
} dense_all_t;

static int read_shard(store_t *part, int i, int n, const char *dir, uint64_t total, dense_all_t *d,
                      errbuf_t *eb)
{
    char where[BUNDLE_PATH_MAX + 16];
    ckpt_dense_rec_t r;
    void *v;
    int rc = ckpt_read_dense_shard(part, i, n, dir, total, &r, &v, eb);
    uint64_t off, cnt;

    if (rc != 0)
        return errbuf_prefix(eb, rc, "no towers to bundle");
    off = r.offset;
    cnt = r.count;
    snprintf(where, sizeof(where), "%s/shard-%d", dir, i);
    if (i == 0) {
        d->k = r.count ? (int)(r.nstate / r.count) : 0;
        d->step = r.step;
        d->opt = r.opt_kind;
        d->st = calloc((size_t)total * (size_t)d->k + 1, sizeof(float));
        if (!d->st)
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    if (rc == 0 && (r.opt_kind != d->opt || r.nstate != (uint64_t)d->k * r.count))
        rc = errbuf_set(eb, ERR_MISMATCH, "%s: optimizer state of %llu floats for %llu weights",
                        where, (unsigned long long)r.nstate, (unsigned long long)r.count);
    for (uint64_t j = 0; rc == 0 && j < cnt; j++)
        d->w[off + j] = bytes_get_le_float(r.w + 4 * j);
    for (int b = 0; rc == 0 && b < d->k; b++)
        for (uint64_t j = 0; j < cnt; j++)
            d->st[(uint64_t)b * total + off + j] = bytes_get_le_float(r.state + 4 * (b * cnt + j));
    free(v);
    return rc;
}

/* dense.bin of a cluster checkpoint (see the notes). */
static int write_dense_ckpt(const char *src, const meta_t *m, const char *path, errbuf_t *eb)
{
    store_t *parts[1];
    store_t **pp = NULL;
    uint64_t total = m->dense_params, nt = tower_params(m);
    dense_all_t d = {0};
    dense_out_t o = {NULL, FNV_OFFSET, 0};
    int rc = 0, opened = 0;

    if (m->shards < 1 || m->shards > CKPT_READ_MAX_SHARDS || nt == 0 || total % nt != 0)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s/META: %d shards, %llu dense floats: not a whole number of towers",
                          src, m->shards, (unsigned long long)total);
    pp = m->shards == 1 ? parts : calloc((size_t)m->shards, sizeof(*pp));
    d.w = malloc((size_t)total * sizeof(float) + 1);
    if (!pp || !d.w) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = ckpt_read_open_shards(pp, src, m->shards, eb);
    opened = rc == 0;
    for (int i = 0; rc == 0 && i < m->shards; i++)
        rc = read_shard(pp[i], i, m->shards, src, total, &d, eb);
    if (rc != 0)
        goto out;
    o.f = fopen(path, "wb");
    if (!o.f) {
        rc = errbuf_set(eb, ERR_IO, "create %s: %s", path, strerror(errno));
        goto out;
    }
    if (fwrite(DENSE_MAGIC, 1, 8, o.f) != 8)
        o.failed = 1;
    put_u32(&o, DENSE_VERSION);
    put_u32(&o, (uint32_t)m->model_type);
    {
        uint64_t in = 0;
        for (int s = 0; s < m->nslots; s++)
            in += (uint64_t)m->dim[s];
        put_u32(&o, (uint32_t)in);
    }
    put_u32(&o, (uint32_t)m->nlayers);
    for (int l = 0; l < m->nlayers; l++)
        put_u32(&o, (uint32_t)m->layer[l]);
    put_u32(&o, d.opt);
    put_u64(&o, total);
    put_u64(&o, total * (uint64_t)d.k);
    put_u64(&o, (uint64_t)d.step);
    for (uint64_t j = 0; j < total; j++) {
        unsigned char b[4];
        bytes_put_le_float(b, d.w[j]);
        put(&o, b, 4);
    }
    for (uint64_t t = 0; t < total / nt; t++) /* tower after tower, block after block */
        for (int b = 0; b < d.k; b++)
            for (uint64_t j = 0; j < nt; j++) {
                unsigned char x[4];
                bytes_put_le_float(x, d.st[(uint64_t)b * total + t * nt + j]);
                put(&o, x, 4);
            }
    put_u64(&o, o.hash);
    if (o.failed || fflush(o.f) != 0 || fsync(fileno(o.f)) != 0)
        rc = errbuf_set(eb, ERR_IO, "write %s: %s", path, strerror(errno));
out:
    if (o.f && fclose(o.f) != 0 && rc == 0)
        rc = errbuf_set(eb, ERR_IO, "close %s: %s", path, strerror(errno));
    if (opened)
        for (int i = 0; i < m->shards; i++)
            store_close(&pp[i]);
    if (pp != parts)
        free(pp);
    free(d.w);
    free(d.st);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The MANIFEST text of the files in tmp. */
static int write_manifest(const char *tmp, const meta_t *m, int base_day, int with_delta,
                          bundle_stats_t *st, errbuf_t *eb)
{
    const char *names[] = {BUNDLE_META, BUNDLE_DENSE, BUNDLE_FULL, BUNDLE_DELTA};
    char path[BUNDLE_PATH_MAX], text[2048];
    int len, rc;

    len = snprintf(
        text, sizeof(text), "%s %d\nday %d\nbase_day %d\nmodel_type %s\ndigest %016" PRIx64 "\n",
        BUNDLE_MAGIC, BUNDLE_VERSION, m->day, base_day, meta_model_name(m->model_type), m->digest);
    for (int i = 0; i < 3 + with_delta; i++) {
        uint64_t bytes, h;
        rc = dirs_path(path, sizeof(path), eb, "%s/%s", tmp, names[i]);
        if (rc == 0)
            rc = hash_file(path, &bytes, &h, eb);
        if (rc != 0)
            return rc;
        st->bytes += bytes;
        len += snprintf(text + len, sizeof(text) - (size_t)len,
                        "file %s %" PRIu64 " %016" PRIx64 "\n", names[i], bytes, h);
    }
    rc = dirs_path(path, sizeof(path), eb, "%s/%s", tmp, BUNDLE_MANIFEST);
    return rc == 0 ? afile_write(path, text, (size_t)len, eb) : rc;
}

int bundle_write(const char *src, const char *prev, const char *out, bundle_stats_t *st,
                 errbuf_t *eb)
{
    char tmp[BUNDLE_PATH_MAX], from[BUNDLE_PATH_MAX], to[BUNDLE_PATH_MAX];
    bundle_stats_t local = {0};
    emb_export_stats_t es = {0};
    meta_t m, pm;
    struct stat sb;
    double t0 = now_s();
    int rc;

    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    if (stat(out, &sb) == 0)
        return errbuf_set(eb, ERR_EXISTS,
                          "%s exists; bundles are never overwritten: give a new --out", out);
    rc = meta_read(src, &m, eb);
    if (rc == 0 && prev)
        rc = meta_read(prev, &pm, eb);
    if (rc == 0)
        rc = dirs_path(tmp, sizeof(tmp), eb, "%s.tmp", out);
    if (rc != 0)
        return rc;
    if (stat(tmp, &sb) == 0 && (rc = dirs_remove_tree(tmp, eb)) != 0) /* a crashed writer's */
        return rc;
    rc = dirs_make(tmp, eb);
    if (rc != 0)
        return rc;
    rc = dirs_path(from, sizeof(from), eb, "%s/%s", src, BUNDLE_META);
    if (rc == 0)
        rc = dirs_path(to, sizeof(to), eb, "%s/%s", tmp, BUNDLE_META);
    if (rc == 0)
        rc = copy_file(from, to, eb);
    if (rc == 0)
        rc = dirs_path(from, sizeof(from), eb, "%s/%s", src, BUNDLE_DENSE);
    if (rc == 0)
        rc = dirs_path(to, sizeof(to), eb, "%s/%s", tmp, BUNDLE_DENSE);
    if (rc == 0)
        rc = stat(from, &sb) == 0 ? copy_file(from, to, eb) /* a model directory */
                                  : write_dense_ckpt(src, &m, to, eb);
    if (rc == 0)
        rc = dirs_path(to, sizeof(to), eb, "%s/%s", tmp, BUNDLE_FULL);
    if (rc == 0)
        rc = emb_export_full(src, NULL, to, &es, eb);
    st->rows = es.records;
    if (rc == 0 && prev) {
        rc = dirs_path(to, sizeof(to), eb, "%s/%s", tmp, BUNDLE_DELTA);
        if (rc == 0)
            rc = emb_export_delta(src, prev, NULL, to, &es, eb);
        st->delta_puts = es.puts;
        st->delta_deletes = es.deletes;
    }
    if (rc == 0)
        rc = write_manifest(tmp, &m, prev ? pm.day : -1, prev != NULL, st, eb);
    if (rc == 0 && rename(tmp, out) != 0)
        rc = errbuf_set(eb, ERR_IO, "rename %s to %s: %s", tmp, out, strerror(errno));
    if (rc == 0)
        rc = afile_fsync_parent(out, eb);
    if (rc != 0) {
        errbuf_t ignore;
        dirs_remove_tree(tmp, &ignore);
        return rc;
    }
    st->seconds = now_s() - t0;
    return 0;
}

int bundle_is(const char *dir)
{
    char path[BUNDLE_PATH_MAX];
    struct stat sb;

    return snprintf(path, sizeof(path), "%s/%s", dir, BUNDLE_MANIFEST) < (int)sizeof(path) &&
           stat(path, &sb) == 0;
}

int bundle_path(const bundle_t *b, const char *name, char *buf, size_t len, errbuf_t *eb)
{
    return dirs_path(buf, len, eb, "%s/%s", b->dir, name);
}

int bundle_has(const bundle_t *b, const char *name)
{
    for (int i = 0; i < b->nfiles; i++)
        if (!strcmp(b->file[i].name, name))
            return 1;
    return 0;
}

/* Parse one MANIFEST line after the first into b. */
static int manifest_line(bundle_t *b, const char *path, int ln, char *line, errbuf_t *eb)
{
    char key[32], name[64], word[32];
    long long v;
    unsigned long long bytes;
    uint64_t h;

    if (sscanf(line, "%31s", key) != 1)
        return 0; /* blank */
    if (!strcmp(key, "file")) {
        if (b->nfiles == BUNDLE_MAX_FILES ||
            sscanf(line, "file %63s %llu %16" SCNx64 "%31s", name, &bytes, &h, word) != 3 ||
            strchr(name, '/') || !strcmp(name, BUNDLE_MANIFEST))
            return errbuf_set(eb, ERR_CORRUPT,
                              "%s line %d: expected \"file NAME BYTES XXH64HEX16\" (at most %d)",
                              path, ln, BUNDLE_MAX_FILES);
        snprintf(b->file[b->nfiles].name, sizeof(b->file[0].name), "%s", name);
        b->file[b->nfiles].bytes = bytes;
        b->file[b->nfiles++].xxh64 = h;
    } else if (!strcmp(key, "day") || !strcmp(key, "base_day")) {
        if (sscanf(line, "%*s %lld %31s", &v, word) != 1 || v < -1 || v > 1000000000)
            return errbuf_set(eb, ERR_CORRUPT, "%s line %d: %s: expected a day number", path, ln,
                              key);
        *(!strcmp(key, "day") ? &b->day : &b->base_day) = (int)v;
    } else if (!strcmp(key, "model_type")) {
        if (sscanf(line, "%*s %31s", word) != 1)
            return errbuf_set(eb, ERR_CORRUPT, "%s line %d: model_type: no value", path, ln);
        b->model_type = -1;
        for (int t = 0; t < 8; t++)
            if (!strcmp(meta_model_name(t), word))
                b->model_type = t;
        if (b->model_type < 0)
            return errbuf_set(eb, ERR_CORRUPT,
                              "%s line %d: model_type %s: expected esm2, esmm, naive or nmtr", path,
                              ln, word);
    } else if (!strcmp(key, "digest")) {
        if (sscanf(line, "%*s %16" SCNx64 "%31s", &b->digest, word) != 1)
            return errbuf_set(eb, ERR_CORRUPT, "%s line %d: digest: expected 16 hex digits", path,
                              ln);
    } /* other keys: a later version's, ignored */
    return 0;
}

static int read_manifest(bundle_t *b, const char *dir, errbuf_t *eb)
{
    char path[BUNDLE_PATH_MAX], line[512];
    FILE *f;
    int ln = 0, rc = 0;

    rc = dirs_path(path, sizeof(path), eb, "%s/%s", dir, BUNDLE_MANIFEST);
    if (rc != 0)
        return rc;
    f = fopen(path, "r");
    if (!f)
        return errbuf_set(eb, errno == ENOENT ? ERR_NOTFOUND : ERR_IO,
                          "%s: %s (a bundle directory holds MANIFEST, META, dense.bin, full.emb)",
                          path, strerror(errno));
    b->day = b->base_day = b->model_type = -2;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        char *nl = strchr(line, '\n');
        ln++;
        if (nl)
            *nl = '\0';
        if (ln == 1) {
            int ver = 0;
            char magic[32];
            if (sscanf(line, "%31s %d", magic, &ver) != 2 || strcmp(magic, BUNDLE_MAGIC) != 0)
                rc = errbuf_set(eb, ERR_CORRUPT,
                                "%s: first line \"%.40s\", expected \"%s %d\": not a bundle", path,
                                line, BUNDLE_MAGIC, BUNDLE_VERSION);
            else if (ver != BUNDLE_VERSION)
                rc = errbuf_set(eb, ERR_VERSION,
                                "%s: bundle version %d; this funnel reads version %d (upgrade it)",
                                path, ver, BUNDLE_VERSION);
        } else {
            rc = manifest_line(b, path, ln, line, eb);
        }
    }
    fclose(f);
    if (rc == 0 && (b->day == -2 || b->base_day == -2 || b->model_type == -2 || ln == 0))
        rc = errbuf_set(eb, ERR_CORRUPT, "%s: missing the day, base_day or model_type line", path);
    return rc;
}

int bundle_open(bundle_t *b, const char *dir, errbuf_t *eb)
{
    const char *need[] = {BUNDLE_META, BUNDLE_DENSE, BUNDLE_FULL};
    char path[BUNDLE_PATH_MAX];
    int rc;

    memset(b, 0, sizeof(*b));
    if (snprintf(b->dir, sizeof(b->dir), "%s", dir) >= (int)sizeof(b->dir))
        return errbuf_set(eb, ERR_INVAL, "bundle path too long: %.64s...", dir);
    rc = read_manifest(b, dir, eb);
    for (int i = 0; rc == 0 && i < 3; i++)
        if (!bundle_has(b, need[i]))
            rc = errbuf_set(eb, ERR_CORRUPT, "%s/%s lists no %s", dir, BUNDLE_MANIFEST, need[i]);
    if (rc == 0 && bundle_has(b, BUNDLE_DELTA) != (b->base_day != -1))
        rc = errbuf_set(eb, ERR_CORRUPT, "%s/%s: base_day %d but %s %s", dir, BUNDLE_MANIFEST,
                        b->base_day, BUNDLE_DELTA, b->base_day != -1 ? "missing" : "listed");
    for (int i = 0; rc == 0 && i < b->nfiles; i++) {
        uint64_t bytes, h;
        rc = bundle_path(b, b->file[i].name, path, sizeof(path), eb);
        if (rc == 0)
            rc = hash_file(path, &bytes, &h, eb);
        if (rc == 0 && bytes != b->file[i].bytes)
            rc = errbuf_set(eb, ERR_CORRUPT,
                            "%s: %llu bytes, MANIFEST says %llu: damaged or "
                            "not this bundle's",
                            path, (unsigned long long)bytes, (unsigned long long)b->file[i].bytes);
        if (rc == 0 && h != b->file[i].xxh64)
            rc = errbuf_set(eb, ERR_CORRUPT,
                            "%s: XXH64 %016" PRIx64 ", MANIFEST says %016" PRIx64
                            ": the file is damaged",
                            path, h, b->file[i].xxh64);
    }
    if (rc == 0)
        rc = meta_read(dir, &b->meta, eb);
    if (rc == 0 && (b->meta.day != b->day || b->meta.model_type != b->model_type ||
                    b->meta.digest != b->digest))
        rc = errbuf_set(eb, ERR_CORRUPT,
                        "%s: META says day %d, %s, digest %016" PRIx64 "; MANIFEST says day %d, "
                        "%s, digest %016" PRIx64,
                        dir, b->meta.day, meta_model_name(b->meta.model_type), b->meta.digest,
                        b->day, meta_model_name(b->model_type), b->digest);
    return rc;
}
