/*
 * util.h - helpers shared by the test suites: scratch directories, running
 * the real programs from $FUNNEL_BIN (default "bin"), background processes
 * that are always stopped, and endpoints that never clash between parallel
 * runs (ipc:// paths inside the test's own scratch directory).
 */
#ifndef FUNNEL_TEST_UTIL_H
#define FUNNEL_TEST_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Create a fresh scratch directory under $TMPDIR (or /tmp); path into buf.
 * Returns 0 or -1. */
int tu_mkdtemp(char *buf, size_t len, const char *tag);

/* rm -rf path (refuses anything outside the temp root). */
void tu_rmtree(const char *path);

/* Path of a program: "$FUNNEL_BIN/name" into buf; returns buf. */
const char *tu_bin(char *buf, size_t len, const char *name);

/* Run a shell command; its stdout+stderr go to out_path if not NULL.
 * Returns the exit status (0..255), or -1 if it died by a signal. */
int tu_sh(const char *out_path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Start a shell command in the background (own process group), output to
 * log_path. Returns the pid or -1. Every started process is remembered and
 * killed by tu_stop_all() (also installed with atexit). */
pid_t tu_spawn(const char *log_path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send sig to the process group of pid and reap it (SIGKILL after 5 s if it
 * does not exit on SIGTERM). Returns its exit status or -1. */
int tu_stop(pid_t pid, int sig);
void tu_stop_all(void);

/* A TCP port on 127.0.0.1 that nobody listened on a moment ago (bound,
 * then freed), or -1. */
int tu_free_port(void);

/* Read a whole file into a NUL-terminated heap buffer (caller frees). */
char *tu_slurp(const char *path, size_t *len);

/* A scratch directory (tu_mkdtemp with tag, into dir) holding a
 * funnel-gen world in dir/data made with gen_args (e.g. "--train 80000
 * --test 4000 --seed 11"), its output in dir/gen.log. Returns 0 or -1. */
int tu_world(char *dir, size_t len, const char *tag, const char *gen_args);

/* Write a string to a file. Returns 0 or -1. */
int tu_write(const char *path, const char *text);

/* A small tsv1 log of n rows over the slots user_id, item_id and tag
 * (clicks on every third row, buys on every sixth). Returns 0 or -1. */
int tu_small_log(const char *path, int n);

#endif
