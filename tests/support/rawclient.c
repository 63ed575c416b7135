/* Raw HTTP client over a bounded socket. */
#include "rawclient.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpmsg.h"
#include "tio.h"

/* Opens the connection. */
struct rawclient *rawclient_connect(const char *ip, uint16_t port, int timeout_ms)
{
    struct rawclient *c;
    int fd = tio_connect(ip, port, timeout_ms);
    int err;

    if (fd == -1)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        err = errno;
        close(fd);
        errno = err;
        return NULL;
    }
    c->fd = fd;
    return c;
}

/* Sends all bytes. */
int rawclient_send(struct rawclient *c, const void *buf, size_t len)
{
    return tio_write_all(c->fd, buf, len, 10000);
}

/* Sends a string. */
int rawclient_sends(struct rawclient *c, const char *s)
{
    return rawclient_send(c, s, strlen(s));
}

/* Reads more bytes into c->in; returns > 0, 0 (EOF) or -1 (error or timeout). */
static ssize_t rawclient_fill(struct rawclient *c, int timeout_ms)
{
    char buf[65536];
    ssize_t n;

    if (c->eof)
        return 0;
    n = tio_read_some(c->fd, buf, sizeof(buf), timeout_ms);
    if (n > 0) {
        tbuf_append(&c->in, buf, (size_t)n);
        return n;
    }
    if (n == 0 || errno != ETIMEDOUT) {
        c->eof = true;
        c->error = n == 0 ? 0 : errno;
        return 0;
    }
    return -1;
}

/* Time left until end, in ms, for poll-style calls. */
static int rawclient_left(uint64_t end)
{
    uint64_t now = tio_now_ms();

    return now >= end ? 0 : (int)(end - now);
}

/* Reads one response head and body. */
int rawclient_response(struct rawclient *c, struct rawresp *r, bool head_request, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    enum httpmsg_framing f;
    uint64_t length;
    size_t hl;
    struct httpmsg_dechunk dc;
    int i = 0;

    r->status = -1;
    r->chunked = false;
    r->complete = false;
    tbuf_reset(&r->head);
    tbuf_reset(&r->body);
    while ((hl = httpmsg_head_len(c->in.data, c->in.len)) == 0) {
        if (++i > TIO_MAX_ITER || rawclient_left(end) == 0 ||
            rawclient_fill(c, rawclient_left(end)) <= 0) {
            tbuf_append(&r->head, c->in.data, c->in.len); /* what did arrive, for messages */
            return -1;
        }
    }
    tbuf_append(&r->head, c->in.data, hl);
    tbuf_consume(&c->in, hl);
    r->status = httpmsg_status(r->head.data, r->head.len);
    f = httpmsg_framing(r->head.data, r->head.len, true, head_request, &length);
    if (r->status == 101)
        f = HTTPMSG_NONE;
    httpmsg_dechunk_init(&dc);
    r->chunked = f == HTTPMSG_CHUNKED;
    while (i <= TIO_MAX_ITER) {
        if (f == HTTPMSG_NONE)
            break;
        if (f == HTTPMSG_LENGTH) {
            size_t n = c->in.len < length ? c->in.len : (size_t)length;

            tbuf_append(&r->body, c->in.data, n);
            tbuf_consume(&c->in, n);
            length -= n;
            if (length == 0)
                break;
        } else if (f == HTTPMSG_CHUNKED) {
            long long n = httpmsg_dechunk(&dc, c->in.data, c->in.len, &r->body);

            if (n < 0)
                return -1;
            tbuf_consume(&c->in, (size_t)n);
            if (dc.done)
                break;
        } else {
            tbuf_append(&r->body, c->in.data, c->in.len);
            tbuf_reset(&c->in);
            if (c->eof)
                break;
        }
        if (++i > TIO_MAX_ITER || rawclient_left(end) == 0)
            return -1;
        if (rawclient_fill(c, rawclient_left(end)) <= 0) {
            if (c->eof && f == HTTPMSG_CLOSE)
                continue; /* append the rest, then stop on eof */
            return -1;
        }
    }
    if (i > TIO_MAX_ITER)
        return -1;
    r->complete = true;
    return r->status;
}

/* Collects up to want bytes within the bound. */
size_t rawclient_read_exact(struct rawclient *c, struct tbuf *out, size_t want, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    size_t got = 0;
    int i;

    for (i = 0;; i++) {
        size_t n = c->in.len < want - got ? c->in.len : want - got;

        tbuf_append(out, c->in.data, n);
        tbuf_consume(&c->in, n);
        got += n;
        if (got >= want || i >= TIO_MAX_ITER || rawclient_left(end) == 0)
            return got;
        if (rawclient_fill(c, rawclient_left(end)) <= 0 && c->eof)
            return got;
    }
}

/* Drains until EOF or the bound. */
bool rawclient_wait_closed(struct rawclient *c, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    int i;

    tbuf_reset(&c->in);
    for (i = 0; !c->eof; i++) {
        if (i >= TIO_MAX_ITER || rawclient_left(end) == 0)
            return false;
        (void)rawclient_fill(c, rawclient_left(end));
        tbuf_reset(&c->in);
    }
    return true;
}

/* Closes and frees. */
void rawclient_close(struct rawclient *c)
{
    if (c == NULL)
        return;
    tio_close(&c->fd);
    tbuf_free(&c->in);
    free(c);
}

/* Field lookup in the head. */
bool rawresp_field(const struct rawresp *r, const char *name, char *out, size_t cap)
{
    return r->head.len > 0 && httpmsg_field(r->head.data, r->head.len, name, 0, out, cap);
}

/* Token lookup in the head. */
bool rawresp_has_token(const struct rawresp *r, const char *name, const char *token)
{
    return r->head.len > 0 && httpmsg_field_has_token(r->head.data, r->head.len, name, token);
}

/* Frees the buffers. */
void rawresp_free(struct rawresp *r)
{
    tbuf_free(&r->head);
    tbuf_free(&r->body);
}
