/*
 * test_afile.c - atomic file writes (afile.h): the new content appears
 * whole, and a write that fails or is abandoned leaves the old file as it
 * was and no PATH.tmp behind.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/afile.h"
#include "tests/util.h"

static int exists(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0;
}

/* 1 if path holds exactly text. */
static int holds(const char *path, const char *text)
{
    size_t len = 0;
    char *got = tu_slurp(path, &len);
    int same = got && len == strlen(text) && memcmp(got, text, len) == 0;

    free(got);
    return same;
}

static void test_content_appears_whole(void)
{
    char root[256], path[512], tmp[512];
    errbuf_t eb = {{0}};
    afile_t af;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(root, sizeof(root), "afile"), 0);
    snprintf(path, sizeof(path), "%s/f", root);
    snprintf(tmp, sizeof(tmp), "%s/f.tmp", root);
    CU_ASSERT_EQUAL(afile_write(path, "first\n", 6, &eb), 0);
    CU_ASSERT(holds(path, "first\n"));
    CU_ASSERT(!exists(tmp));

    /* while a new version is written, readers still see the old one */
    CU_ASSERT_EQUAL_FATAL(afile_open(&af, path, &eb), 0);
    fprintf(af.f, "second, ");
    fflush(af.f);
    CU_ASSERT(exists(tmp));
    CU_ASSERT(holds(path, "first\n"));
    fprintf(af.f, "longer\n");
    CU_ASSERT_EQUAL(afile_commit(&af, &eb), 0);
    CU_ASSERT(holds(path, "second, longer\n"));
    CU_ASSERT(!exists(tmp));

    /* an empty file is a file too */
    CU_ASSERT_EQUAL(afile_write(path, NULL, 0, &eb), 0);
    CU_ASSERT(holds(path, ""));
    CU_ASSERT(!exists(tmp));
    tu_rmtree(root);
}

static void test_abort_keeps_the_old_file(void)
{
    char root[256], path[512], tmp[512];
    errbuf_t eb = {{0}};
    afile_t af;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(root, sizeof(root), "afile"), 0);
    snprintf(path, sizeof(path), "%s/f", root);
    snprintf(tmp, sizeof(tmp), "%s/f.tmp", root);
    CU_ASSERT_EQUAL_FATAL(afile_write(path, "old\n", 4, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(afile_open(&af, path, &eb), 0);
    fprintf(af.f, "half of the new");
    fflush(af.f);
    CU_ASSERT(exists(tmp));
    afile_abort(&af);
    CU_ASSERT(!exists(tmp));
    CU_ASSERT(holds(path, "old\n"));
    afile_abort(&af);                                   /* twice is harmless */
    CU_ASSERT_EQUAL(afile_commit(&af, &eb), ERR_INVAL); /* nothing left to commit */
    CU_ASSERT(holds(path, "old\n"));

    /* a stale tmp of a crashed writer is overwritten, not appended to */
    CU_ASSERT_EQUAL_FATAL(tu_write(tmp, "stale stale stale\n"), 0);
    CU_ASSERT_EQUAL(afile_write(path, "new\n", 4, &eb), 0);
    CU_ASSERT(holds(path, "new\n"));
    CU_ASSERT(!exists(tmp));
    tu_rmtree(root);
}

static void test_failures_leave_no_tmp(void)
{
    char root[256], path[512], dir[512], inside[512], tmp[512];
    char *longp;
    errbuf_t eb = {{0}};
    afile_t af;

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(root, sizeof(root), "afile"), 0);

    /* the directory is missing: nothing is created, the error names the tmp */
    snprintf(path, sizeof(path), "%s/missing/f", root);
    CU_ASSERT_EQUAL(afile_write(path, "x", 1, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "missing/f.tmp"));
    snprintf(dir, sizeof(dir), "%s/missing", root);
    CU_ASSERT(!exists(dir));
    memset(&af, 0, sizeof(af));
    afile_abort(&af); /* harmless on a zeroed afile */

    /* the rename fails (a non-empty directory is in the way): that
     * directory is untouched and the tmp is gone */
    snprintf(dir, sizeof(dir), "%s/d", root);
    snprintf(inside, sizeof(inside), "%s/d/keep", root);
    snprintf(tmp, sizeof(tmp), "%s/d.tmp", root);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
    CU_ASSERT_EQUAL_FATAL(tu_write(inside, "kept\n"), 0);
    CU_ASSERT_EQUAL(afile_write(dir, "x", 1, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "rename"));
    CU_ASSERT(!exists(tmp));
    CU_ASSERT(holds(inside, "kept\n"));

    /* a path too long for path + ".tmp" */
    longp = malloc(DIRS_PATH_MAX + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(longp);
    memset(longp, 'a', DIRS_PATH_MAX);
    longp[DIRS_PATH_MAX] = '\0';
    memcpy(longp, root, strlen(root));
    longp[strlen(root)] = '/';
    CU_ASSERT_EQUAL(afile_open(&af, longp, &eb), ERR_INVAL);
    afile_abort(&af);
    longp[DIRS_PATH_MAX - 2] = '\0'; /* fits, but not with ".tmp" added */
    CU_ASSERT_EQUAL(afile_write(longp, "x", 1, &eb), ERR_INVAL);
    free(longp);
    tu_rmtree(root);
}

static void test_fsync_dirs(void)
{
    char root[256], path[512];
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(root, sizeof(root), "afile"), 0);
    snprintf(path, sizeof(path), "%s/f", root);
    CU_ASSERT_EQUAL(afile_fsync_dir(root, &eb), 0);
    CU_ASSERT_EQUAL(afile_fsync_parent(path, &eb), 0);
    CU_ASSERT_EQUAL(afile_fsync_parent("f", &eb), 0);  /* "." */
    CU_ASSERT_EQUAL(afile_fsync_parent("/f", &eb), 0); /* "/" */
    snprintf(path, sizeof(path), "%s/missing", root);
    CU_ASSERT_EQUAL(afile_fsync_dir(path, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, path));
    tu_rmtree(root);
}

int test_afile_register(void)
{
    CU_pSuite s = CU_add_suite("afile", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "the new content appears whole", test_content_appears_whole);
    CU_add_test(s, "abort keeps the old file and removes the tmp", test_abort_keeps_the_old_file);
    CU_add_test(s, "failed writes leave no tmp and touch nothing", test_failures_leave_no_tmp);
    CU_add_test(s, "directories are fsynced", test_fsync_dirs);
    return CU_get_error();
}
