/*
 * Attempts to get around sluice's rules and its record, through the real binary: other
 * spellings of a denied host or of a path a rule judges, the resolver's search list, a
 * quiet log level.  Every case
 * that expects a refusal also checks that the origin (or the DNS name behind it) was never
 * reached, and reads the access line field by field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "httpmsg.h"
#include "itcommon.h"

/* Asserts that GET http://<authority>/x is answered with status and the given error type. */
static void expect_refused(struct itcase *t, const char *authority, int status, const char *type)
{
    struct rawresp r = {0};
    char got[64];
    int st = it_raw_get(t, authority, &r);

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
    const char *dir = it_write_policy(t, "deny_hosts: [\"*.corp.test\"]\n", NULL, NULL);
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
    const char *dir =
        it_write_policy(t, "deny_hosts: [\"2130706433\", \"::1\", \"origin.test\"]\n", NULL, NULL);
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
                           "[::1]",
                           "[0::0:1]",
                           "[0:0:0:0:0:0:0:1]",
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
    assert_int_equal(it_raw_get(t, authority, &r), 200);
    rawresp_free(&r);
    line = it_access_line(t, "target=\"http://origin.test:", NULL);
    it_assert_access_field(line, "status", "200");
    it_assert_access_field(line, "method", "GET");
    free(line);
}

/* Sends "GET http://origin.test:PORT<path>" as proxy user user; returns the status. */
static int get_path_as(struct itcase *t, const char *user, const char *path, struct rawresp *r)
{
    struct rawclient *rc = it_raw(t);
    char req[1024], cred[64], b64[128];
    int status;

    snprintf(cred, sizeof(cred), "%s:x", user);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cred, (int)strlen(cred));
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u%s HTTP/1.1\r\nHost: origin.test\r\n"
             "Proxy-Authorization: Basic %s\r\n\r\n",
             origin_port(t->origin), path, b64);
    assert_int_equal(rawclient_sends(rc, req), 0);
    status = rawclient_response(rc, r, false, 8000);
    rawclient_close(rc);
    return status;
}

/* One spelling of a path and what sluice must answer (0: the origin's 200). */
struct path_case {
    const char *path;
    int status;
    const char *rule; /* the rule in the access line, or NULL for a 200 */
};

/*
 * Runs every case as user: the status, the rule of its access line, and that the origin
 * saw exactly the requests that were let through.
 */
static void run_path_cases(struct itcase *t, const char *user, const struct path_case *cases,
                           size_t n)
{
    unsigned reached = origin_requests(t->origin);

    for (size_t i = 0; i < n; i++) {
        const struct path_case *c = &cases[i];
        struct rawresp r = {0};
        int want = c->status != 0 ? c->status : 200;
        int st = get_path_as(t, user, c->path, &r);
        char *line, token[600];
        size_t tlen;

        if (st != want)
            fail_msg("%s %s: expected %d, got %d:\n%s%s", user, c->path, want, st,
                     tbuf_str(&r.head), tbuf_str(&r.body));
        rawresp_free(&r);
        if (st == 200) {
            reached++;
            continue;
        }
        /* The log writes a '\' as "\\"; the path here has no other byte it escapes. */
        tlen = (size_t)snprintf(token, sizeof(token), "target=\"http://origin.test:%u",
                                origin_port(t->origin));
        for (const char *p = c->path; *p != '\0' && tlen + 4 < sizeof(token); p++) {
            if (*p == '\\')
                token[tlen++] = '\\';
            token[tlen++] = *p;
        }
        token[tlen++] = '"';
        token[tlen] = '\0';
        line = it_access_line(t, token, NULL);
        it_assert_access_field(line, "rule", c->rule);
        it_assert_access_field(line, "decision", "block");
        free(line);
    }
    assert_int_equal(origin_requests(t->origin), reached);
}

/*
 * Path rules decide on the normalised path, and a path that servers read in different
 * ways is refused where a path rule applies: every spelling of a way out of an allowed
 * prefix, and every spelling of a blocked one.
 */
static void test_path_spellings(void **state)
{
    static const struct path_case allow_cases[] = {
        {"/v1/x", 0, NULL},
        {"/%761/x", 0, NULL},
        {"/v1//x", 0, NULL},
        {"/v1///x/", 0, NULL},
        {"/v1/./x", 0, NULL},
        {"/v1/a/../x", 0, NULL},
        {"/v1/../admin", 403, "default"},
        {"/v1/%2e%2e/admin", 403, "default"},
        {"/v1/%2E%2e/admin", 403, "default"},
        {"/v1/.%2e/admin", 403, "default"},
        {"/v1/x/../../admin", 403, "default"},
        {"/V1/x", 403, "default"},
        {"/v1/x;y", 0, NULL},
        {"/v1;y/x", 403, "default"},
        {"/admin/../v1/x", 403, "default"},
        {"/admin/%2e%2e/v1/x", 403, "default"},
        {"/admin/./../v1/x", 403, "default"},
        {"/v1/x%3Ay", 0, NULL},
        {"/v1/..%2fadmin", 400, "ambiguous-path:api"},
        {"/v1/..%2Fadmin", 400, "ambiguous-path:api"},
        {"/v1/..%5cadmin", 400, "ambiguous-path:api"},
        {"/v1/..\\admin", 400, "ambiguous-path:api"},
        {"/v1/..;/admin", 400, "ambiguous-path:api"},
        {"/v1/%00/x", 400, "ambiguous-path:api"},
        {"/../v1/x", 400, "ambiguous-path:api"},
        {"/v1//../admin", 400, "ambiguous-path:api"},
        {"/v1/%c0%ae%c0%ae/admin", 400, "ambiguous-path:api"},
        {"/v1/%zz", 400, "ambiguous-path:api"},
        /* Node's new URL(target, base) and Python's urlsplit read "//v1" as a host. */
        {"//v1/x", 400, "ambiguous-path:api"},
        {"//v1/admin", 400, "ambiguous-path:api"},
        {"///v1/admin", 400, "ambiguous-path:api"},
        {"//v1/?q=1", 400, "ambiguous-path:api"},
        /* ... and so does a server that resolves the dots first. */
        {"/.//v1/admin", 400, "ambiguous-path:api"},
        {"/x/..//v1/admin", 400, "ambiguous-path:api"},
    };
    static const struct path_case block_cases[] = {
        {"/ok", 0, NULL},
        {"/telemetryx", 403, "telemetry:events"},
        {"/telemetry", 403, "telemetry:events"},
        {"/%74elemetry", 403, "telemetry:events"},
        {"/%74%65lemetry/x", 403, "telemetry:events"},
        {"/telemetry//x", 403, "telemetry:events"},
        {"/x//telemetry", 0, NULL},
        {"/./telemetry", 403, "telemetry:events"},
        {"/%2e/telemetry", 403, "telemetry:events"},
        {"/x/../telemetry", 403, "telemetry:events"},
        {"/x/%2e%2e/telemetry", 403, "telemetry:events"},
        {"/telemetry/../ok", 403, "telemetry:events"},
        {"/TELEMETRY", 403, "telemetry:events"},
        {"/Telemetry/x", 403, "telemetry:events"},
        {"/../telemetry", 400, "ambiguous-path:events"},
        {"//telemetry", 400, "ambiguous-path:events"},
        {"///telemetry", 400, "ambiguous-path:events"},
        {"//x/telemetry", 400, "ambiguous-path:events"},
        {"//x/api/events", 400, "ambiguous-path:events"},
        {"/.//x/telemetry", 400, "ambiguous-path:events"},
        {"/%2e//telemetry", 400, "ambiguous-path:events"},
        {"/x%2f..%2ftelemetry", 400, "ambiguous-path:events"},
        {"/;x/telemetry", 400, "ambiguous-path:events"},
        {"/telemetry;v=1", 403, "telemetry:events"},
        {"/api;x/events", 403, "telemetry:events"},
        {"/api%3Bx/events", 403, "telemetry:events"},
        {"/api%3bx/events", 403, "telemetry:events"},
        {"/API;x/Events/1", 403, "telemetry:events"},
        {"/api;x/../events", 0, NULL},
        {"/%74elemetry/../ok", 403, "telemetry:events"},
        {"/v1/logs%3Awrite", 403, "telemetry:events"},
        {"/v1/logs%3awrite/x", 403, "telemetry:events"},
        {"/v1/%6Cogs:write", 403, "telemetry:events"},
    };
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "unidentified: block\n", "alpha",
                                      "id: alpha\n"
                                      "identify: {proxy_users: [alpha]}\n"
                                      "default: block\n"
                                      "endpoints:\n"
                                      "  - group: api\n"
                                      "    hosts: [origin.test]\n"
                                      "    paths: [/v1/]\n");
    const char *const args[] = {"--policy-dir", dir, NULL};
    char path[700];

    snprintf(path, sizeof(path), "%s/tools/beta.yaml", dir);
    assert_int_equal(tio_write_file(path,
                                    "id: beta\n"
                                    "identify: {proxy_users: [beta]}\n"
                                    "default: allow\n"
                                    "block_telemetry: true\n"
                                    "endpoints:\n"
                                    "  - group: events\n"
                                    "    purpose: telemetry\n"
                                    "    hosts: [origin.test]\n"
                                    "    paths: [/telemetry, /api/events, \"/v1/logs:write\"]\n"),
                     0);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    run_path_cases(t, "alpha", allow_cases, sizeof(allow_cases) / sizeof(allow_cases[0]));
    run_path_cases(t, "beta", block_cases, sizeof(block_cases) / sizeof(block_cases[0]));
    /* The 400 says which ambiguity it saw. */
    {
        struct rawresp r = {0};
        assert_int_equal(get_path_as(t, "beta", "//x/telemetry", &r), 400);
        assert_non_null(strstr(tbuf_str(&r.body), "(leading-slashes)"));
        rawresp_free(&r);
    }
}

/* Answers every request on a keep-alive connection with "conn=<accept index>". */
static void conn_naming_handler(struct origin_conn *c)
{
    for (int i = 0; i < 100 && !origin_stopping(c->origin); i++) {
        char body[32];
        int n;

        if (oconn_read_head(c, 10000) == 0 || oconn_read_body(c, NULL, 10000) != 0)
            return;
        n = snprintf(body, sizeof(body), "conn=%u\n", c->index);
        if (oconn_respond(c, 200, NULL, body, (size_t)n) != 0)
            return;
    }
}

/* GETs path as user (NULL: unidentified) on a new client connection; returns the body. */
static void get_body_as(struct itcase *t, const char *user, const char *path, int status,
                        const char *body)
{
    struct rawresp r = {0};
    int st;

    if (user != NULL) {
        st = get_path_as(t, user, path, &r);
    } else {
        char authority[64];
        snprintf(authority, sizeof(authority), "origin.test:%u", origin_port(t->origin));
        st = it_raw_get(t, authority, &r);
    }
    if (st != status || (body != NULL && strcmp(tbuf_str(&r.body), body) != 0))
        fail_msg("%s %s: expected %d '%s', got %d '%s'", user != NULL ? user : "-", path, status,
                 body != NULL ? body : "", st, tbuf_str(&r.body));
    rawresp_free(&r);
}

/* The two tools the pool cases use, both allowed to the origin. */
static const char *write_two_tools(struct itcase *t)
{
    const char *dir = it_write_policy(t, "unidentified: allow\n", "alpha",
                                      "id: alpha\nidentify: {proxy_users: [alpha]}\n");
    char path[700];

    snprintf(path, sizeof(path), "%s/tools/beta.yaml", dir);
    assert_int_equal(tio_write_file(path, "id: beta\nidentify: {proxy_users: [beta]}\n"), 0);
    return dir;
}

/*
 * An idle upstream connection is reused only by the identity that used it: another tool,
 * or an unidentified client, gets a connection of its own.
 */
static void test_pool_per_identity(void **state)
{
    struct itcase *t = *state;
    /* One worker: each worker has its own pool. */
    const char *const args[] = {"--policy-dir", write_two_tools(t), "-w", "1", NULL};

    it_start_origin(t, conn_naming_handler, NULL);
    it_start_proxy(t, args);
    get_body_as(t, "alpha", "/a", 200, "conn=0\n");
    get_body_as(t, "beta", "/b", 200, "conn=1\n");
    get_body_as(t, NULL, "/x", 200, "conn=2\n");
    get_body_as(t, "alpha", "/a2", 200, "conn=0\n"); /* its own idle connection again */
    get_body_as(t, "beta", "/b2", 200, "conn=1\n");
    assert_int_equal(origin_accepted(t->origin), 3);
}

/*
 * An origin that authenticates the connection, as IIS does with NTLM: the type 1 message
 * gets a challenge, the type 3 message authenticates the connection, and from then on
 * every request on it is answered as that user, with or without credentials.
 */
static void ntlm_handler(struct origin_conn *c)
{
    bool authed = false;

    for (int i = 0; i < 100 && !origin_stopping(c->origin); i++) {
        char auth[256] = "", body[64];
        int n;

        if (oconn_read_head(c, 10000) == 0 || oconn_read_body(c, NULL, 10000) != 0)
            return;
        (void)httpmsg_field(c->head.data, c->head.len, "Authorization", 0, auth, sizeof(auth));
        if (strcmp(auth, "NTLM type3") == 0)
            authed = true;
        if (authed) {
            n = snprintf(body, sizeof(body), "secret of conn %u\n", c->index);
            if (oconn_respond(c, 200, NULL, body, (size_t)n) != 0)
                return;
        } else if (oconn_respond(c, 401,
                                 strcmp(auth, "NTLM type1") == 0
                                     ? "WWW-Authenticate: NTLM challenge\r\n"
                                     : "WWW-Authenticate: NTLM\r\n",
                                 "who are you\n", 12) != 0) {
            return;
        }
    }
}

/* Sends GET /doc with an optional Authorization on an open client connection. */
static int ntlm_get(struct itcase *t, struct rawclient *rc, const char *auth, struct rawresp *r)
{
    char req[512];

    rawresp_free(r);
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/doc HTTP/1.1\r\nHost: origin.test\r\n"
             "Proxy-Authorization: Basic YWxwaGE6eA==\r\n%s%s%s\r\n",
             origin_port(t->origin), auth != NULL ? "Authorization: " : "",
             auth != NULL ? auth : "", auth != NULL ? "\r\n" : "");
    assert_int_equal(rawclient_sends(rc, req), 0);
    return rawclient_response(rc, r, false, 8000);
}

/*
 * A connection that carried connection-bound authentication stays with its client (the
 * handshake needs it) and is never given to anyone else: not to an unidentified client,
 * not to another tool, not even to the same tool on a new connection.
 */
static void test_ntlm_connection_pinned(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--policy-dir", write_two_tools(t), NULL};
    struct rawclient *a;
    struct rawresp r = {0};

    it_start_origin(t, ntlm_handler, NULL);
    it_start_proxy(t, args);
    a = it_raw(t);
    assert_int_equal(ntlm_get(t, a, "NTLM type1", &r), 401);
    assert_int_equal(ntlm_get(t, a, "NTLM type3", &r), 200);
    assert_string_equal(tbuf_str(&r.body), "secret of conn 0\n");
    assert_int_equal(ntlm_get(t, a, NULL, &r), 200);
    assert_string_equal(tbuf_str(&r.body), "secret of conn 0\n");

    get_body_as(t, NULL, "/doc", 401, "who are you\n");
    get_body_as(t, "beta", "/doc", 401, "who are you\n");
    get_body_as(t, "alpha", "/doc", 401, "who are you\n");
    assert_int_equal(ntlm_get(t, a, NULL, &r), 200); /* still pinned to its client */
    assert_string_equal(tbuf_str(&r.body), "secret of conn 0\n");
    rawclient_close(a);
    get_body_as(t, "alpha", "/doc", 401, "who are you\n");
    rawresp_free(&r);
}

/*
 * Serves the first request of connection 0 as keep-alive, then reads the next request and
 * closes without answering, as an origin closing an idle connection while a request is on
 * its way; every other connection is served normally.
 */
static void dies_after_one_handler(struct origin_conn *c)
{
    if (c->index != 0) {
        origin_handler_simple(c);
        return;
    }
    if (oconn_read_head(c, 10000) == 0 || oconn_respond(c, 200, NULL, "first\n", 6) != 0)
        return;
    (void)oconn_read_head(c, 10000);
}

/* Counts the recorded requests whose head starts with prefix. */
static unsigned recorded(struct itcase *t, const char *prefix)
{
    unsigned n = 0;

    for (unsigned i = 0; i < origin_requests(t->origin); i++) {
        struct tbuf head = {0};
        if (origin_request(t->origin, i, &head, NULL) && head.len >= strlen(prefix) &&
            memcmp(head.data, prefix, strlen(prefix)) == 0)
            n++;
        tbuf_free(&head);
    }
    return n;
}

/* Sends one request on a new client connection and returns its status. */
static int send_one(struct itcase *t, const char *method, const char *path)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp r = {0};
    char req[512];
    int st;

    snprintf(req, sizeof(req),
             "%s http://origin.test:%u%s HTTP/1.1\r\nHost: origin.test\r\n"
             "Content-Length: 0\r\n\r\n",
             method, origin_port(t->origin), path);
    assert_int_equal(rawclient_sends(rc, req), 0);
    st = rawclient_response(rc, &r, strcmp(method, "HEAD") == 0, 8000);
    rawresp_free(&r);
    rawclient_close(rc);
    return st;
}

/*
 * A non-idempotent request is never sent twice: it does not take an idle connection (which
 * the origin may be closing), so it cannot need a retry; an idempotent one that meets a
 * dead idle connection is sent again on a new one.
 */
static void test_post_sent_once(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"-w", "1", NULL}; /* one worker: each has its own pool */

    it_start_origin(t, dies_after_one_handler, NULL);
    it_start_proxy(t, args);
    assert_int_equal(send_one(t, "GET", "/first"), 200);
    assert_int_equal(send_one(t, "POST", "/once"), 200);
    assert_int_equal(recorded(t, "POST /once "), 1);
    assert_int_equal(origin_accepted(t->origin), 2);

    origin_stop(t->origin); /* a fresh origin on another port: its connection 0 again */
    it_start_origin(t, dies_after_one_handler, NULL);
    assert_int_equal(send_one(t, "GET", "/first"), 200);
    assert_int_equal(send_one(t, "GET", "/again"), 200); /* retried on a new connection */
    assert_int_equal(recorded(t, "GET /again "), 2);
    assert_int_equal(origin_accepted(t->origin), 2);
}

/*
 * "head" is not HEAD: an origin that folds the case would send a body that sluice, framing
 * the answer as a GET's, would read as the next response on the connection. A standard
 * method in another case gets a 400 and never reaches the origin.
 */
static void test_method_case_refused(void **state)
{
    struct itcase *t = *state;
    char *line;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    assert_int_equal(send_one(t, "head", "/lower"), 400);
    assert_int_equal(send_one(t, "Get", "/mixed"), 400);
    assert_int_equal(origin_requests(t->origin), 0);
    line = it_access_line(t, "method=head", NULL);
    it_assert_access_field(line, "status", "400");
    free(line);
    assert_int_equal(send_one(t, "HEAD", "/upper"), 200);
    assert_int_equal(recorded(t, "HEAD /upper "), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_search_list_not_used, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_spellings_of_denied_hosts, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_empty_labels_refused, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_quiet_keeps_access_lines, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_path_spellings, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_pool_per_identity, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_ntlm_connection_pinned, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_post_sent_once, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_method_case_refused, it_setup, it_teardown),
    };

    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
