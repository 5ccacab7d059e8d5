/*
 * log.c - leveled log lines with time and role. See log.h.
 */
#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static log_conf_t g_log = {"funnel", LOG_LEVEL_INFO, NULL, ""};
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER; /* lines and the live line */

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_init(const char *role, int rank, int level, FILE *out)
{
    if (rank >= 0)
        snprintf(g_log.role, sizeof(g_log.role), "%s%d", role, rank);
    else
        snprintf(g_log.role, sizeof(g_log.role), "%s", role);
    g_log.level = level;
    g_log.out = out;
}

int log_enabled(int level)
{
    return level >= g_log.level;
}

void log_write(int level, const char *fmt, ...)
{
    char msg[2048], stamp[32];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    FILE *out = g_log.out ? g_log.out : stderr;

    if (level < 0 || level > LOG_LEVEL_ERROR)
        level = LOG_LEVEL_ERROR;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_log_mu);
    if (g_log.live[0])
        fputs("\r\033[K", out);
    fprintf(out, "%s.%03d %s %s %s\n", stamp, (int)(tv.tv_usec / 1000), g_log.role,
            level_names[level], msg);
    if (g_log.live[0])
        fputs(g_log.live, out);
    fflush(out);
    pthread_mutex_unlock(&g_log_mu);
}

void log_live(const char *text)
{
    FILE *out = g_log.out ? g_log.out : stderr;

    pthread_mutex_lock(&g_log_mu);
    if (text && text[0]) {
        snprintf(g_log.live, sizeof(g_log.live), "%s", text);
        fprintf(out, "\r%s\033[K", g_log.live);
    } else if (g_log.live[0]) {
        fputc('\n', out);
        g_log.live[0] = '\0';
    }
    fflush(out);
    pthread_mutex_unlock(&g_log_mu);
}
