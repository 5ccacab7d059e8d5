/*
 * test_json.c - the JSON writer (common/json.h): hostile strings (quotes,
 * backslashes, control bytes, non-ASCII, broken UTF-8) come out as JSON
 * that a strict reader accepts and decodes back to the same bytes (broken
 * UTF-8 to U+FFFD); non-finite numbers become null; commas and colons are
 * placed right in nested objects and arrays. The strict reader
 * (tests/json_check.c) is itself shown to refuse invalid JSON, so the
 * checks can fail.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "tests/json_check.h"

/* Valid UTF-8 names that must round-trip byte for byte. */
static const char *const hostile[] = {
    "u\"id",
    "a\\b",
    "c\001d",
    "tab\there",
    "line\nbreak",
    "cr\rlf",
    "\"\\\"",
    "caf\xc3\xa9",
    "\xe2\x82\xac"
    "5",
    "\xf0\x9f\x98\x80",
    "del\x7f",
    "\037",
    "</script>",
    "",
};

static char *write_kv(const char *s, size_t len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    json_t j;

    json_init(&j, f);
    json_object_begin(&j);
    json_keyn(&j, s, len);
    json_strn(&j, s, len);
    json_key(&j, "list");
    json_array_begin(&j);
    json_strn(&j, s, len);
    json_array_end(&j);
    json_object_end(&j);
    json_end_line(&j);
    fclose(f);
    return buf;
}

static void test_hostile_strings_round_trip(void)
{
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        int found = 0;
        char *out = write_kv(hostile[i], strlen(hostile[i]));
        CU_ASSERT_EQUAL(jc_check_lines(out, hostile[i], strlen(hostile[i]), &found), 1);
        CU_ASSERT_EQUAL(found, 3); /* the key, the value and the array element */
        CU_ASSERT_PTR_EQUAL(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
        free(out);
    }
    /* a NUL inside a counted string is data too */
    int found = 0;
    char *out = write_kv("a\0b", 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"a\\u0000b\""));
    CU_ASSERT_EQUAL(jc_check_lines(out, "a\0b", 3, &found), 1);
    CU_ASSERT_EQUAL(found, 3);
    free(out);
}

static void test_broken_utf8_becomes_replacement(void)
{
    static const char *const broken[] = {"x\xffy", "x\xc3y", "x\xed\xa0\x80y", "x\xc0\xafy",
                                         "x\xf4\x90\x80\x80y"};
    static const char *const want[] = {
        "x\xef\xbf\xbdy",
        "x\xef\xbf\xbdy",
        "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy",
        "x\xef\xbf\xbd\xef\xbf\xbdy",
        "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy",
    };
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        int found = 0;
        char *out = write_kv(broken[i], strlen(broken[i]));
        CU_ASSERT_EQUAL(jc_check_lines(out, want[i], strlen(want[i]), &found), 1);
        CU_ASSERT_EQUAL(found, 3);
        free(out);
    }
}

static void test_structure_and_numbers(void)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    json_t j;

    json_init(&j, f);
    json_object_begin(&j);
    json_key(&j, "a");
    json_array_begin(&j);
    json_i64(&j, 1);
    json_i64(&j, -2);
    json_num(&j, 0.5, 6);
    json_num(&j, NAN, 6);
    json_num(&j, INFINITY, 17);
    json_num(&j, 1e300 * 1e300 * 0, 6);
    json_array_end(&j);
    json_key(&j, "b");
    json_object_begin(&j);
    json_object_end(&j);
    json_key(&j, "c");
    json_array_begin(&j);
    json_array_end(&j);
    json_key(&j, "d");
    json_bool(&j, 1);
    json_kv_u64(&j, "e", UINT64_MAX);
    json_key(&j, "k");
    json_hex64(&j, 0x2aULL);
    json_kv_str(&j, "n", NULL);
    json_object_end(&j);
    json_end_line(&j);
    json_array_begin(&j);
    json_object_begin(&j);
    json_object_end(&j);
    json_object_begin(&j);
    json_kv_num(&j, "x", 0.1, 17);
    json_object_end(&j);
    json_array_end(&j);
    json_end_line(&j);
    fclose(f);
    CU_ASSERT_STRING_EQUAL(buf,
                           "{\"a\":[1,-2,0.5,null,null,null],\"b\":{},\"c\":[],\"d\":true,"
                           "\"e\":18446744073709551615,\"k\":\"000000000000002a\",\"n\":null}\n"
                           "[{},{\"x\":0.10000000000000001}]\n");
    CU_ASSERT_EQUAL(jc_check_lines(buf, NULL, 0, NULL), 2);
    free(buf);
}

static void test_checker_refuses_invalid_json(void)
{
    static const char *const bad[] = {
        "{\"a\":1,}",  "{\"a\":NaN}", "{\"a\":\"x\"y\"}",
        "\"a\001\"",   "{\"a\" 1}",   "[1 2]",
        "{\"a\":01}",  "\"\\x41\"",   "\"\xff\"",
        "\"\\ud800\"", "{\"a\":inf}", "{a:1}",
        "[1,]",        "{\"a\":1}}",  "\"abc",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(jc_check_lines(bad[i], NULL, 0, NULL), -1);
    CU_ASSERT_EQUAL(
        jc_check_lines("{\"a\":[1.5e-3,true,null]}\n\n[\"\\ud83d\\ude00\"]\n", NULL, 0, NULL), 2);
}

int test_json_register(void)
{
    CU_pSuite s = CU_add_suite("json", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "hostile strings parse and round-trip (keys, values, arrays)",
                test_hostile_strings_round_trip);
    CU_add_test(s, "broken UTF-8 becomes U+FFFD and still parses",
                test_broken_utf8_becomes_replacement);
    CU_add_test(s, "commas, nesting, NaN and inf as null, exact bytes", test_structure_and_numbers);
    CU_add_test(s, "the strict checker refuses invalid JSON", test_checker_refuses_invalid_json);
    return CU_get_error();
}
