/*
 * spill.c - the spill file of a slot: appended records, a compact index,
 * compaction. See spill.h for the design notes.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "table/spill.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/rng.h"

#define IX_EMPTY 0u
#define IX_TOMB 1u
#define NUM_MASK 0x0fffffffu                 /* record number + 2 */
#define MAX_RECORDS ((uint64_t)NUM_MASK - 2) /* record numbers 0 .. 2^28 - 4 */
#define INDEX_MIN 256u
#define LOAD_MAX 88            /* percent: occupied positions that start a rebuild */
#define LOAD_REBUILD 70        /* percent: the load a rebuild aims at */
#define DEAD_FACTOR 3          /* records per live one that start a compaction */
#define DEAD_MIN 65536u        /* ... once at least this many are dead */
#define BUF_BYTES (64u << 10)  /* the write buffer */
#define CHUNK_BYTES (1u << 20) /* compaction and flush reads */

struct spill {
    int fd;
    size_t rec;
    uint64_t mem_cap;
    char name[128];
    char dir[4096];
    char err[512];
    uint32_t *idx, icap; /* entries: tag << 28 | (record + 2), or IX_EMPTY / IX_TOMB */
    uint32_t occupied;   /* positions live or dead (tombstones) */
    uint32_t n, nfile;   /* records; of which in the file (the rest in buf) */
    uint32_t live, dirty;
    uint64_t *blive, *bdirty, *bstored; /* bit maps over records */
    uint32_t bcap;                      /* records the bit maps cover */
    unsigned char *buf;                 /* records nfile .. n - 1 */
    uint32_t bufrec;                    /* buffer capacity in records */
    int failed;                         /* a write failed: take nothing more */
    int at_cap;                         /* the last rebuild could not grow the index */
    spill_stats_t st;
};

static inline uint64_t hash_of(uint64_t key)
{
    return rng_mix64(key ^ UINT64_C(0x5157494c4c464e4c));
}
/* Any index size: the high half of the hash scaled to [0, icap). */
static inline uint32_t home_of(uint64_t h, uint32_t icap)
{
    return (uint32_t)(((h >> 32) * (uint64_t)icap) >> 32);
}
static inline uint32_t next_pos(uint32_t pos, uint32_t icap)
{
    return pos + 1 == icap ? 0 : pos + 1;
}
static inline uint32_t tag_of(uint64_t h)
{
    return ((uint32_t)h & 0xfu) << 28;
}
static inline int bit(const uint64_t *m, uint32_t i)
{
    return (int)((m[i >> 6] >> (i & 63)) & 1);
}
static inline void bput(uint64_t *m, uint32_t i, int v)
{
    if (v)
        m[i >> 6] |= UINT64_C(1) << (i & 63);
    else
        m[i >> 6] &= ~(UINT64_C(1) << (i & 63));
}

static uint64_t mem_of(uint32_t icap, uint32_t bcap, uint32_t bufrec, size_t rec)
{
    return (uint64_t)icap * 4 + (uint64_t)bcap / 8 * 3 + (uint64_t)bufrec * rec;
}

uint64_t spill_mem_bytes(const spill_t *sp)
{
    return sp ? mem_of(sp->icap, sp->bcap, sp->bufrec, sp->rec) : 0;
}

void spill_set_cap(spill_t *sp, uint64_t mem_cap)
{
    sp->mem_cap = mem_cap;
}

uint64_t spill_rows(const spill_t *sp)
{
    return sp ? sp->live : 0;
}

const char *spill_error(const spill_t *sp)
{
    return sp ? sp->err : "";
}

void spill_stats(const spill_t *sp, spill_stats_t *st)
{
    *st = sp->st;
    st->rows = sp->live;
    st->dirty = sp->dirty;
    st->records = sp->n;
    st->mem_bytes = spill_mem_bytes(sp);
}

/* fdio_pread() with a short file as EIO: the file is ours, so it cannot be
 * shorter than the records it was given. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    int e = fdio_pread(fd, buf, len, off);
    return e == FDIO_EOF ? EIO : e;
}

/* Bits of the bit maps for n records: a multiple of 512. */
static uint32_t bits_for(uint32_t n)
{
    return (n / 512 + 1) * 512;
}

static int grow_bits(spill_t *sp, uint32_t need)
{
    uint32_t cap = sp->bcap;
    if (cap < need)
        cap = bits_for(need > cap + cap / 4 ? need : cap + cap / 4);
    if (cap == sp->bcap)
        return 0;
    size_t ow = (size_t)sp->bcap / 64, nw = (size_t)cap / 64;
    uint64_t **maps[3] = {&sp->blive, &sp->bdirty, &sp->bstored};
    for (int i = 0; i < 3; i++) {
        uint64_t *m = realloc(*maps[i], nw * 8);
        if (!m)
            return ERR_NOMEM;
        memset(m + ow, 0, (nw - ow) * 8);
        *maps[i] = m;
    }
    sp->bcap = cap;
    return 0;
}

static int tmpfile_in(const char *dir);

int spill_open(spill_t **out, const char *dir, size_t rec, uint64_t mem_cap, const char *name,
               errbuf_t *eb)
{
    spill_t *sp = rec >= 8 ? calloc(1, sizeof(*sp)) : NULL;

    *out = NULL;
    if (!sp)
        return errbuf_set(eb, rec < 8 ? ERR_INVAL : ERR_NOMEM, "%s: spill: %s", name,
                          rec < 8 ? "records under 8 bytes" : "out of memory");
    sp->fd = -1;
    sp->rec = rec;
    sp->mem_cap = mem_cap;
    snprintf(sp->name, sizeof(sp->name), "%s", name);
    /* the buffer: BUF_BYTES, or a sixteenth of a smaller cap */
    uint64_t bb = mem_cap && mem_cap / 16 < BUF_BYTES ? mem_cap / 16 : BUF_BYTES;
    sp->bufrec = bb / rec ? (uint32_t)(bb / rec) : 1;
    sp->icap = INDEX_MIN;
    sp->idx = calloc(sp->icap, sizeof(uint32_t));
    sp->buf = malloc((size_t)sp->bufrec * rec);
    if (!sp->idx || !sp->buf || grow_bits(sp, 1) != 0) {
        spill_close(&sp);
        return errbuf_set(eb, ERR_NOMEM, "spill: out of memory");
    }
    snprintf(sp->dir, sizeof(sp->dir), "%s", dir);
    sp->fd = tmpfile_in(dir);
    if (sp->fd < 0) {
        int e = errno;
        spill_close(&sp);
        return errbuf_set(eb, ERR_IO, "%s: cannot create a spill file in %s: %s", name, dir,
                          strerror(e));
    }
    *out = sp;
    return 0;
}

void spill_close(spill_t **spp)
{
    spill_t *sp = spp ? *spp : NULL;

    if (!sp)
        return;
    if (sp->fd >= 0)
        close(sp->fd);
    free(sp->idx);
    free(sp->buf);
    free(sp->blive);
    free(sp->bdirty);
    free(sp->bstored);
    free(sp);
    *spp = NULL;
}

/* Write the buffered records to the file. 0, or errno (kept in err). */
static int flush_buf(spill_t *sp)
{
    if (sp->n == sp->nfile)
        return 0;
    int e = fdio_pwrite(sp->fd, sp->buf, (size_t)(sp->n - sp->nfile) * sp->rec,
                        (uint64_t)sp->nfile * sp->rec);
    if (e != 0) {
        sp->failed = 1;
        snprintf(sp->err, sizeof(sp->err),
                 "%s: spill file write failed (%s); evicted rows go to "
                 "the store from now on",
                 sp->name, strerror(e));
        return e;
    }
    sp->nfile = sp->n;
    return 0;
}

static int read_rec(spill_t *sp, uint32_t i, void *out)
{
    if (i >= sp->nfile) {
        memcpy(out, sp->buf + (size_t)(i - sp->nfile) * sp->rec, sp->rec);
        return 0;
    }
    sp->st.read_calls++;
    return read_at(sp->fd, out, sp->rec, (uint64_t)i * sp->rec);
}

static inline uint64_t rec_key(const unsigned char *p)
{
    uint64_t k;
    memcpy(&k, p, 8);
    return k;
}

/* Enter record i at the first empty or dead position of its chain;
 * returns 1 if the position was empty (one more occupied). */
static int index_put(uint32_t *idx, uint32_t icap, uint64_t h, uint32_t i)
{
    uint32_t pos = home_of(h, icap);
    while (idx[pos] > IX_TOMB)
        pos = next_pos(pos, icap);
    int was_empty = idx[pos] == IX_EMPTY;
    idx[pos] = tag_of(h) | (i + 2);
    return was_empty;
}

/* The index position of key, or UINT32_MAX; its record is read into out
 * (which must hold rec bytes). < 0: a read failed. */
static int64_t find(spill_t *sp, uint64_t key, void *out)
{
    uint64_t h = hash_of(key);
    uint32_t pos = home_of(h, sp->icap), tag = tag_of(h);

    for (uint32_t probe = 0; probe < sp->icap; probe++, pos = next_pos(pos, sp->icap)) {
        uint32_t e = sp->idx[pos];
        if (e == IX_EMPTY)
            return UINT32_MAX;
        if (e == IX_TOMB || (e & ~NUM_MASK) != tag)
            continue;
        int rc = read_rec(sp, (e & NUM_MASK) - 2, out);
        if (rc != 0)
            return -rc;
        if (rec_key(out) == key)
            return pos;
    }
    return UINT32_MAX;
}

/* The index size for live rows after a rebuild: LOAD_REBUILD full, or
 * fuller to stay within the memory cap (never past LOAD_MAX); 0 if even
 * that passes the cap. */
static uint32_t index_size(const spill_t *sp, uint32_t live)
{
    uint64_t cap = (uint64_t)live * 100 / LOAD_REBUILD + INDEX_MIN;
    uint64_t least = (uint64_t)(live + INDEX_MIN / 4) * 100 / LOAD_MAX + 1;

    if (cap > (1u << 30))
        cap = 1u << 30;
    if (sp->mem_cap) {
        uint64_t fixed = mem_of(0, bits_for(live), sp->bufrec, sp->rec);
        uint64_t room = sp->mem_cap > fixed ? (sp->mem_cap - fixed) / 4 : 0;
        if (cap > room)
            cap = room;
    }
    return cap >= least && cap <= (1u << 30) ? (uint32_t)cap : 0;
}

/* A new unlinked file in dir; the fd or -1 (errno set). */
static int tmpfile_in(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        /* a file system without O_TMPFILE: a named file, unlinked at once */
        char path[4096];
        snprintf(path, sizeof(path), "%s/.spill-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
    }
    return fd;
}

/* Records c0 .. c0 + cn - 1 of the file into in, if any of them is live
 * (*any). 0 or an errno. */
static int read_live_chunk(spill_t *sp, uint32_t c0, uint32_t cn, unsigned char *in, int *any)
{
    *any = 0;
    for (uint32_t j = 0; j < cn && !*any; j++)
        *any = bit(sp->blive, c0 + j);
    return *any ? read_at(sp->fd, in, (size_t)cn * sp->rec, (uint64_t)c0 * sp->rec) : 0;
}

/*
 * A new index of cap positions for the records of the current file,
 * read from it (CHUNK_BYTES at a time into in): how a compaction that
 * failed gets the old file's index back. Drops the tombstones. 0, or
 * ERR_NOMEM / an errno (then sp->idx is NULL).
 */
static int reindex(spill_t *sp, uint32_t cap, unsigned char *in, uint32_t per)
{
    int e = 0;

    sp->idx = calloc(cap, sizeof(uint32_t));
    if (!sp->idx)
        return ERR_NOMEM;
    sp->icap = cap;
    for (uint32_t c0 = 0; c0 < sp->nfile && e == 0; c0 += per) {
        uint32_t cn = sp->nfile - c0 < per ? sp->nfile - c0 : per;
        int any;
        if ((e = read_live_chunk(sp, c0, cn, in, &any)) != 0 || !any)
            continue;
        for (uint32_t j = 0; j < cn; j++)
            if (bit(sp->blive, c0 + j))
                (void)index_put(sp->idx, cap, hash_of(rec_key(in + (size_t)j * sp->rec)), c0 + j);
    }
    if (e != 0) {
        free(sp->idx);
        sp->idx = NULL;
    }
    sp->occupied = sp->live;
    return e;
}

/*
 * Copy the live records, in order, to a new file (CHUNK_BYTES reads and
 * writes) with a new index at index_size() and new bit maps, then let go
 * of the old file. One index exists at a time: the old one is freed
 * first, the new one built from the records as they are copied (the
 * indexes are most of the spill's memory, so two at once would pass the
 * budget). On a failure the old file and maps stay, and its index is
 * built again from the old file; only if that too fails (its records
 * unreadable, or no memory for an index the size of the one just freed)
 * are the spilled rows dropped, which loses what of them changed since
 * the last flush, as a crash would. 0 or an errno / ERR_NOMEM.
 */
static int compact(spill_t *sp)
{
    uint32_t ncap = index_size(sp, sp->live), per = (uint32_t)(CHUNK_BYTES / sp->rec);
    uint32_t nbcap = bits_for(sp->live), ocap = sp->icap;
    size_t words = (size_t)nbcap / 64;
    uint32_t *nidx = NULL;
    uint64_t *nlive = NULL, *ndirty = NULL, *nstored = NULL;
    unsigned char *in = NULL, *outb = NULL;
    uint32_t w = 0, wbuf = 0;
    int e, fd = -1;

    if (ncap == 0)
        ncap = sp->icap; /* no room to grow: at least drop the dead */
    if (per == 0)
        per = 1;
    if ((e = flush_buf(sp)) != 0)
        return e;
    nlive = calloc(words, 8);
    ndirty = calloc(words, 8);
    nstored = calloc(words, 8);
    in = malloc((size_t)per * sp->rec);
    outb = malloc((size_t)per * sp->rec);
    if (!nlive || !ndirty || !nstored || !in || !outb)
        e = ERR_NOMEM;
    else if ((fd = tmpfile_in(sp->dir)) < 0)
        e = errno;
    if (e == 0) {
        free(sp->idx);
        sp->idx = NULL;
        if (!(nidx = calloc(ncap, sizeof(uint32_t))))
            e = ERR_NOMEM;
    }
    for (uint32_t c0 = 0; c0 < sp->n && e == 0; c0 += per) {
        uint32_t cn = sp->n - c0 < per ? sp->n - c0 : per;
        int any;
        if ((e = read_live_chunk(sp, c0, cn, in, &any)) != 0)
            break;
        if (!any)
            continue;
        for (uint32_t j = 0; j < cn && e == 0; j++) {
            uint32_t i = c0 + j;
            if (!bit(sp->blive, i))
                continue;
            memcpy(outb + (size_t)wbuf * sp->rec, in + (size_t)j * sp->rec, sp->rec);
            (void)index_put(nidx, ncap, hash_of(rec_key(in + (size_t)j * sp->rec)), w);
            bput(nlive, w, 1);
            bput(ndirty, w, bit(sp->bdirty, i));
            bput(nstored, w, bit(sp->bstored, i));
            w++;
            if (++wbuf == per) {
                e = fdio_pwrite(fd, outb, (size_t)wbuf * sp->rec, (uint64_t)(w - wbuf) * sp->rec);
                wbuf = 0;
            }
        }
    }
    if (e == 0 && wbuf > 0)
        e = fdio_pwrite(fd, outb, (size_t)wbuf * sp->rec, (uint64_t)(w - wbuf) * sp->rec);
    free(outb);
    if (e != 0) {
        if (fd >= 0)
            close(fd);
        free(nidx);
        free(nlive);
        free(ndirty);
        free(nstored);
        const char *lost = "";
        if (!sp->idx && (!in || reindex(sp, ocap, in, per) != 0)) {
            /* the old index could not be rebuilt: its rows are gone */
            lost = "; the rows it held that changed since the last flush are lost";
            sp->idx = calloc(INDEX_MIN, sizeof(uint32_t)); /* empty: finds nothing */
            sp->icap = sp->idx ? INDEX_MIN : 0;
            sp->live = sp->dirty = sp->occupied = 0;
            memset(sp->blive, 0, (size_t)sp->bcap / 8);
            memset(sp->bdirty, 0, (size_t)sp->bcap / 8);
        }
        free(in);
        snprintf(sp->err, sizeof(sp->err),
                 "%s: spill file compaction failed (%s); evicted rows go to the store from now "
                 "on%s",
                 sp->name, e == ERR_NOMEM ? "out of memory" : strerror(e), lost);
        sp->failed = 1;
        return e;
    }
    free(in);
    close(sp->fd);
    sp->fd = fd;
    free(sp->blive);
    free(sp->bdirty);
    free(sp->bstored);
    sp->idx = nidx;
    sp->blive = nlive;
    sp->bdirty = ndirty;
    sp->bstored = nstored;
    sp->bcap = nbcap;
    sp->at_cap = (uint64_t)sp->live * 100 > (uint64_t)ncap * LOAD_REBUILD;
    sp->icap = ncap;
    sp->occupied = sp->live;
    sp->n = sp->nfile = w;
    sp->st.compactions++;
    return 0;
}

int spill_compact(spill_t *sp, errbuf_t *eb)
{
    if (sp->failed)
        return errbuf_set(eb, ERR_IO, "%s", sp->err);
    int e = compact(sp);
    if (e != 0)
        return errbuf_set(eb, e == ERR_NOMEM ? ERR_NOMEM : ERR_IO, "%s", sp->err);
    return 0;
}

int spill_put(spill_t *sp, uint64_t key, const void *rec, unsigned flags)
{
    if (sp->failed) {
        sp->st.refused++;
        return SPILL_FULL;
    }
    int full_index = (uint64_t)(sp->occupied + 1) * 100 > (uint64_t)sp->icap * LOAD_MAX;
    int full_file = sp->n >= MAX_RECORDS ||
                    (sp->n >= DEAD_FACTOR * (uint64_t)sp->live && sp->n - sp->live >= DEAD_MIN) ||
                    (sp->mem_cap && sp->n + 1 > sp->bcap &&
                     mem_of(sp->icap, bits_for(sp->n + 1), sp->bufrec, sp->rec) > sp->mem_cap);
    if (full_index || full_file) {
        /* at the cap with few tombstones, a rebuild would not make room */
        int futile = !full_file && sp->at_cap && sp->occupied - sp->live < sp->icap / 10;
        if (futile || compact(sp) != 0 ||
            (uint64_t)(sp->occupied + 1) * 100 > (uint64_t)sp->icap * LOAD_MAX ||
            sp->n >= MAX_RECORDS) {
            sp->st.refused++;
            return SPILL_FULL;
        }
    }
    if (sp->n + 1 > sp->bcap && grow_bits(sp, sp->n + 1) != 0) {
        sp->st.refused++;
        return SPILL_FULL;
    }
    if (sp->n - sp->nfile == sp->bufrec && flush_buf(sp) != 0) {
        sp->st.refused++;
        return SPILL_FULL;
    }
    uint32_t i = sp->n++;
    memcpy(sp->buf + (size_t)(i - sp->nfile) * sp->rec, rec, sp->rec);
    sp->occupied += (uint32_t)index_put(sp->idx, sp->icap, hash_of(key), i);
    bput(sp->blive, i, 1);
    bput(sp->bdirty, i, (flags & SPILL_DIRTY) != 0);
    bput(sp->bstored, i, (flags & SPILL_STORED) != 0);
    sp->live++;
    sp->dirty += (flags & SPILL_DIRTY) != 0;
    sp->st.put++;
    return 0;
}

static int lookup(spill_t *sp, uint64_t key, void *out, unsigned *flags, int take, errbuf_t *eb)
{
    if (sp->live == 0)
        return 0;
    int64_t pos = find(sp, key, out);
    if (pos < 0)
        return errbuf_set(eb, ERR_IO, "%s: spill file read failed: %s", sp->name,
                          strerror((int)-pos));
    if (pos == UINT32_MAX)
        return 0;
    uint32_t i = (sp->idx[pos] & NUM_MASK) - 2;
    *flags = (bit(sp->bdirty, i) ? SPILL_DIRTY : 0) | (bit(sp->bstored, i) ? SPILL_STORED : 0);
    if (take) {
        sp->idx[pos] = IX_TOMB;
        sp->dirty -= bit(sp->bdirty, i);
        bput(sp->blive, i, 0);
        bput(sp->bdirty, i, 0);
        sp->live--;
        sp->st.taken++;
    }
    return 1;
}

void spill_prefetch(const spill_t *sp, uint64_t key)
{
    if (sp->live > 0)
        __builtin_prefetch(&sp->idx[home_of(hash_of(key), sp->icap)]);
}

int spill_take(spill_t *sp, uint64_t key, void *out, unsigned *flags, errbuf_t *eb)
{
    return lookup(sp, key, out, flags, 1, eb);
}

int spill_peek(spill_t *sp, uint64_t key, void *out, unsigned *flags, errbuf_t *eb)
{
    return lookup(sp, key, out, flags, 0, eb);
}

int spill_each_dirty(spill_t *sp, spill_fn fn, void *ctx, errbuf_t *eb)
{
    uint32_t per = (uint32_t)(CHUNK_BYTES / sp->rec);
    unsigned char *in;
    int rc = 0;

    if (sp->dirty == 0)
        return 0;
    if (per == 0)
        per = 1;
    in = malloc((size_t)per * sp->rec);
    if (!in)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    for (uint32_t c0 = 0; c0 < sp->n && rc == 0; c0 += per) {
        uint32_t cn = sp->n - c0 < per ? sp->n - c0 : per, first = UINT32_MAX, last = 0;
        for (uint32_t j = 0; j < cn; j++)
            if (bit(sp->bdirty, c0 + j)) {
                first = first == UINT32_MAX ? j : first;
                last = j;
            }
        if (first == UINT32_MAX)
            continue;
        /* the span of dirty records of this chunk: what of it is in the
         * file, then what is in the buffer */
        uint32_t lo = c0 + first, hi = c0 + last + 1;
        uint32_t fend = sp->nfile < lo ? lo : sp->nfile > hi ? hi : sp->nfile;
        if (fend > lo)
            rc = read_at(sp->fd, in + (size_t)first * sp->rec, (size_t)(fend - lo) * sp->rec,
                         (uint64_t)lo * sp->rec);
        if (rc == 0 && hi > fend)
            memcpy(in + (size_t)(fend - c0) * sp->rec,
                   sp->buf + (size_t)(fend - sp->nfile) * sp->rec, (size_t)(hi - fend) * sp->rec);
        if (rc != 0) {
            rc = errbuf_set(eb, ERR_IO, "%s: spill file read failed: %s", sp->name, strerror(rc));
            break;
        }
        for (uint32_t j = first; j <= last && rc == 0; j++) {
            uint32_t i = c0 + j;
            if (!bit(sp->bdirty, i))
                continue;
            rc = fn(ctx, in + (size_t)j * sp->rec, bit(sp->bstored, i));
            bput(sp->bstored, i, 1);
        }
    }
    free(in);
    return rc;
}

void spill_mark_clean(spill_t *sp)
{
    memset(sp->bdirty, 0, (size_t)sp->bcap / 8);
    sp->dirty = 0;
}

void spill_clear(spill_t *sp)
{
    if (sp->idx)
        memset(sp->idx, 0, (size_t)sp->icap * 4);
    memset(sp->blive, 0, (size_t)sp->bcap / 8);
    memset(sp->bdirty, 0, (size_t)sp->bcap / 8);
    memset(sp->bstored, 0, (size_t)sp->bcap / 8);
    sp->n = sp->nfile = sp->occupied = sp->live = sp->dirty = 0;
    sp->at_cap = 0;
    if (ftruncate(sp->fd, 0) != 0) {
        /* harmless: records past n are never read */
    }
}
