/*
 * A worker's idle keep-alive upstream connections, bounded in number (in all and per
 * destination) and in idle time.  A connection is filed under its destination and the
 * identity that used it (tool and user): it is handed back only to a request to the same
 * destination from the same identity, so an origin's per-connection state never crosses
 * from one tool or user to another.
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "sluice/netguard.h"
#include "sluice/sock.h"

/* Room for an owner key: a tool id, a newline and a user name. */
#define POOL_OWNER_MAX 200

struct pool;

/*
 * Makes an empty pool for base keeping at most max connections, per_host of them to one
 * host:port, each for idle_ms.  NULL when out of memory.
 */
struct pool *pool_new(struct event_base *base, uint32_t max, uint32_t per_host, uint32_t idle_ms);

/* Closes every idle connection and frees the pool.  NULL is a no-op. */
void pool_free(struct pool *p);

/*
 * Keeps so, an idle connection to host:port (the address peer, as dialled) used by owner
 * (an identity key), for reuse; the pool owns so from now on (it closes it when the bounds
 * say so, when the origin closes it or sends anything, or on failure).
 */
void pool_put(struct pool *p, const char *host, uint16_t port, const char *owner, struct sock *so,
              const union netguard_sockaddr *peer);

/*
 * Takes the most recently idle connection to host:port used by owner, with the address it
 * was dialled to in *peer; the caller owns it (its callback cleared, still reading).  NULL
 * when there is none.
 */
struct sock *pool_take(struct pool *p, const char *host, uint16_t port, const char *owner,
                       union netguard_sockaddr *peer);

#endif /* SLUICE_POOL_H */
