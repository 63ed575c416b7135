/* Idle upstream connections of one worker; see include/sluice/pool.h. */
#include "sluice/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "sluice/log.h"

/* One idle connection; owned by its pool. */
struct pool_entry {
    TAILQ_ENTRY(pool_entry) link;
    struct pool *pool;
    struct sock *so;              /* the connection */
    union netguard_sockaddr peer; /* the address it was dialled to */
    struct event *timer;          /* closes the connection when it stayed idle too long; it
                                     lives in the same allocation, after the entry */
    uint16_t port;
    char host[256];
    char owner[POOL_OWNER_MAX];
};

/* Idle connections, oldest first. */
struct pool {
    struct event_base *base;
    uint32_t max, per_host;
    struct timeval idle;
    TAILQ_HEAD(pool_head, pool_entry) idle_list;
    size_t count;
};

/* Makes an empty pool. */
struct pool *pool_new(struct event_base *base, uint32_t max, uint32_t per_host, uint32_t idle_ms)
{
    struct pool *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->base = base;
    p->max = max;
    p->per_host = per_host;
    p->idle.tv_sec = idle_ms / 1000;
    p->idle.tv_usec = (suseconds_t)(idle_ms % 1000) * 1000;
    TAILQ_INIT(&p->idle_list);
    return p;
}

/* Unlinks an entry and closes its connection. */
static void pool_drop(struct pool_entry *e)
{
    TAILQ_REMOVE(&e->pool->idle_list, e, link);
    e->pool->count--;
    sock_free(e->so);
    event_del(e->timer);
    free(e);
}

/* An idle connection said something, closed or failed: it cannot be reused. */
static void pool_sock_cb(struct sock *so, short what, void *arg)
{
    (void)so;
    log_debug("idle upstream connection %s; closing it",
              (what & SOCK_EV_READ) != 0 ? "sent unexpected bytes" : "closed");
    pool_drop(arg);
}

/* An idle connection stayed idle too long. */
static void pool_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pool_drop(arg);
}

/* Frees the pool and everything in it. */
void pool_free(struct pool *p)
{
    if (p == NULL)
        return;
    while (!TAILQ_EMPTY(&p->idle_list))
        pool_drop(TAILQ_FIRST(&p->idle_list));
    free(p);
}

/* True when e is filed under host:port and owner. */
static bool pool_matches(const struct pool_entry *e, const char *host, uint16_t port,
                         const char *owner)
{
    return e->port == port && strcmp(e->host, host) == 0 && strcmp(e->owner, owner) == 0;
}

/* Keeps an idle connection, evicting the oldest ones past the bounds. */
void pool_put(struct pool *p, const char *host, uint16_t port, const char *owner, struct sock *so,
              const union netguard_sockaddr *peer)
{
    struct pool_entry *e, *it, *oldest_same = NULL;
    size_t same = 0;

    if (p->max == 0 || strlen(host) >= sizeof(e->host) || strlen(owner) >= sizeof(e->owner)) {
        sock_free(so);
        return;
    }
    TAILQ_FOREACH(it, &p->idle_list, link)
    {
        if (it->port == port && strcmp(it->host, host) == 0) {
            if (oldest_same == NULL)
                oldest_same = it;
            same++;
        }
    }
    if (same >= p->per_host && oldest_same != NULL)
        pool_drop(oldest_same);
    if (p->count >= p->max)
        pool_drop(TAILQ_FIRST(&p->idle_list));

    /* One allocation per idle connection, its timer included (event_assign on room the
     * size libevent says a struct event takes). */
    e = calloc(1, sizeof(*e) + event_get_struct_event_size());
    if (e == NULL) {
        sock_free(so);
        return;
    }
    e->timer = (struct event *)(void *)(e + 1);
    evtimer_assign(e->timer, p->base, pool_timer_cb, e);
    e->pool = p;
    e->so = so;
    e->peer = *peer;
    e->port = port;
    snprintf(e->host, sizeof(e->host), "%s", host);
    snprintf(e->owner, sizeof(e->owner), "%s", owner);
    sock_setcb(so, pool_sock_cb, e);
    sock_set_read_limit(so, 0);
    sock_set_reading(so, true); /* to see the origin close it */
    evtimer_add(e->timer, &p->idle);
    TAILQ_INSERT_TAIL(&p->idle_list, e, link);
    p->count++;
}

/* Takes the most recently idle connection filed under host:port and owner. */
struct sock *pool_take(struct pool *p, const char *host, uint16_t port, const char *owner,
                       union netguard_sockaddr *peer)
{
    struct pool_entry *e;

    TAILQ_FOREACH_REVERSE(e, &p->idle_list, pool_head, link)
    {
        if (pool_matches(e, host, port, owner)) {
            struct sock *so = e->so;
            e->so = NULL;
            *peer = e->peer;
            sock_setcb(so, NULL, NULL);
            pool_drop(e);
            return so;
        }
    }
    return NULL;
}
