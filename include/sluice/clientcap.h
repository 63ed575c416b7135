/*
 * How many connections each client address holds, and how many bytes of memory sluice
 * shares between clients (the bodies being captured), across all workers, so that in
 * gateway mode one client cannot take every connection slot, nor that memory.  An IPv6
 * client is counted by its /64, which is what one host or one home usually gets.
 * Thread-safe.
 */
#ifndef SLUICE_CLIENTCAP_H
#define SLUICE_CLIENTCAP_H

#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

struct clientcap;

/* Makes an empty count allowing max connections per client; NULL when out of memory. */
struct clientcap *clientcap_new(uint32_t max);

/* Frees c.  NULL is a no-op. */
void clientcap_free(struct clientcap *c);

/*
 * Counts one more connection from sa's client; false (nothing counted) when it already
 * holds the cap, or when its count cannot be kept (out of memory: refused, not let through).
 */
bool clientcap_take(struct clientcap *c, const struct sockaddr *sa);

/* Counts one connection of sa's client less; pairs with a clientcap_take() that said true. */
void clientcap_release(struct clientcap *c, const struct sockaddr *sa);

/* Connections sa's client holds now. */
uint32_t clientcap_count(struct clientcap *c, const struct sockaddr *sa);

/*
 * Charges bytes of shared memory to sa's client when it then holds at most max; false
 * (nothing charged) when it would hold more, or when its count cannot be kept (out of
 * memory).  A client with no address family of its own (a Unix socket) is not counted.
 */
bool clientcap_charge(struct clientcap *c, const struct sockaddr *sa, uint64_t bytes, uint64_t max);

/* Gives back bytes a clientcap_charge() that said true charged to sa's client. */
void clientcap_refund(struct clientcap *c, const struct sockaddr *sa, uint64_t bytes);

/* Bytes of shared memory sa's client holds now. */
uint64_t clientcap_bytes(struct clientcap *c, const struct sockaddr *sa);

#endif /* SLUICE_CLIENTCAP_H */
