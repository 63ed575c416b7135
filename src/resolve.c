/*
 * Asynchronous name resolution; see include/sluice/resolve.h.
 *
 * evdns_getaddrinfo() may answer before it returns (IP literals, hosts-file names) and,
 * once cancelled, still calls back later with EVUTIL_EAI_CANCEL.  This wrapper hides both:
 * an early answer is delivered from the loop through an event, and a cancelled query is
 * freed only when evdns is done with it.
 */
#include "sluice/resolve.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One query; owned by the caller until its callback runs or it is cancelled. */
struct resolve_query {
    struct evdns_getaddrinfo_request *req; /* in flight in evdns, or NULL */
    struct event *deliver;                 /* delivers an answer that came synchronously */
    resolve_done_cb cb;                    /* NULL once cancelled */
    void *arg;
    int err; /* the answer, kept until delivered */
    struct evutil_addrinfo *ai;
    bool starting; /* inside evdns_getaddrinfo() */
    bool answered; /* evdns has called back */
};

/* Makes the evdns base from the given resolv.conf and hosts file. */
struct evdns_base *resolve_base_new(struct event_base *base, const char *resolv_conf,
                                    const char *hosts_file, const char **errstr)
{
    struct evdns_base *dns = evdns_base_new(base, 0);
    int r;

    if (dns == NULL) {
        *errstr = "cannot create the DNS resolver";
        return NULL;
    }
    if (access(resolv_conf, R_OK) != 0) {
        *errstr = "cannot read the resolv.conf file";
        goto fail;
    }
    /* Nameservers and options only: a search list or ndots would turn the name policy
     * decided on into another one ("secret" into "secret.corp.example"), so every name is
     * resolved exactly as given, as an absolute name. */
    r = evdns_base_resolv_conf_parse(dns, DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC, resolv_conf);
    /* 6 means "no nameservers listed": evdns then uses 127.0.0.1, which is what resolv.conf
     * says that case means too. */
    if (r != 0 && r != 6) {
        *errstr = "cannot parse the resolv.conf file";
        goto fail;
    }
    evdns_base_search_clear(dns);
    if (evdns_base_load_hosts(dns, hosts_file) != 0) {
        *errstr = "cannot read the hosts file";
        goto fail;
    }
    /* A name that does not answer must not hold a client for long: the connect timeout
     * bounds the whole attempt anyway. */
    evdns_base_set_option(dns, "timeout:", "3");
    evdns_base_set_option(dns, "attempts:", "2");
    return dns;

fail:
    evdns_base_free(dns, 0);
    return NULL;
}

/* Frees a query and any answer it still holds. */
static void resolve_query_free(struct resolve_query *q)
{
    if (q->ai != NULL)
        evutil_freeaddrinfo(q->ai);
    if (q->deliver != NULL)
        event_free(q->deliver);
    free(q);
}

/* Hands the answer to the caller, who then owns the address list. */
static void resolve_deliver(struct resolve_query *q)
{
    resolve_done_cb cb = q->cb;
    void *arg = q->arg;
    int err = q->err;
    struct evutil_addrinfo *ai = q->ai;

    q->ai = NULL;
    resolve_query_free(q);
    cb(err, ai, arg);
}

/* Delivers an answer that evdns gave before resolve_start() returned. */
static void resolve_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resolve_deliver(arg);
}

/* evdns's callback: store, free when cancelled, deliver when not inside resolve_start(). */
static void resolve_evdns_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
    struct resolve_query *q = arg;

    q->req = NULL;
    q->answered = true;
    q->err = err;
    q->ai = ai;
    if (q->cb == NULL) {
        resolve_query_free(q);
        return;
    }
    if (!q->starting)
        resolve_deliver(q);
}

/* Starts a query for host:port; see the header for the callback guarantees. */
struct resolve_query *resolve_start(struct event_base *base, struct evdns_base *dns,
                                    const char *host, uint16_t port, resolve_done_cb cb, void *arg)
{
    struct evutil_addrinfo hints;
    struct resolve_query *q;
    char service[8];

    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->deliver = event_new(base, -1, 0, resolve_deliver_cb, q);
    if (q->deliver == NULL) {
        free(q);
        return NULL;
    }
    q->cb = cb;
    q->arg = arg;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%u", port);
    q->starting = true;
    q->req = evdns_getaddrinfo(dns, host, service, &hints, resolve_evdns_cb, q);
    q->starting = false;
    if (q->answered)
        event_active(q->deliver, 0, 0);
    return q;
}

/* Abandons a query; evdns may still call back, and then the query is freed. */
void resolve_cancel(struct resolve_query *q)
{
    if (q == NULL)
        return;
    q->cb = NULL;
    if (q->answered) {
        resolve_query_free(q); /* answered but not yet delivered */
        return;
    }
    evdns_getaddrinfo_cancel(q->req);
}
