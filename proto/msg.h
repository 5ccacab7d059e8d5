/*
 * msg.h - funnel's wire protocol between workers, tools and parameter-server
 * shards: the message types (listed once), the decoded/encodable message
 * structs and the protocol version. codec.h turns a msg_t into bytes and
 * back; this header has no code beyond small inline helpers and includes no
 * third-party header.
 *
 * Thread-safety: everything here is pure or works on caller-owned memory.
 *
 * NOTES ON THE DESIGN
 *
 *   Framing. One message is one msgpack array, nothing before or after it:
 *
 *     [magic, version, type, req_id, sender, seq, body]
 *
 *   magic is MSG_MAGIC, version MSG_VERSION. The first four elements keep
 *   their meaning in every future version, so a peer speaking another
 *   version is told ERR_VERSION (not a confusing parse error) and its
 *   request id can still be echoed in an ERROR reply. A reply echoes the
 *   request's req_id. sender is the worker rank (MSG_SENDER_TOOL for tools)
 *   and seq that sender's push sequence number: it starts at 1 and grows by
 *   one per PUSH or PUSH_DENSE (one counter for both); a shard applies a
 *   push only if seq is above the last one it applied for that sender and
 *   otherwise answers ACK with MSG_F_DUPLICATE, so a retried push is applied
 *   once. Pushes must carry seq >= 1; other messages do not use it (0).
 *
 *   Bodies are msgpack arrays of fixed arity per body kind (MSG_BODIES):
 *
 *     HELLO    [flags, shard, nshards, emb_optim, dense_optim, dense_size,
 *               day, [[name, dim, admit_min, expire_days] ...],
 *               params, model_type, ntowers, [layer ...]]
 *              (params: bin of 16 float32, the embedding then the dense
 *              optimizer's lr, eps, beta1, beta2, ftrl_beta, l1, l2,
 *              init_std; model_type MODEL_*, ntowers its towers, layer
 *              the hidden sizes of every tower, so that a mismatch names
 *              the model types and towers, not only dense float counts)
 *     ROWS     [flags, cursor, [[slot, nkeys, dim, keys, rows, counts,
 *               meta] ...], pos]         (one entry per slot present)
 *     DENSE    [flags, offset, count, values, pos]
 *     PROGRESS [rank, found, epoch, file, offset, line, samples]
 *     CMD      [flags, day, text]
 *     KV       [flags, [[name, value] ...]]   (value: uint64 or string)
 *     SCAN     [slot, flags, cursor, limit]
 *     ERROR    [code, text]
 *
 *   pos is [] or, on a PUSH or PUSH_DENSE of a training batch, [last,
 *   epoch, file, offset, line, samples]: the sender's reader position just
 *   after that batch (samples >= 1: what the sender has trained with it),
 *   last = 1 on the batch's final push to this shard. A shard records it
 *   with the push, in the same step, and skips a push whose (samples,
 *   last) it has already passed (server.h, "Exactly-once samples").
 *   Version 2 added pos; version 3 added HELLO's model_type, ntowers and
 *   layers. A peer of another version is told ERR_VERSION.
 *
 *   Binary data. Keys, float rows, occurrence counts and row metadata are
 *   msgpack bin blobs holding packed little-endian values (uint64 keys,
 *   IEEE-754 float32 rows, uint32 counts, msg_row_meta_t records), never
 *   msgpack arrays of numbers: an array costs a type byte and a branch per
 *   float on both sides and an object per float when decoded (bench_codec
 *   measures the difference). Only little-endian hosts are supported (checked
 *   at compile time below); a big-endian port would swap in codec.c.
 *
 *   Blobs in a decoded message point into the received buffer, which is
 *   not aligned for uint64 or float: read them with the msg_*_get()
 *   helpers below (memcpy, one plain load on x86), never by casting.
 *
 *   ROWS entries. Slots appear in strictly increasing slot order, each at
 *   most once. Which blobs an entry carries depends on the message type;
 *   the others are empty (length 0) and their pointer NULL when decoded:
 *
 *     type      dim              keys     rows           counts       meta
 *     PULL      0                nkeys*8  -              -            -
 *     ROWS_GET  0                nkeys*8  -              -            -
 *     PULL_OK   slot dim (>= 1)  -        nkeys*dim*4    -            -
 *     PUSH      row width (>= 1) nkeys*8  nkeys*dim*4    0 or nkeys*4 -
 *     ROWS_OK   row width (>= 0) nkeys*8  nkeys*dim*4    -            nkeys*32
 *
 *   A PULL_OK mirrors its PULL: the same slots in the same order, rows in
 *   request key order (codec_check_reply() verifies it). PUSH rows are
 *   gradients (width = slot dim), or with MSG_F_ASSIGN values to store
 *   (width = dim, or dim + optimizer state with MSG_F_STATE). counts, when
 *   present, are each key's occurrences in the batch (admission counting);
 *   absent means 1 per key. ROWS_OK rows are the embedding, followed by the
 *   optimizer state when the request had MSG_F_STATE; its cursor is the
 *   SCAN position to continue from (0: the scan is complete).
 *
 *   CMD is the one body of every control request: FLUSH (nothing), STATS
 *   (text: name prefix filter, "" for all), CHECKPOINT (day, text: a name,
 *   never a path: the shard writes under its own checkpoint_root, and its
 *   ACK says where in the string counter "path"), EXPORT (day, text:
 *   target path; MSG_F_DELTA: only rows created, changed or deleted since
 *   the previous export, else all rows), BEGIN_DAY (day; MSG_F_EXPIRE: also
 *   delete rows unseen past their slot's expiry, as tombstones for the next
 *   delta) and SHUTDOWN. Their ACK may carry result counters in its KV list
 *   ("rows", "tombstones", "bytes",
 *   ...), the same representation as STATS_OK, so new results need no new
 *   message type.
 *
 *   16-bit rows (MSG_F_HALF, the worker's `wire_fp16`). A PULL with the
 *   flag asks for its rows as IEEE-754 binary16; its PULL_OK carries the
 *   flag and a rows blob of nkeys*dim*2 bytes. A PUSH of gradients with
 *   the flag carries them as bfloat16, nkeys*dim*2 bytes (not with
 *   MSG_F_ASSIGN: values to store always travel as float32). Why two
 *   formats, and the rounding: proto/half.h. Tables and optimizers stay
 *   float32: a shard narrows what it sends and widens what it gets. The
 *   dense vector goes the same way: a PULL_DENSE with the flag is answered
 *   by a PULL_DENSE_OK with the flag and count*2 bytes of binary16 values,
 *   and a PUSH_DENSE of gradients with the flag carries count*2 bytes of
 *   bfloat16 (an assignment never does). The shard keeps float32 master
 *   weights; a worker computes with their binary16 rounding.
 *   The flag changes nothing else in the framing, so MSG_VERSION stays; a
 *   shard of an older build refuses the unknown flag (ERR_PROTO naming
 *   it), never misreads the blob.
 *
 *   Limits are checked by the decoder before it trusts any declared length:
 *   the whole message against the receiver's maximum, then every length
 *   and count against the bytes that remain (codec.h).
 */
#ifndef FUNNEL_MSG_H
#define FUNNEL_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/model_conf.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "funnel's wire format is little-endian; this host needs byte swapping in proto/codec.c"
#endif

#define MSG_MAGIC 0x464e4cu /* "FNL" */
#define MSG_VERSION 3u

#define MSG_MAX_DIM 65536u          /* floats per row on the wire (embedding + state) */
#define MSG_MAX_TEXT 4096u          /* bytes of a path, error text or string value */
#define MSG_MAX_NAME 256u           /* bytes of a counter name */
#define MSG_SENDER_TOOL 0xffffffffu /* sender of tools (funnel-emb, scripts) */

/* Flags, one namespace; the X-macro says which each type accepts. */
#define MSG_F_PROBE 0x01u     /* HELLO: learn the peer's layout, assert nothing */
#define MSG_F_READONLY 0x02u  /* PULL: create no row, count no sighting (predict) */
#define MSG_F_STATE 0x04u     /* rows carry optimizer state after the embedding */
#define MSG_F_ASSIGN 0x08u    /* PUSH, PUSH_DENSE: values to store, not gradients */
#define MSG_F_DELTA 0x10u     /* EXPORT: delta since the previous export (else full) */
#define MSG_F_EXPIRE 0x20u    /* BEGIN_DAY: expire unseen rows */
#define MSG_F_DUPLICATE 0x40u /* ACK: the push was a retry already applied */
#define MSG_F_HALF 0x80u      /* rows blob of 16-bit floats (wire_fp16; see the notes) */

/*
 * Message types: X(name, code, reply, body, flags, description).
 * reply is the type that answers a request (NONE for replies); body the
 * body kind; flags the MSG_F_* bits the type may carry. Codes are on the
 * wire: never renumber, only append.
 */
#define MSG_TYPES(X)                                                                              \
    X(HELLO, 1, HELLO_OK, HELLO, MSG_F_PROBE,                                                     \
      "handshake: shard id and count, table layout, optimizers, dense size")                      \
    X(HELLO_OK, 2, NONE, HELLO, 0, "handshake reply: the shard's own layout, compared both ways") \
    X(PULL, 3, PULL_OK, ROWS, MSG_F_READONLY | MSG_F_HALF, "pull embedding rows: per slot, keys") \
    X(PULL_OK, 4, NONE, ROWS, MSG_F_HALF, "pulled rows: per slot, rows in request key order")     \
    X(PUSH, 5, ACK, ROWS, MSG_F_ASSIGN | MSG_F_STATE | MSG_F_HALF,                                \
      "push gradients: per slot, keys, gradient rows, occurrence counts")                         \
    X(PULL_DENSE, 6, PULL_DENSE_OK, DENSE, MSG_F_HALF,                                            \
      "pull a range of the dense parameter vector")                                               \
    X(PULL_DENSE_OK, 7, NONE, DENSE, MSG_F_HALF, "the values of a dense range")                   \
    X(PUSH_DENSE, 8, ACK, DENSE, MSG_F_ASSIGN | MSG_F_HALF,                                       \
      "push a gradient (or values) for a dense range")                                            \
    X(PROGRESS_SET, 9, ACK, PROGRESS, 0, "record a worker's reader position")                     \
    X(PROGRESS_GET, 10, PROGRESS_OK, PROGRESS, 0, "ask for a worker's last reader position")      \
    X(PROGRESS_OK, 11, NONE, PROGRESS, 0, "a worker's reader position, if one was recorded")      \
    X(STATS, 12, STATS_OK, CMD, 0, "ask for the counters whose name starts with text")            \
    X(STATS_OK, 13, NONE, KV, 0, "counters: name -> uint64 or string")                            \
    X(FLUSH, 14, ACK, CMD, 0, "write dirty rows to the durable store now")                        \
    X(CHECKPOINT, 15, ACK, CMD, 0, "write a consistent checkpoint of day named text")             \
    X(EXPORT, 16, ACK, CMD, MSG_F_DELTA, "export rows of day (full or delta) to path text")       \
    X(BEGIN_DAY, 17, ACK, CMD, MSG_F_EXPIRE, "set the current day; optionally expire stale rows") \
    X(ROWS_GET, 18, ROWS_OK, ROWS, MSG_F_STATE, "inspect rows: per slot, keys")                   \
    X(SCAN, 19, ROWS_OK, SCAN, MSG_F_STATE, "iterate over a slot's rows from a cursor")           \
    X(ROWS_OK, 20, NONE, ROWS, MSG_F_STATE, "inspected rows: keys, metadata, values, cursor")     \
    X(SHUTDOWN, 21, ACK, CMD, 0, "flush and stop the shard")                                      \
    X(ACK, 22, NONE, KV, MSG_F_DUPLICATE, "request done; optional result counters")               \
    X(ERROR, 23, NONE, ERROR, 0, "request failed: ERR_* code and message")

enum {
    MSG_NONE = 0,
#define X(name, code, reply, body, flags, desc) MSG_##name = (code),
    MSG_TYPES(X)
#undef X
        MSG_TYPE_END /* one past the largest code */
};

/* Body kinds: X(name, description). */
#define MSG_BODIES(X)                           \
    X(HELLO, "handshake: layout")               \
    X(ROWS, "per-slot keys and rows")           \
    X(DENSE, "range of the dense vector")       \
    X(PROGRESS, "worker reader position")       \
    X(CMD, "control request: flags, day, text") \
    X(KV, "list of counters")                   \
    X(SCAN, "table iteration request")          \
    X(ERROR, "error code and text")

enum {
#define X(name, desc) MSG_BODY_##name,
    MSG_BODIES(X)
#undef X
        MSG_BODY_END
};

/* Row status in ROWS_OK metadata: why a key has (no) row. */
enum {
    MSG_ROW_RESIDENT = 0, /* row in memory */
    MSG_ROW_STORED = 1,   /* row only in the durable store */
    MSG_ROW_NEVER = 2,    /* key never seen */
    MSG_ROW_PENDING = 3,  /* seen `seen` times, not admitted yet */
    MSG_ROW_EXPIRED = 4,  /* row deleted by expiry on `expired_day` */
};

/*
 * One ROWS_OK metadata record, 32 bytes little-endian, packed (no padding).
 */
typedef struct msg_row_meta {
    uint32_t status;     /* MSG_ROW_* */
    uint32_t seen;       /* sightings counted toward admission */
    uint64_t updates;    /* gradient steps applied to the row */
    int32_t first_day;   /* day the row was created; -1: unknown */
    int32_t last_day;    /* day the key was last seen; -1: unknown */
    int32_t expired_day; /* MSG_ROW_EXPIRED: day of deletion; else -1 */
    uint32_t reserved;   /* 0 */
} msg_row_meta_t;

_Static_assert(sizeof(msg_row_meta_t) == 32, "msg_row_meta_t is a 32-byte wire record");

typedef struct msg_hdr {
    uint32_t version; /* MSG_VERSION (decoded: the peer's version) */
    int type;         /* MSG_* */
    uint64_t req_id;  /* chosen by the requester, echoed by the reply */
    uint32_t sender;  /* worker rank, or MSG_SENDER_TOOL */
    uint64_t seq;     /* push sequence number of sender, >= 1; 0 for non-pushes */
} msg_hdr_t;

/* A byte string; not NUL-terminated when decoded (it points into the buffer). */
typedef struct msg_str {
    const char *ptr;
    uint32_t len; /* bytes */
} msg_str_t;

/* Optimizer parameters in HELLO, in this order (optim_t's fields). */
#define MSG_HELLO_PARAMS 8 /* lr, eps, beta1, beta2, ftrl_beta, l1, l2, init_std */

typedef struct msg_hello_slot {
    char name[MODEL_SLOT_NAME_MAX]; /* NUL-terminated slot name */
    uint32_t dim;                   /* floats per embedding row */
    uint32_t admit_min;             /* sightings before a row is created */
    uint32_t expire_days;           /* days unseen before expiry; 0: never */
} msg_hello_slot_t;

typedef struct msg_hello {
    uint32_t flags;       /* MSG_F_PROBE */
    uint32_t shard;       /* shard index (the one expected, or this one) */
    uint32_t nshards;     /* shards in the cluster */
    uint32_t emb_optim;   /* OPTIM_* of embedding rows */
    uint32_t dense_optim; /* OPTIM_* of dense weights */
    uint64_t dense_size;  /* floats in the whole dense vector (all shards) */
    int32_t day;          /* current day; -1: none */
    uint32_t nslots;      /* <= MODEL_MAX_SLOTS */
    msg_hello_slot_t slot[MODEL_MAX_SLOTS];
    int has_params;                       /* 0: the peer sent no optimizer parameters */
    float emb_params[MSG_HELLO_PARAMS];   /* MSG_HELLO_PARAMS order, finite */
    float dense_params[MSG_HELLO_PARAMS]; /* MSG_HELLO_PARAMS order, finite */
    uint32_t model_type;                  /* MODEL_* (version 3) */
    uint32_t ntowers;                     /* towers of that model type */
    uint32_t nlayers;                     /* hidden layers per tower, <= MODEL_MAX_LAYERS */
    uint32_t layer[MODEL_MAX_LAYERS];     /* hidden sizes, each >= 1 */
} msg_hello_t;

/* A training batch's end in its sender's input, carried by its pushes. */
typedef struct msg_pos {
    uint32_t has;     /* 1: the push belongs to a training batch ending here; 0: [] */
    uint32_t last;    /* 1: the batch's final push to this shard: complete there */
    uint32_t epoch;   /* passes over the input completed */
    uint32_t file;    /* data file index (reader_pos_t.file) */
    uint64_t offset;  /* bytes, uncompressed, into that file */
    uint64_t line;    /* lines before offset; 0 with offset > 0: unknown */
    uint64_t samples; /* samples the sender has trained with this batch, >= 1 */
} msg_pos_t;

typedef struct msg_slot {
    uint32_t slot;      /* index into the table layout */
    uint32_t nkeys;     /* keys in this entry */
    uint32_t dim;       /* floats per row in `rows` (see the table above) */
    const void *keys;   /* nkeys uint64 LE, or NULL */
    const void *rows;   /* nkeys*dim float32 LE, or NULL */
    const void *counts; /* nkeys uint32 LE (PUSH), or NULL: 1 per key */
    const void *meta;   /* nkeys msg_row_meta_t (ROWS_OK), or NULL */
} msg_slot_t;

typedef struct msg_rows {
    uint32_t flags;  /* MSG_F_* allowed by the type */
    uint64_t cursor; /* ROWS_OK: where a SCAN continues; 0: done */
    uint32_t nslots; /* entries in slot[], <= MODEL_MAX_SLOTS */
    msg_slot_t slot[MODEL_MAX_SLOTS];
    msg_pos_t pos; /* PUSH: the batch's position, else has = 0 */
} msg_rows_t;

typedef struct msg_dense {
    uint32_t flags;     /* MSG_F_ASSIGN (PUSH_DENSE), MSG_F_HALF */
    uint64_t offset;    /* first float of the range in the dense vector */
    uint64_t count;     /* floats in the range */
    const void *values; /* count float32 LE (MSG_F_HALF: 16-bit); NULL for PULL_DENSE */
    msg_pos_t pos;      /* PUSH_DENSE: the batch's position, else has = 0 */
} msg_dense_t;

typedef struct msg_progress {
    uint32_t rank;    /* worker rank the position belongs to */
    uint32_t found;   /* PROGRESS_OK: 1 if a position was recorded */
    uint32_t epoch;   /* passes over the input completed */
    uint32_t file;    /* data file index (reader_pos_t.file) */
    uint64_t offset;  /* bytes, uncompressed, into that file */
    uint64_t line;    /* lines before offset; 0 with offset > 0: unknown */
    uint64_t samples; /* samples trained by this rank so far */
} msg_progress_t;

typedef struct msg_cmd {
    uint32_t flags; /* MSG_F_DELTA (EXPORT), MSG_F_EXPIRE (BEGIN_DAY) */
    int32_t day;    /* CHECKPOINT, EXPORT, BEGIN_DAY; -1 otherwise */
    msg_str_t text; /* path (CHECKPOINT, EXPORT), prefix (STATS); no NUL bytes */
} msg_cmd_t;

typedef struct msg_kv {
    msg_str_t name; /* counter name, 1..MSG_MAX_NAME bytes */
    int is_str;     /* 1: the value is str, else u64 */
    uint64_t u64;
    msg_str_t str;
} msg_kv_t;

typedef struct msg_kvlist {
    uint32_t flags;     /* MSG_F_DUPLICATE (ACK) */
    uint32_t n;         /* entries */
    const msg_kv_t *kv; /* n entries (decoded: in the decoder's arena) */
} msg_kvlist_t;

typedef struct msg_scan {
    uint32_t slot;   /* slot to iterate */
    uint32_t flags;  /* MSG_F_STATE */
    uint64_t cursor; /* 0: from the start, else a ROWS_OK cursor */
    uint32_t limit;  /* most rows in the reply */
} msg_scan_t;

typedef struct msg_error {
    int32_t code;   /* negative ERR_* of the peer */
    msg_str_t text; /* what went wrong */
} msg_error_t;

typedef struct msg {
    msg_hdr_t hdr;
    union {
        msg_hello_t hello;
        msg_rows_t rows;
        msg_dense_t dense;
        msg_progress_t progress;
        msg_cmd_t cmd;
        msg_kvlist_t kv;
        msg_scan_t scan;
        msg_error_t error;
    } u; /* the member named by msg_type_body(hdr.type) */
} msg_t;

/* Name of a type ("PULL"), or "UNKNOWN". */
static inline const char *msg_type_name(int type)
{
    switch (type) {
#define X(name, code, reply, body, flags, desc) \
    case MSG_##name: return #name;
        MSG_TYPES(X)
#undef X
    }
    return "UNKNOWN";
}

/* One-line description of a type, or "unknown message type". */
static inline const char *msg_type_desc(int type)
{
    switch (type) {
#define X(name, code, reply, body, flags, desc) \
    case MSG_##name: return desc;
        MSG_TYPES(X)
#undef X
    }
    return "unknown message type";
}

/* Reply type of a request; MSG_NONE for replies and unknown types. */
static inline int msg_type_reply(int type)
{
    switch (type) {
#define X(name, code, reply, body, flags, desc) \
    case MSG_##name: return MSG_##reply;
        MSG_TYPES(X)
#undef X
    }
    return MSG_NONE;
}

/* Body kind (MSG_BODY_*) of a type; -1 for unknown types. */
static inline int msg_type_body(int type)
{
    switch (type) {
#define X(name, code, reply, body, flags, desc) \
    case MSG_##name: return MSG_BODY_##body;
        MSG_TYPES(X)
#undef X
    }
    return -1;
}

/* MSG_F_* bits a type may carry; 0 for unknown types. */
static inline uint32_t msg_type_flags(int type)
{
    switch (type) {
#define X(name, code, reply, body, flags, desc) \
    case MSG_##name: return (flags);
        MSG_TYPES(X)
#undef X
    }
    return 0;
}

/* 1 if type is a known request type (it has a reply type). */
static inline int msg_type_is_request(int type)
{
    return msg_type_reply(type) != MSG_NONE;
}

/* Clear m and set its header for type: current version, day fields -1. */
static inline void msg_init(msg_t *m, int type, uint64_t req_id)
{
    memset(&m->hdr, 0, sizeof(m->hdr));
    m->hdr.version = MSG_VERSION;
    m->hdr.type = type;
    m->hdr.req_id = req_id;
    switch (msg_type_body(type)) {
    case MSG_BODY_HELLO:
        memset(&m->u.hello, 0, sizeof(m->u.hello));
        m->u.hello.day = -1;
        break;
    case MSG_BODY_ROWS:
        /* Only used entries are read: no need to clear all 64 of them. */
        m->u.rows.flags = 0;
        m->u.rows.cursor = 0;
        m->u.rows.nslots = 0;
        memset(&m->u.rows.pos, 0, sizeof(m->u.rows.pos));
        break;
    case MSG_BODY_DENSE: memset(&m->u.dense, 0, sizeof(m->u.dense)); break;
    case MSG_BODY_PROGRESS: memset(&m->u.progress, 0, sizeof(m->u.progress)); break;
    case MSG_BODY_CMD:
        memset(&m->u.cmd, 0, sizeof(m->u.cmd));
        m->u.cmd.day = -1;
        break;
    case MSG_BODY_KV: memset(&m->u.kv, 0, sizeof(m->u.kv)); break;
    case MSG_BODY_SCAN: memset(&m->u.scan, 0, sizeof(m->u.scan)); break;
    case MSG_BODY_ERROR: memset(&m->u.error, 0, sizeof(m->u.error)); break;
    }
}

/* Key i of a keys blob. */
static inline uint64_t msg_key_get(const void *keys, size_t i)
{
    uint64_t k;

    memcpy(&k, (const unsigned char *)keys + i * 8, 8);
    return k;
}

/* Copy row i (dim floats) of a rows blob into dst. */
static inline void msg_row_get(float *dst, const void *rows, size_t i, size_t dim)
{
    memcpy(dst, (const unsigned char *)rows + i * dim * 4, dim * 4);
}

/* Bytes per float of a ROWS body's rows blob: 2 with MSG_F_HALF, else 4. */
static inline size_t msg_row_elem(uint32_t flags)
{
    return (flags & MSG_F_HALF) ? 2 : 4;
}

/* Occurrence count of key i; 1 when the counts blob is absent (NULL). */
static inline uint32_t msg_count_get(const void *counts, size_t i)
{
    uint32_t c;

    if (counts == NULL)
        return 1;
    memcpy(&c, (const unsigned char *)counts + i * 4, 4);
    return c;
}

/* Metadata record i of a ROWS_OK meta blob. */
static inline void msg_row_meta_get(msg_row_meta_t *out, const void *meta, size_t i)
{
    memcpy(out, (const unsigned char *)meta + i * sizeof(*out), sizeof(*out));
}

#endif
