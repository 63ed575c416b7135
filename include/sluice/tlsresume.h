/*
 * TLS sessions toward origins, kept so that the next connection to the same origin for
 * the same client resumes instead of making a full handshake (no certificate chain to
 * send and verify again; one round trip fewer under TLS 1.2).  Part of the TLS layer.
 *
 * A session is filed under a key that names who asked and where: the owner key the
 * upstream pool uses (tool and user), the host name verified and the port.  A session is
 * never offered for another key: resuming skips the certificate check, so it must only
 * ever reach the host it was verified for, and a ticket the origin can recognise must not
 * link one tool's or user's connections to another's.
 *
 * Sessions are kept serialised (the origin's certificate included), not as OpenSSL's
 * objects: OpenSSL marks a session object it gave out as not resumable once the connection
 * it came from ends without close_notify, as connections that an origin closes mostly do.
 * The store is bounded (TLSRESUME_MAX sessions of at most TLSRESUME_MAX_BYTES), shared by
 * every worker behind one mutex, held only to file or take a session.  A TLS 1.3 session
 * is handed out once (RFC 8446 section C.4: a ticket is not used twice); the resumed
 * connection brings a fresh one.  A TLS 1.2 session stays until it expires or is pushed
 * out.
 */
#ifndef SLUICE_TLSRESUME_H
#define SLUICE_TLSRESUME_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Sessions kept at most (a slot each: a key whose slot another holds pushes it out). */
#define TLSRESUME_MAX 512
/* Bytes of one serialised session kept at most (most are about 2 KiB: the certificate). */
#define TLSRESUME_MAX_BYTES (16 * 1024)

struct tlsresume;

/* An empty store, or NULL when out of memory. */
struct tlsresume *tlsresume_new(void);

/* Frees the store and every session in it.  NULL is a no-op. */
void tlsresume_free(struct tlsresume *r);

/*
 * Files a copy of sess under key, in place of what the slot held; the caller keeps sess.
 * A session that cannot be resumed, or is too large, is not kept.
 */
void tlsresume_put(struct tlsresume *r, const char *key, const SSL_SESSION *sess);

/*
 * A copy of the session filed under key and still valid, the caller's to free (with
 * SSL_SESSION_free, once SSL_set_session took its own reference), or NULL.  A TLS 1.3
 * session leaves the store; an expired one is dropped.
 */
SSL_SESSION *tlsresume_take(struct tlsresume *r, const char *key);

/* Sessions held now (for tests). */
size_t tlsresume_count(struct tlsresume *r);

#endif /* SLUICE_TLSRESUME_H */
