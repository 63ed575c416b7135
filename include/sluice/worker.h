/*
 * A worker: one thread, one event_base, its own SO_REUSEPORT listening sockets, its own
 * DNS resolver and idle-upstream pool, and the connections it accepted.  Workers share
 * nothing but the immutable settings and the global connection count.
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "sluice/conn.h"
#include "sluice/settings.h"

#define WORKER_MAX_LISTENERS 16

struct upstream_pool;

/* One worker thread and everything its loop owns. */
struct worker {
    unsigned id;
    pthread_t thread;
    bool started;                           /* the thread is running and must be joined */
    const struct sluice_settings *settings; /* not owned; outlives the worker */
    struct event_base *base;                /* owned */
    struct evdns_base *dns;                 /* owned */
    struct upstream_pool *pool;             /* idle upstream connections; owned */
    struct evconnlistener *listeners[WORKER_MAX_LISTENERS]; /* owned, with their sockets */
    size_t nlisteners;
    const char *listener_tools[WORKER_MAX_LISTENERS]; /* tool each listener is bound to */
    struct event *wake;         /* activated from the main thread to start a drain */
    struct event *accept_retry; /* re-enables accepting after EMFILE */
    struct event *drain_timer;  /* ends the drain when it runs out */
    TAILQ_HEAD(, conn) conns;   /* every open connection of this worker */
    TAILQ_HEAD(, conn) dead;    /* closed connections waiting to be freed */
    struct event *reap;         /* frees the dead list after the current callback */
    size_t nconns;
    atomic_bool drain_requested;  /* set by the main thread */
    bool draining;                /* the loop has started draining */
    uint64_t last_refusal_log_ms; /* rate limit for "connection cap reached" lines */
};

/*
 * Prepares w: its event_base, resolver, pool and a listener on each of fds[0..nfds)
 * (sockets already bound and listening; w takes them over, even on failure).
 * Returns 0, or -1 with *errstr set.
 */
int worker_init(struct worker *w, unsigned id, const struct sluice_settings *s, const int *fds,
                size_t nfds, const char **errstr);

/* Starts w's thread.  Returns 0 or -1. */
int worker_start(struct worker *w);

/* Asks w to stop accepting and drain; safe from any thread. */
void worker_request_drain(struct worker *w);

/* Waits for w's thread to end, then frees everything w owns.  Safe on a worker never started. */
void worker_finish(struct worker *w);

/*
 * Called by conn_close(): moves c from the open list to the dead list, freed once the
 * current callback has returned; ends the loop when a drain is done.
 */
void worker_conn_closed(struct worker *w, struct conn *c);

/* Open client connections across all workers. */
unsigned worker_open_connections(void);

/* True when w is draining: finished exchanges close their connection. */
bool worker_is_draining(const struct worker *w);

#endif /* SLUICE_WORKER_H */
