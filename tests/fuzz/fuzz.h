/*
 * fuzz.h - what funnel's libFuzzer targets share: a model layout to parse
 * against, and an input turned into a file a path-taking parser can open
 * (memfd, no disk traffic).
 *
 * Each target is one fuzz_<name>.c defining LLVMFuzzerTestOneInput(); its
 * seed corpus is tests/fuzz/corpus/<name>/. `make fuzz` builds them with
 * clang, libFuzzer, ASan and UBSan; `make fuzz-smoke` (run by `make test`)
 * runs each for a few seconds; README "Fuzzing" says how to run them longer.
 *
 * Thread-safety: libFuzzer calls a target from one thread.
 */
#ifndef FUNNEL_FUZZ_H
#define FUNNEL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "common/model_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The default [model] layout, with slots replaced by `slots` if not NULL.
 * Aborts on failure (a harness bug, not a finding). */
void fuzz_spec(model_spec_t *ms, const char *slots);

/* A memfd holding data[0, size); *path is "/proc/self/fd/N". Returns the
 * fd (close it when done). Aborts on failure. */
int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t path_len);

#endif
