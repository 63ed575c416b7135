/* Lines appended to a file by a thread of its own; see include/sluice/linewriter.h. */
#include "sluice/linewriter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/log.h"

/* Writes an item that is a whole line as it is, with one write. */
static bool linewriter_write_plain(int fd, const char *item, void *arg)
{
    size_t n = strlen(item);

    (void)arg;
    return write(fd, item, n) == (ssize_t)n;
}

/* The writer: takes items in order and writes them. */
static void *linewriter_main(void *arg)
{
    struct linewriter *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        char *item;

        while (w->count == 0 && !w->stopping)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->count == 0 && w->stopping)
            break;
        item = w->queue[w->head];
        w->head = (w->head + 1) % w->cap;
        w->count--;
        /* A reopened file takes over between two lines. */
        if (w->reopen_fd >= 0) {
            close(w->fd);
            w->fd = w->reopen_fd;
            w->reopen_fd = -1;
        }
        pthread_mutex_unlock(&w->lock);
        if (!w->write(w->fd, item, w->arg)) {
            int err = errno;
            atomic_fetch_add(&w->lost, 1);
            /* Said once when it starts failing, and once when it works again. */
            if (!atomic_exchange(&w->failing, true))
                log_error("cannot write the %s %s: %s; records are lost until it can be written "
                          "again",
                          w->what, w->path, strerror(err));
        } else if (atomic_exchange(&w->failing, false)) {
            log_notice("the %s %s is written again; %" PRIu64 " records were lost", w->what,
                       w->path, (uint64_t)atomic_load(&w->lost));
        }
        free(item);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Closes the file and frees the queue and the path (the writer is not running). */
static void linewriter_release(struct linewriter *w)
{
    close(w->fd);
    w->fd = -1;
    free(w->queue);
    w->queue = NULL;
    free(w->path);
    w->path = NULL;
}

/* Opens the file and starts the writer; see the header. */
int linewriter_open(struct linewriter *w, const char *path, const char *what, size_t cap,
                    linewriter_write_fn write, void *arg, char *err, size_t errcap)
{
    sigset_t all, old;
    int rc;

    w->what = what;
    w->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        snprintf(err, errcap, "cannot open the %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    w->queue = calloc(cap, sizeof(*w->queue));
    w->path = strdup(path);
    if (w->queue == NULL || w->path == NULL) {
        snprintf(err, errcap, "cannot open the %s %s: out of memory", what, path);
        goto fail;
    }
    w->cap = cap;
    w->head = 0;
    w->count = 0;
    w->write = write != NULL ? write : linewriter_write_plain;
    w->arg = arg;
    w->stopping = false;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, linewriter_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errcap, "cannot start the %s's writer: %s", what, strerror(rc));
        goto fail;
    }
    w->open = true;
    atomic_store(&w->enabled, true);
    return 0;

fail:
    linewriter_release(w);
    return -1;
}

/* Stops the writer and closes the file; see the header. */
void linewriter_close(struct linewriter *w)
{
    if (!w->open)
        return;
    atomic_store(&w->enabled, false);
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL); /* it writes what is queued first */
    if (w->reopen_fd >= 0) {
        close(w->fd);
        w->fd = w->reopen_fd;
        w->reopen_fd = -1;
    }
    if (fsync(w->fd) < 0 && errno != EINVAL)
        log_warn("cannot sync the %s %s: %s", w->what, w->path, strerror(errno));
    linewriter_release(w);
    w->open = false;
}

/* Opens the path again; see the header. */
int linewriter_reopen(struct linewriter *w, char *err, size_t errcap)
{
    int fd;

    if (!w->open) {
        snprintf(err, errcap, "no %s is open", w->what != NULL ? w->what : "file");
        return -1;
    }
    fd = open(w->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errcap, "cannot reopen the %s %s: %s; writing on to the old file", w->what,
                 w->path, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&w->lock);
    if (w->reopen_fd >= 0)
        close(w->reopen_fd); /* two reopens before a line: the later one counts */
    w->reopen_fd = fd;
    pthread_mutex_unlock(&w->lock);
    return 0;
}

bool linewriter_enabled(struct linewriter *w)
{
    return atomic_load(&w->enabled);
}

/* Queues an item; see the header. */
void linewriter_queue(struct linewriter *w, char *item)
{
    bool queued = false;

    if (item != NULL) {
        pthread_mutex_lock(&w->lock);
        if (w->open && !w->stopping && w->count < w->cap) {
            w->queue[(w->head + w->count) % w->cap] = item;
            w->count++;
            queued = true;
            pthread_cond_signal(&w->wake);
        }
        pthread_mutex_unlock(&w->lock);
    }
    if (!queued) {
        free(item);
        atomic_fetch_add(&w->lost, 1);
        if (!atomic_exchange(&w->failing, true))
            log_error("the %s's queue is full (the disk is slower than the traffic): records are "
                      "lost until it drains",
                      w->what);
    }
}

bool linewriter_failing(struct linewriter *w)
{
    return linewriter_enabled(w) && atomic_load(&w->failing);
}

uint64_t linewriter_lost(struct linewriter *w)
{
    return atomic_load(&w->lost);
}
