/*
 * libFuzzer target for the HTTP/1.1 framing module.  The first byte picks the mode (limits,
 * bare LF, how the input is cut); the rest is a message.  It is parsed as a request and as
 * a response, whole and fed in pseudo-random pieces, and both must agree exactly; what
 * follows a head goes through the chunked decoder, whole and in pieces, which must agree
 * too; a request target goes through both target parsers, whose spans must stay inside it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/http1.h"
#include "fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS   128
#define MODE_LF  0x01 /* allow bare LF in heads and chunked framing */
#define MODE_BIG 0x02 /* default limits instead of small ones that inputs can reach */
#define MODE_BOD 0x04 /* decode the whole input as a chunked body as well */

/* One parse: parser, head and fields. */
struct run {
    struct http1_parser p;
    struct http1_head h;
    struct http1_field f[FIELDS];
    int64_t r;
};

/* What a chunked decoding gave. */
struct body {
    size_t consumed, data_len;
    bool done;
    enum http1_error error;
};

/* A small xorshift generator, so that the pieces depend only on the input. */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* The size of the next piece: mostly small, sometimes large, never zero. */
static size_t piece(uint32_t *seed)
{
    uint32_t r = next_rand(seed);

    return (r & 3) == 0 ? 1 + (r >> 8) % 512 : 1 + (r >> 8) % 7;
}

/* The limits for this mode: small enough for fuzz inputs to hit, or the defaults. */
static void mode_limits(uint8_t mode, struct http1_limits *lim)
{
    http1_limits_default(lim);
    if (!(mode & MODE_BIG)) {
        lim->max_line = 64 + (mode >> 4) * 16;
        lim->max_head = 256 + (mode >> 4) * 128;
        lim->max_fields = 8 + (mode >> 4);
    }
    lim->allow_bare_lf = (mode & MODE_LF) != 0;
}

/* Parses buf[0..len) in one call, or in pieces from seed when seed is non-zero. */
static void parse(struct run *o, enum http1_kind kind, const struct http1_limits *lim,
                  const char *buf, size_t len, uint32_t seed)
{
    http1_parser_init(&o->p, kind, lim, &o->h, o->f, FIELDS);
    if (seed == 0) {
        o->r = http1_parse_head(&o->p, buf, len);
        return;
    }
    o->r = 0;
    for (size_t have = 0; have < len && o->r == 0;) {
        size_t n = piece(&seed);
        have = n < len - have ? have + n : len;
        o->r = http1_parse_head(&o->p, buf, have);
    }
}

/* Checks that a span lies inside buf[0..end). */
static void check_span(struct http1_span s, size_t end)
{
    CHECK((size_t)s.off + s.len <= end);
}

/* Checks that a complete head is consistent with itself and with its bytes. */
static void check_head(const struct run *o, const char *buf, size_t len)
{
    const struct http1_head *h = &o->h;
    size_t end = (size_t)o->r;

    CHECK(end <= len && end == h->head_len && end <= o->p.limits.max_head);
    CHECK(h->nfields <= o->p.limits.max_fields);
    CHECK(buf[end - 1] == '\n');
    check_span(h->method, end);
    check_span(h->target, end);
    check_span(h->reason, end);
    CHECK(h->version_minor <= 1);
    CHECK(!(h->has_content_length && h->has_transfer_encoding));
    CHECK(!h->chunked || h->has_transfer_encoding);
    CHECK(h->host_field < (int32_t)h->nfields);
    if (o->p.kind == HTTP1_RESPONSE)
        CHECK(h->status >= 100 && h->status <= 999);
    else
        CHECK(h->method.len > 0 && h->target.len > 0);
    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];
        check_span(f->name, end);
        check_span(f->value, end);
        CHECK(f->name.len > 0);
        CHECK(memchr(buf + f->value.off, '\r', f->value.len) == NULL);
        CHECK(memchr(buf + f->value.off, '\n', f->value.len) == NULL);
        CHECK(memchr(buf + f->value.off, '\0', f->value.len) == NULL);
    }
}

/* Checks that two parses of the same bytes found exactly the same thing. */
static void check_same(const struct run *a, const struct run *b)
{
    CHECK(a->r == b->r);
    CHECK(a->p.error == b->p.error);
    if (a->r < 0)
        CHECK(a->p.error_pos == b->p.error_pos);
    if (a->r <= 0)
        return;
    CHECK(memcmp(&a->h.method, &b->h.method, sizeof(a->h.method)) == 0);
    CHECK(memcmp(&a->h.target, &b->h.target, sizeof(a->h.target)) == 0);
    CHECK(memcmp(&a->h.reason, &b->h.reason, sizeof(a->h.reason)) == 0);
    CHECK(a->h.status == b->h.status && a->h.version_minor == b->h.version_minor);
    CHECK(a->h.nfields == b->h.nfields);
    CHECK(memcmp(a->f, b->f, sizeof(a->f[0]) * a->h.nfields) == 0);
    CHECK(a->h.content_length == b->h.content_length);
    CHECK(a->h.has_content_length == b->h.has_content_length);
    CHECK(a->h.has_transfer_encoding == b->h.has_transfer_encoding);
    CHECK(a->h.chunked == b->h.chunked);
    CHECK(a->h.conn_close == b->h.conn_close && a->h.conn_keep_alive == b->h.conn_keep_alive);
    CHECK(a->h.conn_upgrade == b->h.conn_upgrade && a->h.has_upgrade == b->h.has_upgrade);
    CHECK(a->h.expect_continue == b->h.expect_continue);
    CHECK(a->h.host_field == b->h.host_field);
}

/* Decodes in[0..len) as a chunked body, whole or in pieces from seed; data goes to out. */
static void dechunk(const char *in, size_t len, bool bare_lf, uint32_t seed, char *out,
                    struct body *b)
{
    struct http1_chunked c;

    memset(b, 0, sizeof(*b));
    http1_chunked_init(&c);
    c.allow_bare_lf = bare_lf;
    c.max_line = 128;
    c.max_trailer = 512;
    while (b->consumed < len && !http1_chunked_done(&c)) {
        size_t n = len - b->consumed, data = 0;
        int64_t used;

        if (seed != 0) {
            size_t k = piece(&seed);
            n = k < n ? k : n;
        }
        used = http1_chunked_step(&c, in + b->consumed, n, &data);
        if (used < 0) {
            CHECK(c.error != HTTP1_OK);
            b->error = c.error;
            return;
        }
        CHECK(used > 0 && (size_t)used <= n);
        if (data > 0) {
            CHECK((size_t)used == data);
            memcpy(out + b->data_len, in + b->consumed, data);
            b->data_len += data;
        }
        b->consumed += (size_t)used;
    }
    b->done = http1_chunked_done(&c);
    if (b->done) {
        size_t data = 1;
        CHECK(http1_chunked_step(&c, in, len, &data) == 0 && data == 0);
    }
}

/* Decodes a body whole and in pieces and checks that both give the same bytes. */
static void check_chunked(const char *in, size_t len, bool bare_lf, uint32_t seed)
{
    struct body a, b;
    char *o1 = malloc(len + 1), *o2 = malloc(len + 1);

    CHECK(o1 != NULL && o2 != NULL);
    dechunk(in, len, bare_lf, 0, o1, &a);
    dechunk(in, len, bare_lf, seed | 1, o2, &b);
    CHECK(a.error == b.error && a.done == b.done);
    if (a.error == HTTP1_OK) {
        CHECK(a.done || a.consumed == len);
        CHECK(b.done || b.consumed == len);
        CHECK(a.data_len == b.data_len && memcmp(o1, o2, a.data_len) == 0);
        CHECK(a.data_len <= a.consumed);
        if (a.done)
            CHECK(a.consumed == b.consumed);
    }
    free(o1);
    free(o2);
}

/* Checks what a target parser gave: spans inside the target, a real port, a valid host. */
static void check_target(const char *buf, struct http1_span span, const struct http1_target *t,
                         bool absolute)
{
    size_t end = (size_t)span.off + span.len;

    CHECK(t->host.off >= span.off && (size_t)t->host.off + t->host.len <= end);
    CHECK(t->path.len == 0 ||
          (t->path.off >= span.off && (size_t)t->path.off + t->path.len <= end));
    CHECK(t->host.len > 0 && t->port > 0);
    CHECK(memchr(buf + t->host.off, '@', t->host.len) == NULL);
    CHECK(memchr(buf + span.off, '#', span.len) == NULL);
    if (absolute) {
        CHECK(t->scheme.len == 4 && http1_span_eq_ci(buf, t->scheme, "http"));
        CHECK(t->path.len == 0 || buf[t->path.off] == '/' || buf[t->path.off] == '?');
    } else {
        CHECK(t->scheme.len == 0 && t->path.len == 0);
    }
}

/* Runs both target parsers over a request target. */
static void check_targets(const char *buf, struct http1_span span)
{
    struct http1_target t;

    if (http1_parse_absolute_target(buf, span, &t) == 0)
        check_target(buf, span, &t, true);
    if (http1_parse_authority(buf, span, &t) == 0)
        check_target(buf, span, &t, false);
}

/* Parses the input as one kind of head, whole and in pieces, and follows up on the result. */
static void fuzz_kind(enum http1_kind kind, uint8_t mode, const char *buf, size_t len)
{
    static struct run whole, split;
    struct http1_limits lim;
    uint32_t seed = (0x9e3779b9u ^ (uint32_t)mode << 8 ^ (uint32_t)len) | 1;

    mode_limits(mode, &lim);
    parse(&whole, kind, &lim, buf, len, 0);
    parse(&split, kind, &lim, buf, len, seed);
    check_same(&whole, &split);
    if (whole.r < 0)
        CHECK(whole.p.error != HTTP1_OK && whole.p.error_pos <= len);
    if (whole.r <= 0)
        return;
    check_head(&whole, buf, len);
    if (kind == HTTP1_REQUEST)
        check_targets(buf, whole.h.target);
    if (whole.h.chunked)
        check_chunked(buf + whole.r, len - (size_t)whole.r, lim.allow_bare_lf, seed);
}

/* First byte: the mode; the rest: the message. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data + 1;
    size_t len;
    uint8_t mode;

    if (size < 1)
        return 0;
    mode = data[0];
    len = size - 1;
    fuzz_kind(HTTP1_REQUEST, mode, buf, len);
    fuzz_kind(HTTP1_RESPONSE, mode, buf, len);
    if (mode & MODE_BOD)
        check_chunked(buf, len, (mode & MODE_LF) != 0, (uint32_t)len * 2654435761u);
    /* The target parsers take any bytes, not only those a head let through. */
    {
        struct http1_span all = {0, (uint32_t)len};
        check_targets(buf, all);
    }
    return 0;
}
