/* The DNS stub used by every integration test: NXDOMAIN unless a test gave it a record. */
#include "dnsstub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tio.h"

#define DNSSTUB_MAX_RECORDS 8
#define DNSSTUB_MAX_ASKED   64
#define DNSSTUB_NAME_MAX    256

/* One A record a test asked the stub to serve. */
struct dnsstub_record {
    char name[DNSSTUB_NAME_MAX];
    struct in_addr addr;
    bool silent; /* never answered */
};

/* The stub: one UDP socket and one thread, owned by whoever called dnsstub_start(). */
struct dnsstub {
    int fd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    atomic_uint queries;
    pthread_mutex_t lock; /* guards what follows: written by the test, read by the thread */
    struct dnsstub_record records[DNSSTUB_MAX_RECORDS];
    size_t nrecords;
    char asked[DNSSTUB_MAX_ASKED][DNSSTUB_NAME_MAX]; /* the names queried, oldest dropped */
    size_t nasked;
};

/*
 * Reads the question name of q[0..n) as dotted text into name (no trailing dot) and
 * returns the offset just past QTYPE and QCLASS (qtype set), or 0 when it is malformed.
 */
static size_t dnsstub_question(const unsigned char *q, size_t n, char *name, size_t cap,
                               unsigned *qtype)
{
    size_t i = 12, o = 0;

    while (i < n && q[i] != 0) {
        size_t len = q[i];
        if ((q[i] & 0xc0) != 0 || i + 1 + len > n || o + len + 2 > cap)
            return 0;
        if (o > 0)
            name[o++] = '.';
        memcpy(name + o, q + i + 1, len);
        o += len;
        i += len + 1;
    }
    name[o] = '\0';
    i += 1 + 4; /* root label, QTYPE, QCLASS */
    if (i > n)
        return 0;
    *qtype = (unsigned)q[i - 4] << 8 | q[i - 3];
    return i;
}

/* The record for name, copied into *r; false when the stub has none. */
static bool dnsstub_lookup(struct dnsstub *d, const char *name, struct dnsstub_record *r)
{
    bool found = false;

    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->nrecords && !found; i++)
        if (strcasecmp(d->records[i].name, name) == 0) {
            *r = d->records[i];
            found = true;
        }
    if (d->nasked == DNSSTUB_MAX_ASKED) {
        memmove(d->asked[0], d->asked[1], sizeof(d->asked[0]) * (DNSSTUB_MAX_ASKED - 1));
        d->nasked--;
    }
    snprintf(d->asked[d->nasked++], sizeof(d->asked[0]), "%s", name);
    pthread_mutex_unlock(&d->lock);
    return found;
}

/*
 * Builds the answer for query q[0..n) into a[]: an A record when the stub has one for
 * the name, an empty NOERROR for its other types, NXDOMAIN otherwise.  Returns its length,
 * or 0 when the query is not worth answering (too short, a response, a malformed question).
 */
static size_t dnsstub_answer(struct dnsstub *d, const unsigned char *q, size_t n, unsigned char *a,
                             size_t cap)
{
    static const unsigned char rr_head[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
    char name[DNSSTUB_NAME_MAX];
    unsigned qtype = 0;
    struct dnsstub_record r;
    bool found;
    size_t i;

    if (n < 12 || (q[2] & 0x80) != 0 || q[4] != 0 || q[5] != 1)
        return 0;
    i = dnsstub_question(q, n, name, sizeof(name), &qtype);
    if (i == 0 || i + sizeof(rr_head) + 4 > cap)
        return 0;
    found = dnsstub_lookup(d, name, &r);
    if (found && r.silent)
        return 0;
    memcpy(a, q, i);
    a[2] = (unsigned char)(0x80 | (q[2] & 0x79));   /* QR, opcode and RD kept, AA/TC clear */
    a[3] = (unsigned char)(0x80 | (found ? 0 : 3)); /* RA; NOERROR or NXDOMAIN */
    memset(a + 6, 0, 6);                            /* no answer, authority or additional */
    if (!found || qtype != 1)
        return i;
    a[7] = 1; /* one answer: name by pointer to the question, A, IN, TTL 60, 4 bytes */
    memcpy(a + i, rr_head, sizeof(rr_head));
    memcpy(a + i + sizeof(rr_head), &r.addr, 4);
    return i + sizeof(rr_head) + 4;
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
        al = dnsstub_answer(d, q, (size_t)n, a, sizeof(a));
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
    pthread_mutex_init(&d->lock, NULL);
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
    pthread_mutex_destroy(&d->lock);
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

/* Adds a record: an A record, or with ipv4 NULL, a name never answered. */
static int dnsstub_add(struct dnsstub *d, const char *name, const char *ipv4)
{
    struct dnsstub_record r = {.silent = ipv4 == NULL};
    int rc = -1;

    if (strlen(name) >= sizeof(r.name) || (ipv4 != NULL && inet_pton(AF_INET, ipv4, &r.addr) != 1))
        return -1;
    snprintf(r.name, sizeof(r.name), "%s", name);
    pthread_mutex_lock(&d->lock);
    if (d->nrecords < DNSSTUB_MAX_RECORDS) {
        d->records[d->nrecords++] = r;
        rc = 0;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* Adds an A record. */
int dnsstub_add_a(struct dnsstub *d, const char *name, const char *ipv4)
{
    return dnsstub_add(d, name, ipv4);
}

/* Adds a name never answered. */
int dnsstub_add_silent(struct dnsstub *d, const char *name)
{
    return dnsstub_add(d, name, NULL);
}

/* Looks name up among the names queried so far. */
bool dnsstub_was_asked(struct dnsstub *d, const char *name)
{
    bool asked = false;

    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->nasked && !asked; i++)
        asked = strcasecmp(d->asked[i], name) == 0;
    pthread_mutex_unlock(&d->lock);
    return asked;
}

/* Stops the thread (it notices within 100 ms) and frees everything. */
void dnsstub_stop(struct dnsstub *d)
{
    if (d == NULL)
        return;
    atomic_store(&d->stop, true);
    pthread_join(d->thread, NULL);
    close(d->fd);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
