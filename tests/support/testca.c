/* Throwaway CA and leaf certificate built in memory with OpenSSL 3. */
#include "testca.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* The CA, the leaf, their keys and the CA file; owned by the caller of testca_new(). */
struct testca {
    EVP_PKEY *ca_key;
    X509 *ca;
    EVP_PKEY *leaf_key;
    X509 *leaf;
    char *ca_path;
};

/* Adds one extension given in openssl.cnf syntax.  Returns 0 or -1. */
static int testca_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int rc;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    rc = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
    X509_EXTENSION_free(ext);
    return rc;
}

/* Makes an unsigned certificate for key with subject CN cn, issued by issuer (self if NULL). */
static X509 *testca_cert(EVP_PKEY *key, const char *cn, X509 *issuer)
{
    X509 *x = X509_new();
    X509_NAME *name;
    unsigned char serial[16];
    BIGNUM *bn = NULL;

    if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1)
        goto fail;
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto fail;
    if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 2 * 86400) == NULL)
        goto fail;
    name = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"sluice tests",
                                   -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                   0) != 1)
        goto fail;
    if (X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
        X509_set_pubkey(x, key) != 1)
        goto fail;
    if (testca_ext(x, issuer != NULL ? issuer : x, NID_subject_key_identifier, "hash") != 0)
        goto fail;
    if (issuer == NULL) {
        if (testca_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
            testca_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") != 0)
            goto fail;
    } else {
        if (testca_ext(x, issuer, NID_authority_key_identifier, "keyid:always") != 0 ||
            testca_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
            testca_ext(x, issuer, NID_key_usage, "critical,digitalSignature") != 0 ||
            testca_ext(x, issuer, NID_ext_key_usage, "serverAuth") != 0)
            goto fail;
    }
    BN_free(bn);
    bn = NULL;
    return x;
fail:
    BN_free(bn);
    X509_free(x);
    return NULL;
}

/* Builds the pair and writes the CA file. */
struct testca *testca_new(const char *dir, const char *dns_name, const char *ip)
{
    return testca_new_kind(dir, "test-ca.pem", dns_name, ip, TESTCA_GOOD);
}

/* Builds the pair, the leaf of the given kind, and writes the CA file. */
struct testca *testca_new_kind(const char *dir, const char *file, const char *dns_name,
                               const char *ip, enum testca_kind kind)
{
    struct testca *ca = calloc(1, sizeof(*ca));
    char san[512];
    FILE *f;

    if (ca == NULL || (dns_name == NULL && ip == NULL))
        goto fail;
    ca->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ca->leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (ca->ca_key == NULL || ca->leaf_key == NULL)
        goto fail;
    ca->ca = testca_cert(ca->ca_key, "sluice test CA", NULL);
    if (ca->ca == NULL || X509_sign(ca->ca, ca->ca_key, EVP_sha256()) == 0)
        goto fail;
    ca->leaf = testca_cert(ca->leaf_key, dns_name != NULL ? dns_name : ip,
                           kind == TESTCA_SELF_SIGNED ? NULL : ca->ca);
    if (ca->leaf == NULL)
        goto fail;
    if (kind == TESTCA_EXPIRED &&
        (X509_gmtime_adj(X509_getm_notBefore(ca->leaf), -3 * 86400) == NULL ||
         X509_gmtime_adj(X509_getm_notAfter(ca->leaf), -86400) == NULL))
        goto fail;
    snprintf(san, sizeof(san), "%s%s%s%s%s", dns_name != NULL ? "DNS:" : "",
             dns_name != NULL ? dns_name : "", dns_name != NULL && ip != NULL ? "," : "",
             ip != NULL ? "IP:" : "", ip != NULL ? ip : "");
    if (testca_ext(ca->leaf, kind == TESTCA_SELF_SIGNED ? ca->leaf : ca->ca, NID_subject_alt_name,
                   san) != 0 ||
        X509_sign(ca->leaf, kind == TESTCA_SELF_SIGNED ? ca->leaf_key : ca->ca_key, EVP_sha256()) ==
            0)
        goto fail;
    {
        size_t dlen = strlen(dir), flen = strlen(file);
        if ((ca->ca_path = malloc(dlen + flen + 2)) == NULL)
            goto fail;
        memcpy(ca->ca_path, dir, dlen);
        ca->ca_path[dlen] = '/';
        memcpy(ca->ca_path + dlen + 1, file, flen + 1);
    }
    f = fopen(ca->ca_path, "w");
    if (f == NULL)
        goto fail;
    if (PEM_write_X509(f, ca->ca) != 1) {
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0)
        goto fail;
    return ca;
fail:
    testca_free(ca);
    return NULL;
}

/* Reports the CA file path. */
const char *testca_ca_path(const struct testca *ca)
{
    return ca->ca_path;
}

/* A TLS server context with the leaf (TLS 1.2 and up). */
SSL_CTX *testca_server_ctx(const struct testca *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate(ctx, ca->leaf) != 1 || SSL_CTX_add1_chain_cert(ctx, ca->ca) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, ca->leaf_key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    return ctx;
}

/* Frees everything and removes the CA file. */
void testca_free(struct testca *ca)
{
    if (ca == NULL)
        return;
    if (ca->ca_path != NULL)
        (void)unlink(ca->ca_path);
    free(ca->ca_path);
    X509_free(ca->leaf);
    X509_free(ca->ca);
    EVP_PKEY_free(ca->leaf_key);
    EVP_PKEY_free(ca->ca_key);
    free(ca);
}
