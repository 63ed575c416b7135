/*
 * Unit tests for the address guard: every spelling of an IP literal, names and garbage
 * that are not literals, each class with boundary addresses inside and just outside, the
 * IPv6 forms that embed IPv4, CIDR sets, class names, formatting and the self set.
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
#include <sys/un.h>

#include "sluice/netguard.h"

/* Parses text as a literal and fails the test when it is not one. */
static struct netguard_addr parse(const char *text)
{
    struct netguard_addr a;

    if (!netguard_parse_literal(text, strlen(text), &a))
        fail_msg("\"%s\" should be an IP literal", text);
    return a;
}

/* Asserts that text is an IPv4 literal whose canonical form is want. */
static void expect_v4(const char *text, const char *want)
{
    struct netguard_addr a = parse(text);
    char got[NETGUARD_ADDRSTRLEN];

    netguard_format(&a, got, sizeof(got));
    if (a.family != AF_INET || strcmp(got, want) != 0)
        fail_msg("\"%s\" parsed to %s (family %d), expected IPv4 %s", text, got, a.family, want);
}

/* Asserts that text is an IPv6 literal whose canonical form is want. */
static void expect_v6(const char *text, const char *want)
{
    struct netguard_addr a = parse(text);
    char got[NETGUARD_ADDRSTRLEN];

    netguard_format(&a, got, sizeof(got));
    if (a.family != AF_INET6 || strcmp(got, want) != 0)
        fail_msg("\"%s\" parsed to %s (family %d), expected IPv6 %s", text, got, a.family, want);
}

/* Asserts that text is not an IP literal. */
static void expect_not_literal(const char *text)
{
    struct netguard_addr a;
    char got[NETGUARD_ADDRSTRLEN];

    if (netguard_parse_literal(text, strlen(text), &a)) {
        netguard_format(&a, got, sizeof(got));
        fail_msg("\"%s\" should not be an IP literal, parsed to %s", text, got);
    }
}

/* Asserts that the literal text has exactly the classes want. */
static void expect_classes(const char *text, uint32_t want)
{
    struct netguard_addr a = parse(text);
    uint32_t got = netguard_classify(&a);
    char g[128], w[128];

    if (got != want) {
        netguard_classes_format(got, g, sizeof(g));
        netguard_classes_format(want, w, sizeof(w));
        fail_msg("\"%s\" classified as %s, expected %s", text, g, w);
    }
}

/* Asserts that the literal text has at least the classes want. */
static void expect_has_classes(const char *text, uint32_t want)
{
    struct netguard_addr a = parse(text);
    uint32_t got = netguard_classify(&a);
    char g[128], w[128];

    if ((got & want) != want) {
        netguard_classes_format(got, g, sizeof(g));
        netguard_classes_format(want, w, sizeof(w));
        fail_msg("\"%s\" classified as %s, expected at least %s", text, g, w);
    }
}

/* A single decimal number is the whole 32-bit address. */
static void test_literal_decimal(void **state)
{
    (void)state;
    expect_v4("2130706433", "127.0.0.1");
    expect_classes("2130706433", NETGUARD_LOOPBACK);
    expect_v4("0", "0.0.0.0");
    expect_v4("4294967295", "255.255.255.255");
}

/* Hex parts, any case, including a bare "0x" as browsers have it. */
static void test_literal_hex(void **state)
{
    (void)state;
    expect_v4("0x7f000001", "127.0.0.1");
    expect_v4("0X7F000001", "127.0.0.1");
    expect_classes("0x7f000001", NETGUARD_LOOPBACK);
    expect_v4("0x7f.0x0.0x0.0x1", "127.0.0.1");
    expect_v4("0x0000007f.1", "127.0.0.1");
    expect_v4("0x", "0.0.0.0");
}

/* A leading zero makes a part octal. */
static void test_literal_octal(void **state)
{
    (void)state;
    expect_v4("0177.0.0.1", "127.0.0.1");
    expect_classes("0177.0.0.1", NETGUARD_LOOPBACK);
    expect_v4("0177.00.000.01", "127.0.0.1");
    expect_v4("000000000000000000000177.1", "127.0.0.1");
    expect_v4("017700000001", "127.0.0.1");
}

/* With fewer than four parts the last fills the remaining bytes. */
static void test_literal_short_forms(void **state)
{
    (void)state;
    expect_v4("127.1", "127.0.0.1");
    expect_v4("127.0.1", "127.0.0.1");
    expect_v4("0x7f.1", "127.0.0.1");
    expect_classes("127.1", NETGUARD_LOOPBACK);
    expect_v4("1.2.3", "1.2.0.3");
    expect_v4("1.2.65535", "1.2.255.255");
    expect_v4("1.16777215", "1.255.255.255");
    expect_v4("169.254.43518", "169.254.169.254");
}

/* An IPv4-mapped IPv6 literal is the IPv4 address itself. */
static void test_literal_mapped(void **state)
{
    (void)state;
    expect_v4("[::ffff:127.0.0.1]", "127.0.0.1");
    expect_classes("[::ffff:127.0.0.1]", NETGUARD_LOOPBACK);
    expect_v4("[::ffff:7f00:1]", "127.0.0.1");
    expect_v4("::ffff:127.0.0.1", "127.0.0.1");
    expect_v4("[0:0:0:0:0:FFFF:7F00:0001]", "127.0.0.1");
}

/* IPv6, bracketed or not, in any case and with or without "::". */
static void test_literal_ipv6(void **state)
{
    (void)state;
    expect_v6("[::1]", "::1");
    expect_v6("::1", "::1");
    expect_classes("[::1]", NETGUARD_LOOPBACK);
    expect_v6("0:0:0:0:0:0:0:1", "::1");
    expect_v6("[2001:DB8::A]", "2001:db8::a");
    expect_v6("::", "::");
    expect_v6("[fe80::1]", "fe80::1");
}

/* Zone ids are refused in every spelling. */
static void test_literal_zone_refused(void **state)
{
    (void)state;
    expect_not_literal("fe80::1%eth0");
    expect_not_literal("[fe80::1%eth0]");
    expect_not_literal("[fe80::1%25eth0]");
    expect_not_literal("[::1%1]");
}

/* One trailing dot is allowed, as in a URL; two are not. */
static void test_literal_trailing_dot(void **state)
{
    (void)state;
    expect_v4("127.0.0.1.", "127.0.0.1");
    expect_v4("2130706433.", "127.0.0.1");
    expect_not_literal("127.0.0.1..");
    expect_not_literal(".");
}

/* Only host[0..len) is read: the bytes after it do not count. */
static void test_literal_length_respected(void **state)
{
    struct netguard_addr a;
    char got[NETGUARD_ADDRSTRLEN];

    (void)state;
    assert_true(netguard_parse_literal("127.0.0.1:8080", 9, &a));
    netguard_format(&a, got, sizeof(got));
    assert_string_equal(got, "127.0.0.1");
    assert_true(netguard_parse_literal("[::1]:443", 5, &a));
    assert_int_equal(a.family, AF_INET6);
    assert_false(netguard_parse_literal("127.0.0.1", 0, &a));
    assert_false(netguard_parse_literal(NULL, 3, &a));
}

/* Host names are not literals, including ones that look partly numeric. */
static void test_not_literal_names(void **state)
{
    (void)state;
    expect_not_literal("example.com");
    expect_not_literal("localhost");
    expect_not_literal("1.2.3.com");
    expect_not_literal("cafe.babe");
    expect_not_literal("0x7f.example");
    expect_not_literal("a1");
    expect_not_literal("1e3");
    expect_not_literal("-1");
    expect_not_literal("+1");
    expect_not_literal("1.2.3.4 ");
    expect_not_literal(" 1.2.3.4");
}

/* More than four parts is not IPv4. */
static void test_not_literal_five_parts(void **state)
{
    (void)state;
    expect_not_literal("1.2.3.4.5");
    expect_not_literal("0.0.0.0.0");
}

/* A part that overflows its room makes the whole thing not an address. */
static void test_not_literal_overflow(void **state)
{
    (void)state;
    expect_not_literal("256.0.0.1");
    expect_not_literal("1.256.0.1");
    expect_not_literal("1.2.3.256");
    expect_not_literal("1.2.65536");
    expect_not_literal("1.16777216");
    expect_not_literal("0x100000000");
    expect_not_literal("4294967296");
    expect_not_literal("99999999999999999999999");
    expect_not_literal("0x1ffffffffffffffff");
    expect_not_literal("040000000000");
}

/* Digits outside a part's base, and empty parts. */
static void test_not_literal_bad_parts(void **state)
{
    (void)state;
    expect_not_literal("08.0.0.1");
    expect_not_literal("09");
    expect_not_literal("0x7g.0.0.1");
    expect_not_literal("1..2");
    expect_not_literal(".1.2");
    expect_not_literal("1.2.3.4..");
    expect_not_literal("0xx1");
}

/* The empty string is nothing. */
static void test_not_literal_empty(void **state)
{
    (void)state;
    expect_not_literal("");
    expect_not_literal("[]");
}

/* Unbalanced brackets, IPv4 in brackets and malformed IPv6. */
static void test_not_literal_brackets_and_ipv6(void **state)
{
    (void)state;
    expect_not_literal("[::1");
    expect_not_literal("::1]");
    expect_not_literal("[[::1]]");
    expect_not_literal("[127.0.0.1]");
    expect_not_literal(":::");
    expect_not_literal("1:2:3:4:5:6:7:8:9");
    expect_not_literal("::ffff:0x7f.1");
    expect_not_literal("::ffff:127.1");
    expect_not_literal("1::2::3");
    expect_not_literal("12345::1");
    expect_not_literal("[::g]");
}

/* Loopback: 127.0.0.0/8 and ::1 only. */
static void test_class_loopback(void **state)
{
    (void)state;
    expect_classes("126.255.255.255", 0);
    expect_classes("127.0.0.0", NETGUARD_LOOPBACK);
    expect_classes("127.255.255.255", NETGUARD_LOOPBACK);
    expect_classes("128.0.0.0", 0);
    expect_classes("::1", NETGUARD_LOOPBACK);
}

/* Private: the three RFC 1918 blocks, edge to edge. */
static void test_class_private(void **state)
{
    (void)state;
    expect_classes("9.255.255.255", 0);
    expect_classes("10.0.0.0", NETGUARD_PRIVATE);
    expect_classes("10.255.255.255", NETGUARD_PRIVATE);
    expect_classes("11.0.0.0", 0);
    expect_classes("172.15.255.255", 0);
    expect_classes("172.16.0.0", NETGUARD_PRIVATE);
    expect_classes("172.31.255.255", NETGUARD_PRIVATE);
    expect_classes("172.32.0.0", 0);
    expect_classes("192.167.255.255", 0);
    expect_classes("192.168.0.0", NETGUARD_PRIVATE);
    expect_classes("192.168.255.255", NETGUARD_PRIVATE);
    expect_classes("192.169.0.0", 0);
}

/* Link-local: 169.254.0.0/16 and fe80::/10. */
static void test_class_link_local(void **state)
{
    (void)state;
    expect_classes("169.253.255.255", 0);
    expect_classes("169.254.0.0", NETGUARD_LINK_LOCAL);
    expect_classes("169.254.255.255", NETGUARD_LINK_LOCAL);
    expect_classes("169.255.0.0", 0);
    expect_classes("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_RESERVED);
    expect_classes("fe80::", NETGUARD_LINK_LOCAL);
    expect_classes("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_LINK_LOCAL);
    expect_classes("fec0::", NETGUARD_RESERVED);
}

/* Metadata: the listed addresses, each with its other class; their neighbours are not. */
static void test_class_metadata(void **state)
{
    (void)state;
    expect_classes("169.254.169.254", NETGUARD_LINK_LOCAL | NETGUARD_METADATA);
    expect_classes("169.254.169.253", NETGUARD_LINK_LOCAL);
    expect_classes("169.254.169.255", NETGUARD_LINK_LOCAL);
    expect_classes("169.254.170.2", NETGUARD_LINK_LOCAL | NETGUARD_METADATA);
    expect_classes("169.254.170.3", NETGUARD_LINK_LOCAL);
    expect_classes("169.254.170.23", NETGUARD_LINK_LOCAL | NETGUARD_METADATA);
    expect_classes("169.254.0.23", NETGUARD_LINK_LOCAL | NETGUARD_METADATA);
    expect_classes("169.254.42.42", NETGUARD_LINK_LOCAL | NETGUARD_METADATA);
    expect_classes("100.100.100.200", NETGUARD_CGNAT | NETGUARD_METADATA);
    expect_classes("100.100.100.201", NETGUARD_CGNAT);
    expect_classes("192.0.0.192", NETGUARD_RESERVED | NETGUARD_METADATA);
    expect_classes("192.0.0.193", NETGUARD_RESERVED);
    expect_classes("168.63.129.16", NETGUARD_METADATA);
    expect_classes("168.63.129.17", 0);
    expect_classes("fd00:ec2::254", NETGUARD_UNIQUE_LOCAL | NETGUARD_METADATA);
    expect_classes("fd00:ec2::255", NETGUARD_UNIQUE_LOCAL);
    expect_classes("fd00:ec2::23", NETGUARD_UNIQUE_LOCAL | NETGUARD_METADATA);
    expect_classes("fd20:ce::254", NETGUARD_UNIQUE_LOCAL | NETGUARD_METADATA);
    expect_classes("fd00:42::42", NETGUARD_UNIQUE_LOCAL | NETGUARD_METADATA);
}

/* 169.254.169.254 is metadata however it is written or wrapped. */
static void test_metadata_spellings(void **state)
{
    static const char *const spellings[] = {
        "169.254.169.254",
        "2852039166",
        "0xa9fea9fe",
        "0251.0376.0251.0376",
        "0xa9.0xfe.0xa9.0xfe",
        "169.254.43518",
        "169.16689662",
        "169.254.169.254.",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[64:ff9b::a9fe:a9fe]",
        "[64:ff9b::169.254.169.254]",
        "[64:ff9b:1::a9fe:a9fe]",
        "[2002:a9fe:a9fe::]",
        "[2002:a9fe:a9fe:1234::1]",
        "[::169.254.169.254]",
        "[2001:0:4136:e378:8000:63bf:5601:5601]",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++)
        expect_has_classes(spellings[i], NETGUARD_METADATA | NETGUARD_LINK_LOCAL);
}

/* CGNAT: 100.64.0.0/10. */
static void test_class_cgnat(void **state)
{
    (void)state;
    expect_classes("100.63.255.255", 0);
    expect_classes("100.64.0.0", NETGUARD_CGNAT);
    expect_classes("100.127.255.255", NETGUARD_CGNAT);
    expect_classes("100.128.0.0", 0);
}

/* Unique local: fc00::/7. */
static void test_class_unique_local(void **state)
{
    (void)state;
    expect_classes("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_RESERVED);
    expect_classes("fc00::", NETGUARD_UNIQUE_LOCAL);
    expect_classes("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_UNIQUE_LOCAL);
    expect_classes("fe00::", NETGUARD_RESERVED);
}

/* Multicast: 224.0.0.0/4 and ff00::/8. */
static void test_class_multicast(void **state)
{
    (void)state;
    expect_classes("223.255.255.255", 0);
    expect_classes("224.0.0.0", NETGUARD_MULTICAST);
    expect_classes("239.255.255.255", NETGUARD_MULTICAST);
    expect_classes("240.0.0.0", NETGUARD_RESERVED);
    expect_classes("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_RESERVED);
    expect_classes("ff00::", NETGUARD_MULTICAST);
    expect_classes("ff02::1", NETGUARD_MULTICAST);
    expect_classes("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_MULTICAST);
}

/* Unspecified: 0.0.0.0/8 and ::. */
static void test_class_unspecified(void **state)
{
    (void)state;
    expect_classes("0.0.0.0", NETGUARD_UNSPECIFIED);
    expect_classes("0.255.255.255", NETGUARD_UNSPECIFIED);
    expect_classes("1.0.0.0", 0);
    expect_classes("::", NETGUARD_UNSPECIFIED);
}

/* Reserved IPv4: protocol assignments, documentation, benchmarking, 240/4, broadcast. */
static void test_class_reserved_v4(void **state)
{
    (void)state;
    expect_classes("191.255.255.255", 0);
    expect_classes("192.0.0.0", NETGUARD_RESERVED);
    expect_classes("192.0.0.255", NETGUARD_RESERVED);
    expect_classes("192.0.1.0", 0);
    expect_classes("192.0.2.0", NETGUARD_RESERVED);
    expect_classes("192.0.2.255", NETGUARD_RESERVED);
    expect_classes("192.0.3.0", 0);
    expect_classes("192.88.99.1", NETGUARD_RESERVED);
    expect_classes("192.88.100.0", 0);
    expect_classes("198.17.255.255", 0);
    expect_classes("198.18.0.0", NETGUARD_RESERVED);
    expect_classes("198.19.255.255", NETGUARD_RESERVED);
    expect_classes("198.20.0.0", 0);
    expect_classes("198.51.99.255", 0);
    expect_classes("198.51.100.0", NETGUARD_RESERVED);
    expect_classes("198.51.100.255", NETGUARD_RESERVED);
    expect_classes("198.51.101.0", 0);
    expect_classes("203.0.112.255", 0);
    expect_classes("203.0.113.0", NETGUARD_RESERVED);
    expect_classes("203.0.113.255", NETGUARD_RESERVED);
    expect_classes("203.0.114.0", 0);
    expect_classes("240.0.0.0", NETGUARD_RESERVED);
    expect_classes("255.255.255.254", NETGUARD_RESERVED);
    expect_classes("255.255.255.255", NETGUARD_RESERVED);
}

/* Reserved IPv6: the listed blocks and everything outside 2000::/3 with no other class. */
static void test_class_reserved_v6(void **state)
{
    (void)state;
    expect_classes("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", 0);
    expect_classes("2001:db8::", NETGUARD_RESERVED);
    expect_classes("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_RESERVED);
    expect_classes("2001:db9::", 0);
    expect_classes("3fff::1", NETGUARD_RESERVED);
    expect_classes("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_RESERVED);
    expect_classes("3fff:1000::", 0);
    expect_classes("2001:2::1", NETGUARD_RESERVED);
    expect_classes("2001:2:0:ffff::1", NETGUARD_RESERVED);
    expect_classes("2001:2:1::", 0);
    expect_classes("2001:10::1", NETGUARD_RESERVED);
    expect_classes("2001:2f:ffff::1", NETGUARD_RESERVED);
    expect_classes("2001:30::", 0);
    expect_classes("fec0::1", NETGUARD_RESERVED);
    expect_classes("feff::1", NETGUARD_RESERVED);
    expect_classes("100::", NETGUARD_RESERVED);
    expect_classes("100::ffff:ffff:ffff:ffff", NETGUARD_RESERVED);
    /* The catch-all outside 2000::/3. */
    expect_classes("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_RESERVED);
    expect_classes("2000::", 0);
    expect_classes("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0);
    expect_classes("4000::1", NETGUARD_RESERVED);
    expect_classes("1::", NETGUARD_RESERVED);
    expect_classes("::ffff:0:1.2.3.4", NETGUARD_RESERVED);
}

/* IPv4-compatible ::a.b.c.d carries the IPv4 classes and is itself reserved. */
static void test_embedded_compat(void **state)
{
    (void)state;
    expect_classes("::127.0.0.1", NETGUARD_LOOPBACK | NETGUARD_RESERVED);
    expect_classes("::10.0.0.1", NETGUARD_PRIVATE | NETGUARD_RESERVED);
    expect_classes("::1.1.1.1", NETGUARD_RESERVED);
    expect_classes("::", NETGUARD_UNSPECIFIED);
    expect_classes("::1", NETGUARD_LOOPBACK);
}

/* NAT64, well-known and local-use prefixes, with the IPv4 address in the last 32 bits. */
static void test_embedded_nat64(void **state)
{
    (void)state;
    expect_classes("64:ff9b::7f00:1", NETGUARD_LOOPBACK);
    expect_classes("64:ff9b::10.1.2.3", NETGUARD_PRIVATE);
    expect_classes("64:ff9b::1.1.1.1", 0);
    expect_classes("64:ff9b:1::a00:1", NETGUARD_PRIVATE);
    expect_classes("64:ff9b:1:abcd::c0a8:101", NETGUARD_PRIVATE);
    expect_classes("64:ff9b:1::101:101", 0);
    expect_classes("64:ff9b:2::7f00:1", NETGUARD_RESERVED); /* outside both prefixes */
    expect_classes("64:ff9b:0:0:1::7f00:1", NETGUARD_RESERVED);
}

/* 6to4 carries the IPv4 address in bits 16..47. */
static void test_embedded_6to4(void **state)
{
    (void)state;
    expect_classes("2002:7f00:1::", NETGUARD_LOOPBACK);
    expect_classes("2002:c0a8:101::1", NETGUARD_PRIVATE);
    expect_classes("2002:a00:1:ffff:ffff:ffff:ffff:ffff", NETGUARD_PRIVATE);
    expect_classes("2002:101:101::", 0);
}

/* Teredo carries the client's IPv4 address inverted in the last 32 bits. */
static void test_embedded_teredo(void **state)
{
    (void)state;
    /* Client 169.254.169.254, server 65.54.227.120. */
    expect_classes("2001:0:4136:e378:8000:63bf:5601:5601", NETGUARD_LINK_LOCAL | NETGUARD_METADATA);
    /* Client 10.0.0.1, 127.0.0.1. */
    expect_classes("2001::f5ff:fffe", NETGUARD_PRIVATE);
    expect_classes("2001:0:4136:e378:8000:63bf:80ff:fffe", NETGUARD_LOOPBACK);
    /* Client 1.1.1.1; the server field alone does not count. */
    expect_classes("2001:0:7f00:1::fefe:fefe", 0);
    /* 2001:1::/32 is not Teredo. */
    expect_classes("2001:1::f5ff:fffe", 0);
}

/* Public addresses have no class. */
static void test_public_no_class(void **state)
{
    (void)state;
    expect_classes("1.1.1.1", 0);
    expect_classes("8.8.8.8", 0);
    expect_classes("93.184.216.34", 0);
    expect_classes("2606:4700::1111", 0);
    expect_classes("2001:4860:4860::8888", 0);
    expect_classes("2a00:1450:4001::1", 0);
    expect_classes("[::ffff:1.1.1.1]", 0);
}

/* An address struct of no known family is denied as reserved. */
static void test_classify_unknown_family(void **state)
{
    struct netguard_addr a;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.family = AF_UNIX;
    assert_int_equal(netguard_classify(&a), NETGUARD_RESERVED);
}

/* IPv4 prefixes match what they cover and nothing else. */
static void test_cidrs_v4(void **state)
{
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;
    struct netguard_addr a;

    (void)state;
    assert_non_null(c);
    assert_int_equal(netguard_cidrs_add(c, "10.0.0.0/8", &err), 0);
    assert_int_equal(netguard_cidrs_add(c, "192.168.1.0/24", &err), 0);
    assert_int_equal(netguard_cidrs_add(c, "203.0.113.7", &err), 0);
    assert_int_equal(netguard_cidrs_count(c), 3);
    a = parse("10.1.2.3");
    assert_true(netguard_cidrs_match(c, &a));
    a = parse("10.255.255.255");
    assert_true(netguard_cidrs_match(c, &a));
    a = parse("11.0.0.0");
    assert_false(netguard_cidrs_match(c, &a));
    a = parse("192.168.1.200");
    assert_true(netguard_cidrs_match(c, &a));
    a = parse("192.168.2.1");
    assert_false(netguard_cidrs_match(c, &a));
    a = parse("203.0.113.7");
    assert_true(netguard_cidrs_match(c, &a));
    a = parse("203.0.113.8");
    assert_false(netguard_cidrs_match(c, &a));
    a = parse("::a00:1"); /* IPv4-compatible is IPv6, not 10.0.0.1 */
    assert_false(netguard_cidrs_match(c, &a));
    netguard_cidrs_free(c);
}

/* IPv6 prefixes match what they cover and nothing else. */
static void test_cidrs_v6(void **state)
{
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;
    struct netguard_addr a;

    (void)state;
    assert_int_equal(netguard_cidrs_add(c, "2001:db8::/32", &err), 0);
    assert_int_equal(netguard_cidrs_add(c, "2606:4700::1111", &err), 0);
    assert_int_equal(netguard_cidrs_add(c, "fe80::/10", &err), 0);
    a = parse("2001:db8:1::1");
    assert_true(netguard_cidrs_match(c, &a));
    a = parse("2001:db9::");
    assert_false(netguard_cidrs_match(c, &a));
    a = parse("2606:4700::1111");
    assert_true(netguard_cidrs_match(c, &a));
    a = parse("2606:4700::1112");
    assert_false(netguard_cidrs_match(c, &a));
    a = parse("febf::1");
    assert_true(netguard_cidrs_match(c, &a));
    a = parse("fec0::1");
    assert_false(netguard_cidrs_match(c, &a));
    a = parse("10.0.0.1");
    assert_false(netguard_cidrs_match(c, &a));
    netguard_cidrs_free(c);
}

/* IPv4-mapped addresses match IPv4 prefixes, and mapped prefixes are IPv4 prefixes. */
static void test_cidrs_mapped(void **state)
{
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;
    struct netguard_addr a;

    (void)state;
    assert_int_equal(netguard_cidrs_add(c, "10.0.0.0/8", &err), 0);
    assert_int_equal(netguard_cidrs_add(c, "::ffff:192.168.0.0/112", &err), 0);
    a = parse("[::ffff:10.1.2.3]");
    assert_true(netguard_cidrs_match(c, &a));
    /* The same address built by hand as AF_INET6. */
    memset(&a, 0, sizeof(a));
    a.family = AF_INET6;
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    a.bytes[12] = 10;
    a.bytes[15] = 1;
    assert_true(netguard_cidrs_match(c, &a));
    a = parse("192.168.5.5");
    assert_true(netguard_cidrs_match(c, &a));
    a = parse("192.169.0.0");
    assert_false(netguard_cidrs_match(c, &a));
    /* ::ffff:10.0.0.0/104 is 10.0.0.0/8 again. */
    assert_int_equal(netguard_cidrs_add(c, "::ffff:10.0.0.0/104", &err), 0);
    assert_int_equal(netguard_cidrs_count(c), 2);
    netguard_cidrs_free(c);
}

/* Host bits beyond the length are refused with the form to write instead. */
static void test_cidrs_host_bits(void **state)
{
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;

    (void)state;
    assert_int_equal(netguard_cidrs_add(c, "10.1.0.0/8", &err), -1);
    assert_string_equal(err, "10.1.0.0/8 has host bits set; write 10.0.0.0/8");
    assert_int_equal(netguard_cidrs_add(c, "2001:db8::1/32", &err), -1);
    assert_string_equal(err, "2001:db8::1/32 has host bits set; write 2001:db8::/32");
    assert_int_equal(netguard_cidrs_add(c, "192.168.1.1/0", &err), -1);
    assert_string_equal(err, "192.168.1.1/0 has host bits set; write 0.0.0.0/0");
    assert_int_equal(netguard_cidrs_add(c, "172.16.0.1/31", &err), -1);
    assert_string_equal(err, "172.16.0.1/31 has host bits set; write 172.16.0.0/31");
    assert_int_equal(netguard_cidrs_count(c), 0);
    /* The suggested form is accepted. */
    assert_int_equal(netguard_cidrs_add(c, "172.16.0.0/31", &err), 0);
    netguard_cidrs_free(c);
}

/* Prefix lengths out of range or not plain decimal. */
static void test_cidrs_bad_length(void **state)
{
    static const char *const bad[] = {
        "10.0.0.0/33", "10.0.0.0/",   "10.0.0.0/-1",   "10.0.0.0/08", "10.0.0.0/8/8",
        "10.0.0.0/x",  "10.0.0.0/ 8", "10.0.0.0/1000", "::/129",      "::/00",
    };
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        if (netguard_cidrs_add(c, bad[i], &err) != -1)
            fail_msg("\"%s\" should be refused", bad[i]);
        assert_non_null(err);
    }
    assert_int_equal(netguard_cidrs_add(c, "10.0.0.0/33", &err), -1);
    assert_string_equal(err, "IPv4 prefix length must be 0..32");
    assert_int_equal(netguard_cidrs_add(c, "::/129", &err), -1);
    assert_string_equal(err, "IPv6 prefix length must be 0..128");
    assert_int_equal(netguard_cidrs_add(c, "10.0.0.0/x", &err), -1);
    assert_string_equal(err, "prefix length is not a decimal number");
    assert_int_equal(netguard_cidrs_count(c), 0);
    netguard_cidrs_free(c);
}

/* Addresses in policy text are strict: no legacy IPv4, brackets, zones or names. */
static void test_cidrs_bad_address(void **state)
{
    static const char *const bad[] = {
        "",        "10/8",        "010.0.0.0/8", "0x0a000000/8", "[::1]/128", "fe80::1%eth0",
        "a.b.c.d", "example.com", " 10.0.0.0/8", "10.0.0.0 /8",  "/8",        "10.0.0/24",
    };
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        if (netguard_cidrs_add(c, bad[i], &err) != -1)
            fail_msg("\"%s\" should be refused", bad[i]);
        assert_non_null(err);
    }
    assert_int_equal(netguard_cidrs_add(c, NULL, &err), -1);
    assert_string_equal(err, "empty prefix");
    assert_int_equal(netguard_cidrs_add(c, "10/8", NULL), -1); /* errstr is optional */
    assert_int_equal(netguard_cidrs_count(c), 0);
    netguard_cidrs_free(c);
}

/* /0 covers its whole family, duplicates count once, empty and NULL sets match nothing. */
static void test_cidrs_edges(void **state)
{
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;
    struct netguard_addr a = parse("8.8.8.8"), b = parse("2001:4860::1");

    (void)state;
    assert_false(netguard_cidrs_match(c, &a));
    assert_false(netguard_cidrs_match(NULL, &a));
    assert_int_equal(netguard_cidrs_count(NULL), 0);
    assert_int_equal(netguard_cidrs_add(c, "0.0.0.0/0", &err), 0);
    assert_int_equal(netguard_cidrs_add(c, "0.0.0.0/0", &err), 0);
    assert_int_equal(netguard_cidrs_count(c), 1);
    assert_true(netguard_cidrs_match(c, &a));
    assert_false(netguard_cidrs_match(c, &b));
    assert_int_equal(netguard_cidrs_add(c, "::/0", &err), 0);
    assert_true(netguard_cidrs_match(c, &b));
    assert_int_equal(netguard_cidrs_count(c), 2);
    netguard_cidrs_free(c);
    netguard_cidrs_free(NULL);
}

/* A few thousand prefixes of mixed lengths: every one is found, the gaps are not. */
static void test_cidrs_many(void **state)
{
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;
    char text[64];
    struct netguard_addr a;

    (void)state;
    /* 10.x.y.0/24 for even y, and 2001:db8:x::/48, added in a scrambled order. */
    for (unsigned i = 0; i < 2000; i++) {
        unsigned k = (i * 7919u) % 2000;
        snprintf(text, sizeof(text), "10.%u.%u.0/24", k / 100, (k % 100) * 2);
        assert_int_equal(netguard_cidrs_add(c, text, &err), 0);
        snprintf(text, sizeof(text), "2001:db8:%x::/48", k);
        assert_int_equal(netguard_cidrs_add(c, text, &err), 0);
    }
    assert_int_equal(netguard_cidrs_add(c, "172.16.0.0/12", &err), 0);
    assert_int_equal(netguard_cidrs_count(c), 4001);
    for (unsigned k = 0; k < 2000; k++) {
        snprintf(text, sizeof(text), "10.%u.%u.77", k / 100, (k % 100) * 2);
        a = parse(text);
        assert_true(netguard_cidrs_match(c, &a));
        snprintf(text, sizeof(text), "10.%u.%u.77", k / 100, (k % 100) * 2 + 1);
        a = parse(text);
        assert_false(netguard_cidrs_match(c, &a));
        snprintf(text, sizeof(text), "2001:db8:%x:ffff::1", k);
        a = parse(text);
        assert_true(netguard_cidrs_match(c, &a));
    }
    a = parse("2001:db8:7d0::1");
    assert_false(netguard_cidrs_match(c, &a));
    a = parse("172.20.1.1");
    assert_true(netguard_cidrs_match(c, &a));
    netguard_cidrs_free(c);
}

/* Every class name parses to its bit and back; unknown names are 0. */
static void test_class_names(void **state)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } names[] = {
        {"loopback", NETGUARD_LOOPBACK},     {"private", NETGUARD_PRIVATE},
        {"link-local", NETGUARD_LINK_LOCAL}, {"metadata", NETGUARD_METADATA},
        {"cgnat", NETGUARD_CGNAT},           {"unique-local", NETGUARD_UNIQUE_LOCAL},
        {"multicast", NETGUARD_MULTICAST},   {"unspecified", NETGUARD_UNSPECIFIED},
        {"reserved", NETGUARD_RESERVED},     {"self", NETGUARD_SELF},
    };
    uint32_t all = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(netguard_class_parse(names[i].name), names[i].bit);
        assert_string_equal(netguard_class_str(names[i].bit), names[i].name);
        all |= names[i].bit;
    }
    assert_int_equal(all, NETGUARD_ALL_CLASSES);
    assert_int_equal(netguard_class_parse("Loopback"), 0);
    assert_int_equal(netguard_class_parse("link_local"), 0);
    assert_int_equal(netguard_class_parse(""), 0);
    assert_int_equal(netguard_class_parse(NULL), 0);
    assert_string_equal(netguard_class_str(0), "none");
    assert_string_equal(netguard_class_str(NETGUARD_PRIVATE | NETGUARD_LOOPBACK), "loopback");
    assert_string_equal(netguard_class_str(1u << 20), "unknown");
}

/* A set of classes formats as its names, comma-separated, and truncates safely. */
static void test_classes_format(void **state)
{
    char buf[128];

    (void)state;
    assert_int_equal(netguard_classes_format(0, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "none");
    netguard_classes_format(NETGUARD_LINK_LOCAL | NETGUARD_METADATA, buf, sizeof(buf));
    assert_string_equal(buf, "link-local,metadata");
    netguard_classes_format(NETGUARD_ALL_CLASSES, buf, sizeof(buf));
    assert_string_equal(buf, "loopback,private,link-local,metadata,cgnat,unique-local,"
                             "multicast,unspecified,reserved,self");
    assert_int_equal(netguard_classes_format(NETGUARD_PRIVATE, buf, 4), 7);
    assert_string_equal(buf, "pri");
}

/* Formatting follows RFC 5952 and what it writes parses back to the same address. */
static void test_format_round_trip(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
        {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
        {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},
        {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},
        {"2001:DB8::ABCD", "2001:db8::abcd"},
        {"1:0:0:0:0:0:0:0", "1::"},
        {"0:0:0:0:0:0:0:0", "::"},
        {"fe80:0:0:0:0:0:0:1", "fe80::1"},
        {"::7f00:1", "::7f00:1"},
        {"64:ff9b::169.254.169.254", "64:ff9b::a9fe:a9fe"},
        {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
        {"1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"},
        {"0x7f.1", "127.0.0.1"},
        {"::ffff:10.0.0.1", "10.0.0.1"},
        {"255.255.255.255", "255.255.255.255"},
    };
    char out[NETGUARD_ADDRSTRLEN];
    struct netguard_addr a, b;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        a = parse(cases[i].in);
        assert_int_equal(netguard_format(&a, out, sizeof(out)), strlen(cases[i].out));
        assert_string_equal(out, cases[i].out);
        b = parse(out);
        assert_true(netguard_addr_equal(&a, &b));
        assert_memory_equal(&a, &b, sizeof(a));
    }
}

/* Formatting a hand-built mapped address, a short buffer and an unknown family. */
static void test_format_edges(void **state)
{
    struct netguard_addr a;
    char out[NETGUARD_ADDRSTRLEN];

    (void)state;
    memset(&a, 0, sizeof(a));
    a.family = AF_INET6;
    a.bytes[10] = a.bytes[11] = 0xff;
    a.bytes[12] = 192;
    a.bytes[13] = 0;
    a.bytes[14] = 2;
    a.bytes[15] = 1;
    netguard_format(&a, out, sizeof(out));
    assert_string_equal(out, "::ffff:192.0.2.1");
    memset(a.bytes, 0xff, sizeof(a.bytes));
    assert_int_equal(netguard_format(&a, out, sizeof(out)), 39);
    assert_string_equal(out, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    a = parse("127.0.0.1");
    assert_int_equal(netguard_format(&a, out, 4), 9);
    assert_string_equal(out, "127");
    out[0] = 'x';
    netguard_format(&a, out, 0);
    assert_int_equal(out[0], 'x');
    a.family = AF_UNIX;
    netguard_format(&a, out, sizeof(out));
    assert_string_equal(out, "?");
}

/* Socket addresses in and out, with a mapped sockaddr_in6 becoming IPv4. */
static void test_sockaddr(void **state)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr_un sun;
    struct sockaddr_storage ss;
    struct netguard_addr a, b;
    char out[NETGUARD_ADDRSTRLEN];

    (void)state;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(80);
    assert_int_equal(inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr), 1);
    assert_true(netguard_from_sockaddr((const struct sockaddr *)&sin, &a));
    netguard_format(&a, out, sizeof(out));
    assert_string_equal(out, "192.0.2.7");

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, "::ffff:169.254.169.254", &sin6.sin6_addr), 1);
    assert_true(netguard_from_sockaddr((const struct sockaddr *)&sin6, &a));
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(netguard_classify(&a), NETGUARD_LINK_LOCAL | NETGUARD_METADATA);

    assert_int_equal(inet_pton(AF_INET6, "2001:db8::5", &sin6.sin6_addr), 1);
    sin6.sin6_scope_id = 3;
    assert_true(netguard_from_sockaddr((const struct sockaddr *)&sin6, &a));
    netguard_format(&a, out, sizeof(out));
    assert_string_equal(out, "2001:db8::5");

    assert_int_equal(netguard_to_sockaddr(&a, 8443, &ss), sizeof(struct sockaddr_in6));
    assert_int_equal(ss.ss_family, AF_INET6);
    memcpy(&sin6, &ss, sizeof(sin6));
    assert_int_equal(ntohs(sin6.sin6_port), 8443);
    assert_true(netguard_from_sockaddr((const struct sockaddr *)&ss, &b));
    assert_true(netguard_addr_equal(&a, &b));

    a = parse("10.9.8.7");
    assert_int_equal(netguard_to_sockaddr(&a, 80, &ss), sizeof(struct sockaddr_in));
    memcpy(&sin, &ss, sizeof(sin));
    assert_int_equal(ntohs(sin.sin_port), 80);
    assert_int_equal(ntohl(sin.sin_addr.s_addr), 0x0a090807);

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_false(netguard_from_sockaddr((const struct sockaddr *)&sun, &a));
    assert_false(netguard_from_sockaddr(NULL, &a));
    a.family = AF_UNIX;
    assert_int_equal(netguard_to_sockaddr(&a, 80, &ss), 0);
}

/* A listener on one address is self on exactly that address and port. */
static void test_self_specific(void **state)
{
    struct netguard_self *s = netguard_self_new();
    const char *err = NULL;
    struct netguard_addr l = parse("10.0.0.5"), a;

    (void)state;
    assert_int_equal(netguard_self_add(s, &l, 3128, &err), 0);
    assert_true(netguard_is_self(s, &l, 3128));
    assert_false(netguard_is_self(s, &l, 3129));
    a = parse("10.0.0.6");
    assert_false(netguard_is_self(s, &a, 3128));
    a = parse("0.0.0.0");
    assert_false(netguard_is_self(s, &a, 3128)); /* 0.0.0.0 dials loopback, not 10.0.0.5 */
    a = parse("[::ffff:10.0.0.5]");
    assert_true(netguard_is_self(s, &a, 3128));
    assert_int_equal(netguard_classify_target(s, &a, 3128), NETGUARD_PRIVATE | NETGUARD_SELF);
    assert_int_equal(netguard_classify_target(s, &a, 80), NETGUARD_PRIVATE);
    netguard_self_free(s);
}

/* A loopback listener is also reached through the unspecified address. */
static void test_self_loopback(void **state)
{
    struct netguard_self *s = netguard_self_new();
    const char *err = NULL;
    struct netguard_addr l = parse("127.0.0.1"), a;

    (void)state;
    assert_int_equal(netguard_self_add(s, &l, 3128, &err), 0);
    assert_true(netguard_is_self(s, &l, 3128));
    a = parse("0.0.0.0");
    assert_true(netguard_is_self(s, &a, 3128));
    a = parse("::");
    assert_true(netguard_is_self(s, &a, 3128));
    a = parse("127.0.0.2");
    assert_false(netguard_is_self(s, &a, 3128));
    a = parse("2130706433");
    assert_int_equal(netguard_classify_target(s, &a, 3128), NETGUARD_LOOPBACK | NETGUARD_SELF);
    netguard_self_free(s);
}

/* A wildcard listener is self for every loopback or unspecified target of either family. */
static void test_self_wildcard(void **state)
{
    static const char *const local[] = {"127.0.0.1", "127.9.9.9", "::1",
                                        "0.0.0.0",   "::",        "[::ffff:127.0.0.1]"};
    struct netguard_self *s = netguard_self_new();
    const char *err = NULL;
    struct netguard_addr l = parse("::"), a;

    (void)state;
    assert_int_equal(netguard_self_add(s, &l, 8080, &err), 0);
    l = parse("0.0.0.0");
    assert_int_equal(netguard_self_add(s, &l, 3128, &err), 0);
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        a = parse(local[i]);
        assert_true(netguard_is_self(s, &a, 3128));
        assert_true(netguard_is_self(s, &a, 8080));
        assert_false(netguard_is_self(s, &a, 443));
    }
    a = parse("10.0.0.1");
    assert_false(netguard_is_self(s, &a, 3128));
    a = parse("1.1.1.1");
    assert_false(netguard_is_self(s, &a, 3128));
    netguard_self_free(s);
}

/* Port 0 is refused, and a NULL set is nobody. */
static void test_self_edges(void **state)
{
    struct netguard_self *s = netguard_self_new();
    const char *err = NULL;
    struct netguard_addr l = parse("127.0.0.1");

    (void)state;
    assert_int_equal(netguard_self_add(s, &l, 0, &err), -1);
    assert_non_null(err);
    assert_false(netguard_is_self(s, &l, 3128));
    assert_false(netguard_is_self(NULL, &l, 3128));
    assert_int_equal(netguard_classify_target(NULL, &l, 3128), NETGUARD_LOOPBACK);
    netguard_self_free(s);
    netguard_self_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* literals */
        cmocka_unit_test(test_literal_decimal),
        cmocka_unit_test(test_literal_hex),
        cmocka_unit_test(test_literal_octal),
        cmocka_unit_test(test_literal_short_forms),
        cmocka_unit_test(test_literal_mapped),
        cmocka_unit_test(test_literal_ipv6),
        cmocka_unit_test(test_literal_zone_refused),
        cmocka_unit_test(test_literal_trailing_dot),
        cmocka_unit_test(test_literal_length_respected),
        cmocka_unit_test(test_not_literal_names),
        cmocka_unit_test(test_not_literal_five_parts),
        cmocka_unit_test(test_not_literal_overflow),
        cmocka_unit_test(test_not_literal_bad_parts),
        cmocka_unit_test(test_not_literal_empty),
        cmocka_unit_test(test_not_literal_brackets_and_ipv6),
        /* classes */
        cmocka_unit_test(test_class_loopback),
        cmocka_unit_test(test_class_private),
        cmocka_unit_test(test_class_link_local),
        cmocka_unit_test(test_class_metadata),
        cmocka_unit_test(test_metadata_spellings),
        cmocka_unit_test(test_class_cgnat),
        cmocka_unit_test(test_class_unique_local),
        cmocka_unit_test(test_class_multicast),
        cmocka_unit_test(test_class_unspecified),
        cmocka_unit_test(test_class_reserved_v4),
        cmocka_unit_test(test_class_reserved_v6),
        cmocka_unit_test(test_embedded_compat),
        cmocka_unit_test(test_embedded_nat64),
        cmocka_unit_test(test_embedded_6to4),
        cmocka_unit_test(test_embedded_teredo),
        cmocka_unit_test(test_public_no_class),
        cmocka_unit_test(test_classify_unknown_family),
        /* CIDR sets */
        cmocka_unit_test(test_cidrs_v4),
        cmocka_unit_test(test_cidrs_v6),
        cmocka_unit_test(test_cidrs_mapped),
        cmocka_unit_test(test_cidrs_host_bits),
        cmocka_unit_test(test_cidrs_bad_length),
        cmocka_unit_test(test_cidrs_bad_address),
        cmocka_unit_test(test_cidrs_edges),
        cmocka_unit_test(test_cidrs_many),
        /* names, formatting, socket addresses */
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_classes_format),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_format_edges),
        cmocka_unit_test(test_sockaddr),
        /* self */
        cmocka_unit_test(test_self_specific),
        cmocka_unit_test(test_self_loopback),
        cmocka_unit_test(test_self_wildcard),
        cmocka_unit_test(test_self_edges),
    };
    return cmocka_run_group_tests_name("unit_netguard", tests, NULL, NULL);
}
