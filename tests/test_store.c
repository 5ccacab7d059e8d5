/*
 * test_store.c - the store vtable (store.h) on both implementations:
 * write batches (put and delete in one call), MultiGet with present and
 * absent keys, prefix iteration in byte order, RocksDB checkpoints opened
 * and read back, a read-only handle beside a writing one, the translation
 * of RocksDB errors, and a differential run of the RocksDB store against
 * the in-memory store under random batches with a fixed seed.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/store.h"
#include "tests/util.h"

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Value of key k (1 if present) into v/vl; the caller frees v. */
static int get1(store_t *s, const char *k, char **v, size_t *vl)
{
    void *p = NULL;
    int rc = store_get(s, k, strlen(k), &p, vl, NULL);
    *v = p;
    return rc;
}

static int value_is(store_t *s, const char *k, const char *want)
{
    char *v = NULL;
    size_t vl = 0;
    int ok = get1(s, k, &v, &vl) == 0 && vl == strlen(want) && memcmp(v, want, vl) == 0;
    free(v);
    return ok;
}

/* Keys and values under prefix, "k=v;" each, into buf. Returns the count. */
static int listing(store_t *s, const char *prefix, char *buf, size_t cap)
{
    store_iter_t *it = store_iter_new(s, prefix, strlen(prefix));
    const void *k, *v;
    size_t kl, vl, used = 0;
    int n = 0;

    buf[0] = 0;
    if (!it)
        return -1;
    while (store_iter_next(s, it, &k, &kl, &v, &vl) == 1) {
        if (used < cap) /* count past a full buffer, never write past it */
            used += (size_t)snprintf(buf + used, cap - used, "%.*s=%.*s;", (int)kl, (const char *)k,
                                     (int)vl, (const char *)v);
        n++;
    }
    store_iter_destroy(s, &it);
    CU_ASSERT_PTR_NULL(it);
    return n;
}

/* The basic contract, run on every implementation. */
static void check_basics(store_t *s)
{
    errbuf_t eb = {{0}};
    char buf[1024];
    store_op_t ops[] = {
        {"b1", 2, "B1", 2}, {"a2", 2, "A2", 2},   {"a1", 2, "A1", 2},
        {"c", 1, "", 0},    {"a10", 3, "A10", 3},
    };

    CU_ASSERT_EQUAL(store_write(s, ops, 5, 0, &eb), 0);
    CU_ASSERT(value_is(s, "a1", "A1"));
    CU_ASSERT(value_is(s, "c", "")); /* an empty value is a value */

    /* MultiGet: present, absent, present */
    const void *keys[3] = {"a2", "zz", "b1"};
    size_t kl[3] = {2, 2, 2}, vl[3];
    void *vals[3];
    CU_ASSERT_EQUAL(store_multiget(s, 3, keys, kl, vals, vl, &eb), 0);
    CU_ASSERT(vals[0] && vl[0] == 2 && memcmp(vals[0], "A2", 2) == 0);
    CU_ASSERT_PTR_NULL(vals[1]);
    CU_ASSERT(vals[2] && vl[2] == 2 && memcmp(vals[2], "B1", 2) == 0);
    for (int i = 0; i < 3; i++)
        free(vals[i]);

    /* byte order, prefix bounds */
    CU_ASSERT_EQUAL(listing(s, "a", buf, sizeof(buf)), 3);
    CU_ASSERT_STRING_EQUAL(buf, "a1=A1;a10=A10;a2=A2;");
    CU_ASSERT_EQUAL(listing(s, "", buf, sizeof(buf)), 5);
    CU_ASSERT_STRING_EQUAL(buf, "a1=A1;a10=A10;a2=A2;b1=B1;c=;");
    CU_ASSERT_EQUAL(listing(s, "d", buf, sizeof(buf)), 0);

    /* one batch: overwrite, delete, delete of an absent key, put */
    store_op_t ops2[] = {
        {"a1", 2, "new", 3}, {"a2", 2, NULL, 0}, {"nope", 4, NULL, 0}, {"d", 1, "D", 1}};
    CU_ASSERT_EQUAL(store_write(s, ops2, 4, 1, &eb), 0);
    CU_ASSERT(value_is(s, "a1", "new"));
    char *v = NULL;
    size_t l;
    CU_ASSERT_EQUAL(get1(s, "a2", &v, &l), ERR_NOTFOUND);
    CU_ASSERT_EQUAL(listing(s, "", buf, sizeof(buf)), 5);
    CU_ASSERT_STRING_EQUAL(buf, "a1=new;a10=A10;b1=B1;c=;d=D;");

    /* store_put is a batch of one */
    CU_ASSERT_EQUAL(store_put(s, "m:x", 3, "42", 2, 1, &eb), 0);
    CU_ASSERT(value_is(s, "m:x", "42"));
}

static void test_mem_basics(void)
{
    store_t *s = NULL;
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL_FATAL(store_mem_open(&s, &eb), 0);
    check_basics(s);
    /* the in-memory store has no checkpoints and says so */
    CU_ASSERT_EQUAL(store_checkpoint(s, "/nonexistent/ckpt", &eb), ERR_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "/nonexistent/ckpt"));
    store_close(&s);
    CU_ASSERT_PTR_NULL(s);
    store_close(&s); /* NULL is fine */
}

static void test_rocks_basics_and_reopen(void)
{
    char dir[512], path[600];
    store_t *s = NULL;
    errbuf_t eb = {{0}};
    char buf[1024];

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "store"), 0);
    snprintf(path, sizeof(path), "%s/db", dir);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&s, path, STORE_CREATE, "shard 3 db", &eb), 0);
    check_basics(s);
    store_close(&s);
    /* everything is there after a reopen */
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&s, path, 0, "shard 3 db", &eb), 0);
    CU_ASSERT_EQUAL(listing(s, "", buf, sizeof(buf)), 6);
    CU_ASSERT_STRING_EQUAL(buf, "a1=new;a10=A10;b1=B1;c=;d=D;m:x=42;");
    store_close(&s);
    tu_rmtree(dir);
}

static void test_rocks_errors(void)
{
    char dir[512], path[600];
    store_t *s = NULL;
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "store"), 0);
    snprintf(path, sizeof(path), "%s/missing", dir);
    /* no STORE_CREATE: a missing store is an error naming shard, action, path */
    CU_ASSERT_EQUAL(store_rocks_open(&s, path, 0, "shard 2", &eb), ERR_STORE);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "shard 2: open "));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, path));
    /* RocksDB's text is translated (meaning and fix), and kept after it */
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "there is no store here: give the data directory"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "(RocksDB: "));
    CU_ASSERT_EQUAL(store_rocks_open(&s, path, STORE_READONLY, "shard 2", &eb), ERR_STORE);
    CU_ASSERT_PTR_NULL(s);
    /* a second writer of the same directory is refused (RocksDB's lock) */
    store_t *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&a, path, STORE_CREATE, "shard 2", &eb), 0);
    CU_ASSERT_EQUAL(store_rocks_open(&b, path, 0, "shard 2", &eb), ERR_STORE);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "shard 2: open "));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "already has the store open"));
    CU_ASSERT_PTR_NULL(b);
    /* a checkpoint into an existing directory fails with the target named */
    CU_ASSERT_EQUAL(store_checkpoint(a, dir, &eb), ERR_STORE);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "checkpoint to "));
    store_close(&a);
    tu_rmtree(dir);
}

static void test_rocks_checkpoint(void)
{
    char dir[512], path[600], ck[600];
    store_t *s = NULL, *c = NULL;
    errbuf_t eb = {{0}};
    char buf[1024];

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "store"), 0);
    snprintf(path, sizeof(path), "%s/db", dir);
    snprintf(ck, sizeof(ck), "%s/ckpt", dir);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&s, path, STORE_CREATE, "shard 0", &eb), 0);
    for (int i = 0; i < 200; i++) {
        char k[16], v[16];
        snprintf(k, sizeof(k), "r%04d", i);
        snprintf(v, sizeof(v), "v%d", i);
        CU_ASSERT_EQUAL(store_put(s, k, strlen(k), v, strlen(v), 0, &eb), 0);
    }
    CU_ASSERT_EQUAL_FATAL(store_checkpoint(s, ck, &eb), 0);
    /* later writes do not reach the checkpoint */
    store_op_t ops[2] = {{"r0000", 5, NULL, 0}, {"r9999", 5, "late", 4}};
    CU_ASSERT_EQUAL(store_write(s, ops, 2, 1, &eb), 0);

    /* the checkpoint opens read-only while the source is still open */
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&c, ck, STORE_READONLY, "ckpt", &eb), 0);
    CU_ASSERT_EQUAL(listing(c, "r", buf, sizeof(buf)), 200);
    CU_ASSERT(value_is(c, "r0000", "v0"));
    CU_ASSERT(value_is(c, "r0199", "v199"));
    char *v = NULL;
    size_t l;
    CU_ASSERT_EQUAL(get1(c, "r9999", &v, &l), ERR_NOTFOUND);
    store_close(&c);
    /* and read-write, as a restored shard would: it is a whole store */
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&c, ck, 0, "restored", &eb), 0);
    CU_ASSERT_EQUAL(store_put(c, "x", 1, "y", 1, 1, &eb), 0);
    CU_ASSERT(value_is(c, "x", "y"));
    CU_ASSERT_EQUAL(get1(s, "x", &v, &l), ERR_NOTFOUND); /* not shared with the source */
    store_close(&c);
    store_close(&s);
    tu_rmtree(dir);
}

static void test_rocks_readonly_beside_writer(void)
{
    char dir[512], path[600];
    store_t *w = NULL, *r = NULL;
    errbuf_t eb = {{0}};
    char buf[1024];

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "store"), 0);
    snprintf(path, sizeof(path), "%s/db", dir);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&w, path, STORE_CREATE, "shard 1", &eb), 0);
    CU_ASSERT_EQUAL(store_put(w, "k1", 2, "v1", 2, 0, &eb), 0); /* only in the WAL */
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&r, path, STORE_READONLY, "inspect", &eb), 0);
    CU_ASSERT(value_is(r, "k1", "v1"));
    CU_ASSERT_EQUAL(listing(r, "", buf, sizeof(buf)), 1);
    /* the writer keeps writing */
    CU_ASSERT_EQUAL(store_put(w, "k2", 2, "v2", 2, 1, &eb), 0);
    CU_ASSERT(value_is(w, "k2", "v2"));
    /* the read-only handle refuses writes with a translated error */
    CU_ASSERT_EQUAL(store_put(r, "k3", 2, "v3", 2, 0, &eb), ERR_STORE);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "inspect: write"));
    store_close(&r);
    /* a fresh read-only handle sees the newer write */
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&r, path, STORE_READONLY, "inspect", &eb), 0);
    CU_ASSERT(value_is(r, "k2", "v2"));
    store_close(&r);
    store_close(&w);
    tu_rmtree(dir);
}

/* Full listing of a store as one comparable string. */
static char *dump_all(store_t *s, size_t *len)
{
    store_iter_t *it = store_iter_new(s, NULL, 0);
    const void *k, *v;
    size_t kl, vl, used = 0, cap = 1 << 16;
    char *out = malloc(cap);

    while (out && it && store_iter_next(s, it, &k, &kl, &v, &vl) == 1) {
        while (used + kl + vl + 16 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            if (!out)
                break;
        }
        if (!out)
            break;
        memcpy(out + used, &kl, sizeof(kl));
        memcpy(out + used + sizeof(kl), &vl, sizeof(vl));
        used += 2 * sizeof(size_t);
        memcpy(out + used, k, kl);
        memcpy(out + used + kl, v, vl);
        used += kl + vl;
    }
    store_iter_destroy(s, &it);
    *len = used;
    return out;
}

/* RocksDB against memory under random batches (fixed seed): every
 * MultiGet and the final listing agree byte for byte. */
static void test_differential(void)
{
    char dir[512], path[600];
    store_t *st[2] = {NULL, NULL};
    errbuf_t eb = {{0}};
    uint64_t seed = 42;
    enum { NK = 300, ROUNDS = 400, MAXB = 32 };

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(dir, sizeof(dir), "store"), 0);
    snprintf(path, sizeof(path), "%s/db", dir);
    CU_ASSERT_EQUAL_FATAL(store_rocks_open(&st[0], path, STORE_CREATE, "rocks", &eb), 0);
    CU_ASSERT_EQUAL_FATAL(store_mem_open(&st[1], &eb), 0);
    for (int round = 0; round < ROUNDS; round++) {
        store_op_t ops[MAXB];
        unsigned char kb[MAXB][12], vb[MAXB][200];
        size_t n = 1 + rng_next(&seed) % MAXB;
        for (size_t i = 0; i < n; i++) {
            uint64_t id = rng_next(&seed) % NK;
            size_t kl = 1 + id % 12, vl = rng_next(&seed) % 200;
            for (size_t j = 0; j < kl; j++)
                kb[i][j] = (unsigned char)(id >> (j % 8 * 8)) ^ (unsigned char)j;
            for (size_t j = 0; j < vl; j++)
                vb[i][j] = (unsigned char)rng_next(&seed);
            ops[i] = (store_op_t){kb[i], kl, rng_next(&seed) % 4 == 0 ? NULL : vb[i], vl};
        }
        for (int s = 0; s < 2; s++)
            CU_ASSERT_EQUAL(store_write(st[s], ops, n, round % 50 == 0, &eb), 0);
        /* read back this batch's keys from both */
        const void *keys[MAXB];
        size_t kls[MAXB], vl[2][MAXB];
        void *vals[2][MAXB];
        for (size_t i = 0; i < n; i++) {
            keys[i] = ops[i].k;
            kls[i] = ops[i].klen;
        }
        for (int s = 0; s < 2; s++)
            CU_ASSERT_EQUAL(store_multiget(st[s], n, keys, kls, vals[s], vl[s], &eb), 0);
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(!vals[0][i], !vals[1][i]);
            if (vals[0][i] && vals[1][i]) {
                CU_ASSERT_EQUAL(vl[0][i], vl[1][i]);
                CU_ASSERT(vl[0][i] == vl[1][i] && memcmp(vals[0][i], vals[1][i], vl[0][i]) == 0);
            }
            free(vals[0][i]);
            free(vals[1][i]);
        }
        if (round == ROUNDS / 2) { /* across a reopen */
            store_close(&st[0]);
            CU_ASSERT_EQUAL_FATAL(store_rocks_open(&st[0], path, 0, "rocks", &eb), 0);
        }
    }
    size_t la, lb;
    char *a = dump_all(st[0], &la), *b = dump_all(st[1], &lb);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(b);
    CU_ASSERT(la > 1000);
    CU_ASSERT(a && b && la == lb && memcmp(a, b, la) == 0);
    free(a);
    free(b);
    store_close(&st[0]);
    store_close(&st[1]);
    tu_rmtree(dir);
}

int test_store_register(void)
{
    CU_pSuite s = CU_add_suite("store", NULL, NULL);

    if (!s)
        return CU_get_error();
    if (!CU_add_test(s, "mem basics", test_mem_basics) ||
        !CU_add_test(s, "rocks basics and reopen", test_rocks_basics_and_reopen) ||
        !CU_add_test(s, "rocks errors name shard, action, path", test_rocks_errors) ||
        !CU_add_test(s, "rocks checkpoint opened and read back", test_rocks_checkpoint) ||
        !CU_add_test(s, "rocks read-only beside a writer", test_rocks_readonly_beside_writer) ||
        !CU_add_test(s, "rocks vs memory, random batches", test_differential))
        return CU_get_error();
    return CUE_SUCCESS;
}
