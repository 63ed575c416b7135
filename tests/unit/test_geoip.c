/*
 * Unit tests for the GeoIP module, on the databases tests/data/make-geoip-db writes into
 * $SLUICE_GEOIP_DIR: every test range in both country layouts and the ASN layout, IPv4,
 * IPv6 and IPv4-mapped addresses, addresses in no range, each open error, and the policy
 * file's country-code check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "sluice/geoip.h"

/* Databases opened once for the lookup tests, and a scratch directory for bad files. */
struct fixture {
    char country_path[512]; /* test-country.mmdb (GeoLite2-Country layout) */
    char asn_path[512];     /* test-asn.mmdb (GeoLite2-ASN layout) */
    char iplocdb_path[512]; /* test-country-iplocdb.mmdb (ip-location-db layout) */
    char tmpdir[64];        /* removed by the teardown */
    struct geoip *maxmind;  /* country + ASN */
    struct geoip *iplocdb;  /* ip-location-db country + ASN */
};

/* Opens the test databases; fails loudly when SLUICE_GEOIP_DIR does not lead to them. */
static int setup(void **state)
{
    const char *dir = getenv("SLUICE_GEOIP_DIR");
    struct fixture *f = calloc(1, sizeof(*f));
    char err[512];

    if (f == NULL)
        return -1;
    if (dir == NULL || dir[0] == '\0') {
        fprintf(stderr, "SLUICE_GEOIP_DIR is not set; run tests/data/make-geoip-db DIR and "
                        "point it at DIR (ctest does both)\n");
        free(f);
        return -1;
    }
    snprintf(f->country_path, sizeof(f->country_path), "%s/test-country.mmdb", dir);
    snprintf(f->asn_path, sizeof(f->asn_path), "%s/test-asn.mmdb", dir);
    snprintf(f->iplocdb_path, sizeof(f->iplocdb_path), "%s/test-country-iplocdb.mmdb", dir);
    snprintf(f->tmpdir, sizeof(f->tmpdir), "/tmp/sluice-geoip-XXXXXX");
    if (mkdtemp(f->tmpdir) == NULL)
        goto fail;
    f->maxmind = geoip_open(f->country_path, f->asn_path, err, sizeof(err));
    if (f->maxmind == NULL) {
        fprintf(stderr, "%s\n", err);
        goto fail;
    }
    f->iplocdb = geoip_open(f->iplocdb_path, f->asn_path, err, sizeof(err));
    if (f->iplocdb == NULL) {
        fprintf(stderr, "%s\n", err);
        goto fail;
    }
    *state = f;
    return 0;

fail:
    geoip_close(f->maxmind);
    if (f->tmpdir[0] != '\0')
        rmdir(f->tmpdir);
    free(f);
    return -1;
}

/* Closes the databases and removes the scratch directory; cmocka calls it after a failed
 * setup too, with no state. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    if (f == NULL)
        return 0;
    geoip_close(f->maxmind);
    geoip_close(f->iplocdb);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->tmpdir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Looks up the numeric address ip (IPv4 or IPv6) in g. */
static void lookup(const struct geoip *g, const char *ip, struct geoip_result *r)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(443);
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons(443);
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    /* Poison the result so that fields a lookup leaves unset show up. */
    memset(r, 'x', sizeof(*r));
    geoip_lookup(g, (const struct sockaddr *)&ss, r);
}

/* Asserts that ip has country cc, AS number asn and organisation org in g. */
static void expect(const struct geoip *g, const char *ip, const char *cc, uint32_t asn,
                   const char *org)
{
    struct geoip_result r;

    lookup(g, ip, &r);
    assert_string_equal(r.country, cc);
    assert_int_equal(r.asn, asn);
    assert_string_equal(r.as_org, org);
}

/* Asserts that geoip_open() fails and that its message contains both needles. */
static void expect_open_error(const char *country, const char *asn, const char *needle1,
                              const char *needle2)
{
    char err[512] = "";

    assert_null(geoip_open(country, asn, err, sizeof(err)));
    if (strstr(err, needle1) == NULL || (needle2 != NULL && strstr(err, needle2) == NULL))
        fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err, needle1, needle2 ? needle2 : "");
}

/* Writes len bytes of data to dir/name and puts the path in path. */
static void write_file(const char *dir, const char *name, const void *data, size_t len, char *path,
                       size_t cap)
{
    FILE *out;

    snprintf(path, cap, "%s/%s", dir, name);
    out = fopen(path, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(data, 1, len, out), len);
    assert_int_equal(fclose(out), 0);
}

/* 127.0.0.0/24 is US, AS64500. */
static void test_range_us(void **state)
{
    struct fixture *f = *state;

    expect(f->maxmind, "127.0.0.1", "US", 64500, "Sluice Test Net US");
    expect(f->maxmind, "127.0.0.255", "US", 64500, "Sluice Test Net US");
}

/* 127.0.1.0/24 is DE, AS64501. */
static void test_range_de(void **state)
{
    struct fixture *f = *state;

    expect(f->maxmind, "127.0.1.5", "DE", 64501, "Sluice Test Net DE");
}

/* 127.0.2.0/24 is KP, AS64502. */
static void test_range_kp(void **state)
{
    struct fixture *f = *state;

    expect(f->maxmind, "127.0.2.200", "KP", 64502, "Sluice Test Net KP");
}

/* 127.0.3.0/24 is FR only through registered_country, and its AS has no organisation. */
static void test_range_fr_registered_country(void **state)
{
    struct fixture *f = *state;

    expect(f->maxmind, "127.0.3.1", "FR", 64503, "");
}

/* 192.0.2.0/24 (documentation) is NL, AS64504. */
static void test_range_doc_ipv4(void **state)
{
    struct fixture *f = *state;

    expect(f->maxmind, "192.0.2.7", "NL", 64504, "Sluice Test Net NL");
}

/* ::1 is US, AS64500. */
static void test_ipv6_loopback(void **state)
{
    struct fixture *f = *state;

    expect(f->maxmind, "::1", "US", 64500, "Sluice Test Net US");
}

/* 2001:db8::/32 (documentation) is NL, AS64504. */
static void test_range_doc_ipv6(void **state)
{
    struct fixture *f = *state;

    expect(f->maxmind, "2001:db8::5", "NL", 64504, "Sluice Test Net NL");
    expect(f->maxmind, "2001:db8:ffff::1", "NL", 64504, "Sluice Test Net NL");
}

/* An IPv4-mapped address is looked up as its IPv4 address in both layouts. */
static void test_ipv4_mapped(void **state)
{
    struct fixture *f = *state;

    expect(f->maxmind, "::ffff:127.0.1.9", "DE", 64501, "Sluice Test Net DE");
    /* ip-location-db files have no data at ::ffff:0:0/96: only unmapping finds DE. */
    expect(f->iplocdb, "::ffff:127.0.1.9", "DE", 64501, "Sluice Test Net DE");
    expect(f->iplocdb, "::ffff:192.0.2.1", "NL", 64504, "Sluice Test Net NL");
}

/* Addresses in no range give an empty result. */
static void test_not_found(void **state)
{
    struct fixture *f = *state;

    expect(f->maxmind, "127.0.4.1", "", 0, "");
    expect(f->maxmind, "198.51.100.1", "", 0, "");
    expect(f->maxmind, "::2", "", 0, "");
    expect(f->maxmind, "2001:db9::1", "", 0, "");
    expect(f->maxmind, "::ffff:198.51.100.1", "", 0, "");
    expect(f->iplocdb, "127.0.4.1", "", 0, "");
}

/* The ip-location-db layout (country_code) gives the same countries. */
static void test_iplocdb_layout(void **state)
{
    struct fixture *f = *state;
    char err[512];
    struct geoip *g = geoip_open(f->iplocdb_path, NULL, err, sizeof(err));

    if (g == NULL)
        fail_msg("%s", err);
    assert_true(geoip_has_country(g));
    assert_false(geoip_has_asn(g));
    expect(g, "127.0.0.1", "US", 0, "");
    expect(g, "127.0.1.5", "DE", 0, "");
    expect(g, "127.0.2.200", "KP", 0, "");
    expect(g, "127.0.3.1", "FR", 0, "");
    expect(g, "192.0.2.7", "NL", 0, "");
    expect(g, "::1", "US", 0, "");
    expect(g, "2001:db8::5", "NL", 0, "");
    expect(g, "::ffff:127.0.2.9", "KP", 0, "");
    geoip_close(g);
}

/* An ASN database alone gives AS numbers and no country. */
static void test_asn_only(void **state)
{
    struct fixture *f = *state;
    char err[512];
    struct geoip *g = geoip_open(NULL, f->asn_path, err, sizeof(err));

    if (g == NULL)
        fail_msg("%s", err);
    assert_false(geoip_has_country(g));
    assert_true(geoip_has_asn(g));
    expect(g, "127.0.1.5", "", 64501, "Sluice Test Net DE");
    geoip_close(g);
}

/* The AS organisation loses control characters and is cut between whole characters. */
static void test_org_sanitised(void **state)
{
    struct fixture *f = *state;
    char want[64] = "Sluice Test Net ";
    struct geoip_result r;

    /* "Sluice\1 Test\x7f Net \u0085" then 30 x U+00D6: 16 bytes + 23 x 2 fit in 63. */
    for (int i = 0; i < 23; i++)
        strcat(want, "\xc3\x96");
    lookup(f->maxmind, "203.0.113.9", &r);
    assert_string_equal(r.country, "SE");
    assert_int_equal(r.asn, 64505);
    assert_string_equal(r.as_org, want);
    assert_int_equal(strlen(r.as_org), 62);
}

/* An address family other than IPv4 and IPv6, or no address, gives an empty result. */
static void test_other_family(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un un;
    struct geoip_result r;

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    memset(&r, 'x', sizeof(r));
    geoip_lookup(f->maxmind, (const struct sockaddr *)&un, &r);
    assert_string_equal(r.country, "");
    assert_int_equal(r.asn, 0);
    assert_string_equal(r.as_org, "");
    memset(&r, 'x', sizeof(r));
    geoip_lookup(NULL, (const struct sockaddr *)&un, &r);
    assert_string_equal(r.country, "");
    memset(&r, 'x', sizeof(r));
    geoip_lookup(f->maxmind, NULL, &r);
    assert_int_equal(r.asn, 0);
}

/* A missing file is refused with its name in the message. */
static void test_open_missing(void **state)
{
    struct fixture *f = *state;
    char path[128];

    snprintf(path, sizeof(path), "%s/no-such.mmdb", f->tmpdir);
    expect_open_error(path, NULL, path, "No such file");
    expect_open_error(NULL, path, path, "ASN");
    /* A good country database does not hide a missing ASN one. */
    expect_open_error(f->country_path, path, path, "No such file");
}

/* A file that is not an MMDB, or is empty, is refused. */
static void test_open_not_mmdb(void **state)
{
    struct fixture *f = *state;
    static const char garbage[] = "this is not a MaxMind database\n\x01\x02\x03\xff";
    char path[128];

    write_file(f->tmpdir, "garbage.mmdb", garbage, sizeof(garbage), path, sizeof(path));
    expect_open_error(path, NULL, path, "not a MaxMind DB");
    write_file(f->tmpdir, "empty.mmdb", "", 0, path, sizeof(path));
    expect_open_error(NULL, path, path, "not a MaxMind DB");
    expect_open_error(f->tmpdir, NULL, f->tmpdir, "not a regular file");
}

/* An ASN database given as the country database is refused, and the other way round. */
static void test_open_wrong_kind(void **state)
{
    struct fixture *f = *state;

    expect_open_error(f->asn_path, NULL, f->asn_path, "has no country data");
    expect_open_error(f->country_path, f->country_path, f->country_path, "has no ASN data");
    expect_open_error(NULL, f->iplocdb_path, f->iplocdb_path, "has no ASN data");
}

/* At least one database must be given; a small or absent message buffer is safe. */
static void test_open_nothing(void **state)
{
    struct fixture *f = *state;
    char err[8];

    expect_open_error(NULL, NULL, "no database", NULL);
    memset(err, 'x', sizeof(err));
    assert_null(geoip_open(NULL, NULL, err, sizeof(err)));
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_null(geoip_open(f->asn_path, NULL, NULL, 0));
    geoip_close(NULL);
    assert_false(geoip_has_country(NULL));
    assert_false(geoip_has_asn(NULL));
}

/* Policy files may write a country code in either case; nothing else passes. */
static void test_country_code_valid(void **state)
{
    char out[3] = "";

    (void)state;
    assert_true(geoip_country_code_valid("de", out));
    assert_string_equal(out, "DE");
    assert_true(geoip_country_code_valid("Kp", out));
    assert_string_equal(out, "KP");
    assert_true(geoip_country_code_valid("US", out));
    assert_string_equal(out, "US");
    assert_false(geoip_country_code_valid("D", out));
    assert_false(geoip_country_code_valid("DEU", out));
    assert_false(geoip_country_code_valid("1A", out));
    assert_false(geoip_country_code_valid("A1", out));
    assert_false(geoip_country_code_valid("", out));
    assert_false(geoip_country_code_valid(" D", out));
    assert_false(geoip_country_code_valid("\xc3\x96", out));
    assert_false(geoip_country_code_valid(NULL, out));
}

/* Runs every case against the databases opened once by setup(). */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_us),       cmocka_unit_test(test_range_de),
        cmocka_unit_test(test_range_kp),       cmocka_unit_test(test_range_fr_registered_country),
        cmocka_unit_test(test_range_doc_ipv4), cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_range_doc_ipv6), cmocka_unit_test(test_ipv4_mapped),
        cmocka_unit_test(test_not_found),      cmocka_unit_test(test_iplocdb_layout),
        cmocka_unit_test(test_asn_only),       cmocka_unit_test(test_org_sanitised),
        cmocka_unit_test(test_other_family),   cmocka_unit_test(test_open_missing),
        cmocka_unit_test(test_open_not_mmdb),  cmocka_unit_test(test_open_wrong_kind),
        cmocka_unit_test(test_open_nothing),   cmocka_unit_test(test_country_code_valid),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
