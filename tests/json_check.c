/*
 * json_check.c - the tests' strict JSON reader. See json_check.h.
 */
#include "tests/json_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jc {
    const unsigned char *p, *end, *start;
    const char *want;
    size_t want_len;
    int found;
    const char *why;
    unsigned char str[4096]; /* the string being decoded */
    size_t slen;
} jc_t;

static int fail(jc_t *c, const char *why)
{
    if (!c->why)
        c->why = why;
    return -1;
}

static void ws(jc_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
        c->p++;
}

static int put(jc_t *c, uint32_t cp)
{
    unsigned char b[4];
    size_t n;

    if (cp < 0x80)
        b[0] = (unsigned char)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (unsigned char)(0xc0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        b[0] = (unsigned char)(0xe0 | cp >> 12), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (unsigned char)(0x80 | (cp & 0x3f)), n = 3;
    else
        b[0] = (unsigned char)(0xf0 | cp >> 18), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
        b[3] = (unsigned char)(0x80 | (cp & 0x3f)), n = 4;
    if (c->slen + n > sizeof(c->str))
        return fail(c, "string too long for the checker");
    memcpy(c->str + c->slen, b, n);
    c->slen += n;
    return 0;
}

static int hex4(jc_t *c, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        if (c->p >= c->end)
            return fail(c, "cut \\u escape");
        unsigned char h = *c->p++;
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0)
            return fail(c, "bad hex digit in \\u escape");
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* One raw UTF-8 character (first byte >= 0x80) into str. */
static int raw_utf8(jc_t *c)
{
    unsigned char b = *c->p;
    int n = b >= 0xc2 && b <= 0xdf   ? 2
            : b >= 0xe0 && b <= 0xef ? 3
            : b >= 0xf0 && b <= 0xf4 ? 4
                                     : 0;
    uint32_t cp = n == 2 ? b & 0x1fu : n == 3 ? b & 0x0fu : b & 0x07u;

    if (n == 0 || c->end - c->p < n)
        return fail(c, "invalid UTF-8");
    for (int i = 1; i < n; i++) {
        if ((c->p[i] & 0xc0) != 0x80)
            return fail(c, "invalid UTF-8");
        cp = cp << 6 | (c->p[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return fail(c, "invalid UTF-8 (overlong or surrogate)");
    c->p += n;
    return put(c, cp);
}

static int string(jc_t *c)
{
    c->slen = 0;
    c->p++; /* the opening quote */
    for (;;) {
        if (c->p >= c->end)
            return fail(c, "unterminated string");
        unsigned char b = *c->p;
        if (b == '"') {
            c->p++;
            break;
        }
        if (b < 0x20)
            return fail(c, "raw control byte in a string");
        if (b >= 0x80) {
            if (raw_utf8(c) != 0)
                return -1;
            continue;
        }
        c->p++;
        if (b != '\\') {
            if (put(c, b) != 0)
                return -1;
            continue;
        }
        if (c->p >= c->end)
            return fail(c, "cut escape");
        b = *c->p++;
        const char *simple = strchr("\"\\/bfnrt", b);
        if (b && simple) {
            static const char to[] = "\"\\/\b\f\n\r\t";
            if (put(c, (unsigned char)to[simple - "\"\\/bfnrt"]) != 0)
                return -1;
            continue;
        }
        if (b != 'u')
            return fail(c, "unknown escape");
        uint32_t cp, lo;
        if (hex4(c, &cp) != 0)
            return -1;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return fail(c, "lone low surrogate");
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u')
                return fail(c, "lone high surrogate");
            c->p += 2;
            if (hex4(c, &lo) != 0)
                return -1;
            if (lo < 0xdc00 || lo > 0xdfff)
                return fail(c, "bad surrogate pair");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (put(c, cp) != 0)
            return -1;
    }
    if (c->want && c->slen == c->want_len && memcmp(c->str, c->want, c->slen) == 0)
        c->found++;
    return 0;
}

static int digits(jc_t *c)
{
    const unsigned char *s = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > s ? 0 : fail(c, "digits expected");
}

static int number(jc_t *c)
{
    if (*c->p == '-')
        c->p++;
    if (c->p < c->end && *c->p == '0')
        c->p++;
    else if (digits(c) != 0)
        return -1;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (digits(c) != 0)
            return -1;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (digits(c) != 0)
            return -1;
    }
    return 0;
}

static int word(jc_t *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
        return fail(c, "unexpected character");
    c->p += n;
    return 0;
}

static int value(jc_t *c, int depth)
{
    if (depth > 64)
        return fail(c, "nested too deep");
    ws(c);
    if (c->p >= c->end)
        return fail(c, "value expected");
    switch (*c->p) {
    case '"': return string(c);
    case 't': return word(c, "true");
    case 'f': return word(c, "false");
    case 'n': return word(c, "null");
    case '[':
    case '{': {
        int obj = *c->p == '{';
        char close = obj ? '}' : ']';
        c->p++;
        ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (obj) {
                ws(c);
                if (c->p >= c->end || *c->p != '"')
                    return fail(c, "object key expected");
                if (string(c) != 0)
                    return -1;
                ws(c);
                if (c->p >= c->end || *c->p != ':')
                    return fail(c, "':' expected");
                c->p++;
            }
            if (value(c, depth + 1) != 0)
                return -1;
            ws(c);
            if (c->p < c->end && *c->p == ',') {
                c->p++;
                continue;
            }
            if (c->p < c->end && *c->p == close) {
                c->p++;
                return 0;
            }
            return fail(c, obj ? "',' or '}' expected" : "',' or ']' expected");
        }
    }
    default:
        if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))
            return number(c);
        return fail(c, "unexpected character");
    }
}

int jc_check_lines(const char *text, const char *want, size_t want_len, int *found)
{
    const char *line = text;
    int n = 0;
    jc_t *c = calloc(1, sizeof(*c));

    if (!c)
        return -1;
    c->want = want;
    c->want_len = want_len;
    while (*line) {
        const char *nl = strchr(line, '\n');
        const char *end = nl ? nl : line + strlen(line);
        c->start = c->p = (const unsigned char *)line;
        c->end = (const unsigned char *)end;
        ws(c);
        if (c->p < c->end) {
            int rc = value(c, 0);
            ws(c);
            if (rc == 0 && c->p != c->end)
                rc = fail(c, "text after the value");
            if (rc != 0) {
                fprintf(stderr, "json_check: line %d, byte %ld: %s\n", n + 1,
                        (long)(c->p - c->start), c->why);
                free(c);
                return -1;
            }
            n++;
        }
        line = nl ? nl + 1 : end;
    }
    if (found)
        *found = c->found;
    free(c);
    return n;
}
