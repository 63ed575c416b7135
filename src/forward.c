/*
 * Plain HTTP forwarding; see include/sluice/forward.h.
 *
 * The request head is rewritten once, when it is complete.  Then two flows run at the same
 * time: the request body from the client to the upstream, and the response (interim heads,
 * the final head, the body) from the upstream to the client.  Each flow moves whole evbuffer
 * chains where it can and pauses its reader while the other side holds CONN_HIGH_WATERMARK.
 */
#include "sluice/forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "sluice/log.h"
#include "sluice/tunnel.h"
#include "sluice/upstream.h"
#include "sluice/worker.h"

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
    "host",
};

static void forward_upstream_read_cb(struct bufferevent *bev, void *arg);
static void forward_upstream_write_cb(struct bufferevent *bev, void *arg);
static void forward_upstream_event_cb(struct bufferevent *bev, short what, void *arg);
static void forward_relay_request(struct conn *c);
static void forward_relay_response(struct conn *c);

/* True when field name is named by any Connection field of the head in buf. */
static bool forward_is_connection_listed(const char *buf, const struct http1_head *h,
                                         struct http1_span name)
{
    char lname[128];

    if (name.len >= sizeof(lname))
        return false;
    memcpy(lname, buf + name.off, name.len);
    lname[name.len] = '\0';
    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];
        if (http1_span_eq_ci(buf, f->name, "connection") &&
            http1_list_has_token(buf + f->value.off, f->value.len, lname))
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

/* Appends every end-to-end field of h to out. */
static void forward_copy_fields(struct evbuffer *out, const char *buf, const struct http1_head *h,
                                bool keep_upgrade)
{
    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];
        if (forward_is_hop_field(buf, h, f->name, keep_upgrade))
            continue;
        evbuffer_add(out, buf + f->name.off, f->name.len);
        evbuffer_add(out, ": ", 2);
        evbuffer_add(out, buf + f->value.off, f->value.len);
        evbuffer_add(out, "\r\n", 2);
    }
}

/* Builds the origin-form request head for the upstream into c->pending. */
int forward_build_request(struct conn *c, const char *buf, const struct http1_target *t,
                          const char **errstr)
{
    const struct http1_head *h = &c->head;
    struct evbuffer *out;

    if (h->chunked) {
        c->req_body = CONN_BODY_CHUNKED;
        http1_chunked_init(&c->req_chunked);
    } else if (h->has_content_length && h->content_length > 0) {
        c->req_body = CONN_BODY_LENGTH;
        c->req_left = h->content_length;
    } else {
        c->req_body = CONN_BODY_NONE;
        c->req_done = true;
    }
    c->wants_upgrade = h->has_upgrade && h->conn_upgrade;
    if (c->wants_upgrade && c->req_body != CONN_BODY_NONE) {
        *errstr = "an upgrade request cannot carry a body";
        return -1;
    }

    out = evbuffer_new();
    if (out == NULL) {
        *errstr = "out of memory";
        return -1;
    }
    evbuffer_add(out, buf + h->method.off, h->method.len);
    evbuffer_add(out, " ", 1);
    /* Origin-form starts with "/": "http://h" and "http://h?q" become "/" and "/?q". */
    if (t->path.len == 0 || buf[t->path.off] == '?')
        evbuffer_add(out, "/", 1);
    evbuffer_add(out, buf + t->path.off, t->path.len);
    /* The authority in the request target decides; a differing Host is replaced. */
    evbuffer_add_printf(out, " HTTP/1.1\r\nHost: %s%s%s", c->host_is_ipv6 ? "[" : "", c->host,
                        c->host_is_ipv6 ? "]" : "");
    if (c->port != 80)
        evbuffer_add_printf(out, ":%u", c->port);
    evbuffer_add(out, "\r\n", 2);
    forward_copy_fields(out, buf, h, c->wants_upgrade);
    if (c->req_body == CONN_BODY_CHUNKED)
        evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
    else if (h->has_content_length)
        evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", h->content_length);
    evbuffer_add_printf(out, "Via: 1.%u sluice\r\n", h->version_minor);
    if (c->wants_upgrade)
        evbuffer_add_printf(out, "Connection: Upgrade\r\n");
    evbuffer_add(out, "\r\n", 2);
    c->pending = out;
    return 0;
}

/* Prepares the parser for the next response head (after the request, or after a 1xx). */
static void forward_expect_response_head(struct conn *c)
{
    http1_parser_init(&c->parser, HTTP1_RESPONSE, &c->settings->response_limits, &c->head,
                      c->fields, c->fields_cap);
}

/* The upstream is connected: send the head (a copy while a retry is still possible). */
void forward_start(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->upstream);
    size_t high = (size_t)c->settings->response_limits.max_head + 4096;

    conn_set_state(c, CONN_ST_FORWARD);
    if (high < CONN_HIGH_WATERMARK)
        high = CONN_HIGH_WATERMARK;
    bufferevent_setcb(c->upstream, forward_upstream_read_cb, forward_upstream_write_cb,
                      forward_upstream_event_cb, c);
    bufferevent_setwatermark(c->upstream, EV_READ, 0, high);
    bufferevent_setwatermark(c->upstream, EV_WRITE, CONN_LOW_WATERMARK, 0);
    bufferevent_setwatermark(c->client, EV_WRITE, CONN_LOW_WATERMARK, 0);
    bufferevent_enable(c->upstream, EV_READ | EV_WRITE);
    forward_expect_response_head(c);

    if (c->req_body == CONN_BODY_NONE && c->upstream_reused) {
        /* A pooled connection may have been closed by the origin just now: keep the head
         * so the request can be sent again on a fresh connection. */
        size_t len = evbuffer_get_length(c->pending);
        evbuffer_add(out, evbuffer_pullup(c->pending, -1), len);
    } else {
        evbuffer_add_buffer(out, c->pending);
        evbuffer_free(c->pending);
        c->pending = NULL;
    }
    conn_timer_arm(c,
                   c->req_done ? c->settings->timeout_response_ms : c->settings->timeout_idle_ms);
    forward_relay_request(c);
}

/* Moves n bytes of body data from in to out, re-framed as one chunk when chunk is true. */
static void forward_move(struct evbuffer *in, struct evbuffer *out, size_t n, bool chunk)
{
    if (chunk)
        evbuffer_add_printf(out, "%zx\r\n", n);
    evbuffer_remove_buffer(in, out, n);
    if (chunk)
        evbuffer_add(out, "\r\n", 2);
}

/*
 * Decodes chunked framing from in and moves the data to out (re-chunked when rechunk).
 * Returns the bytes consumed from in, or -1 on malformed framing.
 */
static int64_t forward_dechunk(struct http1_chunked *ch, struct evbuffer *in, struct evbuffer *out,
                               bool rechunk)
{
    int64_t total = 0;

    while (!http1_chunked_done(ch) && evbuffer_get_length(in) > 0 &&
           evbuffer_get_length(out) < CONN_HIGH_WATERMARK) {
        struct evbuffer_iovec vec;
        size_t data = 0;
        int64_t used;

        if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
            break;
        used = http1_chunked_step(ch, vec.iov_base, vec.iov_len, &data);
        if (used < 0)
            return -1;
        if (data > 0)
            forward_move(in, out, data, rechunk);
        else
            evbuffer_drain(in, (size_t)used);
        total += used;
        if (used == 0)
            break;
    }
    if (http1_chunked_done(ch) && rechunk)
        evbuffer_add(out, "0\r\n\r\n", 5);
    return total;
}

/* Moves request body bytes from the client to the upstream while the upstream keeps up. */
static void forward_relay_request(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->client);
    struct evbuffer *out = bufferevent_get_output(c->upstream);
    size_t queued = evbuffer_get_length(out);

    if (!c->client_paused && !c->req_done && evbuffer_get_length(in) > 0 &&
        queued < CONN_HIGH_WATERMARK)
        conn_read_more(c->client, CONN_HIGH_WATERMARK - queued);
    while (!c->req_done && evbuffer_get_length(in) > 0) {
        if (evbuffer_get_length(out) >= CONN_HIGH_WATERMARK) {
            bufferevent_disable(c->client, EV_READ);
            c->client_paused = true;
            return;
        }
        if (c->req_body == CONN_BODY_LENGTH) {
            size_t n = evbuffer_get_length(in);
            if (n > c->req_left)
                n = (size_t)c->req_left;
            evbuffer_remove_buffer(in, out, n);
            c->req_left -= n;
            c->sent += n;
            c->req_done = c->req_left == 0;
        } else {
            int64_t used = forward_dechunk(&c->req_chunked, in, out, true);
            if (used < 0) {
                conn_fail(c, 400, "http_request_error", CONN_END_PROXY, CONN_PH_DATA,
                          http1_error_str(c->req_chunked.error));
                return;
            }
            c->sent += (uint64_t)used;
            c->req_done = http1_chunked_done(&c->req_chunked);
            if (used == 0)
                break;
        }
        conn_touch(c);
    }
    if (c->req_done && !c->resp_started)
        conn_timer_arm(c, c->settings->timeout_response_ms);
}

/* Finishes the exchange once both directions are complete, pooling the upstream if it can. */
static void forward_finish_if_done(struct conn *c)
{
    if (!c->resp_done)
        return;
    if (!c->req_done) {
        /* The origin answered before the whole body arrived; the connection cannot be
         * kept, and the client was told so in the response head. */
        c->close_after = true;
        c->upstream_keep = false;
    }
    if (c->upstream_keep && evbuffer_get_length(bufferevent_get_input(c->upstream)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(c->upstream)) == 0 &&
        !worker_is_draining(c->worker)) {
        upstream_pool_put(c->worker->pool, c->host, c->port, c->upstream);
        c->upstream = NULL;
    }
    conn_exchange_done(c);
}

/* Moves response body bytes from the upstream to the client while the client keeps up. */
static void forward_relay_response(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->upstream);
    struct evbuffer *out = bufferevent_get_output(c->client);
    size_t before = evbuffer_get_length(out);

    if (!c->upstream_paused && evbuffer_get_length(in) > 0 && before < CONN_HIGH_WATERMARK)
        conn_read_more(c->upstream, CONN_HIGH_WATERMARK - before);
    while (!c->resp_done && evbuffer_get_length(in) > 0) {
        if (evbuffer_get_length(out) >= CONN_HIGH_WATERMARK) {
            bufferevent_disable(c->upstream, EV_READ);
            c->upstream_paused = true;
            break;
        }
        if (c->resp_body == CONN_BODY_LENGTH || c->resp_body == CONN_BODY_CLOSE) {
            size_t n = evbuffer_get_length(in);
            if (c->resp_body == CONN_BODY_LENGTH && n > c->resp_left)
                n = (size_t)c->resp_left;
            evbuffer_remove_buffer(in, out, n);
            if (c->resp_body == CONN_BODY_LENGTH) {
                c->resp_left -= n;
                c->resp_done = c->resp_left == 0;
            }
        } else {
            int64_t used = forward_dechunk(&c->resp_chunked, in, out, c->resp_rechunk);
            if (used < 0) {
                log_info("%s: invalid chunked response from %s: %s", c->client_addr, c->host,
                         http1_error_str(c->resp_chunked.error));
                c->received += evbuffer_get_length(out) - before;
                conn_fail(c, 502, "http_protocol_error", CONN_END_SERVER, CONN_PH_DATA,
                          "the upstream sent an invalid chunked body");
                return;
            }
            c->resp_done = http1_chunked_done(&c->resp_chunked);
            if (used == 0)
                break;
        }
    }
    c->received += evbuffer_get_length(out) - before;
    conn_touch(c);
    forward_finish_if_done(c);
}

/* Writes an interim (1xx) head to a client that understands one. */
static void forward_send_interim(struct conn *c, const char *buf)
{
    const struct http1_head *h = &c->head;
    struct evbuffer *out = bufferevent_get_output(c->client);
    size_t before = evbuffer_get_length(out);

    if (c->client_http10)
        return; /* HTTP/1.0 has no interim responses */
    evbuffer_add_printf(out, "HTTP/1.1 %u ", h->status);
    evbuffer_add(out, buf + h->reason.off, h->reason.len);
    evbuffer_add(out, "\r\n", 2);
    forward_copy_fields(out, buf, h, false);
    evbuffer_add(out, "\r\n", 2);
    c->received += evbuffer_get_length(out) - before;
}

/* Switches to a tunnel after the origin agreed to the upgrade the client asked for. */
static void forward_upgrade(struct conn *c, const char *buf)
{
    const struct http1_head *h = &c->head;
    struct evbuffer *out = bufferevent_get_output(c->client);
    size_t before = evbuffer_get_length(out);

    evbuffer_add(out, "HTTP/1.1 101 ", 13);
    evbuffer_add(out, buf + h->reason.off, h->reason.len);
    evbuffer_add(out, "\r\n", 2);
    forward_copy_fields(out, buf, h, true);
    evbuffer_add_printf(out, "Via: 1.1 sluice\r\nConnection: Upgrade\r\n\r\n");
    c->received += evbuffer_get_length(out) - before;
    c->status = 101;
    c->resp_head_done = true;
    evbuffer_drain(bufferevent_get_input(c->upstream), h->head_len);
    tunnel_start(c, false);
}

/* Works out how the final response is delimited toward the client and whether to close. */
static void forward_plan_response(struct conn *c)
{
    const struct http1_head *h = &c->head;

    if (c->is_head || h->status == 204 || h->status == 304)
        c->resp_body = CONN_BODY_NONE;
    else if (h->chunked)
        c->resp_body = CONN_BODY_CHUNKED;
    else if (h->has_transfer_encoding)
        c->resp_body = CONN_BODY_CLOSE; /* a coding we cannot frame: read until close */
    else if (h->has_content_length)
        c->resp_body = h->content_length > 0 ? CONN_BODY_LENGTH : CONN_BODY_NONE;
    else
        c->resp_body = CONN_BODY_CLOSE;
    c->resp_left = h->content_length;
    if (c->resp_body == CONN_BODY_CHUNKED)
        http1_chunked_init(&c->resp_chunked);
    c->resp_chunked.allow_bare_lf = c->settings->response_limits.allow_bare_lf;
    c->resp_rechunk = c->resp_body == CONN_BODY_CHUNKED && !c->client_http10;
    c->upstream_keep = c->resp_body != CONN_BODY_CLOSE &&
                       (h->version_minor == 1 ? !h->conn_close : h->conn_keep_alive);
    if (!c->client_keepalive || !c->req_done ||
        (c->client_eof && evbuffer_get_length(bufferevent_get_input(c->client)) == 0) ||
        worker_is_draining(c->worker) || c->resp_body == CONN_BODY_CLOSE ||
        (c->resp_body == CONN_BODY_CHUNKED && !c->resp_rechunk))
        c->close_after = true;
}

/* Sends the final response head to the client, rewritten for this hop. */
static void forward_send_final_head(struct conn *c, const char *buf)
{
    const struct http1_head *h = &c->head;
    struct evbuffer *out = bufferevent_get_output(c->client);
    size_t before = evbuffer_get_length(out);

    forward_plan_response(c);
    evbuffer_add_printf(out, "HTTP/1.1 %u ", h->status);
    evbuffer_add(out, buf + h->reason.off, h->reason.len);
    evbuffer_add(out, "\r\n", 2);
    forward_copy_fields(out, buf, h, false);
    if (c->resp_body == CONN_BODY_LENGTH ||
        (c->resp_body == CONN_BODY_NONE && h->has_content_length))
        evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", h->content_length);
    else if (c->resp_rechunk)
        evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
    evbuffer_add_printf(out, "Via: 1.%u sluice\r\n", h->version_minor);
    if (c->close_after)
        evbuffer_add_printf(out, "Connection: close\r\n");
    evbuffer_add(out, "\r\n", 2);
    c->received += evbuffer_get_length(out) - before;
    c->status = h->status;
    c->resp_head_done = true;
    c->resp_done = c->resp_body == CONN_BODY_NONE;
    evbuffer_drain(bufferevent_get_input(c->upstream), h->head_len);
    conn_timer_arm(c, c->settings->timeout_idle_ms);
}

/*
 * Parses response heads from the upstream: interim ones are relayed and parsing goes on,
 * a 101 becomes a tunnel, the final one is sent on.  Returns true once the final head went.
 */
static bool forward_read_response_heads(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->upstream);

    while (!c->resp_head_done) {
        size_t len = evbuffer_get_length(in), want;
        const char *buf;
        int64_t r;

        if (len == 0)
            return false;
        c->resp_started = true;
        if (c->pending != NULL) {
            evbuffer_free(c->pending); /* the origin answered: no retry any more */
            c->pending = NULL;
        }
        want = len < (size_t)c->settings->response_limits.max_head + 1
                   ? len
                   : (size_t)c->settings->response_limits.max_head + 1;
        buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
        r = buf != NULL ? http1_parse_head(&c->parser, buf, want) : -1;
        if (r < 0) {
            char what[160];
            snprintf(what, sizeof(what), "the upstream sent an invalid response head: %s",
                     buf != NULL ? http1_error_str(c->parser.error) : "out of memory");
            conn_fail(c, 502, "http_protocol_error", CONN_END_SERVER, CONN_PH_RESPONSE, what);
            return false;
        }
        if (r == 0)
            return false;
        if (c->head.status == 101) {
            if (!c->wants_upgrade) {
                conn_fail(c, 502, "http_protocol_error", CONN_END_SERVER, CONN_PH_RESPONSE,
                          "the upstream switched protocols without being asked to");
                return false;
            }
            forward_upgrade(c, buf);
            return false;
        }
        if (c->head.status < 200) {
            forward_send_interim(c, buf);
            evbuffer_drain(in, c->head.head_len);
            forward_expect_response_head(c);
            continue;
        }
        forward_send_final_head(c, buf);
    }
    return true;
}

/* Upstream bytes arrived: response heads first, then the body. */
static void forward_upstream_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (c->state != CONN_ST_FORWARD)
        return;
    if (!c->resp_head_done && !forward_read_response_heads(c))
        return;
    if (c->state == CONN_ST_FORWARD && !c->resp_done)
        forward_relay_response(c);
    else if (c->state == CONN_ST_FORWARD)
        forward_finish_if_done(c);
}

/* The upstream's output drained: let the client send more body. */
static void forward_upstream_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (c->state != CONN_ST_FORWARD)
        return;
    if (c->client_paused) {
        c->client_paused = false;
        bufferevent_enable(c->client, EV_READ);
    }
    forward_relay_request(c);
}

/* Sends a request that met a dead pooled connection again on a fresh one. */
static void forward_retry(struct conn *c)
{
    log_info("%s: pooled connection to %s:%u was closed, retrying on a new one", c->client_addr,
             c->host, c->port);
    bufferevent_free(c->upstream);
    c->upstream = NULL;
    c->upstream_reused = false;
    upstream_start(c, false);
}

/*
 * An origin that answers early (413 to a large upload) and closes makes our next write
 * fail, while its answer still sits unread in the receive queue.  Reads that answer and
 * relays it.  Returns true when that settled the exchange (c may be closed then).
 */
static bool forward_salvage_response(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->upstream);

    /* Bounded: a head is at most max_head, and what follows is relayed as it goes. */
    for (int i = 0; i < 4 && conn_read_more(c->upstream, CONN_HIGH_WATERMARK) > 0; i++)
        continue;
    if (evbuffer_get_length(in) == 0)
        return false;
    c->upstream_keep = false;
    forward_upstream_read_cb(c->upstream, c);
    return c->state != CONN_ST_FORWARD || c->resp_done;
}

/* The upstream closed or failed. */
static void forward_upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    bool eof = (what & BEV_EVENT_EOF) != 0 && (what & BEV_EVENT_ERROR) == 0;

    (void)bev;
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0 || c->state != CONN_ST_FORWARD)
        return;
    if ((what & BEV_EVENT_ERROR) != 0 && !c->resp_head_done && forward_salvage_response(c))
        return;
    if (!c->resp_started) {
        if (c->upstream_reused && c->pending != NULL) {
            forward_retry(c);
            return;
        }
        conn_fail(c, 502, "http_response_incomplete", CONN_END_SERVER, CONN_PH_RESPONSE,
                  eof ? "the upstream closed the connection without sending a response"
                      : "the upstream reset the connection without sending a response");
        return;
    }
    if (!c->resp_head_done) {
        conn_fail(c, 502, "http_response_incomplete", CONN_END_SERVER, CONN_PH_RESPONSE,
                  "the upstream closed the connection in the middle of the response head");
        return;
    }
    if (eof && c->resp_body == CONN_BODY_CLOSE) {
        /* Close-delimited: everything read so far is the body, and this is its end. */
        struct evbuffer *in = bufferevent_get_input(c->upstream);
        c->received += evbuffer_get_length(in);
        evbuffer_add_buffer(bufferevent_get_output(c->client), in);
        c->resp_done = true;
        c->upstream_keep = false;
        forward_finish_if_done(c);
        return;
    }
    if (c->resp_done)
        return; /* a pooled-to-be connection closing after a complete response */
    /* The body is cut short: the client must see a broken connection, not an end. */
    conn_fail(c, 502, "http_response_incomplete", CONN_END_SERVER, CONN_PH_DATA,
              "the upstream closed the connection in the middle of the body");
}

/* Client bytes while forwarding: request body, or the next pipelined request waiting. */
void forward_client_readable(struct conn *c)
{
    if (!c->req_done)
        forward_relay_request(c);
}

/* The client's output drained below the low watermark: resume reading the upstream. */
void forward_client_drained(struct conn *c)
{
    if (!c->upstream_paused)
        return;
    c->upstream_paused = false;
    bufferevent_enable(c->upstream, EV_READ);
    forward_relay_response(c);
}

/* The client closed or failed while a request was being forwarded. */
void forward_client_event(struct conn *c, short what)
{
    if ((what & BEV_EVENT_EOF) != 0 && (what & BEV_EVENT_ERROR) == 0 && c->req_done) {
        c->client_eof = true; /* it may still read the response */
        return;
    }
    conn_close(c, CONN_END_CLIENT, c->resp_head_done ? CONN_PH_DATA : CONN_PH_RESPONSE);
}
