/*
 * store_rocks.c - the RocksDB implementation of store.h; the only file of
 * funnel that includes rocksdb/c.h. RocksDB's char *err messages are
 * translated here into ERR_STORE with the store's name and the action,
 * and the common ones (lock held, disk full, permission, missing store,
 * I/O error, corruption) with what they mean and what to change, RocksDB's
 * own text after it ("shard 2 /data/ps2: open /data/ps2: another process
 * holds the store's lock ...: stop it, or ... (RocksDB: IO error: ...)").
 *
 * NOTES ON THE DESIGN
 *   Tables carry a 10-bit-per-key Bloom filter, so the MultiGet of keys
 *   that were never stored (every new row of a table backed by RocksDB)
 *   rarely reads a data block. A read-only handle keeps every table file
 *   open (max_open_files = -1): a writer's compaction may delete files the
 *   reader still uses, and an open descriptor (or mapping) keeps them
 *   readable.
 *
 *   Tuned for the spill path of an embedding table: every request reloads
 *   hundreds of scattered rows (one MultiGet) and evictions write as many
 *   back (one sorted batch), so the cost is cache misses per key.
 *   - Memtables are small (MEMTABLE_BYTES) and carry a whole-key Bloom
 *     filter: with the default 64 MB, a key cost ~3.7 us in MultiGet and
 *     ~3 us to insert (skiplist TLB and cache misses, bench-table). The
 *     filter lets MultiGet skip the memtables that do not hold a key.
 *     Rows then mostly live in table files, hence the points below, and
 *     background compaction does more work (bench-table's 10x spill
 *     store: ~0.4-0.9 GB written by compactions instead of ~0.04 GB).
 *   - Table files are mmap()ed and uncompressed, without a block cache:
 *     a read is a binary search in the page cache, with no pread, no
 *     copy into a cache and no decompression (the price: files as large
 *     as the raw rows). The OS page cache is the only data cache; index
 *     and filter blocks stay in the table readers, as before. Files
 *     written with LZ4 earlier stay readable. Mapped pages count in the
 *     process's RSS, though, growing with the store: a shard with a
 *     mem_limit opens with STORE_NO_MMAP and reads with pread (the same
 *     page cache, outside the process; bench-mem: RSS 9.8x a 32 MB
 *     limit at 1 M keys with mmap, and growing).
 *   - MultiGet goes through the batched API (rocksdb_batched_multi_get_cf),
 *     which probes each table file once for all keys.
 *   Durability is unchanged: every write goes to the WAL, sync writes
 *   fsync it.
 *
 *   Damage is refused, never repaired. An existing store is first opened
 *   read-only (which changes no file) and checked: RocksDB's paranoid
 *   checks, a log that must replay whole, and the FUNNEL-SEAL file, which
 *   store_seal() writes after each flush (and a checkpoint into its copy)
 *   with RocksDB's latest sequence number: a store that holds less lost
 *   data (a truncated MANIFEST, a lost log). The owner's check (the row
 *   count, emb_table.h) runs on the same handle. Only then is the store
 *   opened for writing; a read-write open of a damaged store would delete
 *   the table files its MANIFEST no longer lists.
 *
 *   RocksDB's own info LOG is kept to fatal messages (INFO_LOG_FATAL).
 *
 * Thread-safety: a handle is used by one thread at a time.
 */
#include <errno.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/dirs.h"
#include "table/store.h"

#define ACTION_MAX (DIRS_PATH_MAX + 32) /* bytes: a path and the verb before it */

typedef struct rocks {
    store_t base;
    rocksdb_t *db;
    rocksdb_options_t *opt;
    rocksdb_readoptions_t *ropt;
    rocksdb_writeoptions_t *wopt;
    rocksdb_writeoptions_t *wopt_sync;
    rocksdb_writebatch_t *wb;
    rocksdb_column_family_handle_t *cf; /* the default one: batched MultiGet needs it */
    char path[DIRS_PATH_MAX];           /* the directory, for the SEAL file */
    /* multiget scratch, kept between calls */
    rocksdb_pinnableslice_t **pins;
    char **errs;
    size_t scap; /* entries of pins and errs */
} rocks_t;

#define SEAL_FILE "FUNNEL-SEAL"
#define SEAL_MAGIC "funnel-seal"
#define SEAL_VERSION 1
#define DAMAGED "the store was left as it is: restore it from a checkpoint or an older copy"

/* rocksdb_options_set_wal_recovery_mode(): every record of the log must
 * replay (RocksDB's WALRecoveryMode::kAbsoluteConsistency). A shard writes
 * its log with write(2) per batch, so a killed process leaves no torn
 * record; a damaged log is damage, never a crash's tail. */
#define WAL_ABSOLUTE_CONSISTENCY 1

/* rocksdb_options_set_info_log_level(): FATAL_LEVEL. RocksDB's own LOG
 * file lives in the store's directory; on a full disk its writer fails
 * once and RocksDB 7.8 then aborts on an assertion the next time it logs
 * (WritableFileWriter::AssertFalseAndGetStatusForPrevError, reached from
 * ErrorHandler::SetBGError: the abort seen on disk full). funnel reports
 * every failure itself from the statuses it gets, with the path, so
 * RocksDB logs only what it must. */
#define INFO_LOG_FATAL 4

enum {
    MEMTABLE_BYTES = 4 << 20, /* write_buffer_size; see the notes */
    BLOOM_BITS = 10,          /* per key, table files */
};

struct store_iter {
    rocks_t *r;
    rocksdb_iterator_t *it;
    char *prefix;
    size_t plen;
    int started;
};

/*
 * What RocksDB's status text means to the person running funnel, and what
 * to change; NULL for texts not recognized. The raw text follows in the
 * message, so nothing RocksDB said is lost.
 */
static const char *meaning(const char *err)
{
    static const struct {
        const char *has, *says;
    } known[] = {
        {"lock hold by current process",
         "this process already has the store open: give each table its own directory"},
        {"/LOCK: ",
         "another process holds the store's lock (a funnel-ps or train already running on "
         "this directory?): stop it, or give this process its own --data directory"},
        {"No space left on device",
         "the disk holding the store is full: free space there (or move --data to a larger "
         "disk) and start again; rows changed since the last flush are lost"},
        {"Disk quota exceeded", "the user's disk quota is used up: free space or raise the quota"},
        {"Permission denied",
         "this user may not read or write a file of the store: fix the owner or mode of the "
         "directory and its files, or run as the user that owns them"},
        {"Read-only file system",
         "the store's filesystem is mounted read-only: give a writable directory"},
        {"does not exist (create_if_missing is false)",
         "there is no store here: give the data directory of a shard, a model directory or a "
         "checkpoint (funnel-ps creates its store; readers never do)"},
        {"No such file or directory",
         "a file of the store is missing (deleted or moved while in use?): restore the "
         "directory from a checkpoint"},
        {"Corruption", "the store is damaged: " DAMAGED},
        {"IO error",
         "the filesystem reported an I/O error (see the kernel log, dmesg): check the disk, "
         "then restore the directory from a checkpoint if files are damaged"},
    };

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strstr(err, known[i].has))
            return known[i].says;
    return NULL;
}

static int fail(rocks_t *r, char *err, const char *action, errbuf_t *eb)
{
    const char *m = meaning(err);
    int rc = m ? errbuf_set(eb, ERR_STORE, "%s: %s: %s (RocksDB: %s)", r->base.name, action, m, err)
               : errbuf_set(eb, ERR_STORE, "%s: %s: %s", r->base.name, action, err);
    rocksdb_free(err);
    return rc;
}

static int grow_scratch(rocks_t *r, size_t n)
{
    if (n <= r->scap)
        return 0;
    size_t cap = r->scap ? r->scap : 1024;
    while (cap < n)
        cap *= 2;
    rocksdb_pinnableslice_t **pins = realloc(r->pins, cap * sizeof(*pins));
    if (!pins)
        return ERR_NOMEM;
    r->pins = pins;
    char **errs = realloc(r->errs, cap * sizeof(*errs));
    if (!errs)
        return ERR_NOMEM;
    r->errs = errs;
    r->scap = cap;
    return 0;
}

static int rocks_multiget(store_t *s, size_t n, const void *const *keys, const size_t *klens,
                          void **vals, size_t *vlens, errbuf_t *eb)
{
    rocks_t *r = (rocks_t *)s;
    int rc = 0;

    if (n == 0)
        return 0;
    if (grow_scratch(r, n) != 0)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    memset(r->pins, 0, n * sizeof(*r->pins));
    memset(r->errs, 0, n * sizeof(*r->errs));
    rocksdb_batched_multi_get_cf(r->db, r->ropt, r->cf, n, (const char *const *)keys, klens,
                                 r->pins, r->errs, 0);
    for (size_t i = 0; i < n; i++) {
        vals[i] = NULL;
        vlens[i] = 0;
        if (r->errs[i]) {
            if (rc == 0)
                rc = fail(r, r->errs[i], "multiget", eb);
            else
                rocksdb_free(r->errs[i]);
        }
        if (r->pins[i]) {
            size_t len;
            const char *v = rocksdb_pinnableslice_value(r->pins[i], &len);
            if (rc == 0) {
                vals[i] = malloc(len ? len : 1); /* found-but-empty stays non-NULL */
                if (vals[i]) {
                    memcpy(vals[i], v, len);
                    vlens[i] = len;
                } else {
                    rc = errbuf_set(eb, ERR_NOMEM, "out of memory");
                }
            }
            rocksdb_pinnableslice_destroy(r->pins[i]);
        }
    }
    if (rc != 0)
        for (size_t i = 0; i < n; i++) {
            free(vals[i]);
            vals[i] = NULL;
        }
    return rc;
}

static int rocks_write(store_t *s, const store_op_t *ops, size_t n, int sync, errbuf_t *eb)
{
    rocks_t *r = (rocks_t *)s;
    char *err = NULL;

    rocksdb_writebatch_clear(r->wb);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].v)
            rocksdb_writebatch_put(r->wb, ops[i].k, ops[i].klen, ops[i].v, ops[i].vlen);
        else
            rocksdb_writebatch_delete(r->wb, ops[i].k, ops[i].klen);
    }
    rocksdb_write(r->db, sync ? r->wopt_sync : r->wopt, r->wb, &err);
    rocksdb_writebatch_clear(r->wb);
    return err ? fail(r, err, "write", eb) : 0;
}

static store_iter_t *rocks_iter_new(store_t *s, const void *prefix, size_t plen)
{
    rocks_t *r = (rocks_t *)s;
    store_iter_t *it = calloc(1, sizeof(*it));

    if (!it)
        return NULL;
    it->prefix = malloc(plen ? plen : 1);
    it->it = rocksdb_create_iterator(r->db, r->ropt);
    if (!it->prefix || !it->it) {
        free(it->prefix);
        if (it->it)
            rocksdb_iter_destroy(it->it);
        free(it);
        return NULL;
    }
    if (plen)
        memcpy(it->prefix, prefix, plen);
    it->plen = plen;
    it->r = r;
    return it;
}

static int rocks_iter_next(store_iter_t *it, const void **k, size_t *klen, const void **v,
                           size_t *vlen)
{
    if (!it->started) {
        if (it->plen)
            rocksdb_iter_seek(it->it, it->prefix, it->plen);
        else
            rocksdb_iter_seek_to_first(it->it);
        it->started = 1;
    } else {
        rocksdb_iter_next(it->it);
    }
    if (!rocksdb_iter_valid(it->it))
        return 0;
    *k = rocksdb_iter_key(it->it, klen);
    if (*klen < it->plen || memcmp(*k, it->prefix, it->plen) != 0)
        return 0;
    *v = rocksdb_iter_value(it->it, vlen);
    return 1;
}

static int rocks_iter_error(store_iter_t *it, errbuf_t *eb)
{
    char *err = NULL;

    rocksdb_iter_get_error(it->it, &err);
    return err ? fail(it->r, err, "iterate", eb) : 0;
}

static void rocks_iter_destroy(store_iter_t *it)
{
    rocksdb_iter_destroy(it->it);
    free(it->prefix);
    free(it);
}

/* Write dir/FUNNEL-SEAL: the store in dir holds every change up to seq. */
static int write_seal(const char *dir, uint64_t seq, errbuf_t *eb)
{
    char path[DIRS_PATH_MAX], text[96];
    int n = snprintf(text, sizeof(text), "%s %d\nseq %llu\n", SEAL_MAGIC, SEAL_VERSION,
                     (unsigned long long)seq);
    int rc = dirs_path(path, sizeof(path), eb, "%s/%s", dir, SEAL_FILE);

    return rc != 0 ? rc : afile_write(path, text, (size_t)n, eb);
}

/* The sequence number dir/FUNNEL-SEAL records into *seq: 0, ERR_NOTFOUND
 * when there is none (a store from before seals), ERR_CORRUPT. */
static int read_seal(const char *dir, uint64_t *seq, errbuf_t *eb)
{
    char path[DIRS_PATH_MAX], word[32];
    unsigned long long u;
    int version, rc = dirs_path(path, sizeof(path), eb, "%s/%s", dir, SEAL_FILE);
    FILE *f;

    if (rc != 0)
        return rc;
    f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? ERR_NOTFOUND
                               : errbuf_set(eb, ERR_IO, "%s: %s", path, strerror(errno));
    rc = fscanf(f, "%31s %d seq %llu", word, &version, &u) == 3 && strcmp(word, SEAL_MAGIC) == 0 &&
         version == SEAL_VERSION;
    fclose(f);
    if (!rc)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: unreadable (expected '%s %d' and 'seq N'); " DAMAGED, path,
                          SEAL_MAGIC, SEAL_VERSION);
    *seq = u;
    return 0;
}

static int rocks_checkpoint(store_t *s, const char *dir, errbuf_t *eb)
{
    rocks_t *r = (rocks_t *)s;
    char *err = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(r->db, &err);
    /* read before the copy, which holds at least this much */
    uint64_t seq = rocksdb_get_latest_sequence_number(r->db);

    if (err)
        return fail(r, err, "checkpoint", eb);
    rocksdb_checkpoint_create(cp, dir, 0, &err);
    rocksdb_checkpoint_object_destroy(cp);
    if (err) {
        char action[ACTION_MAX];
        snprintf(action, sizeof(action), "checkpoint to %s", dir);
        return fail(r, err, action, eb);
    }
    int rc = write_seal(dir, seq, eb);
    return rc == 0 ? 0 : errbuf_prefix(eb, rc, "%s: checkpoint", r->base.name);
}

static int rocks_seal(store_t *s, int to_tables, errbuf_t *eb)
{
    rocks_t *r = (rocks_t *)s;
    char *err = NULL;

    if (to_tables) {
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 1);
        rocksdb_flush(r->db, fo, &err);
        rocksdb_flushoptions_destroy(fo);
        if (err) {
            char action[ACTION_MAX];
            snprintf(action, sizeof(action), "write table files in %s", r->path);
            return fail(r, err, action, eb);
        }
    }
    int rc = write_seal(r->path, rocksdb_get_latest_sequence_number(r->db), eb);
    return rc == 0 ? 0 : errbuf_prefix(eb, rc, "%s", r->base.name);
}

static void rocks_close(store_t *s)
{
    rocks_t *r = (rocks_t *)s;

    if (r->cf)
        rocksdb_column_family_handle_destroy(r->cf);
    if (r->db)
        rocksdb_close(r->db);
    free(r->pins);
    free(r->errs);
    if (r->wb)
        rocksdb_writebatch_destroy(r->wb);
    if (r->wopt)
        rocksdb_writeoptions_destroy(r->wopt);
    if (r->wopt_sync)
        rocksdb_writeoptions_destroy(r->wopt_sync);
    if (r->ropt)
        rocksdb_readoptions_destroy(r->ropt);
    if (r->opt)
        rocksdb_options_destroy(r->opt);
    free(r);
}

static const store_ops_t rocks_ops = {
    .multiget = rocks_multiget,
    .write = rocks_write,
    .iter_new = rocks_iter_new,
    .iter_next = rocks_iter_next,
    .iter_error = rocks_iter_error,
    .iter_destroy = rocks_iter_destroy,
    .checkpoint = rocks_checkpoint,
    .seal = rocks_seal,
    .close = rocks_close,
};

/* Open the RocksDB store in path as flags say (no funnel check). */
static int open_db(rocks_t **out, const char *path, int flags, const char *name, errbuf_t *eb)
{
    rocks_t *r = calloc(1, sizeof(*r));
    char *err = NULL;

    *out = NULL;
    if (!r)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    r->base.ops = &rocks_ops;
    snprintf(r->base.name, sizeof(r->base.name), "%s", name ? name : path);
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->opt = rocksdb_options_create();
    r->ropt = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(r->ropt, 1);
    r->wopt = rocksdb_writeoptions_create();
    r->wopt_sync = rocksdb_writeoptions_create();
    r->wb = rocksdb_writebatch_create();
    rocksdb_writeoptions_set_sync(r->wopt_sync, 1);
    rocksdb_options_set_create_if_missing(r->opt, (flags & STORE_CREATE) ? 1 : 0);
    rocksdb_options_set_paranoid_checks(r->opt, 1);
    rocksdb_options_set_wal_recovery_mode(r->opt, WAL_ABSOLUTE_CONSISTENCY);
    rocksdb_options_set_info_log_level(r->opt, INFO_LOG_FATAL);
    rocksdb_options_set_compression(r->opt, rocksdb_no_compression);
    rocksdb_options_increase_parallelism(r->opt, 2);
    rocksdb_options_set_max_open_files(r->opt, (flags & STORE_READONLY) ? -1 : 512);
    rocksdb_options_set_allow_mmap_reads(r->opt, (flags & STORE_NO_MMAP) ? 0 : 1);
    rocksdb_options_set_write_buffer_size(r->opt, MEMTABLE_BYTES);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(r->opt, 0.1);
    rocksdb_options_set_memtable_whole_key_filtering(r->opt, 1);
    rocksdb_block_based_table_options_t *bbo = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(
        bbo, rocksdb_filterpolicy_create_bloom_full(BLOOM_BITS));
    rocksdb_block_based_options_set_no_block_cache(bbo, 1);
    rocksdb_options_set_block_based_table_factory(r->opt, bbo);
    rocksdb_block_based_options_destroy(bbo);
    const char *cf_names[1] = {"default"};
    const rocksdb_options_t *cf_opts[1] = {r->opt};
    if (flags & STORE_READONLY)
        r->db = rocksdb_open_for_read_only_column_families(r->opt, path, 1, cf_names, cf_opts,
                                                           &r->cf, 0, &err);
    else
        r->db = rocksdb_open_column_families(r->opt, path, 1, cf_names, cf_opts, &r->cf, &err);
    if (err) {
        char action[ACTION_MAX];
        snprintf(action, sizeof(action), "open %s", path);
        int rc;
        if (strstr(err, "Corruption") != NULL) {
            rc = errbuf_set(eb, ERR_CORRUPT, "%s: %s: %s; " DAMAGED, r->base.name, action, err);
            rocksdb_free(err);
        } else {
            rc = fail(r, err, action, eb);
        }
        r->db = NULL;
        r->cf = NULL;
        rocks_close(&r->base);
        return rc;
    }
    *out = r;
    return 0;
}

/* ERR_CORRUPT if the store lost changes its SEAL file says it held. */
static int check_seal(rocks_t *r, errbuf_t *eb)
{
    uint64_t sealed = 0, has = rocksdb_get_latest_sequence_number(r->db);
    int rc = read_seal(r->path, &sealed, eb);

    if (rc == ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return errbuf_prefix(eb, rc, "%s", r->base.name);
    if (has < sealed)
        return errbuf_set(eb, ERR_CORRUPT,
                          "%s: %s holds changes up to number %llu, but its last flush recorded "
                          "%llu (%s): its MANIFEST or log lost data; " DAMAGED,
                          r->base.name, r->path, (unsigned long long)has,
                          (unsigned long long)sealed, SEAL_FILE);
    return 0;
}

int store_rocks_open_checked(store_t **out, const char *path, int flags, const char *name,
                             store_check_fn check, errbuf_t *eb)
{
    char current[DIRS_PATH_MAX];
    rocks_t *ro = NULL, *rw = NULL;
    int rc;

    *out = NULL;
    if ((rc = dirs_path(current, sizeof(current), eb, "%s/CURRENT", path)) != 0)
        return rc;
    if (!(flags & STORE_READONLY) && access(current, F_OK) != 0) {
        /* nothing to check: a fresh store (or RocksDB's own error) */
        rc = open_db(&rw, path, flags, name, eb);
        if (rc == 0)
            *out = &rw->base;
        return rc;
    }
    /* a read-only handle changes no file, whatever the damage */
    rc = open_db(&ro, path, STORE_READONLY, name, eb);
    if (rc == 0)
        rc = check_seal(ro, eb);
    if (rc == 0 && check)
        rc = check(&ro->base, eb);
    if (rc != 0 || (flags & STORE_READONLY)) {
        if (rc == 0)
            *out = &ro->base;
        else if (ro)
            rocks_close(&ro->base);
        return rc;
    }
    rocks_close(&ro->base);
    rc = open_db(&rw, path, flags, name, eb);
    if (rc == 0)
        *out = &rw->base;
    return rc;
}

int store_rocks_open(store_t **out, const char *path, int flags, const char *name, errbuf_t *eb)
{
    return store_rocks_open_checked(out, path, flags, name, NULL, eb);
}

void store_close(store_t **s)
{
    if (s && *s) {
        (*s)->ops->close(*s);
        *s = NULL;
    }
}

int store_get(store_t *s, const void *k, size_t klen, void **v, size_t *vlen, errbuf_t *eb)
{
    const void *keys[1] = {k};
    int rc = store_multiget(s, 1, keys, &klen, v, vlen, eb);

    if (rc == 0 && !*v)
        return ERR_NOTFOUND;
    return rc;
}

int store_put(store_t *s, const void *k, size_t klen, const void *v, size_t vlen, int sync,
              errbuf_t *eb)
{
    store_op_t op = {k, klen, v, vlen};
    return store_write(s, &op, 1, sync, eb);
}
