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

/*
 * Makes the first flight of an OpenSSL client (sni may be NULL) offering the ALPN list alpn
 * (wire format, alpn_len bytes; none when 0) into buf; returns its length.
 */
static size_t make_client_hello_alpn(const char *sni, const unsigned char *alpn, size_t alpn_len,
                                     uint8_t *buf, size_t cap);

/* Makes the first flight of an OpenSSL client (sni may be NULL) into buf; returns its length. */
static size_t make_client_hello(const char *sni, uint8_t *buf, size_t cap)
{
    return make_client_hello_alpn(sni, NULL, 0, buf, cap);
}

static size_t make_client_hello_alpn(const char *sni, const unsigned char *alpn, size_t alpn_len,
                                     uint8_t *buf, size_t cap)
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
    if (alpn_len > 0)
        assert_int_equal(SSL_set_alpn_protos(ssl, alpn, (unsigned)alpn_len), 0);
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

/* What a byte of a ClientHello is, as this test's own walk of the structure finds it. */
enum ch_role {
    ROLE_FRAME,   /* record or handshake header: covered by the cases below */
    ROLE_CONTENT, /* a value no length depends on: version, random, cipher, extension data */
    ROLE_LENGTH,  /* part of a length prefix */
    ROLE_EXTTYPE, /* part of an extension's type */
    ROLE_SNITYPE, /* the server_name extension's type, or its entry's name_type */
    ROLE_SNINAME, /* a byte of the host name */
};

/* One length prefix: where it is, its width, and how many bytes its container has left. */
struct ch_len {
    size_t off, width, room;
};

/* The map of one single-record ClientHello. */
struct ch_map {
    enum ch_role role[4096];
    struct ch_len lens[64];
    size_t nlens;
};

/* Marks [off, off + n) as role. */
static void map_mark(struct ch_map *m, size_t off, size_t n, enum ch_role role)
{
    for (size_t i = 0; i < n; i++)
        m->role[off + i] = role;
}

/* Reads a big-endian value of width bytes at off. */
static size_t map_uint(const uint8_t *buf, size_t off, size_t width)
{
    size_t v = 0;

    for (size_t i = 0; i < width; i++)
        v = (v << 8) | buf[off + i];
    return v;
}

/* Notes a length prefix at off whose container ends at end; returns the value. */
static size_t map_len(struct ch_map *m, const uint8_t *buf, size_t off, size_t width, size_t end)
{
    assert_true(m->nlens < sizeof(m->lens) / sizeof(m->lens[0]));
    m->lens[m->nlens++] = (struct ch_len){off, width, end - off - width};
    map_mark(m, off, width, ROLE_LENGTH);
    return map_uint(buf, off, width);
}

/* Walks an OpenSSL ClientHello (one record) by RFC 8446 4.1.2 and RFC 6066 3. */
static void map_client_hello(const uint8_t *buf, size_t len, struct ch_map *m)
{
    size_t end = len, p = 43, n;

    memset(m, 0, sizeof(*m));
    assert_true(len <= sizeof(m->role));
    map_mark(m, 0, 9, ROLE_FRAME);
    map_mark(m, 9, 34, ROLE_CONTENT); /* legacy_version, random */
    n = map_len(m, buf, p, 1, end);   /* legacy_session_id */
    map_mark(m, p + 1, n, ROLE_CONTENT);
    p += 1 + n;
    n = map_len(m, buf, p, 2, end); /* cipher_suites */
    map_mark(m, p + 2, n, ROLE_CONTENT);
    p += 2 + n;
    n = map_len(m, buf, p, 1, end); /* compression_methods */
    map_mark(m, p + 1, n, ROLE_CONTENT);
    p += 1 + n;
    n = map_len(m, buf, p, 2, end); /* extensions */
    p += 2;
    assert_int_equal(p + n, end);
    while (p < end) {
        size_t type = map_uint(buf, p, 2), elen;

        map_mark(m, p, 2, type == 0 ? ROLE_SNITYPE : ROLE_EXTTYPE);
        elen = map_len(m, buf, p + 2, 2, end);
        if (type != 0) {
            map_mark(m, p + 4, elen, ROLE_CONTENT);
        } else {
            size_t q = p + 4, eend = p + 4 + elen, nlen;

            map_len(m, buf, q, 2, eend); /* server_name_list */
            map_mark(m, q + 2, 1, ROLE_SNITYPE);
            nlen = map_len(m, buf, q + 3, 2, eend);
            map_mark(m, q + 5, nlen, ROLE_SNINAME);
            assert_int_equal(q + 5 + nlen, eend); /* one name, as OpenSSL sends */
        }
        p += 4 + elen;
    }
}

/*
 * Every byte of a ClientHello flipped in turn gives the result its role calls for: a
 * value nothing depends on leaves the name as it was; a flipped extension type leaves it
 * unless the type became server_name's; the server_name type or name_type flipped gives
 * no name; a name byte made non-ASCII gives CLIENTHELLO_BAD_NAME, the name shown with
 * that byte as %XX.  ASan watches every read.
 */
static void test_flipped_bytes(void **state)
{
    uint8_t buf[4096], bad[4096];
    char sni[256];
    size_t len = make_client_hello("b.test", buf, sizeof(buf));
    static struct ch_map m;
    unsigned checked = 0;

    (void)state;
    map_client_hello(buf, len, &m);
    for (size_t i = 9; i < len; i++) {
        const char *want;

        memcpy(bad, buf, len);
        bad[i] ^= 0xff;
        switch (m.role[i]) {
        case ROLE_CONTENT:
            want = "b.test";
            break;
        case ROLE_EXTTYPE:
            if (map_uint(bad, i - (m.role[i - 1] == ROLE_EXTTYPE ? 1 : 0), 2) == 0) {
                /* A second server_name: the server might read the other one. */
                assert_int_equal(clienthello_parse(bad, len, sni, sizeof(sni)),
                                 CLIENTHELLO_MALFORMED);
                assert_string_equal(sni, "");
                continue;
            }
            want = "b.test";
            break;
        case ROLE_SNITYPE:
            want = "";
            break;
        case ROLE_SNINAME: {
            char shown[32];
            size_t at = 0;
            while (m.role[i - at - 1] == ROLE_SNINAME)
                at++;
            snprintf(shown, sizeof(shown), "%.*s%%%02X%s", (int)at, "b.test", bad[i],
                     &"b.test"[at + 1]);
            assert_int_equal(clienthello_parse(bad, len, sni, sizeof(sni)), CLIENTHELLO_BAD_NAME);
            assert_string_equal(sni, shown);
            checked++;
            continue;
        }
        default:
            continue; /* lengths and frames: test_lengths_past_their_container */
        }
        if (clienthello_parse(bad, len, sni, sizeof(sni)) != CLIENTHELLO_FOUND ||
            strcmp(sni, want) != 0)
            fail_msg("byte %zu (role %d) flipped: result %d, name '%s', expected found '%s'", i,
                     (int)m.role[i], (int)clienthello_parse(bad, len, sni, sizeof(sni)), sni, want);
        checked++;
    }
    assert_true(checked > 100);
}

/* Writes value into the width-byte big-endian field at off. */
static void put_uint(uint8_t *buf, size_t off, size_t width, size_t value)
{
    for (size_t i = 0; i < width; i++)
        buf[off + i] = (uint8_t)(value >> (8 * (width - 1 - i)));
}

/*
 * A length one past what its container holds is malformed, for every length prefix of
 * the message (those that a 1-byte field cannot push past their container are skipped);
 * the handshake length one past the record asks for more; the record length 0, or past
 * 16384, is malformed, and one past the bytes at hand asks for more.
 */
static void test_lengths_past_their_container(void **state)
{
    uint8_t buf[4096], bad[4096];
    char sni[256];
    size_t len = make_client_hello("b.test", buf, sizeof(buf));
    static struct ch_map m;
    unsigned checked = 0;

    (void)state;
    map_client_hello(buf, len, &m);
    for (size_t k = 0; k < m.nlens; k++) {
        const struct ch_len *l = &m.lens[k];

        if (l->room + 1 >= (size_t)1 << (8 * l->width))
            continue;
        memcpy(bad, buf, len);
        put_uint(bad, l->off, l->width, l->room + 1);
        if (clienthello_parse(bad, len, sni, sizeof(sni)) != CLIENTHELLO_MALFORMED)
            fail_msg("length at byte %zu set to %zu (room %zu) was not refused", l->off,
                     l->room + 1, l->room);
        checked++;
    }
    assert_true(checked >= 6); /* cipher suites, extensions, and each extension at least */

    memcpy(bad, buf, len); /* the handshake claims one byte more than the record has */
    put_uint(bad, 6, 3, map_uint(buf, 6, 3) + 1);
    assert_int_equal(clienthello_parse(bad, len, sni, sizeof(sni)), CLIENTHELLO_NEED_MORE);
    put_uint(bad, 6, 3, CLIENTHELLO_MAX_BYTES); /* more than any ClientHello sluice reads */
    assert_int_equal(clienthello_parse(bad, len, sni, sizeof(sni)), CLIENTHELLO_MALFORMED);

    memcpy(bad, buf, len);
    put_uint(bad, 3, 2, 0);
    assert_int_equal(clienthello_parse(bad, len, sni, sizeof(sni)), CLIENTHELLO_MALFORMED);
    put_uint(bad, 3, 2, 16385);
    assert_int_equal(clienthello_parse(bad, len, sni, sizeof(sni)), CLIENTHELLO_MALFORMED);
    put_uint(bad, 3, 2, len - 5 + 1);
    assert_int_equal(clienthello_parse(bad, len, sni, sizeof(sni)), CLIENTHELLO_NEED_MORE);
}

/*
 * Two server_name extensions, or two host names in one, are malformed and give no name:
 * sluice and the server must not be able to read different names from one hello.  So are
 * bytes after the extensions.
 */
static void test_two_names_malformed(void **state)
{
    uint8_t buf[4096], bad[4200];
    char sni[256];
    size_t len = make_client_hello("b.test", buf, sizeof(buf));
    static struct ch_map m;
    size_t sni_at = 0, sni_len, ext_len_at = 0;
    /* A second server_name extension for evil.test. */
    static const uint8_t second[] = {0,   0,   0,   14,  0,   12,  0,   0,   9,
                                     'e', 'v', 'i', 'l', '.', 't', 'e', 's', 't'};

    (void)state;
    map_client_hello(buf, len, &m);
    for (size_t i = 9; i + 1 < len && sni_at == 0; i++)
        if (m.role[i] == ROLE_SNITYPE && m.role[i + 1] == ROLE_SNITYPE)
            sni_at = i;
    assert_true(sni_at != 0);
    sni_len = 4 + map_uint(buf, sni_at + 2, 2);
    for (size_t k = 0; k < m.nlens && ext_len_at == 0; k++)
        if (m.lens[k].width == 2 && m.lens[k].off + 2 + m.lens[k].room == len &&
            m.lens[k].room == map_uint(buf, m.lens[k].off, 2))
            ext_len_at = m.lens[k].off; /* the first to run to the end: the extensions' */
    assert_true(ext_len_at != 0);

    /* The evil name appended as a second extension, every length grown to match. */
    memcpy(bad, buf, len);
    memcpy(bad + len, second, sizeof(second));
    put_uint(bad, 3, 2, len - 5 + sizeof(second));
    put_uint(bad, 6, 3, len - 9 + sizeof(second));
    put_uint(bad, ext_len_at, 2, map_uint(buf, ext_len_at, 2) + sizeof(second));
    assert_int_equal(clienthello_parse(bad, len + sizeof(second), sni, sizeof(sni)),
                     CLIENTHELLO_MALFORMED);
    assert_string_equal(sni, "");

    /* The same extension alone parses: the test builds it right. */
    memcpy(bad, buf, len);
    memcpy(bad + sni_at, second, sizeof(second));
    memcpy(bad + sni_at + sizeof(second), buf + sni_at + sni_len, len - sni_at - sni_len);
    {
        size_t grow = sizeof(second) - sni_len, blen = len + grow;
        put_uint(bad, 3, 2, blen - 5);
        put_uint(bad, 6, 3, blen - 9);
        put_uint(bad, ext_len_at, 2, map_uint(buf, ext_len_at, 2) + grow);
        assert_int_equal(clienthello_parse(bad, blen, sni, sizeof(sni)), CLIENTHELLO_FOUND);
        assert_string_equal(sni, "evil.test");
    }

    /* A byte after the extensions, inside the handshake message. */
    memcpy(bad, buf, len);
    bad[len] = 0;
    put_uint(bad, 3, 2, len - 5 + 1);
    put_uint(bad, 6, 3, len - 9 + 1);
    assert_int_equal(clienthello_parse(bad, len + 1, sni, sizeof(sni)), CLIENTHELLO_MALFORMED);
}

/* A zero-length record is malformed. */
static void test_empty_record(void **state)
{
    static const uint8_t rec[] = {22, 3, 1, 0, 0};
    char sni[256];

    (void)state;
    assert_int_equal(clienthello_parse(rec, sizeof(rec), sni, sizeof(sni)), CLIENTHELLO_MALFORMED);
}

/* A name longer than the caller's buffer is not taken for no name: it is shown, cut. */
static void test_sni_too_long_for_buffer(void **state)
{
    uint8_t buf[4096];
    char sni[8];
    size_t len = make_client_hello("long-name.example.com", buf, sizeof(buf));

    (void)state;
    assert_int_equal(clienthello_parse(buf, len, sni, sizeof(sni)), CLIENTHELLO_BAD_NAME);
    assert_string_equal(sni, "long...");
}

/*
 * A server name that is present but not a host name is CLIENTHELLO_BAD_NAME, never "no
 * name" (which leaves a tunnel to go on unchecked): a port, a space, an IP literal, a
 * control byte, a NUL, more than 253 bytes, nothing at all.  The name is shown as sent,
 * every byte but letters, digits, '-', '.', '_' and ':' as %XX, cut to fit with "...".
 */
static void test_bad_names(void **state)
{
    static const struct {
        const char *name, *shown;
    } cases[] = {
        {"vm:1", "vm:1"},
        {"vm ", "vm%20"},
        {"VM:443", "VM:443"},
        {"::1", "::1"},
        {"[::1]", "%5B::1%5D"},
        {"a\x01"
         "b",
         "a%01b"},
        {"a/b", "a%2Fb"},
        {"100%", "100%25"},
        {"caf\xc3\xa9", "caf%C3%A9"},
        {"a\"b\\c", "a%22b%5Cc"},
        {"host\r\nX", "host%0D%0AX"},
    };
    uint8_t buf[4096];
    char sni[256], name[300];
    unsigned alpn = 9;
    size_t len, at = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = make_client_hello(cases[i].name, buf, sizeof(buf));
        if (clienthello_parse_alpn(buf, len, sni, sizeof(sni), &alpn) != CLIENTHELLO_BAD_NAME ||
            strcmp(sni, cases[i].shown) != 0)
            fail_msg("'%s': result %d, shown '%s', expected bad-name '%s'", cases[i].shown,
                     (int)clienthello_parse(buf, len, sni, sizeof(sni)), sni, cases[i].shown);
        assert_int_equal(alpn, 0);
    }
    assert_string_equal(clienthello_result_str(CLIENTHELLO_BAD_NAME), "bad-name");

    /* A NUL inside the name (OpenSSL takes a C string, so it is put in afterwards). */
    len = make_client_hello("a.test", buf, sizeof(buf));
    for (size_t i = 0; i + 6 <= len && at == 0; i++)
        if (memcmp(buf + i, "a.test", 6) == 0)
            at = i;
    assert_true(at > 0);
    buf[at + 1] = '\0';
    assert_int_equal(clienthello_parse(buf, len, sni, sizeof(sni)), CLIENTHELLO_BAD_NAME);
    assert_string_equal(sni, "a%00test");
    /* The same hello with an empty host name: the name taken out, every length around
     * it (record, handshake, extensions, server_name, its list, the name) made smaller. */
    {
        static struct ch_map m;
        size_t ext_len_at = 0;

        buf[at + 1] = '.';
        map_client_hello(buf, len, &m);
        for (size_t k = 0; k < m.nlens && ext_len_at == 0; k++)
            if (m.lens[k].width == 2 && m.lens[k].off + 2 + m.lens[k].room == len &&
                m.lens[k].room == map_uint(buf, m.lens[k].off, 2))
                ext_len_at = m.lens[k].off; /* the first to run to the end: the extensions' */
        assert_true(ext_len_at != 0);
        memmove(buf + at, buf + at + 6, len - at - 6);
        len -= 6;
        put_uint(buf, 3, 2, len - 5);
        put_uint(buf, 6, 3, len - 9);
        put_uint(buf, ext_len_at, 2, map_uint(buf, ext_len_at, 2) - 6);
        put_uint(buf, at - 7, 2, map_uint(buf, at - 7, 2) - 6); /* server_name */
        put_uint(buf, at - 5, 2, map_uint(buf, at - 5, 2) - 6); /* its list */
        put_uint(buf, at - 2, 2, 0);                            /* the name */
        assert_int_equal(clienthello_parse(buf, len, sni, sizeof(sni)), CLIENTHELLO_BAD_NAME);
        assert_string_equal(sni, "");
    }

    /* 253 bytes is a host name; 254 is not, and the shown name is cut to fit. */
    memset(name, 'a', sizeof(name));
    for (size_t i = 63; i < 253; i += 64)
        name[i] = '.';
    name[253] = '\0';
    len = make_client_hello(name, buf, sizeof(buf));
    assert_int_equal(clienthello_parse(buf, len, sni, sizeof(sni)), CLIENTHELLO_FOUND);
    assert_string_equal(sni, name);
    name[253] = 'a';
    name[254] = '\0';
    len = make_client_hello(name, buf, sizeof(buf));
    assert_int_equal(clienthello_parse(buf, len, sni, sizeof(sni)), CLIENTHELLO_BAD_NAME);
    assert_string_equal(sni, name);
    len = make_client_hello("a b c d e f g h", buf, sizeof(buf));
    assert_int_equal(clienthello_parse(buf, len, sni, 12), CLIENTHELLO_BAD_NAME);
    assert_string_equal(sni, "a%20b%20...");
}

/* ALPN: what is offered is told apart -- h2 only, both, http/1.1 only, none. */
static void test_alpn_offers(void **state)
{
    static const struct {
        const char *wire;
        size_t len;
        unsigned want;
    } cases[] = {
        {"\x02h2", 3, CLIENTHELLO_ALPN_OFFERED | CLIENTHELLO_ALPN_H2},
        {"\x02h2\x08http/1.1", 12,
         CLIENTHELLO_ALPN_OFFERED | CLIENTHELLO_ALPN_H2 | CLIENTHELLO_ALPN_HTTP11},
        {"\x08http/1.1", 9, CLIENTHELLO_ALPN_OFFERED | CLIENTHELLO_ALPN_HTTP11},
        {"\x06spdy/3", 7, CLIENTHELLO_ALPN_OFFERED},
        {"", 0, 0},
    };
    uint8_t buf[4096];
    char sni[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned alpn = 99;
        size_t len = make_client_hello_alpn("h.example", (const unsigned char *)cases[i].wire,
                                            cases[i].len, buf, sizeof(buf));
        assert_int_equal(clienthello_parse_alpn(buf, len, sni, sizeof(sni), &alpn),
                         CLIENTHELLO_FOUND);
        assert_int_equal(alpn, cases[i].want);
        assert_string_equal(sni, "h.example");
    }
}

/*
 * An ALPN list whose names do not fit it, or hold an empty one, counts as no ALPN; the
 * hello is not spoilt by it, so its server name is still decided (a malformed hello would
 * be relayed without one).
 */
static void test_alpn_malformed(void **state)
{
    uint8_t buf[4096];
    char sni[256];
    unsigned alpn = 0;
    size_t len = make_client_hello_alpn("api.example.com", (const unsigned char *)"\x02h2", 3, buf,
                                        sizeof(buf));
    size_t at = 0;

    (void)state;
    /* Find the extension (type 16, then its length, then the list length 3, "\x02h2"). */
    for (size_t i = 0; i + 9 <= len; i++)
        if (memcmp(buf + i, "\x00\x10\x00\x05\x00\x03\x02h2", 9) == 0)
            at = i;
    assert_true(at > 0);
    buf[at + 6] = 3; /* a name longer than its list */
    assert_int_equal(clienthello_parse_alpn(buf, len, sni, sizeof(sni), &alpn), CLIENTHELLO_FOUND);
    assert_int_equal(alpn, 0);
    assert_string_equal(sni, "api.example.com");
    buf[at + 6] = 0; /* an empty name */
    assert_int_equal(clienthello_parse_alpn(buf, len, sni, sizeof(sni), &alpn), CLIENTHELLO_FOUND);
    assert_int_equal(alpn, 0);
    assert_string_equal(sni, "api.example.com");
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
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_lengths_past_their_container),
        cmocka_unit_test(test_two_names_malformed),
        cmocka_unit_test(test_empty_record),
        cmocka_unit_test(test_sni_too_long_for_buffer),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_alpn_offers),
        cmocka_unit_test(test_alpn_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
