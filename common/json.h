/*
 * json.h - the one JSON writer: every JSON funnel prints (funnel-emb --json
 * and dump --format jsonl, funnel-worker eval --json and ctl stats --json,
 * the training metrics file) goes through it, so every string is escaped
 * and every number is valid JSON.
 *
 * A streaming writer to a FILE: values are written as they are given, with
 * commas and colons placed from a small nesting stack, so a dump of
 * millions of rows needs no tree in memory. It writes; it does not parse.
 *
 * Strings: '"' and '\' are escaped, control bytes (< 0x20) become \n, \t,
 * \r, \b, \f or \u00XX, valid UTF-8 passes through unchanged, and every
 * byte that is not part of valid UTF-8 becomes U+FFFD (JSON text must be
 * UTF-8), so the output always parses and a valid UTF-8 name round-trips.
 * Numbers: non-finite doubles are written as null (JSON has no NaN).
 *
 * Misuse (a value where a key is due, closing more than was opened, nesting
 * deeper than JSON_MAX_DEPTH) is a programmer error and asserts.
 *
 * Why not a library: Debian's libjansson builds a tree before printing;
 * a streaming writer of about 150 lines is what the dumps need, and keeps
 * funnel's third-party list as it is.
 *
 * Thread-safety: one json_t per thread.
 */
#ifndef FUNNEL_JSON_H
#define FUNNEL_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

typedef struct json {
    FILE *f;
    int depth;                            /* open objects and arrays */
    unsigned char count[JSON_MAX_DEPTH];  /* values written at each level (0, 1: more) */
    unsigned char is_obj[JSON_MAX_DEPTH]; /* 1: object, 0: array */
    int want_value;                       /* a key was written; its value is due */
} json_t;

/* Start writing to f (caller owns f). */
void json_init(json_t *j, FILE *f);

void json_object_begin(json_t *j);
void json_object_end(json_t *j);
void json_array_begin(json_t *j);
void json_array_end(json_t *j);

/* A key inside an object: the next value is its value. */
void json_key(json_t *j, const char *key);
void json_keyn(json_t *j, const char *key, size_t len);

/* Values. json_str(j, NULL) writes null. */
void json_str(json_t *j, const char *s);
void json_strn(json_t *j, const char *s, size_t len);
void json_u64(json_t *j, uint64_t v);
void json_i64(json_t *j, int64_t v);
void json_bool(json_t *j, int v);
void json_null(json_t *j);
/* A double with up to `digits` significant digits (17 round-trips a
 * double, 9 a float); null if not finite. */
void json_num(json_t *j, double v, int digits);
/* A 64-bit key as 16 lowercase hex digits in a string (JSON numbers lose
 * precision above 2^53 in most readers). */
void json_hex64(json_t *j, uint64_t v);

/* Key and value in one call. */
void json_kv_str(json_t *j, const char *key, const char *s);
void json_kv_u64(json_t *j, const char *key, uint64_t v);
void json_kv_i64(json_t *j, const char *key, int64_t v);
void json_kv_num(json_t *j, const char *key, double v, int digits);

/* End a JSON-lines record: asserts everything is closed, writes '\n'. */
void json_end_line(json_t *j);

/* Write s as a JSON string (quotes included) to f: for a caller that only
 * needs one escaped string. */
void json_write_string(FILE *f, const char *s, size_t len);

#endif
