/* libFuzzer target for the ClientHello peek: any bytes, any length, never out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sluice/clienthello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses the input whole and at every prefix length that ends a record header. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char sni[256];
    enum clienthello_result whole = clienthello_parse(data, size, sni, sizeof(sni));

    if (whole == CLIENTHELLO_FOUND && strlen(sni) >= sizeof(sni))
        __builtin_trap();
    /* A prefix can never be more complete than the whole. */
    for (size_t cut = 0; cut < size && cut < 64; cut++) {
        enum clienthello_result r = clienthello_parse(data, cut, sni, sizeof(sni));
        if (r == CLIENTHELLO_NOT_TLS && whole != CLIENTHELLO_NOT_TLS)
            __builtin_trap();
    }
    return 0;
}
