/*
 * Address guard; see include/sluice/netguard.h.
 *
 * Classification is two small tables of prefixes (one per family) that are scanned whole,
 * each match adding its classes, so an address inside several ranges (169.254.169.254 is
 * link-local and metadata) gets all of them.  IPv6 forms that carry an IPv4 address are
 * unwrapped and the IPv4 table is applied to what they carry.
 *
 * A CIDR set is an array sorted by (family, length, network) plus a bitmap of the lengths
 * present: matching masks the address to each present length and binary-searches for
 * exactly that prefix, so a lookup costs (distinct lengths) x log(entries).
 */
#include "sluice/netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One row of a classification table: a prefix and the classes of what it covers. */
struct range4 {
    uint32_t net; /* host byte order */
    uint8_t plen;
    uint32_t cls;
};

/* The IPv6 counterpart of struct range4. */
struct range6 {
    uint8_t net[16];
    uint8_t plen;
    uint32_t cls;
};

#define IP4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

/*
 * IPv4.  RESERVED holds what is neither one of the other classes nor globally reachable
 * (IANA special-purpose registry), where an egress proxy has no business connecting:
 * 192.0.0.0/24 IETF protocol assignments, 192.0.2.0/24, 198.51.100.0/24 and
 * 203.0.113.0/24 documentation (RFC 5737), 198.18.0.0/15 benchmarking (RFC 2544),
 * 192.88.99.0/24 the deprecated 6to4 relay anycast (RFC 7526), and 240.0.0.0/4 "future
 * use" with the limited broadcast 255.255.255.255.  Globally reachable special blocks
 * (AS112 192.31.196.0/24 and 192.175.48.0/24, AMT 192.52.193.0/24) are left alone.
 *
 * METADATA rows are single addresses where a cloud hands out instance credentials or
 * configuration; each also gets the class of the range it sits in.  168.63.129.16 (Azure
 * WireServer) is the one in public space and so has no other class.
 */
static const struct range4 ranges4[] = {
    {IP4(0, 0, 0, 0), 8, NETGUARD_UNSPECIFIED}, /* "this network"; 0.0.0.0 dials the host */
    {IP4(10, 0, 0, 0), 8, NETGUARD_PRIVATE},
    {IP4(100, 64, 0, 0), 10, NETGUARD_CGNAT},
    {IP4(127, 0, 0, 0), 8, NETGUARD_LOOPBACK},
    {IP4(169, 254, 0, 0), 16, NETGUARD_LINK_LOCAL},
    {IP4(172, 16, 0, 0), 12, NETGUARD_PRIVATE},
    {IP4(192, 0, 0, 0), 24, NETGUARD_RESERVED},
    {IP4(192, 0, 2, 0), 24, NETGUARD_RESERVED},
    {IP4(192, 88, 99, 0), 24, NETGUARD_RESERVED},
    {IP4(192, 168, 0, 0), 16, NETGUARD_PRIVATE},
    {IP4(198, 18, 0, 0), 15, NETGUARD_RESERVED},
    {IP4(198, 51, 100, 0), 24, NETGUARD_RESERVED},
    {IP4(203, 0, 113, 0), 24, NETGUARD_RESERVED},
    {IP4(224, 0, 0, 0), 4, NETGUARD_MULTICAST},
    {IP4(240, 0, 0, 0), 4, NETGUARD_RESERVED},
    {IP4(169, 254, 169, 254), 32, NETGUARD_METADATA}, /* AWS, GCP, Azure, OCI, OpenStack... */
    {IP4(169, 254, 170, 2), 32, NETGUARD_METADATA},   /* AWS ECS task metadata */
    {IP4(169, 254, 170, 23), 32, NETGUARD_METADATA},  /* AWS EKS Pod Identity Agent */
    {IP4(169, 254, 0, 23), 32, NETGUARD_METADATA},    /* Tencent Cloud */
    {IP4(169, 254, 42, 42), 32, NETGUARD_METADATA},   /* Scaleway */
    {IP4(100, 100, 100, 200), 32, NETGUARD_METADATA}, /* Alibaba Cloud */
    {IP4(192, 0, 0, 192), 32, NETGUARD_METADATA},     /* Oracle Cloud */
    {IP4(168, 63, 129, 16), 32, NETGUARD_METADATA},   /* Azure WireServer */
};

/*
 * IPv6.  RESERVED rows: site-local fec0::/10 (deprecated, RFC 3879), discard 100::/64
 * (RFC 6666), documentation 2001:db8::/32 and 3fff::/20 (RFC 3849, RFC 9637),
 * benchmarking 2001:2::/48 (RFC 5180), ORCHID 2001:10::/28 and ORCHIDv2 2001:20::/28
 * (identifiers, not locators).  On top of the table, everything outside 2000::/3 (the
 * only block IANA allocates for global unicast) that has no other class and is not NAT64
 * is RESERVED too: that catches IPv4-compatible ::/96, SIIT ::ffff:0:0:0/96, and every
 * unallocated block, without a row each.
 */
static const struct range6 ranges6[] = {
    {{0}, 128, NETGUARD_UNSPECIFIED},
    {{[15] = 1}, 128, NETGUARD_LOOPBACK},
    {{0xfe, 0x80}, 10, NETGUARD_LINK_LOCAL},
    {{0xfc}, 7, NETGUARD_UNIQUE_LOCAL},
    {{0xff}, 8, NETGUARD_MULTICAST},
    {{0xfe, 0xc0}, 10, NETGUARD_RESERVED},
    {{0x01, 0x00}, 64, NETGUARD_RESERVED},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, NETGUARD_RESERVED},
    {{0x3f, 0xff}, 20, NETGUARD_RESERVED},
    {{0x20, 0x01, 0x00, 0x02}, 48, NETGUARD_RESERVED},
    {{0x20, 0x01, 0x00, 0x10}, 28, NETGUARD_RESERVED},
    {{0x20, 0x01, 0x00, 0x20}, 28, NETGUARD_RESERVED},
    /* AWS IMDS, AWS EKS Pod Identity Agent, GCP, Scaleway. */
    {{0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54}, 128, NETGUARD_METADATA},
    {{0xfd, 0x00, 0x0e, 0xc2, [15] = 0x23}, 128, NETGUARD_METADATA},
    {{0xfd, 0x20, 0x00, 0xce, [14] = 0x02, [15] = 0x54}, 128, NETGUARD_METADATA},
    {{0xfd, 0x00, 0x00, 0x42, [15] = 0x42}, 128, NETGUARD_METADATA},
};

/* The first 12 bytes of an IPv4-mapped address, ::ffff:0:0/96. */
static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Class names, in bit order. */
static const char *const class_names[] = {
    "loopback",     "private",   "link-local",  "metadata", "cgnat",
    "unique-local", "multicast", "unspecified", "reserved", "self",
};

/* One prefix of a CIDR set. */
struct cidr {
    uint8_t v6;        /* 0 for IPv4, 1 for IPv6: the first sort key */
    uint8_t plen;      /* prefix length: the second */
    uint8_t bytes[16]; /* network, host bits zero: the third */
};

/* A CIDR set: entries sorted and unique; err holds the last add's message. */
struct netguard_cidrs {
    struct cidr *v;       /* owned */
    size_t n, cap;        /* entries used, allocated */
    uint64_t plens[2][3]; /* [v6] bitmap of the prefix lengths present, bits 0..128 */
    char err[160];        /* message of the last failed add */
};

/* One listener of a self set. */
struct self_entry {
    struct netguard_addr addr;
    uint16_t port;
};

/* A self set: the listeners in the order they were added. */
struct netguard_self {
    struct self_entry *v; /* owned */
    size_t n, cap;
};

/* Length in bytes of an address of family v6 (0 or 1). */
static size_t fam_len(int v6)
{
    return v6 ? 16 : 4;
}

/* Value of hex digit ch, or -1. */
static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Sets *out to the IPv4 address v (host byte order). */
static void set_v4(struct netguard_addr *out, uint32_t v)
{
    memset(out, 0, sizeof(*out));
    out->family = AF_INET;
    out->bytes[0] = (uint8_t)(v >> 24);
    out->bytes[1] = (uint8_t)(v >> 16);
    out->bytes[2] = (uint8_t)(v >> 8);
    out->bytes[3] = (uint8_t)v;
}

/* The IPv4 address in b[0..4) in host byte order. */
static uint32_t get_v4(const uint8_t *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* Sets *out to the IPv6 address b[0..16), as IPv4 when it is IPv4-mapped. */
static void set_v6(struct netguard_addr *out, const uint8_t *b)
{
    if (memcmp(b, mapped_prefix, sizeof(mapped_prefix)) == 0) {
        set_v4(out, get_v4(b + 12));
        return;
    }
    memset(out, 0, sizeof(*out));
    out->family = AF_INET6;
    memcpy(out->bytes, b, 16);
}

/*
 * Parses one part of a legacy IPv4 literal: decimal, octal after a leading 0, or hex
 * after 0x (digits may be empty: "0x" is 0, as browsers have it).  Values above 2^32 - 1
 * are clamped to 2^32 so the caller sees the overflow without the arithmetic wrapping.
 */
static bool parse_v4_part(const char *s, size_t n, uint64_t *val)
{
    unsigned base = 10;
    uint64_t v = 0;
    size_t i = 0;

    if (n == 0)
        return false;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    } else if (n >= 2 && s[0] == '0') {
        base = 8;
        i = 1;
    }
    for (; i < n; i++) {
        int d = hex_value(s[i]);
        if (d < 0 || (unsigned)d >= base)
            return false;
        v = v * base + (unsigned)d;
        if (v > UINT32_MAX)
            v = (uint64_t)UINT32_MAX + 1;
    }
    *val = v;
    return true;
}

/* Parses s[0..len) as an IPv4 literal in the WHATWG URL standard's forms (see the header). */
static bool parse_v4(const char *s, size_t len, struct netguard_addr *out)
{
    uint64_t parts[4], last;
    size_t n = 0, start = 0;

    if (len > 1 && s[len - 1] == '.')
        len--;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (n == 4 || !parse_v4_part(s + start, i - start, &parts[n]))
            return false;
        n++;
        start = i + 1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        if (parts[i] > 255)
            return false;
    last = parts[n - 1];
    if (last >= (uint64_t)1 << (8 * (5 - n)))
        return false;
    for (size_t i = 0; i + 1 < n; i++)
        last |= parts[i] << (24 - 8 * i);
    set_v4(out, (uint32_t)last);
    return true;
}

/* Parses s[0..len) as IPv6 text (no brackets, no zone id) with inet_pton. */
static bool parse_v6(const char *s, size_t len, struct netguard_addr *out)
{
    char buf[NETGUARD_ADDRSTRLEN];
    uint8_t b[16];

    if (len < 2 || len >= sizeof(buf))
        return false;
    for (size_t i = 0; i < len; i++)
        if (hex_value(s[i]) < 0 && s[i] != ':' && s[i] != '.')
            return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, b) != 1)
        return false;
    set_v6(out, b);
    return true;
}

/* Recognises an IP literal in any spelling a browser or inet_aton accepts. */
bool netguard_parse_literal(const char *host, size_t len, struct netguard_addr *out)
{
    struct netguard_addr a;
    bool ok;

    if (host == NULL || len == 0)
        return false;
    if (host[0] == '[')
        ok = len >= 2 && host[len - 1] == ']' && parse_v6(host + 1, len - 2, &a);
    else if (memchr(host, ':', len) != NULL)
        ok = parse_v6(host, len, &a);
    else
        ok = parse_v4(host, len, &a);
    if (ok)
        *out = a;
    return ok;
}

/* Appends the decimal text of v (0..255) at p; returns the new end. */
static char *put_dec(char *p, unsigned v)
{
    if (v >= 100)
        *p++ = (char)('0' + v / 100);
    if (v >= 10)
        *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

/* Appends the dotted quad of b[0..4) at p; returns the new end. */
static char *put_quad(char *p, const uint8_t *b)
{
    for (int i = 0; i < 4; i++) {
        if (i > 0)
            *p++ = '.';
        p = put_dec(p, b[i]);
    }
    return p;
}

/* Appends the RFC 5952 text of the IPv6 address b[0..16) at p; returns the new end. */
static char *put_v6(char *p, const uint8_t *b)
{
    static const char hex[] = "0123456789abcdef";
    unsigned g[8];
    int best = -1, best_len = 1;

    if (memcmp(b, mapped_prefix, sizeof(mapped_prefix)) == 0) {
        memcpy(p, "::ffff:", 7);
        return put_quad(p + 7, b + 12);
    }
    for (int i = 0; i < 8; i++)
        g[i] = ((unsigned)b[2 * i] << 8) | b[2 * i + 1];
    /* The longest run of two or more zero groups becomes "::", the first of equal ones. */
    for (int i = 0, run = 0; i < 8; i++) {
        run = g[i] == 0 ? run + 1 : 0;
        if (run > best_len) {
            best = i - run + 1;
            best_len = run;
        }
    }
    for (int i = 0; i < 8; i++) {
        int shift = 12;
        if (i == best) {
            *p++ = ':';
            *p++ = ':';
            i += best_len - 1;
            continue;
        }
        if (i > 0 && i != best + best_len)
            *p++ = ':';
        while (shift > 0 && ((g[i] >> shift) & 0xf) == 0)
            shift -= 4;
        for (; shift >= 0; shift -= 4)
            *p++ = hex[(g[i] >> shift) & 0xf];
    }
    return p;
}

/* Copies text[0..n) into out[0..cap), truncated and NUL-terminated; returns n. */
static size_t copy_out(const char *text, size_t n, char *out, size_t cap)
{
    if (cap > 0) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(out, text, k);
        out[k] = '\0';
    }
    return n;
}

/* Writes the canonical text of an address. */
size_t netguard_format(const struct netguard_addr *a, char *out, size_t cap)
{
    char buf[NETGUARD_ADDRSTRLEN];
    char *end = buf;

    if (a != NULL && a->family == AF_INET)
        end = put_quad(buf, a->bytes);
    else if (a != NULL && a->family == AF_INET6)
        end = put_v6(buf, a->bytes);
    else
        *end++ = '?';
    return copy_out(buf, (size_t)(end - buf), out, cap);
}

/* Compares two addresses by family and the bytes that family uses. */
bool netguard_addr_equal(const struct netguard_addr *a, const struct netguard_addr *b)
{
    if (a->family != b->family)
        return false;
    if (a->family == AF_INET)
        return memcmp(a->bytes, b->bytes, 4) == 0;
    return memcmp(a->bytes, b->bytes, 16) == 0;
}

/* Takes the address out of a socket address. */
bool netguard_from_sockaddr(const struct sockaddr *sa, struct netguard_addr *out)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        set_v4(out, ntohl(sin.sin_addr.s_addr));
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        set_v6(out, sin6.sin6_addr.s6_addr);
        return true;
    }
    return false;
}

/* Builds the socket address to connect to. */
socklen_t netguard_to_sockaddr(const struct netguard_addr *a, uint16_t port,
                               struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == AF_INET) {
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        memcpy(&sin.sin_addr, a->bytes, 4);
        memcpy(ss, &sin, sizeof(sin));
        return (socklen_t)sizeof(sin);
    }
    if (a->family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(port);
        memcpy(&sin6.sin6_addr, a->bytes, 16);
        memcpy(ss, &sin6, sizeof(sin6));
        return (socklen_t)sizeof(sin6);
    }
    return 0;
}

/* True when the first plen bits of a and b agree. */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned plen)
{
    unsigned full = plen / 8, rest = plen % 8;

    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[full] ^ b[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

/* The classes of the IPv4 address v (host byte order). */
static uint32_t classify_v4(uint32_t v)
{
    uint32_t cls = 0;

    for (size_t i = 0; i < sizeof(ranges4) / sizeof(ranges4[0]); i++) {
        const struct range4 *r = &ranges4[i];
        uint32_t mask = r->plen == 0 ? 0 : UINT32_MAX << (32 - r->plen);
        if ((v & mask) == r->net)
            cls |= r->cls;
    }
    return cls;
}

/* The classes of the IPv6 address b[0..16). */
static uint32_t classify_v6(const uint8_t *b)
{
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    static const uint8_t nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
    static const uint8_t zero[12] = {0};
    uint32_t cls = 0, embedded = 0;
    bool translated = false;

    if (memcmp(b, mapped_prefix, sizeof(mapped_prefix)) == 0)
        return classify_v4(get_v4(b + 12));
    for (size_t i = 0; i < sizeof(ranges6) / sizeof(ranges6[0]); i++)
        if (prefix_eq(b, ranges6[i].net, ranges6[i].plen))
            cls |= ranges6[i].cls;
    if (memcmp(b, nat64, sizeof(nat64)) == 0 || memcmp(b, nat64_local, 6) == 0) {
        embedded = classify_v4(get_v4(b + 12));
        translated = true;
    } else if (memcmp(b, zero, sizeof(zero)) == 0) {
        /* IPv4-compatible; :: and ::1 are themselves, from the table. */
        if (get_v4(b + 12) > 1)
            embedded = classify_v4(get_v4(b + 12));
    } else if (b[0] == 0x20 && b[1] == 0x02) {
        embedded = classify_v4(get_v4(b + 2)); /* 6to4: 2002:V4ADDR::/48 */
    } else if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) {
        embedded = classify_v4(~get_v4(b + 12)); /* Teredo: the client, obfuscated */
    }
    if (cls == 0 && !translated && (b[0] & 0xe0) != 0x20)
        cls = NETGUARD_RESERVED;
    return cls | embedded;
}

/* Classifies an address by family. */
uint32_t netguard_classify(const struct netguard_addr *a)
{
    if (a->family == AF_INET)
        return classify_v4(get_v4(a->bytes));
    if (a->family == AF_INET6)
        return classify_v6(a->bytes);
    return NETGUARD_RESERVED;
}

/* Maps a class name to its bit. */
uint32_t netguard_class_parse(const char *name)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++)
        if (strcmp(name, class_names[i]) == 0)
            return 1u << i;
    return 0;
}

/* Names the lowest class in a set. */
const char *netguard_class_str(uint32_t classes)
{
    for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++)
        if (classes & (1u << i))
            return class_names[i];
    return classes == 0 ? "none" : "unknown";
}

/* Writes every class name of a set, comma-separated. */
size_t netguard_classes_format(uint32_t classes, char *out, size_t cap)
{
    char buf[128];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++) {
        size_t k;
        if (!(classes & (1u << i)))
            continue;
        k = strlen(class_names[i]);
        if (n > 0)
            buf[n++] = ',';
        memcpy(buf + n, class_names[i], k);
        n += k;
    }
    if (n == 0) {
        memcpy(buf, "none", 4);
        n = 4;
    }
    return copy_out(buf, n, out, cap);
}

/* Makes an empty CIDR set. */
struct netguard_cidrs *netguard_cidrs_new(void)
{
    return calloc(1, sizeof(struct netguard_cidrs));
}

/* Frees a CIDR set. */
void netguard_cidrs_free(struct netguard_cidrs *c)
{
    if (c == NULL)
        return;
    free(c->v);
    free(c);
}

/* Orders prefixes by family, then length, then network. */
static int cidr_cmp(const struct cidr *a, const struct cidr *b)
{
    if (a->v6 != b->v6)
        return a->v6 < b->v6 ? -1 : 1;
    if (a->plen != b->plen)
        return a->plen < b->plen ? -1 : 1;
    return memcmp(a->bytes, b->bytes, 16);
}

/* Index of the first entry of c not ordered before key. */
static size_t cidr_lower_bound(const struct netguard_cidrs *c, const struct cidr *key)
{
    size_t lo = 0, hi = c->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cidr_cmp(&c->v[mid], key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Zeroes the bits of b[0..16) beyond plen. */
static void mask_bytes(uint8_t *b, unsigned plen)
{
    unsigned full = plen / 8, rest = plen % 8;

    if (rest != 0)
        b[full++] &= (uint8_t)(0xff00u >> rest);
    memset(b + full, 0, 16 - full);
}

/* Hands msg to the caller through errstr (when not NULL); returns -1. */
static int refuse(const char **errstr, const char *msg)
{
    if (errstr != NULL)
        *errstr = msg;
    return -1;
}

/* Parses a prefix length: 1 to 3 decimal digits, no leading zero; -1 when malformed. */
static int parse_plen(const char *s)
{
    size_t n = strlen(s);
    int v = 0;

    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Inserts a prefix into a set, keeping it sorted and without duplicates. */
static int cidrs_insert(struct netguard_cidrs *c, const struct cidr *e, const char **errstr)
{
    size_t at = cidr_lower_bound(c, e);

    if (at < c->n && cidr_cmp(&c->v[at], e) == 0)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap == 0 ? 16 : c->cap * 2;
        struct cidr *v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL)
            return refuse(errstr, "out of memory");
        c->v = v;
        c->cap = cap;
    }
    memmove(&c->v[at + 1], &c->v[at], (c->n - at) * sizeof(*e));
    c->v[at] = *e;
    c->n++;
    c->plens[e->v6][e->plen / 64] |= (uint64_t)1 << (e->plen % 64);
    return 0;
}

/* Parses and adds one prefix to a set. */
int netguard_cidrs_add(struct netguard_cidrs *c, const char *text, const char **errstr)
{
    char addr[NETGUARD_ADDRSTRLEN], canon[NETGUARD_ADDRSTRLEN];
    const char *slash;
    struct cidr e;
    size_t alen;
    int plen, max;
    uint8_t masked[16];

    if (text == NULL || text[0] == '\0')
        return refuse(errstr, "empty prefix");
    slash = strchr(text, '/');
    alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
    if (alen == 0 || alen >= sizeof(addr))
        return refuse(errstr, "not an IPv4 or IPv6 address");
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    memset(&e, 0, sizeof(e));
    e.v6 = memchr(addr, ':', alen) != NULL;
    if (inet_pton(e.v6 ? AF_INET6 : AF_INET, addr, e.bytes) != 1)
        return refuse(errstr, "not an IPv4 or IPv6 address");
    max = e.v6 ? 128 : 32;
    plen = max;
    if (slash != NULL) {
        plen = parse_plen(slash + 1);
        if (plen < 0)
            return refuse(errstr, "prefix length is not a decimal number");
        if (plen > max)
            return refuse(errstr, e.v6 ? "IPv6 prefix length must be 0..128"
                                       : "IPv4 prefix length must be 0..32");
    }
    memcpy(masked, e.bytes, 16);
    mask_bytes(masked, (unsigned)plen);
    if (memcmp(masked, e.bytes, 16) != 0) {
        struct netguard_addr net;
        memset(&net, 0, sizeof(net));
        net.family = e.v6 ? AF_INET6 : AF_INET;
        memcpy(net.bytes, masked, fam_len(e.v6));
        netguard_format(&net, canon, sizeof(canon));
        if (snprintf(c->err, sizeof(c->err), "%s/%d has host bits set; write %s/%d", addr, plen,
                     canon, plen) < 0)
            return refuse(errstr, "host bits set beyond the prefix length");
        return refuse(errstr, c->err);
    }
    e.plen = (uint8_t)plen;
    if (e.v6 && plen >= 96 && memcmp(e.bytes, mapped_prefix, sizeof(mapped_prefix)) == 0) {
        /* ::ffff:a.b.c.d/n is the IPv4 prefix a.b.c.d/(n - 96): mapped addresses are IPv4. */
        memmove(e.bytes, e.bytes + 12, 4);
        memset(e.bytes + 4, 0, 12);
        e.v6 = 0;
        e.plen = (uint8_t)(plen - 96);
    }
    return cidrs_insert(c, &e, errstr);
}

/* Counts the prefixes of a set. */
size_t netguard_cidrs_count(const struct netguard_cidrs *c)
{
    return c == NULL ? 0 : c->n;
}

/* Looks for a prefix of the set covering an address. */
bool netguard_cidrs_match(const struct netguard_cidrs *c, const struct netguard_addr *a)
{
    struct cidr key;
    int v6;

    if (c == NULL || c->n == 0 || (a->family != AF_INET && a->family != AF_INET6))
        return false;
    v6 = a->family == AF_INET6;
    if (v6 && memcmp(a->bytes, mapped_prefix, sizeof(mapped_prefix)) == 0) {
        struct netguard_addr v4;
        set_v4(&v4, get_v4(a->bytes + 12));
        return netguard_cidrs_match(c, &v4);
    }
    memset(&key, 0, sizeof(key));
    key.v6 = (uint8_t)v6;
    for (unsigned plen = 0; plen <= (v6 ? 128u : 32u); plen++) {
        size_t at;
        if (!(c->plens[v6][plen / 64] & ((uint64_t)1 << (plen % 64))))
            continue;
        key.plen = (uint8_t)plen;
        memcpy(key.bytes, a->bytes, 16);
        if (!v6)
            memset(key.bytes + 4, 0, 12);
        mask_bytes(key.bytes, plen);
        at = cidr_lower_bound(c, &key);
        if (at < c->n && cidr_cmp(&c->v[at], &key) == 0)
            return true;
    }
    return false;
}

/* Makes an empty self set. */
struct netguard_self *netguard_self_new(void)
{
    return calloc(1, sizeof(struct netguard_self));
}

/* Frees a self set. */
void netguard_self_free(struct netguard_self *s)
{
    if (s == NULL)
        return;
    free(s->v);
    free(s);
}

/* Records one listener. */
int netguard_self_add(struct netguard_self *s, const struct netguard_addr *a, uint16_t port,
                      const char **errstr)
{
    if (port == 0)
        return refuse(errstr, "listener port 0: add the port getsockname() reports");
    if (a->family != AF_INET && a->family != AF_INET6)
        return refuse(errstr, "listener address is neither IPv4 nor IPv6");
    if (s->n == s->cap) {
        size_t cap = s->cap == 0 ? 4 : s->cap * 2;
        struct self_entry *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            return refuse(errstr, "out of memory");
        s->v = v;
        s->cap = cap;
    }
    /* Through set_v6/set_v4 so a mapped listener address is held as IPv4, like targets. */
    if (a->family == AF_INET6)
        set_v6(&s->v[s->n].addr, a->bytes);
    else
        set_v4(&s->v[s->n].addr, get_v4(a->bytes));
    s->v[s->n].port = port;
    s->n++;
    return 0;
}

/* True for 0.0.0.0/8 and ::, the targets Linux dials as the local host. */
static bool is_unspecified(const struct netguard_addr *a)
{
    static const uint8_t zero[16] = {0};

    if (a->family == AF_INET)
        return a->bytes[0] == 0;
    return a->family == AF_INET6 && memcmp(a->bytes, zero, 16) == 0;
}

/* True for 127.0.0.0/8 and ::1. */
static bool is_loopback(const struct netguard_addr *a)
{
    static const uint8_t one[16] = {[15] = 1};

    if (a->family == AF_INET)
        return a->bytes[0] == 127;
    return a->family == AF_INET6 && memcmp(a->bytes, one, 16) == 0;
}

/* Decides whether a target could be one of our own listeners. */
bool netguard_is_self(const struct netguard_self *s, const struct netguard_addr *a, uint16_t port)
{
    struct netguard_addr t;

    if (s == NULL || (a->family != AF_INET && a->family != AF_INET6))
        return false;
    if (a->family == AF_INET6)
        set_v6(&t, a->bytes);
    else
        t = *a;
    for (size_t i = 0; i < s->n; i++) {
        const struct self_entry *e = &s->v[i];
        if (e->port != port)
            continue;
        if (netguard_addr_equal(&e->addr, &t))
            return true;
        if (is_unspecified(&e->addr) && (is_loopback(&t) || is_unspecified(&t)))
            return true;
        if (is_loopback(&e->addr) && is_unspecified(&t))
            return true;
    }
    return false;
}

/* Classifies a target address and port, self included. */
uint32_t netguard_classify_target(const struct netguard_self *s, const struct netguard_addr *a,
                                  uint16_t port)
{
    uint32_t cls = netguard_classify(a);

    if (netguard_is_self(s, a, port))
        cls |= NETGUARD_SELF;
    return cls;
}
