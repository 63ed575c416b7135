/*
 * Diagnostics log: levelled lines on stderr, whole lines in each write(2) so workers never
 * interleave (a worker writes the lines of up to 50 ms together), libevent's own
 * messages routed in, and an escaper for network bytes.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Severity of a diagnostic line; a line is written when its level <= the current level. */
enum log_level {
    LOGL_ERROR = 0, /* the program or a listener cannot go on */
    LOGL_WARN,      /* something a user should look at, the program goes on */
    LOGL_NOTICE,    /* normal but significant: start, stop, one access line per request */
    LOGL_INFO,      /* per-connection events worth seeing while debugging a setup */
    LOGL_DEBUG,     /* internals */
};

/* Sets the current level (clamped to the enum's range). */
void log_set_level(int level);

/* True when a line at level would be written; check it before costly formatting. */
bool log_enabled(enum log_level level);

/* Writes one line at level: a UTC timestamp, the level name, then the formatted text. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same as log_msg with a va_list. */
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/*
 * Writes one line of the record of what left the machine (the access line), labelled
 * "notice" like the lines around it but never held back by the level: -q quietens the
 * diagnostics, not the record.
 */
void log_record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Copies src[0..len) into dst (capacity cap > 0, always NUL-terminated), escaping every
 * byte that is not printable ASCII, and '"' and '\\', so a network peer cannot forge
 * log lines or terminal escapes.  Output that does not fit ends in "...".  Returns dst.
 */
char *log_escape(char *dst, size_t cap, const char *src, size_t len);

/*
 * Makes the calling thread (a worker) hold its lines, warnings and errors excepted, and
 * write them together with one write(2) when log_flush() is called or the buffer fills:
 * one call for a batch of lines instead of one call each.  wake(arg) runs when the first
 * line of a batch is held, so that the thread arranges a log_flush() soon (a worker: 50 ms
 * later).  Returns 0, or -1 when out of memory (lines then go at once).
 */
int log_buffer_start(void (*wake)(void *arg), void *arg);

/* Writes what the calling thread holds, if anything. */
void log_flush(void);

/* Writes what the calling thread holds and stops holding lines. */
void log_buffer_stop(void);

/* Routes libevent's internal warnings and errors into this log. */
void log_route_libevent(void);

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_notice(...)                                                                            \
    do {                                                                                           \
        if (log_enabled(LOGL_NOTICE))                                                              \
            log_msg(LOGL_NOTICE, __VA_ARGS__);                                                     \
    } while (0)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_enabled(LOGL_INFO))                                                                \
            log_msg(LOGL_INFO, __VA_ARGS__);                                                       \
    } while (0)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOGL_DEBUG))                                                               \
            log_msg(LOGL_DEBUG, __VA_ARGS__);                                                      \
    } while (0)

#endif /* SLUICE_LOG_H */
