/*
 * test_wire.c - the 16-bit wire option (issue 13, `wire_fp16`): the
 * binary16 and bfloat16 conversions of proto/half.h checked exhaustively
 * against their definition, the codec's MSG_F_HALF rows (sizes, refusals,
 * reply matching, fuzz seeds), and a real shard trained by a real worker
 * with wire_fp16 on: it trains, its rows pulled as 16-bit are the stored
 * float32 rows within binary16's precision, and the worker's own byte
 * counters show the row bytes halved against a float32 run on the same log.
 *
 * Every process is started with tu_spawn() and stopped in its test (or by
 * tu_stop_all() at exit); every file lives in the suite's scratch
 * directory, removed by teardown.
 */
#define _GNU_SOURCE /* memmem */
#include <CUnit/CUnit.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bytes.h"
#include "proto/codec.h"
#include "proto/half.h"
#include "proto/msg.h"
#include "table/emb_table.h"
#include "table/store.h"
#include "tests/util.h"
#include "tests/wire.h"

#define OPTS "--towers 16,8 --flush_interval 1"
#define NKEYS 200 /* rows compared fp16 against fp32 */

static char dir[512], psbin[600], wbin[600];

static int setup(void)
{
    tu_bin(psbin, sizeof(psbin), "funnel-ps");
    tu_bin(wbin, sizeof(wbin), "funnel-worker");
    return tu_world(dir, sizeof(dir), "wire", "--train 60000 --test 1000 --seed 7");
}

static int teardown(void)
{
    tu_stop_all();
    tu_rmtree(dir);
    return 0;
}

/* ---- conversions ---- */

static int is_even(uint16_t h)
{
    return (h & 1u) == 0;
}

/* Every binary16 value converts back to itself; every midpoint between
 * neighbours rounds to the even one, and a hair off it to the nearer. */
static void test_fp16_exhaustive(void)
{
    int bad = 0;

    for (uint32_t h = 0; h < 0x7c00u; h++) { /* positive finite, then mirrored */
        for (uint32_t sign = 0; sign <= 0x8000u; sign += 0x8000u) {
            uint16_t x = (uint16_t)(h | sign);
            float f = half_to_f32(x);
            if (half_from_f32(f) != x)
                bad++;
        }
        if (h + 1 >= 0x7c00u)
            continue;
        float lo = half_to_f32((uint16_t)h), hi = half_to_f32((uint16_t)(h + 1));
        float mid = (float)(((double)lo + (double)hi) / 2); /* exact in float32 */
        uint16_t even = is_even((uint16_t)h) ? (uint16_t)h : (uint16_t)(h + 1);
        if (half_from_f32(mid) != even || half_from_f32(-mid) != (uint16_t)(even | 0x8000u))
            bad++;
        if (half_from_f32(nextafterf(mid, 0.0f)) != h ||
            half_from_f32(nextafterf(mid, INFINITY)) != h + 1)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* saturation instead of infinity; NaN stays NaN */
    CU_ASSERT_EQUAL(half_from_f32(65519.0f), 0x7bffu);
    CU_ASSERT_EQUAL(half_from_f32(65520.0f), 0x7bffu);
    CU_ASSERT_EQUAL(half_from_f32(-1e30f), 0xfbffu);
    CU_ASSERT_EQUAL(half_from_f32(INFINITY), 0x7bffu);
    CU_ASSERT(isnan(half_to_f32(half_from_f32(NAN))));
    /* below half the smallest subnormal: zero, sign kept */
    CU_ASSERT_EQUAL(half_from_f32(2.9e-8f), 0x0000u);
    CU_ASSERT_EQUAL(half_from_f32(-2.9e-8f), 0x8000u);
    CU_ASSERT_EQUAL(half_from_f32(3.0e-8f), 0x0001u);
    CU_ASSERT_EQUAL(half_to_f32(0x3c00u), 1.0f);
    CU_ASSERT_EQUAL(half_to_f32(0x0001u), ldexpf(1.0f, -24));
}

static void test_bf16_exhaustive(void)
{
    int bad = 0;

    for (uint32_t b = 0; b < 0x10000u; b++) {
        uint16_t x = (uint16_t)b;
        float f = half_bf16_to_f32(x);
        if (isnan(f)) {
            if (!isnan(half_bf16_to_f32(half_bf16_from_f32(f))))
                bad++;
            continue;
        }
        if (half_bf16_from_f32(f) != x)
            bad++;
        if ((b & 0x7fffu) >= 0x7f80u) /* infinity: no upper neighbour */
            continue;
        /* the float32 exactly between x and x + 1 (same sign) */
        uint32_t midbits = ((uint32_t)b << 16) | 0x8000u;
        float mid = half_bits_f32(midbits);
        uint16_t even = is_even(x) ? x : (uint16_t)(x + 1);
        if (half_bf16_from_f32(mid) != even ||
            half_bf16_from_f32(half_bits_f32(midbits - 1)) != x ||
            half_bf16_from_f32(half_bits_f32(midbits + 1)) != (uint16_t)(x + 1))
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* the gradients binary16 would lose keep 8 significant bits */
    float g = 3.7e-7f;
    CU_ASSERT(fabsf(half_bf16_to_f32(half_bf16_from_f32(g)) - g) <= g * 0x1p-8f);
    CU_ASSERT(fabsf(half_to_f32(half_from_f32(g)) - g) > g * 0x1p-8f);
}

/* ---- codec ---- */

#define NK 3
#define DIM 4

static const uint64_t keys3[NK] = {0x1111, 0x2222, 0x3333};

static void half_push(msg_t *m, const void *rows, uint32_t flags)
{
    msg_init(m, MSG_PUSH, 1);
    m->hdr.sender = 1;
    m->hdr.seq = 1;
    m->u.rows.flags = flags;
    m->u.rows.nslots = 1;
    memset(&m->u.rows.slot[0], 0, sizeof(m->u.rows.slot[0]));
    m->u.rows.slot[0].slot = 2;
    m->u.rows.slot[0].nkeys = NK;
    m->u.rows.slot[0].dim = DIM;
    m->u.rows.slot[0].keys = keys3;
    m->u.rows.slot[0].rows = rows;
}

static void half_pull_ok(msg_t *m, const void *rows)
{
    msg_init(m, MSG_PULL_OK, 1);
    m->u.rows.flags = MSG_F_HALF;
    m->u.rows.nslots = 1;
    memset(&m->u.rows.slot[0], 0, sizeof(m->u.rows.slot[0]));
    m->u.rows.slot[0].slot = 2;
    m->u.rows.slot[0].nkeys = NK;
    m->u.rows.slot[0].dim = DIM;
    m->u.rows.slot[0].rows = rows;
}

static void test_codec_half(void)
{
    float v[NK * DIM], back[NK * DIM];
    unsigned char h16[NK * DIM * 2];
    codec_buf_t b32, b16;
    codec_dec_t *d = codec_dec_new(0);
    errbuf_t eb;
    msg_t m, r;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    codec_buf_init(&b32, 0);
    codec_buf_init(&b16, 0);
    for (int i = 0; i < NK * DIM; i++)
        v[i] = (float)(i - 5) * 0.0123f;
    half_encode_bf16(h16, v, NK * DIM);
    /* a 16-bit push is 2 bytes a float shorter, and decodes to its blob */
    half_push(&m, v, 0);
    CU_ASSERT_EQUAL_FATAL(codec_encode(&b32, &m, &eb), 0);
    half_push(&m, h16, MSG_F_HALF);
    CU_ASSERT_EQUAL_FATAL(codec_encode(&b16, &m, &eb), 0);
    /* (the flag itself costs a byte: 0x80 is a msgpack uint8, 0 a fixint) */
    CU_ASSERT_EQUAL(b32.len - b16.len, (size_t)NK * DIM * 2 - 1);
    CU_ASSERT_EQUAL_FATAL(codec_decode(d, &r, b16.data, b16.len, &eb), 0);
    CU_ASSERT_EQUAL(r.u.rows.flags, MSG_F_HALF);
    CU_ASSERT_EQUAL(memcmp(r.u.rows.slot[0].rows, h16, sizeof(h16)), 0);
    half_decode_bf16(back, r.u.rows.slot[0].rows, NK * DIM);
    for (int i = 0; i < NK * DIM; i++)
        CU_ASSERT(fabsf(back[i] - v[i]) <= fabsf(v[i]) * 0x1p-8f);
    /* the same bytes with the flag cleared: a blob half as long as declared */
    unsigned char *p = memmem(b16.data, b16.len, "\xcc\x80", 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p[1] = 0;
    CU_ASSERT_EQUAL(codec_decode(d, &r, b16.data, b16.len, &eb), ERR_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "rows"));
    /* 16-bit values to store are refused both ways */
    half_push(&m, h16, MSG_F_HALF | MSG_F_ASSIGN);
    CU_ASSERT_EQUAL(codec_encode(&b16, &m, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "HALF"));
    /* a 16-bit PULL_OK answers only a 16-bit PULL */
    msg_t q;
    msg_init(&q, MSG_PULL, 1);
    q.u.rows.nslots = 1;
    memset(&q.u.rows.slot[0], 0, sizeof(q.u.rows.slot[0]));
    q.u.rows.slot[0].slot = 2;
    q.u.rows.slot[0].nkeys = NK;
    q.u.rows.slot[0].keys = keys3;
    half_encode_fp16(h16, v, NK * DIM);
    half_pull_ok(&m, h16);
    CU_ASSERT_EQUAL(codec_check_reply(&q, &m, &eb), ERR_PROTO);
    q.u.rows.flags = MSG_F_HALF;
    CU_ASSERT_EQUAL(codec_check_reply(&q, &m, &eb), 0);
    /* HALF is not a flag of other row types */
    m.hdr.type = MSG_ROWS_OK;
    CU_ASSERT_EQUAL(codec_encode(&b16, &m, &eb), ERR_INVAL);
    codec_buf_release(&b32);
    codec_buf_release(&b16);
    codec_dec_destroy(&d);
}

/* The dense vector's 16-bit bodies: PUSH_DENSE of bf16 gradients and
 * PULL_DENSE_OK of fp16 weights are 2 bytes a float; an assignment is
 * refused; a 16-bit answer only to a 16-bit PULL_DENSE. */
static void test_codec_half_dense(void)
{
    enum { N = 40 };
    float v[N], back[N];
    unsigned char h16[N * 2];
    codec_buf_t b32, b16;
    codec_dec_t *d = codec_dec_new(0);
    errbuf_t eb;
    msg_t m, r, q;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    codec_buf_init(&b32, 0);
    codec_buf_init(&b16, 0);
    for (int i = 0; i < N; i++)
        v[i] = (float)(i - 7) * 0.031f;
    msg_init(&m, MSG_PUSH_DENSE, 1);
    m.hdr.sender = 1;
    m.hdr.seq = 1;
    m.u.dense.offset = 100;
    m.u.dense.count = N;
    m.u.dense.values = v;
    CU_ASSERT_EQUAL_FATAL(codec_encode(&b32, &m, &eb), 0);
    half_encode_bf16(h16, v, N);
    m.u.dense.flags = MSG_F_HALF;
    m.u.dense.values = h16;
    CU_ASSERT_EQUAL_FATAL(codec_encode(&b16, &m, &eb), 0);
    CU_ASSERT_EQUAL(b32.len - b16.len, (size_t)N * 2 - 1);
    CU_ASSERT_EQUAL_FATAL(codec_decode(d, &r, b16.data, b16.len, &eb), 0);
    CU_ASSERT_EQUAL(r.u.dense.flags, MSG_F_HALF);
    half_decode_bf16(back, r.u.dense.values, N);
    for (int i = 0; i < N; i++)
        CU_ASSERT(fabsf(back[i] - v[i]) <= fabsf(v[i]) * 0x1p-8f);
    m.u.dense.flags = MSG_F_HALF | MSG_F_ASSIGN;
    CU_ASSERT_EQUAL(codec_encode(&b16, &m, &eb), ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "HALF"));
    /* the reply to a pull of weights */
    msg_init(&q, MSG_PULL_DENSE, 2);
    q.u.dense.offset = 100;
    q.u.dense.count = N;
    half_encode_fp16(h16, v, N);
    msg_init(&m, MSG_PULL_DENSE_OK, 2);
    m.u.dense.flags = MSG_F_HALF;
    m.u.dense.offset = 100;
    m.u.dense.count = N;
    m.u.dense.values = h16;
    CU_ASSERT_EQUAL(codec_check_reply(&q, &m, &eb), ERR_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "32-bit values, answered with 16-bit"));
    q.u.dense.flags = MSG_F_HALF;
    CU_ASSERT_EQUAL(codec_check_reply(&q, &m, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(codec_encode(&b16, &m, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(codec_decode(d, &r, b16.data, b16.len, &eb), 0);
    half_decode_fp16(back, r.u.dense.values, N);
    for (int i = 0; i < N; i++)
        CU_ASSERT(fabsf(back[i] - v[i]) <= fabsf(v[i]) * 0x1p-11f);
    codec_buf_release(&b32);
    codec_buf_release(&b16);
    codec_dec_destroy(&d);
}

/*
 * Seeds of the codec fuzz target for the 16-bit bodies
 * (tests/fuzz/corpus/codec/HALF_*), compared like test_codec's; with
 * FUNNEL_FUZZ_SEEDS=DIR they are written there instead.
 */
static void test_fuzz_seeds(void)
{
    const char *write_dir = getenv("FUNNEL_FUZZ_SEEDS");
    const char *sdir = write_dir ? write_dir : "tests/fuzz/corpus/codec";
    float v[NK * DIM];
    unsigned char h16[NK * DIM * 2];
    codec_buf_t b;
    errbuf_t eb;
    msg_t m;

    for (int i = 0; i < NK * DIM; i++)
        v[i] = (float)i * 0.25f - 1.0f;
    codec_buf_init(&b, 0);
    static const char *const names[4] = {"PUSH", "PULL_OK", "PUSH_DENSE", "PULL_DENSE_OK"};
    for (int k = 0; k < 4; k++) {
        char path[600];
        size_t len = 0;
        char *seed;

        if (k == 0) {
            half_encode_bf16(h16, v, NK * DIM);
            half_push(&m, h16, MSG_F_HALF);
        } else if (k == 1) {
            half_encode_fp16(h16, v, NK * DIM);
            half_pull_ok(&m, h16);
        } else {
            (k == 2 ? half_encode_bf16 : half_encode_fp16)(h16, v, NK * DIM);
            msg_init(&m, k == 2 ? MSG_PUSH_DENSE : MSG_PULL_DENSE_OK, 1);
            m.hdr.sender = 1;
            m.hdr.seq = k == 2;
            m.u.dense.flags = MSG_F_HALF;
            m.u.dense.offset = 8;
            m.u.dense.count = NK * DIM;
            m.u.dense.values = h16;
        }
        CU_ASSERT_EQUAL_FATAL(codec_encode(&b, &m, &eb), 0);
        snprintf(path, sizeof(path), "%s/HALF_%s", sdir, names[k]);
        if (write_dir) {
            FILE *fp = fopen(path, "wb");
            CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
            CU_ASSERT_EQUAL(fwrite(b.data, 1, b.len, fp), b.len);
            CU_ASSERT_EQUAL(fclose(fp), 0);
            continue;
        }
        seed = tu_slurp(path, &len);
        if (!seed || len != b.len || memcmp(seed, b.data, len) != 0)
            fprintf(stderr,
                    "\n  %s is missing or stale: rewrite with "
                    "FUNNEL_FUZZ_SEEDS=tests/fuzz/corpus/codec bin/funnel-tests wire\n",
                    path);
        CU_ASSERT(seed && len == b.len && memcmp(seed, b.data, len) == 0);
        free(seed);
    }
    codec_buf_release(&b);
}

/* ---- a real shard and worker ---- */

/* The numbers of the worker's "wire bytes" log line in log: w = pull out,
 * pull in, push out, pull_dense in, push_dense out. Returns 0 or -1. */
static int wire_line(const char *log, unsigned long long w[5])
{
    char *text = tu_slurp(log, NULL), *at;
    unsigned long long n1, n2, n3, x;
    int rc = -1;

    if (text && (at = strstr(text, "wire bytes (")) != NULL && (at = strstr(at, "): pull ")) &&
        sscanf(at,
               "): pull %llu out %llu in (%llu requests), push %llu out %llu in (%llu), "
               "pull_dense %llu out %llu in (%llu), push_dense %llu out",
               &w[0], &w[1], &n1, &w[2], &x, &n2, &x, &w[3], &n3, &w[4]) == 10 &&
        n1 > 0 && n2 > 0 && n3 > 0)
        rc = 0;
    free(text);
    return rc;
}

/* Train the generated log on a fresh shard, fp16 or not; the shard is
 * left running (its pid in *pid), its endpoint in ep. */
static void train_on(const char *tag, int fp16, char *ep, size_t eplen, pid_t *pid,
                     unsigned long long w[5])
{
    char data[700], log[700], tlog[700];

    snprintf(data, sizeof(data), "%s/%s-data", dir, tag);
    snprintf(log, sizeof(log), "%s/%s-ps.log", dir, tag);
    snprintf(tlog, sizeof(tlog), "%s/%s-train.log", dir, tag);
    snprintf(ep, eplen, "ipc://%s/%s.sock", dir, tag);
    *pid = tu_spawn(log, "exec %s --shard 0 --shards 1 --listen %s --data %s %s", psbin, ep, data,
                    OPTS);
    CU_ASSERT_FATAL(*pid > 0);
    CU_ASSERT_EQUAL_FATAL(tu_sh(tlog,
                                "%s train --towers 16,8 --ps %s --wire_fp16 %s --metrics_file "
                                "%s/%s.jsonl %s/data/train.tsv",
                                wbin, ep, fp16 ? "true" : "false", dir, tag, dir),
                          0);
    CU_ASSERT_EQUAL_FATAL(wire_line(tlog, w), 0);
}

static void test_trains_and_round_trips(void)
{
    char ep16[700], ep32[700];
    unsigned long long w16[5], w32[5];
    pid_t p16, p32;
    tw_conn_t c;
    msg_t m, r;
    int checked = 0, bad = 0;

    train_on("fp16", 1, ep16, sizeof(ep16), &p16, w16);
    train_on("fp32", 0, ep32, sizeof(ep32), &p32, w32);
    CU_ASSERT_EQUAL(tu_stop(p32, SIGTERM), 0);
    /* the same keys went both ways: rows and gradients at 2 bytes a float */
    fprintf(stderr, "\n  pull in %llu / %llu bytes, push out %llu / %llu bytes (fp16 / fp32)\n",
            w16[1], w32[1], w16[2], w32[2]);
    CU_ASSERT(w16[0] >= w32[0] && w16[0] <= w32[0] + w32[0] / 100);
    CU_ASSERT(w16[1] * 10 < w32[1] * 6);
    CU_ASSERT(w16[2] * 10 < w32[2] * 7);
    /* the dense vector too: weights pulled as fp16, gradients pushed as bf16 */
    fprintf(stderr, "  pull_dense in %llu / %llu bytes, push_dense out %llu / %llu bytes\n", w16[3],
            w32[3], w16[4], w32[4]);
    CU_ASSERT(w16[3] * 10 < w32[3] * 6);
    CU_ASSERT(w16[4] * 10 < w32[4] * 6);
    /* rows pulled as binary16 are the float32 rows, rounded: keys from
     * the shard's store (flushed every second), rows from the shard */
    uint64_t keys[NKEYS];
    uint32_t n = 0;
    char data[700];
    errbuf_t eb;
    store_t *st = NULL;
    const void *k, *v;
    size_t kl, vl;
    sleep(2);
    snprintf(data, sizeof(data), "%s/fp16-data", dir);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&st, data, STORE_READONLY, "wire", &eb), 0);
    store_iter_t *it = store_iter_new(st, "r\0", 2); /* slot 0 */
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    while (n < NKEYS && store_iter_next(st, it, &k, &kl, &v, &vl))
        if (kl == EMB_KEY_LEN)
            keys[n++] = bytes_get_be64((const unsigned char *)k + 2);
    store_iter_destroy(st, &it);
    store_close(&st);
    CU_ASSERT_FATAL(n == NKEYS);
    CU_ASSERT_EQUAL_FATAL(tw_open(&c, ep16, NULL, NULL), 0);
    float exact[NKEYS * 16], half[NKEYS * 16];
    for (int k16 = 0; k16 < 2; k16++) {
        msg_init(&m, MSG_PULL, 0);
        m.u.rows.flags = MSG_F_READONLY | (k16 ? MSG_F_HALF : 0);
        m.u.rows.nslots = 1;
        memset(&m.u.rows.slot[0], 0, sizeof(m.u.rows.slot[0]));
        m.u.rows.slot[0].slot = 0;
        m.u.rows.slot[0].nkeys = n;
        m.u.rows.slot[0].keys = keys;
        CU_ASSERT_EQUAL_FATAL(tw_call(&c, &m, &r), 0);
        CU_ASSERT_EQUAL_FATAL(r.hdr.type, MSG_PULL_OK);
        CU_ASSERT_EQUAL(r.u.rows.flags, k16 ? MSG_F_HALF : 0u);
        CU_ASSERT_EQUAL_FATAL(r.u.rows.slot[0].dim, 16);
        if (k16)
            half_decode_fp16(half, r.u.rows.slot[0].rows, (size_t)n * 16);
        else
            memcpy(exact, r.u.rows.slot[0].rows, sizeof(exact));
    }
    for (size_t i = 0; i < (size_t)n * 16; i++) {
        float e = exact[i], tol = fmaxf(fabsf(e) * 0x1p-11f, 0x1p-25f);
        bad += !(fabsf(half[i] - e) <= tol);
        checked += e != 0.0f;
    }
    CU_ASSERT(checked > NKEYS * 8); /* trained rows, not zeros */
    CU_ASSERT_EQUAL(bad, 0);
    tw_close(&c);
    CU_ASSERT_EQUAL(tu_stop(p16, SIGTERM), 0);
}

int test_wire_register(void)
{
    CU_pSuite s = CU_add_suite("wire", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "binary16: every value round-trips, midpoints round to even, saturates",
                test_fp16_exhaustive);
    CU_add_test(s, "bfloat16: every value round-trips, midpoints round to even",
                test_bf16_exhaustive);
    CU_add_test(s, "codec: 16-bit rows are 2 bytes a float; wrong length, assign refused",
                test_codec_half);
    CU_add_test(s, "codec: 16-bit dense values are 2 bytes a float; assign refused",
                test_codec_half_dense);
    CU_add_test(s, "fuzz seeds of the 16-bit bodies are current", test_fuzz_seeds);
    CU_add_test(s, "wire_fp16 trains; rows round-trip within fp16; row bytes halved",
                test_trains_and_round_trips);
    return CU_get_error();
}
