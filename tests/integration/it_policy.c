/*
 * Policies through the real binary: a tool identified by its proxy user name or by the
 * listener it connects to, allowed to its endpoints, refused elsewhere with a 403 that
 * names the tool, host, policy file and rule; a banned tool; report mode; CONNECT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "itcommon.h"

/* Writes a policy directory for the case: tools alpha (block by default), beta, gamma. */
static void write_policies(struct itcase *t, const char *org)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/policies", t->env->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/policies/tools", t->env->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/policies/tools/alpha.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path, "id: alpha\n"
                                          "identify: {proxy_users: [alpha]}\n"
                                          "default: block\n"
                                          "endpoints:\n"
                                          "  - {group: api, purpose: api, hosts: [origin.test]}\n"
                                          "  - group: events\n"
                                          "    purpose: telemetry\n"
                                          "    hosts: [origin.test]\n"
                                          "    paths: [/events]\n"),
                     0);
    snprintf(path, sizeof(path), "%s/policies/tools/beta.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path, "id: beta\ndefault: report\n"), 0);
    snprintf(path, sizeof(path), "%s/policies/tools/gamma.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path, "id: gamma\ndefault: allow\n"), 0);
    snprintf(path, sizeof(path), "%s/policies/organisation.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path, org), 0);
}

/* Starts the proxy with the case's policy directory and extra args. */
static void start_with_policies(struct itcase *t, const char *extra)
{
    static char dir[512];
    const char *args[] = {"--policy-dir", dir, extra, NULL};

    snprintf(dir, sizeof(dir), "%s/policies", t->env->dir);
    it_start_proxy(t, args);
}

/* GETs path on the origin as proxy user user (NULL: none); returns the status. */
static long get_as(struct itcase *t, const char *user, const char *path, struct tbuf *body)
{
    struct itcurl *c = itcurl_new(t->proxy_port);
    char url[128];
    long status;

    assert_non_null(c);
    if (user != NULL) {
        char cred[64];
        snprintf(cred, sizeof(cred), "%s:secret", user);
        curl_easy_setopt(c->h, CURLOPT_PROXYUSERPWD, cred);
    }
    assert_int_equal(itcurl_perform(c, it_url(t, path, url, sizeof(url))), CURLE_OK);
    status = itcurl_status(c);
    if (body != NULL)
        tbuf_append(body, c->body.data, c->body.len);
    itcurl_free(c);
    return status;
}

/* A tool named by its proxy user reaches its endpoints; elsewhere it gets an explained 403. */
static void test_allow_and_block(void **state)
{
    struct itcase *t = *state;
    struct tbuf body = {0};

    write_policies(t, "block_telemetry: true\nunidentified: allow\n");
    it_start_origin(t, origin_handler_simple, NULL);
    start_with_policies(t, NULL);
    assert_int_equal(get_as(t, "alpha", "/ok", NULL), 200);
    it_expect_access(t, "target=\"http://origin.test", "status=200", "tool=alpha", "id=proxy-user",
                     "decision=allow", "rule=allow:api", NULL);
    /* Telemetry on the shared host is refused by path. */
    assert_int_equal(get_as(t, "alpha", "/events/1", &body), 403);
    assert_non_null(strstr(tbuf_str(&body), "tool alpha"));
    assert_non_null(strstr(tbuf_str(&body), "origin.test"));
    assert_non_null(strstr(tbuf_str(&body), "rule telemetry:events"));
    assert_non_null(strstr(tbuf_str(&body), "alpha.yaml"));
    it_expect_access(t, "status=403", "term=PR", "decision=block", "rule=telemetry:events", NULL);
    assert_int_equal(origin_requests(t->origin), 1); /* the refused one never left */
    tbuf_free(&body);
}

/* The organisation bans a tool: everything it sends is refused, with the reason. */
static void test_banned_tool(void **state)
{
    struct itcase *t = *state;
    struct tbuf body = {0};

    write_policies(t, "banned_tools: [alpha]\n");
    it_start_origin(t, origin_handler_simple, NULL);
    start_with_policies(t, NULL);
    assert_int_equal(get_as(t, "alpha", "/ok", &body), 403);
    assert_non_null(strstr(tbuf_str(&body), "banned by the organisation policy"));
    assert_non_null(strstr(tbuf_str(&body), "organisation.yaml"));
    it_expect_access(t, "status=403", "rule=ban:alpha", NULL);
    assert_int_equal(origin_requests(t->origin), 0);
    assert_int_equal(get_as(t, NULL, "/ok", NULL), 200); /* others are not affected */
    assert_int_equal(origin_requests(t->origin), 1);
    tbuf_free(&body);
}

/* Report mode lets the request through and logs it as "would block". */
static void test_report_mode(void **state)
{
    struct itcase *t = *state;

    write_policies(t, "unidentified: report\n");
    it_start_origin(t, origin_handler_simple, NULL);
    start_with_policies(t, NULL);
    assert_int_equal(get_as(t, NULL, "/ok", NULL), 200);
    it_expect_access(t, "status=200", "tool=unidentified", "decision=report", "rule=unidentified",
                     NULL);
    assert_int_equal(get_as(t, "beta", "/ok", NULL), 200);
    it_expect_access(t, "status=200", "tool=beta", "decision=report", "rule=default", NULL);
}

/* Unidentified clients blocked by the organisation; a known tool still passes. */
static void test_unidentified_blocked(void **state)
{
    struct itcase *t = *state;

    write_policies(t, "unidentified: block\n");
    it_start_origin(t, origin_handler_simple, NULL);
    start_with_policies(t, NULL);
    assert_int_equal(get_as(t, NULL, "/ok", NULL), 403);
    assert_int_equal(get_as(t, "unknown-user", "/ok", NULL), 403);
    assert_int_equal(origin_requests(t->origin), 0);
    assert_int_equal(get_as(t, "gamma", "/ok", NULL), 200);
    assert_int_equal(origin_requests(t->origin), 1);
}

/*
 * A listener bound to a tool names every client of it, and it is the strongest source:
 * proxy credentials naming another tool do not change it.  The other listener is free.
 */
static void test_listener_names_tool(void **state)
{
    struct itcase *t = *state;
    static char dir[512];
    const char *const args[] = {"--listen",     "127.0.0.1:0", "--listen", "127.0.0.1:0,tool=alpha",
                                "--policy-dir", dir,           NULL};
    struct itcurl *c;
    struct tbuf body = {0};
    char url[128];
    uint16_t bound;

    write_policies(t, "unidentified: allow\n");
    snprintf(dir, sizeof(dir), "%s/policies", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    bound = sluiceproc_port(t->env->proxy, 1);
    assert_int_not_equal(bound, 0);
    c = itcurl_new(bound);
    assert_non_null(c);
    assert_int_equal(itcurl_perform(c, it_url(t, "/ok", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    it_expect_access(t, "tool=alpha", "id=listener", "rule=allow:api", NULL);
    /* Credentials for gamma (default allow) do not override the listener. */
    curl_easy_setopt(c->h, CURLOPT_PROXYUSERPWD, "gamma:x");
    assert_int_equal(itcurl_perform(c, "http://nosuch.test/"), CURLE_OK);
    assert_int_equal(itcurl_status(c), 403);
    tbuf_append(&body, c->body.data, c->body.len);
    assert_non_null(strstr(tbuf_str(&body), "tool alpha"));
    it_expect_access(t, "target=\"http://nosuch.test/", "tool=alpha", "id=listener",
                     "decision=block", "rule=default", NULL);
    itcurl_free(c);
    tbuf_free(&body);
    /* The first listener is bound to nothing: the same credentials name gamma there. */
    assert_int_equal(get_as(t, "gamma", "/ok", NULL), 200);
    it_expect_access(t, "tool=gamma", "id=proxy-user", "rule=default", NULL);
}

/*
 * Sends CONNECT origin.test:port on a new connection; returns the status (r filled, with
 * the body unless a tunnel is expected: a 200 to CONNECT has none).
 */
static int connect_to(struct itcase *t, uint16_t port, bool tunnel, struct rawresp *r)
{
    struct rawclient *rc = it_raw(t);
    char req[160];
    int status;

    snprintf(req, sizeof(req), "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n",
             port, port);
    assert_int_equal(rawclient_sends(rc, req), 0);
    status = rawclient_response(rc, r, tunnel, 5000);
    rawclient_close(rc);
    return status;
}

/*
 * The organisation's connect_ports replaces the configuration's list (443 here): a CONNECT
 * to the port it names opens a tunnel, and one to 443 is refused before any dial, with the
 * rule named.  The origin sees exactly the one tunnel.
 */
static void test_connect_port_refused(void **state)
{
    struct itcase *t = *state;
    struct rawresp r = {0};
    char org[64], type[64], *line;

    it_start_origin(t, origin_handler_simple, NULL);
    snprintf(org, sizeof(org), "connect_ports: [%u]\n", origin_port(t->origin));
    write_policies(t, org);
    start_with_policies(t, NULL);
    assert_int_equal(connect_to(t, origin_port(t->origin), true, &r), 200);
    rawresp_free(&r);
    for (int i = 0; i < 250 && origin_accepted(t->origin) < 1; i++)
        tio_sleep_ms(20);
    assert_int_equal(origin_accepted(t->origin), 1);

    assert_int_equal(connect_to(t, 443, false, &r), 403);
    rawresp_free(&r);
    assert_int_equal(connect_to(t, 8443, false, &r), 403);
    it_assert_sluice_error(&r, 403, type, sizeof(type));
    assert_string_equal(type, "http_request_denied");
    assert_non_null(strstr(tbuf_str(&r.body), "rule connect-ports"));
    rawresp_free(&r);
    line = it_access_line(t, "target=\"origin.test:443\"", NULL);
    it_assert_access_field(line, "rule", "connect-ports");
    it_assert_access_field(line, "dst", "-");
    free(line);
    assert_int_equal(origin_accepted(t->origin), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allow_and_block, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_banned_tool, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_report_mode, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_unidentified_blocked, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_port_refused, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_listener_names_tool, it_setup, it_teardown),
    };
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
