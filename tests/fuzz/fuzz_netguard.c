/*
 * libFuzzer target for the address guard.  The input is a host as it might arrive in a
 * request: an address it parses to must format to text that parses back to the same
 * address (bracketed too), that libc reads the same way, and that a CIDR set and a self
 * set built from it recognise; whatever libc's strict parsers take must be taken too.
 * A NUL-terminated copy goes to netguard_cidrs_add() (whose "write X" advice must itself
 * be accepted) and to netguard_class_parse().  Any broken invariant abort()s.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/netguard.h"
#include "fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks that a is in its one form: a known family, no stray bytes, mapped held as IPv4. */
static void check_form(const struct netguard_addr *a)
{
    static const uint8_t zero[16] = {0};
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    CHECK(a->family == AF_INET || a->family == AF_INET6);
    if (a->family == AF_INET)
        CHECK(memcmp(a->bytes + 4, zero, 12) == 0);
    else
        CHECK(memcmp(a->bytes, mapped, sizeof(mapped)) != 0);
}

/* Checks that a CIDR set built from text holds exactly one prefix, and that it covers a. */
static void check_set_covers(const char *text, const struct netguard_addr *a)
{
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;

    CHECK(c != NULL);
    CHECK(netguard_cidrs_add(c, text, &err) == 0);
    CHECK(netguard_cidrs_count(c) == 1);
    CHECK(netguard_cidrs_match(c, a));
    netguard_cidrs_free(c);
}

/* Everything that must hold for an address the parser produced. */
static void check_address(const struct netguard_addr *a, uint32_t seed)
{
    char text[NETGUARD_ADDRSTRLEN], bracketed[NETGUARD_ADDRSTRLEN + 2], prefix[64];
    char names[160];
    uint8_t raw[16];
    struct netguard_addr b;
    struct sockaddr_storage ss;
    struct netguard_cidrs *c;
    struct netguard_self *s;
    const char *err = NULL;
    size_t n;
    uint32_t cls;
    unsigned plen;

    check_form(a);
    /* Format, re-parse, compare; libc agrees with the canonical text. */
    n = netguard_format(a, text, sizeof(text));
    CHECK(n == strlen(text) && n > 0 && n < NETGUARD_ADDRSTRLEN);
    CHECK(netguard_parse_literal(text, n, &b));
    CHECK(memcmp(a, &b, sizeof(b)) == 0 && netguard_addr_equal(a, &b));
    CHECK(inet_pton(a->family, text, raw) == 1);
    CHECK(memcmp(raw, a->bytes, a->family == AF_INET ? 4 : 16) == 0);
    if (a->family == AF_INET6) {
        snprintf(bracketed, sizeof(bracketed), "[%s]", text);
        CHECK(netguard_parse_literal(bracketed, n + 2, &b));
        CHECK(memcmp(a, &b, sizeof(b)) == 0);
    }
    /* Classification: known bits only, never self, the same every time. */
    cls = netguard_classify(a);
    CHECK((cls & ~NETGUARD_ALL_CLASSES) == 0 && !(cls & NETGUARD_SELF));
    CHECK(netguard_classify(a) == cls);
    CHECK(netguard_classes_format(cls, names, sizeof(names)) < sizeof(names));
    if (cls != 0)
        CHECK(netguard_class_parse(netguard_class_str(cls)) == (cls & (~cls + 1)));
    /* Socket address round trip. */
    CHECK(netguard_to_sockaddr(a, 443, &ss) > 0);
    CHECK(netguard_from_sockaddr((const struct sockaddr *)&ss, &b));
    CHECK(memcmp(a, &b, sizeof(b)) == 0);
    /* The address as a one-address prefix covers itself. */
    check_set_covers(text, a);
    /* A prefix of some length through it: accepted, or advice that is accepted. */
    plen = seed % (a->family == AF_INET ? 33u : 129u);
    snprintf(prefix, sizeof(prefix), "%s/%u", text, plen);
    c = netguard_cidrs_new();
    CHECK(c != NULL);
    if (netguard_cidrs_add(c, prefix, &err) == 0) {
        CHECK(netguard_cidrs_match(c, a));
    } else {
        const char *advice = err != NULL ? strstr(err, "; write ") : NULL;
        CHECK(advice != NULL);
        check_set_covers(advice + 8, a);
    }
    netguard_cidrs_free(c);
    /* A listener on the address is self on its port only. */
    s = netguard_self_new();
    CHECK(s != NULL);
    CHECK(netguard_self_add(s, a, 3128, &err) == 0);
    CHECK(netguard_is_self(s, a, 3128) && !netguard_is_self(s, a, 3129));
    CHECK(netguard_classify_target(s, a, 3128) == (cls | NETGUARD_SELF));
    netguard_self_free(s);
}

/* True when every byte of s is one inet_aton may take in a number ([0-9a-fA-FxX.]). */
static bool aton_charset(const char *s)
{
    for (; *s != '\0'; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F') ||
              *s == 'x' || *s == 'X' || *s == '.'))
            return false;
    return true;
}

/* What libc's parsers take, the guard must take as the same address. */
static void check_libc_agrees(const char *copy, size_t len)
{
    struct netguard_addr a;
    struct in_addr in4;
    struct in6_addr in6;

    if (inet_pton(AF_INET, copy, &in4) == 1) {
        CHECK(netguard_parse_literal(copy, len, &a) && a.family == AF_INET);
        CHECK(memcmp(a.bytes, &in4, 4) == 0);
    }
    if (aton_charset(copy) && inet_aton(copy, &in4) != 0) {
        CHECK(netguard_parse_literal(copy, len, &a) && a.family == AF_INET);
        CHECK(memcmp(a.bytes, &in4, 4) == 0);
    }
    if (inet_pton(AF_INET6, copy, &in6) == 1) {
        struct sockaddr_in6 sin6;
        struct netguard_addr want;

        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_addr = in6;
        CHECK(netguard_from_sockaddr((const struct sockaddr *)&sin6, &want));
        CHECK(netguard_parse_literal(copy, len, &a));
        CHECK(memcmp(&a, &want, sizeof(a)) == 0);
    }
}

/* The NUL-terminated input as a CIDR: accepted, or refused with advice that is accepted. */
static void check_cidrs_text(const char *copy)
{
    struct netguard_cidrs *c = netguard_cidrs_new();
    const char *err = NULL;

    CHECK(c != NULL);
    if (netguard_cidrs_add(c, copy, &err) == 0) {
        CHECK(netguard_cidrs_count(c) == 1);
    } else {
        const char *advice;
        CHECK(err != NULL && err[0] != '\0');
        CHECK(netguard_cidrs_count(c) == 0);
        advice = strstr(err, "; write ");
        if (advice != NULL) {
            struct netguard_cidrs *d = netguard_cidrs_new();
            CHECK(d != NULL);
            CHECK(netguard_cidrs_add(d, advice + 8, &err) == 0);
            netguard_cidrs_free(d);
        }
    }
    netguard_cidrs_free(c);
}

/* The NUL-terminated input as a class name: a known name round-trips. */
static void check_class_name(const char *copy)
{
    uint32_t bit = netguard_class_parse(copy);

    if (bit == 0)
        return;
    CHECK((bit & (bit - 1)) == 0 && (bit & NETGUARD_ALL_CLASSES) == bit);
    CHECK(strcmp(netguard_class_str(bit), copy) == 0);
}

/* The whole input is a host; a NUL-terminated copy feeds the text-based functions. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *host = (const char *)data;
    struct netguard_addr a;
    uint32_t seed = 2166136261u;
    char *copy;

    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 16777619u;
    if (netguard_parse_literal(host, size, &a))
        check_address(&a, seed);
    copy = malloc(size + 1);
    CHECK(copy != NULL);
    memcpy(copy, data, size);
    copy[size] = '\0';
    if (strlen(copy) == size)
        check_libc_agrees(copy, size);
    check_cidrs_text(copy);
    check_class_name(copy);
    free(copy);
    return 0;
}
