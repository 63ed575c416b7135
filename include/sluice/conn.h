/*
 * One client connection and the exchange it is carrying: the state machine that the
 * forwarder (forward.c), the tunnel relay (tunnel.c) and the upstream side (upstream.c)
 * move along.  Everything here lives in one worker's event loop.
 *
 * Legal state transitions (conn_set_state() asserts them):
 *
 *   HEAD     -> RESOLVE | FORWARD | LINGER | CLOSED
 *   RESOLVE  -> CONNECT | LINGER | CLOSED
 *   CONNECT  -> CONNECT | FORWARD | TUNNEL | LINGER | CLOSED
 *   FORWARD  -> HEAD | RESOLVE | TUNNEL | LINGER | CLOSED
 *   TUNNEL   -> CLOSED
 *   LINGER   -> CLOSED
 */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "sluice/http1.h"
#include "sluice/identity.h"
#include "sluice/policy.h"
#include "sluice/settings.h"

struct worker;
struct resolve_query;

/* Where a connection is in its life. */
enum conn_state {
    CONN_ST_HEAD = 0, /* reading a request head (first one, or the next on keep-alive) */
    CONN_ST_RESOLVE,  /* resolving the upstream host name */
    CONN_ST_CONNECT,  /* connecting to one of the resolved addresses */
    CONN_ST_FORWARD,  /* request sent upstream; bodies and the response flow */
    CONN_ST_TUNNEL,   /* CONNECT or upgraded connection: bytes both ways */
    CONN_ST_LINGER,   /* last response queued: flush, half-close, drain, then close */
    CONN_ST_CLOSED,   /* torn down; only the free is left */
};

/* How a message body is delimited. */
enum conn_body {
    CONN_BODY_NONE = 0, /* no body */
    CONN_BODY_LENGTH,   /* Content-Length bytes */
    CONN_BODY_CHUNKED,  /* chunked transfer coding */
    CONN_BODY_CLOSE,    /* until the sender closes (responses only) */
};

/* Who ended an exchange: the first character of the termination code. */
#define CONN_END_NORMAL   '-'
#define CONN_END_CLIENT   'C'
#define CONN_END_CLIENT_T 'c'
#define CONN_END_SERVER   'S'
#define CONN_END_SERVER_T 's'
#define CONN_END_PROXY    'P'
#define CONN_END_RESOURCE 'R'
#define CONN_END_DRAIN    'D'

/* In which phase: the second character of the termination code. */
#define CONN_PH_NONE     '-'
#define CONN_PH_REQUEST  'R'
#define CONN_PH_RESOLVE  'N'
#define CONN_PH_CONNECT  'C'
#define CONN_PH_RESPONSE 'H'
#define CONN_PH_DATA     'D'
#define CONN_PH_TUNNEL   'T'

/* A client connection; owned by its worker's list, freed only by conn_close(). */
struct conn {
    struct worker *worker;                  /* the worker whose loop runs this connection */
    TAILQ_ENTRY(conn) entry;                /* in worker->conns */
    const struct sluice_settings *settings; /* the settings it started with; not owned */
    struct policy_snapshot *policy;         /* the policy it started with; one reference */
    const char *listener_tool;              /* tool its listener is bound to, or NULL */
    enum conn_state state;
    struct bufferevent *client;   /* owns the client socket */
    struct bufferevent *upstream; /* owns the upstream socket, or NULL */
    struct event *timer;          /* the deadline of the current state; owned */
    uint64_t activity_ms;         /* last time bytes moved (monotonic, ms) */
    uint32_t timer_ms;            /* length of the inactivity bound being enforced */
    char client_addr[64];         /* "ip:port" of the client, for the log */
    uint32_t requests;            /* requests started on this connection */
    bool exchange_active;         /* a request is under way and owes a log line */
    uint32_t linger_discarded;    /* bytes thrown away while lingering */

    /* Upstream side: name resolution, addresses, connect attempts. */
    struct resolve_query *resolving;   /* in-flight resolution, or NULL; owned */
    struct evutil_addrinfo *addrs;     /* resolved addresses; owned */
    struct evutil_addrinfo *addr_next; /* next address to try, inside addrs */
    int connect_errno;                 /* why the last connect attempt failed */
    struct evbuffer *pending;          /* serialised request head not yet sent; owned */
    bool upstream_reused;              /* the upstream came from the idle pool */
    bool upstream_keep;                /* the upstream may be pooled after the response */

    /* The request being handled. */
    struct http1_parser parser;
    struct http1_head head;
    struct http1_field *fields; /* parser field array (request, then response); owned */
    uint32_t fields_cap;
    char method[24];       /* the request method, truncated for the log */
    char *target;          /* the request target as received, for the log; owned */
    char host[256];        /* upstream host, normalised (request.h); IPv6 without brackets */
    bool host_is_ipv6;     /* host is IPv6 text: the Host field puts it in brackets */
    uint16_t port;         /* upstream port */
    bool is_connect;       /* CONNECT request */
    bool is_head;          /* HEAD request: the response has no body */
    bool client_http10;    /* the client spoke HTTP/1.0 */
    bool client_keepalive; /* the client allows another request on this connection */
    bool wants_upgrade;    /* the request asked for a protocol upgrade */
    enum conn_body req_body;
    uint64_t req_left; /* Content-Length bytes still to forward */
    struct http1_chunked req_chunked;
    bool req_done; /* the whole request body was forwarded */

    /* The response being relayed. */
    bool resp_head_done; /* the final response head was sent to the client */
    bool resp_started;   /* any response byte arrived from upstream */
    enum conn_body resp_body;
    uint64_t resp_left;
    struct http1_chunked resp_chunked;
    bool resp_rechunk;    /* re-frame a chunked response as chunked for the client */
    bool resp_done;       /* the whole response was queued to the client */
    bool close_after;     /* close the client connection after this response */
    bool client_eof;      /* the client half-closed after its request */
    bool upstream_paused; /* upstream reads paused: client output is full */
    bool client_paused;   /* client reads paused: upstream output is full */
    unsigned status;      /* status sent to the client, 0 if none */

    /* Tunnel. */
    bool tunnel_client_eof;   /* the client finished sending */
    bool tunnel_upstream_eof; /* the upstream finished sending */
    bool sni_done;            /* the ClientHello peek is finished */
    char sni[256];            /* server name the client asked for, or "" */

    /* Who is calling and what policy said. */
    struct identity identity;
    struct policy_decision decision;
    bool decided;                 /* decision holds this exchange's decision */
    struct policy_dest dest;      /* the address dialled (or reused), its country and ASN */
    bool dest_known;              /* dest holds the upstream of this exchange */
    struct policy_decision guard; /* the address guard's first refusal in this exchange */
    bool guard_denied;            /* guard holds a refusal */

    /* Accounting for the log line. */
    uint64_t sent;     /* bytes the client sent through us */
    uint64_t received; /* bytes we queued to the client */
    uint64_t start_ms; /* when the exchange started (monotonic, ms) */
    char term[3];      /* termination code, see CONN_END_* and CONN_PH_* */
};

/*
 * Takes over an accepted client socket fd (closed on failure) and starts reading the first
 * request head.  Returns the connection, owned by w's list, or NULL.
 */
struct conn *conn_new(struct worker *w, evutil_socket_t fd, const struct sockaddr *sa, int salen,
                      const char *listener_tool);

/* Frees what conn_close() left of c; only the worker's reaper calls it.  NULL is a no-op. */
void conn_free(struct conn *c);

/* Moves c to state st, asserting the transition is legal. */
void conn_set_state(struct conn *c, enum conn_state st);

/* Name of a state for logs. */
const char *conn_state_str(enum conn_state st);

/* Records the termination code if none was recorded yet. */
void conn_set_term(struct conn *c, char who, char phase);

/*
 * The only teardown: records the termination code (who, phase), writes the log line for an
 * exchange in progress, unlinks, stops every event and frees every member.  Safe to call
 * twice; the struct itself is freed before returning, so callers must not touch c after.
 */
void conn_close(struct conn *c, char who, char phase);

/* Closes c like conn_close(), but with a TCP reset toward the client. */
void conn_abort(struct conn *c, char who, char phase);

/*
 * Ends the exchange with a response made by sluice (status, RFC 9209 error type, what
 * happened), then lingers and closes the client connection.  The response can only be
 * sent while no response byte went to the client; otherwise the client is cut off.
 */
void conn_fail(struct conn *c, unsigned status, const char *error_type, char who, char phase,
               const char *what);

/*
 * Ends the exchange with a 403 that names the tool, host, rule and policy file of
 * c->decision (and the dialled address, when not NULL), then closes like conn_fail().
 */
void conn_deny(struct conn *c, char phase, const char *address);

/* Called when the whole request and the whole response went through (keep-alive or close). */
void conn_exchange_done(struct conn *c);

/* Called by upstream.c once c->upstream is connected: a tunnel or a forwarded request. */
void conn_upstream_ready(struct conn *c);

/* Arms the inactivity timer of the current state for ms milliseconds from now. */
void conn_timer_arm(struct conn *c, uint32_t ms);

/* Notes that bytes moved, which pushes back the inactivity deadline. */
void conn_touch(struct conn *c);

/* Monotonic milliseconds from the worker's cached loop time. */
uint64_t conn_now_ms(const struct conn *c);

/*
 * Reads up to max more bytes from bev's socket straight into its input buffer and returns
 * how many.  libevent 2.1 reads at most 4 KiB per readiness event, which caps a bulk
 * transfer at a few hundred MB/s of CPU; relays call this while the far side has room.
 * EOF and errors are left for libevent's own next read to report.
 */
size_t conn_read_more(struct bufferevent *bev, size_t max);

/* Buffer bounds: reading from one side pauses while the other side holds this much. */
#define CONN_HIGH_WATERMARK (256 * 1024)
#define CONN_LOW_WATERMARK  (64 * 1024)

#endif /* SLUICE_CONN_H */
