/*
 * The admin listener: a small HTTP/1.1 server on an event_base and a thread of its own,
 * so a scrape never runs on a worker's loop and a stuck worker cannot stop a health check
 * from saying so.  Heads are read with the proxy's own parser (http1.h).  It serves GET
 * and HEAD of two paths:
 *
 *   /metrics  every counter in the Prometheus text format (metrics.h)
 *   /healthz  200 "ok" while the program says it is healthy, else 503 and the reason
 *
 * Other paths get 404, other methods 405 (with Allow), a malformed head 400, a head past
 * 8 KiB 431, a body 413.  A head must come whole within 10 s of the connection or of the
 * answer before it, and an answer go out within 10 s, however the bytes trickle; after
 * the last answer, what the client still sends is read and dropped for up to 2 s (64 KiB),
 * so that closing does not reset the connection under the answer.  Requests are
 * answered one at a time, and nothing is read while an answer goes out: a client that
 * sends ahead (pipelined requests whose answers it does not read) has one head and one
 * answer held, and the rest waits in its socket.  At most 64 connections are open at once
 * (more wait in the listen queue), and running out of descriptors pauses accepting for a
 * second, said once.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes of a request head at most (request line and fields). */
#define ADMIN_MAX_HEAD 8192
/* Seconds a connection may take to send a request head, or to read an answer. */
#define ADMIN_TIMEOUT_S 10
/* Connections open at once at most. */
#define ADMIN_MAX_CONNS 64

/*
 * Asked by the admin thread for each /healthz: true when healthy, else false with one
 * sentence in why (capacity cap).  Must be safe to call from that thread.
 */
typedef bool (*admin_health_fn)(char *why, size_t cap, void *arg);

struct admin;

/*
 * Binds the admin listener at address ("127.0.0.1:9090", "[::1]:0"; port 0 takes a free
 * one) and prepares its server, without serving yet: done while sluice may still bind
 * privileged ports.  libevent's thread support must be on.  Returns the listener, or NULL
 * with a sentence in err.
 */
struct admin *admin_open(const char *address, char *err, size_t cap);

/*
 * Starts serving in a thread of its own (signals blocked), asking health(arg) at each
 * /healthz.  Returns 0, or -1 with a sentence in err.
 */
int admin_start(struct admin *a, admin_health_fn health, void *arg, char *err, size_t cap);

/* The address bound, with the port the kernel picked, as "ip:port" or "[ip]:port". */
void admin_format(const struct admin *a, char *out, size_t cap);

/* Stops the thread (connections open are closed) and frees a.  NULL is a no-op. */
void admin_free(struct admin *a);

#endif /* SLUICE_ADMIN_H */
