/*
 * fuzz_meta.c - the META reader: the input is a META file in a scratch
 * directory (made once, removed at exit); what reads is checked against
 * the default layout, as a model load does, and written back and read
 * again, which must give the same answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/meta.h"
#include "tests/fuzz/fuzz.h"

static char dir[64];
static char file[96];

static void cleanup(void)
{
    char tmp[128];
    unlink(file);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, META_FILE);
    unlink(tmp);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static meta_t running;
    meta_t m, again;
    errbuf_t eb;
    FILE *f;

    if (!dir[0]) {
        model_spec_t ms;
        snprintf(dir, sizeof(dir), "/tmp/funnel-fuzz-meta-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        snprintf(file, sizeof(file), "%s/%s", dir, META_FILE);
        atexit(cleanup);
        fuzz_spec(&ms, NULL);
        meta_from_spec(&running, &ms, 2, 3, 1000);
    }
    f = fopen(file, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    if (meta_read(dir, &m, &eb) != 0)
        return 0;
    (void)meta_check(&m, &running, dir, &eb);
    if (meta_write(dir, &m, &eb) != 0 || meta_read(dir, &again, &eb) != 0)
        abort(); /* a META that reads must survive a write and read back */
    if (meta_check(&again, &m, dir, &eb) != 0)
        abort();
    return 0;
}
