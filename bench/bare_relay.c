/*
 * The floor for bench/run's tunnel figures: the least a CONNECT proxy can do, and nothing
 * else.  One thread, one level-triggered epoll set, the first read right after accept(),
 * a plain copy through one shared buffer (a short write keeps the rest and waits for
 * room), half-close passed on, and a read that finds the peer gone ends that direction
 * without the call that would only return 0.  No policy, no record, no timeout, no DNS
 * (every CONNECT goes to 127.0.0.1 at the port it names): what a tunnel costs the kernel
 * and the loop, which sluice's own cost is measured against.  Not a product: a client
 * that never finishes its head holds its connection for ever.
 *
 *   bench_bare_relay PORT         listens on 127.0.0.1:PORT
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX  4096
#define COPY_SIZE 65536

struct relay;

/* One socket of a relay, and the bytes that wait to be written to it. */
struct end {
    struct relay *relay;
    int fd;
    uint32_t watching; /* the events its epoll entry has, 0 when it has none */
    bool eof;          /* its peer has shut its side: nothing more comes from it */
    bool shut;         /* the end of the other side was passed on to it */
    char *pending;     /* bytes from the other end it has not taken yet; owned */
    size_t npending;
};

struct relay {
    struct end client, server;
    enum { READING_HEAD, CONNECTING, RELAYING } state;
    char head[HEAD_MAX];
    size_t head_len;
    size_t head_end; /* where the head ends: a client's bytes after it go on */
    bool done;
};

static int epfd;
static char copy_buf[COPY_SIZE];

/* Makes e's epoll entry wait for events (none: no entry). */
static void watch(struct end *e, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = e};
    int op = e->watching == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;

    if (events == e->watching)
        return;
    if (epoll_ctl(epfd, op, e->fd, &ev) < 0)
        perror("bench_bare_relay: epoll_ctl");
    e->watching = events;
}

/* What e waits for: room while bytes wait for it; input while it has some to give and
 * its destination has taken everything before. */
static uint32_t wanted(const struct end *e, const struct end *to)
{
    uint32_t events = e->npending > 0 ? EPOLLOUT : 0;

    if (!e->eof && to->npending == 0)
        events |= EPOLLIN | EPOLLRDHUP;
    return events;
}

static void relay_free(struct relay *r)
{
    close(r->client.fd);
    if (r->server.fd >= 0)
        close(r->server.fd);
    free(r->client.pending);
    free(r->server.pending);
    free(r);
}

/* Writes buf[0..n) to e, keeping what it does not take.  False when e failed. */
static bool send_to(struct end *e, const char *buf, size_t n)
{
    ssize_t w = write(e->fd, buf, n);

    if (w < 0 && errno != EAGAIN)
        return false;
    if (w < 0)
        w = 0;
    if ((size_t)w == n)
        return true;
    e->pending = malloc(n - (size_t)w);
    if (e->pending == NULL)
        return false;
    memcpy(e->pending, buf + w, n - (size_t)w);
    e->npending = n - (size_t)w;
    return true;
}

/* Writes what waits for e.  False when e failed. */
static bool flush(struct end *e)
{
    ssize_t n = write(e->fd, e->pending, e->npending);

    if (n < 0 && errno != EAGAIN)
        return false;
    if (n > 0) {
        e->npending -= (size_t)n;
        memmove(e->pending, e->pending + n, e->npending);
    }
    if (e->npending == 0) {
        free(e->pending);
        e->pending = NULL;
    }
    return true;
}

/* Reads the CONNECT head; once whole, dials 127.0.0.1 at its port.  False to close. */
static bool read_head(struct relay *r)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ssize_t n = read(r->client.fd, r->head + r->head_len, sizeof(r->head) - 1 - r->head_len);
    const char *colon, *end;
    int one = 1;
    long port;

    if (n < 0 && errno == EAGAIN) {
        watch(&r->client, EPOLLIN);
        return true;
    }
    if (n <= 0)
        return false;
    r->head_len += (size_t)n;
    r->head[r->head_len] = '\0';
    if ((end = strstr(r->head, "\r\n\r\n")) == NULL) {
        watch(&r->client, EPOLLIN);
        return r->head_len < sizeof(r->head) - 1;
    }
    r->head_end = (size_t)(end + 4 - r->head);
    colon = strncmp(r->head, "CONNECT ", 8) == 0 ? strchr(r->head + 8, ':') : NULL;
    port = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;
    if (port <= 0 || port > 65535)
        return false;
    watch(&r->client, 0);
    sa.sin_port = htons((uint16_t)port);
    r->server.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->server.fd < 0)
        return false;
    (void)setsockopt(r->server.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(r->server.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
        return false;
    r->state = CONNECTING;
    watch(&r->server, EPOLLOUT);
    return true;
}

/* The dial ended: answers the client and starts relaying.  False to close. */
static bool connected(struct relay *r, uint32_t events)
{
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    static const char bad[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";

    if (events & (EPOLLERR | EPOLLHUP)) {
        (void)!write(r->client.fd, bad, sizeof(bad) - 1);
        return false;
    }
    if (write(r->client.fd, ok, sizeof(ok) - 1) != (ssize_t)sizeof(ok) - 1)
        return false;
    r->state = RELAYING;
    if (r->head_len > r->head_end &&
        !send_to(&r->server, r->head + r->head_end, r->head_len - r->head_end))
        return false;
    watch(&r->server, wanted(&r->server, &r->client));
    watch(&r->client, wanted(&r->client, &r->server));
    return true;
}

/* events came for e: writes what waits for it, reads what it has and passes it on, and
 * passes its end on.  False to close (both directions done, or a failure). */
static bool relay_step(struct relay *r, struct end *e, uint32_t events)
{
    struct end *to = e == &r->client ? &r->server : &r->client;

    /* A reset: epoll would report it again and again, whatever the entry waits for. */
    if (events & EPOLLERR)
        return false;
    if ((events & EPOLLOUT) && e->npending > 0 && !flush(e))
        return false;
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && !e->eof && to->npending == 0) {
        ssize_t n = read(e->fd, copy_buf, sizeof(copy_buf));

        if (n < 0 && errno != EAGAIN)
            return false;
        if (n > 0 && !send_to(to, copy_buf, (size_t)n))
            return false;
        /* The peer shut its side and the read took less than it could: that was all. */
        if (n == 0 || (n > 0 && (size_t)n < sizeof(copy_buf) && (events & EPOLLRDHUP)))
            e->eof = true;
    }
    if (e->eof && to->npending == 0 && to->eof && e->npending == 0)
        return false; /* both finished: closing sends the last FIN */
    if (e->eof && to->npending == 0 && !to->shut) {
        to->shut = true;
        (void)shutdown(to->fd, SHUT_WR);
    }
    if (to->eof && e->npending == 0 && !e->shut) {
        e->shut = true;
        (void)shutdown(e->fd, SHUT_WR);
    }
    watch(e, wanted(e, to));
    watch(to, wanted(to, e));
    return true;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct epoll_event events[64];
    long port = argc == 2 ? strtol(argv[1], NULL, 10) : 0;
    int one = 1, lfd;

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: bench_bare_relay PORT\n");
        return 2;
    }
    sa.sin_port = htons((uint16_t)port);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lfd < 0 || epfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0) {
        perror("bench_bare_relay: listen");
        return 1;
    }
    {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) {
            perror("bench_bare_relay: epoll_ctl");
            return 1;
        }
    }
    for (;;) {
        struct relay *finished[64];
        size_t nfinished = 0;
        int n = epoll_wait(epfd, events, 64, -1);

        for (int i = 0; i < n; i++) {
            struct end *e = events[i].data.ptr;
            struct relay *r;
            bool ok;

            if (e == NULL) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0 || (r = calloc(1, sizeof(*r))) == NULL) {
                    if (fd >= 0)
                        close(fd);
                    continue;
                }
                r->client = (struct end){.relay = r, .fd = fd};
                r->server = (struct end){.relay = r, .fd = -1};
                /* The request is almost always there already: read it now. */
                if (!read_head(r))
                    relay_free(r);
                continue;
            }
            r = e->relay;
            if (r->done)
                continue; /* closed by an earlier event of this round */
            if (r->state == READING_HEAD)
                ok = read_head(r);
            else if (r->state == CONNECTING)
                ok = connected(r, events[i].events);
            else
                ok = relay_step(r, e, events[i].events);
            if (!ok) {
                r->done = true;
                finished[nfinished++] = r;
            }
        }
        /* Freed after the round: a later event of it may still name the relay. */
        for (size_t i = 0; i < nfinished; i++)
            relay_free(finished[i]);
    }
}
