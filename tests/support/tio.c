/* Bounded time and descriptor helpers shared by the test support modules. */
#include "tio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Reads CLOCK_MONOTONIC in milliseconds. */
uint64_t tio_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sleeps, resuming after an interrupting signal. */
void tio_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Toggles O_NONBLOCK on fd. */
int tio_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl == -1)
        return -1;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl);
}

/* Polls one descriptor with a bound, retrying on EINTR with the time left. */
int tio_wait(int fd, short events, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    int i;

    for (i = 0; i < TIO_MAX_ITER; i++) {
        struct pollfd pfd = {.fd = fd, .events = events};
        uint64_t now = tio_now_ms();
        int left = now >= end ? 0 : (int)(end - now);
        int n = poll(&pfd, 1, left);

        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

/* Sends on a socket without SIGPIPE, falling back to write() for other descriptors. */
static ssize_t tio_send(int fd, const void *buf, size_t len)
{
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n == -1 && errno == ENOTSOCK)
        n = write(fd, buf, len);
    return n;
}

/* Writes everything within the bound. */
int tio_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    const char *p = buf;
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    int i;

    for (i = 0; len > 0; i++) {
        ssize_t n = tio_send(fd, p, len);
        uint64_t now;

        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno != EAGAIN)
            return -1;
        now = tio_now_ms();
        if (i >= TIO_MAX_ITER || now >= end || tio_wait(fd, POLLOUT, (int)(end - now)) <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* Reads once after waiting for data within the bound. */
ssize_t tio_read_some(int fd, void *buf, size_t cap, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    int i;

    for (i = 0; i < TIO_MAX_ITER; i++) {
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        uint64_t now;
        int r;

        if (n == -1 && errno == ENOTSOCK)
            n = read(fd, buf, cap);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -1;
        now = tio_now_ms();
        r = now >= end ? 0 : tio_wait(fd, POLLIN, (int)(end - now));
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (r < 0)
            return -1;
    }
    errno = ETIMEDOUT;
    return -1;
}

/* Fills a sockaddr for an IPv4 or IPv6 literal.  Returns its length or 0. */
static socklen_t tio_sockaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return sizeof(*sin);
    }
    if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        return sizeof(*sin6);
    }
    return 0;
}

/* Non-blocking connect bounded by timeout_ms, then back to blocking mode. */
int tio_connect(const char *ip, uint16_t port, int timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t sl = tio_sockaddr(ip, port, &ss);
    int one = 1;
    int fd;
    int err = 0;
    socklen_t el = sizeof(err);

    if (sl == 0) {
        errno = EINVAL;
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1)
        return -1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&ss, sl) == -1) {
        if (errno != EINPROGRESS)
            goto fail;
        if (tio_wait(fd, POLLOUT, timeout_ms) <= 0) {
            errno = ETIMEDOUT;
            goto fail;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1)
            goto fail;
        if (err != 0) {
            errno = err;
            goto fail;
        }
    }
    if (tio_set_nonblock(fd, false) == -1)
        goto fail;
    return fd;
fail:
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

/* Binds ip:0, listens, and reports the ephemeral port. */
int tio_listen(const char *ip, int backlog, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = tio_sockaddr(ip, 0, &ss);
    int one = 1;
    int fd;

    if (sl == 0)
        return -1;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) == -1 || listen(fd, backlog) == -1)
        goto fail;
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
        goto fail;
    *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
fail:
    close(fd);
    return -1;
}

/* Makes the next close() abort the connection with a RST. */
int tio_set_linger0(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Closes and forgets a descriptor. */
void tio_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Slurps a file (used for ready files and logs, which stay small). */
char *tio_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    size_t cap = 0;

    if (f == NULL)
        return NULL;
    for (int iter = 0; iter < TIO_MAX_ITER; iter++) {
        size_t r;

        if (cap - n < 4096) {
            char *p = realloc(buf, cap + 65536);

            if (p == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
            cap += 65536;
        }
        r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* Writes a text file in one go. */
int tio_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    size_t n = strlen(text);
    int rc = 0;

    if (f == NULL)
        return -1;
    if (fwrite(text, 1, n, f) != n)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}
