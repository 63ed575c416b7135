/*
 * A CONNECT to connect_http_port (80 by default; the origin's port here) is read as plain
 * HTTP, as node's undici sends every http:// request: nothing is dialled for the CONNECT,
 * each request inside is decided and recorded like a proxy request (path rules too, and
 * the tool the CONNECT's credentials name), keep-alive and pipelined; a request for
 * another host, a CONNECT inside, and bytes that are not HTTP (a TLS handshake) are
 * refused; other ports still follow connect_ports, and with connect_http_port 0 the port
 * is an ordinary one.
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
#include "sluiceproc.h"

/* A policy directory: tool alpha (proxy user alpha) with telemetry on /events blocked. */
static void write_policies(struct itcase *t, char *dir, size_t cap)
{
    char path[600];

    snprintf(dir, cap, "%s/policies", t->env->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/tools", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/tools/alpha.yaml", dir);
    assert_int_equal(tio_write_file(path, "id: alpha\n"
                                          "identify: {proxy_users: [alpha]}\n"
                                          "default: allow\n"
                                          "endpoints:\n"
                                          "  - group: events\n"
                                          "    purpose: telemetry\n"
                                          "    hosts: [origin.test]\n"
                                          "    paths: [/events]\n"),
                     0);
    snprintf(path, sizeof(path), "%s/organisation.yaml", dir);
    assert_int_equal(tio_write_file(path, "block_telemetry: true\nunidentified: allow\n"), 0);
}

/* Opens a CONNECT to origin.test:port as proxy user alpha; asserts its 200. */
static struct rawclient *open_tunnel(struct itcase *t, unsigned port)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp resp = {0};
    char req[300];

    /* "alpha:pw" in base64. */
    snprintf(req, sizeof(req),
             "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test:%u\r\n"
             "Proxy-Authorization: Basic YWxwaGE6cHc=\r\n\r\n",
             port, port);
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &resp, true, 5000), 200);
    rawresp_free(&resp);
    return rc;
}

/* Sends one request inside the tunnel; returns its status, the body into *body if given. */
static int inside(struct rawclient *rc, const char *req, struct tbuf *body)
{
    struct rawresp resp = {0};
    int status;

    assert_int_equal(rawclient_sends(rc, req), 0);
    status = rawclient_response(rc, &resp, false, 5000);
    if (body != NULL)
        tbuf_append(body, resp.body.data, resp.body.len);
    rawresp_free(&resp);
    return status;
}

static void test_requests_inside_are_decided(void **state)
{
    struct itcase *t = *state;
    char dir[500], port[8], req[300];
    const char *const args[] = {"--policy-dir", dir, "--connect-http-port", port, NULL};
    struct rawclient *rc;
    struct tbuf body = {0}, seen = {0};
    unsigned before;

    write_policies(t, dir, sizeof(dir));
    it_start_origin(t, origin_handler_simple, NULL);
    snprintf(port, sizeof(port), "%u", (unsigned)origin_port(t->origin));
    it_start_proxy(t, args);
    before = origin_requests(t->origin);
    rc = open_tunnel(t, origin_port(t->origin));
    assert_int_equal(origin_requests(t->origin), before); /* nothing dialled for the CONNECT */

    /* Origin-form, as undici sends it: to the tunnel's host, as alpha. */
    assert_int_equal(inside(rc, "GET /ok?token=S1 HTTP/1.1\r\nHost: origin.test\r\n\r\n", &body),
                     200);
    assert_non_null(strstr(tbuf_str(&body), "target=/ok?token=S1"));
    assert_true(origin_request(t->origin, origin_requests(t->origin) - 1, &seen, NULL));
    snprintf(req, sizeof(req), "Host: origin.test:%s\r\n", port);
    assert_non_null(strstr(tbuf_str(&seen), req));
    it_expect_access(t, "status=200", "tool=alpha", "id=proxy-user", "decision=allow", NULL);
    {
        char want[200];
        snprintf(want, sizeof(want), "target=\"http://origin.test:%s/ok?token=<redacted>\"", port);
        it_expect_access(t, want, NULL);
    }
    /* A path rule holds inside the tunnel: the origin never sees /events. */
    before = origin_requests(t->origin);
    assert_int_equal(inside(rc,
                            "POST /events HTTP/1.1\r\nHost: origin.test\r\n"
                            "Content-Length: 2\r\n\r\nhi",
                            NULL),
                     403);
    assert_int_equal(origin_requests(t->origin), before);
    it_expect_access(t, "status=403", "tool=alpha", "decision=block", "rule=telemetry:events",
                     NULL);
    rawclient_close(rc);
    /* A fragment would let a server that cuts the path at '#' serve /events. */
    rc = open_tunnel(t, origin_port(t->origin));
    assert_int_equal(inside(rc, "GET /events#/../ok HTTP/1.1\r\nHost: origin.test\r\n\r\n", NULL),
                     400);
    assert_int_equal(origin_requests(t->origin), before);
    rawclient_close(rc);

    /* Keep-alive and pipelining: two requests in one write, both answered in order. */
    rc = open_tunnel(t, origin_port(t->origin));
    tbuf_reset(&body);
    assert_int_equal(rawclient_sends(rc, "GET /one HTTP/1.1\r\nHost: origin.test\r\n\r\n"
                                         "GET /two HTTP/1.1\r\nHost: origin.test\r\n\r\n"),
                     0);
    {
        struct rawresp a = {0}, b = {0};
        assert_int_equal(rawclient_response(rc, &a, false, 5000), 200);
        assert_int_equal(rawclient_response(rc, &b, false, 5000), 200);
        assert_non_null(strstr(tbuf_str(&a.body), "target=/one"));
        assert_non_null(strstr(tbuf_str(&b.body), "target=/two"));
        rawresp_free(&a);
        rawresp_free(&b);
    }
    /* Absolute-form for the tunnel's own authority is taken; another host's is not. */
    snprintf(req, sizeof(req), "GET http://origin.test:%s/abs HTTP/1.1\r\nHost: x\r\n\r\n", port);
    assert_int_equal(inside(rc, req, NULL), 200);
    tbuf_reset(&body);
    assert_int_equal(inside(rc, "GET http://de.test/x HTTP/1.1\r\nHost: de.test\r\n\r\n", &body),
                     400);
    assert_non_null(strstr(tbuf_str(&body), "this tunnel goes to origin.test:"));
    rawclient_close(rc);

    /* A CONNECT inside, and TLS where plain HTTP was promised. */
    rc = open_tunnel(t, origin_port(t->origin));
    assert_int_equal(inside(rc, "CONNECT de.test:443 HTTP/1.1\r\nHost: de.test:443\r\n\r\n", NULL),
                     400);
    rawclient_close(rc);
    rc = open_tunnel(t, origin_port(t->origin));
    {
        static const char hello[] = "\x16\x03\x01\x00\x30\x01\x00\x00\x2c\x03\x03";
        struct rawresp resp = {0};
        assert_int_equal(rawclient_send(rc, hello, sizeof(hello) - 1), 0);
        assert_int_equal(rawclient_response(rc, &resp, false, 5000), 400);
        rawresp_free(&resp);
        assert_true(rawclient_wait_closed(rc, 5000));
    }
    rawclient_close(rc);
    /* Another port still follows connect_ports. */
    {
        struct rawclient *other = it_raw(t);
        struct rawresp resp = {0};
        assert_int_equal(
            rawclient_sends(other, "CONNECT origin.test:25 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        assert_int_equal(rawclient_response(other, &resp, true, 5000), 403);
        rawresp_free(&resp);
        rawclient_close(other);
    }
    tbuf_free(&body);
    tbuf_free(&seen);
}

/* With connect_http_port 0 the port is an ordinary one: not in connect_ports, refused. */
static void test_off(void **state)
{
    struct itcase *t = *state;
    char port[8], req[200];
    const char *const args[] = {"--connect-http-port", "0", NULL};
    struct rawclient *rc;
    struct rawresp resp = {0};

    it_start_origin(t, origin_handler_simple, NULL);
    snprintf(port, sizeof(port), "%u", (unsigned)origin_port(t->origin));
    it_start_proxy(t, args);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "CONNECT origin.test:%s HTTP/1.1\r\nHost: x\r\n\r\n", port);
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &resp, true, 5000), 403);
    rawresp_free(&resp);
    rawclient_close(rc);
    it_expect_access(t, "status=403", "rule=connect-ports", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests_inside_are_decided, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_off, it_setup, it_teardown),
    };

    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests_name("integration_httptunnel", tests, NULL, NULL);
}
