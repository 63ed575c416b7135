/* Listening sockets; see include/sluice/listener.h. */
#include "sluice/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sluice/sockdiag.h"

/* The directory a relative Unix socket name is taken from; see the header. */
int listener_runtime_dir(char *out, size_t cap)
{
    const char *run = getenv("XDG_RUNTIME_DIR"), *cache = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");

    if (run != NULL && run[0] == '/')
        return snprintf(out, cap, "%s", run) < (int)cap ? 0 : -1;
    if (geteuid() == 0)
        return snprintf(out, cap, "/run") < (int)cap ? 0 : -1;
    if (cache != NULL && cache[0] == '/')
        return snprintf(out, cap, "%s/sluice", cache) < (int)cap ? 0 : -1;
    if (home != NULL && home[0] == '/')
        return snprintf(out, cap, "%s/.cache/sluice", home) < (int)cap ? 0 : -1;
    return -1;
}

/* Parses "unix:PATH" into *out; see listener_parse(). */
static int listener_parse_unix(const char *text, struct listener_addr *out, const char **errstr)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)(void *)&out->ss;
    const char *name = text + 5;
    char dir[512], path[sizeof(dir) + sizeof(sun->sun_path) + 2];
    int n;

    *errstr = "expected unix:PATH, e.g. unix:/run/sluice.sock, or unix:NAME for a socket in "
              "$XDG_RUNTIME_DIR (else /run for root, ~/.cache/sluice for others)";
    if (name[0] == '\0' || strlen(text) >= sizeof(out->text))
        return -1;
    for (const char *c = name; *c != '\0'; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == ',')
            return -1;
    if (name[0] == '/') {
        n = snprintf(path, sizeof(path), "%s", name);
    } else {
        if (strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            listener_runtime_dir(dir, sizeof(dir)) < 0) {
            *errstr = strchr(name, '/') != NULL
                          ? "a relative unix: name is a bare file name (it goes in the runtime "
                            "directory); give a full path otherwise"
                          : "no runtime directory for a relative unix: name (set "
                            "XDG_RUNTIME_DIR or HOME, or give a full path)";
            return -1;
        }
        n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    }
    if (n < 0 || (size_t)n >= sizeof(sun->sun_path)) {
        *errstr = "the Unix socket path is longer than the 107 bytes the kernel takes";
        return -1;
    }
    memcpy(sun->sun_path, path, (size_t)n + 1);
    sun->sun_family = AF_UNIX;
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
    snprintf(out->text, sizeof(out->text), "%s", text);
    return 0;
}

/* Parses an address with a mandatory port (0 allowed: the kernel picks one). */
int listener_parse(const char *text, struct listener_addr *out, const char **errstr)
{
    const char *colon = strrchr(text, ':');
    char host[64];
    size_t hlen;
    unsigned long port = 0;

    memset(out, 0, sizeof(*out));
    out->lock_fd = -1;
    if (strncmp(text, "unix:", 5) == 0)
        return listener_parse_unix(text, out, errstr);
    *errstr = "expected ADDR:PORT with a numeric address, e.g. 127.0.0.1:3128 or [::1]:3128, "
              "or unix:PATH";
    if (colon == NULL || colon[1] == '\0' || strlen(text) >= sizeof(out->text))
        return -1;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return -1;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        return -1;
    hlen = (size_t)(colon - text);
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&out->ss;
        if (hlen - 2 >= sizeof(host))
            return -1;
        memcpy(host, text + 1, hlen - 2);
        host[hlen - 2] = '\0';
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->len = sizeof(*sin6);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&out->ss;
        if (hlen == 0 || hlen >= sizeof(host))
            return -1;
        memcpy(host, text, hlen);
        host[hlen] = '\0';
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof(*sin);
    }
    snprintf(out->text, sizeof(out->text), "%s", text);
    return 0;
}

/* The local port of a bound socket. */
static uint16_t listener_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
    return 0;
}

/* Overwrites the port of a. */
static void listener_set_port(struct listener_addr *a, uint16_t port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)&a->ss)->sin_port = htons(port);
    else if (a->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)&a->ss)->sin6_port = htons(port);
}

/* Formats a for messages and the ready file. */
void listener_format(const struct listener_addr *a, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (a->ss.ss_family == AF_UNIX) {
        snprintf(out, cap, "unix:%s", ((const struct sockaddr_un *)(const void *)&a->ss)->sun_path);
    } else if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)&a->ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)&a->ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
}

/* Compares two listening addresses; see the header. */
bool listener_same(const struct listener_addr *a, const struct listener_addr *b)
{
    const struct sockaddr_in6 *x6 = (const struct sockaddr_in6 *)(const void *)&a->ss;
    const struct sockaddr_in6 *y6 = (const struct sockaddr_in6 *)(const void *)&b->ss;
    const struct sockaddr_in *x = (const struct sockaddr_in *)(const void *)&a->ss;
    const struct sockaddr_in *y = (const struct sockaddr_in *)(const void *)&b->ss;

    if (a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->ss.ss_family == AF_UNIX)
        return strcmp(((const struct sockaddr_un *)(const void *)&a->ss)->sun_path,
                      ((const struct sockaddr_un *)(const void *)&b->ss)->sun_path) == 0;
    if (a->ss.ss_family == AF_INET)
        return x->sin_port != 0 && x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    return x6->sin6_port != 0 && x6->sin6_port == y6->sin6_port &&
           memcmp(&x6->sin6_addr, &y6->sin6_addr, sizeof(x6->sin6_addr)) == 0;
}

/* Makes a bound, not yet listening, non-blocking SO_REUSEPORT socket on a; -1 with errno. */
static int listener_bind(const struct listener_addr *a)
{
    int fd, one = 1, saved;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (a->ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    /* Heads and small bodies must not wait for Nagle.  Linux gives accepted sockets the
     * listener's TCP_NODELAY, which saves a call per connection. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
        goto fail;
    return fd;

fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Makes the directory of path (and its parent) 0700 when missing: ~/.cache/sluice. */
static void listener_make_dir(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
        return;
    *slash = '\0';
    if (access(dir, F_OK) == 0)
        return;
    if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
        *slash = '\0';
        (void)mkdir(dir, 0700);
        *slash = '/';
    }
    (void)mkdir(dir, 0700);
}

/* Says in err which process listens on the Unix socket at path, if one answers there. */
static bool listener_unix_held(const struct listener_addr *a, char *err, size_t cap)
{
    const char *path = ((const struct sockaddr_un *)(const void *)&a->ss)->sun_path;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct ucred cred = {0};
    socklen_t len = sizeof(cred);
    char name[64] = "?", comm[64];
    FILE *f;

    if (fd < 0)
        return false;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        close(fd);
        return false;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
        snprintf(comm, sizeof(comm), "/proc/%ld/comm", (long)cred.pid);
        if ((f = fopen(comm, "r")) != NULL) {
            if (fgets(name, sizeof(name), f) != NULL)
                name[strcspn(name, "\n")] = '\0';
            fclose(f);
        }
        snprintf(err, cap,
                 "cannot listen on unix:%s: it is already held by process %ld (%s); stop that "
                 "process, or give another path with --listen",
                 path, (long)cred.pid, name);
    } else {
        snprintf(err, cap,
                 "cannot listen on unix:%s: another process listens there; stop it, or give "
                 "another path with --listen",
                 path);
    }
    close(fd);
    return true;
}

/*
 * Binds a Unix socket at a's path, mode 0666 like a loopback port (anyone on the machine
 * may connect; the directory can narrow that).  A socket file nobody answers on is left
 * over from a process that died: it is replaced.  A lock beside it (PATH.lock, held for
 * the process's life in *lock_fd) makes two started at once agree which one runs.
 * Returns the socket, or -1 with err.
 */
static int listener_bind_unix(const struct listener_addr *a, int *lock_fd, uint64_t *sock_dev,
                              uint64_t *sock_ino, char *err, size_t cap)
{
    const char *path = ((const struct sockaddr_un *)(const void *)&a->ss)->sun_path;
    char lock[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    struct stat st;
    int fd;

    listener_make_dir(path);
    snprintf(lock, sizeof(lock), "%s.lock", path);
    *lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*lock_fd < 0) {
        snprintf(err, cap, "cannot listen on unix:%s: cannot open its lock %s: %s", path, lock,
                 strerror(errno));
        return -1;
    }
    if (flock(*lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (!listener_unix_held(a, err, cap))
            snprintf(err, cap,
                     "cannot listen on unix:%s: another process holds its lock %s (fuser %s "
                     "shows which); stop it, or give another path with --listen",
                     path, lock, lock);
        goto not_ours;
    }
    /* Ours now: a socket file still there was left by a process that is gone (unless
     * something that takes no lock listens there).  Anything else there is not ours to
     * remove. */
    if (listener_unix_held(a, err, cap))
        goto not_ours;
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        snprintf(err, cap,
                 "cannot listen on unix:%s: something that is not a socket is there; remove "
                 "it, or give another path with --listen",
                 path);
        goto not_ours;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, cap, "cannot listen on unix:%s: cannot remove the old socket: %s", path,
                 strerror(errno));
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || chmod(path, 0666) < 0 ||
        lstat(path, &st) < 0) {
        snprintf(err, cap, "cannot listen on unix:%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *sock_dev = (uint64_t)st.st_dev;
    *sock_ino = (uint64_t)st.st_ino;
    return fd;

not_ours: /* what is there is another's: it must not be removed */
    close(*lock_fd);
    *lock_fd = -1;
    return -1;
}

/* True when inode is one of the n inodes of our sockets (0: a place not yet bound). */
static bool listener_is_ours(uint64_t inode, const uint64_t *ours, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ours[i] != 0 && ours[i] == inode)
            return true;
    return false;
}

/* Says in err who holds a's port: a process by pid and name, or at least its owner. */
static void listener_describe_holder(const struct listener_addr *a, const struct sockdiag_socket *s,
                                     char *err, size_t cap)
{
    char where[96], name[64];
    pid_t pid;

    listener_format(a, where, sizeof(where));
    if (sockdiag_holder(s->inode, &pid, name, sizeof(name)) == 0)
        snprintf(err, cap,
                 "cannot listen on %s: it is already held by process %ld (%s); stop that "
                 "process, or give another port with --listen",
                 where, (long)pid, name);
    else
        snprintf(err, cap,
                 "cannot listen on %s: it is already held by a process of user %u (ss -ltnp "
                 "shows which); stop that process, or give another port with --listen",
                 where, s->uid);
}

/*
 * Another process listening where a would (SO_REUSEPORT lets one of the same user share a
 * port, and the kernel would then spread clients over both): true, with err saying which.
 * Sockets in ours are the program's own.  A kernel that does not answer is not a conflict.
 */
static bool listener_held_elsewhere(const struct listener_addr *a, const uint64_t *ours,
                                    size_t nours, char *err, size_t errcap)
{
    /* Room for every socket of ours that may match (all workers, overlapping listeners)
     * and as many others: a foreign one must not fall past the end. */
    size_t cap = nours + SOCKDIAG_MAX_LISTENERS;
    struct sockdiag_socket *found = calloc(cap, sizeof(*found));
    bool held = false;
    int n;

    if (found == NULL)
        return false; /* cannot look: as when the kernel does not answer */
    n = sockdiag_tcp_listeners((const struct sockaddr *)&a->ss, found, cap);
    for (size_t i = 0; !held && n > 0 && i < (size_t)n && i < cap; i++) {
        if (!listener_is_ours(found[i].inode, ours, nours)) {
            listener_describe_holder(a, &found[i], err, errcap);
            held = true;
        }
    }
    free(found);
    return held;
}

/* Explains a failed bind of a in err. */
static void listener_bind_failed(const struct listener_addr *a, int err_no, const uint64_t *ours,
                                 size_t nours, char *err, size_t cap)
{
    char where[96];

    if (err_no == EADDRINUSE && listener_held_elsewhere(a, ours, nours, err, cap))
        return;
    listener_format(a, where, sizeof(where));
    snprintf(err, cap, "cannot listen on %s: %s%s", where, strerror(err_no),
             err_no == EACCES          ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
             : err_no == EADDRNOTAVAIL ? " (no interface of this machine has that address)"
                                       : "");
}

/*
 * Opens every listener for every worker; see the header.  All sockets are bound before
 * any listens, and nothing else may listen where they will, before or after: a second
 * sluice (or anything) on the port is found whether it came first or at the same time.
 */
int listener_open_all(struct listener_addr *addrs, size_t n, unsigned workers, int *fds, char *err,
                      size_t cap)
{
    size_t total = n * workers;
    /* Each socket's inode, read once: the checks compare every listener found to them. */
    uint64_t *inodes = calloc(total, sizeof(*inodes));

    for (size_t i = 0; i < total; i++)
        fds[i] = -1;
    if (inodes == NULL) {
        snprintf(err, cap, "cannot listen: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        /* One Unix socket serves every worker: each waits on its own duplicate. */
        if (addrs[i].ss.ss_family == AF_UNIX) {
            if ((fds[i] = listener_bind_unix(&addrs[i], &addrs[i].lock_fd, &addrs[i].sock_dev,
                                             &addrs[i].sock_ino, err, cap)) < 0)
                goto fail;
            for (unsigned k = 1; k < workers; k++)
                if ((fds[k * n + i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0)) < 0) {
                    snprintf(err, cap, "cannot listen on %s: %s", addrs[i].text, strerror(errno));
                    goto fail;
                }
            continue;
        }
        for (unsigned k = 0; k < workers; k++) {
            int fd = listener_bind(&addrs[i]);

            if (fd < 0) {
                listener_bind_failed(&addrs[i], errno, inodes, total, err, cap);
                goto fail;
            }
            fds[k * n + i] = fd;
            inodes[k * n + i] = sockdiag_inode(fd);
            if (k == 0) /* port 0: the kernel's pick is the port of the other workers */
                listener_set_port(&addrs[i], listener_bound_port(fd));
        }
    }
    for (size_t i = 0; i < n; i++)
        if (addrs[i].ss.ss_family != AF_UNIX &&
            listener_held_elsewhere(&addrs[i], inodes, total, err, cap))
            goto fail;
    for (size_t i = 0; i < total; i++) {
        if (listen(fds[i], LISTENER_BACKLOG) < 0) {
            char where[96];
            listener_format(&addrs[i % n], where, sizeof(where));
            snprintf(err, cap, "cannot listen on %s: %s", where, strerror(errno));
            goto fail;
        }
    }
    /* Two started at once both passed the first check: each sees the other now. */
    for (size_t i = 0; i < n; i++)
        if (addrs[i].ss.ss_family != AF_UNIX &&
            listener_held_elsewhere(&addrs[i], inodes, total, err, cap))
            goto fail;
    free(inodes);
    return 0;

fail:
    for (size_t i = 0; i < total; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(inodes);
    listener_close_unix(addrs, n);
    return -1;
}

/* Removes the Unix sockets of addrs and lets their locks go; see the header. */
void listener_close_unix(struct listener_addr *addrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *path = ((const struct sockaddr_un *)(const void *)&addrs[i].ss)->sun_path;
        struct stat st;

        if (addrs[i].ss.ss_family != AF_UNIX || addrs[i].lock_fd < 0)
            continue;
        /* The lock's holder removes the socket, and only the very file it made. */
        if (lstat(path, &st) == 0 && (uint64_t)st.st_dev == addrs[i].sock_dev &&
            (uint64_t)st.st_ino == addrs[i].sock_ino)
            (void)unlink(path);
        close(addrs[i].lock_fd);
        addrs[i].lock_fd = -1;
    }
}
