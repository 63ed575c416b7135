/*
 * One client connection and the exchanges it carries.  The session is the one place that
 * drives a connection through its phases: it owns both sockets and every libevent callback
 * on them, hands bytes to the relay of the current phase (forward, tunnel) or to the dial,
 * and acts on the outcome each returns (session_advance).  Everything here runs in one
 * worker's event loop.
 *
 * Where TLS inspection plugs in: a CONNECT that policy inspects is answered by sluice
 * itself, its ClientHello read in the HEAD state (the server name checked, h2-only clients
 * spliced), and the client sock turned to TLS with a certificate for that name; from then
 * on the connection reads requests exactly as a CONNECT to connect_http_port does, each
 * decided and forwarded on the one HTTP path, to an upstream sock that speaks verified TLS.
 * Nothing below the session needs to know: a sock is a sock.
 *
 * Legal state transitions (session_set_state() asserts them):
 *
 *   HEAD     -> RESOLVE | FORWARD | LINGER | CLOSED
 *   RESOLVE  -> CONNECT | LINGER | CLOSED
 *   CONNECT  -> CONNECT | FORWARD | TUNNEL | LINGER | CLOSED
 *   FORWARD  -> HEAD | RESOLVE | TUNNEL | LINGER | CLOSED
 *   TUNNEL   -> CLOSED
 *   LINGER   -> CLOSED
 */
#ifndef SLUICE_SESSION_H
#define SLUICE_SESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "sluice/capture.h"
#include "sluice/clientcap.h"
#include "sluice/credentials.h"
#include "sluice/proclookup.h"
#include "sluice/dial.h"
#include "sluice/forward.h"
#include "sluice/http1.h"
#include "sluice/exehash.h"
#include "sluice/identity.h"
#include "sluice/pipes.h"
#include "sluice/policy.h"
#include "sluice/pool.h"
#include "sluice/redact.h"
#include "sluice/request.h"
#include "sluice/settings.h"
#include "sluice/sock.h"
#include "sluice/tunnel.h"

struct tls;

/* Where a connection is in its life. */
enum session_state {
    SESSION_ST_HEAD = 0, /* reading a request head (the first, or the next on keep-alive) */
    SESSION_ST_RESOLVE,  /* resolving the upstream host name */
    SESSION_ST_CONNECT,  /* connecting to one of the resolved addresses */
    SESSION_ST_FORWARD,  /* the request went upstream; bodies and the response flow */
    SESSION_ST_TUNNEL,   /* CONNECT, or an upgraded connection: bytes both ways */
    SESSION_ST_LINGER,   /* the last response is queued: flush, half-close, drain, close */
    SESSION_ST_CLOSED,   /* torn down; only the free is left */
};

struct session;
TAILQ_HEAD(session_list, session);

/*
 * What a worker lends its sessions: its loop and resolver, its upstream pool and pipes,
 * and the lists a session files itself in.  Owned by the worker; sessions only use it.
 */
struct session_env {
    struct event_base *base;
    struct evdns_base *dns;
    struct pool *pool;
    struct pipes *pipes;
    const struct sluice_settings *settings;
    struct session_list live; /* open sessions */
    struct session_list dead; /* closed sessions waiting for the reaper */
    size_t nlive;
    struct event *reap;          /* activated by a close: frees the dead after the callback */
    bool draining;               /* finished exchanges close their connection */
    atomic_uint *open_total;     /* open client connections across all workers */
    struct clientcap *clientcap; /* connections per client address, or NULL: no cap */
    struct proclookup *lookups;  /* the worker's process lookup thread, or NULL: none */
    struct tls *tls;             /* the TLS layer for inspection, or NULL: no CA configured */
};

/* How a connection came in: what its listener says of it, and what the worker did. */
struct session_arrival {
    const char *listener_tool; /* the tool the listener is bound to, or NULL */
    bool ask_credentials;      /* the listener answers 407 to a request without credentials */
    bool cap_held;             /* the peer was counted in env->clientcap (released at close) */
    bool proxy_header;         /* the peer is a trusted balancer: a PROXY header comes first */
};

/* The upstream connection kept for one client after connection-bound authentication. */
struct session_pinned {
    struct sock *so;              /* the connection, or NULL */
    union netguard_sockaddr peer; /* the address it was dialled to */
    char host[REQUEST_HOST_MAX];
    uint16_t port;
    char owner[POOL_OWNER_MAX]; /* the identity it authenticated */
};

/* Bytes of a User-Agent the record keeps; a longer one is cut there, ending in "...". */
#define SESSION_UA_MAX 512

/* Everything that belongs to one request; reset in one place (session_reset_exchange). */
struct exchange {
    bool active;                      /* under way: owes an access line */
    uint64_t start_ms;                /* when its first byte came (monotonic, ms) */
    struct request req;               /* what it asks for */
    char *target;                     /* the target as received, for the log; owned */
    char *user_agent;                 /* its User-Agent, cut at SESSION_UA_MAX, or NULL; owned */
    struct redact_seen req_secrets;   /* its secret fields, for the record */
    char *path;                       /* the normalised path policy decided on; owned, or NULL */
    const char *raw_path;             /* the path as received, inside target; or NULL */
    const char *plain_path;           /* path without segment parameters, inside path's
                                         allocation; NULL when it has none */
    const char *literal_path;         /* path with its dot segments kept, inside path's
                                         allocation; NULL when it has none */
    unsigned path_flags;              /* URLPATH_F_* seen while normalising the path */
    struct identity identity;         /* who asked */
    struct policy_decision decision;  /* what policy said of the request */
    bool decided;                     /* decision holds it */
    struct policy_decision refusal;   /* the address guard's refusal, when it refused */
    bool refused;                     /* the guard, not the request decision, refused */
    struct policy_dest dest;          /* the address dialled (or refused), country, ASN */
    bool dest_known;                  /* dest holds it */
    struct forward fwd;               /* the HTTP relay of this exchange */
    struct tunnel tun;                /* the byte relay, once it is a tunnel */
    uint64_t head_bytes;              /* request head bytes taken from the client */
    bool head_passed;                 /* the head went upstream (or opened the tunnel) */
    uint64_t upload_start_ms;         /* when the request body began to flow, or 0 */
    uint64_t upload_paused_ms;        /* of the time since, how long sluice held it back */
    uint64_t own_bytes;               /* bytes of responses sluice wrote itself */
    unsigned status;                  /* status sent to the client, 0 if none */
    const char *error_type;           /* RFC 9209 type of a failure (static), or NULL */
    bool failure_logged;              /* its message is logged already (a block) */
    char term[3];                     /* termination code: TERM_* then TERM_PH_* */
    const char *tls_mode;             /* "splice" or "inspect" when TLS was seen (static) */
    char *set_names;                  /* names of the fields request_headers set, "a,b"; owned,
                                         or NULL */
    uint64_t interim_ms;              /* when its last interim record was made, or 0 */
    struct capture_body req_capture;  /* the request body as it passes, when policy keeps it */
    struct capture_body resp_capture; /* the response body, likewise */
    struct capture_ref req_captured;  /* what became of the request body's capture, once
                                         the exchange is over */
    struct capture_ref resp_captured; /* and of the response body's */
};

/* A client connection; on its env's live list, freed by the reaper after session_close(). */
struct session {
    struct session_env *env;        /* the worker's loop and resources; not owned */
    TAILQ_ENTRY(session) entry;     /* in env->live, then env->dead */
    struct policy_snapshot *policy; /* the newest policy when the request began; one ref */
    const char *listener_tool;      /* tool its listener is bound to, or NULL */
    bool ask_credentials;           /* its listener answers 407 to a request without them */
    enum session_state state;
    struct sock *client;                   /* the client connection; owned */
    struct sock *upstream;                 /* the upstream connection in use, or NULL; owned */
    union netguard_sockaddr upstream_peer; /* the address it was dialled to */
    struct event *timer;                   /* the deadline of the current state; owned */
    struct event *rate_timer;              /* checks the minimum upload rate each second; owned */
    uint64_t activity_ms;                  /* last time bytes moved (monotonic, ms) */
    uint32_t timer_ms;                     /* length of the inactivity bound being enforced */
    char client_addr[64];                  /* "ip:port" of the client, for the log */
    union netguard_sockaddr client_sa;     /* the client's address, counted in env->clientcap */
    bool cap_held; /* client_sa is counted in env->clientcap (release it at close) */
    struct capture_share capture_share; /* the client's share, which its captured bodies use */
    bool proxy_header;             /* a PROXY protocol header from a trusted balancer comes first */
    struct proclookup_record proc; /* the local process behind the connection, when known */
    struct proclookup_job *lookup; /* its lookup while under way, or NULL */
    bool head_waiting;             /* the first head is complete and waits for the lookup */
    sa_family_t lookup_family;     /* the lookup starts with the first byte: the peer's
                                      family (AF_UNIX, or client_sa's), or 0 for none */
    bool lookup_refused;           /* the lookup could not be queued: the first request is
                                      refused (503), never let out unidentified */
    bool unix_client;              /* the client came over a Unix socket */
    bool process_unseen;           /* the lookup ran and found no process (gone, hidden, past
                                      its bound): policy refuses where that matters */
    uint32_t requests;             /* requests started on this connection */
    struct request *http_tunnel;   /* after a CONNECT to connect_http_port: its host and port,
                                      where every request read after it goes; owned, or NULL */
    char *tunnel_auth;             /* that CONNECT's Proxy-Authorization, which the requests
                                      inside do not repeat; owned, or NULL */
    bool hello_wait;               /* an inspected CONNECT was answered: its ClientHello is
                                      read next (HEAD state, the CONNECT's exchange active) */
    bool client_tls_handshake;     /* the client's TLS handshake with sluice is under way */
    bool inspecting;               /* the client's TLS ends here: http_tunnel's requests are
                                      read from it, and go upstream over TLS */
    bool splice_after_hello;       /* the ClientHello was read, and the tunnel is spliced */
    bool upstream_tls_handshake;   /* the upstream's TLS handshake is under way (CONNECT) */
    char *tls_sni;                 /* the inspected tunnel's server name, or NULL; owned */
    uint32_t linger_discarded;     /* bytes thrown away while lingering */
    size_t linger_left;            /* output left at the last sign of progress while lingering */
    bool linger_shut;              /* lingering: the client was half-closed */
    bool client_eof;               /* the client half-closed after a complete request */
    bool upstream_reused;          /* the upstream came from the pool or was pinned */
    bool upstream_pinned;          /* the upstream is the one pinned to this client */
    struct dial *dial; /* reaching the upstream, while it is under way; owned, or NULL */
    struct session_pinned *pinned; /* kept for connection-bound authentication; owned */
    struct http1_parser parser;    /* the request head being read */
    struct http1_head head;
    struct http1_field *fields; /* field array for request and response heads; owned */
    uint32_t fields_cap;
    struct exchange x; /* the request under way */
};

/*
 * Takes over an accepted client socket fd (closed on failure) and starts reading the first
 * request head.  With a->cap_held, sa was counted in env->clientcap (released at close).
 * With a->proxy_header, sa is a load balancer trusted for the PROXY protocol: its header
 * comes first and names the client, who is then counted instead.  Returns the session, on
 * env's live list, or NULL (when the caller still holds the count).
 */
struct session *session_new(struct session_env *env, evutil_socket_t fd, const struct sockaddr *sa,
                            const struct session_arrival *a);

/* Frees what session_close() left of s; only the worker's reaper calls it.  NULL is a no-op. */
void session_free(struct session *s);

/*
 * The only teardown: records the termination code (who, phase), writes the access line
 * of an exchange under way, stops every event, closes both sockets, frees every member and
 * moves s to env's dead list, from which the reaper frees it after the current callback.
 * Safe to call twice; s stays valid until the reaper runs.
 */
void session_close(struct session *s, char who, char phase);

/* The worker began draining: closes s when it sits idle between requests. */
void session_drain(struct session *s);

/*
 * A new policy was installed: an exchange under way -- resolving, connecting, forwarded or
 * tunnelled -- is decided again on it (the request, and the address dialled or being
 * connected to) and, when the new policy blocks it, ends with termination code K and its
 * access line: a 403 while no response byte has gone out, else a cut connection.  A
 * connection between requests, or still reading a head, takes the new policy when its
 * next head is complete.
 */
void session_policy_changed(struct session *s);

/*
 * Makes an interim record of the exchange under way (a tunnel, or a request whose
 * response still streams) when it began, or had its last interim record, every_ms ago or
 * more: what it moved so far, so that a connection that lives for a day is in the audit
 * trail before it ends.  Nothing for an exchange not yet passed on.
 */
void session_interim(struct session *s, uint32_t every_ms);

/* Name of a state for logs. */
const char *session_state_str(enum session_state st);

#endif /* SLUICE_SESSION_H */
