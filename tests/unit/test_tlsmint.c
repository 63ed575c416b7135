/*
 * Unit tests for the certificates made on the fly: a leaf names what it was made for (a
 * DNS name, or an IP address as an IP SAN), verifies against the CA as a TLS client would,
 * stays inside the CA's validity, comes from the cache the second time, and the cache
 * keeps to its bound, dropping the least recently used.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "sluice/tlsmint.h"

/* A self-signed CA valid for days from an hour ago, with its key. */
static X509 *make_ca(EVP_PKEY **key_out, long days)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    assert_non_null(key);
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), days * 86400));
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test CA", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    *key_out = key;
    return x;
}

/* True when leaf verifies against ca for host (a name, or an IP literal when ip). */
static bool verifies(X509 *ca, X509 *leaf, const char *host, bool ip)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_VERIFY_PARAM *param;
    bool ok;

    X509_STORE_add_cert(store, ca);
    X509_STORE_CTX_init(ctx, store, leaf, NULL);
    param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
    if (ip)
        X509_VERIFY_PARAM_set1_ip_asc(param, host);
    else
        X509_VERIFY_PARAM_set1_host(param, host, 0);
    ok = X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

/* A leaf for a name and one for an address verify as a TLS client would check them. */
static void test_leaf_verifies(void **state)
{
    EVP_PKEY *cakey;
    X509 *ca = make_ca(&cakey, 365);
    char err[200];
    struct tlsmint *m = tlsmint_new(ca, cakey, 8, err, sizeof(err));
    X509 *leaf, *leaf6;
    bool made = false;

    (void)state;
    assert_non_null(m);
    leaf = tlsmint_leaf(m, "api.example.com", &made);
    assert_non_null(leaf);
    assert_true(made);
    assert_true(verifies(ca, leaf, "api.example.com", false));
    assert_false(verifies(ca, leaf, "other.example.com", false));
    assert_int_equal(X509_check_private_key(leaf, tlsmint_key(m)), 1);
    X509_free(leaf);
    leaf = tlsmint_leaf(m, "127.0.0.1", &made);
    assert_non_null(leaf);
    assert_true(verifies(ca, leaf, "127.0.0.1", true));
    assert_false(verifies(ca, leaf, "127.0.0.2", true));
    leaf6 = tlsmint_leaf(m, "::1", &made);
    assert_non_null(leaf6);
    assert_true(verifies(ca, leaf6, "::1", true));
    X509_free(leaf);
    X509_free(leaf6);
    /* Nothing is made for no name, or a name too long to be a host name. */
    assert_null(tlsmint_leaf(m, "", NULL));
    {
        char longname[300];
        memset(longname, 'a', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        assert_null(tlsmint_leaf(m, longname, NULL));
    }
    tlsmint_free(m);
    X509_free(ca);
    EVP_PKEY_free(cakey);
}

/* A leaf ends no later than its CA does, and lasts at most TLSMINT_LEAF_DAYS. */
static void test_leaf_inside_ca(void **state)
{
    EVP_PKEY *cakey;
    X509 *ca = make_ca(&cakey, 3); /* ends before a leaf's usual period would */
    char err[200];
    struct tlsmint *m = tlsmint_new(ca, cakey, 8, err, sizeof(err));
    X509 *leaf;
    int days, secs;

    (void)state;
    assert_non_null(m);
    leaf = tlsmint_leaf(m, "short.example", NULL);
    assert_non_null(leaf);
    assert_true(ASN1_TIME_compare(X509_get0_notAfter(leaf), X509_get0_notAfter(ca)) <= 0);
    assert_true(ASN1_TIME_compare(X509_get0_notBefore(leaf), X509_get0_notBefore(ca)) >= 0);
    X509_free(leaf);
    tlsmint_free(m);
    X509_free(ca);
    EVP_PKEY_free(cakey);

    ca = make_ca(&cakey, 3650);
    m = tlsmint_new(ca, cakey, 8, err, sizeof(err));
    assert_non_null(m);
    leaf = tlsmint_leaf(m, "long.example", NULL);
    assert_non_null(leaf);
    assert_int_equal(
        ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
    assert_true(days <= TLSMINT_LEAF_DAYS);
    assert_true(days >= TLSMINT_LEAF_DAYS - 1);
    X509_free(leaf);
    tlsmint_free(m);
    X509_free(ca);
    EVP_PKEY_free(cakey);
}

/* The second ask is a cache hit (the same certificate); the bound evicts the oldest. */
static void test_cache_lru(void **state)
{
    EVP_PKEY *cakey;
    X509 *ca = make_ca(&cakey, 365);
    char err[200], name[64];
    struct tlsmint *m = tlsmint_new(ca, cakey, 4, err, sizeof(err));
    struct tlsmint_stats st;
    X509 *a, *b;
    bool made = true;

    (void)state;
    assert_non_null(m);
    a = tlsmint_leaf(m, "a.example", &made);
    assert_true(made);
    b = tlsmint_leaf(m, "a.example", &made);
    assert_false(made);
    assert_ptr_equal(a, b);
    X509_free(b);
    /* Four more names: a.example, the least recently used, goes; the bound holds. */
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "n%d.example", i);
        X509_free(tlsmint_leaf(m, name, NULL));
    }
    tlsmint_stats(m, &st);
    assert_int_equal(st.cached, 4);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.made, 5);
    assert_int_equal(st.hits, 1);
    /* Using n0 keeps it; the next new name evicts n1 instead. */
    X509_free(tlsmint_leaf(m, "n0.example", &made));
    assert_false(made);
    X509_free(tlsmint_leaf(m, "fresh.example", NULL));
    X509_free(tlsmint_leaf(m, "n0.example", &made));
    assert_false(made);
    X509_free(tlsmint_leaf(m, "n1.example", &made));
    assert_true(made);
    /* The evicted leaf the caller still holds stays valid. */
    b = tlsmint_leaf(m, "a.example", &made);
    assert_true(made);
    assert_ptr_not_equal(a, b);
    assert_true(verifies(ca, a, "a.example", false));
    X509_free(a);
    X509_free(b);
    tlsmint_free(m);
    X509_free(ca);
    EVP_PKEY_free(cakey);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leaf_verifies),
        cmocka_unit_test(test_leaf_inside_ca),
        cmocka_unit_test(test_cache_lru),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
