/*
 * TLS ClientHello peek: finds the server name (SNI) a client asks for in the first bytes
 * of a tunnel, without decrypting or changing anything.  Pure and allocation-free.
 */
#ifndef SLUICE_CLIENTHELLO_H
#define SLUICE_CLIENTHELLO_H

#include <stddef.h>
#include <stdint.h>

/* Largest ClientHello we wait for: a handshake message spread over at most 4 records. */
#define CLIENTHELLO_MAX_BYTES (4 * (5 + 16384))

/* What the bytes seen so far are. */
enum clienthello_result {
    CLIENTHELLO_NEED_MORE = 0, /* a TLS record has started; more bytes are needed */
    CLIENTHELLO_FOUND,         /* a complete ClientHello; sni holds the name or "" */
    CLIENTHELLO_NOT_TLS,       /* the first bytes are not a TLS handshake record */
    CLIENTHELLO_MALFORMED,     /* a TLS handshake that does not parse as a ClientHello */
    CLIENTHELLO_BAD_NAME,      /* a complete ClientHello whose server name is not a host
                                  name: sni holds it escaped, for the record */
};

/*
 * Examines buf[0..len), the first bytes a client sent into a tunnel.  On
 * CLIENTHELLO_FOUND, sni (capacity sni_cap >= 1) holds the host_name of the server_name
 * extension, lower-cased, or "" when there is none.  A host_name that is empty, longer
 * than 253 bytes or than sni_cap - 1, or holds a byte other than a letter, a digit, '-',
 * '.' or '_' (a port "vm:1", a space, an IP literal "::1" that RFC 6066 does not allow)
 * gives CLIENTHELLO_BAD_NAME instead, and sni holds it as sent, with every byte other
 * than a letter, a digit, '-', '.', '_' or ':' written %XX ("vm%20", "a%00b"), cut to fit
 * and then ending in "..."; it is never a host name to act on, only to show.  Reads at
 * most CLIENTHELLO_MAX_BYTES.
 */
enum clienthello_result clienthello_parse(const uint8_t *buf, size_t len, char *sni,
                                          size_t sni_cap);

/* What a ClientHello's ALPN extension offers (bits). */
#define CLIENTHELLO_ALPN_OFFERED 0x1u /* the extension is there */
#define CLIENTHELLO_ALPN_HTTP11  0x2u /* "http/1.1" is among the protocols */
#define CLIENTHELLO_ALPN_H2      0x4u /* "h2" is among them */

/*
 * The same as clienthello_parse(), and on CLIENTHELLO_FOUND *alpn holds CLIENTHELLO_ALPN_*
 * bits (0 otherwise, CLIENTHELLO_BAD_NAME included).  An ALPN extension that does not
 * parse, or a second one, counts as no ALPN (0) and does not spoil the hello: its server
 * name is still given.
 */
enum clienthello_result clienthello_parse_alpn(const uint8_t *buf, size_t len, char *sni,
                                               size_t sni_cap, unsigned *alpn);

/* Short name of a result for logs. */
const char *clienthello_result_str(enum clienthello_result r);

#endif /* SLUICE_CLIENTHELLO_H */
