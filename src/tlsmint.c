/* Leaf certificates made on the fly, and their cache; see include/sluice/tlsmint.h. */
#include "sluice/tlsmint.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <arpa/inet.h>

#include <openssl/bn.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

/* One cached leaf: on its hash chain and on the LRU list. */
struct tlsmint_entry {
    struct tlsmint_entry *next_in_bucket;
    TAILQ_ENTRY(tlsmint_entry) lru; /* most recently used first */
    time_t fresh_until;             /* made again after this (half its validity) */
    X509 *leaf;                     /* one reference, the cache's */
    char name[];
};
TAILQ_HEAD(tlsmint_lru, tlsmint_entry);

struct tlsmint {
    X509 *ca;         /* one reference */
    EVP_PKEY *ca_key; /* one reference; only signing reads it */
    EVP_PKEY *key;    /* the leaves' key, made at start */
    /* What every leaf shares -- version, issuer, "O=sluice inspection", the key, the constant
     * extensions -- made once, signed so that it can be copied: each leaf starts as a copy.
     * OpenSSL 3 encodes and decodes a key set on a certificate through its provider lookup
     * (about 160 us here); a copy decodes it only (about 140 us), and parses no extension
     * text: a leaf takes about 170 us instead of 230.  Only read once made: any worker may
     * copy it. */
    X509 *template; /* owned */
    /* A signing context set up once with the CA key and SHA-256; each leaf signs with a
     * copy, which skips the algorithm lookup.  Only read once made. */
    EVP_MD_CTX *sign_template;
    pthread_mutex_t lock; /* guards everything below */
    struct tlsmint_entry **buckets;
    size_t nbuckets; /* a power of two */
    struct tlsmint_lru lru;
    size_t count;
    size_t max;
    uint64_t seed; /* random: a client choosing server names cannot aim at one chain */
    struct tlsmint_stats stats;
};

/* FNV-1a of name, from m's seed. */
static uint64_t tlsmint_hash(const struct tlsmint *m, const char *name)
{
    uint64_t h = 14695981039346656037ull ^ m->seed;

    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/* Signs x with the CA key, from a copy of the prepared context. */
static bool tlsmint_sign(const struct tlsmint *m, X509 *x)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok =
        ctx != NULL && EVP_MD_CTX_copy_ex(ctx, m->sign_template) == 1 && X509_sign_ctx(x, ctx) > 0;

    EVP_MD_CTX_free(ctx);
    return ok;
}

/*
 * Makes what every leaf shares: the template (with its constant extensions, as OpenSSL's
 * configuration would write them for a leaf issued by the CA) and the signing context.
 * Needs m->ca, m->ca_key and m->key.
 */
static bool tlsmint_prepare(struct tlsmint *m)
{
    static const struct {
        int nid;
        const char *value;
    } exts[] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_ext_key_usage, "serverAuth"},
        {NID_authority_key_identifier, "keyid:always"},
    };
    X509 *t = m->template = X509_new();
    X509V3_CTX ctx;
    bool ok =
        t != NULL && X509_set_version(t, 2) == 1 &&
        X509_set_issuer_name(t, X509_get_subject_name(m->ca)) == 1 &&
        X509_set_pubkey(t, m->key) == 1 &&
        X509_NAME_add_entry_by_txt(X509_get_subject_name(t), "O", MBSTRING_UTF8,
                                   (const unsigned char *)"sluice inspection", -1, -1, 0) == 1;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, m->ca, t, NULL, NULL, 0);
    for (size_t i = 0; ok && i < sizeof(exts) / sizeof(exts[0]); i++) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
        ok = ext != NULL && X509_add_ext(t, ext, -1) == 1;
        X509_EXTENSION_free(ext);
    }
    /* Whole (a serial, dates, a signature) so that it can be copied; each copy gets its own. */
    ok = ok && ASN1_INTEGER_set(X509_get_serialNumber(t), 1) == 1 &&
         X509_gmtime_adj(X509_getm_notBefore(t), 0) != NULL &&
         X509_gmtime_adj(X509_getm_notAfter(t), 0) != NULL;
    m->sign_template = EVP_MD_CTX_new();
    return ok && m->sign_template != NULL &&
           EVP_DigestSignInit(m->sign_template, NULL, EVP_sha256(), NULL, m->ca_key) == 1 &&
           tlsmint_sign(m, t);
}

/* Adds the subjectAltName for name: an IP address (addr, addrlen bytes) or a DNS name. */
static bool tlsmint_add_san(X509 *x, const char *name, const unsigned char *addr, int addrlen)
{
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_STRING *value = addrlen > 0 ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    bool ok = names != NULL && gn != NULL && value != NULL &&
              (addrlen > 0 ? ASN1_OCTET_STRING_set(value, addr, addrlen)
                           : ASN1_STRING_set(value, name, -1)) == 1;

    if (ok) {
        GENERAL_NAME_set0_value(gn, addrlen > 0 ? GEN_IPADD : GEN_DNS, value);
        value = NULL;
        ok = sk_GENERAL_NAME_push(names, gn) > 0;
        if (ok)
            gn = NULL;
    }
    ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
    ASN1_STRING_free(value);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(names);
    return ok;
}

/* Makes the minter. */
struct tlsmint *tlsmint_new(X509 *ca_cert, EVP_PKEY *ca_key, size_t cache_max, char *err,
                            size_t cap)
{
    struct tlsmint *m = calloc(1, sizeof(*m));
    size_t n = 16;

    if (cache_max == 0)
        cache_max = 1;
    while (n < 2 * cache_max && n < ((size_t)1 << 24))
        n *= 2;
    if (m == NULL || (m->buckets = calloc(n, sizeof(*m->buckets))) == NULL) {
        free(m);
        snprintf(err, cap, "out of memory for the certificate cache");
        return NULL;
    }
    m->nbuckets = n;
    m->max = cache_max;
    if (RAND_bytes((unsigned char *)&m->seed, sizeof(m->seed)) != 1)
        m->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)m;
    TAILQ_INIT(&m->lru);
    pthread_mutex_init(&m->lock, NULL);
    if (X509_up_ref(ca_cert) == 1)
        m->ca = ca_cert;
    if (EVP_PKEY_up_ref(ca_key) == 1)
        m->ca_key = ca_key;
    if (m->ca == NULL || m->ca_key == NULL) {
        snprintf(err, cap, "cannot take the CA certificate and key (OpenSSL failed)");
        tlsmint_free(m);
        return NULL;
    }
    if ((m->key = EVP_EC_gen("P-256")) == NULL) {
        snprintf(err, cap, "cannot make the key for inspected connections (OpenSSL failed)");
        tlsmint_free(m);
        return NULL;
    }
    if (!tlsmint_prepare(m)) {
        snprintf(err, cap, "cannot prepare the certificates' signing (OpenSSL failed)");
        tlsmint_free(m);
        return NULL;
    }
    return m;
}

/* Frees it all. */
void tlsmint_free(struct tlsmint *m)
{
    struct tlsmint_entry *e;

    if (m == NULL)
        return;
    while ((e = TAILQ_FIRST(&m->lru)) != NULL) {
        TAILQ_REMOVE(&m->lru, e, lru);
        X509_free(e->leaf);
        free(e);
    }
    free(m->buckets);
    X509_free(m->template);
    EVP_MD_CTX_free(m->sign_template);
    pthread_mutex_destroy(&m->lock);
    X509_free(m->ca);
    EVP_PKEY_free(m->ca_key);
    EVP_PKEY_free(m->key);
    free(m);
}

/*
 * Sets the leaf's validity: from an hour ago (clocks differ) for TLSMINT_LEAF_DAYS, cut to
 * the CA's own period.  *fresh_until says when to make it again.
 */
static bool tlsmint_validity(X509 *leaf, const X509 *ca, time_t now, time_t *fresh_until)
{
    ASN1_TIME *from = X509_getm_notBefore(leaf), *until = X509_getm_notAfter(leaf);
    time_t end = now + (time_t)TLSMINT_LEAF_DAYS * 86400;

    if (X509_time_adj_ex(from, 0, -3600, &now) == NULL ||
        X509_time_adj_ex(until, TLSMINT_LEAF_DAYS, 0, &now) == NULL)
        return false;
    if (ASN1_TIME_compare(from, X509_get0_notBefore(ca)) < 0 &&
        X509_set1_notBefore(leaf, X509_get0_notBefore(ca)) != 1)
        return false;
    if (ASN1_TIME_compare(until, X509_get0_notAfter(ca)) > 0) {
        struct tm tm;
        if (X509_set1_notAfter(leaf, X509_get0_notAfter(ca)) != 1 ||
            ASN1_TIME_to_tm(X509_get0_notAfter(ca), &tm) != 1)
            return false;
        end = timegm(&tm);
    }
    *fresh_until = now + (end - now) / 2;
    return true;
}

/* Signs a new leaf for name; NULL on failure. */
static X509 *tlsmint_make(struct tlsmint *m, const char *name, time_t *fresh_until)
{
    unsigned char addr[16];
    int addrlen = inet_pton(AF_INET, name, addr) == 1    ? 4
                  : inet_pton(AF_INET6, name, addr) == 1 ? 16
                                                         : 0;
    X509 *x = X509_dup(m->template);
    BIGNUM *serial = BN_new();
    bool ok;

    /* A random 127-bit serial: no two leaves alike, even across restarts. */
    ok = x != NULL && serial != NULL &&
         BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
         BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != NULL &&
         tlsmint_validity(x, m->ca, time(NULL), fresh_until);
    /* The common name is limited to 64 characters; the SAN is what clients check. */
    if (ok && strlen(name) <= 64)
        ok = X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                                        (const unsigned char *)name, -1, -1, 0) == 1;
    ok = ok && tlsmint_add_san(x, name, addr, addrlen) && tlsmint_sign(m, x);
    BN_free(serial);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* The entry for name, or NULL; under the lock. */
static struct tlsmint_entry *tlsmint_find(struct tlsmint *m, const char *name, size_t bucket)
{
    for (struct tlsmint_entry *e = m->buckets[bucket]; e != NULL; e = e->next_in_bucket)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* Takes e off its chain and the LRU list and frees it; under the lock. */
static void tlsmint_drop(struct tlsmint *m, struct tlsmint_entry *e)
{
    struct tlsmint_entry **pp = &m->buckets[tlsmint_hash(m, e->name) & (m->nbuckets - 1)];

    while (*pp != e)
        pp = &(*pp)->next_in_bucket;
    *pp = e->next_in_bucket;
    TAILQ_REMOVE(&m->lru, e, lru);
    m->count--;
    X509_free(e->leaf);
    free(e);
}

/* The leaf for name; see the header. */
X509 *tlsmint_leaf(struct tlsmint *m, const char *name, bool *made)
{
    size_t len = strlen(name), bucket = tlsmint_hash(m, name) & (m->nbuckets - 1);
    struct tlsmint_entry *e, *fresh;
    time_t now = time(NULL), fresh_until = 0;
    X509 *leaf;

    if (made != NULL)
        *made = false;
    if (len == 0 || len > TLSMINT_NAME_MAX)
        return NULL;
    pthread_mutex_lock(&m->lock);
    e = tlsmint_find(m, name, bucket);
    if (e != NULL && e->fresh_until > now && X509_up_ref(e->leaf) == 1) {
        TAILQ_REMOVE(&m->lru, e, lru);
        TAILQ_INSERT_HEAD(&m->lru, e, lru);
        m->stats.hits++;
        pthread_mutex_unlock(&m->lock);
        return e->leaf;
    }
    pthread_mutex_unlock(&m->lock);
    /* Making a leaf takes about 170 us: other workers go on meanwhile.  Two may make the
     * same leaf at once; both are used, and the later one replaces the earlier in the
     * cache. */
    if ((leaf = tlsmint_make(m, name, &fresh_until)) == NULL)
        return NULL;
    if (made != NULL)
        *made = true;
    if ((fresh = malloc(sizeof(*fresh) + len + 1)) == NULL)
        return leaf; /* not cached: made again next time */
    memcpy(fresh->name, name, len + 1);
    fresh->fresh_until = fresh_until;
    fresh->leaf = leaf;
    if (X509_up_ref(leaf) != 1) {
        free(fresh);
        return leaf;
    }
    pthread_mutex_lock(&m->lock);
    m->stats.made++;
    if ((e = tlsmint_find(m, name, bucket)) != NULL)
        tlsmint_drop(m, e); /* stale, or made by another worker just now: the newest wins */
    fresh->next_in_bucket = m->buckets[bucket];
    m->buckets[bucket] = fresh;
    TAILQ_INSERT_HEAD(&m->lru, fresh, lru);
    m->count++;
    while (m->count > m->max) {
        tlsmint_drop(m, TAILQ_LAST(&m->lru, tlsmint_lru));
        m->stats.evicted++;
    }
    pthread_mutex_unlock(&m->lock);
    return leaf;
}

/* The leaves' key. */
EVP_PKEY *tlsmint_key(const struct tlsmint *m)
{
    return m->key;
}

/* The CA certificate. */
X509 *tlsmint_ca(const struct tlsmint *m)
{
    return m->ca;
}

/* Counts so far. */
void tlsmint_stats(struct tlsmint *m, struct tlsmint_stats *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->stats;
    out->cached = m->count;
    pthread_mutex_unlock(&m->lock);
}
