/* libcurl easy handle configured for the proxy under test. */
#include "itcurl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpmsg.h"
#include "tio.h"

/* Keeps body bytes (up to body_cap) and notes when the first one came. */
static size_t itcurl_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct itcurl *c = userdata;
    size_t n = size * nmemb;

    if (c->first_body_ms == 0 && n > 0)
        c->first_body_ms = tio_now_ms();
    c->body_bytes += n;
    if (c->body.len < c->body_cap) {
        size_t keep = c->body_cap - c->body.len;

        tbuf_append(&c->body, ptr, n < keep ? n : keep);
    }
    return n;
}

/* Keeps the header lines of the latest response (a new status line starts over), and of all. */
static size_t itcurl_header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct itcurl *c = userdata;
    size_t n = size * nmemb;

    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
        tbuf_reset(&c->headers);
    tbuf_append(&c->headers, ptr, n);
    tbuf_append(&c->all_headers, ptr, n);
    return n;
}

/* Creates the handle with the proxy and the bounds set. */
struct itcurl *itcurl_new(uint16_t proxy_port)
{
    struct itcurl *c = calloc(1, sizeof(*c));
    char proxy[64];

    if (c == NULL)
        return NULL;
    c->h = curl_easy_init();
    if (c->h == NULL) {
        free(c);
        return NULL;
    }
    c->body_cap = 16 * 1024 * 1024;
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%u", proxy_port);
    curl_easy_setopt(c->h, CURLOPT_PROXY, proxy);
    curl_easy_setopt(c->h, CURLOPT_NOPROXY, "");
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, itcurl_write_cb);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, itcurl_header_cb);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
    return c;
}

/* Appends a request header and re-applies the list. */
void itcurl_add_header(struct itcurl *c, const char *line)
{
    struct curl_slist *l = curl_slist_append(c->req_headers, line);

    if (l != NULL)
        c->req_headers = l;
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->req_headers);
}

/* Runs a transfer. */
CURLcode itcurl_perform(struct itcurl *c, const char *url)
{
    tbuf_reset(&c->body);
    tbuf_reset(&c->headers);
    tbuf_reset(&c->all_headers);
    c->errbuf[0] = '\0';
    c->first_body_ms = 0;
    c->body_bytes = 0;
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    return curl_easy_perform(c->h);
}

/* Reads CURLINFO_RESPONSE_CODE. */
long itcurl_status(struct itcurl *c)
{
    long code = 0;

    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* Field lookup in the kept header lines. */
bool itcurl_field(const struct itcurl *c, const char *name, char *out, size_t cap)
{
    return c->headers.len > 0 && httpmsg_field(c->headers.data, c->headers.len, name, 0, out, cap);
}

/* Token lookup in the kept header lines. */
bool itcurl_has_token(const struct itcurl *c, const char *name, const char *token)
{
    return c->headers.len > 0 &&
           httpmsg_field_has_token(c->headers.data, c->headers.len, name, token);
}

/* Frees everything. */
void itcurl_free(struct itcurl *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->req_headers);
    tbuf_free(&c->body);
    tbuf_free(&c->headers);
    tbuf_free(&c->all_headers);
    free(c);
}
