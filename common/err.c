/*
 * err.c - error code texts and errbuf helpers. See err.h.
 */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *err_strerror(int code)
{
    switch (code) {
#define X(name, val, text) \
    case (val): return text;
        ERR_LIST(X)
#undef X
    }
    return "unknown error";
}

int errbuf_set(errbuf_t *eb, int code, const char *fmt, ...)
{
    va_list ap;

    if (eb == NULL)
        return code;
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
    va_end(ap);
    return code;
}

int errbuf_prefix(errbuf_t *eb, int code, const char *fmt, ...)
{
    char head[ERRBUF_MAX / 2], old[ERRBUF_MAX];
    va_list ap;

    if (eb == NULL)
        return code;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    memcpy(old, eb->msg, sizeof(old));
    /* Long messages are cut; a prefix names the object, so keep it whole. */
    size_t hl = strlen(head);
    memcpy(eb->msg, head, hl);
    memcpy(eb->msg + hl, ": ", 2);
    size_t room = sizeof(eb->msg) - hl - 3;
    size_t ol = strnlen(old, room);
    memcpy(eb->msg + hl + 2, old, ol);
    eb->msg[hl + 2 + ol] = '\0';
    return code;
}
