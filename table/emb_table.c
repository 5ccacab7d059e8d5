/*
 * emb_table.c - slabs, index, eviction and write-back of embedding rows.
 * See emb_table.h for the design notes.
 */
#include "table/emb_table.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/optim.h"
#include "table/spill.h"

#define EMPTY UINT32_MAX /* no record */
#define CM_ROWS 4
#define CM_BITS 18
#define HDR EMB_ROW_HEADER /* bytes of a record before its floats */
#define INDEX_MIN 1024     /* smallest index of a slot (positions) */
#define SEG0_BITS 10       /* records of a slab's first segment: 2^SEG0_BITS */
#define SPILL_SHARE_NUM 2  /* of the budget, the most the spill files' memory may take: */
#define SPILL_SHARE_DEN 3  /* 2/3 (see emb_table_set_spill) */
#define SEG_MAX 20         /* segments: 2^SEG0_BITS x 2^(SEG_MAX-2) >= 2^28 records */

/*
 * A resident record, in a slab (memory only, host byte order, unaligned
 * fields read and written with memcpy):
 *   u64 key | u32 updates | u16 first_day | u16 last_day | f32 w[dim] | f32 state[nstate]
 * at these byte offsets; w starts at HDR.
 */
enum { ROW_KEY = 0, ROW_UPDATES = 8, ROW_FIRST_DAY = 12, ROW_LAST_DAY = 14 };
_Static_assert(ROW_LAST_DAY + 2 == HDR, "resident record header");

/*
 * A stored record (the store's value, little-endian; see emb_table.h):
 *   u8 version | u8 slot | u16 0 | u32 updates | u16 first_day | u16 last_day | u32 nfloats
 * at these byte offsets; the floats start at EMB_RECORD_HEADER.
 */
enum {
    REC_VERSION = 0,
    REC_SLOT = 1,
    REC_UPDATES = 4,
    REC_FIRST_DAY = 8,
    REC_LAST_DAY = 10,
    REC_NFLOATS = 12,
};
_Static_assert(REC_NFLOATS + 4 == EMB_RECORD_HEADER, "stored record header");

typedef struct sub {
    int slot;
    size_t dim, nstate, nfloat;  /* floats: w, state, both */
    size_t rec;                  /* bytes per record */
    uintptr_t segoff[SEG_MAX];   /* segment k's address minus its first record's offset */
    unsigned char *seg[SEG_MAX]; /* segments of records (see recp()), NULL beyond cap */
    uint32_t cap, used;          /* records allocated / high-water mark */
    uint32_t *freelist;          /* free record slots */
    uint32_t nfree;
    uint64_t *live, *dirty, *ref; /* bit maps over record slots */
    uint64_t *stored;             /* bit map: the store holds this row (maybe older) */
    uint32_t *idx;                /* open addressing: IX_EMPTY or an entry */
    uint32_t icap;                /* power of two */
    uint32_t *old;                /* while the index moves: the previous one, or NULL */
    uint32_t ocap;                /* its positions (a power of two) */
    uint32_t opos;                /* positions of old already moved (0..ocap) */
    uint32_t *next;               /* the index a growth will move to, being faulted in */
    uint32_t ncap;                /* its positions */
    size_t nready;                /* bytes of next already faulted in (page multiple) */
    uint32_t rows;                /* live records */
    uint32_t hand;                /* CLOCK position */
    spill_t *spill;               /* evicted rows, or NULL (emb_table_set_spill) */
} sub_t;

struct emb_table {
    store_t *store;
    model_spec_t ms;
    uint64_t mem_limit; /* bytes, 0: unlimited */
    int day;
    int store_maybe_rows;                  /* 0 while the store provably holds no row */
    int rows_known;                        /* stored_rows is exact (else the record is deleted) */
    uint64_t stored_rows[MODEL_MAX_SLOTS]; /* rows the store holds, per slot */
    unsigned char rows_rec[8 + 8 * MODEL_MAX_SLOTS]; /* scratch: the EMB_ROWS_KEY record */
    sub_t sub[MODEL_MAX_SLOTS];
    emb_table_stats_t st;
    float *scratch; /* one row of floats, or one resident-format record */
    uint64_t *hm;   /* hashes of a request's keys */
    size_t hm_cap;
    uint16_t *sketch;     /* CM_ROWS x 2^CM_BITS sighting counters, or NULL */
    int sketch_dirty;     /* counters changed since the sketch was last stored */
    uint64_t max_rows;    /* rows, 0: no limit (emb_table_set_max_rows) */
    uint64_t create_left; /* rows the current request may still create */
};

/* CPU seconds of the calling thread (the store's timings in the stats). */
static double thread_cpu_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k *= UINT64_C(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    return k;
}

static inline int bit(const uint64_t *m, uint32_t i)
{
    return (int)((m[i >> 6] >> (i & 63)) & 1);
}
static inline void bset(uint64_t *m, uint32_t i)
{
    m[i >> 6] |= UINT64_C(1) << (i & 63);
}
static inline void bclr(uint64_t *m, uint32_t i)
{
    m[i >> 6] &= ~(UINT64_C(1) << (i & 63));
}

/*
 * The slab of a slot is a list of segments that never move: segment 0
 * holds records 0 .. 2^SEG0_BITS - 1, segment k >= 1 records 2^(SEG0_BITS
 * + k - 1) .. 2^(SEG0_BITS + k) - 1, so capacity doubles by mapping one
 * more segment. Record r is in segment 22 - clz(r | 1023) (for
 * SEG0_BITS 10), at segoff[k] + r x rec: a lookup of the segment's entry
 * (in L1) instead of a realloc'd slab that a growth moves.
 */
static inline unsigned char *recp(const sub_t *s, uint32_t r)
{
    unsigned k =
        (unsigned)(31 - SEG0_BITS + 1) - (unsigned)__builtin_clz(r | ((1u << SEG0_BITS) - 1));
    return (unsigned char *)(s->segoff[k] + (uintptr_t)r * s->rec);
}
static inline uint64_t rec_key(const sub_t *s, uint32_t r)
{
    uint64_t k;
    memcpy(&k, recp(s, r) + ROW_KEY, 8);
    return k;
}
static inline float *rec_w(const sub_t *s, uint32_t r)
{
    return (float *)(recp(s, r) + HDR);
}

void emb_key_encode(unsigned char *buf, int slot, uint64_t key)
{
    buf[0] = 'r';
    buf[1] = (unsigned char)slot;
    bytes_put_be64(buf + 2, key);
}

int emb_key_decode(const void *buf, size_t len, int *slot, uint64_t *key)
{
    const unsigned char *b = buf;

    if (len != EMB_KEY_LEN || b[0] != 'r')
        return ERR_CORRUPT;
    *slot = b[1];
    *key = bytes_get_be64(b + 2);
    return 0;
}

int emb_record_decode(const void *v, size_t vlen, int *slot, emb_row_meta_t *meta,
                      const void **floats, uint32_t *nfloats)
{
    const unsigned char *b = v;
    uint32_t nf;

    if (vlen < EMB_RECORD_HEADER || b[REC_VERSION] != EMB_RECORD_VERSION)
        return ERR_CORRUPT;
    nf = bytes_get_le32(b + REC_NFLOATS);
    if ((size_t)nf * 4 != vlen - EMB_RECORD_HEADER)
        return ERR_CORRUPT;
    *slot = b[REC_SLOT];
    meta->updates = bytes_get_le32(b + REC_UPDATES);
    meta->first_day = bytes_get_le16(b + REC_FIRST_DAY);
    meta->last_day = bytes_get_le16(b + REC_LAST_DAY);
    *floats = b + EMB_RECORD_HEADER;
    *nfloats = nf;
    return 0;
}

/* The metadata in the header of resident record p. */
static void row_get_meta(const unsigned char *p, emb_row_meta_t *meta)
{
    uint16_t fd, ld;

    memcpy(&meta->updates, p + ROW_UPDATES, 4);
    memcpy(&fd, p + ROW_FIRST_DAY, 2);
    memcpy(&ld, p + ROW_LAST_DAY, 2);
    meta->first_day = fd;
    meta->last_day = ld;
}

/* Set the metadata in the header of resident record p (days 0..EMB_DAY_MAX). */
static void row_set_meta(unsigned char *p, uint32_t updates, int first_day, int last_day)
{
    uint16_t fd = (uint16_t)first_day, ld = (uint16_t)last_day;

    memcpy(p + ROW_UPDATES, &updates, 4);
    memcpy(p + ROW_FIRST_DAY, &fd, 2);
    memcpy(p + ROW_LAST_DAY, &ld, 2);
}

/* Serialize resident-format record p of s into buf (EMB_RECORD_HEADER +
 * nfloat*4 bytes). */
static size_t encode_record(const sub_t *s, const unsigned char *p, unsigned char *buf)
{
    emb_row_meta_t meta;

    row_get_meta(p, &meta);
    buf[REC_VERSION] = EMB_RECORD_VERSION;
    buf[REC_SLOT] = (unsigned char)s->slot;
    buf[2] = buf[3] = 0;
    bytes_put_le32(buf + REC_UPDATES, meta.updates);
    bytes_put_le16(buf + REC_FIRST_DAY, (uint16_t)meta.first_day);
    bytes_put_le16(buf + REC_LAST_DAY, (uint16_t)meta.last_day);
    bytes_put_le32(buf + REC_NFLOATS, (uint32_t)s->nfloat);
    /* the floats as they are in memory: funnel's hosts are little-endian */
    memcpy(buf + EMB_RECORD_HEADER, p + HDR, s->nfloat * 4);
    return EMB_RECORD_HEADER + s->nfloat * 4;
}

/* Ask for transparent huge pages on the 2 MiB-aligned interior of a large
 * block (the indexes, which are rebuilt, never moved; see grow_slab() for
 * why not the slabs): a probe is then one TLB miss less. Advisory: without
 * THP it changes nothing. */
static void want_huge_pages(void *p, size_t len)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), b = ((uintptr_t)p + len) & ~(huge - 1);

    if (len >= 2 * huge && b > a)
        madvise((void *)a, b - a, MADV_HUGEPAGE);
#else
    (void)p;
    (void)len;
#endif
}

/* ---- index ---- */

/*
 * An index position holds IX_EMPTY (0) or an entry: the record slot + 1 in
 * the low SLOT_BITS bits and a 4-bit tag of the key's hash above them, so a
 * probe reads a record only when the tags agree (1 in 16 for another key).
 * The position comes from the low bits of the hash, the tag from its top
 * bits. Empty is 0 so that a new index is fresh anonymous memory the
 * kernel zeroes page by page as it is first touched: no request waits for
 * a memset of the whole index.
 */
#define SLOT_BITS 28
#define SLOT_MASK ((UINT32_C(1) << SLOT_BITS) - 1)
#define MAX_RECORDS (SLOT_MASK - 1)      /* record slots per slot of a table: 0..2^28-3 */
#define IX_EMPTY 0                       /* an empty position */
#define IX_MOVED SLOT_MASK               /* a position of the old index moved or deleted */
#define ENT_REC(e) (((e)&SLOT_MASK) - 1) /* the record slot of an entry */

/*
 * Growing (or shrinking) an index is incremental, so no request waits for
 * a pass over every row. Growth has two phases. When the rows pass 1/2 of
 * the index, an index twice as large is mapped and faulted in a page at a
 * time (PREP_PER_INSERT bytes per insert, PREP_PER_CALL per request: on a
 * virtual machine a page fault costs up to 15 us, and the first request
 * of a move would otherwise fault nearly every page of the new index at
 * random). Once it is all faulted in, it becomes the index and the
 * current one is kept beside it as the old one; every insert moves
 * MOVE_PER_INSERT positions of the old index in position order and every
 * request MOVE_PER_CALL more, until the old one is empty and unmapped. Meanwhile a key is in
 * exactly one of the two: lookups try the new index, then the old; inserts go to the new one; a
 * moved or deleted entry of the old index becomes IX_MOVED, which probes
 * pass over like an entry (so the old index's probe chains stay whole and
 * need no backward shift). A grown index doubles when the rows reach 3/4
 * of the old one, so it holds 3/8 and fills to 3/4 only after 3/4 x ocap
 * more inserts, long after MOVE_PER_INSERT >= 2 moved every position: a
 * growth never has to finish a move at once. Faulting in needs 8 x icap
 * bytes within the icap / 4 inserts from 1/2 to 3/4 full: 32 per insert,
 * half of PREP_PER_INSERT. (A shrink after evictions
 * may: a resize that starts while a move is under way finishes it first.)
 */
#define MOVE_PER_INSERT 4
#define MOVE_PER_CALL 2048
#define PREP_PER_INSERT 64        /* bytes */
#define PREP_PER_CALL (64u << 10) /* bytes */
#define PAGE 4096                 /* bytes faulted in by one write (at least) */

static inline uint32_t tag_of(uint64_t hm)
{
    return (uint32_t)(hm >> 60) << SLOT_BITS;
}

/* The position of key (hash hm) in the index, or of the empty one that
 * ends its probe chain. */
static inline uint32_t *find_pos_h(const sub_t *s, uint64_t key, uint64_t hm)
{
    uint32_t mask = s->icap - 1, h = (uint32_t)hm & mask, tag = tag_of(hm);

    for (;;) {
        uint32_t e = s->idx[h];
        if (e == IX_EMPTY || ((e & ~SLOT_MASK) == tag && rec_key(s, ENT_REC(e)) == key))
            return &s->idx[h];
        h = (h + 1) & mask;
    }
}

/* While the index moves: the position of key in the old index, or NULL. */
static uint32_t *find_old(const sub_t *s, uint64_t key, uint64_t hm)
{
    uint32_t mask = s->ocap - 1, h = (uint32_t)hm & mask, tag = tag_of(hm);

    for (;;) {
        uint32_t e = s->old[h];
        if (e == IX_EMPTY)
            return NULL;
        if (e != IX_MOVED && (e & ~SLOT_MASK) == tag && rec_key(s, ENT_REC(e)) == key)
            return &s->old[h];
        h = (h + 1) & mask;
    }
}

/* The record slot of key (hash hm), or EMPTY. */
static inline uint32_t find_h(const sub_t *s, uint64_t key, uint64_t hm)
{
    uint32_t e = *find_pos_h(s, key, hm);
    if (e == IX_EMPTY && s->old) {
        uint32_t *p = find_old(s, key, hm);
        return p ? ENT_REC(*p) : EMPTY;
    }
    return e == IX_EMPTY ? EMPTY : ENT_REC(e);
}

static uint32_t find(const sub_t *s, uint64_t key)
{
    return find_h(s, key, mix(key));
}

/* An index of cap positions, all empty: fresh anonymous memory (see
 * IX_EMPTY), or NULL. Release with index_free(). */
static uint32_t *index_alloc(uint32_t cap)
{
    size_t len = (size_t)cap * sizeof(uint32_t);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return NULL;
    want_huge_pages(p, len);
    return p;
}

static void index_free(uint32_t *idx, uint32_t cap)
{
    if (idx)
        munmap(idx, (size_t)cap * sizeof(uint32_t));
}

/*
 * Move up to npos positions of the old index into the new one (see the
 * notes above MOVE_PER_INSERT); the last move frees the old index. Each
 * entry's record is read for its hash: a batch's records are prefetched
 * first, then the new positions, then the entries are placed.
 */
static void move_index(sub_t *s, uint32_t npos)
{
    enum { BATCH = 32 };
    uint32_t mask = s->icap - 1;

    while (s->old && npos > 0) {
        uint32_t end = s->ocap - s->opos < BATCH ? s->ocap : s->opos + BATCH, n = 0;
        uint32_t ent[BATCH];
        uint64_t hm[BATCH];

        if (end - s->opos > npos)
            end = s->opos + npos;
        npos -= end - s->opos;
        for (uint32_t p = s->opos; p < end; p++) {
            uint32_t e = s->old[p];
            if (e != IX_EMPTY && e != IX_MOVED) {
                s->old[p] = IX_MOVED;
                ent[n++] = e;
                __builtin_prefetch(recp(s, ENT_REC(e)));
            }
        }
        s->opos = end;
        for (uint32_t i = 0; i < n; i++) {
            hm[i] = mix(rec_key(s, ENT_REC(ent[i])));
            __builtin_prefetch(&s->idx[(uint32_t)hm[i] & mask]);
        }
        for (uint32_t i = 0; i < n; i++) {
            uint32_t h = (uint32_t)hm[i] & mask; /* keys are distinct: the chain's first empty */
            while (s->idx[h] != IX_EMPTY)
                h = (h + 1) & mask;
            s->idx[h] = ent[i];
        }
        if (s->opos == s->ocap) {
            index_free(s->old, s->ocap);
            s->old = NULL;
            s->ocap = s->opos = 0;
        }
    }
}

/*
 * Start moving the index to ncap (a power of two) positions: a move under
 * way is finished first, then the new index is allocated empty and the
 * current one becomes the old one, moved by later operations.
 */
static int resize_index(sub_t *s, uint32_t ncap)
{
    uint32_t *nidx;

    move_index(s, UINT32_MAX);
    assert((ncap & (ncap - 1)) == 0 && ncap > s->rows); /* a power of two with room */
    if (s->next && s->ncap == ncap && s->nready == (size_t)ncap * sizeof(uint32_t)) {
        nidx = s->next; /* grown in advance */
    } else {
        index_free(s->next, s->ncap);
        nidx = index_alloc(ncap);
        if (!nidx) {
            s->next = NULL;
            s->ncap = 0;
            return ERR_NOMEM;
        }
    }
    s->next = NULL;
    s->ncap = 0;
    s->nready = 0;
    if (s->rows > 0) {
        s->old = s->idx;
        s->ocap = s->icap;
        s->opos = 0;
    } else {
        index_free(s->idx, s->icap);
    }
    s->idx = nidx;
    s->icap = ncap;
    return 0;
}

/* Fault in up to bytes more of the next index (rounded up to pages);
 * once all of it is, start moving to it. */
static void prepare_index(sub_t *s, size_t bytes)
{
    size_t len = (size_t)s->ncap * sizeof(uint32_t);

    if (!s->next)
        return;
    size_t end = bytes >= len - s->nready ? len : s->nready + bytes;
    for (size_t b = s->nready; b < end; b += PAGE)
        ((volatile unsigned char *)s->next)[b] = 0; /* stays IX_EMPTY */
    s->nready = end == len ? len : (end + PAGE - 1) / PAGE * PAGE;
    if (s->nready >= len) {
        s->nready = len;
        resize_index(s, s->ncap); /* cannot fail: the index is there */
    }
}

/* Past 1/2 full, and not moving: map the index the next growth moves to.
 * Failure is harmless (grow_index() tries again at 3/4). */
static void plan_growth(sub_t *s)
{
    if (s->next || s->old || (uint64_t)s->rows * 2 <= s->icap || s->icap > UINT32_MAX / 4)
        return;
    s->next = index_alloc(s->icap * 2);
    if (s->next)
        s->ncap = s->icap * 2;
    s->nready = 0;
}

static int grow_index(sub_t *s)
{
    if (s->next && s->ncap == s->icap * 2) {
        prepare_index(s, SIZE_MAX); /* late: fault in the rest at once */
        return 0;
    }
    return resize_index(s, s->icap ? s->icap * 2 : INDEX_MIN);
}

/* After evictions: an index under 1/8 full shrinks to about half full, so
 * that the index too stays within the budget. Failure is harmless. */
static void shrink_index(sub_t *s)
{
    uint32_t ncap = INDEX_MIN;

    if (s->icap <= INDEX_MIN || (uint64_t)s->rows * 8 >= s->icap)
        return;
    while ((uint64_t)ncap < (uint64_t)s->rows * 2)
        ncap *= 2;
    if (ncap < s->icap)
        resize_index(s, ncap);
}

static void index_remove(sub_t *s, uint64_t key)
{
    uint32_t mask = s->icap - 1;
    uint64_t hm = mix(key);
    uint32_t *p = find_pos_h(s, key, hm);
    uint32_t i = (uint32_t)(p - s->idx), j = i;

    if (*p == IX_EMPTY) { /* not moved yet: the old index keeps its chains whole */
        uint32_t *q = s->old ? find_old(s, key, hm) : NULL;
        assert(q); /* only live records are removed, and all are indexed */
        if (q)
            *q = IX_MOVED;
        return;
    }
    s->idx[i] = IX_EMPTY;
    for (;;) { /* backward shift: keep every probe chain unbroken */
        j = (j + 1) & mask;
        uint32_t r = s->idx[j];
        if (r == IX_EMPTY)
            return;
        uint32_t h = (uint32_t)mix(rec_key(s, ENT_REC(r))) & mask;
        if (((j - h) & mask) >= ((j - i) & mask)) {
            s->idx[i] = r;
            s->idx[j] = IX_EMPTY;
            i = j;
        }
    }
}

/* ---- slab ---- */

static int grow_slab(sub_t *s)
{
    uint32_t ncap =
        s->cap ? (s->cap <= MAX_RECORDS / 2 ? s->cap * 2 : MAX_RECORDS) : (1u << SEG0_BITS);
    size_t words = ((size_t)ncap + 63) / 64, owords = ((size_t)s->cap + 63) / 64;
    unsigned k = s->cap ? (unsigned)(32 - __builtin_clz(s->cap >> SEG0_BITS)) : 0;

    if (ncap <= s->cap || k >= SEG_MAX) /* MAX_RECORDS rows: the index cannot address more */
        return ERR_NOMEM;
    /* a new segment for records cap .. ncap - 1; the others stay where
     * they are, so huge pages cost a growth nothing (a realloc'd slab of
     * huge pages took ~150 ms to move at 277 MB) and spare a uniform
     * lookup most of its TLB misses */
    if (!s->seg[k]) {
        size_t len = (size_t)(ncap - s->cap) * s->rec;
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return ERR_NOMEM;
        want_huge_pages(p, len);
        s->seg[k] = p;
        s->segoff[k] = (uintptr_t)p - (uintptr_t)s->cap * s->rec;
    }
    uint64_t **maps[4] = {&s->live, &s->dirty, &s->ref, &s->stored};
    for (int m = 0; m < 4; m++) {
        uint64_t *b = realloc(*maps[m], words * 8);
        if (!b)
            return ERR_NOMEM;
        memset(b + owords, 0, (words - owords) * 8);
        *maps[m] = b;
    }
    uint32_t *fl = realloc(s->freelist, (size_t)ncap * sizeof(uint32_t));
    if (!fl)
        return ERR_NOMEM;
    s->freelist = fl;
    s->cap = ncap;
    return 0;
}

/* A new record for key (uninitialized floats). Returns its slot or EMPTY. */
static uint32_t insert(sub_t *s, uint64_t key, int day)
{
    uint32_t r;

    move_index(s, MOVE_PER_INSERT);
    prepare_index(s, PREP_PER_INSERT);
    plan_growth(s);
    if ((uint64_t)(s->rows + 1) * 4 > (uint64_t)s->icap * 3 && grow_index(s) != 0)
        return EMPTY;
    if (s->nfree > 0) {
        r = s->freelist[--s->nfree];
    } else {
        if (s->used == s->cap && grow_slab(s) != 0)
            return EMPTY;
        r = s->used++;
    }
    assert(r < s->used && s->used <= s->cap && !bit(s->live, r));
    unsigned char *p = recp(s, r);
    memcpy(p + ROW_KEY, &key, 8);
    row_set_meta(p, 0, day, day);
    bset(s->live, r);
    bset(s->ref, r);
    bclr(s->dirty, r);
    bclr(s->stored, r);
    uint64_t hm = mix(key);
    uint32_t *pos = find_pos_h(s, key, hm);
    assert(*pos == IX_EMPTY); /* callers insert only keys without a row */
    *pos = tag_of(hm) | (r + 1);
    s->rows++;
    assert(s->rows + s->nfree == s->used);
    return r;
}

static void remove_rec(sub_t *s, uint32_t r)
{
    assert(r < s->used && bit(s->live, r) && s->rows > 0);
    index_remove(s, rec_key(s, r));
    bclr(s->live, r);
    bclr(s->dirty, r);
    bclr(s->ref, r);
    s->freelist[s->nfree++] = r;
    s->rows--;
}

/* ---- table ---- */

static uint64_t resident_bytes(const emb_table_t *t)
{
    uint64_t b = 0;
    for (int i = 0; i < t->ms.nslots; i++)
        b += (uint64_t)t->sub[i].rows * t->sub[i].rec +
             ((uint64_t)t->sub[i].icap + t->sub[i].ocap + t->sub[i].ncap) * 4 +
             (uint64_t)t->sub[i].cap * 3 / 8 + spill_mem_bytes(t->sub[i].spill);
    return b;
}

#define SKETCH_HDR 4 /* u8 version | u8 CM_ROWS | u8 CM_BITS | u8 0 */
#define SKETCH_BYTES (SKETCH_HDR + ((size_t)CM_ROWS << CM_BITS) * 2)

/* Read the stored admission sketch, if any (see EMB_SKETCH_KEY). */
static int sketch_load(emb_table_t *t, errbuf_t *eb)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = store_get(t->store, EMB_SKETCH_KEY, sizeof(EMB_SKETCH_KEY) - 1, &v, &vl, eb);
    const unsigned char *b = v;

    if (rc == ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (vl != SKETCH_BYTES || b[0] != EMB_SKETCH_VERSION || b[1] != CM_ROWS || b[2] != CM_BITS)
        rc = errbuf_set(eb, ERR_CORRUPT,
                        "%s: admission sketch record: %zu bytes, version %d, %d x 2^%d "
                        "(expected %zu bytes, version %d, %d x 2^%d)",
                        t->store->name, vl, vl ? b[0] : -1, vl > 1 ? b[1] : -1, vl > 2 ? b[2] : -1,
                        SKETCH_BYTES, EMB_SKETCH_VERSION, CM_ROWS, CM_BITS);
    for (size_t i = 0; rc == 0 && i < ((size_t)CM_ROWS << CM_BITS); i++)
        t->sketch[i] = bytes_get_le16(b + SKETCH_HDR + 2 * i);
    free(v);
    return rc;
}

/* Store the admission sketch if it changed since it was last stored. */
static int sketch_store(emb_table_t *t, errbuf_t *eb)
{
    unsigned char *b;
    int rc;

    if (!t->sketch || !t->sketch_dirty)
        return 0;
    b = malloc(SKETCH_BYTES);
    if (!b)
        return errbuf_set(eb, ERR_NOMEM, "out of memory storing the admission sketch");
    b[0] = EMB_SKETCH_VERSION;
    b[1] = CM_ROWS;
    b[2] = CM_BITS;
    b[3] = 0;
    for (size_t i = 0; i < ((size_t)CM_ROWS << CM_BITS); i++)
        bytes_put_le16(b + SKETCH_HDR + 2 * i, t->sketch[i]);
    rc = store_put(t->store, EMB_SKETCH_KEY, sizeof(EMB_SKETCH_KEY) - 1, b, SKETCH_BYTES, 0, eb);
    if (rc == 0)
        t->sketch_dirty = 0;
    free(b);
    return rc;
}

static int rows_load(emb_table_t *t, errbuf_t *eb);

int emb_table_open(emb_table_t **out, store_t *store, const model_spec_t *ms, uint64_t mem_limit,
                   errbuf_t *eb)
{
    emb_table_t *t = calloc(1, sizeof(*t));
    size_t maxf = 1;

    *out = NULL;
    if (!t)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    t->store = store;
    t->ms = *ms;
    t->mem_limit = mem_limit;
    t->create_left = UINT64_MAX;
    for (int i = 0; i < ms->nslots; i++) {
        sub_t *s = &t->sub[i];
        s->slot = i;
        s->dim = (size_t)ms->slot[i].dim;
        s->nstate = optim_state_len(&ms->emb_opt, s->dim);
        s->nfloat = s->dim + s->nstate;
        s->rec = HDR + s->nfloat * 4;
        if (s->nfloat > maxf)
            maxf = s->nfloat;
        if (grow_index(s) != 0) {
            emb_table_destroy(&t);
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        }
    }
    for (int i = 0; i < ms->nslots; i++)
        if (ms->slot[i].admit_min > 1 && !t->sketch) {
            t->sketch = calloc((size_t)CM_ROWS << CM_BITS, sizeof(uint16_t));
            if (!t->sketch) {
                emb_table_destroy(&t);
                return errbuf_set(eb, ERR_NOMEM, "out of memory");
            }
        }
    t->scratch = malloc(maxf * sizeof(float) + HDR); /* a row's floats, or a record */
    if (!t->scratch) {
        emb_table_destroy(&t);
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    }
    if (t->sketch) {
        int rc = sketch_load(t, eb);
        if (rc != 0) {
            emb_table_destroy(&t);
            return rc;
        }
    }
    /* A fresh store lets every miss skip the MultiGet. */
    const char pfx = 'r';
    store_iter_t *it = store_iter_new(store, &pfx, 1);
    const void *k, *v;
    size_t kl, vl;
    errbuf_t ignored;
    /* on a read error, assume rows: every miss then asks the store */
    t->store_maybe_rows = !it || store_iter_next(store, it, &k, &kl, &v, &vl) ||
                          store_iter_error(store, it, &ignored) != 0;
    store_iter_destroy(store, &it);
    int rc = rows_load(t, eb);
    if (rc != 0) {
        emb_table_destroy(&t);
        return rc;
    }
    *out = t;
    return 0;
}

/* Rows per slot byte of the store's keys ('r' | u8 slot | key) into
 * rows[256]. Returns 0 or the store's error (a checksum, a read). */
static int count_rows(store_t *store, uint64_t *rows, errbuf_t *eb)
{
    const char pfx = 'r';
    store_iter_t *it = store_iter_new(store, &pfx, 1);
    const void *k, *v;
    size_t kl, vl;
    int rc;

    memset(rows, 0, 256 * sizeof(*rows));
    if (!it)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    while (store_iter_next(store, it, &k, &kl, &v, &vl))
        if (kl == EMB_KEY_LEN)
            rows[((const unsigned char *)k)[1]]++;
    rc = store_iter_error(store, it, eb);
    store_iter_destroy(store, &it);
    return rc;
}

/* The row count record into rows[256] (zeros beyond it): 0, ERR_NOTFOUND,
 * ERR_CORRUPT. */
static int rows_record_read(store_t *store, uint64_t *rows, errbuf_t *eb)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = store_get(store, EMB_ROWS_KEY, sizeof(EMB_ROWS_KEY) - 1, &v, &vl, eb);
    const unsigned char *b = v;

    if (rc != 0)
        return rc;
    memset(rows, 0, 256 * sizeof(*rows));
    uint32_t n = vl >= 8 ? bytes_get_le32(b + 4) : 0;
    if (vl < 8 || b[0] != EMB_ROWS_VERSION || n > 256 || vl != 8 + 8 * (size_t)n)
        rc = errbuf_set(eb, ERR_CORRUPT, "%s: row count record: %zu bytes, version %d", store->name,
                        vl, vl ? b[0] : -1);
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        rows[i] = bytes_get_le64(b + 8 + 8 * i);
    free(v);
    return rc;
}

/* The stored rows per slot: the record's, or counted (a store written
 * before records, or after a failed write). */
static int rows_load(emb_table_t *t, errbuf_t *eb)
{
    uint64_t rows[256] = {0};
    int rc = rows_record_read(t->store, rows, eb);

    if (rc == ERR_NOTFOUND)
        rc = t->store_maybe_rows ? count_rows(t->store, rows, eb) : 0;
    if (rc != 0)
        return rc;
    memcpy(t->stored_rows, rows, sizeof(t->stored_rows));
    t->rows_known = 1;
    return 0;
}

int emb_table_check_store(store_t *store, errbuf_t *eb)
{
    uint64_t want[256], has[256];
    int rc = rows_record_read(store, want, eb);

    if (rc == ERR_NOTFOUND)
        return 0;
    if (rc == 0 && (rc = count_rows(store, has, eb)) == ERR_STORE) {
        char msg[sizeof(eb->msg)];
        snprintf(msg, sizeof(msg), "%s", eb->msg);
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s; the store was left as it is: restore it from a checkpoint or an "
                          "older copy",
                          msg);
    }
    if (rc != 0)
        return rc;
    for (int i = 0; i < 256; i++)
        if (has[i] != want[i])
            return errbuf_set(eb, ERR_CORRUPT,
                              "%s: holds %llu rows of slot %d, but the last write recorded %llu: "
                              "table files, the MANIFEST or the log are damaged or missing; the "
                              "store was left as it is: restore it from a checkpoint or an older "
                              "copy",
                              store->name, (unsigned long long)has[i], i,
                              (unsigned long long)want[i]);
    return 0;
}

int emb_store_open(store_t **out, const char *path, int flags, const char *name, errbuf_t *eb)
{
    return store_rocks_open_checked(out, path, flags, name, emb_table_check_store, eb);
}

void emb_table_destroy(emb_table_t **tp)
{
    emb_table_t *t = tp ? *tp : NULL;

    if (!t)
        return;
    for (int i = 0; i < MODEL_MAX_SLOTS; i++) {
        sub_t *s = &t->sub[i];
        for (unsigned k = 0; k < SEG_MAX && s->seg[k]; k++) {
            uint32_t lo = k ? 1u << (SEG0_BITS + k - 1) : 0, hi = 1u << (SEG0_BITS + k);
            munmap(s->seg[k], (size_t)((hi < MAX_RECORDS ? hi : MAX_RECORDS) - lo) * s->rec);
        }
        free(s->freelist);
        free(s->live);
        free(s->dirty);
        free(s->ref);
        free(s->stored);
        index_free(s->idx, s->icap);
        index_free(s->old, s->ocap);
        index_free(s->next, s->ncap);
        spill_close(&s->spill);
    }
    free(t->sketch);
    free(t->scratch);
    free(t->hm);
    free(t);
    *tp = NULL;
}

int emb_table_set_spill(emb_table_t *t, const char *dir, errbuf_t *eb)
{
    uint64_t cap = t->mem_limit / SPILL_SHARE_DEN * SPILL_SHARE_NUM /
                   (uint64_t)(t->ms.nslots > 0 ? t->ms.nslots : 1);

    for (int i = 0; i < t->ms.nslots; i++) {
        sub_t *s = &t->sub[i];
        char name[300];
        snprintf(name, sizeof(name), "%s slot '%s'", t->store->name, t->ms.slot[i].name);
        if (s->spill)
            continue;
        int rc = spill_open(&s->spill, dir, s->rec, cap, name, eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

const char *emb_table_spill_error(const emb_table_t *t)
{
    for (int i = 0; i < t->ms.nslots; i++)
        if (spill_error(t->sub[i].spill)[0])
            return spill_error(t->sub[i].spill);
    return NULL;
}

int emb_table_set_day(emb_table_t *t, int day)
{
    if (day < 0 || day > EMB_DAY_MAX)
        return ERR_INVAL;
    t->day = day;
    return 0;
}

int emb_table_set_max_rows(emb_table_t *t, uint64_t max_rows, errbuf_t *eb)
{
    const char pfx = 'r';
    store_iter_t *it;
    const void *k, *v;
    size_t kl, vl;
    uint64_t n = 0;
    int rc;

    t->max_rows = max_rows;
    if (!max_rows)
        return 0;
    /* nothing is resident yet when a server sets it: the store has them all */
    it = store_iter_new(t->store, &pfx, 1);
    if (!it)
        return errbuf_set(eb, ERR_NOMEM, "%s: out of memory counting rows", t->store->name);
    while (store_iter_next(t->store, it, &k, &kl, &v, &vl))
        n++;
    rc = store_iter_error(t->store, it, eb);
    store_iter_destroy(t->store, &it);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "%s: counting rows", t->store->name);
    t->st.rows_total = n;
    return 0;
}

void emb_table_set_create_budget(emb_table_t *t, uint64_t rows)
{
    t->create_left = rows;
}

size_t emb_table_row_floats(const emb_table_t *t, int slot)
{
    return t->sub[slot].nfloat;
}

static int check_slot(const emb_table_t *t, int slot, errbuf_t *eb)
{
    if (slot < 0 || slot >= t->ms.nslots)
        return errbuf_set(eb, ERR_INVAL, "slot %d out of range (table has %d)", slot, t->ms.nslots);
    return 0;
}

/* Write (slot, record) pairs collected in ops/bufs to the store. */
typedef struct wbuf {
    store_op_t *ops; /* cap, one kept for the row count record */
    unsigned char *bytes;
    size_t n, cap, bcap, bused;
    uint64_t added[MODEL_MAX_SLOTS]; /* rows of the batch new to the store */
} wbuf_t;

static int wbuf_add_p(wbuf_t *w, const sub_t *s, const unsigned char *p, int *stored);

static int wbuf_add(wbuf_t *w, sub_t *s, uint32_t r)
{
    int stored = bit(s->stored, r);
    int rc = wbuf_add_p(w, s, recp(s, r), &stored);

    if (rc == 0)
        bset(s->stored, r);
    return rc;
}

/* Add resident-format record p of s; *stored: whether the store already
 * holds the row (set on return). */
static int wbuf_add_p(wbuf_t *w, const sub_t *s, const unsigned char *p, int *stored)
{
    size_t need = EMB_KEY_LEN + EMB_RECORD_HEADER + s->nfloat * 4;

    if (w->n + 1 >= w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1024;
        store_op_t *o = realloc(w->ops, cap * sizeof(*o));
        if (!o)
            return ERR_NOMEM;
        w->ops = o;
        w->cap = cap;
    }
    if (w->bused + need > w->bcap) {
        /* ops point into bytes by offset until the write: fix up below */
        size_t cap = w->bcap ? w->bcap * 2 : 1 << 20;
        while (cap < w->bused + need)
            cap *= 2;
        unsigned char *b = realloc(w->bytes, cap);
        if (!b)
            return ERR_NOMEM;
        w->bytes = b;
        w->bcap = cap;
    }
    unsigned char *o = w->bytes + w->bused;
    uint64_t key;
    memcpy(&key, p + ROW_KEY, 8);
    emb_key_encode(o, s->slot, key);
    size_t vl = encode_record(s, p, o + EMB_KEY_LEN);
    w->ops[w->n].k = (const void *)(uintptr_t)w->bused;
    w->ops[w->n].klen = EMB_KEY_LEN;
    w->ops[w->n].v = (const void *)(uintptr_t)(w->bused + EMB_KEY_LEN);
    w->ops[w->n].vlen = vl;
    w->n++;
    w->bused += EMB_KEY_LEN + vl;
    if (!*stored) {
        w->added[s->slot]++;
        *stored = 1;
    }
    return 0;
}

/* The op that keeps the row count record equal to the stored rows once
 * the batch is written, when the slots' counts change by added[]
 * (subtracted for removed): the record, or its deletion when the count is
 * no longer known. */
static store_op_t rows_record_op(emb_table_t *t, const uint64_t *added, int removed)
{
    unsigned char *b = t->rows_rec;
    uint32_t n = (uint32_t)t->ms.nslots;

    if (!t->rows_known)
        return (store_op_t){EMB_ROWS_KEY, sizeof(EMB_ROWS_KEY) - 1, NULL, 0};
    memset(b, 0, 8);
    b[0] = EMB_ROWS_VERSION;
    bytes_put_le32(b + 4, n);
    for (uint32_t i = 0; i < n; i++)
        bytes_put_le64(b + 8 + 8 * i,
                       removed ? t->stored_rows[i] - added[i] : t->stored_rows[i] + added[i]);
    return (store_op_t){EMB_ROWS_KEY, sizeof(EMB_ROWS_KEY) - 1, b, 8 + 8 * (size_t)n};
}

/* After a batch with the record of rows_record_op(): the counts follow,
 * or are unknown from now on if the batch failed. */
static void rows_written(emb_table_t *t, const uint64_t *added, int removed, int rc)
{
    if (rc != 0) {
        t->rows_known = 0;
        return;
    }
    for (int i = 0; t->rows_known && i < t->ms.nslots; i++)
        t->stored_rows[i] = removed ? t->stored_rows[i] - added[i] : t->stored_rows[i] + added[i];
}

static int op_cmp(const void *a, const void *b)
{
    return memcmp(((const store_op_t *)a)->k, ((const store_op_t *)b)->k, EMB_KEY_LEN);
}

/* Write the collected rows in key order: a batch's keys are distinct, and
 * RocksDB inserts sorted keys into its memtable much faster. */
static int wbuf_write(emb_table_t *t, wbuf_t *w, errbuf_t *eb)
{
    int rc = 0;

    if (w->n > 0) {
        for (size_t i = 0; i < w->n; i++) {
            w->ops[i].k = w->bytes + (uintptr_t)w->ops[i].k;
            w->ops[i].v = w->bytes + (uintptr_t)w->ops[i].v;
        }
        qsort(w->ops, w->n, sizeof(*w->ops), op_cmp);
        w->ops[w->n] = rows_record_op(t, w->added, 0);
        rc = store_write(t->store, w->ops, w->n + 1, 0, eb);
        rows_written(t, w->added, 0, rc);
        if (rc == 0)
            t->store_maybe_rows = 1;
    }
    w->n = 0;
    w->bused = 0;
    memset(w->added, 0, sizeof(w->added));
    return rc;
}

static void wbuf_release(wbuf_t *w)
{
    free(w->ops);
    free(w->bytes);
}

/* Shrink the indexes that evictions left nearly empty; *cur gets the new
 * resident bytes. Returns 1 if any shrank. */
static int shrink_indexes(emb_table_t *t, uint64_t *cur)
{
    int any = 0;

    for (int i = 0; i < t->ms.nslots; i++) {
        uint32_t before = t->sub[i].icap;
        shrink_index(&t->sub[i]);
        any |= t->sub[i].icap != before;
    }
    if (any)
        *cur = resident_bytes(t);
    return any;
}

/* Put back the dirty rows an eviction removed when their write-back
 * failed (ops[0..n) as wbuf_write left them): resident and dirty again, so
 * a failed write loses nothing. */
static void restore_evicted(emb_table_t *t, const store_op_t *ops, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        emb_row_meta_t meta;
        const void *fl;
        uint32_t nf, r;
        uint64_t key;
        int slot, vslot;
        if (emb_key_decode(ops[j].k, ops[j].klen, &slot, &key) != 0 ||
            emb_record_decode(ops[j].v, ops[j].vlen, &vslot, &meta, &fl, &nf) != 0)
            continue; /* cannot happen: encoded by wbuf_add */
        sub_t *s = &t->sub[slot];
        r = insert(s, key, meta.first_day);
        if (r == EMPTY)
            continue; /* out of memory: the row is lost, the error already reported */
        unsigned char *p = recp(s, r);
        row_set_meta(p, meta.updates, meta.first_day, meta.last_day);
        memcpy(p + HDR, fl, (size_t)nf * 4);
        bset(s->dirty, r);
        t->st.evicted--;
        t->st.evicted_dirty--;
    }
}

/* Try to append row r of s to its spill file, which may take what the
 * table's spill share (SPILL_SHARE of the budget, for all slots' files
 * together, *all_mem of it in use) leaves it. 1 if it took the row; *cur
 * and *all_mem follow the file's memory (its index may have grown). */
static int spill_row(emb_table_t *t, sub_t *s, uint32_t r, uint64_t *cur, uint64_t *all_mem)
{
    uint64_t share = t->mem_limit / SPILL_SHARE_DEN * SPILL_SHARE_NUM;
    uint64_t own = spill_mem_bytes(s->spill), others = *all_mem - own;

    if (others >= share)
        return 0;
    spill_set_cap(s->spill, share - others);
    if (spill_put(s->spill, rec_key(s, r), recp(s, r),
                  (bit(s->dirty, r) ? SPILL_DIRTY : 0) | (bit(s->stored, r) ? SPILL_STORED : 0)) !=
        0)
        return 0;
    uint64_t now = spill_mem_bytes(s->spill);
    *cur = *cur + now - own;
    *all_mem = *all_mem + now - own;
    return 1;
}

/*
 * Drop cold rows until resident bytes are under 90% of the budget. The
 * slots are swept in turn, each by a slice proportional to its size, so
 * the hands approximate one CLOCK over all rows. The sweep only gives up
 * after two full turns without an eviction (the first clears the
 * referenced bits, the second must then find victims), which happens only
 * when no row is left to drop.
 */
static int evict(emb_table_t *t, errbuf_t *eb)
{
    uint64_t target = t->mem_limit / 10 * 9, cur = resident_bytes(t), turn = 0, idle = 0;
    uint64_t spill_mem = 0; /* of cur: the spill files' */
    wbuf_t w = {0};
    int rc = 0;

    if (t->ms.nslots <= 0)
        return 0;
    for (int i = 0; i < t->ms.nslots; i++) {
        turn += (uint64_t)t->sub[i].used + 1;
        spill_mem += spill_mem_bytes(t->sub[i].spill);
    }
    for (int i = 0; cur > target && idle <= 2 * turn; i = (i + 1) % t->ms.nslots) {
        if (i == 0 && shrink_indexes(t, &cur) && cur <= target)
            break;
        sub_t *s = &t->sub[i];
        uint32_t slice = s->used / 16 + 64;
        if (s->rows == 0) {
            idle++;
            continue;
        }
        for (uint32_t step = 0; step < slice && s->rows > 0 && cur > target; step++) {
            uint32_t r = s->hand;
            s->hand = (s->hand + 1) % s->used;
            idle++;
            if (!bit(s->live, r))
                continue;
            if (bit(s->ref, r)) {
                bclr(s->ref, r);
                continue;
            }
            if (s->spill && spill_row(t, s, r, &cur, &spill_mem)) {
                t->st.spilled++;
            } else if (bit(s->dirty, r)) {
                rc = wbuf_add(&w, s, r);
                if (rc != 0)
                    goto out;
                t->st.evicted_dirty++;
            }
            remove_rec(s, r);
            t->st.evicted++;
            cur -= s->rec;
            idle = 0;
        }
    }
out:
    shrink_indexes(t, &cur);
    /* write back the dirty rows removed so far, even after an error; if
     * that fails they become resident (and dirty) again */
    size_t nw = w.n;
    double t0 = clock_now_s(), c0 = thread_cpu_now_s();
    int wrc = wbuf_write(t, &w, rc == 0 ? eb : NULL);
    t->st.store_write_s += clock_now_s() - t0;
    t->st.store_write_cpu_s += thread_cpu_now_s() - c0;
    t->st.store_written += wrc == 0 ? nw : 0;
    if (wrc != 0)
        restore_evicted(t, w.ops, nw);
    if (rc != 0)
        errbuf_set(eb, rc, "%s: out of memory evicting rows", t->store->name);
    else
        rc = wrc;
    wbuf_release(&w);
    return rc;
}

static int maybe_evict(emb_table_t *t, errbuf_t *eb)
{
    if (t->mem_limit && resident_bytes(t) > t->mem_limit)
        return evict(t, eb);
    return 0;
}

/* The error of a row that could not be created. */
static int insert_failed(const emb_table_t *t, const sub_t *s, errbuf_t *eb)
{
    if (s->nfree == 0 && s->used >= MAX_RECORDS)
        return errbuf_set(eb, ERR_NOMEM,
                          "%s: slot '%s' holds %u rows, the most one table can address: spread "
                          "the keys over more shards",
                          t->store->name, t->ms.slot[s->slot].name, s->rows);
    return errbuf_set(eb, ERR_NOMEM, "out of memory");
}

static int load_stored(emb_table_t *t, sub_t *s, const uint64_t *keys, const size_t *miss,
                       size_t nm, uint8_t *found, errbuf_t *eb);

/* Take the rows of keys[miss[0..nm)] that s's spill file holds back into
 * memory; found[j] is set for those. */
static int load_spilled(emb_table_t *t, sub_t *s, const uint64_t *keys, const size_t *miss,
                        size_t nm, uint8_t *found, errbuf_t *eb)
{
    unsigned char *buf = (unsigned char *)t->scratch; /* one record */
    unsigned flags;
    int rc = 0;

    /* the index lines of all misses at once: their cache misses overlap */
    for (size_t j = 0; j < nm; j++)
        spill_prefetch(s->spill, keys[miss[j]]);
    for (size_t j = 0; j < nm && rc == 0 && spill_rows(s->spill) > 0; j++) {
        uint64_t key = keys[miss[j]];
        if (found[j] || find(s, key) != EMPTY) {
            found[j] = 1; /* a repeated key, loaded already */
            continue;
        }
        rc = spill_take(s->spill, key, buf, &flags, eb);
        if (rc <= 0)
            continue;
        rc = 0;
        uint32_t r = insert(s, key, t->day);
        if (r == EMPTY) {
            /* back where it was, or if the file cannot take it, into the
             * store; the error says why it did not load */
            if (spill_put(s->spill, key, buf, flags) != 0 && (flags & SPILL_DIRTY)) {
                wbuf_t w = {0};
                int stored = (flags & SPILL_STORED) != 0;
                if (wbuf_add_p(&w, s, buf, &stored) == 0)
                    wbuf_write(t, &w, NULL);
                wbuf_release(&w);
            }
            return insert_failed(t, s, eb);
        }
        memcpy(recp(s, r), buf, s->rec);
        if (flags & SPILL_DIRTY)
            bset(s->dirty, r);
        if (flags & SPILL_STORED)
            bset(s->stored, r);
        bclr(s->ref, r); /* on probation: see "Memory budget" in emb_table.h */
        t->st.loaded++;
        t->st.spill_loaded++;
        found[j] = 1;
    }
    return rc;
}

/* Load the rows of keys[miss[0..nm)] from the spill file, then from the
 * store, into s. found[j] is set for those present. */
static int load_misses(emb_table_t *t, sub_t *s, const uint64_t *keys, const size_t *miss,
                       size_t nm, uint8_t *found, errbuf_t *eb)
{
    memset(found, 0, nm);
    if (s->spill) {
        int rc = load_spilled(t, s, keys, miss, nm, found, eb);
        if (rc != 0)
            return rc;
    }
    if (!t->store_maybe_rows)
        return 0;
    size_t nfound = 0;
    for (size_t j = 0; j < nm; j++)
        nfound += found[j];
    if (nfound == 0) /* all of them from the store (no spill file, or it had none) */
        return load_stored(t, s, keys, miss, nm, found, eb);
    /* the rest from the store, in one MultiGet */
    size_t *rest = malloc(nm * sizeof(*rest)), nr = 0;
    uint8_t *rfound = malloc(nm);
    int rc = 0;
    if (!rest || !rfound) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
    } else {
        for (size_t j = 0; j < nm; j++)
            if (!found[j])
                rest[nr++] = miss[j];
        if (nr > 0)
            rc = load_stored(t, s, keys, rest, nr, rfound, eb);
        for (size_t j = 0, q = 0; rc == 0 && j < nm; j++)
            if (!found[j])
                found[j] = rfound[q++];
    }
    free(rest);
    free(rfound);
    return rc;
}

/* Load the rows of keys[miss[0..nm)] from the store into s. found[j] is
 * set for those present. */
static int load_stored(emb_table_t *t, sub_t *s, const uint64_t *keys, const size_t *miss,
                       size_t nm, uint8_t *found, errbuf_t *eb)
{
    unsigned char *kb = malloc(nm * EMB_KEY_LEN);
    const void **kp = malloc(nm * sizeof(*kp));
    size_t *kl = malloc(nm * sizeof(*kl)), *vl = malloc(nm * sizeof(*vl));
    void **vals = calloc(nm, sizeof(*vals));
    int rc = 0;

    memset(found, 0, nm);
    if (!kb || !kp || !kl || !vl || !vals) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t j = 0; j < nm; j++) {
        emb_key_encode(kb + j * EMB_KEY_LEN, s->slot, keys[miss[j]]);
        kp[j] = kb + j * EMB_KEY_LEN;
        kl[j] = EMB_KEY_LEN;
    }
    double t0 = clock_now_s(), c0 = thread_cpu_now_s();
    rc = store_multiget(t->store, nm, kp, kl, vals, vl, eb);
    t->st.store_read_s += clock_now_s() - t0;
    t->st.store_read_cpu_s += thread_cpu_now_s() - c0;
    t->st.store_read_keys += nm;
    if (rc != 0)
        goto out;
    for (size_t j = 0; j < nm && rc == 0; j++) {
        emb_row_meta_t meta;
        const void *fl;
        uint32_t nf;
        int slot;
        if (!vals[j])
            continue;
        if (emb_record_decode(vals[j], vl[j], &slot, &meta, &fl, &nf) != 0 || slot != s->slot ||
            nf != s->nfloat) {
            rc = errbuf_set(eb, ERR_CORRUPT,
                            "%s: row of slot %d key %016llx: bad record (%zu bytes; expected %zu "
                            "floats)",
                            t->store->name, s->slot, (unsigned long long)keys[miss[j]], vl[j],
                            s->nfloat);
            break;
        }
        uint32_t r = find(s, keys[miss[j]]);
        if (r == EMPTY) {
            r = insert(s, keys[miss[j]], t->day);
            if (r == EMPTY) {
                rc = insert_failed(t, s, eb);
                break;
            }
            unsigned char *p = recp(s, r);
            row_set_meta(p, meta.updates, meta.first_day, meta.last_day);
            memcpy(p + HDR, fl, s->nfloat * 4);
            bset(s->stored, r);
            bclr(s->ref, r); /* on probation: see "Memory budget" in emb_table.h */
            t->st.loaded++;
        }
        found[j] = 1;
    }
out:
    for (size_t j = 0; vals && j < nm; j++)
        free(vals[j]);
    free(vals);
    free(vl);
    free(kl);
    free(kp);
    free(kb);
    return rc;
}

static inline uint32_t cm_index(int slot, uint64_t key, int row)
{
    return (uint32_t)(mix(key ^ ((uint64_t)(slot + 1) << 56) ^
                          (UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(row + 1))) >>
                      (64 - CM_BITS));
}

static uint32_t cm_get(const emb_table_t *t, int slot, uint64_t key)
{
    uint32_t m = UINT16_MAX;
    for (int r = 0; r < CM_ROWS; r++) {
        uint16_t c = t->sketch[((size_t)r << CM_BITS) + cm_index(slot, key, r)];
        if (c < m)
            m = c;
    }
    return m;
}

/* Count a sighting (conservative update); returns the new estimate. */
static uint32_t cm_add(emb_table_t *t, int slot, uint64_t key)
{
    uint32_t est = cm_get(t, slot, key) + 1;
    if (est > UINT16_MAX)
        est = UINT16_MAX;
    for (int r = 0; r < CM_ROWS; r++) {
        uint16_t *c = &t->sketch[((size_t)r << CM_BITS) + cm_index(slot, key, r)];
        if (*c < est) {
            *c = (uint16_t)est;
            t->sketch_dirty = 1;
        }
    }
    return est;
}

uint32_t emb_table_sightings(const emb_table_t *t, int slot, uint64_t key)
{
    return t->sketch ? cm_get(t, slot, key) : 0;
}

enum { RESOLVE_FIND = 0, RESOLVE_SIGHT = 1, RESOLVE_APPLY = 2 };
enum { OP_PULL, OP_PUSH, OP_ASSIGN };

/* What a request does with each key's row, once it is resolved. */
typedef struct row_op {
    int kind;                /* OP_* */
    int create;              /* RESOLVE_* */
    unsigned char *out;      /* OP_PULL: n x dim floats (unaligned) */
    const unsigned char *in; /* OP_PUSH: n x dim gradients; OP_ASSIGN: n x width values */
    size_t width;            /* OP_ASSIGN: floats per value row */
} row_op_t;

/* memcpy of a row's embedding, inlined for the common widths (dim 8, 16,
 * 32, 64): a call of libc's memcpy per key cost the uniform pull a few ns
 * of its ~25. */
static inline void copy_row(unsigned char *dst, const float *src, size_t rb)
{
    switch (rb) {
    case 32: memcpy(dst, src, 32); return;
    case 64: memcpy(dst, src, 64); return;
    case 128: memcpy(dst, src, 128); return;
    case 256: memcpy(dst, src, 256); return;
    default: memcpy(dst, src, rb); return;
    }
}

/* Do op for key k of the request, whose row is record r (or EMPTY).
 * Inlined into the lookup loop: op->kind is the same for every key. */
__attribute__((always_inline)) static inline void visit(emb_table_t *t, sub_t *s,
                                                        const row_op_t *op, size_t k, uint32_t r)
{
    size_t rb = s->dim * sizeof(float);

    switch (op->kind) {
    case OP_PULL:
        if (r == EMPTY)
            memset(op->out + k * rb, 0, rb);
        else
            copy_row(op->out + k * rb, rec_w(s, r), rb);
        return;
    case OP_PUSH: {
        if (r == EMPTY) { /* not admitted yet */
            t->st.admit_dropped++;
            return;
        }
        unsigned char *p = recp(s, r);
        float *w = (float *)(p + HDR);
        const unsigned char *g = op->in + k * rb;
        uint16_t day = (uint16_t)t->day;
        uint32_t upd;
        if ((uintptr_t)g % _Alignof(float) != 0) { /* straight from a message */
            memcpy(t->scratch, g, rb);
            g = (const unsigned char *)t->scratch;
        }
        optim_row_update(&t->ms.emb_opt, w, w + s->dim, (const float *)g, s->dim);
        memcpy(&upd, p + ROW_UPDATES, 4);
        upd++;
        memcpy(p + ROW_UPDATES, &upd, 4);
        memcpy(p + ROW_LAST_DAY, &day, 2);
        bset(s->dirty, r);
        return;
    }
    case OP_ASSIGN:
        if (r == EMPTY)
            return;
        memcpy(rec_w(s, r), op->in + k * op->width * sizeof(float), op->width * sizeof(float));
        bset(s->dirty, r);
        return;
    }
}

/*
 * ERR_TOOBIG if creating the rows the misses of a call need would pass the
 * request's budget or max_rows: checked before any row is made, so a
 * refused call leaves the table as it was. Called after the store was
 * read, so only keys that truly have no row count.
 */
static int check_row_limits(emb_table_t *t, const sub_t *s, const uint64_t *keys,
                            const size_t *miss, size_t nm, int create, errbuf_t *eb)
{
    uint64_t need = 0;
    uint32_t admit = t->sketch ? (uint32_t)t->ms.slot[s->slot].admit_min : 0;

    if (!t->max_rows && t->create_left == UINT64_MAX)
        return 0;
    for (size_t j = 0; j < nm; j++) {
        if (find(s, keys[miss[j]]) != EMPTY)
            continue;
        if (admit > 1 && (create != RESOLVE_SIGHT || cm_get(t, s->slot, keys[miss[j]]) + 1 < admit))
            continue; /* not admitted by this call: no row */
        need++;
    }
    if (need > t->create_left) {
        t->st.create_refused++;
        return errbuf_set(eb, ERR_TOOBIG,
                          "%s: request would create %llu new rows of slot %s, more than this "
                          "shard allows per request (max_new_rows %llu left): send fewer new keys "
                          "per request or raise max_new_rows",
                          t->store->name, (unsigned long long)need, t->ms.slot[s->slot].name,
                          (unsigned long long)t->create_left);
    }
    if (t->max_rows && t->st.rows_total + need > t->max_rows) {
        t->st.create_refused++;
        return errbuf_set(eb, ERR_TOOBIG,
                          "%s: holds %llu rows; %llu new rows of slot %s would pass max_rows %llu: "
                          "existing rows are still served; raise max_rows, expire rows or add "
                          "shards",
                          t->store->name, (unsigned long long)t->st.rows_total,
                          (unsigned long long)need, t->ms.slot[s->slot].name,
                          (unsigned long long)t->max_rows);
    }
    return 0;
}

/*
 * Find every key's row and do op with it. A missing row is read back from
 * the store or, by op->create, made: RESOLVE_FIND creates nothing;
 * RESOLVE_SIGHT (a training pull) counts a sighting and creates admitted
 * rows; RESOLVE_APPLY (push, assign) creates rows unless the slot uses
 * admission. Keys are visited in order among the resident ones, then in
 * order among the others, so repeated keys are applied in request order.
 */
static int resolve(emb_table_t *t, sub_t *s, const uint64_t *keys, size_t n, const row_op_t *op,
                   errbuf_t *eb)
{
    size_t *miss = NULL, nm = 0;
    uint8_t *found = NULL;
    uint32_t *rows = NULL;
    int rc = 0, create = op->create, clock_on = t->mem_limit != 0;

    /* A request's keys are independent, so their memory misses can
     * overlap: a software pipeline loads the index position of key i +
     * 2 * DIST, then the record of key i + DIST (its index line has
     * arrived by then), while key i is looked up and used from cache. A
     * pull needs the record's header and embedding; a push all of it. */
    enum { DIST = 16 };
    size_t pf_bytes = op->kind == OP_PULL ? HDR + s->dim * sizeof(float) : s->rec;
    uint64_t *hm;

    move_index(s, MOVE_PER_CALL); /* an index being moved gets there without inserts too */
    prepare_index(s, PREP_PER_CALL);
    uint32_t mask = s->icap - 1; /* (after: a prepared index may have become the index) */
    if (n > t->hm_cap) {
        uint64_t *p = realloc(t->hm, n * sizeof(*p));
        if (!p)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        t->hm = p;
        t->hm_cap = n;
    }
    hm = t->hm;
    for (size_t i = 0; i < n; i++)
        hm[i] = mix(keys[i]);
    /* cand[]: what the record stage found for a key, so that the use
     * stage reads neither the index nor the slab table again: a record
     * whose tag matched (its key is checked when used), CAND_ABSENT (the
     * chain ended first: no row in this index) or CAND_SLOW (a longer
     * chain: look it up). The index cannot change during this loop. */
    enum { CAND_ABSENT = EMPTY, CAND_SLOW = EMPTY - 1 };
    uint32_t cand[2 * DIST];
    const unsigned char *candp[2 * DIST];
    for (size_t i = 0; i < n + 2 * DIST; i++) {
        if (i < n)
            __builtin_prefetch(&s->idx[(uint32_t)hm[i] & mask]);
        if (i >= DIST && i - DIST < n) {
            uint64_t h = hm[i - DIST];
            uint32_t pos = (uint32_t)h & mask, tag = tag_of(h), e, c = CAND_SLOW;
            const unsigned char *cp = NULL;
            /* the first entry with the key's tag (usually its own) */
            for (int probe = 0; probe < 4; probe++) {
                e = s->idx[pos];
                if (e == IX_EMPTY) {
                    c = CAND_ABSENT;
                    break;
                }
                if ((e & ~SLOT_MASK) == tag) {
                    c = ENT_REC(e);
                    cp = recp(s, c);
                    uintptr_t a = (uintptr_t)cp;
                    for (uintptr_t l = a & ~(uintptr_t)63; l < a + pf_bytes; l += 64)
                        __builtin_prefetch((const void *)l);
                    break;
                }
                pos = (pos + 1) & mask;
            }
            cand[(i - DIST) % (2 * DIST)] = c;
            candp[(i - DIST) % (2 * DIST)] = cp;
        }
        if (i < 2 * DIST)
            continue;
        size_t k = i - 2 * DIST;
        uint32_t r = cand[k % (2 * DIST)];
        if (r == CAND_ABSENT) {
            if (s->old)
                r = find_h(s, keys[k], hm[k]);
        } else if (r == CAND_SLOW) {
            r = find_h(s, keys[k], hm[k]);
        } else {
            uint64_t key;
            memcpy(&key, candp[k % (2 * DIST)] + ROW_KEY, 8);
            if (key != keys[k]) /* another key's tag: the rest of the chain */
                r = find_h(s, keys[k], hm[k]);
        }
        if (r != EMPTY) {
            /* a random line of the bit map: only CLOCK reads it; a push
             * follows its pull, which counted the reference */
            if (clock_on && op->kind != OP_PUSH)
                bset(s->ref, r);
            visit(t, s, op, k, r);
            continue;
        }
        if (!miss && !(miss = malloc(n * sizeof(*miss))))
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        miss[nm++] = k;
    }
    if (nm == 0)
        return 0;
    found = calloc(nm, 1);
    rows = malloc(nm * sizeof(*rows));
    if (!found || !rows) {
        rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    if (t->store_maybe_rows || spill_rows(s->spill) > 0) {
        rc = load_misses(t, s, keys, miss, nm, found, eb);
        if (rc != 0)
            goto out;
    }
    if (create && (rc = check_row_limits(t, s, keys, miss, nm, create, eb)) != 0)
        goto out;
    for (size_t j = 0; j < nm; j++) {
        size_t i = miss[j];
        rows[j] = find(s, keys[i]);
        if (rows[j] != EMPTY || !create)
            continue;
        if (t->sketch && t->ms.slot[s->slot].admit_min > 1) {
            /* a pull sights the key; a push never admits one by itself */
            if (create != RESOLVE_SIGHT ||
                cm_add(t, s->slot, keys[i]) < (uint32_t)t->ms.slot[s->slot].admit_min) {
                t->st.admit_pending += create == RESOLVE_SIGHT;
                continue;
            }
        }
        rows[j] = insert(s, keys[i], t->day);
        if (rows[j] == EMPTY) {
            rc = insert_failed(t, s, eb);
            goto out;
        }
        bclr(s->ref, rows[j]); /* on probation, as a loaded row */
        float *w = rec_w(s, rows[j]);
        optim_row_init(&t->ms.emb_opt, keys[i], w, w + s->dim, s->dim);
        bset(s->dirty, rows[j]);
        t->st.created++;
        t->st.rows_total++;
        t->create_left -= t->create_left != UINT64_MAX;
    }
    for (size_t j = 0; j < nm; j++)
        visit(t, s, op, miss[j], rows[j]);
out:
    free(rows);
    free(found);
    free(miss);
    return rc;
}

int emb_table_pull(emb_table_t *t, int slot, const uint64_t *keys, size_t n, void *out, int mode,
                   errbuf_t *eb)
{
    int rc = check_slot(t, slot, eb);
    row_op_t op = {OP_PULL, mode == EMB_PULL_CREATE ? RESOLVE_SIGHT : RESOLVE_FIND, out, NULL, 0};

    if (rc == 0)
        rc = resolve(t, &t->sub[slot], keys, n, &op, eb);
    if (rc == 0) {
        t->st.pulls += n;
        rc = maybe_evict(t, eb);
    }
    return rc;
}

int emb_table_push(emb_table_t *t, int slot, const uint64_t *keys, size_t n, const void *g,
                   errbuf_t *eb)
{
    int rc = check_slot(t, slot, eb);
    row_op_t op = {OP_PUSH, RESOLVE_APPLY, NULL, g, 0};

    if (rc == 0)
        rc = resolve(t, &t->sub[slot], keys, n, &op, eb);
    if (rc == 0) {
        t->st.pushes += n;
        rc = maybe_evict(t, eb);
    }
    return rc;
}

int emb_table_assign(emb_table_t *t, int slot, const uint64_t *keys, size_t n, const void *v,
                     int with_state, errbuf_t *eb)
{
    int rc = check_slot(t, slot, eb);
    row_op_t op = {OP_ASSIGN, RESOLVE_APPLY, NULL, v, 0};

    if (rc != 0)
        return rc;
    op.width = with_state ? t->sub[slot].nfloat : t->sub[slot].dim;
    rc = resolve(t, &t->sub[slot], keys, n, &op, eb);
    if (rc == 0)
        rc = maybe_evict(t, eb);
    return rc;
}

/* A flush writes in batches of at most 64k rows and, under a budget, of
 * at most a 32nd of it: the batch and RocksDB's copy of it are transient
 * memory beyond the budget (a flush of 64k spilled rows held ~20 MB, and
 * took a shard with a 32 MB mem_limit from 3.7x to 4.4x it in bench-mem's
 * VmHWM). */
static int batch_full(const emb_table_t *t, const wbuf_t *w)
{
    return w->n >= 65536 || (t->mem_limit && w->bused >= t->mem_limit / 32);
}

typedef struct spill_flush {
    emb_table_t *t;
    wbuf_t *w;
    const sub_t *s;
    uint64_t *total;
    errbuf_t *eb;
} spill_flush_t;

/* A spill_fn: one dirty spilled row into the flush's batch. */
static int spill_flush_one(void *ctx, const unsigned char *rec, int stored)
{
    spill_flush_t *f = ctx;
    int rc = wbuf_add_p(f->w, f->s, rec, &stored);

    (*f->total)++;
    if (rc == 0 && batch_full(f->t, f->w))
        rc = wbuf_write(f->t, f->w, f->eb);
    return rc;
}

int emb_table_flush(emb_table_t *t, uint64_t *nrows, errbuf_t *eb)
{
    wbuf_t w = {0};
    uint64_t total = 0;
    int rc = 0;

    for (int i = 0; i < t->ms.nslots && rc == 0; i++) {
        sub_t *s = &t->sub[i];
        size_t words = ((size_t)s->used + 63) / 64;
        for (size_t wi = 0; wi < words && rc == 0; wi++) {
            uint64_t d = s->dirty[wi] & s->live[wi];
            while (d && rc == 0) {
                uint32_t r = (uint32_t)(wi * 64 + (size_t)__builtin_ctzll(d));
                d &= d - 1;
                rc = wbuf_add(&w, s, r);
                total++;
            }
            /* bound the batch (batch_full) */
            if (rc == 0 && batch_full(t, &w))
                rc = wbuf_write(t, &w, eb);
        }
    }
    /* then the dirty rows of the spill files */
    for (int i = 0; i < t->ms.nslots && rc == 0; i++) {
        spill_flush_t f = {t, &w, &t->sub[i], &total, eb};
        if (t->sub[i].spill)
            rc = spill_each_dirty(t->sub[i].spill, spill_flush_one, &f, eb);
    }
    if (rc == 0)
        rc = wbuf_write(t, &w, eb);
    if (rc == 0 && total == 0) {
        /* every flush leaves the record in the newest writes, beside the
         * owner's records (a store whose older files were lost then shows
         * a count that disagrees) */
        uint64_t none[MODEL_MAX_SLOTS] = {0};
        store_op_t op = rows_record_op(t, none, 0);
        rc = store_write(t->store, &op, 1, 0, eb);
        rows_written(t, none, 0, rc);
    } else if (rc == ERR_NOMEM)
        errbuf_set(eb, rc, "out of memory flushing rows");
    wbuf_release(&w);
    if (rc == 0)
        rc = sketch_store(t, eb);
    if (rc != 0)
        return rc;
    for (int i = 0; i < t->ms.nslots; i++) {
        if (t->sub[i].dirty)
            memset(t->sub[i].dirty, 0, (((size_t)t->sub[i].cap + 63) / 64) * 8);
        if (t->sub[i].spill)
            spill_mark_clean(t->sub[i].spill);
    }
    t->st.flushed += total;
    if (nrows)
        *nrows = total;
    return 0;
}

int emb_table_expire(emb_table_t *t, int day, uint64_t *deleted, errbuf_t *eb)
{
    uint64_t total = 0;
    int rc;

    if (deleted)
        *deleted = 0;
    if (day < 0 || day > EMB_DAY_MAX)
        return errbuf_set(eb, ERR_INVAL, "%s: expiry on day %d: days are 0..%d", t->store->name,
                          day, EMB_DAY_MAX);
    rc = emb_table_flush(t, NULL, eb);
    /* the store now holds every spilled row as it is: forget them, so that
     * expiry judges the store and memory alone */
    for (int i = 0; rc == 0 && i < t->ms.nslots; i++)
        if (t->sub[i].spill)
            spill_clear(t->sub[i].spill);

    for (int i = 0; rc == 0 && i < t->ms.nslots; i++) {
        int exp = t->ms.slot[i].expire_days;
        unsigned char pfx[2] = {'r', (unsigned char)i};
        store_iter_t *it;
        const void *k, *v;
        size_t kl, vl, n = 0, cap = 0;
        unsigned char *keys = NULL;

        if (exp <= 0 || day - exp <= 0)
            continue;
        it = store_iter_new(t->store, pfx, 2);
        if (!it)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        while (store_iter_next(t->store, it, &k, &kl, &v, &vl)) {
            emb_row_meta_t meta;
            const void *fl;
            uint32_t nf;
            int sl;
            if (kl != EMB_KEY_LEN || emb_record_decode(v, vl, &sl, &meta, &fl, &nf) != 0 ||
                sl != i || nf != t->sub[i].nfloat) {
                rc = errbuf_set(eb, ERR_CORRUPT,
                                "%s: unreadable row record of slot %d (key of %zu bytes, value "
                                "of %zu)",
                                t->store->name, i, kl, vl);
                break;
            }
            if (meta.last_day >= day - exp)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                unsigned char *nk = realloc(keys, cap * EMB_KEY_LEN);
                if (!nk) {
                    rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
                    break;
                }
                keys = nk;
            }
            memcpy(keys + n * EMB_KEY_LEN, k, EMB_KEY_LEN);
            n++;
        }
        if (rc == 0)
            rc = store_iter_error(t->store, it, eb);
        store_iter_destroy(t->store, &it);
        if (rc == 0 && n > 0) {
            store_op_t *ops = calloc(2 * n + 1, sizeof(*ops));
            uint64_t removed[MODEL_MAX_SLOTS] = {0};
            removed[i] = n;
            unsigned char *tomb = malloc(n * EMB_KEY_LEN);
            unsigned char d32[4]; /* the tombstone's value: i32 day */
            bytes_put_le32(d32, (uint32_t)day);
            if (!ops || !tomb)
                rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
            for (size_t j = 0; rc == 0 && j < n; j++) {
                memcpy(tomb + j * EMB_KEY_LEN, keys + j * EMB_KEY_LEN, EMB_KEY_LEN);
                tomb[j * EMB_KEY_LEN] = 'x';
                ops[n + j] = (store_op_t){tomb + j * EMB_KEY_LEN, EMB_KEY_LEN, d32, 4};
            }
            for (size_t j = 0; rc == 0 && j < n; j++) {
                int sl = 0;
                uint64_t key = 0;
                ops[j].k = keys + j * EMB_KEY_LEN;
                ops[j].klen = EMB_KEY_LEN;
                emb_key_decode(ops[j].k, EMB_KEY_LEN, &sl, &key);
                uint32_t r = find(&t->sub[i], key);
                if (r != EMPTY)
                    remove_rec(&t->sub[i], r);
            }
            if (rc == 0) {
                ops[2 * n] = rows_record_op(t, removed, 1);
                rc = store_write(t->store, ops, 2 * n + 1, 0, eb);
                rows_written(t, removed, 1, rc);
            }
            free(tomb);
            free(ops);
            total += n;
        }
        free(keys);
    }
    t->st.expired += total;
    t->st.rows_total -= total < t->st.rows_total ? total : t->st.rows_total;
    if (deleted)
        *deleted = total;
    return rc;
}

int emb_table_get(emb_table_t *t, int slot, uint64_t key, float *vals, emb_row_meta_t *meta,
                  errbuf_t *eb)
{
    int rc = check_slot(t, slot, eb);
    sub_t *s;
    uint32_t r;

    if (rc != 0)
        return rc;
    s = &t->sub[slot];
    r = find(s, key);
    if (r != EMPTY) {
        const unsigned char *p = recp(s, r);
        row_get_meta(p, meta);
        memcpy(vals, p + HDR, s->nfloat * 4);
        return 0;
    }
    if (spill_rows(s->spill) > 0) {
        unsigned flags;
        unsigned char *p = (unsigned char *)t->scratch;
        rc = spill_peek(s->spill, key, p, &flags, eb);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            row_get_meta(p, meta);
            memcpy(vals, p + HDR, s->nfloat * 4);
            return 0;
        }
    }
    unsigned char kb[EMB_KEY_LEN];
    void *v = NULL;
    size_t vl;
    const void *fl;
    uint32_t nf;
    int sl;
    emb_key_encode(kb, slot, key);
    rc = store_get(t->store, kb, EMB_KEY_LEN, &v, &vl, eb);
    if (rc != 0)
        return rc;
    rc = emb_record_decode(v, vl, &sl, meta, &fl, &nf);
    if (rc == 0 && sl == slot && nf == s->nfloat)
        memcpy(vals, fl, nf * 4);
    else
        rc = errbuf_set(eb, ERR_CORRUPT,
                        "%s: row of slot %d key %016llx: bad record (%zu bytes; expected %zu "
                        "floats)",
                        t->store->name, slot, (unsigned long long)key, vl, s->nfloat);
    free(v);
    return rc;
}

int emb_table_inspect(emb_table_t *t, int slot, uint64_t key, float *vals, emb_row_meta_t *meta,
                      int *status, uint32_t *seen, int *expired_day, errbuf_t *eb)
{
    int rc = check_slot(t, slot, eb);

    if (rc != 0)
        return rc;
    memset(meta, 0, sizeof(*meta));
    *seen = emb_table_sightings(t, slot, key);
    *expired_day = -1;
    if (find(&t->sub[slot], key) != EMPTY) {
        *status = EMB_ROW_RESIDENT;
        return emb_table_get(t, slot, key, vals, meta, eb);
    }
    if (spill_rows(t->sub[slot].spill) > 0) {
        unsigned flags;
        unsigned char *p = (unsigned char *)t->scratch;
        rc = spill_peek(t->sub[slot].spill, key, p, &flags, eb);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            *status = EMB_ROW_RESIDENT; /* the shard holds it: in its spill file */
            row_get_meta(p, meta);
            memcpy(vals, p + HDR, t->sub[slot].nfloat * 4);
            return 0;
        }
    }
    rc = emb_table_get(t, slot, key, vals, meta, eb);
    if (rc == 0) {
        *status = EMB_ROW_STORED;
        return 0;
    }
    if (rc != ERR_NOTFOUND)
        return rc;
    unsigned char kb[EMB_KEY_LEN];
    void *v = NULL;
    size_t vl;
    emb_key_encode(kb, slot, key);
    kb[0] = 'x';
    rc = store_get(t->store, kb, EMB_KEY_LEN, &v, &vl, eb);
    if (rc == 0 && vl == 4) {
        *status = EMB_ROW_EXPIRED;
        *expired_day = (int32_t)bytes_get_le32(v);
    } else {
        *status = *seen > 0 ? EMB_ROW_PENDING : EMB_ROW_NEVER;
    }
    free(v);
    return rc == 0 || rc == ERR_NOTFOUND ? 0 : rc;
}

void emb_table_stats(const emb_table_t *t, emb_table_stats_t *st)
{
    *st = t->st;
    st->resident_rows = 0;
    st->payload_bytes = 0;
    st->index_bytes = 0;
    st->index_moving = 0;
    st->dirty_rows = 0;
    st->spill_rows = st->spill_dirty = st->spill_records = st->spill_mem_bytes = 0;
    st->spill_refused = st->spill_compactions = st->spill_reads = 0;
    for (int i = 0; i < t->ms.nslots; i++) {
        const sub_t *s = &t->sub[i];
        st->slot_rows[i] = s->rows;
        st->resident_rows += s->rows;
        st->payload_bytes += (uint64_t)s->rows * s->nfloat * 4;
        st->index_bytes += ((uint64_t)s->icap + s->ocap + s->ncap) * 4;
        st->index_moving += s->old ? s->ocap - s->opos : 0;
        for (size_t w = 0; w < ((size_t)s->used + 63) / 64; w++)
            st->dirty_rows += (uint64_t)__builtin_popcountll(s->dirty[w] & s->live[w]);
        if (s->spill) {
            spill_stats_t ss;
            spill_stats(s->spill, &ss);
            st->spill_rows += ss.rows;
            st->spill_dirty += ss.dirty;
            st->spill_records += ss.records;
            st->spill_mem_bytes += ss.mem_bytes;
            st->spill_refused += ss.refused;
            st->spill_compactions += ss.compactions;
            st->spill_reads += ss.read_calls;
        }
    }
    st->resident_bytes = resident_bytes(t);
}
