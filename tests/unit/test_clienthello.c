/*
 * Unit tests for the ClientHello peek: real ClientHellos made by OpenSSL in memory, cut at
 * every length, fragmented over several records, without SNI, and corrupted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "sluice/clienthello.h"

/* Makes the first flight of an OpenSSL client (sni may be NULL) into buf; returns its length. */
static size_t make_client_hello(const char *sni, uint8_t *buf, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl;
    BIO *rbio, *wbio;
    int n;

    assert_non_null(ctx);
    ssl = SSL_new(ctx);
    assert_non_null(ssl);
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rbio, wbio);
    if (sni != NULL) {
        char name[256]; /* OpenSSL's macro casts the name to a non-const pointer */
        snprintf(name, sizeof(name), "%s", sni);
        assert_int_equal(SSL_set_tlsext_host_name(ssl, name), 1);
    }
    assert_true(SSL_connect(ssl) <= 0); /* wants to read the ServerHello */
    n = BIO_read(wbio, buf, (int)cap);
    assert_true(n > 0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return (size_t)n;
}

/* Re-frames one record's handshake bytes into records of at most frag bytes each. */
static size_t refragment(const uint8_t *in, size_t inlen, size_t frag, uint8_t *out, size_t cap)
{
    size_t body = ((size_t)in[3] << 8) | in[4], o = 0;

    assert_true(inlen >= 5 + body);
    for (size_t off = 0; off < body; off += frag) {
        size_t n = body - off < frag ? body - off : frag;
        assert_true(o + 5 + n <= cap);
        out[o] = in[0];
        out[o + 1] = in[1];
        out[o + 2] = in[2];
        out[o + 3] = (uint8_t)(n >> 8);
        out[o + 4] = (uint8_t)n;
        memcpy(out + o + 5, in + 5 + off, n);
        o += 5 + n;
    }
    return o;
}

/* A ClientHello with SNI gives the name, lower-cased. */
static void test_found_sni(void **state)
{
    uint8_t buf[4096];
    char sni[256];
    size_t len = make_client_hello("Api.Example.COM", buf, sizeof(buf));

    (void)state;
    assert_int_equal(clienthello_parse(buf, len, sni, sizeof(sni)), CLIENTHELLO_FOUND);
    assert_string_equal(sni, "api.example.com");
}

/* Every strict prefix of the record asks for more bytes. */
static void test_every_prefix_needs_more(void **state)
{
    uint8_t buf[4096];
    char sni[256];
    size_t len = make_client_hello("origin.test", buf, sizeof(buf));

    (void)state;
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(clienthello_parse(buf, cut, sni, sizeof(sni)), CLIENTHELLO_NEED_MORE);
}

/* A handshake split over many small records is reassembled. */
static void test_fragmented_records(void **state)
{
    uint8_t buf[4096], frag[8192];
    char sni[256];
    size_t len = make_client_hello("frag.example.org", buf, sizeof(buf));
    size_t flen = refragment(buf, len, 50, frag, sizeof(frag));

    (void)state;
    assert_int_equal(clienthello_parse(frag, flen, sni, sizeof(sni)), CLIENTHELLO_FOUND);
    assert_string_equal(sni, "frag.example.org");
    assert_int_equal(clienthello_parse(frag, flen - 1, sni, sizeof(sni)), CLIENTHELLO_NEED_MORE);
}

/* No server_name extension: found, with an empty name. */
static void test_no_sni(void **state)
{
    uint8_t buf[4096];
    char sni[256] = "x";
    size_t len = make_client_hello(NULL, buf, sizeof(buf));

    (void)state;
    assert_int_equal(clienthello_parse(buf, len, sni, sizeof(sni)), CLIENTHELLO_FOUND);
    assert_string_equal(sni, "");
}

/* Plain text in a tunnel is not TLS, from its first byte. */
static void test_not_tls(void **state)
{
    static const uint8_t http[] = "GET / HTTP/1.1\r\n";
    static const uint8_t ssh[] = "SSH-2.0-OpenSSH_9.2\r\n";
    char sni[256];

    (void)state;
    assert_int_equal(clienthello_parse(http, 1, sni, sizeof(sni)), CLIENTHELLO_NOT_TLS);
    assert_int_equal(clienthello_parse(ssh, sizeof(ssh) - 1, sni, sizeof(sni)),
                     CLIENTHELLO_NOT_TLS);
}

/* A handshake record whose message is not a ClientHello is malformed. */
static void test_not_client_hello(void **state)
{
    uint8_t buf[4096];
    char sni[256];
    size_t len = make_client_hello("a.test", buf, sizeof(buf));

    (void)state;
    buf[5] = 2; /* ServerHello */
    assert_int_equal(clienthello_parse(buf, len, sni, sizeof(sni)), CLIENTHELLO_MALFORMED);
}

/* Lengths that point past their container are malformed, never read out of bounds. */
static void test_corrupt_lengths(void **state)
{
    uint8_t buf[4096], bad[4096];
    char sni[256];
    size_t len = make_client_hello("b.test", buf, sizeof(buf));

    (void)state;
    /* Flip every byte of the handshake body in turn; the parser must stay in bounds
     * (ASan watches) and never claim a name that is not a valid host name. */
    for (size_t i = 9; i < len; i++) {
        enum clienthello_result r;
        memcpy(bad, buf, len);
        bad[i] ^= 0xff;
        r = clienthello_parse(bad, len, sni, sizeof(sni));
        assert_true(r == CLIENTHELLO_FOUND || r == CLIENTHELLO_MALFORMED ||
                    r == CLIENTHELLO_NEED_MORE);
        if (r == CLIENTHELLO_FOUND)
            assert_true(sni[0] == '\0' ||
                        strspn(sni, "abcdefghijklmnopqrstuvwxyz0123456789-._") == strlen(sni));
    }
}

/* A zero-length record is malformed. */
static void test_empty_record(void **state)
{
    static const uint8_t rec[] = {22, 3, 1, 0, 0};
    char sni[256];

    (void)state;
    assert_int_equal(clienthello_parse(rec, sizeof(rec), sni, sizeof(sni)), CLIENTHELLO_MALFORMED);
}

/* A name longer than the caller's buffer is reported as no name. */
static void test_sni_too_long_for_buffer(void **state)
{
    uint8_t buf[4096];
    char sni[8];
    size_t len = make_client_hello("long-name.example.com", buf, sizeof(buf));

    (void)state;
    assert_int_equal(clienthello_parse(buf, len, sni, sizeof(sni)), CLIENTHELLO_FOUND);
    assert_string_equal(sni, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_sni),
        cmocka_unit_test(test_every_prefix_needs_more),
        cmocka_unit_test(test_fragmented_records),
        cmocka_unit_test(test_no_sni),
        cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_not_client_hello),
        cmocka_unit_test(test_corrupt_lengths),
        cmocka_unit_test(test_empty_record),
        cmocka_unit_test(test_sni_too_long_for_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
