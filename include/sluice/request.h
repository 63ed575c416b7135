/*
 * What a client's request asks for, worked out once per request from its parsed head, in
 * the one form that policy, the resolver, the forwarded head and the log all use.  Pure:
 * no I/O, no allocation.
 */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

/* Room for a normalised host: a 253-byte name or the longest IPv6 text, and a NUL. */
#define REQUEST_HOST_MAX 256

/*
 * Normalises the host of a request target, host[0..len) (an IPv6 literal without its
 * brackets when bracketed is true), into out[0..cap): an IP literal in its one canonical
 * text (every IPv4 spelling -- 2130706433, 0x7f.1, 127.1, a trailing dot -- as a dotted
 * quad; an IPv4-mapped IPv6 address as the IPv4 address it maps; other IPv6 in RFC 5952
 * form, without brackets), a name in ASCII lower case without its trailing dot, with no
 * empty label ("a..b", ".a"), no label over 63 bytes and at most 253 bytes in all.
 * *is_ipv6 says the result is IPv6 text (written in brackets in a Host field).  Returns the
 * length, or -1 with *errstr saying what is wrong.
 */
int request_normalize_host(const char *host, size_t len, bool bracketed, char *out, size_t cap,
                           bool *is_ipv6, const char **errstr);

#endif /* SLUICE_REQUEST_H */
