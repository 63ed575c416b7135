/*
 * libFuzzer target for the ClientHello peek: any bytes, any length, never out of bounds;
 * a prefix is never more complete than the whole; and a hello found in one record gives
 * the same result, name and ALPN offer when its message is cut into records of other
 * sizes, as a client may send it; an offer's protocols are never claimed without ALPN.
 * A name found is a lower-case host name; one that is not (CLIENTHELLO_BAD_NAME) is shown
 * with nothing but letters, digits, '-', '.', '_', ':' and %XX escapes.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sluice/clienthello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* True when every byte of sni is one a name of result r may be shown with. */
static int sni_bytes_ok(enum clienthello_result r, const char *sni)
{
    for (const char *p = sni; *p != '\0'; p++) {
        char c = *p;
        int ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
        if (r == CLIENTHELLO_BAD_NAME)
            ok = ok || (c >= 'A' && c <= 'Z') || c == ':' || c == '%';
        if (!ok)
            return 0;
    }
    return 1;
}

/*
 * Writes the first record's handshake message (msg_len bytes at data + 5) again as
 * records of at most frag bytes each.  Returns the length, or 0 when it would not fit.
 */
static size_t refragment(const uint8_t *data, size_t msg_len, size_t frag, uint8_t *out, size_t cap)
{
    size_t o = 0;

    for (size_t off = 0; off < msg_len; off += frag) {
        size_t n = msg_len - off < frag ? msg_len - off : frag;

        if (o + 5 + n > cap)
            return 0;
        memcpy(out + o, data, 3); /* content type and record version as sent */
        out[o + 3] = (uint8_t)(n >> 8);
        out[o + 4] = (uint8_t)n;
        memcpy(out + o + 5, data + 5 + off, n);
        o += 5 + n;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t again[CLIENTHELLO_MAX_BYTES];
    static const size_t frags[] = {1, 3, 64, 1000};
    char sni[256], sni_again[256];
    unsigned alpn = 0, alpn_again = 0;
    enum clienthello_result whole = clienthello_parse_alpn(data, size, sni, sizeof(sni), &alpn);

    if ((whole == CLIENTHELLO_FOUND || whole == CLIENTHELLO_BAD_NAME) &&
        (strlen(sni) >= sizeof(sni) || !sni_bytes_ok(whole, sni)))
        __builtin_trap();
    if (whole != CLIENTHELLO_FOUND && whole != CLIENTHELLO_BAD_NAME && sni[0] != '\0')
        __builtin_trap();
    if ((alpn & ~CLIENTHELLO_ALPN_OFFERED) != 0 && (alpn & CLIENTHELLO_ALPN_OFFERED) == 0)
        __builtin_trap();
    if (whole != CLIENTHELLO_FOUND && alpn != 0)
        __builtin_trap();
    /* A prefix can never be more complete than the whole. */
    for (size_t cut = 0; cut < size && cut < 64; cut++) {
        enum clienthello_result r = clienthello_parse(data, cut, sni_again, sizeof(sni_again));
        if (r == CLIENTHELLO_NOT_TLS && whole != CLIENTHELLO_NOT_TLS)
            __builtin_trap();
    }
    if ((whole != CLIENTHELLO_FOUND && whole != CLIENTHELLO_BAD_NAME) || size < 9)
        return 0;
    {
        size_t rec_len = ((size_t)data[3] << 8) | data[4];
        size_t msg_len = 4 + (((size_t)data[6] << 16) | ((size_t)data[7] << 8) | data[8]);

        if (msg_len > rec_len || 5 + rec_len > size)
            return 0; /* not one record holding the whole message */
        for (size_t k = 0; k < sizeof(frags) / sizeof(frags[0]); k++) {
            size_t n = refragment(data, msg_len, frags[k], again, sizeof(again));

            if (n == 0)
                continue;
            if (clienthello_parse_alpn(again, n, sni_again, sizeof(sni_again), &alpn_again) !=
                    whole ||
                strcmp(sni, sni_again) != 0 || alpn != alpn_again)
                __builtin_trap();
        }
    }
    return 0;
}
