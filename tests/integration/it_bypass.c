/*
 * Attempts to get around sluice's rules and its record, through the real binary: other
 * spellings of a denied host, the resolver's search list, a quiet log level.  Every case
 * that expects a refusal also checks that the origin (or the DNS name behind it) was never
 * reached, and reads the access line field by field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "itcommon.h"

/*
 * Writes <dir>/policies with organisation.yaml holding org and, when tool is not NULL,
 * tools/<tool>.yaml holding profile.  Returns the directory (static storage).
 */
static const char *write_policy(struct itcase *t, const char *org, const char *tool,
                                const char *profile)
{
    static char dir[512];
    char path[700];

    snprintf(dir, sizeof(dir), "%s/policies", t->env->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/tools", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/organisation.yaml", dir);
    assert_int_equal(tio_write_file(path, org), 0);
    if (tool != NULL) {
        snprintf(path, sizeof(path), "%s/tools/%s.yaml", dir, tool);
        assert_int_equal(tio_write_file(path, profile), 0);
    }
    return dir;
}

/* Sends "GET http://<authority>/x" on a new raw connection; returns the status, r filled. */
static int raw_get(struct itcase *t, const char *authority, struct rawresp *r)
{
    struct rawclient *rc = it_raw(t);
    char req[600];
    int status;

    snprintf(req, sizeof(req), "GET http://%s/x HTTP/1.1\r\nHost: %s\r\n\r\n", authority,
             authority);
    assert_int_equal(rawclient_sends(rc, req), 0);
    status = rawclient_response(rc, r, false, 8000);
    rawclient_close(rc);
    return status;
}

/* Asserts that GET http://<authority>/x is answered with status and the given error type. */
static void expect_refused(struct itcase *t, const char *authority, int status, const char *type)
{
    struct rawresp r = {0};
    char got[64];
    int st = raw_get(t, authority, &r);

    if (st != status)
        fail_msg("GET http://%s/x: expected %d, got %d:\n%s%s", authority, status, st,
                 tbuf_str(&r.head), tbuf_str(&r.body));
    it_assert_sluice_error(&r, status, got, sizeof(got));
    assert_string_equal(got, type);
    rawresp_free(&r);
}

/*
 * A short name must not reach a denied domain through the resolver's search list: with
 * "search corp.test" in resolv.conf and *.corp.test denied, http://secret:PORT/ is looked
 * up as "secret" alone, which does not exist, and secret.corp.test is never asked for.
 */
static void test_search_list_not_used(void **state)
{
    struct itcase *t = *state;
    const char *dir = write_policy(t, "deny_hosts: [\"*.corp.test\"]\n", NULL, NULL);
    const char *const args[] = {"--policy-dir", dir, NULL};
    char resolv[256], authority[96], *line;

    it_start_origin(t, origin_handler_simple, NULL);
    assert_int_equal(dnsstub_add_a(t->env->dns, "secret.corp.test", "127.0.0.1"), 0);
    snprintf(resolv, sizeof(resolv), "nameserver 127.0.0.1:%u\nsearch corp.test\noptions ndots:3\n",
             dnsstub_port(t->env->dns));
    assert_int_equal(tio_write_file(t->env->resolv_path, resolv), 0);
    it_start_proxy(t, args);

    snprintf(authority, sizeof(authority), "secret:%u", origin_port(t->origin));
    expect_refused(t, authority, 502, "dns_error");
    line = it_access_line(t, "target=\"http://secret:", NULL);
    it_assert_access_field(line, "status", "502");
    it_assert_access_field(line, "term", "SN");
    free(line);
    assert_false(dnsstub_was_asked(t->env->dns, "secret.corp.test"));
    assert_true(dnsstub_was_asked(t->env->dns, "secret"));

    /* The full name is the one policy denies. */
    snprintf(authority, sizeof(authority), "secret.corp.test:%u", origin_port(t->origin));
    expect_refused(t, authority, 403, "http_request_denied");
    assert_int_equal(origin_accepted(t->origin), 0);
}

/*
 * Every spelling of a denied address or name is that address or name: IPv4-mapped IPv6
 * in both notations, the legacy IPv4 forms, upper case, a trailing dot.
 */
static void test_spellings_of_denied_hosts(void **state)
{
    struct itcase *t = *state;
    const char *dir = write_policy(t, "deny_hosts: [\"127.0.0.1\", \"origin.test\"]\n", NULL, NULL);
    const char *const args[] = {"--policy-dir", dir, NULL};
    const char *forms[] = {"[::ffff:127.0.0.1]",
                           "[::ffff:7f00:1]",
                           "[0:0:0:0:0:ffff:7f00:1]",
                           "2130706433",
                           "0x7f000001",
                           "0177.0.0.1",
                           "127.1",
                           "0x7f.1",
                           "127.0.0.1.",
                           "ORIGIN.test",
                           "origin.TEST.",
                           "Origin.Test"};
    char authority[96], *line;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(authority, sizeof(authority), "%s:%u", forms[i], origin_port(t->origin));
        expect_refused(t, authority, 403, "http_request_denied");
    }
    line = it_access_line(t, "target=\"http://[::ffff:7f00:1]:", NULL);
    it_assert_access_field(line, "rule", "deny-host");
    it_assert_access_field(line, "decision", "block");
    it_assert_access_field(line, "status", "403");
    free(line);
    assert_int_equal(origin_accepted(t->origin), 0);
}

/* A host name with an empty label is refused with 400 before any lookup or policy. */
static void test_empty_labels_refused(void **state)
{
    struct itcase *t = *state;
    const char *forms[] = {"origin..test", ".origin.test", "origin.test..", "a..", "..a"};
    char authority[96];
    unsigned queries;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    queries = dnsstub_queries(t->env->dns);
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(authority, sizeof(authority), "%s:%u", forms[i], origin_port(t->origin));
        expect_refused(t, authority, 400, "http_request_error");
    }
    assert_int_equal(dnsstub_queries(t->env->dns), queries);
    assert_int_equal(origin_accepted(t->origin), 0);
    it_assert_serves(t);
}

/* The access line is the record of what left the machine: -q does not silence it. */
static void test_quiet_keeps_access_lines(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"-q", "-q", "-q", NULL};
    char authority[96], *line;
    struct rawresp r = {0};

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    snprintf(authority, sizeof(authority), "origin.test:%u", origin_port(t->origin));
    assert_int_equal(raw_get(t, authority, &r), 200);
    rawresp_free(&r);
    line = it_access_line(t, "target=\"http://origin.test:", NULL);
    it_assert_access_field(line, "status", "200");
    it_assert_access_field(line, "method", "GET");
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_search_list_not_used, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_spellings_of_denied_hosts, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_empty_labels_refused, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_quiet_keeps_access_lines, it_setup, it_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
