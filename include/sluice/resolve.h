/*
 * Asynchronous name resolution through evdns: A and AAAA together, IP literals without
 * a query, a configurable resolv.conf and hosts file.  A name is resolved exactly as given:
 * resolv.conf's search list, domain and ndots are ignored.  Callbacks never run before
 * resolve_start() returns and never after resolve_cancel().
 */
#ifndef SLUICE_RESOLVE_H
#define SLUICE_RESOLVE_H

#include <stdint.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

struct resolve_query;

/*
 * Result of a query: err is 0 or an EVUTIL_EAI_* code; on success ai is a list the callee
 * owns (free it with evutil_freeaddrinfo).
 */
typedef void (*resolve_done_cb)(int err, struct evutil_addrinfo *ai, void *arg);

/*
 * Makes a resolver for base reading nameservers from resolv_conf and names from
 * hosts_file.  Returns NULL with *errstr set when either cannot be used.
 */
struct evdns_base *resolve_base_new(struct event_base *base, const char *resolv_conf,
                                    const char *hosts_file, const char **errstr);

/* Starts resolving host for a TCP connection to port; NULL only when out of memory. */
struct resolve_query *resolve_start(struct event_base *base, struct evdns_base *dns,
                                    const char *host, uint16_t port, resolve_done_cb cb, void *arg);

/* Abandons q; its callback will not run.  NULL is a no-op. */
void resolve_cancel(struct resolve_query *q);

#endif /* SLUICE_RESOLVE_H */
