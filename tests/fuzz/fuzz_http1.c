/*
 * libFuzzer target for the HTTP/1.1 parser.  The first byte picks the mode; the rest is a
 * message.  Each head is parsed whole and again fed in pieces, and both must agree; the
 * chunked decoder runs over what follows the head, whole and byte by byte, and must
 * produce the same body; the target parsers run on every request target.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS 128

/* Parses buf as one head, feeding it in steps of step bytes (0 = whole). */
static int64_t parse(enum http1_kind kind, bool bare_lf, const char *buf, size_t len, size_t step,
                     struct http1_head *head, struct http1_field *fields, enum http1_error *err)
{
    struct http1_parser p;
    struct http1_limits lim;
    int64_t r = 0;

    http1_limits_default(&lim);
    lim.max_head = 4096;
    lim.max_line = 1024;
    lim.max_fields = 32;
    lim.allow_bare_lf = bare_lf;
    http1_parser_init(&p, kind, &lim, head, fields, FIELDS);
    if (step == 0) {
        r = http1_parse_head(&p, buf, len);
    } else {
        for (size_t have = 0; have < len && r == 0;) {
            have = have + step < len ? have + step : len;
            r = http1_parse_head(&p, buf, have);
        }
    }
    *err = p.error;
    return r;
}

/* Decodes a chunked body in steps of at most step bytes; returns bytes consumed or -1. */
static int64_t dechunk(const char *in, size_t len, size_t step, bool bare_lf, char *out,
                       size_t *out_len)
{
    struct http1_chunked ch;
    size_t off = 0;

    http1_chunked_init(&ch);
    ch.allow_bare_lf = bare_lf;
    *out_len = 0;
    while (off < len && !http1_chunked_done(&ch)) {
        size_t n = len - off < step ? len - off : step, data = 0;
        int64_t used = http1_chunked_step(&ch, in + off, n, &data);
        if (used < 0)
            return -1;
        if (used == 0)
            break;
        if (data > 0) {
            if ((size_t)used != data)
                abort();
            memcpy(out + *out_len, in + off, data);
            *out_len += data;
        }
        off += (size_t)used;
    }
    return http1_chunked_done(&ch) ? (int64_t)off : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http1_field f1[FIELDS], f2[FIELDS];
    struct http1_head h1, h2;
    enum http1_error e1, e2;
    enum http1_kind kind;
    bool bare_lf;
    const char *buf;
    size_t len, step;
    int64_t r1, r2;

    if (size < 1)
        return 0;
    kind = (data[0] & 1) ? HTTP1_RESPONSE : HTTP1_REQUEST;
    bare_lf = (data[0] & 2) != 0;
    step = (size_t)(data[0] >> 2) % 7 + 1;
    buf = (const char *)data + 1;
    len = size - 1;

    r1 = parse(kind, bare_lf, buf, len, 0, &h1, f1, &e1);
    r2 = parse(kind, bare_lf, buf, len, step, &h2, f2, &e2);
    /* Fed in pieces, a head may be refused earlier and for another reason (a line that is
     * already too long before its bare CR arrives), but never accepted differently. */
    if (r1 != r2 || (r1 < 0 && (e1 == HTTP1_OK || e2 == HTTP1_OK)))
        abort();
    if (r1 > 0) {
        struct http1_target t;
        if ((size_t)r1 > len || h1.nfields != h2.nfields ||
            h1.content_length != h2.content_length || h1.chunked != h2.chunked)
            abort();
        for (uint32_t i = 0; i < h1.nfields; i++)
            if (h1.fields[i].name.off + h1.fields[i].name.len > (uint32_t)r1 ||
                h1.fields[i].value.off + h1.fields[i].value.len > (uint32_t)r1)
                abort();
        if (kind == HTTP1_REQUEST) {
            if (http1_parse_absolute_target(buf, h1.target, &t) == 0 &&
                t.host.off + t.host.len > h1.target.off + h1.target.len)
                abort();
            if (http1_parse_authority(buf, h1.target, &t) == 0 && t.port == 0)
                abort();
        }
        if (h1.chunked) {
            char *o1 = malloc(len + 1), *o2 = malloc(len + 1);
            size_t n1 = 0, n2 = 0;
            int64_t c1 = dechunk(buf + r1, len - (size_t)r1, len + 1, bare_lf, o1, &n1);
            int64_t c2 = dechunk(buf + r1, len - (size_t)r1, 1, bare_lf, o2, &n2);
            if (c1 != c2 || (c1 > 0 && (n1 != n2 || memcmp(o1, o2, n1) != 0)))
                abort();
            free(o1);
            free(o2);
        }
    }
    return 0;
}
