/*
 * fuzz_util.c - helpers of the fuzz targets (fuzz.h). Linked into every
 * target; has no LLVMFuzzerTestOneInput of its own.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/conf.h"
#include "tests/fuzz/fuzz.h"

void fuzz_spec(model_spec_t *ms, const char *slots)
{
    static const conf_key_t keys[] = {
#define ROW(...) CONF_ROW(model_conf_t, __VA_ARGS__)
        MODEL_CONF_KEYS(ROW)
#undef ROW
    };
    const conf_schema_t sc = {"model", keys, sizeof(keys) / sizeof(keys[0]), NULL};
    model_conf_t mc;
    errbuf_t eb = {0};

    if (conf_defaults(&sc, &mc, &eb) != 0 ||
        (slots && conf_set(&sc, &mc, "slots", slots, "fuzz", &eb) != 0) ||
        model_spec_from_conf(ms, &mc, &eb) != 0) {
        fprintf(stderr, "fuzz_spec: %s\n", eb.msg);
        abort();
    }
    conf_release(&sc, &mc);
}

int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t path_len)
{
    int fd = memfd_create("fuzz-input", 0);
    size_t off = 0;

    if (fd < 0)
        abort();
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    snprintf(path, path_len, "/proc/self/fd/%d", fd);
    return fd;
}
