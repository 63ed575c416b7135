/*
 * Lenient HTTP/1.1 message helpers for the test side: find the end of a head, read a
 * field, find the status, and decode a chunked body incrementally.  They check what the
 * proxy sent; they are not the proxy's parser and stay deliberately simple.
 */
#ifndef SLUICE_TEST_HTTPMSG_H
#define SLUICE_TEST_HTTPMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tbuf.h"

/* Returns the length of the head (through the empty line) in buf, or 0 if incomplete. */
size_t httpmsg_head_len(const char *buf, size_t len);

/*
 * Copies the value of the idx-th field called name (case-insensitive, idx from 0) in
 * head[0..len) into out (trimmed, truncated to cap - 1, NUL-terminated).
 * Returns true when found.
 */
bool httpmsg_field(const char *head, size_t len, const char *name, unsigned idx, char *out,
                   size_t cap);

/* Number of fields called name in the head. */
unsigned httpmsg_field_count(const char *head, size_t len, const char *name);

/* True when some field called name lists token (comma-separated, case-insensitive). */
bool httpmsg_field_has_token(const char *head, size_t len, const char *name, const char *token);

/* Status code of a response head ("HTTP/1.x NNN ..."), or -1. */
int httpmsg_status(const char *head, size_t len);

/* How a message body is delimited. */
enum httpmsg_framing {
    HTTPMSG_NONE,    /* no body (requests without CL/TE, HEAD responses, 1xx/204/304) */
    HTTPMSG_LENGTH,  /* Content-Length bytes */
    HTTPMSG_CHUNKED, /* chunked transfer coding */
    HTTPMSG_CLOSE,   /* response body until the connection closes */
};

/*
 * Decides the framing of the message whose head is head[0..len): is_response and, for
 * responses, whether the request was HEAD.  *length receives Content-Length.
 */
enum httpmsg_framing httpmsg_framing(const char *head, size_t len, bool is_response,
                                     bool head_request, uint64_t *length);

/* Incremental chunked-body decoder state; zero it (or call httpmsg_dechunk_init) first. */
struct httpmsg_dechunk {
    int state;          /* internal */
    uint64_t remaining; /* data bytes left in the current chunk */
    unsigned ndigits;   /* hex digits of the size line */
    bool done;          /* last chunk and trailers consumed */
};

/* Resets d for a new body. */
void httpmsg_dechunk_init(struct httpmsg_dechunk *d);

/*
 * Decodes in[0..len), appending data bytes to out (when out is not NULL).
 * Returns the bytes consumed (stops right after the body ends) or -1 on bad framing.
 */
long long httpmsg_dechunk(struct httpmsg_dechunk *d, const char *in, size_t len, struct tbuf *out);

#endif /* SLUICE_TEST_HTTPMSG_H */
