/* Connections per client address; see include/sluice/clientcap.h. */
#include "sluice/clientcap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/netguard.h"

/* Buckets of the table; a chain per bucket, so the count of clients is not bounded here. */
#define CLIENTCAP_BUCKETS 4096

/* One client address and what it holds; freed when it holds nothing. */
struct clientcap_entry {
    struct clientcap_entry *next;
    struct netguard_addr key; /* IPv4, or an IPv6 /64 with the rest zeroed */
    uint32_t count;           /* connections */
    uint64_t bytes;           /* shared memory charged (clientcap_charge) */
};

/* The table, guarded by one lock: an accept and a close each take it once. */
struct clientcap {
    pthread_mutex_t lock;
    uint32_t max;
    struct clientcap_entry *buckets[CLIENTCAP_BUCKETS];
};

/* Makes an empty table. */
struct clientcap *clientcap_new(uint32_t max)
{
    struct clientcap *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    c->max = max;
    return c;
}

/* Frees the table and every entry. */
void clientcap_free(struct clientcap *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < CLIENTCAP_BUCKETS; i++) {
        struct clientcap_entry *e = c->buckets[i];
        while (e != NULL) {
            struct clientcap_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* The key a client is counted under; false for a family that is neither IPv4 nor IPv6. */
static bool clientcap_key(const struct sockaddr *sa, struct netguard_addr *key)
{
    if (!netguard_from_sockaddr(sa, key))
        return false;
    if (key->family == AF_INET6)
        memset(key->bytes + 8, 0, 8);
    return true;
}

/* FNV-1a over the key's bytes, folded into a bucket index. */
static size_t clientcap_bucket(const struct netguard_addr *key)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < sizeof(key->bytes); i++)
        h = (h ^ key->bytes[i]) * 16777619u;
    h ^= (uint32_t)key->family;
    return h % CLIENTCAP_BUCKETS;
}

/* The entry for key in its bucket, or NULL; *link gets the link that points at it. */
static struct clientcap_entry *clientcap_find(struct clientcap *c, const struct netguard_addr *key,
                                              struct clientcap_entry ***link)
{
    struct clientcap_entry **l = &c->buckets[clientcap_bucket(key)];

    while (*l != NULL && !netguard_addr_equal(&(*l)->key, key))
        l = &(*l)->next;
    *link = l;
    return *l;
}

/* The entry for key, made when there is none; NULL when out of memory.  Under the lock. */
static struct clientcap_entry *clientcap_entry(struct clientcap *c, const struct netguard_addr *key,
                                               struct clientcap_entry ***link)
{
    struct clientcap_entry *e = clientcap_find(c, key, link);

    if (e == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
        e->key = *key;
        **link = e;
    }
    return e;
}

/* Frees e, which *link points at, once it holds nothing.  Under the lock. */
static void clientcap_drop_empty(struct clientcap_entry *e, struct clientcap_entry **link)
{
    if (e->count == 0 && e->bytes == 0) {
        *link = e->next;
        free(e);
    }
}

/* Counts a connection unless the client holds the cap. */
bool clientcap_take(struct clientcap *c, const struct sockaddr *sa)
{
    struct netguard_addr key;
    struct clientcap_entry *e, **link;
    bool ok = false;

    if (!clientcap_key(sa, &key))
        return true; /* a Unix socket is one local client: the global cap bounds it */
    pthread_mutex_lock(&c->lock);
    e = clientcap_entry(c, &key, &link);
    if (e != NULL && e->count < c->max) {
        e->count++;
        ok = true;
    } else if (e != NULL) {
        clientcap_drop_empty(e, link); /* a cap of 0 takes nothing; keep no entry for it */
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* Counts one connection less. */
void clientcap_release(struct clientcap *c, const struct sockaddr *sa)
{
    struct netguard_addr key;
    struct clientcap_entry *e, **link;

    if (!clientcap_key(sa, &key))
        return;
    pthread_mutex_lock(&c->lock);
    e = clientcap_find(c, &key, &link);
    if (e != NULL && e->count > 0) {
        e->count--;
        clientcap_drop_empty(e, link);
    }
    pthread_mutex_unlock(&c->lock);
}

/* Charges shared memory to the client unless it would hold more than max. */
bool clientcap_charge(struct clientcap *c, const struct sockaddr *sa, uint64_t bytes, uint64_t max)
{
    struct netguard_addr key;
    struct clientcap_entry *e, **link;
    bool ok = false;

    if (!clientcap_key(sa, &key))
        return true; /* a Unix socket is one local client: the global bound bounds it */
    pthread_mutex_lock(&c->lock);
    e = clientcap_entry(c, &key, &link);
    if (e != NULL && bytes <= max && e->bytes <= max - bytes) {
        e->bytes += bytes;
        ok = true;
    } else if (e != NULL) {
        clientcap_drop_empty(e, link);
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* Gives back charged memory. */
void clientcap_refund(struct clientcap *c, const struct sockaddr *sa, uint64_t bytes)
{
    struct netguard_addr key;
    struct clientcap_entry *e, **link;

    if (bytes == 0 || !clientcap_key(sa, &key))
        return;
    pthread_mutex_lock(&c->lock);
    e = clientcap_find(c, &key, &link);
    if (e != NULL) {
        e->bytes = e->bytes > bytes ? e->bytes - bytes : 0;
        clientcap_drop_empty(e, link);
    }
    pthread_mutex_unlock(&c->lock);
}

/* Connections the client holds. */
uint32_t clientcap_count(struct clientcap *c, const struct sockaddr *sa)
{
    struct netguard_addr key;
    struct clientcap_entry *e, **link;
    uint32_t n = 0;

    if (!clientcap_key(sa, &key))
        return 0;
    pthread_mutex_lock(&c->lock);
    e = clientcap_find(c, &key, &link);
    if (e != NULL)
        n = e->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Shared memory the client holds. */
uint64_t clientcap_bytes(struct clientcap *c, const struct sockaddr *sa)
{
    struct netguard_addr key;
    struct clientcap_entry *e, **link;
    uint64_t n = 0;

    if (!clientcap_key(sa, &key))
        return 0;
    pthread_mutex_lock(&c->lock);
    e = clientcap_find(c, &key, &link);
    if (e != NULL)
        n = e->bytes;
    pthread_mutex_unlock(&c->lock);
    return n;
}
