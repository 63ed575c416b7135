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
#include <unistd.h>

#include "sluice/sockdiag.h"

/* Parses an address with a mandatory port (0 allowed: the kernel picks one). */
int listener_parse(const char *text, struct listener_addr *out, const char **errstr)
{
    const char *colon = strrchr(text, ':');
    char host[64];
    size_t hlen;
    unsigned long port = 0;

    memset(out, 0, sizeof(*out));
    *errstr = "expected ADDR:PORT with a numeric address, e.g. 127.0.0.1:3128 or [::1]:3128";
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

    if (a->ss.ss_family == AF_INET) {
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
        if (listener_held_elsewhere(&addrs[i], inodes, total, err, cap))
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
        if (listener_held_elsewhere(&addrs[i], inodes, total, err, cap))
            goto fail;
    free(inodes);
    return 0;

fail:
    for (size_t i = 0; i < total; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(inodes);
    return -1;
}
