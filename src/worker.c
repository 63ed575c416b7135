/*
 * Workers; see include/sluice/worker.h.  Accepting, the connection cap, pausing on EMFILE,
 * reaping closed sessions, the drain on shutdown and passing a reload on to the sessions
 * all happen here.
 */
#include "sluice/worker.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "sluice/auditlog.h"
#include "sluice/clientcap.h"
#include "sluice/log.h"
#include "sluice/netguard.h"
#include "sluice/pipes.h"
#include "sluice/pool.h"
#include "sluice/proclookup.h"
#include "sluice/resolve.h"

/* How long accepting pauses when the process is out of descriptors. */
#define WORKER_ACCEPT_PAUSE_MS 250
/* The longest a worker holds its log lines before writing them (see worker_log_wake()). */
#define WORKER_LOG_HOLD_MS 50

static atomic_uint worker_open_conns;

static void worker_log_flush_cb(evutil_socket_t fd, short what, void *arg);

/* Open client connections across all workers. */
unsigned worker_open_connections(void)
{
    return atomic_load(&worker_open_conns);
}

/* Coarse monotonic milliseconds, for rate limits. */
static uint64_t worker_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * True at most once a second: a flood of refusals or accept failures logs one line a
 * second, and formats nothing for the others.
 */
static bool worker_refusal_log_due(struct worker *w)
{
    uint64_t now = worker_now_ms();

    if (now - w->last_refusal_log_ms < 1000)
        return false;
    w->last_refusal_log_ms = now;
    return true;
}

/*
 * Refuses a connection over a cap with a short 503 written without blocking; body says
 * which cap.  The caller logs first (whoever reads the 503 can find why in the log).
 */
static void worker_refuse(evutil_socket_t fd, const char *body)
{
    char msg[512];
    int len;

    len = snprintf(msg, sizeof(msg),
                   "HTTP/1.1 503 Service Unavailable\r\n"
                   "Server: sluice\r\n"
                   "Proxy-Status: sluice; error=connection_limit_reached\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\n"
                   "Retry-After: 1\r\n"
                   "Connection: close\r\n"
                   "\r\n%s",
                   strlen(body), body);
    if (len > 0)
        (void)send(fd, msg, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
    evutil_closesocket(fd);
}

static void worker_accept_failed(struct worker *w, int err);

/* Takes a client connection from listener l; see worker_listen_cb(). */
static void worker_accept(struct worker *w, const struct worker_listener *l, evutil_socket_t fd,
                          const struct sockaddr *sa)
{
    char addr[NETGUARD_ADDRSTRLEN] = "?";
    struct netguard_addr a;
    /* A trusted balancer's connection names its client in a header: that one is counted. */
    bool proxy_header = l->proxy_from != NULL && netguard_from_sockaddr(sa, &a) &&
                        netguard_cidrs_match(l->proxy_from, &a);
    bool counted = w->env.clientcap != NULL && !proxy_header;

    if (atomic_fetch_add(&worker_open_conns, 1) >= w->settings->max_connections) {
        atomic_fetch_sub(&worker_open_conns, 1);
        if (worker_refusal_log_due(w))
            log_warn("connection cap of %u reached: refusing new clients with 503 (raise "
                     "--max-connections if this load is expected)",
                     w->settings->max_connections);
        worker_refuse(fd, "sluice: too many open connections; try again in a moment\n");
        return;
    }
    if (counted && !clientcap_take(w->env.clientcap, sa)) {
        atomic_fetch_sub(&worker_open_conns, 1);
        if (worker_refusal_log_due(w)) {
            if (netguard_from_sockaddr(sa, &a))
                netguard_format(&a, addr, sizeof(addr));
            log_warn("client %s holds %u connections, the most one client may: refusing more "
                     "with 503 (raise --max-connections-per-client if it is a gateway in front "
                     "of others)",
                     addr, w->settings->max_conns_per_client);
        }
        worker_refuse(fd, "sluice: this client holds as many connections as one client may; "
                          "close some, or try again in a moment\n");
        return;
    }
    if (session_new(&w->env, fd, sa,
                    &(struct session_arrival){.listener_tool = l->tool,
                                              .ask_credentials = l->ask_credentials,
                                              .cap_held = counted,
                                              .proxy_header = proxy_header}) == NULL) {
        atomic_fetch_sub(&worker_open_conns, 1);
        if (counted)
            clientcap_release(w->env.clientcap, sa);
        log_warn("cannot set up a new connection: out of memory");
    }
}

/*
 * A listening socket is readable: accepts one connection.  One per readiness, not until
 * EAGAIN: the event is level-triggered, so a backlog is taken over the next loop rounds,
 * and a lone connection costs one accept4() rather than two.
 */
static void worker_listen_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker_listener *l = arg;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int cfd;

    (void)what;
    cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd >= 0)
        worker_accept(l->w, l, cfd, (const struct sockaddr *)&ss);
    else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        worker_accept_failed(l->w, errno);
}

/* Turns accepting on or off on every listener of w. */
static void worker_set_accepting(struct worker *w, bool on)
{
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].ev != NULL) {
            if (on)
                event_add(w->listeners[i].ev, NULL);
            else
                event_del(w->listeners[i].ev);
        }
}

/* Closes w's listening sockets: a draining worker takes no new client. */
static void worker_close_listeners(struct worker *w)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        struct worker_listener *l = &w->listeners[i];
        if (l->ev != NULL)
            event_free(l->ev);
        l->ev = NULL;
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
    }
}

/* accept() failed: out of descriptors pauses accepting instead of spinning on the error. */
static void worker_accept_failed(struct worker *w, int err)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = WORKER_ACCEPT_PAUSE_MS * 1000};

    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        log_warn("accept failed: %s", evutil_socket_error_to_string(err));
        return;
    }
    worker_set_accepting(w, false);
    evtimer_add(w->accept_retry, &tv);
    if (worker_refusal_log_due(w))
        log_warn("accept paused for %d ms: %s (raise the open-file limit, ulimit -n)",
                 WORKER_ACCEPT_PAUSE_MS, evutil_socket_error_to_string(err));
}

/* The pause after EMFILE is over. */
static void worker_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    if (!w->env.draining)
        worker_set_accepting(w, true);
}

/* Once a second: the loop turns, which /healthz reads (worker_beat_age_ms). */
static void worker_beat_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    atomic_store(&w->beat_ms, worker_now_ms());
}

/* How long ago the loop last beat; see the header. */
uint64_t worker_beat_age_ms(const struct worker *w)
{
    uint64_t now = worker_now_ms(), beat = atomic_load(&w->beat_ms);

    return now > beat ? now - beat : 0;
}

/* Frees the sessions closed during the previous callbacks; ends a finished drain. */
static void worker_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct session *s;

    (void)fd;
    (void)what;
    while ((s = TAILQ_FIRST(&w->env.dead)) != NULL) {
        TAILQ_REMOVE(&w->env.dead, s, entry);
        session_free(s);
    }
    if (w->env.draining && w->env.nlive == 0)
        event_base_loopexit(w->env.base, NULL);
}

/* Closes every connection still open (termination code D), and ends the loop. */
static void worker_cut_off(struct worker *w, const char *why)
{
    struct session *s;

    if (w->env.nlive > 0)
        log_notice("worker %u: %s, closing %zu connection%s", w->id, why, w->env.nlive,
                   w->env.nlive == 1 ? "" : "s");
    while ((s = TAILQ_FIRST(&w->env.live)) != NULL)
        session_close(s, TERM_DRAIN, TERM_PH_NONE);
    event_base_loopexit(w->env.base, NULL);
}

/* The drain ran out of time: whatever is still open is cut off. */
static void worker_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_cut_off(arg, "drain timeout");
}

/* The main thread asked for a drain: stop accepting, close idle clients, wait for the rest. */
static void worker_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct session *s, *next;
    struct timeval tv = {.tv_sec = w->settings->drain_ms / 1000,
                         .tv_usec = (suseconds_t)(w->settings->drain_ms % 1000) * 1000};

    (void)fd;
    (void)what;
    if (w->env.draining && atomic_load(&w->stop_requested)) {
        worker_cut_off(w, "stopping at once");
        return;
    }
    if (!atomic_load(&w->drain_requested) || w->env.draining)
        return;
    w->env.draining = true;
    worker_close_listeners(w);
    evtimer_del(w->accept_retry);
    for (s = TAILQ_FIRST(&w->env.live); s != NULL; s = next) {
        next = TAILQ_NEXT(s, entry);
        session_drain(s);
    }
    if (w->env.nlive == 0) {
        event_base_loopexit(w->env.base, NULL);
        return;
    }
    if (atomic_load(&w->stop_requested)) {
        worker_cut_off(w, "stopping at once");
        return;
    }
    evtimer_add(w->drain_timer, &tv);
}

/* A reload installed a new policy: every exchange under way is decided again on it. */
static void worker_policy_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct session *s, *next;

    (void)fd;
    (void)what;
    for (s = TAILQ_FIRST(&w->env.live); s != NULL; s = next) {
        next = TAILQ_NEXT(s, entry);
        session_policy_changed(s);
    }
}

/* Exchanges that have lasted settings->audit_interim_ms since their last record make one. */
static void worker_interim_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct session *s;

    (void)fd;
    (void)what;
    if (!auditlog_enabled())
        return;
    TAILQ_FOREACH(s, &w->env.live, entry)
    session_interim(s, w->settings->audit_interim_ms);
}

/*
 * Makes an epoll loop that batches interest changes until the next wait: an event removed
 * and added again within one loop round (a relay paused and resumed, a read event a
 * tunnel takes over) then costs no system call at all.
 */
static struct event_base *worker_base_new(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (cfg == NULL)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

/* Sets up w's loop, resolver, pool and listeners. */
int worker_init(struct worker *w, unsigned id, const struct sluice_settings *s,
                struct clientcap *cap, const int *fds, size_t nfds, const char **errstr)
{
    size_t i = 0;

    struct session_env *env = &w->env;

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->settings = s;
    env->settings = s;
    env->clientcap = cap;
    env->open_total = &worker_open_conns;
    TAILQ_INIT(&env->live);
    TAILQ_INIT(&env->dead);
    atomic_init(&w->drain_requested, false);
    atomic_init(&w->stop_requested, false);
    atomic_init(&w->finished, false);
    env->base = worker_base_new();
    if (env->base == NULL) {
        *errstr = "cannot create an event loop";
        goto fail;
    }
    env->dns = resolve_base_new(env->base, s->resolv_conf, s->hosts_file, errstr);
    if (env->dns == NULL)
        goto fail;
    env->pool =
        pool_new(env->base, s->upstream_idle_max, s->upstream_idle_per_host, s->upstream_idle_ms);
    env->pipes = pipes_new(WORKER_MAX_PIPES);
    /* Finding a client's process reads /proc: a thread of the worker's own does it. */
    env->lookups = proclookup_new(env->base);
    env->reap = event_new(env->base, -1, 0, worker_reap_cb, w);
    w->wake = event_new(env->base, -1, 0, worker_wake_cb, w);
    w->policy_changed = event_new(env->base, -1, 0, worker_policy_cb, w);
    w->log_flush = evtimer_new(env->base, worker_log_flush_cb, w);
    w->accept_retry = evtimer_new(env->base, worker_accept_retry_cb, w);
    w->drain_timer = evtimer_new(env->base, worker_drain_timeout_cb, w);
    if (s->audit_interim_ms > 0) {
        /* A sixteenth of the interval, within [250 ms, 10 s]: records come at most that late. */
        uint32_t tick = s->audit_interim_ms / 16;
        struct timeval tv;

        tick = tick < 250 ? 250 : tick > 10000 ? 10000 : tick;
        tv.tv_sec = tick / 1000;
        tv.tv_usec = (suseconds_t)(tick % 1000) * 1000;
        w->interim_timer = event_new(env->base, -1, EV_PERSIST, worker_interim_cb, w);
        if (w->interim_timer == NULL || evtimer_add(w->interim_timer, &tv) < 0) {
            *errstr = "out of memory";
            goto fail;
        }
    }
    w->beat = event_new(env->base, -1, EV_PERSIST, worker_beat_cb, w);
    atomic_init(&w->beat_ms, worker_now_ms());
    if (w->beat == NULL || event_add(w->beat, &(struct timeval){.tv_sec = 1}) < 0) {
        *errstr = "out of memory";
        goto fail;
    }
    if (env->pool == NULL || env->pipes == NULL || env->lookups == NULL || env->reap == NULL ||
        w->wake == NULL || w->policy_changed == NULL || w->log_flush == NULL ||
        w->accept_retry == NULL || w->drain_timer == NULL) {
        *errstr = "out of memory";
        goto fail;
    }
    for (i = 0; i < nfds && i < WORKER_MAX_LISTENERS; i++) {
        struct worker_listener *l = &w->listeners[i];
        l->w = w;
        l->fd = fds[i];
        w->nlisteners = i + 1;
        l->ev = event_new(env->base, l->fd, EV_READ | EV_PERSIST, worker_listen_cb, l);
        if (l->ev == NULL || event_add(l->ev, NULL) < 0) {
            *errstr = "cannot set up a listener";
            i++;
            goto fail;
        }
    }
    return 0;

fail:
    /* The sockets not yet handed to a listener are ours to close. */
    for (; i < nfds; i++)
        evutil_closesocket(fds[i]);
    return -1;
}

/*
 * The first line of a batch is held: write the batch WORKER_LOG_HOLD_MS later (as nginx's
 * access_log flush= does), so a busy worker writes its lines a few times a second, not
 * once per loop round.  Warnings and errors, and the lines before them, go out at once.
 */
static void worker_log_wake(void *arg)
{
    struct worker *w = arg;
    const struct timeval hold = {.tv_sec = 0, .tv_usec = WORKER_LOG_HOLD_MS * 1000};

    evtimer_add(w->log_flush, &hold);
}

/* Writes the lines held. */
static void worker_log_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_flush();
}

/* The thread body: run the loop until the drain ends it, its log lines written in batches. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;

    (void)log_buffer_start(worker_log_wake, w);
    event_base_loop(w->env.base, EVLOOP_NO_EXIT_ON_EMPTY);
    log_buffer_stop();
    atomic_store(&w->finished, true);
    return NULL;
}

/* Starts w's thread with every signal blocked: the main thread handles them. */
int worker_start(struct worker *w)
{
    sigset_t all, old;
    int r;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        return -1;
    w->started = true;
    return 0;
}

/* Asks w to drain; event_active() is safe across threads once evthread is set up. */
void worker_request_drain(struct worker *w)
{
    atomic_store(&w->drain_requested, true);
    if (w->wake != NULL)
        event_active(w->wake, 0, 0);
}

/* Asks w to close what is left at once; see the header. */
void worker_request_stop(struct worker *w)
{
    atomic_store(&w->stop_requested, true);
    worker_request_drain(w);
}

/* True once w's loop has ended. */
bool worker_finished(const struct worker *w)
{
    return !w->started || atomic_load(&w->finished);
}

/* Passes a reload on; event_active() is safe across threads once evthread is set up. */
void worker_policy_changed(struct worker *w)
{
    if (w->started && w->policy_changed != NULL)
        event_active(w->policy_changed, 0, 0);
}

/* Joins w's thread and frees everything it owns. */
void worker_finish(struct worker *w)
{
    struct session_env *env = &w->env;
    struct session *s;

    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
    while (env->base != NULL && (s = TAILQ_FIRST(&env->live)) != NULL)
        session_close(s, TERM_DRAIN, TERM_PH_NONE);
    while (env->base != NULL && (s = TAILQ_FIRST(&env->dead)) != NULL) {
        TAILQ_REMOVE(&env->dead, s, entry);
        session_free(s);
    }
    worker_close_listeners(w);
    proclookup_free(env->lookups); /* the sessions are gone: their lookups are freed unread */
    pool_free(env->pool);
    pipes_free(env->pipes);
    if (env->dns != NULL)
        evdns_base_free(env->dns, 1);
    if (w->wake != NULL)
        event_free(w->wake);
    if (w->policy_changed != NULL)
        event_free(w->policy_changed);
    if (w->log_flush != NULL)
        event_free(w->log_flush);
    if (env->reap != NULL)
        event_free(env->reap);
    if (w->accept_retry != NULL)
        event_free(w->accept_retry);
    if (w->drain_timer != NULL)
        event_free(w->drain_timer);
    if (w->interim_timer != NULL)
        event_free(w->interim_timer);
    if (w->beat != NULL)
        event_free(w->beat);
    if (env->base != NULL)
        event_base_free(env->base);
    memset(w, 0, sizeof(*w));
}
