/*
 * codec.c - msgpack encoding and decoding of funnel's messages, and the
 * protocol checks built on them. See codec.h and, for the wire layout,
 * msg.h. The only file of funnel that includes msgpack.h.
 *
 * NOTES ON THE DESIGN
 *
 *   Encoding goes through msgpack-c's packer with a write callback that
 *   appends to the caller's codec_buf_t. Blobs are written with one bin
 *   header and one memcpy (or reserved, see codec_buf_blob()).
 *
 *   Decoding runs in three steps:
 *     1. prescan(): one pass over the raw bytes that checks every declared
 *        length and element count against the bytes that remain, bounds
 *        nesting (CODEC_MAX_DEPTH) and objects (CODEC_MAX_OBJECTS), and
 *        rejects trailing bytes. msgpack-c allocates an array's objects as
 *        soon as it reads the array's header, so without this a 5-byte
 *        message declaring 2^32 elements would ask for 96 GiB.
 *     2. msgpack_unpack() into the decoder's zone, which is cleared (its
 *        first chunk kept) before every decode. Strings and bins in the
 *        object tree point into the input bytes.
 *     3. The object tree is read into a msg_t field by field; the semantic
 *        rules (flags, slot order, widths, ...) are shared with the encoder
 *        through the check_*() functions, which return ERR_INVAL when
 *        encoding and ERR_PROTO when decoding.
 */
#include "proto/codec.h"

#include <assert.h>
#include <float.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/optim.h"

#define ZONE_CHUNK ((size_t)64 << 10) /* bytes; holds ~2700 msgpack objects */
#define BUF_MIN ((size_t)4096)        /* bytes; first allocation of a codec_buf_t */
#define NO_BLOB SIZE_MAX

struct codec_dec {
    size_t max;        /* bytes: largest message accepted */
    msgpack_zone zone; /* object tree and KV lists of the last decode */
};

/* Which blobs a ROWS entry of a given type carries, and its dim range. */
enum { BLOB_NO = 0, BLOB_NEED = 1, BLOB_OPT = 2 };

typedef struct rows_rule {
    unsigned char keys, rows, counts, meta; /* BLOB_* */
    uint32_t dim_min, dim_max;              /* floats per row */
} rows_rule_t;

static const rows_rule_t *rows_rule(int type)
{
    static const rows_rule_t pull = {BLOB_NEED, BLOB_NO, BLOB_NO, BLOB_NO, 0, 0};
    static const rows_rule_t pull_ok = {BLOB_NO, BLOB_NEED, BLOB_NO, BLOB_NO, 1, MSG_MAX_DIM};
    static const rows_rule_t push = {BLOB_NEED, BLOB_NEED, BLOB_OPT, BLOB_NO, 1, MSG_MAX_DIM};
    static const rows_rule_t rows_ok = {BLOB_NEED, BLOB_NEED, BLOB_NO, BLOB_NEED, 0, MSG_MAX_DIM};

    switch (type) {
    case MSG_PULL:
    case MSG_ROWS_GET: return &pull;
    case MSG_PULL_OK: return &pull_ok;
    case MSG_PUSH: return &push;
    case MSG_ROWS_OK: return &rows_ok;
    }
    return NULL;
}

static int is_push(int type)
{
    return type == MSG_PUSH || type == MSG_PUSH_DENSE;
}

/* ---------------------------------------------------------------------- */
/* Semantic rules shared by the encoder (code ERR_INVAL) and the decoder   */
/* (code ERR_PROTO).                                                       */

static int check_flags(int type, uint32_t flags, int code, errbuf_t *eb)
{
    uint32_t extra = flags & ~msg_type_flags(type);

    if (extra)
        return errbuf_set(eb, code, "%s: flags 0x%" PRIx32 " are not valid for this type",
                          msg_type_name(type), extra);
    return 0;
}

static int check_text(int type, const char *field, const msg_str_t *s, uint32_t max, int allow_nul,
                      int code, errbuf_t *eb)
{
    if (s->len > max)
        return errbuf_set(eb, code == ERR_PROTO ? ERR_TOOBIG : code,
                          "%s: %s of %" PRIu32 " bytes exceeds %" PRIu32, msg_type_name(type),
                          field, s->len, max);
    if (s->len > 0 && s->ptr == NULL)
        return errbuf_set(eb, code, "%s: %s has a length but no bytes", msg_type_name(type), field);
    if (!allow_nul && s->len > 0 && memchr(s->ptr, '\0', s->len) != NULL)
        return errbuf_set(eb, code, "%s: %s contains a NUL byte", msg_type_name(type), field);
    return 0;
}

/* A batch position: only pushes carry one, with samples >= 1. */
static int check_pos(int type, const msg_pos_t *p, int code, errbuf_t *eb)
{
    if (!p->has)
        return 0;
    if (p->has != 1 || !is_push(type))
        return errbuf_set(eb, code, "%s: only a push carries a batch position",
                          msg_type_name(type));
    if (p->last > 1 || p->samples == 0)
        return errbuf_set(eb, code,
                          "%s: batch position with last %" PRIu32 ", samples %" PRIu64
                          " (last is 0 or 1, samples >= 1)",
                          msg_type_name(type), p->last, p->samples);
    return 0;
}

static int check_rows(int type, const msg_rows_t *r, int code, errbuf_t *eb)
{
    const rows_rule_t *rule = rows_rule(type);
    const char *tn = msg_type_name(type);
    int rc;

    if ((rc = check_flags(type, r->flags, code, eb)) < 0 ||
        (rc = check_pos(type, &r->pos, code, eb)) < 0)
        return rc;
    if (r->cursor != 0 && type != MSG_ROWS_OK)
        return errbuf_set(eb, code, "%s: only ROWS_OK carries a cursor", tn);
    if ((r->flags & MSG_F_HALF) && (r->flags & (MSG_F_ASSIGN | MSG_F_STATE)))
        return errbuf_set(eb, code, "%s: 16-bit rows (flag HALF) carry gradients, not values", tn);
    if (r->nslots > MODEL_MAX_SLOTS)
        return errbuf_set(eb, code, "%s: %" PRIu32 " slot entries, at most %d", tn, r->nslots,
                          MODEL_MAX_SLOTS);
    for (uint32_t i = 0; i < r->nslots; i++) {
        const msg_slot_t *s = &r->slot[i];

        if (s->slot >= MODEL_MAX_SLOTS)
            return errbuf_set(eb, code, "%s: entry %" PRIu32 ": slot %" PRIu32 " >= %d", tn, i,
                              s->slot, MODEL_MAX_SLOTS);
        if (i > 0 && s->slot <= r->slot[i - 1].slot)
            return errbuf_set(eb, code,
                              "%s: entry %" PRIu32 ": slot %" PRIu32 " after slot %" PRIu32
                              " (slots must increase)",
                              tn, i, s->slot, r->slot[i - 1].slot);
        if (s->dim < rule->dim_min || s->dim > rule->dim_max)
            return errbuf_set(eb, code,
                              "%s: entry %" PRIu32 ": dim %" PRIu32 " outside [%" PRIu32
                              ", %" PRIu32 "]",
                              tn, i, s->dim, rule->dim_min, rule->dim_max);
    }
    return 0;
}

#define HELLO_MAX_TOWERS 16 /* the most towers a model type has, with room */

static int check_hello(int type, const msg_hello_t *h, int code, errbuf_t *eb)
{
    const char *tn = msg_type_name(type);
    int rc;

    if ((rc = check_flags(type, h->flags, code, eb)) < 0)
        return rc;
    if (!(h->flags & MSG_F_PROBE) && (h->nshards == 0 || h->shard >= h->nshards))
        return errbuf_set(eb, code, "%s: shard %" PRIu32 " of %" PRIu32 " is not a shard", tn,
                          h->shard, h->nshards);
    if (h->emb_optim > OPTIM_FTRL || h->dense_optim > OPTIM_FTRL)
        return errbuf_set(eb, code, "%s: unknown optimizer kind %" PRIu32 "/%" PRIu32, tn,
                          h->emb_optim, h->dense_optim);
    if (h->day < -1)
        return errbuf_set(eb, code, "%s: day %" PRId32 " < -1", tn, h->day);
    if (h->model_type > MODEL_NMTR || h->ntowers > HELLO_MAX_TOWERS ||
        h->nlayers > MODEL_MAX_LAYERS)
        return errbuf_set(eb, code,
                          "%s: model type %" PRIu32 ", %" PRIu32 " towers or %" PRIu32
                          " layers out of range",
                          tn, h->model_type, h->ntowers, h->nlayers);
    for (uint32_t i = 0; i < h->nlayers; i++)
        if (h->layer[i] < 1 || h->layer[i] > MSG_MAX_DIM)
            return errbuf_set(eb, code, "%s: layer %" PRIu32 ": %" PRIu32 " outside [1, %u]", tn, i,
                              h->layer[i], MSG_MAX_DIM);
    if (h->nslots > MODEL_MAX_SLOTS)
        return errbuf_set(eb, code, "%s: %" PRIu32 " slots, at most %d", tn, h->nslots,
                          MODEL_MAX_SLOTS);
    for (uint32_t i = 0; i < h->nslots; i++) {
        const msg_hello_slot_t *s = &h->slot[i];
        size_t nl = strnlen(s->name, sizeof(s->name));

        if (nl == 0 || nl == sizeof(s->name))
            return errbuf_set(eb, code, "%s: slot %" PRIu32 ": name empty or over %d bytes", tn, i,
                              MODEL_SLOT_NAME_MAX - 1);
        if (s->dim < 1 || s->dim > MSG_MAX_DIM)
            return errbuf_set(eb, code, "%s: slot %" PRIu32 ": dim %" PRIu32 " outside [1, %u]", tn,
                              i, s->dim, MSG_MAX_DIM);
    }
    return 0;
}

static int check_dense(int type, const msg_dense_t *d, int code, errbuf_t *eb)
{
    int rc;

    if ((rc = check_flags(type, d->flags, code, eb)) < 0 ||
        (rc = check_pos(type, &d->pos, code, eb)) < 0)
        return rc;
    if ((d->flags & MSG_F_HALF) && (d->flags & MSG_F_ASSIGN))
        return errbuf_set(eb, code, "%s: 16-bit values (flag HALF) are gradients, not values",
                          msg_type_name(type));
    if (d->offset + d->count < d->offset)
        return errbuf_set(eb, code, "%s: range %" PRIu64 " + %" PRIu64 " wraps around",
                          msg_type_name(type), d->offset, d->count);
    /* A range that has values must fit a bin; 2^30 floats is 4 GiB. */
    if (type != MSG_PULL_DENSE && d->count > ((uint64_t)1 << 30))
        return errbuf_set(eb, code == ERR_PROTO ? ERR_TOOBIG : code,
                          "%s: %" PRIu64 " floats in one message", msg_type_name(type), d->count);
    return 0;
}

static int check_kv(int type, const msg_kvlist_t *l, int code, errbuf_t *eb)
{
    int rc;

    if ((rc = check_flags(type, l->flags, code, eb)) < 0)
        return rc;
    if (l->n > 0 && l->kv == NULL)
        return errbuf_set(eb, code, "%s: %" PRIu32 " counters but no array", msg_type_name(type),
                          l->n);
    /* Each entry is 4 msgpack objects; keep what we send decodable. */
    if (l->n > (CODEC_MAX_OBJECTS - 16) / 4)
        return errbuf_set(eb, code == ERR_PROTO ? ERR_TOOBIG : code,
                          "%s: %" PRIu32 " counters in one message", msg_type_name(type), l->n);
    for (uint32_t i = 0; i < l->n; i++) {
        const msg_kv_t *kv = &l->kv[i];

        if (kv->name.len == 0)
            return errbuf_set(eb, code, "%s: counter %" PRIu32 " has an empty name",
                              msg_type_name(type), i);
        if ((rc = check_text(type, "counter name", &kv->name, MSG_MAX_NAME, 0, code, eb)) < 0)
            return rc;
        if (kv->is_str &&
            (rc = check_text(type, "counter value", &kv->str, MSG_MAX_TEXT, 1, code, eb)) < 0)
            return rc;
    }
    return 0;
}

/* Everything about m that does not depend on how its bytes look. */
static int check_msg(const msg_t *m, int code, errbuf_t *eb)
{
    int type = m->hdr.type;
    const char *tn = msg_type_name(type);
    int rc = 0;

    if (is_push(type) && m->hdr.seq == 0)
        return errbuf_set(eb, code, "%s: a push needs a sequence number >= 1", tn);
    switch (msg_type_body(type)) {
    case MSG_BODY_HELLO: return check_hello(type, &m->u.hello, code, eb);
    case MSG_BODY_ROWS: return check_rows(type, &m->u.rows, code, eb);
    case MSG_BODY_DENSE: return check_dense(type, &m->u.dense, code, eb);
    case MSG_BODY_PROGRESS:
        if (m->u.progress.found > 1)
            return errbuf_set(eb, code, "%s: found is %" PRIu32 ", not 0 or 1", tn,
                              m->u.progress.found);
        return 0;
    case MSG_BODY_CMD:
        if ((rc = check_flags(type, m->u.cmd.flags, code, eb)) < 0)
            return rc;
        if (m->u.cmd.day < -1)
            return errbuf_set(eb, code, "%s: day %" PRId32 " < -1", tn, m->u.cmd.day);
        return check_text(type, "text", &m->u.cmd.text, MSG_MAX_TEXT, 0, code, eb);
    case MSG_BODY_KV: return check_kv(type, &m->u.kv, code, eb);
    case MSG_BODY_SCAN:
        if ((rc = check_flags(type, m->u.scan.flags, code, eb)) < 0)
            return rc;
        if (m->u.scan.slot >= MODEL_MAX_SLOTS)
            return errbuf_set(eb, code, "%s: slot %" PRIu32 " >= %d", tn, m->u.scan.slot,
                              MODEL_MAX_SLOTS);
        return 0;
    case MSG_BODY_ERROR:
        if (m->u.error.code >= 0)
            return errbuf_set(eb, code, "%s: code %" PRId32 " is not an error", tn,
                              m->u.error.code);
        return check_text(type, "text", &m->u.error.text, MSG_MAX_TEXT, 1, code, eb);
    }
    return errbuf_set(eb, code, "unknown message type %d", type);
}

/* ---------------------------------------------------------------------- */
/* Output buffer                                                           */

void codec_buf_init(codec_buf_t *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max ? max : CODEC_MAX_MSG_DEFAULT;
    for (int i = 0; i < MODEL_MAX_SLOTS; i++)
        b->blob_off[i] = NO_BLOB;
}

void codec_buf_release(codec_buf_t *b)
{
    size_t max = b->max;

    free(b->data);
    codec_buf_init(b, max);
}

unsigned char *codec_buf_take(codec_buf_t *b)
{
    unsigned char *msg = b->data;

    if (!msg)
        return NULL;
    /* no block until the next encode, which sizes one for its message */
    b->data = NULL;
    b->cap = 0;
    b->len = 0;
    for (int i = 0; i < MODEL_MAX_SLOTS; i++)
        b->blob_off[i] = NO_BLOB;
    return msg;
}

/* Make room for n more bytes. On failure records the error in b->err. */
static int buf_grow(codec_buf_t *b, size_t n)
{
    size_t need = b->len + n, cap;
    unsigned char *p;

    if (n > b->max || need > b->max) {
        b->err = ERR_TOOBIG;
        return -1;
    }
    if (need <= b->cap)
        return 0;
    if (b->len == 0) {
        /* nothing to keep: a block of the size asked for (codec_encode asks
         * for its bound of the whole message), no copy of the old one */
        cap = need < BUF_MIN ? BUF_MIN : need;
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    } else {
        cap = b->cap ? b->cap : BUF_MIN;
        while (cap < need)
            cap = cap > b->max / 2 ? b->max : cap * 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->err = ERR_NOMEM;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

/* msgpack_packer write callback. */
static int buf_write(void *data, const char *p, size_t n)
{
    codec_buf_t *b = data;

    if (n > b->cap - b->len && buf_grow(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void *codec_buf_blob(codec_buf_t *b, uint32_t i)
{
    if (i >= MODEL_MAX_SLOTS || b->blob_off[i] == NO_BLOB)
        return NULL;
    return b->data + b->blob_off[i];
}

/* ---------------------------------------------------------------------- */
/* Encoding                                                                */

/*
 * A bin of n bytes from p. If p is NULL and n > 0, the bytes are reserved
 * and their offset recorded as blob `res` (res < 0: reserving not allowed,
 * the caller checked p).
 */
static void pack_blob(msgpack_packer *pk, codec_buf_t *b, const void *p, size_t n, int res)
{
    msgpack_pack_bin(pk, n);
    if (n == 0 || b->err)
        return;
    if (p != NULL) {
        msgpack_pack_bin_body(pk, p, n);
        return;
    }
    assert(res >= 0 && res < MODEL_MAX_SLOTS);
    if (n > b->cap - b->len && buf_grow(b, n) != 0)
        return;
    b->blob_off[res] = b->len;
    b->len += n;
}

static void pack_text(msgpack_packer *pk, const msg_str_t *s)
{
    msgpack_pack_str(pk, s->len);
    if (s->len > 0)
        msgpack_pack_str_body(pk, s->ptr, s->len);
}

static int encode_hello(msgpack_packer *pk, const msg_hello_t *h)
{
    msgpack_pack_array(pk, 12);
    msgpack_pack_uint32(pk, h->flags);
    msgpack_pack_uint32(pk, h->shard);
    msgpack_pack_uint32(pk, h->nshards);
    msgpack_pack_uint32(pk, h->emb_optim);
    msgpack_pack_uint32(pk, h->dense_optim);
    msgpack_pack_uint64(pk, h->dense_size);
    msgpack_pack_int32(pk, h->day);
    msgpack_pack_array(pk, h->nslots);
    for (uint32_t i = 0; i < h->nslots; i++) {
        const msg_hello_slot_t *s = &h->slot[i];

        msgpack_pack_array(pk, 4);
        msgpack_pack_str_with_body(pk, s->name, strlen(s->name));
        msgpack_pack_uint32(pk, s->dim);
        msgpack_pack_uint32(pk, s->admit_min);
        msgpack_pack_uint32(pk, s->expire_days);
    }
    float p[2 * MSG_HELLO_PARAMS];
    memcpy(p, h->emb_params, sizeof(h->emb_params));
    memcpy(p + MSG_HELLO_PARAMS, h->dense_params, sizeof(h->dense_params));
    msgpack_pack_bin(pk, sizeof(p));
    msgpack_pack_bin_body(pk, p, sizeof(p));
    msgpack_pack_uint32(pk, h->model_type);
    msgpack_pack_uint32(pk, h->ntowers);
    msgpack_pack_array(pk, h->nlayers);
    for (uint32_t i = 0; i < h->nlayers; i++)
        msgpack_pack_uint32(pk, h->layer[i]);
    return 0;
}

/* Encoder-only rule: blobs that must travel are given (rows may be reserved). */
static int rows_pointers_ok(int type, const msg_rows_t *r, errbuf_t *eb)
{
    const rows_rule_t *rule = rows_rule(type);
    const char *tn = msg_type_name(type);

    for (uint32_t i = 0; i < r->nslots; i++) {
        const msg_slot_t *s = &r->slot[i];
        int empty = s->nkeys == 0;

        if ((rule->keys == BLOB_NEED && !empty && s->keys == NULL) ||
            (rule->meta == BLOB_NEED && !empty && s->meta == NULL))
            return errbuf_set(eb, ERR_INVAL, "%s: entry %" PRIu32 ": keys or meta missing", tn, i);
        if ((rule->keys == BLOB_NO && s->keys) || (rule->rows == BLOB_NO && s->rows) ||
            (rule->counts == BLOB_NO && s->counts) || (rule->meta == BLOB_NO && s->meta))
            return errbuf_set(eb, ERR_INVAL, "%s: entry %" PRIu32 ": a blob %s does not carry", tn,
                              i, tn);
    }
    return 0;
}

/* [] or [last, epoch, file, offset, line, samples] */
static void encode_pos(msgpack_packer *pk, const msg_pos_t *p)
{
    if (!p->has) {
        msgpack_pack_array(pk, 0);
        return;
    }
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint32(pk, p->last);
    msgpack_pack_uint32(pk, p->epoch);
    msgpack_pack_uint32(pk, p->file);
    msgpack_pack_uint64(pk, p->offset);
    msgpack_pack_uint64(pk, p->line);
    msgpack_pack_uint64(pk, p->samples);
}

static void encode_rows(msgpack_packer *pk, codec_buf_t *b, int type, const msg_rows_t *r)
{
    const rows_rule_t *rule = rows_rule(type);

    msgpack_pack_array(pk, 4);
    msgpack_pack_uint32(pk, r->flags);
    msgpack_pack_uint64(pk, r->cursor);
    msgpack_pack_array(pk, r->nslots);
    for (uint32_t i = 0; i < r->nslots; i++) {
        const msg_slot_t *s = &r->slot[i];
        size_t nk = s->nkeys;

        msgpack_pack_array(pk, 7);
        msgpack_pack_uint32(pk, s->slot);
        msgpack_pack_uint32(pk, s->nkeys);
        msgpack_pack_uint32(pk, s->dim);
        pack_blob(pk, b, s->keys, rule->keys ? nk * 8 : 0, -1);
        pack_blob(pk, b, s->rows, rule->rows ? nk * s->dim * msg_row_elem(r->flags) : 0, (int)i);
        pack_blob(pk, b, s->counts, s->counts ? nk * 4 : 0, -1);
        pack_blob(pk, b, s->meta, rule->meta ? nk * sizeof(msg_row_meta_t) : 0, -1);
    }
    encode_pos(pk, &r->pos);
}

static void encode_body(msgpack_packer *pk, codec_buf_t *b, const msg_t *m)
{
    int type = m->hdr.type;

    switch (msg_type_body(type)) {
    case MSG_BODY_HELLO: encode_hello(pk, &m->u.hello); break;
    case MSG_BODY_ROWS: encode_rows(pk, b, type, &m->u.rows); break;
    case MSG_BODY_DENSE: {
        const msg_dense_t *d = &m->u.dense;

        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, d->flags);
        msgpack_pack_uint64(pk, d->offset);
        msgpack_pack_uint64(pk, d->count);
        pack_blob(pk, b, d->values, type == MSG_PULL_DENSE ? 0 : d->count * msg_row_elem(d->flags),
                  0);
        encode_pos(pk, &d->pos);
        break;
    }
    case MSG_BODY_PROGRESS: {
        const msg_progress_t *p = &m->u.progress;

        msgpack_pack_array(pk, 7);
        msgpack_pack_uint32(pk, p->rank);
        msgpack_pack_uint32(pk, p->found);
        msgpack_pack_uint32(pk, p->epoch);
        msgpack_pack_uint32(pk, p->file);
        msgpack_pack_uint64(pk, p->offset);
        msgpack_pack_uint64(pk, p->line);
        msgpack_pack_uint64(pk, p->samples);
        break;
    }
    case MSG_BODY_CMD:
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint32(pk, m->u.cmd.flags);
        msgpack_pack_int32(pk, m->u.cmd.day);
        pack_text(pk, &m->u.cmd.text);
        break;
    case MSG_BODY_KV:
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, m->u.kv.flags);
        msgpack_pack_array(pk, m->u.kv.n);
        for (uint32_t i = 0; i < m->u.kv.n; i++) {
            const msg_kv_t *kv = &m->u.kv.kv[i];

            msgpack_pack_array(pk, 2);
            pack_text(pk, &kv->name);
            if (kv->is_str)
                pack_text(pk, &kv->str);
            else
                msgpack_pack_uint64(pk, kv->u64);
        }
        break;
    case MSG_BODY_SCAN:
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, m->u.scan.slot);
        msgpack_pack_uint32(pk, m->u.scan.flags);
        msgpack_pack_uint64(pk, m->u.scan.cursor);
        msgpack_pack_uint32(pk, m->u.scan.limit);
        break;
    case MSG_BODY_ERROR:
        msgpack_pack_array(pk, 2);
        msgpack_pack_int32(pk, m->u.error.code);
        pack_text(pk, &m->u.error.text);
        break;
    }
}

/* Bytes the blobs of m will take, with room for each slot's other fields:
 * with a header's worth more, the size of the block to encode m into. */
static size_t blob_bytes(const msg_t *m)
{
    size_t n = 0;

    if (msg_type_body(m->hdr.type) == MSG_BODY_ROWS) {
        const rows_rule_t *rule = rows_rule(m->hdr.type);

        for (uint32_t i = 0; i < m->u.rows.nslots; i++) {
            const msg_slot_t *s = &m->u.rows.slot[i];
            size_t nk = s->nkeys;

            /* the blobs encode_rows() writes, and room for the slot's fields */
            n += (rule->keys ? nk * 8 : 0) +
                 (rule->rows ? nk * s->dim * msg_row_elem(m->u.rows.flags) : 0) +
                 (s->counts ? nk * 4 : 0) + (rule->meta ? nk * sizeof(msg_row_meta_t) : 0) + 64;
        }
    } else if (msg_type_body(m->hdr.type) == MSG_BODY_DENSE) {
        n += m->u.dense.count * msg_row_elem(m->u.dense.flags);
    }
    return n;
}

int codec_encode(codec_buf_t *b, const msg_t *m, errbuf_t *eb)
{
    msgpack_packer pk;
    int type = m->hdr.type;
    size_t guess;
    int rc;

    assert(b != NULL && b->max > 0);
    b->len = 0;
    b->err = 0;
    for (int i = 0; i < MODEL_MAX_SLOTS; i++)
        b->blob_off[i] = NO_BLOB;
    if (msg_type_body(type) < 0)
        return errbuf_set(eb, ERR_INVAL, "cannot encode unknown message type %d", type);
    if ((rc = check_msg(m, ERR_INVAL, eb)) < 0)
        return rc;
    if (msg_type_body(type) == MSG_BODY_ROWS && (rc = rows_pointers_ok(type, &m->u.rows, eb)) < 0)
        return rc;

    /* Grow once up front for the bulk of the message (capped: the writes
     * below decide about ERR_TOOBIG exactly). */
    guess = blob_bytes(m) + 256;
    if (guess > b->cap)
        (void)buf_grow(b, guess < b->max ? guess : b->max);
    b->err = 0;

    msgpack_packer_init(&pk, b, buf_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint32(&pk, MSG_MAGIC);
    msgpack_pack_uint32(&pk, MSG_VERSION);
    msgpack_pack_uint32(&pk, (uint32_t)type);
    msgpack_pack_uint64(&pk, m->hdr.req_id);
    msgpack_pack_uint32(&pk, m->hdr.sender);
    msgpack_pack_uint64(&pk, m->hdr.seq);
    encode_body(&pk, b, m);

    if (b->err) {
        rc = b->err;
        b->len = 0;
        if (rc == ERR_TOOBIG)
            return errbuf_set(eb, rc, "%s: message exceeds the limit of %zu bytes",
                              msg_type_name(type), b->max);
        return errbuf_set(eb, rc, "%s: out of memory encoding", msg_type_name(type));
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Decoding, step 1: structure and declared lengths, without allocating.   */

/* Big-endian integer of k bytes at p[*pos]; advances *pos. Caller checked. */
static uint64_t read_be(const unsigned char *p, size_t *pos, size_t k)
{
    uint64_t v = 0;

    for (size_t i = 0; i < k; i++)
        v = v << 8 | p[*pos + i];
    *pos += k;
    return v;
}

static int declared_too_long(uint64_t n, size_t left, size_t max, size_t at, const char *what,
                             errbuf_t *eb)
{
    if (n > max)
        return errbuf_set(eb, ERR_TOOBIG,
                          "%s of %" PRIu64 " declared at byte %zu exceeds the %zu-byte limit", what,
                          n, at, max);
    return errbuf_set(eb, ERR_PROTO,
                      "truncated: %s of %" PRIu64 " declared at byte %zu, %zu bytes remain", what,
                      n, at, left);
}

static int prescan(const unsigned char *p, size_t len, size_t max, errbuf_t *eb)
{
    size_t left[CODEC_MAX_DEPTH + 1]; /* elements still expected per open container */
    size_t pos = 0, nobj = 0;
    int depth = 0;

    left[0] = 1;
    for (;;) {
        size_t at = pos, k = 0;
        uint64_t n = 0, items = 0;
        int container = 0;
        unsigned t;

        while (depth >= 0 && left[depth] == 0)
            depth--;
        if (depth < 0)
            break;
        left[depth]--;
        if (pos >= len)
            return errbuf_set(eb, ERR_PROTO, "truncated: message ends at byte %zu inside a value",
                              len);
        if (++nobj > CODEC_MAX_OBJECTS)
            return errbuf_set(eb, ERR_TOOBIG, "more than %d msgpack objects", CODEC_MAX_OBJECTS);
        t = p[pos++];
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
            continue; /* fixint, nil, bool */
        if ((t & 0xf0) == 0x80) {
            items = 2 * (uint64_t)(t & 0x0f), container = 1;
        } else if ((t & 0xf0) == 0x90) {
            items = t & 0x0f, container = 1;
        } else if ((t & 0xe0) == 0xa0) {
            n = t & 0x1f;
        } else {
            /* k: bytes of the length field; n: fixed payload. */
            switch (t) {
            case 0xc4:
            case 0xd9: k = 1; break; /* bin8, str8 */
            case 0xc5:
            case 0xda: k = 2; break; /* bin16, str16 */
            case 0xc6:
            case 0xdb: k = 4; break;        /* bin32, str32 */
            case 0xc7: k = 1, n = 1; break; /* ext8 + type */
            case 0xc8: k = 2, n = 1; break;
            case 0xc9: k = 4, n = 1; break;
            case 0xca: n = 4; break; /* float32 */
            case 0xcb: n = 8; break; /* float64 */
            case 0xcc:
            case 0xd0: n = 1; break;
            case 0xcd:
            case 0xd1: n = 2; break;
            case 0xce:
            case 0xd2: n = 4; break;
            case 0xcf:
            case 0xd3: n = 8; break;
            case 0xd4: n = 2; break; /* fixext 1..16 + type */
            case 0xd5: n = 3; break;
            case 0xd6: n = 5; break;
            case 0xd7: n = 9; break;
            case 0xd8: n = 17; break;
            case 0xdc: k = 2, container = 1; break; /* array16 */
            case 0xdd: k = 4, container = 1; break; /* array32 */
            case 0xde: k = 2, container = 2; break; /* map16 */
            case 0xdf: k = 4, container = 2; break; /* map32 */
            default:
                return errbuf_set(eb, ERR_PROTO, "byte 0x%02x at %zu is not a msgpack type", t, at);
            }
            if (k > len - pos)
                return errbuf_set(eb, ERR_PROTO, "truncated: length field at byte %zu", at);
            if (container)
                items = read_be(p, &pos, k) * (uint64_t)container;
            else if (k)
                n += read_be(p, &pos, k);
        }
        if (container) {
            /* Every element takes at least one byte. */
            if (items > len - pos)
                return declared_too_long(items, len - pos, max, at, "container of n elements", eb);
            if (items > 0) {
                if (depth == CODEC_MAX_DEPTH)
                    return errbuf_set(eb, ERR_PROTO, "containers nested deeper than %d",
                                      CODEC_MAX_DEPTH);
                left[++depth] = (size_t)items;
            }
        } else {
            if (n > len - pos)
                return declared_too_long(n, len - pos, max, at, "value of n bytes", eb);
            pos += (size_t)n;
        }
    }
    if (pos != len)
        return errbuf_set(eb, ERR_PROTO, "%zu bytes after the end of the message", len - pos);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Decoding, step 3: fields out of the object tree.                         */

typedef struct dec {
    errbuf_t *eb;
    int type;       /* message type, once known */
    char where[48]; /* position inside the body, e.g. "entry 3" */
} dec_t;

static const char *obj_kind(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "uint";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "?";
}

static int fail(dec_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(dec_t *c, int code, const char *fmt, ...)
{
    char what[ERRBUF_MAX / 2];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return errbuf_set(c->eb, code, "%s%s%s: %s", c->type ? msg_type_name(c->type) : "header",
                      c->where[0] ? " " : "", c->where, what);
}

static int get_uint(dec_t *c, const msgpack_object *o, const char *field, uint64_t max,
                    uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fail(c, ERR_PROTO, "%s: expected uint, got %s", field, obj_kind(o));
    if (o->via.u64 > max)
        return fail(c, ERR_PROTO, "%s: %" PRIu64 " > %" PRIu64, field, o->via.u64, max);
    *out = o->via.u64;
    return 0;
}

static int get_u32(dec_t *c, const msgpack_object *o, const char *field, uint32_t *out)
{
    uint64_t v;
    int rc = get_uint(c, o, field, UINT32_MAX, &v);

    *out = (uint32_t)v;
    return rc;
}

static int get_i32(dec_t *c, const msgpack_object *o, const char *field, int32_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT32_MAX)
        *out = (int32_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT32_MIN)
        *out = (int32_t)o->via.i64;
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
             o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return fail(c, ERR_PROTO, "%s: out of the int32 range", field);
    else
        return fail(c, ERR_PROTO, "%s: expected int, got %s", field, obj_kind(o));
    return 0;
}

static int get_array(dec_t *c, const msgpack_object *o, const char *field, uint32_t want,
                     const msgpack_object **items)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return fail(c, ERR_PROTO, "%s: expected array, got %s", field, obj_kind(o));
    if (o->via.array.size != want)
        return fail(c, ERR_PROTO, "%s: %" PRIu32 " elements, expected %" PRIu32, field,
                    o->via.array.size, want);
    *items = o->via.array.ptr;
    return 0;
}

/* A list of at most max elements. */
static int get_list(dec_t *c, const msgpack_object *o, const char *field, uint32_t max,
                    const msgpack_object **items, uint32_t *n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return fail(c, ERR_PROTO, "%s: expected array, got %s", field, obj_kind(o));
    if (o->via.array.size > max)
        return fail(c, ERR_PROTO, "%s: %" PRIu32 " elements, at most %" PRIu32, field,
                    o->via.array.size, max);
    *items = o->via.array.ptr;
    *n = o->via.array.size;
    return 0;
}

/* A bin of exactly want bytes (the count it was derived from in `why`). */
static int get_bin(dec_t *c, const msgpack_object *o, const char *field, uint64_t want,
                   const char *why, const void **out)
{
    if (o->type != MSGPACK_OBJECT_BIN)
        return fail(c, ERR_PROTO, "%s: expected bin, got %s", field, obj_kind(o));
    if (o->via.bin.size != want)
        return fail(c, ERR_PROTO, "%s: %" PRIu32 " bytes, expected %" PRIu64 " (%s)", field,
                    o->via.bin.size, want, why);
    *out = want ? o->via.bin.ptr : NULL;
    return 0;
}

static int get_str(dec_t *c, const msgpack_object *o, const char *field, msg_str_t *out)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return fail(c, ERR_PROTO, "%s: expected str, got %s", field, obj_kind(o));
    out->ptr = o->via.str.size ? o->via.str.ptr : NULL;
    out->len = o->via.str.size;
    return 0;
}

/* HELLO's optimizer parameters: a bin of 2 x MSG_HELLO_PARAMS finite
 * float32 (little-endian, like every float blob). */
static int decode_hello_params(dec_t *c, const msgpack_object *o, msg_hello_t *h)
{
    float p[2 * MSG_HELLO_PARAMS];
    const void *b;
    int rc = get_bin(c, o, "optimizer params", sizeof(p), "16 float32", &b);

    if (rc < 0)
        return rc;
    memcpy(p, b, sizeof(p));
    for (int i = 0; i < 2 * MSG_HELLO_PARAMS; i++)
        if (!(p[i] >= -FLT_MAX && p[i] <= FLT_MAX))
            return fail(c, ERR_PROTO, "optimizer param %d: not a finite float", i);
    memcpy(h->emb_params, p, sizeof(h->emb_params));
    memcpy(h->dense_params, p + MSG_HELLO_PARAMS, sizeof(h->dense_params));
    h->has_params = 1;
    return 0;
}

static int decode_hello(dec_t *c, const msgpack_object *body, msg_hello_t *h)
{
    const msgpack_object *f, *sl, *e, *ly;
    uint64_t dense;
    int rc;

    if ((rc = get_array(c, body, "body", 12, &f)) < 0 ||
        (rc = get_u32(c, &f[0], "flags", &h->flags)) < 0 ||
        (rc = get_u32(c, &f[1], "shard", &h->shard)) < 0 ||
        (rc = get_u32(c, &f[2], "nshards", &h->nshards)) < 0 ||
        (rc = get_u32(c, &f[3], "emb_optim", &h->emb_optim)) < 0 ||
        (rc = get_u32(c, &f[4], "dense_optim", &h->dense_optim)) < 0 ||
        (rc = get_uint(c, &f[5], "dense_size", UINT64_MAX, &dense)) < 0 ||
        (rc = get_i32(c, &f[6], "day", &h->day)) < 0 ||
        (rc = get_list(c, &f[7], "slots", MODEL_MAX_SLOTS, &sl, &h->nslots)) < 0)
        return rc;
    h->dense_size = dense;
    for (uint32_t i = 0; i < h->nslots; i++) {
        msg_hello_slot_t *s = &h->slot[i];
        msg_str_t name = {NULL, 0};

        snprintf(c->where, sizeof(c->where), "slot %" PRIu32, i);
        if ((rc = get_array(c, &sl[i], "slot", 4, &e)) < 0 ||
            (rc = get_str(c, &e[0], "name", &name)) < 0 ||
            (rc = get_u32(c, &e[1], "dim", &s->dim)) < 0 ||
            (rc = get_u32(c, &e[2], "admit_min", &s->admit_min)) < 0 ||
            (rc = get_u32(c, &e[3], "expire_days", &s->expire_days)) < 0)
            return rc;
        if (name.len == 0 || name.len >= sizeof(s->name) || memchr(name.ptr, '\0', name.len))
            return fail(c, ERR_PROTO, "name: empty, over %d bytes or with a NUL byte",
                        MODEL_SLOT_NAME_MAX - 1);
        memcpy(s->name, name.ptr, name.len);
        s->name[name.len] = '\0';
    }
    c->where[0] = '\0';
    if ((rc = decode_hello_params(c, &f[8], h)) < 0 ||
        (rc = get_u32(c, &f[9], "model_type", &h->model_type)) < 0 ||
        (rc = get_u32(c, &f[10], "ntowers", &h->ntowers)) < 0 ||
        (rc = get_list(c, &f[11], "layers", MODEL_MAX_LAYERS, &ly, &h->nlayers)) < 0)
        return rc;
    for (uint32_t i = 0; i < h->nlayers; i++)
        if ((rc = get_u32(c, &ly[i], "layer", &h->layer[i])) < 0)
            return rc;
    return 0;
}

/* [] (no position) or [last, epoch, file, offset, line, samples] */
static int decode_pos(dec_t *c, const msgpack_object *o, msg_pos_t *p)
{
    const msgpack_object *f;
    int rc;

    memset(p, 0, sizeof(*p));
    if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0)
        return 0;
    if ((rc = get_array(c, o, "pos", 6, &f)) < 0 ||
        (rc = get_u32(c, &f[0], "last", &p->last)) < 0 ||
        (rc = get_u32(c, &f[1], "epoch", &p->epoch)) < 0 ||
        (rc = get_u32(c, &f[2], "file", &p->file)) < 0 ||
        (rc = get_uint(c, &f[3], "offset", UINT64_MAX, &p->offset)) < 0 ||
        (rc = get_uint(c, &f[4], "line", UINT64_MAX, &p->line)) < 0 ||
        (rc = get_uint(c, &f[5], "samples", UINT64_MAX, &p->samples)) < 0)
        return rc;
    p->has = 1;
    return 0;
}

static int decode_rows(dec_t *c, const msgpack_object *body, msg_rows_t *r)
{
    const rows_rule_t *rule = rows_rule(c->type);
    const msgpack_object *f, *ents, *e;
    int rc;

    if ((rc = get_array(c, body, "body", 4, &f)) < 0 ||
        (rc = get_u32(c, &f[0], "flags", &r->flags)) < 0 ||
        (rc = get_uint(c, &f[1], "cursor", UINT64_MAX, &r->cursor)) < 0 ||
        (rc = get_list(c, &f[2], "slots", MODEL_MAX_SLOTS, &ents, &r->nslots)) < 0 ||
        (rc = decode_pos(c, &f[3], &r->pos)) < 0)
        return rc;
    for (uint32_t i = 0; i < r->nslots; i++) {
        msg_slot_t *s = &r->slot[i];
        uint64_t nk, rows_len;
        uint32_t ncounts;

        snprintf(c->where, sizeof(c->where), "entry %" PRIu32, i);
        if ((rc = get_array(c, &ents[i], "entry", 7, &e)) < 0 ||
            (rc = get_u32(c, &e[0], "slot", &s->slot)) < 0 ||
            (rc = get_u32(c, &e[1], "nkeys", &s->nkeys)) < 0 ||
            (rc = get_uint(c, &e[2], "dim", MSG_MAX_DIM, &nk)) < 0)
            return rc;
        s->dim = (uint32_t)nk;
        nk = s->nkeys;
        /* < 2^32 * 2^16 * 4: no overflow */
        rows_len = nk * s->dim * msg_row_elem(r->flags);
        if ((rc = get_bin(c, &e[3], "keys", rule->keys ? nk * 8 : 0, "nkeys*8", &s->keys)) < 0 ||
            (rc = get_bin(c, &e[4], "rows", rule->rows ? rows_len : 0,
                          (r->flags & MSG_F_HALF) ? "nkeys*dim*2 (16-bit rows)" : "nkeys*dim*4",
                          &s->rows)) < 0)
            return rc;
        /* counts: optional, so either empty or one per key. */
        ncounts = e[5].type == MSGPACK_OBJECT_BIN && e[5].via.bin.size > 0 ? s->nkeys : 0;
        if ((rc = get_bin(c, &e[5], "counts", rule->counts ? (uint64_t)ncounts * 4 : 0,
                          "empty or nkeys*4", &s->counts)) < 0 ||
            (rc = get_bin(c, &e[6], "meta", rule->meta ? nk * sizeof(msg_row_meta_t) : 0,
                          "nkeys*32", &s->meta)) < 0)
            return rc;
    }
    c->where[0] = '\0';
    return 0;
}

static int decode_dense(dec_t *c, const msgpack_object *body, msg_dense_t *d)
{
    const msgpack_object *f;
    int rc;

    if ((rc = get_array(c, body, "body", 5, &f)) < 0 ||
        (rc = get_u32(c, &f[0], "flags", &d->flags)) < 0 ||
        (rc = get_uint(c, &f[1], "offset", UINT64_MAX, &d->offset)) < 0 ||
        (rc = get_uint(c, &f[2], "count", UINT64_MAX, &d->count)) < 0 ||
        (rc = decode_pos(c, &f[4], &d->pos)) < 0)
        return rc;
    if (c->type == MSG_PULL_DENSE)
        return get_bin(c, &f[3], "values", 0, "PULL_DENSE carries none", &d->values);
    if (d->count > UINT32_MAX)
        return fail(c, ERR_TOOBIG, "count %" PRIu64 " cannot fit one message", d->count);
    return get_bin(c, &f[3], "values", d->count * msg_row_elem(d->flags),
                   (d->flags & MSG_F_HALF) ? "count*2 (16-bit values)" : "count*4", &d->values);
}

static int decode_progress(dec_t *c, const msgpack_object *body, msg_progress_t *p)
{
    const msgpack_object *f;
    int rc;

    if ((rc = get_array(c, body, "body", 7, &f)) < 0 ||
        (rc = get_u32(c, &f[0], "rank", &p->rank)) < 0 ||
        (rc = get_u32(c, &f[1], "found", &p->found)) < 0 ||
        (rc = get_u32(c, &f[2], "epoch", &p->epoch)) < 0 ||
        (rc = get_u32(c, &f[3], "file", &p->file)) < 0 ||
        (rc = get_uint(c, &f[4], "offset", UINT64_MAX, &p->offset)) < 0 ||
        (rc = get_uint(c, &f[5], "line", UINT64_MAX, &p->line)) < 0 ||
        (rc = get_uint(c, &f[6], "samples", UINT64_MAX, &p->samples)) < 0)
        return rc;
    return 0;
}

static int decode_kv(dec_t *c, codec_dec_t *d, const msgpack_object *body, msg_kvlist_t *l)
{
    const msgpack_object *f, *items, *e;
    msg_kv_t *kv = NULL;
    int rc;

    if ((rc = get_array(c, body, "body", 2, &f)) < 0 ||
        (rc = get_u32(c, &f[0], "flags", &l->flags)) < 0 ||
        (rc = get_list(c, &f[1], "counters", UINT32_MAX, &items, &l->n)) < 0)
        return rc;
    if (l->n > 0) {
        kv = msgpack_zone_malloc(&d->zone, (size_t)l->n * sizeof(*kv));
        if (kv == NULL)
            return fail(c, ERR_NOMEM, "out of memory for %" PRIu32 " counters", l->n);
    }
    for (uint32_t i = 0; i < l->n; i++) {
        snprintf(c->where, sizeof(c->where), "counter %" PRIu32, i);
        memset(&kv[i], 0, sizeof(kv[i]));
        if ((rc = get_array(c, &items[i], "counter", 2, &e)) < 0 ||
            (rc = get_str(c, &e[0], "name", &kv[i].name)) < 0)
            return rc;
        if (e[1].type == MSGPACK_OBJECT_STR) {
            kv[i].is_str = 1;
            rc = get_str(c, &e[1], "value", &kv[i].str);
        } else if (e[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            rc = get_uint(c, &e[1], "value", UINT64_MAX, &kv[i].u64);
        } else {
            rc = fail(c, ERR_PROTO, "value: expected uint or str, got %s", obj_kind(&e[1]));
        }
        if (rc < 0)
            return rc;
    }
    c->where[0] = '\0';
    l->kv = kv;
    return 0;
}

static int decode_body(dec_t *c, codec_dec_t *d, const msgpack_object *body, msg_t *m)
{
    const msgpack_object *f;
    int rc;

    switch (msg_type_body(c->type)) {
    case MSG_BODY_HELLO: return decode_hello(c, body, &m->u.hello);
    case MSG_BODY_ROWS: return decode_rows(c, body, &m->u.rows);
    case MSG_BODY_DENSE: return decode_dense(c, body, &m->u.dense);
    case MSG_BODY_PROGRESS: return decode_progress(c, body, &m->u.progress);
    case MSG_BODY_CMD:
        if ((rc = get_array(c, body, "body", 3, &f)) < 0 ||
            (rc = get_u32(c, &f[0], "flags", &m->u.cmd.flags)) < 0 ||
            (rc = get_i32(c, &f[1], "day", &m->u.cmd.day)) < 0 ||
            (rc = get_str(c, &f[2], "text", &m->u.cmd.text)) < 0)
            return rc;
        return 0;
    case MSG_BODY_KV: return decode_kv(c, d, body, &m->u.kv);
    case MSG_BODY_SCAN:
        if ((rc = get_array(c, body, "body", 4, &f)) < 0 ||
            (rc = get_u32(c, &f[0], "slot", &m->u.scan.slot)) < 0 ||
            (rc = get_u32(c, &f[1], "flags", &m->u.scan.flags)) < 0 ||
            (rc = get_uint(c, &f[2], "cursor", UINT64_MAX, &m->u.scan.cursor)) < 0 ||
            (rc = get_u32(c, &f[3], "limit", &m->u.scan.limit)) < 0)
            return rc;
        return 0;
    case MSG_BODY_ERROR:
        if ((rc = get_array(c, body, "body", 2, &f)) < 0 ||
            (rc = get_i32(c, &f[0], "code", &m->u.error.code)) < 0 ||
            (rc = get_str(c, &f[1], "text", &m->u.error.text)) < 0)
            return rc;
        return 0;
    }
    return fail(c, ERR_PROTO, "no body kind");
}

codec_dec_t *codec_dec_new(size_t max_size)
{
    codec_dec_t *d = malloc(sizeof(*d));

    if (d == NULL)
        return NULL;
    d->max = max_size ? max_size : CODEC_MAX_MSG_DEFAULT;
    if (!msgpack_zone_init(&d->zone, ZONE_CHUNK)) {
        free(d);
        return NULL;
    }
    return d;
}

void codec_dec_destroy(codec_dec_t **d)
{
    if (d == NULL || *d == NULL)
        return;
    msgpack_zone_destroy(&(*d)->zone);
    free(*d);
    *d = NULL;
}

/* Steps 1 and 2: a msgpack object tree out of untrusted bytes. */
static int unpack(codec_dec_t *d, const void *data, size_t len, msgpack_object *root, errbuf_t *eb)
{
    size_t off = 0;
    int rc;

    if (len > d->max)
        return errbuf_set(eb, ERR_TOOBIG, "message of %zu bytes exceeds the limit of %zu", len,
                          d->max);
    if (len == 0)
        return errbuf_set(eb, ERR_PROTO, "empty message");
    if ((rc = prescan(data, len, d->max, eb)) < 0)
        return rc;
    msgpack_zone_clear(&d->zone);
    switch (msgpack_unpack(data, len, &off, &d->zone, root)) {
    case MSGPACK_UNPACK_SUCCESS: return 0;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        return errbuf_set(eb, ERR_NOMEM, "out of memory decoding %zu bytes", len);
    default: /* prescan() makes these unreachable; stay safe anyway */
        return errbuf_set(eb, ERR_PROTO, "msgpack could not parse the message");
    }
}

/* One msgpack unsigned integer at p[*pos] (advanced past it); -1 if the
 * bytes there are not one, or end first. */
static int peek_uint(const unsigned char *p, size_t len, size_t *pos, uint64_t *v)
{
    static const size_t width[4] = {1, 2, 4, 8}; /* uint8 .. uint64: 0xcc .. 0xcf */
    unsigned t;

    if (*pos >= len)
        return -1;
    t = p[(*pos)++];
    if (t <= 0x7f) {
        *v = t;
        return 0;
    }
    if (t < 0xcc || t > 0xcf || len - *pos < width[t - 0xcc])
        return -1;
    *v = read_be(p, pos, width[t - 0xcc]);
    return 0;
}

/* The request id of a message that does not decode (truncated, say),
 * read from its first bytes when the header is intact: the array header,
 * then magic, version, type and req_id as unsigned integers. 0 if not. */
static uint64_t peek_req_id(const unsigned char *p, size_t len)
{
    size_t pos;
    uint64_t v = 0;

    if (len == 0)
        return 0;
    if ((p[0] & 0xf0) == 0x90)
        pos = 1; /* fixarray */
    else if (p[0] == 0xdc || p[0] == 0xdd)
        pos = p[0] == 0xdc ? 3 : 5; /* array16, array32 */
    else
        return 0;
    for (int i = 0; i < 4; i++)
        if (peek_uint(p, len, &pos, &v) != 0 || (i == 0 && v != MSG_MAGIC))
            return 0;
    return v;
}

int codec_decode(codec_dec_t *d, msg_t *m, const void *data, size_t len, errbuf_t *eb)
{
    dec_t c = {.eb = eb, .type = 0, .where = ""};
    const msgpack_object *f;
    msgpack_object root;
    uint64_t v;
    int rc;

    assert(d != NULL && m != NULL && (data != NULL || len == 0));
    memset(&m->hdr, 0, sizeof(m->hdr));
    if ((rc = unpack(d, data, len, &root, eb)) < 0) {
        m->hdr.req_id = peek_req_id(data, len); /* so the ERROR reply can be matched */
        return rc;
    }

    /* Magic and version first: they keep their place in every version. */
    if (root.type != MSGPACK_OBJECT_ARRAY || root.via.array.size < 2 ||
        root.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        root.via.array.ptr[0].via.u64 != MSG_MAGIC)
        return errbuf_set(eb, ERR_PROTO, "not a funnel message (no magic)");
    f = root.via.array.ptr;
    if ((rc = get_uint(&c, &f[1], "version", UINT32_MAX, &v)) < 0)
        return rc;
    m->hdr.version = (uint32_t)v;
    if (root.via.array.size >= 4 && f[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        m->hdr.req_id = f[3].via.u64;
    if (m->hdr.version != MSG_VERSION)
        return errbuf_set(eb, ERR_VERSION,
                          "peer speaks protocol version %" PRIu32 ", this build speaks %u "
                          "(run the same funnel release on shards, workers and tools)",
                          m->hdr.version, MSG_VERSION);
    if (root.via.array.size != 7)
        return errbuf_set(eb, ERR_PROTO, "header: %" PRIu32 " elements, expected 7",
                          root.via.array.size);
    if ((rc = get_uint(&c, &f[2], "type", UINT32_MAX, &v)) < 0)
        return rc;
    if (msg_type_body((int)v) < 0)
        return errbuf_set(eb, ERR_PROTO, "unknown message type %" PRIu64, v);
    c.type = m->hdr.type = (int)v;
    if ((rc = get_uint(&c, &f[3], "req_id", UINT64_MAX, &m->hdr.req_id)) < 0 ||
        (rc = get_u32(&c, &f[4], "sender", &m->hdr.sender)) < 0 ||
        (rc = get_uint(&c, &f[5], "seq", UINT64_MAX, &m->hdr.seq)) < 0 ||
        (rc = decode_body(&c, d, &f[6], m)) < 0)
        return rc;
    return check_msg(m, ERR_PROTO, eb);
}

/* ---------------------------------------------------------------------- */
/* Protocol checks                                                         */

static void hello_params(float *p, const optim_t *o)
{
    const float v[MSG_HELLO_PARAMS] = {o->lr,        o->eps, o->beta1, o->beta2,
                                       o->ftrl_beta, o->l1,  o->l2,    o->init_std};
    memcpy(p, v, sizeof(v));
}

/* The parameters an optimizer kind uses (bit i: MSG_HELLO_PARAMS item i);
 * init_std only for rows, which the shard initializes. */
static unsigned params_used(uint32_t kind, int rows)
{
    unsigned m = kind == OPTIM_SGD       ? 0x01u
                 : kind == OPTIM_ADAGRAD ? 0x03u
                 : kind == OPTIM_ADAM    ? 0x0fu
                                         : 0x71u; /* FTRL: alpha, beta, l1, l2 */
    return rows ? m | 0x80u : m;
}

static const char *const param_name[MSG_HELLO_PARAMS] = {"lr",        "eps", "beta1", "beta2",
                                                         "ftrl_beta", "l1",  "l2",    "init_std"};

/* The [model] key of optimizer parameter i for an optimizer kind. */
static const char *param_key(const char *what, uint32_t kind, int i, char *buf, size_t len)
{
    static const char *const adagrad[] = {"lr", "adagrad_eps"};
    static const char *const adam[] = {"lr", "adam_eps", "adam_beta1", "adam_beta2"};
    static const char *const ftrl[] = {"ftrl_alpha", NULL,      NULL,     NULL,
                                       "ftrl_beta",  "ftrl_l1", "ftrl_l2"};
    const char *k = i == 7                  ? "emb_init_std"
                    : kind == OPTIM_FTRL    ? ftrl[i]
                    : kind == OPTIM_ADAM    ? adam[i]
                    : kind == OPTIM_ADAGRAD ? adagrad[i]
                                            : "lr";
    if (k && !strcmp(k, "lr"))
        snprintf(buf, len, "%s_lr", what[0] == 'e' ? "emb" : "dense");
    else
        snprintf(buf, len, "%s", k ? k : param_name[i]);
    return buf;
}

static int params_check(const char *what, uint32_t kind, int rows, const float *a, const float *b,
                        const char *me, const char *them, errbuf_t *eb)
{
    unsigned used = params_used(kind, rows);
    char key[32];

    for (int i = 0; i < MSG_HELLO_PARAMS; i++)
        if ((used >> i & 1u) && a[i] != b[i])
            return errbuf_set(eb, ERR_MISMATCH,
                              "%s optimizer %s: %s has %s %g; %s has %g: set %s = %g in %s's "
                              "[model], or give %s %g (the shard applies its own)",
                              what, optim_name((int)kind), me,
                              kind == OPTIM_FTRL && i == 0 ? "alpha" : param_name[i], (double)a[i],
                              them, (double)b[i], param_key(what, kind, i, key, sizeof(key)),
                              (double)b[i], me, them, (double)a[i]);
    return 0;
}

int codec_hello_policy_diff(const msg_hello_t *mine, const msg_hello_t *peer, char *buf, size_t len)
{
    if ((mine->flags | peer->flags) & MSG_F_PROBE || mine->nslots != peer->nslots)
        return 0;
    for (uint32_t i = 0; i < mine->nslots; i++) {
        const msg_hello_slot_t *a = &mine->slot[i], *b = &peer->slot[i];
        if (a->admit_min != b->admit_min) {
            snprintf(buf, len, "slot '%s': admit_min %" PRIu32 " here, %" PRIu32 " at the peer",
                     a->name, a->admit_min, b->admit_min);
            return 1;
        }
        if (a->expire_days != b->expire_days) {
            snprintf(buf, len, "slot '%s': expire_days %" PRIu32 " here, %" PRIu32 " at the peer",
                     a->name, a->expire_days, b->expire_days);
            return 1;
        }
    }
    return 0;
}

void codec_hello_from_spec(msg_hello_t *h, const model_spec_t *spec, uint32_t shard,
                           uint32_t nshards, uint64_t dense_size, int32_t day)
{
    memset(h, 0, sizeof(*h));
    h->shard = shard;
    h->nshards = nshards;
    h->emb_optim = (uint32_t)spec->emb_opt.kind;
    h->dense_optim = (uint32_t)spec->dense_opt.kind;
    h->dense_size = dense_size;
    h->day = day;
    h->nslots = (uint32_t)spec->nslots;
    h->has_params = 1;
    h->model_type = (uint32_t)spec->type;
    h->ntowers = (uint32_t)spec->ntowers;
    h->nlayers = (uint32_t)spec->nlayers;
    for (int i = 0; i < spec->nlayers; i++)
        h->layer[i] = (uint32_t)spec->layer[i];
    hello_params(h->emb_params, &spec->emb_opt);
    hello_params(h->dense_params, &spec->dense_opt);
    for (int i = 0; i < spec->nslots; i++) {
        snprintf(h->slot[i].name, sizeof(h->slot[i].name), "%s", spec->slot[i].name);
        h->slot[i].dim = (uint32_t)spec->slot[i].dim;
        h->slot[i].admit_min = (uint32_t)spec->slot[i].admit_min;
        h->slot[i].expire_days = (uint32_t)spec->slot[i].expire_days;
    }
}

static const char *model_name(uint32_t type)
{
    static const char *const name[] = {"esm2", "esmm", "naive", "nmtr"};
    return type < sizeof(name) / sizeof(name[0]) ? name[type] : "unknown";
}

/* "256,128,64" (or "none") into buf. */
static const char *layers_str(const msg_hello_t *h, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (uint32_t i = 0; i < h->nlayers && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%" PRIu32, i ? "," : "", h->layer[i]);
    if (h->nlayers == 0)
        snprintf(buf, len, "none");
    return buf;
}

static int layers_differ(const msg_hello_t *a, const msg_hello_t *b)
{
    if (a->nlayers != b->nlayers)
        return 1;
    for (uint32_t i = 0; i < a->nlayers; i++)
        if (a->layer[i] != b->layer[i])
            return 1;
    return 0;
}

int codec_hello_check(const msg_hello_t *mine, const msg_hello_t *peer, const char *me,
                      const char *them, errbuf_t *eb)
{
    if ((mine->flags | peer->flags) & MSG_F_PROBE)
        return 0;
    if (mine->shard != peer->shard || mine->nshards != peer->nshards)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s has shard %" PRIu32 " of %" PRIu32 "; %s has shard %" PRIu32
                          " of %" PRIu32
                          ": list every shard in --ps in shard order (funnel-ps --shard I "
                          "--shards N), as many endpoints as shards",
                          me, mine->shard, mine->nshards, them, peer->shard, peer->nshards);
    if (mine->model_type != peer->model_type || mine->ntowers != peer->ntowers)
        return errbuf_set(
            eb, ERR_MISMATCH,
            "%s has model_type %s (%" PRIu32 " towers); %s has model_type %s (%" PRIu32
            " towers): set model_type = %s in %s's [model], or give %s a data "
            "directory made with model_type %s",
            me, model_name(mine->model_type), mine->ntowers, them, model_name(peer->model_type),
            peer->ntowers, model_name(peer->model_type), me, them, model_name(mine->model_type));
    if (layers_differ(mine, peer)) {
        char la[96], lb[96];
        layers_str(mine, la, sizeof(la));
        layers_str(peer, lb, sizeof(lb));
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s has towers = %s; %s has towers = %s: set towers = %s in %s's "
                          "[model], or give %s towers = %s",
                          me, la, them, lb, lb, me, them, la);
    }
    if (mine->nslots != peer->nslots)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s has %" PRIu32 " slots; %s has %" PRIu32
                          ": give both the same [model] slots",
                          me, mine->nslots, them, peer->nslots);
    for (uint32_t i = 0; i < mine->nslots; i++) {
        const msg_hello_slot_t *a = &mine->slot[i], *b = &peer->slot[i];

        if (strcmp(a->name, b->name) != 0)
            return errbuf_set(eb, ERR_MISMATCH,
                              "slot %" PRIu32 ": %s has '%s'; %s has '%s': give both the same "
                              "[model] slots, in the same order",
                              i, me, a->name, them, b->name);
        if (a->dim != b->dim)
            return errbuf_set(eb, ERR_MISMATCH,
                              "slot '%s': %s has dim %" PRIu32 "; %s has dim %" PRIu32
                              ": set dim = %" PRIu32 " for '%s' in %s's [model] (emb_dim = %" PRIu32
                              ", or slot_dims = \"%s:%" PRIu32 "\"), or give %s dim %" PRIu32,
                              a->name, me, a->dim, them, b->dim, b->dim, a->name, me, b->dim,
                              a->name, b->dim, them, a->dim);
    }
    if (mine->emb_optim != peer->emb_optim)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s has emb_optimizer %s; %s has %s: set emb_optimizer = %s in %s's "
                          "[model], or give %s %s",
                          me, optim_name((int)mine->emb_optim), them,
                          optim_name((int)peer->emb_optim), optim_name((int)peer->emb_optim), me,
                          them, optim_name((int)mine->emb_optim));
    if (mine->dense_optim != peer->dense_optim)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s has dense_optimizer %s; %s has %s: set dense_optimizer = %s in %s's "
                          "[model], or give %s %s",
                          me, optim_name((int)mine->dense_optim), them,
                          optim_name((int)peer->dense_optim), optim_name((int)peer->dense_optim),
                          me, them, optim_name((int)mine->dense_optim));
    if (mine->dense_size != peer->dense_size)
        return errbuf_set(eb, ERR_MISMATCH,
                          "%s has a dense vector of %" PRIu64 " floats; %s has %" PRIu64
                          ": give both the same [model] settings",
                          me, mine->dense_size, them, peer->dense_size);
    if (!mine->has_params || !peer->has_params)
        return 0; /* nothing to compare */
    int rc = params_check("embedding", mine->emb_optim, 1, mine->emb_params, peer->emb_params, me,
                          them, eb);
    if (rc == 0)
        rc = params_check("dense", mine->dense_optim, 0, mine->dense_params, peer->dense_params, me,
                          them, eb);
    return rc;
}

/* A peer's error code as one of ours. */
static int peer_code(int32_t code)
{
    switch (code) {
#define X(name, val, text) \
    case (val): return (val);
        ERR_LIST(X)
#undef X
    }
    return ERR_PROTO;
}

int codec_check_reply(const msg_t *req, const msg_t *rep, errbuf_t *eb)
{
    int want = msg_type_reply(req->hdr.type);
    const char *tn = msg_type_name(req->hdr.type);

    if (rep->hdr.req_id != req->hdr.req_id)
        return errbuf_set(eb, ERR_PROTO, "%s %" PRIu64 ": reply is for request %" PRIu64, tn,
                          req->hdr.req_id, rep->hdr.req_id);
    if (rep->hdr.type == MSG_ERROR) {
        int code = peer_code(rep->u.error.code);

        return errbuf_set(eb, code ? code : ERR_PROTO, "peer: %.*s", (int)rep->u.error.text.len,
                          rep->u.error.text.ptr ? rep->u.error.text.ptr : "");
    }
    if (rep->hdr.type != want)
        return errbuf_set(eb, ERR_PROTO, "%s answered by %s, expected %s", tn,
                          msg_type_name(rep->hdr.type), msg_type_name(want));
    switch (req->hdr.type) {
    case MSG_PULL:
    case MSG_ROWS_GET: {
        const msg_rows_t *a = &req->u.rows, *b = &rep->u.rows;

        if (a->nslots != b->nslots)
            return errbuf_set(eb, ERR_PROTO, "%s of %" PRIu32 " slots answered with %" PRIu32, tn,
                              a->nslots, b->nslots);
        if ((a->flags & MSG_F_HALF) != (b->flags & MSG_F_HALF))
            return errbuf_set(eb, ERR_PROTO, "%s asked for %s rows, answered with %s rows", tn,
                              (a->flags & MSG_F_HALF) ? "16-bit" : "32-bit",
                              (b->flags & MSG_F_HALF) ? "16-bit" : "32-bit");
        for (uint32_t i = 0; i < a->nslots; i++)
            if (a->slot[i].slot != b->slot[i].slot || a->slot[i].nkeys != b->slot[i].nkeys)
                return errbuf_set(eb, ERR_PROTO,
                                  "%s entry %" PRIu32 ": slot %" PRIu32 " with %" PRIu32
                                  " keys answered by slot %" PRIu32 " with %" PRIu32,
                                  tn, i, a->slot[i].slot, a->slot[i].nkeys, b->slot[i].slot,
                                  b->slot[i].nkeys);
        break;
    }
    case MSG_PULL_DENSE:
        if (req->u.dense.offset != rep->u.dense.offset || req->u.dense.count != rep->u.dense.count)
            return errbuf_set(
                eb, ERR_PROTO,
                "%s [%" PRIu64 ", +%" PRIu64 ") answered with [%" PRIu64 ", +%" PRIu64 ")", tn,
                req->u.dense.offset, req->u.dense.count, rep->u.dense.offset, rep->u.dense.count);
        if ((req->u.dense.flags & MSG_F_HALF) != (rep->u.dense.flags & MSG_F_HALF))
            return errbuf_set(eb, ERR_PROTO, "%s asked for %s values, answered with %s values", tn,
                              (req->u.dense.flags & MSG_F_HALF) ? "16-bit" : "32-bit",
                              (rep->u.dense.flags & MSG_F_HALF) ? "16-bit" : "32-bit");
        break;
    case MSG_PROGRESS_GET:
        if (req->u.progress.rank != rep->u.progress.rank)
            return errbuf_set(eb, ERR_PROTO, "%s rank %" PRIu32 " answered for rank %" PRIu32, tn,
                              req->u.progress.rank, rep->u.progress.rank);
        break;
    }
    return 0;
}

int codec_check_layout(const msg_t *m, const msg_hello_t *layout, errbuf_t *eb)
{
    int type = m->hdr.type;
    const char *tn = msg_type_name(type);
    optim_t opt = {.kind = (int)layout->emb_optim};

    assert(layout->emb_optim <= OPTIM_FTRL);
    switch (msg_type_body(type)) {
    case MSG_BODY_ROWS:
        for (uint32_t i = 0; i < m->u.rows.nslots; i++) {
            const msg_slot_t *s = &m->u.rows.slot[i];
            uint32_t dim, full;

            if (s->slot >= layout->nslots)
                return errbuf_set(eb, ERR_PROTO,
                                  "%s entry %" PRIu32 ": slot %" PRIu32 ", the table has %" PRIu32,
                                  tn, i, s->slot, layout->nslots);
            dim = layout->slot[s->slot].dim;
            full = dim + (uint32_t)optim_state_len(&opt, dim);
            if (type == MSG_PULL || type == MSG_ROWS_GET)
                continue;
            if (s->dim == dim || ((m->u.rows.flags & MSG_F_STATE) && s->dim == full))
                continue;
            return errbuf_set(eb, ERR_MISMATCH,
                              "%s entry %" PRIu32 ": slot %" PRIu32 " '%s' rows of %" PRIu32
                              " floats, the table has dim %" PRIu32 " (%" PRIu32 " with state)",
                              tn, i, s->slot, layout->slot[s->slot].name, s->dim, dim, full);
        }
        return 0;
    case MSG_BODY_SCAN:
        if (m->u.scan.slot >= layout->nslots)
            return errbuf_set(eb, ERR_PROTO, "%s: slot %" PRIu32 ", the table has %" PRIu32, tn,
                              m->u.scan.slot, layout->nslots);
        return 0;
    case MSG_BODY_DENSE:
        if (m->u.dense.offset > layout->dense_size ||
            m->u.dense.count > layout->dense_size - m->u.dense.offset)
            return errbuf_set(eb, ERR_PROTO,
                              "%s: range [%" PRIu64 ", +%" PRIu64 ") outside the %" PRIu64
                              "-float dense vector",
                              tn, m->u.dense.offset, m->u.dense.count, layout->dense_size);
        return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Reference encoding for the benchmark: rows as arrays of floats.         */

int codec_ref_encode_float_arrays(codec_buf_t *b, const float *rows, size_t n, size_t dim,
                                  errbuf_t *eb)
{
    msgpack_packer pk;

    b->len = 0;
    b->err = 0;
    msgpack_packer_init(&pk, b, buf_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, dim);
        for (size_t j = 0; j < dim; j++)
            msgpack_pack_float(&pk, rows[i * dim + j]);
    }
    if (b->err) {
        int rc = b->err;

        b->len = 0;
        return errbuf_set(eb, rc, "float arrays: %s", err_strerror(rc));
    }
    return 0;
}

int codec_ref_decode_float_arrays(codec_dec_t *d, float *out, size_t n, size_t dim,
                                  const void *data, size_t len, errbuf_t *eb)
{
    msgpack_object root;
    size_t off = 0;

    if (len > d->max)
        return errbuf_set(eb, ERR_TOOBIG, "float arrays: %zu bytes", len);
    msgpack_zone_clear(&d->zone);
    if (msgpack_unpack(data, len, &off, &d->zone, &root) != MSGPACK_UNPACK_SUCCESS)
        return errbuf_set(eb, ERR_PROTO, "float arrays: not one msgpack value");
    if (root.type != MSGPACK_OBJECT_ARRAY || root.via.array.size != n)
        return errbuf_set(eb, ERR_PROTO, "float arrays: expected %zu rows", n);
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *row = &root.via.array.ptr[i];

        if (row->type != MSGPACK_OBJECT_ARRAY || row->via.array.size != dim)
            return errbuf_set(eb, ERR_PROTO, "float arrays: row %zu is not %zu floats", i, dim);
        for (size_t j = 0; j < dim; j++) {
            const msgpack_object *v = &row->via.array.ptr[j];

            if (v->type != MSGPACK_OBJECT_FLOAT32 && v->type != MSGPACK_OBJECT_FLOAT64)
                return errbuf_set(eb, ERR_PROTO, "float arrays: row %zu item %zu: %s", i, j,
                                  obj_kind(v));
            out[i * dim + j] = (float)v->via.f64;
        }
    }
    return 0;
}
