/*
 * bench_mem.c - does a shard keep to its mem_limit under a stream of new
 * keys? (issue 11: with mem_limit 32 MB a shard held up to 12x that.)
 *
 *   bin/bench-mem [KEYS] [LIMIT_MB...]     (default: 3000000 keys; 32 128)
 *
 * For each limit it starts a real funnel-ps ($FUNNEL_BIN/funnel-ps,
 * default bin/) on an ipc:// endpoint inside a scratch directory in
 * $TMPDIR, one slot of dim 16 with Adagrad (144 bytes of row payload),
 * mem_limit LIMIT, max_rows and max_new_rows off (the stream is the
 * point). Then it pulls KEYS never-seen keys in requests of 4096 (each one
 * creates 4096 rows: the attack of the issue, bounded per request), with
 * a flush every 64 requests as a running shard's timer would, and samples
 * the shard's /proc/PID/status every 64 requests:
 *   VmRSS   resident memory, split into RssAnon (heap, slabs, indexes,
 *           RocksDB's memtables: what the process owns) and RssFile
 *           (pages of mmap()ed RocksDB table files: page cache mapped
 *           into the process, clean, reclaimable by the kernel at any
 *           time, and shared with every reader of the same files);
 *   VmHWM   the peak of VmRSS.
 * It prints each sample's keys, RSS, RssAnon, RssFile and the table's own
 * bytes_resident (STATS), each divided by mem_limit, then the peak ratios.
 * The last line is one JSON object. Nothing is asserted; the shard is
 * stopped with SIGTERM (SIGKILL after 30 s, and if this process dies,
 * through PR_SET_PDEATHSIG) and the scratch directory removed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/dirs.h"
#include "common/err.h"
#include "proto/msg.h"
#include "proto/ps_client.h"

#define REQ 4096        /* new keys per request */
#define SAMPLE_EVERY 64 /* requests between samples (and flushes) */

typedef struct sample {
    double rss, anon, file, hwm; /* bytes */
} sample_t;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void die(const char *what, const errbuf_t *eb)
{
    fprintf(stderr, "bench-mem: %s: %s\n", what, eb ? eb->msg : strerror(errno));
    exit(1);
}

/* The kB value of "Name:" in /proc/pid/status, in bytes (0 if absent). */
static double status_bytes(const char *text, const char *name)
{
    const char *p = strstr(text, name);

    return p ? strtod(p + strlen(name), NULL) * 1024.0 : 0.0;
}

static int sample_pid(pid_t pid, sample_t *s)
{
    char path[64], text[8192];
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    s->rss = status_bytes(text, "VmRSS:");
    s->anon = status_bytes(text, "RssAnon:");
    s->file = status_bytes(text, "RssFile:");
    s->hwm = status_bytes(text, "VmHWM:");
    return 0;
}

static pid_t start_shard(const char *bin, const char *dir, const char *ep, long limit_mb)
{
    char prog[DIRS_PATH_MAX + 16], data[DIRS_PATH_MAX + 32], log[DIRS_PATH_MAX + 32], mem[32];
    pid_t parent = getpid(), pid;

    snprintf(prog, sizeof(prog), "%s/funnel-ps", bin);
    snprintf(data, sizeof(data), "%s/data-%ld", dir, limit_mb);
    snprintf(log, sizeof(log), "%s/ps-%ld.log", dir, limit_mb);
    snprintf(mem, sizeof(mem), "%ldM", limit_mb);
    char *argv[] = {prog,   "--listen",   (char *)ep, "--data",         data, "--slots",
                    "s0",   "--emb_dim",  "16",       "--towers",       "8",  "--mem_limit",
                    mem,    "--max_rows", "0",        "--max_new_rows", "0",  "--flush_interval",
                    "3600", NULL};
    if (access(prog, X_OK) != 0) {
        fprintf(stderr, "bench-mem: %s: %s (set FUNNEL_BIN)\n", prog, strerror(errno));
        exit(1);
    }
    pid = fork();
    if (pid < 0)
        die("fork", NULL);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* the shard dies with us */
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(prog, argv);
        _exit(127);
    }
    return pid;
}

static void stop_shard(pid_t pid)
{
    int st;

    kill(pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return;
        usleep(100 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

static uint64_t stat_u64(ps_client_t *c, const char *name, errbuf_t *eb)
{
    msg_t m, rep;

    msg_init(&m, MSG_STATS, 0);
    m.u.cmd.text.ptr = name;
    m.u.cmd.text.len = (uint32_t)strlen(name);
    if (ps_client_call(c, 0, &m, &rep, eb) != 0)
        die("STATS", eb);
    for (uint32_t i = 0; i < rep.u.kv.n; i++)
        if (rep.u.kv.kv[i].name.len == strlen(name))
            return rep.u.kv.kv[i].u64;
    return 0;
}

static void cmd(ps_client_t *c, int type, errbuf_t *eb)
{
    msg_t m, rep;

    msg_init(&m, type, 0);
    if (ps_client_call(c, 0, &m, &rep, eb) != 0)
        die(msg_type_name(type), eb);
}

/* Stream keys new keys at a shard with mem_limit limit_mb; print samples.
 * Returns the peak ratios in *peak (rss, anon, file, hwm over the limit). */
static void run(const char *bin, const char *dir, long limit_mb, uint64_t keys, sample_t *peak,
                double *seconds)
{
    char ep[DIRS_PATH_MAX + 16], buf[DIRS_PATH_MAX + 16];
    char *eps[1] = {buf};
    double lim = (double)limit_mb * 1048576.0, t0;
    uint64_t *kb = malloc(REQ * sizeof(uint64_t));
    ps_client_t *c = NULL;
    ps_client_opts_t o = {.sender = MSG_SENDER_TOOL, .timeout_ms = 30000, .deadline_s = 120};
    errbuf_t eb = {{0}};
    pid_t pid;
    sample_t s;

    if (!kb)
        die("malloc", NULL);
    snprintf(ep, sizeof(ep), "ipc://%s/ps-%ld.sock", dir, limit_mb);
    snprintf(buf, sizeof(buf), "%s", ep);
    pid = start_shard(bin, dir, ep, limit_mb);
    if (ps_client_open(&c, eps, 1, &o, &eb) != 0)
        die("connect", &eb);
    stat_u64(c, "requests", &eb); /* waits until the shard serves */
    memset(peak, 0, sizeof(*peak));
    printf("\nmem_limit %ld MB: %llu new keys in requests of %d\n", limit_mb,
           (unsigned long long)keys, REQ);
    printf("%10s %10s %8s %8s %8s %8s %12s\n", "keys", "RSS MB", "RSS/lim", "anon/lim", "file/lim",
           "HWM/lim", "table/lim");
    if (sample_pid(pid, &s) != 0)
        die("read /proc status", NULL);
    printf("%10d %10.1f %8.2f %8.2f %8.2f %8.2f %12s  (started, empty)\n", 0, s.rss / 1048576.0,
           s.rss / lim, s.anon / lim, s.file / lim, s.hwm / lim, "-");
    t0 = clock_now_s();
    for (uint64_t done = 0, r = 0; done < keys && !stop; r++) {
        uint32_t n = keys - done < REQ ? (uint32_t)(keys - done) : REQ;
        msg_t m, rep;
        for (uint32_t i = 0; i < n; i++)
            kb[i] = (done + i + 1) * 0x9e3779b97f4a7c15ULL; /* distinct, scattered */
        msg_init(&m, MSG_PULL, 0);
        m.u.rows.nslots = 1;
        m.u.rows.slot[0] = (msg_slot_t){0, n, 0, kb, NULL, NULL, NULL};
        if (ps_client_call(c, 0, &m, &rep, &eb) != 0)
            die("PULL", &eb);
        done += n;
        if ((r + 1) % SAMPLE_EVERY == 0 || done == keys) {
            cmd(c, MSG_FLUSH, &eb);
            uint64_t table = stat_u64(c, "bytes_resident", &eb);
            if (sample_pid(pid, &s) != 0)
                die("read /proc status", NULL);
            printf("%10llu %10.1f %8.2f %8.2f %8.2f %8.2f %12.2f\n", (unsigned long long)done,
                   s.rss / 1048576.0, s.rss / lim, s.anon / lim, s.file / lim, s.hwm / lim,
                   (double)table / lim);
            fflush(stdout);
            if (s.rss > peak->rss)
                peak->rss = s.rss;
            if (s.anon > peak->anon)
                peak->anon = s.anon;
            if (s.file > peak->file)
                peak->file = s.file;
            peak->hwm = s.hwm;
        }
    }
    *seconds = clock_now_s() - t0;
    peak->rss /= lim, peak->anon /= lim, peak->file /= lim, peak->hwm /= lim;
    printf("mem_limit %ld MB: peak RSS %.2fx (anon %.2fx, file-backed %.2fx), VmHWM %.2fx "
           "the limit; %.0f keys/s\n",
           limit_mb, peak->rss, peak->anon, peak->file, peak->hwm, (double)keys / *seconds);
    ps_client_destroy(&c);
    stop_shard(pid);
    free(kb);
}

int main(int argc, char **argv)
{
    const char *bin = getenv("FUNNEL_BIN") ? getenv("FUNNEL_BIN") : "bin";
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    uint64_t keys = argc > 1 ? strtoull(argv[1], NULL, 10) : 3000000;
    long limits[8] = {32, 128};
    int nl = 2;
    char dir[DIRS_PATH_MAX];
    sample_t peak[8];
    double secs[8];

    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: bench-mem [KEYS] [LIMIT_MB...]   (default 3000000; 32 128)\n");
        return 0;
    }
    if (argc > 2) {
        nl = 0;
        for (int i = 2; i < argc && nl < 8; i++)
            limits[nl++] = strtol(argv[i], NULL, 10);
    }
    if (keys == 0 || nl == 0)
        return fprintf(stderr, "bench-mem: give KEYS > 0 and limits in MB\n"), 2;
    snprintf(dir, sizeof(dir), "%s/bench-mem-XXXXXX", tmp);
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (int i = 0; i < nl && !stop; i++)
        run(bin, dir, limits[i], keys, &peak[i], &secs[i]);
    dirs_remove_tree(dir, NULL);
    printf("{\"bench\":\"mem\",\"keys\":%llu,\"request\":%d,\"runs\":[", (unsigned long long)keys,
           REQ);
    for (int i = 0; i < nl; i++)
        printf("%s{\"mem_limit_mb\":%ld,\"peak_rss_ratio\":%.3f,\"peak_anon_ratio\":%.3f,"
               "\"peak_file_ratio\":%.3f,\"hwm_ratio\":%.3f,\"keys_per_s\":%.0f}",
               i ? "," : "", limits[i], peak[i].rss, peak[i].anon, peak[i].file, peak[i].hwm,
               (double)keys / secs[i]);
    printf("]}\n");
    return stop ? 1 : 0;
}
