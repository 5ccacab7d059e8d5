/*
 * log.h - leveled log lines: "2026-11-28 15:04:05.123 ps2 INFO message".
 *
 * One logger per process, set up by main with log_init(). The level is
 * checked before the arguments are formatted, so a disabled LOG_DEBUG costs
 * one comparison. Lines go to stderr unless log_init() names a file.
 *
 * Logs are for people reading what happened. Progress lines and metrics are
 * not logs: see progress.h. A live progress line shares the log's stream,
 * though, so the logger owns it (log_live()): before a log line it erases
 * the live line, after it draws it again, and a log line never starts in
 * the middle of the live one.
 *
 * Thread-safety: lines (and the live line) are written under one mutex, so
 * lines from several threads do not interleave. log_init() must run before
 * any thread is started.
 */
#ifndef FUNNEL_LOG_H
#define FUNNEL_LOG_H

#include <stdio.h>

enum { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* The logger's whole state; main owns the one instance through log_init(). */
typedef struct log_conf {
    char role[32];  /* e.g. "ps2", "worker1", "gen" */
    int level;      /* LOG_LEVEL_* */
    FILE *out;      /* stderr by default */
    char live[512]; /* the live line drawn at the end of the stream, "" for none */
} log_conf_t;

/* Set role name + rank (rank < 0: no number), minimum level, and stream
 * (NULL: stderr). */
void log_init(const char *role, int rank, int level, FILE *out);

int log_enabled(int level);

/*
 * Draw text as the live line: at the start of the log's stream's last
 * line, replacing the previous live line (a terminal is expected: the line
 * is redrawn with "\r" and cleared with ESC [K). Log lines written while a
 * live line is up erase it first and redraw it after. NULL or "" ends the
 * live line: it stays on screen and the next output starts on a new line.
 * Text longer than 511 bytes is cut.
 */
void log_live(const char *text);
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...)                   \
    do {                                   \
        if (log_enabled(lvl))              \
            log_write((lvl), __VA_ARGS__); \
    } while (0)
#define LOG_DEBUG(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
