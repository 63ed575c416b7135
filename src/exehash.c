/* Hashes of client executables, off the event loop; see include/sluice/exehash.h. */
#include "sluice/exehash.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sluice/hex.h"

/* One executable whose hash is known. */
struct exehash_entry {
    struct exehash_key key;
    char hex[EXEHASH_HEX];
    bool used;
};

/* One executable waiting: its key and an open descriptor of the very file. */
struct exehash_job {
    struct exehash_key key;
    int fd;
};

/* The process's hashes and the thread that makes them; everything under lock. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, stopping;
    struct exehash_entry cache[EXEHASH_CACHE];
    size_t next; /* the slot the next hash takes: the oldest */
    struct exehash_job queue[EXEHASH_QUEUE];
    size_t nqueue;
} exehash = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* The key of the file st describes. */
static struct exehash_key exehash_key_of(const struct stat *st)
{
    return (struct exehash_key){.dev = (uint64_t)st->st_dev,
                                .ino = (uint64_t)st->st_ino,
                                .size = (uint64_t)st->st_size,
                                .mtime_ns =
                                    (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec};
}

static bool exehash_same(const struct exehash_key *a, const struct exehash_key *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

/* The cache entry for key, or NULL; under lock. */
static struct exehash_entry *exehash_find(const struct exehash_key *key)
{
    for (size_t i = 0; i < EXEHASH_CACHE; i++)
        if (exehash.cache[i].used && exehash_same(&exehash.cache[i].key, key))
            return &exehash.cache[i];
    return NULL;
}

/* SHA-256 of what fd reads, up to EXEHASH_MAX_BYTES, as hex.  False on a read error. */
static bool exehash_fd(int fd, char hex[EXEHASH_HEX])
{
    unsigned char buf[65536], md[32];
    unsigned int mdlen = 0;
    uint64_t total = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    ssize_t n;

    while (ok && (n = read(fd, buf, sizeof(buf))) > 0) {
        total += (uint64_t)n;
        ok = total <= EXEHASH_MAX_BYTES && EVP_DigestUpdate(ctx, buf, (size_t)n) == 1;
    }
    ok = ok && n == 0 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == sizeof(md);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return false;
    hex_lower(md, sizeof(md), hex);
    return true;
}

/* Keeps hex as key's hash, in the oldest slot, unless it is kept already; under lock. */
static void exehash_keep(const struct exehash_key *key, const char hex[EXEHASH_HEX])
{
    struct exehash_entry *e;

    if (exehash_find(key) != NULL)
        return;
    e = &exehash.cache[exehash.next];
    e->key = *key;
    memcpy(e->hex, hex, sizeof(e->hex));
    e->used = true;
    exehash.next = (exehash.next + 1) % EXEHASH_CACHE;
}

/* The hashing thread: takes the oldest job, hashes it outside the lock, keeps the hash. */
static void *exehash_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&exehash.lock);
    for (;;) {
        struct exehash_job job;
        char hex[EXEHASH_HEX];
        bool ok;

        while (exehash.nqueue == 0 && !exehash.stopping)
            pthread_cond_wait(&exehash.wake, &exehash.lock);
        if (exehash.stopping)
            break;
        job = exehash.queue[0];
        memmove(&exehash.queue[0], &exehash.queue[1],
                (exehash.nqueue - 1) * sizeof(exehash.queue[0]));
        exehash.nqueue--;
        pthread_mutex_unlock(&exehash.lock);
        ok = exehash_fd(job.fd, hex);
        close(job.fd);
        pthread_mutex_lock(&exehash.lock);
        if (ok)
            exehash_keep(&job.key, hex);
    }
    pthread_mutex_unlock(&exehash.lock);
    return NULL;
}

/* Starts the thread; see the header. */
int exehash_start(void)
{
    sigset_t all, old;
    int rc;

    pthread_mutex_lock(&exehash.lock);
    exehash.stopping = false;
    /* The main thread takes the signals: this one starts with every one blocked. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = exehash.running ? 0 : pthread_create(&exehash.thread, NULL, exehash_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    exehash.running = exehash.running || rc == 0;
    pthread_mutex_unlock(&exehash.lock);
    return rc == 0 ? 0 : -1;
}

/* Stops the thread; see the header. */
void exehash_stop(void)
{
    pthread_mutex_lock(&exehash.lock);
    if (!exehash.running) {
        pthread_mutex_unlock(&exehash.lock);
        return;
    }
    exehash.stopping = true;
    pthread_cond_signal(&exehash.wake);
    pthread_mutex_unlock(&exehash.lock);
    pthread_join(exehash.thread, NULL);
    pthread_mutex_lock(&exehash.lock);
    exehash.running = false;
    for (size_t i = 0; i < exehash.nqueue; i++)
        close(exehash.queue[i].fd);
    exehash.nqueue = 0;
    memset(exehash.cache, 0, sizeof(exehash.cache));
    exehash.next = 0;
    pthread_mutex_unlock(&exehash.lock);
}

/* Which file path names (following links), into *key: false when it is no regular file. */
bool exehash_key_of_path(const char *path, struct exehash_key *key)
{
    struct stat st;

    memset(key, 0, sizeof(*key));
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    *key = exehash_key_of(&st);
    return true;
}

/* Which file pid runs; see the header. */
bool exehash_key_of_pid(pid_t pid, struct exehash_key *key)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    return exehash_key_of_path(path, key);
}

/*
 * Opens path for hashing when it is still the regular file key names: never blocks on a
 * FIFO or a device a script argument may name.  Returns the descriptor, or -1.
 */
static int exehash_open(const char *path, const struct exehash_key *key)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    struct exehash_key now;

    if (fd < 0)
        return -1;
    /* The very file looked at: an exec (or a rename) in between would give another. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        now = exehash_key_of(&st);
        if (exehash_same(&now, key))
            return fd;
    }
    close(fd);
    return -1;
}

/* Looks up, or queues, a file; see the header. */
bool exehash_of_path(const char *path, struct exehash_key *key, char hex[EXEHASH_HEX])
{
    bool queued = false, full;
    int fd;

    if (!exehash_key_of_path(path, key))
        return false;
    if (exehash_known(key, hex))
        return true;
    pthread_mutex_lock(&exehash.lock);
    for (size_t i = 0; i < exehash.nqueue; i++)
        queued = queued || exehash_same(&exehash.queue[i].key, key);
    full = exehash.nqueue >= EXEHASH_QUEUE; /* looked at again below: saves the open */
    pthread_mutex_unlock(&exehash.lock);
    /* The descriptor keeps the very file for the thread, whatever the process does next. */
    if (queued || full || key->size > EXEHASH_MAX_BYTES || (fd = exehash_open(path, key)) < 0)
        return false;
    pthread_mutex_lock(&exehash.lock);
    if (exehash.running && !exehash.stopping && exehash.nqueue < EXEHASH_QUEUE) {
        exehash.queue[exehash.nqueue++] = (struct exehash_job){.key = *key, .fd = fd};
        fd = -1;
        pthread_cond_signal(&exehash.wake);
    }
    pthread_mutex_unlock(&exehash.lock);
    if (fd >= 0)
        close(fd);
    return false;
}

/* Looks up, or queues, a process's executable; see the header. */
bool exehash_of_pid(pid_t pid, struct exehash_key *key, char hex[EXEHASH_HEX])
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    return exehash_of_path(path, key, hex);
}

/* The kept hash of key; see the header. */
bool exehash_known(const struct exehash_key *key, char hex[EXEHASH_HEX])
{
    struct exehash_entry *e;
    bool found = false;

    if (key->ino == 0)
        return false;
    pthread_mutex_lock(&exehash.lock);
    if ((e = exehash_find(key)) != NULL) {
        memcpy(hex, e->hex, EXEHASH_HEX);
        found = true;
    }
    pthread_mutex_unlock(&exehash.lock);
    return found;
}

/* The kept hash of a file, or one made now; see the header. */
bool exehash_of_path_now(const char *path, struct exehash_key *key, char hex[EXEHASH_HEX])
{
    bool ok;
    int fd;

    if (!exehash_key_of_path(path, key))
        return false;
    if (exehash_known(key, hex))
        return true;
    /* Larger files go to the hashing thread: a lookup waits for no more than this. */
    if (key->size > EXEHASH_WAIT_MAX_BYTES)
        return exehash_of_path(path, key, hex);
    if ((fd = exehash_open(path, key)) < 0)
        return false;
    ok = exehash_fd(fd, hex);
    close(fd);
    if (ok) {
        pthread_mutex_lock(&exehash.lock);
        exehash_keep(key, hex);
        pthread_mutex_unlock(&exehash.lock);
    }
    return ok;
}

/* The kept hash of a process's executable, or one made now; see the header. */
bool exehash_of_pid_now(pid_t pid, struct exehash_key *key, char hex[EXEHASH_HEX])
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    return exehash_of_path_now(path, key, hex);
}

/* Hashes a process's executable in this thread; see the header. */
bool exehash_now(pid_t pid, char hex[EXEHASH_HEX])
{
    char path[64];
    bool ok;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    ok = exehash_fd(fd, hex);
    close(fd);
    return ok;
}
