/*
 * Unit tests for the domain set: exact and wildcard matching on whole labels only, the
 * most specific match winning, normalisation (case, trailing dot, Unicode), one case per
 * class of refused pattern, and 100,000 random names found while 100,000 others are not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/domainset.h"

#define RANDOM_NAMES 100000
#define NAME_SLOT    64

/* Adds pattern with value, asserting that it is accepted. */
static void add_ok(struct domainset *s, const char *pattern, uint32_t value)
{
    const char *errstr = NULL;

    if (domainset_add(s, pattern, value, &errstr) != 0)
        fail_msg("\"%s\" refused: %s", pattern, errstr != NULL ? errstr : "(no errstr)");
}

/* A frozen set of the patterns pats[0..n), pattern i with value i + 1. */
static struct domainset *make(const char *const *pats, size_t n)
{
    struct domainset *s = domainset_new();

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        add_ok(s, pats[i], (uint32_t)(i + 1));
    assert_int_equal(domainset_freeze(s), 0);
    return s;
}

/* Looks up the NUL-terminated host; returns the value found, or 0 when nothing matches. */
static uint32_t look(const struct domainset *s, const char *host)
{
    uint32_t value = 0;

    if (!domainset_lookup(s, host, strlen(host), &value))
        return 0;
    assert_int_not_equal(value, 0);
    return value;
}

/* Expects pattern to be refused with an errstr containing needle. */
static void refuse(const char *pattern, const char *needle)
{
    struct domainset *s = domainset_new();
    const char *errstr = NULL;

    assert_non_null(s);
    assert_int_equal(domainset_add(s, pattern, 1, &errstr), -1);
    assert_non_null(errstr);
    if (strstr(errstr, needle) == NULL)
        fail_msg("\"%s\" refused with \"%s\", expected \"%s\"", pattern, errstr, needle);
    assert_int_equal(domainset_count(s), 0);
    assert_int_equal(domainset_freeze(s), 0);
    assert_false(domainset_lookup(s, pattern, strlen(pattern), NULL));
    domainset_free(s);
}

/* n copies of ch followed by a NUL, in buf. */
static char *repeat(char *buf, char ch, size_t n)
{
    memset(buf, ch, n);
    buf[n] = '\0';
    return buf;
}

/* An exact name matches itself and nothing else. */
static void test_exact_match(void **state)
{
    static const char *const pats[] = {"api.example.com", "example.org"};
    struct domainset *s = make(pats, 2);

    (void)state;
    assert_int_equal(look(s, "api.example.com"), 1);
    assert_int_equal(look(s, "example.org"), 2);
    assert_int_equal(look(s, "example.com"), 0);
    assert_int_equal(look(s, "pi.example.com"), 0);
    assert_int_equal(look(s, "aapi.example.com"), 0);
    assert_int_equal(look(s, "api.example.co"), 0);
    assert_int_equal(look(s, "org"), 0);
    assert_int_equal(domainset_count(s), 2);
    domainset_free(s);
}

/* Patterns and hosts compare without regard to ASCII case. */
static void test_case_insensitive(void **state)
{
    static const char *const pats[] = {"Api.EXAMPLE.com", "*.Corp.Example"};
    struct domainset *s = make(pats, 2);

    (void)state;
    assert_int_equal(look(s, "api.example.com"), 1);
    assert_int_equal(look(s, "API.EXAMPLE.COM"), 1);
    assert_int_equal(look(s, "aPi.ExAmPlE.cOm"), 1);
    assert_int_equal(look(s, "WWW.CORP.EXAMPLE"), 2);
    domainset_free(s);
}

/* One trailing dot is ignored on a pattern and on a looked-up host. */
static void test_trailing_dot(void **state)
{
    static const char *const pats[] = {"example.com.", "plain.example", "*.wild.example."};
    struct domainset *s = make(pats, 3);

    (void)state;
    assert_int_equal(look(s, "example.com"), 1);
    assert_int_equal(look(s, "example.com."), 1);
    assert_int_equal(look(s, "plain.example."), 2);
    assert_int_equal(look(s, "a.wild.example."), 3);
    assert_int_equal(look(s, "a.wild.example"), 3);
    assert_int_equal(look(s, "example.com.."), 0);
    domainset_free(s);
}

/* A wildcard matches names one and several labels below its suffix. */
static void test_wildcard_levels(void **state)
{
    static const char *const pats[] = {"*.example.com"};
    struct domainset *s = make(pats, 1);

    (void)state;
    assert_int_equal(look(s, "www.example.com"), 1);
    assert_int_equal(look(s, "a.b.example.com"), 1);
    assert_int_equal(look(s, "a.b.c.d.e.f.example.com"), 1);
    assert_int_equal(look(s, "x.example.org"), 0);
    domainset_free(s);
}

/* "*.example.com" does not match "example.com" itself. */
static void test_wildcard_not_bare_suffix(void **state)
{
    static const char *const pats[] = {"*.example.com"};
    struct domainset *s = make(pats, 1);

    (void)state;
    assert_int_equal(look(s, "example.com"), 0);
    assert_int_equal(look(s, "example.com."), 0);
    assert_int_equal(look(s, "com"), 0);
    domainset_free(s);
}

/* A wildcard suffix must start at a label boundary. */
static void test_wildcard_not_substring(void **state)
{
    static const char *const pats[] = {"*.example.com"};
    struct domainset *s = make(pats, 1);

    (void)state;
    assert_int_equal(look(s, "badexample.com"), 0);
    assert_int_equal(look(s, "www.badexample.com"), 0);
    assert_int_equal(look(s, "xample.com"), 0);
    domainset_free(s);
}

/* Neither an exact name nor a wildcard matches when more labels follow it. */
static void test_not_prefix_of_longer_name(void **state)
{
    static const char *const pats[] = {"example.com", "*.example.net"};
    struct domainset *s = make(pats, 2);

    (void)state;
    assert_int_equal(look(s, "example.com.evil.net"), 0);
    assert_int_equal(look(s, "www.example.com"), 0);
    assert_int_equal(look(s, "www.example.net.evil.org"), 0);
    assert_int_equal(look(s, "example.comm"), 0);
    domainset_free(s);
}

/* An exact entry beats any wildcard, and a longer wildcard suffix beats a shorter one. */
static void test_most_specific_wins(void **state)
{
    struct domainset *s = domainset_new();
    uint32_t value = 0;

    (void)state;
    assert_non_null(s);
    /* Added shortest first and longest first, so that order cannot decide. */
    add_ok(s, "*.com", 10);
    add_ok(s, "*.example.com", 20);
    add_ok(s, "*.b.a.example.com", 40);
    add_ok(s, "*.a.example.com", 30);
    add_ok(s, "x.a.example.com", 50);
    add_ok(s, "example.com", 60);
    assert_int_equal(domainset_freeze(s), 0);
    assert_int_equal(look(s, "x.a.example.com"), 50);
    assert_int_equal(look(s, "y.a.example.com"), 30);
    assert_int_equal(look(s, "x.b.a.example.com"), 40);
    assert_int_equal(look(s, "x.x.b.a.example.com"), 40);
    assert_int_equal(look(s, "a.example.com"), 20);
    assert_int_equal(look(s, "example.com"), 60);
    assert_int_equal(look(s, "other.com"), 10);
    assert_int_equal(look(s, "com"), 0);
    assert_true(domainset_lookup(s, "q.example.com", 13, &value));
    assert_int_equal(value, 20);
    assert_true(domainset_lookup(s, "q.example.com", 13, NULL));
    domainset_free(s);
}

/* A Unicode pattern matches its ASCII form and other spellings of itself. */
static void test_unicode_pattern(void **state)
{
    static const char *const pats[] = {"bücher.example", "*.straße.example"};
    struct domainset *s = make(pats, 2);

    (void)state;
    assert_int_equal(look(s, "xn--bcher-kva.example"), 1);
    assert_int_equal(look(s, "XN--BCHER-KVA.EXAMPLE"), 1);
    assert_int_equal(look(s, "bücher.example"), 1);
    assert_int_equal(look(s, "BÜCHER.example"), 1);
    assert_int_equal(look(s, "bücher.example."), 1);
    assert_int_equal(look(s, "bucher.example"), 0);
    assert_int_equal(look(s, "www.xn--strae-oqa.example"), 2);
    assert_int_equal(look(s, "www.STRASSE.example"), 0);
    domainset_free(s);
}

/* An ASCII pattern in IDNA form matches the Unicode spelling of a host. */
static void test_unicode_host(void **state)
{
    static const char *const pats[] = {"*.xn--bcher-kva.example"};
    struct domainset *s = make(pats, 1);

    (void)state;
    assert_int_equal(look(s, "www.bücher.example"), 1);
    assert_int_equal(look(s, "bücher.example"), 0);
    domainset_free(s);
}

/* The empty string is refused. */
static void test_refuse_empty(void **state)
{
    (void)state;
    refuse("", "empty");
    refuse(".", "empty");
}

/* "*" alone is refused. */
static void test_refuse_star_alone(void **state)
{
    (void)state;
    refuse("*", "'*'");
}

/* "*." with no suffix is refused. */
static void test_refuse_star_dot(void **state)
{
    (void)state;
    refuse("*.", "suffix");
    refuse("*..", "suffix");
}

/* '*' anywhere but as the whole first label is refused. */
static void test_refuse_star_inside(void **state)
{
    (void)state;
    refuse("foo.*.com", "'*'");
    refuse("*foo.com", "'*'");
    refuse("f*.com", "'*'");
    refuse("*.*.com", "'*'");
    refuse("**.com", "'*'");
}

/* An empty label is refused. */
static void test_refuse_empty_label(void **state)
{
    (void)state;
    refuse("a..b", "empty label");
    refuse(".example.com", "empty label");
    refuse("example.com..", "empty label");
    refuse("*.a..b", "empty label");
}

/* A label of 64 bytes is refused; 63 is the longest accepted. */
static void test_refuse_long_label(void **state)
{
    char label[80], name[100];
    struct domainset *s = domainset_new();

    (void)state;
    assert_non_null(s);
    snprintf(name, sizeof(name), "%s.com", repeat(label, 'a', 64));
    refuse(name, "label too long");
    snprintf(name, sizeof(name), "%s.com", repeat(label, 'a', 63));
    add_ok(s, name, 1);
    assert_int_equal(domainset_freeze(s), 0);
    assert_int_equal(look(s, name), 1);
    domainset_free(s);
}

/* A name of 254 bytes is refused; 253 is the longest accepted, a trailing dot aside. */
static void test_refuse_long_name(void **state)
{
    char label[64], name[300], dotted[310];
    struct domainset *s = domainset_new();

    (void)state;
    assert_non_null(s);
    repeat(label, 'a', 63);
    /* Three labels of 63, one of 62, three dots: 254 bytes. */
    snprintf(name, sizeof(name), "%s.%s.%s.%.62s", label, label, label, label);
    assert_int_equal(strlen(name), 254);
    refuse(name, "name too long");
    name[253] = '\0';
    snprintf(dotted, sizeof(dotted), "%s.", name);
    add_ok(s, dotted, 1);
    assert_int_equal(domainset_freeze(s), 0);
    assert_int_equal(look(s, name), 1);
    assert_int_equal(look(s, dotted), 1);
    domainset_free(s);
}

/* A wildcard whose suffix leaves no room for a label below it is refused. */
static void test_refuse_long_wildcard(void **state)
{
    char label[64], name[300];

    (void)state;
    repeat(label, 'a', 63);
    /* "*." and 252 bytes of suffix: every name below it would exceed 253 bytes. */
    snprintf(name, sizeof(name), "*.%s.%s.%s.%.60s", label, label, label, label);
    refuse(name, "name too long");
}

/* Spaces and other bytes outside letters, digits, '-' and '_' are refused. */
static void test_refuse_bad_character(void **state)
{
    (void)state;
    refuse("exa mple.com", "bad character");
    refuse(" example.com", "bad character");
    refuse("example.com ", "bad character");
    refuse("exa/mple.com", "bad character");
    refuse("example.com:443", "bad character");
    refuse("ex\tample.com", "bad character");
    refuse("\xff\xfe.com", "UTF-8");
}

/* Adding a pattern twice keeps the first value and counts it once. */
static void test_duplicate_keeps_first(void **state)
{
    struct domainset *s = domainset_new();

    (void)state;
    assert_non_null(s);
    add_ok(s, "example.com", 1);
    add_ok(s, "*.example.com", 3);
    add_ok(s, "EXAMPLE.com.", 2);
    add_ok(s, "*.Example.COM", 4);
    assert_int_equal(domainset_freeze(s), 0);
    assert_int_equal(domainset_count(s), 2);
    assert_int_equal(look(s, "example.com"), 1);
    assert_int_equal(look(s, "www.example.com"), 3);
    domainset_free(s);
}

/* An empty set matches nothing, frozen or not, and a NULL set is tolerated. */
static void test_empty_set(void **state)
{
    struct domainset *s = domainset_new();
    uint32_t value = 7;

    (void)state;
    assert_non_null(s);
    assert_false(domainset_lookup(s, "example.com", 11, &value));
    assert_int_equal(domainset_freeze(s), 0);
    assert_false(domainset_lookup(s, "example.com", 11, &value));
    assert_false(domainset_lookup(s, "", 0, &value));
    assert_int_equal(value, 7);
    assert_int_equal(domainset_count(s), 0);
    assert_false(domainset_lookup(NULL, "example.com", 11, &value));
    domainset_free(s);
    domainset_free(NULL);
}

/* Only host[0..len) is looked at: the bytes after it are not part of the name. */
static void test_lookup_span(void **state)
{
    static const char *const pats[] = {"example.com", "*.example.org"};
    static const char buf[] = "www.example.org.example.comXYZ";
    struct domainset *s = make(pats, 2);
    char exact[11], heap_copy[15];
    uint32_t value = 0;

    (void)state;
    /* Unterminated copies, so that ASan sees any read past the span. */
    memcpy(exact, "example.com", sizeof(exact));
    assert_true(domainset_lookup(s, exact, sizeof(exact), &value));
    assert_int_equal(value, 1);
    memcpy(heap_copy, "www.example.org", sizeof(heap_copy));
    assert_true(domainset_lookup(s, heap_copy, sizeof(heap_copy), &value));
    assert_int_equal(value, 2);
    assert_true(domainset_lookup(s, buf + 16, 11, &value));
    assert_int_equal(value, 1);
    assert_true(domainset_lookup(s, buf, 15, &value));
    assert_int_equal(value, 2);
    assert_true(domainset_lookup(s, buf, 16, &value)); /* with the trailing dot */
    assert_false(domainset_lookup(s, buf + 16, 10, &value));
    assert_false(domainset_lookup(s, buf + 16, 12, &value));
    assert_false(domainset_lookup(s, buf, 14, &value));
    domainset_free(s);
}

/* A host that cannot be normalised matches nothing, even where a wildcard would. */
static void test_lookup_invalid_host(void **state)
{
    static const char *const pats[] = {"*.example.com"};
    struct domainset *s = make(pats, 1);
    char label[64], name[300];

    (void)state;
    repeat(label, 'a', 63);
    snprintf(name, sizeof(name), "%s.%s.%s.%s.example.com", label, label, label, label);
    assert_int_equal(look(s, name), 0);
    assert_int_equal(look(s, "a b.example.com"), 0);
    assert_int_equal(look(s, "a..example.com"), 0);
    assert_int_equal(look(s, "*.example.com"), 0);
    assert_int_equal(look(s, ".example.com"), 0);
    assert_false(domainset_lookup(s, "a\0b.example.com", 15, NULL));
    domainset_free(s);
}

/* Once frozen, a set refuses further patterns. */
static void test_add_after_freeze(void **state)
{
    static const char *const pats[] = {"example.com"};
    struct domainset *s = make(pats, 1);
    const char *errstr = NULL;

    (void)state;
    assert_int_equal(domainset_add(s, "example.org", 2, &errstr), -1);
    assert_non_null(errstr);
    assert_int_equal(look(s, "example.org"), 0);
    assert_int_equal(domainset_count(s), 1);
    domainset_free(s);
}

/* domainset_normalize() writes the matching form and respects the buffer size. */
static void test_normalize(void **state)
{
    char out[DOMAINSET_NAME_MAX + 1], small[4];
    const char *errstr = NULL;

    (void)state;
    assert_int_equal(domainset_normalize("WWW.Example.COM.", 16, out, sizeof(out), &errstr), 15);
    assert_string_equal(out, "www.example.com");
    assert_int_equal(domainset_normalize("Bücher.Example", 15, out, sizeof(out), &errstr), 21);
    assert_string_equal(out, "xn--bcher-kva.example");
    assert_int_equal(domainset_normalize("a_b-1.test", 10, out, sizeof(out), &errstr), 10);
    assert_string_equal(out, "a_b-1.test");
    assert_int_equal(domainset_normalize("10.0.0.1", 8, out, sizeof(out), &errstr), 8);
    assert_string_equal(out, "10.0.0.1");
    assert_int_equal(domainset_normalize("abcde", 5, small, sizeof(small), &errstr), -1);
    assert_int_equal(domainset_normalize("ABCD", 4, small, sizeof(small), &errstr), 4);
    assert_memory_equal(small, "abcd", 4);
    assert_int_equal(domainset_normalize("Abc", 3, small, sizeof(small), &errstr), 3);
    assert_string_equal(small, "abc");
    errstr = NULL;
    assert_int_equal(domainset_normalize("a..b", 4, out, sizeof(out), &errstr), -1);
    assert_non_null(errstr);
}

/*
 * An IP literal is one entry whatever its spelling, in the set and in a lookup: the legacy
 * IPv4 forms, IPv4-mapped IPv6, and IPv6 in any RFC 4291 text; no wildcard covers one.
 */
static void test_ip_literals(void **state)
{
    static const char *const pats[] = {"2130706433", "::FFFF:10.0.0.1", "2001:DB8:0:0::1"};
    struct domainset *s = make(pats, 3);
    char out[DOMAINSET_NAME_MAX + 1];
    const char *errstr = NULL;

    (void)state;
    assert_int_equal(look(s, "127.0.0.1"), 1);
    assert_int_equal(look(s, "0x7f.1"), 1);
    assert_int_equal(look(s, "127.0.0.1."), 1);
    assert_int_equal(look(s, "10.0.0.1"), 2);
    assert_int_equal(look(s, "::ffff:a00:1"), 2);
    assert_int_equal(look(s, "2001:db8::1"), 3);
    assert_int_equal(look(s, "2001:0db8:0000::0001"), 3);
    assert_int_equal(look(s, "2001:db8::2"), 0);
    assert_true(domainset_lookup_normal(s, "2001:db8::1", 11, NULL));
    assert_false(domainset_lookup_normal(s, "2001:DB8::1", 11, NULL)); /* not normalised */
    assert_int_equal(domainset_normalize("::ffff:127.0.0.1", 16, out, sizeof(out), &errstr), 9);
    assert_string_equal(out, "127.0.0.1");
    domainset_free(s);
    refuse("*.10.0.0.1", "not an IP address");
    refuse("*.::1", "not an IP address");
}

/* A small deterministic generator (splitmix64), so that failures can be reproduced. */
static uint64_t next_random(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 100,000 random names are all found with their values; 100,000 others are not. */
static void test_random_names(void **state)
{
    static const char *const tlds[] = {"com", "net", "org", "io", "example", "co.uk"};
    char *names = malloc((size_t)2 * RANDOM_NAMES * NAME_SLOT);
    struct domainset *s = domainset_new();
    uint64_t seed = 20240601;

    (void)state;
    assert_non_null(names);
    assert_non_null(s);
    /* Name i is unique because it carries i; the two halves share their shape. */
    for (size_t i = 0; i < 2 * RANDOM_NAMES; i++) {
        uint64_t r = next_random(&seed);
        snprintf(names + i * NAME_SLOT, NAME_SLOT, "h%x-%zu.svc-%u.%s", (unsigned)(r & 0xfffff), i,
                 (unsigned)((r >> 20) % 500), tlds[(r >> 40) % 6]);
    }
    for (size_t i = 0; i < RANDOM_NAMES; i++)
        add_ok(s, names + i * NAME_SLOT, (uint32_t)i);
    assert_int_equal(domainset_freeze(s), 0);
    assert_int_equal(domainset_count(s), RANDOM_NAMES);
    assert_true(domainset_memory(s) > 0);
    for (size_t i = 0; i < RANDOM_NAMES; i++) {
        const char *name = names + i * NAME_SLOT;
        uint32_t value = UINT32_MAX;
        if (!domainset_lookup(s, name, strlen(name), &value) || value != i)
            fail_msg("\"%s\" not found with value %zu", name, i);
    }
    for (size_t i = RANDOM_NAMES; i < 2 * RANDOM_NAMES; i++) {
        const char *name = names + i * NAME_SLOT;
        if (domainset_lookup(s, name, strlen(name), NULL))
            fail_msg("\"%s\" found but never added", name);
    }
    domainset_free(s);
    free(names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_match),
        cmocka_unit_test(test_ip_literals),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_trailing_dot),
        cmocka_unit_test(test_wildcard_levels),
        cmocka_unit_test(test_wildcard_not_bare_suffix),
        cmocka_unit_test(test_wildcard_not_substring),
        cmocka_unit_test(test_not_prefix_of_longer_name),
        cmocka_unit_test(test_most_specific_wins),
        cmocka_unit_test(test_unicode_pattern),
        cmocka_unit_test(test_unicode_host),
        cmocka_unit_test(test_refuse_empty),
        cmocka_unit_test(test_refuse_star_alone),
        cmocka_unit_test(test_refuse_star_dot),
        cmocka_unit_test(test_refuse_star_inside),
        cmocka_unit_test(test_refuse_empty_label),
        cmocka_unit_test(test_refuse_long_label),
        cmocka_unit_test(test_refuse_long_name),
        cmocka_unit_test(test_refuse_long_wildcard),
        cmocka_unit_test(test_refuse_bad_character),
        cmocka_unit_test(test_duplicate_keeps_first),
        cmocka_unit_test(test_empty_set),
        cmocka_unit_test(test_lookup_span),
        cmocka_unit_test(test_lookup_invalid_host),
        cmocka_unit_test(test_add_after_freeze),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_random_names),
    };
    return cmocka_run_group_tests_name("unit_domainset", tests, NULL, NULL);
}
