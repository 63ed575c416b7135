/*
 * libFuzzer target for the configuration loader: any bytes as a YAML file either load or
 * give errors, each with a position, and never crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loads the input as a configuration file and checks the shape of the result. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct yamldoc_errors errs;
    struct sluice_config *cfg =
        config_load_buffer("/fuzz/sluice.yaml", (const char *)data, size, &errs);

    if ((cfg == NULL) != (errs.count > 0))
        abort();
    for (size_t i = 0; i < errs.count && i < YAMLDOC_MAX_ERRORS; i++)
        if (errs.lines[i] != NULL && strncmp(errs.lines[i], "/fuzz/sluice.yaml:", 18) != 0)
            abort();
    yamldoc_errors_clear(&errs);
    config_free(cfg);
    return 0;
}
