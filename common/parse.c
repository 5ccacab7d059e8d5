/*
 * parse.c - the library-call halves of parse.h: strtod / strtof on a copy
 * for decimals off the fast path, unsigned integers of a byte range, and
 * whole C strings through strtoll / strtod. See parse.h.
 */
#include "common/parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int parse_double_copy(const char *p, size_t len, double *v)
{
    char tmp[PARSE_COPY_MAX];
    char *end;
    double x;

    if (len >= sizeof(tmp))
        return ERR_PARSE;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    x = strtod(tmp, &end);
    if (end != tmp + len || !isfinite(x))
        return ERR_PARSE;
    *v = x;
    return 0;
}

int parse_float_copy(const char *p, size_t len, float *v)
{
    char tmp[PARSE_COPY_MAX];
    char *end;
    float x;

    if (len >= sizeof(tmp))
        return ERR_PARSE;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    x = strtof(tmp, &end);
    if (end != tmp + len || !isfinite(x))
        return ERR_PARSE;
    *v = x;
    return 0;
}

int parse_uint(const char *p, size_t len, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;

    if (len == 0)
        return ERR_PARSE;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)p[i] - '0';

        if (d > 9 || d > max || x > (max - d) / 10)
            return ERR_PARSE; /* not a digit, or x * 10 + d > max */
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

int parse_int_str(const char *s, int64_t lo, int64_t hi, int64_t *v)
{
    char *end;
    long long x;

    errno = 0;
    x = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || x < lo || x > hi)
        return ERR_PARSE;
    *v = x;
    return 0;
}

int parse_double_str(const char *s, double *v)
{
    char *end;
    double x;

    errno = 0;
    x = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(x))
        return ERR_PARSE;
    *v = x;
    return 0;
}
