/*
 * dirs.h - directories: creating them the way a user expects of an output path
 * (and removing or copying them whole), and building paths inside them
 * without cutting one short.
 *
 * Creating: missing parents are created too (mkdir -p), so
 * `--data /srv/ps/shard0` or `--model out/day1` work on a fresh machine.
 *
 * Thread-safety: reentrant; concurrent calls creating the same path are
 * fine (an existing directory is not an error).
 */
#ifndef FUNNEL_DIRS_H
#define FUNNEL_DIRS_H

#include <stddef.h>

#include "common/err.h"

/* Bytes of a path buffer, with its NUL. A path built from a longer one
 * (a suffix added) is checked with dirs_path() rather than cut short. */
#define DIRS_PATH_MAX 4096

/*
 * Format a path (printf-style) into buf[len]. Returns 0, or ERR_INVAL
 * ("path too long") if it does not fit: buf then holds a truncated path
 * that must not be used (removing or renaming it would touch another file).
 */
int dirs_path(char *buf, size_t len, errbuf_t *eb, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Create directory `path` (mode 0755 before umask) and any missing parent.
 * An existing directory is success. Returns 0, ERR_INVAL for an empty or
 * over-long path, ERR_IO naming the component that could not be created
 * (a file in the way, no permission, ...).
 */
int dirs_make(const char *path, errbuf_t *eb);

/*
 * Remove path and everything below it (rm -rf; symlinks are removed, not
 * followed). A missing path is success. Returns 0 or ERR_IO naming the path.
 */
int dirs_remove_tree(const char *path, errbuf_t *eb);

/*
 * Copy the plain files of directory `from` into `to` (made with its
 * parents if missing), each fsynced; subdirectories are skipped (a RocksDB
 * store has none). Returns 0 or ERR_IO naming the file.
 */
int dirs_copy_files(const char *from, const char *to, errbuf_t *eb);

#endif
