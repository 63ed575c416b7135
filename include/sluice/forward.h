/*
 * Plain HTTP forwarding of one exchange: the request head rewritten for the origin
 * (absolute-form to origin-form, Host from the target, hop-by-hop fields removed, Via
 * added), the request and response bodies streamed with back-pressure and re-framed,
 * interim responses bounded, and upgrades.  The session owns the two socks and lends
 * them; every step returns an outcome (more, done, upgrade, retry, fail) to it.
 */
#ifndef SLUICE_FORWARD_H
#define SLUICE_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/capture.h"
#include "sluice/http1.h"
#include "sluice/outcome.h"
#include "sluice/redact.h"
#include "sluice/relay.h"
#include "sluice/request.h"
#include "sluice/settings.h"
#include "sluice/sock.h"

/* Interim (1xx) responses relayed before the final one; more is a broken upstream. */
#define FORWARD_MAX_INTERIM 16

/* How a message body is delimited. */
enum forward_body {
    FORWARD_BODY_NONE = 0, /* no body */
    FORWARD_BODY_LENGTH,   /* Content-Length bytes */
    FORWARD_BODY_CHUNKED,  /* chunked transfer coding */
    FORWARD_BODY_CLOSE,    /* until the sender closes (responses only) */
};

/* One exchange being forwarded; embedded in the session's per-request state. */
struct forward {
    /* What forward_prepare() writes besides the client's fields: "Name: value" fields that
     * replace any of the same name (request_headers), set by the caller; not owned. */
    const char *const *set_fields;
    size_t nset_fields;
    /* Where the request body and the response body are copied as they pass (capture.h),
     * or NULL: set by the caller, not owned. */
    struct capture_body *req_capture;
    struct capture_body *resp_capture;
    /* A request body req_capture cannot keep (memory short) is not sent on: the exchange
     * fails with 503 (audit.fail_open off).  Set by the caller. */
    bool capture_fail_closed;

    /* The request, from forward_prepare(). */
    struct evbuffer *head; /* the rewritten request head while it may still be sent; owned */
    bool http10;           /* the client spoke HTTP/1.0 */
    bool keepalive;        /* the client allows another request */
    bool is_head;          /* a HEAD request: the response has no body */
    bool wants_upgrade;    /* the request asked for a protocol upgrade */
    bool conn_auth;        /* connection-bound authentication (NTLM, Negotiate) was used */
    enum forward_body req_body;
    uint64_t req_left; /* Content-Length bytes still to forward */
    struct http1_chunked req_chunked;
    bool req_done; /* the whole request body was forwarded */

    /* The two connections and the response parser, from forward_begin(); not owned. */
    struct sock *client;
    struct sock *upstream;
    const struct sluice_settings *settings;
    struct http1_parser parser;
    struct http1_head resp;
    struct http1_field *fields; /* the session's field array, lent */
    uint32_t fields_cap;
    struct relay_flow req_flow;  /* client -> upstream */
    struct relay_flow resp_flow; /* upstream -> client */
    bool may_retry;              /* head is kept: a dead pooled upstream means RETRY */
    bool draining;               /* the worker is draining: close after this exchange */
    bool client_eof;             /* the client half-closed (after its request, or cutting it) */

    /* The response. */
    bool resp_started;   /* a response byte arrived */
    bool resp_head_done; /* the final response head went to the client */
    bool resp_done;      /* the whole response was queued to the client */
    bool resp_rechunk;   /* a chunked response is re-framed as chunked for the client */
    enum forward_body resp_body;
    uint64_t resp_left;
    struct http1_chunked resp_chunked;
    unsigned interim;                /* interim responses seen */
    uint64_t interim_bytes;          /* their heads' bytes */
    bool upstream_keep;              /* the upstream connection may be used again */
    bool upstream_ended;             /* its end or failure came while bytes before it wait */
    bool upstream_ended_eof;         /* that was an end of stream, not a failure */
    bool close_after;                /* close the client connection after this response */
    unsigned status;                 /* status sent to the client, 0 if none */
    char content_type[64];           /* the final response's media type (no parameters), or "" */
    uint64_t sent;                   /* request body bytes taken from the client */
    uint64_t received;               /* response bytes queued to the client */
    struct redact_seen resp_secrets; /* the final response's secret fields, for the record */
};

/*
 * Serialises the request head h (parsed from buf; r is what it asks for) into f->head,
 * rewritten for the origin, and sets the request framing.  Returns 0, or -1 with *errstr
 * when the request cannot be forwarded (the caller answers 400).
 */
int forward_prepare(struct forward *f, const char *buf, const struct http1_head *h,
                    const struct request *r, const char **errstr);

/*
 * Sends f->head on upstream (connected) and starts relaying between client and upstream.
 * fields lends the session's field array for response heads.  With may_retry the head is
 * kept until the upstream answers, so that a pooled connection found dead gives RETRY.
 */
struct outcome forward_begin(struct forward *f, struct sock *client, struct sock *upstream,
                             const struct sluice_settings *s, struct http1_field *fields,
                             uint32_t fields_cap, bool may_retry, bool draining);

/* True while the request is sent and no response byte came: the response timeout applies. */
bool forward_awaiting_response(const struct forward *f);

/*
 * What happened on the client or the upstream while forwarding (SOCK_EV_* bits): bytes
 * arrived, an output drained, a side ended or failed.  Moves what can move and returns
 * what the exchange comes to.
 */
struct outcome forward_client_event(struct forward *f, short what);
struct outcome forward_upstream_event(struct forward *f, short what);

/*
 * Writes into out (capacity cap) the codings applied to the body of the message head h
 * (in buf) besides chunked, in the order applied: its Content-Encoding values, then its
 * other Transfer-Encoding codings, ", "-separated, or "".  A list that does not fit is
 * cut after a whole coding and ends with ", ..." ("..." when none fits).
 */
void forward_body_codings(const char *buf, const struct http1_head *h, char *out, size_t cap);

/* Frees what f owns and makes it empty; safe twice. */
void forward_reset(struct forward *f);

#endif /* SLUICE_FORWARD_H */
