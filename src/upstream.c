/*
 * The upstream side of a connection; see include/sluice/upstream.h.
 */
#include "sluice/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>

#include "sluice/log.h"
#include "sluice/resolve.h"
#include "sluice/worker.h"

/* One idle upstream connection; owned by its pool. */
struct pool_entry {
    TAILQ_ENTRY(pool_entry) link;
    struct upstream_pool *pool;
    struct bufferevent *bev; /* owns the socket */
    struct event *timer;     /* closes the connection when it stayed idle too long */
    uint16_t port;
    char host[256];
};

/* Idle connections of one worker, oldest first. */
struct upstream_pool {
    struct event_base *base;
    const struct sluice_settings *settings;
    TAILQ_HEAD(pool_head, pool_entry) idle;
    size_t count;
};

static void upstream_try_next(struct conn *c);

/* Sets TCP_NODELAY on an upstream socket. */
static void upstream_set_nodelay(struct bufferevent *bev)
{
    int one = 1;

    (void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A connect attempt finished: go on, or try the next address. */
static void upstream_connect_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if ((what & BEV_EVENT_CONNECTED) != 0) {
        upstream_set_nodelay(bev);
        bufferevent_set_max_single_write(bev, CONN_HIGH_WATERMARK);
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        evutil_freeaddrinfo(c->addrs);
        c->addrs = c->addr_next = NULL;
        conn_upstream_ready(c);
        return;
    }
    if ((what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) == 0)
        return;
    c->connect_errno = EVUTIL_SOCKET_ERROR();
    log_info("%s: connect to %s:%u failed: %s", c->client_addr, c->host, c->port,
             evutil_socket_error_to_string(c->connect_errno));
    bufferevent_free(c->upstream);
    c->upstream = NULL;
    upstream_try_next(c);
}

/*
 * Starts a connect to the next resolved address that the address guard lets through;
 * fails the request when none is left: 403 when the guard refused every address, 502 when
 * the allowed ones could not be reached.  The address checked is the address dialled.
 */
static void upstream_try_next(struct conn *c)
{
    char what[200];

    while (c->addr_next != NULL) {
        struct evutil_addrinfo *ai = c->addr_next;
        struct bufferevent *bev;
        struct policy_decision refusal;
        struct policy_dest dest;

        c->addr_next = ai->ai_next;
        if (!policy_check_address(c->policy, c->identity.tool, ai->ai_addr, &dest, &refusal)) {
            log_info("%s: %s:%u: not dialling %s: rule %s", c->client_addr, c->host, c->port,
                     dest.ip, refusal.rule);
            if (!c->guard_denied) {
                c->guard = refusal;
                c->guard_denied = true;
                if (!c->dest_known)
                    c->dest = dest; /* named in the 403 if no address is allowed */
            }
            continue;
        }
        c->dest = dest;
        c->dest_known = true;
        bev = bufferevent_socket_new(c->worker->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL) {
            c->connect_errno = ENOMEM;
            break;
        }
        bufferevent_setcb(bev, NULL, NULL, upstream_connect_event_cb, c);
        if (bufferevent_socket_connect(bev, ai->ai_addr, (int)ai->ai_addrlen) < 0) {
            c->connect_errno = errno;
            bufferevent_free(bev);
            continue;
        }
        c->upstream = bev;
        return;
    }
    if (c->guard_denied && !c->dest_known) {
        c->decision = c->guard;
        c->dest_known = true; /* the access line names the address refused */
        conn_deny(c, CONN_PH_CONNECT, c->dest.ip);
        return;
    }
    snprintf(what, sizeof(what), "could not connect to the upstream: %s",
             evutil_socket_error_to_string(c->connect_errno));
    conn_fail(c, 502,
              c->connect_errno == ECONNREFUSED ? "connection_refused" : "destination_unavailable",
              CONN_END_SERVER, CONN_PH_CONNECT, what);
}

/* Name resolution finished. */
static void upstream_resolved_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
    struct conn *c = arg;
    char what[200];

    c->resolving = NULL;
    if (err != 0 || ai == NULL) {
        snprintf(what, sizeof(what), "the host name could not be resolved: %s",
                 err == EVUTIL_EAI_NONAME ? "no such host" : evutil_gai_strerror(err));
        conn_fail(c, 502, "dns_error", CONN_END_SERVER, CONN_PH_RESOLVE, what);
        return;
    }
    c->addrs = c->addr_next = ai;
    c->connect_errno = ECONNREFUSED;
    conn_set_state(c, CONN_ST_CONNECT);
    upstream_try_next(c);
}

/*
 * True when the address guard of c's policy lets c use the pooled connection bev, whose
 * address was checked under the policy of the connection that dialled it.
 */
static bool upstream_reuse_allowed(struct conn *c, struct bufferevent *bev)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct policy_decision refusal;

    if (getpeername(bufferevent_getfd(bev), (struct sockaddr *)&ss, &len) != 0)
        return false;
    c->dest_known = policy_check_address(c->policy, c->identity.tool, (struct sockaddr *)&ss,
                                         &c->dest, &refusal);
    return c->dest_known;
}

/* Reaches c->host:c->port, from the pool when allowed. */
void upstream_start(struct conn *c, bool may_reuse)
{
    struct worker *w = c->worker;

    if (may_reuse) {
        struct bufferevent *bev = upstream_pool_take(w->pool, c->host, c->port);
        if (bev != NULL && !upstream_reuse_allowed(c, bev)) {
            bufferevent_free(bev); /* the policy changed since it was dialled: dial anew */
            bev = NULL;
        }
        if (bev != NULL) {
            log_debug("%s: reusing an idle connection to %s:%u", c->client_addr, c->host, c->port);
            c->upstream = bev;
            c->upstream_reused = true;
            conn_upstream_ready(c);
            return;
        }
    }
    conn_set_state(c, CONN_ST_RESOLVE);
    conn_timer_arm(c, c->settings->timeout_connect_ms);
    c->resolving = resolve_start(w->base, w->dns, c->host, c->port, upstream_resolved_cb, c);
    if (c->resolving == NULL)
        conn_fail(c, 503, "proxy_internal_error", CONN_END_RESOURCE, CONN_PH_RESOLVE,
                  "out of memory while resolving");
}

/* Stops resolution and connect attempts; the caller frees c->upstream. */
void upstream_cancel(struct conn *c)
{
    resolve_cancel(c->resolving);
    c->resolving = NULL;
    if (c->addrs != NULL)
        evutil_freeaddrinfo(c->addrs);
    c->addrs = c->addr_next = NULL;
}

/* Makes an empty pool. */
struct upstream_pool *upstream_pool_new(struct event_base *base, const struct sluice_settings *s)
{
    struct upstream_pool *pool = calloc(1, sizeof(*pool));

    if (pool == NULL)
        return NULL;
    pool->base = base;
    pool->settings = s;
    TAILQ_INIT(&pool->idle);
    return pool;
}

/* Unlinks an entry and closes its connection. */
static void pool_entry_drop(struct pool_entry *e)
{
    TAILQ_REMOVE(&e->pool->idle, e, link);
    e->pool->count--;
    if (e->bev != NULL)
        bufferevent_free(e->bev);
    event_free(e->timer);
    free(e);
}

/* An idle connection said something or closed: it cannot be reused. */
static void pool_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    log_debug("idle connection got unexpected bytes; closing it");
    pool_entry_drop(arg);
}

/* An idle connection closed or failed. */
static void pool_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    log_debug("idle connection closed (events 0x%x)", (unsigned)what);
    pool_entry_drop(arg);
}

/* An idle connection stayed idle too long. */
static void pool_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pool_entry_drop(arg);
}

/* Frees the pool and everything in it. */
void upstream_pool_free(struct upstream_pool *pool)
{
    if (pool == NULL)
        return;
    while (!TAILQ_EMPTY(&pool->idle))
        pool_entry_drop(TAILQ_FIRST(&pool->idle));
    free(pool);
}

/* Keeps an idle connection, evicting the oldest ones past the bounds. */
void upstream_pool_put(struct upstream_pool *pool, const char *host, uint16_t port,
                       struct bufferevent *bev)
{
    const struct sluice_settings *s = pool->settings;
    struct pool_entry *e, *it, *oldest_same = NULL;
    size_t same = 0;
    struct timeval tv = {.tv_sec = s->upstream_idle_ms / 1000,
                         .tv_usec = (suseconds_t)(s->upstream_idle_ms % 1000) * 1000};

    if (s->upstream_idle_max == 0 || strlen(host) >= sizeof(e->host)) {
        bufferevent_free(bev);
        return;
    }
    TAILQ_FOREACH(it, &pool->idle, link)
    {
        if (it->port == port && strcmp(it->host, host) == 0) {
            if (oldest_same == NULL)
                oldest_same = it;
            same++;
        }
    }
    if (same >= s->upstream_idle_per_host && oldest_same != NULL)
        pool_entry_drop(oldest_same);
    if (pool->count >= s->upstream_idle_max)
        pool_entry_drop(TAILQ_FIRST(&pool->idle));

    e = calloc(1, sizeof(*e));
    if (e == NULL || (e->timer = evtimer_new(pool->base, pool_timer_cb, e)) == NULL) {
        free(e);
        bufferevent_free(bev);
        return;
    }
    e->pool = pool;
    e->bev = bev;
    e->port = port;
    snprintf(e->host, sizeof(e->host), "%s", host);
    bufferevent_setcb(bev, pool_read_cb, NULL, pool_event_cb, e);
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_enable(bev, EV_READ);
    evtimer_add(e->timer, &tv);
    TAILQ_INSERT_TAIL(&pool->idle, e, link);
    pool->count++;
}

/* Takes the most recently idle connection to host:port. */
struct bufferevent *upstream_pool_take(struct upstream_pool *pool, const char *host, uint16_t port)
{
    struct pool_entry *e;

    TAILQ_FOREACH_REVERSE(e, &pool->idle, pool_head, link)
    {
        if (e->port == port && strcmp(e->host, host) == 0) {
            struct bufferevent *bev = e->bev;
            e->bev = NULL;
            bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
            pool_entry_drop(e);
            return bev;
        }
    }
    return NULL;
}
