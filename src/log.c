/* Diagnostics log: see include/sluice/log.h. */
#include "sluice/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

static atomic_int log_level = LOGL_NOTICE;

/* Bytes of lines a thread may hold before it writes them. */
#define LOG_BUFFER_MAX (32 * 1024)

/* A thread's lines not written yet, while it buffers (log_buffer_start). */
struct log_buffer {
    size_t len;
    void (*wake)(void *arg); /* asks the thread to call log_flush() soon */
    void *arg;
    char data[LOG_BUFFER_MAX];
};

/* The calling thread's buffer, or NULL when it writes each line at once. */
static _Thread_local struct log_buffer *log_tls;

static const char *const log_level_names[] = {"error", "warn", "notice", "info", "debug"};

/* Sets the current level, clamped to the known levels. */
void log_set_level(int level)
{
    if (level < LOGL_ERROR)
        level = LOGL_ERROR;
    if (level > LOGL_DEBUG)
        level = LOGL_DEBUG;
    atomic_store(&log_level, level);
}

/* True when lines at level are written. */
bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

/* Writes len bytes to stderr with as few write(2) calls as it takes. */
static void log_out(const char *data, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t w = write(STDERR_FILENO, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
}

/* Writes what the calling thread holds. */
void log_flush(void)
{
    if (log_tls == NULL || log_tls->len == 0)
        return;
    log_out(log_tls->data, log_tls->len);
    log_tls->len = 0;
}

/* Makes the calling thread hold its lines until log_flush(); see the header. */
int log_buffer_start(void (*wake)(void *arg), void *arg)
{
    if (log_tls == NULL && (log_tls = malloc(sizeof(*log_tls))) == NULL)
        return -1;
    log_tls->len = 0;
    log_tls->wake = wake;
    log_tls->arg = arg;
    return 0;
}

/* Writes what is held and makes the calling thread write each line at once again. */
void log_buffer_stop(void)
{
    log_flush();
    free(log_tls);
    log_tls = NULL;
}

/*
 * Hands one finished line on: into the thread's buffer when it holds lines (asking for a
 * flush when the buffer was empty), else, and for warnings and errors, straight out.
 */
static void log_emit(const char *line, size_t len, bool urgent)
{
    struct log_buffer *b = log_tls;

    if (b == NULL || urgent) {
        log_flush(); /* what came before goes first */
        log_out(line, len);
        return;
    }
    if (b->len + len > sizeof(b->data))
        log_flush();
    if (b->len == 0 && b->wake != NULL)
        b->wake(b->arg);
    memcpy(b->data + b->len, line, len);
    b->len += len;
}

/* Formats one line and hands it to log_emit(). */
static void log_write(const char *label, bool urgent, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Formats one line and hands it to log_emit(). */
static void log_write(const char *label, bool urgent, const char *fmt, va_list ap)
{
    char line[4096];
    struct timespec now;
    struct tm tm;
    size_t off;
    int n;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line + off, sizeof(line) - off, ".%03ldZ %s ", now.tv_nsec / 1000000L, label);
    if (n > 0)
        off += (size_t)n;
    n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
    if (n < 0)
        n = 0;
    off += (size_t)n;
    if (off > sizeof(line) - 2)
        off = sizeof(line) - 2; /* truncated: keep the line ending */
    line[off++] = '\n';
    log_emit(line, off, urgent);
}

/* Writes one line at level when the level lets it through. */
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    if (log_enabled(level))
        log_write(log_level_names[level], level <= LOGL_WARN, fmt, ap);
}

/* Writes one line of the record, whatever the level. */
void log_record(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_write(log_level_names[LOGL_NOTICE], false, fmt, ap);
    va_end(ap);
}

/* Writes one formatted line at level. */
void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

/* Escapes network bytes for a log line; see the header for the exact rules. */
char *log_escape(char *dst, size_t cap, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        char enc[4];
        size_t n = 0;

        if (ch == '"' || ch == '\\') {
            enc[n++] = '\\';
            enc[n++] = (char)ch;
        } else if (ch >= 0x20 && ch < 0x7f) {
            enc[n++] = (char)ch;
        } else {
            enc[n++] = '\\';
            enc[n++] = 'x';
            enc[n++] = hex[ch >> 4];
            enc[n++] = hex[ch & 15];
        }
        if (o + n + 4 > cap) {
            /* Room is kept for "..." and the NUL whenever the input does not fit. */
            if (cap >= 4) {
                memcpy(dst + (o < cap - 4 ? o : cap - 4), "...", 4);
                return dst;
            }
            break;
        }
        memcpy(dst + o, enc, n);
        o += n;
    }
    dst[o < cap ? o : cap - 1] = '\0';
    return dst;
}

/* libevent log callback: maps its severities onto ours. */
static void log_libevent_cb(int severity, const char *msg)
{
    enum log_level level = LOGL_DEBUG;

    if (severity == EVENT_LOG_ERR)
        level = LOGL_ERROR;
    else if (severity == EVENT_LOG_WARN)
        level = LOGL_WARN;
    else if (severity == EVENT_LOG_MSG)
        level = LOGL_INFO;
    log_msg(level, "libevent: %s", msg);
}

/* Installs the libevent log callback. */
void log_route_libevent(void)
{
    event_set_log_callback(log_libevent_cb);
}
