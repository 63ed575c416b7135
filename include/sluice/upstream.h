/*
 * The upstream side of a connection: reaching host:port (an idle pooled connection when
 * allowed, else resolve and connect to each address in turn within the connect timeout),
 * and the per-worker pool of idle keep-alive connections, bounded and timed out.
 */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "sluice/conn.h"
#include "sluice/settings.h"

struct upstream_pool;

/*
 * Starts reaching c->host:c->port.  When may_reuse is true an idle pooled connection is
 * taken if there is one.  On success conn_upstream_ready(c) runs with c->upstream
 * connected; on failure c is answered with 502 or 504 through conn_fail().
 */
void upstream_start(struct conn *c, bool may_reuse);

/* Stops a resolution or connect in progress for c and frees what it held. */
void upstream_cancel(struct conn *c);

/* Makes an empty pool bounded by s. */
struct upstream_pool *upstream_pool_new(struct event_base *base, const struct sluice_settings *s);

/* Frees the pool and closes every idle connection in it.  NULL is a no-op. */
void upstream_pool_free(struct upstream_pool *pool);

/* Gives an idle connection to host:port to the pool, which then owns it (or closes it). */
void upstream_pool_put(struct upstream_pool *pool, const char *host, uint16_t port,
                       struct bufferevent *bev);

/* Takes an idle connection to host:port from the pool; the caller owns it.  NULL if none. */
struct bufferevent *upstream_pool_take(struct upstream_pool *pool, const char *host, uint16_t port);

#endif /* SLUICE_UPSTREAM_H */
