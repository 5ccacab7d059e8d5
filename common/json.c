/*
 * json.c - the streaming JSON writer. See json.h.
 */
#include "common/json.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

void json_init(json_t *j, FILE *f)
{
    memset(j, 0, sizeof(*j));
    j->f = f;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if the
 * bytes there are not one (overlong, surrogate, above U+10FFFF, cut). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void json_write_string(FILE *f, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    fputc('"', f);
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c == '\b') {
            fputs("\\b", f);
        } else if (c == '\f') {
            fputs("\\f", f);
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
        } else if (c < 0x80) {
            fputc(c, f);
        } else {
            size_t len = utf8_len(s + i, n - i);
            if (len == 0) {
                fputs("\\ufffd", f);
            } else {
                fwrite(s + i, 1, len, f);
                i += len - 1;
            }
        }
        i++;
    }
    fputc('"', f);
}

/* Before any value or key: the separator its position needs. */
static void sep(json_t *j, int is_key)
{
    if (j->depth == 0) {
        assert(!is_key);
        return;
    }
    int top = j->depth - 1;
    if (j->want_value) {
        assert(!is_key && j->is_obj[top]);
        j->want_value = 0;
        return;
    }
    assert(is_key == j->is_obj[top]); /* objects take keys, arrays values */
    if (j->count[top])
        fputc(',', j->f);
    j->count[top] = 1;
}

static void begin(json_t *j, int obj)
{
    sep(j, 0);
    assert(j->depth < JSON_MAX_DEPTH);
    j->is_obj[j->depth] = (unsigned char)obj;
    j->count[j->depth] = 0;
    j->depth++;
    fputc(obj ? '{' : '[', j->f);
}

static void close_level(json_t *j, int obj)
{
    assert(j->depth > 0 && j->is_obj[j->depth - 1] == obj && !j->want_value);
    j->depth--;
    fputc(obj ? '}' : ']', j->f);
}

void json_object_begin(json_t *j)
{
    begin(j, 1);
}

void json_object_end(json_t *j)
{
    close_level(j, 1);
}

void json_array_begin(json_t *j)
{
    begin(j, 0);
}

void json_array_end(json_t *j)
{
    close_level(j, 0);
}

void json_keyn(json_t *j, const char *key, size_t len)
{
    sep(j, 1);
    json_write_string(j->f, key, len);
    fputc(':', j->f);
    j->want_value = 1;
}

void json_key(json_t *j, const char *key)
{
    json_keyn(j, key, strlen(key));
}

void json_strn(json_t *j, const char *s, size_t len)
{
    sep(j, 0);
    json_write_string(j->f, s, len);
}

void json_str(json_t *j, const char *s)
{
    if (!s)
        json_null(j);
    else
        json_strn(j, s, strlen(s));
}

void json_u64(json_t *j, uint64_t v)
{
    sep(j, 0);
    fprintf(j->f, "%" PRIu64, v);
}

void json_i64(json_t *j, int64_t v)
{
    sep(j, 0);
    fprintf(j->f, "%" PRId64, v);
}

void json_bool(json_t *j, int v)
{
    sep(j, 0);
    fputs(v ? "true" : "false", j->f);
}

void json_null(json_t *j)
{
    sep(j, 0);
    fputs("null", j->f);
}

void json_num(json_t *j, double v, int digits)
{
    sep(j, 0);
    if (isfinite(v))
        fprintf(j->f, "%.*g", digits, v);
    else
        fputs("null", j->f);
}

void json_hex64(json_t *j, uint64_t v)
{
    sep(j, 0);
    fprintf(j->f, "\"%016" PRIx64 "\"", v);
}

void json_kv_str(json_t *j, const char *key, const char *s)
{
    json_key(j, key);
    json_str(j, s);
}

void json_kv_u64(json_t *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_u64(j, v);
}

void json_kv_i64(json_t *j, const char *key, int64_t v)
{
    json_key(j, key);
    json_i64(j, v);
}

void json_kv_num(json_t *j, const char *key, double v, int digits)
{
    json_key(j, key);
    json_num(j, v, digits);
}

void json_end_line(json_t *j)
{
    assert(j->depth == 0 && !j->want_value);
    fputc('\n', j->f);
}
