/*
 * The PROXY protocol parser: version 1 and 2 headers as HAProxy sends them, every prefix
 * asking for more, and the malformed spellings a client could try to pass for a balancer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "sluice/proxyproto.h"

/* "ip:port" of a parsed address, for comparison. */
static const char *addr_text(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, cap, "none");
    }
    return buf;
}

/* Parses text (with a request after it) and checks the source and the length taken. */
static void expect_v1(const char *header, const char *source, const char *dest)
{
    char buf[256], a[64];
    struct proxyproto_result r;
    const char *why = NULL;
    size_t hlen = strlen(header);

    snprintf(buf, sizeof(buf), "%sGET http://x/ HTTP/1.1\r\n\r\n", header);
    assert_int_equal(proxyproto_parse((const uint8_t *)buf, strlen(buf), &r, &why),
                     PROXYPROTO_DONE);
    assert_int_equal(r.length, hlen);
    assert_int_equal(r.version, 1);
    if (source == NULL) {
        assert_false(r.has_source);
        return;
    }
    assert_true(r.has_source);
    assert_string_equal(addr_text(&r.source, a, sizeof(a)), source);
    assert_string_equal(addr_text(&r.dest, a, sizeof(a)), dest);
    /* Every strict prefix asks for more. */
    for (size_t cut = 0; cut < hlen; cut++)
        assert_int_equal(proxyproto_parse((const uint8_t *)buf, cut, &r, &why),
                         PROXYPROTO_NEED_MORE);
}

/* Version 1 as HAProxy's send-proxy writes it, for IPv4, IPv6 and UNKNOWN. */
static void test_v1(void **state)
{
    (void)state;
    expect_v1("PROXY TCP4 192.0.2.10 198.51.100.2 51234 3128\r\n", "192.0.2.10:51234",
              "198.51.100.2:3128");
    expect_v1("PROXY TCP6 2001:db8::1 2001:db8::2 65535 3128\r\n", "[2001:db8::1]:65535",
              "[2001:db8::2]:3128");
    expect_v1("PROXY TCP4 255.255.255.255 0.0.0.0 0 1\r\n", "255.255.255.255:0", "0.0.0.0:1");
    expect_v1("PROXY UNKNOWN\r\n", NULL, NULL);
    expect_v1("PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n", NULL, NULL);
}

/* Malformed version 1 headers: each is refused, none read as an address. */
static void test_v1_malformed(void **state)
{
    static const char *const bad[] = {
        "PROXY TCP4 192.0.2.10 198.51.100.2 51234 3128\n",     /* bare LF */
        "PROXY  TCP4 192.0.2.10 198.51.100.2 51234 3128\r\n",  /* two spaces */
        "PROXY TCP4 192.0.2.10 198.51.100.2 51234 3128 \r\n",  /* trailing space */
        "PROXY TCP4 192.0.2.10 198.51.100.2 51234\r\n",        /* five fields */
        "PROXY TCP4 192.0.2.10 198.51.100.2 51234 3128 9\r\n", /* seven */
        "PROXY TCP4 2001:db8::1 198.51.100.2 51234 3128\r\n",  /* IPv6 in TCP4 */
        "PROXY TCP6 192.0.2.10 2001:db8::2 51234 3128\r\n",    /* IPv4 in TCP6 */
        "PROXY TCP4 192.0.2.010 198.51.100.2 51234 3128\r\n",  /* octal-looking octet */
        "PROXY TCP4 0x7f.1 198.51.100.2 51234 3128\r\n",       /* not dotted quad */
        "PROXY TCP4 192.0.2.10 198.51.100.2 65536 3128\r\n",   /* port too big */
        "PROXY TCP4 192.0.2.10 198.51.100.2 051234 3128\r\n",  /* leading zero */
        "PROXY TCP4 192.0.2.10 198.51.100.2 +5 3128\r\n",      /* sign */
        "PROXY UDP4 192.0.2.10 198.51.100.2 51234 3128\r\n",   /* not TCP */
        "PROXY tcp4 192.0.2.10 198.51.100.2 51234 3128\r\n",   /* lower case */
        "PROXY TCP4 192.0.2.10\t198.51.100.2 51234 3128\r\n",  /* a tab */
        "PROXY TCP4 192.0.2.1\r0 198.51.100.2 51234 3128\r\n", /* bare CR */
        "PROXYTCP4 192.0.2.10 198.51.100.2 51234 3128\r\n",    /* no space */
        "GET http://x/ HTTP/1.1\r\n\r\n",                      /* plain HTTP */
        "PROXY \r\n",                                          /* nothing */
    };
    struct proxyproto_result r;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (proxyproto_parse((const uint8_t *)bad[i], strlen(bad[i]), &r, &why) !=
            PROXYPROTO_INVALID)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(why);
    }
}

/* A version 1 line without its CRLF within 107 bytes is refused, not waited for. */
static void test_v1_too_long(void **state)
{
    char buf[300];
    struct proxyproto_result r;
    const char *why;

    (void)state;
    memset(buf, '1', sizeof(buf));
    memcpy(buf, "PROXY TCP4 ", 11);
    assert_int_equal(proxyproto_parse((const uint8_t *)buf, 106, &r, &why), PROXYPROTO_NEED_MORE);
    assert_int_equal(proxyproto_parse((const uint8_t *)buf, sizeof(buf), &r, &why),
                     PROXYPROTO_INVALID);
}

/* Builds a version 2 header: command cmd, family fam, addr[0..alen), then tlv bytes. */
static size_t make_v2(uint8_t *out, unsigned cmd, uint8_t fam, const uint8_t *addr, size_t alen,
                      size_t tlv)
{
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    size_t body = alen + tlv;

    memcpy(out, sig, 12);
    out[12] = (uint8_t)(0x20 | cmd);
    out[13] = fam;
    out[14] = (uint8_t)(body >> 8);
    out[15] = (uint8_t)body;
    if (alen > 0)
        memcpy(out + 16, addr, alen);
    memset(out + 16 + alen, 0x04, tlv); /* TLV bytes are skipped whatever they hold */
    return 16 + body;
}

/* Version 2 for IPv4 and IPv6, with TLVs after the addresses, and LOCAL. */
static void test_v2(void **state)
{
    static const uint8_t a4[12] = {192, 0, 2, 10, 198, 51, 100, 2, 0xc8, 0x22, 0x0c, 0x38};
    uint8_t a6[36] = {0x20, 0x01, 0x0d,     0xb8,        [15] = 1, [16] = 0x20, 0x01,
                      0x0d, 0xb8, [31] = 2, [32] = 0xff, 0xff,     0x0c,        0x38};
    uint8_t buf[5000];
    struct proxyproto_result r;
    const char *why;
    char a[64];
    size_t n;

    (void)state;
    n = make_v2(buf, 1, 0x11, a4, sizeof(a4), 0);
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_DONE);
    assert_int_equal(r.length, 28);
    assert_true(r.has_source);
    assert_string_equal(addr_text(&r.source, a, sizeof(a)), "192.0.2.10:51234");
    assert_string_equal(addr_text(&r.dest, a, sizeof(a)), "198.51.100.2:3128");
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(proxyproto_parse(buf, cut, &r, &why), PROXYPROTO_NEED_MORE);

    n = make_v2(buf, 1, 0x21, a6, sizeof(a6), 40);
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_DONE);
    assert_int_equal(r.length, 16 + 36 + 40);
    assert_string_equal(addr_text(&r.source, a, sizeof(a)), "[2001:db8::1]:65535");
    assert_string_equal(addr_text(&r.dest, a, sizeof(a)), "[2001:db8::2]:3128");

    n = make_v2(buf, 0, 0x00, NULL, 0, 0); /* LOCAL: a health check of the balancer */
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_DONE);
    assert_false(r.has_source);
    assert_int_equal(r.length, 16);
}

/* Malformed version 2 headers are refused. */
static void test_v2_malformed(void **state)
{
    static const uint8_t a4[12] = {192, 0, 2, 10, 198, 51, 100, 2, 0xc8, 0x22, 0x0c, 0x38};
    uint8_t buf[5000];
    struct proxyproto_result r;
    const char *why;
    size_t n;

    (void)state;
    n = make_v2(buf, 2, 0x11, a4, sizeof(a4), 0); /* command 2 */
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_INVALID);
    n = make_v2(buf, 1, 0x11, a4, sizeof(a4), 0);
    buf[12] = 0x11; /* version 1 in the binary form */
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_INVALID);
    n = make_v2(buf, 1, 0x12, a4, sizeof(a4), 0); /* UDP */
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_INVALID);
    n = make_v2(buf, 1, 0x11, a4, 8, 0); /* IPv4 block too short */
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_INVALID);
    n = make_v2(buf, 1, 0x21, a4, sizeof(a4), 0); /* IPv6 family, IPv4-sized block */
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_INVALID);
    n = make_v2(buf, 1, 0x11, a4, sizeof(a4), 4096); /* more than 4 KiB after the prefix */
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_INVALID);
    n = make_v2(buf, 1, 0x11, a4, sizeof(a4), 0);
    buf[5] ^= 1; /* a wrong signature byte */
    assert_int_equal(proxyproto_parse(buf, n, &r, &why), PROXYPROTO_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),           cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v1_too_long),  cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v2_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
