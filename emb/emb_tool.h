/*
 * emb_tool.h - funnel-emb, the embedding-table inspection tool: reads a
 * shard's data directory, a model directory or a checkpoint, opened
 * read-only (safe beside a running shard: it sees the rows as of the
 * shard's last flush), and answers what operators ask first.
 *
 *   stats                     rows per slot, bytes per row, update-count and
 *                             age histograms
 *   get SLOT:VALUE|KEY ...    a row's embedding, optimizer state, update
 *                             count and days - or that it has none
 *   top --by count|norm|age   the N rows with the most updates, the largest
 *                             L2 norm, or the oldest last-seen day
 *   dump                      every row as tsv or jsonl
 *   diff DIR_B                rows added, removed and changed, with the
 *                             distribution of L2 changes per slot
 *   export --out F [--since PREV]
 *                             the serving export (emb_export.h): every row,
 *                             or the delta since the checkpoint PREV
 *   apply DELTA --out F       DIR is a full export: apply the delta to it
 *   export-dump               DIR is an export file: print it as text
 *
 * Slot names and dims come from the [model] configuration (--conf), which
 * must match the table's (rows whose width differs are reported).
 *
 * Thread-safety: one call per process.
 */
#ifndef FUNNEL_EMB_TOOL_H
#define FUNNEL_EMB_TOOL_H

#include <stdio.h>

#include "common/err.h"
#include "common/model_conf.h"

typedef struct emb_tool_args {
    const char *cmd;        /* stats, get, top, dump, diff, export, apply, export-dump */
    const char *dir;        /* data, model or checkpoint directory */
    char *const *args;      /* get: tokens or keys; diff: the other directory */
    int nargs;
    const char *slot;       /* restrict to one slot, or NULL */
    const char *by;         /* top: count, norm or age */
    long n;                 /* top: rows */
    int json;               /* --json / --format jsonl */
    int day;                /* current day for ages; export: day of a store without META */
    const char *out;        /* export, apply: the file to write */
    const char *since;      /* export: the previous checkpoint (a delta), or NULL (full) */
} emb_tool_args_t;

/* Run one subcommand, writing to out. Returns 0, 1 ("not found" answers of
 * get), or a negative ERR_* with eb filled. */
int emb_tool_run(const model_spec_t *ms, const emb_tool_args_t *a, FILE *out, errbuf_t *eb);

#endif
