/*
 * test_dirs.c - dirs_make(): mkdir -p for the programs' output paths.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/dirs.h"
#include "tests/util.h"

static int is_dir(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_parents_created(void)
{
    char root[256], p[512];
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(root, sizeof(root), "dirs"), 0);
    snprintf(p, sizeof(p), "%s/a/b//c/", root);
    CU_ASSERT_EQUAL(dirs_make(p, &eb), 0);
    snprintf(p, sizeof(p), "%s/a/b/c", root);
    CU_ASSERT(is_dir(p));
    CU_ASSERT_EQUAL(dirs_make(p, &eb), 0); /* there already: fine */
    CU_ASSERT_EQUAL(dirs_make("/", &eb), 0);
    tu_rmtree(root);
}

static void test_errors_name_the_component(void)
{
    char root[256], p[512], file[512];
    errbuf_t eb = {{0}};

    CU_ASSERT_EQUAL_FATAL(tu_mkdtemp(root, sizeof(root), "dirs"), 0);
    snprintf(file, sizeof(file), "%s/plain", root);
    CU_ASSERT_EQUAL_FATAL(tu_write(file, "x\n"), 0);
    snprintf(p, sizeof(p), "%s/plain/sub", root);
    CU_ASSERT_EQUAL(dirs_make(p, &eb), ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, file));
    CU_ASSERT_EQUAL(dirs_make(file, &eb), ERR_IO); /* a file is not a directory */
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "Not a directory"));
    CU_ASSERT_EQUAL(dirs_make("", &eb), ERR_INVAL);
    tu_rmtree(root);
}

int test_dirs_register(void)
{
    CU_pSuite s = CU_add_suite("dirs", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "missing parents are created", test_parents_created);
    CU_add_test(s, "errors name the component in the way", test_errors_name_the_component);
    return CU_get_error();
}
