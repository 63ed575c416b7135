/*
 * TLS inspection end to end, with libcurl (and OpenSSL as a hand-made client where libcurl
 * cannot say what is needed) trusting only sluice's CA, against loopback HTTPS origins
 * that have throwaway CAs of their own: the full URL and method in the access line, path
 * rules and User-Agent identification inside the TLS session, keep-alive, each upstream
 * certificate failure with its own 502, server-name mismatches, an h2-only client spliced,
 * the splice and block modes, a client that refuses sluice's certificate, WebSocket inside
 * an inspected tunnel, and a policy that inspects without a CA refused at start.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "httpmsg.h"
#include "itcommon.h"

/* A tool identified by its User-Agent, whose telemetry on /events is blocked. */
static const char alpha_profile[] = "id: alpha\n"
                                    "identify: {user_agents: [\"alpha/*\"]}\n"
                                    "default: allow\n"
                                    "block_telemetry: true\n"
                                    "endpoints:\n"
                                    "  - group: api\n"
                                    "    hosts: [origin.test]\n"
                                    "  - group: events\n"
                                    "    purpose: telemetry\n"
                                    "    hosts: [origin.test]\n"
                                    "    paths: [/events]\n";

/* Paths of sluice's own CA, made by `sluice ca init` in the case's directory. */
struct sluice_ca {
    char cert[600];
    char key[600];
};

/* Makes sluice's CA with its own command. */
static void make_sluice_ca(struct itcase *t, struct sluice_ca *ca)
{
    snprintf(ca->cert, sizeof(ca->cert), "%s/sluice-ca.pem", t->env->dir);
    snprintf(ca->key, sizeof(ca->key), "%s/sluice-ca.key", t->env->dir);
    {
        const char *const args[] = {"ca", "init", "--ca-cert", ca->cert, "--ca-key", ca->key, NULL};
        struct it_run r = it_run_sluice(t, args);
        assert_int_equal(r.status, 0);
        free(r.output);
    }
}

/*
 * Starts sluice with policy org (and the alpha profile), sluice's CA, connect_ports ports,
 * an audit trail and a capture store in the case's directory, and, when upstream_ca is
 * not NULL, that file trusted for origins.
 */
static void start_sluice(struct itcase *t, const struct sluice_ca *ca, const char *org,
                         const char *profile, const char *ports, const char *upstream_ca)
{
    static char audit[600], store[600];
    const char *dir = it_write_policy(t, org, "alpha", profile);
    const char *args[16] = {"--policy-dir", dir,     "--ca-cert",       ca->cert,
                            "--ca-key",     ca->key, "--connect-ports", ports,
                            "--audit-log",  audit,   "--capture-dir",   store};
    size_t n = 12;

    snprintf(audit, sizeof(audit), "%s/audit.jsonl", t->env->dir);
    snprintf(store, sizeof(store), "%s/captures", t->env->dir);
    if (upstream_ca != NULL) {
        args[n++] = "--upstream-ca";
        args[n++] = upstream_ca;
    }
    args[n] = NULL;
    it_start_proxy(t, args);
}

/* A libcurl handle that trusts sluice's CA only, as tool alpha. */
static struct itcurl *alpha_curl(struct itcase *t, const struct sluice_ca *ca)
{
    struct itcurl *c = itcurl_new(t->proxy_port);

    assert_non_null(c);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, ca->cert);
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c->h, CURLOPT_USERAGENT, "alpha/2.1");
    return c;
}

/* Formats the port of origin o. */
static const char *port_text(struct origin *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "%u", origin_port(o));
    return buf;
}

/*
 * Inspected: libcurl, trusting only sluice's CA, reaches the HTTPS origin; the access line
 * has the method, the full https:// URL, tls=inspect and the tool named by the User-Agent
 * sent inside TLS; a path the tool's telemetry rule blocks gets 403 on the same host (on
 * the same connection), and never reaches the origin.
 */
static void test_inspect_curl(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct itcurl *c;
    struct tbuf head = {0};
    char ports[16], url[160], want[200], *line;
    long verify = -1, connects = -1;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    c = alpha_curl(t, &ca);
    snprintf(url, sizeof(url), "https://origin.test:%u/v1/models?x=1", origin_port(t->origin));
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    curl_easy_getinfo(c->h, CURLINFO_SSL_VERIFYRESULT, &verify);
    assert_int_equal(verify, 0);
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), "target=/v1/models?x=1\n");
    /* The same TLS connection: the telemetry path is refused inside it. */
    snprintf(url, sizeof(url), "https://origin.test:%u/events/batch", origin_port(t->origin));
    assert_int_equal(itcurl_perform(c, url), CURLE_OK);
    assert_int_equal(itcurl_status(c), 403);
    curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &connects);
    assert_int_equal(connects, 0);
    itcurl_free(c);

    snprintf(want, sizeof(want), "target=\"https://origin.test:%u/v1/models?x=1\"",
             origin_port(t->origin));
    line = it_access_line(t, want, NULL);
    it_assert_access_field(line, "method", "GET");
    it_assert_access_field(line, "status", "200");
    it_assert_access_field(line, "tls", "inspect");
    it_assert_access_field(line, "sni", "origin.test");
    it_assert_access_field(line, "tool", "alpha");
    it_assert_access_field(line, "id", "user-agent");
    it_assert_access_field(line, "rule", "allow:api");
    free(line);
    line = it_access_line(t, "/events/batch", NULL);
    it_assert_access_field(line, "status", "403");
    it_assert_access_field(line, "rule", "telemetry:events");
    it_assert_access_field(line, "tls", "inspect");
    free(line);
    /* The origin saw the allowed request, with the client's User-Agent, and nothing else. */
    assert_int_equal(origin_requests(t->origin), 1);
    assert_true(origin_request(t->origin, 0, &head, NULL));
    assert_non_null(strstr(tbuf_str(&head), "GET /v1/models?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(tbuf_str(&head), "User-Agent: alpha/2.1\r\n"));
    tbuf_free(&head);

    /* The audit trail has both requests, valid under the schema, as inspected. */
    assert_true(testenv_stop_proxy(t->env));
    {
        static const char check[] =
            "import json, sys, jsonschema\n"
            "v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))\n"
            "recs = [json.loads(l) for l in open(sys.argv[2])]\n"
            "for r in recs: v.validate(r)\n"
            "assert len(recs) == 2, recs\n"
            "assert all(r['sluice']['tls_mode'] == 'inspect' for r in recs), recs\n"
            "assert all(r['tls']['client']['server_name'] == 'origin.test' for r in recs)\n"
            "assert recs[0]['url']['full'].startswith('https://origin.test:'), recs[0]\n"
            "assert recs[0]['url']['path'] == '/v1/models', recs[0]\n"
            "assert recs[1]['rule']['id'] == 'telemetry:events', recs[1]\n";
        char cmd[2000];
        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/python3 -c \"%s\" '%s/dist/audit-record.schema.json' '%s/audit.jsonl'",
                 check, SLUICE_SOURCE_DIR, t->env->dir);
        assert_int_equal(system(cmd), 0);
    }
}

/*
 * Inside inspection, a path that starts with "//" is refused with 400 where a path rule
 * applies, as in plain HTTP: a WHATWG parser (Node's new URL(target, base)) routes
 * "//x/events" as "/events", which the telemetry rule on /events would never see.
 * Slashes repeated further in are only collapsed; the origin sees that request alone.
 */
static void test_inspect_leading_slashes(void **state)
{
    static const char *const refused[] = {"//x/events", "//events", "///events"};
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct itcurl *c;
    char ports[16], url[160], *line;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        c = alpha_curl(t, &ca);
        curl_easy_setopt(c->h, CURLOPT_PATH_AS_IS, 1L);
        snprintf(url, sizeof(url), "https://origin.test:%u%s", origin_port(t->origin), refused[i]);
        if (itcurl_perform(c, url) != CURLE_OK)
            it_fail_with_log(t, c->errbuf);
        if (itcurl_status(c) != 400)
            fail_msg("%s: expected 400, got %ld", refused[i], itcurl_status(c));
        assert_non_null(strstr(tbuf_str(&c->body), "(leading-slashes)"));
        itcurl_free(c);
        snprintf(url, sizeof(url), ":%u%s\"", origin_port(t->origin), refused[i]);
        line = it_access_line(t, url, NULL);
        it_assert_access_field(line, "status", "400");
        it_assert_access_field(line, "tls", "inspect");
        it_assert_access_field(line, "rule", "ambiguous-path:events");
        free(line);
    }
    c = alpha_curl(t, &ca);
    curl_easy_setopt(c->h, CURLOPT_PATH_AS_IS, 1L);
    snprintf(url, sizeof(url), "https://origin.test:%u/x//events", origin_port(t->origin));
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);
    assert_int_equal(origin_requests(t->origin), 1);
}

/*
 * Body capture inside inspected TLS: a POST through the decrypted tunnel keeps its body
 * and, for requests-and-responses, the origin's answer, in the capture store, named by
 * the record of the inspected request; a GET on the same connection keeps nothing.
 */
static void test_inspect_capture(void **state)
{
    struct itcase *t = *state;
    static const char profile[] = "id: alpha\n"
                                  "identify: {user_agents: [\"alpha/*\"]}\n"
                                  "default: allow\n"
                                  "capture: requests-and-responses\n";
    static const char check[] =
        "import json, sys, os, hashlib\n"
        "recs = [json.loads(l) for l in open(sys.argv[1])]\n"
        "def body(ref):\n"
        "    h = ref['sha256']\n"
        "    b = open(os.path.join(sys.argv[2], h[:2], h), 'rb').read()\n"
        "    assert hashlib.sha256(b).hexdigest() == h and len(b) == ref['bytes']\n"
        "    return b\n"
        "p = [r for r in recs if r['url']['path'] == '/v1/messages']\n"
        "assert len(p) == 1 and p[0]['sluice']['tls_mode'] == 'inspect', recs\n"
        "c = p[0]['sluice']['capture']\n"
        "assert body(c['request']) == b'{\"prompt\": \"inside TLS\"}', c\n"
        "assert body(c['response']) == b'target=/v1/messages\\n', c\n"
        "g = [r for r in recs if r['url']['path'] == '/v1/models']\n"
        "assert len(g) == 1 and 'request' not in g[0]['sluice']['capture'], g\n";
    struct sluice_ca ca;
    struct itcurl *c;
    char ports[16], url[160], audit[600], store[600];

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    c = alpha_curl(t, &ca);
    snprintf(url, sizeof(url), "https://origin.test:%u/v1/messages", origin_port(t->origin));
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, "{\"prompt\": \"inside TLS\"}");
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    assert_int_equal(itcurl_status(c), 200);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    snprintf(url, sizeof(url), "https://origin.test:%u/v1/models", origin_port(t->origin));
    assert_int_equal(itcurl_perform(c, url), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);

    assert_true(testenv_stop_proxy(t->env));
    snprintf(audit, sizeof(audit), "%s/audit.jsonl", t->env->dir);
    snprintf(store, sizeof(store), "%s/captures", t->env->dir);
    {
        const char *const argv[] = {"python3", "-c", check, audit, store, NULL};
        if (it_run_command(argv) != 0)
            fail_msg("the inspected request's record does not name its bodies (above)");
    }
}

/* One origin whose certificate is wrong in some way, and what the 502 must say. */
struct bad_origin {
    const char *name;   /* the certificate's DNS name */
    const char *cafile; /* where its CA goes */
    enum testca_kind kind;
    bool trusted;     /* its CA is in --upstream-ca */
    const char *says; /* words of the 502's body */
    struct testca *ca;
    SSL_CTX *ctx;
    struct origin *origin;
};

/*
 * Every way an origin's certificate can fail verification gets a 502 that names the check
 * (expired, wrong host, not signed by a trusted CA, self-signed), with error= in the access
 * line; a good origin next to them passes through the same sluice.  The target's secrets
 * (an api_key in the query) are hidden in the failure's log line as in every record.
 */
static void test_inspect_upstream_failures(void **state)
{
    struct itcase *t = *state;
    struct bad_origin bad[] = {
        {"origin.test", "expired.pem", TESTCA_EXPIRED, true, "has expired", NULL, NULL, NULL},
        {"other.test", "wronghost.pem", TESTCA_GOOD, true, "wrong host", NULL, NULL, NULL},
        {"origin.test", "untrusted.pem", TESTCA_GOOD, false, "untrusted", NULL, NULL, NULL},
        {"origin.test", "selfsigned.pem", TESTCA_SELF_SIGNED, true, "self-signed", NULL, NULL,
         NULL},
    };
    const size_t nbad = sizeof(bad) / sizeof(bad[0]);
    struct sluice_ca ca;
    char ports[200], trust[600], url[160], *line;
    size_t n = 0;
    struct tbuf all = {0};

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL); /* the good one */
    n = (size_t)snprintf(ports, sizeof(ports), "%u", origin_port(t->origin));
    {
        size_t len = 0;
        char *good = tio_read_file(testca_ca_path(t->ca), &len);
        assert_non_null(good);
        tbuf_append(&all, good, len);
        free(good);
    }
    for (size_t i = 0; i < nbad; i++) {
        struct origin_opts o = {.handler = origin_handler_simple};
        bad[i].ca = testca_new_kind(t->env->dir, bad[i].cafile, bad[i].name, NULL, bad[i].kind);
        assert_non_null(bad[i].ca);
        bad[i].ctx = testca_server_ctx(bad[i].ca);
        assert_non_null(bad[i].ctx);
        o.tls = bad[i].ctx;
        bad[i].origin = origin_start(&o);
        assert_non_null(bad[i].origin);
        n += (size_t)snprintf(ports + n, sizeof(ports) - n, ",%u", origin_port(bad[i].origin));
        if (bad[i].trusted) {
            size_t len = 0;
            char *pem = tio_read_file(testca_ca_path(bad[i].ca), &len);
            assert_non_null(pem);
            tbuf_append(&all, pem, len);
            free(pem);
        }
    }
    snprintf(trust, sizeof(trust), "%s/origins-ca.pem", t->env->dir);
    assert_int_equal(tio_write_file(trust, tbuf_str(&all)), 0);
    tbuf_free(&all);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", alpha_profile, ports, trust);

    for (size_t i = 0; i < nbad; i++) {
        struct itcurl *c = alpha_curl(t, &ca);
        char want[200];

        snprintf(url, sizeof(url), "https://origin.test:%u/x?api_key=SK-SECRET-%zu&q=1",
                 origin_port(bad[i].origin), i);
        if (itcurl_perform(c, url) != CURLE_OK)
            it_fail_with_log(t, c->errbuf);
        if (itcurl_status(c) != 502 || strstr(tbuf_str(&c->body), bad[i].says) == NULL) {
            fprintf(stderr, "%s: status %ld, body: %s\n", bad[i].cafile, itcurl_status(c),
                    tbuf_str(&c->body));
            it_fail_with_log(t, "no 502 naming the failed check");
        }
        itcurl_free(c);
        snprintf(want, sizeof(want), "target=\"https://origin.test:%u/x?api_key=<redacted>&q=1\"",
                 origin_port(bad[i].origin));
        line = it_access_line(t, want, NULL);
        it_assert_access_field(line, "status", "502");
        it_assert_access_field(line, "error", "tls_certificate_error");
        free(line);
        assert_int_equal(origin_requests(bad[i].origin), 0);
        snprintf(want, sizeof(want), "GET https://origin.test:%u/x?api_key=<redacted>&q=1: TLS to",
                 origin_port(bad[i].origin));
        if (!sluiceproc_log_wait(t->env->proxy, want, 5000))
            it_fail_with_log(t, "no log line for the failed TLS, with the target's secret hidden");
    }
    if (sluiceproc_log_contains(t->env->proxy, "SK-SECRET"))
        it_fail_with_log(t, "a query's api_key reached the log in clear");
    {
        struct itcurl *c = alpha_curl(t, &ca);
        snprintf(url, sizeof(url), "https://origin.test:%u/fine", origin_port(t->origin));
        assert_int_equal(itcurl_perform(c, url), CURLE_OK);
        assert_int_equal(itcurl_status(c), 200);
        itcurl_free(c);
    }
    for (size_t i = 0; i < nbad; i++) {
        origin_stop(bad[i].origin);
        SSL_CTX_free(bad[i].ctx);
        testca_free(bad[i].ca);
    }
}

/*
 * A ClientHello naming another server than the CONNECT's host: refused before any of it
 * leaves when that server is denied, in inspect mode as in splice mode; inspected on when
 * policy allows both, with a certificate for the name the client asked for.
 */
static void test_inspect_sni_mismatch(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct itcurl *c;
    char ports[16], url[160], connect_to[160], *line;
    struct curl_slist *to = NULL;
    CURLcode rc;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca,
                 "tls: inspect\nunidentified: allow\ndeny_hosts: [denied.test]\n"
                 "allow_hosts: []\n",
                 alpha_profile, port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    /* curl names denied.test in its ClientHello, and CONNECTs to origin.test. */
    c = alpha_curl(t, &ca);
    snprintf(connect_to, sizeof(connect_to), "denied.test:%u:origin.test:%u",
             origin_port(t->origin), origin_port(t->origin));
    to = curl_slist_append(NULL, connect_to);
    curl_easy_setopt(c->h, CURLOPT_CONNECT_TO, to);
    snprintf(url, sizeof(url), "https://denied.test:%u/x", origin_port(t->origin));
    rc = itcurl_perform(c, url);
    assert_int_not_equal(rc, CURLE_OK);
    itcurl_free(c);
    line = it_access_line(t, "method=CONNECT", "sni=denied.test", NULL);
    it_assert_access_field(line, "rule", "sni:deny-host");
    it_assert_access_field(line, "decision", "block");
    free(line);
    assert_int_equal(origin_requests(t->origin), 0);

    /* Another name that policy allows: inspected, with a certificate for that name. */
    c = alpha_curl(t, &ca);
    snprintf(connect_to, sizeof(connect_to), "alias.test:%u:origin.test:%u", origin_port(t->origin),
             origin_port(t->origin));
    curl_slist_free_all(to);
    to = curl_slist_append(NULL, connect_to);
    curl_easy_setopt(c->h, CURLOPT_CONNECT_TO, to);
    snprintf(url, sizeof(url), "https://alias.test:%u/alias", origin_port(t->origin));
    rc = itcurl_perform(c, url);
    if (rc != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    /* curl checked a certificate for alias.test; the request inside, whose Host names
     * alias.test, goes where the CONNECT went and was decided: origin.test. */
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);
    curl_slist_free_all(to);
    {
        struct tbuf head = {0};
        char host[80];
        assert_true(origin_request(t->origin, 0, &head, NULL));
        snprintf(host, sizeof(host), "\r\nHost: origin.test:%u\r\n", origin_port(t->origin));
        assert_non_null(strstr(tbuf_str(&head), host));
        tbuf_free(&head);
    }
    line = it_access_line(t, "/alias", NULL);
    it_assert_access_field(line, "sni", "alias.test");
    it_assert_access_field(line, "tls", "inspect");
    free(line);
}

/* Frees a hand-made TLS client: its session, its context and its connection. */
static void tls_client_close(SSL *ssl, SSL_CTX *ctx, struct rawclient *rc)
{
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    rawclient_close(rc);
}

/* Sends all of s on the raw socket of rc. */
static void raw_send(struct rawclient *rc, const char *s)
{
    assert_int_equal(rawclient_sends(rc, s), 0);
}

/*
 * Opens a CONNECT to connect_host at the origin's port through sluice (as *rc) and starts
 * TLS on it for origin.test as a client that offers only h2 and trusts only the origin's
 * CA.  Returns the SSL (reads bounded by 10 s) and whether the handshake completed in *ok.
 */
static SSL *h2_only_client(struct itcase *t, const char *connect_host, struct rawclient **rc,
                           SSL_CTX **ctx, bool *ok)
{
    struct rawresp resp = {0};
    char req[300], server_name[] = "origin.test";
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    SSL *ssl;

    *rc = it_raw(t);
    snprintf(req, sizeof(req), "CONNECT %s:%u HTTP/1.1\r\nHost: %s\r\n\r\n", connect_host,
             origin_port(t->origin), connect_host);
    raw_send(*rc, req);
    assert_int_equal(rawclient_response(*rc, &resp, true, 5000), 200);
    rawresp_free(&resp);
    /* The origin's CA only: sluice's certificate would fail this handshake. */
    *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(*ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(*ctx, testca_ca_path(t->ca), NULL), 1);
    SSL_CTX_set_verify(*ctx, SSL_VERIFY_PEER, NULL);
    assert_int_equal(SSL_CTX_set_alpn_protos(*ctx, (const unsigned char *)"\x02h2", 3), 0);
    ssl = SSL_new(*ctx);
    assert_non_null(ssl);
    assert_int_equal(setsockopt((*rc)->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    SSL_set_fd(ssl, (*rc)->fd);
    SSL_set_tlsext_host_name(ssl, server_name);
    SSL_set1_host(ssl, "origin.test");
    *ok = SSL_connect(ssl) == 1;
    return ssl;
}

/*
 * Opens a CONNECT to connect_host at the origin's port and starts TLS on it naming sni, as
 * a client that trusts ca_path and checks for origin.test.  Returns true when the
 * handshake completed (with whoever answered it).
 */
static bool tls_names(struct itcase *t, const char *connect_host, const char *ca_path,
                      const char *sni)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp resp = {0};
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    char req[300], name[256];
    SSL_CTX *ctx;
    SSL *ssl;
    bool ok;

    snprintf(req, sizeof(req), "CONNECT %s:%u HTTP/1.1\r\nHost: %s\r\n\r\n", connect_host,
             origin_port(t->origin), connect_host);
    raw_send(rc, req);
    assert_int_equal(rawclient_response(rc, &resp, true, 5000), 200);
    rawresp_free(&resp);
    ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca_path, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(setsockopt(rc->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    SSL_set_fd(ssl, rc->fd);
    snprintf(name, sizeof(name), "%s", sni); /* the macro takes it without const */
    assert_int_equal(SSL_set_tlsext_host_name(ssl, name), 1);
    SSL_set1_host(ssl, "origin.test");
    ok = SSL_connect(ssl) == 1;
    tls_client_close(ssl, ctx, rc);
    return ok;
}

/*
 * A ClientHello naming a server that is not a host name closes the tunnel before it
 * leaves, spliced or inspected; it was taken for "no name", and then a host that
 * request_headers must inspect went through a spliced tunnel to 127.0.0.1 as
 * "origin.test:443", and an inspected one went on with a certificate for the CONNECT's
 * host.  "origin.test:443" is now decided as origin.test (a name with its port), which
 * must be inspected, so the spliced tunnel is refused.  The record shows the name as
 * sent, escaped.
 */
static void test_inspect_sni_not_a_host_name(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    char ports[16], *line;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca,
                 "unidentified: allow\n"
                 "request_headers:\n"
                 "  - {hosts: [origin.test], set: [\"x-tenant: acme\"]}\n",
                 alpha_profile, port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    /* Spliced (127.0.0.1 is not inspected): the origin's own certificate would answer.
     * With a port, the name is decided on its host, which request_headers names. */
    assert_false(tls_names(t, "127.0.0.1", testca_ca_path(t->ca), "origin.test:443"));
    line = it_access_line(t, "method=CONNECT", "sni=origin.test:443 ", NULL);
    it_assert_access_field(line, "term", "PT");
    it_assert_access_field(line, "rule", "sni:tls:must-inspect");
    free(line);
    assert_false(tls_names(t, "127.0.0.1", testca_ca_path(t->ca), "origin.test/"));
    line = it_access_line(t, "method=CONNECT", "sni=origin.test%2F ", NULL);
    it_assert_access_field(line, "term", "PT");
    it_assert_access_field(line, "error", "tls_protocol_error");
    free(line);
    /* Inspected (request_headers): sluice's certificate would answer. */
    assert_false(tls_names(t, "origin.test", ca.cert, "origin.test\t"));
    line = it_access_line(t, "method=CONNECT", "sni=origin.test%09 ", NULL);
    it_assert_access_field(line, "term", "PT");
    it_assert_access_field(line, "error", "tls_protocol_error");
    free(line);
    assert_true(sluiceproc_log_wait(t->env->proxy,
                                    "the ClientHello names a server that is not a host name "
                                    "(origin.test%09: ",
                                    5000));
    assert_int_equal(origin_requests(t->origin), 0);
    /* The names themselves go on: spliced to the origin, and inspected. */
    assert_true(tls_names(t, "127.0.0.1", testca_ca_path(t->ca), "127.0.0.1"));
    assert_true(tls_names(t, "origin.test", ca.cert, "origin.test"));
}

/*
 * A client that offers only h2 cannot be inspected yet: the tunnel is spliced, so the
 * client meets the origin's own certificate, and the record says tls=splice.
 */
static void test_inspect_h2_only_spliced(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct rawclient *rc;
    char ports[16], req[300], buf[512], *line;
    SSL_CTX *ctx;
    SSL *ssl;
    int n, got = 0;
    bool ok;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: allow\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    ssl = h2_only_client(t, "origin.test", &rc, &ctx, &ok);
    if (!ok) {
        ERR_print_errors_fp(stderr);
        it_fail_with_log(t, "the h2-only client did not meet the origin's own certificate");
    }
    snprintf(req, sizeof(req),
             "GET /spliced HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n");
    assert_int_equal(SSL_write(ssl, req, (int)strlen(req)), (int)strlen(req));
    for (int i = 0; i < 100 && (n = SSL_read(ssl, buf + got, (int)sizeof(buf) - 1 - got)) > 0; i++)
        got += n;
    buf[got] = '\0';
    assert_non_null(strstr(buf, "target=/spliced"));
    tls_client_close(ssl, ctx, rc);
    line = it_access_line(t, "method=CONNECT", NULL);
    it_assert_access_field(line, "tls", "splice");
    it_assert_access_field(line, "sni", "origin.test");
    free(line);
    assert_true(sluiceproc_log_wait(t->env->proxy, "offers only HTTP/2", 2000));
}

/*
 * Starts sluice with the organisation policy org and has an h2-only client open an
 * inspected tunnel: it must be refused rather than spliced, with a log line holding says,
 * and nothing reaching the origin.
 */
static void assert_h2_only_refused(struct itcase *t, const char *org, const char *says)
{
    struct sluice_ca ca;
    struct rawclient *rc;
    SSL_CTX *ctx;
    SSL *ssl;
    char ports[16];
    bool ok;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, org, alpha_profile, port_text(t->origin, ports, sizeof(ports)),
                 testca_ca_path(t->ca));
    ssl = h2_only_client(t, "origin.test", &rc, &ctx, &ok);
    assert_false(ok);
    tls_client_close(ssl, ctx, rc);
    for (int i = 0; i < 250 && !sluiceproc_log_contains(t->env->proxy, says); i++)
        tio_sleep_ms(20);
    if (!sluiceproc_log_contains(t->env->proxy, says))
        it_fail_with_log(t, says);
    assert_int_equal(origin_accepted(t->origin), 0);
}

/*
 * refuse_uninspectable: an h2-only client of an inspected tunnel is refused rather than
 * spliced, with a log line that names the setting; nothing reaches the origin.
 */
static void test_inspect_h2_only_refused(void **state)
{
    assert_h2_only_refused(*state,
                           "tls: inspect\nunidentified: allow\nrefuse_uninspectable: true\n",
                           "(refuse_uninspectable)");
}

/*
 * Capture closes the ways out of inspection a client can choose: with capture on and
 * refuse_uninspectable off, an HTTP/2-only client is refused rather than spliced (its
 * bodies would leave unkept), and the log says why.
 */
static void test_inspect_capture_not_spliced(void **state)
{
    assert_h2_only_refused(*state, "tls: inspect\nunidentified: allow\ncapture: requests\n",
                           "the policy keeps bodies sent to this host (capture)");
}

/*
 * The modes per tool and group: a group that says splice passes the origin's own
 * certificate through (tls=splice); one that says block refuses the CONNECT with 403.
 */
static void test_inspect_modes(void **state)
{
    struct itcase *t = *state;
    static const char profile[] = "id: alpha\n"
                                  "identify: {proxy_users: [alpha]}\n"
                                  "default: allow\n"
                                  "endpoints:\n"
                                  "  - group: pinned\n"
                                  "    hosts: [origin.test]\n"
                                  "    tls: splice\n"
                                  "  - group: banned\n"
                                  "    hosts: [localhost]\n"
                                  "    tls: block\n";
    struct sluice_ca ca;
    struct itcurl *c;
    char ports[16], url[160], proxy[80], *line;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    snprintf(proxy, sizeof(proxy), "http://alpha:x@127.0.0.1:%u", t->proxy_port);
    curl_easy_setopt(c->h, CURLOPT_PROXY, proxy);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, testca_ca_path(t->ca)); /* the origin's own CA */
    snprintf(url, sizeof(url), "https://origin.test:%u/own", origin_port(t->origin));
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    assert_int_equal(itcurl_status(c), 200);
    snprintf(url, sizeof(url), "https://localhost:%u/no", origin_port(t->origin));
    assert_int_not_equal(itcurl_perform(c, url), CURLE_OK);
    itcurl_free(c);
    line = it_access_line(t, "target=\"origin.test:", NULL);
    it_assert_access_field(line, "tls", "splice");
    free(line);
    line = it_access_line(t, "target=\"localhost:", NULL);
    it_assert_access_field(line, "status", "403");
    it_assert_access_field(line, "rule", "tls:block:alpha/banned");
    free(line);
}

/*
 * A group's tls holds for its hosts whatever methods it lists (a CONNECT shows none): a
 * telemetry group on POST /telemetry with tls: inspect turns inspection on, so the POST is
 * refused inside and a GET goes through inspected; tls: block on a group limited to GET
 * refuses the CONNECT.
 */
static void test_inspect_group_with_methods(void **state)
{
    struct itcase *t = *state;
    static const char profile[] = "id: alpha\n"
                                  "identify: {proxy_users: [alpha]}\n"
                                  "default: allow\n"
                                  "block_telemetry: true\n"
                                  "endpoints:\n"
                                  "  - group: events\n"
                                  "    purpose: telemetry\n"
                                  "    hosts: [origin.test]\n"
                                  "    methods: [POST]\n"
                                  "    paths: [/telemetry]\n"
                                  "    tls: inspect\n"
                                  "  - group: banned\n"
                                  "    hosts: [localhost]\n"
                                  "    methods: [GET]\n"
                                  "    tls: block\n";
    struct sluice_ca ca;
    struct itcurl *c;
    struct tbuf head = {0};
    char ports[16], url[160], proxy[80], want[200], *line;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "unidentified: block\n", profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    snprintf(proxy, sizeof(proxy), "http://alpha:x@127.0.0.1:%u", t->proxy_port);
    curl_easy_setopt(c->h, CURLOPT_PROXY, proxy);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, ca.cert); /* only sluice's CA: inspected or fails */
    snprintf(url, sizeof(url), "https://origin.test:%u/telemetry", origin_port(t->origin));
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, "event=1");
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    assert_int_equal(itcurl_status(c), 403);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    snprintf(url, sizeof(url), "https://origin.test:%u/ok", origin_port(t->origin));
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    assert_int_equal(itcurl_status(c), 200);
    snprintf(url, sizeof(url), "https://localhost:%u/no", origin_port(t->origin));
    assert_int_not_equal(itcurl_perform(c, url), CURLE_OK);
    itcurl_free(c);

    assert_true(sluiceproc_log_wait(t->env->proxy, "inspecting (tls:inspect:alpha/events)", 5000));
    snprintf(want, sizeof(want), "target=\"https://origin.test:%u/telemetry\"",
             origin_port(t->origin));
    line = it_access_line(t, want, NULL);
    it_assert_access_field(line, "method", "POST");
    it_assert_access_field(line, "status", "403");
    it_assert_access_field(line, "tls", "inspect");
    it_assert_access_field(line, "rule", "telemetry:events");
    free(line);
    line = it_access_line(t, "/ok\"", NULL);
    it_assert_access_field(line, "status", "200");
    it_assert_access_field(line, "tls", "inspect");
    free(line);
    line = it_access_line(t, "target=\"localhost:", NULL);
    it_assert_access_field(line, "method", "CONNECT");
    it_assert_access_field(line, "status", "403");
    it_assert_access_field(line, "rule", "tls:block:alpha/banned");
    free(line);
    /* The origin saw the GET, never the POST. */
    assert_int_equal(origin_requests(t->origin), 1);
    assert_true(origin_request(t->origin, 0, &head, NULL));
    assert_non_null(strstr(tbuf_str(&head), "GET /ok HTTP/1.1\r\n"));
    tbuf_free(&head);
}

/*
 * The tunnel is judged again with each request inside it and at a reload: a request whose
 * User-Agent names a tool whose tunnels are blocked is refused inside an inspected
 * connection another tool opened, and a reload that blocks the tool's TLS reaches the
 * keep-alive connection it already has.
 */
static void test_inspect_rejudged(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct itcurl *c;
    char ports[16], url[160], path[700], *line;
    const char *dir;
    long connects = -1;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    dir = it_write_policy(t, "tls: inspect\nunidentified: allow\n", "alpha", alpha_profile);
    snprintf(path, sizeof(path), "%s/tools/beta.yaml", dir);
    assert_int_equal(
        tio_write_file(path, "id: beta\nidentify: {user_agents: [\"beta/*\"]}\ntls: block\n"), 0);
    {
        const char *args[] = {"--policy-dir",
                              dir,
                              "--ca-cert",
                              ca.cert,
                              "--ca-key",
                              ca.key,
                              "--connect-ports",
                              port_text(t->origin, ports, sizeof(ports)),
                              "--upstream-ca",
                              testca_ca_path(t->ca),
                              NULL};
        it_start_proxy(t, args);
    }
    c = alpha_curl(t, &ca);
    snprintf(url, sizeof(url), "https://origin.test:%u/one", origin_port(t->origin));
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    assert_int_equal(itcurl_status(c), 200);

    /* The same connection, a request naming beta: beta's tunnels are blocked. */
    curl_easy_setopt(c->h, CURLOPT_USERAGENT, "beta/1");
    snprintf(url, sizeof(url), "https://origin.test:%u/beta", origin_port(t->origin));
    assert_int_equal(itcurl_perform(c, url), CURLE_OK);
    assert_int_equal(itcurl_status(c), 403);
    line = it_access_line(t, "/beta\"", NULL);
    it_assert_access_field(line, "tool", "beta");
    it_assert_access_field(line, "rule", "tls:block:beta");
    free(line);
    /* A refusal closes the connection, as everywhere: alpha opens another. */
    curl_easy_setopt(c->h, CURLOPT_USERAGENT, "alpha/2.1");
    snprintf(url, sizeof(url), "https://origin.test:%u/two", origin_port(t->origin));
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    assert_int_equal(itcurl_status(c), 200);

    /* A reload blocks alpha's TLS to its api group: the kept connection's next request
     * is refused, without a new connection. */
    snprintf(path, sizeof(path), "%s/tools/alpha.yaml", dir);
    {
        char profile[sizeof(alpha_profile) + 32];
        snprintf(profile, sizeof(profile), "%s", alpha_profile);
        /* alpha_profile's api group is "  - group: api\n    hosts: [origin.test]\n". */
        assert_non_null(strstr(profile, "    hosts: [origin.test]\n  - group: events"));
        {
            char *at = strstr(profile, "  - group: events");
            char rest[sizeof(profile)];
            snprintf(rest, sizeof(rest), "%s", at);
            snprintf(at, sizeof(profile) - (size_t)(at - profile), "    tls: block\n%s", rest);
        }
        assert_int_equal(tio_write_file(path, profile), 0);
    }
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    for (int i = 0;
         i < 250 && !sluiceproc_log_contains(t->env->proxy, "reloaded: policy generation 2"); i++)
        tio_sleep_ms(20);
    assert_true(sluiceproc_log_wait(t->env->proxy, "reloaded: policy generation 2", 2000));
    snprintf(url, sizeof(url), "https://origin.test:%u/after", origin_port(t->origin));
    assert_int_equal(itcurl_perform(c, url), CURLE_OK);
    assert_int_equal(itcurl_status(c), 403);
    curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &connects);
    assert_int_equal(connects, 0);
    itcurl_free(c);
    line = it_access_line(t, "/after\"", NULL);
    it_assert_access_field(line, "tool", "alpha");
    it_assert_access_field(line, "rule", "tls:block:alpha/api");
    free(line);
    assert_int_equal(origin_requests(t->origin), 2);
}

/*
 * A client that does not trust sluice's CA (or pins the origin's certificate) aborts the
 * handshake: the connection closes, nothing reaches the origin, and the log says that the
 * client refused sluice's certificate; without splice_pinned it is inspected (and fails)
 * again, and the log says what would splice it.
 */
static void test_inspect_client_refuses_cert(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct itcurl *c;
    char ports[16], url[160], *line;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: allow\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    snprintf(url, sizeof(url), "https://origin.test:%u/pinned", origin_port(t->origin));
    /* Without splice_pinned, the second try is inspected again, and fails again. */
    for (int i = 0; i < 2; i++) {
        c = alpha_curl(t, &ca);
        curl_easy_setopt(c->h, CURLOPT_CAINFO, testca_ca_path(t->ca)); /* not sluice's */
        assert_int_equal(itcurl_perform(c, url), CURLE_PEER_FAILED_VERIFICATION);
        itcurl_free(c);
    }
    line = it_access_line(t, "method=CONNECT", NULL);
    it_assert_access_field(line, "tls", "inspect");
    it_assert_access_field(line, "error", "tls_alert_received");
    free(line);
    for (int i = 0; i < 250 && sluiceproc_access_count(t->env->proxy, "method=CONNECT",
                                                       "tls=inspect", NULL) < 2;
         i++)
        tio_sleep_ms(20);
    assert_int_equal(sluiceproc_access_count(t->env->proxy, "method=CONNECT", "tls=inspect", NULL),
                     2);
    assert_true(sluiceproc_log_wait(t->env->proxy, "refused sluice's certificate", 2000));
    assert_true(sluiceproc_log_wait(t->env->proxy,
                                    "splice_pinned: true in the policy would "
                                    "splice",
                                    2000));
    assert_int_equal(origin_requests(t->origin), 0);
}

/*
 * Sends a ClientHello for origin.test on fd, waits for the server's first flight (bounded
 * by 5 s), and closes the connection without an alert, as a client that pins another
 * certificate may.  Returns the bytes of the flight received.
 */
static size_t hello_then_close(int fd)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    char name[] = "origin.test", buf[8192], *data = NULL;
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    long len;
    ssize_t n;
    size_t got = 0;

    assert_non_null(ssl);
    assert_non_null(rbio);
    assert_non_null(wbio);
    SSL_set_bio(ssl, rbio, wbio);
    assert_int_equal(SSL_set_tlsext_host_name(ssl, name), 1);
    SSL_set_connect_state(ssl);
    assert_true(SSL_do_handshake(ssl) <= 0); /* it waits for the server */
    len = BIO_get_mem_data(wbio, &data);
    assert_true(len > 0);
    assert_int_equal(send(fd, data, (size_t)len, MSG_NOSIGNAL), len);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    /* The flight: the first read, and whatever follows it within 200 ms. */
    if ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
        got += (size_t)n;
        tv.tv_sec = 0;
        tv.tv_usec = 200000;
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        for (int i = 0; i < 20 && (n = recv(fd, buf, sizeof(buf), 0)) > 0; i++)
            got += (size_t)n;
    }
    shutdown(fd, SHUT_RDWR);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return got;
}

/*
 * splice_pinned: a client that refused sluice's certificate (curl with an alert; a raw
 * client that closes after sluice's flight, as another tool) gets that host spliced from
 * then on, with the origin's own certificate, and the log says that it is not inspected.
 */
static void test_inspect_pinned_spliced(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct itcurl *c;
    struct rawclient *rc;
    struct rawresp resp = {0};
    char ports[16], url[160], req[300], *line;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: allow\nsplice_pinned: true\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    snprintf(url, sizeof(url), "https://origin.test:%u/pinned", origin_port(t->origin));
    for (int round = 0; round < 2; round++) {
        c = itcurl_new(t->proxy_port); /* unidentified: no User-Agent of a tool */
        assert_non_null(c);
        curl_easy_setopt(c->h, CURLOPT_CAINFO, testca_ca_path(t->ca)); /* the origin's CA */
        if (round == 0) {
            assert_int_equal(itcurl_perform(c, url), CURLE_PEER_FAILED_VERIFICATION);
            /* curl is done once it sent its alert; sluice notes the refusal when it reads
             * the alert, which can come after the next CONNECT on another worker. */
            assert_true(sluiceproc_log_wait(t->env->proxy,
                                            "from now on sluice splices tool "
                                            "unidentified's tunnels to this host",
                                            5000));
        } else {
            if (itcurl_perform(c, url) != CURLE_OK)
                it_fail_with_log(t, c->errbuf);
            assert_int_equal(itcurl_status(c), 200);
            assert_string_equal(tbuf_str(&c->body), "target=/pinned\n");
        }
        itcurl_free(c);
    }
    line = it_access_line(t, "method=CONNECT", "tls=splice", NULL); /* waits for the log */
    it_assert_access_field(line, "tool", "unidentified");
    free(line);
    assert_true(sluiceproc_log_wait(t->env->proxy,
                                    "from now on sluice splices tool "
                                    "unidentified's tunnels to this host",
                                    2000));
    assert_true(sluiceproc_log_wait(t->env->proxy,
                                    "spliced, not inspected: tool "
                                    "unidentified refused",
                                    2000));
    assert_int_equal(origin_requests(t->origin), 1);

    /* Tool alpha closes after sluice's flight, without an alert: alpha's turn is its own. */
    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test\r\nUser-Agent: alpha/9\r\n\r\n",
             origin_port(t->origin));
    raw_send(rc, req);
    assert_int_equal(rawclient_response(rc, &resp, true, 5000), 200);
    rawresp_free(&resp);
    assert_true(hello_then_close(rc->fd) > 0);
    rawclient_close(rc);
    for (int i = 0;
         i < 250 && !sluiceproc_log_contains(t->env->proxy, "sluice splices tool alpha's"); i++)
        tio_sleep_ms(20);
    assert_true(sluiceproc_log_wait(t->env->proxy, "sluice splices tool alpha's", 2000));
}

/*
 * request_headers (tenant restriction): a host it names is inspected even where the tool's
 * group says splice, and every request to it (keep-alive too) reaches the origin with the
 * organisation's fields, whatever the client sent under those names in any case; the
 * access line and the trail name them.  A client offering only HTTP/2 is refused rather
 * than spliced past them.
 */
static void test_inspect_request_headers(void **state)
{
    struct itcase *t = *state;
    static const char profile[] = "id: alpha\n"
                                  "identify: {user_agents: [\"alpha/*\"]}\n"
                                  "endpoints:\n"
                                  "  - {group: api, hosts: [origin.test], tls: splice}\n";
    struct sluice_ca ca;
    struct itcurl *c;
    struct curl_slist *fields = NULL;
    char ports[16], url[160], *line;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca,
                 "unidentified: allow\n"
                 "request_headers:\n"
                 "  - hosts: [origin.test]\n"
                 "    set: [\"anthropic-allowed-org-ids: org-acme\", \"x-tenant: acme\"]\n",
                 profile, port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    c = alpha_curl(t, &ca);
    fields = curl_slist_append(fields, "Anthropic-Allowed-Org-Ids: org-mine");
    fields = curl_slist_append(fields, "X-TENANT: mine");
    fields = curl_slist_append(fields, "x-tenant: mine-too");
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, fields);
    /* The third spells the host in capitals with a final dot: the same host. */
    for (int i = 0; i < 3; i++) {
        snprintf(url, sizeof(url), "https://%s:%u/r%d", i < 2 ? "origin.test" : "ORIGIN.TEST.",
                 origin_port(t->origin), i);
        if (itcurl_perform(c, url) != CURLE_OK)
            it_fail_with_log(t, c->errbuf);
        assert_int_equal(itcurl_status(c), 200);
    }
    itcurl_free(c);
    curl_slist_free_all(fields);
    assert_int_equal(origin_requests(t->origin), 3);
    for (unsigned i = 0; i < 3; i++) {
        struct tbuf head = {0};
        const char *h;
        assert_true(origin_request(t->origin, i, &head, NULL));
        h = tbuf_str(&head);
        assert_non_null(strstr(h, "\r\nanthropic-allowed-org-ids: org-acme\r\n"));
        assert_non_null(strstr(h, "\r\nx-tenant: acme\r\n"));
        assert_null(strstr(h, "mine"));
        assert_null(strcasestr(strstr(h, "x-tenant: acme") + 1, "x-tenant"));
        tbuf_free(&head);
    }
    line = it_access_line(t, "/r1\"", NULL);
    it_assert_access_field(line, "tls", "inspect");
    it_assert_access_field(line, "set_fields", "anthropic-allowed-org-ids,x-tenant");
    it_assert_access_field(line, "tool", "alpha");
    free(line);

    /* HTTP/2 only: not spliced past the fields, refused. */
    {
        struct rawclient *rc;
        SSL_CTX *ctx;
        bool ok;
        SSL *ssl = h2_only_client(t, "origin.test", &rc, &ctx, &ok);
        assert_false(ok);
        tls_client_close(ssl, ctx, rc);
    }
    for (int i = 0; i < 250 && !sluiceproc_log_contains(t->env->proxy, "cannot be spliced"); i++)
        tio_sleep_ms(20);
    assert_true(sluiceproc_log_wait(t->env->proxy, "cannot be spliced", 2000));

    /* A tunnel to another name (spliced: nothing to set there) whose handshake names the
     * host: refused, or the fields would be left behind. */
    c = alpha_curl(t, &ca);
    snprintf(url, sizeof(url), "origin.test:%u:localhost:%u", origin_port(t->origin),
             origin_port(t->origin));
    fields = curl_slist_append(NULL, url);
    curl_easy_setopt(c->h, CURLOPT_CONNECT_TO, fields);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, testca_ca_path(t->ca)); /* as if spliced */
    snprintf(url, sizeof(url), "https://origin.test:%u/fronted", origin_port(t->origin));
    assert_int_not_equal(itcurl_perform(c, url), CURLE_OK);
    itcurl_free(c);
    curl_slist_free_all(fields);
    line = it_access_line(t, "target=\"localhost:", NULL);
    it_assert_access_field(line, "rule", "sni:tls:must-inspect");
    it_assert_access_field(line, "sni", "origin.test");
    free(line);
    assert_int_equal(origin_requests(t->origin), 3);
}

/*
 * Where every tunnel is inspected, a client offering only HTTP/2 to another name (which
 * would be spliced) with a ClientHello naming a request_headers host is refused: the
 * fields cannot be left behind that way either.
 */
static void test_inspect_request_headers_h2_fronted(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct rawclient *rc;
    SSL_CTX *ctx;
    SSL *ssl;
    char ports[16], *line;
    bool ok;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca,
                 "tls: inspect\nunidentified: allow\n"
                 "request_headers:\n  - {hosts: [origin.test], set: [\"x-tenant: acme\"]}\n",
                 alpha_profile, port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    ssl = h2_only_client(t, "localhost", &rc, &ctx, &ok);
    assert_false(ok);
    tls_client_close(ssl, ctx, rc);
    line = it_access_line(t, "target=\"localhost:", NULL);
    it_assert_access_field(line, "rule", "sni:tls:must-inspect");
    free(line);
    assert_int_equal(origin_requests(t->origin), 0);
}

/*
 * A reload that names a host in request_headers closes the spliced tunnels to it (they
 * cannot carry the fields), with term=KT and the rule tls:must-inspect.
 */
static void test_inspect_request_headers_reload(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct rawclient *rc;
    SSL_CTX *ctx;
    SSL *ssl;
    char ports[16], path[700], buf[64], *line;
    bool ok;
    int n = 1;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "unidentified: allow\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    ssl =
        h2_only_client(t, "origin.test", &rc, &ctx, &ok); /* spliced: the policy inspects nothing */
    assert_true(ok);
    snprintf(path, sizeof(path), "%s/policies/organisation.yaml", t->env->dir);
    assert_int_equal(tio_write_file(path,
                                    "unidentified: allow\n"
                                    "request_headers:\n"
                                    "  - {hosts: [origin.test], set: [\"x-tenant: acme\"]}\n"),
                     0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    /* The tunnel is closed: a read ends (bounded by the socket's 10 s timeout). */
    for (int i = 0; i < 10 && (n = SSL_read(ssl, buf, sizeof(buf))) > 0; i++)
        ;
    assert_true(n <= 0);
    tls_client_close(ssl, ctx, rc);
    line = it_access_line(t, "method=CONNECT", "rule=tls:must-inspect", NULL);
    it_assert_access_field(line, "term", "KT");
    it_assert_access_field(line, "tls", "splice");
    free(line);
}

/*
 * Runs interpreter -e/-c code through sluice run --tool alpha with sluice's CA, expects it
 * to succeed, and the request for path to be recorded as alpha's, inspected.
 */
static void run_as_alpha(struct itcase *t, const struct sluice_ca *ca, const char *interpreter,
                         const char *code, const char *path)
{
    char listen[64], dir[600], want[80], *line;
    const char *const argv[] = {sluiceproc_bin(),
                                "run",
                                "--tool",
                                "alpha",
                                "--listen",
                                listen,
                                "--policy-dir",
                                dir,
                                "--ca-cert",
                                ca->cert,
                                "--",
                                interpreter,
                                strcmp(interpreter, "node") == 0 ? "-e" : "-c",
                                code,
                                NULL};
    int st;

    snprintf(listen, sizeof(listen), "127.0.0.1:%u", t->proxy_port);
    snprintf(dir, sizeof(dir), "%s/policies", t->env->dir); /* start_sluice's */
    st = it_run_command(argv);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(want, sizeof(want), "%s\"", path);
    line = it_access_line(t, want, NULL);
    it_assert_access_field(line, "tool", "alpha");
    it_assert_access_field(line, "tls", "inspect");
    free(line);
}

/*
 * sluice run with the CA: python3's urllib and node's tls, given nothing but the
 * environment run sets (the proxy with the tool's name, SSL_CERT_FILE and
 * NODE_EXTRA_CA_CERTS naming a bundle with sluice's CA), reach the origin through
 * inspection, recorded as the tool with their full URLs.
 */
static void test_inspect_sluice_run(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    char ports[16], cache[600], code[1400];

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n",
                 "id: alpha\nidentify: {proxy_users: [alpha]}\n",
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    /* The bundle goes to the case's directory, not the user's cache. */
    snprintf(cache, sizeof(cache), "%s/cache", t->env->dir);
    assert_int_equal(setenv("XDG_CACHE_HOME", cache, 1), 0);
    snprintf(code, sizeof(code),
             "import urllib.request as u\n"
             "b = u.urlopen('https://origin.test:%u/run-python', timeout=10).read()\n"
             "assert b == b'target=/run-python\\n', b\n",
             origin_port(t->origin));
    run_as_alpha(t, &ca, "python3", code, "/run-python");
    if (access("/usr/bin/node", X_OK) == 0) {
        /* node's own https has no proxy support: CONNECT by hand, then tls.connect with
         * the default CAs, which NODE_EXTRA_CA_CERTS extends. */
        snprintf(code, sizeof(code),
                 "const http = require('http'), tls = require('tls');\n"
                 "const p = new URL(process.env.https_proxy);\n"
                 "const auth = Buffer.from(decodeURIComponent(p.username) + ':' + "
                 "decodeURIComponent(p.password)).toString('base64');\n"
                 "const req = http.request({host: p.hostname, port: p.port, method: 'CONNECT',\n"
                 "  path: 'origin.test:%u', headers: {'Proxy-Authorization': 'Basic ' + auth}});\n"
                 "req.on('connect', (res, sock) => {\n"
                 "  if (res.statusCode !== 200) process.exit(2);\n"
                 "  const s = tls.connect({socket: sock, servername: 'origin.test'}, () =>\n"
                 "    s.write('GET /run-node HTTP/1.1\\r\\nHost: origin.test\\r\\n"
                 "Connection: close\\r\\n\\r\\n'));\n"
                 "  let d = '';\n"
                 "  s.on('data', c => d += c);\n"
                 "  s.on('end', () => process.exit(d.startsWith('HTTP/1.1 200') ? 0 : 3));\n"
                 "  s.on('error', e => { console.error(e.message); process.exit(4); });\n"
                 "});\n"
                 "req.on('error', e => { console.error(e.message); process.exit(5); });\n"
                 "req.end();\n",
                 origin_port(t->origin));
        run_as_alpha(t, &ca, "node", code, "/run-node");
    }
    assert_int_equal(unsetenv("XDG_CACHE_HOME"), 0);
}

/* CPU clock ticks (user and system) process pid has used so far. */
static long cpu_ticks(pid_t pid)
{
    char path[64], *text, *after;
    long utime = 0, stime = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    text = tio_read_file(path, NULL);
    assert_non_null(text);
    after = strrchr(text, ')'); /* the command name may hold spaces */
    assert_non_null(after);
    /* After ") ": state, then fields 4 to 13, then utime and stime (fields 14, 15). */
    assert_int_equal(
        sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime),
        2);
    free(text);
    return utime + stime;
}

/*
 * Opens a CONNECT to origin.test through sluice as tool alpha (as *rc) and starts TLS on it
 * as a client that trusts only sluice's CA; returns the SSL (reads bounded by 10 s), handshake
 * done.
 */
static SSL *inspected_client(struct itcase *t, const struct sluice_ca *ca, struct rawclient **rc,
                             SSL_CTX **ctx)
{
    struct rawresp resp = {0};
    char req[300], server_name[] = "origin.test";
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    SSL *ssl;

    *rc = it_raw(t);
    snprintf(req, sizeof(req),
             "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test\r\nUser-Agent: alpha/3\r\n\r\n",
             origin_port(t->origin));
    raw_send(*rc, req);
    assert_int_equal(rawclient_response(*rc, &resp, true, 5000), 200);
    rawresp_free(&resp);
    *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(*ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(*ctx, ca->cert, NULL), 1);
    SSL_CTX_set_verify(*ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(*ctx);
    assert_non_null(ssl);
    assert_int_equal(setsockopt((*rc)->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    SSL_set_fd(ssl, (*rc)->fd);
    SSL_set_tlsext_host_name(ssl, server_name);
    SSL_set1_host(ssl, "origin.test");
    assert_int_equal(SSL_connect(ssl), 1);
    return ssl;
}

/*
 * Fails unless sluice takes at most 30 clock ticks over the next 1.5 s (a spin would take
 * all 150 at 100 Hz): it waits, and does not spin, while what.
 */
static void assert_waits_without_spin(struct itcase *t, const char *what)
{
    long before = cpu_ticks(sluiceproc_pid(t->env->proxy)), used;

    tio_sleep_ms(1500);
    used = cpu_ticks(sluiceproc_pid(t->env->proxy)) - before;
    if (used > 30)
        fail_msg("sluice used %ld clock ticks in 1.5 s while %s", used, what);
}

/*
 * A client that sends the first bytes of a TLS record inside an inspected connection and
 * stops leaves sluice waiting, not spinning: its CPU over the next 1.5 s stays near none.
 */
static void test_inspect_half_record_waits(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct rawclient *rc;
    char ports[16];
    SSL_CTX *ctx;
    SSL *ssl;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: allow\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    ssl = inspected_client(t, &ca, &rc, &ctx);
    /* Three bytes of an application-data record's header, and nothing more. */
    assert_int_equal(send(rc->fd, "\x17\x03\x03", 3, MSG_NOSIGNAL), 3);
    tio_sleep_ms(200);
    assert_waits_without_spin(t, "a record was half sent");
    tls_client_close(ssl, ctx, rc);
}

/* Answers with a body that ends where the connection does, and closes without close_notify. */
static void close_delimited_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 5000) == 0)
        return;
    (void)oconn_writes(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody-until-close\n");
    SSL_set_quiet_shutdown(c->ssl, 1); /* the close comes without close_notify */
}

/*
 * An origin that ends a close-delimited body by closing without close_notify (as many
 * do): the client gets the whole body and a clean end, not a reset.
 */
static void test_inspect_close_without_notify(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct itcurl *c;
    char ports[16], url[160], *line;

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, close_delimited_handler, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: allow\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    c = alpha_curl(t, &ca);
    snprintf(url, sizeof(url), "https://origin.test:%u/until-close", origin_port(t->origin));
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), "body-until-close\n");
    itcurl_free(c);
    line = it_access_line(t, "/until-close\"", NULL);
    it_assert_access_field(line, "term", "--");
    free(line);
}

/*
 * A refusal is kept for who refused, tool and user: another user of the same tool is
 * still inspected (and, trusting only the origin, still refused), while the user who
 * refused is spliced.
 */
static void test_inspect_pinned_per_user(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    char ports[16], url[160], proxy[96];
    static const char *const users[] = {"alpha", "alpha", "al"};
    static const CURLcode want[] = {CURLE_PEER_FAILED_VERIFICATION, CURLE_OK,
                                    CURLE_PEER_FAILED_VERIFICATION};

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\nsplice_pinned: true\n",
                 "id: alpha\nidentify: {proxy_users: [alpha, al]}\n",
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    snprintf(url, sizeof(url), "https://origin.test:%u/who", origin_port(t->origin));
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        struct itcurl *c = itcurl_new(t->proxy_port);
        CURLcode rc;
        assert_non_null(c);
        snprintf(proxy, sizeof(proxy), "http://%s:x@127.0.0.1:%u", users[i], t->proxy_port);
        curl_easy_setopt(c->h, CURLOPT_PROXY, proxy);
        curl_easy_setopt(c->h, CURLOPT_CAINFO, testca_ca_path(t->ca)); /* the origin's CA */
        rc = itcurl_perform(c, url);
        if (rc != want[i]) {
            fprintf(stderr, "try %zu as %s: curl %d (%s)\n", i, users[i], rc, c->errbuf);
            it_fail_with_log(t, "a refusal was not kept for its own user alone");
        }
        itcurl_free(c);
        /* curl gives up on sending its alert; sluice keeps the refusal when it reads it,
         * and writes the access line just after: the next try waits for that. */
        if (i == 0)
            free(it_access_line(t, "method=CONNECT", "error=tls_alert_received", NULL));
    }
    assert_int_equal(origin_requests(t->origin), 1);
}

/* Answers one request with whether its TLS handshake resumed a session, and closes. */
static void resumed_handler(struct origin_conn *c)
{
    char answer[160];
    bool resumed = SSL_session_reused(c->ssl) == 1;

    if (oconn_read_head(c, 5000) == 0)
        return;
    snprintf(answer, sizeof(answer),
             "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
             resumed ? 11 : 10, resumed ? "resumed=yes" : "resumed=no");
    (void)oconn_writes(c, answer);
}

/*
 * One inspected request in a tunnel of its own to host, as alpha (and proxy user user
 * when not NULL): the status, with the body into body (capacity cap).
 */
static long resumed_get(struct itcase *t, const struct sluice_ca *ca, const char *host,
                        const char *user, char *body, size_t cap)
{
    struct itcurl *c = alpha_curl(t, ca);
    char url[200], proxy[96];
    long status;

    if (user != NULL) {
        snprintf(proxy, sizeof(proxy), "http://%s:x@127.0.0.1:%u", user, t->proxy_port);
        curl_easy_setopt(c->h, CURLOPT_PROXY, proxy);
    }
    snprintf(url, sizeof(url), "https://%s:%u/resumed", host, origin_port(t->origin));
    if (itcurl_perform(c, url) != CURLE_OK)
        it_fail_with_log(t, c->errbuf);
    status = itcurl_status(c);
    snprintf(body, cap, "%s", tbuf_str(&c->body));
    itcurl_free(c);
    return status;
}

/*
 * A new connection to an origin resumes the TLS session an earlier one left, for the same
 * tool and user, host and port only: another user's connection makes a full handshake
 * (a ticket would link the two), and a host name the origin's certificate does not cover
 * still fails verification (a session from origin.test must not skip it).
 */
static void test_inspect_upstream_resumed(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    char ports[16], body[256];

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, resumed_handler, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    assert_int_equal(resumed_get(t, &ca, "origin.test", NULL, body, sizeof(body)), 200);
    assert_string_equal(body, "resumed=no");
    assert_int_equal(resumed_get(t, &ca, "origin.test", NULL, body, sizeof(body)), 200);
    assert_string_equal(body, "resumed=yes");
    /* Handed out once (TLS 1.3): the resumed connection left a fresh one. */
    assert_int_equal(resumed_get(t, &ca, "origin.test", NULL, body, sizeof(body)), 200);
    assert_string_equal(body, "resumed=yes");
    /* Another user of the same tool. */
    assert_int_equal(resumed_get(t, &ca, "origin.test", "bob", body, sizeof(body)), 200);
    assert_string_equal(body, "resumed=no");
    /* The same origin under a name its certificate does not cover. */
    assert_int_equal(resumed_get(t, &ca, "localhost", NULL, body, sizeof(body)), 502);
    assert_non_null(strstr(body, "wrong host"));
    /* Under an address its certificate covers: a host of its own, a full handshake. */
    assert_int_equal(resumed_get(t, &ca, "127.0.0.1", NULL, body, sizeof(body)), 200);
    assert_string_equal(body, "resumed=no");
    assert_int_equal(origin_requests(t->origin), 5);
}

/* A policy that inspects, and no CA: sluice does not start, and says what to set. */
static void test_inspect_needs_ca(void **state)
{
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "tls: inspect\n", NULL, NULL);
    const char *const args[] = {"--policy-dir", dir, "--listen", "127.0.0.1:0", NULL};
    struct it_run r = it_run_sluice(t, args);

    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.output, "ca.cert and ca.key"));
    free(r.output);
}

/* An origin's answer to a WebSocket upgrade (for the key tests send). */
#define WS_101                                                                                     \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"            \
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"

/* Answers a WebSocket upgrade with 101 and a greeting, then echoes what comes. */
static void ws_echo_handler(struct origin_conn *c)
{
    char buf[16384];

    if (oconn_read_head(c, 10000) == 0 ||
        !httpmsg_field_has_token(c->head.data, c->head.len, "Upgrade", "websocket"))
        return;
    if (oconn_writes(c, WS_101 "hello-from-origin") != 0)
        return;
    for (int i = 0; i < 100000 && !origin_stopping(c->origin); i++) {
        ssize_t n = oconn_read(c, buf, sizeof(buf), 10000);

        if (n <= 0 || oconn_write(c, buf, (size_t)n) != 0)
            return;
    }
}

/* Reads exactly len bytes from ssl into buf; false when the stream ends or fails first. */
static bool ssl_read_exact(SSL *ssl, char *buf, size_t len)
{
    size_t got = 0, n;

    for (int i = 0; i < 100000 && got < len; i++) {
        if (SSL_read_ex(ssl, buf + got, len - got, &n) != 1)
            return false;
        got += n;
    }
    return got == len;
}

/* Reads a response head from ssl (up to its blank line, byte by byte) into head. */
static void ssl_read_head(SSL *ssl, char *head, size_t cap)
{
    size_t len = 0;

    while (len + 1 < cap && (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0))
        assert_true(ssl_read_exact(ssl, head + len++, 1));
    head[len] = '\0';
}

/* Sends an upgrade to WebSocket on path as tool alpha; returns the response head. */
static void ws_upgrade(struct itcase *t, SSL *ssl, const char *path, char *head, size_t cap)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: origin.test:%u\r\nUser-Agent: alpha/3\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, origin_port(t->origin));

    assert_int_equal(SSL_write(ssl, req, n), n);
    ssl_read_head(ssl, head, cap);
}

/*
 * WebSocket inside an inspected tunnel: the upgrade is decided like any request inside
 * (the tool's telemetry path gets 403 and never reaches the origin), and an allowed one
 * gets the origin's 101 through, then bytes flow both ways through both TLS sessions:
 * the greeting that came with the 101, then 1 MiB echoed in 64 KiB steps.  The client's
 * close_notify ends the tunnel in order ("--"), and its record names the 101 and the
 * bytes.  A reload that keeps what the tool sends (capture) closes an open WebSocket (KT,
 * rule capture:upgrade), and so does one that denies the host (rule deny-host).
 */
static void test_inspect_websocket(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct rawclient *rc;
    SSL_CTX *ctx;
    SSL *ssl;
    char ports[16], head[2048], *line;
    enum { STEP = 64 * 1024, STEPS = 16 };
    char *out = malloc(STEP), *in = malloc(STEP);

    assert_non_null(out);
    assert_non_null(in);
    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, ws_echo_handler, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));

    ssl = inspected_client(t, &ca, &rc, &ctx);
    ws_upgrade(t, ssl, "/events/ws", head, sizeof(head));
    assert_non_null(strstr(head, "HTTP/1.1 403 "));
    tls_client_close(ssl, ctx, rc);
    assert_int_equal(origin_requests(t->origin), 0);

    ssl = inspected_client(t, &ca, &rc, &ctx);
    ws_upgrade(t, ssl, "/ws", head, sizeof(head));
    if (strncmp(head, "HTTP/1.1 101 ", 13) != 0)
        fail_msg("expected 101, got: %s", head);
    assert_true(httpmsg_field_has_token(head, strlen(head), "Upgrade", "websocket"));
    assert_true(ssl_read_exact(ssl, in, 17));
    assert_memory_equal(in, "hello-from-origin", 17);
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < STEP; i++)
            out[i] = (char)(i * 31 + step);
        assert_int_equal(SSL_write(ssl, out, STEP), STEP);
        assert_true(ssl_read_exact(ssl, in, STEP));
        assert_memory_equal(in, out, STEP);
    }
    assert_int_equal(SSL_shutdown(ssl), 0); /* our close_notify; the tunnel passes it on */
    line = it_access_line(t, "/ws\"", "status=101", NULL);
    it_assert_access_field(line, "tls", "inspect");
    it_assert_access_field(line, "tool", "alpha");
    it_assert_access_field(line, "term", "--");
    {
        char sent[32];
        it_access_field(line, "sent", sent, sizeof(sent));
        if (strtoull(sent, NULL, 10) < (unsigned long long)STEP * STEPS)
            fail_msg("sent=%s is short of the %d bytes echoed: %s", sent, STEP * STEPS, line);
    }
    free(line);
    tls_client_close(ssl, ctx, rc);

    /* A reload that keeps what alpha sends (capture) closes an open WebSocket: its frames
     * could not be kept. */
    ssl = inspected_client(t, &ca, &rc, &ctx);
    ws_upgrade(t, ssl, "/ws-captured", head, sizeof(head));
    assert_non_null(strstr(head, "HTTP/1.1 101 "));
    assert_true(ssl_read_exact(ssl, in, 17));
    {
        char path[700], profile[sizeof(alpha_profile) + 32];
        snprintf(path, sizeof(path), "%s/policies/tools/alpha.yaml", t->env->dir);
        snprintf(profile, sizeof(profile), "%scapture: requests\n", alpha_profile);
        assert_int_equal(tio_write_file(path, profile), 0);
    }
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    assert_true(sluiceproc_log_wait(t->env->proxy, "reloaded: policy generation 2", 5000));
    line = it_access_line(t, "/ws-captured\"", "status=101", NULL);
    it_assert_access_field(line, "rule", "capture:upgrade");
    it_assert_access_field(line, "term", "KT");
    free(line);
    assert_false(ssl_read_exact(ssl, in, 1)); /* closed */
    tls_client_close(ssl, ctx, rc);
    {
        char path[700];
        snprintf(path, sizeof(path), "%s/policies/tools/alpha.yaml", t->env->dir);
        assert_int_equal(tio_write_file(path, alpha_profile), 0);
    }
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    assert_true(sluiceproc_log_wait(t->env->proxy, "reloaded: policy generation 3", 5000));

    /* A ban reaches an open WebSocket: a reload that denies the host closes it. */
    ssl = inspected_client(t, &ca, &rc, &ctx);
    ws_upgrade(t, ssl, "/ws-kept", head, sizeof(head));
    assert_non_null(strstr(head, "HTTP/1.1 101 "));
    assert_true(ssl_read_exact(ssl, in, 17));
    {
        char path[700];
        snprintf(path, sizeof(path), "%s/policies/organisation.yaml", t->env->dir);
        assert_int_equal(tio_write_file(path, "tls: inspect\nunidentified: block\n"
                                              "deny_hosts: [origin.test]\n"),
                         0);
    }
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    assert_true(sluiceproc_log_wait(t->env->proxy, "reloaded: policy generation 4", 5000));
    line = it_access_line(t, "/ws-kept\"", "status=101", NULL);
    it_assert_access_field(line, "decision", "block");
    it_assert_access_field(line, "rule", "deny-host");
    it_assert_access_field(line, "term", "KT");
    free(line);
    assert_false(ssl_read_exact(ssl, in, 1)); /* closed */
    tls_client_close(ssl, ctx, rc);
    free(out);
    free(in);
}

/*
 * A WebSocket client inside an inspected tunnel that sends and never reads, to an origin
 * that echoes: sluice stops reading each side while the other cannot take more, so its
 * memory stays bounded (the relay holds at most about 512 KiB each way; the bound here,
 * 16 MiB, leaves room for the sanitizer's allocator) rather than taking the 64 MiB
 * offered, and the client is held back by TCP.
 */
static void test_inspect_websocket_bounded(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    struct rawclient *rc;
    SSL_CTX *ctx;
    SSL *ssl;
    char ports[16], head[2048];
    enum { STEP = 64 * 1024, OFFER = 64 * 1024 * 1024 };
    char *out = malloc(STEP);
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    size_t sent = 0;
    long before, after;

    assert_non_null(out);
    memset(out, 'w', STEP);
    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, ws_echo_handler, NULL);
    /* A small sanitizer quarantine, so that freed memory leaves RSS (as in it_memory). */
    {
        char *saved = it_asan_small_quarantine();
        start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", alpha_profile,
                     port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
        it_asan_restore(saved);
    }
    ssl = inspected_client(t, &ca, &rc, &ctx);
    ws_upgrade(t, ssl, "/ws", head, sizeof(head));
    assert_non_null(strstr(head, "HTTP/1.1 101 "));
    before = sluiceproc_status_kib(t->env->proxy, "VmRSS");
    assert_int_equal(setsockopt(rc->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
    while (sent < OFFER && SSL_write(ssl, out, STEP) == STEP)
        sent += STEP;
    after = sluiceproc_status_kib(t->env->proxy, "VmRSS");
    if (sent >= OFFER)
        fail_msg("all %d bytes went in while nobody read the echo", OFFER);
    if (after - before > 16 * 1024)
        fail_msg("sluice grew from %ld to %ld KiB with %zu bytes held back", before, after, sent);
    print_message("sent %zu bytes before the client was held back; sluice %ld -> %ld KiB\n", sent,
                  before, after);
    tls_client_close(ssl, ctx, rc);
    free(out);
}

/*
 * Answers a WebSocket upgrade with 101, a greeting and "bye" at once, and ends: with
 * close_notify and the close right behind them, or (while the atomic_int at c->arg is
 * not 0) with the close alone.
 */
static void ws_bye_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    if (atomic_load((atomic_int *)c->arg) != 0)
        SSL_set_quiet_shutdown(c->ssl, 1);
    (void)oconn_writes(c, WS_101 "hello-from-originbye");
}

/*
 * The origin ends a WebSocket right after its 101 (its last bytes, the end and maybe the
 * 101 in one read): the client gets the bytes, then the end as the origin gave it
 * (close_notify; or, when the origin closed without one, a stream that looks cut), while
 * sluice waits without spinning for the client to end its side; then the exchange ends.
 */
static void test_inspect_websocket_origin_ends(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    char ports[16], head[2048], in[32], want[64];
    static atomic_int quiet;

    atomic_store(&quiet, 0);
    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, ws_bye_handler, &quiet);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    for (int round = 0; round < 2; round++) {
        struct rawclient *rc;
        SSL_CTX *ctx;
        SSL *ssl;
        size_t n = 0;
        char *line;
        int r, err;

        atomic_store(&quiet, round);
        ssl = inspected_client(t, &ca, &rc, &ctx);
        snprintf(want, sizeof(want), "/bye-%d", round);
        ws_upgrade(t, ssl, want, head, sizeof(head));
        if (strncmp(head, "HTTP/1.1 101 ", 13) != 0)
            fail_msg("expected 101, got: %s", head);
        assert_true(ssl_read_exact(ssl, in, 20));
        assert_memory_equal(in, "hello-from-originbye", 20);
        r = SSL_read_ex(ssl, in, sizeof(in), &n);
        err = SSL_get_error(ssl, r);
        if (round == 0 && err != SSL_ERROR_ZERO_RETURN)
            fail_msg("round 0: expected close_notify, got SSL error %d", err);
        if (round == 1 && (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_WANT_READ))
            fail_msg("round 1: the origin's cut end came on as %s",
                     err == SSL_ERROR_ZERO_RETURN ? "a close_notify" : "nothing (a wait)");
        /* The client keeps its side open: sluice waits, and does not spin. */
        assert_waits_without_spin(t, "the client kept its side open after the origin's end");
        tls_client_close(ssl, ctx, rc);
        snprintf(want, sizeof(want), "/bye-%d\"", round);
        line = it_access_line(t, want, "status=101", NULL);
        it_assert_access_field(line, "tls", "inspect");
        free(line);
    }
}

/* Byte i of the big body. */
static char big_byte(size_t i)
{
    return (char)('a' + (i * 7 + i / 251) % 26);
}

/*
 * Answers /big-length-KIB or /big-chunked-KIB with that many KiB, with a Content-Length or
 * chunked, all at once, then ends at once with close_notify: the end arrives while the
 * body still waits for a slow client.
 */
static void big_then_close_handler(struct origin_conn *c)
{
    enum { CHUNK = 16 * 1024 };
    bool chunked;
    const char *kib;
    size_t big;
    char *body, head[200];

    if (oconn_read_head(c, 10000) == 0 || (kib = strstr(c->head.data, "/big-")) == NULL)
        return;
    chunked = strncmp(kib, "/big-chunked-", 13) == 0;
    big = (size_t)strtoul(kib + (chunked ? 13 : 12), NULL, 10) * 1024;
    if (big == 0 || big % CHUNK != 0 || (body = malloc(big)) == NULL)
        return;
    for (size_t i = 0; i < big; i++)
        body[i] = big_byte(i);
    if (!chunked) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", big);
        if (oconn_writes(c, head) == 0)
            (void)oconn_write(c, body, big);
    } else if (oconn_writes(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                               "Connection: close\r\n\r\n") == 0) {
        for (size_t off = 0; off < big; off += CHUNK)
            if (oconn_writes(c, "4000\r\n") != 0 || oconn_write(c, body + off, CHUNK) != 0 ||
                oconn_writes(c, "\r\n") != 0)
                break;
        (void)oconn_writes(c, "0\r\n\r\n");
    }
    free(body);
}

/* Gives a client socket a small receive buffer, so that what it has not read waits in
 * sluice rather than in the kernel. */
static int small_rcvbuf(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    int size = 16 * 1024;

    (void)arg;
    (void)purpose;
    return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) == 0 ? CURL_SOCKOPT_OK
                                                                           : CURL_SOCKOPT_ERROR;
}

/*
 * An origin that sends a whole response and its end at once, to a client that reads at
 * 1 MiB/s into a small receive buffer: the end comes while the body waits in sluice for
 * the client (a chunked body is decoded only as far as the client has room), and waits
 * behind it.  The client gets every byte and a clean end, with a Content-Length and
 * chunked; the access line says the exchange ended normally.
 */
static void test_inspect_slow_client_origin_ends(void **state)
{
    struct itcase *t = *state;
    struct sluice_ca ca;
    char ports[16], url[160], path[64];
    /* Sizes in KiB: where the last read (the end with it) leaves bytes behind depends on
     * where the reads fall, so several are tried. */
    const unsigned sizes[] = {2048, 2048, 4096};

    make_sluice_ca(t, &ca);
    it_start_tls_origin(t, big_then_close_handler, NULL);
    start_sluice(t, &ca, "tls: inspect\nunidentified: block\n", alpha_profile,
                 port_text(t->origin, ports, sizeof(ports)), testca_ca_path(t->ca));
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        struct itcurl *c = alpha_curl(t, &ca);
        char *line;
        size_t bad = 0;

        curl_easy_setopt(c->h, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)(8 * 1024 * 1024));
        curl_easy_setopt(c->h, CURLOPT_SOCKOPTFUNCTION, small_rcvbuf);
        snprintf(path, sizeof(path), k == 0 ? "/big-length-%u" : "/big-chunked-%u", sizes[k]);
        snprintf(url, sizeof(url), "https://origin.test:%u%s", origin_port(t->origin), path);
        if (itcurl_perform(c, url) != CURLE_OK)
            it_fail_with_log(t, c->errbuf);
        assert_int_equal(itcurl_status(c), 200);
        if (c->body.len != (size_t)sizes[k] * 1024)
            fail_msg("%s: %zu bytes of %u KiB", path, c->body.len, sizes[k]);
        for (size_t i = 0; i < c->body.len; i++)
            bad += c->body.data[i] != big_byte(i);
        assert_int_equal(bad, 0);
        itcurl_free(c);
        snprintf(url, sizeof(url), "%s\"", path);
        line = it_access_line(t, url, NULL);
        it_assert_access_field(line, "status", "200");
        it_assert_access_field(line, "term", "--");
        free(line);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inspect_curl, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_leading_slashes, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_capture, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_capture_not_spliced, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_upstream_failures, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_sni_mismatch, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_sni_not_a_host_name, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_h2_only_spliced, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_h2_only_refused, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_modes, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_group_with_methods, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_rejudged, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_client_refuses_cert, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_pinned_spliced, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_request_headers, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_request_headers_h2_fronted, it_setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_request_headers_reload, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_sluice_run, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_half_record_waits, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_close_without_notify, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_pinned_per_user, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_websocket, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_websocket_bounded, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_websocket_origin_ends, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_slow_client_origin_ends, it_setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_upstream_resumed, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_inspect_needs_ca, it_setup, it_teardown),
    };

    /* The origins, in this process, write to sockets sluice may have closed: EPIPE, not a
     * signal that ends the run. */
    signal(SIGPIPE, SIG_IGN);
    it_select_cases();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
