/*
 * store.h - the durable key-value store under an embedding table, behind a
 * tiny vtable (Redis rio style): a RocksDB implementation for shards and
 * model directories, and an in-memory one for tests.
 *
 * Keys and values are byte strings. Writes go in batches applied
 * atomically; reads of many keys go in one call (RocksDB MultiGet), which
 * is how a table reloads the rows a request misses.
 *
 * Thread-safety: a store_t is used by one thread at a time, except that a
 * RocksDB directory may be opened read-only by another process while a
 * shard writes it (store_rocks_open with STORE_READONLY).
 */
#ifndef FUNNEL_STORE_H
#define FUNNEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct store store_t;
typedef struct store_iter store_iter_t;

/* One write of a batch: put (v != NULL) or delete (v == NULL). */
typedef struct store_op {
    const void *k;
    size_t klen; /* bytes */
    const void *v;
    size_t vlen; /* bytes */
} store_op_t;

typedef struct store_ops {
    /* vals[i] gets a malloc()ed copy of key i's value (NULL: absent); the
     * caller frees each with free(). */
    int (*multiget)(store_t *s, size_t n, const void *const *keys, const size_t *klens, void **vals,
                    size_t *vlens, errbuf_t *eb);
    int (*write)(store_t *s, const store_op_t *ops, size_t n, int sync, errbuf_t *eb);
    store_iter_t *(*iter_new)(store_t *s, const void *prefix, size_t plen);
    /* 1 with k/v pointing into the iterator (valid until the next call),
     * 0 at the end. */
    int (*iter_next)(store_iter_t *it, const void **k, size_t *klen, const void **v, size_t *vlen);
    /* 0 if the iteration met no error so far, else ERR_STORE. */
    int (*iter_error)(store_iter_t *it, errbuf_t *eb);
    void (*iter_destroy)(store_iter_t *it);
    int (*checkpoint)(store_t *s, const char *dir, errbuf_t *eb);
    /* NULL: nothing to seal (memory). */
    int (*seal)(store_t *s, int to_tables, errbuf_t *eb);
    void (*close)(store_t *s);
} store_ops_t;

struct store {
    const store_ops_t *ops;
    char name[256]; /* for messages: "shard 2 /data/ps2" */
};

enum { STORE_CREATE = 1, STORE_READONLY = 2, STORE_NO_MMAP = 4 };

/*
 * Open the RocksDB store in directory path. flags: STORE_CREATE creates a
 * missing store; STORE_READONLY opens without writing (safe beside a
 * running shard, which keeps writing: the view is that of the open);
 * STORE_NO_MMAP reads table files with pread instead of mmap, so the data
 * read stays in the kernel's page cache and out of the process's RSS (a
 * shard with a memory budget; mmap is faster on the spill path).
 * name is used in error messages. Returns 0 or ERR_STORE with the
 * RocksDB message ("open /data/ps2: IO error: ...").
 */
int store_rocks_open(store_t **out, const char *path, int flags, const char *name, errbuf_t *eb);

/*
 * A check of an opened store's contents, run by store_rocks_open_checked()
 * on a read-only handle before the store is opened for writing. Returns 0
 * or an error (in eb) that refuses the store.
 */
typedef int (*store_check_fn)(store_t *s, errbuf_t *eb);

/*
 * store_rocks_open() that first proves the store whole, so that a damaged
 * one is refused before RocksDB changes any of its files (a read-write
 * open deletes table files a damaged MANIFEST no longer lists):
 *   - RocksDB's own checks: paranoid checks, a log that must replay to its
 *     end (absolute consistency), checksums of every block read;
 *   - the store holds every change up to the one store_seal() recorded
 *     last (the SEAL file beside RocksDB's), so a MANIFEST or log that
 *     lost data is refused;
 *   - check (if not NULL) on a read-only handle, e.g. the row count.
 * A missing directory (with STORE_CREATE) is a fresh store, not checked.
 * Returns what store_rocks_open() does, ERR_CORRUPT for a store that lost
 * data (the message names the path and says that no file was changed), or
 * check's error.
 */
int store_rocks_open_checked(store_t **out, const char *path, int flags, const char *name,
                             store_check_fn check, errbuf_t *eb);

/* A read-only view of n stores as one (the shards of a checkpoint): reads
 * ask every part, iteration merges them in key order. Takes ownership of
 * the parts on success. */
int store_multi_open(store_t **out, store_t **parts, int n, const char *name, errbuf_t *eb);

/* An empty in-memory store (tests). */
int store_mem_open(store_t **out, errbuf_t *eb);

/* Close and free; accepts NULL and clears the pointer. */
void store_close(store_t **s);

static inline int store_multiget(store_t *s, size_t n, const void *const *keys, const size_t *klens,
                                 void **vals, size_t *vlens, errbuf_t *eb)
{
    return s->ops->multiget(s, n, keys, klens, vals, vlens, eb);
}

static inline int store_write(store_t *s, const store_op_t *ops, size_t n, int sync, errbuf_t *eb)
{
    return s->ops->write(s, ops, n, sync, eb);
}

/* Iterate keys starting with prefix (plen 0: all; prefix may then be
 * NULL), in byte order, over a snapshot taken now (RocksDB) or over the
 * live records (memory: do not write while iterating). NULL if out of
 * memory. */
static inline store_iter_t *store_iter_new(store_t *s, const void *prefix, size_t plen)
{
    return s->ops->iter_new(s, prefix, plen);
}

static inline int store_iter_next(store_t *s, store_iter_t *it, const void **k, size_t *klen,
                                  const void **v, size_t *vlen)
{
    return s->ops->iter_next(it, k, klen, v, vlen);
}

/* After store_iter_next() returned 0: 0 if that was the real end, or
 * ERR_STORE if the iteration stopped on a read error (RocksDB reports
 * both as "no more keys"). */
static inline int store_iter_error(store_t *s, store_iter_t *it, errbuf_t *eb)
{
    return s->ops->iter_error(it, eb);
}

static inline void store_iter_destroy(store_t *s, store_iter_t **it)
{
    if (it && *it) {
        s->ops->iter_destroy(*it);
        *it = NULL;
    }
}

/* A consistent copy of the store in the new directory dir (RocksDB:
 * hard-linked files, so it is cheap). ERR_NOTFOUND if unsupported. */
static inline int store_checkpoint(store_t *s, const char *dir, errbuf_t *eb)
{
    return s->ops->checkpoint(s, dir, eb);
}

/*
 * Record the store's state as complete: what it holds now is what its next
 * open must find (store_rocks_open_checked). to_tables: first move every
 * change out of the log into synced table files (a model directory, whose
 * rows must not depend on the log). Called after a synced write (a flush);
 * a store without the notion (memory) does nothing. Returns 0 or
 * ERR_STORE / ERR_IO naming the path.
 */
static inline int store_seal(store_t *s, int to_tables, errbuf_t *eb)
{
    return s->ops->seal ? s->ops->seal(s, to_tables, eb) : 0;
}

/* Small helpers for metadata values stored under reserved keys. */
int store_get(store_t *s, const void *k, size_t klen, void **v, size_t *vlen, errbuf_t *eb);
int store_put(store_t *s, const void *k, size_t klen, const void *v, size_t vlen, int sync,
              errbuf_t *eb);

#endif
