/*
 * Every class of malformed request, each sent raw as its own case: sluice answers 400
 * (505 for an unsupported version) with Connection: close, closes the connection, logs
 * the refusal, never forwards a refused head, and serves a normal request right after.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>

#include "itcommon.h"

/* One malformed request. */
struct badreq {
    const char *name;  /* cmocka case name */
    const char *bytes; /* the request; "{P}" stands for the silent origin's port */
    size_t len;        /* bytes in it (it may hold NUL) */
    void (*gen)(struct tbuf *out, unsigned port); /* or: builds the request */
    int status;                                   /* expected status */
    bool head_error; /* refused in the head: the origin must see nothing */
};

/* A literal with its length (NUL bytes included). */
#define LIT(s) (s), sizeof(s) - 1

#define REQ_LINE(m) m " http://origin.test:{P}/bad HTTP/1.1\r\nHost: origin.test:{P}\r\n"

/* GET with a request line of 9000 bytes (limit 8 KiB). */
static void gen_long_line(struct tbuf *out, unsigned port)
{
    size_t i;

    tbuf_printf(out, "GET http://origin.test:%u/", port);
    for (i = 0; i < 9000; i++)
        tbuf_append(out, "a", 1);
    tbuf_printf(out, " HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n", port);
}

/* GET with 70 fields of 1000 bytes: a 70 KB head (limit 64 KiB), under 100 fields. */
static void gen_big_head(struct tbuf *out, unsigned port)
{
    int i;
    int j;

    tbuf_printf(out, "GET http://origin.test:%u/ HTTP/1.1\r\nHost: origin.test:%u\r\n", port, port);
    for (i = 0; i < 70; i++) {
        tbuf_printf(out, "X-Big-%02d: ", i);
        for (j = 0; j < 990; j++)
            tbuf_append(out, "v", 1);
        tbuf_append(out, "\r\n", 2);
    }
    tbuf_append(out, "\r\n", 2);
}

/* GET with 101 short fields besides Host (limit 100). */
static void gen_many_fields(struct tbuf *out, unsigned port)
{
    int i;

    tbuf_printf(out, "GET http://origin.test:%u/ HTTP/1.1\r\nHost: origin.test:%u\r\n", port, port);
    for (i = 0; i < 101; i++)
        tbuf_printf(out, "X-F%d: v\r\n", i);
    tbuf_append(out, "\r\n", 2);
}

static const struct badreq badreqs[] = {
    {"cl_and_te",
     LIT(REQ_LINE("POST") "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), NULL,
     400, true},
    {"cl_differing", LIT(REQ_LINE("POST") "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
     NULL, 400, true},
    {"cl_differing_in_list", LIT(REQ_LINE("POST") "Content-Length: 5, 6\r\n\r\nhello!"), NULL, 400,
     true},
    {"cl_not_digits", LIT(REQ_LINE("POST") "Content-Length: 5x\r\n\r\nhello"), NULL, 400, true},
    {"cl_signed", LIT(REQ_LINE("POST") "Content-Length: +5\r\n\r\nhello"), NULL, 400, true},
    {"cl_overflow", LIT(REQ_LINE("POST") "Content-Length: 99999999999999999999999\r\n\r\nhello"),
     NULL, 400, true},
    {"te_not_ending_chunked",
     LIT(REQ_LINE("POST") "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"), NULL, 400, true},
    {"te_unknown", LIT(REQ_LINE("POST") "Transfer-Encoding: gzip\r\n\r\n"), NULL, 400, true},
    {"obs_fold", LIT(REQ_LINE("GET") "X-Folded: a\r\n b\r\n\r\n"), NULL, 400, true},
    {"bare_cr_in_value", LIT(REQ_LINE("GET") "X-A: a\rb\r\n\r\n"), NULL, 400, true},
    {"bare_lf_line_end", LIT("GET http://origin.test:{P}/bad HTTP/1.1\nHost: origin.test:{P}\n\n"),
     NULL, 400, true},
    {"nul_in_value", LIT(REQ_LINE("GET") "X-A: a\0b\r\n\r\n"), NULL, 400, true},
    {"ctl_in_value", LIT(REQ_LINE("GET") "X-A: a\001b\r\n\r\n"), NULL, 400, true},
    {"ctl_in_name", LIT(REQ_LINE("GET") "X\001A: b\r\n\r\n"), NULL, 400, true},
    {"space_before_colon", LIT(REQ_LINE("GET") "X-A : b\r\n\r\n"), NULL, 400, true},
    {"duplicate_host", LIT(REQ_LINE("GET") "Host: other.test\r\n\r\n"), NULL, 400, true},
    {"chunk_size_invalid",
     LIT(REQ_LINE("POST") "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), NULL, 400,
     false},
    {"chunk_size_overflow",
     LIT(REQ_LINE("POST") "Transfer-Encoding: chunked\r\n\r\n"
                          "10000000000000005\r\nhello\r\n0\r\n\r\n"),
     NULL, 400, false},
    {"chunk_data_not_crlf",
     LIT(REQ_LINE("POST") "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"), NULL, 400,
     false},
    {"request_line_too_long", NULL, 0, gen_long_line, 400, true},
    {"http09_request", LIT("GET http://origin.test:{P}/bad\r\n\r\n"), NULL, 400, true},
    {"method_not_token", LIT("G(T http://origin.test:{P}/bad HTTP/1.1\r\nHost: x\r\n\r\n"), NULL,
     400, true},
    {"target_userinfo", LIT("GET http://user:pw@origin.test:{P}/bad HTTP/1.1\r\nHost: x\r\n\r\n"),
     NULL, 400, true},
    {"target_origin_form", LIT("GET /bad HTTP/1.1\r\nHost: origin.test:{P}\r\n\r\n"), NULL, 400,
     true},
    {"header_section_too_large", NULL, 0, gen_big_head, 400, true},
    {"too_many_fields", NULL, 0, gen_many_fields, 400, true},
    {"version_unsupported", LIT("GET http://origin.test:{P}/bad HTTP/2.0\r\nHost: x\r\n\r\n"), NULL,
     505, true},
};

/* Copies the template, replacing every "{P}" with port. */
static void expand(const struct badreq *b, unsigned port, struct tbuf *out)
{
    size_t i = 0;

    if (b->gen != NULL) {
        b->gen(out, port);
        return;
    }
    while (i < b->len) {
        if (i + 3 <= b->len && memcmp(b->bytes + i, "{P}", 3) == 0) {
            tbuf_printf(out, "%u", port);
            i += 3;
        } else {
            tbuf_append(out, b->bytes + i, 1);
            i++;
        }
    }
}

/* Reads a head and waits silently, so only the proxy can answer; notes when it closes. */
static void silent_handler(struct origin_conn *c)
{
    atomic_bool *closed = c->arg;

    if (oconn_read_head(c, 10000) == 0)
        return;
    if (oconn_wait_close(c, 15000))
        atomic_store(closed, true);
}

/* Sends one malformed request and checks the refusal, the log and the next request. */
static void test_badreq(void **state)
{
    struct itcase *t = *state;
    const struct badreq *b = t->param;
    atomic_bool upstream_closed = false;
    struct origin_opts silent = {.handler = silent_handler, .arg = &upstream_closed};
    struct rawclient *rc;
    struct rawresp r = {0};
    struct tbuf req = {0};
    char status[32];
    int st;

    it_start_origin(t, origin_handler_simple, NULL);
    t->origin2 = origin_start(&silent);
    assert_non_null(t->origin2);
    it_start_proxy(t, NULL);
    expand(b, origin_port(t->origin2), &req);
    rc = it_raw(t);
    if (!b->head_error) {
        /* The body turns bad only once its head is upstream: send the head, wait for the
         * origin to have it, then the body. */
        const char *end = strstr(tbuf_str(&req), "\r\n\r\n");
        size_t head_len;

        assert_non_null(end);
        head_len = (size_t)(end - req.data) + 4;
        assert_int_equal(rawclient_send(rc, req.data, head_len), 0);
        for (int i = 0; i < 250 && origin_requests(t->origin2) == 0; i++)
            tio_sleep_ms(20);
        assert_int_equal(origin_requests(t->origin2), 1);
        tbuf_consume(&req, head_len);
    }
    /* A proxy may refuse before reading everything, so the send itself may fail. */
    (void)rawclient_send(rc, req.data, req.len);
    st = rawclient_response(rc, &r, false, 10000);
    if (st != b->status)
        fprintf(stderr, "%s: got %d (connection %s, errno %d)\n%s\n", b->name, st,
                rc->eof ? "closed" : "open", rc->error, tbuf_str(&r.head));
    it_assert_sluice_error(&r, b->status, NULL, 0);
    assert_true(rawclient_wait_closed(rc, 5000));
    snprintf(status, sizeof(status), "status=%d", b->status);
    it_expect_access(t, status, NULL);
    if (b->head_error) {
        assert_int_equal(origin_requests(t->origin2), 0);
    } else {
        /* The head went upstream before the body turned bad: that connection now carries
         * a request whose end the origin cannot know, and must be closed, never pooled. */
        for (int i = 0; i < 250 && !atomic_load(&upstream_closed); i++)
            tio_sleep_ms(20);
        assert_true(atomic_load(&upstream_closed));
    }
    it_assert_serves(t);
    rawresp_free(&r);
    tbuf_free(&req);
    rawclient_close(rc);
}

/* One case per malformed request, each with its own environment and proxy. */
int main(void)
{
    enum { N = sizeof(badreqs) / sizeof(badreqs[0]) };
    struct CMUnitTest tests[N];
    size_t i;

    for (i = 0; i < N; i++) {
        tests[i] = (struct CMUnitTest){.name = badreqs[i].name,
                                       .test_func = test_badreq,
                                       .setup_func = it_setup,
                                       .teardown_func = it_teardown,
                                       .initial_state = (void *)(uintptr_t)&badreqs[i]};
    }
    signal(SIGPIPE, SIG_IGN);
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests_name("integration_badreq", tests, NULL, NULL);
}
