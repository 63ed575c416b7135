/*
 * A non-blocking TCP socket with an input and an output buffer: the one layer between a
 * socket and what speaks HTTP over it.  It reads only when asked to and never asks the
 * kernel how much there is (no FIONREAD), writes through at once when nothing is queued
 * (no write event for a write that completes), and keeps its read and write events added
 * only while they are wanted, so a request and its response cost one read and one write
 * each.  A tunnel can take its events over ("raw" mode) to move bytes with splice(2).
 * TLS is another way of filling the input and draining the output here: after
 * sock_start_tls() the input holds what the peer's records decrypt to and the output is
 * encrypted on its way out, so what speaks HTTP over a sock does not know which it is.
 */
#ifndef SLUICE_SOCK_H
#define SLUICE_SOCK_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/types.h>

/* What happened, for the callback (bits). */
#define SOCK_EV_READ    0x01 /* new bytes are in the input */
#define SOCK_EV_DRAINED 0x02 /* queued output went out: the output fell to the low mark */
#define SOCK_EV_EOF     0x04 /* the peer ended its direction; the input holds the rest */
#define SOCK_EV_ERROR   0x08 /* a read or a write failed (or the TLS handshake did) */
#define SOCK_EV_TLS     0x10 /* the TLS handshake is done: reads and writes go through it */

/* The most one read takes (never more, whatever buffer space is free); the relay pauses a
 * reader at this much output too (RELAY_HIGH_WATERMARK). */
#define SOCK_READ_MAX (256 * 1024)
/* Output at or under this after a write event counts as drained. */
#define SOCK_LOW_MARK (64 * 1024)

struct sock;

/*
 * What a sock reports to its owner; in raw mode what is EV_READ (with EV_CLOSED once the
 * peer shut its side) or EV_WRITE instead.
 */
typedef void (*sock_cb)(struct sock *so, short what, void *arg);

/*
 * Takes over the connected non-blocking socket fd (closed by sock_free(), or at once on
 * failure) for base.  Neither reading nor writing is wanted yet.  NULL when out of memory.
 */
struct sock *sock_new(struct event_base *base, int fd);

/* Closes the socket and frees everything.  NULL is a no-op. */
void sock_free(struct sock *so);

/* Sets who hears about events; cb NULL stops the reports (events stay as they are). */
void sock_setcb(struct sock *so, sock_cb cb, void *arg);

/* The socket, its input and its output (all owned by the sock). */
int sock_fd(const struct sock *so);
struct evbuffer *sock_in(struct sock *so);
struct evbuffer *sock_out(struct sock *so);

/*
 * Wants reads (on) or not.  While on, each readiness reads once, at most limit - what the
 * input holds (limit 0: SOCK_READ_MAX), and reading stops by itself while the input holds
 * limit, resuming when it is drained below it.  An end or a failure that a TLS read
 * brought with bytes is told in the next loop round even while off (SOCK_EV_EOF with the
 * input still holding those bytes, or SOCK_EV_ERROR), so that it is never lost.
 */
void sock_set_reading(struct sock *so, bool on);

/*
 * Makes one read in this loop round, without waiting for readiness, when reading is
 * wanted: for a peer that has most likely sent already (a client just accepted), it saves
 * a wait.  When nothing is there yet the read finds EAGAIN and reading goes on as usual.
 */
void sock_read_soon(struct sock *so);

/* The input bound for sock_set_reading(); 0 means SOCK_READ_MAX at a time, no bound. */
void sock_set_read_limit(struct sock *so, size_t limit);

/*
 * Writes what the output holds now, as far as the socket takes it; the rest goes when the
 * socket has room, and the drain is reported with SOCK_EV_DRAINED.  A failure is reported
 * through the callback with SOCK_EV_ERROR from the loop, never from inside this call.
 */
void sock_flush(struct sock *so);

/*
 * Raw mode for tunnels: the sock stops reading and writing its buffers, and its events go
 * to cb as EV_READ / EV_WRITE, added and removed with sock_raw_want().  The buffers keep
 * what they held, for the caller to take.  There is no way back.
 */
void sock_set_raw(struct sock *so, sock_cb cb, void *arg);

/* In raw mode: wants readiness to read (EV_READ) or write (EV_WRITE) or not. */
void sock_raw_want(struct sock *so, short what, bool on);

/* Which events are added now (EV_READ, EV_WRITE bits): where raw mode starts from. */
short sock_raw_wanted(const struct sock *so);

/* Sets SO_LINGER {1, 0}, so that sock_free() resets the connection instead of ending it. */
void sock_reset_on_free(struct sock *so);

/*
 * Reads once now, never more than max bytes, as if the socket had said it was readable; for
 * taking an answer that sits in the receive queue when a write failed.  Returns the bytes
 * read.
 */
size_t sock_read_now(struct sock *so, size_t max);

/*
 * Begins TLS on the sock with ssl (owned from now on, freed with the sock, also on
 * failure), in the role ssl was set to (SSL_set_accept_state or SSL_set_connect_state).
 * What the input holds now is taken as the first records (a ClientHello that was peeked
 * at).  The handshake runs from the loop; its end is reported with SOCK_EV_TLS, its failure
 * with SOCK_EV_ERROR (sock_tls_error() and sock_error() say why).  Meanwhile nothing is
 * read into the input and nothing written from the output.  Returns 0, or -1 when out of
 * memory.  Not for raw mode: a tunnel between TLS socks keeps them buffered.
 */
int sock_start_tls(struct sock *so, SSL *ssl);

/* The sock's TLS session, or NULL for plain TCP. */
SSL *sock_tls(const struct sock *so);

/* OpenSSL's first error of a TLS failure (ERR_peek_error()), or 0. */
unsigned long sock_tls_error(const struct sock *so);

/* The errno of the sock's failure (EPROTO for a TLS one), or 0. */
int sock_error(const struct sock *so);

/* True once the peer's end of stream was read (what came before it may still be in the
 * input). */
bool sock_eof(const struct sock *so);

/* True when the peer's end was a close_notify, or the sock is plain TCP: false for a TLS
 * stream the peer ended by closing the connection alone (cut short, or careless). */
bool sock_ended_cleanly(const struct sock *so);

/*
 * Ends the sending direction: under TLS a close_notify first (one try, never waited for),
 * then the TCP half-close.  Whatever the output holds is not sent.
 */
void sock_shutdown_write(struct sock *so);

/* The TCP half-close alone, without close_notify: passes on an end that came without one. */
void sock_shutdown_write_bare(struct sock *so);

#endif /* SLUICE_SOCK_H */
