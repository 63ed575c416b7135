/* The TLS contexts of inspection; see include/sluice/tls.h. */
#include "sluice/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "sluice/tlsresume.h"

struct tls {
    struct tlsmint *mint;     /* leaves, with the CA */
    SSL_CTX *server;          /* toward clients */
    SSL_CTX *client;          /* toward origins */
    struct tlsresume *resume; /* sessions toward origins, to resume */
    /* (owner, host) pairs whose client refused sluice's certificate, as keyed hashes: a
     * ring, the oldest overwritten first.  The key is random, so a client cannot make
     * another pair's hash. */
    pthread_mutex_t pinned_lock;
    uint64_t pinned[TLS_PINNED_MAX]; /* 0: empty */
    size_t pinned_next;
    unsigned char pinned_key[16];
};

/* The only protocol offered or taken through inspection: HTTP/1.1 (wire format). */
static const unsigned char tls_alpn_http11[] = "\x08http/1.1";

/*
 * Picks http/1.1 from what the client offers.  A client offering h2 without it never gets
 * here (its tunnel was spliced or refused once its ClientHello was read); any other list
 * without it is refused here with an alert.
 */
static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                           const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *chosen = NULL;

    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&chosen, outlen, tls_alpn_http11, sizeof(tls_alpn_http11) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* The SSL ex_data index of an upstream SSL's resumption key (malloc'd, freed with it). */
static int tls_resume_key_index = -1;
static pthread_once_t tls_resume_key_once = PTHREAD_ONCE_INIT;

/* Frees a resumption key with its SSL. */
static void tls_resume_key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                                void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    free(ptr);
}

/* Makes the index, once per process. */
static void tls_resume_key_init(void)
{
    tls_resume_key_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_resume_key_free);
}

/*
 * OpenSSL has a session (or a TLS 1.3 ticket) from an origin: a copy is filed under the
 * key its SSL was made with.  Returns 0: OpenSSL keeps its reference.
 */
static int tls_session_new_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *key = tls_resume_key_index >= 0 ? SSL_get_ex_data(ssl, tls_resume_key_index) : NULL;

    if (t != NULL && t->resume != NULL && key != NULL)
        tlsresume_put(t->resume, key, sess);
    return 0;
}

/* What both contexts share: TLS 1.2 and up, no renegotiation, buffers freed when idle. */
static bool tls_common(SSL_CTX *ctx)
{
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_NO_COMPRESSION);
    /* An idle inspected connection keeps no read or write buffer (about 34 KiB each). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1;
}

/* Reads the CA certificate and key; returns 0, or -1 with a sentence in err. */
static int tls_load_ca(const struct tls_config *c, X509 **cert, EVP_PKEY **key, char *err,
                       size_t cap)
{
    FILE *f;

    *cert = NULL;
    *key = NULL;
    if ((f = fopen(c->ca_cert, "r")) == NULL) {
        snprintf(err, cap, "cannot read the CA certificate %s: %s; make the CA with sluice ca init",
                 c->ca_cert, strerror(errno));
        return -1;
    }
    *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (*cert == NULL) {
        snprintf(err, cap, "the CA certificate %s is not a PEM certificate", c->ca_cert);
        return -1;
    }
    if (X509_check_ca(*cert) != 1) {
        snprintf(err, cap, "%s is not a CA certificate; make the CA with sluice ca init",
                 c->ca_cert);
        return -1;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(*cert)) <= 0) {
        snprintf(err, cap,
                 "the CA certificate %s has expired; remove it and its key, make a new CA with "
                 "sluice ca init, and trust the new one",
                 c->ca_cert);
        return -1;
    }
    if ((f = fopen(c->ca_key, "r")) == NULL) {
        snprintf(err, cap, "cannot read the CA key %s: %s", c->ca_key, strerror(errno));
        return -1;
    }
    *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (*key == NULL || X509_check_private_key(*cert, *key) != 1) {
        snprintf(err, cap,
                 *key == NULL ? "the CA key %s is not a PEM private key"
                              : "the CA key %s is not the key of the CA certificate; make both "
                                "again with sluice ca init",
                 c->ca_key);
        return -1;
    }
    return 0;
}

/* Loads the CA, makes the contexts. */
struct tls *tls_new(const struct tls_config *c, char *err, size_t cap)
{
    static const unsigned char session_context[] = "sluice inspection";
    struct tls *t = calloc(1, sizeof(*t));
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;

    if (t == NULL) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&t->pinned_lock, NULL);
    if (RAND_bytes(t->pinned_key, sizeof(t->pinned_key)) != 1) {
        snprintf(err, cap, "cannot make a random key (OpenSSL failed)");
        goto fail;
    }
    if (tls_load_ca(c, &cert, &key, err, cap) < 0 ||
        (t->mint = tlsmint_new(cert, key, c->cache_max, err, cap)) == NULL)
        goto fail;
    t->server = SSL_CTX_new(TLS_server_method());
    t->client = SSL_CTX_new(TLS_client_method());
    if (t->server == NULL || t->client == NULL || !tls_common(t->server) ||
        !tls_common(t->client) ||
        SSL_CTX_set_session_id_context(t->server, session_context, sizeof(session_context) - 1) !=
            1 ||
        SSL_CTX_set_alpn_protos(t->client, tls_alpn_http11, sizeof(tls_alpn_http11) - 1) != 0 ||
        SSL_CTX_set_default_verify_paths(t->client) != 1) {
        snprintf(err, cap, "cannot set up TLS (OpenSSL failed)");
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(t->server, tls_alpn_select, NULL);
    SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
    /* Sessions toward origins live in the store (tlsresume), filed by who asked and where;
     * OpenSSL's own cache is not keyed that way, so it keeps none. */
    pthread_once(&tls_resume_key_once, tls_resume_key_init);
    if (tls_resume_key_index < 0 || (t->resume = tlsresume_new()) == NULL ||
        SSL_CTX_set_app_data(t->client, t) != 1) {
        snprintf(err, cap, "cannot set up TLS (out of memory)");
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(t->client,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(t->client, tls_session_new_cb);
    if (c->upstream_ca != NULL &&
        SSL_CTX_load_verify_locations(t->client, c->upstream_ca, NULL) != 1) {
        snprintf(err, cap, "cannot read the CA certificates in %s (tls.upstream_ca): not PEM",
                 c->upstream_ca);
        goto fail;
    }
    X509_free(cert);
    EVP_PKEY_free(key); /* the minter holds its own reference */
    return t;

fail:
    X509_free(cert);
    EVP_PKEY_free(key);
    tls_free(t);
    return NULL;
}

/* Frees it all. */
void tls_free(struct tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->server);
    SSL_CTX_free(t->client);
    tlsresume_free(t->resume);
    tlsmint_free(t->mint);
    pthread_mutex_destroy(&t->pinned_lock);
    free(t);
}

/* Microseconds on the monotonic clock. */
static uint64_t tls_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* An SSL that terminates a client's TLS for name. */
SSL *tls_client_side(struct tls *t, const char *name, uint64_t *cert_us)
{
    uint64_t start = tls_now_us();
    bool made = false;
    X509 *leaf = tlsmint_leaf(t->mint, name, &made);
    SSL *ssl;

    *cert_us = made ? tls_now_us() - start : 0;
    if (leaf == NULL)
        return NULL;
    ssl = SSL_new(t->server);
    if (ssl == NULL || SSL_use_certificate(ssl, leaf) != 1 ||
        SSL_use_PrivateKey(ssl, tlsmint_key(t->mint)) != 1) {
        SSL_free(ssl);
        X509_free(leaf);
        return NULL;
    }
    X509_free(leaf); /* the SSL holds its own reference */
    SSL_set_accept_state(ssl);
    return ssl;
}

/* An SSL toward the origin, verified, resuming a session filed under the same key. */
SSL *tls_upstream_side(struct tls *t, const char *host, unsigned port, const char *owner)
{
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    SSL *ssl = SSL_new(t->client);
    char sni[256]; /* SSL_set_tlsext_host_name() takes it without const */
    char *key = NULL;
    SSL_SESSION *sess;

    if (ssl == NULL)
        return NULL;
    snprintf(sni, sizeof(sni), "%s", host);
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
              : (SSL_set_tlsext_host_name(ssl, sni) != 1 || SSL_set1_host(ssl, host) != 1)) {
        SSL_free(ssl);
        return NULL;
    }
    /* The whole owner, host and port, never cut short: two owners whose keys share a long
     * prefix never share a session. */
    if (asprintf(&key, "%s\n%s\n%u", owner, host, port) < 0)
        key = NULL;
    if (key != NULL && SSL_set_ex_data(ssl, tls_resume_key_index, key) != 1) {
        free(key);
        key = NULL;
    }
    if (key != NULL && (sess = tlsresume_take(t->resume, key)) != NULL) {
        (void)SSL_set_session(ssl, sess); /* takes its own reference */
        SSL_SESSION_free(sess);
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* The check of the origin's certificate that failed, in words. */
static const char *tls_verify_words(long v)
{
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "its certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "its certificate is not valid yet";
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return "its certificate is for another host name (wrong host)";
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "its certificate is for another address (wrong host)";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        return "its certificate is self-signed";
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return "its certificate is not signed by a trusted CA (untrusted)";
    case X509_V_ERR_CERT_REVOKED:
        return "its certificate is revoked";
    default:
        return NULL;
    }
}

/* Why a handshake failed. */
const char *tls_explain(SSL *ssl, unsigned long ssl_error, int sys_errno, char *out, size_t cap)
{
    long v = SSL_is_server(ssl) ? X509_V_OK : SSL_get_verify_result(ssl);
    const char *words;
    char detail[160];

    if (v != X509_V_OK) {
        words = tls_verify_words(v);
        snprintf(out, cap, "the origin's certificate failed verification: %s (%s)",
                 words != NULL ? words : "see the code", X509_verify_cert_error_string(v));
        return "tls_certificate_error";
    }
    if (ssl_error != 0 && ERR_GET_LIB(ssl_error) == ERR_LIB_SSL) {
        const char *reason = ERR_reason_error_string(ssl_error);
        snprintf(detail, sizeof(detail), "%s", reason != NULL ? reason : "unknown error");
        snprintf(out, cap, "the TLS handshake failed: %s", detail);
        return strstr(detail, "alert") != NULL ? "tls_alert_received" : "tls_protocol_error";
    }
    if (sys_errno != 0)
        snprintf(out, cap, "the TLS handshake failed: %s", strerror(sys_errno));
    else
        snprintf(out, cap, "the TLS handshake failed: the peer closed the connection");
    return "tls_protocol_error";
}

/* A client that refused sluice's certificate. */
bool tls_client_rejected_cert(SSL *ssl, unsigned long ssl_error)
{
    if (ssl_error == 0 || (ERR_GET_LIB(ssl_error) == ERR_LIB_SSL &&
                           ERR_GET_REASON(ssl_error) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        /* No alert: a close right after sluice's flight, as some pinning clients do. */
        switch (SSL_get_state(ssl)) {
        case TLS_ST_SW_CERT:
        case TLS_ST_SW_CERT_VRFY:
        case TLS_ST_SW_KEY_EXCH:
        case TLS_ST_SW_SRVR_DONE:
        case TLS_ST_SW_FINISHED:
        case TLS_ST_EARLY_DATA:
            return true;
        default:
            return false;
        }
    }
    if (ERR_GET_LIB(ssl_error) != ERR_LIB_SSL)
        return false;
    switch (ERR_GET_REASON(ssl_error)) {
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        return true;
    default:
        return false;
    }
}

/* The keyed hash of (owner, host), never 0; 0 when OpenSSL failed. */
static uint64_t tls_pinned_hash(const struct tls *t, const char *owner, const char *host)
{
    char pair[512]; /* an owner key (200) and a host name (253) */
    unsigned char md[32];
    size_t len = 0;
    int n = snprintf(pair, sizeof(pair), "%s\n%s", owner, host);
    uint64_t h = 0;

    if (n < 0 || (size_t)n >= sizeof(pair) ||
        EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, t->pinned_key, sizeof(t->pinned_key),
                  (const unsigned char *)pair, (size_t)n, md, sizeof(md), &len) == NULL ||
        len < sizeof(h))
        return 0;
    memcpy(&h, md, sizeof(h));
    return h != 0 ? h : 1;
}

/* Remembers a refusal. */
void tls_pinned_note(struct tls *t, const char *owner, const char *host)
{
    uint64_t h = tls_pinned_hash(t, owner, host);

    if (h == 0 || tls_pinned_seen(t, owner, host))
        return;
    pthread_mutex_lock(&t->pinned_lock);
    t->pinned[t->pinned_next] = h;
    t->pinned_next = (t->pinned_next + 1) % TLS_PINNED_MAX;
    pthread_mutex_unlock(&t->pinned_lock);
}

/* True after a refusal. */
bool tls_pinned_seen(struct tls *t, const char *owner, const char *host)
{
    uint64_t h = tls_pinned_hash(t, owner, host);
    bool seen = false;

    if (h == 0)
        return false;
    pthread_mutex_lock(&t->pinned_lock);
    for (size_t i = 0; i < TLS_PINNED_MAX && !seen; i++)
        seen = t->pinned[i] == h;
    pthread_mutex_unlock(&t->pinned_lock);
    return seen;
}

/* What the leaf cache did. */
void tls_cache_stats(struct tls *t, struct tlsmint_stats *out)
{
    tlsmint_stats(t->mint, out);
}
