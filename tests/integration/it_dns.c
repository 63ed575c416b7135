/*
 * Name resolution through a DNS server on loopback that answers (the test's stub), not
 * the hosts file: a name with several addresses is dialled address by address; an answer
 * that comes after its client left is dropped without a dial; a server that never answers
 * gives 504 dns_timeout; and a name whose address changes between two lookups is checked
 * and dialled by the address each lookup gave, the guard refusing the new one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dnsstub.h"
#include "itcommon.h"

/* GETs http://name:<origin port>/path through the proxy; returns the status. */
static long get_name(struct itcase *t, const char *name, const char *path)
{
    struct itcurl *c = itcurl_new(t->proxy_port);
    char url[160];
    long status;

    assert_non_null(c);
    snprintf(url, sizeof(url), "http://%s:%u%s", name, origin_port(t->origin), path);
    assert_int_equal(itcurl_perform(c, url), CURLE_OK);
    status = itcurl_status(c);
    itcurl_free(c);
    return status;
}

/*
 * multi.test answers 127.0.0.3 then 127.0.0.1; the origin listens on 127.0.0.1 only, so
 * the first address is refused and the second reached: the access line names it.
 */
static void test_several_addresses(void **state)
{
    struct itcase *t = *state;
    char *line;

    assert_int_equal(dnsstub_add_a(t->env->dns, "multi.test", "127.0.0.3"), 0);
    assert_int_equal(dnsstub_add_a(t->env->dns, "multi.test", "127.0.0.1"), 0);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    assert_int_equal(get_name(t, "multi.test", "/multi"), 200);
    assert_true(dnsstub_was_asked(t->env->dns, "multi.test"));
    line = it_access_line(t, "/multi\"", NULL);
    it_assert_access_field(line, "status", "200");
    it_assert_access_field(line, "dst", "127.0.0.1");
    it_assert_access_field(line, "term", "--");
    free(line);
    assert_int_equal(origin_requests(t->origin), 1);
}

/*
 * slow.test is answered 1 s after it is asked; the client leaves after asking.  When the
 * answer comes, nothing is dialled (the origin sees no connection), the access line says
 * the client closed while the name resolved, and sluice serves the next client.
 */
static void test_late_answer_after_client_left(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    char req[160], *line;
    unsigned answered;

    assert_int_equal(dnsstub_add_a(t->env->dns, "slow.test", "127.0.0.1"), 0);
    assert_int_equal(dnsstub_delay(t->env->dns, "slow.test", 1000), 0);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    answered = dnsstub_queries(t->env->dns);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://slow.test:%u/slow HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    for (int i = 0; i < 250 && !dnsstub_was_asked(t->env->dns, "slow.test"); i++)
        tio_sleep_ms(20);
    assert_true(dnsstub_was_asked(t->env->dns, "slow.test"));
    /* Mid-flight, the answer still a second away, the client goes with a reset: a FIN
     * alone could be a half-close that still waits for the response. */
    assert_int_equal(tio_set_linger0(rc->fd), 0);
    rawclient_close(rc);
    line = it_access_line(t, "/slow\"", NULL);
    it_assert_access_field(line, "term", "CN");
    it_assert_access_field(line, "sent", "0");
    free(line);
    /* The late answer arrives (the stub counts it when sent) and is dropped. */
    for (int i = 0; i < 250 && dnsstub_queries(t->env->dns) == answered; i++)
        tio_sleep_ms(20);
    assert_true(dnsstub_queries(t->env->dns) > answered);
    tio_sleep_ms(200); /* time for a wrong dial to show at the origin */
    assert_int_equal(origin_accepted(t->origin), 0);
    it_assert_serves(t);
}

/* A DNS server that never answers: 504 with dns_timeout once --timeout-connect is over. */
static void test_dns_timeout(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--timeout-connect", "1s", NULL};
    struct rawresp r = {0};
    char authority[64], type[64], *line;
    uint64_t t0;

    assert_int_equal(dnsstub_add_silent(t->env->dns, "hang.test"), 0);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    snprintf(authority, sizeof(authority), "hang.test:%u", origin_port(t->origin));
    t0 = tio_now_ms();
    assert_int_equal(it_raw_get(t, authority, &r), 504);
    assert_true(tio_now_ms() - t0 < 5000);
    it_assert_sluice_error(&r, 504, type, sizeof(type));
    assert_string_equal(type, "dns_timeout");
    rawresp_free(&r);
    line = it_access_line(t, "target=\"http://hang.test:", NULL);
    it_assert_access_field(line, "term", "sN");
    it_assert_access_field(line, "error", "dns_timeout");
    free(line);
    assert_int_equal(origin_accepted(t->origin), 0);
}

/* Answers one request and closes: nothing is kept in the pool, so each request resolves. */
static void close_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    (void)oconn_respond(c, 200, "Connection: close\r\n", "once\n", 5);
}

/*
 * flip.test resolves to 127.0.0.1, then to 127.0.0.2, which the organisation denies.  Each
 * request is decided on the address its own lookup gave and dials exactly that address:
 * the first reaches the origin, the second is refused by deny-cidr naming 127.0.0.2, and
 * the origin sees one request.  (The origin closes after each answer: a kept connection
 * would carry the second request to the first address, which passed, with no lookup.)
 */
static void test_address_changes_between_lookups(void **state)
{
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "deny_cidrs: [127.0.0.2/32]\n", NULL, NULL);
    char *line;

    assert_int_equal(dnsstub_add_a(t->env->dns, "flip.test", "127.0.0.1"), 0);
    it_start_origin(t, close_handler, NULL);
    {
        const char *const args[] = {"--policy-dir", dir, NULL};
        it_start_proxy(t, args);
    }
    assert_int_equal(get_name(t, "flip.test", "/first"), 200);
    line = it_access_line(t, "/first\"", NULL);
    it_assert_access_field(line, "dst", "127.0.0.1");
    free(line);

    assert_int_equal(dnsstub_set_a(t->env->dns, "flip.test", "127.0.0.2"), 0);
    assert_int_equal(get_name(t, "flip.test", "/second"), 403);
    line = it_access_line(t, "/second\"", NULL);
    it_assert_access_field(line, "rule", "deny-cidr");
    it_assert_access_field(line, "dst", "127.0.0.2");
    it_assert_access_field(line, "decision", "block");
    free(line);
    assert_int_equal(origin_requests(t->origin), 1);
}

/* Runs the cases, each with its own environment. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_several_addresses, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_late_answer_after_client_left, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_dns_timeout, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_address_changes_between_lookups, it_setup,
                                        it_teardown),
    };

    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests_name("integration_dns", tests, NULL, NULL);
}
