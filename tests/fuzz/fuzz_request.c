/*
 * libFuzzer target for what a request asks for: the input is a request head, parsed by
 * the HTTP/1.1 parser and, when complete, worked out by request_from_head() as the
 * session does, its path normalised for policy.  Invariants: a refused request says why
 * with a 4xx; an accepted one has a host in its normal form (normalising it again changes
 * nothing, and it fits), a port, a path only when it is not CONNECT, and a normalised path
 * that is a fixed point starting with '/'.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/http1.h"
#include "sluice/request.h"
#include "sluice/urlpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks an accepted request's host and path. */
static void check_request(const char *buf, const struct request *r)
{
    char again[REQUEST_HOST_MAX], *path, *path2;
    const char *errstr = NULL;
    bool v6 = false;
    size_t hlen = strlen(r->host);
    unsigned flags = 0, flags2 = 0;
    int n;

    if (hlen == 0 || hlen >= REQUEST_HOST_MAX || r->port == 0)
        abort();
    /* The normal form of a host is a fixed point, brackets or not as it says. */
    n = request_normalize_host(r->host, hlen, r->host_is_ipv6, again, sizeof(again), &v6, &errstr);
    if (n != (int)hlen || memcmp(again, r->host, hlen) != 0 || v6 != r->host_is_ipv6)
        abort();
    if (r->is_connect) {
        if (r->path.len != 0)
            abort();
        return;
    }
    path = malloc((size_t)r->path.len + 2);
    path2 = malloc((size_t)r->path.len + 3);
    if (path == NULL || path2 == NULL)
        goto out;
    n = urlpath_normalize(buf + r->path.off, r->path.len, path, (size_t)r->path.len + 2, &flags);
    if (n < 0 || path[0] != '/')
        abort();
    if (urlpath_normalize(path, (size_t)n, path2, (size_t)r->path.len + 3, &flags2) != n ||
        memcmp(path, path2, (size_t)n) != 0)
        abort();
out:
    free(path);
    free(path2);
}

/* Parses the input as a request head and checks what it asks for. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http1_field fields[100];
    const char *buf = (const char *)data;
    struct http1_limits lim;
    struct http1_parser p;
    struct http1_head h;
    struct request r;
    struct request_error err;
    int64_t used;

    http1_limits_default(&lim);
    http1_parser_init(&p, HTTP1_REQUEST, &lim, &h, fields, 100);
    used = http1_parse_head(&p, buf, size);
    if (used <= 0)
        return 0;
    if (request_from_head(buf, &h, &r, &err) < 0) {
        if (err.status < 400 || err.status > 499 || err.what == NULL || err.what[0] == '\0')
            abort();
        return 0;
    }
    check_request(buf, &r);
    return 0;
}
