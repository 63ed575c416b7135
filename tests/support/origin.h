/*
 * A scripted origin server for integration tests.  It listens on 127.0.0.1:0 (and, if
 * asked, on [::1]:0), runs one thread per accepted connection, and hands each connection
 * to a handler the test supplies, which scripts the exact bytes: slow trickles, resets,
 * silence, 100-continue, 101 then echo, chunked bodies, keep-alive.  TLS is optional: with
 * an SSL_CTX the connection thread completes SSL_accept before the handler runs.
 *
 * Every wait is bounded; origin_stop() shuts down live connections so handlers blocked in
 * a read or write return, and joins every thread.
 */
#ifndef SLUICE_TEST_ORIGIN_H
#define SLUICE_TEST_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "tbuf.h"

struct origin;

/* One accepted connection, owned by its connection thread and lent to the handler. */
struct origin_conn {
    struct origin *origin; /* the server that accepted it */
    int fd;                /* the socket; closed by the origin after the handler returns */
    SSL *ssl;              /* TLS session, or NULL for plain TCP; freed by the origin */
    unsigned index;        /* accept order, from 0 */
    void *arg;             /* origin_opts.arg */
    struct tbuf in;        /* bytes received and not yet consumed */
    struct tbuf head;      /* the last request head read by oconn_read_head() */
    int record;            /* index of that request in the origin's record, or -1 */
    bool reset;            /* close with a RST (SO_LINGER 0) instead of a FIN */
};

/* Runs once per accepted connection on that connection's own thread. */
typedef void (*origin_handler_fn)(struct origin_conn *c);

/* How to start an origin; zero everything but handler for a plain IPv4 origin. */
struct origin_opts {
    origin_handler_fn handler; /* required */
    void *arg;                 /* handed to the handler as c->arg */
    bool no_ipv4;              /* do not listen on 127.0.0.1 */
    bool ipv6;                 /* also (or only) listen on [::1] */
    SSL_CTX *tls;              /* serve TLS with this context (not owned; must outlive) */
};

/* Starts the listener(s) and the accept thread.  Returns NULL on failure. */
struct origin *origin_start(const struct origin_opts *opts);

/* Port on 127.0.0.1 (0 when not listening there). */
uint16_t origin_port(const struct origin *o);

/* Port on [::1] (0 when not listening there). */
uint16_t origin_port6(const struct origin *o);

/* Number of TCP connections accepted so far. */
unsigned origin_accepted(const struct origin *o);

/* Number of TLS handshakes that failed. */
unsigned origin_tls_failures(const struct origin *o);

/* True once origin_stop() began; handlers should return soon. */
bool origin_stopping(const struct origin *o);

/* Stops accepting, shuts every live connection down, joins all threads, frees o. */
void origin_stop(struct origin *o);

/* Number of request heads recorded by oconn_read_head() so far. */
unsigned origin_requests(struct origin *o);

/*
 * Copies the idx-th recorded request (head, and body once oconn_read_body() read it) into
 * head and body (either may be NULL).  Returns false when idx is out of range.
 */
bool origin_request(struct origin *o, unsigned idx, struct tbuf *head, struct tbuf *body);

/* Counts an event a test waits for (origin_wait_events); safe from any thread. */
void origin_event(struct origin *o);

/* Waits until at least n events were counted, at most timeout_ms.  True if they were. */
bool origin_wait_events(struct origin *o, unsigned n, int timeout_ms);

/*
 * Reads at most cap bytes (buffered bytes first), waiting at most timeout_ms.
 * Returns > 0 bytes, 0 at end of stream, -1 on error or timeout.
 */
ssize_t oconn_read(struct origin_conn *c, void *buf, size_t cap, int timeout_ms);

/* Writes all of buf (TLS-aware), bounded to 60 s.  Returns 0 or -1. */
int oconn_write(struct origin_conn *c, const void *buf, size_t len);

/* Writes a C string. */
int oconn_writes(struct origin_conn *c, const char *s);

/*
 * Reads one request head into c->head (consumed from c->in; later bytes stay in c->in)
 * and records it.  Returns the head length, or 0 on end of stream, error or timeout.
 */
size_t oconn_read_head(struct origin_conn *c, int timeout_ms);

/*
 * Reads the body that c->head announces (Content-Length or chunked), appending the
 * decoded bytes to body (may be NULL) and to the origin's record.  Returns 0 or -1.
 */
int oconn_read_body(struct origin_conn *c, struct tbuf *body, int timeout_ms);

/* Writes "HTTP/1.1 status reason", extra header lines (CRLF-terminated), CL and body. */
int oconn_respond(struct origin_conn *c, int status, const char *extra, const char *body,
                  size_t body_len);

/* Sleeps ms in small steps; returns false early if the origin is stopping. */
bool oconn_sleep(struct origin_conn *c, unsigned ms);

/* Waits (bounded) until the peer closes or resets the connection.  True if it did. */
bool oconn_wait_close(struct origin_conn *c, int timeout_ms);

/*
 * A ready-made handler: serves requests on a keep-alive connection (up to 1000, 10 s
 * idle each) answering 200 with body "target=<request-target>\n"; HEAD gets no body,
 * Expect: 100-continue gets a 100 first, "Connection: close" ends the loop.
 */
void origin_handler_simple(struct origin_conn *c);

#endif /* SLUICE_TEST_ORIGIN_H */
