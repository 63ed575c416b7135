/*
 * Plain HTTP forwarding through sluice: methods and body framings through libcurl,
 * what the origin and the client see of the rewritten heads (origin-form, Host, hop-by-hop
 * fields, Via), 100-continue, keep-alive on both sides, pipelining, an event-stream
 * trickle, HTTP/1.0 clients, IPv6 and names with several addresses, and the curl tool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "httpmsg.h"
#include "itcommon.h"

/* A GET through libcurl reaches the origin in origin-form and comes back unchanged. */
static void test_get_simple(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    struct tbuf head = {0};
    char url[128];

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    assert_int_equal(itcurl_perform(c, it_url(t, "/hello?x=1", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), "target=/hello?x=1\n");
    assert_true(origin_request(t->origin, 0, &head, NULL));
    assert_true(strncmp(head.data, "GET /hello?x=1 HTTP/1.1\r\n", 25) == 0);
    it_expect_access(t, "method=GET", "status=200", "term=--", NULL);
    tbuf_free(&head);
    itcurl_free(c);
}

/* Answers with hop-by-hop fields the proxy must remove and one it must keep. */
static void hop_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0 || oconn_read_body(c, NULL, 10000) != 0)
        return;
    (void)oconn_respond(c, 200,
                        "Connection: X-Resp-Hop, keep-alive\r\n"
                        "X-Resp-Hop: secret\r\n"
                        "Keep-Alive: timeout=5, max=100\r\n"
                        "Proxy-Connection: keep-alive\r\n"
                        "Trailer: X-Trailer\r\n"
                        "X-End: kept\r\n",
                        "ok\n", 3);
}

/* True when some Via field of head[0..len) mentions "1.1 sluice". */
static bool has_via_sluice(const char *head, size_t len)
{
    unsigned i;
    unsigned n = httpmsg_field_count(head, len, "Via");

    for (i = 0; i < n; i++) {
        char v[256];

        if (httpmsg_field(head, len, "Via", i, v, sizeof(v)) && strstr(v, "1.1 sluice") != NULL)
            return true;
    }
    return false;
}

/*
 * Host is replaced by the target's authority, hop-by-hop fields (Connection and what it
 * names, Proxy-Connection, Keep-Alive, TE, Trailer, Proxy-Authorization) are removed both
 * ways, end-to-end fields are kept, and Via is added both ways.
 */
static void test_header_rewrite(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    struct tbuf head = {0};
    char url[128];
    char v[256];
    char host[64];

    it_start_origin(t, hop_handler, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    itcurl_add_header(c, "Host: wrong.example");
    itcurl_add_header(c, "Connection: X-Hop, keep-alive");
    itcurl_add_header(c, "X-Hop: secret");
    itcurl_add_header(c, "Proxy-Connection: keep-alive");
    itcurl_add_header(c, "Keep-Alive: timeout=5");
    itcurl_add_header(c, "TE: trailers");
    itcurl_add_header(c, "Trailer: X-Trailer");
    itcurl_add_header(c, "Proxy-Authorization: Basic dG9vbDpzZWNyZXQ=");
    itcurl_add_header(c, "X-End: kept");
    assert_int_equal(itcurl_perform(c, it_url(t, "/path?q=1", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), "ok\n");

    /* What the origin received. */
    assert_true(origin_request(t->origin, 0, &head, NULL));
    fprintf(stderr, "origin received:\n%s", tbuf_str(&head));
    assert_true(strncmp(head.data, "GET /path?q=1 HTTP/1.1\r\n", 24) == 0);
    assert_int_equal(httpmsg_field_count(head.data, head.len, "Host"), 1);
    assert_true(httpmsg_field(head.data, head.len, "Host", 0, v, sizeof(v)));
    snprintf(host, sizeof(host), "origin.test:%u", origin_port(t->origin));
    assert_string_equal(v, host);
    assert_int_equal(httpmsg_field_count(head.data, head.len, "X-Hop"), 0);
    assert_false(httpmsg_field_has_token(head.data, head.len, "Connection", "X-Hop"));
    assert_int_equal(httpmsg_field_count(head.data, head.len, "Proxy-Connection"), 0);
    assert_int_equal(httpmsg_field_count(head.data, head.len, "Keep-Alive"), 0);
    assert_int_equal(httpmsg_field_count(head.data, head.len, "TE"), 0);
    assert_int_equal(httpmsg_field_count(head.data, head.len, "Trailer"), 0);
    assert_int_equal(httpmsg_field_count(head.data, head.len, "Proxy-Authorization"), 0);
    assert_true(httpmsg_field(head.data, head.len, "X-End", 0, v, sizeof(v)));
    assert_string_equal(v, "kept");
    assert_true(has_via_sluice(head.data, head.len));

    /* What the client received. */
    fprintf(stderr, "client received:\n%s", tbuf_str(&c->headers));
    assert_int_equal(httpmsg_field_count(c->headers.data, c->headers.len, "X-Resp-Hop"), 0);
    assert_false(itcurl_has_token(c, "Connection", "X-Resp-Hop"));
    assert_int_equal(httpmsg_field_count(c->headers.data, c->headers.len, "Keep-Alive"), 0);
    assert_int_equal(httpmsg_field_count(c->headers.data, c->headers.len, "Proxy-Connection"), 0);
    assert_int_equal(httpmsg_field_count(c->headers.data, c->headers.len, "Trailer"), 0);
    assert_true(itcurl_field(c, "X-End", v, sizeof(v)));
    assert_string_equal(v, "kept");
    assert_true(has_via_sluice(c->headers.data, c->headers.len));
    tbuf_free(&head);
    itcurl_free(c);
}

/* A HEAD response announces a length but has no body; the connection stays usable. */
static void test_head_then_get(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    char url[128];
    long nconn = -1;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    curl_easy_setopt(c->h, CURLOPT_NOBODY, 1L);
    assert_int_equal(itcurl_perform(c, it_url(t, "/head", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    assert_int_equal(c->body.len, 0);
    assert_true(itcurl_field(c, "Content-Length", url, sizeof(url)));
    assert_string_equal(url, "13"); /* "target=/head\n" */
    curl_easy_setopt(c->h, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    assert_int_equal(itcurl_perform(c, it_url(t, "/get", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), "target=/get\n");
    curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &nconn);
    assert_int_equal(nconn, 0);
    it_expect_access(t, "method=HEAD", "status=200", NULL);
    itcurl_free(c);
}

/* Source of an upload: size bytes of a pattern, fed through CURLOPT_READFUNCTION. */
struct upload {
    size_t size;
    size_t sent;
};

/* The byte at offset i of every test upload. */
static char upload_byte(size_t i)
{
    return (char)('a' + (i * 7 + i / 251) % 26);
}

/* CURLOPT_READFUNCTION for struct upload. */
static size_t upload_read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    struct upload *u = arg;
    size_t n = size * nitems;
    size_t i;

    if (n > u->size - u->sent)
        n = u->size - u->sent;
    for (i = 0; i < n; i++)
        buf[i] = upload_byte(u->sent + i);
    u->sent += n;
    return n;
}

/* Checks that body is the upload pattern of length size. */
static void assert_upload_body(const struct tbuf *body, size_t size)
{
    size_t i;

    assert_int_equal(body->len, size);
    for (i = 0; i < size; i++) {
        if (body->data[i] != upload_byte(i))
            fail_msg("body differs at offset %zu", i);
    }
}

/* Runs one POST of size bytes, chunked or with Content-Length, and checks the origin. */
static void run_post(struct itcase *t, size_t size, bool chunked)
{
    struct itcurl *c;
    struct upload u = {.size = size};
    struct tbuf head = {0};
    struct tbuf body = {0};
    char url[128];

    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_READFUNCTION, upload_read_cb);
    curl_easy_setopt(c->h, CURLOPT_READDATA, &u);
    itcurl_add_header(c, "Expect:");
    if (chunked)
        itcurl_add_header(c, "Transfer-Encoding: chunked");
    else
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    assert_int_equal(itcurl_perform(c, it_url(t, "/post", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), "target=/post\n");
    assert_true(origin_request(t->origin, 0, &head, &body));
    assert_true(strncmp(head.data, "POST /post HTTP/1.1\r\n", 21) == 0);
    assert_upload_body(&body, size);
    it_expect_access(t, "method=POST", "status=200", NULL);
    tbuf_free(&head);
    tbuf_free(&body);
    itcurl_free(c);
}

/* POST with a Content-Length body arrives whole. */
static void test_post_content_length(void **state)
{
    struct itcase *t = *state;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    run_post(t, 300000, false);
}

/* POST with a chunked body arrives whole (re-framed or not). */
static void test_post_chunked(void **state)
{
    struct itcase *t = *state;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    run_post(t, 300000, true);
}

/* Sends a chunked response with an extension and a trailer. */
static void chunked_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0 || oconn_read_body(c, NULL, 10000) != 0)
        return;
    (void)oconn_writes(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5;ext=1\r\nhello\r\n"
                          "6\r\n world\r\n"
                          "0\r\nX-Trailer: t\r\n\r\n");
}

/* A chunked response reaches libcurl intact and keeps valid chunked framing on the wire. */
static void test_response_chunked(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    struct rawclient *rc;
    struct rawresp r = {0};
    char url[128];
    char req[256];

    it_start_origin(t, chunked_handler, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    assert_int_equal(itcurl_perform(c, it_url(t, "/chunked", url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), "hello world");
    itcurl_free(c);

    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: origin.test\r\n\r\n",
             it_url(t, "/raw", url, sizeof(url)));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    assert_true(r.complete);
    assert_string_equal(tbuf_str(&r.body), "hello world");
    rawresp_free(&r);
    rawclient_close(rc);
}

/* What the 100-continue origin saw. */
struct continue_state {
    atomic_bool saw_expect;
    atomic_ullong sent_100_ms;
};

/* Sends 100 Continue when asked, then reads the body and answers with its length. */
static void continue_handler(struct origin_conn *c)
{
    struct continue_state *s = c->arg;
    struct tbuf body = {0};
    char text[64];

    if (oconn_read_head(c, 10000) == 0)
        return;
    if (httpmsg_field_has_token(c->head.data, c->head.len, "Expect", "100-continue")) {
        atomic_store(&s->saw_expect, true);
        if (oconn_writes(c, "HTTP/1.1 100 Continue\r\nX-Interim-From: origin\r\n\r\n") != 0)
            return;
        atomic_store(&s->sent_100_ms, tio_now_ms());
    }
    if (oconn_read_body(c, &body, 15000) == 0) {
        int n = snprintf(text, sizeof(text), "got %zu\n", body.len);

        (void)oconn_respond(c, 200, NULL, text, (size_t)n);
    }
    tbuf_free(&body);
}

/*
 * Expect: 100-continue goes to the origin and its 100 comes back (marked by the origin's
 * own field), so the body flows without waiting for libcurl's 10 s fallback.  A proxy that
 * dropped Expect, or answered 100 itself, fails the field checks.
 */
static void test_expect_100_continue(void **state)
{
    struct itcase *t = *state;
    struct continue_state s;
    struct itcurl *c;
    struct upload u = {.size = 200000};
    char url[128];
    uint64_t t0;
    uint64_t elapsed;

    atomic_init(&s.saw_expect, false);
    atomic_init(&s.sent_100_ms, 0);
    it_start_origin(t, continue_handler, &s);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_READFUNCTION, upload_read_cb);
    curl_easy_setopt(c->h, CURLOPT_READDATA, &u);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)u.size);
    curl_easy_setopt(c->h, CURLOPT_EXPECT_100_TIMEOUT_MS, 10000L);
    itcurl_add_header(c, "Expect: 100-continue");
    t0 = tio_now_ms();
    assert_int_equal(itcurl_perform(c, it_url(t, "/upload", url, sizeof(url))), CURLE_OK);
    elapsed = tio_now_ms() - t0;
    fprintf(stderr, "100-continue: %llu ms, origin saw Expect: %s\n", (unsigned long long)elapsed,
            atomic_load(&s.saw_expect) ? "yes" : "no");
    assert_true(atomic_load(&s.saw_expect));
    assert_non_null(strstr(tbuf_str(&c->all_headers), "HTTP/1.1 100 Continue\r\n"));
    assert_non_null(strstr(tbuf_str(&c->all_headers), "X-Interim-From: origin\r\n"));
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), "got 200000\n");
    assert_true(elapsed < 3000);
    itcurl_free(c);
}

/* Several requests on one libcurl handle reuse one client and one upstream connection. */
static void test_keepalive_reuse(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    char url[128];
    int i;
    const int nreq = 5;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    for (i = 0; i < nreq; i++) {
        char path[32];
        char expect[48];
        long nconn = -1;

        snprintf(path, sizeof(path), "/ka%d", i);
        snprintf(expect, sizeof(expect), "target=/ka%d\n", i);
        assert_int_equal(itcurl_perform(c, it_url(t, path, url, sizeof(url))), CURLE_OK);
        assert_int_equal(itcurl_status(c), 200);
        assert_string_equal(tbuf_str(&c->body), expect);
        curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &nconn);
        assert_int_equal(nconn, i == 0 ? 1 : 0);
    }
    fprintf(stderr, "origin accepted %u connections for %d requests\n", origin_accepted(t->origin),
            nreq);
    assert_int_equal(origin_accepted(t->origin), 1);
    itcurl_free(c);
}

/* Three requests written at once come back as three responses, in order. */
static void test_pipelining(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct tbuf req = {0};
    int i;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    for (i = 1; i <= 3; i++)
        tbuf_printf(&req, "GET http://origin.test:%u/p%d HTTP/1.1\r\nHost: origin.test\r\n\r\n",
                    origin_port(t->origin), i);
    rc = it_raw(t);
    assert_int_equal(rawclient_send(rc, req.data, req.len), 0);
    for (i = 1; i <= 3; i++) {
        struct rawresp r = {0};
        char expect[32];

        snprintf(expect, sizeof(expect), "target=/p%d\n", i);
        assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
        assert_string_equal(tbuf_str(&r.body), expect);
        rawresp_free(&r);
    }
    tbuf_free(&req);
    rawclient_close(rc);
}

/* Pipelined requests followed by a half-close all get answers; only the last says close. */
static void test_pipelining_then_half_close(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct tbuf req = {0};
    int i;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    for (i = 1; i <= 3; i++)
        tbuf_printf(&req, "GET http://origin.test:%u/h%d HTTP/1.1\r\nHost: origin.test\r\n\r\n",
                    origin_port(t->origin), i);
    rc = it_raw(t);
    assert_int_equal(rawclient_send(rc, req.data, req.len), 0);
    assert_int_equal(shutdown(rc->fd, SHUT_WR), 0);
    for (i = 1; i <= 3; i++) {
        struct rawresp r = {0};
        char expect[32];

        snprintf(expect, sizeof(expect), "target=/h%d\n", i);
        assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
        assert_string_equal(tbuf_str(&r.body), expect);
        assert_int_equal(rawresp_has_token(&r, "Connection", "close"), i == 3);
        rawresp_free(&r);
    }
    assert_true(rawclient_wait_closed(rc, 5000));
    tbuf_free(&req);
    rawclient_close(rc);
}

/*
 * A POST whose body is whole, followed at once by a half-close, is forwarded and answered
 * whatever step sluice is at when the end arrives (resolving through the DNS stub, or
 * from the hosts file); one whose body stops short is closed without an answer, as the
 * client's doing (term C).
 */
static void test_body_then_half_close(void **state)
{
    static const char *const bodies[] = {
        "Content-Length: 5\r\n\r\nhello",
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    };
    struct itcase *t = *state;
    char req[512];

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    assert_int_equal(dnsstub_add_a(t->env->dns, "stub.test", "127.0.0.1"), 0);
    for (size_t i = 0; i < 2 * sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct rawclient *rc = it_raw(t);
        struct rawresp r = {0};
        struct tbuf body = {0};
        const char *host = i % 2 == 0 ? "stub.test" : "origin.test";

        snprintf(req, sizeof(req), "POST http://%s:%u/p%zu HTTP/1.1\r\nHost: %s\r\n%s", host,
                 origin_port(t->origin), i, host, bodies[i / 2]);
        assert_int_equal(rawclient_sends(rc, req), 0);
        assert_int_equal(shutdown(rc->fd, SHUT_WR), 0);
        assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
        rawresp_free(&r);
        assert_true(origin_request(t->origin, origin_requests(t->origin) - 1, NULL, &body));
        assert_string_equal(tbuf_str(&body), "hello");
        tbuf_free(&body);
        rawclient_close(rc);
    }
    for (size_t i = 0; i < 2; i++) {
        struct rawclient *rc = it_raw(t);
        struct rawresp r = {0};
        char *line;

        snprintf(req, sizeof(req),
                 "POST http://stub.test:%u/cut%zu HTTP/1.1\r\nHost: stub.test\r\n%s",
                 origin_port(t->origin), i,
                 i == 0 ? "Content-Length: 50\r\n\r\nhello"
                        : "Transfer-Encoding: chunked\r\n\r\n5\r\nhel");
        assert_int_equal(rawclient_sends(rc, req), 0);
        assert_int_equal(shutdown(rc->fd, SHUT_WR), 0);
        assert_int_equal(rawclient_response(rc, &r, false, 5000), -1); /* closed, no answer */
        rawresp_free(&r);
        snprintf(req, sizeof(req), "/cut%zu\"", i);
        line = it_access_line(t, req, NULL);
        it_assert_access_field(line, "status", "0");
        it_assert_access_field(line, "term", "CH");
        free(line);
        rawclient_close(rc);
    }
}

/* Times of the two event-stream writes. */
struct trickle_state {
    atomic_ullong first_sent_ms;
    atomic_ullong second_sent_ms;
};

/* Writes one event, waits a second, writes another. */
static void trickle_handler(struct origin_conn *c)
{
    struct trickle_state *s = c->arg;

    if (oconn_read_head(c, 10000) == 0)
        return;
    if (oconn_writes(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"
                        "b\r\ndata: one\n\n\r\n") != 0)
        return;
    atomic_store(&s->first_sent_ms, tio_now_ms());
    if (!oconn_sleep(c, 2000))
        return;
    atomic_store(&s->second_sent_ms, tio_now_ms());
    (void)oconn_writes(c, "b\r\ndata: two\n\n\r\n0\r\n\r\n");
}

/* The first event reaches the client before the second one is even written. */
static void test_event_stream_trickle(void **state)
{
    struct itcase *t = *state;
    struct trickle_state s;
    struct itcurl *c;
    char url[128];
    uint64_t first_sent;
    uint64_t second_sent;

    atomic_init(&s.first_sent_ms, 0);
    atomic_init(&s.second_sent_ms, 0);
    it_start_origin(t, trickle_handler, &s);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    assert_int_equal(itcurl_perform(c, it_url(t, "/events", url, sizeof(url))), CURLE_OK);
    assert_string_equal(tbuf_str(&c->body), "data: one\n\ndata: two\n\n");
    first_sent = atomic_load(&s.first_sent_ms);
    second_sent = atomic_load(&s.second_sent_ms);
    fprintf(stderr, "first event: sent at +0, received at +%lld ms; second sent at +%lld ms\n",
            (long long)(c->first_body_ms - first_sent), (long long)(second_sent - first_sent));
    assert_true(c->first_body_ms != 0);
    assert_true(c->first_body_ms < second_sent);
    /* Well before the second (2 s later), with room for a loaded machine (CI runs two
     * suites at once on two cores). */
    assert_true(c->first_body_ms - first_sent < 1500);
    itcurl_free(c);
}

/* An HTTP/1.0 client gets a de-chunked, close-delimited body and Connection: close. */
static void test_http10_client(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256];

    it_start_origin(t, chunked_handler, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/old HTTP/1.0\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    fprintf(stderr, "HTTP/1.0 client got:\n%s", tbuf_str(&r.head));
    assert_false(r.chunked);
    assert_true(rawresp_has_token(&r, "Connection", "close"));
    assert_string_equal(tbuf_str(&r.body), "hello world");
    assert_true(rawclient_wait_closed(rc, 5000));
    rawresp_free(&r);
    rawclient_close(rc);
}

/* Answers in HTTP/1.0 and closes. */
static void http10_origin_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    (void)oconn_writes(c, "HTTP/1.0 200 Fine\r\nContent-Length: 3\r\n\r\nold");
}

/* An HTTP/1.0 origin's status line is re-emitted as HTTP/1.1. */
static void test_http10_origin(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256];

    it_start_origin(t, http10_origin_handler, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/ HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    assert_true(strncmp(r.head.data, "HTTP/1.1 200 Fine\r\n", 19) == 0);
    assert_string_equal(tbuf_str(&r.body), "old");
    rawresp_free(&r);
    rawclient_close(rc);
}

/* GETs url through the proxy with libcurl and expects the simple handler's answer. */
static void get_expect(struct itcase *t, const char *url, const char *path)
{
    struct itcurl *c = itcurl_new(t->proxy_port);
    char expect[64];
    CURLcode rc;

    assert_non_null(c);
    snprintf(expect, sizeof(expect), "target=%s\n", path);
    rc = itcurl_perform(c, url);
    if (rc != CURLE_OK || itcurl_status(c) != 200)
        fprintf(stderr, "GET %s: curl %d (%s), status %ld\n%s\n", url, rc, c->errbuf,
                itcurl_status(c), tbuf_str(&c->body));
    assert_int_equal(rc, CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), expect);
    itcurl_free(c);
}

/*
 * dual.test has ::1 then 127.0.0.1: each address is tried in turn, so an origin on only
 * one of them is reached either way; IPv6 names and literals work too.
 */
static void test_each_address_tried(void **state)
{
    struct itcase *t = *state;
    struct origin_opts o6 = {.handler = origin_handler_simple, .no_ipv4 = true, .ipv6 = true};
    char url[128];

    it_start_origin(t, origin_handler_simple, NULL);
    t->origin2 = origin_start(&o6);
    assert_non_null(t->origin2);
    it_start_proxy(t, NULL);
    snprintf(url, sizeof(url), "http://dual.test:%u/v4", origin_port(t->origin));
    get_expect(t, url, "/v4");
    snprintf(url, sizeof(url), "http://dual.test:%u/v6", origin_port6(t->origin2));
    get_expect(t, url, "/v6");
    snprintf(url, sizeof(url), "http://origin6.test:%u/name6", origin_port6(t->origin2));
    get_expect(t, url, "/name6");
    snprintf(url, sizeof(url), "http://[::1]:%u/literal6", origin_port6(t->origin2));
    get_expect(t, url, "/literal6");
}

/* Runs the curl tool (from PATH) with argv, stdout to out_path; returns its wait status. */
static int run_curl_tool(const char *const argv[], const char *out_path)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    uint64_t end;
    int st = -1;
    int rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)(uintptr_t)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    end = tio_now_ms() + 30000;
    for (int i = 0; i < TIO_MAX_ITER; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid)
            return st;
        if ((r == -1 && errno != EINTR) || tio_now_ms() >= end)
            break;
        tio_sleep_ms(10);
    }
    /* Still running: SIGTERM, a bounded wait, then SIGKILL. */
    (void)kill(pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        tio_sleep_ms(10);
    }
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, &st, 0);
    return -1;
}

/* The curl command-line tool, as a user would run it, gets a page through the proxy. */
static void test_curl_tool(void **state)
{
    struct itcase *t = *state;
    char proxy[64];
    char url[128];
    char out[512];
    char code[512];
    char *text;
    int st;

    testenv_path(t->env, "curl.out", out, sizeof(out));
    testenv_path(t->env, "curl.code", code, sizeof(code));
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%u", t->proxy_port);
    {
        const char *const argv[] = {"curl",
                                    "-q",
                                    "-sS",
                                    "--max-time",
                                    "20",
                                    "-x",
                                    proxy,
                                    "--noproxy",
                                    "",
                                    "-o",
                                    out,
                                    "-w",
                                    "%{http_code}",
                                    it_url(t, "/cli", url, sizeof(url)),
                                    NULL};

        st = run_curl_tool(argv, code);
    }
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    text = tio_read_file(code, NULL);
    assert_non_null(text);
    assert_string_equal(text, "200");
    free(text);
    text = tio_read_file(out, NULL);
    assert_non_null(text);
    assert_string_equal(text, "target=/cli\n");
    free(text);
    it_expect_access(t, "method=GET", "status=200", "/cli", NULL);
}

/*
 * Serves one request as keep-alive, then, 200 ms later, ends the idle connection (a FIN
 * both ways) and counts an event, so the test knows the upstream is stale.
 */
static void oneshot_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0 || oconn_read_body(c, NULL, 10000) != 0)
        return;
    if (oconn_respond(c, 200, NULL, "one\n", 4) != 0)
        return;
    (void)oconn_sleep(c, 200);
    (void)shutdown(c->fd, SHUT_RDWR);
    origin_event(c->origin);
}

/* An upstream that closed its idle keep-alive connection is not reused: no spurious 502. */
static void test_stale_upstream_not_reused(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    char url[128];
    int i;

    it_start_origin(t, oneshot_handler, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    for (i = 0; i < 3; i++) {
        CURLcode rc = itcurl_perform(c, it_url(t, "/stale", url, sizeof(url)));

        if (rc != CURLE_OK || itcurl_status(c) != 200)
            fprintf(stderr, "request %d: curl %d, status %ld: %s\n", i, rc, itcurl_status(c),
                    tbuf_str(&c->body));
        assert_int_equal(rc, CURLE_OK);
        assert_int_equal(itcurl_status(c), 200);
        assert_string_equal(tbuf_str(&c->body), "one\n");
        /* The pooled upstream is closed by the origin before the next request goes. */
        assert_true(origin_wait_events(t->origin, (unsigned)i + 1, 5000));
    }
    assert_int_equal(origin_accepted(t->origin), 3);
    itcurl_free(c);
}

/* What the origin of an aborted download saw. */
struct abort_state {
    atomic_bool closed_seen; /* the proxy closed the upstream connection */
};

/* Sends 1 MiB of a 10 MiB body, then waits for the proxy to close. */
static void abort_handler(struct origin_conn *c)
{
    struct abort_state *s = c->arg;
    static char part[1 << 20];

    if (oconn_read_head(c, 10000) == 0)
        return;
    memset(part, 'q', sizeof(part));
    if (oconn_writes(c, "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n") != 0)
        return;
    (void)oconn_write(c, part, sizeof(part));
    if (oconn_wait_close(c, 8000))
        atomic_store(&s->closed_seen, true);
}

/* A client that goes away mid-body: the upstream is closed and the proxy keeps serving. */
static void test_client_abort_mid_body(void **state)
{
    struct itcase *t = *state;
    struct abort_state s;
    struct origin_opts o = {.handler = abort_handler, .arg = &s};
    struct rawclient *rc;
    struct tbuf got = {0};
    char req[256];
    uint64_t end;

    atomic_init(&s.closed_seen, false);
    it_start_origin(t, origin_handler_simple, NULL);
    t->origin2 = origin_start(&o);
    assert_non_null(t->origin2);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/abort HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin2));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_true(rawclient_read_exact(rc, &got, 100000, 10000) == 100000);
    rawclient_close(rc);
    end = tio_now_ms() + 5000;
    for (int i = 0; i < 1000 && !atomic_load(&s.closed_seen) && tio_now_ms() < end; i++)
        tio_sleep_ms(20);
    assert_true(atomic_load(&s.closed_seen));
    it_expect_access(t, "/abort", "term=CD", NULL);
    it_assert_serves(t);
    tbuf_free(&got);
}

/* Answers 413 at once, before the body, and resets the connection. */
static void early_reset_handler(struct origin_conn *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (oconn_read_head(c, 10000) == 0)
        return;
    (void)oconn_writes(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n");
    oconn_sleep(c, 100);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/*
 * An origin that answers before the request body is in and then resets the connection:
 * the client gets the answer and the connection is closed at once (the rest of its body
 * has nowhere to go), not left until a timeout.
 */
static void test_early_answer_then_reset(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256], chunk[65536];

    memset(chunk, 'b', sizeof(chunk));
    it_start_origin(t, early_reset_handler, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "POST http://origin.test:%u/upload HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 67108864\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_send(rc, chunk, sizeof(chunk)), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 5000), 413);
    rawresp_free(&r);
    /* More body after the reset: it finds no upstream, and the connection ends. */
    for (int i = 0; i < 16 && send(rc->fd, chunk, sizeof(chunk), MSG_NOSIGNAL | MSG_DONTWAIT) > 0;
         i++)
        tio_sleep_ms(20);
    assert_true(rawclient_wait_closed(rc, 5000));
    rawclient_close(rc);
    it_expect_access(t, "/upload", "status=413", NULL);
}

/*
 * Sends a GET of path to the listener at ip:port and checks the answer and its access
 * line's client=: "ip:port" (IPv6 in brackets) of the client socket itself.
 */
static void get_and_expect_client(struct itcase *t, const char *ip, uint16_t port, const char *path)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct rawclient *rc = rawclient_connect(ip, port, 5000);
    struct rawresp r = {0};
    char req[256], addr[INET6_ADDRSTRLEN], want[80], got[80], expect_body[80], *line;

    assert_non_null(rc);
    snprintf(req, sizeof(req), "GET http://origin.test:%u%s HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin), path);
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    snprintf(expect_body, sizeof(expect_body), "target=%s\n", path);
    assert_string_equal(tbuf_str(&r.body), expect_body);
    assert_int_equal(getsockname(rc->fd, (struct sockaddr *)&ss, &sslen), 0);
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
        snprintf(want, sizeof(want), "[%s]:%u", addr, ntohs(sin6->sin6_port));
    } else {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
        snprintf(want, sizeof(want), "%s:%u", addr, ntohs(sin->sin_port));
    }
    snprintf(req, sizeof(req), "%s\"", path);
    line = it_access_line(t, req, NULL);
    it_assert_access_field(line, "status", "200");
    it_access_field(line, "client", got, sizeof(got));
    if (strcmp(got, want) != 0)
        fail_msg("client is '%s', expected '%s'", got, want);
    free(line);
    rawresp_free(&r);
    rawclient_close(rc);
}

/* Two listeners, one IPv6: both in the ready file, both serve, and each access line
 * names its client's address and port. */
static void test_ipv6_and_two_listeners(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--listen", "127.0.0.1:0", "--listen", "[::1]:0", NULL};

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    assert_int_equal(sluiceproc_naddrs(t->env->proxy), 2);
    fprintf(stderr, "ready file: %s and %s\n", sluiceproc_addr(t->env->proxy, 0),
            sluiceproc_addr(t->env->proxy, 1));
    assert_true(strncmp(sluiceproc_addr(t->env->proxy, 0), "127.0.0.1:", 10) == 0);
    assert_true(strncmp(sluiceproc_addr(t->env->proxy, 1), "[::1]:", 6) == 0);
    it_assert_serves(t);
    get_and_expect_client(t, "::1", sluiceproc_port(t->env->proxy, 1), "/v6client");
    get_and_expect_client(t, "127.0.0.1", sluiceproc_port(t->env->proxy, 0), "/v4client");
}

/* Bytes from the network are escaped in the access log: a quote and a backslash. */
static void test_access_log_escapes(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256];

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/q\"x\\y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    assert_string_equal(tbuf_str(&r.body), "target=/q\"x\\y\n");
    it_expect_access(t, "/q\\\"x\\\\y\"", "status=200", NULL);
    rawresp_free(&r);
    rawclient_close(rc);
}

/* Answers 103 Early Hints before the 200, then serves like the simple handler. */
static void early_hints_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    if (oconn_writes(c, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n") != 0)
        return;
    origin_handler_simple(c);
}

/* An interim 103 does not end the exchange: the client gets the final 200 and can go on. */
static void test_interim_103(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256];
    int st;
    int i;

    it_start_origin(t, early_hints_handler, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/hints HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    for (i = 0, st = 103; i < 3 && st == 103; i++)
        st = rawclient_response(rc, &r, false, 10000);
    assert_int_equal(st, 200);
    assert_string_equal(tbuf_str(&r.body), "ok\n");
    snprintf(req, sizeof(req), "GET http://origin.test:%u/next HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    assert_string_equal(tbuf_str(&r.body), "target=/next\n");
    rawresp_free(&r);
    rawclient_close(rc);
}

/* Answers HEAD with a chunked head, /204 and /304 without bodies, others like simple. */
static void bodyless_handler(struct origin_conn *c)
{
    int i;

    for (i = 0; i < 100 && !origin_stopping(c->origin); i++) {
        const char *resp;

        if (oconn_read_head(c, 10000) == 0 || oconn_read_body(c, NULL, 10000) != 0)
            return;
        if (strncmp(c->head.data, "HEAD ", 5) == 0)
            resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        else if (strstr(c->head.data, "/204 ") != NULL)
            resp = "HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n";
        else if (strstr(c->head.data, "/304 ") != NULL)
            resp = "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n";
        else
            resp = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nend\n";
        if (oconn_writes(c, resp) != 0)
            return;
    }
}

/* HEAD (even with a chunked head), 204 and 304 have no body; the connection goes on. */
static void test_bodyless_responses(void **state)
{
    struct itcase *t = *state;
    static const char *const paths[] = {"/head", "/204", "/304", "/end"};
    static const int codes[] = {200, 204, 304, 200};
    struct rawclient *rc;
    struct rawresp r = {0};
    int i;

    it_start_origin(t, bodyless_handler, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    for (i = 0; i < 4; i++) {
        char req[256];

        snprintf(req, sizeof(req), "%s http://origin.test:%u%s HTTP/1.1\r\nHost: x\r\n\r\n",
                 i == 0 ? "HEAD" : "GET", origin_port(t->origin), paths[i]);
        assert_int_equal(rawclient_sends(rc, req), 0);
        assert_int_equal(rawclient_response(rc, &r, i == 0, 5000), codes[i]);
        if (i < 3)
            assert_int_equal(r.body.len, 0);
    }
    assert_string_equal(tbuf_str(&r.body), "end\n");
    rawresp_free(&r);
    rawclient_close(rc);
}

/* Answers with a body delimited by closing the connection. */
static void close_delimited_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    (void)oconn_writes(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
    (void)oconn_sleep(c, 100);
    (void)oconn_writes(c, "until the end\n");
}

/* A close-delimited response reaches an HTTP/1.1 client whole and well framed. */
static void test_close_delimited_response(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    struct rawclient *rc;
    struct rawresp r = {0};
    char url[128];
    char req[256];

    it_start_origin(t, close_delimited_handler, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    assert_int_equal(itcurl_perform(c, it_url(t, "/cd", url, sizeof(url))), CURLE_OK);
    assert_string_equal(tbuf_str(&c->body), "until the end\n");
    itcurl_free(c);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
             it_url(t, "/cd2", url, sizeof(url)));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    assert_true(r.complete);
    assert_string_equal(tbuf_str(&r.body), "until the end\n");
    rawresp_free(&r);
    rawclient_close(rc);
}

/*
 * Answers /gzip-chunked with "gzip, chunked", /chunked-gzip with "chunked, gzip" until
 * close, and /gzip with "gzip" until close.
 */
static void coded_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    if (strstr(c->head.data, "/gzip-chunked ") != NULL)
        (void)oconn_writes(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                              "5\r\nGZIP!\r\n0\r\n\r\n");
    else if (strstr(c->head.data, "/chunked-gzip ") != NULL)
        (void)oconn_writes(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                              "opaque");
    else
        (void)oconn_writes(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nGZIP!");
}

/* Sends GET path as HTTP/1.minor on a new connection and reads the response into r. */
static int coded_get(struct itcase *t, const char *path, int minor, struct rawresp *r)
{
    struct rawclient *rc = it_raw(t);
    char req[256];
    int st;

    snprintf(req, sizeof(req), "GET http://origin.test:%u%s HTTP/1.%d\r\nHost: x\r\n\r\n",
             origin_port(t->origin), path, minor);
    assert_int_equal(rawclient_sends(rc, req), 0);
    st = rawclient_response(rc, r, false, 10000);
    rawclient_close(rc);
    return st;
}

/*
 * A transfer coding besides chunked stays with the body it was applied to: "gzip, chunked"
 * is re-chunked and still says gzip, "gzip" alone and "chunked, gzip" are passed on until
 * close with their label unchanged, and an
 * HTTP/1.0 client, which cannot receive a transfer coding, gets a 502 that says so.
 */
static void test_transfer_codings_kept(void **state)
{
    struct itcase *t = *state;
    struct rawresp r = {0};
    char te[128], type[64];

    it_start_origin(t, coded_handler, NULL);
    it_start_proxy(t, NULL);
    assert_int_equal(coded_get(t, "/gzip-chunked", 1, &r), 200);
    assert_true(rawresp_field(&r, "Transfer-Encoding", te, sizeof(te)));
    assert_string_equal(te, "gzip, chunked");
    assert_true(r.chunked);
    assert_string_equal(tbuf_str(&r.body), "GZIP!");
    rawresp_free(&r);

    assert_int_equal(coded_get(t, "/gzip", 1, &r), 200);
    assert_true(rawresp_field(&r, "Transfer-Encoding", te, sizeof(te)));
    assert_string_equal(te, "gzip");
    assert_true(rawresp_has_token(&r, "Connection", "close"));
    assert_string_equal(tbuf_str(&r.body), "GZIP!");
    rawresp_free(&r);

    /* Chunked, then gzipped: the bytes are passed on as they came, under their own label. */
    assert_int_equal(coded_get(t, "/chunked-gzip", 1, &r), 200);
    assert_true(rawresp_field(&r, "Transfer-Encoding", te, sizeof(te)));
    assert_string_equal(te, "chunked, gzip");
    assert_true(rawresp_has_token(&r, "Connection", "close"));
    assert_string_equal(tbuf_str(&r.body), "opaque");
    rawresp_free(&r);

    assert_int_equal(coded_get(t, "/gzip-chunked", 0, &r), 502);
    it_assert_sluice_error(&r, 502, type, sizeof(type));
    assert_string_equal(type, "http_response_transfer_coding");
    rawresp_free(&r);
}

#define SLOW_READER_BYTES (16u * 1024 * 1024)

/* Sends a large close-delimited body as fast as the proxy takes it. */
static void big_close_delimited_handler(struct origin_conn *c)
{
    static char block[64 * 1024];

    if (oconn_read_head(c, 10000) == 0)
        return;
    if (oconn_writes(c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n") != 0)
        return;
    memset(block, 'z', sizeof(block));
    for (size_t sent = 0; sent < SLOW_READER_BYTES; sent += sizeof(block))
        if (oconn_write(c, block, sizeof(block)) != 0)
            return;
}

/* A client that stops reading for longer than the linger bound, in the middle of a large
 * close-delimited response, still gets all of it.  (Back-pressure keeps sluice from seeing
 * the origin's EOF while the client stalls, so this guards the relay as a whole; the
 * progress-bounded flush of the last bytes is not forced by it.) */
static void test_slow_reader_gets_whole_close_delimited_body(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    char url[128], req[256], buf[65536];
    uint64_t total = 0, t0;
    ssize_t n;

    it_start_origin(t, big_close_delimited_handler, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
             it_url(t, "/big", url, sizeof(url)));
    assert_int_equal(rawclient_sends(rc, req), 0);
    usleep(3500 * 1000); /* longer than the 2 s linger bound */
    t0 = tio_now_ms();
    while ((n = tio_read_some(rc->fd, buf, sizeof(buf), 5000)) > 0 && tio_now_ms() - t0 < 60000)
        total += (uint64_t)n;
    /* The head is a few dozen bytes; the body must be complete. */
    assert_true(total > SLOW_READER_BYTES);
    assert_true(total < SLOW_READER_BYTES + 512);
    rawclient_close(rc);
}

/* A chunked request with an extension and a trailer: body intact, framing consumed exactly. */
static void test_chunked_request_trailer(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    struct tbuf body = {0};
    char req[512];

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "POST http://origin.test:%u/tr HTTP/1.1\r\nHost: x\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"
             "5;ext=\"v\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
             "GET http://origin.test:%u/after-trailer HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin), origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    assert_string_equal(tbuf_str(&r.body), "target=/tr\n");
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    assert_string_equal(tbuf_str(&r.body), "target=/after-trailer\n");
    assert_true(origin_request(t->origin, 0, NULL, &body));
    assert_string_equal(tbuf_str(&body), "hello world");
    tbuf_free(&body);
    rawresp_free(&r);
    rawclient_close(rc);
}

/* Answers every request with Connection: close, then closes. */
static void close_each_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0 || oconn_read_body(c, NULL, 10000) != 0)
        return;
    (void)oconn_respond(c, 200, "Connection: close\r\n", "closed\n", 7);
}

/* An origin's Connection: close does not close the client's keep-alive connection. */
static void test_origin_close_client_keepalive(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    char url[128];
    int i;

    it_start_origin(t, close_each_handler, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    for (i = 0; i < 3; i++) {
        long nconn = -1;

        assert_int_equal(itcurl_perform(c, it_url(t, "/c", url, sizeof(url))), CURLE_OK);
        assert_int_equal(itcurl_status(c), 200);
        assert_string_equal(tbuf_str(&c->body), "closed\n");
        curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &nconn);
        assert_int_equal(nconn, i == 0 ? 1 : 0);
    }
    assert_int_equal(origin_accepted(t->origin), 3);
    itcurl_free(c);
}

/* 100 requests at once through libcurl's multi interface all succeed. */
static void test_concurrent_requests(void **state)
{
    struct itcase *t = *state;
    enum { NREQ = 100 };
    struct itcurl *c[NREQ] = {NULL};
    CURLM *m = curl_multi_init();
    char url[128];
    int running = 1;
    int ok = 0;
    int i;
    uint64_t end;

    assert_non_null(m);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    for (i = 0; i < NREQ; i++) {
        char path[32];

        c[i] = itcurl_new(t->proxy_port);
        if (c[i] == NULL)
            break;
        snprintf(path, sizeof(path), "/many/%d", i);
        curl_easy_setopt(c[i]->h, CURLOPT_URL, it_url(t, path, url, sizeof(url)));
        curl_easy_setopt(c[i]->h, CURLOPT_PRIVATE, c[i]);
        curl_multi_add_handle(m, c[i]->h);
    }
    end = tio_now_ms() + 30000;
    for (int iter = 0; iter < 100000 && running > 0 && tio_now_ms() < end; iter++) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (running > 0)
            (void)curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (i = 0; i < NREQ && c[i] != NULL; i++) {
        char expect[32];

        snprintf(expect, sizeof(expect), "target=/many/%d\n", i);
        if (itcurl_status(c[i]) == 200 && strcmp(tbuf_str(&c[i]->body), expect) == 0)
            ok++;
        curl_multi_remove_handle(m, c[i]->h);
        itcurl_free(c[i]);
    }
    curl_multi_cleanup(m);
    fprintf(stderr, "%d of %d concurrent requests succeeded\n", ok, NREQ);
    assert_int_equal(ok, NREQ);
}

/* The access line counts sent= (request bytes) and received= (bytes written to the client). */
static void test_access_log_byte_counts(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct tbuf all = {0};
    char req[256];
    char want[64];
    int n;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    n = snprintf(req, sizeof(req),
                 "POST http://origin.test:%u/count HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 10\r\nConnection: close\r\n\r\n0123456789",
                 origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    /* Connection: close: everything until the close is what sluice wrote to us. */
    (void)rawclient_read_exact(rc, &all, 1 << 20, 10000);
    assert_true(rc->eof);
    assert_true(strncmp(tbuf_str(&all), "HTTP/1.1 200 ", 13) == 0);
    snprintf(want, sizeof(want), "sent=%d received=%zu ", n, all.len);
    it_expect_access(t, "/count", want, NULL);
    tbuf_free(&all);
    rawclient_close(rc);
}

/* Runs the cases, each with its own environment and proxy. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_simple, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_header_rewrite, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_head_then_get, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_post_content_length, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_post_chunked, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_response_chunked, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_expect_100_continue, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_pipelining_then_half_close, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_event_stream_trickle, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_http10_client, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_http10_origin, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_each_address_tried, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_curl_tool, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_stale_upstream_not_reused, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_client_abort_mid_body, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_and_two_listeners, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_access_log_escapes, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_interim_103, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_bodyless_responses, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_close_delimited_response, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_gets_whole_close_delimited_body, it_setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_chunked_request_trailer, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_origin_close_client_keepalive, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_requests, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_access_log_byte_counts, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_early_answer_then_reset, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_transfer_codings_kept, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_body_then_half_close, it_setup, it_teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    rc = cmocka_run_group_tests_name("integration_forward", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
