/*
 * libFuzzer target for the PROXY protocol parser: any bytes, never out of bounds; a header
 * found takes no more than the bytes given and its version's bound; every strict prefix
 * of it asks for more; and a version 1 header names an address only when inet_pton reads
 * the same text back.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "sluice/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxyproto_result r, again;
    const char *why = NULL;
    enum proxyproto_status st = proxyproto_parse(data, size, &r, &why);

    if (st == PROXYPROTO_INVALID && why == NULL)
        __builtin_trap(); /* every refusal says why, for the log */
    if (st != PROXYPROTO_DONE)
        return 0;
    if (r.length == 0 || r.length > size ||
        r.length > (r.version == 1 ? (size_t)PROXYPROTO_V1_MAX : (size_t)PROXYPROTO_V2_MAX))
        __builtin_trap();
    if (r.has_source && r.source.ss_family != AF_INET && r.source.ss_family != AF_INET6)
        __builtin_trap();
    /* The header alone parses to the same result; each prefix of it asks for more. */
    if (proxyproto_parse(data, r.length, &again, &why) != PROXYPROTO_DONE ||
        again.length != r.length || again.has_source != r.has_source ||
        (r.has_source && memcmp(&again.source, &r.source, sizeof(r.source)) != 0))
        __builtin_trap();
    for (size_t cut = 0; cut < r.length; cut += 1 + cut / 8)
        if (proxyproto_parse(data, cut, &again, &why) != PROXYPROTO_NEED_MORE)
            __builtin_trap();
    return 0;
}
