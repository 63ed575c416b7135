/* TLS sessions toward origins; see include/sluice/tlsresume.h. */
#include "sluice/tlsresume.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One slot: a key and the session filed under it, serialised (both malloc'd), or NULLs. */
struct tlsresume_slot {
    char *key;
    unsigned char *der;
    size_t der_len;
};

struct tlsresume {
    pthread_mutex_t lock;
    size_t count; /* slots in use */
    struct tlsresume_slot slots[TLSRESUME_MAX];
};

/* An empty store. */
struct tlsresume *tlsresume_new(void)
{
    struct tlsresume *r = calloc(1, sizeof(*r));

    if (r != NULL)
        pthread_mutex_init(&r->lock, NULL);
    return r;
}

/* Empties one slot (the lock held, or the store no longer shared). */
static void tlsresume_clear(struct tlsresume *r, struct tlsresume_slot *s)
{
    if (s->key == NULL)
        return;
    free(s->key);
    free(s->der);
    s->key = NULL;
    s->der = NULL;
    s->der_len = 0;
    r->count--;
}

/* Frees it all. */
void tlsresume_free(struct tlsresume *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < TLSRESUME_MAX; i++)
        tlsresume_clear(r, &r->slots[i]);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* The slot of key (FNV-1a: a client that chooses host names can at worst push sessions
 * out, which costs a full handshake, never a wrong one). */
static struct tlsresume_slot *tlsresume_slot_of(struct tlsresume *r, const char *key)
{
    uint64_t h = 1469598103934665603u;

    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211u;
    return &r->slots[h % TLSRESUME_MAX];
}

/* True when sess can no longer be offered: past its lifetime. */
static bool tlsresume_expired(const SSL_SESSION *sess)
{
    time_t now = time(NULL);

    return (int64_t)SSL_SESSION_get_time(sess) + (int64_t)SSL_SESSION_get_timeout(sess) <=
           (int64_t)now;
}

/* Files a copy of a session; see the header. */
void tlsresume_put(struct tlsresume *r, const char *key, const SSL_SESSION *sess)
{
    struct tlsresume_slot *s;
    unsigned char *der = NULL, *p;
    int len = SSL_SESSION_is_resumable(sess) == 1 ? i2d_SSL_SESSION(sess, NULL) : 0;
    char *copy;

    if (len <= 0 || len > TLSRESUME_MAX_BYTES || (der = malloc((size_t)len)) == NULL)
        return;
    p = der;
    if (i2d_SSL_SESSION(sess, &p) != len || (copy = strdup(key)) == NULL) {
        free(der);
        return;
    }
    pthread_mutex_lock(&r->lock);
    s = tlsresume_slot_of(r, key);
    tlsresume_clear(r, s);
    s->key = copy;
    s->der = der;
    s->der_len = (size_t)len;
    r->count++;
    pthread_mutex_unlock(&r->lock);
}

/* Takes a session; see the header. */
SSL_SESSION *tlsresume_take(struct tlsresume *r, const char *key)
{
    struct tlsresume_slot *s;
    SSL_SESSION *sess = NULL;

    pthread_mutex_lock(&r->lock);
    s = tlsresume_slot_of(r, key);
    if (s->key != NULL && strcmp(s->key, key) == 0) {
        const unsigned char *p = s->der;

        sess = d2i_SSL_SESSION(NULL, &p, (long)s->der_len);
        if (sess == NULL || tlsresume_expired(sess) || SSL_SESSION_is_resumable(sess) != 1) {
            SSL_SESSION_free(sess);
            sess = NULL;
            tlsresume_clear(r, s);
        } else if (SSL_SESSION_get_protocol_version(sess) >= TLS1_3_VERSION) {
            tlsresume_clear(r, s); /* a ticket goes out once */
        }
    }
    pthread_mutex_unlock(&r->lock);
    return sess;
}

/* Sessions held now. */
size_t tlsresume_count(struct tlsresume *r)
{
    size_t n;

    pthread_mutex_lock(&r->lock);
    n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}
