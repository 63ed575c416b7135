/*
 * Bytes as lowercase hexadecimal, the way sha256sum and the audit trail write digests:
 * the chain's hashes, captured bodies' names, executables' hashes, secrets' keyed hashes.
 */
#ifndef SLUICE_HEX_H
#define SLUICE_HEX_H

#include <stddef.h>

/* Writes the 2 * n lowercase hex digits of in[0..n), then a NUL, to out. */
void hex_lower(const unsigned char *in, size_t n, char *out);

#endif /* SLUICE_HEX_H */
