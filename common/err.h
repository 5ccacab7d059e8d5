/*
 * err.h - funnel's error codes and a small carrier for error detail.
 *
 * Every fallible function in funnel returns int: 0 on success, one of the
 * negative ERR_* codes below on failure. The list is written once (X-macro)
 * and err_strerror() is generated from it.
 *
 * Functions that can say more than a code (which file, which line, which
 * key) also take an errbuf_t *: they fill it with a one-line message that
 * names the object and the action, e.g.
 *   "conf/funnel.conf:12: key 'emb_dim': 0 is out of range [1, 1024]".
 * An errbuf_t pointer may be NULL when the caller only wants the code.
 *
 * Thread-safety: err_strerror() is pure; an errbuf_t belongs to its caller.
 */
#ifndef FUNNEL_ERR_H
#define FUNNEL_ERR_H

#include <stddef.h>

/* X(name, value, text) */
#define ERR_LIST(X)                      \
    X(OK, 0, "success")                  \
    X(NOMEM, -1, "out of memory")        \
    X(IO, -2, "I/O error")               \
    X(NOTFOUND, -3, "not found")         \
    X(INVAL, -4, "invalid argument")     \
    X(CONFIG, -5, "configuration error") \
    X(PARSE, -6, "malformed input")      \
    X(PROTO, -7, "protocol error")       \
    X(VERSION, -8, "version mismatch")   \
    X(MISMATCH, -9, "layout mismatch")   \
    X(TIMEOUT, -10, "timed out")         \
    X(STORE, -11, "storage error")       \
    X(TOOBIG, -12, "too large")          \
    X(CORRUPT, -13, "corrupt data")      \
    X(EOF, -14, "end of input")          \
    X(REJECTED, -15, "input rejected")   \
    X(NET, -16, "network error")         \
    X(STOPPED, -17, "stopped")           \
    X(EXISTS, -18, "already exists")     \
    X(BUSY, -19, "busy")                 \
    X(DENIED, -20, "permission denied")

enum {
#define X(name, val, text) ERR_##name = (val),
    ERR_LIST(X)
#undef X
};

/* Text of an error code; never NULL ("unknown error" for unknown codes). */
const char *err_strerror(int code);

#define ERRBUF_MAX 512

typedef struct errbuf {
    char msg[ERRBUF_MAX];
} errbuf_t;

/*
 * Write a formatted message into eb (if eb is not NULL) and return code,
 * so that failures read `return errbuf_set(eb, ERR_IO, "open %s: %s", ...)`.
 */
int errbuf_set(errbuf_t *eb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix the message already in eb with "prefix: ". Returns code. */
int errbuf_prefix(errbuf_t *eb, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
