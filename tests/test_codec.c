/*
 * test_codec.c - the wire codec: a round trip of every message type, then
 * malformed input for every decoder - truncation at every byte, wrong
 * version, unknown type, every field replaced by a value of a wrong
 * msgpack type, blob lengths that disagree with their counts, huge
 * declared lengths, oversized messages, semantic violations - and a
 * fixed-seed mutation fuzz loop that must never crash (run it under
 * `make asan`). Also the protocol checks (handshake, reply, layout).
 *
 * The malformed messages are built with a tiny msgpack tree reader/writer
 * of the test's own (only codec.c may include msgpack.h): a valid message
 * is parsed into a tree, one node is changed, the tree is written back.
 */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/model_conf.h"
#include "common/optim.h"
#include "proto/codec.h"
#include "proto/msg.h"

/* ---------------------------------------------------------------------- */
/* Sample messages of every type                                           */

#define NK_BIG 1000

static uint64_t keys_a[3] = {1, UINT64_C(0xfeebc8aa0962ed4c), UINT64_MAX};
static uint64_t keys_big[NK_BIG];
static float rows_a[3 * 8];
static float rows_big[NK_BIG * 4];
static uint32_t counts_a[3] = {1, 5, 2};
static msg_row_meta_t meta_a[3];
static float dense_v[5] = {0.5f, -1.25f, 3.0f, 0.0f, 1e-7f};
static msg_kv_t kv_a[3];
static model_spec_t spec;

static void init_data(void)
{
    static const conf_key_t keys[] = {
#define ROW(...) CONF_ROW(model_conf_t, __VA_ARGS__)
        MODEL_CONF_KEYS(ROW)
#undef ROW
    };
    const conf_schema_t sc = {"model", keys, sizeof(keys) / sizeof(keys[0]), NULL};
    model_conf_t mc;

    for (int i = 0; i < NK_BIG; i++)
        keys_big[i] = UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(i + 1);
    for (int i = 0; i < NK_BIG * 4; i++)
        rows_big[i] = (float)i * 0.25f - 7.0f;
    for (int i = 0; i < 3 * 8; i++)
        rows_a[i] = (float)i / 3.0f;
    for (int i = 0; i < 3; i++) {
        meta_a[i] = (msg_row_meta_t){.status = (uint32_t)i,
                                     .seen = 10u + (uint32_t)i,
                                     .updates = UINT64_C(1) << (40 + i),
                                     .first_day = 1,
                                     .last_day = 3,
                                     .expired_day = -1};
    }
    kv_a[0] = (msg_kv_t){.name = {"rows.user_id", 12}, .u64 = 123456789012ull};
    kv_a[1] = (msg_kv_t){.name = {"admit.pending", 13}, .u64 = 0};
    kv_a[2] = (msg_kv_t){.name = {"store", 5}, .is_str = 1, .str = {"rocksdb 7.8", 11}};
    conf_defaults(&sc, &mc, NULL);
    model_spec_from_conf(&spec, &mc, NULL);
}

static void set_slot(msg_slot_t *s, uint32_t slot, uint32_t nkeys, uint32_t dim, const void *keys,
                     const void *rows, const void *counts, const void *meta)
{
    *s = (msg_slot_t){slot, nkeys, dim, keys, rows, counts, meta};
}

/* A valid message of `type` with non-trivial content. Returns 0, -1 for a
 * type this function does not know (so a new type must get a sample). */
static int make_sample(msg_t *m, int type)
{
    static const msg_str_t path = {"/data/ckpt/day-3", 16};

    msg_init(m, type, 1000u + (uint64_t)type);
    m->hdr.sender = 3;
    switch (type) {
    case MSG_HELLO:
    case MSG_HELLO_OK:
        codec_hello_from_spec(&m->u.hello, &spec, 1, 2, 295172, type == MSG_HELLO ? -1 : 4);
        break;
    case MSG_PULL:
    case MSG_ROWS_GET:
        m->u.rows.flags = type == MSG_PULL ? MSG_F_READONLY : MSG_F_STATE;
        m->u.rows.nslots = 3;
        set_slot(&m->u.rows.slot[0], 0, 3, 0, keys_a, NULL, NULL, NULL);
        set_slot(&m->u.rows.slot[1], 2, 0, 0, NULL, NULL, NULL, NULL);
        set_slot(&m->u.rows.slot[2], 63, NK_BIG, 0, keys_big, NULL, NULL, NULL);
        break;
    case MSG_PULL_OK:
        m->u.rows.nslots = 3;
        set_slot(&m->u.rows.slot[0], 0, 3, 8, NULL, rows_a, NULL, NULL);
        set_slot(&m->u.rows.slot[1], 2, 0, 16, NULL, NULL, NULL, NULL);
        set_slot(&m->u.rows.slot[2], 63, NK_BIG, 4, NULL, rows_big, NULL, NULL);
        break;
    case MSG_PUSH:
        m->hdr.seq = 77;
        m->u.rows.nslots = 2;
        set_slot(&m->u.rows.slot[0], 1, 3, 8, keys_a, rows_a, counts_a, NULL);
        set_slot(&m->u.rows.slot[1], 7, NK_BIG, 4, keys_big, rows_big, NULL, NULL);
        m->u.rows.pos = (msg_pos_t){1, 0, 2, 5, 1000, 0, 512};
        break;
    case MSG_ROWS_OK:
        m->u.rows.flags = MSG_F_STATE;
        m->u.rows.cursor = UINT64_C(0x123456789);
        m->u.rows.nslots = 2;
        set_slot(&m->u.rows.slot[0], 4, 3, 8, keys_a, rows_a, NULL, meta_a);
        set_slot(&m->u.rows.slot[1], 5, 3, 0, keys_a, NULL, NULL, meta_a);
        break;
    case MSG_PULL_DENSE: m->u.dense = (msg_dense_t){0, 10, 5, NULL, {0}}; break;
    case MSG_PULL_DENSE_OK: m->u.dense = (msg_dense_t){0, 10, 5, dense_v, {0}}; break;
    case MSG_PUSH_DENSE:
        m->hdr.seq = 78;
        m->u.dense = (msg_dense_t){MSG_F_ASSIGN, UINT64_C(1) << 33, 5, dense_v,
                                   (msg_pos_t){1, 1, 3, 9, UINT64_C(1) << 40, 77, 123456}};
        break;
    case MSG_PROGRESS_SET:
    case MSG_PROGRESS_GET:
    case MSG_PROGRESS_OK:
        m->u.progress = (msg_progress_t){.rank = 3,
                                         .found = type == MSG_PROGRESS_OK,
                                         .epoch = 2,
                                         .file = 17,
                                         .offset = UINT64_C(5000000000),
                                         .line = 123456,
                                         .samples = UINT64_C(987654321)};
        break;
    case MSG_STATS: m->u.cmd.text = (msg_str_t){"slot.", 5}; break;
    case MSG_FLUSH:
    case MSG_SHUTDOWN: break;
    case MSG_CHECKPOINT:
        m->u.cmd.day = 3;
        m->u.cmd.text = path;
        break;
    case MSG_EXPORT:
        m->u.cmd.flags = MSG_F_DELTA;
        m->u.cmd.day = 3;
        m->u.cmd.text = path;
        break;
    case MSG_BEGIN_DAY:
        m->u.cmd.flags = MSG_F_EXPIRE;
        m->u.cmd.day = 4;
        break;
    case MSG_STATS_OK: m->u.kv = (msg_kvlist_t){0, 3, kv_a}; break;
    case MSG_ACK: m->u.kv = (msg_kvlist_t){MSG_F_DUPLICATE, 2, kv_a}; break;
    case MSG_SCAN:
        m->u.scan = (msg_scan_t){.slot = 5, .flags = MSG_F_STATE, .cursor = 99, .limit = 500};
        break;
    case MSG_ERROR:
        m->u.error.code = ERR_MISMATCH;
        m->u.error.text = (msg_str_t){"slot 2 'cate_id': dim 16 here, 8 at the peer", 44};
        break;
    default: return -1;
    }
    return 0;
}

static const int all_types[] = {
#define X(name, code, reply, body, flags, desc) MSG_##name,
    MSG_TYPES(X)
#undef X
};
#define NTYPES ((int)(sizeof(all_types) / sizeof(all_types[0])))

/* ---------------------------------------------------------------------- */
/* Deep comparison                                                         */

static int blob_eq(const void *a, const void *b, size_t n)
{
    if (n == 0)
        return 1;
    return a != NULL && b != NULL && memcmp(a, b, n) == 0;
}

static int str_eq(const msg_str_t *a, const msg_str_t *b)
{
    return a->len == b->len && blob_eq(a->ptr, b->ptr, a->len);
}

static int msg_eq(const msg_t *a, const msg_t *b)
{
    if (a->hdr.version != b->hdr.version || a->hdr.type != b->hdr.type ||
        a->hdr.req_id != b->hdr.req_id || a->hdr.sender != b->hdr.sender ||
        a->hdr.seq != b->hdr.seq)
        return 0;
    switch (msg_type_body(a->hdr.type)) {
    case MSG_BODY_HELLO: {
        const msg_hello_t *x = &a->u.hello, *y = &b->u.hello;

        if (x->flags != y->flags || x->shard != y->shard || x->nshards != y->nshards ||
            x->emb_optim != y->emb_optim || x->dense_optim != y->dense_optim ||
            x->dense_size != y->dense_size || x->day != y->day || x->nslots != y->nslots ||
            x->model_type != y->model_type || x->ntowers != y->ntowers ||
            x->nlayers != y->nlayers ||
            memcmp(x->layer, y->layer, x->nlayers * sizeof(x->layer[0])) != 0)
            return 0;
        for (uint32_t i = 0; i < x->nslots; i++)
            if (strcmp(x->slot[i].name, y->slot[i].name) != 0 || x->slot[i].dim != y->slot[i].dim ||
                x->slot[i].admit_min != y->slot[i].admit_min ||
                x->slot[i].expire_days != y->slot[i].expire_days)
                return 0;
        return 1;
    }
    case MSG_BODY_ROWS: {
        const msg_rows_t *x = &a->u.rows, *y = &b->u.rows;

        if (x->flags != y->flags || x->cursor != y->cursor || x->nslots != y->nslots ||
            memcmp(&x->pos, &y->pos, sizeof(x->pos)) != 0)
            return 0;
        for (uint32_t i = 0; i < x->nslots; i++) {
            const msg_slot_t *s = &x->slot[i], *t = &y->slot[i];
            size_t nk = s->nkeys;

            if (s->slot != t->slot || s->nkeys != t->nkeys || s->dim != t->dim)
                return 0;
            if (!blob_eq(s->keys, t->keys, s->keys || t->keys ? nk * 8 : 0) ||
                !blob_eq(s->rows, t->rows, s->rows || t->rows ? nk * s->dim * 4 : 0) ||
                !blob_eq(s->counts, t->counts, s->counts || t->counts ? nk * 4 : 0) ||
                !blob_eq(s->meta, t->meta, s->meta || t->meta ? nk * 32 : 0))
                return 0;
        }
        return 1;
    }
    case MSG_BODY_DENSE:
        return a->u.dense.flags == b->u.dense.flags && a->u.dense.offset == b->u.dense.offset &&
               a->u.dense.count == b->u.dense.count &&
               memcmp(&a->u.dense.pos, &b->u.dense.pos, sizeof(a->u.dense.pos)) == 0 &&
               blob_eq(a->u.dense.values, b->u.dense.values,
                       a->u.dense.values || b->u.dense.values ? a->u.dense.count * 4 : 0);
    case MSG_BODY_PROGRESS:
        return memcmp(&a->u.progress, &b->u.progress, sizeof(a->u.progress)) == 0;
    case MSG_BODY_CMD:
        return a->u.cmd.flags == b->u.cmd.flags && a->u.cmd.day == b->u.cmd.day &&
               str_eq(&a->u.cmd.text, &b->u.cmd.text);
    case MSG_BODY_KV:
        if (a->u.kv.flags != b->u.kv.flags || a->u.kv.n != b->u.kv.n)
            return 0;
        for (uint32_t i = 0; i < a->u.kv.n; i++) {
            const msg_kv_t *x = &a->u.kv.kv[i], *y = &b->u.kv.kv[i];

            if (!str_eq(&x->name, &y->name) || x->is_str != y->is_str ||
                (x->is_str ? !str_eq(&x->str, &y->str) : x->u64 != y->u64))
                return 0;
        }
        return 1;
    case MSG_BODY_SCAN:
        return a->u.scan.slot == b->u.scan.slot && a->u.scan.flags == b->u.scan.flags &&
               a->u.scan.cursor == b->u.scan.cursor && a->u.scan.limit == b->u.scan.limit;
    case MSG_BODY_ERROR:
        return a->u.error.code == b->u.error.code && str_eq(&a->u.error.text, &b->u.error.text);
    }
    return 0;
}

/* Decode a heap copy of exactly len bytes, so ASan sees any over-read. */
static int decode_copy(codec_dec_t *d, msg_t *m, const void *data, size_t len, errbuf_t *eb,
                       unsigned char **keep)
{
    unsigned char *copy = malloc(len ? len : 1);
    int rc;

    memcpy(copy, data, len);
    eb->msg[0] = '\0';
    rc = codec_decode(d, m, copy, len, eb);
    if (keep)
        *keep = copy;
    else
        free(copy);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* A tiny msgpack tree for building malformed messages                     */

enum { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_STR, MP_BIN, MP_ARR, MP_MAP };

typedef struct mpn {
    int kind;
    uint64_t u;             /* MP_UINT, MP_BOOL */
    int64_t i;              /* MP_INT */
    const unsigned char *p; /* MP_STR, MP_BIN bytes */
    uint32_t len;           /* MP_STR, MP_BIN bytes; MP_ARR, MP_MAP elements */
    struct mpn *kid;        /* MP_ARR: len kids */
} mpn_t;

#define POOL 4096 /* most nodes a sample message has */

typedef struct tbuf {
    unsigned char *p;
    size_t len, cap;
} tbuf_t;

static void tb_put(tbuf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void tb_be(tbuf_t *b, unsigned tag, uint64_t v, int k)
{
    unsigned char x[9];

    x[0] = (unsigned char)tag;
    for (int j = 0; j < k; j++)
        x[1 + j] = (unsigned char)(v >> (8 * (k - 1 - j)));
    tb_put(b, x, 1 + (size_t)k);
}

static uint64_t be(const unsigned char *p, int k)
{
    uint64_t v = 0;

    for (int j = 0; j < k; j++)
        v = v << 8 | p[j];
    return v;
}

/* Parse one value of our encoder's output (no maps, floats or ext) into n;
 * arrays get heap children (mp_free). */
static void mp_parse(mpn_t *n, const unsigned char *p, size_t *pos)
{
    unsigned t = p[(*pos)++];
    int k = 0;

    memset(n, 0, sizeof(*n));
    if (t <= 0x7f) {
        n->kind = MP_UINT, n->u = t;
        return;
    }
    if (t >= 0xe0) {
        n->kind = MP_INT, n->i = (int8_t)t;
        return;
    }
    if ((t & 0xf0) == 0x90) {
        n->kind = MP_ARR, n->len = t & 0x0f;
    } else if ((t & 0xe0) == 0xa0) {
        n->kind = MP_STR, n->len = t & 0x1f;
    } else {
        switch (t) {
        case 0xc0: n->kind = MP_NIL; return;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            k = 1 << (t - 0xcc);
            n->kind = MP_UINT, n->u = be(p + *pos, k), *pos += (size_t)k;
            return;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3:
            k = 1 << (t - 0xd0);
            n->kind = MP_INT, n->u = be(p + *pos, k), *pos += (size_t)k;
            n->i = k == 1   ? (int8_t)n->u
                   : k == 2 ? (int16_t)n->u
                   : k == 4 ? (int32_t)n->u
                            : (int64_t)n->u;
            return;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            k = 1 << (t - 0xc4);
            n->kind = MP_BIN;
            break;
        case 0xd9:
        case 0xda:
        case 0xdb:
            k = 1 << (t - 0xd9);
            n->kind = MP_STR;
            break;
        case 0xdc:
        case 0xdd:
            k = 2 << (t - 0xdc);
            n->kind = MP_ARR;
            break;
        default: CU_FAIL_FATAL("unexpected msgpack type in our own encoding");
        }
        n->len = (uint32_t)be(p + *pos, k);
        *pos += (size_t)k;
    }
    if (n->kind == MP_ARR) {
        n->kid = calloc(n->len ? n->len : 1, sizeof(mpn_t));
        for (uint32_t j = 0; j < n->len; j++)
            mp_parse(&n->kid[j], p, pos);
    } else {
        n->p = p + *pos;
        *pos += n->len;
    }
}

static void mp_free(mpn_t *n)
{
    if (n->kind == MP_ARR) {
        for (uint32_t j = 0; j < n->len; j++)
            mp_free(&n->kid[j]);
        free(n->kid);
    }
}

static void mp_write(tbuf_t *b, const mpn_t *n)
{
    switch (n->kind) {
    case MP_NIL: tb_put(b, "\xc0", 1); break;
    case MP_BOOL: tb_put(b, n->u ? "\xc3" : "\xc2", 1); break;
    case MP_UINT:
        if (n->u <= 0x7f)
            tb_be(b, (unsigned)n->u, 0, 0);
        else if (n->u <= 0xff)
            tb_be(b, 0xcc, n->u, 1);
        else if (n->u <= 0xffff)
            tb_be(b, 0xcd, n->u, 2);
        else if (n->u <= 0xffffffffu)
            tb_be(b, 0xce, n->u, 4);
        else
            tb_be(b, 0xcf, n->u, 8);
        break;
    case MP_INT: tb_be(b, 0xd3, (uint64_t)n->i, 8); break;
    case MP_STR:
    case MP_BIN:
        if (n->kind == MP_STR && n->len <= 31)
            tb_be(b, 0xa0 | n->len, 0, 0);
        else if (n->len <= 0xff)
            tb_be(b, n->kind == MP_STR ? 0xd9 : 0xc4, n->len, 1);
        else if (n->len <= 0xffff)
            tb_be(b, n->kind == MP_STR ? 0xda : 0xc5, n->len, 2);
        else
            tb_be(b, n->kind == MP_STR ? 0xdb : 0xc6, n->len, 4);
        tb_put(b, n->p, n->len);
        break;
    case MP_ARR:
        if (n->len <= 15)
            tb_be(b, 0x90 | n->len, 0, 0);
        else if (n->len <= 0xffff)
            tb_be(b, 0xdc, n->len, 2);
        else
            tb_be(b, 0xdd, n->len, 4);
        for (uint32_t j = 0; j < n->len; j++)
            mp_write(b, &n->kid[j]);
        break;
    case MP_MAP:
        tb_be(b, 0x80 | n->len, 0, 0); /* only empty maps are built */
        break;
    }
}

/* Every node below the root, pre-order. */
static int mp_collect(mpn_t *n, mpn_t **out, int k, int max)
{
    if (n->kind != MP_ARR)
        return k;
    for (uint32_t j = 0; j < n->len && k < max; j++) {
        out[k++] = &n->kid[j];
        k = mp_collect(&n->kid[j], out, k, max);
    }
    return k;
}

typedef struct fixture {
    codec_buf_t buf;
    codec_dec_t *dec;
    msg_t m, d;
    errbuf_t eb;
    unsigned char *held; /* the bytes f.d points into */
} fixture_t;

static void fx_init(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    codec_buf_init(&f->buf, 0);
    f->dec = codec_dec_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->dec);
}

static void fx_release(fixture_t *f)
{
    free(f->held);
    codec_buf_release(&f->buf);
    codec_dec_destroy(&f->dec);
    CU_ASSERT_PTR_NULL(f->dec);
}

/* Decode a copy of data into f->d; the copy lives until the next call. */
static int fx_decode(fixture_t *f, const void *data, size_t len)
{
    free(f->held);
    return decode_copy(f->dec, &f->d, data, len, &f->eb, &f->held);
}

/* Encode the sample of type into f->buf and parse it into a tree. */
static mpn_t *sample_tree(fixture_t *f, int type)
{
    static mpn_t root;
    size_t pos = 0;

    CU_ASSERT_EQUAL_FATAL(make_sample(&f->m, type), 0);
    CU_ASSERT_EQUAL_FATAL(codec_encode(&f->buf, &f->m, &f->eb), 0);
    mp_parse(&root, f->buf.data, &pos);
    CU_ASSERT_EQUAL(pos, f->buf.len);
    return &root;
}

/* Write the tree and decode it; returns the decode's code. */
static int tree_decode(fixture_t *f, const mpn_t *root)
{
    tbuf_t t = {0};
    int rc;

    mp_write(&t, root);
    rc = fx_decode(f, t.p, t.len);
    if (rc < 0)
        CU_ASSERT(f->eb.msg[0] != '\0');
    free(t.p);
    return rc;
}

static int expect(int got, int want, const char *what, int type)
{
    if (got != want) {
        fprintf(stderr, "\n  %s %s: got %d (%s), want %d\n", msg_type_name(type), what, got,
                err_strerror(got), want);
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */

static void test_type_table(void)
{
    int seen[MSG_TYPE_END] = {0};

    for (int i = 0; i < NTYPES; i++) {
        int t = all_types[i], r = msg_type_reply(t);

        CU_ASSERT(t > 0 && t < MSG_TYPE_END);
        CU_ASSERT_EQUAL(seen[t]++, 0);
        CU_ASSERT_STRING_NOT_EQUAL(msg_type_name(t), "UNKNOWN");
        CU_ASSERT(msg_type_body(t) >= 0 && msg_type_body(t) < MSG_BODY_END);
        if (r != MSG_NONE) /* a request's reply is a reply */
            CU_ASSERT_EQUAL(msg_type_reply(r), MSG_NONE);
    }
    CU_ASSERT_STRING_EQUAL(msg_type_name(MSG_PULL), "PULL");
    CU_ASSERT_STRING_EQUAL(msg_type_name(999), "UNKNOWN");
    CU_ASSERT_EQUAL(msg_type_body(0), -1);
    CU_ASSERT_EQUAL(msg_type_reply(MSG_PUSH), MSG_ACK);
    CU_ASSERT(msg_type_is_request(MSG_SCAN));
    CU_ASSERT(!msg_type_is_request(MSG_ROWS_OK));
}

static void test_round_trip(void)
{
    fixture_t f;
    codec_buf_t again;

    fx_init(&f);
    codec_buf_init(&again, 0);
    for (int i = 0; i < NTYPES; i++) {
        int t = all_types[i];
        unsigned char *copy;

        CU_ASSERT_EQUAL_FATAL(make_sample(&f.m, t), 0);
        CU_ASSERT_EQUAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
        CU_ASSERT(expect(decode_copy(f.dec, &f.d, f.buf.data, f.buf.len, &f.eb, &copy), 0,
                         "round trip", t));
        if (!msg_eq(&f.m, &f.d))
            fprintf(stderr, "\n  %s: decoded message differs\n", msg_type_name(t));
        CU_ASSERT(msg_eq(&f.m, &f.d));
        /* Zero copy: the decoded blobs point into the received bytes. */
        if (t == MSG_PULL) {
            const unsigned char *k = f.d.u.rows.slot[2].keys;
            CU_ASSERT(k > copy && k + NK_BIG * 8 <= copy + f.buf.len);
            CU_ASSERT_PTR_NULL(f.d.u.rows.slot[1].keys); /* empty entry */
            CU_ASSERT_EQUAL(msg_key_get(k, 999), keys_big[999]);
        }
        if (t == MSG_PUSH) {
            CU_ASSERT_EQUAL(msg_count_get(f.d.u.rows.slot[0].counts, 1), 5);
            CU_ASSERT_EQUAL(msg_count_get(f.d.u.rows.slot[1].counts, 1), 1); /* absent */
        }
        if (t == MSG_ROWS_OK) {
            msg_row_meta_t rm;
            float row[8];

            msg_row_meta_get(&rm, f.d.u.rows.slot[0].meta, 2);
            CU_ASSERT_EQUAL(memcmp(&rm, &meta_a[2], sizeof(rm)), 0);
            msg_row_get(row, f.d.u.rows.slot[0].rows, 1, 8);
            CU_ASSERT_EQUAL(memcmp(row, rows_a + 8, sizeof(row)), 0);
        }
        /* Decoded messages encode to the same bytes. */
        CU_ASSERT_EQUAL(codec_encode(&again, &f.d, &f.eb), 0);
        CU_ASSERT(again.len == f.buf.len && memcmp(again.data, f.buf.data, again.len) == 0);
        free(copy);
    }
    codec_buf_release(&again);
    fx_release(&f);
}

/*
 * The fuzz target's seed corpus (tests/fuzz/corpus/codec/<TYPE>) holds the
 * encoding of every sample message, so fuzzing starts from today's wire
 * format. With FUNNEL_FUZZ_SEEDS=DIR set, the seeds are (re)written into
 * DIR instead of compared: run it after a wire change.
 */
static void test_fuzz_seeds(void)
{
    const char *write_dir = getenv("FUNNEL_FUZZ_SEEDS");
    const char *dir = write_dir ? write_dir : "tests/fuzz/corpus/codec";
    fixture_t f;

    fx_init(&f);
    for (int i = 0; i < NTYPES; i++) {
        int t = all_types[i];
        char path[512];
        unsigned char *seed = NULL;
        size_t len = 0;
        FILE *fp;

        CU_ASSERT_EQUAL_FATAL(make_sample(&f.m, t), 0);
        CU_ASSERT_EQUAL_FATAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
        snprintf(path, sizeof(path), "%s/%s", dir, msg_type_name(t));
        if (write_dir) {
            fp = fopen(path, "wb");
            CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
            CU_ASSERT_EQUAL(fwrite(f.buf.data, 1, f.buf.len, fp), f.buf.len);
            CU_ASSERT_EQUAL(fclose(fp), 0);
            continue;
        }
        fp = fopen(path, "rb");
        if (fp) {
            seed = malloc(f.buf.len + 1);
            len = seed ? fread(seed, 1, f.buf.len + 1, fp) : 0;
            fclose(fp);
        }
        if (!seed || len != f.buf.len || memcmp(seed, f.buf.data, len) != 0)
            fprintf(stderr,
                    "\n  %s is missing or stale: rewrite the seeds with "
                    "FUNNEL_FUZZ_SEEDS=tests/fuzz/corpus/codec bin/funnel-tests codec\n",
                    path);
        CU_ASSERT(seed && len == f.buf.len && memcmp(seed, f.buf.data, len) == 0);
        free(seed);
    }
    fx_release(&f);
}

/* Bytes of an encoded message up to the end of its req_id: a fixarray
 * byte, then magic, version, type and req_id, each one msgpack uint. */
static size_t header_prefix_len(const unsigned char *b, size_t len)
{
    size_t off = 1;

    for (int i = 0; i < 4 && off < len; i++) {
        unsigned char c = b[off];
        off += c <= 0x7f ? 1 : c == 0xcc ? 2 : c == 0xcd ? 3 : c == 0xce ? 5 : 9;
    }
    return off;
}

static void test_truncated_everywhere(void)
{
    fixture_t f;

    fx_init(&f);
    for (int i = 0; i < NTYPES; i++) {
        int t = all_types[i], bad = 0;

        CU_ASSERT_EQUAL_FATAL(make_sample(&f.m, t), 0);
        CU_ASSERT_EQUAL_FATAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
        CU_ASSERT_FATAL(f.m.hdr.req_id != 0);
        size_t hdr_len = header_prefix_len(f.buf.data, f.buf.len);
        for (size_t k = 0; k < f.buf.len; k++) {
            int rc = decode_copy(f.dec, &f.d, f.buf.data, k, &f.eb, NULL);

            if (rc != ERR_PROTO || f.eb.msg[0] == '\0')
                bad += expect(rc, ERR_PROTO, "truncated", t) ? 0 : 1;
            /* once the header's first four fields are in, the error can be
             * addressed to the request; before, it is 0 */
            if (f.d.hdr.req_id != (k >= hdr_len ? f.m.hdr.req_id : 0)) {
                fprintf(stderr, "\n  %s cut at %zu: req_id %llu\n", msg_type_name(t), k,
                        (unsigned long long)f.d.hdr.req_id);
                bad++;
            }
            if (bad > 3)
                break;
        }
        CU_ASSERT_EQUAL(bad, 0);
    }
    fx_release(&f);
}

static void test_wrong_version_magic_type(void)
{
    fixture_t f;
    mpn_t *root;

    fx_init(&f);
    for (int i = 0; i < NTYPES; i++) {
        int t = all_types[i];
        mpn_t saved;

        root = sample_tree(&f, t);
        /* the next version: ERR_VERSION, and the request id is still known */
        root->kid[1].u = MSG_VERSION + 1;
        CU_ASSERT(expect(tree_decode(&f, root), ERR_VERSION, "next version", t));
        CU_ASSERT_EQUAL(f.d.hdr.req_id, 1000u + (uint64_t)t);
        CU_ASSERT_EQUAL(f.d.hdr.version, MSG_VERSION + 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(f.eb.msg, "version 4, this build speaks 3"));
        CU_ASSERT_PTR_NOT_NULL(strstr(f.eb.msg, "same funnel release"));
        /* the previous version (HELLO without the model type): ERR_VERSION too */
        root->kid[1].u = MSG_VERSION - 1;
        CU_ASSERT(expect(tree_decode(&f, root), ERR_VERSION, "previous version", t));
        root->kid[1].u = 0;
        CU_ASSERT(expect(tree_decode(&f, root), ERR_VERSION, "version 0", t));
        root->kid[1].u = MSG_VERSION;
        /* a future version may change the arity: still ERR_VERSION */
        root->kid[1].u = 9;
        root->len = 3;
        CU_ASSERT(expect(tree_decode(&f, root), ERR_VERSION, "v9 arity 3", t));
        root->len = 7;
        root->kid[1].u = MSG_VERSION;
        /* magic */
        root->kid[0].u = MSG_MAGIC + 1;
        CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "magic", t));
        root->kid[0].u = MSG_MAGIC;
        /* unknown types */
        root->kid[2].u = 0;
        CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "type 0", t));
        root->kid[2].u = MSG_TYPE_END;
        CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "type END", t));
        root->kid[2].u = UINT64_C(1) << 40;
        CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "type 2^40", t));
        root->kid[2].u = (uint64_t)t;
        /* header arity */
        root->len = 6;
        CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "arity 6", t));
        root->len = 7;
        /* body arity: one element more */
        saved = root->kid[6];
        {
            mpn_t *kids = calloc(saved.len + 1, sizeof(mpn_t));

            memcpy(kids, saved.kid, saved.len * sizeof(mpn_t));
            kids[saved.len].kind = MP_NIL;
            root->kid[6].kid = kids;
            root->kid[6].len = saved.len + 1;
            CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "body arity +1", t));
            root->kid[6] = saved;
            free(kids);
        }
        CU_ASSERT(expect(tree_decode(&f, root), 0, "restored", t));
        if (!msg_eq(&f.m, &f.d))
            fprintf(stderr, "\n  %s: restored message differs\n", msg_type_name(t));
        CU_ASSERT(msg_eq(&f.m, &f.d));
        mp_free(root);
    }
    fx_release(&f);
}

/* Every field, replaced by a value of a type it can never have. */
static void test_wrong_types_everywhere(void)
{
    fixture_t f;
    mpn_t *nodes[POOL];

    fx_init(&f);
    for (int i = 0; i < NTYPES; i++) {
        int t = all_types[i];
        mpn_t *root = sample_tree(&f, t);
        int n = mp_collect(root, nodes, 0, POOL), bad = 0;

        CU_ASSERT(n >= 7);
        for (int j = 0; j < n; j++) {
            mpn_t saved = *nodes[j];
            mpn_t repl[3] = {{.kind = MP_MAP}, {.kind = MP_NIL}, {.kind = MP_BOOL, .u = 1}};
            mpn_t other = {.kind = saved.kind == MP_ARR ? MP_UINT : MP_ARR, .u = 1};

            for (int r = 0; r < 4; r++) {
                *nodes[j] = r < 3 ? repl[r] : other;
                if (!expect(tree_decode(&f, root), ERR_PROTO, "wrong type", t)) {
                    fprintf(stderr, "  node %d (kind %d) -> replacement %d\n", j, saved.kind, r);
                    bad++;
                }
            }
            *nodes[j] = saved;
        }
        CU_ASSERT_EQUAL(bad, 0);
        mp_free(root);
    }
    fx_release(&f);
}

/* Every blob one byte short or long; every count of a ROWS entry or a
 * dense range off by one: the lengths no longer agree. */
static void test_inconsistent_lengths(void)
{
    static unsigned char zeros[1 << 16];
    fixture_t f;
    mpn_t *nodes[POOL];

    fx_init(&f);
    for (int i = 0; i < NTYPES; i++) {
        int t = all_types[i], body = msg_type_body(t);
        mpn_t *root = sample_tree(&f, t);
        int n = mp_collect(root, nodes, 0, POOL), nbin = 0;

        for (int j = 0; j < n; j++) {
            mpn_t saved = *nodes[j];

            if (saved.kind != MP_BIN)
                continue;
            nbin++;
            if (saved.len > 0) {
                nodes[j]->len = saved.len - 1;
                CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "blob -1", t));
            }
            CU_ASSERT_FATAL(saved.len + 1 <= sizeof(zeros));
            nodes[j]->p = zeros;
            nodes[j]->len = saved.len + 1;
            CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "blob +1", t));
            *nodes[j] = saved;
        }
        if (body == MSG_BODY_ROWS) {
            mpn_t *ents = &root->kid[6].kid[2];

            CU_ASSERT(nbin == 4 * (int)ents->len);
            for (uint32_t e = 0; e < ents->len; e++)
                for (int field = 1; field <= 2; field++) { /* nkeys, dim */
                    mpn_t *v = &ents->kid[e].kid[field];
                    uint64_t u = v->u;

                    if (field == 2 && ents->kid[e].kid[1].u == 0)
                        continue; /* no keys: any dim in range is consistent */

                    v->u = u + 1;
                    CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "count +1", t));
                    if (u > 0) {
                        v->u = u - 1;
                        /* nkeys 0 -> blobs of 0 keys: still a mismatch */
                        CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "count -1", t));
                    }
                    v->u = (uint64_t)UINT32_MAX + 1;
                    CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "count 2^32", t));
                    v->u = u;
                }
        }
        if (body == MSG_BODY_DENSE && t != MSG_PULL_DENSE) {
            mpn_t *cnt = &root->kid[6].kid[2];

            cnt->u = 6;
            CU_ASSERT(expect(tree_decode(&f, root), ERR_PROTO, "dense count +1", t));
            cnt->u = UINT64_MAX / 2;
            CU_ASSERT(expect(tree_decode(&f, root), ERR_TOOBIG, "dense count huge", t));
            cnt->u = 5;
        }
        CU_ASSERT(expect(tree_decode(&f, root), 0, "restored", t));
        mp_free(root);
    }
    fx_release(&f);
}

/* Rules beyond types and lengths, violated one at a time on the wire. */
static void test_semantic_violations(void)
{
    fixture_t f;
    mpn_t *root, *body;

    fx_init(&f);
    /* ROWS: slots out of order, repeated, out of range; unknown flag bits */
    root = sample_tree(&f, MSG_PULL);
    body = &root->kid[6];
    body->kid[2].kid[2].kid[0].u = 2; /* slot 63 -> 2 = previous */
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.eb.msg, "must increase"));
    body->kid[2].kid[2].kid[0].u = 1; /* decreasing */
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    body->kid[2].kid[2].kid[0].u = MODEL_MAX_SLOTS;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    body->kid[2].kid[2].kid[0].u = 63;
    body->kid[0].u = MSG_F_READONLY | MSG_F_EXPIRE;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.eb.msg, "flags"));
    body->kid[0].u = MSG_F_READONLY;
    body->kid[1].u = 5; /* cursor on a PULL */
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    body->kid[1].u = 0;
    CU_ASSERT_EQUAL(tree_decode(&f, root), 0);
    mp_free(root);

    /* A push without a sequence number */
    root = sample_tree(&f, MSG_PUSH);
    root->kid[5].u = 0;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.eb.msg, "sequence"));
    /* dim over the limit */
    root->kid[5].u = 77;
    root->kid[6].kid[2].kid[0].kid[2].u = MSG_MAX_DIM + 1;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    mp_free(root);

    /* HELLO: shard outside the cluster, unknown optimizer, bad names */
    root = sample_tree(&f, MSG_HELLO);
    body = &root->kid[6];
    body->kid[1].u = 2; /* shard 2 of 2 */
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    body->kid[1].u = 1;
    body->kid[3].u = 9;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    body->kid[3].u = OPTIM_ADAGRAD;
    body->kid[9].u = MODEL_NMTR + 1; /* model type past the last */
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    body->kid[9].u = MODEL_ESMM;
    body->kid[11].kid[0].u = 0; /* a hidden layer of 0 units */
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    body->kid[11].kid[0].u = 256;
    CU_ASSERT_EQUAL(tree_decode(&f, root), 0);
    body->kid[7].kid[0].kid[0].len = 0; /* empty slot name */
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    body->kid[7].kid[0].kid[0].p = (const unsigned char *)"user\0id";
    body->kid[7].kid[0].kid[0].len = 7;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    {
        static const char longname[MODEL_SLOT_NAME_MAX] = {[0 ... MODEL_SLOT_NAME_MAX - 1] = 'x'};
        body->kid[7].kid[0].kid[0].p = (const unsigned char *)longname;
        body->kid[7].kid[0].kid[0].len = MODEL_SLOT_NAME_MAX;
        CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    }
    mp_free(root);

    /* PROGRESS found must be 0/1; CMD text without NUL bytes, bounded */
    root = sample_tree(&f, MSG_PROGRESS_OK);
    root->kid[6].kid[1].u = 2;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    mp_free(root);
    root = sample_tree(&f, MSG_CHECKPOINT);
    root->kid[6].kid[2].p = (const unsigned char *)"/tmp/a\0b";
    root->kid[6].kid[2].len = 8;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    {
        static unsigned char longpath[MSG_MAX_TEXT + 1];
        memset(longpath, 'p', sizeof(longpath));
        root->kid[6].kid[2].p = longpath;
        root->kid[6].kid[2].len = sizeof(longpath);
        CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_TOOBIG);
    }
    root->kid[6].kid[1].u = 0;
    root->kid[6].kid[1].kind = MP_INT;
    root->kid[6].kid[1].i = -2; /* day < -1 */
    root->kid[6].kid[2].len = 3;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    root->kid[6].kid[1].i = -1;
    CU_ASSERT_EQUAL(tree_decode(&f, root), 0);
    CU_ASSERT_EQUAL(f.d.u.cmd.day, -1);
    root->kid[6].kid[1].i = (int64_t)INT32_MAX + 1;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    mp_free(root);

    /* ERROR code must be negative; a KV name must not be empty */
    root = sample_tree(&f, MSG_ERROR);
    root->kid[6].kid[0].kind = MP_UINT;
    root->kid[6].kid[0].u = 0;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    mp_free(root);
    root = sample_tree(&f, MSG_STATS_OK);
    root->kid[6].kid[1].kid[1].kid[0].len = 0;
    CU_ASSERT_EQUAL(tree_decode(&f, root), ERR_PROTO);
    mp_free(root);
    fx_release(&f);
}

static int decode_bytes(codec_dec_t *d, const char *bytes, size_t len, errbuf_t *eb)
{
    msg_t m;

    return decode_copy(d, &m, bytes, len, eb, NULL);
}

static void test_huge_lengths_and_limits(void)
{
    /* The start of a valid header: [magic, version, type PULL, req, sender, seq, */
    static const char hdr[] = "\x97\xce\x00\x46\x4e\x4c\x01\x03\x01\x00\x00";
    errbuf_t eb;
    codec_dec_t *d = codec_dec_new(1 << 20), *small;
    char buf[64];
    size_t h = sizeof(hdr) - 1;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    /* containers declaring more elements than could fit */
    CU_ASSERT_EQUAL(decode_bytes(d, "\xdd\xff\xff\xff\xff", 5, &eb), ERR_TOOBIG);
    CU_ASSERT_EQUAL(decode_bytes(d, "\xdf\xff\xff\xff\xff", 5, &eb), ERR_TOOBIG);
    CU_ASSERT_EQUAL(decode_bytes(d, "\xdc\xff\xff", 3, &eb), ERR_PROTO); /* < limit: truncated */
    CU_ASSERT_EQUAL(decode_bytes(d, "\xde\x7f\xff", 3, &eb), ERR_PROTO);
    CU_ASSERT_EQUAL(decode_bytes(d, "\x9f\x01", 2, &eb), ERR_PROTO);
    /* a body whose bin, str or ext declares 4 GiB */
    memcpy(buf, hdr, h);
    memcpy(buf + h, "\xc6\xff\xff\xff\xff", 5);
    CU_ASSERT_EQUAL(decode_bytes(d, buf, h + 5, &eb), ERR_TOOBIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "limit"));
    memcpy(buf + h, "\xdb\xff\xff\xff\xff", 5);
    CU_ASSERT_EQUAL(decode_bytes(d, buf, h + 5, &eb), ERR_TOOBIG);
    memcpy(buf + h, "\xc9\xff\xff\xff\xff\x01", 6);
    CU_ASSERT_EQUAL(decode_bytes(d, buf, h + 6, &eb), ERR_TOOBIG);
    memcpy(buf + h, "\xc5\x01\x00", 3); /* 256 bytes declared, none there */
    CU_ASSERT_EQUAL(decode_bytes(d, buf, h + 3, &eb), ERR_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "truncated"));
    /* cut inside a length field */
    memcpy(buf + h, "\xc6\x00\x00", 3);
    CU_ASSERT_EQUAL(decode_bytes(d, buf, h + 3, &eb), ERR_PROTO);
    /* never-used byte, empty input, trailing bytes, not an array */
    CU_ASSERT_EQUAL(decode_bytes(d, "\xc1", 1, &eb), ERR_PROTO);
    CU_ASSERT_EQUAL(decode_bytes(d, "", 0, &eb), ERR_PROTO);
    CU_ASSERT_EQUAL(decode_bytes(d, "\x90\x00", 2, &eb), ERR_PROTO);
    CU_ASSERT_EQUAL(decode_bytes(d, "\x05", 1, &eb), ERR_PROTO);
    CU_ASSERT_EQUAL(decode_bytes(d, "\x90", 1, &eb), ERR_PROTO);
    /* nesting deeper than the limit */
    {
        char deep[CODEC_MAX_DEPTH + 2];

        memset(deep, 0x91, sizeof(deep) - 1);
        deep[sizeof(deep) - 1] = (char)0xc0;
        CU_ASSERT_EQUAL(decode_bytes(d, deep, sizeof(deep), &eb), ERR_PROTO);
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "nested"));
    }
    /* more objects than the limit, each one byte */
    {
        size_t n = CODEC_MAX_OBJECTS + 10;
        char *many = malloc(5 + n);

        memcpy(many, "\xdd", 1);
        many[1] = (char)(n >> 24), many[2] = (char)(n >> 16), many[3] = (char)(n >> 8),
        many[4] = (char)n;
        memset(many + 5, 0xc0, n);
        CU_ASSERT_EQUAL(decode_bytes(d, many, 5 + n, &eb), ERR_TOOBIG);
        free(many);
    }
    /* a valid message over the receiver's limit, and over the sender's */
    {
        codec_buf_t b;
        msg_t m;

        codec_buf_init(&b, 0);
        CU_ASSERT_EQUAL_FATAL(make_sample(&m, MSG_PULL), 0);
        CU_ASSERT_EQUAL(codec_encode(&b, &m, &eb), 0);
        small = codec_dec_new(b.len - 1);
        CU_ASSERT_EQUAL(decode_bytes(small, (const char *)b.data, b.len, &eb), ERR_TOOBIG);
        codec_dec_destroy(&small);
        small = codec_dec_new(b.len);
        CU_ASSERT_EQUAL(decode_bytes(small, (const char *)b.data, b.len, &eb), 0);
        codec_dec_destroy(&small);
        codec_buf_release(&b);
        codec_buf_init(&b, 1000);
        CU_ASSERT_EQUAL(codec_encode(&b, &m, &eb), ERR_TOOBIG);
        CU_ASSERT_EQUAL(b.len, 0);
        CU_ASSERT_EQUAL(make_sample(&m, MSG_FLUSH), 0);
        CU_ASSERT_EQUAL(codec_encode(&b, &m, &eb), 0); /* the buffer is still usable */
        codec_buf_release(&b);
    }
    codec_dec_destroy(&d);
    codec_dec_destroy(&d); /* NULL-safe */
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return *s = x;
}

/* Random mutations of every sample: never a crash, only known codes, and
 * whatever is accepted is a consistent message that re-encodes. */
static void test_fuzz(void)
{
    fixture_t f;
    codec_buf_t again;
    uint64_t seed = 0x5eed1234abcdull;
    size_t accepted = 0, total = 0;
    unsigned char *mut = malloc(1 << 17);
    codec_dec_t *dec2 = codec_dec_new(0);

    fx_init(&f);
    codec_buf_init(&again, 0);
    for (int i = 0; i < NTYPES; i++) {
        int t = all_types[i];

        CU_ASSERT_EQUAL_FATAL(make_sample(&f.m, t), 0);
        CU_ASSERT_EQUAL_FATAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
        CU_ASSERT_FATAL(f.buf.len + 64 < (1 << 17));
        for (int it = 0; it < 1500; it++) {
            size_t len = f.buf.len;
            int nmut = 1 + (int)(rng_next(&seed) % 4), rc;

            memcpy(mut, f.buf.data, len);
            for (int k = 0; k < nmut && len > 0; k++) {
                /* Half of the hits near the ends, where the structure is:
                 * big samples are mostly blob bytes. */
                size_t r = rng_next(&seed), at = r % len;
                if (r & (UINT64_C(1) << 63))
                    at = len > 64 && (r & 1) ? len - 1 - r % 64 : r % (len < 64 ? len : 64);
                static const unsigned char special[] = {0x00, 0xff, 0x7f, 0x80, 0xc1, 0xdd,
                                                        0xdf, 0xc6, 0xdb, 0x9f, 0xcf, 0xd3};

                switch (rng_next(&seed) % 6) {
                case 0: mut[at] ^= (unsigned char)(1u << (rng_next(&seed) % 8)); break;
                case 1: mut[at] = (unsigned char)rng_next(&seed); break;
                case 2: mut[at] = special[rng_next(&seed) % sizeof(special)]; break;
                case 3: /* insert */
                    memmove(mut + at + 1, mut + at, len - at);
                    mut[at] = (unsigned char)rng_next(&seed);
                    len++;
                    break;
                case 4: /* delete */
                    memmove(mut + at, mut + at + 1, len - at - 1);
                    len--;
                    break;
                case 5: len = at; break; /* truncate */
                }
            }
            rc = fx_decode(&f, mut, len);
            total++;
            if (rc == 0) {
                msg_t d2;

                accepted++;
                CU_ASSERT_EQUAL_FATAL(codec_encode(&again, &f.d, &f.eb), 0);
                CU_ASSERT_EQUAL(codec_decode(dec2, &d2, again.data, again.len, &f.eb), 0);
                CU_ASSERT(msg_eq(&f.d, &d2));
            } else {
                CU_ASSERT(rc == ERR_PROTO || rc == ERR_VERSION || rc == ERR_TOOBIG);
                CU_ASSERT(f.eb.msg[0] != '\0');
            }
        }
    }
    /* Most mutations must be refused; some (a changed float) are fine. */
    CU_ASSERT(accepted < total / 2);
    fprintf(stderr, "(%zu of %zu mutants accepted) ", accepted, total);
    codec_dec_destroy(&dec2);
    free(mut);
    codec_buf_release(&again);
    fx_release(&f);
}

static void test_encoder_rejects(void)
{
    fixture_t f;
    static const char nul_text[] = "a\0b";

    fx_init(&f);
#define REJECT(...)                                                    \
    do {                                                               \
        __VA_ARGS__;                                                   \
        CU_ASSERT_EQUAL(codec_encode(&f.buf, &f.m, &f.eb), ERR_INVAL); \
        CU_ASSERT_EQUAL(f.buf.len, 0);                                 \
    } while (0)
    REJECT(make_sample(&f.m, MSG_PULL); f.m.hdr.type = 0);
    REJECT(make_sample(&f.m, MSG_PULL); f.m.hdr.type = 200);
    REJECT(make_sample(&f.m, MSG_PULL); f.m.u.rows.flags = MSG_F_DELTA);
    REJECT(make_sample(&f.m, MSG_PULL); f.m.u.rows.slot[1].slot = 0);
    REJECT(make_sample(&f.m, MSG_PULL); f.m.u.rows.slot[2].slot = MODEL_MAX_SLOTS);
    REJECT(make_sample(&f.m, MSG_PULL); f.m.u.rows.nslots = MODEL_MAX_SLOTS + 1);
    REJECT(make_sample(&f.m, MSG_PULL); f.m.u.rows.slot[0].keys = NULL);
    REJECT(make_sample(&f.m, MSG_PULL); f.m.u.rows.slot[0].dim = 4);
    REJECT(make_sample(&f.m, MSG_PULL); f.m.u.rows.slot[0].rows = rows_a);
    REJECT(make_sample(&f.m, MSG_PULL); f.m.u.rows.cursor = 1);
    REJECT(make_sample(&f.m, MSG_PULL_OK); f.m.u.rows.slot[0].dim = 0);
    REJECT(make_sample(&f.m, MSG_PULL_OK); f.m.u.rows.slot[0].keys = keys_a);
    REJECT(make_sample(&f.m, MSG_PUSH); f.m.hdr.seq = 0);
    REJECT(make_sample(&f.m, MSG_PUSH_DENSE); f.m.hdr.seq = 0);
    /* batch positions: only on pushes, samples >= 1, last 0 or 1 */
    REJECT(make_sample(&f.m, MSG_PULL); f.m.u.rows.pos = (msg_pos_t){1, 1, 0, 0, 0, 0, 5});
    REJECT(make_sample(&f.m, MSG_PULL_DENSE_OK);
           f.m.u.dense.pos = (msg_pos_t){1, 1, 0, 0, 0, 0, 5});
    REJECT(make_sample(&f.m, MSG_PUSH); f.m.u.rows.pos.samples = 0);
    REJECT(make_sample(&f.m, MSG_PUSH); f.m.u.rows.pos.last = 2);
    REJECT(make_sample(&f.m, MSG_PUSH_DENSE); f.m.u.dense.pos.has = 2);
    REJECT(make_sample(&f.m, MSG_ROWS_OK); f.m.u.rows.slot[0].meta = NULL);
    REJECT(make_sample(&f.m, MSG_PULL_DENSE); f.m.u.dense.offset = UINT64_MAX);
    REJECT(make_sample(&f.m, MSG_CHECKPOINT); f.m.u.cmd.text = (msg_str_t){nul_text, 3});
    REJECT(make_sample(&f.m, MSG_CHECKPOINT); f.m.u.cmd.text.len = MSG_MAX_TEXT + 1);
    REJECT(make_sample(&f.m, MSG_CHECKPOINT); f.m.u.cmd.day = -5);
    REJECT(make_sample(&f.m, MSG_ERROR); f.m.u.error.code = 0);
    REJECT(make_sample(&f.m, MSG_HELLO); f.m.u.hello.shard = 2);
    REJECT(make_sample(&f.m, MSG_HELLO); f.m.u.hello.slot[0].dim = 0);
    REJECT(make_sample(&f.m, MSG_HELLO); f.m.u.hello.emb_optim = 7);
    REJECT(make_sample(&f.m, MSG_STATS_OK); f.m.u.kv.kv = NULL);
    REJECT(make_sample(&f.m, MSG_PROGRESS_OK); f.m.u.progress.found = 3);
    REJECT(make_sample(&f.m, MSG_SCAN); f.m.u.scan.slot = MODEL_MAX_SLOTS);
#undef REJECT
    /* A probing HELLO needs no shard. */
    make_sample(&f.m, MSG_HELLO);
    f.m.u.hello.flags = MSG_F_PROBE;
    f.m.u.hello.nshards = 0;
    f.m.u.hello.nslots = 0;
    CU_ASSERT_EQUAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
    fx_release(&f);
}

/* A NULL rows blob is reserved and filled in place; buffers are reused. */
static void test_reserve_and_reuse(void)
{
    fixture_t f;
    unsigned char *data;
    size_t cap;

    fx_init(&f);
    make_sample(&f.m, MSG_PULL_OK);
    f.m.u.rows.slot[0].rows = NULL;
    f.m.u.rows.slot[2].rows = NULL;
    CU_ASSERT_EQUAL_FATAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
    CU_ASSERT_PTR_NULL(codec_buf_blob(&f.buf, 1)); /* empty entry: nothing reserved */
    CU_ASSERT_PTR_NULL(codec_buf_blob(&f.buf, 3));
    CU_ASSERT_PTR_NULL(codec_buf_blob(&f.buf, 1000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(codec_buf_blob(&f.buf, 0));
    CU_ASSERT_PTR_NOT_NULL_FATAL(codec_buf_blob(&f.buf, 2));
    memcpy(codec_buf_blob(&f.buf, 0), rows_a, sizeof(rows_a));
    memcpy(codec_buf_blob(&f.buf, 2), rows_big, sizeof(rows_big));
    CU_ASSERT_EQUAL(fx_decode(&f, f.buf.data, f.buf.len), 0);
    make_sample(&f.m, MSG_PULL_OK);
    CU_ASSERT(msg_eq(&f.m, &f.d));

    /* dense values too */
    make_sample(&f.m, MSG_PULL_DENSE_OK);
    f.m.u.dense.values = NULL;
    CU_ASSERT_EQUAL_FATAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(codec_buf_blob(&f.buf, 0));
    memcpy(codec_buf_blob(&f.buf, 0), dense_v, sizeof(dense_v));
    CU_ASSERT_EQUAL(fx_decode(&f, f.buf.data, f.buf.len), 0);
    make_sample(&f.m, MSG_PULL_DENSE_OK);
    CU_ASSERT(msg_eq(&f.m, &f.d));

    /* Steady state: the same buffer, no reallocation. */
    make_sample(&f.m, MSG_PUSH);
    CU_ASSERT_EQUAL_FATAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
    data = f.buf.data;
    cap = f.buf.cap;
    for (int i = 0; i < 50; i++) {
        make_sample(&f.m, all_types[i % NTYPES]);
        CU_ASSERT_EQUAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
        CU_ASSERT_EQUAL(fx_decode(&f, f.buf.data, f.buf.len), 0);
    }
    CU_ASSERT_PTR_EQUAL(f.buf.data, data);
    CU_ASSERT_EQUAL(f.buf.cap, cap);

    /* Taking a message out (a zero-copy send): the bytes are the caller's,
     * the buffer starts over and still encodes. */
    make_sample(&f.m, MSG_PULL_OK);
    CU_ASSERT_EQUAL_FATAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
    size_t len = f.buf.len;
    unsigned char *taken = codec_buf_take(&f.buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(taken);
    CU_ASSERT_PTR_NOT_EQUAL(f.buf.data, taken);
    CU_ASSERT_EQUAL(f.buf.len, 0);
    CU_ASSERT_PTR_NULL(codec_buf_blob(&f.buf, 0)); /* the reservation went with it */
    CU_ASSERT_EQUAL(fx_decode(&f, taken, len), 0);
    CU_ASSERT(msg_eq(&f.m, &f.d));
    /* the next encode gets a block of about its size, not twice it */
    CU_ASSERT_EQUAL_FATAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
    CU_ASSERT_EQUAL(f.buf.len, len);
    CU_ASSERT(f.buf.cap >= len && f.buf.cap <= len + 1024);
    make_sample(&f.m, MSG_PUSH);
    CU_ASSERT_EQUAL(codec_encode(&f.buf, &f.m, &f.eb), 0);
    CU_ASSERT_EQUAL(fx_decode(&f, f.buf.data, f.buf.len), 0);
    CU_ASSERT(msg_eq(&f.m, &f.d));
    free(taken);
    codec_buf_t empty;
    codec_buf_init(&empty, 0);
    CU_ASSERT_PTR_NULL(codec_buf_take(&empty)); /* nothing to take */
    codec_buf_release(&empty);
    fx_release(&f);
}

static void test_hello_check(void)
{
    msg_hello_t a, b;
    errbuf_t eb;

    codec_hello_from_spec(&a, &spec, 0, 2, 1000, 3);
    CU_ASSERT_EQUAL(a.nslots, (uint32_t)spec.nslots);
    CU_ASSERT_STRING_EQUAL(a.slot[0].name, spec.slot[0].name);
#define MISMATCH(change, word)                                                   \
    do {                                                                         \
        b = a;                                                                   \
        change;                                                                  \
        CU_ASSERT_EQUAL(codec_hello_check(&a, &b, "A", "B", &eb), ERR_MISMATCH); \
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, word));                            \
        CU_ASSERT_EQUAL(codec_hello_check(&b, &a, "B", "A", &eb), ERR_MISMATCH); \
    } while (0)
    b = a;
    b.day = 7, b.slot[1].admit_min = 9; /* not layout */
    CU_ASSERT_EQUAL(codec_hello_check(&a, &b, "A", "B", &eb), 0);
    MISMATCH(b.shard = 1, "shard");
    MISMATCH(b.nshards = 3, "shard");
    MISMATCH(b.nslots--, "slots");
    MISMATCH(b.slot[2].dim = 8, "A has dim 16; B has dim 8: set dim = 8");
    MISMATCH(strcpy(b.slot[1].name, "other"), "B has 'other'");
    /* the model type and towers are named, not only dense float counts */
    MISMATCH((b.model_type = MODEL_ESMM, b.ntowers = 2),
             "A has model_type esm2 (4 towers); B has model_type esmm (2 towers): set "
             "model_type = esmm in A's [model]");
    MISMATCH(b.nlayers--, "A has towers = 256,128,64; B has towers = 256,128");
    MISMATCH(b.layer[0] = 512, "B has towers = 512,128,64");
    MISMATCH(b.emb_optim = OPTIM_SGD, "sgd");
    MISMATCH(b.dense_optim = OPTIM_ADAGRAD, "A has dense_optimizer adam; B has adagrad");
    MISMATCH(b.dense_size = 999, "dense vector");
    /* learning rates and the parameters each optimizer kind uses (spec:
     * adagrad rows, adam dense), both values named */
    MISMATCH(b.emb_params[0] = 0.5f, "embedding optimizer adagrad: A has lr 0.05; B has 0.5: set "
                                     "emb_lr = 0.5 in A's [model]");
    MISMATCH(b.emb_params[1] = 1e-3f, "eps");
    MISMATCH(b.emb_params[7] = 0.5f, "init_std");
    MISMATCH(b.dense_params[0] = 0.25f, "dense optimizer adam: A has lr");
    MISMATCH(b.dense_params[3] = 0.5f, "set adam_beta2 = 0.5");
#undef MISMATCH
    b = a;
    b.emb_params[2] = 0.5f;   /* adam's beta1: adagrad rows do not use it */
    b.dense_params[7] = 0.5f; /* the shard does not initialize dense weights */
    CU_ASSERT_EQUAL(codec_hello_check(&a, &b, "A", "B", &eb), 0);
    b = a;
    b.emb_params[0] = 0.5f;
    b.has_params = 0; /* an older peer: rates not compared */
    CU_ASSERT_EQUAL(codec_hello_check(&a, &b, "A", "B", &eb), 0);
    /* admission and expiry: reported, not refused */
    char diff[256];
    b = a;
    CU_ASSERT_EQUAL(codec_hello_policy_diff(&a, &b, diff, sizeof(diff)), 0);
    b.slot[1].admit_min = 9;
    CU_ASSERT_EQUAL(codec_hello_check(&a, &b, "A", "B", &eb), 0);
    CU_ASSERT_EQUAL(codec_hello_policy_diff(&a, &b, diff, sizeof(diff)), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(diff, "admit_min 1 here, 9 at the peer"));
    b = a;
    b.slot[0].expire_days = 30;
    CU_ASSERT_EQUAL(codec_hello_policy_diff(&a, &b, diff, sizeof(diff)), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(diff, "expire_days 0 here, 30 at the peer"));
    b = a;
    b.slot[2].dim = 8;
    b.flags = MSG_F_PROBE;
    CU_ASSERT_EQUAL(codec_hello_check(&a, &b, "A", "B", &eb), 0);
}

static void test_check_reply(void)
{
    msg_t req, rep;
    errbuf_t eb;

    make_sample(&req, MSG_PULL);
    make_sample(&rep, MSG_PULL_OK);
    rep.hdr.req_id = req.hdr.req_id;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), 0);
    rep.u.rows.slot[2].nkeys = 999;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), ERR_PROTO);
    rep.u.rows.slot[2].nkeys = NK_BIG;
    rep.u.rows.nslots = 2;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), ERR_PROTO);
    rep.u.rows.nslots = 3;
    rep.hdr.req_id++;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), ERR_PROTO);
    make_sample(&rep, MSG_ACK);
    rep.hdr.req_id = req.hdr.req_id;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), ERR_PROTO);
    make_sample(&rep, MSG_ERROR);
    rep.hdr.req_id = req.hdr.req_id;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "peer: slot 2"));
    rep.u.error.code = -12345; /* not one of ours */
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), ERR_PROTO);

    make_sample(&req, MSG_PULL_DENSE);
    make_sample(&rep, MSG_PULL_DENSE_OK);
    rep.hdr.req_id = req.hdr.req_id;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), 0);
    rep.u.dense.offset++;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), ERR_PROTO);
    make_sample(&req, MSG_PROGRESS_GET);
    make_sample(&rep, MSG_PROGRESS_OK);
    rep.hdr.req_id = req.hdr.req_id;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), 0);
    rep.u.progress.rank = 0;
    CU_ASSERT_EQUAL(codec_check_reply(&req, &rep, &eb), ERR_PROTO);
}

static void test_check_layout(void)
{
    msg_hello_t lay;
    msg_t m;
    errbuf_t eb;
    uint32_t d0;

    codec_hello_from_spec(&lay, &spec, 0, 1, 100, -1);
    d0 = lay.slot[0].dim;
    msg_init(&m, MSG_PUSH, 1);
    m.hdr.seq = 1;
    m.u.rows.nslots = 1;
    set_slot(&m.u.rows.slot[0], 0, 1, d0, keys_a, rows_a, NULL, NULL);
    CU_ASSERT_EQUAL(codec_check_layout(&m, &lay, &eb), 0);
    m.u.rows.slot[0].dim = d0 + 1;
    CU_ASSERT_EQUAL(codec_check_layout(&m, &lay, &eb), ERR_MISMATCH);
    /* an assign with Adagrad state: dim + dim floats */
    m.u.rows.slot[0].dim = 2 * d0;
    CU_ASSERT_EQUAL(codec_check_layout(&m, &lay, &eb), ERR_MISMATCH);
    m.u.rows.flags = MSG_F_ASSIGN | MSG_F_STATE;
    CU_ASSERT_EQUAL(lay.emb_optim, OPTIM_ADAGRAD);
    CU_ASSERT_EQUAL(codec_check_layout(&m, &lay, &eb), 0);
    m.u.rows.slot[0].slot = lay.nslots;
    CU_ASSERT_EQUAL(codec_check_layout(&m, &lay, &eb), ERR_PROTO);

    msg_init(&m, MSG_PULL_DENSE, 2);
    m.u.dense = (msg_dense_t){0, 90, 10, NULL, {0}};
    CU_ASSERT_EQUAL(codec_check_layout(&m, &lay, &eb), 0);
    m.u.dense.count = 11;
    CU_ASSERT_EQUAL(codec_check_layout(&m, &lay, &eb), ERR_PROTO);
    m.u.dense.offset = 101;
    m.u.dense.count = 0;
    CU_ASSERT_EQUAL(codec_check_layout(&m, &lay, &eb), ERR_PROTO);

    msg_init(&m, MSG_SCAN, 3);
    m.u.scan.slot = lay.nslots;
    CU_ASSERT_EQUAL(codec_check_layout(&m, &lay, &eb), ERR_PROTO);
}

static void test_ref_float_arrays(void)
{
    codec_buf_t b;
    codec_dec_t *d = codec_dec_new(0);
    static float out[NK_BIG * 4];
    errbuf_t eb;

    codec_buf_init(&b, 0);
    CU_ASSERT_EQUAL(codec_ref_encode_float_arrays(&b, rows_big, NK_BIG, 4, &eb), 0);
    CU_ASSERT(b.len >= NK_BIG * 4 * 5);
    CU_ASSERT_EQUAL(codec_ref_decode_float_arrays(d, out, NK_BIG, 4, b.data, b.len, &eb), 0);
    CU_ASSERT_EQUAL(memcmp(out, rows_big, sizeof(out)), 0);
    CU_ASSERT_EQUAL(codec_ref_decode_float_arrays(d, out, NK_BIG, 3, b.data, b.len, &eb),
                    ERR_PROTO);
    codec_buf_release(&b);
    codec_dec_destroy(&d);
}

static int suite_init(void)
{
    init_data();
    return 0;
}

int test_codec_register(void)
{
    CU_pSuite s = CU_add_suite("codec", suite_init, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "type table", test_type_table);
    CU_add_test(s, "round trip of every type", test_round_trip);
    CU_add_test(s, "fuzz seed corpus is today's encoding", test_fuzz_seeds);
    CU_add_test(s, "truncated at every byte", test_truncated_everywhere);
    CU_add_test(s, "version, magic, type, arity", test_wrong_version_magic_type);
    CU_add_test(s, "wrong msgpack type in every field", test_wrong_types_everywhere);
    CU_add_test(s, "blob lengths and counts disagree", test_inconsistent_lengths);
    CU_add_test(s, "semantic violations", test_semantic_violations);
    CU_add_test(s, "huge lengths and size limits", test_huge_lengths_and_limits);
    CU_add_test(s, "fixed-seed mutation fuzz", test_fuzz);
    CU_add_test(s, "encoder refuses invalid messages", test_encoder_rejects);
    CU_add_test(s, "reserved blobs and buffer reuse", test_reserve_and_reuse);
    CU_add_test(s, "handshake comparison", test_hello_check);
    CU_add_test(s, "reply matches request", test_check_reply);
    CU_add_test(s, "message fits the layout", test_check_layout);
    CU_add_test(s, "reference float-array encoding", test_ref_float_arrays);
    return CU_get_error();
}
