/*
 * A throwaway certificate authority and one leaf certificate, made in the test with the
 * OpenSSL 3 API (EC P-256 keys, X.509 v3 with subjectAltName), for an HTTPS origin that
 * a client verifies end to end through the proxy.  Nothing is read from or kept on disk
 * except the CA certificate written for the client (CURLOPT_CAINFO).
 */
#ifndef SLUICE_TEST_TESTCA_H
#define SLUICE_TEST_TESTCA_H

#include <openssl/ssl.h>

struct testca;

/* What is wrong with the leaf, for tests of certificate checks. */
enum testca_kind {
    TESTCA_GOOD = 0,    /* signed by the CA, valid now */
    TESTCA_EXPIRED,     /* signed by the CA, ended yesterday */
    TESTCA_SELF_SIGNED, /* signed by its own key, not by the CA */
};

/*
 * Makes a CA and a leaf for dns_name and the IP literal ip (either may be NULL, not
 * both), and writes the CA certificate as PEM to dir/test-ca.pem.  Returns NULL on failure.
 */
struct testca *testca_new(const char *dir, const char *dns_name, const char *ip);

/*
 * The same with a leaf of the given kind, the CA written to dir/file (a name of its own,
 * so that several can live side by side).
 */
struct testca *testca_new_kind(const char *dir, const char *file, const char *dns_name,
                               const char *ip, enum testca_kind kind);

/* Path of the PEM CA certificate file. */
const char *testca_ca_path(const struct testca *ca);

/* A server SSL_CTX with the leaf and its key; the caller frees it with SSL_CTX_free(). */
SSL_CTX *testca_server_ctx(const struct testca *ca);

/* Frees keys and certificates and removes the PEM file.  NULL is a no-op. */
void testca_free(struct testca *ca);

#endif /* SLUICE_TEST_TESTCA_H */
