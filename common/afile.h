/*
 * afile.h - atomic file writes, the one place funnel makes a file appear
 * whole or not at all: the bytes go to PATH.tmp, which is flushed and
 * fsynced, renamed over PATH, and then the directory holding PATH is
 * fsynced so the rename itself survives a crash.
 *
 * A crash leaves either the old PATH (or none) or the complete new one,
 * plus at worst a stale PATH.tmp that the next write truncates. Readers
 * never see a half-written PATH.
 *
 * Thread-safety: an afile_t belongs to one thread; two writers of the same
 * path race on PATH.tmp (funnel never does that).
 */
#ifndef FUNNEL_AFILE_H
#define FUNNEL_AFILE_H

#include <stddef.h>
#include <stdio.h>

#include "common/dirs.h"
#include "common/err.h"

typedef struct afile {
    FILE *f;                  /* write here between open and commit */
    char path[DIRS_PATH_MAX]; /* the destination */
    char tmp[DIRS_PATH_MAX];  /* path + ".tmp" */
} afile_t;

/*
 * Start writing path: creates (truncates) path.tmp and opens af->f on it.
 * Returns 0, ERR_INVAL for a path too long, ERR_IO naming path.tmp. On
 * error af holds nothing to release.
 */
int afile_open(afile_t *af, const char *path, errbuf_t *eb);

/*
 * Finish: flush, fsync and close af->f, rename path.tmp over path, fsync
 * path's directory. Returns 0 or ERR_IO naming the step and the file
 * (write errors of earlier fprintf calls surface here); on error path.tmp
 * is removed and path is untouched. af is released either way.
 */
int afile_commit(afile_t *af, errbuf_t *eb);

/* Give up: close af->f and remove path.tmp; path is untouched. Accepts an
 * af whose open failed or that was already committed or aborted. */
void afile_abort(afile_t *af);

/* Write len bytes of data as path, atomically (open, one write, commit). */
int afile_write(const char *path, const void *data, size_t len, errbuf_t *eb);

/* fsync directory dir (makes renames and creations in it durable).
 * Returns 0 or ERR_IO naming dir. */
int afile_fsync_dir(const char *dir, errbuf_t *eb);

/* fsync the directory that holds path ("." for a bare file name). */
int afile_fsync_parent(const char *path, errbuf_t *eb);

#endif
