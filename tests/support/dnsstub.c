/* NXDOMAIN-for-everything DNS stub used by every integration test. */
#include "dnsstub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tio.h"

/* The stub: one UDP socket and one thread, owned by whoever called dnsstub_start(). */
struct dnsstub {
    int fd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    atomic_uint queries;
};

/*
 * Builds the NXDOMAIN answer for query q[0..n) into a[]; returns its length or 0 when the
 * query is not worth answering (too short, a response, or a malformed question).
 */
static size_t dnsstub_answer(const unsigned char *q, size_t n, unsigned char *a, size_t cap)
{
    size_t i = 12;
    unsigned qdcount;

    if (n < 12 || (q[2] & 0x80) != 0)
        return 0;
    qdcount = (unsigned)q[4] << 8 | q[5];
    if (qdcount == 1) {
        while (i < n && q[i] != 0) {
            if ((q[i] & 0xc0) != 0)
                return 0;
            i += (size_t)q[i] + 1;
        }
        i += 1 + 4; /* root label, QTYPE, QCLASS */
        if (i > n)
            return 0;
    } else {
        i = 12;
        qdcount = 0;
    }
    if (i > cap)
        return 0;
    memcpy(a, q, i);
    a[2] = (unsigned char)(0x80 | (q[2] & 0x79)); /* QR, opcode and RD kept, AA/TC clear */
    a[3] = 0x80 | 3;                              /* RA, RCODE 3 NXDOMAIN */
    a[4] = 0;
    a[5] = (unsigned char)qdcount;
    memset(a + 6, 0, 6); /* no answer, authority or additional records */
    return i;
}

/* Answers queries until asked to stop; polls in 100 ms steps so stopping is prompt. */
static void *dnsstub_main(void *arg)
{
    struct dnsstub *d = arg;
    unsigned char q[1500];
    unsigned char a[1500];
    long i;

    for (i = 0; i < TIO_MAX_ITER && !atomic_load(&d->stop); i++) {
        struct pollfd pfd = {.fd = d->fd, .events = POLLIN};
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n;
        size_t al;

        if (poll(&pfd, 1, 100) <= 0)
            continue;
        n = recvfrom(d->fd, q, sizeof(q), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n <= 0)
            continue;
        al = dnsstub_answer(q, (size_t)n, a, sizeof(a));
        if (al == 0)
            continue;
        atomic_fetch_add(&d->queries, 1);
        (void)sendto(d->fd, a, al, 0, (struct sockaddr *)&from, fl);
    }
    return NULL;
}

/* Creates the socket on 127.0.0.1:0 and starts the thread. */
struct dnsstub *dnsstub_start(void)
{
    struct dnsstub *d = calloc(1, sizeof(*d));
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sin);

    if (d == NULL)
        return NULL;
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (d->fd == -1)
        goto fail;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(d->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
        getsockname(d->fd, (struct sockaddr *)&sin, &sl) == -1)
        goto fail;
    d->port = ntohs(sin.sin_port);
    atomic_init(&d->stop, false);
    atomic_init(&d->queries, 0);
    if (pthread_create(&d->thread, NULL, dnsstub_main, d) != 0)
        goto fail;
    return d;
fail:
    if (d->fd >= 0)
        close(d->fd);
    free(d);
    return NULL;
}

/* Reports the port. */
uint16_t dnsstub_port(const struct dnsstub *d)
{
    return d->port;
}

/* Reports the number of queries answered. */
unsigned dnsstub_queries(const struct dnsstub *d)
{
    return atomic_load(&d->queries);
}

/* Stops the thread (it notices within 100 ms) and frees everything. */
void dnsstub_stop(struct dnsstub *d)
{
    if (d == NULL)
        return;
    atomic_store(&d->stop, true);
    pthread_join(d->thread, NULL);
    close(d->fd);
    free(d);
}
