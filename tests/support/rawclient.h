/*
 * A raw HTTP client for the cases libcurl will not produce: exact bytes on the wire,
 * pipelined requests, malformed requests, upgrades.  It connects to the proxy, sends
 * bytes, and reads responses one at a time with a bound in time, keeping bytes that
 * arrive after a response for the next one.
 */
#ifndef SLUICE_TEST_RAWCLIENT_H
#define SLUICE_TEST_RAWCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tbuf.h"

/* One client connection; owned by the test. */
struct rawclient {
    int fd;         /* -1 once closed */
    struct tbuf in; /* received, not yet returned as part of a response */
    bool eof;       /* the peer closed (or reset) the connection */
    int error;      /* errno of the last failed read (ECONNRESET...), or 0 */
};

/* One response as received. */
struct rawresp {
    int status;       /* status code, -1 when no complete head arrived */
    struct tbuf head; /* status line and fields, through the empty line */
    struct tbuf body; /* the body, de-chunked when it was chunked */
    bool chunked;     /* the body came chunked */
    bool complete;    /* the body was complete per its framing (or close-delimited) */
};

/* Connects to ip:port within timeout_ms.  Returns NULL on failure (errno kept). */
struct rawclient *rawclient_connect(const char *ip, uint16_t port, int timeout_ms);

/* Sends len bytes (bounded to 10 s).  Returns 0 or -1. */
int rawclient_send(struct rawclient *c, const void *buf, size_t len);

/* Sends a C string. */
int rawclient_sends(struct rawclient *c, const char *s);

/*
 * Reads one response within timeout_ms in total; head_request says the request was HEAD
 * (no body follows).  1xx responses are returned like any other (call again for the
 * final one); after a 101 the next bytes stay in c->in.  Returns the status code, or -1
 * when no complete response arrived in time or the connection ended first (r keeps what
 * did arrive).  Call rawresp_free(r) in every case.
 */
int rawclient_response(struct rawclient *c, struct rawresp *r, bool head_request, int timeout_ms);

/* Moves up to want bytes (buffered first) into out, within timeout_ms.  Returns bytes. */
size_t rawclient_read_exact(struct rawclient *c, struct tbuf *out, size_t want, int timeout_ms);

/*
 * Waits at most timeout_ms for the peer to close or reset, dropping what arrives.
 * True when it closed.
 */
bool rawclient_wait_closed(struct rawclient *c, int timeout_ms);

/* Closes the socket and frees c.  NULL is a no-op. */
void rawclient_close(struct rawclient *c);

/* Copies the first field called name of the response into out.  True when present. */
bool rawresp_field(const struct rawresp *r, const char *name, char *out, size_t cap);

/* True when some field called name lists token. */
bool rawresp_has_token(const struct rawresp *r, const char *name, const char *token);

/* Frees the buffers of r (it stays usable). */
void rawresp_free(struct rawresp *r);

#endif /* SLUICE_TEST_RAWCLIENT_H */
