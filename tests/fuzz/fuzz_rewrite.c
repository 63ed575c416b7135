/*
 * libFuzzer target for the head the forwarder sends upstream: the input is a client's
 * request head, parsed by the HTTP/1.1 parser and worked out by request_from_head() as the
 * session does; when the session would forward it, forward_prepare() rewrites it, and the
 * rewritten head is parsed again by the same parser.  Invariants, each checked against
 * this file's own reading of the client's head rather than the forwarder's: the new head
 * parses whole and alone; same method; the target is the origin-form of the absolute
 * target; the same framing (chunked, or the same Content-Length, or none) and so the same
 * body; Host is the target's authority; every end-to-end field is passed on unchanged and
 * in order, and no hop-by-hop field (Connection, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Upgrade unless upgrading -- WebSocket over HTTP/1.1 only --, Proxy-Authorization,
 * Proxy-Authenticate, Proxy-Authentication-Info, any field named in Connection) survives.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "sluice/forward.h"
#include "sluice/http1.h"
#include "sluice/request.h"
#include "fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Field lines a client head may have (the default limit); the rewrite adds at most Host,
 * Via and, for an upgrade, Connection. */
#define FIELDS     100
#define NEW_FIELDS (FIELDS + 3)

/* A head parsed from its own bytes. */
struct parsed {
    const char *buf;
    struct http1_head h;
    struct http1_field f[NEW_FIELDS];
};

/* Fields that describe one connection, by RFC 9110 section 7.6.1 and RFC 9112, or that
 * the proxy must write itself (Host, the framing fields); Upgrade is handled apart. */
static const char *const hop_names[] = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "host",
    "content-length",
    "transfer-encoding",
    "proxy-authorization",
    "proxy-authentication-info",
    "proxy-authenticate",
};

/* True when bytes a[0..n) equal the NUL-terminated lit, ASCII case-insensitively. */
static bool eq_ci(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

/* True when bytes a[0..n) equal b[0..m), ASCII case-insensitively. */
static bool eq_ci2(const char *a, size_t n, const char *b, size_t m)
{
    return n == m && strncasecmp(a, b, n) == 0;
}

/* True when span s of p's head is field name lit. */
static bool name_is(const struct parsed *p, struct http1_span s, const char *lit)
{
    return eq_ci(p->buf + s.off, s.len, lit);
}

/*
 * Steps through the comma-separated list v[0..len) from *pos (0 to start): sets [*a, *b)
 * to the next element, possibly empty, without the spaces and tabs around it, and returns
 * true; false once the list is done.
 */
static bool list_elem(const char *v, size_t len, size_t *pos, size_t *a, size_t *b)
{
    size_t end = *pos;

    if (*pos > len)
        return false;
    while (end < len && v[end] != ',')
        end++;
    *a = *pos;
    *b = end;
    while (*a < *b && (v[*a] == ' ' || v[*a] == '\t'))
        (*a)++;
    while (*b > *a && (v[*b - 1] == ' ' || v[*b - 1] == '\t'))
        (*b)--;
    *pos = end + 1;
    return true;
}

/* True when some Connection field of p names name[0..n): a comma-separated list whose
 * elements are compared without the spaces and tabs around them. */
static bool connection_names(const struct parsed *p, const char *name, size_t n)
{
    for (uint32_t i = 0; i < p->h.nfields; i++) {
        const struct http1_field *f = &p->h.fields[i];
        const char *v = p->buf + f->value.off;
        size_t len = f->value.len, pos = 0, a, b;

        if (!name_is(p, f->name, "connection"))
            continue;
        while (list_elem(v, len, &pos, &a, &b))
            if (eq_ci2(v + a, b - a, name, n))
                return true;
    }
    return false;
}

/* True when p has a field called lit. */
static bool has_field(const struct parsed *p, const char *lit)
{
    for (uint32_t i = 0; i < p->h.nfields; i++)
        if (name_is(p, p->h.fields[i].name, lit))
            return true;
    return false;
}

/* True when p's Upgrade fields offer WebSocket and nothing else: every element of their
 * comma-separated lists, and at least one, is "websocket". */
static bool offers_websocket_only(const struct parsed *p)
{
    bool any = false;

    for (uint32_t i = 0; i < p->h.nfields; i++) {
        const struct http1_field *f = &p->h.fields[i];
        const char *v = p->buf + f->value.off;
        size_t len = f->value.len, pos = 0, a, b;

        if (!name_is(p, f->name, "upgrade"))
            continue;
        while (list_elem(v, len, &pos, &a, &b)) {
            if (b > a && !eq_ci(v + a, b - a, "websocket"))
                return false;
            any |= b > a;
        }
    }
    return any;
}

/* True when the client's field f must not cross the proxy. */
static bool is_hop(const struct parsed *p, const struct http1_field *f, bool upgrading)
{
    const char *name = p->buf + f->name.off;

    for (size_t i = 0; i < sizeof(hop_names) / sizeof(hop_names[0]); i++)
        if (eq_ci(name, f->name.len, hop_names[i]))
            return true;
    if (eq_ci(name, f->name.len, "upgrade"))
        return !upgrading;
    return connection_names(p, name, f->name.len);
}

/* Writes into out (room for the target and a NUL) the origin-form of the absolute target
 * t[0..n): what follows the authority, with "/" in front of a bare query or nothing. */
static void origin_form(const char *t, size_t n, char *out)
{
    size_t i = 7, o = 0; /* after "http://" */

    while (i < n && t[i] != '/' && t[i] != '?')
        i++;
    if (i == n || t[i] == '?')
        out[o++] = '/';
    memcpy(out + o, t + i, n - i);
    out[o + n - i] = '\0';
}

/* Writes into out (capacity cap) the Host value the absolute target t[0..n) calls for:
 * its host in normal form, bracketed when IPv6, and its port unless it is 80. */
static void expected_host(const char *t, size_t n, char *out, size_t cap)
{
    char host[REQUEST_HOST_MAX];
    const char *errstr = NULL, *a = t + 7, *h, *colon = NULL;
    size_t alen = 0, hlen;
    unsigned port = 80;
    bool bracketed, v6 = false;
    int len;

    while (7 + alen < n && a[alen] != '/' && a[alen] != '?')
        alen++;
    bracketed = alen > 0 && a[0] == '[';
    if (bracketed) {
        const char *close = memchr(a, ']', alen);
        CHECK(close != NULL);
        h = a + 1;
        hlen = (size_t)(close - h);
        if (close + 1 < a + alen)
            colon = close + 1;
    } else {
        h = a;
        colon = memchr(a, ':', alen);
        hlen = colon != NULL ? (size_t)(colon - a) : alen;
    }
    if (colon != NULL) {
        CHECK(*colon == ':');
        port = 0;
        for (const char *d = colon + 1; d < a + alen; d++)
            port = port * 10 + (unsigned)(*d - '0');
    }
    len = request_normalize_host(h, hlen, bracketed, host, sizeof(host), &v6, &errstr);
    CHECK(len > 0);
    if (port == 80)
        snprintf(out, cap, v6 ? "[%s]" : "%s", host);
    else
        snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", host, port);
}

/* True when field f of p is the Via that sluice adds for a client of HTTP/1.minor. */
static bool is_own_via(const struct parsed *p, const struct http1_field *f, unsigned minor)
{
    char via[32];

    snprintf(via, sizeof(via), "1.%u sluice", minor);
    return name_is(p, f->name, "via") && f->value.len == strlen(via) &&
           memcmp(p->buf + f->value.off, via, f->value.len) == 0;
}

/* Checks the framing of the new head and what the forwarder will do with the body. */
static void check_framing(const struct parsed *in, const struct parsed *out,
                          const struct forward *f)
{
    unsigned cl = 0, te = 0;

    for (uint32_t i = 0; i < out->h.nfields; i++) {
        cl += name_is(out, out->h.fields[i].name, "content-length");
        te += name_is(out, out->h.fields[i].name, "transfer-encoding");
    }
    if (in->h.chunked) {
        CHECK(out->h.chunked && te == 1 && cl == 0);
        CHECK(f->req_body == FORWARD_BODY_CHUNKED);
    } else if (in->h.has_content_length) {
        CHECK(out->h.has_content_length && cl == 1 && te == 0);
        CHECK(out->h.content_length == in->h.content_length);
        if (in->h.content_length > 0)
            CHECK(f->req_body == FORWARD_BODY_LENGTH && f->req_left == in->h.content_length);
        else
            CHECK(f->req_body == FORWARD_BODY_NONE);
    } else {
        CHECK(!out->h.has_content_length && !out->h.has_transfer_encoding);
        CHECK(cl == 0 && te == 0 && f->req_body == FORWARD_BODY_NONE);
    }
}

/*
 * Checks the fields of the new head: the client's end-to-end fields, unchanged and in
 * order, and besides them only Host, the framing field, sluice's Via and, for an upgrade,
 * "Connection: Upgrade".
 */
static void check_fields(const struct parsed *in, const struct parsed *out, bool upgrading,
                         const char *host)
{
    uint32_t next = 0, hosts = 0, vias = 0, conns = 0;

    for (uint32_t i = 0; i < out->h.nfields; i++) {
        const struct http1_field *o = &out->h.fields[i];
        const char *v = out->buf + o->value.off;

        if (name_is(out, o->name, "host")) {
            CHECK(o->value.len == strlen(host) && memcmp(v, host, o->value.len) == 0);
            hosts++;
            continue;
        }
        if (name_is(out, o->name, "content-length") || name_is(out, o->name, "transfer-encoding"))
            continue; /* check_framing */
        if (upgrading && name_is(out, o->name, "connection")) {
            CHECK(eq_ci(v, o->value.len, "upgrade"));
            conns++;
            continue;
        }
        /* The next end-to-end field of the client must be this one. */
        while (next < in->h.nfields && is_hop(in, &in->h.fields[next], upgrading))
            next++;
        if (next < in->h.nfields) {
            const struct http1_field *c = &in->h.fields[next];
            if (c->name.len == o->name.len && c->value.len == o->value.len &&
                memcmp(in->buf + c->name.off, out->buf + o->name.off, c->name.len) == 0 &&
                memcmp(in->buf + c->value.off, v, c->value.len) == 0) {
                next++;
                continue;
            }
        }
        /* Not the client's: only sluice's own Via may be here, once. */
        CHECK(is_own_via(out, o, in->h.version_minor));
        vias++;
    }
    while (next < in->h.nfields && is_hop(in, &in->h.fields[next], upgrading))
        next++;
    CHECK(next == in->h.nfields); /* no end-to-end field was lost */
    CHECK(hosts == 1 && out->h.host_field >= 0);
    CHECK(vias == 1);
    CHECK(conns == (upgrading ? 1u : 0u));
    CHECK(out->h.has_upgrade == upgrading && out->h.conn_upgrade == upgrading);
}

/* Parses buf[0..len) as a request head into *p; returns what the parser returned. */
static int64_t parse(struct parsed *p, const char *buf, size_t len, const struct http1_limits *lim)
{
    struct http1_parser ps;

    p->buf = buf;
    http1_parser_init(&ps, HTTP1_REQUEST, lim, &p->h, p->f, NEW_FIELDS);
    return http1_parse_head(&ps, buf, len);
}

/* Rewrites a forwardable request and checks the head that would go upstream. */
static void check_rewrite(const struct parsed *in, const struct request *r)
{
    static struct parsed out;
    struct forward f;
    struct http1_limits lim;
    const char *errstr = NULL, *t = in->buf + in->h.target.off;
    char *head = NULL, *origin = NULL, host[REQUEST_HOST_MAX + 16];
    size_t len, tlen = in->h.target.len;
    bool offered = has_field(in, "upgrade") && connection_names(in, "upgrade", 7);
    bool body = in->h.chunked || (in->h.has_content_length && in->h.content_length > 0);
    /* Only WebSocket over HTTP/1.1 is relayed; any other offer goes without its Upgrade. */
    bool upgrading = offered && in->h.version_minor == 1 && offers_websocket_only(in);

    memset(&f, 0, sizeof(f));
    CHECK(offered == (in->h.has_upgrade && in->h.conn_upgrade));
    if (forward_prepare(&f, in->buf, &in->h, r, &errstr) < 0) {
        /* The one refusal: an upgrade that carries a body. */
        CHECK(upgrading && body && errstr != NULL);
        goto out;
    }
    CHECK(!(upgrading && body) && f.head != NULL);
    CHECK(f.wants_upgrade == upgrading && f.http10 == (in->h.version_minor == 0));
    len = evbuffer_get_length(f.head);
    head = malloc(len); /* exactly the head: reading past it is an ASan report */
    origin = malloc(tlen + 2);
    CHECK(head != NULL && origin != NULL);
    CHECK(evbuffer_copyout(f.head, head, len) == (ev_ssize_t)len);

    /* The rewrite adds fields and bytes (Via, ": " after every name), so the new head is
     * read with room for them; the request line only ever gets shorter. */
    http1_limits_default(&lim);
    lim.max_fields = NEW_FIELDS;
    lim.max_head = UINT32_MAX;
    CHECK(parse(&out, head, len, &lim) == (int64_t)len);
    CHECK(out.h.method.len == in->h.method.len &&
          memcmp(head + out.h.method.off, in->buf + in->h.method.off, in->h.method.len) == 0);
    origin_form(t, tlen, origin);
    CHECK(out.h.target.len == strlen(origin) &&
          memcmp(head + out.h.target.off, origin, out.h.target.len) == 0);
    CHECK(out.h.version_minor == 1);
    check_framing(in, &out, &f);
    expected_host(t, tlen, host, sizeof(host));
    check_fields(in, &out, upgrading, host);
out:
    free(head);
    free(origin);
    forward_reset(&f);
}

/*
 * The codings a captured body is labelled with: bounded by the room given, whole codings
 * only, each one among the head's Content-Encoding and Transfer-Encoding values, a list
 * cut short ending with "...".
 */
static void check_codings(const struct parsed *in)
{
    static const size_t caps[] = {1, 8, CAPTURE_CODINGS_MAX};

    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        char out[CAPTURE_CODINGS_MAX];
        const char *p = out;
        size_t len;

        memset(out, 'x', sizeof(out));
        forward_body_codings(in->buf, &in->h, out, caps[k]);
        len = strlen(out);
        CHECK(len < caps[k]);
        /* A list cut short says so at its end; what comes before is whole codings. */
        if (strcmp(out, "...") == 0)
            len = 0;
        else if (len >= 5 && strcmp(out + len - 5, ", ...") == 0)
            len -= 5;
        out[len] = '\0';
        while (*p != '\0') {
            const char *comma = strstr(p, ", ");
            size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
            bool found = false;
            CHECK(n > 0);
            for (uint32_t i = 0; i < in->h.nfields && !found; i++) {
                const struct http1_field *f = &in->h.fields[i];
                const char *v = in->buf + f->value.off;
                struct http1_span e;
                size_t pos = 0;
                if (!http1_span_eq_ci(in->buf, f->name, "content-encoding") &&
                    !http1_span_eq_ci(in->buf, f->name, "transfer-encoding"))
                    continue;
                while (!found && http1_list_next(v, f->value.len, &pos, &e))
                    found = e.len == n && memcmp(v + e.off, p, n) == 0;
            }
            CHECK(found);
            p += n + (comma != NULL ? 2 : 0);
        }
    }
}

/* Parses the input as a client's request head and, when it would be forwarded, checks
 * the rewritten head. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct parsed in;
    struct http1_limits lim;
    struct request r;
    struct request_error err;

    http1_limits_default(&lim);
    lim.max_fields = FIELDS;
    if (parse(&in, (const char *)data, size, &lim) <= 0)
        return 0;
    /* The session forwards what request_from_head() takes and is not CONNECT. */
    if (request_from_head(in.buf, &in.h, &r, &err) < 0 || r.is_connect)
        return 0;
    check_rewrite(&in, &r);
    check_codings(&in);
    return 0;
}
