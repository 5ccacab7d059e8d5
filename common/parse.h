/*
 * parse.h - numbers from text, the one place funnel turns digits into
 * values: decimal floats and unsigned integers read from a byte range (a
 * field of a log line, not NUL-terminated), and integers and floats read
 * from a whole C string (a config value) the way strtoll / strtod read it.
 *
 * The byte-range parsers accept exactly
 *     [+|-] digits [. digits] [(e|E) [+|-] digits]
 * with at least one digit before or after the point, and nothing else: no
 * blanks, no hex, no "inf" or "nan". Their value is strtod's / strtof's on
 * the same text, correctly rounded (so parse_float() is not parse_double()
 * rounded again to float). A value too large for the type is refused; one
 * too small rounds to zero or a subnormal, as strtod does.
 *
 * NOTES ON THE DESIGN
 *
 * Most numbers in logs are short: up to 17 significant digits and a power
 * of ten within [-22, 22] for double (7 digits, mantissa below 2^24, within
 * [-10, 10] for float). Both the digits and the power of ten are then exact
 * in the type, so one multiply or divide gives the correctly rounded value
 * with no library call. The log reader does this for every weighted token,
 * so the scan and that fast path are static inline here. Everything else
 * goes to strtod / strtof on a NUL-terminated copy on the stack; text of
 * PARSE_COPY_MAX bytes or more that needs that copy is refused (a log field
 * that long is not a weight anyone wrote).
 *
 * Thread-safety: pure functions. strtod reads the locale's decimal point;
 * funnel never calls setlocale(), so that is always '.'.
 */
#ifndef FUNNEL_PARSE_H
#define FUNNEL_PARSE_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define PARSE_COPY_MAX 128 /* bytes; text off the fast path must be shorter */

/* A decimal as scanned: value = (neg ? -1 : 1) * m * 10^exp10 when exact. */
typedef struct parse_dec {
    uint64_t m; /* the digits, without the point, while below 10^17 */
    int exp10;  /* power of ten, with the exponent and the digits after the point */
    int neg;    /* a '-' sign */
    int exact;  /* 0: digits or exponent digits were dropped; m, exp10 are not the value */
} parse_dec_t;

/*
 * Check [p, p+len) against the grammar above and scan it into *d.
 * Returns 0, or ERR_PARSE for text outside the grammar.
 */
static inline int parse_dec_scan(const char *p, size_t len, parse_dec_t *d)
{
    const char *s = p, *end = p + len;
    int digits = 0;

    d->m = 0;
    d->exp10 = 0;
    d->neg = 0;
    d->exact = 1;
    if (s < end && (*s == '+' || *s == '-'))
        d->neg = *s++ == '-';
    for (; s < end && *s >= '0' && *s <= '9'; s++, digits++) {
        if (d->m < UINT64_C(100000000000000000))
            d->m = d->m * 10 + (uint64_t)(*s - '0');
        else
            d->exact = 0;
    }
    if (s < end && *s == '.') {
        for (s++; s < end && *s >= '0' && *s <= '9'; s++, digits++) {
            if (d->m < UINT64_C(100000000000000000)) {
                d->m = d->m * 10 + (uint64_t)(*s - '0');
                d->exp10--;
            } else {
                d->exact = 0;
            }
        }
    }
    if (digits == 0)
        return ERR_PARSE;
    if (s < end && (*s == 'e' || *s == 'E')) {
        int eneg = 0, e = 0, edigits = 0;

        s++;
        if (s < end && (*s == '+' || *s == '-'))
            eneg = *s++ == '-';
        for (; s < end && *s >= '0' && *s <= '9'; s++, edigits++) {
            if (e < 100000)
                e = e * 10 + (*s - '0');
            else
                d->exact = 0; /* exponent cut short: only strtod knows the value */
        }
        if (edigits == 0)
            return ERR_PARSE;
        d->exp10 += eneg ? -e : e;
    }
    return s == end ? 0 : ERR_PARSE;
}

/*
 * The slow paths of parse_double() and parse_float(): strtod / strtof on a
 * NUL-terminated copy of [p, p+len), which must already match the grammar.
 * Return 0 and *v, or ERR_PARSE when len >= PARSE_COPY_MAX or the value is
 * not finite in the type.
 */
int parse_double_copy(const char *p, size_t len, double *v);
int parse_float_copy(const char *p, size_t len, float *v);

/*
 * Parse the decimal [p, p+len) (no NUL needed) into *v: strtod's value,
 * finite. Returns 0, or ERR_PARSE for text outside the grammar, a value
 * beyond DBL_MAX, or text that is off the fast path and PARSE_COPY_MAX
 * bytes or longer. *v is set only on success.
 */
static inline int parse_double(const char *p, size_t len, double *v)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    parse_dec_t d;
    double x;

    if (parse_dec_scan(p, len, &d) != 0)
        return ERR_PARSE;
    if (!d.exact || d.m >= (UINT64_C(1) << 53) || d.exp10 < -22 || d.exp10 > 22)
        return parse_double_copy(p, len, v);
    /* Both operands exact: one correctly rounded operation. */
    x = d.exp10 < 0 ? (double)d.m / pow10[-d.exp10] : (double)d.m * pow10[d.exp10];
    *v = d.neg ? -x : x;
    return 0;
}

/*
 * Parse the decimal [p, p+len) (no NUL needed) into *v: strtof's value,
 * finite. Returns 0, or ERR_PARSE as parse_double() (beyond FLT_MAX).
 */
static inline int parse_float(const char *p, size_t len, float *v)
{
    static const float pow10[] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f,
                                  1e6f, 1e7f, 1e8f, 1e9f, 1e10f};
    parse_dec_t d;
    float x;

    if (parse_dec_scan(p, len, &d) != 0)
        return ERR_PARSE;
    /* With FLT_EVAL_METHOD != 0 float arithmetic would round twice. */
    if (FLT_EVAL_METHOD != 0 || !d.exact || d.m >= (UINT64_C(1) << 24) || d.exp10 < -10 ||
        d.exp10 > 10)
        return parse_float_copy(p, len, v);
    x = d.exp10 < 0 ? (float)d.m / pow10[-d.exp10] : (float)d.m * pow10[d.exp10];
    *v = d.neg ? -x : x;
    return 0;
}

/*
 * Parse the unsigned decimal integer [p, p+len) (digits only: no sign, no
 * blanks; no NUL needed) into *v. Returns 0, or ERR_PARSE for an empty or
 * non-digit text or a value above max.
 */
int parse_uint(const char *p, size_t len, uint64_t max, uint64_t *v);

/*
 * Parse the whole C string s as strtoll(s, &end, 10) reads it (leading
 * blanks and a sign allowed, nothing after the digits) into *v. Returns 0,
 * or ERR_PARSE for no digits, anything after them, a value beyond int64_t
 * or outside [lo, hi].
 */
int parse_int_str(const char *s, int64_t lo, int64_t hi, int64_t *v);

/*
 * Parse the whole C string s as strtod(s, &end) reads it (leading blanks,
 * a sign, hex floats allowed, nothing after the number) into *v. Returns
 * 0, or ERR_PARSE for no number, anything after it, a range error (too
 * large, or so small it underflows) or a value that is not finite.
 */
int parse_double_str(const char *s, double *v);

#endif
