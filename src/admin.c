/* The admin listener's HTTP server; see include/sluice/admin.h. */
#include "sluice/admin.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "sluice/listener.h"
#include "sluice/metrics.h"

/* Methods evhttp hands to the callback: the ones it knows, so each gets 405, not 501. */
#define ADMIN_KNOWN_METHODS                                                                        \
    (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |     \
     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

/* The listener, its server and its thread; owned by the program. */
struct admin {
    struct listener_addr addr; /* as bound, port included */
    int fd;                    /* the listening socket until evhttp takes it, else -1 */
    struct event_base *base;   /* the thread's loop; owned */
    struct evhttp *http;       /* owned; holds the socket once it took it */
    pthread_t thread;
    bool started; /* the thread runs and must be joined */
    admin_health_fn health;
    void *health_arg;
};

/* Sets the fields every answer carries: the type, no caching, who answers. */
static void admin_headers(struct evhttp_request *req, const char *type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "Server", "sluice");
}

/* Answers with status, reason and a short text body (one line). */
static void admin_reply_text(struct evhttp_request *req, int status, const char *reason,
                             const char *text)
{
    struct evbuffer *body = evbuffer_new();

    admin_headers(req, "text/plain; charset=utf-8");
    if (body == NULL) {
        evhttp_send_error(req, 500, "Internal Server Error");
        return;
    }
    evbuffer_add_printf(body, "%s\n", text);
    evhttp_send_reply(req, status, reason, body);
    evbuffer_free(body);
}

/* Frees the rendered text once evhttp has sent it. */
static void admin_free_text_cb(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)(uintptr_t)data);
}

/* GET /metrics: the text format, rendered now. */
static void admin_metrics(struct evhttp_request *req)
{
    struct evbuffer *body = evbuffer_new();
    size_t len = 0;
    char *text = metrics_render(&len);

    if (body == NULL || text == NULL ||
        evbuffer_add_reference(body, text, len, admin_free_text_cb, NULL) < 0) {
        free(text);
        if (body != NULL)
            evbuffer_free(body);
        admin_reply_text(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    admin_headers(req, "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

/* GET /healthz: 200 ok, or 503 and why. */
static void admin_healthz(struct admin *a, struct evhttp_request *req)
{
    char why[512] = "unhealthy";

    if (a->health == NULL || a->health(why, sizeof(why), a->health_arg))
        admin_reply_text(req, 200, "OK", "ok");
    else
        admin_reply_text(req, 503, "Service Unavailable", why);
}

/* True when the request's path (its query aside) is exactly path. */
static bool admin_path_is(const char *uri, const char *path)
{
    size_t n = strlen(path);

    return strncmp(uri, path, n) == 0 && (uri[n] == '\0' || uri[n] == '?');
}

/* Every request: the method, then the path. */
static void admin_request_cb(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    const char *uri = evhttp_request_get_uri(req);

    if (uri == NULL)
        uri = "";
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        admin_reply_text(req, 405, "Method Not Allowed",
                         "sluice's admin listener answers GET and HEAD only");
        return;
    }
    if (admin_path_is(uri, "/metrics"))
        admin_metrics(req);
    else if (admin_path_is(uri, "/healthz"))
        admin_healthz(a, req);
    else
        admin_reply_text(req, 404, "Not Found", "not found: sluice serves /metrics and /healthz");
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
    a->http = a->base != NULL ? evhttp_new(a->base) : NULL;
    if (a->http == NULL) {
        snprintf(err, cap, "admin listener %s: cannot set up its server", address);
        goto fail;
    }
    evhttp_set_max_headers_size(a->http, ADMIN_MAX_HEAD);
    evhttp_set_max_body_size(a->http, 0); /* GET and HEAD carry none */
    evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
    evhttp_set_allowed_methods(a->http, ADMIN_KNOWN_METHODS);
    evhttp_set_gencb(a->http, admin_request_cb, a);
    if (evhttp_accept_socket_with_handle(a->http, a->fd) == NULL) {
        snprintf(err, cap, "admin listener %s: cannot accept on it", address);
        goto fail;
    }
    a->fd = -1; /* evhttp's now: evhttp_free() closes it */
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
        event_base_loopbreak(a->base); /* thread-safe: libevent's locks are on */
        pthread_join(a->thread, NULL);
        a->started = false;
    }
    if (a->http != NULL)
        evhttp_free(a->http);
    if (a->base != NULL)
        event_base_free(a->base);
    if (a->fd >= 0)
        close(a->fd);
    free(a);
}
