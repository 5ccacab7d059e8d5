/*
 * serve_codec.c - funnel-serve's request and reply codec. See serve_codec.h.
 */
#include "proto/serve_codec.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"

struct serve_codec {
    size_t max;
    msgpack_sbuffer sb;
    msgpack_zone zone;
    serve_str_t *cand; /* decoded candidates */
    size_t cap;
};

serve_codec_t *serve_codec_new(size_t max)
{
    serve_codec_t *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->max = max ? max : SERVE_MAX_MSG;
    msgpack_sbuffer_init(&c->sb);
    if (!msgpack_zone_init(&c->zone, 64 << 10)) {
        free(c);
        return NULL;
    }
    return c;
}

void serve_codec_destroy(serve_codec_t **c)
{
    if (!c || !*c)
        return;
    msgpack_sbuffer_destroy(&(*c)->sb);
    msgpack_zone_destroy(&(*c)->zone);
    free((*c)->cand);
    free(*c);
    *c = NULL;
}

static void pack_str(msgpack_packer *pk, const char *p, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, p, len);
}

static void pack_head(msgpack_packer *pk, int n, int type, uint64_t id)
{
    msgpack_pack_array(pk, (size_t)n);
    pack_str(pk, SERVE_MAGIC, strlen(SERVE_MAGIC));
    msgpack_pack_int(pk, SERVE_VERSION);
    msgpack_pack_int(pk, type);
    msgpack_pack_uint64(pk, id);
}

static int finish(serve_codec_t *c, const void **data, size_t *len, errbuf_t *eb)
{
    if (!c->sb.data)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    if (c->sb.size > c->max)
        return errbuf_set(eb, ERR_TOOBIG, "message of %zu bytes over the limit of %zu", c->sb.size,
                          c->max);
    *data = c->sb.data;
    *len = c->sb.size;
    return 0;
}

int serve_codec_encode_req(serve_codec_t *c, const serve_req_t *r, const void **data, size_t *len,
                           errbuf_t *eb)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(&c->sb);
    msgpack_packer_init(&pk, &c->sb, msgpack_sbuffer_write);
    pack_head(&pk, 5, r->type, r->id);
    switch (r->type) {
    case SERVE_SCORE:
        if (r->ncand > SERVE_MAX_CANDIDATES)
            return errbuf_set(eb, ERR_TOOBIG, "%u candidates in one request (at most %d)", r->ncand,
                              SERVE_MAX_CANDIDATES);
        msgpack_pack_array(&pk, 2);
        pack_str(&pk, r->user.p, r->user.len);
        msgpack_pack_array(&pk, r->ncand);
        for (uint32_t i = 0; i < r->ncand; i++)
            pack_str(&pk, r->cand[i].p, r->cand[i].len);
        break;
    case SERVE_APPLY:
        msgpack_pack_array(&pk, 1);
        pack_str(&pk, r->path.p, r->path.len);
        break;
    case SERVE_INFO: msgpack_pack_array(&pk, 0); break;
    default: return errbuf_set(eb, ERR_INVAL, "request type %d", r->type);
    }
    return finish(c, data, len, eb);
}

int serve_codec_encode_rep(serve_codec_t *c, const serve_rep_t *r, const void **data, size_t *len,
                           errbuf_t *eb)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(&c->sb);
    msgpack_packer_init(&pk, &c->sb, msgpack_sbuffer_write);
    pack_head(&pk, 6, r->type, r->id);
    msgpack_pack_int(&pk, r->status);
    if (r->status != 0) {
        msgpack_pack_array(&pk, 1);
        pack_str(&pk, r->text.p, r->text.len);
        return finish(c, data, len, eb);
    }
    switch (r->type) {
    case SERVE_SCORE: {
        size_t nf = (size_t)r->n * (size_t)r->npred;
        msgpack_pack_array(&pk, 4);
        msgpack_pack_int(&pk, r->day);
        msgpack_pack_int(&pk, r->npred);
        msgpack_pack_uint32(&pk, r->n);
        msgpack_pack_bin(&pk, nf * 4);
        for (size_t i = 0; i < nf; i++) {
            unsigned char b[4];
            bytes_put_le_float(b, r->pred[i]);
            msgpack_pack_bin_body(&pk, b, 4);
        }
        break;
    }
    case SERVE_APPLY:
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, r->day);
        pack_str(&pk, r->text.p, r->text.len);
        break;
    case SERVE_INFO:
        msgpack_pack_array(&pk, 4);
        msgpack_pack_int(&pk, r->day);
        msgpack_pack_uint64(&pk, r->rows);
        pack_str(&pk, r->model.p, r->model.len);
        pack_str(&pk, r->text.p, r->text.len);
        break;
    default: return errbuf_set(eb, ERR_INVAL, "reply type %d", r->type);
    }
    return finish(c, data, len, eb);
}

int serve_codec_peek_type(const void *data, size_t len)
{
    const unsigned char *p = data;

    if (len < 13 || (p[0] != 0x95 && p[0] != 0x96) || p[1] != 0xa8 ||
        memcmp(p + 2, SERVE_MAGIC, 8) || p[10] != SERVE_VERSION || p[11] < SERVE_SCORE ||
        p[11] > SERVE_INFO)
        return 0;
    return p[11];
}

/* Big-endian unsigned of n bytes at p. */
static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * One pass over the msgpack bytes before msgpack-c builds anything: every
 * declared length and element count must fit in the bytes that remain (an
 * element takes at least one byte), at most max_objects objects, exactly
 * one value and nothing after it. So a message cannot make the unpacker
 * allocate by what it declares.
 */
static int walk(const unsigned char *p, size_t len, size_t max_objects)
{
    size_t pos = 0, pending = 1, objects = 0;

    while (pending > 0) {
        uint64_t n = 0, skip = 0; /* elements; bytes after the header */
        int hdr = 1;
        if (pos >= len || ++objects > max_objects)
            return -1;
        unsigned char b = p[pos];
        pending--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        } else if (b <= 0x8f) {
            n = 2 * (uint64_t)(b & 0x0f);
        } else if (b <= 0x9f) {
            n = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else if (b == 0xc1) {
            return -1;
        } else {
            /* per type byte 0xc4..0xdf: bytes of its length or count field, and
             * bytes that follow the header besides a length's worth (ext's type
             * byte, the fixed-size numbers and fixexts) */
            static const signed char lenb[28] = {1, 2, 4, 1, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0,
                                                 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4};
            static const signed char fixed[28] = {0, 0, 0, 1, 1, 1, 4,  8, 1, 2, 4, 8, 1, 2,
                                                  4, 8, 2, 3, 5, 9, 17, 0, 0, 0, 0, 0, 0, 0};
            int i = b - 0xc4, l = lenb[i];
            if (pos + 1 + (size_t)l > len)
                return -1;
            uint64_t v = be(p + pos + 1, l);
            hdr = 1 + l;
            skip = (uint64_t)fixed[i];
            if (b >= 0xdc && b <= 0xdd)
                n = v;
            else if (b >= 0xde)
                n = 2 * v;
            else if (l > 0)
                skip += v; /* bin, ext (after its type byte), str */
        }
        if ((size_t)hdr > len - pos || skip > len - pos - (size_t)hdr)
            return -1;
        pos += (size_t)hdr + (size_t)skip;
        if (n > len - pos || pending + n > len - pos)
            return -1;
        pending += (size_t)n;
    }
    return pos == len ? 0 : -1;
}

static int get_u64(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *v = o->via.u64;
    return 0;
}

static int get_int(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        *v = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *v = o->via.i64;
    else
        return -1;
    return 0;
}

static int get_str(const msgpack_object *o, serve_str_t *s)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return -1;
    s->p = o->via.str.ptr;
    s->len = o->via.str.size;
    return 0;
}

/* Unpack data and check the common header; *root the top array. */
static int unpack(serve_codec_t *c, const void *data, size_t len, uint32_t arity, const char *what,
                  msgpack_object *root, int *type, uint64_t *id, errbuf_t *eb)
{
    size_t off = 0;
    serve_str_t magic;
    uint64_t v;

    if (len > c->max)
        return errbuf_set(eb, ERR_TOOBIG, "%s of %zu bytes over the limit of %zu", what, len,
                          c->max);
    if (walk(data, len, 2 * (size_t)SERVE_MAX_CANDIDATES + 64) != 0)
        return errbuf_set(eb, ERR_PROTO, "%s: not one well-formed msgpack value of its size", what);
    msgpack_zone_clear(&c->zone);
    if (msgpack_unpack(data, len, &off, &c->zone, root) != MSGPACK_UNPACK_SUCCESS || off != len)
        return errbuf_set(eb, ERR_PROTO, "%s: not one msgpack value", what);
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 4 ||
        get_str(&root->via.array.ptr[0], &magic) != 0 || magic.len != strlen(SERVE_MAGIC) ||
        memcmp(magic.p, SERVE_MAGIC, magic.len) != 0)
        return errbuf_set(eb, ERR_PROTO, "%s: not a funnel-serve message", what);
    if (get_u64(&root->via.array.ptr[3], id) != 0)
        *id = 0;
    if (get_u64(&root->via.array.ptr[1], &v) != 0 || v != SERVE_VERSION)
        return errbuf_set(eb, ERR_VERSION, "%s: protocol version other than %d", what,
                          SERVE_VERSION);
    if (root->via.array.size != arity || get_u64(&root->via.array.ptr[2], &v) != 0 ||
        v < SERVE_SCORE || v > SERVE_INFO ||
        root->via.array.ptr[arity - 1].type != MSGPACK_OBJECT_ARRAY)
        return errbuf_set(eb, ERR_PROTO, "%s: bad header (arity, type or body)", what);
    *type = (int)v;
    return 0;
}

int serve_codec_decode_req(serve_codec_t *c, serve_req_t *r, const void *data, size_t len,
                           errbuf_t *eb)
{
    msgpack_object root;
    const msgpack_object_array *body;
    int rc;

    memset(r, 0, sizeof(*r));
    rc = unpack(c, data, len, 5, "request", &root, &r->type, &r->id, eb);
    if (rc != 0)
        return rc;
    body = &root.via.array.ptr[4].via.array;
    switch (r->type) {
    case SERVE_SCORE: {
        const msgpack_object_array *ca;
        if (body->size != 2 || get_str(&body->ptr[0], &r->user) != 0 ||
            body->ptr[1].type != MSGPACK_OBJECT_ARRAY)
            return errbuf_set(eb, ERR_PROTO, "score request: body is not [user, [candidates]]");
        ca = &body->ptr[1].via.array;
        if (ca->size > SERVE_MAX_CANDIDATES)
            return errbuf_set(eb, ERR_TOOBIG, "score request: %u candidates (at most %d)", ca->size,
                              SERVE_MAX_CANDIDATES);
        if (ca->size > c->cap) {
            serve_str_t *n = realloc(c->cand, ca->size * sizeof(*n));
            if (!n)
                return errbuf_set(eb, ERR_NOMEM, "out of memory");
            c->cand = n;
            c->cap = ca->size;
        }
        for (uint32_t i = 0; i < ca->size; i++)
            if (get_str(&ca->ptr[i], &c->cand[i]) != 0)
                return errbuf_set(eb, ERR_PROTO, "score request: candidate %u is not a string", i);
        r->ncand = ca->size;
        r->cand = c->cand;
        return 0;
    }
    case SERVE_APPLY:
        if (body->size != 1 || get_str(&body->ptr[0], &r->path) != 0)
            return errbuf_set(eb, ERR_PROTO, "apply request: body is not [bundle_dir]");
        return 0;
    default: return 0; /* INFO: body ignored */
    }
}

int serve_codec_decode_rep(serve_codec_t *c, serve_rep_t *r, const void *data, size_t len,
                           errbuf_t *eb)
{
    msgpack_object root;
    const msgpack_object_array *body;
    int64_t v, w, st;
    int rc;

    memset(r, 0, sizeof(*r));
    rc = unpack(c, data, len, 6, "reply", &root, &r->type, &r->id, eb);
    if (rc != 0)
        return rc;
    body = &root.via.array.ptr[5].via.array;
    if (get_int(&root.via.array.ptr[4], &st) != 0 || st > 0 || st < -1000)
        return errbuf_set(eb, ERR_PROTO, "reply: bad status");
    r->status = (int)st;
    if (st != 0) {
        if (body->size != 1 || get_str(&body->ptr[0], &r->text) != 0)
            return errbuf_set(eb, ERR_PROTO, "error reply: body is not [text]");
        return 0;
    }
    switch (r->type) {
    case SERVE_SCORE: {
        uint64_t n;
        if (body->size != 4 || get_int(&body->ptr[0], &v) != 0 || get_int(&body->ptr[1], &w) != 0 ||
            get_u64(&body->ptr[2], &n) != 0 || body->ptr[3].type != MSGPACK_OBJECT_BIN ||
            (w != 3 && w != 4) || n > SERVE_MAX_CANDIDATES ||
            body->ptr[3].via.bin.size != n * (uint64_t)w * 4)
            return errbuf_set(eb, ERR_PROTO, "score reply: body is not [day, npred, n, preds]");
        r->day = (int)v;
        r->npred = (int)w;
        r->n = (uint32_t)n;
        r->pred_le = body->ptr[3].via.bin.ptr;
        return 0;
    }
    case SERVE_APPLY:
        if (body->size != 2 || get_int(&body->ptr[0], &v) != 0 ||
            get_str(&body->ptr[1], &r->text) != 0)
            return errbuf_set(eb, ERR_PROTO, "apply reply: body is not [day, text]");
        r->day = (int)v;
        return 0;
    default:
        if (body->size != 4 || get_int(&body->ptr[0], &v) != 0 ||
            get_u64(&body->ptr[1], &r->rows) != 0 || get_str(&body->ptr[2], &r->model) != 0 ||
            get_str(&body->ptr[3], &r->text) != 0)
            return errbuf_set(eb, ERR_PROTO, "info reply: body is not [day, rows, model, dir]");
        r->day = (int)v;
        return 0;
    }
}

float serve_rep_pred(const serve_rep_t *r, size_t i)
{
    return bytes_get_le_float((const unsigned char *)r->pred_le + 4 * i);
}
