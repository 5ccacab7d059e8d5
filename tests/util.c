/*
 * util.c - test helpers. See util.h.
 */
#define _GNU_SOURCE
#include "tests/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 64

static pid_t children[MAX_CHILDREN];
static int nchildren;
static int atexit_done;

static const char *tmp_root(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

int tu_mkdtemp(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "%s/funnel-test-%s-XXXXXX", tmp_root(), tag);
    return mkdtemp(buf) ? 0 : -1;
}

void tu_rmtree(const char *path)
{
    char cmd[4096];

    if (!path || strncmp(path, tmp_root(), strlen(tmp_root())) != 0 || strstr(path, ".."))
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

const char *tu_bin(char *buf, size_t len, const char *name)
{
    const char *b = getenv("FUNNEL_BIN");
    snprintf(buf, len, "%s/%s", b && *b ? b : "bin", name);
    return buf;
}

int tu_sh(const char *out_path, const char *fmt, ...)
{
    char cmd[8192], full[8400];
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (out_path)
        snprintf(full, sizeof(full), "( %s ) > '%s' 2>&1", cmd, out_path);
    else
        snprintf(full, sizeof(full), "%s", cmd);
    st = system(full);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

pid_t tu_spawn(const char *log_path, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    pid_t pid;

    if (!atexit_done) {
        atexit(tu_stop_all);
        atexit_done = 1;
    }
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        if (log_path && !freopen(log_path, "a", stdout))
            _exit(127);
        if (log_path)
            dup2(STDOUT_FILENO, STDERR_FILENO);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    if (nchildren < MAX_CHILDREN)
        children[nchildren++] = pid;
    return pid;
}

int tu_stop(pid_t pid, int sig)
{
    int st = 0;

    if (pid <= 0)
        return -1;
    kill(-pid, sig);
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            goto reaped;
        if (r < 0)
            return -1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &st, 0);
reaped:
    for (int i = 0; i < nchildren; i++)
        if (children[i] == pid)
            children[i] = children[--nchildren];
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void tu_stop_all(void)
{
    while (nchildren > 0)
        tu_stop(children[nchildren - 1], SIGKILL);
}

char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

int tu_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    int rc;

    if (!f)
        return -1;
    rc = fputs(text, f) < 0 ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

int tu_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int tu_small_log(const char *path, int n)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -1;
    for (int i = 0; i < n; i++)
        fprintf(f, "%d\t%d\t0\tuser_id:u%d item_id:i%d tag:t%d\n", i % 3 == 0, i % 6 == 0, i % 7,
                i % 11, i % 5);
    return fclose(f);
}

int tu_world(char *dir, size_t len, const char *tag, const char *gen_args)
{
    char gen[600];

    if (tu_mkdtemp(dir, len, tag) != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    return tu_sh(NULL, "%s --out %s/data %s > %s/gen.log 2>&1", gen, dir, gen_args, dir) == 0 ? 0
                                                                                              : -1;
}
