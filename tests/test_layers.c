/*
 * test_layers.c - the layer matrix (USES_* in the Makefile) is enforced:
 * `make check-layers` passes on the tree as it is, and fails, naming the
 * file, the line and the forbidden folder, on a copy of the tree with one
 * planted include that crosses a layer: a program using another program,
 * a library using a sibling library, the ground floor using a program, and
 * an include that names no folder.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/util.h"

static char dir[512], root[512]; /* scratch; the checkout (tests run from its top) */

/* What the copy needs for `make check-layers`: the Makefile, the script
 * and every folder of sources. */
static const char *const tree =
    "Makefile scripts common proto table data model ps emb worker gen obs tests bench";

static int setup(void)
{
    if (!getcwd(root, sizeof(root)))
        return -1;
    return tu_mkdtemp(dir, sizeof(dir), "layers");
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

static void test_tree_passes(void)
{
    char out[700];

    snprintf(out, sizeof(out), "%s/real.out", dir);
    int rc = tu_sh(out, "make -s --no-print-directory -C %s check-layers", root);
    if (rc != 0) {
        char *text = tu_slurp(out, NULL);
        fprintf(stderr, "\n  check-layers on the tree:\n%s\n", text ? text : "");
        free(text);
    }
    CU_ASSERT_EQUAL(rc, 0);
}

/*
 * Copy the tree, append `line` to `file` in the copy, run check-layers
 * there. Returns its exit status; its output is checked to contain
 * `expect` (the planted file, line and reason).
 */
static int planted(const char *file, const char *line, const char *expect)
{
    char copy[600], out[700];
    char *text;
    int rc;

    snprintf(copy, sizeof(copy), "%s/copy", dir);
    if (tu_sh(NULL, "rm -rf %s && mkdir -p %s && cd %s && cp -r %s %s/", copy, copy, root, tree,
              copy) != 0)
        return -1;
    if (tu_sh(NULL, "printf '%%s\\n' '%s' >> %s/%s", line, copy, file) != 0)
        return -1;
    snprintf(out, sizeof(out), "%s/planted.out", dir);
    rc = tu_sh(out, "make -s --no-print-directory -C %s check-layers", copy);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    if (!strstr(text, expect))
        fprintf(stderr, "\n  planted %s in %s; check-layers said:\n%s\n", line, file, text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, expect));
    free(text);
    return rc;
}

/* make's status when a recipe (the check) failed */
#define CHECK_FAILED 2

static void test_program_uses_program(void)
{
    CU_ASSERT_EQUAL(planted("worker/train.c", "#include \"ps/server.h\"", "worker/train.c:"),
                    CHECK_FAILED);
    CU_ASSERT_EQUAL(
        planted("emb/emb_tool.c", "#include \"worker/param.h\"", "emb/ may not use worker/"),
        CHECK_FAILED);
}

static void test_library_uses_sibling(void)
{
    CU_ASSERT_EQUAL(
        planted("table/emb_table.h", "#include \"proto/codec.h\"", "table/ may not use proto/"),
        CHECK_FAILED);
}

static void test_ground_uses_program(void)
{
    CU_ASSERT_EQUAL(
        planted("common/err.h", "#include \"model/model.h\"", "common/ may not use model/"),
        CHECK_FAILED);
}

static void test_include_without_folder(void)
{
    CU_ASSERT_EQUAL(planted("proto/codec.c", "#include \"err.h\"", "names no folder"),
                    CHECK_FAILED);
}

int test_layers_register(void)
{
    CU_pSuite s = CU_add_suite("layers", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "the tree keeps its layers", test_tree_passes);
    CU_add_test(s, "a program including another program's header fails", test_program_uses_program);
    CU_add_test(s, "a library including a sibling library fails", test_library_uses_sibling);
    CU_add_test(s, "common including a program's header fails", test_ground_uses_program);
    CU_add_test(s, "an include without its folder fails", test_include_without_folder);
    return CU_get_error();
}
