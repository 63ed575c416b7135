/*
 * Unit tests for the store of TLS sessions toward origins: a session comes back only for
 * the very key it was filed under, a TLS 1.3 one only once, a TLS 1.2 one until it
 * expires; an expired or unresumable session is never handed out; the store keeps to its
 * bound whatever keys come.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "sluice/tlsresume.h"

/* A cipher a session can name (i2d needs one), from a context made once. */
static const SSL_CIPHER *some_cipher(void)
{
    static SSL_CTX *ctx;
    static SSL *ssl;

    if (ssl == NULL) {
        ctx = SSL_CTX_new(TLS_client_method());
        assert_non_null(ctx);
        ssl = SSL_new(ctx);
        assert_non_null(ssl);
    }
    return sk_SSL_CIPHER_value(SSL_get_ciphers(ssl), 0);
}

/* A session of protocol version, with id (resumable unless id is NULL), made at made for
 * lifetime seconds. */
static SSL_SESSION *session(int version, const char *id, time_t made, long lifetime)
{
    SSL_SESSION *s = SSL_SESSION_new();
    static const unsigned char master[48] = {1, 2, 3};

    assert_non_null(s);
    assert_int_equal(SSL_SESSION_set_protocol_version(s, version), 1);
    assert_int_equal(SSL_SESSION_set_cipher(s, some_cipher()), 1);
    assert_int_equal(SSL_SESSION_set1_master_key(s, master, sizeof(master)), 1);
    if (id != NULL)
        assert_int_equal(SSL_SESSION_set1_id(s, (const unsigned char *)id, strlen(id)), 1);
    SSL_SESSION_set_time(s, made);
    SSL_SESSION_set_timeout(s, lifetime);
    return s;
}

/* The id of s, as text. */
static const char *id_of(const SSL_SESSION *s, char *buf, size_t cap)
{
    unsigned int len = 0;
    const unsigned char *id = SSL_SESSION_get_id(s, &len);

    assert_true(len < cap);
    memcpy(buf, id, len);
    buf[len] = '\0';
    return buf;
}

/* Files s under key, and frees the caller's s (the store keeps a copy). */
static void put(struct tlsresume *r, const char *key, SSL_SESSION *s)
{
    tlsresume_put(r, key, s);
    SSL_SESSION_free(s);
}

/* A TLS 1.3 session: once, for its key alone; prefixes and longer keys get nothing. */
static void test_tls13_once_by_key(void **state)
{
    struct tlsresume *r = tlsresume_new();
    SSL_SESSION *got;
    char id[64];

    (void)state;
    assert_non_null(r);
    put(r, "alpha\n\ntls\norigin.test\n443", session(TLS1_3_VERSION, "one", time(NULL), 300));
    assert_int_equal(tlsresume_count(r), 1);
    assert_null(tlsresume_take(r, "alpha\n\ntls\norigin.test\n8443"));
    assert_null(tlsresume_take(r, "alpha\nbob\ntls\norigin.test\n443"));
    assert_null(tlsresume_take(r, "alpha\n\ntls\norigin.tes"));
    assert_null(tlsresume_take(r, "alpha\n\ntls\norigin.test\n4431"));
    got = tlsresume_take(r, "alpha\n\ntls\norigin.test\n443");
    assert_non_null(got);
    assert_string_equal(id_of(got, id, sizeof(id)), "one");
    SSL_SESSION_free(got);
    assert_null(tlsresume_take(r, "alpha\n\ntls\norigin.test\n443"));
    assert_int_equal(tlsresume_count(r), 0);
    tlsresume_free(r);
}

/* A TLS 1.2 session stays for the next connections; a newer one replaces it. */
static void test_tls12_stays(void **state)
{
    struct tlsresume *r = tlsresume_new();
    char id[64];

    (void)state;
    assert_non_null(r);
    put(r, "k", session(TLS1_2_VERSION, "old", time(NULL), 300));
    put(r, "k", session(TLS1_2_VERSION, "new", time(NULL), 300));
    assert_int_equal(tlsresume_count(r), 1);
    for (int i = 0; i < 3; i++) {
        SSL_SESSION *got = tlsresume_take(r, "k");
        assert_non_null(got);
        assert_string_equal(id_of(got, id, sizeof(id)), "new");
        SSL_SESSION_free(got);
    }
    tlsresume_free(r);
}

/* Expired, or not resumable: never handed out, and the expired one is dropped. */
static void test_expired_and_unresumable(void **state)
{
    struct tlsresume *r = tlsresume_new();

    (void)state;
    assert_non_null(r);
    put(r, "old", session(TLS1_2_VERSION, "x", time(NULL) - 600, 300));
    put(r, "noid", session(TLS1_3_VERSION, NULL, time(NULL), 300));
    assert_int_equal(tlsresume_count(r), 1); /* the one without an id was not kept */
    assert_null(tlsresume_take(r, "old"));
    assert_null(tlsresume_take(r, "noid"));
    assert_int_equal(tlsresume_count(r), 0);
    tlsresume_free(r);
}

/* However many keys come, the store holds at most TLSRESUME_MAX sessions. */
static void test_bounded(void **state)
{
    struct tlsresume *r = tlsresume_new();
    SSL_SESSION *s = session(TLS1_3_VERSION, "s", time(NULL), 300);
    char key[64];
    size_t found = 0;

    (void)state;
    assert_non_null(r);
    for (unsigned i = 0; i < 4 * TLSRESUME_MAX; i++) {
        snprintf(key, sizeof(key), "tool\n\ntls\nhost%u.test\n443", i);
        tlsresume_put(r, key, s);
    }
    SSL_SESSION_free(s);
    assert_true(tlsresume_count(r) <= TLSRESUME_MAX);
    assert_true(tlsresume_count(r) > TLSRESUME_MAX / 2); /* the slots spread */
    for (unsigned i = 0; i < 4 * TLSRESUME_MAX; i++) {
        SSL_SESSION *got;
        snprintf(key, sizeof(key), "tool\n\ntls\nhost%u.test\n443", i);
        if ((got = tlsresume_take(r, key)) != NULL) {
            found++;
            SSL_SESSION_free(got);
        }
    }
    assert_true(found <= TLSRESUME_MAX);
    assert_int_equal(tlsresume_count(r), 0);
    tlsresume_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13_once_by_key),
        cmocka_unit_test(test_tls12_stays),
        cmocka_unit_test(test_expired_and_unresumable),
        cmocka_unit_test(test_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
