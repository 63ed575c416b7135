/* What a client's request asks for; see include/sluice/request.h. */
#include "sluice/request.h"

#include <string.h>
#include <sys/socket.h>

#include "sluice/domainset.h"
#include "sluice/netguard.h"

/* Normalises a target's host into its one canonical text. */
int request_normalize_host(const char *host, size_t len, bool bracketed, char *out, size_t cap,
                           bool *is_ipv6, const char **errstr)
{
    struct netguard_addr a;
    size_t n;

    *is_ipv6 = false;
    if (netguard_parse_literal(host, len, &a)) {
        /* Brackets hold IPv6 only; a mapped address inside them is the IPv4 it maps. */
        if (bracketed != (a.family == AF_INET6) && !(bracketed && a.family == AF_INET)) {
            *errstr = "an IPv6 address must be written in brackets";
            return -1;
        }
        n = netguard_format(&a, out, cap);
        if (n >= cap) {
            *errstr = "the address does not fit";
            return -1;
        }
        *is_ipv6 = a.family == AF_INET6;
        return (int)n;
    }
    if (bracketed) {
        *errstr = "the brackets do not hold an IPv6 address";
        return -1;
    }
    return domainset_normalize(host, len, out, cap, errstr);
}
