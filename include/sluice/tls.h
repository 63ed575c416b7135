/*
 * The TLS layer of inspection: the local CA loaded once at start, the leaf minter, and
 * the two OpenSSL contexts every worker makes its connections from -- one that terminates
 * a client's TLS with a leaf for the name it asked for, and one that opens a verified TLS
 * connection to the origin (the system trust store and an optional extra CA file; the
 * host name or address checked; SNI sent).  Nothing here turns verification off.  Only
 * this layer (this module, tlsca and tlsmint) reads the CA's key.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "sluice/tlsmint.h"

/* What tls_new() needs. */
struct tls_config {
    const char *ca_cert;     /* the CA certificate (PEM) */
    const char *ca_key;      /* its key (PEM), mode 0600 */
    const char *upstream_ca; /* extra CA certificates (PEM) trusted for origins, or NULL */
    size_t cache_max;        /* leaves kept */
};

struct tls;

/*
 * Loads the CA and makes both contexts.  NULL with a sentence in err (naming the file and
 * what to do) when the CA cannot be read or is not usable, or the extra CA file cannot be.
 */
struct tls *tls_new(const struct tls_config *c, char *err, size_t cap);

/* Frees it all.  NULL is a no-op. */
void tls_free(struct tls *t);

/*
 * A server-side SSL that terminates a client's TLS for name (a normalised host name, or
 * an IP literal without brackets), with a leaf from the cache or made now (*cert_us: how
 * long that took, in microseconds, or 0 when it came from the cache).  ALPN: http/1.1
 * only.  NULL on failure.
 */
SSL *tls_client_side(struct tls *t, const char *name, uint64_t *cert_us);

/*
 * A client-side SSL toward the origin host (a normalised host name, or an IP literal) and
 * port: verified against the trust store, its name (SSL_set1_host) or address checked,
 * SNI sent for a name, ALPN http/1.1.  It resumes the session an earlier connection for
 * the same owner (the pool's owner key: tool and user), host and port left, if any, and
 * leaves its own for the next (see tlsresume.h).  NULL on failure.
 */
SSL *tls_upstream_side(struct tls *t, const char *host, unsigned port, const char *owner);

/*
 * Says why a handshake failed, in one sentence for the client and the log: the check of
 * the origin's certificate that failed (untrusted, expired, wrong host, self-signed...),
 * or the alert or error.  ssl_error is OpenSSL's first queued error code (0: none), sys_errno
 * the errno of a failed socket call (0: none).  Returns the RFC 9209 error type.
 */
const char *tls_explain(SSL *ssl, unsigned long ssl_error, int sys_errno, char *out, size_t cap);

/*
 * True when a client's failed handshake (ssl, terminating its TLS) says it does not accept
 * sluice's certificate -- it pins its own, or does not trust the CA: an unknown_ca,
 * bad_certificate, certificate_unknown or unsupported_certificate alert, or a close
 * without an alert once sluice's certificate had gone out.
 */
bool tls_client_rejected_cert(SSL *ssl, unsigned long ssl_error);

/* How many (tool, host) pairs tls_pinned_note() keeps; the oldest goes first. */
#define TLS_PINNED_MAX 4096

/*
 * Remembers that owner (who asked: a tool id and user, as the pool files them) refused
 * sluice's certificate for host, until sluice stops or TLS_PINNED_MAX later notes push it
 * out, in a set every worker shares.
 */
void tls_pinned_note(struct tls *t, const char *owner, const char *host);

/* True when owner refused sluice's certificate for host since sluice started. */
bool tls_pinned_seen(struct tls *t, const char *owner, const char *host);

/* What the leaf cache did so far. */
void tls_cache_stats(struct tls *t, struct tlsmint_stats *out);

#endif /* SLUICE_TLS_H */
