/*
 * test_parse.c - common/parse: what the decimal grammar accepts and what
 * it refuses (empty, signs, exponents, inf/nan, hex, blanks, trailing
 * garbage), values bit for bit against strtod / strtof on both sides of
 * the fast path, overflow and underflow, byte ranges that are not
 * NUL-terminated, the copy limit, unsigned integers against their maximum
 * and the C-string parsers behind config values.
 *
 * Byte-range parsers are always called on a heap copy without a NUL, so
 * a read past the range shows up under `make asan`.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"

/* parse_double / parse_float / parse_uint on an exact-size heap copy of s. */
static int pd(const char *s, double *v)
{
    size_t n = strlen(s);
    char *c = malloc(n ? n : 1);
    int rc;

    memcpy(c, s, n);
    rc = parse_double(c, n, v);
    free(c);
    return rc;
}

static int pf(const char *s, float *v)
{
    size_t n = strlen(s);
    char *c = malloc(n ? n : 1);
    int rc;

    memcpy(c, s, n);
    rc = parse_float(c, n, v);
    free(c);
    return rc;
}

static int pu(const char *s, uint64_t max, uint64_t *v)
{
    size_t n = strlen(s);
    char *c = malloc(n ? n : 1);
    int rc;

    memcpy(c, s, n);
    rc = parse_uint(c, n, max, v);
    free(c);
    return rc;
}

/* Same bits (so -0 differs from 0). */
static int same_d(double a, double b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

static int same_f(float a, float b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

/* s parses, to exactly strtod's and strtof's value. */
static void expect_both(const char *s)
{
    double d = -1;
    float f = -1;

    CU_ASSERT_EQUAL(pd(s, &d), 0);
    CU_ASSERT(same_d(d, strtod(s, NULL)));
    CU_ASSERT_EQUAL(pf(s, &f), 0);
    CU_ASSERT(same_f(f, strtof(s, NULL)));
}

static void test_grammar(void)
{
    static const char *good[] = {"0",    "00",   "007",  "1",     "-1",     "+1",    "-0",
                                 "+0",   ".5",   "5.",   "+.5",   "-5.e-1", "0.5",   "-2.25",
                                 "1e0",  "1E+2", "2e-3", "1.e5",  ".5e1",   "1e-30", "0e0",
                                 "0e99", "1e22", "3e38", "1e-45", "12.5e-3"};
    static const char *bad[] = {"",    "+",     "-",   ".",    "+.",    "-.",       "e5",   ".e1",
                                "1e",  "1e+",   "1e-", "1.5x", "x1",    " 1",       "1 ",   "\t1",
                                "1\n", "--1",   "+-1", "1..2", "1.2.3", "1e5.",     "1e5e", "1e1.5",
                                "inf", "-inf",  "nan", "NaN",  "INF",   "infinity", "0x10", "0x1p3",
                                "1,5", "1_000", "e",   "E1",   "1ee5",  "1e+-5",    "\x01"};
    double d;
    float f;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        expect_both(good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(pd(bad[i], &d), ERR_PARSE);
        CU_ASSERT_EQUAL(pf(bad[i], &f), ERR_PARSE);
    }
    /* a NUL inside the range is a byte like any other: refused */
    CU_ASSERT_EQUAL(parse_double("1\0", 2, &d), ERR_PARSE);
    CU_ASSERT_EQUAL(parse_float("1\0", 2, &f), ERR_PARSE);
    /* the sign of zero is kept */
    CU_ASSERT_EQUAL(pd("-0", &d), 0);
    CU_ASSERT(signbit(d));
    CU_ASSERT_EQUAL(pf("-0.0e5", &f), 0);
    CU_ASSERT(signbit(f));
    /* *v is left alone on failure */
    d = 7;
    f = 7;
    CU_ASSERT_EQUAL(pd("1x", &d), ERR_PARSE);
    CU_ASSERT_EQUAL(pf("1x", &f), ERR_PARSE);
    CU_ASSERT(d == 7 && f == 7);
}

/* Too large for the type is refused; too small rounds like strtod. */
static void test_range(void)
{
    double d;
    float f;

    CU_ASSERT_EQUAL(pd("1e308", &d), 0);
    CU_ASSERT_EQUAL(pd("1.7976931348623157e308", &d), 0);
    CU_ASSERT_EQUAL(d, 1.7976931348623157e308);
    CU_ASSERT_EQUAL(pd("1e309", &d), ERR_PARSE);
    CU_ASSERT_EQUAL(pd("-1e309", &d), ERR_PARSE);
    CU_ASSERT_EQUAL(pd("1e999999999999", &d), ERR_PARSE);
    CU_ASSERT_EQUAL(pf("3.4028234e38", &f), 0);
    CU_ASSERT_EQUAL(pf("1e39", &f), ERR_PARSE);
    CU_ASSERT_EQUAL(pd("1e39", &d), 0); /* fine as a double */
    CU_ASSERT_EQUAL(pf("-1e39", &f), ERR_PARSE);
    /* underflow: zero or subnormal, as strtod / strtof give */
    CU_ASSERT_EQUAL(pd("1e-400", &d), 0);
    CU_ASSERT(same_d(d, 0.0));
    CU_ASSERT_EQUAL(pd("-1e-400", &d), 0);
    CU_ASSERT(same_d(d, -0.0));
    CU_ASSERT_EQUAL(pd("4.9e-324", &d), 0);
    CU_ASSERT(same_d(d, strtod("4.9e-324", NULL)) && d > 0);
    CU_ASSERT_EQUAL(pf("1e-46", &f), 0);
    CU_ASSERT(same_f(f, 0.0f));
    CU_ASSERT_EQUAL(pf("1e-40", &f), 0);
    CU_ASSERT(same_f(f, strtof("1e-40", NULL)) && f > 0);
    CU_ASSERT_EQUAL(pd("0e999999999999", &d), 0);
    CU_ASSERT(same_d(d, 0.0));
}

/* Values on both sides of the fast path's limits equal strtod's / strtof's. */
static void test_fast_path_edges(void)
{
    static const char *s[] = {
        "9007199254740991",
        "9007199254740992",
        "9007199254740993",
        "18014398509481985",
        "16777215",
        "16777216",
        "16777217",
        "33554433",
        "1e10",
        "1e11",
        "3e-10",
        "3e-11",
        "1e22",
        "1e23",
        "1.5e-22",
        "1.5e-23",
        "0.1",
        "0.3",
        "2.5e-5",
        "0.0312",
        "123456789012345678901234",
        "0.1234567890123456789",
        "99999999999999999",
        "999999999999999999",
        "100000000000000000",
        "1000000000000000000",
        "0.000000000000000000000000000001",
        "1e-22",
        "7e22",
        "4503599627370497.5",
        "1.00000011920928955078125",
        "0.000001",
    };

    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        expect_both(s[i]);
}

/*
 * parse_float() is strtof, not strtod rounded again: this text lies just
 * above the midpoint between 1 and the next float, and its nearest double
 * is that midpoint, which then rounds to even (1).
 */
static void test_float_not_double_rounded(void)
{
    const char *s = "1.0000000596046447753906250001";
    double d;
    float f;

    CU_ASSERT_EQUAL(pf(s, &f), 0);
    CU_ASSERT(same_f(f, nextafterf(1.0f, 2.0f)));
    CU_ASSERT(same_f(f, strtof(s, NULL)));
    CU_ASSERT_EQUAL(pd(s, &d), 0);
    CU_ASSERT(same_f((float)d, 1.0f));
}

/* The range ends where len says, whatever follows in memory. */
static void test_unterminated(void)
{
    const char *buf = "12345.75e3xyz";
    const char *slow = "0.12345678901234567890123e-3999";
    double d;
    float f;
    uint64_t u;

    CU_ASSERT_EQUAL(parse_double(buf, 3, &d), 0);
    CU_ASSERT_EQUAL(d, 123.0);
    CU_ASSERT_EQUAL(parse_double(buf, 8, &d), 0);
    CU_ASSERT_EQUAL(d, 12345.75);
    CU_ASSERT_EQUAL(parse_double(buf, 9, &d), ERR_PARSE); /* "12345.75e" */
    CU_ASSERT_EQUAL(parse_double(buf, 10, &d), 0);
    CU_ASSERT_EQUAL(d, 12345750.0);
    CU_ASSERT_EQUAL(parse_double(buf, 11, &d), ERR_PARSE);
    CU_ASSERT_EQUAL(parse_float(buf, 6, &f), 0); /* "12345." */
    CU_ASSERT_EQUAL(f, 12345.0f);
    CU_ASSERT_EQUAL(parse_float(buf, 0, &f), ERR_PARSE);
    /* the slow path copies exactly the range, too */
    CU_ASSERT_EQUAL(parse_double(slow, 25, &d), 0);
    CU_ASSERT(same_d(d, strtod("0.12345678901234567890123", NULL)));
    CU_ASSERT_EQUAL(parse_double(slow, 28, &d), 0);
    CU_ASSERT(same_d(d, strtod("0.12345678901234567890123e-3", NULL)));
    CU_ASSERT_EQUAL(parse_float(slow, 28, &f), 0);
    CU_ASSERT(same_f(f, strtof("0.12345678901234567890123e-3", NULL)));
    CU_ASSERT_EQUAL(parse_uint(buf, 2, UINT64_MAX, &u), 0);
    CU_ASSERT_EQUAL(u, 12);
    CU_ASSERT_EQUAL(parse_uint(buf, 6, UINT64_MAX, &u), ERR_PARSE);
}

/* Text off the fast path must be shorter than PARSE_COPY_MAX; short forms need not. */
static void test_long_text(void)
{
    char s[200010];
    double d;
    float f;

    /* fast path: any number of leading zeros */
    memset(s, '0', 199);
    memcpy(s + 199, "5", 2);
    CU_ASSERT_EQUAL(pd(s, &d), 0);
    CU_ASSERT_EQUAL(d, 5.0);
    CU_ASSERT_EQUAL(pf(s, &f), 0);
    CU_ASSERT_EQUAL(f, 5.0f);
    /* slow path: 127 bytes are copied, 128 refused */
    memcpy(s, "0.", 2);
    memset(s + 2, '1', PARSE_COPY_MAX - 3);
    s[PARSE_COPY_MAX - 1] = '\0';
    CU_ASSERT_EQUAL(strlen(s), PARSE_COPY_MAX - 1);
    CU_ASSERT_EQUAL(pd(s, &d), 0);
    CU_ASSERT(same_d(d, strtod(s, NULL)));
    CU_ASSERT_EQUAL(pf(s, &f), 0);
    CU_ASSERT(same_f(f, strtof(s, NULL)));
    s[PARSE_COPY_MAX - 1] = '1';
    s[PARSE_COPY_MAX] = '\0';
    CU_ASSERT_EQUAL(pd(s, &d), ERR_PARSE);
    CU_ASSERT_EQUAL(pf(s, &f), ERR_PARSE);
    /*
     * An exponent with more digits than are kept must not reach the fast
     * path: 0.(99999 zeros)1e1000000 is 10^900000, not the 1 that the
     * kept digits (1e100000) would give.
     */
    memcpy(s, "0.", 2);
    memset(s + 2, '0', 99999);
    memcpy(s + 2 + 99999, "1e1000000", 10);
    CU_ASSERT_EQUAL(pd(s, &d), ERR_PARSE);
    CU_ASSERT_EQUAL(pf(s, &f), ERR_PARSE);
}

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * UINT64_C(2685821657736338717);
}

/*
 * Random strings over the grammar's own bytes: accepted exactly when
 * strtod / strtof read the whole string to a finite value, with the same
 * bits; then random well-formed decimals of every size.
 */
static void test_differential(void)
{
    static const char alphabet[] = "0123456789012345678901234567890123456789+-.eE";
    uint64_t x = 20260101;
    char s[64];
    int bad_d = 0, bad_f = 0, accepted = 0;

    for (int i = 0; i < 300000; i++) {
        size_t n = next_rand(&x) % 24;
        char *end;
        double d, rd;
        float f, rf;

        for (size_t k = 0; k < n; k++)
            s[k] = alphabet[next_rand(&x) % (sizeof(alphabet) - 1)];
        s[n] = '\0';
        rd = strtod(s, &end);
        int want_d = n > 0 && end == s + n && isfinite(rd);
        rf = strtof(s, &end);
        int want_f = n > 0 && end == s + n && isfinite(rf);
        int got_d = pd(s, &d) == 0, got_f = pf(s, &f) == 0;

        accepted += got_d;
        bad_d += got_d != want_d || (got_d && !same_d(d, rd));
        bad_f += got_f != want_f || (got_f && !same_f(f, rf));
    }
    CU_ASSERT_EQUAL(bad_d, 0);
    CU_ASSERT_EQUAL(bad_f, 0);
    CU_ASSERT(accepted > 10000);

    bad_d = bad_f = 0;
    for (int i = 0; i < 300000; i++) {
        uint64_t r = next_rand(&x);
        int o = 0, nint = (int)(r % 21), nfrac = (int)((r >> 8) % 21);
        double d, rd;
        float f, rf;

        if (r >> 16 & 1)
            s[o++] = r >> 17 & 1 ? '-' : '+';
        for (int k = 0; k < nint; k++)
            s[o++] = (char)('0' + next_rand(&x) % 10);
        if (nfrac || !nint) {
            s[o++] = '.';
            for (int k = 0; k < nfrac || (!nint && k < 1); k++)
                s[o++] = (char)('0' + next_rand(&x) % 10);
        }
        if (r >> 20 & 1)
            o += snprintf(s + o, sizeof(s) - (size_t)o, "e%d", (int)((r >> 24) % 91) - 45);
        s[o] = '\0';
        rd = strtod(s, NULL);
        rf = strtof(s, NULL);
        bad_d += pd(s, &d) != 0 || !same_d(d, rd);
        /* up to 10^65: beyond FLT_MAX is refused */
        bad_f += isfinite(rf) ? pf(s, &f) != 0 || !same_f(f, rf) : pf(s, &f) != ERR_PARSE;
    }
    CU_ASSERT_EQUAL(bad_d, 0);
    CU_ASSERT_EQUAL(bad_f, 0);
}

static void test_uint(void)
{
    static const char *bad[] = {"", "+1", "-1", " 1", "1 ", "1a", "a", "0x1", "1.0", "1e3"};
    uint64_t v;

    CU_ASSERT_EQUAL(pu("0", UINT64_MAX, &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(pu("0007", UINT64_MAX, &v), 0);
    CU_ASSERT_EQUAL(v, 7);
    CU_ASSERT_EQUAL(pu("18446744073709551615", UINT64_MAX, &v), 0);
    CU_ASSERT_EQUAL(v, UINT64_MAX);
    CU_ASSERT_EQUAL(pu("18446744073709551616", UINT64_MAX, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(pu("18446744073709551620", UINT64_MAX, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(pu("99999999999999999999", UINT64_MAX, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(pu("000000000000000000000000000042", UINT64_MAX, &v), 0);
    CU_ASSERT_EQUAL(v, 42);
    CU_ASSERT_EQUAL(pu("10", 10, &v), 0);
    CU_ASSERT_EQUAL(v, 10);
    CU_ASSERT_EQUAL(pu("11", 10, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(pu("20", 10, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(pu("7", 5, &v), ERR_PARSE); /* one digit above max */
    CU_ASSERT_EQUAL(pu("5", 5, &v), 0);
    CU_ASSERT_EQUAL(pu("0", 0, &v), 0);
    CU_ASSERT_EQUAL(pu("1", 0, &v), ERR_PARSE);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(pu(bad[i], UINT64_MAX, &v), ERR_PARSE);
}

static void test_int_str(void)
{
    static const char *bad[] = {"",    " ",   "-",   "+",   "abc", "1.5", "0x10",
                                "12 ", "1e3", "--1", "1 2", "12a", "\n"};
    int64_t v;

    CU_ASSERT_EQUAL(parse_int_str("42", INT64_MIN, INT64_MAX, &v), 0);
    CU_ASSERT_EQUAL(v, 42);
    CU_ASSERT_EQUAL(parse_int_str("-7", INT64_MIN, INT64_MAX, &v), 0);
    CU_ASSERT_EQUAL(v, -7);
    CU_ASSERT_EQUAL(parse_int_str("+5", INT64_MIN, INT64_MAX, &v), 0);
    CU_ASSERT_EQUAL(v, 5);
    CU_ASSERT_EQUAL(parse_int_str(" \t12", INT64_MIN, INT64_MAX, &v), 0); /* as strtoll */
    CU_ASSERT_EQUAL(v, 12);
    CU_ASSERT_EQUAL(parse_int_str("010", INT64_MIN, INT64_MAX, &v), 0); /* decimal, not octal */
    CU_ASSERT_EQUAL(v, 10);
    CU_ASSERT_EQUAL(parse_int_str("9223372036854775807", INT64_MIN, INT64_MAX, &v), 0);
    CU_ASSERT_EQUAL(v, INT64_MAX);
    CU_ASSERT_EQUAL(parse_int_str("-9223372036854775808", INT64_MIN, INT64_MAX, &v), 0);
    CU_ASSERT_EQUAL(v, INT64_MIN);
    CU_ASSERT_EQUAL(parse_int_str("9223372036854775808", INT64_MIN, INT64_MAX, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(parse_int_str("-9223372036854775809", INT64_MIN, INT64_MAX, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(parse_int_str("99999999999999999999", 1, 65536, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(parse_int_str("1", 1, 65536, &v), 0);
    CU_ASSERT_EQUAL(parse_int_str("65536", 1, 65536, &v), 0);
    CU_ASSERT_EQUAL(v, 65536);
    CU_ASSERT_EQUAL(parse_int_str("0", 1, 65536, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(parse_int_str("65537", 1, 65536, &v), ERR_PARSE);
    CU_ASSERT_EQUAL(parse_int_str("-1", 0, 10, &v), ERR_PARSE);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(parse_int_str(bad[i], INT64_MIN, INT64_MAX, &v), ERR_PARSE);
}

static void test_double_str(void)
{
    static const char *bad[] = {"",    " ",     "abc",    "1.5 ", "1.5x", "inf", "-inf",
                                "nan", "1e309", "1e-400", "--1",  "1e",   "."};
    double v;

    CU_ASSERT_EQUAL(parse_double_str("1.5", &v), 0);
    CU_ASSERT_EQUAL(v, 1.5);
    CU_ASSERT_EQUAL(parse_double_str("-0.25", &v), 0);
    CU_ASSERT_EQUAL(v, -0.25);
    CU_ASSERT_EQUAL(parse_double_str(" 2", &v), 0); /* leading blanks, as strtod */
    CU_ASSERT_EQUAL(v, 2.0);
    CU_ASSERT_EQUAL(parse_double_str("0x1p-1", &v), 0); /* hex, as strtod */
    CU_ASSERT_EQUAL(v, 0.5);
    CU_ASSERT_EQUAL(parse_double_str("1e308", &v), 0);
    CU_ASSERT_EQUAL(parse_double_str("3", &v), 0);
    CU_ASSERT_EQUAL(v, 3.0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(parse_double_str(bad[i], &v), ERR_PARSE);
}

int test_parse_register(void)
{
    CU_pSuite s = CU_add_suite("parse", NULL, NULL);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "decimal grammar: accepted and refused texts", test_grammar);
    CU_add_test(s, "overflow refused, underflow rounds", test_range);
    CU_add_test(s, "fast path edges equal strtod / strtof", test_fast_path_edges);
    CU_add_test(s, "parse_float is strtof, not double rounded", test_float_not_double_rounded);
    CU_add_test(s, "byte ranges without a NUL", test_unterminated);
    CU_add_test(s, "long texts and the copy limit", test_long_text);
    CU_add_test(s, "random texts against strtod / strtof", test_differential);
    CU_add_test(s, "unsigned integers against max", test_uint);
    CU_add_test(s, "whole-string integers as strtoll", test_int_str);
    CU_add_test(s, "whole-string doubles as strtod", test_double_str);
    return CU_get_error();
}
