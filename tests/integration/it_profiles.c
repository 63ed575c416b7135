/*
 * What policies/README.md and sluice-policy(5) promise of tool profiles, through the real
 * binary: a Unicode host in a profile matches its IDNA ASCII form, report mode logs
 * "would block" and lets the request through, a tool's own block_telemetry refuses its
 * telemetry while the organisation's is off; and two hop-by-hop rules of the README:
 * Upgrade is not passed on by a request that does not upgrade, and Proxy-Authenticate
 * from upstream never reaches the client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpmsg.h"
#include "itcommon.h"

/* The test's hosts file gives this name; the profile spells it bücher.test. */
#define BUECHER_ACE "xn--bcher-kva.test"
/* In deny_hosts as stöckchen.test; no hosts entry, so only a decision before DNS passes. */
#define STOECKCHEN_ACE "xn--stckchen-o4a.test"

/* Removes path and, for a directory, everything below it; a missing path is fine. */
static void remove_tree(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (lstat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        (void)unlink(path);
        return;
    }
    d = opendir(path);
    while (d != NULL && (e = readdir(d)) != NULL) {
        char sub[1024];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        remove_tree(sub);
    }
    if (d != NULL)
        closedir(d);
    (void)rmdir(path);
}

/*
 * cmocka teardown: the case's policy directory first, since the environment removes only
 * the files directly in its own directory, then everything it_teardown() stops and frees.
 */
static int profiles_teardown(void **state)
{
    struct itcase *t = *state;
    char dir[512];

    if (t != NULL && t->env != NULL)
        remove_tree(testenv_path(t->env, "policies", dir, sizeof(dir)));
    return it_teardown(state);
}

/* Adds tools/<id>.yaml to the policy directory it_write_policy() made. */
static void add_tool(struct itcase *t, const char *id, const char *profile)
{
    char path[700];

    snprintf(path, sizeof(path), "%s/policies/tools/%s.yaml", t->env->dir, id);
    assert_int_equal(tio_write_file(path, profile), 0);
}

/* Starts the proxy on the case's policy directory (written before). */
static void start_with_policy(struct itcase *t)
{
    static char dir[512];
    const char *const args[] = {"--policy-dir", dir, NULL};

    testenv_path(t->env, "policies", dir, sizeof(dir));
    it_start_proxy(t, args);
}

/* The policy directory as sluice names it in messages (its real path) into out. */
static const char *policy_realdir(struct itcase *t, char *out, size_t cap)
{
    char dir[512], *real;

    real = realpath(testenv_path(t->env, "policies", dir, sizeof(dir)), NULL);
    assert_non_null(real);
    snprintf(out, cap, "%s", real);
    free(real);
    return out;
}

/* Writes the Proxy-Authorization field naming user (password "x") into out. */
static const char *proxy_auth_field(const char *user, char *out, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char cred[96];
    size_t n = (size_t)snprintf(cred, sizeof(cred), "%s:x", user), o;

    o = (size_t)snprintf(out, cap, "Proxy-Authorization: Basic ");
    for (size_t i = 0; i < n && o + 5 < cap; i += 3) {
        unsigned v = (unsigned char)cred[i] << 16;
        v |= i + 1 < n ? (unsigned)(unsigned char)cred[i + 1] << 8 : 0;
        v |= i + 2 < n ? (unsigned)(unsigned char)cred[i + 2] : 0;
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    if (o + 3 > cap)
        fail_msg("proxy_auth_field: %zu bytes are too few for user %s", cap, user);
    memcpy(out + o, "\r\n", 3);
    return out;
}

/*
 * Sends "METHOD target HTTP/1.1" with Host: host, as proxy user user (NULL: none), plus
 * extra header lines, on a new connection, and reads the response into r (a tunnel when
 * method is CONNECT).  Returns the status.
 */
static int request_as(struct itcase *t, const char *user, const char *method, const char *target,
                      const char *host, const char *extra, struct rawresp *r)
{
    struct rawclient *rc = it_raw(t);
    char req[2048], auth[256] = "";
    int status;

    if (user != NULL)
        proxy_auth_field(user, auth, sizeof(auth));
    /* A tunnel ends when the client closes; a request asks for the close itself. */
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", method, target, host,
             auth, extra != NULL ? extra : "",
             strcmp(method, "CONNECT") == 0 ? "" : "Connection: close\r\n");
    assert_int_equal(rawclient_sends(rc, req), 0);
    status = rawclient_response(rc, r, strcmp(method, "CONNECT") == 0, 5000);
    rawclient_close(rc);
    return status;
}

/* GETs http://<host>:<origin port><path> as user; returns the status, r filled. */
static int get_as(struct itcase *t, const char *user, const char *host, const char *path,
                  struct rawresp *r)
{
    char target[512], authority[300];

    snprintf(authority, sizeof(authority), "%s:%u", host, origin_port(t->origin));
    snprintf(target, sizeof(target), "http://%s%s", authority, path);
    return request_as(t, user, "GET", target, authority, NULL, r);
}

/* Asserts that recorded request idx at the origin has no field called name. */
static void assert_origin_lacks(struct itcase *t, unsigned idx, const char *name)
{
    struct tbuf head = {0};

    assert_true(origin_request(t->origin, idx, &head, NULL));
    if (httpmsg_field_count(head.data, head.len, name) != 0)
        fail_msg("the origin received a %s field:\n%s", name, tbuf_str(&head));
    tbuf_free(&head);
}

/* Asserts that r, from sluice, is a 403 whose body holds text. */
static void assert_refused(const struct rawresp *r, const char *text)
{
    char type[64];

    it_assert_sluice_error(r, 403, type, sizeof(type));
    assert_string_equal(type, "http_request_denied");
    if (strstr(tbuf_str(&r->body), text) == NULL)
        fail_msg("403 body lacks \"%s\": %s", text, tbuf_str(&r->body));
}

/*
 * A host written in Unicode in a profile (bücher.test) matches requests for its IDNA
 * ASCII form, in any case, and is forwarded and logged in that form; one in deny_hosts
 * refuses its ASCII form before any lookup.  The raw UTF-8 spelling is not a valid
 * request target (RFC 9112 3.2 allows ASCII only): 400, never forwarded.
 */
static void test_unicode_host(void **state)
{
    struct itcase *t = *state;
    struct rawresp r = {0};
    struct tbuf head = {0};
    char want[256], target[256], authority[128], type[64], *line;
    FILE *hosts;
    uint16_t port;

    hosts = fopen(t->env->hosts_path, "a");
    assert_non_null(hosts);
    fputs("127.0.0.1 " BUECHER_ACE "\n", hosts);
    assert_int_equal(fclose(hosts), 0);
    it_write_policy(t, "unidentified: block\ndeny_hosts: [\"st\u00f6ckchen.test\"]\n", "reader",
                    "id: reader\n"
                    "identify: {proxy_users: [reader]}\n"
                    "default: block\n"
                    "endpoints:\n"
                    "  - {group: books, purpose: api, hosts: [\"b\u00fccher.test\"]}\n"
                    "  - {group: sticks, purpose: api, hosts: [\"st\u00f6ckchen.test\"]}\n");
    it_start_origin(t, origin_handler_simple, NULL);
    start_with_policy(t);
    port = origin_port(t->origin);

    assert_int_equal(get_as(t, "reader", BUECHER_ACE, "/books", &r), 200);
    assert_string_equal(tbuf_str(&r.body), "target=/books\n");
    rawresp_free(&r);
    assert_true(origin_request(t->origin, 0, &head, NULL));
    snprintf(want, sizeof(want), "%s:%u", BUECHER_ACE, port);
    assert_true(httpmsg_field(head.data, head.len, "Host", 0, authority, sizeof(authority)));
    assert_string_equal(authority, want);
    tbuf_free(&head);
    snprintf(want, sizeof(want), "target=\"http://%s:%u/books\"", BUECHER_ACE, port);
    line = it_access_line(t, want, NULL);
    it_assert_access_field(line, "status", "200");
    it_assert_access_field(line, "tool", "reader");
    it_assert_access_field(line, "decision", "allow");
    it_assert_access_field(line, "rule", "allow:books");
    free(line);

    assert_int_equal(get_as(t, "reader", "XN--BCHER-KVA.TEST", "/upper", &r), 200);
    rawresp_free(&r);
    line = it_access_line(t, "/upper\"", NULL);
    it_assert_access_field(line, "rule", "allow:books");
    free(line);
    assert_int_equal(origin_requests(t->origin), 2);

    /* The group's rule is what let them through: the tool's default refuses. */
    assert_int_equal(get_as(t, "reader", "origin.test", "/other", &r), 403);
    assert_refused(&r, "(rule default in ");
    rawresp_free(&r);
    line = it_access_line(t, "/other\"", NULL);
    it_assert_access_field(line, "rule", "default");
    free(line);

    /* deny_hosts holds stöckchen.test: its ASCII form is refused before DNS (which has no
     * entry for it), though a group of the tool names it too. */
    assert_int_equal(get_as(t, "reader", STOECKCHEN_ACE, "/sticks", &r), 403);
    assert_refused(&r, "rule deny-host in ");
    rawresp_free(&r);
    line = it_access_line(t, "/sticks\"", NULL);
    it_assert_access_field(line, "status", "403");
    it_assert_access_field(line, "rule", "deny-host");
    it_assert_access_field(line, "dst", "-");
    free(line);

    /* UTF-8 in the request target. */
    snprintf(authority, sizeof(authority), "b\303\274cher.test:%u", port); /* ü in UTF-8 */
    snprintf(target, sizeof(target), "http://%s/utf8", authority);
    assert_int_equal(request_as(t, "reader", "GET", target, authority, NULL, &r), 400);
    it_assert_sluice_error(&r, 400, type, sizeof(type));
    assert_string_equal(type, "http_request_error");
    rawresp_free(&r);
    line = it_access_line(t, "status=400", NULL);
    it_assert_access_field(line, "error", "http_request_error");
    free(line);
    assert_int_equal(origin_requests(t->origin), 2);
}

/*
 * A tool whose default is report: a request no group covers reaches the origin, the log
 * says "would block" with the method, host, port, tool, rule and profile, and the access
 * line records decision=report by that rule.  A CONNECT is reported the same way and
 * tunnelled.
 */
static void test_report_would_block(void **state)
{
    struct itcase *t = *state;
    struct rawresp r = {0};
    char org[128], want[1024], real[512], tunnel[64], *line;
    uint16_t port;

    it_start_origin(t, origin_handler_simple, NULL);
    port = origin_port(t->origin);
    snprintf(org, sizeof(org), "unidentified: block\nconnect_ports: [%u]\n", port);
    it_write_policy(t, org, "beta",
                    "id: beta\n"
                    "identify: {proxy_users: [beta]}\n"
                    "default: report\n"
                    "endpoints:\n"
                    "  - {group: api, purpose: api, hosts: [api.beta.test]}\n");
    start_with_policy(t);
    policy_realdir(t, real, sizeof(real));

    assert_int_equal(get_as(t, "beta", "origin.test", "/r", &r), 200);
    assert_string_equal(tbuf_str(&r.body), "target=/r\n");
    rawresp_free(&r);
    assert_int_equal(origin_requests(t->origin), 1);
    snprintf(want, sizeof(want), "target=\"http://origin.test:%u/r\"", port);
    line = it_access_line(t, want, NULL);
    it_assert_access_field(line, "status", "200");
    it_assert_access_field(line, "tool", "beta");
    it_assert_access_field(line, "id", "proxy-user");
    it_assert_access_field(line, "decision", "report");
    it_assert_access_field(line, "rule", "default");
    free(line);
    snprintf(want, sizeof(want),
             ": would block GET origin.test:%u for tool beta: rule default in %s/tools/beta.yaml\n",
             port, real);
    if (!sluiceproc_log_contains(t->env->proxy, want))
        it_fail_with_log(t, "no \"would block\" line for the GET");

    /* A CONNECT the tool's default reports is tunnelled, and said so. */
    snprintf(tunnel, sizeof(tunnel), "origin.test:%u", port);
    assert_int_equal(request_as(t, "beta", "CONNECT", tunnel, tunnel, NULL, &r), 200);
    rawresp_free(&r);
    snprintf(want, sizeof(want), "target=\"origin.test:%u\"", port);
    line = it_access_line(t, want, NULL);
    it_assert_access_field(line, "decision", "report");
    it_assert_access_field(line, "rule", "default");
    free(line);
    for (int i = 0; i < 250 && origin_accepted(t->origin) < 2; i++)
        tio_sleep_ms(20);
    assert_int_equal(origin_accepted(t->origin), 2);
    snprintf(want, sizeof(want),
             ": would block CONNECT origin.test:%u for tool beta: rule default in "
             "%s/tools/beta.yaml\n",
             port, real);
    if (!sluiceproc_log_contains(t->env->proxy, want))
        it_fail_with_log(t, "no \"would block\" line for the CONNECT");

    /* A block is not a report: an unidentified client is refused and nothing says "would". */
    assert_int_equal(get_as(t, NULL, "origin.test", "/anon", &r), 403);
    assert_refused(&r, "(rule unidentified in ");
    rawresp_free(&r);
    assert_int_equal(origin_requests(t->origin), 1);
    snprintf(want, sizeof(want), "would block GET origin.test:%u for tool unidentified", port);
    assert_false(sluiceproc_log_contains(t->env->proxy, want));
}

/*
 * block_telemetry in a profile, with the organisation's off: that tool's telemetry group
 * gets a 403 naming the tool, host, reason, rule and profile, and the origin sees nothing;
 * its other group passes, and another tool with the same telemetry group is allowed.
 */
static void test_tool_block_telemetry(void **state)
{
    struct itcase *t = *state;
    struct rawresp r = {0};
    char want[1024], real[512], *line;
    uint16_t port;

    it_write_policy(t, "block_telemetry: false\nunidentified: block\n", "alpha",
                    "id: alpha\n"
                    "identify: {proxy_users: [alpha]}\n"
                    "default: block\n"
                    "block_telemetry: true\n"
                    "endpoints:\n"
                    "  - {group: api, purpose: api, hosts: [origin.test], paths: [/v1/]}\n"
                    "  - {group: tele, purpose: telemetry, hosts: [origin.test],\n"
                    "     paths: [/collect]}\n");
    add_tool(t, "gamma",
             "id: gamma\n"
             "identify: {proxy_users: [gamma]}\n"
             "default: block\n"
             "endpoints:\n"
             "  - {group: tele, purpose: telemetry, hosts: [origin.test], paths: [/collect]}\n");
    it_start_origin(t, origin_handler_simple, NULL);
    start_with_policy(t);
    port = origin_port(t->origin);
    policy_realdir(t, real, sizeof(real));

    assert_int_equal(get_as(t, "alpha", "origin.test", "/collect/1", &r), 403);
    snprintf(want, sizeof(want),
             "blocked origin.test:%u for tool alpha: this tool's telemetry is blocked by "
             "policy; turn it off in the tool (rule telemetry:tele in %s/tools/alpha.yaml)",
             port, real);
    assert_refused(&r, want);
    rawresp_free(&r);
    snprintf(want, sizeof(want), "target=\"http://origin.test:%u/collect/1\"", port);
    line = it_access_line(t, want, NULL);
    it_assert_access_field(line, "status", "403");
    it_assert_access_field(line, "term", "PR");
    it_assert_access_field(line, "tool", "alpha");
    it_assert_access_field(line, "decision", "block");
    it_assert_access_field(line, "rule", "telemetry:tele");
    free(line);
    assert_int_equal(origin_requests(t->origin), 0);
    assert_int_equal(origin_accepted(t->origin), 0);

    assert_int_equal(get_as(t, "alpha", "origin.test", "/v1/ok", &r), 200);
    rawresp_free(&r);
    line = it_access_line(t, "/v1/ok\"", NULL);
    it_assert_access_field(line, "rule", "allow:api");
    free(line);
    assert_int_equal(get_as(t, "gamma", "origin.test", "/collect/2", &r), 200);
    assert_string_equal(tbuf_str(&r.body), "target=/collect/2\n");
    rawresp_free(&r);
    line = it_access_line(t, "/collect/2\"", NULL);
    it_assert_access_field(line, "tool", "gamma");
    it_assert_access_field(line, "rule", "allow:tele");
    free(line);
    assert_int_equal(origin_requests(t->origin), 2);
}

/*
 * Answers 101 to a request that offers Upgrade (echoing the protocol) and waits for the
 * close; answers 200 "plain" to anything else.  One request per connection.
 */
static void upgrade_origin(struct origin_conn *c)
{
    char proto[64], resp[256];

    if (oconn_read_head(c, 5000) == 0)
        return;
    if (httpmsg_field(c->head.data, c->head.len, "Upgrade", 0, proto, sizeof(proto))) {
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n",
                 proto);
        if (oconn_writes(c, resp) == 0)
            (void)oconn_wait_close(c, 3000);
        return;
    }
    (void)oconn_respond(c, 200, "Content-Type: text/plain\r\n", "plain\n", 6);
}

/*
 * Sends a GET with the given version and extra fields through the proxy and asserts it
 * was forwarded as a plain request: the origin got no Upgrade, no Connection naming
 * upgrade and none of skip (a field the client's Connection listed, or NULL), and the
 * client got the origin's 200, not a 101.
 */
static void expect_not_upgraded(struct itcase *t, const char *version, const char *fields,
                                const char *skip)
{
    struct rawclient *rc;
    struct rawresp r = {0};
    struct tbuf head = {0};
    char req[1024], got[2048];
    bool upgrade, plain;
    int status;

    it_start_origin(t, upgrade_origin, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/up %s\r\nHost: origin.test:%u\r\n%s\r\n",
             origin_port(t->origin), version, origin_port(t->origin), fields);
    assert_int_equal(rawclient_sends(rc, req), 0);
    status = rawclient_response(rc, &r, false, 5000);
    snprintf(got, sizeof(got), "%s%s", tbuf_str(&r.head), tbuf_str(&r.body));
    upgrade = rawresp_field(&r, "Upgrade", req, sizeof(req));
    plain = strcmp(tbuf_str(&r.body), "plain\n") == 0;
    rawresp_free(&r);
    rawclient_close(rc);
    if (status != 200 || upgrade || !plain) {
        assert_true(origin_request(t->origin, 0, &head, NULL));
        fprintf(stderr, "the origin received:\n%s", tbuf_str(&head));
        tbuf_free(&head);
        fail_msg("expected the origin's 200 \"plain\", got:\n%s", got);
    }
    assert_int_equal(origin_requests(t->origin), 1);
    assert_origin_lacks(t, 0, "Upgrade");
    if (skip != NULL)
        assert_origin_lacks(t, 0, skip);
    assert_true(origin_request(t->origin, 0, &head, NULL));
    if (httpmsg_field_has_token(head.data, head.len, "Connection", "upgrade"))
        fail_msg("the origin was asked to upgrade:\n%s", tbuf_str(&head));
    tbuf_free(&head);
    it_expect_access(t, "method=GET", "status=200", NULL);
}

/*
 * An h2c upgrade (RFC 9113 3.1 removed it; sluice relays no HTTP/2) is not passed on:
 * after a 101 the connection would carry HTTP/2 requests that no policy decides and no
 * access line records.  RFC 9110 7.8: Upgrade applies to the immediate connection only;
 * 7.6.1: the fields Connection lists go too.
 */
static void test_upgrade_h2c_not_relayed(void **state)
{
    expect_not_upgraded(*state, "HTTP/1.1",
                        "Connection: Upgrade, HTTP2-Settings\r\n"
                        "Upgrade: h2c\r\n"
                        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
                        "HTTP2-Settings");
}

/* Upgrade without the upgrade connection option is not an upgrade (RFC 9110 7.8). */
static void test_upgrade_without_connection_dropped(void **state)
{
    expect_not_upgraded(*state, "HTTP/1.1",
                        "Upgrade: websocket\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n",
                        NULL);
}

/*
 * "A server MUST ignore an Upgrade header field that is received in an HTTP/1.0 request"
 * (RFC 9110 7.8): sluice forwards it as HTTP/1.1, so it must not pass the offer on.
 */
static void test_upgrade_http10_ignored(void **state)
{
    expect_not_upgraded(*state, "HTTP/1.0",
                        "Connection: Upgrade\r\n"
                        "Upgrade: websocket\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n",
                        NULL);
}

/*
 * Answers /challenge with 200 and /407 with 407, each with a Proxy-Authenticate (which
 * belongs to the hop it came on) and a WWW-Authenticate (end to end).
 */
static void proxy_auth_origin(struct origin_conn *c)
{
    static const char fields[] = "Proxy-Authenticate: Basic realm=\"upstream\"\r\n"
                                 "Proxy-Authentication-Info: nextnonce=\"abc\"\r\n"
                                 "WWW-Authenticate: Basic realm=\"origin\"\r\n";

    if (oconn_read_head(c, 5000) == 0)
        return;
    if (strstr(c->head.data, " /407 ") != NULL)
        (void)oconn_respond(c, 407, fields, "need auth\n", 10);
    else
        (void)oconn_respond(c, 200, fields, "ok\n", 3);
}

/*
 * Proxy-Authenticate and Proxy-Authentication-Info from upstream are dropped (RFC 9110
 * 11.7.1 and 11.7.4: they are for the next outbound client, here sluice), on a 200 and on a 407 the
 * origin sends, which is relayed with its body; WWW-Authenticate passes.
 */
static void test_proxy_authenticate_dropped(void **state)
{
    struct itcase *t = *state;
    static const char *const paths[] = {"/challenge", "/407"};
    static const int statuses[] = {200, 407};
    static const char *const bodies[] = {"ok\n", "need auth\n"};
    struct rawresp r = {0};
    char v[256];

    it_start_origin(t, proxy_auth_origin, NULL);
    it_start_proxy(t, NULL);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(get_as(t, NULL, "origin.test", paths[i], &r), statuses[i]);
        if (rawresp_field(&r, "Proxy-Authenticate", v, sizeof(v)))
            fail_msg("the client got Proxy-Authenticate: %s\n%s", v, tbuf_str(&r.head));
        if (rawresp_field(&r, "Proxy-Authentication-Info", v, sizeof(v)))
            fail_msg("the client got Proxy-Authentication-Info: %s", v);
        assert_true(rawresp_field(&r, "WWW-Authenticate", v, sizeof(v)));
        assert_string_equal(v, "Basic realm=\"origin\"");
        assert_string_equal(tbuf_str(&r.body), bodies[i]);
        rawresp_free(&r);
    }
    it_expect_access(t, "status=407", NULL);
    assert_int_equal(origin_requests(t->origin), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unicode_host, it_setup, profiles_teardown),
        cmocka_unit_test_setup_teardown(test_report_would_block, it_setup, profiles_teardown),
        cmocka_unit_test_setup_teardown(test_tool_block_telemetry, it_setup, profiles_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_h2c_not_relayed, it_setup, profiles_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_without_connection_dropped, it_setup,
                                        profiles_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_http10_ignored, it_setup, profiles_teardown),
        cmocka_unit_test_setup_teardown(test_proxy_authenticate_dropped, it_setup,
                                        profiles_teardown),
    };
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
