/*
 * The PROXY protocol, versions 1 and 2 (haproxy.org's proxy-protocol.txt): the header a
 * load balancer in front of sluice sends first on each connection, carrying the address
 * of the client it accepted.  This module only parses; the session decides whom to
 * believe (a listener takes the header from its configured sources alone).
 */
#ifndef SLUICE_PROXYPROTO_H
#define SLUICE_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest version 1 header, CRLF included (the specification's bound). */
#define PROXYPROTO_V1_MAX 107
/* Longest version 2 header sluice takes: 16 bytes, addresses and TLVs up to 4 KiB. */
#define PROXYPROTO_V2_MAX (16 + 4096)
/* Bytes to look at before the verdict can be reached, whatever the version. */
#define PROXYPROTO_MAX_BYTES PROXYPROTO_V2_MAX

enum proxyproto_status {
    PROXYPROTO_NEED_MORE = 0, /* a header has started; more bytes are needed */
    PROXYPROTO_DONE,          /* a whole, valid header: see the result */
    PROXYPROTO_INVALID,       /* not a PROXY protocol header, or a malformed one */
};

/* What a header said. */
struct proxyproto_result {
    size_t length;                  /* bytes the header took, to skip before HTTP */
    int version;                    /* 1 or 2 */
    bool has_source;                /* false: LOCAL or UNKNOWN, keep the connection's own */
    struct sockaddr_storage source; /* the client the balancer accepted, with its port */
    struct sockaddr_storage dest;   /* where that client connected, with its port */
};

/*
 * Parses the header at the start of buf[0..len).  DONE fills out; INVALID sets *why to a
 * short static reason for the log.  Reads at most PROXYPROTO_MAX_BYTES.
 */
enum proxyproto_status proxyproto_parse(const uint8_t *buf, size_t len,
                                        struct proxyproto_result *out, const char **why);

#endif /* SLUICE_PROXYPROTO_H */
