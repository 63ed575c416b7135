/* What a client's request asks for; see include/sluice/request.h. */
#include "sluice/request.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "sluice/domainset.h"
#include "sluice/netguard.h"

/* Normalises a target's host into its one canonical text. */
int request_normalize_host(const char *host, size_t len, bool bracketed, char *out, size_t cap,
                           bool *is_ipv6, const char **errstr)
{
    struct netguard_addr a;
    size_t n;

    *is_ipv6 = false;
    if (netguard_parse_literal(host, len, &a)) {
        /* Brackets hold IPv6 only; a mapped address inside them is the IPv4 it maps. */
        if (!bracketed && a.family == AF_INET6) {
            *errstr = "an IPv6 address must be written in brackets";
            return -1;
        }
        n = netguard_format(&a, out, cap);
        if (n >= cap) {
            *errstr = "the address does not fit";
            return -1;
        }
        *is_ipv6 = a.family == AF_INET6;
        return (int)n;
    }
    if (bracketed) {
        *errstr = "the brackets do not hold an IPv6 address";
        return -1;
    }
    return domainset_normalize(host, len, out, cap, errstr);
}

/* True for GET, HEAD, OPTIONS, TRACE, PUT and DELETE. */
bool request_method_idempotent(const char *method, size_t len)
{
    static const char *const idempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};

    for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
        if (strlen(idempotent[i]) == len && memcmp(idempotent[i], method, len) == 0)
            return true;
    return false;
}

/* True when the method spells a standard method (RFC 9110, RFC 5789) in another case. */
static bool request_method_miscased(const char *method, size_t len)
{
    static const char *const standard[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                           "CONNECT", "OPTIONS", "TRACE", "PATCH"};

    for (size_t i = 0; i < sizeof(standard) / sizeof(standard[0]); i++)
        if (strlen(standard[i]) == len && strncasecmp(standard[i], method, len) == 0 &&
            memcmp(standard[i], method, len) != 0)
            return true;
    return false;
}

/* Fills *err and returns -1. */
static int request_refuse(struct request_error *err, uint32_t pos, const char *what)
{
    err->status = 400;
    err->pos = pos;
    err->what = what;
    return -1;
}

/* The method and what it implies, into r (cleared first); -1 with *err for a miscased one. */
static int request_method_part(const char *buf, const struct http1_head *h, struct request *r,
                               struct request_error *err)
{
    const struct http1_span *m = &h->method;
    size_t mlen = m->len < sizeof(r->method) - 1 ? m->len : sizeof(r->method) - 1;

    memset(r, 0, sizeof(*r));
    memcpy(r->method, buf + m->off, mlen);
    r->method[mlen] = '\0';
    /* Methods are case-sensitive (RFC 9110, 9.1): "head" is not HEAD. An origin or a peer
     * proxy that folds the case would frame the response differently from sluice, so a
     * standard method in any other case is refused rather than guessed at. */
    if (request_method_miscased(buf + m->off, m->len))
        return request_refuse(err, m->off,
                              "methods are case-sensitive: send the standard method in "
                              "upper case (GET, not get)");
    r->is_connect = m->len == 7 && memcmp(buf + m->off, "CONNECT", 7) == 0;
    r->is_head = m->len == 4 && memcmp(buf + m->off, "HEAD", 4) == 0;
    r->idempotent = request_method_idempotent(buf + m->off, m->len);
    r->http10 = h->version_minor == 0;
    r->keepalive = !r->http10 && !h->conn_close;
    r->target = h->target;
    return 0;
}

/* What a request inside a CONNECT read as plain HTTP asks for; see the header. */
int request_from_head_in_tunnel(const char *buf, const struct http1_head *h,
                                const struct request *bound, struct request *r,
                                struct request_error *err)
{
    if (h->target.len == 0 || buf[h->target.off] != '/') {
        /* Absolute-form is taken too, for the tunnel's own host and port only. */
        if (request_from_head(buf, h, r, err) < 0)
            return -1;
        if (r->is_connect)
            return request_refuse(err, h->method.off,
                                  "a CONNECT inside a CONNECT is not taken; send plain HTTP "
                                  "requests for the tunnel's host");
        if (strcmp(r->host, bound->host) != 0 || r->port != bound->port) {
            snprintf(err->msg, sizeof(err->msg),
                     "this tunnel goes to %s%.120s%s:%u only; open another for another host",
                     bound->host_is_ipv6 ? "[" : "", bound->host, bound->host_is_ipv6 ? "]" : "",
                     bound->port);
            return request_refuse(err, h->target.off, err->msg);
        }
        r->https = bound->https;
        return 0;
    }
    /* Origin-form, as a client that took the tunnel for the origin sends it: the path is
     * the target, the authority the tunnel's. */
    if (request_method_part(buf, h, r, err) < 0)
        return -1;
    if (r->is_connect)
        return request_refuse(err, h->method.off,
                              "a CONNECT inside a CONNECT is not taken; send plain HTTP "
                              "requests for the tunnel's host");
    /* A fragment is the client's alone, as in absolute-form: servers that cut the path at
     * '#' would serve another path than the one decided on. */
    if (memchr(buf + h->target.off, '#', h->target.len) != NULL)
        return request_refuse(err, h->target.off,
                              "a request target cannot hold a fragment ('#'); send the path "
                              "without it");
    r->path = h->target;
    memcpy(r->host, bound->host, sizeof(r->host));
    r->host_is_ipv6 = bound->host_is_ipv6;
    r->port = bound->port;
    r->https = bound->https;
    return 0;
}

/* Works out what a request asks for; see the header. */
int request_from_head(const char *buf, const struct http1_head *h, struct request *r,
                      struct request_error *err)
{
    struct http1_target t;
    const char *errstr = "";
    int n;

    if (request_method_part(buf, h, r, err) < 0)
        return -1;

    if (r->is_connect) {
        if (http1_parse_authority(buf, h->target, &t) < 0)
            return request_refuse(err, h->target.off,
                                  "CONNECT needs a target of the form host:port");
        if (h->chunked || (h->has_content_length && h->content_length > 0))
            return request_refuse(err, 0, "a CONNECT request cannot carry a body");
    } else if (h->target.len > 0 && buf[h->target.off] == '/') {
        return request_refuse(err, h->target.off,
                              "sluice is a forward proxy: send absolute URLs (http://host/path), "
                              "or set it as the client's HTTP proxy");
    } else if (http1_parse_absolute_target(buf, h->target, &t) < 0) {
        return request_refuse(err, h->target.off,
                              "the request target is not a valid http:// URL "
                              "(https:// goes through CONNECT)");
    } else {
        r->path = t.path;
    }
    n = request_normalize_host(buf + t.host.off, t.host.len, t.host_is_ipv6, r->host,
                               sizeof(r->host), &r->host_is_ipv6, &errstr);
    if (n <= 0) {
        snprintf(err->msg, sizeof(err->msg), "the host in the request target is not valid: %s",
                 errstr);
        return request_refuse(err, t.host.off, err->msg);
    }
    r->port = t.port;
    return 0;
}
