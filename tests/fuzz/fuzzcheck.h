/*
 * The one invariant check of the fuzz targets: when cond is false, says which check of
 * which file failed, then aborts, so that libFuzzer keeps the input and a replay fails.
 */
#ifndef SLUICE_FUZZCHECK_H
#define SLUICE_FUZZCHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif /* SLUICE_FUZZCHECK_H */
