/*
 * check_data.h - `funnel-worker check-data FILE...`: validate logs the way
 * a user would before a long job, and print what is in them.
 *
 * Reads every file with one reader (rank 0 of 1, never strict, so every
 * bad line is counted) and prints to a stream: lines read, accepted,
 * rejected by reason, per declared slot the token count and the number of
 * distinct keys, undeclared-slot tokens, the undeclared slots by name with
 * their token counts and the declared slots without tokens
 * (data/slotuse.h), and the label rates. It trains
 * nothing and writes nothing but, with key_dict, the key dictionary
 * (common/keydict.h). Thread-safety: none needed (one call per run).
 */
#ifndef FUNNEL_CHECK_DATA_H
#define FUNNEL_CHECK_DATA_H

#include <stdio.h>

#include "common/err.h"
#include "worker/worker_conf.h"

/*
 * Check the logs at paths (files or glob patterns) under the model and
 * [data] settings of wc (format, report_rejects; strict is ignored) and
 * print the report to out. The first rejected lines are also logged as
 * "file:line: reason" (report_rejects of them).
 * Returns 0 if no line was rejected and the slots fit the log, 1 if any
 * line (of a data or Ali-CCP common-features file) was rejected or the log
 * has undeclared slots (unless allow_unknown_slots) or declared slots
 * without tokens (unless allow_unused_slots): the report's "slots:" line
 * names them and what to change. A negative ERR_* (eb filled) when
 * the files cannot be read: ERR_IO, ERR_CORRUPT, ERR_CONFIG, ERR_NOMEM.
 */
int check_data_run(const worker_conf_t *wc, char *const *paths, int npaths, FILE *out,
                   errbuf_t *eb);

#endif
