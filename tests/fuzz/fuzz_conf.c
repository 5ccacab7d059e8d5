/*
 * fuzz_conf.c - the config parser: the input is a config file (a memfd)
 * loaded with funnel-ps's and funnel-worker's key tables; what loads is
 * turned into a model layout, as a program does next.
 */
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/ps_conf.h"
#include "tests/fuzz/fuzz.h"
#include "worker/worker_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof(path));
    model_spec_t ms;
    errbuf_t eb;
    ps_conf_t pc;
    worker_conf_t wc;

    memset(&pc, 0, sizeof(pc)); /* conf_release() below frees only what was set */
    memset(&wc, 0, sizeof(wc));
    if (conf_defaults(&ps_conf_schema, &pc, &eb) == 0 &&
        conf_load_file(&ps_conf_schema, &pc, path, &eb) == 0)
        (void)model_spec_from_conf(&ms, &pc.model, &eb);
    if (conf_defaults(&worker_conf_schema, &wc, &eb) == 0 &&
        conf_load_file(&worker_conf_schema, &wc, path, &eb) == 0)
        (void)model_spec_from_conf(&ms, &wc.model, &eb);
    conf_release(&ps_conf_schema, &pc); /* also after a failed load: TEXT values set so far */
    conf_release(&worker_conf_schema, &wc);
    close(fd);
    return 0;
}
