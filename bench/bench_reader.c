/*
 * bench_reader.c - throughput of the log reader on tsv1 with the 8 default
 * slots, uncompressed and gzip, on one core.
 *
 *   bin/bench-reader [LINES]      (default 2000000)
 *
 * Writes a synthetic log (fixed seed; multi-valued `tag` with weights on
 * some tokens, like real logs) into a fresh temp directory, gzips a copy
 * with gzip(1), reads each file to the end with one reader into 512-row
 * batches, prints lines/s and MB/s (uncompressed bytes) of the best of a
 * few runs, and removes its files. Prints numbers; asserts nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/clock.h"
#include "common/log.h"
#include "data/reader.h"
#include "worker/worker_conf.h"

#define BATCH_ROWS 512
#define RUNS 3

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64*: fixed sequence for a fixed seed */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static int write_log(const char *path, long lines)
{
    FILE *f = fopen(path, "wb");
    uint64_t s = 20261128;

    if (!f)
        return -1;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    for (long i = 0; i < lines; i++) {
        uint64_t a = next_rand(&s), b = next_rand(&s);
        int click = a % 20 == 0, action = click && (a >> 8) % 6 == 0;
        int buy = click && (a >> 16) % 40 == 0;

        fprintf(f,
                "%d\t%d\t%d\tuser_id:u%llu item_id:i%llu cate_id:c%llu shop_id:s%llu "
                "brand_id:b%llu position:%llu hour:%llu tag:t%llu",
                click, action, buy, (unsigned long long)(a >> 20) % 1000000,
                (unsigned long long)(b % 5000000), (unsigned long long)(b >> 24) % 3000,
                (unsigned long long)(b >> 36) % 80000, (unsigned long long)(a >> 40) % 20000,
                (unsigned long long)(a >> 4) % 20, (unsigned long long)(a >> 12) % 24,
                (unsigned long long)(b >> 50) % 500);
        if ((b >> 8) % 3 == 0)
            fprintf(f, ":%.2f tag:t%llu:0.5", (double)((b >> 10) % 100) / 100.0,
                    (unsigned long long)(a >> 30) % 500);
        fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Read path to the end once; lines read into *lines. Returns seconds or < 0. */
static double read_once(const model_spec_t *ms, const char *path, uint64_t *lines)
{
    reader_opts_t o;
    reader_t *rd = NULL;
    batch_t b;
    errbuf_t eb;
    char *paths[1] = {(char *)path};
    double t0;
    int rc;

    memset(&o, 0, sizeof(o));
    o.workers = 1;
    if (reader_open(&rd, ms, &o, paths, 1, &eb) != 0) {
        fprintf(stderr, "bench-reader: %s\n", eb.msg);
        return -1;
    }
    batch_init(&b, ms->nslots, BATCH_ROWS);
    t0 = clock_now_s();
    while ((rc = reader_next_batch(rd, &b, BATCH_ROWS, &eb)) == 0)
        ;
    t0 = clock_now_s() - t0;
    if (rc != ERR_EOF) {
        fprintf(stderr, "bench-reader: %s\n", eb.msg);
        t0 = -1;
    }
    *lines = reader_stats(rd)->lines;
    if (reader_stats(rd)->rejected)
        fprintf(stderr, "bench-reader: %llu lines rejected\n",
                (unsigned long long)reader_stats(rd)->rejected);
    batch_release(&b);
    reader_destroy(&rd);
    return t0;
}

static int bench(const model_spec_t *ms, const char *name, const char *path, uint64_t bytes)
{
    double best = 1e30;
    uint64_t lines = 0;

    for (int i = 0; i < RUNS; i++) {
        double t = read_once(ms, path, &lines);
        if (t < 0)
            return -1;
        if (t < best)
            best = t;
    }
    printf("reader tsv1 %s: %.0f lines/s, %.1f MB/s (%llu lines, %.1f MB, best of %d: %.3f s)\n",
           name, (double)lines / best, (double)bytes / best / 1e6, (unsigned long long)lines,
           (double)bytes / 1e6, RUNS, best);
    return 0;
}

int main(int argc, char **argv)
{
    long lines = argc > 1 ? atol(argv[1]) : 2000000;
    const char *tmp = getenv("TMPDIR");
    char dir[512], plain[600], gz[600], cmd[1400];
    worker_conf_t wc;
    model_spec_t ms;
    errbuf_t eb;
    struct stat st;
    int rc = 1;

    log_init("bench", -1, LOG_LEVEL_WARN, NULL);
    if (lines <= 0) {
        fprintf(stderr, "usage: bench-reader [LINES]\n");
        return 2;
    }
    if (conf_defaults(&worker_conf_schema, &wc, &eb) != 0 ||
        model_spec_from_conf(&ms, &wc.model, &eb) != 0) {
        fprintf(stderr, "bench-reader: %s\n", eb.msg);
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s/funnel-bench-reader-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("bench-reader: mkdtemp");
        return 1;
    }
    snprintf(plain, sizeof(plain), "%s/log.tsv", dir);
    snprintf(gz, sizeof(gz), "%s/log.tsv.gz", dir);
    if (write_log(plain, lines) != 0 || stat(plain, &st) != 0) {
        perror("bench-reader: write log");
        goto done;
    }
    snprintf(cmd, sizeof(cmd), "gzip -c '%s' > '%s'", plain, gz);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench-reader: gzip failed\n");
        goto done;
    }
    printf("reader: %d slots, %ld lines, %.1f MB uncompressed\n", ms.nslots, lines,
           (double)st.st_size / 1e6);
    if (bench(&ms, "plain", plain, (uint64_t)st.st_size) == 0 &&
        bench(&ms, "gzip", gz, (uint64_t)st.st_size) == 0)
        rc = 0;
done:
    unlink(plain);
    unlink(gz);
    rmdir(dir);
    return rc;
}
