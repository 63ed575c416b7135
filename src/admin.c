/* The admin listener's HTTP server; see include/sluice/admin.h. */
#include "sluice/admin.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "sluice/http1.h"
#include "sluice/listener.h"
#include "sluice/log.h"
#include "sluice/metrics.h"

/* Header fields of one request at most. */
#define ADMIN_MAX_FIELDS 64
/* After the last answer: how long, and how much, what the client still sends is read
 * and dropped, so that closing does not reset the connection under the answer. */
#define ADMIN_LINGER_MS    2000
#define ADMIN_LINGER_BYTES (64 * 1024)

struct admin;

/*
 * One client connection: its head is read into in (bounded), answered, and the next head
 * read after the answer went out, so a client that sends ahead and never reads holds one
 * head and one answer, whatever it sends.  Owned by its admin's list.
 */
struct admin_conn {
    TAILQ_ENTRY(admin_conn) entry;
    struct admin *a;
    evutil_socket_t fd;      /* owned */
    struct event *ev;        /* reading, then writing, until deadline_ms */
    struct evbuffer *out;    /* the answer being written; owned */
    uint64_t deadline_ms;    /* a head must have come, or the answer gone, by then */
    bool close_after;        /* the answer is the last on this connection */
    bool keep_alive_10;      /* an HTTP/1.0 client asked to keep the connection */
    bool lingering;          /* the last answer went: what comes is read and dropped */
    size_t lingered;         /* bytes dropped so far */
    size_t in_len;           /* bytes of in used */
    char in[ADMIN_MAX_HEAD]; /* a head, and what came after it */
};
TAILQ_HEAD(admin_conns, admin_conn);

/* The listener, its connections and its thread; owned by the program. */
struct admin {
    struct listener_addr addr;       /* as bound, port included */
    int fd;                          /* the listening socket until the listener takes it */
    struct event_base *base;         /* the thread's loop; owned */
    struct evconnlistener *listener; /* owned; holds the socket */
    struct event *resume;            /* accepting again after a failure; owned */
    struct event *stop;              /* breaks the loop, from any thread; owned */
    struct admin_conns conns;        /* open connections (the thread's alone) */
    unsigned nconns;
    pthread_t thread;
    bool started; /* the thread runs and must be joined */
    admin_health_fn health;
    void *health_arg;
};

/* Accepting again, unless the connections are at their cap or a failure's pause runs. */
static void admin_accept_more(struct admin *a)
{
    if (a->nconns < ADMIN_MAX_CONNS && !evtimer_pending(a->resume, NULL))
        evconnlistener_enable(a->listener);
}

/* Closes and frees c; one more connection may come. */
static void admin_conn_free(struct admin_conn *c)
{
    struct admin *a = c->a;

    TAILQ_REMOVE(&a->conns, c, entry);
    a->nconns--;
    if (c->ev != NULL)
        event_free(c->ev);
    if (c->out != NULL)
        evbuffer_free(c->out);
    evutil_closesocket(c->fd);
    free(c);
    admin_accept_more(a);
}

static void admin_conn_cb(evutil_socket_t fd, short what, void *arg);

/* The monotonic clock in ms. */
static uint64_t admin_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Waits for what (EV_READ or EV_WRITE) on c until c->deadline_ms: a deadline, not an idle
 * time, so that a client sending a byte now and then cannot hold a connection for long.
 */
static void admin_conn_wait(struct admin_conn *c, short what)
{
    uint64_t now = admin_now_ms(), left = c->deadline_ms > now ? c->deadline_ms - now : 1;
    const struct timeval limit = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};

    event_del(c->ev);
    event_assign(c->ev, c->a->base, c->fd, what, admin_conn_cb, c);
    event_add(c->ev, &limit);
}

/* Frees the rendered text once it has been written. */
static void admin_free_text_cb(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)(uintptr_t)data);
}

/*
 * Queues the answer: status, type, body (len bytes, or text when len is 0; body is taken
 * and freed after the write when take is true), with the fields every answer carries.  A
 * HEAD request gets the fields alone.
 */
static void admin_answer(struct admin_conn *c, int status, const char *reason, const char *type,
                         const char *extra, char *body, size_t len, bool take, bool head_only)
{
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    evbuffer_add_printf(c->out,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: %s\r\n"
                        "Cache-Control: no-store\r\n"
                        "Server: sluice\r\n"
                        "%s"
                        "Content-Length: %zu\r\n"
                        "%s"
                        "\r\n",
                        status, reason, type, extra != NULL ? extra : "", len,
                        c->close_after     ? "Connection: close\r\n"
                        : c->keep_alive_10 ? "Connection: keep-alive\r\n"
                                           : "");
    if (head_only) {
        if (take)
            free(body);
    } else if (!take) {
        evbuffer_add(c->out, body, len);
    } else if (evbuffer_add_reference(c->out, body, len, admin_free_text_cb, NULL) < 0) {
        free(body);
        c->close_after = true; /* a short answer: it ends the connection */
    }
    c->deadline_ms = admin_now_ms() + ADMIN_TIMEOUT_S * 1000u;
    admin_conn_wait(c, EV_WRITE);
}

/* A one-line text answer. */
static void admin_answer_text(struct admin_conn *c, int status, const char *reason,
                              const char *extra, const char *line, bool head_only)
{
    char body[600];
    int n = snprintf(body, sizeof(body), "%s\n", line);

    admin_answer(c, status, reason, "text/plain; charset=utf-8", extra, body,
                 n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0, false, head_only);
}

/* True when the target (its query aside) is exactly path. */
static bool admin_path_is(const char *target, size_t len, const char *path)
{
    size_t n = strlen(path);

    return len >= n && memcmp(target, path, n) == 0 && (len == n || target[n] == '?');
}

/* Answers the request whose head h is at the start of c->in. */
static void admin_serve(struct admin_conn *c, const struct http1_head *h)
{
    struct admin *a = c->a;
    const char *method = c->in + h->method.off, *target = c->in + h->target.off;
    bool get = h->method.len == 3 && memcmp(method, "GET", 3) == 0;
    bool head = h->method.len == 4 && memcmp(method, "HEAD", 4) == 0;

    c->close_after = h->conn_close || (h->version_minor == 0 && !h->conn_keep_alive);
    c->keep_alive_10 = h->version_minor == 0 && !c->close_after;
    if (!get && !head) {
        c->close_after = c->close_after || h->has_content_length || h->has_transfer_encoding;
        admin_answer_text(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                          "sluice's admin listener answers GET and HEAD only", false);
    } else if ((h->has_content_length && h->content_length > 0) || h->has_transfer_encoding) {
        c->close_after = true; /* its body is not read */
        admin_answer_text(c, 413, "Payload Too Large", NULL,
                          "sluice's admin listener takes no request body", head);
    } else if (admin_path_is(target, h->target.len, "/metrics")) {
        size_t len = 0;
        char *text = metrics_render(&len);

        if (text == NULL)
            admin_answer_text(c, 500, "Internal Server Error", NULL, "out of memory", head);
        else
            admin_answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, text, len,
                         true, head);
    } else if (admin_path_is(target, h->target.len, "/healthz")) {
        char why[512] = "unhealthy";

        if (a->health == NULL || a->health(why, sizeof(why), a->health_arg))
            admin_answer_text(c, 200, "OK", NULL, "ok", head);
        else
            admin_answer_text(c, 503, "Service Unavailable", NULL, why, head);
    } else {
        admin_answer_text(c, 404, "Not Found", NULL,
                          "not found: sluice serves /metrics and /healthz", head);
    }
}

/*
 * Reads and parses what c->in holds: an answer is queued for a whole head (which is
 * then taken from c->in), or for a malformed or oversized one; nothing when more must
 * come.
 */
static void admin_conn_parse(struct admin_conn *c)
{
    struct http1_limits lim = {
        .max_line = ADMIN_MAX_HEAD, .max_head = ADMIN_MAX_HEAD, .max_fields = ADMIN_MAX_FIELDS};
    struct http1_field fields[ADMIN_MAX_FIELDS];
    struct http1_head h;
    struct http1_parser p;
    int64_t n;

    http1_parser_init(&p, HTTP1_REQUEST, &lim, &h, fields, ADMIN_MAX_FIELDS);
    n = http1_parse_head(&p, c->in, c->in_len);
    if (n > 0) {
        admin_serve(c, &h);
        memmove(c->in, c->in + n, c->in_len - (size_t)n);
        c->in_len -= (size_t)n;
        return;
    }
    if (n == 0 && c->in_len < ADMIN_MAX_HEAD)
        return;
    c->close_after = true;
    if (n == 0 || p.error == HTTP1_E_HEAD_TOO_LARGE || p.error == HTTP1_E_LINE_TOO_LONG ||
        p.error == HTTP1_E_TOO_MANY_FIELDS)
        admin_answer_text(c, 431, "Request Header Fields Too Large", NULL,
                          "sluice's admin listener takes a request head of 8 KiB at most", false);
    else
        admin_answer_text(c, 400, "Bad Request", NULL, http1_error_str(p.error), false);
}

/*
 * The last answer went: the client is told the end (FIN), and what it still sends is read
 * and dropped for a while, since closing with bytes unread would reset the connection and
 * could take the answer with it.
 */
static void admin_conn_linger(struct admin_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    c->deadline_ms = admin_now_ms() + ADMIN_LINGER_MS;
    admin_conn_wait(c, EV_READ);
}

/* c's socket is ready, or its deadline passed. */
static void admin_conn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin_conn *c = arg;

    if ((what & EV_TIMEOUT) != 0 || admin_now_ms() >= c->deadline_ms) {
        admin_conn_free(c);
        return;
    }
    if (c->lingering) {
        char drop[4096];
        ssize_t got = recv(fd, drop, sizeof(drop), 0);

        if (got > 0)
            c->lingered += (size_t)got;
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR) ||
            c->lingered >= ADMIN_LINGER_BYTES)
            admin_conn_free(c);
        else
            admin_conn_wait(c, EV_READ);
        return;
    }
    if ((what & EV_WRITE) != 0) {
        if (evbuffer_write(c->out, fd) < 0 && errno != EAGAIN && errno != EINTR) {
            admin_conn_free(c);
            return;
        }
        if (evbuffer_get_length(c->out) > 0) {
            admin_conn_wait(c, EV_WRITE);
            return;
        }
        if (c->close_after) {
            admin_conn_linger(c);
            return;
        }
        /* The next head has ADMIN_TIMEOUT_S to come whole, from now. */
        c->deadline_ms = admin_now_ms() + ADMIN_TIMEOUT_S * 1000u;
        admin_conn_wait(c, EV_READ);
        if (c->in_len > 0) /* it came with the last one: answered now */
            admin_conn_parse(c);
        return;
    }
    {
        ssize_t got = recv(fd, c->in + c->in_len, ADMIN_MAX_HEAD - c->in_len, 0);

        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
            admin_conn_free(c);
            return;
        }
        if (got > 0) {
            c->in_len += (size_t)got;
            admin_conn_parse(c); /* may queue an answer: it then waits to write */
        }
        if (!event_pending(c->ev, EV_WRITE, NULL))
            admin_conn_wait(c, EV_READ);
    }
}

/* A connection came: served, and at the cap accepting stops until one goes. */
static void admin_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    struct admin *a = arg;
    struct admin_conn *c = calloc(1, sizeof(*c));

    (void)sa;
    (void)salen;
    if (c == NULL || (c->out = evbuffer_new()) == NULL ||
        (c->ev = event_new(a->base, fd, EV_READ | EV_PERSIST, admin_conn_cb, c)) == NULL) {
        if (c != NULL && c->out != NULL)
            evbuffer_free(c->out);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->a = a;
    c->fd = fd;
    c->deadline_ms = admin_now_ms() + ADMIN_TIMEOUT_S * 1000u;
    TAILQ_INSERT_TAIL(&a->conns, c, entry);
    if (++a->nconns >= ADMIN_MAX_CONNS)
        evconnlistener_disable(l);
    admin_conn_wait(c, EV_READ);
}

/*
 * accept() failed for want of a descriptor, or memory: accepting pauses for a second,
 * said once, rather than failing again at every loop round.
 */
static void admin_accept_failed_cb(struct evconnlistener *l, void *arg)
{
    struct admin *a = arg;
    const struct timeval second = {1, 0};
    int err = EVUTIL_SOCKET_ERROR();

    evconnlistener_disable(l);
    if (!evtimer_pending(a->resume, NULL))
        log_warn("admin listener %s: cannot accept a connection: %s; pausing it for a second",
                 a->addr.text, evutil_socket_error_to_string(err));
    evtimer_add(a->resume, &second);
}

/* The pause after a failure is over. */
static void admin_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    admin_accept_more(arg);
}

/* Asked to stop (admin_free(), from another thread): the loop ends. */
static void admin_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Opens the listening socket for a->addr, writing the port picked back; -1 with err. */
static int admin_bind(struct admin *a, char *err, size_t cap)
{
    const struct sockaddr *sa = (const struct sockaddr *)&a->addr.ss;
    socklen_t len = sizeof(a->addr.ss);
    int one = 1;

    a->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
        snprintf(err, cap, "admin listener %s: %s", a->addr.text, strerror(errno));
        return -1;
    }
    (void)setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6)
        (void)setsockopt(a->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(a->fd, sa, a->addr.len) < 0 || listen(a->fd, 128) < 0) {
        snprintf(err, cap, "admin listener %s: %s", a->addr.text, strerror(errno));
        return -1;
    }
    if (getsockname(a->fd, (struct sockaddr *)&a->addr.ss, &len) == 0)
        a->addr.len = len;
    return 0;
}

/* Binds and prepares; see the header. */
struct admin *admin_open(const char *address, char *err, size_t cap)
{
    struct admin *a = calloc(1, sizeof(*a));
    const char *errstr = NULL;

    if (a == NULL) {
        snprintf(err, cap, "admin listener: out of memory");
        return NULL;
    }
    a->fd = -1;
    TAILQ_INIT(&a->conns);
    if (listener_parse(address, &a->addr, &errstr) < 0 || a->addr.ss.ss_family == AF_UNIX) {
        snprintf(err, cap, "admin listener %s: %s", address,
                 errstr != NULL && a->addr.ss.ss_family != AF_UNIX
                     ? errstr
                     : "expected ADDR:PORT, e.g. 127.0.0.1:9090");
        goto fail;
    }
    if (admin_bind(a, err, cap) < 0)
        goto fail;
    a->base = event_base_new();
    a->resume = a->base != NULL ? evtimer_new(a->base, admin_resume_cb, a) : NULL;
    a->stop = a->base != NULL ? event_new(a->base, -1, 0, admin_stop_cb, a->base) : NULL;
    /* Disabled until the thread starts; the listener owns the socket from here on. */
    a->listener =
        a->resume != NULL && a->stop != NULL
            ? evconnlistener_new(a->base, admin_accept_cb, a,
                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
                                 -1, a->fd)
            : NULL;
    if (a->listener == NULL) {
        snprintf(err, cap, "admin listener %s: cannot set up its server", address);
        goto fail;
    }
    a->fd = -1;
    evconnlistener_set_error_cb(a->listener, admin_accept_failed_cb);
    return a;

fail:
    admin_free(a);
    return NULL;
}

/* The thread: serves until admin_free() breaks the loop. */
static void *admin_main(void *arg)
{
    struct admin *a = arg;

    event_base_loop(a->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* Starts the thread; see the header. */
int admin_start(struct admin *a, admin_health_fn health, void *arg, char *err, size_t cap)
{
    sigset_t all, old;
    int rc;

    a->health = health;
    a->health_arg = arg;
    evconnlistener_enable(a->listener);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&a->thread, NULL, admin_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, cap, "cannot start the admin listener's thread: %s", strerror(rc));
        return -1;
    }
    a->started = true;
    return 0;
}

/* Formats the bound address; see the header. */
void admin_format(const struct admin *a, char *out, size_t cap)
{
    listener_format(&a->addr, out, cap);
}

/* Stops and frees; see the header. */
void admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    if (a->started) {
        /* Not event_base_loopbreak() from here: a loop not yet entered would forget it;
         * an active event waits for the loop.  Thread-safe: libevent's locks are on. */
        event_active(a->stop, 0, 0);
        pthread_join(a->thread, NULL);
        a->started = false;
    }
    while (!TAILQ_EMPTY(&a->conns))
        admin_conn_free(TAILQ_FIRST(&a->conns));
    if (a->listener != NULL)
        evconnlistener_free(a->listener);
    if (a->resume != NULL)
        event_free(a->resume);
    if (a->stop != NULL)
        event_free(a->stop);
    if (a->base != NULL)
        event_base_free(a->base);
    if (a->fd >= 0)
        close(a->fd);
    free(a);
}
