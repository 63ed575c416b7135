/*
 * Client connections: reading request heads, dispatching them to the forwarder or the
 * tunnel, the per-state deadlines, responses made by sluice, lingering close, the log line
 * of each exchange, and the one teardown.  See include/sluice/conn.h for the states.
 */
#include "sluice/conn.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "sluice/audit.h"
#include "sluice/errpage.h"
#include "sluice/forward.h"
#include "sluice/log.h"
#include "sluice/netguard.h"
#include "sluice/request.h"
#include "sluice/tunnel.h"
#include "sluice/upstream.h"
#include "sluice/worker.h"

/* How long a closing connection may take to flush its last response and drain the rest. */
#define CONN_LINGER_MS 2000
/* How much a lingering client may still send before it is cut off. */
#define CONN_LINGER_MAX (1024 * 1024)
/* The most conn_read_more() reads in one call. */
#define CONN_READ_CHUNK (256 * 1024)

static void conn_client_read_cb(struct bufferevent *bev, void *arg);
static void conn_client_write_cb(struct bufferevent *bev, void *arg);
static void conn_client_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_read_head(struct conn *c);

/* Bit i of conn_transitions[from] says whether from -> i is legal. */
static const unsigned conn_transitions[] = {
    [CONN_ST_HEAD] = 1u << CONN_ST_RESOLVE | 1u << CONN_ST_FORWARD | 1u << CONN_ST_LINGER,
    [CONN_ST_RESOLVE] = 1u << CONN_ST_CONNECT | 1u << CONN_ST_LINGER,
    [CONN_ST_CONNECT] =
        1u << CONN_ST_CONNECT | 1u << CONN_ST_FORWARD | 1u << CONN_ST_TUNNEL | 1u << CONN_ST_LINGER,
    [CONN_ST_FORWARD] =
        1u << CONN_ST_HEAD | 1u << CONN_ST_RESOLVE | 1u << CONN_ST_TUNNEL | 1u << CONN_ST_LINGER,
    [CONN_ST_TUNNEL] = 0,
    [CONN_ST_LINGER] = 0,
    [CONN_ST_CLOSED] = 0,
};

/* Name of a state for logs. */
const char *conn_state_str(enum conn_state st)
{
    switch (st) {
    case CONN_ST_HEAD:
        return "head";
    case CONN_ST_RESOLVE:
        return "resolve";
    case CONN_ST_CONNECT:
        return "connect";
    case CONN_ST_FORWARD:
        return "forward";
    case CONN_ST_TUNNEL:
        return "tunnel";
    case CONN_ST_LINGER:
        return "linger";
    case CONN_ST_CLOSED:
        return "closed";
    }
    return "?";
}

/* Moves c to st; any state may close, the rest follow the table. */
void conn_set_state(struct conn *c, enum conn_state st)
{
    if (st != CONN_ST_CLOSED && (conn_transitions[c->state] & (1u << st)) == 0) {
        log_error("bug: illegal connection state change %s -> %s", conn_state_str(c->state),
                  conn_state_str(st));
        assert(!"illegal connection state change");
    }
    c->state = st;
}

/* Monotonic milliseconds; the coarse clock is enough for deadlines and cheap to read. */
uint64_t conn_now_ms(const struct conn *c)
{
    struct timespec ts;

    (void)c;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Arms the state's timer for ms from now and restarts the inactivity clock. */
void conn_timer_arm(struct conn *c, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    c->timer_ms = ms;
    c->activity_ms = conn_now_ms(c);
    evtimer_add(c->timer, &tv);
}

/* Notes movement; the timer callback compares against this before acting. */
void conn_touch(struct conn *c)
{
    c->activity_ms = conn_now_ms(c);
}

/* Reads more of a bulk transfer than libevent's 4 KiB per event; see conn.h. */
size_t conn_read_more(struct bufferevent *bev, size_t max)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec vec[4];
    struct iovec iov[4];
    ssize_t got;
    size_t left;
    int n, used = 0;

    /* Chains below malloc's mmap threshold are recycled cheaply; bigger ones are not. */
    if (max > CONN_READ_CHUNK)
        max = CONN_READ_CHUNK;
    /* A bufferevent keeps the tail of its input frozen except while it reads itself. */
    evbuffer_unfreeze(in, 0);
    n = max > 0 ? evbuffer_reserve_space(in, (ev_ssize_t)max, vec, 4) : 0;
    if (n <= 0) {
        evbuffer_freeze(in, 0);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len;
    }
    got = readv(bufferevent_getfd(bev), iov, n);
    for (left = got > 0 ? (size_t)got : 0; left > 0 && used < n; used++) {
        if (vec[used].iov_len > left)
            vec[used].iov_len = left;
        left -= vec[used].iov_len;
    }
    evbuffer_commit_space(in, vec, used);
    evbuffer_freeze(in, 0);
    return got > 0 ? (size_t)got : 0;
}

/* Records the termination code of the exchange unless one was recorded already. */
void conn_set_term(struct conn *c, char who, char phase)
{
    if (c->term[0] == '\0') {
        c->term[0] = who;
        c->term[1] = phase;
        c->term[2] = '\0';
    }
}

/* Writes the log line of the exchange in progress, once. */
static void conn_report(struct conn *c)
{
    struct audit_record rec;

    if (!c->exchange_active)
        return;
    c->exchange_active = false;
    if (c->term[0] == '\0')
        conn_set_term(c, CONN_END_NORMAL, CONN_PH_NONE);
    rec.client = c->client_addr;
    rec.method = c->method[0] != '\0' ? c->method : "-";
    rec.target = c->target != NULL ? c->target : "-";
    rec.status = c->status;
    rec.sent = c->sent;
    rec.received = c->received;
    rec.duration_ms = conn_now_ms(c) - c->start_ms;
    rec.sni = c->sni;
    rec.term = c->term;
    rec.tool = c->identity.tool != NULL ? c->identity.tool->id : "unidentified";
    rec.id_source = identity_source_str(c->identity.source);
    rec.decision = c->decided ? policy_verdict_str(c->decision.verdict) : "-";
    rec.rule = c->decided ? c->decision.rule : "-";
    rec.dest_ip = c->dest_known ? c->dest.ip : "-";
    rec.country = c->dest_known && c->dest.country[0] != '\0' ? c->dest.country : "-";
    rec.asn = c->dest_known ? c->dest.asn : 0;
    audit_emit(&rec);
}

/* Clears everything that belongs to one exchange so the next request starts clean. */
static void conn_reset_exchange(struct conn *c)
{
    free(c->target);
    c->target = NULL;
    if (c->pending != NULL) {
        evbuffer_free(c->pending);
        c->pending = NULL;
    }
    c->method[0] = '\0';
    c->host[0] = '\0';
    c->port = 0;
    c->is_connect = c->is_head = c->client_http10 = c->client_keepalive = false;
    c->wants_upgrade = false;
    c->req_body = CONN_BODY_NONE;
    c->req_left = 0;
    c->req_done = false;
    c->resp_head_done = c->resp_started = c->resp_done = c->resp_rechunk = false;
    c->resp_body = CONN_BODY_NONE;
    c->resp_left = 0;
    c->close_after = c->upstream_paused = c->client_paused = false;
    c->upstream_reused = c->upstream_keep = false;
    c->status = 0;
    c->decided = c->dest_known = c->guard_denied = false;
    c->identity.tool = NULL;
    c->identity.source = IDENTITY_NONE;
    c->sent = c->received = 0;
    c->term[0] = '\0';
}

/* Sets TCP_NODELAY: heads and small bodies must not wait for Nagle. */
static void conn_set_nodelay(evutil_socket_t fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Formats "ip:port" (IPv6 in brackets) for the log. */
static void conn_format_addr(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        evutil_inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        port = ntohs(sin->sin_port);
        snprintf(out, cap, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        evutil_inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        port = ntohs(sin6->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
    } else {
        snprintf(out, cap, "unix");
    }
}

/* Takes over an accepted socket and starts reading the first request head. */
struct conn *conn_new(struct worker *w, evutil_socket_t fd, const struct sockaddr *sa, int salen,
                      const char *listener_tool)
{
    const struct sluice_settings *s = w->settings;
    struct conn *c;
    size_t high;

    (void)salen;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    c->worker = w;
    c->settings = s;
    c->listener_tool = listener_tool;
    c->policy = policy_acquire();
    if (c->policy == NULL)
        goto fail;
    c->state = CONN_ST_HEAD;
    conn_format_addr(sa, c->client_addr, sizeof(c->client_addr));
    c->timer = evtimer_new(w->base, conn_timer_cb, c);
    if (c->timer == NULL)
        goto fail;
    c->client = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->client == NULL)
        goto fail;
    fd = -1; /* the bufferevent owns it now */
    conn_set_nodelay(bufferevent_getfd(c->client));
    bufferevent_setcb(c->client, conn_client_read_cb, conn_client_write_cb, conn_client_event_cb,
                      c);
    /* A whole head must fit in the input; past that, reading pauses until we consume. */
    high = (size_t)s->request_limits.max_head + 4096;
    if (high < CONN_HIGH_WATERMARK)
        high = CONN_HIGH_WATERMARK;
    bufferevent_setwatermark(c->client, EV_READ, 0, high);
    bufferevent_set_max_single_write(c->client, CONN_HIGH_WATERMARK);
    if (bufferevent_enable(c->client, EV_READ | EV_WRITE) < 0)
        goto fail;
    TAILQ_INSERT_TAIL(&w->conns, c, entry);
    w->nconns++;
    conn_timer_arm(c, s->timeout_head_ms);
    return c;

fail:
    if (c != NULL) {
        policy_unref(c->policy);
        if (c->client != NULL)
            bufferevent_free(c->client);
        if (c->timer != NULL)
            event_free(c->timer);
        free(c);
    }
    if (fd >= 0)
        evutil_closesocket(fd);
    return NULL;
}

/* Tears c down: log line, events, sockets, buffers; the struct goes to the dead list. */
void conn_close(struct conn *c, char who, char phase)
{
    if (c->state == CONN_ST_CLOSED)
        return;
    conn_set_term(c, who, phase);
    conn_report(c);
    upstream_cancel(c);
    conn_set_state(c, CONN_ST_CLOSED);
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    if (c->upstream != NULL) {
        bufferevent_free(c->upstream);
        c->upstream = NULL;
    }
    if (c->client != NULL) {
        bufferevent_free(c->client);
        c->client = NULL;
    }
    conn_reset_exchange(c);
    free(c->fields);
    c->fields = NULL;
    policy_unref(c->policy);
    c->policy = NULL;
    worker_conn_closed(c->worker, c);
}

/* Frees what is left of a closed connection; called by the worker's reaper. */
void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    assert(c->state == CONN_ST_CLOSED);
    free(c);
}

/* Cuts the client off with a TCP reset so it cannot take a truncated body for a whole one. */
void conn_abort(struct conn *c, char who, char phase)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (c->client != NULL)
        (void)setsockopt(bufferevent_getfd(c->client), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    conn_close(c, who, phase);
}

/* Starts the lingering close: flush what is queued, half-close, drain, then close. */
static void conn_linger(struct conn *c)
{
    conn_report(c);
    upstream_cancel(c);
    if (c->upstream != NULL) {
        bufferevent_free(c->upstream);
        c->upstream = NULL;
    }
    conn_set_state(c, CONN_ST_LINGER);
    /* The write callback must fire when the output is empty, not at the relay watermark. */
    bufferevent_setwatermark(c->client, EV_WRITE, 0, 0);
    bufferevent_setwatermark(c->client, EV_READ, 0, 0);
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    evbuffer_drain(bufferevent_get_input(c->client), (size_t)-1);
    if (evbuffer_get_length(bufferevent_get_output(c->client)) == 0) {
        conn_client_write_cb(c->client, c);
    } else {
        /* A slow client may take long to read the last response: bound the flush by
         * progress (no byte written for the idle timeout), not by a fixed time. */
        struct timeval tv = {.tv_sec = c->settings->timeout_idle_ms / 1000,
                             .tv_usec = (suseconds_t)(c->settings->timeout_idle_ms % 1000) * 1000};
        evtimer_del(c->timer);
        bufferevent_set_timeouts(c->client, NULL, &tv);
    }
}

/* Ends the exchange with a response of sluice's own, or a reset if one already started. */
void conn_fail(struct conn *c, unsigned status, const char *error_type, char who, char phase,
               const char *what)
{
    char host[300];

    if (c->state == CONN_ST_CLOSED || c->state == CONN_ST_LINGER)
        return;
    conn_set_term(c, who, phase);
    if (c->resp_head_done || c->state == CONN_ST_TUNNEL) {
        conn_abort(c, who, phase);
        return;
    }
    log_escape(host, sizeof(host), c->host, strlen(c->host));
    c->received += errpage_write(bufferevent_get_output(c->client), status, error_type, host, what);
    c->status = status;
    c->resp_head_done = true;
    if (log_enabled(LOGL_INFO))
        log_info("%s: %u for %s: %s", c->client_addr, status, host[0] ? host : "-", what);
    conn_linger(c);
}

/* After a finished exchange: keep the client for the next request, or close it. */
void conn_exchange_done(struct conn *c)
{
    conn_report(c);
    if (c->upstream != NULL) {
        bufferevent_free(c->upstream);
        c->upstream = NULL;
    }
    /* A client that half-closed after pipelining more requests still gets their answers. */
    if (c->close_after || worker_is_draining(c->worker) ||
        (c->client_eof && evbuffer_get_length(bufferevent_get_input(c->client)) == 0)) {
        conn_linger(c);
        return;
    }
    conn_reset_exchange(c);
    conn_set_state(c, CONN_ST_HEAD);
    bufferevent_setwatermark(c->client, EV_WRITE, 0, 0);
    bufferevent_enable(c->client, EV_READ);
    conn_timer_arm(c, c->settings->timeout_keepalive_ms);
    /* A pipelined request may be waiting already. */
    if (evbuffer_get_length(bufferevent_get_input(c->client)) > 0)
        conn_read_head(c);
}

/* The upstream is connected: answer CONNECT and tunnel, or send the request on. */
void conn_upstream_ready(struct conn *c)
{
    static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";

    if (c->is_connect) {
        bufferevent_write(c->client, established, sizeof(established) - 1);
        c->received += sizeof(established) - 1;
        c->status = 200;
        c->resp_head_done = true;
        tunnel_start(c, true);
        return;
    }
    forward_start(c);
}

/* Refuses the exchange with 403 on the strength of c->decision, naming tool, rule and file. */
void conn_deny(struct conn *c, char phase, const char *address)
{
    const struct policy_decision *d = &c->decision;
    char what[640], host[300];

    log_escape(host, sizeof(host), c->host, strlen(c->host));
    snprintf(what, sizeof(what), "blocked %s:%u%s%s%s for tool %s: %s (rule %s in %s)", host,
             c->port, address != NULL ? " (address " : "", address != NULL ? address : "",
             address != NULL ? ")" : "", d->tool, d->reason, d->rule, d->file);
    log_notice("%s: %s %s", c->client_addr, c->method, what);
    conn_fail(c, 403, "http_request_denied", CONN_END_PROXY, phase, what);
}

/* Refuses a request the parser or the dispatcher could not accept. */
static void conn_refuse(struct conn *c, unsigned status, const char *what, uint32_t pos)
{
    log_notice("%s: %u: %s (at byte %u)", c->client_addr, status, what, pos);
    conn_fail(c, status, "http_request_error", CONN_END_PROXY, CONN_PH_REQUEST, what);
}

/* Copies the method and target of the parsed head for the log line. */
static void conn_note_request_line(struct conn *c, const char *buf)
{
    const struct http1_span *m = &c->head.method, *t = &c->head.target;
    size_t mlen = m->len < sizeof(c->method) - 1 ? m->len : sizeof(c->method) - 1;

    memcpy(c->method, buf + m->off, mlen);
    c->method[mlen] = '\0';
    c->target = malloc((size_t)t->len + 1);
    if (c->target != NULL) {
        memcpy(c->target, buf + t->off, t->len);
        c->target[t->len] = '\0';
    }
}

/*
 * Puts the target's host into c->host in its one normalised form (request.h), which
 * policy, the resolver, the forwarded Host field and the log all use; false (with *errstr)
 * when the host is not a valid name or address.
 */
static bool conn_take_host(struct conn *c, const char *buf, const struct http1_target *t,
                           const char **errstr)
{
    int n = request_normalize_host(buf + t->host.off, t->host.len, t->host_is_ipv6, c->host,
                                   sizeof(c->host), &c->host_is_ipv6, errstr);

    c->port = t->port;
    return n > 0;
}

/*
 * Names the tool and asks the policy about the request whose head is in buf; answers 403
 * and returns false when it is blocked.  A "report" decision goes through with a log line.
 */
static bool conn_decide(struct conn *c, const char *buf, const struct http1_target *t)
{
    const struct http1_head *h = &c->head;
    const char *auth = NULL, *path = NULL;
    size_t auth_len = 0;
    struct policy_query q;

    for (uint32_t i = 0; i < h->nfields; i++)
        if (http1_span_eq_ci(buf, h->fields[i].name, "proxy-authorization")) {
            auth = buf + h->fields[i].value.off;
            auth_len = h->fields[i].value.len;
        }
    identity_resolve(c->policy, c->listener_tool, auth, auth_len, &c->identity);
    if (!c->is_connect && c->target != NULL)
        path = t->path.len > 0 ? c->target + (t->path.off - h->target.off) : "/";
    q.settings = c->settings;
    q.tool = c->identity.tool;
    q.is_connect = c->is_connect;
    q.method = c->method;
    q.host = c->host;
    q.port = c->port;
    q.path = path;
    policy_decide(c->policy, &q, &c->decision);
    c->decided = true;
    if (c->decision.verdict == POLICY_ALLOW)
        return true;
    if (c->decision.verdict == POLICY_REPORT) {
        char host[300];
        log_escape(host, sizeof(host), c->host, strlen(c->host));
        log_notice("%s: would block %s %s:%u for tool %s: rule %s in %s", c->client_addr, c->method,
                   host, c->port, c->decision.tool, c->decision.rule, c->decision.file);
        return true;
    }
    conn_deny(c, CONN_PH_REQUEST, NULL);
    return false;
}

/* Works out where a complete request goes and hands it on; buf holds the head. */
static void conn_dispatch(struct conn *c, const char *buf)
{
    struct http1_head *h = &c->head;
    struct http1_target t;
    const char *errstr = NULL;
    uint32_t head_len = h->head_len;

    conn_note_request_line(c, buf);
    c->client_http10 = h->version_minor == 0;
    c->client_keepalive = !c->client_http10 && !h->conn_close;
    c->is_connect = http1_span_eq_ci(buf, h->method, "CONNECT");
    c->is_head = http1_span_eq_ci(buf, h->method, "HEAD");

    if (c->is_connect) {
        if (http1_parse_authority(buf, h->target, &t) < 0) {
            conn_refuse(c, 400, "CONNECT needs a target of the form host:port", h->target.off);
            return;
        }
        if (h->chunked || (h->has_content_length && h->content_length > 0)) {
            conn_refuse(c, 400, "a CONNECT request cannot carry a body", 0);
            return;
        }
    } else if (h->target.len > 0 && buf[h->target.off] == '/') {
        conn_refuse(c, 400,
                    "sluice is a forward proxy: send absolute URLs (http://host/path), "
                    "or set it as the client's HTTP proxy",
                    h->target.off);
        return;
    } else if (http1_parse_absolute_target(buf, h->target, &t) < 0) {
        conn_refuse(c, 400,
                    "the request target is not a valid http:// URL "
                    "(https:// goes through CONNECT)",
                    h->target.off);
        return;
    }
    if (!conn_take_host(c, buf, &t, &errstr)) {
        char what[200];
        snprintf(what, sizeof(what), "the host in the request target is not valid: %s", errstr);
        conn_refuse(c, 400, what, t.host.off);
        return;
    }

    if (!conn_decide(c, buf, &t))
        return;

    if (!c->is_connect && forward_build_request(c, buf, &t, &errstr) < 0) {
        conn_refuse(c, 400, errstr, 0);
        return;
    }
    evbuffer_drain(bufferevent_get_input(c->client), head_len);
    c->sent += head_len;
    upstream_start(c, !c->is_connect && !c->wants_upgrade);
}

/* Allocates the field array once per connection, large enough for either kind of head. */
static bool conn_ensure_fields(struct conn *c)
{
    uint32_t cap = c->settings->request_limits.max_fields;

    if (c->settings->response_limits.max_fields > cap)
        cap = c->settings->response_limits.max_fields;
    if (c->fields != NULL)
        return true;
    c->fields = calloc(cap, sizeof(*c->fields));
    c->fields_cap = cap;
    return c->fields != NULL;
}

/* Parses as much of the request head as has arrived; dispatches it when complete. */
static void conn_read_head(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->client);
    const struct http1_limits *lim = &c->settings->request_limits;
    size_t len = evbuffer_get_length(in), want;
    const char *buf;
    int64_t r;

    if (len == 0)
        return;
    if (!c->exchange_active) {
        if (!conn_ensure_fields(c)) {
            conn_close(c, CONN_END_RESOURCE, CONN_PH_REQUEST);
            return;
        }
        c->exchange_active = true;
        c->start_ms = conn_now_ms(c);
        c->requests++;
        http1_parser_init(&c->parser, HTTP1_REQUEST, lim, &c->head, c->fields, c->fields_cap);
        /* A keep-alive wait ends with the first byte; the head bound starts now. */
        if (c->requests > 1)
            conn_timer_arm(c, c->settings->timeout_head_ms);
    }
    /* The parser never needs more than one byte past the head limit to decide. */
    want = len < (size_t)lim->max_head + 1 ? len : (size_t)lim->max_head + 1;
    buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
    if (buf == NULL) {
        conn_close(c, CONN_END_RESOURCE, CONN_PH_REQUEST);
        return;
    }
    r = http1_parse_head(&c->parser, buf, want);
    if (r < 0) {
        enum http1_error err = c->parser.error;
        char what[160];
        snprintf(what, sizeof(what),
                 "refused a malformed request (%s); send one plain HTTP/1.1 request",
                 http1_error_str(err));
        conn_refuse(c, err == HTTP1_E_VERSION_UNSUPP ? 505 : 400, what, c->parser.error_pos);
        return;
    }
    if (r == 0) {
        if (c->client_eof) /* the rest of this head can never arrive */
            conn_close(c, CONN_END_CLIENT, CONN_PH_REQUEST);
        return;
    }
    conn_dispatch(c, buf);
}

/* Client bytes arrived: what they mean depends on the state. */
static void conn_client_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    switch (c->state) {
    case CONN_ST_HEAD:
        conn_read_head(c);
        break;
    case CONN_ST_FORWARD:
        forward_client_readable(c);
        break;
    case CONN_ST_TUNNEL:
        tunnel_client_readable(c);
        break;
    case CONN_ST_LINGER:
        c->linger_discarded += (uint32_t)evbuffer_get_length(in);
        evbuffer_drain(in, (size_t)-1);
        if (c->linger_discarded > CONN_LINGER_MAX)
            conn_close(c, CONN_END_PROXY, CONN_PH_NONE);
        break;
    case CONN_ST_RESOLVE:
    case CONN_ST_CONNECT:
    case CONN_ST_CLOSED:
        /* Body bytes wait in the input until the upstream is there; the watermark bounds it. */
        break;
    }
}

/* The client's output drained to its low watermark. */
static void conn_client_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    switch (c->state) {
    case CONN_ST_FORWARD:
        forward_client_drained(c);
        break;
    case CONN_ST_TUNNEL:
        tunnel_client_drained(c);
        break;
    case CONN_ST_LINGER:
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
            if (c->client_eof) {
                conn_close(c, CONN_END_NORMAL, CONN_PH_NONE);
                return;
            }
            /* Half-close so the client sees the end, keep reading so unread bytes do not
             * turn our close into a reset that destroys the response in flight. */
            (void)shutdown(bufferevent_getfd(bev), SHUT_WR);
            bufferevent_disable(bev, EV_WRITE);
            bufferevent_set_timeouts(bev, NULL, NULL);
            conn_timer_arm(c, CONN_LINGER_MS);
        }
        break;
    case CONN_ST_HEAD:
    case CONN_ST_RESOLVE:
    case CONN_ST_CONNECT:
    case CONN_ST_CLOSED:
        break;
    }
}

/* The client closed, failed or timed out at the socket level. */
static void conn_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if ((what & BEV_EVENT_TIMEOUT) != 0) {
        /* Only lingering sets a socket timeout: the client stopped reading its response. */
        conn_close(c, CONN_END_CLIENT_T, CONN_PH_DATA);
        return;
    }
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0)
        return;
    switch (c->state) {
    case CONN_ST_HEAD:
        conn_close(c, CONN_END_CLIENT, CONN_PH_REQUEST);
        break;
    case CONN_ST_RESOLVE:
    case CONN_ST_CONNECT:
        if ((what & BEV_EVENT_EOF) != 0 && !c->is_connect && c->req_done) {
            c->client_eof = true; /* a half-close after a complete request is fine */
            return;
        }
        conn_close(c, CONN_END_CLIENT,
                   c->state == CONN_ST_RESOLVE ? CONN_PH_RESOLVE : CONN_PH_CONNECT);
        break;
    case CONN_ST_FORWARD:
        forward_client_event(c, what);
        break;
    case CONN_ST_TUNNEL:
        tunnel_client_event(c, what);
        break;
    case CONN_ST_LINGER:
        c->client_eof = true;
        if ((what & BEV_EVENT_ERROR) != 0 ||
            evbuffer_get_length(bufferevent_get_output(c->client)) == 0)
            conn_close(c, CONN_END_NORMAL, CONN_PH_NONE);
        break;
    case CONN_ST_CLOSED:
        break;
    }
}

/* A deadline passed; inactivity timers re-arm themselves while bytes still move. */
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    uint64_t idle = conn_now_ms(c) - c->activity_ms;

    (void)fd;
    (void)what;
    if ((c->state == CONN_ST_FORWARD || c->state == CONN_ST_TUNNEL) && idle < c->timer_ms) {
        uint32_t left = c->timer_ms - (uint32_t)idle;
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (suseconds_t)(left % 1000) * 1000};
        evtimer_add(c->timer, &tv);
        return;
    }
    switch (c->state) {
    case CONN_ST_HEAD:
        if (!c->exchange_active) {
            conn_close(c, CONN_END_NORMAL, CONN_PH_NONE); /* an idle client, nothing owed */
            return;
        }
        conn_fail(c, 408, "http_request_error", CONN_END_CLIENT_T, CONN_PH_REQUEST,
                  "timed out waiting for the whole request head");
        break;
    case CONN_ST_RESOLVE:
        conn_fail(c, 504, "dns_timeout", CONN_END_SERVER_T, CONN_PH_RESOLVE,
                  "resolving the host name timed out");
        break;
    case CONN_ST_CONNECT:
        conn_fail(c, 504, "connection_timeout", CONN_END_SERVER_T, CONN_PH_CONNECT,
                  "connecting to the upstream timed out");
        break;
    case CONN_ST_FORWARD:
        if (!c->resp_started) {
            conn_fail(c, 504, "http_response_timeout", CONN_END_SERVER_T, CONN_PH_RESPONSE,
                      "the upstream accepted the request but sent no response in time");
            return;
        }
        conn_abort(c, c->upstream_paused ? CONN_END_CLIENT_T : CONN_END_SERVER_T, CONN_PH_DATA);
        break;
    case CONN_ST_TUNNEL:
        conn_close(c, CONN_END_CLIENT_T, CONN_PH_TUNNEL);
        break;
    case CONN_ST_LINGER:
        conn_close(c, CONN_END_NORMAL, CONN_PH_NONE);
        break;
    case CONN_ST_CLOSED:
        break;
    }
}
