/*
 * SIGHUP reloads through the real binary, under load: a valid policy is swapped in whole,
 * an invalid one is refused with its errors logged and the running one stays, no request
 * of the load fails, every request is decided by one complete version of the policy, a
 * keep-alive connection takes the new policy with its next request, and a tunnel the new
 * policy blocks is closed at the reload.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "itcommon.h"

/*
 * Version v of the policy: tool alpha may reach origin.test and deny-v<v>.test through
 * group api-v<v>, and the organisation refuses deny-v<v>.test before any tool rule.  Under
 * one whole version a request for deny-v1.test or deny-v2.test is refused (deny-host by
 * its own version, default by the other); only a mixture, the tool of one version with
 * the organisation of another, would let one through.
 */
static void write_version(struct itcase *t, unsigned v)
{
    char path[512], text[512];

    snprintf(path, sizeof(path), "%s/policies/tools/alpha.yaml", t->env->dir);
    snprintf(text, sizeof(text),
             "id: alpha\n"
             "identify: {proxy_users: [alpha]}\n"
             "default: block\n"
             "endpoints:\n"
             "  - {group: api-v%u, purpose: api, hosts: [origin.test, deny-v%u.test]}\n",
             v, v);
    assert_int_equal(tio_write_file(path, text), 0);
    snprintf(path, sizeof(path), "%s/policies/organisation.yaml", t->env->dir);
    snprintf(text, sizeof(text), "unidentified: block\ndeny_hosts: [deny-v%u.test]\n", v);
    assert_int_equal(tio_write_file(path, text), 0);
}

/*
 * Makes the policy directory at version 1 and starts the origin with handler and the proxy
 * on it; with connect, CONNECT may reach the origin's port.
 */
static void start_at_v1_with(struct itcase *t, bool connect, void (*handler)(struct origin_conn *))
{
    static char dir[512], port[16];
    const char *const args[] = {"--policy-dir", dir, connect ? "--connect-ports" : NULL, port,
                                NULL};
    char path[600];

    snprintf(dir, sizeof(dir), "%s/policies", t->env->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/tools", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    write_version(t, 1);
    it_start_origin(t, handler, NULL);
    snprintf(port, sizeof(port), "%u", origin_port(t->origin));
    it_start_proxy(t, args);
}

/* Version 1 with the simple origin; with connect, CONNECT may reach the origin's port. */
static void start_at_v1(struct itcase *t, bool connect)
{
    start_at_v1_with(t, connect, origin_handler_simple);
}

/* Version 1, as most cases want it. */
static void start_v1(struct itcase *t)
{
    start_at_v1(t, false);
}

/* Sends SIGHUP and waits for the log line that says how the reload ended. */
static void reload_and_wait(struct itcase *t, const char *expect)
{
    uint64_t deadline = tio_now_ms() + 5000;

    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    while (!sluiceproc_log_contains(t->env->proxy, expect)) {
        if (tio_now_ms() > deadline)
            it_fail_with_log(t, expect);
        tio_sleep_ms(20);
    }
}

/* Waits up to 5 s until want access lines hold token (lines are written after a response). */
static unsigned wait_access_count(struct itcase *t, unsigned want, const char *token)
{
    uint64_t deadline = tio_now_ms() + 5000;
    unsigned n;

    while ((n = sluiceproc_access_count(t->env->proxy, token, NULL)) < want &&
           tio_now_ms() < deadline)
        tio_sleep_ms(20);
    return n;
}

/* One client of the load: requests as tool alpha on keep-alive connections. */
struct load {
    struct itcase *t;
    atomic_bool *stop;
    unsigned done;   /* requests made */
    unsigned failed; /* requests that did not end as every version decides them */
};

/*
 * Runs requests until told to stop or 3,000 are done, a new connection every 20: in turn
 * origin.test (200 under either version), deny-v1.test and deny-v2.test (403 under either).
 */
static void *load_main(void *arg)
{
    struct load *l = arg;
    char urls[3][128];
    static const long want[3] = {200, 403, 403};

    it_url(l->t, "/ok", urls[0], sizeof(urls[0]));
    snprintf(urls[1], sizeof(urls[1]), "http://deny-v1.test/half");
    snprintf(urls[2], sizeof(urls[2]), "http://deny-v2.test/half");
    while (!atomic_load(l->stop) && l->done < 3000) {
        struct itcurl *c = itcurl_new(l->t->proxy_port);
        if (c == NULL) {
            l->failed++;
            break;
        }
        curl_easy_setopt(c->h, CURLOPT_PROXYUSERPWD, "alpha:x");
        for (int i = 0; i < 20 && !atomic_load(l->stop); i++) {
            unsigned k = l->done % 3;

            l->done++;
            if (itcurl_perform(c, urls[k]) != CURLE_OK || itcurl_status(c) != want[k])
                l->failed++;
        }
        itcurl_free(c);
    }
    return NULL;
}

/* Waits (bounded: 10 s) until at least want access lines hold every token; true if so. */
static bool wait_lines(struct itcase *t, unsigned want, const char *a, const char *b)
{
    for (int i = 0; i < 500; i++) {
        if (sluiceproc_access_count(t->env->proxy, a, b, NULL) >= want)
            return true;
        tio_sleep_ms(20);
    }
    return false;
}

/* GETs origin.test as alpha on handle c; returns the status. */
static long get_alpha(struct itcase *t, struct itcurl *c)
{
    char url[128];

    curl_easy_setopt(c->h, CURLOPT_PROXYUSERPWD, "alpha:x");
    assert_int_equal(itcurl_perform(c, it_url(t, "/ok", url, sizeof(url))), CURLE_OK);
    return itcurl_status(c);
}

/*
 * Valid and invalid reloads while three clients load the proxy: no request fails, every
 * decision is one whole version's (the organisation half included: a request for
 * deny-v<N>.test is never let through), both versions decide requests of every kind, the
 * invalid policy is refused with its position in the log, and version 2 stays in force
 * after it.  Each step waits for decisions to show in the log, not for time to pass.
 */
static void test_reload_under_load(void **state)
{
    enum { NLOAD = 3 };
    struct itcase *t = *state;
    atomic_bool stop = false;
    struct load l[NLOAD];
    pthread_t th[NLOAD];
    char path[512];
    unsigned v1, v2, done = 0, failed = 0, total, before;

    start_v1(t);
    for (int i = 0; i < NLOAD; i++) {
        l[i] = (struct load){.t = t, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, load_main, &l[i]), 0);
    }
    assert_true(wait_lines(t, 30, "rule=allow:api-v1", NULL));
    assert_true(wait_lines(t, 30, "target=\"http://deny-v1.test/half\"", "rule=deny-host"));
    write_version(t, 2);
    reload_and_wait(t, "reloaded: policy generation 2");
    assert_true(wait_lines(t, 30, "rule=allow:api-v2", NULL));
    assert_true(wait_lines(t, 30, "target=\"http://deny-v2.test/half\"", "rule=deny-host"));
    assert_true(wait_lines(t, 30, "target=\"http://deny-v1.test/half\"", "rule=default"));
    /* Broken: a bad decision in the tool, and an unknown key in the organisation. */
    snprintf(path, sizeof(path), "%s/policies/tools/alpha.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path, "id: alpha\ndefault: maybe\n"), 0);
    snprintf(path, sizeof(path), "%s/policies/organisation.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path, "unidentified: block\ncolour: blue\n"), 0);
    reload_and_wait(t, "policy generation 2 stays in force");
    assert_true(sluiceproc_log_wait(t->env->proxy, "alpha.yaml:2:10: default: 'maybe'", 2000));
    assert_true(sluiceproc_log_wait(t->env->proxy, "organisation.yaml:2:1: unknown key", 2000));
    before = sluiceproc_access_count(t->env->proxy, "rule=allow:api-v2", NULL);
    assert_true(wait_lines(t, before + 30, "rule=allow:api-v2", NULL));
    atomic_store(&stop, true);
    for (int i = 0; i < NLOAD; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        done += l[i].done;
        failed += l[i].failed;
    }

    assert_int_equal(failed, 0);
    total = wait_access_count(t, done, "access ");
    v1 = sluiceproc_access_count(t->env->proxy, "tool=alpha", "rule=allow:api-v1", NULL);
    v2 = sluiceproc_access_count(t->env->proxy, "tool=alpha", "rule=allow:api-v2", NULL);
    print_message("%u requests: %u allowed by version 1, %u by version 2\n", done, v1, v2);
    assert_int_equal(total, done);
    /* No request for a denied host went through: the organisation half was never missing. */
    assert_int_equal(
        sluiceproc_access_count(t->env->proxy, "target=\"http://deny-v", "decision=allow", NULL),
        0);
    assert_int_equal(
        sluiceproc_access_count(t->env->proxy, "target=\"http://deny-v", "rule=deny-host", NULL) +
            sluiceproc_access_count(t->env->proxy, "target=\"http://deny-v", "rule=default", NULL),
        total - v1 - v2);

    /* After the refused reload, version 2 still decides new connections. */
    {
        struct itcurl *c = itcurl_new(t->proxy_port);
        assert_non_null(c);
        assert_int_equal(get_alpha(t, c), 200);
        itcurl_free(c);
        assert_int_equal(wait_access_count(t, total + 1, "access "), total + 1);
        assert_int_equal(sluiceproc_access_count(t->env->proxy, "rule=allow:api-v2", NULL), v2 + 1);
    }
}

/* Writes an organisation policy of version 2 holding text. */
static void write_org_v2(struct itcase *t, const char *text)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/policies/organisation.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path, text), 0);
}

/*
 * A keep-alive connection decides each request on the newest policy: after a reload, the
 * next request on the same connection names a rule of the new version, and a host the
 * new version denies is refused there without reaching the origin.
 */
static void test_keepalive_takes_new_policy(void **state)
{
    struct itcase *t = *state;
    struct itcurl *old_conn;
    unsigned seen;
    char *line;

    start_v1(t);
    old_conn = itcurl_new(t->proxy_port);
    assert_non_null(old_conn);
    assert_int_equal(get_alpha(t, old_conn), 200);
    it_expect_access(t, "rule=allow:api-v1", NULL);

    write_version(t, 2);
    reload_and_wait(t, "reloaded: policy generation 2");
    assert_int_equal(get_alpha(t, old_conn), 200); /* the same keep-alive connection */
    it_expect_access(t, "rule=allow:api-v2", NULL);

    write_org_v2(t, "unidentified: block\ndeny_hosts: [origin.test]\n");
    reload_and_wait(t, "reloaded: policy generation 3");
    seen = origin_requests(t->origin);
    assert_int_equal(get_alpha(t, old_conn), 403);
    line = it_access_line(t, "rule=deny-host", NULL);
    it_assert_access_field(line, "status", "403");
    it_assert_access_field(line, "term", "PR");
    free(line);
    assert_int_equal(origin_requests(t->origin), seen);
    assert_int_equal(origin_accepted(t->origin), 1); /* one connection in all: the same one */
    itcurl_free(old_conn);
}

/* Opens a CONNECT tunnel to the origin as proxy user user and checks it carries a request. */
static struct rawclient *open_tunnel(struct itcase *t, const char *user)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp r = {0};
    char req[512], cred[64], b64[128];
    uint16_t port = origin_port(t->origin);

    snprintf(cred, sizeof(cred), "%s:x", user);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cred, (int)strlen(cred));
    snprintf(req, sizeof(req),
             "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test:%u\r\n"
             "Proxy-Authorization: Basic %s\r\n\r\n",
             port, port, b64);
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, true, 10000), 200);
    rawresp_free(&r);
    snprintf(req, sizeof(req), "GET /in-tunnel HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n", port);
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    rawresp_free(&r);
    return rc;
}

/*
 * A ban reaches a tool's long-lived tunnel: at the reload that bans alpha, its open tunnel
 * is closed with termination code KT and an access line naming the ban, while a tunnel of
 * another tool stays open and keeps working.
 */
static void test_reload_closes_banned_tunnel(void **state)
{
    struct itcase *t = *state;
    struct rawclient *alpha, *other;
    struct rawresp r = {0};
    char path[512], req[256], *line;

    start_at_v1(t, true);
    snprintf(path, sizeof(path), "%s/policies/tools/beta.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path, "id: beta\n"
                                          "identify: {proxy_users: [beta]}\n"
                                          "default: block\n"
                                          "endpoints:\n"
                                          "  - {group: api, purpose: api, hosts: [origin.test]}\n"),
                     0);
    reload_and_wait(t, "reloaded: policy generation 2");
    alpha = open_tunnel(t, "alpha");
    other = open_tunnel(t, "beta");

    write_org_v2(t, "unidentified: block\nbanned_tools: [alpha]\n");
    reload_and_wait(t, "reloaded: policy generation 3");
    assert_true(rawclient_wait_closed(alpha, 5000));
    line = it_access_line(t, "method=CONNECT", "tool=alpha", NULL);
    it_assert_access_field(line, "term", "KT");
    it_assert_access_field(line, "rule", "ban:alpha");
    it_assert_access_field(line, "decision", "block");
    it_assert_access_field(line, "status", "200");
    free(line);
    assert_true(sluiceproc_log_wait(t->env->proxy, "after the policy reload", 2000));

    snprintf(req, sizeof(req), "GET /still HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(other, req), 0);
    assert_int_equal(rawclient_response(other, &r, false, 10000), 200);
    assert_string_equal(tbuf_str(&r.body), "target=/still\n");
    rawresp_free(&r);
    rawclient_close(alpha);
    rawclient_close(other);
}

/*
 * An address the new policy denies reaches a tunnel already dialled to it: deny_cidrs
 * added at a reload closes the tunnel with KT and the guard's rule.
 */
static void test_reload_closes_tunnel_to_denied_address(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    char *line;

    start_at_v1(t, true);
    rc = open_tunnel(t, "alpha");
    write_org_v2(t, "unidentified: block\ndeny_cidrs: [127.0.0.0/8]\n");
    reload_and_wait(t, "reloaded: policy generation 2");
    assert_true(rawclient_wait_closed(rc, 5000));
    line = it_access_line(t, "method=CONNECT", NULL);
    it_assert_access_field(line, "term", "KT");
    it_assert_access_field(line, "rule", "deny-cidr");
    free(line);
    rawclient_close(rc);
}

/* Sends "GET http://<authority>/<path>" as alpha on rc, with the head's last CRLF or not. */
static void send_alpha_head(struct rawclient *rc, const char *authority, const char *path,
                            bool complete)
{
    char req[512], b64[64];

    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)"alpha:x", 7);
    snprintf(req, sizeof(req),
             "GET http://%s%s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n%s",
             authority, path, authority, b64, complete ? "\r\n" : "");
    assert_int_equal(rawclient_sends(rc, req), 0);
}

/* Answers after 4 s, as an origin thinking; the proxy should not wait for it. */
static void thinking_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0 || !oconn_sleep(c, 4000))
        return;
    (void)oconn_respond(c, 200, NULL, "thought\n", 8);
}

/*
 * A reload reaches a request at every step before its response: a head still arriving is
 * decided on the policy in force when it ends, and requests resolving their host or
 * waiting for the origin's answer when the reload blocks them get a 403 with termination
 * code K at once, instead of going on under the policy they began with.
 */
static void test_reload_reaches_requests_in_flight(void **state)
{
    struct itcase *t = *state;
    struct rawclient *slow_head = NULL, *resolving = NULL, *waiting = NULL;
    struct rawresp r = {0};
    char authority[64], path[512], *line;
    uint64_t deadline = tio_now_ms() + 5000;

    start_at_v1_with(t, false, thinking_handler);
    assert_int_equal(dnsstub_add_silent(t->env->dns, "hang.test"), 0);
    snprintf(path, sizeof(path), "%s/policies/tools/alpha.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path, "id: alpha\n"
                                          "identify: {proxy_users: [alpha]}\n"
                                          "default: block\n"
                                          "endpoints:\n"
                                          "  - {group: api, hosts: [origin.test, hang.test]}\n"),
                     0);
    reload_and_wait(t, "reloaded: policy generation 2");
    snprintf(authority, sizeof(authority), "origin.test:%u", origin_port(t->origin));

    waiting = it_raw(t);
    send_alpha_head(waiting, authority, "/wait", true);
    resolving = it_raw(t);
    send_alpha_head(resolving, "hang.test", "/x", true);
    slow_head = it_raw(t);
    send_alpha_head(slow_head, authority, "/slow", false);
    while ((origin_requests(t->origin) < 1 || !dnsstub_was_asked(t->env->dns, "hang.test")) &&
           tio_now_ms() < deadline)
        tio_sleep_ms(20);
    assert_int_equal(origin_requests(t->origin), 1);
    assert_true(dnsstub_was_asked(t->env->dns, "hang.test"));

    write_org_v2(t, "unidentified: block\ndeny_hosts: [origin.test, hang.test]\n");
    reload_and_wait(t, "reloaded: policy generation 3");

    /* Waiting for the origin's answer: 403 now, not "thought" 4 s later. */
    assert_int_equal(rawclient_response(waiting, &r, false, 2000), 403);
    rawresp_free(&r);
    line = it_access_line(t, "target=\"http://origin.test:", "status=403", NULL);
    it_assert_access_field(line, "term", "KH");
    it_assert_access_field(line, "rule", "deny-host");
    free(line);
    /* Resolving a name whose resolver never answers: 403 now, not a DNS timeout later. */
    assert_int_equal(rawclient_response(resolving, &r, false, 2000), 403);
    rawresp_free(&r);
    line = it_access_line(t, "target=\"http://hang.test/x\"", NULL);
    it_assert_access_field(line, "term", "KN");
    it_assert_access_field(line, "rule", "deny-host");
    free(line);
    /* The head that was still arriving ends after the reload: decided on version 3. */
    assert_int_equal(rawclient_sends(slow_head, "\r\n"), 0);
    assert_int_equal(rawclient_response(slow_head, &r, false, 5000), 403);
    rawresp_free(&r);
    line = it_access_line(t, "target=\"http://origin.test:", "term=PR", NULL);
    it_assert_access_field(line, "rule", "deny-host");
    free(line);
    assert_int_equal(origin_requests(t->origin), 1);
    assert_true(sluiceproc_log_wait(t->env->proxy, "after the policy reload", 2000));
    rawclient_close(waiting);
    rawclient_close(resolving);
    rawclient_close(slow_head);
}

/* Writes the configuration file of test_reload_config_file. */
static void write_config(const char *path, const char *mode, const char *head,
                         unsigned max_connections)
{
    char text[256];

    snprintf(text, sizeof(text),
             "mode: %s\ntimeouts:\n  head: %s\nlimits:\n  max_connections: %u\n", mode, head,
             max_connections);
    assert_int_equal(tio_write_file(path, text), 0);
}

/*
 * SIGHUP re-reads the --config file: the mode applies at once (gateway refuses loopback),
 * a key only a restart applies is named in a warning, a key that the mode sets is said to
 * change with it, and a key the command line overrides stays the command line's, with no
 * warning.
 */
static void test_reload_config_file(void **state)
{
    struct itcase *t = *state;
    char path[600], *line;
    struct rawresp r = {0};

    snprintf(path, sizeof(path), "%s/sluice.yaml", t->env->dir);
    write_config(path, "local", "10s", 100);
    it_start_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--config", path, "--max-connections", "500", NULL};
        it_start_proxy(t, args);
    }
    assert_true(sluiceproc_log_wait(t->env->proxy, "up to 500 connections", 2000));
    it_assert_serves(t);

    write_config(path, "gateway", "5s", 200);
    reload_and_wait(t, "reloaded: policy generation 2");
    assert_true(sluiceproc_log_wait(
        t->env->proxy, "reload: timeouts.head changed; it applies only after a restart", 2000));
    assert_true(sluiceproc_log_wait(t->env->proxy,
                                    "reload: limits.max_connections_per_client changed "
                                    "with the mode (it is auto)",
                                    2000));
    assert_false(sluiceproc_log_contains(t->env->proxy, "limits.max_connections changed"));

    /* Gateway mode: loopback is an inward address, refused before it is dialled. */
    {
        char authority[64];
        snprintf(authority, sizeof(authority), "origin.test:%u", origin_port(t->origin));
        assert_int_equal(it_raw_get(t, authority, &r), 403);
        rawresp_free(&r);
    }
    line = it_access_line(t, "decision=block", NULL);
    it_assert_access_field(line, "rule", "deny-address:loopback");
    free(line);
    assert_int_equal(origin_accepted(t->origin), 1); /* the one request before the reload */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reload_under_load, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_takes_new_policy, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_reload_reaches_requests_in_flight, it_setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_reload_closes_banned_tunnel, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_reload_closes_tunnel_to_denied_address, it_setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_reload_config_file, it_setup, it_teardown),
    };
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
