/*
 * PROXY protocol header parsing; see include/sluice/proxyproto.h.  Version 1 is one text
 * line ("PROXY TCP4 192.0.2.1 198.51.100.2 51234 3128\r\n"), version 2 a 16-byte binary
 * prefix and an address block.  Both are read strictly: one space between fields, ports
 * in decimal without a sign, addresses that inet_pton() takes whole; anything else is
 * refused, since the address it carries is what policy and the log will believe.
 */
#include "sluice/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t proxyproto_v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                              0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* True when buf[0..len) is a prefix of want[0..wlen) (or holds all of it). */
static bool proxyproto_starts(const uint8_t *buf, size_t len, const void *want, size_t wlen)
{
    return memcmp(buf, want, len < wlen ? len : wlen) == 0;
}

/* Parses a decimal port of 1 to 5 digits, at most 65535, without a leading zero. */
static bool proxyproto_port(const char *s, size_t n, uint16_t *port)
{
    unsigned v = 0;

    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* Fills ss with an address of family af from text s[0..n) and port.  False if invalid. */
static bool proxyproto_text_addr(int af, const char *s, size_t n, uint16_t port,
                                 struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN];

    if (n == 0 || n >= sizeof(text))
        return false;
    memcpy(text, s, n);
    text[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (af == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return inet_pton(AF_INET, text, &sin->sin_addr) == 1;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1;
    }
}

/* Version 1: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF. */
static enum proxyproto_status proxyproto_v1(const uint8_t *buf, size_t len,
                                            struct proxyproto_result *out, const char **why)
{
    const char *line = (const char *)buf, *field[6];
    size_t flen[6], nfields = 0, end = 0, start;
    uint16_t sport, dport;
    int af;

    memset(out, 0, sizeof(*out));
    /* Every byte up to the CRLF is printable ASCII; a CR must be the CRLF's. */
    for (;; end++) {
        if (end >= len || end >= PROXYPROTO_V1_MAX) {
            if (end >= PROXYPROTO_V1_MAX) {
                *why = "a version 1 header longer than 107 bytes";
                return PROXYPROTO_INVALID;
            }
            return PROXYPROTO_NEED_MORE;
        }
        if (buf[end] == '\r') {
            if (end + 1 >= len)
                return PROXYPROTO_NEED_MORE;
            if (buf[end + 1] == '\n' && end + 2 <= PROXYPROTO_V1_MAX)
                break;
        }
        if (buf[end] < 0x20 || buf[end] > 0x7e) {
            *why = "a control or non-ASCII byte in a version 1 header";
            return PROXYPROTO_INVALID;
        }
    }
    /* Fields separated by exactly one space, the first being "PROXY". */
    for (start = 0; start <= end && nfields < 6;) {
        const char *sp = memchr(line + start, ' ', end - start);
        size_t stop = sp != NULL ? (size_t)(sp - line) : end;

        field[nfields] = line + start;
        flen[nfields++] = stop - start;
        if (stop == start) {
            *why = "an empty field in a version 1 header";
            return PROXYPROTO_INVALID;
        }
        start = stop + 1;
        if (sp == NULL)
            break;
    }
    out->length = end + 2;
    out->version = 1;
    if (nfields >= 2 && flen[1] == 7 && memcmp(field[1], "UNKNOWN", 7) == 0)
        return PROXYPROTO_DONE; /* the balancer did not know: keep the connection's own */
    if (nfields != 6 || start <= end) {
        *why = "a version 1 header without exactly six fields";
        return PROXYPROTO_INVALID;
    }
    if (flen[1] == 4 && memcmp(field[1], "TCP4", 4) == 0)
        af = AF_INET;
    else if (flen[1] == 4 && memcmp(field[1], "TCP6", 4) == 0)
        af = AF_INET6;
    else {
        *why = "a version 1 protocol other than TCP4, TCP6 or UNKNOWN";
        return PROXYPROTO_INVALID;
    }
    if (!proxyproto_port(field[4], flen[4], &sport) ||
        !proxyproto_port(field[5], flen[5], &dport) ||
        !proxyproto_text_addr(af, field[2], flen[2], sport, &out->source) ||
        !proxyproto_text_addr(af, field[3], flen[3], dport, &out->dest)) {
        *why = "a bad address or port in a version 1 header";
        return PROXYPROTO_INVALID;
    }
    out->has_source = true;
    return PROXYPROTO_DONE;
}

/* Version 2: signature, version and command, family, length, then the address block. */
static enum proxyproto_status proxyproto_v2(const uint8_t *buf, size_t len,
                                            struct proxyproto_result *out, const char **why)
{
    size_t body, total;
    unsigned cmd;

    if (len < 16)
        return PROXYPROTO_NEED_MORE;
    if ((buf[12] >> 4) != 2 || (cmd = buf[12] & 0x0fu) > 1) {
        *why = "a version 2 header with an unknown version or command";
        return PROXYPROTO_INVALID;
    }
    body = (size_t)buf[14] << 8 | buf[15];
    total = 16 + body;
    if (total > PROXYPROTO_V2_MAX) {
        *why = "a version 2 header longer than 4 KiB";
        return PROXYPROTO_INVALID;
    }
    if (len < total)
        return PROXYPROTO_NEED_MORE;
    memset(out, 0, sizeof(*out));
    out->length = total;
    out->version = 2;
    if (cmd == 0)
        return PROXYPROTO_DONE; /* LOCAL: the balancer's own health check */
    switch (buf[13]) {
    case 0x11: { /* TCP over IPv4 */
        struct sockaddr_in *src = (struct sockaddr_in *)(void *)&out->source;
        struct sockaddr_in *dst = (struct sockaddr_in *)(void *)&out->dest;
        if (body < 12)
            break;
        src->sin_family = dst->sin_family = AF_INET;
        memcpy(&src->sin_addr, buf + 16, 4);
        memcpy(&dst->sin_addr, buf + 20, 4);
        memcpy(&src->sin_port, buf + 24, 2);
        memcpy(&dst->sin_port, buf + 26, 2);
        out->has_source = true;
        return PROXYPROTO_DONE;
    }
    case 0x21: { /* TCP over IPv6 */
        struct sockaddr_in6 *src = (struct sockaddr_in6 *)(void *)&out->source;
        struct sockaddr_in6 *dst = (struct sockaddr_in6 *)(void *)&out->dest;
        if (body < 36)
            break;
        src->sin6_family = dst->sin6_family = AF_INET6;
        memcpy(&src->sin6_addr, buf + 16, 16);
        memcpy(&dst->sin6_addr, buf + 32, 16);
        memcpy(&src->sin6_port, buf + 48, 2);
        memcpy(&dst->sin6_port, buf + 50, 2);
        out->has_source = true;
        return PROXYPROTO_DONE;
    }
    case 0x00: /* UNSPEC */
    case 0x31: /* a Unix stream socket: no address sluice could use */
        return PROXYPROTO_DONE;
    default:
        *why = "a version 2 header for a transport other than TCP";
        return PROXYPROTO_INVALID;
    }
    *why = "a version 2 address block shorter than its family needs";
    return PROXYPROTO_INVALID;
}

/* Parses a header of either version; see the header. */
enum proxyproto_status proxyproto_parse(const uint8_t *buf, size_t len,
                                        struct proxyproto_result *out, const char **why)
{
    *why = "no PROXY protocol header";
    if (len == 0)
        return PROXYPROTO_NEED_MORE;
    if (len > PROXYPROTO_MAX_BYTES)
        len = PROXYPROTO_MAX_BYTES;
    if (buf[0] == 'P') {
        if (!proxyproto_starts(buf, len, "PROXY ", 6))
            return PROXYPROTO_INVALID;
        return len < 6 ? PROXYPROTO_NEED_MORE : proxyproto_v1(buf, len, out, why);
    }
    if (!proxyproto_starts(buf, len, proxyproto_v2_sig, sizeof(proxyproto_v2_sig)))
        return PROXYPROTO_INVALID;
    return proxyproto_v2(buf, len, out, why);
}
