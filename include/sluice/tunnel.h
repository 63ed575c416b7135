/*
 * Byte tunnels (CONNECT, and HTTP upgrades after the origin's 101) between two socks:
 * each direction moves its bytes socket -> pipe -> socket with splice(2), or through a
 * small buffer when no pipe can be had; reading a side stops while the other side cannot
 * take more; an end of stream is passed on as a half-close once the bytes before it are
 * written; the tunnel is done when both directions have ended.  The client's first bytes
 * can be held back and examined (a TLS ClientHello and its server name) before any of
 * them is relayed.  Between socks that speak TLS (an upgrade inside an inspected
 * connection), the bytes are the records' contents: they go through the socks' buffers,
 * one relay_flow each way, and an end is passed on as close_notify and a half-close.
 * Every step returns an outcome to the session.
 */
#ifndef SLUICE_TUNNEL_H
#define SLUICE_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/clienthello.h"
#include "sluice/outcome.h"
#include "sluice/pipes.h"
#include "sluice/relay.h"
#include "sluice/sock.h"

/* One direction of a tunnel; the socks are borrowed, the buffer and pipe are owned. */
struct tunnel_dir {
    struct sock *from_sock; /* the side read: its read event is this direction's */
    struct sock *to_sock;   /* the side written: its write event is this direction's */
    int from;               /* their sockets */
    int to;
    char from_side;       /* TERM_CLIENT or TERM_SERVER: who ended it when from fails */
    char to_side;         /* the same for to */
    bool reading;         /* from's read event is wanted */
    bool writing;         /* to's write event is wanted */
    int pipe[2];          /* lent by the pool while bytes sit in it, else -1 */
    size_t in_pipe;       /* bytes in the pipe */
    struct evbuffer *buf; /* bytes for to that are not in the pipe (carried over, copied) */
    bool eof;             /* from ended */
    bool shut;            /* to was half-closed after the end */
    uint64_t bytes;       /* bytes that went from -> to */
};

/* A tunnel: both directions, and what the peek found.  Embedded in the session. */
struct tunnel {
    struct tunnel_dir up;          /* client -> upstream */
    struct tunnel_dir down;        /* upstream -> client */
    struct pipes *pipes;           /* the worker's pipes; not owned */
    bool started;                  /* tunnel_begin() ran: tunnel_end() has work to do */
    bool peeking;                  /* the client's first bytes are held for the peek */
    bool holding;                  /* the peek is over; tunnel_proceed() was not called yet */
    enum clienthello_result hello; /* what the peek found */
    char *sni;                     /* the server name the ClientHello asked for, or NULL; owned */
    bool buffered;                 /* a side speaks TLS: bytes go through the socks' buffers */
    struct relay_flow up_flow;     /* buffered: client -> upstream */
    struct relay_flow down_flow;   /* buffered: upstream -> client */
};

/* What tunnel_begin() needs; nothing in it is owned. */
struct tunnel_ctx {
    struct pipes *pipes;
    sock_cb cb; /* gets every event of both socks (raw mode): call tunnel_on_event() */
    void *arg;
};

/* Makes t empty; tunnel_end() on it does nothing. */
void tunnel_init(struct tunnel *t);

/*
 * Turns the two connected socks into a tunnel: both go to raw mode with ctx->cb as their
 * callback (or, when either speaks TLS, stay buffered with ctx->cb as their callback: no
 * peek then); what they hold is relayed first: to the client, its queued output and then
 * prefix (e.g. the CONNECT's 200, or NULL); to the upstream, its queued output and then
 * the client's unread input.  With peek, the client's first
 * bytes are held until they show a whole ClientHello or are not TLS; the outcome is then
 * PEEKED and nothing of them is relayed before tunnel_proceed().  Otherwise MORE, or
 * FAIL/CLOSE when a write fails at once.
 */
struct outcome tunnel_begin(struct tunnel *t, const struct tunnel_ctx *ctx, struct sock *client,
                            struct sock *upstream, const char *prefix, bool peek);

/* After PEEKED: relays the held bytes and everything after them. */
struct outcome tunnel_proceed(struct tunnel *t);

/*
 * One tunnel event (the sock and what, EV_READ, with EV_CLOSED once the peer shut its
 * side, or EV_WRITE; the SOCK_EV_ flags when buffered; as ctx->cb got them): moves
 * bytes.  MORE; DONE once both directions ended and everything was written; PEEKED (see
 * tunnel_begin); CLOSE when a side failed (with a reset toward the client when the
 * upstream did).
 */
struct outcome tunnel_on_event(struct tunnel *t, struct sock *so, short what);

/* Frees the buffers and pipes; the socks stay with their owner.  Safe to call twice. */
void tunnel_end(struct tunnel *t);

#endif /* SLUICE_TUNNEL_H */
