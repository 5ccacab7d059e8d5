/*
 * test_diskfull.c - a full disk ends funnel-ps and `train --model` with a
 * clean error naming the path, never an abort: both write onto an 8 MiB
 * tmpfs the suite mounts itself (root only; skipped with a message
 * otherwise) and unmounts in its teardown, also after a failure.
 *
 * Before the fix RocksDB 7.8 aborted on an assertion in 2 of 3 runs: its
 * info LOG, in the full directory, failed a write and the next log line
 * hit WritableFileWriter::AssertFalseAndGetStatusForPrevError.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/util.h"

static char dir[512], mnt[600], psbin[600], wbin[600], gbin[600];
static int mounted;

static int setup(void)
{
    if (tu_mkdtemp(dir, sizeof(dir), "diskfull") != 0)
        return -1;
    tu_bin(psbin, sizeof(psbin), "funnel-ps");
    tu_bin(wbin, sizeof(wbin), "funnel-worker");
    tu_bin(gbin, sizeof(gbin), "funnel-gen");
    snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
    if (mkdir(mnt, 0755) != 0)
        return -1;
    if (geteuid() != 0) {
        fprintf(stderr, "\n  diskfull: not root, cannot mount a tmpfs: the tests are skipped\n");
        return 0;
    }
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m") != 0) {
        fprintf(stderr, "\n  diskfull: mount -t tmpfs on %s failed: the tests are skipped\n", mnt);
        return 0;
    }
    mounted = 1;
    return tu_sh(NULL, "%s --out %s/data --train 150000 --test 100 --seed 9 > %s/gen.log 2>&1",
                 gbin, dir, dir) == 0
               ? 0
               : -1;
}

static int teardown(void)
{
    tu_stop_all();
    if (mounted && umount2(mnt, MNT_DETACH) != 0)
        fprintf(stderr, "\n  diskfull: cannot unmount %s\n", mnt);
    mounted = 0;
    tu_rmtree(dir);
    return 0;
}

static int file_has(const char *path, const char *needle)
{
    char *t = tu_slurp(path, NULL);
    int has = t && strstr(t, needle) != NULL;

    if (!has)
        fprintf(stderr, "\n  %s lacks '%s':\n%s\n", path, needle, t ? t : "(unreadable)");
    free(t);
    return has;
}

static int status_of(const char *path)
{
    char *t = tu_slurp(path, NULL);
    int st = t ? atoi(t) : -1;

    free(t);
    return st;
}

static void test_shard_on_full_disk(void)
{
    char pslog[700], wlog[700], rc[700];

    if (!mounted)
        return;
    snprintf(pslog, sizeof(pslog), "%s/ps.log", dir);
    snprintf(wlog, sizeof(wlog), "%s/worker.log", dir);
    snprintf(rc, sizeof(rc), "%s/ps.rc", dir);
    /* the shard in the background (its status to ps.rc), a worker
     * training into it until it stops; every step bounded by timeout */
    tu_sh(NULL,
          "(timeout 120 %s --shard 0 --shards 1 --listen ipc://%s/ps.sock --data %s/ps "
          "--towers 16,8 --flush_interval 1 > %s 2>&1; echo $? > %s) & "
          "sleep 1; timeout 60 %s train --towers 16,8 --epochs 3 --ps ipc://%s/ps.sock "
          "--deadline_s 5 --metrics_file %s/w.jsonl %s/data/train.tsv > %s 2>&1; wait",
          psbin, dir, mnt, pslog, rc, wbin, dir, dir, dir, wlog);
    /* 1: a clean error exit (not 124: a hang, not 134: abort, not 139) */
    CU_ASSERT_EQUAL(status_of(rc), 1);
    CU_ASSERT(file_has(pslog, "No space left on device"));
    CU_ASSERT(file_has(pslog, mnt));
    CU_ASSERT(file_has(pslog, "at most one flush interval) is lost"));
}

static void test_train_model_on_full_disk(void)
{
    char log[700], m[700];
    struct stat st;

    if (!mounted)
        return;
    tu_sh(NULL, "rm -rf %s/ps", mnt);
    snprintf(log, sizeof(log), "%s/train.log", dir);
    snprintf(m, sizeof(m), "%s/model", mnt);
    for (int run = 0; run < 3; run++) {
        tu_sh(NULL, "rm -rf %s %s.tmp", m, m);
        int rc = tu_sh(log, "timeout 120 %s train --towers 16,8 --model %s %s/data/train.tsv", wbin,
                       m, dir);
        CU_ASSERT_EQUAL(rc, 1);
        CU_ASSERT(file_has(log, "No space left on device"));
        CU_ASSERT(file_has(log, m));
        CU_ASSERT(file_has(log, "model not saved"));
        CU_ASSERT_NOT_EQUAL(stat(m, &st), 0); /* nothing installed */
    }
}

int test_diskfull_register(void)
{
    CU_pSuite s = CU_add_suite("diskfull", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "a shard flushing into a full tmpfs exits 1 naming the path and the loss",
                test_shard_on_full_disk);
    CU_add_test(s, "train --model onto a full tmpfs exits 1 naming the path, 3 runs, no abort",
                test_train_model_on_full_disk);
    return CU_get_error();
}
