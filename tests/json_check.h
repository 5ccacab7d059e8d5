/*
 * json_check.h - a strict JSON reader for the tests (RFC 8259: UTF-8 text,
 * no NaN, no trailing commas, no raw control bytes in strings), so a test
 * can prove that what funnel printed parses and that a name survives the
 * trip. It is independent of common/json.c on purpose: the writer is
 * checked by a reader that does not share its code.
 */
#ifndef FUNNEL_TEST_JSON_CHECK_H
#define FUNNEL_TEST_JSON_CHECK_H

#include <stddef.h>

/*
 * Parse text as JSON lines: every non-empty line one complete JSON value.
 * Returns the number of values, or -1 if any line is not valid JSON (the
 * reason and byte offset go to stderr). If want is not NULL, *found counts
 * the strings (keys and values, after unescaping) equal to want's
 * want_len bytes.
 */
int jc_check_lines(const char *text, const char *want, size_t want_len, int *found);

#endif
