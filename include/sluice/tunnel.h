/*
 * Byte tunnels (CONNECT, and HTTP upgrades after the origin's 101) between two sockets:
 * each direction moves its bytes socket -> pipe -> socket with splice(2), or through a
 * small buffer when no pipe can be had; reading a side stops while the other side cannot
 * take more; an end of stream is passed on as a half-close once the bytes before it are
 * written; the tunnel is done when both directions have ended.  The client's first bytes
 * can be held back and examined (a TLS ClientHello and its server name) before any of
 * them is relayed.  Every step returns an outcome to the session.
 */
#ifndef SLUICE_TUNNEL_H
#define SLUICE_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "sluice/clienthello.h"
#include "sluice/outcome.h"
#include "sluice/pipes.h"

/* One direction of a tunnel; the sockets are borrowed, everything else is owned. */
struct tunnel_dir {
    int from;             /* the socket read */
    int to;               /* the socket written */
    char from_side;       /* TERM_CLIENT or TERM_SERVER: who ended it when from fails */
    char to_side;         /* the same for to */
    struct event *rd;     /* readable from (persistent), added while reading */
    struct event *wr;     /* writable to (persistent), added while bytes wait for to */
    bool reading;         /* rd is added */
    bool writing;         /* wr is added */
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
    enum clienthello_result hello; /* what the peek found */
    char sni[256];                 /* the server name the ClientHello asked for, or "" */
};

/* What tunnel_begin() needs; nothing in it is owned. */
struct tunnel_ctx {
    struct event_base *base;
    struct pipes *pipes;
    event_callback_fn cb; /* runs for every tunnel event: call tunnel_on_event() */
    void *arg;
};

/* Makes t empty; tunnel_end() on it does nothing. */
void tunnel_init(struct tunnel *t);

/*
 * Turns the two connected bufferevents into a tunnel: both are disabled and their sockets
 * borrowed; what they hold (queued output, unread input) is relayed first, after prefix
 * (bytes for the client, e.g. the CONNECT's 200, or NULL).  With peek, the client's first
 * bytes are held until they show a whole ClientHello or are not TLS; the outcome is then
 * PEEKED and nothing of them is relayed before tunnel_proceed().  Otherwise MORE, or
 * FAIL/CLOSE when a write fails at once.
 */
struct outcome tunnel_begin(struct tunnel *t, const struct tunnel_ctx *ctx,
                            struct bufferevent *client, struct bufferevent *upstream,
                            const char *prefix, bool peek);

/* After PEEKED: relays the held bytes and everything after them. */
struct outcome tunnel_proceed(struct tunnel *t);

/*
 * One tunnel event (fd and what as libevent gives them to ctx->cb): moves bytes.
 * MORE; DONE once both directions ended and everything was written; PEEKED (see
 * tunnel_begin); CLOSE when a side failed (with a reset toward the client when the
 * upstream did).
 */
struct outcome tunnel_on_event(struct tunnel *t, int fd, short what);

/* Frees the events, buffers and pipes; the sockets stay with their owner.  Safe twice. */
void tunnel_end(struct tunnel *t);

#endif /* SLUICE_TUNNEL_H */
