/*
 * emb_bundle.h - `funnel-emb bundle SRC --out DIR [--since PREV]`: write the
 * serving bundle (table/bundle.h, docs/BUNDLE.md) of a model directory or a
 * checkpoint of any shard count, with the delta since PREV if given.
 *
 * Thread-safety: one call per process.
 */
#ifndef FUNNEL_EMB_BUNDLE_H
#define FUNNEL_EMB_BUNDLE_H

#include <stdio.h>

/* Run the command on argv[0] = "bundle" and its arguments; messages to err.
 * Returns the exit status: 0, 1 (failed), 2 (bad usage). */
int emb_bundle_cli(int argc, char **argv, FILE *out, FILE *err);

#endif
