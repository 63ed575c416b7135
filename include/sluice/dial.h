/*
 * Reaching an upstream: resolve the name (exactly as policy saw it), check each address
 * with the address guard, and connect to the first one allowed, then the next while they
 * fail.  The address checked is the address dialled: there is no second lookup.  Each
 * step returns an outcome to the session, which owns the callbacks that drive it.
 */
#ifndef SLUICE_DIAL_H
#define SLUICE_DIAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "sluice/netguard.h"
#include "sluice/outcome.h"
#include "sluice/policy.h"
#include "sluice/resolve.h"

/* One attempt to reach host:port; the session holds it (on the heap, while it lasts) and
 * owns everything in it. */
struct dial {
    struct resolve_query *query;    /* resolution in flight, or NULL */
    struct evutil_addrinfo *addrs;  /* the resolved addresses, or NULL */
    struct evutil_addrinfo *next;   /* the next address to try, inside addrs */
    int fd;                         /* the socket connecting or connected, or -1 */
    struct event *ev;               /* readiness of fd while it connects: writable alone
                                       when connected, readable too otherwise; or NULL */
    int connect_errno;              /* why the last connect failed */
    bool refused;                   /* the guard refused at least one address */
    struct policy_decision refusal; /* the guard's first refusal */
    struct policy_dest dest;        /* the address dialled (or, if none was, refused) */
    union netguard_sockaddr peer;   /* the address dialled, as a socket address */
    bool dest_known;                /* dest is set */
};

/* What the steps need from the session; nothing in it is owned. */
struct dial_ctx {
    struct event_base *base;
    const struct policy_snapshot *policy; /* the guard's rules */
    const struct policy_tool *tool;       /* the identified tool, or NULL */
    const char *client;                   /* "ip:port" of the client, for the log */
    const char *host;                     /* normalised host, as resolved */
    uint16_t port;
    event_callback_fn connect_cb; /* run when the socket is ready: call dial_connected */
    void *arg;
};

/* Makes d empty (no socket, nothing resolved). */
void dial_init(struct dial *d);

/*
 * Starts resolving ctx->host; cb(err, ai, arg) runs later with the answer, which the
 * session hands to dial_resolved().  Returns 0, or -1 when out of memory.
 */
int dial_resolve(struct dial *d, const struct dial_ctx *ctx, struct evdns_base *dns,
                 resolve_done_cb cb);

/*
 * Takes the answer of the resolution (ai is handed over) and starts connecting to the
 * first address the guard allows.  MORE while connecting; DENIED when the guard refused
 * every address (d->refusal says why); FAIL (502) when the name did not resolve or no
 * allowed address could be connected to.
 */
struct outcome dial_resolved(struct dial *d, const struct dial_ctx *ctx, int err,
                             struct evutil_addrinfo *ai);

/*
 * The socket became ready (what: the readiness libevent reported): CONNECTED when the
 * connect succeeded (take the socket with
 * dial_take_fd()), else MORE while the next address is tried, DENIED or FAIL as above.
 */
struct outcome dial_connected(struct dial *d, const struct dial_ctx *ctx, short what);

/* Hands the connected socket over (the caller then owns it); -1 when there is none. */
int dial_take_fd(struct dial *d);

/* Stops resolving and connecting and frees what d holds; safe to call twice. */
void dial_cancel(struct dial *d);

#endif /* SLUICE_DIAL_H */
