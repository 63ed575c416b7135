/*
 * Responses that sluice makes itself: a status line, a header naming sluice as the author
 * (Server, and an RFC 9209 Proxy-Status with the error type), and a short text/plain
 * body saying what happened, for which host, and what to do.
 */
#ifndef SLUICE_ERRPAGE_H
#define SLUICE_ERRPAGE_H

#include <event2/buffer.h>

/* The reason phrase sluice uses for status (e.g. "Bad Gateway"). */
const char *errpage_reason(unsigned status);

/*
 * Appends a complete response to out: status, Proxy-Status error type (a token such as
 * "dns_error"), and a body made of what (one sentence) and host (may be NULL or "").
 * Network bytes in what or host must have been escaped by the caller.  The response
 * always says Connection: close; a 407 carries the Basic challenge (realm "sluice").
 * Returns the number of bytes appended.
 */
size_t errpage_write(struct evbuffer *out, unsigned status, const char *error_type,
                     const char *host, const char *what);

#endif /* SLUICE_ERRPAGE_H */
