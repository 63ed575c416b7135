/* Lines appended to a file by a thread of its own; see include/sluice/linewriter.h. */
#include "sluice/linewriter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/log.h"

/* Bytes at the end of a file looked at for the end of its last whole line. */
#define LINEWRITER_TAIL_SCAN (2 * LINEWRITER_ITEM_MAX)

/* Milliseconds on the monotonic clock. */
static uint64_t linewriter_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The monotonic clock ms from now: the condition variable's clock (linewriter_open). */
static struct timespec linewriter_deadline(uint64_t ms)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

/*
 * Cuts off what follows the file's last newline: a line a crash left unfinished (one
 * write makes it unlikely: a kill inside a write of several pages can leave part of it).
 * Readers never meet half a line, and the next line starts on a line of its own.
 */
static void linewriter_cut_partial(struct linewriter *w)
{
    struct stat st;
    off_t from;
    char *buf;
    ssize_t n;

    if (fstat(w->fd, &st) < 0 || st.st_size == 0 || !S_ISREG(st.st_mode))
        return;
    from = st.st_size > LINEWRITER_TAIL_SCAN ? st.st_size - LINEWRITER_TAIL_SCAN : 0;
    if ((buf = malloc((size_t)(st.st_size - from))) == NULL)
        return;
    n = pread(w->fd, buf, (size_t)(st.st_size - from), from);
    if (n > 0 && buf[n - 1] != '\n') {
        ssize_t end = n;
        while (end > 0 && buf[end - 1] != '\n')
            end--;
        /* No newline in the whole window of a longer file: not a line file to mend. */
        if (end > 0 || from == 0) {
            if (ftruncate(w->fd, from + end) == 0)
                log_warn("the %s %s ended in %zd bytes of a line cut short (sluice was stopped "
                         "in the middle of writing it); they are removed",
                         w->opt.what, w->path, n - end);
            else
                log_error("the %s %s ends in a line cut short, and it cannot be removed: %s",
                          w->opt.what, w->path, strerror(errno));
        }
    }
    free(buf);
}

/* Brings what was written to the disk. */
static void linewriter_sync(struct linewriter *w)
{
    if (!w->dirty)
        return;
    if (fdatasync(w->fd) < 0 && errno != EINVAL)
        log_warn("cannot sync the %s %s: %s", w->opt.what, w->path, strerror(errno));
    w->dirty = false;
    w->synced_ms = linewriter_now_ms();
}

/* PATH.i into out: PATH itself for 0. */
static void linewriter_numbered(const struct linewriter *w, char *out, size_t cap, unsigned i)
{
    if (i == 0)
        snprintf(out, cap, "%s", w->path);
    else
        snprintf(out, cap, "%s.%u", w->path, i);
}

/*
 * The file reached opt.rotate_bytes: it becomes PATH.1 (PATH.1 becomes PATH.2, and so
 * on; the one past opt.keep is removed) and a new PATH takes the next line.  On failure
 * the old file is written on, and tried again after another opt.rotate_bytes.
 */
static void linewriter_rotate(struct linewriter *w)
{
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    int fd;

    linewriter_sync(w);
    linewriter_numbered(w, to, sizeof(to), w->opt.keep);
    if (unlink(to) < 0 && errno != ENOENT)
        log_warn("cannot remove the oldest %s %s: %s", w->opt.what, to, strerror(errno));
    for (unsigned i = w->opt.keep; i > 0; i--) {
        linewriter_numbered(w, from, sizeof(from), i - 1);
        linewriter_numbered(w, to, sizeof(to), i);
        if (rename(from, to) < 0 && errno != ENOENT) {
            log_error("cannot rotate the %s: %s to %s: %s; writing on to %s", w->opt.what, from, to,
                      strerror(errno), w->path);
            w->size = 0;
            return;
        }
    }
    fd = open(w->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("cannot start a new %s %s after rotating: %s; writing on to %s.1", w->opt.what,
                  w->path, strerror(errno), w->path);
        w->size = 0;
        return;
    }
    close(w->fd);
    w->fd = fd;
    w->size = 0;
    /* A reopen asked for before names the file now PATH.1: the new PATH is the one. */
    pthread_mutex_lock(&w->lock);
    if (w->reopen_fd >= 0) {
        close(w->reopen_fd);
        w->reopen_fd = -1;
    }
    pthread_mutex_unlock(&w->lock);
    log_notice("the %s reached %" PRIu64 " bytes: it is now %s.1, and %s goes on", w->opt.what,
               w->opt.rotate_bytes, w->path, w->path);
}

/* Appends the line of one item to the batch. */
static void linewriter_append(struct linewriter *w, const char *item, size_t len)
{
    const struct linewriter_hooks *h = &w->opt.hooks;
    char *out = w->batch + w->batch_len;

    if (w->batch_n == 0 && h->save != NULL)
        h->save(h->arg);
    if (h->line != NULL) {
        w->batch_len += h->line(item, len, out, h->arg);
    } else {
        memcpy(out, item, len);
        w->batch_len += len;
    }
    w->batch_n++;
}

/*
 * Writes the batch with one write(2).  When it cannot be written, what a short write
 * left is cut off again, the hooks' state goes back to before the batch, and its lines
 * are counted lost.
 */
static void linewriter_flush(struct linewriter *w)
{
    ssize_t n;

    if (w->batch_n == 0)
        return;
    n = write(w->fd, w->batch, w->batch_len);
    if (n == (ssize_t)w->batch_len) {
        w->size += w->batch_len;
        w->dirty = true;
        if (w->opt.hooks.written != NULL)
            w->opt.hooks.written(w->opt.hooks.arg);
        if (atomic_exchange(&w->failing, false))
            log_notice("the %s %s is written again; %" PRIu64 " records were lost", w->opt.what,
                       w->path, (uint64_t)atomic_load(&w->lost));
    } else {
        int err = n < 0 ? errno : ENOSPC;
        if (n > 0) {
            off_t end = lseek(w->fd, 0, SEEK_END);
            if (end < 0 || ftruncate(w->fd, end - n) < 0)
                log_error("cannot cut off the part of a line written to the %s %s: %s", w->opt.what,
                          w->path, strerror(errno));
        }
        if (w->opt.hooks.restore != NULL)
            w->opt.hooks.restore(w->opt.hooks.arg);
        atomic_fetch_add(&w->lost, w->batch_n);
        /* Said once when it starts failing, and once when it works again. */
        if (!atomic_exchange(&w->failing, true))
            log_error("cannot write the %s %s: %s; records are lost until it can be written "
                      "again",
                      w->opt.what, w->path, strerror(err));
    }
    w->batch_len = 0;
    w->batch_n = 0;
}

/*
 * Waits, lock held, for items: until the first item after an idle spell (or a reopen, or
 * the stop), or, while lines wait to be synced, until their sync is due.  Woken by an
 * item, it gathers for LINEWRITER_TICK_MS more (or until LINEWRITER_WAKE_AT wait).
 */
static void linewriter_wait(struct linewriter *w)
{
    struct timespec until;
    bool timed = w->dirty;

    if (timed) {
        uint64_t due = w->synced_ms + w->opt.sync_ms, now = linewriter_now_ms();
        until = linewriter_deadline(due > now ? due - now : 0);
    }
    w->asleep = true;
    while (w->asleep && !w->stopping && w->reopen_fd < 0) {
        if (!timed)
            pthread_cond_wait(&w->wake, &w->lock);
        else if (pthread_cond_timedwait(&w->wake, &w->lock, &until) == ETIMEDOUT)
            break;
    }
    w->asleep = false;
    if (w->count == 0) {
        if (w->dirty && linewriter_now_ms() - w->synced_ms >= w->opt.sync_ms) {
            pthread_mutex_unlock(&w->lock);
            linewriter_sync(w);
            pthread_mutex_lock(&w->lock);
        }
        return;
    }
    until = linewriter_deadline(LINEWRITER_TICK_MS);
    while (w->count < LINEWRITER_WAKE_AT && !w->stopping &&
           pthread_cond_timedwait(&w->wake, &w->lock, &until) != ETIMEDOUT)
        ;
}

/* Takes a reopened file, lock held: the old one is synced and closed outside it. */
static void linewriter_take_reopened(struct linewriter *w)
{
    struct stat st;
    int old = w->fd;

    w->fd = w->reopen_fd;
    w->reopen_fd = -1;
    w->size = fstat(w->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    pthread_mutex_unlock(&w->lock);
    if (w->dirty && fdatasync(old) < 0 && errno != EINVAL)
        log_warn("cannot sync the %s %s before reopening it: %s", w->opt.what, w->path,
                 strerror(errno));
    w->dirty = false;
    w->synced_ms = linewriter_now_ms();
    close(old);
    pthread_mutex_lock(&w->lock);
}

/* Frees a list of blocks. */
static void linewriter_free_blocks(struct linewriter_block *list)
{
    struct linewriter_block *next;

    for (; list != NULL; list = next) {
        next = list->next;
        free(list);
    }
}

/* Writes one item, its line in the batch; rotates by size between two lines. */
static void linewriter_write_item(struct linewriter *w, const char *item, size_t len)
{
    if (w->batch_len + len + LINEWRITER_TAIL_MAX > LINEWRITER_BATCH_BYTES)
        linewriter_flush(w);
    if (w->opt.rotate_bytes > 0 && w->size + w->batch_len >= w->opt.rotate_bytes) {
        linewriter_flush(w);
        linewriter_rotate(w);
    }
    linewriter_append(w, item, len);
}

/*
 * Writes the items of the blocks taken from the queue (a list, oldest first), in
 * batches, then keeps up to LINEWRITER_SPARE_BLOCKS of the blocks for the next items
 * and frees the rest.
 */
static void linewriter_write_blocks(struct linewriter *w, struct linewriter_block *taken)
{
    struct linewriter_block *next;

    for (struct linewriter_block *b = taken; b != NULL; b = b->next) {
        size_t at = 0, len;

        while (at < b->used) {
            memcpy(&len, b->data + at, sizeof(len));
            at += sizeof(len);
            linewriter_write_item(w, b->data + at, len);
            at += len;
        }
    }
    linewriter_flush(w);
    pthread_mutex_lock(&w->lock);
    for (; taken != NULL && w->spares < LINEWRITER_SPARE_BLOCKS; taken = next) {
        next = taken->next;
        taken->next = w->spare;
        w->spare = taken;
        w->spares++;
    }
    pthread_mutex_unlock(&w->lock);
    linewriter_free_blocks(taken); /* the rest, outside the lock */
}

/*
 * The writer: takes what is queued, in order, writes it, and syncs at most opt.sync_ms
 * after a write (after each batch when 0).
 */
static void *linewriter_main(void *arg)
{
    struct linewriter *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct linewriter_block *taken;

        /* A reopened file takes over between two batches, items waiting or not. */
        if (w->reopen_fd >= 0)
            linewriter_take_reopened(w);
        if (w->count == 0 && !w->stopping) {
            linewriter_wait(w);
            continue;
        }
        if (w->count == 0) /* stopping, and all written */
            break;
        taken = w->head;
        w->head = w->tail = NULL;
        w->count = 0;
        w->blocks = 0;
        pthread_mutex_unlock(&w->lock);
        linewriter_write_blocks(w, taken);
        if (w->opt.sync_ms == 0 || linewriter_now_ms() - w->synced_ms >= w->opt.sync_ms)
            linewriter_sync(w);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    linewriter_sync(w);
    return NULL;
}

/* Closes the file and frees what the writer held (it is not running). */
static void linewriter_release(struct linewriter *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    linewriter_free_blocks(w->head);
    w->head = w->tail = NULL;
    w->count = w->blocks = 0;
    linewriter_free_blocks(w->spare);
    w->spare = NULL;
    w->spares = 0;
    free(w->batch);
    w->batch = NULL;
    free(w->path);
    w->path = NULL;
}

/* Opens the file and starts the writer; see the header. */
int linewriter_open(struct linewriter *w, const struct linewriter_options *opt,
                    const char *thread_name, char *err, size_t errcap)
{
    struct stat st;
    sigset_t all, old;
    int rc;

    w->opt = *opt;
    if (w->opt.keep == 0)
        w->opt.keep = 1;
    /* Read too: a line a crash left unfinished is looked for at the end. */
    w->fd = open(opt->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (w->fd < 0 && errno == EACCES) /* a file we may only write: appended to unread */
        w->fd = open(opt->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        snprintf(err, errcap, "cannot open the %s %s: %s", opt->what, opt->path, strerror(errno));
        return -1;
    }
    w->head = w->tail = w->spare = NULL;
    w->count = w->blocks = w->spares = 0;
    w->batch = malloc(LINEWRITER_BATCH_BYTES);
    w->path = strdup(opt->path);
    if (w->batch == NULL || w->path == NULL) {
        snprintf(err, errcap, "cannot open the %s %s: out of memory", opt->what, opt->path);
        goto fail;
    }
    w->opt.path = w->path;
    linewriter_cut_partial(w);
    w->size = fstat(w->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    w->batch_len = 0;
    w->batch_n = 0;
    w->dirty = false;
    w->synced_ms = linewriter_now_ms();
    w->stopping = false;
    w->asleep = false;
    {
        /* Its deadlines on the monotonic clock: a clock step does not stretch them. */
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_destroy(&w->wake);
        pthread_cond_init(&w->wake, &attr);
        pthread_condattr_destroy(&attr);
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, linewriter_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errcap, "cannot start the %s's writer: %s", opt->what, strerror(rc));
        goto fail;
    }
    pthread_setname_np(w->thread, thread_name); /* so top -H and perf tell it apart */
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
    pthread_join(w->thread, NULL); /* it writes and syncs what is queued first */
    if (w->reopen_fd >= 0) {
        close(w->reopen_fd);
        w->reopen_fd = -1;
    }
    linewriter_release(w);
    w->open = false;
}

/* Opens the path again; see the header. */
int linewriter_reopen(struct linewriter *w, char *err, size_t errcap)
{
    int fd;

    if (!w->open) {
        snprintf(err, errcap, "no %s is open", w->opt.what != NULL ? w->opt.what : "file");
        return -1;
    }
    fd = open(w->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errcap, "cannot reopen the %s %s: %s; writing on to the old file",
                 w->opt.what, w->path, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&w->lock);
    if (w->reopen_fd >= 0)
        close(w->reopen_fd); /* two reopens before a batch: the later one counts */
    w->reopen_fd = fd;
    /* The writer takes it now, lines waiting or not, so the move is over before the next. */
    if (w->asleep) {
        w->asleep = false;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->lock);
    return 0;
}

bool linewriter_enabled(struct linewriter *w)
{
    return atomic_load(&w->enabled);
}

/*
 * The block the next item of need bytes goes in, lock held: the queue's last one when it
 * has room, else a spare or a new one put at the queue's end, while the queue holds less
 * than LINEWRITER_QUEUE_BYTES of blocks.  NULL: no room, or out of memory.
 */
static struct linewriter_block *linewriter_room(struct linewriter *w, size_t need)
{
    struct linewriter_block *b = w->tail;

    if (b != NULL && b->used + need <= sizeof(b->data))
        return b;
    if ((w->blocks + 1) * LINEWRITER_BLOCK_BYTES > LINEWRITER_QUEUE_BYTES)
        return NULL;
    if (w->spare != NULL) {
        b = w->spare;
        w->spare = b->next;
        w->spares--;
    } else if ((b = malloc(sizeof(*b))) == NULL) {
        return NULL;
    }
    b->next = NULL;
    b->used = 0;
    if (w->tail != NULL)
        w->tail->next = b;
    else
        w->head = b;
    w->tail = b;
    w->blocks++;
    return b;
}

/* Queues an item; see the header. */
void linewriter_queue(struct linewriter *w, const char *item, size_t len)
{
    bool queued = false, closed = false;
    struct linewriter_block *b;

    if (len > LINEWRITER_ITEM_MAX) { /* its maker bounds it: not from a client */
        atomic_fetch_add(&w->lost, 1);
        /* opt.what is static storage: read without the lock, unlike the path. */
        if (!atomic_exchange(&w->failing, true))
            log_error("a line of %zu bytes for the %s is longer than %d: it is lost", len,
                      w->opt.what, LINEWRITER_ITEM_MAX);
        return;
    }
    pthread_mutex_lock(&w->lock);
    closed = !w->open || w->stopping;
    if (!closed && w->count < w->opt.queue && (b = linewriter_room(w, sizeof(len) + len)) != NULL) {
        memcpy(b->data + b->used, &len, sizeof(len));
        memcpy(b->data + b->used + sizeof(len), item, len);
        b->used += sizeof(len) + len;
        w->count++;
        queued = true;
        /* The writer comes by on its own while lines flow; a sleeping one, and one that
         * lets too many gather, is woken. */
        if (w->asleep || w->count == LINEWRITER_WAKE_AT) {
            w->asleep = false;
            pthread_cond_signal(&w->wake);
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (!queued) {
        atomic_fetch_add(&w->lost, 1);
        if (closed) /* the last records of a stop: counted, and said by the one who stops */
            return;
        if (!atomic_exchange(&w->failing, true))
            log_error("the %s's queue is full (the disk is slower than the traffic): records are "
                      "lost until it drains",
                      w->opt.what);
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

size_t linewriter_queue_depth(struct linewriter *w)
{
    size_t n;

    pthread_mutex_lock(&w->lock);
    n = w->open ? w->count : 0;
    pthread_mutex_unlock(&w->lock);
    return n;
}
