/*
 * TLS ClientHello peek (RFC 8446 section 4.1.2, RFC 6066 section 3).  The handshake
 * message may be fragmented over several records; its bytes are gathered into a bounded
 * scratch buffer on the stack before the extensions are walked.
 */
#include "sluice/clienthello.h"

#include <stdbool.h>
#include <string.h>

#define TLS_CONTENT_HANDSHAKE      22
#define TLS_HANDSHAKE_CLIENT_HELLO 1
#define TLS_EXT_SERVER_NAME        0
#define TLS_EXT_ALPN               16
#define TLS_SNI_HOST_NAME          0

/* A bounds-checked reader over a byte range. */
struct ch_reader {
    const uint8_t *p;
    size_t left;
};

/* Takes n bytes; false when fewer are left. */
static bool ch_skip(struct ch_reader *r, size_t n)
{
    if (r->left < n)
        return false;
    r->p += n;
    r->left -= n;
    return true;
}

/* Reads a big-endian integer of n (1..3) bytes. */
static bool ch_uint(struct ch_reader *r, size_t n, size_t *out)
{
    size_t v = 0;

    if (r->left < n)
        return false;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | r->p[i];
    *out = v;
    return ch_skip(r, n);
}

/* Takes a vector with an n-byte length prefix as a sub-reader. */
static bool ch_vector(struct ch_reader *r, size_t n, struct ch_reader *sub)
{
    size_t len;

    if (!ch_uint(r, n, &len) || r->left < len)
        return false;
    sub->p = r->p;
    sub->left = len;
    return ch_skip(r, len);
}

/* True for the bytes a host name in a server_name may hold. */
static bool ch_is_host_byte(uint8_t ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

/*
 * Writes a host_name that is not a host name into sni for the record: bytes other than
 * host-name bytes and ':' as %XX; when that does not fit, as much as does at a whole item,
 * then "...".
 */
static void ch_show_bad_host(const uint8_t *name, size_t len, char *sni, size_t sni_cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t need = 0, limit, o = 0;

    for (size_t i = 0; i < len; i++)
        need += ch_is_host_byte(name[i]) || name[i] == ':' ? 1 : 3;
    limit = need < sni_cap ? need : sni_cap >= 4 ? sni_cap - 4 : 0;
    for (size_t i = 0; i < len; i++) {
        bool plain = ch_is_host_byte(name[i]) || name[i] == ':';
        if (o + (plain ? 1 : 3) > limit)
            break;
        if (plain) {
            sni[o++] = (char)name[i];
        } else {
            sni[o++] = '%';
            sni[o++] = hex[name[i] >> 4];
            sni[o++] = hex[name[i] & 0xf];
        }
    }
    if (need >= sni_cap && sni_cap >= 4) {
        memcpy(sni + o, "...", 3);
        o += 3;
    }
    sni[o] = '\0';
}

/*
 * Copies a server_name host_name into sni, lower-cased, when it is a plausible DNS name
 * that fits; otherwise writes it escaped (ch_show_bad_host) and returns false.
 */
static bool ch_copy_host(const uint8_t *name, size_t len, char *sni, size_t sni_cap)
{
    bool ok = len > 0 && len < sni_cap && len <= 253;

    for (size_t i = 0; i < len && ok; i++)
        ok = ch_is_host_byte(name[i]);
    if (!ok) {
        ch_show_bad_host(name, len, sni, sni_cap);
        return false;
    }
    for (size_t i = 0; i < len; i++)
        sni[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    sni[len] = '\0';
    return true;
}

/*
 * Reads a server_name extension's body: the host_name entry, if any, into sni, setting
 * *bad_name when it is not a host name.  Every entry must be whole, with at most one of
 * each name type (RFC 6066 section 3).
 */
static bool ch_parse_server_name(struct ch_reader *body, char *sni, size_t sni_cap, bool *bad_name)
{
    struct ch_reader list;
    bool have_host = false;

    if (!ch_vector(body, 2, &list) || body->left != 0 || list.left == 0)
        return false;
    while (list.left > 0) {
        size_t name_type;
        struct ch_reader name;

        if (!ch_uint(&list, 1, &name_type) || !ch_vector(&list, 2, &name))
            return false;
        if (name_type == TLS_SNI_HOST_NAME) {
            if (have_host)
                return false;
            have_host = true;
            *bad_name = !ch_copy_host(name.p, name.left, sni, sni_cap);
        }
    }
    return true;
}

/*
 * Reads an application_layer_protocol_negotiation extension's body (RFC 7301): a non-empty
 * list of non-empty protocol names, whole; says in *alpn which of ours it offers.
 */
static bool ch_parse_alpn(struct ch_reader *body, unsigned *alpn)
{
    struct ch_reader list, name;

    if (!ch_vector(body, 2, &list) || body->left != 0 || list.left == 0)
        return false;
    *alpn |= CLIENTHELLO_ALPN_OFFERED;
    while (list.left > 0) {
        if (!ch_vector(&list, 1, &name) || name.left == 0)
            return false;
        if (name.left == 8 && memcmp(name.p, "http/1.1", 8) == 0)
            *alpn |= CLIENTHELLO_ALPN_HTTP11;
        else if (name.left == 2 && memcmp(name.p, "h2", 2) == 0)
            *alpn |= CLIENTHELLO_ALPN_H2;
    }
    return true;
}

/*
 * Walks a complete ClientHello body: every vector whole, nothing after the extensions,
 * and at most one server_name extension, so that sluice and the server it talks to
 * cannot read two different names from one hello.
 */
static enum clienthello_result ch_parse_body(struct ch_reader *r, char *sni, size_t sni_cap,
                                             unsigned *alpn)
{
    struct ch_reader vec, exts;
    bool have_sni = false, have_alpn = false, bad_name = false;

    /* legacy_version, random, legacy_session_id, cipher_suites, compression_methods */
    if (!ch_skip(r, 2 + 32) || !ch_vector(r, 1, &vec) || !ch_vector(r, 2, &vec) ||
        !ch_vector(r, 1, &vec))
        return CLIENTHELLO_MALFORMED;
    if (r->left == 0)
        return CLIENTHELLO_FOUND; /* no extensions at all (SSLv3-style hello) */
    if (!ch_vector(r, 2, &exts) || r->left != 0)
        return CLIENTHELLO_MALFORMED;
    while (exts.left > 0) {
        size_t type;
        struct ch_reader body;

        if (!ch_uint(&exts, 2, &type) || !ch_vector(&exts, 2, &body))
            return CLIENTHELLO_MALFORMED;
        if (type == TLS_EXT_ALPN) {
            /* A list that does not parse (or a second one) counts as no ALPN, and does not
             * spoil the hello: its server name is still read and decided, and the server,
             * or sluice's own handshake, refuses the list. */
            unsigned offered = 0;
            *alpn = !have_alpn && ch_parse_alpn(&body, &offered) ? offered : 0;
            have_alpn = true;
            continue;
        }
        if (type != TLS_EXT_SERVER_NAME)
            continue;
        if (have_sni || !ch_parse_server_name(&body, sni, sni_cap, &bad_name))
            return CLIENTHELLO_MALFORMED;
        have_sni = true;
    }
    /* A name sluice cannot read is not taken for no name: the server reads one. */
    return bad_name ? CLIENTHELLO_BAD_NAME : CLIENTHELLO_FOUND;
}

/* Gathers the handshake message from consecutive records, then parses it. */
enum clienthello_result clienthello_parse(const uint8_t *buf, size_t len, char *sni, size_t sni_cap)
{
    unsigned alpn;

    return clienthello_parse_alpn(buf, len, sni, sni_cap, &alpn);
}

/* The same, and what ALPN offers. */
enum clienthello_result clienthello_parse_alpn(const uint8_t *buf, size_t len, char *sni,
                                               size_t sni_cap, unsigned *alpn)
{
    uint8_t msg[CLIENTHELLO_MAX_BYTES];
    size_t have = 0, need = 0, off = 0;
    struct ch_reader r;
    enum clienthello_result result;

    *alpn = 0;
    if (sni_cap > 0)
        sni[0] = '\0';
    if (len > CLIENTHELLO_MAX_BYTES)
        len = CLIENTHELLO_MAX_BYTES;
    if (len >= 1 && buf[0] != TLS_CONTENT_HANDSHAKE)
        return CLIENTHELLO_NOT_TLS;
    if (len >= 2 && buf[1] != 3)
        return CLIENTHELLO_NOT_TLS; /* record major version is always 3 */

    for (;;) {
        size_t rec_len, take;

        if (len - off < 5)
            return len >= CLIENTHELLO_MAX_BYTES ? CLIENTHELLO_MALFORMED : CLIENTHELLO_NEED_MORE;
        if (buf[off] != TLS_CONTENT_HANDSHAKE || buf[off + 1] != 3)
            return CLIENTHELLO_MALFORMED;
        rec_len = ((size_t)buf[off + 3] << 8) | buf[off + 4];
        if (rec_len == 0 || rec_len > 16384)
            return CLIENTHELLO_MALFORMED;
        if (len - off - 5 < rec_len)
            return len >= CLIENTHELLO_MAX_BYTES ? CLIENTHELLO_MALFORMED : CLIENTHELLO_NEED_MORE;
        take = rec_len;
        if (have + take > sizeof(msg))
            return CLIENTHELLO_MALFORMED;
        memcpy(msg + have, buf + off + 5, take);
        have += take;
        off += 5 + rec_len;

        if (need == 0 && have >= 4) {
            if (msg[0] != TLS_HANDSHAKE_CLIENT_HELLO)
                return CLIENTHELLO_MALFORMED;
            need = 4 + (((size_t)msg[1] << 16) | ((size_t)msg[2] << 8) | msg[3]);
            if (need > sizeof(msg))
                return CLIENTHELLO_MALFORMED;
        }
        if (need != 0 && have >= need)
            break;
    }
    r.p = msg + 4;
    r.left = need - 4;
    result = ch_parse_body(&r, sni, sni_cap, alpn);
    if (result != CLIENTHELLO_FOUND)
        *alpn = 0;
    if (result != CLIENTHELLO_FOUND && result != CLIENTHELLO_BAD_NAME && sni_cap > 0)
        sni[0] = '\0'; /* a name read before the fault is not one to act on */
    return result;
}

/* Short name of a result for logs. */
const char *clienthello_result_str(enum clienthello_result r)
{
    switch (r) {
    case CLIENTHELLO_NEED_MORE:
        return "need-more";
    case CLIENTHELLO_FOUND:
        return "found";
    case CLIENTHELLO_NOT_TLS:
        return "not-tls";
    case CLIENTHELLO_MALFORMED:
        return "malformed";
    case CLIENTHELLO_BAD_NAME:
        return "bad-name";
    }
    return "?";
}
