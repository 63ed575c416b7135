/*
 * libFuzzer target for the policy loader: any bytes as a tool profile or as an
 * organisation policy either load or give errors, each with a position in that file, and
 * never crash, leak or read out of bounds.  The first byte picks which of the two.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loads the rest of the input as one policy file and checks the shape of the result. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct yamldoc_errors errs;
    bool is_org = size > 0 && (data[0] & 1) != 0;
    const char *path = is_org ? "/fuzz/organisation.yaml" : "/fuzz/tools/t.yaml";
    int rc;

    if (size == 0)
        return 0;
    rc = policy_check_text(path, (const char *)data + 1, size - 1, is_org, &errs);
    if ((rc < 0) != (errs.count > 0))
        abort();
    for (size_t i = 0; i < errs.count && i < YAMLDOC_MAX_ERRORS; i++)
        if (errs.lines[i] != NULL && strncmp(errs.lines[i], path, strlen(path)) != 0)
            abort();
    yamldoc_errors_clear(&errs);
    return 0;
}
