/*
 * The local certificate authority that TLS inspection signs its certificates with: made
 * once (an EC P-256 key and a self-signed CA certificate for it), described on demand.
 * This module, part of the TLS layer, is the only one that reads the CA's key.
 */
#ifndef SLUICE_TLSCA_H
#define SLUICE_TLSCA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Days the CA certificate is valid for, from an hour before it is made. */
#define TLSCA_DAYS 3650

/*
 * Makes the CA: a new EC P-256 key written to key_path (mode 0600, created exclusively)
 * and a self-signed certificate for it written to cert_path (mode 0644): CA:TRUE with a
 * path length of 0, keyCertSign and cRLSign, "O=sluice, CN=sluice local CA on HOST",
 * valid for TLSCA_DAYS.  Neither file may exist (nothing is overwritten).  Returns 0, or
 * -1 with a sentence in err (what was half made is removed).
 */
int tlsca_create(const char *cert_path, const char *key_path, char *err, size_t cap);

/*
 * Describes the CA on out: the certificate's path, subject, SHA-256 fingerprint and
 * validity; the key's path, mode and owner, and whether it is the certificate's.  Returns
 * 0 when the CA can be used, 1 when something is wrong (said on out, with what to do).
 */
int tlsca_describe(const char *cert_path, const char *key_path, FILE *out);

#endif /* SLUICE_TLSCA_H */
