/*
 * A file that lines are appended to off the event loop: callers on any thread hand a
 * line to a bounded queue and return at once; one writer thread appends the lines in
 * order, each with one write(2), so a reader never sees half of one.  A line the queue
 * has no room for, or whose write fails, is counted lost; the first loss is logged, and
 * so is the first line written again after it.  SIGUSR1's reopen (after logrotate moved
 * the file) takes effect between two lines.  The audit trail (auditlog.h) and the Squid
 * access log (squidlog.h) are each one of these.
 */
#ifndef SLUICE_LINEWRITER_H
#define SLUICE_LINEWRITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Writes one queued item to fd, on the writer thread alone (the hook may keep state
 * that only the writer touches, as the audit trail's chain does).  Returns true when the
 * line reached the file whole; on false, errno says why.  NULL: the item is the line,
 * its newline included, written as it is.
 */
typedef bool (*linewriter_write_fn)(int fd, const char *item, void *arg);

/* One file and its writer; a caller's static, set up with LINEWRITER_INIT.  The members
 * are this module's: callers use the functions below. */
struct linewriter {
    pthread_mutex_t lock; /* guards everything below that is not atomic */
    pthread_cond_t wake;
    pthread_t thread;
    bool open, stopping;
    int fd;           /* the writer's; changed only by the writer, at a reopen */
    int reopen_fd;    /* a file opened again by linewriter_reopen(), for the writer to take */
    char *path;       /* owned */
    const char *what; /* names the file in messages: "audit trail", "Squid log" */
    char **queue;     /* a ring of cap items, each malloc'd and owned by the writer */
    size_t cap, head, count;
    linewriter_write_fn write;
    void *arg;
    atomic_uint_fast64_t lost;
    atomic_bool enabled;
    atomic_bool failing; /* the last write failed, or an item found the queue full */
};

#define LINEWRITER_INIT                                                                            \
    {                                                                                              \
        .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .fd = -1,             \
        .reopen_fd = -1                                                                            \
    }

/*
 * Opens path for appending (created 0600) and starts the writer with signals blocked.
 * what names the file in messages (static storage); cap bounds the queue; write (or NULL)
 * writes each item.  Returns 0, or -1 with a sentence in err.
 */
int linewriter_open(struct linewriter *w, const char *path, const char *what, size_t cap,
                    linewriter_write_fn write, void *arg, char *err, size_t errcap);

/* Writes what is queued, stops the writer, syncs and closes the file.  Nothing when not open. */
void linewriter_close(struct linewriter *w);

/*
 * Opens the path again; the writer takes the new file before its next line.  Returns 0,
 * or -1 with a sentence in err (the old file stays in use).
 */
int linewriter_reopen(struct linewriter *w, char *err, size_t errcap);

/* True while the file is open and takes lines. */
bool linewriter_enabled(struct linewriter *w);

/*
 * Queues item (any thread), taking it (malloc'd; NULL counts a loss, as from a failed
 * allocation).  An item the queue has no room for is freed and counted lost.
 */
void linewriter_queue(struct linewriter *w, char *item);

/* True while the last write failed or the queue was full; a line written again ends it. */
bool linewriter_failing(struct linewriter *w);

/* Lines lost so far. */
uint64_t linewriter_lost(struct linewriter *w);

#endif /* SLUICE_LINEWRITER_H */
