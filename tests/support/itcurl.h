/*
 * libcurl as a real client in integration tests: an easy handle that only ever talks to
 * the proxy given (CURLOPT_PROXY to 127.0.0.1, CURLOPT_NOPROXY ""), collects the body and
 * the final response's header lines, and has bounded timeouts.
 */
#ifndef SLUICE_TEST_ITCURL_H
#define SLUICE_TEST_ITCURL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "tbuf.h"

/* One handle and what its last transfer received; owned by the test. */
struct itcurl {
    CURL *h;                        /* set further options on it freely */
    struct tbuf body;               /* body of the last transfer */
    struct tbuf headers;            /* header lines of the last response (final one) */
    struct tbuf all_headers;        /* header lines of every response, interim ones too */
    struct curl_slist *req_headers; /* extra request header lines */
    char errbuf[CURL_ERROR_SIZE];   /* libcurl's message for the last failure */
    uint64_t first_body_ms;         /* tio_now_ms() when the first body byte came, or 0 */
    size_t body_cap;                /* stop keeping body bytes past this (still counted) */
    uint64_t body_bytes;            /* body bytes received in the last transfer */
};

/* A handle proxied through 127.0.0.1:proxy_port, 30 s total timeout.  NULL on failure. */
struct itcurl *itcurl_new(uint16_t proxy_port);

/* Adds a request header line ("Name: value", or "Name:" to suppress one of curl's). */
void itcurl_add_header(struct itcurl *c, const char *line);

/* Runs one transfer of url, resetting body and headers first.  Returns libcurl's code. */
CURLcode itcurl_perform(struct itcurl *c, const char *url);

/* Response code of the last transfer. */
long itcurl_status(struct itcurl *c);

/* Copies the first field called name of the last response.  True when present. */
bool itcurl_field(const struct itcurl *c, const char *name, char *out, size_t cap);

/* True when some field called name of the last response lists token. */
bool itcurl_has_token(const struct itcurl *c, const char *name, const char *token);

/* Frees the handle and its buffers.  NULL is a no-op. */
void itcurl_free(struct itcurl *c);

#endif /* SLUICE_TEST_ITCURL_H */
