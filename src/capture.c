/* The capture store of bodies policy asks to keep; see include/sluice/capture.h. */
#include "sluice/capture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "sluice/clientcap.h"
#include "sluice/hex.h"
#include "sluice/log.h"

/* The first allocation of a body's bytes; it doubles from there up to the body's bound. */
#define CAPTURE_FIRST_CAP (16u * 1024)
/* Eviction removes files until the store holds at most this share of its bound (percent),
 * so that it does not scan the directory again at the very next body. */
#define CAPTURE_EVICT_TO_PERCENT 90
/* Bodies the writer stores with one wait for the disk. */
#define CAPTURE_BATCH 256
/* Bodies the writer remembers having stored or marked as used, so that one sent again and
 * again (the same small answer to every request) costs no system call within
 * CAPTURE_RECENT_SECONDS: a direct-mapped table by the hash's first hex digits. */
#define CAPTURE_RECENT         1024
#define CAPTURE_RECENT_SECONDS 60

/* A body the writer stored, or marked as used, lately. */
struct capture_recent {
    char sha256[CAPTURE_HASH_HEX];
    uint64_t len;
    time_t at; /* when, on the monotonic clock; 0: empty */
};

/* A body waiting for the writer. */
struct capture_item {
    unsigned char *data; /* owned; counted in capture_memory */
    size_t len;
    size_t cap; /* data's allocation, as counted */
    char sha256[CAPTURE_HASH_HEX];
};

/* The store: its directory, the writer thread and its queue. */
static struct {
    bool open;
    char *dir; /* owned */
    uint64_t max_bytes;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop; /* under lock: the writer ends once the queue is empty */
    struct capture_item queue[CAPTURE_QUEUE]; /* a ring, under lock */
    size_t head, count;
    uint64_t tmp_seq; /* the writer's: names its temporary files */
    bool failing;     /* the writer's: its last write failed (logged once) */
    int lock_fd;      /* DIR/.lock, flock'd while open: one sluice per store */
    long pid;         /* this process's, in temporary files' names */
    struct capture_recent recent[CAPTURE_RECENT]; /* the writer's */
    struct timespec last_stamp;                   /* the writer's: see capture_stamp() */
} store = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .lock_fd = -1};

static atomic_bool capture_is_open;
static atomic_uint_fast64_t capture_memory;  /* bytes of bodies in memory */
static atomic_uint_fast64_t capture_lost_n;  /* bodies not kept */
static atomic_uint_fast64_t capture_on_disk; /* bytes of the store's files */
static atomic_bool capture_memory_warned;    /* the memory bound was logged once */

static EVP_MD *capture_md;
static pthread_once_t capture_md_once = PTHREAD_ONCE_INIT;

/* Fetches SHA-256 once for every body's digest. */
static void capture_md_fetch(void)
{
    capture_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* True when name is a body file's: 64 lower-case hex digits. */
static bool capture_is_hash_name(const char *name)
{
    size_t i;

    for (i = 0; name[i] != '\0'; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    return i == CAPTURE_HASH_HEX - 1;
}

/* One file of the store, for eviction. */
struct capture_file {
    struct timespec mtime;
    uint64_t size;
    char name[CAPTURE_HASH_HEX];
};

/* Orders files oldest first. */
static int capture_file_cmp(const void *a, const void *b)
{
    const struct capture_file *x = a, *y = b;

    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The path of the body file named hash, into out. */
static void capture_path(const char *hash, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%.2s/%s", store.dir, hash, hash);
}

/*
 * Lists the store's body files into a malloc'd array (*n of them) and sums their sizes
 * into *total.  Returns NULL with *n 0 when there is none or no memory (total still
 * counted as far as the list went).
 */
static struct capture_file *capture_list(size_t *n, uint64_t *total)
{
    struct capture_file *files = NULL;
    size_t cap = 0;
    DIR *top = opendir(store.dir);
    struct dirent *d;

    *n = 0;
    *total = 0;
    if (top == NULL)
        return NULL;
    while ((d = readdir(top)) != NULL) {
        char sub[PATH_MAX];
        DIR *dd;
        struct dirent *e;

        if (strlen(d->d_name) != 2 || strspn(d->d_name, "0123456789abcdef") != 2)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", store.dir, d->d_name);
        if ((dd = opendir(sub)) == NULL)
            continue;
        while ((e = readdir(dd)) != NULL) {
            struct stat st;
            if (!capture_is_hash_name(e->d_name) || strncmp(e->d_name, d->d_name, 2) != 0 ||
                fstatat(dirfd(dd), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                continue;
            *total += (uint64_t)st.st_size;
            if (*n == cap) {
                size_t ncap = cap == 0 ? 1024 : cap * 2;
                struct capture_file *more = realloc(files, ncap * sizeof(*files));
                if (more == NULL)
                    continue; /* counted, not listed: eviction does what it can */
                files = more;
                cap = ncap;
            }
            files[*n].mtime = st.st_mtim;
            files[*n].size = (uint64_t)st.st_size;
            memcpy(files[*n].name, e->d_name, CAPTURE_HASH_HEX);
            (*n)++;
        }
        closedir(dd);
    }
    closedir(top);
    return files;
}

/*
 * Counts the store's files again and, when they exceed limit, removes the oldest until
 * they hold at most CAPTURE_EVICT_TO_PERCENT of it.  The writer's, and capture_open()'s
 * before it starts.
 */
static void capture_evict(uint64_t limit)
{
    size_t n, removed = 0;
    uint64_t total, goal = limit / 100 * CAPTURE_EVICT_TO_PERCENT;
    struct capture_file *files = capture_list(&n, &total);

    if (total > limit) {
        memset(store.recent, 0, sizeof(store.recent)); /* what it remembers may go now */
        qsort(files, n, sizeof(*files), capture_file_cmp);
        for (size_t i = 0; i < n && total > goal; i++) {
            char path[PATH_MAX];
            capture_path(files[i].name, path, sizeof(path));
            if (unlink(path) == 0 || errno == ENOENT) {
                total -= files[i].size;
                removed++;
            }
        }
        log_info("capture store %s: removed the %zu oldest bodies to stay under its bound; it "
                 "holds %" PRIu64 " bytes",
                 store.dir, removed, total);
    }
    free(files);
    atomic_store(&capture_on_disk, total);
}

/* Makes dir (mode) unless it exists as a directory; 0, or -1 with errno. */
static int capture_mkdir(const char *dir, mode_t mode)
{
    struct stat st;

    if (mkdir(dir, mode) == 0)
        return 0;
    if (errno == EEXIST && lstat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
    }
    return -1;
}

/* Writes all of data to fd; 0, or -1 with errno. */
static int capture_write_all(int fd, const unsigned char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/*
 * The time a body is stored or used at, as its file's mtime: the clock, but always later
 * than the one before, so eviction's order is the writer's order even for bodies stored
 * within one tick of the file system's coarse clock.
 */
static struct timespec capture_stamp(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec < store.last_stamp.tv_sec ||
        (now.tv_sec == store.last_stamp.tv_sec && now.tv_nsec <= store.last_stamp.tv_nsec)) {
        now = store.last_stamp;
        if (++now.tv_nsec == 1000000000L) {
            now.tv_sec++;
            now.tv_nsec = 0;
        }
    }
    store.last_stamp = now;
    return now;
}

/* The temporary file of the body queued as the seq-th of this process, into out. */
static void capture_tmp_path(const struct capture_item *it, uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "%s/tmp/%s.%ld.%" PRIu64, store.dir, it->sha256, store.pid, seq);
}

/*
 * Writes a body to its temporary file (not yet brought to the disk).  Returns 0, or -1
 * with errno and nothing left behind.
 */
static int capture_write_tmp(const struct capture_item *it, uint64_t seq)
{
    char tmp[PATH_MAX];
    int fd;

    capture_tmp_path(it, seq, tmp, sizeof(tmp));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    {
        const struct timespec at = capture_stamp(), times[2] = {at, at};
        int saved = 0;

        if (capture_write_all(fd, it->data, it->len) < 0 || futimens(fd, times) < 0)
            saved = errno;
        if (close(fd) < 0 && saved == 0) /* closed either way: never twice */
            saved = errno;
        if (saved != 0) {
            unlink(tmp);
            errno = saved;
            return -1;
        }
    }
    return 0;
}

/*
 * Writes a body's temporary file, mending what can be mended once: the store's
 * directories removed while sluice runs are made again, and a full disk has the store's
 * oldest bodies removed (down to CAPTURE_EVICT_TO_PERCENT of what it holds) before the
 * next try.  0, or -1 with errno.
 */
static int capture_write_tmp_mended(const struct capture_item *it, uint64_t seq)
{
    char tmpdir[PATH_MAX];

    if (capture_write_tmp(it, seq) == 0)
        return 0;
    if (errno == ENOENT) {
        snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", store.dir);
        if (capture_mkdir(store.dir, 0700) < 0 || capture_mkdir(tmpdir, 0700) < 0)
            return -1;
    } else if (errno == ENOSPC || errno == EDQUOT) {
        uint64_t held = atomic_load(&capture_on_disk);
        if (held == 0)
            return -1;
        capture_evict(held - 1); /* past "held - 1": down to 90% of it */
    } else {
        return -1;
    }
    return capture_write_tmp(it, seq);
}

/* Renames a body's temporary file (on the disk by now) to its hash's name.  0, or -1. */
static int capture_place(const struct capture_item *it, uint64_t seq)
{
    char tmp[PATH_MAX], path[PATH_MAX], sub[PATH_MAX];

    capture_tmp_path(it, seq, tmp, sizeof(tmp));
    capture_path(it->sha256, path, sizeof(path));
    if (rename(tmp, path) == 0)
        return 0;
    /* The first body of its DIR/ab, or the directory was removed: made, then once more. */
    snprintf(sub, sizeof(sub), "%s/%.2s", store.dir, it->sha256);
    if (errno == ENOENT && capture_mkdir(sub, 0700) == 0 && rename(tmp, path) == 0)
        return 0;
    {
        int saved = errno;
        unlink(tmp);
        errno = saved;
    }
    return -1;
}

/* The slot of the recent table a hash (in hex) goes in. */
static size_t capture_recent_slot(const char *sha256)
{
    size_t slot = 0;

    for (int i = 0; i < 3; i++)
        slot = slot << 4 | (size_t)(sha256[i] <= '9' ? sha256[i] - '0' : sha256[i] - 'a' + 10);
    return slot % CAPTURE_RECENT;
}

/* Remembers that the body of it is in the store as of now (seconds, monotonic). */
static void capture_remember(const struct capture_item *it, time_t now)
{
    struct capture_recent *r = &store.recent[capture_recent_slot(it->sha256)];

    memcpy(r->sha256, it->sha256, sizeof(r->sha256));
    r->len = it->len;
    r->at = now > 0 ? now : 1;
}

/* A body that could not be stored: counted, and the first of a spell logged. */
static void capture_write_failed(const struct capture_item *it, int err)
{
    atomic_fetch_add(&capture_lost_n, 1);
    if (!store.failing)
        log_error("capture store %s: cannot write body %s: %s; bodies are lost until it can be "
                  "written (sluice_capture_lost_total counts them)",
                  store.dir, it->sha256, strerror(err));
    store.failing = true;
}

/*
 * Stores a batch of bodies: one already there is only marked as used now (it goes last in
 * eviction order); the others are written to temporary files, brought to the disk with one
 * syncfs for them all, and renamed into place, so a crash never leaves part of a body
 * under a hash's name and the disk is waited on once per batch, not once per body.
 */
static void capture_store_batch(struct capture_item *items, size_t n)
{
    uint64_t first = store.tmp_seq;
    bool written[CAPTURE_BATCH];
    size_t nwritten = 0, failed = 0;
    struct timespec mono;

    clock_gettime(CLOCK_MONOTONIC, &mono);

    store.tmp_seq += n;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        struct stat st;
        struct capture_recent *recent;

        bool again = false;

        written[i] = false;
        /* The same body twice in one batch is written once. */
        for (size_t k = 0; k < i && !again; k++)
            again = written[k] && strcmp(items[k].sha256, items[i].sha256) == 0;
        if (again)
            continue;
        recent = &store.recent[capture_recent_slot(items[i].sha256)];
        if (recent->at != 0 && mono.tv_sec - recent->at < CAPTURE_RECENT_SECONDS &&
            recent->len == items[i].len && strcmp(recent->sha256, items[i].sha256) == 0)
            continue; /* stored or marked as used a moment ago */
        capture_path(items[i].sha256, path, sizeof(path));
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == items[i].len) {
            const struct timespec at = capture_stamp(), times[2] = {at, at};
            (void)utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW);
            capture_remember(&items[i], mono.tv_sec);
            continue;
        }
        if (capture_write_tmp_mended(&items[i], first + i) < 0) {
            capture_write_failed(&items[i], errno);
            failed++;
            continue;
        }
        written[i] = true;
        nwritten++;
    }
    if (nwritten > 0 && syncfs(store.lock_fd) < 0) {
        int err = errno;
        for (size_t i = 0; i < n; i++)
            if (written[i]) {
                char tmp[PATH_MAX];
                capture_tmp_path(&items[i], first + i, tmp, sizeof(tmp));
                unlink(tmp);
                written[i] = false;
                capture_write_failed(&items[i], err);
                failed++;
            }
    }
    for (size_t i = 0; i < n; i++) {
        if (!written[i])
            continue;
        if (capture_place(&items[i], first + i) < 0) {
            capture_write_failed(&items[i], errno);
            failed++;
            continue;
        }
        atomic_fetch_add(&capture_on_disk, items[i].len);
        capture_remember(&items[i], mono.tv_sec);
    }
    if (atomic_load(&capture_on_disk) > store.max_bytes)
        capture_evict(store.max_bytes);
    if (failed == 0 && store.failing) {
        log_notice("capture store %s: bodies are written again", store.dir);
        store.failing = false;
    }
}

/* The writer: stores queued bodies in batches, in order, until told to stop and empty. */
static void *capture_writer(void *arg)
{
    static struct capture_item batch[CAPTURE_BATCH]; /* the writer's alone */

    (void)arg;
    pthread_mutex_lock(&store.lock);
    for (;;) {
        size_t n = 0;

        while (store.count == 0 && !store.stop)
            pthread_cond_wait(&store.wake, &store.lock);
        if (store.count == 0)
            break;
        while (store.count > 0 && n < CAPTURE_BATCH) {
            batch[n++] = store.queue[store.head];
            store.head = (store.head + 1) % CAPTURE_QUEUE;
            store.count--;
        }
        pthread_mutex_unlock(&store.lock);

        capture_store_batch(batch, n);
        for (size_t i = 0; i < n; i++) {
            free(batch[i].data);
            if (atomic_fetch_sub(&capture_memory, batch[i].cap) - batch[i].cap <
                CAPTURE_MEMORY_MAX / 2)
                atomic_store(&capture_memory_warned, false); /* the next shortage is said */
        }

        pthread_mutex_lock(&store.lock);
    }
    pthread_mutex_unlock(&store.lock);
    return NULL;
}

/* Removes the temporary files a crash left in DIR/tmp. */
static void capture_clean_tmp(const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

/*
 * Checks that the store's directory is the running user's alone (the bodies are what the
 * tools sent) and takes its lock, so that no second sluice writes there.  Returns the
 * lock's descriptor, or -1 with a sentence in err.
 */
static int capture_take_dir(const char *dir, char *err, size_t cap)
{
    char lock[PATH_MAX];
    struct stat st;
    int fd;

    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, cap, "capture store %s: not a directory", dir);
        return -1;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        snprintf(err, cap,
                 "capture store %s: it is owned by uid %ld with mode %03o, and must be the "
                 "running user's (uid %ld) alone: the bodies are what the tools sent; chown it "
                 "and chmod 700 it, or name a new directory",
                 dir, (long)st.st_uid, (unsigned)(st.st_mode & 0777), (long)geteuid());
        return -1;
    }
    snprintf(lock, sizeof(lock), "%s/.lock", dir);
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, cap, "capture store %s: cannot write there: %s", dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, cap,
                 "capture store %s: another sluice keeps its bodies there (it holds %s); "
                 "give each its own --capture-dir",
                 dir, lock);
        close(fd);
        return -1;
    }
    return fd;
}

/* Opens the store; see the header. */
int capture_open(const struct capture_options *opt, char *err, size_t cap)
{
    char tmpdir[PATH_MAX];
    sigset_t all, old;
    int rc;

    pthread_once(&capture_md_once, capture_md_fetch);
    if (capture_md == NULL) {
        snprintf(err, cap, "capture store: OpenSSL has no SHA-256");
        return -1;
    }
    if (capture_mkdir(opt->dir, 0700) < 0) {
        snprintf(err, cap, "capture store %s: cannot make the directory: %s", opt->dir,
                 strerror(errno));
        return -1;
    }
    if ((store.lock_fd = capture_take_dir(opt->dir, err, cap)) < 0)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", opt->dir);
    if (capture_mkdir(tmpdir, 0700) < 0 || access(tmpdir, W_OK) < 0) {
        snprintf(err, cap, "capture store %s: cannot write there: %s", opt->dir, strerror(errno));
        goto fail;
    }
    if ((store.dir = strdup(opt->dir)) == NULL) {
        snprintf(err, cap, "capture store: out of memory");
        goto fail;
    }
    capture_clean_tmp(tmpdir); /* ours alone: the lock is held */
    store.pid = (long)getpid();
    memset(store.recent, 0, sizeof(store.recent));
    store.max_bytes = opt->max_bytes;
    store.stop = false;
    store.head = store.count = 0;
    store.failing = false;
    capture_evict(store.max_bytes);
    /* The writer takes no signal: they are the main thread's. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&store.thread, NULL, capture_writer, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        pthread_setname_np(store.thread, "sluice-capture"); /* for top -H and perf */
    if (rc != 0) {
        snprintf(err, cap, "capture store: cannot start its writer: %s", strerror(rc));
        goto fail;
    }
    store.open = true;
    atomic_store(&capture_is_open, true);
    return 0;
fail:
    free(store.dir);
    store.dir = NULL;
    close(store.lock_fd); /* and the lock with it */
    store.lock_fd = -1;
    return -1;
}

/* Stops the writer once it has stored what is queued. */
void capture_close(void)
{
    if (!store.open)
        return;
    atomic_store(&capture_is_open, false);
    pthread_mutex_lock(&store.lock);
    store.stop = true;
    pthread_cond_signal(&store.wake);
    pthread_mutex_unlock(&store.lock);
    pthread_join(store.thread, NULL);
    store.open = false;
    free(store.dir);
    store.dir = NULL;
    close(store.lock_fd);
    store.lock_fd = -1;
}

/* True while the store is open. */
bool capture_enabled(void)
{
    return atomic_load(&capture_is_open);
}

/*
 * Memory ran out for b: it keeps what it has, and no more (the global bound is said once a
 * shortage; a client's share is said by the 503 and the access line of its request).
 */
static void capture_body_out_of_memory(struct capture_body *b)
{
    if (!b->short_of_share && !atomic_exchange(&capture_memory_warned, true))
        log_warn("capture: bodies being captured hold %u MiB, the bound; until memory is free "
                 "again, request bodies that find none are not sent on (503; with "
                 "audit.fail_open they go, kept cut short) and response bodies are kept cut "
                 "short (\"truncated\")",
                 CAPTURE_MEMORY_MAX >> 20);
    b->short_of_memory = true;
    b->limit = b->len;
}

/* Starts capturing a body; see the header. */
bool capture_body_begin(struct capture_body *b, size_t limit, const char *codings, uint64_t expect,
                        const struct capture_share *share)
{
    if (b->active || limit == 0 || !capture_enabled())
        return true;
    memset(b, 0, sizeof(*b));
    b->active = true;
    b->share = share != NULL && share->clients != NULL ? share : NULL;
    /* A body whose length is known never grows its room past that length. */
    b->limit = expect < limit ? (size_t)expect : limit;
    if (codings != NULL)
        snprintf(b->codings, sizeof(b->codings), "%s", codings);
    b->md = EVP_MD_CTX_new();
    if (b->md == NULL || EVP_DigestInit_ex(b->md, capture_md, NULL) != 1) {
        EVP_MD_CTX_free(b->md);
        b->md = NULL;
        capture_body_out_of_memory(b); /* keeps nothing: its record says lost */
        return false;
    }
    return true;
}

bool capture_body_short(const struct capture_body *b)
{
    return b != NULL && b->short_of_memory;
}

uint64_t capture_client_share(uint32_t max_conns)
{
    uint64_t share = (uint64_t)CAPTURE_MEMORY_MAX / 1024 * max_conns;

    if (share < CAPTURE_MEMORY_MAX / 4)
        return CAPTURE_MEMORY_MAX / 4;
    return share < CAPTURE_MEMORY_MAX / 2 ? share : CAPTURE_MEMORY_MAX / 2;
}

const char *capture_body_short_why(const struct capture_body *b)
{
    return b != NULL && b->short_of_share ? CAPTURE_SHARE_WHY : CAPTURE_FULL_WHY;
}

/* Charges grow more bytes of b's room to its client's share; false when it holds it. */
static bool capture_share_charge(struct capture_body *b, size_t grow)
{
    if (b->share == NULL)
        return true;
    if (!clientcap_charge(b->share->clients, b->share->client, grow, b->share->max)) {
        b->short_of_share = true;
        return false;
    }
    b->share_held += grow;
    return true;
}

/* Gives back what b charged to its client's share, down to keep bytes. */
static void capture_share_refund(struct capture_body *b, size_t keep)
{
    if (b->share == NULL || b->share_held <= keep)
        return;
    clientcap_refund(b->share->clients, b->share->client, b->share_held - keep);
    b->share_held = keep;
}

/*
 * Makes room in b for want more bytes, within its bound and the memory bound.  Returns
 * the bytes there is room for now (0 once either bound is reached).
 */
static size_t capture_body_room(struct capture_body *b, size_t want)
{
    size_t room = b->limit - b->len, ncap;
    unsigned char *more;

    if (want > room)
        want = room;
    if (b->len + want <= b->cap)
        return want;
    ncap = b->cap == 0 ? CAPTURE_FIRST_CAP : b->cap;
    while (ncap < b->len + want)
        ncap *= 2;
    if (ncap > b->limit)
        ncap = b->limit;
    if (!capture_share_charge(b, ncap - b->cap)) {
        capture_body_out_of_memory(b);
        capture_body_seal(b);
        return 0;
    }
    if (atomic_fetch_add(&capture_memory, ncap - b->cap) + (ncap - b->cap) > CAPTURE_MEMORY_MAX ||
        (more = realloc(b->data, ncap)) == NULL) {
        atomic_fetch_sub(&capture_memory, ncap - b->cap);
        capture_share_refund(b, b->cap);
        capture_body_out_of_memory(b);
        capture_body_seal(b); /* nothing more is kept of this body: what is, goes now */
        return 0;
    }
    b->data = more;
    b->cap = ncap;
    return want;
}

/*
 * Counts n more body bytes past b and makes room for those of them it keeps: returns how
 * many to copy to b->data + b->len (0 when b is NULL, not active, or full).
 */
static size_t capture_body_take(struct capture_body *b, size_t n)
{
    if (b == NULL || !b->active || n == 0)
        return 0;
    b->seen += n;
    return b->sealed ? 0 : capture_body_room(b, n);
}

/*
 * Adds the n bytes just copied to b->data + b->len to what b keeps, and to its digest;
 * a body kept to its bound goes to the writer at once.
 */
static void capture_body_keep(struct capture_body *b, size_t n)
{
    EVP_DigestUpdate(b->md, b->data + b->len, n);
    b->len += n;
    if (b->len == b->limit)
        capture_body_seal(b);
}

/* Adds body bytes; see the header. */
void capture_body_add(struct capture_body *b, const void *p, size_t n)
{
    size_t take = capture_body_take(b, n);

    if (take == 0)
        return;
    memcpy(b->data + b->len, p, take);
    capture_body_keep(b, take);
}

/* Adds the first n bytes of buf; see the header. */
void capture_body_add_evbuffer(struct capture_body *b, struct evbuffer *buf, size_t n)
{
    size_t take = capture_body_take(b, n);
    ev_ssize_t got;

    if (take == 0)
        return;
    got = evbuffer_copyout(buf, b->data + b->len, take);
    if (got > 0)
        capture_body_keep(b, (size_t)got);
}

/* Frees the bytes b keeps and its digest, leaving what it says of them (len, seen). */
static void capture_body_reset_bytes(struct capture_body *b)
{
    if (b->data != NULL)
        atomic_fetch_sub(&capture_memory, b->cap);
    free(b->data);
    b->data = NULL;
    b->cap = 0;
    capture_share_refund(b, 0);
    EVP_MD_CTX_free(b->md);
    b->md = NULL;
}

/* Frees what b holds; see the header. */
void capture_body_reset(struct capture_body *b)
{
    capture_body_reset_bytes(b);
    memset(b, 0, sizeof(*b));
}

/* Hands what b kept to the writer; see the header. */
void capture_body_seal(struct capture_body *b)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    bool queued = false;

    if (b == NULL || !b->active || b->sealed || b->seen == 0)
        return;
    b->sealed = true;
    if (b->len > 0 && EVP_DigestFinal_ex(b->md, md, &mdlen) == 1 && mdlen == 32) {
        struct capture_item it = {.data = b->data, .len = b->len, .cap = b->cap};
        unsigned char *fit;

        hex_lower(md, 32, it.sha256);
        /* What waits for the writer holds the body's bytes, not the room grown for them. */
        if (it.cap > it.len && (fit = realloc(it.data, it.len)) != NULL) {
            atomic_fetch_sub(&capture_memory, it.cap - it.len);
            capture_share_refund(b, it.len);
            it.data = fit;
            it.cap = it.len;
            b->data = fit;
            b->cap = it.len;
        }
        pthread_mutex_lock(&store.lock);
        if (store.open && !store.stop && store.count < CAPTURE_QUEUE) {
            store.queue[(store.head + store.count) % CAPTURE_QUEUE] = it;
            store.count++;
            pthread_cond_signal(&store.wake);
            queued = true;
        }
        pthread_mutex_unlock(&store.lock);
        if (queued) {
            memcpy(b->sha256, it.sha256, sizeof(b->sha256));
            b->data = NULL; /* the writer's now, still counted in memory until it frees it */
            b->cap = 0;
            capture_share_refund(b, 0); /* the client no longer holds it */
        }
    }
    if (!queued) {
        b->lost = true;
        atomic_fetch_add(&capture_lost_n, 1);
    }
    /* Nothing more is kept: later bytes are only counted. */
    capture_body_reset_bytes(b);
}

/* Ends capturing b; see the header. */
void capture_body_finish(struct capture_body *b, struct capture_ref *ref)
{
    memset(ref, 0, sizeof(*ref));
    if (b->active && b->seen > 0) {
        capture_body_seal(b);
        ref->present = true;
        ref->lost = b->lost;
        memcpy(ref->sha256, b->sha256, sizeof(ref->sha256));
        ref->bytes = b->len;
        ref->truncated = b->seen > b->len;
        memcpy(ref->codings, b->codings, sizeof(ref->codings));
    }
    capture_body_reset(b);
}

/* Bodies not kept so far. */
uint64_t capture_lost(void)
{
    return atomic_load(&capture_lost_n);
}

/* Bytes of the store's files. */
uint64_t capture_store_bytes(void)
{
    return atomic_load(&capture_on_disk);
}

/* Bytes of bodies in memory. */
uint64_t capture_memory_bytes(void)
{
    return atomic_load(&capture_memory);
}
