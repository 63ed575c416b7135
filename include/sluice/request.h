/*
 * What a client's request asks for, worked out once per request from its parsed head, in
 * the one form that policy, the resolver, the forwarded head and the log all use.  Pure:
 * no I/O, no allocation; spans point into the caller's buffer.
 */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/http1.h"

/* Room for a normalised host: a 253-byte name or the longest IPv6 text, and a NUL. */
#define REQUEST_HOST_MAX 256

/* Room for a method in the log; a longer one is cut short there (never when forwarded). */
#define REQUEST_METHOD_MAX 24

/* What a request asks for. */
struct request {
    char method[REQUEST_METHOD_MAX]; /* the method, cut short when longer */
    bool is_connect;                 /* CONNECT: a tunnel to host:port */
    bool is_head;                    /* HEAD: the response has no body */
    bool idempotent;                 /* may be sent again (RFC 9110 section 9.2.2) */
    bool http10;                     /* the client spoke HTTP/1.0 */
    bool keepalive;                  /* the client allows another request on the connection */
    char host[REQUEST_HOST_MAX];     /* normalised host (request_normalize_host) */
    bool host_is_ipv6;               /* host is IPv6 text, written in brackets in Host */
    uint16_t port;                   /* upstream port */
    bool https;                      /* read inside inspected TLS: the origin's is https, and
                                        its default port 443 */
    struct http1_span target;        /* the request target as received */
    struct http1_span path;          /* origin-form path and query; len 0 means "/" */
};

/* Why a request cannot be taken: the status to answer and one sentence saying what to do. */
struct request_error {
    unsigned status;  /* 400 */
    const char *what; /* points into msg or at a static string */
    uint32_t pos;     /* offset of the offending byte in the head */
    char msg[200];
};

/*
 * Works out what the complete request head h (parsed from buf) asks for into *r: an
 * absolute http:// target or, for CONNECT, host:port; the host normalised.  Refuses
 * origin-form targets (sluice is a forward proxy), malformed targets, invalid hosts and a
 * CONNECT with a body.  Returns 0, or -1 with *err filled.
 */
int request_from_head(const char *buf, const struct http1_head *h, struct request *r,
                      struct request_error *err);

/*
 * Works out what a request inside a CONNECT to bound (its host and port) asks for, when
 * that tunnel is read as plain HTTP: an origin-form target ("/path") goes to the tunnel's
 * host and port; an absolute one must name them; a CONNECT is refused.  Returns 0, or -1
 * with *err filled.
 */
int request_from_head_in_tunnel(const char *buf, const struct http1_head *h,
                                const struct request *bound, struct request *r,
                                struct request_error *err);

/*
 * Normalises the host of a request target, host[0..len) (an IPv6 literal without its
 * brackets when bracketed is true), into out[0..cap): an IP literal in its one canonical
 * text (every IPv4 spelling -- 2130706433, 0x7f.1, 127.1, a trailing dot -- as a dotted
 * quad; an IPv4-mapped IPv6 address as the IPv4 address it maps; other IPv6 in RFC 5952
 * form, without brackets), a name in ASCII lower case without its trailing dot, with no
 * empty label ("a..b", ".a"), no label over 63 bytes and at most 253 bytes in all.
 * *is_ipv6 says the result is IPv6 text (written in brackets in a Host field).  Returns the
 * length, or -1 with *errstr saying what is wrong.
 */
int request_normalize_host(const char *host, size_t len, bool bracketed, char *out, size_t cap,
                           bool *is_ipv6, const char **errstr);

/* True for the methods RFC 9110 section 9.2.2 calls idempotent (case-sensitive, as methods are). */
bool request_method_idempotent(const char *method, size_t len);

#endif /* SLUICE_REQUEST_H */
