/*
 * Unit tests for the strict HTTP/1.1 framing module: a corpus of valid heads (each also
 * fed one byte at a time, which must give the same result), one test case per refusal,
 * the chunked decoder split at every byte boundary, and the request-target helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/http1.h"

#define LIT(s)      (s), sizeof(s) - 1
#define MAX_FIELDS  128
#define BIG_BUF     (80 * 1024)
#define TINY_LINE   64
#define CHUNK_LIMIT 1024

/* One parse: the parser, the head it filled and the array behind head.fields. */
struct parsed {
    struct http1_parser p;
    struct http1_head h;
    struct http1_field f[MAX_FIELDS];
    int64_t r;
};

/* Scratch space for generated messages, too large for the stack of a test. */
static char big[BIG_BUF];

/* The limits a test starts from: the defaults, with bare LF allowed when asked. */
static struct http1_limits limits(bool bare_lf)
{
    struct http1_limits lim;

    http1_limits_default(&lim);
    lim.allow_bare_lf = bare_lf;
    return lim;
}

/* Parses msg[0..n) in one call. */
static void parse_whole(struct parsed *o, enum http1_kind kind, const struct http1_limits *lim,
                        const char *msg, size_t n)
{
    memset(o, 0, sizeof(*o));
    http1_parser_init(&o->p, kind, lim, &o->h, o->f, MAX_FIELDS);
    o->r = http1_parse_head(&o->p, msg, n);
}

/* Parses msg[0..n) as it would arrive one byte per read; stops at the first answer. */
static void parse_bytewise(struct parsed *o, enum http1_kind kind, const struct http1_limits *lim,
                           const char *msg, size_t n)
{
    memset(o, 0, sizeof(*o));
    http1_parser_init(&o->p, kind, lim, &o->h, o->f, MAX_FIELDS);
    o->r = 0;
    for (size_t have = 1; have <= n && o->r == 0; have++)
        o->r = http1_parse_head(&o->p, msg, have);
}

/* Asserts that span s of buf holds exactly the text want. */
static void assert_span(const char *buf, struct http1_span s, const char *want)
{
    char got[256];
    size_t n = s.len < sizeof(got) - 1 ? s.len : sizeof(got) - 1;

    memcpy(got, buf + s.off, n);
    got[n] = '\0';
    assert_string_equal(got, want);
    assert_int_equal(s.len, strlen(want));
}

/* Asserts that two parses of the same bytes found the same head. */
static void assert_same_head(const struct parsed *a, const struct parsed *b)
{
    assert_int_equal(a->r, b->r);
    assert_int_equal(a->p.error, b->p.error);
    if (a->r < 0)
        assert_int_equal(a->p.error_pos, b->p.error_pos);
    if (a->r <= 0)
        return;
    assert_memory_equal(&a->h.method, &b->h.method, sizeof(a->h.method));
    assert_memory_equal(&a->h.target, &b->h.target, sizeof(a->h.target));
    assert_memory_equal(&a->h.reason, &b->h.reason, sizeof(a->h.reason));
    assert_int_equal(a->h.status, b->h.status);
    assert_int_equal(a->h.version_minor, b->h.version_minor);
    assert_int_equal(a->h.nfields, b->h.nfields);
    assert_memory_equal(a->f, b->f, sizeof(a->f[0]) * a->h.nfields);
    assert_int_equal(a->h.content_length, b->h.content_length);
    assert_int_equal(a->h.has_content_length, b->h.has_content_length);
    assert_int_equal(a->h.has_transfer_encoding, b->h.has_transfer_encoding);
    assert_int_equal(a->h.chunked, b->h.chunked);
    assert_int_equal(a->h.conn_close, b->h.conn_close);
    assert_int_equal(a->h.conn_keep_alive, b->h.conn_keep_alive);
    assert_int_equal(a->h.conn_upgrade, b->h.conn_upgrade);
    assert_int_equal(a->h.has_upgrade, b->h.has_upgrade);
    assert_int_equal(a->h.expect_continue, b->h.expect_continue);
    assert_int_equal(a->h.host_field, b->h.host_field);
    assert_int_equal(a->h.head_len, b->h.head_len);
}

/*
 * Parses a valid head whole and byte by byte, asserts both agree and that the head ends
 * after head_len bytes; the whole parse is left in *o for the caller to inspect.
 */
static void parse_ok_lim(struct parsed *o, enum http1_kind kind, const struct http1_limits *lim,
                         const char *msg, size_t n, size_t head_len)
{
    static struct parsed inc;

    parse_whole(o, kind, lim, msg, n);
    if (o->r < 0)
        fprintf(stderr, "refused: %s at %u\n", http1_error_str(o->p.error), o->p.error_pos);
    assert_int_equal(o->r, (int64_t)head_len);
    assert_int_equal(o->h.head_len, head_len);
    parse_bytewise(&inc, kind, lim, msg, n);
    assert_same_head(o, &inc);
}

/* parse_ok_lim() with the default limits. */
static void parse_ok(struct parsed *o, enum http1_kind kind, const char *msg, size_t n,
                     size_t head_len)
{
    struct http1_limits lim = limits(false);

    parse_ok_lim(o, kind, &lim, msg, n, head_len);
}

/* Asserts that msg is refused with err, whole and byte by byte, at the same position. */
static void assert_refused_lim(enum http1_kind kind, const struct http1_limits *lim,
                               const char *msg, size_t n, enum http1_error err)
{
    static struct parsed whole, inc;

    parse_whole(&whole, kind, lim, msg, n);
    if (whole.r >= 0 || whole.p.error != err)
        fprintf(stderr, "expected \"%s\", got r=%lld \"%s\"\n", http1_error_str(err),
                (long long)whole.r, http1_error_str(whole.p.error));
    assert_int_equal(whole.r, -1);
    assert_int_equal(whole.p.error, err);
    assert_true(whole.p.error_pos <= n);
    /* A refused parser stays refused. */
    assert_int_equal(http1_parse_head(&whole.p, msg, n), -1);
    parse_bytewise(&inc, kind, lim, msg, n);
    assert_same_head(&whole, &inc);
}

/* assert_refused_lim() with the default limits, bare LF refused. */
static void assert_refused(enum http1_kind kind, const char *msg, size_t n, enum http1_error err)
{
    struct http1_limits lim = limits(false);

    assert_refused_lim(kind, &lim, msg, n, err);
}

/* ---------------------------------------------------------------------------------- */
/* Valid heads                                                                         */
/* ---------------------------------------------------------------------------------- */

/* A proxy GET in absolute form gives every span, and pipelined bytes are left alone. */
static void test_get_absolute_form(void **state)
{
    static struct parsed o;
    const char msg[] = "GET http://example.com/a/b?c=d HTTP/1.1\r\n"
                       "Host: example.com\r\n"
                       "User-Agent: unit\r\n"
                       "\r\n"
                       "GET http://example.com/next HTTP/1.1\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), strstr(msg, "\r\n\r\n") + 4 - msg);
    assert_span(msg, o.h.method, "GET");
    assert_span(msg, o.h.target, "http://example.com/a/b?c=d");
    assert_int_equal(o.h.version_minor, 1);
    assert_int_equal(o.h.nfields, 2);
    assert_ptr_equal(o.h.fields, o.f);
    assert_span(msg, o.f[0].name, "Host");
    assert_span(msg, o.f[0].value, "example.com");
    assert_span(msg, o.f[1].name, "User-Agent");
    assert_span(msg, o.f[1].value, "unit");
    assert_int_equal(o.h.host_field, 0);
    assert_false(o.h.has_content_length);
    assert_false(o.h.has_transfer_encoding);
    assert_false(o.h.chunked);
    assert_false(o.h.conn_close);
    assert_false(o.h.expect_continue);
    /* Once complete, further calls give the same answer. */
    assert_int_equal(http1_parse_head(&o.p, msg, sizeof(msg) - 1), o.r);
}

/* CONNECT with an authority-form target, split by http1_parse_authority(). */
static void test_connect_authority_form(void **state)
{
    static struct parsed o;
    const char msg[] = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    struct http1_target t;

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_span(msg, o.h.method, "CONNECT");
    assert_true(http1_span_eq_ci(msg, o.h.method, "connect"));
    assert_span(msg, o.h.target, "example.com:443");
    assert_int_equal(http1_parse_authority(msg, o.h.target, &t), 0);
    assert_span(msg, t.host, "example.com");
    assert_int_equal(t.port, 443);
    assert_int_equal(t.scheme.len, 0);
    assert_false(t.host_is_ipv6);
}

/* POST with a Content-Length: the head ends before the body. */
static void test_post_content_length(void **state)
{
    static struct parsed o;
    const char msg[] = "POST http://h/form HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1 - 5);
    assert_true(o.h.has_content_length);
    assert_int_equal(o.h.content_length, 5);
    assert_false(o.h.chunked);
}

/* Content-Length 0 is a length like any other. */
static void test_content_length_zero(void **state)
{
    static struct parsed o;
    const char msg[] = "POST http://h/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_true(o.h.has_content_length);
    assert_int_equal(o.h.content_length, 0);
}

/* The largest Content-Length accepted has 18 digits. */
static void test_content_length_18_digits(void **state)
{
    static struct parsed o;
    const char msg[] = "POST http://h/ HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_int_equal(o.h.content_length, 999999999999999999ULL);
}

/* Equal Content-Length values, in one list or in repeated fields, are one length. */
static void test_content_length_equal_repeats(void **state)
{
    static struct parsed o;
    const char msg[] = "POST http://h/ HTTP/1.1\r\nContent-Length: 5, 5\r\n"
                       "Content-Length: 5\r\nContent-Length:5 ,5\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_true(o.h.has_content_length);
    assert_int_equal(o.h.content_length, 5);
    assert_int_equal(o.h.nfields, 3);
}

/* A chunked request, whose body then goes through the decoder. */
static void test_chunked_request(void **state)
{
    static struct parsed o;
    const char msg[] = "POST http://h/up HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\n\r\n";
    struct http1_chunked c;
    char body[16];
    size_t blen = 0, off;

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), strstr(msg, "\r\n\r\n") + 4 - msg);
    assert_true(o.h.has_transfer_encoding);
    assert_true(o.h.chunked);
    assert_false(o.h.has_content_length);
    http1_chunked_init(&c);
    for (off = (size_t)o.r; off < sizeof(msg) - 1 && !http1_chunked_done(&c);) {
        size_t data = 0;
        int64_t used = http1_chunked_step(&c, msg + off, sizeof(msg) - 1 - off, &data);
        assert_true(used > 0);
        if (data > 0) {
            memcpy(body + blen, msg + off, data);
            blen += data;
        }
        off += (size_t)used;
    }
    assert_true(http1_chunked_done(&c));
    assert_int_equal(off, sizeof(msg) - 1);
    assert_int_equal(blen, 5);
    assert_memory_equal(body, "hello", 5);
}

/* An HTTP/1.0 request without any field. */
static void test_http10_request(void **state)
{
    static struct parsed o;
    const char msg[] = "GET http://h/ HTTP/1.0\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_int_equal(o.h.version_minor, 0);
    assert_int_equal(o.h.nfields, 0);
    assert_int_equal(o.h.host_field, -1);
}

/* Empty lines before a request line are skipped; the spans still point at the bytes. */
static void test_leading_empty_lines(void **state)
{
    static struct parsed o;
    const char msg[] = "\r\n\r\nGET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_int_equal(o.h.method.off, 4);
    assert_span(msg, o.h.method, "GET");
    assert_int_equal(o.p.skipped, 2);
}

/* Values lose surrounding whitespace; empty values and obs-text are kept. */
static void test_field_values_trimmed(void **state)
{
    static struct parsed o;
    const char msg[] = "GET http://h/ HTTP/1.1\r\n"
                       "A:   x  y \t\r\n"
                       "B:\r\n"
                       "C: \t \r\n"
                       "D:\tcaf\xc3\xa9 \x80\xff\r\n"
                       "E: \"quoted, \\\" value\" ; p=1\r\n"
                       "\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_int_equal(o.h.nfields, 5);
    assert_span(msg, o.f[0].value, "x  y");
    assert_span(msg, o.f[1].value, "");
    assert_span(msg, o.f[2].value, "");
    assert_span(msg, o.f[3].value, "caf\xc3\xa9 \x80\xff");
    assert_span(msg, o.f[4].value, "\"quoted, \\\" value\" ; p=1");
}

/* Every tchar is allowed in a method and in a field name. */
static void test_tchar_method_and_name(void **state)
{
    static struct parsed o;
    const char msg[] = "M-!#$%&'*+.^_`|~9z http://h/ HTTP/1.1\r\n"
                       "X-!#$%&'*+.^_`|~9z: v\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_span(msg, o.h.method, "M-!#$%&'*+.^_`|~9z");
    assert_span(msg, o.f[0].name, "X-!#$%&'*+.^_`|~9z");
}

/* Connection tokens, Upgrade and Expect are noted, case-insensitively. */
static void test_connection_upgrade_expect(void **state)
{
    static struct parsed o;
    const char msg[] = "GET http://h/ws HTTP/1.1\r\n"
                       "connection: Keep-Alive\r\n"
                       "CONNECTION: ,  UPGRADE , close\r\n"
                       "Upgrade: websocket\r\n"
                       "Expect: 100-Continue\r\n"
                       "\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_true(o.h.conn_close);
    assert_true(o.h.conn_keep_alive);
    assert_true(o.h.conn_upgrade);
    assert_true(o.h.has_upgrade);
    assert_true(o.h.expect_continue);
}

/* Tokens only count as whole list elements: "closed" is not "close". */
static void test_connection_not_substring(void **state)
{
    static struct parsed o;
    const char msg[] = "GET http://h/ HTTP/1.1\r\nConnection: closed, upgrades\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_REQUEST, LIT(msg), sizeof(msg) - 1);
    assert_false(o.h.conn_close);
    assert_false(o.h.conn_upgrade);
    assert_false(o.h.has_upgrade);
}

/* A request with exactly max_fields fields is accepted. */
static void test_fields_at_limit(void **state)
{
    static struct parsed o;
    struct http1_limits lim = limits(false);
    size_t n = 0;

    (void)state;
    n += (size_t)snprintf(big + n, BIG_BUF - n, "GET http://h/ HTTP/1.1\r\n");
    for (uint32_t i = 0; i < lim.max_fields; i++)
        n += (size_t)snprintf(big + n, BIG_BUF - n, "X-Field-%u: value %u\r\n", i, i);
    n += (size_t)snprintf(big + n, BIG_BUF - n, "\r\n");
    parse_ok_lim(&o, HTTP1_REQUEST, &lim, big, n, n);
    assert_int_equal(o.h.nfields, lim.max_fields);
    assert_span(big, o.f[lim.max_fields - 1].name, "X-Field-99");
}

/* A start line of exactly max_line bytes is accepted. */
static void test_line_at_limit(void **state)
{
    static struct parsed o;
    struct http1_limits lim = limits(false);
    size_t n;

    (void)state;
    lim.max_line = TINY_LINE;
    n = (size_t)snprintf(big, BIG_BUF, "GET http://h/");
    while (n < TINY_LINE - strlen(" HTTP/1.1"))
        big[n++] = 'a';
    n += (size_t)snprintf(big + n, BIG_BUF - n, " HTTP/1.1\r\n\r\n");
    assert_int_equal(n, TINY_LINE + 4);
    parse_ok_lim(&o, HTTP1_REQUEST, &lim, big, n, n);
}

/* A head of exactly max_head bytes, final empty line included, is accepted. */
static void test_head_at_limit(void **state)
{
    static struct parsed o;
    struct http1_limits lim = limits(false);
    size_t n;

    (void)state;
    lim.max_head = 200;
    n = (size_t)snprintf(big, BIG_BUF, "GET http://h/ HTTP/1.1\r\nX: ");
    while (n < 200 - 4)
        big[n++] = 'v';
    memcpy(big + n, "\r\n\r\n", 4);
    n += 4;
    parse_ok_lim(&o, HTTP1_REQUEST, &lim, big, n, n);
}

/* A large head fed one byte per call stays cheap: each call resumes where it stopped. */
static void test_bytewise_large_head(void **state)
{
    static struct parsed o;
    struct http1_limits lim = limits(false);
    size_t n;

    (void)state;
    n = (size_t)snprintf(big, BIG_BUF, "GET http://h/ HTTP/1.1\r\n");
    for (int i = 0; i < 60; i++) {
        n += (size_t)snprintf(big + n, BIG_BUF - n, "X-%02d: ", i);
        memset(big + n, 'a' + i % 26, 1000);
        n += 1000;
        n += (size_t)snprintf(big + n, BIG_BUF - n, "\r\n");
    }
    n += (size_t)snprintf(big + n, BIG_BUF - n, "\r\n");
    parse_ok_lim(&o, HTTP1_REQUEST, &lim, big, n, n);
    assert_int_equal(o.h.nfields, 60);
}

/* A partial line is examined once: p->pos reaches the end of what was given. */
static void test_resume_does_not_rescan(void **state)
{
    static struct parsed o;
    const char msg[] = "GET http://h/ HTTP/1.1\r\nX-Long: abcdefghij";
    struct http1_limits lim = limits(false);

    (void)state;
    memset(&o, 0, sizeof(o));
    http1_parser_init(&o.p, HTTP1_REQUEST, &lim, &o.h, o.f, MAX_FIELDS);
    for (size_t have = 1; have <= sizeof(msg) - 1; have++) {
        assert_int_equal(http1_parse_head(&o.p, msg, have), 0);
        assert_int_equal(o.p.pos, have);
    }
}

/* The head may move between calls: only offsets are kept. */
static void test_buffer_moves_between_calls(void **state)
{
    static struct parsed o;
    const char msg[] = "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n";
    char a[64], b[64];
    struct http1_limits lim = limits(false);

    (void)state;
    memset(&o, 0, sizeof(o));
    http1_parser_init(&o.p, HTTP1_REQUEST, &lim, &o.h, o.f, MAX_FIELDS);
    memcpy(a, msg, 20);
    assert_int_equal(http1_parse_head(&o.p, a, 20), 0);
    memset(a, 'X', sizeof(a));
    memcpy(b, msg, sizeof(msg) - 1);
    assert_int_equal(http1_parse_head(&o.p, b, sizeof(msg) - 1), sizeof(msg) - 1);
    assert_span(b, o.h.target, "http://h/");
    assert_span(b, o.f[0].value, "h");
}

/* A plain 200 response with a length and a reason phrase. */
static void test_response_200(void **state)
{
    static struct parsed o;
    const char msg[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";

    (void)state;
    parse_ok(&o, HTTP1_RESPONSE, LIT(msg), sizeof(msg) - 1 - 2);
    assert_int_equal(o.h.status, 200);
    assert_span(msg, o.h.reason, "OK");
    assert_int_equal(o.h.version_minor, 1);
    assert_int_equal(o.h.content_length, 2);
    assert_true(o.h.conn_close);
    assert_int_equal(o.h.host_field, -1);
}

/* An interim 100 Continue, then the final response, each a head of its own. */
static void test_response_100_continue(void **state)
{
    static struct parsed o;
    const char msg[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_RESPONSE, LIT(msg), 25);
    assert_int_equal(o.h.status, 100);
    assert_span(msg, o.h.reason, "Continue");
    parse_ok(&o, HTTP1_RESPONSE, msg + 25, sizeof(msg) - 1 - 25, sizeof(msg) - 1 - 25);
    assert_int_equal(o.h.status, 204);
}

/* A 101 switching protocols response with Upgrade. */
static void test_response_101(void **state)
{
    static struct parsed o;
    const char msg[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_RESPONSE, LIT(msg), sizeof(msg) - 1);
    assert_int_equal(o.h.status, 101);
    assert_true(o.h.has_upgrade);
    assert_true(o.h.conn_upgrade);
}

/* 204 and 304 heads parse like any other; the caller knows they have no body. */
static void test_response_204_304(void **state)
{
    static struct parsed o;
    const char r204[] = "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n";
    const char r304[] = "HTTP/1.0 304 Not Modified\r\nETag: \"abc\"\r\nContent-Length: 10\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_RESPONSE, LIT(r204), sizeof(r204) - 1);
    assert_int_equal(o.h.status, 204);
    parse_ok(&o, HTTP1_RESPONSE, LIT(r304), sizeof(r304) - 1);
    assert_int_equal(o.h.status, 304);
    assert_int_equal(o.h.version_minor, 0);
    assert_int_equal(o.h.content_length, 10);
}

/* A status line may lack the reason, or have an empty one, or obs-text in it. */
static void test_response_reason_forms(void **state)
{
    static struct parsed o;
    const char none[] = "HTTP/1.1 404\r\n\r\n";
    const char empty[] = "HTTP/1.1 404 \r\n\r\n";
    const char odd[] = "HTTP/1.1 599 Spa ce\t\xe9t\xe9\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_RESPONSE, LIT(none), sizeof(none) - 1);
    assert_int_equal(o.h.status, 404);
    assert_int_equal(o.h.reason.len, 0);
    parse_ok(&o, HTTP1_RESPONSE, LIT(empty), sizeof(empty) - 1);
    assert_int_equal(o.h.reason.len, 0);
    parse_ok(&o, HTTP1_RESPONSE, LIT(odd), sizeof(odd) - 1);
    assert_int_equal(o.h.status, 599);
    assert_span(odd, o.h.reason, "Spa ce\t\xe9t\xe9");
}

/* A response whose final coding is chunked is chunked. */
static void test_response_te_chunked_last(void **state)
{
    static struct parsed o;
    const char msg[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
                       "Transfer-Encoding: CHUNKED\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_RESPONSE, LIT(msg), sizeof(msg) - 1);
    assert_true(o.h.has_transfer_encoding);
    assert_true(o.h.chunked);
}

/* A response whose final coding is not chunked is delimited by the connection close. */
static void test_response_te_not_chunked_last(void **state)
{
    static struct parsed o;
    const char msg[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    const char gz[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_RESPONSE, LIT(msg), sizeof(msg) - 1);
    assert_true(o.h.has_transfer_encoding);
    assert_false(o.h.chunked);
    parse_ok(&o, HTTP1_RESPONSE, LIT(gz), sizeof(gz) - 1);
    assert_true(o.h.has_transfer_encoding);
    assert_false(o.h.chunked);
}

/* With allow_bare_lf, LF alone ends lines (old servers). */
static void test_response_bare_lf_allowed(void **state)
{
    static struct parsed o;
    struct http1_limits lim = limits(true);
    const char msg[] = "HTTP/1.0 200 OK\nServer: old\r\nX: y\n\nbody";

    (void)state;
    parse_ok_lim(&o, HTTP1_RESPONSE, &lim, LIT(msg), sizeof(msg) - 1 - 4);
    assert_int_equal(o.h.nfields, 2);
    assert_span(msg, o.f[0].value, "old");
    assert_span(msg, o.f[1].value, "y");
}

/* Host is only remembered for requests; a response may repeat it harmlessly. */
static void test_response_host_ignored(void **state)
{
    static struct parsed o;
    const char msg[] = "HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n\r\n";

    (void)state;
    parse_ok(&o, HTTP1_RESPONSE, LIT(msg), sizeof(msg) - 1);
    assert_int_equal(o.h.host_field, -1);
}

/* Every prefix of a valid head asks for more bytes. */
static void test_every_prefix_needs_more(void **state)
{
    static struct parsed o;
    const char msg[] = "POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";

    struct http1_limits lim = limits(false);

    (void)state;
    for (size_t n = 0; n < sizeof(msg) - 1; n++) {
        parse_whole(&o, HTTP1_REQUEST, &lim, msg, n);
        assert_int_equal(o.r, 0);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Refused heads: one test case per refusal                                            */
/* ---------------------------------------------------------------------------------- */

/* Declares a test asserting that a request head is refused with err. */
#define REFUSE_REQ(fn, text, err)                                                                  \
    static void fn(void **state)                                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        assert_refused(HTTP1_REQUEST, LIT(text), err);                                             \
    }

/* Declares a test asserting that a response head is refused with err. */
#define REFUSE_RESP(fn, text, err)                                                                 \
    static void fn(void **state)                                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        assert_refused(HTTP1_RESPONSE, LIT(text), err);                                            \
    }

#define RL "GET http://h/ HTTP/1.1\r\n"
#define PL "POST http://h/ HTTP/1.1\r\n"
#define SL "HTTP/1.1 200 OK\r\n"

/* A request line longer than max_line, with its LF. */
static void test_refuse_line_too_long(void **state)
{
    struct http1_limits lim = limits(false);
    size_t n;

    (void)state;
    lim.max_line = TINY_LINE;
    n = (size_t)snprintf(big, BIG_BUF, "GET http://h/");
    while (n < TINY_LINE + 1 - strlen(" HTTP/1.1"))
        big[n++] = 'a';
    n += (size_t)snprintf(big + n, BIG_BUF - n, " HTTP/1.1\r\n\r\n");
    assert_refused_lim(HTTP1_REQUEST, &lim, big, n, HTTP1_E_LINE_TOO_LONG);
}

/* A request line over max_line is refused before any LF arrives. */
static void test_refuse_line_too_long_early(void **state)
{
    static struct parsed o;
    struct http1_limits lim = limits(false);

    (void)state;
    lim.max_line = TINY_LINE;
    memset(big, 'a', TINY_LINE + 2);
    memcpy(big, "GET /", 5);
    parse_whole(&o, HTTP1_REQUEST, &lim, big, TINY_LINE);
    assert_int_equal(o.r, 0);
    parse_whole(&o, HTTP1_REQUEST, &lim, big, TINY_LINE + 2);
    assert_int_equal(o.r, -1);
    assert_int_equal(o.p.error, HTTP1_E_LINE_TOO_LONG);
}

/* A status line longer than max_line. */
static void test_refuse_status_line_too_long(void **state)
{
    struct http1_limits lim = limits(false);
    size_t n;

    (void)state;
    lim.max_line = TINY_LINE;
    n = (size_t)snprintf(big, BIG_BUF, "HTTP/1.1 200 ");
    while (n < TINY_LINE + 10)
        big[n++] = 'r';
    n += (size_t)snprintf(big + n, BIG_BUF - n, "\r\n\r\n");
    assert_refused_lim(HTTP1_RESPONSE, &lim, big, n, HTTP1_E_LINE_TOO_LONG);
}

/* A 9000-byte request line with the default 8 KiB limit. */
static void test_refuse_line_too_long_default(void **state)
{
    size_t n;

    (void)state;
    n = (size_t)snprintf(big, BIG_BUF, "GET http://h/");
    memset(big + n, 'a', 9000);
    n += 9000;
    n += (size_t)snprintf(big + n, BIG_BUF - n, " HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_refused(HTTP1_REQUEST, big, n, HTTP1_E_LINE_TOO_LONG);
}

/* A head one byte over max_head. */
static void test_refuse_head_too_large(void **state)
{
    struct http1_limits lim = limits(false);
    size_t n;

    (void)state;
    lim.max_head = 200;
    n = (size_t)snprintf(big, BIG_BUF, "GET http://h/ HTTP/1.1\r\nX: ");
    while (n < 200 - 3)
        big[n++] = 'v';
    memcpy(big + n, "\r\n\r\n", 4);
    n += 4;
    assert_refused_lim(HTTP1_REQUEST, &lim, big, n, HTTP1_E_HEAD_TOO_LARGE);
}

/* A 70 KB head with the default 64 KiB limit is refused without waiting for its end. */
static void test_refuse_head_too_large_early(void **state)
{
    static struct parsed o;
    size_t n;

    (void)state;
    n = (size_t)snprintf(big, BIG_BUF, "GET http://h/ HTTP/1.1\r\n");
    for (int i = 0; i < 70; i++) {
        n += (size_t)snprintf(big + n, BIG_BUF - n, "X-Big-%02d: ", i);
        memset(big + n, 'v', 990);
        n += 990;
        n += (size_t)snprintf(big + n, BIG_BUF - n, "\r\n");
    }
    assert_refused(HTTP1_REQUEST, big, n, HTTP1_E_HEAD_TOO_LARGE);
    /* max_head + 1 bytes, the most a caller needs to hand over, are enough to decide. */
    {
        struct http1_limits lim = limits(false);
        parse_whole(&o, HTTP1_REQUEST, &lim, big, lim.max_head + 1);
    }
    assert_int_equal(o.r, -1);
    assert_int_equal(o.p.error, HTTP1_E_HEAD_TOO_LARGE);
}

/* One field more than max_fields. */
static void test_refuse_too_many_fields(void **state)
{
    struct http1_limits lim = limits(false);
    size_t n;

    (void)state;
    n = (size_t)snprintf(big, BIG_BUF, RL);
    for (uint32_t i = 0; i <= lim.max_fields; i++)
        n += (size_t)snprintf(big + n, BIG_BUF - n, "X-F%u: v\r\n", i);
    n += (size_t)snprintf(big + n, BIG_BUF - n, "\r\n");
    assert_refused_lim(HTTP1_REQUEST, &lim, big, n, HTTP1_E_TOO_MANY_FIELDS);
}

/* More fields than the caller's array holds, even under max_fields. */
static void test_refuse_fields_over_capacity(void **state)
{
    struct http1_parser p;
    struct http1_head h;
    struct http1_field f[2];
    struct http1_limits lim = limits(false);
    const char msg[] = RL "A: 1\r\nB: 2\r\nC: 3\r\n\r\n";

    (void)state;
    http1_parser_init(&p, HTTP1_REQUEST, &lim, &h, f, 2);
    assert_int_equal(http1_parse_head(&p, LIT(msg)), -1);
    assert_int_equal(p.error, HTTP1_E_TOO_MANY_FIELDS);
}

REFUSE_REQ(test_refuse_method_not_tchar, "G(T http://h/ HTTP/1.1\r\n\r\n", HTTP1_E_METHOD)
REFUSE_REQ(test_refuse_method_empty, " http://h/ HTTP/1.1\r\n\r\n", HTTP1_E_METHOD)
REFUSE_REQ(test_refuse_method_nul, "G\0T http://h/ HTTP/1.1\r\n\r\n", HTTP1_E_METHOD)
REFUSE_REQ(test_refuse_method_tab_separator, "GET\thttp://h/ HTTP/1.1\r\n\r\n", HTTP1_E_METHOD)
REFUSE_REQ(test_refuse_target_empty, "GET  HTTP/1.1\r\n\r\n", HTTP1_E_TARGET)
REFUSE_REQ(test_refuse_target_double_space, "GET  http://h/ HTTP/1.1\r\n\r\n", HTTP1_E_TARGET)
REFUSE_REQ(test_refuse_target_space_inside, "GET http://h/a b HTTP/1.1\r\n\r\n", HTTP1_E_TARGET)
REFUSE_REQ(test_refuse_target_ctl, "GET http://h/\x01 HTTP/1.1\r\n\r\n", HTTP1_E_TARGET)
REFUSE_REQ(test_refuse_target_del, "GET http://h/\x7f HTTP/1.1\r\n\r\n", HTTP1_E_TARGET)
REFUSE_REQ(test_refuse_target_tab, "GET http://h/\tx HTTP/1.1\r\n\r\n", HTTP1_E_TARGET)
REFUSE_REQ(test_refuse_version_http09, "GET /\r\n\r\n", HTTP1_E_VERSION)
REFUSE_REQ(test_refuse_version_lowercase, "GET http://h/ http/1.1\r\n\r\n", HTTP1_E_VERSION)
REFUSE_REQ(test_refuse_version_trailing_space, "GET http://h/ HTTP/1.1 \r\n\r\n", HTTP1_E_VERSION)
REFUSE_REQ(test_refuse_version_two_digits, "GET http://h/ HTTP/1.10\r\n\r\n", HTTP1_E_VERSION)
REFUSE_REQ(test_refuse_version_no_minor, "GET http://h/ HTTP/2\r\n\r\n", HTTP1_E_VERSION)
REFUSE_REQ(test_refuse_version_garbage, "GET http://h/ FOO\r\n\r\n", HTTP1_E_VERSION)
REFUSE_REQ(test_refuse_version_http20, "GET http://h/ HTTP/2.0\r\nHost: h\r\n\r\n",
           HTTP1_E_VERSION_UNSUPP)
REFUSE_REQ(test_refuse_version_http12, "GET http://h/ HTTP/1.2\r\n\r\n", HTTP1_E_VERSION_UNSUPP)
REFUSE_REQ(test_refuse_version_http09_explicit, "GET http://h/ HTTP/0.9\r\n\r\n",
           HTTP1_E_VERSION_UNSUPP)
REFUSE_RESP(test_refuse_response_version_http20, "HTTP/2.0 200 OK\r\n\r\n", HTTP1_E_VERSION_UNSUPP)
REFUSE_RESP(test_refuse_response_version_malformed, "HTTP/1.1x 200 OK\r\n\r\n", HTTP1_E_VERSION)
REFUSE_RESP(test_refuse_response_leading_crlf, "\r\nHTTP/1.1 200 OK\r\n\r\n", HTTP1_E_VERSION)
REFUSE_RESP(test_refuse_status_two_digits, "HTTP/1.1 20 OK\r\n\r\n", HTTP1_E_STATUS)
REFUSE_RESP(test_refuse_status_four_digits, "HTTP/1.1 2000 OK\r\n\r\n", HTTP1_E_STATUS)
REFUSE_RESP(test_refuse_status_below_100, "HTTP/1.1 099 Low\r\n\r\n", HTTP1_E_STATUS)
REFUSE_RESP(test_refuse_status_letters, "HTTP/1.1 2x0 OK\r\n\r\n", HTTP1_E_STATUS)
REFUSE_RESP(test_refuse_status_missing, "HTTP/1.1\r\n\r\n", HTTP1_E_STATUS)
REFUSE_RESP(test_refuse_status_double_space, "HTTP/1.1  200 OK\r\n\r\n", HTTP1_E_STATUS)
REFUSE_REQ(test_refuse_bare_cr_in_value, RL "X-A: a\rb\r\n\r\n", HTTP1_E_BARE_CR)
REFUSE_REQ(test_refuse_bare_cr_in_request_line, "GET http://h/\r HTTP/1.1\r\n\r\n", HTTP1_E_BARE_CR)
REFUSE_REQ(test_refuse_bare_cr_line_end, RL "X-A: a\r\rX-B: b\r\n\r\n", HTTP1_E_BARE_CR)
REFUSE_REQ(test_refuse_bare_cr_empty_line, RL "\r\r\n", HTTP1_E_BARE_CR)
REFUSE_REQ(test_refuse_bare_lf_request_line, "GET http://h/ HTTP/1.1\n\r\n", HTTP1_E_BARE_LF)
REFUSE_REQ(test_refuse_bare_lf_field, RL "X-A: a\nX-B: b\r\n\r\n", HTTP1_E_BARE_LF)
REFUSE_REQ(test_refuse_bare_lf_end_of_head, RL "X-A: a\r\n\n", HTTP1_E_BARE_LF)
REFUSE_RESP(test_refuse_response_bare_lf_by_default, "HTTP/1.1 200 OK\n\n", HTTP1_E_BARE_LF)
REFUSE_REQ(test_refuse_obs_fold_space, RL "X-Folded: a\r\n b\r\n\r\n", HTTP1_E_OBS_FOLD)
REFUSE_REQ(test_refuse_obs_fold_tab, RL "X-Folded: a\r\n\tb\r\n\r\n", HTTP1_E_OBS_FOLD)
REFUSE_REQ(test_refuse_space_before_first_field, RL " Host: h\r\n\r\n", HTTP1_E_OBS_FOLD)
REFUSE_REQ(test_refuse_field_space_before_colon, RL "X-A : b\r\n\r\n", HTTP1_E_FIELD_NAME)
REFUSE_REQ(test_refuse_field_tab_before_colon, RL "X-A\t: b\r\n\r\n", HTTP1_E_FIELD_NAME)
REFUSE_REQ(test_refuse_field_empty_name, RL ": b\r\n\r\n", HTTP1_E_FIELD_NAME)
REFUSE_REQ(test_refuse_field_no_colon, RL "X-A b\r\n\r\n", HTTP1_E_FIELD_NAME)
REFUSE_REQ(test_refuse_field_ctl_in_name, RL "X\001A: b\r\n\r\n", HTTP1_E_FIELD_NAME)
REFUSE_REQ(test_refuse_field_obs_text_in_name, RL "X\xe9: b\r\n\r\n", HTTP1_E_FIELD_NAME)
REFUSE_REQ(test_refuse_field_value_nul, RL "X-A: a\0b\r\n\r\n", HTTP1_E_FIELD_VALUE)
REFUSE_REQ(test_refuse_field_value_ctl, RL "X-A: a\001b\r\n\r\n", HTTP1_E_FIELD_VALUE)
REFUSE_REQ(test_refuse_field_value_del, RL "X-A: a\x7f\r\n\r\n", HTTP1_E_FIELD_VALUE)
REFUSE_REQ(test_refuse_field_value_esc, RL "X-A: \x1b[0m\r\n\r\n", HTTP1_E_FIELD_VALUE)
REFUSE_RESP(test_refuse_reason_ctl, "HTTP/1.1 200 O\001K\r\n\r\n", HTTP1_E_FIELD_VALUE)
REFUSE_REQ(test_refuse_cl_not_digits, PL "Content-Length: 5x\r\n\r\n", HTTP1_E_CL_INVALID)
REFUSE_REQ(test_refuse_cl_signed, PL "Content-Length: +5\r\n\r\n", HTTP1_E_CL_INVALID)
REFUSE_REQ(test_refuse_cl_negative, PL "Content-Length: -1\r\n\r\n", HTTP1_E_CL_INVALID)
REFUSE_REQ(test_refuse_cl_empty, PL "Content-Length:\r\n\r\n", HTTP1_E_CL_INVALID)
REFUSE_REQ(test_refuse_cl_hex, PL "Content-Length: 0x5\r\n\r\n", HTTP1_E_CL_INVALID)
REFUSE_REQ(test_refuse_cl_inner_space, PL "Content-Length: 5 5\r\n\r\n", HTTP1_E_CL_INVALID)
REFUSE_REQ(test_refuse_cl_empty_element, PL "Content-Length: 5,\r\n\r\n", HTTP1_E_CL_INVALID)
REFUSE_REQ(test_refuse_cl_19_digits, PL "Content-Length: 1000000000000000000\r\n\r\n",
           HTTP1_E_CL_INVALID)
REFUSE_REQ(test_refuse_cl_overflow, PL "Content-Length: 99999999999999999999999\r\n\r\n",
           HTTP1_E_CL_INVALID)
REFUSE_RESP(test_refuse_response_cl_invalid, SL "Content-Length: 1.5\r\n\r\n", HTTP1_E_CL_INVALID)
REFUSE_REQ(test_refuse_cl_conflict_fields, PL "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
           HTTP1_E_CL_CONFLICT)
REFUSE_REQ(test_refuse_cl_conflict_list, PL "Content-Length: 5, 6\r\n\r\n", HTTP1_E_CL_CONFLICT)
REFUSE_RESP(test_refuse_response_cl_conflict, SL "Content-Length: 1\r\nContent-Length: 10\r\n\r\n",
            HTTP1_E_CL_CONFLICT)
REFUSE_REQ(test_refuse_cl_then_te, PL "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
           HTTP1_E_CL_AND_TE)
REFUSE_REQ(test_refuse_te_then_cl, PL "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
           HTTP1_E_CL_AND_TE)
REFUSE_RESP(test_refuse_response_cl_and_te,
            SL "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", HTTP1_E_CL_AND_TE)
REFUSE_REQ(test_refuse_te_gzip, PL "Transfer-Encoding: gzip\r\n\r\n", HTTP1_E_TE_NOT_CHUNKED)
REFUSE_REQ(test_refuse_te_gzip_chunked, PL "Transfer-Encoding: gzip, chunked\r\n\r\n",
           HTTP1_E_TE_NOT_CHUNKED)
REFUSE_REQ(test_refuse_te_chunked_gzip, PL "Transfer-Encoding: chunked, gzip\r\n\r\n",
           HTTP1_E_TE_NOT_CHUNKED)
REFUSE_REQ(test_refuse_te_split_fields,
           PL "Transfer-Encoding: gzip\r\n"
              "Transfer-Encoding: chunked\r\n\r\n",
           HTTP1_E_TE_NOT_CHUNKED)
REFUSE_REQ(test_refuse_te_chunked_with_param, PL "Transfer-Encoding: chunked;q=1\r\n\r\n",
           HTTP1_E_TE_NOT_CHUNKED)
REFUSE_REQ(test_refuse_te_identity, PL "Transfer-Encoding: identity\r\n\r\n",
           HTTP1_E_TE_NOT_CHUNKED)
REFUSE_REQ(test_refuse_te_chunked_twice, PL "Transfer-Encoding: chunked, chunked\r\n\r\n",
           HTTP1_E_TE_INVALID)
REFUSE_REQ(test_refuse_te_chunked_two_fields,
           PL "Transfer-Encoding: chunked\r\n"
              "Transfer-Encoding: chunked\r\n\r\n",
           HTTP1_E_TE_INVALID)
REFUSE_REQ(test_refuse_te_empty_element, PL "Transfer-Encoding: , chunked\r\n\r\n",
           HTTP1_E_TE_INVALID)
REFUSE_REQ(test_refuse_te_empty_value, PL "Transfer-Encoding:\r\n\r\n", HTTP1_E_TE_INVALID)
REFUSE_RESP(test_refuse_response_te_chunked_twice,
            SL "Transfer-Encoding: chunked, gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            HTTP1_E_TE_INVALID)
REFUSE_RESP(test_refuse_response_te_empty_element, SL "Transfer-Encoding: gzip,,chunked\r\n\r\n",
            HTTP1_E_TE_INVALID)
REFUSE_REQ(test_refuse_host_duplicate, RL "Host: a\r\nX: y\r\nhost: b\r\n\r\n",
           HTTP1_E_HOST_DUPLICATE)
REFUSE_REQ(test_refuse_host_duplicate_same_value, RL "Host: a\r\nHost: a\r\n\r\n",
           HTTP1_E_HOST_DUPLICATE)

/* ---------------------------------------------------------------------------------- */
/* Chunked decoder                                                                     */
/* ---------------------------------------------------------------------------------- */

/* What decoding gave: the data, the bytes consumed, and the outcome. */
struct dechunked {
    char data[CHUNK_LIMIT];
    size_t data_len;
    size_t consumed;
    bool done;
    enum http1_error error; /* HTTP1_OK unless refused */
};

/*
 * Decodes in[0..len), handing the decoder at most step bytes per call (0 = all that is
 * left) and only the first split bytes before the rest when split is non-zero.
 */
static void dechunk(const char *in, size_t len, size_t step, size_t split, bool bare_lf,
                    struct dechunked *out)
{
    struct http1_chunked c;
    size_t avail;

    memset(out, 0, sizeof(*out));
    http1_chunked_init(&c);
    c.allow_bare_lf = bare_lf;
    c.max_line = 64;
    c.max_trailer = 128;
    while (out->consumed < len && !http1_chunked_done(&c)) {
        size_t data = 0, n;
        int64_t used;

        avail = split > out->consumed ? split : len;
        n = avail - out->consumed;
        if (step > 0 && n > step)
            n = step;
        used = http1_chunked_step(&c, in + out->consumed, n, &data);
        if (used < 0) {
            out->error = c.error;
            assert_int_not_equal(c.error, HTTP1_OK);
            return;
        }
        assert_true(used > 0); /* len > 0 and not done: always progress */
        if (data > 0) {
            assert_int_equal((size_t)used, data);
            assert_true(out->data_len + data <= sizeof(out->data));
            memcpy(out->data + out->data_len, in + out->consumed, data);
            out->data_len += data;
        }
        out->consumed += (size_t)used;
    }
    out->done = http1_chunked_done(&c);
    if (out->done) {
        size_t data = 1;
        /* A finished decoder leaves what follows alone. */
        assert_int_equal(http1_chunked_step(&c, "x", 1, &data), 0);
        assert_int_equal(data, 0);
    }
}

/* Asserts that two decodings agree. */
static void assert_same_dechunk(const struct dechunked *a, const struct dechunked *b)
{
    assert_int_equal(a->error, b->error);
    assert_int_equal(a->done, b->done);
    if (a->error != HTTP1_OK)
        return;
    assert_int_equal(a->consumed, b->consumed);
    assert_int_equal(a->data_len, b->data_len);
    assert_memory_equal(a->data, b->data, a->data_len);
}

/*
 * Decodes body whole, one byte at a time and split at every byte boundary; all must give
 * the same result, which must be complete with the expected data and length.
 */
static void assert_dechunks(const char *body, size_t len, bool bare_lf, const char *want,
                            size_t body_len)
{
    static struct dechunked whole, other;

    dechunk(body, len, 0, 0, bare_lf, &whole);
    if (whole.error != HTTP1_OK)
        fprintf(stderr, "refused: %s\n", http1_error_str(whole.error));
    assert_int_equal(whole.error, HTTP1_OK);
    assert_true(whole.done);
    assert_int_equal(whole.consumed, body_len);
    assert_int_equal(whole.data_len, strlen(want));
    assert_memory_equal(whole.data, want, whole.data_len);
    dechunk(body, len, 1, 0, bare_lf, &other);
    assert_same_dechunk(&whole, &other);
    for (size_t split = 1; split < len; split++) {
        dechunk(body, len, 0, split, bare_lf, &other);
        assert_same_dechunk(&whole, &other);
    }
}

/* Asserts that body is refused with err, whole, byte by byte and at every split. */
static void assert_dechunk_refused(const char *body, size_t len, bool bare_lf, enum http1_error err)
{
    static struct dechunked whole, other;

    dechunk(body, len, 0, 0, bare_lf, &whole);
    if (whole.error != err)
        fprintf(stderr, "expected \"%s\", got \"%s\"\n", http1_error_str(err),
                http1_error_str(whole.error));
    assert_int_equal(whole.error, err);
    dechunk(body, len, 1, 0, bare_lf, &other);
    assert_int_equal(other.error, err);
    for (size_t split = 1; split < len; split++) {
        dechunk(body, len, 0, split, bare_lf, &other);
        assert_int_equal(other.error, err);
    }
}

/* Declares a test asserting that a chunked body is refused with err. */
#define REFUSE_CHUNKED(fn, text, err)                                                              \
    static void fn(void **state)                                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        assert_dechunk_refused(LIT(text), false, err);                                             \
    }

/* Two chunks and the last chunk; bytes after the body are left alone. */
static void test_chunked_simple(void **state)
{
    const char body[] = "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\nGET next";

    (void)state;
    assert_dechunks(LIT(body), false, "hello, world", sizeof(body) - 1 - 8);
}

/* Upper- and lower-case hex and leading zeros. */
static void test_chunked_hex_sizes(void **state)
{
    const char body[] = "0000a\r\n0123456789\r\nA\r\nabcdefghij\r\n00\r\n\r\n";

    (void)state;
    assert_dechunks(LIT(body), false, "0123456789abcdefghij", sizeof(body) - 1);
}

/* Chunk extensions: names, token and quoted values, whitespace around the punctuation. */
static void test_chunked_extensions(void **state)
{
    const char body[] = "3;a\r\nabc\r\n"
                        "3;a=b;c=\"d;e\\\"f\"\r\ndef\r\n"
                        "1 ; n = v ;m\r\ng\r\n"
                        "0;last=\"\"\r\n\r\n";

    (void)state;
    assert_dechunks(LIT(body), false, "abcdefg", sizeof(body) - 1);
}

/* Trailer fields are checked and dropped. */
static void test_chunked_trailers(void **state)
{
    const char body[] = "2\r\nok\r\n0\r\nX-Sum: abc\r\nX-Empty:\r\nX-Obs: \xe9\r\n\r\n";

    (void)state;
    assert_dechunks(LIT(body), false, "ok", sizeof(body) - 1);
}

/* An empty body is the last chunk alone. */
static void test_chunked_empty_body(void **state)
{
    const char body[] = "0\r\n\r\n";

    (void)state;
    assert_dechunks(LIT(body), false, "", sizeof(body) - 1);
}

/* With allow_bare_lf, LF alone ends every framing line. */
static void test_chunked_bare_lf_allowed(void **state)
{
    const char body[] = "3\nabc\n2;x\r\nde\n0\nT: v\n\n";

    (void)state;
    assert_dechunks(LIT(body), true, "abcde", sizeof(body) - 1);
}

/* Data and framing are never mixed in one call; data comes back in its own call. */
static void test_chunked_data_separate(void **state)
{
    struct http1_chunked c;
    const char body[] = "5\r\nhello\r\n0\r\n\r\n";
    size_t data = 99;

    (void)state;
    http1_chunked_init(&c);
    assert_int_equal(http1_chunked_step(&c, LIT(body), &data), 3);
    assert_int_equal(data, 0);
    assert_int_equal(http1_chunked_step(&c, body + 3, sizeof(body) - 1 - 3, &data), 5);
    assert_int_equal(data, 5);
    assert_int_equal(http1_chunked_step(&c, body + 8, 1, &data), 1);
    assert_int_equal(data, 0);
    assert_false(http1_chunked_done(&c));
    assert_int_equal(http1_chunked_step(&c, body + 9, sizeof(body) - 1 - 9, &data),
                     sizeof(body) - 1 - 9);
    assert_true(http1_chunked_done(&c));
    assert_int_equal(http1_chunked_step(&c, body, 0, &data), 0);
}

/* The largest chunk size, 2^62, is accepted; the data would then follow. */
static void test_chunked_max_size(void **state)
{
    struct http1_chunked c;
    const char line[] = "4000000000000000\r\n";
    size_t data = 0;

    (void)state;
    http1_chunked_init(&c);
    assert_int_equal(http1_chunked_step(&c, LIT(line), &data), sizeof(line) - 1);
    assert_int_equal(c.remaining, (uint64_t)1 << 62);
    assert_int_equal(http1_chunked_step(&c, "abc", 3, &data), 3);
    assert_int_equal(data, 3);
    assert_int_equal(c.remaining, ((uint64_t)1 << 62) - 3);
}

/* Every prefix of a valid body needs more bytes and none is refused. */
static void test_chunked_prefixes(void **state)
{
    const char body[] = "4;x=\"y\"\r\nwiki\r\n0\r\nT: v\r\n\r\n";
    static struct dechunked d;

    (void)state;
    for (size_t n = 0; n < sizeof(body) - 1; n++) {
        dechunk(body, n, 0, 0, false, &d);
        assert_int_equal(d.error, HTTP1_OK);
        assert_false(d.done);
    }
}

REFUSE_CHUNKED(test_refuse_chunk_size_not_hex, "zz\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_size_missing, "\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_size_signed, "+5\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_size_0x, "0x5\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_size_leading_space, " 5\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_size_trailing_space, "5 \r\nhello\r\n0\r\n\r\n",
               HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_size_17_digits, "00000000000000005\r\nhello\r\n0\r\n\r\n",
               HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_size_over_2_62, "4000000000000001\r\nhello\r\n0\r\n\r\n",
               HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_size_wraps_64_bits, "10000000000000005\r\nhello\r\n0\r\n\r\n",
               HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_size_two_numbers, "5 6\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_SIZE)
REFUSE_CHUNKED(test_refuse_chunk_ext_ctl, "5;a\001\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_EXT)
REFUSE_CHUNKED(test_refuse_chunk_ext_nul_in_quoted, "5;a=\"\0\"\r\nhello\r\n0\r\n\r\n",
               HTTP1_E_CHUNK_EXT)
REFUSE_CHUNKED(test_refuse_chunk_ext_no_name, "5;\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_EXT)
REFUSE_CHUNKED(test_refuse_chunk_ext_no_value, "5;a=\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_EXT)
REFUSE_CHUNKED(test_refuse_chunk_ext_unclosed_quote, "5;a=\"b\r\nhello\r\n0\r\n\r\n",
               HTTP1_E_CHUNK_EXT)
REFUSE_CHUNKED(test_refuse_chunk_ext_bad_token, "5;a=b c\r\nhello\r\n0\r\n\r\n", HTTP1_E_CHUNK_EXT)
REFUSE_CHUNKED(test_refuse_chunk_ext_bare_lf, "5;a=\"b\nc\"\r\nhello\r\n0\r\n\r\n",
               HTTP1_E_CHUNK_EXT)
REFUSE_CHUNKED(test_refuse_chunk_ext_too_long,
               "5;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
               "hello\r\n0\r\n\r\n",
               HTTP1_E_CHUNK_EXT)
REFUSE_CHUNKED(test_refuse_chunk_data_too_long, "5\r\nhelloXX\r\n0\r\n\r\n", HTTP1_E_CHUNK_DATA_END)
REFUSE_CHUNKED(test_refuse_chunk_data_smuggled_chunk, "5\r\nhelloXX0\r\n\r\n",
               HTTP1_E_CHUNK_DATA_END)
REFUSE_CHUNKED(test_refuse_chunk_data_cr_only, "5\r\nhello\rX0\r\n\r\n", HTTP1_E_CHUNK_DATA_END)
REFUSE_CHUNKED(test_refuse_chunk_data_bare_lf, "5\r\nhello\n0\r\n\r\n", HTTP1_E_CHUNK_DATA_END)
REFUSE_CHUNKED(test_refuse_chunk_size_bare_lf, "5\nhello\r\n0\r\n\r\n", HTTP1_E_BARE_LF)
REFUSE_CHUNKED(test_refuse_chunk_size_bare_cr, "5\rhello\r\n0\r\n\r\n", HTTP1_E_BARE_CR)
REFUSE_CHUNKED(test_refuse_trailer_bad_name, "0\r\nX(: v\r\n\r\n", HTTP1_E_TRAILER)
REFUSE_CHUNKED(test_refuse_trailer_no_colon, "0\r\nX-T v\r\n\r\n", HTTP1_E_TRAILER)
REFUSE_CHUNKED(test_refuse_trailer_space_before_colon, "0\r\nX-T : v\r\n\r\n", HTTP1_E_TRAILER)
REFUSE_CHUNKED(test_refuse_trailer_obs_fold, "0\r\nX-T: v\r\n w\r\n\r\n", HTTP1_E_TRAILER)
REFUSE_CHUNKED(test_refuse_trailer_ctl_in_value, "0\r\nX-T: a\001b\r\n\r\n", HTTP1_E_TRAILER)
REFUSE_CHUNKED(test_refuse_trailer_too_large,
               "0\r\nX-T: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
               "X-U: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n",
               HTTP1_E_TRAILER)
REFUSE_CHUNKED(test_refuse_trailer_bare_cr, "0\r\nX-T: v\rX\r\n\r\n", HTTP1_E_BARE_CR)
REFUSE_CHUNKED(test_refuse_trailer_bare_lf, "0\r\nX-T: v\n\r\n", HTTP1_E_BARE_LF)
REFUSE_CHUNKED(test_refuse_trailer_end_bare_cr, "0\r\n\rX", HTTP1_E_BARE_CR)

/* ---------------------------------------------------------------------------------- */
/* Request targets                                                                     */
/* ---------------------------------------------------------------------------------- */

/* Wraps a NUL-terminated target in a span starting at offset 0. */
static struct http1_span span_of(const char *s)
{
    struct http1_span sp = {0, (uint32_t)strlen(s)};

    return sp;
}

/* Asserts that an absolute-form target splits into host, port and path. */
static void assert_absolute(const char *s, const char *host, uint16_t port, const char *path,
                            bool v6)
{
    struct http1_target t;

    assert_int_equal(http1_parse_absolute_target(s, span_of(s), &t), 0);
    assert_span(s, t.scheme, s[0] == 'H' ? "HTTP" : "http");
    assert_span(s, t.host, host);
    assert_int_equal(t.port, port);
    assert_span(s, t.path, path);
    assert_int_equal(t.host_is_ipv6, v6);
}

/* Asserts that an authority-form target splits into host and port. */
static void assert_authority(const char *s, const char *host, uint16_t port, bool v6)
{
    struct http1_target t;

    assert_int_equal(http1_parse_authority(s, span_of(s), &t), 0);
    assert_int_equal(t.scheme.len, 0);
    assert_int_equal(t.path.len, 0);
    assert_span(s, t.host, host);
    assert_int_equal(t.port, port);
    assert_int_equal(t.host_is_ipv6, v6);
}

/* Absolute-form targets that are accepted. */
static void test_target_absolute_ok(void **state)
{
    (void)state;
    assert_absolute("http://example.com/a/b?c=d&e", "example.com", 80, "/a/b?c=d&e", false);
    assert_absolute("http://example.com", "example.com", 80, "", false);
    assert_absolute("HTTP://Example.COM:8080", "Example.COM", 8080, "", false);
    assert_absolute("http://h:1/", "h", 1, "/", false);
    assert_absolute("http://h:65535/x", "h", 65535, "/x", false);
    assert_absolute("http://my_host-1.example./", "my_host-1.example.", 80, "/", false);
    assert_absolute("http://192.0.2.1:81/p", "192.0.2.1", 81, "/p", false);
}

/* A target inside a larger buffer: the spans are offsets into that buffer. */
static void test_target_spans_are_offsets(void **state)
{
    const char buf[] = "GET http://h:8/p HTTP/1.1";
    struct http1_span s = {4, 12};
    struct http1_target t;

    (void)state;
    assert_int_equal(http1_parse_absolute_target(buf, s, &t), 0);
    assert_int_equal(t.host.off, 11);
    assert_span(buf, t.host, "h");
    assert_span(buf, t.path, "/p");
    assert_int_equal(t.port, 8);
}

/* Bracketed IPv6 literals, with and without a port. */
static void test_target_ipv6(void **state)
{
    (void)state;
    assert_absolute("http://[::1]/", "::1", 80, "/", true);
    assert_absolute("http://[2001:db8::1]:8080/x?y", "2001:db8::1", 8080, "/x?y", true);
    assert_absolute("http://[::ffff:192.0.2.1]", "::ffff:192.0.2.1", 80, "", true);
    assert_authority("[::1]:443", "::1", 443, true);
    assert_authority("[2001:db8::42]:8443", "2001:db8::42", 8443, true);
}

/* Asserts that an absolute-form target is refused. */
static void assert_absolute_refused(const char *s)
{
    struct http1_target t;

    if (http1_parse_absolute_target(s, span_of(s), &t) == 0)
        fprintf(stderr, "accepted: %s\n", s);
    assert_int_equal(http1_parse_absolute_target(s, span_of(s), &t), -1);
}

/* Asserts that an authority-form target is refused. */
static void assert_authority_refused(const char *s)
{
    struct http1_target t;

    if (http1_parse_authority(s, span_of(s), &t) == 0)
        fprintf(stderr, "accepted: %s\n", s);
    assert_int_equal(http1_parse_authority(s, span_of(s), &t), -1);
}

/* Ports outside 1..65535, or not plain digits, are refused. */
static void test_target_bad_ports(void **state)
{
    (void)state;
    assert_absolute_refused("http://h:0/");
    assert_absolute_refused("http://h:65536/");
    assert_absolute_refused("http://h:100000/");
    assert_absolute_refused("http://h:/");
    assert_absolute_refused("http://h:8a/");
    assert_absolute_refused("http://h:-1/");
    assert_absolute_refused("http://[::1]:0/");
    assert_authority_refused("h:0");
    assert_authority_refused("h:65536");
    assert_authority_refused("h:");
    assert_authority_refused("h:+443");
    assert_authority_refused("[::1]:65536");
}

/* Userinfo is refused: it hides the real host from a reader of logs. */
static void test_target_userinfo(void **state)
{
    (void)state;
    assert_absolute_refused("http://user:pw@example.com/");
    assert_absolute_refused("http://user@example.com/");
    assert_absolute_refused("http://@example.com/");
    assert_authority_refused("user@example.com:443");
    assert_authority_refused("user:pw@example.com:443");
}

/* Only the http scheme is an absolute-form target here; https goes through CONNECT. */
static void test_target_schemes(void **state)
{
    (void)state;
    assert_absolute_refused("https://example.com/");
    assert_absolute_refused("ftp://example.com/");
    assert_absolute_refused("httpx://example.com/");
    assert_absolute_refused("http:/example.com/");
    assert_absolute_refused("http:example.com");
    assert_absolute_refused("//example.com/");
    assert_absolute_refused("/path");
    assert_absolute_refused("*");
    assert_absolute_refused("http://");
}

/* Fragments are never sent to a server, so a target with one is refused. */
static void test_target_fragment(void **state)
{
    (void)state;
    assert_absolute_refused("http://h/p#frag");
    assert_absolute_refused("http://h#frag");
    assert_absolute_refused("http://h/p?q#");
}

/* Hosts must be names, IPv4 or bracketed IPv6 literals. */
static void test_target_bad_hosts(void **state)
{
    (void)state;
    assert_absolute_refused("http:///path");
    assert_absolute_refused("http://:80/");
    assert_absolute_refused("http://ex!ample.com/");
    assert_absolute_refused("http://ex%41mple.com/");
    assert_absolute_refused("http://::1/");
    assert_absolute_refused("http://[::1/");
    assert_absolute_refused("http://[::1]x/");
    assert_absolute_refused("http://[]/");
    assert_absolute_refused("http://[zz::1]/");
    assert_absolute_refused("http://[fe80::1%25eth0]/");
    assert_absolute_refused("http://[192.0.2.1]/");
    assert_authority_refused(":443");
    assert_authority_refused("[]:443");
    assert_authority_refused("[::1]");
    assert_authority_refused("::1:443");
    assert_authority_refused("[::1]x:443");
}

/* Authority-form targets that are accepted, and those that are not authorities. */
static void test_target_authority(void **state)
{
    (void)state;
    assert_authority("example.com:443", "example.com", 443, false);
    assert_authority("h:1", "h", 1, false);
    assert_authority("192.0.2.7:65535", "192.0.2.7", 65535, false);
    assert_authority_refused("example.com");
    assert_authority_refused("example.com:443/path");
    assert_authority_refused("http://example.com:443");
    assert_authority_refused("");
}

/* "http://h?q" has a query but no path: the path span starts at the "?". */
static void test_target_query_without_path(void **state)
{
    const char s[] = "http://h?q=1";
    struct http1_target t;

    (void)state;
    assert_int_equal(http1_parse_absolute_target(s, span_of(s), &t), 0);
    assert_span(s, t.host, "h");
    assert_span(s, t.path, "?q=1");
}

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                             */
/* ---------------------------------------------------------------------------------- */

/* Token lists: whole elements, any case, OWS and empty elements ignored. */
static void test_list_has_token(void **state)
{
    const char v[] = " Keep-Alive ,,\tUPGRADE,close ";

    (void)state;
    assert_true(http1_list_has_token(LIT(v), "keep-alive"));
    assert_true(http1_list_has_token(LIT(v), "upgrade"));
    assert_true(http1_list_has_token(LIT(v), "close"));
    assert_false(http1_list_has_token(LIT(v), "clos"));
    assert_false(http1_list_has_token(LIT(v), "keep"));
    assert_false(http1_list_has_token(LIT("closed"), "close"));
    assert_false(http1_list_has_token(LIT("xclose"), "close"));
    assert_false(http1_list_has_token(LIT(""), "close"));
    assert_false(http1_list_has_token(LIT(" , "), "close"));
    assert_true(http1_list_has_token(LIT("close"), "close"));
    /* Only n bytes count, even when more follow. */
    assert_false(http1_list_has_token("close", 4, "close"));
}

/* Span comparison is ASCII case-insensitive and length-exact. */
static void test_span_eq_ci(void **state)
{
    const char buf[] = "xxContent-Lengthyy";
    struct http1_span s = {2, 14};
    struct http1_span empty = {2, 0};

    (void)state;
    assert_true(http1_span_eq_ci(buf, s, "content-length"));
    assert_true(http1_span_eq_ci(buf, s, "CONTENT-LENGTH"));
    assert_false(http1_span_eq_ci(buf, s, "content-lengt"));
    assert_false(http1_span_eq_ci(buf, s, "content-lengthy"));
    assert_false(http1_span_eq_ci(buf, s, "content_length"));
    assert_true(http1_span_eq_ci(buf, empty, ""));
    assert_false(http1_span_eq_ci(buf, empty, "c"));
}

/* Every error has its own short phrase. */
static void test_error_str(void **state)
{
    (void)state;
    for (int a = HTTP1_OK; a <= HTTP1_E_TRAILER; a++) {
        const char *s = http1_error_str((enum http1_error)a);
        assert_non_null(s);
        assert_true(strlen(s) > 0 && strlen(s) < 80);
        for (int b = HTTP1_OK; b < a; b++)
            assert_string_not_equal(s, http1_error_str((enum http1_error)b));
    }
}

/* The documented defaults. */
static void test_limits_default(void **state)
{
    struct http1_limits lim;
    struct http1_chunked c;

    (void)state;
    memset(&lim, 0xff, sizeof(lim));
    http1_limits_default(&lim);
    assert_int_equal(lim.max_line, 8192);
    assert_int_equal(lim.max_head, 65536);
    assert_int_equal(lim.max_fields, 100);
    assert_false(lim.allow_bare_lf);
    memset(&c, 0xff, sizeof(c));
    http1_chunked_init(&c);
    assert_int_equal(c.max_line, 4096);
    assert_int_equal(c.max_trailer, 65536);
    assert_false(c.allow_bare_lf);
    assert_false(http1_chunked_done(&c));
    assert_int_equal(c.error, HTTP1_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* valid heads */
        cmocka_unit_test(test_get_absolute_form),
        cmocka_unit_test(test_connect_authority_form),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_content_length_zero),
        cmocka_unit_test(test_content_length_18_digits),
        cmocka_unit_test(test_content_length_equal_repeats),
        cmocka_unit_test(test_chunked_request),
        cmocka_unit_test(test_http10_request),
        cmocka_unit_test(test_leading_empty_lines),
        cmocka_unit_test(test_field_values_trimmed),
        cmocka_unit_test(test_tchar_method_and_name),
        cmocka_unit_test(test_connection_upgrade_expect),
        cmocka_unit_test(test_connection_not_substring),
        cmocka_unit_test(test_fields_at_limit),
        cmocka_unit_test(test_line_at_limit),
        cmocka_unit_test(test_head_at_limit),
        cmocka_unit_test(test_bytewise_large_head),
        cmocka_unit_test(test_resume_does_not_rescan),
        cmocka_unit_test(test_buffer_moves_between_calls),
        cmocka_unit_test(test_response_200),
        cmocka_unit_test(test_response_100_continue),
        cmocka_unit_test(test_response_101),
        cmocka_unit_test(test_response_204_304),
        cmocka_unit_test(test_response_reason_forms),
        cmocka_unit_test(test_response_te_chunked_last),
        cmocka_unit_test(test_response_te_not_chunked_last),
        cmocka_unit_test(test_response_bare_lf_allowed),
        cmocka_unit_test(test_response_host_ignored),
        cmocka_unit_test(test_every_prefix_needs_more),
        /* refused heads */
        cmocka_unit_test(test_refuse_line_too_long),
        cmocka_unit_test(test_refuse_line_too_long_early),
        cmocka_unit_test(test_refuse_status_line_too_long),
        cmocka_unit_test(test_refuse_line_too_long_default),
        cmocka_unit_test(test_refuse_head_too_large),
        cmocka_unit_test(test_refuse_head_too_large_early),
        cmocka_unit_test(test_refuse_too_many_fields),
        cmocka_unit_test(test_refuse_fields_over_capacity),
        cmocka_unit_test(test_refuse_method_not_tchar),
        cmocka_unit_test(test_refuse_method_empty),
        cmocka_unit_test(test_refuse_method_nul),
        cmocka_unit_test(test_refuse_method_tab_separator),
        cmocka_unit_test(test_refuse_target_empty),
        cmocka_unit_test(test_refuse_target_double_space),
        cmocka_unit_test(test_refuse_target_space_inside),
        cmocka_unit_test(test_refuse_target_ctl),
        cmocka_unit_test(test_refuse_target_del),
        cmocka_unit_test(test_refuse_target_tab),
        cmocka_unit_test(test_refuse_version_http09),
        cmocka_unit_test(test_refuse_version_lowercase),
        cmocka_unit_test(test_refuse_version_trailing_space),
        cmocka_unit_test(test_refuse_version_two_digits),
        cmocka_unit_test(test_refuse_version_no_minor),
        cmocka_unit_test(test_refuse_version_garbage),
        cmocka_unit_test(test_refuse_version_http20),
        cmocka_unit_test(test_refuse_version_http12),
        cmocka_unit_test(test_refuse_version_http09_explicit),
        cmocka_unit_test(test_refuse_response_version_http20),
        cmocka_unit_test(test_refuse_response_version_malformed),
        cmocka_unit_test(test_refuse_response_leading_crlf),
        cmocka_unit_test(test_refuse_status_two_digits),
        cmocka_unit_test(test_refuse_status_four_digits),
        cmocka_unit_test(test_refuse_status_below_100),
        cmocka_unit_test(test_refuse_status_letters),
        cmocka_unit_test(test_refuse_status_missing),
        cmocka_unit_test(test_refuse_status_double_space),
        cmocka_unit_test(test_refuse_bare_cr_in_value),
        cmocka_unit_test(test_refuse_bare_cr_in_request_line),
        cmocka_unit_test(test_refuse_bare_cr_line_end),
        cmocka_unit_test(test_refuse_bare_cr_empty_line),
        cmocka_unit_test(test_refuse_bare_lf_request_line),
        cmocka_unit_test(test_refuse_bare_lf_field),
        cmocka_unit_test(test_refuse_bare_lf_end_of_head),
        cmocka_unit_test(test_refuse_response_bare_lf_by_default),
        cmocka_unit_test(test_refuse_obs_fold_space),
        cmocka_unit_test(test_refuse_obs_fold_tab),
        cmocka_unit_test(test_refuse_space_before_first_field),
        cmocka_unit_test(test_refuse_field_space_before_colon),
        cmocka_unit_test(test_refuse_field_tab_before_colon),
        cmocka_unit_test(test_refuse_field_empty_name),
        cmocka_unit_test(test_refuse_field_no_colon),
        cmocka_unit_test(test_refuse_field_ctl_in_name),
        cmocka_unit_test(test_refuse_field_obs_text_in_name),
        cmocka_unit_test(test_refuse_field_value_nul),
        cmocka_unit_test(test_refuse_field_value_ctl),
        cmocka_unit_test(test_refuse_field_value_del),
        cmocka_unit_test(test_refuse_field_value_esc),
        cmocka_unit_test(test_refuse_reason_ctl),
        cmocka_unit_test(test_refuse_cl_not_digits),
        cmocka_unit_test(test_refuse_cl_signed),
        cmocka_unit_test(test_refuse_cl_negative),
        cmocka_unit_test(test_refuse_cl_empty),
        cmocka_unit_test(test_refuse_cl_hex),
        cmocka_unit_test(test_refuse_cl_inner_space),
        cmocka_unit_test(test_refuse_cl_empty_element),
        cmocka_unit_test(test_refuse_cl_19_digits),
        cmocka_unit_test(test_refuse_cl_overflow),
        cmocka_unit_test(test_refuse_response_cl_invalid),
        cmocka_unit_test(test_refuse_cl_conflict_fields),
        cmocka_unit_test(test_refuse_cl_conflict_list),
        cmocka_unit_test(test_refuse_response_cl_conflict),
        cmocka_unit_test(test_refuse_cl_then_te),
        cmocka_unit_test(test_refuse_te_then_cl),
        cmocka_unit_test(test_refuse_response_cl_and_te),
        cmocka_unit_test(test_refuse_te_gzip),
        cmocka_unit_test(test_refuse_te_gzip_chunked),
        cmocka_unit_test(test_refuse_te_chunked_gzip),
        cmocka_unit_test(test_refuse_te_split_fields),
        cmocka_unit_test(test_refuse_te_chunked_with_param),
        cmocka_unit_test(test_refuse_te_identity),
        cmocka_unit_test(test_refuse_te_chunked_twice),
        cmocka_unit_test(test_refuse_te_chunked_two_fields),
        cmocka_unit_test(test_refuse_te_empty_element),
        cmocka_unit_test(test_refuse_te_empty_value),
        cmocka_unit_test(test_refuse_response_te_chunked_twice),
        cmocka_unit_test(test_refuse_response_te_empty_element),
        cmocka_unit_test(test_refuse_host_duplicate),
        cmocka_unit_test(test_refuse_host_duplicate_same_value),
        /* chunked decoder */
        cmocka_unit_test(test_chunked_simple),
        cmocka_unit_test(test_chunked_hex_sizes),
        cmocka_unit_test(test_chunked_extensions),
        cmocka_unit_test(test_chunked_trailers),
        cmocka_unit_test(test_chunked_empty_body),
        cmocka_unit_test(test_chunked_bare_lf_allowed),
        cmocka_unit_test(test_chunked_data_separate),
        cmocka_unit_test(test_chunked_max_size),
        cmocka_unit_test(test_chunked_prefixes),
        cmocka_unit_test(test_refuse_chunk_size_not_hex),
        cmocka_unit_test(test_refuse_chunk_size_missing),
        cmocka_unit_test(test_refuse_chunk_size_signed),
        cmocka_unit_test(test_refuse_chunk_size_0x),
        cmocka_unit_test(test_refuse_chunk_size_leading_space),
        cmocka_unit_test(test_refuse_chunk_size_trailing_space),
        cmocka_unit_test(test_refuse_chunk_size_17_digits),
        cmocka_unit_test(test_refuse_chunk_size_over_2_62),
        cmocka_unit_test(test_refuse_chunk_size_wraps_64_bits),
        cmocka_unit_test(test_refuse_chunk_size_two_numbers),
        cmocka_unit_test(test_refuse_chunk_ext_ctl),
        cmocka_unit_test(test_refuse_chunk_ext_nul_in_quoted),
        cmocka_unit_test(test_refuse_chunk_ext_no_name),
        cmocka_unit_test(test_refuse_chunk_ext_no_value),
        cmocka_unit_test(test_refuse_chunk_ext_unclosed_quote),
        cmocka_unit_test(test_refuse_chunk_ext_bad_token),
        cmocka_unit_test(test_refuse_chunk_ext_bare_lf),
        cmocka_unit_test(test_refuse_chunk_ext_too_long),
        cmocka_unit_test(test_refuse_chunk_data_too_long),
        cmocka_unit_test(test_refuse_chunk_data_smuggled_chunk),
        cmocka_unit_test(test_refuse_chunk_data_cr_only),
        cmocka_unit_test(test_refuse_chunk_data_bare_lf),
        cmocka_unit_test(test_refuse_chunk_size_bare_lf),
        cmocka_unit_test(test_refuse_chunk_size_bare_cr),
        cmocka_unit_test(test_refuse_trailer_bad_name),
        cmocka_unit_test(test_refuse_trailer_no_colon),
        cmocka_unit_test(test_refuse_trailer_space_before_colon),
        cmocka_unit_test(test_refuse_trailer_obs_fold),
        cmocka_unit_test(test_refuse_trailer_ctl_in_value),
        cmocka_unit_test(test_refuse_trailer_too_large),
        cmocka_unit_test(test_refuse_trailer_bare_cr),
        cmocka_unit_test(test_refuse_trailer_bare_lf),
        cmocka_unit_test(test_refuse_trailer_end_bare_cr),
        /* request targets */
        cmocka_unit_test(test_target_absolute_ok),
        cmocka_unit_test(test_target_spans_are_offsets),
        cmocka_unit_test(test_target_ipv6),
        cmocka_unit_test(test_target_bad_ports),
        cmocka_unit_test(test_target_userinfo),
        cmocka_unit_test(test_target_schemes),
        cmocka_unit_test(test_target_fragment),
        cmocka_unit_test(test_target_bad_hosts),
        cmocka_unit_test(test_target_authority),
        cmocka_unit_test(test_target_query_without_path),
        /* helpers */
        cmocka_unit_test(test_list_has_token),
        cmocka_unit_test(test_span_eq_ci),
        cmocka_unit_test(test_error_str),
        cmocka_unit_test(test_limits_default),
    };
    return cmocka_run_group_tests_name("unit_http1", tests, NULL, NULL);
}
