/*
 * The DNS stub used by every integration test: NXDOMAIN unless a test gave it a record.
 * One thread answers; an answer a test asked to delay waits in a small queue, so that a
 * slow name does not hold up the others.
 */
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
#define DNSSTUB_MAX_ADDRS   4
#define DNSSTUB_MAX_ASKED   64
#define DNSSTUB_NAME_MAX    256
#define DNSSTUB_MAX_PENDING 16

/* The A records of one name a test asked the stub to serve. */
struct dnsstub_record {
    char name[DNSSTUB_NAME_MAX];
    struct in_addr addr[DNSSTUB_MAX_ADDRS];
    size_t naddr;
    bool silent;       /* never answered */
    unsigned delay_ms; /* answered this long after the query */
};

/* A delayed answer waiting for its time. */
struct dnsstub_pending {
    uint64_t due_ms;
    struct sockaddr_storage to;
    socklen_t tolen;
    size_t len;
    unsigned char a[512];
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
    struct dnsstub_pending pending[DNSSTUB_MAX_PENDING]; /* the thread's own */
    size_t npending;
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
                             size_t cap, unsigned *delay_ms)
{
    static const unsigned char rr_head[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
    char name[DNSSTUB_NAME_MAX];
    unsigned qtype = 0;
    struct dnsstub_record r;
    bool found;
    size_t i;

    *delay_ms = 0;
    if (n < 12 || (q[2] & 0x80) != 0 || q[4] != 0 || q[5] != 1)
        return 0;
    i = dnsstub_question(q, n, name, sizeof(name), &qtype);
    if (i == 0 || i + DNSSTUB_MAX_ADDRS * (sizeof(rr_head) + 4) > cap)
        return 0;
    found = dnsstub_lookup(d, name, &r);
    if (found && r.silent)
        return 0;
    if (found)
        *delay_ms = r.delay_ms;
    memcpy(a, q, i);
    a[2] = (unsigned char)(0x80 | (q[2] & 0x79));   /* QR, opcode and RD kept, AA/TC clear */
    a[3] = (unsigned char)(0x80 | (found ? 0 : 3)); /* RA; NOERROR or NXDOMAIN */
    memset(a + 6, 0, 6);                            /* no answer, authority or additional */
    if (!found || qtype != 1)
        return i;
    /* One answer per address: name by pointer to the question, A, IN, TTL 60, 4 bytes. */
    a[7] = (unsigned char)r.naddr;
    for (size_t k = 0; k < r.naddr; k++) {
        memcpy(a + i, rr_head, sizeof(rr_head));
        memcpy(a + i + sizeof(rr_head), &r.addr[k], 4);
        i += sizeof(rr_head) + 4;
    }
    return i;
}

/* Sends the delayed answers whose time has come; returns ms until the next one (or 100). */
static int dnsstub_flush_pending(struct dnsstub *d)
{
    uint64_t now = tio_now_ms();
    int wait = 100;

    for (size_t k = 0; k < d->npending;) {
        struct dnsstub_pending *p = &d->pending[k];

        if (p->due_ms <= now) {
            (void)sendto(d->fd, p->a, p->len, 0, (struct sockaddr *)&p->to, p->tolen);
            atomic_fetch_add(&d->queries, 1);
            d->pending[k] = d->pending[--d->npending];
            continue;
        }
        if ((int)(p->due_ms - now) < wait)
            wait = (int)(p->due_ms - now);
        k++;
    }
    return wait;
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
        unsigned delay_ms;
        ssize_t n;
        size_t al;

        if (poll(&pfd, 1, dnsstub_flush_pending(d)) <= 0)
            continue;
        n = recvfrom(d->fd, q, sizeof(q), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n <= 0)
            continue;
        al = dnsstub_answer(d, q, (size_t)n, a, sizeof(a), &delay_ms);
        if (al == 0)
            continue;
        if (delay_ms > 0 && d->npending < DNSSTUB_MAX_PENDING && al <= sizeof(d->pending[0].a)) {
            struct dnsstub_pending *p = &d->pending[d->npending++];

            p->due_ms = tio_now_ms() + delay_ms;
            p->to = from;
            p->tolen = fl;
            p->len = al;
            memcpy(p->a, a, al);
            continue;
        }
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

/* The record of name (made when absent and there is room), under the lock; or NULL. */
static struct dnsstub_record *dnsstub_record_of(struct dnsstub *d, const char *name)
{
    for (size_t i = 0; i < d->nrecords; i++)
        if (strcasecmp(d->records[i].name, name) == 0)
            return &d->records[i];
    if (d->nrecords == DNSSTUB_MAX_RECORDS || strlen(name) >= DNSSTUB_NAME_MAX)
        return NULL;
    memset(&d->records[d->nrecords], 0, sizeof(d->records[0]));
    snprintf(d->records[d->nrecords].name, DNSSTUB_NAME_MAX, "%s", name);
    return &d->records[d->nrecords++];
}

/*
 * Changes name's record: with ipv4, adds that address (replace: instead of the ones it
 * had); without, makes it never answered.  Returns 0 or -1.
 */
static int dnsstub_change(struct dnsstub *d, const char *name, const char *ipv4, bool replace)
{
    struct in_addr addr;
    struct dnsstub_record *r;
    int rc = -1;

    if (ipv4 != NULL && inet_pton(AF_INET, ipv4, &addr) != 1)
        return -1;
    pthread_mutex_lock(&d->lock);
    if ((r = dnsstub_record_of(d, name)) != NULL) {
        if (ipv4 == NULL) {
            r->silent = true;
            rc = 0;
        } else {
            if (replace)
                r->naddr = 0;
            if (r->naddr < DNSSTUB_MAX_ADDRS) {
                r->addr[r->naddr++] = addr;
                rc = 0;
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* Adds an A record. */
int dnsstub_add_a(struct dnsstub *d, const char *name, const char *ipv4)
{
    return dnsstub_change(d, name, ipv4, false);
}

/* Replaces the A records. */
int dnsstub_set_a(struct dnsstub *d, const char *name, const char *ipv4)
{
    return dnsstub_change(d, name, ipv4, true);
}

/* Adds a name never answered. */
int dnsstub_add_silent(struct dnsstub *d, const char *name)
{
    return dnsstub_change(d, name, NULL, false);
}

/* Delays the answers for name. */
int dnsstub_delay(struct dnsstub *d, const char *name, unsigned ms)
{
    struct dnsstub_record *r;

    pthread_mutex_lock(&d->lock);
    r = dnsstub_record_of(d, name);
    if (r != NULL)
        r->delay_ms = ms;
    pthread_mutex_unlock(&d->lock);
    return r != NULL ? 0 : -1;
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
