/*
 * A worker: one thread, one event_base, its own SO_REUSEPORT listening sockets, resolver,
 * idle-upstream pool and pipes, and the sessions it accepted.  Workers share the immutable
 * settings, the reference-counted policy snapshot, the count of open connections across
 * all of them (for the connection cap) and the count per client address; nothing else.
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "sluice/netguard.h"
#include "sluice/session.h"
#include "sluice/settings.h"

#define WORKER_MAX_LISTENERS 16
/* Pipes for splice(2) one worker may hold; each takes two descriptors. */
#define WORKER_MAX_PIPES 256

struct worker;

/*
 * One listening socket of a worker, the tool its clients are if it is bound to one, and
 * the load balancers whose PROXY protocol header it takes.
 */
struct worker_listener {
    struct worker *w;
    int fd;                                  /* the listening socket; owned, or -1 */
    struct event *ev;                        /* readable: a connection waits; owned */
    const char *tool;                        /* the tool id its clients are, or NULL; not owned */
    const struct netguard_cidrs *proxy_from; /* balancers, or NULL; not owned */
    bool ask_credentials;                    /* answer 407 to a request without credentials */
};

/* One worker thread and everything its loop owns. */
struct worker {
    unsigned id;
    pthread_t thread;
    bool started;                           /* the thread is running and must be joined */
    const struct sluice_settings *settings; /* not owned; outlives the worker */
    struct session_env env;                 /* loop, resolver, pool, pipes, sessions; owned */
    struct worker_listener listeners[WORKER_MAX_LISTENERS]; /* owned, with their sockets */
    size_t nlisteners;
    struct event *wake;           /* activated from the main thread to start a drain */
    struct event *policy_changed; /* activated from the main thread after a reload */
    struct event *log_flush;      /* writes the log lines held, 50 ms after the first */
    struct event *accept_retry;   /* re-enables accepting after EMFILE */
    struct event *drain_timer;    /* ends the drain when it runs out */
    struct event *interim_timer;  /* looks for exchanges that owe an interim record */
    struct event *beat;           /* every second: the loop turns (see worker_last_beat_ms) */
    atomic_uint_fast64_t beat_ms; /* monotonic ms of the loop's last beat */
    atomic_bool drain_requested;  /* set by the main thread */
    atomic_bool stop_requested;   /* set by the main thread: close what is left now */
    atomic_bool finished;         /* set by the worker when its loop has ended */
    uint64_t last_refusal_log_ms; /* rate limit for "connection cap reached" lines */
};

/*
 * Prepares w: its event_base, resolver, pool, pipes and a listener on each of fds[0..nfds)
 * (sockets already bound and listening; w takes them over, even on failure).  cap counts
 * connections per client across the workers (NULL: no per-client cap); not owned.
 * Returns 0, or -1 with *errstr set.
 */
int worker_init(struct worker *w, unsigned id, const struct sluice_settings *s,
                struct clientcap *cap, const int *fds, size_t nfds, const char **errstr);

/* Starts w's thread.  Returns 0 or -1. */
int worker_start(struct worker *w);

/* Asks w to stop accepting and drain; safe from any thread. */
void worker_request_drain(struct worker *w);

/*
 * Asks w to close every connection it still has at once (termination code D), draining
 * first if it was not; safe from any thread.
 */
void worker_request_stop(struct worker *w);

/* True once w's loop has ended (or it never started); safe from any thread. */
bool worker_finished(const struct worker *w);

/*
 * Tells w a new policy was installed, so that its tunnels and exchanges under way are
 * decided again on it; safe from any thread.
 */
void worker_policy_changed(struct worker *w);

/* Waits for w's thread to end, then frees everything w owns.  Safe on a worker never started. */
void worker_finish(struct worker *w);

/* Open client connections across all workers. */
unsigned worker_open_connections(void);

/*
 * How long ago, in ms of the monotonic clock, w's loop last ran its once-a-second beat:
 * a loop stuck in one callback falls behind.  Safe from any thread.
 */
uint64_t worker_beat_age_ms(const struct worker *w);

#endif /* SLUICE_WORKER_H */
