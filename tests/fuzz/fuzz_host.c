/*
 * libFuzzer target for host names as policies and requests carry them: normalisation for
 * the domain set (case, trailing dot, IDNA) and the address guard's IP-literal reading.
 * Invariants: a normalised name normalises to itself; a name added to a set is found by
 * its own spelling and by its normal form, and a wildcard never matches its bare suffix;
 * an IP literal formats to a text that reads back as the same address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/domainset.h"
#include "sluice/netguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks the domain set's view of the input. */
static void check_name(const char *host, size_t len)
{
    char norm[256], again[256];
    const char *errstr = NULL;
    struct domainset *set;
    uint32_t value = 0;
    int n = domainset_normalize(host, len, norm, sizeof(norm), &errstr);

    if (n < 0) {
        if (errstr == NULL)
            abort();
        return;
    }
    if (domainset_normalize(norm, (size_t)n, again, sizeof(again), &errstr) != n ||
        memcmp(norm, again, (size_t)n) != 0)
        abort();
    set = domainset_new();
    if (set == NULL)
        return;
    if (domainset_add(set, norm, 7, &errstr) == 0 && domainset_freeze(set) == 0) {
        if (!domainset_lookup(set, host, len, &value) || value != 7)
            abort();
        if (!domainset_lookup(set, norm, (size_t)n, &value) || value != 7)
            abort();
    }
    domainset_free(set);
    if (n >= 1 && n + 2 < (int)sizeof(norm) && norm[0] != '*') {
        char pattern[260];
        memcpy(pattern, "*.", 2);
        memcpy(pattern + 2, norm, (size_t)n + 1);
        set = domainset_new();
        if (set == NULL)
            return;
        if (domainset_add(set, pattern, 1, &errstr) == 0 && domainset_freeze(set) == 0 &&
            domainset_lookup(set, norm, (size_t)n, &value))
            abort(); /* *.suffix matched the bare suffix */
        domainset_free(set);
    }
}

/* Checks the address guard's view of the input. */
static void check_literal(const char *host, size_t len)
{
    struct netguard_addr a, b;
    char text[NETGUARD_ADDRSTRLEN];

    if (!netguard_parse_literal(host, len, &a))
        return;
    netguard_format(&a, text, sizeof(text));
    if (!netguard_parse_literal(text, strlen(text), &b) || !netguard_addr_equal(&a, &b))
        abort();
    (void)netguard_classify(&a);
}

/* Feeds the input, as a host name, to both. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 300)
        return 0;
    check_name((const char *)data, size);
    check_literal((const char *)data, size);
    return 0;
}
