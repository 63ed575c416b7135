/*
 * The address guard and GeoIP through the real binary: the address checked is the address
 * dialled, every resolved address is checked, IP literals in any spelling are one address,
 * gateway mode refuses inward addresses by default, and country and AS rules decide on the
 * test databases that tests/data/make-geoip-db writes (127.0.0.0/24 is US, AS64500;
 * 127.0.1.0/24 DE; 127.0.2.0/24 KP).  A refused address is never dialled: each case checks
 * that the origin accepted nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "itcommon.h"

/* Path of a test GeoIP database ($SLUICE_GEOIP_DIR/name). */
static const char *geoip_path(const char *name)
{
    static char paths[2][512];
    static int next;
    const char *dir = getenv("SLUICE_GEOIP_DIR");
    char *out = paths[next++ % 2];

    assert_non_null(dir);
    snprintf(out, sizeof(paths[0]), "%s/%s", dir, name);
    return out;
}

/* Asserts that a raw GET of authority is refused by rule, naming the address. */
static void expect_refused(struct itcase *t, const char *authority, const char *rule,
                           const char *address)
{
    struct rawresp r = {0};
    char type[64], want[128];

    assert_int_equal(it_raw_get(t, authority, &r), 403);
    it_assert_sluice_error(&r, 403, type, sizeof(type));
    assert_string_equal(type, "http_request_denied");
    snprintf(want, sizeof(want), "rule %s", rule);
    if (strstr(tbuf_str(&r.body), want) == NULL || strstr(tbuf_str(&r.body), address) == NULL)
        fail_msg("GET %s: expected '%s' and '%s' in: %s", authority, want, address,
                 tbuf_str(&r.body));
    rawresp_free(&r);
}

/* Gateway mode: loopback (and so every test origin) is refused by default, never dialled. */
static void test_gateway_denies_loopback(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--mode", "gateway", NULL};
    char authority[64], rule[64];
    struct rawclient *rc;
    struct rawresp r = {0};

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    snprintf(authority, sizeof(authority), "origin.test:%u", origin_port(t->origin));
    expect_refused(t, authority, "deny-address:loopback", "127.0.0.1");
    snprintf(rule, sizeof(rule), "rule=deny-address:loopback");
    it_expect_access(t, "status=403", "term=PC", "decision=block", rule, "dst=127.0.0.1", NULL);
    /* A tunnel is refused the same way, before the 200. */
    rc = it_raw(t);
    assert_int_equal(rawclient_sends(rc, "CONNECT origin.test:443 HTTP/1.1\r\n"
                                         "Host: origin.test:443\r\n\r\n"),
                     0);
    assert_int_equal(rawclient_response(rc, &r, false, 5000), 403);
    assert_non_null(strstr(tbuf_str(&r.body), "deny-address:loopback"));
    rawresp_free(&r);
    rawclient_close(rc);
    assert_int_equal(origin_accepted(t->origin), 0);
}

/* Every spelling of 127.0.0.1 is 127.0.0.1: decimal, hex, octal, short, IPv4-mapped. */
static void test_literal_forms(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--mode", "gateway", NULL};
    const char *forms[] = {"2130706433", "0x7f000001",         "0177.0.0.1", "127.1",
                           "0x7f.1",     "[::ffff:127.0.0.1]", "[::1]"};
    char authority[96];

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(authority, sizeof(authority), "%s:%u", forms[i], origin_port(t->origin));
        expect_refused(
            t, authority, "deny-address:loopback",
            strchr(forms[i], ':') != NULL && strstr(forms[i], "127") == NULL ? "::1" : "127.0.0.1");
    }
    assert_int_equal(origin_accepted(t->origin), 0);
}

/* allow_cidrs re-opens one address that a class would refuse. */
static void test_allow_cidrs_exception(void **state)
{
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "allow_cidrs: [127.0.0.1/32]\n", NULL, NULL);
    const char *const args[] = {"--mode", "gateway", "--policy-dir", dir, NULL};
    struct itcurl *c;
    char url[128];

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    assert_int_equal(itcurl_perform(c, it_url(t, "/ok", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);
    it_expect_access(t, "status=200", "dst=127.0.0.1", "decision=allow", NULL);
}

/*
 * Each resolved address is checked and only a checked one is dialled: dual.test is ::1
 * then 127.0.0.1; with ::1 denied the request goes to 127.0.0.1, and origin6.test (::1
 * only) is refused.
 */
static void test_every_address_checked(void **state)
{
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "deny_cidrs: [\"::1/128\"]\n", NULL, NULL);
    const char *const args[] = {"--policy-dir", dir, NULL};
    struct itcurl *c;
    char url[128], authority[64];

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    snprintf(url, sizeof(url), "http://dual.test:%u/ok", origin_port(t->origin));
    assert_int_equal(itcurl_perform(c, url), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);
    it_expect_access(t, "target=\"http://dual.test", "status=200", "dst=127.0.0.1", NULL);
    snprintf(authority, sizeof(authority), "origin6.test:%u", origin_port(t->origin));
    expect_refused(t, authority, "deny-cidr", "::1");
    it_expect_access(t, "target=\"http://origin6.test", "status=403", "rule=deny-cidr", "dst=::1",
                     NULL);
}

/* Local mode reaches the developer's own services, but never the proxy itself. */
static void test_local_mode_refuses_self(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    char url[128], authority[64];

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    assert_int_equal(itcurl_perform(c, it_url(t, "/ok", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);
    snprintf(authority, sizeof(authority), "127.0.0.1:%u", t->proxy_port);
    expect_refused(t, authority, "deny-address:self", "127.0.0.1");
    it_assert_serves(t);
}

/* Starts the proxy with the test databases and an organisation policy. */
static void start_with_geoip(struct itcase *t, const char *org)
{
    const char *dir = it_write_policy(t, org, NULL, NULL);
    const char *const args[] = {"--policy-dir",
                                dir,
                                "--geoip-country",
                                geoip_path("test-country.mmdb"),
                                "--geoip-asn",
                                geoip_path("test-asn.mmdb"),
                                NULL};

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
}

/* A denied country is refused; others pass, with country and AS in the access line. */
static void test_deny_country(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    char url[128], authority[64];

    start_with_geoip(t, "deny_countries: [kp]\n");
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    assert_int_equal(itcurl_perform(c, it_url(t, "/ok", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);
    it_expect_access(t, "status=200", "country=US", "asn=64500", NULL);
    snprintf(authority, sizeof(authority), "kp.test:%u", origin_port(t->origin));
    expect_refused(t, authority, "deny-country:KP", "127.0.2.1");
    it_expect_access(t, "target=\"http://kp.test", "status=403", "rule=deny-country:KP",
                     "country=KP", NULL);
}

/* allow_countries: everything outside the list is refused. */
static void test_allow_countries_only(void **state)
{
    struct itcase *t = *state;
    char authority[64];

    start_with_geoip(t, "allow_countries: [DE, FR]\n");
    snprintf(authority, sizeof(authority), "origin.test:%u", origin_port(t->origin));
    expect_refused(t, authority, "allow-countries:US", "127.0.0.1");
    assert_int_equal(origin_accepted(t->origin), 0);
}

/* deny_asns: an autonomous system is refused by number. */
static void test_deny_asn(void **state)
{
    struct itcase *t = *state;
    char authority[64];

    start_with_geoip(t, "deny_asns: [AS64500]\n");
    snprintf(authority, sizeof(authority), "origin.test:%u", origin_port(t->origin));
    expect_refused(t, authority, "deny-asn:AS64500", "127.0.0.1");
    it_expect_access(t, "status=403", "rule=deny-asn:AS64500", "asn=64500", NULL);
    assert_int_equal(origin_accepted(t->origin), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gateway_denies_loopback, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_literal_forms, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_allow_cidrs_exception, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_every_address_checked, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_local_mode_refuses_self, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_deny_country, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_allow_countries_only, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_deny_asn, it_setup, it_teardown),
    };
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
