/*
 * A file that lines are appended to off the event loop: callers on any thread copy an
 * item into a bounded queue and return at once; one writer thread turns the items into
 * lines, in order, and appends them in batches, each batch with one write(2) of whole
 * lines, so a reader never sees half of one.  Woken by the first item after an idle spell,
 * the writer gathers for LINEWRITER_TICK_MS (or until LINEWRITER_WAKE_AT items wait), so
 * that it and the event loops trade places a few dozen times a second, not once per line.
 *
 * The file is brought to the disk (fdatasync) at most sync_ms after a write and when the
 * writer stops; rotated by size when asked (PATH becomes PATH.1, and so on); reopened
 * between two batches after SIGUSR1 (logrotate moved it).  A last line cut short by a
 * crash is cut off when the file is opened.  A line the queue has no room for, or whose
 * batch cannot be written, is counted lost; the first loss is logged, and so is the first
 * batch written again after it.  The audit trail (auditlog.h) and the Squid access log
 * (squidlog.h) are each one of these.
 */
#ifndef SLUICE_LINEWRITER_H
#define SLUICE_LINEWRITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes a line hook may add to its item (its newline included). */
#define LINEWRITER_TAIL_MAX 256
/* Bytes of one item at most; a longer one is counted lost. */
#define LINEWRITER_ITEM_MAX (32 * 1024)
/* Bytes of lines written with one write(2) at most. */
#define LINEWRITER_BATCH_BYTES (256 * 1024)
/* How long the writer gathers items after the first, and how many wake it at once. */
#define LINEWRITER_TICK_MS 20
#define LINEWRITER_WAKE_AT 1024
/* Bytes of blocks of items waiting at most, whatever their number: a disk that lags holds
 * no more in the queue (the writer holds at most as much again, what it took last). */
#define LINEWRITER_QUEUE_BYTES (64u * 1024 * 1024)
/* Items wait in blocks of this size, one after another in each (see linewriter_block),
 * so that queueing one is a copy, not an allocation freed by another thread. */
#define LINEWRITER_BLOCK_BYTES (64 * 1024)
/* Empty blocks the writer keeps for the next items rather than freeing them. */
#define LINEWRITER_SPARE_BLOCKS 8

/* Items queued one after another: each a size_t length, then its bytes. */
struct linewriter_block {
    struct linewriter_block *next;
    size_t used; /* bytes of data taken */
    char data[LINEWRITER_BLOCK_BYTES];
};

/*
 * What the writer does with each item, on its thread alone (the hooks may keep state only
 * the writer touches, as the audit trail's chain does).  line writes the line of item
 * (len bytes) to out, which has room for len + LINEWRITER_TAIL_MAX bytes, and returns
 * its length, newline included; NULL writes the item as it is (it holds its newline).
 * save is called before the first line of a batch, restore when that batch could not be
 * written, so that state the lines carried goes back to what the file holds; written
 * after a batch was written whole, so that state can be kept where the file is not.
 */
struct linewriter_hooks {
    size_t (*line)(const char *item, size_t len, char *out, void *arg);
    void (*save)(void *arg);
    void (*restore)(void *arg);
    void (*written)(void *arg);
    void *arg;
};

/* How a file is kept. */
struct linewriter_options {
    const char *path;      /* appended to, created 0600; copied */
    const char *what;      /* names the file in messages ("audit trail"); static storage */
    size_t queue;          /* items waiting at most */
    uint32_t sync_ms;      /* fdatasync at most this long after a write; 0: after each batch */
    uint64_t rotate_bytes; /* past this size PATH becomes PATH.1; 0: never */
    uint32_t keep;         /* rotated files kept, PATH.1 to PATH.keep (at least 1) */
    struct linewriter_hooks hooks;
};

/* One file and its writer; a caller's static, set up with LINEWRITER_INIT.  The members
 * are this module's: callers use the functions below. */
struct linewriter {
    pthread_mutex_t lock; /* guards the queue, the spare blocks, stopping, asleep, reopen_fd */
    pthread_cond_t wake;
    pthread_t thread;
    bool open, stopping;
    bool asleep;   /* the writer waits for an item with no deadline */
    int reopen_fd; /* a file opened again by linewriter_reopen(), for the writer to take */
    struct linewriter_block *head, *tail; /* the items waiting, oldest first; owned */
    size_t count;                         /* items waiting */
    size_t blocks;                        /* blocks in the queue */
    struct linewriter_block *spare;       /* empty blocks kept; owned */
    size_t spares;
    struct linewriter_options opt; /* opt.path is path */
    char *path;                    /* owned */
    /* The writer's alone. */
    int fd;
    char *batch; /* lines put together for one write */
    size_t batch_len;
    unsigned batch_n;
    uint64_t size;      /* bytes in the file now written */
    bool dirty;         /* written since the last fdatasync */
    uint64_t synced_ms; /* when the last fdatasync ran (monotonic) */
    /* Any thread's. */
    atomic_uint_fast64_t lost;
    atomic_bool enabled;
    atomic_bool failing; /* the last batch failed, or an item found the queue full */
};

#define LINEWRITER_INIT                                                                            \
    {                                                                                              \
        .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .fd = -1,             \
        .reopen_fd = -1                                                                            \
    }

/*
 * Opens opt->path for appending (created 0600), cuts off a last line a crash left
 * unfinished (and says so in the log), and starts the writer, named thread_name, with
 * signals blocked.  Returns 0, or -1 with a sentence in err.
 */
int linewriter_open(struct linewriter *w, const struct linewriter_options *opt,
                    const char *thread_name, char *err, size_t errcap);

/* Writes what is queued, stops the writer, syncs and closes the file.  Nothing when not open. */
void linewriter_close(struct linewriter *w);

/*
 * Opens the path again; the writer takes the new file before its next batch.  Returns 0,
 * or -1 with a sentence in err (the old file stays in use).
 */
int linewriter_reopen(struct linewriter *w, char *err, size_t errcap);

/* True while the file is open and takes lines. */
bool linewriter_enabled(struct linewriter *w);

/*
 * Queues a copy of item[0..len) (any thread).  An item the queue has no room for, or
 * longer than LINEWRITER_ITEM_MAX, is counted lost.
 */
void linewriter_queue(struct linewriter *w, const char *item, size_t len);

/* True while the last batch failed or the queue was full; a batch written again ends it. */
bool linewriter_failing(struct linewriter *w);

/* Lines lost so far. */
uint64_t linewriter_lost(struct linewriter *w);

/* Items waiting for the writer now. */
size_t linewriter_queue_depth(struct linewriter *w);

#endif /* SLUICE_LINEWRITER_H */
