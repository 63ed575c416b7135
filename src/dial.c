/* Reaching an upstream; see include/sluice/dial.h. */
#include "sluice/dial.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/log.h"

/* Makes d empty. */
void dial_init(struct dial *d)
{
    memset(d, 0, sizeof(*d));
    d->fd = -1;
}

/* Closes the socket being dialled and its event. */
static void dial_drop_socket(struct dial *d)
{
    if (d->ev != NULL) {
        event_free(d->ev);
        d->ev = NULL;
    }
    if (d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
}

/* Stops everything and frees what d holds. */
void dial_cancel(struct dial *d)
{
    resolve_cancel(d->query);
    d->query = NULL;
    if (d->addrs != NULL)
        evutil_freeaddrinfo(d->addrs);
    d->addrs = d->next = NULL;
    dial_drop_socket(d);
}

/* Starts resolving. */
int dial_resolve(struct dial *d, const struct dial_ctx *ctx, struct evdns_base *dns,
                 resolve_done_cb cb)
{
    d->query = resolve_start(ctx->base, dns, ctx->host, ctx->port, cb, ctx->arg);
    return d->query != NULL ? 0 : -1;
}

/*
 * Opens a non-blocking socket to ai and starts connecting; true while the connect is
 * under way (d->fd and d->ev set), false with d->connect_errno when it failed at once.
 */
static bool dial_open(struct dial *d, const struct dial_ctx *ctx, const struct evutil_addrinfo *ai)
{
    int one = 1;

    memset(&d->peer, 0, sizeof(d->peer));
    memcpy(&d->peer, ai->ai_addr,
           ai->ai_addrlen < sizeof(d->peer) ? ai->ai_addrlen : sizeof(d->peer));
    d->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (d->fd < 0) {
        d->connect_errno = errno;
        return false;
    }
    /* Heads and small bodies must not wait for Nagle; set before connect, one call. */
    (void)setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(d->fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        d->connect_errno = errno;
        dial_drop_socket(d);
        return false;
    }
    /* Read readiness too: a failed connect is reported as both, a good one as writable
     * alone, which saves asking SO_ERROR (see dial_connected). */
    d->ev = event_new(ctx->base, d->fd, EV_READ | EV_WRITE, ctx->connect_cb, ctx->arg);
    if (d->ev == NULL || event_add(d->ev, NULL) < 0) {
        d->connect_errno = ENOMEM;
        dial_drop_socket(d);
        return false;
    }
    return true;
}

/*
 * Dials the next address the guard allows.  MORE while one connects; DENIED when the
 * guard refused every address; FAIL when none could be connected to.
 */
static struct outcome dial_next(struct dial *d, const struct dial_ctx *ctx)
{
    while (d->next != NULL) {
        struct evutil_addrinfo *ai = d->next;
        struct policy_decision refusal;
        struct policy_dest dest;

        d->next = ai->ai_next;
        if (!policy_check_address(ctx->policy, ctx->tool, ai->ai_addr, &dest, &refusal)) {
            log_info("%s: %s:%u: not dialling %s: rule %s", ctx->client, ctx->host, ctx->port,
                     dest.ip, refusal.rule);
            if (!d->refused) {
                d->refusal = refusal;
                d->refused = true;
                if (!d->dest_known)
                    d->dest = dest; /* named in the 403 if no address is allowed */
            }
            continue;
        }
        d->dest = dest;
        d->dest_known = true;
        if (dial_open(d, ctx, ai))
            return outcome_of(OUTCOME_MORE);
        log_info("%s: connect to %s:%u (%s) failed: %s", ctx->client, ctx->host, ctx->port, dest.ip,
                 strerror(d->connect_errno));
    }
    if (d->refused && !d->dest_known) {
        d->dest_known = true; /* the access line names the address refused */
        return outcome_of(OUTCOME_DENIED);
    }
    return outcome_fail(
        502, d->connect_errno == ECONNREFUSED ? "connection_refused" : "destination_unavailable",
        TERM_SERVER, TERM_PH_CONNECT, "could not connect to the upstream: %s",
        strerror(d->connect_errno));
}

/* The resolution answered. */
struct outcome dial_resolved(struct dial *d, const struct dial_ctx *ctx, int err,
                             struct evutil_addrinfo *ai)
{
    d->query = NULL;
    if (err != 0 || ai == NULL) {
        if (ai != NULL)
            evutil_freeaddrinfo(ai);
        return outcome_fail(502, "dns_error", TERM_SERVER, TERM_PH_RESOLVE,
                            "the host name could not be resolved: %s",
                            err == EVUTIL_EAI_NONAME ? "no such host" : evutil_gai_strerror(err));
    }
    d->addrs = d->next = ai;
    d->connect_errno = ECONNREFUSED;
    return dial_next(d, ctx);
}

/* The connecting socket became ready: writable alone when connected, else read too. */
struct outcome dial_connected(struct dial *d, const struct dial_ctx *ctx, short what)
{
    int err = 0;
    socklen_t len = sizeof(err);

    /* Writable and not readable is a connected socket; anything else (an error, or an
     * upstream that speaks first) is told apart by SO_ERROR. */
    if (what != EV_WRITE && getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        event_free(d->ev);
        d->ev = NULL;
        evutil_freeaddrinfo(d->addrs);
        d->addrs = d->next = NULL;
        return outcome_of(OUTCOME_CONNECTED);
    }
    d->connect_errno = err;
    log_info("%s: connect to %s:%u (%s) failed: %s", ctx->client, ctx->host, ctx->port, d->dest.ip,
             strerror(err));
    dial_drop_socket(d);
    return dial_next(d, ctx);
}

/* Hands the connected socket over. */
int dial_take_fd(struct dial *d)
{
    int fd = d->fd;

    d->fd = -1;
    return fd;
}
