/*
 * emb_export.c - the serving export file: its writer and reader, full and
 * delta exports of checkpoints, and applying a delta to a full export.
 * See emb_export.h for the format and docs/export-format.md for readers.
 */
#include "table/emb_export.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/afile.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/dirs.h"
#include "common/fdio.h"
#include "common/log.h"
#include "common/meta.h"
#include "table/emb_table.h"
#include "table/store.h"

#define BUF_BYTES (1u << 20) /* write and read buffer; holds any record */
#define HEAD_MAX (EMB_EXPORT_HEAD_FIXED + MODEL_MAX_SLOTS * (3 + MODEL_SLOT_NAME_MAX) + 8)
#define DIM_MAX 65535 /* u16 in the slot table */

float emb_export_float(const void *emb, size_t i)
{
    return bytes_get_le_float((const unsigned char *)emb + 4 * i);
}

/* (slot, key) order of records and rows. */
static int cmp_sk(int sa, uint64_t ka, int sb, uint64_t kb)
{
    if (sa != sb)
        return sa < sb ? -1 : 1;
    return ka < kb ? -1 : ka > kb;
}

/* ---- header ---- */

static int check_slots(const emb_export_header_t *h, const char *what, errbuf_t *eb)
{
    if (h->nslots < 1 || h->nslots > MODEL_MAX_SLOTS)
        return errbuf_set(eb, ERR_INVAL, "%s: %d slots (1..%d)", what, h->nslots, MODEL_MAX_SLOTS);
    for (int s = 0; s < h->nslots; s++) {
        size_t n = strnlen(h->slot[s], MODEL_SLOT_NAME_MAX);
        if (n == 0 || n >= MODEL_SLOT_NAME_MAX)
            return errbuf_set(eb, ERR_INVAL, "%s: slot %d has no name or one too long", what, s);
        if (h->dim[s] < 1 || h->dim[s] > DIM_MAX)
            return errbuf_set(eb, ERR_INVAL, "%s: slot %s has dim %d (1..%d)", what, h->slot[s],
                              h->dim[s], DIM_MAX);
    }
    return 0;
}

/* Encode h with the given record count into buf[HEAD_MAX]; returns its
 * length (header hash included). */
static size_t encode_header(const emb_export_header_t *h, uint64_t records, unsigned char *buf)
{
    size_t n = EMB_EXPORT_HEAD_FIXED;

    memcpy(buf, EMB_EXPORT_MAGIC, 8);
    bytes_put_le16(buf + 8, EMB_EXPORT_VERSION);
    buf[10] = (unsigned char)h->kind;
    buf[11] = (unsigned char)(h->nslots & 0xff); /* 256 slots: 0 */
    bytes_put_le32(buf + 12, (uint32_t)h->day);
    bytes_put_le32(buf + 16, (uint32_t)h->base_day);
    bytes_put_le64(buf + 24, records);
    for (int s = 0; s < h->nslots; s++) {
        size_t len = strlen(h->slot[s]);
        bytes_put_le16(buf + n, (uint16_t)h->dim[s]);
        buf[n + 2] = (unsigned char)len;
        memcpy(buf + n + 3, h->slot[s], len);
        n += 3 + len;
    }
    bytes_put_le32(buf + 20, (uint32_t)(n + 8));
    bytes_put_le64(buf + n, XXH64(buf, n, 0));
    return n + 8;
}

/* Compare two slot tables; ERR_MISMATCH naming the first difference. */
static int same_slots(const emb_export_header_t *a, const char *an, const emb_export_header_t *b,
                      const char *bn, errbuf_t *eb)
{
    if (a->nslots != b->nslots)
        return errbuf_set(eb, ERR_MISMATCH, "%s has %d slots but %s has %d", an, a->nslots, bn,
                          b->nslots);
    for (int s = 0; s < a->nslots; s++)
        if (strcmp(a->slot[s], b->slot[s]) != 0 || a->dim[s] != b->dim[s])
            return errbuf_set(eb, ERR_MISMATCH,
                              "slot %d is %s (dim %d) in %s but %s (dim %d) in %s", s, a->slot[s],
                              a->dim[s], an, b->slot[s], b->dim[s], bn);
    return 0;
}

/* ---- files ---- */

static int write_all(int fd, const void *data, size_t len, const char *path, errbuf_t *eb)
{
    int e = fdio_write(fd, data, len);

    return e ? errbuf_set(eb, ERR_IO, "write %s: %s", path, strerror(e)) : 0;
}

/* pread exactly len bytes at off; a short file is ERR_CORRUPT. */
static int read_at(int fd, void *data, size_t len, uint64_t off, const char *path, errbuf_t *eb)
{
    int e = fdio_pread(fd, data, len, off);

    if (e == FDIO_EOF)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: ends before byte %" PRIu64 " (the file shrank while being read?)",
                          path, off + len);
    return e ? errbuf_set(eb, ERR_IO, "read %s: %s", path, strerror(e)) : 0;
}

/* ---- writer ---- */

/* The file is made by afile (path.tmp, renamed over path when finished),
 * but written through its descriptor: records leave in buf-sized write()s
 * and the header is rewritten in place with pwrite(), so af.f's own buffer
 * stays empty. */
struct emb_export_writer {
    afile_t af; /* af.path, af.tmp */
    int fd;     /* fileno(af.f), -1 once closed */
    emb_export_header_t h;
    size_t head_len;     /* bytes */
    unsigned char *buf;  /* BUF_BYTES: records not yet written */
    size_t len;          /* bytes in buf */
    XXH64_state_t *hash; /* of the records section */
    uint64_t body;       /* bytes of records written to fd */
    uint64_t records, puts, deletes;
    int have_last;
    int last_slot;
    uint64_t last_key;
};

int emb_export_writer_open(emb_export_writer_t **out, const char *path,
                           const emb_export_header_t *h, errbuf_t *eb)
{
    unsigned char head[HEAD_MAX];
    emb_export_writer_t *w;
    int rc;

    *out = NULL;
    if (h->kind != EMB_EXPORT_FULL && h->kind != EMB_EXPORT_DELTA)
        return errbuf_set(eb, ERR_INVAL, "export %s: kind %d is neither full nor delta", path,
                          h->kind);
    rc = check_slots(h, path, eb);
    if (rc != 0)
        return rc;
    w = calloc(1, sizeof(*w)); /* a zeroed af: afile_abort() does nothing */
    if (!w)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    w->fd = -1;
    w->h = *h;
    w->buf = malloc(BUF_BYTES);
    w->hash = XXH64_createState();
    if (!w->buf || !w->hash) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto fail;
    }
    XXH64_reset(w->hash, 0);
    rc = afile_open(&w->af, path, eb);
    if (rc != 0)
        goto fail;
    w->fd = fileno(w->af.f);
    /* a placeholder: the record count is known at the end */
    w->head_len = encode_header(h, 0, head);
    rc = write_all(w->fd, head, w->head_len, w->af.tmp, eb);
    if (rc != 0)
        goto fail;
    *out = w;
    return 0;
fail:
    emb_export_writer_destroy(&w);
    return rc;
}

static int flush_buf(emb_export_writer_t *w, errbuf_t *eb)
{
    int rc;

    if (w->len == 0)
        return 0;
    XXH64_update(w->hash, w->buf, w->len);
    rc = write_all(w->fd, w->buf, w->len, w->af.tmp, eb);
    w->body += w->len;
    w->len = 0;
    return rc;
}

/* Reserve n bytes at the end of the buffer for the next record, after
 * checking its slot and order. */
static int begin_record(emb_export_writer_t *w, int op, int slot, uint64_t key, size_t n,
                        unsigned char **p, errbuf_t *eb)
{
    if (slot < 0 || slot >= w->h.nslots)
        return errbuf_set(eb, ERR_INVAL, "export %s: slot %d is not in the slot table", w->af.path,
                          slot);
    if (w->have_last && cmp_sk(slot, key, w->last_slot, w->last_key) <= 0)
        return errbuf_set(eb, ERR_INVAL,
                          "export %s: record (%d, %016" PRIx64 ") after (%d, %016" PRIx64
                          "): records must be in increasing (slot, key) order",
                          w->af.path, slot, key, w->last_slot, w->last_key);
    if (w->len + n > BUF_BYTES) {
        int rc = flush_buf(w, eb);
        if (rc != 0)
            return rc;
    }
    *p = w->buf + w->len;
    (*p)[0] = (unsigned char)op;
    (*p)[1] = (unsigned char)slot;
    bytes_put_le64(*p + 2, key);
    w->len += n;
    w->records++;
    w->have_last = 1;
    w->last_slot = slot;
    w->last_key = key;
    return 0;
}

int emb_export_writer_put(emb_export_writer_t *w, int slot, uint64_t key, const void *emb_le,
                          errbuf_t *eb)
{
    size_t fl = slot >= 0 && slot < w->h.nslots ? 4 * (size_t)w->h.dim[slot] : 0;
    unsigned char *p;
    int rc = begin_record(w, EMB_EXPORT_PUT, slot, key, EMB_EXPORT_REC_HEAD + fl, &p, eb);

    if (rc != 0)
        return rc;
    memcpy(p + EMB_EXPORT_REC_HEAD, emb_le, fl);
    w->puts++;
    return 0;
}

int emb_export_writer_delete(emb_export_writer_t *w, int slot, uint64_t key, errbuf_t *eb)
{
    unsigned char *p;
    int rc;

    if (w->h.kind != EMB_EXPORT_DELTA)
        return errbuf_set(eb, ERR_INVAL, "export %s: a full export has no deletes", w->af.path);
    rc = begin_record(w, EMB_EXPORT_DELETE, slot, key, EMB_EXPORT_REC_HEAD, &p, eb);
    if (rc == 0)
        w->deletes++;
    return rc;
}

int emb_export_writer_finish(emb_export_writer_t **wp, emb_export_stats_t *st, errbuf_t *eb)
{
    emb_export_writer_t *w = *wp;
    unsigned char head[HEAD_MAX], trailer[EMB_EXPORT_TRAILER];
    int rc = flush_buf(w, eb);

    if (rc != 0)
        goto out;
    bytes_put_le64(trailer, w->records);
    bytes_put_le64(trailer + 8, XXH64_digest(w->hash));
    memcpy(trailer + 16, EMB_EXPORT_END_MAGIC, 8);
    rc = write_all(w->fd, trailer, sizeof(trailer), w->af.tmp, eb);
    if (rc != 0)
        goto out;
    encode_header(&w->h, w->records, head);
    for (size_t done = 0; done < w->head_len;) {
        ssize_t n = pwrite(w->fd, head + done, w->head_len - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errbuf_set(eb, ERR_IO, "write %s: %s", w->af.tmp, strerror(errno));
            goto out;
        }
        done += (size_t)n;
    }
    w->fd = -1;
    rc = afile_commit(&w->af, eb); /* fsync, close, rename, fsync the directory */
    if (rc == 0 && st) {
        st->records = w->records;
        st->puts = w->puts;
        st->deletes = w->deletes;
        st->bytes = w->head_len + w->body + EMB_EXPORT_TRAILER;
    }
out:
    emb_export_writer_destroy(wp);
    return rc;
}

void emb_export_writer_destroy(emb_export_writer_t **wp)
{
    emb_export_writer_t *w = wp ? *wp : NULL;

    if (!w)
        return;
    afile_abort(&w->af); /* closes fd; removes path.tmp unless finished */
    if (w->hash)
        XXH64_freeState(w->hash);
    free(w->buf);
    free(w);
    *wp = NULL;
}

/* ---- reader ---- */

struct emb_export_reader {
    char path[DIRS_PATH_MAX]; /* for messages (cut short if longer) */
    int fd;
    emb_export_header_t h;
    uint64_t body_off;     /* bytes: where the records start */
    uint64_t body_len;     /* bytes of records */
    uint64_t read;         /* bytes of records read into buf so far */
    uint64_t trailer_hash; /* body hash the trailer promises */
    unsigned char *buf;    /* BUF_BYTES */
    size_t len, pos;       /* bytes in buf; of which consumed */
    XXH64_state_t *hash;   /* of the records read so far */
    uint64_t records;      /* records returned */
    int have_last;
    int last_slot;
    uint64_t last_key;
    int done;
};

static int parse_header(emb_export_reader_t *r, const unsigned char *p, size_t hl, errbuf_t *eb)
{
    emb_export_header_t *h = &r->h;
    size_t n = EMB_EXPORT_HEAD_FIXED;

    if (XXH64(p, hl - 8, 0) != bytes_get_le64(p + hl - 8))
        return errbuf_set(eb, ERR_CORRUPT, "%s: header checksum mismatch (the file is corrupt)",
                          r->path);
    h->version = bytes_get_le16(p + 8);
    h->kind = p[10];
    h->nslots = p[11] ? p[11] : 256; /* 0 means 256 (files with 1..255 read as before) */
    h->day = (int32_t)bytes_get_le32(p + 12);
    h->base_day = (int32_t)bytes_get_le32(p + 16);
    h->records = bytes_get_le64(p + 24);
    if (h->kind != EMB_EXPORT_FULL && h->kind != EMB_EXPORT_DELTA)
        return errbuf_set(eb, ERR_CORRUPT, "%s: kind %d is neither full (1) nor delta (2)", r->path,
                          h->kind);
    if (h->nslots < 1 || h->nslots > MODEL_MAX_SLOTS)
        return errbuf_set(eb, ERR_CORRUPT, "%s: %d slots (1..%d)", r->path, h->nslots,
                          MODEL_MAX_SLOTS);
    for (int s = 0; s < h->nslots; s++) {
        if (n + 3 > hl - 8)
            return errbuf_set(eb, ERR_CORRUPT, "%s: slot table cut short", r->path);
        size_t len = p[n + 2];
        h->dim[s] = bytes_get_le16(p + n);
        if (h->dim[s] < 1 || len < 1 || len >= MODEL_SLOT_NAME_MAX || n + 3 + len > hl - 8)
            return errbuf_set(eb, ERR_CORRUPT, "%s: slot %d: dim %d, name of %zu bytes", r->path, s,
                              h->dim[s], len);
        memcpy(h->slot[s], p + n + 3, len);
        h->slot[s][len] = '\0';
        n += 3 + len;
    }
    if (n != hl - 8)
        return errbuf_set(eb, ERR_CORRUPT, "%s: header length %zu does not match its slot table",
                          r->path, hl);
    return 0;
}

int emb_export_reader_open(emb_export_reader_t **out, const char *path, errbuf_t *eb)
{
    unsigned char head[HEAD_MAX], trailer[EMB_EXPORT_TRAILER];
    emb_export_reader_t *r;
    struct stat sb;
    uint64_t size;
    uint32_t hl;
    int rc, version;

    *out = NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->fd = open(path, O_RDONLY);
    if (r->fd < 0) {
        rc = errbuf_set(eb, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "open %s: %s", path,
                        strerror(errno));
        goto fail;
    }
    if (fstat(r->fd, &sb) != 0) {
        rc = errbuf_set(eb, ERR_IO, "stat %s: %s", path, strerror(errno));
        goto fail;
    }
    size = (uint64_t)sb.st_size;
    /* what the file is first, then whether it is whole */
    if (size >= 8 && (rc = read_at(r->fd, head, 8, 0, path, eb)) != 0)
        goto fail;
    if (size >= 8 && memcmp(head, EMB_EXPORT_MAGIC, 8) != 0) {
        rc = errbuf_set(eb, ERR_CORRUPT, "%s: not a funnel export (bad magic)", path);
        goto fail;
    }
    if (size < EMB_EXPORT_HEAD_FIXED + 8 + EMB_EXPORT_TRAILER) {
        rc = errbuf_set(eb, ERR_CORRUPT,
                        "%s: %" PRIu64 " bytes is too short for an export "
                        "(truncated?)",
                        path, size);
        goto fail;
    }
    rc = read_at(r->fd, head, EMB_EXPORT_HEAD_FIXED, 0, path, eb);
    if (rc != 0)
        goto fail;
    /* a newer version may lay out anything after the version differently */
    version = bytes_get_le16(head + 8);
    if (version > EMB_EXPORT_VERSION) {
        rc = errbuf_set(eb, ERR_VERSION,
                        "%s: export format version %d is newer than this "
                        "funnel's (%d): upgrade the reader",
                        path, version, EMB_EXPORT_VERSION);
        goto fail;
    }
    hl = bytes_get_le32(head + 20);
    if (version < 1 || hl < EMB_EXPORT_HEAD_FIXED + 8 || hl > HEAD_MAX ||
        hl > size - EMB_EXPORT_TRAILER) {
        rc = errbuf_set(eb, ERR_CORRUPT, "%s: impossible header (version %d, %u bytes)", path,
                        version, hl);
        goto fail;
    }
    rc = read_at(r->fd, head, hl, 0, path, eb);
    if (rc == 0)
        rc = parse_header(r, head, hl, eb);
    if (rc == 0)
        rc = read_at(r->fd, trailer, sizeof(trailer), size - EMB_EXPORT_TRAILER, path, eb);
    if (rc != 0)
        goto fail;
    if (memcmp(trailer + 16, EMB_EXPORT_END_MAGIC, 8) != 0) {
        rc = errbuf_set(eb, ERR_CORRUPT,
                        "%s: no trailer at the end: the file is truncated or "
                        "was not written completely",
                        path);
        goto fail;
    }
    r->body_off = hl;
    r->body_len = size - hl - EMB_EXPORT_TRAILER;
    r->trailer_hash = bytes_get_le64(trailer + 8);
    if (bytes_get_le64(trailer) != r->h.records ||
        r->h.records > r->body_len / EMB_EXPORT_REC_HEAD) {
        rc = errbuf_set(eb, ERR_CORRUPT,
                        "%s: the header says %" PRIu64 " records, the trailer "
                        "%" PRIu64 ", in %" PRIu64 " bytes of records",
                        path, r->h.records, bytes_get_le64(trailer), r->body_len);
        goto fail;
    }
    r->buf = malloc(BUF_BYTES);
    r->hash = XXH64_createState();
    if (!r->buf || !r->hash) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto fail;
    }
    XXH64_reset(r->hash, 0);
    *out = r;
    return 0;
fail:
    emb_export_reader_destroy(&r);
    return rc;
}

void emb_export_reader_destroy(emb_export_reader_t **rp)
{
    emb_export_reader_t *r = rp ? *rp : NULL;

    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    if (r->hash)
        XXH64_freeState(r->hash);
    free(r->buf);
    free(r);
    *rp = NULL;
}

const emb_export_header_t *emb_export_reader_header(const emb_export_reader_t *r)
{
    return &r->h;
}

/* Byte offset in the file of the next unconsumed record byte. */
static uint64_t offset_of(const emb_export_reader_t *r)
{
    return r->body_off + r->read - (r->len - r->pos);
}

/* Make at least need unconsumed bytes available in buf (every byte read is
 * hashed once). ERR_CORRUPT if the records section ends first. */
static int fill(emb_export_reader_t *r, size_t need, errbuf_t *eb)
{
    if (r->len - r->pos >= need)
        return 0;
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
    while (r->len < need && r->read < r->body_len) {
        uint64_t left = r->body_len - r->read;
        size_t n = BUF_BYTES - r->len < left ? BUF_BYTES - r->len : (size_t)left;
        int rc = read_at(r->fd, r->buf + r->len, n, r->body_off + r->read, r->path, eb);
        if (rc != 0)
            return rc;
        XXH64_update(r->hash, r->buf + r->len, n);
        r->len += n;
        r->read += n;
    }
    if (r->len < need)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: record %" PRIu64 " at byte %" PRIu64
                          " is cut short by the end of the records",
                          r->path, r->records, offset_of(r));
    return 0;
}

int emb_export_reader_next(emb_export_reader_t *r, emb_export_rec_t *rec, errbuf_t *eb)
{
    const unsigned char *p;
    size_t need;
    int rc, op, slot;

    if (r->done)
        return 0;
    if (r->pos == r->len && r->read == r->body_len) {
        if (r->records != r->h.records)
            return errbuf_set(eb, ERR_CORRUPT, "%s: %" PRIu64 " records, the header says %" PRIu64,
                              r->path, r->records, r->h.records);
        if (XXH64_digest(r->hash) != r->trailer_hash)
            return errbuf_set(eb, ERR_CORRUPT,
                              "%s: checksum mismatch in the records (the file "
                              "is corrupt)",
                              r->path);
        r->done = 1;
        return 0;
    }
    rc = fill(r, EMB_EXPORT_REC_HEAD, eb);
    if (rc != 0)
        return rc;
    p = r->buf + r->pos;
    op = p[0];
    slot = p[1];
    if (op != EMB_EXPORT_PUT && (op != EMB_EXPORT_DELETE || r->h.kind != EMB_EXPORT_DELTA))
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: record %" PRIu64 " at byte %" PRIu64
                          ": op %d is not %s (the file is corrupt)",
                          r->path, r->records, offset_of(r), op,
                          r->h.kind == EMB_EXPORT_DELTA ? "put (1) or delete (2)" : "put (1)");
    if (slot >= r->h.nslots)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: record %" PRIu64 " at byte %" PRIu64
                          ": slot %d is not in the slot table (the file is "
                          "corrupt)",
                          r->path, r->records, offset_of(r), slot);
    if (r->records >= r->h.records)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: more records than the %" PRIu64 " the header "
                          "says (the file is corrupt)",
                          r->path, r->h.records);
    need = EMB_EXPORT_REC_HEAD + (op == EMB_EXPORT_PUT ? 4 * (size_t)r->h.dim[slot] : 0);
    rc = fill(r, need, eb);
    if (rc != 0)
        return rc;
    p = r->buf + r->pos;
    rec->op = op;
    rec->slot = slot;
    rec->key = bytes_get_le64(p + 2);
    rec->emb = op == EMB_EXPORT_PUT ? p + EMB_EXPORT_REC_HEAD : NULL;
    if (r->have_last && cmp_sk(slot, rec->key, r->last_slot, r->last_key) <= 0)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: record %" PRIu64 " at byte %" PRIu64
                          " is out of (slot, key) order (the file is corrupt)",
                          r->path, r->records, offset_of(r));
    r->have_last = 1;
    r->last_slot = slot;
    r->last_key = rec->key;
    r->pos += need;
    r->records++;
    return 1;
}

/* ---- table directories ---- */

typedef struct row {
    int slot;
    uint64_t key;
    uint32_t updates;
    const void *emb; /* dim floats, little-endian, unaligned */
} row_t;

typedef struct shard_cur {
    store_t *st;
    store_iter_t *it;
    row_t row; /* the shard's next row, if have */
    int have;
} shard_cur_t;

/* The rows of a checkpoint, model directory or bare store, in (slot, key)
 * order across its shards. */
typedef struct src {
    const char *dir;
    emb_export_header_t h; /* slot table and day */
    int nshards;
    shard_cur_t *sh;
    int last;      /* shard whose row was returned last (advanced on the next call) */
    uint64_t rows; /* rows returned */
} src_t;

static int shard_advance(src_t *s, int i, errbuf_t *eb)
{
    shard_cur_t *c = &s->sh[i];
    const void *k, *v, *fl;
    size_t kl, vl;
    emb_row_meta_t meta;
    uint32_t nf;
    int sl;

    c->have = store_iter_next(c->st, c->it, &k, &kl, &v, &vl);
    if (!c->have) /* the end, or a read error that ended the iteration early */
        return store_iter_error(c->st, c->it, eb);
    if (emb_key_decode(k, kl, &c->row.slot, &c->row.key) != 0 ||
        emb_record_decode(v, vl, &sl, &meta, &fl, &nf) != 0)
        return errbuf_set(eb, ERR_CORRUPT, "%s: unreadable row record", c->st->name);
    if (c->row.slot >= s->h.nslots)
        return errbuf_set(eb, ERR_CORRUPT, "%s: a row of slot %d, but the table has %d slots",
                          c->st->name, c->row.slot, s->h.nslots);
    if (nf < (uint32_t)s->h.dim[c->row.slot])
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s: row %016" PRIx64 " of slot %s has %u floats, "
                          "fewer than its dim %d",
                          c->st->name, c->row.key, s->h.slot[c->row.slot], nf,
                          s->h.dim[c->row.slot]);
    c->row.updates = meta.updates;
    c->row.emb = fl;
    return 1;
}

static void src_close(src_t *s)
{
    for (int i = 0; s->sh && i < s->nshards; i++) {
        if (s->sh[i].st) {
            store_iter_destroy(s->sh[i].st, &s->sh[i].it);
            store_close(&s->sh[i].st);
        }
    }
    free(s->sh);
    s->sh = NULL;
}

/* Slot table and day from dir/META, or from o for a bare store. */
static int src_describe(src_t *s, const emb_export_opts_t *o, errbuf_t *eb)
{
    char path[DIRS_PATH_MAX];
    struct stat sb;
    meta_t m;
    int rc = meta_read(s->dir, &m, eb);

    if (rc == 0) {
        s->h.nslots = m.nslots;
        for (int i = 0; i < m.nslots; i++) {
            snprintf(s->h.slot[i], sizeof(s->h.slot[i]), "%s", m.slot[i]);
            s->h.dim[i] = m.dim[i];
        }
        s->h.day = m.day;
        s->nshards = m.shards;
        if (m.shards < 1)
            return errbuf_set(eb, ERR_CORRUPT, "%s/META: %d shards", s->dir, m.shards);
        return check_slots(&s->h, s->dir, eb) ? ERR_CORRUPT : 0;
    }
    if (rc != ERR_NOTFOUND)
        return rc;
    if ((rc = dirs_path(path, sizeof(path), eb, "%s/shard-0", s->dir)) != 0)
        return rc;
    if (stat(path, &sb) == 0)
        return errbuf_set(eb, ERR_NOTFOUND,
                          "%s has shard-0 but no META: not a complete "
                          "checkpoint",
                          s->dir);
    if (!o || !o->spec)
        return errbuf_set(eb, ERR_NOTFOUND,
                          "%s: no META (give a checkpoint or a model "
                          "directory)",
                          s->dir);
    s->h.nslots = o->spec->nslots;
    for (int i = 0; i < o->spec->nslots; i++) {
        snprintf(s->h.slot[i], sizeof(s->h.slot[i]), "%s", o->spec->slot[i].name);
        s->h.dim[i] = o->spec->slot[i].dim;
    }
    s->h.day = o->day;
    s->nshards = 0; /* the directory itself is the one store */
    return check_slots(&s->h, s->dir, eb);
}

static int src_open(src_t *s, const char *dir, const emb_export_opts_t *o, errbuf_t *eb)
{
    const char pfx = 'r';
    int rc, bare, n;

    memset(s, 0, sizeof(*s));
    s->dir = dir;
    s->last = -1;
    rc = src_describe(s, o, eb);
    if (rc != 0)
        return rc;
    bare = s->nshards == 0;
    n = bare ? 1 : s->nshards;
    s->sh = calloc((size_t)n, sizeof(*s->sh));
    if (!s->sh)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    s->nshards = n;
    for (int i = 0; i < n && rc == 0; i++) {
        char path[DIRS_PATH_MAX];
        struct stat sb;
        if (bare)
            rc = dirs_path(path, sizeof(path), eb, "%s", dir);
        else
            rc = dirs_path(path, sizeof(path), eb, "%s/shard-%d", dir, i);
        if (rc != 0)
            break;
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            rc = bare ? errbuf_set(eb, ERR_NOTFOUND, "%s: not a directory", path)
                      : errbuf_set(eb, ERR_NOTFOUND, "%s: missing (META says %d shards)", path, n);
            break;
        }
        rc = emb_store_open(&s->sh[i].st, path, STORE_READONLY, path, eb);
        if (rc != 0)
            break;
        s->sh[i].it = store_iter_new(s->sh[i].st, &pfx, 1);
        if (!s->sh[i].it) {
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
            break;
        }
        rc = shard_advance(s, i, eb);
        rc = rc < 0 ? rc : 0;
    }
    if (rc != 0)
        src_close(s);
    return rc;
}

/* The next row in (slot, key) order over all shards: 1, 0 at the end, or
 * an error. r stays valid until the next call. */
static int src_next(src_t *s, row_t *r, errbuf_t *eb)
{
    int best = -1;

    if (s->last >= 0) {
        int rc = shard_advance(s, s->last, eb);
        if (rc < 0)
            return rc;
        s->last = -1;
    }
    /* a handful of shards: a linear scan beats a heap */
    for (int i = 0; i < s->nshards; i++) {
        if (!s->sh[i].have)
            continue;
        if (best < 0) {
            best = i;
            continue;
        }
        const row_t *a = &s->sh[i].row, *b = &s->sh[best].row;
        int c = cmp_sk(a->slot, a->key, b->slot, b->key);
        if (c == 0)
            return errbuf_set(eb, ERR_CORRUPT,
                              "%s: key %016" PRIx64 " of slot %s is in shards "
                              "%d and %d",
                              s->dir, a->key, s->h.slot[a->slot], best, i);
        if (c < 0)
            best = i;
    }
    if (best < 0)
        return 0;
    *r = s->sh[best].row;
    s->last = best;
    s->rows++;
    return 1;
}

/* ---- exports ---- */

#define TICK_EVERY 5.0 /* s between progress lines of a long export */

/* A log line every TICK_EVERY seconds while an export runs, so a long one
 * is seen to move (rows checked every 64 Ki rows, not per row). */
static void tick(const char *what, uint64_t rows, double t0, double *last)
{
    double now;

    if (rows & 0xffff)
        return;
    now = clock_now_s();
    if (now - *last < TICK_EVERY)
        return;
    *last = now;
    LOG_INFO("%s: %llu rows read (%.0f rows/s)", what, (unsigned long long)rows,
             (double)rows / (now - t0));
}

int emb_export_full(const char *dir, const emb_export_opts_t *o, const char *out,
                    emb_export_stats_t *st, errbuf_t *eb)
{
    emb_export_writer_t *w = NULL;
    emb_export_stats_t ws = {0};
    double t0 = clock_now_s();
    src_t s;
    row_t r;
    int rc = src_open(&s, dir, o, eb);

    if (rc != 0)
        return rc;
    s.h.kind = EMB_EXPORT_FULL;
    s.h.base_day = -1;
    rc = emb_export_writer_open(&w, out, &s.h, eb);
    double last = t0;
    while (rc == 0 && (rc = src_next(&s, &r, eb)) == 1) {
        rc = emb_export_writer_put(w, r.slot, r.key, r.emb, eb);
        tick("export", s.rows, t0, &last);
    }
    if (rc == 0)
        rc = emb_export_writer_finish(&w, &ws, eb);
    if (rc == 0 && st) {
        *st = ws;
        st->scanned = st->source = s.rows;
        st->seconds = clock_now_s() - t0;
    }
    emb_export_writer_destroy(&w);
    src_close(&s);
    return rc;
}

int emb_export_delta(const char *dir, const char *prev, const emb_export_opts_t *o, const char *out,
                     emb_export_stats_t *st, errbuf_t *eb)
{
    emb_export_writer_t *w = NULL;
    emb_export_stats_t ws = {0};
    double t0 = clock_now_s();
    src_t cur, old;
    row_t rn, rp;
    int hc, hp, rc;

    memset(&old, 0, sizeof(old));
    rc = src_open(&cur, dir, o, eb);
    if (rc != 0)
        return rc;
    rc = src_open(&old, prev, o, eb);
    if (rc != 0)
        goto out;
    if (cur.nshards != old.nshards) {
        rc = errbuf_set(eb, ERR_MISMATCH,
                        "%s has %d shards but %s has %d: a delta needs two "
                        "checkpoints of the same cluster layout",
                        dir, cur.nshards, prev, old.nshards);
        goto out;
    }
    rc = same_slots(&cur.h, dir, &old.h, prev, eb);
    if (rc != 0)
        goto out;
    cur.h.kind = EMB_EXPORT_DELTA;
    cur.h.base_day = old.h.day;
    rc = emb_export_writer_open(&w, out, &cur.h, eb);
    if (rc != 0)
        goto out;
    double last = t0;
    hc = src_next(&cur, &rn, eb);
    hp = src_next(&old, &rp, eb);
    while ((hc == 1 || hp == 1) && hc >= 0 && hp >= 0) {
        int c = hp != 1 ? 1 : hc != 1 ? -1 : cmp_sk(rp.slot, rp.key, rn.slot, rn.key);
        if (c < 0)
            rc = emb_export_writer_delete(w, rp.slot, rp.key, eb);
        else if (c > 0 || rp.updates != rn.updates ||
                 memcmp(rp.emb, rn.emb, 4 * (size_t)cur.h.dim[rn.slot]) != 0)
            rc = emb_export_writer_put(w, rn.slot, rn.key, rn.emb, eb);
        if (rc != 0)
            goto out;
        if (c <= 0)
            hp = src_next(&old, &rp, eb);
        if (c >= 0 && hp >= 0)
            hc = src_next(&cur, &rn, eb);
        tick("delta export", cur.rows, t0, &last);
    }
    if (hc < 0 || hp < 0) {
        rc = hc < 0 ? hc : hp;
        goto out;
    }
    rc = emb_export_writer_finish(&w, &ws, eb);
    if (rc == 0 && st) {
        *st = ws;
        st->scanned = cur.rows + old.rows;
        st->source = cur.rows;
        st->seconds = clock_now_s() - t0;
    }
out:
    emb_export_writer_destroy(&w);
    src_close(&old);
    src_close(&cur);
    return rc;
}

int emb_export_apply(const char *base, const char *delta, const char *out, emb_export_stats_t *st,
                     errbuf_t *eb)
{
    emb_export_reader_t *rb = NULL, *rd = NULL;
    emb_export_writer_t *w = NULL;
    emb_export_stats_t ws = {0};
    const emb_export_header_t *hb, *hd;
    emb_export_header_t h;
    emb_export_rec_t b, d;
    uint64_t nb = 0, nd = 0;
    double t0 = clock_now_s();
    int has_b, has_d, rc;

    rc = emb_export_reader_open(&rb, base, eb);
    if (rc == 0)
        rc = emb_export_reader_open(&rd, delta, eb);
    if (rc != 0)
        goto out;
    hb = emb_export_reader_header(rb);
    hd = emb_export_reader_header(rd);
    if (hb->kind != EMB_EXPORT_FULL || hd->kind != EMB_EXPORT_DELTA) {
        rc = errbuf_set(eb, ERR_MISMATCH,
                        "apply needs a full export and a delta: %s is a %s "
                        "export, %s a %s export",
                        base, hb->kind == EMB_EXPORT_FULL ? "full" : "delta", delta,
                        hd->kind == EMB_EXPORT_FULL ? "full" : "delta");
        goto out;
    }
    if (hd->base_day != hb->day) {
        rc = errbuf_set(eb, ERR_MISMATCH, "%s is the delta from day %d, but %s is day %d", delta,
                        hd->base_day, base, hb->day);
        goto out;
    }
    rc = same_slots(hb, base, hd, delta, eb);
    if (rc != 0)
        goto out;
    h = *hb;
    h.day = hd->day;
    rc = emb_export_writer_open(&w, out, &h, eb);
    if (rc != 0)
        goto out;
    has_b = emb_export_reader_next(rb, &b, eb);
    has_d = emb_export_reader_next(rd, &d, eb);
    /* both in (slot, key) order: merge, the delta's record winning */
    while ((has_b == 1 || has_d == 1) && has_b >= 0 && has_d >= 0) {
        int c = has_d != 1 ? -1 : has_b != 1 ? 1 : cmp_sk(b.slot, b.key, d.slot, d.key);
        if (c < 0)
            rc = emb_export_writer_put(w, b.slot, b.key, b.emb, eb);
        else if (d.op == EMB_EXPORT_PUT)
            rc = emb_export_writer_put(w, d.slot, d.key, d.emb, eb);
        else if (c > 0)
            rc = errbuf_set(eb, ERR_MISMATCH,
                            "%s deletes key %016" PRIx64 " of slot %s, which "
                            "%s does not have: not the base of this delta",
                            delta, d.key, h.slot[d.slot], base);
        if (rc != 0)
            goto out;
        if (c <= 0) {
            has_b = emb_export_reader_next(rb, &b, eb);
            nb++;
        }
        if (c >= 0 && has_b >= 0) {
            has_d = emb_export_reader_next(rd, &d, eb);
            nd++;
        }
    }
    if (has_b < 0 || has_d < 0) {
        rc = has_b < 0 ? has_b : has_d;
        goto out;
    }
    rc = emb_export_writer_finish(&w, &ws, eb);
    if (rc == 0 && st) {
        *st = ws;
        st->scanned = nb + nd;
        st->source = nd;
        st->seconds = clock_now_s() - t0;
    }
out:
    emb_export_writer_destroy(&w);
    emb_export_reader_destroy(&rd);
    emb_export_reader_destroy(&rb);
    return rc;
}

int emb_export_dump(const char *path, FILE *out, errbuf_t *eb)
{
    emb_export_reader_t *r = NULL;
    const emb_export_header_t *h;
    emb_export_rec_t rec;
    int rc = emb_export_reader_open(&r, path, eb);

    if (rc != 0)
        return rc;
    h = emb_export_reader_header(r);
    fprintf(out, "# funnel export version %d, %s, day %d", h->version,
            h->kind == EMB_EXPORT_FULL ? "full" : "delta", h->day);
    if (h->kind == EMB_EXPORT_DELTA)
        fprintf(out, ", base day %d", h->base_day);
    fprintf(out, ", %" PRIu64 " records\n", h->records);
    for (int s = 0; s < h->nslots; s++)
        fprintf(out, "# slot %d %s dim %d\n", s, h->slot[s], h->dim[s]);
    fprintf(out, "op\tslot\tkey\tembedding\n");
    while ((rc = emb_export_reader_next(r, &rec, eb)) == 1) {
        fprintf(out, "%s\t%s\t%016" PRIx64 "\t", rec.op == EMB_EXPORT_PUT ? "put" : "delete",
                h->slot[rec.slot], rec.key);
        if (rec.op == EMB_EXPORT_PUT)
            for (int d = 0; d < h->dim[rec.slot]; d++)
                fprintf(out, "%s%.9g", d ? "," : "", emb_export_float(rec.emb, (size_t)d));
        fputc('\n', out);
    }
    if (rc == 0)
        fprintf(out, "# end: %" PRIu64 " records, checksum ok\n", h->records);
    emb_export_reader_destroy(&r);
    return rc;
}
