/*
 * Byte tunnels; see include/sluice/tunnel.h.  The relay follows libevent's le-proxy sample:
 * whatever one side's input holds is appended to the other side's output, and reading from
 * a side stops while the other side's output is above CONN_HIGH_WATERMARK, resuming once
 * that output is empty.  An EOF is passed on as a half-close once the bytes before it are
 * written; the tunnel ends when both directions have ended.
 */
#include "sluice/tunnel.h"

#include <stdlib.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "sluice/clienthello.h"
#include "sluice/log.h"

static void tunnel_upstream_read_cb(struct bufferevent *bev, void *arg);
static void tunnel_upstream_write_cb(struct bufferevent *bev, void *arg);
static void tunnel_upstream_event_cb(struct bufferevent *bev, short what, void *arg);

/* Holds the client's first bytes until they show a whole ClientHello or are not TLS. */
static bool tunnel_peek_sni(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->client);
    size_t len = evbuffer_get_length(in);
    size_t want = len < CLIENTHELLO_MAX_BYTES ? len : CLIENTHELLO_MAX_BYTES;
    const uint8_t *p;
    enum clienthello_result r;

    if (c->sni_done)
        return true;
    if (len == 0)
        return false;
    p = evbuffer_pullup(in, (ev_ssize_t)want);
    r = p != NULL ? clienthello_parse(p, want, c->sni, sizeof(c->sni)) : CLIENTHELLO_MALFORMED;
    if (r == CLIENTHELLO_NEED_MORE && !c->tunnel_client_eof)
        return false;
    c->sni_done = true;
    log_debug("%s: tunnel to %s:%u: ClientHello %s, sni=%s", c->client_addr, c->host, c->port,
              clienthello_result_str(r), c->sni[0] ? c->sni : "-");
    return true;
}

/* Half-closes toward a side whose peer has ended once everything before the end is written. */
static void tunnel_propagate_eof(struct conn *c)
{
    if (c->tunnel_client_eof && c->upstream != NULL &&
        evbuffer_get_length(bufferevent_get_output(c->upstream)) == 0)
        (void)shutdown(bufferevent_getfd(c->upstream), SHUT_WR);
    if (c->tunnel_upstream_eof && evbuffer_get_length(bufferevent_get_output(c->client)) == 0)
        (void)shutdown(bufferevent_getfd(c->client), SHUT_WR);
    if (c->tunnel_client_eof && c->tunnel_upstream_eof &&
        evbuffer_get_length(bufferevent_get_output(c->client)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(c->upstream)) == 0)
        conn_close(c, CONN_END_NORMAL, CONN_PH_TUNNEL);
}

/* Moves all of from's input to to's output; pauses from while to is full. */
static void tunnel_move(struct conn *c, struct bufferevent *from, struct bufferevent *to,
                        bool *from_paused, uint64_t *counter)
{
    struct evbuffer *in = bufferevent_get_input(from);
    struct evbuffer *out = bufferevent_get_output(to);
    size_t n, queued = evbuffer_get_length(out);

    if (!*from_paused && evbuffer_get_length(in) > 0 && queued < CONN_HIGH_WATERMARK)
        conn_read_more(from, CONN_HIGH_WATERMARK - queued);
    n = evbuffer_get_length(in);
    if (n == 0)
        return;
    *counter += n;
    evbuffer_add_buffer(out, in);
    conn_touch(c);
    if (evbuffer_get_length(out) >= CONN_HIGH_WATERMARK) {
        bufferevent_disable(from, EV_READ);
        *from_paused = true;
    }
}

/* Client to upstream, after the ClientHello peek. */
static void tunnel_pump_client(struct conn *c)
{
    if (!tunnel_peek_sni(c))
        return;
    tunnel_move(c, c->client, c->upstream, &c->client_paused, &c->sent);
}

/* Upstream to client. */
static void tunnel_pump_upstream(struct conn *c)
{
    tunnel_move(c, c->upstream, c->client, &c->upstream_paused, &c->received);
}

/* Turns the connection into a tunnel and relays what both sides already sent. */
void tunnel_start(struct conn *c, bool peek_sni)
{
    conn_set_state(c, CONN_ST_TUNNEL);
    c->sni_done = !peek_sni;
    c->client_paused = c->upstream_paused = false;
    /* An idle tunnel keeps nothing it does not need: the head parser's field array goes. */
    free(c->fields);
    c->fields = NULL;
    c->fields_cap = 0;
    bufferevent_setcb(c->upstream, tunnel_upstream_read_cb, tunnel_upstream_write_cb,
                      tunnel_upstream_event_cb, c);
    /* Write callbacks fire on an empty output: that resumes the paused reader and is when
     * a half-close can be passed on. */
    bufferevent_setwatermark(c->client, EV_WRITE, 0, 0);
    bufferevent_setwatermark(c->upstream, EV_WRITE, 0, 0);
    bufferevent_setwatermark(c->client, EV_READ, 0, CLIENTHELLO_MAX_BYTES + 1);
    bufferevent_setwatermark(c->upstream, EV_READ, 0, 0);
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    bufferevent_enable(c->upstream, EV_READ | EV_WRITE);
    conn_timer_arm(c, c->settings->timeout_tunnel_ms);
    tunnel_pump_client(c);
    tunnel_pump_upstream(c);
}

/* Client bytes arrived. */
void tunnel_client_readable(struct conn *c)
{
    tunnel_pump_client(c);
}

/* The client's output is empty: resume the upstream, pass on an upstream EOF. */
void tunnel_client_drained(struct conn *c)
{
    if (c->upstream_paused) {
        c->upstream_paused = false;
        bufferevent_enable(c->upstream, EV_READ);
        tunnel_pump_upstream(c);
    }
    tunnel_propagate_eof(c);
}

/* The client ended its direction, or failed. */
void tunnel_client_event(struct conn *c, short what)
{
    if ((what & BEV_EVENT_ERROR) != 0) {
        conn_close(c, CONN_END_CLIENT, CONN_PH_TUNNEL);
        return;
    }
    if ((what & BEV_EVENT_EOF) == 0)
        return;
    c->tunnel_client_eof = true;
    conn_set_term(c, CONN_END_CLIENT, CONN_PH_TUNNEL);
    tunnel_pump_client(c);
    tunnel_propagate_eof(c);
}

/* Upstream bytes arrived. */
static void tunnel_upstream_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    tunnel_pump_upstream(arg);
}

/* The upstream's output is empty: resume the client, pass on a client EOF. */
static void tunnel_upstream_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (c->client_paused) {
        c->client_paused = false;
        bufferevent_enable(c->client, EV_READ);
        tunnel_pump_client(c);
    }
    tunnel_propagate_eof(c);
}

/* The upstream ended its direction, or failed. */
static void tunnel_upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if ((what & BEV_EVENT_ERROR) != 0) {
        conn_abort(c, CONN_END_SERVER, CONN_PH_TUNNEL);
        return;
    }
    if ((what & BEV_EVENT_EOF) == 0)
        return;
    c->tunnel_upstream_eof = true;
    conn_set_term(c, CONN_END_SERVER, CONN_PH_TUNNEL);
    tunnel_pump_upstream(c);
    tunnel_propagate_eof(c);
}
