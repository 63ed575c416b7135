/* Scripted origin server: accept thread, one thread per connection, bounded I/O. */
#include "origin.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "httpmsg.h"
#include "tio.h"

#define ORIGIN_MAX_CONNS    256  /* connections handled at once */
#define ORIGIN_MAX_RECORDS  1024 /* request heads kept for the test to inspect */
#define ORIGIN_WRITE_BOUND  60000
#define ORIGIN_BACKSTOP_SEC 15 /* SO_RCVTIMEO/SO_SNDTIMEO under blocking TLS calls */

/* A connection thread's slot; fd is guarded by the origin's lock. */
struct origin_slot {
    bool used;        /* a thread was started and not yet joined */
    atomic_bool done; /* the thread finished and may be joined */
    pthread_t thread;
    int fd; /* live socket, -1 once closed */
    struct origin_conn *conn;
};

/* One recorded request. */
struct origin_record {
    struct tbuf head;
    struct tbuf body;
};

/* The server, owned by the test that called origin_start(). */
struct origin {
    struct origin_opts opts;
    int fd4;
    int fd6;
    uint16_t port4;
    uint16_t port6;
    pthread_t acceptor;
    atomic_bool stop;
    atomic_uint accepted;
    atomic_uint tls_failures;
    atomic_uint events;
    pthread_mutex_t lock; /* guards slots[].fd, records */
    struct origin_slot slots[ORIGIN_MAX_CONNS];
    struct origin_record *records;
    unsigned nrecords;
};

/* Arguments of a connection thread. */
struct origin_job {
    struct origin *o;
    struct origin_slot *slot;
};

/* Sets the blocking-call backstops on an accepted socket. */
static void origin_backstop(int fd)
{
    struct timeval tv = {.tv_sec = ORIGIN_BACKSTOP_SEC};
    int one = 1;

    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Runs the handler for one connection, then closes it (FIN, or RST when c->reset). */
static void *origin_conn_main(void *arg)
{
    struct origin_job *job = arg;
    struct origin *o = job->o;
    struct origin_slot *slot = job->slot;
    struct origin_conn *c = slot->conn;

    free(job);
    origin_backstop(c->fd);
    if (o->opts.tls != NULL) {
        c->ssl = SSL_new(o->opts.tls);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1) {
            atomic_fetch_add(&o->tls_failures, 1);
            goto out;
        }
    }
    o->opts.handler(c);
    if (c->ssl != NULL && !c->reset)
        (void)SSL_shutdown(c->ssl);
out:
    if (c->reset)
        (void)tio_set_linger0(c->fd);
    pthread_mutex_lock(&o->lock);
    close(c->fd);
    c->fd = -1;
    slot->fd = -1;
    pthread_mutex_unlock(&o->lock);
    SSL_free(c->ssl);
    c->ssl = NULL;
    tbuf_free(&c->in);
    tbuf_free(&c->head);
    atomic_store(&slot->done, true);
    return NULL;
}

/* Joins finished connection threads; with all set, joins every one (at stop). */
static void origin_reap(struct origin *o, bool all)
{
    size_t i;

    for (i = 0; i < ORIGIN_MAX_CONNS; i++) {
        struct origin_slot *s = &o->slots[i];

        if (!s->used || (!all && !atomic_load(&s->done)))
            continue;
        pthread_join(s->thread, NULL);
        free(s->conn);
        s->conn = NULL;
        s->used = false;
    }
}

/* Finds a free slot, reaping finished threads first.  NULL when all are busy. */
static struct origin_slot *origin_free_slot(struct origin *o)
{
    size_t i;

    origin_reap(o, false);
    for (i = 0; i < ORIGIN_MAX_CONNS; i++) {
        if (!o->slots[i].used)
            return &o->slots[i];
    }
    return NULL;
}

/* Accepts one connection from lfd and starts its thread. */
static void origin_accept_one(struct origin *o, int lfd)
{
    struct origin_slot *slot = origin_free_slot(o);
    struct origin_job *job;
    struct origin_conn *c;
    int fd;

    if (slot == NULL) {
        tio_sleep_ms(10); /* all busy: leave the connection in the backlog for now */
        return;
    }
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd == -1)
        return;
    c = calloc(1, sizeof(*c));
    job = calloc(1, sizeof(*job));
    if (c == NULL || job == NULL) {
        free(c);
        free(job);
        close(fd);
        return;
    }
    c->origin = o;
    c->fd = fd;
    c->index = atomic_fetch_add(&o->accepted, 1);
    c->arg = o->opts.arg;
    c->record = -1;
    job->o = o;
    job->slot = slot;
    slot->conn = c;
    slot->fd = fd;
    atomic_store(&slot->done, false);
    if (pthread_create(&slot->thread, NULL, origin_conn_main, job) != 0) {
        free(job);
        free(c);
        slot->conn = NULL;
        slot->fd = -1;
        close(fd);
        return;
    }
    slot->used = true;
}

/* The accept loop: polls the listeners in 100 ms steps until stop is set. */
static void *origin_accept_main(void *arg)
{
    struct origin *o = arg;
    long iter;

    for (iter = 0; iter < TIO_MAX_ITER && !atomic_load(&o->stop); iter++) {
        struct pollfd pfd[2];
        nfds_t n = 0;
        nfds_t i;

        if (o->fd4 >= 0)
            pfd[n++] = (struct pollfd){.fd = o->fd4, .events = POLLIN};
        if (o->fd6 >= 0)
            pfd[n++] = (struct pollfd){.fd = o->fd6, .events = POLLIN};
        if (poll(pfd, n, 100) <= 0)
            continue;
        for (i = 0; i < n; i++) {
            if (pfd[i].revents & POLLIN)
                origin_accept_one(o, pfd[i].fd);
        }
    }
    return NULL;
}

/* Opens the listeners and starts accepting. */
struct origin *origin_start(const struct origin_opts *opts)
{
    struct origin *o;
    size_t i;

    if (opts->handler == NULL || (opts->no_ipv4 && !opts->ipv6))
        return NULL;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->opts = *opts;
    o->fd4 = -1;
    o->fd6 = -1;
    atomic_init(&o->stop, false);
    atomic_init(&o->accepted, 0);
    atomic_init(&o->tls_failures, 0);
    atomic_init(&o->events, 0);
    for (i = 0; i < ORIGIN_MAX_CONNS; i++)
        o->slots[i].fd = -1;
    pthread_mutex_init(&o->lock, NULL);
    o->records = calloc(ORIGIN_MAX_RECORDS, sizeof(*o->records));
    if (o->records == NULL)
        goto fail;
    if (!opts->no_ipv4 && (o->fd4 = tio_listen("127.0.0.1", 128, &o->port4)) == -1)
        goto fail;
    if (opts->ipv6 && (o->fd6 = tio_listen("::1", 128, &o->port6)) == -1)
        goto fail;
    if (pthread_create(&o->acceptor, NULL, origin_accept_main, o) != 0)
        goto fail;
    return o;
fail:
    tio_close(&o->fd4);
    tio_close(&o->fd6);
    pthread_mutex_destroy(&o->lock);
    free(o->records);
    free(o);
    return NULL;
}

/* Reports the IPv4 port. */
uint16_t origin_port(const struct origin *o)
{
    return o->port4;
}

/* Reports the IPv6 port. */
uint16_t origin_port6(const struct origin *o)
{
    return o->port6;
}

/* Reports the accept count. */
unsigned origin_accepted(const struct origin *o)
{
    return atomic_load(&o->accepted);
}

/* Reports the failed handshakes. */
unsigned origin_tls_failures(const struct origin *o)
{
    return atomic_load(&o->tls_failures);
}

/* True while stopping. */
bool origin_stopping(const struct origin *o)
{
    return atomic_load(&o->stop);
}

/* Stops everything and frees the origin. */
void origin_stop(struct origin *o)
{
    size_t i;

    if (o == NULL)
        return;
    atomic_store(&o->stop, true);
    pthread_join(o->acceptor, NULL);
    tio_close(&o->fd4);
    tio_close(&o->fd6);
    pthread_mutex_lock(&o->lock);
    for (i = 0; i < ORIGIN_MAX_CONNS; i++) {
        if (o->slots[i].used && o->slots[i].fd >= 0)
            (void)shutdown(o->slots[i].fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&o->lock);
    origin_reap(o, true);
    for (i = 0; i < ORIGIN_MAX_RECORDS; i++) {
        tbuf_free(&o->records[i].head);
        tbuf_free(&o->records[i].body);
    }
    free(o->records);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

/* Reports how many heads were recorded. */
unsigned origin_requests(struct origin *o)
{
    unsigned n;

    pthread_mutex_lock(&o->lock);
    n = o->nrecords;
    pthread_mutex_unlock(&o->lock);
    return n;
}

/* Copies one recorded request out under the lock. */
bool origin_request(struct origin *o, unsigned idx, struct tbuf *head, struct tbuf *body)
{
    bool ok = false;

    pthread_mutex_lock(&o->lock);
    if (idx < o->nrecords) {
        if (head != NULL) {
            tbuf_reset(head);
            tbuf_append(head, o->records[idx].head.data, o->records[idx].head.len);
        }
        if (body != NULL) {
            tbuf_reset(body);
            tbuf_append(body, o->records[idx].body.data, o->records[idx].body.len);
        }
        ok = true;
    }
    pthread_mutex_unlock(&o->lock);
    return ok;
}

/* Counts one event. */
void origin_event(struct origin *o)
{
    atomic_fetch_add(&o->events, 1);
}

/* Polls the event counter every 5 ms within the bound. */
bool origin_wait_events(struct origin *o, unsigned n, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    int i;

    for (i = 0; atomic_load(&o->events) < n; i++) {
        if (i >= TIO_MAX_ITER || tio_now_ms() >= end)
            return false;
        tio_sleep_ms(5);
    }
    return true;
}

/* Reads from the TLS session after waiting for the socket within the bound. */
static ssize_t oconn_read_tls(struct origin_conn *c, void *buf, size_t cap, int timeout_ms)
{
    int n;

    if (SSL_pending(c->ssl) == 0) {
        int r = tio_wait(c->fd, POLLIN, timeout_ms);

        if (r <= 0)
            return -1;
    }
    n = SSL_read(c->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (n > 0)
        return n;
    if (SSL_get_error(c->ssl, n) == SSL_ERROR_ZERO_RETURN)
        return 0;
    return -1;
}

/* Serves buffered bytes first, then the socket. */
ssize_t oconn_read(struct origin_conn *c, void *buf, size_t cap, int timeout_ms)
{
    if (c->in.len > 0) {
        size_t n = c->in.len < cap ? c->in.len : cap;

        memcpy(buf, c->in.data, n);
        tbuf_consume(&c->in, n);
        return (ssize_t)n;
    }
    if (c->ssl != NULL)
        return oconn_read_tls(c, buf, cap, timeout_ms);
    return tio_read_some(c->fd, buf, cap, timeout_ms);
}

/* Appends more bytes from the connection to c->in. */
static ssize_t oconn_fill(struct origin_conn *c, int timeout_ms)
{
    char buf[16384];
    ssize_t n;

    if (c->ssl != NULL)
        n = oconn_read_tls(c, buf, sizeof(buf), timeout_ms);
    else
        n = tio_read_some(c->fd, buf, sizeof(buf), timeout_ms);
    if (n > 0)
        tbuf_append(&c->in, buf, (size_t)n);
    return n;
}

/* Writes through TLS or the socket. */
int oconn_write(struct origin_conn *c, const void *buf, size_t len)
{
    const char *p = buf;

    if (c->ssl == NULL)
        return tio_write_all(c->fd, buf, len, ORIGIN_WRITE_BOUND);
    for (int i = 0; len > 0; i++) {
        int chunk = len > 65536 ? 65536 : (int)len;
        int n = SSL_write(c->ssl, p, chunk);

        if (n <= 0 || i >= TIO_MAX_ITER)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes a string. */
int oconn_writes(struct origin_conn *c, const char *s)
{
    return oconn_write(c, s, strlen(s));
}

/* Records a head and remembers its index on the connection. */
static void oconn_record_head(struct origin_conn *c)
{
    struct origin *o = c->origin;

    pthread_mutex_lock(&o->lock);
    if (o->nrecords < ORIGIN_MAX_RECORDS) {
        c->record = (int)o->nrecords++;
        tbuf_append(&o->records[c->record].head, c->head.data, c->head.len);
    } else {
        c->record = -1;
    }
    pthread_mutex_unlock(&o->lock);
}

/* Reads until a whole head is buffered, then moves it to c->head. */
size_t oconn_read_head(struct origin_conn *c, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    size_t hl;
    int i;

    for (i = 0; (hl = httpmsg_head_len(c->in.data, c->in.len)) == 0; i++) {
        uint64_t now = tio_now_ms();

        if (i >= TIO_MAX_ITER || now >= end || c->in.len > 1024 * 1024)
            return 0;
        if (oconn_fill(c, (int)(end - now)) <= 0)
            return 0;
    }
    tbuf_reset(&c->head);
    tbuf_append(&c->head, c->in.data, hl);
    tbuf_consume(&c->in, hl);
    oconn_record_head(c);
    return hl;
}

/* Appends body bytes to the caller's buffer and to the record. */
static void oconn_body_bytes(struct origin_conn *c, struct tbuf *body, const char *p, size_t n)
{
    struct origin *o = c->origin;

    if (body != NULL)
        tbuf_append(body, p, n);
    if (c->record < 0)
        return;
    pthread_mutex_lock(&o->lock);
    if (o->records[c->record].body.len < 4 * 1024 * 1024)
        tbuf_append(&o->records[c->record].body, p, n);
    pthread_mutex_unlock(&o->lock);
}

/* Reads a Content-Length or chunked request body. */
int oconn_read_body(struct origin_conn *c, struct tbuf *body, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    uint64_t length;
    enum httpmsg_framing f = httpmsg_framing(c->head.data, c->head.len, false, false, &length);
    struct httpmsg_dechunk dc;
    struct tbuf data = {0};

    httpmsg_dechunk_init(&dc);
    for (int i = 0;; i++) {
        uint64_t now;

        if (f == HTTPMSG_LENGTH && c->in.len > 0 && length > 0) {
            size_t n = c->in.len < length ? c->in.len : (size_t)length;

            oconn_body_bytes(c, body, c->in.data, n);
            tbuf_consume(&c->in, n);
            length -= n;
        } else if (f == HTTPMSG_CHUNKED && c->in.len > 0) {
            long long n = httpmsg_dechunk(&dc, c->in.data, c->in.len, &data);

            if (n < 0) {
                tbuf_free(&data);
                return -1;
            }
            oconn_body_bytes(c, body, data.data, data.len);
            tbuf_reset(&data);
            tbuf_consume(&c->in, (size_t)n);
        }
        if (f == HTTPMSG_NONE || f == HTTPMSG_CLOSE || (f == HTTPMSG_LENGTH && length == 0) ||
            (f == HTTPMSG_CHUNKED && dc.done))
            break;
        now = tio_now_ms();
        if (i >= TIO_MAX_ITER || now >= end || oconn_fill(c, (int)(end - now)) <= 0) {
            tbuf_free(&data);
            return -1;
        }
    }
    tbuf_free(&data);
    return 0;
}

/* The reason phrase for the few codes tests use. */
static const char *oconn_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 404:
        return "Not Found";
    case 500:
        return "Internal Server Error";
    default:
        return "Whatever";
    }
}

/* Writes a complete Content-Length response in one go. */
int oconn_respond(struct origin_conn *c, int status, const char *extra, const char *body,
                  size_t body_len)
{
    struct tbuf out = {0};
    int rc;

    tbuf_printf(&out, "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n\r\n", status,
                oconn_reason(status), extra != NULL ? extra : "", body_len);
    if (body_len > 0)
        tbuf_append(&out, body, body_len);
    rc = oconn_write(c, out.data, out.len);
    tbuf_free(&out);
    return rc;
}

/* Sleeps in 10 ms steps so that stopping the origin is never delayed. */
bool oconn_sleep(struct origin_conn *c, unsigned ms)
{
    uint64_t end = tio_now_ms() + ms;
    int i;

    for (i = 0; i < TIO_MAX_ITER && tio_now_ms() < end; i++) {
        if (origin_stopping(c->origin))
            return false;
        tio_sleep_ms(10);
    }
    return !origin_stopping(c->origin);
}

/* Reads and drops bytes until end of stream, error, or the bound. */
bool oconn_wait_close(struct origin_conn *c, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    char buf[4096];
    int i;

    for (i = 0;; i++) {
        uint64_t now = tio_now_ms();
        ssize_t n;

        if (i >= TIO_MAX_ITER || now >= end || origin_stopping(c->origin))
            return false;
        n = oconn_read(c, buf, sizeof(buf), (int)(end - now) < 100 ? (int)(end - now) : 100);
        if (n == 0)
            return true;
        if (n < 0 && errno != ETIMEDOUT)
            return true;
    }
}

/* Keep-alive request loop answering each request with its target. */
void origin_handler_simple(struct origin_conn *c)
{
    unsigned i;

    for (i = 0; i < 1000 && !origin_stopping(c->origin); i++) {
        char target[2048] = "";
        char body[2200];
        const char *sp1;
        const char *sp2;
        bool is_head;
        bool close;
        int n;

        if (oconn_read_head(c, 10000) == 0)
            return;
        sp1 = memchr(c->head.data, ' ', c->head.len);
        sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', c->head.len - (size_t)(sp1 + 1 - c->head.data))
                          : NULL;
        if (sp1 != NULL && sp2 != NULL && (size_t)(sp2 - sp1 - 1) < sizeof(target)) {
            memcpy(target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
            target[sp2 - sp1 - 1] = '\0';
        }
        is_head = strncmp(c->head.data, "HEAD ", 5) == 0;
        close = httpmsg_field_has_token(c->head.data, c->head.len, "Connection", "close");
        if (httpmsg_field_has_token(c->head.data, c->head.len, "Expect", "100-continue") &&
            oconn_writes(c, "HTTP/1.1 100 Continue\r\n\r\n") != 0)
            return;
        if (oconn_read_body(c, NULL, 10000) != 0)
            return;
        n = snprintf(body, sizeof(body), "target=%s\n", target);
        if (is_head) {
            char h[128];

            snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n);
            if (oconn_writes(c, h) != 0)
                return;
        } else if (oconn_respond(c, 200, "Content-Type: text/plain\r\n", body, (size_t)n) != 0) {
            return;
        }
        if (close)
            return;
    }
}
