/*
 * Certificates made on the fly for inspected connections: a leaf for one server name (or
 * IP address, as an IP SAN), signed by the local CA, valid for a bounded period inside the
 * CA's own, all from one EC P-256 key made at start.  Leaves are kept in a bounded LRU
 * cache that every worker shares (behind one mutex, held only to look up and insert:
 * signing happens outside it).  Part of the TLS layer.
 */
#ifndef SLUICE_TLSMINT_H
#define SLUICE_TLSMINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Days a leaf is valid for (never past the CA's end); it is made again after half. */
#define TLSMINT_LEAF_DAYS 30

/* Longest name a leaf is made for (a host name's limit). */
#define TLSMINT_NAME_MAX 253

struct tlsmint;

/* What the cache did, for metrics and tests. */
struct tlsmint_stats {
    uint64_t made;    /* leaves signed */
    uint64_t hits;    /* leaves handed out from the cache */
    uint64_t evicted; /* leaves dropped to keep the bound */
    size_t cached;    /* leaves held now */
};

/*
 * Makes the minter for the CA ca_cert / ca_key (each gets a reference of its own) with a
 * cache of at most cache_max leaves (at least 1), and the leaves' key.  NULL on failure,
 * with a sentence in err.
 */
struct tlsmint *tlsmint_new(X509 *ca_cert, EVP_PKEY *ca_key, size_t cache_max, char *err,
                            size_t cap);

/* Frees the cache, the key and the CA references.  NULL is a no-op. */
void tlsmint_free(struct tlsmint *m);

/*
 * The leaf for name, a normalised host name or an IP literal (without brackets): from the
 * cache, or made now (*made then says so; made may be NULL).  One reference for the caller,
 * who drops it with X509_free().  NULL when name is empty or too long, or OpenSSL failed.
 * Safe from any thread.
 */
X509 *tlsmint_leaf(struct tlsmint *m, const char *name, bool *made);

/* The key of every leaf; borrowed, valid until tlsmint_free(). */
EVP_PKEY *tlsmint_key(const struct tlsmint *m);

/* The CA certificate the leaves are signed with; borrowed. */
X509 *tlsmint_ca(const struct tlsmint *m);

/* Counts so far (any thread). */
void tlsmint_stats(struct tlsmint *m, struct tlsmint_stats *out);

#endif /* SLUICE_TLSMINT_H */
