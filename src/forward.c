/*
 * Plain HTTP forwarding; see include/sluice/forward.h.
 *
 * The request head is rewritten once, when it is complete.  Then two flows run at the same
 * time: the request body from the client to the upstream, and the response (interim heads,
 * the final head, the body) from the upstream to the client.  Each flow moves whole evbuffer
 * chains where it can and pauses its reader while the other side holds the relay's high
 * watermark: response heads, interim ones included, wait like body bytes do.
 */
#include "sluice/forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "sluice/log.h"

/* Fields that describe one hop, never forwarded (RFC 9110 section 7.6.1), plus the ones
 * sluice writes itself (Host, framing). */
static const char *const forward_hop_fields[] = {
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-authentication-info", /* RFC 9110 11.7.4: for the next hop only, as the above */
    "host",
};

/* Frees what f owns and makes it empty. */
void forward_reset(struct forward *f)
{
    if (f->head != NULL)
        evbuffer_free(f->head);
    memset(f, 0, sizeof(*f));
}

/* True when field name is named by any Connection field of the head in buf. */
static bool forward_is_connection_listed(const char *buf, const struct http1_head *h,
                                         struct http1_span name)
{
    /* Compared in place, whatever the name's length: a long one must not slip through. */
    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];
        const char *v = buf + f->value.off;
        struct http1_span e;
        size_t pos = 0;

        if (!http1_span_eq_ci(buf, f->name, "connection"))
            continue;
        while (http1_list_next(v, f->value.len, &pos, &e))
            if (e.len == name.len && strncasecmp(v + e.off, buf + name.off, name.len) == 0)
                return true;
    }
    return false;
}

/* True when the field must not cross this proxy (keep_upgrade keeps Upgrade for a 101). */
static bool forward_is_hop_field(const char *buf, const struct http1_head *h,
                                 struct http1_span name, bool keep_upgrade)
{
    for (size_t i = 0; i < sizeof(forward_hop_fields) / sizeof(forward_hop_fields[0]); i++) {
        if (http1_span_eq_ci(buf, name, forward_hop_fields[i]))
            return !(keep_upgrade && strcmp(forward_hop_fields[i], "upgrade") == 0);
    }
    return forward_is_connection_listed(buf, h, name);
}

/*
 * Copies the fields of h (in buf) to out, but for hop-by-hop ones (an Upgrade kept when
 * keep_upgrade) and any named by the "Name: value" fields of set[nset], which the caller
 * writes instead.
 */
static void forward_copy_fields(struct evbuffer *out, const char *buf, const struct http1_head *h,
                                bool keep_upgrade, const char *const *set, size_t nset)
{
    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];
        bool replaced = false;
        if (forward_is_hop_field(buf, h, f->name, keep_upgrade))
            continue;
        /* A field the policy sets is the policy's alone, in any spelling of its name. */
        for (size_t k = 0; k < nset && !replaced; k++)
            replaced = f->name.len < strlen(set[k]) && set[k][f->name.len] == ':' &&
                       strncasecmp(buf + f->name.off, set[k], f->name.len) == 0;
        if (replaced)
            continue;
        evbuffer_add(out, buf + f->name.off, f->name.len);
        evbuffer_add(out, ": ", 2);
        evbuffer_add(out, buf + f->value.off, f->value.len);
        evbuffer_add(out, "\r\n", 2);
    }
}

/*
 * True when a field called name holds a credential of a scheme that authenticates the
 * connection rather than the request (NTLM, Negotiate): an origin that accepted it answers
 * later requests on that connection as that user.
 */
static bool forward_has_conn_auth(const char *buf, const struct http1_head *h, const char *name)
{
    static const char *const schemes[] = {"NTLM", "Negotiate"};

    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];
        if (!http1_span_eq_ci(buf, f->name, name))
            continue;
        for (size_t k = 0; k < sizeof(schemes) / sizeof(schemes[0]); k++) {
            size_t n = strlen(schemes[k]);
            const char *v = buf + f->value.off;
            /* The scheme alone, or before its token or another challenge. */
            if (f->value.len >= n && strncasecmp(v, schemes[k], n) == 0 &&
                (f->value.len == n || v[n] == ' ' || v[n] == ','))
                return true;
            if (http1_list_has_token(v, f->value.len, schemes[k]))
                return true;
        }
    }
    return false;
}

/*
 * True when h's Upgrade fields offer WebSocket and nothing else (RFC 6455 section 4.1).
 * Only that upgrade is relayed: after an h2c or other switch the bytes would be requests
 * sluice cannot read, decide or record.
 */
static bool forward_upgrade_is_websocket(const char *buf, const struct http1_head *h)
{
    bool any = false;

    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];
        const char *v = buf + f->value.off, *end = v + f->value.len;

        if (!http1_span_eq_ci(buf, f->name, "upgrade"))
            continue;
        while (v < end) {
            const char *comma = memchr(v, ',', (size_t)(end - v)), *stop = comma ? comma : end;
            const char *a = v, *b = stop;

            while (a < b && (*a == ' ' || *a == '\t'))
                a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            if (b > a) {
                if ((size_t)(b - a) != 9 || strncasecmp(a, "websocket", 9) != 0)
                    return false;
                any = true;
            }
            v = comma ? comma + 1 : end;
        }
    }
    return any;
}

/* Builds the origin-form request head for the upstream into f->head. */
int forward_prepare(struct forward *f, const char *buf, const struct http1_head *h,
                    const struct request *r, const char **errstr)
{
    struct evbuffer *out;
    const struct http1_span *path = &r->path;

    f->http10 = r->http10;
    f->keepalive = r->keepalive;
    f->is_head = r->is_head;
    if (h->chunked) {
        f->req_body = FORWARD_BODY_CHUNKED;
        http1_chunked_init(&f->req_chunked);
    } else if (h->has_content_length && h->content_length > 0) {
        f->req_body = FORWARD_BODY_LENGTH;
        f->req_left = h->content_length;
    } else {
        f->req_body = FORWARD_BODY_NONE;
        f->req_done = true;
    }
    /* An upgrade is relayed for WebSocket over HTTP/1.1 only; any other offer, or one in
     * an HTTP/1.0 request (RFC 9110 section 7.8), goes as a plain request without it. */
    f->wants_upgrade =
        h->has_upgrade && h->conn_upgrade && !r->http10 && forward_upgrade_is_websocket(buf, h);
    if (f->wants_upgrade && f->req_body != FORWARD_BODY_NONE) {
        *errstr = "an upgrade request cannot carry a body";
        return -1;
    }
    f->conn_auth = forward_has_conn_auth(buf, h, "authorization");

    out = evbuffer_new();
    if (out == NULL) {
        *errstr = "out of memory";
        return -1;
    }
    evbuffer_add(out, buf + h->method.off, h->method.len);
    evbuffer_add(out, " ", 1);
    /* Origin-form starts with "/": "http://h" and "http://h?q" become "/" and "/?q". */
    if (path->len == 0 || buf[path->off] == '?')
        evbuffer_add(out, "/", 1);
    evbuffer_add(out, buf + path->off, path->len);
    /* The authority in the request target decides; a differing Host is replaced. */
    evbuffer_add_printf(out, " HTTP/1.1\r\nHost: %s%s%s", r->host_is_ipv6 ? "[" : "", r->host,
                        r->host_is_ipv6 ? "]" : "");
    if (r->port != (r->https ? 443 : 80))
        evbuffer_add_printf(out, ":%u", r->port);
    evbuffer_add(out, "\r\n", 2);
    forward_copy_fields(out, buf, h, f->wants_upgrade, f->set_fields, f->nset_fields);
    for (size_t k = 0; k < f->nset_fields; k++) {
        evbuffer_add(out, f->set_fields[k], strlen(f->set_fields[k]));
        evbuffer_add(out, "\r\n", 2);
    }
    if (f->req_body == FORWARD_BODY_CHUNKED)
        evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
    else if (h->has_content_length)
        evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", h->content_length);
    evbuffer_add_printf(out, "Via: 1.%u sluice\r\n", h->version_minor);
    if (f->wants_upgrade)
        evbuffer_add(out, "Connection: Upgrade\r\n", 21);
    evbuffer_add(out, "\r\n", 2);
    f->head = out;
    return 0;
}

/* Prepares the parser for the next response head (after the request, or after a 1xx). */
static void forward_expect_response_head(struct forward *f)
{
    http1_parser_init(&f->parser, HTTP1_RESPONSE, &f->settings->response_limits, &f->resp,
                      f->fields, f->fields_cap);
}

/* True while the request is sent and the response has not started. */
bool forward_awaiting_response(const struct forward *f)
{
    return f->req_done && !f->resp_started;
}

/*
 * Moves n bytes of body data from in to out, re-framed as one chunk when chunk is true,
 * copying them to tee (NULL: none) as they pass.  When tee runs short of memory and
 * hold_short is true, the bytes stay in in: returns false.
 */
static bool forward_move(struct evbuffer *in, struct evbuffer *out, size_t n, bool chunk,
                         struct capture_body *tee, bool hold_short)
{
    capture_body_add_evbuffer(tee, in, n);
    if (hold_short && capture_body_short(tee))
        return false;
    if (chunk)
        evbuffer_add_printf(out, "%zx\r\n", n);
    evbuffer_remove_buffer(in, out, n);
    if (chunk)
        evbuffer_add(out, "\r\n", 2);
    return true;
}

/* forward_dechunk() stopped: the framing was malformed, or tee was short (hold_short). */
#define FORWARD_MALFORMED     (-1)
#define FORWARD_CAPTURE_SHORT (-2)

/*
 * Decodes chunked framing from in and moves the data to out (re-chunked when rechunk);
 * *consumed is the bytes of in it took, whatever it returns.  Returns 0, FORWARD_MALFORMED,
 * or FORWARD_CAPTURE_SHORT when tee ran short of memory and hold_short is true (the data
 * it could not keep stays in in).
 */
static int forward_dechunk(struct http1_chunked *ch, struct evbuffer *in, struct evbuffer *out,
                           bool rechunk, struct capture_body *tee, bool hold_short,
                           int64_t *consumed)
{
    *consumed = 0;
    while (!http1_chunked_done(ch) && evbuffer_get_length(in) > 0 &&
           evbuffer_get_length(out) < RELAY_HIGH_WATERMARK) {
        struct evbuffer_iovec vec;
        size_t data = 0;
        int64_t used;

        if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
            break;
        used = http1_chunked_step(ch, vec.iov_base, vec.iov_len, &data);
        if (used < 0)
            return FORWARD_MALFORMED;
        if (data > 0 && !forward_move(in, out, data, rechunk, tee, hold_short))
            return FORWARD_CAPTURE_SHORT;
        if (data == 0)
            evbuffer_drain(in, (size_t)used);
        *consumed += used;
        if (used == 0)
            break;
    }
    if (http1_chunked_done(ch) && rechunk)
        evbuffer_add(out, "0\r\n\r\n", 5);
    return 0;
}

/*
 * A request body the capture store's memory had no room for: what was sent was kept, the
 * rest is not sent, and the exchange ends (the upstream gets no more of the body, and is
 * not kept).
 */
static struct outcome forward_capture_short(const struct forward *f)
{
    return outcome_fail(503, "proxy_internal_error", TERM_RESOURCE, TERM_PH_DATA, "%s",
                        capture_body_short_why(f->req_capture));
}

/* Moves request body bytes from the client to the upstream while the upstream keeps up. */
static struct outcome forward_relay_request(struct forward *f)
{
    struct evbuffer *in = sock_in(f->client);
    struct evbuffer *out = sock_out(f->upstream);
    bool starved = false;

    while (!f->req_done && evbuffer_get_length(in) > 0) {
        if (!relay_flow_room(&f->req_flow))
            break;
        if (f->req_body == FORWARD_BODY_LENGTH) {
            size_t n = evbuffer_get_length(in);
            if (n > f->req_left)
                n = (size_t)f->req_left;
            if (!forward_move(in, out, n, false, f->req_capture, f->capture_fail_closed))
                return forward_capture_short(f);
            f->req_left -= n;
            f->sent += n;
            f->req_done = f->req_left == 0;
            if (f->req_done)
                capture_body_seal(f->req_capture); /* not held while the response runs */
        } else {
            int64_t used;
            int rc = forward_dechunk(&f->req_chunked, in, out, true, f->req_capture,
                                     f->capture_fail_closed, &used);

            f->sent += (uint64_t)used; /* what went before a failure went on */
            if (rc == FORWARD_CAPTURE_SHORT)
                return forward_capture_short(f);
            if (rc < 0)
                return outcome_fail(400, "http_request_error", TERM_PROXY, TERM_PH_DATA, "%s",
                                    http1_error_str(f->req_chunked.error));
            f->req_done = http1_chunked_done(&f->req_chunked);
            if (f->req_done)
                capture_body_seal(f->req_capture);
            if (used == 0) {
                starved = true; /* the rest of a framing line has not arrived */
                break;
            }
        }
    }
    /* A client that half-closed may do so right after its body, even before the upstream
     * is there; it is gone for good only when the body stops short of its end. */
    if (!f->req_done && f->client_eof && !f->resp_done && (evbuffer_get_length(in) == 0 || starved))
        return outcome_close(TERM_CLIENT, f->resp_head_done ? TERM_PH_DATA : TERM_PH_RESPONSE,
                             false);
    return outcome_of(OUTCOME_MORE);
}

/* The exchange is over once both directions are complete; says whether to keep the upstream. */
static struct outcome forward_finish_if_done(struct forward *f)
{
    if (!f->resp_done)
        return outcome_of(OUTCOME_MORE);
    if (!f->req_done) {
        /* The origin answered before the whole body arrived; the connection cannot be
         * kept, and the client was told so in the response head. */
        f->close_after = true;
        f->upstream_keep = false;
    }
    /* Bytes past the response, or an end read with it (TLS can give both in one read,
     * and the end is told only later): not for another request. */
    if (evbuffer_get_length(sock_in(f->upstream)) > 0 ||
        evbuffer_get_length(sock_out(f->upstream)) > 0 || sock_eof(f->upstream) ||
        sock_error(f->upstream) != 0)
        f->upstream_keep = false;
    return outcome_of(OUTCOME_DONE);
}

/* Moves response body bytes from the upstream to the client while the client keeps up. */
static struct outcome forward_relay_response(struct forward *f)
{
    struct evbuffer *in = sock_in(f->upstream);
    struct evbuffer *out = sock_out(f->client);
    size_t before = evbuffer_get_length(out);

    while (!f->resp_done && evbuffer_get_length(in) > 0) {
        if (!relay_flow_room(&f->resp_flow))
            break;
        if (f->resp_body == FORWARD_BODY_LENGTH || f->resp_body == FORWARD_BODY_CLOSE) {
            size_t n = evbuffer_get_length(in);
            if (f->resp_body == FORWARD_BODY_LENGTH && n > f->resp_left)
                n = (size_t)f->resp_left;
            capture_body_add_evbuffer(f->resp_capture, in, n);
            evbuffer_remove_buffer(in, out, n);
            if (f->resp_body == FORWARD_BODY_LENGTH) {
                f->resp_left -= n;
                f->resp_done = f->resp_left == 0;
            }
        } else {
            int64_t used;
            int rc = forward_dechunk(&f->resp_chunked, in, out, f->resp_rechunk, f->resp_capture,
                                     false, &used);
            if (rc < 0) {
                f->received += evbuffer_get_length(out) - before;
                return outcome_fail(502, "http_protocol_error", TERM_SERVER, TERM_PH_DATA,
                                    "the upstream sent an invalid chunked body (%s)",
                                    http1_error_str(f->resp_chunked.error));
            }
            f->resp_done = http1_chunked_done(&f->resp_chunked);
            if (used == 0)
                break;
        }
    }
    f->received += evbuffer_get_length(out) - before;
    return forward_finish_if_done(f);
}

/* Writes an interim (1xx) head to a client that understands one. */
static void forward_send_interim(struct forward *f, const char *buf)
{
    const struct http1_head *h = &f->resp;
    struct evbuffer *out = sock_out(f->client);
    size_t before = evbuffer_get_length(out);

    if (f->http10)
        return; /* HTTP/1.0 has no interim responses */
    evbuffer_add_printf(out, "HTTP/1.1 %u ", h->status);
    evbuffer_add(out, buf + h->reason.off, h->reason.len);
    evbuffer_add(out, "\r\n", 2);
    forward_copy_fields(out, buf, h, false, NULL, 0);
    evbuffer_add(out, "\r\n", 2);
    f->received += evbuffer_get_length(out) - before;
}

/* Writes the origin's 101 and hands over to a tunnel. */
static struct outcome forward_upgrade(struct forward *f, const char *buf)
{
    const struct http1_head *h = &f->resp;
    struct evbuffer *out = sock_out(f->client);
    size_t before = evbuffer_get_length(out);

    if (!forward_upgrade_is_websocket(buf, h))
        return outcome_fail(502, "http_upgrade_failed", TERM_SERVER, TERM_PH_RESPONSE,
                            "the upstream switched to another protocol than WebSocket");
    evbuffer_add(out, "HTTP/1.1 101 ", 13);
    evbuffer_add(out, buf + h->reason.off, h->reason.len);
    evbuffer_add(out, "\r\n", 2);
    forward_copy_fields(out, buf, h, true, NULL, 0);
    evbuffer_add(out, "Via: 1.1 sluice\r\nConnection: Upgrade\r\n\r\n", 40);
    f->received += evbuffer_get_length(out) - before;
    f->status = 101;
    f->resp_head_done = true;
    evbuffer_drain(sock_in(f->upstream), h->head_len);
    return outcome_of(OUTCOME_UPGRADE);
}

/*
 * Appends the transfer codings of the response that travel with its body as sluice sends
 * it to out, comma-separated, and returns how many there were: all but the final chunked
 * when sluice decodes that one ("gzip" of "gzip, chunked"); all of them, verbatim, when
 * the body is passed on as it came ("chunked, gzip" ends with a coding sluice cannot
 * frame, so it is read until close and keeps its label whole).  The parser refuses a
 * second chunked, so the one it strips is the final one.
 */
static unsigned forward_other_codings(const char *buf, const struct http1_head *h,
                                      struct evbuffer *out)
{
    bool keep_chunked = !h->chunked;
    unsigned n = 0;

    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *fl = &h->fields[i];
        const char *v = buf + fl->value.off;
        struct http1_span e;
        size_t pos = 0;

        if (!http1_span_eq_ci(buf, fl->name, "transfer-encoding"))
            continue;
        while (http1_list_next(v, fl->value.len, &pos, &e)) {
            if (!keep_chunked && e.len == 7 && strncasecmp(v + e.off, "chunked", 7) == 0)
                continue;
            if (out != NULL)
                evbuffer_add_printf(out, "%s%.*s", n > 0 ? ", " : "", (int)e.len, v + e.off);
            n++;
        }
    }
    return n;
}

/* What ends a list of codings that did not fit: a reader knows it cannot decode the body. */
#define FORWARD_CODINGS_CUT ", ..."

/*
 * Appends the codings listed in the fields called name of h to out (holding *len bytes of
 * cap), ", "-separated; skip_chunked leaves chunked out.  When one does not fit, the list
 * ends with whole codings and FORWARD_CODINGS_CUT (or "..." alone), and false is returned.
 */
static bool forward_append_codings(const char *buf, const struct http1_head *h, const char *name,
                                   bool skip_chunked, char *out, size_t cap, size_t *len)
{
    const size_t cut = sizeof(FORWARD_CODINGS_CUT) - 1;

    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *fl = &h->fields[i];
        const char *v = buf + fl->value.off;
        struct http1_span e;
        size_t pos = 0;

        if (!http1_span_eq_ci(buf, fl->name, name))
            continue;
        while (http1_list_next(v, fl->value.len, &pos, &e)) {
            size_t sep = *len > 0 ? 2 : 0;
            if (skip_chunked && e.len == 7 && strncasecmp(v + e.off, "chunked", 7) == 0)
                continue;
            /* Room is kept for the mark, so a cut list can always say so. */
            if (*len + sep + e.len + cut + 1 > cap) {
                const char *mark = *len > 0 ? FORWARD_CODINGS_CUT : "...";
                size_t n = strlen(mark);
                if (*len + n + 1 <= cap) {
                    memcpy(out + *len, mark, n + 1);
                    *len += n;
                }
                return false;
            }
            memcpy(out + *len, ", ", sep);
            memcpy(out + *len + sep, v + e.off, e.len);
            *len += sep + e.len;
            out[*len] = '\0';
        }
    }
    return true;
}

/* The codings applied to a message's body; see the header. */
void forward_body_codings(const char *buf, const struct http1_head *h, char *out, size_t cap)
{
    size_t len = 0;

    if (cap == 0)
        return;
    out[0] = '\0';
    /* As for forward_other_codings(): a final chunked is decoded by sluice, any other kept. */
    if (forward_append_codings(buf, h, "content-encoding", false, out, cap, &len))
        forward_append_codings(buf, h, "transfer-encoding", h->chunked, out, cap, &len);
}

/* Works out how the final response is delimited toward the client and whether to close. */
static void forward_plan_response(struct forward *f)
{
    const struct http1_head *h = &f->resp;

    if (f->is_head || h->status == 204 || h->status == 304)
        f->resp_body = FORWARD_BODY_NONE;
    else if (h->chunked)
        f->resp_body = FORWARD_BODY_CHUNKED;
    else if (h->has_transfer_encoding)
        f->resp_body = FORWARD_BODY_CLOSE; /* a coding we cannot frame: read until close */
    else if (h->has_content_length)
        f->resp_body = h->content_length > 0 ? FORWARD_BODY_LENGTH : FORWARD_BODY_NONE;
    else
        f->resp_body = FORWARD_BODY_CLOSE;
    f->resp_left = h->content_length;
    if (f->resp_body == FORWARD_BODY_CHUNKED)
        http1_chunked_init(&f->resp_chunked);
    f->resp_chunked.allow_bare_lf = f->settings->response_limits.allow_bare_lf;
    f->resp_rechunk = f->resp_body == FORWARD_BODY_CHUNKED && !f->http10;
    f->upstream_keep = f->resp_body != FORWARD_BODY_CLOSE &&
                       (h->version_minor == 1 ? !h->conn_close : h->conn_keep_alive);
    if (!f->keepalive || !f->req_done ||
        (f->client_eof && evbuffer_get_length(sock_in(f->client)) == 0) || f->draining ||
        f->resp_body == FORWARD_BODY_CLOSE ||
        (f->resp_body == FORWARD_BODY_CHUNKED && !f->resp_rechunk))
        f->close_after = true;
}

/*
 * Keeps the media type of the response's Content-Type (what comes before a ';', without
 * white space; cut to fit) in f->content_type for the record, or "" when there is none.
 */
static void forward_note_content_type(struct forward *f, const char *buf)
{
    const struct http1_head *h = &f->resp;

    f->content_type[0] = '\0';
    for (uint32_t i = 0; i < h->nfields; i++) {
        const char *v = buf + h->fields[i].value.off;
        size_t len = h->fields[i].value.len, n = 0;

        if (!http1_span_eq_ci(buf, h->fields[i].name, "content-type"))
            continue;
        while (n < len && v[n] != ';' && v[n] != ' ' && v[n] != '\t' &&
               n + 1 < sizeof(f->content_type))
            n++;
        memcpy(f->content_type, v, n);
        f->content_type[n] = '\0';
        return;
    }
}

/* Sends the final response head to the client, rewritten for this hop. */
static struct outcome forward_send_final_head(struct forward *f, const char *buf)
{
    const struct http1_head *h = &f->resp;
    struct evbuffer *out = sock_out(f->client);
    size_t before = evbuffer_get_length(out);
    unsigned codings = forward_other_codings(buf, h, NULL);

    if (codings > 0 && f->http10 && !f->is_head && h->status != 204 && h->status != 304)
        return outcome_fail(502, "http_response_transfer_coding", TERM_SERVER, TERM_PH_RESPONSE,
                            "the upstream used a transfer coding that an HTTP/1.0 client "
                            "cannot receive");
    forward_plan_response(f);
    redact_scan(buf, h, &f->resp_secrets);
    if (h->status == 401 && forward_has_conn_auth(buf, h, "www-authenticate"))
        f->conn_auth = true;
    evbuffer_add_printf(out, "HTTP/1.1 %u ", h->status);
    evbuffer_add(out, buf + h->reason.off, h->reason.len);
    evbuffer_add(out, "\r\n", 2);
    forward_copy_fields(out, buf, h, false, NULL, 0);
    if (f->resp_body == FORWARD_BODY_LENGTH ||
        (f->resp_body == FORWARD_BODY_NONE && h->has_content_length)) {
        evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", h->content_length);
    } else if (codings > 0 && f->resp_body != FORWARD_BODY_NONE) {
        /* The body is sent as it came, so the codings applied to it go with it. */
        evbuffer_add(out, "Transfer-Encoding: ", 19);
        forward_other_codings(buf, h, out);
        evbuffer_add(out, f->resp_rechunk ? ", chunked\r\n" : "\r\n", f->resp_rechunk ? 11 : 2);
    } else if (f->resp_rechunk) {
        evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
    }
    evbuffer_add_printf(out, "Via: 1.%u sluice\r\n", h->version_minor);
    if (f->close_after)
        evbuffer_add(out, "Connection: close\r\n", 19);
    evbuffer_add(out, "\r\n", 2);
    f->received += evbuffer_get_length(out) - before;
    f->status = h->status;
    forward_note_content_type(f, buf);
    if (f->resp_capture != NULL && f->resp_body != FORWARD_BODY_NONE)
        forward_body_codings(buf, h, f->resp_capture->codings, sizeof(f->resp_capture->codings));
    f->resp_head_done = true;
    f->resp_done = f->resp_body == FORWARD_BODY_NONE;
    evbuffer_drain(sock_in(f->upstream), h->head_len);
    return outcome_of(OUTCOME_MORE);
}

/* The RFC 9209 type of a response head the parser refused with error. */
static const char *forward_head_error_type(enum http1_error error)
{
    switch (error) {
    case HTTP1_E_HEAD_TOO_LARGE:
    case HTTP1_E_TOO_MANY_FIELDS:
        return "http_response_header_section_size";
    default:
        return "http_protocol_error";
    }
}

/*
 * Parses response heads from the upstream: interim ones are relayed (bounded in number and
 * bytes, and paused while the client does not read) and parsing goes on, a 101 becomes a
 * tunnel, the final one is sent on.  MORE with f->resp_head_done once the final head went.
 */
static struct outcome forward_read_response_heads(struct forward *f)
{
    struct evbuffer *in = sock_in(f->upstream);
    size_t max_head = f->settings->response_limits.max_head;

    while (!f->resp_head_done) {
        size_t len = evbuffer_get_length(in), want;
        const char *buf;
        int64_t r;

        if (len == 0 || !relay_flow_room(&f->resp_flow))
            return outcome_of(OUTCOME_MORE);
        f->resp_started = true;
        if (f->head != NULL) {
            evbuffer_free(f->head); /* the origin answered: no retry any more */
            f->head = NULL;
        }
        want = len < max_head + 1 ? len : max_head + 1;
        buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
        r = buf != NULL ? http1_parse_head(&f->parser, buf, want) : -1;
        if (r < 0)
            return outcome_fail(
                502,
                buf != NULL ? forward_head_error_type(f->parser.error) : "proxy_internal_error",
                TERM_SERVER, TERM_PH_RESPONSE, "the upstream sent an invalid response head: %s",
                buf != NULL ? http1_error_str(f->parser.error) : "out of memory");
        if (r == 0)
            return outcome_of(OUTCOME_MORE);
        if (f->resp.status == 101) {
            if (!f->wants_upgrade)
                return outcome_fail(502, "http_protocol_error", TERM_SERVER, TERM_PH_RESPONSE,
                                    "the upstream switched protocols without being asked to");
            return forward_upgrade(f, buf);
        }
        if (f->resp.status >= 200)
            return forward_send_final_head(f, buf);
        f->interim++;
        f->interim_bytes += f->resp.head_len;
        if (f->interim > FORWARD_MAX_INTERIM || f->interim_bytes > max_head)
            return outcome_fail(502, "http_protocol_error", TERM_SERVER, TERM_PH_RESPONSE,
                                "the upstream sent more than %u interim (1xx) responses or %zu "
                                "bytes of them",
                                FORWARD_MAX_INTERIM, max_head);
        forward_send_interim(f, buf);
        evbuffer_drain(in, f->resp.head_len);
        forward_expect_response_head(f);
    }
    return outcome_of(OUTCOME_MORE);
}

/*
 * Flushes both outputs; a flow paused on an output that drained at once resumes.  True
 * when a resumed flow has input waiting, which no read event will announce.
 */
static bool forward_flush(struct forward *f)
{
    bool again = false;

    sock_flush(f->client);
    sock_flush(f->upstream);
    if (f->resp_flow.paused && evbuffer_get_length(sock_out(f->client)) <= SOCK_LOW_MARK) {
        relay_flow_resume(&f->resp_flow);
        again = evbuffer_get_length(sock_in(f->upstream)) > 0;
    }
    if (f->req_flow.paused && evbuffer_get_length(sock_out(f->upstream)) <= SOCK_LOW_MARK) {
        relay_flow_resume(&f->req_flow);
        again = again || (!f->req_done && evbuffer_get_length(sock_in(f->client)) > 0);
    }
    return again;
}

/* The response side: heads first, then the body, then whether the exchange is over. */
static struct outcome forward_relay_upstream(struct forward *f)
{
    if (!f->resp_head_done) {
        struct outcome o = forward_read_response_heads(f);
        if (o.kind != OUTCOME_MORE || !f->resp_head_done)
            return o;
    }
    if (!f->resp_done)
        return forward_relay_response(f);
    return forward_finish_if_done(f);
}

static struct outcome forward_upstream_ended(struct forward *f, bool eof);

/*
 * Moves what can move both ways and writes it; repeats (a bounded number of times) while
 * an output drained at once and its flow has input waiting.
 */
static struct outcome forward_pump(struct forward *f)
{
    struct outcome o = outcome_of(OUTCOME_MORE);

    for (int i = 0; i < 16; i++) {
        o = forward_relay_request(f);
        if (o.kind == OUTCOME_MORE)
            o = forward_relay_upstream(f);
        if (o.kind != OUTCOME_MORE) {
            sock_flush(f->client); /* a finished response starts on its way now */
            return o;
        }
        if (!forward_flush(f))
            break;
    }
    /* The upstream ended behind bytes that waited for the client: now they are gone. */
    if (o.kind == OUTCOME_MORE && f->upstream_ended && !f->resp_done &&
        evbuffer_get_length(sock_in(f->upstream)) == 0)
        return forward_upstream_ended(f, f->upstream_ended_eof);
    return o;
}

/* Starts the exchange on a connected upstream. */
struct outcome forward_begin(struct forward *f, struct sock *client, struct sock *upstream,
                             const struct sluice_settings *s, struct http1_field *fields,
                             uint32_t fields_cap, bool may_retry, bool draining)
{
    struct evbuffer *out = sock_out(upstream);
    size_t high = (size_t)s->response_limits.max_head + 4096;

    f->client = client;
    f->upstream = upstream;
    f->settings = s;
    f->fields = fields;
    f->fields_cap = fields_cap;
    f->draining = draining;
    f->may_retry = may_retry;
    relay_flow_init(&f->req_flow, client, upstream);
    relay_flow_init(&f->resp_flow, upstream, client);
    if (high < RELAY_HIGH_WATERMARK)
        high = RELAY_HIGH_WATERMARK;
    sock_set_read_limit(upstream, high);
    sock_set_reading(upstream, true);
    sock_set_reading(client, true);
    forward_expect_response_head(f);
    if (may_retry) {
        /* A pooled connection may have been closed by the origin just now: keep the head
         * so the request can be sent again on a fresh connection. */
        evbuffer_add(out, evbuffer_pullup(f->head, -1), evbuffer_get_length(f->head));
    } else {
        evbuffer_add_buffer(out, f->head);
        evbuffer_free(f->head);
        f->head = NULL;
    }
    return forward_pump(f);
}

/*
 * An origin that answers early (413 to a large upload) and closes makes our next write
 * fail, while its answer still sits unread in the receive queue.  Reads that answer and
 * relays it.  Returns true with *o set when that settled the step.
 */
static bool forward_salvage_response(struct forward *f, struct outcome *o)
{
    struct evbuffer *in = sock_in(f->upstream);

    /* Bounded: a head is at most max_head, and what follows is relayed as it goes. */
    for (int i = 0; i < 4 && sock_read_now(f->upstream, RELAY_HIGH_WATERMARK) > 0; i++)
        continue;
    if (evbuffer_get_length(in) == 0)
        return false;
    f->upstream_keep = false;
    *o = forward_pump(f);
    if (o->kind != OUTCOME_MORE || f->resp_done) {
        f->upstream_keep = false;
        return true;
    }
    return false;
}

/* The upstream ended its direction or failed. */
static struct outcome forward_upstream_ended(struct forward *f, bool eof)
{
    struct outcome o;

    if (!eof && !f->resp_head_done && forward_salvage_response(f, &o))
        return o;
    if (!f->resp_started) {
        if (f->may_retry && f->head != NULL)
            return outcome_of(OUTCOME_RETRY);
        return outcome_fail(502, "http_response_incomplete", TERM_SERVER, TERM_PH_RESPONSE,
                            eof ? "the upstream closed the connection without sending a response"
                                : "the upstream reset the connection without sending a response");
    }
    if (!f->resp_head_done)
        return outcome_fail(502, "http_response_incomplete", TERM_SERVER, TERM_PH_RESPONSE,
                            "the upstream closed the connection in the middle of the response "
                            "head");
    if (eof && f->resp_body == FORWARD_BODY_CLOSE) {
        /* Close-delimited: everything read so far is the body, and this is its end. */
        struct evbuffer *in = sock_in(f->upstream);
        f->received += evbuffer_get_length(in);
        capture_body_add_evbuffer(f->resp_capture, in, evbuffer_get_length(in));
        evbuffer_add_buffer(sock_out(f->client), in);
        f->resp_done = true;
        f->upstream_keep = false;
        o = forward_finish_if_done(f);
        sock_flush(f->client);
        return o;
    }
    if (f->resp_done) {
        f->upstream_keep = false; /* closing after a complete response: not for the pool */
        return forward_finish_if_done(f);
    }
    /* The body is cut short: the client must see a broken connection, not an end. */
    return outcome_fail(502, "http_response_incomplete", TERM_SERVER, TERM_PH_DATA,
                        "the upstream closed the connection in the middle of the body");
}

/* Something happened on the upstream: bytes, room, its end, or a failure. */
struct outcome forward_upstream_event(struct forward *f, short what)
{
    bool eof = (what & SOCK_EV_ERROR) == 0;
    struct outcome o;

    if ((what & SOCK_EV_DRAINED) != 0)
        relay_flow_resume(&f->req_flow);
    if ((what & (SOCK_EV_EOF | SOCK_EV_ERROR)) == 0)
        return forward_pump(f);
    if (!eof && !f->resp_head_done)
        return forward_upstream_ended(f, false); /* a head cut short may be salvaged */
    o = forward_pump(f);                         /* what came before the end goes first */
    if (o.kind != OUTCOME_MORE) /* a whole response is DONE (forward_finish_if_done) */
        return o;
    /* A client slower than the origin: the last bytes wait for room (a TLS read can bring
     * them and the end at once), and the end waits behind them.  A close-delimited body
     * takes them all at its end. */
    if (f->resp_head_done && evbuffer_get_length(sock_in(f->upstream)) > 0 &&
        f->resp_body != FORWARD_BODY_CLOSE) {
        f->upstream_ended = true;
        f->upstream_ended_eof = eof;
        f->upstream_keep = false;
        return outcome_of(OUTCOME_MORE);
    }
    return forward_upstream_ended(f, eof);
}

/* Something happened on the client: body bytes, room, its end, or a failure. */
struct outcome forward_client_event(struct forward *f, short what)
{
    if ((what & SOCK_EV_ERROR) != 0)
        return outcome_close(TERM_CLIENT, f->resp_head_done ? TERM_PH_DATA : TERM_PH_RESPONSE,
                             false);
    if ((what & SOCK_EV_EOF) != 0)
        f->client_eof = true; /* it may still read the response; the pump sees a cut body */
    if ((what & SOCK_EV_DRAINED) != 0)
        relay_flow_resume(&f->resp_flow);
    return forward_pump(f);
}
